//! Property tests: generated invalid arguments for every public CPU entry
//! point (the raw `cpu::*` functions and `Device::Cpu`), each of which must
//! return its typed error, leave its outputs untouched, and never panic.
//!
//! The strategies live in `tests/support/bad_input.rs` and drive `gpu_bad_input.rs` too.
//! Every test prints `bad inputs tried: N (...)` (see with `--nocapture`);
//! `QUANT_BAD_CASES` sets the number of cases per strategy (default 1000).

use half::bf16;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use quant_host::cpu::{self, Accumulation};
use quant_host::gemm::GemmOutput;
use quant_host::{
    BlockConfig, Device, GemmConfig, GemmShape, GroupSize, MatrixShape, OutputType, QuantError, ScaleLayout, Tensor,
    TokenGroupConfig,
};
use quant_tests::bad_input::{self, expect_err, no_panic, Expect, Tally};

fn cases() -> u32 {
    std::env::var("QUANT_BAD_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(1000)
}

fn runner() -> TestRunner {
    TestRunner::new(Config { cases: cases(), failure_persistence: None, ..Config::default() })
}

#[test]
fn raw_token_group_quant_and_dequant() {
    static TALLY: Tally = Tally::new("cpu::per_token_group_quant_fp8 + cpu::dequantize_token_group");
    runner()
        .run(&bad_input::token_call(), |call| {
            no_panic("quant", || {
                let shape = MatrixShape::strided(call.rows, call.cols, call.stride).map_err(|e| e.to_string())?;
                let x = vec![1.5f32; call.x_len];
                let (mut q, mut s) = (vec![0xAAu8; call.q_len], vec![-7.0f32; call.scales_len]);
                expect_err(cpu::per_token_group_quant_fp8(&x, shape, &call.cfg, &mut q, &mut s), call.expect)?;
                if q.iter().any(|&c| c != 0xAA) || s.iter().any(|&v| v != -7.0) {
                    return Err("outputs written".into());
                }
                Ok(())
            })?;
            // The dequantizer takes the same config and lengths; `x` is its
            // output (dense, `rows * cols`), so a short x becomes a short out.
            no_panic("dequant", || {
                let (q, s) = (vec![0x38u8; call.q_len], vec![1f32; call.scales_len]);
                let (out_len, expect) = match call.expect {
                    Expect::Len("x") => ((call.rows * call.cols).saturating_sub(1), Expect::Len("out")),
                    e => (call.rows * call.cols, e),
                };
                if out_len == call.rows * call.cols && expect == Expect::Len("out") {
                    return Ok(()); // counted in the quantizer only: a 0-element out cannot be short
                }
                let mut out = vec![-7.0f32; out_len];
                expect_err(cpu::dequantize_token_group(&q, &s, call.rows, call.cols, &call.cfg, &mut out), expect)?;
                if out.iter().any(|&v| v != -7.0) {
                    return Err("out written".into());
                }
                Ok(())
            })?;
            TALLY.add(2);
            Ok(())
        })
        .unwrap();
    assert!(TALLY.report() > 0);
}

#[test]
fn raw_block_quant_and_dequant() {
    static TALLY: Tally = Tally::new("cpu::per_block_quant_fp8 + cpu::dequantize_block");
    runner()
        .run(&bad_input::block_call(), |call| {
            no_panic("quant", || {
                let shape = MatrixShape::strided(call.rows, call.cols, call.stride).map_err(|e| e.to_string())?;
                let w = vec![bf16::ONE; call.w_len];
                let (mut q, mut s) = (vec![0xAAu8; call.q_len], vec![-7.0f32; call.scales_len]);
                expect_err(cpu::per_block_quant_fp8(&w, shape, &call.cfg, &mut q, &mut s), call.expect)?;
                if q.iter().any(|&c| c != 0xAA) || s.iter().any(|&v| v != -7.0) {
                    return Err("outputs written".into());
                }
                Ok(())
            })?;
            let dequant_expect = match call.expect {
                Expect::Len("w") if call.rows * call.cols > 0 => Some(Expect::Len("out")),
                Expect::Len("w") => None,
                e => Some(e),
            };
            if let Some(expect) = dequant_expect {
                no_panic("dequant", || {
                    let (q, s) = (vec![0x38u8; call.q_len], vec![1f32; call.scales_len]);
                    let out_len = call.rows * call.cols - usize::from(expect == Expect::Len("out"));
                    let mut out = vec![-7.0f32; out_len];
                    expect_err(cpu::dequantize_block(&q, &s, call.rows, call.cols, &call.cfg, &mut out), expect)?;
                    if out.iter().any(|&v| v != -7.0) {
                        return Err("out written".into());
                    }
                    Ok(())
                })?;
                TALLY.add(1);
            }
            TALLY.add(1);
            Ok(())
        })
        .unwrap();
    assert!(TALLY.report() > 0);
}

#[test]
fn raw_gemm() {
    static TALLY: Tally = Tally::new("cpu::mm_fp8_blockscale");
    runner()
        .run(&bad_input::gemm_call(true), |call| {
            for accumulation in [Accumulation::F32, Accumulation::F64] {
                no_panic("gemm", || {
                    let shape = GemmShape::new(call.m, call.n, call.k).map_err(|e| e.to_string())?;
                    let (a, b) = (vec![0x38u8; call.a_len], vec![0x38u8; call.b_len]);
                    let (sa, sb) = (vec![1f32; call.a_scales_len], vec![1f32; call.b_scales_len]);
                    let (mut c16, mut c32) = (vec![bf16::from_f32(-7.0); call.c_len], vec![-7.0f32; call.c_len]);
                    let out = match call.c_type {
                        OutputType::Bf16 => GemmOutput::Bf16(&mut c16),
                        OutputType::F32 => GemmOutput::F32(&mut c32),
                    };
                    expect_err(
                        cpu::mm_fp8_blockscale(&a, &sa, &b, &sb, shape, &call.cfg, accumulation, out),
                        call.expect,
                    )?;
                    if c16.iter().any(|&v| v.to_f32() != -7.0) || c32.iter().any(|&v| v != -7.0) {
                        return Err("C written".into());
                    }
                    Ok(())
                })?;
                TALLY.add(1);
            }
            Ok(())
        })
        .unwrap();
    assert!(TALLY.report() > 0);
}

#[test]
fn device_cpu_quantizers_and_gemm() {
    static TALLY: Tally = Tally::new("Device::Cpu quantizers (+_into) and mm_fp8_blockscale (+_into)");
    bad_input::run_on_device(&Device::Cpu, cases(), &TALLY);
    assert!(TALLY.report() > 0);
}

#[test]
fn shapes_strides_and_group_sizes() {
    static TALLY: Tally = Tally::new("MatrixShape / GemmShape / GroupSize constructors");
    // A row stride below K.
    runner()
        .run(&(0usize..1 << 40, 1usize..1 << 40, any::<prop::sample::Index>()), |(rows, cols, i)| {
            let stride = i.index(cols);
            TALLY.add(1);
            no_panic("stride", || match MatrixShape::strided(rows, cols, stride) {
                Err(QuantError::StrideTooSmall { stride: s, cols: c }) if (s, c) == (stride, cols) => Ok(()),
                other => Err(format!("{other:?}")),
            })
        })
        .unwrap();
    // Extents past the address space.
    runner()
        .run(&(2usize.., 2usize..), |(rows, cols)| {
            prop_assume!(rows.checked_mul(cols).is_none());
            TALLY.add(2);
            no_panic("too large", || match (MatrixShape::new(rows, cols), GemmShape::new(rows, 1, cols)) {
                (Err(QuantError::TooLarge(_)), Err(QuantError::TooLarge(_))) => Ok(()),
                other => Err(format!("{other:?}")),
            })
        })
        .unwrap();
    // Group sizes other than 32, 64, 128.
    runner()
        .run(&any::<usize>(), |gs| {
            prop_assume!(![32, 64, 128].contains(&gs));
            TALLY.add(1);
            no_panic("group size", || match GroupSize::try_from(gs) {
                Err(QuantError::UnsupportedGroupSize(v)) if v == gs => Ok(()),
                other => Err(format!("{other:?}")),
            })
        })
        .unwrap();
    assert!(TALLY.report() > 0);
}

/// Panics found by this work, now typed errors: each of these crashed the
/// process (an overflow panic in debug builds, an abort or capacity-overflow
/// panic on allocation) before the fixes in `device.rs` and `gemm.rs`.
#[test]
fn former_panics_are_typed_errors() {
    static TALLY: Tally = Tally::new("former panics");
    // M = usize::MAX, K = 0 is a valid, empty shape; the TMA-aligned scale
    // rows (M rounded up to 4) overflowed in `Device::per_token_group_quant_fp8`.
    let x = Tensor::<f32>::from_vec(vec![], MatrixShape::strided(usize::MAX, 0, 0).unwrap()).unwrap();
    let tma = TokenGroupConfig { layout: ScaleLayout::ColMajorTmaAligned, ..Default::default() };
    let e = Device::Cpu.per_token_group_quant_fp8(&x, &tma).unwrap_err();
    assert!(matches!(e, QuantError::TooLarge(_)), "{e:?}");
    TALLY.add(1);
    // The same M in the GEMM's A-scale length (used by the GPU launcher).
    let shape = GemmShape::new(usize::MAX, 0, 0).unwrap();
    assert!(matches!(shape.checked_a_scales_len(ScaleLayout::ColMajorTmaAligned), Err(QuantError::TooLarge(_))));
    assert_eq!(shape.a_scales_len(ScaleLayout::ColMajorTmaAligned), usize::MAX);
    TALLY.add(1);
    // K = 0 operands are empty, but C is M x N: C of 2^62 bf16 (2^63 bytes)
    // was a `vec!` capacity-overflow panic, ...
    let a = Tensor::<u8>::from_vec(vec![], MatrixShape::new(1 << 31, 0).unwrap()).unwrap();
    let b = Tensor::<u8>::from_vec(vec![], MatrixShape::new(1 << 31, 0).unwrap()).unwrap();
    let none = Tensor::<f32>::from_vec(vec![], MatrixShape::new(0, 0).unwrap()).unwrap();
    let e = Device::Cpu.mm_fp8_blockscale(&a, &none, &b, &none, &GemmConfig::default()).unwrap_err();
    assert!(matches!(e, QuantError::TooLarge("tensor bytes")), "{e:?}");
    TALLY.add(1);
    // ... and C of 2^46 bf16 (128 TiB, past the 47-bit user address space)
    // was an allocation failure, which aborts the process.
    let a = Tensor::<u8>::from_vec(vec![], MatrixShape::new(1 << 23, 0).unwrap()).unwrap();
    let b = Tensor::<u8>::from_vec(vec![], MatrixShape::new(1 << 23, 0).unwrap()).unwrap();
    let e = Device::Cpu.mm_fp8_blockscale(&a, &none, &b, &none, &GemmConfig::default()).unwrap_err();
    assert!(matches!(e, QuantError::OutOfMemory { bytes, .. } if bytes == 1 << 47), "{e:?}");
    TALLY.add(1);
    // `zeros` itself, for every element size.
    let huge = MatrixShape::new(1 << 62, 1).unwrap();
    assert!(matches!(Device::Cpu.zeros::<f32>(huge), Err(QuantError::TooLarge(_))));
    assert!(matches!(Device::Cpu.zeros::<u8>(huge), Err(QuantError::OutOfMemory { .. })));
    TALLY.add(2);
    // A BlockConfig with a zero side through the allocating Device call.
    let w = Device::Cpu.upload(&[1f32; 4], MatrixShape::new(2, 2).unwrap()).unwrap();
    let e = Device::Cpu.per_block_quant_fp8(&w, &BlockConfig { block_rows: 0, ..Default::default() }).unwrap_err();
    assert!(matches!(e, QuantError::InvalidBlock { .. }), "{e:?}");
    TALLY.add(1);
    assert_eq!(TALLY.report(), 7);
}
