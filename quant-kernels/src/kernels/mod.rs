//! GPU entry points. Each operation lives in its own file; the entry points are
//! monomorphised by macros over the input type, fp8 format and group size so
//! that every hot loop is specialised, and named
//! `<op>_<dtype>_<format>_g<group>` for the host to look up.

/// Repeats `$body` for `$i` in `0..8` as straight-line code, so arrays
/// indexed by `$i` stay in registers (a loop that LLVM declines to unroll
/// would move them to local memory).
macro_rules! unroll8 {
    ($i:ident => $body:block) => {{
        { let $i: usize = 0; $body }
        { let $i: usize = 1; $body }
        { let $i: usize = 2; $body }
        { let $i: usize = 3; $body }
        { let $i: usize = 4; $body }
        { let $i: usize = 5; $body }
        { let $i: usize = 6; $body }
        { let $i: usize = 7; $body }
    }};
}

pub mod encode;
pub mod gemm;
pub mod token_group;

use crate::element::{bf16_to_f32, f16_to_f32};
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

/// Encodes eight values that are already divided by the scale and clamped.
/// E4M3FN uses the hardware converter where it exists (it implements exactly
/// the rounding of [`Fp8Format::encode`]); E4M3FNUZ has no hardware path on
/// NVIDIA and always uses the software encoder.
#[inline(always)]
pub(crate) fn encode8(format: Fp8Format, v: &[f32; 8]) -> [u8; 8] {
    let mut out = [0u8; 8];
    #[cfg(target_feature = "sm_90")]
    if format == Fp8Format::E4M3Fn {
        let mut i = 0;
        while i < 8 {
            let pair = crate::gpu::e4m3fn_x2(v[i], v[i + 1]);
            out[i] = pair[0];
            out[i + 1] = pair[1];
            i += 2;
        }
        return out;
    }
    let mut i = 0;
    while i < 8 {
        out[i] = format.encode(v[i]);
        i += 1;
    }
    out
}
