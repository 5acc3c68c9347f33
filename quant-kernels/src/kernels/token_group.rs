//! `per_token_group_quant_fp8`: one fp8 code per input element and one f32
//! scale per group of `GS` consecutive elements of a row.
//!
//! Tiling. A thread owns `C` (2, or 4 in the `wide` kernels for large
//! problems: see `geometry::TOKEN_GROUP_CHUNKS`) 8-element chunks of
//! one group, `GS / C` apart: `C` independent 16-byte loads in flight (twice
//! that for f32) and `C` 8-byte stores of codes. Lane `l` of a group holds
//! chunks `l + c * GS / (8 C)`, so each load instruction of a warp reads
//! consecutive 16-byte pieces (fully coalesced). A group of `GS` elements is
//! `GS / (8 C)` adjacent lanes (1 to 8), and its amax is a butterfly
//! shuffle over those lanes: no shared memory and no barrier. Several chunks
//! per thread spread the per-thread work (index math, the group's scale and
//! its reciprocal) over more elements, which matters: at full memory
//! bandwidth an H100 has only about a dozen instructions to spend per
//! element. The group's first lane writes the scale. The grid is 1-D and
//! covers `rows * groups_per_row * GS / (8 C)` threads; threads past the end
//! still take part in the shuffles (a warp may be partly full) but load and
//! store nothing.
//!
//! Groups are numbered row after row, except in the wide kernel with a
//! column-major scale layout, which numbers them down bands of 8 rows (see
//! `geometry::TOKEN_GROUP_BAND`) so that a warp's scale stores are
//! adjacent; the grid then covers whole bands.
//!
//! A group whose columns run past `cols` (the K tail) loads zeros for the
//! missing columns, which leaves its amax unchanged, and stores only its
//! valid codes. Unaligned rows (a row stride that is not a multiple of 8
//! elements, or an odd base pointer) fall back to scalar loads and stores.

use super::chunk::{store_chunk, store_whole, Load8, ELEMS_PER_THREAD};
use super::{group_amax, Bf16, GroupQuantizer, F16, F32};
use crate::abi::TokenGroupParams;
use crate::geometry::{token_group_banded, token_group_threads, TOKEN_GROUP_BAND};
use crate::instr::{global_thread_index, opaque_u64};
use crate::scale::group_scale;
use crate::{Fp8Format, ScaleLayout, ScaleMode};

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

/// The per-thread work of the kernel, top to bottom, with `C` (2 or 4)
/// chunks per thread.
///
/// # Safety
/// The host has checked (see [`TokenGroupParams`]): `x` holds `rows` rows of
/// `row_stride >= cols` elements of `T`, `q` holds `rows * cols` bytes,
/// `scales` holds `layout.len(rows, groups)` f32, and the grid has at least
/// one thread per element chunk.
#[inline(always)]
unsafe fn quantize_groups<T: Load8, const GS: u64, const C: usize>(
    format: Fp8Format,
    x: *const T,
    q: *mut u8,
    scales: *mut f32,
    p: TokenGroupParams,
) {
    let TokenGroupParams { rows, cols, row_stride, eps, fp8_max, mode, layout } = p;
    const { assert!(C == 2 || C == 4) };
    let threads_per_group = token_group_threads(GS, C as u64);
    let groups = cols.div_ceil(GS);
    let t = global_thread_index();
    let (group, lane) = (t / threads_per_group, t % threads_per_group);
    let (active, row, g) = if token_group_banded(C as u64, layout) {
        // Down the rows of a band of TOKEN_GROUP_BAND, then across.
        let (band, i) = divmod(group, TOKEN_GROUP_BAND * groups);
        let row = band * TOKEN_GROUP_BAND + i % TOKEN_GROUP_BAND;
        let active = row < rows;
        (active, if active { row } else { 0 }, if active { i / TOKEN_GROUP_BAND } else { 0 })
    } else {
        let active = group < rows * groups;
        let (row, g) = if active { divmod(group, groups) } else { (0, 0) };
        (active, row, g)
    };
    let col = |c: u64| g * GS + (lane + c * threads_per_group) * ELEMS_PER_THREAD;
    // The checked paths take `cols` through `opaque_u64`: otherwise LLVM
    // merges their whole-chunk case with the whole-group path below
    // (`whole || (valid == 8 && aligned)`) and computes every chunk's count
    // and tests up front, the work the whole-group path exists to skip.
    let valid = |cols: u64, c: u64| if active { cols.saturating_sub(col(c)).min(ELEMS_PER_THREAD) } else { 0 };

    // 1. Load every chunk (zeros past the row's end) before using any. A
    // group that lies wholly inside its row, at aligned addresses (every
    // group but a K tail's, unless the stride or a base pointer is odd),
    // loads and stores its chunks without a per-chunk test: the tests cost
    // about 20 instructions a chunk, a tenth of the kernel. The branch is
    // per chunk on a thread-uniform flag: two copies of the whole encode
    // loop, one per path, made the f16 kernels spill.
    let src = x.add((row * row_stride) as usize);
    let dst = q.add((row * cols) as usize);
    let whole = active
        && (g + 1) * GS <= cols
        && (src.wrapping_add(col(0) as usize) as usize) % 16 == 0
        && (dst.wrapping_add(col(0) as usize) as usize) % 8 == 0;
    // (The loops over chunks are unrolled four times with `c < C` known at
    // compile time, so the array stays in registers; with C = 2 the last two
    // entries are never used.)
    let mut raw = [T::ZERO; 4];
    unroll4!(c => {
        if c < C {
            let at = src.add(col(c as u64) as usize);
            raw[c] = if whole { T::load_whole(at) } else { T::load(at, valid(opaque_u64(cols), c as u64)) };
        }
    });

    // 2. The group's amax: local, then across the group's lanes.
    let mut acc = 0u32;
    unroll4!(c => {
        if c < C {
            acc = T::fold_abs_max(acc, &raw[c]);
        }
    });
    let amax = group_amax(T::abs_max_to_f32(acc), threads_per_group as u32);

    // 3. Scale, then codes; 4. store them (8-byte stores when possible).
    let scale = group_scale(amax, eps, fp8_max, ScaleMode::from_u32(mode).unwrap_or(ScaleMode::Float));
    let quantizer = GroupQuantizer::new(format, scale, fp8_max);
    unroll4!(c => {
        if c < C {
            let (at, codes) = (dst.add(col(c as u64) as usize), quantizer.quantize8(&T::unpack(&raw[c])));
            if whole {
                store_whole(at, codes);
            } else {
                store_chunk(at, codes, valid(opaque_u64(cols), c as u64));
            }
        }
    });
    if active && lane == 0 {
        let layout = ScaleLayout::from_u32(layout).unwrap_or(ScaleLayout::RowMajor);
        scales.add(layout.index(row, g, rows, groups) as usize).write(scale);
        if row + 1 == rows {
            // The last row also zeroes the TMA padding rows of its column.
            let mut m = rows;
            while m < layout.padded_rows(rows) {
                scales.add(layout.index(m, g, rows, groups) as usize).write(0.0);
                m += 1;
            }
        }
    }
}

macro_rules! entry {
    ($($name:ident, $wide:ident: $t:ident, $format:ident, $gs:literal;)*) => {$(
        /// Kernel entry point, two chunks per thread; see the module
        /// documentation.
        ///
        /// # Safety
        /// Launched by `quant-host` with checked parameters.
        #[no_mangle]
        pub unsafe extern "ptx-kernel" fn $name(x: *const $t, q: *mut u8, scales: *mut f32, p: TokenGroupParams) {
            quantize_groups::<$t, $gs, 2>(Fp8Format::$format, x, q, scales, p)
        }

        /// Kernel entry point, four chunks per thread (large problems); see
        /// the module documentation.
        ///
        /// # Safety
        /// Launched by `quant-host` with checked parameters.
        #[no_mangle]
        pub unsafe extern "ptx-kernel" fn $wide(x: *const $t, q: *mut u8, scales: *mut f32, p: TokenGroupParams) {
            quantize_groups::<$t, $gs, 4>(Fp8Format::$format, x, q, scales, p)
        }
    )*};
}

// The entry points of `crate::abi`'s list, which also names them for the host.
token_group_kernels!(entry);
