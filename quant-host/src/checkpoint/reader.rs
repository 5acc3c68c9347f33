//! Reading safetensors shards: memory-mapped, header validated up front.
//!
//! Shards of real checkpoints are several GiB; mapping them keeps memory to
//! the tensors being worked on, and the page cache does the read-ahead.

use super::error::{io, CheckpointError, Result};
use half::{bf16, f16};
use memmap2::Mmap;
use safetensors::tensor::{Metadata, TensorInfo};
use safetensors::{Dtype, SafeTensorError, SafeTensors};
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

/// One safetensors file, mapped read-only, with its parsed header.
pub struct Shard {
    path: PathBuf,
    /// The open file, for positioned reads of whole tensors.
    file: File,
    bytes: Mmap,
    data_start: usize,
    metadata: Metadata,
    names: Vec<String>,
}

impl std::fmt::Debug for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shard").field("path", &self.path).field("tensors", &self.names.len()).finish()
    }
}

impl Shard {
    /// Maps `path` and validates its header: offsets contiguous, sizes
    /// consistent with dtype and shape, and the file exactly as long as the
    /// header says (a truncated file is reported with the first tensor that
    /// does not fit).
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(io(path))?;
        let len = file.metadata().map_err(io(path))?.len();
        if len < 8 {
            return Err(CheckpointError::BadHeader {
                file: path.to_path_buf(),
                reason: format!("file is {len} bytes, shorter than the 8-byte header length"),
            });
        }
        // SAFETY: the map is read-only and private to this process. Like every
        // safetensors loader, we rely on the file not being truncated by another
        // process while it is mapped; the tool never writes to its inputs.
        let bytes = unsafe { Mmap::map(&file) }.map_err(io(path))?;
        let (header_len, metadata) = match SafeTensors::read_metadata(&bytes) {
            Ok(parsed) => parsed,
            Err(SafeTensorError::MetadataIncompleteBuffer) => return Err(diagnose_length(path, &bytes)),
            Err(e) => return Err(CheckpointError::BadHeader { file: path.to_path_buf(), reason: e.to_string() }),
        };
        let names = metadata.offset_keys();
        Ok(Self { path: path.to_path_buf(), file, bytes, data_start: 8 + header_len, metadata, names })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Tensor names in file order (by data offset).
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Dtype, shape and offsets of a tensor.
    pub fn info(&self, name: &str) -> Option<&TensorInfo> {
        self.metadata.info(name)
    }

    /// The raw little-endian bytes of a tensor.
    pub fn bytes(&self, name: &str) -> Option<&[u8]> {
        let (start, end) = self.info(name)?.data_offsets;
        self.bytes.get(self.data_start.checked_add(start)?..self.data_start.checked_add(end)?)
    }

    /// Reads `buf.len()` bytes of tensor `name`, starting `offset` bytes into
    /// its data, with one positioned read (no page faults on the map, and the
    /// bytes land directly in the caller's buffer, page-locked or not).
    pub fn read_into(&self, name: &str, offset: u64, buf: &mut [u8]) -> Result<()> {
        let missing = || CheckpointError::TensorMissing { file: self.path.clone(), tensor: name.to_string() };
        let (start, end) = self.info(name).ok_or_else(missing)?.data_offsets;
        let begin = (self.data_start as u64).checked_add(start as u64).and_then(|s| s.checked_add(offset));
        let Some(begin) =
            begin.filter(|b| b.checked_add(buf.len() as u64).is_some_and(|e| e <= self.data_start as u64 + end as u64))
        else {
            return Err(CheckpointError::Internal {
                file: self.path.clone(),
                reason: format!("read of {} bytes at {offset} past the end of tensor `{name}`", buf.len()),
            });
        };
        read_exact_at(&self.file, buf, begin).map_err(io(&self.path))
    }

    /// The header's `__metadata__` string map.
    pub fn user_metadata(&self) -> Option<&HashMap<String, String>> {
        self.metadata.metadata().as_ref()
    }

    /// Data bytes of all tensors.
    pub fn data_len(&self) -> u64 {
        self.metadata.data_len() as u64
    }
}

#[cfg(unix)]
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(not(unix))]
fn read_exact_at(mut file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    file.seek(SeekFrom::Start(offset))?;
    file.read_exact(buf)
}

/// The file length disagrees with the header: find the tensor that does not
/// fit (truncation) or report trailing garbage.
fn diagnose_length(path: &Path, bytes: &[u8]) -> CheckpointError {
    let bad = |reason: String| CheckpointError::BadHeader { file: path.to_path_buf(), reason };
    let Some(n) = bytes.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok()).map(u64::from_le_bytes) else {
        return bad("file shorter than 8 bytes".into());
    };
    let header = usize::try_from(n).ok().and_then(|n| bytes.get(8..8usize.checked_add(n)?));
    let Some(Ok(serde_json::Value::Object(map))) = header.map(serde_json::from_slice::<serde_json::Value>) else {
        return bad("header does not cover the data section".into());
    };
    let available = (bytes.len() as u64).saturating_sub(8 + n);
    let mut ends: Vec<(u64, u64, &str)> = map
        .iter()
        .filter(|(k, _)| k.as_str() != "__metadata__")
        .filter_map(|(k, v)| {
            let offsets = v.get("data_offsets")?.as_array()?;
            Some((offsets.first()?.as_u64()?, offsets.get(1)?.as_u64()?, k.as_str()))
        })
        .collect();
    ends.sort();
    match ends.iter().find(|(_, end, _)| *end > available) {
        Some(&(_, end, tensor)) => {
            CheckpointError::Truncated { file: path.to_path_buf(), tensor: tensor.to_string(), end, available }
        }
        None => {
            let used = ends.last().map_or(0, |e| e.1);
            bad(format!("{} bytes after the last tensor's data", available.saturating_sub(used)))
        }
    }
}

/// A selected weight's values, converted from little-endian bytes.
#[derive(Debug)]
pub enum HostData {
    /// bf16 values.
    Bf16(Vec<bf16>),
    /// f16 values.
    F16(Vec<f16>),
    /// f32 values.
    F32(Vec<f32>),
}

impl HostData {
    /// Converts raw safetensors bytes; `None` for another dtype or a length
    /// that is not a whole number of elements.
    pub fn from_le_bytes(dtype: Dtype, bytes: &[u8]) -> Option<Self> {
        fn words<const N: usize, T>(bytes: &[u8], f: impl Fn([u8; N]) -> T) -> Option<Vec<T>> {
            if !bytes.len().is_multiple_of(N) {
                return None;
            }
            Some(bytes.chunks_exact(N).map(|c| f(c.try_into().unwrap_or([0; N]))).collect())
        }
        match dtype {
            Dtype::BF16 => words(bytes, |b| bf16::from_bits(u16::from_le_bytes(b))).map(HostData::Bf16),
            Dtype::F16 => words(bytes, |b| f16::from_bits(u16::from_le_bytes(b))).map(HostData::F16),
            Dtype::F32 => words(bytes, f32::from_le_bytes).map(HostData::F32),
            _ => None,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            HostData::Bf16(v) => v.len(),
            HostData::F16(v) => v.len(),
            HostData::F32(v) => v.len(),
        }
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Whether the quantizer takes this dtype.
pub fn is_quantizable(dtype: Dtype) -> bool {
    matches!(dtype, Dtype::BF16 | Dtype::F16 | Dtype::F32)
}
