//! GPU entry points. Each operation lives in its own file; the entry points are
//! monomorphised by macros over the input type, fp8 format and group size so
//! that every hot loop is specialised, and named
//! `<op>_<dtype>_<format>_g<group>`. The lists of entry points live in
//! `crate::abi`, which also gives the host their names and parameter blocks.

/// Repeats `$body` for `$i` in `0..8` as straight-line code, so arrays
/// indexed by `$i` stay in registers (a loop that LLVM declines to unroll
/// would move them to local memory).
macro_rules! unroll8 {
    ($i:ident => $body:block) => {{
        {
            let $i: usize = 0;
            $body
        }
        {
            let $i: usize = 1;
            $body
        }
        {
            let $i: usize = 2;
            $body
        }
        {
            let $i: usize = 3;
            $body
        }
        {
            let $i: usize = 4;
            $body
        }
        {
            let $i: usize = 5;
            $body
        }
        {
            let $i: usize = 6;
            $body
        }
        {
            let $i: usize = 7;
            $body
        }
    }};
}

/// [`unroll8!`] for two (token-group chunks, GEMM fragments).
macro_rules! unroll2 {
    ($i:ident => $body:block) => {{
        {
            let $i: usize = 0;
            $body
        }
        {
            let $i: usize = 1;
            $body
        }
    }};
}

/// [`unroll8!`] for four (block-quant row chunks, GEMM fragments).
macro_rules! unroll4 {
    ($i:ident => $body:block) => {{
        unroll2!($i => $body);
        {
            let $i: usize = 2;
            $body
        }
        {
            let $i: usize = 3;
            $body
        }
    }};
}

pub mod block;
pub mod chunk;
pub mod common;
pub mod encode;
pub mod fused;
pub mod gemm;
#[cfg(target_feature = "sm_90a")]
pub mod gemm_reduce;
#[cfg(target_feature = "sm_90a")]
pub(crate) mod gemm_schedule;
#[cfg(target_feature = "sm_90a")]
pub mod gemm_wgmma;
pub mod token_group;

use crate::element::{bf16_to_f32, f16_to_f32};
use crate::instr::{clamp, fma};
use crate::scale::Divider;
use crate::Fp8Format;

/// An input element as the kernels read it from global memory.
pub trait Input: Copy {
    /// The exact f32 value.
    fn to_f32(self) -> f32;
}

/// bf16, read as its bit pattern.
#[derive(Clone, Copy)]
#[repr(transparent)]
pub struct Bf16(pub u16);

/// f16, read as its bit pattern.
#[derive(Clone, Copy)]
#[repr(transparent)]
pub struct F16(pub u16);

/// f32, under the name the kernel lists of `crate::abi` use.
pub type F32 = f32;

impl Input for Bf16 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        bf16_to_f32(self.0)
    }
}

impl Input for F16 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        f16_to_f32(self.0)
    }
}

impl Input for f32 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }
}

/// The per-element work of every quantizer for one group (or block):
/// divide by the scale, clamp to `±fp8_max`, encode.
#[derive(Clone, Copy)]
pub(crate) struct GroupQuantizer {
    format: Fp8Format,
    divider: Divider,
    fp8_max: f32,
    clamp: bool,
}

impl GroupQuantizer {
    #[inline(always)]
    pub(crate) fn new(format: Fp8Format, scale: f32, fp8_max: f32) -> Self {
        Self { format, divider: Divider::new(scale), fp8_max, clamp: clamp_changes_codes(format, fp8_max) }
    }

    /// Codes of eight values of the group.
    #[inline(always)]
    pub(crate) fn quantize8(&self, v: &[f32; 8]) -> u64 {
        let q = self.divider.divide_all(*v, fma);
        let q = if self.clamp { q.map(|x| clamp(x, self.fp8_max)) } else { q };
        encode8(self.format, &q)
    }
}

/// Whether clamping the quotients to `±fp8_max` can change a code.
///
/// A quotient `x / scale` of a group exceeds `fp8_max` by at most a few f32
/// ulps (`|x| <= amax` and `scale >= amax / fp8_max` up to its rounding).
/// When `fp8_max` is itself a normal value of the format (448, 240, 224, the
/// common choices), such a quotient rounds to `fp8_max`'s code, or saturates
/// to it, with or without the clamp; NaN stays NaN either way. Only an
/// `fp8_max` between two fp8 values needs the clamp (e.g. 100, between 96 and
/// 104: 100.00001 would round up to 104, the clamped 100 ties down to 96).
/// Skipping it saves two instructions per element, a fifth of the budget.
#[inline(always)]
fn clamp_changes_codes(format: Fp8Format, fp8_max: f32) -> bool {
    let min_normal = f32::from_bits((128 - format.bias()) << 23);
    !(fp8_max.to_bits() & 0xF_FFFF == 0 && fp8_max >= min_normal)
}

/// Encodes eight values; byte `i` of the result is element `i`'s code (the
/// little-endian order of an 8-byte store). Building the word directly, not
/// a byte array, keeps the store one `st.global.b64`: LLVM splits a store of
/// an assembled `[u8; 8]` into byte, half-word and word pieces.
///
/// On sm_90 both formats use the hardware E4M3FN converter, which rounds
/// exactly as [`Fp8Format::encode`] does (checked over every f32 by the GPU
/// tests); other targets use the software encoder.
#[inline(always)]
pub(crate) fn encode8(format: Fp8Format, v: &[f32; 8]) -> u64 {
    let mut out = 0u64;
    #[cfg(target_feature = "sm_90")]
    {
        match format {
            Fp8Format::E4M3Fn => {
                use crate::instr::{e4m3fn_x2, pack_u16x2, pack_u32x2};
                let word = |i: usize| pack_u16x2(e4m3fn_x2(v[i], v[i + 1]), e4m3fn_x2(v[i + 2], v[i + 3]));
                out = pack_u32x2(word(0), word(4));
            }
            Fp8Format::E4M3Fnuz => out = e4m3fnuz_x8(v),
        }
    }
    #[cfg(not(target_feature = "sm_90"))]
    {
        let mut i = 0;
        while i < 8 {
            out |= (format.encode(v[i]) as u64) << (8 * i);
            i += 1;
        }
    }
    out
}

/// E4M3FNUZ through the E4M3FN converter, eight at a time. A fnuz code has
/// the bits of the fn code of twice its value (bias 8 instead of 7, same 3
/// mantissa bits and subnormal spacing), and doubling is exact, so `fn(2 v)`
/// rounds exactly like `fnuz(v)`, except in three places, fixed four bytes
/// at a time on 32-bit words (a few instructions per chunk, not per element):
/// - fn has NaN where fnuz has 240 (0x7F), so fn saturates values above the
///   224/240 midpoint (232) to 224's code: those bytes get their low bit set;
/// - NaN: fn's NaN codes (`x & 0x7F == 0x7F`, never produced from a finite
///   input by the saturating converter) become 0x80;
/// - negative zero: bytes whose magnitude is 0 lose their sign bit.
#[cfg(target_feature = "sm_90")]
#[inline(always)]
fn e4m3fnuz_x8(v: &[f32; 8]) -> u64 {
    crate::instr::pack_u32x2(e4m3fnuz_x4(v[0], v[1], v[2], v[3]), e4m3fnuz_x4(v[4], v[5], v[6], v[7]))
}

/// Four codes of [`e4m3fnuz_x8`], byte `i` for the `i`-th argument.
#[cfg(target_feature = "sm_90")]
#[inline(always)]
fn e4m3fnuz_x4(a: f32, b: f32, c: f32, d: f32) -> u32 {
    const LOW7: u32 = 0x7F7F_7F7F;
    const HIGH: u32 = 0x8080_8080;
    const ONES: u32 = 0x0101_0101;
    let codes =
        crate::instr::pack_u16x2(crate::instr::e4m3fn_x2(a * 2.0, b * 2.0), crate::instr::e4m3fn_x2(c * 2.0, d * 2.0));
    // False for NaN: a NaN's byte is handled below.
    let above = |x: f32, bit: u32| if crate::scale::abs(x) > 232.0 { bit } else { 0 };
    let top = above(a, 1) | above(b, 1 << 8) | above(c, 1 << 16) | above(d, 1 << 24);
    // Bytes holding fn NaN: low 7 bits all ones (the +1 carries into bit 7
    // of the same byte only).
    let nan = ((codes & LOW7) + ONES) & HIGH;
    // Bytes with a nonzero magnitude keep their sign bit.
    let nonzero = ((codes & LOW7) + LOW7) & HIGH;
    let codes = (codes & (LOW7 | nonzero)) | top;
    // NaN bytes: clear, then set 0x80.
    (codes & !((nan >> 7) * 0xFF)) | nan
}
