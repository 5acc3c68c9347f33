//! The GPU kernels divide by a group's scale through `scale::Divider`
//! (reciprocal, product, one FMA correction) instead of an IEEE division per
//! element. The quantized codes are bit-identical to the reference only if
//! every such quotient is the correctly rounded `x / scale`: checked here on
//! the host with the same code and std's fused multiply-add.

use quant_kernels::scale::{group_scale, Divider};
use quant_kernels::ScaleMode;

fn fma(a: f32, b: f32, c: f32) -> f32 {
    a.mul_add(b, c)
}

/// Checks one quotient in the Divider's domain, `|x| <= 2^64 * scale`.
fn assert_exact(x: f32, scale: f32) {
    let expected = x / scale;
    if x.abs() as f64 > 2f64.powi(64) * scale as f64 {
        return;
    }
    assert_doubled(x, scale, expected);
    let got = Divider::new(scale).divide(x, fma);
    let handed = Divider::with_recip(scale, Divider::recip_of(scale)).divide(x, fma);
    assert!(handed.to_bits() == got.to_bits() || (handed.is_nan() && got.is_nan()), "x = {x:e}, scale = {scale:e}");
    let ieee = Divider::new(scale).divide_ieee([x])[0];
    assert!(
        ieee.to_bits() == expected.to_bits() || (ieee.is_nan() && expected.is_nan()),
        "x = {x:e}, scale = {scale:e}"
    );
    let same = got.to_bits() == expected.to_bits() || (got.is_nan() && expected.is_nan());
    if !same && x.abs() < 2f32.powi(-100) && x != 0.0 {
        // Out of the exact range (the residual may underflow): the quotient
        // must still encode to a signed fp8 zero, with the right sign.
        assert!(got.abs() < 2f32.powi(-40) && expected.abs() < 2f32.powi(-40), "x = {x:e}, scale = {scale:e}");
        assert_eq!(got.is_sign_negative(), expected.is_sign_negative(), "x = {x:e}, scale = {scale:e}");
        return;
    }
    assert!(
        same,
        "x = {x:e} ({:#010x}), scale = {scale:e} ({:#010x}): {got:e} vs {expected:e}",
        x.to_bits(),
        scale.to_bits()
    );
}

/// `Divider::doubled` (the e4m3fnuz kernels' divider) gives exactly twice
/// the correctly rounded quotient, except where that quotient is below
/// 2^-100 or `|x| < 2^-100` (subnormal roundings, or a residual that
/// underflows): there both must be below 2^-40, fp8 zeros either way, with
/// the same sign.
fn assert_doubled(x: f32, scale: f32, expected: f32) {
    let got = Divider::doubled(scale).divide(x, fma);
    let twice = 2.0 * expected;
    // The row token-group kernel's dividers: rebuilt from a handed-over
    // reciprocal (the same quotient), and the IEEE division it takes for
    // warps whose groups' paths differ (the same quotient up to the
    // tolerance below).
    let handed = Divider::doubled_with_recip(scale, Divider::recip_of(scale)).divide(x, fma);
    assert!(handed.to_bits() == got.to_bits() || (handed.is_nan() && got.is_nan()), "x = {x:e}, scale = {scale:e}");
    assert_doubled_close(x, scale, Divider::doubled(scale).divide_ieee([x])[0], twice);
    assert_doubled_close(x, scale, got, twice);
}

fn assert_doubled_close(x: f32, scale: f32, got: f32, twice: f32) {
    let same = got.to_bits() == twice.to_bits() || (got.is_nan() && twice.is_nan());
    if !same && (twice.abs() < 2f32.powi(-100) || x.abs() < 2f32.powi(-100)) {
        assert!(
            got.abs() < 2f32.powi(-40) && twice.abs() < 2f32.powi(-40),
            "doubled: x = {x:e}, scale = {scale:e}: {got:e} vs {twice:e}"
        );
        assert_eq!(got.is_sign_negative(), twice.is_sign_negative(), "doubled: x = {x:e}, scale = {scale:e}");
        return;
    }
    assert!(
        same,
        "doubled: x = {x:e} ({:#010x}), scale = {scale:e} ({:#010x}): {got:e} vs {twice:e}",
        x.to_bits(),
        scale.to_bits()
    );
}

/// xorshift64*: a fixed, seedable stream (a failure names its inputs).
struct Stream(u64);

impl Stream {
    fn next(&mut self) -> u32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) as u32
    }
}

#[test]
fn quotients_are_correctly_rounded_for_real_scales() {
    // Scales as the quantizers make them: amax' / fp8_max for every
    // amax bit pattern class, both modes; x from the same group (|x| <= amax).
    let mut rng = Stream(0x1234_5678_9ABC_DEF1);
    for _ in 0..200_000 {
        let amax = f32::from_bits(rng.next() & 0x7F7F_FFFF);
        for fp8_max in [448.0, 240.0, 224.0, 100.0] {
            for mode in ScaleMode::ALL {
                let scale = group_scale(amax, 1e-12, fp8_max, mode);
                for _ in 0..4 {
                    // A value of the group: amax scaled down by a random factor.
                    let factor = f32::from_bits(rng.next() % 0x3F80_0000);
                    let sign = if rng.next() & 1 == 0 { 1.0 } else { -1.0 };
                    assert_exact(sign * amax * factor, scale);
                }
                assert_exact(amax, scale);
                assert_exact(-amax, scale);
            }
        }
    }
}

#[test]
fn quotients_are_correctly_rounded_for_any_pair() {
    // Random x and scale with |x / scale| <= 2^64 (the domain), every
    // exponent of the quotient down to far below the subnormal range.
    let mut rng = Stream(0xDEAD_BEEF_0BAD_F00D);
    let mut checked = 0;
    while checked < 2_000_000 {
        let x = f32::from_bits(rng.next());
        let scale = f32::from_bits(rng.next() & 0x7FFF_FFFF);
        if x.is_nan() || scale.is_nan() || x.abs() as f64 > 2f64.powi(64) * scale as f64 {
            continue;
        }
        assert_exact(x, scale);
        checked += 1;
    }
}

#[test]
fn specials() {
    let scales = [
        f32::INFINITY,
        f32::NAN,
        f32::MIN_POSITIVE,
        1.0,
        f32::MAX,
        2f32.powi(-100),
        2f32.powi(100),
        3.0,
        0.7,
        1e-12 / 448.0,
    ];
    for scale in scales {
        for x in [
            0.0,
            -0.0,
            1.0,
            -1.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            f32::MAX,
            f32::MIN_POSITIVE,
            -1e-30,
            -1e-44,
        ] {
            assert_exact(x, scale);
        }
    }
}
