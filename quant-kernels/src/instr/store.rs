//! Global stores of the GEMMs' C: 16-byte and paired stores, and the
//! predicated pair stores the `wgmma` epilogue uses instead of branches
//! (a thread-dependent branch while a `wgmma` is in flight makes ptxas
//! serialise them all, C7518).

use core::arch::asm;

/// Stores the 16 bytes `w` at `p`.
///
/// # Safety
/// The 16 bytes at `p` are writable global memory, 16-byte aligned.
#[inline(always)]
pub unsafe fn st_global16<T>(p: *mut T, w: [u32; 4]) {
    asm!(
        "st.global.v4.b32 [{a}], {{{w0}, {w1}, {w2}, {w3}}};",
        a = in(reg64) p as u64, w0 = in(reg32) w[0], w1 = in(reg32) w[1], w2 = in(reg32) w[2], w3 = in(reg32) w[3],
        options(nostack),
    );
}

/// Stores `(v0, v1)` as a bf16 pair (round to nearest even) at `p`.
///
/// # Safety
/// The 4 bytes at `p` are writable global memory, 4-byte aligned.
#[inline(always)]
pub unsafe fn st_global_bf16x2<T>(p: *mut T, v0: f32, v1: f32) {
    asm!(
        "{{",
        ".reg .b32 r;",
        "cvt.rn.bf16x2.f32 r, {v1}, {v0};",
        "st.global.b32 [{a}], r;",
        "}}",
        v0 = in(reg32) v0, v1 = in(reg32) v1, a = in(reg64) p as u64,
        options(nostack),
    );
}

/// Stores `(v0, v1)` as bf16 at the global address `addr`: as one 4-byte
/// store where `pair != 0`, else `v0` where `s0 != 0` and `v1` (at
/// `addr + 2`) where `s1 != 0`; all predicated, no branch.
///
/// # Safety
/// Every element whose predicate is set is writable global memory; with
/// `pair`, `addr` is 4-byte aligned.
#[inline(always)]
pub unsafe fn st_global_bf16x2_if(addr: u64, pair: u32, s0: u32, s1: u32, v0: f32, v1: f32) {
    asm!(
        "{{",
        ".reg .pred pp, p0, p1;",
        ".reg .b32 r;",
        ".reg .b16 lo, hi;",
        "setp.ne.u32 pp, {pair}, 0;",
        "setp.ne.u32 p0, {s0}, 0;",
        "setp.ne.u32 p1, {s1}, 0;",
        "cvt.rn.bf16x2.f32 r, {v1}, {v0};",
        "mov.b32 {{lo, hi}}, r;",
        "@pp st.global.b32 [{a}], r;",
        "@p0 st.global.b16 [{a}], lo;",
        "@p1 st.global.b16 [{a}+2], hi;",
        "}}",
        pair = in(reg32) pair, s0 = in(reg32) s0, s1 = in(reg32) s1,
        v0 = in(reg32) v0, v1 = in(reg32) v1, a = in(reg64) addr,
        options(nostack),
    );
}

/// Stores `(v0, v1)` at `p` as one 8-byte store.
///
/// # Safety
/// The 8 bytes at `p` are writable global memory, 8-byte aligned.
#[inline(always)]
pub unsafe fn st_global_f32x2<T>(p: *mut T, v0: f32, v1: f32) {
    asm!("st.global.v2.f32 [{a}], {{{v0}, {v1}}};", v0 = in(reg32) v0, v1 = in(reg32) v1, a = in(reg64) p as u64, options(nostack));
}

/// [`st_global_bf16x2_if`] for f32 (`v1` at `addr + 4`; `pair` stores 8
/// bytes, 8-byte aligned).
///
/// # Safety
/// As for [`st_global_bf16x2_if`].
#[inline(always)]
pub unsafe fn st_global_f32x2_if(addr: u64, pair: u32, s0: u32, s1: u32, v0: f32, v1: f32) {
    asm!(
        "{{",
        ".reg .pred pp, p0, p1;",
        "setp.ne.u32 pp, {pair}, 0;",
        "setp.ne.u32 p0, {s0}, 0;",
        "setp.ne.u32 p1, {s1}, 0;",
        "@pp st.global.v2.f32 [{a}], {{{v0}, {v1}}};",
        "@p0 st.global.f32 [{a}], {v0};",
        "@p1 st.global.f32 [{a}+4], {v1};",
        "}}",
        pair = in(reg32) pair, s0 = in(reg32) s0, s1 = in(reg32) s1,
        v0 = in(reg32) v0, v1 = in(reg32) v1, a = in(reg64) addr,
        options(nostack),
    );
}
