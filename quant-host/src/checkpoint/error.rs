//! The error type of the checkpoint tool: every variant names the file (and,
//! where there is one, the tensor) so a failure in a 100-shard checkpoint can
//! be found without a debugger.

use crate::error::QuantError;
use std::path::PathBuf;

/// What can stop [`quantize`](fn@super::quantize) or [`verify`](fn@super::verify).
///
/// Nothing here is a panic: corrupt input, a missing shard or an unsupported
/// tensor is reported with the path and tensor name, and no output is left.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The input is neither a safetensors file nor a folder holding a checkpoint.
    #[error("{}: not a checkpoint: {reason}", path.display())]
    NotACheckpoint {
        /// The path given.
        path: PathBuf,
        /// What is missing.
        reason: String,
    },
    /// A safetensors header could not be parsed or is inconsistent.
    #[error("{}: bad safetensors header: {reason}", file.display())]
    BadHeader {
        /// The safetensors file.
        file: PathBuf,
        /// The parser's complaint.
        reason: String,
    },
    /// A tensor's data extends past the end of the file.
    #[error(
        "{}: tensor `{tensor}` ends at byte {end} of the data section, but the file holds only {available} data bytes (truncated file?)",
        file.display()
    )]
    Truncated {
        /// The safetensors file.
        file: PathBuf,
        /// The first tensor that does not fit.
        tensor: String,
        /// Where its data ends, relative to the data section.
        end: u64,
        /// Data bytes present.
        available: u64,
    },
    /// `model.safetensors.index.json` is malformed.
    #[error("{}: bad index: {reason}", file.display())]
    BadIndex {
        /// The index file.
        file: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The index names a shard file that does not exist.
    #[error("{}: shard `{shard}` named by the index does not exist", index.display())]
    MissingShard {
        /// The index file.
        index: PathBuf,
        /// The shard's file name.
        shard: String,
    },
    /// The index places a tensor in a shard that does not hold it.
    #[error("{}: tensor `{tensor}` is not in this shard, but the index places it there", file.display())]
    TensorMissing {
        /// The shard.
        file: PathBuf,
        /// The tensor.
        tensor: String,
    },
    /// A shard holds a tensor the index does not list (the index and shards disagree).
    #[error("{}: tensor `{tensor}` is not listed in the index (or listed in another shard)", file.display())]
    TensorNotIndexed {
        /// The shard.
        file: PathBuf,
        /// The tensor.
        tensor: String,
    },
    /// A selected weight has a dtype the quantizer does not take.
    #[error("{}: tensor `{tensor}` has dtype {dtype}; a weight selected for quantization must be BF16, F16 or F32", file.display())]
    UnsupportedDtype {
        /// The file holding it.
        file: PathBuf,
        /// The tensor.
        tensor: String,
        /// Its safetensors dtype.
        dtype: String,
    },
    /// A selected weight is not a matrix.
    #[error("{}: tensor `{tensor}` has shape {shape:?}; a weight selected for quantization must be 2-D [N, K]", file.display())]
    UnsupportedRank {
        /// The file holding it.
        file: PathBuf,
        /// The tensor.
        tensor: String,
        /// Its shape.
        shape: Vec<usize>,
    },
    /// Quantizing a tensor would write a name that already exists.
    #[error("{}: tensor `{tensor}` cannot be written: the checkpoint already holds a tensor of that name", file.display())]
    NameCollision {
        /// The file holding the weight being quantized.
        file: PathBuf,
        /// The output name that collides.
        tensor: String,
    },
    /// The name pattern is not a valid regular expression.
    #[error("bad name pattern `{pattern}`: {source}")]
    Pattern {
        /// The pattern given.
        pattern: String,
        /// The regex parser's complaint.
        #[source]
        source: Box<regex::Error>,
    },
    /// A JSON file (index, config) could not be parsed or has the wrong shape.
    #[error("{}: {reason}", file.display())]
    Json {
        /// The JSON file.
        file: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The quantizer rejected a tensor (or the device failed).
    #[error("{}: tensor `{tensor}`: {source}", file.display())]
    Quant {
        /// The file holding the tensor.
        file: PathBuf,
        /// The tensor.
        tensor: String,
        /// The quantizer's error.
        #[source]
        source: QuantError,
    },
    /// The output exists and overwriting was not asked for.
    #[error("{} already exists; refusing to overwrite it (use --force)", path.display())]
    OutputExists {
        /// The output path.
        path: PathBuf,
    },
    /// Writing the output would modify or delete the input.
    #[error("output {} overlaps input {}: {reason}", output.display(), input.display())]
    OutputOverlapsInput {
        /// The output path.
        output: PathBuf,
        /// The input path.
        input: PathBuf,
        /// How they overlap.
        reason: &'static str,
    },
    /// A GPU was required but none is usable.
    #[error("a GPU was requested but none is usable: {0}")]
    NoGpu(#[source] QuantError),
    /// An option is out of range (for example a zero block size).
    #[error("invalid option: {0}")]
    InvalidOption(String),
    /// A weight selected for quantization holds NaN or infinity. Its block's
    /// scale would become NaN or infinite and every other weight of the block
    /// would dequantize to NaN, so this is refused unless asked for
    /// (`QuantizeOptions::allow_nonfinite`, `--allow-nonfinite`).
    #[error(
        "{}: tensor `{tensor}` holds {count} non-finite value(s) (NaN or infinity), the first at (row {row}, col {col}); its block's scale would be non-finite and every value of that block would dequantize to NaN. Fix the weights, exclude the tensor, or pass --allow-nonfinite to quantize it anyway",
        file.display()
    )]
    NonFinite {
        /// The file holding the tensor.
        file: PathBuf,
        /// The tensor.
        tensor: String,
        /// Row of the first non-finite value.
        row: u64,
        /// Column of the first non-finite value.
        col: u64,
        /// How many values are not finite.
        count: u64,
    },
    /// Nothing in the checkpoint is selected for quantization.
    #[error("{}: nothing to quantize: {reason}", input.display())]
    NothingToQuantize {
        /// The input checkpoint.
        input: PathBuf,
        /// Why nothing was selected, and what the input looks like.
        reason: String,
    },
    /// A file of the checkpoint changed size while it was being read.
    #[error(
        "{}: the file shrank while being read: tensor `{tensor}` needs bytes up to {end}, but the file now ends before that (was it modified during the run?)",
        file.display()
    )]
    Shrunk {
        /// The file.
        file: PathBuf,
        /// The tensor being read.
        tensor: String,
        /// The end of the tensor's bytes in the file.
        end: u64,
    },
    /// A host buffer could not be allocated.
    #[error("{}: cannot allocate {bytes} bytes for {what}: out of host memory", file.display())]
    OutOfMemory {
        /// The file whose tensor needed the buffer.
        file: PathBuf,
        /// What the buffer was for.
        what: String,
        /// Its size.
        bytes: u64,
    },
    /// A header names the same tensor twice.
    #[error("{}: bad safetensors header: tensor `{tensor}` is defined more than once", file.display())]
    DuplicateTensor {
        /// The safetensors file.
        file: PathBuf,
        /// The name defined twice.
        tensor: String,
    },
    /// A path the checkpoint needs is not the kind of file it must be (a
    /// folder or a FIFO where a safetensors file belongs, a dangling link, a
    /// link to a folder among the extra files).
    #[error("{}: {reason}", path.display())]
    WrongFileKind {
        /// The path.
        path: PathBuf,
        /// What it is and what it should be.
        reason: String,
    },
    /// `--force` was given, but the existing output is not one it may replace.
    #[error("{} exists and is {what}; --force replaces only {allowed}", path.display())]
    WontReplace {
        /// The output path.
        path: PathBuf,
        /// What is there now.
        what: String,
        /// What --force may replace.
        allowed: &'static str,
    },
    /// The run was interrupted by a signal; the output was not written.
    #[error("interrupted: {} was not written", path.display())]
    Interrupted {
        /// The output path.
        path: PathBuf,
    },
    /// A bug: an invariant of the writer did not hold.
    #[error("{}: internal error: {reason}", file.display())]
    Internal {
        /// The file being written.
        file: PathBuf,
        /// What did not hold.
        reason: String,
    },
}

/// `Result` with [`CheckpointError`].
pub type Result<T, E = CheckpointError> = std::result::Result<T, E>;

/// Attaches a path to an I/O error.
pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> CheckpointError {
    let path = path.into();
    move |source| CheckpointError::Io { path, source }
}
