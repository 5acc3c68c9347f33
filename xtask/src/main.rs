//! Project chores, run as `cargo xtask <command>`:
//!
//! - `build-ptx [--check]`: compile `quant-kernels` to PTX for every target
//!   architecture, validate each module with `ptxas`, and write the PTX that
//!   `quant-host` embeds (`--check`: fail if the committed PTX is stale).
//! - `test`: everything CI checks: committed PTX fresh, formatting, clippy,
//!   and the whole test suite (GPU tests are reported as ignored without a GPU).
//! - `fuzz [--seconds N] [target...]`: coverage-guided fuzzing of fp8q's
//!   safetensors and index parsing and a CPU quantize round trip (cargo-fuzz
//!   on the pinned nightly), each target for N seconds (default 60); `test`
//!   runs it with `FUZZ_SECONDS` (default 60) per target.
//! - `gpu-bundle [--tests a,b] [--base REV] [--also NAME=REV ...]`: build the
//!   release test and benchmark binaries and a `run.sh` into
//!   `target/gpu-bundle/`, to carry to the GPU machine; `--tests` keeps only
//!   the named GPU test binaries, `--base` adds `fp8q` built at a git
//!   revision, for `run.sh ab`, and each `--also` one more as
//!   `bin/fp8q-NAME`, for a call that times several builds side by side.
//! - `sass <kernel> [--arch A] [--summary]`: one kernel's SASS (or its
//!   opcode histogram) from the committed PTX, through ptxas and NVIDIA's
//!   cuobjdump, without a GPU.

mod bundle;
mod fuzz;
mod ptx;
mod sass;
mod tools;

use anyhow::{bail, Result};
use std::path::PathBuf;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = workspace_root();
    match args.first().map(String::as_str) {
        Some("build-ptx") => {
            let check = match &args[1..] {
                [] => false,
                [flag] if flag == "--check" => true,
                other => bail!("build-ptx: unexpected arguments {other:?} (only --check)"),
            };
            ptx::build(&root, check)
        }
        Some("gpu-bundle") => bundle::build(&root, &bundle::Options::parse(&args[1..])?),
        Some("test") => test(&root),
        Some("fuzz") => fuzz::run_cli(&root, &args[1..]),
        Some("sass") => sass::run_cli(&root, &args[1..]),
        _ => {
            eprintln!("usage: cargo xtask <build-ptx [--check] | test | fuzz [--seconds N] [target...] | gpu-bundle [--tests a,b] [--base REV] [--also NAME=REV ...] | sass <kernel> [--arch A] [--summary]>");
            std::process::exit(2);
        }
    }
}

/// The workspace root: the parent of this crate's manifest directory.
fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

/// The README's test command: what CI runs.
fn test(root: &std::path::Path) -> Result<()> {
    ptx::build(root, true)?;
    let cargo = |args: &[&str]| -> Result<()> {
        eprintln!("xtask: cargo {}", args.join(" "));
        let status = std::process::Command::new("cargo").args(args).current_dir(root).status()?;
        if !status.success() {
            bail!("cargo {} failed", args.join(" "));
        }
        Ok(())
    };
    cargo(&["fmt", "--all", "--", "--check"])?;
    cargo(&["clippy", "--workspace", "--all-targets", "--quiet", "--", "-D", "warnings"])?;
    // Bounded fuzzing of the checkpoint parsers (FUZZ_SECONDS per target;
    // 0 skips it, for a quick local run). Before the tests, so that the test
    // runner's summary is the last thing a CI log shows.
    let seconds = std::env::var("FUZZ_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(60);
    if seconds > 0 {
        fuzz::run(root, seconds, fuzz::TARGETS)?;
    }
    run_tests(root)
}

/// `cargo test --workspace`, streamed, then one closing line with the totals
/// of every test binary (`tests: N passed, N failed, N skipped`): cargo's
/// own last line is the summary of whichever doc-test ran last, often empty.
fn run_tests(root: &std::path::Path) -> Result<()> {
    use std::io::BufRead;
    eprintln!("xtask: cargo test --workspace");
    let mut child = std::process::Command::new("cargo")
        .args(["test", "--workspace"])
        .current_dir(root)
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let (mut passed, mut failed, mut ignored) = (0u64, 0u64, 0u64);
    if let Some(stdout) = child.stdout.take() {
        for line in std::io::BufReader::new(stdout).lines() {
            let line = line?;
            println!("{line}");
            if let Some(summary) = line.strip_prefix("test result: ") {
                let count = |word: &str| {
                    summary
                        .split(';')
                        .find_map(|part| part.trim().strip_suffix(word).map(|n| n.trim().trim_start_matches("ok. ")))
                        .and_then(|n| n.rsplit(' ').next().and_then(|n| n.parse::<u64>().ok()))
                        .unwrap_or(0)
                };
                passed += count("passed");
                failed += count("failed");
                ignored += count("ignored");
            }
        }
    }
    let status = child.wait()?;
    println!("tests: {passed} passed, {failed} failed, {ignored} skipped");
    if !status.success() {
        bail!("cargo test --workspace failed");
    }
    Ok(())
}
