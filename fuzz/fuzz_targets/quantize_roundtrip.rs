//! `fp8q quantize` then `fp8q verify` on a fuzzed single-file checkpoint, on
//! the CPU. The first byte picks the block size and format; the rest is the
//! safetensors file. Quantizing must return a typed error or an output that
//! verifies: every tensor copied unchanged or quantized within the spec's
//! error bound (a wrong answer is a crash here, not a silent pass).
#![no_main]

use libfuzzer_sys::fuzz_target;
use quant_host::checkpoint::{quantize, verify, QuantizeOptions, Silent};
use quant_host::{BlockConfig, Device, Fp8Format, ScaleMode};

mod scratch;

fuzz_target!(|data: &[u8]| {
    let Some((&knobs, file)) = data.split_first() else { return };
    let dir = scratch::dir();
    let input = dir.join("model.safetensors");
    let output = dir.join("out.safetensors");
    std::fs::write(&input, file).expect("write scratch file");
    let sides = [1usize, 2, 3, 128];
    let block = BlockConfig {
        block_rows: sides[usize::from(knobs & 3)],
        block_cols: sides[usize::from((knobs >> 2) & 3)],
        format: if knobs & 16 == 0 { Fp8Format::E4M3Fn } else { Fp8Format::E4M3Fnuz },
        scale_mode: if knobs & 32 == 0 { ScaleMode::Float } else { ScaleMode::Ue8m0 },
        ..BlockConfig::default()
    };
    let opts = QuantizeOptions { block, overwrite: true, ..QuantizeOptions::default() };
    if quantize(&input, &output, &opts, &Device::Cpu, &Silent).is_err() {
        return;
    }
    let report = verify(&input, &output, &Silent).expect("a checkpoint fp8q wrote verifies");
    assert!(report.passed(), "{report:?}");
});
