//! The checkpoint tool through its library API: outputs compared tensor by
//! tensor with `cpu::per_block_quant_fp8`, and every rejected input checked
//! for a message naming file and tensor, no output left, input unchanged.

mod common;

use common::*;
use quant_host::checkpoint::plan::{OutputTensor, Part};
use quant_host::checkpoint::writer::{layout, FileWriter};
use quant_host::checkpoint::{
    quantize, select_device, verify, CheckpointError, DeviceChoice, Durability, Outcome, QuantizeOptions, Selector,
    Silent,
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

/// Every file under `root` by its path relative to `root`, with its
/// contents and permissions.
fn tree(root: &Path) -> BTreeMap<std::path::PathBuf, (Vec<u8>, std::fs::Permissions)> {
    snapshot(root)
        .into_iter()
        .map(|(path, bytes)| {
            let mode = std::fs::metadata(&path).unwrap().permissions();
            (path.strip_prefix(root).unwrap().to_path_buf(), (bytes, mode))
        })
        .collect()
}

#[test]
fn no_sync_writes_the_same_output_as_the_durable_default_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let no_sync = QuantizeOptions { durability: Durability::NoSync, ..Default::default() };
    assert_eq!(QuantizeOptions::default().durability, Durability::Synced);

    // A folder: shards, index, config.json and the copied extras (a sub-folder too).
    let input = dir.path().join("model");
    write_folder(&input, &sharded_inputs());
    let synced = dir.path().join("synced");
    let report = run(&input, &synced, &QuantizeOptions::default()).unwrap();
    assert_eq!(report.durability, Durability::Synced);
    assert!(report.to_string().contains("on disk:   flushed to disk (fsync)"), "{report}");
    let unsynced = dir.path().join("unsynced");
    let report = run(&input, &unsynced, &no_sync).unwrap();
    assert_eq!(report.durability, Durability::NoSync);
    assert!(report.to_string().contains("on disk:   not flushed (--no-sync)"), "{report}");
    let (a, b) = (tree(&synced), tree(&unsynced));
    assert!(a.len() >= 6 && a.keys().any(|p| p.starts_with("extra")), "{:?}", a.keys());
    assert!(a == b, "outputs differ: {:?} vs {:?}", a.keys(), b.keys());
    assert!(verify(&input, &unsynced, &Silent).unwrap().passed());

    // A single file.
    let file = dir.path().join("m.safetensors");
    write_file(&file, &small_model());
    let (x, y) = (dir.path().join("x.safetensors"), dir.path().join("y.safetensors"));
    run(&file, &x, &QuantizeOptions::default()).unwrap();
    run(&file, &y, &no_sync).unwrap();
    assert_eq!(std::fs::read(&x).unwrap(), std::fs::read(&y).unwrap());
    assert!(leftovers(dir.path()).is_empty());
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

    // --force replaces only a folder fp8q wrote (or an empty one).
    let err = run(&input, &output, &force).unwrap_err();
    assert!(matches!(err, CheckpointError::WontReplace { .. }), "{err:?}");
    assert_eq!(std::fs::read(output.join("old.txt")).unwrap(), b"old");
    std::fs::remove_dir_all(&output).unwrap();
    run(&input, &output, &QuantizeOptions::default()).unwrap();
    std::fs::write(output.join("old.txt"), b"old").unwrap();

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
    writer.finish(Durability::Synced).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), expected);

    // A writer that is not given every byte refuses to finish, whether it
    // would flush or not.
    for durability in [Durability::Synced, Durability::NoSync] {
        let path = dir.path().join(format!("short-{durability:?}.safetensors"));
        let writer = FileWriter::create(&path, &layout).unwrap();
        assert!(matches!(writer.finish(durability), Err(CheckpointError::Internal { .. })));
    }
}

// ---- issue 16: fp8q never loses data silently ----------------------------

/// A float tensor of `dtype` holding `values`.
fn tensor_of(name: &str, dtype: Dtype, shape: &[usize], values: &[f32]) -> T {
    let data = match dtype {
        Dtype::BF16 => values.iter().flat_map(|&x| half::bf16::from_f32(x).to_le_bytes()).collect(),
        Dtype::F16 => values.iter().flat_map(|&x| half::f16::from_f32(x).to_le_bytes()).collect(),
        _ => values.iter().flat_map(|&x| x.to_le_bytes()).collect(),
    };
    T { name: name.into(), dtype, shape: shape.to_vec(), data }
}

/// [`small_model`] with `q_a_proj` ([300, 260]) in `dtype`, holding a NaN at
/// (130, 7) and an infinity at (299, 259).
fn model_with_nonfinite(dtype: Dtype) -> Vec<T> {
    let mut values = values(3, 300 * 260, 0.05);
    values[130 * 260 + 7] = f32::NAN;
    values[299 * 260 + 259] = f32::INFINITY;
    let mut model = small_model();
    model[2] = tensor_of("model.layers.0.self_attn.q_a_proj.weight", dtype, &[300, 260], &values);
    model
}

#[test]
fn refuses_nonfinite_weights_unless_allowed() {
    for dtype in [Dtype::BF16, Dtype::F16, Dtype::F32] {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("m.safetensors");
        let output = dir.path().join("o.safetensors");
        write_file(&input, &model_with_nonfinite(dtype));
        let err = expect_failure(
            &input,
            &output,
            &QuantizeOptions::default(),
            &["m.safetensors", "model.layers.0.self_attn.q_a_proj.weight", "(row 130, col 7)", "holds 2 non-finite"],
        );
        assert!(matches!(err, CheckpointError::NonFinite { row: 130, col: 7, count: 2, .. }), "{dtype}: {err:?}");
        assert!(err.to_string().contains("--allow-nonfinite"), "{err}");

        // Asked for: quantized with the kernels' semantics, and reported.
        let opts = QuantizeOptions { allow_nonfinite: true, ..Default::default() };
        let report = run(&input, &output, &opts).unwrap();
        let notes = report.notes.join("\n");
        assert!(notes.contains("`model.layers.0.self_attn.q_a_proj.weight` quantized with 2 non-finite"), "{notes}");
        let (out, _) = read_file(&output);
        let scales = &out["model.layers.0.self_attn.q_a_proj.weight_scale_inv"].2;
        let scale = |i: usize| f32::from_le_bytes(scales[4 * i..4 * i + 4].try_into().unwrap());
        // Scales [3, 3]: the NaN is in block (1, 0), the infinity in block (2, 2).
        assert!(scale(3).is_nan() && scale(8).is_infinite() && scale(0).is_finite(), "{scales:?}");
    }
}

#[test]
fn verify_fails_the_output_of_nonfinite_weights() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("m.safetensors");
    let output = dir.path().join("o.safetensors");
    write_file(&input, &model_with_nonfinite(Dtype::BF16));
    let opts = QuantizeOptions { allow_nonfinite: true, ..Default::default() };
    run(&input, &output, &opts).unwrap();
    let v = verify(&input, &output, &Silent).unwrap();
    assert!(!v.passed(), "{v}");
    let q = "model.layers.0.self_attn.q_a_proj.weight";
    let (_, stats) = v.quantized().find(|(n, _)| *n == q).unwrap();
    assert_eq!((stats.nonfinite, stats.bad_scales, stats.first_bad_scale), (2, 2, Some((1, 0))), "{stats:?}");
    let text = v.to_string();
    assert!(text.contains(&format!("FAIL {q}: 2 block scale(s) not finite and positive")), "{text}");
    assert!(text.contains("2 original element(s) are NaN or infinite"), "{text}");
    assert!(text.contains("result: FAIL"), "{text}");

    // A finite original that dequantizes to NaN (a NaN code under a finite
    // scale) fails too.
    let clean = dir.path().join("clean.safetensors");
    let clean_out = dir.path().join("clean_out.safetensors");
    write_file(&clean, &small_model());
    run(&clean, &clean_out, &QuantizeOptions::default()).unwrap();
    let (mut out, _) = read_file(&clean_out);
    out.get_mut(q).unwrap().2[5] = 0x7F;
    let tampered = dir.path().join("t.safetensors");
    let tensors: Vec<T> = out.into_iter().map(|(name, (dtype, shape, data))| T { name, dtype, shape, data }).collect();
    write_file(&tampered, &tensors);
    let v = verify(&clean, &tampered, &Silent).unwrap();
    let (_, stats) = v.quantized().find(|(n, _)| *n == q).unwrap();
    assert_eq!((stats.violations, stats.first_violation), (1, Some((0, 5))), "{stats:?}");
    assert!(!v.passed());
}

#[test]
fn verify_requires_finite_positive_scales() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("m.safetensors");
    let output = dir.path().join("o.safetensors");
    write_file(&input, &small_model());
    run(&input, &output, &QuantizeOptions::default()).unwrap();
    let q = "model.layers.0.self_attn.o_proj.weight";
    // -0.5 stands for "the scale with its sign flipped" (checked with |scale|,
    // a flipped scale would pass).
    for bad in [f32::NAN, f32::INFINITY, -1.0, -0.5, 0.0] {
        let (mut out, _) = read_file(&output);
        let scales = &mut out.get_mut(&format!("{q}_scale_inv")).unwrap().2;
        // o_proj is [128, 256]: scales [1, 2]; overwrite the second one.
        let original = f32::from_le_bytes(scales[4..8].try_into().unwrap());
        let value = if bad == -0.5 { -original } else { bad };
        scales[4..8].copy_from_slice(&value.to_le_bytes());
        let tampered = dir.path().join("t.safetensors");
        let tensors: Vec<T> =
            out.into_iter().map(|(name, (dtype, shape, data))| T { name, dtype, shape, data }).collect();
        write_file(&tampered, &tensors);
        let v = verify(&input, &tampered, &Silent).unwrap();
        let (_, stats) = v.quantized().find(|(n, _)| *n == q).unwrap();
        assert_eq!((stats.bad_scales, stats.first_bad_scale), (1, Some((0, 1))), "{value}: {stats:?}");
        assert!(!v.passed(), "{value}: {v}");
        assert!(v.to_string().contains(&format!("FAIL {q}: 1 block scale(s) not finite and positive")), "{v}");
    }
}

#[test]
fn refuses_to_quantize_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // GPTQ: packed int32 qweight, scales, and a gptq quantization_config.
    let gptq = dir.path().join("gptq");
    write_folder(
        &gptq,
        &[(
            "model.safetensors",
            vec![
                float("model.layers.0.self_attn.q_proj.qweight", Dtype::I32, &[32, 256], 1),
                float("model.layers.0.self_attn.q_proj.scales", Dtype::F16, &[2, 256], 2),
                float("model.norm.weight", Dtype::BF16, &[256], 3),
            ],
        )],
    );
    std::fs::write(gptq.join("config.json"), r#"{"quantization_config": {"quant_method": "gptq", "bits": 4}}"#)
        .unwrap();
    let err = expect_failure(
        &gptq,
        &dir.path().join("out1"),
        &QuantizeOptions::default(),
        &["nothing to quantize", "qweight", "quant_method gptq", "nothing was written"],
    );
    assert!(matches!(err, CheckpointError::NothingToQuantize { .. }), "{err:?}");

    // int8 weights.
    let int8 = dir.path().join("int8.safetensors");
    write_file(&int8, &[float("model.layers.0.mlp.up_proj.weight", Dtype::I8, &[64, 64], 4)]);
    let o = dir.path().join("out2.safetensors");
    let err = expect_failure(&int8, &o, &QuantizeOptions::default(), &["nothing to quantize", "is I8"]);
    assert!(matches!(err, CheckpointError::NothingToQuantize { .. }), "{err:?}");

    // A pattern that matches nothing.
    let m = dir.path().join("m.safetensors");
    write_file(&m, &small_model());
    let opts = QuantizeOptions { selector: Selector::new(Some("no_such_tensor"), None).unwrap(), ..Default::default() };
    expect_failure(&m, &dir.path().join("out3.safetensors"), &opts, &["nothing to quantize", "no_such_tensor"]);

    // An empty weight_map.
    let empty = dir.path().join("empty");
    write_folder(&empty, &[]);
    expect_failure(&empty, &dir.path().join("out4"), &QuantizeOptions::default(), &["holds no tensors"]);
}

#[test]
fn force_replaces_only_an_output_of_the_same_kind() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("m.safetensors");
    write_file(&input, &small_model());
    let force = QuantizeOptions { overwrite: true, ..Default::default() };
    // A file output onto a folder, a link, a FIFO, a link to a device.
    let folder = dir.path().join("folder");
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(folder.join("keep.txt"), b"keep").unwrap();
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&folder, &link).unwrap();
    let fifo = dir.path().join("fifo");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let null = dir.path().join("null");
    std::os::unix::fs::symlink("/dev/null", &null).unwrap();
    for (path, what) in
        [(&folder, "is a folder"), (&link, "is a symbolic link"), (&fifo, "is a FIFO"), (&null, "is a symbolic link")]
    {
        let err = run(&input, path, &force).unwrap_err();
        assert!(matches!(err, CheckpointError::WontReplace { .. }), "{path:?}: {err:?}");
        assert!(err.to_string().contains(what), "{err}");
        assert!(std::fs::symlink_metadata(path).is_ok());
    }
    assert_eq!(std::fs::read(folder.join("keep.txt")).unwrap(), b"keep");
    assert!(std::fs::metadata("/dev/null").unwrap().file_type().is_char_device());
    // A folder output onto a file or a folder fp8q did not write.
    let model = dir.path().join("model");
    write_folder(&model, &sharded_inputs());
    let file = dir.path().join("file.txt");
    std::fs::write(&file, b"keep").unwrap();
    for path in [&file, &folder] {
        let err = run(&model, path, &force).unwrap_err();
        assert!(matches!(err, CheckpointError::WontReplace { .. }), "{path:?}: {err:?}");
    }
    assert_eq!(std::fs::read(&file).unwrap(), b"keep");
    // A regular file for a file, an fp8q folder (or an empty one) for a folder.
    run(&input, &file, &force).unwrap();
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    run(&model, &empty, &force).unwrap();
    run(&model, &empty, &force).unwrap();
    assert!(leftovers(dir.path()).is_empty());
}

use std::os::unix::fs::FileTypeExt;

#[test]
fn the_output_name_is_claimed_when_a_run_starts() {
    use quant_host::checkpoint::output::Staging;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("m.safetensors");
    write_file(&input, &small_model());
    for (output, is_folder, source) in [
        (dir.path().join("o.safetensors"), false, input.clone()),
        (dir.path().join("o_folder"), true, {
            let model = dir.path().join("model");
            write_folder(&model, &sharded_inputs());
            model
        }),
    ] {
        // A first run in progress holds the name ...
        let first = Staging::prepare(&output, &source, is_folder, false).unwrap();
        assert!(output.exists());
        // ... so a second one, without --force, fails at once.
        let err = run(&source, &output, &QuantizeOptions::default()).unwrap_err();
        assert!(matches!(err, CheckpointError::OutputExists { .. }), "{err:?}");
        // The first one fails: the name is given back, nothing is left.
        drop(first);
        assert!(!output.exists());
        assert!(leftovers(dir.path()).is_empty());
        // Committed, the output replaces the placeholder.
        run(&source, &output, &QuantizeOptions::default()).unwrap();
        assert!(verify(&source, &output, &Silent).unwrap().passed());
    }
}

#[test]
fn stale_temporary_folders_are_removed_or_named() {
    use quant_host::checkpoint::output::Staging;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("m.safetensors");
    write_file(&input, &small_model());
    // Left by a killed run: unlocked, a partial shard inside, old.
    let stale = dir.path().join(".fp8q-AbC123");
    std::fs::create_dir(&stale).unwrap();
    std::fs::write(stale.join("o.safetensors"), vec![0u8; 4096]).unwrap();
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    std::fs::File::open(&stale).unwrap().set_modified(old).unwrap();
    // Left by a killed run a moment ago: named only.
    let recent = dir.path().join(".fp8q-XyZ789");
    std::fs::create_dir(&recent).unwrap();
    // The next run removes the old one and names the recent one.
    let busy = Staging::prepare(&dir.path().join("busy.safetensors"), &input, false, false).unwrap();
    let notes = busy.notes().join("\n");
    assert!(!stale.exists(), "{notes}");
    assert!(
        notes.contains(&format!("removed {}, a temporary folder left by a killed fp8q run", stale.display())),
        "{notes}"
    );
    assert!(notes.contains(&format!("{} looks like the temporary folder", recent.display())), "{notes}");
    // A run in progress holds its lock: the next run leaves it alone, however old.
    let busy_temp = busy.path().parent().unwrap().to_path_buf();
    std::fs::File::open(&busy_temp).unwrap().set_modified(old).unwrap();
    let report = run(&input, &dir.path().join("o.safetensors"), &QuantizeOptions::default()).unwrap();
    let notes = report.notes.join("\n");
    assert!(recent.exists());
    assert!(notes.contains(&format!("{} looks like the temporary folder", recent.display())), "{notes}");
    assert!(busy_temp.exists());
    assert!(!notes.contains(&busy_temp.display().to_string()), "{notes}");
    drop(busy);
    assert!(!busy_temp.exists());
}

#[test]
fn a_shard_that_shrinks_while_read_is_a_typed_error() {
    use quant_host::checkpoint::reader::Shard;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("m.safetensors");
    write_file(&input, &small_model());
    let shard = Shard::open(&input).unwrap();
    let last = shard.names().last().unwrap().clone();
    assert!(shard.read(&last).is_ok());
    // Another process truncates the file while it is open (a mapped file
    // would now kill this process with SIGBUS).
    let len = std::fs::metadata(&input).unwrap().len();
    std::fs::File::options().write(true).open(&input).unwrap().set_len(len / 2).unwrap();
    let err = shard.read(&last).unwrap_err();
    assert!(matches!(err, CheckpointError::Shrunk { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("m.safetensors") && message.contains(&last) && message.contains("shrank"), "{message}");
    // The pipeline's positioned piece reads say the same, with the tensor's end.
    let (start, end) = shard.info(&last).unwrap().data_offsets;
    let mut piece = vec![0u8; end - start];
    let err = shard.read_into(&last, 0, &mut piece).unwrap_err();
    assert!(
        matches!(&err, CheckpointError::Shrunk { tensor, end: e, .. } if *tensor == last && *e > len / 2),
        "{err:?}"
    );
    // verify reports it per tensor instead of crashing.
    let other = dir.path().join("copy.safetensors");
    write_file(&other, &small_model());
    let v = verify(&other, &other, &Silent);
    assert!(v.unwrap().passed());
}

#[test]
fn host_allocation_failure_is_a_typed_error() {
    use quant_host::checkpoint::memory::{try_filled, try_with_capacity};
    use quant_host::checkpoint::reader::HostData;
    // 2^62 bytes is past any address space: the allocator must refuse, and
    // the tool must say so instead of aborting.
    let err = try_filled(1usize << 62, 0u8, Path::new("big.safetensors"), "tensor `w`").unwrap_err();
    assert!(matches!(err, CheckpointError::OutOfMemory { bytes, .. } if bytes == 1 << 62), "{err:?}");
    assert_eq!(
        err.to_string(),
        "big.safetensors: cannot allocate 4611686018427387904 bytes for tensor `w`: out of host memory"
    );
    let err = try_with_capacity::<f32>(1usize << 61, Path::new("big.safetensors"), "values").unwrap_err();
    assert!(matches!(err, CheckpointError::OutOfMemory { bytes, .. } if bytes == 1 << 63), "{err:?}");
    // The conversion of a weight goes through it (and a bad length is typed too).
    let err = HostData::from_le_bytes(Dtype::BF16, &[0; 3], Path::new("f"), "w").unwrap_err();
    assert!(matches!(err, CheckpointError::UnsupportedDtype { .. }), "{err:?}");
    assert!(
        matches!(HostData::from_le_bytes(Dtype::F32, &[0; 8], Path::new("f"), "w"), Ok(HostData::F32(v)) if v.len() == 2)
    );
}

/// Records which tensors were processed.
#[derive(Default)]
struct Record(std::cell::RefCell<Vec<String>>);

impl quant_host::checkpoint::Progress for Record {
    fn tensor_done(&self, name: &str, _bytes: u64) {
        self.0.borrow_mut().push(name.to_string());
    }
}

#[test]
fn extra_files_are_checked_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let outside = dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("big.bin"), vec![7u8; 1 << 16]).unwrap();
    type Make<'a> = &'a dyn Fn(&Path);
    let cases: [(&str, Make<'_>, &str); 5] = [
        (
            "fifo",
            &|d| assert!(std::process::Command::new("mkfifo").arg(d.join("pipe")).status().unwrap().success()),
            "pipe: is a FIFO",
        ),
        (
            "dangling",
            &|d| std::os::unix::fs::symlink(d.join("gone"), d.join("dangling")).unwrap(),
            "dangling: is a symbolic link that cannot be followed",
        ),
        (
            "zero",
            &|d| std::os::unix::fs::symlink("/dev/zero", d.join("zero")).unwrap(),
            "zero: is a symbolic link to a character device",
        ),
        (
            "out",
            &|d| std::os::unix::fs::symlink(d.parent().unwrap().join("outside"), d.join("extra/out")).unwrap(),
            "out: is a symbolic link to a folder",
        ),
        ("loop", &|d| std::os::unix::fs::symlink(".", d.join("loop")).unwrap(), "loop: is a symbolic link to a folder"),
    ];
    for (name, make, needle) in cases {
        let model = dir.path().join(format!("model_{name}"));
        write_folder(&model, &sharded_inputs());
        make(&model);
        let output = dir.path().join(format!("out_{name}"));
        let record = Record::default();
        let err = quantize(&model, &output, &QuantizeOptions::default(), &Device::Cpu, &record).unwrap_err();
        assert!(matches!(err, CheckpointError::WrongFileKind { .. }), "{name}: {err:?}");
        assert!(err.to_string().contains(needle), "{name}: {err}");
        assert!(record.0.borrow().is_empty(), "{name}: quantized {:?} before refusing", record.0.borrow());
        assert!(!output.exists());
        assert!(leftovers(dir.path()).is_empty());
    }
    // A link to a regular file (as in the Hugging Face cache) is copied as the file.
    let model = dir.path().join("model_link");
    write_folder(&model, &sharded_inputs());
    std::os::unix::fs::symlink(outside.join("big.bin"), model.join("tokenizer.model")).unwrap();
    let output = dir.path().join("out_link");
    run(&model, &output, &QuantizeOptions::default()).unwrap();
    let copied = std::fs::symlink_metadata(output.join("tokenizer.model")).unwrap();
    assert!(copied.is_file());
    assert_eq!(std::fs::read(output.join("tokenizer.model")).unwrap(), vec![7u8; 1 << 16]);
}

#[test]
fn verify_checks_empty_tensors_in_constant_time() {
    let dir = tempfile::tempdir().unwrap();
    let original = dir.path().join("m.safetensors");
    let quantized = dir.path().join("o.safetensors");
    let n = 1usize << 62;
    let w = "model.layers.0.mlp.up_proj.weight";
    write_file(&original, &[T { name: w.into(), dtype: Dtype::BF16, shape: vec![n, 0], data: vec![] }]);
    write_file(
        &quantized,
        &[
            T { name: w.into(), dtype: Dtype::F8_E4M3, shape: vec![n, 0], data: vec![] },
            T { name: format!("{w}_scale_inv"), dtype: Dtype::F32, shape: vec![n / 128, 0], data: vec![] },
        ],
    );
    let start = std::time::Instant::now();
    let v = verify(&original, &quantized, &Silent).unwrap();
    assert!(start.elapsed() < std::time::Duration::from_secs(5));
    assert!(v.passed(), "{v}");
    let (_, stats) = v.quantized().next().unwrap();
    assert_eq!(stats.elements, 0);
}

#[test]
fn sub_byte_dtypes_are_copied() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("m.safetensors");
    let output = dir.path().join("o.safetensors");
    let mut model = small_model();
    model.push(T {
        name: "model.layers.0.mlp.f4.weight".into(),
        dtype: Dtype::F4,
        shape: vec![4, 8],
        data: (0..16).collect(),
    });
    model.push(T {
        name: "model.layers.0.mlp.f6.weight".into(),
        dtype: Dtype::F6_E2M3,
        shape: vec![4, 8],
        data: (0..24).collect(),
    });
    model.push(T { name: "f6_e3m2".into(), dtype: Dtype::F6_E3M2, shape: vec![3, 4], data: (0..9).collect() });
    write_file(&input, &model);
    let report = run(&input, &output, &QuantizeOptions::default()).unwrap();
    assert_eq!(report.quantized.len(), SMALL_QUANTIZED.len());
    let (out, _) = read_file(&output);
    check_output(&model, &SMALL_QUANTIZED, &out, &BlockConfig::default());
    assert!(verify(&input, &output, &Silent).unwrap().passed());
}

#[test]
fn rejects_duplicate_tensor_names() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("dup.safetensors");
    let header = br#"{"a.weight":{"dtype":"F32","shape":[1,2],"data_offsets":[0,8]},"a.weight":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header);
    bytes.extend_from_slice(&[0u8; 8]);
    std::fs::write(&input, &bytes).unwrap();
    let err = expect_failure(
        &input,
        &dir.path().join("o.safetensors"),
        &QuantizeOptions::default(),
        &["dup.safetensors", "`a.weight` is defined more than once"],
    );
    assert!(matches!(err, CheckpointError::DuplicateTensor { .. }), "{err:?}");
}

#[test]
fn a_shard_that_is_not_a_file_is_named_as_such() {
    let dir = tempfile::tempdir().unwrap();
    for (name, make, what) in [
        ("folder", (|p: &Path| std::fs::create_dir(p).unwrap()) as fn(&Path), "is a folder"),
        (
            "fifo",
            |p: &Path| assert!(std::process::Command::new("mkfifo").arg(p).status().unwrap().success()),
            "is a FIFO",
        ),
    ] {
        let model = dir.path().join(name);
        write_folder(&model, &sharded_inputs());
        let shard = model.join("model-00002-of-00002.safetensors");
        std::fs::remove_file(&shard).unwrap();
        make(&shard);
        let err = run(&model, &dir.path().join(format!("out_{name}")), &QuantizeOptions::default()).unwrap_err();
        assert!(matches!(err, CheckpointError::WrongFileKind { .. }), "{err:?}");
        let message = err.to_string();
        assert!(message.contains("model-00002-of-00002.safetensors") && message.contains(what), "{message}");
        assert!(!message.contains("does not exist"), "{message}");
        // A single-file input that is not a regular file is refused without opening it.
        let err = quant_host::checkpoint::reader::Shard::open(&shard).unwrap_err();
        assert!(err.to_string().contains(what), "{err}");
    }
}
