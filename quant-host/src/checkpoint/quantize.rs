//! `fp8q quantize`: a checkpoint in, a block-scale fp8 checkpoint out.
//!
//! Everything that can be rejected (bad headers, a missing shard, an index
//! that disagrees with its shards, a selected tensor that cannot be
//! quantized, a name collision, a bad `config.json`, an extra file that is
//! not a regular file, nothing selected to quantize) is checked before the
//! first byte is written; only the weights' values are checked as they are
//! read (see [`super::finite`]). Then every shard is streamed through one
//! pipeline ([`pipeline`]): reading, quantizing, writing and
//! flushing on their own threads, several tensors in flight, a fixed set of
//! buffers.

use super::config_json;
use super::device_choice::describe;
use super::durability::Durability;
use super::error::{io, CheckpointError, Result};
use super::index::INDEX_FILE;
use super::output::Staging;
use super::pipeline::{self, OutputFile};
use super::plan::{check_something_to_quantize, plan_shard, ShardPlan};
use super::progress::Progress;
use super::quantizer_stage::Engine;
use super::reader::Shard;
use super::report::{QuantizeReport, QuantizedTensor};
use super::select::Selector;
use super::source::{Source, CONFIG_FILE};
use super::writer::layout;
use crate::config::BlockConfig;
use crate::device::Device;
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
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
    /// Whether the output is flushed to disk before it is renamed into
    /// place (the default) or left to the operating system's write-back
    /// (`--no-sync`); see [`Durability`] for what a crash can lose.
    pub durability: Durability,
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
    let mut engine = Engine::new(device, opts.block).map_err(|e| CheckpointError::Internal {
        file: output.into(),
        reason: format!("starting the quantizer: {e}"),
    })?;
    let mut outputs = Vec::with_capacity(shards.len());
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
        outputs.push(OutputFile { shard, plan, path, layout });
    }
    let durability = opts.durability;
    let stages = pipeline::run(&outputs, &opts.block, &mut engine, progress, durability)?;
    drop(outputs);
    if let Some(folder) = folder {
        if let Some(index) = &folder.index {
            let data_bytes = plans.iter().flat_map(|p| &p.outputs).map(|t| t.byte_len()).sum();
            let path = staging.path().join(INDEX_FILE);
            durability.write_file(&path, index.rewritten(&weight_map, data_bytes).as_bytes())?;
        }
        if let Some(text) = config {
            let path = staging.path().join(CONFIG_FILE);
            durability.write_file(&path, text.as_bytes())?;
        } else {
            notes.push(format!("no {CONFIG_FILE} in the input folder: no quantization_config written"));
        }
        for name in &folder.others {
            if name.ends_with(".safetensors") {
                notes.push(format!("{name}: not part of the checkpoint's index, copied unchanged"));
            }
            super::extras::copy(&folder.dir.join(name), &staging.path().join(name), durability)?;
            report.copied_files += 1;
        }
        // The staged folder's entries, before the rename publishes it.
        durability.sync_dir(staging.path())?;
    }
    report.kernel_time = stages.quantize + stages.transfers;
    report.stages = Some(stages);
    drop(engine);
    drop(shards);
    report.durability = durability;
    staging.commit(durability)?;
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
