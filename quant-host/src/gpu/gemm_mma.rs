//! The `mma.sync` GEMM launches: one typed function per kernel family (the
//! tiled kernel and the decode-sized one), and the only `unsafe` launch
//! code of both.
//!
//! Safety rests on `quant_kernels::gemm_contract`: each kernel's name and
//! its entry point are generated from one list, both families take their
//! buffers followed by one `GemmMmaParams`, and the element type of C picks
//! the kernel ([`GpuGemmOut::out`]), so a launch cannot pair an output
//! buffer with a kernel of another type.

use super::gemm::{push_c, GpuGemmOut, SplitScratch};
use super::kernel::ByValue;
use super::Gpu;
use crate::error::{QuantError, Result};
use cudarc::driver::sys::CUresult;
use cudarc::driver::{CudaFunction, CudaSlice, DevicePtrMut, DriverError, LaunchArgs, LaunchConfig, PushKernelArg};
use quant_kernels::abi::Kernel;
use quant_kernels::gemm_contract::{GemmDecodeKernel, GemmMmaParams, GemmTiledKernel};
use quant_kernels::geometry::{GEMM_SMALL_M, GEMM_SMALL_N};
use quant_kernels::Fp8Format;

/// Every `mma.sync` GEMM kernel of the loaded module, looked up once per
/// `Gpu` (a GEMM call does no name lookup).
pub(crate) struct MmaFunctions {
    tiled: Vec<(GemmTiledKernel, CudaFunction)>,
    decode: Vec<(GemmDecodeKernel, CudaFunction)>,
}

impl MmaFunctions {
    /// Looks up every entry of the contract's tables and raises the tiled
    /// kernels' dynamic shared-memory limit (they need more than 48 KB).
    pub(crate) fn load(gpu: &Gpu) -> Result<Self> {
        use cudarc::driver::sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES as MAX_SMEM;
        let mut tiled = Vec::with_capacity(GemmTiledKernel::ALL.len());
        for &k in GemmTiledKernel::ALL {
            let f = gpu.function(k.name())?;
            f.set_attribute(MAX_SMEM, super::launch::GEMM_SMEM_BYTES as i32)?;
            tiled.push((k, f));
        }
        let decode = GemmDecodeKernel::ALL.iter().map(|&k| Ok((k, gpu.function(k.name())?))).collect::<Result<_>>()?;
        Ok(Self { tiled, decode })
    }
}

/// The function of `kernel` in `table`. Every entry of the contract's table
/// is loaded, so a miss means the module lacks it: the driver's own answer.
fn lookup<K: Copy + PartialEq>(table: &[(K, CudaFunction)], kernel: K) -> Result<&CudaFunction> {
    table
        .iter()
        .find(|(k, _)| *k == kernel)
        .map(|(_, f)| f)
        .ok_or(QuantError::Cuda(DriverError(CUresult::CUDA_ERROR_NOT_FOUND)))
}

/// A and B with their scales: the leading buffers of both families.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Operands<'a> {
    /// A `[m, k]` codes.
    pub a: &'a CudaSlice<u8>,
    /// A's scales, in the launch's layout.
    pub a_scales: &'a CudaSlice<f32>,
    /// B `[n, k]` codes.
    pub b: &'a CudaSlice<u8>,
    /// B's scales `[ceil(n / 128), ceil(k / 128)]`.
    pub b_scales: &'a CudaSlice<f32>,
}

/// A launch of `function` with the buffers both families take first:
/// `(a, a_scales, b, b_scales, c)`.
fn launch_args<'a>(
    gpu: &'a Gpu,
    function: &'a CudaFunction,
    ops: Operands<'a>,
    c: &'a mut GpuGemmOut<'_>,
) -> LaunchArgs<'a> {
    let mut builder = gpu.stream().launch_builder(function);
    builder.arg(ops.a).arg(ops.a_scales).arg(ops.b).arg(ops.b_scales);
    push_c(&mut builder, c);
    builder
}

/// Queues the tiled kernel for `format` and C's element type. The caller
/// has checked every buffer against `params` and sized `config` with
/// `launch::gemm_main`.
pub(crate) fn tiled(
    gpu: &Gpu,
    functions: &MmaFunctions,
    format: Fp8Format,
    config: LaunchConfig,
    ops: Operands<'_>,
    c: &mut GpuGemmOut<'_>,
    params: GemmMmaParams,
) -> Result<()> {
    let function = lookup(&functions.tiled, GemmTiledKernel::new(format, c.out()))?;
    let params = ByValue(params);
    let mut builder = launch_args(gpu, function, ops, c);
    builder.arg(&params);
    // SAFETY: the entry point takes `(a, a_scales, b, b_scales, c,
    // GemmMmaParams)` (generated with its name from `gemm_mma_kernels!`),
    // with C of the type its name says; every buffer holds what `params`
    // says (checked by the caller).
    unsafe { builder.launch(config) }?;
    Ok(())
}

/// Queues the decode-sized kernel (M <= 16) for `format` and C's element
/// type, split over `config.grid_dim.1` CTAs along K, with `scratch` (held
/// locked by the caller) as the split's workspace. The caller has checked
/// every buffer against `params` and sized `config` with
/// `launch::gemm_small`; a split without a large enough workspace is an
/// error, not a launch.
#[allow(clippy::too_many_arguments)]
pub(crate) fn decode(
    gpu: &Gpu,
    functions: &MmaFunctions,
    format: Fp8Format,
    config: LaunchConfig,
    ops: Operands<'_>,
    c: &mut GpuGemmOut<'_>,
    scratch: Option<&mut SplitScratch>,
    params: GemmMmaParams,
) -> Result<()> {
    let stream = gpu.stream();
    let function = lookup(&functions.decode, GemmDecodeKernel::new(format, c.out()))?;
    let mut builder = launch_args(gpu, function, ops, c);
    // Null workspace pointers when the launch is not split (the kernel
    // touches them only with gridDim.y > 1).
    let splits = config.grid_dim.1 as u64;
    let ((ws, tickets), guards) = match scratch.filter(|_| splits > 1) {
        Some(s) => {
            let n = params.n as u64;
            let partials = splits.saturating_mul(GEMM_SMALL_M as u64).saturating_mul(n);
            if (s.partials.len() as u64) < partials || (s.tickets.len() as u64) < n.div_ceil(GEMM_SMALL_N as u64) {
                return Err(QuantError::ShapeMismatch("decode GEMM split workspace smaller than the split".into()));
            }
            let (p, g1) = s.partials.device_ptr_mut(stream);
            let (t, g2) = s.tickets.device_ptr_mut(stream);
            ((p, t), Some((g1, g2)))
        }
        None if splits > 1 => {
            return Err(QuantError::ShapeMismatch("decode GEMM split without a workspace".into()));
        }
        None => ((0u64, 0u64), None),
    };
    let params = ByValue(params);
    builder.arg(&ws).arg(&tickets).arg(&params);
    // SAFETY: the entry point takes `(a, a_scales, b, b_scales, c, ws,
    // tickets, GemmMmaParams)` (generated with its name from
    // `gemm_mma_kernels!`), with C of the type its name says; every buffer
    // holds what `params` says with M <= 16 (checked by the caller); when
    // split, the workspace holds splits * 16 * N f32 and a ticket per tile
    // (checked above; tickets are zero between launches), else both
    // pointers are null and unused.
    unsafe { builder.launch(config) }?;
    drop(guards);
    Ok(())
}
