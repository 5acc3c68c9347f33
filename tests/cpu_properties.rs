//! Property tests of the CPU quantizers over random shapes (K and N tails),
//! row strides, input types, formats, layouts, scale modes, eps and fp8_max.
//! The properties themselves are in `support.rs` (shared with GPU tests).

use half::{bf16, f16};
use proptest::prelude::*;
use quant_host::cpu;
use quant_host::{
    BlockConfig, DType, Element, Fp8Format, GroupSize, MatrixShape, ScaleLayout, ScaleMode,
    TokenGroupConfig,
};
use quant_tests::{check_block_output, check_token_group_output, random_matrix, Rng};

/// The eps values of the spec: the default and the common alternatives.
const EPS: [f32; 3] = [1e-12, 1e-10, 1e-4];

/// `fp8_max` choices: the format's default, a smaller "some stacks" value
/// (224 for fnuz as in the spec; 240 for E4M3FN), or one that is not an fp8
/// value at all (so the clamp bound rounds when encoded).
fn fp8_max(format: Fp8Format, choice: u8) -> Option<f32> {
    match (choice, format) {
        (0, _) => None,
        (1, Fp8Format::E4M3Fn) => Some(240.0),
        (1, Fp8Format::E4M3Fnuz) => Some(224.0),
        _ => Some(format.max_finite() * 0.7),
    }
}

fn run_token_group<T: Element>(
    rows: usize,
    cols: usize,
    stride: usize,
    cfg: TokenGroupConfig,
    seed: u64,
) {
    let x: Vec<T> = random_matrix(&mut Rng::new(seed), rows, cols, stride);
    let shape = MatrixShape::strided(rows, cols, stride).unwrap();
    let groups = cols.div_ceil(cfg.group_size.get());
    let mut q = vec![0xAAu8; rows * cols];
    // NaN sentinels: a scale (or padding) that is never written fails the checks.
    let mut scales = vec![f32::NAN; cfg.layout.len(rows as u64, groups as u64) as usize];
    cpu::per_token_group_quant_fp8(&x, shape, &cfg, &mut q, &mut scales).unwrap();
    check_token_group_output(&x, shape, &cfg, &q, &scales);

    // The layouts hold the same scales: compare with the row-major run.
    let row_major = TokenGroupConfig {
        layout: ScaleLayout::RowMajor,
        ..cfg
    };
    let mut q_rm = vec![0u8; rows * cols];
    let mut scales_rm = vec![f32::NAN; rows * groups];
    cpu::per_token_group_quant_fp8(&x, shape, &row_major, &mut q_rm, &mut scales_rm).unwrap();
    assert_eq!(q, q_rm, "codes depend on the scale layout");
    for m in 0..rows {
        for g in 0..groups {
            let at =
                cfg.layout
                    .index(m as u64, g as u64, rows as u64, groups as u64) as usize;
            assert_eq!(
                scales[at].to_bits(),
                scales_rm[m * groups + g].to_bits(),
                "scale ({m}, {g})"
            );
        }
    }
}

fn run_block<T: Element>(rows: usize, cols: usize, stride: usize, cfg: BlockConfig, seed: u64) {
    let w: Vec<T> = random_matrix(&mut Rng::new(seed), rows, cols, stride);
    let shape = MatrixShape::strided(rows, cols, stride).unwrap();
    let mut q = vec![0xAAu8; rows * cols];
    let mut scales = vec![f32::NAN; rows.div_ceil(cfg.block_rows) * cols.div_ceil(cfg.block_cols)];
    cpu::per_block_quant_fp8(&w, shape, &cfg, &mut q, &mut scales).unwrap();
    check_block_output(&w, shape, &cfg, &q, &scales);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn token_group_output_has_the_spec_properties(
        rows in 0usize..7,
        cols in 1usize..400,
        pad in prop_oneof![Just(0usize), 1usize..9],
        dtype in prop::sample::select(DType::ALL.to_vec()),
        format in prop::sample::select(Fp8Format::ALL.to_vec()),
        group_size in prop::sample::select(GroupSize::ALL.to_vec()),
        layout in prop::sample::select(ScaleLayout::ALL.to_vec()),
        scale_mode in prop::sample::select(ScaleMode::ALL.to_vec()),
        eps in prop::sample::select(EPS.to_vec()),
        max_choice in 0u8..3,
        seed in any::<u64>(),
    ) {
        let cfg = TokenGroupConfig {
            format,
            group_size,
            eps,
            fp8_max: fp8_max(format, max_choice),
            scale_mode,
            layout,
        };
        let stride = cols + pad;
        match dtype {
            DType::Bf16 => run_token_group::<bf16>(rows, cols, stride, cfg, seed),
            DType::F16 => run_token_group::<f16>(rows, cols, stride, cfg, seed),
            DType::F32 => run_token_group::<f32>(rows, cols, stride, cfg, seed),
        }
    }

    #[test]
    fn block_output_has_the_spec_properties(
        rows in 0usize..300,
        cols in 1usize..300,
        pad in prop_oneof![Just(0usize), 1usize..9],
        // Mostly the default 128 x 128 (tails when N, K > 128), sometimes
        // small blocks so that many (and all-zero) blocks occur.
        block in prop_oneof![Just((128usize, 128usize)), (1usize..40, 1usize..40)],
        dtype in prop::sample::select(DType::ALL.to_vec()),
        format in prop::sample::select(Fp8Format::ALL.to_vec()),
        scale_mode in prop::sample::select(ScaleMode::ALL.to_vec()),
        eps in prop::sample::select(EPS.to_vec()),
        max_choice in 0u8..3,
        seed in any::<u64>(),
    ) {
        let cfg = BlockConfig {
            format,
            block_rows: block.0,
            block_cols: block.1,
            eps,
            fp8_max: fp8_max(format, max_choice),
            scale_mode,
        };
        let stride = cols + pad;
        match dtype {
            DType::Bf16 => run_block::<bf16>(rows, cols, stride, cfg, seed),
            DType::F16 => run_block::<f16>(rows, cols, stride, cfg, seed),
            DType::F32 => run_block::<f32>(rows, cols, stride, cfg, seed),
        }
    }

    /// Dequantizing is `decode(q) * scale`, one f32 product, at the position
    /// the layout names: checked code by code on random codes and scales.
    #[test]
    fn dequantize_token_group_is_decode_times_scale(
        rows in 0usize..6,
        cols in 1usize..300,
        format in prop::sample::select(Fp8Format::ALL.to_vec()),
        group_size in prop::sample::select(GroupSize::ALL.to_vec()),
        layout in prop::sample::select(ScaleLayout::ALL.to_vec()),
        seed in any::<u64>(),
    ) {
        let cfg = TokenGroupConfig { format, group_size, layout, ..Default::default() };
        let mut rng = Rng::new(seed);
        let groups = cols.div_ceil(group_size.get());
        let q: Vec<u8> = (0..rows * cols).map(|_| rng.below(256) as u8).collect();
        let scales: Vec<f32> = (0..layout.len(rows as u64, groups as u64))
            .map(|_| (rng.unit() * 100.0) as f32)
            .collect();
        let mut out = vec![0f32; rows * cols];
        cpu::dequantize_token_group(&q, &scales, rows, cols, &cfg, &mut out).unwrap();
        for m in 0..rows {
            for k in 0..cols {
                let at = layout.index(m as u64, (k / group_size.get()) as u64, rows as u64, groups as u64);
                let want = quant_tests::reference_decode(format, q[m * cols + k])
                    .map_or(f32::NAN, |v| v as f32 * scales[at as usize]);
                let got = out[m * cols + k];
                prop_assert!(got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                    "({}, {}): {:e} != {:e}", m, k, got, want);
            }
        }
    }
}

/// The generator behind the properties really produces the cases they are
/// about: all-zero groups, codes in the fp8 subnormals, codes at fp8_max, and
/// NaN in the stride padding.
#[test]
fn random_inputs_cover_the_interesting_cases() {
    let (rows, cols, stride) = (64, 256, 260);
    let x: Vec<f32> = random_matrix(&mut Rng::new(7), rows, cols, stride);
    assert!(
        x[cols..stride].iter().all(|v| v.is_nan()),
        "stride padding is NaN"
    );
    let cfg = TokenGroupConfig {
        group_size: GroupSize::G32,
        ..Default::default()
    };
    let shape = MatrixShape::strided(rows, cols, stride).unwrap();
    let mut q = vec![0u8; rows * cols];
    let mut scales = vec![0f32; rows * cols / 32];
    cpu::per_token_group_quant_fp8(&x, shape, &cfg, &mut q, &mut scales).unwrap();
    let zero_groups = q
        .chunks(32)
        .filter(|g| g.iter().all(|&c| c & 0x7F == 0))
        .count();
    let subnormal_codes = q.iter().filter(|&&c| c & 0x78 == 0 && c & 0x7 != 0).count();
    let groups_at_max = q
        .chunks(32)
        .filter(|g| g.iter().any(|&c| c & 0x7F == 0x7E))
        .count();
    assert!(zero_groups >= 10, "{zero_groups} all-zero groups");
    assert!(subnormal_codes >= 100, "{subnormal_codes} subnormal codes");
    // The largest element of a group lands on ±fp8_max.
    assert_eq!(
        groups_at_max,
        rows * cols / 32 - zero_groups,
        "non-zero groups with a code at fp8_max"
    );
}
