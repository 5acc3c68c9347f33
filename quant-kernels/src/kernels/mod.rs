//! GPU entry points. Each operation lives in its own file; the entry points are
//! monomorphised by macros over the input type, fp8 format and group size so
//! that every hot loop is specialised, and named
//! `<op>_<dtype>_<format>_g<group>` for the host to look up.

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

pub mod block;
pub mod chunk;
pub mod encode;
pub mod gemm;
#[cfg(target_feature = "sm_90a")]
pub mod gemm_wgmma;
pub mod token_group;

use crate::element::{bf16_to_f32, f16_to_f32};
use crate::gpu::fma;
use crate::scale::{clamp, Divider};
use crate::{Fp8Format, ScaleMode};

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

/// Divides eight values by their group's scale, clamps them to `±fp8_max`
/// and encodes them: the per-element work of every quantizer.
#[inline(always)]
pub(crate) fn quantize8(format: Fp8Format, v: &[f32; 8], scale: &Divider, fp8_max: f32) -> [u8; 8] {
    encode8(format, &v.map(|x| clamp(scale.divide(x, fma), fp8_max)))
}

/// Encodes eight values. On sm_90 both formats use the hardware E4M3FN
/// converter, which rounds exactly as [`Fp8Format::encode`] does (checked
/// over every f32 by the GPU tests); other targets use the software encoder.
#[inline(always)]
pub(crate) fn encode8(format: Fp8Format, v: &[f32; 8]) -> [u8; 8] {
    let mut out = [0u8; 8];
    #[cfg(target_feature = "sm_90")]
    {
        let mut i = 0;
        while i < 8 {
            let pair = match format {
                Fp8Format::E4M3Fn => crate::gpu::e4m3fn_x2(v[i], v[i + 1]),
                Fp8Format::E4M3Fnuz => e4m3fnuz_x2(v[i], v[i + 1]),
            };
            out[i] = pair[0];
            out[i + 1] = pair[1];
            i += 2;
        }
    }
    #[cfg(not(target_feature = "sm_90"))]
    {
        let mut i = 0;
        while i < 8 {
            out[i] = format.encode(v[i]);
            i += 1;
        }
    }
    out
}

/// E4M3FNUZ through the E4M3FN converter. A fnuz code has the bits of the
/// fn code of twice its value (bias 8 instead of 7, same 3 mantissa bits and
/// subnormal spacing), and doubling is exact, so `fn(2 v)` rounds exactly
/// like `fnuz(v)`, except: fnuz has 0x7F (240) where fn has NaN, so values
/// above the 224/240 midpoint (232) take 0x7F; NaN is 0x80; and -0 is 0x00.
#[cfg(target_feature = "sm_90")]
#[inline(always)]
fn e4m3fnuz_x2(lo: f32, hi: f32) -> [u8; 2] {
    let codes = crate::gpu::e4m3fn_x2(lo * 2.0, hi * 2.0);
    [fnuz_fixup(lo, codes[0]), fnuz_fixup(hi, codes[1])]
}

#[cfg(target_feature = "sm_90")]
#[inline(always)]
fn fnuz_fixup(v: f32, fn_code: u8) -> u8 {
    let magnitude = v.to_bits() & 0x7FFF_FFFF;
    if magnitude > 0x7F80_0000 {
        Fp8Format::E4M3Fnuz.nan_code()
    } else if magnitude > 232f32.to_bits() {
        0x7F | (fn_code & 0x80)
    } else if fn_code & 0x7F == 0 {
        0
    } else {
        fn_code
    }
}

/// The scale mode from its kernel-argument encoding (`ScaleMode as u32`).
#[inline(always)]
pub(crate) fn decode_mode(mode: u32) -> ScaleMode {
    if mode == ScaleMode::Ue8m0 as u32 {
        ScaleMode::Ue8m0
    } else {
        ScaleMode::Float
    }
}
