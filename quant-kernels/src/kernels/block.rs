//! `per_block_quant_fp8`: one f32 scale per `BN x BK` block of an `[N, K]`
//! weight, one fp8 code per element.
//!
//! Tiling. CTAs of 512 threads, two per SM (at most 64 registers each),
//! persistent: the grid has two CTAs per multiprocessor and CTA `c` takes
//! the scale blocks `c, c + grid, ...` in row-major block order. A CTA
//! covers its block in 128 x 128 tiles. In a tile, thread `t` owns the
//! 8-element chunk at column `(t % 16) * 8` of the 4 rows `t / 16 + 32 i`:
//! each warp reads two whole 128-element rows per step (fully coalesced
//! 16-byte accesses).
//!
//! Staged path (one-tile blocks, the DeepSeek 128 x 128 default, with
//! 16-byte aligned chunks): each thread copies its chunks of the blocks
//! ahead into a ring of shared-memory stages with `cp.async` (chunks cut by
//! a tail are loaded and stored directly, zeros past the block),
//! `stages - 1` blocks ahead, so the
//! weight is read from memory once and the next blocks' loads are in flight
//! while a block is reduced and encoded. A thread reads back only the
//! chunks it copied itself, one at a time (few registers): once for the
//! amax, once to encode. No barrier is needed for the data.
//!
//! Other blocks (wider than a tile, widths not a multiple of 8, unaligned
//! rows) take two passes over global memory, one for the amax and one to
//! encode (its reads served mostly from L2).
//!
//! The block's amax is reduced in three steps: over the thread's chunks,
//! across the warp with butterfly shuffles, and across the 16 warps through
//! shared memory and one barrier (two alternating sets of 16 partials, so
//! the next block's reduction needs no barrier of its own).
//!
//! Tails: rows and columns past the block's end (N and K tails) read as
//! zeros, which leaves the amax unchanged, and are not stored.

use super::chunk::{store_chunk, store_whole, Load8, ELEMS_PER_THREAD};
use super::{Bf16, GroupQuantizer, F16, F32};
use crate::abi::BlockParams;
use crate::geometry::{block_quant_stage_bytes, BLOCK_QUANT_SMEM_HEADER, BLOCK_QUANT_THREADS, BLOCK_QUANT_TILE};
use crate::instr::{
    block_index_and_grid, cp_async_commit, cp_async_wait, dynamic_shared, ld_shared16, shared_addr, shfl_xor,
    sync_threads, thread_index,
};
use crate::scale::{group_scale, nan_max};
use crate::{Fp8Format, ScaleMode};

/// Edge of the square tile a CTA covers per step.
const TILE: u64 = BLOCK_QUANT_TILE;
/// Threads across a tile row: `TILE / 8`.
const CHUNKS_PER_ROW: u64 = TILE / ELEMS_PER_THREAD;
/// Rows one step of the CTA covers.
const ROWS_PER_STEP: u64 = BLOCK_QUANT_THREADS as u64 / CHUNKS_PER_ROW;
/// Row chunks each thread holds: `TILE / ROWS_PER_STEP`.
const ROW_CHUNKS: usize = (TILE / ROWS_PER_STEP) as usize;
const _: () = assert!(ROW_CHUNKS == 4, "the loops over row chunks are unroll4!");
/// Warps per CTA; the host provides `2 * WARPS` f32 of shared memory.
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

/// Shared address of piece 0 of the thread's chunk `i` in the stage at
/// `stage`: piece `p` of chunk `i` of thread `t` is the 16 bytes at
/// `((i * PIECES + p) * THREADS + t) * 16`, so a warp's accesses are
/// consecutive 16-byte words (no bank conflicts).
#[inline(always)]
fn staged_chunk<T: Load8>(stage: u32, i: usize) -> (u32, u32) {
    let stride = BLOCK_QUANT_THREADS * 16;
    (stage + (i as u32 * T::PIECES * BLOCK_QUANT_THREADS + thread_index()) * 16, stride)
}

/// Puts the thread's chunks of a tile into the stage at `stage` (whole
/// chunks by asynchronous copies, which the caller commits as one group;
/// rows past the block as zeros).
#[inline(always)]
unsafe fn stage_tile<T: Load8>(w: *const T, row_stride: u64, s: TileSlice, stage: u32) {
    unroll4!(i => {
        let (dst, stride) = staged_chunk::<T>(stage, i);
        match s.row(i) {
            Some(row) => T::stage(dst, stride, w.add((row * row_stride + s.col) as usize), s.valid),
            None => T::stage(dst, stride, w, 0),
        }
    });
}

/// Folds `max |x|` over the thread's chunks of a tile, read from global
/// memory one chunk at a time, into the accumulator `bits`
/// ([`Load8::fold_abs_max`]).
#[inline(always)]
unsafe fn amax_bits_global<T: Load8>(mut bits: u32, w: *const T, row_stride: u64, s: TileSlice) -> u32 {
    unroll4!(i => {
        if let Some(row) = s.row(i) {
            bits = T::fold_abs_max(bits, &T::load(w.add((row * row_stride + s.col) as usize), s.valid));
        }
    });
    bits
}

/// Encodes and stores the thread's chunks of a tile, read from global memory.
#[inline(always)]
unsafe fn encode_global<T: Load8>(
    w: *const T,
    row_stride: u64,
    q: *mut u8,
    cols: u64,
    s: TileSlice,
    g: GroupQuantizer,
) {
    unroll4!(i => {
        if let Some(row) = s.row(i) {
            let raw = T::load(w.add((row * row_stride + s.col) as usize), s.valid);
            store_chunk(q.add((row * cols + s.col) as usize), g.quantize8(&T::unpack(&raw)), s.valid);
        }
    });
}

/// Where a thread's chunks of a whole 128 x 128 block lie: the block's
/// first element and the thread's offsets in it, so that chunk `i` is at
/// `base + i * step` in the input (and `out + i * out_step` in the codes)
/// with no bounds to test.
#[derive(Clone, Copy)]
struct WholeTile {
    /// Offset of the thread's chunk 0 in the input, in elements.
    src: u64,
    /// Offset of the thread's chunk 0 in the codes, in bytes.
    dst: u64,
}

impl WholeTile {
    #[inline(always)]
    fn new(brow: u64, bcol: u64, row_stride: u64, cols: u64) -> Self {
        let t = thread_index() as u64;
        let (row, col) = (brow * TILE + t / CHUNKS_PER_ROW, bcol * TILE + (t % CHUNKS_PER_ROW) * ELEMS_PER_THREAD);
        Self { src: row * row_stride + col, dst: row * cols + col }
    }
}

/// [`stage_tile`] for a whole block inside the weight: four 16-byte
/// copies (eight for f32), no row or column tests.
#[inline(always)]
unsafe fn stage_whole<T: Load8>(w: *const T, row_stride: u64, tile: WholeTile, stage: u32) {
    let step = ROWS_PER_STEP * row_stride;
    unroll4!(i => {
        let (dst, stride) = staged_chunk::<T>(stage, i);
        T::stage(dst, stride, w.add((tile.src + i as u64 * step) as usize), ELEMS_PER_THREAD);
    });
}

/// [`encode_staged`] for a whole block inside the weight whose code rows
/// are 8-byte aligned (`cols % 8 == 0`): 8-byte stores, no tests.
///
/// E4M3FNUZ tests the quantizer's path once for the 4 chunks (the usual
/// one, the Markstein division without a clamp, is then straight-line
/// code) instead of per chunk: 5-11% faster on the H200's large weights.
/// The same for E4M3FN measured 6-9% slower there (session 12, device
/// calls 3 and 4; bench/NOTES-quant.md), so it keeps the per-chunk test.
#[inline(always)]
unsafe fn encode_staged_whole<T: Load8>(stage: u32, q: *mut u8, cols: u64, tile: WholeTile, g: GroupQuantizer) {
    let step = ROWS_PER_STEP * cols;
    if g.format() == Fp8Format::E4M3Fnuz && g.is_plain() {
        unroll4!(i => {
            let (src, stride) = staged_chunk::<T>(stage, i);
            let raw = T::read_staged(src, stride);
            store_whole(q.add((tile.dst + i as u64 * step) as usize), g.quantize8_plain(&T::unpack(&raw)));
        });
    } else {
        unroll4!(i => {
            let (src, stride) = staged_chunk::<T>(stage, i);
            let raw = T::read_staged(src, stride);
            store_whole(q.add((tile.dst + i as u64 * step) as usize), g.quantize8(&T::unpack(&raw)));
        });
    }
}

/// The scale blocks a CTA visits, `first, first + grid, ...` in row-major
/// order, as block coordinates advanced without a division per step
/// (64-bit divisions per block and thread were a large part of the
/// kernel's instructions).
#[derive(Clone, Copy)]
struct BlockCursor {
    index: u64,
    brow: u64,
    bcol: u64,
}

/// How far a [`BlockCursor`] moves per step: `grid` blocks, as rows and
/// columns of the block grid (`per_row` blocks per row).
#[derive(Clone, Copy)]
struct CursorStep {
    grid: u64,
    rows: u64,
    cols: u64,
    per_row: u64,
}

impl CursorStep {
    #[inline(always)]
    fn new(grid: u64, per_row: u64) -> Self {
        Self { grid, rows: grid / per_row, cols: grid % per_row, per_row }
    }

    #[inline(always)]
    fn start(&self, index: u64) -> BlockCursor {
        BlockCursor { index, brow: index / self.per_row, bcol: index % self.per_row }
    }

    #[inline(always)]
    fn advance(&self, c: BlockCursor) -> BlockCursor {
        let (mut brow, mut bcol) = (c.brow + self.rows, c.bcol + self.cols);
        if bcol >= self.per_row {
            bcol -= self.per_row;
            brow += 1;
        }
        BlockCursor { index: c.index + self.grid, brow, bcol }
    }
}

/// `max |x|` over the thread's staged chunks (rows past the block were
/// zero-filled), as a [`Load8::fold_abs_max`] accumulator.
#[inline(always)]
unsafe fn amax_bits_staged<T: Load8>(stage: u32) -> u32 {
    let mut bits = 0u32;
    unroll4!(i => {
        let (src, stride) = staged_chunk::<T>(stage, i);
        bits = T::fold_abs_max(bits, &T::read_staged(src, stride));
    });
    bits
}

/// Encodes and stores the thread's staged chunks of a tile.
#[inline(always)]
unsafe fn encode_staged<T: Load8>(stage: u32, q: *mut u8, cols: u64, s: TileSlice, g: GroupQuantizer) {
    unroll4!(i => {
        if let Some(row) = s.row(i) {
            let (src, stride) = staged_chunk::<T>(stage, i);
            let raw = T::read_staged(src, stride);
            store_chunk(q.add((row * cols + s.col) as usize), g.quantize8(&T::unpack(&raw)), s.valid);
        }
    });
}

/// The amax over the whole CTA, through the set `set` (0 or 1) of shared
/// partials. Every thread of the CTA must call it, alternating sets between
/// calls: a set is rewritten only after the barrier of the call in between,
/// which every thread reaches after its reads of that set.
#[inline(always)]
unsafe fn cta_amax(local: f32, set: usize) -> f32 {
    let mut amax = local;
    let mut offset = 16;
    while offset > 0 {
        amax = nan_max(amax, shfl_xor(amax, offset));
        offset /= 2;
    }
    let partials = dynamic_shared::<f32>().add(set * WARPS);
    let t = thread_index() as usize;
    if t % 32 == 0 {
        partials.add(t / 32).write(amax);
    }
    sync_threads();
    // The 16 partials as four 16-byte shared loads (the set is 64 bytes
    // into the 16-byte aligned dynamic shared memory).
    let base = shared_addr(partials);
    let mut total = f32::from_bits(ld_shared16(base)[0]);
    let mut v = 0;
    while v < WARPS / 4 {
        let words = ld_shared16(base + 16 * v as u32);
        let mut j = 0;
        while j < 4 {
            total = nan_max(total, f32::from_bits(words[j]));
            j += 1;
        }
        v += 1;
    }
    total
}

const _: () = assert!(WARPS % 4 == 0, "cta_amax reads the partials four at a time");

/// Where a block is and what it covers.
#[derive(Clone, Copy)]
struct Block {
    /// Index of its scale (row-major over the block grid).
    index: u64,
    row_begin: u64,
    row_end: u64,
    col_begin: u64,
    col_end: u64,
}

impl Block {
    #[inline(always)]
    fn new(index: u64, per_row: u64, rows: u64, cols: u64, bn: u64, bk: u64) -> Self {
        let (row_begin, col_begin) = ((index / per_row) * bn, (index % per_row) * bk);
        Self { index, row_begin, row_end: (row_begin + bn).min(rows), col_begin, col_end: (col_begin + bk).min(cols) }
    }

    /// The thread's part of the block's first (for one-tile blocks, only) tile.
    #[inline(always)]
    fn first_tile(&self) -> TileSlice {
        TileSlice::new(self.row_begin, self.col_begin, self.row_end, self.col_end)
    }
}

/// The per-thread work of the kernel, top to bottom.
///
/// # Safety
/// The host has checked (see [`BlockParams`]): `w` holds `rows` rows of `row_stride >= cols`
/// elements, `q` holds `rows * cols` bytes, `scales` holds one f32 per block, `blocks_per_row` and `blocks` are
/// the block grid's (`ceil(cols / bk)` and `ceil(rows / bn)` times that),
/// the grid is 1-D with 512 threads per CTA. Dynamic shared memory:
/// `BLOCK_QUANT_SMEM_HEADER` bytes, plus `stages` stages of
/// `block_quant_stage_bytes(size_of::<T>())` when `stages > 0`, which the
/// host allows only for one-tile blocks whose width is a multiple of 8 and
/// 16-byte aligned rows (`w` and `row_stride * size_of::<T>()`), so every
/// chunk starts 16-byte aligned; at most `MAX_STAGES`.
#[inline(always)]
unsafe fn quantize_block<T: Load8>(format: Fp8Format, w: *const T, q: *mut u8, scales: *mut f32, p: BlockParams) {
    let BlockParams { rows, cols, row_stride, bn, bk, blocks_per_row, blocks, eps, fp8_max, mode, stages } = p;
    let (first, grid) = block_index_and_grid();
    let (first, grid) = (first as u64, grid as u64);
    let mode = ScaleMode::from_u32(mode).unwrap_or(ScaleMode::Float);
    if first >= blocks {
        return;
    }
    let mut set = 0;

    if stages > 0 {
        // One tile per block, copied asynchronously into a ring of `stages`
        // shared-memory stages `stages - 1` blocks ahead (each thread copies
        // and later reads only its own chunks: no barrier needed for them).
        // Whole 128 x 128 blocks inside the weight (all but the N and K
        // edges for the default block size) copy, encode and store without
        // a bounds test; `whole_tiles` is uniform over the launch.
        let base = shared_addr(dynamic_shared::<u8>()) + BLOCK_QUANT_SMEM_HEADER as u32;
        let stage_bytes = block_quant_stage_bytes(core::mem::size_of::<T>() as u64) as u32;
        let step = CursorStep::new(grid, blocks_per_row);
        let whole_tiles = bn == TILE && bk == TILE && cols % 8 == 0 && (q as usize) % 8 == 0;
        let interior = |c: BlockCursor| whole_tiles && (c.brow + 1) * TILE <= rows && (c.bcol + 1) * TILE <= cols;
        let stage_block = |c: BlockCursor, stage: u32| {
            if interior(c) {
                stage_whole(w, row_stride, WholeTile::new(c.brow, c.bcol, row_stride, cols), stage);
            } else {
                stage_tile(w, row_stride, Block::new(c.index, blocks_per_row, rows, cols, bn, bk).first_tile(), stage);
            }
        };
        let mut ahead = step.start(first);
        let mut s = 0;
        while s + 1 < stages {
            if ahead.index < blocks {
                stage_block(ahead, base + s * stage_bytes);
            }
            cp_async_commit();
            ahead = step.advance(ahead);
            s += 1;
        }
        let (mut cur_block, mut cur) = (step.start(first), 0);
        while cur_block.index < blocks {
            // Refill the stage read in the previous iteration (by this thread
            // only), then wait for the current block's group. Every thread
            // commits a group per iteration, empty or not, so the count of
            // groups in flight is the same for all.
            let refill = (cur + stages - 1) % stages;
            if ahead.index < blocks {
                stage_block(ahead, base + refill * stage_bytes);
            }
            cp_async_commit();
            ahead = step.advance(ahead);
            cp_async_wait(stages - 1);
            let stage = base + cur * stage_bytes;
            let amax = T::abs_max_to_f32(amax_bits_staged::<T>(stage));
            let scale = group_scale(cta_amax(amax, set), eps, fp8_max, mode);
            set ^= 1;
            let g = GroupQuantizer::new(format, scale, fp8_max);
            if interior(cur_block) {
                encode_staged_whole::<T>(
                    stage,
                    q,
                    cols,
                    WholeTile::new(cur_block.brow, cur_block.bcol, row_stride, cols),
                    g,
                );
            } else {
                let block = Block::new(cur_block.index, blocks_per_row, rows, cols, bn, bk);
                encode_staged::<T>(stage, q, cols, block.first_tile(), g);
            }
            if thread_index() == 0 {
                scales.add(cur_block.index as usize).write(scale);
            }
            cur_block = step.advance(cur_block);
            cur = (cur + 1) % stages;
        }
        return;
    }

    // Other inputs (blocks wider than a tile or not a multiple of 8, rows
    // not 16-byte aligned): a pass over the block for the amax, a second
    // to encode (its reads served mostly from L2).
    let mut index = first;
    while index < blocks {
        let b = Block::new(index, blocks_per_row, rows, cols, bn, bk);
        let mut bits = 0u32;
        let mut tr = b.row_begin;
        while tr < b.row_end {
            let mut tc = b.col_begin;
            while tc < b.col_end {
                bits = amax_bits_global(bits, w, row_stride, TileSlice::new(tr, tc, b.row_end, b.col_end));
                tc += TILE;
            }
            tr += TILE;
        }
        let scale = group_scale(cta_amax(T::abs_max_to_f32(bits), set), eps, fp8_max, mode);
        set ^= 1;
        let g = GroupQuantizer::new(format, scale, fp8_max);
        let mut tr = b.row_begin;
        while tr < b.row_end {
            let mut tc = b.col_begin;
            while tc < b.col_end {
                encode_global(w, row_stride, q, cols, TileSlice::new(tr, tc, b.row_end, b.col_end), g);
                tc += TILE;
            }
            tr += TILE;
        }
        if thread_index() == 0 {
            scales.add(index as usize).write(scale);
        }
        index += grid;
    }
}

macro_rules! entry {
    ($($name:ident: $t:ident, $format:ident;)*) => {$(
        /// Kernel entry point; see the module documentation.
        ///
        /// # Safety
        /// Launched by `quant-host` with checked parameters.
        #[no_mangle]
        pub unsafe extern "ptx-kernel" fn $name(w: *const $t, q: *mut u8, scales: *mut f32, p: BlockParams) {
            quantize_block::<$t>(Fp8Format::$format, w, q, scales, p)
        }
    )*};
}

// The entry points of `crate::abi`'s list, which also names them for the host.
block_kernels!(entry);
