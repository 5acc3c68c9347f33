//! The instructions of the `mma.sync` GEMM (`kernels/gemm.rs`): zero-filling
//! `cp.async`, `ldmatrix`, streamed global loads, `prmt`, the `mma.sync`
//! shapes and the split-K ticket's fences and atomics. The shared-memory
//! stores, `cp.async` commit and address conversion it shares with the
//! quantizers are in [`super`].

use core::arch::asm;

/// 16-byte `cp.async` (L2 only); bytes past `src_bytes` are zero-filled.
#[inline(always)]
pub unsafe fn cp_async16_zfill(dst: u32, src: *const u8, src_bytes: u32) {
    asm!("cp.async.cg.shared.global [{d}], [{s}], 16, {n};", d = in(reg32) dst, s = in(reg64) src as u64, n = in(reg32) src_bytes, options(nostack));
}

/// 4-byte `cp.async`; zero-filled when `src_bytes == 0`.
#[inline(always)]
pub unsafe fn cp_async4(dst: u32, src: *const f32, src_bytes: u32) {
    asm!("cp.async.ca.shared.global [{d}], [{s}], 4, {n};", d = in(reg32) dst, s = in(reg64) src as u64, n = in(reg32) src_bytes, options(nostack));
}

/// Waits until at most `N` of the thread's `cp.async` groups are in flight
/// (`N` a constant, unlike [`super::cp_async_wait`]).
#[inline(always)]
pub unsafe fn cp_async_wait_n<const N: u32>() {
    asm!("cp.async.wait_group {n};", n = const N, options(nostack));
}

/// Four 8x8 b16 matrices; lane `i` gives the address of row `i % 8` of matrix `i / 8`.
#[inline(always)]
pub unsafe fn ldmatrix_x4(addr: u32) -> [u32; 4] {
    let (a, b, c, d): (u32, u32, u32, u32);
    asm!("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {{{a}, {b}, {c}, {d}}}, [{p}];", a = out(reg32) a, b = out(reg32) b, c = out(reg32) c, d = out(reg32) d, p = in(reg32) addr, options(nostack));
    [a, b, c, d]
}

/// 16-byte read-only global load that does not allocate in L1 (B is streamed once).
#[inline(always)]
pub unsafe fn ldg16_stream(p: *const u8) -> [u32; 4] {
    let (a, b, c, d): (u32, u32, u32, u32);
    asm!("ld.global.nc.L1::no_allocate.v4.u32 {{{a}, {b}, {c}, {d}}}, [{p}];", a = out(reg32) a, b = out(reg32) b, c = out(reg32) c, d = out(reg32) d, p = in(reg64) p as u64, options(pure, readonly, nostack));
    [a, b, c, d]
}

/// 16-byte read-only global load through L1 (A is re-read by every warp).
#[inline(always)]
pub unsafe fn ldg16(p: *const u8) -> [u32; 4] {
    let (a, b, c, d): (u32, u32, u32, u32);
    asm!("ld.global.nc.v4.u32 {{{a}, {b}, {c}, {d}}}, [{p}];", a = out(reg32) a, b = out(reg32) b, c = out(reg32) c, d = out(reg32) d, p = in(reg64) p as u64, options(pure, readonly, nostack));
    [a, b, c, d]
}

/// `x`, hidden from the optimiser (a side-effecting move) so that values
/// derived from it are recomputed where used rather than hoisted.
#[inline(always)]
pub fn opaque_inout(x: u32) -> u32 {
    let mut x = x;
    // SAFETY: a register move.
    unsafe { asm!("mov.b32 {0}, {0};", inout(reg32) x, options(nomem, nostack)) };
    x
}

/// `prmt.b32`: the bytes of `(b, a)` picked by the nibbles of `sel`.
#[inline(always)]
pub fn prmt(a: u32, b: u32, sel: u32) -> u32 {
    let d: u32;
    // SAFETY: pure register arithmetic.
    unsafe {
        asm!("prmt.b32 {d}, {a}, {b}, {s};", d = out(reg32) d, a = in(reg32) a, b = in(reg32) b, s = in(reg32) sel, options(pure, nomem, nostack))
    };
    d
}

/// `d += a * b`, `m16n8k32`, E4M3FN operands (sm_89+).
#[cfg(target_feature = "sm_90")]
#[inline(always)]
pub fn mma_e4m3(c: &mut [f32; 4], a: [u32; 4], b: [u32; 2]) {
    // SAFETY: register-only instruction; the module is sm_90.
    unsafe {
        asm!(
            "mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32 {{{c0}, {c1}, {c2}, {c3}}}, {{{a0}, {a1}, {a2}, {a3}}}, {{{b0}, {b1}}}, {{{c0}, {c1}, {c2}, {c3}}};",
            c0 = inout(reg32) c[0], c1 = inout(reg32) c[1], c2 = inout(reg32) c[2], c3 = inout(reg32) c[3],
            a0 = in(reg32) a[0], a1 = in(reg32) a[1], a2 = in(reg32) a[2], a3 = in(reg32) a[3],
            b0 = in(reg32) b[0], b1 = in(reg32) b[1],
            options(pure, nomem, nostack),
        )
    };
}

/// `d += a * b`, `m16n8k16`, f16 operands.
#[inline(always)]
pub fn mma_f16(c: &mut [f32; 4], a: [u32; 4], b: [u32; 2]) {
    // SAFETY: register-only instruction (sm_80+).
    unsafe {
        asm!(
            "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {{{c0}, {c1}, {c2}, {c3}}}, {{{a0}, {a1}, {a2}, {a3}}}, {{{b0}, {b1}}}, {{{c0}, {c1}, {c2}, {c3}}};",
            c0 = inout(reg32) c[0], c1 = inout(reg32) c[1], c2 = inout(reg32) c[2], c3 = inout(reg32) c[3],
            a0 = in(reg32) a[0], a1 = in(reg32) a[1], a2 = in(reg32) a[2], a3 = in(reg32) a[3],
            b0 = in(reg32) b[0], b1 = in(reg32) b[1],
            options(pure, nomem, nostack),
        )
    };
}

/// `fence.acq_rel.gpu` then `bar.warp.sync` of the full warp, in one `asm`
/// so nothing is scheduled between them: the split-K partials a warp wrote
/// are visible GPU-wide before its lane 0 takes a ticket.
#[inline(always)]
pub unsafe fn fence_gpu_warp_sync() {
    asm!("fence.acq_rel.gpu;", "bar.warp.sync 0xffffffff;", options(nostack));
}

/// `fence.acq_rel.gpu`.
#[inline(always)]
pub unsafe fn fence_gpu() {
    asm!("fence.acq_rel.gpu;", options(nostack));
}

/// `bar.warp.sync` of the full warp.
#[inline(always)]
pub unsafe fn warp_sync() {
    asm!("bar.warp.sync 0xffffffff;", options(nostack));
}

/// Atomically adds 1 to the global `u32` at `p` (acquire-release, GPU scope)
/// and returns the old value.
#[inline(always)]
pub unsafe fn atom_inc_acq_rel(p: *mut u32) -> u32 {
    let old: u32;
    asm!("atom.acq_rel.gpu.global.add.u32 {o}, [{p}], 1;", o = out(reg32) old, p = in(reg64) p as u64, options(nostack));
    old
}

/// Reads the global f32 at `p` through L2 only (`ld.global.cg`), past any
/// stale L1 line: another CTA wrote it.
#[inline(always)]
pub unsafe fn ld_global_cg_f32(p: *const f32) -> f32 {
    let v: f32;
    asm!("ld.global.cg.f32 {v}, [{p}];", v = out(reg32) v, p = in(reg64) p as u64, options(nostack, readonly));
    v
}
