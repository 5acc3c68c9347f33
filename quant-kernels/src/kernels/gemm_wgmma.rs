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
use crate::ScaleLayout;

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
/// and two 8-byte `mbarrier`s per stage (full, empty).
pub const SMEM_BYTES: u32 = 1024 + STAGES * STAGE_BYTES + STAGES * 16;

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

/// Waits until at most one committed `wgmma` group is still in flight.
#[inline(always)]
unsafe fn wgmma_wait1() {
    asm!("wgmma.wait_group.sync.aligned 1;", options(nostack));
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

/// Arrives once on the barrier.
#[inline(always)]
unsafe fn mbar_arrive(bar: u32) {
    asm!("mbarrier.arrive.shared.b64 _, [{b}];", b = in(reg32) bar, options(nostack));
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

/// Shared addresses of the pipeline: stage buffers and the two barrier sets.
#[derive(Clone, Copy)]
struct Pipe {
    maps: u64,
    stages: u32,
    /// `full[s]`: completes when stage `s`'s two boxes have landed.
    full: u32,
    /// `empty[s]`: completes when all 8 consumer warps are done reading stage `s`.
    empty: u32,
    m0: u32,
    n0: u32,
}

impl Pipe {
    /// The A tile of warpgroup `wg` and the B tile of k-block `kb`'s stage.
    #[inline(always)]
    fn tiles(&self, kb: u32, wg: u32) -> (u32, u32) {
        let st = self.stages + (kb % STAGES) * STAGE_BYTES;
        (st + wg * 64 * TILE, st + BOX_BYTES)
    }
}

/// Waits for k-block `kb`'s operands, then queues its four k32 `wgmma`s into `part`.
#[inline(always)]
unsafe fn mma_kblock(p: &Pipe, kb: u32, wg: u32, part: &mut [f32; 64]) {
    mbar_wait(p.full + 8 * (kb % STAGES), (kb / STAGES) % 2);
    let (a, b) = p.tiles(kb, wg);
    fence_operands(part);
    wgmma_fence();
    wgmma_m64n128k32(part, smem_desc(a), smem_desc(b), 0);
    wgmma_m64n128k32(part, smem_desc(a + 32), smem_desc(b + 32), 1);
    wgmma_m64n128k32(part, smem_desc(a + 64), smem_desc(b + 64), 1);
    wgmma_m64n128k32(part, smem_desc(a + 96), smem_desc(b + 96), 1);
    wgmma_commit();
}

/// Per-thread constants of the main loop.
#[derive(Clone, Copy)]
struct Ctx {
    tid: u32,
    wg: u32,
    lane: u32,
    row0: u32,
    row1: u32,
    m: u32,
    kbt: u32,
    layout: ScaleLayout,
}

/// One main-loop step: k-block `kb`'s `wgmma`s were queued into `cur`;
/// queue `kb + 1`'s into `next`, wait for `cur`, release its stage, refill
/// the stage released one step earlier, and promote `cur` into `acc`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn step(
    p: &Pipe,
    c: &Ctx,
    kb: u32,
    a_scales: *const f32,
    sb_row: *const f32,
    acc: &mut [f32; 64],
    cur: &mut [f32; 64],
    next: &mut [f32; 64],
) {
    // Scales of k-block kb: global loads in flight while the tensor cores work.
    let (m64, kbt64) = (c.m as u64, c.kbt as u64);
    let sa0 = if c.row0 < c.m {
        a_scales.add(c.layout.index(c.row0 as u64, kb as u64, m64, kbt64) as usize).read()
    } else {
        0.0
    };
    let sa1 = if c.row1 < c.m {
        a_scales.add(c.layout.index(c.row1 as u64, kb as u64, m64, kbt64) as usize).read()
    } else {
        0.0
    };
    let sb = sb_row.add(kb as usize).read();

    // Producer: stage of k-block kb - 1 was released by both warpgroups
    // during the previous step (normally long done): refill it.
    if c.tid == 0 && kb >= 1 && kb - 1 + STAGES < c.kbt {
        let old = kb - 1;
        mbar_wait(p.empty + 8 * (old % STAGES), (old / STAGES) % 2);
        issue(p.maps, p.stages, p.full, old + STAGES, p.m0, p.n0);
    }

    if kb + 1 < c.kbt {
        mma_kblock(p, kb + 1, c.wg, next);
        wgmma_wait1();
    } else {
        wgmma_wait0();
    }
    fence_operands(cur);
    // This warp's reads of stage kb are complete.
    if c.lane == 0 {
        mbar_arrive(p.empty + 8 * (kb % STAGES));
    }

    let (s0, s1) = (sa0 * sb, sa1 * sb);
    unroll16!(j => {
        acc[4 * j] += cur[4 * j] * s0;
        acc[4 * j + 1] += cur[4 * j + 1] * s0;
        acc[4 * j + 2] += cur[4 * j + 2] * s1;
        acc[4 * j + 3] += cur[4 * j + 3] * s1;
    });
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
    let smem: *mut u8 = core::intrinsics::gpu::gpu_launch_sized_workgroup_mem::<Align16>() as *mut u8;
    let stages = (smem_addr(smem) + 1023) & !1023;
    let full = stages + STAGES * STAGE_BYTES;
    let pipe = Pipe {
        maps: maps as u64,
        stages,
        full,
        empty: full + 8 * STAGES,
        m0: nvptx::_block_idx_x() as u32 * TILE,
        n0: nvptx::_block_idx_y() as u32 * TILE,
    };
    let tid = nvptx::_thread_idx_x() as u32;
    let wg = tid / 128;
    let (warp, lane) = ((tid % 128) / 32, tid % 32);
    let (g, t) = (lane / 4, lane % 4);
    let kbt = k.div_ceil(TILE);

    if tid == 0 {
        // The maps were written by a host copy before the launch: make them
        // visible to the tensor-map proxy.
        asm!(
            "fence.proxy.tensormap::generic.acquire.gpu [{a}], 128;",
            "fence.proxy.tensormap::generic.acquire.gpu [{b}], 128;",
            a = in(reg64) pipe.maps, b = in(reg64) pipe.maps + 128,
            options(nostack),
        );
        let mut s = 0;
        while s < STAGES {
            mbar_init(pipe.full + 8 * s, 1);
            mbar_init(pipe.empty + 8 * s, THREADS / 32);
            s += 1;
        }
        asm!("fence.mbarrier_init.release.cluster;", "fence.proxy.async.shared::cta;", options(nostack));
    }
    nvptx::_syncthreads();
    if tid == 0 {
        let mut kb = 0;
        while kb < STAGES && kb < kbt {
            issue(pipe.maps, pipe.stages, pipe.full, kb, pipe.m0, pipe.n0);
            kb += 1;
        }
    }

    let row0 = pipe.m0 + wg * 64 + warp * 16 + g;
    let ctx = Ctx { tid, wg, lane, row0, row1: row0 + 8, m, kbt, layout: decode_layout(layout) };
    let sb_row = b_scales.add((pipe.n0 / TILE) as usize * kbt as usize);
    let mut acc = [0f32; 64];
    let mut p0 = [0f32; 64];
    let mut p1 = [0f32; 64];
    mma_kblock(&pipe, 0, wg, &mut p0);
    let mut kb = 0;
    while kb < kbt {
        step(&pipe, &ctx, kb, a_scales, sb_row, &mut acc, &mut p0, &mut p1);
        if kb + 1 < kbt {
            step(&pipe, &ctx, kb + 1, a_scales, sb_row, &mut acc, &mut p1, &mut p0);
        }
        kb += 2;
    }

    let pair_ok = n % 2 == 0 && (c as usize) % (2 * core::mem::size_of::<O>()) == 0;
    unroll16!(j => {
        let col = pipe.n0 + 8 * j as u32 + 2 * t;
        store_pair(c, m, n, row0, col, acc[4 * j], acc[4 * j + 1], pair_ok);
        store_pair(c, m, n, row0 + 8, col, acc[4 * j + 2], acc[4 * j + 3], pair_ok);
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
