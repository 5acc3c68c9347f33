//! The typed contract between the streaming decode GEMM
//! (`kernels::gemm_stream`, sm_90a) and the host: its parameter block, its
//! kernel names and the geometry both sides derive from one number, the
//! slab (rows of B a CTA streams per unit of work).
//!
//! Compiled for the host and for the GPU, as [`crate::wgmma_contract`] is:
//! the shared-memory layout the host sizes is the one the kernel indexes.

use crate::tensor_map::TensorMap;
use crate::wgmma_contract::{GemmOut, GemmPrecision, GEMM_KBLOCK, GEMM_SMEM_LIMIT};

/// Rows of A (and C) the kernels take at most: the widest [`StreamRows`].
pub const GEMM_STREAM_MAX_M: u32 = 32;

/// The rows of A (and C) a streaming kernel holds: the `N` of its
/// `m64nNk32` `wgmma`s, on whose `N` side A's rows sit (rows past M read as
/// zero). One kernel per value; the host takes the narrowest that holds M.
///
/// A thread holds `N / 2` accumulators per 64-row piece of the slab, and as
/// many partials, so the wider kernel takes fewer pieces: `pieces * N <= 64`
/// keeps it at the registers of the 16-row one with 4 pieces. (A 64-row
/// width measured slower than the `wgmma` tiles at M = 64: its 64-row
/// pieces of 32-row slabs do twice the tensor work of a 64 x 32 tile;
/// bench/NOTES-gemm.md, session 25.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamRows {
    /// M <= 16: `m64n16k32`, slabs of up to 256 rows of B.
    R16,
    /// M <= 32: `m64n32k32`, slabs of up to 128 rows.
    R32,
}

impl StreamRows {
    /// Every kernel width, narrowest first.
    pub const ALL: [StreamRows; 2] = [StreamRows::R16, StreamRows::R32];

    /// The narrowest width that holds `m` rows, `None` for `m` of 0 or over
    /// [`GEMM_STREAM_MAX_M`].
    #[inline]
    pub const fn for_m(m: u32) -> Option<Self> {
        match m {
            1..=16 => Some(Self::R16),
            17..=32 => Some(Self::R32),
            _ => None,
        }
    }

    /// Rows of A the kernel holds (16 or 32).
    #[inline]
    pub const fn rows(self) -> u32 {
        match self {
            Self::R16 => 16,
            Self::R32 => 32,
        }
    }

    /// The position of this width in [`StreamRows::ALL`].
    #[inline]
    pub const fn index(self) -> usize {
        match self {
            Self::R16 => 0,
            Self::R32 => 1,
        }
    }

    /// Pieces of 64 rows a slab has at most: `64 / rows`.
    #[inline]
    pub const fn max_pieces(self) -> u32 {
        64 / self.rows()
    }

    /// Rows of B in a slab, at most.
    #[inline]
    pub const fn max_slab(self) -> u32 {
        GEMM_STREAM_PIECE_ROWS * self.max_pieces()
    }

    /// Bytes of A's box in a stage: `rows` rows of one k-block.
    #[inline]
    pub const fn a_bytes(self) -> u32 {
        self.rows() * GEMM_KBLOCK
    }

    /// Bytes one consumer thread leaves per piece for the phases' sum: its
    /// `rows / 2` accumulators.
    #[inline]
    pub const fn piece_partial_bytes(self) -> u32 {
        self.rows() / 2 * 4
    }

    /// Offset of B's scales in a stage's scale slot: after A's `rows`.
    #[inline]
    pub const fn scale_slot_b(self) -> u32 {
        4 * self.rows()
    }

    /// Bytes of a stage's scale slot: A's row scales of the k-block, then
    /// B's scales of the (at most 3) 128-row blocks the slab's pieces touch,
    /// 4 slots, in whole 128-byte lines so the slots stay apart.
    #[inline]
    pub const fn scale_slot_bytes(self) -> u32 {
        (self.scale_slot_b() + 16).next_multiple_of(128)
    }
}

/// Consumer warpgroups of a CTA (the producer is one more warp): they take
/// the CTA's k-blocks in turn.
pub const GEMM_STREAM_PHASES: u32 = 2;

/// Consumer warps of a CTA.
pub const GEMM_STREAM_CONSUMER_WARPS: u32 = 4 * GEMM_STREAM_PHASES;

/// Producer warps of a CTA: one issues the TMA copies, one the scales'.
pub const GEMM_STREAM_PRODUCER_WARPS: u32 = 2;

/// Rows of B one `wgmma` piece covers (its `m64`).
pub const GEMM_STREAM_PIECE_ROWS: u32 = 64;

// A slab is one TMA box of B, and a box has at most 256 rows.
const _: () = assert!(StreamRows::R16.max_slab() <= 256 && StreamRows::R32.max_slab() <= 256);

/// Bytes a consumer thread of a phase leaves for the phases' sum, at most:
/// `pieces * rows / 2` accumulators, 32 at either width.
pub const GEMM_STREAM_THREAD_PARTIAL_BYTES: u32 = 32 * 4;

/// Bytes of the buffer in which the phases of a slab meet: every phase but
/// the first leaves its accumulators there, per thread of its warpgroup.
pub const GEMM_STREAM_REDUCE_BYTES: u32 = (GEMM_STREAM_PHASES - 1) * 128 * GEMM_STREAM_THREAD_PARTIAL_BYTES;

/// Most stages of the ring (a power of two).
pub const GEMM_STREAM_MAX_STAGES: u32 = 64;

/// How a CTA of the streaming kernel of `rows` is laid out for a slab of
/// `slab` rows of B (a multiple of 8, at most `rows.max_slab()`).
///
/// The slab is `pieces = ceil(slab / 64)` pieces of 64 rows, each the `M`
/// side of an `m64nNk32` `wgmma` (B's rows as the `A` operand, A's `N =
/// rows` rows as the `B` operand: C transposed). A stage holds the slab's
/// box of B at its start and A's box after it, and is at least `64 *
/// pieces` rows of
/// 128 bytes long, so the last piece's rows past the slab read bytes of the
/// same stage (A's box or padding): their results are never stored. The
/// [`GEMM_STREAM_PHASES`] consumer warpgroups take the CTA's k-blocks in
/// turn (k-block `i` of the CTA's stream to phase `i % phases`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamLayout {
    /// Rows of A the kernel holds.
    pub rows: StreamRows,
    /// Rows of B per slab.
    pub slab: u32,
    /// Pieces of 64 rows per slab (1 to `rows.max_pieces()`).
    pub pieces: u32,
    /// Warpgroups taking the k-blocks in turn ([`GEMM_STREAM_PHASES`]).
    pub phases: u32,
    /// log2 of the stages of the ring.
    pub stages_log2: u32,
}

impl StreamLayout {
    /// The layout for `slab` rows of B and `rows` of A, `None` unless `slab`
    /// is a multiple of 8 in `8..=rows.max_slab()`.
    #[inline]
    pub const fn new(slab: u32, rows: StreamRows) -> Option<Self> {
        if slab == 0 || !slab.is_multiple_of(8) || slab > rows.max_slab() {
            return None;
        }
        let pieces = slab.div_ceil(GEMM_STREAM_PIECE_ROWS);
        let mut l = Self {
            rows,
            slab,
            pieces,
            phases: GEMM_STREAM_PHASES,
            stages_log2: GEMM_STREAM_MAX_STAGES.trailing_zeros(),
        };
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
        self.a_offset() + self.rows.a_bytes()
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
        1024 + self.stages() * (self.stage_bytes() + self.rows.scale_slot_bytes() + 16) + GEMM_STREAM_REDUCE_BYTES
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
    /// Map of A `[m, k]` u8, box `rows` x 128 (the kernel's
    /// [`StreamRows`]), 128-byte swizzle.
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
    /// Rows of A and C, `1..=rows` (the kernel's [`StreamRows`]).
    pub m: u32,
    /// Rows of B, columns of C.
    pub n: u32,
    /// `ceil(k / 128)`, at least 1.
    pub k_blocks: u32,
    /// Rows of B per slab ([`StreamLayout::new`] accepts it with the
    /// kernel's [`StreamRows`]).
    pub slab: u32,
}

/// The streaming kernel for `precision`, `out` and `rows` of A.
#[inline]
pub const fn gemm_stream_kernel(precision: GemmPrecision, out: GemmOut, rows: StreamRows) -> &'static str {
    use GemmOut::{Bf16, F32};
    use GemmPrecision::{Fast, Precise};
    use StreamRows::{R16, R32};
    match (precision, out, rows) {
        (Fast, Bf16, R16) => "gemm_stream_fast_bf16_a16",
        (Fast, Bf16, R32) => "gemm_stream_fast_bf16_a32",
        (Fast, F32, R16) => "gemm_stream_fast_f32_a16",
        (Fast, F32, R32) => "gemm_stream_fast_f32_a32",
        (Precise, Bf16, R16) => "gemm_stream_precise_bf16_a16",
        (Precise, Bf16, R32) => "gemm_stream_precise_bf16_a32",
        (Precise, F32, R16) => "gemm_stream_precise_f32_a16",
        (Precise, F32, R32) => "gemm_stream_precise_f32_a32",
    }
}

/// Every streaming kernel's name.
pub fn gemm_stream_kernels() -> impl Iterator<Item = &'static str> {
    GemmPrecision::ALL.into_iter().flat_map(|p| {
        [GemmOut::Bf16, GemmOut::F32]
            .into_iter()
            .flat_map(move |o| StreamRows::ALL.into_iter().map(move |r| gemm_stream_kernel(p, o, r)))
    })
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    fn layouts() -> impl Iterator<Item = StreamLayout> {
        StreamRows::ALL
            .into_iter()
            .flat_map(|r| (8..=r.max_slab()).step_by(8).map(move |s| StreamLayout::new(s, r).unwrap()))
    }

    #[test]
    fn every_slab_fits_and_its_pieces_stay_in_their_stage() {
        for l in layouts() {
            let (slab, r) = (l.slab, l.rows);
            assert!(l.smem_bytes() <= GEMM_SMEM_LIMIT, "{slab} {r:?}");
            assert!(l.stages() >= 4, "{slab} {r:?}: {} stages", l.stages());
            assert_eq!(l.pieces, slab.div_ceil(64), "{slab}");
            assert!((1..=r.max_pieces()).contains(&l.pieces));
            // A thread's accumulators: at most the 16-row kernel's 4 pieces of 8.
            assert!(l.pieces * r.rows() / 2 <= 32, "{slab} {r:?}");
            // The wgmma window of every piece, and both boxes, lie inside the stage.
            assert!(l.pieces * 64 * 128 <= l.stage_bytes(), "{slab}");
            assert!(l.a_offset() + r.a_bytes() <= l.stage_bytes(), "{slab}");
            assert!(l.a_offset() >= slab * 128, "{slab}: A overlaps B");
            // Boxes and pieces stay 1024-byte aligned (the swizzle's period).
            assert_eq!(l.stage_bytes() % 1024, 0);
            assert_eq!(l.a_offset() % 1024, 0);
            // The phases' sums fit their buffer.
            assert!((l.phases - 1) * 128 * l.pieces * r.piece_partial_bytes() <= GEMM_STREAM_REDUCE_BYTES);
            assert!(l.phases.is_power_of_two());
            // A's scales and B's 3 blocks (4 slots) fit the scale slot.
            assert!(r.scale_slot_b() + 16 <= r.scale_slot_bytes());
            assert_eq!(r.scale_slot_bytes() % 128, 0);
        }
        let l = StreamLayout::new(32, StreamRows::R16).unwrap();
        assert_eq!((l.pieces, l.stage_bytes(), l.stages()), (1, 8192, 16));
        let l = StreamLayout::new(256, StreamRows::R16).unwrap();
        assert_eq!((l.pieces, l.stage_bytes(), l.stages()), (4, 34816, 4));
        let l = StreamLayout::new(32, StreamRows::R32).unwrap();
        assert_eq!((l.pieces, l.stage_bytes(), l.stages()), (1, 8192, 16));
        let l = StreamLayout::new(128, StreamRows::R32).unwrap();
        assert_eq!((l.pieces, l.stage_bytes(), l.stages()), (2, 20480, 8));
        for (bad, r) in [(0, StreamRows::R16), (4, StreamRows::R16), (12, StreamRows::R16), (264, StreamRows::R16)] {
            assert!(StreamLayout::new(bad, r).is_none(), "{bad}");
        }
        assert!(StreamLayout::new(136, StreamRows::R32).is_none());
    }

    #[test]
    fn each_m_takes_the_narrowest_kernel_that_holds_it() {
        assert_eq!(StreamRows::for_m(0), None);
        assert_eq!(StreamRows::for_m(GEMM_STREAM_MAX_M + 1), None);
        for m in 1..=GEMM_STREAM_MAX_M {
            let r = StreamRows::for_m(m).unwrap();
            assert!(m <= r.rows(), "{m}");
            assert!(StreamRows::ALL.iter().all(|w| w.rows() >= r.rows() || w.rows() < m), "{m}");
        }
        assert_eq!(StreamRows::ALL.map(StreamRows::scale_slot_bytes), [128, 256]);
        for (i, r) in StreamRows::ALL.into_iter().enumerate() {
            assert_eq!(r.index(), i);
        }
    }

    /// The consumers' walk, as the kernel does it, covers each k-block of
    /// each slab once, in the warpgroup of phase `c % phases` for the CTA's
    /// k-block number `c` (the producer's order).
    #[test]
    fn phases_take_every_kblock_once_in_the_producers_order() {
        for l in layouts() {
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
                    assert!(seen.iter().all(|&s| s == 1), "slab {}, {k_blocks} k-blocks, {slabs} slabs", l.slab);
                }
            }
        }
        // The counter may wrap.
        let l = StreamLayout::new(32, StreamRows::R16).unwrap();
        assert_eq!(l.slot(u32::MAX).0, l.stages() - 1);
        assert_eq!(l.slot(u32::MAX.wrapping_add(1)), (0, 0));
    }

    #[test]
    fn parameter_block_is_what_the_kernel_declares() {
        assert_eq!(core::mem::size_of::<GemmStreamParams>(), 2 * 128 + 56);
        let mut names: std::vec::Vec<_> = gemm_stream_kernels().collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 8);
        assert!(names.iter().all(|n| n.starts_with("gemm_stream_")));
    }
}
