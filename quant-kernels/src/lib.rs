//! Scalar fp8 math and the GPU kernels of the fp8 block-scale quantizers.
//!
//! This crate is compiled twice:
//! - for the host, on stable Rust, where it is the scalar math (`encode`, `decode`,
//!   the group scale) that the CPU reference in `quant-host` uses;
//! - for `nvptx64-nvidia-cuda` on the pinned nightly by `cargo xtask build-ptx`,
//!   where the same functions are inlined into the kernels in `kernels` (a module compiled for the GPU only).
//!
//! Sharing one implementation is what lets the GPU output be compared with the
//! CPU reference bit for bit: there is no second copy of the rounding rules.
#![no_std]
#![cfg_attr(
    target_arch = "nvptx64",
    feature(
        abi_ptx,
        stdarch_nvptx,
        link_llvm_intrinsics,
        asm_experimental_arch,
        core_intrinsics,
        gpu_intrinsics,
        gpu_launch_sized_workgroup_mem,
        stmt_expr_attributes
    ),
    allow(internal_features)
)]
#![deny(missing_docs)]

#[macro_use]
pub mod abi;
pub mod element;
#[macro_use]
pub mod gemm_contract;
pub mod fp8;
pub mod fused;
#[macro_use]
pub mod fused_abi;
pub mod geometry;
pub mod layout;
pub mod scale;
pub mod stream_contract;
pub mod tensor_map;
pub mod wgmma_contract;

#[cfg(target_arch = "nvptx64")]
mod instr;
#[cfg(target_arch = "nvptx64")]
pub mod kernels;

pub use fp8::Fp8Format;
pub use layout::ScaleLayout;
pub use scale::ScaleMode;
