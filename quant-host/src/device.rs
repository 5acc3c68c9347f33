//! One call signature for both backends: a [`Device`] value picks the CPU
//! reference or a GPU, and the same code runs on either.

use crate::config::{BlockConfig, TokenGroupConfig};
use crate::cpu;
use crate::element::Element;
use crate::error::Result;
use crate::gpu::{self, Gpu};
use crate::plan::{BlockPlan, TokenGroupPlan};
use crate::shape::MatrixShape;
use crate::tensor::{Location, Quantized, Scheme, Tensor};
use cudarc::driver::{DeviceRepr, ValidAsZeroBits};

/// Where work runs.
#[derive(Clone, Debug)]
pub enum Device {
    /// The CPU reference path.
    Cpu,
    /// A CUDA GPU; launches are asynchronous on its stream.
    Cuda(Gpu),
}

impl Device {
    /// GPU `ordinal`, or an error saying why not.
    pub fn cuda(ordinal: usize) -> Result<Self> {
        Gpu::new(ordinal).map(Device::Cuda)
    }

    /// GPU 0 where one is usable, otherwise the CPU; the error explains why
    /// the GPU was not taken.
    pub fn best_available() -> (Self, Option<crate::QuantError>) {
        match Gpu::new(0) {
            Ok(gpu) => (Device::Cuda(gpu), None),
            Err(e) => (Device::Cpu, Some(e)),
        }
    }

    /// Where tensors of this device live.
    pub fn location(&self) -> Location {
        match self {
            Device::Cpu => Location::Cpu,
            Device::Cuda(gpu) => Location::Cuda(gpu.ordinal()),
        }
    }

    /// Copies host data into a new tensor on this device.
    pub fn upload<T: DeviceRepr + Copy>(&self, data: &[T], shape: MatrixShape) -> Result<Tensor<T>> {
        shape.check_buffer("data", data.len())?;
        match self {
            Device::Cpu => Tensor::from_vec(data.to_vec(), shape),
            Device::Cuda(gpu) => Tensor::from_cuda(gpu.stream().clone_htod(data)?, shape),
        }
    }

    /// A zero-filled dense tensor on this device.
    ///
    /// The size in bytes is checked before anything is allocated: a shape
    /// whose extent fits in `usize` can still need more bytes than the
    /// address space holds (cudarc multiplies without a check), and a host
    /// allocation that fails is an [`QuantError::OutOfMemory`](crate::QuantError::OutOfMemory)
    /// error, not an abort.
    pub fn zeros<T: DeviceRepr + ValidAsZeroBits + Copy + Default>(&self, shape: MatrixShape) -> Result<Tensor<T>> {
        let len = shape.extent();
        let bytes = tensor_bytes::<T>(len)?;
        match self {
            Device::Cpu => {
                let mut data = Vec::new();
                data.try_reserve_exact(len)
                    .map_err(|_| crate::QuantError::OutOfMemory { what: "tensor", bytes: bytes as u64 })?;
                data.resize(len, T::default());
                Tensor::from_vec(data, shape)
            }
            Device::Cuda(gpu) => Tensor::from_cuda(gpu.stream().alloc_zeros::<T>(len)?, shape),
        }
    }

    /// A dense tensor on this device for an output that the call's kernel
    /// writes in full. On a GPU its memory is left unset: zeroing it would
    /// cost a memset per output (a driver call and a GPU pass of its own,
    /// and under cudarc's event tracking two event waits and a record more)
    /// for bytes the kernel overwrites anyway. On the CPU it is zero-filled
    /// as by [`Device::zeros`] (a host vector must be initialized).
    ///
    /// Only for outputs of which every element is written whenever the call
    /// returns `Ok`; a call that fails drops the tensor unread.
    fn written_output<T: AnyBits>(&self, shape: MatrixShape) -> Result<Tensor<T>> {
        match self {
            Device::Cpu => self.zeros(shape),
            Device::Cuda(gpu) => {
                let len = shape.extent();
                // cudarc multiplies `len` by the element size unchecked.
                tensor_bytes::<T>(len)?;
                // SAFETY: the memory is unset until the kernel writes it;
                // every bit pattern is a `T` (`AnyBits`), so even a read of
                // an unwritten element would be a value, not undefined
                // behaviour (the caller's kernel writes them all).
                let data = unsafe { gpu.alloc_unset::<T>(len) }?;
                Tensor::from_cuda(data, shape)
            }
        }
    }

    /// [`Device::zeros`] where `zeroed`, else [`Device::written_output`].
    fn output<T: AnyBits>(&self, shape: MatrixShape, zeroed: bool) -> Result<Tensor<T>> {
        if zeroed {
            self.zeros(shape)
        } else {
            self.written_output(shape)
        }
    }

    /// Waits for the device's queued work (a no-op on the CPU).
    pub fn synchronize(&self) -> Result<()> {
        match self {
            Device::Cpu => Ok(()),
            Device::Cuda(gpu) => gpu.synchronize(),
        }
    }

    /// Returns the GPU memory that dropped outputs of the allocating calls
    /// left cached to the device ([`crate::gpu::Gpu::release_cached_memory`];
    /// a no-op on the CPU). The outputs of `per_token_group_quant_fp8`,
    /// `per_block_quant_fp8` and `mm_fp8_blockscale` come from a pool of the
    /// device's own that keeps freed memory mapped, so a loop of calls of
    /// one size reuses it instead of mapping fresh pages each time.
    pub fn release_cached_memory(&self) -> Result<()> {
        match self {
            Device::Cpu => Ok(()),
            Device::Cuda(gpu) => gpu.release_cached_memory(),
        }
    }

    /// `per_token_group_quant_fp8` into new tensors on this device: codes
    /// `[M, K]` and scales in `cfg.layout`, described in storage order
    /// ([`TokenGroupPlan::scale_shape`]).
    pub fn per_token_group_quant_fp8<T: Element>(&self, x: &Tensor<T>, cfg: &TokenGroupConfig) -> Result<Quantized> {
        let plan = TokenGroupPlan::new(cfg, x.shape())?;
        // Neither output is zeroed first: the kernel writes every code and
        // every scale, the TMA layout's padding rows included (as zeros),
        // and an empty plan launches nothing but has no element either
        // (`TokenGroupPlan::is_empty`).
        let mut codes = self.written_output::<u8>(plan.codes_shape())?;
        let mut scales = self.written_output::<f32>(plan.scale_shape())?;
        self.run_token_group(&plan, x, &mut codes, &mut scales)?;
        Ok(Quantized { codes, scales, scheme: Scheme::TokenGroup(*cfg) })
    }

    /// `per_token_group_quant_fp8` into caller-provided tensors (no allocation).
    pub fn per_token_group_quant_fp8_into<T: Element>(
        &self,
        x: &Tensor<T>,
        cfg: &TokenGroupConfig,
        codes: &mut Tensor<u8>,
        scales: &mut Tensor<f32>,
    ) -> Result<()> {
        self.run_token_group(&TokenGroupPlan::new(cfg, x.shape())?, x, codes, scales)
    }

    fn run_token_group<T: Element>(
        &self,
        plan: &TokenGroupPlan,
        x: &Tensor<T>,
        codes: &mut Tensor<u8>,
        scales: &mut Tensor<f32>,
    ) -> Result<()> {
        match self {
            Device::Cpu => cpu::per_token_group_quant_fp8_planned(
                plan,
                x.host("x")?,
                codes.host_mut("codes")?,
                scales.host_mut("scales")?,
            ),
            Device::Cuda(g) => {
                let here = self.location();
                gpu::per_token_group_quant_planned(
                    g,
                    plan,
                    x.cuda("x", here)?,
                    codes.cuda_mut("codes", here)?,
                    scales.cuda_mut("scales", here)?,
                )
            }
        }
    }

    /// `per_block_quant_fp8` into new tensors on this device: codes `[N, K]`
    /// and scales `[ceil(N / block_rows), ceil(K / block_cols)]`.
    ///
    /// On a GPU the outputs come from the device's own memory pool
    /// ([`Device::release_cached_memory`]), which keeps the memory of dropped
    /// outputs mapped: in a loop of one size the allocation costs little
    /// (7168 x 18432 on an H200: 113.6 us per call against 110.2 us for
    /// [`Device::per_block_quant_fp8_into`]; 244 us before the pool,
    /// bench/NOTES-quant.md, session 30). The `_into` form still saves the
    /// allocation and the first call's mapping of fresh memory.
    pub fn per_block_quant_fp8<T: Element>(&self, w: &Tensor<T>, cfg: &BlockConfig) -> Result<Quantized> {
        let plan = BlockPlan::new(cfg, w.shape())?;
        // Neither output is zeroed first: the kernel writes every code and
        // every block's scale (a memset would be a pass of its own over the
        // codes, 132 MB for a 7168 x 18432 weight).
        let mut codes = self.written_output::<u8>(plan.codes_shape())?;
        let mut scales = self.written_output::<f32>(plan.scale_shape())?;
        self.run_block(&plan, w, &mut codes, &mut scales)?;
        Ok(Quantized { codes, scales, scheme: Scheme::Block(*cfg) })
    }

    /// `per_block_quant_fp8` into caller-provided tensors (no allocation).
    pub fn per_block_quant_fp8_into<T: Element>(
        &self,
        w: &Tensor<T>,
        cfg: &BlockConfig,
        codes: &mut Tensor<u8>,
        scales: &mut Tensor<f32>,
    ) -> Result<()> {
        self.run_block(&BlockPlan::new(cfg, w.shape())?, w, codes, scales)
    }

    fn run_block<T: Element>(
        &self,
        plan: &BlockPlan,
        w: &Tensor<T>,
        codes: &mut Tensor<u8>,
        scales: &mut Tensor<f32>,
    ) -> Result<()> {
        match self {
            Device::Cpu => cpu::per_block_quant_fp8_planned(
                plan,
                w.host("w")?,
                codes.host_mut("codes")?,
                scales.host_mut("scales")?,
            ),
            Device::Cuda(g) => {
                let here = self.location();
                gpu::per_block_quant_planned(
                    g,
                    plan,
                    w.cuda("w", here)?,
                    codes.cuda_mut("codes", here)?,
                    scales.cuda_mut("scales", here)?,
                )
            }
        }
    }
}

/// `mm_fp8_blockscale` (see `crate::gemm`).
impl Device {
    /// `C[M, N] = mm_fp8_blockscale(A, B)` into a new tensor on this device.
    ///
    /// `a` is `[M, K]` and `b` `[N, K]`, both dense fp8 codes in `cfg.format`;
    /// `a_scales` holds `ceil(K/128)` scales per row of A in
    /// `cfg.a_scale_layout` and `b_scales` the `[ceil(N/128), ceil(K/128)]`
    /// row-major block scales of B. On a GPU the launch is asynchronous, and
    /// C is a fresh allocation per call: in a loop, reuse one C with
    /// [`Device::mm_fp8_blockscale_into`].
    pub fn mm_fp8_blockscale(
        &self,
        a: &Tensor<u8>,
        a_scales: &Tensor<f32>,
        b: &Tensor<u8>,
        b_scales: &Tensor<f32>,
        cfg: &crate::GemmConfig,
    ) -> Result<crate::gemm::GemmTensor> {
        let shape = MatrixShape::new(a.shape().rows(), b.shape().rows())?;
        // The kernels write every element of C when K > 0, so C is not
        // zeroed first (a memset would be a pass of its own, 59 MB for a
        // 4096 x 7168 bf16 C). With K = 0, C is the empty sum, and the
        // zeroed allocation holds it whatever the kernels do with no
        // k-block (no GPU test reaches that case).
        let zeroed = a.shape().cols() == 0;
        let mut c = match cfg.output {
            crate::OutputType::Bf16 => crate::gemm::GemmTensor::Bf16(self.output(shape, zeroed)?),
            crate::OutputType::F32 => crate::gemm::GemmTensor::F32(self.output(shape, zeroed)?),
        };
        self.mm_fp8_blockscale_into(a, a_scales, b, b_scales, cfg, &mut c)?;
        Ok(c)
    }

    /// [`Device::mm_fp8_blockscale`] into a caller-provided dense `[M, N]` C
    /// whose type matches `cfg.output` (no allocation).
    pub fn mm_fp8_blockscale_into(
        &self,
        a: &Tensor<u8>,
        a_scales: &Tensor<f32>,
        b: &Tensor<u8>,
        b_scales: &Tensor<f32>,
        cfg: &crate::GemmConfig,
        c: &mut crate::gemm::GemmTensor,
    ) -> Result<()> {
        use crate::gemm::{GemmOutput, GemmShape, GemmTensor};
        let (sa, sb, sc) = (a.shape(), b.shape(), c.shape());
        if sa.cols() != sb.cols() {
            return Err(crate::QuantError::ShapeMismatch(format!("A has K = {}, B has K = {}", sa.cols(), sb.cols())));
        }
        if !sa.is_dense() || !sb.is_dense() || !sc.is_dense() {
            return Err(crate::QuantError::ShapeMismatch("A, B and C must be dense (row stride == columns)".into()));
        }
        if (sc.rows(), sc.cols()) != (sa.rows(), sb.rows()) {
            return Err(crate::QuantError::ShapeMismatch(format!(
                "C is {}x{}, A x B^T is {}x{}",
                sc.rows(),
                sc.cols(),
                sa.rows(),
                sb.rows()
            )));
        }
        let shape = GemmShape::new(sa.rows(), sb.rows(), sa.cols())?;
        match self {
            Device::Cpu => {
                let out = match c {
                    GemmTensor::Bf16(t) => GemmOutput::Bf16(t.host_mut("c")?),
                    GemmTensor::F32(t) => GemmOutput::F32(t.host_mut("c")?),
                };
                cpu::mm_fp8_blockscale(
                    a.host("a")?,
                    a_scales.host("a_scales")?,
                    b.host("b")?,
                    b_scales.host("b_scales")?,
                    shape,
                    cfg,
                    cpu::Accumulation::F32,
                    out,
                )
            }
            Device::Cuda(g) => {
                let here = self.location();
                let out = match c {
                    GemmTensor::Bf16(t) => gpu::GpuGemmOut::Bf16(t.cuda_mut("c", here)?),
                    GemmTensor::F32(t) => gpu::GpuGemmOut::F32(t.cuda_mut("c", here)?),
                };
                gpu::mm_fp8_blockscale(
                    g,
                    a.cuda("a", here)?,
                    a_scales.cuda("a_scales", here)?,
                    b.cuda("b", here)?,
                    b_scales.cuda("b_scales", here)?,
                    shape,
                    cfg,
                    out,
                )
            }
        }
    }
}

/// The bytes of a tensor of `len` elements of `T`, or an error where they
/// exceed what one allocation may hold.
fn tensor_bytes<T>(len: usize) -> Result<usize> {
    len.checked_mul(std::mem::size_of::<T>())
        .filter(|&b| b <= isize::MAX as usize)
        .ok_or(crate::QuantError::TooLarge("tensor bytes"))
}

/// Element types of which every bit pattern is a value, so a device buffer
/// left unset still holds valid elements ([`Device::written_output`]).
trait AnyBits: DeviceRepr + ValidAsZeroBits + Copy + Default {}
impl AnyBits for u8 {}
impl AnyBits for f32 {}
impl AnyBits for half::bf16 {}
