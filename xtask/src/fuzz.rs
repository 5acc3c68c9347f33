//! `cargo xtask fuzz [--seconds N] [target...]`: coverage-guided fuzzing of
//! fp8q's input parsing with cargo-fuzz (libFuzzer, AddressSanitizer, debug
//! assertions and overflow checks on), each target for a bounded time.
//!
//! The targets (in `fuzz/`, a workspace of its own so the stable build never
//! sees it): the safetensors reader, the index.json parser, and a quantize +
//! verify round trip of a fuzzed checkpoint on the CPU. Each starts from the
//! committed seeds in `fuzz/seeds/<target>` and keeps what it finds in
//! `.cache/fuzz-corpus/<target>` (git-ignored, so CI never dirties the tree).
//! A crash fails the command; libFuzzer leaves the input in
//! `fuzz/artifacts/<target>/`.

use crate::tools::{ensure_nightly, NIGHTLY};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The fuzz targets, in the order they run.
pub const TARGETS: &[&str] = &["safetensors_header", "index_json", "quantize_roundtrip"];

/// The pinned cargo-fuzz release, installed under `.cache/cargo-fuzz`.
const CARGO_FUZZ_VERSION: &str = "0.13.2";

/// Parses `[--seconds N] [target...]`.
pub fn run_cli(root: &Path, args: &[String]) -> Result<()> {
    let mut seconds = 60;
    let mut targets = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--seconds" => {
                seconds = it.next().context("--seconds needs a value")?.parse().context("--seconds N")?;
            }
            t if TARGETS.contains(&t) => targets.push(t),
            other => bail!("fuzz: unexpected argument {other:?} (targets: {TARGETS:?})"),
        }
    }
    if targets.is_empty() {
        targets = TARGETS.to_vec();
    }
    run(root, seconds, &targets)
}

/// Builds the targets once, then fuzzes each for `seconds`.
pub fn run(root: &Path, seconds: u64, targets: &[&str]) -> Result<()> {
    ensure_nightly()?;
    let cargo_fuzz = ensure_cargo_fuzz(root)?;
    let fuzz = |args: &[&str]| {
        let mut cmd = Command::new(&cargo_fuzz);
        // cargo-fuzz runs as a cargo subcommand: its first argument is "fuzz".
        cmd.arg("fuzz").args(args).current_dir(root).env("RUSTUP_TOOLCHAIN", NIGHTLY);
        cmd
    };
    eprintln!("xtask: building fuzz targets ({NIGHTLY}, ASan, debug assertions)");
    let status = fuzz(&["build", "--debug-assertions"]).status().context("running cargo-fuzz")?;
    if !status.success() {
        bail!("cargo fuzz build failed");
    }
    let mut summary = Vec::new();
    for target in targets {
        let corpus = root.join(".cache/fuzz-corpus").join(target);
        std::fs::create_dir_all(&corpus)?;
        let seeds = root.join("fuzz/seeds").join(target);
        let max_time = format!("-max_total_time={seconds}");
        eprintln!("xtask: fuzzing {target} for {seconds} s");
        let output = fuzz(&["run", "--debug-assertions", target])
            .arg(&corpus)
            .arg(&seeds)
            .args(["--", &max_time, "-rss_limit_mb=4096", "-max_len=65536", "-print_final_stats=1"])
            .output()
            .context("running cargo-fuzz")?;
        let log = String::from_utf8_lossy(&output.stderr);
        let runs = stat(&log, "stat::number_of_executed_units:");
        if !output.status.success() {
            eprintln!("{log}");
            bail!("fuzz target {target} failed (see fuzz/artifacts/{target}/)");
        }
        let corpus_len = std::fs::read_dir(&corpus).map(|d| d.count()).unwrap_or(0);
        summary.push(format!(
            "{target}: {} executions in {seconds} s, 0 crashes, corpus {corpus_len} inputs",
            runs.map_or("?".into(), |r| r.to_string())
        ));
    }
    for line in &summary {
        eprintln!("xtask fuzz: {line}");
    }
    Ok(())
}

/// The value after `key` in libFuzzer's final stats.
fn stat(log: &str, key: &str) -> Option<u64> {
    log.lines().find_map(|l| l.strip_prefix(key)).and_then(|v| v.trim().parse().ok())
}

/// `cargo-fuzz` from `.cache/cargo-fuzz`, installed there (pinned, locked)
/// when missing: CI caches the folder, so the install runs once.
fn ensure_cargo_fuzz(root: &Path) -> Result<PathBuf> {
    let install_root = root.join(".cache/cargo-fuzz");
    let bin = install_root.join("bin/cargo-fuzz");
    if bin.is_file() {
        return Ok(bin);
    }
    eprintln!(
        "xtask: installing cargo-fuzz {CARGO_FUZZ_VERSION} into {} (once; a few minutes, quietly)",
        install_root.display()
    );
    // `--quiet`: otherwise cargo ends with "be sure to add `.cache/cargo-fuzz/bin`
    // to your PATH", which does not apply: xtask runs the binary by its path,
    // and nothing needs it on the user's PATH. Errors are still printed.
    let status = Command::new("cargo")
        .args(["install", "--quiet", "--locked", "--version", CARGO_FUZZ_VERSION, "--root"])
        .arg(&install_root)
        .arg("cargo-fuzz")
        .status()
        .context("running cargo install")?;
    if !status.success() || !bin.is_file() {
        bail!("could not install cargo-fuzz");
    }
    Ok(bin)
}
