//! What happens to each tensor of a shard: copied, or quantized into an fp8
//! `weight` plus an f32 `weight_scale_inv`. Everything that can be rejected
//! is rejected here, before any output is written.

use super::error::{CheckpointError, Result};
use super::finite::NonFiniteLog;
use super::quantize::QuantizeOptions;
use super::reader::{is_quantizable, Shard};
use super::select::Selector;
use quant_kernels::Fp8Format;
use safetensors::Dtype;
use std::collections::HashSet;
use std::path::Path;

/// The suffix DeepSeek checkpoints give a weight's block scales:
/// `w.weight` has its scales in `w.weight_scale_inv` (the factor that turns
/// codes back into values, `w = decode(q) * scale_inv`).
pub const SCALE_SUFFIX: &str = "_scale_inv";

/// The name of the scales of quantized tensor `name`.
pub fn scale_name(name: &str) -> String {
    format!("{name}{SCALE_SUFFIX}")
}

/// The safetensors dtype of fp8 codes. safetensors has a dtype for each
/// format, so no side channel is needed to tell them apart.
pub fn code_dtype(format: Fp8Format) -> Dtype {
    match format {
        Fp8Format::E4M3Fn => Dtype::F8_E4M3,
        Fp8Format::E4M3Fnuz => Dtype::F8_E4M3FNUZ,
    }
}

/// The fp8 format of a code dtype.
pub fn code_format(dtype: Dtype) -> Option<Fp8Format> {
    match dtype {
        Dtype::F8_E4M3 => Some(Fp8Format::E4M3Fn),
        Dtype::F8_E4M3FNUZ => Some(Fp8Format::E4M3Fnuz),
        _ => None,
    }
}

/// Which part of an input tensor an output tensor holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Part {
    /// The input bytes, unchanged.
    Copy,
    /// fp8 codes of a quantized weight.
    Codes,
    /// Block scales of a quantized weight.
    Scales,
}

/// One tensor of an output shard.
#[derive(Clone, Debug)]
pub struct OutputTensor {
    /// Output name.
    pub name: String,
    /// Output dtype.
    pub dtype: Dtype,
    /// Output shape.
    pub shape: Vec<usize>,
    /// The input tensor it comes from.
    pub source: String,
    /// What it holds.
    pub part: Part,
}

impl OutputTensor {
    /// Data bytes: elements times bits, in bytes, as safetensors counts them
    /// (sub-byte dtypes such as F4 and F6_E2M3 are packed).
    pub fn byte_len(&self) -> u64 {
        let elements: u64 = self.shape.iter().map(|&d| d as u64).product();
        elements * self.dtype.bitsize() as u64 / 8
    }
}

/// An input tensor and what to do with it.
#[derive(Clone, Debug)]
pub struct Step {
    /// Input name.
    pub name: String,
    /// Whether it is quantized (`true`) or copied.
    pub quantize: bool,
    /// `[N, K]` when quantized.
    pub rows_cols: (usize, usize),
    /// Input dtype.
    pub dtype: Dtype,
    /// Input data bytes.
    pub bytes: u64,
}

/// The plan of one shard.
#[derive(Clone, Debug)]
pub struct ShardPlan {
    /// Input tensors in file order.
    pub steps: Vec<Step>,
    /// Output tensors (in no particular order; the writer lays them out).
    pub outputs: Vec<OutputTensor>,
    /// Quantize weights that hold NaN or infinity instead of refusing them.
    pub allow_nonfinite: bool,
    /// The weights quantized despite non-finite values.
    pub nonfinite: NonFiniteLog,
}

/// Plans one shard. `taken` holds every tensor name of the checkpoint, so a
/// `*_scale_inv` that already exists anywhere is a collision.
pub fn plan_shard(shard: &Shard, opts: &QuantizeOptions, taken: &HashSet<String>) -> Result<ShardPlan> {
    let (selector, cfg) = (&opts.selector, &opts.block);
    let mut steps = Vec::new();
    let mut outputs = Vec::new();
    for name in shard.names() {
        let info = shard
            .info(name)
            .ok_or_else(|| CheckpointError::TensorMissing { file: shard.path().into(), tensor: name.clone() })?;
        let bytes = (info.data_offsets.1 - info.data_offsets.0) as u64;
        let selected = selector.matches(name);
        let is_matrix = info.shape.len() == 2;
        // The default selection only takes what it can quantize; an explicit
        // pattern takes everything it matches and complains if it cannot.
        // The default selection takes 2-D float matrices (and rejects those in a
        // float type it cannot read, such as an already-fp8 weight); an explicit
        // pattern takes everything it matches and rejects what it cannot quantize.
        let quantize =
            selected && (selector.is_explicit() || (is_matrix && (is_quantizable(info.dtype) || is_float(info.dtype))));
        if !quantize {
            steps.push(Step { name: name.clone(), quantize: false, rows_cols: (0, 0), dtype: info.dtype, bytes });
            outputs.push(OutputTensor {
                name: name.clone(),
                dtype: info.dtype,
                shape: info.shape.clone(),
                source: name.clone(),
                part: Part::Copy,
            });
            continue;
        }
        if !is_matrix {
            return Err(CheckpointError::UnsupportedRank {
                file: shard.path().into(),
                tensor: name.clone(),
                shape: info.shape.clone(),
            });
        }
        if !is_quantizable(info.dtype) {
            return Err(CheckpointError::UnsupportedDtype {
                file: shard.path().into(),
                tensor: name.clone(),
                dtype: info.dtype.to_string(),
            });
        }
        let scales = scale_name(name);
        if taken.contains(&scales) {
            return Err(CheckpointError::NameCollision { file: shard.path().into(), tensor: scales });
        }
        let (n, k) = (info.shape[0], info.shape[1]);
        steps.push(Step { name: name.clone(), quantize: true, rows_cols: (n, k), dtype: info.dtype, bytes });
        outputs.push(OutputTensor {
            name: name.clone(),
            dtype: code_dtype(cfg.format),
            shape: vec![n, k],
            source: name.clone(),
            part: Part::Codes,
        });
        outputs.push(OutputTensor {
            name: scales,
            dtype: Dtype::F32,
            shape: vec![n.div_ceil(cfg.block_rows), k.div_ceil(cfg.block_cols)],
            source: name.clone(),
            part: Part::Scales,
        });
    }
    Ok(ShardPlan { steps, outputs, allow_nonfinite: opts.allow_nonfinite, nonfinite: NonFiniteLog::default() })
}

/// Refuses a run that would quantize nothing: writing a copy of the input with
/// an fp8 `quantization_config` in its `config.json` would mislabel it (and
/// replace the GPTQ or other `quantization_config` it may already have).
/// The message says what the input looks like, so the user can tell a wrong
/// `--pattern` from an already-quantized checkpoint.
pub fn check_something_to_quantize(
    input: &Path,
    shards: &[Shard],
    plans: &[ShardPlan],
    selector: &Selector,
    config: Option<&Path>,
) -> Result<()> {
    if plans.iter().flat_map(|p| &p.steps).any(|s| s.quantize) {
        return Ok(());
    }
    let names: Vec<(&Shard, &String)> = shards.iter().flat_map(|s| s.names().iter().map(move |n| (s, n))).collect();
    let mut reason = if names.is_empty() {
        "the checkpoint holds no tensors".to_string()
    } else {
        let matched: Vec<_> = names.iter().filter(|(_, n)| selector.matches(n)).collect();
        let mut r = format!(
            "none of its {} tensor(s) is a 2-D BF16/F16/F32 weight selected by {} ({} matched by name)",
            names.len(),
            selector.describe(),
            matched.len()
        );
        let integer = matched.iter().find(|(s, n)| s.info(n).is_some_and(|i| is_integer(i.dtype)));
        if let Some((s, n)) = integer {
            let dtype = s.info(n).map(|i| i.dtype.to_string()).unwrap_or_default();
            r += &format!("; `{n}` is {dtype}, so the weights look quantized already");
        }
        if let Some((_, n)) = names.iter().find(|(_, n)| n.ends_with(".qweight")) {
            r += &format!("; `{n}` is a packed integer weight (GPTQ/AWQ): this checkpoint is quantized already");
        }
        r
    };
    let existing = config
        .and_then(|path| std::fs::read(path).ok())
        .and_then(|text| serde_json::from_slice::<serde_json::Value>(&text).ok())
        .and_then(|v| v.get("quantization_config").cloned());
    if let Some(q) = existing {
        let method = q.get("quant_method").and_then(|m| m.as_str()).unwrap_or("unknown");
        reason += &format!("; config.json already has a quantization_config (quant_method {method})");
    }
    reason += "; nothing was written";
    Err(CheckpointError::NothingToQuantize { input: input.to_path_buf(), reason })
}

fn is_integer(dtype: Dtype) -> bool {
    matches!(dtype, Dtype::I8 | Dtype::U8 | Dtype::I16 | Dtype::U16 | Dtype::I32 | Dtype::U32 | Dtype::I64 | Dtype::U64)
}

/// Float dtypes other than the quantizable ones (fp8, f64, ...): a default-
/// selected projection in one of these is reported, not silently copied, since
/// it is most likely an already-quantized checkpoint or an unsupported one.
fn is_float(dtype: Dtype) -> bool {
    matches!(
        dtype,
        Dtype::F8_E4M3 | Dtype::F8_E5M2 | Dtype::F8_E4M3FNUZ | Dtype::F8_E5M2FNUZ | Dtype::F8_E8M0 | Dtype::F64
    )
}
