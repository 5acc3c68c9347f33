//! GPU entry points. Each operation lives in its own file; the entry points are
//! monomorphised by macros over the input type, fp8 format and group size so
//! that every hot loop is specialised, and named
//! `<op>_<dtype>_<format>_g<group>`. The lists of entry points live in
//! `crate::abi`, which also gives the host their names and parameter blocks.

/// Repeats `$body` for `$i` in `0..8` as straight-line code, so arrays
/// indexed by `$i` stay in registers (a loop that LLVM declines to unroll
/// would move them to local memory).
macro_rules! unroll8 {
    ($i:ident => $body:block) => {{
        {
            let $i: usize = 0;
            $body
        }
        {
            let $i: usize = 1;
            $body
        }
        {
            let $i: usize = 2;
            $body
        }
        {
            let $i: usize = 3;
            $body
        }
        {
            let $i: usize = 4;
            $body
        }
        {
            let $i: usize = 5;
            $body
        }
        {
            let $i: usize = 6;
            $body
        }
        {
            let $i: usize = 7;
            $body
        }
    }};
}

/// [`unroll8!`] for two (token-group chunks, GEMM fragments).
macro_rules! unroll2 {
    ($i:ident => $body:block) => {{
        {
            let $i: usize = 0;
            $body
        }
        {
            let $i: usize = 1;
            $body
        }
    }};
}

/// [`unroll8!`] for four (block-quant row chunks, GEMM fragments).
macro_rules! unroll4 {
    ($i:ident => $body:block) => {{
        unroll2!($i => $body);
        {
            let $i: usize = 2;
            $body
        }
        {
            let $i: usize = 3;
            $body
        }
    }};
}

/// Repeats `$body` for `$j` in `0..24` as straight-line code guarded by
/// `$j < $limit` (a constant), so fragments are indexed by constants only
/// and stay in registers (the GEMM fragments; `@each` with a shorter list
/// unrolls fewer).
macro_rules! unroll24 {
    ($j:ident < $limit:expr => $body:block) => {{
        unroll24!(@each $j, $limit, $body, 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23);
    }};
    (@each $j:ident, $limit:expr, $body:block, $($n:literal)+) => {{
        $(
            {
                let $j: usize = $n;
                if $j < $limit {
                    $body
                }
            }
        )+
    }};
}

pub mod block;
pub mod chunk;
pub mod common;
pub mod copy;
pub mod encode;
pub mod fused;
pub mod gemm;
#[cfg(target_feature = "sm_90a")]
pub mod gemm_reduce;
#[cfg(target_feature = "sm_90a")]
pub(crate) mod gemm_schedule;
#[cfg(target_feature = "sm_90a")]
pub mod gemm_stream;
#[cfg(target_feature = "sm_90a")]
pub mod gemm_wgmma;
pub mod token_group;

use crate::element::bf16_to_f32;
use crate::instr::{clamp, cvt_f32_f16, fma, nan_max_abs, shfl_idx, shfl_xor, warp_all};
use crate::scale::Divider;
use crate::Fp8Format;

/// An input element as the kernels read it from global memory.
pub trait Input: Copy {
    /// The exact f32 value.
    fn to_f32(self) -> f32;
}

/// bf16, read as its bit pattern.
#[derive(Clone, Copy)]
#[repr(transparent)]
pub struct Bf16(pub u16);

/// f16, read as its bit pattern.
#[derive(Clone, Copy)]
#[repr(transparent)]
pub struct F16(pub u16);

/// f32, under the name the kernel lists of `crate::abi` use.
pub type F32 = f32;

impl Input for Bf16 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        bf16_to_f32(self.0)
    }
}

impl Input for F16 {
    /// The hardware conversion ([`cvt_f32_f16`]): the same value as the CPU
    /// reference's `element::f16_to_f32` for every code a result depends on.
    #[inline(always)]
    fn to_f32(self) -> f32 {
        cvt_f32_f16(self.0)
    }
}

impl Input for f32 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }
}

/// The amax of a group held by `lanes` adjacent lanes of the warp (a power
/// of two up to 32, aligned), from each lane's `amax` over its own values:
/// a butterfly of `nan_max_abs`. The amaxes are +0 or more, or NaN, so one
/// `max.NaN` per step does what `scale::nan_max` does in three (a NaN comes
/// out canonical, which the scale's division makes it anyway). Every lane
/// of the warp must call it.
#[inline(always)]
pub(crate) fn group_amax(mut amax: f32, lanes: u32) -> f32 {
    let mut offset = lanes / 2;
    while offset > 0 {
        amax = nan_max_abs(amax, shfl_xor(amax, offset));
        offset /= 2;
    }
    amax
}

/// The amaxes of four groups, each held by the same `lanes` adjacent lanes
/// of the warp (a power of two from 4 to 32, aligned), from each lane's
/// `bits[v]`, the bit pattern of its own `max |x|` over group `v`
/// (`Load8::abs_max_bits`); in five shuffles for 16 lanes (four for 8),
/// where four butterflies of [`group_amax`] would take sixteen. A
/// reduce-scatter: across `lanes / 2` each lane keeps two of the four
/// values (the upper two in the upper half) and sends the other two, across
/// `lanes / 4` it keeps one of those and sends the other, and the rest of
/// the butterfly completes the one it kept. Lane `l` ends with the bits of
/// the whole amax of group `(l % lanes) / (lanes / 4)`, so each group's is
/// in the `lanes / 4` lanes from `(l - l % lanes) + v * (lanes / 4)`.
///
/// The patterns are of values `+0` or more, where integer order is value
/// order and every NaN is above +inf: an integer maximum is the amax, NaN
/// if any value is. Turned into f32 ([`amax_from_bits`]) it is the amax
/// [`group_amax`] computes, bit for bit. Every lane of the warp must call
/// it.
#[inline(always)]
pub(crate) fn group_amax_bits4_scatter(bits: [u32; 4], lane: u32, lanes: u32) -> u32 {
    let shfl = |v: u32, offset: u32| shfl_xor(f32::from_bits(v), offset).to_bits();
    let (half, quarter) = (lanes / 2, lanes / 4);
    let upper = lane & half != 0;
    let (keep, send) =
        if upper { ([bits[2], bits[3]], [bits[0], bits[1]]) } else { ([bits[0], bits[1]], [bits[2], bits[3]]) };
    let pair = [keep[0].max(shfl(send[0], half)), keep[1].max(shfl(send[1], half))];
    let (keep, send) = if lane & quarter != 0 { (pair[1], pair[0]) } else { (pair[0], pair[1]) };
    let mut m = keep.max(shfl(send, quarter));
    let mut offset = quarter / 2;
    while offset > 0 {
        m = m.max(shfl(m, offset));
        offset /= 2;
    }
    m
}

/// The f32 amax of a group from its value `amax` (exact, +0 or more, or a
/// NaN of any payload), as [`group_amax`] gives it over two lanes or more:
/// NaN canonical (one `max.NaN` against +0, which changes nothing else).
#[inline(always)]
pub(crate) fn amax_from_bits(amax: f32) -> f32 {
    nan_max_abs(0.0, amax)
}

/// The codes of a lane's 4 chunks, chunk `c` of the group whose amax
/// [`group_amax_bits4_scatter`] left in lanes `block + c * (lanes / 4)`
/// (`lanes` a power of two from 4 to 32, `block` = `lane` rounded down to
/// a multiple of `lanes`): `(scale,
/// recip)` is this lane's group's scale and its [`Divider::recip_of`], each
/// chunk takes its group's pair from the first lane holding it (two
/// `shfl.idx` a chunk) and rebuilds the quantizer from them
/// ([`GroupQuantizer::with_recip`]: a few compares, no division). Chunk
/// `c`'s values are `values(c)`, its codes go to `store(c, codes)`.
///
/// The division path is chosen for the whole warp, by vote (every group's
/// scale is in some lane): the Markstein path without clamp when every
/// group of the warp takes it, the power-of-two path when every group does
/// (UE8M0), else the IEEE division, which gives every path's quotients
/// (`Divider::divide_ieee`). Each chunk branches on those two warp-uniform
/// flags. Tried and spilling in the token-group row kernel (f16 worst,
/// sm_80 and sm_90, 64 registers): a dispatch on each group's own path per
/// chunk, and one copy of the 4-chunk loop per path. Every lane of the warp
/// must call it.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) fn quantize4_scattered(
    format: Fp8Format,
    fp8_max: f32,
    scale: f32,
    recip: f32,
    lane: u32,
    lanes: u32,
    values: impl Fn(usize) -> [f32; 8],
    mut store: impl FnMut(usize, u64),
) {
    let (block, quarter) = (lane & !(lanes - 1), lanes / 4);
    let quantizer = |c: usize| {
        let from = block + c as u32 * quarter;
        GroupQuantizer::with_recip(format, shfl_idx(scale, from), shfl_idx(recip, from), fp8_max)
    };
    let own = GroupQuantizer::with_recip(format, scale, recip, fp8_max);
    let plain = warp_all(own.is_plain());
    let power2 = warp_all(own.is_power2());
    unroll4!(c => {
        let (quantizer, values) = (quantizer(c), values(c));
        let codes = if plain {
            quantizer.quantize8_plain(&values)
        } else if power2 {
            quantizer.quantize8_power2(&values)
        } else {
            quantizer.quantize8_divide(&values)
        };
        store(c, codes);
    });
}

/// The per-element work of every quantizer for one group (or block):
/// divide by the scale, clamp to `±fp8_max`, encode.
///
/// E4M3FNUZ on sm_90 goes through the E4M3FN converter applied to twice
/// the quotient (see [`encode8_prescaled`]): the divider then makes the
/// doubled quotient directly ([`Divider::doubled`], no extra instruction)
/// and the clamp bound is doubled with it (exact).
#[derive(Clone, Copy)]
pub(crate) struct GroupQuantizer {
    format: Fp8Format,
    divider: Divider,
    /// The clamp bound in the units of the divider's quotients.
    clamp_max: f32,
    clamp: bool,
}

impl GroupQuantizer {
    #[inline(always)]
    pub(crate) fn new(format: Fp8Format, scale: f32, fp8_max: f32) -> Self {
        let clamp = clamp_changes_codes(format, fp8_max);
        if prescales(format) {
            Self { format, divider: Divider::doubled(scale), clamp_max: 2.0 * fp8_max, clamp }
        } else {
            Self { format, divider: Divider::new(scale), clamp_max: fp8_max, clamp }
        }
    }

    /// [`GroupQuantizer::new`] with `recip` the caller's
    /// [`Divider::recip_of`]`(scale)`: the same quantizer, without the
    /// division (for lanes handed a group's scale and reciprocal by the lane
    /// that computed them).
    #[inline(always)]
    pub(crate) fn with_recip(format: Fp8Format, scale: f32, recip: f32, fp8_max: f32) -> Self {
        let clamp = clamp_changes_codes(format, fp8_max);
        if prescales(format) {
            Self { format, divider: Divider::doubled_with_recip(scale, recip), clamp_max: 2.0 * fp8_max, clamp }
        } else {
            Self { format, divider: Divider::with_recip(scale, recip), clamp_max: fp8_max, clamp }
        }
    }

    /// Whether [`GroupQuantizer::quantize8_plain`] gives this quantizer's
    /// codes: the Markstein division and no clamp (every float scale with
    /// the default `eps` and an `fp8_max` that is a value of the format).
    #[inline(always)]
    pub(crate) fn is_plain(&self) -> bool {
        self.divider.is_markstein() && !self.clamp
    }

    /// [`GroupQuantizer::quantize8`] for a quantizer that
    /// [`GroupQuantizer::is_plain`], without the per-call dispatch on the
    /// division path and the clamp (8 instructions per chunk, and ptxas
    /// cannot fold the codes' packing into the conversions after the
    /// dispatch's joins): callers test `is_plain` once for many chunks.
    #[inline(always)]
    pub(crate) fn quantize8_plain(&self, v: &[f32; 8]) -> u64 {
        encode8_prescaled(self.format, &self.divider.divide_markstein(*v, fma))
    }

    /// The codes of a thread's `N` chunks (at most 4), chunk `c` from
    /// `values(c)`, each handed to `store(c, codes)`. The division path and
    /// the clamp are chosen once for all of them ([`Self::is_plain`]), not
    /// per chunk: the per-chunk dispatch cost 8 instructions a chunk and
    /// kept every chunk's quotients live across its joins.
    #[inline(always)]
    pub(crate) fn quantize_chunks<const N: usize>(
        &self,
        values: impl Fn(usize) -> [f32; 8],
        mut store: impl FnMut(usize, u64),
    ) {
        if self.is_plain() {
            unroll4!(c => {
                if c < N {
                    store(c, self.quantize8_plain(&values(c)));
                }
            });
        } else {
            unroll4!(c => {
                if c < N {
                    store(c, self.quantize8(&values(c)));
                }
            });
        }
    }

    /// The format the codes are in.
    #[inline(always)]
    pub(crate) fn format(&self) -> Fp8Format {
        self.format
    }

    /// Codes of eight values of the group.
    #[inline(always)]
    pub(crate) fn quantize8(&self, v: &[f32; 8]) -> u64 {
        self.clamp_and_encode(self.divider.divide_all(*v, fma))
    }

    /// Whether [`GroupQuantizer::quantize8_power2`] gives this quantizer's
    /// codes (a power-of-two scale: every UE8M0 scale in range).
    #[inline(always)]
    pub(crate) fn is_power2(&self) -> bool {
        self.divider.is_power2()
    }

    /// [`GroupQuantizer::quantize8`] for a quantizer that
    /// [`GroupQuantizer::is_power2`], without the dispatch on the division
    /// path (the clamp is still tested: it is the same for every group).
    #[inline(always)]
    pub(crate) fn quantize8_power2(&self, v: &[f32; 8]) -> u64 {
        self.clamp_and_encode(self.divider.divide_power2(*v))
    }

    /// [`GroupQuantizer::quantize8`] through the IEEE division whatever the
    /// scale: the same codes (see [`Divider::divide_ieee`]), with no
    /// dispatch, for chunks of groups whose division paths differ.
    #[inline(always)]
    pub(crate) fn quantize8_divide(&self, v: &[f32; 8]) -> u64 {
        self.clamp_and_encode(self.divider.divide_ieee(*v))
    }

    #[inline(always)]
    fn clamp_and_encode(&self, q: [f32; 8]) -> u64 {
        let q = if self.clamp { q.map(|x| clamp(x, self.clamp_max)) } else { q };
        encode8_prescaled(self.format, &q)
    }
}

/// Whether [`encode8_prescaled`] takes `format`'s values doubled: E4M3FNUZ
/// on sm_90 (the hardware E4M3FN converter), nothing elsewhere.
#[inline(always)]
const fn prescales(format: Fp8Format) -> bool {
    cfg!(target_feature = "sm_90") && matches!(format, Fp8Format::E4M3Fnuz)
}

/// Whether clamping the quotients to `±fp8_max` can change a code.
///
/// A quotient `x / scale` of a group exceeds `fp8_max` by at most a few f32
/// ulps (`|x| <= amax` and `scale >= amax / fp8_max` up to its rounding).
/// When `fp8_max` is itself a normal value of the format (448, 240, 224, the
/// common choices), such a quotient rounds to `fp8_max`'s code, or saturates
/// to it, with or without the clamp; NaN stays NaN either way. Only an
/// `fp8_max` between two fp8 values needs the clamp (e.g. 100, between 96 and
/// 104: 100.00001 would round up to 104, the clamped 100 ties down to 96).
/// Skipping it saves two instructions per element, a fifth of the budget.
#[inline(always)]
fn clamp_changes_codes(format: Fp8Format, fp8_max: f32) -> bool {
    let min_normal = f32::from_bits((128 - format.bias()) << 23);
    !(fp8_max.to_bits() & 0xF_FFFF == 0 && fp8_max >= min_normal)
}

/// Encodes eight values; byte `i` of the result is element `i`'s code (the
/// little-endian order of an 8-byte store).
#[inline(always)]
pub(crate) fn encode8(format: Fp8Format, v: &[f32; 8]) -> u64 {
    if prescales(format) {
        encode8_prescaled(format, &v.map(|x| x * 2.0))
    } else {
        encode8_prescaled(format, v)
    }
}

/// [`encode8`] of values that are already doubled where [`prescales`]
/// says so. Building the word directly, not a byte array, keeps the store
/// one `st.global.b64`: LLVM splits a store of an assembled `[u8; 8]` into
/// byte, half-word and word pieces.
///
/// On sm_90 both formats use the hardware E4M3FN converter, which rounds
/// exactly as [`Fp8Format::encode`] does (checked over every f32 by the GPU
/// tests); E4M3FNUZ converts the doubled values and fixes three codes a word
/// at a time ([`crate::fp8::e4m3fnuz_from_doubled_e4m3fn`]). Other targets
/// use the software encoder.
#[inline(always)]
fn encode8_prescaled(format: Fp8Format, v: &[f32; 8]) -> u64 {
    let mut out = 0u64;
    #[cfg(target_feature = "sm_90")]
    {
        use crate::instr::{e4m3fn_x2, pack_u16x2, pack_u32x2};
        let word = |i: usize| pack_u16x2(e4m3fn_x2(v[i], v[i + 1]), e4m3fn_x2(v[i + 2], v[i + 3]));
        out = match format {
            Fp8Format::E4M3Fn => pack_u32x2(word(0), word(4)),
            Fp8Format::E4M3Fnuz => {
                let fnuz = |i: usize| crate::fp8::e4m3fnuz_from_doubled_e4m3fn(word(i), top4(v, i));
                pack_u32x2(fnuz(0), fnuz(4))
            }
        };
    }
    #[cfg(not(target_feature = "sm_90"))]
    {
        let mut i = 0;
        while i < 8 {
            out |= (format.encode(v[i]) as u64) << (8 * i);
            i += 1;
        }
    }
    out
}

/// Bit 0 of byte `j` set where the doubled value `v[i + j]` is above 464
/// (the value above 232, where E4M3FNUZ has 240 and E4M3FN saturates to
/// 448) or NaN, every other bit clear: the `top` argument of
/// [`crate::fp8::e4m3fnuz_from_doubled_e4m3fn`]. `|v| - nextup(464)` is one
/// `FADD` (the `abs` is an operand modifier) whose sign bit is clear
/// exactly there: 464 itself gives a negative difference (ties go to
/// 224's even code), `nextup(464)` gives +0, and a NaN operand gives the
/// GPU's canonical NaN `0x7FFFFFFF`, sign clear (the GPU tests encode
/// every f32, NaNs included, through this path). `prmt` in its
/// sign-replicating mode gathers four sign bits into four bytes, and one
/// `lop3` merges the halves and keeps bit 0 of the bytes with the sign
/// clear, one more for the mask: eight instructions per word.
#[cfg(target_feature = "sm_90")]
#[inline(always)]
fn top4(v: &[f32; 8], i: usize) -> u32 {
    use crate::instr::prmt;
    const ABOVE_464: f32 = f32::from_bits(464f32.to_bits() + 1);
    let d = |j: usize| (v[i + j].abs() - ABOVE_464).to_bits();
    // Selector nibble 0xB: byte 3 of the first source (its sign byte),
    // sign replicated; 0xF: the same of the second source.
    let low = prmt::<0x00FB>(d(0), d(1));
    let high = prmt::<0xFB00>(d(2), d(3));
    // Bytes 0-1 of `low`, 2-3 of `high` (`lop3` LUT 0xE4, bit select),
    // then the bytes whose sign was clear.
    !crate::instr::lop3::<0xE4>(low, high, 0x0000_FFFF) & 0x0101_0101
}
