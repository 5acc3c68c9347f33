//! Host side of `per_block_quant_fp8` on the GPU.

use super::{kernel, launch, Gpu};
use crate::element::Element;
use crate::error::Result;
use crate::plan::BlockPlan;
use cudarc::driver::{CudaSlice, DevicePtr};
use quant_kernels::abi::BlockParams;

/// Queues the block quantization of `w` (of `shape`) on `gpu`'s stream,
/// after checking `cfg` and every buffer.
#[cfg(feature = "bench")] // bench/e2e.rs launches with a config
pub(crate) fn per_block_quant<T: Element>(
    gpu: &Gpu,
    w: &CudaSlice<T>,
    shape: crate::shape::MatrixShape,
    cfg: &crate::config::BlockConfig,
    q: &mut CudaSlice<u8>,
    scales: &mut CudaSlice<f32>,
) -> Result<()> {
    per_block_quant_planned(gpu, &BlockPlan::new(cfg, shape)?, w, q, scales)
}

/// Queues the block quantization of `w` on `gpu`'s stream. The plan holds
/// the validated config and sizes; the buffers are checked against it
/// before anything is launched.
pub(crate) fn per_block_quant_planned<T: Element>(
    gpu: &Gpu,
    plan: &BlockPlan,
    w: &CudaSlice<T>,
    q: &mut CudaSlice<u8>,
    scales: &mut CudaSlice<f32>,
) -> Result<()> {
    gpu.check_context("w", w.context())?;
    gpu.check_context("q", q.context())?;
    gpu.check_context("scales", scales.context())?;
    plan.check_buffers(w.len(), q.len(), scales.len())?;
    if plan.is_empty() {
        return Ok(());
    }
    let shape = plan.input();
    let (rows, cols, row_stride) = (shape.rows() as u64, shape.cols() as u64, shape.row_stride() as u64);
    let (bn, bk) = (plan.block().0 as u64, plan.block().1 as u64);
    let grid = plan.scale_shape();
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
    let config =
        launch::block(grid.rows() as u64, grid.cols() as u64, gpu.multiprocessor_count() as u64, stages, stage_bytes)?;
    let params = plan.params();
    let p = BlockParams {
        rows,
        cols,
        row_stride,
        bn,
        bk,
        blocks_per_row: grid.cols() as u64,
        blocks: grid.rows() as u64 * grid.cols() as u64,
        eps: params.eps(),
        fp8_max: params.fp8_max(),
        mode: params.mode().as_u32(),
        // At most MAX_STAGES.
        stages: stages as u32,
    };
    // `stages > 0` only for one-tile blocks 8-element aligned in 16-byte
    // aligned rows, with the shared memory for them in `config` (within the
    // opted-in limit): what the kernel's staged path needs.
    kernel::block(gpu, params.format(), config, w, q, scales, p)
}
