//! `cargo xtask gpu-bundle [--tests a,b] [--base REV] [--also NAME=REV ...]`: the build-here, run-there loop of
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

/// What `gpu-bundle` was asked for.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// Only these GPU test binaries (`gpu_gemm`, ...); all when empty.
    pub tests: Vec<String>,
    /// A git revision whose `fp8q` goes in as `bin/fp8q-base`, for
    /// `run.sh ab` (the same benchmark on both builds in one device call).
    pub base: Option<String>,
    /// More builds to time in the same device call: `(NAME, REV)` puts
    /// `fp8q` at `REV` in as `bin/fp8q-NAME` (for a call script that runs
    /// several experiment branches side by side).
    pub also: Vec<(String, String)>,
}

impl Options {
    /// `[--tests a,b] [--base REV] [--also NAME=REV ...]`.
    pub fn parse(args: &[String]) -> Result<Self> {
        let mut options = Self::default();
        let mut rest = args.iter();
        while let Some(arg) = rest.next() {
            match arg.as_str() {
                "--tests" => {
                    let list = rest.next().context("--tests needs a list, e.g. gpu_gemm,gpu_quant")?;
                    options.tests = list.split(',').filter(|t| !t.is_empty()).map(str::to_owned).collect();
                    if let Some(bad) = options.tests.iter().find(|t| !t.starts_with("gpu_")) {
                        bail!("--tests: {bad:?} is not a GPU test binary (tests/gpu_*.rs)");
                    }
                }
                "--base" => options.base = Some(rest.next().context("--base needs a git revision")?.clone()),
                "--also" => {
                    let spec = rest.next().context("--also needs NAME=REV, e.g. kb=next/gemm-wg-stagger-kb")?;
                    let (name, rev) = spec.split_once('=').context("--also: expected NAME=REV")?;
                    let simple = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
                    // `bin/BASE` and `bin/BUILD` name the base and the bundle's own build.
                    let taken = name == "base" || name == "build";
                    if name.is_empty() || !name.chars().all(simple) || taken || rev.is_empty() {
                        bail!("--also {spec:?}: NAME must be lowercase letters, digits and '-' (not \"base\" or \"build\"), REV a revision");
                    }
                    if options.also.iter().any(|(n, _)| n == name) {
                        bail!("--also: {name:?} given twice");
                    }
                    options.also.push((name.to_owned(), rev.to_owned()));
                }
                other => {
                    bail!("gpu-bundle: unexpected argument {other:?} (--tests a,b | --base REV | --also NAME=REV)")
                }
            }
        }
        Ok(options)
    }
}

pub fn build(root: &Path, options: &Options) -> Result<()> {
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
    let mut gpu_tests = Vec::new();
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
        if !(is_test && name.starts_with("gpu_")) {
            continue;
        }
        gpu_tests.push(name.to_owned());
        if options.tests.is_empty() || options.tests.iter().any(|t| t == name) {
            copy_stripped(Path::new(exe), &bundle.join("tests").join(name))?;
        }
    }
    // Before the longer builds below, so that a misspelt name fails fast.
    if let Some(missing) = options.tests.iter().find(|t| !gpu_tests.contains(t)) {
        bail!("--tests: no GPU test binary named {missing:?} (there are: {})", gpu_tests.join(", "));
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

    // Which source the bundle's own binaries were built from, for the
    // figures measured with them (`run.sh` and the call scripts print it).
    let head = git(root, &["rev-parse", "HEAD"])?;
    let branch = git(root, &["rev-parse", "--abbrev-ref", "HEAD"])?;
    let dirty = !git(root, &["status", "--porcelain", "--untracked-files=no"])?.is_empty();
    let note = if dirty { " with uncommitted changes" } else { "" };
    std::fs::write(bundle.join("bin").join("BUILD"), format!("{head} ({branch}){note}\n"))?;

    if let Some(rev) = &options.base {
        build_at(root, rev, &bundle.join("bin"), "base")?;
    }
    for (name, rev) in &options.also {
        build_at(root, rev, &bundle.join("bin"), name)?;
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

/// Builds `fp8q` at `rev` in a temporary worktree (its own target folder,
/// `target/base`, kept between runs so that a rebuild is incremental) into
/// `bin/fp8q-NAME`, with the resolved commit in `bin/NAME` upper-cased
/// (`bin/BASE` for `--base`; `bin/BUILD` names the bundle's own build).
fn build_at(root: &Path, rev: &str, bin: &Path, name: &str) -> Result<()> {
    let commit = git(root, &["rev-parse", "--verify", &format!("{rev}^{{commit}}")])?;
    let tree = root.join("target").join("base-worktree");
    if tree.exists() {
        let _ = git(root, &["worktree", "remove", "--force", &tree.to_string_lossy()]);
        let _ = std::fs::remove_dir_all(&tree);
        git(root, &["worktree", "prune"])?;
    }
    git(root, &["worktree", "add", "--detach", &tree.to_string_lossy(), &commit])?;
    let target = root.join("target").join("base");
    let status = Command::new("cargo")
        .args(["build", "--release", "-p", "quant-host", "--bins"])
        .env("CARGO_TARGET_DIR", &target)
        .current_dir(&tree)
        .status();
    let removed = git(root, &["worktree", "remove", "--force", &tree.to_string_lossy()]);
    if !status.context("building the base fp8q")?.success() {
        bail!("building fp8q at {rev} ({commit}) failed");
    }
    removed?;
    copy_stripped(&target.join("release").join("fp8q"), &bin.join(format!("fp8q-{name}")))?;
    std::fs::write(bin.join(name.to_uppercase()), format!("{commit}\n"))?;
    eprintln!("xtask: bin/fp8q-{name} is fp8q at {rev} ({commit})");
    Ok(())
}

/// `git ARGS` in `root`: its trimmed standard output, or an error with its
/// standard error.
fn git(root: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new("git").args(args).current_dir(root).output().context("running git")?;
    if !out.status.success() {
        bail!("git {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
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

#[cfg(test)]
mod tests {
    use super::Options;

    fn parse(args: &[&str]) -> anyhow::Result<Options> {
        Options::parse(&args.iter().map(|a| a.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn options_parse_and_refuse_what_they_do_not_know() {
        assert_eq!(parse(&[]).unwrap(), Options::default());
        let o = parse(&["--tests", "gpu_gemm,gpu_quant", "--base", "main"]).unwrap();
        assert_eq!(o.tests, ["gpu_gemm", "gpu_quant"]);
        assert_eq!(o.base.as_deref(), Some("main"));
        assert!(parse(&["--tests"]).is_err());
        assert!(parse(&["--tests", "cpu_props"]).is_err());
        assert!(parse(&["--base"]).is_err());
        assert!(parse(&["--fast"]).is_err());
        let o = parse(&["--also", "kb=next/gemm-wg-stagger-kb", "--also", "s20=abc123"]).unwrap();
        assert_eq!(
            o.also,
            [("kb".to_owned(), "next/gemm-wg-stagger-kb".to_owned()), ("s20".to_owned(), "abc123".to_owned())]
        );
        for bad in ["kb", "=main", "kb=", "Kb=main", "base=main", "build=main", "a b=main"] {
            assert!(parse(&["--also", bad]).is_err(), "{bad}");
        }
        assert!(parse(&["--also", "kb=a", "--also", "kb=b"]).is_err());
        assert!(parse(&["--also"]).is_err());
    }
}
