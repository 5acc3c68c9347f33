//! Types of the block-scale fp8 GEMM `mm_fp8_blockscale`.
//!
//! `C[M, N] = A[M, K] * B[N, K]^T`, with A quantized in 1 x 128 groups
//! (scales `[M, ceil(K/128)]` in any [`ScaleLayout`]) and B in 128 x 128 blocks
//! (scales `[ceil(N/128), ceil(K/128)]`, row-major).
//!
//! Accuracy: every path accumulates in f32 and applies the scales per
//! k-block, as the contract says. On Hopper the `wgmma` kernels promote the
//! tensor cores' partial sums (kept with about 13-14 mantissa bits) into f32
//! once per 128-wide k-block ([`GemmPrecision::Fast`], the default, as
//! DeepGEMM and cuBLASLt do; tolerance `max|C - C_ref| / max|C_ref| < 5e-3`)
//! or after every k32 step ([`GemmPrecision::Precise`], `< 1e-3`, slower).
//!
//! Kernels on Hopper: the tile is planned per problem (or forced with
//! [`GemmConfig::tile`]); large `Fast` problems whose 256 x 128, 128 x 128
//! or 128 x 192 tile columns pair up may run in 2-CTA clusters that load A
//! once for both CTAs (TMA multicast), where the planner's measured weights
//! favour them. Both ways give bit-identical results (the same sums in
//! the same order); setting the environment variable `QUANT_GEMM_NO_CLUSTERS`
//! (any value) before a `Gpu` loads its GEMM kernels keeps every launch on
//! the single-CTA kernels, for comparing or ruling them out on a given GPU.

use crate::error::{QuantError, Result};
pub use quant_kernels::wgmma_contract::{GemmPrecision, GemmTile};
use quant_kernels::{Fp8Format, ScaleLayout};

/// The scale block edge of the GEMM: 128 along K for A, 128 x 128 for B.
pub const GEMM_BLOCK: usize = 128;

/// `M x N x K`, validated so every buffer size fits in `usize`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GemmShape {
    m: usize,
    n: usize,
    k: usize,
}

impl GemmShape {
    /// Checks that `M * K`, `N * K` and `M * N` fit in `usize`.
    pub fn new(m: usize, n: usize, k: usize) -> Result<Self> {
        m.checked_mul(k).ok_or(QuantError::TooLarge("M * K"))?;
        n.checked_mul(k).ok_or(QuantError::TooLarge("N * K"))?;
        m.checked_mul(n).ok_or(QuantError::TooLarge("M * N"))?;
        Ok(Self { m, n, k })
    }

    /// Rows of A and C.
    pub fn m(&self) -> usize {
        self.m
    }

    /// Rows of B, columns of C.
    pub fn n(&self) -> usize {
        self.n
    }

    /// The reduction dimension.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Scale blocks along K: `ceil(K / 128)`.
    pub fn k_blocks(&self) -> usize {
        self.k.div_ceil(GEMM_BLOCK)
    }

    /// Scale blocks along N: `ceil(N / 128)`.
    pub fn n_blocks(&self) -> usize {
        self.n.div_ceil(GEMM_BLOCK)
    }

    /// Number of f32 in A's scale buffer for `layout`. Saturates at
    /// `usize::MAX` where the TMA-aligned rounding of M overflows (M near
    /// `usize::MAX` with K == 0), so no buffer ever matches it; see
    /// [`Self::checked_a_scales_len`] for the error.
    pub fn a_scales_len(&self, layout: ScaleLayout) -> usize {
        self.checked_a_scales_len(layout).map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX))
    }

    /// Number of f32 in A's scale buffer for `layout`, or
    /// [`QuantError::TooLarge`] where it does not fit in `u64`.
    pub fn checked_a_scales_len(&self, layout: ScaleLayout) -> Result<u64> {
        layout.checked_len(self.m as u64, self.k_blocks() as u64).ok_or(QuantError::TooLarge("A scale buffer length"))
    }

    /// Number of f32 in B's scale buffer.
    pub fn b_scales_len(&self) -> usize {
        self.n_blocks() * self.k_blocks()
    }
}

/// The element type of C.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum OutputType {
    /// bf16, rounded to nearest even from the f32 result (the default).
    #[default]
    Bf16,
    /// f32.
    F32,
}

/// Options of `mm_fp8_blockscale`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct GemmConfig {
    /// The fp8 format of both operands.
    pub format: Fp8Format,
    /// How A's per-token scales are laid out (what the quantizer produced).
    /// Every layout gives the same result; on Hopper
    /// [`ScaleLayout::ColMajorTmaAligned`] is the fastest (the kernel copies
    /// each k-block's scales of a tile, contiguous in that layout; row-major
    /// costs up to 14% on some shapes, docs/spec.md), so quantize
    /// activations with that layout when they feed this GEMM.
    pub a_scale_layout: ScaleLayout,
    /// The element type of C.
    pub output: OutputType,
    /// When the tensor cores' partial sums are promoted into f32 (the
    /// contract's two modes; [`GemmPrecision::Fast`] by default). The CPU
    /// path computes the exact block sums in either mode.
    pub precision: GemmPrecision,
    /// The Hopper kernel's CTA tile; `None` (the default) lets the planner
    /// choose per problem. A tuning and benchmarking knob: the result is
    /// the same sum whatever the tile. `Precise` has 128 x 128 only.
    pub tile: Option<GemmTile>,
}

impl GemmConfig {
    /// Rejects combinations no backend runs (a tile `Precise` lacks), so
    /// the CPU and GPU paths accept the same configurations.
    pub fn check(&self) -> Result<()> {
        match (self.precision, self.tile) {
            (GemmPrecision::Precise, Some(t)) if t != GemmTile::M128N128 => {
                Err(QuantError::UnsupportedGemmTile { precision: self.precision.name(), tile: t.name() })
            }
            _ => Ok(()),
        }
    }
}

/// The output buffer of the CPU GEMM, `M * N` elements row-major.
#[derive(Debug)]
pub enum GemmOutput<'a> {
    /// bf16 output.
    Bf16(&'a mut [half::bf16]),
    /// f32 output.
    F32(&'a mut [f32]),
}

/// C of `Device::mm_fp8_blockscale`, `[M, N]` dense, in the element type that
/// [`GemmConfig::output`] names.
#[derive(Debug)]
pub enum GemmTensor {
    /// bf16 output.
    Bf16(crate::Tensor<half::bf16>),
    /// f32 output.
    F32(crate::Tensor<f32>),
}

impl GemmTensor {
    /// The output type.
    pub fn output_type(&self) -> OutputType {
        match self {
            GemmTensor::Bf16(_) => OutputType::Bf16,
            GemmTensor::F32(_) => OutputType::F32,
        }
    }

    /// The shape of C.
    pub fn shape(&self) -> crate::MatrixShape {
        match self {
            GemmTensor::Bf16(t) => t.shape(),
            GemmTensor::F32(t) => t.shape(),
        }
    }

    /// Copies C to the host as f32 (exact for bf16), waiting for the device.
    pub fn to_f32_vec(&self) -> Result<Vec<f32>> {
        Ok(match self {
            GemmTensor::Bf16(t) => t.to_vec()?.into_iter().map(f32::from).collect(),
            GemmTensor::F32(t) => t.to_vec()?,
        })
    }
}
