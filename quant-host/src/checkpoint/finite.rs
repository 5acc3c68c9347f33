//! Non-finite weights: the checkpoint tool's policy on NaN and infinity.
//!
//! The kernels follow the contract's torch semantics: a block holding a NaN
//! gets a NaN scale (an infinity gets an infinite one), and then every other
//! weight of that block dequantizes to NaN too. One bad value in a weight
//! would silently destroy up to 16383 good ones, so `quantize` refuses such a
//! weight by default, naming the tensor, the first (row, col) and the count;
//! with `allow_nonfinite` it quantizes it anyway (the kernels' semantics,
//! unchanged) and lists it in the report's notes.
//!
//! The values are scanned as each weight is read for quantization (by the
//! pipeline's reader, on the bytes just read, before the quantizer sees
//! them; see [`super::pipeline`]), not in a separate pass before writing
//! starts: that would read every weight of the checkpoint twice. A refusal
//! still leaves no output (see [`super::output`]).

use super::error::{CheckpointError, Result};
use super::plan::{ShardPlan, Step};
use super::reader::HostData;
use crate::element::DType;
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Bytes of a weight one thread scans at a time (a whole number of
/// elements of every dtype).
const SCAN_PIECE: usize = 1 << 20;

/// Where a weight's non-finite values are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NonFiniteValues {
    /// How many values are NaN or infinite.
    pub count: u64,
    /// The first one in row-major order, as (row, col).
    pub first: (u64, u64),
}

/// Counts the NaN and infinite values of a row-major matrix with `cols`
/// columns; `None` when every value is finite.
pub fn scan(data: &HostData, cols: usize) -> Option<NonFiniteValues> {
    match data {
        // The exponent field all ones is NaN or infinity, in every float format.
        HostData::Bf16(v) => scan_by(v, cols, |x| x.to_bits() & 0x7F80 == 0x7F80),
        HostData::F16(v) => scan_by(v, cols, |x| x.to_bits() & 0x7C00 == 0x7C00),
        HostData::F32(v) => scan_by(v, cols, |x| !x.is_finite()),
    }
}

/// [`scan`] of a row-major matrix with `cols` columns given as the
/// little-endian bytes of `dtype` (the pipeline's input buffers), on every
/// core. Trailing bytes short of a whole element are ignored (the plan has
/// already checked the length).
pub fn scan_le_bytes(dtype: DType, bytes: &[u8], cols: usize) -> Option<NonFiniteValues> {
    match dtype {
        DType::Bf16 => scan_words::<2>(bytes, cols, |b| u16::from_le_bytes(b) & 0x7F80 == 0x7F80),
        DType::F16 => scan_words::<2>(bytes, cols, |b| u16::from_le_bytes(b) & 0x7C00 == 0x7C00),
        DType::F32 => scan_words::<4>(bytes, cols, |b| u32::from_le_bytes(b) & 0x7F80_0000 == 0x7F80_0000),
    }
}

/// Pieces in parallel, each giving its first bad element and its count.
fn scan_words<const N: usize>(
    bytes: &[u8],
    cols: usize,
    bad: impl Fn([u8; N]) -> bool + Sync,
) -> Option<NonFiniteValues> {
    let per_piece = SCAN_PIECE / N;
    let (first, count) = bytes
        .par_chunks(SCAN_PIECE)
        .enumerate()
        .map(|(piece, chunk)| {
            let mut words = chunk.chunks_exact(N).map(|c| <[u8; N]>::try_from(c).is_ok_and(&bad));
            let Some(at) = words.position(|b| b) else { return (None, 0u64) };
            // `position` consumed the bad element at `at`.
            let count = 1 + words.filter(|&b| b).count() as u64;
            (Some((piece as u64) * per_piece as u64 + at as u64), count)
        })
        .reduce(
            || (None, 0),
            |(fa, ca), (fb, cb)| {
                let first = match (fa, fb) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                (first, ca + cb)
            },
        );
    let first = first?;
    let cols = cols.max(1) as u64;
    Some(NonFiniteValues { count, first: (first / cols, first % cols) })
}

fn scan_by<T: Copy>(values: &[T], cols: usize, bad: impl Fn(T) -> bool) -> Option<NonFiniteValues> {
    let first = values.iter().position(|&x| bad(x))?;
    let count = values[first..].iter().filter(|&&x| bad(x)).count() as u64;
    let cols = cols.max(1) as u64;
    let first = first as u64;
    Some(NonFiniteValues { count, first: (first / cols, first % cols) })
}

/// A weight quantized with non-finite values (only with `allow_nonfinite`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NonFiniteWeight {
    /// The file holding it.
    pub file: PathBuf,
    /// The tensor.
    pub tensor: String,
    /// Where its non-finite values are.
    pub values: NonFiniteValues,
}

/// The weights a run quantized despite non-finite values; shared by the
/// threads that read the shards, read by the report.
#[derive(Clone, Debug, Default)]
pub struct NonFiniteLog(Arc<Mutex<Vec<NonFiniteWeight>>>);

impl NonFiniteLog {
    fn push(&self, weight: NonFiniteWeight) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(weight);
    }

    /// What was logged, in the order it was found.
    pub fn weights(&self) -> Vec<NonFiniteWeight> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// One report note per weight.
    pub fn notes(&self) -> Vec<String> {
        self.weights()
            .iter()
            .map(|w| {
                format!(
                    "{}: `{}` quantized with {} non-finite value(s) (--allow-nonfinite), the first at (row {}, col {}); the blocks holding them have non-finite scales, and `verify` will fail them",
                    w.file.display(),
                    w.tensor,
                    w.values.count,
                    w.values.first.0,
                    w.values.first.1
                )
            })
            .collect()
    }
}

/// Applies the plan's non-finite policy to the weight of `step` in `file`,
/// given as its little-endian bytes of `dtype`: an error naming the tensor,
/// the first (row, col) and the count, or (with `allow_nonfinite`) a note in
/// the plan's log. Called by the pipeline's reader before the weight is
/// handed to the quantizer.
pub fn check_weight(file: &Path, step: &Step, plan: &ShardPlan, dtype: DType, bytes: &[u8]) -> Result<()> {
    let Some(values) = scan_le_bytes(dtype, bytes, step.rows_cols.1) else { return Ok(()) };
    if !plan.allow_nonfinite {
        return Err(CheckpointError::NonFinite {
            file: file.into(),
            tensor: step.name.clone(),
            row: values.first.0,
            col: values.first.1,
            count: values.count,
        });
    }
    plan.nonfinite.push(NonFiniteWeight { file: file.into(), tensor: step.name.clone(), values });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::{bf16, f16};

    #[test]
    fn finds_first_and_counts_in_every_dtype() {
        let mut v = vec![1.0f32; 12];
        assert_eq!(scan(&HostData::F32(v.clone()), 4), None);
        v[6] = f32::NAN;
        v[11] = f32::NEG_INFINITY;
        let expect = Some(NonFiniteValues { count: 2, first: (1, 2) });
        assert_eq!(scan(&HostData::F32(v.clone()), 4), expect);
        let b: Vec<bf16> = v.iter().map(|&x| bf16::from_f32(x)).collect();
        assert_eq!(scan(&HostData::Bf16(b), 4), expect);
        let h: Vec<f16> = v.iter().map(|&x| f16::from_f32(x)).collect();
        assert_eq!(scan(&HostData::F16(h), 4), expect);
        // The largest finite values are finite.
        assert_eq!(scan(&HostData::Bf16(vec![bf16::MAX, bf16::MIN]), 2), None);
        assert_eq!(scan(&HostData::F16(vec![f16::MAX, f16::MIN]), 2), None);
    }

    /// The byte scan agrees with the typed one, across the pieces it splits
    /// a weight into (bad values in several pieces, the first in a later one).
    #[test]
    fn byte_scan_matches_across_pieces() {
        let cols = 1000;
        let n = 3 * SCAN_PIECE / 2 + 123;
        let mut v = vec![0.5f32; n];
        assert_eq!(scan_le_bytes(DType::F32, &le_f32(&v), cols), None);
        for &i in &[SCAN_PIECE / 4 + 7, SCAN_PIECE / 2 + 1, n - 1] {
            v[i] = f32::INFINITY;
        }
        v[SCAN_PIECE / 4 + 9] = f32::NAN;
        let expect = scan(&HostData::F32(v.clone()), cols);
        assert_eq!(
            expect,
            Some(NonFiniteValues {
                count: 4,
                first: (((SCAN_PIECE / 4 + 7) / cols) as u64, ((SCAN_PIECE / 4 + 7) % cols) as u64)
            })
        );
        assert_eq!(scan_le_bytes(DType::F32, &le_f32(&v), cols), expect);
        let b: Vec<u8> = v.iter().flat_map(|&x| bf16::from_f32(x).to_le_bytes()).collect();
        assert_eq!(scan_le_bytes(DType::Bf16, &b, cols), expect);
        let h: Vec<u8> = v.iter().flat_map(|&x| f16::from_f32(x).to_le_bytes()).collect();
        assert_eq!(scan_le_bytes(DType::F16, &h, cols), expect);
        // Only a later piece holds a bad value.
        let mut w = vec![1.0f32; n];
        w[n - 2] = f32::NEG_INFINITY;
        let last = (n - 2) as u64;
        assert_eq!(
            scan_le_bytes(DType::F32, &le_f32(&w), cols),
            Some(NonFiniteValues { count: 1, first: (last / cols as u64, last % cols as u64) })
        );
        // The largest finite values are finite.
        let max: Vec<u8> = [bf16::MAX, bf16::MIN].iter().flat_map(|x| x.to_le_bytes()).collect();
        assert_eq!(scan_le_bytes(DType::Bf16, &max, 2), None);
        assert_eq!(scan_le_bytes(DType::F32, &le_f32(&[f32::MAX, f32::MIN]), 2), None);
    }

    fn le_f32(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }
}
