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
//! The values are scanned as each weight is read for quantization, not in a
//! separate pass before writing starts: that would read every weight of the
//! checkpoint twice. A refusal still leaves no output (see [`super::output`]).

use super::error::{CheckpointError, Result};
use super::plan::{ShardPlan, Step};
use super::reader::{HostData, Shard};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

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

/// Reads the weight of `step` from `shard`, converts it for the kernels and
/// applies the plan's non-finite policy: an error naming the tensor, or (with
/// `allow_nonfinite`) a note in the plan's log.
pub fn load_weight(shard: &Shard, step: &Step, plan: &ShardPlan) -> Result<HostData> {
    let bytes = shard.read(&step.name)?;
    let data = HostData::from_le_bytes(step.dtype, &bytes, shard.path(), &step.name)?;
    drop(bytes);
    if let Some(values) = scan(&data, step.rows_cols.1) {
        if !plan.allow_nonfinite {
            return Err(CheckpointError::NonFinite {
                file: shard.path().into(),
                tensor: step.name.clone(),
                row: values.first.0,
                col: values.first.1,
                count: values.count,
            });
        }
        plan.nonfinite.push(NonFiniteWeight { file: shard.path().into(), tensor: step.name.clone(), values });
    }
    Ok(data)
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
}
