//! The quantizer launches: one typed function per kernel family, and the
//! only `unsafe` launch code of the quantizers.
//!
//! Safety rests on `quant_kernels::abi`: the kernel's name and its entry
//! point are generated from one list, each family's signature is its
//! buffers followed by its `#[repr(C)]` parameter block, and the element
//! type of the input buffer picks the kernel (`T::DTYPE`), so a launch
//! cannot pair a buffer with a kernel of another type.

use super::Gpu;
use crate::element::Element;
use crate::error::Result;
use cudarc::driver::{CudaSlice, DeviceRepr, LaunchConfig, PushKernelArg};
use quant_kernels::abi::{
    BlockKernel, BlockParams, CodecKernel, CodecOp, CodecParams, KernelParams, TokenGroupKernel, TokenGroupParams,
    TokenGroupVariant,
};
use quant_kernels::Fp8Format;

/// A parameter block as a kernel argument (cudarc copies its bytes).
#[repr(transparent)]
#[derive(Clone, Copy)]
pub(super) struct ByValue<P>(pub(super) P);

// SAFETY: `KernelParams` types are `#[repr(C)]` plain data (no pointers),
// the layout the kernel reads its by-value parameter with.
unsafe impl<P: KernelParams> DeviceRepr for ByValue<P> {}

/// Queues the token-group kernel of tiling `variant`. The caller has
/// checked every buffer against `params` (see `TokenGroupPlan`), picked a
/// variant that has a kernel for `T` and `group_size`, and sized `config`
/// for it.
#[allow(clippy::too_many_arguments)]
pub(crate) fn token_group<T: Element>(
    gpu: &Gpu,
    format: Fp8Format,
    group_size: u64,
    variant: TokenGroupVariant,
    config: LaunchConfig,
    x: &CudaSlice<T>,
    q: &mut CudaSlice<u8>,
    scales: &mut CudaSlice<f32>,
    params: TokenGroupParams,
) -> Result<()> {
    let kernel = TokenGroupKernel::new(T::DTYPE, format, group_size, variant)
        .ok_or(crate::QuantError::UnsupportedGroupSize(group_size as usize))?;
    let function = gpu.token_group_function(kernel)?;
    let params = ByValue(params);
    let mut builder = gpu.stream().launch_builder(function);
    builder.arg(x).arg(q).arg(scales).arg(&params);
    // SAFETY: the entry point takes `(x: *const T, q: *mut u8, scales: *mut
    // f32, TokenGroupParams)` (generated with its name from
    // `token_group_kernels!`); the buffers hold what `params` says (checked
    // by the caller).
    unsafe { builder.launch(config) }?;
    Ok(())
}

/// Queues a block-quant kernel. The caller has checked every buffer against
/// `params` (see `BlockPlan`) and allows `params.stages > 0` only where the
/// kernel's staged path applies, with the shared memory in `config`.
pub(crate) fn block<T: Element>(
    gpu: &Gpu,
    format: Fp8Format,
    config: LaunchConfig,
    w: &CudaSlice<T>,
    q: &mut CudaSlice<u8>,
    scales: &mut CudaSlice<f32>,
    params: BlockParams,
) -> Result<()> {
    let kernel = BlockKernel::new(T::DTYPE, format);
    let max_shared = gpu.max_shared_per_cta();
    let function = gpu.block_function(kernel, |f| {
        // Its shared-memory stages are sized per launch, up to this.
        use cudarc::driver::sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES as MAX_SMEM;
        Ok(f.set_attribute(MAX_SMEM, max_shared as i32)?)
    })?;
    let params = ByValue(params);
    let mut builder = gpu.stream().launch_builder(function);
    builder.arg(w).arg(q).arg(scales).arg(&params);
    // SAFETY: the entry point takes `(w: *const T, q: *mut u8, scales: *mut
    // f32, BlockParams)` (generated with its name from `block_kernels!`);
    // the buffers hold what `params` says (checked by the caller).
    unsafe { builder.launch(config) }?;
    Ok(())
}

/// Queues an element-wise encode (`src` f32, `dst` codes) or decode (`src`
/// codes, `dst` f32) of `n` elements; both buffers hold `n` (checked by the
/// caller).
pub(crate) fn codec<A: DeviceRepr, B: DeviceRepr>(
    gpu: &Gpu,
    op: CodecOp,
    format: Fp8Format,
    config: LaunchConfig,
    src: &CudaSlice<A>,
    dst: &mut CudaSlice<B>,
    n: u64,
) -> Result<()> {
    let kernel = CodecKernel::new(op, format);
    let function = gpu.codec_function(kernel)?;
    let params = ByValue(CodecParams { n });
    let mut builder = gpu.stream().launch_builder(function);
    builder.arg(src).arg(dst).arg(&params);
    // SAFETY: the entry points take `(src, dst, CodecParams)` (generated
    // with their names from `codec_kernels!`); the caller passes f32 and
    // codes in the order `op` needs, each holding `n` elements.
    unsafe { builder.launch(config) }?;
    Ok(())
}

/// The launch of the benchmark's copy and read kernels over `bytes`.
#[cfg(feature = "bench")]
fn copy_launch(bytes: usize) -> Result<LaunchConfig> {
    use quant_kernels::geometry::{copy_ctas, COPY_THREADS};
    let ctas = u32::try_from(copy_ctas(bytes as u64))
        .ok()
        .filter(|&c| c <= i32::MAX as u32)
        .ok_or(crate::QuantError::TooLarge("copy grid"))?;
    Ok(LaunchConfig { grid_dim: (ctas, 1, 1), block_dim: (COPY_THREADS, 1, 1), shared_mem_bytes: 0 })
}

/// Queues the benchmark's SM copy (`quant_kernels::kernels::copy`) of the
/// first `bytes` bytes of `src` into `dst`.
#[cfg(feature = "bench")]
pub(crate) fn sm_copy(gpu: &Gpu, src: &CudaSlice<u8>, dst: &mut CudaSlice<u8>, bytes: usize) -> Result<()> {
    if bytes > src.len() || bytes > dst.len() {
        return Err(crate::QuantError::TooLarge("copy bytes"));
    }
    let config = copy_launch(bytes)?;
    let function = gpu.bench_function(super::BenchKernel::SmCopy)?;
    let params = ByValue(quant_kernels::abi::CopyParams { bytes: bytes as u64 });
    let mut builder = gpu.stream().launch_builder(function);
    builder.arg(src).arg(dst).arg(&params);
    // SAFETY: the entry point takes `(src: *const u8, dst: *mut u8,
    // CopyParams)`; both buffers hold `bytes` bytes (checked above), are
    // distinct allocations (one borrowed mutably) and 256-byte aligned (CUDA
    // allocations); the grid covers every 16-byte piece.
    unsafe { builder.launch(config) }?;
    Ok(())
}

/// Queues the benchmark's SM read (`quant_kernels::kernels::copy`) of the
/// first `bytes` bytes of `src`: `sm_copy`'s grid and loads, no stores
/// (`dst`, one word, is written only in the kernel's 2^-32 case).
#[cfg(feature = "bench")]
pub(crate) fn sm_read(gpu: &Gpu, src: &CudaSlice<u8>, dst: &mut CudaSlice<u32>, bytes: usize) -> Result<()> {
    if bytes > src.len() {
        return Err(crate::QuantError::TooLarge("read bytes"));
    }
    if dst.is_empty() {
        return Err(crate::QuantError::ShapeMismatch("the read kernel's dst holds no word".into()));
    }
    let config = copy_launch(bytes)?;
    let function = gpu.bench_function(super::BenchKernel::SmRead)?;
    let params = ByValue(quant_kernels::abi::CopyParams { bytes: bytes as u64 });
    let mut builder = gpu.stream().launch_builder(function);
    builder.arg(src).arg(dst).arg(&params);
    // SAFETY: the entry point takes `(src: *const u8, dst: *mut u32,
    // CopyParams)`; `src` holds `bytes` bytes and `dst` a word (checked
    // above), both CUDA allocations (256-byte aligned); the grid covers
    // every 16-byte piece.
    unsafe { builder.launch(config) }?;
    Ok(())
}

/// Queues the benchmark's empty kernel (one warp): the launch floor.
#[cfg(feature = "bench")]
pub(crate) fn empty(gpu: &Gpu) -> Result<()> {
    let function = gpu.bench_function(super::BenchKernel::Empty)?;
    let config = LaunchConfig { grid_dim: (1, 1, 1), block_dim: (32, 1, 1), shared_mem_bytes: 0 };
    // SAFETY: the entry point takes no parameters and touches no memory.
    unsafe { gpu.stream().launch_builder(function).launch(config) }?;
    Ok(())
}

#[cfg(all(test, feature = "bench"))]
mod tests {
    use super::copy_launch;
    use quant_kernels::geometry::{COPY_PIECES_PER_THREAD, COPY_THREADS};

    #[test]
    fn copy_grid_covers_every_whole_piece_with_no_idle_cta() {
        let per_cta = COPY_PIECES_PER_THREAD as usize * COPY_THREADS as usize * 16;
        for bytes in [0, 1, 15, 16, per_cta - 1, per_cta, per_cta + 1, 3 * per_cta + 16, 1 << 30] {
            let c = copy_launch(bytes).unwrap();
            let ctas = c.grid_dim.0 as usize;
            assert_eq!((c.grid_dim.1, c.grid_dim.2, c.block_dim.0), (1, 1, COPY_THREADS), "{bytes}");
            assert!(ctas * per_cta >= bytes, "{bytes}: {ctas} CTAs leave pieces");
            assert!(ctas == 1 || (ctas - 1) * per_cta < bytes, "{bytes}: {ctas} CTAs, one idle");
        }
    }
}
