//! The typed contract between the streaming decode GEMM
//! (`kernels::gemm_stream`, sm_90a) and the host: its parameter block, its
//! kernel names and the geometry both sides derive from one number, the
//! slab (rows of B a CTA streams per unit of work).
//!
//! Compiled for the host and for the GPU, as [`crate::wgmma_contract`] is:
//! the shared-memory layout the host sizes is the one the kernel indexes.

use crate::wgmma_contract::{GemmOut, GEMM_KBLOCK, GEMM_SMEM_LIMIT};

/// Rows of A (and C) the kernel takes at most: one `m16n8k32` tile.
pub const GEMM_STREAM_MAX_M: u32 = 16;

/// Consumer warps a CTA can have (the producer is one more warp).
pub const GEMM_STREAM_CONSUMER_WARPS: u32 = 8;

/// Rows of B in a slab, at most: a TMA box has at most 256 rows.
pub const GEMM_STREAM_MAX_SLAB: u32 = 256;

/// Tiles (of 8 rows) a consumer warp owns at most: 256 / 8 / 8.
pub const GEMM_STREAM_MAX_TILES_PER_WARP: u32 = GEMM_STREAM_MAX_SLAB / 8 / GEMM_STREAM_CONSUMER_WARPS;

/// Bytes of A's box in a stage: 16 rows (rows past M read as zero) of one
/// k-block.
pub const GEMM_STREAM_A_BYTES: u32 = GEMM_STREAM_MAX_M * GEMM_KBLOCK;

/// Bytes of the buffer in which the k-phases of a slab meet: every phase
/// but the first leaves its partials there, 4 tiles of 32 lanes x 4 f32 per
/// warp (`(phases - 1) * groups <= 7` warps).
pub const GEMM_STREAM_REDUCE_BYTES: u32 = 7 * GEMM_STREAM_MAX_TILES_PER_WARP * 32 * 16;

/// Most stages of the ring (a power of two).
pub const GEMM_STREAM_MAX_STAGES: u32 = 64;

/// How a CTA of the streaming kernel is laid out for a slab of `slab` rows
/// of B (a multiple of 8, at most [`GEMM_STREAM_MAX_SLAB`]).
///
/// The slab's `slab / 8` tiles of 8 rows are dealt to `groups` warps (tile
/// `j` to group `j % groups`, at most 4 each: the fewest groups, a power of
/// two, that hold them), and the 8 consumer warps are `phases = 8 / groups`
/// copies of the groups that take the CTA's k-blocks in turn (k-block `i`
/// of the CTA's stream to phase `i % phases`). A warp's k-block is one
/// latency chain (barrier wait, shared loads, conversions, `mma`s) whose
/// tiles run side by side, so a narrow slab (a k-block every ~60 cycles per
/// SM at full bandwidth for 8 rows, ~240 for 32) needs its k-blocks spread
/// over several warps, and a wide one (~1900 cycles for 256 rows) its tiles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamLayout {
    /// Rows of B per slab.
    pub slab: u32,
    /// Tiles of 8 rows per slab.
    pub tiles: u32,
    /// Warps that split the tiles (1, 2, 4 or 8).
    pub groups: u32,
    /// Warps per group, taking the k-blocks in turn (`8 / groups`).
    pub phases: u32,
    /// log2 of the stages of the ring.
    pub stages_log2: u32,
}

impl StreamLayout {
    /// The layout for `slab` rows, `None` unless `slab` is a multiple of 8
    /// in `8..=256`.
    #[inline]
    pub const fn new(slab: u32) -> Option<Self> {
        if slab == 0 || !slab.is_multiple_of(8) || slab > GEMM_STREAM_MAX_SLAB {
            return None;
        }
        let tiles = slab / 8;
        let mut groups = 1;
        while groups * GEMM_STREAM_MAX_TILES_PER_WARP < tiles {
            groups *= 2;
        }
        let phases = GEMM_STREAM_CONSUMER_WARPS / groups;
        let stage = GEMM_STREAM_A_BYTES + slab * GEMM_KBLOCK;
        let mut stages_log2 = GEMM_STREAM_MAX_STAGES.trailing_zeros();
        while stages_log2 > 1 && Self::bytes(stage, 1 << stages_log2) > GEMM_SMEM_LIMIT {
            stages_log2 -= 1;
        }
        Some(Self { slab, tiles, groups, phases, stages_log2 })
    }

    /// Dynamic shared memory of `stages` stages of `stage` bytes: 1024
    /// bytes of alignment slack (the 128-byte swizzle needs 1024-byte
    /// aligned boxes), the stages, the phases' buffer, a `full` and an
    /// `empty` barrier per stage.
    const fn bytes(stage: u32, stages: u32) -> u32 {
        1024 + stages * (stage + 16) + GEMM_STREAM_REDUCE_BYTES
    }

    /// The `i`-th tile (of 8 rows) of `group`, if the slab has it.
    #[inline]
    pub const fn tile(&self, group: u32, i: u32) -> Option<u32> {
        let j = group + self.groups * i;
        if i < GEMM_STREAM_MAX_TILES_PER_WARP && j < self.tiles {
            Some(j)
        } else {
            None
        }
    }

    /// How many tiles `group` holds (1 to 4 for every group of every slab:
    /// the kernel compiles one loop per count).
    #[inline]
    pub const fn tiles_of(&self, group: u32) -> u32 {
        if group >= self.tiles {
            return 0;
        }
        let n = (self.tiles - group).div_ceil(self.groups);
        if n < GEMM_STREAM_MAX_TILES_PER_WARP {
            n
        } else {
            GEMM_STREAM_MAX_TILES_PER_WARP
        }
    }

    /// The first k-block of a slab that `phase` takes, when the slab's
    /// first k-block is the CTA's k-block number `c0` (the phases take the
    /// CTA's stream in turn, across slabs: number `c` to phase `c %
    /// phases`); the phase then steps by `phases`.
    #[inline]
    pub const fn first_kblock(&self, phase: u32, c0: u32) -> u32 {
        phase.wrapping_sub(c0) & (self.phases - 1)
    }

    /// `(stage, parity)` of the CTA's k-block number `c` in the ring (the
    /// count may wrap: the stage count divides 2^32).
    #[inline]
    pub const fn slot(&self, c: u32) -> (u32, u32) {
        (c & (self.stages() - 1), (c >> self.stages_log2) & 1)
    }

    /// Stages of the ring.
    #[inline]
    pub const fn stages(&self) -> u32 {
        1 << self.stages_log2
    }

    /// Bytes of one stage: A's box, then B's slab, of one k-block.
    #[inline]
    pub const fn stage_bytes(&self) -> u32 {
        GEMM_STREAM_A_BYTES + self.slab * GEMM_KBLOCK
    }

    /// Consumer warps (`groups * phases`).
    #[inline]
    pub const fn consumers(&self) -> u32 {
        self.groups * self.phases
    }

    /// Threads of a CTA: the consumers and one producer warp.
    #[inline]
    pub const fn threads(&self) -> u32 {
        32 * (self.consumers() + 1)
    }

    /// Dynamic shared memory of a CTA.
    #[inline]
    pub const fn smem_bytes(&self) -> u32 {
        Self::bytes(self.stage_bytes(), self.stages())
    }
}

/// The parameter block of the streaming kernel, passed by value.
///
/// The host fills it after checking every buffer; the kernel trusts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct GemmStreamParams {
    /// `CUtensorMap` of A `[m, k]` u8, box 16 x 128, 128-byte swizzle, in
    /// global memory (64-byte aligned).
    pub map_a: u64,
    /// `CUtensorMap` of B `[n, k]` u8, box `slab` x 128, likewise.
    pub map_b: u64,
    /// A's scales, `(row, k-block)` at `row * a_scale_row_stride + kb *
    /// a_scale_kb_stride`.
    pub a_scales: u64,
    /// B's scales `[ceil(n / 128), k_blocks]`, row-major.
    pub b_scales: u64,
    /// C `[m, n]` of the kernel's output type.
    pub c: u64,
    /// Elements between A scales of consecutive rows.
    pub a_scale_row_stride: u64,
    /// Elements between A scales of consecutive k-blocks.
    pub a_scale_kb_stride: u64,
    /// Rows of A and C, `1..=16`.
    pub m: u32,
    /// Rows of B, columns of C.
    pub n: u32,
    /// `ceil(k / 128)`, at least 1.
    pub k_blocks: u32,
    /// Rows of B per slab ([`StreamLayout::new`] accepts it).
    pub slab: u32,
}

/// The streaming kernel for `out`.
#[inline]
pub const fn gemm_stream_kernel(out: GemmOut) -> &'static str {
    match out {
        GemmOut::Bf16 => "gemm_stream_bf16",
        GemmOut::F32 => "gemm_stream_f32",
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    #[test]
    fn every_slab_fits_and_keeps_the_warps_busy() {
        let mut slab = 8;
        while slab <= GEMM_STREAM_MAX_SLAB {
            let l = StreamLayout::new(slab).unwrap();
            assert!(l.smem_bytes() <= GEMM_SMEM_LIMIT, "{slab}");
            assert!(l.stages() >= 4, "{slab}: {} stages", l.stages());
            assert_eq!(l.consumers(), GEMM_STREAM_CONSUMER_WARPS, "{slab}");
            assert!(l.phases.is_power_of_two() && l.groups.is_power_of_two());
            // A group owns at most the warp's tile budget, and no group is idle.
            assert!(l.tiles.div_ceil(l.groups) <= GEMM_STREAM_MAX_TILES_PER_WARP, "{slab}");
            assert!(l.groups <= l.tiles, "{slab}");
            // The phases' partials fit their buffer.
            assert!((l.phases - 1) * l.groups * GEMM_STREAM_MAX_TILES_PER_WARP * 32 * 16 <= GEMM_STREAM_REDUCE_BYTES);
            // Boxes stay 1024-byte aligned (the swizzle's period).
            assert_eq!(l.stage_bytes() % 1024, 0);
            slab += 8;
        }
        let l = StreamLayout::new(32).unwrap();
        assert_eq!((l.groups, l.phases, l.stages()), (1, 8, 32));
        let l = StreamLayout::new(256).unwrap();
        assert_eq!((l.groups, l.phases, l.stages()), (8, 1, 4));
        for bad in [0, 4, 12, 264] {
            assert!(StreamLayout::new(bad).is_none(), "{bad}");
        }
    }

    /// The consumers' walk, as the kernel does it, covers each k-block of
    /// each slab once, in the warp of phase `c % phases` for the CTA's
    /// k-block number `c` (the producer's order), and every group's tiles
    /// cover the slab once.
    #[test]
    fn phases_take_every_kblock_once_in_the_producers_order() {
        for slab in (8..=GEMM_STREAM_MAX_SLAB).step_by(8) {
            let l = StreamLayout::new(slab).unwrap();
            let mut tiles = std::vec![0u32; l.tiles as usize];
            for g in 0..l.groups {
                for i in 0..8 {
                    if let Some(j) = l.tile(g, i) {
                        tiles[j as usize] += 1;
                    }
                }
            }
            assert!(tiles.iter().all(|&t| t == 1), "{slab}: {tiles:?}");
            for g in 0..l.groups {
                let count = (0..8).filter(|&i| l.tile(g, i).is_some()).count() as u32;
                assert_eq!(l.tiles_of(g), count, "slab {slab} group {g}");
                assert!((1..=GEMM_STREAM_MAX_TILES_PER_WARP).contains(&count), "slab {slab} group {g}");
                // The tiles of a group are its first `count` indices.
                assert!((0..count).all(|i| l.tile(g, i).is_some()));
            }
            for k_blocks in [1u32, 2, 3, 7, 8, 9, 64, 129] {
                for slabs in [1u32, 2, 3] {
                    let mut seen = std::vec![0u32; (slabs * k_blocks) as usize];
                    for phase in 0..l.phases {
                        let mut c0 = 0u32;
                        for u in 0..slabs {
                            let mut kb = l.first_kblock(phase, c0);
                            while kb < k_blocks {
                                let c = c0 + kb;
                                assert_eq!(c % l.phases, phase);
                                assert_eq!(l.slot(c), (c % l.stages(), (c / l.stages()) % 2));
                                seen[(u * k_blocks + kb) as usize] += 1;
                                kb += l.phases;
                            }
                            c0 += k_blocks;
                        }
                    }
                    assert!(seen.iter().all(|&s| s == 1), "slab {slab}, {k_blocks} k-blocks, {slabs} slabs");
                }
            }
        }
        // The counter may wrap.
        let l = StreamLayout::new(32).unwrap();
        assert_eq!(l.slot(u32::MAX).0, l.stages() - 1);
        assert_eq!(l.slot(u32::MAX.wrapping_add(1)), (0, 0));
    }

    #[test]
    fn parameter_block_is_what_the_kernel_declares() {
        assert_eq!(core::mem::size_of::<GemmStreamParams>(), 72);
        assert_ne!(gemm_stream_kernel(GemmOut::Bf16), gemm_stream_kernel(GemmOut::F32));
    }
}
