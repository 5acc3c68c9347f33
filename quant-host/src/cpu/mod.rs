//! The CPU reference path: `../shared/spec.md` implemented literally.
//!
//! This is the oracle every GPU kernel is checked against, bit for bit.
//! It uses the same scalar functions as the kernels (`quant_kernels::fp8`,
//! `quant_kernels::scale`).

mod token_group;

pub use token_group::per_token_group_quant_fp8;
