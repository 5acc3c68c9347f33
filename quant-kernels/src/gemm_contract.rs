//! The typed contract between the `mma.sync` GEMM kernels
//! (`kernels::gemm`: the tiled kernel and the decode-sized one) and the
//! host, compiled into both as [`crate::abi`] is for the quantizers:
//!
//! - one `#[repr(C)]` parameter block, [`GemmMmaParams`], that both
//!   kernels take by value after their buffers and the host fills once;
//! - every entry point as a typed value ([`GemmTiledKernel`],
//!   [`GemmDecodeKernel`]) whose PTX name comes from the same list that
//!   generates the entry points (`gemm_mma_kernels!`), so the host never
//!   spells a kernel name;
//! - the scale layout crossing as [`ScaleLayout::as_u32`], decoded on the
//!   device by [`GemmMmaParams::layout`] (the `wire_enum!` pair).
//!
//! The `wgmma` family's contract is [`crate::wgmma_contract`]; the output
//! types of C ([`GemmOut`]) are shared with it.
//!
//! As for the quantizers, the device buffers are the kernels' leading
//! pointer parameters, not fields of the block: a pointer inside a by-value
//! struct loses LLVM's knowledge that it points to global memory.

use crate::abi::{Kernel, KernelParams};
use crate::wgmma_contract::GemmOut;
use crate::{Fp8Format, ScaleLayout};

/// Parameters of both `mma.sync` GEMM kernels, after their buffers.
///
/// The tiled kernel takes `(a, a_scales, b, b_scales, c, params)`, the
/// decode-sized one `(a, a_scales, b, b_scales, c, ws, tickets, params)`:
/// A `[m, k]` and B `[n, k]` fp8 codes (K contiguous), A's scales in
/// `layout` over `ceil(k / 128)` k-blocks, B's `[ceil(n / 128), ceil(k /
/// 128)]` row-major, C `[m, n]` of the kernel's output type; for the
/// decode-sized kernel split over `gridDim.y > 1` CTAs, `ws` holds
/// `splits * 16 * n` f32 and `tickets` `ceil(n / 8)` zeroed u32.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GemmMmaParams {
    /// Rows of A and C (at most [`crate::geometry::GEMM_SMALL_M`] for the
    /// decode-sized kernel).
    pub m: u32,
    /// Rows of B, columns of C.
    pub n: u32,
    /// The reduction dimension, in elements (bytes) of A and B rows.
    pub k: u32,
    /// A's scale layout, [`ScaleLayout::as_u32`].
    pub layout: u32,
}

impl GemmMmaParams {
    /// The block for an `m x n x k` problem with A's scales in `layout`.
    #[inline(always)]
    pub const fn new(m: u32, n: u32, k: u32, layout: ScaleLayout) -> Self {
        Self { m, n, k, layout: layout.as_u32() }
    }

    /// A's scale layout; a value no host builds reads as row-major.
    #[inline(always)]
    pub const fn layout(&self) -> ScaleLayout {
        match ScaleLayout::from_u32(self.layout) {
            Some(l) => l,
            None => ScaleLayout::RowMajor,
        }
    }
}

// SAFETY: `#[repr(C)]`, four `u32`; the kernels decode `layout` totally.
unsafe impl KernelParams for GemmMmaParams {}

/// Lists every `mma.sync` GEMM entry point as `(tiled name, decode-sized
/// name: format, output;)` and hands the list to `$then!`: the one list
/// behind the kernels' `#[no_mangle]` functions and the tables
/// [`GemmTiledKernel::ALL`] and [`GemmDecodeKernel::ALL`].
macro_rules! gemm_mma_kernels {
    ($then:ident) => {
        $then! {
            gemm_fp8_e4m3fn_bf16, gemm_small_e4m3fn_bf16: E4M3Fn, Bf16;
            gemm_fp8_e4m3fn_f32, gemm_small_e4m3fn_f32: E4M3Fn, F32;
            gemm_fp8_e4m3fnuz_bf16, gemm_small_e4m3fnuz_bf16: E4M3Fnuz, Bf16;
            gemm_fp8_e4m3fnuz_f32, gemm_small_e4m3fnuz_f32: E4M3Fnuz, F32;
        }
    };
}

/// Defines a kernel type of the `mma.sync` family: its fields, its lookup
/// and its [`Kernel`] impl (no launch bounds: ptxas's own register choice
/// has been measured best for both).
macro_rules! gemm_mma_kernel_type {
    ($($(#[$doc:meta])* $ty:ident;)*) => {$(
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub struct $ty {
            format: Fp8Format,
            out: GemmOut,
            name: &'static str,
        }

        impl $ty {
            /// The entry point for `format` and `out` (every pair has one).
            #[inline]
            pub const fn new(format: Fp8Format, out: GemmOut) -> Self {
                // Per format, bf16 then f32: the order of `gemm_mma_kernels!`.
                Self::ALL[format as usize * 2 + out as usize]
            }

            /// The fp8 format of A and B.
            #[inline]
            pub const fn format(self) -> Fp8Format {
                self.format
            }

            /// The element type of C.
            #[inline]
            pub const fn out(self) -> GemmOut {
                self.out
            }
        }

        impl Kernel for $ty {
            type Params = GemmMmaParams;

            fn name(self) -> &'static str {
                self.name
            }

            fn launch_bounds(self) -> Option<(u32, u32)> {
                None
            }
        }
    )*};
}

gemm_mma_kernel_type! {
    /// An entry point of the tiled `mma.sync` GEMM (`gemm_fp8_*`).
    GemmTiledKernel;
    /// An entry point of the decode-sized GEMM (`gemm_small_*`, M <= 16).
    GemmDecodeKernel;
}

macro_rules! gemm_mma_table {
    ($($tiled:ident, $decode:ident: $format:ident, $out:ident;)*) => {
        impl GemmTiledKernel {
            /// Every tiled entry point.
            pub const ALL: &'static [GemmTiledKernel] = &[$(
                GemmTiledKernel { format: Fp8Format::$format, out: GemmOut::$out, name: stringify!($tiled) },
            )*];
        }

        impl GemmDecodeKernel {
            /// Every decode-sized entry point.
            pub const ALL: &'static [GemmDecodeKernel] = &[$(
                GemmDecodeKernel { format: Fp8Format::$format, out: GemmOut::$out, name: stringify!($decode) },
            )*];
        }
    };
}
gemm_mma_kernels!(gemm_mma_table);

/// Every `mma.sync` GEMM entry point's name with its launch bounds, for
/// `cargo xtask build-ptx` (which fails when one is missing from a module).
pub fn gemm_mma_entries() -> impl Iterator<Item = (&'static str, Option<(u32, u32)>)> {
    let tiled = GemmTiledKernel::ALL.iter().map(|k| (k.name(), k.launch_bounds()));
    let decode = GemmDecodeKernel::ALL.iter().map(|k| (k.name(), k.launch_bounds()));
    tiled.chain(decode)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    #[test]
    fn every_kernel_is_found_by_its_fields_and_named_after_them() {
        for format in Fp8Format::ALL {
            for out in [GemmOut::Bf16, GemmOut::F32] {
                let suffix = [format.name(), if out == GemmOut::Bf16 { "bf16" } else { "f32" }].join("_");
                let t = GemmTiledKernel::new(format, out);
                assert_eq!((t.format(), t.out()), (format, out));
                assert_eq!(t.name(), ["gemm_fp8_", &suffix].concat());
                let d = GemmDecodeKernel::new(format, out);
                assert_eq!((d.format(), d.out()), (format, out));
                assert_eq!(d.name(), ["gemm_small_", &suffix].concat());
            }
        }
        let names: std::collections::HashSet<_> = gemm_mma_entries().map(|(n, _)| n).collect();
        assert_eq!(names.len(), 8);
    }

    #[test]
    fn parameter_block_carries_the_layout() {
        // The size the PTX entry points declare (`.param .align 4 .b8 p[16]`).
        assert_eq!(core::mem::size_of::<GemmMmaParams>(), 16);
        for l in ScaleLayout::ALL {
            assert_eq!(GemmMmaParams::new(1, 2, 3, l).layout(), l);
        }
        let unknown = GemmMmaParams { layout: 7, ..GemmMmaParams::new(1, 2, 3, ScaleLayout::ColMajor) };
        assert_eq!(unknown.layout(), ScaleLayout::RowMajor);
    }
}
