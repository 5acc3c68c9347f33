//! The typed contract between the Hopper `wgmma` GEMM kernels and the host:
//! the precision modes, the CTA tile shapes, the kernel names, the launch
//! geometry and the one parameter struct every kernel of the family takes.
//!
//! Compiled for the host (on stable, as plain data) and for the GPU, so the
//! launch code and the kernels read the same definitions: a tile the host
//! plans is the tile the kernel computes, and the parameter block the host
//! fills is the one the kernel reads, field for field.

use crate::tensor_map::TensorMap;

/// How often the tensor cores' partial sums are promoted into f32
/// accumulators (the contract's two precision modes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[repr(u32)]
pub enum GemmPrecision {
    /// Once per 128-wide k-block, as DeepGEMM and cuBLASLt do: four chained
    /// k32 `wgmma`s, then one FMA pass with the block's scales. Tolerance
    /// `max|C - C_ref| / max|C_ref| < 5e-3` (f32 output).
    #[default]
    Fast = 0,
    /// After every k32 `wgmma` (the tensor cores keep only about 13-14
    /// mantissa bits of a running sum). Tolerance `< 1e-3`; four FMA passes
    /// per k-block instead of one.
    Precise = 1,
}

impl GemmPrecision {
    /// Both modes, for iteration in tests and benchmarks.
    pub const ALL: [GemmPrecision; 2] = [GemmPrecision::Fast, GemmPrecision::Precise];

    /// The mode's name as users write it.
    #[inline]
    pub const fn name(self) -> &'static str {
        match self {
            GemmPrecision::Fast => "fast",
            GemmPrecision::Precise => "precise",
        }
    }

    /// The contract's tolerance for `max|C - C_ref| / max|C_ref|` (f32 C).
    #[inline]
    pub const fn tolerance(self) -> f64 {
        match self {
            GemmPrecision::Fast => 5e-3,
            GemmPrecision::Precise => 1e-3,
        }
    }
}

/// A CTA tile of the `wgmma` GEMM: `rows x cols` of C, computed by two
/// consumer warpgroups. With 256 rows each warpgroup owns 128 rows as two
/// 64-row pieces, with 128 rows it owns 64 rows, and all the columns; with
/// 64 rows both own the same 64 rows and half of the columns each. Either
/// way a warpgroup issues `m64n{wg_cols}k32` `wgmma`s.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum GemmTile {
    /// 128 x 128: the square tile, and the only one of `Precise` (whose
    /// two partial register sets leave no room for wider fragments).
    M128N128 = 0,
    /// 128 x 160: fewer, longer tiles where 128 leaves a ragged last wave.
    M128N160 = 1,
    /// 128 x 192: the widest fragment that fits the consumers' 232 registers.
    M128N192 = 2,
    /// 64 x 256: two warpgroups side by side, for M up to 64 per tile.
    M64N256 = 3,
    /// 64 x 128: small problems; its warpgroups, like 64 x 64's, take
    /// alternate k-blocks with the whole fragment each.
    M64N128 = 4,
    /// 256 x 128: the most reuse of each operand byte (A and B boxes of 384
    /// rows per 32768 products), and a tile long enough to amortise its
    /// epilogue over short K; four stages (48 KB each).
    M256N128 = 5,
    /// 64 x 64: small problems (M = 64-128) that 64 x 128 tiles would
    /// leave to a K split; twice the tiles, half the split. Both
    /// warpgroups compute the whole 64 x 64 fragment, each over alternate
    /// k-blocks ([`GemmTile::alternates`]).
    M64N64 = 6,
    /// 64 x 32: M = 33-64 problems whose 64 x 64 tiles would split K (64 x
    /// 4096: 128 tiles over all of K instead of 64 split in two), as
    /// DeepGEMM runs them; alternating warpgroups like 64 x 64's.
    M64N32 = 7,
}

impl GemmTile {
    /// Every tile, in the order the host's planner considers them.
    pub const ALL: [GemmTile; 8] = [
        GemmTile::M256N128,
        GemmTile::M128N128,
        GemmTile::M128N160,
        GemmTile::M128N192,
        GemmTile::M64N256,
        GemmTile::M64N128,
        GemmTile::M64N64,
        GemmTile::M64N32,
    ];

    /// Rows of C per tile (64 per consumer warpgroup, or 64 shared).
    #[inline]
    pub const fn rows(self) -> u32 {
        match self {
            GemmTile::M256N128 => 256,
            GemmTile::M128N128 | GemmTile::M128N160 | GemmTile::M128N192 => 128,
            GemmTile::M64N256 | GemmTile::M64N128 | GemmTile::M64N64 | GemmTile::M64N32 => 64,
        }
    }

    /// Columns of C per tile (rows of B per stage).
    #[inline]
    pub const fn cols(self) -> u32 {
        match self {
            GemmTile::M128N128 | GemmTile::M64N128 | GemmTile::M256N128 => 128,
            GemmTile::M128N160 => 160,
            GemmTile::M128N192 => 192,
            GemmTile::M64N256 => 256,
            GemmTile::M64N64 => 64,
            GemmTile::M64N32 => 32,
        }
    }

    /// Columns of one warpgroup's fragment (the `wgmma`'s N).
    #[inline]
    pub const fn wg_cols(self) -> u32 {
        if self.rows() >= 128 || self.alternates() {
            self.cols()
        } else {
            self.cols() / 2
        }
    }

    /// Stages of the TMA pipeline: as many as fit the shared memory a CTA
    /// can have (227 KB on Hopper), at most 5 (more measured no faster, at
    /// decode sizes too: 8 stages of the 64-row tiles moved M = 1-16 GEMMs
    /// by -7% to +5% on H200), except the 64-row tiles that run M = 64-128
    /// over all of K, whose stages are their loads in flight: 64 x 128
    /// takes 8 (7 fit beside its 32 KB exchange buffer), 64 x 64 12 and 64
    /// x 32 16. The narrower the tile, the longer K it runs
    /// per CTA and the more it streams: with 5 stages (60-80 KB) each SM
    /// read its A and B at about 40 GB/s (H200, session 21: 64 x 7168 x
    /// 16384 on 64 x 64 tiles 40.1 us with 5 stages, 33.1 with 12; 128 x
    /// 7168 x 16384 on 64 x 128 43.6 us with 5, 40.9 with 8).
    #[inline]
    pub const fn stages(self) -> u32 {
        let fit = (GEMM_SMEM_LIMIT - 1024 - self.epi_bytes() - self.xchg_bytes())
            / (self.stage_bytes() + self.scale_slot_bytes() + 16);
        let most = match self {
            GemmTile::M64N64 => 12,
            GemmTile::M64N32 => 16,
            GemmTile::M64N128 => 8,
            _ => 5,
        };
        if fit < most {
            fit
        } else {
            most
        }
    }

    /// Bytes of one pipeline stage: one k-block (128 bytes of K) of A's
    /// `rows` and B's `cols` rows.
    #[inline]
    pub const fn stage_bytes(self) -> u32 {
        (self.rows() + self.cols()) * GEMM_KBLOCK
    }

    /// Shared memory where an alternating tile's second warpgroup leaves its
    /// sums for the first ([`gemm_xchg_bytes`]).
    #[inline]
    pub const fn xchg_bytes(self) -> u32 {
        gemm_xchg_bytes(self.rows(), self.cols())
    }

    /// Whether the tile's two warpgroups split its k-blocks between them
    /// (even and odd ones of the CTA's stream) instead of its columns:
    /// [`gemm_alternates`].
    #[inline]
    pub const fn alternates(self) -> bool {
        gemm_alternates(self.rows(), self.cols())
    }

    /// Bytes of one stage's scales: B's of the tile's (at most) two
    /// 128-column blocks, padded to 16 bytes, then A's of the tile's `rows`
    /// rows, all of the stage's k-block. The producer warpgroup's second
    /// warp copies them from global memory with the stage, so the consumers
    /// read their scales from shared memory, as they read the operands.
    #[inline]
    pub const fn scale_slot_bytes(self) -> u32 {
        gemm_scale_slot_bytes(self.rows())
    }

    /// Shared memory of the bf16 epilogue through TMA stores: the whole
    /// tile (every consumer warpgroup's fragments, in boxes of 64 rows x
    /// [`GEMM_EPI_COLS`] columns of [`GEMM_EPI_BUFFER`] bytes), so no store
    /// waits for another inside a tile. Only the 256 x 128 tile has it (64
    /// KB, which leaves it 3 stages, DeepGEMM's count: measured as fast as 4
    /// on the H200, bench/NOTES-gemm.md, session 11); the others store from
    /// registers.
    #[inline]
    pub const fn epi_bytes(self) -> u32 {
        gemm_epi_bytes(self.rows(), self.cols())
    }

    /// Dynamic shared memory of a CTA: 1024 bytes of alignment slack (the
    /// 128-byte swizzle needs 1024-byte-aligned stages), the stages, the
    /// epilogue's buffer ([`GemmTile::epi_bytes`]), the exchange buffer
    /// ([`GemmTile::xchg_bytes`]), the stages' scale slots, and a `full` and
    /// an `empty` barrier (8 bytes each) per stage.
    #[inline]
    pub const fn smem_bytes(self) -> u32 {
        1024 + self.epi_bytes()
            + self.xchg_bytes()
            + self.stages() * (self.stage_bytes() + self.scale_slot_bytes() + 16)
    }

    /// The tile's name as the benchmark and the kernel names write it.
    #[inline]
    pub const fn name(self) -> &'static str {
        match self {
            GemmTile::M128N128 => "128x128",
            GemmTile::M128N160 => "128x160",
            GemmTile::M128N192 => "128x192",
            GemmTile::M64N256 => "64x256",
            GemmTile::M64N128 => "64x128",
            GemmTile::M256N128 => "256x128",
            GemmTile::M64N64 => "64x64",
            GemmTile::M64N32 => "64x32",
        }
    }
}

/// Byte offset of A's row scales in a stage's scale slot: B's two block
/// scales come first, padded to 16 bytes.
pub const GEMM_SCALE_SLOT_A: u32 = 16;

/// Bytes of a stage's scale slot for a tile of `rows` rows (B's two block
/// scales, padded, then A's `rows`): one definition for the kernel's layout
/// and the host's shared-memory size ([`GemmTile::scale_slot_bytes`]).
#[inline]
pub const fn gemm_scale_slot_bytes(rows: u32) -> u32 {
    GEMM_SCALE_SLOT_A + 4 * rows
}

/// Columns of C per TMA store of the epilogue: a box of 64 rows (one
/// warpgroup's 64-row piece) x 32 bf16 columns, 64 bytes a row (the
/// 64-byte swizzle).
pub const GEMM_EPI_COLS: u32 = 32;

/// [`GemmTile::epi_bytes`] of a `rows x cols` tile: one definition for
/// the kernels' shared-memory layout and the host's size.
#[inline]
pub const fn gemm_epi_bytes(rows: u32, cols: u32) -> u32 {
    if rows == 256 {
        rows * cols * 2
    } else {
        0
    }
}

/// Whether a `rows x cols` tile's two consumer warpgroups take alternate
/// k-blocks of the CTA's stream (each the whole 64 x `cols` fragment, the
/// second's sums added to the first's in shared memory at the end of a
/// tile) instead of half the columns each: the 64-row tiles of at most
/// 128 columns (64 x 32, 64 x 64 and 64 x 128), which run small-M problems over
/// long K ranges. Split by columns, each of the 64 x 64 tile's
/// warpgroups waited for every stage, read A's whole box and promoted for
/// 32 columns, and the kernel executed twice DeepGEMM's instructions for
/// the same 128 tiles of 128 x 4096 x 7168 (ncu, H200, session 21).
#[inline]
pub const fn gemm_alternates(rows: u32, cols: u32) -> bool {
    rows == 64 && cols <= 128
}

/// How many of a tile's `count` k-blocks warpgroup `wg` (0 or 1) of an
/// alternating tile ([`gemm_alternates`]) takes, where the tile's first
/// k-block has index `parity` (0 or 1) modulo 2 in the CTA's stream:
/// warpgroup `w` takes the stream's k-blocks whose index is `w` modulo 2,
/// the first of the tile's at offset `(w + parity) % 2`, then every other
/// one. The two shares always add up to `count`.
#[inline]
pub const fn gemm_alternate_share(wg: u32, parity: u32, count: u32) -> u32 {
    let skip = (wg + parity) % 2;
    if count > skip {
        (count - skip).div_ceil(2)
    } else {
        0
    }
}

/// Bytes of the exchange buffer of a `rows x cols` tile: the f32 fragment
/// of one warpgroup where the tile alternates ([`gemm_alternates`]), else 0.
#[inline]
pub const fn gemm_xchg_bytes(rows: u32, cols: u32) -> u32 {
    if gemm_alternates(rows, cols) {
        rows * cols * 4
    } else {
        0
    }
}

/// Bytes of one epilogue box: 64 rows x [`GEMM_EPI_COLS`] bf16.
pub const GEMM_EPI_BUFFER: u32 = 64 * GEMM_EPI_COLS * 2;

/// The k-block: one scale block of K, 128 fp8 bytes, which is also one
/// 128-byte swizzle row of a stage.
pub const GEMM_KBLOCK: u32 = 128;

/// Dynamic shared memory a Hopper CTA can opt in to (227 KB).
pub const GEMM_SMEM_LIMIT: u32 = 232_448;

/// Threads of a CTA: two consumer warpgroups and one producer warpgroup.
/// The producer gives its registers to the consumers with `setmaxnreg`
/// (down to [`GEMM_PRODUCER_REGISTERS`], up to [`GEMM_CONSUMER_REGISTERS`]),
/// which works per warpgroup, so the producer must be a whole one.
pub const GEMM_THREADS: u32 = 384;

/// Registers a producer thread keeps after `setmaxnreg.dec`.
pub const GEMM_PRODUCER_REGISTERS: u32 = 40;

/// Registers a consumer thread gets after `setmaxnreg.inc`:
/// `(65536 - 128 * 40) / 256`, rounded down to a multiple of 8.
pub const GEMM_CONSUMER_REGISTERS: u32 = 232;

/// M-tiles per group of the persistent tile order: CTAs working at one time
/// take consecutive tiles, which walk down a band of this many M-tiles
/// before moving to the next N-tile, so the A rows of the band and the few
/// B tiles in use stay in L2.
pub const GEMM_GROUP_M_TILES: u32 = 16;

/// The C element type of a kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum GemmOut {
    /// bf16, rounded to nearest even.
    Bf16 = 0,
    /// f32.
    F32 = 1,
}

impl GemmOut {
    /// Bytes per element of C.
    #[inline]
    pub const fn bytes(self) -> u64 {
        match self {
            GemmOut::Bf16 => 2,
            GemmOut::F32 => 4,
        }
    }
}

/// The kernels of the family: every (precision, tile, output) the host may
/// launch, by name. `None` where the combination does not exist (`Precise`
/// has the 128 x 128 tile only).
#[inline]
pub const fn gemm_wgmma_kernel(precision: GemmPrecision, tile: GemmTile, out: GemmOut) -> Option<&'static str> {
    use GemmOut::*;
    use GemmPrecision::*;
    use GemmTile::*;
    Some(match (precision, tile, out) {
        (Fast, M128N128, Bf16) => "gemm_wgmma_fast_128x128_bf16",
        (Fast, M128N128, F32) => "gemm_wgmma_fast_128x128_f32",
        (Fast, M128N160, Bf16) => "gemm_wgmma_fast_128x160_bf16",
        (Fast, M128N160, F32) => "gemm_wgmma_fast_128x160_f32",
        (Fast, M128N192, Bf16) => "gemm_wgmma_fast_128x192_bf16",
        (Fast, M128N192, F32) => "gemm_wgmma_fast_128x192_f32",
        (Fast, M64N256, Bf16) => "gemm_wgmma_fast_64x256_bf16",
        (Fast, M64N256, F32) => "gemm_wgmma_fast_64x256_f32",
        (Fast, M64N128, Bf16) => "gemm_wgmma_fast_64x128_bf16",
        (Fast, M64N128, F32) => "gemm_wgmma_fast_64x128_f32",
        (Fast, M256N128, Bf16) => "gemm_wgmma_fast_256x128_bf16",
        (Fast, M256N128, F32) => "gemm_wgmma_fast_256x128_f32",
        (Fast, M64N64, Bf16) => "gemm_wgmma_fast_64x64_bf16",
        (Fast, M64N64, F32) => "gemm_wgmma_fast_64x64_f32",
        (Fast, M64N32, Bf16) => "gemm_wgmma_fast_64x32_bf16",
        (Fast, M64N32, F32) => "gemm_wgmma_fast_64x32_f32",
        (Precise, M128N128, Bf16) => "gemm_wgmma_precise_128x128_bf16",
        (Precise, M128N128, F32) => "gemm_wgmma_precise_128x128_f32",
        (Precise, _, _) => return None,
    })
}

/// CTAs of a multicast cluster: two CTAs on horizontally adjacent tiles
/// (the same rows of A, as DeepGEMM pairs them) share A's box, which the
/// rank-0 CTA loads once for both with a multicast TMA copy: a third less
/// L2-to-SM traffic for the 256 x 128 tile (32 KB instead of 48 KB per CTA
/// and k-block), 1-10% faster on the H200 than the single-CTA kernel.
pub const GEMM_CLUSTER: u32 = 2;

/// The `Fast` kernel for `tile` in 2-CTA clusters sharing A
/// ([`GEMM_CLUSTER`]), where there is one (the 256 x 128, 128 x 128 and
/// 128 x 192 tiles). The host launches it with cluster dimension 2, no
/// split, an even number of tile columns and an even grid.
#[inline]
pub const fn gemm_wgmma_multicast_kernel(tile: GemmTile, out: GemmOut) -> Option<&'static str> {
    use GemmOut::*;
    use GemmTile::*;
    Some(match (tile, out) {
        (M256N128, Bf16) => "gemm_wgmma_fast_256x128_mc2_bf16",
        (M256N128, F32) => "gemm_wgmma_fast_256x128_mc2_f32",
        (M128N128, Bf16) => "gemm_wgmma_fast_128x128_mc2_bf16",
        (M128N128, F32) => "gemm_wgmma_fast_128x128_mc2_f32",
        (M128N192, Bf16) => "gemm_wgmma_fast_128x192_mc2_bf16",
        (M128N192, F32) => "gemm_wgmma_fast_128x192_mc2_f32",
        _ => return None,
    })
}

/// The split-K reduction kernel for `out`.
#[inline]
pub const fn gemm_splitk_reduce_kernel(out: GemmOut) -> &'static str {
    match out {
        GemmOut::Bf16 => "gemm_splitk_reduce_bf16",
        GemmOut::F32 => "gemm_splitk_reduce_f32",
    }
}

/// Whether the tile of `rows` rows copies A's scales of a k-block with one
/// bulk copy where [`GemmWgmmaParams::a_scales_bulk`] allows it: the 128-
/// and 256-row tiles (on the H200 the 64-row tiles, whose stages are short
/// and many, measured 7-27% slower with it: bench/NOTES-gemm.md, session
/// 26). One rule for the kernel (which compiles the bulk path into those
/// tiles only) and the host (which sets the flag for them only).
#[inline]
pub const fn gemm_bulk_scales_tile(rows: u32) -> bool {
    rows >= 128
}

/// The parameter block of every `wgmma` GEMM kernel, passed by value.
///
/// The host fills it after checking every buffer; the kernel trusts it.
/// Addresses are device addresses as `u64`. The tensor maps come first, at
/// 64-byte offsets of a 64-byte-aligned parameter ([`crate::tensor_map`]).
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub struct GemmWgmmaParams {
    /// Map of A `[m, k]` u8, box `rows x 128`, 128-byte swizzle.
    pub map_a: TensorMap,
    /// Map of B `[n, k]` u8, box `cols x 128`, likewise.
    pub map_b: TensorMap,
    /// Map of a bf16 C `[m, n]`, box [`GEMM_EPI_COLS`] columns x 64 rows,
    /// 64-byte swizzle, for the epilogue's TMA stores, when `tma_store_c`
    /// is set; otherwise [`TensorMap::NONE`].
    pub map_c: TensorMap,
    /// A's scales, `(row, k-block)` at `row * a_scale_row_stride + kb *
    /// a_scale_kb_stride` (any of the contract's layouts).
    pub a_scales: u64,
    /// B's scales `[ceil(n / 128), ceil(k / 128)]`, row-major.
    pub b_scales: u64,
    /// C `[m, n]` (or, split-K, the f32 workspace of `splits` partials
    /// `gemm_split_stride(m, n)` elements apart).
    pub c: u64,
    /// Elements between A scales of consecutive rows.
    pub a_scale_row_stride: u64,
    /// Elements between A scales of consecutive k-blocks.
    pub a_scale_kb_stride: u64,
    /// Rows of A and C.
    pub m: u32,
    /// Rows of B, columns of C.
    pub n: u32,
    /// k-blocks: `ceil(k / 128)`.
    pub k_blocks: u32,
    /// Parts K is split into (1: none). `splits * k_blocks < 2^31`.
    pub splits: u32,
    /// 1: the epilogue stores C through `map_c` (tiles with
    /// [`GemmTile::epi_bytes`], bf16 C, no split, N a multiple of 8, a
    /// 16-byte-aligned C); 0: the kernel stores C from registers.
    pub tma_store_c: u32,
    /// 1: A's scales of a k-block are one contiguous, 16-byte-aligned run
    /// (`a_scale_row_stride == 1`, `a_scale_kb_stride` a multiple of 4, the
    /// base 16-byte aligned: the column-major layouts at M % 4 == 0 and the
    /// TMA-aligned one always), so the scale warp of the tiles
    /// [`gemm_bulk_scales_tile`] names copies a tile's with one bulk copy
    /// (rows `m0 .. min(m0 + rows, a_scale_kb_stride)`) instead of one
    /// 4-byte `cp.async` per row; 0: per row. The other tiles copy per row
    /// either way.
    pub a_scales_bulk: u32,
}

/// Elements between two splits' partial sums in the split-K workspace:
/// `m * n` rounded up to a multiple of 4, so that every split starts
/// 16-byte aligned for the reduction's vector loads.
#[inline]
pub const fn gemm_split_stride(m: u32, n: u32) -> u64 {
    (m as u64 * n as u64 + 3) & !3
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    #[test]
    fn every_tile_fits_and_is_consistent() {
        for t in GemmTile::ALL {
            assert!(t.smem_bytes() <= GEMM_SMEM_LIMIT, "{}", t.name());
            assert!(t.stages() >= 3, "{}: {} stages", t.name(), t.stages());
            assert!(t.epi_bytes() % 1024 == 0);
            // Fragments are whole 8-column groups of a `wgmma` N (at most 192).
            assert!(t.wg_cols() % 8 == 0 && t.wg_cols() <= 192, "{}", t.name());
            // TMA boxes are at most 256 rows.
            assert!(t.rows() <= 256 && t.cols() <= 256);
            // Stages and the B box start 1024-byte aligned.
            assert_eq!(t.stage_bytes() % 1024, 0);
            assert_eq!(t.rows() * GEMM_KBLOCK % 1024, 0);
            // Scale slots keep the barriers after them 8-byte aligned.
            assert_eq!(t.scale_slot_bytes() % 16, 0);
            // A tile's columns (from a multiple of `cols`) cross at most two
            // 128-column blocks of B: the scale slot holds two B scales.
            for j in 0..64 {
                let n0 = j * t.cols();
                assert!((n0 % GEMM_KBLOCK + t.cols() - 1) / GEMM_KBLOCK < 2, "{} at {n0}", t.name());
            }
        }
        // The scale slots cost no stage: the 256-row tile has three beside
        // its 64 KB epilogue buffer, the 64 x 128, 64 x 64 and 64 x 32 tiles
        // 7, 12 and 16, the rest five.
        for t in GemmTile::ALL {
            let want = match t {
                GemmTile::M256N128 => 3,
                GemmTile::M64N64 => 12,
                GemmTile::M64N32 => 16,
                GemmTile::M64N128 => 7,
                _ => 5,
            };
            assert_eq!(t.stages(), want, "{}", t.name());
        }
    }

    #[test]
    fn alternating_warpgroups_take_every_k_block_once() {
        // A CTA's stream of tiles with varied k-block counts: each global
        // k-block index goes to the warpgroup of its parity, and the shares
        // cover the tile exactly.
        let mut parity = 0;
        let mut index = 0u32;
        for count in [1u32, 2, 3, 4, 5, 7, 8, 1, 1, 16, 33, 2] {
            let (w0, w1) = (gemm_alternate_share(0, parity, count), gemm_alternate_share(1, parity, count));
            assert_eq!(w0 + w1, count, "count {count} parity {parity}");
            let even = (index..index + count).filter(|i| i % 2 == 0).count() as u32;
            assert_eq!((w0, w1), (even, count - even), "count {count} from {index}");
            index += count;
            parity ^= count % 2;
            assert_eq!(parity, index % 2);
        }
    }

    #[test]
    fn kernel_names_are_unique_and_precise_is_128x128_only() {
        let mut names = std::vec::Vec::new();
        for p in GemmPrecision::ALL {
            for t in GemmTile::ALL {
                for o in [GemmOut::Bf16, GemmOut::F32] {
                    match gemm_wgmma_kernel(p, t, o) {
                        Some(name) => {
                            assert!(name.contains(t.name()) && name.contains(p.name()), "{name}");
                            names.push(name);
                        }
                        None => assert!(p == GemmPrecision::Precise && t != GemmTile::M128N128),
                    }
                }
            }
        }
        let count = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), count);
        assert_eq!(count, 2 * GemmTile::ALL.len() + 2);
    }
}
