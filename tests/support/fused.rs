//! Cases of the fused quantizers (`silu_mul`, `rms_norm`, the masked MoE
//! layout) shared by the CPU property tests and the GPU bit-exactness tests:
//! the proptest strategies, the inputs, and one function per operation that
//! runs a case on a [`Device`] and returns its outputs on the host.

use crate::Rng;
use proptest::prelude::*;
use quant_host::{
    Device, Element, Fp8Format, GroupSize, MatrixShape, RmsNormConfig, ScaleLayout, ScaleMode, TokenGroupConfig,
};

/// Values for the fused ops: magnitudes from 2^-12 to 2^7 (silu's whole
/// shape, exp's overflow past 88 included), a few exact zeros, and with
/// `specials` about one in 300 NaN, +inf or -inf.
pub fn fused_values(rng: &mut Rng, n: usize, specials: bool) -> Vec<f32> {
    (0..n)
        .map(|_| {
            if specials && rng.chance(1.0 / 300.0) {
                [f32::NAN, f32::INFINITY, f32::NEG_INFINITY][rng.below(3) as usize]
            } else if rng.chance(0.02) {
                0.0
            } else {
                let sign = if rng.chance(0.5) { -1.0 } else { 1.0 };
                (sign * (1.0 + rng.unit()) * 2f64.powi(rng.range_i32(-12, 6))) as f32
            }
        })
        .collect()
}

/// The quantizer options of a case: every format, group size, layout and
/// scale mode, and the `fp8_max` / `eps` variants of the contract.
pub fn quant_config() -> impl Strategy<Value = TokenGroupConfig> {
    (
        prop::sample::select(Fp8Format::ALL.to_vec()),
        prop::sample::select(GroupSize::ALL.to_vec()),
        prop::sample::select(ScaleLayout::ALL.to_vec()),
        prop::sample::select(ScaleMode::ALL.to_vec()),
        prop_oneof![Just(None), Just(Some(224.0f32)), Just(Some(100.0f32))],
        prop_oneof![Just(1e-12f32), Just(1e-4f32)],
    )
        .prop_map(|(format, group_size, layout, scale_mode, fp8_max, eps)| TokenGroupConfig {
            format,
            group_size,
            eps,
            fp8_max,
            scale_mode,
            layout,
        })
}

/// A per-group case: `experts` experts of `rows` rows each (masked when
/// `masked` is given, one count per expert), `cols` output columns, `pad`
/// extra input elements per row.
#[derive(Clone, Debug)]
pub struct GroupCase {
    /// Rows per expert (`M_max`; all rows when dense).
    pub rows: usize,
    /// Output columns (N of silu_mul's `[M, 2N]`, K of the plain quantizer).
    pub cols: usize,
    /// Row stride minus the input's columns.
    pub pad: usize,
    /// Experts (1 when dense).
    pub experts: usize,
    /// `masked_m`, one count per expert, when masked.
    pub masked: Option<Vec<u32>>,
    /// NaN and infinities in the input.
    pub specials: bool,
    /// The quantizer's options.
    pub cfg: TokenGroupConfig,
    /// Seed of the input values.
    pub seed: u64,
}

/// Dense silu_mul cases: row counts from 0 to decode and prefill sizes,
/// column tails, strides.
pub fn silu_case() -> impl Strategy<Value = GroupCase> {
    (
        prop_oneof![Just(0usize), 1usize..5, 5usize..70],
        prop_oneof![1usize..300, Just(128usize), Just(1000usize), Just(2048usize)],
        prop_oneof![Just(0usize), 1usize..20],
        any::<bool>(),
        quant_config(),
        any::<u64>(),
    )
        .prop_map(|(rows, cols, pad, specials, cfg, seed)| GroupCase {
            rows,
            cols,
            pad,
            experts: 1,
            masked: None,
            specials,
            cfg,
            seed,
        })
}

/// Masked cases: 1 to 6 experts, `masked_m` drawn from 0, `M_max` and
/// values between (0 and `M_max` appear in most cases).
pub fn masked_case() -> impl Strategy<Value = GroupCase> {
    (1usize..7, 0usize..40, prop_oneof![1usize..300, Just(512usize)], prop_oneof![Just(0usize), 1usize..9])
        .prop_flat_map(|(experts, rows, cols, pad)| {
            let count = prop_oneof![Just(0u32), Just(rows as u32), 0..=rows as u32];
            (
                Just((experts, rows, cols, pad)),
                prop::collection::vec(count, experts),
                any::<bool>(),
                quant_config(),
                any::<u64>(),
            )
        })
        .prop_map(|((experts, rows, cols, pad), masked, specials, cfg, seed)| GroupCase {
            rows,
            cols,
            pad,
            experts,
            masked: Some(masked),
            specials,
            cfg,
            seed,
        })
}

/// Masked cases with many experts: counts that span several of the
/// kernel's 32-expert scan steps (31 to 95), the most experts whose running
/// sums a CTA keeps in shared memory and one past it (1024, 1025: the kernel
/// then reads `masked_m` per row instead), and runs of experts with no valid
/// rows between valid ones.
pub fn many_experts_case() -> impl Strategy<Value = GroupCase> {
    (prop::sample::select(vec![31usize, 32, 33, 95, 1024, 1025, 1300]), 1usize..5, 1usize..160, 0usize..3)
        .prop_flat_map(|(experts, rows, cols, pad)| {
            let count = prop_oneof![3 => Just(0u32), 1 => Just(rows as u32), 2 => 0..=rows as u32];
            (Just((experts, rows, cols, pad)), prop::collection::vec(count, experts), quant_config(), any::<u64>())
        })
        .prop_map(|((experts, rows, cols, pad), masked, cfg, seed)| GroupCase {
            rows,
            cols,
            pad,
            experts,
            masked: Some(masked),
            specials: false,
            cfg,
            seed,
        })
}

impl GroupCase {
    /// The input shape for `silu` (2 * cols columns) or the plain quantizer.
    pub fn input_shape(&self, silu: bool) -> MatrixShape {
        let cols = if silu { 2 * self.cols } else { self.cols };
        MatrixShape::strided(self.experts * self.rows, cols, cols + self.pad).unwrap()
    }

    /// The input of the case as `T` (stride padding included).
    pub fn input<T: Element>(&self, silu: bool) -> Vec<T> {
        let n = self.input_shape(silu).extent();
        fused_values(&mut Rng::new(self.seed), n, self.specials).into_iter().map(T::from_f32).collect()
    }
}

/// Codes and scales of an output, on the host.
pub type Output = (Vec<u8>, Vec<f32>);

/// Runs a per-group case on `dev`: silu_mul or the plain quantizer, dense or
/// masked as the case says (the plain quantizer only masked).
pub fn run_group<T: Element>(dev: &Device, case: &GroupCase, silu: bool, x: &[T]) -> quant_host::Result<Output> {
    let x = dev.upload(x, case.input_shape(silu))?;
    let q = match (&case.masked, silu) {
        (None, true) => dev.silu_mul_per_token_group_quant_fp8(&x, &case.cfg)?,
        (None, false) => dev.per_token_group_quant_fp8(&x, &case.cfg)?,
        (Some(m), _) => {
            let masked_m = dev.upload(m, MatrixShape::new(1, m.len())?)?;
            if silu {
                dev.silu_mul_per_token_group_quant_fp8_masked(&x, &masked_m, &case.cfg)?
            } else {
                dev.per_token_group_quant_fp8_masked(&x, &masked_m, &case.cfg)?
            }
        }
    };
    Ok((q.codes.to_vec()?, q.scales.to_vec()?))
}

/// An RMSNorm case.
#[derive(Clone, Debug)]
pub struct RmsCase {
    /// M.
    pub rows: usize,
    /// K.
    pub cols: usize,
    /// Row stride minus K.
    pub pad: usize,
    /// Whether a residual is added (and written back).
    pub residual: bool,
    /// NaN and infinities in the input.
    pub specials: bool,
    /// The options.
    pub cfg: RmsNormConfig,
    /// Seed of the input values.
    pub seed: u64,
}

/// RMSNorm cases: K from 1 to the DeepSeek hidden size and the largest row
/// the kernel takes, with and without a residual. The GPU kernel's CTA
/// sizes are 32 (K <= 1024, with 1, 2 or 4 slots), 64 (1536), 128 (4096),
/// 256 (7000, 7168), 512 (12288) and 1024 (32768): every size of its tree.
pub fn rms_case() -> impl Strategy<Value = RmsCase> {
    (
        prop_oneof![Just(0usize), 1usize..5, 5usize..40],
        prop_oneof![
            1usize..300,
            Just(1000usize),
            Just(1536usize),
            Just(4096usize),
            Just(7168usize),
            Just(7000usize),
            Just(12288usize),
            Just(32768usize)
        ],
        prop_oneof![Just(0usize), 1usize..20],
        any::<bool>(),
        any::<bool>(),
        quant_config(),
        prop_oneof![Just(1e-6f32), Just(1e-5f32), Just(0.5f32)],
        any::<u64>(),
    )
        .prop_map(|(rows, cols, pad, residual, specials, quant, norm_eps, seed)| RmsCase {
            rows,
            cols,
            pad,
            residual,
            specials,
            cfg: RmsNormConfig { quant, norm_eps },
            seed,
        })
}

/// The inputs of an RMS case: `(x, weight, residual)`.
pub type RmsInputs<T> = (Vec<T>, Vec<T>, Vec<T>);

impl RmsCase {
    /// The input shape.
    pub fn shape(&self) -> MatrixShape {
        MatrixShape::strided(self.rows, self.cols, self.cols + self.pad).unwrap()
    }

    /// `(x, weight, residual)`; the residual is empty without one.
    pub fn inputs<T: Element>(&self) -> RmsInputs<T> {
        let mut rng = Rng::new(self.seed);
        let mut values =
            |n, specials| -> Vec<T> { fused_values(&mut rng, n, specials).into_iter().map(T::from_f32).collect() };
        let x = values(self.shape().extent(), self.specials);
        let w = values(self.cols, false);
        let r = if self.residual { values(self.rows * self.cols, self.specials) } else { Vec::new() };
        (x, w, r)
    }
}

/// Runs an RMS case on `dev`: codes, scales and the residual written back
/// (empty without one).
pub fn run_rms<T: Element>(
    dev: &Device,
    case: &RmsCase,
    inputs: &RmsInputs<T>,
) -> quant_host::Result<(Output, Vec<T>)> {
    let (x, w, r) = inputs;
    let xd = dev.upload(x, case.shape())?;
    let wd = dev.upload(w, MatrixShape::new(1, case.cols)?)?;
    let mut rd = if case.residual { Some(dev.upload(r, MatrixShape::new(case.rows, case.cols)?)?) } else { None };
    let q = dev.rms_norm_per_token_group_quant_fp8(&xd, &wd, rd.as_mut(), &case.cfg)?;
    let r_out = match rd {
        Some(t) => t.to_vec()?,
        None => Vec::new(),
    };
    Ok(((q.codes.to_vec()?, q.scales.to_vec()?), r_out))
}

/// Codes and packed UE8M0 words of an output, on the host.
pub type PackedOutput = (Vec<u8>, Vec<u32>);

/// [`run_group`] with packed UE8M0 scales (the case's scale mode must be
/// `Ue8m0`); the plain quantizer dense or masked.
pub fn run_group_packed<T: Element>(
    dev: &Device,
    case: &GroupCase,
    silu: bool,
    x: &[T],
) -> quant_host::Result<PackedOutput> {
    let x = dev.upload(x, case.input_shape(silu))?;
    let masked_m = match &case.masked {
        Some(m) => Some(dev.upload(m, MatrixShape::new(1, m.len())?)?),
        None => None,
    };
    let (codes, scales) = if silu {
        dev.silu_mul_per_token_group_quant_fp8_packed_ue8m0(&x, masked_m.as_ref(), &case.cfg)?
    } else {
        dev.per_token_group_quant_fp8_packed_ue8m0(&x, masked_m.as_ref(), &case.cfg)?
    };
    Ok((codes.to_vec()?, scales.to_vec()?))
}

/// [`run_rms`] with packed UE8M0 scales.
pub fn run_rms_packed<T: Element>(
    dev: &Device,
    case: &RmsCase,
    inputs: &RmsInputs<T>,
) -> quant_host::Result<(PackedOutput, Vec<T>)> {
    let (x, w, r) = inputs;
    let xd = dev.upload(x, case.shape())?;
    let wd = dev.upload(w, MatrixShape::new(1, case.cols)?)?;
    let mut rd = if case.residual { Some(dev.upload(r, MatrixShape::new(case.rows, case.cols)?)?) } else { None };
    let (codes, scales) = dev.rms_norm_per_token_group_quant_fp8_packed_ue8m0(&xd, &wd, rd.as_mut(), &case.cfg)?;
    let r_out = match rd {
        Some(t) => t.to_vec()?,
        None => Vec::new(),
    };
    Ok(((codes.to_vec()?, scales.to_vec()?), r_out))
}

/// DeepGEMM's packing (`get_mn_major_tma_aligned_packed_ue8m0_tensor`),
/// written from its description: per expert, the exponent bytes (`bits >>
/// 23`) of an `[rows, groups]` grid padded with zero bytes to `[align(rows,
/// 4), align(groups, 4)]`, read as little-endian `u32`s along the groups,
/// stored MN-major (`word (kp, m)` at `kp * align(rows, 4) + m`).
/// `scale(e, m, g)` is `None` for a row that was not written (zero bytes).
pub fn pack_reference(
    experts: usize,
    rows: usize,
    groups: usize,
    scale: impl Fn(usize, usize, usize) -> Option<f32>,
) -> Vec<u32> {
    let (aligned_rows, words) = (rows.div_ceil(4) * 4, groups.div_ceil(4));
    let mut out = vec![0u32; experts * words * aligned_rows];
    for e in 0..experts {
        for m in 0..rows {
            for g in 0..groups {
                if let Some(s) = scale(e, m, g) {
                    let byte = (s.to_bits() >> 23) & 0xFF;
                    out[(e * words + g / 4) * aligned_rows + m] |= byte << (8 * (g % 4));
                }
            }
        }
    }
    out
}
