//! The CPU reference path: the spec (`docs/spec.md`) implemented literally.
//!
//! This is the oracle every GPU kernel is checked against, bit for bit.
//! It uses the same scalar functions as the kernels (`quant_kernels::fp8`,
//! `quant_kernels::scale`), so there is no second copy of the rounding rules.
//!
//! Every function validates all of its arguments before it touches a buffer
//! and reports bad input as a [`QuantError`]; `M == 0` (or an empty K) is a
//! valid no-op. Index arithmetic is in `usize` only after the shapes have been
//! checked to fit (see [`MatrixShape`](crate::MatrixShape) and
//! [`GemmShape`](crate::GemmShape)); buffer sizes are computed with checked
//! `u64` arithmetic.
//!
//! [`block_par`] is the fast path of `per_block_quant_fp8` (every core,
//! vectorisable loops) that the checkpoint tool uses; it is tested bit for
//! bit against the literal one here.

mod block;
pub mod block_par;
mod dequant;
pub mod fused;
mod gemm;
mod token_group;

pub use block::{per_block_quant_fp8, per_block_quant_fp8_planned};
pub use block_par::per_block_quant_fp8_par;
pub use dequant::{dequantize_block, dequantize_token_group};
pub use gemm::{mm_fp8_blockscale, Accumulation};
pub use token_group::{per_token_group_quant_fp8, per_token_group_quant_fp8_planned};

use crate::error::{QuantError, Result};
use quant_kernels::scale::{abs, nan_max};
use quant_kernels::ScaleLayout;

/// Errors unless a buffer has exactly the length its shape needs.
///
/// Exact (not "at least"): a longer buffer almost always means the caller
/// passed the wrong shape, and a silent partial write would hide that.
pub(crate) fn check_len(what: &'static str, expected: u64, actual: usize) -> Result<()> {
    if actual as u64 != expected {
        return Err(QuantError::BufferLength { what, expected, actual: actual as u64 });
    }
    Ok(())
}

/// The length of a token-group scale buffer of `rows x groups` in `layout`,
/// or [`QuantError::TooLarge`] where it does not fit in `u64`.
pub(crate) fn token_group_scales_len(layout: ScaleLayout, rows: usize, groups: usize) -> Result<u64> {
    layout.checked_len(rows as u64, groups as u64).ok_or(QuantError::TooLarge("scale buffer length"))
}

/// The spec's `amax = max(|xs|)`: NaN if any element is NaN (torch semantics).
pub(crate) fn amax(values: impl Iterator<Item = f32>) -> f32 {
    values.fold(0.0, |acc, v| nan_max(acc, abs(v)))
}
