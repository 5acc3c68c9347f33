//! Host staging buffers of the quantize pipeline: tensor bytes read from an
//! input shard, or codes and scales on their way to an output shard.
//!
//! A run allocates a fixed number of these up front and passes them around
//! (reader -> quantizer -> writer -> back), so memory is bounded by
//! `count x capacity` whatever the size of the checkpoint. On a GPU they are
//! page-locked, so uploads and downloads are real asynchronous DMA; a buffer
//! handed to the GPU carries a *fence*, the event after its last transfer,
//! and every access from the host (and its release) waits for it first.

use crate::error::{QuantError, Result};
use cudarc::driver::{CudaContext, CudaEvent, PinnedHostSlice};
use std::sync::Arc;

/// A host buffer of bytes with a valid prefix of `len` bytes.
#[derive(Debug)]
pub struct HostBuf {
    memory: Memory,
    len: usize,
    fence: Option<CudaEvent>,
}

#[derive(Debug)]
enum Memory {
    /// Ordinary memory, grown on demand up to the pipeline's capacity.
    Heap(Vec<u8>),
    /// Page-locked memory of a fixed size.
    Pinned(PinnedHostSlice<u8>),
}

impl HostBuf {
    /// An empty heap buffer; it grows to the largest `len` asked of it.
    pub fn heap() -> Self {
        Self { memory: Memory::Heap(Vec::new()), len: 0, fence: None }
    }

    /// `capacity` bytes of page-locked memory in `ctx`, zeroed (the driver
    /// returns it uninitialised).
    pub fn pinned(ctx: &Arc<CudaContext>, capacity: usize) -> Result<Self> {
        // Not write-combined (cudarc's `alloc_pinned` default): the host reads
        // these buffers too (the writer reads downloaded codes), and reads of
        // write-combined memory are uncached.
        // SAFETY: the memory is zeroed through the raw pointer below before
        // any slice of it is formed.
        let mut slice = unsafe { ctx.alloc_pinned_with_flags::<u8>(capacity.max(1), 0) }?;
        let ptr = slice.as_mut_ptr()?;
        // SAFETY: `ptr` points to `capacity.max(1)` bytes just allocated and
        // not yet used by any transfer.
        unsafe { std::ptr::write_bytes(ptr, 0, capacity.max(1)) };
        Ok(Self { memory: Memory::Pinned(slice), len: 0, fence: None })
    }

    /// Whether the memory is page-locked (and may be handed to the GPU).
    pub fn is_pinned(&self) -> bool {
        matches!(self.memory, Memory::Pinned(_))
    }

    /// The valid bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no byte is valid.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The valid bytes, once any transfer into or out of them is complete.
    pub fn bytes(&mut self) -> Result<&[u8]> {
        self.wait()?;
        let len = self.len;
        Ok(match &mut self.memory {
            Memory::Heap(v) => &v[..len],
            Memory::Pinned(p) => &p.as_slice()?[..len],
        })
    }

    /// Makes the first `len` bytes the valid ones and returns them for
    /// writing (their contents are unspecified). A heap buffer grows; a
    /// pinned one errors beyond its capacity.
    pub fn fill(&mut self, len: usize) -> Result<&mut [u8]> {
        self.wait()?;
        match &mut self.memory {
            Memory::Heap(v) => {
                if v.len() < len {
                    v.try_reserve_exact(len - v.len())
                        .map_err(|_| QuantError::OutOfMemory { what: "staging buffer", bytes: len as u64 })?;
                    v.resize(len, 0);
                }
            }
            Memory::Pinned(p) if p.len() < len => {
                return Err(QuantError::BufferLength {
                    what: "pinned staging buffer",
                    expected: len as u64,
                    actual: p.len() as u64,
                });
            }
            Memory::Pinned(_) => {}
        }
        self.len = len;
        let memory: &mut [u8] = match &mut self.memory {
            Memory::Heap(v) => v,
            Memory::Pinned(p) => p.as_mut_slice()?,
        };
        Ok(&mut memory[..len])
    }

    /// Sets the event after which the GPU no longer touches this buffer.
    pub(crate) fn set_fence(&mut self, event: CudaEvent) {
        self.fence = Some(event);
    }

    /// A raw view of the memory for an asynchronous transfer that will be
    /// fenced with [`HostBuf::set_fence`]. `range` must be within the valid bytes.
    pub(crate) fn pinned_mut(&mut self, range: std::ops::Range<usize>) -> Result<&mut [u8]> {
        self.wait()?;
        let len = self.len;
        match &mut self.memory {
            Memory::Pinned(p) if range.end <= len => Ok(&mut p.as_mut_slice()?[range]),
            Memory::Pinned(_) => Err(QuantError::BufferLength {
                what: "pinned transfer range",
                expected: range.end as u64,
                actual: len as u64,
            }),
            Memory::Heap(_) => Err(QuantError::ShapeMismatch("a GPU transfer needs a page-locked buffer".into())),
        }
    }

    /// Waits for the fence, if any.
    fn wait(&mut self) -> Result<()> {
        if let Some(fence) = &self.fence {
            fence.synchronize()?;
        }
        self.fence = None;
        Ok(())
    }
}

impl Drop for HostBuf {
    fn drop(&mut self) {
        // Page-locked memory must not be freed under a transfer still in
        // flight (an error path can drop a buffer the GPU is using).
        if let Some(fence) = self.fence.take() {
            fence.context().record_err(fence.synchronize());
        }
    }
}
