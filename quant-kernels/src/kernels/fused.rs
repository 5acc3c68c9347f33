//! The fused quantizers: the activation is computed where it is quantized,
//! never written in the input type and read back. Like the token-group
//! kernels, every entry point first lets a dependent launch (the GEMM, with
//! PDL) start early; the GEMM waits for this grid before it reads.
//!
//! - `fused_quant_*` (the plain per-token-group quantizer in its masked MoE
//!   form) and `silu_mul_quant_*` share one per-group kernel: a thread owns
//!   `C` 8-element chunks of one group (`FusedOp::group_chunks`: 4 for the
//!   plain quantizer, as the wide token-group kernel, and for bf16
//!   `silu_mul`; 2 for f16 and f32 `silu_mul`, which spilled with 4).
//!   Lane `l` of the group's `GS / (8 C)` lanes holds chunks `l + c GS /
//!   (8 C)`, so each load instruction of a warp reads consecutive 16-byte
//!   pieces. As in the token-group kernel, a thread first issues every load
//!   it has (gate and up of every chunk for `silu_mul`), back to back with
//!   no test between them when its group lies wholly inside the row at
//!   aligned addresses (the checked path takes K tails and odd strides),
//!   and only then computes: the group's values `h` (kept raw for the plain
//!   quantizer, in f32 for `silu_mul`), the amax by a butterfly over the
//!   group's lanes, and the codes with the shared `GroupQuantizer` (its
//!   division path chosen once per thread, not per chunk). Lane, group,
//!   row and column indices are 32-bit (the host bounds the problem). The
//!   rows may form experts of `expert_rows` rows whose valid count is read
//!   from `masked_m` (see `FusedGroupParams`): the lanes walk only the
//!   valid rows, through running sums of the counts in shared memory
//!   (`FusedMask::Compact`), or beyond 1024 experts every row, where rows
//!   the mask leaves out load nothing and skip the math. The plain
//!   quantizer's compacted walk numbers its groups down bands of 8 valid
//!   rows with column-major scales (`fused::compact_walk_group`), as the
//!   wide token-group kernel does, so a warp's 8 scale stores share a
//!   sector; `silu_mul` and the walks over every row keep row order.
//! - `rms_norm_quant_*`: one CTA per row, the row held in registers (at most
//!   4 chunks per thread, `fused::rms_geometry`). The sum of squares follows
//!   the contract's fixed tree: per-chunk sums (`fused::leaf_square_sum`),
//!   then a halving tree over chunk indices, which the layout `chunk j in
//!   thread j % T, slot j / T` (the leaf layout) computes as slots
//!   in-thread, strides `T / 2` to 32 across threads, then butterfly
//!   shuffles within the warp. The CTA has one barrier: before it, each
//!   thread writes its partial of the tree to shared memory (`T` floats,
//!   the kernel's only shared memory); after it, every thread evaluates the
//!   strides `T / 2` to 32 for its lane by itself from the `T / 32`
//!   partials `lane + 32 k` (`fused::halving_tree_depth_first`: the same
//!   additions in the same order, so the same bits). The halving in shared
//!   memory it replaces had a barrier per stride, each a wait for the CTA's
//!   slowest warp on a chain that left the memory system idle (DRAM at 25%
//!   of its peak, ncu, H200, session 18).
//!   The normalized row is quantized in the same leaf layout, as the
//!   token-group row kernel quantizes (`token_group.rs`): since `T` is a
//!   multiple of 32, a group of `GS` elements is `GS / 8` adjacent lanes of
//!   one slot, and each block of `GS / 8` lanes holds one chunk of each of 4
//!   groups, one per slot. Their 4 amaxes are reduce-scattered over the
//!   block (`group_amax_bits4_scatter`), each lane computes one group's scale
//!   and reciprocal, and each chunk takes its group's pair with two
//!   `shfl.idx` (`quantize4_scattered`). So a thread's scale work is once per
//!   32 elements, not once per 8 as when each chunk was quantized alone in
//!   its slot, and y stays in registers: the per-group layout the bf16
//!   kernel used before (4 chunks of one group per thread) needed the whole
//!   row copied through shared memory and converted a second time (ncu,
//!   H200, session 21: 807 instructions per warp and row, issue-bound).
//!   bf16 keeps y's f32 values from its leaf sum to `h` (converted once);
//!   f16 and f32 keep its bits (`Store8::Held`).
//!   A thread issues the x (and residual) loads of all its slots before it
//!   uses any (one slot at a time for f32, `Store8::LOAD_WAVE`), without
//!   element checks when K is a multiple of 8 and the rows are aligned;
//!   the weight is loaded after the reduction (an L1/L2 hit).
//!
//! Every scalar step is a `crate::fused` function shared with the CPU
//! reference; the `ExactOps` they need are `fma.rn.f32` and `sqrt.rn.f32`.

use super::chunk::{store_chunk, store_whole, Load8, ELEMS_PER_THREAD};
use super::{
    amax_from_bits, group_amax, group_amax_bits4_scatter, quantize4_scattered, Bf16, GroupQuantizer, F16, F32,
};
use crate::element::DType;
use crate::fused::{
    compact_band_log, compact_walk_group, compact_walk_rows, expert_of_valid_row, f32_to_bf16_bits, f32_to_f16_bits,
    halving_tree_depth_first, leaf_square_sum, packed_ue8m0_byte_index, rms_inverse, rms_normalize, rms_weigh,
    silu_mul, ue8m0_byte, ExactOps,
};
use crate::fused_abi::{FusedGroupParams, FusedMask, FusedOp, RmsNormParams, PACKED_UE8M0_LAYOUT};
use crate::instr::{
    block_dim, block_index_and_grid, dynamic_shared, global_thread_index, grid_threads, ld_shared_f32, nan_max_abs,
    opaque_u32, opaque_u64, shared_addr, shfl_idx_u32, shfl_xor, sqrt_rn, sync_threads, thread_index,
};
use crate::scale::{group_scale, Divider};
use crate::{Fp8Format, ScaleLayout, ScaleMode};

/// The GPU's correctly rounded `fma` and `sqrt`.
#[derive(Clone, Copy)]
struct GpuOps;

impl ExactOps for GpuOps {
    #[inline(always)]
    fn fma(a: f32, b: f32, c: f32) -> f32 {
        crate::instr::fma(a, b, c)
    }
    #[inline(always)]
    fn sqrt(x: f32) -> f32 {
        sqrt_rn(x)
    }
}

/// What a per-group kernel quantizes, and what a thread keeps of each chunk
/// between its loads and its encoding.
trait Producer {
    /// Whether a chunk also reads `up`, `cols` elements after its gate
    /// (`silu_mul`); the kernel loads it with the gate.
    const GATED: bool;

    /// Whether the compacted masked walk ([`FusedMask::Compact`]) numbers
    /// its groups in bands of rows for column-major scales
    /// (`fused::compact_walk_group`): the plain quantizer. `silu_mul` keeps
    /// row order: its masked form already ran within 10% of the dense call
    /// (H200, session 24), and banding measured slower on it (session 10,
    /// then over every row).
    const BANDED: bool;

    /// What the thread holds of a chunk from the amax to the encoding.
    type Held<T: Load8>: Copy;

    /// A chunk of zeros (a chunk the thread does not load).
    fn zero<T: Load8>() -> Self::Held<T>;

    /// The held form of a chunk from its loaded input (`up` is `T::ZERO`
    /// unless [`Producer::GATED`]).
    fn hold<T: Load8>(gate: &T::Raw, up: &T::Raw) -> Self::Held<T>;

    /// `max |h|` over the first `C` held chunks (NaN if any is NaN).
    fn amax<T: Load8, const C: usize>(held: &[Self::Held<T>; 4]) -> f32;

    /// The chunk's 8 values `h`, in f32.
    fn values<T: Load8>(held: &Self::Held<T>) -> [f32; 8];
}

/// `h = x`. A chunk stays in its raw form until it is encoded, and the amax
/// is taken on the bit patterns, as in the token-group kernel (`Load8`):
/// half the registers of f32 values and about half the instructions.
struct Identity;

impl Producer for Identity {
    const GATED: bool = false;
    const BANDED: bool = true;
    type Held<T: Load8> = T::Raw;

    #[inline(always)]
    fn zero<T: Load8>() -> T::Raw {
        T::ZERO
    }
    #[inline(always)]
    fn hold<T: Load8>(gate: &T::Raw, _up: &T::Raw) -> T::Raw {
        *gate
    }
    #[inline(always)]
    fn amax<T: Load8, const C: usize>(held: &[T::Raw; 4]) -> f32 {
        let mut acc = 0u32;
        unroll4!(c => {
            if c < C {
                acc = T::fold_abs_max(acc, &held[c]);
            }
        });
        T::abs_max_to_f32(acc)
    }
    #[inline(always)]
    fn values<T: Load8>(held: &T::Raw) -> [f32; 8] {
        T::unpack(held)
    }
}

/// `h = silu(gate) * up`, gate at column `col`, up at `cols + col`; `h` is
/// computed once, right after the loads, and held in f32.
struct SiluMul;

impl Producer for SiluMul {
    const GATED: bool = true;
    const BANDED: bool = false;
    type Held<T: Load8> = [f32; 8];

    #[inline(always)]
    fn zero<T: Load8>() -> [f32; 8] {
        [0.0; 8]
    }
    #[inline(always)]
    fn hold<T: Load8>(gate: &T::Raw, up: &T::Raw) -> [f32; 8] {
        let (gate, up) = (T::unpack(gate), T::unpack(up));
        let mut h = [0f32; 8];
        unroll8!(i => {
            h[i] = silu_mul::<GpuOps>(gate[i], up[i]);
        });
        h
    }
    #[inline(always)]
    fn amax<T: Load8, const C: usize>(held: &[[f32; 8]; 4]) -> f32 {
        let mut amax = 0f32;
        unroll4!(c => {
            if c < C {
                unroll8!(i => {
                    amax = nan_max_abs(amax, held[c][i]);
                });
            }
        });
        amax
    }
    #[inline(always)]
    fn values<T: Load8>(held: &[f32; 8]) -> [f32; 8] {
        *held
    }
}

/// The per-group kernel with `C` chunks per thread; see the module
/// documentation and `FusedGroupParams`.
///
/// The grid is persistent (the host caps it near what the GPU holds at
/// once): thread `t` takes lanes `t, t + grid, ...` of the `rows * groups *
/// lanes` there are. With a mask, half the rows of a MoE layout may be
/// empty; launched one CTA per piece of work, each empty CTA still cost a
/// launch and a dependent read of `masked_m` (the masked quantizer ran at
/// 0.65 of the dense call on the valid rows, H200, session 9). With up to
/// `MASK_COMPACT_MAX_EXPERTS` experts ([`FusedMask::Compact`]) the lanes
/// walk the valid rows only, numbered expert after expert from the running
/// sums each CTA first builds in shared memory, so every thread gets the
/// same share of the real work and no turn waits on `masked_m`. A warp's
/// lanes take the same turns (the loop test is on the warp's first
/// thread), so the group's shuffles always have every lane.
///
/// The lane, group, row and column indices are 32-bit (the host keeps the
/// lane count and `cols` below 2^31, `FusedGroupParams`): in 64 bits each
/// product, sum and comparison is two to four instructions and each value
/// two registers, which a thread of 4 `silu_mul` chunks (32 f32 values held
/// to the encode) did not have to spare at 80 registers. Only the row's
/// base addresses are 64-bit.
///
/// # Safety
/// The host has checked every buffer against `p` and launched 1-D CTAs of a
/// multiple of 32 threads, `group_size / (8 C)` lanes per group, at most
/// 2^31 threads in all.
#[inline(always)]
unsafe fn quantize_groups<T: Load8, P: Producer, const C: usize>(
    format: Fp8Format,
    x: *const T,
    q: *mut u8,
    scales: *mut f32,
    masked_m: *const u32,
    p: FusedGroupParams,
) {
    const { assert!(C == 2 || C == 4) };
    // Two loops, one per row mapping, each with only its own values live:
    // both mappings in one loop took registers the 4-chunk bf16 `silu_mul`
    // does not have (8 bytes spilled on sm_80), and a third copy for
    // `PerTurn` alone made the f16 quantizer spill 2 KB there.
    let io = GroupIo { format, x, q, scales, masked_m };
    let mut lanes = Lanes::new::<C>(&p);
    match FusedMask::from_u32(p.masked).unwrap_or(FusedMask::None) {
        FusedMask::None | FusedMask::PerTurn => walk::<T, P, C, false>(io, p, lanes),
        FusedMask::Compact => {
            lanes.experts = p.rows as u32 / p.expert_rows as u32;
            lanes.rows = valid_row_sums(masked_m, lanes.experts, p.expert_rows as u32);
            walk::<T, P, C, true>(io, p, lanes)
        }
    }
}

/// A launch's code format and buffers, as the per-group kernel's entry
/// points receive them.
#[derive(Clone, Copy)]
struct GroupIo<T> {
    format: Fp8Format,
    x: *const T,
    q: *mut u8,
    scales: *mut f32,
    masked_m: *const u32,
}

/// The grid-stride loop of [`quantize_groups`], over the valid rows only
/// when `COMPACT`.
///
/// # Safety
/// As [`quantize_groups`]; with [`FusedMask::Compact`], the running sums
/// of [`valid_row_sums`] are in place and `lanes.rows` is their total.
#[inline(always)]
unsafe fn walk<T: Load8, P: Producer, const C: usize, const COMPACT: bool>(
    io: GroupIo<T>,
    p: FusedGroupParams,
    lanes: Lanes,
) {
    // The rows rounded up to whole bands: at most 7 rows more than the
    // host's bound of `2^31 - 1` lanes counts, of at most `cols / 32 + 4`
    // lanes each, so `total` stays below 2^32.
    let banded_rows = compact_walk_rows(lanes.rows, band_log::<P, COMPACT>(p.layout));
    let total = lanes.groups * banded_rows * lanes.per_group;
    let stride = grid_threads() as u32;
    let mut t = global_thread_index() as u32;
    while t & !31 < total {
        quantize_group_at::<T, P, C, COMPACT>(io, p, lanes, t);
        t += stride;
    }
}

/// The band shift of the walk: `fused::compact_band_log` for the banded
/// producer's compacted walk, else 0 (row order).
#[inline(always)]
fn band_log<P: Producer, const COMPACT: bool>(layout: u32) -> u32 {
    if COMPACT && P::BANDED {
        compact_band_log(layout)
    } else {
        0
    }
}

/// Writes the running sums of the experts' valid rows, `sums[e] = sum over
/// i < e of min(masked_m[i], expert_rows)` for `e` in `0..=experts`, into
/// the CTA's dynamic shared memory, and returns the total. Every thread of
/// the CTA calls it (two barriers): each copies its share of the clamped
/// counts, then warp 0 scans them 32 at a time (Hillis-Steele over the
/// warp's shuffles, the carry from the last lane).
///
/// # Safety
/// `masked_m` holds `experts` counts and the CTA has `4 * (experts + 1)`
/// bytes of dynamic shared memory ([`FusedMask::shared_bytes`]).
#[inline(always)]
unsafe fn valid_row_sums(masked_m: *const u32, experts: u32, expert_rows: u32) -> u32 {
    let sums = dynamic_shared::<u32>();
    let (t, n) = (thread_index(), block_dim());
    let mut e = t;
    while e < experts {
        sums.add(e as usize + 1).write(masked_m.add(e as usize).read().min(expert_rows));
        e += n;
    }
    if t == 0 {
        sums.write(0);
    }
    sync_threads();
    if t < 32 {
        let mut carry = 0u32;
        let mut base = 0u32;
        while base < experts {
            // (Past the last expert in the last step: formed, never dereferenced.)
            let at = sums.wrapping_add((base + t) as usize + 1);
            let mut sum = if base + t < experts { at.read() } else { 0 };
            let mut d = 1;
            while d < 32 {
                let below = shfl_idx_u32(sum, t.wrapping_sub(d) & 31);
                if t >= d {
                    sum += below;
                }
                d *= 2;
            }
            if base + t < experts {
                at.write(carry + sum);
            }
            carry += shfl_idx_u32(sum, 31);
            base += 32;
        }
    }
    sync_threads();
    sums.add(experts as usize).read()
}

/// The expert of the `r`-th valid row (`r` below the total of
/// [`valid_row_sums`]) and the row's index in it
/// (`fused::expert_of_valid_row`, over the CTA's running sums).
///
/// # Safety
/// The CTA's dynamic shared memory holds the sums of [`valid_row_sums`].
#[inline(always)]
unsafe fn valid_row_at(experts: u32, r: u32) -> (u32, u32) {
    let sums = dynamic_shared::<u32>();
    expert_of_valid_row(experts, r, |e| sums.add(e as usize).read())
}

/// The 32-bit lane geometry of one launch of [`quantize_groups`].
#[derive(Clone, Copy)]
struct Lanes {
    /// Lanes per group, `group_size / (8 C)` (a power of two: 1 to 8).
    per_group: u32,
    /// Groups per row, `ceil(cols / group_size)`.
    groups: u32,
    /// The rows the lanes walk: every row, or with [`FusedMask::Compact`]
    /// the valid ones (numbered expert after expert; the banded walk covers
    /// them rounded up to whole bands, `fused::compact_walk_rows`).
    rows: u32,
    /// `rows / expert_rows` with [`FusedMask::Compact`] (else unused).
    experts: u32,
}

impl Lanes {
    #[inline(always)]
    fn new<const C: usize>(p: &FusedGroupParams) -> Self {
        // The group size is a power of two (checked by the host): shifts,
        // not the division routine a runtime `div_ceil` calls.
        let gs = p.group_size;
        let cols = p.cols as u32;
        let groups = (cols >> gs.trailing_zeros()) + (cols & (gs - 1) != 0) as u32;
        Self { per_group: gs / (C as u32 * ELEMS_PER_THREAD as u32), groups, rows: p.rows as u32, experts: 1 }
    }
}

/// One turn of [`quantize_groups`]: lane `t` of the whole problem.
///
/// # Safety
/// As [`quantize_groups`]; every lane of the warp calls it.
#[inline(always)]
unsafe fn quantize_group_at<T: Load8, P: Producer, const C: usize, const COMPACT: bool>(
    io: GroupIo<T>,
    p: FusedGroupParams,
    lanes: Lanes,
    t: u32,
) {
    let GroupIo { format, x, q, scales, masked_m } = io;
    let FusedGroupParams { rows, cols, row_stride, expert_rows, group_size, masked, eps, fp8_max, mode, layout } = p;
    let Lanes { per_group: tpg, groups, rows: live_rows, experts } = lanes;
    let (rows, cols32, expert_rows) = (rows as u32, cols as u32, expert_rows as u32);
    let (group, lane) = (t >> tpg.trailing_zeros(), t & (tpg - 1));
    // Group number `group` of the walk (`fused::compact_walk_group`): in
    // bands of 8 rows for the banded compacted walk, else row order. The
    // number is tested against the walk's whole bands first and divided
    // behind that test: with the division taken by every lane and only the
    // row tested after it, LLVM hoisted the `None` loop's unpacks of all 4
    // chunks ahead of the division path's choice, and bf16 e4m3fnuz
    // spilled (sm_90). A row of the last band past the last valid one is
    // an inactive lane (in the shuffles, no loads or stores).
    let band_log = band_log::<P, COMPACT>(layout);
    let mut active = group < compact_walk_rows(live_rows, band_log) * groups;
    let (r, g) = if active { compact_walk_group(group, groups, band_log) } else { (0, 0) };
    if COMPACT && P::BANDED {
        active = active && r < live_rows;
    }
    let (expert, m) = if COMPACT {
        valid_row_at(experts, r)
    } else if expert_rows == rows {
        (0, r)
    } else {
        (r / expert_rows, r % expert_rows)
    };
    if !COMPACT && active && masked == FusedMask::PerTurn.as_u32() {
        // A count above the expert's rows is clamped (the CPU path rejects it).
        let valid_rows = masked_m.add(expert as usize).read().min(expert_rows);
        active = m < valid_rows;
    }
    let row = if COMPACT { expert * expert_rows + m } else { r };
    let col = |c: u32| g * group_size + (lane + c * tpg) * ELEMS_PER_THREAD as u32;
    // The checked paths take `cols` through `opaque_u32`, as in the
    // token-group kernel: otherwise LLVM merges their whole-chunk case with
    // the whole-group path and computes every chunk's count up front.
    let valid = |cols: u32, c: u32| cols.saturating_sub(col(c)).min(ELEMS_PER_THREAD as u32) as u64;

    let src = x.wrapping_add((row as u64 * row_stride) as usize).wrapping_add(col(0) as usize);
    let dst = q.wrapping_add((row as u64 * cols) as usize).wrapping_add(col(0) as usize);
    // Chunk `c` is `c * tpg` whole chunks after chunk 0.
    let step = (tpg * ELEMS_PER_THREAD as u32) as usize;
    // A group wholly inside its row at aligned addresses (every group but a
    // K tail's, unless a stride or base pointer is odd) is loaded and
    // stored without a test per chunk.
    let whole = active
        && (g + 1) * group_size <= cols32
        && (src as usize) % 16 == 0
        && (!P::GATED || (src.wrapping_add(cols as usize) as usize) % 16 == 0)
        && (dst as usize) % 8 == 0;

    // 1. Every load of the thread (gate and up of every chunk) is issued
    // before any of them is used, back to back on the whole path: a thread
    // has `C` (twice that gated) 16-byte loads in flight, not one. Rows a
    // mask leaves out load nothing and skip the math: whole warps of them
    // cost almost nothing.
    let mut gate = [T::ZERO; 4];
    let mut up = [T::ZERO; 4];
    if whole {
        unroll4!(c => {
            if c < C {
                let at = src.wrapping_add(c * step);
                gate[c] = T::load_whole(at);
                if P::GATED {
                    up[c] = T::load_whole(at.wrapping_add(cols as usize));
                }
            }
        });
    } else if active {
        unroll4!(c => {
            if c < C {
                let (at, n) = (src.wrapping_add(c * step), valid(opaque_u32(cols32), c as u32));
                gate[c] = T::load(at, n);
                if P::GATED {
                    up[c] = T::load(at.wrapping_add(cols as usize), n);
                }
            }
        });
    }
    let mut held = [P::zero::<T>(); 4];
    if active {
        unroll4!(c => {
            if c < C {
                held[c] = P::hold::<T>(&gate[c], &up[c]);
            }
        });
    }

    // 2. The group's amax: local, then across the group's lanes (every
    // thread takes part in the shuffles).
    let amax = group_amax(P::amax::<T, C>(&held), tpg);
    if !active {
        return;
    }

    // 3. Scale, codes, stores (8-byte stores on the whole path), the
    // division path chosen once for the thread's chunks
    // (`GroupQuantizer::quantize_chunks`).
    let scale = group_scale(amax, eps, fp8_max, ScaleMode::from_u32(mode).unwrap_or(ScaleMode::Float));
    let quantizer = GroupQuantizer::new(format, scale, fp8_max);
    let store = |c: usize, codes: u64| {
        let at = dst.wrapping_add(c * step);
        if whole {
            store_whole(at, codes);
        } else {
            store_chunk(at, codes, valid(opaque_u32(cols32), c as u32));
        }
    };
    quantizer.quantize_chunks::<C>(|c| P::values::<T>(&held[c]), store);
    if lane == 0 {
        let last_row = masked == FusedMask::None.as_u32() && m + 1 == expert_rows;
        let (expert, m, g) = (expert as u64, m as u64, g as u64);
        write_scale(scales, layout, expert, m, g, expert_rows as u64, groups as u64, scale, last_row);
    }
}

/// Writes the scale of expert `expert`'s row `m`, group `g` (experts of
/// `rows` rows and `groups` groups) in `layout` (a `ScaleLayout` value or
/// `PACKED_UE8M0_LAYOUT`); with `last_row`, the f32 layout's padding rows of
/// the column are zeroed too. The packed layout's padding (and every byte
/// the kernel does not write) is zeroed by the host before the launch.
///
/// # Safety
/// `scales` holds every expert's scales in `layout`, and `expert`, `m`, `g`
/// are in range.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn write_scale(
    scales: *mut f32,
    layout: u32,
    expert: u64,
    m: u64,
    g: u64,
    rows: u64,
    groups: u64,
    scale: f32,
    last_row: bool,
) {
    if layout == PACKED_UE8M0_LAYOUT {
        let at = packed_ue8m0_byte_index(expert, m, g, rows, groups);
        (scales as *mut u8).add(at as usize).write(ue8m0_byte(scale));
        return;
    }
    let layout = ScaleLayout::from_u32(layout).unwrap_or(ScaleLayout::RowMajor);
    let base = scales.add((expert * layout.len(rows, groups)) as usize);
    base.add(layout.index(m, g, rows, groups) as usize).write(scale);
    let mut pad = rows;
    while last_row && pad < layout.padded_rows(rows) {
        base.add(layout.index(pad, g, rows, groups) as usize).write(0.0);
        pad += 1;
    }
}

/// An input type the RMS kernel also writes (the residual output).
trait Store8: Load8 {
    /// Slots whose x and residual loads the RMS kernel issues together
    /// (4, 2 or 1): f32's 4 slots of x and residual would be 64 registers,
    /// the kernel's whole budget at 1024 threads, and 2 spilled on sm_90;
    /// one f32 slot is already 4 16-byte loads.
    const LOAD_WAVE: usize;

    /// Slots whose weight chunks the RMS kernel loads together after the
    /// reduction (4 or 1), each wave's values `h` computed before the next
    /// wave is loaded: f16's 4 (each converted in software) spilled on
    /// sm_90 with the 32 values `h` live. (Since session 29 f16 converts
    /// with one `cvt.f32.f16`; whether it now fits bf16's waves is not yet
    /// measured.)
    const WEIGHT_WAVE: usize;

    /// Whether the RMS kernel computes every slot of a thread (its y, leaf
    /// and `h`; zeros past the row's end) whatever the row's `slots`, with
    /// no branch per slot: bf16, whose conversions are one instruction an
    /// element. The others keep a branch per slot, which bounds how far
    /// ptxas interleaves the slots' conversions: without it f16 spilled
    /// hundreds of bytes.
    const ALL_SLOTS: bool;

    /// What the RMS kernel keeps of a chunk of y from its leaf sum to its
    /// values `h`, across the reduction.
    type Held: Copy;

    /// A held chunk of zeros.
    const HELD_ZERO: Self::Held;

    /// The held form of a chunk of y whose bits are `raw` and values `v`:
    /// the values for bf16 (32 registers for 4 chunks, and no second
    /// conversion), the bits for f16 (its values spilled) and f32 (the
    /// same registers either way).
    fn hold(raw: &Self::Raw, v: &[f32; 8]) -> Self::Held;

    /// The values of a held chunk.
    fn held_values(held: &Self::Held) -> [f32; 8];

    /// The chunk of `v` rounded to this type (`fused::f32_to_*_bits`).
    fn round(v: &[f32; 8]) -> Self::Raw;

    /// Stores the first `valid` elements of a chunk at `dst`.
    ///
    /// # Safety
    /// The `valid` elements at `dst` are writable.
    unsafe fn store(dst: *mut Self, raw: &Self::Raw, valid: u64);
}

/// Packs 16-bit patterns as a 16-byte load lays them out.
#[inline(always)]
fn pack_halves(bits: impl Fn(usize) -> u16) -> [u32; 4] {
    let mut w = [0u32; 4];
    unroll8!(i => {
        w[i / 2] |= (bits(i) as u32) << (16 * (i % 2));
    });
    w
}

/// Stores 16-bit patterns packed by [`pack_halves`].
#[inline(always)]
unsafe fn store_halves(dst: *mut u16, w: &[u32; 4], valid: u64) {
    if valid == ELEMS_PER_THREAD && (dst as usize) % 16 == 0 {
        crate::instr::store::st_global16(dst, *w);
        return;
    }
    unroll8!(i => {
        if (i as u64) < valid {
            dst.add(i).write((w[i / 2] >> (16 * (i % 2))) as u16);
        }
    });
}

impl Store8 for Bf16 {
    const LOAD_WAVE: usize = 4;
    const WEIGHT_WAVE: usize = 4;
    const ALL_SLOTS: bool = true;
    type Held = [f32; 8];
    const HELD_ZERO: [f32; 8] = [0.0; 8];
    #[inline(always)]
    fn hold(_raw: &[u32; 4], v: &[f32; 8]) -> [f32; 8] {
        *v
    }
    #[inline(always)]
    fn held_values(held: &[f32; 8]) -> [f32; 8] {
        *held
    }
    #[inline(always)]
    fn round(v: &[f32; 8]) -> [u32; 4] {
        pack_halves(|i| f32_to_bf16_bits(v[i]))
    }
    #[inline(always)]
    unsafe fn store(dst: *mut Self, raw: &[u32; 4], valid: u64) {
        store_halves(dst as *mut u16, raw, valid)
    }
}

impl Store8 for F16 {
    const LOAD_WAVE: usize = 4;
    const WEIGHT_WAVE: usize = 1;
    const ALL_SLOTS: bool = false;
    type Held = [u32; 4];
    const HELD_ZERO: [u32; 4] = [0; 4];
    #[inline(always)]
    fn hold(raw: &[u32; 4], _v: &[f32; 8]) -> [u32; 4] {
        *raw
    }
    #[inline(always)]
    fn held_values(held: &[u32; 4]) -> [f32; 8] {
        Self::unpack(held)
    }
    #[inline(always)]
    fn round(v: &[f32; 8]) -> [u32; 4] {
        pack_halves(|i| f32_to_f16_bits(v[i]))
    }
    #[inline(always)]
    unsafe fn store(dst: *mut Self, raw: &[u32; 4], valid: u64) {
        store_halves(dst as *mut u16, raw, valid)
    }
}

impl Store8 for f32 {
    const LOAD_WAVE: usize = 1;
    const WEIGHT_WAVE: usize = 1;
    const ALL_SLOTS: bool = false;
    type Held = [u32; 8];
    const HELD_ZERO: [u32; 8] = [0; 8];
    #[inline(always)]
    fn hold(raw: &[u32; 8], _v: &[f32; 8]) -> [u32; 8] {
        *raw
    }
    #[inline(always)]
    fn held_values(held: &[u32; 8]) -> [f32; 8] {
        Self::unpack(held)
    }
    #[inline(always)]
    fn round(v: &[f32; 8]) -> [u32; 8] {
        v.map(crate::fused::f32_canonical_bits)
    }
    #[inline(always)]
    unsafe fn store(dst: *mut Self, raw: &[u32; 8], valid: u64) {
        if valid == ELEMS_PER_THREAD && (dst as usize) % 16 == 0 {
            crate::instr::store::st_global16(dst, [raw[0], raw[1], raw[2], raw[3]]);
            crate::instr::store::st_global16(dst.add(4), [raw[4], raw[5], raw[6], raw[7]]);
            return;
        }
        unroll8!(i => {
            if (i as u64) < valid {
                dst.add(i).write(f32::from_bits(raw[i]));
            }
        });
    }
}

/// The RMS kernel; see the module documentation and `RmsNormParams`.
///
/// # Safety
/// The host has checked every buffer against `p`, launched one CTA per row
/// with `fused::rms_geometry(cols)`'s threads and slots, and given the CTA
/// `fused::rms_shared_bytes` of dynamic shared memory (the tree's
/// partials).
#[inline(always)]
unsafe fn rms_norm_groups<T: Store8>(
    format: Fp8Format,
    x: *const T,
    residual: *mut T,
    weight: *const T,
    q: *mut u8,
    scales: *mut f32,
    p: RmsNormParams,
) {
    let RmsNormParams {
        rows,
        cols,
        row_stride,
        norm_eps,
        eps,
        fp8_max,
        mode,
        layout,
        group_size,
        residual: add,
        slots,
    } = p;
    // 32-bit row, thread and column indices (`cols <= fused::RMS_MAX_COLS`,
    // checked by the host through `rms_geometry`; the row is the block
    // index): only the rows' base addresses are 64-bit. In 64 bits each
    // product and comparison was two to four instructions (as in
    // `quantize_groups`).
    let row = block_index_and_grid().0;
    let (tid, threads) = (thread_index(), block_dim());
    let cols32 = cols as u32;
    let col = |s: u32| (s * threads + tid) * ELEMS_PER_THREAD as u32;
    // The checked path takes `cols` through `opaque_u32` (see
    // `quantize_groups`).
    let valid = |cols: u32, s: u32| cols.saturating_sub(col(s)).min(ELEMS_PER_THREAD as u32) as u64;
    // The slots the thread computes: those of the row's geometry, or all 4
    // (`Store8::ALL_SLOTS`; a slot past `slots` is wholly past the row's
    // end, so it loads and stores nothing and its values are zeros).
    let live = |s: usize| T::ALL_SLOTS || (s as u32) < slots;

    let src = x.wrapping_add((row as u64 * row_stride) as usize);
    let res = residual.wrapping_add((row as u64 * cols) as usize);
    // Uniform over the CTA: with K a multiple of 8 and aligned rows (every
    // row of a dense bf16/f16/f32 tensor with K % 8 == 0), each chunk is
    // whole or wholly past the row's end (padding leaves), and is loaded
    // and stored without the element-wise checks. (With K a multiple of 8,
    // the row's codes are as aligned as `q`.)
    let whole = cols32 % ELEMS_PER_THREAD as u32 == 0
        && (src as usize) % 16 == 0
        && (add == 0 || (res as usize) % 16 == 0)
        && (q as usize) % 8 == 0;
    // 1. The x (and residual) loads of `T::LOAD_WAVE` slots at a time (all
    // 4 for the 16-bit types), back to back on the whole path, then y = x
    // (+ r, rounded to T and written back) and each leaf's sum of squares
    // (zero leaves past the row's end). y is held to step 3
    // (`Store8::Held`).
    let mut ys = [T::HELD_ZERO; 4];
    let mut leaf = [0f32; 4];
    unroll4!(w => {
        if w * T::LOAD_WAVE < 4 {
            let in_wave = |s: usize| s / T::LOAD_WAVE == w && live(s);
            let mut xs = [T::ZERO; 4];
            let mut rs = [T::ZERO; 4];
            if whole {
                unroll4!(s => {
                    if in_wave(s) && col(s as u32) < cols32 {
                        let c = col(s as u32) as usize;
                        xs[s] = T::load_whole(src.wrapping_add(c));
                        if add != 0 {
                            rs[s] = T::load_whole(res.wrapping_add(c));
                        }
                    }
                });
            } else {
                unroll4!(s => {
                    if in_wave(s) {
                        let (c, n) = (col(s as u32) as usize, valid(opaque_u32(cols32), s as u32));
                        xs[s] = T::load(src.wrapping_add(c), n);
                        if add != 0 {
                            rs[s] = T::load(res.wrapping_add(c), n);
                        }
                    }
                });
            }
            unroll4!(s => {
                if in_wave(s) {
                    let y = if add != 0 {
                        let (xv, rv) = (T::unpack(&xs[s]), T::unpack(&rs[s]));
                        let mut sum = [0f32; 8];
                        unroll8!(i => {
                            sum[i] = xv[i] + rv[i];
                        });
                        let y = T::round(&sum);
                        T::store(res.wrapping_add(col(s as u32) as usize), &y, valid(cols32, s as u32));
                        y
                    } else {
                        xs[s]
                    };
                    let v = T::unpack(&y);
                    leaf[s] = leaf_square_sum::<GpuOps>(&v);
                    ys[s] = T::hold(&y, &v);
                }
            });
        }
    });

    // 2. The halving tree: slots (stride `slots / 2 * threads` first), then
    // threads at strides `threads / 2` .. 32, then lanes. Each thread's
    // partial is written to shared memory before one barrier, the CTA's
    // only one: each thread then computes the strides `threads / 2` .. 32
    // of the tree for its lane itself ([`tree_above_warp`]), the same
    // additions in the same order as the halving in shared memory they
    // replace (a barrier per stride).
    if slots == 4 {
        leaf[0] = leaf[0] + leaf[2];
        leaf[1] = leaf[1] + leaf[3];
    }
    let mut v = if slots >= 2 { leaf[0] + leaf[1] } else { leaf[0] };
    if threads > 32 {
        let partials = dynamic_shared::<f32>();
        partials.add(tid as usize).write(v);
        sync_threads();
        v = tree_above_warp(shared_addr(partials), tid % 32, threads);
    }
    let mut offset = 16;
    while offset > 0 {
        v = v + shfl_xor(v, offset);
        offset /= 2;
    }
    let inv = rms_inverse::<GpuOps>(v, cols, norm_eps);

    // 3. h = (y * inv) * w, in the leaf layout, and each chunk's amax: as f32
    // (`nan_max_abs`: +0 or more, or the canonical NaN), then its bits (for
    // step 4). The weight is loaded here, after the reduction: the same
    // `cols` elements for every row, an L1 or L2 hit. Loaded with x's, its
    // 4 slots held across the reduction made the bf16 kernel spill at the
    // 64 registers of 1024 threads. With an aligned weight on the whole
    // path, each of its chunks is whole or wholly past the row's end, as
    // x's. Each product is its own `crate::fused` step (`rms_apply` is
    // `rms_weigh(rms_normalize(y, inv), w)`): a chunk's `y * inv` are taken
    // before its weight is converted, which kept f16 from spilling.
    let whole_w = whole && (weight as usize) % 16 == 0;
    let mut h = [[0f32; 8]; 4];
    let mut bits = [0u32; 4];
    unroll4!(w => {
        if w * T::WEIGHT_WAVE < 4 {
            let in_wave = |s: usize| s / T::WEIGHT_WAVE == w && live(s);
            let mut ws = [T::ZERO; 4];
            unroll4!(s => {
                if in_wave(s) {
                    let (c, at) = (col(s as u32), weight.wrapping_add(col(s as u32) as usize));
                    ws[s] = if whole_w {
                        if c < cols32 {
                            T::load_whole(at)
                        } else {
                            T::ZERO
                        }
                    } else {
                        T::load(at, valid(opaque_u32(cols32), s as u32))
                    };
                }
            });
            unroll4!(s => {
                if in_wave(s) {
                    let (y, mut normalized) = (T::held_values(&ys[s]), [0f32; 8]);
                    unroll8!(i => {
                        normalized[i] = rms_normalize(y[i], inv);
                    });
                    let wv = T::unpack(&ws[s]);
                    let mut amax = 0f32;
                    unroll8!(i => {
                        h[s][i] = rms_weigh(normalized[i], wv[i]);
                        amax = nan_max_abs(amax, h[s][i]);
                    });
                    bits[s] = amax.to_bits();
                }
            });
        }
    });

    // 4. The groups' amaxes, scales and reciprocals, as in the token-group
    // row kernel (`token_group.rs`): a group's `lanes = GS / 8` chunks are
    // adjacent lanes of one slot (`threads` is a multiple of 32, GS a power
    // of two from 32 to 128), so each block of `lanes` lanes holds one chunk
    // of each of 4 groups, one per slot. `group_amax_bits4_scatter` leaves
    // lane `lane` the whole amax of its block's group in slot `(lane %
    // lanes) / (lanes / 4)` (integer maxima of the bits, then one `max.NaN`
    // against +0: bit for bit the butterfly of `nan_max_abs`), and the lane
    // computes that group's scale and reciprocal: once per thread, where
    // quantizing each chunk in its own slot took a butterfly, a scale and a
    // division per chunk. Every lane takes part, those of slots past
    // `slots` too (their groups, all zeros, are computed and never
    // stored). (Shifts and masks: the group size is a power of two.)
    let log_gs = group_size.trailing_zeros();
    let (lanes, log_quarter) = (group_size / ELEMS_PER_THREAD as u32, log_gs - 5);
    let groups = (cols32 >> log_gs) + (cols32 & (group_size - 1) != 0) as u32;
    let lane = tid % 32;
    let amax = amax_from_bits(f32::from_bits(group_amax_bits4_scatter(bits, lane, lanes)));
    let scale = group_scale(amax, eps, fp8_max, ScaleMode::from_u32(mode).unwrap_or(ScaleMode::Float));
    let recip = Divider::recip_of(scale);
    // The scale, stored before the codes (as the row kernel does) by the
    // first of the `lanes / 4` lanes holding it. The group starts at chunk
    // `first` of the row; one past the row's end (`g >= groups`, every
    // group of a slot past `slots` among them) stores nothing.
    let first = ((lane & (lanes - 1)) >> log_quarter) * threads + (tid & !(lanes - 1));
    let g = first >> (log_gs - 3);
    if lane & ((1 << log_quarter) - 1) == 0 && g < groups {
        let (row, g) = (row as u64, g as u64);
        write_scale(scales, layout, 0, row, g, rows, groups as u64, scale, row + 1 == rows);
    }

    // 5. The codes of each chunk inside the row (8-byte stores on the whole
    // path), with its group's quantizer rebuilt from the scale and
    // reciprocal of the lane that computed them (`quantize4_scattered`).
    // The row's codes are addressed here, not at the kernel's start: that
    // 64-bit address, live across the kernel, spilled (f32, sm_80).
    let dst = q.wrapping_add((row as u64 * opaque_u64(cols)) as usize);
    let store = |s: usize, codes: u64| {
        let c = col(s as u32);
        let at = dst.wrapping_add(c as usize);
        if whole {
            if c < cols32 {
                store_whole(at, codes);
            }
        } else {
            store_chunk(at, codes, valid(opaque_u32(cols32), s as u32));
        }
    };
    quantize4_scattered(format, fp8_max, scale, recip, lane, lanes, |s| h[s], store);
}

/// The strides `threads / 2` .. 32 of the RMS tree for lane `lane`: the
/// value the halving `a[t] = a[t] + a[t + stride]` (`t < stride`, stride
/// from `threads / 2` down to 32) over the `threads` partials at shared
/// address `partials` leaves in `a[lane]`, computed by one thread from the
/// partials `lane + 32 k` alone, with the same additions in the same order
/// (for 256 threads, `((v0 + v4) + (v2 + v6)) + ((v1 + v5) + (v3 + v7))`
/// with `vk` the partial `lane + 32 k`).
///
/// Every warp reads the same `threads` words (a broadcast; a warp's 32
/// lanes read 32 consecutive words, no bank conflict).
///
/// # Safety
/// `threads` (a power of two, 64 to 1024) partials at `partials` are
/// written, and visible to the thread (after the barrier).
#[inline(always)]
unsafe fn tree_above_warp(partials: u32, lane: u32, threads: u32) -> f32 {
    let base = partials + 4 * lane;
    // A straight-line tree per CTA size (5 of them): the `n` loads of each
    // are independent, so they are issued together.
    match threads {
        64 => halving_tree_depth_first::<2>(|k| ld_shared_f32(base + 128 * k)),
        128 => halving_tree_depth_first::<4>(|k| ld_shared_f32(base + 128 * k)),
        256 => halving_tree_depth_first::<8>(|k| ld_shared_f32(base + 128 * k)),
        512 => halving_tree_depth_first::<16>(|k| ld_shared_f32(base + 128 * k)),
        _ => halving_tree_depth_first::<32>(|k| ld_shared_f32(base + 128 * k)),
    }
}

macro_rules! entry {
    ($($name:ident: $op:ident, $t:ident, $format:ident;)*) => {$(
        entry!(@one $name, $op, $t, $format);
    )*};
    (@one $name:ident, Quant, $t:ident, $format:ident) => {
        /// Per-group quantization (masked MoE layout); see the module documentation.
        ///
        /// # Safety
        /// Launched by `quant-host` with checked parameters.
        #[no_mangle]
        pub unsafe extern "ptx-kernel" fn $name(
            x: *const $t,
            q: *mut u8,
            scales: *mut f32,
            masked_m: *const u32,
            p: FusedGroupParams,
        ) {
            crate::instr::grid_launch_dependents();
            quantize_groups::<$t, Identity, { FusedOp::Quant.group_chunks(DType::$t) as usize }>(Fp8Format::$format, x, q, scales, masked_m, p)
        }
    };
    (@one $name:ident, SiluMul, $t:ident, $format:ident) => {
        /// `silu(gate) * up`, quantized per group; see the module documentation.
        ///
        /// # Safety
        /// Launched by `quant-host` with checked parameters.
        #[no_mangle]
        pub unsafe extern "ptx-kernel" fn $name(
            x: *const $t,
            q: *mut u8,
            scales: *mut f32,
            masked_m: *const u32,
            p: FusedGroupParams,
        ) {
            crate::instr::grid_launch_dependents();
            quantize_groups::<$t, SiluMul, { FusedOp::SiluMul.group_chunks(DType::$t) as usize }>(Fp8Format::$format, x, q, scales, masked_m, p)
        }
    };
    (@one $name:ident, RmsNorm, $t:ident, $format:ident) => {
        /// RMSNorm (optionally after a residual add), quantized per group;
        /// see the module documentation.
        ///
        /// # Safety
        /// Launched by `quant-host` with checked parameters.
        #[no_mangle]
        pub unsafe extern "ptx-kernel" fn $name(
            x: *const $t,
            residual: *mut $t,
            weight: *const $t,
            q: *mut u8,
            scales: *mut f32,
            p: RmsNormParams,
        ) {
            crate::instr::grid_launch_dependents();
            rms_norm_groups::<$t>(Fp8Format::$format, x, residual, weight, q, scales, p)
        }
    };
}

// The entry points of `crate::fused_abi`'s list, which also names them for the host.
fused_kernels!(entry);
