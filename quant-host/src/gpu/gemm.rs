//! Host side of `mm_fp8_blockscale` on the GPU: checks, kernel choice, launch.
//!
//! Three kernels:
//! - M <= 16: a decode-sized kernel (`quant_kernels::kernels::gemm`) that
//!   streams B once and, when N alone cannot fill the GPU, splits K across
//!   CTAs with a per-`Gpu` workspace (the last CTA of each column tile reduces
//!   the partials in a fixed order, so results do not depend on scheduling);
//! - on Hopper (the sm_90a module), E4M3FN with 16-byte-aligned rows: the
//!   warp-specialised `wgmma` + TMA kernel
//!   (`quant_kernels::kernels::gemm_wgmma`), 128 x 128 tiles, persistent
//!   (see [`WGMMA_VARIANT`] for the variant kept for comparison). When the
//!   tiles cannot fill the GPU it splits K (`launch::gemm_wgmma` decides):
//!   the kernel leaves f32 partials in the same per-`Gpu` workspace and a
//!   second kernel (`quant_kernels::kernels::gemm_reduce`) adds them in
//!   split order. The tensor maps are encoded here and cached in device
//!   memory per operand ([`TensorMaps`]);
//! - otherwise the tiled `mma.sync` kernel (sm_80 and sm_90 modules, E4M3FNUZ,
//!   K not a multiple of 16, unaligned bases).
//!
//! Kernel handles and the multiprocessor count are looked up once per `Gpu`,
//! so a call costs the argument checks and the launch itself.

use super::{launch, Gpu};
use crate::error::{QuantError, Result};
use crate::gemm::{GemmConfig, GemmShape, OutputType};
use cudarc::driver::sys::{
    cuTensorMapEncodeTiled, CUtensorMap, CUtensorMapDataType, CUtensorMapFloatOOBfill, CUtensorMapInterleave,
    CUtensorMapL2promotion, CUtensorMapSwizzle,
};
use cudarc::driver::{CudaFunction, CudaSlice, DevicePtr, DevicePtrMut, PushKernelArg};
use quant_kernels::Fp8Format;

/// Every GEMM kernel of the loaded module, indexed `[format][output]`
/// (format: 0 E4M3FN, 1 E4M3FNUZ; output: 0 bf16, 1 f32).
pub(crate) struct GemmFunctions {
    main: [[CudaFunction; 2]; 2],
    small: [[CudaFunction; 2]; 2],
    /// The default `wgmma` kernel (promotion every k32, two partial sets,
    /// producer warpgroup): E4M3FN only, `[output]`; on the sm_90a module.
    wgmma_ws2k32: Option<[CudaFunction; 2]>,
    /// The same sums with one partial set and a producer warp.
    wgmma_ws32: Option<[CudaFunction; 2]>,
    /// Two partial sets, promotion every k64 (comparison only: outside
    /// the spec's tolerance on some inputs).
    wgmma_ws2: Option<[CudaFunction; 2]>,
    /// The split-K reduction of the `wgmma` kernels, `[output]`.
    split_reduce: Option<[CudaFunction; 2]>,
}

/// Which `wgmma` kernel and grid the launch uses (for the tests and the
/// benchmark's variant comparison). 0 is the default: the warp-specialised
/// 128 x 128 kernel promoting every k32 with two partial register sets,
/// persistent, K split when the tiles do not fill the GPU. Otherwise bit 0 =
/// one CTA per tile instead of a persistent grid; bits 1-2 = 2: the same
/// sums with one register set, = 3: promotion every k64 (outside the
/// spec's tolerance on some inputs: the benchmark only; any other value:
/// the default kernel); bit 3 = no `wgmma` at all (the `mma.sync` kernel);
/// bit 4 = never split K.
pub(crate) static WGMMA_VARIANT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

impl GemmFunctions {
    /// Looks every GEMM kernel up and raises the dynamic shared-memory limit
    /// of those that need more than 48 KB (a per-function setting, once).
    pub(crate) fn load(gpu: &Gpu) -> Result<Self> {
        use cudarc::driver::sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES as MAX_SMEM;
        let get = |name: &str| gpu.function(name);
        let main = [
            [get("gemm_fp8_e4m3fn_bf16")?, get("gemm_fp8_e4m3fn_f32")?],
            [get("gemm_fp8_e4m3fnuz_bf16")?, get("gemm_fp8_e4m3fnuz_f32")?],
        ];
        let small = [
            [get("gemm_small_e4m3fn_bf16")?, get("gemm_small_e4m3fn_f32")?],
            [get("gemm_small_e4m3fnuz_bf16")?, get("gemm_small_e4m3fnuz_f32")?],
        ];
        for f in main.iter().flatten() {
            f.set_attribute(MAX_SMEM, launch::GEMM_SMEM_BYTES as i32)?;
        }
        let (wgmma_ws2k32, wgmma_ws32, wgmma_ws2, split_reduce) = if gpu.ptx_arch().has_wgmma() {
            let ws2k32 = [get("gemm_wgmma_ws2k32_e4m3fn_bf16")?, get("gemm_wgmma_ws2k32_e4m3fn_f32")?];
            let ws32 = [get("gemm_wgmma_ws32_e4m3fn_bf16")?, get("gemm_wgmma_ws32_e4m3fn_f32")?];
            let ws2 = [get("gemm_wgmma_ws2_e4m3fn_bf16")?, get("gemm_wgmma_ws2_e4m3fn_f32")?];
            for f in ws2k32.iter().chain(&ws32).chain(&ws2) {
                f.set_attribute(MAX_SMEM, launch::GEMM_WGMMA_WS_SMEM_BYTES as i32)?;
            }
            let reduce = [get("gemm_splitk_reduce_bf16")?, get("gemm_splitk_reduce_f32")?];
            (Some(ws2k32), Some(ws32), Some(ws2), Some(reduce))
        } else {
            (None, None, None, None)
        };
        Ok(Self { main, small, wgmma_ws2k32, wgmma_ws32, wgmma_ws2, split_reduce })
    }
}

/// What a tensor map describes: base address, rows, K, box rows.
type MapKey = (u64, u64, u64, u32);

/// Tensor maps of the `wgmma` kernels, in a ring of slots in device memory,
/// each uploaded once per distinct operand: a model's weights and its
/// reused activation buffers hit the cache, so steady-state calls do no
/// copy (and can be captured in a CUDA graph). A miss overwrites the oldest
/// slot with a stream-ordered copy, after every launch queued before it.
pub(crate) struct TensorMaps {
    keys: Vec<Option<MapKey>>,
    next: usize,
    device: CudaSlice<u8>,
}

impl std::fmt::Debug for TensorMaps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TensorMaps").field("slots", &self.keys.len()).finish_non_exhaustive()
    }
}

/// Slots of the tensor-map cache (128 bytes each).
const MAP_SLOTS: usize = 256;

impl TensorMaps {
    fn new(stream: &std::sync::Arc<cudarc::driver::CudaStream>) -> Result<Self> {
        Ok(Self { keys: vec![None; MAP_SLOTS], next: 0, device: stream.alloc_zeros::<u8>(MAP_SLOTS * MAP_BYTES)? })
    }

    /// The slot holding the map for `key` (encoding and uploading it on a
    /// miss), not `avoid` (the other operand's slot of the same launch).
    fn slot(
        &mut self,
        stream: &std::sync::Arc<cudarc::driver::CudaStream>,
        key: MapKey,
        avoid: Option<usize>,
    ) -> Result<usize> {
        if let Some(i) = self.keys.iter().position(|k| *k == Some(key)) {
            return Ok(i);
        }
        let (ptr, rows, k, box_rows) = key;
        let map = encode_map(ptr, rows, k, box_rows)?;
        let mut i = self.next % MAP_SLOTS;
        if avoid == Some(i) {
            i = (i + 1) % MAP_SLOTS;
        }
        self.next = i + 1;
        let mut bytes = [0u8; MAP_BYTES];
        for (d, w) in bytes.chunks_exact_mut(8).zip(map.opaque) {
            d.copy_from_slice(&w.to_ne_bytes());
        }
        // Mark the slot empty until the copy is queued, so a failed copy
        // never leaves a key pointing at a stale map.
        self.keys[i] = None;
        let mut dst = self.device.slice_mut(i * MAP_BYTES..(i + 1) * MAP_BYTES);
        stream.memcpy_htod(&bytes[..], &mut dst)?;
        self.keys[i] = Some(key);
        Ok(i)
    }
}

/// Size of one `CUtensorMap`.
const MAP_BYTES: usize = std::mem::size_of::<CUtensorMap>();

/// Encodes the tensor map of a row-major `[rows, k]` u8 matrix at device
/// address `ptr`, read in boxes of `box_rows` x 128 bytes with the 128-byte
/// swizzle the `wgmma` descriptors expect; out-of-bounds box elements read
/// as zero.
fn encode_map(ptr: u64, rows: u64, k: u64, box_rows: u32) -> Result<CUtensorMap> {
    let mut map = std::mem::MaybeUninit::<CUtensorMap>::zeroed();
    let dims = [k, rows];
    let strides = [k]; // bytes between rows (dimension 1)
    let boxes = [launch::GEMM_TILE as u32, box_rows];
    let element_strides = [1u32, 1];
    // SAFETY: every pointer argument points at an array of `rank` (or
    // `rank - 1` for strides) elements; `ptr` is a device address of at
    // least rows * k bytes, 16-byte aligned, k a multiple of 16 (checked by
    // the caller); the driver only writes the 128-byte map.
    unsafe {
        cuTensorMapEncodeTiled(
            map.as_mut_ptr(),
            CUtensorMapDataType::CU_TENSOR_MAP_DATA_TYPE_UINT8,
            2,
            ptr as *mut std::ffi::c_void,
            dims.as_ptr(),
            strides.as_ptr(),
            boxes.as_ptr(),
            element_strides.as_ptr(),
            CUtensorMapInterleave::CU_TENSOR_MAP_INTERLEAVE_NONE,
            CUtensorMapSwizzle::CU_TENSOR_MAP_SWIZZLE_128B,
            CUtensorMapL2promotion::CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
            CUtensorMapFloatOOBfill::CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE,
        )
        .result()?;
        Ok(map.assume_init())
    }
}

/// The largest M the decode-sized kernel takes (`SMALL_M` in the kernel).
pub(crate) const SMALL_M: usize = 16;

/// C on the device, in the element type `GemmConfig::output` names.
#[derive(Debug)]
pub enum GpuGemmOut<'a> {
    /// bf16 output.
    Bf16(&'a mut CudaSlice<half::bf16>),
    /// f32 output.
    F32(&'a mut CudaSlice<f32>),
}

/// Scratch of the split-K GEMMs: partial sums and (decode kernel) per-tile
/// tickets. The tickets are zero between launches (each launch's last CTA
/// resets its own), so the buffers are reused across calls on the `Gpu`'s
/// stream.
#[derive(Debug)]
pub(crate) struct SplitScratch {
    partials: CudaSlice<f32>,
    tickets: CudaSlice<u32>,
}

impl SplitScratch {
    /// The scratch in `slot`, grown to at least `partials` f32 and `tickets`
    /// tickets (never shrunk: a model's GEMMs take turns with one buffer).
    fn reserve<'a>(
        slot: &'a mut Option<SplitScratch>,
        stream: &std::sync::Arc<cudarc::driver::CudaStream>,
        partials: usize,
        tickets: usize,
    ) -> Result<&'a mut SplitScratch> {
        let have = slot.as_ref().map_or((0, 0), |s| (s.partials.len(), s.tickets.len()));
        let scratch = match slot.take() {
            Some(s) if have.0 >= partials && have.1 >= tickets => s,
            // Dropping the old buffers is stream-ordered: launches still
            // queued that use them finish first. (At least one element
            // each: the driver rejects zero-byte allocations.)
            _ => SplitScratch {
                partials: stream.alloc_zeros::<f32>(partials.max(have.0).max(1))?,
                tickets: stream.alloc_zeros::<u32>(tickets.max(have.1).max(1))?,
            },
        };
        Ok(slot.insert(scratch))
    }
}

/// Queues `C = mm_fp8_blockscale(A, B)` on `gpu`'s stream.
#[allow(clippy::too_many_arguments)]
pub(crate) fn mm_fp8_blockscale(
    gpu: &Gpu,
    a: &CudaSlice<u8>,
    a_scales: &CudaSlice<f32>,
    b: &CudaSlice<u8>,
    b_scales: &CudaSlice<f32>,
    shape: GemmShape,
    cfg: &GemmConfig,
    mut c: GpuGemmOut<'_>,
) -> Result<()> {
    gpu.check_context("a", a.context())?;
    gpu.check_context("a_scales", a_scales.context())?;
    gpu.check_context("b", b.context())?;
    gpu.check_context("b_scales", b_scales.context())?;
    let (m, n, k) = (shape.m(), shape.n(), shape.k());
    check_len("a", m as u64 * k as u64, a.len())?;
    check_len("b", n as u64 * k as u64, b.len())?;
    check_len("a_scales", shape.checked_a_scales_len(cfg.a_scale_layout)?, a_scales.len())?;
    check_len("b_scales", shape.b_scales_len() as u64, b_scales.len())?;
    let out = match (&c, cfg.output) {
        (GpuGemmOut::Bf16(s), OutputType::Bf16) => {
            gpu.check_context("c", s.context())?;
            check_len("c", m as u64 * n as u64, s.len())?;
            "bf16"
        }
        (GpuGemmOut::F32(s), OutputType::F32) => {
            gpu.check_context("c", s.context())?;
            check_len("c", m as u64 * n as u64, s.len())?;
            "f32"
        }
        _ => return Err(QuantError::ShapeMismatch("output buffer type differs from cfg.output".into())),
    };
    if m == 0 || n == 0 {
        return Ok(());
    }
    // The kernels take the dimensions as u32 (and grid sizes must fit).
    let dim = |v: usize, what| u32::try_from(v).ok().filter(|&v| v < u32::MAX - 256).ok_or(QuantError::TooLarge(what));
    let (m32, n32, k32) = (dim(m, "M")?, dim(n, "N")?, dim(k, "K")?);
    let layout = cfg.a_scale_layout as u32;
    let stream = gpu.stream();
    let functions = gpu.gemm_functions()?;
    let fi = match cfg.format {
        Fp8Format::E4M3Fn => 0,
        Fp8Format::E4M3Fnuz => 1,
    };
    let oi = usize::from(out == "f32");

    if m <= SMALL_M {
        let function = &functions.small[fi][oi];
        let sms = gpu.multiprocessor_count() as u64;
        let (config, splits) = launch::gemm_small(n as u64, shape.k_blocks() as u64, sms)?;
        let mut scratch = gpu.gemm_scratch();
        if splits > 1 {
            let tiles = n.div_ceil(launch::GEMM_SMALL_N);
            SplitScratch::reserve(&mut scratch, stream, splits as usize * SMALL_M * n, tiles)?;
        }
        let mut builder = stream.launch_builder(function);
        builder.arg(a).arg(a_scales).arg(b).arg(b_scales);
        push_c(&mut builder, &mut c);
        builder.arg(&m32).arg(&n32).arg(&k32).arg(&layout);
        let null = 0u64;
        let (ws_ptr, tk_ptr);
        let guards;
        match scratch.as_mut().filter(|_| splits > 1) {
            Some(s) => {
                let (p, g1) = s.partials.device_ptr_mut(stream);
                let (t, g2) = s.tickets.device_ptr_mut(stream);
                (ws_ptr, tk_ptr) = (p, t);
                guards = Some((g1, g2));
            }
            None => {
                (ws_ptr, tk_ptr) = (null, null);
                guards = None;
            }
        }
        builder.arg(&ws_ptr).arg(&tk_ptr);
        // SAFETY: the arguments match `gemm_small_*` in
        // quant_kernels::kernels::gemm; every buffer length was checked above
        // against what the kernel indexes; M <= 16; when splits > 1 the
        // workspace holds splits * 16 * N f32 and one zeroed ticket per tile.
        unsafe { builder.launch(config) }?;
        drop(guards);
        return Ok(());
    }

    let variant = WGMMA_VARIANT.load(std::sync::atomic::Ordering::Relaxed);
    let (kernels, threads) = match (variant >> 1) & 3 {
        2 => (functions.wgmma_ws32.as_ref(), launch::GEMM_WGMMA_WS_THREADS),
        3 => (functions.wgmma_ws2.as_ref(), launch::GEMM_WGMMA_WS2_THREADS),
        _ => (functions.wgmma_ws2k32.as_ref(), launch::GEMM_WGMMA_WS2_THREADS),
    };
    let tile_m = launch::GEMM_WGMMA_TILE_M;
    if let Some(wgmma) = kernels.filter(|_| cfg.format == Fp8Format::E4M3Fn && variant & 8 == 0) {
        let (a_ptr, a_guard) = a.device_ptr(stream);
        let (b_ptr, b_guard) = b.device_ptr(stream);
        // TMA: row pitch and base 16-byte aligned, coordinates in i32.
        let tma_ok = k % 16 == 0
            && k > 0
            && a_ptr % 16 == 0
            && b_ptr % 16 == 0
            && [m, n, k].iter().all(|&d| d < (1usize << 31) - 256)
            && (m.div_ceil(tile_m as usize) as u64) * (n.div_ceil(128) as u64) < 1 << 31;
        if tma_ok {
            let mut maps = gpu.gemm_maps();
            let tm = match &mut *maps {
                Some(tm) => tm,
                slot @ None => slot.insert(TensorMaps::new(stream)?),
            };
            let sa = tm.slot(stream, (a_ptr, m as u64, k as u64, tile_m), None)?;
            let sb = tm.slot(stream, (b_ptr, n as u64, k as u64, 128), Some(sa))?;
            let (base, maps_guard) = tm.device.device_ptr(stream);
            let (map_a, map_b) = (base + (sa * MAP_BYTES) as u64, base + (sb * MAP_BYTES) as u64);
            let sms = gpu.multiprocessor_count() as u64;
            let (config, splits) = launch::gemm_wgmma(
                m as u64,
                n as u64,
                shape.k_blocks() as u64,
                sms,
                variant & 16 == 0,
                variant & 1 != 0,
                threads,
            )?;
            let mut scratch = gpu.gemm_scratch();
            let stride = quant_kernels::geometry::gemm_split_stride(m32, n32);
            let mut split = match (splits > 1, functions.split_reduce.as_ref()) {
                (true, Some(reduce)) => {
                    let len = usize::try_from(stride * splits as u64)
                        .map_err(|_| QuantError::TooLarge("split-K workspace"))?;
                    Some((SplitScratch::reserve(&mut scratch, stream, len, 0)?, reduce))
                }
                _ => None,
            };
            let splits = if split.is_some() { splits } else { 1 };
            // A split launch runs the f32 kernel into the workspace.
            let mut builder = stream.launch_builder(&wgmma[if split.is_some() { 1 } else { oi }]);
            builder.arg(&map_a).arg(&map_b).arg(a_scales).arg(b_scales);
            match &mut split {
                Some((ws, _)) => {
                    builder.arg(&mut ws.partials);
                }
                None => push_c(&mut builder, &mut c),
            }
            builder.arg(&m32).arg(&n32).arg(&k32).arg(&layout).arg(&splits);
            // SAFETY: the arguments match `gemm_wgmma_*` in
            // quant_kernels::kernels::gemm_wgmma; the two slots hold maps of
            // exactly A and B (lengths checked above: m * k and n * k bytes;
            // keyed by address, shape and box) with k > 0 and 16-byte-aligned
            // rows, and are 64-byte aligned; the scale and C lengths were
            // checked; `launch::gemm_wgmma` keeps 1 <= splits <= k-blocks
            // (at most 32), and a split launch writes to a workspace of at
            // least splits * stride f32.
            unsafe { builder.launch(config) }?;
            if let Some((ws, reduce)) = split {
                let len = m as u64 * n as u64;
                let mut builder = stream.launch_builder(&reduce[oi]);
                builder.arg(&ws.partials);
                push_c(&mut builder, &mut c);
                builder.arg(&len).arg(&stride).arg(&splits);
                // SAFETY: the arguments match `gemm_splitk_reduce_*` in
                // quant_kernels::kernels::gemm_reduce: the workspace (a
                // 256-byte-aligned allocation) holds splits * stride f32,
                // C holds len = m * n elements (checked above), and the
                // grid has a thread per 4 elements.
                unsafe { builder.launch(launch::gemm_split_reduce(len)?) }?;
            }
            drop((a_guard, b_guard, maps_guard));
            return Ok(());
        }
    }

    let function = &functions.main[fi][oi];
    let config = launch::gemm_main(m as u64, n as u64)?;
    let mut builder = stream.launch_builder(function);
    builder.arg(a).arg(a_scales).arg(b).arg(b_scales);
    push_c(&mut builder, &mut c);
    builder.arg(&m32).arg(&n32).arg(&k32).arg(&layout);
    // SAFETY: the arguments match `gemm_fp8_*` in quant_kernels::kernels::gemm
    // and every buffer length was checked above against what the kernel indexes.
    unsafe { builder.launch(config) }?;
    Ok(())
}

/// Pushes C, whichever its element type, as the next kernel argument.
fn push_c<'a>(builder: &mut cudarc::driver::LaunchArgs<'a>, c: &'a mut GpuGemmOut<'_>) {
    match c {
        GpuGemmOut::Bf16(s) => builder.arg(&mut **s),
        GpuGemmOut::F32(s) => builder.arg(&mut **s),
    };
}

fn check_len(what: &'static str, expected: u64, actual: usize) -> Result<()> {
    if actual as u64 != expected {
        return Err(QuantError::BufferLength { what, expected, actual: actual as u64 });
    }
    Ok(())
}
