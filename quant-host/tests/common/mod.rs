//! Helpers shared by the checkpoint tests: build small checkpoints with the
//! `safetensors` crate's own serializer, read outputs back, and compute the
//! expected codes and scales with `cpu::per_block_quant_fp8`.
#![allow(dead_code)]

use half::{bf16, f16};
use quant_host::{cpu, BlockConfig, MatrixShape};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// A tensor to write: name, dtype, shape, little-endian bytes.
#[derive(Clone, Debug)]
pub struct T {
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

/// Deterministic pseudo-random values of roughly unit scale times `scale`.
pub fn values(seed: u64, n: usize, scale: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|i| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let u = (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
            // A few large values so blocks get different scales.
            if i % 211 == 3 {
                u * scale * 40.0
            } else {
                u * scale
            }
        })
        .collect()
}

/// A float tensor of `dtype` filled with [`values`].
pub fn float(name: &str, dtype: Dtype, shape: &[usize], seed: u64) -> T {
    let n = shape.iter().product();
    let v = values(seed, n, 0.05);
    let data = match dtype {
        Dtype::BF16 => v.iter().flat_map(|&x| bf16::from_f32(x).to_le_bytes()).collect(),
        Dtype::F16 => v.iter().flat_map(|&x| f16::from_f32(x).to_le_bytes()).collect(),
        Dtype::F32 => v.iter().flat_map(|&x| x.to_le_bytes()).collect(),
        // Any other dtype: arbitrary bytes of the right length.
        other => (0..n * other.bitsize() / 8).map(|i| (i * 7 + seed as usize) as u8).collect(),
    };
    T { name: name.into(), dtype, shape: shape.to_vec(), data }
}

/// Writes a safetensors file with `format: pt` metadata.
pub fn write_file(path: &Path, tensors: &[T]) {
    let views: Vec<(&str, TensorView<'_>)> = tensors
        .iter()
        .map(|t| (t.name.as_str(), TensorView::new(t.dtype, t.shape.clone(), &t.data).unwrap()))
        .collect();
    let metadata = Some(HashMap::from([("format".to_string(), "pt".to_string())]));
    safetensors::serialize_to_file(views, metadata, path).unwrap();
}

/// Writes a sharded folder: shards, an index (with an extra metadata key to
/// check it is kept), `config.json`, a tokenizer file and a sub-folder.
pub fn write_folder(dir: &Path, shards: &[(&str, Vec<T>)]) {
    std::fs::create_dir_all(dir).unwrap();
    let mut weight_map = BTreeMap::new();
    let mut total = 0;
    for (name, tensors) in shards {
        write_file(&dir.join(name), tensors);
        for t in tensors {
            weight_map.insert(t.name.clone(), name.to_string());
            total += t.data.len();
        }
    }
    let index = serde_json::json!({"metadata": {"total_size": total, "note": "kept"}, "weight_map": weight_map});
    std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();
    std::fs::write(
        dir.join("config.json"),
        r#"{"architectures": ["DeepseekV3ForCausalLM"], "hidden_size": 256, "torch_dtype": "bfloat16"}"#,
    )
    .unwrap();
    std::fs::write(dir.join("tokenizer.json"), b"{\"tokenizer\": 1}").unwrap();
    std::fs::create_dir_all(dir.join("extra")).unwrap();
    std::fs::write(dir.join("extra/notes.txt"), b"hello").unwrap();
}

/// Tensors by name: (dtype, shape, bytes).
pub type Tensors = BTreeMap<String, (Dtype, Vec<usize>, Vec<u8>)>;

/// Every tensor of a safetensors file, and the metadata.
pub fn read_file(path: &Path) -> (Tensors, HashMap<String, String>) {
    let bytes = std::fs::read(path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let tensors =
        st.tensors().into_iter().map(|(n, v)| (n, (v.dtype(), v.shape().to_vec(), v.data().to_vec()))).collect();
    let (_, metadata) = SafeTensors::read_metadata(&bytes).unwrap();
    (tensors, metadata.metadata().clone().unwrap_or_default())
}

/// The codes and scales `cpu::per_block_quant_fp8` gives for a tensor.
pub fn reference(t: &T, cfg: &BlockConfig) -> (Vec<u8>, Vec<f32>) {
    let (n, k) = (t.shape[0], t.shape[1]);
    let shape = MatrixShape::new(n, k).unwrap();
    let mut q = vec![0u8; n * k];
    let mut s = vec![0f32; n.div_ceil(cfg.block_rows) * k.div_ceil(cfg.block_cols)];
    let words = |size: usize| t.data.chunks_exact(size);
    match t.dtype {
        Dtype::BF16 => {
            let w: Vec<bf16> = words(2).map(|c| bf16::from_le_bytes([c[0], c[1]])).collect();
            cpu::per_block_quant_fp8(&w, shape, cfg, &mut q, &mut s).unwrap()
        }
        Dtype::F16 => {
            let w: Vec<f16> = words(2).map(|c| f16::from_le_bytes([c[0], c[1]])).collect();
            cpu::per_block_quant_fp8(&w, shape, cfg, &mut q, &mut s).unwrap()
        }
        Dtype::F32 => {
            let w: Vec<f32> = words(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
            cpu::per_block_quant_fp8(&w, shape, cfg, &mut q, &mut s).unwrap()
        }
        other => panic!("no reference for {other}"),
    }
    (q, s)
}

pub fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Every file under `dir` (recursively) with its contents.
pub fn snapshot(path: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    if path.is_file() {
        out.insert(path.to_path_buf(), std::fs::read(path).unwrap());
        return out;
    }
    for entry in std::fs::read_dir(path).unwrap() {
        out.extend(snapshot(&entry.unwrap().path()));
    }
    out
}

/// Names in `dir` that look like leftovers of an interrupted run.
pub fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".fp8q-"))
        .collect()
}

/// A small single-file checkpoint with projections in all three input
/// dtypes, N and K tails, and tensors that must be copied.
pub fn small_model() -> Vec<T> {
    vec![
        float("model.embed_tokens.weight", Dtype::BF16, &[50, 64], 1),
        float("model.layers.0.input_layernorm.weight", Dtype::BF16, &[64], 2),
        float("model.layers.0.self_attn.q_a_proj.weight", Dtype::BF16, &[300, 260], 3),
        float("model.layers.0.self_attn.o_proj.weight", Dtype::F32, &[128, 256], 4),
        float("model.layers.0.mlp.gate_proj.weight", Dtype::F16, &[129, 129], 5),
        float("model.layers.0.mlp.gate.weight", Dtype::BF16, &[8, 64], 6),
        float("model.layers.0.self_attn.q_a_proj.bias", Dtype::F32, &[300], 7),
        float("model.layers.0.mlp.tiny_proj.weight", Dtype::BF16, &[1, 1], 8),
        float("position_ids", Dtype::I64, &[16], 9),
        float("lm_head.weight", Dtype::BF16, &[50, 64], 10),
    ]
}

/// The names [`small_model`]'s default selection quantizes.
pub const SMALL_QUANTIZED: [&str; 4] = [
    "model.layers.0.self_attn.q_a_proj.weight",
    "model.layers.0.self_attn.o_proj.weight",
    "model.layers.0.mlp.gate_proj.weight",
    "model.layers.0.mlp.tiny_proj.weight",
];

/// Checks a quantized safetensors file against its inputs, tensor by tensor:
/// quantized weights bit-identical to the CPU reference (codes and scales),
/// everything else byte-identical, nothing else present.
pub fn check_output(inputs: &[T], quantized: &[&str], out: &Tensors, cfg: &BlockConfig) {
    let code_dtype = match cfg.format {
        quant_host::Fp8Format::E4M3Fn => Dtype::F8_E4M3,
        quant_host::Fp8Format::E4M3Fnuz => Dtype::F8_E4M3FNUZ,
    };
    let mut expected_names = Vec::new();
    for t in inputs {
        let got = out.get(&t.name).unwrap_or_else(|| panic!("{} missing from output", t.name));
        expected_names.push(t.name.clone());
        if quantized.contains(&t.name.as_str()) {
            let (codes, scales) = reference(t, cfg);
            assert_eq!(got.0, code_dtype, "{}", t.name);
            assert_eq!(got.1, t.shape, "{}", t.name);
            assert!(got.2 == codes, "{}: codes differ from the CPU reference", t.name);
            let scale_name = format!("{}_scale_inv", t.name);
            let s = out.get(&scale_name).unwrap_or_else(|| panic!("{scale_name} missing"));
            assert_eq!(s.0, Dtype::F32);
            assert_eq!(s.1, vec![t.shape[0].div_ceil(cfg.block_rows), t.shape[1].div_ceil(cfg.block_cols)]);
            assert!(s.2 == f32_bytes(&scales), "{scale_name}: scales differ from the CPU reference");
            expected_names.push(scale_name);
        } else {
            assert_eq!((&got.0, &got.1), (&t.dtype, &t.shape), "{}", t.name);
            assert!(got.2 == t.data, "{}: copied bytes differ", t.name);
        }
    }
    expected_names.sort();
    let got_names: Vec<String> = out.keys().cloned().collect();
    assert_eq!(got_names, expected_names);
}
