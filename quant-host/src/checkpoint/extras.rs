//! The other files of a checkpoint folder (tokenizer, generation config,
//! README, sub-folders): checked before anything is written, then copied.
//!
//! Only regular files, folders of them, and symbolic links to regular files
//! are copied. A link to a regular file is copied as the file it points to,
//! wherever that is (the Hugging Face hub cache stores every file of a
//! snapshot as a link into a `blobs` folder outside it). Anything else is
//! refused up front, before the first shard is quantized: a FIFO (reading it
//! would hang), a device, a socket, a dangling link, and a link to a folder
//! (following it could copy a tree from outside the checkpoint, or loop).
//! Copy errors name the file that failed: the source for a read, the
//! destination for a write (a full disk is the output's problem).

use super::durability::Durability;
use super::error::{io, CheckpointError, Result};
use super::reader::describe_kind;
use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

/// Checks every extra file `names` of folder `dir` (recursively): see the
/// module documentation for what is accepted.
pub fn check(dir: &Path, names: &[String]) -> Result<()> {
    for name in names {
        check_entry(&dir.join(name))?;
    }
    Ok(())
}

fn check_entry(path: &Path) -> Result<()> {
    let refuse = |reason: String| CheckpointError::WrongFileKind { path: path.to_path_buf(), reason };
    let meta = std::fs::symlink_metadata(path).map_err(io(path))?;
    let kind = meta.file_type();
    if kind.is_file() {
        return Ok(());
    }
    if kind.is_dir() {
        for entry in std::fs::read_dir(path).map_err(io(path))? {
            check_entry(&entry.map_err(io(path))?.path())?;
        }
        return Ok(());
    }
    if kind.is_symlink() {
        return match std::fs::metadata(path) {
            Ok(target) if target.is_file() => Ok(()),
            Ok(target) if target.is_dir() => Err(refuse(
                "is a symbolic link to a folder; fp8q does not follow links to folders (they can lead out of the checkpoint, or loop): replace it with a copy or remove it".into(),
            )),
            Ok(target) => Err(refuse(format!(
                "is a symbolic link to {}; fp8q copies only regular files",
                describe_kind(&target)
            ))),
            Err(e) => Err(refuse(format!("is a symbolic link that cannot be followed (dangling?): {e}"))),
        };
    }
    Err(refuse(format!("is {}; fp8q copies only regular files and folders", describe_kind(&meta))))
}

/// Copies extra file or folder `from` to `to` (which must not exist),
/// flushing every file and folder written when `durability` syncs.
/// [`check`] must have accepted `from`.
pub fn copy(from: &Path, to: &Path, durability: Durability) -> Result<()> {
    let meta = std::fs::symlink_metadata(from).map_err(io(from))?;
    if meta.is_dir() {
        std::fs::create_dir(to).map_err(io(to))?;
        for entry in std::fs::read_dir(from).map_err(io(from))? {
            let entry = entry.map_err(io(from))?;
            copy(&entry.path(), &to.join(entry.file_name()), durability)?;
        }
        return durability.sync_dir(to);
    }
    copy_file(from, to, durability)
}

/// Copies one regular file (or the file a link points to), with its
/// permissions, blaming reads on `from` and writes on `to`; flushes it when
/// `durability` syncs.
pub fn copy_file(from: &Path, to: &Path, durability: Durability) -> Result<()> {
    let mut source = File::open(from).map_err(io(from))?;
    let permissions = source.metadata().map_err(io(from))?.permissions();
    let mut target = File::options().write(true).create_new(true).open(to).map_err(io(to))?;
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = match source.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CheckpointError::Io { path: from.to_path_buf(), source: e }),
        };
        target.write_all(&buffer[..n]).map_err(io(to))?;
    }
    target.set_permissions(permissions).map_err(io(to))?;
    durability.sync_file(&target, to)
}
