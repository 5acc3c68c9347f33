//! `mm_fp8_blockscale`: `C[M, N] = sum_b sa[m, b] * sb[n / 128, b] * (A_b B_b^T)[m, n]`
//! with A `[M, K]` and B `[N, K]` fp8, both K-major (row-major with K
//! contiguous), so the tensor-core operands are `.row.col` without transposes.
//!
//! # Main kernel (`gemm_fp8_*`): tiling, as in CUTLASS's sm80 multistage GEMM
//! - CTA tile 128 (M) x 128 (N), one k-block of 128 per main-loop step, so a
//!   step covers exactly one scale block: B's scale is one scalar per CTA and
//!   step (a CTA's 128 columns lie in one 128-row block of B), A's scale one
//!   value per tile row.
//! - 256 threads = 8 warps in a 2 (M) x 4 (N) grid; a warp owns 64 x 32 of C
//!   as 4 x 4 `m16n8` mma tiles.
//! - Shared memory holds `STAGES` stages, each A and B as 128 rows x 128 bytes
//!   (the raw fp8 codes) plus the stage's 128 A scales and one B scale. Rows
//!   are stored with the 16-byte chunk index XOR-swizzled by `row % 8`, so the
//!   8 row addresses of every `ldmatrix` 8x8 matrix hit 8 different chunk
//!   positions: no bank conflicts on either the `cp.async` stores or the loads.
//! - The main loop is the usual multistage `cp.async` pipeline: stage `kb+STAGES-1`
//!   is fetched while stage `kb` is multiplied; one `cp.async` group per step.
//! - Two-level accumulation (DeepGEMM's promotion): the mma results of one
//!   k-block go to f32 registers `partial`, which are then folded into `acc`
//!   as `acc += partial * (sa * sb)` in f32. This is exactly the order of the
//!   CPU reference's `Accumulation::F32` within a k-block boundary.
//! - Fragments come from `ldmatrix.x4` on the fp8 bytes viewed as b16 pairs:
//!   the `m16n8k32` 8-bit layouts are the `m16n8k16` 16-bit layouts byte for
//!   byte (4 threads per 16-byte row, one 32-bit register per 8x16-byte square).
//! - E4M3FN on the sm_90 module: `mma.m16n8k32.row.col.f32.e4m3.e4m3.f32`.
//!   Every other case (E4M3FNUZ, and both formats on the sm_80 module, which
//!   has no fp8 mma) decodes the fragment registers to f16 and issues two
//!   `mma.m16n8k16.f16`: see [`mma_k32`].
//! - Tails: rows past M or N and bytes past K are zero-filled in shared memory
//!   (`cp.async` with a short source size), so the mma needs no masking. When
//!   K is not a multiple of 16 (or a base pointer is not 16-byte aligned) rows
//!   are not 16-byte aligned and a byte-wise synchronous path stages the tile.
//!
//! # Decode-sized kernel (`gemm_small_*`, M <= 16)
//! The work is reading B once. A warp owns 8 rows of B (one `n8` tile) and a
//! set of k-blocks; each thread loads 16 contiguous bytes of its B row per
//! 64-byte chunk straight into registers (so a warp load covers 8 rows x 64
//! contiguous bytes) and uses them directly as mma B fragments, with A (16
//! rows, M padded with zeros) loaded in the matching order. The k order inside
//! an mma is then a permutation of the natural one, the same for A and B, which
//! leaves the dot product unchanged. A CTA of 4 warps covers one `n8` tile and
//! a range of k-blocks and reduces its warps in shared memory; when N is too
//! small to fill the GPU, `gridDim.y` CTAs split K further and the last CTA of
//! each tile (an atomic ticket) sums the partials in a fixed order, so the
//! result is deterministic.

use core::arch::nvptx;

use super::common::{Align16, Bf16Out, Out};
#[cfg(target_feature = "sm_90")]
use crate::instr::mma::mma_e4m3;
use crate::instr::mma::{
    atom_inc_acq_rel, cp_async16_zfill, cp_async4, cp_async_wait_n, fence_gpu, fence_gpu_warp_sync, ld_global_cg_f32,
    ldg16, ldg16_stream, ldmatrix_x4, mma_f16, opaque_inout, prmt, warp_sync,
};
use crate::instr::{cp_async_commit, shared_addr, st_shared16};

use crate::gemm_contract::GemmMmaParams;
use crate::ScaleLayout;

// The launch geometry lives in `crate::geometry`, shared with the host.
pub use crate::geometry::{
    GEMM_MMA_SCALE_BYTES as SCALE_BYTES, GEMM_MMA_SMEM_BYTES as SMEM_BYTES, GEMM_MMA_STAGES as STAGES,
    GEMM_MMA_THREADS as THREADS, GEMM_MMA_TILE as TILE, GEMM_SMALL_M as SMALL_M, GEMM_SMALL_N as SMALL_N,
    GEMM_SMALL_SMEM_BYTES as SMALL_SMEM_BYTES, GEMM_SMALL_THREADS as SMALL_THREADS,
};
/// Bytes of one A or B tile of one stage.
const TILE_BYTES: u32 = TILE * TILE;

// ---------------------------------------------------------------------------
// Formats and the k32 mma step.

/// An fp8 format as a type, so every kernel is specialised.
pub trait Format {
    /// E4M3FNUZ (else E4M3FN).
    const FNUZ: bool;
    /// Whether this module multiplies the codes on fp8 tensor cores.
    const FP8_MMA: bool = !Self::FNUZ && cfg!(target_feature = "sm_90");
    /// What one k-block's mma sum must be multiplied by to undo the decode's
    /// power-of-two offset (see [`f16_pairs`]): exact, a power of two.
    const PARTIAL_SCALE: f32 = if Self::FP8_MMA {
        1.0
    } else if Self::FNUZ {
        16384.0 // 2^14: fnuz codes decode to value * 2^-7
    } else {
        65536.0 // 2^16: fn codes decode to value * 2^-8
    };
}

/// E4M3FN.
pub struct Fn;
/// E4M3FNUZ.
pub struct Fnuz;
impl Format for Fn {
    const FNUZ: bool = false;
}
impl Format for Fnuz {
    const FNUZ: bool = true;
}

/// Decodes four fp8 codes to two f16 pairs `(codes 0,1)`, `(codes 2,3)`.
///
/// The sign moves to bit 15 and the 7 magnitude bits to bits 7..13: an fp8
/// code `e m` then reads as the f16 with exponent `e` and mantissa `m`, i.e.
/// the fp8 value times `2^(bias_fp8 - 15)` (2^-8 for fn, 2^-7 for fnuz) -
/// exact, subnormals included, with no arithmetic. The power of two is undone
/// on the f32 k-block sum ([`Format::PARTIAL_SCALE`]). NaN codes (fn `0x7F`/`0xFF`,
/// fnuz `0x80`) would decode to finite values and are patched to f16 NaN.
#[inline(always)]
fn f16_pairs<F: Format>(x: u32) -> [u32; 2] {
    let lo = prmt(x, 0, 0x1404); // bytes [0, x0, 0, x1]: each half = code << 8
    let hi = prmt(x, 0, 0x3424);
    let conv = |h: u32| (h & 0x8000_8000) | ((h >> 1) & 0x3F80_3F80);
    let mut out = [conv(lo), conv(hi)];
    let nan = if F::FNUZ {
        let y = x ^ 0x8080_8080; // NaN bytes become 0
        !(((y & 0x7F7F_7F7F) + 0x7F7F_7F7F) | y) & 0x8080_8080
    } else {
        ((x & 0x7F7F_7F7F) + 0x0101_0101) & 0x8080_8080 // 0x7F magnitude -> 0x80
    };
    if nan != 0 {
        out[0] |= (prmt(nan, 0, 0x1404) >> 15) * 0x7E00;
        out[1] |= (prmt(nan, 0, 0x3424) >> 15) * 0x7E00;
    }
    out
}

/// `c += A * B` over 32 k, from `m16n8k32` 8-bit fragments: A `[4]`
/// (rows g, g+8 at k 4t..4t+3, then at 16+4t..), B `[2]` (column g at the same k).
///
/// Without fp8 tensor cores each register's four codes are decoded to two f16
/// pairs, `lo` (k 4t, 4t+1) and `hi` (4t+2, 4t+3). The f16 `m16n8k16` mma
/// reads A regs (row g k 2t.., row g+8 k 2t.., row g k 2t+8.., row g+8 k 2t+8..)
/// and B regs (k 2t.., k 2t+8..): feeding it `lo(a0), lo(a1), hi(a0), hi(a1)`
/// and `lo(b0), hi(b0)` maps its logical k 2t+j to byte 4t+j and 2t+8+j to
/// 4t+2+j for both operands, a permutation of the 16 k of the first half;
/// the second mma takes the other half the same way.
#[inline(always)]
fn mma_k32<F: Format>(c: &mut [f32; 4], a: [u32; 4], b: [u32; 2]) {
    #[cfg(target_feature = "sm_90")]
    if F::FP8_MMA {
        mma_e4m3(c, a, b);
        return;
    }
    let (a0, a1, a2, a3) = (f16_pairs::<F>(a[0]), f16_pairs::<F>(a[1]), f16_pairs::<F>(a[2]), f16_pairs::<F>(a[3]));
    let (b0, b1) = (f16_pairs::<F>(b[0]), f16_pairs::<F>(b[1]));
    mma_f16(c, [a0[0], a1[0], a0[1], a1[1]], b0);
    mma_f16(c, [a2[0], a3[0], a2[1], a3[1]], b1);
}

/// `mma_k32` with B already decoded (`[lo(b0), hi(b0), lo(b1), hi(b1)]`), so a
/// warp decodes each B fragment once for all its M tiles.
#[inline(always)]
fn mma_k32_predecoded_b<F: Format>(c: &mut [f32; 4], a: [u32; 4], b: [u32; 2], b16: [u32; 4]) {
    #[cfg(target_feature = "sm_90")]
    if F::FP8_MMA {
        let _ = b16;
        mma_e4m3(c, a, b);
        return;
    }
    let _ = b;
    let (a0, a1, a2, a3) = (f16_pairs::<F>(a[0]), f16_pairs::<F>(a[1]), f16_pairs::<F>(a[2]), f16_pairs::<F>(a[3]));
    mma_f16(c, [a0[0], a1[0], a0[1], a1[1]], [b16[0], b16[1]]);
    mma_f16(c, [a2[0], a3[0], a2[1], a3[1]], [b16[2], b16[3]]);
}

// ---------------------------------------------------------------------------
// Outputs.

/// Stores the pair at `(row, col)`, `(row, col + 1)` of an `[m, n]` C, each
/// element only where it is inside C.
#[inline(always)]
pub(crate) unsafe fn store_pair<O: Out>(
    c: *mut O,
    m: u32,
    n: u32,
    row: u32,
    col: u32,
    v0: f32,
    v1: f32,
    pair_ok: bool,
) {
    if row >= m || col >= n {
        return;
    }
    let i = row as u64 * n as u64 + col as u64;
    if pair_ok && col + 1 < n {
        O::store2(c, i, v0, v1);
    } else {
        O::store1(c, i, v0);
        if col + 1 < n {
            O::store1(c, i + 1, v1);
        }
    }
}

/// Reads the (up to 16) bytes `p[0..valid]` as four words, zeros after.
#[inline(always)]
unsafe fn load_bytes16(p: *const u8, valid: u32) -> [u32; 4] {
    let mut w = [0u32; 4];
    unroll4!(j => {
        let mut word = 0u32;
        unroll4!(i => {
            let idx = (j * 4 + i) as u32;
            if idx < valid {
                word |= (p.add(idx as usize).read() as u32) << (8 * i);
            }
        });
        w[j] = word;
    });
    w
}

// ---------------------------------------------------------------------------
// The main kernel.

/// Parameters of one launch, as the kernels receive them.
#[derive(Clone, Copy)]
struct Problem {
    a: *const u8,
    a_scales: *const f32,
    b: *const u8,
    b_scales: *const f32,
    m: u32,
    n: u32,
    k: u32,
    kb_total: u32,
    layout: ScaleLayout,
    /// Rows of A and B are 16-byte aligned (K % 16 == 0 and aligned bases).
    aligned: bool,
}

impl Problem {
    #[inline(always)]
    fn new(a: *const u8, a_scales: *const f32, b: *const u8, b_scales: *const f32, params: GemmMmaParams) -> Self {
        let GemmMmaParams { m, n, k, .. } = params;
        let aligned = k % 16 == 0 && (a as usize) % 16 == 0 && (b as usize) % 16 == 0;
        Self { a, a_scales, b, b_scales, m, n, k, kb_total: k.div_ceil(TILE), layout: params.layout(), aligned }
    }

    /// Scale of A row `row` (< m), k-block `kb`.
    #[inline(always)]
    unsafe fn a_scale_ptr(&self, row: u32, kb: u32) -> *const f32 {
        let i = self.layout.index(row as u64, kb as u64, self.m as u64, self.kb_total as u64);
        self.a_scales.add(i as usize)
    }

    /// Scale of B row block `nb`, k-block `kb`.
    #[inline(always)]
    unsafe fn b_scale_ptr(&self, nb: u32, kb: u32) -> *const f32 {
        self.b_scales.add((nb as u64 * self.kb_total as u64 + kb as u64) as usize)
    }
}

/// Issues the copies of k-block `kb` of the CTA's A rows `m0..` and B rows
/// `n0..` into stage buffers at shared addresses `a_s`, `b_s`, `sc_s`.
#[inline(always)]
unsafe fn load_stage(p: &Problem, tid: u32, m0: u32, n0: u32, kb: u32, a_s: u32, b_s: u32, sc_s: u32) {
    // Re-derive the row addresses every stage instead of letting the loop
    // keep eight 64-bit row pointers live: registers are the main kernel's
    // limit (accumulators and k-block partials take 128).
    let tid = opaque_inout(tid);
    let chunk = tid % 8;
    let k_off = kb * TILE + chunk * 16;
    let valid = if p.k > k_off { (p.k - k_off).min(16) } else { 0 };
    unroll4!(i => {
        let row = tid / 8 + 32 * i as u32;
        let swz = row * TILE + ((chunk ^ (row % 8)) * 16);
        // A
        let (ra, rb) = (m0 + row, n0 + row);
        let va = if ra < p.m { valid } else { 0 };
        let vb = if rb < p.n { valid } else { 0 };
        let src_a = if va > 0 { p.a.add((ra as u64 * p.k as u64 + k_off as u64) as usize) } else { p.a };
        let src_b = if vb > 0 { p.b.add((rb as u64 * p.k as u64 + k_off as u64) as usize) } else { p.b };
        if p.aligned {
            cp_async16_zfill(a_s + swz, src_a, va);
            cp_async16_zfill(b_s + swz, src_b, vb);
        } else {
            st_shared16(a_s + swz, load_bytes16(src_a, va));
            st_shared16(b_s + swz, load_bytes16(src_b, vb));
        }
    });
    if tid < TILE {
        let row = m0 + tid;
        let (src, bytes) = if row < p.m { (p.a_scale_ptr(row, kb), 4) } else { (p.a_scales, 0) };
        cp_async4(sc_s + tid * 4, src, bytes);
    } else if tid == TILE {
        cp_async4(sc_s + TILE * 4, p.b_scale_ptr(n0 / TILE, kb), 4);
    }
}

/// The main kernel body; see the module documentation.
///
/// # Safety
/// Launched by `quant-host` with checked buffers, `THREADS` threads,
/// `SMEM_BYTES` of dynamic shared memory and grid `(ceil(m/128), ceil(n/128))`.
#[inline(always)]
unsafe fn gemm_main<F: Format, O: Out>(
    a: *const u8,
    a_scales: *const f32,
    b: *const u8,
    b_scales: *const f32,
    c: *mut O,
    params: GemmMmaParams,
) {
    let p = Problem::new(a, a_scales, b, b_scales, params);
    let (m, n) = (p.m, p.n);
    let smem: *mut u8 = core::intrinsics::gpu::gpu_launch_sized_workgroup_mem::<Align16>() as *mut u8;
    let base = shared_addr(smem);
    let tid = nvptx::_thread_idx_x() as u32;
    let (warp, lane) = (tid / 32, tid % 32);
    let (wm, wn) = (warp % 2, warp / 2);
    let (g, t) = (lane / 4, lane % 4);
    let m0 = nvptx::_block_idx_x() as u32 * TILE;
    let n0 = nvptx::_block_idx_y() as u32 * TILE;
    let kbt = p.kb_total;

    let a_stage = |s: u32| base + s * 2 * TILE_BYTES;
    let b_stage = |s: u32| base + s * 2 * TILE_BYTES + TILE_BYTES;
    let sc_stage = |s: u32| base + STAGES * 2 * TILE_BYTES + s * SCALE_BYTES;
    let sc_ptr = |s: u32| smem.add((STAGES * 2 * TILE_BYTES + s * SCALE_BYTES) as usize) as *const f32;

    // Prologue: STAGES - 1 k-blocks in flight.
    let mut s = 0;
    while s < STAGES - 1 {
        if s < kbt {
            load_stage(&p, tid, m0, n0, s, a_stage(s), b_stage(s), sc_stage(s));
        }
        cp_async_commit();
        s += 1;
    }

    let mut acc = [[[0f32; 4]; 4]; 4];
    // ldmatrix row addresses (before the per-k32 chunk offset).
    let a_row0 = wm * 64 + (lane % 16); // + mt * 16
    let a_chunk_hi = lane / 16;
    let b_row0 = wn * 32 + (lane % 8) + 8 * (lane / 16); // + np * 16
    let b_chunk_hi = (lane / 8) % 2;

    let mut kb = 0;
    while kb < kbt {
        cp_async_wait_n::<{ STAGES - 2 }>();
        nvptx::_syncthreads();
        let next = kb + STAGES - 1;
        if next < kbt {
            let ns = next % STAGES;
            load_stage(&p, tid, m0, n0, next, a_stage(ns), b_stage(ns), sc_stage(ns));
        }
        cp_async_commit();

        let st = kb % STAGES;
        let (a_s, b_s) = (a_stage(st), b_stage(st));
        let mut part = [[[0f32; 4]; 4]; 4];
        unroll4!(ks => {
            let ks = ks as u32;
            let mut bf = [[0u32; 2]; 4];
            unroll2!(np => {
                let row = b_row0 + np as u32 * 16;
                let chunk = ks * 2 + b_chunk_hi;
                let r = ldmatrix_x4(b_s + row * TILE + ((chunk ^ (row % 8)) * 16));
                bf[2 * np] = [r[0], r[1]];
                bf[2 * np + 1] = [r[2], r[3]];
            });
            let mut b16 = [[0u32; 4]; 4];
            if !F::FP8_MMA {
                unroll4!(nt => {
                    let (x, y) = (f16_pairs::<F>(bf[nt][0]), f16_pairs::<F>(bf[nt][1]));
                    b16[nt] = [x[0], x[1], y[0], y[1]];
                });
            }
            unroll4!(mt => {
                let row = a_row0 + mt as u32 * 16;
                let chunk = ks * 2 + a_chunk_hi;
                let af = ldmatrix_x4(a_s + row * TILE + ((chunk ^ (row % 8)) * 16));
                unroll4!(nt => {
                    mma_k32_predecoded_b::<F>(&mut part[mt][nt], af, bf[nt], b16[nt]);
                });
            });
        });

        // Promotion: acc += partial * (sa * sb).
        let sc = sc_ptr(st);
        let sb = sc.add(TILE as usize).read();
        unroll4!(mt => {
            let r = wm * 64 + mt as u32 * 16 + g;
            let s0 = sc.add(r as usize).read() * sb;
            let s1 = sc.add(r as usize + 8).read() * sb;
            unroll4!(nt => {
                let pt = &part[mt][nt];
                let ac = &mut acc[mt][nt];
                ac[0] += (pt[0] * F::PARTIAL_SCALE) * s0;
                ac[1] += (pt[1] * F::PARTIAL_SCALE) * s0;
                ac[2] += (pt[2] * F::PARTIAL_SCALE) * s1;
                ac[3] += (pt[3] * F::PARTIAL_SCALE) * s1;
            });
        });
        kb += 1;
    }
    cp_async_wait_n::<0>();

    // Epilogue: straight from the accumulator layout (row g / g+8, columns
    // 2t, 2t+1 of each n8 tile): each warp store covers 8 rows x 32 bytes.
    let pair_ok = n % 2 == 0 && (c as usize) % (2 * core::mem::size_of::<O>()) == 0;
    unroll4!(mt => {
        let row = m0 + wm * 64 + mt as u32 * 16 + g;
        unroll4!(nt => {
            let col = n0 + wn * 32 + nt as u32 * 8 + 2 * t;
            let ac = &acc[mt][nt];
            store_pair(c, m, n, row, col, ac[0], ac[1], pair_ok);
            store_pair(c, m, n, row + 8, col, ac[2], ac[3], pair_ok);
        });
    });
}

// ---------------------------------------------------------------------------
// The decode-sized kernel.

/// Loads 16 bytes at byte offset `k_off` of row `row` of an `[rows, k]` matrix;
/// zeros past the matrix.
#[inline(always)]
unsafe fn row_chunk<const STREAM: bool>(
    base: *const u8,
    rows: u32,
    k: u32,
    aligned: bool,
    row: u32,
    k_off: u32,
) -> [u32; 4] {
    if row >= rows || k_off >= k {
        return [0; 4];
    }
    let p = base.add((row as u64 * k as u64 + k_off as u64) as usize);
    let valid = (k - k_off).min(16);
    if aligned && valid == 16 {
        if STREAM {
            ldg16_stream(p)
        } else {
            ldg16(p)
        }
    } else {
        load_bytes16(p, valid)
    }
}

/// The decode-sized kernel body; see the module documentation.
///
/// # Safety
/// Launched by `quant-host` with checked buffers, `m <= 16`, `SMALL_THREADS`
/// threads, `SMALL_SMEM_BYTES` of dynamic shared memory, grid
/// `(ceil(n / 8), splits)`; when `splits > 1`, `ws` holds `splits * 16 * n`
/// f32 and `tickets` holds `ceil(n / 8)` u32 that are zero between launches.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn gemm_small<F: Format, O: Out>(
    a: *const u8,
    a_scales: *const f32,
    b: *const u8,
    b_scales: *const f32,
    c: *mut O,
    ws: *mut f32,
    tickets: *mut u32,
    params: GemmMmaParams,
) {
    let p = Problem::new(a, a_scales, b, b_scales, params);
    let (m, n) = (p.m, p.n);
    let smem: *mut f32 = core::intrinsics::gpu::gpu_launch_sized_workgroup_mem::<Align16>() as *mut f32;
    let tid = nvptx::_thread_idx_x() as u32;
    let (warp, lane) = (tid / 32, tid % 32);
    let (g, t) = (lane / 4, lane % 4);
    let tile = nvptx::_block_idx_x() as u32;
    let split = nvptx::_block_idx_y() as u32;
    let splits = nvptx::_grid_dim_y() as u32;
    let n0 = tile * SMALL_N;
    let kbt = p.kb_total;
    let kb_lo = (split as u64 * kbt as u64 / splits as u64) as u32;
    let kb_hi = ((split as u64 + 1) * kbt as u64 / splits as u64) as u32;
    let nb = n0 / TILE;
    let (row_a, row_b) = (g, g + 8);

    let mut acc = [0f32; 4];
    let mut kb = kb_lo + warp;
    while kb < kb_hi {
        // Every load of this k-block first (B streamed, A from cache), then the math.
        let mut bw = [[0u32; 4]; 2];
        let mut aw = [[0u32; 4]; 2];
        let mut cw = [[0u32; 4]; 2];
        unroll2!(j => {
            let k_off = kb * TILE + 64 * j as u32 + 16 * t;
            bw[j] = row_chunk::<true>(p.b, p.n, p.k, p.aligned, n0 + g, k_off);
            aw[j] = row_chunk::<false>(p.a, p.m, p.k, p.aligned, row_a, k_off);
            cw[j] = row_chunk::<false>(p.a, p.m, p.k, p.aligned, row_b, k_off);
        });
        let sa0 = if row_a < m { p.a_scale_ptr(row_a, kb).read() } else { 0.0 };
        let sa1 = if row_b < m { p.a_scale_ptr(row_b, kb).read() } else { 0.0 };
        let sb = p.b_scale_ptr(nb, kb).read();
        let mut part = [0f32; 4];
        unroll2!(j => {
            let (x, y, w) = (aw[j], cw[j], bw[j]);
            mma_k32::<F>(&mut part, [x[0], y[0], x[1], y[1]], [w[0], w[1]]);
            mma_k32::<F>(&mut part, [x[2], y[2], x[3], y[3]], [w[2], w[3]]);
        });
        let (s0, s1) = (sa0 * sb, sa1 * sb);
        acc[0] += (part[0] * F::PARTIAL_SCALE) * s0;
        acc[1] += (part[1] * F::PARTIAL_SCALE) * s0;
        acc[2] += (part[2] * F::PARTIAL_SCALE) * s1;
        acc[3] += (part[3] * F::PARTIAL_SCALE) * s1;
        kb += SMALL_THREADS / 32;
    }

    // Reduce the 4 warps in a fixed order.
    unroll4!(i => {
        smem.add((warp * 128 + lane * 4) as usize + i).write(acc[i]);
    });
    nvptx::_syncthreads();
    if warp != 0 {
        return;
    }
    let mut sum = [0f32; 4];
    unroll4!(w => {
        unroll4!(i => {
            sum[i] += smem.add((w as u32 * 128 + lane * 4) as usize + i).read();
        });
    });
    let col = n0 + 2 * t;
    let pair_ok = n % 2 == 0 && (c as usize) % (2 * core::mem::size_of::<O>()) == 0;
    if splits == 1 {
        store_pair(c, m, n, row_a, col, sum[0], sum[1], pair_ok);
        store_pair(c, m, n, row_b, col, sum[2], sum[3], pair_ok);
        return;
    }

    // Split K across CTAs: publish this CTA's partial, then the last CTA of
    // the tile adds all partials in split order.
    let ws_index =
        |s: u32, row: u32, col: u32| ((s as u64 * SMALL_M as u64 + row as u64) * n as u64 + col as u64) as usize;
    unroll2!(h => {
        let row = g + 8 * h as u32;
        unroll2!(e => {
            let cc = col + e as u32;
            if cc < n {
                ws.add(ws_index(split, row, cc)).write(sum[2 * h + e]);
            }
        });
    });
    fence_gpu_warp_sync();
    let flag = smem.add(4 * 128) as *mut u32;
    if lane == 0 {
        let old = atom_inc_acq_rel(tickets.add(tile as usize));
        let last = old == splits - 1;
        if last {
            // Reset for the next launch (ordered by the kernel boundary).
            tickets.add(tile as usize).write_volatile(0);
        }
        flag.write_volatile(last as u32);
    }
    warp_sync();
    if flag.read_volatile() == 0 {
        return;
    }
    fence_gpu();
    let mut total = [0f32; 4];
    let mut s = 0;
    while s < splits {
        unroll2!(h => {
            let row = g + 8 * h as u32;
            unroll2!(e => {
                let cc = col + e as u32;
                if cc < n {
                    let v = ld_global_cg_f32(ws.add(ws_index(s, row, cc)));
                    total[2 * h + e] += v;
                }
            });
        });
        s += 1;
    }
    store_pair(c, m, n, row_a, col, total[0], total[1], pair_ok);
    store_pair(c, m, n, row_b, col, total[2], total[3], pair_ok);
}

/// The list's names for the kernel-side types (`gemm_mma_kernels!` names
/// formats and outputs as `Fp8Format` and `GemmOut` spell them).
mod wire {
    pub(super) type E4M3Fn = super::Fn;
    pub(super) type E4M3Fnuz = super::Fnuz;
    pub(super) type Bf16 = super::Bf16Out;
    pub(super) type F32 = f32;
}

macro_rules! entries {
    ($($main:ident, $small:ident: $format:ident, $out:ident;)*) => {$(
        /// Tiled GEMM kernel; see the module documentation.
        ///
        /// # Safety
        /// Launched by `quant-host` with buffers checked against `p` (see
        /// [`GemmMmaParams`]).
        #[no_mangle]
        pub unsafe extern "ptx-kernel" fn $main(
            a: *const u8,
            a_scales: *const f32,
            b: *const u8,
            b_scales: *const f32,
            c: *mut wire::$out,
            p: GemmMmaParams,
        ) {
            gemm_main::<wire::$format, wire::$out>(a, a_scales, b, b_scales, c, p)
        }

        /// Decode-sized GEMM kernel (M <= 16); see the module documentation.
        ///
        /// # Safety
        /// Launched by `quant-host` with buffers checked against `p` (see
        /// [`GemmMmaParams`]).
        #[no_mangle]
        #[allow(clippy::too_many_arguments)]
        pub unsafe extern "ptx-kernel" fn $small(
            a: *const u8,
            a_scales: *const f32,
            b: *const u8,
            b_scales: *const f32,
            c: *mut wire::$out,
            ws: *mut f32,
            tickets: *mut u32,
            p: GemmMmaParams,
        ) {
            gemm_small::<wire::$format, wire::$out>(a, a_scales, b, b_scales, c, ws, tickets, p)
        }
    )*};
}

// The entry points of `crate::gemm_contract`'s list, which also names them
// for the host.
gemm_mma_kernels!(entries);
