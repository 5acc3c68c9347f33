//! CPU `per_token_group_quant_fp8`.

use super::check_len;
use crate::config::TokenGroupConfig;
use crate::element::Element;
use crate::error::Result;
use crate::shape::MatrixShape;
use quant_kernels::scale::{abs, nan_max};

/// Quantizes `x` (`shape`, row stride included) into `q` (`rows * cols` codes,
/// row-major) and `scales` (laid out as `cfg.layout` says).
pub fn per_token_group_quant_fp8<T: Element>(
    x: &[T],
    shape: MatrixShape,
    cfg: &TokenGroupConfig,
    q: &mut [u8],
    scales: &mut [f32],
) -> Result<()> {
    let params = cfg.params()?;
    let (rows, cols) = (shape.rows(), shape.cols());
    let gs = cfg.group_size.get();
    let groups = cols.div_ceil(gs);
    shape.check_buffer("x", x.len())?;
    check_len("q", shape.numel() as u64, q.len())?;
    let scale_len = cfg.layout.len(rows as u64, groups as u64);
    check_len("scales", scale_len, scales.len())?;

    for m in 0..rows {
        let row = &x[m * shape.row_stride()..][..cols];
        for g in 0..groups {
            let group = &row[g * gs..((g + 1) * gs).min(cols)];
            let amax = group.iter().fold(0.0f32, |acc, v| nan_max(acc, abs(v.to_f32())));
            let scale = params.scale(amax);
            for (k, v) in group.iter().enumerate() {
                q[m * cols + g * gs + k] = params.quantize(v.to_f32(), scale);
            }
            let at = cfg.layout.index(m as u64, g as u64, rows as u64, groups as u64);
            scales[at as usize] = scale;
        }
    }
    for g in 0..groups as u64 {
        for m in rows as u64..cfg.layout.padded_rows(rows as u64) {
            scales[cfg.layout.index(m, g, rows as u64, groups as u64) as usize] = 0.0;
        }
    }
    Ok(())
}
