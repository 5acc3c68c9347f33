//! What `quantize` and `verify` found, as data (for tests and callers) and
//! as text (for the terminal).

use quant_kernels::Fp8Format;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// One quantized weight.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuantizedTensor {
    /// Its name (the fp8 codes keep it; the scales add `_scale_inv`).
    pub name: String,
    /// N.
    pub rows: usize,
    /// K.
    pub cols: usize,
    /// The input dtype.
    pub dtype: String,
}

/// The outcome of [`quantize`](fn@super::quantize).
#[derive(Clone, Debug, Default)]
pub struct QuantizeReport {
    /// The device that ran the kernels.
    pub device: String,
    /// The input path.
    pub input: PathBuf,
    /// The output path.
    pub output: PathBuf,
    /// Safetensors files written.
    pub files: usize,
    /// The weights quantized, in file order.
    pub quantized: Vec<QuantizedTensor>,
    /// Tensors copied unchanged.
    pub copied: usize,
    /// Non-safetensors files copied unchanged.
    pub copied_files: usize,
    /// Tensor data bytes read.
    pub input_bytes: u64,
    /// Bytes of the safetensors files written (headers included).
    pub output_bytes: u64,
    /// Input bytes of the quantized weights.
    pub quantized_bytes: u64,
    /// Wall time of the whole run.
    pub elapsed: Duration,
    /// Time in upload, kernel and download.
    pub kernel_time: Duration,
    /// Busy time of each pipeline stage (read, quantize, transfers, write, sync).
    pub stages: Option<super::pipeline::StageTimes>,
    /// Whether the output was flushed to disk before it was published.
    pub durability: super::durability::Durability,
    /// Things worth knowing that did not stop the run.
    pub notes: Vec<String>,
}

impl QuantizeReport {
    /// Elements quantized.
    pub fn quantized_elements(&self) -> u64 {
        self.quantized.iter().map(|t| t.rows as u64 * t.cols as u64).sum()
    }
}

/// `1.23 GB`-style sizes (decimal units, as disk sizes are quoted).
pub fn bytes(n: u64) -> String {
    let n = n as f64;
    match n {
        n if n >= 1e9 => format!("{:.2} GB", n / 1e9),
        n if n >= 1e6 => format!("{:.1} MB", n / 1e6),
        n if n >= 1e3 => format!("{:.1} kB", n / 1e3),
        n => format!("{n} B"),
    }
}

fn rate(bytes_per: u64, time: Duration) -> String {
    let secs = time.as_secs_f64();
    if secs <= 0.0 {
        return "-".into();
    }
    format!("{}/s", bytes((bytes_per as f64 / secs) as u64))
}

impl fmt::Display for QuantizeReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "quantized {} -> {}", self.input.display(), self.output.display())?;
        writeln!(f, "  device:    {}", self.device)?;
        writeln!(
            f,
            "  tensors:   {} quantized ({} elements), {} copied, in {} safetensors file(s); {} other file(s) copied",
            self.quantized.len(),
            self.quantized_elements(),
            self.copied,
            self.files,
            self.copied_files
        )?;
        writeln!(f, "  bytes:     {} of tensors in, {} written", bytes(self.input_bytes), bytes(self.output_bytes))?;
        writeln!(
            f,
            "  time:      {:.2} s total ({} of input), {:.2} s quantizing ({} of weights, {:.0} Melem/s)",
            self.elapsed.as_secs_f64(),
            rate(self.input_bytes, self.elapsed),
            self.kernel_time.as_secs_f64(),
            rate(self.quantized_bytes, self.kernel_time),
            self.quantized_elements() as f64 / self.kernel_time.as_secs_f64().max(1e-9) / 1e6
        )?;
        if let Some(stages) = &self.stages {
            writeln!(f, "  stages:    {stages}")?;
        }
        writeln!(f, "  on disk:   {}", self.durability.describe())?;
        for note in &self.notes {
            writeln!(f, "  note:      {note}")?;
        }
        Ok(())
    }
}

/// Error statistics of one quantized weight against its original.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ErrorStats {
    /// The fp8 format of the codes.
    pub format: Fp8Format,
    /// Block rows and columns.
    pub block: (usize, usize),
    /// Elements compared.
    pub elements: u64,
    /// max |w - decode(q) * scale|.
    pub max_abs_err: f64,
    /// sqrt(sum err^2 / sum w^2): the error relative to the weight's energy.
    pub rel_rms_err: f64,
    /// max |w - w'| / scale: the error in units of the block scale. Round to
    /// nearest bounds it by half an fp8 ulp at the top of the range (16 for
    /// e4m3fn, 8 for e4m3fnuz).
    pub max_err_over_scale: f64,
    /// The largest ratio of an element's error to its own bound (half the fp8
    /// spacing at its code, in units of the block scale); above 1 is a failure.
    pub worst_bound_ratio: f64,
    /// Elements over their bound.
    pub violations: u64,
    /// The first element over its bound, as (row, col).
    pub first_violation: Option<(usize, usize)>,
    /// Original elements that are NaN or infinite: they cannot be compared,
    /// and are reported (their blocks' scales are checked like any other).
    pub nonfinite: u64,
    /// Block scales that are not finite and positive; any fails the tensor.
    pub bad_scales: u64,
    /// The first such scale, as (block row, block col).
    pub first_bad_scale: Option<(usize, usize)>,
}

impl ErrorStats {
    /// Whether every block scale is finite and positive and every finite
    /// original element is within half an fp8 ulp of it.
    pub fn passed(&self) -> bool {
        self.violations == 0 && self.bad_scales == 0
    }

    /// The half-ulp bound at the top of the format's range, in block-scale units.
    pub fn top_bound(&self) -> f64 {
        match self.format {
            Fp8Format::E4M3Fn => 16.0,
            Fp8Format::E4M3Fnuz => 8.0,
        }
    }
}

/// What `verify` found for one tensor.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// A quantized weight, with its error statistics.
    Quantized(ErrorStats),
    /// A tensor copied unchanged, and byte-identical.
    Copied,
    /// Something is wrong (missing, different, malformed).
    Failed(String),
}

/// One tensor's verdict.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorCheck {
    /// The tensor name (of the original).
    pub name: String,
    /// The verdict.
    pub outcome: Outcome,
}

impl TensorCheck {
    /// Whether this tensor passed.
    pub fn passed(&self) -> bool {
        match &self.outcome {
            Outcome::Quantized(s) => s.passed(),
            Outcome::Copied => true,
            Outcome::Failed(_) => false,
        }
    }
}

/// The outcome of [`verify`](fn@super::verify).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VerifyReport {
    /// One entry per tensor, originals in file order, then unexpected extras.
    pub checks: Vec<TensorCheck>,
}

impl VerifyReport {
    /// Whether every tensor passed.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(TensorCheck::passed)
    }

    /// The statistics of the quantized weights.
    pub fn quantized(&self) -> impl Iterator<Item = (&str, &ErrorStats)> {
        self.checks.iter().filter_map(|c| match &c.outcome {
            Outcome::Quantized(s) => Some((c.name.as_str(), s)),
            _ => None,
        })
    }
}

/// Quantized tensors listed one by one up to this many; beyond, the worst ones.
const LISTED: usize = 12;

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut quantized: Vec<(&str, &ErrorStats)> = self.quantized().collect();
        let copied = self.checks.iter().filter(|c| c.outcome == Outcome::Copied).count();
        let failed: Vec<&TensorCheck> = self.checks.iter().filter(|c| !c.passed()).collect();
        writeln!(f, "verified {} quantized and {} copied tensor(s)", quantized.len(), copied)?;
        if quantized.len() > LISTED {
            quantized.sort_by(|a, b| b.1.worst_bound_ratio.total_cmp(&a.1.worst_bound_ratio));
            writeln!(f, "  the {LISTED} with the largest error relative to the half-ulp bound:")?;
            quantized.truncate(LISTED);
        }
        if !quantized.is_empty() {
            writeln!(
                f,
                "  {:<44} {:>11} {:>11} {:>15} {:>9}",
                "tensor", "max |err|", "rel RMS", "max err/scale", "worst/bnd"
            )?;
        }
        for (name, s) in &quantized {
            writeln!(
                f,
                "  {:<44} {:>11.3e} {:>11.3e} {:>9.3} / {:<3} {:>8.1}%",
                name,
                s.max_abs_err,
                s.rel_rms_err,
                s.max_err_over_scale,
                s.top_bound(),
                100.0 * s.worst_bound_ratio
            )?;
        }
        let worst = self.quantized().map(|(_, s)| s.max_err_over_scale).fold(0.0, f64::max);
        let max_abs = self.quantized().map(|(_, s)| s.max_abs_err).fold(0.0, f64::max);
        let nonfinite: u64 = self.quantized().map(|(_, s)| s.nonfinite).sum();
        writeln!(f, "  max |err| {max_abs:.3e}; max err/scale {worst:.3} (bound: half an fp8 ulp at each code)")?;
        if !quantized.is_empty() {
            writeln!(
                f,
                "  worst/bnd: the largest error of one element over its own bound (half the fp8 spacing at its code); rounding to nearest puts it near 100% on any large tensor, and over 100% fails"
            )?;
        }
        if nonfinite > 0 {
            writeln!(f, "  {nonfinite} original element(s) are NaN or infinite and cannot be compared")?;
        }
        for c in &failed {
            match &c.outcome {
                Outcome::Quantized(s) => {
                    if let Some((r, col)) = s.first_bad_scale {
                        writeln!(
                            f,
                            "  FAIL {}: {} block scale(s) not finite and positive, the first at block ({r}, {col})",
                            c.name, s.bad_scales
                        )?;
                    }
                    if let Some((r, col)) = s.first_violation {
                        writeln!(
                            f,
                            "  FAIL {}: {} element(s) over the half-ulp bound (or not finite), the first at ({r}, {col}), worst {:.2}x the bound",
                            c.name, s.violations, s.worst_bound_ratio
                        )?;
                    }
                }
                Outcome::Failed(why) => writeln!(f, "  FAIL {}: {why}", c.name)?,
                Outcome::Copied => {}
            }
        }
        writeln!(f, "  result: {}", if failed.is_empty() { "PASS" } else { "FAIL" })
    }
}
