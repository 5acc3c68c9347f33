//! The fused quantizers (spec section "Fused quantizers"): the activation is
//! computed where it is quantized.
//!
//! - [`Device::silu_mul_per_token_group_quant_fp8`]: `h = silu(gate) * up`
//!   of an `[M, 2N]` input (gate then up), quantized per token group;
//! - [`Device::rms_norm_per_token_group_quant_fp8`]: `y = x (+ residual)`,
//!   `h = y / sqrt(mean(y^2) + eps) * w`, quantized per token group;
//! - the masked MoE layout ([`Device::per_token_group_quant_fp8_masked`],
//!   [`Device::silu_mul_per_token_group_quant_fp8_masked`]): `[E, M_max, K]`
//!   rows of which only the first `masked_m[e]` of each expert are read and
//!   written, scales per expert.
//!
//! Each call is checked once into a plan ([`FusedGroupPlan`],
//! [`RmsNormPlan`]) that the CPU reference (`cpu::fused`) and the GPU
//! launches (`gpu::fused`) both run.

use crate::config::{ScaleParams, TokenGroupConfig};
use crate::cpu;
use crate::device::Device;
use crate::element::Element;
use crate::error::{QuantError, Result};
use crate::gpu;
use crate::plan::TokenGroupPlan;
use crate::shape::MatrixShape;
use crate::tensor::{Quantized, Scheme, Tensor};
use quant_kernels::fused::{rms_geometry, RMS_MAX_COLS};
use quant_kernels::{ScaleLayout, ScaleMode};

pub use quant_kernels::fused_abi::FusedOp;

/// The default RMSNorm `eps` (DeepSeek-V3's `rms_norm_eps`).
pub const DEFAULT_NORM_EPS: f32 = 1e-6;

/// Options of `rms_norm_per_token_group_quant_fp8`: the quantizer's options
/// and the `eps` inside the square root.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RmsNormConfig {
    /// Format, group size, scale `eps`, `fp8_max`, scale mode and layout.
    pub quant: TokenGroupConfig,
    /// `h = y / sqrt(mean(y^2) + norm_eps) * w`; finite and positive.
    pub norm_eps: f32,
}

impl Default for RmsNormConfig {
    fn default() -> Self {
        Self { quant: TokenGroupConfig::default(), norm_eps: DEFAULT_NORM_EPS }
    }
}

/// A checked per-group fused call: `Quant` (masked layout) or `SiluMul`
/// (dense or masked).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FusedGroupPlan {
    op: FusedOp,
    config: TokenGroupConfig,
    params: ScaleParams,
    input: MatrixShape,
    output: MatrixShape,
    experts: usize,
    expert_rows: usize,
    masked: bool,
    groups: usize,
    packed: bool,
    scale_shape: MatrixShape,
}

impl FusedGroupPlan {
    /// Checks `cfg` and the input shape of `op`: `[rows, K]` for `Quant`,
    /// `[rows, 2N]` for `SiluMul`; the rows form `experts` experts of
    /// `rows / experts` rows (1 expert: dense), with a `masked_m` array when
    /// `masked`.
    pub fn new(op: FusedOp, cfg: &TokenGroupConfig, input: MatrixShape, experts: usize, masked: bool) -> Result<Self> {
        let params = cfg.params()?;
        let cols = match op {
            FusedOp::Quant => input.cols(),
            FusedOp::SiluMul if input.cols().is_multiple_of(2) => input.cols() / 2,
            FusedOp::SiluMul => {
                return Err(QuantError::ShapeMismatch(format!(
                    "silu_mul input has {} columns: it must be [M, 2N] (gate then up)",
                    input.cols()
                )))
            }
            FusedOp::RmsNorm => {
                return Err(QuantError::ShapeMismatch("rms_norm has its own plan (RmsNormPlan)".into()))
            }
        };
        if experts == 0 || !input.rows().is_multiple_of(experts) {
            return Err(QuantError::ShapeMismatch(format!(
                "{} rows do not split into {experts} experts of equal size",
                input.rows()
            )));
        }
        let expert_rows = input.rows() / experts;
        let output = MatrixShape::new(input.rows(), cols)?;
        let groups = cols.div_ceil(cfg.group_size.get());
        let stored_rows = cfg
            .layout
            .checked_len(expert_rows as u64, 1)
            .and_then(|r| usize::try_from(r).ok())
            .ok_or(QuantError::TooLarge("scale rows"))?;
        let scale_shape = match cfg.layout {
            ScaleLayout::RowMajor => MatrixShape::new(input.rows(), groups)?,
            _ => MatrixShape::new(
                groups.checked_mul(experts).ok_or(QuantError::TooLarge("scale columns"))?,
                stored_rows,
            )?,
        };
        Ok(Self {
            op,
            config: *cfg,
            params,
            input,
            output,
            experts,
            expert_rows,
            masked,
            groups,
            packed: false,
            scale_shape,
        })
    }

    /// The plan with its scales in the packed UE8M0 layout instead of
    /// `cfg.layout` (which is then not used): `u32` words, `[E * ceil(G / 4),
    /// align(M_max, 4)]` in storage order. Needs `scale_mode` `Ue8m0`.
    pub fn packed_ue8m0(self) -> Result<Self> {
        let scale_shape = packed_shape(&self.config, self.experts, self.expert_rows, self.groups)?;
        Ok(Self { packed: true, scale_shape, ..self })
    }

    /// Whether the scales are packed UE8M0 words.
    pub fn packed(&self) -> bool {
        self.packed
    }

    /// Where the scales go.
    pub(crate) fn scale_geometry(&self) -> ScaleGeometry {
        ScaleGeometry { layout: self.config.layout, packed: self.packed, rows: self.expert_rows, groups: self.groups }
    }

    /// The operation.
    pub fn op(&self) -> FusedOp {
        self.op
    }
    /// The config the plan was made from.
    pub fn config(&self) -> TokenGroupConfig {
        self.config
    }
    /// The validated scalar parameters.
    pub fn params(&self) -> ScaleParams {
        self.params
    }
    /// The input's shape (row stride included).
    pub fn input(&self) -> MatrixShape {
        self.input
    }
    /// The codes' shape: `[rows, K]` (`[rows, N]` for `SiluMul`), dense.
    pub fn codes_shape(&self) -> MatrixShape {
        self.output
    }
    /// Experts (1 when dense).
    pub fn experts(&self) -> usize {
        self.experts
    }
    /// Rows per expert (`M_max`).
    pub fn expert_rows(&self) -> usize {
        self.expert_rows
    }
    /// Whether a `masked_m` array limits each expert's rows.
    pub fn masked(&self) -> bool {
        self.masked
    }
    /// Groups per row.
    pub fn groups(&self) -> usize {
        self.groups
    }
    /// The scales in storage order: `[rows, G]` row-major; `[E * G, M_max]`
    /// column-major; `[E * G, align(M_max, 4)]` TMA-aligned (expert `e`'s
    /// scales are the `G` storage rows from `e * G`).
    pub fn scale_shape(&self) -> MatrixShape {
        self.scale_shape
    }
    /// Offset of the scale of expert `e`, row `m` (within the expert), group
    /// `g` in the f32 layouts (the byte offset in the packed one).
    pub fn scale_index(&self, e: usize, m: usize, g: usize) -> usize {
        self.scale_geometry().index(e, m, g)
    }
    /// Checks the buffer lengths (and `masked_m`'s, one per expert, when masked).
    pub fn check_buffers(&self, x: usize, masked_m: Option<usize>, q: usize, scales: usize) -> Result<()> {
        self.input.check_buffer("x", x)?;
        exact("q", self.output.numel(), q)?;
        exact("scales", self.scale_shape.numel(), scales)?;
        match (self.masked, masked_m) {
            (true, Some(n)) => exact("masked_m", self.experts, n),
            (true, None) => Err(QuantError::ShapeMismatch("a masked plan needs masked_m".into())),
            (false, _) => Ok(()),
        }
    }
    /// Whether there is nothing to compute.
    pub fn is_empty(&self) -> bool {
        self.output.numel() == 0
    }
}

/// A checked `rms_norm_per_token_group_quant_fp8` of one input shape.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RmsNormPlan {
    quant: TokenGroupPlan,
    norm_eps: f32,
    threads: u32,
    slots: u32,
    packed: bool,
    scale_shape: MatrixShape,
}

impl RmsNormPlan {
    /// Checks `cfg` (the quantizer's options and `norm_eps`) and the input
    /// shape: `K <= 32768` (the GPU kernel holds a row in one CTA).
    pub fn new(cfg: &RmsNormConfig, input: MatrixShape) -> Result<Self> {
        let quant = TokenGroupPlan::new(&cfg.quant, input)?;
        if !(cfg.norm_eps.is_finite() && cfg.norm_eps > 0.0) {
            return Err(QuantError::InvalidNormEps(cfg.norm_eps));
        }
        let (threads, slots) = rms_geometry(input.cols() as u64)
            .ok_or(QuantError::RowTooLong { cols: input.cols(), max: RMS_MAX_COLS as usize })?;
        Ok(Self { quant, norm_eps: cfg.norm_eps, threads, slots, packed: false, scale_shape: quant.scale_shape() })
    }

    /// The plan with packed UE8M0 scales (see [`FusedGroupPlan::packed_ue8m0`]).
    pub fn packed_ue8m0(self) -> Result<Self> {
        let scale_shape = packed_shape(&self.quant.config(), 1, self.quant.input().rows(), self.quant.groups())?;
        Ok(Self { packed: true, scale_shape, ..self })
    }

    /// Whether the scales are packed UE8M0 words.
    pub fn packed(&self) -> bool {
        self.packed
    }

    /// The scales' shape in storage order (`u32` words when packed).
    pub fn scale_shape(&self) -> MatrixShape {
        self.scale_shape
    }

    /// Where the scales go.
    pub(crate) fn scale_geometry(&self) -> ScaleGeometry {
        let q = &self.quant;
        ScaleGeometry { layout: q.layout(), packed: self.packed, rows: q.input().rows(), groups: q.groups() }
    }
    /// The quantizer's plan (input shape, scales, sizes).
    pub fn quant(&self) -> &TokenGroupPlan {
        &self.quant
    }
    /// The `eps` inside the square root.
    pub fn norm_eps(&self) -> f32 {
        self.norm_eps
    }
    /// The GPU geometry: `(threads per CTA, leaves per thread)`.
    pub fn geometry(&self) -> (u32, u32) {
        (self.threads, self.slots)
    }
    /// Checks the buffer lengths: `weight` holds K, `residual` (when given) `M * K`.
    pub fn check_buffers(&self, x: usize, residual: Option<usize>, weight: usize, q: usize, s: usize) -> Result<()> {
        self.quant.input().check_buffer("x", x)?;
        exact("q", self.quant.input().numel(), q)?;
        exact("scales", self.scale_shape.numel(), s)?;
        exact("weight", self.quant.input().cols(), weight)?;
        if let Some(r) = residual {
            exact("residual", self.quant.input().numel(), r)?;
        }
        Ok(())
    }
}

/// The packed UE8M0 scales of `experts` experts of `rows` rows and `groups`
/// groups: `[experts * ceil(groups / 4), align(rows, 4)]` words.
fn packed_shape(cfg: &TokenGroupConfig, experts: usize, rows: usize, groups: usize) -> Result<MatrixShape> {
    if cfg.scale_mode != ScaleMode::Ue8m0 {
        return Err(QuantError::PackedNeedsUe8m0);
    }
    let aligned = rows.checked_next_multiple_of(4).ok_or(QuantError::TooLarge("scale rows"))?;
    let words = groups.div_ceil(4).checked_mul(experts).ok_or(QuantError::TooLarge("scale columns"))?;
    MatrixShape::new(words, aligned)
}

/// Where a plan's scales go: one of the f32 layouts per expert, or the
/// packed UE8M0 bytes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ScaleGeometry {
    layout: ScaleLayout,
    packed: bool,
    /// Rows per expert.
    rows: usize,
    groups: usize,
}

impl ScaleGeometry {
    /// The f32 index (packed: byte index) of expert `e`, row `m`, group `g`.
    pub(crate) fn index(&self, e: usize, m: usize, g: usize) -> usize {
        let (rows, groups) = (self.rows as u64, self.groups as u64);
        if self.packed {
            return quant_kernels::fused::packed_ue8m0_byte_index(e as u64, m as u64, g as u64, rows, groups) as usize;
        }
        (e as u64 * self.layout.len(rows, groups) + self.layout.index(m as u64, g as u64, rows, groups)) as usize
    }

    /// The groups a row stores (padded to 4 when packed).
    pub(crate) fn stored_groups(&self) -> usize {
        if self.packed {
            self.groups.div_ceil(4) * 4
        } else {
            self.groups
        }
    }

    /// The rows an expert stores (padded to 4 when packed or TMA-aligned).
    pub(crate) fn stored_rows(&self) -> usize {
        if self.packed {
            self.rows.div_ceil(4) * 4
        } else {
            self.layout.padded_rows(self.rows as u64) as usize
        }
    }

    /// The kernel's `layout` argument.
    pub(crate) fn kernel_layout(&self) -> u32 {
        if self.packed {
            quant_kernels::fused_abi::PACKED_UE8M0_LAYOUT
        } else {
            self.layout.as_u32()
        }
    }
}

/// The element type of a fused call's scales: `f32` for the f32 layouts,
/// `u32` for the packed UE8M0 one.
pub trait ScaleElem:
    cudarc::driver::DeviceRepr + cudarc::driver::ValidAsZeroBits + Copy + Default + sealed::Sealed
{
    /// Whether this is the packed UE8M0 word.
    const PACKED: bool;
    /// Stores `scale` at `index` (a byte index when packed).
    fn store(buf: &mut [Self], index: usize, scale: f32);
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for u32 {}
}

impl ScaleElem for f32 {
    const PACKED: bool = false;
    fn store(buf: &mut [Self], index: usize, scale: f32) {
        buf[index] = scale;
    }
}

impl ScaleElem for u32 {
    const PACKED: bool = true;
    fn store(buf: &mut [Self], index: usize, scale: f32) {
        let shift = 8 * (index % 4);
        let word = &mut buf[index / 4];
        *word = (*word & !(0xFF << shift)) | (quant_kernels::fused::ue8m0_byte(scale) as u32) << shift;
    }
}

/// Errors unless the scale buffer's element type is the plan's (u32 exactly when packed).
fn check_scale_type<S: ScaleElem>(packed: bool) -> Result<()> {
    if S::PACKED != packed {
        return Err(QuantError::ShapeMismatch("the scales are u32 for a packed UE8M0 plan, f32 otherwise".into()));
    }
    Ok(())
}

fn exact(what: &'static str, expected: usize, actual: usize) -> Result<()> {
    if expected != actual {
        return Err(QuantError::BufferLength { what, expected: expected as u64, actual: actual as u64 });
    }
    Ok(())
}

/// Errors unless `t` is dense and holds exactly `shape`'s elements.
fn check_dense<T: cudarc::driver::DeviceRepr + Copy>(what: &'static str, t: &Tensor<T>, len: usize) -> Result<()> {
    if !t.shape().is_dense() || t.shape().numel() != len {
        return Err(QuantError::ShapeMismatch(format!(
            "{what} must be dense with {len} elements, is {}x{} (stride {})",
            t.shape().rows(),
            t.shape().cols(),
            t.shape().row_stride()
        )));
    }
    Ok(())
}

/// The fused quantizers on either backend.
impl Device {
    /// `silu_mul_per_token_group_quant_fp8`: `x` is `[M, 2N]` (gate columns
    /// `0..N`, up columns `N..2N`, any row stride); returns codes `[M, N]` and
    /// the scales of `h = silu(gate) * up` in `cfg.layout`.
    pub fn silu_mul_per_token_group_quant_fp8<T: Element>(
        &self,
        x: &Tensor<T>,
        cfg: &TokenGroupConfig,
    ) -> Result<Quantized> {
        let plan = FusedGroupPlan::new(FusedOp::SiluMul, cfg, x.shape(), 1, false)?;
        self.run_fused_group(&plan, x, None)
    }

    /// The masked MoE form of `per_token_group_quant_fp8`: `x` is `[E * M_max,
    /// K]` (`E` = `masked_m`'s length); only rows `m < masked_m[e]` of each
    /// expert are read and written (codes and scales of the other rows stay
    /// zero); the scales are per expert in `cfg.layout` ([`FusedGroupPlan::scale_shape`]).
    pub fn per_token_group_quant_fp8_masked<T: Element>(
        &self,
        x: &Tensor<T>,
        masked_m: &Tensor<u32>,
        cfg: &TokenGroupConfig,
    ) -> Result<Quantized> {
        let plan = FusedGroupPlan::new(FusedOp::Quant, cfg, x.shape(), masked_m.shape().numel(), true)?;
        self.run_fused_group(&plan, x, Some(masked_m))
    }

    /// [`Device::silu_mul_per_token_group_quant_fp8`] in the masked MoE
    /// layout: `x` is `[E * M_max, 2N]`, the rest as
    /// [`Device::per_token_group_quant_fp8_masked`].
    pub fn silu_mul_per_token_group_quant_fp8_masked<T: Element>(
        &self,
        x: &Tensor<T>,
        masked_m: &Tensor<u32>,
        cfg: &TokenGroupConfig,
    ) -> Result<Quantized> {
        let plan = FusedGroupPlan::new(FusedOp::SiluMul, cfg, x.shape(), masked_m.shape().numel(), true)?;
        self.run_fused_group(&plan, x, Some(masked_m))
    }

    /// `per_token_group_quant_fp8` (and its masked form when `masked_m` is
    /// given) with the scales in the packed UE8M0 layout: `u32` words, four
    /// exponents each, `[E * ceil(G / 4), align(M_max, 4)]` (`E = 1` when
    /// dense), as DeepGEMM's SM100 kernels read them. `cfg.scale_mode` must
    /// be `Ue8m0`; `cfg.layout` is not used.
    pub fn per_token_group_quant_fp8_packed_ue8m0<T: Element>(
        &self,
        x: &Tensor<T>,
        masked_m: Option<&Tensor<u32>>,
        cfg: &TokenGroupConfig,
    ) -> Result<(Tensor<u8>, Tensor<u32>)> {
        self.packed_ue8m0(FusedOp::Quant, x, masked_m, cfg)
    }

    /// [`Device::silu_mul_per_token_group_quant_fp8`] (masked when
    /// `masked_m` is given) with packed UE8M0 scales (see
    /// [`Device::per_token_group_quant_fp8_packed_ue8m0`]).
    pub fn silu_mul_per_token_group_quant_fp8_packed_ue8m0<T: Element>(
        &self,
        x: &Tensor<T>,
        masked_m: Option<&Tensor<u32>>,
        cfg: &TokenGroupConfig,
    ) -> Result<(Tensor<u8>, Tensor<u32>)> {
        self.packed_ue8m0(FusedOp::SiluMul, x, masked_m, cfg)
    }

    /// `op` per 1 x group (masked when `masked_m` is given) with packed UE8M0
    /// scales: the two public packed entry points differ only in `op`.
    fn packed_ue8m0<T: Element>(
        &self,
        op: FusedOp,
        x: &Tensor<T>,
        masked_m: Option<&Tensor<u32>>,
        cfg: &TokenGroupConfig,
    ) -> Result<(Tensor<u8>, Tensor<u32>)> {
        let experts = masked_m.map_or(1, |m| m.shape().numel());
        let plan = FusedGroupPlan::new(op, cfg, x.shape(), experts, masked_m.is_some())?.packed_ue8m0()?;
        self.fused_group(&plan, x, masked_m)
    }

    /// Runs a checked per-group plan into new tensors: codes and scales
    /// (`f32`, or `u32` for a packed plan).
    pub fn fused_group<T: Element, S: ScaleElem>(
        &self,
        plan: &FusedGroupPlan,
        x: &Tensor<T>,
        masked_m: Option<&Tensor<u32>>,
    ) -> Result<(Tensor<u8>, Tensor<S>)> {
        check_scale_type::<S>(plan.packed())?;
        let mut codes = self.zeros::<u8>(plan.codes_shape())?;
        let mut scales = self.zeros::<S>(plan.scale_shape())?;
        self.fused_group_into(plan, x, masked_m, &mut codes, &mut scales)?;
        Ok((codes, scales))
    }

    fn run_fused_group<T: Element>(
        &self,
        plan: &FusedGroupPlan,
        x: &Tensor<T>,
        masked_m: Option<&Tensor<u32>>,
    ) -> Result<Quantized> {
        let (codes, scales) = self.fused_group(plan, x, masked_m)?;
        Ok(Quantized { codes, scales, scheme: Scheme::TokenGroup(plan.config()) })
    }

    /// A checked per-group plan into caller-provided tensors (no
    /// allocation); `masked_m` is required exactly when the plan is masked,
    /// `S` is `u32` exactly when it is packed.
    pub fn fused_group_into<T: Element, S: ScaleElem>(
        &self,
        plan: &FusedGroupPlan,
        x: &Tensor<T>,
        masked_m: Option<&Tensor<u32>>,
        codes: &mut Tensor<u8>,
        scales: &mut Tensor<S>,
    ) -> Result<()> {
        check_scale_type::<S>(plan.packed())?;
        if x.shape() != plan.input() {
            return Err(QuantError::ShapeMismatch("x does not have the plan's shape".into()));
        }
        if let Some(m) = masked_m {
            check_dense("masked_m", m, plan.experts())?;
        }
        match self {
            Device::Cpu => {
                let masked_m = masked_m.map(|m| m.host("masked_m")).transpose()?;
                cpu::fused::fused_group_planned(
                    plan,
                    x.host("x")?,
                    masked_m,
                    codes.host_mut("codes")?,
                    scales.host_mut("scales")?,
                )
            }
            Device::Cuda(g) => {
                let here = self.location();
                let masked_m = masked_m.map(|m| m.cuda("masked_m", here)).transpose()?;
                gpu::fused::fused_group(
                    g,
                    plan,
                    x.cuda("x", here)?,
                    masked_m,
                    codes.cuda_mut("codes", here)?,
                    scales.cuda_mut("scales", here)?,
                )
            }
        }
    }

    /// `rms_norm_per_token_group_quant_fp8`: `x` is `[M, K]` (any row
    /// stride), `weight` holds K elements (dense), `residual` (when given)
    /// is a dense `[M, K]` that receives `y = x + residual` rounded to `T`,
    /// the tensor normalized. Returns codes `[M, K]` and scales in
    /// `cfg.quant.layout`.
    pub fn rms_norm_per_token_group_quant_fp8<T: Element>(
        &self,
        x: &Tensor<T>,
        weight: &Tensor<T>,
        residual: Option<&mut Tensor<T>>,
        cfg: &RmsNormConfig,
    ) -> Result<Quantized> {
        let plan = RmsNormPlan::new(cfg, x.shape())?;
        let mut codes = self.zeros::<u8>(plan.quant().codes_shape())?;
        let mut scales = self.zeros::<f32>(plan.scale_shape())?;
        self.rms_norm_into(&plan, x, weight, residual, &mut codes, &mut scales)?;
        Ok(Quantized { codes, scales, scheme: Scheme::TokenGroup(cfg.quant) })
    }

    /// [`Device::rms_norm_per_token_group_quant_fp8`] with packed UE8M0
    /// scales (`[ceil(G / 4), align(M, 4)]` words; see
    /// [`Device::per_token_group_quant_fp8_packed_ue8m0`]).
    pub fn rms_norm_per_token_group_quant_fp8_packed_ue8m0<T: Element>(
        &self,
        x: &Tensor<T>,
        weight: &Tensor<T>,
        residual: Option<&mut Tensor<T>>,
        cfg: &RmsNormConfig,
    ) -> Result<(Tensor<u8>, Tensor<u32>)> {
        let plan = RmsNormPlan::new(cfg, x.shape())?.packed_ue8m0()?;
        let mut codes = self.zeros::<u8>(plan.quant().codes_shape())?;
        let mut scales = self.zeros::<u32>(plan.scale_shape())?;
        self.rms_norm_into(&plan, x, weight, residual, &mut codes, &mut scales)?;
        Ok((codes, scales))
    }

    /// A checked RMS plan into caller-provided tensors (no allocation); `S`
    /// is `u32` exactly when the plan is packed.
    pub fn rms_norm_into<T: Element, S: ScaleElem>(
        &self,
        plan: &RmsNormPlan,
        x: &Tensor<T>,
        weight: &Tensor<T>,
        residual: Option<&mut Tensor<T>>,
        codes: &mut Tensor<u8>,
        scales: &mut Tensor<S>,
    ) -> Result<()> {
        check_scale_type::<S>(plan.packed())?;
        let input = plan.quant().input();
        if x.shape() != input {
            return Err(QuantError::ShapeMismatch("x does not have the plan's shape".into()));
        }
        check_dense("weight", weight, input.cols())?;
        if let Some(r) = &residual {
            check_dense("residual", r, input.numel())?;
        }
        match self {
            Device::Cpu => {
                let residual = residual.map(|r| r.host_mut("residual").map(|v| v.as_mut_slice())).transpose()?;
                cpu::fused::rms_norm_planned(
                    plan,
                    x.host("x")?,
                    residual,
                    weight.host("weight")?,
                    codes.host_mut("codes")?,
                    scales.host_mut("scales")?,
                )
            }
            Device::Cuda(g) => {
                let here = self.location();
                let residual = residual.map(|r| r.cuda_mut("residual", here)).transpose()?;
                gpu::fused::rms_norm(
                    g,
                    plan,
                    x.cuda("x", here)?,
                    residual,
                    weight.cuda("weight", here)?,
                    codes.cuda_mut("codes", here)?,
                    scales.cuda_mut("scales", here)?,
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_check_shapes() {
        let cfg = TokenGroupConfig { layout: ScaleLayout::ColMajorTmaAligned, ..TokenGroupConfig::default() };
        let x = MatrixShape::strided(3 * 5, 2 * 300, 2 * 300 + 8).unwrap();
        let p = FusedGroupPlan::new(FusedOp::SiluMul, &cfg, x, 3, true).unwrap();
        assert_eq!(p.codes_shape(), MatrixShape::new(15, 300).unwrap());
        assert_eq!((p.expert_rows(), p.groups()), (5, 3));
        assert_eq!(p.scale_shape(), MatrixShape::new(9, 8).unwrap());
        assert_eq!(p.scale_index(2, 4, 1), 2 * 24 + 8 + 4);
        assert!(p.check_buffers(x.extent(), Some(3), 15 * 300, 72).is_ok());
        assert!(p.check_buffers(x.extent(), None, 15 * 300, 72).is_err());
        assert!(p.check_buffers(x.extent(), Some(2), 15 * 300, 72).is_err());
        let odd = MatrixShape::new(2, 7).unwrap();
        assert!(matches!(
            FusedGroupPlan::new(FusedOp::SiluMul, &cfg, odd, 1, false),
            Err(QuantError::ShapeMismatch(_))
        ));
        assert!(FusedGroupPlan::new(FusedOp::Quant, &cfg, x, 4, true).is_err());
        assert!(FusedGroupPlan::new(FusedOp::Quant, &cfg, x, 0, true).is_err());

        let rms = RmsNormConfig::default();
        assert!(matches!(
            RmsNormPlan::new(&rms, MatrixShape::new(1, 32769).unwrap()),
            Err(QuantError::RowTooLong { cols: 32769, .. })
        ));
        let bad = RmsNormConfig { norm_eps: 0.0, ..rms };
        assert!(matches!(RmsNormPlan::new(&bad, MatrixShape::new(1, 8).unwrap()), Err(QuantError::InvalidNormEps(_))));
        assert_eq!(RmsNormPlan::new(&rms, MatrixShape::new(4, 7168).unwrap()).unwrap().geometry(), (256, 4));
    }
}
