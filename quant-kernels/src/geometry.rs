//! Launch-geometry constants shared by the kernels and the host launcher, so
//! the grid the host computes always matches the work each thread does.

/// Elements in one chunk, the unit of a thread's global memory access.
pub const ELEMS_PER_CHUNK: u64 = 8;

/// Chunks each thread of `per_token_group_quant_fp8` owns (in one group).
pub const TOKEN_GROUP_CHUNKS: u64 = 4;

/// Threads per block of the per-group and element-wise kernels, and of the
/// per-block kernel (one CTA per scale block).
pub const BLOCK_THREADS: u32 = 256;

/// Threads `per_token_group_quant_fp8` assigns to one group of `group_size`.
pub const fn token_group_threads(group_size: u64) -> u64 {
    group_size / (TOKEN_GROUP_CHUNKS * ELEMS_PER_CHUNK)
}
