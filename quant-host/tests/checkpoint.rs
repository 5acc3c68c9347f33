//! The checkpoint tool through its library API: outputs compared tensor by
//! tensor with `cpu::per_block_quant_fp8`, and every rejected input checked
//! for a message naming file and tensor, no output left, input unchanged.

mod common;

use common::*;
use quant_host::checkpoint::plan::{OutputTensor, Part};
use quant_host::checkpoint::writer::{layout, FileWriter};
use quant_host::checkpoint::{
    quantize, select_device, verify, CheckpointError, DeviceChoice, Outcome, QuantizeOptions, Selector, Silent,
};
use quant_host::{BlockConfig, Device, Fp8Format, ScaleMode};
use safetensors::tensor::TensorView;
use safetensors::Dtype;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

fn run(
    input: &Path,
    output: &Path,
    opts: &QuantizeOptions,
) -> Result<quant_host::checkpoint::QuantizeReport, CheckpointError> {
    quantize(input, output, opts, &Device::Cpu, &Silent)
}

#[test]
fn single_file_matches_cpu_reference() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("model.safetensors");
    let output = dir.path().join("out.safetensors");
    let tensors = small_model();
    write_file(&input, &tensors);
    let before = snapshot(&input);

    let report = run(&input, &output, &QuantizeOptions::default()).unwrap();
    let names: Vec<&str> = report.quantized.iter().map(|t| t.name.as_str()).collect();
    let mut expected = SMALL_QUANTIZED.to_vec();
    expected.sort();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(sorted, expected);
    assert_eq!(report.copied, tensors.len() - SMALL_QUANTIZED.len());

    let (out, metadata) = read_file(&output);
    check_output(&tensors, &SMALL_QUANTIZED, &out, &BlockConfig::default());
    assert_eq!(metadata.get("format").map(String::as_str), Some("pt"));
    assert_eq!(metadata.get("fp8q.weight_block_size").map(String::as_str), Some("128,128"));
    assert_eq!(metadata.get("fp8q.fmt").map(String::as_str), Some("e4m3fn"));
    assert_eq!(snapshot(&input), before, "input modified");
    assert!(leftovers(dir.path()).is_empty());

    let v = verify(&input, &output, &Silent).unwrap();
    assert!(v.passed(), "{v}");
    assert_eq!(v.quantized().count(), SMALL_QUANTIZED.len());
    for (name, stats) in v.quantized() {
        assert!(stats.max_err_over_scale <= 16.0, "{name}: {stats:?}");
        assert!(stats.max_abs_err > 0.0, "{name}: suspiciously exact");
    }
}

fn sharded_inputs() -> Vec<(&'static str, Vec<T>)> {
    vec![
        (
            "model-00001-of-00002.safetensors",
            vec![
                float("model.embed_tokens.weight", Dtype::BF16, &[40, 256], 11),
                float("model.layers.0.self_attn.kv_a_proj_with_mqa.weight", Dtype::BF16, &[576, 256], 12),
                float("model.layers.0.self_attn.kv_a_layernorm.weight", Dtype::BF16, &[512], 13),
            ],
        ),
        (
            "model-00002-of-00002.safetensors",
            vec![
                float("model.layers.0.mlp.experts.0.down_proj.weight", Dtype::BF16, &[256, 130], 14),
                float("model.layers.0.mlp.gate.weight", Dtype::F32, &[4, 256], 15),
                float("model.norm.weight", Dtype::BF16, &[256], 16),
                float("lm_head.weight", Dtype::BF16, &[40, 256], 17),
            ],
        ),
    ]
}

const SHARDED_QUANTIZED: [&str; 2] =
    ["model.layers.0.self_attn.kv_a_proj_with_mqa.weight", "model.layers.0.mlp.experts.0.down_proj.weight"];

fn check_folder(input: &Path, output: &Path, shards: &[(&str, Vec<T>)], cfg: &BlockConfig) {
    let mut expected_map = BTreeMap::new();
    let mut total = 0u64;
    for (name, tensors) in shards {
        let (out, _) = read_file(&output.join(name));
        check_output(tensors, &SHARDED_QUANTIZED, &out, cfg);
        for (tensor, (_, _, data)) in &out {
            expected_map.insert(tensor.clone(), serde_json::Value::from(*name));
            total += data.len() as u64;
        }
    }
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(output.join("model.safetensors.index.json")).unwrap()).unwrap();
    assert_eq!(index["weight_map"], serde_json::Value::Object(expected_map.into_iter().collect()));
    assert_eq!(index["metadata"]["total_size"], total);
    assert_eq!(index["metadata"]["note"], "kept");
    for copied in ["tokenizer.json", "extra/notes.txt"] {
        assert_eq!(std::fs::read(input.join(copied)).unwrap(), std::fs::read(output.join(copied)).unwrap());
    }
}

#[test]
fn sharded_folder_with_index_and_config() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("model");
    let output = dir.path().join("model-fp8");
    let shards = sharded_inputs();
    write_folder(&input, &shards);
    let before = snapshot(&input);

    let report = run(&input, &output, &QuantizeOptions::default()).unwrap();
    assert_eq!(report.quantized.len(), 2);
    assert_eq!(report.files, 2);
    check_folder(&input, &output, &shards, &BlockConfig::default());
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(output.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        config["quantization_config"],
        serde_json::json!({"quant_method": "fp8", "fmt": "e4m3", "activation_scheme": "dynamic", "weight_block_size": [128, 128]})
    );
    assert_eq!(config["architectures"][0], "DeepseekV3ForCausalLM");
    assert_eq!(snapshot(&input), before, "input modified");
    assert!(leftovers(dir.path()).is_empty());
    assert!(verify(&input, &output, &Silent).unwrap().passed());
}

#[test]
fn fnuz_ue8m0_and_block_size_options() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("model");
    let output = dir.path().join("model-fp8");
    let shards = sharded_inputs();
    write_folder(&input, &shards);
    let cfg = BlockConfig {
        format: Fp8Format::E4M3Fnuz,
        scale_mode: ScaleMode::Ue8m0,
        block_rows: 64,
        block_cols: 128,
        ..BlockConfig::default()
    };
    run(&input, &output, &QuantizeOptions { block: cfg, ..Default::default() }).unwrap();
    check_folder(&input, &output, &shards, &cfg);
    let (out, metadata) = read_file(&output.join(shards[0].0));
    let (_, shape, scales) = &out["model.layers.0.self_attn.kv_a_proj_with_mqa.weight_scale_inv"];
    assert_eq!(shape, &vec![9, 2]);
    for s in scales.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])) {
        assert_eq!(s.to_bits() & 0x7F_FFFF, 0, "ue8m0 scale {s} is not a power of two");
    }
    assert_eq!(metadata.get("fp8q.scale_fmt").map(String::as_str), Some("ue8m0"));
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(output.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        config["quantization_config"],
        serde_json::json!({"quant_method": "fp8", "fmt": "e4m3fnuz", "activation_scheme": "dynamic", "weight_block_size": [64, 128], "scale_fmt": "ue8m0"})
    );
    let v = verify(&input, &output, &Silent).unwrap();
    assert!(v.passed(), "{v}");
    for (_, s) in v.quantized() {
        assert_eq!(s.format, Fp8Format::E4M3Fnuz);
        assert_eq!(s.block, (64, 128));
        assert!(s.max_err_over_scale <= 8.0);
    }
}

#[test]
fn explicit_pattern_and_exclude() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("m.safetensors");
    let tensors = small_model();
    write_file(&input, &tensors);
    let output = dir.path().join("o.safetensors");
    let selector = Selector::new(Some(r"self_attn\..*\.weight$"), None).unwrap();
    let report = run(&input, &output, &QuantizeOptions { selector, ..Default::default() }).unwrap();
    let names: Vec<&str> = report.quantized.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names.len(), 2, "{names:?}");
    let (out, _) = read_file(&output);
    check_output(
        &tensors,
        &["model.layers.0.self_attn.q_a_proj.weight", "model.layers.0.self_attn.o_proj.weight"],
        &out,
        &BlockConfig::default(),
    );

    let output = dir.path().join("o2.safetensors");
    let selector = Selector::new(None, Some("o_proj|gate_proj|tiny")).unwrap();
    let report = run(&input, &output, &QuantizeOptions { selector, ..Default::default() }).unwrap();
    let names: Vec<&str> = report.quantized.iter().map(|t| t.name.as_str()).collect();
    // The user's exclude replaces the default one: the embedding, router and head are now selected.
    assert!(names.contains(&"model.embed_tokens.weight"), "{names:?}");
    assert!(!names.contains(&"model.layers.0.self_attn.o_proj.weight"), "{names:?}");
}

#[test]
fn verify_catches_changed_codes_and_copies() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("m.safetensors");
    let output = dir.path().join("o.safetensors");
    write_file(&input, &small_model());
    run(&input, &output, &QuantizeOptions::default()).unwrap();
    assert!(verify(&input, &output, &Silent).unwrap().passed());

    let (mut out, _) = read_file(&output);
    // One code moved by one step: at most a full ulp off, over the half-ulp bound.
    let q = "model.layers.0.self_attn.q_a_proj.weight";
    let code = &mut out.get_mut(q).unwrap().2[1000];
    *code = if *code & 0x7F >= 0x7E { *code - 1 } else { *code + 1 };
    // One copied byte changed.
    out.get_mut("lm_head.weight").unwrap().2[3] ^= 1;
    // One tensor dropped.
    out.remove("model.norm.weight");
    out.remove("model.layers.0.input_layernorm.weight");
    let tampered = dir.path().join("t.safetensors");
    let tensors: Vec<T> = out.into_iter().map(|(name, (dtype, shape, data))| T { name, dtype, shape, data }).collect();
    write_file(&tampered, &tensors);

    let v = verify(&input, &tampered, &Silent).unwrap();
    assert!(!v.passed());
    let outcome = |name: &str| v.checks.iter().find(|c| c.name == name).map(|c| c.outcome.clone()).unwrap();
    match outcome(q) {
        Outcome::Quantized(s) => {
            assert_eq!(s.violations, 1, "{s:?}");
            assert_eq!(s.first_violation, Some((1000 / 260, 1000 % 260)));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(outcome("lm_head.weight"), Outcome::Failed(why) if why.contains("bytes differ")));
    assert!(
        matches!(outcome("model.layers.0.input_layernorm.weight"), Outcome::Failed(why) if why.contains("missing"))
    );
    assert_eq!(outcome("model.layers.0.self_attn.o_proj.weight").clone(), {
        let Outcome::Quantized(s) = outcome("model.layers.0.self_attn.o_proj.weight") else { panic!() };
        assert!(s.passed());
        Outcome::Quantized(s)
    });
    let text = v.to_string();
    assert!(text.contains("FAIL model.layers.0.self_attn.q_a_proj.weight"), "{text}");
    assert!(text.contains("result: FAIL"), "{text}");
}

/// Runs a quantization that must fail: checks the message names `needles`,
/// that no output or staging folder is left and that the input is unchanged.
fn expect_failure(input: &Path, output: &Path, opts: &QuantizeOptions, needles: &[&str]) -> CheckpointError {
    let before = snapshot(input);
    let err = run(input, output, opts).unwrap_err();
    let message = err.to_string();
    for needle in needles {
        assert!(message.contains(needle), "`{message}` does not name `{needle}`");
    }
    assert!(!output.exists(), "output left behind after: {message}");
    assert!(leftovers(output.parent().unwrap()).is_empty(), "staging left behind after: {message}");
    assert_eq!(snapshot(input), before, "input modified");
    err
}

#[test]
fn rejects_wrong_dtype_for_selected_weight() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("m.safetensors");
    let mut tensors = small_model();
    tensors.push(float("model.layers.1.self_attn.q_b_proj.weight", Dtype::F8_E4M3, &[128, 128], 20));
    write_file(&input, &tensors);
    let err = expect_failure(
        &input,
        &dir.path().join("o.safetensors"),
        &QuantizeOptions::default(),
        &["m.safetensors", "model.layers.1.self_attn.q_b_proj.weight", "F8_E4M3"],
    );
    assert!(matches!(err, CheckpointError::UnsupportedDtype { .. }), "{err:?}");

    // An explicit pattern that selects an integer matrix (the default copies it).
    let mut tensors = small_model();
    tensors.push(float("model.rotary.table", Dtype::I32, &[4, 4], 21));
    write_file(&input, &tensors);
    let output = dir.path().join("o.safetensors");
    run(&input, &output, &QuantizeOptions::default()).unwrap();
    let (out, _) = read_file(&output);
    assert_eq!(out["model.rotary.table"].0, Dtype::I32);
    std::fs::remove_file(&output).unwrap();
    let selector = Selector::new(Some("rotary"), None).unwrap();
    let err = expect_failure(
        &input,
        &output,
        &QuantizeOptions { selector, ..Default::default() },
        &["m.safetensors", "model.rotary.table", "I32"],
    );
    assert!(matches!(err, CheckpointError::UnsupportedDtype { .. }), "{err:?}");
}

#[test]
fn rejects_one_dimensional_tensor_selected_by_explicit_pattern() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("m.safetensors");
    write_file(&input, &small_model());
    let selector = Selector::new(Some("layernorm"), None).unwrap();
    let err = expect_failure(
        &input,
        &dir.path().join("o.safetensors"),
        &QuantizeOptions { selector, ..Default::default() },
        &["m.safetensors", "model.layers.0.input_layernorm.weight", "[64]"],
    );
    assert!(matches!(err, CheckpointError::UnsupportedRank { .. }), "{err:?}");
}

#[test]
fn rejects_bad_header() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("garbage.safetensors");
    let mut bytes = 40u64.to_le_bytes().to_vec();
    bytes.extend_from_slice(b"{\"a\": this is not json at all............");
    std::fs::write(&input, &bytes).unwrap();
    let err = expect_failure(
        &input,
        &dir.path().join("o.safetensors"),
        &QuantizeOptions::default(),
        &["garbage.safetensors", "header"],
    );
    assert!(matches!(err, CheckpointError::BadHeader { .. }), "{err:?}");

    std::fs::write(&input, b"abc").unwrap();
    expect_failure(&input, &dir.path().join("o.safetensors"), &QuantizeOptions::default(), &["garbage.safetensors"]);
}

#[test]
fn rejects_truncated_file_naming_the_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("m.safetensors");
    write_file(&input, &small_model());
    let bytes = std::fs::read(&input).unwrap();
    let (_, metadata) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let last = metadata.offset_keys().pop().unwrap();
    std::fs::write(&input, &bytes[..bytes.len() - 3]).unwrap();
    let err = expect_failure(
        &input,
        &dir.path().join("o.safetensors"),
        &QuantizeOptions::default(),
        &["m.safetensors", &last],
    );
    assert!(matches!(err, CheckpointError::Truncated { .. }), "{err:?}");
}

#[test]
fn rejects_missing_shard() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("model");
    write_folder(&input, &sharded_inputs());
    std::fs::remove_file(input.join("model-00002-of-00002.safetensors")).unwrap();
    let err = expect_failure(
        &input,
        &dir.path().join("out"),
        &QuantizeOptions::default(),
        &["model.safetensors.index.json", "model-00002-of-00002.safetensors"],
    );
    assert!(matches!(err, CheckpointError::MissingShard { .. }), "{err:?}");
}

#[test]
fn rejects_tensor_missing_from_its_shard() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("model");
    write_folder(&input, &sharded_inputs());
    let index_path = input.join("model.safetensors.index.json");
    let mut index: serde_json::Value = serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    index["weight_map"]["model.layers.0.mlp.experts.1.up_proj.weight"] = "model-00001-of-00002.safetensors".into();
    std::fs::write(&index_path, index.to_string()).unwrap();
    let err = expect_failure(
        &input,
        &dir.path().join("out"),
        &QuantizeOptions::default(),
        &["model-00001-of-00002.safetensors", "model.layers.0.mlp.experts.1.up_proj.weight"],
    );
    assert!(matches!(err, CheckpointError::TensorMissing { .. }), "{err:?}");
}

#[test]
fn rejects_index_naming_a_path_outside_the_folder() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("model");
    write_folder(&input, &sharded_inputs());
    let index_path = input.join("model.safetensors.index.json");
    let mut index: serde_json::Value = serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    index["weight_map"]["lm_head.weight"] = "../elsewhere.safetensors".into();
    std::fs::write(&index_path, index.to_string()).unwrap();
    let err =
        expect_failure(&input, &dir.path().join("out"), &QuantizeOptions::default(), &["index", "lm_head.weight"]);
    assert!(matches!(err, CheckpointError::BadIndex { .. }), "{err:?}");
}

#[test]
fn rejects_scale_name_collision() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("m.safetensors");
    let mut tensors = small_model();
    tensors.push(float("model.layers.0.self_attn.o_proj.weight_scale_inv", Dtype::F32, &[1, 2], 30));
    write_file(&input, &tensors);
    let err = expect_failure(
        &input,
        &dir.path().join("o.safetensors"),
        &QuantizeOptions::default(),
        &["m.safetensors", "model.layers.0.self_attn.o_proj.weight_scale_inv"],
    );
    assert!(matches!(err, CheckpointError::NameCollision { .. }), "{err:?}");
}

#[test]
fn refuses_to_overwrite_without_force_and_replaces_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("model");
    let output = dir.path().join("out");
    write_folder(&input, &sharded_inputs());
    std::fs::create_dir(&output).unwrap();
    std::fs::write(output.join("old.txt"), b"old").unwrap();

    let err = run(&input, &output, &QuantizeOptions::default()).unwrap_err();
    assert!(matches!(err, CheckpointError::OutputExists { .. }), "{err:?}");
    assert!(err.to_string().contains("--force"));
    assert_eq!(std::fs::read(output.join("old.txt")).unwrap(), b"old");

    // A failing run with --force must leave the existing output alone.
    let bad = dir.path().join("bad.safetensors");
    std::fs::write(&bad, b"not a safetensors file").unwrap();
    let force = QuantizeOptions { overwrite: true, ..Default::default() };
    assert!(run(&bad, &output, &force).is_err());
    assert_eq!(std::fs::read(output.join("old.txt")).unwrap(), b"old");

    run(&input, &output, &force).unwrap();
    assert!(!output.join("old.txt").exists());
    check_folder(&input, &output, &sharded_inputs(), &BlockConfig::default());
    assert!(leftovers(dir.path()).is_empty());
}

#[test]
fn refuses_output_that_overlaps_input() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("model");
    write_folder(&input, &sharded_inputs());
    let before = snapshot(&input);
    let force = QuantizeOptions { overwrite: true, ..Default::default() };
    for output in [input.clone(), input.join("inside"), dir.path().to_path_buf()] {
        let err = run(&input, &output, &force).unwrap_err();
        assert!(matches!(err, CheckpointError::OutputOverlapsInput { .. }), "{output:?}: {err:?}");
    }
    assert_eq!(snapshot(&input), before);
}

#[test]
fn rejects_bad_pattern_and_block_size() {
    let err = Selector::new(Some("a(b"), None).unwrap_err();
    assert!(err.to_string().contains("a(b"));
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("m.safetensors");
    write_file(&input, &small_model());
    let opts = QuantizeOptions { block: BlockConfig { block_rows: 0, ..Default::default() }, ..Default::default() };
    let err = expect_failure(&input, &dir.path().join("o.safetensors"), &opts, &["block"]);
    assert!(matches!(err, CheckpointError::InvalidOption(_)), "{err:?}");
}

#[test]
fn forcing_the_gpu_without_one_names_the_reason() {
    match (Device::best_available(), select_device(DeviceChoice::Gpu)) {
        ((Device::Cpu, Some(why)), Err(err)) => {
            assert!(matches!(err, CheckpointError::NoGpu(_)));
            assert!(err.to_string().contains(&why.to_string()), "{err}");
        }
        ((Device::Cuda(_), _), Ok(selected)) => assert!(matches!(selected.device, Device::Cuda(_))),
        (available, forced) => panic!("auto gave {:?}, forcing the GPU gave {forced:?}", available.0),
    }
    assert!(matches!(select_device(DeviceChoice::Cpu).unwrap().device, Device::Cpu));
}

#[test]
fn streamed_writer_matches_the_safetensors_serializer() {
    // Same tensors, same single metadata key: the streamed file must be the
    // bytes `safetensors::serialize` produces (layout, alignment, padding).
    let tensors = [
        float("b.weight", Dtype::F8_E4M3, &[3, 5], 1),
        float("a.weight_scale_inv", Dtype::F32, &[1, 1], 2),
        float("c", Dtype::BF16, &[7], 3),
        float("a.weight", Dtype::F8_E4M3, &[2, 2], 4),
        float("ids", Dtype::I64, &[2], 5),
    ];
    let views: Vec<(&str, TensorView<'_>)> = tensors
        .iter()
        .map(|t| (t.name.as_str(), TensorView::new(t.dtype, t.shape.clone(), &t.data).unwrap()))
        .collect();
    let expected =
        safetensors::serialize(views, Some(HashMap::from([("format".to_string(), "pt".to_string())]))).unwrap();

    let outputs: Vec<OutputTensor> = tensors
        .iter()
        .map(|t| OutputTensor {
            name: t.name.clone(),
            dtype: t.dtype,
            shape: t.shape.clone(),
            source: t.name.clone(),
            part: Part::Copy,
        })
        .collect();
    let metadata = BTreeMap::from([("format".to_string(), "pt".to_string())]);
    let layout = layout(&outputs, &metadata).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.safetensors");
    let mut writer = FileWriter::create(&path, &layout).unwrap();
    // Written in reverse order, as the pipeline may.
    for t in tensors.iter().rev() {
        writer.write_at(layout.places[&t.name].0, &t.data).unwrap();
    }
    writer.finish().unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), expected);

    // A writer that is not given every byte refuses to finish.
    let path = dir.path().join("short.safetensors");
    let writer = FileWriter::create(&path, &layout).unwrap();
    assert!(matches!(writer.finish(), Err(CheckpointError::Internal { .. })));
}
