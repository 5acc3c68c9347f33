//! The fused section (`fp8q bench --fused`): the fused quantizers against the
//! two-step path, and the masked MoE layout against a dense call.
//!
//! - Each fused op's time, and its bytes (input read, residual read and
//!   written, weight, codes and scales written) over that time as a fraction
//!   of the 1 GiB copy measured in the same run.
//! - The two-step path: the op writing its output in bf16, then this
//!   project's `per_token_group_quant_fp8` reading it back. The quantizer
//!   is timed; the unfused op is counted as a copy of its bytes (read its
//!   inputs, write bf16 h) at the time a device-to-device copy of that size
//!   takes in the same run, which no real unfused kernel beats: the speedup
//!   reported is a lower bound.
//! - Masked: `E` experts of `M_max` rows with half of each expert's rows
//!   valid, against the dense quantizer on just the valid rows (`E * M_max /
//!   2` rows).
//!
//! - The same-size ceiling: the fused op's bytes moved by the faster of the
//!   driver's device-to-device copy and the project's SM copy kernel, per
//!   launch in the same graph harness. At 20-80 MB a copy itself reaches
//!   only part of the 1 GiB copy's bandwidth (launch, ramp-up and the last
//!   wave are a larger share of a short run), so `of same-size copy` is
//!   what a fused op can still gain, and `of copy` is bounded by the copy's
//!   own fraction at that size.
//!
//! Timing as the rest of the benchmark: per launch in a CUDA graph, over
//! rotating buffers (cold L2).

use super::{copies_of, measure, random_bf16, rotation, same_size_copy_us, SameSizeCopies};
use crate::config::TokenGroupConfig;
use crate::error::Result;
use crate::fused::{FusedGroupPlan, FusedOp, RmsNormConfig, RmsNormPlan};
use crate::gpu::{self, Gpu};
use crate::plan::TokenGroupPlan;
use crate::shape::MatrixShape;
use cudarc::driver::CudaSlice;
use half::bf16;
use std::fmt::Write as _;
use std::path::Path;

/// One row of the fused table.
#[derive(Clone, Debug, serde::Serialize)]
pub struct FusedRecord {
    /// What was timed.
    pub op: String,
    /// Rows.
    pub m: usize,
    /// Output columns.
    pub k: usize,
    /// Per launch, microseconds.
    pub fused_us: f64,
    /// Bytes the fused op moves.
    pub bytes: usize,
    /// `bytes / fused_us` over the 1 GiB copy's bandwidth.
    pub of_copy: f64,
    /// The same bytes moved by the faster of the driver's copy and the SM
    /// copy kernel, per launch in a graph, microseconds.
    pub same_size_copy_us: f64,
    /// `same_size_copy_us / fused_us`.
    pub of_same_size_copy: f64,
    /// The two-step path (or, for masked rows, the dense call), microseconds.
    pub baseline_us: f64,
    /// `baseline_us / fused_us`.
    pub speedup: f64,
}

fn record(
    op: String,
    m: usize,
    k: usize,
    fused_us: f64,
    bytes: usize,
    baseline_us: f64,
    copy_gbps: f64,
) -> FusedRecord {
    let gbps = bytes as f64 / (fused_us * 1e-6) / 1e9;
    FusedRecord {
        op,
        m,
        k,
        fused_us,
        bytes,
        of_copy: gbps / copy_gbps,
        same_size_copy_us: f64::NAN,
        of_same_size_copy: f64::NAN,
        baseline_us,
        speedup: baseline_us / fused_us,
    }
}

/// Fills each record's same-size ceiling (one measurement per byte count).
fn add_same_size_copies(gpu: &Gpu, records: &mut [FusedRecord]) -> Result<()> {
    let mut copies = SameSizeCopies::default();
    for r in records {
        let (memcpy_us, sm_us) = copies.us(gpu, r.bytes)?;
        let us = memcpy_us.min(sm_us);
        r.same_size_copy_us = us;
        r.of_same_size_copy = us / r.fused_us;
    }
    Ok(())
}

fn zeros<T: cudarc::driver::DeviceRepr + cudarc::driver::ValidAsZeroBits>(
    gpu: &Gpu,
    sets: usize,
    n: usize,
) -> Result<Vec<CudaSlice<T>>> {
    (0..sets).map(|_| Ok(gpu.stream().alloc_zeros::<T>(n.max(1))?)).collect()
}

/// `sets` device copies of `n` values of the section's random input, from
/// its start (`Part::Head`) or its end (`Part::Tail`, for a second operand
/// that should differ from the first). The input is generated on the host
/// once per section: generating every set (or every record's) on the host
/// made the section run for minutes.
fn randoms(gpu: &Gpu, input: &CudaSlice<bf16>, part: Part, sets: usize, n: usize) -> Result<Vec<CudaSlice<bf16>>> {
    let n = n.max(1);
    if n > input.len() {
        return Err(crate::error::QuantError::TooLarge("the fused section's random input"));
    }
    let at = match part {
        Part::Head => 0,
        Part::Tail => input.len().saturating_sub(n),
    };
    copies_of(gpu.stream(), &input.slice(at..at + n), sets)
}

/// Which end of the section's input a record's operand is copied from.
#[derive(Clone, Copy)]
enum Part {
    Head,
    Tail,
}

/// The quantizer on a bf16 `[m, k]`, per launch (the second step).
fn quantizer_us(gpu: &Gpu, input: &CudaSlice<bf16>, m: usize, k: usize, cfg: &TokenGroupConfig) -> Result<f64> {
    let plan = TokenGroupPlan::new(cfg, MatrixShape::new(m, k)?)?;
    let sets = rotation(m * k * 3);
    let x = randoms(gpu, input, Part::Head, sets, m * k)?;
    let mut q = zeros::<u8>(gpu, sets, m * k)?;
    let mut s = zeros::<f32>(gpu, sets, plan.scale_shape().numel())?;
    Ok(measure(gpu.stream(), sets, |i| gpu::per_token_group_quant_planned(gpu, &plan, &x[i], &mut q[i], &mut s[i]))?.0)
}

fn silu(gpu: &Gpu, input: &CudaSlice<bf16>, m: usize, n: usize, copy_gbps: f64) -> Result<FusedRecord> {
    let cfg = TokenGroupConfig::default();
    let plan = FusedGroupPlan::new(FusedOp::SiluMul, &cfg, MatrixShape::new(m, 2 * n)?, 1, false)?;
    let scale_len = plan.scale_shape().numel();
    let bytes = m * 2 * n * 2 + m * n + scale_len * 4;
    let sets = rotation(bytes);
    let x = randoms(gpu, input, Part::Head, sets, m * 2 * n)?;
    let mut q = zeros::<u8>(gpu, sets, m * n)?;
    let mut s = zeros::<f32>(gpu, sets, scale_len)?;
    let (fused_us, _) =
        measure(gpu.stream(), sets, |i| gpu::fused::fused_group(gpu, &plan, &x[i], None, &mut q[i], &mut s[i]))?;
    // Unfused silu_mul: read [m, 2n] bf16, write [m, n] bf16.
    let op_us = same_size_copy_us(gpu.stream(), m * 2 * n * 2 + m * n * 2)?;
    let two_step = op_us + quantizer_us(gpu, input, m, n, &cfg)?;
    Ok(record("silu_mul".into(), m, n, fused_us, bytes, two_step, copy_gbps))
}

fn rms(gpu: &Gpu, input: &CudaSlice<bf16>, m: usize, k: usize, residual: bool, copy_gbps: f64) -> Result<FusedRecord> {
    let cfg = RmsNormConfig::default();
    let plan = RmsNormPlan::new(&cfg, MatrixShape::new(m, k)?)?;
    let scale_len = plan.quant().scale_shape().numel();
    let io = if residual { 3 } else { 1 };
    let bytes = m * k * 2 * io + k * 2 + m * k + scale_len * 4;
    let sets = rotation(bytes);
    let x = randoms(gpu, input, Part::Head, sets, m * k)?;
    let w = randoms(gpu, input, Part::Tail, 1, k)?;
    let mut r = if residual { randoms(gpu, input, Part::Tail, sets, m * k)? } else { Vec::new() };
    let mut q = zeros::<u8>(gpu, sets, m * k)?;
    let mut s = zeros::<f32>(gpu, sets, scale_len)?;
    let (fused_us, _) = measure(gpu.stream(), sets, |i| {
        let res = r.get_mut(i);
        gpu::fused::rms_norm(gpu, &plan, &x[i], res, &w[0], &mut q[i], &mut s[i])
    })?;
    // Unfused: read x (and r), write y (the residual) and bf16 h.
    let op_us = same_size_copy_us(gpu.stream(), m * k * 2 * (io + 1))?;
    let two_step = op_us + quantizer_us(gpu, input, m, k, &cfg.quant)?;
    let name = if residual { "rms_norm + residual" } else { "rms_norm" };
    Ok(record(name.into(), m, k, fused_us, bytes, two_step, copy_gbps))
}

fn masked(
    gpu: &Gpu,
    input: &CudaSlice<bf16>,
    experts: usize,
    m_max: usize,
    k: usize,
    silu: bool,
    copy_gbps: f64,
) -> Result<FusedRecord> {
    let cfg =
        TokenGroupConfig { layout: quant_kernels::ScaleLayout::ColMajorTmaAligned, ..TokenGroupConfig::default() };
    let in_cols = if silu { 2 * k } else { k };
    let op = if silu { FusedOp::SiluMul } else { FusedOp::Quant };
    let plan = FusedGroupPlan::new(op, &cfg, MatrixShape::new(experts * m_max, in_cols)?, experts, true)?;
    let counts: Vec<u32> = (0..experts).map(|_| (m_max / 2) as u32).collect();
    let masked_m = gpu.stream().clone_htod(&counts)?;
    let valid = experts * (m_max / 2);
    let scale_len = plan.scale_shape().numel();
    let bytes = valid * in_cols * 2 + valid * k + valid * k.div_ceil(128) * 4;
    let sets = rotation(bytes * 2);
    let x = randoms(gpu, input, Part::Head, sets, experts * m_max * in_cols)?;
    let mut q = zeros::<u8>(gpu, sets, experts * m_max * k)?;
    let mut s = zeros::<f32>(gpu, sets, scale_len)?;
    let (masked_us, _) = measure(gpu.stream(), sets, |i| {
        gpu::fused::fused_group(gpu, &plan, &x[i], Some(&masked_m), &mut q[i], &mut s[i])
    })?;
    // Dense on the valid rows: the same op on `valid` rows.
    let dense_plan = FusedGroupPlan::new(op, &cfg, MatrixShape::new(valid, in_cols)?, 1, false)?;
    let mut dq = zeros::<u8>(gpu, sets, valid * k)?;
    let dense_us = if silu {
        let mut ds = zeros::<f32>(gpu, sets, dense_plan.scale_shape().numel())?;
        measure(gpu.stream(), sets, |i| gpu::fused::fused_group(gpu, &dense_plan, &x[i], None, &mut dq[i], &mut ds[i]))?
            .0
    } else {
        let plan = TokenGroupPlan::new(&cfg, MatrixShape::new(valid, k)?)?;
        let mut ds = zeros::<f32>(gpu, sets, plan.scale_shape().numel())?;
        measure(gpu.stream(), sets, |i| gpu::per_token_group_quant_planned(gpu, &plan, &x[i], &mut dq[i], &mut ds[i]))?
            .0
    };
    let name =
        format!("masked {} (E={experts}, M_max={m_max}, half valid) vs dense", if silu { "silu_mul" } else { "quant" });
    Ok(record(name, experts * m_max, k, masked_us, bytes, dense_us, copy_gbps))
}

/// Runs the section, prints its table and writes `bench-fused.md` (and
/// `.json`) into `out` (or the current directory).
pub fn run(gpu: &Gpu, copy_gbps: f64, quick: bool, out: Option<&Path>) -> Result<Vec<FusedRecord>> {
    let tokens: &[usize] = if quick { &[2048, 8192] } else { &[128, 2048, 4096, 8192, 16384] };
    // The largest operand: silu_mul's [M, 2 x 7168] input, or the masked
    // layout's [16 x 1024, 2 x 7168].
    let largest = tokens.iter().max().copied().unwrap_or(1).max(16 * 1024) * 2 * 7168;
    let input = random_bf16(gpu.stream(), largest)?;
    let mut records = Vec::new();
    for &m in tokens {
        for n in [2048, 7168] {
            records.push(silu(gpu, &input, m, n, copy_gbps)?);
        }
        for residual in [false, true] {
            records.push(rms(gpu, &input, m, 7168, residual, copy_gbps)?);
        }
    }
    for silu in [false, true] {
        records.push(masked(gpu, &input, 16, 1024, 7168, silu, copy_gbps)?);
        records.push(masked(gpu, &input, 32, 256, 2048, silu, copy_gbps)?);
    }
    add_same_size_copies(gpu, &mut records)?;
    let table = table(&records, copy_gbps);
    println!("{table}");
    let dir = out.map(Path::to_path_buf).unwrap_or_else(|| std::path::PathBuf::from("."));
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("bench-fused.md"), &table)?;
    let json = serde_json::to_string_pretty(&records).map_err(|e| std::io::Error::other(e.to_string()))?;
    std::fs::write(dir.join("bench-fused.json"), json)?;
    Ok(records)
}

fn table(records: &[FusedRecord], copy_gbps: f64) -> String {
    let mut t = String::new();
    let _ = writeln!(t, "## Fused quantizers (bf16 -> e4m3fn, groups of 128; copy {copy_gbps:.0} GB/s)\n");
    let _ = writeln!(
        t,
        "Baseline: the two-step path (unfused op at copy speed for its bytes + `per_token_group_quant_fp8`, measured), \
         or for masked rows the dense call on the valid rows.\n"
    );
    let _ = writeln!(
        t,
        "`of copy`: the op's bytes over its time, as a fraction of the 1 GiB copy; `same-size copy us`: those bytes \
         moved by the faster of the driver's copy and the SM copy kernel (per launch in a graph), and `of it` that \
         time over the op's.\n"
    );
    let _ = writeln!(
        t,
        "| op | M | N/K | MB | fused us | of copy | same-size copy us | of it | baseline us | baseline / fused |"
    );
    let _ = writeln!(t, "|---|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for r in records {
        let _ = writeln!(
            t,
            "| {} | {} | {} | {:.1} | {:.1} | {:.2} | {:.1} | {:.2} | {:.1} | {:.2} |",
            r.op,
            r.m,
            r.k,
            r.bytes as f64 / 1e6,
            r.fused_us,
            r.of_copy,
            r.same_size_copy_us,
            r.of_same_size_copy,
            r.baseline_us,
            r.speedup
        );
    }
    t
}
