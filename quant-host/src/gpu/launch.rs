//! Launch geometry, computed in one place for every kernel.

use crate::error::{QuantError, Result};
use cudarc::driver::LaunchConfig;

/// Threads per block of the element-wise and per-group kernels.
pub(crate) const BLOCK_THREADS: u32 = 256;

/// Elements each thread owns in the per-group kernels (`ELEMS_PER_THREAD`
/// in `quant_kernels::kernels::token_group`).
pub(crate) const ELEMS_PER_THREAD: u64 = 8;

/// A 1-D grid of `threads` threads in blocks of [`BLOCK_THREADS`].
pub(crate) fn linear(threads: u64) -> Result<LaunchConfig> {
    let blocks = threads.div_ceil(BLOCK_THREADS as u64);
    let blocks = u32::try_from(blocks)
        .ok()
        .filter(|&b| b <= i32::MAX as u32)
        .ok_or(QuantError::TooLarge("grid size"))?;
    Ok(LaunchConfig { grid_dim: (blocks.max(1), 1, 1), block_dim: (BLOCK_THREADS, 1, 1), shared_mem_bytes: 0 })
}

/// The grid of `per_token_group_quant_fp8`: `group_size / 8` threads per group.
pub(crate) fn token_group(rows: u64, groups: u64, group_size: u64) -> Result<LaunchConfig> {
    let threads = rows
        .checked_mul(groups)
        .and_then(|g| g.checked_mul(group_size / ELEMS_PER_THREAD))
        .ok_or(QuantError::TooLarge("thread count"))?;
    linear(threads)
}
