//! CPU `per_block_quant_fp8` (spec section "per_block_quant_fp8").

use super::{amax, check_len};
use crate::config::BlockConfig;
use crate::element::Element;
use crate::error::Result;
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
    let params = cfg.params()?;
    let (rows, cols, stride) = (shape.rows(), shape.cols(), shape.row_stride());
    let (bn, bk) = (cfg.block_rows, cfg.block_cols);
    let (row_blocks, col_blocks) = (rows.div_ceil(bn), cols.div_ceil(bk));
    shape.check_buffer("w", w.len())?;
    check_len("q", shape.numel() as u64, q.len())?;
    // Both factors are at most usize::MAX, so the u64 product cannot overflow
    // on 32-bit hosts and is at most `rows * cols` on 64-bit ones.
    check_len(
        "scales",
        row_blocks as u64 * col_blocks as u64,
        scales.len(),
    )?;
    if shape.numel() == 0 {
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
                rows_of_block
                    .clone()
                    .flat_map(move |n| cols_of_block.clone().map(move |k| (n, k)))
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
