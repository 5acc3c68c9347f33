//! The exact 16-bit -> f32 conversions the kernels and the CPU reference share
//! (`quant_kernels::element`), checked against `half` on all 65536 codes.

use quant_host::Element;
use quant_kernels::element::{bf16_to_f32, f16_to_f32};

/// Same value and sign; for NaN, the same sign and payload up to the quiet
/// bit (a hardware conversion may quiet a signalling NaN, ours keeps it).
fn assert_same(what: &str, bits: u16, ours: f32, theirs: f32) {
    if theirs.is_nan() {
        assert!(ours.is_nan(), "{what} {bits:#06x}: {ours:e} is not NaN");
        assert_eq!(
            ours.to_bits() | 0x0040_0000,
            theirs.to_bits() | 0x0040_0000,
            "{what} {bits:#06x}: NaN sign or payload differs"
        );
    } else {
        assert_eq!(
            ours.to_bits(),
            theirs.to_bits(),
            "{what} {bits:#06x}: {ours:e} != {theirs:e}"
        );
    }
}

#[test]
fn f16_to_f32_matches_half_on_every_code() {
    for bits in 0..=u16::MAX {
        let theirs = half::f16::from_bits(bits).to_f32();
        assert_same("f16", bits, f16_to_f32(bits), theirs);
        // The host's Element impl goes through the same function.
        assert_same(
            "f16 Element",
            bits,
            Element::to_f32(half::f16::from_bits(bits)),
            theirs,
        );
    }
}

#[test]
fn bf16_to_f32_matches_half_on_every_code() {
    for bits in 0..=u16::MAX {
        let theirs = half::bf16::from_bits(bits).to_f32();
        assert_same("bf16", bits, bf16_to_f32(bits), theirs);
        assert_same(
            "bf16 Element",
            bits,
            Element::to_f32(half::bf16::from_bits(bits)),
            theirs,
        );
    }
}

#[test]
fn f16_subnormals_and_specials_are_exact() {
    // Independent of `half`: the smallest subnormal, the largest subnormal,
    // the smallest normal, the largest finite, ±inf, -0.
    assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
    assert_eq!(f16_to_f32(0x03FF), 1023.0 * 2f32.powi(-24));
    assert_eq!(f16_to_f32(0x0400), 2f32.powi(-14));
    assert_eq!(f16_to_f32(0x7BFF), 65504.0);
    assert_eq!(f16_to_f32(0x7C00), f32::INFINITY);
    assert_eq!(f16_to_f32(0xFC00), f32::NEG_INFINITY);
    assert_eq!(f16_to_f32(0x8000).to_bits(), 0x8000_0000);
    assert!(f16_to_f32(0x7E00).is_nan() && f16_to_f32(0x7C01).is_nan());
    assert_eq!(bf16_to_f32(0x3F80), 1.0);
    assert_eq!(bf16_to_f32(0x0001), f32::from_bits(0x1_0000));
}
