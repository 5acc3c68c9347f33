//! `mm_fp8_blockscale` at decode and small sizes (M <= 32) on Hopper: B
//! streamed once through a deep TMA ring, multiplied with `wgmma` on C
//! transposed (sm_90a only).
//!
//! At small M the GEMM is a read of B: 1 x 4096 x 8192 moves 33.5 MB for
//! 67 MFLOP. What decides its time is how many of B's bytes are in flight
//! per SM and how much fixed cost surrounds the stream, not the tensor
//! cores. The `wgmma` kernels' tiles put A's few rows on the `M` side of
//! the instruction (64 rows, 48 or more of them zero) and need split-K and
//! a second kernel to fill the GPU. This kernel gives each SM one deep ring
//! of narrow stages, needs no split, and swaps the operands: B's rows are
//! the `M` side of `m64nNk32` and A's `N` rows (zero past M) the `N` side,
//! so each `wgmma` does useful work on 64 of B's rows and the tensor cores
//! are never the limit. Up to M = 32 the same holds while a slab of B is
//! narrow (32 x 4096 x 7168: 32 rows per SM), where the `wgmma` tiles split
//! K in two and pay a reduction.
//!
//! # Widths
//! One kernel per [`StreamRows`]: `N` = 16 or 32 rows of A (the host takes
//! the narrower that holds M). A thread holds `N / 2` accumulators per
//! 64-row piece, so the slab has at most `64 / N` pieces (256 or 128 rows of
//! B) and both widths need the same registers. (At 64 rows a slab of 32
//! rows would fill half of each 64-row piece: twice the tensor work of a 64
//! x 32 tile, and slower than the `wgmma` tiles, bench/NOTES-gemm.md.)
//!
//! # Tiling
//! - The unit of work is a slab: `slab` consecutive rows of B (a multiple of
//!   8, at most 256; the host picks it so that `ceil(n / slab)` slabs share
//!   out evenly over the SMs: `crate::stream_contract::StreamLayout`) times
//!   all of K. CTA `b` takes slabs `b, b + grid, ...`; one CTA per SM.
//! - A stage is one k-block (128 bytes of K): the slab's box of B at the
//!   stage's start, then A's `N`-row box (rows past M and bytes past K
//!   zero-filled by TMA, so tails need no masking), both with the 128-byte
//!   swizzle. The slab is `pieces = ceil(slab / 64)` pieces of 64 rows; a
//!   stage is at least `64 * pieces` rows long, so a piece's rows past the
//!   slab read bytes of the same stage (A's box or padding) and only give
//!   results that are never stored. The ring has as many stages as fit in
//!   shared memory, a power of two up to 64 (16 of 8 KB for 32-row slabs, 4
//!   of 34 KB for 256-row ones).
//! - One producer warp (its lane 0) walks the CTA's slabs and k-blocks,
//!   issuing the two TMA copies of a stage when its `empty` barrier allows;
//!   the stage's `full` barrier completes when both have landed.
//! - Two consumer warpgroups take the CTA's k-blocks in turn (phases), so
//!   one's barrier wait, `wgmma` latency and promotion overlap the other's.
//!   Per k-block a warpgroup issues, for each piece, four `m64n16k32` steps
//!   whose descriptors point at the piece's rows and at A's box (a k32 step
//!   is a 32-byte advance inside the swizzled 128-byte rows, as in the
//!   `wgmma` kernels), waits for them, releases the stage (lane 0 of each
//!   warp) and promotes. At the end of a slab the second phase leaves its
//!   accumulators in shared memory, the first adds them (phase order) and
//!   stores C.
//! - Accumulation, per the contract's modes: `Fast` chains the four k32
//!   steps of a piece into one partial and promotes once per k-block,
//!   `acc = fma(part, sa * sb, acc)`; `Precise` gives each k32 step its own
//!   partial (from zero) and promotes each, 64 registers of partials at a
//!   time (two groups of `wgmma`s per k-block: 2 pieces of 4 steps at `N` =
//!   16, 1 piece at 32; the 3- and 4-piece slabs spilled with all at
//!   once). Thread `(warp w, lane (r, q))` holds rows `16 w + r` and `+ 8`
//!   of each piece and columns (A's rows) `8 j + 2 q` and `8 j + 2 q + 1`
//!   for `j < N / 8`.
//! - Scales ride with the stages: a second producer warp copies each
//!   k-block's scales (A's `N`, B's of the slab's 128-row blocks) into the
//!   stage's scale slot with `cp.async` when the stage is free, and they
//!   count towards its `full` barrier ([`stage_scales`]); the consumers
//!   read them from shared memory while the k-block's `wgmma`s run.
//!
//! # Programmatic dependent launch
//! The host launches the kernel with PDL (`QUANT_GEMM_PDL=off` turns it
//! off), so its CTAs may start while the kernel before it on the stream
//! finishes, as SMs free up. Thread 0 lets the kernel after this one start
//! the same way (`griddepcontrol.launch_dependents`), prefetches the
//! tensor maps (launch parameters, `crate::tensor_map`) and sets up the
//! barriers; then every thread waits on the grid dependency
//! (`griddepcontrol.wait`) before anything reads A, B or the scales or
//! writes C. So the launch and the prologue overlap the previous
//! kernel's last CTAs. (Prefetching B into L2 before the wait, which would
//! be correct since L2 is the point of coherence, measured 1-4 us slower.)
//!
//! # Constraints from ptxas
//! As in `super::gemm_wgmma`: no thread-dependent branch while `wgmma`s
//! are in flight (the stores are predicated); `cargo xtask build-ptx`
//! fails on any C751x note.

use core::arch::nvptx;
use core::mem::offset_of;

use super::common::{Align16, Bf16Out, PredStore};
use crate::instr::mma::{cp_async4, cp_async_wait_n, warp_sync};
use crate::instr::wgmma::{
    fence, grid_dependency_wait, mbar_arrive_expect_tx, mbar_arrive_if, mbar_arrive_on_cp_async, mbar_init,
    mbar_init_fence, mbar_wait, named_barrier_unaligned, param_block_address, smem_desc, tensormap_prefetch,
    tma_load_2d, wgmma_commit, wgmma_fence, wgmma_k32, wgmma_wait0, Frag,
};
use crate::instr::{fma, grid_launch_dependents, ld_shared16, ld_shared_f32, shared_addr, st_shared16, warp_uniform};
use crate::stream_contract::{
    GemmStreamParams, StreamLayout, StreamRows, GEMM_STREAM_PIECE_ROWS, GEMM_STREAM_THREAD_PARTIAL_BYTES,
};
use crate::wgmma_contract::GEMM_KBLOCK;

// The piece loops are `unroll4!`: the 16-row width's 4 pieces are the most.
const _: () = assert!(StreamRows::R16.max_pieces() == 4 && StreamRows::R32.max_pieces() <= 4);

/// [`unroll24!`] for `0..16` (a 32-column fragment's registers).
macro_rules! unroll16 {
    ($j:ident < $limit:expr => $body:block) => {{
        unroll24!(@each $j, $limit, $body, 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15);
    }};
}

/// Bytes of a piece's 64 rows in a stage.
const PIECE_BYTES: u32 = GEMM_STREAM_PIECE_ROWS * GEMM_KBLOCK;

/// Generic addresses of the tensor maps in the kernel's parameter block
/// (`crate::tensor_map`).
#[derive(Clone, Copy)]
struct Maps {
    a: u64,
    b: u64,
}

/// The ring of stages in shared memory.
#[derive(Clone, Copy)]
struct Ring {
    /// Stage 0 (1024-byte aligned); stage `s` at `stages + s * stage_bytes`.
    stages: u32,
    stage_bytes: u32,
    /// The phases' accumulators (see `GEMM_STREAM_REDUCE_BYTES`).
    reduce: u32,
    /// Stage `s`'s scale slot at `scales + s * slot_bytes`.
    scales: u32,
    slot_bytes: u32,
    /// `full[s]` at `full + 8 s`, `empty[s]` at `empty + 8 s`.
    full: u32,
    empty: u32,
}

impl Ring {
    /// `(stage address, scale slot, full, empty, parity)` of the CTA's
    /// k-block number `c`.
    #[inline(always)]
    fn at(&self, l: &StreamLayout, c: u32) -> (u32, u32, u32, u32, u32) {
        let (s, parity) = l.slot(c);
        (
            self.stages + s * self.stage_bytes,
            self.scales + s * self.slot_bytes,
            self.full + 8 * s,
            self.empty + 8 * s,
            parity,
        )
    }
}

/// The kernel holding `ROWS` rows of A (see the module documentation).
///
/// # Safety
/// Launched by `quant-host` with `StreamLayout::new(p.slab, rows)`'s threads
/// and shared memory, a 1-D grid of at most `ceil(n / slab)` CTAs, and `p`
/// as [`GemmStreamParams`] documents: maps of A (box `ROWS` x 128) and B
/// (box `slab` x 128) in global memory, `1 <= m <= ROWS`, `k_blocks >= 1`,
/// scales and C holding what the strides and shapes index.
#[inline(always)]
unsafe fn gemm_stream<O: PredStore, const PRECISE: bool, const ROWS: u32>(p: GemmStreamParams, block: u64) {
    let Some(rows) = StreamRows::for_m(ROWS) else {
        return; // not a width (no entry has one)
    };
    let Some(l) = StreamLayout::new(p.slab, rows) else {
        return; // the host never launches one
    };
    let smem: *mut u8 = core::intrinsics::gpu::gpu_launch_sized_workgroup_mem::<Align16>() as *mut u8;
    let stages = (shared_addr(smem) + 1023) & !1023;
    let reduce = stages + l.stages() * l.stage_bytes();
    let scales = reduce + crate::stream_contract::GEMM_STREAM_REDUCE_BYTES;
    let full = scales + l.stages() * rows.scale_slot_bytes();
    let ring = Ring {
        stages,
        stage_bytes: l.stage_bytes(),
        reduce,
        scales,
        slot_bytes: rows.scale_slot_bytes(),
        full,
        empty: full + 8 * l.stages(),
    };
    let maps = Maps {
        a: block + offset_of!(GemmStreamParams, map_a) as u64,
        b: block + offset_of!(GemmStreamParams, map_b) as u64,
    };
    let tid = nvptx::_thread_idx_x() as u32;
    let (warp, lane) = (warp_uniform(tid / 32), tid % 32);
    if tid == 0 {
        // A kernel launched after this one with PDL may start on the SMs
        // this grid leaves free, and on each SM as its CTA exits.
        grid_launch_dependents();
        // The maps are launch parameters: no earlier kernel writes them.
        tensormap_prefetch(maps.a);
        tensormap_prefetch(maps.b);
        let mut s = 0;
        while s < l.stages() {
            // The TMA producer's arrival and one per lane of the scale warp.
            mbar_init(ring.full + 8 * s, 33);
            // Lane 0 of each warp of the k-block's warpgroup.
            mbar_init(ring.empty + 8 * s, 4);
            s += 1;
        }
        mbar_init_fence();
    }
    nvptx::_syncthreads();
    // Launched with PDL, the kernel before this one may still be running:
    // nothing below reads global memory or writes C before it has
    // completed and its writes are visible.
    grid_dependency_wait();
    let slabs = p.n.div_ceil(l.slab);
    if warp == l.consumers() {
        if lane == 0 {
            produce(&p, maps, l, ring, slabs);
        }
    } else if warp == l.consumers() + 1 {
        stage_scales::<ROWS>(&p, l, ring, slabs, lane);
    } else if warp < l.consumers() {
        // Only the piece counts of this width (`StreamRows::max_pieces`):
        // the others would need more registers than a thread has.
        match l.pieces {
            1 => consume::<O, PRECISE, ROWS, 1>(&p, l, ring, slabs, warp, lane),
            2 => consume::<O, PRECISE, ROWS, 2>(&p, l, ring, slabs, warp, lane),
            3 if ROWS <= 16 => consume::<O, PRECISE, ROWS, 3>(&p, l, ring, slabs, warp, lane),
            4 if ROWS <= 16 => consume::<O, PRECISE, ROWS, 4>(&p, l, ring, slabs, warp, lane),
            _ => {} // `StreamLayout::new` allows no other
        }
    }
}

/// The producer: every k-block of every slab of the CTA, in order, into
/// the ring (a fresh `empty` barrier passes the first round at once).
#[inline(always)]
unsafe fn produce(p: &GemmStreamParams, maps: Maps, l: StreamLayout, ring: Ring, slabs: u32) {
    let mut c = 0u32;
    let mut u = nvptx::_block_idx_x() as u32;
    while u < slabs {
        let mut kb = 0;
        while kb < p.k_blocks {
            let (stage, _, full, empty, parity) = ring.at(&l, c);
            mbar_wait(empty, parity ^ 1);
            mbar_arrive_expect_tx(full, l.stage_load_bytes());
            tma_load_2d(stage, maps.b, kb * GEMM_KBLOCK, u * l.slab, full);
            tma_load_2d(stage + l.a_offset(), maps.a, kb * GEMM_KBLOCK, 0, full);
            c = c.wrapping_add(1);
            kb += 1;
        }
        u += nvptx::_grid_dim_x() as u32;
    }
}

/// The scale warp: for every k-block of the CTA, as soon as its stage is
/// free, copies the k-block's scales into the stage's scale slot with
/// `cp.async`: index `i = lane + 32 j` (`j` up to 1) copies A's row `i`
/// for `i < ROWS` (zero past M), B's 128-row block `i - ROWS` from the
/// slab's first (clamped to B's last) for the next 4; each lane's copies
/// arrive on the stage's `full` barrier when they land.
///
/// Why not in the consumers: a global load issued by a consumer waits
/// behind the TMA bytes already in flight to its SM (64 KB or more, about 2
/// us at an SM's share of the bandwidth), and the k-block's promotion
/// needs it. The first `wgmma` version loaded them there and took 88 us
/// for 1 x 4096 x 8192 (ncu: 80% of the stalls on those loads). Issued
/// here, with the stage's TMA copies, they arrive with the stage.
#[inline(always)]
unsafe fn stage_scales<const ROWS: u32>(p: &GemmStreamParams, l: StreamLayout, ring: Ring, slabs: u32, lane: u32) {
    let last = (p.n - 1) / GEMM_KBLOCK;
    let mut c = 0u32;
    let mut u = nvptx::_block_idx_x() as u32;
    while u < slabs {
        let first_block = u * l.slab / GEMM_KBLOCK;
        let mut kb = 0;
        while kb < p.k_blocks {
            let (_, slot, full, empty, parity) = ring.at(&l, c);
            mbar_wait(empty, parity ^ 1);
            unroll2!(j => {
                let i = lane + 32 * j as u32;
                if 32 * (j as u32) < ROWS + 4 {
                    if i < ROWS {
                        let t = i.min(p.m - 1) as u64;
                        let at = t * p.a_scale_row_stride + kb as u64 * p.a_scale_kb_stride;
                        let bytes = if i < p.m { 4 } else { 0 };
                        cp_async4(slot + 4 * i, (p.a_scales as *const f32).add(at as usize), bytes);
                    } else if i < ROWS + 4 {
                        let b = i - ROWS;
                        let nb = (first_block + b).min(last) as u64;
                        let at = nb * p.k_blocks as u64 + kb as u64;
                        let to = slot + scale_slot_b::<ROWS>() + 4 * b;
                        cp_async4(to, (p.b_scales as *const f32).add(at as usize), 4);
                    }
                }
            });
            mbar_arrive_on_cp_async(full);
            c = c.wrapping_add(1);
            kb += 1;
        }
        u += nvptx::_grid_dim_x() as u32;
    }
    // Nothing of this thread's in flight when it exits (the consumers wait
    // for the copies anyway, through the barriers).
    cp_async_wait_n::<0>();
}

/// Offset of B's scales in a scale slot of the `ROWS`-row kernel
/// (`StreamRows::scale_slot_b`), a constant of the kernel.
#[inline(always)]
const fn scale_slot_b<const ROWS: u32>() -> u32 {
    match StreamRows::for_m(ROWS) {
        Some(rows) => rows.scale_slot_b(),
        None => 0, // not a width (no entry has one)
    }
}

/// A thread's A scales: those of its columns `8 j + 2 q + (i % 2)` for
/// `i = 2 j, 2 j + 1` (the first `ROWS / 4`).
type AScales = [f32; 8];

/// A consumer thread's scales of one k-block from the stage's scale slot:
/// A's of its columns and B's of its two rows of each piece
/// (`blocks[pc][h]`: the row's 128-row block counted from the slab's first).
#[inline(always)]
unsafe fn read_scales<const ROWS: u32, const P: usize>(
    slot: u32,
    q: u32,
    blocks: &[[u32; 2]; P],
) -> (AScales, [[f32; 2]; P]) {
    let mut a: AScales = [0.0; 8];
    unroll8!(i => {
        if i < ROWS as usize / 4 {
            let t = 8 * (i as u32 / 2) + 2 * q + i as u32 % 2;
            a[i] = ld_shared_f32(slot + 4 * t);
        }
    });
    let mut b = [[0f32; 2]; P];
    unroll4!(pc => {
        if pc < P {
            unroll2!(h => {
                b[pc][h] = ld_shared_f32(slot + scale_slot_b::<ROWS>() + 4 * blocks[pc][h]);
            });
        }
    });
    (a, b)
}

/// The scale of fragment register `e` (row half `(e % 4) / 2`, column
/// `8 (e / 4) + 2 q + e % 2`).
#[inline(always)]
fn scale_of(sa: &AScales, sb: &[f32; 2], e: usize) -> f32 {
    sa[2 * (e / 4) + e % 2] * sb[(e % 4) / 2]
}

/// Partials a group of `Precise` k32 steps fills: 64 registers' worth of
/// `m64n{ROWS}` fragments (8 or 4).
#[inline(always)]
const fn precise_partials(rows: u32) -> usize {
    (128 / rows) as usize
}

/// The partial that step `s` of piece `pc` writes: the piece's own in
/// `Fast` (its four steps chained), in `Precise` slot `(4 pc + s) % n` of
/// its group's `n` ([`precise_partials`]).
#[inline(always)]
const fn partial_of<const PRECISE: bool, const ROWS: u32>(pc: usize, s: usize) -> usize {
    if PRECISE {
        (4 * pc + s) % precise_partials(ROWS)
    } else {
        pc
    }
}

/// The group of `wgmma`s that step `s` of piece `pc` is issued in: all in
/// one in `Fast`; in `Precise`, as many steps as have partials, in order.
#[inline(always)]
const fn group_of<const PRECISE: bool, const ROWS: u32>(pc: usize, s: usize) -> usize {
    if PRECISE {
        (4 * pc + s) / precise_partials(ROWS)
    } else {
        0
    }
}

/// Groups of `wgmma`s per k-block (`4 P` steps, [`precise_partials`] at a
/// time: at most 2, since `P * ROWS <= 64`).
#[inline(always)]
const fn groups<const PRECISE: bool, const ROWS: u32, const P: usize>() -> usize {
    if PRECISE {
        (4 * P).div_ceil(precise_partials(ROWS))
    } else {
        1
    }
}

/// Whether step `s` of piece `pc` starts a partial in group `g` (in `Fast`
/// only step 0 does: the others add to it).
#[inline(always)]
const fn starts_partial<const PRECISE: bool, const ROWS: u32>(pc: usize, s: usize, g: usize) -> bool {
    group_of::<PRECISE, ROWS>(pc, s) == g && (PRECISE || s == 0)
}

/// A consumer warpgroup's thread: the k-blocks of its phase of every slab
/// of the CTA, for a slab of `P` pieces and `ROWS` rows of A.
#[inline(always)]
unsafe fn consume<O: PredStore, const PRECISE: bool, const ROWS: u32, const P: usize>(
    p: &GemmStreamParams,
    l: StreamLayout,
    ring: Ring,
    slabs: u32,
    warp: u32,
    lane: u32,
) {
    // Accumulators per piece, and chunks of 4 of them.
    let half = ROWS as usize / 2;
    let chunks = half / 4;
    let (phase, w) = (warp / 4, warp % 4);
    let (r, q) = (lane / 4, lane % 4);
    // The thread's first row in each piece (the second is 8 below).
    let row = 16 * w + r;
    let leader = (lane == 0) as u32;
    let c = p.c as *mut O;
    // Chunk `i` (of 4 accumulators) of this thread in the phases' buffer,
    // for phase `ph > 0`: chunks of a warp's lanes side by side (16 bytes
    // apart, so its stores meet no bank twice).
    let chunk_at = |ph: u32, i: u32| {
        ring.reduce + (((ph - 1) * (GEMM_STREAM_THREAD_PARTIAL_BYTES / 16) + i) * 128 + 32 * w + lane) * 16
    };
    // SAFETY (of the zeroed arrays): all-zero bits are 0.0 in every f32.
    let mut part: [Frag; 8] = core::mem::zeroed();
    let mut c0 = 0u32; // the CTA's k-block number at the slab's start
    let mut u = nvptx::_block_idx_x() as u32;
    while u < slabs {
        let n0 = u * l.slab;
        // The 128-row block of each of the thread's rows, from the slab's
        // first (0 to 2; rows past the slab or N are never stored).
        let mut blocks = [[0u32; 2]; P];
        unroll4!(pc => {
            if pc < P {
                unroll2!(h => {
                    let n = n0 + GEMM_STREAM_PIECE_ROWS * pc as u32 + row + 8 * h as u32;
                    blocks[pc][h] = n / GEMM_KBLOCK - n0 / GEMM_KBLOCK;
                });
            }
        });
        let mut acc: [Frag; P] = core::mem::zeroed();
        let mut kb = l.first_kblock(phase, c0);
        while kb < p.k_blocks {
            let next = kb + l.phases;
            let (stage, slot, full, empty, parity) = ring.at(&l, c0.wrapping_add(kb));
            let a_box = stage + l.a_offset();
            mbar_wait(full, parity);
            // The scales, read while the first group's `wgmma`s run.
            let mut scales = None;
            unroll2!(g => {
                if g < groups::<PRECISE, ROWS, P>() {
                    unroll4!(pc => {
                        unroll4!(s => {
                            if pc < P && starts_partial::<PRECISE, ROWS>(pc, s, g) {
                                fence::<ROWS>(&mut part[partial_of::<PRECISE, ROWS>(pc, s)]);
                            }
                        });
                    });
                    wgmma_fence();
                    unroll4!(s => {
                        unroll4!(pc => {
                            if pc < P && group_of::<PRECISE, ROWS>(pc, s) == g {
                                let b_desc = smem_desc(stage + PIECE_BYTES * pc as u32 + 32 * s as u32);
                                let a_desc = smem_desc(a_box + 32 * s as u32);
                                let d = &mut part[partial_of::<PRECISE, ROWS>(pc, s)];
                                // `Precise`: each k32 step from zero into its
                                // own partial; `Fast`: the four chained.
                                let accumulate = (!PRECISE && s > 0) as u32;
                                wgmma_k32::<ROWS>(d, b_desc, a_desc, accumulate);
                            }
                        });
                    });
                    wgmma_commit();
                    let (sa, sb) = match scales {
                        Some(x) => x,
                        None => read_scales::<ROWS, P>(slot, q, &blocks),
                    };
                    scales = Some((sa, sb));
                    unroll4!(pc => {
                        unroll4!(s => {
                            if pc < P && starts_partial::<PRECISE, ROWS>(pc, s, g) {
                                fence::<ROWS>(&mut part[partial_of::<PRECISE, ROWS>(pc, s)]);
                            }
                        });
                    });
                    wgmma_wait0();
                    if g + 1 == groups::<PRECISE, ROWS, P>() {
                        // The `wgmma`s' reads of the stage are done; lane 0
                        // releases it for the warp.
                        warp_sync();
                        mbar_arrive_if(empty, leader);
                    }
                    unroll4!(pc => {
                        if pc < P {
                            unroll16!(e < half => {
                                let x = scale_of(&sa, &sb[pc], e);
                                unroll4!(s => {
                                    if starts_partial::<PRECISE, ROWS>(pc, s, g) {
                                        let d = &part[partial_of::<PRECISE, ROWS>(pc, s)];
                                        acc[pc][e] = fma(d[e], x, acc[pc][e]);
                                    }
                                });
                            });
                        }
                    });
                }
            });
            kb = next;
        }
        // Phase 1 leaves its accumulators, phase 0 adds them. The barrier
        // is the unaligned form: LLVM may give each arm of `phase > 0` its
        // own copy of it (see `named_barrier_unaligned`); each warp meets
        // it converged.
        if phase > 0 {
            unroll4!(pc => {
                if pc < P {
                    unroll4!(i => {
                        if i < chunks {
                            let at = chunk_at(phase, (pc * chunks + i) as u32);
                            let a = &acc[pc];
                            st_shared16(at, [a[4 * i], a[4 * i + 1], a[4 * i + 2], a[4 * i + 3]].map(f32::to_bits));
                        }
                    });
                }
            });
        }
        warp_sync();
        named_barrier_unaligned(1, 32 * l.consumers());
        if phase == 0 {
            let mut ph = 1;
            while ph < l.phases {
                unroll4!(pc => {
                    if pc < P {
                        unroll4!(i => {
                            if i < chunks {
                                let v = ld_shared16(chunk_at(ph, (pc * chunks + i) as u32));
                                unroll4!(e => {
                                    acc[pc][4 * i + e] += f32::from_bits(v[e]);
                                });
                            }
                        });
                    }
                });
                ph += 1;
            }
            unroll4!(pc => {
                if pc < P {
                    unroll16!(e < half => {
                        // C[t][n0 + i]: column t of the fragment is A's row.
                        let t = 8 * (e as u32 / 4) + 2 * q + e as u32 % 2;
                        let i = GEMM_STREAM_PIECE_ROWS * pc as u32 + row + 8 * ((e as u32 % 4) / 2);
                        let keep = t < p.m && i < l.slab && n0 + i < p.n;
                        O::store_one_if(c, p.n, t, n0 + i, acc[pc][e], keep);
                    });
                }
            });
        }
        // The buffer is free for the next slab's accumulators.
        warp_sync();
        named_barrier_unaligned(1, 32 * l.consumers());
        c0 = c0.wrapping_add(p.k_blocks);
        u += nvptx::_grid_dim_x() as u32;
    }
}

/// The kernels, named as `stream_contract::gemm_stream_kernel` lists them.
macro_rules! entries {
    ($($name:ident: $out:ty, $precise:literal, $rows:literal, $what:literal;)*) => {$(
        #[doc = concat!("The streaming GEMM, ", $what, "; see the module documentation.")]
        ///
        /// # Safety
        /// Launched by `quant-host` with checked parameters (see `gemm_stream`),
        /// parameter 0 declared 64-byte aligned by the build.
        #[no_mangle]
        pub unsafe extern "ptx-kernel" fn $name(p: GemmStreamParams) {
            gemm_stream::<$out, $precise, $rows>(p, param_block_address!($name))
        }
    )*};
}

entries! {
    gemm_stream_fast_bf16_a16: Bf16Out, false, 16, "`Fast`, bf16 C, M <= 16";
    gemm_stream_fast_f32_a16: f32, false, 16, "`Fast`, f32 C, M <= 16";
    gemm_stream_precise_bf16_a16: Bf16Out, true, 16, "`Precise`, bf16 C, M <= 16";
    gemm_stream_precise_f32_a16: f32, true, 16, "`Precise`, f32 C, M <= 16";
    gemm_stream_fast_bf16_a32: Bf16Out, false, 32, "`Fast`, bf16 C, M <= 32";
    gemm_stream_fast_f32_a32: f32, false, 32, "`Fast`, f32 C, M <= 32";
    gemm_stream_precise_bf16_a32: Bf16Out, true, 32, "`Precise`, bf16 C, M <= 32";
    gemm_stream_precise_f32_a32: f32, true, 32, "`Precise`, f32 C, M <= 32";
}
