//! Reading safetensors shards: the header parsed and validated up front,
//! tensor data read on demand with positioned reads.
//!
//! The data is read (into buffers that are not zeroed first), not memory-mapped: a mapped file that another process
//! truncates kills the reader with SIGBUS on the next access, while a read
//! returns an error that names the file ([`CheckpointError::Shrunk`]).
//! Shards of real checkpoints are several GiB; only the tensors being worked
//! on are in memory, and every tensor-sized buffer is allocated fallibly
//! ([`super::memory`]).

use super::error::{io, CheckpointError, Result};
use super::memory;
use half::{bf16, f16};
use safetensors::tensor::{Metadata, TensorInfo};
use safetensors::Dtype;
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

/// The largest header the safetensors format allows.
const MAX_HEADER_LEN: u64 = 100_000_000;

/// One safetensors file, open for reading, with its parsed header.
pub struct Shard {
    path: PathBuf,
    /// The open file: positioned reads of tensor pieces, and the identity
    /// [`Shard::read`] checks a reopened handle against.
    file: File,
    data_start: u64,
    metadata: Metadata,
    names: Vec<String>,
}

impl std::fmt::Debug for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shard").field("path", &self.path).field("tensors", &self.names.len()).finish()
    }
}

impl Shard {
    /// Opens `path` and validates its header: offsets contiguous, sizes
    /// consistent with dtype and shape, no tensor defined twice, and the file
    /// exactly as long as the header says (a truncated file is reported with
    /// the first tensor that does not fit). Only the header is read.
    pub fn open(path: &Path) -> Result<Self> {
        // Opening a FIFO would block, and a folder cannot be read: look first.
        let kind = std::fs::metadata(path).map_err(io(path))?;
        if !kind.is_file() {
            return Err(CheckpointError::WrongFileKind {
                path: path.to_path_buf(),
                reason: format!("is {}, not a safetensors file", describe_kind(&kind)),
            });
        }
        let file = File::open(path).map_err(io(path))?;
        let len = file.metadata().map_err(io(path))?.len();
        let bad = |reason: String| CheckpointError::BadHeader { file: path.to_path_buf(), reason };
        if len < 8 {
            return Err(bad(format!("file is {len} bytes, shorter than the 8-byte header length")));
        }
        let mut prefix = [0u8; 8];
        read_at(&file, path, &mut prefix, 0)?;
        let n = u64::from_le_bytes(prefix);
        if n > MAX_HEADER_LEN {
            return Err(bad(format!("header length {n} is over the format's limit of {MAX_HEADER_LEN} bytes")));
        }
        if n > len - 8 {
            return Err(bad(format!("header length {n} runs past the end of the file ({len} bytes)")));
        }
        // n <= 1e8, so it fits a usize.
        let mut header = memory::try_filled(n as usize, 0u8, path, "the header")?;
        read_at(&file, path, &mut header, 8)?;
        let text = std::str::from_utf8(&header).map_err(|e| bad(format!("header is not UTF-8: {e}")))?;
        let metadata: Metadata = serde_json::from_str(text).map_err(|e| bad(format!("invalid JSON in header: {e}")))?;
        if let Ok(Some(tensor)) = first_duplicate_key(text) {
            return Err(CheckpointError::DuplicateTensor { file: path.to_path_buf(), tensor });
        }
        let available = len - 8 - n;
        if metadata.data_len() as u64 != available {
            return Err(diagnose_length(path, text, available));
        }
        let names = metadata.offset_keys();
        Ok(Self { path: path.to_path_buf(), file, data_start: 8 + n, metadata, names })
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

    /// Reads the raw little-endian bytes of a tensor. A file that shrank since
    /// it was opened is [`CheckpointError::Shrunk`]; a buffer the host cannot
    /// allocate is [`CheckpointError::OutOfMemory`]. Safe to call from several
    /// threads at once.
    pub fn read(&self, name: &str) -> Result<Vec<u8>> {
        let missing = || CheckpointError::TensorMissing { file: self.path.clone(), tensor: name.to_string() };
        let (start, end) = self.info(name).ok_or_else(missing)?.data_offsets;
        let len = end.checked_sub(start).ok_or_else(missing)?;
        let offset = self.data_start + start as u64;
        let mut bytes = memory::try_with_capacity(len, &self.path, &format!("tensor `{name}`"))?;
        // A handle of its own, so concurrent reads do not share a file
        // position; `read_to_end` then fills the buffer without zeroing it first.
        let mut file = self.reopen()?;
        file.seek(SeekFrom::Start(offset)).map_err(io(&self.path))?;
        file.take(len as u64).read_to_end(&mut bytes).map_err(io(&self.path))?;
        if bytes.len() != len {
            return Err(CheckpointError::Shrunk {
                file: self.path.clone(),
                tensor: name.to_string(),
                end: offset + len as u64,
            });
        }
        Ok(bytes)
    }

    /// Opens the file again, checking it is the same file (not one renamed
    /// over it since).
    fn reopen(&self) -> Result<File> {
        let file = File::open(&self.path).map_err(io(&self.path))?;
        let (now, then) = (file.metadata().map_err(io(&self.path))?, self.file.metadata().map_err(io(&self.path))?);
        if (now.dev(), now.ino()) != (then.dev(), then.ino()) {
            return Err(CheckpointError::WrongFileKind {
                path: self.path.clone(),
                reason: "was replaced by another file while being read".into(),
            });
        }
        Ok(file)
    }

    /// Reads `buf.len()` bytes of tensor `name`, starting `offset` bytes into
    /// its data, with one positioned read: the bytes land directly in the
    /// caller's buffer (page-locked or not, allocated once by the pipeline),
    /// and several threads may read pieces of one tensor at once. A file that
    /// shrank since it was opened is [`CheckpointError::Shrunk`], as in
    /// [`Shard::read`].
    pub fn read_into(&self, name: &str, offset: u64, buf: &mut [u8]) -> Result<()> {
        let missing = || CheckpointError::TensorMissing { file: self.path.clone(), tensor: name.to_string() };
        let (start, end) = self.info(name).ok_or_else(missing)?.data_offsets;
        let tensor_end = self.data_start.checked_add(end as u64);
        let begin = self.data_start.checked_add(start as u64).and_then(|s| s.checked_add(offset));
        let Some((begin, tensor_end)) =
            begin.zip(tensor_end).filter(|&(b, e)| b.checked_add(buf.len() as u64).is_some_and(|last| last <= e))
        else {
            return Err(CheckpointError::Internal {
                file: self.path.clone(),
                reason: format!("read of {} bytes at {offset} past the end of tensor `{name}`", buf.len()),
            });
        };
        self.file.read_exact_at(buf, begin).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => {
                CheckpointError::Shrunk { file: self.path.clone(), tensor: name.to_string(), end: tensor_end }
            }
            _ => io(&self.path)(e),
        })
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

fn read_at(file: &File, path: &Path, buf: &mut [u8], offset: u64) -> Result<()> {
    file.read_exact_at(buf, offset).map_err(io(path))
}

/// "a folder", "a FIFO", ...: what a path that should be a regular file is.
pub fn describe_kind(meta: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    match () {
        _ if t.is_file() => "a regular file",
        _ if t.is_dir() => "a folder",
        _ if t.is_symlink() => "a symbolic link",
        _ if t.is_fifo() => "a FIFO",
        _ if t.is_socket() => "a socket",
        _ if t.is_char_device() => "a character device",
        _ if t.is_block_device() => "a block device",
        _ => "not a regular file",
    }
}

/// The first key a JSON object defines twice (`serde_json` keeps the last
/// silently, and so would the safetensors parser). An error when `text` is
/// not a JSON object.
pub fn first_duplicate_key(text: &str) -> serde_json::Result<Option<String>> {
    struct FirstDuplicate;
    impl<'de> Visitor<'de> for FirstDuplicate {
        type Value = Option<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut seen = HashSet::new();
            let mut first = None;
            while let Some(key) = map.next_key::<String>()? {
                map.next_value::<IgnoredAny>()?;
                if first.is_none() && !seen.insert(key.clone()) {
                    first = Some(key);
                }
            }
            Ok(first)
        }
    }
    let mut de = serde_json::Deserializer::from_str(text);
    (&mut de).deserialize_map(FirstDuplicate)
}

/// The file length disagrees with the header: find the tensor that does not
/// fit (truncation) or report trailing garbage. `available` is the number of
/// bytes after the header.
fn diagnose_length(path: &Path, header: &str, available: u64) -> CheckpointError {
    let bad = |reason: String| CheckpointError::BadHeader { file: path.to_path_buf(), reason };
    let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(header) else {
        return bad("header does not cover the data section".into());
    };
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
    /// Converts the raw bytes of tensor `tensor` of `file`: an
    /// [`CheckpointError::UnsupportedDtype`] for another dtype or a length
    /// that is not a whole number of elements, and
    /// [`CheckpointError::OutOfMemory`] when the host has no room for the values.
    pub fn from_le_bytes(dtype: Dtype, bytes: &[u8], file: &Path, tensor: &str) -> Result<Self> {
        fn words<const N: usize, T>(
            bytes: &[u8],
            file: &Path,
            tensor: &str,
            f: impl Fn([u8; N]) -> T,
        ) -> Result<Option<Vec<T>>> {
            if !bytes.len().is_multiple_of(N) {
                return Ok(None);
            }
            let mut out = memory::try_with_capacity(bytes.len() / N, file, &format!("the values of `{tensor}`"))?;
            out.extend(bytes.chunks_exact(N).map(|c| f(c.try_into().unwrap_or([0; N]))));
            Ok(Some(out))
        }
        let data = match dtype {
            Dtype::BF16 => words(bytes, file, tensor, |b| bf16::from_bits(u16::from_le_bytes(b)))?.map(HostData::Bf16),
            Dtype::F16 => words(bytes, file, tensor, |b| f16::from_bits(u16::from_le_bytes(b)))?.map(HostData::F16),
            Dtype::F32 => words(bytes, file, tensor, f32::from_le_bytes)?.map(HostData::F32),
            _ => None,
        };
        data.ok_or_else(|| CheckpointError::UnsupportedDtype {
            file: file.to_path_buf(),
            tensor: tensor.to_string(),
            dtype: dtype.to_string(),
        })
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
