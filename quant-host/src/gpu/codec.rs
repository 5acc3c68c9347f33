//! Element-wise fp8 encode/decode on the GPU, through the same conversion
//! path the quantizers use (the hardware converter on sm_90 for E4M3FN).

use super::{kernel, launch, Gpu};
use crate::error::{QuantError, Result};
use cudarc::driver::CudaSlice;
use quant_kernels::abi::CodecOp;
use quant_kernels::Fp8Format;

impl Gpu {
    /// Encodes `x` into `codes` (same length), asynchronously.
    pub fn encode_fp8(&self, x: &CudaSlice<f32>, format: Fp8Format, codes: &mut CudaSlice<u8>) -> Result<()> {
        self.check_context("x", x.context())?;
        self.check_context("codes", codes.context())?;
        same_len("codes", x.len(), codes.len())?;
        self.elementwise(CodecOp::Encode, format, x, codes, x.len())
    }

    /// Decodes `codes` into `y` (same length), asynchronously.
    pub fn decode_fp8(&self, codes: &CudaSlice<u8>, format: Fp8Format, y: &mut CudaSlice<f32>) -> Result<()> {
        self.check_context("codes", codes.context())?;
        self.check_context("y", y.context())?;
        same_len("y", codes.len(), y.len())?;
        self.elementwise(CodecOp::Decode, format, codes, y, codes.len())
    }

    fn elementwise<A, B>(
        &self,
        op: CodecOp,
        format: Fp8Format,
        src: &CudaSlice<A>,
        dst: &mut CudaSlice<B>,
        n: usize,
    ) -> Result<()>
    where
        A: cudarc::driver::DeviceRepr,
        B: cudarc::driver::DeviceRepr,
    {
        if n == 0 {
            return Ok(());
        }
        let config = launch::linear((n as u64).div_ceil(launch::ELEMS_PER_THREAD))?;
        kernel::codec(self, op, format, config, src, dst, n as u64)
    }
}

fn same_len(what: &'static str, expected: usize, actual: usize) -> Result<()> {
    if expected != actual {
        return Err(QuantError::BufferLength { what, expected: expected as u64, actual: actual as u64 });
    }
    Ok(())
}
