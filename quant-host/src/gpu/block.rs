//! Host side of `per_block_quant_fp8` on the GPU.

use super::{launch, Gpu};
use crate::config::BlockConfig;
use crate::element::Element;
use crate::error::{QuantError, Result};
use crate::shape::MatrixShape;
use cudarc::driver::{CudaSlice, DevicePtr, PushKernelArg};

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
    let row_stride = shape.row_stride() as u64;
    let elem_bytes = std::mem::size_of::<T>() as u64;
    let (w_ptr, w_guard) = w.device_ptr(gpu.stream());
    drop(w_guard);
    let stages = launch::block_stages(
        elem_bytes,
        // Whole-tile blocks whose chunks start 16-byte aligned.
        bn <= launch::BLOCK_QUANT_TILE && bk <= launch::BLOCK_QUANT_TILE && bk.is_multiple_of(8),
        w_ptr.is_multiple_of(16) && (row_stride * elem_bytes).is_multiple_of(16),
        gpu.shared_per_cta(launch::BLOCK_QUANT_CTAS_PER_SM) as u64,
    );
    let stage_bytes = quant_kernels::geometry::block_quant_stage_bytes(elem_bytes);
    let config = launch::block(block_rows, block_cols, gpu.multiprocessor_count() as u64, stages, stage_bytes)?;
    let stages = stages as u32;
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
        .arg(&mode)
        .arg(&stages);
    // SAFETY: the argument list matches `block_quant_*` in
    // quant_kernels::kernels::block, and the buffer lengths were checked
    // above; `stages > 0` only for one-tile blocks 8-element aligned in
    // 16-byte aligned rows, with the shared memory for them (within the
    // opted-in limit).
    unsafe { builder.launch(config) }?;
    Ok(())
}
