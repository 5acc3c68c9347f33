//! CPU `per_block_quant_fp8` on every core: the fast path of the checkpoint
//! tool when there is no GPU.
//!
//! [`super::per_block_quant_fp8`] stays the literal reading of the spec and
//! the oracle; this module computes the same bits (its tests compare the two
//! on tails, NaN, infinities, both formats and both scale modes) with the
//! same scalar functions (`ScaleParams::scale`, `ScaleParams::quantize`,
//! which are `quant_kernels::scale`), organised for speed:
//!
//! - two passes, each parallel over independent work (`rayon`): the scales,
//!   one per block, then the codes, one task per few rows. Every task writes
//!   its own disjoint output, so the result does not depend on scheduling;
//! - inner loops over contiguous row segments with no index arithmetic, which
//!   the compiler vectorises; on x86-64 the encoding loop is compiled a second
//!   time with AVX2 (per-lane shifts, which fp8 rounding needs) and chosen at
//!   run time. It is the same Rust code: integer operations and IEEE division
//!   give the same bits in any vector width, and Rust never fuses a multiply
//!   and an add on its own;
//! - the block's `amax` as the maximum of `|x|`'s bit patterns: for
//!   non-negative floats the integer order is the float order and NaN sorts
//!   above infinity, so an integer `max` (one vector instruction) gives the
//!   reference's value whenever the block has no NaN. The reference keeps the
//!   *first* NaN it meets (its payload ends up in the scale), so a block
//!   whose maximum is a NaN is folded again the reference's way.

use super::{amax, check_len};
use crate::config::{BlockConfig, ScaleParams};
use crate::element::{DType, Element};
use crate::error::{QuantError, Result};
use crate::plan::BlockPlan;
use crate::shape::MatrixShape;
use half::{bf16, f16};
use rayon::prelude::*;

/// The bits of +inf with the sign cleared: an `|x|` pattern above it is a NaN.
const INF_BITS: u32 = 0x7F80_0000;

/// Rows of codes one task encodes (whole rows, so tasks own disjoint slices);
/// a few rows keep rayon's per-task cost small against the row's work.
const ROWS_PER_TASK: usize = 4;

/// [`super::per_block_quant_fp8`] on every core: same arguments, same errors,
/// bit-identical outputs.
pub fn per_block_quant_fp8_par<T: Element>(
    w: &[T],
    shape: MatrixShape,
    cfg: &BlockConfig,
    q: &mut [u8],
    scales: &mut [f32],
) -> Result<()> {
    // Validated before anything is written, exactly as the reference does.
    let plan = BlockPlan::new(cfg, shape)?;
    plan.check_buffers(w.len(), q.len(), scales.len())?;
    let stride = shape.row_stride();
    let segment = |row: usize, start: usize, end: usize| {
        let base = row * stride;
        w[base + start..base + end].iter().map(|x| x.to_f32())
    };
    quantize_blocks(&plan, q, scales, segment, Simd::Auto)
}

/// Which build of the encoding loop to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Simd {
    /// The widest this CPU has (AVX2 on x86-64 where present).
    Auto,
    /// The baseline build (tests compare it with `Auto`).
    #[cfg_attr(not(test), allow(dead_code))]
    Portable,
}

/// [`per_block_quant_fp8_par`] of a dense `[rows, cols]` matrix given as
/// little-endian bytes of `dtype` (a safetensors tensor as read from disk),
/// without first converting it to a typed vector.
pub fn per_block_quant_fp8_le_bytes(
    dtype: DType,
    bytes: &[u8],
    rows: usize,
    cols: usize,
    cfg: &BlockConfig,
    q: &mut [u8],
    scales: &mut [f32],
) -> Result<()> {
    let plan = BlockPlan::new(cfg, MatrixShape::new(rows, cols)?)?;
    let width = dtype.size();
    let elements = plan.input().numel();
    let expected = (elements as u64).checked_mul(width as u64).ok_or(QuantError::TooLarge("tensor bytes"))?;
    check_len("w bytes", expected, bytes.len())?;
    plan.check_buffers(elements, q.len(), scales.len())?;
    match dtype {
        DType::Bf16 => {
            let words = bytes.as_chunks::<2>().0;
            let segment = |row: usize, start: usize, end: usize| {
                words[row * cols + start..row * cols + end].iter().map(|b| bf16::from_le_bytes(*b).to_f32())
            };
            quantize_blocks(&plan, q, scales, segment, Simd::Auto)
        }
        DType::F16 => {
            let words = bytes.as_chunks::<2>().0;
            let segment = |row: usize, start: usize, end: usize| {
                words[row * cols + start..row * cols + end].iter().map(|b| f16::from_le_bytes(*b).to_f32())
            };
            quantize_blocks(&plan, q, scales, segment, Simd::Auto)
        }
        DType::F32 => {
            let words = bytes.as_chunks::<4>().0;
            let segment = |row: usize, start: usize, end: usize| {
                words[row * cols + start..row * cols + end].iter().map(|b| f32::from_le_bytes(*b))
            };
            quantize_blocks(&plan, q, scales, segment, Simd::Auto)
        }
    }
}

/// The two passes. `segment(row, start, end)` yields the values of columns
/// `start..end` of `row`, converted exactly as the reference converts them.
/// The plan's buffers were checked by the caller.
fn quantize_blocks<F, I>(plan: &BlockPlan, q: &mut [u8], scales: &mut [f32], segment: F, simd: Simd) -> Result<()>
where
    F: Fn(usize, usize, usize) -> I + Sync,
    I: Iterator<Item = f32>,
{
    let (rows, cols) = (plan.input().rows(), plan.input().cols());
    let (bn, bk) = plan.block();
    let col_blocks = plan.scale_shape().cols();
    let params = &plan.params();
    if plan.is_empty() {
        return Ok(());
    }
    let columns = |bj: usize| bj * bk..((bj + 1) * bk).min(cols);

    // Pass 1: one scale per block, blocks in parallel.
    scales.par_iter_mut().enumerate().for_each(|(i, scale)| {
        let (bi, bj) = (i / col_blocks, i % col_blocks);
        let block_rows = bi * bn..((bi + 1) * bn).min(rows);
        let cols_of_block = columns(bj);
        let bits = block_rows
            .clone()
            .map(|n| max_abs_bits(segment(n, cols_of_block.start, cols_of_block.end)))
            .fold(0, u32::max);
        let amax = if bits > INF_BITS {
            // A NaN: the reference's fold, in its order, picks which one.
            amax(block_rows.flat_map(|n| segment(n, cols_of_block.start, cols_of_block.end)))
        } else {
            f32::from_bits(bits)
        };
        *scale = params.scale(amax);
    });

    // Pass 2: the codes, a few whole rows per task.
    let scales = &*scales;
    let avx2 = simd == Simd::Auto && has_avx2();
    q.par_chunks_mut(cols).with_min_len(ROWS_PER_TASK).enumerate().for_each(|(n, row)| {
        let block_scales = &scales[(n / bn) * col_blocks..(n / bn + 1) * col_blocks];
        let job = RowJob { n, bk, cols, params, block_scales, segment: &segment };
        if avx2 {
            #[cfg(target_arch = "x86_64")]
            {
                // SAFETY: AVX2 was detected on this CPU (`has_avx2`).
                unsafe { encode_row_avx2(row, job) };
                return;
            }
        }
        encode_row(row, job);
    });
    Ok(())
}

/// One row of pass 2: its codes, block by block.
struct RowJob<'a, F> {
    n: usize,
    bk: usize,
    cols: usize,
    params: &'a ScaleParams,
    /// The scales of the row's block row.
    block_scales: &'a [f32],
    segment: &'a F,
}

#[inline(always)]
fn encode_row<F, I>(row: &mut [u8], job: RowJob<'_, F>)
where
    F: Fn(usize, usize, usize) -> I,
    I: Iterator<Item = f32>,
{
    for (bj, &scale) in job.block_scales.iter().enumerate() {
        let (start, end) = (bj * job.bk, ((bj + 1) * job.bk).min(job.cols));
        encode_segment(&mut row[start..end], (job.segment)(job.n, start, end), job.params, scale);
    }
}

/// [`encode_row`] compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn encode_row_avx2<F, I>(row: &mut [u8], job: RowJob<'_, F>)
where
    F: Fn(usize, usize, usize) -> I,
    I: Iterator<Item = f32>,
{
    encode_row(row, job)
}

/// Whether the AVX2 build of the encoding loop can run here.
fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The largest `|x|` bit pattern of a segment (0 for an empty one).
#[inline]
fn max_abs_bits(values: impl Iterator<Item = f32>) -> u32 {
    values.fold(0, |m, v| m.max(v.to_bits() & !(1 << 31)))
}

/// `out[i] = quantize(values[i], scale)`: the reference's per-element step.
#[inline(always)]
fn encode_segment(out: &mut [u8], values: impl Iterator<Item = f32>, params: &ScaleParams, scale: f32) {
    for (code, v) in out.iter_mut().zip(values) {
        *code = params.quantize(v, scale);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::per_block_quant_fp8;
    use crate::{Fp8Format, ScaleMode};

    /// SplitMix64, so a failing case is reproducible from its seed.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        /// Values of every kind the quantizer must treat exactly: ordinary
        /// weights, zeros of both signs, subnormals, huge values, infinities
        /// and NaNs with different payloads and signs.
        fn value(&mut self) -> f32 {
            let r = self.next();
            let magnitude = f32::from_bits((r >> 32) as u32 & 0x7FFF_FFFF);
            let sign = if r & 1 == 1 { -1.0 } else { 1.0 };
            match (r >> 8) % 64 {
                0 => f32::from_bits(0x7FC0_0000 | ((r >> 16) as u32 & 0x3F_FFFF) | ((r as u32 & 2) << 30)),
                1 => f32::INFINITY * sign,
                2 => 0.0 * sign,
                3 => f32::from_bits((r >> 40) as u32 & 0x7F_FFFF) * sign,
                4 => f32::MAX * sign,
                5..=8 if magnitude.is_finite() => magnitude * sign,
                _ => ((r >> 20) as u32 as f32 / u32::MAX as f32 - 0.5) * 0.1 * (1 << (r % 8)) as f32,
            }
        }
    }

    fn configs() -> Vec<BlockConfig> {
        let mut out = Vec::new();
        for format in Fp8Format::ALL {
            for scale_mode in ScaleMode::ALL {
                for (block_rows, block_cols) in [(128, 128), (1, 1), (3, 5), (64, 32), (128, 7)] {
                    out.push(BlockConfig { format, scale_mode, block_rows, block_cols, ..BlockConfig::default() });
                }
            }
        }
        out
    }

    const SHAPES: &[(usize, usize)] = &[(0, 5), (5, 0), (1, 1), (7, 3), (128, 128), (130, 300), (257, 129), (3, 1000)];

    /// Runs both paths on `w` and asserts identical codes and scale bits.
    fn compare<T: Element>(w: &[T], shape: MatrixShape, cfg: &BlockConfig, what: &str) {
        let (rows, cols) = (shape.rows(), shape.cols());
        let n_scales = rows.div_ceil(cfg.block_rows) * cols.div_ceil(cfg.block_cols);
        let (mut q_ref, mut s_ref) = (vec![0u8; rows * cols], vec![0f32; n_scales]);
        let (mut q_par, mut s_par) = (vec![0xAAu8; rows * cols], vec![-1f32; n_scales]);
        per_block_quant_fp8(w, shape, cfg, &mut q_ref, &mut s_ref).unwrap();
        per_block_quant_fp8_par(w, shape, cfg, &mut q_par, &mut s_par).unwrap();
        assert_eq!(q_ref, q_par, "codes differ: {what} {shape:?} {cfg:?}");
        let bits = |s: &[f32]| s.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&s_ref), bits(&s_par), "scales differ: {what} {shape:?} {cfg:?}");
        // The baseline build of the encoding loop too (the above ran the AVX2
        // one wherever the CPU has it).
        let plan = BlockPlan::new(cfg, shape).unwrap();
        let stride = shape.row_stride();
        let segment = |row: usize, start: usize, end: usize| {
            w[row * stride + start..row * stride + end].iter().map(|x| x.to_f32())
        };
        q_par.fill(0xAA);
        quantize_blocks(&plan, &mut q_par, &mut s_par, segment, Simd::Portable).unwrap();
        assert_eq!(q_ref, q_par, "portable codes differ: {what} {shape:?} {cfg:?}");
    }

    fn inputs<T: Element>(rng: &mut Rng, len: usize, special: bool) -> Vec<T> {
        (0..len)
            .map(|_| {
                let v = rng.value();
                if special || v.is_finite() {
                    T::from_f32(v)
                } else {
                    T::from_f32(0.25)
                }
            })
            .collect()
    }

    fn every_case<T: Element>() {
        let mut rng = Rng(0x5EED ^ T::DTYPE as u64);
        for cfg in configs() {
            for &(rows, cols) in SHAPES {
                for special in [false, true] {
                    let shape = MatrixShape::new(rows, cols).unwrap();
                    let w: Vec<T> = inputs(&mut rng, rows * cols, special);
                    compare(&w, shape, &cfg, "dense");
                    // Strided rows, with NaN in the padding no quantizer may read.
                    let stride = cols + 3;
                    let shape = MatrixShape::strided(rows, cols, stride).unwrap();
                    let mut padded = vec![T::from_f32(f32::NAN); shape.extent()];
                    for (n, row) in w.chunks(cols.max(1)).enumerate().take(rows) {
                        padded[n * stride..n * stride + row.len()].copy_from_slice(row);
                    }
                    compare(&padded, shape, &cfg, "strided");
                }
            }
        }
    }

    #[test]
    fn bf16_matches_the_reference() {
        every_case::<bf16>();
    }

    #[test]
    fn f16_matches_the_reference() {
        every_case::<f16>();
    }

    #[test]
    fn f32_matches_the_reference() {
        every_case::<f32>();
    }

    /// Several NaNs in one block: the scale keeps the payload of the first
    /// one in the reference's order, not the largest.
    #[test]
    fn first_nan_of_a_block_decides_the_scale() {
        let cfg = BlockConfig { block_rows: 2, block_cols: 2, ..BlockConfig::default() };
        let w = [1.0, f32::from_bits(0x7FC0_0001), f32::from_bits(0xFFC0_00FF), 2.0];
        let shape = MatrixShape::new(2, 2).unwrap();
        compare(&w, shape, &cfg, "two NaNs");
        let (mut q, mut s) = ([0u8; 4], [0f32; 1]);
        per_block_quant_fp8_par(&w, shape, &cfg, &mut q, &mut s).unwrap();
        assert_eq!(s[0].to_bits() & 0x3F_FFFF, 1, "the first NaN's payload");
    }

    #[test]
    fn le_bytes_match_the_typed_path() {
        let mut rng = Rng(42);
        for cfg in configs() {
            for &(rows, cols) in SHAPES {
                let w32: Vec<f32> = inputs(&mut rng, rows * cols, true);
                let w16: Vec<bf16> = w32.iter().map(|&v| bf16::from_f32(v)).collect();
                let wh: Vec<f16> = w32.iter().map(|&v| f16::from_f32(v)).collect();
                let shape = MatrixShape::new(rows, cols).unwrap();
                let n_scales = rows.div_ceil(cfg.block_rows) * cols.div_ceil(cfg.block_cols);
                let check = |dtype: DType, bytes: Vec<u8>, reference: &dyn Fn(&mut [u8], &mut [f32])| {
                    let (mut q_ref, mut s_ref) = (vec![0u8; rows * cols], vec![0f32; n_scales]);
                    reference(&mut q_ref, &mut s_ref);
                    let (mut q, mut s) = (vec![0u8; rows * cols], vec![0f32; n_scales]);
                    per_block_quant_fp8_le_bytes(dtype, &bytes, rows, cols, &cfg, &mut q, &mut s).unwrap();
                    assert_eq!(q, q_ref, "{dtype:?} {shape:?} {cfg:?}");
                    let bits = |s: &[f32]| s.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(&s), bits(&s_ref), "{dtype:?} {shape:?} {cfg:?}");
                };
                check(DType::F32, w32.iter().flat_map(|v| v.to_le_bytes()).collect(), &|q, s| {
                    per_block_quant_fp8(&w32, shape, &cfg, q, s).unwrap()
                });
                check(DType::Bf16, w16.iter().flat_map(|v| v.to_le_bytes()).collect(), &|q, s| {
                    per_block_quant_fp8(&w16, shape, &cfg, q, s).unwrap()
                });
                check(DType::F16, wh.iter().flat_map(|v| v.to_le_bytes()).collect(), &|q, s| {
                    per_block_quant_fp8(&wh, shape, &cfg, q, s).unwrap()
                });
            }
        }
    }

    #[test]
    fn bad_arguments_are_errors() {
        let cfg = BlockConfig::default();
        let shape = MatrixShape::new(2, 3).unwrap();
        let w = [0f32; 6];
        assert!(per_block_quant_fp8_par(&w[..5], shape, &cfg, &mut [0; 6], &mut [0.0; 1]).is_err());
        assert!(per_block_quant_fp8_par(&w, shape, &cfg, &mut [0; 5], &mut [0.0; 1]).is_err());
        assert!(per_block_quant_fp8_par(&w, shape, &cfg, &mut [0; 6], &mut [0.0; 2]).is_err());
        let zero_block = BlockConfig { block_rows: 0, ..cfg };
        assert!(per_block_quant_fp8_par(&w, shape, &zero_block, &mut [0; 6], &mut [0.0; 1]).is_err());
        assert!(per_block_quant_fp8_le_bytes(DType::Bf16, &[0; 11], 2, 3, &cfg, &mut [0; 6], &mut [0.0; 1]).is_err());
        assert!(per_block_quant_fp8_le_bytes(DType::Bf16, &[0; 12], 2, 3, &cfg, &mut [0; 6], &mut [0.0; 1]).is_ok());
    }
}
