//! fp8 block-scale quantization for DeepSeek-V3/V4-style models, on NVIDIA
//! GPUs and on the CPU.
//!
//! Activations are quantized per token in groups of 128 along K
//! ([`Device::per_token_group_quant_fp8`]), weights in 128 x 128 blocks
//! ([`Device::per_block_quant_fp8`]), to `e4m3fn` or `e4m3fnuz`
//! ([`Fp8Format`]), with f32 scales. The semantics are fixed by the project's
//! spec: the CPU path ([`cpu`]) implements it literally, and the GPU kernels
//! match it bit for bit.
//!
//! A [`Device`] value picks the backend; the same code runs on either:
//!
//! ```
//! use half::bf16;
//! use quant_host::{Device, MatrixShape, ScaleMode, TokenGroupConfig};
//!
//! // GPU 0 if there is one (asynchronous launches on its stream), else the CPU.
//! let (device, _why_not_gpu) = Device::best_available();
//! let (m, k) = (4, 7000); // K = 7000: the last group of each row is a tail
//! let host: Vec<bf16> = (0..m * k).map(|i| bf16::from_f32((i as f32 * 0.37).sin())).collect();
//! let x = device.upload(&host, MatrixShape::new(m, k)?)?;
//!
//! let cfg = TokenGroupConfig { scale_mode: ScaleMode::Ue8m0, ..TokenGroupConfig::default() };
//! let q = device.per_token_group_quant_fp8(&x, &cfg)?;
//! let (codes, scales) = (q.codes.to_vec()?, q.scales.to_vec()?);
//! assert_eq!(codes.len(), m * k);
//! assert_eq!(scales.len(), m * k.div_ceil(128));
//! // UE8M0 scales are powers of two.
//! assert!(scales.iter().all(|s| s.to_bits() & 0x7F_FFFF == 0));
//! # Ok::<(), quant_host::QuantError>(())
//! ```
//!
//! Every entry point checks its arguments and returns a [`QuantError`]; none
//! panics on bad input.
//!
//! # Cargo features
//!
//! The kernels, the CPU path and [`Device`] are always built; they need only
//! `cudarc` (driver loaded at run time), `half` and `thiserror`. The rest is
//! behind features, all on by default so that `cargo run`/`cargo install`
//! give the `fp8q` tool:
//!
//! | feature | adds | pulls in |
//! | --- | --- | --- |
//! | `checkpoint` | `checkpoint`: quantizing safetensors checkpoints | safetensors, serde, serde_json, memmap2, regex, tempfile |
//! | `bench` | `bench`: the kernel benchmark (needs a GPU to run) | clap, serde, serde_json |
//! | `cli` (default) | both, and the `fp8q` binary | clap, indicatif, anyhow |
//!
//! A library that only quantizes depends on
//! `quant-host = { version = "0.1", default-features = false }`.
#![deny(missing_docs)]

#[cfg(feature = "bench")]
pub mod bench;
#[cfg(feature = "checkpoint")]
pub mod checkpoint;
pub mod config;
pub mod cpu;
pub mod element;
pub mod error;
pub mod fused;
pub mod gemm;
pub mod gpu;
pub mod plan;
pub mod shape;

pub use config::{BlockConfig, GroupSize, TokenGroupConfig};
pub use element::{DType, Element};
pub use error::{QuantError, Result};
pub use fused::{FusedGroupPlan, FusedOp, RmsNormConfig, RmsNormPlan, ScaleElem};
pub use gemm::{GemmConfig, GemmPrecision, GemmShape, GemmTensor, GemmTile, OutputType};
pub use gpu::Gpu;
pub use plan::{BlockPlan, TokenGroupPlan};
pub use quant_kernels::{Fp8Format, ScaleLayout, ScaleMode};
pub use shape::MatrixShape;
pub mod device;
pub mod tensor;

pub use device::Device;
pub use tensor::{Location, Quantized, Scheme, Storage, Tensor};

/// The README's code blocks, compiled and run as doc tests so that the
/// example a new user copies first cannot go stale.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
