//! GPU launches of the fused quantizers (`quant_kernels::kernels::fused`).
//!
//! Safety rests on `quant_kernels::fused_abi`: each entry point's name comes
//! from the list that generates it, its signature is its buffers followed by
//! its `#[repr(C)]` parameter block, and the input's element type picks the
//! kernel (`T::DTYPE`). Every buffer is checked against the plan first.

use super::launch::persistent;
use super::Gpu;
use crate::element::Element;
use crate::error::{QuantError, Result};
use crate::fused::{FusedGroupPlan, RmsNormPlan, ScaleElem};
use cudarc::driver::{CudaSlice, DeviceRepr, LaunchConfig, PushKernelArg};
use quant_kernels::abi::{Kernel, KernelParams};
use quant_kernels::fused::{rms_geometry, rms_shared_bytes, RMS_MAX_COLS};
use quant_kernels::fused_abi::{
    FusedGroupKernel, FusedGroupParams, FusedMask, RmsNormKernel, RmsNormParams, MASK_COMPACT_MAX_EXPERTS,
};
use quant_kernels::geometry::ELEMS_PER_CHUNK;

/// Dynamic shared memory a launch may use without raising the function's limit.
const DEFAULT_MAX_SMEM: u32 = 48 * 1024;

// The RMS kernel's largest CTA (`fused::RMS_MAX_COLS`) fits the default
// limit, so its launches never raise it.
const _: () = assert!(rms_shared_bytes(rms_geometry(RMS_MAX_COLS).unwrap().0) <= DEFAULT_MAX_SMEM);
// Nor do the masked per-group launches' running sums.
const _: () = assert!(FusedMask::Compact.shared_bytes(MASK_COMPACT_MAX_EXPERTS) <= DEFAULT_MAX_SMEM);

/// A parameter block as a kernel argument (cudarc copies its bytes).
#[repr(transparent)]
#[derive(Clone, Copy)]
struct ByValue<P>(P);

// SAFETY: `KernelParams` types are `#[repr(C)]` plain data (no pointers).
unsafe impl<P: KernelParams> DeviceRepr for ByValue<P> {}

/// The checks every fused launch makes first: the scale element type
/// matches the plan (u32 words for packed UE8M0, f32 otherwise), and the
/// input and both outputs live on `gpu`'s context.
fn check_buffers<T: Element, S: ScaleElem>(
    gpu: &Gpu,
    packed: bool,
    x: &CudaSlice<T>,
    q: &CudaSlice<u8>,
    scales: &CudaSlice<S>,
) -> Result<()> {
    if S::PACKED != packed {
        return Err(QuantError::ShapeMismatch("the scales are u32 for a packed UE8M0 plan, f32 otherwise".into()));
    }
    gpu.check_context("x", x.context())?;
    gpu.check_context("q", q.context())?;
    gpu.check_context("scales", scales.context())
}

/// Queues a per-group fused plan (`Quant` masked, `SiluMul` dense or
/// masked) on `gpu`'s stream. A masked `masked_m` entry above the expert's
/// rows is clamped by the kernel (the CPU path rejects it): checking it here
/// would need a synchronous copy from the device.
pub(crate) fn fused_group<T: Element, S: ScaleElem>(
    gpu: &Gpu,
    plan: &FusedGroupPlan,
    x: &CudaSlice<T>,
    masked_m: Option<&CudaSlice<u32>>,
    q: &mut CudaSlice<u8>,
    scales: &mut CudaSlice<S>,
) -> Result<()> {
    check_buffers(gpu, plan.packed(), x, q, scales)?;
    if let Some(m) = masked_m {
        gpu.check_context("masked_m", m.context())?;
    }
    plan.check_buffers(x.len(), masked_m.map(|m| m.len()), q.len(), scales.len())?;
    if plan.packed() && !scales.is_empty() {
        // The kernel writes the valid rows' bytes only; the rest are 0.
        gpu.stream().memset_zeros(scales)?;
    }
    if plan.is_empty() {
        return Ok(());
    }
    let cfg = plan.config();
    let params = plan.params();
    let gs = cfg.group_size.get() as u64;
    let (rows, cols) = (plan.codes_shape().rows() as u64, plan.codes_shape().cols() as u64);
    let mask = FusedMask::for_launch(plan.masked(), plan.experts() as u64);
    let p = FusedGroupParams {
        rows,
        cols,
        row_stride: plan.input().row_stride() as u64,
        expert_rows: plan.expert_rows() as u64,
        group_size: gs as u32,
        masked: mask.as_u32(),
        eps: params.eps(),
        fp8_max: params.fp8_max(),
        mode: params.mode().as_u32(),
        layout: plan.scale_geometry().kernel_layout(),
    };
    let kernel = FusedGroupKernel::new(plan.op(), T::DTYPE, params.format())
        .ok_or_else(|| QuantError::ShapeMismatch("no per-group kernel for this operation".into()))?;
    let threads = rows
        .checked_mul(cols.div_ceil(gs))
        .and_then(|g| g.checked_mul(gs / (kernel.chunks() * ELEMS_PER_CHUNK)))
        .filter(|&t| t <= i32::MAX as u64 && cols <= i32::MAX as u64)
        .ok_or(QuantError::TooLarge("thread count"))?;
    // The kernel loops over its share of the lanes (a grid-stride loop).
    let mut config = persistent(threads, kernel.block_threads(), gpu.multiprocessor_count() as u64)?;
    config.shared_mem_bytes = mask.shared_bytes(plan.experts() as u64);
    let function = gpu.function(kernel.name())?;
    let p = ByValue(p);
    let mut builder = gpu.stream().launch_builder(&function);
    builder.arg(x).arg(q).arg(scales);
    // Without masked_m the kernel never reads its pointer: any device
    // pointer will do, and x is one.
    match masked_m {
        Some(m) => builder.arg(m),
        None => builder.arg(x),
    };
    builder.arg(&p);
    // SAFETY: the entry point takes `(x: *const T, q: *mut u8, scales: *mut
    // f32 (bytes when packed), masked_m: *const u32, FusedGroupParams)` (generated with its name
    // from `fused_kernels!`); the buffers hold what `p` says (checked
    // above), masked_m one u32 per expert when `p.masked` is a mask, and
    // the dynamic shared memory is `FusedMask::shared_bytes` of that mask
    // (the running sums `FusedMask::Compact` builds).
    unsafe { builder.launch(config) }?;
    Ok(())
}

/// Queues an RMS plan on `gpu`'s stream: one CTA per row.
pub(crate) fn rms_norm<T: Element, S: ScaleElem>(
    gpu: &Gpu,
    plan: &RmsNormPlan,
    x: &CudaSlice<T>,
    residual: Option<&mut CudaSlice<T>>,
    weight: &CudaSlice<T>,
    q: &mut CudaSlice<u8>,
    scales: &mut CudaSlice<S>,
) -> Result<()> {
    check_buffers(gpu, plan.packed(), x, q, scales)?;
    gpu.check_context("weight", weight.context())?;
    if let Some(r) = &residual {
        gpu.check_context("residual", r.context())?;
    }
    plan.check_buffers(x.len(), residual.as_ref().map(|r| r.len()), weight.len(), q.len(), scales.len())?;
    if plan.packed() && !scales.is_empty() {
        gpu.stream().memset_zeros(scales)?;
    }
    let quant = plan.quant();
    if quant.is_empty() {
        return Ok(());
    }
    let shape = quant.input();
    let params = quant.params();
    let (threads, slots) = plan.geometry();
    let p = RmsNormParams {
        rows: shape.rows() as u64,
        cols: shape.cols() as u64,
        row_stride: shape.row_stride() as u64,
        norm_eps: plan.norm_eps(),
        eps: params.eps(),
        fp8_max: params.fp8_max(),
        mode: params.mode().as_u32(),
        layout: plan.scale_geometry().kernel_layout(),
        group_size: quant.group_size().get() as u32,
        residual: residual.is_some() as u32,
        slots,
    };
    let grid =
        u32::try_from(shape.rows()).ok().filter(|&r| r <= i32::MAX as u32).ok_or(QuantError::TooLarge("grid size"))?;
    // The tree's partials (`fused::rms_shared_bytes`): at most 4 KB, within
    // the default limit (checked at compile time, `DEFAULT_MAX_SMEM`).
    let smem = rms_shared_bytes(threads);
    let config = LaunchConfig { grid_dim: (grid, 1, 1), block_dim: (threads, 1, 1), shared_mem_bytes: smem };
    let kernel = RmsNormKernel::new(T::DTYPE, params.format());
    let function = gpu.function(kernel.name())?;
    let p = ByValue(p);
    let mut builder = gpu.stream().launch_builder(&function);
    builder.arg(x);
    // Without a residual the kernel neither reads nor writes its pointer.
    match residual {
        Some(r) => builder.arg(r),
        None => builder.arg(x),
    };
    builder.arg(weight).arg(q).arg(scales).arg(&p);
    // SAFETY: the entry point takes `(x: *const T, residual: *mut T, weight:
    // *const T, q: *mut u8, scales: *mut f32, RmsNormParams)` (generated with
    // its name from `fused_kernels!`); the buffers hold what `p` says
    // (checked above); the CTA size and slots come from
    // `fused::rms_geometry` and the shared memory from
    // `fused::rms_shared_bytes`, as the kernel requires.
    unsafe { builder.launch(config) }?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::PtxArch;
    use quant_kernels::fused_abi::FUSED_ENTRIES;

    #[test]
    fn every_fused_entry_is_in_every_ptx_module() {
        for arch in [PtxArch::Sm80, PtxArch::Sm90, PtxArch::Sm90a] {
            for e in FUSED_ENTRIES {
                let entry = [".entry ", e.name(), "("].concat();
                assert!(arch.ptx().contains(&entry), "{} missing from the {arch:?} module", e.name());
            }
        }
    }
}
