//! Thin wrappers over the NVPTX intrinsics the kernels use.
//!
//! Shuffles go through `llvm.nvvm.*` intrinsics rather than `asm!` so LLVM
//! knows they are `convergent` and never moves them into divergent code.

use core::arch::nvptx;

unsafe extern "C" {
    #[link_name = "llvm.nvvm.shfl.sync.bfly.f32"]
    fn shfl_bfly_f32(mask: u32, value: f32, lane_mask: u32, clamp: u32) -> f32;
    #[link_name = "llvm.maximum.f32"]
    fn maximum_f32(a: f32, b: f32) -> f32;
    #[link_name = "llvm.minimum.f32"]
    fn minimum_f32(a: f32, b: f32) -> f32;
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

/// Butterfly shuffle across the full warp. Every lane of the warp must call it.
#[inline(always)]
pub fn shfl_xor(value: f32, lane_mask: u32) -> f32 {
    // SAFETY: all 32 lanes execute this (the kernels never exit early), so the
    // full mask is correct.
    unsafe { shfl_bfly_f32(0xFFFF_FFFF, value, lane_mask, 0x1F) }
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

/// `clamp(v, -max, max)` with NaN passed through, as
/// [`crate::scale::clamp`] computes it, in two `max.NaN`/`min.NaN`
/// instructions instead of compares and selects.
#[inline(always)]
pub fn clamp(v: f32, max: f32) -> f32 {
    // SAFETY: pure arithmetic intrinsics.
    unsafe { minimum_f32(maximum_f32(v, -max), max) }
}
