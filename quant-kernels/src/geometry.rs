//! Launch-geometry constants shared by the kernels and the host launcher, so
//! the grid the host computes always matches the work each thread does.

/// Elements in one chunk, the unit of a thread's global memory access.
pub const ELEMS_PER_CHUNK: u64 = 8;

/// Chunks each thread of `per_token_group_quant_fp8` owns (in one group):
/// 2 for small problems (a short dependency chain per thread, which decides
/// decode-sized launches), 4 for large ones (the per-thread fixed work,
/// indices and the group's scale and reciprocal, spread over twice the
/// elements, and 64 bytes of loads in flight per thread). Measured on an
/// H100 at M = 16384, K = 7168: 0.85 of the copy with 2, 0.96 with 4; at
/// M = 1: 2.2 us per launch with 2, 2.9 with 4.
pub const TOKEN_GROUP_CHUNKS: u64 = 2;
/// See [`TOKEN_GROUP_CHUNKS`].
pub const TOKEN_GROUP_WIDE_CHUNKS: u64 = 4;

/// Threads per block of the per-group and element-wise kernels.
pub const BLOCK_THREADS: u32 = 256;

/// Threads per block of the wide (4-chunk) token-group kernel. Its threads
/// each load once, encode and exit, so a CTA's slot frees only when its
/// slowest warp is done; smaller CTAs hand slots back sooner. Measured on an
/// H200 (bf16 -> e4m3fn, same run): 128 threads 1-3% faster than 256 from
/// M = 2048 to 16384 at K = 7168 (2048 x 7168: 14.0 -> 13.6 us).
pub const TOKEN_GROUP_WIDE_BLOCK_THREADS: u32 = 128;

/// Threads per CTA of `per_block_quant_fp8`: 512, each owning four chunks
/// of a 128 x 128 tile (which it reads back from shared memory one chunk at
/// a time, so two CTAs fit on an SM).
pub const BLOCK_QUANT_THREADS: u32 = 512;

/// CTAs of `per_block_quant_fp8` resident per multiprocessor: its launch
/// bound (at most 64 registers at 512 threads) and the host's grid and
/// shared-memory budget per CTA.
pub const BLOCK_QUANT_CTAS_PER_SM: u32 = 2;

/// Edge of the square tile a `per_block_quant_fp8` CTA covers per step.
pub const BLOCK_QUANT_TILE: u64 = 128;

/// Most stages of the quantizers' asynchronous-copy (`cp.async`) pipelines.
pub const MAX_STAGES: u64 = 4;

/// Bytes of shared memory before the stages (two sets of per-warp amax
/// partials, rounded up to keep the stages 128-byte aligned).
pub const BLOCK_QUANT_SMEM_HEADER: u64 = 128;

/// Bytes of one stage of `per_block_quant_fp8`: a whole tile of
/// `elem_bytes`-byte elements.
pub const fn block_quant_stage_bytes(elem_bytes: u64) -> u64 {
    BLOCK_QUANT_TILE * BLOCK_QUANT_TILE * elem_bytes
}

/// Threads `per_token_group_quant_fp8` assigns to one group of `group_size`
/// with `chunks` chunks per thread.
pub const fn token_group_threads(group_size: u64, chunks: u64) -> u64 {
    group_size / (chunks * ELEMS_PER_CHUNK)
}

/// Elements of one row that a warp of the row token-group kernel
/// (`token_group_row_quant_*`, see `kernels::token_group`) covers: 32 lanes
/// of [`TOKEN_GROUP_WIDE_CHUNKS`] chunks, 8 groups of 128 (16 of 64).
pub const TOKEN_GROUP_ROW_WARP_ELEMS: u64 = 32 * TOKEN_GROUP_WIDE_CHUNKS * ELEMS_PER_CHUNK;

/// Warps the row token-group kernel gives a row of `cols` elements (a warp
/// never spans two rows).
pub const fn token_group_row_warps(cols: u64) -> u64 {
    cols.div_ceil(TOKEN_GROUP_ROW_WARP_ELEMS)
}

/// Rows per band of the wide token-group kernel's group numbering for
/// column-major scale layouts: groups are numbered down the 8 rows of a
/// band, then across its columns, so the 8 groups of a warp (4 lanes each
/// at group size 128) store their scales side by side in one 32-byte
/// sector instead of 8 sectors a column apart.
pub const TOKEN_GROUP_BAND: u64 = 8;

/// Whether `per_token_group_quant_fp8` numbers its groups in bands of
/// [`TOKEN_GROUP_BAND`] rows: the wide kernel with a column-major scale
/// layout (`layout` is `ScaleLayout::as_u32`, the kernel argument). The
/// 2-chunk kernel keeps row order: it serves small problems, and index math
/// added to it has made its f16 variant spill (sm_80; sm_90 with a first
/// version of the band numbering).
pub const fn token_group_banded(chunks: u64, layout: u32) -> bool {
    chunks == TOKEN_GROUP_WIDE_CHUNKS && layout != crate::ScaleLayout::RowMajor.as_u32()
}

/// Rows the grid of `per_token_group_quant_fp8` covers: `rows`, rounded up
/// to whole bands when the groups are numbered in bands (the rows past the
/// end are inactive threads); `None` on overflow.
pub const fn token_group_grid_rows(rows: u64, banded: bool) -> Option<u64> {
    if banded {
        rows.div_ceil(TOKEN_GROUP_BAND).checked_mul(TOKEN_GROUP_BAND)
    } else {
        Some(rows)
    }
}

/// Threads per CTA of the benchmark's copy kernel (`kernels::copy`).
pub const COPY_THREADS: u32 = 256;
/// 16-byte pieces each thread of the copy kernel moves (all loads first,
/// then the stores: 64 bytes in flight per thread, as the wide token-group
/// kernel has).
pub const COPY_PIECES_PER_THREAD: u64 = 4;

/// CTAs of the copy and read kernels (`kernels::copy`) over `bytes`: one
/// per `COPY_THREADS * COPY_PIECES_PER_THREAD` whole 16-byte pieces, at
/// least one.
#[inline]
pub const fn copy_ctas(bytes: u64) -> u64 {
    let ctas = bytes.div_ceil(COPY_PIECES_PER_THREAD * COPY_THREADS as u64 * 16);
    if ctas == 0 {
        1
    } else {
        ctas
    }
}

/// Stages of the `mma.sync` GEMM's (`kernels::gemm`) `cp.async` pipeline.
pub const GEMM_MMA_STAGES: u32 = 4;
/// CTA tile edge of the `mma.sync` GEMM along M and N, and its k-block (one
/// scale block) in bytes.
pub const GEMM_MMA_TILE: u32 = 128;
/// Threads of the `mma.sync` GEMM (8 warps, 2 x 4 over the tile).
pub const GEMM_MMA_THREADS: u32 = 256;
/// Bytes of one stage's scales in the `mma.sync` GEMM: 128 A scales and the
/// B scale, padded to 16 bytes.
pub const GEMM_MMA_SCALE_BYTES: u32 = GEMM_MMA_TILE * 4 + 16;
/// Dynamic shared memory of the `mma.sync` GEMM: per stage an A and a B tile
/// of 128 x 128 bytes and the scales.
pub const GEMM_MMA_SMEM_BYTES: u32 = GEMM_MMA_STAGES * (2 * GEMM_MMA_TILE * GEMM_MMA_TILE + GEMM_MMA_SCALE_BYTES);
/// Threads of the decode-sized GEMM (4 warps).
pub const GEMM_SMALL_THREADS: u32 = 128;
/// Dynamic shared memory of the decode-sized GEMM: the cross-warp reduction
/// buffer (4 warps x 32 lanes x 4 f32) and the last-CTA flag.
pub const GEMM_SMALL_SMEM_BYTES: u32 = 4 * 32 * 16 + 16;
/// Rows of B per CTA of the decode-sized GEMM (one `n8` tile).
pub const GEMM_SMALL_N: u32 = 8;
/// Rows of A the decode-sized GEMM takes at most (M <= 16 runs it).
pub const GEMM_SMALL_M: u32 = 16;

/// Launch bounds of the GEMM kernels, `(kernel-name prefix, threads per CTA,
/// min CTAs per SM)`; the first matching prefix applies. The quantizers'
/// bounds come with their typed entries (`crate::abi::Kernel::launch_bounds`).
///
/// rustc has no attribute for CUDA's `__launch_bounds__`, so `cargo xtask
/// build-ptx` writes them into the PTX as `.maxntid` / `.minnctapersm`
/// directives. They cap the registers ptxas may use so that enough warps fit
/// on an SM to keep memory busy (the build fails if that makes a kernel
/// spill): a memory-bound kernel needs many loads in flight per SM.
pub const LAUNCH_BOUNDS: &[(&str, u32, u32)] = &[
    // The `wgmma` GEMMs: 384 threads, 168 registers each at launch;
    // `setmaxnreg` then moves them to 40 in the producer warpgroup and 232
    // in the consumers (it needs the cap at entry that this bound gives).
    ("gemm_wgmma_", crate::wgmma_contract::GEMM_THREADS, 1),
    // The streaming decode GEMM: two consumer warpgroups and two producer
    // warps, one CTA per SM (its ring takes the shared memory).
    (
        "gemm_stream_",
        32 * (crate::stream_contract::GEMM_STREAM_CONSUMER_WARPS + crate::stream_contract::GEMM_STREAM_PRODUCER_WARPS),
        1,
    ),
];
