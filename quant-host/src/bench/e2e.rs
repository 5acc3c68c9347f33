//! The end-to-end section: `per_token_group_quant_fp8` of a bf16 activation
//! A followed by `mm_fp8_blockscale` with pre-quantized weights B, against
//! the same product in cuBLAS bf16 (f32 compute), all in one run.
//!
//! What is timed (per launch in a CUDA graph, median of replays):
//! - `quant`: quantizing A `[M, K]` (bf16 -> e4m3fn, groups of 128, row-major scales);
//! - `gemm`: `mm_fp8_blockscale` to bf16 C;
//! - `total`: both, one after the other in the same graph;
//! - `cublas`: `cublasGemmEx` bf16 x bf16 -> bf16, f32 compute, on the same stream.
//!
//! Weights are the large operand at decode sizes and would sit in the 50 MB
//! L2 across repetitions if one copy were reused, so each side rotates
//! through enough copies of its weights (fp8 B for us, bf16 W for cuBLAS)
//! to exceed 2.5x the L2. Graphs are the cost a serving stack that replays
//! them pays, without host launch overhead on either side; the decode
//! target compares the GEMM time with reading B once at the copy bandwidth
//! measured in the same run.

use super::gemm::tflops;
use super::timing;
use crate::config::{BlockConfig, TokenGroupConfig};
use crate::error::{QuantError, Result};
use crate::gemm::{GemmConfig, GemmShape, OutputType};
use crate::gpu::{self, Gpu, GpuGemmOut};
use crate::shape::MatrixShape;
use cudarc::cublas::{CudaBlas, Gemm, GemmConfig as BlasConfig};
use cudarc::driver::{CudaSlice, CudaStream};
use half::bf16;
use quant_kernels::ScaleLayout;
use std::sync::Arc;

/// The end-to-end set `(M, N, K)`.
pub const E2E_SET: &[(usize, usize, usize)] = &[(1, 512, 7168), (8, 512, 7168), (2048, 512, 7168), (4096, 7168, 2048)];

/// Every DeepSeek-V4 weight `(N, K)` of shapes.md (Flash and Pro), each once.
pub const V4_WEIGHTS: &[(usize, usize)] = &[
    (1024, 4096),
    (512, 4096),
    (32768, 1024),
    (4096, 8192),
    (8192, 1024),
    (2048, 4096),
    (4096, 2048),
    (1536, 7168),
    (512, 7168),
    (65536, 1536),
    (7168, 16384),
    (7168, 2048),
    (8192, 1536),
    (3072, 7168),
    (7168, 3072),
];

/// Token counts of the V4 sweep.
pub const V4_TOKENS: &[usize] = &[1, 8, 64, 512, 2048, 4096];

/// Bytes of weights each side rotates through at least (2.5x a 50 MB L2).
const ROTATE_BYTES: usize = 125 << 20;
/// At most this many weight copies.
const MAX_COPIES: usize = 32;
const WARMUP: usize = 3;
const GRAPH_LAUNCHES: usize = 100;

/// One end-to-end measurement.
#[derive(Clone, Debug, serde::Serialize)]
pub struct E2eRecord {
    /// `e2e-set`, `v4` or `chosen` (`--e2e-shapes`).
    pub set: &'static str,
    /// Tokens.
    pub m: usize,
    /// Weight rows.
    pub n: usize,
    /// Reduction length.
    pub k: usize,
    /// Quantizing A, microseconds.
    pub quant_us: f64,
    /// `mm_fp8_blockscale`, microseconds.
    pub gemm_us: f64,
    /// Quantize + GEMM in one event bracket, microseconds.
    pub total_us: f64,
    /// `2 M N K / total`.
    pub tflops: f64,
    /// cuBLAS bf16, microseconds (None if cuBLAS could not be loaded).
    pub cublas_us: Option<f64>,
    /// `2 M N K / cublas`.
    pub cublas_tflops: Option<f64>,
    /// Reading B (N K bytes) once at the copy bandwidth, microseconds.
    pub b_read_us: f64,
    /// At M <= 16: the benchmark's SM read kernel (`sm_read16`: the SM copy's
    /// loads, no stores) over the same rotated copies of B, per launch in a
    /// graph, microseconds: what any kernel that reads B once costs here,
    /// launch and DRAM latency included.
    pub b_read_kernel_us: Option<f64>,
}

impl E2eRecord {
    /// GEMM throughput, TFLOP/s.
    pub fn gemm_tflops(&self) -> f64 {
        tflops(self.m, self.n, self.k, self.gemm_us)
    }
    /// The GEMM time the decode target judges.
    pub fn decode_gemm_us(&self) -> f64 {
        self.gemm_us
    }
    /// The end-to-end time compared with cuBLAS.
    pub fn e2e_us(&self) -> f64 {
        self.total_us
    }
}

/// cuBLAS, if its library loads on this machine.
fn cublas(stream: &Arc<CudaStream>) -> Option<CudaBlas> {
    // SAFETY: only probes whether the shared library can be loaded.
    if !unsafe { cudarc::cublas::sys::is_culib_present() } {
        eprintln!("bench: libcublas not found; the cuBLAS columns stay empty");
        return None;
    }
    match CudaBlas::new(stream.clone()) {
        Ok(b) => Some(b),
        Err(e) => {
            eprintln!("bench: cuBLAS did not initialise ({e:?}); the cuBLAS columns stay empty");
            None
        }
    }
}

/// Runs the section: `shapes` where given (set `chosen`), otherwise the e2e
/// set, then the V4 weights at every token count. `input` holds random bf16
/// values, at least max(M K, N K) of them.
pub(crate) fn run(
    gpu: &Gpu,
    input: &CudaSlice<bf16>,
    copy_gbps: f64,
    quick: bool,
    shapes: &[(usize, usize, usize)],
) -> Result<Vec<E2eRecord>> {
    let blas = cublas(gpu.stream());
    let mut problems: Vec<(&'static str, usize, usize, usize)> = if shapes.is_empty() {
        E2E_SET.iter().map(|&(m, n, k)| ("e2e-set", m, n, k)).collect()
    } else {
        shapes.iter().map(|&(m, n, k)| ("chosen", m, n, k)).collect()
    };
    let weights: &[(usize, usize)] = match (shapes.is_empty(), quick) {
        (false, _) => &[],
        (true, true) => &[(512, 7168), (7168, 2048)],
        (true, false) => V4_WEIGHTS,
    };
    for &(n, k) in weights {
        for &m in V4_TOKENS {
            problems.push(("v4", m, n, k));
        }
    }
    let mut records = Vec::with_capacity(problems.len());
    for (set, m, n, k) in problems {
        let r = problem(gpu, blas.as_ref(), input, set, m, n, k, copy_gbps)?;
        eprintln!(
            "bench e2e: {m}x{n}x{k}: quant {:.1} + gemm {:.1} = {:.1} us, cuBLAS {}",
            r.quant_us,
            r.gemm_us,
            r.total_us,
            r.cublas_us.map(|c| format!("{c:.1} us")).unwrap_or_else(|| "-".into())
        );
        records.push(r);
    }
    Ok(records)
}

#[allow(clippy::too_many_arguments)]
fn problem(
    gpu: &Gpu,
    blas: Option<&CudaBlas>,
    input: &CudaSlice<bf16>,
    set: &'static str,
    m: usize,
    n: usize,
    k: usize,
    copy_gbps: f64,
) -> Result<E2eRecord> {
    let stream = gpu.stream();
    let kb = k.div_ceil(128);
    let (bs, sb) = weight_copies(gpu, input, m, n, k)?;
    let copies = bs.len();

    // A's scales column-major and TMA-aligned, as serving stacks have the
    // activation quantizer write them for a TMA GEMM (the GEMM's scale warp
    // then reads each k-block's scales of a tile with coalesced loads).
    let qcfg = TokenGroupConfig { layout: ScaleLayout::ColMajorTmaAligned, ..TokenGroupConfig::default() };
    let a_shape = MatrixShape::new(m, k)?;
    let mut a = stream.alloc_zeros::<u8>(m * k)?;
    let mut sa = stream.alloc_zeros::<f32>(qcfg.layout.len(m as u64, kb as u64) as usize)?;
    let mut c = stream.alloc_zeros::<bf16>(m * n)?;
    let gcfg = GemmConfig {
        format: qcfg.format,
        a_scale_layout: qcfg.layout,
        output: OutputType::Bf16,
        ..GemmConfig::default()
    };
    let shape = GemmShape::new(m, n, k)?;

    let mut turn = 0usize;
    let mut next_b = || {
        turn = (turn + 1) % copies;
        turn
    };
    // Every record per launch in a CUDA graph (after a warm-up): what a serving stack that replays graphs pays,
    // without the host's launch overhead on either side.
    for _ in 0..WARMUP + copies {
        let i = next_b();
        gpu::per_token_group_quant(gpu, input, a_shape, &qcfg, &mut a, &mut sa)?;
        gpu::mm_fp8_blockscale(gpu, &a, &sa, &bs[i], &sb, shape, &gcfg, GpuGemmOut::Bf16(&mut c))?;
    }
    let quant_us = timing::graph_us_per_launch(stream, GRAPH_LAUNCHES, 10, || {
        gpu::per_token_group_quant(gpu, input, a_shape, &qcfg, &mut a, &mut sa)
    })?;
    let gemm_us = timing::graph_us_per_launch(stream, GRAPH_LAUNCHES, 10, || {
        let i = next_b();
        gpu::mm_fp8_blockscale(gpu, &a, &sa, &bs[i], &sb, shape, &gcfg, GpuGemmOut::Bf16(&mut c))
    })?;
    let total_us = timing::graph_us_per_launch(stream, GRAPH_LAUNCHES, 10, || {
        let i = next_b();
        gpu::per_token_group_quant(gpu, input, a_shape, &qcfg, &mut a, &mut sa)?;
        gpu::mm_fp8_blockscale(gpu, &a, &sa, &bs[i], &sb, shape, &gcfg, GpuGemmOut::Bf16(&mut c))
    })?;
    let b_read_kernel_us = if m <= 16 {
        let mut sink = stream.alloc_zeros::<u32>(1)?;
        for _ in 0..WARMUP {
            let i = next_b();
            gpu::launch_sm_read(gpu, &bs[i], &mut sink, n * k)?;
        }
        Some(timing::graph_us_per_launch(stream, GRAPH_LAUNCHES, 10, || {
            let i = next_b();
            gpu::launch_sm_read(gpu, &bs[i], &mut sink, n * k)
        })?)
    } else {
        None
    };
    drop(bs);

    let cublas_us = match blas {
        Some(blas) => Some(cublas_bf16(blas, stream, input, m, n, k)? * 1e3),
        None => None,
    };
    Ok(E2eRecord {
        set,
        m,
        n,
        k,
        quant_us,
        gemm_us,
        total_us,
        tflops: tflops(m, n, k, total_us),
        cublas_us,
        cublas_tflops: cublas_us.map(|us| tflops(m, n, k, us)),
        b_read_us: (n * k) as f64 / (copy_gbps * 1e9) * 1e6,
        b_read_kernel_us,
    })
}

/// The weights B `[n, k]` of an `m x n x k` problem: `input`'s first `n k`
/// values quantized in 128 x 128 blocks once (not timed), then copied until
/// the copies exceed [`ROTATE_BYTES`] (at most [`MAX_COPIES`]), so launches
/// that rotate through them read memory, not the L2. Returns the copies and
/// their (shared) scales.
pub(crate) fn weight_copies(
    gpu: &Gpu,
    input: &CudaSlice<bf16>,
    m: usize,
    n: usize,
    k: usize,
) -> Result<(Vec<CudaSlice<u8>>, CudaSlice<f32>)> {
    let stream = gpu.stream();
    if input.len() < m * k || input.len() < n * k {
        return Err(QuantError::ShapeMismatch(format!(
            "bench input holds {} values, {m}x{n}x{k} needs more",
            input.len()
        )));
    }
    let copies = ROTATE_BYTES.div_ceil(n * k).clamp(1, MAX_COPIES);
    let mut b0 = stream.alloc_zeros::<u8>(n * k)?;
    let mut sb = stream.alloc_zeros::<f32>(n.div_ceil(128) * k.div_ceil(128))?;
    gpu::per_block_quant(gpu, input, MatrixShape::new(n, k)?, &BlockConfig::default(), &mut b0, &mut sb)?;
    let mut bs = vec![b0];
    for _ in 1..copies {
        let mut copy = stream.alloc_zeros::<u8>(n * k)?;
        stream.memcpy_dtod(&bs[0], &mut copy)?;
        bs.push(copy);
    }
    Ok((bs, sb))
}

/// Milliseconds per launch in a CUDA graph of `C[M, N] = A[M, K] W[N, K]^T` in cuBLAS bf16
/// (f32 compute), rotating W copies as the fp8 side does. Row-major C is
/// column-major C^T = W A^T: cuBLAS's (m, n, k) = (N, M, K), op(W) = T.
fn cublas_bf16(
    blas: &CudaBlas,
    stream: &Arc<CudaStream>,
    input: &CudaSlice<bf16>,
    m: usize,
    n: usize,
    k: usize,
) -> Result<f64> {
    let dim = |d: usize| i32::try_from(d).map_err(|_| QuantError::TooLarge("cuBLAS dimension"));
    let (mi, ni, ki) = (dim(m)?, dim(n)?, dim(k)?);
    let copies = ROTATE_BYTES.div_ceil(2 * n * k).clamp(1, MAX_COPIES);
    let a = input.slice(..m * k);
    let mut ws = Vec::with_capacity(copies);
    for _ in 0..copies {
        let mut w = stream.alloc_zeros::<bf16>(n * k)?;
        stream.memcpy_dtod(&input.slice(..n * k), &mut w)?;
        ws.push(w);
    }
    let mut c = stream.alloc_zeros::<bf16>(m * n)?;
    let cfg = BlasConfig {
        transa: cudarc::cublas::sys::cublasOperation_t::CUBLAS_OP_T,
        transb: cudarc::cublas::sys::cublasOperation_t::CUBLAS_OP_N,
        m: ni,
        n: mi,
        k: ki,
        alpha: bf16::ONE,
        lda: ki,
        ldb: ki,
        beta: bf16::ZERO,
        ldc: ni,
    };
    let mut turn = 0usize;
    let mut launch = || -> Result<()> {
        turn = (turn + 1) % copies;
        // SAFETY: W copies hold N K values, A's view M K, C M N; the leading
        // dimensions match the row-major layouts described above.
        unsafe { blas.gemm(cfg, &ws[turn], &a, &mut c) }
            .map_err(|e| QuantError::ShapeMismatch(format!("cuBLAS gemm failed: {e:?}")))
    };
    for _ in 0..WARMUP {
        launch()?;
    }
    Ok(timing::graph_us_per_launch(stream, GRAPH_LAUNCHES, 10, launch)? / 1e3)
}

/// Markdown tables of the section and its targets.
pub(crate) fn report(records: &[E2eRecord], copy_gbps: f64) -> String {
    use std::fmt::Write as _;
    let mut md = String::new();
    let _ = writeln!(
        md,
        "\n## End to end: per_token_group_quant_fp8 (bf16 A) + mm_fp8_blockscale vs cuBLAS bf16\n\n\
         Times in us per launch in a CUDA graph (both sides), median of 10 replays. \
         TFLOP/s = 2MNK / time. B read = N K bytes at the copy bandwidth ({copy_gbps:.0} GB/s); \
         at M <= 16, `read kernel` is the benchmark's SM kernel that only reads B (`sm_read16`, the SM copy's \
         16-byte loads), per launch in a graph on the same rotated copies: what reading B once costs any kernel \
         here, launch and DRAM latency included.\n\n\
         | set | M | N | K | quant | gemm | total | TFLOP/s e2e | gemm TFLOP/s | cuBLAS bf16 | cuBLAS TFLOP/s | e2e speed-up | gemm vs cuBLAS | quant share | gemm / B read | read kernel | read kernel / B read | gemm / read kernel |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    let opt = |v: Option<f64>, digits: usize| v.map(|x| format!("{x:.digits$}")).unwrap_or_else(|| "-".into());
    for r in records {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {} | {} | {} | {:.0}% | {} | {} | {} | {} |",
            r.set,
            r.m,
            r.n,
            r.k,
            r.quant_us,
            r.gemm_us,
            r.total_us,
            r.tflops,
            r.gemm_tflops(),
            opt(r.cublas_us, 1),
            opt(r.cublas_tflops, 1),
            r.cublas_us.map(|c| format!("{:.2}x", c / r.e2e_us())).unwrap_or_else(|| "-".into()),
            r.cublas_us.map(|c| format!("{:.2}x", c / r.gemm_us)).unwrap_or_else(|| "-".into()),
            100.0 * r.quant_us / r.total_us,
            if r.m <= 16 { format!("{:.2}", r.decode_gemm_us() / r.b_read_us) } else { "-".into() },
            opt(r.b_read_kernel_us, 1),
            opt(r.b_read_kernel_us.map(|u| u / r.b_read_us), 2),
            opt(r.b_read_kernel_us.map(|u| r.decode_gemm_us() / u), 2),
        );
    }

    let mut t = String::from("\n## GEMM targets\n\n| target | measured | verdict |\n|---|---|---|\n");
    let mut line = |name: &str, measured: String, ok: bool| {
        let _ = writeln!(t, "| {name} | {measured} | {} |", if ok { "PASS" } else { "FAIL" });
    };
    let worst = |pred: &dyn Fn(&E2eRecord) -> bool, key: &dyn Fn(&E2eRecord) -> f64| {
        records.iter().filter(|r| pred(r)).min_by(|a, b| key(a).total_cmp(&key(b)))
    };
    let big = |r: &E2eRecord| r.m >= 2048 && r.n >= 2048 && r.k >= 2048 && r.cublas_us.is_some();
    let e2e_speedup = |r: &E2eRecord| r.cublas_us.unwrap_or(f64::NAN) / r.e2e_us();
    if let Some(r) = worst(&big, &e2e_speedup) {
        let s = e2e_speedup(r);
        line(
            "quantize + GEMM >= 1.4x cuBLAS bf16 (M >= 2048, N, K >= 2048)",
            format!("worst {s:.2}x at {}x{}x{}", r.m, r.n, r.k),
            s >= 1.4,
        );
    }
    let decode = |r: &E2eRecord| r.m <= 16 && r.n * r.k >= 16 << 20;
    let b_ratio = |r: &E2eRecord| -(r.decode_gemm_us() / r.b_read_us);
    if let Some(r) = worst(&decode, &b_ratio) {
        let s = -b_ratio(r);
        let floor = r.b_read_kernel_us.map(|u| format!(" (there the SM read kernel alone: {:.2}x)", u / r.b_read_us));
        line(
            "M <= 16, B >= 16 MB: GEMM (graph) <= 1.3x reading B at copy bandwidth",
            format!("worst {s:.2}x at {}x{}x{}{}", r.m, r.n, r.k, floor.unwrap_or_default()),
            s <= 1.3,
        );
    }
    md.push_str(&t);
    md
}
