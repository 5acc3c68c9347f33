//! What the input path is: one safetensors file, or a folder with an index
//! and shards (or a single `model.safetensors`) plus other files.

use super::error::{io, CheckpointError, Result};
use super::index::{Index, INDEX_FILE};
use super::reader::{describe_kind, Shard};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The file name of an unsharded checkpoint inside a folder.
pub const SINGLE_FILE: &str = "model.safetensors";
/// The model configuration that gets a `quantization_config`.
pub const CONFIG_FILE: &str = "config.json";

/// A checkpoint on disk.
#[derive(Debug)]
pub enum Source {
    /// A single safetensors file given directly.
    File(PathBuf),
    /// A model folder.
    Folder(Folder),
}

/// A model folder: shards, their index, `config.json` and other files.
#[derive(Debug)]
pub struct Folder {
    /// The folder.
    pub dir: PathBuf,
    /// The index, when the checkpoint is sharded.
    pub index: Option<Index>,
    /// The safetensors files of the checkpoint (file names), sorted.
    pub shards: Vec<String>,
    /// `config.json`, when present.
    pub config: Option<PathBuf>,
    /// Every other entry of the folder (file names), copied unchanged.
    pub others: Vec<String>,
}

impl Source {
    /// Looks at `path` and decides what it is; a folder's index is read and
    /// its shard files must exist.
    pub fn open(path: &Path) -> Result<Self> {
        let meta = std::fs::metadata(path).map_err(io(path))?;
        if meta.is_file() {
            return Ok(Source::File(path.to_path_buf()));
        }
        if !meta.is_dir() {
            return Err(CheckpointError::NotACheckpoint {
                path: path.into(),
                reason: "neither a file nor a folder".into(),
            });
        }
        let index_path = path.join(INDEX_FILE);
        let (index, shards) = if index_path.is_file() {
            let index = Index::read(&index_path)?;
            let shards = index.shard_files();
            for shard in &shards {
                match std::fs::metadata(path.join(shard)) {
                    Ok(meta) if meta.is_file() => {}
                    Ok(meta) => {
                        return Err(CheckpointError::WrongFileKind {
                            path: path.join(shard),
                            reason: format!(
                                "is {}, but {} names it as a safetensors shard",
                                describe_kind(&meta),
                                INDEX_FILE
                            ),
                        })
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        return Err(CheckpointError::MissingShard { index: index_path, shard: shard.clone() })
                    }
                    Err(e) => return Err(CheckpointError::Io { path: path.join(shard), source: e }),
                }
            }
            (Some(index), shards)
        } else if path.join(SINGLE_FILE).is_file() {
            (None, vec![SINGLE_FILE.to_string()])
        } else {
            return Err(CheckpointError::NotACheckpoint {
                path: path.into(),
                reason: format!("the folder has neither {INDEX_FILE} nor {SINGLE_FILE}"),
            });
        };
        let handled: BTreeSet<&str> = shards.iter().map(String::as_str).chain([INDEX_FILE, CONFIG_FILE]).collect();
        let mut others = Vec::new();
        for entry in std::fs::read_dir(path).map_err(io(path))? {
            let entry = entry.map_err(io(path))?;
            let name = entry.file_name().to_str().map(str::to_string).ok_or_else(|| {
                CheckpointError::NotACheckpoint { path: entry.path(), reason: "file name is not valid UTF-8".into() }
            })?;
            if !handled.contains(name.as_str()) {
                others.push(name);
            }
        }
        others.sort();
        let config = match std::fs::metadata(path.join(CONFIG_FILE)) {
            Ok(meta) if meta.is_file() => Some(path.join(CONFIG_FILE)),
            Ok(meta) => {
                return Err(CheckpointError::WrongFileKind {
                    path: path.join(CONFIG_FILE),
                    reason: format!("is {}, not a JSON file", describe_kind(&meta)),
                })
            }
            Err(_) => None,
        };
        Ok(Source::Folder(Folder { dir: path.to_path_buf(), index, shards, config, others }))
    }

    /// Checks the extra files of a folder before anything is written (see
    /// [`super::extras`]).
    pub fn check_extras(&self) -> Result<()> {
        match self {
            Source::File(_) => Ok(()),
            Source::Folder(folder) => super::extras::check(&folder.dir, &folder.others),
        }
    }

    /// Opens every shard and checks it against the index: each indexed tensor
    /// is in the shard the index names, and each shard tensor is indexed.
    pub fn open_shards(&self) -> Result<Vec<Shard>> {
        match self {
            Source::File(path) => Ok(vec![Shard::open(path)?]),
            Source::Folder(folder) => {
                let shards =
                    folder.shards.iter().map(|name| Shard::open(&folder.dir.join(name))).collect::<Result<Vec<_>>>()?;
                if let Some(index) = &folder.index {
                    check_index(index, &folder.shards, &shards)?;
                }
                Ok(shards)
            }
        }
    }
}

fn check_index(index: &Index, names: &[String], shards: &[Shard]) -> Result<()> {
    let by_name: BTreeMap<&str, &Shard> = names.iter().map(String::as_str).zip(shards).collect();
    for (tensor, shard_name) in index.weight_map() {
        // Every shard named by the index was found by `Source::open`.
        let Some(shard) = by_name.get(shard_name.as_str()) else {
            return Err(CheckpointError::MissingShard { index: index.path().into(), shard: shard_name.clone() });
        };
        if shard.info(tensor).is_none() {
            return Err(CheckpointError::TensorMissing { file: shard.path().into(), tensor: tensor.clone() });
        }
    }
    for (shard_name, shard) in &by_name {
        for tensor in shard.names() {
            if index.weight_map().get(tensor).map(String::as_str) != Some(*shard_name) {
                return Err(CheckpointError::TensorNotIndexed { file: shard.path().into(), tensor: tensor.clone() });
            }
        }
    }
    Ok(())
}
