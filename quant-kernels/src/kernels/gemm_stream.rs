//! `mm_fp8_blockscale` at decode sizes (M <= 16) on Hopper: B streamed once
//! through a deep TMA ring, multiplied with `mma.sync` (sm_90a only).
//!
//! At M <= 16 the GEMM is a read of B: 1 x 4096 x 8192 moves 33.5 MB for
//! 67 MFLOP. What decides its time is how many of B's bytes are in flight
//! per SM and how much fixed cost surrounds the stream, not the tensor
//! cores. The `wgmma` kernels' 64-row tiles waste 48 of every 64 rows and
//! hold 5 stages of 16 KB; their split-K needs a second kernel. This kernel
//! gives each SM one deep ring of narrow stages and needs no split.
//!
//! # Tiling
//! - The unit of work is a slab: `slab` consecutive rows of B (a multiple of
//!   8, at most 256; the host picks it so that `ceil(n / slab)` slabs share
//!   out evenly over the SMs: `crate::stream_contract::StreamLayout`) times
//!   all of K. CTA `b` takes slabs `b, b + grid, ...`; one CTA per SM.
//! - A stage is one k-block (128 bytes of K): A's 16-row box (rows past M
//!   and bytes past K zero-filled by TMA, so tails need no masking) and the
//!   slab's box of B, both with the 128-byte swizzle. The ring has as many
//!   stages as fit in shared memory, a power of two up to 64 (4 of 34 KB for
//!   256-row slabs, 32 of 6 KB for 32-row ones): 100-200 KB of B in flight
//!   per SM where the `wgmma` tiles have 40-80.
//! - One producer warp (its lane 0) walks the CTA's slabs and k-blocks,
//!   issuing the two TMA copies of a stage when its `empty` barrier allows;
//!   the stage's `full` barrier completes when both have landed.
//! - 8 consumer warps: the slab's 8-row tiles are dealt to `groups` warps
//!   (tile `j` to group `j % groups`, at most 4 tiles each), and `phases =
//!   8 / groups` copies of the groups take the CTA's k-blocks in turn, so
//!   that a narrow slab (one k-block every ~60 cycles per SM at full
//!   bandwidth for 8 rows) has all 8 warps on it
//!   (`crate::stream_contract::StreamLayout`). At the end of a slab the
//!   phases' partials meet in shared memory in phase order (two named
//!   barriers) and phase 0 stores C.
//! - Fragments come straight from the swizzled stage with 16-byte
//!   `ld.shared`: lane `(r, q) = (lane / 4, lane % 4)` reads bytes `16 q ..
//!   16 q + 16` of each 64-byte half of its B row `8 j + r` and of A's rows
//!   `r` and `r + 8`, converts them to f16 (exact) and uses them as the A and B registers of
//!   four `m16n8k16` f16 `mma.sync`s (Hopper has no fp8 `mma.sync`: see
//!   [`consume`]). The k order inside an `mma` is then a permutation of the
//!   natural one, the same for A and B, which leaves the dot product
//!   unchanged (as in the `mma.sync` decode kernel, `super::gemm`). A warp
//!   reads 8 rows x 64 bytes per instruction; under the swizzle (16-byte
//!   chunk `c` of row `r` at chunk `c ^ (r % 8)`) that is 4 wavefronts, the
//!   least 512 bytes take. With M <= 8 the rows `r + 8` are zero and not read.
//! - Accumulation: the eight k16 `mma`s of a tile's k-block chain into one
//!   f32 partial (two of four for a warp's lone tile, added at the end;
//!   products of f16-exact values summed in f32: the `mma.sync` path is the
//!   benchmark's on-device reference), promoted once per k-block with the
//!   block's scales, `acc = fma(part, sa * sb, acc)`. A warp's tile count is
//!   a compile-time constant of its loop (one loop per count, 1 to 4), so
//!   the tiles' chains interleave. Both precision modes of the contract can
//!   take this kernel (its error is `Precise`'s).
//! - Scales are read from global memory through L1 (`ld.global.nc`): 2 of A
//!   and at most 4 of B per k-block, loaded before the wait on the stage,
//!   with the warp's next k-block's lines prefetched into L1.

use core::arch::nvptx;

use super::common::{Align16, Bf16Out, PredStore};
use crate::instr::mma::{e4m3x4_to_f16x2, ld_global_nc_f32, mma_f16, prefetch_global_l1, warp_sync};
use crate::instr::wgmma::{
    mbar_arrive_expect_tx, mbar_arrive_if, mbar_init, mbar_init_fence, mbar_wait, named_barrier_unaligned,
    tensormap_acquire, tma_load_2d,
};
use crate::instr::{fma, ld_shared16, shared_addr, st_shared16, warp_uniform};
use crate::stream_contract::{
    GemmStreamParams, StreamLayout, GEMM_STREAM_A_BYTES, GEMM_STREAM_MAX_TILES_PER_WARP, GEMM_STREAM_REDUCE_BYTES,
};
use crate::wgmma_contract::GEMM_KBLOCK;

const MAX_TILES: usize = GEMM_STREAM_MAX_TILES_PER_WARP as usize;
const _: () = assert!(MAX_TILES == 4);

/// The ring of stages in shared memory.
#[derive(Clone, Copy)]
struct Ring {
    /// Stage 0 (1024-byte aligned); stage `s` at `stages + s * stage_bytes`.
    stages: u32,
    stage_bytes: u32,
    /// The phases' partials (see [`GEMM_STREAM_REDUCE_BYTES`]).
    reduce: u32,
    /// `full[s]` at `full + 8 s`, `empty[s]` at `empty + 8 s`.
    full: u32,
    empty: u32,
}

impl Ring {
    /// `(stage address, full, empty, parity)` of the CTA's k-block number `c`.
    #[inline(always)]
    fn at(&self, l: &StreamLayout, c: u32) -> (u32, u32, u32, u32) {
        let (s, parity) = l.slot(c);
        (self.stages + s * self.stage_bytes, self.full + 8 * s, self.empty + 8 * s, parity)
    }
}

/// The kernel (see the module documentation).
///
/// # Safety
/// Launched by `quant-host` with `StreamLayout::new(p.slab)`'s threads and
/// shared memory, a 1-D grid of at most `ceil(n / slab)` CTAs, and `p` as
/// [`GemmStreamParams`] documents: maps of A (box 16 x 128) and B (box
/// `slab` x 128) in global memory, `1 <= m <= 16`, `k_blocks >= 1`, scales
/// and C holding what the strides and shapes index.
#[inline(always)]
unsafe fn gemm_stream<O: PredStore>(p: GemmStreamParams) {
    let Some(l) = StreamLayout::new(p.slab) else {
        return; // the host never launches one
    };
    let smem: *mut u8 = core::intrinsics::gpu::gpu_launch_sized_workgroup_mem::<Align16>() as *mut u8;
    let stages = (shared_addr(smem) + 1023) & !1023;
    let reduce = stages + l.stages() * l.stage_bytes();
    let full = reduce + GEMM_STREAM_REDUCE_BYTES;
    let ring = Ring { stages, stage_bytes: l.stage_bytes(), reduce, full, empty: full + 8 * l.stages() };
    let tid = nvptx::_thread_idx_x() as u32;
    let (warp, lane) = (warp_uniform(tid / 32), tid % 32);
    if tid == 0 {
        tensormap_acquire(p.map_a);
        tensormap_acquire(p.map_b);
        let mut s = 0;
        while s < l.stages() {
            mbar_init(ring.full + 8 * s, 1);
            // Lane 0 of each group's warp of the k-block's phase.
            mbar_init(ring.empty + 8 * s, l.groups);
            s += 1;
        }
        mbar_init_fence();
    }
    nvptx::_syncthreads();
    let slabs = p.n.div_ceil(l.slab);
    if warp == l.consumers() {
        if lane == 0 {
            produce(&p, l, ring, slabs);
        }
    } else if warp < l.consumers() {
        consume::<O>(&p, l, ring, slabs, warp, lane);
    }
}

/// The producer: every k-block of every slab of the CTA, in order, into
/// the ring (a fresh `empty` barrier passes the first round at once).
#[inline(always)]
unsafe fn produce(p: &GemmStreamParams, l: StreamLayout, ring: Ring, slabs: u32) {
    let mut c = 0u32;
    let mut u = nvptx::_block_idx_x() as u32;
    while u < slabs {
        let mut kb = 0;
        while kb < p.k_blocks {
            let (stage, full, empty, parity) = ring.at(&l, c);
            mbar_wait(empty, parity ^ 1);
            mbar_arrive_expect_tx(full, l.stage_bytes());
            tma_load_2d(stage, p.map_a, kb * GEMM_KBLOCK, 0, full);
            tma_load_2d(stage + GEMM_STREAM_A_BYTES, p.map_b, kb * GEMM_KBLOCK, u * l.slab, full);
            c = c.wrapping_add(1);
            kb += 1;
        }
        u += nvptx::_grid_dim_x() as u32;
    }
}

/// Where a consumer lane's scales of one k-block live: A's of its rows `r`
/// and `r + 8` (`None` past M: those rows are never stored), and B's of its
/// group's `T` tiles (clamped to B's last block: tiles past N are never
/// stored).
#[derive(Clone, Copy)]
struct ScaleAddrs<const T: usize> {
    a: [Option<*const f32>; 2],
    b: [*const f32; T],
}

impl<const T: usize> ScaleAddrs<T> {
    #[inline(always)]
    unsafe fn new(p: &GemmStreamParams, l: &StreamLayout, r: u32, group: u32, n0: u32, kb: u32) -> Self {
        let mut a = [None; 2];
        unroll2!(h => {
            let row = r + 8 * h as u32;
            if row < p.m {
                let at = row as u64 * p.a_scale_row_stride + kb as u64 * p.a_scale_kb_stride;
                a[h] = Some((p.a_scales as *const f32).add(at as usize));
            }
        });
        let last = (p.n - 1) / GEMM_KBLOCK;
        let mut b = [p.b_scales as *const f32; T];
        unroll4!(i => {
            if i < T {
                let j = group + l.groups * i as u32;
                let nb = ((n0 + 8 * j) / GEMM_KBLOCK).min(last);
                b[i] = (p.b_scales as *const f32).add((nb as u64 * p.k_blocks as u64 + kb as u64) as usize);
            }
        });
        Self { a, b }
    }

    /// Loads them through L1 (`ld.global.nc`): `(A's two, B's T)`.
    #[inline(always)]
    unsafe fn load(&self) -> ([f32; 2], [f32; T]) {
        let a = self.a.map(|a| a.map_or(0.0, |a| ld_global_nc_f32(a)));
        let mut b = [0f32; T];
        unroll4!(i => {
            if i < T {
                b[i] = ld_global_nc_f32(self.b[i]);
            }
        });
        (a, b)
    }

    /// Prefetches their lines into L1.
    #[inline(always)]
    unsafe fn prefetch(&self) {
        unroll2!(h => {
            if let Some(a) = self.a[h] {
                prefetch_global_l1(a);
            }
        });
        unroll4!(i => {
            if i < T {
                prefetch_global_l1(self.b[i]);
            }
        });
    }
}

/// 16 fp8 codes (one lane's 16-byte chunk) as 8 f16x2 words: word `2 s`
/// holds codes `4 s, 4 s + 1`, word `2 s + 1` codes `4 s + 2, 4 s + 3`.
#[inline(always)]
fn f16_chunk(w: [u32; 4]) -> [u32; 8] {
    let mut out = [0u32; 8];
    unroll4!(s => {
        let [lo, hi] = e4m3x4_to_f16x2(w[s]);
        out[2 * s] = lo;
        out[2 * s + 1] = hi;
    });
    out
}

/// A consumer warp: its group's tiles of every slab of the CTA, over the
/// k-blocks of its phase, in the loop compiled for its tile count.
#[inline(always)]
unsafe fn consume<O: PredStore>(p: &GemmStreamParams, l: StreamLayout, ring: Ring, slabs: u32, warp: u32, lane: u32) {
    // Every group of every slab holds 1 to 4 tiles (`StreamLayout::tiles_of`).
    match l.tiles_of(warp % l.groups) {
        4 => consume_tiles::<O, 4>(p, l, ring, slabs, warp, lane),
        3 => consume_tiles::<O, 3>(p, l, ring, slabs, warp, lane),
        2 => consume_tiles::<O, 2>(p, l, ring, slabs, warp, lane),
        _ => consume_tiles::<O, 1>(p, l, ring, slabs, warp, lane),
    }
}

/// [`consume`] for a warp of `T` tiles.
///
/// The codes are converted to f16 (exactly) and multiplied with
/// `mma.m16n8k16.f32.f16`: Hopper has no fp8 `mma.sync` (ptxas expands one
/// into conversions and two f16 `mma`s, converting A again for every tile);
/// converted here, A's conversions are shared by the warp's tiles. Lane `(r,
/// q)` holds 16 codes of its row per 64-byte half: `mma` step `s` of the
/// half takes words `2 s` and `2 s + 1` of A's rows `r`, `r + 8` and of the
/// B row as its `(k 2q, 2q + 1)` and `(k 2q + 8, 2q + 9)` pairs, the same
/// permutation of k for A and B.
///
/// A k-block's `mma`s form `T` independent chains of 8 (two of 4 for a lone
/// tile, summed at the end), compiled without a branch per tile, so that
/// their latencies overlap: with a branch per tile, the first version ran
/// the tiles' chains one after the other and spent most of its time
/// waiting on dependent `mma`s. The scales of the warp's
/// next k-block are prefetched into L1 (no register waits on them); this
/// k-block's are loaded before the wait on its stage.
#[inline(always)]
unsafe fn consume_tiles<O: PredStore, const T: usize>(
    p: &GemmStreamParams,
    l: StreamLayout,
    ring: Ring,
    slabs: u32,
    warp: u32,
    lane: u32,
) {
    let (group, phase) = (warp % l.groups, warp / l.groups);
    let (r, q) = (lane / 4, lane % 4);
    // Rows r + 8 of A are all zero when M <= 8.
    let wide_a = p.m > 8;
    // This lane's 16-byte chunk of half `h` of a swizzled 128-byte row `≡ r (mod 8)`.
    let chunk = |h: u32| 16 * ((4 * h + q) ^ r);
    let c = p.c as *mut O;
    let pair_ok = p.n % 2 == 0 && (c as usize) % (2 * core::mem::size_of::<O>()) == 0;
    let leader = (lane == 0) as u32;
    let mut c0 = 0u32; // the CTA's k-block number at the slab's start
    let mut u = nvptx::_block_idx_x() as u32;
    while u < slabs {
        let n0 = u * l.slab;
        let mut acc = [[0f32; 4]; T];
        let mut kb = l.first_kblock(phase, c0);
        while kb < p.k_blocks {
            let next = kb + l.phases;
            let (sa, sb) = ScaleAddrs::<T>::new(p, &l, r, group, n0, kb).load();
            if next < p.k_blocks {
                ScaleAddrs::<T>::new(p, &l, r, group, n0, next).prefetch();
            }
            let (stage, full, empty, parity) = ring.at(&l, c0.wrapping_add(kb));
            mbar_wait(full, parity);
            let a_lo = [
                f16_chunk(ld_shared16(stage + 128 * r + chunk(0))),
                f16_chunk(ld_shared16(stage + 128 * r + chunk(1))),
            ];
            let a_hi = if wide_a {
                let row = stage + 128 * (r + 8);
                [f16_chunk(ld_shared16(row + chunk(0))), f16_chunk(ld_shared16(row + chunk(1)))]
            } else {
                [[0; 8]; 2]
            };
            // A lone tile's halves chain separately; two tiles or more are
            // independent chains enough (and a second chain each would
            // spill at T = 4).
            let chain = |h: usize| if T == 1 { h } else { 0 };
            let mut part = [[[0f32; 4]; 2]; T];
            unroll4!(i => {
                if i < T {
                    let j = group + l.groups * i as u32;
                    let row = stage + GEMM_STREAM_A_BYTES + 128 * (8 * j + r);
                    unroll2!(h => {
                        let b = f16_chunk(ld_shared16(row + chunk(h as u32)));
                        let (x, y) = (&a_lo[h], &a_hi[h]);
                        unroll4!(s => {
                            mma_f16(&mut part[i][chain(h)], [x[2 * s], y[2 * s], x[2 * s + 1], y[2 * s + 1]], [b[2 * s], b[2 * s + 1]]);
                        });
                    });
                }
            });
            // Every lane's reads of the stage are done (the `mma`s used
            // them); lane 0 releases it for the warp.
            warp_sync();
            mbar_arrive_if(empty, leader);
            unroll4!(i => {
                if i < T {
                    let (s0, s1) = (sa[0] * sb[i], sa[1] * sb[i]);
                    let [lo, hi] = part[i];
                    let sum = |e: usize| if T == 1 { lo[e] + hi[e] } else { lo[e] };
                    acc[i][0] = fma(sum(0), s0, acc[i][0]);
                    acc[i][1] = fma(sum(1), s0, acc[i][1]);
                    acc[i][2] = fma(sum(2), s1, acc[i][2]);
                    acc[i][3] = fma(sum(3), s1, acc[i][3]);
                }
            });
            kb = next;
        }
        if l.phases > 1 {
            // Phases 1.. leave their partials, phase 0 adds them in phase
            // order. The barrier is the unaligned form: LLVM may give each
            // arm of `phase > 0` its own copy of it (see
            // `named_barrier_unaligned`); each warp meets it converged.
            let slot = |ph: u32, i: u32| {
                ring.reduce + (((ph - 1) * l.groups + group) * MAX_TILES as u32 + i) * 512 + 16 * lane
            };
            if phase > 0 {
                unroll4!(i => {
                    if i < T {
                        st_shared16(slot(phase, i as u32), acc[i].map(f32::to_bits));
                    }
                });
            }
            warp_sync();
            named_barrier_unaligned(1, 32 * l.consumers());
            if phase == 0 {
                let mut ph = 1;
                while ph < l.phases {
                    unroll4!(i => {
                        if i < T {
                            let v = ld_shared16(slot(ph, i as u32));
                            unroll4!(e => {
                                acc[i][e] += f32::from_bits(v[e]);
                            });
                        }
                    });
                    ph += 1;
                }
            }
            // The buffer is free for the next slab's partials.
            warp_sync();
            named_barrier_unaligned(1, 32 * l.consumers());
        }
        if phase == 0 {
            unroll4!(i => {
                if i < T {
                    let col = n0 + 8 * (group + l.groups * i as u32) + 2 * q;
                    O::store_pair_if(c, p.m, p.n, r, col, acc[i][0], acc[i][1], pair_ok);
                    O::store_pair_if(c, p.m, p.n, r + 8, col, acc[i][2], acc[i][3], pair_ok);
                }
            });
        }
        c0 = c0.wrapping_add(p.k_blocks);
        u += nvptx::_grid_dim_x() as u32;
    }
}

/// The streaming GEMM for bf16 C; see the module documentation.
///
/// # Safety
/// Launched by `quant-host` with checked parameters (see `gemm_stream`).
#[no_mangle]
pub unsafe extern "ptx-kernel" fn gemm_stream_bf16(p: GemmStreamParams) {
    gemm_stream::<Bf16Out>(p)
}

/// The streaming GEMM for f32 C; see the module documentation.
///
/// # Safety
/// Launched by `quant-host` with checked parameters (see `gemm_stream`).
#[no_mangle]
pub unsafe extern "ptx-kernel" fn gemm_stream_f32(p: GemmStreamParams) {
    gemm_stream::<f32>(p)
}
