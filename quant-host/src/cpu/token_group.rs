//! CPU `per_token_group_quant_fp8` (spec section "per_token_group_quant_fp8").

use super::amax;
use crate::config::TokenGroupConfig;
use crate::element::Element;
use crate::error::Result;
use crate::plan::TokenGroupPlan;
use crate::shape::MatrixShape;

/// Quantizes `x` (`shape`, row stride included) into `q` (`rows * cols` codes,
/// row-major, row stride `cols`) and `scales` (laid out as `cfg.layout` says;
/// the padding rows of the TMA-aligned layout are written as 0).
///
/// Each row is cut into groups of `cfg.group_size` columns, the last one
/// possibly partial; each group gets one scale computed from its own values
/// only. Errors on an invalid `cfg`, a short `x` or wrongly sized outputs.
pub fn per_token_group_quant_fp8<T: Element>(
    x: &[T],
    shape: MatrixShape,
    cfg: &TokenGroupConfig,
    q: &mut [u8],
    scales: &mut [f32],
) -> Result<()> {
    per_token_group_quant_fp8_planned(&TokenGroupPlan::new(cfg, shape)?, x, q, scales)
}

/// [`per_token_group_quant_fp8`] of a plan already checked (the one
/// validation step `Device`, the GPU launches and this path share); only
/// the buffer lengths are checked here.
pub fn per_token_group_quant_fp8_planned<T: Element>(
    plan: &TokenGroupPlan,
    x: &[T],
    q: &mut [u8],
    scales: &mut [f32],
) -> Result<()> {
    plan.check_buffers(x.len(), q.len(), scales.len())?;
    let (params, shape, cfg) = (plan.params(), plan.input(), plan.config());
    let (rows, cols, stride) = (shape.rows(), shape.cols(), shape.row_stride());
    let gs = plan.group_size().get();
    let groups = plan.groups();
    if plan.is_empty() {
        // M == 0 or K == 0: there is no group, and no scale to write.
        return Ok(());
    }
    // From here every index is below a checked buffer length, so `usize`
    // arithmetic cannot overflow.
    let scale_at = |m: usize, g: usize| cfg.layout.index(m as u64, g as u64, rows as u64, groups as u64) as usize;

    for m in 0..rows {
        let x_row = &x[m * stride..][..cols];
        let q_row = &mut q[m * cols..][..cols];
        for g in 0..groups {
            // The group's valid columns: a K tail uses only these.
            let cols_of_group = g * gs..((g + 1) * gs).min(cols);
            let xs = &x_row[cols_of_group.clone()];

            let amax = amax(xs.iter().map(|v| v.to_f32()));
            // max(amax, eps) / fp8_max, rounded up to a power of two for ue8m0.
            let scale = params.scale(amax);
            for (code, v) in q_row[cols_of_group].iter_mut().zip(xs) {
                // encode(clamp(x / scale, -fp8_max, fp8_max))
                *code = params.quantize(v.to_f32(), scale);
            }
            scales[scale_at(m, g)] = scale;
        }
    }

    // The TMA-aligned layout pads each column of scales to a multiple of 4 rows.
    let padded_rows = cfg.layout.padded_rows(rows as u64) as usize;
    for g in 0..groups {
        for m in rows..padded_rows {
            scales[scale_at(m, g)] = 0.0;
        }
    }
    Ok(())
}
