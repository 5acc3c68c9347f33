//! The benchmark's reference kernels: a copy, a read and an empty kernel.
//!
//! A quantizer reads its input once and writes its codes once, so what an
//! SM kernel can move through memory is its honest ceiling. `sm_copy16`
//! moves bytes the way the quantizers do (16-byte loads through the
//! read-only path with the `.L2::256B` hint, 16-byte stores, every load of a
//! thread issued before its first store), timed in the same CUDA-graph
//! harness: the benchmark reports every quantizer against this copy of the
//! same bytes as well as against the driver's memcpy. `sm_read16` reads
//! bytes the same way and writes nothing: the floor of a decode GEMM, which
//! is a read of its weights. `bench_empty` does nothing: its time per
//! launch in a graph is the launch floor, what any kernel costs before it
//! touches memory.

use crate::abi::CopyParams;
use crate::geometry::{COPY_PIECES_PER_THREAD, COPY_THREADS};
use crate::instr::store::st_global16;
use crate::instr::{block_index_and_grid, ld_global16, thread_index};

const _: () = assert!(COPY_PIECES_PER_THREAD == 4, "the loops over pieces are unroll4!");

/// The 16-byte pieces of `src` that thread `t` of CTA `b` takes, `(b *
/// PIECES + i) * THREADS + t` for `i < PIECES` (each load instruction of a
/// warp reads 512 consecutive bytes), loaded with every load issued before
/// any use; pieces past `p.bytes / 16` read as zero. Returns the thread's
/// first piece, the count of whole pieces and the words.
///
/// # Safety
/// `src` is 16-byte aligned and holds `p.bytes` bytes.
#[inline(always)]
unsafe fn load_pieces(src: *const u8, p: CopyParams) -> (u64, u64, [[u32; 4]; COPY_PIECES_PER_THREAD as usize]) {
    let pieces = p.bytes / 16;
    let (cta, _) = block_index_and_grid();
    let t = thread_index() as u64;
    let first = cta as u64 * COPY_PIECES_PER_THREAD * COPY_THREADS as u64 + t;
    let mut w = [[0u32; 4]; COPY_PIECES_PER_THREAD as usize];
    unroll4!(i => {
        let piece = first + i as u64 * COPY_THREADS as u64;
        if piece < pieces {
            w[i] = ld_global16(src.add(16 * piece as usize));
        }
    });
    (first, pieces, w)
}

/// Copies `p.bytes` bytes from `src` to `dst`: the pieces of
/// [`load_pieces`], stored after all of a thread's loads; the bytes past
/// the last whole piece are copied one at a time by thread 0 of CTA 0.
///
/// # Safety
/// `src` and `dst` are 16-byte aligned and hold `p.bytes` bytes; they do
/// not overlap; the grid is 1-D with `COPY_THREADS` threads per CTA and
/// covers every whole piece.
#[no_mangle]
pub unsafe extern "ptx-kernel" fn sm_copy16(src: *const u8, dst: *mut u8, p: CopyParams) {
    let (first, pieces, w) = load_pieces(src, p);
    unroll4!(i => {
        let piece = first + i as u64 * COPY_THREADS as u64;
        if piece < pieces {
            st_global16(dst.add(16 * piece as usize), w[i]);
        }
    });
    let (cta, _) = block_index_and_grid();
    if cta == 0 && thread_index() == 0 {
        let mut b = pieces * 16;
        while b < p.bytes {
            dst.add(b as usize).write(src.add(b as usize).read());
            b += 1;
        }
    }
}

/// Reads `p.bytes` bytes of `src` as [`sm_copy16`] does ([`load_pieces`])
/// and folds each thread's words into one (XOR). So that the loads are
/// kept, a thread whose fold equals [`READ_NEVER`] stores it to `dst[0]`: a
/// 2^-32 event per thread on real data, harmless when it happens (any such
/// thread stores the same value). The bytes past the last whole piece are
/// not read.
///
/// # Safety
/// `src` is 16-byte aligned and holds `p.bytes` bytes; `dst` holds 4 bytes;
/// the grid is 1-D with `COPY_THREADS` threads per CTA and covers every
/// whole piece.
#[no_mangle]
pub unsafe extern "ptx-kernel" fn sm_read16(src: *const u8, dst: *mut u32, p: CopyParams) {
    let (_, _, w) = load_pieces(src, p);
    let mut x = 0u32;
    unroll4!(i => {
        x ^= w[i][0] ^ w[i][1] ^ w[i][2] ^ w[i][3];
    });
    if x == READ_NEVER {
        dst.write_volatile(x);
    }
}

/// The fold [`sm_read16`] stores (see there).
const READ_NEVER: u32 = 0x9E37_79B9;

/// Does nothing: the launch floor.
#[no_mangle]
pub extern "ptx-kernel" fn bench_empty() {}
