//! The `fp8q` binary itself: exit codes, messages, the default run.

mod common;

use common::*;
use quant_host::Device;
use std::process::{Command, Output};

fn fp8q(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fp8q")).args(args).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn quantize_then_verify_single_file() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("m.safetensors");
    let output = dir.path().join("o.safetensors");
    write_file(&input, &small_model());
    let out = fp8q(&["quantize".as_ref(), input.as_os_str(), output.as_os_str(), "--device".as_ref(), "cpu".as_ref()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("4 quantized"), "{stdout}");
    // stderr is not a terminal here: no progress bar drawn.
    assert!(!text(&out.stderr).contains('\u{1b}'), "{}", text(&out.stderr));
    let (tensors, _) = read_file(&output);
    check_output(&small_model(), &SMALL_QUANTIZED, &tensors, &quant_host::BlockConfig::default());

    let out = fp8q(&["verify".as_ref(), input.as_os_str(), output.as_os_str()]);
    assert_eq!(out.status.code(), Some(0), "{}{}", text(&out.stdout), text(&out.stderr));
    assert!(text(&out.stdout).contains("result: PASS"));

    // Verifying against a different original fails with exit code 2.
    let other = dir.path().join("other.safetensors");
    let mut changed = small_model();
    changed[2] = float("model.layers.0.self_attn.q_a_proj.weight", safetensors::Dtype::BF16, &[300, 260], 99);
    write_file(&other, &changed);
    let out = fp8q(&["verify".as_ref(), other.as_os_str(), output.as_os_str()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("FAIL model.layers.0.self_attn.q_a_proj.weight"), "{}", text(&out.stdout));

    // Options reach the library.
    let fnuz = dir.path().join("fnuz.safetensors");
    let out = fp8q(&[
        "quantize".as_ref(),
        input.as_os_str(),
        fnuz.as_os_str(),
        "--format".as_ref(),
        "e4m3fnuz".as_ref(),
        "--scale-fmt".as_ref(),
        "ue8m0".as_ref(),
        "--block-size".as_ref(),
        "64x128".as_ref(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (tensors, metadata) = read_file(&fnuz);
    let cfg = quant_host::BlockConfig {
        format: quant_host::Fp8Format::E4M3Fnuz,
        scale_mode: quant_host::ScaleMode::Ue8m0,
        block_rows: 64,
        block_cols: 128,
        ..Default::default()
    };
    check_output(&small_model(), &SMALL_QUANTIZED, &tensors, &cfg);
    assert_eq!(metadata["fp8q.weight_block_size"], "64,128");
}

#[test]
fn errors_name_file_and_tensor_and_exit_nonzero() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("m.safetensors");
    write_file(&input, &small_model());
    let bytes = std::fs::read(&input).unwrap();
    let (_, metadata) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let last = metadata.offset_keys().pop().unwrap();
    let truncated = dir.path().join("cut.safetensors");
    std::fs::write(&truncated, &bytes[..bytes.len() - 1]).unwrap();
    let output = dir.path().join("o.safetensors");
    let out = fp8q(&["quantize".as_ref(), truncated.as_os_str(), output.as_os_str()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("cut.safetensors") && stderr.contains(&last), "{stderr}");
    assert!(!output.exists());
    assert!(leftovers(dir.path()).is_empty());

    // An existing output needs --force.
    std::fs::write(&output, b"keep me").unwrap();
    let out = fp8q(&["quantize".as_ref(), input.as_os_str(), output.as_os_str()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("--force"), "{}", text(&out.stderr));
    assert_eq!(std::fs::read(&output).unwrap(), b"keep me");
    let out = fp8q(&["quantize".as_ref(), input.as_os_str(), output.as_os_str(), "--force".as_ref()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_ne!(std::fs::read(&output).unwrap(), b"keep me");

    // Bad option values are refused before anything runs.
    let out = fp8q(&["quantize".as_ref(), input.as_os_str(), "x".as_ref(), "--block-size".as_ref(), "0".as_ref()]);
    assert!(!out.status.success());
    let out = fp8q(&["quantize".as_ref(), input.as_os_str(), "x".as_ref(), "--pattern".as_ref(), "(".as_ref()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(!dir.path().join("x").exists());
}

#[test]
fn device_flag_and_bench_without_gpu() {
    let has_gpu = matches!(Device::best_available().0, Device::Cuda(_));
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("m.safetensors");
    let output = dir.path().join("o.safetensors");
    write_file(&input, &small_model());
    let out = fp8q(&["--device".as_ref(), "gpu".as_ref(), "quantize".as_ref(), input.as_os_str(), output.as_os_str()]);
    if has_gpu {
        assert!(out.status.success(), "{}", text(&out.stderr));
    } else {
        assert_eq!(out.status.code(), Some(1));
        let stderr = text(&out.stderr);
        assert!(stderr.contains("a GPU was requested but none is usable: "), "{stderr}");
        assert!(!output.exists());
        let out = fp8q(&["bench".as_ref()]);
        assert!(out.status.success());
        assert!(text(&out.stdout).starts_with("the kernel benchmark needs a GPU"), "{}", text(&out.stdout));
    }
}

#[test]
fn default_run_quantizes_and_verifies_the_synthetic_checkpoint() {
    let out = fp8q(&["--device".as_ref(), "cpu".as_ref()]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("device:    cpu (CPU requested)"), "{stdout}");
    assert!(stdout.contains("7 quantized (48679612 elements), 9 copied"), "{stdout}");
    assert!(stdout.contains("verified 7 quantized and 9 copied tensor(s)"), "{stdout}");
    assert!(stdout.contains("result: PASS"), "{stdout}");
}
