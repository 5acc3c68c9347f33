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
    let blocks =
        u32::try_from(blocks).ok().filter(|&b| b <= i32::MAX as u32).ok_or(QuantError::TooLarge("grid size"))?;
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

/// The grid of `per_block_quant_fp8`: one block of [`BLOCK_THREADS`] threads
/// per scale block, on a 2-D grid (x along K, y along N) so no division is
/// needed to find the block.
pub(crate) fn block(block_rows: u64, block_cols: u64) -> Result<LaunchConfig> {
    let x = u32::try_from(block_cols).ok().filter(|&x| x <= i32::MAX as u32);
    let y = u32::try_from(block_rows).ok().filter(|&y| y <= 65_535);
    match (x, y) {
        (Some(x), Some(y)) => Ok(LaunchConfig {
            grid_dim: (x, y, 1),
            block_dim: (BLOCK_THREADS, 1, 1),
            // One f32 per warp for the block-wide amax.
            shared_mem_bytes: BLOCK_THREADS / 32 * 4,
        }),
        _ => Err(QuantError::TooLarge("block grid")),
    }
}
