//! Shared helpers of the quantizer tests (CPU now, GPU later).
//!
//! - [`Rng`]: a small deterministic generator, so a failing case is
//!   reproducible from its seed alone.
//! - [`random_matrix`]: inputs with a mix of magnitudes, zeros, all-zero rows
//!   and NaN in the stride padding (which no quantizer may read).
//! - [`reference_decode`] and [`half_spacing`]: the fp8 formats computed from
//!   the spec's table, independently of `quant_kernels::fp8`.
//! - [`check_token_group_output`] / [`check_block_output`]: the properties
//!   every quantizer output must have, whoever produced it (CPU or GPU).
//! - [`naive_gemm_f64`] and [`max_rel_err`]: the dequantize-then-matmul oracle
//!   of the block-scale GEMM.
//! - [`fused`]: the cases of the fused quantizers (silu_mul, rms_norm, the
//!   masked MoE layout), shared by their CPU and GPU tests.
//! - [`bad_input`]: the invalid calls of every entry point and the typed
//!   error each must return, shared by the CPU and GPU bad-input tests.
#![deny(missing_docs)]

pub mod bad_input;
pub mod fused;

use quant_host::cpu;
use quant_host::{BlockConfig, Element, Fp8Format, MatrixShape, ScaleLayout, ScaleMode, TokenGroupConfig};

/// SplitMix64: tiny, deterministic, good enough to generate test inputs.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed` (proptest supplies the seed, so it shrinks
    /// and replays like any other input).
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`; the modulo bias is irrelevant here).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Uniform in `lo..=hi`.
    pub fn range_i32(&mut self, lo: i32, hi: i32) -> i32 {
        lo + self.below((hi - lo + 1) as u64) as i32
    }
}

/// The binary exponent range random inputs of type `T` draw from: wide for
/// f32/bf16, inside f16's finite range (down into its subnormals) for f16.
fn exponent_range<T: Element>() -> (i32, i32) {
    match T::DTYPE {
        quant_host::DType::F16 => (-26, 13),
        _ => (-40, 40),
    }
}

/// A `rows x cols` matrix with row stride `stride` (`>= cols`), as a buffer of
/// exactly [`MatrixShape::extent`] elements.
///
/// Each row has its own magnitude (2^e, e drawn from a wide range) and values
/// spread over 2^20 below it, so groups contain fp8 normals, values that land
/// in the fp8 subnormals and values that round to zero (and, for f16, f16
/// subnormals). About 5% of the rows are
/// all zero (every group of such a row is an all-zero group), 10% of the
/// 32-column segments are zero, and 5% of the elements are ±0. The stride
/// padding holds NaN: a quantizer that reads it produces a NaN scale, which
/// the checks below report.
pub fn random_matrix<T: Element>(rng: &mut Rng, rows: usize, cols: usize, stride: usize) -> Vec<T> {
    assert!(stride >= cols, "random_matrix: stride {stride} < cols {cols}");
    let len = if rows == 0 { 0 } else { (rows - 1) * stride + cols };
    let mut data = vec![T::from_f32(f32::NAN); len];
    let (lo, hi) = exponent_range::<T>();
    for r in 0..rows {
        let zero_row = rng.chance(0.05);
        let row_exp = rng.range_i32(lo + 20, hi);
        let mut zero_segment = false;
        for c in 0..cols {
            if c % 32 == 0 {
                zero_segment = rng.chance(0.1);
            }
            let value = if zero_row || zero_segment || rng.chance(0.05) {
                if rng.chance(0.5) {
                    -0.0
                } else {
                    0.0
                }
            } else {
                let e = row_exp - rng.range_i32(0, 20);
                let sign = if rng.chance(0.5) { -1.0 } else { 1.0 };
                (sign * (1.0 + rng.unit()) * 2f64.powi(e)) as f32
            };
            data[r * stride + c] = T::from_f32(value);
        }
    }
    data
}

/// The value of an fp8 code, computed from its bit fields and the spec's table
/// with f64 arithmetic (not with `quant_kernels::fp8`). `None` for NaN codes.
pub fn reference_decode(format: Fp8Format, code: u8) -> Option<f64> {
    let sign = if code & 0x80 != 0 { -1.0 } else { 1.0 };
    let exponent = ((code >> 3) & 0xF) as i32;
    let mantissa = (code & 0x7) as f64;
    let bias = match format {
        Fp8Format::E4M3Fn => 7,
        Fp8Format::E4M3Fnuz => 8,
    };
    let is_nan = match format {
        Fp8Format::E4M3Fn => code & 0x7F == 0x7F,
        Fp8Format::E4M3Fnuz => code == 0x80,
    };
    if is_nan {
        return None;
    }
    let magnitude = if exponent == 0 {
        mantissa / 8.0 * 2f64.powi(1 - bias)
    } else {
        (1.0 + mantissa / 8.0) * 2f64.powi(exponent - bias)
    };
    Some(sign * magnitude)
}

/// The largest finite value of `format`, from the spec's table.
pub fn reference_max(format: Fp8Format) -> f64 {
    match format {
        Fp8Format::E4M3Fn => 448.0,
        Fp8Format::E4M3Fnuz => 240.0,
    }
}

/// Half the distance between the two fp8 values around `|y|` (for
/// `|y| <= max`): half an ulp of the format, the most that rounding to
/// nearest can move a value. Subnormals have the spacing of the smallest
/// binade.
pub fn half_spacing(format: Fp8Format, y: f64) -> f64 {
    let bias = match format {
        Fp8Format::E4M3Fn => 7,
        Fp8Format::E4M3Fnuz => 8,
    };
    let min_exp = 1 - bias;
    let e = if y == 0.0 { min_exp } else { (y.abs().log2().floor() as i32).max(min_exp) };
    2f64.powi(e - 3) / 2.0
}

/// Whether `scale` is a power of two (normal or subnormal f32).
pub fn is_power_of_two(scale: f32) -> bool {
    let bits = scale.to_bits();
    let (exp, mant) = (bits >> 23 & 0xFF, bits & 0x7F_FFFF);
    bits >> 31 == 0 && exp != 0xFF && if exp == 0 { mant.is_power_of_two() } else { mant == 0 }
}

/// Checks one group's (or block's) outputs against the spec, for finite input.
///
/// `xs` are the group's inputs, `codes` its codes and `out` their dequantized
/// values (same order); `what` names the group in messages.
#[allow(clippy::too_many_arguments)]
fn check_group(
    what: &str,
    format: Fp8Format,
    eps: f32,
    fp8_max: f32,
    mode: ScaleMode,
    scale: f32,
    xs: &[f32],
    codes: &[u8],
    out: &[f32],
) {
    assert!(xs.iter().all(|x| x.is_finite()), "{what}: check_group is for finite input");
    let amax = xs.iter().fold(0f32, |m, x| m.max(x.abs()));
    let floored = amax.max(eps);
    match mode {
        // The spec's IEEE f32 quotient, bit for bit.
        ScaleMode::Float => assert_eq!(
            scale.to_bits(),
            (floored / fp8_max).to_bits(),
            "{what}: float scale {scale:e} != max({amax:e}, {eps:e}) / {fp8_max}"
        ),
        // A power of two that bounds amax' / fp8_max from above within a factor 2.
        ScaleMode::Ue8m0 => {
            let ideal = floored as f64 / fp8_max as f64;
            assert!(is_power_of_two(scale), "{what}: ue8m0 scale {scale:e} is not a power of two");
            assert!(
                scale as f64 >= ideal && (scale as f64) < 2.0 * ideal,
                "{what}: ue8m0 scale {scale:e} not in [{ideal:e}, 2 * {ideal:e})"
            );
        }
    }
    let code_bound = fp8_max as f64 + half_spacing(format, fp8_max as f64);
    for ((&x, &code), &dq) in xs.iter().zip(codes).zip(out) {
        let value = reference_decode(format, code);
        let value = value.unwrap_or_else(|| panic!("{what}: NaN code {code:#04x} for finite input {x:e}"));
        assert!(value.abs() <= code_bound, "{what}: code {code:#04x} = {value} beyond fp8_max {fp8_max}");
        if amax == 0.0 {
            assert_eq!(dq, 0.0, "{what}: all-zero group dequantizes to {dq:e}");
            continue;
        }
        // Rounding to fp8 moves x / scale by at most half an fp8 ulp; the f32
        // division, the clamp (|x / scale| may exceed fp8_max by an f32 ulp)
        // and the f32 product of dequantization add a few f32 ulps.
        let s = scale as f64;
        let y = (x as f64 / s).abs() * (1.0 + 2f64.powi(-20));
        let bound = s * (half_spacing(format, y.min(fp8_max as f64)) + fp8_max as f64 * 2f64.powi(-21))
            + (x as f64).abs() * 2f64.powi(-22);
        let err = (dq as f64 - x as f64).abs();
        assert!(
            err <= bound,
            "{what}: x = {x:e} dequantizes to {dq:e} (code {code:#04x}, scale {scale:e}): error {err:e} > {bound:e}"
        );
    }
}

/// Checks the output of any `per_token_group_quant_fp8` (CPU or GPU) for a
/// finite input `x`: the scales (IEEE quotient, or ue8m0 powers of two within
/// a factor 2), the TMA padding (zeros), the codes (no NaN, within fp8_max),
/// and the dequantized values (within half an fp8 ulp of `x` relative to the
/// group's scale; exact zeros for an all-zero group).
pub fn check_token_group_output<T: Element>(
    x: &[T],
    shape: MatrixShape,
    cfg: &TokenGroupConfig,
    q: &[u8],
    scales: &[f32],
) {
    let params = cfg.params().expect("valid config");
    let (rows, cols) = (shape.rows(), shape.cols());
    let gs = cfg.group_size.get();
    let groups = cols.div_ceil(gs);
    let mut out = vec![f32::NAN; rows * cols];
    cpu::dequantize_token_group(q, scales, rows, cols, cfg, &mut out).expect("dequantize_token_group");
    let (r64, g64) = (rows as u64, groups as u64);
    for g in 0..groups {
        for m in rows..cfg.layout.padded_rows(r64) as usize {
            let pad = scales[cfg.layout.index(m as u64, g as u64, r64, g64) as usize];
            assert_eq!(pad.to_bits(), 0, "padding scale ({m}, {g}) = {pad:e}, expected +0");
        }
    }
    for m in 0..rows {
        for g in 0..groups {
            let cols_of_group = g * gs..((g + 1) * gs).min(cols);
            let xs: Vec<f32> = cols_of_group.clone().map(|k| x[m * shape.row_stride() + k].to_f32()).collect();
            let range = m * cols + cols_of_group.start..m * cols + cols_of_group.end;
            let scale = scales[cfg.layout.index(m as u64, g as u64, r64, g64) as usize];
            check_group(
                &format!("row {m} group {g} ({})", cfg.layout.name()),
                cfg.format,
                params.eps(),
                params.fp8_max(),
                cfg.scale_mode,
                scale,
                &xs,
                &q[range.clone()],
                &out[range],
            );
        }
    }
}

/// Checks the output of any `per_block_quant_fp8` (CPU or GPU) for a finite
/// input `w`, with the properties of [`check_token_group_output`] per block.
pub fn check_block_output<T: Element>(w: &[T], shape: MatrixShape, cfg: &BlockConfig, q: &[u8], scales: &[f32]) {
    let params = cfg.params().expect("valid config");
    let (rows, cols) = (shape.rows(), shape.cols());
    let (bn, bk) = (cfg.block_rows, cfg.block_cols);
    let col_blocks = cols.div_ceil(bk);
    let mut out = vec![f32::NAN; rows * cols];
    cpu::dequantize_block(q, scales, rows, cols, cfg, &mut out).expect("dequantize_block");
    for bi in 0..rows.div_ceil(bn) {
        for bj in 0..col_blocks {
            let (mut xs, mut codes, mut dq) = (vec![], vec![], vec![]);
            for n in bi * bn..((bi + 1) * bn).min(rows) {
                for k in bj * bk..((bj + 1) * bk).min(cols) {
                    xs.push(w[n * shape.row_stride() + k].to_f32());
                    codes.push(q[n * cols + k]);
                    dq.push(out[n * cols + k]);
                }
            }
            check_group(
                &format!("block ({bi}, {bj})"),
                cfg.format,
                params.eps(),
                params.fp8_max(),
                cfg.scale_mode,
                scales[bi * col_blocks + bj],
                &xs,
                &codes,
                &dq,
            );
        }
    }
}

/// `C = dequant(A) * dequant(B)^T` in f64, with the dequantized operands
/// computed in f64 from [`reference_decode`] (so no f32 rounding at all):
/// the naive oracle of `mm_fp8_blockscale`. `a_scales` is in `a_layout`,
/// `b_scales` is `[ceil(N/128), ceil(K/128)]` row-major. Row-major `[M, N]`.
#[allow(clippy::too_many_arguments)]
pub fn naive_gemm_f64(
    format: Fp8Format,
    a: &[u8],
    a_scales: &[f32],
    a_layout: ScaleLayout,
    b: &[u8],
    b_scales: &[f32],
    m: usize,
    n: usize,
    k: usize,
) -> Vec<f64> {
    let kb = k.div_ceil(128);
    let decode = |c: u8| reference_decode(format, c).unwrap_or(f64::NAN);
    let a_deq: Vec<f64> = (0..m * k)
        .map(|i| {
            let (row, col) = (i / k, i % k);
            let at = a_layout.index(row as u64, (col / 128) as u64, m as u64, kb as u64) as usize;
            decode(a[i]) * a_scales[at] as f64
        })
        .collect();
    let b_deq: Vec<f64> = (0..n * k)
        .map(|i| {
            let (row, col) = (i / k, i % k);
            decode(b[i]) * b_scales[(row / 128) * kb + col / 128] as f64
        })
        .collect();
    let mut c = vec![0f64; m * n];
    for i in 0..m {
        for j in 0..n {
            c[i * n + j] = (0..k).map(|l| a_deq[i * k + l] * b_deq[j * k + l]).sum();
        }
    }
    c
}

/// `max |c - reference| / max |reference|`: the spec's GEMM error measure.
pub fn max_rel_err(c: &[f32], reference: &[f64]) -> f64 {
    assert_eq!(c.len(), reference.len());
    let scale = reference.iter().fold(0f64, |m, v| m.max(v.abs()));
    let err = c.iter().zip(reference).fold(0f64, |m, (&c, &r)| m.max((c as f64 - r).abs()));
    if scale == 0.0 {
        err
    } else {
        err / scale
    }
}
