//! Host side of `per_token_group_quant_fp8` on the GPU.

use super::{kernel, launch, Gpu};
use crate::element::Element;
use crate::error::Result;
use crate::plan::TokenGroupPlan;
use cudarc::driver::CudaSlice;
use quant_kernels::abi::{TokenGroupKernel, TokenGroupParams, TokenGroupVariant};

/// Which token-group kernel a [`Gpu`] launches: the one the problem picks
/// (the default), or one tiling forced, for the tests that run them all on
/// the same cases (see [`Gpu::with_token_group_chunks`]).
#[doc(hidden)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TokenGroupChunks {
    /// Chosen by the problem (`launch::token_group_variant`).
    #[default]
    BySize,
    /// The 2-chunk kernel.
    Two,
    /// The 4-chunk ("wide") kernel.
    Four,
    /// The row kernel (4 chunks, a warp along one row) wherever one exists
    /// (16-bit input, groups of 64 or 128), whatever the alignment and
    /// layout; the wide kernel elsewhere.
    Row,
}

/// Queues the quantization of `x` (of `shape`) on `gpu`'s stream, after
/// checking `cfg` and every buffer.
#[cfg(feature = "bench")] // bench/e2e.rs launches with a config
pub(crate) fn per_token_group_quant<T: Element>(
    gpu: &Gpu,
    x: &CudaSlice<T>,
    shape: crate::shape::MatrixShape,
    cfg: &crate::config::TokenGroupConfig,
    q: &mut CudaSlice<u8>,
    scales: &mut CudaSlice<f32>,
) -> Result<()> {
    per_token_group_quant_planned(gpu, &TokenGroupPlan::new(cfg, shape)?, x, q, scales)
}

/// Queues the quantization of `x` on `gpu`'s stream. The plan holds the
/// validated config and sizes; the buffers are checked against it before
/// anything is launched. The kernel writes every element of `q` and
/// `scales` (the TMA layout's padding rows as zeros), whatever they held:
/// `Device` allocates them unset.
pub(crate) fn per_token_group_quant_planned<T: Element>(
    gpu: &Gpu,
    plan: &TokenGroupPlan,
    x: &CudaSlice<T>,
    q: &mut CudaSlice<u8>,
    scales: &mut CudaSlice<f32>,
) -> Result<()> {
    gpu.check_context("x", x.context())?;
    gpu.check_context("q", q.context())?;
    gpu.check_context("scales", scales.context())?;
    plan.check_buffers(x.len(), q.len(), scales.len())?;
    if plan.is_empty() {
        return Ok(());
    }
    let shape = plan.input();
    let (rows, cols, gs) = (shape.rows() as u64, shape.cols() as u64, plan.group_size().get() as u64);
    let params = plan.params();
    let problem = launch::TokenGroupProblem {
        input: T::DTYPE,
        format: params.format(),
        rows,
        cols,
        row_stride: shape.row_stride() as u64,
        group_size: gs,
        layout: plan.layout(),
        resident_threads: gpu.multiprocessor_count() as u64 * 1024,
    };
    let variant = match gpu.token_group_chunks() {
        TokenGroupChunks::BySize => launch::token_group_variant(&problem),
        TokenGroupChunks::Two => TokenGroupVariant::Narrow,
        TokenGroupChunks::Four => TokenGroupVariant::Wide,
        TokenGroupChunks::Row
            if TokenGroupKernel::new(T::DTYPE, params.format(), gs, TokenGroupVariant::Row).is_some() =>
        {
            TokenGroupVariant::Row
        }
        TokenGroupChunks::Row => TokenGroupVariant::Wide,
    };
    let p = TokenGroupParams {
        rows,
        cols,
        row_stride: shape.row_stride() as u64,
        eps: params.eps(),
        fp8_max: params.fp8_max(),
        mode: params.mode().as_u32(),
        layout: plan.layout().as_u32(),
    };
    let config = launch::token_group(rows, cols, gs, variant, p.layout)?;
    kernel::token_group(gpu, params.format(), gs, variant, config, x, q, scales, p)
}
