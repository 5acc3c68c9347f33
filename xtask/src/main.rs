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
//! - `gpu-bundle`: build the release test and benchmark binaries and a
//!   `run.sh` into `target/gpu-bundle/`, to carry to the GPU machine.

mod bundle;
mod fuzz;
mod ptx;
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
        Some("gpu-bundle") => bundle::build(&root),
        Some("test") => test(&root),
        Some("fuzz") => fuzz::run_cli(&root, &args[1..]),
        _ => {
            eprintln!("usage: cargo xtask <build-ptx [--check] | test | fuzz [--seconds N] [target...] | gpu-bundle>");
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
    let steps: &[&[&str]] = &[
        &["fmt", "--all", "--", "--check"],
        &["clippy", "--workspace", "--all-targets", "--quiet", "--", "-D", "warnings"],
        &["test", "--workspace"],
    ];
    for args in steps {
        eprintln!("xtask: cargo {}", args.join(" "));
        let status = std::process::Command::new("cargo").args(*args).current_dir(root).status()?;
        if !status.success() {
            bail!("cargo {} failed", args.join(" "));
        }
    }
    // Bounded fuzzing of the checkpoint parsers (FUZZ_SECONDS per target;
    // 0 skips it, for a quick local run).
    let seconds = std::env::var("FUZZ_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(60);
    if seconds > 0 {
        fuzz::run(root, seconds, fuzz::TARGETS)?;
    }
    Ok(())
}
