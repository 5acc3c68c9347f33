//! The quantize pipeline: every shard of a checkpoint streamed through four
//! threads that hand each other buffers.
//!
//! ```text
//!  reader ──bytes──▶ quantizer ──codes, scales──▶ writer ──whole files──▶ syncer
//!    ▲   (copies pass through) │                    │
//!    └──── free input buffers ─┴────────────────────┘     (free output buffers
//!                                                          go writer ▶ quantizer)
//! ```
//!
//! - The **reader** reads each tensor with positioned reads into a free
//!   input buffer, 4 MiB pieces in parallel (tensors to copy in pieces of at
//!   most [`COPY_PIECE`]), and checks each weight's values for NaN and
//!   infinity before handing it on ([`super::finite`]). A shard that shrinks
//!   under it is [`CheckpointError::Shrunk`], a buffer the host cannot
//!   allocate [`CheckpointError::OutOfMemory`]; the reader's error is the
//!   run's error, and the output is never committed.
//! - The **quantizer** (the calling thread, which owns the [`Engine`] and the
//!   progress display) forwards copies and runs the engine on weights: every
//!   core on the CPU, or up to `GPU_IN_FLIGHT` weights queued on the GPU.
//!   When the reader has nothing ready it finishes the oldest queued weight
//!   instead of waiting.
//! - The **writer** writes every piece with one positioned write at its final
//!   offset (tensors are processed in output-file order, so each file fills
//!   front to back), and hands each finished file to the
//! - **syncer**, which checks it is complete and flushes it to disk
//!   (`fsync`, unless [`Durability::NoSync`]) while the next files are being
//!   produced; the run commits only after every file is complete (and synced).
//!
//! No thread waits for another except for a buffer or for work, and the
//! buffers are allocated once: memory is `INPUT_BUFFERS x` the largest input
//! piece plus `OUTPUT_BUFFERS x` the largest quantized output, whatever the
//! checkpoint's size. The same code drives the CPU and the GPU engine; only
//! the buffers differ (page-locked for a GPU).

use super::durability::Durability;
use super::error::{CheckpointError, Result};
use super::finite;
use super::plan::{scale_name, ShardPlan, Step};
use super::progress::Progress;
use super::quantizer_stage::{output_sizes, Engine, EngineTimes, Finished, Job};
use super::reader::Shard;
use super::staging::HostBuf;
use super::writer::{FileLayout, FileWriter};
use crate::config::BlockConfig;
use crate::element::DType;
use crate::error::QuantError;
use rayon::prelude::*;
use safetensors::Dtype;
use std::collections::VecDeque;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError};
use std::time::{Duration, Instant};

/// Largest piece a copied tensor is read and written in: copies need no
/// whole-tensor buffer (an embedding can be several GB).
pub const COPY_PIECE: usize = 64 << 20;

/// Reads of one tensor are split into pieces of this size, read in parallel.
const READ_PIECE: usize = 4 << 20;

/// Input buffers beyond those the engine holds: one being read, one queued.
const SPARE_INPUT_BUFFERS: usize = 2;
/// Output buffers beyond those the engine holds: one being written, one queued.
const SPARE_OUTPUT_BUFFERS: usize = 2;

/// One output safetensors file and where its data comes from.
#[derive(Debug)]
pub struct OutputFile<'a> {
    /// The input shard.
    pub shard: &'a Shard,
    /// What happens to each of its tensors.
    pub plan: &'a ShardPlan,
    /// Where the output goes (a path that does not exist yet).
    pub path: PathBuf,
    /// The output's header and tensor offsets.
    pub layout: FileLayout,
}

/// Busy time of each stage of a run. The stages overlap, so these add up to
/// more than the wall time; the largest one is what limits the run.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StageTimes {
    /// Reading tensors from the input files.
    pub read: Duration,
    /// Quantizing: the CPU quantizer, or the GPU's kernels.
    pub quantize: Duration,
    /// GPU uploads and downloads (zero on the CPU).
    pub transfers: Duration,
    /// Writing the output files (to the page cache).
    pub write: Duration,
    /// Flushing the output files to disk (checking them only, with
    /// [`Durability::NoSync`]).
    pub sync: Duration,
    /// Time the quantizer had nothing to do, waiting for the reader.
    pub quantizer_idle: Duration,
    /// The whole pipeline, start to finish.
    pub wall: Duration,
}

impl fmt::Display for StageTimes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = |d: Duration| d.as_secs_f64();
        write!(
            f,
            "read {:.2} s, quantize {:.2} s, transfers {:.2} s, write {:.2} s, sync {:.2} s, wall {:.2} s \
             (busy time per stage, overlapping; quantizer idle {:.2} s)",
            s(self.read),
            s(self.quantize),
            s(self.transfers),
            s(self.write),
            s(self.sync),
            s(self.wall),
            s(self.quantizer_idle)
        )
    }
}

/// What to do with one input tensor.
struct Task<'a> {
    file: usize,
    step: &'a Step,
    kind: Kind,
}

enum Kind {
    /// Copy the bytes to `at`.
    Copy { at: u64 },
    /// Quantize: codes to `codes_at`, scales to `scales_at`.
    Quantize { dtype: DType, codes_at: u64, scales_at: u64 },
}

/// Reader -> quantizer.
enum Read {
    /// A piece of a tensor to copy, to be written at `at`; `last` ends the tensor.
    Copy { task: usize, at: u64, last: bool, buf: HostBuf },
    /// A whole weight to quantize.
    Quantize { task: usize, buf: HostBuf },
}

/// Which pool a buffer returns to after it is written.
#[derive(Clone, Copy)]
enum Pool {
    Input,
    Output,
}

/// Quantizer -> writer: `buf[range]` goes to file offset `at`, for each part.
struct Write {
    file: usize,
    parts: Vec<(u64, Range<usize>)>,
    buf: HostBuf,
    pool: Pool,
}

/// Streams every file of `files` through the pipeline with `engine`. On
/// success every file is complete, and flushed to disk when `durability`
/// syncs.
pub fn run(
    files: &[OutputFile<'_>],
    cfg: &BlockConfig,
    engine: &mut Engine,
    progress: &dyn Progress,
    durability: Durability,
) -> Result<StageTimes> {
    let start = Instant::now();
    let tasks = tasks(files, cfg)?;
    let internal = |reason: String| CheckpointError::Internal { file: PathBuf::from("quantize pipeline"), reason };

    // Buffers, allocated once.
    let mut input_capacity = 1;
    let mut output_capacity = 1;
    for task in &tasks {
        let bytes = usize::try_from(task.step.bytes).map_err(|_| internal("tensor larger than memory".into()))?;
        match task.kind {
            Kind::Copy { .. } => input_capacity = input_capacity.max(bytes.min(COPY_PIECE)),
            Kind::Quantize { .. } => {
                input_capacity = input_capacity.max(bytes);
                let (codes, scales) = output_sizes(task.step.rows_cols.0, task.step.rows_cols.1, cfg)
                    .map_err(|e| internal(e.to_string()))?;
                output_capacity = output_capacity.max(codes + scales);
            }
        }
    }
    let inputs = engine.in_flight() + SPARE_INPUT_BUFFERS;
    let outputs = engine.in_flight() + SPARE_OUTPUT_BUFFERS;
    let (free_in_tx, free_in_rx) = sync_channel::<HostBuf>(inputs);
    let (free_out_tx, free_out_rx) = sync_channel::<HostBuf>(outputs);
    let staging = |capacity| engine.staging(capacity).map_err(|e| internal(format!("staging buffer: {e}")));
    for _ in 0..inputs {
        free_in_tx.send(staging(input_capacity)?).map_err(|_| internal("buffer pool closed".into()))?;
    }
    for _ in 0..outputs {
        free_out_tx.send(staging(output_capacity)?).map_err(|_| internal("buffer pool closed".into()))?;
    }

    let (read_tx, read_rx) = sync_channel::<Read>(inputs);
    let (write_tx, write_rx) = sync_channel::<Write>(inputs + outputs);
    let (sync_tx, sync_rx) = sync_channel::<(usize, FileWriter)>(files.len().max(1));
    let mut times = StageTimes::default();
    let (read, quantized, written, synced) = std::thread::scope(|scope| {
        let tasks = &tasks;
        let reader = scope.spawn(move || read_all(files, tasks, free_in_rx, read_tx));
        let writer = {
            let free_in_tx = free_in_tx.clone();
            scope.spawn(move || write_all(files, write_rx, free_in_tx, free_out_tx, sync_tx))
        };
        let syncer = scope.spawn(move || sync_all(files, sync_rx, durability));
        let quantized = quantize_all(files, tasks, engine, progress, read_rx, free_out_rx, free_in_tx, write_tx);
        let panicked = |what: &str| internal(format!("the {what} thread panicked"));
        (
            reader.join().unwrap_or_else(|_| Err(panicked("reader"))),
            quantized,
            writer.join().unwrap_or_else(|_| Err(panicked("writer"))),
            syncer.join().unwrap_or_else(|_| Err(panicked("sync"))),
        )
    });
    // Threads stop quietly when a neighbour stops; the one that failed says why.
    times.read = read?;
    times.quantizer_idle = quantized?;
    times.write = written?;
    let (sync, files_synced) = synced?;
    times.sync = sync;
    if files_synced != files.len() {
        return Err(internal(format!("{files_synced} of {} output files completed", files.len())));
    }
    let EngineTimes { compute, transfers } = engine.times();
    times.quantize = compute;
    times.transfers = transfers;
    times.wall = start.elapsed();
    Ok(times)
}

/// A failure of the quantizer or of a staging buffer while working on
/// `tensor` of `file`: a buffer the host cannot allocate is
/// [`CheckpointError::OutOfMemory`], like every tensor-sized allocation of
/// the checkpoint tool ([`super::memory`]); anything else is
/// [`CheckpointError::Quant`].
fn quant_error(file: &Path, tensor: &str, source: QuantError) -> CheckpointError {
    match source {
        QuantError::OutOfMemory { what, bytes } => {
            CheckpointError::OutOfMemory { file: file.into(), what: format!("the {what} of tensor `{tensor}`"), bytes }
        }
        source => CheckpointError::Quant { file: file.into(), tensor: tensor.into(), source },
    }
}

/// The tasks of every file, each file's in the order of their output offsets.
fn tasks<'a>(files: &'a [OutputFile<'a>], cfg: &BlockConfig) -> Result<Vec<Task<'a>>> {
    let mut all = Vec::new();
    for (index, file) in files.iter().enumerate() {
        let place = |name: &str| {
            file.layout.places.get(name).map(|&(offset, _)| offset).ok_or_else(|| CheckpointError::Internal {
                file: file.path.clone(),
                reason: format!("tensor `{name}` has no place in the output layout"),
            })
        };
        let mut tasks = Vec::with_capacity(file.plan.steps.len());
        for step in &file.plan.steps {
            let kind = if step.quantize {
                let dtype = match step.dtype {
                    Dtype::BF16 => DType::Bf16,
                    Dtype::F16 => DType::F16,
                    Dtype::F32 => DType::F32,
                    other => {
                        return Err(CheckpointError::UnsupportedDtype {
                            file: file.shard.path().into(),
                            tensor: step.name.clone(),
                            dtype: other.to_string(),
                        })
                    }
                };
                Kind::Quantize { dtype, codes_at: place(&step.name)?, scales_at: place(&scale_name(&step.name))? }
            } else {
                Kind::Copy { at: place(&step.name)? }
            };
            tasks.push(Task { file: index, step, kind });
        }
        tasks.sort_by_key(|t| match t.kind {
            Kind::Copy { at } => at,
            Kind::Quantize { codes_at, .. } => codes_at,
        });
        all.extend(tasks);
    }
    // Validates the block size once for the sizes above.
    cfg.params().map_err(|e| CheckpointError::InvalidOption(e.to_string()))?;
    Ok(all)
}

/// The reader thread. Returns its busy time.
fn read_all(
    files: &[OutputFile<'_>],
    tasks: &[Task<'_>],
    free: Receiver<HostBuf>,
    out: SyncSender<Read>,
) -> Result<Duration> {
    let mut busy = Duration::ZERO;
    for (index, task) in tasks.iter().enumerate() {
        let shard = files[task.file].shard;
        let step = task.step;
        let fill = |buf: &mut HostBuf, offset: u64, len: usize| -> Result<()> {
            let bytes = buf.fill(len).map_err(|source| quant_error(shard.path(), &step.name, source))?;
            // Large tensors in parallel pieces: one thread copying out of
            // the page cache is slower than the rest of the pipeline.
            bytes
                .par_chunks_mut(READ_PIECE)
                .enumerate()
                .try_for_each(|(i, piece)| shard.read_into(&step.name, offset + (i * READ_PIECE) as u64, piece))
        };
        match task.kind {
            Kind::Quantize { dtype, .. } => {
                let Ok(mut buf) = free.recv() else { return Ok(busy) };
                let len = usize::try_from(step.bytes).unwrap_or(usize::MAX);
                let t = Instant::now();
                fill(&mut buf, 0, len)?;
                // The values are checked here, before the quantizer sees them:
                // one NaN or infinity would spoil its whole block's scale.
                let bytes = buf.bytes().map_err(|source| quant_error(shard.path(), &step.name, source))?;
                finite::check_weight(shard.path(), step, files[task.file].plan, dtype, bytes)?;
                busy += t.elapsed();
                if out.send(Read::Quantize { task: index, buf }).is_err() {
                    return Ok(busy);
                }
            }
            Kind::Copy { at } => {
                let mut offset = 0u64;
                loop {
                    let len = (step.bytes - offset).min(COPY_PIECE as u64) as usize;
                    let last = offset + len as u64 == step.bytes;
                    let Ok(mut buf) = free.recv() else { return Ok(busy) };
                    let t = Instant::now();
                    fill(&mut buf, offset, len)?;
                    busy += t.elapsed();
                    if out.send(Read::Copy { task: index, at: at + offset, last, buf }).is_err() {
                        return Ok(busy);
                    }
                    offset += len as u64;
                    if last {
                        break;
                    }
                }
            }
        }
    }
    Ok(busy)
}

/// The quantizer (the calling thread). Returns the time it sat idle.
#[allow(clippy::too_many_arguments)]
fn quantize_all(
    files: &[OutputFile<'_>],
    tasks: &[Task<'_>],
    engine: &mut Engine,
    progress: &dyn Progress,
    reads: Receiver<Read>,
    free_out: Receiver<HostBuf>,
    free_in: SyncSender<HostBuf>,
    writes: SyncSender<Write>,
) -> Result<Duration> {
    let mut idle = Duration::ZERO;
    // Tags of the weights in the engine, oldest first (to name a failure).
    let mut queued = VecDeque::new();
    let failed = |task: usize, source| {
        let task: &Task<'_> = &tasks[task];
        quant_error(files[task.file].shard.path(), &task.step.name, source)
    };
    // Sends a finished weight to the writer; `false` when the writer is gone.
    let deliver = |done: Finished, queued: &mut VecDeque<usize>| -> bool {
        queued.pop_front();
        let task = &tasks[done.tag];
        let Kind::Quantize { codes_at, scales_at, .. } = task.kind else { return false };
        // A closed input pool means the reader is done; the buffer is no longer needed.
        let _ = free_in.send(done.input);
        let end = done.output.len();
        let parts = vec![(codes_at, 0..done.codes_len), (scales_at, done.codes_len..end)];
        let sent = writes.send(Write { file: task.file, parts, buf: done.output, pool: Pool::Output }).is_ok();
        progress.tensor_done(&task.step.name, task.step.bytes);
        sent
    };
    loop {
        let read = if engine.pending() == 0 {
            let t = Instant::now();
            let read = reads.recv();
            idle += t.elapsed();
            match read {
                Ok(read) => read,
                Err(_) => break,
            }
        } else {
            match reads.try_recv() {
                Ok(read) => read,
                Err(TryRecvError::Empty) => {
                    // Nothing to read yet: finish the oldest weight meanwhile.
                    let oldest = queued.front().copied().unwrap_or(0);
                    if let Some(done) = engine.finish_oldest().map_err(|e| failed(oldest, e))? {
                        if !deliver(done, &mut queued) {
                            return Ok(idle);
                        }
                    }
                    continue;
                }
                Err(TryRecvError::Disconnected) => break,
            }
        };
        match read {
            Read::Copy { task, at, last, buf } => {
                let t = &tasks[task];
                let parts = vec![(at, 0..buf.len())];
                if writes.send(Write { file: t.file, parts, buf, pool: Pool::Input }).is_err() {
                    return Ok(idle);
                }
                if last {
                    progress.tensor_done(&t.step.name, t.step.bytes);
                }
            }
            Read::Quantize { task, buf } => {
                let t = &tasks[task];
                let (rows, cols) = t.step.rows_cols;
                let Kind::Quantize { dtype, .. } = t.kind else { continue };
                if rows == 0 || cols == 0 {
                    // No codes and no scales: nothing to compute or write.
                    let _ = free_in.send(buf);
                    progress.tensor_done(&t.step.name, t.step.bytes);
                    continue;
                }
                let Ok(output) = free_out.recv() else { return Ok(idle) };
                let job = Job { tag: task, dtype, rows, cols, input: buf };
                queued.push_back(task);
                let oldest = queued.front().copied().unwrap_or(task);
                if let Some(done) = engine.submit(job, output).map_err(|e| failed(oldest, e))? {
                    if !deliver(done, &mut queued) {
                        return Ok(idle);
                    }
                }
            }
        }
    }
    while let Some(done) = engine.finish_oldest().map_err(|e| failed(queued.front().copied().unwrap_or(0), e))? {
        if !deliver(done, &mut queued) {
            return Ok(idle);
        }
    }
    Ok(idle)
}

/// The writer thread. Returns its busy time.
fn write_all(
    files: &[OutputFile<'_>],
    writes: Receiver<Write>,
    free_in: SyncSender<HostBuf>,
    free_out: SyncSender<HostBuf>,
    synced: SyncSender<(usize, FileWriter)>,
) -> Result<Duration> {
    let mut busy = Duration::ZERO;
    let mut open: Vec<Option<FileWriter>> = (0..files.len()).map(|_| None).collect();
    // Data bytes still to write per file.
    let mut remaining: Vec<u64> =
        files.iter().map(|f| f.layout.total_len.saturating_sub(f.layout.header.len() as u64)).collect();
    let create = |index: usize| FileWriter::create(&files[index].path, &files[index].layout);
    // Files without data are complete once created.
    for (index, left) in remaining.iter().enumerate() {
        if *left == 0 && synced.send((index, create(index)?)).is_err() {
            return Ok(busy);
        }
    }
    for Write { file, parts, mut buf, pool } in writes {
        if parts.iter().all(|(_, range)| range.is_empty()) {
            // An empty tensor: nothing to write (its file may even be complete).
            let _ = match pool {
                Pool::Input => free_in.send(buf),
                Pool::Output => free_out.send(buf),
            };
            continue;
        }
        let t = Instant::now();
        let path: &Path = &files[file].path;
        let writer = match &mut open[file] {
            Some(w) => w,
            slot => slot.insert(create(file)?),
        };
        let bytes = buf
            .bytes()
            .map_err(|e| CheckpointError::Internal { file: path.into(), reason: format!("staging buffer: {e}") })?;
        for (at, range) in parts {
            let piece = bytes.get(range.clone()).ok_or_else(|| CheckpointError::Internal {
                file: path.into(),
                reason: format!("piece {range:?} outside a buffer of {} bytes", bytes.len()),
            })?;
            writer.write_at(at, piece)?;
            remaining[file] = remaining[file].saturating_sub(piece.len() as u64);
        }
        busy += t.elapsed();
        // A closed pool means its consumer is done; the buffer is no longer needed.
        let _ = match pool {
            Pool::Input => free_in.send(buf),
            Pool::Output => free_out.send(buf),
        };
        if remaining[file] == 0 {
            if let Some(done) = open[file].take() {
                if synced.send((file, done)).is_err() {
                    return Ok(busy);
                }
            }
        }
    }
    Ok(busy)
}

/// The sync thread: checks and (when `durability` syncs) flushes each
/// finished file. Returns its busy time and the number of files completed.
fn sync_all(
    files: &[OutputFile<'_>],
    done: Receiver<(usize, FileWriter)>,
    durability: Durability,
) -> Result<(Duration, usize)> {
    let mut busy = Duration::ZERO;
    let mut completed = vec![false; files.len()];
    for (index, writer) in done {
        let t = Instant::now();
        writer.finish(durability)?;
        busy += t.elapsed();
        if let Some(c) = completed.get_mut(index) {
            *c = true;
        }
    }
    Ok((busy, completed.iter().filter(|&&c| c).count()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_staging_buffer_the_host_cannot_allocate_is_out_of_memory() {
        let err = quant_error(
            Path::new("m.safetensors"),
            "w",
            QuantError::OutOfMemory { what: "staging buffer", bytes: 1 << 62 },
        );
        assert!(matches!(err, CheckpointError::OutOfMemory { bytes, .. } if bytes == 1 << 62), "{err:?}");
        assert_eq!(
            err.to_string(),
            "m.safetensors: cannot allocate 4611686018427387904 bytes for the staging buffer of tensor `w`: out of host memory"
        );
        // A heap staging buffer asked for more than the host has says so.
        let source = HostBuf::heap().fill(usize::MAX).map(|_| ()).unwrap_err();
        let err = quant_error(Path::new("m.safetensors"), "w", source);
        assert!(matches!(err, CheckpointError::OutOfMemory { .. }), "{err:?}");
        let err = quant_error(Path::new("m.safetensors"), "w", QuantError::TooLarge("codes"));
        assert!(matches!(err, CheckpointError::Quant { .. }), "{err:?}");
    }
}
