//! The PTX modules built by `cargo xtask build-ptx`, embedded at compile time.

use crate::error::{QuantError, Result};

/// The architectures the kernel crate is compiled for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PtxArch {
    /// Ampere and Ada (sm_80 ... sm_89): software fp8 encoder.
    Sm80,
    /// sm_90 and newer (Blackwell included): hardware `cvt.rn.satfinite.e4m3x2.f32`
    /// and fp8 `mma.sync`.
    Sm90,
    /// Hopper exactly (compute capability 9.0): the sm_90 kernels plus the
    /// `wgmma` + TMA GEMM. `sm_90a` code does not run on later GPUs.
    Sm90a,
}

impl PtxArch {
    /// The best module for a device of compute capability `(major, minor)`.
    pub fn for_capability((major, minor): (i32, i32)) -> Result<Self> {
        match (major, minor) {
            (9, 0) => Ok(PtxArch::Sm90a),
            (9.., _) => Ok(PtxArch::Sm90),
            (8, _) => Ok(PtxArch::Sm80),
            _ => Err(QuantError::UnsupportedArch { major, minor }),
        }
    }

    /// The module's PTX text.
    pub fn ptx(self) -> &'static str {
        match self {
            PtxArch::Sm80 => include_str!("../../ptx/quant_kernels.sm_80.ptx"),
            PtxArch::Sm90 => include_str!("../../ptx/quant_kernels.sm_90.ptx"),
            PtxArch::Sm90a => include_str!("../../ptx/quant_kernels.sm_90a.ptx"),
        }
    }

    /// Whether the module has the `wgmma` GEMM (`gemm_wgmma_*`).
    pub fn has_wgmma(self) -> bool {
        self == PtxArch::Sm90a
    }
}
