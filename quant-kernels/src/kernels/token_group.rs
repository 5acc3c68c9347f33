//! `per_token_group_quant_fp8`: one fp8 code per input element and one f32
//! scale per group of `GS` consecutive elements of a row.
//!
//! Tiling. A thread owns 8 consecutive elements of a row: one 16-byte load for
//! bf16/f16, two for f32, and one 8-byte store of codes. A group of `GS`
//! elements is therefore `GS / 8` adjacent lanes of one warp (4, 8 or 16
//! lanes), and its amax is a butterfly shuffle over those lanes: no shared
//! memory and no barrier. The group's first lane writes the scale. The grid
//! is 1-D and covers `rows * groups_per_row * GS / 8` threads; threads past
//! the end still take part in the shuffles (a warp may be half full) but
//! load and store nothing.
//!
//! A group whose columns run past `cols` (the K tail) loads zeros for the
//! missing columns, which leaves its amax unchanged, and stores only its
//! valid codes. Unaligned rows (a row stride that is not a multiple of 8
//! elements, or an odd base pointer) fall back to scalar loads and stores.

use super::{encode8, Bf16, Input, F16};
use crate::gpu::{global_thread_index, shfl_xor};
use crate::scale::{abs, clamp, group_scale, nan_max};
use crate::{Fp8Format, ScaleLayout, ScaleMode};

/// Elements owned by one thread.
pub const ELEMS_PER_THREAD: u64 = 8;

/// Sixteen bytes, aligned so a read compiles to one vector load.
#[derive(Clone, Copy)]
#[repr(C, align(16))]
struct Vec16([u32; 4]);

/// Eight bytes, aligned so a write compiles to one vector store.
#[derive(Clone, Copy)]
#[repr(C, align(8))]
struct Vec8([u8; 8]);

/// Reads eight consecutive elements into f32.
trait Load8: Input {
    /// # Safety
    /// `p` is 16-byte aligned and the eight elements are readable.
    unsafe fn load8_aligned(p: *const Self) -> [f32; 8];
}

impl Load8 for Bf16 {
    #[inline(always)]
    unsafe fn load8_aligned(p: *const Self) -> [f32; 8] {
        half_words_to_f32((p as *const Vec16).read(), |b| Bf16(b).to_f32())
    }
}

impl Load8 for F16 {
    #[inline(always)]
    unsafe fn load8_aligned(p: *const Self) -> [f32; 8] {
        half_words_to_f32((p as *const Vec16).read(), |b| F16(b).to_f32())
    }
}

impl Load8 for f32 {
    #[inline(always)]
    unsafe fn load8_aligned(p: *const Self) -> [f32; 8] {
        let a = (p as *const Vec16).read().0;
        let b = (p as *const Vec16).add(1).read().0;
        [a[0], a[1], a[2], a[3], b[0], b[1], b[2], b[3]].map(f32::from_bits)
    }
}

#[inline(always)]
fn half_words_to_f32(v: Vec16, convert: impl Fn(u16) -> f32) -> [f32; 8] {
    let w = v.0;
    [
        convert(w[0] as u16),
        convert((w[0] >> 16) as u16),
        convert(w[1] as u16),
        convert((w[1] >> 16) as u16),
        convert(w[2] as u16),
        convert((w[2] >> 16) as u16),
        convert(w[3] as u16),
        convert((w[3] >> 16) as u16),
    ]
}

/// `(a / b, a % b)`, in 32-bit arithmetic when both fit (64-bit division is
/// a long software sequence on the GPU).
#[inline(always)]
fn divmod(a: u64, b: u64) -> (u64, u64) {
    if a <= u32::MAX as u64 && b <= u32::MAX as u64 {
        let (a, b) = (a as u32, b as u32);
        ((a / b) as u64, (a % b) as u64)
    } else {
        (a / b, a % b)
    }
}

#[inline(always)]
fn decode_mode(mode: u32) -> ScaleMode {
    if mode == ScaleMode::Ue8m0 as u32 {
        ScaleMode::Ue8m0
    } else {
        ScaleMode::Float
    }
}

#[inline(always)]
fn decode_layout(layout: u32) -> ScaleLayout {
    match layout {
        1 => ScaleLayout::ColMajor,
        2 => ScaleLayout::ColMajorTmaAligned,
        _ => ScaleLayout::RowMajor,
    }
}

/// The per-thread work of the kernel, top to bottom.
///
/// # Safety
/// The host has checked: `x` holds `rows` rows of `row_stride >= cols`
/// elements, `q` holds `rows * cols` bytes, `scales` holds `layout.len(rows,
/// groups)` f32, and the grid has at least one thread per element chunk.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn quantize_groups<T: Load8, const GS: u64>(
    format: Fp8Format,
    x: *const T,
    q: *mut u8,
    scales: *mut f32,
    rows: u64,
    cols: u64,
    row_stride: u64,
    eps: f32,
    fp8_max: f32,
    mode: u32,
    layout: u32,
) {
    let threads_per_group = GS / ELEMS_PER_THREAD;
    let groups = cols.div_ceil(GS);
    let t = global_thread_index();
    let (group, lane) = (t / threads_per_group, t % threads_per_group);
    let active = group < rows * groups;
    let (row, g) = if active {
        divmod(group, groups)
    } else {
        (0, 0)
    };
    let col0 = g * GS + lane * ELEMS_PER_THREAD;
    let valid = if active {
        cols.saturating_sub(col0).min(ELEMS_PER_THREAD)
    } else {
        0
    };

    // 1. Load this thread's eight elements (zeros past the row's end).
    let src = x.add((row * row_stride + col0) as usize);
    let mut v = [0f32; 8];
    if valid == ELEMS_PER_THREAD && (src as usize) % 16 == 0 {
        v = T::load8_aligned(src);
    } else {
        unroll8!(i => {
            if (i as u64) < valid {
                v[i] = src.add(i).read().to_f32();
            }
        });
    }

    // 2. The group's amax: local, then across the group's lanes.
    let mut amax = 0f32;
    unroll8!(i => {
        amax = nan_max(amax, abs(v[i]));
    });
    let mut offset = threads_per_group as u32 / 2;
    while offset > 0 {
        amax = nan_max(amax, shfl_xor(amax, offset));
        offset /= 2;
    }

    // 3. Scale, then codes.
    let scale = group_scale(amax, eps, fp8_max, decode_mode(mode));
    let codes = encode8(format, &v.map(|value| clamp(value / scale, fp8_max)));

    // 4. Store codes (one 8-byte store when possible) and the scale.
    let dst = q.add((row * cols + col0) as usize);
    if valid == ELEMS_PER_THREAD && (dst as usize) % 8 == 0 {
        (dst as *mut Vec8).write(Vec8(codes));
    } else {
        unroll8!(i => {
            if (i as u64) < valid {
                dst.add(i).write(codes[i]);
            }
        });
    }
    if active && lane == 0 {
        let layout = decode_layout(layout);
        scales
            .add(layout.index(row, g, rows, groups) as usize)
            .write(scale);
        if row + 1 == rows {
            // The last row also zeroes the TMA padding rows of its column.
            let mut m = rows;
            while m < layout.padded_rows(rows) {
                scales
                    .add(layout.index(m, g, rows, groups) as usize)
                    .write(0.0);
                m += 1;
            }
        }
    }
}

macro_rules! entry {
    ($($name:ident: $t:ty, $format:ident, $gs:literal;)*) => {$(
        /// Kernel entry point; see the module documentation.
        ///
        /// # Safety
        /// Launched by `quant-host` with checked arguments.
        #[no_mangle]
        #[allow(clippy::too_many_arguments)]
        pub unsafe extern "ptx-kernel" fn $name(
            x: *const $t,
            q: *mut u8,
            scales: *mut f32,
            rows: u64,
            cols: u64,
            row_stride: u64,
            eps: f32,
            fp8_max: f32,
            mode: u32,
            layout: u32,
        ) {
            quantize_groups::<$t, $gs>(
                Fp8Format::$format, x, q, scales, rows, cols, row_stride, eps, fp8_max, mode,
                layout,
            )
        }
    )*};
}

entry! {
    token_group_quant_bf16_e4m3fn_g32: Bf16, E4M3Fn, 32;
    token_group_quant_bf16_e4m3fn_g64: Bf16, E4M3Fn, 64;
    token_group_quant_bf16_e4m3fn_g128: Bf16, E4M3Fn, 128;
    token_group_quant_bf16_e4m3fnuz_g32: Bf16, E4M3Fnuz, 32;
    token_group_quant_bf16_e4m3fnuz_g64: Bf16, E4M3Fnuz, 64;
    token_group_quant_bf16_e4m3fnuz_g128: Bf16, E4M3Fnuz, 128;
    token_group_quant_f16_e4m3fn_g32: F16, E4M3Fn, 32;
    token_group_quant_f16_e4m3fn_g64: F16, E4M3Fn, 64;
    token_group_quant_f16_e4m3fn_g128: F16, E4M3Fn, 128;
    token_group_quant_f16_e4m3fnuz_g32: F16, E4M3Fnuz, 32;
    token_group_quant_f16_e4m3fnuz_g64: F16, E4M3Fnuz, 64;
    token_group_quant_f16_e4m3fnuz_g128: F16, E4M3Fnuz, 128;
    token_group_quant_f32_e4m3fn_g32: f32, E4M3Fn, 32;
    token_group_quant_f32_e4m3fn_g64: f32, E4M3Fn, 64;
    token_group_quant_f32_e4m3fn_g128: f32, E4M3Fn, 128;
    token_group_quant_f32_e4m3fnuz_g32: f32, E4M3Fnuz, 32;
    token_group_quant_f32_e4m3fnuz_g64: f32, E4M3Fnuz, 64;
    token_group_quant_f32_e4m3fnuz_g128: f32, E4M3Fnuz, 128;
}
