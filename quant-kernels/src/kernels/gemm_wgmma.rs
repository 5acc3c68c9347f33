//! `mm_fp8_blockscale` on Hopper tensor cores (sm_90a only): `wgmma` with
//! operands loaded by the tensor memory accelerator (TMA).
//!
//! # Tiling
//! - CTA tile 128 (M) x 128 (N); one main-loop step is one k-block of 128,
//!   which is exactly one scale block (as in the `mma.sync` kernel of
//!   [`super::gemm`]).
//! - 256 threads = 2 warpgroups; warpgroup `w` owns rows `64 w ..` of the tile
//!   and computes its 64 x 128 piece with four `wgmma` m64n128k32 per k-block,
//!   both operands read from shared memory through matrix descriptors.
//! - Thread 0 is also the producer: it issues the TMA copies
//!   (`cp.async.bulk.tensor.2d`) of A's and B's 128 x 128-byte boxes for a
//!   k-block into one of `STAGES` stage buffers; each stage has an `mbarrier`
//!   that completes when both boxes have landed (`complete_tx`). The tensor
//!   maps (built on the host with `cuTensorMapEncodeTiled`, 128-byte
//!   swizzle) live in global memory; rows past M or N and bytes past K are
//!   zero-filled by the TMA unit, so tails need no masking in the main loop.
//! - Shared-memory layout per stage is the TMA's 128B swizzle: row `r` of a
//!   box at byte `128 r`, 16-byte chunk `c` stored at chunk `c ^ (r % 8)`.
//!   That is the canonical K-major SWIZZLE_128B layout of `wgmma`: descriptor
//!   stride (8 rows) 1024 bytes, leading offset unused, and a k32 step is a
//!   32-byte advance of the start address. Stage buffers are 1024-byte aligned.
//! - A stage is refilled only after every thread has passed the CTA barrier
//!   at the start of the next step; each warpgroup waited for its `wgmma`s of
//!   the stage (`wait_group 0`) before arriving there, so the refill cannot
//!   overwrite operands still being read.
//! - Two-level accumulation (DeepGEMM's promotion): each k-block's `wgmma`
//!   sum goes to 64 f32 registers, then `acc += partial * (sa * sb)` in f32,
//!   the order of the CPU reference's `Accumulation::F32`.
//! - Epilogue straight from the accumulator fragments (the `m64nN` layout is
//!   the `m16n8` one per warp, repeated over 16 n8 tiles).
//!
//! E4M3FN only (the `wgmma` e4m3 type); E4M3FNUZ keeps the `mma.sync` path.

use core::arch::asm;
use core::arch::nvptx;

use super::gemm::{decode_layout, smem_addr, store_pair, Align16, Bf16Out, Out};

/// Stages of the TMA pipeline.
pub const STAGES: u32 = 5;
/// CTA tile along M and N, and the k-block (one scale block) in bytes.
pub const TILE: u32 = 128;
/// Threads: two warpgroups.
pub const THREADS: u32 = 256;
/// One A or B box.
const BOX_BYTES: u32 = TILE * TILE;
/// One stage: the A box then the B box.
const STAGE_BYTES: u32 = 2 * BOX_BYTES;
/// Dynamic shared memory: up to 1023 bytes of alignment slack, the stages,
/// and one 8-byte `mbarrier` per stage.
pub const SMEM_BYTES: u32 = 1024 + STAGES * STAGE_BYTES + STAGES * 8;

/// Repeats `$body` for `$j` in `0..16` as straight-line code, so the
/// accumulator arrays are indexed by constants only and stay in registers.
macro_rules! unroll16 {
    ($j:ident => $body:block) => {{
        {
            let $j: usize = 0;
            $body
        }
        {
            let $j: usize = 1;
            $body
        }
        {
            let $j: usize = 2;
            $body
        }
        {
            let $j: usize = 3;
            $body
        }
        {
            let $j: usize = 4;
            $body
        }
        {
            let $j: usize = 5;
            $body
        }
        {
            let $j: usize = 6;
            $body
        }
        {
            let $j: usize = 7;
            $body
        }
        {
            let $j: usize = 8;
            $body
        }
        {
            let $j: usize = 9;
            $body
        }
        {
            let $j: usize = 10;
            $body
        }
        {
            let $j: usize = 11;
            $body
        }
        {
            let $j: usize = 12;
            $body
        }
        {
            let $j: usize = 13;
            $body
        }
        {
            let $j: usize = 14;
            $body
        }
        {
            let $j: usize = 15;
            $body
        }
    }};
}

include!("gemm_wgmma_ops.rs");

#[inline(always)]
unsafe fn wgmma_fence() {
    asm!("wgmma.fence.sync.aligned;", options(nostack));
}

#[inline(always)]
unsafe fn wgmma_commit() {
    asm!("wgmma.commit_group.sync.aligned;", options(nostack));
}

#[inline(always)]
unsafe fn wgmma_wait0() {
    asm!("wgmma.wait_group.sync.aligned 0;", options(nostack));
}

/// Descriptor of a K-major, 128B-swizzled tile starting at shared address
/// `addr` (1024-byte-aligned tile base plus a k offset below 128).
#[inline(always)]
fn smem_desc(addr: u32) -> u64 {
    const SWIZZLE_128B: u64 = 1 << 62;
    const SBO: u64 = (1024 >> 4) << 32; // 8 rows of 128 bytes
    const LBO: u64 = 1 << 16; // unused for swizzled K-major layouts
    SWIZZLE_128B | SBO | LBO | ((addr as u64 & 0x3FFFF) >> 4)
}

#[inline(always)]
unsafe fn mbar_init(bar: u32, count: u32) {
    asm!("mbarrier.init.shared.b64 [{b}], {c};", b = in(reg32) bar, c = in(reg32) count, options(nostack));
}

/// Arms the barrier for `bytes` of TMA traffic and arrives once.
#[inline(always)]
unsafe fn mbar_arrive_expect_tx(bar: u32, bytes: u32) {
    asm!("mbarrier.arrive.expect_tx.shared.b64 _, [{b}], {n};", b = in(reg32) bar, n = in(reg32) bytes, options(nostack));
}

/// Spins until the phase of parity `parity` of the barrier has completed.
#[inline(always)]
unsafe fn mbar_wait(bar: u32, parity: u32) {
    loop {
        let done: u32;
        asm!(
            "{{",
            ".reg .pred p;",
            "mbarrier.try_wait.parity.shared.b64 p, [{b}], {q};",
            "selp.u32 {d}, 1, 0, p;",
            "}}",
            b = in(reg32) bar, q = in(reg32) parity, d = out(reg32) done,
            options(nostack),
        );
        if done != 0 {
            return;
        }
    }
}

/// TMA: the box at coordinates `(x = k byte, y = row)` of the tensor map at
/// generic address `map` into shared address `dst`, completing on `bar`.
#[inline(always)]
unsafe fn tma_load_2d(dst: u32, map: u64, x: u32, y: u32, bar: u32) {
    asm!(
        "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [{d}], [{m}, {{{x}, {y}}}], [{b}];",
        d = in(reg32) dst, m = in(reg64) map, x = in(reg32) x, y = in(reg32) y, b = in(reg32) bar,
        options(nostack),
    );
}

/// Issues the copies of k-block `kb` (A rows `m0..`, B rows `n0..`).
#[inline(always)]
unsafe fn issue(maps: u64, stages: u32, bars: u32, kb: u32, m0: u32, n0: u32) {
    let s = kb % STAGES;
    let bar = bars + 8 * s;
    let dst = stages + s * STAGE_BYTES;
    mbar_arrive_expect_tx(bar, STAGE_BYTES);
    tma_load_2d(dst, maps, kb * TILE, m0, bar);
    tma_load_2d(dst + BOX_BYTES, maps + 128, kb * TILE, n0, bar);
}

/// The kernel body; see the module documentation.
///
/// # Safety
/// Launched by `quant-host` with `THREADS` threads, `SMEM_BYTES` of dynamic
/// shared memory, grid `(ceil(m/128), ceil(n/128))`, and `maps` pointing at
/// two 64-byte-aligned `CUtensorMap`s in global memory (A `[m, k]` then
/// B `[n, k]`, u8, box 128 x 128, SWIZZLE_128B), `k > 0`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn gemm_wgmma<O: Out>(
    maps: *const u8,
    a_scales: *const f32,
    b_scales: *const f32,
    c: *mut O,
    m: u32,
    n: u32,
    k: u32,
    layout: u32,
) {
    let layout = decode_layout(layout);
    let smem: *mut u8 = core::intrinsics::gpu::gpu_launch_sized_workgroup_mem::<Align16>() as *mut u8;
    let stages = (smem_addr(smem) + 1023) & !1023;
    let bars = stages + STAGES * STAGE_BYTES;
    let maps = maps as u64;
    let tid = nvptx::_thread_idx_x() as u32;
    let wg = tid / 128;
    let (warp, lane) = ((tid % 128) / 32, tid % 32);
    let (g, t) = (lane / 4, lane % 4);
    let m0 = nvptx::_block_idx_x() as u32 * TILE;
    let n0 = nvptx::_block_idx_y() as u32 * TILE;
    let kbt = k.div_ceil(TILE);

    if tid == 0 {
        // The maps were written by a host copy before the launch: make them
        // visible to the tensor-map proxy.
        asm!(
            "fence.proxy.tensormap::generic.acquire.gpu [{a}], 128;",
            "fence.proxy.tensormap::generic.acquire.gpu [{b}], 128;",
            a = in(reg64) maps, b = in(reg64) maps + 128,
            options(nostack),
        );
        let mut s = 0;
        while s < STAGES {
            mbar_init(bars + 8 * s, 1);
            s += 1;
        }
        asm!("fence.mbarrier_init.release.cluster;", "fence.proxy.async.shared::cta;", options(nostack));
    }
    nvptx::_syncthreads();
    if tid == 0 {
        let mut kb = 0;
        while kb < STAGES - 1 && kb < kbt {
            issue(maps, stages, bars, kb, m0, n0);
            kb += 1;
        }
    }

    let row0 = m0 + wg * 64 + warp * 16 + g;
    let row1 = row0 + 8;
    let (m64, kbt64) = (m as u64, kbt as u64);
    let sb_row = b_scales.add((n0 / TILE) as usize * kbt as usize);
    let mut acc = [0f32; 64];
    let mut part = [0f32; 64];
    let mut kb = 0;
    while kb < kbt {
        // Every warpgroup has finished reading stage (kb - 1) % STAGES.
        nvptx::_syncthreads();
        if tid == 0 && kb + STAGES - 1 < kbt {
            issue(maps, stages, bars, kb + STAGES - 1, m0, n0);
        }
        // Scales: global loads in flight while the tensor cores work.
        let sa0 =
            if row0 < m { a_scales.add(layout.index(row0 as u64, kb as u64, m64, kbt64) as usize).read() } else { 0.0 };
        let sa1 =
            if row1 < m { a_scales.add(layout.index(row1 as u64, kb as u64, m64, kbt64) as usize).read() } else { 0.0 };
        let sb = sb_row.add(kb as usize).read();

        let st = kb % STAGES;
        mbar_wait(bars + 8 * st, (kb / STAGES) % 2);
        let a_tile = stages + st * STAGE_BYTES + wg * 64 * TILE;
        let b_tile = stages + st * STAGE_BYTES + BOX_BYTES;
        fence_operands(&mut part);
        wgmma_fence();
        wgmma_m64n128k32(&mut part, smem_desc(a_tile), smem_desc(b_tile), 0);
        wgmma_m64n128k32(&mut part, smem_desc(a_tile + 32), smem_desc(b_tile + 32), 1);
        wgmma_m64n128k32(&mut part, smem_desc(a_tile + 64), smem_desc(b_tile + 64), 1);
        wgmma_m64n128k32(&mut part, smem_desc(a_tile + 96), smem_desc(b_tile + 96), 1);
        wgmma_commit();
        wgmma_wait0();
        fence_operands(&mut part);

        let (s0, s1) = (sa0 * sb, sa1 * sb);
        unroll16!(j => {
            acc[4 * j] += part[4 * j] * s0;
            acc[4 * j + 1] += part[4 * j + 1] * s0;
            acc[4 * j + 2] += part[4 * j + 2] * s1;
            acc[4 * j + 3] += part[4 * j + 3] * s1;
        });
        kb += 1;
    }

    let pair_ok = n % 2 == 0 && (c as usize) % (2 * core::mem::size_of::<O>()) == 0;
    unroll16!(j => {
        let col = n0 + 8 * j as u32 + 2 * t;
        store_pair(c, m, n, row0, col, acc[4 * j], acc[4 * j + 1], pair_ok);
        store_pair(c, m, n, row1, col, acc[4 * j + 2], acc[4 * j + 3], pair_ok);
    });
}

macro_rules! entries {
    ($($name:ident: $out:ty;)*) => {$(
        /// `wgmma` GEMM kernel (E4M3FN, sm_90a); see the module documentation.
        ///
        /// # Safety
        /// Launched by `quant-host` with checked arguments.
        #[no_mangle]
        #[allow(clippy::too_many_arguments)]
        pub unsafe extern "ptx-kernel" fn $name(
            maps: *const u8,
            a_scales: *const f32,
            b_scales: *const f32,
            c: *mut $out,
            m: u32,
            n: u32,
            k: u32,
            layout: u32,
        ) {
            gemm_wgmma::<$out>(maps, a_scales, b_scales, c, m, n, k, layout)
        }
    )*};
}

entries! {
    gemm_wgmma_e4m3fn_bf16: Bf16Out;
    gemm_wgmma_e4m3fn_f32: f32;
}
