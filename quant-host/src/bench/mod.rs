//! The kernel benchmark: every quantizer against the device-to-device copy
//! measured in the same run.
//!
//! Quantization reads each input once and writes one byte per element plus
//! the scales, so the honest ceiling is memory bandwidth: each kernel's
//! bytes over its time, as a fraction of a large `cuMemcpyDtoD`'s (bytes
//! read plus written). Absolute times drift between machines; those
//! fractions, measured in one run, do not.
//!
//! Every kernel is timed per launch inside a CUDA graph of many launches
//! (what a serving stack that captures graphs pays, without the host's
//! launch overhead), with consecutive launches cycling through enough
//! private buffers (512 MiB in all) that each one reads from memory, not from
//! the L2 the previous launch warmed. One launch between two events (launch
//! overhead included) is reported beside it.

mod cublaslt;
pub mod e2e;
pub mod fused;
mod gemm;
pub mod host_cost;
mod report;
pub mod shapes;
mod timing;

pub use e2e::E2eRecord;
pub use gemm::GemmRecord;
pub use report::Record;

use crate::config::{BlockConfig, TokenGroupConfig};
use crate::element::{DType, Element};
use crate::error::{QuantError, Result};
use crate::gpu::{self, driver_available, Gpu};
use crate::plan::{BlockPlan, TokenGroupPlan};
use crate::shape::MatrixShape;
use cudarc::driver::{CudaContext, CudaSlice, CudaStream, CudaView, ValidAsZeroBits};
use half::{bf16, f16};
use quant_kernels::{Fp8Format, ScaleLayout};
use std::path::PathBuf;
use std::sync::Arc;

/// Options of [`run`] (also the flags of `fp8q bench`).
#[derive(Clone, Debug, Default, clap::Args)]
pub struct BenchArgs {
    /// Folder for bench.md, bench.json and bench.svg [default: current directory]
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// A few shapes only, for a quick look
    #[arg(long)]
    pub quick: bool,
    /// Also run the end-to-end section (quantize + GEMM against cuBLAS bf16;
    /// about a minute on an H100)
    #[arg(long)]
    pub e2e: bool,
    /// Skip the quantizer section (with --e2e: the end-to-end section alone)
    #[arg(long)]
    pub skip_quant: bool,
    /// Also run the GEMM section: `mm_fp8_blockscale` alone on the peer set
    /// of shapes, both precision modes, timed in CUDA graphs, with errors
    #[arg(long)]
    pub gemm: bool,
    /// With --gemm: also time every tile of the fast kernel
    #[arg(long)]
    pub gemm_variants: bool,
    /// With --gemm: the layout of A's scales (`row-major`, `col-major`,
    /// `col-major-tma`) [default: col-major-tma, the layout DeepGEMM takes
    /// and serving stacks have the activation quantizer write]
    #[arg(long, value_parser = parse_layout)]
    pub gemm_scale_layout: Option<ScaleLayout>,
    /// Also run the fused section: silu_mul and rms_norm quantization against
    /// the two-step path, and the masked MoE layout against a dense call
    #[arg(long)]
    pub fused: bool,
    /// With --gemm: idle this many milliseconds before each record's timed
    /// graphs (after its warm-up), so that every shape starts from the same
    /// GPU state rather than after whatever ran before it (on an H200 a
    /// small shape read up to 50% slower right after a heavy one); DeepGEMM's
    /// `bench/peers/deepgemm_graph.py` takes the same as `DG_SETTLE_MS`
    #[arg(long, default_value_t = 0)]
    pub gemm_settle_ms: u64,
    /// With --gemm: these shapes (`M,N,K`) instead of the peer set
    #[arg(long, num_args = 1.., value_parser = parse_shape)]
    pub gemm_shapes: Vec<(usize, usize, usize)>,
    /// With --e2e: these problems (`M,N,K`) instead of the e2e set and the
    /// V4 sweep
    #[arg(long, num_args = 1.., value_parser = parse_shape)]
    pub e2e_shapes: Vec<(usize, usize, usize)>,
    /// Quantizer section on these token-group shapes only (`M,K`; both
    /// formats; no weights), for profiling one shape
    #[arg(long, num_args = 1.., value_parser = parse_pair)]
    pub token_shapes: Vec<(usize, usize)>,
    /// With --token-shapes: these scale layouts (`row-major`, `col-major`,
    /// `col-major-tma`) [default: row-major]
    #[arg(long, num_args = 1.., value_parser = parse_layout)]
    pub token_layouts: Vec<ScaleLayout>,
    /// The token-group kernel to time instead of the one each problem
    /// picks, for A/B runs of the tilings: `auto`, `narrow` (2 chunks per
    /// thread), `wide` (4), `row` (the row kernel; the wide one where none
    /// exists)
    #[arg(long, value_parser = parse_token_kernel, default_value = "auto")]
    pub token_kernel: gpu::TokenGroupChunks,
    /// Quantizer section on these weight shapes only (`N,K`; both
    /// formats), alone or with --token-shapes, for profiling one shape
    #[arg(long, num_args = 1.., value_parser = parse_pair)]
    pub weight_shapes: Vec<(usize, usize)>,
    /// The quantizer section's input type, `bf16` or `f16` (both two bytes
    /// an element, so every fraction reads the same) [default: bf16; the
    /// targets are read on bf16 only]. The GEMM, end-to-end and fused
    /// sections keep bf16
    #[arg(long, value_parser = parse_input_dtype)]
    pub input_dtype: Option<DType>,
    /// torchao's figures from the same device call (`quant_peers.json`,
    /// written by `../shared/anchors/quant_peers.py`), for the targets
    /// that compare with them
    #[arg(long)]
    pub peers: Option<PathBuf>,
    /// With --gemm: DeepGEMM's figures from the same device call, timed
    /// with this benchmark's own graph method (`deepgemm_graph.json`,
    /// written by `bench/peers/deepgemm_graph.py`), as columns of the GEMM
    /// table with the ratio of `Fast` to them
    #[arg(long)]
    pub gemm_peers: Option<PathBuf>,
}

const WARMUP: usize = 5;
const REPS: usize = 25;
const GRAPH_LAUNCHES: usize = 40;

/// `M,N,K` as the `--gemm-shapes` flag takes it.
fn parse_shape(s: &str) -> std::result::Result<(usize, usize, usize), String> {
    let v: Vec<usize> = s
        .split(',')
        .map(|x| x.trim().parse::<usize>().map_err(|e| format!("`{s}`: {e}")))
        .collect::<std::result::Result<_, _>>()?;
    match v[..] {
        [m, n, k] if m > 0 && n > 0 && k > 0 => Ok((m, n, k)),
        _ => Err(format!("`{s}`: expected M,N,K, each > 0")),
    }
}

/// `bf16` or `f16`, as the `--input-dtype` flag takes it.
fn parse_input_dtype(s: &str) -> std::result::Result<DType, String> {
    match s {
        "bf16" => Ok(DType::Bf16),
        "f16" => Ok(DType::F16),
        _ => Err(format!("`{s}`: expected bf16 or f16")),
    }
}

/// The layout names the `--gemm-scale-layout` and `--token-layouts` flags take.
fn parse_layout(s: &str) -> std::result::Result<ScaleLayout, String> {
    ScaleLayout::from_name(s).ok_or_else(|| {
        let names: Vec<&str> = ScaleLayout::ALL.iter().map(|l| l.name()).collect();
        format!("`{s}`: expected one of {}", names.join(", "))
    })
}

fn parse_token_kernel(s: &str) -> std::result::Result<gpu::TokenGroupChunks, String> {
    use gpu::TokenGroupChunks::{BySize, Four, Row, Two};
    match s {
        "auto" => Ok(BySize),
        "narrow" => Ok(Two),
        "wide" => Ok(Four),
        "row" => Ok(Row),
        _ => Err(format!("`{s}`: expected auto, narrow, wide or row")),
    }
}

fn parse_pair(s: &str) -> std::result::Result<(usize, usize), String> {
    match s.split_once(',').map(|(m, k)| (m.trim().parse::<usize>(), k.trim().parse::<usize>())) {
        Some((Ok(m), Ok(k))) if m > 0 && k > 0 => Ok((m, k)),
        _ => Err(format!("`{s}`: expected M,K with M, K > 0")),
    }
}

/// Runs the benchmark on GPU 0, prints the summary tables and writes the
/// full report files. Returns every measurement.
pub fn run(args: &BenchArgs) -> Result<(Vec<Record>, Vec<E2eRecord>)> {
    if !driver_available() {
        return Err(QuantError::NoDriver);
    }
    let ctx = CudaContext::new(0)?;
    // One stream, no cross-stream use: event tracking would only add event
    // records, which CUDA graph capture rejects.
    // SAFETY: every buffer below is used on `stream` alone.
    unsafe { ctx.disable_event_tracking() };
    let stream = ctx.new_stream()?;
    let gpu = Gpu::with_stream(stream.clone())?;
    let device = gpu.name()?;
    let copy_gbps = copy_bandwidth(&stream)?;
    let ceilings = Ceilings {
        copy_gbps,
        sm_copy_gbps: sm_copy_bandwidth(&gpu)?,
        launch_floor_us: timing::graph_us_per_launch(&stream, 200, 10, || gpu::launch_empty(&gpu))?,
    };
    eprintln!(
        "bench: {device}, device-to-device copy {copy_gbps:.0} GB/s, SM copy kernel {:.0} GB/s, launch floor {:.2} us",
        ceilings.sm_copy_gbps, ceilings.launch_floor_us
    );

    let chosen = !args.token_shapes.is_empty() || !args.weight_shapes.is_empty();
    let (tokens, ks, weights): (&[usize], &[usize], &[(usize, usize)]) = if chosen {
        (&[], &[], &args.weight_shapes)
    } else if args.quick {
        (&[1, 2048, 16384], &[7000, 7168], &[(576, 7168), (2112, 7168), (7168, 18432)])
    } else {
        (shapes::TOKENS, shapes::ACTIVATION_K, shapes::WEIGHTS)
    };
    let max_elems = tokens.iter().max().copied().unwrap_or(1) * ks.iter().max().copied().unwrap_or(1);
    let max_elems = max_elems.max(args.token_shapes.iter().map(|(m, k)| m * k).max().unwrap_or(1));
    let max_elems = max_elems.max(weights.iter().map(|(n, k)| n * k).max().unwrap_or(1));
    // The quantizer section's largest input (an f16 one is made for it alone).
    let quant_elems = if args.skip_quant { 0 } else { max_elems };
    // The end-to-end section's largest A (4096 x 16384) and W (7168 x 16384).
    let gemm_elems =
        args.gemm_shapes.iter().chain(&args.e2e_shapes).map(|&(m, n, k)| m.max(n).saturating_mul(k)).max().unwrap_or(0);
    let max_elems = if args.e2e || args.gemm || args.gemm_variants { max_elems.max(7168 * 16384) } else { max_elems };
    let max_elems = max_elems.max(gemm_elems);
    let input = random_bf16(&stream, max_elems)?;
    let input_dtype = args.input_dtype.unwrap_or(DType::Bf16);
    let records = match input_dtype {
        DType::F16 => {
            let input = random_input::<f16>(&stream, quant_elems)?;
            quant_records(&gpu, args, &input, (tokens, ks, weights), chosen, copy_gbps)?
        }
        _ => quant_records(&gpu, args, &input, (tokens, ks, weights), chosen, copy_gbps)?,
    };
    let host_costs = if args.skip_quant { Vec::new() } else { host_cost::run(&gpu)? };
    let peers = match &args.peers {
        Some(path) => Some(report::Peers::read(path)?),
        None => None,
    };
    // Read before any timing, so a bad file fails the run at once.
    let deepgemm = args.gemm_peers.as_deref().map(gemm::DeepGemm::read).transpose()?;
    let gemm_records = if args.gemm || args.gemm_variants {
        let shapes = if args.gemm_shapes.is_empty() { gemm::peer_set() } else { args.gemm_shapes.clone() };
        let layout = args.gemm_scale_layout.unwrap_or(ScaleLayout::ColMajorTmaAligned);
        gemm::run(
            &gpu,
            &input,
            &shapes,
            args.gemm_variants,
            layout,
            std::time::Duration::from_millis(args.gemm_settle_ms),
        )?
    } else {
        Vec::new()
    };
    if args.fused {
        fused::run(&gpu, copy_gbps, args.quick, args.out.as_deref())?;
    }
    let e2e_records =
        if args.e2e { e2e::run(&gpu, &input, copy_gbps, args.quick, &args.e2e_shapes)? } else { Vec::new() };
    let quant = report::QuantReport {
        records: &records,
        input: input_dtype.name(),
        ceilings,
        host_costs: &host_costs,
        peers: peers.as_ref(),
    };
    let gemm = report::GemmReport { records: &gemm_records, deepgemm: deepgemm.as_ref() };
    report::write(&quant, &e2e_records, &gemm, &device, args.out.as_deref())?;
    Ok((records, e2e_records))
}

/// The quantizer section's records on `input` (its first elements), for
/// the shape lists `run` chose: the token-group launches with
/// --token-kernel's choice, the weights, the scale layouts at prefill
/// sizes, then each record's same-size copies.
fn quant_records<T: Element + ValidAsZeroBits>(
    gpu: &Gpu,
    args: &BenchArgs,
    input: &CudaSlice<T>,
    (tokens, ks, weights): (&[usize], &[usize], &[(usize, usize)]),
    chosen: bool,
    copy_gbps: f64,
) -> Result<Vec<Record>> {
    let mut records = Vec::new();
    // The quantizer section's token-group launches, with --token-kernel's choice.
    let tg_gpu = gpu.with_token_group_chunks(args.token_kernel);
    if args.token_kernel != gpu::TokenGroupChunks::BySize {
        eprintln!("bench: token-group kernel forced: {:?}", args.token_kernel);
    }
    let token_layouts: &[ScaleLayout] =
        if args.token_layouts.is_empty() { &[ScaleLayout::RowMajor] } else { &args.token_layouts };
    for format in Fp8Format::ALL.into_iter().filter(|_| !args.skip_quant) {
        for &k in ks {
            for &m in tokens {
                let cfg = TokenGroupConfig { format, ..TokenGroupConfig::default() };
                records.push(token_group(&tg_gpu, input, m, k, cfg, copy_gbps)?);
            }
        }
        for &(m, k) in &args.token_shapes {
            for &layout in token_layouts {
                let cfg = TokenGroupConfig { format, layout, ..TokenGroupConfig::default() };
                records.push(token_group(&tg_gpu, input, m, k, cfg, copy_gbps)?);
            }
        }
        for &(n, k) in weights {
            let cfg = BlockConfig { format, ..BlockConfig::default() };
            records.push(block(gpu, input, n, k, cfg, copy_gbps)?);
        }
    }
    // Scale layouts at prefill sizes, against row-major in the same run.
    for &k in [7000, 7168].iter().filter(|_| !args.skip_quant && !chosen) {
        for layout in [ScaleLayout::ColMajor, ScaleLayout::ColMajorTmaAligned] {
            let cfg = TokenGroupConfig { layout, ..TokenGroupConfig::default() };
            records.push(token_group(&tg_gpu, input, 4096, k, cfg, copy_gbps)?);
        }
    }
    // The same bytes through the driver's copy and the SM copy kernel,
    // once per size.
    let mut copies = SameSizeCopies::default();
    for r in &mut records {
        let (memcpy_us, sm_us) = copies.us(gpu, r.bytes as usize)?;
        r.set_same_size_copy(memcpy_us);
        r.set_same_size_sm_copy(sm_us);
    }
    Ok(records)
}

/// Bandwidth of a 1 GiB device-to-device copy, counting bytes read and
/// written: the best of five rounds (each the median of ten copies). One
/// round varied by 5% from run to run on the same H100 while the kernels'
/// times did not; the best round is the stable, and the stricter, ceiling.
fn copy_bandwidth(stream: &Arc<CudaStream>) -> Result<f64> {
    gib_copy_gbps(stream, |src, dst, _| Ok(stream.memcpy_dtod(src, dst)?))
}

/// GB/s (read + written) of `copy(src, dst, bytes)` moving 1 GiB: the best
/// of five rounds, each the median of ten copies. The harness both 1 GiB
/// ceilings share.
fn gib_copy_gbps(
    stream: &Arc<CudaStream>,
    mut copy: impl FnMut(&CudaSlice<u8>, &mut CudaSlice<u8>, usize) -> Result<()>,
) -> Result<f64> {
    const BYTES: usize = 1 << 30;
    let src = stream.alloc_zeros::<u8>(BYTES)?;
    let mut dst = stream.alloc_zeros::<u8>(BYTES)?;
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        best = best.min(timing::median_ms(stream, 3, 10, || copy(&src, &mut dst, BYTES))?);
    }
    Ok(2.0 * BYTES as f64 / (best * 1e-3) / 1e9)
}

/// The ceilings every quantizer record is read against, measured in the
/// same run.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Ceilings {
    /// A 1 GiB `cuMemcpyDtoD`, GB/s (read + write).
    pub copy_gbps: f64,
    /// The project's SM copy kernel (`sm_copy16`) moving 1 GiB, GB/s.
    pub sm_copy_gbps: f64,
    /// An empty kernel, per launch in a CUDA graph, microseconds.
    pub launch_floor_us: f64,
}

/// Bandwidth of the SM copy kernel moving 1 GiB (read + written), best of
/// five rounds of ten, as [`copy_bandwidth`].
fn sm_copy_bandwidth(gpu: &Gpu) -> Result<f64> {
    gib_copy_gbps(gpu.stream(), |src, dst, bytes| gpu::launch_sm_copy(gpu, src, dst, bytes))
}

/// A peer script's JSON file (`quant_peers.json`, `deepgemm_graph.json`);
/// a file that does not parse is an `InvalidData` I/O error naming why.
fn read_json<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> Result<T> {
    let text = std::fs::read_to_string(path)?;
    serde_json::from_str(&text).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e).into())
}

/// The same-size copies of a section's records, each byte count measured
/// once: `(driver's copy, SM copy kernel)`, microseconds per launch in a
/// graph ([`same_size_copy_us`], [`same_size_sm_copy_us`]).
#[derive(Default)]
struct SameSizeCopies(std::collections::HashMap<usize, (f64, f64)>);

impl SameSizeCopies {
    fn us(&mut self, gpu: &Gpu, bytes: usize) -> Result<(f64, f64)> {
        if let Some(&us) = self.0.get(&bytes) {
            return Ok(us);
        }
        let us = (same_size_copy_us(gpu.stream(), bytes)?, same_size_sm_copy_us(gpu, bytes)?);
        self.0.insert(bytes, us);
        Ok(us)
    }
}

/// [`same_size_copy_us`] through the SM copy kernel.
fn same_size_sm_copy_us(gpu: &Gpu, bytes: usize) -> Result<f64> {
    rotated_copy_us(gpu.stream(), bytes, |src, dst, half| gpu::launch_sm_copy(gpu, src, dst, half))
}

/// `n` bf16 values spanning many magnitudes (never zeros: zeros can run
/// faster than real data and hide unwritten outputs).
fn random_bf16(stream: &Arc<CudaStream>, n: usize) -> Result<CudaSlice<bf16>> {
    random_input::<bf16>(stream, n)
}

/// `n` values of `T` spanning many magnitudes (2^-8 to 2^8, inside every
/// input type's normal range; never zeros: zeros can run faster than real
/// data and hide unwritten outputs).
fn random_input<T: Element>(stream: &Arc<CudaStream>, n: usize) -> Result<CudaSlice<T>> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let host: Vec<T> = (0..n.max(1))
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let unit = (state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0;
            T::from_f32(unit * 2f32.powi((state % 16) as i32 - 8))
        })
        .collect();
    Ok(stream.clone_htod(&host)?)
}

/// Input and output bytes that consecutive timed launches cycle through, so
/// each launch reads memory rather than the 50 MB L2 the previous one warmed.
const ROTATE_BYTES: usize = 512 << 20;

/// How many buffer sets of `bytes_per_call` make [`ROTATE_BYTES`] (1 to 32).
fn rotation(bytes_per_call: usize) -> usize {
    ROTATE_BYTES.div_ceil(bytes_per_call.max(1)).clamp(1, 32)
}

/// Per launch in a CUDA graph: a device-to-device copy of `bytes / 2`
/// (`bytes` moved), cycling through private buffers like the kernels do.
fn same_size_copy_us(stream: &Arc<CudaStream>, bytes: usize) -> Result<f64> {
    rotated_copy_us(stream, bytes, |src, dst, _| Ok(stream.memcpy_dtod(src, dst)?))
}

/// Per launch in a CUDA graph: `copy(src, dst, bytes / 2)` over rotating
/// private buffer pairs ([`rotation`]), the harness both same-size copies
/// share.
fn rotated_copy_us(
    stream: &Arc<CudaStream>,
    bytes: usize,
    mut copy: impl FnMut(&CudaSlice<u8>, &mut CudaSlice<u8>, usize) -> Result<()>,
) -> Result<f64> {
    let half = (bytes / 2).max(1);
    let sets = rotation(bytes);
    let src = (0..sets).map(|_| stream.alloc_zeros::<u8>(half)).collect::<Result<Vec<_>, _>>()?;
    let mut dst = (0..sets).map(|_| stream.alloc_zeros::<u8>(half)).collect::<Result<Vec<_>, _>>()?;
    let launches = sets * GRAPH_LAUNCHES.div_ceil(sets);
    let mut next = 0;
    timing::graph_us_per_launch(stream, launches, 10, || {
        next += 1;
        let i = next % sets;
        copy(&src[i], &mut dst[i], half)
    })
}

/// `sets` private copies of the first `n` input values.
fn input_sets<T: Element + ValidAsZeroBits>(
    stream: &Arc<CudaStream>,
    input: &CudaSlice<T>,
    n: usize,
    sets: usize,
) -> Result<Vec<CudaSlice<T>>> {
    copies_of(stream, &input.slice(0..n.max(1)), sets)
}

/// `sets` private device copies of `src`.
fn copies_of<T: Element + ValidAsZeroBits>(
    stream: &Arc<CudaStream>,
    src: &CudaView<'_, T>,
    sets: usize,
) -> Result<Vec<CudaSlice<T>>> {
    (0..sets)
        .map(|_| {
            let mut copy = stream.alloc_zeros::<T>(src.len())?;
            stream.memcpy_dtod(src, &mut copy)?;
            Ok(copy)
        })
        .collect()
}

/// Times `launch(set)`: per launch in a CUDA graph cycling through the sets
/// (the kernel's own time, cold L2, no host launch overhead), and one launch
/// between two events (what a caller without graphs sees, launch included).
fn measure(stream: &Arc<CudaStream>, sets: usize, mut launch: impl FnMut(usize) -> Result<()>) -> Result<(f64, f64)> {
    let single_ms = timing::median_ms(stream, WARMUP, REPS, || launch(0))?;
    let launches = sets * GRAPH_LAUNCHES.div_ceil(sets);
    let mut next = 0;
    let graph_us = timing::graph_us_per_launch(stream, launches, 10, || {
        next += 1;
        launch(next % sets)
    })?;
    Ok((graph_us, single_ms * 1e3))
}

fn token_group<T: Element + ValidAsZeroBits>(
    gpu: &Gpu,
    input: &CudaSlice<T>,
    m: usize,
    k: usize,
    cfg: TokenGroupConfig,
    copy_gbps: f64,
) -> Result<Record> {
    let plan = TokenGroupPlan::new(&cfg, MatrixShape::new(m, k)?)?;
    let (graph_us, single_us, bytes) = time_quantizer(gpu, input, m * k, plan.scale_shape().numel(), |x, q, s| {
        gpu::per_token_group_quant_planned(gpu, &plan, x, q, s)
    })?;
    Ok(Record::new("per_token_group_quant_fp8", cfg.format, cfg.layout, m, k, graph_us, single_us, bytes, copy_gbps))
}

fn block<T: Element + ValidAsZeroBits>(
    gpu: &Gpu,
    input: &CudaSlice<T>,
    n: usize,
    k: usize,
    cfg: BlockConfig,
    copy_gbps: f64,
) -> Result<Record> {
    let plan = BlockPlan::new(&cfg, MatrixShape::new(n, k)?)?;
    let (graph_us, single_us, bytes) = time_quantizer(gpu, input, n * k, plan.scale_shape().numel(), |x, q, s| {
        gpu::per_block_quant_planned(gpu, &plan, x, q, s)
    })?;
    let layout = ScaleLayout::RowMajor;
    Ok(Record::new("per_block_quant_fp8", cfg.format, layout, n, k, graph_us, single_us, bytes, copy_gbps))
}

/// Times a quantizer of `elems` input elements (the first of `input`) and
/// `scale_len` scales with [`measure`], each launch on its own copy of the
/// input and its own outputs: `(graph us, single-launch us, bytes moved)`.
fn time_quantizer<T: Element + ValidAsZeroBits>(
    gpu: &Gpu,
    input: &CudaSlice<T>,
    elems: usize,
    scale_len: usize,
    mut launch: impl FnMut(&CudaSlice<T>, &mut CudaSlice<u8>, &mut CudaSlice<f32>) -> Result<()>,
) -> Result<(f64, f64, usize)> {
    let stream = gpu.stream();
    let bytes = elems * std::mem::size_of::<T>() + elems + scale_len * 4;
    let sets = rotation(bytes);
    let inputs = input_sets(stream, input, elems, sets)?;
    let mut q = (0..sets).map(|_| stream.alloc_zeros::<u8>(elems)).collect::<Result<Vec<_>, _>>()?;
    let mut s = (0..sets).map(|_| stream.alloc_zeros::<f32>(scale_len)).collect::<Result<Vec<_>, _>>()?;
    let (graph_us, single_us) = measure(stream, sets, |i| launch(&inputs[i], &mut q[i], &mut s[i]))?;
    Ok((graph_us, single_us, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_dtype_flag_takes_the_two_byte_types_only() {
        assert_eq!(parse_input_dtype("bf16"), Ok(DType::Bf16));
        assert_eq!(parse_input_dtype("f16"), Ok(DType::F16));
        for bad in ["f32", "BF16", "", "fp16"] {
            assert!(parse_input_dtype(bad).is_err(), "{bad}");
        }
    }
}
