//! Host side of `mm_fp8_blockscale` on the GPU: checks, kernel choice, launch.
//!
//! Two kernels (see `quant_kernels::kernels::gemm`): the tiled tensor-core
//! GEMM, and for M <= 16 a decode-sized kernel that streams B once and, when
//! N alone cannot fill the GPU, splits K across CTAs with a per-`Gpu`
//! workspace (the last CTA of each column tile reduces the partials in a
//! fixed order, so results do not depend on scheduling).

use super::{launch, Gpu};
use crate::error::{QuantError, Result};
use crate::gemm::{GemmConfig, GemmShape, OutputType};
use cudarc::driver::{CudaSlice, DevicePtrMut, PushKernelArg};

/// The largest M the decode-sized kernel takes (`SMALL_M` in the kernel).
pub(crate) const SMALL_M: usize = 16;

/// C on the device, in the element type `GemmConfig::output` names.
#[derive(Debug)]
pub enum GpuGemmOut<'a> {
    /// bf16 output.
    Bf16(&'a mut CudaSlice<half::bf16>),
    /// f32 output.
    F32(&'a mut CudaSlice<f32>),
}

/// Scratch of the split-K decode kernel: partial sums and per-tile tickets.
/// The tickets are zero between launches (each launch's last CTA resets its
/// own), so the buffers are reused across calls on the `Gpu`'s stream.
#[derive(Debug)]
pub(crate) struct SplitScratch {
    partials: CudaSlice<f32>,
    tickets: CudaSlice<u32>,
}

/// Queues `C = mm_fp8_blockscale(A, B)` on `gpu`'s stream.
#[allow(clippy::too_many_arguments)]
pub(crate) fn mm_fp8_blockscale(
    gpu: &Gpu,
    a: &CudaSlice<u8>,
    a_scales: &CudaSlice<f32>,
    b: &CudaSlice<u8>,
    b_scales: &CudaSlice<f32>,
    shape: GemmShape,
    cfg: &GemmConfig,
    c: GpuGemmOut<'_>,
) -> Result<()> {
    gpu.check_context("a", a.context())?;
    gpu.check_context("a_scales", a_scales.context())?;
    gpu.check_context("b", b.context())?;
    gpu.check_context("b_scales", b_scales.context())?;
    let (m, n, k) = (shape.m(), shape.n(), shape.k());
    check_len("a", m as u64 * k as u64, a.len())?;
    check_len("b", n as u64 * k as u64, b.len())?;
    check_len("a_scales", shape.checked_a_scales_len(cfg.a_scale_layout)?, a_scales.len())?;
    check_len("b_scales", shape.b_scales_len() as u64, b_scales.len())?;
    let out = match (&c, cfg.output) {
        (GpuGemmOut::Bf16(s), OutputType::Bf16) => {
            gpu.check_context("c", s.context())?;
            check_len("c", m as u64 * n as u64, s.len())?;
            "bf16"
        }
        (GpuGemmOut::F32(s), OutputType::F32) => {
            gpu.check_context("c", s.context())?;
            check_len("c", m as u64 * n as u64, s.len())?;
            "f32"
        }
        _ => return Err(QuantError::ShapeMismatch("output buffer type differs from cfg.output".into())),
    };
    if m == 0 || n == 0 {
        return Ok(());
    }
    // The kernels take the dimensions as u32 (and grid sizes must fit).
    let dim = |v: usize, what| u32::try_from(v).ok().filter(|&v| v < u32::MAX - 256).ok_or(QuantError::TooLarge(what));
    let (m32, n32, k32) = (dim(m, "M")?, dim(n, "N")?, dim(k, "K")?);
    let layout = cfg.a_scale_layout as u32;
    let format = cfg.format.name();
    let stream = gpu.stream();

    if m <= SMALL_M {
        let name = format!("gemm_small_{format}_{out}");
        let function = gpu.function(&name)?;
        let sms = gpu.multiprocessor_count()? as u64;
        let (config, splits) = launch::gemm_small(n as u64, shape.k_blocks() as u64, sms)?;
        let mut scratch = gpu.gemm_scratch();
        let tiles = n.div_ceil(launch::GEMM_SMALL_N);
        if splits > 1 {
            let need_partials = splits as usize * SMALL_M * n;
            let fits = scratch.as_ref().is_some_and(|s| s.partials.len() >= need_partials && s.tickets.len() >= tiles);
            if !fits {
                // Dropping the old buffers is stream-ordered: launches still
                // queued that use them finish first.
                *scratch = Some(SplitScratch {
                    partials: stream.alloc_zeros::<f32>(need_partials)?,
                    tickets: stream.alloc_zeros::<u32>(tiles)?,
                });
            }
        }
        let mut builder = stream.launch_builder(&function);
        builder.arg(a).arg(a_scales).arg(b).arg(b_scales);
        let (c_bf16, c_f32);
        match c {
            GpuGemmOut::Bf16(s) => {
                c_bf16 = s;
                builder.arg(c_bf16);
            }
            GpuGemmOut::F32(s) => {
                c_f32 = s;
                builder.arg(c_f32);
            }
        }
        builder.arg(&m32).arg(&n32).arg(&k32).arg(&layout);
        let null = 0u64;
        let (ws_ptr, tk_ptr);
        let guards;
        match scratch.as_mut().filter(|_| splits > 1) {
            Some(s) => {
                let (p, g1) = s.partials.device_ptr_mut(stream);
                let (t, g2) = s.tickets.device_ptr_mut(stream);
                (ws_ptr, tk_ptr) = (p, t);
                guards = Some((g1, g2));
            }
            None => {
                (ws_ptr, tk_ptr) = (null, null);
                guards = None;
            }
        }
        builder.arg(&ws_ptr).arg(&tk_ptr);
        // SAFETY: the arguments match `gemm_small_*` in
        // quant_kernels::kernels::gemm; every buffer length was checked above
        // against what the kernel indexes; M <= 16; when splits > 1 the
        // workspace holds splits * 16 * N f32 and one zeroed ticket per tile.
        unsafe { builder.launch(config) }?;
        drop(guards);
        return Ok(());
    }

    let name = format!("gemm_fp8_{format}_{out}");
    let function = gpu.function(&name)?;
    let config = launch::gemm_main(m as u64, n as u64)?;
    function.set_attribute(
        cudarc::driver::sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
        config.shared_mem_bytes as i32,
    )?;
    let mut builder = stream.launch_builder(&function);
    builder.arg(a).arg(a_scales).arg(b).arg(b_scales);
    let (c_bf16, c_f32);
    match c {
        GpuGemmOut::Bf16(s) => {
            c_bf16 = s;
            builder.arg(c_bf16);
        }
        GpuGemmOut::F32(s) => {
            c_f32 = s;
            builder.arg(c_f32);
        }
    }
    builder.arg(&m32).arg(&n32).arg(&k32).arg(&layout);
    // SAFETY: the arguments match `gemm_fp8_*` in quant_kernels::kernels::gemm
    // and every buffer length was checked above against what the kernel indexes.
    unsafe { builder.launch(config) }?;
    Ok(())
}

fn check_len(what: &'static str, expected: u64, actual: usize) -> Result<()> {
    if actual as u64 != expected {
        return Err(QuantError::BufferLength { what, expected, actual: actual as u64 });
    }
    Ok(())
}
