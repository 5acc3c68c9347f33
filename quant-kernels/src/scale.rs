//! The per-group scale of the spec (`docs/spec.md`) and the quantization of one value.

/// How a group's scale is derived from its absolute maximum.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum ScaleMode {
    /// `scale = max(amax, eps) / fp8_max`, an IEEE f32 quotient.
    #[default]
    Float = 0,
    /// The float scale rounded up to a power of two (UE8M0, DeepSeek-V4).
    Ue8m0 = 1,
}

impl ScaleMode {
    /// Both modes, for iteration in tests and benchmarks.
    pub const ALL: [ScaleMode; 2] = [ScaleMode::Float, ScaleMode::Ue8m0];

    /// The mode's name as users write it (`float`, `ue8m0`).
    pub const fn name(self) -> &'static str {
        match self {
            ScaleMode::Float => "float",
            ScaleMode::Ue8m0 => "ue8m0",
        }
    }
}

/// The larger of two values, NaN if either is NaN (torch's `amax` semantics;
/// IEEE `max` would drop the NaN and hide it).
#[inline(always)]
pub fn nan_max(a: f32, b: f32) -> f32 {
    if a > b || a.is_nan() {
        a
    } else {
        b
    }
}

/// |x|, by clearing the sign bit (no libm on the GPU target).
#[inline(always)]
pub fn abs(x: f32) -> f32 {
    f32::from_bits(x.to_bits() & 0x7FFF_FFFF)
}

/// The scale of a group whose absolute maximum is `amax`.
///
/// NaN propagates (a NaN amax gives a NaN scale), an infinite amax gives an
/// infinite scale, and an all-zero group gets `eps / fp8_max`.
#[inline(always)]
pub fn group_scale(amax: f32, eps: f32, fp8_max: f32, mode: ScaleMode) -> f32 {
    let clamped = nan_max(amax, eps);
    let scale = clamped / fp8_max;
    match mode {
        ScaleMode::Float => scale,
        ScaleMode::Ue8m0 => pow2_ceil(scale),
    }
}

/// The smallest power of two `>= x`, exactly, from the f32 bits. `x` is
/// positive, +inf or NaN (which are returned unchanged); the result is +inf
/// when that power of two is past f32's range.
#[inline(always)]
pub fn pow2_ceil(x: f32) -> f32 {
    let bits = x.to_bits();
    if bits >= 0x7F80_0000 || bits == 0 {
        return x;
    }
    let exp = bits >> 23;
    let mant = bits & 0x7F_FFFF;
    if exp == 0 {
        // Subnormal: the next power of two above the highest set bit.
        let top = 31 - mant.leading_zeros();
        let p = if mant == 1 << top { top } else { top + 1 };
        // 2^(p - 149): still subnormal for p < 23, the smallest normal at 23.
        return f32::from_bits(1u32 << p);
    }
    if mant == 0 {
        x
    } else {
        // exp + 1 == 255 gives the bit pattern of +inf, the right answer.
        f32::from_bits((exp + 1) << 23)
    }
}

/// Quantizes one value with its group's scale: `x / scale`, clamped to
/// `±fp8_max` (NaN stays NaN), then encoded.
#[inline(always)]
pub fn quantize(x: f32, scale: f32, fp8_max: f32, format: crate::Fp8Format) -> u8 {
    format.encode(clamp(x / scale, fp8_max))
}

/// Correctly rounded `x / scale` for one group's many `x`, without a
/// division per element (an IEEE division is a long instruction sequence on
/// the GPU, and the quantizers are memory-bound only if they stay cheap).
///
/// With `recip` the correctly rounded `1 / scale`, `q = x * recip` is within
/// one ulp of `x / scale`, the residual `x - q * scale` is exact with an FMA,
/// and `q + residual * recip` rounds to the correctly rounded quotient
/// (Markstein's theorem), provided nothing underflows or overflows. The fast
/// path is taken only when `scale` is in `[2^-60, 2^60]` (the default eps
/// keeps every scale above 2^-49); other scales (inf, NaN, and extremes that
/// only odd `eps`/`fp8_max` produce) use the division.
///
/// Domain: `|x| <= 2^64 * scale`, which the quantizers guarantee (every `x`
/// of a group has `|x| <= amax <= scale * fp8_max * (1 + 2^-23)`). For
/// `|x| < 2^-100` the residual can underflow and the quotient may be off in
/// its last bits, but it is then below 2^-40 and encodes to a signed fp8
/// zero either way, with its sign always right.
#[derive(Clone, Copy)]
pub struct Divider {
    scale: f32,
    recip: f32,
    path: DividePath,
    /// Factor applied after the division path's quotient: 1, or 2 for
    /// [`Divider::doubled`].
    post: f32,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum DividePath {
    /// `scale` is a power of two (every UE8M0 scale): `x * (1 / scale)` is
    /// the same exact scaling as `x / scale`, rounded once.
    Power2,
    /// Reciprocal, product and one FMA correction.
    Markstein,
    /// The IEEE division itself.
    Divide,
}

impl Divider {
    /// Prepares the division by `scale`.
    #[inline(always)]
    pub fn new(scale: f32) -> Self {
        let path = Self::path_of(scale);
        Self { scale, recip: Self::recip_of(scale), path, post: 1.0 }
    }

    /// [`Divider::new`] with `recip` the caller's `1.0 / scale` (the same
    /// bits: computed by [`Divider::recip_of`] in a lane that owns the
    /// scale and handed to the lanes that use it, which then skip the
    /// division).
    #[inline(always)]
    pub fn with_recip(scale: f32, recip: f32) -> Self {
        Self { scale, recip, path: Self::path_of(scale), post: 1.0 }
    }

    #[inline(always)]
    fn path_of(scale: f32) -> DividePath {
        let in_range = scale >= pow2_f32_const(-60) && scale <= pow2_f32_const(60);
        if !in_range {
            DividePath::Divide
        } else if scale.to_bits() & 0x7F_FFFF == 0 {
            DividePath::Power2
        } else {
            DividePath::Markstein
        }
    }

    /// The reciprocal [`Divider::new`] computes for `scale`.
    #[inline(always)]
    pub fn recip_of(scale: f32) -> f32 {
        1.0 / scale
    }

    /// Prepares `2 x / scale` (rounded as `x / scale` is, then doubled):
    /// E4M3FNUZ through the E4M3FN converter needs the doubled quotient
    /// (`crate::fp8::e4m3fnuz_from_doubled_e4m3fn`), and here the doubling
    /// costs nothing. On the reciprocal paths the divisor is `scale / 2`
    /// and the reciprocal `2 / scale`, both exact (scale is in
    /// `[2^-60, 2^60]` there): the product `x * (2 / scale)`, the residual
    /// (the same real number `q * scale - x`) and the correction are each
    /// exactly twice the undoubled ones, so each rounds to twice its
    /// rounding, unless it is below f32's normal range, where it encodes to
    /// a zero of the right sign either way. The division path divides, then
    /// doubles.
    #[inline(always)]
    pub fn doubled(scale: f32) -> Self {
        Self::doubling(Self::new(scale))
    }

    /// [`Divider::doubled`] with `recip` the caller's
    /// [`Divider::recip_of`]`(scale)` (see [`Divider::with_recip`]).
    #[inline(always)]
    pub fn doubled_with_recip(scale: f32, recip: f32) -> Self {
        Self::doubling(Self::with_recip(scale, recip))
    }

    #[inline(always)]
    fn doubling(d: Self) -> Self {
        match d.path {
            DividePath::Divide => Self { post: 2.0, ..d },
            _ => Self { scale: d.scale * 0.5, recip: d.recip * 2.0, path: d.path, post: 1.0 },
        }
    }

    /// `x / scale`, correctly rounded; `fma(a, b, c)` must be a fused
    /// multiply-add (one rounding).
    #[inline(always)]
    pub fn divide(&self, x: f32, fma: impl Fn(f32, f32, f32) -> f32) -> f32 {
        self.divide_all([x], fma)[0]
    }

    /// Whether [`Divider::divide_markstein`] gives this divider's quotients
    /// (the reciprocal path: every float scale of the default `eps` and
    /// `fp8_max`; its post-factor is always 1, only the division path
    /// doubles after dividing).
    #[inline(always)]
    pub fn is_markstein(&self) -> bool {
        self.path == DividePath::Markstein
    }

    /// [`Divider::divide_all`] on the Markstein path, with no test: for a
    /// caller that checked [`Divider::is_markstein`] once for many arrays.
    #[inline(always)]
    pub fn divide_markstein<const N: usize>(&self, v: [f32; N], fma: impl Fn(f32, f32, f32) -> f32) -> [f32; N] {
        v.map(|x| {
            let q = x * self.recip;
            // The residual is computed negated, `q * scale - x`, so that
            // x = -0 gives -0 (with `x - q * scale` it would be +0, and so
            // would the corrected quotient).
            let neg_residual = fma(q, self.scale, -x);
            fma(-neg_residual, self.recip, q)
        })
    }

    /// Whether [`Divider::divide_power2`] gives this divider's quotients
    /// (every UE8M0 scale in range).
    #[inline(always)]
    pub fn is_power2(&self) -> bool {
        self.path == DividePath::Power2
    }

    /// [`Divider::divide_all`] on the power-of-two path, with no test (see
    /// [`Divider::divide_markstein`]).
    #[inline(always)]
    pub fn divide_power2<const N: usize>(&self, v: [f32; N]) -> [f32; N] {
        v.map(|x| x * self.recip)
    }

    /// The IEEE division, whatever the path: the quotients of
    /// [`Divider::divide_all`] on every path (each path is the correctly
    /// rounded quotient, the reciprocal ones up to the type's caveat for
    /// `|x| < 2^-100`, which encodes to the same signed zero), for a caller
    /// that divides many arrays of different dividers alike.
    #[inline(always)]
    pub fn divide_ieee<const N: usize>(&self, v: [f32; N]) -> [f32; N] {
        v.map(|x| x / self.scale * self.post)
    }

    /// Divides every element, choosing the path once for the whole array (a
    /// per-element branch costs the GPU an instruction slot per element).
    #[inline(always)]
    pub fn divide_all<const N: usize>(&self, v: [f32; N], fma: impl Fn(f32, f32, f32) -> f32) -> [f32; N] {
        match self.path {
            DividePath::Power2 => self.divide_power2(v),
            DividePath::Markstein => self.divide_markstein(v, fma),
            DividePath::Divide => self.divide_ieee(v),
        }
    }
}

const fn pow2_f32_const(e: i32) -> f32 {
    f32::from_bits(((e + 127) as u32) << 23)
}

/// `clamp(v, -max, max)` with NaN passed through, as torch's `clamp` does.
#[inline(always)]
pub fn clamp(v: f32, max: f32) -> f32 {
    if v > max {
        max
    } else if v < -max {
        -max
    } else {
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pow2_ceil_is_exact() {
        assert_eq!(pow2_ceil(1.0), 1.0);
        assert_eq!(pow2_ceil(1.000_000_1), 2.0);
        assert_eq!(pow2_ceil(0.75), 1.0);
        assert_eq!(pow2_ceil(3.0), 4.0);
        assert_eq!(pow2_ceil(f32::MAX), f32::INFINITY);
        assert_eq!(pow2_ceil(f32::from_bits(3)), f32::from_bits(4));
        assert_eq!(pow2_ceil(f32::from_bits(0x7F_FFFF)), f32::MIN_POSITIVE);
        assert!(pow2_ceil(f32::NAN).is_nan());
        assert_eq!(pow2_ceil(f32::INFINITY), f32::INFINITY);
    }

    #[test]
    fn nan_max_propagates() {
        assert!(nan_max(f32::NAN, 1.0).is_nan());
        assert!(nan_max(1.0, f32::NAN).is_nan());
        assert_eq!(nan_max(1.0, 2.0), 2.0);
    }

    #[test]
    fn zero_group_scale_is_eps_over_max() {
        assert_eq!(group_scale(0.0, 1e-12, 448.0, ScaleMode::Float), 1e-12 / 448.0);
    }
}
