//! The built-in default run of `fp8q`: a small synthetic checkpoint with
//! DeepSeek-V4-Pro projection shapes (and DeepSeek-V3's tail shapes),
//! quantized and verified end to end. It shows what the tool does on any
//! machine, with no model download, in a few seconds.

use super::error::{io, CheckpointError, Result};
use super::index::INDEX_FILE;
use super::progress::{Progress, Silent};
use super::quantize::{quantize, QuantizeOptions};
use super::report::{QuantizeReport, VerifyReport};
use super::verify::verify;
use crate::device::Device;
use half::{bf16, f16};
use safetensors::tensor::TensorView;
use safetensors::Dtype;
use std::collections::BTreeMap;
use std::path::Path;

/// One tensor of the synthetic checkpoint.
#[derive(Clone, Copy, Debug)]
pub struct SyntheticTensor {
    /// Shard number (0 or 1).
    pub shard: usize,
    /// Tensor name.
    pub name: &'static str,
    /// Shape.
    pub shape: &'static [usize],
    /// Dtype: BF16, F16 or F32.
    pub dtype: Dtype,
}

const fn t(shard: usize, name: &'static str, shape: &'static [usize], dtype: Dtype) -> SyntheticTensor {
    SyntheticTensor { shard, name, shape, dtype }
}

/// The synthetic checkpoint: V4-Pro `wq_a`, `wkv` and `wo_b` (at 8-way tensor
/// parallelism), V3's `kv_a` (576) and fused `q_a + kv_a` (2112) N tails,
/// small odd shapes in f32 and f16, and the tensors that must be copied
/// (embedding, norms, router, LM head).
pub const SYNTHETIC: &[SyntheticTensor] = &[
    t(0, "embed.weight", &[512, 7168], Dtype::BF16),
    t(0, "layers.0.attn_norm.weight", &[7168], Dtype::BF16),
    t(0, "layers.0.attn.wq_a.weight", &[1536, 7168], Dtype::BF16),
    t(0, "layers.0.attn.q_norm.weight", &[1536], Dtype::BF16),
    t(0, "layers.0.attn.wkv.weight", &[512, 7168], Dtype::BF16),
    t(0, "layers.0.attn.kv_norm.weight", &[512], Dtype::BF16),
    t(0, "layers.0.attn.wo_b.weight", &[7168, 2048], Dtype::BF16),
    t(1, "layers.0.ffn_norm.weight", &[7168], Dtype::F32),
    t(1, "layers.0.ffn.gate.weight", &[64, 7168], Dtype::BF16),
    t(1, "layers.0.ffn.gate.bias", &[64], Dtype::F32),
    t(1, "layers.1.attn.kv_a.weight", &[576, 7168], Dtype::BF16),
    t(1, "layers.1.attn.q_kv_a.weight", &[2112, 7168], Dtype::BF16),
    t(1, "layers.1.attn.odd.weight", &[130, 300], Dtype::F32),
    t(1, "layers.1.attn.odd_f16.weight", &[129, 100], Dtype::F16),
    t(1, "norm.weight", &[7168], Dtype::F32),
    t(1, "head.weight", &[512, 7168], Dtype::BF16),
];

/// Deterministic weights: roughly normal, std 0.02, with a few outlier rows,
/// one spike per tensor and an all-zero 128x128 block in 2-D tensors (its
/// scale is `eps / fp8_max` and it must come back as exact zeros).
pub fn synthetic_values(name: &str, shape: &[usize]) -> Vec<f32> {
    let mut state = name.bytes().fold(0x9E37_79B9_7F4A_7C15u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01B3));
    let mut next = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let cols = shape.get(1).copied().unwrap_or(1).max(1);
    let len: usize = shape.iter().product();
    let mut values: Vec<f32> = (0..len)
        .map(|i| {
            // Sum of four uniforms: close enough to a normal for weights.
            let bits = next();
            let u = |s: u32| ((bits >> s) & 0xFFFF) as f32 / 65536.0;
            let x = (u(0) + u(16) + u(32) + u(48) - 2.0) * 1.732 * 0.02;
            if (i / cols) % 97 == 5 {
                x * 8.0
            } else {
                x
            }
        })
        .collect();
    if let Some(v) = values.get_mut(len / 3) {
        *v = 1.5;
    }
    if shape.len() == 2 && shape[0] >= 256 && shape[1] >= 256 {
        for r in 128..256 {
            values[r * cols + 128..r * cols + 256].fill(0.0);
        }
    }
    values
}

fn to_bytes(values: &[f32], dtype: Dtype) -> Vec<u8> {
    match dtype {
        Dtype::BF16 => values.iter().flat_map(|&v| bf16::from_f32(v).to_le_bytes()).collect(),
        Dtype::F16 => values.iter().flat_map(|&v| f16::from_f32(v).to_le_bytes()).collect(),
        _ => values.iter().flat_map(|&v| v.to_le_bytes()).collect(),
    }
}

/// Writes [`SYNTHETIC`] as a sharded checkpoint folder: two shards, an index,
/// a `config.json` and a tokenizer file. Written with the `safetensors`
/// crate's own serializer, independent of this tool's writer.
pub fn write_synthetic_checkpoint(dir: &Path) -> Result<()> {
    write_synthetic_checkpoint_copies(dir, 1)
}

/// [`write_synthetic_checkpoint`] with the layer tensors repeated `copies`
/// times (`layers.{k}` becomes `layers.{k + 2 c}` in copy `c`), two shards
/// per copy: about 98 MiB of bf16 per copy, so 44 copies make a 4 GiB
/// checkpoint for measuring throughput. Each shard is generated and written
/// before the next, so memory stays at one shard's size.
pub fn write_synthetic_checkpoint_copies(dir: &Path, copies: usize) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let shards = 2 * copies.max(1);
    let mut weight_map = BTreeMap::new();
    let mut total_size = 0usize;
    for copy in 0..copies.max(1) {
        for half in 0..2 {
            let shard_name = format!("model-{:05}-of-{shards:05}.safetensors", 2 * copy + half + 1);
            let tensors: Vec<(String, Vec<usize>, Dtype, Vec<u8>)> = SYNTHETIC
                .iter()
                .filter(|t| t.shard == half && (copy == 0 || t.name.starts_with("layers.")))
                .map(|t| {
                    let name = renumber_layer(t.name, 2 * copy);
                    let data = to_bytes(&synthetic_values(&name, t.shape), t.dtype);
                    (name, t.shape.to_vec(), t.dtype, data)
                })
                .collect();
            let path = dir.join(&shard_name);
            let views = tensors
                .iter()
                .map(|(name, shape, dtype, data)| {
                    total_size += data.len();
                    weight_map.insert(name.clone(), shard_name.clone());
                    TensorView::new(*dtype, shape.clone(), data).map(|v| (name.as_str(), v))
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| CheckpointError::Internal { file: path.clone(), reason: e.to_string() })?;
            let metadata = Some([("format".to_string(), "pt".to_string())].into_iter().collect());
            // Serialized in memory and written with `std::fs::write`, so the
            // file gets the usual mode (0666 less the umask), as the quantized
            // output does: `serialize_to_file` goes through a 0600 temporary file.
            let bytes = safetensors::serialize(views, metadata)
                .map_err(|e| CheckpointError::Internal { file: path.clone(), reason: e.to_string() })?;
            std::fs::write(&path, bytes).map_err(io(&path))?;
        }
    }
    let index = serde_json::json!({"metadata": {"total_size": total_size}, "weight_map": weight_map});
    let config = serde_json::json!({
        "model_type": "fp8q-synthetic",
        "hidden_size": 7168,
        "torch_dtype": "bfloat16",
    });
    for (name, value) in [(INDEX_FILE, index), ("config.json", config), ("tokenizer.json", serde_json::json!({}))] {
        let path = dir.join(name);
        std::fs::write(&path, serde_json::to_string_pretty(&value).unwrap_or_default()).map_err(io(&path))?;
    }
    Ok(())
}

/// `layers.{k}.rest` -> `layers.{k + offset}.rest`; other names unchanged.
fn renumber_layer(name: &str, offset: usize) -> String {
    let Some(rest) = name.strip_prefix("layers.") else { return name.to_string() };
    match rest.split_once('.') {
        Some((k, tail)) => match k.parse::<usize>() {
            Ok(k) => format!("layers.{}.{tail}", k + offset),
            Err(_) => name.to_string(),
        },
        None => name.to_string(),
    }
}

/// Both reports of a default run.
#[derive(Debug)]
pub struct DemoReport {
    /// The quantization.
    pub quantize: QuantizeReport,
    /// The verification of its output.
    pub verify: VerifyReport,
}

/// Writes the synthetic checkpoint under `work_dir/original`, quantizes it
/// into `work_dir/quantized` with the default options and verifies it.
pub fn run_demo(work_dir: &Path, device: &Device, progress: &dyn Progress) -> Result<DemoReport> {
    let original = work_dir.join("original");
    let quantized = work_dir.join("quantized");
    write_synthetic_checkpoint(&original)?;
    let quantize = quantize(&original, &quantized, &QuantizeOptions::default(), device, progress)?;
    let verify = verify(&original, &quantized, &Silent)?;
    Ok(DemoReport { quantize, verify })
}
