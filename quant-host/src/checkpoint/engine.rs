//! Runs the block quantizer on the chosen device, reusing output buffers.
//!
//! A checkpoint has thousands of weights but only a handful of distinct
//! shapes (every expert's `gate_proj` is the same), so codes and scales
//! buffers are kept in a small pool keyed by shape instead of being
//! allocated per tensor; on a GPU that saves a device allocation per weight.

use super::reader::HostData;
use crate::config::BlockConfig;
use crate::device::Device;
use crate::element::Element;
use crate::error::Result;
use crate::shape::MatrixShape;
use crate::tensor::Tensor;
use std::time::{Duration, Instant};

/// Bytes of idle buffers the pool keeps.
const POOL_BUDGET: usize = 1 << 30;

/// The quantizer of one run.
#[derive(Debug)]
pub struct Engine<'d> {
    device: &'d Device,
    cfg: BlockConfig,
    pool: Vec<(MatrixShape, Tensor<u8>, Tensor<f32>)>,
    pooled_bytes: usize,
    /// Time spent in upload, kernel and download.
    pub busy: Duration,
}

impl<'d> Engine<'d> {
    /// An engine on `device` with options `cfg`.
    pub fn new(device: &'d Device, cfg: BlockConfig) -> Self {
        Self { device, cfg, pool: Vec::new(), pooled_bytes: 0, busy: Duration::ZERO }
    }

    /// Quantizes a `[rows, cols]` matrix: fp8 codes (row-major) and block
    /// scales `[ceil(rows / BN), ceil(cols / BK)]`, bit-identical on every device.
    pub fn quantize(&mut self, data: HostData, rows: usize, cols: usize) -> Result<(Vec<u8>, Vec<f32>)> {
        let start = Instant::now();
        self.cfg.params()?;
        let shape = MatrixShape::new(rows, cols)?;
        let out = match data {
            HostData::Bf16(v) => self.run(v, shape),
            HostData::F16(v) => self.run(v, shape),
            HostData::F32(v) => self.run(v, shape),
        };
        self.busy += start.elapsed();
        out
    }

    fn run<T: Element>(&mut self, values: Vec<T>, shape: MatrixShape) -> Result<(Vec<u8>, Vec<f32>)> {
        let w = match self.device {
            Device::Cpu => Tensor::from_vec(values, shape)?,
            device => device.upload(&values, shape)?,
        };
        let (mut codes, mut scales) = self.take(shape)?;
        self.device.per_block_quant_fp8_into(&w, &self.cfg, &mut codes, &mut scales)?;
        let out = (codes.to_vec()?, scales.to_vec()?);
        self.put(shape, codes, scales);
        Ok(out)
    }

    fn take(&mut self, shape: MatrixShape) -> Result<(Tensor<u8>, Tensor<f32>)> {
        if let Some(i) = self.pool.iter().position(|(s, _, _)| *s == shape) {
            let (_, codes, scales) = self.pool.remove(i);
            self.pooled_bytes -= Self::bytes(&codes, &scales);
            return Ok((codes, scales));
        }
        let scale_shape =
            MatrixShape::new(shape.rows().div_ceil(self.cfg.block_rows), shape.cols().div_ceil(self.cfg.block_cols))?;
        Ok((self.device.zeros::<u8>(shape)?, self.device.zeros::<f32>(scale_shape)?))
    }

    fn put(&mut self, shape: MatrixShape, codes: Tensor<u8>, scales: Tensor<f32>) {
        let bytes = Self::bytes(&codes, &scales);
        if bytes > POOL_BUDGET {
            return;
        }
        // Evict the oldest buffers until the new ones fit.
        while self.pooled_bytes + bytes > POOL_BUDGET && !self.pool.is_empty() {
            let (_, c, s) = self.pool.remove(0);
            self.pooled_bytes -= Self::bytes(&c, &s);
        }
        self.pooled_bytes += bytes;
        self.pool.push((shape, codes, scales));
    }

    fn bytes(codes: &Tensor<u8>, scales: &Tensor<f32>) -> usize {
        codes.shape().extent() + scales.shape().extent() * 4
    }
}
