//! `mm_fp8_blockscale` on Hopper tensor cores (sm_90a only): `wgmma` with
//! operands loaded by the tensor memory accelerator (TMA), in the two
//! precision modes of the contract.
//!
//! # Tiling
//! - CTA tile `TM x BN` of C ([`GemmTile`]: 256 x 128, 128 x 128, 128 x 160,
//!   128 x 192, 64 x 256, 64 x 128, 64 x 64, 64 x 32; the host picks the one
//!   whose last wave of tiles is least idle, and 64 x 64 or 64 x 32 where
//!   another would split K). A
//!   pipeline stage holds one k-block: 128 bytes of K of A's `TM` rows and
//!   B's `BN` rows, exactly one scale block along K.
//! - 384 threads: one producer warpgroup and two consumer warpgroups. The
//!   producer gives its registers away with `setmaxnreg` (40 left; the
//!   consumers take 232) and lane 0 of its first warp walks the CTA's
//!   k-blocks, issuing the TMA copies (`cp.async.bulk.tensor.2d`) of the A
//!   and B boxes into one of the tile's stages (5; 3 of the 256 x 128
//!   tile's 48 KB; 7, 12 and 16 of the 64 x 128, 64 x 64 and 64 x 32 tiles, which run
//!   small-M problems memory-bound, so that their stages are their loads in
//!   flight) as soon as the stage's
//!   `empty` barrier says every consumer warp is done with it (lane 0 of
//!   each arrives, a predicated instruction: 8 arrivals, not 256); the stage's
//!   `full` barrier completes when both boxes have landed (`complete_tx`).
//!   Rows past M or N and bytes past K are zero-filled by the TMA unit, so
//!   tails need no masking in the main loop.
//! - Consumer warpgroup `w` computes 64 x `WGN` fragments with `wgmma`
//!   m64n`WGN`k32, both operands read from shared memory through matrix
//!   descriptors: with 256-row tiles rows `128 w ..` as two 64-row pieces
//!   (one partial fragment, used by each piece in turn, and two
//!   accumulators), with 128-row tiles rows `64 w ..`, both with every
//!   column (`WGN = BN`); with 64-row tiles the same 64 rows and columns
//!   `w WGN ..` (`WGN = BN / 2`, 64 x 256), except the 64 x 32, 64 x 64 and
//!   64 x 128 tiles, whose warpgroups
//!   both compute the whole tile (`WGN = BN`) over alternate k-blocks of the
//!   CTA's stream (each stage is waited for, read and released by one
//!   warpgroup), warpgroup 1's sums added to warpgroup 0's through shared
//!   memory at the end of each tile ([`exchange`]; `gemm_alternates`). The
//!   two warpgroups never meet at a barrier in the loop, so one's promotion
//!   runs while the other's `wgmma`s keep the tensor cores busy.
//! - Persistent: the grid has at most one CTA per multiprocessor and CTA `b`
//!   takes tiles `b, b + grid, ...`. Tiles are numbered in bands of
//!   [`crate::wgmma_contract::GEMM_GROUP_M_TILES`] M-tiles (M fastest
//!   inside a band, then N, then the next band), so the CTAs working at one time share a few B tiles and one
//!   band of A rows in L2. A CTA's k-blocks form one stream through the stage
//!   ring, so the next tile's loads overlap the current tile's epilogue. The
//!   order is [`super::gemm_schedule`].
//! - 2-CTA clusters sharing A (the 256 x 128, 128 x 128 and 128 x 192
//!   tiles, when the tile columns pair up, the pairs fill the GPU and the
//!   host's planner picks them): the two CTAs of a
//!   cluster take horizontally adjacent tiles (the same rows of A) as one
//!   schedule unit; the rank-0 producer loads A's box for both with one
//!   multicast TMA copy (`.multicast::cluster`, which also completes the
//!   peer's `full` barrier), each producer loads its own B box, and every
//!   `empty` barrier counts both CTAs' consumer warps (lanes 0 and 1 of
//!   each warp arrive on the two CTAs'), so neither producer refills a stage
//!   that the other CTA still reads. A third less L2-to-SM traffic for the
//!   256 x 128 tile (32 KB instead of 48 KB per CTA and k-block): 1-10%
//!   faster on the H200 (bench/NOTES-gemm.md, session 9). The remote
//!   releases have CTA-scope semantics; cluster-scope ones cost 12-35%.
//!   Before leaving, each producer waits for
//!   one more release of every stage, so no arrival from the peer reaches
//!   a CTA that has exited.
//! - The scales ride with the stages: each stage has a scale slot (B's two
//!   block scales, then A's `TM` row scales of its k-block) that the
//!   producer warpgroup's second warp fills with `cp.async` as soon as the
//!   stage is free ([`stage_scales`]); its copies count towards the stage's
//!   `full` barrier (33 arrivals: the TMA producer's and one per lane of
//!   the scale warp, each when its copies have landed; where A's scales of
//!   a k-block are one aligned run, the 128- and 256-row tiles copy them
//!   with one bulk copy whose bytes the barrier counts instead, since the
//!   scale warp's per-row address math delayed the two consumer warps on
//!   its scheduler: 2-14% on the 256 x 128 shapes, session 26). The consumers read
//!   their scales with `ld.shared` while the k-block's `wgmma`s run, and
//!   every lane's reads are ordered before the warp's release by a
//!   `bar.warp.sync`. Loading them from global memory in the consumers'
//!   loop (session 9) put a thousand loads per k-block, with their address
//!   math, into the loop and a quarter more L1 wavefronts beside the
//!   `wgmma` operand reads; staged, the 256 x 128 kernel runs 4-12% faster
//!   with column-major A scales (H200, bench/NOTES-gemm.md, session 10).
//! - The 256 x 128 tile's bf16 epilogue goes through shared memory and TMA
//!   stores when the host sets `tma_store_c` (not for f32 C or
//!   split-K): the tile has a buffer of its own size (64 KB, which leaves
//!   3 stages), so each warpgroup writes both its 64-row pieces with
//!   `stmatrix` (64-byte-swizzled boxes of 64 rows x 32 columns), meets
//!   once at a named barrier, and its first thread issues the 8 box stores,
//!   which run while the next tile's `wgmma`s do ([`store_tile_tma`]); the
//!   only wait is for the previous tile's stores to have left the buffer.
//!   (Session 10's version, two 4 KB buffers per warpgroup with a wait per
//!   32 columns, was 2-8% slower than storing from registers.) The other
//!   tiles store each thread's fragment from registers.
//! - Split-K when the tiles alone cannot fill the GPU: the host splits K into
//!   `splits` ranges of whole k-blocks and launches one CTA per (tile,
//!   split); each stores its f32 partial tile to a workspace and a second
//!   kernel ([`super::gemm_reduce`]) adds the partials in split order:
//!   deterministic, no atomics, no CTA waiting for another.
//! - Programmatic dependent launch: every thread executes
//!   `griddepcontrol.wait` after the barrier set-up, before any global
//!   access, so the host may launch the kernel with PDL (it does up to M =
//!   256, after the quantizers that trigger it early); the kernel itself
//!   does not trigger its dependents early.
//! - Shared-memory layout per stage is the TMA's 128B swizzle: row `r` of a
//!   box at byte `128 r`, 16-byte chunk `c` stored at chunk `c ^ (r % 8)`:
//!   the canonical K-major SWIZZLE_128B layout of `wgmma` (descriptor stride
//!   of 8 rows 1024 bytes, a k32 step a 32-byte advance of the start
//!   address). Stages and the B box start 1024-byte aligned.
//!
//! # Accumulation
//! The tensor cores keep the sum of chained fp8 `wgmma`s with about 13-14
//! mantissa bits, so the k-block sums are promoted into f32 accumulators
//! with the block's scales, `acc = fma(part, sa * sb, acc)`:
//! - `Fast`: once per k-block. The four k32 `wgmma`s of the block chain into
//!   a partial fragment; the warpgroup waits for them, releases the stage
//!   and promotes (one FMA per output element per k-block, a quarter of the
//!   tensor cores' time for the block). Where the warpgroup has one 64-row
//!   piece of at most 128 columns (128 x 128, 64 x 256, 64 x 128, 64 x 64,
//!   64 x 32), k-blocks
//!   alternate between two partial fragments and block `j + 1`'s chain is
//!   issued before block `j` is promoted ([`kblocks_pipelined`]), so the
//!   warpgroup keeps the tensor cores busy through its own promotion. The
//!   256 x 128 tile's two pieces leave registers for one partial fragment
//!   only: each promotion has to hide behind the other warpgroup's chain.
//!   To help it, warpgroup 1 starts each tile one chain behind warpgroup 0
//!   ([`STAGGER_BAR`]), and the test of the next stage's `full` barrier is
//!   issued before the second promotion (`test_wait`), so its round trip
//!   overlaps the FMAs instead of preceding the next chain. On the H200 the
//!   promotion still costs the 256 x 128 tile about a tenth of its time
//!   (bench/NOTES-gemm.md, sessions 19-20).
//! - `Precise`: after every k32 step, each `wgmma` from zero into one of two
//!   partial fragments in turn, promoted while the next one runs
//!   (`wait_group 1`): four FMA passes per k-block, as many issue slots as
//!   the tensor cores take, which is why it is slower. 128 x 128 only (two
//!   partial fragments and the accumulators fill the registers).
//!
//! B's scale: a fragment whose columns cross a 128-row block of B (160 and
//! 192 columns) takes the scale of each group of 8 columns with a select,
//! not a branch; fragments inside one block (64 and 128 columns at aligned
//! origins) read one scale.
//!
//! # Constraints from ptxas
//! No thread-dependent branch may run while `wgmma`s are in flight, or
//! ptxas serialises them all (info C7518): the epilogue's bounds checks are
//! predicated stores. `cargo xtask build-ptx` fails on any C751x note.
//!
//! E4M3FN only (the `wgmma` e4m3 type); E4M3FNUZ keeps the `mma.sync` path.

use core::arch::nvptx;
use core::mem::offset_of;

use super::common::{quad_transpose, Align16, Bf16Out, PredStore};
use super::gemm_schedule::{split_range, Slot, Tiles};
use crate::instr::mma::{cp_async4, cp_async_wait_n, warp_sync};
use crate::instr::store::st_global16;
use crate::instr::wgmma::{
    bulk_load, bulk_wait_all_if, bulk_wait_read_if, cluster_rank, cluster_sync, fence, fence_proxy_async_shared,
    grid_dependency_wait, mbar_arrive_expect_tx, mbar_arrive_if, mbar_arrive_on_cp_async, mbar_arrive_pair,
    mbar_expect_tx, mbar_init, mbar_init_fence, mbar_test, mbar_wait, named_arrive_if, named_barrier, named_barrier_if,
    param_block_address, setmaxnreg_dec, setmaxnreg_inc, smem_desc, stmatrix_x4, tensormap_prefetch, tma_load_2d,
    tma_load_2d_multicast, tma_store_2d_if, wgmma_commit, wgmma_fence, wgmma_k32, wgmma_wait0, wgmma_wait1, Frag,
};
use crate::instr::{fma, ld_shared16, ld_shared_f32, shared_addr, st_shared16, warp_uniform};
use crate::wgmma_contract::{
    gemm_alternate_share, gemm_alternates, gemm_bulk_scales_tile, gemm_epi_bytes, gemm_scale_slot_bytes,
    gemm_split_stride, gemm_xchg_bytes, GemmTile, GemmWgmmaParams, GEMM_CLUSTER, GEMM_CONSUMER_REGISTERS,
    GEMM_EPI_BUFFER, GEMM_EPI_COLS, GEMM_KBLOCK, GEMM_PRODUCER_REGISTERS, GEMM_SCALE_SLOT_A,
};

/// [`unroll24!`] for `0..6` (groups of four 8-column groups: 192 columns).
macro_rules! unroll6 {
    ($j:ident < $limit:expr => $body:block) => {{
        unroll24!(@each $j, $limit, $body, 0 1 2 3 4 5);
    }};
}

/// [`unroll24!`] for `0..8` (a scale-warp lane's rows: 256 / 32).
macro_rules! unroll_rows {
    ($j:ident < $limit:expr => $body:block) => {{
        unroll24!(@each $j, $limit, $body, 0 1 2 3 4 5 6 7);
    }};
}

/// Generic addresses of the tensor maps in the kernel's parameter block
/// (`crate::tensor_map`).
#[derive(Clone, Copy)]
struct Maps {
    a: u64,
    b: u64,
    c: u64,
}

/// Shared addresses of the pipeline.
#[derive(Clone, Copy)]
struct Pipe {
    /// The first stage (1024-byte aligned).
    stages: u32,
    /// The epilogue's buffer (1024-byte aligned; [`gemm_epi_bytes`], the
    /// 256 x 128 tile only): warpgroup `w`'s piece `i`, box `g` at
    /// `epi + ((2 w + i) WGN / GEMM_EPI_COLS + g) GEMM_EPI_BUFFER`.
    epi: u32,
    /// The exchange buffer of an alternating tile ([`gemm_xchg_bytes`]):
    /// warpgroup 1's fragment, 16 bytes per thread and register quad.
    xchg: u32,
    /// Stage `s`'s scales at `scales + s * gemm_scale_slot_bytes(TM)`:
    /// B's two at byte 0 and 4, A's row `r` (of the tile) at
    /// `GEMM_SCALE_SLOT_A + 4 r`.
    scales: u32,
    /// `full[s]` at `full + 8 s`: completes when stage `s` has landed and
    /// its scales are in shared memory.
    full: u32,
    /// `empty[s]` at `empty + 8 s`: completes when every consumer thread
    /// has released stage `s`.
    empty: u32,
}

/// `acc += part * scale` for a `WGN`-column fragment: `s0`/`s1` for the
/// thread's first row and the row 8 below with B's first scale block,
/// `t0`/`t1` with its second, which the 8-column groups from `former` on
/// take when `cross` (a constant per kernel; a select per group, never a
/// branch). The fences keep
/// the next `wgmma` from being issued before the promotion has read `part`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn promote<const WGN: u32>(
    acc: &mut Frag,
    part: &mut Frag,
    (s0, s1): (f32, f32),
    (t0, t1): (f32, f32),
    former: u32,
    cross: bool,
) {
    fence::<WGN>(part);
    unroll24!(j < (WGN / 8) as usize => {
        let (x, y) = if cross && j as u32 >= former { (t0, t1) } else { (s0, s1) };
        acc[4 * j] = fma(part[4 * j], x, acc[4 * j]);
        acc[4 * j + 1] = fma(part[4 * j + 1], x, acc[4 * j + 1]);
        acc[4 * j + 2] = fma(part[4 * j + 2], y, acc[4 * j + 2]);
        acc[4 * j + 3] = fma(part[4 * j + 3], y, acc[4 * j + 3]);
    });
    fence::<WGN>(acc);
}

/// Queues `COUNT` chained k32 steps (the first from zero) of the operands
/// at shared addresses `a` and `b` into `part`, as one `wgmma` group.
#[inline(always)]
unsafe fn mma_chain<const WGN: u32, const COUNT: u32>(part: &mut Frag, a: u32, b: u32) {
    fence::<WGN>(part);
    wgmma_fence();
    let mut q = 0;
    while q < COUNT {
        wgmma_k32::<WGN>(part, smem_desc(a + 32 * q), smem_desc(b + 32 * q), (q > 0) as u32);
        q += 1;
    }
    wgmma_commit();
}

/// The consumer's per-thread constants.
#[derive(Clone, Copy)]
struct Consumer {
    /// Row of A (inside the tile) of the warpgroup's fragment's first row.
    a_row: u32,
    /// Row of B (inside the stage's B box) and column of C (inside the
    /// tile) of the fragment's first column.
    b_row: u32,
    /// This thread's row inside the fragment (`16 warp + lane / 4`).
    row: u32,
    /// This thread's first column inside an 8-column group.
    col: u32,
    /// Nonzero in lane 0 of each warp, which releases stages for its warp.
    leader: u32,
    /// The lane index (lanes 0 and 1 release stages in a cluster).
    lane: u32,
    /// The warpgroup (0 or 1), warp-uniform.
    wg: u32,
}

/// The named barrier that staggers the 256-row tile's two consumer
/// warpgroups by one chain at the start of every tile: warpgroup 1 waits
/// there before its first chain until warpgroup 0's first chain has
/// completed. Without it both start together, their chains share the
/// tensor cores and end together, and both promote while the tensor cores
/// idle: on the H200 (session 19, ncu at a locked clock) the kernel took
/// 368 k cycles at 4096 x 4096 x 8192 with its promotions and 317 k with
/// them removed, DeepGEMM 312 k with its own. DeepGEMM's warpgroups are
/// uneven by construction (its first warp alone waits for and issues the
/// TMA stores of C, and sits out the B-scale loads). The epilogue uses
/// barriers 1 and 2.
const STAGGER_BAR: u32 = 3;

/// Releases a stage for this warp: lane 0 on this CTA's `empty` barrier
/// or, in a 2-CTA cluster (`MC = 2`), lanes 0 and 1 on both CTAs' (the
/// rank-0 producer multicasts A into this CTA's copy of the stage, so both
/// producers wait for both CTAs' consumers). Predicated, not branched.
///
/// The warp's lanes meet first (`bar.warp.sync`, which orders memory among
/// them): every lane read the stage's scales, and lane 0's release has to
/// cover those reads too, or nothing orders them before the scale warp's
/// next copy into the slot. compute-sanitizer's racecheck does not follow
/// this chain (nor the `cp.async` arrivals of [`stage_scales`]) and reports
/// hazards on the scale slot; a build where every consumer thread arrives
/// itself reported fewer but still some, and ran 1-2% slower on two of six
/// shapes (bench/NOTES-gemm.md, session 10).
#[inline(always)]
unsafe fn release<const MC: u32>(empty: u32, me: &Consumer) {
    warp_sync();
    if MC > 1 {
        mbar_arrive_pair(empty, me.lane);
    } else {
        mbar_arrive_if(empty, me.leader);
    }
}

/// The kernel (see the module documentation): tile `TM x BN`, fragments of
/// `WGN` columns, `PRECISE` or fast promotion, clusters of `MC` CTAs.
///
/// # Safety
/// Launched by `quant-host` with [`crate::wgmma_contract::GEMM_THREADS`]
/// threads, the tile's `smem_bytes()` of dynamic shared memory, a 1-D grid
/// of at most `tiles` CTAs (below 2^31) without a split and exactly `tiles *
/// splits` with one, and `p` as [`GemmWgmmaParams`] documents: maps of A
/// (box `TM` x 128) and B (box `BN` x 128) in global memory, 64-byte
/// aligned, `k_blocks > 0`, `1 <= splits <= k_blocks` with `splits *
/// k_blocks < 2^31`, scales and C holding what the strides and shapes
/// index (C: the f32 workspace of `splits * gemm_split_stride(m, n)`
/// elements when `splits > 1`).
#[inline(always)]
unsafe fn gemm<
    O: PredStore,
    const TM: u32,
    const BN: u32,
    const WGN: u32,
    const PRECISE: bool,
    const S: u32,
    const MC: u32,
>(
    p: GemmWgmmaParams,
    block: u64,
) {
    let maps = Maps {
        a: block + offset_of!(GemmWgmmaParams, map_a) as u64,
        b: block + offset_of!(GemmWgmmaParams, map_b) as u64,
        c: block + offset_of!(GemmWgmmaParams, map_c) as u64,
    };
    let smem: *mut u8 = core::intrinsics::gpu::gpu_launch_sized_workgroup_mem::<Align16>() as *mut u8;
    let stages = (shared_addr(smem) + 1023) & !1023;
    let stage_bytes = (TM + BN) * GEMM_KBLOCK;
    let epi = stages + S * stage_bytes;
    let xchg = epi + gemm_epi_bytes(TM, BN);
    let scales = xchg + gemm_xchg_bytes(TM, BN);
    let full = scales + S * gemm_scale_slot_bytes(TM);
    let pipe = Pipe { stages, epi, xchg, scales, full, empty: full + S * 8 };
    const { assert!(!gemm_alternates(TM, BN) || (MC == 1 && WGN == BN)) };
    // In a cluster (MC = 2) the schedule's units are pairs of horizontally
    // adjacent tiles (the same rows of A): unit column `u` holds tile
    // columns `2 u` (rank 0) and `2 u + 1` (rank 1); the host launches
    // clusters only where the tile columns pair up exactly.
    let tiles_m = p.m.div_ceil(TM).max(1);
    let tiles_n = p.n.div_ceil(BN) / MC;
    let grid = Tiles { tiles_m, tiles_n, tiles: tiles_m * tiles_n };
    // This CTA's first unit and (split launches) its split: the CTAs of a
    // split launch are numbered tile-fastest, `tiles * splits` of them, one
    // unit each; otherwise CTA (cluster) `b` takes units `b, b + grid, ...`.
    // A cluster's CTAs are consecutive blocks.
    let cta = nvptx::_block_idx_x() as u32 / MC;
    let (first, split) = (cta % grid.tiles, cta / grid.tiles);
    if split >= p.splits {
        return; // no such unit (the host never launches one; both CTAs of a cluster leave)
    }
    let tile_step = if p.splits == 1 { nvptx::_grid_dim_x() as u32 / MC } else { grid.tiles };
    let (kb_begin, kb_end) = split_range(split, p.splits, p.k_blocks);
    let tid = nvptx::_thread_idx_x() as u32;
    let consumers = 256;
    // `empty` completes when every consumer warp of the cluster has arrived
    // (lane 0 each; in a cluster lane 1 too, for the peer), or, where the
    // warpgroups take alternate k-blocks, the 4 warps of the one that
    // consumed the stage.
    let consumer_warps = if gemm_alternates(TM, BN) { consumers / 32 / 2 } else { consumers / 32 * MC };
    if tid == 0 {
        // The maps are launch parameters (`crate::tensor_map`).
        tensormap_prefetch(maps.a);
        tensormap_prefetch(maps.b);
        let mut s = 0;
        while s < S {
            // The producer's `expect_tx` arrival and the scale warp's 32
            // (one per lane, when its copies have landed).
            mbar_init(pipe.full + 8 * s, 1 + 32);
            mbar_init(pipe.empty + 8 * s, consumer_warps);
            s += 1;
        }
        mbar_init_fence();
    }
    if MC > 1 {
        cluster_sync(); // the peer's barriers exist before anything reaches them
    } else {
        nvptx::_syncthreads();
    }
    // Launched with PDL after a quantizer (which lets its dependents start
    // early), the CTA got here while that kernel may still be writing A and
    // its scales: nothing below reads global memory or writes C before the
    // kernels queued before this one have completed and their writes are
    // visible. (This kernel does not let its own dependents start early:
    // a GEMM queued after a GEMM then starts as the first one's CTAs exit,
    // not on whichever SMs free first.)
    grid_dependency_wait();

    if tid >= consumers {
        setmaxnreg_dec::<GEMM_PRODUCER_REGISTERS>();
        if tid == consumers {
            produce::<TM, BN, S, MC>(&p, maps, pipe, grid, first, tile_step, (kb_begin, kb_end));
        } else if (tid - consumers) / 32 == 1 {
            stage_scales::<TM, BN, S, MC>(&p, pipe, grid, first, tile_step, (kb_begin, kb_end), tid % 32);
        }
        return;
    }
    setmaxnreg_inc::<GEMM_CONSUMER_REGISTERS>();
    // The warpgroup, through a shuffle so that ptxas knows it is uniform
    // (see `warp_uniform`; DeepGEMM does the same).
    let wg = warp_uniform(tid / 128);
    let (warp, lane) = ((tid % 128) / 32, tid % 32);
    let me = Consumer {
        a_row: if TM == 64 { 0 } else { TM / 2 * wg },
        // (Warpgroups split the columns only where their fragment is
        // narrower than the tile.)
        b_row: if WGN < BN { WGN * wg } else { 0 },
        row: warp * 16 + lane / 4,
        col: 2 * (lane % 4),
        leader: (lane == 0) as u32,
        lane,
        wg,
    };
    // Split `s` stores its partial tile at `[s, m, n]` of the f32 workspace
    // (s = 0 without a split: C itself).
    let c = (p.c as *mut O).add((split as u64 * gemm_split_stride(p.m, p.n)) as usize);
    consume::<O, TM, BN, WGN, PRECISE, S, MC>(&p, maps.c, pipe, grid, me, c, first, tile_step, (kb_begin, kb_end));
}

/// The producer: lane 0 of the producer warpgroup. Waiting on a fresh
/// barrier for the parity before its first phase returns at once, so the
/// first `S` loads go out without waiting. In a cluster the rank-0 producer
/// loads A's box for both CTAs (multicast) and each loads its own B; every
/// `full` barrier still expects the whole stage.
#[inline(always)]
unsafe fn produce<const TM: u32, const BN: u32, const S: u32, const MC: u32>(
    p: &GemmWgmmaParams,
    maps: Maps,
    pipe: Pipe,
    grid: Tiles,
    first: u32,
    tile_step: u32,
    (kb_begin, kb_end): (u32, u32),
) {
    let stage_bytes = (TM + BN) * GEMM_KBLOCK;
    let mut slot = Slot::<S> { stage: 0, phase: 0 };
    let mut t = first;
    let rank = if MC > 1 { cluster_rank() } else { 0 };
    while t < grid.tiles {
        let (mt, nt) = grid.coords(t);
        let (m0, n0) = (mt * TM, (nt * MC + rank) * BN);
        let mut kb = kb_begin;
        while kb < kb_end {
            mbar_wait(pipe.empty + 8 * slot.stage, slot.phase ^ 1);
            let bar = pipe.full + 8 * slot.stage;
            let dst = pipe.stages + slot.stage * stage_bytes;
            mbar_arrive_expect_tx(bar, stage_bytes);
            if MC == 1 {
                tma_load_2d(dst, maps.a, kb * GEMM_KBLOCK, m0, bar);
            } else if rank == 0 {
                tma_load_2d_multicast(dst, maps.a, kb * GEMM_KBLOCK, m0, bar, (1 << MC) - 1);
            }
            tma_load_2d(dst + TM * GEMM_KBLOCK, maps.b, kb * GEMM_KBLOCK, n0, bar);
            slot.advance();
            kb += 1;
        }
        t += tile_step;
    }
    if MC > 1 {
        // Keep this CTA (its barriers) alive until both CTAs' consumers
        // have released every stage: the peer's last arrivals land here.
        let mut s = 0;
        while s < S {
            mbar_wait(pipe.empty + 8 * slot.stage, slot.phase ^ 1);
            slot.advance();
            s += 1;
        }
    }
}

/// The scale warp: the producer warpgroup's second warp copies each
/// stage's scales from global memory into the stage's scale slot with
/// `cp.async` (4 bytes a lane, no registers held), and each lane's copies
/// complete one of the stage's `full` barrier arrivals when they land
/// (`cp.async.mbarrier.arrive.noinc`), so the consumers read every scale
/// from shared memory, as they read the operands. Lane `l` copies A's rows
/// `l, l + 32, ..` of the tile (clamped to row `m - 1`: rows past M copy row
/// M - 1's scale, and their results are never stored), lanes 0 and 1 B's of
/// the tile's first and second 128-column blocks (clamped to the last).
/// In the tiles of 128 and 256 rows, where A's scales of a k-block are one
/// aligned run (the column-major layouts; `GemmWgmmaParams::a_scales_bulk`),
/// lane 0 copies the tile's with one bulk copy instead of four or eight
/// `cp.async` per lane: the warp shares its scheduler with two consumer
/// warps, whose promotions its 64-bit address math per row delayed (on
/// the H200, 4-8% faster on the 256 x 128 shapes, 4% on 128 x 160, 0-3% on
/// `Precise`'s 128 x 128; on the 64-row tiles, whose stages are short and
/// many, the bulk copy measured 7-27% slower: bench/NOTES-gemm.md, session
/// 26).
/// The warp walks the same k-blocks as the producer and never waits for a
/// copy: it may run the whole ring ahead, so the copies' latency (an L2
/// round trip under the operands' traffic) overlaps that of the stages
/// before. A first version loaded into registers and stored after the
/// loads returned, one k-block in flight: fast enough for the 256-row tile,
/// but with column-major scales (every k-block an L2 trip) it starved the
/// 128 x 128 tile, whose k-blocks take half as long (-12% at
/// 2048 x 7168 x 16384, H200, session 10).
///
/// Before this warp, each consumer thread loaded its four A scales and its
/// B scale from global memory one k-block ahead: about 1000 loads per
/// k-block of the 256 x 128 tile with 64-bit address math in the
/// consumers' loop (ncu, session 9), where this warp makes 256 + 32, and
/// with column-major A scales (the layout TMA GEMMs take) each of its load
/// instructions touches 4 sectors instead of 32.
#[inline(always)]
unsafe fn stage_scales<const TM: u32, const BN: u32, const S: u32, const MC: u32>(
    p: &GemmWgmmaParams,
    pipe: Pipe,
    grid: Tiles,
    first: u32,
    tile_step: u32,
    (kb_begin, kb_end): (u32, u32),
    lane: u32,
) {
    let rank = if MC > 1 { cluster_rank() } else { 0 };
    let last_block = p.n.div_ceil(GEMM_KBLOCK) - 1;
    let mut slot = Slot::<S> { stage: 0, phase: 0 };
    let mut t = first;
    while t < grid.tiles {
        let (mt, nt) = grid.coords(t);
        let m0 = mt * TM;
        let nb = ((nt * MC + rank) * BN / GEMM_KBLOCK + lane).min(last_block);
        let mut kb = kb_begin;
        while kb < kb_end {
            mbar_wait(pipe.empty + 8 * slot.stage, slot.phase ^ 1);
            let dst = pipe.scales + slot.stage * gemm_scale_slot_bytes(TM);
            let kb_off = kb as u64 * p.a_scale_kb_stride;
            if gemm_bulk_scales_tile(TM) && p.a_scales_bulk != 0 {
                // One bulk copy of the tile's run of scales, counted by the
                // stage's `full` barrier before lane 0 arrives below. Rows
                // past the layout's column (the last tile's, past M) keep
                // whatever the slot held: their sums are never stored.
                if lane == 0 {
                    let rows = (p.a_scale_kb_stride - m0 as u64).min(TM as u64) as u32;
                    let full = pipe.full + 8 * slot.stage;
                    mbar_expect_tx(full, 4 * rows);
                    bulk_load(dst + GEMM_SCALE_SLOT_A, p.a_scales + 4 * (kb_off + m0 as u64), 4 * rows, full);
                }
            } else {
                unroll_rows!(i < (TM / 32) as usize => {
                    let r = (m0 + lane + 32 * i as u32).min(p.m - 1) as u64;
                    let src = (p.a_scales as *const f32).add((r * p.a_scale_row_stride + kb_off) as usize);
                    cp_async4(dst + GEMM_SCALE_SLOT_A + 4 * (lane + 32 * i as u32), src, 4);
                });
            }
            if lane < 2 {
                let src = (p.b_scales as *const f32).add((nb as u64 * p.k_blocks as u64 + kb as u64) as usize);
                cp_async4(dst + 4 * lane, src, 4);
            }
            mbar_arrive_on_cp_async(pipe.full + 8 * slot.stage);
            slot.advance();
            kb += 1;
        }
        t += tile_step;
    }
    // Nothing of this thread's in flight when it exits (the consumers wait
    // for the copies anyway, through the barriers).
    cp_async_wait_n::<0>();
}

/// A consumer thread: its warpgroup's fragments of every tile of the CTA
/// (two 64-row pieces with 256-row tiles, one otherwise).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn consume<
    O: PredStore,
    const TM: u32,
    const BN: u32,
    const WGN: u32,
    const PRECISE: bool,
    const S: u32,
    const MC: u32,
>(
    p: &GemmWgmmaParams,
    map_c: u64,
    pipe: Pipe,
    grid: Tiles,
    me: Consumer,
    c: *mut O,
    first: u32,
    tile_step: u32,
    (kb_begin, kb_end): (u32, u32),
) {
    let stage_bytes = (TM + BN) * GEMM_KBLOCK;
    let two = TM == 256;
    // Fragments crossing a 128-row block of B: 160 and 192 columns.
    let cross = WGN % 128 != 0 && 128 % WGN != 0;
    let pair_ok = p.n % 2 == 0 && (c as usize) % (2 * core::mem::size_of::<O>()) == 0;
    // The epilogue through shared memory and TMA stores (the 256 x 128
    // tile's bf16 C with a map; uniform over the CTA).
    let tma_store = O::PACKED && gemm_epi_bytes(TM, BN) != 0 && p.tma_store_c != 0;
    // Zeroed as bytes (one memset that SROA splits into registers): a
    // `[0.0; FRAG]` repeat expression became a store loop that kept the
    // fragments in local memory.
    // SAFETY: all-zero bits are 0.0 in every f32.
    let mut acc: [Frag; 2] = core::mem::zeroed();
    let mut parts: [Frag; 2] = core::mem::zeroed();
    let mut slot = Slot::<S> { stage: 0, phase: 0 };
    // Alternating tiles: warpgroup `w` takes the k-blocks of the CTA's
    // stream whose index is `w` modulo 2, so its slot starts `w` ahead and
    // advances by two; `parity` is the index of the tile's first k-block,
    // modulo 2.
    let alt = gemm_alternates(TM, BN);
    if alt && me.wg == 1 {
        slot.advance();
    }
    let mut parity = 0u32;
    let mut t = first;
    while t < grid.tiles {
        let (mt, nt) = grid.coords(t);
        let nt = if MC > 1 { nt * MC + cluster_rank() } else { nt };
        // Rows of the thread in its first piece (the second is 64 below).
        let row0 = mt * TM + me.a_row + me.row;
        let col0 = nt * BN + me.b_row;
        // The fragment's B scales in the stage's slot: its first column's
        // block (0 or 1 of the tile's two) and, crossing (`cross`), the next
        // one from 8-column group `former` on.
        let n0 = nt * BN;
        let b_at = 4 * (col0 / GEMM_KBLOCK - n0 / GEMM_KBLOCK);
        let former = (GEMM_KBLOCK - col0 % GEMM_KBLOCK) / 8;
        // A's scales of the thread's rows `{0, 8, 64, 72}` below its first,
        // inside the tile.
        let a_at = GEMM_SCALE_SLOT_A + 4 * (me.a_row + me.row);
        // Whether the stage of the next k-block was seen full already (the
        // 256-row tile tests it before its second promotion, so the
        // barrier's round trip overlaps the FMAs: 1-2.5% on the H200's long-K
        // shapes, session 20). Warp-uniform in practice, but a `test_wait`
        // per lane: a lane that saw it not yet full waits properly.
        let mut ready = 0u32;
        // One k-block. (Inlined: ptxas serialises `wgmma`s whose pipeline
        // crosses a call.) `head`: the tile's first k-block, where the
        // 256-row tile's warpgroups are put one chain apart (see
        // `STAGGER_BAR`).
        let mut step = #[inline(always)]
        |head: bool| {
            if head || ready == 0 {
                mbar_wait(pipe.full + 8 * slot.stage, slot.phase);
            }
            let base = pipe.stages + slot.stage * stage_bytes;
            let (a, b) = (base + me.a_row * GEMM_KBLOCK, base + (TM + me.b_row) * GEMM_KBLOCK);
            let empty = pipe.empty + 8 * slot.stage;
            let sc = pipe.scales + slot.stage * gemm_scale_slot_bytes(TM);
            let sa = |d: u32| ld_shared_f32(sc + a_at + 4 * d);
            let [acc0, acc1] = &mut acc;
            if PRECISE {
                let (sa0, sa1, sb0) = (sa(0), sa(8), ld_shared_f32(sc + b_at));
                kblock_precise::<WGN>(&mut parts, acc0, a, b, (sa0 * sb0, sa1 * sb0), empty, me.leader);
            } else {
                let part = &mut parts[0];
                if two && head {
                    named_barrier_if(STAGGER_BAR, 256, me.wg);
                }
                mma_chain::<WGN, 4>(part, a, b);
                // Read while the `wgmma`s run; every read is done before
                // this warp releases the stage below.
                let (sa0, sa1) = (sa(0), sa(8));
                let (sa2, sa3) = if two { (sa(64), sa(72)) } else { (sa0, sa1) };
                let sb0 = ld_shared_f32(sc + b_at);
                let sb1 = if cross { ld_shared_f32(sc + b_at + 4) } else { sb0 };
                fence::<WGN>(part);
                wgmma_wait0();
                if two && head {
                    named_arrive_if(STAGGER_BAR, 256, me.wg ^ 1);
                }
                if !two {
                    release::<MC>(empty, &me);
                }
                promote::<WGN>(acc0, part, (sa0 * sb0, sa1 * sb0), (sa0 * sb1, sa1 * sb1), former, cross);
                if two {
                    // The second 64-row piece, through the same partial
                    // fragment; the stage is free once its `wgmma`s are done.
                    mma_chain::<WGN, 4>(part, a + 64 * GEMM_KBLOCK, b);
                    fence::<WGN>(part);
                    wgmma_wait0();
                    release::<MC>(empty, &me);
                    let mut next = slot;
                    next.advance();
                    ready = mbar_test(pipe.full + 8 * next.stage, next.phase);
                    promote::<WGN>(acc1, part, (sa2 * sb0, sa3 * sb0), (sa2 * sb1, sa3 * sb1), former, cross);
                }
            }
            slot.advance();
        };
        if alt {
            // This warpgroup's k-blocks of the tile: from the first whose
            // index in the stream is `wg` modulo 2, every other one.
            let count = kb_end - kb_begin;
            let own = gemm_alternate_share(me.wg, parity, count);
            parity ^= count % 2;
            let [acc0, _] = &mut acc;
            if own > 0 {
                kblocks_pipelined::<TM, BN, WGN, S, MC, 2>(pipe, &mut slot, &me, acc0, &mut parts, (a_at, b_at), own);
            }
            let is_first = (t == first) as u32;
            let is_last = (t + tile_step >= grid.tiles) as u32;
            exchange::<WGN>(pipe.xchg, acc0, me.wg, is_first, is_last);
        } else if !PRECISE && !two && WGN <= 128 {
            let [acc0, _] = &mut acc;
            kblocks_pipelined::<TM, BN, WGN, S, MC, 1>(
                pipe,
                &mut slot,
                &me,
                acc0,
                &mut parts,
                (a_at, b_at),
                kb_end - kb_begin,
            );
        } else {
            // The first k-block apart (`head`), so the loop carries no test.
            step(true);
            let mut kb = kb_begin + 1;
            while kb < kb_end {
                step(false);
                kb += 1;
            }
        }
        if tma_store {
            // The warpgroup's first row: its first piece's, not this thread's.
            store_tile_tma::<O, WGN>(map_c, &mut acc, pipe.epi, mt * TM + me.a_row, col0);
            if t + tile_step >= grid.tiles {
                // The CTA's last tile: its shared buffers stay valid until
                // the TMA unit has read them.
                bulk_wait_all_if((nvptx::_thread_idx_x() as u32 % 128 == 0) as u32);
            }
        } else {
            let interior = pair_ok && mt * TM + TM <= p.m && nt * BN + BN <= p.n;
            let quad = me.col / 2;
            // (An alternating tile's sums are warpgroup 0's after the
            // exchange; warpgroup 1's fragment is zero by then.)
            if !alt || me.wg == 0 {
                store_fragment::<O, WGN>(c, p, &mut acc[0], row0, col0 + me.col, quad, interior, pair_ok);
            }
            if two {
                store_fragment::<O, WGN>(c, p, &mut acc[1], row0 + 64, col0 + me.col, quad, interior, pair_ok);
            }
        }
        t += tile_step;
    }
}

/// The end of an alternating tile's k-blocks ([`gemm_alternates`]):
/// warpgroup 1 leaves its sums in the exchange buffer at `xchg` and zeroes
/// its fragment, warpgroup 0 adds them to its own (its sums first, so the
/// result does not depend on timing). Named barrier 1 orders the writes
/// before the reads, barrier 2 the reads before the next tile's writes
/// (skipped where there is no previous tile, `is_first`, or no next one,
/// `is_last`, so that every arrival is waited for). The barriers are
/// predicated, not branched (see `named_barrier_unaligned`); each thread
/// moves its own registers (16 bytes at `xchg + 16 (128 q + thread)`, so a
/// warp's accesses are consecutive).
#[inline(always)]
unsafe fn exchange<const WGN: u32>(xchg: u32, acc: &mut Frag, wg: u32, is_first: u32, is_last: u32) {
    let tid = nvptx::_thread_idx_x() as u32 % 128;
    let (second, first) = (wg, 1 - wg);
    fence::<WGN>(acc);
    named_barrier_if(2, 256, second & (1 - is_first));
    if second != 0 {
        unroll24!(q < (WGN / 8) as usize => {
            let at = xchg + 16 * (128 * q as u32 + tid);
            st_shared16(at, [acc[4 * q].to_bits(), acc[4 * q + 1].to_bits(), acc[4 * q + 2].to_bits(), acc[4 * q + 3].to_bits()]);
        });
        // SAFETY: all-zero bits are 0.0 in every f32.
        *acc = core::mem::zeroed();
    }
    named_arrive_if(1, 256, second);
    named_barrier_if(1, 256, first);
    if first != 0 {
        unroll24!(q < (WGN / 8) as usize => {
            let v = ld_shared16(xchg + 16 * (128 * q as u32 + tid));
            acc[4 * q] = acc[4 * q] + f32::from_bits(v[0]);
            acc[4 * q + 1] = acc[4 * q + 1] + f32::from_bits(v[1]);
            acc[4 * q + 2] = acc[4 * q + 2] + f32::from_bits(v[2]);
            acc[4 * q + 3] = acc[4 * q + 3] + f32::from_bits(v[3]);
        });
    }
    named_arrive_if(2, 256, first & (1 - is_last));
    fence::<WGN>(acc);
}

/// A tile's `count` k-blocks (at least one) for a warpgroup with one 64-row
/// piece of at most 128 columns (the 128 x 128, 64 x 256, 64 x 128, 64 x 64
/// and 64 x 32 tiles, `Fast`), software-pipelined across k-blocks through the two
/// partial fragments: k-block `j + 1`'s `wgmma`s are issued before k-block
/// `j` is released and promoted (`wait_group 1`), so each warpgroup keeps
/// the tensor cores busy through its own promotion instead of relying on
/// the other warpgroup to fill the gap. (The 256-row tile's two pieces and
/// the 160- and 192-column fragments leave no registers for a second
/// partial fragment.) The stage of k-block `j` is released once its chain
/// has completed; its scales were read right after its chain was issued.
#[inline(always)]
unsafe fn kblocks_pipelined<
    const TM: u32,
    const BN: u32,
    const WGN: u32,
    const S: u32,
    const MC: u32,
    const STEP: u32,
>(
    pipe: Pipe,
    slot: &mut Slot<S>,
    me: &Consumer,
    acc: &mut Frag,
    parts: &mut [Frag; 2],
    (a_at, b_at): (u32, u32),
    count: u32,
) {
    let stage_bytes = (TM + BN) * GEMM_KBLOCK;
    // Waits for the stage, issues its chain into `part` and reads its
    // scales: the pair to promote with and the stage's `empty` barrier.
    let issue = #[inline(always)]
    |part: &mut Frag, slot: &mut Slot<S>| -> ((f32, f32), u32) {
        mbar_wait(pipe.full + 8 * slot.stage, slot.phase);
        let base = pipe.stages + slot.stage * stage_bytes;
        let sc = pipe.scales + slot.stage * gemm_scale_slot_bytes(TM);
        mma_chain::<WGN, 4>(part, base + me.a_row * GEMM_KBLOCK, base + (TM + me.b_row) * GEMM_KBLOCK);
        let sb = ld_shared_f32(sc + b_at);
        let s = (ld_shared_f32(sc + a_at) * sb, ld_shared_f32(sc + a_at + 32) * sb);
        let empty = pipe.empty + 8 * slot.stage;
        // The warpgroup's next k-block: the next stage, or (alternating
        // tiles) the one after.
        let mut k = 0;
        while k < STEP {
            slot.advance();
            k += 1;
        }
        (s, empty)
    };
    // The previous chain has completed: free its stage, then promote.
    let finish = #[inline(always)]
    |acc: &mut Frag, part: &mut Frag, (s, empty): ((f32, f32), u32)| {
        release::<MC>(empty, me);
        promote::<WGN>(acc, part, s, s, 0, false);
    };
    // One turn: the next chain into `into`, then the pending one (in
    // `from`) freed and promoted. The loop below takes two turns with the
    // fragments swapped, so each is named by a constant (indexing `parts`
    // by a variable would put them in local memory).
    let mut turn = #[inline(always)]
    |into: &mut Frag, from: &mut Frag, pending: ((f32, f32), u32), slot: &mut Slot<S>| {
        let next = issue(into, slot);
        wgmma_wait1();
        finish(acc, from, pending);
        next
    };
    let [p0, p1] = parts;
    let mut pending = issue(p0, slot);
    let mut done = 1;
    let last_in_p1 = loop {
        if done >= count {
            break false;
        }
        pending = turn(p1, p0, pending, slot);
        done += 1;
        if done >= count {
            break true;
        }
        pending = turn(p0, p1, pending, slot);
        done += 1;
    };
    wgmma_wait0();
    if last_in_p1 {
        finish(acc, p1, pending);
    } else {
        finish(acc, p0, pending);
    }
}

/// The epilogue of a warpgroup's two 64-row pieces through shared memory
/// and TMA stores (the 256 x 128 tile's bf16 C; `tma_store_c` set): the leader
/// waits until the previous tile's stores have read the buffer (done long
/// ago: a whole tile's main loop ran since), the warpgroup meets, each warp
/// writes its 16 rows of every 8-column group with `stmatrix` (two per
/// box: rows 0-7 and 8-15) into the warpgroup's 64-byte-swizzled boxes of
/// 64 rows x 32 columns, fences them for the async proxy, the warpgroup
/// meets again and the leader issues the 8 box stores at `(col0 + 32 g,
/// row + 64 piece)`. TMA clips rows past M and columns past N. Zeroes the
/// fragments.
#[inline(always)]
unsafe fn store_tile_tma<O: PredStore, const WGN: u32>(map_c: u64, acc: &mut [Frag; 2], epi: u32, row: u32, col0: u32) {
    // Recomputed here rather than kept through the main loop, whose
    // registers the 256-row tile has none to spare for them.
    let tid = nvptx::_thread_idx_x() as u32;
    let (wg, warp, lane) = (warp_uniform(tid / 128), (tid % 128) / 32, tid % 32);
    let leader = (tid % 128 == 0) as u32;
    // This lane's stmatrix row address inside a box: matrix `lane / 8`
    // (8-column group, 16 bytes), row `16 warp + lane % 8` (+ 8 for the
    // lower half), with the 64-byte swizzle (chunk ^ ((row >> 1) & 3)).
    let chunk = lane / 8;
    let r_hi = 16 * warp + lane % 8;
    let r_lo = r_hi + 8;
    let at_hi = 64 * r_hi + 16 * (chunk ^ ((r_hi >> 1) & 3));
    let at_lo = 64 * r_lo + 16 * (chunk ^ ((r_lo >> 1) & 3));
    let bar = 1 + wg;
    let boxes = WGN / GEMM_EPI_COLS;
    // Warpgroup `wg`'s box `g` of piece `i` at `epi + ((2 wg + i) boxes + g) GEMM_EPI_BUFFER`.
    let base = epi + 2 * wg * boxes * GEMM_EPI_BUFFER;
    bulk_wait_read_if::<0>(leader);
    named_barrier(bar, 128);
    unroll2!(i => {
        let f = &acc[i];
        unroll6!(g < boxes as usize => {
            let j = 4 * g;
            let buf = base + (i as u32 * boxes + g as u32) * GEMM_EPI_BUFFER;
            stmatrix_x4(buf + at_hi, [
                O::pack(f[4 * j], f[4 * j + 1]),
                O::pack(f[4 * j + 4], f[4 * j + 5]),
                O::pack(f[4 * j + 8], f[4 * j + 9]),
                O::pack(f[4 * j + 12], f[4 * j + 13]),
            ]);
            stmatrix_x4(buf + at_lo, [
                O::pack(f[4 * j + 2], f[4 * j + 3]),
                O::pack(f[4 * j + 6], f[4 * j + 7]),
                O::pack(f[4 * j + 10], f[4 * j + 11]),
                O::pack(f[4 * j + 14], f[4 * j + 15]),
            ]);
        });
    });
    fence_proxy_async_shared();
    named_barrier(bar, 128);
    unroll2!(i => {
        unroll6!(g < boxes as usize => {
            let buf = base + (i as u32 * boxes + g as u32) * GEMM_EPI_BUFFER;
            tma_store_2d_if(map_c, col0 + GEMM_EPI_COLS * g as u32, row + 64 * i as u32, buf, leader);
        });
    });
    // SAFETY: all-zero bits are 0.0 in every f32.
    *acc = core::mem::zeroed();
}

/// The epilogue of one fragment, rows `row, row + 8` from column `col` on
/// (8 columns apart; `quad` = lane % 4), then zeroes it. A tile wholly
/// inside C (`interior`, a CTA-uniform test made after this warpgroup's
/// last `wait_group 0`, with nothing of its in flight) stores from one base
/// address with constant offsets, bf16 as whole 16-byte groups; edge tiles
/// test every element with predicated stores.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn store_fragment<O: PredStore, const WGN: u32>(
    c: *mut O,
    p: &GemmWgmmaParams,
    acc: &mut Frag,
    row: u32,
    col: u32,
    quad: u32,
    interior: bool,
    pair_ok: bool,
) {
    let wide = O::PACKED && p.n % 8 == 0 && (c as usize) % 16 == 0;
    if interior && wide {
        // bf16: the quad of lanes holding a row's 8-column groups
        // `4 g .. 4 g + 4` (a 4-byte pair each) transposes them, and each
        // lane stores one whole group as 16 bytes: a quarter of the store
        // instructions, each writing whole 32-byte sectors.
        let first = col - 2 * quad; // the fragment's first column
        let base = c.add((row as u64 * p.n as u64 + (first + 8 * quad) as u64) as usize);
        let below = base.add(8 * p.n as usize);
        unroll6!(g < (WGN / 32) as usize => {
            let j = 4 * g;
            let upper = [
                O::pack(acc[4 * j], acc[4 * j + 1]),
                O::pack(acc[4 * j + 4], acc[4 * j + 5]),
                O::pack(acc[4 * j + 8], acc[4 * j + 9]),
                O::pack(acc[4 * j + 12], acc[4 * j + 13]),
            ];
            let lower = [
                O::pack(acc[4 * j + 2], acc[4 * j + 3]),
                O::pack(acc[4 * j + 6], acc[4 * j + 7]),
                O::pack(acc[4 * j + 10], acc[4 * j + 11]),
                O::pack(acc[4 * j + 14], acc[4 * j + 15]),
            ];
            st_global16(base.add(32 * g), quad_transpose(upper, quad));
            st_global16(below.add(32 * g), quad_transpose(lower, quad));
        });
    } else if interior {
        let base = c.add((row as u64 * p.n as u64 + col as u64) as usize);
        let below = base.add(8 * p.n as usize);
        unroll24!(j < (WGN / 8) as usize => {
            O::store_pair(base.add(8 * j), acc[4 * j], acc[4 * j + 1]);
            O::store_pair(below.add(8 * j), acc[4 * j + 2], acc[4 * j + 3]);
        });
    } else {
        unroll24!(j < (WGN / 8) as usize => {
            let cc = col + 8 * j as u32;
            O::store_pair_if(c, p.m, p.n, row, cc, acc[4 * j], acc[4 * j + 1], pair_ok);
            O::store_pair_if(c, p.m, p.n, row + 8, cc, acc[4 * j + 2], acc[4 * j + 3], pair_ok);
        });
    }
    // SAFETY: all-zero bits are 0.0 in every f32.
    *acc = core::mem::zeroed();
}

/// One k-block of `Precise`: four k32 steps, each a single `wgmma` from
/// zero into one of two partial fragments in turn, promoted while the next
/// one runs (`wait_group 1`). The `leader` lane arrives on `empty` after the
/// last `wgmma`.
#[inline(always)]
unsafe fn kblock_precise<const WGN: u32>(
    parts: &mut [Frag; 2],
    acc: &mut Frag,
    a: u32,
    b: u32,
    s: (f32, f32),
    empty: u32,
    leader: u32,
) {
    let [p0, p1] = parts;
    mma_chain::<WGN, 1>(p0, a, b);
    mma_chain::<WGN, 1>(p1, a + 32, b + 32);
    wgmma_wait1();
    promote::<WGN>(acc, p0, s, s, 0, false);
    mma_chain::<WGN, 1>(p0, a + 64, b + 64);
    wgmma_wait1();
    promote::<WGN>(acc, p1, s, s, 0, false);
    mma_chain::<WGN, 1>(p1, a + 96, b + 96);
    wgmma_wait1();
    promote::<WGN>(acc, p0, s, s, 0, false);
    wgmma_wait0();
    warp_sync(); // every lane's scale reads before lane 0's release (see `release`)
    mbar_arrive_if(empty, leader);
    promote::<WGN>(acc, p1, s, s, 0, false);
}

/// The kernels, named as `wgmma_contract::gemm_wgmma_kernel` lists them.
macro_rules! entries {
    ($($name:ident: $out:ty, $tile:ident, $tm:literal x $bn:literal / $wgn:literal, $precise:literal, cluster $mc:literal;)*) => {$(
        /// A `wgmma` GEMM kernel; see the module documentation.
        ///
        /// # Safety
        /// Launched by `quant-host` with checked parameters (see `gemm`;
        /// with cluster dimension `$mc`, and when it is 2: no split, the
        /// tile columns even, the grid a multiple of 2).
        #[no_mangle]
        pub unsafe extern "ptx-kernel" fn $name(p: GemmWgmmaParams) {
            let block = param_block_address!($name);
            const _: () = assert!(GemmTile::$tile.rows() == $tm && GemmTile::$tile.cols() == $bn);
            const _: () = assert!(GemmTile::$tile.wg_cols() == $wgn);
            const _: () = assert!($mc == 1 || ($mc == GEMM_CLUSTER && !$precise));
            gemm::<$out, $tm, $bn, $wgn, $precise, { GemmTile::$tile.stages() }, $mc>(p, block)
        }
    )*};
}

entries! {
    gemm_wgmma_fast_128x128_bf16: Bf16Out, M128N128, 128 x 128 / 128, false, cluster 1;
    gemm_wgmma_fast_128x128_f32: f32, M128N128, 128 x 128 / 128, false, cluster 1;
    gemm_wgmma_fast_128x160_bf16: Bf16Out, M128N160, 128 x 160 / 160, false, cluster 1;
    gemm_wgmma_fast_128x160_f32: f32, M128N160, 128 x 160 / 160, false, cluster 1;
    gemm_wgmma_fast_128x192_bf16: Bf16Out, M128N192, 128 x 192 / 192, false, cluster 1;
    gemm_wgmma_fast_128x192_f32: f32, M128N192, 128 x 192 / 192, false, cluster 1;
    gemm_wgmma_fast_64x256_bf16: Bf16Out, M64N256, 64 x 256 / 128, false, cluster 1;
    gemm_wgmma_fast_64x256_f32: f32, M64N256, 64 x 256 / 128, false, cluster 1;
    gemm_wgmma_fast_64x128_bf16: Bf16Out, M64N128, 64 x 128 / 128, false, cluster 1;
    gemm_wgmma_fast_64x128_f32: f32, M64N128, 64 x 128 / 128, false, cluster 1;
    gemm_wgmma_fast_256x128_bf16: Bf16Out, M256N128, 256 x 128 / 128, false, cluster 1;
    gemm_wgmma_fast_256x128_f32: f32, M256N128, 256 x 128 / 128, false, cluster 1;
    gemm_wgmma_fast_64x64_bf16: Bf16Out, M64N64, 64 x 64 / 64, false, cluster 1;
    gemm_wgmma_fast_64x64_f32: f32, M64N64, 64 x 64 / 64, false, cluster 1;
    gemm_wgmma_fast_64x32_bf16: Bf16Out, M64N32, 64 x 32 / 32, false, cluster 1;
    gemm_wgmma_fast_64x32_f32: f32, M64N32, 64 x 32 / 32, false, cluster 1;
    gemm_wgmma_precise_128x128_bf16: Bf16Out, M128N128, 128 x 128 / 128, true, cluster 1;
    gemm_wgmma_precise_128x128_f32: f32, M128N128, 128 x 128 / 128, true, cluster 1;
    gemm_wgmma_fast_256x128_mc2_bf16: Bf16Out, M256N128, 256 x 128 / 128, false, cluster 2;
    gemm_wgmma_fast_256x128_mc2_f32: f32, M256N128, 256 x 128 / 128, false, cluster 2;
    gemm_wgmma_fast_128x128_mc2_bf16: Bf16Out, M128N128, 128 x 128 / 128, false, cluster 2;
    gemm_wgmma_fast_128x128_mc2_f32: f32, M128N128, 128 x 128 / 128, false, cluster 2;
    gemm_wgmma_fast_128x192_mc2_bf16: Bf16Out, M128N192, 128 x 192 / 192, false, cluster 2;
    gemm_wgmma_fast_128x192_mc2_f32: f32, M128N192, 128 x 192 / 192, false, cluster 2;
}
