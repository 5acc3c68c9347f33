//! fp8 block-scale quantization for DeepSeek-V3/V4-style models.
#![deny(missing_docs)]

pub mod config;
pub mod cpu;
pub mod element;
pub mod error;
pub mod gemm;
pub mod gpu;
pub mod shape;

pub use config::{BlockConfig, GroupSize, TokenGroupConfig};
pub use element::{DType, Element};
pub use error::{QuantError, Result};
pub use gemm::{GemmConfig, GemmShape, GemmTensor, OutputType};
pub use gpu::Gpu;
pub use quant_kernels::{Fp8Format, ScaleLayout, ScaleMode};
pub use shape::MatrixShape;
pub mod device;
pub mod tensor;

pub use device::Device;
pub use tensor::{Location, Quantized, Scheme, Storage, Tensor};
