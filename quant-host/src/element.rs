//! The input element types: bf16, f16, f32.

pub use quant_kernels::element::DType;

/// An input element of the quantizers. Sealed: implemented for
/// [`half::bf16`], [`half::f16`] and `f32`.
pub trait Element:
    Copy + Send + Sync + cudarc::driver::DeviceRepr + sealed::Sealed + 'static
{
    /// The runtime tag of this type.
    const DTYPE: DType;
    /// The exact f32 value, through the same conversion the kernels use.
    fn to_f32(self) -> f32;
    /// The nearest value of this type (round to nearest even): for building inputs.
    fn from_f32(value: f32) -> Self;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for half::bf16 {}
    impl Sealed for half::f16 {}
    impl Sealed for f32 {}
}

impl Element for half::bf16 {
    const DTYPE: DType = DType::Bf16;
    #[inline]
    fn to_f32(self) -> f32 {
        quant_kernels::element::bf16_to_f32(self.to_bits())
    }
    fn from_f32(value: f32) -> Self {
        half::bf16::from_f32(value)
    }
}

impl Element for half::f16 {
    const DTYPE: DType = DType::F16;
    #[inline]
    fn to_f32(self) -> f32 {
        quant_kernels::element::f16_to_f32(self.to_bits())
    }
    fn from_f32(value: f32) -> Self {
        half::f16::from_f32(value)
    }
}

impl Element for f32 {
    const DTYPE: DType = DType::F32;
    #[inline]
    fn to_f32(self) -> f32 {
        self
    }
    fn from_f32(value: f32) -> Self {
        value
    }
}
