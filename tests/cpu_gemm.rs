//! The CPU `mm_fp8_blockscale` reference against a naive
//! dequantize-then-matmul in f64, on shapes with M, N and K tails.

use half::bf16;
use quant_host::cpu::{self, Accumulation};
use quant_host::gemm::GemmOutput;
use quant_host::{
    BlockConfig, Fp8Format, GemmConfig, GemmShape, MatrixShape, OutputType, ScaleLayout, ScaleMode, TokenGroupConfig,
};
use quant_tests::{max_rel_err, naive_gemm_f64, Rng};

/// (M, N, K): single elements, K and N just around 128 and its multiples.
const SHAPES: [(usize, usize, usize); 8] =
    [(1, 1, 1), (2, 3, 127), (3, 129, 128), (5, 130, 129), (4, 128, 385), (7, 257, 300), (9, 200, 256), (6, 1, 200)];

/// Quantized operands of one GEMM: A per token (groups of 128, `layout`),
/// B in 128 x 128 blocks.
struct Operands {
    shape: GemmShape,
    a: Vec<u8>,
    a_scales: Vec<f32>,
    b: Vec<u8>,
    b_scales: Vec<f32>,
    cfg: GemmConfig,
}

/// Values of magnitude 2^-4 .. 2^4 of both signs: a typical activation or
/// weight matrix, without the 2^60 dynamic range of `random_matrix`, so the
/// error measure is not dominated by a single row.
fn moderate_matrix(rng: &mut Rng, rows: usize, cols: usize) -> Vec<bf16> {
    (0..rows * cols)
        .map(|_| {
            let sign = if rng.chance(0.5) { -1.0 } else { 1.0 };
            bf16::from_f32((sign * (1.0 + rng.unit()) * 2f64.powi(rng.range_i32(-4, 4))) as f32)
        })
        .collect()
}

fn operands(
    (m, n, k): (usize, usize, usize),
    format: Fp8Format,
    layout: ScaleLayout,
    mode: ScaleMode,
    seed: u64,
) -> Operands {
    let mut rng = Rng::new(seed);
    let x = moderate_matrix(&mut rng, m, k);
    let w = moderate_matrix(&mut rng, n, k);
    let shape = GemmShape::new(m, n, k).unwrap();
    let a_cfg = TokenGroupConfig { format, layout, scale_mode: mode, ..Default::default() };
    let mut a = vec![0u8; m * k];
    let mut a_scales = vec![f32::NAN; shape.a_scales_len(layout)];
    cpu::per_token_group_quant_fp8(&x, MatrixShape::new(m, k).unwrap(), &a_cfg, &mut a, &mut a_scales).unwrap();
    let b_cfg = BlockConfig { format, scale_mode: mode, ..Default::default() };
    let mut b = vec![0u8; n * k];
    let mut b_scales = vec![f32::NAN; shape.b_scales_len()];
    cpu::per_block_quant_fp8(&w, MatrixShape::new(n, k).unwrap(), &b_cfg, &mut b, &mut b_scales).unwrap();
    let cfg = GemmConfig { format, a_scale_layout: layout, output: OutputType::F32, ..GemmConfig::default() };
    Operands { shape, a, a_scales, b, b_scales, cfg }
}

impl Operands {
    fn run_f32(&self, accumulation: Accumulation) -> Vec<f32> {
        let mut c = vec![f32::NAN; self.shape.m() * self.shape.n()];
        self.run(accumulation, OutputType::F32, GemmOutput::F32(&mut c));
        c
    }

    fn run_bf16(&self, accumulation: Accumulation) -> Vec<bf16> {
        let mut c = vec![bf16::NAN; self.shape.m() * self.shape.n()];
        self.run(accumulation, OutputType::Bf16, GemmOutput::Bf16(&mut c));
        c
    }

    /// The CPU GEMM into `c`, whose type `output` names.
    fn run(&self, accumulation: Accumulation, output: OutputType, c: GemmOutput<'_>) {
        let cfg = GemmConfig { output, ..self.cfg };
        cpu::mm_fp8_blockscale(&self.a, &self.a_scales, &self.b, &self.b_scales, self.shape, &cfg, accumulation, c)
            .unwrap();
    }

    /// The naive oracle: dequantize both operands in f64, then matmul.
    fn naive(&self) -> Vec<f64> {
        let s = self.shape;
        naive_gemm_f64(
            self.cfg.format,
            &self.a,
            &self.a_scales,
            self.cfg.a_scale_layout,
            &self.b,
            &self.b_scales,
            s.m(),
            s.n(),
            s.k(),
        )
    }

    /// `sum_k |A'[m, k]| * |B'[n, k]|`: the condition of each output element,
    /// from the naive oracle on the codes with their sign bits cleared.
    fn naive_abs(&self) -> Vec<f64> {
        let abs = |codes: &[u8]| codes.iter().map(|c| c & 0x7F).collect::<Vec<u8>>();
        let s = self.shape;
        naive_gemm_f64(
            self.cfg.format,
            &abs(&self.a),
            &self.a_scales,
            self.cfg.a_scale_layout,
            &abs(&self.b),
            &self.b_scales,
            s.m(),
            s.n(),
            s.k(),
        )
    }
}

fn all_cases() -> impl Iterator<Item = (usize, Operands)> {
    let mut seed = 0;
    SHAPES.into_iter().flat_map(move |shape| {
        Fp8Format::ALL.into_iter().flat_map(move |format| {
            ScaleLayout::ALL.into_iter().flat_map(move |layout| {
                ScaleMode::ALL.into_iter().map(move |mode| {
                    seed += 1;
                    (seed, operands(shape, format, layout, mode, seed as u64))
                })
            })
        })
    })
}

#[test]
fn f64_reference_matches_naive_dequantize_then_matmul() {
    for (case, ops) in all_cases() {
        let c = ops.run_f32(Accumulation::F64);
        let (reference, condition) = (ops.naive(), ops.naive_abs());
        let err = max_rel_err(&c, &reference);
        assert!(err < 1e-6, "case {case} {:?} {:?}: max rel err {err:e}", ops.shape, ops.cfg);
        // Element by element too, relative to the element's own condition
        // (the f32 rounding of the result is 2^-24 of |C| <= condition).
        for (i, ((&c, &r), &cond)) in c.iter().zip(&reference).zip(&condition).enumerate() {
            assert!((c as f64 - r).abs() <= 1e-6 * cond, "case {case} element {i}: {c:e} vs {r:e} (cond {cond:e})");
        }
    }
}

#[test]
fn f32_accumulation_agrees_with_f64_within_spec_tolerance() {
    let mut worst = 0f64;
    for (case, ops) in all_cases() {
        let c32 = ops.run_f32(Accumulation::F32);
        let reference: Vec<f64> = ops.run_f32(Accumulation::F64).iter().map(|&v| v as f64).collect();
        let err = max_rel_err(&c32, &reference);
        assert!(err < 1e-3, "case {case} {:?}: f32 accumulation off by {err:e}", ops.shape);
        // And against the naive oracle, with the same spec tolerance.
        assert!(max_rel_err(&c32, &ops.naive()) < 1e-3, "case {case}");
        worst = worst.max(err);
    }
    // f32 accumulation really is a different computation (it rounds): if it
    // were bit-identical to f64 everywhere this test would prove nothing.
    assert!(worst > 0.0, "f32 and f64 accumulation gave identical results");
}

#[test]
fn bf16_output_is_the_f32_result_rounded_to_nearest_even() {
    for (case, ops) in all_cases() {
        for accumulation in [Accumulation::F64, Accumulation::F32] {
            let c32 = ops.run_f32(accumulation);
            let c16 = ops.run_bf16(accumulation);
            for (i, (&x, &y)) in c32.iter().zip(&c16).enumerate() {
                assert_eq!(y.to_bits(), bf16::from_f32(x).to_bits(), "case {case} element {i}");
            }
            // The spec's tolerance for bf16 output against the reference.
            let widened: Vec<f32> = c16.iter().map(|v| v.to_f32()).collect();
            let err = max_rel_err(&widened, &ops.naive());
            assert!(err < 1e-2, "case {case}: bf16 output off by {err:e}");
        }
    }
}

#[test]
fn a_scale_layouts_give_identical_results() {
    for shape in SHAPES {
        for format in Fp8Format::ALL {
            let results: Vec<Vec<f32>> = ScaleLayout::ALL
                .into_iter()
                .map(|layout| operands(shape, format, layout, ScaleMode::Float, 99).run_f32(Accumulation::F64))
                .collect();
            assert_eq!(results[0], results[1], "{shape:?} col-major");
            assert_eq!(results[0], results[2], "{shape:?} col-major TMA-aligned");
        }
    }
}

/// A hand-computed case, independent of every helper: K = 129 spans two
/// k-blocks (128 + a tail of 1) and N = 129 two block rows of B.
#[test]
fn hand_computed_two_block_example() {
    let (m, n, k) = (1, 129, 129);
    let format = Fp8Format::E4M3Fn;
    // 0x38 = 1.0, 0x40 = 2.0, 0x30 = 0.5 in E4M3FN.
    let a = vec![0x38u8; m * k];
    let mut b = vec![0x40u8; n * k];
    b[128 * k..].fill(0x30); // B row 128 (second block row) is all 0.5.
    let a_scales = [0.5f32, 2.0]; // per k-block
    let b_scales = [3.0f32, 1.0, 10.0, 100.0]; // [n-block][k-block]
    let shape = GemmShape::new(m, n, k).unwrap();
    let cfg =
        GemmConfig { format, a_scale_layout: ScaleLayout::RowMajor, output: OutputType::F32, ..GemmConfig::default() };
    for accumulation in [Accumulation::F64, Accumulation::F32] {
        let mut c = vec![0f32; n];
        cpu::mm_fp8_blockscale(&a, &a_scales, &b, &b_scales, shape, &cfg, accumulation, GemmOutput::F32(&mut c))
            .unwrap();
        // Columns 0..128: 0.5 * 3 * (128 * 1 * 2) + 2 * 1 * (1 * 1 * 2) = 384 + 4.
        assert!(c[..128].iter().all(|&v| v == 388.0), "{accumulation:?}: {:?}", &c[..4]);
        // Column 128: 0.5 * 10 * (128 * 0.5) + 2 * 100 * (1 * 0.5) = 320 + 100.
        assert_eq!(c[128], 420.0, "{accumulation:?}");
    }
}

#[test]
fn empty_dimensions() {
    let cfg = GemmConfig { output: OutputType::F32, ..Default::default() };
    // M == 0 and N == 0 do nothing.
    for (m, n, k) in [(0, 5, 130), (3, 0, 130), (0, 0, 0)] {
        let shape = GemmShape::new(m, n, k).unwrap();
        let (a, b) = (vec![0x38u8; m * k], vec![0x38u8; n * k]);
        let (sa, sb) = (vec![1f32; shape.a_scales_len(cfg.a_scale_layout)], vec![1f32; shape.b_scales_len()]);
        let mut c: Vec<f32> = vec![];
        cpu::mm_fp8_blockscale(&a, &sa, &b, &sb, shape, &cfg, Accumulation::F64, GemmOutput::F32(&mut c)).unwrap();
    }
    // K == 0: an empty sum, C is all zeros (every element written).
    let shape = GemmShape::new(2, 3, 0).unwrap();
    let mut c = vec![f32::NAN; 6];
    cpu::mm_fp8_blockscale(&[], &[], &[], &[], shape, &cfg, Accumulation::F64, GemmOutput::F32(&mut c)).unwrap();
    assert_eq!(c, vec![0.0; 6]);
}
