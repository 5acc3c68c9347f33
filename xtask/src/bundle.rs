//! `cargo xtask gpu-bundle`: the build-here, run-there loop of
//! `../shared/device.md`. Builds the release GPU test binaries (`tests/gpu_*`)
//! and `fp8q` (the benchmark), strips them, and writes them with `run.sh` (from
//! `xtask/run.sh`) into `target/gpu-bundle/`, a folder small enough to carry
//! to the GPU machine, which has no Rust toolchain. The binaries are
//! gzipped (each embeds the 11 MB of PTX text, which compresses about
//! tenfold; uncompressed, four tests and `fp8q` came to 65 MiB, past the
//! device tool's 64 MiB carry limit); `run.sh` unpacks them first.

use anyhow::{bail, Context, Result};
use std::path::Path;
use std::process::{Command, Stdio};

pub fn build(root: &Path) -> Result<()> {
    let bundle = root.join("target").join("gpu-bundle");
    if bundle.exists() {
        std::fs::remove_dir_all(&bundle)?;
    }
    std::fs::create_dir_all(bundle.join("tests"))?;
    std::fs::create_dir_all(bundle.join("bin"))?;

    // Test executables, from cargo's JSON messages.
    let output = Command::new("cargo")
        .args(["test", "--release", "--workspace", "--no-run", "--message-format=json"])
        .current_dir(root)
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo test --no-run")?;
    if !output.status.success() {
        bail!("building the test binaries failed");
    }
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let is_test = msg["profile"]["test"].as_bool() == Some(true);
        let (Some(exe), Some(name)) = (msg["executable"].as_str(), msg["target"]["name"].as_str()) else {
            continue;
        };
        // Only the GPU tests: everything else runs in CI, and the bundle must
        // stay well under the device tool's 64 MiB.
        if is_test && name.starts_with("gpu_") {
            copy_stripped(Path::new(exe), &bundle.join("tests").join(name))?;
        }
    }

    // fp8q, which holds the benchmark.
    let status =
        Command::new("cargo").args(["build", "--release", "-p", "quant-host", "--bins"]).current_dir(root).status()?;
    if !status.success() {
        bail!("building the binaries failed");
    }
    let release = root.join("target").join("release");
    for entry in std::fs::read_dir(root.join("quant-host").join("src").join("bin"))? {
        let path = entry?.path();
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        let exe = release.join(stem);
        if exe.is_file() {
            copy_stripped(&exe, &bundle.join("bin").join(stem))?;
        }
    }

    for script in ["run.sh", "fp8q-4gib.sh"] {
        std::fs::copy(root.join("xtask").join(script), bundle.join(script))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(bundle.join(script), std::fs::Permissions::from_mode(0o755))?;
        }
    }
    let size: u64 = walk_size(&bundle)?;
    eprintln!(
        "xtask: bundle in {} ({:.1} MiB); carry it with the device tool and run `target/gpu-bundle/run.sh`",
        bundle.display(),
        size as f64 / (1 << 20) as f64
    );
    Ok(())
}

fn copy_stripped(from: &Path, to: &Path) -> Result<()> {
    std::fs::copy(from, to).with_context(|| format!("copying {}", from.display()))?;
    // `strip` and `gzip` are optional: without them the bundle is only
    // larger (`run.sh` unpacks whatever is packed).
    let _ = Command::new("strip").arg(to).status();
    let _ = Command::new("gzip").args(["-f", "-n", "-6"]).arg(to).status();
    Ok(())
}

fn walk_size(dir: &Path) -> Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() { walk_size(&entry.path())? } else { meta.len() };
    }
    Ok(total)
}
