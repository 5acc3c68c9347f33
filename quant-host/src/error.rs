//! The one error type of the public API.

use quant_kernels::Fp8Format;

/// Everything that can go wrong in a call of this crate. Bad arguments are
/// reported here, never by a panic.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QuantError {
    /// The group size is not one of 32, 64, 128.
    #[error("unsupported group size {0}: expected 32, 64 or 128")]
    UnsupportedGroupSize(usize),
    /// The block shape has a zero side.
    #[error("invalid block shape {rows}x{cols}: both sides must be positive")]
    InvalidBlock {
        /// Block rows.
        rows: usize,
        /// Block columns.
        cols: usize,
    },
    /// `fp8_max` is not finite and positive, or exceeds the format's largest finite value.
    #[error("invalid fp8_max {value}: must be finite, positive and at most {max} for {}", format.name())]
    InvalidFp8Max {
        /// The value given.
        value: f32,
        /// The format's largest finite value.
        max: f32,
        /// The format.
        format: Fp8Format,
    },
    /// `eps` is not finite and positive, or so small that `eps / fp8_max`
    /// (the scale of an all-zero group) is not a normal f32.
    #[error(
        "invalid eps {0}: must be finite, positive, and at least fp8_max * 2^-126 (so eps / fp8_max is a normal f32)"
    )]
    InvalidEps(f32),
    /// The row stride is smaller than the row length.
    #[error("row stride {stride} is smaller than the number of columns {cols}")]
    StrideTooSmall {
        /// The stride given, in elements.
        stride: usize,
        /// Columns per row.
        cols: usize,
    },
    /// A buffer does not have the length its shape and layout need.
    #[error("{what}: buffer holds {actual} elements, its shape needs {expected}")]
    BufferLength {
        /// Which argument.
        what: &'static str,
        /// Elements needed.
        expected: u64,
        /// Elements present.
        actual: u64,
    },
    /// A GEMM tile the precision mode has no kernel for.
    #[error("the {precision} GEMM has no {tile} tile (it runs 128x128 only)")]
    UnsupportedGemmTile {
        /// The precision mode asked for.
        precision: &'static str,
        /// The tile asked for.
        tile: &'static str,
    },
    /// The RMSNorm `eps` (inside the square root) is not finite and positive.
    #[error("invalid RMSNorm eps {0}: must be finite and positive")]
    InvalidNormEps(f32),
    /// A row is longer than the fused RMSNorm quantizer takes.
    #[error("rms_norm rows of {cols} elements are not supported: at most {max}")]
    RowTooLong {
        /// K.
        cols: usize,
        /// The largest K.
        max: usize,
    },
    /// The packed UE8M0 scale layout holds powers of two only.
    #[error("packed UE8M0 scales need scale_mode ue8m0 (power-of-two scales)")]
    PackedNeedsUe8m0,
    /// A masked MoE layout's valid-row count exceeds the expert's rows.
    #[error("masked_m[{expert}] = {valid} exceeds the {rows} rows of each expert")]
    MaskedRows {
        /// The expert.
        expert: usize,
        /// Its `masked_m` entry.
        valid: u64,
        /// Rows per expert (`M_max`).
        rows: usize,
    },
    /// Two operands disagree on a dimension.
    #[error("shape mismatch: {0}")]
    ShapeMismatch(String),
    /// A size computation overflowed the address space.
    #[error("tensor too large: {0} overflows the address space")]
    TooLarge(&'static str),
    /// A host allocation failed: the buffer is larger than the memory the
    /// allocator can provide. Reported instead of aborting the process, so a
    /// caller can fall back (smaller batches, another device).
    #[error("cannot allocate {bytes} bytes for {what}: out of host memory")]
    OutOfMemory {
        /// Which buffer.
        what: &'static str,
        /// Bytes requested.
        bytes: u64,
    },
    /// A tensor lives on another device than the one asked to work on it.
    #[error("{what} lives on {actual}, but the operation runs on {expected}")]
    WrongDevice {
        /// Which argument.
        what: &'static str,
        /// Where the operation runs.
        expected: String,
        /// Where the tensor lives.
        actual: String,
    },
    /// An environment variable the library reads holds a value it does not
    /// know (rather than being ignored, which would hide a typo).
    #[error("environment variable {name}={value:?}: expected {expected}")]
    InvalidEnvironment {
        /// The variable.
        name: &'static str,
        /// What it holds.
        value: String,
        /// The values it may hold.
        expected: &'static str,
    },
    /// No CUDA driver library could be loaded.
    #[error("no CUDA driver found (libcuda.so could not be loaded); use the CPU backend")]
    NoDriver,
    /// The driver is present but has no device with this ordinal.
    #[error("CUDA device {ordinal} not found ({count} devices present)")]
    NoDevice {
        /// Requested ordinal.
        ordinal: usize,
        /// Devices present.
        count: usize,
    },
    /// The GPU is older than the oldest architecture the PTX is built for.
    #[error("compute capability {major}.{minor} is not supported: the kernels need 8.0 or newer")]
    UnsupportedArch {
        /// Major compute capability.
        major: i32,
        /// Minor compute capability.
        minor: i32,
    },
    /// Reading or writing a file failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// A CUDA driver call failed.
    #[error("CUDA driver error: {0}")]
    Cuda(#[from] cudarc::driver::DriverError),
}

/// `Result` with [`QuantError`].
pub type Result<T, E = QuantError> = std::result::Result<T, E>;
