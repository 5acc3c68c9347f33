//! GPU `mm_fp8_blockscale` against the CPU reference.
//!
//! Every GPU test is `#[ignore = "needs a CUDA GPU"]`: CI has no GPU and reports
//! them ignored; run them with `--include-ignored` on a GPU machine. Inputs are
//! random bf16 quantized by the CPU quantizers (never zeros), drawn afresh on
//! each run (the seed is printed). Small problems are checked against the full
//! CPU reference (f64 accumulation); large ones on a random sample of output
//! elements computed in f64. The whole of C is poisoned with NaN before the
//! launch, so an element the kernel does not write fails the check.
//! `QUANT_TEST_SEED=<seed>` replays a run; `QUANT_GEMM_ERRORS=1` prints every
//! check's relative error (how the accuracy figures in bench/NOTES-gemm.md
//! were collected).

use half::bf16;
use quant_host::cpu;
use quant_host::gemm::{GemmOutput, GemmTensor};
use quant_host::{
    BlockConfig, Device, Fp8Format, GemmConfig, GemmPrecision, GemmShape, GemmTile, MatrixShape, OutputType,
    ScaleLayout, Tensor, TokenGroupConfig,
};

/// splitmix64: small, fast, good enough for test data.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed)
    }
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// A fresh seed per run, or `QUANT_TEST_SEED` to replay a printed one.
fn seed() -> u64 {
    let s = std::env::var("QUANT_TEST_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1)
    });
    eprintln!("seed {s}");
    s
}

/// Random non-zero bf16 rows whose magnitudes vary by row (so scales differ)
/// and contain outliers (so codes span the format), filled by several threads.
fn random_bf16(rows: usize, cols: usize, seed: u64) -> Vec<bf16> {
    let mut data = vec![bf16::ZERO; rows * cols];
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).min(16);
    let chunk_rows = rows.div_ceil(threads).max(1);
    std::thread::scope(|s| {
        for (ci, chunk) in data.chunks_mut((chunk_rows * cols).max(1)).enumerate() {
            s.spawn(move || {
                let mut rng = Rng::new(seed ^ (ci as u64).wrapping_mul(0xA24B_AED4_963E_E407));
                for row in chunk.chunks_mut(cols.max(1)) {
                    let row_scale = 2f32.powi(rng.below(12) as i32 - 6);
                    for v in row.iter_mut() {
                        let u = rng.unit() * 2.0 - 1.0;
                        let outlier = if rng.below(64) == 0 { 8.0 } else { 1.0 };
                        let x = (u + 0.01f32.copysign(u)) * row_scale * outlier;
                        *v = bf16::from_f32(x);
                    }
                }
            });
        }
    });
    data
}

/// Quantized operands on the host.
struct Operand {
    codes: Vec<u8>,
    scales: Vec<f32>,
}

impl Operand {
    /// The codes as a `[rows, cols]` tensor on `dev` and the scales as one
    /// row, as the GEMM takes them.
    fn upload(&self, dev: &Device, rows: usize, cols: usize) -> (Tensor<u8>, Tensor<f32>) {
        (
            dev.upload(&self.codes, MatrixShape::new(rows, cols).unwrap()).unwrap(),
            dev.upload(&self.scales, MatrixShape::new(1, self.scales.len()).unwrap()).unwrap(),
        )
    }
}

fn quant_a(x: &[bf16], m: usize, k: usize, format: Fp8Format, layout: ScaleLayout) -> Operand {
    let cfg = TokenGroupConfig { format, layout, ..Default::default() };
    let shape = MatrixShape::new(m, k).unwrap();
    let groups = k.div_ceil(128);
    let mut codes = vec![0u8; m * k];
    let mut scales = vec![0f32; layout.len(m as u64, groups as u64) as usize];
    cpu::per_token_group_quant_fp8(x, shape, &cfg, &mut codes, &mut scales).unwrap();
    Operand { codes, scales }
}

/// Block quantization of B, in parallel over 128-row bands (each band's
/// scales are independent of the others).
fn quant_b(w: &[bf16], n: usize, k: usize, format: Fp8Format) -> Operand {
    let cfg = BlockConfig { format, ..Default::default() };
    let kb = k.div_ceil(128);
    let mut codes = vec![0u8; n * k];
    let mut scales = vec![0f32; n.div_ceil(128) * kb];
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).min(16);
    let bands = n.div_ceil(128);
    let bands_per = bands.div_ceil(threads).max(1);
    let rows_per = bands_per * 128;
    std::thread::scope(|s| {
        for ((wc, qc), sc) in
            w.chunks(rows_per * k).zip(codes.chunks_mut(rows_per * k)).zip(scales.chunks_mut(bands_per * kb))
        {
            let cfg = &cfg;
            s.spawn(move || {
                let rows = wc.len() / k;
                cpu::per_block_quant_fp8(wc, MatrixShape::new(rows, k).unwrap(), cfg, qc, sc).unwrap();
            });
        }
    });
    Operand { codes, scales }
}

fn gpu() -> Device {
    match Device::cuda(0) {
        Ok(d) => d,
        Err(e) => panic!("these tests need a CUDA GPU: {e}"),
    }
}

/// A device whose GEMM kernels load with the environment variable `var` set
/// to `value` (the library reads its GEMM switches once per device, when
/// its first GEMM loads them: this runs one here, then unsets `var`).
fn gpu_with_env(var: &str, value: &str) -> Device {
    std::env::set_var(var, value);
    let dev = gpu();
    let f = Fp8Format::E4M3Fn;
    let a = quant_a(&random_bf16(1, 128, 1), 1, 128, f, ScaleLayout::RowMajor);
    let b = quant_b(&random_bf16(8, 128, 2), 8, 128, f);
    let cfg = GemmConfig { a_scale_layout: ScaleLayout::RowMajor, output: OutputType::F32, ..Default::default() };
    run_gpu(&dev, &upload(&dev, &a, &b, 1, 8, 128), 1, 8, &cfg);
    std::env::remove_var(var);
    dev
}

/// Device copies of one problem's operands.
struct OnDevice {
    a: Tensor<u8>,
    sa: Tensor<f32>,
    b: Tensor<u8>,
    sb: Tensor<f32>,
}

fn upload(dev: &Device, a: &Operand, b: &Operand, m: usize, n: usize, k: usize) -> OnDevice {
    let ((a, sa), (b, sb)) = (a.upload(dev, m, k), b.upload(dev, n, k));
    OnDevice { a, sa, b, sb }
}

/// Runs the GPU GEMM on C poisoned with NaN and returns C as f32.
fn run_gpu(dev: &Device, ops: &OnDevice, m: usize, n: usize, cfg: &GemmConfig) -> Vec<f32> {
    let shape = MatrixShape::new(m, n).unwrap();
    let mut c = match cfg.output {
        OutputType::Bf16 => GemmTensor::Bf16(dev.upload(&vec![bf16::NAN; m * n], shape).unwrap()),
        OutputType::F32 => GemmTensor::F32(dev.upload(&vec![f32::NAN; m * n], shape).unwrap()),
    };
    dev.mm_fp8_blockscale_into(&ops.a, &ops.sa, &ops.b, &ops.sb, cfg, &mut c).unwrap();
    c.to_f32_vec().unwrap()
}

/// `C[row, col]` in f64, straight from the spec's formula.
#[allow(clippy::too_many_arguments)]
fn reference_element(
    a: &Operand,
    b: &Operand,
    m: usize,
    k: usize,
    cfg: &GemmConfig,
    row: usize,
    col: usize,
    table: &[f64; 256],
) -> f64 {
    let kb = k.div_ceil(128);
    let mut total = 0f64;
    for blk in 0..kb {
        let mut partial = 0f64;
        for i in blk * 128..((blk + 1) * 128).min(k) {
            partial += table[a.codes[row * k + i] as usize] * table[b.codes[col * k + i] as usize];
        }
        let sa = a.scales[cfg.a_scale_layout.index(row as u64, blk as u64, m as u64, kb as u64) as usize] as f64;
        let sb = b.scales[(col / 128) * kb + blk] as f64;
        total += sa * sb * partial;
    }
    total
}

/// The contract's tolerance: the precision mode's for f32 C; bf16 C adds
/// its own rounding (2^-9 relative), so 1e-2.
fn tolerance(cfg: &GemmConfig) -> f64 {
    match cfg.output {
        OutputType::F32 => cfg.precision.tolerance(),
        OutputType::Bf16 => 1e-2,
    }
}

/// Checks one GPU result; `full` compares every element with the CPU
/// reference, otherwise `samples` random elements with the f64 formula.
#[allow(clippy::too_many_arguments)]
fn check(
    label: &str,
    c: &[f32],
    a: &Operand,
    b: &Operand,
    m: usize,
    n: usize,
    k: usize,
    cfg: &GemmConfig,
    samples: Option<usize>,
    rng: &mut Rng,
) {
    assert_eq!(c.len(), m * n);
    if let Some(i) = c.iter().position(|v| !v.is_finite()) {
        panic!("{label}: C[{}, {}] = {} (unwritten or wrong)", i / n.max(1), i % n.max(1), c[i]);
    }
    let (mut max_err, mut max_ref) = (0f64, 0f64);
    match samples {
        None => {
            let shape = GemmShape::new(m, n, k).unwrap();
            let mut r = vec![0f32; m * n];
            let f32_cfg = GemmConfig { output: OutputType::F32, ..*cfg };
            cpu::mm_fp8_blockscale(
                &a.codes,
                &a.scales,
                &b.codes,
                &b.scales,
                shape,
                &f32_cfg,
                cpu::Accumulation::F64,
                GemmOutput::F32(&mut r),
            )
            .unwrap();
            for (x, y) in c.iter().zip(&r) {
                max_err = max_err.max((*x as f64 - *y as f64).abs());
                max_ref = max_ref.max((*y as f64).abs());
            }
        }
        Some(count) => {
            let mut table = [0f64; 256];
            for (code, t) in table.iter_mut().enumerate() {
                *t = cfg.format.decode(code as u8) as f64;
            }
            for s in 0..count {
                // Always include the corners, where tails live.
                let (row, col) = match s {
                    0 => (0, 0),
                    1 => (m - 1, n - 1),
                    2 => (m - 1, 0),
                    3 => (0, n - 1),
                    _ => (rng.below(m), rng.below(n)),
                };
                let r = reference_element(a, b, m, k, cfg, row, col, &table);
                max_err = max_err.max((c[row * n + col] as f64 - r).abs());
                max_ref = max_ref.max(r.abs());
            }
        }
    }
    let rel = if max_ref > 0.0 { max_err / max_ref } else { max_err };
    if std::env::var_os("QUANT_GEMM_ERRORS").is_some() {
        eprintln!("error {:?} {} {rel:e} {label}", cfg.output, cfg.precision.name());
    }
    assert!(
        rel < tolerance(cfg),
        "{label}: max|C - C_ref| / max|C_ref| = {rel:e} (max err {max_err:e}, max ref {max_ref:e})"
    );
}

/// A precision mode and (optionally) a forced tile of the `wgmma` kernel.
type Mode = (GemmPrecision, Option<GemmTile>);

/// The default configuration only.
const DEFAULT: &[Mode] = &[(GemmPrecision::Fast, None)];

/// One problem in all the configurations asked for, A quantized per layout.
#[allow(clippy::too_many_arguments)]
fn run_case(
    dev: &Device,
    m: usize,
    n: usize,
    k: usize,
    format: Fp8Format,
    layouts: &[ScaleLayout],
    outputs: &[OutputType],
    b: Option<(&Operand, &Tensor<u8>, &Tensor<f32>)>,
    rng: &mut Rng,
) {
    run_modes(dev, m, n, k, format, layouts, outputs, DEFAULT, b, rng)
}

/// [`run_case`] in each of `modes`.
#[allow(clippy::too_many_arguments)]
fn run_modes(
    dev: &Device,
    m: usize,
    n: usize,
    k: usize,
    format: Fp8Format,
    layouts: &[ScaleLayout],
    outputs: &[OutputType],
    modes: &[Mode],
    b: Option<(&Operand, &Tensor<u8>, &Tensor<f32>)>,
    rng: &mut Rng,
) {
    let x = random_bf16(m, k, rng.next_u64());
    let owned_b;
    let (b_host, b_dev, sb_dev) = match b {
        Some(t) => t,
        None => {
            let w = random_bf16(n, k, rng.next_u64());
            let q = quant_b(&w, n, k, format);
            let (bd, sbd) = q.upload(dev, n, k);
            owned_b = (q, bd, sbd);
            (&owned_b.0, &owned_b.1, &owned_b.2)
        }
    };
    let full = (m * n * k) as u64 <= 40_000_000;
    for &layout in layouts {
        let a = quant_a(&x, m, k, format, layout);
        let (a_dev, sa_dev) = a.upload(dev, m, k);
        let ops = OnDevice {
            a: a_dev,
            sa: sa_dev,
            b: Tensor::from_cuda(b_dev.as_cuda().unwrap().clone(), b_dev.shape()).unwrap(),
            sb: Tensor::from_cuda(sb_dev.as_cuda().unwrap().clone(), sb_dev.shape()).unwrap(),
        };
        for &output in outputs {
            for &(precision, tile) in modes {
                let cfg = GemmConfig { format, a_scale_layout: layout, output, precision, tile };
                let label = format!(
                    "M={m} N={n} K={k} {} {} {:?} {} {}",
                    format.name(),
                    layout.name(),
                    output,
                    precision.name(),
                    tile.map_or("planned", |t| t.name())
                );
                let c = run_gpu(dev, &ops, m, n, &cfg);
                check(&label, &c, &a, b_host, m, n, k, &cfg, if full { None } else { Some(512) }, rng);
            }
        }
    }
}

const OUTPUTS: [OutputType; 2] = [OutputType::Bf16, OutputType::F32];

/// The odd shapes of shapes.md (K not a multiple of 16, N, M tails, M at the
/// decode/tiled boundary), every format, layout and output.
#[test]
#[ignore = "needs a CUDA GPU"]
fn small_odd_shapes() {
    let dev = gpu();
    let mut rng = Rng::new(seed());
    let ms = [1, 3, 16, 17, 37, 130];
    let ns = [1, 130, 576];
    let ks = [1, 100, 127, 129, 300];
    let mut i = 0;
    for &m in &ms {
        for &n in &ns {
            for &k in &ks {
                let format = Fp8Format::ALL[i % 2];
                i += 1;
                run_case(&dev, m, n, k, format, &ScaleLayout::ALL, &OUTPUTS, None, &mut rng);
            }
        }
    }
}

/// Random shapes with tails on every side.
#[test]
#[ignore = "needs a CUDA GPU"]
fn small_random_tails() {
    let dev = gpu();
    let mut rng = Rng::new(seed());
    for _ in 0..40 {
        let m = 1 + rng.below(300);
        let n = 1 + rng.below(700);
        let k = 1 + rng.below(1200);
        let format = Fp8Format::ALL[rng.below(2)];
        let layout = ScaleLayout::ALL[rng.below(3)];
        run_case(&dev, m, n, k, format, &[layout], &OUTPUTS, None, &mut rng);
    }
    // K = 7000 (a tail of 88) and aligned K with M at the path boundary.
    for (m, n, k) in [(16, 2112, 7000), (17, 576, 7000), (200, 300, 7000), (16, 512, 7168), (300, 257, 2048)] {
        for format in Fp8Format::ALL {
            run_case(&dev, m, n, k, format, &ScaleLayout::ALL, &OUTPUTS, None, &mut rng);
        }
    }
}

/// Every (N, K) of shapes.md at M in {1, 37, 256} (`Fast`), and at M = 1 in
/// `Precise`.
#[test]
#[ignore = "needs a CUDA GPU"]
fn model_shapes() {
    let nk = quant_host::bench::shapes::WEIGHTS;
    let dev = gpu();
    let mut rng = Rng::new(seed());
    for &(n, k) in nk {
        for format in Fp8Format::ALL {
            let w = random_bf16(n, k, rng.next_u64());
            let q = quant_b(&w, n, k, format);
            drop(w);
            let (bd, sbd) = q.upload(&dev, n, k);
            for m in [1, 37, 256] {
                run_case(&dev, m, n, k, format, &ScaleLayout::ALL, &OUTPUTS, Some((&q, &bd, &sbd)), &mut rng);
            }
            // `Precise` at M = 1 too: like `Fast`, the streaming kernel
            // where the planner gives it the problem (N wide enough for
            // 32-row slabs), the decode kernel elsewhere.
            let precise: &[Mode] = &[(GemmPrecision::Precise, None)];
            let layout = &[ScaleLayout::ColMajorTmaAligned];
            run_modes(&dev, 1, n, k, format, layout, &[OutputType::F32], precise, Some((&q, &bd, &sbd)), &mut rng);
        }
    }
}

/// The shapes that take the Hopper `wgmma` + TMA kernel (E4M3FN, K a
/// multiple of 16; M > 16 when planned, every M with a forced tile): tails
/// of M, N and K around the 128 tiles (TMA zero-fill), K below one k-block,
/// many k-blocks, decode-sized M (split-K over a mostly zero-filled A box),
/// every A-scale layout and both outputs. On other GPUs the same shapes
/// exercise the `mma.sync` kernel.
#[test]
#[ignore = "needs a CUDA GPU"]
fn wgmma_shapes() {
    let dev = gpu();
    if let Device::Cuda(g) = &dev {
        eprintln!("PTX module: {:?} (wgmma: {})", g.ptx_arch(), g.ptx_arch().has_wgmma());
    }
    let mut rng = Rng::new(seed());
    let f = Fp8Format::E4M3Fn;
    // Both precision modes with the planned tile, then every Fast tile
    // forced (the planner picks among them per problem, so each must be
    // right on every shape), each against its mode's tolerance.
    let mut modes: Vec<Mode> = vec![(GemmPrecision::Fast, None), (GemmPrecision::Precise, None)];
    modes.extend(GemmTile::ALL.iter().map(|&t| (GemmPrecision::Fast, Some(t))));
    for &(m, n, k) in &[
        (17, 1, 16),
        (17, 128, 128),
        (64, 129, 144),
        (128, 128, 256),
        (129, 127, 112),
        (255, 640, 1040),
        (300, 257, 2048),
        (1000, 384, 640),
        (37, 1000, 7168),
        // Split-K (fewer tiles than SMs) with M * N not a multiple of 4
        // and a K tail.
        (45, 301, 1040),
        (37, 257, 1024),
        // More tiles than multiprocessors: CTAs take several tiles, odd and
        // even k-block counts; N tails inside a 160/192-column tile whose
        // columns cross a 128-row scale block of B.
        (2048, 1280, 384),
        (1100, 2000, 656),
        (4100, 300, 128),
        (193, 129, 256),
        (300, 1000, 512),
        (130, 4000, 384),
        // 2-CTA clusters sharing A (an even number of tile columns and
        // enough pairs to fill the GPU: 128 x 128 planned or forced here,
        // 256 x 128 too in the first) with M, N and K tails.
        (2100, 4000, 400),
        (1500, 2560, 272),
        // Decode sizes: the forced tiles take the `wgmma` kernel with
        // split-K; planned, N = 4096 takes the streaming kernel (both
        // modes), the narrower ones split-K `wgmma` (`Fast`) and the
        // `mma.sync` decode kernel (`Precise`); `stream_decode_shapes`
        // covers the streaming kernel's layouts.
        (1, 4096, 1024),
        (3, 129, 144),
        (8, 300, 2048),
        (16, 1000, 7168),
    ] {
        // Every layout in the default mode; the other modes rotate through them.
        run_modes(&dev, m, n, k, f, &ScaleLayout::ALL, &OUTPUTS, &modes[..1], None, &mut rng);
        for (i, mode) in modes[1..].iter().enumerate() {
            let layout = ScaleLayout::ALL[(i + m) % 3];
            run_modes(&dev, m, n, k, f, &[layout], &OUTPUTS, std::slice::from_ref(mode), None, &mut rng);
        }
    }
    // Prefill-sized problems, sampled.
    run_modes(&dev, 2048, 2112, 7168, f, &[ScaleLayout::ColMajorTmaAligned], &OUTPUTS, &modes[..2], None, &mut rng);
    run_modes(&dev, 4096, 7168, 2048, f, &[ScaleLayout::RowMajor], &[OutputType::Bf16], &modes, None, &mut rng);
}

/// The streaming kernels (M <= 32 on Hopper, both precision modes), both
/// widths (16 and 32 rows of A): every piece count it plans (slabs of 8
/// to 64 rows in one 64-row `wgmma` piece, whose rows past the slab are
/// computed and never stored, up to 256-row slabs of 4 pieces at 16 rows
/// and 128-row slabs of 2 at 32), slabs whose rows cross B's 128-row scale
/// blocks (N = 7168: 56-row slabs), CTAs that stream several slabs (more
/// slabs than SMs), M from 1 to 32 (each width with rows past M), N and K
/// tails (K not a multiple of 128, fewer k-blocks than the two phases
/// sharing them), every scale layout and output. The planner gives it only
/// the problems where it measured faster, so the device here is set to take
/// it at every M <= 32 (`QUANT_GEMM_STREAM=always`).
#[test]
#[ignore = "needs a CUDA GPU"]
fn stream_decode_shapes() {
    let dev = gpu_with_env("QUANT_GEMM_STREAM", "always");
    let mut rng = Rng::new(seed());
    let f = Fp8Format::E4M3Fn;
    let modes: [Mode; 2] = [(GemmPrecision::Fast, None), (GemmPrecision::Precise, None)];
    for &(m, n, k) in &[
        (1, 1, 16),
        (1, 7, 128),
        (2, 100, 144),
        (8, 513, 1040),
        (9, 2112, 256),
        (16, 3000, 272),
        (15, 4096, 1024),
        (1, 7168, 2048),
        (4, 24576, 384),
        (5, 34000, 256),
        (16, 40001, 128),
        (3, 65544, 144),
        (17, 100, 144),
        (20, 2112, 256),
        (32, 3000, 272),
        (31, 24576, 384),
        (25, 513, 1040),
        (32, 4096, 1024),
        (24, 7168, 384),
        (32, 65544, 144),
    ] {
        run_modes(&dev, m, n, k, f, &ScaleLayout::ALL, &OUTPUTS, &modes[..1], None, &mut rng);
        let layout = ScaleLayout::ALL[m % 3];
        run_modes(&dev, m, n, k, f, &[layout], &OUTPUTS, &modes[1..], None, &mut rng);
    }
}

/// The streaming kernels (16 and 32 rows of A; programmatic dependent
/// launches) queued right after
/// the GPU quantizer that writes its A, with no copy between them, round
/// after round into one A buffer: each GEMM must read the A of its own
/// round (it waits on the grid dependency before any read), not the
/// previous round's, and its C must survive the launches after it.
#[test]
#[ignore = "needs a CUDA GPU"]
fn stream_reads_the_a_the_kernel_before_wrote() {
    let dev = gpu_with_env("QUANT_GEMM_STREAM", "always");
    let mut rng = Rng::new(seed());
    for precision in GemmPrecision::ALL {
        quantize_then_gemm_rounds(&dev, (4, 4096, 1024), precision, None, None, &mut rng);
        quantize_then_gemm_rounds(&dev, (32, 4096, 1024), precision, None, Some(256), &mut rng);
    }
}

/// The `wgmma` GEMMs launched right after the GPU quantizer that writes
/// their A, with no copy between them, round after round into one A
/// buffer, on every tile family: planned tiles (split-K at 64 x 512 x 4096,
/// 200 x 4000, `Precise`; 2-CTA clusters at 2100 x 4000) and every forced
/// tile at M = 256. Up to M = 256 they are programmatic dependent launches
/// (the default policy), and the quantizer lets its dependents launch as
/// soon as all its CTAs run, so each GEMM's CTAs start while the quantizer
/// may still write: each must read its own round's A (it waits on the grid
/// dependency before any read), and its C must survive the launches after
/// it. C is checked on 256 sampled elements (corners included), against the
/// CPU quantizer's A.
#[test]
#[ignore = "needs a CUDA GPU"]
fn wgmma_reads_the_a_the_quantizer_before_wrote() {
    let dev = gpu();
    let mut rng = Rng::new(seed());
    let planned = [
        (64, 512, 4096, GemmPrecision::Fast, None),
        (200, 4000, 1024, GemmPrecision::Fast, None),
        (256, 4000, 1024, GemmPrecision::Precise, None),
        (2100, 4000, 1024, GemmPrecision::Fast, None),
    ];
    let forced = GemmTile::ALL.iter().map(|&t| (256, 1288, 640, GemmPrecision::Fast, Some(t)));
    for (m, n, k, precision, tile) in planned.into_iter().chain(forced) {
        quantize_then_gemm_rounds(&dev, (m, n, k), precision, tile, Some(256), &mut rng);
    }
}

/// Six rounds of the GPU token-group quantizer writing one A buffer (and
/// its column-major TMA-aligned scales), each followed at once by the GEMM
/// reading it into a C of its own, with nothing but kernels queued between
/// them; then every C against the CPU quantizer's A of its round (every
/// element, or `samples` of them).
fn quantize_then_gemm_rounds(
    dev: &Device,
    (m, n, k): (usize, usize, usize),
    precision: GemmPrecision,
    tile: Option<GemmTile>,
    samples: Option<usize>,
    rng: &mut Rng,
) {
    let f = Fp8Format::E4M3Fn;
    let layout = ScaleLayout::ColMajorTmaAligned;
    let qcfg = TokenGroupConfig { format: f, layout, ..Default::default() };
    let b = quant_b(&random_bf16(n, k, rng.next_u64()), n, k, f);
    let (b_dev, sb_dev) = b.upload(dev, n, k);
    let xs: Vec<Vec<bf16>> = (0..6).map(|_| random_bf16(m, k, rng.next_u64())).collect();
    let shape_a = MatrixShape::new(m, k).unwrap();
    let xs_dev: Vec<_> = xs.iter().map(|x| dev.upload(x, shape_a).unwrap()).collect();
    let scale_len = layout.len(m as u64, k.div_ceil(128) as u64) as usize;
    let mut a_dev = dev.zeros::<u8>(shape_a).unwrap();
    let mut sa_dev = dev.zeros::<f32>(MatrixShape::new(1, scale_len).unwrap()).unwrap();
    let cfg = GemmConfig { format: f, a_scale_layout: layout, output: OutputType::F32, precision, tile };
    let shape_c = MatrixShape::new(m, n).unwrap();
    let mut cs: Vec<GemmTensor> =
        xs.iter().map(|_| GemmTensor::F32(dev.upload(&vec![f32::NAN; m * n], shape_c).unwrap())).collect();
    // Only kernels from here to the reads: quantize, GEMM, quantize, ...
    for (x, c) in xs_dev.iter().zip(cs.iter_mut()) {
        dev.per_token_group_quant_fp8_into(x, &qcfg, &mut a_dev, &mut sa_dev).unwrap();
        dev.mm_fp8_blockscale_into(&a_dev, &sa_dev, &b_dev, &sb_dev, &cfg, c).unwrap();
    }
    for (round, (x, c)) in xs.iter().zip(&cs).enumerate() {
        let a = quant_a(x, m, k, f, layout);
        let c = c.to_f32_vec().unwrap();
        let label = format!("round {round} M={m} N={n} K={k} {} {tile:?}", precision.name());
        check(&label, &c, &a, &b, m, n, k, &cfg, samples, rng);
    }
}

/// The 2-CTA cluster kernels (A multicast), where the planner or a forced
/// 256 x 128 / 128 x 128 / 128 x 192 tile takes them, against the single-CTA kernels on
/// the same operands (a second device with `QUANT_GEMM_NO_CLUSTERS` set),
/// bit for bit: the same sums in the same order, with M, N and K tails.
#[test]
#[ignore = "needs a CUDA GPU"]
fn clusters_match_single_cta_bit_for_bit() {
    let mut rng = Rng::new(seed());
    let f = Fp8Format::E4M3Fn;
    let with = gpu();
    for &(m, n, k, tile) in &[
        (2100, 4000, 400, None),
        (1500, 2560, 272, Some(GemmTile::M128N128)),
        (4096, 4096, 1024, Some(GemmTile::M256N128)),
        // 128 x 192: 17 x 8 tiles, 68 pairs; 192-wide fragments cross B's
        // 128-row scale blocks.
        (2100, 1500, 400, Some(GemmTile::M128N192)),
    ] {
        let a = quant_a(&random_bf16(m, k, rng.next_u64()), m, k, f, ScaleLayout::RowMajor);
        let b = quant_b(&random_bf16(n, k, rng.next_u64()), n, k, f);
        for output in OUTPUTS {
            let cfg = GemmConfig {
                format: f,
                a_scale_layout: ScaleLayout::RowMajor,
                output,
                precision: GemmPrecision::Fast,
                tile,
            };
            // `with` loads its kernels (clusters included) at its first GEMM.
            let clustered = run_gpu(&with, &upload(&with, &a, &b, m, n, k), m, n, &cfg);
            let without = gpu_with_env("QUANT_GEMM_NO_CLUSTERS", "1");
            let single = run_gpu(&without, &upload(&without, &a, &b, m, n, k), m, n, &cfg);
            let bits = |c: &[f32]| c.iter().map(|v| v.to_bits()).collect::<Vec<u32>>();
            let differ = bits(&clustered).iter().zip(&bits(&single)).filter(|(x, y)| x != y).count();
            assert_eq!(differ, 0, "M={m} N={n} K={k} {output:?} {tile:?}: {differ} elements differ");
            let label = format!("M={m} N={n} K={k} {output:?} clusters");
            check(&label, &clustered, &a, &b, m, n, k, &cfg, Some(256), &mut rng);
        }
    }
}

/// Problems run as a head and a tail along M (`QUANT_GEMM_TAIL=always`: a
/// tail wherever the planner can make one) against the reference in every
/// layout, output and mode, and against the same problem in one launch
/// (`off`): where the tail is not split (the plans are pinned by
/// `gemm_tail`'s unit tests) C must be the same bit for bit, since every
/// `wgmma` tile sums an element's k-blocks in the same order. The tails
/// start at row 1792, 1536, 512 and 768 (A, A's scales and C as views
/// there), end on and off a tile boundary (9 rows of a 128-row tile: the
/// bulk scale copy is off there, as it would read past the scales), and
/// split K (777 x 2112 `Precise`: 2 splits; 2048 x 2112 x 7168: the planned
/// 128 x 192 tail in 3). Under memcheck this also shows that no part reads
/// or writes outside its rows.
#[test]
#[ignore = "needs a CUDA GPU"]
fn tails_match_one_launch() {
    let mut rng = Rng::new(seed());
    let f = Fp8Format::E4M3Fn;
    let tails = gpu_with_env("QUANT_GEMM_TAIL", "always");
    let one = gpu_with_env("QUANT_GEMM_TAIL", "off");
    use GemmPrecision::{Fast, Precise};
    for &(m, n, k, precision, unsplit) in &[
        (2048, 7168, 1024, Fast, true),    // 256 x 128 x2 head, 64 x 256 tail from row 1792
        (2048, 7168, 1024, Precise, true), // 128 x 128 head and tail
        (2100, 2112, 1024, Fast, true),    // 128 x 192 head, 64 x 256 tail from row 1536
        (1000, 4000, 512, Fast, true),     // 64 x 256 head and tail from row 512
        (777, 2112, 1024, Precise, false), // 9-row tail from row 768, split 2
        (2048, 2112, 7168, Fast, false),   // 128 x 192 head, tail split 3
    ] {
        let x = random_bf16(m, k, rng.next_u64());
        let b = quant_b(&random_bf16(n, k, rng.next_u64()), n, k, f);
        for layout in [ScaleLayout::RowMajor, ScaleLayout::ColMajor, ScaleLayout::ColMajorTmaAligned] {
            let a = quant_a(&x, m, k, f, layout);
            for output in OUTPUTS {
                let cfg = GemmConfig { format: f, a_scale_layout: layout, output, precision, tile: None };
                let split = run_gpu(&tails, &upload(&tails, &a, &b, m, n, k), m, n, &cfg);
                let label =
                    format!("M={m} N={n} K={k} {} {output:?} {} head and tail", layout.name(), precision.name());
                check(&label, &split, &a, &b, m, n, k, &cfg, Some(512), &mut rng);
                if unsplit {
                    let whole = run_gpu(&one, &upload(&one, &a, &b, m, n, k), m, n, &cfg);
                    let differ = split.iter().zip(&whole).filter(|(x, y)| x.to_bits() != y.to_bits()).count();
                    assert_eq!(differ, 0, "{label}: {differ} elements differ from one launch");
                }
            }
        }
    }
}

/// A bf16 C is the f32 C of the same launch rounded to nearest even, bit
/// for bit, on every tile: the 256 x 128 tile's TMA-store epilogue (N a
/// multiple of 8, no split; M tails end inside its 64-row boxes, N tails
/// inside their 32 columns), the 16-byte interior stores, the predicated
/// edge stores (N not a multiple of 8) and the split-K reduction each round
/// once, from the same f32 sums. Under memcheck this also shows the TMA
/// stores write nothing outside C.
#[test]
#[ignore = "needs a CUDA GPU"]
fn bf16_c_is_f32_c_rounded() {
    let dev = gpu();
    let mut rng = Rng::new(seed());
    let f = Fp8Format::E4M3Fn;
    let tiles = std::iter::once(None).chain(GemmTile::ALL.iter().map(|&t| Some(t)));
    for tile in tiles {
        for &(m, n, k) in &[(2100, 4000, 400), (1000, 1288, 272), (4100, 296, 512), (300, 1000, 640), (257, 1001, 256)]
        {
            let a = quant_a(&random_bf16(m, k, rng.next_u64()), m, k, f, ScaleLayout::ColMajorTmaAligned);
            let b = quant_b(&random_bf16(n, k, rng.next_u64()), n, k, f);
            let ops = upload(&dev, &a, &b, m, n, k);
            let cfg = |output| GemmConfig {
                format: f,
                a_scale_layout: ScaleLayout::ColMajorTmaAligned,
                output,
                precision: GemmPrecision::Fast,
                tile,
            };
            let wide = run_gpu(&dev, &ops, m, n, &cfg(OutputType::F32));
            let narrow = run_gpu(&dev, &ops, m, n, &cfg(OutputType::Bf16));
            let differ: Vec<usize> = (0..m * n)
                .filter(|&i| bf16::from_f32(wide[i]).to_bits() != bf16::from_f32(narrow[i]).to_bits())
                .collect();
            if let Some(&i) = differ.first() {
                panic!(
                    "M={m} N={n} K={k} {tile:?}: {} of {} bf16 elements are not the f32 C rounded; first at \
                     ({}, {}): bf16 {} vs f32 {}",
                    differ.len(),
                    m * n,
                    i / n,
                    i % n,
                    narrow[i],
                    wide[i]
                );
            }
        }
    }
}

/// Two `wgmma` GEMMs on different operands queued back to back, read only
/// afterwards: the second call's tensor maps must not change what the first
/// (still queued) launch reads.
#[test]
#[ignore = "needs a CUDA GPU"]
fn wgmma_back_to_back() {
    let dev = gpu();
    let mut rng = Rng::new(seed());
    let f = Fp8Format::E4M3Fn;
    let shapes = [(256, 384, 512), (130, 200, 1024), (512, 128, 256), (400, 1000, 640)];
    for precision in GemmPrecision::ALL {
        let cfg = GemmConfig {
            format: f,
            a_scale_layout: ScaleLayout::RowMajor,
            output: OutputType::F32,
            precision,
            ..GemmConfig::default()
        };
        let mut host = Vec::new();
        let mut outs = Vec::new();
        for &(m, n, k) in &shapes {
            let a = quant_a(&random_bf16(m, k, rng.next_u64()), m, k, f, cfg.a_scale_layout);
            let b = quant_b(&random_bf16(n, k, rng.next_u64()), n, k, f);
            let ops = upload(&dev, &a, &b, m, n, k);
            let shape = MatrixShape::new(m, n).unwrap();
            let mut c = GemmTensor::F32(dev.upload(&vec![f32::NAN; m * n], shape).unwrap());
            dev.mm_fp8_blockscale_into(&ops.a, &ops.sa, &ops.b, &ops.sb, &cfg, &mut c).unwrap();
            host.push((a, b));
            outs.push((c, ops));
        }
        for (((m, n, k), (a, b)), (c, _ops)) in shapes.iter().zip(&host).zip(&outs) {
            let c = c.to_f32_vec().unwrap();
            check(
                &format!("back-to-back M={m} N={n} K={k} {}", precision.name()),
                &c,
                a,
                b,
                *m,
                *n,
                *k,
                &cfg,
                None,
                &mut rng,
            );
        }
    }
}

/// 300 distinct A operands, every launch queued before any result is read:
/// each launch carries its own tensor maps (`quant_kernels::tensor_map`),
/// so no later call can change what a queued one reads. (Until session 17
/// the maps lived in a 256-slot device table that wrapped here.)
#[test]
#[ignore = "needs a CUDA GPU"]
fn many_distinct_operands_queued_at_once() {
    let dev = gpu();
    let mut rng = Rng::new(seed());
    let f = Fp8Format::E4M3Fn;
    let cfg = GemmConfig {
        format: f,
        a_scale_layout: ScaleLayout::RowMajor,
        output: OutputType::F32,
        ..GemmConfig::default()
    };
    let (m, n, k) = (20, 136, 144);
    let b = quant_b(&random_bf16(n, k, rng.next_u64()), n, k, f);
    let mut pending = Vec::new();
    for _ in 0..300 {
        let a = quant_a(&random_bf16(m, k, rng.next_u64()), m, k, f, cfg.a_scale_layout);
        let ops = upload(&dev, &a, &b, m, n, k);
        let mut c = GemmTensor::F32(dev.upload(&vec![f32::NAN; m * n], MatrixShape::new(m, n).unwrap()).unwrap());
        dev.mm_fp8_blockscale_into(&ops.a, &ops.sa, &ops.b, &ops.sb, &cfg, &mut c).unwrap();
        pending.push((a, c, ops));
    }
    for (i, (a, c, _ops)) in pending.iter().enumerate() {
        check(&format!("operand {i}"), &c.to_f32_vec().unwrap(), a, &b, m, n, k, &cfg, None, &mut rng);
    }
}

/// Operands of two tile shapes alternating, 320 distinct A and C buffers,
/// every launch queued before any result is read, on grids that cover the
/// SMs (A boxes of 256 rows and a bf16 C map for the TMA-store epilogue
/// against boxes of 64 rows). Session 16's long benchmark run died with an
/// illegal instruction once the former 256-slot device table of maps had
/// wrapped and rewrote slots in place (bench/NOTES-gemm.md); maps passed
/// by value leave nothing to rewrite.
#[test]
#[ignore = "needs a CUDA GPU"]
fn distinct_operands_of_two_tile_shapes_queued_at_once() {
    let dev = gpu();
    let mut rng = Rng::new(seed());
    let f = Fp8Format::E4M3Fn;
    let layout = ScaleLayout::ColMajorTmaAligned;
    let cfg = GemmConfig { format: f, a_scale_layout: layout, output: OutputType::Bf16, ..GemmConfig::default() };
    let k = 256;
    // The planner's 256 x 128 tile (TMA-store epilogue) and its 64 x 128 tile.
    let shapes = [(2048, 2048), (64, 2048)];
    let bs: Vec<Operand> = shapes.iter().map(|&(_, n)| quant_b(&random_bf16(n, k, rng.next_u64()), n, k, f)).collect();
    let bs_dev: Vec<_> = shapes.iter().zip(&bs).map(|(&(_, n), b)| b.upload(&dev, n, k)).collect();
    let mut pending = Vec::new();
    for i in 0..320 {
        let s = i % 2;
        let (m, n) = shapes[s];
        let a = quant_a(&random_bf16(m, k, rng.next_u64()), m, k, f, layout);
        let (a_dev, sa_dev) = a.upload(&dev, m, k);
        let mut c = GemmTensor::Bf16(dev.upload(&vec![bf16::NAN; m * n], MatrixShape::new(m, n).unwrap()).unwrap());
        dev.mm_fp8_blockscale_into(&a_dev, &sa_dev, &bs_dev[s].0, &bs_dev[s].1, &cfg, &mut c).unwrap();
        pending.push((s, a, c, a_dev, sa_dev));
    }
    for (i, (s, a, c, _, _)) in pending.iter().enumerate() {
        let (m, n) = shapes[*s];
        let c = c.to_f32_vec().unwrap();
        check(&format!("call {i} ({m}x{n}x{k})"), &c, a, &bs[*s], m, n, k, &cfg, Some(64), &mut rng);
    }
}

/// Bad arguments come back as errors, and M = 0 / N = 0 do nothing.
#[test]
#[ignore = "needs a CUDA GPU"]
fn small_bad_input() {
    let dev = gpu();
    let (m, n, k) = (4, 8, 256);
    let a = dev.upload(&vec![0x38u8; m * k], MatrixShape::new(m, k).unwrap()).unwrap();
    let sa = dev.upload(&vec![1f32; m * 2], MatrixShape::new(1, m * 2).unwrap()).unwrap();
    let b = dev.upload(&vec![0x38u8; n * k], MatrixShape::new(n, k).unwrap()).unwrap();
    let sb = dev.upload(&[1f32; 2], MatrixShape::new(1, 2).unwrap()).unwrap();
    let short = dev.upload(&[1f32; 1], MatrixShape::new(1, 1).unwrap()).unwrap();
    let cfg = GemmConfig::default();
    // Precise has the 128 x 128 tile only.
    let bad = GemmConfig { precision: GemmPrecision::Precise, tile: Some(GemmTile::M128N192), ..cfg };
    assert!(matches!(
        dev.mm_fp8_blockscale(&a, &sa, &b, &sb, &bad),
        Err(quant_host::QuantError::UnsupportedGemmTile { .. })
    ));
    assert!(dev.mm_fp8_blockscale(&a, &short, &b, &sb, &cfg).is_err());
    assert!(dev.mm_fp8_blockscale(&a, &sa, &b, &short, &cfg).is_err());
    let wrong_k = dev.upload(&vec![0x38u8; n * 128], MatrixShape::new(n, 128).unwrap()).unwrap();
    assert!(dev.mm_fp8_blockscale(&a, &sa, &wrong_k, &sb, &cfg).is_err());
    let host_a = Device::Cpu.upload(&vec![0x38u8; m * k], MatrixShape::new(m, k).unwrap()).unwrap();
    assert!(dev.mm_fp8_blockscale(&host_a, &sa, &b, &sb, &cfg).is_err());
    let mut wrong_type = GemmTensor::F32(dev.zeros(MatrixShape::new(m, n).unwrap()).unwrap());
    assert!(dev.mm_fp8_blockscale_into(&a, &sa, &b, &sb, &cfg, &mut wrong_type).is_err());
    // 1.0 * 1.0 * 256 per element, exactly.
    let c = dev.mm_fp8_blockscale(&a, &sa, &b, &sb, &cfg).unwrap().to_f32_vec().unwrap();
    assert!(c.iter().all(|&v| v == 256.0), "{c:?}");
    let empty = dev.upload::<u8>(&[], MatrixShape::new(0, k).unwrap()).unwrap();
    let c = dev
        .mm_fp8_blockscale(&empty, &dev.upload::<f32>(&[], MatrixShape::new(0, 0).unwrap()).unwrap(), &b, &sb, &cfg)
        .unwrap();
    assert_eq!(c.to_f32_vec().unwrap().len(), 0);
}

/// The CPU arm of `Device::mm_fp8_blockscale` (runs in CI).
#[test]
fn cpu_device_matches_reference() {
    let mut rng = Rng::new(seed());
    let (m, n, k) = (5, 130, 300);
    for format in Fp8Format::ALL {
        let a = quant_a(&random_bf16(m, k, rng.next_u64()), m, k, format, ScaleLayout::ColMajorTmaAligned);
        let b = quant_b(&random_bf16(n, k, rng.next_u64()), n, k, format);
        let cfg = GemmConfig {
            format,
            a_scale_layout: ScaleLayout::ColMajorTmaAligned,
            output: OutputType::F32,
            ..GemmConfig::default()
        };
        let ops = upload(&Device::Cpu, &a, &b, m, n, k);
        let c = Device::Cpu.mm_fp8_blockscale(&ops.a, &ops.sa, &ops.b, &ops.sb, &cfg).unwrap().to_f32_vec().unwrap();
        check("cpu", &c, &a, &b, m, n, k, &cfg, None, &mut rng);
    }
}
