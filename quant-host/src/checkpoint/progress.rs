//! Progress reporting, decoupled from any terminal library: the binary draws
//! a bar, tests and library users pass [`Silent`].

/// Receives progress of a long operation, in tensors and input bytes.
pub trait Progress {
    /// The work ahead: `tensors` tensors holding `bytes` input bytes.
    fn begin(&self, _tensors: u64, _bytes: u64) {}
    /// One tensor of `bytes` input bytes is done.
    fn tensor_done(&self, _name: &str, _bytes: u64) {}
    /// All done (or stopped by an error).
    fn finish(&self) {}
}

/// Reports nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct Silent;

impl Progress for Silent {}
