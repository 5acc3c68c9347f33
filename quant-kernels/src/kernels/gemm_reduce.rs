//! The second half of the `wgmma` GEMM's split-K: `C = sum over s of
//! partial[s]`, in split order, converted to the output type.
//!
//! The split GEMM ([`super::gemm_wgmma`]) leaves `splits` f32 partial
//! products `[m, n]` in a workspace, `gemm_split_stride(m, n)` elements
//! apart. Adding them in a separate kernel rather than in the GEMM's last
//! CTA per tile spreads the reduction over the whole GPU (one CTA reading
//! every partial of a 128 x 128 tile would take longer than the split saved)
//! and keeps the sum's order fixed, so results do not depend on timing.
//!
//! Each thread owns 4 consecutive elements of C: one 16-byte load per
//! split, the sum kept in registers, one store per pair of outputs.

use core::arch::nvptx;

use super::common::{Bf16Out, Out};

/// Four f32 loaded as one 16-byte vector.
#[derive(Clone, Copy)]
#[repr(C, align(16))]
struct F4([f32; 4]);

/// Sums the `splits` partials of the elements `4 t .. 4 t + 4` (thread
/// `t`), or the ones of them below `len`, into `c`.
///
/// # Safety
/// `ws` holds `splits * stride` f32 with `stride = gemm_split_stride(..)`
/// (a multiple of 4, at least `len`) and is 16-byte aligned, `c` holds
/// `len` elements, `splits >= 1`; the grid has at least `ceil(len / 4)`
/// threads.
#[inline(always)]
unsafe fn splitk_reduce<O: Out>(ws: *const f32, c: *mut O, len: u64, stride: u64, splits: u32) {
    let t = nvptx::_block_idx_x() as u64 * nvptx::_block_dim_x() as u64 + nvptx::_thread_idx_x() as u64;
    let i = 4 * t;
    if i >= len {
        return;
    }
    let mut sum = (ws.add(i as usize) as *const F4).read().0;
    let mut s = 1;
    while s < splits {
        let v = (ws.add((s as u64 * stride + i) as usize) as *const F4).read().0;
        sum[0] += v[0];
        sum[1] += v[1];
        sum[2] += v[2];
        sum[3] += v[3];
        s += 1;
    }
    // The partials' tails up to `stride` are never read back: a thread
    // whose 4 elements cross `len` stores only the ones inside C.
    if i + 4 <= len && (c as usize) % (2 * core::mem::size_of::<O>()) == 0 {
        O::store2(c, i, sum[0], sum[1]);
        O::store2(c, i + 2, sum[2], sum[3]);
    } else {
        let mut e = 0;
        while e < 4 && i + e < len {
            O::store1(c, i + e, sum[e as usize]);
            e += 1;
        }
    }
}

macro_rules! entries {
    ($($name:ident: $out:ty;)*) => {$(
        /// Split-K reduction of the `wgmma` GEMM; see the module documentation.
        ///
        /// # Safety
        /// Launched by `quant-host` with checked arguments.
        #[no_mangle]
        pub unsafe extern "ptx-kernel" fn $name(ws: *const f32, c: *mut $out, len: u64, stride: u64, splits: u32) {
            splitk_reduce::<$out>(ws, c, len, stride, splits)
        }
    )*};
}

entries! {
    gemm_splitk_reduce_bf16: Bf16Out;
    gemm_splitk_reduce_f32: f32;
}
