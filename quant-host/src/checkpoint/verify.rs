//! `fp8q verify`: dequantizes every quantized weight and compares it with the
//! original, and checks that every other tensor was copied byte for byte.
//!
//! What a PASS guarantees, for each quantized weight:
//! - every block scale is finite and positive;
//! - every finite original element `w` dequantizes to a finite value within
//!   half an fp8 step of it in scaled units: `|w - decode(q) * s| / s` is at
//!   most half the fp8 spacing at `q` (round to nearest), plus a few f32 ulps
//!   for the division `w / s`. That is tighter than one bound for the whole
//!   block and is what a correct quantizer guarantees for finite inputs;
//! - nothing is skipped silently: an original element that is NaN or infinite
//!   cannot be compared and is counted in the report, and since the kernels
//!   give its block a non-finite scale, such a weight fails.
//!
//! An empty tensor (`[0, K]` or `[N, 0]`) is checked in O(1), whatever its
//! other dimension claims.

use super::config_json;
use super::error::{io, Result};
use super::plan::{code_format, scale_name};
use super::progress::Progress;
use super::quantize::META_BLOCK;
use super::reader::Shard;
use super::report::{ErrorStats, Outcome, TensorCheck, VerifyReport};
use super::source::Source;
use half::{bf16, f16};
use quant_kernels::Fp8Format;
use safetensors::Dtype;
use std::collections::{BTreeSet, HashMap};
use std::path::Path;

/// Compares the checkpoint at `quantized` with the one at `original`.
/// Returns an error only when a checkpoint cannot be read; mismatches are
/// reported per tensor in the [`VerifyReport`].
pub fn verify(original: &Path, quantized: &Path, progress: &dyn Progress) -> Result<VerifyReport> {
    let originals = Source::open(original)?.open_shards()?;
    let quantized_source = Source::open(quantized)?;
    let default_block = match &quantized_source {
        Source::Folder(f) => match &f.config {
            Some(path) => {
                let text = std::fs::read(path).map_err(io(path))?;
                serde_json::from_slice(&text).ok().as_ref().and_then(config_json::block_size)
            }
            None => None,
        },
        Source::File(_) => None,
    }
    .unwrap_or((128, 128));
    let outputs = quantized_source.open_shards()?;
    let mut located: HashMap<&str, &Shard> = HashMap::new();
    for shard in &outputs {
        for name in shard.names() {
            located.insert(name, shard);
        }
    }
    let mut unused: BTreeSet<&str> = located.keys().copied().collect();
    let total = originals.iter().map(|s| s.names().len() as u64).sum();
    let total_bytes = originals.iter().map(Shard::data_len).sum();
    progress.begin(total, total_bytes);
    let mut report = VerifyReport::default();
    for shard in &originals {
        for name in shard.names() {
            let scales = scale_name(name);
            unused.remove(name.as_str());
            let outcome = match (located.get(name.as_str()), located.get(scales.as_str())) {
                (None, _) => Outcome::Failed("missing from the quantized checkpoint".into()),
                (Some(out), Some(scale_shard)) => {
                    unused.remove(scales.as_str());
                    let block = block_of(out).unwrap_or(default_block);
                    compare_quantized(shard, out, scale_shard, name, &scales, block)
                }
                (Some(out), None) => compare_copied(shard, out, name),
            };
            let bytes = shard.info(name).map_or(0, |i| (i.data_offsets.1 - i.data_offsets.0) as u64);
            progress.tensor_done(name, bytes);
            report.checks.push(TensorCheck { name: name.clone(), outcome });
        }
    }
    for name in unused {
        report.checks.push(TensorCheck {
            name: name.to_string(),
            outcome: Outcome::Failed("in the quantized checkpoint but not in the original".into()),
        });
    }
    progress.finish();
    Ok(report)
}

/// The block size a shard's metadata records.
fn block_of(shard: &Shard) -> Option<(usize, usize)> {
    let value = shard.user_metadata()?.get(META_BLOCK)?;
    let (r, c) = value.split_once(',')?;
    Some((r.trim().parse().ok()?, c.trim().parse().ok()?))
}

fn compare_copied(original: &Shard, output: &Shard, name: &str) -> Outcome {
    let (Some(a), Some(b)) = (original.info(name), output.info(name)) else {
        return Outcome::Failed("tensor info missing".into());
    };
    if a.dtype != b.dtype || a.shape != b.shape {
        return Outcome::Failed(format!(
            "copied tensor changed: {} {:?} became {} {:?}",
            a.dtype, a.shape, b.dtype, b.shape
        ));
    }
    match (original.read(name), output.read(name)) {
        (Ok(a), Ok(b)) if a == b => {}
        (Ok(_), Ok(_)) => return Outcome::Failed("copied tensor's bytes differ".into()),
        (Err(e), _) | (_, Err(e)) => return Outcome::Failed(e.to_string()),
    }
    Outcome::Copied
}

fn compare_quantized(
    original: &Shard,
    output: &Shard,
    scale_shard: &Shard,
    name: &str,
    scale_name: &str,
    (bn, bk): (usize, usize),
) -> Outcome {
    let fail = |why: String| Outcome::Failed(why);
    let (Some(w), Some(q), Some(s)) = (original.info(name), output.info(name), scale_shard.info(scale_name)) else {
        return fail("tensor info missing".into());
    };
    let Some(format) = code_format(q.dtype) else {
        return fail(format!("has a `{scale_name}` but dtype {} is not an fp8 format", q.dtype));
    };
    let [n, k] = w.shape[..] else {
        return fail(format!("original has shape {:?}, not [N, K]", w.shape));
    };
    if q.shape != w.shape {
        return fail(format!("codes have shape {:?}, the original {:?}", q.shape, w.shape));
    }
    if bn == 0 || bk == 0 {
        return fail(format!("block size {bn}x{bk} is invalid"));
    }
    let (sn, sk) = (n.div_ceil(bn), k.div_ceil(bk));
    if s.dtype != Dtype::F32 || s.shape != [sn, sk] {
        return fail(format!(
            "`{scale_name}` is {} {:?}, expected F32 [{sn}, {sk}] for {bn}x{bk} blocks",
            s.dtype, s.shape
        ));
    }
    let mut stats = ErrorStats { format, block: (bn, bk), ..Default::default() };
    if n == 0 || k == 0 {
        // Nothing to compare, and no scales: done in O(1) (a loop over the
        // rows of a [2^62, 0] tensor would never end).
        return Outcome::Quantized(stats);
    }
    let (w_bytes, codes, s_bytes) = match (original.read(name), output.read(name), scale_shard.read(scale_name)) {
        (Ok(w), Ok(q), Ok(s)) => (w, q, s),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return fail(e.to_string()),
    };
    let scales: Vec<f32> = s_bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    for (i, &scale) in scales.iter().enumerate() {
        if !(scale.is_finite() && scale > 0.0) {
            stats.bad_scales += 1;
            stats.first_bad_scale.get_or_insert((i / sk, i % sk));
        }
    }
    let half_ulp = half_ulp_table(format);
    let (mut err2, mut ref2) = (0.0f64, 0.0f64);
    // An [0, K] tensor has no data, whatever K its header claims: allocate
    // a row only when there is one (K is then bounded by the file's size).
    let mut row = vec![0.0f32; k];
    for r in 0..n {
        if !decode_row(w.dtype, &w_bytes, r, k, &mut row) {
            return fail(format!("original dtype {} cannot be compared", w.dtype));
        }
        for (c, &x) in row.iter().enumerate() {
            let scale = scales[(r / bn) * sk + c / bk];
            let code = codes[r * k + c];
            stats.elements += 1;
            if !x.is_finite() {
                stats.nonfinite += 1;
                continue;
            }
            if !(scale.is_finite() && scale > 0.0) {
                // Counted once per block in `bad_scales`.
                continue;
            }
            let decoded = format.decode(code) as f64;
            let (x, scale) = (x as f64, scale as f64);
            // Both factors are f32, so the f64 product is exact.
            let err = (x - decoded * scale).abs();
            let over_scale = err / scale;
            // The quantizer divides in f32 before rounding to fp8: allow a few
            // f32 ulps of the quotient on top of the half fp8 ulp.
            let bound = half_ulp[code as usize] + decoded.abs() * f64::powi(2.0, -21);
            // A finite original that dequantizes to NaN or infinity fails.
            let ratio = if err.is_finite() { over_scale / bound } else { f64::INFINITY };
            if ratio > 1.0 {
                stats.violations += 1;
                stats.first_violation.get_or_insert((r, c));
            }
            stats.max_abs_err = stats.max_abs_err.max(err);
            stats.max_err_over_scale = stats.max_err_over_scale.max(over_scale);
            stats.worst_bound_ratio = stats.worst_bound_ratio.max(ratio);
            err2 += err * err;
            ref2 += x * x;
        }
    }
    stats.rel_rms_err = if ref2 > 0.0 { (err2 / ref2).sqrt() } else { err2.sqrt() };
    Outcome::Quantized(stats)
}

/// Half the spacing of the fp8 grid at each code (the spacing of its
/// binade), in units of the scale; NaN codes get 0 so any finite original
/// that became NaN fails.
fn half_ulp_table(format: Fp8Format) -> [f64; 256] {
    let bias = match format {
        Fp8Format::E4M3Fn => 7,
        Fp8Format::E4M3Fnuz => 8,
    };
    std::array::from_fn(|code| {
        let code = code as u8;
        if format.is_nan_code(code) {
            return 0.0;
        }
        let exponent = i32::from((code >> 3) & 0xF).max(1);
        0.5 * f64::powi(2.0, exponent - bias - 3)
    })
}

/// Row `r` of a `[_, k]` matrix of `dtype` as f32; false for other dtypes.
fn decode_row(dtype: Dtype, bytes: &[u8], r: usize, k: usize, out: &mut [f32]) -> bool {
    let size = match dtype {
        Dtype::BF16 | Dtype::F16 => 2,
        Dtype::F32 => 4,
        _ => return false,
    };
    let Some(row) = bytes.get(r * k * size..(r + 1) * k * size) else {
        return false;
    };
    for (o, c) in out.iter_mut().zip(row.chunks_exact(size)) {
        *o = match dtype {
            Dtype::BF16 => bf16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f32(),
            Dtype::F16 => f16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f32(),
            _ => f32::from_le_bytes([c[0], c[1], c[2], c[3]]),
        };
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_ulp_at_the_top_of_each_format() {
        assert_eq!(half_ulp_table(Fp8Format::E4M3Fn)[0x7E], 16.0);
        assert_eq!(half_ulp_table(Fp8Format::E4M3Fnuz)[0x7F], 8.0);
        // Subnormals share the spacing of the first binade.
        assert_eq!(half_ulp_table(Fp8Format::E4M3Fn)[0x01], half_ulp_table(Fp8Format::E4M3Fn)[0x08]);
        assert_eq!(half_ulp_table(Fp8Format::E4M3Fn)[0x01], 0.5 * f64::powi(2.0, -9));
        assert_eq!(half_ulp_table(Fp8Format::E4M3Fn)[0x7F], 0.0);
    }
}
