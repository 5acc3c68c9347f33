//! `per_block_quant_fp8`: one f32 scale per `BN x BK` block of an `[N, K]`
//! weight, one fp8 code per element.
//!
//! Tiling. One CTA of 512 threads per scale block; the grid is 2-D, x over
//! block columns and y over block rows, so a CTA finds its block without a
//! division. The CTA covers its block in 128 x 128 tiles. In a tile, thread
//! `t` owns the 8-element chunk at column `(t % 16) * 8` of the 4 rows
//! `t / 16 + 32 i`: each warp reads two whole 128-element rows per step
//! (fully coalesced 16-byte loads), and a thread holds 32 values (16
//! registers of bf16).
//!
//! The block's amax is reduced in three steps: over the thread's 32 values,
//! across the warp with butterfly shuffles, and across the 16 warps through
//! 64 bytes of shared memory and one barrier. Blocks that fit in one tile
//! (128 x 128, the DeepSeek default, and anything smaller) keep their values
//! in registers between the amax and the encoding: the weight is read from
//! memory exactly once. Larger blocks take a second pass over their tiles
//! (served mostly from L2).
//!
//! Tails: rows and columns past the block's end (N and K tails) load as
//! zeros, which leaves the amax unchanged, and are not stored.

use super::chunk::{store_chunk, Load8, ELEMS_PER_THREAD};
use super::{decode_mode, Bf16, GroupQuantizer, F16};
use crate::geometry::BLOCK_QUANT_THREADS;
use crate::gpu::{block_index_xy, dynamic_shared, shfl_xor, sync_threads, thread_index};
use crate::scale::{group_scale, nan_max};
use crate::Fp8Format;

/// Edge of the square tile a CTA covers per step.
const TILE: u64 = 128;
/// Threads across a tile row: `TILE / 8`.
const CHUNKS_PER_ROW: u64 = TILE / ELEMS_PER_THREAD;
/// Rows one step of the CTA covers.
const ROWS_PER_STEP: u64 = BLOCK_QUANT_THREADS as u64 / CHUNKS_PER_ROW;
/// Row chunks each thread holds: `TILE / ROWS_PER_STEP`.
const ROW_CHUNKS: usize = (TILE / ROWS_PER_STEP) as usize;
const _: () = assert!(ROW_CHUNKS == 4, "the loops over row chunks are unroll4!");
/// Warps per CTA; also the f32 count of shared memory the host provides.
pub const WARPS: usize = BLOCK_QUANT_THREADS as usize / 32;

/// Where a thread's chunks of one tile are and how many are in bounds.
#[derive(Clone, Copy)]
struct TileSlice {
    /// Row of the thread's first chunk.
    row0: u64,
    /// Column of the thread's chunks.
    col: u64,
    /// One past the block's last row.
    row_end: u64,
    /// Elements of each chunk inside the block (0 to 8).
    valid: u64,
}

impl TileSlice {
    #[inline(always)]
    fn new(tile_row: u64, tile_col: u64, row_end: u64, col_end: u64) -> Self {
        let t = thread_index() as u64;
        let col = tile_col + (t % CHUNKS_PER_ROW) * ELEMS_PER_THREAD;
        let valid = col_end.saturating_sub(col).min(ELEMS_PER_THREAD);
        Self { row0: tile_row + t / CHUNKS_PER_ROW, col, row_end, valid }
    }

    /// Row of chunk `i`, if it is inside the block.
    #[inline(always)]
    fn row(&self, i: usize) -> Option<u64> {
        let row = self.row0 + ROWS_PER_STEP * i as u64;
        (row < self.row_end && self.valid > 0).then_some(row)
    }
}

#[inline(always)]
unsafe fn load_tile<T: Load8>(w: *const T, row_stride: u64, s: TileSlice) -> [T::Raw; ROW_CHUNKS] {
    let mut v = [T::ZERO; ROW_CHUNKS];
    unroll4!(i => {
        if let Some(row) = s.row(i) {
            v[i] = T::load(w.add((row * row_stride + s.col) as usize), s.valid);
        }
    });
    v
}

#[inline(always)]
fn tile_amax<T: Load8>(v: &[T::Raw; ROW_CHUNKS]) -> f32 {
    let mut bits = 0u32;
    unroll4!(i => {
        bits = bits.max(T::abs_max_bits(&v[i]));
    });
    T::abs_bits_to_f32(bits)
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn store_tile<T: Load8>(
    q: *mut u8,
    cols: u64,
    s: TileSlice,
    v: &[T::Raw; ROW_CHUNKS],
    quantizer: GroupQuantizer,
) {
    unroll4!(i => {
        if let Some(row) = s.row(i) {
            let codes = quantizer.quantize8(&T::unpack(&v[i]));
            store_chunk(q.add((row * cols + s.col) as usize), codes, s.valid);
        }
    });
}

/// The amax over the whole CTA. Every thread of the CTA must call it.
#[inline(always)]
unsafe fn cta_amax(local: f32) -> f32 {
    let mut amax = local;
    let mut offset = 16;
    while offset > 0 {
        amax = nan_max(amax, shfl_xor(amax, offset));
        offset /= 2;
    }
    let partials = dynamic_shared::<f32>();
    let t = thread_index() as usize;
    if t % 32 == 0 {
        partials.add(t / 32).write(amax);
    }
    sync_threads();
    let mut total = partials.read();
    let mut w = 1;
    while w < WARPS {
        total = nan_max(total, partials.add(w).read());
        w += 1;
    }
    total
}

/// The per-thread work of the kernel, top to bottom.
///
/// # Safety
/// The host has checked: `w` holds `rows` rows of `row_stride >= cols`
/// elements, `q` holds `rows * cols` bytes, `scales` holds one f32 per block,
/// the grid is `(ceil(cols / bk), ceil(rows / bn))` blocks of 512 threads with
/// `WARPS * 4` bytes of dynamic shared memory.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn quantize_block<T: Load8>(
    format: Fp8Format,
    w: *const T,
    q: *mut u8,
    scales: *mut f32,
    rows: u64,
    cols: u64,
    row_stride: u64,
    bn: u64,
    bk: u64,
    eps: f32,
    fp8_max: f32,
    mode: u32,
) {
    let (bx, by) = block_index_xy();
    let (row_begin, col_begin) = (by as u64 * bn, bx as u64 * bk);
    let row_end = (row_begin + bn).min(rows);
    let col_end = (col_begin + bk).min(cols);
    let mode = decode_mode(mode);

    if bn <= TILE && bk <= TILE {
        // One tile: load once, keep the values in registers.
        let slice = TileSlice::new(row_begin, col_begin, row_end, col_end);
        let v = load_tile(w, row_stride, slice);
        let scale = group_scale(cta_amax(tile_amax::<T>(&v)), eps, fp8_max, mode);
        store_tile::<T>(q, cols, slice, &v, GroupQuantizer::new(format, scale, fp8_max));
        if thread_index() == 0 {
            scales.add((by as u64 * cols.div_ceil(bk) + bx as u64) as usize).write(scale);
        }
        return;
    }

    // Larger blocks: a pass for the amax, a second to encode.
    let mut amax = 0f32;
    let mut tr = row_begin;
    while tr < row_end {
        let mut tc = col_begin;
        while tc < col_end {
            let v = load_tile(w, row_stride, TileSlice::new(tr, tc, row_end, col_end));
            amax = nan_max(amax, tile_amax::<T>(&v));
            tc += TILE;
        }
        tr += TILE;
    }
    let scale = group_scale(cta_amax(amax), eps, fp8_max, mode);
    let mut tr = row_begin;
    while tr < row_end {
        let mut tc = col_begin;
        while tc < col_end {
            let slice = TileSlice::new(tr, tc, row_end, col_end);
            let v = load_tile(w, row_stride, slice);
            store_tile::<T>(q, cols, slice, &v, GroupQuantizer::new(format, scale, fp8_max));
            tc += TILE;
        }
        tr += TILE;
    }
    if thread_index() == 0 {
        scales.add((by as u64 * cols.div_ceil(bk) + bx as u64) as usize).write(scale);
    }
}

macro_rules! entry {
    ($($name:ident: $t:ty, $format:ident;)*) => {$(
        /// Kernel entry point; see the module documentation.
        ///
        /// # Safety
        /// Launched by `quant-host` with checked arguments.
        #[no_mangle]
        #[allow(clippy::too_many_arguments)]
        pub unsafe extern "ptx-kernel" fn $name(
            w: *const $t,
            q: *mut u8,
            scales: *mut f32,
            rows: u64,
            cols: u64,
            row_stride: u64,
            bn: u64,
            bk: u64,
            eps: f32,
            fp8_max: f32,
            mode: u32,
        ) {
            quantize_block::<$t>(
                Fp8Format::$format, w, q, scales, rows, cols, row_stride, bn, bk, eps, fp8_max, mode,
            )
        }
    )*};
}

entry! {
    block_quant_bf16_e4m3fn: Bf16, E4M3Fn;
    block_quant_bf16_e4m3fnuz: Bf16, E4M3Fnuz;
    block_quant_f16_e4m3fn: F16, E4M3Fn;
    block_quant_f16_e4m3fnuz: F16, E4M3Fnuz;
    block_quant_f32_e4m3fn: f32, E4M3Fn;
    block_quant_f32_e4m3fnuz: f32, E4M3Fnuz;
}
