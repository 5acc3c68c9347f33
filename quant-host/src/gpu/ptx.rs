//! The PTX modules built by `cargo xtask build-ptx`, embedded at compile time.

use crate::error::{QuantError, Result};

/// The architectures the kernel crate is compiled for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PtxArch {
    /// Ampere and Ada (sm_80 ... sm_89): software fp8 encoder.
    Sm80,
    /// Hopper and newer (sm_90+): hardware `cvt.rn.satfinite.e4m3x2.f32`.
    Sm90,
}

impl PtxArch {
    /// The best module for a device of compute capability `(major, minor)`.
    pub fn for_capability((major, minor): (i32, i32)) -> Result<Self> {
        match major {
            9.. => Ok(PtxArch::Sm90),
            8 => Ok(PtxArch::Sm80),
            _ => Err(QuantError::UnsupportedArch { major, minor }),
        }
    }

    /// The module's PTX text.
    pub fn ptx(self) -> &'static str {
        match self {
            PtxArch::Sm80 => include_str!("../../ptx/quant_kernels.sm_80.ptx"),
            PtxArch::Sm90 => include_str!("../../ptx/quant_kernels.sm_90.ptx"),
        }
    }
}
