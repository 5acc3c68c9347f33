//! `mm_fp8_blockscale` on Hopper tensor cores (sm_90a only): `wgmma` with
//! operands loaded by the tensor memory accelerator (TMA).
//!
//! # Tiling
//! - CTA tile 128 (M) x 128 (N); a stage holds one k-block of 128, which is
//!   exactly one scale block (as in the `mma.sync` kernel of [`super::gemm`]).
//! - Persistent: the grid has at most one CTA per multiprocessor and CTA `b`
//!   takes tiles `b, b + grid, ...` (M tiles fastest, so the CTAs working at
//!   one time share B's rows in L2). Its k-blocks form one stream through the
//!   stage ring, so the next tile's loads overlap the current tile's epilogue.
//! - Split-K when the tiles alone cannot fill the GPU (M = 64-512, or small
//!   N): the host splits K into `splits` ranges of whole k-blocks and
//!   launches one CTA per (tile, split), no more than the GPU holds at
//!   once. Each CTA stores its f32 partial tile to a workspace and a second
//!   kernel ([`super::gemm_reduce`]) adds the partials in split order:
//!   deterministic, no atomics, no CTA waiting for another.
//! - Warp-specialised (DeepGEMM's structure without its cluster multicast):
//!   384 threads = two consumer warpgroups and one producer warpgroup, which
//!   hands its registers to the consumers with `setmaxnreg` (40 each for
//!   the producer, 232 for the consumers; the one-set variants have a
//!   producer warp instead, 288 threads). Lane 0 of the producer walks
//!   the CTA's k-block stream and issues the TMA copies
//!   (`cp.async.bulk.tensor.2d`) of A's and B's 128 x 128-byte boxes into one
//!   of `STAGES` stage buffers as soon as the stage's `empty` barrier says
//!   all 256 consumer threads are done with it; the stage's `full` barrier
//!   completes when both boxes have landed (`complete_tx`). Rows past M or N
//!   and bytes past K are zero-filled by the TMA unit, so tails need no
//!   masking in the main loop.
//! - Consumer warpgroup `w` owns rows `64 w ..` of the tile and computes its
//!   64 x 128 piece with `wgmma` m64n128k32, both operands read from shared
//!   memory through matrix descriptors: per k-block, four k32 steps, each
//!   one `wgmma` from zero into one of two register sets in turn, promoted
//!   (below) while the next one runs ([`kblock_k32x2`]). The warpgroups
//!   never meet at a barrier in the loop, so one's promotions also overlap
//!   the other's `wgmma`s. (With one set, waiting for each step before
//!   promoting it, an ncu profile showed the tensor pipe 31% busy and L2
//!   34%: consumers stalled on their own `wgmma`s. The second set, which
//!   needs `setmaxnreg`, made the kernel 15-18% faster.)
//! - Shared-memory layout per stage is the TMA's 128B swizzle: row `r` of a
//!   box at byte `128 r`, 16-byte chunk `c` stored at chunk `c ^ (r % 8)`.
//!   That is the canonical K-major SWIZZLE_128B layout of `wgmma`: descriptor
//!   stride (8 rows) 1024 bytes, leading offset unused, and a k32 step is a
//!   32-byte advance of the start address. Stage buffers are 1024-byte aligned.
//!
//! # Accumulation: every k32, in f32
//! The tensor cores do not accumulate fp8 products in f32: the sum is kept
//! with about 13 mantissa bits (truncated) while `wgmma`s chain into the same
//! registers. On outlier-heavy test data (H100, H200) promoting once per
//! k-block (four chained k32 `wgmma`s, as DeepGEMM does) measured up to
//! 1.8e-3 relative error and once per k64 (two chained) up to 1.08e-3, both
//! above the spec's 1e-3; so every k32 `wgmma` starts from zero and is
//! promoted at once, `acc = fma(part, sa * sb, acc)` in f32 (worst 3.3e-4
//! measured). A promotion costs one FMA per output element, as many issue
//! slots per k32 step as the tensor cores take for it; the second register
//! set is what lets them overlap. The k64 kernel stays as a comparison
//! variant (faster, not within the tolerance on every input); `mma.sync`
//! is exact to 2e-7 but 3x slower. See bench/NOTES-gemm.md.
//!
//! # Constraints from ptxas
//! No thread-dependent branch may run while `wgmma`s are in flight, or
//! ptxas serialises them all (info C7518): the epilogue's bounds checks are
//! predicated stores. `cargo xtask build-ptx` fails on any C751x note.
//!
//! # Variants
//! `gemm_wgmma_ws2k32_*` is the kernel the host uses; kept for comparison
//! (`fp8q bench --gemm-variants`): `gemm_wgmma_ws32_*` (the same sums with
//! one register set, split in column halves, and a producer warp: 288
//! threads) and `gemm_wgmma_ws2_*` (promotion every k64, see above).
//!
//! E4M3FN only (the `wgmma` e4m3 type); E4M3FNUZ keeps the `mma.sync` path.

use core::arch::asm;
use core::arch::nvptx;

use super::gemm::{decode_layout, smem_addr, Align16, Bf16Out, Out};
use crate::gpu::fma;
use crate::ScaleLayout;

pub use crate::geometry::{GEMM_WGMMA_STAGES as STAGES, GEMM_WGMMA_TILE as TILE};
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

/// Arms the barrier for `bytes` of TMA traffic and arrives once.
#[inline(always)]
unsafe fn mbar_arrive_expect_tx(bar: u32, bytes: u32) {
    asm!("mbarrier.arrive.expect_tx.shared.b64 _, [{b}], {n};", b = in(reg32) bar, n = in(reg32) bytes, options(nostack));
}

/// Arrives once on the barrier (a consumer thread releasing a stage).
#[inline(always)]
unsafe fn mbar_arrive(bar: u32) {
    asm!("mbarrier.arrive.shared.b64 _, [{b}];", b = in(reg32) bar, options(nostack));
}

/// Spins until the phase of parity `parity` of the barrier has completed
/// (the loop inside one `asm` block, as a single instruction sequence; PTX
/// scopes the label to the braces, so inlined copies do not clash).
#[allow(named_asm_labels)]
#[inline(always)]
unsafe fn mbar_wait(bar: u32, parity: u32) {
    asm!(
        "{{",
        ".reg .pred p;",
        "WAIT_AGAIN:",
        "mbarrier.try_wait.parity.shared.b64 p, [{b}], {q};",
        "@!p bra WAIT_AGAIN;",
        "}}",
        b = in(reg32) bar, q = in(reg32) parity,
        options(nostack),
    );
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

/// Issues the copies of k-block `kb` of tile `(m0, n0)` into stage `s`.
#[inline(always)]
unsafe fn issue(p: &Pipe, s: u32, kb: u32, m0: u32, n0: u32) {
    let bar = p.full + 8 * s;
    let dst = p.stages + s * p.stage_bytes;
    mbar_arrive_expect_tx(bar, p.stage_bytes);
    tma_load_2d(dst, p.map_a, kb * TILE, m0, bar);
    tma_load_2d(dst + p.tile_m * TILE, p.map_b, kb * TILE, n0, bar);
}

/// Shared addresses of the pipeline and the problem's tiling.
#[derive(Clone, Copy)]
struct Pipe {
    /// Generic addresses of A's and B's tensor maps.
    map_a: u64,
    map_b: u64,
    stages: u32,
    /// Rows of the CTA tile along M (64 per consumer warpgroup).
    tile_m: u32,
    /// Bytes of one stage: the A box (`tile_m` rows) then the B box (128 rows).
    stage_bytes: u32,
    /// `full[s]`: completes when stage `s`'s two boxes have landed.
    full: u32,
    /// Tiles along M (tile `i` is at M tile `i % tiles_m`, N tile `i / tiles_m`).
    tiles_m: u32,
    tiles: u32,
    /// k-blocks along K.
    kbt: u32,
    /// Parts K is split into (1: no split-K); at most `kbt`.
    splits: u32,
    /// A CTA's next tile is `tile_step` after its current one: the grid
    /// size without a split (CTA `b` takes tiles `b, b + grid, ...`), and
    /// `tiles` (none) with one, where each CTA has one (tile, split). (A
    /// data value rather than a `splits == 1` test in [`Pos::next`]: that
    /// branch made ptxas spill the accumulators.)
    tile_step: u32,
}

impl Pipe {
    /// Top-left corner `(m0, n0)` of tile `tile`.
    #[inline(always)]
    fn origin(&self, tile: u32) -> (u32, u32) {
        ((tile % self.tiles_m) * self.tile_m, (tile / self.tiles_m) * TILE)
    }

    /// The first k-block of split `s` (`s <= splits`): the k-blocks are
    /// shared out as evenly as whole k-blocks allow. `s * kbt` fits in u32:
    /// the host keeps `splits * kbt` below 2^31.
    #[inline(always)]
    fn split_start(&self, s: u32) -> u32 {
        s * self.kbt / self.splits
    }
}

/// A position in a CTA's stream of k-blocks (its tiles one after the other,
/// each the k-blocks `kb..end` of one split) with the stage it occupies and
/// that stage's phase.
#[derive(Clone, Copy)]
struct Pos {
    tile: u32,
    kb: u32,
    end: u32,
    stage: u32,
    phase: u32,
}

impl Pos {
    /// The next position, or `None` past the CTA's last k-block. A split
    /// launch gives each CTA one (tile, split) only.
    #[inline(always)]
    fn next(self, p: &Pipe) -> Option<Pos> {
        let (stage, phase) = if self.stage + 1 == STAGES { (0, self.phase ^ 1) } else { (self.stage + 1, self.phase) };
        if self.kb + 1 < self.end {
            Some(Pos { kb: self.kb + 1, stage, phase, ..self })
        } else if self.tile + p.tile_step < p.tiles {
            Some(Pos { tile: self.tile + p.tile_step, kb: 0, end: p.kbt, stage, phase })
        } else {
            None
        }
    }

    /// Whether this is the last k-block of the tile (the epilogue follows).
    #[inline(always)]
    fn last(&self) -> bool {
        self.kb + 1 == self.end
    }
}

/// `acc += part * scale`, fused, with `s0` for the thread's first row and
/// `s1` for the row 8 below. The fence after it keeps the next `wgmma`
/// from being issued before the promotion has read `part`.
#[inline(always)]
fn promote(acc: &mut [f32; 64], part: &mut [f32; 64], s0: f32, s1: f32) {
    fence_operands(part);
    unroll16!(j => {
        acc[4 * j] = fma(part[4 * j], s0, acc[4 * j]);
        acc[4 * j + 1] = fma(part[4 * j + 1], s0, acc[4 * j + 1]);
        acc[4 * j + 2] = fma(part[4 * j + 2], s1, acc[4 * j + 2]);
        acc[4 * j + 3] = fma(part[4 * j + 3], s1, acc[4 * j + 3]);
    });
    fence_operands(acc);
}

/// Queues k32 step `Q` of the k-block at `at` for the columns `64 H ..` of
/// B's tile into `part`, overwriting it; for the first step waits for the
/// stage's operands.
#[inline(always)]
unsafe fn mma_half<const Q: u32, const H: u32>(p: &Pipe, at: Pos, wg: u32, part: &mut [f32; 32]) {
    if Q == 0 && H == 0 {
        mbar_wait(p.full + 8 * at.stage, at.phase);
    }
    let a = p.stages + at.stage * p.stage_bytes + wg * 64 * TILE + 32 * Q;
    let b = p.stages + at.stage * p.stage_bytes + (p.tile_m + 64 * H) * TILE + 32 * Q;
    fence_operands32(part);
    wgmma_fence();
    wgmma_m64n64k32(part, smem_desc(a), smem_desc(b), 0);
    wgmma_commit();
}

/// `acc += part * scale` for the half `H` of the tile's columns (the
/// m64n128 fragment's accumulators `32 H ..` are the m64n64 fragment of
/// columns `64 H ..`).
#[inline(always)]
fn promote_half<const H: usize>(acc: &mut [f32; 64], part: &mut [f32; 32], s0: f32, s1: f32) {
    fence_operands32(part);
    unroll16!(j => {
        if j < 8 {
            let a = 32 * H + 4 * j;
            acc[a] = fma(part[4 * j], s0, acc[a]);
            acc[a + 1] = fma(part[4 * j + 1], s0, acc[a + 1]);
            acc[a + 2] = fma(part[4 * j + 2], s1, acc[a + 2]);
            acc[a + 3] = fma(part[4 * j + 3], s1, acc[a + 3]);
        }
    });
    fence_operands(acc);
}

/// One k-block for one warpgroup as eight m64n64k32 `wgmma`s alternating
/// between the two column halves, each promoted while the next one runs
/// (`wait_group 1`), so the tensor cores are not idle during promotions.
/// Arrives on the stage's `empty` barrier after the last `wgmma`.
#[inline(always)]
unsafe fn kblock_halves(
    p: &Pipe,
    at: Pos,
    wg: u32,
    h: &mut [[f32; 32]; 2],
    acc: &mut [f32; 64],
    (s0, s1): (f32, f32),
    empty: u32,
) {
    let [h0, h1] = h;
    mma_half::<0, 0>(p, at, wg, h0);
    mma_half::<0, 1>(p, at, wg, h1);
    wgmma_wait1();
    promote_half::<0>(acc, h0, s0, s1);
    mma_half::<1, 0>(p, at, wg, h0);
    wgmma_wait1();
    promote_half::<1>(acc, h1, s0, s1);
    mma_half::<1, 1>(p, at, wg, h1);
    wgmma_wait1();
    promote_half::<0>(acc, h0, s0, s1);
    mma_half::<2, 0>(p, at, wg, h0);
    wgmma_wait1();
    promote_half::<1>(acc, h1, s0, s1);
    mma_half::<2, 1>(p, at, wg, h1);
    wgmma_wait1();
    promote_half::<0>(acc, h0, s0, s1);
    mma_half::<3, 0>(p, at, wg, h0);
    wgmma_wait1();
    promote_half::<1>(acc, h1, s0, s1);
    mma_half::<3, 1>(p, at, wg, h1);
    wgmma_wait1();
    promote_half::<0>(acc, h0, s0, s1);
    wgmma_wait0();
    mbar_arrive(empty + 8 * at.stage);
    promote_half::<1>(acc, h1, s0, s1);
}

/// Waits until the stage of `at` has landed and returns the shared
/// addresses of warpgroup `wg`'s A rows and of the B tile in it.
#[inline(always)]
unsafe fn stage_operands(p: &Pipe, at: Pos, wg: u32) -> (u32, u32) {
    mbar_wait(p.full + 8 * at.stage, at.phase);
    let base = p.stages + at.stage * p.stage_bytes;
    (base + wg * 64 * TILE, base + p.tile_m * TILE)
}

/// One k-block for one warpgroup as two k64 steps (two chained
/// m64n128k32 `wgmma`s each) into two register sets: both are queued at
/// once and the first is promoted while the second runs (`wait_group 1`),
/// so a warpgroup's tensor work no longer stops for its own promotion.
/// Needs 64 more registers than one set: only the kernels with a producer
/// warpgroup (`setmaxnreg`) have them. Faster than [`kblock_k32x2`] but
/// not within the spec's tolerance on every input (see the module
/// documentation): a comparison variant.
#[inline(always)]
unsafe fn kblock_k64x2(
    p: &Pipe,
    at: Pos,
    wg: u32,
    parts: &mut [[f32; 64]; 2],
    acc: &mut [f32; 64],
    (s0, s1): (f32, f32),
    empty: u32,
) {
    let (a, b) = stage_operands(p, at, wg);
    let [p0, p1] = parts;
    mma_k64(p0, a, b);
    mma_k64(p1, a + 64, b + 64);
    wgmma_wait1();
    promote(acc, p0, s0, s1);
    wgmma_wait0();
    mbar_arrive(empty + 8 * at.stage);
    promote(acc, p1, s0, s1);
}

/// One k-block for one warpgroup as four k32 steps, each a single
/// m64n128k32 `wgmma` from zero into one of two register sets in turn and
/// promoted while the next one runs (`wait_group 1`): the precision of
/// promoting every k32 (the `wgmma` never accumulates into its own
/// result) with the tensor cores kept busy during promotions.
#[inline(always)]
unsafe fn kblock_k32x2(
    p: &Pipe,
    at: Pos,
    wg: u32,
    parts: &mut [[f32; 64]; 2],
    acc: &mut [f32; 64],
    (s0, s1): (f32, f32),
    empty: u32,
) {
    let (a, b) = stage_operands(p, at, wg);
    let [p0, p1] = parts;
    mma_k32(p0, a, b);
    mma_k32(p1, a + 32, b + 32);
    wgmma_wait1();
    promote(acc, p0, s0, s1);
    mma_k32(p0, a + 64, b + 64);
    wgmma_wait1();
    promote(acc, p1, s0, s1);
    mma_k32(p1, a + 96, b + 96);
    wgmma_wait1();
    promote(acc, p0, s0, s1);
    wgmma_wait0();
    mbar_arrive(empty + 8 * at.stage);
    promote(acc, p1, s0, s1);
}

/// Queues the k32 step of A and B starting at shared addresses `a` and `b`
/// (one m64n128k32 `wgmma` from zero) into `part`, as one group.
#[inline(always)]
unsafe fn mma_k32(part: &mut [f32; 64], a: u32, b: u32) {
    fence_operands(part);
    wgmma_fence();
    wgmma_m64n128k32(part, smem_desc(a), smem_desc(b), 0);
    wgmma_commit();
}

/// Queues the k64 step of A and B starting at shared addresses `a` and `b`
/// (two chained m64n128k32 `wgmma`s, the first from zero) into `part`, as
/// one group.
#[inline(always)]
unsafe fn mma_k64(part: &mut [f32; 64], a: u32, b: u32) {
    fence_operands(part);
    wgmma_fence();
    wgmma_m64n128k32(part, smem_desc(a), smem_desc(b), 0);
    wgmma_m64n128k32(part, smem_desc(a + 32), smem_desc(b + 32), 1);
    wgmma_commit();
}

/// Stores of C as predicated instructions rather than branches. Both
/// kernels wait for their warpgroup's `wgmma`s before the epilogue, but a
/// thread-dependent branch anywhere a `wgmma` may be in flight makes ptxas
/// serialise them all (C7518), and the removed two-set kernel ran its
/// epilogue under the next tile's `wgmma`s: kept so that overlapping them
/// again stays possible.
pub trait PredStore: Out + Sized {
    /// Stores `(v0, v1)` at `(row, col)`, `(row, col + 1)` of an `[m, n]` C,
    /// each element only where it is inside C; as one paired store when
    /// `pair_ok` (even N, aligned base) and both are inside.
    ///
    /// # Safety
    /// `c` points at an `[m, n]` C.
    #[allow(clippy::too_many_arguments)]
    unsafe fn store_pair_if(c: *mut Self, m: u32, n: u32, row: u32, col: u32, v0: f32, v1: f32, pair_ok: bool);
}

/// The predicates of a pair store: `(pair, first alone, second alone)`.
#[inline(always)]
fn pair_predicates(m: u32, n: u32, row: u32, col: u32, pair_ok: bool) -> (u32, u32, u32) {
    let inside = row < m;
    let (c0, c1) = (inside && col < n, inside && col + 1 < n);
    let pair = c1 && pair_ok;
    (pair as u32, (c0 && !pair) as u32, (c1 && !pair) as u32)
}

impl PredStore for Bf16Out {
    #[inline(always)]
    unsafe fn store_pair_if(c: *mut Self, m: u32, n: u32, row: u32, col: u32, v0: f32, v1: f32, pair_ok: bool) {
        let (pair, s0, s1) = pair_predicates(m, n, row, col, pair_ok);
        let addr = c as u64 + 2 * (row as u64 * n as u64 + col as u64);
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
}

impl PredStore for f32 {
    #[inline(always)]
    unsafe fn store_pair_if(c: *mut Self, m: u32, n: u32, row: u32, col: u32, v0: f32, v1: f32, pair_ok: bool) {
        let (pair, s0, s1) = pair_predicates(m, n, row, col, pair_ok);
        let addr = c as u64 + 4 * (row as u64 * n as u64 + col as u64);
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
}

/// [`gemm_wgmma_ws`]'s k-block schedules: [`kblock_k32x2`] (the default),
/// [`kblock_halves`] (the same sums with one register set) and
/// [`kblock_k64x2`] (promotion every k64). The two-set ones need a producer
/// warpgroup instead of a warp (`geometry::gemm_wgmma_threads_x2`).
const MODE_K32_HALVES: u32 = 1;
const MODE_K64X2: u32 = 2;
const MODE_K32X2: u32 = 3;

/// The warp-specialised kernel (see the module documentation) with `WGS`
/// consumer warpgroups over a `64 WGS` x 128 tile. Each consumer
/// warpgroup waits for a stage and runs its k-block (by `MODE`), arriving
/// on the stage's `empty`
/// barrier once the last `wgmma` has read it.
///
/// With `splits > 1` (split-K: too few tiles to fill the GPU), split `s`
/// of every tile sums k-blocks `s kbt / splits ..` only and stores them,
/// unscaled by anything else, at `[s, m, n]` of the f32 workspace `c`
/// (splits `gemm_split_stride(m, n)` elements apart);
/// [`super::gemm_reduce`] adds them up in split order afterwards.
///
/// # Safety
/// Launched by `quant-host` with `gemm_wgmma_threads(WGS)` threads
/// (`gemm_wgmma_threads_x2(WGS)` for the two-set modes),
/// `gemm_wgmma_smem_bytes(WGS)` of dynamic shared memory, a 1-D grid of at
/// most `tiles = ceil(m / (64 WGS)) * ceil(n / 128)` CTAs (below 2^31)
/// without a split and exactly `tiles * splits` with one, and `map_a`,
/// `map_b` pointing at 64-byte-aligned `CUtensorMap`s in global memory
/// (A `[m, k]` with box `64 WGS` x 128 and B `[n, k]` with box 128 x 128,
/// u8, SWIZZLE_128B), `k > 0`, `1 <= splits <= ceil(k / 128)` with
/// `splits * ceil(k / 128) < 2^31`, and `c` holding `splits *
/// gemm_split_stride(m, n)` elements when `splits > 1`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn gemm_wgmma_ws<O: PredStore, const WGS: u32, const MODE: u32>(
    map_a: *const u8,
    map_b: *const u8,
    a_scales: *const f32,
    b_scales: *const f32,
    c: *mut O,
    m: u32,
    n: u32,
    k: u32,
    layout: u32,
    splits: u32,
) {
    let smem: *mut u8 = core::intrinsics::gpu::gpu_launch_sized_workgroup_mem::<Align16>() as *mut u8;
    let stages = (smem_addr(smem) + 1023) & !1023;
    let tile_m = 64 * WGS;
    let stage_bytes = (tile_m + TILE) * TILE;
    let full = stages + STAGES * stage_bytes;
    let empty = full + STAGES * 8;
    let tiles_m = m.div_ceil(tile_m).max(1);
    let tiles = tiles_m * n.div_ceil(TILE);
    let consumers = 128 * WGS;
    let pipe = Pipe {
        map_a: map_a as u64,
        map_b: map_b as u64,
        stages,
        tile_m,
        stage_bytes,
        full,
        tiles_m,
        tiles,
        kbt: k.div_ceil(TILE),
        splits,
        tile_step: if splits == 1 { nvptx::_grid_dim_x() as u32 } else { tiles },
    };
    // This CTA's first tile and (split launches) its split: the CTAs of a
    // split launch are numbered tile-fastest, `tiles * splits` of them.
    let cta = nvptx::_block_idx_x() as u32;
    let (tile, split) = (cta % tiles, cta / tiles);
    if split >= splits {
        return; // no such unit (the host never launches one)
    }
    let tid = nvptx::_thread_idx_x() as u32;
    let first = Pos { tile, kb: pipe.split_start(split), end: pipe.split_start(split + 1), stage: 0, phase: 0 };
    // Split `s` stores its partial tile at `[s, m, n]` of the f32 workspace
    // `c` (s = 0 without a split: C itself).
    let c = c.add((split as u64 * crate::geometry::gemm_split_stride(m, n)) as usize);
    if tid == 0 {
        asm!(
            "fence.proxy.tensormap::generic.acquire.gpu [{a}], 128;",
            "fence.proxy.tensormap::generic.acquire.gpu [{b}], 128;",
            a = in(reg64) pipe.map_a, b = in(reg64) pipe.map_b,
            options(nostack),
        );
        let mut s = 0;
        while s < STAGES {
            mbar_init(full + 8 * s, 1);
            mbar_init(empty + 8 * s, consumers);
            s += 1;
        }
        asm!("fence.mbarrier_init.release.cluster;", "fence.proxy.async.shared::cta;", options(nostack));
    }
    nvptx::_syncthreads();

    if tid >= consumers {
        if MODE == MODE_K64X2 || MODE == MODE_K32X2 {
            // A whole producer warpgroup: it gives back all but 40 of its
            // registers so that the consumers can take 232.
            asm!("setmaxnreg.dec.sync.aligned.u32 40;", options(nostack));
        }
        // Producer: lane 0 of its first warp only. Waiting on a fresh barrier for the
        // parity before its first phase (1) returns at once, so the first
        // STAGES loads go out without waiting.
        if tid == consumers {
            let mut load = Some(first);
            while let Some(at) = load {
                mbar_wait(empty + 8 * at.stage, at.phase ^ 1);
                let (m0, n0) = pipe.origin(at.tile);
                issue(&pipe, at.stage, at.kb, m0, n0);
                load = at.next(&pipe);
            }
        }
        return;
    }

    if MODE == MODE_K64X2 || MODE == MODE_K32X2 {
        asm!("setmaxnreg.inc.sync.aligned.u32 232;", options(nostack));
    }
    let wg = tid / 128;
    let (warp, lane) = ((tid % 128) / 32, tid % 32);
    let layout = decode_layout(layout);
    let (sa_row_stride, sa_kb_stride) = match layout {
        ScaleLayout::RowMajor => (pipe.kbt as u64, 1),
        ScaleLayout::ColMajor => (1, m as u64),
        ScaleLayout::ColMajorTmaAligned => (1, layout.padded_rows(m as u64)),
    };
    let row = wg * 64 + warp * 16 + lane / 4;
    let col = 2 * (lane % 4);
    let pair_ok = n % 2 == 0 && (c as usize) % (2 * core::mem::size_of::<O>()) == 0;
    let mut acc = [0f32; 64];
    let mut halves = [[0f32; 32]; 2];
    let mut parts = [[0f32; 64]; 2];
    let mut at = Some(first);
    // The tile's coordinates, stepped along with the tile instead of
    // divided out per k-block (the division's MUFU and integer sequence
    // showed in the consumers' ncu stall samples, ~4%).
    let (step_m, step_n) = (pipe.tile_step % pipe.tiles_m, pipe.tile_step / pipe.tiles_m);
    let (mut mt, mut nt) = (first.tile % pipe.tiles_m, first.tile / pipe.tiles_m);
    while let Some(pos) = at {
        let (m0, n0) = (mt * pipe.tile_m, nt * TILE);
        let (row0, row1) = (m0 + row, m0 + row + 8);
        let scale = |r: u32| {
            let r = r.min(m - 1);
            a_scales.add((r as u64 * sa_row_stride + pos.kb as u64 * sa_kb_stride) as usize).read()
        };
        let (sa0, sa1) = (scale(row0), scale(row1));
        let sb = b_scales.add(((n0 / TILE) as u64 * pipe.kbt as u64 + pos.kb as u64) as usize).read();
        let s = (sa0 * sb, sa1 * sb);
        match MODE {
            MODE_K64X2 => kblock_k64x2(&pipe, pos, wg, &mut parts, &mut acc, s, empty),
            MODE_K32X2 => kblock_k32x2(&pipe, pos, wg, &mut parts, &mut acc, s, empty),
            _ => kblock_halves(&pipe, pos, wg, &mut halves, &mut acc, s, empty),
        }
        if pos.last() {
            unroll16!(j => {
                let cc = n0 + col + 8 * j as u32;
                O::store_pair_if(c, m, n, row0, cc, acc[4 * j], acc[4 * j + 1], pair_ok);
                O::store_pair_if(c, m, n, row1, cc, acc[4 * j + 2], acc[4 * j + 3], pair_ok);
                acc[4 * j] = 0.0;
                acc[4 * j + 1] = 0.0;
                acc[4 * j + 2] = 0.0;
                acc[4 * j + 3] = 0.0;
            });
            // The next tile is `tile_step` further (see `Pos::next`).
            mt += step_m;
            nt += step_n;
            let wrap = (mt >= pipe.tiles_m) as u32;
            mt -= wrap * pipe.tiles_m;
            nt += wrap;
        }
        at = pos.next(&pipe);
    }
}

macro_rules! entries {
    ($($ws32:ident, $ws2:ident, $ws2k32:ident: $out:ty;)*) => {$(
        /// The warp-specialised `wgmma` GEMM kernel promoting every k32
        /// (more precise, slower); see [`kblock_halves`].
        ///
        /// # Safety
        /// Launched by `quant-host` with checked arguments.
        #[no_mangle]
        #[allow(clippy::too_many_arguments)]
        pub unsafe extern "ptx-kernel" fn $ws32(
            map_a: *const u8,
            map_b: *const u8,
            a_scales: *const f32,
            b_scales: *const f32,
            c: *mut $out,
            m: u32,
            n: u32,
            k: u32,
            layout: u32,
            splits: u32,
        ) {
            gemm_wgmma_ws::<$out, { crate::geometry::GEMM_WGMMA_WARPGROUPS }, MODE_K32_HALVES>(map_a, map_b, a_scales, b_scales, c, m, n, k, layout, splits)
        }

        /// The warp-specialised `wgmma` GEMM kernel with two partial sets
        /// and a producer warpgroup; see [`kblock_k64x2`].
        ///
        /// # Safety
        /// Launched by `quant-host` with checked arguments and
        /// `gemm_wgmma_threads_x2` threads.
        #[no_mangle]
        #[allow(clippy::too_many_arguments)]
        pub unsafe extern "ptx-kernel" fn $ws2(
            map_a: *const u8,
            map_b: *const u8,
            a_scales: *const f32,
            b_scales: *const f32,
            c: *mut $out,
            m: u32,
            n: u32,
            k: u32,
            layout: u32,
            splits: u32,
        ) {
            gemm_wgmma_ws::<$out, { crate::geometry::GEMM_WGMMA_WARPGROUPS }, MODE_K64X2>(map_a, map_b, a_scales, b_scales, c, m, n, k, layout, splits)
        }

        /// The `wgmma` GEMM kernel promoting every k32 with two partial
        /// sets and a producer warpgroup, the default; see [`kblock_k32x2`].
        ///
        /// # Safety
        /// Launched by `quant-host` with checked arguments and
        /// `gemm_wgmma_threads_x2` threads.
        #[no_mangle]
        #[allow(clippy::too_many_arguments)]
        pub unsafe extern "ptx-kernel" fn $ws2k32(
            map_a: *const u8,
            map_b: *const u8,
            a_scales: *const f32,
            b_scales: *const f32,
            c: *mut $out,
            m: u32,
            n: u32,
            k: u32,
            layout: u32,
            splits: u32,
        ) {
            gemm_wgmma_ws::<$out, { crate::geometry::GEMM_WGMMA_WARPGROUPS }, MODE_K32X2>(map_a, map_b, a_scales, b_scales, c, m, n, k, layout, splits)
        }
    )*};
}

entries! {
    gemm_wgmma_ws32_e4m3fn_bf16, gemm_wgmma_ws2_e4m3fn_bf16, gemm_wgmma_ws2k32_e4m3fn_bf16: Bf16Out;
    gemm_wgmma_ws32_e4m3fn_f32, gemm_wgmma_ws2_e4m3fn_f32, gemm_wgmma_ws2k32_e4m3fn_f32: f32;
}
