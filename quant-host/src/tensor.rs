//! Matrices that know their shape and where they live.

use crate::error::{QuantError, Result};
use crate::shape::MatrixShape;
use cudarc::driver::{CudaSlice, DeviceRepr};

/// Where a tensor's data lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Location {
    /// Host memory.
    Cpu,
    /// Memory of the CUDA device with this ordinal.
    Cuda(usize),
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Cpu => write!(f, "cpu"),
            Location::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

/// The storage of a [`Tensor`].
#[derive(Debug)]
pub enum Storage<T> {
    /// A host vector.
    Host(Vec<T>),
    /// A device allocation.
    Cuda(CudaSlice<T>),
}

/// A row-major matrix (with a row stride) in host or device memory.
///
/// The buffer is at least [`MatrixShape::extent`] elements long: checked once,
/// at construction, so every kernel and the CPU path can trust it.
#[derive(Debug)]
pub struct Tensor<T> {
    storage: Storage<T>,
    shape: MatrixShape,
}

impl<T: DeviceRepr + Copy> Tensor<T> {
    /// Wraps a host vector.
    pub fn from_vec(data: Vec<T>, shape: MatrixShape) -> Result<Self> {
        shape.check_buffer("tensor data", data.len())?;
        Ok(Self {
            storage: Storage::Host(data),
            shape,
        })
    }

    /// Wraps a device allocation (for example one filled by another library).
    pub fn from_cuda(data: CudaSlice<T>, shape: MatrixShape) -> Result<Self> {
        shape.check_buffer("tensor data", data.len())?;
        Ok(Self {
            storage: Storage::Cuda(data),
            shape,
        })
    }

    /// The shape.
    pub fn shape(&self) -> MatrixShape {
        self.shape
    }

    /// Where the data lives.
    pub fn location(&self) -> Location {
        match &self.storage {
            Storage::Host(_) => Location::Cpu,
            Storage::Cuda(s) => Location::Cuda(s.context().ordinal()),
        }
    }

    /// The storage.
    pub fn storage(&self) -> &Storage<T> {
        &self.storage
    }

    /// The host data, if the tensor is on the host.
    pub fn as_host(&self) -> Option<&[T]> {
        match &self.storage {
            Storage::Host(v) => Some(v),
            Storage::Cuda(_) => None,
        }
    }

    /// The device data, if the tensor is on a GPU.
    pub fn as_cuda(&self) -> Option<&CudaSlice<T>> {
        match &self.storage {
            Storage::Cuda(s) => Some(s),
            Storage::Host(_) => None,
        }
    }

    pub(crate) fn host_mut(&mut self, what: &'static str) -> Result<&mut Vec<T>> {
        let location = self.location();
        match &mut self.storage {
            Storage::Host(v) => Ok(v),
            Storage::Cuda(_) => Err(wrong_device(what, Location::Cpu, location)),
        }
    }

    pub(crate) fn host(&self, what: &'static str) -> Result<&[T]> {
        self.as_host()
            .ok_or_else(|| wrong_device(what, Location::Cpu, self.location()))
    }

    pub(crate) fn cuda(&self, what: &'static str, expected: Location) -> Result<&CudaSlice<T>> {
        self.as_cuda()
            .ok_or_else(|| wrong_device(what, expected, self.location()))
    }

    pub(crate) fn cuda_mut(
        &mut self,
        what: &'static str,
        expected: Location,
    ) -> Result<&mut CudaSlice<T>> {
        let location = self.location();
        match &mut self.storage {
            Storage::Cuda(s) => Ok(s),
            Storage::Host(_) => Err(wrong_device(what, expected, location)),
        }
    }

    /// Copies the data to a host vector (`extent` elements, strides included),
    /// waiting for the device's stream where the tensor is on a GPU.
    pub fn to_vec(&self) -> Result<Vec<T>> {
        match &self.storage {
            Storage::Host(v) => Ok(v.clone()),
            Storage::Cuda(s) => Ok(s.stream().clone_dtoh(s)?),
        }
    }
}

pub(crate) fn wrong_device(what: &'static str, expected: Location, actual: Location) -> QuantError {
    QuantError::WrongDevice {
        what,
        expected: expected.to_string(),
        actual: actual.to_string(),
    }
}

/// The output of a quantizer: fp8 codes, their scales, and how to read them.
#[derive(Debug)]
pub struct Quantized {
    /// fp8 codes, `rows x cols`, dense row-major.
    pub codes: Tensor<u8>,
    /// f32 scales; their layout is given by `scheme`.
    pub scales: Tensor<f32>,
    /// How codes map to scales.
    pub scheme: Scheme,
}

/// How a quantized tensor's codes map to its scales.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scheme {
    /// Per-token groups: one scale per `group_size` elements of a row.
    TokenGroup(crate::TokenGroupConfig),
    /// Blocks: one scale per `block_rows x block_cols` block, row-major.
    Block(crate::BlockConfig),
}
