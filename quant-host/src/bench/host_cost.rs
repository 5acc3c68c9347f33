//! What one eager `per_token_group_quant_fp8` call costs the CPU, and what
//! the allocating block-quant and GEMM calls cost over their `_into` forms.
//!
//! A caller without CUDA graphs pays the host's work per call: validating
//! the config, building the plan and the parameter block, finding the
//! kernel, and the driver's launch. This times `CALLS` calls back to back
//! (the stream is not synchronized between them, and `CALLS` is below the
//! driver's queue depth, so the host never waits for the GPU) and divides
//! the wall time by `CALLS`: the best of `ROUNDS` rounds, each after a
//! synchronization. Decode-sized input (M = 1), whose kernel is shorter
//! than the host's work, so nothing but the host is measured.

use super::timing;
use crate::config::{BlockConfig, TokenGroupConfig};
use crate::device::Device;
use crate::error::Result;
use crate::gemm::{GemmConfig, GemmTensor};
use crate::gpu::Gpu;
use crate::shape::MatrixShape;
use half::bf16;
use std::fmt::Write as _;
use std::time::Instant;

const CALLS: usize = 200;
const ROUNDS: usize = 15;

/// One host-cost measurement.
#[derive(Clone, Debug, serde::Serialize)]
pub struct HostCostRecord {
    /// What was called.
    pub what: String,
    /// Wall time per call on the host, microseconds (best round).
    pub us_per_call: f64,
    /// The call the target reads: the allocating eager call on a
    /// `Gpu` as `Device::best_available` makes it.
    pub is_target: bool,
}

/// Best of `ROUNDS`: wall microseconds per call of `f` over `CALLS` calls.
fn per_call_us(gpu: &Gpu, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    for _ in 0..10 {
        f()?;
    }
    let mut best = f64::INFINITY;
    for _ in 0..ROUNDS {
        gpu.synchronize()?;
        let start = Instant::now();
        for _ in 0..CALLS {
            f()?;
        }
        best = best.min(start.elapsed().as_secs_f64() * 1e6 / CALLS as f64);
    }
    gpu.synchronize()?;
    Ok(best)
}

/// Host cost of the eager calls at `M = 1, K = 7168` (bf16 -> e4m3fn), on
/// `bench_gpu` (the benchmark's context, which tracks no events) and on a
/// `Gpu::new(0)` (a context as `Device::best_available` makes it: cudarc's
/// cross-stream event tracking is on, which adds event records and waits
/// per buffer argument to every launch).
pub fn run(bench_gpu: &Gpu) -> Result<Vec<HostCostRecord>> {
    let shape = MatrixShape::new(1, 7168)?;
    let cfg = TokenGroupConfig::default();
    let host: Vec<bf16> = (0..7168).map(|i| bf16::from_f32((i as f32 * 0.37).sin())).collect();
    let mut out = Vec::new();
    let fresh = Gpu::new(bench_gpu.ordinal())?;
    for (gpu, context) in [(bench_gpu, "no event tracking"), (&fresh, "Gpu::new, event tracking")] {
        let device = Device::Cuda(gpu.clone());
        let x = device.upload(&host, shape)?;
        let allocating = per_call_us(gpu, || device.per_token_group_quant_fp8(&x, &cfg).map(drop))?;
        out.push(HostCostRecord {
            what: format!("Device::per_token_group_quant_fp8 (allocates its outputs), {context}"),
            us_per_call: allocating,
            is_target: !std::ptr::eq(gpu, bench_gpu),
        });
        let probe = device.per_token_group_quant_fp8(&x, &cfg)?;
        let (mut codes, mut scales) = (probe.codes, probe.scales);
        let into = per_call_us(gpu, || device.per_token_group_quant_fp8_into(&x, &cfg, &mut codes, &mut scales))?;
        out.push(HostCostRecord {
            what: format!("Device::per_token_group_quant_fp8_into (caller's outputs), {context}"),
            us_per_call: into,
            is_target: false,
        });
        let empty = per_call_us(gpu, || crate::gpu::launch_empty(gpu))?;
        out.push(HostCostRecord {
            what: format!("empty kernel launch (the driver's floor), {context}"),
            us_per_call: empty,
            is_target: false,
        });
    }
    // One launch between two events, as the records' `single launch` column.
    let device = Device::Cuda(bench_gpu.clone());
    let x = device.upload(&host, shape)?;
    let probe = device.per_token_group_quant_fp8(&x, &cfg)?;
    let (mut codes, mut scales) = (probe.codes, probe.scales);
    let single = timing::median_ms(bench_gpu.stream(), 10, 50, || {
        device.per_token_group_quant_fp8_into(&x, &cfg, &mut codes, &mut scales)
    })?;
    out.push(HostCostRecord {
        what: "one `_into` call between two events (GPU time, launch included), no event tracking".into(),
        us_per_call: single * 1e3,
        is_target: false,
    });
    out.extend(allocating_against_into(bench_gpu)?);
    Ok(out)
}

/// The allocating `per_block_quant_fp8` and `mm_fp8_blockscale` against
/// their `_into` forms: host time per call on small problems (where the
/// allocation is all the difference) and GPU time between two events on
/// large ones (where an output zeroed first would be a pass of its own over
/// the codes or C).
fn allocating_against_into(gpu: &Gpu) -> Result<Vec<HostCostRecord>> {
    let device = Device::Cuda(gpu.clone());
    let mut out = Vec::new();
    let block = BlockConfig::default();
    for (rows, cols, clock) in [(128, 7168, Clock::Host), (7168, 18432, Clock::Events)] {
        let shape = MatrixShape::new(rows, cols)?;
        let values: Vec<bf16> = (0..shape.extent()).map(|i| bf16::from_f32((i as f32 * 0.37).sin())).collect();
        let w = device.upload(&values, shape)?;
        let probe = device.per_block_quant_fp8(&w, &block)?;
        let (mut codes, mut scales) = (probe.codes, probe.scales);
        out.extend(allocating_and_into(
            gpu,
            clock,
            "per_block_quant_fp8",
            &format!("{rows} x {cols} bf16"),
            || device.per_block_quant_fp8(&w, &block).map(drop),
            || device.per_block_quant_fp8_into(&w, &block, &mut codes, &mut scales),
        )?);
    }
    let gemm = GemmConfig::default();
    for (m, n, k, clock) in [(1, 512, 7168, Clock::Host), (4096, 7168, 2048, Clock::Events)] {
        let a = device.per_token_group_quant_fp8(
            &device.upload(&vec![bf16::from_f32(0.5); m * k], MatrixShape::new(m, k)?)?,
            &TokenGroupConfig { layout: gemm.a_scale_layout, ..TokenGroupConfig::default() },
        )?;
        let b = device.per_block_quant_fp8(
            &device.upload(&vec![bf16::from_f32(0.25); n * k], MatrixShape::new(n, k)?)?,
            &block,
        )?;
        let mut c: GemmTensor = device.mm_fp8_blockscale(&a.codes, &a.scales, &b.codes, &b.scales, &gemm)?;
        out.extend(allocating_and_into(
            gpu,
            clock,
            "mm_fp8_blockscale",
            &format!("{m} x {n} x {k}"),
            || device.mm_fp8_blockscale(&a.codes, &a.scales, &b.codes, &b.scales, &gemm).map(drop),
            || device.mm_fp8_blockscale_into(&a.codes, &a.scales, &b.codes, &b.scales, &gemm, &mut c),
        )?);
    }
    Ok(out)
}

/// How [`allocating_and_into`] times a call.
#[derive(Clone, Copy)]
enum Clock {
    /// Wall time on the host per call ([`per_call_us`]).
    Host,
    /// The median GPU time of one call between two events.
    Events,
}

/// The rows of `Device::{call}` (allocating its outputs) and
/// `Device::{call}_into` on `problem`, each timed by `clock`.
fn allocating_and_into(
    gpu: &Gpu,
    clock: Clock,
    call: &str,
    problem: &str,
    allocating: impl FnMut() -> Result<()>,
    into: impl FnMut() -> Result<()>,
) -> Result<[HostCostRecord; 2]> {
    let (unit, allocating, into) = match clock {
        Clock::Host => ("host us per call", per_call_us(gpu, allocating)?, per_call_us(gpu, into)?),
        Clock::Events => (
            "GPU us between events",
            timing::median_ms(gpu.stream(), 3, 15, allocating)? * 1e3,
            timing::median_ms(gpu.stream(), 3, 15, into)? * 1e3,
        ),
    };
    let row = |name: String, us| HostCostRecord {
        what: format!("Device::{name}, {problem} ({unit})"),
        us_per_call: us,
        is_target: false,
    };
    Ok([row(call.to_string(), allocating), row(format!("{call}_into"), into)])
}

/// The host-cost table.
pub fn report(records: &[HostCostRecord]) -> String {
    let mut md = format!(
        "\n## Host cost of one eager call (M = 1, K = 7168, bf16 -> e4m3fn unless named)\n\nWall time per call on the host, {CALLS} calls back to back without synchronizing, best of {ROUNDS} rounds; rows marked GPU are the median GPU time between two events.\n\n| call | us per call |\n|---|---:|\n"
    );
    for r in records {
        let _ = writeln!(md, "| {} | {:.2} |", r.what, r.us_per_call);
    }
    md
}
