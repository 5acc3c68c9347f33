//! All-or-nothing output: everything is written under a hidden temporary
//! folder next to the output, and moved into place with a rename only once it
//! is complete. An error or a crash leaves at most that temporary folder
//! (removed on drop), never a half-written checkpoint at the output path.

use super::error::{io, CheckpointError, Result};
use std::path::{Path, PathBuf};
use tempfile::TempDir;

/// A staging area for an output file or folder.
#[derive(Debug)]
pub struct Staging {
    target: PathBuf,
    temp: TempDir,
    staged: PathBuf,
}

impl Staging {
    /// Checks that `output` may be written for `input` and creates the staging
    /// area in `output`'s parent folder (so the final rename stays on one file
    /// system). Refuses an existing `output` unless `overwrite`, and any
    /// output that would modify or delete the input.
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
        if std::fs::symlink_metadata(&output_abs).is_ok() {
            if !overwrite {
                return Err(CheckpointError::OutputExists { path: output.to_path_buf() });
            }
            let existing = std::fs::canonicalize(&output_abs).unwrap_or_else(|_| output_abs.clone());
            if input_abs.starts_with(&existing) || input_abs.starts_with(&output_abs) {
                return Err(overlap("replacing the output would delete the input"));
            }
        }
        let temp = tempfile::Builder::new().prefix(".fp8q-").tempdir_in(&parent_abs).map_err(io(&parent_abs))?;
        let staged = temp.path().join(name);
        if is_folder {
            std::fs::create_dir(&staged).map_err(io(&staged))?;
        }
        Ok(Self { target: output_abs, temp, staged })
    }

    /// Where to write: the staged file, or the staged folder.
    pub fn path(&self) -> &Path {
        &self.staged
    }

    /// The final output path.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Moves the staged output into place, replacing an existing output (which
    /// is first moved into the staging folder, and restored if the move fails).
    pub fn commit(self) -> Result<()> {
        let previous = self.temp.path().join(".previous");
        let had_previous = std::fs::symlink_metadata(&self.target).is_ok();
        if had_previous {
            std::fs::rename(&self.target, &previous).map_err(io(&self.target))?;
        }
        if let Err(e) = std::fs::rename(&self.staged, &self.target) {
            if had_previous {
                // Best effort: put the old output back where it was.
                let _ = std::fs::rename(&previous, &self.target);
            }
            return Err(CheckpointError::Io { path: self.target, source: e });
        }
        // Dropping `temp` deletes the staging folder and the replaced output.
        self.temp.close().map_err(io(&previous))?;
        Ok(())
    }
}
