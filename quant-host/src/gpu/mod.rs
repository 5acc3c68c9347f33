//! The CUDA backend: a context, a stream and the embedded PTX module.
//!
//! The driver is loaded dynamically: a binary built with this crate starts on
//! machines without CUDA, and [`Gpu::new`] returns [`QuantError::NoDriver`] there.

mod block;
mod codec;
pub(crate) mod fused;
pub(crate) mod gemm;
mod gemm_mma;
mod gemm_tail;
mod kernel;
mod launch;
mod pool;
mod ptx;
mod token_group;

#[cfg(feature = "bench")]
pub(crate) use block::per_block_quant;
pub(crate) use block::per_block_quant_planned;
pub(crate) use gemm::mm_fp8_blockscale;
pub use gemm::GpuGemmOut;
#[cfg(feature = "bench")]
pub(crate) use kernel::{empty as launch_empty, sm_copy as launch_sm_copy, sm_read as launch_sm_read};
pub use ptx::PtxArch;
#[cfg(feature = "bench")]
pub(crate) use token_group::per_token_group_quant;
pub(crate) use token_group::per_token_group_quant_planned;
#[doc(hidden)]
pub use token_group::TokenGroupChunks;

use crate::error::{QuantError, Result};
use cudarc::driver::{CudaContext, CudaFunction, CudaModule, CudaSlice, CudaStream};
use quant_kernels::abi::{BlockKernel, CodecKernel, Kernel, TokenGroupKernel};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// A CUDA device with its stream and the kernels loaded. Cheap to clone;
/// all clones launch on the same stream.
#[derive(Clone)]
pub struct Gpu {
    inner: Arc<Inner>,
    /// Which token-group kernel this handle launches (a testing option, see
    /// [`Gpu::with_token_group_chunks`]); per handle, so one test's choice
    /// never reaches another `Gpu`.
    token_group_chunks: TokenGroupChunks,
}

struct Inner {
    stream: Arc<CudaStream>,
    module: Arc<CudaModule>,
    arch: PtxArch,
    capability: (i32, i32),
    functions: Mutex<HashMap<String, CudaFunction>>,
    /// The quantizer kernels, looked up once each (see [`QuantizerFunctions`]).
    quantizer_functions: QuantizerFunctions,
    /// The benchmark's kernels, looked up once each (see [`BenchKernel`]).
    #[cfg(feature = "bench")]
    bench_functions: [OnceLock<CudaFunction>; BenchKernel::COUNT],
    /// Workspace of the split-K decode GEMM, grown on demand.
    gemm_scratch: Mutex<Option<gemm::SplitScratch>>,
    /// Where the allocating calls' outputs come from (`None` on a device
    /// without stream-ordered allocation, or where the driver refused to
    /// make a pool).
    pool: Option<pool::Pool>,
    /// Streaming multiprocessors, read once (grid sizing of the decode GEMM).
    multiprocessors: u32,
    /// Most dynamic shared memory a CTA may opt in to, in bytes.
    max_shared_per_cta: u32,
    /// Shared memory of one multiprocessor, in bytes.
    shared_per_sm: u32,
    /// The GEMM kernels, looked up once: a GEMM call does no name
    /// formatting, map lookup or driver attribute call.
    gemm_functions: OnceLock<gemm::GemmFunctions>,
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gpu")
            .field("ordinal", &self.ordinal())
            .field("capability", &self.inner.capability)
            .field("ptx", &self.inner.arch)
            .finish()
    }
}

/// Whether a CUDA driver library can be loaded on this machine.
pub fn driver_available() -> bool {
    // SAFETY: only probes for the shared library; loads nothing into a context.
    unsafe { cudarc::driver::sys::is_culib_present() }
}

impl Gpu {
    /// Opens device `ordinal` with a new stream of its own.
    ///
    /// Its context keeps cudarc's event tracking on (cudarc's default): every
    /// buffer allocated through it carries two events, and every launch
    /// waits on the events of its buffer arguments and records them again
    /// (an eager `per_token_group_quant_fp8` queues five waits and three
    /// records besides the kernel; an allocation creates two events and a
    /// free waits on and destroys them). That is what keeps the tensors safe
    /// to use on other streams and with other `Gpu`s of the device (which
    /// `check_context` accepts), through cudarc's safe API, so it is not
    /// turned off here: nothing stops safe code from making a second stream
    /// of this context (`gpu.stream().context().new_stream()`).
    ///
    /// A caller that keeps every buffer on one stream can drop that cost per
    /// call: make the context, call its `unsafe disable_event_tracking`
    /// before allocating anything, and pass a stream of it to
    /// [`Gpu::with_stream`]; ordering any other stream's use of those
    /// buffers is then the caller's (cudarc's safety contract). The
    /// benchmark runs that way (`fp8q bench`'s host-cost table has both).
    pub fn new(ordinal: usize) -> Result<Self> {
        if !driver_available() {
            return Err(QuantError::NoDriver);
        }
        let count = CudaContext::device_count()? as usize;
        if ordinal >= count {
            return Err(QuantError::NoDevice { ordinal, count });
        }
        let ctx = CudaContext::new(ordinal)?;
        let stream = ctx.new_stream()?;
        Self::with_stream(stream)
    }

    /// Uses a caller-provided stream: every launch of this `Gpu` is queued on
    /// it, asynchronously, so it orders with the caller's own work.
    pub fn with_stream(stream: Arc<CudaStream>) -> Result<Self> {
        let ctx = stream.context().clone();
        let capability = ctx.compute_capability()?;
        let arch = PtxArch::for_capability(capability)?;
        let module = ctx.load_module(arch.ptx().into())?;
        use cudarc::driver::sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT;
        let multiprocessors = ctx.attribute(CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)?.max(1) as u32;
        use cudarc::driver::sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN as OPTIN;
        let max_shared_per_cta = ctx.attribute(OPTIN)?.max(0) as u32;
        use cudarc::driver::sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_MULTIPROCESSOR as PER_SM;
        let shared_per_sm = ctx.attribute(PER_SM)?.max(0) as u32;
        // The pool only makes the allocating calls faster: where the driver
        // cannot make one, they allocate as cudarc does.
        let pool = pool::Pool::new(&stream).ok().flatten();
        Ok(Self {
            inner: Arc::new(Inner {
                stream,
                module,
                arch,
                capability,
                functions: Mutex::new(HashMap::new()),
                quantizer_functions: QuantizerFunctions::new(),
                #[cfg(feature = "bench")]
                bench_functions: Default::default(),
                gemm_scratch: Mutex::new(None),
                pool,
                multiprocessors,
                max_shared_per_cta,
                shared_per_sm,
                gemm_functions: OnceLock::new(),
            }),
            token_group_chunks: TokenGroupChunks::BySize,
        })
    }

    /// The stream every launch is queued on.
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.inner.stream
    }

    /// The device ordinal.
    pub fn ordinal(&self) -> usize {
        self.inner.stream.context().ordinal()
    }

    /// The device's compute capability `(major, minor)`.
    pub fn capability(&self) -> (i32, i32) {
        self.inner.capability
    }

    /// Which PTX module was loaded.
    pub fn ptx_arch(&self) -> PtxArch {
        self.inner.arch
    }

    /// The device's name, as the driver reports it.
    pub fn name(&self) -> Result<String> {
        Ok(self.inner.stream.context().name()?)
    }

    /// Waits until all work queued on the stream has finished.
    pub fn synchronize(&self) -> Result<()> {
        Ok(self.inner.stream.synchronize()?)
    }

    /// `len` elements of `T` on this device, unset, for an output that a
    /// kernel queued next writes in full: from the `Gpu`'s own pool, which
    /// keeps freed memory mapped for the next call (`gpu::pool`), or from
    /// cudarc's allocator where the device has no pool.
    ///
    /// # Safety
    /// The memory is unset: it must be written before it is read as `T`,
    /// or `T` must accept every bit pattern.
    pub(crate) unsafe fn alloc_unset<T: cudarc::driver::DeviceRepr>(&self, len: usize) -> Result<CudaSlice<T>> {
        match &self.inner.pool {
            // SAFETY: the pool was made for this stream's context; the
            // caller takes the unset memory.
            Some(pool) => unsafe { pool.alloc(&self.inner.stream, len) },
            // SAFETY: as above.
            None => Ok(unsafe { self.inner.stream.alloc::<T>(len) }?),
        }
    }

    /// Returns the memory that freed outputs of the allocating calls left
    /// in this `Gpu`'s pool to the device. The pool keeps it otherwise, so
    /// that the next call of the same size does not map fresh pages; call
    /// this after a phase that allocated much (it waits for nothing: memory
    /// whose free is still queued stays until a later trim).
    pub fn release_cached_memory(&self) -> Result<()> {
        match &self.inner.pool {
            Some(pool) => pool.trim(),
            None => Ok(()),
        }
    }

    /// Looks a kernel up by name, once per `Gpu` (the GEMMs, which cache
    /// their functions themselves, and the fused quantizers, which call it
    /// per launch: a lock and a hashed name each time).
    pub(crate) fn function(&self, name: &str) -> Result<CudaFunction> {
        let mut functions = self.inner.functions.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = functions.get(name) {
            return Ok(f.clone());
        }
        let f = self.inner.module.load_function(name)?;
        functions.insert(name.to_owned(), f.clone());
        Ok(f)
    }

    /// The token-group kernel `kernel`, loaded once per `Gpu`.
    pub(crate) fn token_group_function(&self, kernel: TokenGroupKernel) -> Result<&CudaFunction> {
        let slots = &self.inner.quantizer_functions.token_group;
        self.quantizer_function(slots, TokenGroupKernel::ALL, kernel, |_| Ok(()))
    }

    /// The block-quant kernel `kernel`, loaded (and `on_load` run on it)
    /// once per `Gpu`.
    pub(crate) fn block_function(
        &self,
        kernel: BlockKernel,
        on_load: impl FnOnce(&CudaFunction) -> Result<()>,
    ) -> Result<&CudaFunction> {
        self.quantizer_function(&self.inner.quantizer_functions.block, BlockKernel::ALL, kernel, on_load)
    }

    /// The codec kernel `kernel`, loaded once per `Gpu`.
    pub(crate) fn codec_function(&self, kernel: CodecKernel) -> Result<&CudaFunction> {
        self.quantizer_function(&self.inner.quantizer_functions.codec, CodecKernel::ALL, kernel, |_| Ok(()))
    }

    /// `kernel`'s slot of `slots` (one per entry of its family's list
    /// `all`), loaded on first use, then read without a lock.
    fn quantizer_function<'a, K: Kernel + PartialEq>(
        &'a self,
        slots: &'a [OnceLock<CudaFunction>],
        all: &[K],
        kernel: K,
        on_load: impl FnOnce(&CudaFunction) -> Result<()>,
    ) -> Result<&'a CudaFunction> {
        let name = kernel.name();
        let Some(slot) = slot_index(all, kernel).and_then(|i| slots.get(i)) else {
            // Unreachable: every kernel value is an entry of its list.
            return Err(cudarc::driver::DriverError(cudarc::driver::sys::cudaError_enum::CUDA_ERROR_NOT_FOUND).into());
        };
        self.load_once(slot, name, on_load)
    }

    /// The benchmark's kernel `kernel`, loaded once per `Gpu`.
    #[cfg(feature = "bench")]
    pub(crate) fn bench_function(&self, kernel: BenchKernel) -> Result<&CudaFunction> {
        let Some(slot) = self.inner.bench_functions.get(kernel as usize) else {
            // Unreachable: a slot per variant (`BenchKernel::ALL`, tested).
            return Err(cudarc::driver::DriverError(cudarc::driver::sys::cudaError_enum::CUDA_ERROR_NOT_FOUND).into());
        };
        self.load_once(slot, kernel.name(), |_| Ok(()))
    }

    /// The function in `slot`, loaded by `name` (and `on_load` run on it)
    /// on first use, then read without a lock.
    fn load_once<'a>(
        &'a self,
        slot: &'a OnceLock<CudaFunction>,
        name: &str,
        on_load: impl FnOnce(&CudaFunction) -> Result<()>,
    ) -> Result<&'a CudaFunction> {
        if let Some(f) = slot.get() {
            return Ok(f);
        }
        let f = self.inner.module.load_function(name)?;
        on_load(&f)?;
        Ok(slot.get_or_init(|| f))
    }

    /// Most dynamic shared memory a CTA may opt in to, in bytes.
    pub(crate) fn max_shared_per_cta(&self) -> u32 {
        self.inner.max_shared_per_cta
    }

    /// This `Gpu` (same device, stream and loaded kernels), launching
    /// `per_token_group_quant_fp8` with the kernel `chunks` names instead of
    /// the one the problem picks. A testing API: the tests check every
    /// tiling on the same cases (all compute the same bits), and `fp8q
    /// bench --token-kernel` times one; `self` and its other clones keep
    /// their own choice.
    #[doc(hidden)]
    pub fn with_token_group_chunks(&self, chunks: TokenGroupChunks) -> Gpu {
        Gpu { inner: Arc::clone(&self.inner), token_group_chunks: chunks }
    }

    /// The token-group kernel choice of this handle.
    pub(crate) fn token_group_chunks(&self) -> TokenGroupChunks {
        self.token_group_chunks
    }

    /// The number of streaming multiprocessors (for grid sizing), read once.
    pub(crate) fn multiprocessor_count(&self) -> u32 {
        self.inner.multiprocessors
    }

    /// Dynamic shared memory each of `ctas` co-resident CTAs may use, in
    /// bytes (the driver reserves 1 KB of an SM's shared memory per CTA).
    pub(crate) fn shared_per_cta(&self, ctas: u32) -> u32 {
        let share = (self.inner.shared_per_sm / ctas.max(1)).saturating_sub(1024);
        share.min(self.inner.max_shared_per_cta)
    }

    /// The GEMM kernels, loaded on first use and cached.
    pub(crate) fn gemm_functions(&self) -> Result<&gemm::GemmFunctions> {
        if let Some(f) = self.inner.gemm_functions.get() {
            return Ok(f);
        }
        let loaded = gemm::GemmFunctions::load(self)?;
        Ok(self.inner.gemm_functions.get_or_init(|| loaded))
    }

    /// The split-K GEMM workspace; held locked while a launch is queued.
    pub(crate) fn gemm_scratch(&self) -> std::sync::MutexGuard<'_, Option<gemm::SplitScratch>> {
        self.inner.gemm_scratch.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Errors unless `ctx` is this device's context.
    pub(crate) fn check_context(&self, what: &'static str, ctx: &Arc<CudaContext>) -> Result<()> {
        let mine = self.inner.stream.context();
        if Arc::ptr_eq(mine, ctx) || mine.cu_ctx() == ctx.cu_ctx() {
            return Ok(());
        }
        Err(QuantError::WrongDevice {
            what,
            expected: format!("cuda:{}", mine.ordinal()),
            actual: format!("cuda:{} (another context)", ctx.ordinal()),
        })
    }
}

/// `kernel`'s position in its family's list `all`. By value: the fields
/// before the name (input type, format, group size) settle every mismatch,
/// so only the match compares its name. (Not by the name's address: a
/// string literal of a `const` table need not have one address across
/// crates, and on the GPU machine it did not.)
fn slot_index<K: Kernel + PartialEq>(all: &[K], kernel: K) -> Option<usize> {
    all.iter().position(|k| *k == kernel)
}

/// The benchmark's own kernels, each with a slot of its own in a `Gpu`: the
/// empty kernel is the launch floor the host-cost table compares the
/// quantizer calls with, so it must not pay a lock and a hashed name per
/// launch that they do not.
#[cfg(feature = "bench")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BenchKernel {
    /// `quant_kernels::kernels::copy`.
    SmCopy,
    /// The empty kernel (one warp, no parameters).
    Empty,
    /// The read kernel (`sm_copy16`'s loads, no stores).
    SmRead,
}

#[cfg(feature = "bench")]
impl BenchKernel {
    /// Every variant, in discriminant order.
    #[cfg(test)]
    const ALL: [BenchKernel; BenchKernel::COUNT] = [BenchKernel::SmCopy, BenchKernel::Empty, BenchKernel::SmRead];
    /// Number of variants: the slots of `Inner::bench_functions`.
    const COUNT: usize = 3;

    /// The `.entry` name in the PTX modules.
    fn name(self) -> &'static str {
        match self {
            BenchKernel::SmCopy => quant_kernels::abi::SM_COPY_KERNEL,
            BenchKernel::Empty => quant_kernels::abi::EMPTY_KERNEL,
            BenchKernel::SmRead => quant_kernels::abi::SM_READ_KERNEL,
        }
    }
}

/// One lazily loaded function per quantizer entry point, per family, in
/// the order of the family's `ALL` list: looking one up is an index, not a
/// name hashed under a lock (an eager launch's host cost should be the
/// driver's launch alone).
struct QuantizerFunctions {
    token_group: Box<[OnceLock<CudaFunction>]>,
    block: Box<[OnceLock<CudaFunction>]>,
    codec: Box<[OnceLock<CudaFunction>]>,
}

impl QuantizerFunctions {
    fn new() -> Self {
        let slots = |n: usize| (0..n).map(|_| OnceLock::new()).collect::<Box<[_]>>();
        Self {
            token_group: slots(TokenGroupKernel::ALL.len()),
            block: slots(BlockKernel::ALL.len()),
            codec: slots(CodecKernel::ALL.len()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quant_kernels::abi::{CodecOp, TokenGroupVariant};
    use quant_kernels::element::DType;
    use quant_kernels::Fp8Format;

    #[test]
    fn every_kernel_finds_its_own_slot() {
        // Kernels as the launches make them (`new`), not copied from `ALL`.
        for input in DType::ALL {
            for format in Fp8Format::ALL {
                let b = BlockKernel::new(input, format);
                assert_eq!(BlockKernel::ALL[slot_index(BlockKernel::ALL, b).unwrap()].name(), b.name());
                for gs in [32, 64, 128] {
                    for variant in [TokenGroupVariant::Narrow, TokenGroupVariant::Wide, TokenGroupVariant::Row] {
                        let Some(k) = TokenGroupKernel::new(input, format, gs, variant) else {
                            continue;
                        };
                        let i = slot_index(TokenGroupKernel::ALL, k).unwrap();
                        assert_eq!(TokenGroupKernel::ALL[i].name(), k.name());
                    }
                }
            }
        }
        for op in [CodecOp::Encode, CodecOp::Decode] {
            for format in Fp8Format::ALL {
                let k = CodecKernel::new(op, format);
                assert_eq!(CodecKernel::ALL[slot_index(CodecKernel::ALL, k).unwrap()].name(), k.name());
            }
        }
    }

    #[cfg(feature = "bench")]
    #[test]
    fn every_bench_kernel_has_its_own_slot() {
        for (i, k) in BenchKernel::ALL.into_iter().enumerate() {
            assert_eq!(k as usize, i, "{k:?}");
        }
        assert_eq!(
            BenchKernel::ALL.map(BenchKernel::name),
            [quant_kernels::abi::SM_COPY_KERNEL, quant_kernels::abi::EMPTY_KERNEL, quant_kernels::abi::SM_READ_KERNEL]
        );
    }

    #[test]
    fn every_launched_name_is_an_entry_of_every_module() {
        // What the host looks up by name in the module it loads: every
        // quantizer entry and the benchmark's kernels, in all three.
        let names = quant_kernels::abi::quantizer_entries().map(|(name, _)| name).chain([
            quant_kernels::abi::SM_COPY_KERNEL,
            quant_kernels::abi::EMPTY_KERNEL,
            quant_kernels::abi::SM_READ_KERNEL,
        ]);
        for name in names {
            for arch in [PtxArch::Sm80, PtxArch::Sm90, PtxArch::Sm90a] {
                let entry = [".visible .entry ", name, "("].concat();
                assert!(arch.ptx().contains(&entry), "{name} is not an entry of the {arch:?} module");
            }
        }
    }
}
