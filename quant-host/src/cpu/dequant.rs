//! CPU dequantization (spec section "dequantize"): `x' = decode(q) * scale`.
//!
//! The inverse of the quantizers, used to check them (a dequantized value is
//! within half an fp8 ulp of its input, relative to its group's scale) and to
//! build the naive reference of the GEMM.

use super::{check_len, token_group_scales_len};
use crate::config::{BlockConfig, TokenGroupConfig};
use crate::error::Result;
use crate::shape::MatrixShape;

/// Dequantizes the output of `per_token_group_quant_fp8`: `q` (`rows * cols`
/// codes, row-major) with `scales` laid out as `cfg.layout` says, into `out`
/// (`rows * cols` f32, row-major): `out[m, k] = decode(q[m, k]) * scale(m, k / GS)`,
/// one IEEE f32 product.
///
/// Only `cfg.format`, `cfg.group_size` and `cfg.layout` matter, but the whole
/// config is validated: a config that cannot have produced `q` is a bad input.
pub fn dequantize_token_group(
    q: &[u8],
    scales: &[f32],
    rows: usize,
    cols: usize,
    cfg: &TokenGroupConfig,
    out: &mut [f32],
) -> Result<()> {
    cfg.params()?;
    let shape = MatrixShape::new(rows, cols)?;
    let gs = cfg.group_size.get();
    let groups = cols.div_ceil(gs);
    check_len("q", shape.numel() as u64, q.len())?;
    check_len(
        "scales",
        token_group_scales_len(cfg.layout, rows, groups)?,
        scales.len(),
    )?;
    check_len("out", shape.numel() as u64, out.len())?;
    if shape.numel() == 0 {
        return Ok(());
    }

    for m in 0..rows {
        for k in 0..cols {
            let at = cfg
                .layout
                .index(m as u64, (k / gs) as u64, rows as u64, groups as u64);
            let scale = scales[at as usize];
            out[m * cols + k] = cfg.format.decode(q[m * cols + k]) * scale;
        }
    }
    Ok(())
}

/// Dequantizes the output of `per_block_quant_fp8`: `q` (`rows * cols` codes,
/// row-major) with `scales` (`[ceil(rows / block_rows), ceil(cols / block_cols)]`,
/// row-major) into `out` (`rows * cols` f32, row-major):
/// `out[n, k] = decode(q[n, k]) * scale(n / BN, k / BK)`, one IEEE f32 product.
///
/// The whole config is validated, as in [`dequantize_token_group`].
pub fn dequantize_block(
    q: &[u8],
    scales: &[f32],
    rows: usize,
    cols: usize,
    cfg: &BlockConfig,
    out: &mut [f32],
) -> Result<()> {
    cfg.params()?;
    let shape = MatrixShape::new(rows, cols)?;
    let (bn, bk) = (cfg.block_rows, cfg.block_cols);
    let col_blocks = cols.div_ceil(bk);
    check_len("q", shape.numel() as u64, q.len())?;
    check_len(
        "scales",
        rows.div_ceil(bn) as u64 * col_blocks as u64,
        scales.len(),
    )?;
    check_len("out", shape.numel() as u64, out.len())?;
    if shape.numel() == 0 {
        return Ok(());
    }

    for n in 0..rows {
        for k in 0..cols {
            let scale = scales[(n / bn) * col_blocks + k / bk];
            out[n * cols + k] = cfg.format.decode(q[n * cols + k]) * scale;
        }
    }
    Ok(())
}
