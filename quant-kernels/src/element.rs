//! Exact conversions of the 16-bit input types to f32, on raw bits.
//!
//! The kernels read bf16 and f16 as `u16` bit patterns; the host reference
//! reads `half` values and converts through these same functions, so both
//! see identical f32 inputs.

/// The input element types of the quantizers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DType {
    /// bfloat16.
    Bf16 = 0,
    /// IEEE binary16.
    F16 = 1,
    /// IEEE binary32.
    F32 = 2,
}

impl DType {
    /// All input types, for iteration in tests and benchmarks.
    pub const ALL: [DType; 3] = [DType::Bf16, DType::F16, DType::F32];

    /// Size of one element in bytes.
    pub const fn size(self) -> usize {
        match self {
            DType::Bf16 | DType::F16 => 2,
            DType::F32 => 4,
        }
    }

    /// The type's name as users write it (`bf16`, `f16`, `f32`).
    pub const fn name(self) -> &'static str {
        match self {
            DType::Bf16 => "bf16",
            DType::F16 => "f16",
            DType::F32 => "f32",
        }
    }
}

/// bf16 bits to f32: the bf16 is the top half of an f32.
#[inline(always)]
pub fn bf16_to_f32(bits: u16) -> f32 {
    f32::from_bits((bits as u32) << 16)
}

/// f16 bits to f32, exact for every code (subnormals, ±inf, NaN payloads).
#[inline(always)]
pub fn f16_to_f32(bits: u16) -> f32 {
    let sign = ((bits as u32) & 0x8000) << 16;
    let exp = ((bits as u32) >> 10) & 0x1F;
    let mant = (bits as u32) & 0x3FF;
    let magnitude = if exp == 0x1F {
        0x7F80_0000 | (mant << 13)
    } else if exp != 0 {
        ((exp + 112) << 23) | (mant << 13)
    } else {
        // Subnormal or zero: mant * 2^-24, exact in f32.
        (mant as f32 * f32::from_bits(103 << 23)).to_bits()
    };
    f32::from_bits(sign | magnitude)
}
