//! The fp8 formats, bit-exact: decode of all 256 codes against the spec's
//! table, encode against a brute-force nearest-value search over a large
//! sample of f32 bit patterns (every class: normals, subnormals, ties and
//! their neighbours, ±0, ±inf, NaN), and E4M3FN encode against `float8`.

use quant_kernels::Fp8Format;
use quant_tests::{reference_decode, reference_max};
use std::cmp::Ordering;

/// The canonical NaN the encoder must produce, from the spec's table: E4M3FN
/// has two NaN codes (0x7F, 0xFF) and the encoder, like the hardware's
/// `cvt.rn.satfinite`, always produces 0x7F, whatever the input's sign.
fn reference_nan(format: Fp8Format) -> u8 {
    match format {
        Fp8Format::E4M3Fn => 0x7F,
        Fp8Format::E4M3Fnuz => 0x80,
    }
}

/// The non-negative, non-NaN codes and their values, independently decoded.
fn magnitudes(format: Fp8Format) -> Vec<(u8, f64)> {
    (0u8..0x80)
        .filter_map(|c| reference_decode(format, c).map(|v| (c, v)))
        .collect()
}

/// Compares `|x - a|` with `|x - b|` exactly (`Less`: `a` is closer). The
/// midpoint of two fp8 values is exact in f64 and `x` is an f32, so no
/// rounding can fake or hide a tie.
fn cmp_distance(x: f64, a: f64, b: f64) -> Ordering {
    let mid = (a + b) / 2.0;
    match a.partial_cmp(&b).unwrap() {
        Ordering::Equal => Ordering::Equal,
        Ordering::Less => x.partial_cmp(&mid).unwrap(),
        Ordering::Greater => mid.partial_cmp(&x).unwrap(),
    }
}

/// The spec's encoder by brute force: the nearest of all finite values
/// (saturation falls out: beyond the largest finite, it is the nearest),
/// ties to the code with an even mantissa, NaN to the canonical NaN, the sign
/// copied except that E4M3FNUZ has no negative zero.
fn brute_force_encode(format: Fp8Format, table: &[(u8, f64)], x: f32) -> u8 {
    if x.is_nan() {
        return reference_nan(format);
    }
    let magnitude = (x as f64).abs();
    let mut best = table[0];
    for &(code, value) in &table[1..] {
        best = match cmp_distance(magnitude, value, best.1) {
            Ordering::Less => (code, value),
            Ordering::Greater => best,
            Ordering::Equal if code & 1 == 0 => (code, value),
            Ordering::Equal => best,
        };
    }
    let code = best.0;
    match (x.is_sign_negative(), format) {
        (false, _) => code,
        (true, Fp8Format::E4M3Fnuz) if code == 0 => 0x00,
        (true, _) => code | 0x80,
    }
}

/// The f32 bit patterns the encoder is checked on.
fn sample(format: Fp8Format) -> Vec<f32> {
    let mut bits: Vec<u32> = Vec::new();
    // Every f32 class, evenly: all patterns with a prime stride (both signs,
    // all exponents, subnormals, infinities and NaNs with many payloads).
    bits.extend((0..=u32::MAX).step_by(1009));
    // Every exponent with the mantissas around the rounding boundaries of an
    // E4M3 normal (bit 20 is the last kept bit), both signs.
    for exp in 0u32..256 {
        for mant in [
            0, 1, 2, 0x7_FFFF, 0x8_0000, 0x8_0001, 0xF_FFFF, 0x10_0000, 0x10_0001, 0x17_FFFF,
            0x18_0000, 0x18_0001, 0x40_0000, 0x7F_FFFE, 0x7F_FFFF,
        ] {
            bits.push(exp << 23 | mant);
            bits.push(0x8000_0000 | exp << 23 | mant);
        }
    }
    // f32 subnormals, densely near the bottom.
    bits.extend(0u32..4096);
    bits.extend((0u32..0x80_0000).step_by(4099));
    let mut values: Vec<f32> = bits.into_iter().map(f32::from_bits).collect();

    // Every tie: the midpoint of each pair of consecutive fp8 values, and its
    // f32 neighbours, both signs. The midpoint of the largest finite value and
    // the next (non-existent) binade value is the saturation boundary.
    let mut points: Vec<f64> = magnitudes(format).into_iter().map(|(_, v)| v).collect();
    points.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let max = reference_max(format);
    points.push(max + (max - points[points.len() - 2]));
    for pair in points.windows(2) {
        for value in [pair[0], (pair[0] + pair[1]) / 2.0] {
            let v = value as f32;
            assert_eq!(v as f64, value, "midpoints of fp8 values are exact in f32");
            for b in [v.to_bits().wrapping_sub(1), v.to_bits(), v.to_bits() + 1] {
                values.push(f32::from_bits(b));
                values.push(-f32::from_bits(b));
            }
        }
    }
    values.extend([
        0.0,
        -0.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::MAX,
        f32::MIN,
        f32::MIN_POSITIVE,
        f32::from_bits(1),
        f32::from_bits(0x8000_0001),
        f32::NAN,
        -f32::NAN,
        f32::from_bits(0x7F80_0001),
        f32::from_bits(0xFFFF_FFFF),
        2.0 * max as f32,
        1e6,
        -1e6,
    ]);
    values
}

#[test]
fn decode_all_codes_matches_bit_fields() {
    for format in Fp8Format::ALL {
        for code in 0..=255u8 {
            let got = format.decode(code);
            match reference_decode(format, code) {
                None => assert!(
                    got.is_nan(),
                    "{format:?} {code:#04x}: expected NaN, got {got}"
                ),
                // Compare bits: -0.0 must stay -0.0 (E4M3FN 0x80).
                Some(want) => assert_eq!(
                    got.to_bits(),
                    (want as f32).to_bits(),
                    "{format:?} {code:#04x}: got {got:e}, want {want:e}"
                ),
            }
        }
    }
}

#[test]
fn format_table_of_the_spec() {
    let fmt = Fp8Format::E4M3Fn;
    assert_eq!(fmt.decode(0x7E), 448.0);
    assert_eq!(fmt.max_finite(), 448.0);
    assert!(fmt.decode(0x7F).is_nan() && fmt.decode(0xFF).is_nan());
    assert_eq!(fmt.decode(0x80).to_bits(), (-0.0f32).to_bits());
    assert_eq!(fmt.decode(0x01), 2f32.powi(-9));
    assert_eq!((0..=255u8).filter(|&c| fmt.decode(c).is_nan()).count(), 2);

    let fmt = Fp8Format::E4M3Fnuz;
    assert_eq!(fmt.decode(0x7F), 240.0);
    assert_eq!(fmt.max_finite(), 240.0);
    assert!(fmt.decode(0x80).is_nan());
    assert_eq!(fmt.decode(0x01), 2f32.powi(-10));
    assert_eq!((0..=255u8).filter(|&c| fmt.decode(c).is_nan()).count(), 1);
    // No negative zero: no code decodes to -0.0.
    assert!((0..=255u8).all(|c| fmt.decode(c).to_bits() != 0x8000_0000));

    for format in Fp8Format::ALL {
        assert!(format.is_nan_code(format.nan_code()));
        assert_eq!(format.nan_code(), reference_nan(format));
        assert_eq!(format.max_code() as u32 & 0x80, 0);
        assert_eq!(
            format.decode(format.max_code()) as f64,
            reference_max(format)
        );
        assert_eq!(format.max_finite() as f64, reference_max(format));
    }
}

#[test]
fn encode_matches_brute_force_nearest_value() {
    for format in Fp8Format::ALL {
        let table = magnitudes(format);
        let values = sample(format);
        assert!(values.len() > 4_000_000);
        let mut mismatches = Vec::new();
        for &x in &values {
            let (got, want) = (format.encode(x), brute_force_encode(format, &table, x));
            if got != want {
                mismatches.push(format!(
                    "{x:e} ({:#010x}): got {got:#04x}, want {want:#04x}",
                    x.to_bits()
                ));
            }
        }
        assert!(
            mismatches.is_empty(),
            "{format:?}: {} mismatches, first: {:?}",
            mismatches.len(),
            &mismatches[..mismatches.len().min(10)]
        );
    }
}

#[test]
fn encode_round_trips_every_code() {
    for format in Fp8Format::ALL {
        for code in 0..=255u8 {
            let value = format.decode(code);
            if value.is_nan() {
                assert_eq!(format.encode(value), reference_nan(format));
            } else {
                assert_eq!(
                    format.encode(value),
                    code,
                    "{format:?} {code:#04x} = {value:e}"
                );
            }
        }
    }
}

#[test]
fn encode_saturates_and_handles_nan() {
    for format in Fp8Format::ALL {
        let max = reference_max(format) as f32;
        let max_code = format.max_code();
        for x in [max, max * 1.01, 2.0 * max, 1e30, f32::MAX, f32::INFINITY] {
            assert_eq!(format.encode(x), max_code, "{format:?} encode({x:e})");
            assert_eq!(
                format.encode(-x),
                max_code | 0x80,
                "{format:?} encode({:e})",
                -x
            );
        }
        for nan in [
            f32::NAN,
            -f32::NAN,
            f32::from_bits(0x7F80_0001),
            f32::from_bits(0xFFC0_0001),
        ] {
            assert_eq!(format.encode(nan), reference_nan(format));
        }
    }
    // The largest finite fp8 is never NaN by rounding: 464 is the tie between
    // 448 (mantissa 110, even) and the NaN pattern 0x7F; it goes to 448.
    assert_eq!(Fp8Format::E4M3Fn.encode(464.0), 0x7E);
    assert_eq!(Fp8Format::E4M3Fn.encode(465.0), 0x7E);
}

#[test]
fn fnuz_has_no_negative_zero() {
    let fmt = Fp8Format::E4M3Fnuz;
    // -0.0 and negative values that round to zero encode as +0.
    for x in [
        -0.0f32,
        -f32::from_bits(1),
        -2f32.powi(-12),
        -2f32.powi(-11),
    ] {
        assert_eq!(fmt.encode(x), 0x00, "encode({x:e})");
    }
    // Just above half the smallest subnormal rounds away from zero.
    assert_eq!(fmt.encode(-2f32.powi(-11) * 1.0001), 0x81);
    assert_eq!(Fp8Format::E4M3Fn.encode(-0.0), 0x80);
    assert_eq!(Fp8Format::E4M3Fn.encode(-2f32.powi(-11)), 0x80);
}

/// `float8::F8E4M3` follows NVIDIA's `cuda_fp8.hpp` conversion. We compare it
/// with our E4M3FN encoder on every finite sample value within ±448 (the
/// format's range). Outside the range `float8` documents "±inf will result"
/// (E4M3FN has no infinity) although its code saturates like ours; we do not
/// rely on undocumented behaviour, so out-of-range and NaN inputs are checked
/// only against the brute-force oracle above.
#[test]
fn e4m3fn_encode_agrees_with_float8_in_range() {
    let format = Fp8Format::E4M3Fn;
    let mut compared = 0usize;
    for x in sample(format) {
        if !(x.is_finite() && x.abs() <= 448.0) {
            continue;
        }
        let theirs = float8::F8E4M3::from_f32(x).to_bits();
        assert_eq!(format.encode(x), theirs, "{x:e} ({:#010x})", x.to_bits());
        compared += 1;
    }
    assert!(compared > 1_000_000, "only {compared} values compared");
    // And float8 decodes every non-NaN code to the same value.
    for code in (0..=255u8).filter(|c| c & 0x7F != 0x7F) {
        let theirs = float8::F8E4M3::from_bits(code).to_f32();
        assert_eq!(
            format.decode(code).to_bits(),
            theirs.to_bits(),
            "{code:#04x}"
        );
    }
}
