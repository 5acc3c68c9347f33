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
//!
//! Every entry point first lets a dependent launch start
//! (`griddepcontrol.launch_dependents`): a GEMM queued after it with PDL
//! sets up on the SMs this grid's last CTAs leave, and waits for this grid
//! to complete before it reads the codes or scales.
//!
//! The row kernels (`token_group_row_quant_*`, the second section of this
//! file) tile differently: a warp along 1024 contiguous elements of one row,
//! each thread holding one chunk of each of 4 groups, for large problems
//! whose rows are not 128-byte aligned (K = 7000); see their section.

use super::chunk::{store_chunk, store_whole, Load8, ELEMS_PER_THREAD};
use super::{
    amax_from_bits, group_amax, group_amax_bits4_scatter, quantize4_scattered, Bf16, GroupQuantizer, F16, F32,
};
use crate::abi::TokenGroupParams;
use crate::geometry::{
    token_group_banded, token_group_row_warps, token_group_threads, TOKEN_GROUP_BAND, TOKEN_GROUP_ROW_WARP_ELEMS,
};
use crate::instr::{global_thread_index, opaque_u64};
use crate::scale::{group_scale, Divider};
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
        store_scale(scales, layout, row, g, rows, groups, scale);
    }
}

/// Writes the scale of row `row`'s group `g` where `layout` puts it; the
/// last row also zeroes the TMA padding rows of its column.
///
/// # Safety
/// `scales` holds `layout.len(rows, groups)` f32, `row < rows`, `g < groups`.
#[inline(always)]
unsafe fn store_scale(scales: *mut f32, layout: u32, row: u64, g: u64, rows: u64, groups: u64, scale: f32) {
    let layout = ScaleLayout::from_u32(layout).unwrap_or(ScaleLayout::RowMajor);
    scales.add(layout.index(row, g, rows, groups) as usize).write(scale);
    if row + 1 == rows {
        let mut m = rows;
        while m < layout.padded_rows(rows) {
            scales.add(layout.index(m, g, rows, groups) as usize).write(0.0);
            m += 1;
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
            crate::instr::grid_launch_dependents();
            quantize_groups::<$t, $gs, 2>(Fp8Format::$format, x, q, scales, p)
        }

        /// Kernel entry point, four chunks per thread (large problems); see
        /// the module documentation.
        ///
        /// # Safety
        /// Launched by `quant-host` with checked parameters.
        #[no_mangle]
        pub unsafe extern "ptx-kernel" fn $wide(x: *const $t, q: *mut u8, scales: *mut f32, p: TokenGroupParams) {
            crate::instr::grid_launch_dependents();
            quantize_groups::<$t, $gs, 4>(Fp8Format::$format, x, q, scales, p)
        }
    )*};
}

// The entry points of `crate::abi`'s list, which also names them for the host.
token_group_kernels!(entry);

// ---------------------------------------------------------------------------
// The row kernels (`token_group_row_quant_*`): whole warps along one row.
//
// Tiling. A warp covers `TOKEN_GROUP_ROW_WARP_ELEMS` (1024) consecutive
// elements of ONE row, 128 chunks of 8: 8 groups of 128 or 16 of 64. Load
// instruction `c` (0..4) has lane `l` read chunk `32 c + l` of the warp's
// span, so a warp instruction reads 512 contiguous bytes of bf16/f16 and
// stores 256 contiguous bytes of codes. On a row that is not 128-byte
// aligned (K = 7000: input rows 48 bytes past a line, code rows 24 bytes
// into a sector) that costs one extra sector per instruction, where the
// wide kernel's warp reads 8 pieces of 64 bytes (one per group), each one
// sector over, and stores 8 pieces of 32 bytes, each split in two.
//
// Thread `l` then holds one chunk of each of 4 groups: its chunk `c` is
// chunk `l % L` of the warp's group `c * (32 / L) + l / L`, with `L = GS / 8`
// lanes per group (16 at GS = 128, 8 at 64). The L lanes of a block hold
// the same 4 groups; `group_amax_bits4_scatter` reduce-scatters their 4 amaxes
// (5 shuffles at GS = 128, 4 at 64), leaving lane `l` with the whole amax of
// its block's group `(l % L) / (L / 4)`. That lane computes the group's
// scale and reciprocal (each group's in `L / 4` lanes, redundantly), and
// each chunk's encode takes its group's pair from the first lane holding it
// (two `shfl.idx` a chunk) and rebuilds the quantizer from them: a few
// compares for the division path, no division (`GroupQuantizer::with_recip`,
// the same quantizer `new` makes). The first of each group's `L / 4` lanes
// stores its scale; a warp's 8 (or 16) scales are adjacent in a row-major
// layout.
//
// A row takes `ceil(K / 1024)` warps (`geometry::token_group_row_warps`); a
// warp never spans two rows. Lanes past the row's end load zeros (leaving
// the amax unchanged) and store nothing. A warp whose span lies inside its
// row at aligned addresses loads and stores without per-chunk tests; the
// row's last warp when K is not a multiple of 1024 (and every warp of a row
// with odd addresses) takes the wide kernel's checked per-chunk path
// (`Load8::load`, `store_chunk`: whole chunks still one access, partial ones
// element by element). The flag is warp-uniform, so no warp runs both
// paths. The grid is `rows * ceil(K / 1024)` warps in CTAs of
// `TOKEN_GROUP_WIDE_BLOCK_THREADS`; warps past the end return at once.
//
// Where it runs (the host's `launch::token_group_variant`): 16-bit input,
// groups of 64 or 128, where the wide kernel would, e4m3fn codes, an input
// pitch that is not a whole number of 128-byte lines (K = 7000, 7048; not
// K = 7104, whose input rows are aligned: the wide kernel was faster there,
// as it was for e4m3fnuz, whose encoder is the cost), and row-major scales
// only. In the column-major layouts a warp's 8 scales of one row would land
// 8 sectors apart: the scatter that cost the wide kernel 9% at K = 7000
// before its band numbering (bench/NOTES-quant.md, versions 11 and 12), of
// the same order as what the contiguous rows gain; the banded wide kernel
// stays there until the two are measured against each other. The kernel
// itself computes every layout (the tests force it on all of them).

/// The per-thread work of a row kernel, top to bottom.
///
/// # Safety
/// As for [`quantize_groups`], with a grid of at least `rows *
/// token_group_row_warps(cols)` whole warps.
#[inline(always)]
unsafe fn quantize_row_groups<T: Load8, const GS: u64>(
    format: Fp8Format,
    x: *const T,
    q: *mut u8,
    scales: *mut f32,
    p: TokenGroupParams,
) {
    let TokenGroupParams { rows, cols, row_stride, eps, fp8_max, mode, layout } = p;
    const { assert!(GS == 64 || GS == 128) };
    // Lanes per group, a quarter of them, and groups per load instruction.
    let lanes = (GS / ELEMS_PER_THREAD) as u32;
    let quarter = lanes / 4;
    let groups_per_instr = 32 / lanes;
    let warps_per_row = token_group_row_warps(cols);
    let t = global_thread_index();
    let (warp, lane) = (t / 32, (t % 32) as u32);
    if warp >= rows * warps_per_row {
        // A whole warp past the end (the last CTA's): nothing to shuffle with.
        return;
    }
    let (row, w) = divmod(warp, warps_per_row);
    let first = w * TOKEN_GROUP_ROW_WARP_ELEMS;
    let col = |c: u64| first + (32 * c + lane as u64) * ELEMS_PER_THREAD;
    // `cols` through `opaque_u64` on the checked path, as in `quantize_groups`.
    let valid = |cols: u64, c: u64| cols.saturating_sub(col(c)).min(ELEMS_PER_THREAD);

    // 1. Load the 4 chunks (zeros past the row's end). `whole` is the same
    // in every lane of the warp: its span inside the row, at aligned
    // addresses (every lane's chunk offsets are multiples of 16 bytes).
    let src = x.add((row * row_stride) as usize);
    let dst = q.add((row * cols) as usize);
    let whole = first + TOKEN_GROUP_ROW_WARP_ELEMS <= cols
        && (src.wrapping_add(first as usize) as usize) % 16 == 0
        && (dst.wrapping_add(first as usize) as usize) % 8 == 0;
    let mut raw = [T::ZERO; 4];
    unroll4!(c => {
        let at = src.add(col(c as u64) as usize);
        raw[c] = if whole { T::load_whole(at) } else { T::load(at, valid(opaque_u64(cols), c as u64)) };
    });

    // 2. Each chunk's amax (its bits: integer maxima across the lanes, one
    // conversion), then the whole amax, scale and reciprocal of this lane's
    // group.
    let mut bits = [0u32; 4];
    unroll4!(c => {
        bits[c] = T::abs_max_bits(T::fold_abs_max(0, &raw[c]));
    });
    let amax = amax_from_bits(T::abs_max_to_f32(group_amax_bits4_scatter(bits, lane, lanes)));
    let scale = group_scale(amax, eps, fp8_max, ScaleMode::from_u32(mode).unwrap_or(ScaleMode::Float));
    let recip = Divider::recip_of(scale);

    // 3. The scale, stored before the codes: the row and layout are then
    // dead during the encode (part of fitting the kernels in 64 registers).
    let groups = cols.div_ceil(GS);
    let g = w * (TOKEN_GROUP_ROW_WARP_ELEMS / GS) + ((lane % lanes) / quarter * groups_per_instr + lane / lanes) as u64;
    if lane % quarter == 0 && g < groups {
        store_scale(scales, layout, row, g, rows, groups, scale);
    }

    // 4. Each chunk's codes, stored, with its group's quantizer rebuilt from
    // the scale and reciprocal of the first lane holding the group, the
    // division path chosen for the whole warp by vote
    // (`quantize4_scattered`).
    let store = |c: usize, codes: u64| {
        let at = dst.add(col(c as u64) as usize);
        if whole {
            store_whole(at, codes);
        } else {
            store_chunk(at, codes, valid(opaque_u64(cols), c as u64));
        }
    };
    quantize4_scattered(format, fp8_max, scale, recip, lane, lanes, |c| T::unpack(&raw[c]), store);
}

macro_rules! row_entry {
    ($($name:ident: $t:ident, $format:ident, $gs:literal;)*) => {$(
        /// Kernel entry point, whole warps along one row; see the row
        /// kernels' section of the module.
        ///
        /// # Safety
        /// Launched by `quant-host` with checked parameters.
        #[no_mangle]
        pub unsafe extern "ptx-kernel" fn $name(x: *const $t, q: *mut u8, scales: *mut f32, p: TokenGroupParams) {
            crate::instr::grid_launch_dependents();
            quantize_row_groups::<$t, $gs>(Fp8Format::$format, x, q, scales, p)
        }
    )*};
}

// The row entry points of `crate::abi`'s list.
token_group_row_kernels!(row_entry);
