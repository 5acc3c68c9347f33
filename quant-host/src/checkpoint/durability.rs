//! Whether `quantize` flushes its output to disk before publishing it, and
//! the flushes themselves.
//!
//! Either way the output is written under a temporary name and renamed into
//! place at the end, so other processes see it complete or not at all. What
//! the flush adds is the same after a crash of the whole machine: without
//! it the rename can reach the disk before the data does. A flush costs the
//! time to write the output to the device (on the H200 machine about 1.2 s
//! of a 1.35 s run over a 4.34 GB checkpoint), which `cp -r` and a torch
//! script do not pay.

use super::error::{io, Result};
use std::fs::File;
use std::path::Path;

/// How `quantize` leaves its output on disk (`--no-sync` picks
/// [`Durability::NoSync`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Durability {
    /// Every output file and folder is flushed (`fsync`) before the rename,
    /// and the folder holding the output after it: once `quantize` returns,
    /// the output survives a power cut or an operating-system crash. The
    /// default.
    #[default]
    Synced,
    /// Nothing is flushed; the operating system writes the output back on
    /// its own schedule (Linux: within about 30 s). The rename is still
    /// atomic for other processes, and a crash of `fp8q` alone loses
    /// nothing once it has returned. A power cut or an operating-system
    /// crash before the write-back can leave the output missing, or present
    /// with files that are empty, short or zero-filled: quantize again (or
    /// `fp8q verify`) after such a crash.
    NoSync,
}

impl Durability {
    /// Whether outputs are flushed.
    pub fn syncs(self) -> bool {
        self == Durability::Synced
    }

    /// One line for reports: which mode ran and what a crash can lose.
    pub fn describe(self) -> &'static str {
        match self {
            Durability::Synced => "flushed to disk (fsync) before the rename: survives a power cut once fp8q returns",
            Durability::NoSync => {
                "not flushed (--no-sync): renamed atomically, written back by the OS later; \
                 a power cut or OS crash before then can lose or truncate it"
            }
        }
    }

    /// Flushes `file` (opened at `path`, for the error) when this mode syncs.
    pub fn sync_file(self, file: &File, path: &Path) -> Result<()> {
        if self.syncs() {
            file.sync_all().map_err(io(path))?;
        }
        Ok(())
    }

    /// Flushes the folder `dir` (its entries: names created, renamed or
    /// removed in it) when this mode syncs.
    pub fn sync_dir(self, dir: &Path) -> Result<()> {
        if !self.syncs() {
            return Ok(());
        }
        match File::open(dir).and_then(|d| d.sync_all()) {
            // A file system that cannot flush a folder (`EINVAL`) makes
            // its entries durable with the files, or not at all: nothing
            // more to do.
            Err(e) if matches!(e.kind(), std::io::ErrorKind::InvalidInput | std::io::ErrorKind::Unsupported) => Ok(()),
            result => result.map_err(io(dir)),
        }
    }

    /// Writes `contents` to a new file at `path` and flushes it when this
    /// mode syncs (`std::fs::write` with the flush).
    pub fn write_file(self, path: &Path, contents: &[u8]) -> Result<()> {
        use std::io::Write;
        let mut file = File::options().write(true).create_new(true).open(path).map_err(io(path))?;
        file.write_all(contents).map_err(io(path))?;
        self.sync_file(&file, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_modes_write_the_same_bytes_and_say_which_ran() {
        let dir = tempfile::tempdir().unwrap();
        for (i, mode) in [Durability::Synced, Durability::NoSync].into_iter().enumerate() {
            let path = dir.path().join(format!("f{i}"));
            mode.write_file(&path, b"index").unwrap();
            assert_eq!(std::fs::read(&path).unwrap(), b"index");
            // A file that exists is not replaced.
            assert!(mode.write_file(&path, b"other").is_err());
            mode.sync_dir(dir.path()).unwrap();
        }
        assert!(Durability::default().syncs());
        assert!(!Durability::NoSync.syncs());
        assert!(Durability::NoSync.describe().contains("--no-sync"));
        assert!(Durability::Synced.describe().contains("fsync"));
        // A folder that is not there is an error naming it, when syncing.
        let missing = dir.path().join("missing");
        assert!(Durability::Synced.sync_dir(&missing).unwrap_err().to_string().contains("missing"));
        Durability::NoSync.sync_dir(&missing).unwrap();
    }
}
