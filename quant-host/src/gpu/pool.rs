//! The memory pool of a [`super::Gpu`]: where the allocating calls' outputs
//! come from.
//!
//! cudarc allocates stream-ordered (`cuMemAllocAsync`) from the device's
//! default pool, whose release threshold is 0: at every synchronisation the
//! driver hands the pool's free memory back, and the next allocation of the
//! same size maps fresh pages. On an H200 that made an allocating
//! `per_block_quant_fp8` of 7168 x 18432 take 249-343 us between two events
//! against 111-118 us for `_into` on a buffer the caller kept
//! (bench/NOTES-quant.md, session 29). The default pool is the whole
//! process's, so raising its threshold would change how much memory other
//! libraries keep; this pool is the `Gpu`'s own, with no threshold: freed
//! outputs stay mapped for the next call's, as a caching allocator does,
//! until [`Pool::trim`] (`Device::release_cached_memory`) returns them.
//!
//! Buffers from it are ordinary `CudaSlice`s: freed stream-ordered on drop
//! (`cuMemFreeAsync` takes memory of any pool), usable on any stream of the
//! context. Destroying the pool while some are alive is allowed: the driver
//! releases it once the last of them is freed.

use crate::error::Result;
use cudarc::driver::sys;
use cudarc::driver::{CudaSlice, CudaStream, DeviceRepr};
use std::sync::Arc;

/// A `cuMemPoolCreate` pool of device memory that keeps what is freed.
pub(crate) struct Pool(sys::CUmemoryPool);

// SAFETY: a pool handle may be used from any thread (the driver API is
// thread-safe); the handle is only passed to driver calls.
unsafe impl Send for Pool {}
// SAFETY: as above; no method mutates the handle itself.
unsafe impl Sync for Pool {}

impl Pool {
    /// A pool on the device of `stream`'s context, or `None` where the
    /// device has no stream-ordered allocator (cudarc then allocates
    /// synchronously and so do the calls).
    pub(crate) fn new(stream: &Arc<CudaStream>) -> Result<Option<Self>> {
        let ctx = stream.context();
        if !ctx.has_async_alloc() {
            return Ok(None);
        }
        ctx.bind_to_thread()?;
        // SAFETY: an all-zero `CUmemPoolProps` is valid (no handle types,
        // no security attributes, no size limit); the fields set name
        // pinned device memory on this context's device.
        let mut props: sys::CUmemPoolProps = unsafe { std::mem::zeroed() };
        props.allocType = sys::CUmemAllocationType::CU_MEM_ALLOCATION_TYPE_PINNED;
        props.location.type_ = sys::CUmemLocationType::CU_MEM_LOCATION_TYPE_DEVICE;
        props.location.id = ctx.cu_device();
        // SAFETY: `props` is a valid `CUmemPoolProps` for the call.
        let pool = Self(unsafe { cudarc::driver::result::mem_pool::create(&props) }?);
        let mut keep = u64::MAX;
        // SAFETY: the release threshold is a `cuuint64_t`, `keep` one.
        unsafe {
            cudarc::driver::result::mem_pool::set_attribute(
                pool.0,
                sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD,
                (&mut keep as *mut u64).cast(),
            )
        }?;
        Ok(Some(pool))
    }

    /// `len` elements of `T` from the pool, stream-ordered on `stream`
    /// (which must belong to the context the pool was made for), unset.
    ///
    /// # Safety
    /// The memory is unset: the caller must write it before it is read as
    /// `T`, or `T` must accept every bit pattern.
    pub(crate) unsafe fn alloc<T: DeviceRepr>(&self, stream: &Arc<CudaStream>, len: usize) -> Result<CudaSlice<T>> {
        let bytes = len.checked_mul(std::mem::size_of::<T>()).ok_or(crate::QuantError::TooLarge("allocation"))?;
        let ctx = stream.context();
        ctx.bind_to_thread()?;
        // Events first, where cudarc tracks them: `upgrade_device_ptr`
        // creates two and cannot report a failure, so one made here first
        // turns a context that cannot create events into an error.
        if ctx.is_event_tracking() {
            drop(ctx.new_event(None)?);
        }
        // SAFETY: the pool and stream are valid handles of this context;
        // `bytes` is the slice's size. The pointer becomes a `CudaSlice`
        // of `len` elements that frees it stream-ordered on drop.
        unsafe {
            let ptr = cudarc::driver::result::mem_pool::alloc_async(self.0, bytes.max(1), stream.cu_stream())?;
            Ok(stream.upgrade_device_ptr::<T>(ptr, len))
        }
    }

    /// Returns the pool's free memory to the device (memory of buffers
    /// still alive stays theirs).
    pub(crate) fn trim(&self) -> Result<()> {
        // SAFETY: a valid pool; keeping 0 bytes releases every free block.
        unsafe { cudarc::driver::result::mem_pool::trim_to(self.0, 0) }?;
        Ok(())
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // SAFETY: the pool is valid and destroyed once. Buffers still
        // alive keep their memory until freed (the driver defers the
        // release), so nothing they hold is pulled from under them.
        // An error here has no one to go to.
        let _ = unsafe { cudarc::driver::result::mem_pool::destroy(self.0) };
    }
}
