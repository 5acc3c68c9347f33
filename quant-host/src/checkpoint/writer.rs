//! Writing a safetensors file without holding it in memory: the header is
//! computed from the plan (every output size is known before any kernel
//! runs), written first, and each tensor's bytes are then written at their
//! offset as they are produced.
//!
//! The layout is the one `safetensors::serialize` produces (tensors sorted by
//! descending dtype alignment, then name, so every tensor is aligned to its
//! element size for zero-copy loaders); the header is written with sorted
//! `__metadata__` keys so output files are reproducible.

use super::durability::Durability;
use super::error::{io, CheckpointError, Result};
use super::plan::OutputTensor;
use safetensors::tensor::TensorInfo;
use serde_json::{Map, Value};
use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Where each tensor of a file goes.
#[derive(Clone, Debug)]
pub struct FileLayout {
    /// The 8-byte length prefix and the space-padded JSON header.
    pub header: Vec<u8>,
    /// Output name to (absolute file offset, byte length).
    pub places: HashMap<String, (u64, u64)>,
    /// Total file length.
    pub total_len: u64,
}

/// Lays out `tensors` with the header's `__metadata__` set to `metadata`
/// (omitted when empty).
pub fn layout(tensors: &[OutputTensor], metadata: &BTreeMap<String, String>) -> Result<FileLayout, String> {
    let mut order: Vec<&OutputTensor> = tensors.iter().collect();
    order.sort_by(|a, b| (Reverse(a.dtype), &a.name).cmp(&(Reverse(b.dtype), &b.name)));
    let mut document = Map::new();
    if !metadata.is_empty() {
        let m: Map<String, Value> = metadata.iter().map(|(k, v)| (k.clone(), Value::from(v.as_str()))).collect();
        document.insert("__metadata__".into(), Value::Object(m));
    }
    let mut offset = 0u64;
    let mut relative = Vec::with_capacity(order.len());
    for t in &order {
        let len = t.byte_len();
        let end = offset.checked_add(len).ok_or("data section overflows u64")?;
        let to_usize = |v: u64| usize::try_from(v).map_err(|_| "tensor offset does not fit in usize".to_string());
        let info =
            TensorInfo { dtype: t.dtype, shape: t.shape.clone(), data_offsets: (to_usize(offset)?, to_usize(end)?) };
        let value = serde_json::to_value(&info).map_err(|e| e.to_string())?;
        if document.insert(t.name.clone(), value).is_some() || t.name == "__metadata__" {
            return Err(format!("tensor `{}` appears twice", t.name));
        }
        relative.push((t.name.clone(), offset, len));
        offset = end;
    }
    let mut json = serde_json::to_vec(&Value::Object(document)).map_err(|e| e.to_string())?;
    json.resize(json.len().next_multiple_of(8), b' ');
    let mut header = Vec::with_capacity(8 + json.len());
    header.extend_from_slice(&(json.len() as u64).to_le_bytes());
    header.extend_from_slice(&json);
    let base = header.len() as u64;
    let places = relative.into_iter().map(|(name, off, len)| (name, (base + off, len))).collect();
    Ok(FileLayout { header, places, total_len: base + offset })
}

/// An output file being filled at known offsets.
#[derive(Debug)]
pub struct FileWriter {
    file: File,
    path: PathBuf,
    expected: u64,
    written: u64,
}

impl FileWriter {
    /// Creates `path` (which must not exist), sized to the layout, with the header written.
    pub fn create(path: &Path, layout: &FileLayout) -> Result<Self> {
        let file = File::options().write(true).create_new(true).open(path).map_err(io(path))?;
        Self::from_file(file, path, layout)
    }

    /// Uses an already-created empty file.
    pub fn from_file(file: File, path: &Path, layout: &FileLayout) -> Result<Self> {
        let mut w = Self { file, path: path.to_path_buf(), expected: layout.total_len, written: 0 };
        w.file.set_len(layout.total_len).map_err(io(path))?;
        w.write_at(0, &layout.header)?;
        Ok(w)
    }

    /// Writes `bytes` at `offset`.
    pub fn write_at(&mut self, offset: u64, bytes: &[u8]) -> Result<()> {
        if offset.checked_add(bytes.len() as u64).is_none_or(|end| end > self.expected) {
            return Err(CheckpointError::Internal {
                file: self.path.clone(),
                reason: format!("write of {} bytes at {offset} past the end {}", bytes.len(), self.expected),
            });
        }
        self.file.seek(SeekFrom::Start(offset)).map_err(io(&self.path))?;
        self.file.write_all(bytes).map_err(io(&self.path))?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Checks that every byte was written once and, when `durability`
    /// syncs, flushes the file to disk.
    pub fn finish(self, durability: Durability) -> Result<u64> {
        if self.written != self.expected {
            return Err(CheckpointError::Internal {
                file: self.path,
                reason: format!("wrote {} of {} bytes", self.written, self.expected),
            });
        }
        durability.sync_file(&self.file, &self.path)?;
        Ok(self.written)
    }
}
