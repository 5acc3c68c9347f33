//! Host side of `per_token_group_quant_fp8` on the GPU.

use super::{launch, Gpu};
use crate::config::TokenGroupConfig;
use crate::element::Element;
use crate::error::{QuantError, Result};
use crate::shape::MatrixShape;
use cudarc::driver::{CudaSlice, PushKernelArg};

/// Chunks per thread forced on every launch (2 or 4; anything else: chosen
/// by problem size). A hook for the tests, which run both kernels on the
/// same cases: see [`super::Gpu::set_token_group_chunks`].
pub(crate) static CHUNKS_OVERRIDE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Queues the quantization of `x` on `gpu`'s stream. Arguments are checked
/// before anything is launched.
pub(crate) fn per_token_group_quant<T: Element>(
    gpu: &Gpu,
    x: &CudaSlice<T>,
    shape: MatrixShape,
    cfg: &TokenGroupConfig,
    q: &mut CudaSlice<u8>,
    scales: &mut CudaSlice<f32>,
) -> Result<()> {
    let params = cfg.params()?;
    gpu.check_context("x", x.context())?;
    gpu.check_context("q", q.context())?;
    gpu.check_context("scales", scales.context())?;
    let (rows, cols) = (shape.rows() as u64, shape.cols() as u64);
    let gs = cfg.group_size.get() as u64;
    let groups = cols.div_ceil(gs);
    shape.check_buffer("x", x.len())?;
    if q.len() as u64 != rows * cols {
        return Err(QuantError::BufferLength { what: "q", expected: rows * cols, actual: q.len() as u64 });
    }
    // Checked: M near u64::MAX (valid with K == 0) overflows the TMA rounding.
    let scale_len = cfg.layout.checked_len(rows, groups).ok_or(QuantError::TooLarge("scale buffer length"))?;
    if scales.len() as u64 != scale_len {
        return Err(QuantError::BufferLength { what: "scales", expected: scale_len, actual: scales.len() as u64 });
    }
    if rows == 0 || cols == 0 {
        return Ok(());
    }
    let resident = gpu.multiprocessor_count() as u64 * 1024;
    let chunks = match CHUNKS_OVERRIDE.load(std::sync::atomic::Ordering::Relaxed) {
        c @ (2 | 4) => c as u64,
        _ => launch::token_group_chunks(rows.saturating_mul(groups), gs, resident),
    };
    let wide = if chunks == quant_kernels::geometry::TOKEN_GROUP_CHUNKS { "" } else { "wide_" };
    let name = format!("token_group_{wide}quant_{}_{}_g{}", T::DTYPE.name(), params.format().name(), gs);
    let function = gpu.function(&name)?;
    let (mode, layout) = (params.mode() as u32, cfg.layout as u32);
    let config = launch::token_group(rows, groups, gs, chunks, layout)?;
    let row_stride = shape.row_stride() as u64;
    let (eps, fp8_max) = (params.eps(), params.fp8_max());
    let mut builder = gpu.stream().launch_builder(&function);
    builder
        .arg(x)
        .arg(q)
        .arg(scales)
        .arg(&rows)
        .arg(&cols)
        .arg(&row_stride)
        .arg(&eps)
        .arg(&fp8_max)
        .arg(&mode)
        .arg(&layout);
    // SAFETY: the argument list matches the kernel signature in
    // quant_kernels::kernels::token_group, and the buffer lengths were checked
    // above against what the kernel indexes.
    unsafe { builder.launch(config) }?;
    Ok(())
}
