//! CPU `per_block_quant_fp8`.

use super::check_len;
use crate::config::BlockConfig;
use crate::element::Element;
use crate::error::Result;
use crate::shape::MatrixShape;
use quant_kernels::scale::{abs, nan_max};

/// Quantizes `w` (`[N, K]`, row stride included) in blocks of
/// `cfg.block_rows x cfg.block_cols` into `q` (`N * K` codes, row-major) and
/// `scales` (`[ceil(N / block_rows), ceil(K / block_cols)]`, row-major).
pub fn per_block_quant_fp8<T: Element>(
    w: &[T],
    shape: MatrixShape,
    cfg: &BlockConfig,
    q: &mut [u8],
    scales: &mut [f32],
) -> Result<()> {
    let params = cfg.params()?;
    let (rows, cols) = (shape.rows(), shape.cols());
    let (bn, bk) = (cfg.block_rows, cfg.block_cols);
    let (block_rows, block_cols) = (rows.div_ceil(bn), cols.div_ceil(bk));
    shape.check_buffer("w", w.len())?;
    check_len("q", shape.numel() as u64, q.len())?;
    check_len(
        "scales",
        block_rows as u64 * block_cols as u64,
        scales.len(),
    )?;

    let value = |n: usize, k: usize| w[n * shape.row_stride() + k].to_f32();
    for bi in 0..block_rows {
        let row_range = bi * bn..((bi + 1) * bn).min(rows);
        for bj in 0..block_cols {
            let col_range = bj * bk..((bj + 1) * bk).min(cols);
            let mut amax = 0.0f32;
            for n in row_range.clone() {
                for k in col_range.clone() {
                    amax = nan_max(amax, abs(value(n, k)));
                }
            }
            let scale = params.scale(amax);
            for n in row_range.clone() {
                for k in col_range.clone() {
                    q[n * cols + k] = params.quantize(value(n, k), scale);
                }
            }
            scales[bi * block_cols + bj] = scale;
        }
    }
    Ok(())
}
