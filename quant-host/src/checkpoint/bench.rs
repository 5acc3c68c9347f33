//! `fp8q bench --checkpoint`: how fast `quantize` is against the storage it
//! runs on, measured in one process.
//!
//! Synthesizes a checkpoint ([`demo::write_synthetic_checkpoint_copies`]),
//! reads it once (which also warms the page cache, like `cat`), copies it
//! file by file (like `cp -r`), then quantizes it. The copy and the quantize
//! run see the same page-cache state: the input is cached, and the copy's
//! written data is flushed to disk (that flush is timed too) and deleted
//! before the quantizer starts, so its write-back does not land on the
//! quantizer's bill. By default the quantizer flushes its own output
//! (`fsync`) before it commits, so "copy + flush" is the like-for-like
//! figure for it; "copy" alone is what `cp -r` reports, and the like-for-like
//! figure for a `--no-sync` run, which the benchmark times too (after the
//! flushed run's output is removed; `--no-sync` times that mode alone).

use super::demo;
use super::durability::Durability;
use super::error::{io, Result};
use super::progress::Silent;
use super::quantize::{quantize, QuantizeOptions};
use super::report::{bytes, QuantizeReport};
use crate::device::Device;
use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What one benchmark run measured.
#[derive(Debug)]
pub struct CheckpointBench {
    /// The folder the files were written in.
    pub dir: PathBuf,
    /// Copies of the synthetic layers.
    pub copies: usize,
    /// Bytes of the input files (headers included).
    pub file_bytes: u64,
    /// Input files.
    pub files: usize,
    /// Time to write the synthetic checkpoint (for information).
    pub synthesize: Duration,
    /// Time to read every input file once, sequentially.
    pub read: Duration,
    /// Time to copy every input file.
    pub copy: Duration,
    /// Time to flush the copy to disk.
    pub copy_flush: Duration,
    /// The quantize runs, one per mode asked for, in that order.
    pub runs: Vec<QuantizeRun>,
    /// Whether each run's `peak_rss` covers the whole process rather than
    /// the run.
    pub peak_rss_whole_process: bool,
}

/// One `quantize` call of the benchmark.
#[derive(Debug)]
pub struct QuantizeRun {
    /// The run's own report (its `durability` says which mode ran).
    pub report: QuantizeReport,
    /// Wall time of the `quantize` call.
    pub wall: Duration,
    /// Peak resident memory of the process during the call, in bytes
    /// (`VmHWM` after resetting it), or over the whole process when the
    /// reset is not possible (`peak_rss_whole_process`).
    pub peak_rss: Option<u64>,
}

/// The modes `fp8q bench --checkpoint` times: both, the default first; with
/// `--no-sync`, that one alone.
pub fn modes(no_sync: bool) -> &'static [Durability] {
    if no_sync {
        &[Durability::NoSync]
    } else {
        &[Durability::Synced, Durability::NoSync]
    }
}

/// Runs the benchmark with `copies` copies of the synthetic layers (44 make
/// a 4.34 GB checkpoint) in a new folder under `dir` (default: the system's
/// temporary folder), removed afterwards; `device` quantizes, once per mode
/// of `modes` (each run's output is removed before the next starts).
pub fn run(copies: usize, dir: Option<&Path>, device: &Device, modes: &[Durability]) -> Result<CheckpointBench> {
    let parent = dir.map(Path::to_path_buf).unwrap_or_else(std::env::temp_dir);
    let work = tempfile::Builder::new().prefix("fp8q-bench-").tempdir_in(&parent).map_err(io(&parent))?;
    // Gigabytes of synthetic shards: removed on SIGINT/SIGTERM/SIGHUP too
    // (once `fp8q` handles signals, see `super::interrupt`), like the demo's.
    let _remove_on_signal = super::interrupt::remove_folder_on_signal(work.path().to_path_buf());
    let input = work.path().join("input");
    let copy = work.path().join("copy");
    let output = work.path().join("quantized");

    let t = Instant::now();
    demo::write_synthetic_checkpoint_copies(&input, copies)?;
    let synthesize = t.elapsed();
    let files = files_of(&input)?;
    // Flush the freshly written input so its write-back does not overlap the runs.
    for file in &files {
        File::open(file).and_then(|f| f.sync_all()).map_err(io(file))?;
    }

    let t = Instant::now();
    let mut file_bytes = 0u64;
    let mut buf = vec![0u8; 8 << 20];
    for file in &files {
        let mut f = File::open(file).map_err(io(file))?;
        loop {
            let n = f.read(&mut buf).map_err(io(file))?;
            if n == 0 {
                break;
            }
            file_bytes += n as u64;
        }
    }
    let read = t.elapsed();

    std::fs::create_dir(&copy).map_err(io(&copy))?;
    let t = Instant::now();
    for file in &files {
        let to = copy.join(file.file_name().unwrap_or_default());
        std::fs::copy(file, &to).map_err(io(file))?;
    }
    let copy_time = t.elapsed();
    let t = Instant::now();
    for file in files_of(&copy)? {
        File::open(&file).and_then(|f| f.sync_all()).map_err(io(&file))?;
    }
    let copy_flush = t.elapsed();
    std::fs::remove_dir_all(&copy).map_err(io(&copy))?;

    let mut runs = Vec::with_capacity(modes.len());
    let mut reset = true;
    for &durability in modes {
        reset &= reset_peak_rss();
        let t = Instant::now();
        let report = quantize(&input, &output, &QuantizeOptions { durability, ..Default::default() }, device, &Silent)?;
        let wall = t.elapsed();
        runs.push(QuantizeRun { report, wall, peak_rss: peak_rss() });
        std::fs::remove_dir_all(&output).map_err(io(&output))?;
    }
    let dir = work.path().to_path_buf();
    drop(work);
    Ok(CheckpointBench {
        dir,
        copies,
        file_bytes,
        files: files.len(),
        synthesize,
        read,
        copy: copy_time,
        copy_flush,
        runs,
        peak_rss_whole_process: !reset,
    })
}

/// The regular files directly in `dir`, sorted.
fn files_of(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let path = entry.map_err(io(dir))?.path();
        if path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Resets the kernel's peak-RSS counter of this process (Linux: writing `5`
/// to `/proc/self/clear_refs`). Whether it worked.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// `VmHWM` of this process in bytes (Linux), if readable.
pub fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.trim_start_matches("VmHWM:").trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kb * 1024)
}

impl fmt::Display for CheckpointBench {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = |d: Duration| d.as_secs_f64();
        let rate = |d: Duration| bytes((self.file_bytes as f64 / s(d).max(1e-9)) as u64);
        for run in &self.runs {
            write!(f, "{}", run.report)?;
        }
        writeln!(
            f,
            "checkpoint bench: {} copies of the synthetic layers, {} in {} files, under {}",
            self.copies,
            bytes(self.file_bytes),
            self.files,
            self.dir.display()
        )?;
        if let Some(run) = self.runs.first() {
            writeln!(f, "  device:          {}", run.report.device)?;
        }
        writeln!(f, "  synthesize:      {:.2} s (not compared)", s(self.synthesize))?;
        writeln!(
            f,
            "  read (cat):      {:.2} s ({}/s), which also warms the page cache",
            s(self.read),
            rate(self.read)
        )?;
        writeln!(
            f,
            "  copy (cp -r):    {:.2} s ({}/s); flushing the copy to disk: {:.2} s more",
            s(self.copy),
            rate(self.copy),
            s(self.copy_flush)
        )?;
        for run in &self.runs {
            let q = s(run.wall);
            let (name, flushed) = match run.report.durability {
                Durability::Synced => ("quantize:       ", "flushed to disk before it returns"),
                Durability::NoSync => ("--no-sync:      ", "not flushed (left to the OS, like the copy)"),
            };
            writeln!(f, "  {name} {q:.2} s ({}/s of input), {flushed}", rate(run.wall))?;
            writeln!(
                f,
                "    / copy:        {:.2}x the copy, {:.2}x the copy + flush (below 1: faster than copying)",
                q / s(self.copy).max(1e-9),
                q / s(self.copy + self.copy_flush).max(1e-9)
            )?;
            match run.peak_rss {
                Some(rss) if self.peak_rss_whole_process => {
                    writeln!(f, "    peak memory:   {} resident (VmHWM of the whole process)", bytes(rss))?
                }
                Some(rss) => writeln!(f, "    peak memory:   {} resident during quantize (VmHWM)", bytes(rss))?,
                None => writeln!(f, "    peak memory:   unknown (no /proc/self/status)")?,
            }
        }
        Ok(())
    }
}
