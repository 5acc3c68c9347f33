//! The contract between the quantizer kernels and the host that launches
//! them, in one place, compiled into both:
//!
//! - each kernel family's parameters as one `#[repr(C)]` struct, which the
//!   kernel takes by value after its buffers and the host fills and passes
//!   as one argument: there is no list of scalars to keep in step;
//! - every entry point as a typed value ([`TokenGroupKernel`],
//!   [`BlockKernel`], [`CodecKernel`]) whose PTX name comes from the same
//!   list that generates the entry points (`token_group_kernels!` and its
//!   siblings), so the host never builds a kernel name from strings;
//! - the enums that cross the boundary as `u32` ([`ScaleMode`],
//!   [`ScaleLayout`]) with their `as_u32`/`from_u32` pair.
//!
//! The device buffers are the kernel's leading pointer parameters, not
//! fields: rustc passes a by-value struct to a `ptx-kernel` as an integer
//! array, so a pointer inside it loses what LLVM knows of a pointer
//! parameter (that it points to global memory), and every access through
//! it became a generic `ld`/`st` instead of `ld.global`/`st.global`. The
//! host checks every buffer's length before it fills a parameter block.

use crate::element::DType;
use crate::fused_abi::FusedMask;
use crate::geometry::{
    BLOCK_QUANT_CTAS_PER_SM, BLOCK_QUANT_THREADS, BLOCK_THREADS, TOKEN_GROUP_CHUNKS, TOKEN_GROUP_WIDE_BLOCK_THREADS,
    TOKEN_GROUP_WIDE_CHUNKS,
};
use crate::{Fp8Format, ScaleLayout, ScaleMode};

/// Gives an enum that crosses the boundary as a `u32` its encoding,
/// `as_u32`, and the inverse, `from_u32` (`None` for any other value): the
/// one place each value's number is written.
macro_rules! wire_enum {
    ($($t:ident { $($v:literal => $variant:ident),* })*) => {$(
        impl $t {
            /// The kernel-argument encoding.
            #[inline(always)]
            pub const fn as_u32(self) -> u32 {
                match self {
                    $($t::$variant => $v,)*
                }
            }

            /// The value encoded by [`Self::as_u32`]; `None` for any other.
            #[inline(always)]
            pub const fn from_u32(v: u32) -> Option<Self> {
                match v {
                    $($v => Some($t::$variant),)*
                    _ => None,
                }
            }
        }
    )*};
}

wire_enum! {
    ScaleMode { 0 => Float, 1 => Ue8m0 }
    ScaleLayout { 0 => RowMajor, 1 => ColMajor, 2 => ColMajorTmaAligned }
    FusedMask { 0 => None, 1 => PerTurn, 2 => Compact }
}

/// A parameter block that a kernel takes by value.
///
/// # Safety
/// The type is `#[repr(C)]`, `Copy`, holds no pointers, and every value
/// the host can build is one the kernel accepts.
pub unsafe trait KernelParams: Copy {}

/// Parameters of `per_token_group_quant_fp8` (see `kernels::token_group`),
/// after its buffers `(x, q, scales)`: `x` holds `rows` rows of
/// `row_stride` elements of the kernel's input type, `q` `rows * cols`
/// codes (row stride `cols`), `scales` `layout.len(rows, ceil(cols / GS))` f32.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TokenGroupParams {
    /// M.
    pub rows: u64,
    /// K.
    pub cols: u64,
    /// Elements between the starts of two input rows (`>= cols`).
    pub row_stride: u64,
    /// Floor of a group's amax.
    pub eps: f32,
    /// Clamp bound and scale divisor.
    pub fp8_max: f32,
    /// [`ScaleMode::as_u32`].
    pub mode: u32,
    /// [`ScaleLayout::as_u32`].
    pub layout: u32,
}

// SAFETY: `#[repr(C)]`, plain integers and floats; the kernel decodes
// `mode` and `layout` totally (an unknown value acts as the default).
unsafe impl KernelParams for TokenGroupParams {}

/// Parameters of `per_block_quant_fp8` (see `kernels::block`), after its
/// buffers `(w, q, scales)`: `w` holds `rows` rows of `row_stride`
/// elements, `q` `rows * cols` codes (row stride `cols`), `scales`
/// `ceil(rows / bn) * ceil(cols / bk)` f32.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockParams {
    /// N.
    pub rows: u64,
    /// K.
    pub cols: u64,
    /// Elements between the starts of two input rows (`>= cols`).
    pub row_stride: u64,
    /// Block height (`> 0`).
    pub bn: u64,
    /// Block width (`> 0`).
    pub bk: u64,
    /// Blocks per row of the block grid, `ceil(cols / bk)`.
    pub blocks_per_row: u64,
    /// Blocks in all, `ceil(rows / bn) * blocks_per_row`. Both computed
    /// once on the host: 64-bit divisions are long software sequences on
    /// the GPU, and small weights (one block per CTA) paid them before
    /// their first load.
    pub blocks: u64,
    /// Floor of a block's amax.
    pub eps: f32,
    /// Clamp bound and scale divisor.
    pub fp8_max: f32,
    /// [`ScaleMode::as_u32`].
    pub mode: u32,
    /// Shared-memory stages of the `cp.async` pipeline, 0 for the two-pass
    /// path (see `kernels::block`).
    pub stages: u32,
}

// SAFETY: `#[repr(C)]`, plain integers and floats; `bn`, `bk` and `stages`
// are checked by the host (see `kernels::block`).
unsafe impl KernelParams for BlockParams {}

/// Parameters of the element-wise fp8 encode and decode kernels, after
/// their buffers `(src, dst)` of `n` elements each (f32 and codes).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CodecParams {
    /// Elements.
    pub n: u64,
}

// SAFETY: `#[repr(C)]`, plain integers.
unsafe impl KernelParams for CodecParams {}

/// A kernel entry point: its PTX name, its parameter block and the launch
/// bounds `cargo xtask build-ptx` writes into the PTX. The buffers before
/// the parameter block are the family's own (see each `Params` type).
pub trait Kernel: Copy {
    /// What the kernel takes by value.
    type Params: KernelParams;
    /// The `.entry` name in the PTX modules.
    fn name(self) -> &'static str;
    /// `(threads per CTA, min CTAs per SM)`, if the kernel has bounds.
    fn launch_bounds(self) -> Option<(u32, u32)>;
}

/// Lists every token-group entry point as `(narrow name, wide name: input,
/// format, group size;)` and hands the list to `$then!`. The one list behind
/// both the kernels' `#[no_mangle]` functions and [`TokenGroupKernel::ALL`].
macro_rules! token_group_kernels {
    ($then:ident) => {
        $then! {
            token_group_quant_bf16_e4m3fn_g32, token_group_wide_quant_bf16_e4m3fn_g32: Bf16, E4M3Fn, 32;
            token_group_quant_bf16_e4m3fn_g64, token_group_wide_quant_bf16_e4m3fn_g64: Bf16, E4M3Fn, 64;
            token_group_quant_bf16_e4m3fn_g128, token_group_wide_quant_bf16_e4m3fn_g128: Bf16, E4M3Fn, 128;
            token_group_quant_bf16_e4m3fnuz_g32, token_group_wide_quant_bf16_e4m3fnuz_g32: Bf16, E4M3Fnuz, 32;
            token_group_quant_bf16_e4m3fnuz_g64, token_group_wide_quant_bf16_e4m3fnuz_g64: Bf16, E4M3Fnuz, 64;
            token_group_quant_bf16_e4m3fnuz_g128, token_group_wide_quant_bf16_e4m3fnuz_g128: Bf16, E4M3Fnuz, 128;
            token_group_quant_f16_e4m3fn_g32, token_group_wide_quant_f16_e4m3fn_g32: F16, E4M3Fn, 32;
            token_group_quant_f16_e4m3fn_g64, token_group_wide_quant_f16_e4m3fn_g64: F16, E4M3Fn, 64;
            token_group_quant_f16_e4m3fn_g128, token_group_wide_quant_f16_e4m3fn_g128: F16, E4M3Fn, 128;
            token_group_quant_f16_e4m3fnuz_g32, token_group_wide_quant_f16_e4m3fnuz_g32: F16, E4M3Fnuz, 32;
            token_group_quant_f16_e4m3fnuz_g64, token_group_wide_quant_f16_e4m3fnuz_g64: F16, E4M3Fnuz, 64;
            token_group_quant_f16_e4m3fnuz_g128, token_group_wide_quant_f16_e4m3fnuz_g128: F16, E4M3Fnuz, 128;
            token_group_quant_f32_e4m3fn_g32, token_group_wide_quant_f32_e4m3fn_g32: F32, E4M3Fn, 32;
            token_group_quant_f32_e4m3fn_g64, token_group_wide_quant_f32_e4m3fn_g64: F32, E4M3Fn, 64;
            token_group_quant_f32_e4m3fn_g128, token_group_wide_quant_f32_e4m3fn_g128: F32, E4M3Fn, 128;
            token_group_quant_f32_e4m3fnuz_g32, token_group_wide_quant_f32_e4m3fnuz_g32: F32, E4M3Fnuz, 32;
            token_group_quant_f32_e4m3fnuz_g64, token_group_wide_quant_f32_e4m3fnuz_g64: F32, E4M3Fnuz, 64;
            token_group_quant_f32_e4m3fnuz_g128, token_group_wide_quant_f32_e4m3fnuz_g128: F32, E4M3Fnuz, 128;
        }
    };
}

/// Lists every row token-group entry point (whole warps along one row, for
/// rows that are not 128-byte aligned; see `kernels::token_group`) as
/// `(name: input, format, group size;)`: 16-bit inputs, groups of 64 and
/// 128. The one list behind both their `#[no_mangle]` functions and their
/// entries in [`TokenGroupKernel::ALL`].
macro_rules! token_group_row_kernels {
    ($then:ident) => {
        $then! {
            token_group_row_quant_bf16_e4m3fn_g64: Bf16, E4M3Fn, 64;
            token_group_row_quant_bf16_e4m3fn_g128: Bf16, E4M3Fn, 128;
            token_group_row_quant_bf16_e4m3fnuz_g64: Bf16, E4M3Fnuz, 64;
            token_group_row_quant_bf16_e4m3fnuz_g128: Bf16, E4M3Fnuz, 128;
            token_group_row_quant_f16_e4m3fn_g64: F16, E4M3Fn, 64;
            token_group_row_quant_f16_e4m3fn_g128: F16, E4M3Fn, 128;
            token_group_row_quant_f16_e4m3fnuz_g64: F16, E4M3Fnuz, 64;
            token_group_row_quant_f16_e4m3fnuz_g128: F16, E4M3Fnuz, 128;
        }
    };
}

/// Lists every block-quant entry point as `(name: input, format;)`.
macro_rules! block_kernels {
    ($then:ident) => {
        $then! {
            block_quant_bf16_e4m3fn: Bf16, E4M3Fn;
            block_quant_bf16_e4m3fnuz: Bf16, E4M3Fnuz;
            block_quant_f16_e4m3fn: F16, E4M3Fn;
            block_quant_f16_e4m3fnuz: F16, E4M3Fnuz;
            block_quant_f32_e4m3fn: F32, E4M3Fn;
            block_quant_f32_e4m3fnuz: F32, E4M3Fnuz;
        }
    };
}

/// Lists every encode/decode entry point as `(encode, decode: format;)`.
macro_rules! codec_kernels {
    ($then:ident) => {
        $then! {
            fp8_encode_e4m3fn, fp8_decode_e4m3fn: E4M3Fn;
            fp8_encode_e4m3fnuz, fp8_decode_e4m3fnuz: E4M3Fnuz;
        }
    };
}

/// The token-group kernels' tilings (see `kernels::token_group`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TokenGroupVariant {
    /// [`TOKEN_GROUP_CHUNKS`] chunks of one group per thread (small problems).
    Narrow,
    /// [`TOKEN_GROUP_WIDE_CHUNKS`] chunks of one group per thread (large
    /// problems), groups numbered in bands of rows for column-major scales.
    Wide,
    /// [`TOKEN_GROUP_WIDE_CHUNKS`] chunks per thread, one of each of 4
    /// groups, a warp reading 1024 contiguous elements of one row (large
    /// problems on rows that are not 128-byte aligned; 16-bit input, groups
    /// of 64 or 128).
    Row,
}

/// A `per_token_group_quant_fp8` entry point.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TokenGroupKernel {
    input: DType,
    format: Fp8Format,
    group_size: u64,
    variant: TokenGroupVariant,
    name: &'static str,
}

macro_rules! token_group_table {
    ($($name:ident, $wide:ident: $t:ident, $format:ident, $gs:literal;)*) => {
        impl TokenGroupKernel {
            /// The narrow and wide entry points (`token_group_kernels!`).
            const NARROW_AND_WIDE: [TokenGroupKernel; 36] = [$(
                TokenGroupKernel { input: DType::$t, format: Fp8Format::$format, group_size: $gs, variant: TokenGroupVariant::Narrow, name: stringify!($name) },
                TokenGroupKernel { input: DType::$t, format: Fp8Format::$format, group_size: $gs, variant: TokenGroupVariant::Wide, name: stringify!($wide) },
            )*];
        }
    };
}
token_group_kernels!(token_group_table);

macro_rules! token_group_row_table {
    ($($name:ident: $t:ident, $format:ident, $gs:literal;)*) => {
        impl TokenGroupKernel {
            /// The row entry points (`token_group_row_kernels!`).
            const ROW: [TokenGroupKernel; 8] = [$(
                TokenGroupKernel { input: DType::$t, format: Fp8Format::$format, group_size: $gs, variant: TokenGroupVariant::Row, name: stringify!($name) },
            )*];
        }
    };
}
token_group_row_kernels!(token_group_row_table);

impl TokenGroupKernel {
    /// Every token-group entry point.
    pub const ALL: &'static [TokenGroupKernel] = &{
        let (a, b) = (Self::NARROW_AND_WIDE, Self::ROW);
        let mut all = [a[0]; 36 + 8];
        let mut i = 0;
        while i < all.len() {
            all[i] = if i < a.len() { a[i] } else { b[i - a.len()] };
            i += 1;
        }
        all
    };

    /// The entry point for `input`, `format`, groups of `group_size` and
    /// the tiling `variant`; `None` for a combination without a kernel (a
    /// group size other than 32, 64 and 128; a row kernel for f32 input or
    /// groups of 32).
    pub const fn new(input: DType, format: Fp8Format, group_size: u64, variant: TokenGroupVariant) -> Option<Self> {
        let mut i = 0;
        while i < Self::ALL.len() {
            let k = Self::ALL[i];
            if k.input as u8 == input as u8
                && k.format as u8 == format as u8
                && k.group_size == group_size
                && k.variant as u8 == variant as u8
            {
                return Some(k);
            }
            i += 1;
        }
        None
    }

    /// Its tiling.
    pub const fn variant(self) -> TokenGroupVariant {
        self.variant
    }

    /// Chunks of 8 elements per thread: [`TOKEN_GROUP_CHUNKS`] or
    /// [`TOKEN_GROUP_WIDE_CHUNKS`].
    pub const fn chunks(self) -> u64 {
        match self.variant {
            TokenGroupVariant::Narrow => TOKEN_GROUP_CHUNKS,
            TokenGroupVariant::Wide | TokenGroupVariant::Row => TOKEN_GROUP_WIDE_CHUNKS,
        }
    }

    /// Threads per CTA the host launches it with.
    pub const fn block_threads(self) -> u32 {
        match self.variant {
            TokenGroupVariant::Narrow => BLOCK_THREADS,
            TokenGroupVariant::Wide | TokenGroupVariant::Row => TOKEN_GROUP_WIDE_BLOCK_THREADS,
        }
    }
}

impl Kernel for TokenGroupKernel {
    type Params = TokenGroupParams;

    fn name(self) -> &'static str {
        self.name
    }

    /// f32 chunks take twice the registers of 16-bit ones: 2-chunk f32 at 5
    /// CTAs (51 registers) would spill. Four chunks per thread (wide and
    /// row kernels): about 56 (f32: 64) registers on sm_90.
    fn launch_bounds(self) -> Option<(u32, u32)> {
        let ctas = match (self.variant, self.input) {
            (TokenGroupVariant::Narrow, DType::F32) => 4,
            (TokenGroupVariant::Narrow, _) => 5,
            (_, DType::F32) => 6,
            (_, _) => 8,
        };
        Some((self.block_threads(), ctas))
    }
}

/// A `per_block_quant_fp8` entry point.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BlockKernel {
    input: DType,
    format: Fp8Format,
    name: &'static str,
}

macro_rules! block_table {
    ($($name:ident: $t:ident, $format:ident;)*) => {
        impl BlockKernel {
            /// Every block-quant entry point.
            pub const ALL: &'static [BlockKernel] = &[$(
                BlockKernel { input: DType::$t, format: Fp8Format::$format, name: stringify!($name) },
            )*];
        }
    };
}
block_kernels!(block_table);

impl BlockKernel {
    /// The entry point for `input` and `format` (every pair has one).
    pub const fn new(input: DType, format: Fp8Format) -> Self {
        // Row-major over (input, format), the order of `block_kernels!`.
        Self::ALL[input as usize * Fp8Format::ALL.len() + format as usize]
    }
}

impl Kernel for BlockKernel {
    type Params = BlockParams;

    fn name(self) -> &'static str {
        self.name
    }

    /// 512 threads, two CTAs per SM: at most 64 registers.
    fn launch_bounds(self) -> Option<(u32, u32)> {
        Some((BLOCK_QUANT_THREADS, BLOCK_QUANT_CTAS_PER_SM))
    }
}

/// Which way an element-wise codec kernel converts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CodecOp {
    /// f32 to codes.
    Encode,
    /// Codes to f32.
    Decode,
}

/// An element-wise fp8 encode or decode entry point.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CodecKernel {
    op: CodecOp,
    format: Fp8Format,
    name: &'static str,
}

macro_rules! codec_table {
    ($($encode:ident, $decode:ident: $format:ident;)*) => {
        impl CodecKernel {
            /// Every codec entry point.
            pub const ALL: &'static [CodecKernel] = &[$(
                CodecKernel { op: CodecOp::Encode, format: Fp8Format::$format, name: stringify!($encode) },
                CodecKernel { op: CodecOp::Decode, format: Fp8Format::$format, name: stringify!($decode) },
            )*];
        }
    };
}
codec_kernels!(codec_table);

impl CodecKernel {
    /// The entry point for `op` and `format` (every pair has one).
    pub const fn new(op: CodecOp, format: Fp8Format) -> Self {
        // Per format, encode then decode: the order of `codec_kernels!`.
        Self::ALL[format as usize * 2 + op as usize]
    }
}

impl Kernel for CodecKernel {
    type Params = CodecParams;

    fn name(self) -> &'static str {
        self.name
    }

    fn launch_bounds(self) -> Option<(u32, u32)> {
        None
    }
}

/// Parameters of the benchmark's copy and read kernels (`kernels::copy`),
/// after their buffers `(src, dst)`: `src` 16-byte aligned and `bytes`
/// long, the copy's `dst` too (the read's holds one word).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CopyParams {
    /// Bytes to copy.
    pub bytes: u64,
}

// SAFETY: `#[repr(C)]`, plain integers.
unsafe impl KernelParams for CopyParams {}

/// The benchmark's reference kernels (`kernels::copy`): the SM copy, with
/// the `(src, dst, CopyParams)` signature, and the empty kernel (no
/// parameters), whose time per launch is the launch floor.
pub const SM_COPY_KERNEL: &str = "sm_copy16";
/// See [`SM_COPY_KERNEL`].
pub const EMPTY_KERNEL: &str = "bench_empty";
/// The benchmark's read kernel (`kernels::copy`): `sm_copy16`'s loads, no
/// stores, the `(src, dst, CopyParams)` signature with a 4-byte `dst`.
pub const SM_READ_KERNEL: &str = "sm_read16";

/// Every quantizer entry point's name with its launch bounds, for `cargo
/// xtask build-ptx` (which writes the bounds and fails when a listed entry
/// is missing from a module).
pub fn quantizer_entries() -> impl Iterator<Item = (&'static str, Option<(u32, u32)>)> {
    let tg = TokenGroupKernel::ALL.iter().map(|k| (k.name(), k.launch_bounds()));
    let block = BlockKernel::ALL.iter().map(|k| (k.name(), k.launch_bounds()));
    let codec = CodecKernel::ALL.iter().map(|k| (k.name(), k.launch_bounds()));
    tg.chain(block).chain(codec).chain(crate::fused_abi::fused_entries())
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::ToString;

    #[test]
    fn enums_round_trip_and_reject_other_values() {
        for m in ScaleMode::ALL {
            assert_eq!(ScaleMode::from_u32(m.as_u32()), Some(m));
        }
        for l in ScaleLayout::ALL {
            assert_eq!(ScaleLayout::from_u32(l.as_u32()), Some(l));
        }
        assert_eq!(ScaleMode::from_u32(2), None);
        assert_eq!(ScaleLayout::from_u32(3), None);
    }

    #[test]
    fn every_kernel_is_found_by_its_fields_and_named_after_them() {
        for input in DType::ALL {
            for format in Fp8Format::ALL {
                let b = BlockKernel::new(input, format);
                assert_eq!((b.input, b.format), (input, format));
                assert_eq!(b.name(), ["block_quant", input.name(), format.name()].join("_"));
                for variant in [TokenGroupVariant::Narrow, TokenGroupVariant::Wide, TokenGroupVariant::Row] {
                    for gs in [32, 64, 128] {
                        let k = TokenGroupKernel::new(input, format, gs, variant);
                        if variant == TokenGroupVariant::Row && (input == DType::F32 || gs == 32) {
                            assert_eq!(k, None);
                            continue;
                        }
                        let k = k.unwrap();
                        assert_eq!(k.variant(), variant);
                        let op = match variant {
                            TokenGroupVariant::Narrow => "token_group_quant",
                            TokenGroupVariant::Wide => "token_group_wide_quant",
                            TokenGroupVariant::Row => "token_group_row_quant",
                        };
                        let expected = [op, input.name(), format.name(), &["g", &gs.to_string()].concat()].join("_");
                        assert_eq!(k.name(), expected);
                    }
                    assert_eq!(TokenGroupKernel::new(input, format, 48, variant), None);
                }
            }
        }
        for format in Fp8Format::ALL {
            assert_eq!(CodecKernel::new(CodecOp::Encode, format).name(), ["fp8_encode_", format.name()].concat());
            assert_eq!(CodecKernel::new(CodecOp::Decode, format).name(), ["fp8_decode_", format.name()].concat());
        }
        let names: std::collections::HashSet<_> = quantizer_entries().map(|(n, _)| n).collect();
        assert_eq!(names.len(), 36 + 8 + 6 + 4 + 18);
    }

    #[test]
    fn parameter_blocks_have_no_padding() {
        // The sizes the PTX entry points declare (`.param .align 8 .b8 p[N]`).
        assert_eq!(core::mem::size_of::<TokenGroupParams>(), 3 * 8 + 4 * 4);
        assert_eq!(core::mem::size_of::<BlockParams>(), 7 * 8 + 4 * 4);
        assert_eq!(core::mem::size_of::<CodecParams>(), 8);
    }

    #[test]
    fn launch_bounds_match_the_launch_geometry() {
        for k in TokenGroupKernel::ALL {
            let (threads, _) = k.launch_bounds().unwrap();
            assert_eq!(threads, k.block_threads());
        }
        let narrow_f32 = TokenGroupKernel::new(DType::F32, Fp8Format::E4M3Fn, 128, TokenGroupVariant::Narrow).unwrap();
        assert_eq!(narrow_f32.launch_bounds(), Some((BLOCK_THREADS, 4)));
        let wide_bf16 = TokenGroupKernel::new(DType::Bf16, Fp8Format::E4M3Fnuz, 64, TokenGroupVariant::Wide).unwrap();
        assert_eq!(wide_bf16.launch_bounds(), Some((TOKEN_GROUP_WIDE_BLOCK_THREADS, 8)));
        let row_f16 = TokenGroupKernel::new(DType::F16, Fp8Format::E4M3Fn, 128, TokenGroupVariant::Row).unwrap();
        assert_eq!(row_f16.launch_bounds(), Some((TOKEN_GROUP_WIDE_BLOCK_THREADS, 8)));
        assert_eq!(row_f16.chunks(), TOKEN_GROUP_WIDE_CHUNKS);
    }
}
