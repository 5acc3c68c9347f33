//! The Hopper instructions of the `wgmma` GEMM, each in one `asm!`
//! wrapper: `wgmma` for every fragment width the tiles and the streaming
//! kernel use (16 to 192 columns), its fences and
//! waits, the `mbarrier` operations and the TMA load. (The predicated stores of its
//! epilogue are in [`super::store`].)
//!
//! The accumulator fragments are `[f32; FRAG]` arrays; an `m64n{N}` `wgmma`
//! uses the first `N / 2` of them (register `4 j + e` of a thread holds row
//! `16 warp + lane / 4 + 8 (e / 2)`, column `8 j + 2 (lane % 4) + e % 2`),
//! and code that never touches the rest leaves them to dead-code elimination.

use core::arch::asm;

/// Registers of the widest fragment (m64n192: 96 f32 per thread).
pub const FRAG: usize = 96;

/// A warpgroup's accumulator fragment.
pub type Frag = [f32; FRAG];

/// `"{}, {}, ..., {}"`: one positional `asm!` operand per index given.
macro_rules! operand_list {
    (@sep $x:literal) => {
        ", {}"
    };
    ($first:literal $($rest:literal)*) => {
        concat!("{}", $(operand_list!(@sep $rest)),*)
    };
}

/// Defines `$name(d, desc_a, desc_b, accumulate)`: `d (+)= A * B^T` for one
/// warpgroup with `wgmma.mma_async` `$shape`, E4M3FN operands from shared
/// memory (descriptors) and the first `$n` f32 accumulators of `d`.
/// `accumulate == 0` overwrites `d` instead of adding.
macro_rules! wgmma_e4m3 {
    ($name:ident, $shape:literal, $n:literal, [$($i:literal)+]) => {
        wgmma_e4m3!($name, Frag, $shape, $n, [$($i)+]);
    };
    ($name:ident, $frag:ty, $shape:literal, $n:literal, [$($i:literal)+]) => {
        #[doc = concat!("`wgmma.mma_async` ", $shape, " (E4M3FN x E4M3FN -> f32); see `wgmma_e4m3!`.")]
        ///
        /// # Safety
        /// All 128 threads of the warpgroup execute it convergently, the
        /// descriptors point at 1024-byte-aligned 128B-swizzled tiles the CTA
        /// owns, and [`fence`] ran since the registers were last written by
        /// other code.
        #[inline(always)]
        pub unsafe fn $name(d: &mut $frag, desc_a: u64, desc_b: u64, accumulate: u32) {
            asm!(
                "{{",
                ".reg .pred p;",
                "setp.ne.b32 p, {acc}, 0;",
                concat!(
                    "wgmma.mma_async.sync.aligned.",
                    $shape,
                    ".f32.e4m3.e4m3 {{",
                    operand_list!($($i)+),
                    "}}, {da}, {db}, p, 1, 1;"
                ),
                "}}",
                $(inout(reg32) d[$i],)+
                da = in(reg64) desc_a,
                db = in(reg64) desc_b,
                acc = in(reg32) accumulate,
                options(nostack),
            );
        }
    };
}

/// Defines `$name(d)`: ties the first `$n` accumulators of `d` to this point
/// of the program, so code that reads or writes them cannot move across it
/// (CUTLASS's `warpgroup_fence_operand`). Emits only a PTX comment.
macro_rules! fence_operands {
    ($name:ident, $n:literal, [$($i:literal)+]) => {
        fence_operands!($name, Frag, $n, [$($i)+]);
    };
    ($name:ident, $frag:ty, $n:literal, [$($i:literal)+]) => {
        #[doc = concat!("Fences the first ", stringify!($n), " accumulators of a fragment; see `fence_operands!`.")]
        #[inline(always)]
        fn $name(d: &mut $frag) {
            // SAFETY: a comment; the operands are only named.
            unsafe {
                asm!(
                    concat!("// wgmma operands ", operand_list!($($i)+)),
                    $(inout(reg32) d[$i],)+
                    options(nomem, nostack, preserves_flags),
                )
            };
        }
    };
}

wgmma_e4m3!(wgmma_m64n32k32, "m64n32k32", 16, [0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15]);
wgmma_e4m3!(wgmma_m64n64k32, "m64n64k32", 32, [0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31]);
wgmma_e4m3!(wgmma_m64n128k32, "m64n128k32", 64, [0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59 60 61 62 63]);
wgmma_e4m3!(wgmma_m64n160k32, "m64n160k32", 80, [0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59 60 61 62 63 64 65 66 67 68 69 70 71 72 73 74 75 76 77 78 79]);
wgmma_e4m3!(wgmma_m64n192k32, "m64n192k32", 96, [0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59 60 61 62 63 64 65 66 67 68 69 70 71 72 73 74 75 76 77 78 79 80 81 82 83 84 85 86 87 88 89 90 91 92 93 94 95]);
wgmma_e4m3!(wgmma_m64n16k32, "m64n16k32", 8, [0 1 2 3 4 5 6 7]);
fence_operands!(fence8, 8, [0 1 2 3 4 5 6 7]);
fence_operands!(fence16, 16, [0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15]);
fence_operands!(fence32, 32, [0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31]);
fence_operands!(fence64, 64, [0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59 60 61 62 63]);
fence_operands!(fence80, 80, [0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59 60 61 62 63 64 65 66 67 68 69 70 71 72 73 74 75 76 77 78 79]);
fence_operands!(fence96, 96, [0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59 60 61 62 63 64 65 66 67 68 69 70 71 72 73 74 75 76 77 78 79 80 81 82 83 84 85 86 87 88 89 90 91 92 93 94 95]);

/// One k32 step for a warpgroup: `d (+)= A B^T` with a fragment of `COLS`
/// columns (16, 32, 64, 128, 160 or 192).
///
/// # Safety
/// As for the `wgmma_m64n*k32` wrappers.
#[inline(always)]
pub unsafe fn wgmma_k32<const COLS: u32>(d: &mut Frag, desc_a: u64, desc_b: u64, accumulate: u32) {
    match COLS {
        16 => wgmma_m64n16k32(d, desc_a, desc_b, accumulate),
        32 => wgmma_m64n32k32(d, desc_a, desc_b, accumulate),
        64 => wgmma_m64n64k32(d, desc_a, desc_b, accumulate),
        128 => wgmma_m64n128k32(d, desc_a, desc_b, accumulate),
        160 => wgmma_m64n160k32(d, desc_a, desc_b, accumulate),
        _ => wgmma_m64n192k32(d, desc_a, desc_b, accumulate),
    }
}

/// Fences the `COLS / 2` accumulators of a `COLS`-column fragment.
#[inline(always)]
pub fn fence<const COLS: u32>(d: &mut Frag) {
    match COLS {
        16 => fence8(d),
        32 => fence16(d),
        64 => fence32(d),
        128 => fence64(d),
        160 => fence80(d),
        _ => fence96(d),
    }
}

/// `wgmma.fence`: orders this warpgroup's register and shared-memory
/// accesses before the `wgmma`s that follow.
#[inline(always)]
pub unsafe fn wgmma_fence() {
    asm!("wgmma.fence.sync.aligned;", options(nostack));
}

/// Closes the `wgmma`s issued since the last commit into one group.
#[inline(always)]
pub unsafe fn wgmma_commit() {
    asm!("wgmma.commit_group.sync.aligned;", options(nostack));
}

/// Waits until no `wgmma` group of this warpgroup is pending.
#[inline(always)]
pub unsafe fn wgmma_wait0() {
    asm!("wgmma.wait_group.sync.aligned 0;", options(nostack));
}

/// Waits until at most one `wgmma` group of this warpgroup is pending.
#[inline(always)]
pub unsafe fn wgmma_wait1() {
    asm!("wgmma.wait_group.sync.aligned 1;", options(nostack));
}

/// Descriptor of a K-major, 128B-swizzled tile starting at shared address
/// `addr` (1024-byte-aligned tile base plus a k offset below 128).
#[inline(always)]
pub fn smem_desc(addr: u32) -> u64 {
    const SWIZZLE_128B: u64 = 1 << 62;
    const SBO: u64 = (1024 >> 4) << 32; // 8 rows of 128 bytes
    const LBO: u64 = 1 << 16; // unused for swizzled K-major layouts
    SWIZZLE_128B | SBO | LBO | ((addr as u64 & 0x3FFFF) >> 4)
}

/// Initialises an `mbarrier` for `count` arrivals per phase.
#[inline(always)]
pub unsafe fn mbar_init(bar: u32, count: u32) {
    asm!("mbarrier.init.shared.b64 [{b}], {c};", b = in(reg32) bar, c = in(reg32) count, options(nostack));
}

/// Arms the barrier for `bytes` of TMA traffic and arrives once.
#[inline(always)]
pub unsafe fn mbar_arrive_expect_tx(bar: u32, bytes: u32) {
    asm!("mbarrier.arrive.expect_tx.shared.b64 _, [{b}], {n};", b = in(reg32) bar, n = in(reg32) bytes, options(nostack));
}

/// Arms the barrier for `bytes` more of asynchronous traffic without
/// arriving (the thread's own arrival comes later, through another
/// instruction).
#[inline(always)]
pub unsafe fn mbar_expect_tx(bar: u32, bytes: u32) {
    asm!("mbarrier.expect_tx.relaxed.cta.shared::cta.b64 [{b}], {n};", b = in(reg32) bar, n = in(reg32) bytes, options(nostack));
}

/// Copies `bytes` (a multiple of 16) from global `src` to shared `dst`
/// (both 16-byte aligned) with the bulk copy engine, completing that many
/// bytes of `bar`'s transaction count when they have landed.
#[inline(always)]
pub unsafe fn bulk_load(dst: u32, src: u64, bytes: u32, bar: u32) {
    asm!(
        "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [{d}], [{s}], {n}, [{b}];",
        d = in(reg32) dst, s = in(reg64) src, n = in(reg32) bytes, b = in(reg32) bar,
        options(nostack),
    );
}

/// Arrives once on the barrier if `leader` is nonzero: one arrival per
/// warp (lane 0) as a predicated instruction, not a branch (a
/// thread-dependent branch near `wgmma`s makes ptxas serialise them).
#[inline(always)]
pub unsafe fn mbar_arrive_if(bar: u32, leader: u32) {
    asm!(
        "{{",
        ".reg .pred p;",
        "setp.ne.u32 p, {l}, 0;",
        "@p mbarrier.arrive.shared.b64 _, [{b}];",
        "}}",
        b = in(reg32) bar, l = in(reg32) leader,
        options(nostack),
    );
}

/// Makes the barrier track the executing thread's earlier `cp.async`
/// copies: it receives one arrival when they have all landed
/// (`.noinc`: the arrival is one of the count the barrier was initialised
/// with).
#[inline(always)]
pub unsafe fn mbar_arrive_on_cp_async(bar: u32) {
    asm!("cp.async.mbarrier.arrive.noinc.shared.b64 [{b}];", b = in(reg32) bar, options(nostack));
}

/// Spins until the phase of parity `parity` of the barrier has completed
/// (the loop inside one `asm` block, as a single instruction sequence; PTX
/// scopes the label to the braces, so inlined copies do not clash).
#[allow(named_asm_labels)]
#[inline(always)]
pub unsafe fn mbar_wait(bar: u32, parity: u32) {
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

/// Whether the phase of parity `parity` of the `mbarrier` at `bar` has
/// completed, without waiting (`test_wait`, acquire on success): 1 or 0.
#[inline(always)]
pub unsafe fn mbar_test(bar: u32, parity: u32) -> u32 {
    let done: u32;
    asm!(
        "{{",
        ".reg .pred p;",
        "mbarrier.test_wait.parity.shared.b64 p, [{b}], {q};",
        "selp.u32 {d}, 1, 0, p;",
        "}}",
        b = in(reg32) bar, q = in(reg32) parity, d = out(reg32) done,
        options(nostack),
    );
    done
}

/// Makes the barrier initialisations visible to the async proxy (the TMA
/// unit) and to the other threads after the next CTA barrier.
#[inline(always)]
pub unsafe fn mbar_init_fence() {
    asm!("fence.mbarrier_init.release.cluster;", "fence.proxy.async.shared::cta;", options(nostack));
}

/// Brings the tensor map at generic address `map` (in the parameter block)
/// into the TMA unit's descriptor cache ahead of the first copy that names
/// it.
#[inline(always)]
pub unsafe fn tensormap_prefetch(map: u64) {
    asm!("prefetch.tensormap [{a}];", a = in(reg64) map, options(nostack, readonly));
}

/// The generic address of parameter 0 of the kernel entry `$entry` (an
/// identifier: the entry's PTX name), as `cvta.param` gives it: what TMA
/// takes for a tensor map passed by value (`crate::tensor_map`). The
/// parameter is read through this address only, so LLVM never copies it
/// to local memory.
macro_rules! param_block_address {
    ($entry:ident) => {{
        let a: u64;
        core::arch::asm!(
            concat!("mov.u64 {a}, ", stringify!($entry), "_param_0;\n\tcvta.param.u64 {a}, {a};"),
            a = out(reg64) a,
            options(pure, nomem, nostack),
        );
        a
    }};
}
pub(crate) use param_block_address;

/// TMA: the box at coordinates `(x = k byte, y = row)` of the tensor map at
/// generic address `map` into shared address `dst`, completing on `bar`.
#[inline(always)]
pub unsafe fn tma_load_2d(dst: u32, map: u64, x: u32, y: u32, bar: u32) {
    asm!(
        "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [{d}], [{m}, {{{x}, {y}}}], [{b}];",
        d = in(reg32) dst, m = in(reg64) map, x = in(reg32) x, y = in(reg32) y, b = in(reg32) bar,
        options(nostack),
    );
}

/// `griddepcontrol.wait`: in a grid launched with programmatic stream
/// serialization (PDL), waits until the grids it depends on have completed
/// and their memory operations are visible to it; in any other grid it
/// returns at once. Every thread that reads or writes memory an earlier
/// kernel may touch executes it first.
#[inline(always)]
pub unsafe fn grid_dependency_wait() {
    asm!("griddepcontrol.wait;", options(nostack));
}

/// [`tma_load_2d`] multicast: the box lands at shared address `dst` and
/// completes `bar` (the same offsets) in every CTA of the cluster whose bit
/// is set in `mask`.
#[inline(always)]
pub unsafe fn tma_load_2d_multicast(dst: u32, map: u64, x: u32, y: u32, bar: u32, mask: u16) {
    asm!(
        "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes.multicast::cluster [{d}], [{m}, {{{x}, {y}}}], [{b}], {k};",
        d = in(reg32) dst, m = in(reg64) map, x = in(reg32) x, y = in(reg32) y, b = in(reg32) bar, k = in(reg16) mask,
        options(nostack),
    );
}

/// This CTA's rank in its cluster, read from its special register at each
/// call (not `pure`: kept out of registers across the loops that use it).
#[inline(always)]
pub fn cluster_rank() -> u32 {
    let r: u32;
    // SAFETY: reads a special register.
    unsafe { asm!("mov.u32 {r}, %cluster_ctarank;", r = out(reg32) r, options(nomem, nostack)) };
    r
}

/// Every thread of the cluster meets here (release, then acquire): after
/// it, the barrier initialisations of every CTA are visible cluster-wide.
///
/// # Safety
/// Every thread of every CTA of the cluster executes it the same number of
/// times, none inside a thread-dependent branch.
#[inline(always)]
pub unsafe fn cluster_sync() {
    asm!("barrier.cluster.arrive.release.aligned;", "barrier.cluster.wait.acquire.aligned;", options(nostack));
}

/// Releases a stage to both CTAs of a 2-CTA cluster: lane `r` (r = 0, 1)
/// of the warp arrives once on the barrier at shared offset `bar` of the
/// cluster's CTA `r`, the other lanes do nothing (one predicated
/// instruction; no register is kept for the peer's address). `lane` is the
/// caller's lane index, read once: `%laneid` read here, per k-block, cost
/// an `S2R` whose latency the next instruction waited for (6% of the
/// 256 x 128 cluster kernel's stall samples, ncu, session 9).
/// Default (release, CTA-scope) semantics, as CUTLASS's cluster barrier
/// arrives: the consumer's reads of the stage are `wgmma` reads already
/// waited for, and `.release.cluster` (session 8's first version) made the
/// cluster kernels 12-35% slower than the single-CTA ones, probably by
/// ordering the warp's outstanding global stores cluster-wide per k-block.
#[inline(always)]
pub unsafe fn mbar_arrive_pair(bar: u32, lane: u32) {
    asm!(
        "{{",
        ".reg .pred p;",
        ".reg .b32 r, a;",
        "setp.lt.u32 p, {l}, 2;",
        "and.b32 r, {l}, 1;",
        "mapa.shared::cluster.u32 a, {b}, r;",
        "@p mbarrier.arrive.shared::cluster.b64 _, [a];",
        "}}",
        b = in(reg32) bar, l = in(reg32) lane,
        options(nostack),
    );
}

/// `setmaxnreg.dec` to `N` registers per thread (the producer warpgroup).
#[inline(always)]
pub unsafe fn setmaxnreg_dec<const N: u32>() {
    asm!("setmaxnreg.dec.sync.aligned.u32 {n};", n = const N, options(nostack));
}

/// `setmaxnreg.inc` to `N` registers per thread (the consumer warpgroups).
#[inline(always)]
pub unsafe fn setmaxnreg_inc<const N: u32>() {
    asm!("setmaxnreg.inc.sync.aligned.u32 {n};", n = const N, options(nostack));
}

/// `stmatrix.m8n8.x4` of b16: four 8 x 8 matrices to shared memory; lane `l`
/// gives the address of row `l % 8` of matrix `l / 8`, and register `i` of
/// every lane holds two consecutive elements of matrix `i` (lane `t`: row
/// `t / 4`, columns `2 (t % 4)` and `+ 1`), the layout of a `wgmma`
/// accumulator's 8-column group.
#[inline(always)]
pub unsafe fn stmatrix_x4(addr: u32, r: [u32; 4]) {
    asm!(
        "stmatrix.sync.aligned.m8n8.x4.shared.b16 [{a}], {{{r0}, {r1}, {r2}, {r3}}};",
        a = in(reg32) addr, r0 = in(reg32) r[0], r1 = in(reg32) r[1], r2 = in(reg32) r[2], r3 = in(reg32) r[3],
        options(nostack),
    );
}

/// Makes this thread's generic-proxy writes of shared memory visible to the
/// async proxy (the TMA unit that stores them).
#[inline(always)]
pub unsafe fn fence_proxy_async_shared() {
    asm!("fence.proxy.async.shared::cta;", options(nostack));
}

/// Named barrier `id` for `count` threads (a warpgroup: 128).
#[inline(always)]
pub unsafe fn named_barrier(id: u32, count: u32) {
    asm!("bar.sync {i}, {c};", i = in(reg32) id, c = in(reg32) count, options(nostack));
}

/// Arrives on named barrier `id` (of `count` threads) without waiting,
/// where `on` is nonzero: a predicated instruction, not a branch (see
/// [`mbar_arrive_if`]).
#[inline(always)]
pub unsafe fn named_arrive_if(id: u32, count: u32, on: u32) {
    asm!(
        "{{",
        ".reg .pred p;",
        "setp.ne.u32 p, {o}, 0;",
        "@p bar.arrive {i}, {c};",
        "}}",
        i = in(reg32) id, c = in(reg32) count, o = in(reg32) on,
        options(nostack),
    );
}

/// Waits at named barrier `id` (of `count` threads) where `on` is nonzero;
/// predicated, as [`named_arrive_if`].
#[inline(always)]
pub unsafe fn named_barrier_if(id: u32, count: u32, on: u32) {
    asm!(
        "{{",
        ".reg .pred p;",
        "setp.ne.u32 p, {o}, 0;",
        "@p bar.sync {i}, {c};",
        "}}",
        i = in(reg32) id, c = in(reg32) count, o = in(reg32) on,
        options(nostack),
    );
}

/// Named barrier `id` for `count` threads, without `.aligned`: the threads
/// may reach it from different instructions. `bar.sync` is
/// `barrier.sync.aligned`, which PTX defines only when every participating
/// thread executes the same instruction; LLVM may duplicate an `asm!` block
/// into both arms of a branch (it did in the streaming GEMM, where the warps
/// of phase 0 and of the other phases then met at two copies of one barrier,
/// which compute-sanitizer's synccheck reported as divergent threads).
#[inline(always)]
pub unsafe fn named_barrier_unaligned(id: u32, count: u32) {
    asm!("barrier.sync {i}, {c};", i = in(reg32) id, c = in(reg32) count, options(nostack));
}

/// If `leader` is nonzero: TMA store of the box at shared address `src` to
/// coordinates `(x = column, y = row)` of the tensor map at generic address
/// `map` (out-of-bounds elements are not written), then a commit of the
/// thread's bulk group. Predicated, not branched.
#[inline(always)]
pub unsafe fn tma_store_2d_if(map: u64, x: u32, y: u32, src: u32, leader: u32) {
    asm!(
        "{{",
        ".reg .pred p;",
        "setp.ne.u32 p, {l}, 0;",
        "@p cp.async.bulk.tensor.2d.global.shared::cta.bulk_group [{m}, {{{x}, {y}}}], [{s}];",
        "@p cp.async.bulk.commit_group;",
        "}}",
        m = in(reg64) map, x = in(reg32) x, y = in(reg32) y, s = in(reg32) src, l = in(reg32) leader,
        options(nostack),
    );
}

/// If `leader` is nonzero: waits until at most `N` of the thread's bulk
/// groups still read shared memory (their source buffers may be rewritten).
#[inline(always)]
pub unsafe fn bulk_wait_read_if<const N: u32>(leader: u32) {
    asm!(
        "{{",
        ".reg .pred p;",
        "setp.ne.u32 p, {l}, 0;",
        "@p cp.async.bulk.wait_group.read {n};",
        "}}",
        l = in(reg32) leader, n = const N,
        options(nostack),
    );
}

/// If `leader` is nonzero: waits until every bulk group of the thread has
/// completed (its global writes done).
#[inline(always)]
pub unsafe fn bulk_wait_all_if(leader: u32) {
    asm!(
        "{{",
        ".reg .pred p;",
        "setp.ne.u32 p, {l}, 0;",
        "@p cp.async.bulk.wait_group 0;",
        "}}",
        l = in(reg32) leader,
        options(nostack),
    );
}
