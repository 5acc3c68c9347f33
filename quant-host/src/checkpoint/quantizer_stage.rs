//! The quantizer stage of the pipeline: one weight's bytes in, its fp8 codes
//! and block scales (little-endian f32) out, bit-identical on every device.
//!
//! On the CPU the work is done at once, on every core
//! ([`cpu::block_par`](crate::cpu::block_par)); on a GPU it is queued
//! (upload, kernel, download on three streams) and up to
//! [`GPU_IN_FLIGHT`] weights are in flight, so one weight's transfers overlap
//! another's kernel. Either way [`Engine::submit`] hands back whichever
//! weight had to be finished to make room, and [`Engine::finish_oldest`] the
//! rest, so the pipeline code is the same for both.

use super::quantizer_stage_gpu::GpuEngine;
use super::staging::HostBuf;
use crate::config::BlockConfig;
use crate::cpu::block_par::per_block_quant_fp8_le_bytes;
use crate::device::Device;
use crate::element::DType;
use crate::error::{QuantError, Result};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Weights a GPU works on at once: one uploading or computing while the
/// previous one downloads. More would only hold more staging memory: the
/// copy engines and the kernel are each busy with one at a time.
pub const GPU_IN_FLIGHT: usize = 2;

/// One weight to quantize.
#[derive(Debug)]
pub struct Job {
    /// The caller's name for it, handed back in [`Finished`].
    pub tag: usize,
    /// The element type of `input`.
    pub dtype: DType,
    /// N.
    pub rows: usize,
    /// K.
    pub cols: usize,
    /// `rows * cols` little-endian elements.
    pub input: HostBuf,
}

/// A quantized weight.
#[derive(Debug)]
pub struct Finished {
    /// The job's tag.
    pub tag: usize,
    /// The job's input buffer, free for reuse.
    pub input: HostBuf,
    /// The codes (`rows * cols` bytes) followed by the scales (little-endian f32).
    pub output: HostBuf,
    /// Bytes of codes at the start of `output`.
    pub codes_len: usize,
}

/// Time spent quantizing, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct EngineTimes {
    /// CPU: wall time of the parallel quantizer. GPU: kernel time.
    pub compute: Duration,
    /// GPU: time of uploads and downloads (zero on the CPU).
    pub transfers: Duration,
}

/// The quantizer of one run.
#[derive(Debug)]
pub enum Engine {
    /// Every core of the host.
    Cpu(CpuEngine),
    /// A CUDA GPU.
    Gpu(GpuEngine),
}

/// Bytes of codes and of scales of a quantized `[rows, cols]` weight.
pub fn output_sizes(rows: usize, cols: usize, cfg: &BlockConfig) -> Result<(usize, usize)> {
    let codes = rows.checked_mul(cols).ok_or(QuantError::TooLarge("codes"))?;
    let scales = rows
        .div_ceil(cfg.block_rows.max(1))
        .checked_mul(cols.div_ceil(cfg.block_cols.max(1)))
        .and_then(|n| n.checked_mul(4))
        .ok_or(QuantError::TooLarge("scales"))?;
    Ok((codes, scales))
}

impl Engine {
    /// An engine on `device` with options `cfg` (validated here).
    pub fn new(device: &Device, cfg: BlockConfig) -> Result<Self> {
        cfg.params()?;
        Ok(match device {
            Device::Cpu => {
                Engine::Cpu(CpuEngine { cfg, scales: Vec::new(), done: VecDeque::new(), times: EngineTimes::default() })
            }
            Device::Cuda(gpu) => Engine::Gpu(GpuEngine::new(gpu, cfg)?),
        })
    }

    /// Jobs the engine may hold unfinished.
    pub fn in_flight(&self) -> usize {
        match self {
            Engine::Cpu(_) => 1,
            Engine::Gpu(_) => GPU_IN_FLIGHT,
        }
    }

    /// A staging buffer of `capacity` bytes suited to this engine: page-locked
    /// for a GPU, ordinary (and grown on demand) for the CPU.
    pub fn staging(&self, capacity: usize) -> Result<HostBuf> {
        match self {
            Engine::Cpu(_) => Ok(HostBuf::heap()),
            Engine::Gpu(g) => g.staging(capacity),
        }
    }

    /// Queues `job` with `output` to receive its codes and scales. Returns the
    /// oldest job if the engine was full and had to finish it first (on the
    /// CPU, `job` itself, done).
    pub fn submit(&mut self, job: Job, output: HostBuf) -> Result<Option<Finished>> {
        match self {
            Engine::Cpu(c) => {
                let done = c.run(job, output)?;
                c.done.push_back(done);
                Ok(c.done.pop_front())
            }
            Engine::Gpu(g) => g.submit(job, output),
        }
    }

    /// Finishes the oldest queued job, if any (waiting for the GPU).
    pub fn finish_oldest(&mut self) -> Result<Option<Finished>> {
        match self {
            Engine::Cpu(c) => Ok(c.done.pop_front()),
            Engine::Gpu(g) => g.finish_oldest(),
        }
    }

    /// Jobs queued and not yet handed back.
    pub fn pending(&self) -> usize {
        match self {
            Engine::Cpu(c) => c.done.len(),
            Engine::Gpu(g) => g.pending(),
        }
    }

    /// Time spent so far.
    pub fn times(&self) -> EngineTimes {
        match self {
            Engine::Cpu(c) => c.times,
            Engine::Gpu(g) => g.times(),
        }
    }
}

/// The CPU engine: [`per_block_quant_fp8_le_bytes`] straight from the bytes read.
#[derive(Debug)]
pub struct CpuEngine {
    cfg: BlockConfig,
    /// Scales of the current weight, before they become little-endian bytes.
    scales: Vec<f32>,
    done: VecDeque<Finished>,
    times: EngineTimes,
}

impl CpuEngine {
    fn run(&mut self, mut job: Job, mut output: HostBuf) -> Result<Finished> {
        let start = Instant::now();
        let (codes_len, scales_len) = output_sizes(job.rows, job.cols, &self.cfg)?;
        self.scales.clear();
        self.scales.resize(scales_len / 4, 0.0);
        let out = output.fill(codes_len + scales_len)?;
        let (codes, scale_bytes) = out.split_at_mut(codes_len);
        per_block_quant_fp8_le_bytes(
            job.dtype,
            job.input.bytes()?,
            job.rows,
            job.cols,
            &self.cfg,
            codes,
            &mut self.scales,
        )?;
        for (bytes, scale) in scale_bytes.chunks_exact_mut(4).zip(&self.scales) {
            bytes.copy_from_slice(&scale.to_le_bytes());
        }
        self.times.compute += start.elapsed();
        Ok(Finished { tag: job.tag, input: job.input, output, codes_len })
    }
}
