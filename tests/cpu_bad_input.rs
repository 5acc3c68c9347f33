//! Every error the CPU API can report, each returned as the typed
//! `QuantError` (never a panic), with the outputs left untouched; and the
//! valid empty cases (M == 0, K == 0) as no-ops.

use half::bf16;
use quant_host::cpu::{self, Accumulation};
use quant_host::gemm::GemmOutput;
use quant_host::{
    BlockConfig, Fp8Format, GemmConfig, GemmShape, GroupSize, MatrixShape, OutputType, QuantError,
    ScaleLayout, TokenGroupConfig,
};

/// Runs every CPU entry point that takes a `TokenGroupConfig` / `BlockConfig`
/// on a small valid problem with the given configs, and returns their errors
/// (quantize then dequantize, for token groups and blocks). Outputs are
/// pre-filled with sentinels and must be untouched by a call that errors.
fn errors_for(tg: TokenGroupConfig, block: BlockConfig) -> Vec<QuantError> {
    let (rows, cols) = (3, 40);
    let x = vec![1.0f32; rows * cols];
    let shape = MatrixShape::new(rows, cols).unwrap();
    let mut errors = Vec::new();

    let mut q = vec![0xAAu8; rows * cols];
    let mut scales = vec![-7.0f32; rows * 2];
    let mut out = vec![-7.0f32; rows * cols];
    let tg_cfg_ok = TokenGroupConfig {
        group_size: GroupSize::G32,
        ..Default::default()
    };
    let tg = TokenGroupConfig {
        group_size: GroupSize::G32,
        ..tg
    };
    if let Err(e) = cpu::per_token_group_quant_fp8(&x, shape, &tg, &mut q, &mut scales) {
        assert!(
            q.iter().all(|&c| c == 0xAA) && scales.iter().all(|&s| s == -7.0),
            "outputs written on error"
        );
        errors.push(e);
    }
    cpu::per_token_group_quant_fp8(&x, shape, &tg_cfg_ok, &mut q, &mut scales).unwrap();
    if let Err(e) = cpu::dequantize_token_group(&q, &scales, rows, cols, &tg, &mut out) {
        assert!(out.iter().all(|&v| v == -7.0), "outputs written on error");
        errors.push(e);
    }

    let block = BlockConfig {
        block_rows: 2,
        block_cols: 32,
        ..block
    };
    let mut q = vec![0xAAu8; rows * cols];
    let mut scales = vec![-7.0f32; 2 * 2];
    if let Err(e) = cpu::per_block_quant_fp8(&x, shape, &block, &mut q, &mut scales) {
        assert!(
            q.iter().all(|&c| c == 0xAA) && scales.iter().all(|&s| s == -7.0),
            "outputs written on error"
        );
        errors.push(e);
    }
    let mut out = vec![-7.0f32; rows * cols];
    if let Err(e) = cpu::dequantize_block(&q, &scales, rows, cols, &block, &mut out) {
        assert!(out.iter().all(|&v| v == -7.0), "outputs written on error");
        errors.push(e);
    }
    errors
}

#[test]
fn group_size_must_be_32_64_or_128() {
    for bad in [0usize, 1, 16, 31, 33, 48, 96, 127, 129, 256, usize::MAX] {
        assert!(
            matches!(GroupSize::try_from(bad), Err(QuantError::UnsupportedGroupSize(v)) if v == bad),
            "{bad}"
        );
    }
    for good in [32usize, 64, 128] {
        assert_eq!(GroupSize::try_from(good).unwrap().get(), good);
    }
}

#[test]
fn eps_must_be_finite_and_positive() {
    for eps in [
        0.0f32,
        -0.0,
        -1e-12,
        -1.0,
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
    ] {
        let errors = errors_for(
            TokenGroupConfig {
                eps,
                ..Default::default()
            },
            BlockConfig {
                eps,
                ..Default::default()
            },
        );
        assert_eq!(errors.len(), 4, "eps {eps}: {errors:?}");
        for e in errors {
            assert!(
                matches!(e, QuantError::InvalidEps(v) if v.to_bits() == eps.to_bits()),
                "eps {eps}: {e:?}"
            );
        }
    }
    // The smallest eps whose all-zero-group scale (eps / 448) is a normal
    // f32 is valid; see `eps_whose_zero_group_scale_underflows_is_rejected`.
    let tiny = 448.0 * f32::MIN_POSITIVE;
    assert!(errors_for(
        TokenGroupConfig {
            eps: tiny,
            ..Default::default()
        },
        BlockConfig {
            eps: tiny,
            ..Default::default()
        }
    )
    .is_empty());
}

#[test]
fn fp8_max_must_be_finite_positive_and_at_most_the_format_max() {
    let cases = [
        (Fp8Format::E4M3Fn, f32::NAN),
        (Fp8Format::E4M3Fn, f32::INFINITY),
        (Fp8Format::E4M3Fn, f32::NEG_INFINITY),
        (Fp8Format::E4M3Fn, 0.0),
        (Fp8Format::E4M3Fn, -0.0),
        (Fp8Format::E4M3Fn, -1.0),
        (Fp8Format::E4M3Fn, 448.0001),
        (Fp8Format::E4M3Fn, 480.0),
        (Fp8Format::E4M3Fnuz, 240.0001),
        (Fp8Format::E4M3Fnuz, 448.0),
        (Fp8Format::E4M3Fnuz, f32::NAN),
    ];
    for (format, fp8_max) in cases {
        let errors = errors_for(
            TokenGroupConfig {
                format,
                fp8_max: Some(fp8_max),
                ..Default::default()
            },
            BlockConfig {
                format,
                fp8_max: Some(fp8_max),
                ..Default::default()
            },
        );
        assert_eq!(errors.len(), 4, "{format:?} {fp8_max}: {errors:?}");
        for e in errors {
            assert!(
                matches!(e, QuantError::InvalidFp8Max { value, max, format: f }
                    if value.to_bits() == fp8_max.to_bits() && max == format.max_finite() && f == format),
                "{format:?} {fp8_max}: {e:?}"
            );
        }
    }
    // The bounds themselves are valid: the format max, 224 for fnuz, a subnormal.
    for (format, fp8_max) in [
        (Fp8Format::E4M3Fn, 448.0),
        (Fp8Format::E4M3Fnuz, 240.0),
        (Fp8Format::E4M3Fnuz, 224.0),
        (Fp8Format::E4M3Fn, f32::from_bits(1)),
    ] {
        let errors = errors_for(
            TokenGroupConfig {
                format,
                fp8_max: Some(fp8_max),
                ..Default::default()
            },
            BlockConfig {
                format,
                fp8_max: Some(fp8_max),
                ..Default::default()
            },
        );
        assert!(errors.is_empty(), "{format:?} {fp8_max}: {errors:?}");
    }
}

#[test]
fn block_sides_must_be_positive() {
    for (block_rows, block_cols) in [(0, 128), (128, 0), (0, 0)] {
        let block = BlockConfig {
            block_rows,
            block_cols,
            ..Default::default()
        };
        let (x, shape) = (vec![1.0f32; 12], MatrixShape::new(3, 4).unwrap());
        let (mut q, mut scales, mut out) = (vec![0u8; 12], vec![0f32; 1], vec![0f32; 12]);
        for e in [
            cpu::per_block_quant_fp8(&x, shape, &block, &mut q, &mut scales).unwrap_err(),
            cpu::dequantize_block(&q, &scales, 3, 4, &block, &mut out).unwrap_err(),
        ] {
            assert!(
                matches!(e, QuantError::InvalidBlock { rows, cols } if rows == block_rows && cols == block_cols),
                "{e:?}"
            );
        }
    }
}

#[test]
fn row_stride_smaller_than_k() {
    assert!(matches!(
        MatrixShape::strided(2, 10, 9),
        Err(QuantError::StrideTooSmall {
            stride: 9,
            cols: 10
        })
    ));
    assert!(matches!(
        MatrixShape::strided(0, 1, 0),
        Err(QuantError::StrideTooSmall { stride: 0, cols: 1 })
    ));
    // stride == K and stride > K are fine.
    assert!(MatrixShape::strided(2, 10, 10).is_ok() && MatrixShape::strided(2, 10, 11).is_ok());
}

fn assert_buffer_length(e: QuantError, name: &str, want: u64, got: u64) {
    assert!(
        matches!(e, QuantError::BufferLength { what, expected, actual } if what == name && expected == want && actual == got),
        "expected BufferLength({name}, {want}, {got}), got {e:?}"
    );
}

#[test]
fn short_input_buffers() {
    // 3 rows of 40 with stride 50: the extent is 2 * 50 + 40 = 140 (the last
    // row needs no padding), so 139 elements are one too few.
    let shape = MatrixShape::strided(3, 40, 50).unwrap();
    let (mut q, mut scales) = (vec![0u8; 120], vec![0f32; 3]);
    let tg = TokenGroupConfig::default();
    let e = cpu::per_token_group_quant_fp8(&vec![bf16::ONE; 139], shape, &tg, &mut q, &mut scales)
        .unwrap_err();
    assert_buffer_length(e, "x", 140, 139);
    cpu::per_token_group_quant_fp8(&vec![bf16::ONE; 140], shape, &tg, &mut q, &mut scales).unwrap();

    let block = BlockConfig::default();
    let mut scales = vec![0f32; 1];
    let e = cpu::per_block_quant_fp8(&vec![1.0f32; 100], shape, &block, &mut q, &mut scales)
        .unwrap_err();
    assert_buffer_length(e, "w", 140, 100);
    let e = cpu::per_block_quant_fp8::<f32>(&[], shape, &block, &mut q, &mut scales).unwrap_err();
    assert_buffer_length(e, "w", 140, 0);
}

#[test]
fn wrong_output_lengths_of_the_quantizers() {
    let (rows, cols) = (5, 70); // 5 rows (not a multiple of 4), G = ceil(70 / 64) = 2
    let x = vec![1.0f32; rows * cols];
    let shape = MatrixShape::new(rows, cols).unwrap();
    for layout in ScaleLayout::ALL {
        let cfg = TokenGroupConfig {
            group_size: GroupSize::G64,
            layout,
            ..Default::default()
        };
        let need = if layout == ScaleLayout::ColMajorTmaAligned {
            8 * 2
        } else {
            5 * 2
        };
        for q_len in [rows * cols - 1, rows * cols + 1, 0] {
            let e = cpu::per_token_group_quant_fp8(
                &x,
                shape,
                &cfg,
                &mut vec![0; q_len],
                &mut vec![0.0; need],
            )
            .unwrap_err();
            assert_buffer_length(e, "q", 350, q_len as u64);
        }
        // The TMA-aligned layout needs its padding rows: 5 * 2 is too short.
        for s_len in [
            need - 1,
            need + 1,
            5 * 2 + (layout != ScaleLayout::ColMajorTmaAligned) as usize,
        ] {
            let e = cpu::per_token_group_quant_fp8(
                &x,
                shape,
                &cfg,
                &mut vec![0; 350],
                &mut vec![0.0; s_len],
            )
            .unwrap_err();
            assert_buffer_length(e, "scales", need as u64, s_len as u64);
        }
        cpu::per_token_group_quant_fp8(&x, shape, &cfg, &mut vec![0; 350], &mut vec![0.0; need])
            .unwrap();
    }
    // Blocks of 2 x 64: scales are [3, 2].
    let block = BlockConfig {
        block_rows: 2,
        block_cols: 64,
        ..Default::default()
    };
    let e =
        cpu::per_block_quant_fp8(&x, shape, &block, &mut vec![0; 349], &mut [0.0; 6]).unwrap_err();
    assert_buffer_length(e, "q", 350, 349);
    let e =
        cpu::per_block_quant_fp8(&x, shape, &block, &mut vec![0; 350], &mut [0.0; 4]).unwrap_err();
    assert_buffer_length(e, "scales", 6, 4);
}

#[test]
fn wrong_lengths_of_the_dequantizers() {
    let (rows, cols) = (5, 70);
    let cfg = TokenGroupConfig {
        group_size: GroupSize::G64,
        layout: ScaleLayout::ColMajorTmaAligned,
        ..Default::default()
    };
    let (q, scales) = (vec![0u8; 350], vec![1f32; 16]);
    let mut out = vec![0f32; 350];
    let e = cpu::dequantize_token_group(&q[1..], &scales, rows, cols, &cfg, &mut out).unwrap_err();
    assert_buffer_length(e, "q", 350, 349);
    let e = cpu::dequantize_token_group(&q, &scales[..10], rows, cols, &cfg, &mut out).unwrap_err();
    assert_buffer_length(e, "scales", 16, 10);
    let e =
        cpu::dequantize_token_group(&q, &scales, rows, cols, &cfg, &mut out[..349]).unwrap_err();
    assert_buffer_length(e, "out", 350, 349);
    cpu::dequantize_token_group(&q, &scales, rows, cols, &cfg, &mut out).unwrap();

    let block = BlockConfig::default();
    let e = cpu::dequantize_block(&q, &scales[..2], rows, cols, &block, &mut out).unwrap_err();
    assert_buffer_length(e, "scales", 1, 2);
    let e = cpu::dequantize_block(&q, &scales[..1], rows, cols, &block, &mut vec![0.0; 351])
        .unwrap_err();
    assert_buffer_length(e, "out", 350, 351);
    let e = cpu::dequantize_block(&q[..0], &scales[..1], rows, cols, &block, &mut out).unwrap_err();
    assert_buffer_length(e, "q", 350, 0);
}

#[test]
fn wrong_lengths_and_output_type_of_the_gemm() {
    let (m, n, k) = (5, 130, 129); // k-blocks 2, n-blocks 2
    let shape = GemmShape::new(m, n, k).unwrap();
    let cfg = GemmConfig {
        a_scale_layout: ScaleLayout::ColMajorTmaAligned,
        output: OutputType::F32,
        ..Default::default()
    };
    let (a, b) = (vec![0x38u8; m * k], vec![0x38u8; n * k]);
    let (sa, sb) = (vec![1f32; 8 * 2], vec![1f32; 2 * 2]);
    let mut c = vec![0f32; m * n];
    let run = |a: &[u8], sa: &[f32], b: &[u8], sb: &[f32], c: &mut [f32]| {
        cpu::mm_fp8_blockscale(
            a,
            sa,
            b,
            sb,
            shape,
            &cfg,
            Accumulation::F64,
            GemmOutput::F32(c),
        )
    };
    assert_buffer_length(
        run(&a[1..], &sa, &b, &sb, &mut c).unwrap_err(),
        "a",
        645,
        644,
    );
    assert_buffer_length(
        run(&a, &sa, &b[..100], &sb, &mut c).unwrap_err(),
        "b",
        16770,
        100,
    );
    // TMA-aligned A scales need 8 rows per k-block, not 5.
    assert_buffer_length(
        run(&a, &sa[..10], &b, &sb, &mut c).unwrap_err(),
        "a_scales",
        16,
        10,
    );
    assert_buffer_length(
        run(&a, &sa, &b, &sb[..2], &mut c).unwrap_err(),
        "b_scales",
        4,
        2,
    );
    assert_buffer_length(
        run(&a, &sa, &b, &sb, &mut c[1..]).unwrap_err(),
        "c",
        650,
        649,
    );
    run(&a, &sa, &b, &sb, &mut c).unwrap();

    // A bf16 buffer while cfg.output says f32 (and the reverse).
    let mut c16 = vec![bf16::ZERO; m * n];
    let e = cpu::mm_fp8_blockscale(
        &a,
        &sa,
        &b,
        &sb,
        shape,
        &cfg,
        Accumulation::F64,
        GemmOutput::Bf16(&mut c16),
    )
    .unwrap_err();
    assert!(matches!(e, QuantError::ShapeMismatch(_)), "{e:?}");
    let cfg16 = GemmConfig {
        output: OutputType::Bf16,
        ..cfg
    };
    let e = cpu::mm_fp8_blockscale(
        &a,
        &sa,
        &b,
        &sb,
        shape,
        &cfg16,
        Accumulation::F32,
        GemmOutput::F32(&mut c),
    )
    .unwrap_err();
    assert!(matches!(e, QuantError::ShapeMismatch(_)), "{e:?}");
    assert!(
        c16.iter().all(|v| *v == bf16::ZERO),
        "output written on error"
    );
}

#[test]
fn sizes_past_the_address_space_are_errors() {
    assert!(matches!(
        MatrixShape::new(usize::MAX, 2),
        Err(QuantError::TooLarge(_))
    ));
    assert!(matches!(
        MatrixShape::strided(3, 1, usize::MAX),
        Err(QuantError::TooLarge(_))
    ));
    assert!(matches!(
        GemmShape::new(usize::MAX, 2, 2),
        Err(QuantError::TooLarge(_))
    ));
    assert!(matches!(
        GemmShape::new(2, 2, usize::MAX),
        Err(QuantError::TooLarge(_))
    ));
    let cfg = TokenGroupConfig::default();
    let e = cpu::dequantize_token_group(&[], &[], usize::MAX, 2, &cfg, &mut []).unwrap_err();
    assert!(matches!(e, QuantError::TooLarge(_)), "{e:?}");
    let e = cpu::dequantize_block(&[], &[], 2, usize::MAX, &BlockConfig::default(), &mut [])
        .unwrap_err();
    assert!(matches!(e, QuantError::TooLarge(_)), "{e:?}");

    // M = usize::MAX with K = 0 (a valid, empty shape): the TMA-aligned scale
    // buffer length M rounded up to 4 overflows, which must be an error, not
    // a panic; the other layouts need no scales and return at once.
    let shape = MatrixShape::strided(usize::MAX, 0, 0).unwrap();
    let tma = TokenGroupConfig {
        layout: ScaleLayout::ColMajorTmaAligned,
        ..cfg
    };
    let e = cpu::per_token_group_quant_fp8::<f32>(&[], shape, &tma, &mut [], &mut []).unwrap_err();
    assert!(matches!(e, QuantError::TooLarge(_)), "{e:?}");
    for layout in [ScaleLayout::RowMajor, ScaleLayout::ColMajor] {
        let cfg = TokenGroupConfig { layout, ..cfg };
        cpu::per_token_group_quant_fp8::<f32>(&[], shape, &cfg, &mut [], &mut []).unwrap();
        cpu::dequantize_token_group(&[], &[], usize::MAX, 0, &cfg, &mut []).unwrap();
    }
    cpu::per_block_quant_fp8::<f32>(&[], shape, &BlockConfig::default(), &mut [], &mut []).unwrap();
    let gemm = GemmShape::new(usize::MAX, 0, 0).unwrap();
    let gcfg = GemmConfig {
        a_scale_layout: ScaleLayout::ColMajorTmaAligned,
        output: OutputType::F32,
        ..Default::default()
    };
    let e = cpu::mm_fp8_blockscale(
        &[],
        &[],
        &[],
        &[],
        gemm,
        &gcfg,
        Accumulation::F64,
        GemmOutput::F32(&mut []),
    )
    .unwrap_err();
    assert!(matches!(e, QuantError::TooLarge(_)), "{e:?}");
}

#[test]
fn m_zero_is_a_no_op() {
    for layout in ScaleLayout::ALL {
        for cols in [0, 1, 200] {
            let cfg = TokenGroupConfig {
                layout,
                ..Default::default()
            };
            let shape = MatrixShape::strided(0, cols, cols + 3).unwrap();
            cpu::per_token_group_quant_fp8::<bf16>(&[], shape, &cfg, &mut [], &mut []).unwrap();
            cpu::dequantize_token_group(&[], &[], 0, cols, &cfg, &mut []).unwrap();
        }
    }
    let shape = MatrixShape::new(0, 300).unwrap();
    cpu::per_block_quant_fp8::<f32>(&[], shape, &BlockConfig::default(), &mut [], &mut []).unwrap();
    cpu::dequantize_block(&[], &[], 0, 300, &BlockConfig::default(), &mut []).unwrap();
    // An M == 0 call still validates its arguments.
    let bad = TokenGroupConfig {
        eps: 0.0,
        ..Default::default()
    };
    let e = cpu::per_token_group_quant_fp8::<f32>(&[], shape, &bad, &mut [], &mut []).unwrap_err();
    assert!(matches!(e, QuantError::InvalidEps(_)));
    let e = cpu::per_token_group_quant_fp8::<f32>(
        &[],
        shape,
        &TokenGroupConfig::default(),
        &mut [0],
        &mut [],
    )
    .unwrap_err();
    assert_buffer_length(e, "q", 0, 1);
}

#[test]
fn k_zero_is_a_no_op() {
    // K == 0: no group, no scale, nothing to write.
    let shape = MatrixShape::new(7, 0).unwrap();
    for layout in ScaleLayout::ALL {
        let cfg = TokenGroupConfig {
            layout,
            ..Default::default()
        };
        cpu::per_token_group_quant_fp8::<f32>(&[], shape, &cfg, &mut [], &mut []).unwrap();
    }
    cpu::per_block_quant_fp8::<f32>(&[], shape, &BlockConfig::default(), &mut [], &mut []).unwrap();
}

#[test]
fn errors_have_messages() {
    let e = GroupSize::try_from(48).unwrap_err();
    assert!(e.to_string().contains("48"), "{e}");
    let e = MatrixShape::strided(1, 10, 9).unwrap_err();
    assert!(
        e.to_string().contains('9') && e.to_string().contains("10"),
        "{e}"
    );
}

#[test]
fn eps_whose_zero_group_scale_underflows_is_rejected() {
    // eps / fp8_max would round to 0 (or a subnormal): an all-zero group
    // would get scale 0 and NaN codes, against the spec's exact zeros.
    for eps in [1e-45f32, 1e-40, f32::MIN_POSITIVE] {
        let cfg = TokenGroupConfig {
            eps,
            ..Default::default()
        };
        let shape = MatrixShape::new(1, 128).unwrap();
        let e =
            cpu::per_token_group_quant_fp8(&[0f32; 128], shape, &cfg, &mut [0; 128], &mut [0.0])
                .unwrap_err();
        assert!(
            matches!(e, QuantError::InvalidEps(v) if v == eps),
            "{eps:e}: {e}"
        );
    }
    // The smallest accepted eps still gives an all-zero group exact zeros.
    let eps = 448.0 * f32::MIN_POSITIVE;
    let cfg = TokenGroupConfig {
        eps,
        ..Default::default()
    };
    let (mut q, mut s) = ([1u8; 128], [1f32]);
    let shape = MatrixShape::new(1, 128).unwrap();
    cpu::per_token_group_quant_fp8(&[0f32; 128], shape, &cfg, &mut q, &mut s).unwrap();
    assert_eq!(s[0], eps / 448.0);
    assert!(q.iter().all(|&c| c == 0));
}
