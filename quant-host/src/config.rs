//! Quantization options: the knobs of the spec (`docs/spec.md`), validated once.

use crate::error::{QuantError, Result};
use quant_kernels::{Fp8Format, ScaleLayout, ScaleMode};

/// The group sizes along K that the per-token-group quantizer supports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum GroupSize {
    /// 32 elements.
    G32,
    /// 64 elements.
    G64,
    /// 128 elements (DeepSeek-V3/V4).
    #[default]
    G128,
}

impl GroupSize {
    /// All group sizes.
    pub const ALL: [GroupSize; 3] = [GroupSize::G32, GroupSize::G64, GroupSize::G128];

    /// The number of elements in a group.
    pub const fn get(self) -> usize {
        match self {
            GroupSize::G32 => 32,
            GroupSize::G64 => 64,
            GroupSize::G128 => 128,
        }
    }
}

impl TryFrom<usize> for GroupSize {
    type Error = QuantError;
    fn try_from(value: usize) -> Result<Self> {
        match value {
            32 => Ok(GroupSize::G32),
            64 => Ok(GroupSize::G64),
            128 => Ok(GroupSize::G128),
            other => Err(QuantError::UnsupportedGroupSize(other)),
        }
    }
}

/// The default `eps` of the spec: the floor of a group's amax.
pub const DEFAULT_EPS: f32 = 1e-12;

/// Options of `per_token_group_quant_fp8`.
///
/// `Default` gives the spec's defaults: E4M3FN, groups of 128, `eps = 1e-12`,
/// `fp8_max` = the format's largest finite value, float scales, row-major.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TokenGroupConfig {
    /// Output fp8 format.
    pub format: Fp8Format,
    /// Elements per group along K.
    pub group_size: GroupSize,
    /// Floor of a group's amax (avoids a zero scale).
    pub eps: f32,
    /// Clamp bound and scale divisor; `None` means the format's largest finite.
    pub fp8_max: Option<f32>,
    /// Float or power-of-two (UE8M0) scales.
    pub scale_mode: ScaleMode,
    /// Memory layout of the scales.
    pub layout: ScaleLayout,
}

impl Default for TokenGroupConfig {
    fn default() -> Self {
        Self {
            format: Fp8Format::E4M3Fn,
            group_size: GroupSize::G128,
            eps: DEFAULT_EPS,
            fp8_max: None,
            scale_mode: ScaleMode::Float,
            layout: ScaleLayout::RowMajor,
        }
    }
}

/// Options of `per_block_quant_fp8` (blocks of `block_rows x block_cols`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockConfig {
    /// Output fp8 format.
    pub format: Fp8Format,
    /// Block height (along N). 128 by default.
    pub block_rows: usize,
    /// Block width (along K). 128 by default.
    pub block_cols: usize,
    /// Floor of a block's amax.
    pub eps: f32,
    /// Clamp bound and scale divisor; `None` means the format's largest finite.
    pub fp8_max: Option<f32>,
    /// Float or power-of-two (UE8M0) scales.
    pub scale_mode: ScaleMode,
}

impl Default for BlockConfig {
    fn default() -> Self {
        Self {
            format: Fp8Format::E4M3Fn,
            block_rows: 128,
            block_cols: 128,
            eps: DEFAULT_EPS,
            fp8_max: None,
            scale_mode: ScaleMode::Float,
        }
    }
}

/// The scalar parameters shared by both quantizers, after validation. The
/// fields are private: [`ScaleParams::new`] is the only way to make one, so
/// holding a `ScaleParams` means its `eps` and `fp8_max` passed the checks.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScaleParams {
    format: Fp8Format,
    eps: f32,
    fp8_max: f32,
    mode: ScaleMode,
}

impl ScaleParams {
    /// Output fp8 format.
    pub fn format(&self) -> Fp8Format {
        self.format
    }

    /// Validated `eps`.
    pub fn eps(&self) -> f32 {
        self.eps
    }

    /// Validated `fp8_max` (the format's largest finite value by default).
    pub fn fp8_max(&self) -> f32 {
        self.fp8_max
    }

    /// Scale mode.
    pub fn mode(&self) -> ScaleMode {
        self.mode
    }

    /// Checks `eps` and `fp8_max` against the spec's bad-input rules.
    pub fn new(format: Fp8Format, eps: f32, fp8_max: Option<f32>, mode: ScaleMode) -> Result<Self> {
        if !(eps.is_finite() && eps > 0.0) {
            return Err(QuantError::InvalidEps(eps));
        }
        let max = format.max_finite();
        let fp8_max = fp8_max.unwrap_or(max);
        if !(fp8_max.is_finite() && fp8_max > 0.0 && fp8_max <= max) {
            return Err(QuantError::InvalidFp8Max { value: fp8_max, max, format });
        }
        // The all-zero group's scale is eps / fp8_max: it must not round to
        // zero (NaN codes) or lose precision as a subnormal.
        if eps / fp8_max < f32::MIN_POSITIVE {
            return Err(QuantError::InvalidEps(eps));
        }
        Ok(Self { format, eps, fp8_max, mode })
    }

    /// The scale of a group with absolute maximum `amax`.
    #[inline]
    pub fn scale(&self, amax: f32) -> f32 {
        quant_kernels::scale::group_scale(amax, self.eps, self.fp8_max, self.mode)
    }

    /// The code of `x` in a group with scale `scale`.
    #[inline]
    pub fn quantize(&self, x: f32, scale: f32) -> u8 {
        quant_kernels::scale::quantize(x, scale, self.fp8_max, self.format)
    }
}

impl TokenGroupConfig {
    /// Validates the scalar parameters.
    pub fn params(&self) -> Result<ScaleParams> {
        ScaleParams::new(self.format, self.eps, self.fp8_max, self.scale_mode)
    }
}

impl BlockConfig {
    /// Validates the block shape and the scalar parameters.
    pub fn params(&self) -> Result<ScaleParams> {
        if self.block_rows == 0 || self.block_cols == 0 {
            return Err(QuantError::InvalidBlock { rows: self.block_rows, cols: self.block_cols });
        }
        ScaleParams::new(self.format, self.eps, self.fp8_max, self.scale_mode)
    }
}
