//! The GPU side of the quantizer stage: page-locked staging, three streams,
//! and [`GPU_IN_FLIGHT`] weights in flight.
//!
//! Each weight goes upload (its stream) -> kernel (the `Gpu`'s stream) ->
//! download (its stream), ordered by events, so while one weight's kernel
//! runs the next one uploads and the previous one downloads. Device buffers
//! live in one slot per weight in flight and are reused while the shapes
//! repeat (a checkpoint has thousands of weights and a handful of shapes).
//!
//! Host buffers given to a transfer are fenced (see [`HostBuf`]): whoever
//! touches or frees one next waits for the transfer first, so no path, an
//! error included, can reuse or free memory a copy engine is still reading.

use super::quantizer_stage::{output_sizes, EngineTimes, Finished, Job, GPU_IN_FLIGHT};
use super::staging::HostBuf;
use crate::config::BlockConfig;
use crate::element::{DType, Element};
use crate::error::{QuantError, Result};
use crate::gpu::{self, Gpu};
use crate::shape::MatrixShape;
use cudarc::driver::sys::CUevent_flags;
use cudarc::driver::{result, CudaEvent, CudaSlice, CudaStream, DevicePtr, DevicePtrMut};
use half::{bf16, f16};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

/// The GPU engine.
pub struct GpuEngine {
    gpu: Gpu,
    upload: Arc<CudaStream>,
    download: Arc<CudaStream>,
    cfg: BlockConfig,
    slots: Vec<Slot>,
    /// Slots not used by a job in flight.
    free: Vec<usize>,
    in_flight: VecDeque<InFlight>,
    times: EngineTimes,
}

impl std::fmt::Debug for GpuEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuEngine").field("gpu", &self.gpu).field("in_flight", &self.in_flight.len()).finish()
    }
}

/// Device buffers of one weight in flight.
#[derive(Default)]
struct Slot {
    input: Option<DeviceInput>,
    output: Option<DeviceOutput>,
}

/// Codes and scales of one shape, exactly sized (the kernel checks).
struct DeviceOutput {
    shape: (usize, usize),
    codes: CudaSlice<u8>,
    scales: CudaSlice<f32>,
}

/// The input of a slot, in the element type of its last weight.
enum DeviceInput {
    Bf16(CudaSlice<bf16>),
    F16(CudaSlice<f16>),
    F32(CudaSlice<f32>),
}

/// A job queued on the GPU.
struct InFlight {
    tag: usize,
    slot: usize,
    input: HostBuf,
    output: HostBuf,
    codes_len: usize,
    /// Before the upload, after it, after the kernel, after the download.
    marks: [CudaEvent; 4],
}

/// An event that records time (cudarc's default disables timing).
fn mark(stream: &CudaStream) -> Result<CudaEvent> {
    Ok(stream.record_event(Some(CUevent_flags::CU_EVENT_DEFAULT))?)
}

/// A fence: an event after the transfers queued so far on `stream`.
fn fence(stream: &CudaStream) -> Result<CudaEvent> {
    Ok(stream.record_event(None)?)
}

impl GpuEngine {
    /// An engine on `gpu` (kernels on its stream) with two new streams for transfers.
    pub fn new(gpu: &Gpu, cfg: BlockConfig) -> Result<Self> {
        let ctx = gpu.stream().context();
        Ok(Self {
            gpu: gpu.clone(),
            upload: ctx.new_stream()?,
            download: ctx.new_stream()?,
            cfg,
            slots: (0..GPU_IN_FLIGHT).map(|_| Slot::default()).collect(),
            free: (0..GPU_IN_FLIGHT).rev().collect(),
            in_flight: VecDeque::new(),
            times: EngineTimes::default(),
        })
    }

    /// A page-locked staging buffer.
    pub fn staging(&self, capacity: usize) -> Result<HostBuf> {
        HostBuf::pinned(self.gpu.stream().context(), capacity)
    }

    /// Jobs in flight.
    pub fn pending(&self) -> usize {
        self.in_flight.len()
    }

    /// Time so far: kernels, and uploads plus downloads (per job, from the
    /// GPU's own clock; they overlap one another, so they are busy times).
    pub fn times(&self) -> EngineTimes {
        self.times
    }

    /// Queues `job`; finishes and returns the oldest job first if all slots are busy.
    pub fn submit(&mut self, mut job: Job, mut output: HostBuf) -> Result<Option<Finished>> {
        let finished = if self.free.is_empty() { self.finish_oldest()? } else { None };
        let slot = self.free.pop().ok_or(QuantError::ShapeMismatch("no free GPU slot".into()))?;
        match self.queue(slot, &mut job, &mut output) {
            Ok((codes_len, marks)) => {
                self.in_flight.push_back(InFlight { tag: job.tag, slot, input: job.input, output, codes_len, marks });
                Ok(finished)
            }
            Err(e) => {
                // Part of the job may be queued: let it drain before the
                // buffers are dropped (their fences cover only whole jobs).
                self.free.push(slot);
                self.drain();
                Err(e)
            }
        }
    }

    /// Waits for the oldest job and returns it.
    pub fn finish_oldest(&mut self) -> Result<Option<Finished>> {
        let Some(job) = self.in_flight.pop_front() else { return Ok(None) };
        self.free.push(job.slot);
        let [start, uploaded, computed, downloaded] = &job.marks;
        downloaded.synchronize()?;
        let ms = |a: &CudaEvent, b: &CudaEvent| -> Result<Duration> {
            Ok(Duration::from_secs_f64(f64::from(a.elapsed_ms(b)?.max(0.0)) / 1e3))
        };
        self.times.transfers += ms(start, uploaded)? + ms(computed, downloaded)?;
        self.times.compute += ms(uploaded, computed)?;
        Ok(Some(Finished { tag: job.tag, input: job.input, output: job.output, codes_len: job.codes_len }))
    }

    /// Queues the upload, the kernel and the download of `job` in `slot`.
    fn queue(&mut self, slot: usize, job: &mut Job, output: &mut HostBuf) -> Result<(usize, [CudaEvent; 4])> {
        let (rows, cols) = (job.rows, job.cols);
        let shape = MatrixShape::new(rows, cols)?;
        let (codes_len, scales_len) = output_sizes(rows, cols, &self.cfg)?;
        let in_bytes = job.input.len();
        if in_bytes as u64 != shape.numel() as u64 * job.dtype.size() as u64 {
            return Err(QuantError::BufferLength {
                what: "weight bytes",
                expected: shape.numel() as u64 * job.dtype.size() as u64,
                actual: in_bytes as u64,
            });
        }
        let compute = self.gpu.stream().clone();
        let Slot { input, output: outputs } = &mut self.slots[slot];

        // Device buffers: the input grows to the largest weight of its type,
        // the outputs follow the shape.
        let elements = shape.numel().max(1);
        let fits = match (job.dtype, &*input) {
            (DType::Bf16, Some(DeviceInput::Bf16(d))) => d.len() >= elements,
            (DType::F16, Some(DeviceInput::F16(d))) => d.len() >= elements,
            (DType::F32, Some(DeviceInput::F32(d))) => d.len() >= elements,
            _ => false,
        };
        if !fits {
            *input = Some(match job.dtype {
                DType::Bf16 => DeviceInput::Bf16(self.upload.alloc_zeros(elements)?),
                DType::F16 => DeviceInput::F16(self.upload.alloc_zeros(elements)?),
                DType::F32 => DeviceInput::F32(self.upload.alloc_zeros(elements)?),
            });
        }
        if outputs.as_ref().is_none_or(|o| o.shape != (rows, cols)) {
            // Never a zero-length allocation (the driver rejects it); an
            // empty weight never reaches the engine.
            let scale_shape = (rows.div_ceil(self.cfg.block_rows), cols.div_ceil(self.cfg.block_cols));
            *outputs = None;
            *outputs = Some(DeviceOutput {
                shape: (rows, cols),
                codes: compute.alloc_zeros::<u8>(codes_len.max(1))?,
                scales: compute.alloc_zeros::<f32>((scale_shape.0 * scale_shape.1).max(1))?,
            });
        }
        let (Some(device_input), Some(DeviceOutput { codes, scales, .. })) = (input.as_mut(), outputs.as_mut()) else {
            return Err(QuantError::ShapeMismatch("GPU slot buffers missing".into()));
        };

        // Upload.
        let start = mark(&self.upload)?;
        let host = job.input.pinned_mut(0..in_bytes)?;
        match device_input {
            DeviceInput::Bf16(d) => upload_bytes(&self.upload, host, d)?,
            DeviceInput::F16(d) => upload_bytes(&self.upload, host, d)?,
            DeviceInput::F32(d) => upload_bytes(&self.upload, host, d)?,
        }
        let uploaded = mark(&self.upload)?;
        job.input.set_fence(fence(&self.upload)?);

        // Kernel, once the upload is done.
        compute.wait(&uploaded)?;
        match device_input {
            DeviceInput::Bf16(d) => launch(&self.gpu, d, shape, &self.cfg, codes, scales)?,
            DeviceInput::F16(d) => launch(&self.gpu, d, shape, &self.cfg, codes, scales)?,
            DeviceInput::F32(d) => launch(&self.gpu, d, shape, &self.cfg, codes, scales)?,
        }
        let computed = mark(&compute)?;

        // Download, once the kernel is done.
        self.download.wait(&computed)?;
        output.fill(codes_len + scales_len)?;
        download_bytes(&self.download, codes, output.pinned_mut(0..codes_len)?)?;
        download_bytes(&self.download, scales, output.pinned_mut(codes_len..codes_len + scales_len)?)?;
        let downloaded = mark(&self.download)?;
        output.set_fence(fence(&self.download)?);
        Ok((codes_len, [start, uploaded, computed, downloaded]))
    }

    /// Waits for everything queued (errors are recorded in the context).
    fn drain(&self) {
        for stream in [&self.upload, self.gpu.stream(), &self.download] {
            stream.context().record_err(stream.synchronize());
        }
    }
}

impl Drop for GpuEngine {
    fn drop(&mut self) {
        // Jobs still in flight hold fenced host buffers, which wait for
        // themselves; the device buffers are freed in stream order by cudarc.
        self.drain();
    }
}

/// Queues the kernel of one weight (a typed front to `gpu::per_block_quant`,
/// which checks every length).
fn launch<T: Element>(
    gpu: &Gpu,
    w: &CudaSlice<T>,
    shape: MatrixShape,
    cfg: &BlockConfig,
    codes: &mut CudaSlice<u8>,
    scales: &mut CudaSlice<f32>,
) -> Result<()> {
    gpu::per_block_quant(gpu, w, shape, cfg, codes, scales)
}

/// Queues the copy of `host` (little-endian elements) into the start of `device`.
fn upload_bytes<T>(stream: &Arc<CudaStream>, host: &[u8], device: &mut CudaSlice<T>) -> Result<()> {
    if host.len() > device.num_bytes() {
        return Err(QuantError::BufferLength {
            what: "device input",
            expected: host.len() as u64,
            actual: device.num_bytes() as u64,
        });
    }
    let (ptr, _record) = device.device_ptr_mut(stream);
    // SAFETY: `ptr` has at least `host.len()` bytes (checked above); `host` is
    // page-locked and fenced by the caller after this copy, so it stays
    // allocated and unwritten until the copy has run.
    unsafe { result::memcpy_htod_async(ptr, host, stream.cu_stream()) }?;
    Ok(())
}

/// Queues the copy of the first `host.len()` bytes of `device` into `host`.
fn download_bytes<T>(stream: &Arc<CudaStream>, device: &CudaSlice<T>, host: &mut [u8]) -> Result<()> {
    if host.len() > device.num_bytes() {
        return Err(QuantError::BufferLength {
            what: "device output",
            expected: host.len() as u64,
            actual: device.num_bytes() as u64,
        });
    }
    let (ptr, _record) = device.device_ptr(stream);
    // SAFETY: `device` holds at least `host.len()` bytes (checked above);
    // `host` is page-locked and fenced by the caller after this copy.
    unsafe { result::memcpy_dtoh_async(host, ptr, stream.cu_stream()) }?;
    Ok(())
}
