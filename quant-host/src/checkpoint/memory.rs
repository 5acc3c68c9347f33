//! Fallible host allocations for tensor-sized buffers.
//!
//! A weight of a real checkpoint is hundreds of MB and the host may not have
//! room for it next to the shards being written; `Vec::with_capacity` would
//! abort the process there. Every tensor-sized buffer of the checkpoint tool
//! is allocated here instead, so running out of memory is the typed
//! [`CheckpointError::OutOfMemory`] naming the file and the tensor.

use super::error::CheckpointError;
use std::path::Path;

/// An empty vector with room for `len` elements, or
/// [`CheckpointError::OutOfMemory`] (naming `file` and `what`) when the
/// allocator refuses or the size overflows.
pub fn try_with_capacity<T>(len: usize, file: &Path, what: &str) -> Result<Vec<T>, CheckpointError> {
    let mut v = Vec::new();
    match v.try_reserve_exact(len) {
        Ok(()) => Ok(v),
        Err(_) => Err(CheckpointError::OutOfMemory {
            file: file.to_path_buf(),
            what: what.to_string(),
            bytes: (len as u64).saturating_mul(std::mem::size_of::<T>() as u64),
        }),
    }
}

/// `len` copies of `value`, fallibly (see [`try_with_capacity`]).
pub fn try_filled<T: Clone>(len: usize, value: T, file: &Path, what: &str) -> Result<Vec<T>, CheckpointError> {
    let mut v = try_with_capacity(len, file, what)?;
    v.resize(len, value);
    Ok(v)
}
