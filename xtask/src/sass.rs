//! `cargo xtask sass <kernel> [--arch sm_90a] [--summary]`: the SASS ptxas
//! makes of one kernel of the committed PTX, to read what the GPU will run
//! (instruction counts, register use, whether a conversion became one
//! instruction) without a GPU. `--summary` prints the opcode histogram
//! instead of the listing. Static code: every path of the kernel counts,
//! taken or not.

use crate::ptx::{committed_dir, TARGETS};
use crate::tools;
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

pub fn run_cli(root: &Path, args: &[String]) -> Result<()> {
    let mut kernel = None;
    let mut arch = "sm_90a".to_string();
    let mut summary = false;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--arch" => arch = rest.next().context("--arch needs a value")?.clone(),
            "--summary" => summary = true,
            name if kernel.is_none() && !name.starts_with('-') => kernel = Some(name.to_string()),
            other => bail!("sass: unexpected argument {other:?}"),
        }
    }
    let kernel = kernel.context("usage: cargo xtask sass <kernel> [--arch sm_80|sm_90|sm_90a] [--summary]")?;
    if !TARGETS.iter().any(|t| t.cpu == arch) {
        bail!("sass: no committed module for {arch}");
    }
    let ptxas = tools::ensure_ptxas(root)?;
    let (cuobjdump, nvdisasm) = tools::ensure_disassembler(root)?;
    let dir = std::env::temp_dir().join(format!("xtask-sass-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let cubin = dir.join("module.cubin");
    let ptx = committed_dir(root).join(format!("quant_kernels.{arch}.ptx"));
    let status = Command::new(&ptxas).arg(format!("-arch={arch}")).arg(&ptx).arg("-o").arg(&cubin).status()?;
    if !status.success() {
        bail!("ptxas failed on {}", ptx.display());
    }
    // cuobjdump runs the nvdisasm it finds on PATH.
    let nvdisasm_dir = nvdisasm.parent().context("nvdisasm's folder")?.to_path_buf();
    let path = std::env::join_paths(
        std::iter::once(nvdisasm_dir).chain(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())),
    )?;
    let output = Command::new(&cuobjdump)
        .args(["-sass", "-fun", &kernel])
        .arg(&cubin)
        .env("PATH", path)
        .output()
        .context("running cuobjdump")?;
    let _ = std::fs::remove_dir_all(&dir);
    if !output.status.success() {
        bail!("cuobjdump: {}", String::from_utf8_lossy(&output.stderr));
    }
    let listing = String::from_utf8_lossy(&output.stdout);
    if !listing.contains("Function :") {
        bail!("sass: no kernel {kernel} in the {arch} module");
    }
    if !summary {
        return emit(&listing);
    }
    // Lines look like `/*0040*/  @!P0 FFMA R2, R3, R4, R5 ;`: the opcode is the
    // first word after the address and an optional predicate, without modifiers.
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for line in listing.lines() {
        let Some(code) = line.trim_start().strip_prefix("/*").and_then(|l| l.split_once("*/")).map(|(_, c)| c) else {
            continue;
        };
        let mut words = code.split_whitespace();
        let Some(mut op) = words.next() else { continue };
        if op.starts_with('@') {
            op = words.next().unwrap_or_default();
        }
        let op = op.split('.').next().unwrap_or_default().trim_end_matches(';');
        if !op.is_empty() && op.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_') {
            *counts.entry(op.to_string()).or_default() += 1;
        }
    }
    let mut sorted: Vec<_> = counts.into_iter().collect();
    sorted.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let total: usize = sorted.iter().map(|(_, n)| n).sum();
    let mut text = format!("{kernel} ({arch}): {total} instructions\n");
    for (op, n) in sorted {
        text.push_str(&format!("{n:>6} {op}\n"));
    }
    emit(&text)
}

/// Writes to stdout; a closed pipe (`| head`) is not an error.
fn emit(text: &str) -> Result<()> {
    use std::io::Write;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}
