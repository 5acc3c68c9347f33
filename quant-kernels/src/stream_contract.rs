//! The typed contract between the streaming decode GEMM
//! (`kernels::gemm_stream`, sm_90a) and the host: its parameter block, its
//! kernel names and the geometry both sides derive from one number, the
//! slab (rows of B a CTA streams per unit of work).
//!
//! Compiled for the host and for the GPU, as [`crate::wgmma_contract`] is:
//! the shared-memory layout the host sizes is the one the kernel indexes.

use crate::tensor_map::TensorMap;
use crate::wgmma_contract::{GemmOut, GemmPrecision, GEMM_KBLOCK, GEMM_SMEM_LIMIT};

/// Rows of A (and C) the kernel takes at most: the `n16` of its `wgmma`s.
pub const GEMM_STREAM_MAX_M: u32 = 16;

/// Consumer warpgroups of a CTA (the producer is one more warp): they take
/// the CTA's k-blocks in turn.
pub const GEMM_STREAM_PHASES: u32 = 2;

/// Consumer warps of a CTA.
pub const GEMM_STREAM_CONSUMER_WARPS: u32 = 4 * GEMM_STREAM_PHASES;

/// Producer warps of a CTA: one issues the TMA copies, one the scales'.
pub const GEMM_STREAM_PRODUCER_WARPS: u32 = 2;

/// Bytes of a stage's scale slot: A's 16 row scales of the k-block, then B's
/// scales of the (at most 3) 128-row blocks the slab's pieces touch, 4
/// slots; 128 bytes keep the slots apart by whole lines of shared memory.
pub const GEMM_STREAM_SCALE_SLOT_BYTES: u32 = 128;

/// Offset of B's scales in a scale slot.
pub const GEMM_STREAM_SCALE_SLOT_B: u32 = 4 * GEMM_STREAM_MAX_M;

/// Rows of B in a slab, at most: a TMA box has at most 256 rows.
pub const GEMM_STREAM_MAX_SLAB: u32 = 256;

/// Rows of B one `wgmma` piece covers (its `m64`).
pub const GEMM_STREAM_PIECE_ROWS: u32 = 64;

/// Pieces of 64 rows a slab has at most.
pub const GEMM_STREAM_MAX_PIECES: u32 = GEMM_STREAM_MAX_SLAB / GEMM_STREAM_PIECE_ROWS;

/// Bytes of A's box in a stage: 16 rows (rows past M read as zero) of one
/// k-block.
pub const GEMM_STREAM_A_BYTES: u32 = GEMM_STREAM_MAX_M * GEMM_KBLOCK;

/// Bytes one thread leaves per piece for the phases' sum: its 8
/// accumulators of an `m64n16` fragment.
pub const GEMM_STREAM_PIECE_PARTIAL_BYTES: u32 = 8 * 4;

/// Bytes of the buffer in which the phases of a slab meet: every phase but
/// the first leaves its accumulators there, per thread of its warpgroup and
/// piece.
pub const GEMM_STREAM_REDUCE_BYTES: u32 =
    (GEMM_STREAM_PHASES - 1) * 128 * GEMM_STREAM_MAX_PIECES * GEMM_STREAM_PIECE_PARTIAL_BYTES;

/// Most stages of the ring (a power of two).
pub const GEMM_STREAM_MAX_STAGES: u32 = 64;

/// How a CTA of the streaming kernel is laid out for a slab of `slab` rows
/// of B (a multiple of 8, at most [`GEMM_STREAM_MAX_SLAB`]).
///
/// The slab is `pieces = ceil(slab / 64)` pieces of 64 rows, each the `M`
/// side of an `m64n16k32` `wgmma` (B's rows as the `A` operand, A's 16 rows
/// as the `B` operand: C transposed). A stage holds the slab's box of B at
/// its start and A's box after it, and is at least `64 * pieces` rows of
/// 128 bytes long, so the last piece's rows past the slab read bytes of the
/// same stage (A's box or padding): their results are never stored. The
/// [`GEMM_STREAM_PHASES`] consumer warpgroups take the CTA's k-blocks in
/// turn (k-block `i` of the CTA's stream to phase `i % phases`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamLayout {
    /// Rows of B per slab.
    pub slab: u32,
    /// Pieces of 64 rows per slab (1 to 4).
    pub pieces: u32,
    /// Warpgroups taking the k-blocks in turn ([`GEMM_STREAM_PHASES`]).
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
        let pieces = slab.div_ceil(GEMM_STREAM_PIECE_ROWS);
        let mut l =
            Self { slab, pieces, phases: GEMM_STREAM_PHASES, stages_log2: GEMM_STREAM_MAX_STAGES.trailing_zeros() };
        while l.stages_log2 > 1 && l.smem_bytes() > GEMM_SMEM_LIMIT {
            l.stages_log2 -= 1;
        }
        Some(l)
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

    /// Offset of A's box in a stage: right after the slab's rows of B
    /// (1024-byte aligned, as the 128-byte swizzle needs, since the slab is
    /// a multiple of 8 rows).
    #[inline]
    pub const fn a_offset(&self) -> u32 {
        self.slab * GEMM_KBLOCK
    }

    /// Bytes the two TMA copies of a stage bring: the slab's rows of B and
    /// A's box.
    #[inline]
    pub const fn stage_load_bytes(&self) -> u32 {
        self.a_offset() + GEMM_STREAM_A_BYTES
    }

    /// Bytes of one stage: the loaded bytes, and at least the `64 *
    /// pieces` rows the `wgmma`s read.
    #[inline]
    pub const fn stage_bytes(&self) -> u32 {
        let window = self.pieces * GEMM_STREAM_PIECE_ROWS * GEMM_KBLOCK;
        if window > self.stage_load_bytes() {
            window
        } else {
            self.stage_load_bytes()
        }
    }

    /// Consumer warps (`4 * phases`).
    #[inline]
    pub const fn consumers(&self) -> u32 {
        4 * self.phases
    }

    /// Threads of a CTA: the consumers and the producer warps.
    #[inline]
    pub const fn threads(&self) -> u32 {
        32 * (self.consumers() + GEMM_STREAM_PRODUCER_WARPS)
    }

    /// Dynamic shared memory of a CTA: 1024 bytes of alignment slack (the
    /// 128-byte swizzle needs 1024-byte aligned boxes), the stages, the
    /// phases' buffer, a scale slot and a `full` and an `empty` barrier per
    /// stage.
    #[inline]
    pub const fn smem_bytes(&self) -> u32 {
        1024 + self.stages() * (self.stage_bytes() + GEMM_STREAM_SCALE_SLOT_BYTES + 16) + GEMM_STREAM_REDUCE_BYTES
    }
}

/// The parameter block of the streaming kernel, passed by value.
///
/// The host fills it after checking every buffer; the kernel trusts it.
/// The tensor maps come first, at 64-byte offsets of a 64-byte-aligned
/// parameter ([`crate::tensor_map`]).
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub struct GemmStreamParams {
    /// Map of A `[m, k]` u8, box 16 x 128, 128-byte swizzle.
    pub map_a: TensorMap,
    /// Map of B `[n, k]` u8, box `slab` x 128, likewise.
    pub map_b: TensorMap,
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

/// The streaming kernel for `precision` and `out`.
#[inline]
pub const fn gemm_stream_kernel(precision: GemmPrecision, out: GemmOut) -> &'static str {
    match (precision, out) {
        (GemmPrecision::Fast, GemmOut::Bf16) => "gemm_stream_fast_bf16",
        (GemmPrecision::Fast, GemmOut::F32) => "gemm_stream_fast_f32",
        (GemmPrecision::Precise, GemmOut::Bf16) => "gemm_stream_precise_bf16",
        (GemmPrecision::Precise, GemmOut::F32) => "gemm_stream_precise_f32",
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    #[test]
    fn every_slab_fits_and_its_pieces_stay_in_their_stage() {
        let mut slab = 8;
        while slab <= GEMM_STREAM_MAX_SLAB {
            let l = StreamLayout::new(slab).unwrap();
            assert!(l.smem_bytes() <= GEMM_SMEM_LIMIT, "{slab}");
            assert!(l.stages() >= 4, "{slab}: {} stages", l.stages());
            assert_eq!(l.pieces, slab.div_ceil(64), "{slab}");
            assert!((1..=GEMM_STREAM_MAX_PIECES).contains(&l.pieces));
            // The wgmma window of every piece, and both boxes, lie inside the stage.
            assert!(l.pieces * 64 * 128 <= l.stage_bytes(), "{slab}");
            assert!(l.a_offset() + GEMM_STREAM_A_BYTES <= l.stage_bytes(), "{slab}");
            assert!(l.a_offset() >= slab * 128, "{slab}: A overlaps B");
            // Boxes and pieces stay 1024-byte aligned (the swizzle's period).
            assert_eq!(l.stage_bytes() % 1024, 0);
            assert_eq!(l.a_offset() % 1024, 0);
            // The phases' sums fit their buffer.
            assert!((l.phases - 1) * 128 * l.pieces * GEMM_STREAM_PIECE_PARTIAL_BYTES <= GEMM_STREAM_REDUCE_BYTES);
            assert!(l.phases.is_power_of_two());
            slab += 8;
        }
        let l = StreamLayout::new(32).unwrap();
        assert_eq!((l.pieces, l.stage_bytes(), l.stages()), (1, 8192, 16));
        let l = StreamLayout::new(256).unwrap();
        assert_eq!((l.pieces, l.stage_bytes(), l.stages()), (4, 34816, 4));
        for bad in [0, 4, 12, 264] {
            assert!(StreamLayout::new(bad).is_none(), "{bad}");
        }
    }

    /// The consumers' walk, as the kernel does it, covers each k-block of
    /// each slab once, in the warpgroup of phase `c % phases` for the CTA's
    /// k-block number `c` (the producer's order).
    #[test]
    fn phases_take_every_kblock_once_in_the_producers_order() {
        for slab in (8..=GEMM_STREAM_MAX_SLAB).step_by(8) {
            let l = StreamLayout::new(slab).unwrap();
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
        assert_eq!(core::mem::size_of::<GemmStreamParams>(), 2 * 128 + 56);
        let mut names = std::vec::Vec::new();
        for p in GemmPrecision::ALL {
            for o in [GemmOut::Bf16, GemmOut::F32] {
                names.push(gemm_stream_kernel(p, o));
            }
        }
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 4);
    }
}
