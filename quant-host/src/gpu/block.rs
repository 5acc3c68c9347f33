//! Host side of `per_block_quant_fp8` on the GPU.

use super::{launch, Gpu};
use crate::config::BlockConfig;
use crate::element::Element;
use crate::error::{QuantError, Result};
use crate::shape::MatrixShape;
use cudarc::driver::{CudaSlice, PushKernelArg};

/// Queues the block quantization of `w` on `gpu`'s stream.
pub(crate) fn per_block_quant<T: Element>(
    gpu: &Gpu,
    w: &CudaSlice<T>,
    shape: MatrixShape,
    cfg: &BlockConfig,
    q: &mut CudaSlice<u8>,
    scales: &mut CudaSlice<f32>,
) -> Result<()> {
    let params = cfg.params()?;
    gpu.check_context("w", w.context())?;
    gpu.check_context("q", q.context())?;
    gpu.check_context("scales", scales.context())?;
    let (rows, cols) = (shape.rows() as u64, shape.cols() as u64);
    let (bn, bk) = (cfg.block_rows as u64, cfg.block_cols as u64);
    let (block_rows, block_cols) = (rows.div_ceil(bn), cols.div_ceil(bk));
    shape.check_buffer("w", w.len())?;
    if q.len() as u64 != rows * cols {
        return Err(QuantError::BufferLength { what: "q", expected: rows * cols, actual: q.len() as u64 });
    }
    if scales.len() as u64 != block_rows * block_cols {
        return Err(QuantError::BufferLength {
            what: "scales",
            expected: block_rows * block_cols,
            actual: scales.len() as u64,
        });
    }
    if rows == 0 || cols == 0 {
        return Ok(());
    }
    let name = format!("block_quant_{}_{}", T::DTYPE.name(), params.format().name());
    let function = gpu.function(&name)?;
    let config = launch::block(block_rows, block_cols)?;
    let row_stride = shape.row_stride() as u64;
    let mode = params.mode() as u32;
    let (eps, fp8_max) = (params.eps(), params.fp8_max());
    let mut builder = gpu.stream().launch_builder(&function);
    builder
        .arg(w)
        .arg(q)
        .arg(scales)
        .arg(&rows)
        .arg(&cols)
        .arg(&row_stride)
        .arg(&bn)
        .arg(&bk)
        .arg(&eps)
        .arg(&fp8_max)
        .arg(&mode);
    // SAFETY: the argument list matches `block_quant_*` in
    // quant_kernels::kernels::block, and the buffer lengths were checked above.
    unsafe { builder.launch(config) }?;
    Ok(())
}
