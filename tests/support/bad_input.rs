//! Invalid arguments for every quantizer and GEMM entry point, each with the
//! typed error it must return.
//!
//! A case is a valid call with exactly one thing broken (so the expected
//! error is unambiguous): a bad `eps` or `fp8_max`, a zero block side, a
//! buffer one or more elements too short or too long, a K that differs
//! between A and B, a C of the wrong shape or type, a strided operand where
//! the GEMM needs a dense one. The same strategies drive the CPU property
//! tests (`cpu_bad_input_props.rs`, in CI) and the GPU ones
//! (`gpu_bad_input.rs`), so both backends are held to the same contract.

use half::bf16;
use proptest::prelude::*;
use quant_host::{
    BlockConfig, Device, Fp8Format, GemmConfig, GemmTensor, GroupSize, MatrixShape, OutputType, QuantError,
    ScaleLayout, ScaleMode, Tensor, TokenGroupConfig,
};

/// The error a broken call must return.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Expect {
    /// `InvalidEps` carrying exactly this value (compared by bits).
    Eps(f32),
    /// `InvalidFp8Max` carrying exactly this value (compared by bits).
    Fp8Max(f32),
    /// `InvalidBlock`.
    Block,
    /// `BufferLength` naming this argument.
    Len(&'static str),
    /// `ShapeMismatch`.
    Shape,
}

impl Expect {
    /// Whether `e` is the error this expectation names.
    pub fn matches(&self, e: &QuantError) -> bool {
        match (*self, e) {
            (Expect::Eps(v), QuantError::InvalidEps(got)) => v.to_bits() == got.to_bits(),
            (Expect::Fp8Max(v), QuantError::InvalidFp8Max { value, .. }) => v.to_bits() == value.to_bits(),
            (Expect::Block, QuantError::InvalidBlock { .. }) => true,
            (Expect::Len(what), QuantError::BufferLength { what: got, .. }) => what == *got,
            (Expect::Shape, QuantError::ShapeMismatch(_)) => true,
            _ => false,
        }
    }
}

/// Values of `eps` that every entry point must reject: not finite, not
/// positive, or so small that `eps / fp8_max` is not a normal f32 (for every
/// `fp8_max >= 2` the strategies use).
pub fn bad_eps() -> impl Strategy<Value = f32> {
    prop_oneof![
        prop::sample::select(vec![
            0.0f32,
            -0.0,
            -1e-12,
            -1.0,
            f32::NAN,
            -f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::MIN_POSITIVE,
            1e-40,
            1e-45,
            f32::MIN,
        ]),
        // Any negative normal or subnormal.
        (1u32..0x7F80_0000).prop_map(|bits| -f32::from_bits(bits)),
        // Any positive subnormal.
        (1u32..0x0080_0000).prop_map(f32::from_bits),
    ]
}

/// Values of `fp8_max` that `format` must reject: not finite, not positive,
/// or above the format's largest finite value (by as little as one ulp).
pub fn bad_fp8_max(format: Fp8Format) -> impl Strategy<Value = f32> {
    let max = format.max_finite();
    prop_oneof![
        prop::sample::select(vec![
            0.0f32,
            -0.0,
            -1.0,
            -max,
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            max.next_up(),
            2.0 * max,
            f32::MAX,
        ]),
        // Anything finite above max.
        (max.next_up().to_bits()..f32::MAX.to_bits()).prop_map(f32::from_bits),
    ]
}

fn good_eps() -> impl Strategy<Value = f32> {
    prop::sample::select(vec![1e-12f32, 1e-10, 1e-4, 1.0])
}

fn good_fp8_max() -> impl Strategy<Value = Option<f32>> {
    prop::sample::select(vec![None, Some(224.0f32), Some(100.0), Some(2.0)])
}

/// A per-token-group call: the shape of `x`, the config, and the lengths of
/// the three buffers (exactly what a valid call needs, except where `expect`
/// says what was broken).
#[derive(Clone, Copy, Debug)]
pub struct TokenCall {
    /// M.
    pub rows: usize,
    /// K.
    pub cols: usize,
    /// Row stride of `x` (>= K).
    pub stride: usize,
    /// The config.
    pub cfg: TokenGroupConfig,
    /// Elements of `x`.
    pub x_len: usize,
    /// Codes.
    pub q_len: usize,
    /// Scales.
    pub scales_len: usize,
    /// The error the call must return.
    pub expect: Expect,
}

/// The exact length of a token-group scale buffer.
pub fn token_scales_len(layout: ScaleLayout, rows: usize, cols: usize, gs: usize) -> usize {
    layout.len(rows as u64, cols.div_ceil(gs) as u64) as usize
}

/// `x_len` for a `rows x cols` matrix with row stride `stride`.
pub fn extent(rows: usize, cols: usize, stride: usize) -> usize {
    if rows == 0 {
        0
    } else {
        (rows - 1) * stride + cols
    }
}

/// A length that is not `good`: off by 1..=300 either way (never negative).
fn off(good: usize, delta: usize, longer: bool) -> usize {
    if longer || good == 0 {
        good + delta
    } else {
        good.saturating_sub(delta.min(good))
    }
}

#[derive(Clone, Copy, Debug)]
enum TokenBreak {
    Eps(f32),
    Fp8Max(f32),
    ShortX(usize),
    Q(usize, bool),
    Scales(usize, bool),
}

/// Per-token-group calls with one argument broken.
pub fn token_call() -> impl Strategy<Value = TokenCall> {
    let base = (
        0usize..6,
        0usize..300,
        0usize..4,
        prop::sample::select(Fp8Format::ALL.to_vec()),
        prop::sample::select(GroupSize::ALL.to_vec()),
        prop::sample::select(ScaleLayout::ALL.to_vec()),
        prop::sample::select(ScaleMode::ALL.to_vec()),
        good_eps(),
        good_fp8_max(),
    );
    base.prop_flat_map(|(rows, cols, pad, format, group_size, layout, scale_mode, eps, fp8_max)| {
        let cfg = TokenGroupConfig { format, group_size, eps, fp8_max, scale_mode, layout };
        let breaks = prop_oneof![
            bad_eps().prop_map(TokenBreak::Eps),
            bad_fp8_max(format).prop_map(TokenBreak::Fp8Max),
            (1usize..300).prop_map(TokenBreak::ShortX),
            (1usize..300, any::<bool>()).prop_map(|(d, l)| TokenBreak::Q(d, l)),
            (1usize..300, any::<bool>()).prop_map(|(d, l)| TokenBreak::Scales(d, l)),
        ];
        breaks.prop_map(move |b| {
            let stride = cols + pad;
            let mut call = TokenCall {
                rows,
                cols,
                stride,
                cfg,
                x_len: extent(rows, cols, stride),
                q_len: rows * cols,
                scales_len: token_scales_len(layout, rows, cols, group_size.get()),
                expect: Expect::Shape,
            };
            call.expect = match b {
                TokenBreak::Eps(e) => {
                    call.cfg.eps = e;
                    Expect::Eps(e)
                }
                TokenBreak::Fp8Max(v) => {
                    call.cfg.fp8_max = Some(v);
                    Expect::Fp8Max(v)
                }
                // An empty x cannot be short: break q instead.
                TokenBreak::ShortX(_) if call.x_len == 0 => {
                    call.q_len += 1;
                    Expect::Len("q")
                }
                TokenBreak::ShortX(d) => {
                    call.x_len -= d.min(call.x_len);
                    Expect::Len("x")
                }
                TokenBreak::Q(d, longer) => {
                    call.q_len = off(call.q_len, d, longer);
                    Expect::Len("q")
                }
                TokenBreak::Scales(d, longer) => {
                    call.scales_len = off(call.scales_len, d, longer);
                    Expect::Len("scales")
                }
            };
            call
        })
    })
}

/// A per-block call (also the dequantizer's arguments), one argument broken.
#[derive(Clone, Copy, Debug)]
pub struct BlockCall {
    /// N.
    pub rows: usize,
    /// K.
    pub cols: usize,
    /// Row stride of `w`.
    pub stride: usize,
    /// The config.
    pub cfg: BlockConfig,
    /// Elements of `w`.
    pub w_len: usize,
    /// Codes.
    pub q_len: usize,
    /// Scales.
    pub scales_len: usize,
    /// The error the call must return.
    pub expect: Expect,
}

#[derive(Clone, Copy, Debug)]
enum BlockBreak {
    Eps(f32),
    Fp8Max(f32),
    ZeroSide(bool),
    ShortW(usize),
    Q(usize, bool),
    Scales(usize, bool),
}

/// Per-block calls with one argument broken.
pub fn block_call() -> impl Strategy<Value = BlockCall> {
    let base = (
        0usize..140,
        0usize..300,
        0usize..4,
        prop::sample::select(Fp8Format::ALL.to_vec()),
        prop::sample::select(vec![1usize, 3, 64, 128, 200]),
        prop::sample::select(vec![1usize, 32, 128, 129]),
        prop::sample::select(ScaleMode::ALL.to_vec()),
        good_eps(),
        good_fp8_max(),
    );
    base.prop_flat_map(|(rows, cols, pad, format, block_rows, block_cols, scale_mode, eps, fp8_max)| {
        let cfg = BlockConfig { format, block_rows, block_cols, eps, fp8_max, scale_mode };
        let breaks = prop_oneof![
            bad_eps().prop_map(BlockBreak::Eps),
            bad_fp8_max(format).prop_map(BlockBreak::Fp8Max),
            any::<bool>().prop_map(BlockBreak::ZeroSide),
            (1usize..300).prop_map(BlockBreak::ShortW),
            (1usize..300, any::<bool>()).prop_map(|(d, l)| BlockBreak::Q(d, l)),
            (1usize..300, any::<bool>()).prop_map(|(d, l)| BlockBreak::Scales(d, l)),
        ];
        breaks.prop_map(move |b| {
            let stride = cols + pad;
            let mut call = BlockCall {
                rows,
                cols,
                stride,
                cfg,
                w_len: extent(rows, cols, stride),
                q_len: rows * cols,
                scales_len: rows.div_ceil(block_rows) * cols.div_ceil(block_cols),
                expect: Expect::Shape,
            };
            call.expect = match b {
                BlockBreak::Eps(e) => {
                    call.cfg.eps = e;
                    Expect::Eps(e)
                }
                BlockBreak::Fp8Max(v) => {
                    call.cfg.fp8_max = Some(v);
                    Expect::Fp8Max(v)
                }
                BlockBreak::ZeroSide(rows_side) => {
                    if rows_side {
                        call.cfg.block_rows = 0;
                    } else {
                        call.cfg.block_cols = 0;
                    }
                    // Buffer lengths are computed from the block sides; keep
                    // the (now meaningless) valid ones.
                    Expect::Block
                }
                BlockBreak::ShortW(_) if call.w_len == 0 => {
                    call.q_len += 1;
                    Expect::Len("q")
                }
                BlockBreak::ShortW(d) => {
                    call.w_len -= d.min(call.w_len);
                    Expect::Len("w")
                }
                BlockBreak::Q(d, longer) => {
                    call.q_len = off(call.q_len, d, longer);
                    Expect::Len("q")
                }
                BlockBreak::Scales(d, longer) => {
                    call.scales_len = off(call.scales_len, d, longer);
                    Expect::Len("scales")
                }
            };
            call
        })
    })
}

/// A GEMM call: the shapes and lengths of A, B, their scales and C.
#[derive(Clone, Copy, Debug)]
pub struct GemmCall {
    /// Rows of A.
    pub m: usize,
    /// Rows of B.
    pub n: usize,
    /// K of A.
    pub k: usize,
    /// K of B (differs from `k` when that is what is broken).
    pub k_b: usize,
    /// Row stride of A (> K when that is what is broken).
    pub a_stride: usize,
    /// Shape of C.
    pub c_rows: usize,
    /// Columns of C.
    pub c_cols: usize,
    /// Elements of A's scales.
    pub a_scales_len: usize,
    /// Elements of B's scales.
    pub b_scales_len: usize,
    /// Elements of A (the raw CPU function only).
    pub a_len: usize,
    /// Elements of B (the raw CPU function only).
    pub b_len: usize,
    /// Elements of C (the raw CPU function only; tensors use `c_rows x c_cols`).
    pub c_len: usize,
    /// The output type of C (differs from `cfg.output` when broken).
    pub c_type: OutputType,
    /// The config.
    pub cfg: GemmConfig,
    /// The error the call must return.
    pub expect: Expect,
}

#[derive(Clone, Copy, Debug)]
enum GemmBreak {
    KMismatch(usize),
    Strided(usize),
    CShape(usize, bool),
    AScales(usize, bool),
    BScales(usize, bool),
    CType,
    ALen(usize, bool),
    BLen(usize, bool),
}

/// GEMM calls with one argument broken. `raw` includes the breaks only the
/// raw CPU function can receive (A or B of the wrong length: a `Tensor`
/// cannot be built with a buffer shorter than its shape).
pub fn gemm_call(raw: bool) -> impl Strategy<Value = GemmCall> {
    let base = (
        0usize..20,
        0usize..140,
        0usize..300,
        prop::sample::select(Fp8Format::ALL.to_vec()),
        prop::sample::select(ScaleLayout::ALL.to_vec()),
        prop::sample::select(vec![OutputType::Bf16, OutputType::F32]),
    );
    base.prop_flat_map(move |(m, n, k, format, a_scale_layout, output)| {
        let cfg = GemmConfig { format, a_scale_layout, output, ..GemmConfig::default() };
        let tensor_breaks = prop_oneof![
            (1usize..200).prop_map(GemmBreak::KMismatch),
            (1usize..8).prop_map(GemmBreak::Strided),
            (1usize..20, any::<bool>()).prop_map(|(d, r)| GemmBreak::CShape(d, r)),
            (1usize..300, any::<bool>()).prop_map(|(d, l)| GemmBreak::AScales(d, l)),
            (1usize..300, any::<bool>()).prop_map(|(d, l)| GemmBreak::BScales(d, l)),
            Just(GemmBreak::CType),
        ];
        let raw_breaks = prop_oneof![
            (1usize..300, any::<bool>()).prop_map(|(d, l)| GemmBreak::ALen(d, l)),
            (1usize..300, any::<bool>()).prop_map(|(d, l)| GemmBreak::BLen(d, l)),
        ];
        let breaks = if raw { prop_oneof![3 => tensor_breaks, 1 => raw_breaks].boxed() } else { tensor_breaks.boxed() };
        breaks.prop_map(move |b| {
            let kb = k.div_ceil(128);
            let mut call = GemmCall {
                m,
                n,
                k,
                k_b: k,
                a_stride: k,
                c_rows: m,
                c_cols: n,
                a_scales_len: a_scale_layout.len(m as u64, kb as u64) as usize,
                b_scales_len: n.div_ceil(128) * kb,
                a_len: m * k,
                b_len: n * k,
                c_len: m * n,
                c_type: output,
                cfg,
                expect: Expect::Shape,
            };
            call.expect = match b {
                GemmBreak::KMismatch(d) => {
                    call.k_b = k + d;
                    call.b_len = n * call.k_b;
                    Expect::Shape
                }
                // A strided A needs two rows to be strided; with fewer, break K.
                GemmBreak::Strided(d) if m < 2 => {
                    call.k_b = k + d;
                    call.b_len = n * call.k_b;
                    Expect::Shape
                }
                GemmBreak::Strided(d) => {
                    call.a_stride = k + d;
                    Expect::Shape
                }
                GemmBreak::CShape(d, rows) => {
                    if rows {
                        call.c_rows += d;
                    } else {
                        call.c_cols += d;
                    }
                    Expect::Shape
                }
                GemmBreak::AScales(d, longer) => {
                    call.a_scales_len = off(call.a_scales_len, d, longer);
                    Expect::Len("a_scales")
                }
                GemmBreak::BScales(d, longer) => {
                    call.b_scales_len = off(call.b_scales_len, d, longer);
                    Expect::Len("b_scales")
                }
                GemmBreak::CType => {
                    call.c_type = match output {
                        OutputType::Bf16 => OutputType::F32,
                        OutputType::F32 => OutputType::Bf16,
                    };
                    Expect::Shape
                }
                GemmBreak::ALen(d, longer) => {
                    call.a_len = off(call.a_len, d, longer);
                    Expect::Len("a")
                }
                GemmBreak::BLen(d, longer) => {
                    call.b_len = off(call.b_len, d, longer);
                    Expect::Len("b")
                }
            };
            if raw {
                // The raw function takes slices and one `GemmShape`: a K that
                // differs, a stride or a wrong C shape reach it as a buffer of
                // the wrong length (never equal to the right one, even when
                // M or N is 0).
                if call.k_b != k {
                    call.k_b = k;
                    call.b_len = n * k + (call.b_len - n * k).max(1);
                    call.expect = Expect::Len("b");
                } else if call.a_stride != k {
                    call.a_len = extent(m, k, call.a_stride);
                    call.a_stride = k;
                    call.expect = Expect::Len("a");
                } else if (call.c_rows, call.c_cols) != (m, n) {
                    call.c_len = m * n + (call.c_rows - m) + (call.c_cols - n);
                    (call.c_rows, call.c_cols) = (m, n);
                    call.expect = Expect::Len("c");
                }
            }
            call
        })
    })
}

/// Runs `call` through [`Device::per_token_group_quant_fp8_into`] (and the
/// allocating variant where the break is in the config) on `dev`, and checks
/// that it returns `call.expect` and leaves the outputs untouched. A short
/// `x` cannot reach the quantizer through a `Tensor`: it must be refused by
/// [`Device::upload`] and [`Tensor::from_vec`] instead.
pub fn check_token_on(dev: &Device, call: &TokenCall) -> Result<(), String> {
    let shape = MatrixShape::strided(call.rows, call.cols, call.stride).map_err(|e| e.to_string())?;
    let x = vec![bf16::ONE; call.x_len];
    if call.x_len < shape.extent() {
        expect_err(dev.upload(&x, shape).map(|_| ()), Expect::Len("data"))?;
        return expect_err(Tensor::from_vec(x, shape).map(|_| ()), Expect::Len("tensor data"));
    }
    let x = dev.upload(&x, shape).map_err(|e| e.to_string())?;
    let mut q = dev.upload(&vec![0xAAu8; call.q_len], dense(1, call.q_len)?).map_err(|e| e.to_string())?;
    let mut s = dev.upload(&vec![-7.0f32; call.scales_len], dense(1, call.scales_len)?).map_err(|e| e.to_string())?;
    expect_err(dev.per_token_group_quant_fp8_into(&x, &call.cfg, &mut q, &mut s), call.expect)?;
    untouched(&q, &s)?;
    if matches!(call.expect, Expect::Eps(_) | Expect::Fp8Max(_)) {
        expect_err(dev.per_token_group_quant_fp8(&x, &call.cfg).map(|_| ()), call.expect)?;
    }
    Ok(())
}

/// [`check_token_on`] for [`Device::per_block_quant_fp8_into`].
pub fn check_block_on(dev: &Device, call: &BlockCall) -> Result<(), String> {
    let shape = MatrixShape::strided(call.rows, call.cols, call.stride).map_err(|e| e.to_string())?;
    let w = vec![1.0f32; call.w_len];
    if call.w_len < shape.extent() {
        expect_err(dev.upload(&w, shape).map(|_| ()), Expect::Len("data"))?;
        return expect_err(Tensor::from_vec(w, shape).map(|_| ()), Expect::Len("tensor data"));
    }
    let w = dev.upload(&w, shape).map_err(|e| e.to_string())?;
    let mut q = dev.upload(&vec![0xAAu8; call.q_len], dense(1, call.q_len)?).map_err(|e| e.to_string())?;
    let mut s = dev.upload(&vec![-7.0f32; call.scales_len], dense(1, call.scales_len)?).map_err(|e| e.to_string())?;
    expect_err(dev.per_block_quant_fp8_into(&w, &call.cfg, &mut q, &mut s), call.expect)?;
    untouched(&q, &s)?;
    if matches!(call.expect, Expect::Eps(_) | Expect::Fp8Max(_) | Expect::Block) {
        expect_err(dev.per_block_quant_fp8(&w, &call.cfg).map(|_| ()), call.expect)?;
    }
    Ok(())
}

/// [`check_token_on`] for [`Device::mm_fp8_blockscale_into`] (and the
/// allocating variant where C is not what is broken).
pub fn check_gemm_on(dev: &Device, call: &GemmCall) -> Result<(), String> {
    let e = |e: QuantError| e.to_string();
    let a_shape = MatrixShape::strided(call.m, call.k, call.a_stride).map_err(e)?;
    let a = dev.upload(&vec![0x38u8; a_shape.extent()], a_shape).map_err(e)?;
    let b = dev.upload(&vec![0x38u8; call.n * call.k_b], dense(call.n, call.k_b)?).map_err(e)?;
    let sa = dev.upload(&vec![1f32; call.a_scales_len], dense(1, call.a_scales_len)?).map_err(e)?;
    let sb = dev.upload(&vec![1f32; call.b_scales_len], dense(1, call.b_scales_len)?).map_err(e)?;
    let c_shape = dense(call.c_rows, call.c_cols)?;
    let mut c = match call.c_type {
        OutputType::Bf16 => {
            GemmTensor::Bf16(dev.upload(&vec![bf16::from_f32(-7.0); c_shape.numel()], c_shape).map_err(e)?)
        }
        OutputType::F32 => GemmTensor::F32(dev.upload(&vec![-7.0f32; c_shape.numel()], c_shape).map_err(e)?),
    };
    expect_err(dev.mm_fp8_blockscale_into(&a, &sa, &b, &sb, &call.cfg, &mut c), call.expect)?;
    let c_now = c.to_f32_vec().map_err(e)?;
    if c_now.iter().any(|&v| v != -7.0) {
        return Err("C written by a call that failed".into());
    }
    let c_broken = (call.c_rows, call.c_cols) != (call.m, call.n) || call.c_type != call.cfg.output;
    if !c_broken {
        expect_err(dev.mm_fp8_blockscale(&a, &sa, &b, &sb, &call.cfg).map(|_| ()), call.expect)?;
    }
    Ok(())
}

/// A dense shape, as a `String` error for the checkers.
fn dense(rows: usize, cols: usize) -> Result<MatrixShape, String> {
    MatrixShape::new(rows, cols).map_err(|e| e.to_string())
}

/// Runs `check`, turning an error into a test-case failure and a panic into a
/// failure that says so.
pub fn no_panic(what: &str, check: impl FnOnce() -> Result<(), String>) -> Result<(), TestCaseError> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(check)) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(why)) => Err(TestCaseError::fail(format!("{what}: {why}"))),
        Err(_) => Err(TestCaseError::fail(format!("{what}: PANICKED"))),
    }
}

/// `cases` generated bad calls of each `Device` entry point family (the
/// quantizers with their `_into` forms and the GEMM) on `dev`, each checked
/// by [`check_token_on`], [`check_block_on`], [`check_gemm_on`].
pub fn run_on_device(dev: &Device, cases: u32, tally: &Tally) {
    let runner = || {
        proptest::test_runner::TestRunner::new(proptest::test_runner::Config {
            cases,
            failure_persistence: None,
            ..proptest::test_runner::Config::default()
        })
    };
    runner()
        .run(&token_call(), |call| {
            tally.add(1);
            no_panic("token", || check_token_on(dev, &call))
        })
        .unwrap();
    runner()
        .run(&block_call(), |call| {
            tally.add(1);
            no_panic("block", || check_block_on(dev, &call))
        })
        .unwrap();
    runner()
        .run(&gemm_call(false), |call| {
            tally.add(1);
            no_panic("gemm", || check_gemm_on(dev, &call))
        })
        .unwrap();
}

/// `Ok` when `result` is the error `expect` names.
pub fn expect_err(result: quant_host::Result<()>, expect: Expect) -> Result<(), String> {
    match result {
        Ok(()) => Err(format!("accepted; expected {expect:?}")),
        Err(e) if expect.matches(&e) => Ok(()),
        Err(e) => Err(format!("returned {e:?} ({e}); expected {expect:?}")),
    }
}

fn untouched(q: &Tensor<u8>, s: &Tensor<f32>) -> Result<(), String> {
    let (q, s) = (q.to_vec().map_err(|e| e.to_string())?, s.to_vec().map_err(|e| e.to_string())?);
    if q.iter().any(|&c| c != 0xAA) || s.iter().any(|&v| v != -7.0) {
        return Err("outputs written by a call that failed".into());
    }
    Ok(())
}

/// Counts the bad inputs a test tried, and prints the total when dropped
/// (run the tests with `--nocapture` to see it).
pub struct Tally {
    name: &'static str,
    count: std::sync::atomic::AtomicUsize,
}

impl Tally {
    /// A tally printed as `bad inputs tried: {count} ({name})`.
    pub const fn new(name: &'static str) -> Self {
        Self { name, count: std::sync::atomic::AtomicUsize::new(0) }
    }

    /// Counts one case.
    pub fn add(&self, n: usize) {
        self.count.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }

    /// Prints and returns the total.
    pub fn report(&self) -> usize {
        let n = self.count.load(std::sync::atomic::Ordering::Relaxed);
        println!("bad inputs tried: {n} ({})", self.name);
        n
    }
}
