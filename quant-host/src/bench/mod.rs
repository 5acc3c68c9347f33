//! The kernel benchmark: every quantizer against the device-to-device copy
//! measured in the same run.
//!
//! Quantization reads each input once and writes one byte per element plus
//! the scales, so the honest ceiling is memory bandwidth: each kernel's
//! bytes over its time, as a fraction of a large `cuMemcpyDtoD`'s (bytes
//! read plus written). Absolute times drift between machines; those
//! fractions, measured in one run, do not.
//!
//! Decode-sized calls (M <= 16) are latency-bound, so they are also timed as
//! a CUDA graph of many launches: the per-launch cost a serving stack sees.
//! Small inputs fit in the 50 MB L2, so their "bandwidth" is L2's; the
//! targets only judge M >= 2048 and the weight shapes.

pub mod e2e;
mod report;
mod shapes;
mod timing;

pub use e2e::E2eRecord;
pub use report::Record;

use crate::config::{BlockConfig, TokenGroupConfig};
use crate::error::{QuantError, Result};
use crate::gpu::{self, driver_available, Gpu};
use crate::shape::MatrixShape;
use cudarc::driver::{CudaContext, CudaSlice, CudaStream};
use half::bf16;
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
    /// Compare the `wgmma` GEMM variants on a few shapes (development aid)
    #[arg(long, hide = true)]
    pub gemm_variants: bool,
}

const WARMUP: usize = 5;
const REPS: usize = 25;
const GRAPH_LAUNCHES: usize = 200;

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
    eprintln!("bench: {device}, device-to-device copy {copy_gbps:.0} GB/s");

    let (tokens, ks, weights): (&[usize], &[usize], &[(usize, usize)]) = if args.quick {
        (&[1, 2048, 16384], &[7000, 7168], &[(576, 7168), (2112, 7168), (7168, 18432)])
    } else {
        (shapes::TOKENS, shapes::ACTIVATION_K, shapes::WEIGHTS)
    };
    let max_elems = tokens.iter().max().copied().unwrap_or(1) * ks.iter().max().copied().unwrap_or(1);
    let max_elems = max_elems.max(weights.iter().map(|(n, k)| n * k).max().unwrap_or(1));
    // The end-to-end section's largest A (4096 x 16384) and W (7168 x 16384).
    let max_elems = if args.e2e || args.gemm_variants { max_elems.max(7168 * 16384) } else { max_elems };
    let input = random_bf16(&stream, max_elems)?;

    let mut records = Vec::new();
    for format in Fp8Format::ALL.into_iter().filter(|_| !args.skip_quant) {
        for &k in ks {
            for &m in tokens {
                let cfg = TokenGroupConfig { format, ..TokenGroupConfig::default() };
                records.push(token_group(&gpu, &input, m, k, cfg, copy_gbps)?);
            }
        }
        for &(n, k) in weights {
            let cfg = BlockConfig { format, ..BlockConfig::default() };
            records.push(block(&gpu, &input, n, k, cfg, copy_gbps)?);
        }
    }
    // Scale layouts at prefill sizes, against row-major in the same run.
    for &k in [7000, 7168].iter().filter(|_| !args.skip_quant) {
        for layout in [ScaleLayout::ColMajor, ScaleLayout::ColMajorTmaAligned] {
            let cfg = TokenGroupConfig { layout, ..TokenGroupConfig::default() };
            records.push(token_group(&gpu, &input, 4096, k, cfg, copy_gbps)?);
        }
    }
    if args.gemm_variants {
        e2e::variants(&gpu, &input)?;
    }
    let e2e_records = if args.e2e { e2e::run(&gpu, &input, copy_gbps, args.quick)? } else { Vec::new() };
    report::write(&records, &e2e_records, &device, copy_gbps, args.out.as_deref())?;
    Ok((records, e2e_records))
}

/// Bandwidth of a 1 GiB device-to-device copy, counting bytes read and written.
fn copy_bandwidth(stream: &Arc<CudaStream>) -> Result<f64> {
    const BYTES: usize = 1 << 30;
    let src = stream.alloc_zeros::<u8>(BYTES)?;
    let mut dst = stream.alloc_zeros::<u8>(BYTES)?;
    let ms = timing::median_ms(stream, 3, 10, || Ok(stream.memcpy_dtod(&src, &mut dst)?))?;
    Ok(2.0 * BYTES as f64 / (ms * 1e-3) / 1e9)
}

/// `n` bf16 values spanning many magnitudes (never zeros: zeros can run
/// faster than real data and hide unwritten outputs).
fn random_bf16(stream: &Arc<CudaStream>, n: usize) -> Result<CudaSlice<bf16>> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let host: Vec<bf16> = (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let unit = (state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0;
            bf16::from_f32(unit * 2f32.powi((state % 16) as i32 - 8))
        })
        .collect();
    Ok(stream.clone_htod(&host)?)
}

fn token_group(
    gpu: &Gpu,
    input: &CudaSlice<bf16>,
    m: usize,
    k: usize,
    cfg: TokenGroupConfig,
    copy_gbps: f64,
) -> Result<Record> {
    let stream = gpu.stream();
    let shape = MatrixShape::new(m, k)?;
    let groups = k.div_ceil(cfg.group_size.get());
    let mut q = stream.alloc_zeros::<u8>(m * k)?;
    let mut s = stream.alloc_zeros::<f32>(cfg.layout.len(m as u64, groups as u64) as usize)?;
    let mut launch = || gpu::per_token_group_quant(gpu, input, shape, &cfg, &mut q, &mut s);
    let ms = timing::median_ms(stream, WARMUP, REPS, &mut launch)?;
    let graph_us =
        if m <= 16 { Some(timing::graph_us_per_launch(stream, GRAPH_LAUNCHES, 10, &mut launch)?) } else { None };
    let bytes = (m * k * 2 + m * k + s.len() * 4) as f64;
    Ok(Record::new("per_token_group_quant_fp8", cfg.format, cfg.layout, m, k, ms, bytes, copy_gbps, graph_us))
}

fn block(gpu: &Gpu, input: &CudaSlice<bf16>, n: usize, k: usize, cfg: BlockConfig, copy_gbps: f64) -> Result<Record> {
    let stream = gpu.stream();
    let shape = MatrixShape::new(n, k)?;
    let mut q = stream.alloc_zeros::<u8>(n * k)?;
    let mut s = stream.alloc_zeros::<f32>(n.div_ceil(cfg.block_rows) * k.div_ceil(cfg.block_cols))?;
    let ms = timing::median_ms(stream, WARMUP, REPS, || gpu::per_block_quant(gpu, input, shape, &cfg, &mut q, &mut s))?;
    let bytes = (n * k * 2 + n * k + s.len() * 4) as f64;
    Ok(Record::new("per_block_quant_fp8", cfg.format, ScaleLayout::RowMajor, n, k, ms, bytes, copy_gbps, None))
}
