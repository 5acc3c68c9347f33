//! The two 8-bit float formats with 4 exponent and 3 mantissa bits.
//!
//! Encoding rounds to nearest, ties to even, saturates every overflow (±inf too)
//! to the largest finite value, and maps NaN to the format's canonical NaN. The
//! saturation of infinities matches the hardware `cvt.rn.satfinite` conversion,
//! so the software and hardware encoders agree on every f32 input.
//!
//! The encoder works on the f32 bit pattern with integer arithmetic only: its
//! result does not depend on the floating-point environment (flush-to-zero,
//! fast-math) of the machine it runs on.

/// An fp8 format: `E4M3FN` (OCP, NVIDIA) or `E4M3FNUZ` (AMD MI300).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum Fp8Format {
    /// OCP `E4M3FN`: bias 7, largest finite 448, NaN `0x7F`/`0xFF`, has -0.
    #[default]
    E4M3Fn = 0,
    /// `E4M3FNUZ`: bias 8, largest finite 240, the only NaN is `0x80`, no -0.
    E4M3Fnuz = 1,
}

impl Fp8Format {
    /// Both formats, for iteration in tests and benchmarks.
    pub const ALL: [Fp8Format; 2] = [Fp8Format::E4M3Fn, Fp8Format::E4M3Fnuz];

    /// Exponent bias.
    #[inline(always)]
    pub const fn bias(self) -> u32 {
        match self {
            Fp8Format::E4M3Fn => 7,
            Fp8Format::E4M3Fnuz => 8,
        }
    }

    /// Code of the largest finite magnitude (sign bit clear).
    #[inline(always)]
    pub const fn max_code(self) -> u8 {
        match self {
            Fp8Format::E4M3Fn => 0x7E,
            Fp8Format::E4M3Fnuz => 0x7F,
        }
    }

    /// The largest finite value: 448 or 240.
    #[inline(always)]
    pub const fn max_finite(self) -> f32 {
        match self {
            Fp8Format::E4M3Fn => 448.0,
            Fp8Format::E4M3Fnuz => 240.0,
        }
    }

    /// The NaN code the encoder produces.
    #[inline(always)]
    pub const fn nan_code(self) -> u8 {
        match self {
            Fp8Format::E4M3Fn => 0x7F,
            Fp8Format::E4M3Fnuz => 0x80,
        }
    }

    /// Whether `code` decodes to NaN.
    #[inline(always)]
    pub const fn is_nan_code(self, code: u8) -> bool {
        match self {
            Fp8Format::E4M3Fn => code & 0x7F == 0x7F,
            Fp8Format::E4M3Fnuz => code == 0x80,
        }
    }

    /// The format's name as users write it (`e4m3fn`, `e4m3fnuz`): the one
    /// spelling, used in kernel names, messages, reports and `fp8q --format`.
    pub const fn name(self) -> &'static str {
        match self {
            Fp8Format::E4M3Fn => "e4m3fn",
            Fp8Format::E4M3Fnuz => "e4m3fnuz",
        }
    }

    /// The format named `name` (as [`Self::name`] writes it, ASCII case
    /// ignored); `None` for any other string. Host only (it would be
    /// emitted into the PTX, unused).
    #[cfg(not(target_arch = "nvptx64"))]
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name().eq_ignore_ascii_case(name))
    }

    /// Decodes a code to f32. Exact: every fp8 value is an f32.
    #[inline(always)]
    pub fn decode(self, code: u8) -> f32 {
        if self.is_nan_code(code) {
            return f32::NAN;
        }
        let sign = ((code as u32) & 0x80) << 24;
        let exp = ((code as u32) >> 3) & 0xF;
        let mant = (code as u32) & 0x7;
        let magnitude = if exp == 0 {
            // Subnormal: mant * 2^(1 - bias - 3). The product is exact.
            mant as f32 * pow2_f32(1 - self.bias() as i32 - 3)
        } else {
            f32::from_bits(((exp + 127 - self.bias()) << 23) | (mant << 20))
        };
        f32::from_bits(magnitude.to_bits() | sign)
    }

    /// Encodes an f32: round to nearest even, saturate to ±max, NaN to NaN.
    #[inline(always)]
    pub fn encode(self, x: f32) -> u8 {
        let bits = x.to_bits();
        let abs = bits & 0x7FFF_FFFF;
        if abs > 0x7F80_0000 {
            return self.nan_code();
        }
        let magnitude = encode_magnitude(abs, self.bias(), self.max_code() as u32);
        if magnitude == 0 && self == Fp8Format::E4M3Fnuz {
            // No negative zero in fnuz.
            return 0;
        }
        magnitude as u8 | ((bits >> 24) & 0x80) as u8
    }
}

/// Rounds a non-NaN f32 magnitude (bits with the sign cleared) to the 7-bit
/// code of an E4M3 format with the given bias, saturating at `max_code`.
#[inline(always)]
fn encode_magnitude(abs: u32, bias: u32, max_code: u32) -> u32 {
    let f32_exp = abs >> 23;
    // Biased f32 exponent of the format's smallest normal, 2^(1 - bias).
    let min_normal_exp = 128 - bias;
    let code = if f32_exp >= min_normal_exp {
        // Normal: keep 3 mantissa bits, round to nearest even at bit 20, then
        // re-bias the exponent. A carry out of the mantissa bumps the exponent,
        // which is the right answer.
        let rounded = abs + 0x7_FFFF + ((abs >> 20) & 1);
        (rounded >> 20) - ((127 - bias) << 3)
    } else {
        // Subnormal in fp8 (or zero): the code is the magnitude in units of
        // 2^(1 - bias - 3), rounded to nearest even. A round up to 8 is the
        // smallest normal, whose code is 8: the encoding is continuous.
        let (significand, exp) = if f32_exp == 0 { (abs, 1) } else { ((abs & 0x7F_FFFF) | 0x80_0000, f32_exp) };
        // value = significand * 2^(exp - 150); unit = 2^(-2 - bias).
        let shift = 148 - bias - exp;
        if shift >= 25 {
            // Below half the smallest subnormal (significand < 2^24).
            0
        } else {
            let kept = significand >> shift;
            let rest = significand & ((1 << shift) - 1);
            let half = 1 << (shift - 1);
            kept + (rest > half || (rest == half && kept & 1 == 1)) as u32
        }
    };
    if code > max_code {
        max_code
    } else {
        code
    }
}

/// 2^e as f32 for exponents in the normal range.
#[inline(always)]
const fn pow2_f32(e: i32) -> f32 {
    f32::from_bits(((e + 127) as u32) << 23)
}

/// Writes [`Fp8Format::name`]. Host only: the kernels format nothing, and
/// an unused public impl would still be emitted into the PTX.
#[cfg(not(target_arch = "nvptx64"))]
impl core::fmt::Display for Fp8Format {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn largest_finite_round_trips() {
        for f in Fp8Format::ALL {
            assert_eq!(f.decode(f.max_code()), f.max_finite());
            assert_eq!(f.encode(f.max_finite()), f.max_code());
            assert_eq!(f.encode(-f.max_finite()), f.max_code() | 0x80);
        }
    }

    #[test]
    fn infinities_saturate() {
        for f in Fp8Format::ALL {
            assert_eq!(f.encode(f32::INFINITY), f.max_code());
            assert_eq!(f.encode(f32::NEG_INFINITY), f.max_code() | 0x80);
        }
    }

    #[test]
    fn names_parse_back() {
        for f in Fp8Format::ALL {
            assert_eq!(Fp8Format::from_name(f.name()), Some(f));
        }
        assert_eq!(Fp8Format::from_name("E4M3FNUZ"), Some(Fp8Format::E4M3Fnuz));
        assert_eq!(Fp8Format::from_name("e4m3"), None);
    }

    #[test]
    fn negative_zero() {
        assert_eq!(Fp8Format::E4M3Fn.encode(-0.0), 0x80);
        assert_eq!(Fp8Format::E4M3Fnuz.encode(-0.0), 0x00);
        assert_eq!(Fp8Format::E4M3Fnuz.encode(-1e-30), 0x00);
    }

    #[test]
    fn smallest_subnormals() {
        assert_eq!(Fp8Format::E4M3Fn.decode(1), 2f32.powi(-9));
        assert_eq!(Fp8Format::E4M3Fnuz.decode(1), 2f32.powi(-10));
        // Exactly half the smallest subnormal is a tie: rounds to even (0).
        assert_eq!(Fp8Format::E4M3Fn.encode(2f32.powi(-10)), 0);
        assert_eq!(Fp8Format::E4M3Fn.encode(3.0 * 2f32.powi(-10)), 2);
    }
}
