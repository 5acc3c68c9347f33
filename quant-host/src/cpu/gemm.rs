//! CPU `mm_fp8_blockscale`: the spec's formula, literally.

use super::check_len;
use crate::error::{QuantError, Result};
use crate::gemm::{GemmConfig, GemmOutput, GemmShape, GEMM_BLOCK};

/// How the reference accumulates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Accumulation {
    /// f64 throughout: the most accurate oracle.
    #[default]
    F64,
    /// f32 per k-block, scaled and summed in f32: what the GPU kernel does.
    F32,
}

/// `C[m, n] = sum_b sa[m, b] * sb[n / 128, b] * sum_{k in b} decode(A[m, k]) * decode(B[n, k])`.
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
    let (m, n, k) = (shape.m(), shape.n(), shape.k());
    let kb = shape.k_blocks();
    check_len("a", (m * k) as u64, a.len())?;
    check_len("b", (n * k) as u64, b.len())?;
    check_len("a_scales", shape.a_scales_len(cfg.a_scale_layout) as u64, a_scales.len())?;
    check_len("b_scales", shape.b_scales_len() as u64, b_scales.len())?;
    let out_len = match &out {
        GemmOutput::Bf16(c) => c.len(),
        GemmOutput::F32(c) => c.len(),
    };
    check_len("c", (m * n) as u64, out_len)?;
    if matches!(
        (&out, cfg.output),
        (GemmOutput::Bf16(_), crate::gemm::OutputType::F32) | (GemmOutput::F32(_), crate::gemm::OutputType::Bf16)
    ) {
        return Err(QuantError::ShapeMismatch("output buffer type differs from cfg.output".into()));
    }
    let decode = |code: u8| cfg.format.decode(code);
    let sa = |row: usize, blk: usize| {
        a_scales[cfg.a_scale_layout.index(row as u64, blk as u64, m as u64, kb as u64) as usize]
    };
    let sb = |col: usize, blk: usize| b_scales[(col / GEMM_BLOCK) * kb + blk];

    let mut c = vec![0f32; m * n];
    for row in 0..m {
        for col in 0..n {
            let value = match accumulation {
                Accumulation::F64 => {
                    let mut total = 0f64;
                    for blk in 0..kb {
                        let mut partial = 0f64;
                        for i in blk * GEMM_BLOCK..((blk + 1) * GEMM_BLOCK).min(k) {
                            partial += decode(a[row * k + i]) as f64 * decode(b[col * k + i]) as f64;
                        }
                        total += sa(row, blk) as f64 * sb(col, blk) as f64 * partial;
                    }
                    total as f32
                }
                Accumulation::F32 => {
                    let mut total = 0f32;
                    for blk in 0..kb {
                        let mut partial = 0f32;
                        for i in blk * GEMM_BLOCK..((blk + 1) * GEMM_BLOCK).min(k) {
                            partial += decode(a[row * k + i]) * decode(b[col * k + i]);
                        }
                        total += sa(row, blk) * sb(col, blk) * partial;
                    }
                    total
                }
            };
            c[row * n + col] = value;
        }
    }
    match out {
        GemmOutput::F32(dst) => dst.copy_from_slice(&c),
        GemmOutput::Bf16(dst) => {
            for (d, v) in dst.iter_mut().zip(c) {
                *d = half::bf16::from_f32(v);
            }
        }
    }
    Ok(())
}
