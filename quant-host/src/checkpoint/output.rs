//! All-or-nothing output: everything is written under a hidden temporary
//! folder `.fp8q-XXXXXX` next to the output, and moved into place with a
//! rename only once it is complete. An error removes the temporary folder; a
//! signal too, in `fp8q` (see [`super::interrupt`]).
//!
//! The output's name is claimed when the run starts, with an empty file or
//! folder created atomically (`O_EXCL`, `mkdir`): of two runs writing the same
//! output without `--force`, the second fails at once instead of silently
//! replacing the first one's output at the end. The placeholder is replaced by
//! the rename, and removed (while still empty) when the run fails.
//!
//! `--force` replaces only an output of the same kind: a regular file for a
//! file, and for a folder one that `fp8q` wrote (it has an index or
//! `model.safetensors` and a shard with `fp8q` metadata) or an empty one;
//! never a device, a link, or a folder of something else.
//!
//! A temporary folder outlives its run only when the process is killed
//! (SIGKILL, a crash, a power cut). Each run holds a lock (`flock`) on its own
//! folder, and removes the unlocked `.fp8q-*` folders it finds next to its
//! output that are older than a minute, saying so in the report; a younger one
//! may be a run that is just starting, and is only named.

use super::durability::Durability;
use super::error::{io, CheckpointError, Result};
use super::interrupt::{self, Owned, Registration};
use super::quantize::META_FMT;
use super::reader::{describe_kind, Shard};
use super::source::SINGLE_FILE;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use tempfile::TempDir;

/// The prefix of temporary folders.
pub const TEMP_PREFIX: &str = ".fp8q-";

/// A temporary folder unlocked and unchanged for this long is stale.
const STALE_AFTER: Duration = Duration::from_secs(60);

/// A staging area for an output file or folder.
#[derive(Debug)]
pub struct Staging {
    target: PathBuf,
    temp: Option<TempDir>,
    staged: PathBuf,
    /// The empty file or folder holding the output's name, when this run created it.
    placeholder: Option<PathBuf>,
    /// The lock on the temporary folder, held for the whole run.
    _lock: File,
    registration: Registration,
    notes: Vec<String>,
}

impl Staging {
    /// Checks that `output` may be written for `input` and creates the staging
    /// area in `output`'s parent folder (so the final rename stays on one file
    /// system). Refuses an existing `output` unless `overwrite` (and then
    /// only one of the same kind), and any output that would modify or delete
    /// the input.
    pub fn prepare(output: &Path, input: &Path, is_folder: bool, overwrite: bool) -> Result<Self> {
        let input_abs = std::fs::canonicalize(input).map_err(io(input))?;
        let name = output.file_name().ok_or_else(|| {
            CheckpointError::InvalidOption(format!("output path {} has no file name", output.display()))
        })?;
        let parent = match output.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let parent_abs = std::fs::canonicalize(parent).map_err(io(parent))?;
        let output_abs = parent_abs.join(name);
        let overlap = |reason| CheckpointError::OutputOverlapsInput {
            output: output.to_path_buf(),
            input: input.to_path_buf(),
            reason,
        };
        if output_abs == input_abs {
            return Err(overlap("they are the same path"));
        }
        if input_abs.is_dir() && output_abs.starts_with(&input_abs) {
            return Err(overlap("the output would be inside the input folder"));
        }
        let placeholder = match std::fs::symlink_metadata(&output_abs) {
            Ok(existing) => {
                if !overwrite {
                    return Err(CheckpointError::OutputExists { path: output.to_path_buf() });
                }
                let canonical = std::fs::canonicalize(&output_abs).unwrap_or_else(|_| output_abs.clone());
                if input_abs.starts_with(&canonical) || input_abs.starts_with(&output_abs) {
                    return Err(overlap("replacing the output would delete the input"));
                }
                check_replaceable(output, &output_abs, &existing, is_folder)?;
                None
            }
            Err(_) => {
                claim(output, &output_abs, is_folder)?;
                Some(output_abs.clone())
            }
        };
        // From here on, an error must give the name back.
        let release = |e: CheckpointError| {
            if let Some(p) = &placeholder {
                Owned::Placeholder(p.clone()).remove();
            }
            e
        };
        let notes = remove_stale(&parent_abs);
        let temp = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .tempdir_in(&parent_abs)
            .map_err(io(&parent_abs))
            .map_err(release)?;
        let lock = lock_folder(temp.path()).map_err(release)?;
        let mut owned = vec![Owned::Folder(temp.path().to_path_buf())];
        owned.extend(placeholder.iter().cloned().map(Owned::Placeholder));
        let registration =
            interrupt::register(owned).ok_or_else(|| release(CheckpointError::Interrupted { path: output.into() }))?;
        let staged = temp.path().join(name);
        let staging =
            Self { target: output_abs, temp: Some(temp), staged, placeholder, _lock: lock, registration, notes };
        if is_folder {
            std::fs::create_dir(&staging.staged).map_err(io(&staging.staged))?;
        }
        Ok(staging)
    }

    /// Where to write: the staged file, or the staged folder.
    pub fn path(&self) -> &Path {
        &self.staged
    }

    /// The final output path.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// What preparing found worth reporting (stale temporary folders removed
    /// or left alone).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// Moves the staged output into place: over this run's placeholder, or
    /// over the output `--force` replaces (which is first moved into the
    /// staging folder, and restored if the move fails). When `durability`
    /// syncs, the folder holding the output is flushed after the rename, so
    /// the new name is on disk when this returns (the caller has flushed
    /// what the name points to).
    pub fn commit(mut self, durability: Durability) -> Result<()> {
        let Some(temp) = self.temp.take() else {
            return Err(CheckpointError::Internal { file: self.target.clone(), reason: "committed twice".into() });
        };
        let previous = temp.path().join(".previous");
        let replacing = self.placeholder.is_none() && std::fs::symlink_metadata(&self.target).is_ok();
        let moved = self.registration.commit(|| {
            if replacing {
                std::fs::rename(&self.target, &previous).map_err(io(&self.target))?;
            }
            if let Err(e) = std::fs::rename(&self.staged, &self.target) {
                if replacing {
                    // Best effort: put the old output back where it was.
                    let _ = std::fs::rename(&previous, &self.target);
                }
                return Err(CheckpointError::Io { path: self.target.clone(), source: e });
            }
            Ok(())
        });
        match moved {
            None => return Err(CheckpointError::Interrupted { path: self.target.clone() }),
            Some(result) => result?,
        }
        self.placeholder = None;
        // Deletes the staging folder and the replaced output.
        temp.close().map_err(io(&previous))?;
        match self.target.parent() {
            Some(parent) => durability.sync_dir(parent),
            None => Ok(()),
        }
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        // A run that did not commit: give the output's name back. (`temp`
        // removes itself.)
        if let Some(p) = self.placeholder.take() {
            Owned::Placeholder(p).remove();
        }
    }
}

/// Creates the empty file or folder that claims `output_abs`, atomically.
fn claim(output: &Path, output_abs: &Path, is_folder: bool) -> Result<()> {
    let created = if is_folder {
        std::fs::create_dir(output_abs)
    } else {
        File::options().write(true).create_new(true).open(output_abs).map(drop)
    };
    created.map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => CheckpointError::OutputExists { path: output.to_path_buf() },
        _ => CheckpointError::Io { path: output.to_path_buf(), source: e },
    })
}

/// Whether `--force` may replace `existing` (see the module documentation).
fn check_replaceable(output: &Path, output_abs: &Path, existing: &std::fs::Metadata, is_folder: bool) -> Result<()> {
    let refuse = |what: String, allowed| CheckpointError::WontReplace { path: output.to_path_buf(), what, allowed };
    if !is_folder {
        if existing.file_type().is_file() {
            return Ok(());
        }
        return Err(refuse(describe_kind(existing).into(), "a regular file (the output of a file is a file)"));
    }
    const FOLDER: &str = "a folder written by fp8q, or an empty folder (the output of a folder is a folder)";
    if !existing.file_type().is_dir() {
        return Err(refuse(describe_kind(existing).into(), FOLDER));
    }
    if is_empty_dir(output_abs) || is_fp8q_output(output_abs) {
        return Ok(());
    }
    Err(refuse("a folder that fp8q did not write".into(), FOLDER))
}

fn is_empty_dir(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_none())
}

/// A folder holding a checkpoint (an index or `model.safetensors`) with at
/// least one shard that records fp8q's quantization in its metadata.
pub fn is_fp8q_output(dir: &Path) -> bool {
    let has_checkpoint = dir.join(super::index::INDEX_FILE).is_file() || dir.join(SINGLE_FILE).is_file();
    let Ok(entries) = std::fs::read_dir(dir) else { return false };
    has_checkpoint
        && entries.filter_map(|e| e.ok()).any(|e| {
            let path = e.path();
            path.extension().is_some_and(|x| x == "safetensors")
                && Shard::open(&path).is_ok_and(|s| s.user_metadata().is_some_and(|m| m.contains_key(META_FMT)))
        })
}

/// Takes an exclusive `flock` on a folder (released when the file closes,
/// also when the process is killed).
fn lock_folder(dir: &Path) -> Result<File> {
    let file = File::open(dir).map_err(io(dir))?;
    // Blocking: another run's scan may hold it for a moment.
    flock(&file, libc::LOCK_EX).map_err(io(dir))?;
    Ok(file)
}

/// `flock(LOCK_EX | LOCK_NB)`: false when another open file holds the lock.
fn try_lock(file: &File) -> std::io::Result<bool> {
    match flock(file, libc::LOCK_EX | libc::LOCK_NB) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(false),
        Err(e) => Err(e),
    }
}

fn flock(file: &File, operation: libc::c_int) -> std::io::Result<()> {
    // SAFETY: flock takes a descriptor that `file` keeps open, and no pointers.
    let rc = unsafe { libc::flock(file.as_raw_fd(), operation) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Removes the stale temporary folders of killed runs in `parent`, and
/// names the ones that may still be in use; one note each.
fn remove_stale(parent: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(parent) else { return Vec::new() };
    let mut notes = Vec::new();
    for entry in entries.filter_map(|e| e.ok()) {
        if !entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
            continue;
        }
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else { continue };
        if !meta.is_dir() {
            continue;
        }
        let Ok(folder) = File::open(&path) else { continue };
        if !try_lock(&folder).unwrap_or(false) {
            continue; // a run in progress
        }
        let age = meta.modified().ok().and_then(|m| SystemTime::now().duration_since(m).ok());
        if age.is_some_and(|a| a >= STALE_AFTER) {
            match std::fs::remove_dir_all(&path) {
                Ok(()) => {
                    notes.push(format!("removed {}, a temporary folder left by a killed fp8q run", path.display()))
                }
                Err(e) => notes.push(format!(
                    "{} is a temporary folder left by a killed fp8q run, but removing it failed: {e}",
                    path.display()
                )),
            }
        } else {
            notes.push(format!(
                "{} looks like the temporary folder of an fp8q run that was killed; it was left alone as it is recent: remove it if no fp8q is running",
                path.display()
            ));
        }
    }
    notes
}
