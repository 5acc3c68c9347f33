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

/// Four E4M3FNUZ codes from the E4M3FN codes of the doubled values, a
/// 32-bit word at a time (byte `i` for value `i`).
///
/// An fnuz code has the bits of the fn code of twice its value (bias 8
/// instead of 7, the same 3 mantissa bits and subnormal spacing, and
/// doubling is exact), so the hardware fn converter applied to `2 x` (with
/// `satfinite`) rounds exactly like fnuz, except for three codes:
/// - the top code: fn has NaN (`0x7F`) where fnuz has 240, so fn saturates
///   `|2 x| > 464` (`|x|` above the 224/240 midpoint 232; 232 itself ties
///   to 224, the even code) to 448's code `0x7E`, one below the fnuz code;
/// - NaN input, whose fn code `0x7F` (never produced from a non-NaN input
///   by the saturating converter, and never with the sign bit) is one
///   below fnuz's NaN `0x80`;
/// - the code `0x80`: fn's -0 (a negative value that rounds to zero) is
///   fnuz's NaN: such bytes lose their sign.
///
/// `top` has bit 0 of byte `i` set where `|2 x_i| > 464` or `2 x_i` is NaN,
/// and every other bit clear: both of the first two fix-ups add 1 to the
/// byte (`0x7E -> 0x7F`, `0xFE -> 0xFF`, `0x7F -> 0x80`; no carry leaves
/// the byte). The kernels get both from one `FADD` per value (the sign of
/// `|2 x| - nextup(464)`, which is clear for NaN too), see
/// `kernels::top4`.
///
/// Five word operations for four codes: the zero test is a carry into bit
/// 7 of each byte, which never crosses into the next byte.
#[inline(always)]
pub fn e4m3fnuz_from_doubled_e4m3fn(fn_codes: u32, top: u32) -> u32 {
    const LOW7: u32 = 0x7F7F_7F7F;
    // Bit 7 of a byte is set where its magnitude is nonzero; `| LOW7`
    // keeps every other bit, so zero bytes lose only their sign.
    let keep = ((fn_codes & LOW7) + LOW7) | LOW7;
    // Flagged bytes have magnitude 0x7E or 0x7F: kept whole, and the +1
    // stays inside the byte.
    (fn_codes & keep) + top
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

    /// The fnuz codes of four values through `e4m3fnuz_from_doubled_e4m3fn`,
    /// with the software fn encoder standing in for the hardware converter
    /// (the GPU tests check that they agree on every f32).
    fn via_doubled(xs: [f32; 4]) -> [u8; 4] {
        let mut fn_codes = 0u32;
        let mut top = 0u32;
        for (i, x) in xs.iter().enumerate() {
            fn_codes |= (Fp8Format::E4M3Fn.encode(2.0 * x) as u32) << (8 * i);
            // As the kernels make it: bit 0 of the byte, for the top
            // range and for NaN.
            if (2.0 * x).abs() > 464.0 || x.is_nan() {
                top |= 1 << (8 * i);
            }
        }
        e4m3fnuz_from_doubled_e4m3fn(fn_codes, top).to_le_bytes()
    }

    fn check_doubled(xs: [f32; 4]) {
        let got = via_doubled(xs);
        for i in 0..4 {
            assert_eq!(
                got[i],
                Fp8Format::E4M3Fnuz.encode(xs[i]),
                "x = {:#010x} in lane {i} of {xs:?}",
                xs[i].to_bits()
            );
        }
    }

    #[test]
    fn fnuz_from_doubled_fn_matches_the_encoder() {
        // Every bf16 and f16 value, and every f32 whose low 16 bits are one
        // of the patterns that decide rounding (exact, just above or below
        // a tie, sticky bits), in each byte of the word.
        let lows = [0u32, 1, 0x7FFF, 0x8000, 0x8001, 0xFFFF];
        for high in 0..=0xFFFFu32 {
            let f16 = half_to_f32(high as u16);
            for (lane, &low) in lows.iter().enumerate() {
                let x = f32::from_bits(high << 16 | low);
                let mut xs = [f32::from_bits(high << 16), f16, -0.0, x];
                xs.rotate_left(lane % 4);
                check_doubled(xs);
            }
        }
        // Every f32 in [224, 256], and in windows around the bottom of the
        // fnuz range (2^-11, half the smallest subnormal: the zero/-0
        // boundary; 2^-10; 2^-9), both signs.
        let windows = [0x3A00_0000u32, 0x3A40_0000, 0x3A80_0000, 0x3B00_0000].map(|b| b - (1 << 17)..=b + (1 << 17));
        for bits in (0x4360_0000u32..=0x4380_0000).chain(windows.into_iter().flatten()) {
            let (x, y) = (f32::from_bits(bits), f32::from_bits(bits | 0x8000_0000));
            check_doubled([x, y, y, x]);
        }
        // Every 4-tuple of the special values: each byte's fix-up leaves
        // its neighbours alone.
        let specials = [
            0.0,
            -0.0,
            f32::NAN,
            -f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            232.0,
            -232.0,
            232.00002,
            -240.0,
            448.0,
            -1e-30,
            2f32.powi(-11),
            -3.0 * 2f32.powi(-12),
            1.0,
            -255.9,
        ];
        for a in specials {
            for b in specials {
                for c in specials {
                    for d in specials {
                        check_doubled([a, b, c, d]);
                    }
                }
            }
        }
    }

    /// Every f32 bit pattern through the word fix-up, in every byte of the
    /// word (the lane rotates with the pattern), beside a zero, a negative
    /// zero and a NaN. About a minute per core in the test profile:
    /// `cargo test -p quant-kernels --lib -- --ignored every_f32`.
    #[test]
    #[ignore = "slow: all 2^32 f32 bit patterns"]
    fn fnuz_from_doubled_fn_matches_the_encoder_for_every_f32() {
        extern crate std;
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get()) as u64;
        let per = (1u64 << 32).div_ceil(threads);
        std::thread::scope(|scope| {
            for t in 0..threads {
                scope.spawn(move || {
                    for bits in t * per..((t + 1) * per).min(1 << 32) {
                        let mut xs = [f32::from_bits(bits as u32), 0.0, -0.0, f32::NAN];
                        xs.rotate_right((bits % 4) as usize);
                        check_doubled(xs);
                    }
                });
            }
        });
    }

    /// f16 bits to f32 (exact), for the test above.
    fn half_to_f32(h: u16) -> f32 {
        crate::element::f16_to_f32(h)
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
