//! CPU `per_block_quant_fp8` (spec section "per_block_quant_fp8").

use super::amax;
use crate::config::BlockConfig;
use crate::element::Element;
use crate::error::Result;
use crate::plan::BlockPlan;
use crate::shape::MatrixShape;

/// Quantizes `w` (`[N, K]`, row stride included) in blocks of
/// `cfg.block_rows x cfg.block_cols` into `q` (`N * K` codes, row-major, row
/// stride `K`) and `scales` (`[ceil(N / block_rows), ceil(K / block_cols)]`,
/// row-major).
///
/// The last block row and column may be partial (N and K tails): a partial
/// block's scale comes from its valid elements only. Errors on an invalid
/// `cfg`, a short `w` or wrongly sized outputs.
pub fn per_block_quant_fp8<T: Element>(
    w: &[T],
    shape: MatrixShape,
    cfg: &BlockConfig,
    q: &mut [u8],
    scales: &mut [f32],
) -> Result<()> {
    per_block_quant_fp8_planned(&BlockPlan::new(cfg, shape)?, w, q, scales)
}

/// [`per_block_quant_fp8`] of a plan already checked (the one validation
/// step `Device`, the GPU launches and this path share); only the buffer
/// lengths are checked here.
pub fn per_block_quant_fp8_planned<T: Element>(
    plan: &BlockPlan,
    w: &[T],
    q: &mut [u8],
    scales: &mut [f32],
) -> Result<()> {
    plan.check_buffers(w.len(), q.len(), scales.len())?;
    let (params, shape) = (plan.params(), plan.input());
    let (rows, cols, stride) = (shape.rows(), shape.cols(), shape.row_stride());
    let (bn, bk) = plan.block();
    let col_blocks = plan.scale_shape().cols();
    let row_blocks = plan.scale_shape().rows();
    if plan.is_empty() {
        // N == 0 or K == 0: there is no block.
        return Ok(());
    }

    let value = |n: usize, k: usize| w[n * stride + k].to_f32();
    for bi in 0..row_blocks {
        let rows_of_block = bi * bn..((bi + 1) * bn).min(rows);
        for bj in 0..col_blocks {
            let cols_of_block = bj * bk..((bj + 1) * bk).min(cols);
            // (n, k) of every valid element of the block, row by row.
            let elements = || {
                let cols_of_block = cols_of_block.clone();
                rows_of_block.clone().flat_map(move |n| cols_of_block.clone().map(move |k| (n, k)))
            };

            let amax = amax(elements().map(|(n, k)| value(n, k)));
            // max(amax, eps) / fp8_max, rounded up to a power of two for ue8m0.
            let scale = params.scale(amax);
            for (n, k) in elements() {
                // encode(clamp(w / scale, -fp8_max, fp8_max))
                q[n * cols + k] = params.quantize(value(n, k), scale);
            }
            scales[bi * col_blocks + bj] = scale;
        }
    }
    Ok(())
}
