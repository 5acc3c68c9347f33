//! The scalar math of the fused quantizers (`silu_mul_per_token_group_quant_fp8`,
//! `rms_norm_per_token_group_quant_fp8`): `exp` (of non-positive values), the
//! reciprocal of `1 + t` and `silu`, the RMS reciprocal
//! and the rounding of f32 to the 16-bit input types.
//!
//! One implementation, compiled into the kernels and called by the CPU
//! reference in `quant-host`, so the GPU output is bit-identical to the CPU's
//! (`docs/spec.md`, "Fused quantizers"). Every function is built only from
//! operations that are correctly rounded on both machines: IEEE add, mul,
//! div and sqrt, and a fused multiply-add. No approximate GPU instruction
//! (`ex2.approx`, `rcp.approx`, `rsqrt.approx`) appears, and no libm call
//! whose last bit differs between C libraries.
//!
//! `fma` and `sqrt` come from an [`ExactOps`] type because this crate is
//! `no_std` on the host's stable toolchain, where neither exists in `core`:
//! the kernels pass the PTX instructions (`fma.rn.f32`, `sqrt.rn.f32`), the
//! CPU reference `f32::mul_add` and `f32::sqrt`, all four correctly rounded.
//! Every multiply-add that matters is an explicit `fma`; the rest are plain
//! products and sums, which neither rustc nor the NVPTX backend contracts
//! (no `contract` flags, no fast-math).

/// The two correctly rounded operations `core` lacks on the host.
pub trait ExactOps: Copy {
    /// `a * b + c` with one rounding.
    fn fma(a: f32, b: f32, c: f32) -> f32;
    /// The correctly rounded square root (NaN for negative input).
    fn sqrt(x: f32) -> f32;
}

/// `log2(e)` rounded to f32.
const LOG2E: f32 = core::f32::consts::LOG2_E;
/// `ln(2)` rounded to f32 (`0x3F317218`, about 1.9e-9 above `ln 2`): the
/// reduction `s = x - k ln 2` is one `fma`, off by `k` times that (at most
/// 2.9e-7 in `s` for `k = -150`, 2.5e-8 for `|x| < 9`), the price of not
/// splitting the constant in two (one instruction an element).
const LN2: f32 = f32::from_bits(0x3F31_7218);
/// `1.5 * 2^23`: adding it rounds an f32 of magnitude below 2^22 to an
/// integer (round to nearest even).
const ROUND_MAGIC: f32 = 12_582_912.0;
/// The bits of `2^64`: `bits(2^(k + 64)) = (k << 23) + 0x5F80_0000`.
const POW2_64_BITS: u32 = 0x5F80_0000;
/// A coefficient given by its f32 bits, times `2^-64` (exact: every one is
/// a normal f32 far above `2^-62`).
const fn times_2_pow_m64(bits: u32) -> f32 {
    f32::from_bits(bits - (64 << 23))
}
/// Coefficients of `e^s ~ 1 + c1 s + ... + c5 s^5` on `|s| <= ln(2) / 2`,
/// highest degree first, each times `2^-64` (see [`exp_nonpositive`]): a
/// minimax fit for relative error (at most 9.2e-8 before rounding), about
/// 8.2903132e-3, 4.1897938e-2, 0.16667636, 0.49999151, 0.99999970, 1.
const EXP_POLY: [f32; 6] = [
    times_2_pow_m64(0x3C07_D418),
    times_2_pow_m64(0x3D2B_9D2C),
    times_2_pow_m64(0x3E2A_AD35),
    times_2_pow_m64(0x3EFF_FEE3),
    times_2_pow_m64(0x3F7F_FFFB),
    times_2_pow_m64(0x3F80_0000),
];

/// `e^x` in f32 for `x <= 0` (the project's own definition: the CPU and the
/// GPU compute exactly these operations), within 5 ulps of the true value
/// for normal results and 2 for `x > -9` (measured over every f32; a test
/// in `quant-host` sweeps it), the subnormal ones rounded once.
///
/// `x` is raised to -104 by an IEEE `max` (which also takes NaN to -104:
/// the result is then +0, and callers carry a NaN through their own
/// operands); `e^-104` rounds to +0, the value of `e^x` below. `x = k ln 2 +
/// s` with `k = round(x log2 e)` in `[-150, 0]`: `t = fma(x, log2 e, 1.5 *
/// 2^23)` rounds to nearest even and holds `k` in its low bits, `s = fma(k,
/// -ln 2, x)`; `e^s` is a degree-5 polynomial by Horner `fma`s whose
/// coefficients carry a factor `2^-64`, and the result is that times
/// `2^(k + 64)`, a normal power of two made from `t`'s bits: one product,
/// exact scaling then one rounding, so subnormal results round once. No
/// branch, one `max`, no saturating conversion: 11 GPU instructions.
/// Positive `x` are outside its domain.
#[inline(always)]
pub fn exp_nonpositive<O: ExactOps>(x: f32) -> f32 {
    let x = x.max(-104.0);
    let t = O::fma(x, LOG2E, ROUND_MAGIC);
    let kf = t - ROUND_MAGIC;
    let s = O::fma(kf, -LN2, x);
    let mut u = EXP_POLY[0];
    let mut i = 1;
    while i < EXP_POLY.len() {
        u = O::fma(u, s, EXP_POLY[i]);
        i += 1;
    }
    // t is in [2^23, 2^24): its bits are those of 1.5 * 2^23 plus k, and
    // `bits(1.5 * 2^23) << 23` wraps to 0, so `bits(t) << 23` is `k << 23`.
    u * f32::from_bits((t.to_bits() << 23).wrapping_add(POW2_64_BITS))
}

/// `32/99`, `-80/99` and `98/99`: the quadratic seed `98/99 - 80/99 t + 32/99
/// t^2` of `1 / (1 + t)` on `t` in `[0, 1]`, the minimax quadratic of `1 / d`
/// on `[1, 2]` (relative error at most 1/99) written in `t = d - 1`.
const RECIP_SEED: [f32; 3] = [32.0 / 99.0, -80.0 / 99.0, 98.0 / 99.0];

/// `1 / d` for `d = 1 + t`, `t` in `[0, 1]` (NaN for NaN): the quadratic
/// seed from `t` (so it does not wait for the sum), then two Newton steps
/// `r = fma(r, fma(-d, r, 1), r)` on the rounded `d`, which take its 6.6
/// correct bits past f32's 24 (within 1 ulp). No division: the GPU's IEEE
/// division is a call-guarded sequence of about 11 instructions.
#[inline(always)]
pub fn recip_one_plus<O: ExactOps>(t: f32) -> f32 {
    let d = 1.0 + t;
    let mut r = O::fma(O::fma(RECIP_SEED[0], t, RECIP_SEED[1]), t, RECIP_SEED[2]);
    let mut i = 0;
    while i < 2 {
        r = O::fma(r, O::fma(-d, r, 1.0), r);
        i += 1;
    }
    r
}

/// `silu(g) = g / (1 + e^-g)`, computed with `t = e^-|g|` in `[0, 1]` (so
/// `1 + t` is in `[1, 2]` and nothing overflows) and `r = 1 / (1 + t)`: `g *
/// r` for `g >= 0`, `(g * t) * r` otherwise. Within 7 ulps of the true
/// value for `g > -87` (a relative error below 1e-6; measured over every
/// f32, swept by a test in `quant-host`); below, `e^g` is an f32 subnormal and the result (under 1e-36 in magnitude, a code of 0 for
/// any valid `eps`) keeps only its bits. `-0` for gates below about -104 and
/// for -0, `g` itself for large `g`, NaN for NaN (`g * t`) and for -inf
/// (`-inf * 0`, as `g / (1 + e^-g)` and torch give).
#[inline(always)]
pub fn silu<O: ExactOps>(g: f32) -> f32 {
    let t = exp_nonpositive::<O>(-crate::scale::abs(g));
    let r = recip_one_plus::<O>(t);
    let num = if g >= 0.0 { g } else { g * t };
    num * r
}

/// The element of `silu_mul_per_token_group_quant_fp8`: `silu(gate) * up`,
/// in f32, never rounded to the input type.
#[inline(always)]
pub fn silu_mul<O: ExactOps>(gate: f32, up: f32) -> f32 {
    silu::<O>(gate) * up
}

/// Elements per leaf of the RMS sum: one 8-element chunk.
pub const RMS_LEAF: u64 = 8;

/// Sum of squares of one leaf (8 elements, zeros past the row's end), in
/// element order: `acc = fma(v, v, acc)` from `acc = +0`.
#[inline(always)]
pub fn leaf_square_sum<O: ExactOps>(v: &[f32; 8]) -> f32 {
    let mut acc = 0.0f32;
    let mut i = 0;
    while i < 8 {
        acc = O::fma(v[i], v[i], acc);
        i += 1;
    }
    acc
}

/// The RMS factor `1 / sqrt(sum / K + eps)` of a row whose sum of squares
/// is `sum` over `cols` (K) elements: IEEE division by `K` (converted to f32,
/// exact for `K <= 2^24`), IEEE add, correctly rounded sqrt, IEEE division.
#[inline(always)]
pub fn rms_inverse<O: ExactOps>(sum: f32, cols: u64, eps: f32) -> f32 {
    let mean = sum / cols as f32;
    1.0 / O::sqrt(mean + eps)
}

/// The normalized element `h = (y * inv) * w`, two IEEE products in this
/// order: [`rms_weigh`] of [`rms_normalize`].
#[inline(always)]
pub fn rms_apply(y: f32, inv: f32, w: f32) -> f32 {
    rms_weigh(rms_normalize(y, inv), w)
}

/// The first product of [`rms_apply`], `y * inv` (the GPU kernel takes a
/// chunk's 8 before it converts the weight's, to hold fewer registers).
#[inline(always)]
pub fn rms_normalize(y: f32, inv: f32) -> f32 {
    y * inv
}

/// The second product of [`rms_apply`], `(y * inv) * w`.
#[inline(always)]
pub fn rms_weigh(normalized: f32, w: f32) -> f32 {
    normalized * w
}

/// Dynamic shared memory of the RMS kernel for `threads` threads: the
/// tree's f32 partial per thread (none for one warp, whose tree is all
/// shuffles). The row itself stays in registers, in the layout it is
/// quantized in: at most 4 KB, under the 48 KB a launch gets by default.
pub const fn rms_shared_bytes(threads: u32) -> u32 {
    if threads > 32 {
        4 * threads
    } else {
        0
    }
}

/// Most elements of a row `rms_norm_per_token_group_quant_fp8` takes: the GPU
/// kernel holds a row in one CTA, at most 1024 threads of 4 leaves.
pub const RMS_MAX_COLS: u64 = 32_768;

/// Launch geometry of the RMS kernel for rows of `cols` elements:
/// `(threads per CTA, leaves per thread)`, `None` above [`RMS_MAX_COLS`].
///
/// The row's `ceil(K / 8)` leaves are padded with zero leaves to
/// `threads * leaves` (a power of two; padding a halving tree with zeros
/// leaves its sum unchanged, so the geometry is not part of the contract):
/// leaf `j` lives in thread `j % threads`, slot `j / threads`.
pub const fn rms_geometry(cols: u64) -> Option<(u32, u32)> {
    if cols > RMS_MAX_COLS {
        return None;
    }
    let leaves = cols.div_ceil(RMS_LEAF);
    let padded = if leaves <= 1 { 1 } else { leaves.next_power_of_two() };
    let threads = if padded / 4 < 32 { 32 } else { padded / 4 };
    let slots = if padded / threads == 0 { 1 } else { padded / threads };
    Some((threads as u32, slots as u32))
}

/// The halving tree of the RMS sum (`a[k] = a[k] + a[k + n]` for `k < n`,
/// `n` from `N / 2` down to 1; the result is `a[0]`) over the `N` values
/// `read(0) .. read(N - 1)` (`N` a power of two, 2 to 32), evaluated depth
/// first: the same additions, with the same operands in the same order, as
/// the halving, so the same bits.
///
/// The leaves are read in the tree's left-to-right order (leaf `i` of that
/// order is value `rev(i)`, `i`'s `log2 N` bits reversed) and each
/// subtree's sum waits on a stack slot per level until its right sibling is
/// complete (`stack[b]`: a finished left subtree of `2^b` leaves), so at
/// most 6 sums are live, not `N`: the GPU kernel evaluates the tree's
/// strides `threads / 2` .. 32 this way, each thread for its lane, after
/// the CTA's one barrier. Fully unrolled (constant `N`), the stack is
/// registers.
#[inline(always)]
pub fn halving_tree_depth_first<const N: usize>(mut read: impl FnMut(u32) -> f32) -> f32 {
    const { assert!(N.is_power_of_two() && N >= 2 && N <= 32) };
    let levels = N.trailing_zeros();
    let mut stack = [0f32; 6];
    // Unrolled by the macro, not left to LLVM: it unrolled the 16- and
    // 32-leaf trees only partly, and the stack became select chains.
    each_index!(i < N => {
        let mut acc = read((i as u32).reverse_bits() >> (32 - levels));
        // Each trailing one of `i` closes a subtree: its finished left
        // sibling (stack slot `d`) plus it, left operand first.
        let closes = (i as u32).trailing_ones() as usize;
        each_index!(d < closes, levels => {
            let right = acc;
            acc = stack[d] + right;
        });
        stack[closes] = acc;
    });
    stack[levels as usize]
}

/// `$body` for `$i` = 0, 1, ... while `$i < $n`, `$i` a constant in each
/// copy (at most 32 copies; with `, levels`, at most 5).
macro_rules! each_index {
    ($i:ident < $n:expr => $body:block) => {
        each_index!(@each $i, $n, $body, 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31)
    };
    ($i:ident < $n:expr, levels => $body:block) => {
        each_index!(@each $i, $n, $body, 0 1 2 3 4)
    };
    (@each $i:ident, $n:expr, $body:block, $($k:literal)+) => {
        $(
            {
                let $i: usize = $k;
                if $i < $n $body
            }
        )+
    };
}
use each_index;

/// The UE8M0 byte of a power-of-two scale: its biased f32 exponent (`0xFF`
/// for an infinite or NaN scale), as DeepGEMM's packed scales hold it.
#[inline(always)]
pub fn ue8m0_byte(scale: f32) -> u8 {
    ((scale.to_bits() >> 23) & 0xFF) as u8
}

/// Where the byte of row `m`, group `g` of expert `expert` lies in the
/// packed UE8M0 layout of experts of `rows` rows and `groups` groups: the
/// `u32` word `(g / 4, m)` of an MN-major `[ceil(G / 4), align(rows, 4)]`
/// grid per expert, byte `g % 4` of it (little-endian), as DeepGEMM's
/// `get_mn_major_tma_aligned_packed_ue8m0_tensor` lays them out.
#[inline(always)]
pub const fn packed_ue8m0_byte_index(expert: u64, m: u64, g: u64, rows: u64, groups: u64) -> u64 {
    let aligned = rows.div_ceil(4) * 4;
    let words = groups.div_ceil(4);
    ((expert * words + g / 4) * aligned + m) * 4 + g % 4
}

/// f32 bits of `x` with every NaN as `0x7FC0_0000`: the residual output of
/// an f32 input. An f32 sum of NaNs keeps an operand's payload on the CPU
/// and is `0x7FFF_FFFF` on the GPU, so the contract writes one pattern.
#[inline(always)]
pub fn f32_canonical_bits(x: f32) -> u32 {
    let b = x.to_bits();
    if b & 0x7FFF_FFFF > 0x7F80_0000 {
        0x7FC0_0000
    } else {
        b
    }
}

/// bf16 bits of `x`, round to nearest even; overflow goes to ±inf and every
/// NaN to `0x7FC0` (one NaN pattern, so the two machines agree on payloads).
#[inline(always)]
pub fn f32_to_bf16_bits(x: f32) -> u16 {
    let b = x.to_bits();
    if b & 0x7FFF_FFFF > 0x7F80_0000 {
        return 0x7FC0;
    }
    ((b + 0x7FFF + ((b >> 16) & 1)) >> 16) as u16
}

/// f16 bits of `x`, round to nearest even (subnormals included); values at
/// or above 65520 in magnitude go to ±inf and every NaN to `0x7E00`.
#[inline(always)]
pub fn f32_to_f16_bits(x: f32) -> u16 {
    let b = x.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    let a = b & 0x7FFF_FFFF;
    if a > 0x7F80_0000 {
        return 0x7E00;
    }
    if a >= 0x477F_F000 {
        // 65520 is the midpoint between 65504 (odd mantissa) and 2^16.
        return sign | 0x7C00;
    }
    if a >= 0x3880_0000 {
        // Normal f16 (>= 2^-14): keep 10 mantissa bits, round at bit 13;
        // a carry bumps the exponent, which is right.
        let r = a + 0x0FFF + ((a >> 13) & 1);
        return sign | ((r >> 13) - (112 << 10)) as u16;
    }
    if a <= 0x3300_0000 {
        // At most 2^-25, half the smallest subnormal: a tie rounds to 0.
        return sign;
    }
    // Subnormal f16: the magnitude in units of 2^-24, rounded to nearest even.
    let e = a >> 23;
    let m = (a & 0x7F_FFFF) | 0x80_0000;
    let shift = 126 - e;
    let kept = m >> shift;
    let rest = m & ((1 << shift) - 1);
    let half = 1 << (shift - 1);
    sign | (kept + (rest > half || (rest == half && kept & 1 == 1)) as u32) as u16
}

/// The expert of the `r`-th valid row of a masked layout, and the row's
/// index in that expert: the last `e < experts` with `sums(e) <= r`, and
/// `r - sums(e)`, where `sums(e)` is the number of valid rows of the experts
/// before `e` (non-decreasing, `sums(0) = 0`, and `r` below the total). A
/// binary search of a fixed number of steps, the same for every lane of a
/// warp; experts with no valid rows are never returned (the search passes
/// over equal sums). The masked GPU kernels search the running sums each
/// CTA keeps in shared memory with it.
#[inline(always)]
pub fn expert_of_valid_row(experts: u32, r: u32, mut sums: impl FnMut(u32) -> u32) -> (u32, u32) {
    let mut e = 0u32;
    let mut step = if experts > 1 { 1u32 << (31 - (experts - 1).leading_zeros()) } else { 0 };
    while step > 0 {
        if e + step < experts && sums(e + step) <= r {
            e += step;
        }
        step /= 2;
    }
    (e, r - sums(e))
}

/// Rows per band of the masked kernels' compacted walk with column-major
/// scales, as a shift: the wide token-group kernel's bands
/// ([`crate::geometry::TOKEN_GROUP_BAND`], 8 rows), for the same reason;
/// see [`compact_walk_group`].
pub const COMPACT_BAND_LOG: u32 = crate::geometry::TOKEN_GROUP_BAND.trailing_zeros();
const _: () = assert!(1 << COMPACT_BAND_LOG == crate::geometry::TOKEN_GROUP_BAND);

/// The band shift of the compacted walk for scale layout `layout` (a
/// `ScaleLayout` value or `fused_abi::PACKED_UE8M0_LAYOUT`):
/// [`COMPACT_BAND_LOG`] for the column-major layouts (plain, TMA-aligned,
/// packed UE8M0), whose scales of one group index are adjacent down the
/// rows; 0 (bands of one row, row order) for row-major, where a row's
/// consecutive groups are already adjacent.
#[inline(always)]
pub const fn compact_band_log(layout: u32) -> u32 {
    if layout == crate::ScaleLayout::RowMajor.as_u32() {
        0
    } else {
        COMPACT_BAND_LOG
    }
}

/// Rows the compacted walk covers: the `valid` rows rounded up to whole
/// bands of `1 << band_log` rows (the last band's rows past the last valid
/// one are inactive lanes).
#[inline(always)]
pub const fn compact_walk_rows(valid: u32, band_log: u32) -> u32 {
    let below = (1u32 << band_log) - 1;
    (valid + below) & !below
}

/// `(valid row, group index)` of group number `n` of the masked kernels'
/// compacted walk over rows of `groups` groups, in bands of `1 << band_log`
/// rows ([`compact_band_log`]): `n = 2^band_log (b * groups + g) + i` is
/// group `g` of valid row `2^band_log b + i`, so the groups numbered down a
/// band's rows, then across its columns. With column-major scales, the 8
/// groups of a warp (4 lanes each at group size 128) are then one group
/// index of 8 consecutive valid rows, and their scales share a 32-byte
/// sector where row order (`band_log = 0`: row `n / groups`, group `n %
/// groups`) put them a column apart. A bijection from the numbers below
/// `compact_walk_rows(valid, band_log) * groups` to the rows and groups of
/// those whole bands. The rows are the compacted valid rows (expert after
/// expert, [`expert_of_valid_row`]), so a band may cross an expert's end.
#[inline(always)]
pub const fn compact_walk_group(n: u32, groups: u32, band_log: u32) -> (u32, u32) {
    let across = n >> band_log;
    let (b, g) = (across / groups, across % groups);
    ((b << band_log) | (n & ((1u32 << band_log) - 1)), g)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    #[test]
    fn the_expert_of_a_valid_row_matches_a_linear_scan() {
        // Counts with runs of empty experts, over 1 to 70 experts.
        let mut seed = 0x9e37_79b9u32;
        for experts in 1..=70u32 {
            for _ in 0..20 {
                let counts: std::vec::Vec<u32> = (0..experts)
                    .map(|_| {
                        seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                        if seed >> 30 == 0 {
                            0
                        } else {
                            (seed >> 8) % 6
                        }
                    })
                    .collect();
                let mut sums = std::vec![0u32];
                for c in &counts {
                    sums.push(sums.last().unwrap() + c);
                }
                for r in 0..*sums.last().unwrap() {
                    let want = (0..experts).find(|&e| sums[e as usize] <= r && r < sums[e as usize + 1]);
                    let want = want.map(|e| (e, r - sums[e as usize]));
                    assert_eq!(Some(expert_of_valid_row(experts, r, |e| sums[e as usize])), want, "{counts:?} r {r}");
                }
            }
        }
    }

    /// Simulates the masked kernels' compacted walk over experts of
    /// `expert_rows` rows with `counts` valid rows each (`groups` groups a
    /// row, `tpg` lanes a group, bands of `1 << band_log` rows), as the GPU
    /// runs it: every lane `t` of every warp whose first lane is below the
    /// lane count takes group number `t / tpg` through `compact_walk_group`
    /// and its row through `expert_of_valid_row`. Checks that every
    /// `(expert, valid row, group)` is walked by each of its lanes exactly
    /// once, nothing else is walked, and in bands that each 8 consecutive
    /// group numbers from a multiple of 8 (a warp's 8 groups at 4 lanes
    /// each) are one group index of 8 consecutive valid rows from a
    /// multiple of 8.
    fn check_walk(counts: &[u32], expert_rows: u32, groups: u32, tpg: u32, band_log: u32) {
        let experts = counts.len() as u32;
        let mut sums = std::vec![0u32];
        for c in counts {
            sums.push(sums.last().unwrap() + c);
        }
        let valid = *sums.last().unwrap();
        let walked = compact_walk_rows(valid, band_log);
        assert!(walked >= valid && walked - valid < 1 << band_log && walked.is_multiple_of(1 << band_log));
        let numbers = walked * groups;
        let lanes = numbers * tpg;
        let what = std::format!("counts {counts:?} groups {groups} tpg {tpg} band_log {band_log}");
        // A bit per lane of each (expert, row, group).
        let mut seen = std::vec![0u8; (experts * expert_rows * groups) as usize];
        let mut prev = (0u32, 0u32);
        let mut warp = 0u32;
        while warp * 32 < lanes {
            for t in warp * 32..warp * 32 + 32 {
                let (n, lane) = (t / tpg, t % tpg);
                // The kernel's order: the number against the whole bands,
                // the division behind it, then the row past the last valid.
                let mut active = n < numbers;
                let (r, g) = if active { compact_walk_group(n, groups, band_log) } else { (0, 0) };
                if active && lane == 0 {
                    assert!(g < groups && r < walked, "{what}: n {n} -> ({r}, {g})");
                    if band_log > 0 {
                        if n % 8 == 0 {
                            assert_eq!(r % 8, 0, "{what}: n {n} starts a band's run at row {r}");
                        } else {
                            assert_eq!((r, g), (prev.0 + 1, prev.1), "{what}: n {n} after {prev:?}");
                        }
                    } else {
                        assert_eq!((r, g), (n / groups, n % groups), "{what}: row order");
                    }
                    prev = (r, g);
                }
                active = active && r < valid;
                if !active {
                    continue;
                }
                let (e, m) = expert_of_valid_row(experts, r, |e| sums[e as usize]);
                assert!(e < experts && m < counts[e as usize], "{what}: row {r} -> ({e}, {m})");
                let at = ((e * expert_rows + m) * groups + g) as usize;
                assert_eq!(seen[at] & (1 << lane), 0, "{what}: ({e}, {m}, {g}) lane {lane} walked twice");
                seen[at] |= 1 << lane;
            }
            warp += 1;
        }
        let all = ((1u32 << tpg) - 1) as u8;
        for e in 0..experts {
            for m in 0..expert_rows {
                for g in 0..groups {
                    let want = if m < counts[e as usize] { all } else { 0 };
                    let got = seen[((e * expert_rows + m) * groups + g) as usize];
                    assert_eq!(got, want, "{what}: ({e}, {m}, {g}) lanes {got:#b}");
                }
            }
        }
    }

    #[test]
    fn the_masked_walk_quantizes_every_valid_group_once() {
        let mut seed = 0x2545_f491u32;
        let mut next = move |n: u32| {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 8) % n
        };
        // (experts, rows per expert): every small pair, then larger and
        // odd ones (a mask of up to 1024 experts is compacted on the GPU;
        // the walk itself has no limit).
        let mut shapes = std::vec::Vec::new();
        for experts in 1..=9 {
            for rows in 1..=10 {
                shapes.push((experts, rows));
            }
        }
        for experts in [15, 16, 17, 31, 32, 33, 100, 255, 256, 257] {
            for rows in [1, 7, 8, 9, 64, 2 + next(62)] {
                shapes.push((experts, rows));
            }
        }
        // (At most 1300 experts of 64 rows: the largest walks, kept few.)
        for (experts, rows) in [(1023, 9), (1024, 1), (1024, 2 + next(62)), (1025, 8), (1300, 64), (1300, 7)] {
            shapes.push((experts, rows));
        }
        for (experts, rows) in shapes {
            // Large shapes at one draw of groups and lanes, small at several.
            let draws = if experts * rows > 4096 { 1 } else { 3 };
            for mask in 0..5 {
                let counts: std::vec::Vec<u32> = (0..experts)
                    .map(|e| match mask {
                        0 => 0,
                        1 => rows,
                        2 => next(rows + 1),
                        3 => {
                            if e % 2 == 0 {
                                rows / 2 + 1
                            } else {
                                rows
                            }
                        }
                        _ => {
                            if next(16) == 0 {
                                1 + next(rows)
                            } else {
                                0
                            }
                        }
                    })
                    .collect();
                for _ in 0..draws {
                    let (groups, tpg) = (1 + next(7), 1 << next(4));
                    for band_log in [COMPACT_BAND_LOG, 0] {
                        check_walk(&counts, rows, groups, tpg, band_log);
                    }
                }
            }
        }
        assert_eq!(compact_band_log(crate::ScaleLayout::RowMajor.as_u32()), 0);
        assert_eq!(compact_band_log(crate::ScaleLayout::ColMajor.as_u32()), COMPACT_BAND_LOG);
        assert_eq!(compact_band_log(crate::ScaleLayout::ColMajorTmaAligned.as_u32()), COMPACT_BAND_LOG);
        assert_eq!(compact_band_log(crate::fused_abi::PACKED_UE8M0_LAYOUT), COMPACT_BAND_LOG);
    }

    #[derive(Clone, Copy)]
    struct Soft;
    impl ExactOps for Soft {
        fn fma(a: f32, b: f32, c: f32) -> f32 {
            a.mul_add(b, c)
        }
        fn sqrt(x: f32) -> f32 {
            x.sqrt()
        }
    }

    #[test]
    fn geometry_holds_every_row_up_to_the_limit() {
        assert_eq!(rms_geometry(0), Some((32, 1)));
        assert_eq!(rms_geometry(100), Some((32, 1)));
        assert_eq!(rms_geometry(7168), Some((256, 4)));
        assert_eq!(rms_geometry(4096), Some((128, 4)));
        assert_eq!(rms_geometry(RMS_MAX_COLS), Some((1024, 4)));
        assert_eq!(rms_geometry(RMS_MAX_COLS + 1), None);
        for cols in 0..=RMS_MAX_COLS {
            let (t, s) = rms_geometry(cols).unwrap();
            assert!(t as u64 * s as u64 * RMS_LEAF >= cols && s <= 4 && t.is_power_of_two() && t >= 32);
            assert!(rms_shared_bytes(t) <= 4096);
        }
    }

    #[test]
    fn depth_first_tree_is_the_halving_tree_bit_for_bit() {
        fn halving(v: &[f32]) -> f32 {
            let mut a = v.to_vec();
            let mut n = a.len();
            while n > 1 {
                n /= 2;
                for j in 0..n {
                    a[j] += a[j + n];
                }
            }
            a[0]
        }
        fn check<const N: usize>(v: &[f32]) {
            let mut order = std::vec::Vec::new();
            let got = halving_tree_depth_first::<N>(|k| {
                order.push(k);
                v[k as usize]
            });
            assert_eq!(got.to_bits(), halving(&v[..N]).to_bits(), "N = {N}");
            order.sort();
            assert!(order.iter().copied().eq(0..N as u32), "N = {N}: every value read once");
        }
        // Values of very different magnitudes, so any other order of the
        // additions rounds differently.
        let mut state = 0x1234_5678u32;
        for _ in 0..2000 {
            let v: std::vec::Vec<f32> = (0..32)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 17;
                    state ^= state << 5;
                    f32::from_bits(0x3000_0000 + (state % 0x1800_0000))
                })
                .collect();
            check::<2>(&v);
            check::<4>(&v);
            check::<8>(&v);
            check::<16>(&v);
            check::<32>(&v);
        }
    }

    #[test]
    fn exp_and_silu_edges() {
        assert_eq!(exp_nonpositive::<Soft>(f32::NAN), 0.0);
        assert_eq!(exp_nonpositive::<Soft>(0.0), 1.0);
        assert_eq!(exp_nonpositive::<Soft>(-0.0), 1.0);
        assert_eq!(exp_nonpositive::<Soft>(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_nonpositive::<Soft>(-104.0), 0.0);
        assert!(exp_nonpositive::<Soft>(-103.0) > 0.0);
        assert!(exp_nonpositive::<Soft>(-87.0).is_normal());
        assert_eq!(silu::<Soft>(-200.0).to_bits(), (-0.0f32).to_bits());
        assert_eq!(silu::<Soft>(-0.0).to_bits(), (-0.0f32).to_bits());
        assert_eq!(silu::<Soft>(200.0), 200.0);
        assert_eq!(silu::<Soft>(f32::INFINITY), f32::INFINITY);
        assert!(silu::<Soft>(f32::NEG_INFINITY).is_nan());
        assert!(silu::<Soft>(f32::NAN).is_nan());
        assert_eq!(silu::<Soft>(0.0).to_bits(), 0);
        assert_eq!(recip_one_plus::<Soft>(0.0), 1.0);
        assert_eq!(recip_one_plus::<Soft>(1.0), 0.5);
    }
}
