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
    let stdout = text(&out.stdout);
    assert!(stdout.contains("result: PASS"));
    // The last column is explained, not a bare "of bound 100.0%".
    assert!(stdout.contains("worst/bnd") && stdout.contains("over its own bound"), "{stdout}");
    assert!(!stdout.contains("of bound"), "{stdout}");

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
fn no_sync_flag_is_parsed_reported_and_writes_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("m.safetensors");
    write_file(&input, &small_model());
    let quantize = |output: &Path, extra: &[&str]| {
        let mut args = vec!["quantize".as_ref(), input.as_os_str(), output.as_os_str()];
        args.extend(["--device", "cpu"].iter().chain(extra).map(|a| std::ffi::OsStr::new(*a)));
        fp8q(&args)
    };
    let (synced, unsynced) = (dir.path().join("a.safetensors"), dir.path().join("b.safetensors"));
    let out = quantize(&synced, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("on disk:   flushed to disk (fsync)"), "{}", text(&out.stdout));
    let out = quantize(&unsynced, &["--no-sync"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("on disk:   not flushed (--no-sync)"), "{}", text(&out.stdout));
    assert_eq!(std::fs::read(&synced).unwrap(), std::fs::read(&unsynced).unwrap());
    // A flag, not an option with a value.
    let out = quantize(&dir.path().join("c.safetensors"), &["--no-sync=yes"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(!dir.path().join("c.safetensors").exists());
    // Both commands document it.
    for command in ["quantize", "bench"] {
        let out = fp8q(&[command.as_ref(), "--help".as_ref()]);
        assert!(text(&out.stdout).contains("--no-sync"), "{command} --help:\n{}", text(&out.stdout));
    }
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
        // The kernel benchmark cannot run: it fails (exit 1) and says why,
        // so that a script does not take its silence for a result.
        let out = fp8q(&["bench".as_ref()]);
        assert_eq!(out.status.code(), Some(1));
        let stderr = text(&out.stderr);
        assert!(
            stderr.starts_with("fp8q: error: the kernel benchmark needs a GPU (`fp8q bench --checkpoint`"),
            "{stderr}"
        );
        assert!(stderr.contains("none is usable: "), "{stderr}");
        assert!(text(&out.stdout).is_empty(), "{}", text(&out.stdout));
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

// ---- issue 16 and 17 ------------------------------------------------------

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::time::{Duration, Instant};

/// The temporary folders in `dir` and whether any holds a non-empty file.
fn staging_started(dir: &Path) -> bool {
    leftovers(dir).iter().any(|name| {
        let staged = dir.join(name).join("out");
        std::fs::read_dir(&staged)
            .map(|entries| entries.filter_map(|e| e.ok()).any(|e| e.metadata().is_ok_and(|m| m.len() > 0)))
            .unwrap_or(false)
    })
}

#[test]
fn interrupted_runs_leave_no_output_and_no_temporary_files() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("synthetic");
    // A real synthesized checkpoint, big enough to be caught mid-run.
    quant_host::checkpoint::demo::write_synthetic_checkpoint_copies(&input, 3).unwrap();
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        let output = dir.path().join("out");
        let mut child = Command::new(env!("CARGO_BIN_EXE_fp8q"))
            .args(["--device".as_ref(), "cpu".as_ref(), "quantize".as_ref(), input.as_os_str(), output.as_os_str()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Wait until shards are being written.
        let start = Instant::now();
        while !staging_started(dir.path()) {
            assert!(child.try_wait().unwrap().is_none(), "the run ended before it could be interrupted");
            assert!(start.elapsed() < Duration::from_secs(120), "no staging folder appeared");
            std::thread::sleep(Duration::from_millis(2));
        }
        // SAFETY: kill(2) on the child's pid, no memory involved.
        assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, signal) }, 0);
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.signal(), Some(signal), "{:?}: {}", out.status, text(&out.stderr));
        assert!(text(&out.stderr).contains("temporary files were removed"), "{}", text(&out.stderr));
        assert!(!output.exists(), "signal {signal}: output left behind");
        assert!(leftovers(dir.path()).is_empty(), "signal {signal}: {:?}", leftovers(dir.path()));
    }
}

#[test]
fn errors_are_printed_once_naming_what_failed() {
    let dir = tempfile::tempdir().unwrap();
    // An I/O error quotes its cause once.
    let missing = dir.path().join("missing.safetensors");
    let out = fp8q(&["quantize".as_ref(), missing.as_os_str(), dir.path().join("o").as_os_str()]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr.matches("No such file or directory").count(), 1, "{stderr}");
    assert_eq!(stderr.lines().filter(|l| l.starts_with("fp8q: error")).count(), 1, "{stderr}");
    // --device gpu without a GPU names the cause once.
    if !matches!(Device::best_available().0, Device::Cuda(_)) {
        let input = dir.path().join("m.safetensors");
        write_file(&input, &small_model());
        let out = fp8q(&[
            "--device".as_ref(),
            "gpu".as_ref(),
            "quantize".as_ref(),
            input.as_os_str(),
            dir.path().join("o").as_os_str(),
        ]);
        let stderr = text(&out.stderr);
        let cause = stderr.split_once("none is usable: ").map(|(_, c)| c.trim().to_string()).unwrap_or_default();
        assert!(!cause.is_empty(), "{stderr}");
        let first = cause.split(": ").next().unwrap();
        assert_eq!(stderr.matches(first).count(), 1, "{stderr}");
    }
}

#[test]
fn a_full_disk_while_copying_extras_names_the_output() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("model");
    write_folder(
        &input,
        &[(
            "model.safetensors",
            vec![float("model.layers.0.mlp.up_proj.weight", safetensors::Dtype::BF16, &[256, 256], 1)],
        )],
    );
    std::fs::write(input.join("big.bin"), vec![1u8; 4 << 20]).unwrap();
    let output = dir.path().join("out");
    let mut command = Command::new(env!("CARGO_BIN_EXE_fp8q"));
    command.args(["--device".as_ref(), "cpu".as_ref(), "quantize".as_ref(), input.as_os_str(), output.as_os_str()]);
    // SAFETY: setrlimit and signal are async-signal-safe; the closure touches
    // no memory of the parent. Files past 1 MiB then fail with EFBIG, as on a
    // full disk (SIGXFSZ ignored, so the write returns the error).
    unsafe {
        command.pre_exec(|| {
            let limit = libc::rlimit { rlim_cur: 1 << 20, rlim_max: 1 << 20 };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        });
    }
    let out = command.output().unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("/out/big.bin: File too large"), "{stderr}");
    assert!(!stderr.contains(&input.join("big.bin").display().to_string()), "blames the input: {stderr}");
    assert!(!output.exists());
    assert!(leftovers(dir.path()).is_empty());
}

#[test]
fn synthesize_and_quantize_write_files_with_the_same_mode() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("synthetic");
    let output = dir.path().join("out");
    let out = fp8q(&["synthesize".as_ref(), input.as_os_str()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = fp8q(&["--device".as_ref(), "cpu".as_ref(), "quantize".as_ref(), input.as_os_str(), output.as_os_str()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    // What a plain new file gets here (0666 less the umask).
    let probe = dir.path().join("probe");
    std::fs::write(&probe, b"").unwrap();
    let usual = mode(&probe);
    for name in ["model-00001-of-00002.safetensors", "model.safetensors.index.json", "config.json"] {
        assert_eq!(mode(&input.join(name)), usual, "synthesized {name}");
        assert_eq!(mode(&output.join(name)), usual, "quantized {name}");
    }
}
