//! The fused quantizers' CPU reference against the contract (docs/spec.md,
//! "Fused quantizers"):
//! - a fused op is the plain quantizer applied to its f32 activation `h`
//!   (bit for bit, every layout, mode, group size, tail and stride);
//! - `h` itself is close to the formula computed in f64;
//! - the masked MoE layout writes exactly the valid rows, as the dense call
//!   does, and leaves every other row untouched;
//! - bad `masked_m` counts are typed errors.

use half::{bf16, f16};
use proptest::prelude::*;
use quant_host::cpu::fused::{round_to, row_square_sum, HostOps};
use quant_host::{cpu, Device, Element, MatrixShape, QuantError, TokenGroupConfig};
use quant_kernels::fused::{rms_apply, rms_inverse, silu_mul};
use quant_tests::fused::{masked_case, rms_case, run_group, run_rms, silu_case, GroupCase, RmsCase};

/// The plain CPU quantizer of f32 `h` (`rows x cols`, dense).
fn quantize_h(h: &[f32], rows: usize, cols: usize, cfg: &TokenGroupConfig) -> (Vec<u8>, Vec<f32>) {
    let shape = MatrixShape::new(rows, cols).unwrap();
    let plan = quant_host::TokenGroupPlan::new(cfg, shape).unwrap();
    let mut q = vec![0u8; rows * cols];
    let mut s = vec![0f32; plan.scale_shape().numel()];
    cpu::per_token_group_quant_fp8(h, shape, cfg, &mut q, &mut s).unwrap();
    (q, s)
}

fn same_scales(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()))
}

fn silu_h<T: Element>(case: &GroupCase, x: &[T]) -> Vec<f32> {
    let stride = case.input_shape(true).row_stride();
    let rows = case.experts * case.rows;
    let mut h = Vec::with_capacity(rows * case.cols);
    for m in 0..rows {
        for c in 0..case.cols {
            h.push(silu_mul::<HostOps>(x[m * stride + c].to_f32(), x[m * stride + case.cols + c].to_f32()));
        }
    }
    h
}

fn check_silu<T: Element>(case: &GroupCase) {
    let x = case.input::<T>(true);
    let (codes, scales) = run_group(&Device::Cpu, case, true, &x).unwrap();
    let h = silu_h(case, &x);
    let (want_codes, want_scales) = quantize_h(&h, case.rows, case.cols, &case.cfg);
    assert_eq!(codes, want_codes, "{case:?}");
    assert!(same_scales(&scales, &want_scales), "{case:?}");
    // h against the formula in f64: silu within 7 f32 ulps (docs/spec.md),
    // then the product with up, rounded once: a relative error below 8 eps.
    let stride = case.input_shape(true).row_stride();
    for m in 0..case.rows {
        for c in 0..case.cols {
            let (g, u) = (x[m * stride + c].to_f32() as f64, x[m * stride + case.cols + c].to_f32() as f64);
            let want = g / (1.0 + (-g).exp()) * u;
            let got = h[m * case.cols + c] as f64;
            if want.is_finite() && want.abs() > 1e-30 {
                assert!(
                    (got - want).abs() <= 8.0 * f32::EPSILON as f64 * want.abs(),
                    "silu({g}) * {u}: {got} vs {want}"
                );
            }
        }
    }
}

fn check_masked<T: Element>(case: &GroupCase, silu: bool) {
    let x = case.input::<T>(silu);
    let (codes, scales) = run_group(&Device::Cpu, case, silu, &x).unwrap();
    // The same rows, dense: one expert of all rows.
    let dense = GroupCase { masked: None, experts: 1, rows: case.experts * case.rows, ..case.clone() };
    let (dense_codes, dense_scales) = run_group(&Device::Cpu, &dense, silu, &x).unwrap();
    let plan = quant_host::FusedGroupPlan::new(
        if silu { quant_host::FusedOp::SiluMul } else { quant_host::FusedOp::Quant },
        &case.cfg,
        case.input_shape(silu),
        case.experts,
        true,
    )
    .unwrap();
    let dense_plan =
        quant_host::TokenGroupPlan::new(&case.cfg, MatrixShape::new(dense.rows, case.cols).unwrap()).unwrap();
    let counts = case.masked.as_ref().unwrap();
    let mut written = vec![false; scales.len()];
    for (e, &valid) in counts.iter().enumerate() {
        for m in 0..case.rows {
            let row = e * case.rows + m;
            let (got, want) = (&codes[row * case.cols..][..case.cols], &dense_codes[row * case.cols..][..case.cols]);
            if (m as u32) < valid {
                assert_eq!(got, want, "expert {e} row {m} {case:?}");
                for g in 0..plan.groups() {
                    let at = plan.scale_index(e, m, g);
                    let dense_at = case.cfg.layout.index(row as u64, g as u64, dense.rows as u64, plan.groups() as u64);
                    let (s, d) = (scales[at], dense_scales[dense_at as usize]);
                    assert!(s.to_bits() == d.to_bits() || (s.is_nan() && d.is_nan()), "scale e{e} m{m} g{g}");
                    written[at] = true;
                }
            } else {
                assert!(got.iter().all(|&c| c == 0), "expert {e} row {m} (invalid) was written");
            }
        }
    }
    assert_eq!(dense_plan.groups(), plan.groups());
    for (i, (&s, w)) in scales.iter().zip(&written).enumerate() {
        assert!(*w || s.to_bits() == 0, "scale {i} of an invalid row was written");
    }
}

fn rms_h<T: Element>(case: &RmsCase, y: &[f32], w: &[T]) -> Vec<f32> {
    let mut h = vec![0f32; y.len()];
    for (m, row) in y.chunks(case.cols).enumerate() {
        let inv = rms_inverse::<HostOps>(row_square_sum(row), case.cols as u64, case.cfg.norm_eps);
        for (c, &v) in row.iter().enumerate() {
            h[m * case.cols + c] = rms_apply(v, inv, w[c].to_f32());
        }
        // Against f64: the mean square of the row, then each element.
        let ms = row.iter().map(|&v| v as f64 * v as f64).sum::<f64>() / case.cols as f64;
        let inv64 = 1.0 / (ms + case.cfg.norm_eps as f64).sqrt();
        if inv64.is_finite() && ms.is_finite() {
            assert!(((inv as f64) - inv64).abs() <= 1e-5 * inv64, "row {m}: inv {inv} vs {inv64}");
        }
    }
    h
}

fn check_rms<T: Element>(case: &RmsCase) {
    let inputs = case.inputs::<T>();
    let ((codes, scales), r_out) = run_rms(&Device::Cpu, case, &inputs).unwrap();
    let (x, w, r) = &inputs;
    let stride = case.shape().row_stride();
    let mut y = Vec::with_capacity(case.rows * case.cols);
    for m in 0..case.rows {
        for c in 0..case.cols {
            let xv = x[m * stride + c];
            y.push(if case.residual {
                let sum: T = round_to(xv.to_f32() + r[m * case.cols + c].to_f32());
                let got = r_out[m * case.cols + c];
                assert_eq!(got.to_f32().to_bits(), sum.to_f32().to_bits(), "residual out ({m}, {c})");
                sum.to_f32()
            } else {
                xv.to_f32()
            });
        }
    }
    let h = rms_h(case, &y, w);
    let (want_codes, want_scales) = quantize_h(&h, case.rows, case.cols, &case.cfg.quant);
    assert_eq!(codes, want_codes, "{case:?}");
    assert!(same_scales(&scales, &want_scales), "{case:?}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn silu_mul_is_the_quantizer_of_its_f32_activation(case in silu_case(), dtype in 0u8..3) {
        match dtype {
            0 => check_silu::<bf16>(&case),
            1 => check_silu::<f16>(&case),
            _ => check_silu::<f32>(&case),
        }
    }

    #[test]
    fn masked_layout_writes_exactly_the_valid_rows(case in masked_case(), silu in any::<bool>(), dtype in 0u8..3) {
        match dtype {
            0 => check_masked::<bf16>(&case, silu),
            1 => check_masked::<f16>(&case, silu),
            _ => check_masked::<f32>(&case, silu),
        }
    }

    #[test]
    fn rms_norm_is_the_quantizer_of_its_f32_activation(case in rms_case(), dtype in 0u8..3) {
        match dtype {
            0 => check_rms::<bf16>(&case),
            1 => check_rms::<f16>(&case),
            _ => check_rms::<f32>(&case),
        }
    }
}

#[test]
fn nan_and_inf_follow_the_formula() {
    // One row of silu_mul, N = 256 (two groups): a NaN gate in group 0, an
    // infinite up in group 1.
    let mut x = vec![bf16::from_f32(0.5); 512];
    x[3] = bf16::NAN;
    x[256 + 130] = bf16::INFINITY;
    let dev = Device::Cpu;
    let q = dev
        .silu_mul_per_token_group_quant_fp8(
            &dev.upload(&x, MatrixShape::new(1, 512).unwrap()).unwrap(),
            &Default::default(),
        )
        .unwrap();
    let (codes, scales) = (q.codes.to_vec().unwrap(), q.scales.to_vec().unwrap());
    assert!(scales[0].is_nan() && codes[3] == 0x7F);
    assert_eq!(scales[1], f32::INFINITY);
    assert_eq!(codes[130], 0x7F, "inf / inf is NaN");
    assert_eq!(codes[131], 0, "finite / inf is 0");
}

#[test]
fn masked_counts_above_the_expert_rows_are_errors() {
    let dev = Device::Cpu;
    let x = dev.upload(&vec![f16::from_f32(1.0); 2 * 4 * 64], MatrixShape::new(8, 64).unwrap()).unwrap();
    let bad = dev.upload(&[4u32, 5], MatrixShape::new(1, 2).unwrap()).unwrap();
    let err = dev.per_token_group_quant_fp8_masked(&x, &bad, &Default::default()).unwrap_err();
    assert!(matches!(err, QuantError::MaskedRows { expert: 1, valid: 5, rows: 4 }), "{err}");
    let wrong_len = dev.upload(&[1u32, 1, 1], MatrixShape::new(1, 3).unwrap()).unwrap();
    assert!(matches!(
        dev.per_token_group_quant_fp8_masked(&x, &wrong_len, &Default::default()),
        Err(QuantError::ShapeMismatch(_))
    ));
    let ok = dev.upload(&[0u32, 4], MatrixShape::new(1, 2).unwrap()).unwrap();
    let q = dev.per_token_group_quant_fp8_masked(&x, &ok, &Default::default()).unwrap();
    let codes = q.codes.to_vec().unwrap();
    assert!(codes[..4 * 64].iter().all(|&c| c == 0) && codes[4 * 64..].iter().all(|&c| c == 0x7E));
}

#[test]
fn rms_rejects_bad_weight_and_residual_shapes() {
    let dev = Device::Cpu;
    let x = dev.upload(&vec![1f32; 2 * 64], MatrixShape::new(2, 64).unwrap()).unwrap();
    let w_short = dev.upload(&vec![1f32; 63], MatrixShape::new(1, 63).unwrap()).unwrap();
    let w = dev.upload(&vec![1f32; 64], MatrixShape::new(1, 64).unwrap()).unwrap();
    let cfg = Default::default();
    assert!(matches!(
        dev.rms_norm_per_token_group_quant_fp8(&x, &w_short, None, &cfg),
        Err(QuantError::ShapeMismatch(_))
    ));
    let mut r_short = dev.upload(&vec![1f32; 64], MatrixShape::new(1, 64).unwrap()).unwrap();
    assert!(matches!(
        dev.rms_norm_per_token_group_quant_fp8(&x, &w, Some(&mut r_short), &cfg),
        Err(QuantError::ShapeMismatch(_))
    ));
    // All ones: y / sqrt(1 + eps) * 1, every code the same.
    let q = dev.rms_norm_per_token_group_quant_fp8(&x, &w, None, &cfg).unwrap();
    let codes = q.codes.to_vec().unwrap();
    assert!(codes.iter().all(|&c| c == codes[0]) && codes[0] == 0x7E);
}

fn ue8m0(mut case: GroupCase) -> GroupCase {
    case.cfg.scale_mode = quant_host::ScaleMode::Ue8m0;
    case
}

fn check_packed_group<T: Element>(case: &GroupCase, silu: bool) {
    let x = case.input::<T>(silu);
    let (codes, words) = quant_tests::fused::run_group_packed(&Device::Cpu, case, silu, &x).unwrap();
    // The f32 result of the same call: its codes, and its scales packed by
    // the reference.
    let (f32_codes, scales) = run_group(&Device::Cpu, case, silu, &x).unwrap();
    assert_eq!(codes, f32_codes, "{case:?}");
    let plan = quant_host::FusedGroupPlan::new(
        if silu { quant_host::FusedOp::SiluMul } else { quant_host::FusedOp::Quant },
        &case.cfg,
        case.input_shape(silu),
        case.experts,
        case.masked.is_some(),
    )
    .unwrap();
    let want = quant_tests::fused::pack_reference(case.experts, case.rows, plan.groups(), |e, m, g| {
        let written = case.masked.as_ref().is_none_or(|c| (m as u32) < c[e]);
        written.then(|| scales[plan.scale_index(e, m, g)])
    });
    assert_eq!(words, want, "{case:?}");
}

fn check_packed_rms<T: Element>(case: &RmsCase) {
    let inputs = case.inputs::<T>();
    let ((codes, words), _) = quant_tests::fused::run_rms_packed(&Device::Cpu, case, &inputs).unwrap();
    let ((f32_codes, scales), _) = run_rms(&Device::Cpu, case, &inputs).unwrap();
    assert_eq!(codes, f32_codes, "{case:?}");
    let (layout, groups) = (case.cfg.quant.layout, case.cols.div_ceil(case.cfg.quant.group_size.get()));
    let want = quant_tests::fused::pack_reference(1, case.rows, groups, |_, m, g| {
        Some(scales[layout.index(m as u64, g as u64, case.rows as u64, groups as u64) as usize])
    });
    assert_eq!(words, want, "{case:?}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn packed_ue8m0_is_deepgemm_packing_of_the_f32_scales(
        dense in silu_case(),
        masked in masked_case(),
        rms in rms_case(),
        silu in any::<bool>(),
        dtype in 0u8..3,
    ) {
        let (dense, masked) = (ue8m0(dense), ue8m0(masked));
        let mut rms = rms;
        rms.cfg.quant.scale_mode = quant_host::ScaleMode::Ue8m0;
        match dtype {
            0 => { check_packed_group::<bf16>(&dense, silu); check_packed_group::<bf16>(&masked, silu); check_packed_rms::<bf16>(&rms) }
            1 => { check_packed_group::<f16>(&dense, silu); check_packed_group::<f16>(&masked, silu); check_packed_rms::<f16>(&rms) }
            _ => { check_packed_group::<f32>(&dense, silu); check_packed_group::<f32>(&masked, silu); check_packed_rms::<f32>(&rms) }
        }
    }
}

#[test]
fn packed_needs_ue8m0_scales() {
    let dev = Device::Cpu;
    let x = dev.upload(&vec![1f32; 4 * 256], MatrixShape::new(4, 256).unwrap()).unwrap();
    assert!(matches!(
        dev.per_token_group_quant_fp8_packed_ue8m0(&x, None, &Default::default()),
        Err(QuantError::PackedNeedsUe8m0)
    ));
    let cfg = TokenGroupConfig { scale_mode: quant_host::ScaleMode::Ue8m0, ..Default::default() };
    let (codes, words) = dev.per_token_group_quant_fp8_packed_ue8m0(&x, None, &cfg).unwrap();
    // Two groups of ones: scale 2^ceil(log2(1/448)) = 2^-8, exponent byte 119.
    assert_eq!(words.shape(), MatrixShape::new(1, 4).unwrap());
    assert_eq!(words.to_vec().unwrap(), vec![119 | 119 << 8; 4]);
    assert_eq!(codes.shape(), MatrixShape::new(4, 256).unwrap());
}
