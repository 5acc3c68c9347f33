//! Element-wise fp8 encode/decode on the GPU, through the same conversion
//! path the quantizers use (the hardware converter on sm_90 for E4M3FN).

use super::{launch, Gpu};
use crate::error::{QuantError, Result};
use cudarc::driver::{CudaSlice, PushKernelArg};
use quant_kernels::Fp8Format;

impl Gpu {
    /// Encodes `x` into `codes` (same length), asynchronously.
    pub fn encode_fp8(
        &self,
        x: &CudaSlice<f32>,
        format: Fp8Format,
        codes: &mut CudaSlice<u8>,
    ) -> Result<()> {
        self.check_context("x", x.context())?;
        self.check_context("codes", codes.context())?;
        same_len("codes", x.len(), codes.len())?;
        self.elementwise(&format!("fp8_encode_{}", format.name()), x, codes, x.len())
    }

    /// Decodes `codes` into `y` (same length), asynchronously.
    pub fn decode_fp8(
        &self,
        codes: &CudaSlice<u8>,
        format: Fp8Format,
        y: &mut CudaSlice<f32>,
    ) -> Result<()> {
        self.check_context("codes", codes.context())?;
        self.check_context("y", y.context())?;
        same_len("y", codes.len(), y.len())?;
        self.elementwise(
            &format!("fp8_decode_{}", format.name()),
            codes,
            y,
            codes.len(),
        )
    }

    fn elementwise<A, B>(
        &self,
        name: &str,
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
        let function = self.function(name)?;
        let config = launch::linear((n as u64).div_ceil(launch::ELEMS_PER_THREAD))?;
        let n = n as u64;
        let mut builder = self.stream().launch_builder(&function);
        builder.arg(src).arg(dst).arg(&n);
        // SAFETY: matches `fp8_encode_*`/`fp8_decode_*(src, dst, n)` in
        // quant_kernels::kernels::encode; both buffers hold `n` elements.
        unsafe { builder.launch(config) }?;
        Ok(())
    }
}

fn same_len(what: &'static str, expected: usize, actual: usize) -> Result<()> {
    if expected != actual {
        return Err(QuantError::BufferLength {
            what,
            expected: expected as u64,
            actual: actual as u64,
        });
    }
    Ok(())
}
