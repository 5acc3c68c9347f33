//! What happens to each tensor of a shard: copied, or quantized into an fp8
//! `weight` plus an f32 `weight_scale_inv`. Everything that can be rejected
//! is rejected here, before any output is written.

use super::error::{CheckpointError, Result};
use super::reader::{is_quantizable, Shard};
use super::select::Selector;
use crate::config::BlockConfig;
use quant_kernels::Fp8Format;
use safetensors::Dtype;
use std::collections::HashSet;

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
    /// Data bytes.
    pub fn byte_len(&self) -> u64 {
        let elements: u64 = self.shape.iter().map(|&d| d as u64).product();
        elements * (self.dtype.bitsize() as u64 / 8)
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
}

/// Plans one shard. `taken` holds every tensor name of the checkpoint, so a
/// `*_scale_inv` that already exists anywhere is a collision.
pub fn plan_shard(shard: &Shard, selector: &Selector, cfg: &BlockConfig, taken: &HashSet<String>) -> Result<ShardPlan> {
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
    Ok(ShardPlan { steps, outputs })
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
