//! CPU `mm_fp8_blockscale`: the spec's formula, literally.

use super::{check_len, token_group_scales_len};
use crate::error::{QuantError, Result};
use crate::gemm::{GemmConfig, GemmOutput, GemmShape, OutputType, GEMM_BLOCK};

/// How the reference accumulates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Accumulation {
    /// f64 throughout, rounded to f32 once at the end: the most accurate
    /// oracle, the one the GPU GEMM's tolerance is measured against.
    #[default]
    F64,
    /// f32 per k-block, scaled and summed in f32: what the GPU kernel does, so
    /// its rounding error can be studied on the CPU.
    F32,
}

/// `C[m, n] = sum_b sa[m, b] * sb[n / 128, b] * sum_{k in b} decode(A[m, k]) * decode(B[n, k])`.
///
/// `a` is `[M, K]` fp8 codes (row-major, row stride K) with per-token scales
/// `[M, ceil(K / 128)]` laid out as `cfg.a_scale_layout`; `b` is `[N, K]` fp8
/// codes with block scales `[ceil(N / 128), ceil(K / 128)]`, row-major. `out`
/// is `[M, N]` row-major, of the type `cfg.output` names; bf16 output is the
/// f32 result rounded to nearest even. M, N and K need not be multiples of 128.
///
/// Errors on wrongly sized buffers or an output buffer of the wrong type.
#[allow(clippy::too_many_arguments)]
pub fn mm_fp8_blockscale(
    a: &[u8],
    a_scales: &[f32],
    b: &[u8],
    b_scales: &[f32],
    shape: GemmShape,
    cfg: &GemmConfig,
    accumulation: Accumulation,
    out: GemmOutput<'_>,
) -> Result<()> {
    cfg.check()?;
    let (m, n, k) = (shape.m(), shape.n(), shape.k());
    let k_blocks = shape.k_blocks();
    // GemmShape guarantees that M * K, N * K and M * N fit in usize.
    check_len("a", (m * k) as u64, a.len())?;
    check_len("b", (n * k) as u64, b.len())?;
    let a_scales_len = token_group_scales_len(cfg.a_scale_layout, m, k_blocks)?;
    check_len("a_scales", a_scales_len, a_scales.len())?;
    check_len("b_scales", (shape.n_blocks() * k_blocks) as u64, b_scales.len())?;
    let out_len = match &out {
        GemmOutput::Bf16(c) => c.len(),
        GemmOutput::F32(c) => c.len(),
    };
    check_len("c", (m * n) as u64, out_len)?;
    let out_type = match &out {
        GemmOutput::Bf16(_) => OutputType::Bf16,
        GemmOutput::F32(_) => OutputType::F32,
    };
    if out_type != cfg.output {
        return Err(QuantError::ShapeMismatch(format!(
            "the output buffer is {out_type:?} but cfg.output is {:?}",
            cfg.output
        )));
    }

    let decode = |code: u8| cfg.format.decode(code);
    let sa = |row: usize, blk: usize| {
        let at = cfg.a_scale_layout.index(row as u64, blk as u64, m as u64, k_blocks as u64);
        a_scales[at as usize]
    };
    let sb = |col: usize, blk: usize| b_scales[(col / GEMM_BLOCK) * k_blocks + blk];
    // The columns of k-block `blk`; the last one may be partial (K tail).
    let block_cols = |blk: usize| blk * GEMM_BLOCK..((blk + 1) * GEMM_BLOCK).min(k);

    let c_value = |row: usize, col: usize| -> f32 {
        let a_row = &a[row * k..][..k];
        let b_row = &b[col * k..][..k];
        match accumulation {
            Accumulation::F64 => {
                let mut total = 0f64;
                for blk in 0..k_blocks {
                    let mut partial = 0f64;
                    for i in block_cols(blk) {
                        partial += decode(a_row[i]) as f64 * decode(b_row[i]) as f64;
                    }
                    total += sa(row, blk) as f64 * sb(col, blk) as f64 * partial;
                }
                total as f32
            }
            Accumulation::F32 => {
                let mut total = 0f32;
                for blk in 0..k_blocks {
                    let mut partial = 0f32;
                    for i in block_cols(blk) {
                        partial += decode(a_row[i]) * decode(b_row[i]);
                    }
                    total += sa(row, blk) * sb(col, blk) * partial;
                }
                total
            }
        }
    };

    match out {
        GemmOutput::F32(c) => {
            for row in 0..m {
                for col in 0..n {
                    c[row * n + col] = c_value(row, col);
                }
            }
        }
        GemmOutput::Bf16(c) => {
            for row in 0..m {
                for col in 0..n {
                    c[row * n + col] = half::bf16::from_f32(c_value(row, col));
                }
            }
        }
    }
    Ok(())
}
