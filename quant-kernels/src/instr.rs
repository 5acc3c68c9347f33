//! Every PTX instruction the quantizer kernels use that Rust does not
//! express itself: special registers, shuffles, the fp8 converter, register
//! moves, shared-memory and asynchronous-copy accesses. Each wrapper is one
//! instruction (or intrinsic) and says why it exists; the kernels contain no
//! `asm!` of their own. The GEMMs' own instructions are in the submodules:
//! [`mma`] (the `mma.sync` GEMM), [`wgmma`] (the Hopper GEMM) and [`store`]
//! (their stores of C).
//!
//! Shuffles go through `llvm.nvvm.*` intrinsics rather than `asm!` so LLVM
//! knows they are `convergent` and never moves them into divergent code.

use core::arch::nvptx;

pub mod mma;
pub mod store;
#[cfg(target_feature = "sm_90a")]
pub mod wgmma;

unsafe extern "C" {
    #[link_name = "llvm.nvvm.shfl.sync.bfly.f32"]
    fn shfl_bfly_f32(mask: u32, value: f32, lane_mask: u32, clamp: u32) -> f32;
    #[link_name = "llvm.nvvm.vote.all.sync"]
    fn vote_all_sync(mask: u32, pred: bool) -> bool;
    #[link_name = "llvm.nvvm.shfl.sync.idx.i32"]
    fn shfl_idx_i32(mask: u32, value: i32, lane: u32, clamp: u32) -> i32;
    #[link_name = "llvm.maximum.f32"]
    fn maximum_f32(a: f32, b: f32) -> f32;
    #[link_name = "llvm.minimum.f32"]
    fn minimum_f32(a: f32, b: f32) -> f32;
    #[link_name = "llvm.fabs.f32"]
    fn fabs_f32(a: f32) -> f32;
    #[link_name = "llvm.fma.f32"]
    fn fma_f32(a: f32, b: f32, c: f32) -> f32;
    #[cfg(target_feature = "sm_90")]
    #[link_name = "llvm.nvvm.ff.to.e4m3x2.rn"]
    fn cvt_e4m3x2_satfinite(hi: f32, lo: f32) -> i16;
}

/// Index of this thread in the whole 1-D grid, as u64 so it cannot overflow.
#[inline(always)]
pub fn global_thread_index() -> u64 {
    // SAFETY: reading special registers has no preconditions.
    unsafe { nvptx::_block_idx_x() as u64 * nvptx::_block_dim_x() as u64 + nvptx::_thread_idx_x() as u64 }
}

/// Threads in the whole 1-D grid (the stride of a grid-stride loop).
#[inline(always)]
pub fn grid_threads() -> u64 {
    // SAFETY: reading special registers has no preconditions.
    unsafe { nvptx::_grid_dim_x() as u64 * nvptx::_block_dim_x() as u64 }
}

/// Butterfly shuffle across the full warp. Every lane of the warp must call it.
#[inline(always)]
pub fn shfl_xor(value: f32, lane_mask: u32) -> f32 {
    // SAFETY: all 32 lanes execute this (no kernel exits before its last
    // shuffle), so the full mask is correct.
    unsafe { shfl_bfly_f32(0xFFFF_FFFF, value, lane_mask, 0x1F) }
}

/// Lane `lane`'s `value` (lanes `0..32` of the warp). Every lane of the
/// warp must call it.
#[inline(always)]
pub fn shfl_idx_u32(value: u32, lane: u32) -> u32 {
    // SAFETY: all 32 lanes execute this (as for `shfl_xor`).
    unsafe { shfl_idx_i32(0xFFFF_FFFF, value as i32, lane, 0x1F) as u32 }
}

/// [`shfl_idx_u32`] for an f32 (its bits).
#[inline(always)]
pub fn shfl_idx(value: f32, lane: u32) -> f32 {
    f32::from_bits(shfl_idx_u32(value.to_bits(), lane))
}

/// Whether `pred` holds in every lane of the warp (the same answer in
/// each: a branch on it is warp-uniform). Every lane of the warp must call
/// it.
#[inline(always)]
pub fn warp_all(pred: bool) -> bool {
    // SAFETY: all 32 lanes execute this (as for `shfl_xor`).
    unsafe { vote_all_sync(0xFFFF_FFFF, pred) }
}

/// Lane 0's `value`, in every lane: a value ptxas then knows to be the
/// same across the warp, which it keeps in uniform registers (the `wgmma`
/// descriptors derived from it are built on the uniform datapath instead of
/// being computed per thread and moved over with `R2UR` before each
/// `wgmma`). Every lane of the warp must call it.
#[inline(always)]
pub fn warp_uniform(value: u32) -> u32 {
    shfl_idx_u32(value, 0)
}

/// Encodes two values to E4M3FN with the hardware converter (round to
/// nearest even, saturating). Returns `code(lo) | code(hi) << 8`.
#[cfg(target_feature = "sm_90")]
#[inline(always)]
pub fn e4m3fn_x2(lo: f32, hi: f32) -> u16 {
    // SAFETY: the instruction exists on sm_89 and later, which this cfg gates.
    unsafe { cvt_e4m3x2_satfinite(hi, lo) as u16 }
}

/// `lo | hi << 16`, as one PTX register move (`mov.b32 d, {lo, hi}`).
/// Written as shifts and ors, LLVM widened the pieces of an 8-code word to
/// 64 bits and ptxas kept the widening: about six integer instructions per
/// 8 codes that a register pair makes free.
#[inline(always)]
pub fn pack_u16x2(lo: u16, hi: u16) -> u32 {
    let d: u32;
    // SAFETY: a register move.
    unsafe {
        core::arch::asm!("mov.b32 {d}, {{{lo}, {hi}}};", d = out(reg32) d, lo = in(reg16) lo, hi = in(reg16) hi, options(pure, nomem, nostack))
    };
    d
}

/// `lo | hi << 32`, as one PTX register move (see [`pack_u16x2`]).
#[inline(always)]
pub fn pack_u32x2(lo: u32, hi: u32) -> u64 {
    let d: u64;
    // SAFETY: a register move.
    unsafe {
        core::arch::asm!("mov.b64 {d}, {{{lo}, {hi}}};", d = out(reg64) d, lo = in(reg32) lo, hi = in(reg32) hi, options(pure, nomem, nostack))
    };
    d
}

/// `v`, through a register move LLVM can neither see through nor speculate
/// (the `asm` has no `pure` option): work computed from the result stays
/// inside the branch that needs it. The kernels' checked slow paths take
/// their element counts this way; computed in the open, LLVM hoisted those
/// counts and tests above the fast-path branch (see `chunk::slow_count` and
/// the whole-group path of the token-group kernel).
#[inline(always)]
pub fn opaque_u32(v: u32) -> u32 {
    let r: u32;
    // SAFETY: a register move.
    unsafe { core::arch::asm!("mov.b32 {r}, {v};", r = out(reg32) r, v = in(reg32) v, options(nomem, nostack)) };
    r
}

/// [`opaque_u32`] for 64-bit values.
#[inline(always)]
pub fn opaque_u64(v: u64) -> u64 {
    let r: u64;
    // SAFETY: a register move.
    unsafe { core::arch::asm!("mov.b64 {r}, {v};", r = out(reg64) r, v = in(reg64) v, options(nomem, nostack)) };
    r
}

/// f16 bits to f32 by the hardware converter (`cvt.f32.f16`, one
/// instruction). Exact for every non-NaN code: every f16, subnormals
/// included, is an f32 normal or zero, so no rounding or flush applies. A
/// NaN may come out with another payload than the software conversion's
/// (`element::f16_to_f32`, which the CPU reference keeps), and no output
/// depends on one: a NaN input makes its group's or block's amax, scale and
/// codes NaN, the format's single NaN code. The software form is a branch
/// per element for the zero exponent and cost the f16 kernels 1.4-1.8x the
/// bf16 kernels' instructions.
#[inline(always)]
pub fn cvt_f32_f16(bits: u16) -> f32 {
    let r: f32;
    // SAFETY: a conversion between registers.
    unsafe {
        core::arch::asm!("cvt.f32.f16 {r}, {h};", r = out(reg32) r, h = in(reg16) bits, options(pure, nomem, nostack))
    };
    r
}

/// `(blockIdx.x, gridDim.x)`: a persistent CTA's first work item and stride.
#[inline(always)]
pub fn block_index_and_grid() -> (u32, u32) {
    // SAFETY: reading special registers has no preconditions.
    unsafe { (nvptx::_block_idx_x(), nvptx::_grid_dim_x()) }
}

/// `threadIdx.x`.
#[inline(always)]
pub fn thread_index() -> u32 {
    // SAFETY: reading a special register has no preconditions.
    unsafe { nvptx::_thread_idx_x() }
}

/// `__syncthreads()`. Every thread of the block must reach it.
#[inline(always)]
pub fn sync_threads() {
    // SAFETY: the kernels call it from uniform control flow only.
    unsafe { nvptx::_syncthreads() }
}

/// The block's dynamic shared memory, sized by the host at launch.
#[inline(always)]
pub fn dynamic_shared<T>() -> *mut T {
    core::intrinsics::gpu::gpu_launch_sized_workgroup_mem::<T>()
}

/// Fused multiply-add `a * b + c` with one rounding (`fma.rn.f32`).
#[inline(always)]
pub fn fma(a: f32, b: f32, c: f32) -> f32 {
    // SAFETY: a pure arithmetic intrinsic.
    unsafe { fma_f32(a, b, c) }
}

/// The correctly rounded square root (`sqrt.rn.f32`, never the
/// approximate form): the fused RMS kernel's result must match the CPU's
/// `f32::sqrt` bit for bit.
#[inline(always)]
pub fn sqrt_rn(x: f32) -> f32 {
    let r: f32;
    // SAFETY: register-only arithmetic.
    unsafe {
        core::arch::asm!("sqrt.rn.f32 {r}, {x};", r = out(reg32) r, x = in(reg32) x, options(pure, nomem, nostack))
    };
    r
}

/// `blockDim.x` (the fused RMS kernel's CTA size varies with K).
#[inline(always)]
pub fn block_dim() -> u32 {
    // SAFETY: reading a special register has no preconditions.
    unsafe { nvptx::_block_dim_x() }
}

/// `clamp(v, -max, max)` with NaN passed through, as
/// [`crate::scale::clamp`] computes it, in two `max.NaN`/`min.NaN`
/// instructions instead of compares and selects.
#[inline(always)]
pub fn clamp(v: f32, max: f32) -> f32 {
    // SAFETY: pure arithmetic intrinsics.
    unsafe { minimum_f32(maximum_f32(v, -max), max) }
}

/// Reads the f32 at shared address `addr` (4-byte aligned). Not `pure`:
/// the value changes when the pipeline refills the slot, so each read
/// stays where the code puts it (after the barrier wait that makes it
/// valid).
#[inline(always)]
pub unsafe fn ld_shared_f32(addr: u32) -> f32 {
    let v: f32;
    core::arch::asm!("ld.shared.f32 {v}, [{p}];", v = out(reg32) v, p = in(reg32) addr, options(nostack, readonly));
    v
}

/// `max(acc, |v|)` with NaN propagated, for an `acc` that is `+0` or more
/// (or NaN): the value [`crate::scale::nan_max`]`(acc, abs(v))` gives (the
/// two operands are never zeros of opposite signs, and a NaN is NaN either
/// way), in one `max.NaN.f32` whose `abs` is an operand modifier. Written
/// with `nan_max` and the bit-clearing `abs`, each f32 value of an amax cost
/// a `lop3`, two compares and a select.
#[inline(always)]
pub fn nan_max_abs(acc: f32, v: f32) -> f32 {
    // SAFETY: pure arithmetic intrinsics.
    unsafe { maximum_f32(acc, fabs_f32(v)) }
}

/// Writes 16 bytes of shared memory at `addr` (16-byte aligned).
#[inline(always)]
pub unsafe fn st_shared16(addr: u32, w: [u32; 4]) {
    core::arch::asm!(
        "st.shared.v4.u32 [{p}], {{{a}, {b}, {c}, {d}}};",
        p = in(reg32) addr, a = in(reg32) w[0], b = in(reg32) w[1], c = in(reg32) w[2], d = in(reg32) w[3],
        options(nostack),
    );
}

/// Reads 16 bytes of shared memory at `addr` (16-byte aligned).
#[inline(always)]
pub unsafe fn ld_shared16(addr: u32) -> [u32; 4] {
    let (a, b, c, d);
    core::arch::asm!(
        "ld.shared.v4.u32 {{{a}, {b}, {c}, {d}}}, [{p}];",
        a = out(reg32) a, b = out(reg32) b, c = out(reg32) c, d = out(reg32) d, p = in(reg32) addr,
        options(nostack, readonly),
    );
    [a, b, c, d]
}

/// Reads 16 bytes of global memory at `src` (16-byte aligned) through the
/// read-only path, asking L2 to fetch the whole 256-byte segment around it
/// (`.L2::256B`). A token-group warp's load instruction touches 64 bytes of
/// each of 8 groups 256 bytes apart, and its next three loads the rest of
/// them: with the hint the first miss brings in the whole segment, so DRAM
/// sees 256-byte requests instead of four 64-byte ones. Measured on an H200
/// (M = 16384, K = 7168, bf16, same run, `xtask/probe/token_group_ab.py`):
/// e4m3fn 95.1 -> 92.0 us, e4m3fnuz 113.9 -> 106.0 us; ncu: DRAM 71% -> 77%
/// of its peak.
///
/// Only for inputs the kernel does not write (`.nc`); the pointer is a
/// generic address of device memory, which on CUDA is its global address.
#[inline(always)]
pub unsafe fn ld_global16(src: *const u8) -> [u32; 4] {
    let (a, b, c, d);
    core::arch::asm!(
        "ld.global.nc.L2::256B.v4.u32 {{{a}, {b}, {c}, {d}}}, [{p}];",
        a = out(reg32) a, b = out(reg32) b, c = out(reg32) c, d = out(reg32) d, p = in(reg64) src,
        options(pure, readonly, nostack),
    );
    [a, b, c, d]
}

/// `prmt.b32 d, a, b, S`: byte `i` of the result is byte `(S >> 4 i) & 7`
/// of `a` (bytes 0-3) and `b` (bytes 4-7), with that byte's sign bit
/// replicated over it when bit `4 i + 3` of `S` is set.
#[inline(always)]
pub fn prmt<const S: u32>(a: u32, b: u32) -> u32 {
    let d: u32;
    // SAFETY: register arithmetic.
    unsafe {
        core::arch::asm!("prmt.b32 {d}, {a}, {b}, {s};", d = out(reg32) d, a = in(reg32) a, b = in(reg32) b, s = const S, options(pure, nomem, nostack))
    };
    d
}

/// `lop3.b32 d, a, b, c, LUT`: any bitwise function of three words, as
/// one instruction that LLVM cannot reassociate (LUT bit `4 a + 2 b + c`
/// of each bit position's inputs, i.e. `a = 0xF0, b = 0xCC, c = 0xAA`).
#[inline(always)]
pub fn lop3<const LUT: u32>(a: u32, b: u32, c: u32) -> u32 {
    let d: u32;
    // SAFETY: register arithmetic.
    unsafe {
        core::arch::asm!("lop3.b32 {d}, {a}, {b}, {c}, {l};", d = out(reg32) d, a = in(reg32) a, b = in(reg32) b, c = in(reg32) c, l = const LUT, options(pure, nomem, nostack))
    };
    d
}

/// `griddepcontrol.launch_dependents`: lets a grid launched after this one
/// with PDL (programmatic stream serialization) be scheduled before this one
/// completes, once every CTA of this grid has executed it or exited; the
/// dependent's CTAs then wait in `griddepcontrol.wait` before touching
/// memory, so this changes when they start, never what they read. Without
/// such a dependent it has no effect; before sm_90 (no PDL) it is nothing.
#[inline(always)]
pub fn grid_launch_dependents() {
    // SAFETY: a scheduling hint with no operands and no memory effect on
    // this grid; a dependent orders its own reads (`griddepcontrol.wait`).
    #[cfg(target_feature = "sm_90")]
    unsafe {
        core::arch::asm!("griddepcontrol.launch_dependents;", options(nostack))
    };
}

/// Per half-word unsigned maximum.
#[cfg(target_feature = "sm_90")]
#[inline(always)]
pub fn max_u16x2(a: u32, b: u32) -> u32 {
    let m: u32;
    // SAFETY: register arithmetic; `max.u16x2` exists from sm_90 (PTX 8.0).
    unsafe {
        core::arch::asm!("max.u16x2 {m}, {a}, {b};", m = out(reg32) m, a = in(reg32) a, b = in(reg32) b, options(pure, nomem, nostack))
    };
    m
}

/// Per half-word unsigned maximum.
#[cfg(not(target_feature = "sm_90"))]
#[inline(always)]
pub fn max_u16x2(a: u32, b: u32) -> u32 {
    (a & 0xFFFF).max(b & 0xFFFF) | (a >> 16).max(b >> 16) << 16
}

/// The shared-state-space address of a pointer into shared memory (the
/// 32-bit form that `ld.shared`, `st.shared` and `cp.async` take).
#[inline(always)]
pub fn shared_addr<T>(p: *const T) -> u32 {
    let out: u64;
    // SAFETY: pure address arithmetic.
    unsafe {
        core::arch::asm!("cvta.to.shared.u64 {o}, {i};", o = out(reg64) out, i = in(reg64) p as u64, options(pure, nomem, nostack))
    };
    out as u32
}

/// Copies 16 bytes of global memory at `src` to shared memory at `dst`
/// asynchronously (`cp.async.cg`, sm_80+: L2 only, the data is read once);
/// complete after [`cp_async_wait`].
///
/// # Safety
/// The 16 bytes at `src` are readable and 16-byte aligned; `dst` is 16-byte
/// aligned shared memory the thread owns until the copy completes.
#[inline(always)]
pub unsafe fn cp_async16(dst: u32, src: *const u8) {
    core::arch::asm!(
        "cp.async.cg.shared.global [{d}], [{s}], 16;",
        d = in(reg32) dst, s = in(reg64) src,
        options(nostack),
    );
}

/// Closes the thread's current group of `cp.async` copies.
#[inline(always)]
pub unsafe fn cp_async_commit() {
    core::arch::asm!("cp.async.commit_group;", options(nostack));
}

/// Waits until at most `pending` of the thread's copy groups are in flight
/// (`pending` at most 3: callers run at most
/// [`crate::geometry::MAX_STAGES`] stages).
#[inline(always)]
pub unsafe fn cp_async_wait(pending: u32) {
    match pending {
        0 => core::arch::asm!("cp.async.wait_group 0;", options(nostack)),
        1 => core::arch::asm!("cp.async.wait_group 1;", options(nostack)),
        2 => core::arch::asm!("cp.async.wait_group 2;", options(nostack)),
        _ => core::arch::asm!("cp.async.wait_group 3;", options(nostack)),
    }
}

/// Two f32 to a bf16 pair, round to nearest even; `lo` at the lower address.
#[inline(always)]
pub fn bf16x2(lo: f32, hi: f32) -> u32 {
    let d: u32;
    // SAFETY: register-only instruction (sm_80+).
    unsafe {
        core::arch::asm!("cvt.rn.bf16x2.f32 {d}, {h}, {l};", d = out(reg32) d, h = in(reg32) hi, l = in(reg32) lo, options(pure, nomem, nostack))
    };
    d
}
