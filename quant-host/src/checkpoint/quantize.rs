//! `fp8q quantize`: a checkpoint in, a block-scale fp8 checkpoint out.
//!
//! Everything that can be rejected (bad headers, a missing shard, an index
//! that disagrees with its shards, a selected tensor that cannot be
//! quantized, a name collision, a bad `config.json`, an extra file that is
//! not a regular file) is checked before the first byte is written; only the
//! weights' values are checked as they are read (see [`super::finite`]). Each shard is then streamed: a reader thread
//! converts the next weight while the device quantizes the current one and a
//! writer thread stores the previous one, so file I/O overlaps the kernels
//! and at most a few tensors are in memory at once.

use super::config_json;
use super::device_choice::describe;
use super::engine::Engine;
use super::error::{io, CheckpointError, Result};
use super::index::INDEX_FILE;
use super::output::Staging;
use super::plan::{check_something_to_quantize, plan_shard, ShardPlan};
use super::progress::Progress;
use super::reader::{HostData, Shard};
use super::report::{QuantizeReport, QuantizedTensor};
use super::select::Selector;
use super::source::{Source, CONFIG_FILE};
use super::writer::{layout, FileLayout, FileWriter};
use crate::config::BlockConfig;
use crate::device::Device;
use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::time::Instant;

/// `__metadata__` keys recording how a shard was quantized, so `verify` (and
/// anyone else) can read the block size of a lone safetensors file.
pub const META_FMT: &str = "fp8q.fmt";
/// Scale format key: `float` or `ue8m0`.
pub const META_SCALE_FMT: &str = "fp8q.scale_fmt";
/// Block size key: `"BN,BK"`.
pub const META_BLOCK: &str = "fp8q.weight_block_size";

/// What to quantize and how.
#[derive(Clone, Debug, Default)]
pub struct QuantizeOptions {
    /// Format, block size and scale mode (eps and fp8_max as given; the
    /// defaults are the spec's).
    pub block: BlockConfig,
    /// Which tensors to quantize.
    pub selector: Selector,
    /// Replace an existing output (of the same kind, see [`super::output`]).
    pub overwrite: bool,
    /// Quantize weights holding NaN or infinity instead of refusing them
    /// (see [`super::finite`]).
    pub allow_nonfinite: bool,
}

/// Quantizes the checkpoint at `input` (a safetensors file, or a folder with
/// `model.safetensors.index.json` and shards, or with `model.safetensors`)
/// into `output` on `device`. The input is only read; the output appears
/// complete or not at all.
pub fn quantize(
    input: &Path,
    output: &Path,
    opts: &QuantizeOptions,
    device: &Device,
    progress: &dyn Progress,
) -> Result<QuantizeReport> {
    let start = Instant::now();
    opts.block.params().map_err(|e| CheckpointError::InvalidOption(e.to_string()))?;
    let source = Source::open(input)?;
    source.check_extras()?;
    let folder = match &source {
        Source::Folder(f) => Some(f),
        Source::File(_) => None,
    };
    let staging = Staging::prepare(output, input, folder.is_some(), opts.overwrite)?;
    let shards = source.open_shards()?;
    let mut taken = HashSet::new();
    for shard in &shards {
        taken.extend(shard.names().iter().cloned());
    }
    let plans = shards.iter().map(|s| plan_shard(s, opts, &taken)).collect::<Result<Vec<_>>>()?;
    check_something_to_quantize(input, &shards, &plans, &opts.selector, folder.and_then(|f| f.config.as_deref()))?;
    let mut notes = staging.notes().to_vec();
    let config = match folder.and_then(|f| f.config.as_deref()) {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(io(path))?;
            let (text, previous) = config_json::with_quantization_config(&text, &opts.block)
                .map_err(|reason| CheckpointError::Json { file: path.into(), reason })?;
            if let Some(previous) = previous {
                notes.push(format!("{CONFIG_FILE}: replaced the existing quantization_config {previous}"));
            }
            Some(text)
        }
        None => None,
    };

    let total_tensors = plans.iter().map(|p| p.steps.len() as u64).sum();
    let total_bytes = plans.iter().flat_map(|p| &p.steps).map(|s| s.bytes).sum();
    progress.begin(total_tensors, total_bytes);
    let mut engine = Engine::new(device, opts.block);
    let mut weight_map = BTreeMap::new();
    let mut report = QuantizeReport {
        device: describe(device),
        input: input.to_path_buf(),
        output: output.to_path_buf(),
        files: shards.len(),
        input_bytes: total_bytes,
        ..QuantizeReport::default()
    };
    for (shard, plan) in shards.iter().zip(&plans) {
        let file_name = shard.path().file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let path = match folder {
            Some(_) => staging.path().join(&file_name),
            None => staging.path().to_path_buf(),
        };
        let metadata = output_metadata(shard, plan, &opts.block);
        let layout = layout(&plan.outputs, &metadata)
            .map_err(|reason| CheckpointError::Internal { file: path.clone(), reason })?;
        write_shard(shard, plan, &layout, &path, &mut engine, progress)?;
        report.output_bytes += layout.total_len;
        for t in &plan.outputs {
            weight_map.insert(t.name.clone(), file_name.clone());
        }
        for step in plan.steps.iter().filter(|s| s.quantize) {
            report.quantized_bytes += step.bytes;
            report.quantized.push(QuantizedTensor {
                name: step.name.clone(),
                rows: step.rows_cols.0,
                cols: step.rows_cols.1,
                dtype: step.dtype.to_string(),
            });
        }
        report.copied += plan.steps.iter().filter(|s| !s.quantize).count();
    }
    if let Some(folder) = folder {
        if let Some(index) = &folder.index {
            let data_bytes = plans.iter().flat_map(|p| &p.outputs).map(|t| t.byte_len()).sum();
            let path = staging.path().join(INDEX_FILE);
            std::fs::write(&path, index.rewritten(&weight_map, data_bytes)).map_err(io(&path))?;
        }
        if let Some(text) = config {
            let path = staging.path().join(CONFIG_FILE);
            std::fs::write(&path, text).map_err(io(&path))?;
        } else {
            notes.push(format!("no {CONFIG_FILE} in the input folder: no quantization_config written"));
        }
        for name in &folder.others {
            if name.ends_with(".safetensors") {
                notes.push(format!("{name}: not part of the checkpoint's index, copied unchanged"));
            }
            super::extras::copy(&folder.dir.join(name), &staging.path().join(name))?;
            report.copied_files += 1;
        }
    }
    report.kernel_time = engine.busy;
    drop(engine);
    drop(shards);
    staging.commit()?;
    progress.finish();
    report.elapsed = start.elapsed();
    notes.extend(plans.iter().flat_map(|p| p.nonfinite.notes()));
    report.notes = notes;
    Ok(report)
}

/// The output shard's `__metadata__`: the input's, plus how it was quantized
/// when it holds quantized weights (and `format: pt`, which `transformers`
/// requires of any file that has metadata).
fn output_metadata(shard: &Shard, plan: &ShardPlan, cfg: &BlockConfig) -> BTreeMap<String, String> {
    let mut metadata: BTreeMap<String, String> =
        shard.user_metadata().map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default();
    if plan.steps.iter().any(|s| s.quantize) {
        metadata.entry("format".into()).or_insert_with(|| "pt".into());
        metadata.insert(META_FMT.into(), cfg.format.name().into());
        metadata.insert(META_SCALE_FMT.into(), cfg.scale_mode.name().into());
        metadata.insert(META_BLOCK.into(), format!("{},{}", cfg.block_rows, cfg.block_cols));
    }
    metadata
}

/// Work handed from the reader thread to the device.
enum Work<'a> {
    Copy { name: &'a str, bytes: Vec<u8> },
    Quantize { name: &'a str, data: HostData, rows: usize, cols: usize, bytes: u64 },
}

type Chunk<'a> = (u64, Cow<'a, [u8]>);

fn write_shard(
    shard: &Shard,
    plan: &ShardPlan,
    layout: &FileLayout,
    path: &Path,
    engine: &mut Engine<'_>,
    progress: &dyn Progress,
) -> Result<()> {
    let mut writer = FileWriter::create(path, layout)?;
    // A rendezvous channel: the reader converts the next weight while the
    // device works on the current one, and no more is held in memory.
    let (work_tx, work_rx) = sync_channel::<Work<'_>>(0);
    let (chunk_tx, chunk_rx) = sync_channel::<Chunk<'_>>(2);
    std::thread::scope(|scope| {
        let reader = scope.spawn(move || read_steps(shard, plan, work_tx));
        let writer = scope.spawn(move || {
            for (offset, bytes) in chunk_rx {
                writer.write_at(offset, &bytes)?;
            }
            writer.finish()
        });
        let processed = process(shard, layout, engine, progress, work_rx, chunk_tx);
        let panicked =
            |what: &str| CheckpointError::Internal { file: path.into(), reason: format!("{what} thread panicked") };
        let read = reader.join().map_err(|_| panicked("reader"))?;
        let written = writer.join().map_err(|_| panicked("writer"))?;
        // The first failure is the cause; a closed channel is only its echo.
        match processed {
            Err(Stop::Failed(e)) => Err(e),
            Err(Stop::WriterGone) => {
                written.and(Err(CheckpointError::Internal { file: path.into(), reason: "writer stopped early".into() }))
            }
            Ok(()) => read.and(written).map(|_| ()),
        }
    })
}

fn read_steps<'a>(shard: &'a Shard, plan: &'a ShardPlan, tx: SyncSender<Work<'a>>) -> Result<()> {
    for step in &plan.steps {
        let work = if step.quantize {
            let data = super::finite::load_weight(shard, step, plan)?;
            let (rows, cols) = step.rows_cols;
            Work::Quantize { name: &step.name, data, rows, cols, bytes: step.bytes }
        } else {
            Work::Copy { name: &step.name, bytes: shard.read(&step.name)? }
        };
        if tx.send(work).is_err() {
            // The consumer stopped; it reports why.
            return Ok(());
        }
    }
    Ok(())
}

enum Stop {
    Failed(CheckpointError),
    WriterGone,
}

fn process<'a>(
    shard: &'a Shard,
    layout: &FileLayout,
    engine: &mut Engine<'_>,
    progress: &dyn Progress,
    work: Receiver<Work<'a>>,
    chunks: SyncSender<Chunk<'a>>,
) -> Result<(), Stop> {
    let place = |name: &str| {
        layout.places.get(name).map(|&(offset, _)| offset).ok_or_else(|| {
            Stop::Failed(CheckpointError::Internal {
                file: shard.path().into(),
                reason: format!("tensor `{name}` has no place in the output layout"),
            })
        })
    };
    let send = |chunk: Chunk<'a>| chunks.send(chunk).map_err(|_| Stop::WriterGone);
    for item in work {
        match item {
            Work::Copy { name, bytes } => {
                let len = bytes.len() as u64;
                send((place(name)?, Cow::Owned(bytes)))?;
                progress.tensor_done(name, len);
            }
            Work::Quantize { name, data, rows, cols, bytes } => {
                let (codes, scales) = engine.quantize(data, rows, cols).map_err(|source| {
                    Stop::Failed(CheckpointError::Quant { file: shard.path().into(), tensor: name.into(), source })
                })?;
                let scale_bytes: Vec<u8> = scales.iter().flat_map(|s| s.to_le_bytes()).collect();
                send((place(name)?, Cow::Owned(codes)))?;
                let scale_name = super::plan::scale_name(name);
                send((place(&scale_name)?, Cow::Owned(scale_bytes)))?;
                progress.tensor_done(name, bytes);
            }
        }
    }
    Ok(())
}
