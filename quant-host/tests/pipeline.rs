//! The quantize pipeline's edge cases on the CPU engine: empty weights and
//! tensors, a shard with no data, a copied tensor larger than one copy piece,
//! and the per-stage report. Outputs are compared with the CPU reference.

mod common;

use common::*;
use quant_host::checkpoint::pipeline::COPY_PIECE;
use quant_host::checkpoint::{quantize, verify, QuantizeOptions, Silent};
use quant_host::{BlockConfig, Device};
use safetensors::Dtype;

fn weights() -> Vec<T> {
    vec![
        float("layers.0.a.weight", Dtype::BF16, &[300, 260], 1),
        float("layers.0.b.weight", Dtype::F32, &[130, 129], 2),
        float("layers.0.c.weight", Dtype::F16, &[5, 700], 3),
        // Selected (2-D, float, `.weight`) but empty: no codes, no scales.
        float("layers.0.empty.weight", Dtype::BF16, &[0, 256], 4),
        float("layers.0.empty.bias", Dtype::F32, &[0], 5),
        float("layers.0.norm.weight", Dtype::BF16, &[260], 6),
    ]
}

const QUANTIZED: [&str; 4] = ["layers.0.a.weight", "layers.0.b.weight", "layers.0.c.weight", "layers.0.empty.weight"];

#[test]
fn a_tensor_larger_than_a_copy_piece_is_copied_in_pieces() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("model.safetensors");
    let output = dir.path().join("out.safetensors");
    let mut tensors = weights();
    let len = COPY_PIECE * 2 + 3;
    let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8 ^ (i >> 20) as u8).collect();
    tensors.push(T { name: "big.table".into(), dtype: Dtype::U8, shape: vec![len], data });
    write_file(&input, &tensors);

    let report = quantize(&input, &output, &QuantizeOptions::default(), &Device::Cpu, &Silent).unwrap();
    let (out, _) = read_file(&output);
    check_output(&tensors, &QUANTIZED, &out, &BlockConfig::default());
    assert!(verify(&input, &output, &Silent).unwrap().passed());

    let stages = report.stages.expect("a quantize report has stage times");
    assert!(stages.quantize > std::time::Duration::ZERO, "{stages:?}");
    assert!(stages.read > std::time::Duration::ZERO && stages.write > std::time::Duration::ZERO, "{stages:?}");
    assert_eq!(stages.transfers, std::time::Duration::ZERO, "no transfers on the CPU");
    assert!(report.to_string().contains("stages:    read "), "{report}");
}

#[test]
fn a_shard_without_data_is_still_written() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    let output = dir.path().join("out");
    let first = weights();
    let second =
        vec![float("layers.1.empty.bias", Dtype::F32, &[0], 7), float("layers.1.none.weight", Dtype::BF16, &[0, 0], 8)];
    write_folder(
        &input,
        &[("model-00001-of-00002.safetensors", first.clone()), ("model-00002-of-00002.safetensors", second.clone())],
    );
    quantize(&input, &output, &QuantizeOptions::default(), &Device::Cpu, &Silent).unwrap();
    let (out, _) = read_file(&output.join("model-00001-of-00002.safetensors"));
    check_output(&first, &QUANTIZED, &out, &BlockConfig::default());
    let (out, _) = read_file(&output.join("model-00002-of-00002.safetensors"));
    check_output(&second, &["layers.1.none.weight"], &out, &BlockConfig::default());
    assert!(verify(&input, &output, &Silent).unwrap().passed());
}
