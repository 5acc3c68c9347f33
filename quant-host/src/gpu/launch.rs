//! Launch geometry, computed in one place for every kernel.

use crate::error::{QuantError, Result};
use cudarc::driver::LaunchConfig;

use quant_kernels::abi::{TokenGroupKernel, TokenGroupVariant};
use quant_kernels::element::DType;
use quant_kernels::geometry::{block_quant_stage_bytes, BLOCK_QUANT_SMEM_HEADER, MAX_STAGES, TOKEN_GROUP_WIDE_CHUNKS};
use quant_kernels::stream_contract::{StreamLayout, StreamRows};
use quant_kernels::wgmma_contract::{GemmPrecision, GemmTile};
use quant_kernels::{Fp8Format, ScaleLayout};

/// Threads per block of the element-wise and per-group kernels, and the
/// block quantizer's CTA shape.
pub(crate) use quant_kernels::geometry::{
    BLOCK_QUANT_CTAS_PER_SM, BLOCK_QUANT_THREADS, BLOCK_QUANT_TILE, BLOCK_THREADS,
};

/// Elements in one chunk of a thread's work.
pub(crate) use quant_kernels::geometry::ELEMS_PER_CHUNK as ELEMS_PER_THREAD;

/// A 1-D grid of `threads` threads in blocks of [`BLOCK_THREADS`].
pub(crate) fn linear(threads: u64) -> Result<LaunchConfig> {
    linear_in(threads, BLOCK_THREADS)
}

/// A 1-D grid of `threads` threads in blocks of `block` threads.
fn linear_in(threads: u64, block: u32) -> Result<LaunchConfig> {
    let blocks = threads.div_ceil(block as u64);
    let blocks =
        u32::try_from(blocks).ok().filter(|&b| b <= i32::MAX as u32).ok_or(QuantError::TooLarge("grid size"))?;
    Ok(LaunchConfig { grid_dim: (blocks.max(1), 1, 1), block_dim: (block, 1, 1), shared_mem_bytes: 0 })
}

/// Threads one SM holds at once on the GPUs this crate targets (sm_80 to
/// sm_90: 2048).
const THREADS_PER_SM: u64 = 2048;

/// A persistent 1-D grid for `threads` threads of work in blocks of
/// `block`: at most what `multiprocessors` SMs hold at once, each thread of
/// a grid-stride kernel looping over its share (at least one block).
pub(crate) fn persistent(threads: u64, block: u32, multiprocessors: u64) -> Result<LaunchConfig> {
    let block_threads = block as u64;
    let resident = multiprocessors * (THREADS_PER_SM / block_threads) * block_threads;
    linear_in(threads.min(resident.max(block_threads)), block)
}

/// Chunks per thread of `per_token_group_quant_fp8` for a problem of
/// `groups` groups (all rows) of `group_size`: the wide kernel's 4 once its
/// threads fill the GPU twice (`resident_threads` at a time), else 2 (small
/// problems and decode sizes, where a shorter chain per thread wins).
pub(crate) fn token_group_chunks(groups: u64, group_size: u64, resident_threads: u64) -> u64 {
    let wide = TOKEN_GROUP_WIDE_CHUNKS;
    let threads = groups.saturating_mul(quant_kernels::geometry::token_group_threads(group_size, wide));
    if threads >= 2 * resident_threads {
        wide
    } else {
        quant_kernels::geometry::TOKEN_GROUP_CHUNKS
    }
}

/// What decides which token-group kernel runs: the problem and the GPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TokenGroupProblem {
    /// Input element type.
    pub(crate) input: DType,
    /// Code format (row kernels exist for both; the host takes them for e4m3fn only).
    pub(crate) format: Fp8Format,
    /// M.
    pub(crate) rows: u64,
    /// K.
    pub(crate) cols: u64,
    /// Input elements between the starts of two rows.
    pub(crate) row_stride: u64,
    /// Elements per group.
    pub(crate) group_size: u64,
    /// Layout of the scales.
    pub(crate) layout: ScaleLayout,
    /// Threads the GPU holds at once (SMs x 1024: half of what fits, the
    /// scale `token_group_chunks` was tuned with).
    pub(crate) resident_threads: u64,
}

/// The token-group kernel's tiling for `p`: the one place the host picks it.
///
/// - Narrow (2 chunks per thread) unless the wide kernels' threads fill the
///   GPU twice ([`token_group_chunks`]): decode sizes want the short chain.
/// - Then the row kernel (a warp along 1024 contiguous elements of one
///   row) where one exists (16-bit input, groups of 64 or 128), the codes
///   are e4m3fn, the scales are row-major, and a row of input is not a
///   whole number of 128-byte lines (the input pitch `row_stride * 2`):
///   there the wide kernel's 64-byte pieces, one per group, each straddle
///   one more sector than they need. Measured on an H200 (session 18, bf16,
///   M = 16384): K = 7000 90.6 us against the wide kernel's 99.2 (0.92
///   against 0.84 of the copy), K = 7048 likewise; but K = 7104 (aligned
///   input, codes 64 bytes past a line) 91.8 against 87.8, and e4m3fnuz,
///   whose encoder is the cost, 101.7 against 100.5 at K = 7000, so
///   neither takes it. Column-major scales keep the banded wide kernel:
///   the row kernel would scatter each warp's 8 scales 8 sectors apart
///   (see the row kernels' section of `kernels::token_group`).
/// - Else the wide kernel (aligned rows, such as K = 7168: unchanged).
pub(crate) fn token_group_variant(p: &TokenGroupProblem) -> TokenGroupVariant {
    let groups = p.rows.saturating_mul(p.cols.div_ceil(p.group_size.max(1)));
    if token_group_chunks(groups, p.group_size, p.resident_threads) != TOKEN_GROUP_WIDE_CHUNKS {
        return TokenGroupVariant::Narrow;
    }
    let row_kernel = TokenGroupKernel::new(p.input, p.format, p.group_size, TokenGroupVariant::Row).is_some();
    // Bytes per row of input (its pitch) and of codes, in 128-byte lines.
    let line = 128;
    let pitch = p.row_stride.saturating_mul(p.input.size() as u64);
    let misaligned = !pitch.is_multiple_of(line);
    if row_kernel && misaligned && p.format == Fp8Format::E4M3Fn && p.layout == ScaleLayout::RowMajor {
        TokenGroupVariant::Row
    } else {
        TokenGroupVariant::Wide
    }
}

/// The grid of `per_token_group_quant_fp8` for `variant`: for the narrow
/// and wide kernels `token_group_threads(group_size, chunks)` threads per
/// group, over whole bands of rows where the kernel numbers groups in
/// bands (the wide kernel with a column-major `layout`); for the row
/// kernel `token_group_row_warps(cols)` warps per row.
pub(crate) fn token_group(
    rows: u64,
    cols: u64,
    group_size: u64,
    variant: TokenGroupVariant,
    layout: u32,
) -> Result<LaunchConfig> {
    use quant_kernels::geometry::{token_group_banded, token_group_grid_rows, token_group_row_warps};
    let chunks = match variant {
        TokenGroupVariant::Narrow => quant_kernels::geometry::TOKEN_GROUP_CHUNKS,
        TokenGroupVariant::Wide | TokenGroupVariant::Row => TOKEN_GROUP_WIDE_CHUNKS,
    };
    let threads = match variant {
        TokenGroupVariant::Row => rows.checked_mul(token_group_row_warps(cols)).and_then(|w| w.checked_mul(32)),
        _ => token_group_grid_rows(rows, token_group_banded(chunks, layout))
            .and_then(|r| r.checked_mul(cols.div_ceil(group_size.max(1))))
            .and_then(|g| g.checked_mul(quant_kernels::geometry::token_group_threads(group_size, chunks))),
    }
    .ok_or(QuantError::TooLarge("thread count"))?;
    let block = match variant {
        TokenGroupVariant::Narrow => BLOCK_THREADS,
        TokenGroupVariant::Wide | TokenGroupVariant::Row => quant_kernels::geometry::TOKEN_GROUP_WIDE_BLOCK_THREADS,
    };
    linear_in(threads, block)
}

/// The grid of `per_block_quant_fp8`: persistent, `BLOCK_QUANT_THREADS`
/// threads per CTA, one CTA per resident slot (at most one per scale
/// block); each CTA strides over the scale blocks. With `stages > 0` the
/// CTA also gets that many shared-memory stages of `stage_bytes`.
pub(crate) fn block(
    block_rows: u64,
    block_cols: u64,
    multiprocessors: u64,
    stages: u64,
    stage_bytes: u64,
) -> Result<LaunchConfig> {
    let blocks = block_rows.checked_mul(block_cols).ok_or(QuantError::TooLarge("block grid"))?;
    let grid = blocks.min(multiprocessors.max(1) * BLOCK_QUANT_CTAS_PER_SM as u64) as u32;
    let smem = BLOCK_QUANT_SMEM_HEADER + stages * stage_bytes;
    Ok(LaunchConfig {
        grid_dim: (grid, 1, 1),
        block_dim: (BLOCK_QUANT_THREADS, 1, 1),
        shared_mem_bytes: u32::try_from(smem).map_err(|_| QuantError::TooLarge("block stages"))?,
    })
}

/// Stages of the asynchronous-copy pipeline of `per_block_quant_fp8` for
/// `elem_bytes`-byte input: as many as fit in `max_shared` (at most
/// `MAX_STAGES`; one stage still copies asynchronously, without looking
/// ahead), or 0 (the kernel's two-pass path over global memory) when none
/// fits or some chunk could not be copied in 16-byte pieces. `tile_blocks`:
/// every block is one tile and its columns start at multiples of 8;
/// `rows_aligned`: the base and the row pitch are multiples of 16 bytes.
pub(crate) fn block_stages(elem_bytes: u64, tile_blocks: bool, rows_aligned: bool, max_shared: u64) -> u64 {
    if !tile_blocks || !rows_aligned {
        return 0;
    }
    let fit = max_shared.saturating_sub(BLOCK_QUANT_SMEM_HEADER) / block_quant_stage_bytes(elem_bytes);
    fit.min(MAX_STAGES)
}

/// Launch geometry of the `mma.sync` GEMM kernels, from the kernel crate.
pub(crate) use quant_kernels::geometry::{
    GEMM_MMA_SMEM_BYTES as GEMM_SMEM_BYTES, GEMM_MMA_THREADS as GEMM_THREADS, GEMM_SMALL_SMEM_BYTES, GEMM_SMALL_THREADS,
};
/// CTA tile edge of the tiled GEMM.
pub(crate) const GEMM_TILE: u64 = quant_kernels::geometry::GEMM_MMA_TILE as u64;
/// Rows of B per CTA of the decode-sized kernel.
pub(crate) const GEMM_SMALL_N: usize = quant_kernels::geometry::GEMM_SMALL_N as usize;
/// Upper bound of the K splits of the decode-sized kernel.
pub(crate) const GEMM_MAX_SPLITS: u64 = 32;

/// The tiled GEMM's grid: x over M tiles, y over N tiles (y is limited to 65535).
pub(crate) fn gemm_main(m: u64, n: u64) -> Result<LaunchConfig> {
    let x = u32::try_from(m.div_ceil(GEMM_TILE)).ok().filter(|&x| x <= i32::MAX as u32);
    let y = u32::try_from(n.div_ceil(GEMM_TILE)).ok().filter(|&y| y <= 65_535);
    match (x, y) {
        (Some(x), Some(y)) => {
            Ok(LaunchConfig { grid_dim: (x, y, 1), block_dim: (GEMM_THREADS, 1, 1), shared_mem_bytes: GEMM_SMEM_BYTES })
        }
        _ => Err(QuantError::TooLarge("GEMM grid")),
    }
}

/// The decode-sized GEMM's grid and its K split count: one CTA per 8 columns
/// of C, times `splits` along K, where `splits` brings the CTA count to about
/// four per multiprocessor (enough loads in flight to stream B at full
/// bandwidth) while leaving each of a CTA's 4 warps at least 2 k-blocks.
pub(crate) fn gemm_small(n: u64, k_blocks: u64, multiprocessors: u64) -> Result<(LaunchConfig, u32)> {
    let tiles = n.div_ceil(GEMM_SMALL_N as u64);
    let x = u32::try_from(tiles).ok().filter(|&x| x <= i32::MAX as u32).ok_or(QuantError::TooLarge("GEMM grid"))?;
    let want = (4 * multiprocessors.max(1)).div_ceil(tiles);
    let splits = want.min(k_blocks.div_ceil(8)).clamp(1, GEMM_MAX_SPLITS) as u32;
    Ok((
        LaunchConfig {
            grid_dim: (x, splits, 1),
            block_dim: (GEMM_SMALL_THREADS, 1, 1),
            shared_mem_bytes: GEMM_SMALL_SMEM_BYTES,
        },
        splits,
    ))
}

/// Fewest k-blocks a split of the `wgmma` GEMM's split-K covers: below
/// that the pipeline's fill and the partial tile's store and reload cost
/// more than the parallelism brings.
pub(crate) const GEMM_WGMMA_MIN_SPLIT_KBLOCKS: u64 = 4;
/// Upper bound of the `wgmma` GEMM's K splits (keeps `splits * k_blocks`
/// far below 2^31, as the kernel's index math needs).
pub(crate) const GEMM_WGMMA_MAX_SPLITS: u64 = 32;

/// Relative time of one wave of a kernel's tiles: the tile's area over the
/// throughput per unit of area measured for that kernel, in 32nds of the
/// single-CTA 256 x 128 kernel's. Measured on an H200 (`fp8q bench --gemm
/// --gemm-variants` over the 21 M >= 2048 peer shapes, session 9: each
/// forced tile's TFLOP/s over the busy fraction of its last wave and its
/// padding, relative to 256 x 128 on the same shape; medians): clustered
/// 256 x 128 1.02, 128 x 192 0.96 (either way), 128 x 128 0.88 (0.92
/// clustered), 64 x 256 and 128 x 160 0.86, 64 x 128 0.69. Run-to-run noise
/// is about 5%, so ties between close tiles are settled by order.
/// 64 x 256 is 34 (0.94) since its k-blocks are software-pipelined (session
/// 20): forced, it ran 1010 TFLOP/s at 4096 x 4096 x 8192 against 1085 for
/// clustered 256 x 128 and 978 for 128 x 128, and 1020 at 2048 x 7168 x
/// 16384 against 980 for the clustered 128 x 128 the planner then took;
/// with 34 the planner moves five peer shapes to it, each as fast or faster
/// in an A/B of the same call (bench/NOTES-gemm.md, session 20).
pub(crate) fn tile_cost(tile: GemmTile, clustered: bool) -> u64 {
    let area = tile.rows() as u64 * tile.cols() as u64;
    let weight = match (tile.rows(), tile.cols(), clustered) {
        (256, _, true) => 31,
        (256, _, false) => 32,
        (128, 192, _) => 33,
        (128, 128, true) => 35,
        (128, 128, false) => 36,
        (64, 128, _) => 46,
        (64, 256, _) => 34,
        _ => 37, // 128 x 160
    };
    area * weight
}

/// The tile of small problems: where the planner's tile would leave SMs
/// idle and split K (f32 partial tiles through a workspace and a second
/// kernel), the 64 x 64 tile runs instead, with twice the tiles of 64 x 128
/// and so half the split, or none (DeepGEMM takes BLOCK_M 64 with BLOCK_N
/// down to 16 at M = 64-128 and never splits). H200, session 21, every
/// tile forced in one call: 64 x 64 was the fastest 64-row tile on all
/// five M = 64-128 shapes tried (64 x 7168 x 16384 33.1 us unsplit against
/// 35.6 on 64 x 128 split 2; 128 x 2112 x 7168 10.6 split 2 against 11.1
/// split 3); 64 x 32 (unsplit on 64 x 4096, 128 x 2112) was slower than
/// either, its A box read once per 32 columns. (That 64 x 32 split its
/// columns between the warpgroups; today's alternates k-blocks, as 64 x 64
/// does: [`NARROW_PROBLEM_TILE`].)
const SMALL_PROBLEM_TILE: GemmTile = GemmTile::M64N64;

/// The tile of problems of M = 33-64 ([`NARROW_PROBLEM_M`]) that
/// [`SMALL_PROBLEM_TILE`] would split: twice its tiles, so half its split or
/// none (64 x 4096 as 128 tiles of 64 x 32 over all of K, DeepGEMM's grid,
/// instead of 64 tiles of 64 x 64 split in two and a reduction). H200,
/// session 25, every tile forced in one call: 64 x 4096 x 7168 11.3 us
/// against 12.1 (64 x 64, 2 splits), 64 x 4096 x 8192 12.5 against 13.8, 64 x
/// 2112 x 7168 8.5 (2 splits) against 9.0 (4), 64 x 1024 x 4096 6.0 (4)
/// against 6.7 (8), 64 x 512 x 4096 5.7 (8) against 5.9 (14). Not at M = 128,
/// where B's box is read per 32 columns for two rows of tiles: 128 x 2112 x
/// 7168 11.1 unsplit against 9.6 on 64 x 64 split in two; nor at M = 1,
/// where 63 of A's 64 rows are zero-filled per 32 columns instead of per
/// 64: 1 x 2112 x 7168 11.7 (2 splits) against 9.8 (4).
const NARROW_PROBLEM_TILE: GemmTile = GemmTile::M64N32;

/// The tiles the planner weighs by [`tile_cost`]: every tile but the small
/// problems' two, which it takes only where another would split K, and
/// which are the last two of [`GemmTile::ALL`] (a test checks it).
pub(crate) const PLANNED_TILES: &[GemmTile] = GemmTile::ALL.split_at(GemmTile::ALL.len() - 2).0;

/// The M for which [`NARROW_PROBLEM_TILE`] replaces a split
/// [`SMALL_PROBLEM_TILE`]: where it measured faster (M = 17-32 takes the
/// streaming kernel wherever its slabs are wide enough, and was not timed on
/// 64 x 32).
const NARROW_PROBLEM_M: std::ops::RangeInclusive<u64> = 33..=64;

/// How the `wgmma` GEMM runs one problem: the tile, the K split, whether in
/// 2-CTA clusters, and the grid.
#[derive(Clone, Copy, Debug)]
pub(crate) struct WgmmaPlan {
    pub tile: GemmTile,
    pub splits: u32,
    /// Whether the tile's 2-CTA multicast kernel runs it (`config`'s grid is
    /// then whole clusters, from [`gemm_wgmma_clusters`]).
    pub clustered: bool,
    pub config: LaunchConfig,
}

/// Plans the `wgmma` GEMM of `m x n` with `k_blocks` k-blocks on
/// `multiprocessors` SMs. `clusters(tile)` is how many 2-CTA clusters of
/// the tile's multicast kernel can be resident at once (`None`: no such
/// kernel, or clusters are not to be used).
///
/// The tile: `Precise` has 128 x 128 only; `Fast` takes `tile` when given,
/// else the one (clustered where its kernel applies) with the least
/// estimated time: waves of tiles times [`tile_cost`] (a persistent CTA runs
/// whole tiles, so a ragged last wave costs a whole wave), ties to the
/// earlier tile of [`GemmTile::ALL`]. When even then the tiles are fewer
/// than the SMs, K is split into as many ranges as fill the GPU (each at
/// least [`GEMM_WGMMA_MIN_SPLIT_KBLOCKS`] k-blocks), unless `allow_split`
/// is false. The grid is persistent, one CTA per multiprocessor at most; a
/// split launch has exactly one CTA per (tile, split) and no clusters.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_wgmma(
    m: u64,
    n: u64,
    k_blocks: u64,
    multiprocessors: u64,
    precision: GemmPrecision,
    tile: Option<GemmTile>,
    allow_split: bool,
    clusters: &dyn Fn(GemmTile) -> Option<u32>,
) -> Result<WgmmaPlan> {
    let sms = multiprocessors.max(1);
    let tiles_of =
        |t: GemmTile| m.div_ceil(t.rows() as u64).checked_mul(n.div_ceil(t.cols() as u64)).filter(|&c| c < 1 << 31);
    // The clustered grid of `t`, where its kernel applies (`Fast` only).
    let cluster_grid = |t: GemmTile| {
        if precision != GemmPrecision::Fast {
            return None;
        }
        clusters(t).and_then(|resident| gemm_wgmma_clusters(m, n, t, sms, resident))
    };
    // K ranges for a launch of `tiles` tiles: as many as fill the GPU.
    let splits_of = |tiles: u64| {
        if allow_split && tiles < sms {
            (sms / tiles.max(1)).min(k_blocks / GEMM_WGMMA_MIN_SPLIT_KBLOCKS).clamp(1, GEMM_WGMMA_MAX_SPLITS)
        } else {
            1
        }
    };
    let tile = match (precision, tile) {
        (GemmPrecision::Precise, _) => GemmTile::M128N128,
        (GemmPrecision::Fast, Some(t)) => t,
        (GemmPrecision::Fast, None) => {
            let mut best: Option<(u64, GemmTile)> = None;
            for &t in PLANNED_TILES {
                let Some(count) = tiles_of(t) else { continue };
                let grid = cluster_grid(t);
                let waves = count.div_ceil(grid.map_or(sms, u64::from));
                let cost = waves.saturating_mul(tile_cost(t, grid.is_some()));
                if best.is_none_or(|(c, _)| cost < c) {
                    best = Some((cost, t));
                }
            }
            let best = best.map_or(GemmTile::M128N128, |(_, t)| t);
            // Where that tile would split K: `SMALL_PROBLEM_TILE`, or at
            // M = 33-64 `NARROW_PROBLEM_TILE` where that would split too.
            let splits = |t| tiles_of(t).is_some_and(|c| splits_of(c) > 1);
            if !splits(best) {
                best
            } else if NARROW_PROBLEM_M.contains(&m) && splits(SMALL_PROBLEM_TILE) {
                NARROW_PROBLEM_TILE
            } else {
                SMALL_PROBLEM_TILE
            }
        }
    };
    let tiles = tiles_of(tile).ok_or(QuantError::TooLarge("GEMM tile count"))?;
    let splits = splits_of(tiles);
    let clustered_grid = if splits == 1 { cluster_grid(tile) } else { None };
    let units = tiles * splits;
    let grid = match clustered_grid {
        Some(g) => g as u64,
        None if splits > 1 => units,
        None => units.min(sms),
    };
    let grid = u32::try_from(grid).ok().filter(|&g| g < 1 << 31).ok_or(QuantError::TooLarge("GEMM grid"))?;
    Ok(WgmmaPlan {
        tile,
        splits: splits as u32,
        clustered: clustered_grid.is_some(),
        config: LaunchConfig {
            grid_dim: (grid.max(1), 1, 1),
            block_dim: (quant_kernels::wgmma_contract::GEMM_THREADS, 1, 1),
            shared_mem_bytes: tile.smem_bytes(),
        },
    })
}

/// The grid (in CTAs) of the 2-CTA multicast kernel for an `m x n` problem
/// in `tile`, or `None` where it does not apply: the tile columns must pair
/// up exactly (an even count), and the pairs must fill every SM (smaller
/// problems keep the single-CTA kernel, whose split-K they may need).
/// `resident` is how many clusters the GPU holds at once; the persistent
/// grid never exceeds it (a cluster waiting for SMs would run its share
/// after everyone else's). The clusters are as few as give the same number
/// of waves, so each takes an equal share (DeepGEMM does the same: fewer
/// busy SMs, less L2 pressure, no slower).
pub(crate) fn gemm_wgmma_clusters(m: u64, n: u64, tile: GemmTile, multiprocessors: u64, resident: u32) -> Option<u32> {
    let cluster = quant_kernels::wgmma_contract::GEMM_CLUSTER as u64;
    let tiles_n = n.div_ceil(tile.cols() as u64);
    if !tiles_n.is_multiple_of(cluster) {
        return None;
    }
    let units = m.div_ceil(tile.rows() as u64).max(1).checked_mul(tiles_n / cluster)?;
    let most = (resident as u64).min(multiprocessors / cluster);
    if most == 0 || units * cluster < multiprocessors {
        return None;
    }
    let waves = units.div_ceil(most);
    let clusters = units.div_ceil(waves);
    u32::try_from(clusters * cluster).ok().filter(|&g| g < 1 << 31)
}

/// How the streaming GEMM of `rows` (`gemm_stream_*`, M <= 32) runs a
/// problem with `n` rows of B on `multiprocessors` SMs: the slab (rows of B
/// per unit of work) and the grid.
///
/// Each SM streams its slabs at about the same rate, so the time goes with
/// the rows of B the busiest CTA reads: `ceil(units / grid) * slab`. The
/// slab is the multiple of 8 (up to `rows.max_slab()`: 256, a TMA box, for
/// M <= 16) that makes that least, ties to the larger slab (fewer slab
/// epilogues). 1 x 4096: 128 slabs of 32 rows; 1 x 7168: 128 of 56; 1 x
/// 32768: 128 of 256; 32 x 32768: 256 of 128 (2 per CTA).
pub(crate) fn gemm_stream(n: u64, rows: StreamRows, multiprocessors: u64) -> Result<(StreamLayout, LaunchConfig)> {
    let sms = multiprocessors.max(1);
    let mut best: Option<(u64, u32)> = None;
    for slab in (8..=rows.max_slab()).step_by(8) {
        let units = n.div_ceil(slab as u64);
        let busiest = units.div_ceil(sms).saturating_mul(slab as u64);
        if best.is_none_or(|(r, _)| busiest <= r) {
            best = Some((busiest, slab));
        }
    }
    let slab = best.map_or(rows.max_slab(), |(_, s)| s);
    let layout = StreamLayout::new(slab, rows).ok_or(QuantError::TooLarge("GEMM slab"))?;
    let grid = n.div_ceil(slab as u64).min(sms);
    let grid = u32::try_from(grid).map_err(|_| QuantError::TooLarge("GEMM grid"))?;
    Ok((
        layout,
        LaunchConfig {
            grid_dim: (grid.max(1), 1, 1),
            block_dim: (layout.threads(), 1, 1),
            shared_mem_bytes: layout.smem_bytes(),
        },
    ))
}

/// The value of the environment variable `name` among `choices` (`unset`
/// when it is not set); any other value is
/// `QuantError::InvalidEnvironment`, naming what was `expected`.
pub(crate) fn parse_choice<T: Copy>(
    name: &'static str,
    value: Option<&std::ffi::OsStr>,
    unset: T,
    choices: &[(&str, T)],
    expected: &'static str,
) -> Result<T> {
    let Some(value) = value else { return Ok(unset) };
    let text = value.to_str();
    choices
        .iter()
        .find(|(word, _)| text == Some(*word))
        .map(|&(_, choice)| choice)
        .ok_or_else(|| QuantError::InvalidEnvironment { name, value: value.to_string_lossy().into_owned(), expected })
}

/// When `mm_fp8_blockscale` takes the streaming kernel (M <= 32, on
/// Hopper, where TMA can read the operands); set per `Gpu` by the
/// environment variable [`StreamUse::VAR`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StreamUse {
    /// Where it measured faster than the other kernels (the default):
    /// [`stream_pays`].
    Measured,
    /// At every M <= 32, in both modes (`always`): for tests and comparisons.
    Always,
    /// Never (`never`).
    Never,
}

impl StreamUse {
    /// The environment variable.
    pub(crate) const VAR: &'static str = "QUANT_GEMM_STREAM";

    /// The policy `value` of [`StreamUse::VAR`] names (unset: `Measured`).
    pub(crate) fn parse(value: Option<&std::ffi::OsStr>) -> Result<Self> {
        parse_choice(
            Self::VAR,
            value,
            Self::Measured,
            &[("always", Self::Always), ("never", Self::Never)],
            "`always` or `never` (or unset)",
        )
    }

    /// Whether an `m x n` problem (either precision mode, any K) takes the
    /// kernel on a GPU of `multiprocessors` SMs.
    pub(crate) fn takes(self, m: u64, n: u64, multiprocessors: u64) -> bool {
        let rows = u32::try_from(m).ok().and_then(StreamRows::for_m);
        match (self, rows) {
            (Self::Never, _) | (_, None) => false,
            (Self::Always, Some(_)) => true,
            (Self::Measured, Some(rows)) => stream_pays(n, rows, multiprocessors),
        }
    }
}

/// Whether the Hopper GEMMs (the `wgmma` tiles and the streaming decode
/// kernel) are launched as programmatic dependent launches (PDL), from the
/// environment variable [`DependentLaunch::VAR`]: `on` (the default), `off`,
/// or `all`; the `wgmma` tiles only at small M unless `all`
/// ([`wgmma_dependent`]).
///
/// With PDL a GEMM's CTAs may start while the kernel queued before it on
/// the stream finishes: the activation quantizers (token group, SiLU·mul,
/// RMSNorm) let their dependents launch as soon as all their CTAs run, so
/// the GEMM sets up its barriers and prefetches its tensor maps on the SMs
/// the quantizer's last CTAs leave, then waits (`griddepcontrol.wait`) until
/// the quantizer has completed and its writes are visible, before it reads
/// A, B or the scales or writes C. The GEMMs themselves do not let their
/// dependents start early (the streaming kernel does). Results are the same
/// either way; `off` is for comparisons and for drivers that refuse the
/// launch attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DependentLaunch {
    /// PDL (the default).
    On,
    /// Plain stream order.
    Off,
    /// PDL for the `wgmma` tiles at every M too (`all`): for measuring
    /// [`wgmma_dependent`]'s rule, which `On` applies.
    Everywhere,
}

impl DependentLaunch {
    /// The environment variable.
    pub(crate) const VAR: &'static str = "QUANT_GEMM_PDL";

    /// Whether the streaming decode kernel is a programmatic dependent
    /// launch under this policy (every value but `Off`).
    pub(crate) fn stream_dependent(self) -> bool {
        self != Self::Off
    }

    /// The policy `value` of [`DependentLaunch::VAR`] names (unset: `On`).
    pub(crate) fn parse(value: Option<&std::ffi::OsStr>) -> Result<Self> {
        parse_choice(
            Self::VAR,
            value,
            Self::On,
            &[("on", Self::On), ("off", Self::Off), ("all", Self::Everywhere)],
            "`on`, `off` or `all` (or unset)",
        )
    }
}

/// The largest M at which the `wgmma` tiles are launched with PDL.
const WGMMA_PDL_MAX_M: u64 = 256;

/// Whether an `m`-row `wgmma` GEMM is a programmatic dependent launch
/// under `policy`: only for small M, where the launch and the prologue are
/// a visible part of the kernel. Measured on an H200 (bench/NOTES-gemm.md,
/// session 23, quantize + GEMM in one graph, PDL on against off, same
/// binary): 64 x 7168 x 2048 8.9-9.4 us against 10.1, 128 x 4096 x 7168
/// 15.4-15.9 against 15.6-16.1, GEMM after GEMM 0.2-0.5 us faster at M =
/// 64-128; but 2048 x 7168 x 16384 564-566 against 517-523 (a 64 x 256
/// tile after the quantizer; not understood) and 2048 x 4096 x 8192 145
/// against 143, and no gain elsewhere at M >= 512. The streaming kernel
/// (M <= 32) keeps PDL wherever the policy allows it.
pub(crate) fn wgmma_dependent(m: u64, policy: DependentLaunch) -> bool {
    match policy {
        DependentLaunch::Everywhere => true,
        DependentLaunch::On => m <= WGMMA_PDL_MAX_M,
        DependentLaunch::Off => false,
    }
}

/// The narrowest slab at which the streaming kernel measured faster.
const STREAM_MIN_SLAB: u32 = 24;

/// Where the streaming kernel beat both other decode kernels on an H200
/// (bench/NOTES-gemm.md, session 15, call 3: per launch in a graph, against
/// the split-K `wgmma` kernel that `Fast` took and the `mma.sync` decode
/// kernel that `Precise` took): wherever its slabs are 24 rows or more (N
/// above 2112 on 132 SMs), in both modes and at every K measured: 1 x
/// 4096 x 8192 12.5 us against 14.1 (`Fast`) and 21.1 (`Precise`); 1 x 7168
/// x 2048 6.8 against 8.6 and 7.4; 8 x 24576 x 1536 12.4 against 14.3 and
/// 16.8; 1 x 7168 x 16384 31.7 against 38.0 and 42.2; and (session 22, call
/// 4, slabs of 24 rows) 1 x 3072 x 7168 10.5 against 12.2, 8 x 3072 x 7168
/// 10.5 against 12.5 (`Fast`, split 64 x 64 tiles; `Precise` was not
/// timed at 24-row slabs, where its alternative is the `mma.sync` decode
/// kernel, 1.1-1.7x slower than streaming wherever both were measured).
/// At M = 17-32 (its 32-row width; session 25): 32 x 4096 x 7168 10.3-10.6
/// us against 12.4-13.6 on split 64 x 64 tiles, 24 x 7168 x 2048 5.9 against
/// 7.1, 32 x 7168 x 16384 31.0 against 39.7. Narrower slabs lose:
/// 1 x 2112 x 7168 (16 rows) 11.1 against 9.2 and 11.1 (session 22: 10.7
/// against 9.0); 1 x 512 x 7168 (8 rows) 11.1 against 6.7 and 6.4.
pub(crate) fn stream_pays(n: u64, rows: StreamRows, multiprocessors: u64) -> bool {
    gemm_stream(n, rows, multiprocessors).is_ok_and(|(l, _)| l.slab >= STREAM_MIN_SLAB)
}

/// The split-K reduction's grid: one thread per 4 elements of C.
pub(crate) fn gemm_split_reduce(len: u64) -> Result<LaunchConfig> {
    linear(len.div_ceil(4))
}

#[cfg(test)]
mod tests {
    use super::*;

    const H100_SHARE: u64 = 228 * 1024 / 2 - 1024; // two CTAs per SM

    #[test]
    fn multicast_grid_pairs_columns_and_fills_the_gpu() {
        use quant_kernels::wgmma_contract::GemmTile::{M128N128, M256N128};
        // 4096 x 4096 in 256 x 128 tiles: 16 x 32 tiles, 256 pairs; 132
        // SMs hold 66 clusters: 4 waves, so 64 clusters (128 CTAs).
        assert_eq!(gemm_wgmma_clusters(4096, 4096, M256N128, 132, 66), Some(128));
        // Fewer resident clusters than SMs / 2 cap the grid: 60 take 256
        // pairs in 5 waves, so 52 clusters; 448 pairs in 8 waves, 56.
        assert_eq!(gemm_wgmma_clusters(4096, 4096, M256N128, 132, 60), Some(104));
        assert_eq!(gemm_wgmma_clusters(4096, 7168, M256N128, 132, 60), Some(112));
        // An odd number of tile columns (N = 2112: 17), or too few pairs
        // to fill the GPU: no clusters.
        assert_eq!(gemm_wgmma_clusters(4096, 2112, M128N128, 132, 66), None);
        assert_eq!(gemm_wgmma_clusters(512, 1024, M256N128, 132, 66), None);
        assert_eq!(gemm_wgmma_clusters(4096, 4096, M256N128, 132, 0), None);
        // The grid is always whole clusters.
        for n in (256..20000).step_by(256) {
            if let Some(g) = gemm_wgmma_clusters(4096, n, M128N128, 132, 66) {
                assert_eq!(g % 2, 0);
                assert!(g <= 132);
            }
        }
    }

    #[test]
    fn persistent_grids_stop_at_what_the_gpu_holds() {
        // 132 SMs of 2048 threads: 16 blocks of 128 each, 8 of 256.
        assert_eq!(persistent(u64::MAX, 128, 132).unwrap().grid_dim.0, 132 * 16);
        assert_eq!(persistent(1 << 30, 256, 132).unwrap().grid_dim.0, 132 * 8);
        // Less work than that: one thread per piece of it.
        assert_eq!(persistent(1000, 128, 132).unwrap().grid_dim.0, 8);
        // No work (or no SMs reported) still launches one block.
        assert_eq!(persistent(0, 128, 132).unwrap().grid_dim.0, 1);
        assert_eq!(persistent(1 << 20, 128, 0).unwrap().grid_dim.0, 1);
    }

    #[test]
    fn token_group_goes_wide_for_large_problems() {
        let resident = 132 * 1024;
        // Decode sizes and M = 512, K = 7168 (28672 groups of 128): two chunks.
        assert_eq!(token_group_chunks(56, 128, resident), 2);
        assert_eq!(token_group_chunks(512 * 56, 128, resident), 2);
        // M = 2048, K = 7168: four.
        assert_eq!(token_group_chunks(2048 * 56, 128, resident), 4);
        assert_eq!(token_group_chunks(u64::MAX, 128, resident), 4);
        // Threads per group follow the chunks; the wide kernel runs in
        // CTAs of 128 threads, the 2-chunk kernel in CTAs of 256.
        use TokenGroupVariant::{Narrow, Row, Wide};
        assert_eq!(token_group(1, 128, 128, Narrow, 0).unwrap().grid_dim.0, 1);
        assert_eq!(token_group(1024, 128, 128, Wide, 0).unwrap().block_dim.0, 128);
        assert_eq!(token_group(1024, 128, 128, Wide, 0).unwrap().grid_dim.0, 32);
        assert_eq!(token_group(1024, 100, 128, Narrow, 0).unwrap().block_dim.0, 256);
        assert_eq!(token_group(1024, 100, 128, Narrow, 0).unwrap().grid_dim.0, 32);
        // Column-major layouts in the wide kernel: whole bands of 8 rows.
        assert_eq!(token_group(1025, 128, 128, Wide, 1).unwrap().grid_dim.0, 33);
        assert_eq!(token_group(1025, 128, 128, Wide, 0).unwrap().grid_dim.0, 33);
        assert_eq!(token_group(1025, 7168, 128, Wide, 2).unwrap().grid_dim.0, 1032 * 56 * 4 / 128);
        assert!(token_group(u64::MAX, 128, 128, Wide, 1).is_err());
        // The row kernel: a warp per 1024 columns of a row, 4 warps a CTA.
        assert_eq!(token_group(2048, 7000, 128, Row, 0).unwrap().grid_dim.0, 2048 * 7 / 4);
        assert_eq!(token_group(3, 200, 64, Row, 0).unwrap().grid_dim.0, 1);
        assert_eq!(token_group(5, 1025, 128, Row, 2).unwrap().grid_dim.0, 3);
        assert_eq!(token_group(5, 1025, 128, Row, 2).unwrap().block_dim.0, 128);
        assert!(token_group(u64::MAX, 2048, 128, Row, 0).is_err());
    }

    #[test]
    fn token_group_takes_the_row_kernel_on_misaligned_rows() {
        let problem = |input, rows, cols, group_size, layout| TokenGroupProblem {
            input,
            format: Fp8Format::E4M3Fn,
            rows,
            cols,
            row_stride: cols,
            group_size,
            layout,
            resident_threads: 132 * 1024,
        };
        use TokenGroupVariant::{Narrow, Row, Wide};
        let row_major = ScaleLayout::RowMajor;
        for m in [2048, 4096, 16384] {
            // Aligned rows keep the wide kernel; K = 7000 and 7048 (rows
            // 48 and 16 bytes past a line) take the row kernel.
            assert_eq!(token_group_variant(&problem(DType::Bf16, m, 7168, 128, row_major)), Wide);
            assert_eq!(token_group_variant(&problem(DType::Bf16, m, 7040, 128, row_major)), Wide);
            assert_eq!(token_group_variant(&problem(DType::Bf16, m, 7000, 128, row_major)), Row);
            assert_eq!(token_group_variant(&problem(DType::F16, m, 7048, 64, row_major)), Row);
            // Codes 64 bytes past a line (K = 7104), input aligned: wide
            // (measured faster there).
            assert_eq!(token_group_variant(&problem(DType::Bf16, m, 7104, 128, row_major)), Wide);
            // e4m3fnuz keeps the wide kernel (its encoder is the cost).
            let fnuz =
                TokenGroupProblem { format: Fp8Format::E4M3Fnuz, ..problem(DType::Bf16, m, 7000, 128, row_major) };
            assert_eq!(token_group_variant(&fnuz), Wide);
            // No row kernel for f32 or groups of 32; column-major scales
            // keep the banded wide kernel.
            assert_eq!(token_group_variant(&problem(DType::F32, m, 7000, 128, row_major)), Wide);
            assert_eq!(token_group_variant(&problem(DType::Bf16, m, 7000, 32, row_major)), Wide);
            assert_eq!(token_group_variant(&problem(DType::Bf16, m, 7000, 128, ScaleLayout::ColMajor)), Wide);
            assert_eq!(token_group_variant(&problem(DType::Bf16, m, 7000, 128, ScaleLayout::ColMajorTmaAligned)), Wide);
        }
        // A padded input pitch misaligns aligned codes.
        let padded = TokenGroupProblem { row_stride: 7168 + 8, ..problem(DType::Bf16, 4096, 7168, 128, row_major) };
        assert_eq!(token_group_variant(&padded), Row);
        // Small problems: the 2-chunk kernel, aligned or not.
        assert_eq!(token_group_variant(&problem(DType::Bf16, 1, 7000, 128, row_major)), Narrow);
        assert_eq!(token_group_variant(&problem(DType::Bf16, 512, 7000, 128, row_major)), Narrow);
    }

    #[test]
    fn stream_slabs_share_out_evenly() {
        let plan = |n| {
            let (l, c) = gemm_stream(n, StreamRows::R16, 132).unwrap();
            (l.slab, c.grid_dim.0)
        };
        assert_eq!(plan(4096), (32, 128));
        assert_eq!(plan(7168), (56, 128));
        assert_eq!(plan(32768), (256, 128));
        assert_eq!(plan(24576), (192, 128));
        // More slabs than SMs: the CTAs loop (391 slabs of 168 rows, 3 per
        // CTA at most: 504 rows, where 256-row slabs would take 512).
        assert_eq!(plan(65536), (168, 132));
        assert_eq!(plan(1), (8, 1));
        // The wider kernels take narrower slabs at most.
        let wide = |n, rows| gemm_stream(n, rows, 132).map(|(l, c)| (l.slab, c.grid_dim.0)).unwrap();
        assert_eq!(wide(4096, StreamRows::R32), (32, 128));
        assert_eq!(wide(7168, StreamRows::R32), (56, 128));
        assert_eq!(wide(24576, StreamRows::R32), (96, 132));
        assert_eq!(wide(32768, StreamRows::R32), (128, 132));
        for rows in StreamRows::ALL {
            for n in [1u64, 7, 8, 100, 512, 2112, 18432, 1 << 24] {
                let (l, c) = gemm_stream(n, rows, 132).unwrap();
                assert!(c.grid_dim.0 as u64 <= 132 && c.grid_dim.0 as u64 <= n.div_ceil(l.slab as u64));
                assert_eq!(c.block_dim.0, l.threads());
                assert!(l.slab <= rows.max_slab() && l.rows == rows);
            }
        }
    }

    #[test]
    fn stream_use_follows_the_measurements_and_the_variable() {
        use std::ffi::OsStr;
        let measured = StreamUse::parse(None).unwrap();
        assert_eq!(measured, StreamUse::Measured);
        // Measured faster, in both modes: slabs of 24 rows or more, up to M = 32.
        for (m, n) in [(1, 3072), (8, 3072), (1, 4096), (16, 7168), (8, 24576), (1, 32768), (1, 65536), (32, 4096)] {
            assert!(measured.takes(m, n, 132), "{m}x{n}");
        }
        // Measured slower (narrow slabs), or M over 32.
        for (m, n) in [(1, 512), (1, 2112), (32, 2112), (33, 4096), (64, 4096)] {
            assert!(!measured.takes(m, n, 132), "{m}x{n}");
        }
        let always = StreamUse::parse(Some(OsStr::new("always"))).unwrap();
        assert!(always.takes(1, 1, 132) && always.takes(16, 7, 132) && always.takes(32, 7, 132));
        assert!(!always.takes(33, 7, 132) && !always.takes(0, 7, 132) && !always.takes(1 << 32, 7, 132));
        let never = StreamUse::parse(Some(OsStr::new("never"))).unwrap();
        assert!(!never.takes(1, 4096, 132));
        for bad in ["", "Always", "1", "on"] {
            let err = StreamUse::parse(Some(OsStr::new(bad))).unwrap_err();
            assert!(err.to_string().contains("QUANT_GEMM_STREAM"), "{err}");
        }
    }

    #[test]
    fn dependent_launch_policy_parses() {
        use std::ffi::OsStr;
        assert_eq!(DependentLaunch::parse(None).unwrap(), DependentLaunch::On);
        assert_eq!(DependentLaunch::parse(Some(OsStr::new("on"))).unwrap(), DependentLaunch::On);
        assert_eq!(DependentLaunch::parse(Some(OsStr::new("off"))).unwrap(), DependentLaunch::Off);
        assert_eq!(DependentLaunch::parse(Some(OsStr::new("all"))).unwrap(), DependentLaunch::Everywhere);
        for bad in ["", "On", "1", "true", "always"] {
            let err = DependentLaunch::parse(Some(OsStr::new(bad))).unwrap_err();
            assert!(err.to_string().contains("QUANT_GEMM_PDL"), "{err}");
        }
    }

    #[test]
    fn wgmma_tiles_are_dependent_launches_only_at_small_m() {
        use DependentLaunch::{Everywhere, Off, On};
        for m in [1, 64, 128, 256] {
            assert!(wgmma_dependent(m, On), "m = {m}");
            assert!(!wgmma_dependent(m, Off), "m = {m}");
            assert!(wgmma_dependent(m, Everywhere), "m = {m}");
        }
        for m in [257, 512, 2048, 1 << 20] {
            assert!(!wgmma_dependent(m, On), "m = {m}");
            assert!(!wgmma_dependent(m, Off), "m = {m}");
            assert!(wgmma_dependent(m, Everywhere), "m = {m}");
        }
        // The streaming kernel: every policy but `off`.
        assert!(On.stream_dependent() && Everywhere.stream_dependent() && !Off.stream_dependent());
    }

    #[test]
    fn planned_tiles_are_all_but_the_small_problems_in_order() {
        let rest: Vec<GemmTile> =
            GemmTile::ALL.into_iter().filter(|&t| t != SMALL_PROBLEM_TILE && t != NARROW_PROBLEM_TILE).collect();
        assert_eq!(rest, PLANNED_TILES);
    }

    #[test]
    fn wgmma_splits_k_only_for_small_grids() {
        use GemmPrecision::{Fast, Precise};
        let plan = |m, n, kb, p| gemm_wgmma(m, n, kb, 132, p, None, true, &|_| None).unwrap();
        // Enough tiles: no split, persistent grid; 4096 x 7168 takes the
        // 256 x 128 tile (7 waves of 896 tiles at weight 32 beat 10 of
        // 128 x 192 at 33, 11 of 128 x 160 at 37 and 14 of 128 x 128 at 36).
        let p = plan(4096, 7168, 16, Fast);
        assert_eq!((p.config.grid_dim.0, p.splits, p.tile), (132, 1, GemmTile::M256N128));
        assert_eq!(p.config.block_dim.0, 384);
        assert_eq!(p.config.shared_mem_bytes, GemmTile::M256N128.smem_bytes());
        // With clusters (66 resident): 4096 x 4096 takes the clustered
        // 256 x 128 tile (256 pairs in 4 waves of 64 clusters).
        let clustered = |t: GemmTile| (t == GemmTile::M256N128 || t == GemmTile::M128N128).then_some(66);
        let p = gemm_wgmma(4096, 4096, 64, 132, Fast, None, true, &clustered).unwrap();
        assert_eq!((p.tile, p.clustered, p.config.grid_dim.0), (GemmTile::M256N128, true, 128));
        // Precise never clusters; neither does a split launch.
        assert!(!gemm_wgmma(4096, 4096, 64, 132, Precise, None, true, &clustered).unwrap().clustered);
        let p = gemm_wgmma(256, 512, 64, 132, Fast, Some(GemmTile::M128N128), true, &clustered).unwrap();
        assert!(p.splits > 1 && !p.clustered);
        // 2048 x 2112: 128 x 160 (2 waves of 224 tiles).
        assert_eq!(plan(2048, 2112, 56, Fast).tile, GemmTile::M128N160);
        // Precise always runs 128 x 128.
        assert_eq!(plan(4096, 7168, 16, Precise).tile, GemmTile::M128N128);
        // 64 x 512 x 7168 (Precise: 4 tiles, 56 k-blocks -> 14 splits of 4).
        let p = plan(64, 512, 56, Precise);
        assert_eq!((p.config.grid_dim.0, p.splits), (56, 14));
        // Fast: 64 x 32 tiles, 16 of them, 8 splits.
        let p = plan(64, 512, 56, Fast);
        assert_eq!((p.tile, p.config.grid_dim.0, p.splits), (GemmTile::M64N32, 128, 8));
        // Where 64 x 128 would split K, 64 x 64 runs, split only as far as
        // its own tiles need: 64 x 7168 in 112 tiles, 128 x 4096 in 128,
        // 128 x 2112 in 66 x 2; and at M = 33-64 64 x 32 where 64 x 64 would
        // split: 64 x 4096 in 128 tiles, 64 x 2112 in 66 x 2 (not at M = 1:
        // 1 x 2112 in 33 x 4).
        let p = plan(64, 7168, 16, Fast);
        assert_eq!((p.tile, p.config.grid_dim.0, p.splits), (GemmTile::M64N64, 112, 1));
        assert_eq!((plan(128, 4096, 56, Fast).tile, plan(128, 4096, 56, Fast).splits), (GemmTile::M64N64, 1));
        assert_eq!((plan(64, 4096, 56, Fast).tile, plan(64, 4096, 56, Fast).splits), (GemmTile::M64N32, 1));
        assert_eq!((plan(128, 2112, 56, Fast).tile, plan(128, 2112, 56, Fast).splits), (GemmTile::M64N64, 2));
        assert_eq!((plan(64, 2112, 56, Fast).tile, plan(64, 2112, 56, Fast).splits), (GemmTile::M64N32, 2));
        assert_eq!((plan(33, 2112, 56, Fast).tile, plan(33, 2112, 56, Fast).splits), (GemmTile::M64N32, 2));
        assert_eq!((plan(1, 2112, 56, Fast).tile, plan(1, 2112, 56, Fast).splits), (GemmTile::M64N64, 4));
        assert_eq!((plan(32, 2112, 56, Fast).tile, plan(32, 2112, 56, Fast).splits), (GemmTile::M64N64, 4));
        // Not where the planner's tile fills the GPU unsplit.
        assert_eq!(plan(64, 32768, 4, Fast).tile, GemmTile::M64N256);
        assert_eq!(plan(128, 7168, 16, Fast).tile, GemmTile::M64N128);
        // Too few k-blocks to split.
        assert_eq!(plan(64, 512, 7, Precise).splits, 1);
        // Never more than the bound, and every split has k-blocks.
        let p = plan(1, 1, 1 << 20, Precise);
        assert_eq!((p.config.grid_dim.0, p.splits), (32, GEMM_WGMMA_MAX_SPLITS as u32));
        // Splitting off: one unit per tile.
        let p = gemm_wgmma(64, 512, 56, 132, Precise, None, false, &|_| None).unwrap();
        assert_eq!((p.config.grid_dim.0, p.splits), (4, 1));
        // A tile given is the tile used.
        assert_eq!(
            gemm_wgmma(4096, 4096, 16, 132, Fast, Some(GemmTile::M64N256), true, &|_| None).unwrap().tile,
            GemmTile::M64N256
        );
        assert!(gemm_wgmma(u64::MAX, 1 << 20, 16, 132, Fast, None, true, &|_| None).is_err());
        assert!(gemm_wgmma(u64::MAX, 1 << 20, 16, 132, Precise, None, true, &|_| None).is_err());
        assert_eq!(gemm_split_reduce(10).unwrap().grid_dim.0, 1);
    }

    #[test]
    fn block_stages_follow_alignment_and_budget() {
        // bf16 tiles are 32 KB: three fit in half an H100 SM, at most four ever.
        assert_eq!(block_stages(2, true, true, H100_SHARE), 3);
        assert_eq!(block_stages(2, true, true, 1 << 30), MAX_STAGES);
        // f32 tiles are 64 KB: one.
        assert_eq!(block_stages(4, true, true, H100_SHARE), 1);
        // Not one-tile or not a multiple of 8 wide, unaligned rows, or no room: the global path.
        assert_eq!(block_stages(2, false, true, H100_SHARE), 0);
        assert_eq!(block_stages(2, true, false, H100_SHARE), 0);
        assert_eq!(block_stages(2, true, true, 32 * 1024), 0);
    }

    #[test]
    fn block_grid_is_persistent_and_fits_its_stages() {
        let stages = block_stages(2, true, true, H100_SHARE);
        let c = block(56, 144, 132, stages, block_quant_stage_bytes(2)).unwrap();
        assert_eq!(c.grid_dim, (132 * BLOCK_QUANT_CTAS_PER_SM, 1, 1));
        assert_eq!(c.block_dim, (BLOCK_QUANT_THREADS, 1, 1));
        assert!(c.shared_mem_bytes as u64 <= H100_SHARE);
        // Fewer blocks than slots: one CTA per block.
        assert_eq!(block(5, 2, 132, 0, 0).unwrap().grid_dim.0, 10);
        assert_eq!(block(5, 2, 132, 0, 0).unwrap().shared_mem_bytes as u64, BLOCK_QUANT_SMEM_HEADER);
        assert!(block(u64::MAX, 2, 132, 0, 0).is_err());
    }
}
