//! The CPU reference path: `../shared/spec.md` implemented literally.
//!
//! This is the oracle every GPU kernel is checked against, bit for bit.
//! It uses the same scalar functions as the kernels (`quant_kernels::fp8`,
//! `quant_kernels::scale`).

mod block;
mod gemm;
mod token_group;

pub use block::per_block_quant_fp8;
pub use gemm::{mm_fp8_blockscale, Accumulation};
pub use token_group::per_token_group_quant_fp8;

use crate::error::{QuantError, Result};

/// Errors unless an output buffer has exactly the length its shape needs.
pub(crate) fn check_len(what: &'static str, expected: u64, actual: usize) -> Result<()> {
    if actual as u64 != expected {
        return Err(QuantError::BufferLength {
            what,
            expected,
            actual: actual as u64,
        });
    }
    Ok(())
}
