//! Kernel pieces the GEMMs share: the dynamic shared memory's element type
//! and the output element types of C with their stores (plain for the
//! `mma.sync` GEMM and the split-K reduction, predicated for the `wgmma`
//! epilogue), and the quad transpose of that epilogue's 16-byte stores.

use crate::instr::bf16x2;
use crate::instr::store::{st_global_bf16x2, st_global_bf16x2_if, st_global_f32x2, st_global_f32x2_if};

/// The dynamic shared memory's element type: 16-byte alignment for `cp.async`
/// and `ldmatrix` rows.
#[repr(C, align(16))]
pub(crate) struct Align16([u8; 16]);

/// An output element type of C.
pub trait Out {
    /// Stores one value.
    ///
    /// # Safety
    /// `c.add(i)` is in bounds.
    unsafe fn store1(c: *mut Self, i: u64, v: f32);
    /// Stores two adjacent values.
    ///
    /// # Safety
    /// `c.add(i)` and `c.add(i + 1)` are in bounds and `c.add(i)` is aligned
    /// to twice the element size.
    unsafe fn store2(c: *mut Self, i: u64, v0: f32, v1: f32);
}

/// bf16 output, stored as bits.
#[derive(Clone, Copy)]
#[repr(transparent)]
pub struct Bf16Out(pub u16);

impl Out for Bf16Out {
    #[inline(always)]
    unsafe fn store1(c: *mut Self, i: u64, v: f32) {
        (c as *mut u16).add(i as usize).write(bf16x2(v, 0.0) as u16);
    }
    #[inline(always)]
    unsafe fn store2(c: *mut Self, i: u64, v0: f32, v1: f32) {
        ((c as *mut u16).add(i as usize) as *mut u32).write(bf16x2(v0, v1));
    }
}

impl Out for f32 {
    #[inline(always)]
    unsafe fn store1(c: *mut Self, i: u64, v: f32) {
        c.add(i as usize).write(v);
    }
    #[inline(always)]
    unsafe fn store2(c: *mut Self, i: u64, v0: f32, v1: f32) {
        #[repr(C, align(8))]
        struct F2([f32; 2]);
        (c.add(i as usize) as *mut F2).write(F2([v0, v1]));
    }
}

/// Stores of C as predicated instructions rather than branches: a
/// thread-dependent branch anywhere a `wgmma` may be in flight makes ptxas
/// serialise them all (C7518), so the epilogue never branches on bounds.
pub trait PredStore: Out + Sized {
    /// Stores `(v0, v1)` at `(row, col)`, `(row, col + 1)` of an `[m, n]` C,
    /// each element only where it is inside C; as one paired store when
    /// `pair_ok` (even N, aligned base) and both are inside.
    ///
    /// # Safety
    /// `c` points at an `[m, n]` C.
    #[allow(clippy::too_many_arguments)]
    unsafe fn store_pair_if(c: *mut Self, m: u32, n: u32, row: u32, col: u32, v0: f32, v1: f32, pair_ok: bool);

    /// Stores `v` at `(row, col)` of a C of `n` columns where `keep` (a
    /// predicated store: nothing is written, or addressed, otherwise).
    ///
    /// # Safety
    /// With `keep`, `(row, col)` is inside C.
    unsafe fn store_one_if(c: *mut Self, n: u32, row: u32, col: u32, v: f32, keep: bool);

    /// Stores `(v0, v1)` at `p`, `p + 1` as one paired store.
    ///
    /// # Safety
    /// Both elements are inside C and `p` is aligned to two elements.
    unsafe fn store_pair(p: *mut Self, v0: f32, v1: f32);

    /// Whether the epilogue packs a pair into one 32-bit word
    /// ([`Self::pack`]) and stores rows of 8 elements as 16 bytes
    /// (`instr::store::st_global16`) after a transpose within each quad of lanes.
    const PACKED: bool;

    /// `(v0, v1)` as one 32-bit word (bf16x2, round to nearest even).
    fn pack(v0: f32, v1: f32) -> u32;
}

/// The 4 x 4 transpose of 32-bit words within each quad of lanes (lanes
/// `4 i ..`, `quad` = lane % 4): lane `q` gives `v[j]` and gets back `w[i]`
/// = lane `i`'s `v[q]`. Two butterfly rounds (2, then 1), each swapping the
/// off-diagonal halves of 2 x 2 blocks: 4 shuffles, no branches. Every lane
/// of the warp must call it.
#[inline(always)]
pub fn quad_transpose(mut v: [u32; 4], quad: u32) -> [u32; 4] {
    let round = |v: &mut [u32; 4], mask: u32, pairs: [(usize, usize); 2]| {
        let high = quad & mask != 0;
        for (j, k) in pairs {
            let send = if high { v[j] } else { v[k] };
            let got = crate::instr::shfl_xor(f32::from_bits(send), mask).to_bits();
            if high {
                v[j] = got;
            } else {
                v[k] = got;
            }
        }
    };
    round(&mut v, 2, [(0, 2), (1, 3)]);
    round(&mut v, 1, [(0, 1), (2, 3)]);
    v
}

/// The predicates of a pair store: `(pair, first alone, second alone)`.
#[inline(always)]
fn pair_predicates(m: u32, n: u32, row: u32, col: u32, pair_ok: bool) -> (u32, u32, u32) {
    let inside = row < m;
    let (c0, c1) = (inside && col < n, inside && col + 1 < n);
    let pair = c1 && pair_ok;
    (pair as u32, (c0 && !pair) as u32, (c1 && !pair) as u32)
}

impl PredStore for Bf16Out {
    const PACKED: bool = true;

    #[inline(always)]
    fn pack(v0: f32, v1: f32) -> u32 {
        bf16x2(v0, v1)
    }

    #[inline(always)]
    unsafe fn store_pair(p: *mut Self, v0: f32, v1: f32) {
        st_global_bf16x2(p, v0, v1);
    }

    #[inline(always)]
    unsafe fn store_pair_if(c: *mut Self, m: u32, n: u32, row: u32, col: u32, v0: f32, v1: f32, pair_ok: bool) {
        let (pair, s0, s1) = pair_predicates(m, n, row, col, pair_ok);
        let addr = c as u64 + 2 * (row as u64 * n as u64 + col as u64);
        st_global_bf16x2_if(addr, pair, s0, s1, v0, v1);
    }

    #[inline(always)]
    unsafe fn store_one_if(c: *mut Self, n: u32, row: u32, col: u32, v: f32, keep: bool) {
        let addr = c as u64 + 2 * (row as u64 * n as u64 + col as u64);
        st_global_bf16x2_if(addr, 0, keep as u32, 0, v, 0.0);
    }
}

impl PredStore for f32 {
    // An f32 pair is already 8 bytes: stored as it is.
    const PACKED: bool = false;

    #[inline(always)]
    fn pack(v0: f32, _v1: f32) -> u32 {
        v0.to_bits()
    }

    #[inline(always)]
    unsafe fn store_pair(p: *mut Self, v0: f32, v1: f32) {
        st_global_f32x2(p, v0, v1);
    }

    #[inline(always)]
    unsafe fn store_pair_if(c: *mut Self, m: u32, n: u32, row: u32, col: u32, v0: f32, v1: f32, pair_ok: bool) {
        let (pair, s0, s1) = pair_predicates(m, n, row, col, pair_ok);
        let addr = c as u64 + 4 * (row as u64 * n as u64 + col as u64);
        st_global_f32x2_if(addr, pair, s0, s1, v0, v1);
    }

    #[inline(always)]
    unsafe fn store_one_if(c: *mut Self, n: u32, row: u32, col: u32, v: f32, keep: bool) {
        let addr = c as u64 + 4 * (row as u64 * n as u64 + col as u64);
        st_global_f32x2_if(addr, 0, keep as u32, 0, v, 0.0);
    }
}
