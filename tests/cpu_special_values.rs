//! The special values of the spec, one named test each: NaN and inf groups,
//! zeros, values at and beyond fp8_max, subnormal inputs, a single huge
//! outlier, the eps floor and the ue8m0 rounding.

use half::{bf16, f16};
use quant_host::cpu;
use quant_host::{
    BlockConfig, Element, Fp8Format, GroupSize, MatrixShape, ScaleMode, TokenGroupConfig,
};
use quant_tests::{check_token_group_output, is_power_of_two, reference_decode};

/// A one-row config with groups of 32, so a row of 64 has two groups.
fn cfg(format: Fp8Format, scale_mode: ScaleMode) -> TokenGroupConfig {
    TokenGroupConfig {
        format,
        group_size: GroupSize::G32,
        scale_mode,
        ..Default::default()
    }
}

/// Quantizes one row; returns its codes and (row-major) scales.
fn quantize_row<T: Element>(cfg: &TokenGroupConfig, xs: &[T]) -> (Vec<u8>, Vec<f32>) {
    let shape = MatrixShape::new(1, xs.len()).unwrap();
    let mut q = vec![0xAA; xs.len()];
    let mut scales = vec![f32::NAN; xs.len().div_ceil(cfg.group_size.get())];
    cpu::per_token_group_quant_fp8(xs, shape, cfg, &mut q, &mut scales).unwrap();
    (q, scales)
}

/// A group of ordinary values (1.0, -1.5, 2.0, ...), for the "other" group.
fn ordinary(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (1.0 + 0.5 * i as f32) * if i % 2 == 0 { 1.0 } else { -1.0 })
        .collect()
}

fn all_configs() -> impl Iterator<Item = TokenGroupConfig> {
    Fp8Format::ALL
        .into_iter()
        .flat_map(|f| ScaleMode::ALL.into_iter().map(move |m| cfg(f, m)))
}

fn is_nan_code(format: Fp8Format, code: u8) -> bool {
    reference_decode(format, code).is_none()
}

#[test]
fn nan_group_gets_nan_scale_and_nan_codes() {
    for cfg in all_configs() {
        let mut xs = ordinary(64);
        xs[5] = f32::NAN;
        let (q, scales) = quantize_row(&cfg, &xs);
        assert!(scales[0].is_nan(), "{cfg:?}: NaN group scale {}", scales[0]);
        assert!(
            q[..32].iter().all(|&c| is_nan_code(cfg.format, c)),
            "{cfg:?}: {:x?}",
            &q[..32]
        );
        // The other group is untouched by the NaN.
        assert!(scales[1].is_finite() && scales[1] > 0.0);
        assert!(q[32..].iter().all(|&c| !is_nan_code(cfg.format, c)));
    }
    // bf16 NaN input (as read from a checkpoint) behaves the same.
    let mut xs: Vec<bf16> = ordinary(64).into_iter().map(bf16::from_f32).collect();
    xs[40] = bf16::NAN;
    let (q, scales) = quantize_row(&cfg(Fp8Format::E4M3Fn, ScaleMode::Float), &xs);
    assert!(scales[1].is_nan() && scales[0].is_finite());
    assert!(q[32..].iter().all(|&c| c == 0x7F));
}

#[test]
fn inf_group_gets_inf_scale_zero_codes_and_nan_for_the_inf() {
    for cfg in all_configs() {
        for inf in [f32::INFINITY, f32::NEG_INFINITY] {
            let mut xs = ordinary(64);
            xs[7] = inf;
            let (q, scales) = quantize_row(&cfg, &xs);
            assert_eq!(scales[0], f32::INFINITY, "{cfg:?}");
            for (k, &code) in q[..32].iter().enumerate() {
                if k == 7 {
                    // inf / inf = NaN.
                    assert!(
                        is_nan_code(cfg.format, code),
                        "{cfg:?}: inf encodes as {code:#04x}"
                    );
                } else {
                    // finite / inf = ±0 (E4M3FN keeps the sign: 0x80 is -0).
                    assert_eq!(
                        reference_decode(cfg.format, code),
                        Some(0.0),
                        "{cfg:?} k={k}: {code:#04x}"
                    );
                }
            }
            assert!(scales[1].is_finite());
            assert!(q[32..].iter().all(|&c| !is_nan_code(cfg.format, c)));
        }
    }
}

#[test]
fn all_zero_group_gets_eps_over_max_and_dequantizes_to_exact_zeros() {
    for cfg in all_configs() {
        for eps in [1e-12f32, 1e-10, 1e-4] {
            let cfg = TokenGroupConfig { eps, ..cfg };
            let fp8_max = cfg.format.max_finite();
            let xs: Vec<f32> = (0..32)
                .map(|i| if i % 3 == 0 { -0.0 } else { 0.0 })
                .collect();
            let (q, scales) = quantize_row(&cfg, &xs);
            let floor = eps / fp8_max;
            match cfg.scale_mode {
                ScaleMode::Float => assert_eq!(scales[0], floor, "{cfg:?}"),
                ScaleMode::Ue8m0 => {
                    assert!(
                        is_power_of_two(scales[0]) && scales[0] >= floor && scales[0] < 2.0 * floor
                    )
                }
            }
            for (&x, &code) in xs.iter().zip(&q) {
                // +0 -> 0x00; -0 -> 0x80 in E4M3FN, 0x00 in E4M3FNUZ (no -0).
                let want = match (cfg.format, x.is_sign_negative()) {
                    (Fp8Format::E4M3Fn, true) => 0x80,
                    _ => 0x00,
                };
                assert_eq!(code, want, "{cfg:?} x={x}");
            }
            let mut out = vec![f32::NAN; 32];
            cpu::dequantize_token_group(&q, &scales, 1, 32, &cfg, &mut out).unwrap();
            assert!(out.iter().all(|&v| v == 0.0), "{cfg:?}: {out:?}");
        }
    }
}

#[test]
fn values_at_fp8_max_round_trip_exactly() {
    for format in Fp8Format::ALL {
        let cfg = cfg(format, ScaleMode::Float);
        let max = format.max_finite();
        // amax == fp8_max: the scale is exactly 1 and fp8 values are kept.
        let xs: Vec<f32> = [max, -max, 1.0, -0.5, 0.125, 2f32.powi(-9), 96.0, -240.0]
            .into_iter()
            .cycle()
            .take(32)
            .collect();
        let (q, scales) = quantize_row(&cfg, &xs);
        assert_eq!(scales[0], 1.0);
        assert_eq!(q[0], format.max_code());
        assert_eq!(q[1], format.max_code() | 0x80);
        for (&x, &code) in xs.iter().zip(&q) {
            let v = reference_decode(format, code).unwrap() as f32;
            if x.abs() >= 2f32.powi(1 - 8 - 3) {
                // Representable in both formats: exact.
                assert_eq!(v, x, "{format:?}: {x} -> {code:#04x}");
            }
        }
    }
}

#[test]
fn values_beyond_fp8_max_saturate_to_fp8_max() {
    for cfg in all_configs() {
        for fp8_max in [None, Some(224.0), Some(200.0)] {
            let cfg = TokenGroupConfig { fp8_max, ..cfg };
            let bound = fp8_max.unwrap_or(cfg.format.max_finite()) as f64;
            let mut xs = ordinary(32);
            xs[3] = 1e6;
            xs[9] = -1e6;
            let (q, scales) = quantize_row(&cfg, &xs);
            let top = reference_decode(cfg.format, q[3]).unwrap();
            let (lower, upper) = (bound * (1.0 - 1.0 / 16.0), bound * (1.0 + 1.0 / 16.0));
            match cfg.scale_mode {
                // The largest element lands on fp8_max (rounded to fp8 when
                // fp8_max is not an fp8 value: 200 -> 192 or 208).
                ScaleMode::Float => assert!(top >= lower && top <= upper, "{cfg:?}: top {top}"),
                // ue8m0 scales are larger: the largest element lands in (fp8_max / 2, fp8_max].
                ScaleMode::Ue8m0 => assert!(
                    top > bound / 2.0 - 8.0 && top <= upper,
                    "{cfg:?}: top {top}"
                ),
            }
            assert_eq!(reference_decode(cfg.format, q[9]).unwrap(), -top);
            for &code in &q {
                assert!(reference_decode(cfg.format, code).unwrap().abs() <= upper);
            }
            assert!(scales[0] >= 1e6 / bound as f32 * (1.0 - 1e-6));
        }
    }
    // The clamp happens before encoding: with fp8_max = 224 on E4M3FNUZ, a
    // value 5x beyond the bound gives 224, not the format's 240.
    let fmt = Fp8Format::E4M3Fnuz;
    let code = quant_kernels::scale::quantize(1000.0, 1.0, 224.0, fmt);
    assert_eq!(reference_decode(fmt, code), Some(224.0));
    let code = quant_kernels::scale::quantize(-1000.0, 1.0, 224.0, fmt);
    assert_eq!(reference_decode(fmt, code), Some(-224.0));
}

#[test]
fn subnormal_f16_inputs_are_converted_exactly() {
    // A group made of f16 subnormals only (2^-24 .. 32 * 2^-24): their f32
    // values are exact, so the f16 and f32 quantizations are bit-identical.
    let xs16: Vec<f16> = (1..=32u16)
        .map(|i| f16::from_bits(if i % 2 == 0 { i } else { 0x8000 | i }))
        .collect();
    let xs32: Vec<f32> = xs16.iter().map(|v| v.to_f32()).collect();
    assert_eq!(xs32[31], 32.0 * 2f32.powi(-24));
    for cfg in all_configs() {
        let (q16, s16) = quantize_row(&cfg, &xs16);
        let (q32, s32) = quantize_row(&cfg, &xs32);
        assert_eq!(
            (&q16, s16[0].to_bits()),
            (&q32, s32[0].to_bits()),
            "{cfg:?}"
        );
        check_token_group_output(&xs16, MatrixShape::new(1, 32).unwrap(), &cfg, &q16, &s16);
    }
}

#[test]
fn subnormal_f32_inputs_below_eps_quantize_to_zero() {
    // f32 subnormals are far below eps = 1e-12: the scale is eps / fp8_max
    // and every value is below half the smallest fp8 subnormal.
    for cfg in all_configs() {
        let xs: Vec<f32> = (0..32)
            .map(|i| f32::from_bits(1 + 1000 * i) * if i % 2 == 0 { 1.0 } else { -1.0 })
            .collect();
        let (q, scales) = quantize_row(&cfg, &xs);
        assert!(scales[0] >= 1e-12 / cfg.format.max_finite());
        assert!(
            q.iter()
                .all(|&c| reference_decode(cfg.format, c) == Some(0.0)),
            "{cfg:?}: {q:x?}"
        );
        check_token_group_output(&xs, MatrixShape::new(1, 32).unwrap(), &cfg, &q, &scales);
    }
}

#[test]
fn subnormal_scale_from_a_tiny_eps_stays_finite() {
    // eps = the smallest f32 subnormal is valid; a group of f32 subnormals
    // then gets a subnormal scale with few significant bits. Nothing may turn
    // into NaN or inf, and the largest value still lands near fp8_max.
    for cfg in all_configs() {
        let cfg = TokenGroupConfig {
            eps: f32::from_bits(1),
            ..cfg
        };
        let xs: Vec<f32> = (1..=32u32).map(|i| f32::from_bits(i * 2000)).collect();
        let (q, scales) = quantize_row(&cfg, &xs);
        assert!(
            scales[0] > 0.0 && scales[0] < f32::MIN_POSITIVE,
            "{cfg:?}: {:e}",
            scales[0]
        );
        let top = reference_decode(cfg.format, q[31]).unwrap();
        assert!(
            top > cfg.format.max_finite() as f64 / 2.0 - 16.0,
            "{cfg:?}: top code {top}"
        );
        let mut out = vec![0f32; 32];
        cpu::dequantize_token_group(&q, &scales, 1, 32, &cfg, &mut out).unwrap();
        for (&x, &y) in xs.iter().zip(&out) {
            // Half an fp8 ulp (1/16 relative) plus the scale's own rounding.
            assert!((x - y).abs() <= 0.1 * xs[31], "{cfg:?}: {x:e} -> {y:e}");
        }
    }
}

#[test]
fn single_huge_outlier_flattens_its_group_only() {
    for cfg in all_configs() {
        let outlier = 1e30f32;
        let mut xs = ordinary(64);
        xs[17] = outlier;
        let (q, scales) = quantize_row(&cfg, &xs);
        // The outlier takes the largest code (ue8m0: a code in the top binade,
        // as the scale is rounded up); its neighbours are crushed to 0.
        let top = reference_decode(cfg.format, q[17]).unwrap();
        match cfg.scale_mode {
            ScaleMode::Float => assert_eq!(q[17], cfg.format.max_code(), "{cfg:?}"),
            ScaleMode::Ue8m0 => {
                assert!(top > cfg.format.max_finite() as f64 / 2.0, "{cfg:?}: {top}")
            }
        }
        for (k, &code) in q[..32].iter().enumerate().filter(|&(k, _)| k != 17) {
            assert_eq!(
                reference_decode(cfg.format, code),
                Some(0.0),
                "{cfg:?} k={k}"
            );
        }
        // The other group keeps its own resolution.
        assert!(scales[1] < 1.0);
        check_token_group_output(&xs, MatrixShape::new(1, 64).unwrap(), &cfg, &q, &scales);
    }
    // A bf16 outlier at the top of the range (3.39e38) does not overflow the
    // float scale nor its dequantized value.
    let mut xs: Vec<bf16> = ordinary(32).into_iter().map(bf16::from_f32).collect();
    xs[0] = bf16::MAX;
    for format in Fp8Format::ALL {
        let c = cfg(format, ScaleMode::Float);
        let (q, scales) = quantize_row(&c, &xs);
        assert!(scales[0].is_finite());
        check_token_group_output(&xs, MatrixShape::new(1, 32).unwrap(), &c, &q, &scales);
    }
}

/// Spec edge case, kept as the formula gives it: with ue8m0 scales, a value
/// near f32::MAX can round up to the next fp8 binade, and its dequantized
/// value `decode(q) * scale` then overflows f32 to inf. bf16::MAX / 448 rounds
/// up to the scale 2^120; 3.39e38 / 2^120 = 255 encodes as 256, and
/// 256 * 2^120 = 2^128 is past f32::MAX. (Float scales do not have this
/// problem: the largest code times the scale is about amax.)
#[test]
fn ue8m0_dequantize_of_values_near_f32_max_overflows() {
    let mut xs = vec![0f32; 32];
    xs[0] = bf16::MAX.to_f32();
    let c = cfg(Fp8Format::E4M3Fn, ScaleMode::Ue8m0);
    let (q, scales) = quantize_row(&c, &xs);
    assert_eq!(scales[0], 2f32.powi(120));
    assert_eq!(reference_decode(c.format, q[0]), Some(256.0));
    let mut out = vec![0f32; 32];
    cpu::dequantize_token_group(&q, &scales, 1, 32, &c, &mut out).unwrap();
    assert_eq!(out[0], f32::INFINITY);
}

#[test]
fn eps_floors_the_scale_of_tiny_groups() {
    for cfg in all_configs() {
        let cfg = TokenGroupConfig { eps: 1e-4, ..cfg };
        let xs: Vec<f32> = ordinary(32).into_iter().map(|v| v * 1e-7).collect();
        let (q, scales) = quantize_row(&cfg, &xs);
        let floor = 1e-4f32 / cfg.format.max_finite();
        assert!(
            scales[0] >= floor && scales[0] < 2.0 * floor,
            "{cfg:?}: {:e}",
            scales[0]
        );
        // amax = 1.65e-6 is ~1/60 of eps: codes stay far below fp8_max.
        assert!(q
            .iter()
            .all(|&c| reference_decode(cfg.format, c).unwrap().abs() < 16.0));
        check_token_group_output(&xs, MatrixShape::new(1, 32).unwrap(), &cfg, &q, &scales);
    }
}

#[test]
fn ue8m0_rounds_the_scale_up_and_quantizes_with_it() {
    let fmt = Fp8Format::E4M3Fn;
    let c = cfg(fmt, ScaleMode::Ue8m0);
    // amax / 448 = 1.5 -> scale 2; 672 / 2 = 336 is the tie between 320
    // (mantissa 010, even) and 352: it must go to 320. With the unrounded
    // scale 1.5 it would be 448.
    let mut xs = vec![0.0f32; 32];
    xs[0] = 672.0;
    let (q, scales) = quantize_row(&c, &xs);
    assert_eq!(scales[0], 2.0);
    assert_eq!(reference_decode(fmt, q[0]), Some(320.0));
    // A float scale that is already a power of two is kept.
    xs[0] = 448.0 * 4.0;
    let (q, scales) = quantize_row(&c, &xs);
    assert_eq!((scales[0], q[0]), (4.0, 0x7E));
}

#[test]
fn block_nan_and_inf_blocks_follow_the_formula() {
    let cfg = BlockConfig {
        block_rows: 2,
        block_cols: 2,
        ..Default::default()
    };
    // 2 x 4: block (0, 0) holds a NaN, block (0, 1) an inf.
    let w = [1.0, f32::NAN, 2.0, f32::INFINITY, 3.0, 4.0, -5.0, 6.0];
    let (mut q, mut scales) = (vec![0u8; 8], vec![0f32; 2]);
    cpu::per_block_quant_fp8(
        &w,
        MatrixShape::new(2, 4).unwrap(),
        &cfg,
        &mut q,
        &mut scales,
    )
    .unwrap();
    assert!(scales[0].is_nan());
    assert_eq!(scales[1], f32::INFINITY);
    assert!([q[0], q[1], q[4], q[5]].iter().all(|&c| c == 0x7F));
    assert_eq!([q[2], q[3], q[6], q[7]], [0x00, 0x7F, 0x80, 0x00]);
}
