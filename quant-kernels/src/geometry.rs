//! Launch-geometry constants shared by the kernels and the host launcher, so
//! the grid the host computes always matches the work each thread does.

/// Elements in one chunk, the unit of a thread's global memory access.
pub const ELEMS_PER_CHUNK: u64 = 8;

/// Chunks each thread of `per_token_group_quant_fp8` owns (in one group).
pub const TOKEN_GROUP_CHUNKS: u64 = 2;

/// Threads per block of the per-group and element-wise kernels, and of the
/// per-block kernel (one CTA per scale block).
pub const BLOCK_THREADS: u32 = 256;

/// Threads per CTA of `per_block_quant_fp8` (one CTA per scale block): 512,
/// so each thread holds four chunks of a 128 x 128 tile in registers and the
/// kernel stays under 64 registers per thread's worth of occupancy limits.
pub const BLOCK_QUANT_THREADS: u32 = 512;

/// Threads `per_token_group_quant_fp8` assigns to one group of `group_size`.
pub const fn token_group_threads(group_size: u64) -> u64 {
    group_size / (TOKEN_GROUP_CHUNKS * ELEMS_PER_CHUNK)
}
