//! `model.safetensors.index.json`: which shard holds which tensor.
//!
//! Only `weight_map` and `metadata.total_size` are interpreted; every other
//! key is carried over to the output unchanged.

use super::error::{io, CheckpointError, Result};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The file name of a sharded checkpoint's index.
pub const INDEX_FILE: &str = "model.safetensors.index.json";

/// A parsed index.
#[derive(Clone, Debug)]
pub struct Index {
    path: PathBuf,
    /// The whole document, kept to carry unknown keys over.
    document: Map<String, Value>,
    weight_map: BTreeMap<String, String>,
}

impl Index {
    /// Reads and checks an index: `weight_map` must map names to plain file
    /// names (no folders, so a crafted index cannot reach outside its folder).
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read(path).map_err(io(path))?;
        let bad = |reason: String| CheckpointError::BadIndex { file: path.to_path_buf(), reason };
        let document: Map<String, Value> = match serde_json::from_slice(&text) {
            Ok(Value::Object(map)) => map,
            Ok(_) => return Err(bad("not a JSON object".into())),
            Err(e) => return Err(bad(format!("invalid JSON: {e}"))),
        };
        let Some(Value::Object(map)) = document.get("weight_map") else {
            return Err(bad("no `weight_map` object".into()));
        };
        let mut weight_map = BTreeMap::new();
        for (tensor, shard) in map {
            let Some(shard) = shard.as_str() else {
                return Err(bad(format!("weight_map entry `{tensor}` is not a string")));
            };
            if !is_plain_file_name(shard) {
                return Err(bad(format!(
                    "weight_map entry `{tensor}` names `{shard}`, which is not a file name in this folder"
                )));
            }
            weight_map.insert(tensor.clone(), shard.to_string());
        }
        Ok(Self { path: path.to_path_buf(), document, weight_map })
    }

    /// The index file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Tensor name to shard file name, sorted by tensor name.
    pub fn weight_map(&self) -> &BTreeMap<String, String> {
        &self.weight_map
    }

    /// The distinct shard file names, sorted.
    pub fn shard_files(&self) -> Vec<String> {
        let mut files: Vec<String> = self.weight_map.values().cloned().collect();
        files.sort();
        files.dedup();
        files
    }

    /// The index of the output: the same document with a new `weight_map`
    /// (sorted by name, as `transformers` writes it) and `metadata.total_size`.
    pub fn rewritten(&self, weight_map: &BTreeMap<String, String>, total_size: u64) -> String {
        let mut document = self.document.clone();
        let metadata = document.entry("metadata").or_insert_with(|| Value::Object(Map::new()));
        if !metadata.is_object() {
            *metadata = Value::Object(Map::new());
        }
        if let Value::Object(m) = metadata {
            m.insert("total_size".into(), Value::from(total_size));
        }
        let map: Map<String, Value> = weight_map.iter().map(|(k, v)| (k.clone(), Value::from(v.as_str()))).collect();
        document.insert("weight_map".into(), Value::Object(map));
        let mut text = serde_json::to_string_pretty(&Value::Object(document)).unwrap_or_default();
        text.push('\n');
        text
    }
}

/// A single path component that is a normal file name.
fn is_plain_file_name(name: &str) -> bool {
    let mut components = Path::new(name).components();
    matches!((components.next(), components.next()), (Some(std::path::Component::Normal(_)), None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_paths_outside_the_folder() {
        assert!(is_plain_file_name("model-00001-of-00002.safetensors"));
        assert!(!is_plain_file_name("../x.safetensors"));
        assert!(!is_plain_file_name("/etc/passwd"));
        assert!(!is_plain_file_name("a/b.safetensors"));
        assert!(!is_plain_file_name(""));
    }
}
