//! Host side of `mm_fp8_blockscale` on the GPU: checks, kernel choice, launch.
//!
//! Four kernels:
//! - on Hopper (the sm_90a module), E4M3FN with 16-byte-aligned rows, small M
//!   and N wide enough for slabs of 24 rows or more per SM
//!   (`launch::StreamUse`): the streaming kernel
//!   (`quant_kernels::kernels::gemm_stream`), B through a deep TMA ring,
//!   `wgmma` on C transposed, no split;
//! - on Hopper otherwise, at every M: the
//!   warp-specialised `wgmma` + TMA kernels
//!   (`quant_kernels::kernels::gemm_wgmma`) in the configured precision
//!   mode, persistent, with the tile `launch::gemm_wgmma` plans for the
//!   problem (or the one the config names). When the
//!   tiles cannot fill the GPU it splits K (`launch::gemm_wgmma` decides):
//!   the kernel leaves f32 partials in the same per-`Gpu` workspace and a
//!   second kernel (`quant_kernels::kernels::gemm_reduce`) adds them in
//!   split order. The tensor maps are encoded here for every call and
//!   passed by value in the kernel's parameter block
//!   (`quant_kernels::tensor_map`): no device-side table, no copy, nothing
//!   that a later call can overwrite under a queued one;
//! - otherwise, M <= 16: a decode-sized kernel (`quant_kernels::kernels::gemm`)
//!   that streams B once and, when N alone cannot fill the GPU, splits K
//!   across CTAs with a per-`Gpu` workspace (the last CTA of each column tile
//!   reduces the partials in a fixed order, so results do not depend on
//!   scheduling);
//! - otherwise the tiled `mma.sync` kernel (sm_80 and sm_90 modules, E4M3FNUZ,
//!   K not a multiple of 16, unaligned bases).
//!
//! Kernel handles and the multiprocessor count are looked up once per `Gpu`,
//! so a call costs the argument checks and the launch itself. The
//! `mma.sync` kernels' typed launches are in `gpu::gemm_mma`.

use super::gemm_mma::{self, MmaFunctions};
use super::gemm_tail::{gemm_wgmma_parts, TailUse, WgmmaParts};
use super::{launch, Gpu};
use crate::error::{QuantError, Result};
use crate::gemm::{GemmConfig, GemmShape, OutputType};
use cudarc::driver::sys::{
    cuTensorMapEncodeTiled, CUtensorMap, CUtensorMapDataType, CUtensorMapFloatOOBfill, CUtensorMapInterleave,
    CUtensorMapL2promotion, CUtensorMapSwizzle,
};
use cudarc::driver::{CudaFunction, CudaSlice, DevicePtr, DeviceRepr, PushKernelArg};
use quant_kernels::gemm_contract::GemmMmaParams;
use quant_kernels::stream_contract::{gemm_stream_kernel, GemmStreamParams, StreamRows};
use quant_kernels::tensor_map::TensorMap;
use quant_kernels::wgmma_contract::{
    gemm_bulk_scales_tile, gemm_split_stride, gemm_splitk_reduce_kernel, gemm_wgmma_kernel,
    gemm_wgmma_multicast_kernel, GemmOut, GemmPrecision, GemmTile, GemmWgmmaParams, GEMM_CLUSTER, GEMM_EPI_COLS,
    GEMM_SMEM_LIMIT,
};
use quant_kernels::{Fp8Format, ScaleLayout};

/// Every GEMM kernel of the loaded module.
pub(crate) struct GemmFunctions {
    /// The tiled and the decode-sized `mma.sync` kernels.
    mma: MmaFunctions,
    /// The `wgmma` kernels (E4M3FN, on the sm_90a module only).
    wgmma: Option<WgmmaFunctions>,
}

/// The `wgmma` family, looked up by the names of
/// `quant_kernels::wgmma_contract::gemm_wgmma_kernel`.
struct WgmmaFunctions {
    kernels: Vec<((GemmPrecision, GemmTile, GemmOut), CudaFunction)>,
    /// The 2-CTA multicast kernels (`Fast`) by tile and output, with the
    /// most clusters of each that can be resident at once.
    multicast: Vec<((GemmTile, GemmOut), CudaFunction, u32)>,
    /// The split-K reduction, `[output]`.
    reduce: [CudaFunction; 2],
    /// The streaming GEMM (M <= 32), `[rows][precision][output]` (rows by
    /// `StreamRows::index`).
    stream: [[[CudaFunction; 2]; 2]; 2],
    /// Where it runs (`QUANT_GEMM_STREAM`, read once per `Gpu`).
    stream_use: launch::StreamUse,
    /// Whether the `wgmma` and streaming kernels are launched with PDL
    /// (`QUANT_GEMM_PDL`, read once per `Gpu`).
    pdl: launch::DependentLaunch,
    /// Whether the scale warp of the 128- and 256-row tiles may copy A's
    /// scales of a k-block with one bulk copy where their layout allows it
    /// (`GemmWgmmaParams::a_scales_bulk`).
    /// `QUANT_GEMM_NO_BULK_SCALES` (any value) keeps the per-row copies: a
    /// switch for comparing the two on a given GPU, read once per `Gpu`.
    bulk_scales: bool,
    /// Whether a problem may run as a head and a tail along M
    /// (`QUANT_GEMM_TAIL`, read once per `Gpu`).
    tail_use: TailUse,
}

impl WgmmaFunctions {
    fn get(&self, precision: GemmPrecision, tile: GemmTile, out: GemmOut) -> Option<&CudaFunction> {
        self.kernels.iter().find(|(key, _)| *key == (precision, tile, out)).map(|(_, f)| f)
    }

    fn get_multicast(&self, tile: GemmTile, out: GemmOut) -> Option<(&CudaFunction, u32)> {
        self.multicast.iter().find(|(key, _, _)| *key == (tile, out)).map(|(_, f, n)| (f, *n))
    }
}

/// The `wgmma` launches of `shape` on `gpu` (output `out`): with
/// `multicast`, the 2-CTA kernels of `wgmma` where they apply and pay;
/// without `wgmma` (a module without the Hopper kernels), the plan the
/// single-CTA kernels would have. One launch, or a head and a tail along M
/// where the head's last wave would idle (`gemm_tail`).
fn wgmma_launch_plan(
    gpu: &Gpu,
    wgmma: Option<&WgmmaFunctions>,
    shape: GemmShape,
    cfg: &GemmConfig,
    out: GemmOut,
    multicast: bool,
) -> Result<WgmmaParts> {
    let clusters =
        |t: GemmTile| wgmma.filter(|_| multicast).and_then(|w| w.get_multicast(t, out)).map(|(_, resident)| resident);
    let (m, n, kb) = (shape.m() as u64, shape.n() as u64, shape.k_blocks() as u64);
    let tail_use = wgmma.map_or(TailUse::On, |w| w.tail_use);
    gemm_wgmma_parts(m, n, kb, gpu.multiprocessor_count() as u64, cfg.precision, cfg.tile, tail_use, &clusters)
}

impl GemmFunctions {
    /// Looks every GEMM kernel up and raises the dynamic shared-memory limit
    /// of those that need more than 48 KB (a per-function setting, once).
    pub(crate) fn load(gpu: &Gpu) -> Result<Self> {
        use cudarc::driver::sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES as MAX_SMEM;
        let get = |name: &str| gpu.function(name);
        // Read on every GPU, so that a wrong value is an error everywhere,
        // not only where the streaming kernel exists.
        let stream_use = launch::StreamUse::parse(std::env::var_os(launch::StreamUse::VAR).as_deref())?;
        let pdl = launch::DependentLaunch::parse(std::env::var_os(launch::DependentLaunch::VAR).as_deref())?;
        let tail_use = TailUse::parse(std::env::var_os(TailUse::VAR).as_deref())?;
        let mma = MmaFunctions::load(gpu)?;
        let wgmma = if gpu.ptx_arch().has_wgmma() {
            let mut kernels = Vec::new();
            for precision in GemmPrecision::ALL {
                for tile in GemmTile::ALL {
                    for out in [GemmOut::Bf16, GemmOut::F32] {
                        if let Some(name) = gemm_wgmma_kernel(precision, tile, out) {
                            let f = get(name)?;
                            f.set_attribute(MAX_SMEM, tile.smem_bytes() as i32)?;
                            kernels.push(((precision, tile, out), f));
                        }
                    }
                }
            }
            let mut multicast = Vec::new();
            // `QUANT_GEMM_NO_CLUSTERS` (any value) keeps every launch on the
            // single-CTA kernels: a switch for comparing or ruling out the
            // cluster kernels on a given GPU, read once per `Gpu`.
            let clusters = std::env::var_os("QUANT_GEMM_NO_CLUSTERS").is_none();
            for tile in GemmTile::ALL.into_iter().filter(|_| clusters) {
                for out in [GemmOut::Bf16, GemmOut::F32] {
                    if let Some(name) = gemm_wgmma_multicast_kernel(tile, out) {
                        let f = get(name)?;
                        f.set_attribute(MAX_SMEM, tile.smem_bytes() as i32)?;
                        // A persistent grid must be resident all at once:
                        // clusters need their two SMs in one GPC, so fewer
                        // than SMs / 2 may fit.
                        // (A driver that cannot say runs without clusters.)
                        let resident = max_active_clusters(gpu, &f, tile.smem_bytes()).unwrap_or(0);
                        if resident > 0 {
                            multicast.push(((tile, out), f, resident));
                        }
                    }
                }
            }
            let reduce =
                [get(gemm_splitk_reduce_kernel(GemmOut::Bf16))?, get(gemm_splitk_reduce_kernel(GemmOut::F32))?];
            let stream_of = |precision, rows| -> Result<[CudaFunction; 2]> {
                Ok([
                    get(gemm_stream_kernel(precision, GemmOut::Bf16, rows))?,
                    get(gemm_stream_kernel(precision, GemmOut::F32, rows))?,
                ])
            };
            let width = |rows| -> Result<[[CudaFunction; 2]; 2]> {
                Ok([stream_of(GemmPrecision::Fast, rows)?, stream_of(GemmPrecision::Precise, rows)?])
            };
            let stream = [width(StreamRows::R16)?, width(StreamRows::R32)?];
            for f in stream.iter().flatten().flatten() {
                // Every slab's ring fits this (`StreamLayout::smem_bytes`).
                f.set_attribute(MAX_SMEM, GEMM_SMEM_LIMIT as i32)?;
            }
            let bulk_scales = std::env::var_os("QUANT_GEMM_NO_BULK_SCALES").is_none();
            Some(WgmmaFunctions { kernels, multicast, reduce, stream, stream_use, pdl, bulk_scales, tail_use })
        } else {
            None
        };
        Ok(Self { mma, wgmma })
    }
}

/// Encodes the tensor map of an fp8 operand `[rows, k]` (row-major, bytes)
/// at device address `ptr`, read in boxes of `box_rows` x 128 bytes with
/// the 128-byte swizzle the `wgmma` descriptors expect; out-of-bounds box
/// elements read as zero.
fn encode_map(ptr: u64, rows: u64, k: u64, box_rows: u32) -> Result<TensorMap> {
    let operand = TiledMap {
        data_type: CUtensorMapDataType::CU_TENSOR_MAP_DATA_TYPE_UINT8,
        dims: [k, rows],
        row_bytes: k,
        boxes: [launch::GEMM_TILE as u32, box_rows],
        swizzle: CUtensorMapSwizzle::CU_TENSOR_MAP_SWIZZLE_128B,
        promotion: CUtensorMapL2promotion::CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
    };
    // SAFETY: `ptr` is a device address of at least rows * k bytes,
    // 16-byte aligned, k a multiple of 16 (checked by the caller).
    unsafe { operand.encode(ptr) }
}

/// Encodes the tensor map of a row-major bf16 `[m, n]` C at device address
/// `ptr` for the epilogue's TMA stores: boxes of 64 rows x `GEMM_EPI_COLS`
/// columns (64 bytes a row) with the 64-byte swizzle its `stmatrix`
/// addresses follow; elements of a box past M or N are not written.
fn encode_out_map(ptr: u64, m: u64, n: u64) -> Result<TensorMap> {
    let out = TiledMap {
        data_type: CUtensorMapDataType::CU_TENSOR_MAP_DATA_TYPE_BFLOAT16,
        dims: [n, m],
        row_bytes: 2 * n,
        boxes: [GEMM_EPI_COLS, 64],
        swizzle: CUtensorMapSwizzle::CU_TENSOR_MAP_SWIZZLE_64B,
        promotion: CUtensorMapL2promotion::CU_TENSOR_MAP_L2_PROMOTION_NONE,
    };
    // SAFETY: `ptr` is a 16-byte-aligned device address of m * n bf16 with
    // n a multiple of 8, a 16-byte row pitch (checked by the caller).
    unsafe { out.encode(ptr) }
}

/// A 2-D row-major tensor as `cuTensorMapEncodeTiled` describes it: the
/// two maps of the `wgmma` kernels differ only in these fields.
struct TiledMap {
    data_type: CUtensorMapDataType,
    /// Elements per row, then rows.
    dims: [u64; 2],
    /// Bytes between rows.
    row_bytes: u64,
    /// Box elements per row, then box rows.
    boxes: [u32; 2],
    swizzle: CUtensorMapSwizzle,
    promotion: CUtensorMapL2promotion,
}

impl TiledMap {
    /// The map of this tensor at device address `ptr`.
    ///
    /// # Safety
    /// `ptr` is a device address of `dims[1]` rows `row_bytes` apart, with
    /// the base and `row_bytes` 16-byte aligned as the driver requires.
    unsafe fn encode(&self, ptr: u64) -> Result<TensorMap> {
        let mut map = std::mem::MaybeUninit::<CUtensorMap>::zeroed();
        let strides = [self.row_bytes]; // bytes between rows (dimension 1)
        let element_strides = [1u32, 1];
        // SAFETY: every pointer argument points at an array of `rank` (or
        // `rank - 1` for strides) elements; `ptr` as the caller promised;
        // the driver only writes the 128-byte map.
        unsafe {
            cuTensorMapEncodeTiled(
                map.as_mut_ptr(),
                self.data_type,
                2,
                ptr as *mut std::ffi::c_void,
                self.dims.as_ptr(),
                strides.as_ptr(),
                self.boxes.as_ptr(),
                element_strides.as_ptr(),
                CUtensorMapInterleave::CU_TENSOR_MAP_INTERLEAVE_NONE,
                self.swizzle,
                self.promotion,
                CUtensorMapFloatOOBfill::CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE,
            )
            .result()?;
            Ok(TensorMap(map.assume_init().opaque))
        }
    }
}

/// The largest M the decode-sized kernel takes (`SMALL_M` in the kernel).
pub(crate) const SMALL_M: usize = quant_kernels::geometry::GEMM_SMALL_M as usize;

/// C on the device, in the element type `GemmConfig::output` names.
#[derive(Debug)]
pub enum GpuGemmOut<'a> {
    /// bf16 output.
    Bf16(&'a mut CudaSlice<half::bf16>),
    /// f32 output.
    F32(&'a mut CudaSlice<f32>),
}

impl GpuGemmOut<'_> {
    /// The element type, as the kernel contracts name it.
    pub(crate) fn out(&self) -> GemmOut {
        match self {
            GpuGemmOut::Bf16(_) => GemmOut::Bf16,
            GpuGemmOut::F32(_) => GemmOut::F32,
        }
    }

    /// C's device address on `stream`, with the guard that records the
    /// kernel's write when dropped after the launch.
    fn device_ptr<'s>(
        &'s mut self,
        stream: &'s std::sync::Arc<cudarc::driver::CudaStream>,
    ) -> (u64, cudarc::driver::SyncOnDrop<'s>) {
        match self {
            GpuGemmOut::Bf16(s) => s.device_ptr(stream),
            GpuGemmOut::F32(s) => s.device_ptr(stream),
        }
    }
}

/// Scratch of the split-K GEMMs: partial sums and (decode kernel) per-tile
/// tickets. The tickets are zero between launches (each launch's last CTA
/// resets its own), so the buffers are reused across calls on the `Gpu`'s
/// stream.
#[derive(Debug)]
pub(crate) struct SplitScratch {
    pub(super) partials: CudaSlice<f32>,
    pub(super) tickets: CudaSlice<u32>,
}

impl SplitScratch {
    /// The scratch in `slot`, grown to at least `partials` f32 and `tickets`
    /// tickets (never shrunk: a model's GEMMs take turns with one buffer).
    pub(super) fn reserve<'a>(
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
    c: GpuGemmOut<'_>,
) -> Result<()> {
    mm_fp8_blockscale_on(gpu, a, a_scales, b, b_scales, shape, cfg, c, Path::Best)
}

/// Which kernels [`mm_fp8_blockscale_on`] may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(not(feature = "bench"), allow(dead_code))]
pub(crate) enum Path {
    /// The fastest that applies (`wgmma`, in 2-CTA clusters where the tile
    /// has such a kernel; decode-sized; `mma.sync`).
    Best,
    /// [`Path::Best`] without the cluster kernels (the benchmark's
    /// comparison).
    Unicast,
    /// The `mma.sync` kernel (or the decode-sized one for M <= 16), which
    /// sums every k-block in f32 without the tensor cores' truncation: the
    /// benchmark's on-device reference for the `wgmma` kernels' error.
    MmaSync,
}

/// [`mm_fp8_blockscale`] restricted to the kernels of `path`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn mm_fp8_blockscale_on(
    gpu: &Gpu,
    a: &CudaSlice<u8>,
    a_scales: &CudaSlice<f32>,
    b: &CudaSlice<u8>,
    b_scales: &CudaSlice<f32>,
    shape: GemmShape,
    cfg: &GemmConfig,
    mut c: GpuGemmOut<'_>,
    path: Path,
) -> Result<()> {
    cfg.check()?;
    gpu.check_context("a", a.context())?;
    gpu.check_context("a_scales", a_scales.context())?;
    gpu.check_context("b", b.context())?;
    gpu.check_context("b_scales", b_scales.context())?;
    let (m, n, k) = (shape.m(), shape.n(), shape.k());
    check_len("a", m as u64 * k as u64, a.len())?;
    check_len("b", n as u64 * k as u64, b.len())?;
    check_len("a_scales", shape.checked_a_scales_len(cfg.a_scale_layout)?, a_scales.len())?;
    check_len("b_scales", shape.b_scales_len() as u64, b_scales.len())?;
    match (&c, cfg.output) {
        (GpuGemmOut::Bf16(s), OutputType::Bf16) => {
            gpu.check_context("c", s.context())?;
            check_len("c", m as u64 * n as u64, s.len())?;
        }
        (GpuGemmOut::F32(s), OutputType::F32) => {
            gpu.check_context("c", s.context())?;
            check_len("c", m as u64 * n as u64, s.len())?;
        }
        _ => return Err(QuantError::ShapeMismatch("output buffer type differs from cfg.output".into())),
    }
    if m == 0 || n == 0 {
        return Ok(());
    }
    // The kernels take the dimensions as u32 (and grid sizes must fit).
    let dim = |v: usize, what| u32::try_from(v).ok().filter(|&v| v < u32::MAX - 256).ok_or(QuantError::TooLarge(what));
    let params = GemmMmaParams::new(dim(m, "M")?, dim(n, "N")?, dim(k, "K")?, cfg.a_scale_layout);
    let functions = gpu.gemm_functions()?;
    let ops = gemm_mma::Operands { a, a_scales, b, b_scales };

    // The Hopper kernels first; each declines (nothing queued) where TMA
    // cannot read the operands, and the `mma.sync` kernels take the problem.
    let launched = match family(gpu, functions, shape, cfg, path) {
        Family::Stream(wgmma) => launch_stream(gpu, wgmma, ops, shape, cfg, &mut c)?,
        Family::Wgmma(wgmma) => launch_wgmma(gpu, wgmma, ops, shape, cfg, &mut c, path == Path::Best)?,
        Family::MmaSync => false,
    };
    if launched {
        return Ok(());
    }

    if m <= SMALL_M {
        let sms = gpu.multiprocessor_count() as u64;
        let (config, splits) = launch::gemm_small(n as u64, shape.k_blocks() as u64, sms)?;
        let mut scratch = gpu.gemm_scratch();
        let scratch = if splits > 1 {
            let tiles = n.div_ceil(launch::GEMM_SMALL_N);
            Some(SplitScratch::reserve(&mut scratch, gpu.stream(), splits as usize * SMALL_M * n, tiles)?)
        } else {
            None
        };
        return gemm_mma::decode(gpu, &functions.mma, cfg.format, config, ops, &mut c, scratch, params);
    }

    let config = launch::gemm_main(m as u64, n as u64)?;
    gemm_mma::tiled(gpu, &functions.mma, cfg.format, config, ops, &mut c, params)
}

/// The `wgmma` path: returns `false` (nothing queued) where TMA cannot read
/// the operands (K not a multiple of 16, unaligned bases, coordinates past
/// i32), for the `mma.sync` kernel to take the problem.
fn launch_wgmma(
    gpu: &Gpu,
    wgmma: &WgmmaFunctions,
    ops: gemm_mma::Operands<'_>,
    shape: GemmShape,
    cfg: &GemmConfig,
    c: &mut GpuGemmOut<'_>,
    allow_multicast: bool,
) -> Result<bool> {
    let stream = gpu.stream();
    let (m, n, k) = (shape.m() as u64, shape.n() as u64, shape.k() as u64);
    let (a_ptr, a_guard) = ops.a.device_ptr(stream);
    let (b_ptr, b_guard) = ops.b.device_ptr(stream);
    if !tma_reads(a_ptr, b_ptr, m, n, k) {
        return Ok(false);
    }
    let out = c.out();
    let parts = wgmma_launch_plan(gpu, Some(wgmma), shape, cfg, out, allow_multicast)?;
    let (sa_ptr, sa_guard) = ops.a_scales.device_ptr(stream);
    let (sb_ptr, sb_guard) = ops.b_scales.device_ptr(stream);
    let (c_ptr, c_guard) = c.device_ptr(stream);
    let whole = Problem { a: a_ptr, a_scales: sa_ptr, b: b_ptr, b_scales: sb_ptr, c: c_ptr, shape, out };
    // The head: rows 0..head_rows (all of M without a tail); then the tail.
    launch_part(gpu, wgmma, &whole, cfg, 0..parts.head_rows, &parts.head)?;
    if let Some(tail) = &parts.tail {
        launch_part(gpu, wgmma, &whole, cfg, parts.head_rows..m, tail)?;
    }
    drop((c_guard, a_guard, b_guard, sa_guard, sb_guard));
    Ok(true)
}

/// The device addresses of one GEMM's operands (checked by the caller:
/// lengths for `shape` and `cfg`, TMA-readable A and B), and C's type.
struct Problem {
    a: u64,
    a_scales: u64,
    b: u64,
    b_scales: u64,
    c: u64,
    shape: GemmShape,
    out: GemmOut,
}

/// Queues `plan` on rows `rows` of `whole`: A's rows, A's scales and C's
/// rows from `rows.start` on as a problem of `rows.len()` rows (B whole),
/// and, for a split plan, the reduction of its partials into those rows.
fn launch_part(
    gpu: &Gpu,
    wgmma: &WgmmaFunctions,
    whole: &Problem,
    cfg: &GemmConfig,
    rows: std::ops::Range<u64>,
    plan: &launch::WgmmaPlan,
) -> Result<()> {
    let stream = gpu.stream();
    let (n, k) = (whole.shape.n() as u64, whole.shape.k() as u64);
    let kb = whole.shape.k_blocks() as u64;
    let (row0, m) = (rows.start, rows.end - rows.start);
    let out = whole.out;
    // A split launch runs the f32 kernel into the workspace.
    let kernel_out = if plan.splits > 1 { GemmOut::F32 } else { out };
    let Some(kernel) = wgmma.get(cfg.precision, plan.tile, kernel_out) else {
        return Err(QuantError::UnsupportedGemmTile { precision: cfg.precision.name(), tile: plan.tile.name() });
    };
    let multicast = match wgmma.get_multicast(plan.tile, kernel_out) {
        Some((f, _)) if plan.clustered => Some((f, plan.config.grid_dim.0)),
        _ => None,
    };
    // The part's views: rows of A (16-byte aligned, as k is a multiple of
    // 16), A's scales of those rows (the layout's strides are the whole
    // problem's), rows of C.
    let (a_scale_row_stride, a_scale_kb_stride) = a_scale_strides(cfg.a_scale_layout, whole.shape.m() as u64, kb);
    let a_ptr = whole.a + row0 * k;
    let sa_ptr = whole.a_scales + 4 * row0 * a_scale_row_stride;
    let c_rows = whole.c + row0 * n * out.bytes();
    let map_a = encode_map(a_ptr, m, k, plan.tile.rows())?;
    let map_b = encode_map(whole.b, n, k, plan.tile.cols())?;
    let (m32, n32) = (m as u32, n as u32);
    let mut scratch = gpu.gemm_scratch();
    let stride = gemm_split_stride(m32, n32);
    let split = if plan.splits > 1 {
        let len =
            usize::try_from(stride * plan.splits as u64).map_err(|_| QuantError::TooLarge("split-K workspace"))?;
        Some(SplitScratch::reserve(&mut scratch, stream, len, 0)?)
    } else {
        None
    };
    let ws = split.as_ref().map(|ws| ws.partials.device_ptr(stream));
    let c_ptr = ws.as_ref().map_or(c_rows, |(p, _)| *p);
    // The 256 x 128 tile's epilogue stores a bf16 C through TMA where the
    // map can describe it (16-byte row pitch and base); otherwise the
    // kernel stores it from registers.
    let tma_store_c =
        plan.tile.epi_bytes() > 0 && split.is_none() && out == GemmOut::Bf16 && n % 8 == 0 && c_ptr % 16 == 0;
    let map_c = if tma_store_c { encode_out_map(c_ptr, m, n)? } else { TensorMap::NONE };
    // A bulk copy reads whole tiles of scales up to the column's padded end
    // (`a_scale_kb_stride`), measured from the part's first row: only a part
    // that starts at row 0 or ends on a tile boundary stays inside the
    // buffer.
    let whole_tiles = row0 == 0 || m.is_multiple_of(plan.tile.rows() as u64);
    let a_scales_bulk =
        wgmma.bulk_scales && whole_tiles && bulk_a_scales(plan.tile, a_scale_row_stride, a_scale_kb_stride, sa_ptr);
    let params = LaunchParams(GemmWgmmaParams {
        map_a,
        map_b,
        map_c,
        a_scales: sa_ptr,
        b_scales: whole.b_scales,
        c: c_ptr,
        a_scale_row_stride,
        a_scale_kb_stride,
        m: m32,
        n: n32,
        k_blocks: kb as u32,
        splits: plan.splits,
        tma_store_c: tma_store_c as u32,
        a_scales_bulk: a_scales_bulk as u32,
    });
    let (function, config, clustered) = match multicast {
        Some((function, grid)) => (function, cluster_config(grid, plan.config.shared_mem_bytes), true),
        None => (kernel, plan.config, false),
    };
    // SAFETY: the kernel takes one `GemmWgmmaParams`, passed by value: the
    // part's rows lie inside the whole problem, whose buffers the caller
    // checked (A m * k bytes, C m * n elements, A's scales the layout's
    // length) and keeps alive with their guards, so the part's A (m rows
    // of k bytes from row0), C (m rows of n from row0) and its scales (row
    // row0 on, the whole problem's strides; a bulk copy only where it stays
    // within the column: see above) are inside them. The C map, when
    // `tma_store_c` is set, describes exactly the part's bf16 C (m x n,
    // 16-byte-aligned base and row pitch, no split); the maps of A and B
    // describe exactly the part's A and all of B, in boxes of the plan's
    // tile, with k > 0 and 16-byte-aligned rows (k a multiple of 16); the
    // kernel's parameter 0 is declared 64-byte aligned (`cargo xtask
    // build-ptx`), so the maps are; C is the kernel's output type, or the
    // workspace of splits * stride f32 (held through `scratch` until the
    // reduction is queued); `launch::gemm_wgmma` keeps 1 <= splits <=
    // k-blocks (at most 32) and gives the tile's threads, shared memory and
    // grid. The multicast kernel runs in clusters of GEMM_CLUSTER
    // consecutive CTAs, `grid` (a multiple of it, every cluster resident at
    // once) from `launch::gemm_wgmma_clusters`, which also keeps the tile
    // columns even; no split. Every `wgmma` kernel executes
    // `griddepcontrol.wait` after its barrier set-up, before any access to
    // memory, so it may be a programmatic dependent launch (`QUANT_GEMM_PDL`,
    // at small M; a tail follows the rule of the whole problem's M).
    let pdl = launch::wgmma_dependent(whole.shape.m() as u64, wgmma.pdl);
    unsafe { launch_wgmma_kernel(stream, function, &params, config, clustered, pdl) }?;
    if let Some((ws_ptr, _)) = &ws {
        let len = m * n;
        let mut builder = stream.launch_builder(&wgmma.reduce[out as usize]);
        builder.arg(ws_ptr).arg(&c_rows).arg(&len).arg(&stride).arg(&plan.splits);
        // SAFETY: the arguments match `gemm_splitk_reduce_*` in
        // quant_kernels::kernels::gemm_reduce (pointers by value): the
        // workspace (a 256-byte-aligned allocation, guarded by `ws`) holds
        // splits * stride f32, `c_rows` is the part's len = m * n elements of
        // C (inside the caller's checked and guarded buffer), and the grid
        // has a thread per 4 elements.
        unsafe { builder.launch(launch::gemm_split_reduce(len)?) }?;
    }
    drop(ws);
    Ok(())
}

/// Whether TMA can read A `[m, k]` at `a` and B `[n, k]` at `b`: row pitch
/// and bases 16-byte aligned, coordinates in i32.
fn tma_reads(a: u64, b: u64, m: u64, n: u64, k: u64) -> bool {
    k.is_multiple_of(16)
        && k > 0
        && a.is_multiple_of(16)
        && b.is_multiple_of(16)
        && [m, n, k].iter().all(|&d| d < (1u64 << 31) - 256)
}

/// `(row stride, k-block stride)` of A's scales in `layout`, in elements.
fn a_scale_strides(layout: ScaleLayout, m: u64, k_blocks: u64) -> (u64, u64) {
    match layout {
        ScaleLayout::RowMajor => (k_blocks, 1),
        ScaleLayout::ColMajor => (1, m),
        ScaleLayout::ColMajorTmaAligned => (1, ScaleLayout::ColMajorTmaAligned.padded_rows(m)),
    }
}

/// Whether `tile`'s scale warp copies A's scales of a k-block with one bulk
/// copy (`GemmWgmmaParams::a_scales_bulk`): they must be one run of 16-byte
/// aligned, 16-byte-multiple size (unit row stride, a k-block stride that is
/// a multiple of 4 floats, a 16-byte-aligned base: the column-major layouts
/// at M % 4 == 0, the TMA-aligned one always), and the tile one that has
/// the bulk path (`gemm_bulk_scales_tile`).
fn bulk_a_scales(tile: GemmTile, row_stride: u64, kb_stride: u64, base: u64) -> bool {
    gemm_bulk_scales_tile(tile.rows()) && row_stride == 1 && kb_stride.is_multiple_of(4) && base.is_multiple_of(16)
}

/// The streaming GEMM (M <= 32): returns `false` (nothing queued) where TMA
/// cannot read the operands.
fn launch_stream(
    gpu: &Gpu,
    wgmma: &WgmmaFunctions,
    ops: gemm_mma::Operands<'_>,
    shape: GemmShape,
    cfg: &GemmConfig,
    c: &mut GpuGemmOut<'_>,
) -> Result<bool> {
    let stream = gpu.stream();
    let (m, n, k) = (shape.m() as u64, shape.n() as u64, shape.k() as u64);
    let kb = shape.k_blocks() as u64;
    let (a_ptr, a_guard) = ops.a.device_ptr(stream);
    let (b_ptr, b_guard) = ops.b.device_ptr(stream);
    if !tma_reads(a_ptr, b_ptr, m, n, k) {
        return Ok(false);
    }
    let rows = StreamRows::for_m(m as u32).ok_or(QuantError::TooLarge("M of the streaming GEMM"))?;
    let (layout, config) = launch::gemm_stream(n, rows, gpu.multiprocessor_count() as u64)?;
    let map_a = encode_map(a_ptr, m, k, rows.rows())?;
    let map_b = encode_map(b_ptr, n, k, layout.slab)?;
    let (a_scale_row_stride, a_scale_kb_stride) = a_scale_strides(cfg.a_scale_layout, m, kb);
    let (sa_ptr, sa_guard) = ops.a_scales.device_ptr(stream);
    let (sb_ptr, sb_guard) = ops.b_scales.device_ptr(stream);
    let function = &wgmma.stream[rows.index()][cfg.precision as usize][c.out() as usize];
    let (c_ptr, c_guard) = c.device_ptr(stream);
    let params = StreamLaunchParams(GemmStreamParams {
        map_a,
        map_b,
        a_scales: sa_ptr,
        b_scales: sb_ptr,
        c: c_ptr,
        a_scale_row_stride,
        a_scale_kb_stride,
        m: m as u32,
        n: n as u32,
        k_blocks: kb as u32,
        slab: layout.slab,
    });
    // With PDL (`QUANT_GEMM_PDL`, on by default) its CTAs may be scheduled
    // while the kernel before it still runs (once that kernel's CTAs have
    // executed `griddepcontrol.launch_dependents` or exited), which hides
    // the launch and the prologue behind that kernel's tail.
    let mut attrs = LaunchAttrs::new(false, wgmma.pdl.stream_dependent());
    let config = launch_config_ex(stream, config, attrs.as_mut_slice());
    let arg = &params as *const StreamLaunchParams as *mut std::ffi::c_void;
    // SAFETY: the kernel takes one `GemmStreamParams`, passed by value (one
    // pointer to it): its maps describe exactly A (box `rows` rows, the
    // kernel's width) and B (box `slab` rows), with k > 0 and 16-byte-aligned
    // rows (`tma_reads`), and sit 64-byte aligned in the parameter (declared
    // so by the build); 1 <= m <= rows (`StreamRows::for_m`; the caller
    // checked m > 0) and the lengths of A, B, the scales
    // (in the layout whose strides these are) and C checked by the caller;
    // the threads, shared memory and grid (at most one CTA per slab) are the
    // slab's `StreamLayout`'s for `rows`, from `launch::gemm_stream`; the guards keep
    // the buffers alive until the launch is queued; `config`'s attribute
    // outlives the call. Under PDL the kernel waits on the grid dependency
    // (`griddepcontrol.wait`) before it reads anything but its parameters
    // or writes C.
    unsafe { launch_ex(stream, function, &config, &mut [arg]) }?;
    drop((c_guard, a_guard, b_guard, sa_guard, sb_guard));
    Ok(true)
}

/// The streaming kernel's parameter block as a launch argument.
#[derive(Clone, Copy)]
#[repr(transparent)]
struct StreamLaunchParams(GemmStreamParams);

// SAFETY: a `#[repr(C)]` struct of integers, copied into the launch's
// parameter buffer byte for byte as the kernel declares it.
unsafe impl DeviceRepr for StreamLaunchParams {}

/// The kernel that [`mm_fp8_blockscale_on`] runs for `shape` and `cfg` on
/// `gpu` along `path`, as the benchmark's report names it.
#[cfg(feature = "bench")]
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Planned {
    /// The `wgmma` tile (the head's, with a tail), `stream`, `mma.sync
    /// decode` or `mma.sync`.
    pub tile: &'static str,
    /// K splits (of the head).
    pub splits: u32,
    /// Whether 2-CTA clusters run it (the head).
    pub clustered: bool,
    /// The tail launch, where the problem runs as two: its tile, split and
    /// first row (`64x256 from row 1792`).
    pub tail: Option<String>,
}

/// What [`mm_fp8_blockscale_on`] runs for `shape` and `cfg` on `gpu` along
/// `path`. (Operands TMA cannot read, which the benchmark never makes,
/// would take `mma.sync` instead of a `wgmma` tile.)
#[cfg(feature = "bench")]
pub(crate) fn wgmma_plan(gpu: &Gpu, shape: GemmShape, cfg: &GemmConfig, path: Path) -> Result<Planned> {
    let one = |tile, splits| Planned { tile, splits, clustered: false, tail: None };
    match family(gpu, gpu.gemm_functions()?, shape, cfg, path) {
        Family::Stream(_) => Ok(one("stream", 1)),
        Family::Wgmma(wgmma) => {
            let parts = wgmma_launch_plan(gpu, Some(wgmma), shape, cfg, GemmOut::Bf16, path == Path::Best)?;
            let tail = parts.tail.map(|t| {
                let split = if t.splits > 1 { format!(" split {}", t.splits) } else { String::new() };
                let x2 = if t.clustered { " x2" } else { "" };
                format!("{}{x2}{split} from row {}", t.tile.name(), parts.head_rows)
            });
            let head = parts.head;
            Ok(Planned { tile: head.tile.name(), splits: head.splits, clustered: head.clustered, tail })
        }
        Family::MmaSync if shape.m() <= SMALL_M => {
            let sms = gpu.multiprocessor_count() as u64;
            let (_, splits) = launch::gemm_small(shape.n() as u64, shape.k_blocks() as u64, sms)?;
            Ok(one("mma.sync decode", splits))
        }
        Family::MmaSync => Ok(one("mma.sync", 1)),
    }
}

/// The kernel family [`mm_fp8_blockscale_on`] gives a problem before it
/// looks at the operands' addresses (a Hopper kernel that cannot read them
/// through TMA declines, and `mma.sync` takes the problem).
enum Family<'a> {
    /// The streaming kernel (M <= 32).
    Stream(&'a WgmmaFunctions),
    /// A `wgmma` tile.
    Wgmma(&'a WgmmaFunctions),
    /// The `mma.sync` kernels: decode-sized at M <= 16, tiled above.
    MmaSync,
}

/// The planner's choice of [`Family`], one function for the launch and
/// the benchmark's report: on Hopper (E4M3FN, not forced to `mma.sync`),
/// at M <= 32 (no forced tile) the streaming kernel where it pays
/// (`launch::StreamUse`, both modes), else `wgmma`, except `Precise` at M
/// <= 16, which takes the decode-sized `mma.sync` kernel (`Precise` has
/// only the 128-row tile).
fn family<'a>(gpu: &Gpu, functions: &'a GemmFunctions, shape: GemmShape, cfg: &GemmConfig, path: Path) -> Family<'a> {
    let hopper = functions.wgmma.as_ref().filter(|_| cfg.format == Fp8Format::E4M3Fn && path != Path::MmaSync);
    match hopper {
        Some(w) if takes_stream(gpu, w, shape, cfg) => Family::Stream(w),
        Some(_) if shape.m() <= SMALL_M && cfg.precision == GemmPrecision::Precise => Family::MmaSync,
        Some(w) => Family::Wgmma(w),
        None => Family::MmaSync,
    }
}

/// Whether the planner gives `shape` to the streaming kernel (a forced
/// tile names a `wgmma` kernel, so it never does).
fn takes_stream(gpu: &Gpu, wgmma: &WgmmaFunctions, shape: GemmShape, cfg: &GemmConfig) -> bool {
    let (m, n) = (shape.m() as u64, shape.n() as u64);
    cfg.tile.is_none() && wgmma.stream_use.takes(m, n, gpu.multiprocessor_count() as u64)
}

/// The kernel parameter block as a launch argument (passed by value).
#[derive(Clone, Copy)]
#[repr(transparent)]
struct LaunchParams(GemmWgmmaParams);

// SAFETY: a `#[repr(C)]` struct of integers, copied into the launch's
// parameter buffer byte for byte as the kernel declares it.
unsafe impl DeviceRepr for LaunchParams {}

/// The launch attribute that runs a kernel in clusters of [`GEMM_CLUSTER`]
/// CTAs along x (cudarc's launch builder sets no cluster dimension, so the
/// multicast kernels go through `cuLaunchKernelEx`).
fn cluster_attribute() -> cudarc::driver::sys::CUlaunchAttribute {
    use cudarc::driver::sys;
    // SAFETY: an all-zero launch attribute is a valid value of the C union.
    let mut attr: sys::CUlaunchAttribute = unsafe { std::mem::zeroed() };
    attr.id = sys::CUlaunchAttributeID::CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION;
    attr.value.clusterDim = sys::CUlaunchAttributeValue_union__bindgen_ty_1 { x: GEMM_CLUSTER, y: 1, z: 1 };
    attr
}

/// The launch attribute of a programmatic dependent launch (PDL): the
/// kernel's CTAs may be scheduled before the kernel queued ahead of it on
/// the stream completes (once that kernel's CTAs have executed
/// `griddepcontrol.launch_dependents` or exited). Only for kernels that
/// execute `griddepcontrol.wait` before they touch memory.
fn pdl_attribute() -> cudarc::driver::sys::CUlaunchAttribute {
    use cudarc::driver::sys;
    // SAFETY: an all-zero launch attribute is a valid value of the C union.
    let mut attr: sys::CUlaunchAttribute = unsafe { std::mem::zeroed() };
    attr.id = sys::CUlaunchAttributeID::CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION;
    attr.value.programmaticStreamSerializationAllowed = 1;
    attr
}

/// The launch attributes of a GEMM kernel that waits on its grid
/// dependency: the cluster dimension where `clustered`, then PDL where
/// `pdl`; held in place (no allocation per launch).
struct LaunchAttrs {
    attrs: [cudarc::driver::sys::CUlaunchAttribute; 2],
    /// `attrs[first..end]` are the ones that apply.
    first: usize,
    end: usize,
}

impl LaunchAttrs {
    fn new(clustered: bool, pdl: bool) -> Self {
        Self {
            attrs: [cluster_attribute(), pdl_attribute()],
            first: if clustered { 0 } else { 1 },
            end: if pdl { 2 } else { 1 },
        }
    }

    fn as_mut_slice(&mut self) -> &mut [cudarc::driver::sys::CUlaunchAttribute] {
        &mut self.attrs[self.first..self.end]
    }
}

/// The launch configuration of a multicast kernel: `grid` CTAs of
/// [`quant_kernels::wgmma_contract::GEMM_THREADS`] with `smem` bytes of
/// dynamic shared memory (the cluster dimension is a launch attribute,
/// [`cluster_attribute`]).
fn cluster_config(grid: u32, smem: u32) -> cudarc::driver::LaunchConfig {
    cudarc::driver::LaunchConfig {
        grid_dim: (grid, 1, 1),
        block_dim: (quant_kernels::wgmma_contract::GEMM_THREADS, 1, 1),
        shared_mem_bytes: smem,
    }
}

/// `config` on `stream` as `cuLaunchKernelEx` takes it, with `attrs`
/// (pointed at: they must outlive every use of the result).
fn launch_config_ex(
    stream: &cudarc::driver::CudaStream,
    config: cudarc::driver::LaunchConfig,
    attrs: &mut [cudarc::driver::sys::CUlaunchAttribute],
) -> cudarc::driver::sys::CUlaunchConfig {
    cudarc::driver::sys::CUlaunchConfig {
        gridDimX: config.grid_dim.0,
        gridDimY: config.grid_dim.1,
        gridDimZ: config.grid_dim.2,
        blockDimX: config.block_dim.0,
        blockDimY: config.block_dim.1,
        blockDimZ: config.block_dim.2,
        sharedMemBytes: config.shared_mem_bytes,
        hStream: stream.cu_stream(),
        attrs: attrs.as_mut_ptr(),
        numAttrs: attrs.len() as u32,
    }
}

/// How many 2-CTA clusters of `function` (with `smem` bytes of dynamic
/// shared memory per CTA) the GPU holds at once.
fn max_active_clusters(gpu: &Gpu, function: &CudaFunction, smem: u32) -> Result<u32> {
    let stream = gpu.stream();
    let mut attr = cluster_attribute();
    let config = launch_config_ex(stream, cluster_config(GEMM_CLUSTER, smem), std::slice::from_mut(&mut attr));
    let mut clusters: std::ffi::c_int = 0;
    stream.context().bind_to_thread()?;
    // SAFETY: `config` points at one valid attribute for the call's
    // duration; the driver writes one int.
    unsafe { cudarc::driver::sys::cuOccupancyMaxActiveClusters(&mut clusters, function.cu_function(), &config) }
        .result()?;
    Ok(clusters.max(0) as u32)
}

/// Launches the `wgmma` kernel `function(params)` on `stream` with `config`,
/// in clusters of [`GEMM_CLUSTER`] along x where `clustered`, as a
/// programmatic dependent launch where `pdl`.
///
/// # Safety
/// `function` takes one `GemmWgmmaParams` by value and executes
/// `griddepcontrol.wait` before it touches memory, `params` is valid for
/// it, `config` suits it, and the buffers it names stay alive (their guards
/// held) until the launch is queued; where `clustered`, `function` is a
/// multicast kernel and the grid a multiple of the cluster size with every
/// cluster resident at once.
unsafe fn launch_wgmma_kernel(
    stream: &std::sync::Arc<cudarc::driver::CudaStream>,
    function: &CudaFunction,
    params: &LaunchParams,
    config: cudarc::driver::LaunchConfig,
    clustered: bool,
    pdl: bool,
) -> Result<()> {
    let mut attrs = LaunchAttrs::new(clustered, pdl);
    let config = launch_config_ex(stream, config, attrs.as_mut_slice());
    launch_ex(stream, function, &config, &mut [params as *const LaunchParams as *mut std::ffi::c_void])
}

/// Launches `function` with `args` (a pointer to each argument's value)
/// through `cuLaunchKernelEx`, with `config`'s launch attributes.
///
/// # Safety
/// `args` matches `function`'s parameters and the buffers they name stay
/// alive until the launch is queued; `config` (its attributes still alive)
/// suits `function` and names `stream`.
unsafe fn launch_ex(
    stream: &std::sync::Arc<cudarc::driver::CudaStream>,
    function: &CudaFunction,
    config: &cudarc::driver::sys::CUlaunchConfig,
    args: &mut [*mut std::ffi::c_void],
) -> Result<()> {
    stream.context().bind_to_thread()?;
    cudarc::driver::sys::cuLaunchKernelEx(config, function.cu_function(), args.as_mut_ptr(), std::ptr::null_mut())
        .result()?;
    Ok(())
}

/// Pushes C, whichever its element type, as the next kernel argument.
pub(super) fn push_c<'a>(builder: &mut cudarc::driver::LaunchArgs<'a>, c: &'a mut GpuGemmOut<'_>) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use cudarc::driver::sys::CUlaunchAttributeID::{
        CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION as CLUSTER, CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION as PDL,
    };

    #[test]
    fn bulk_a_scales_only_for_aligned_runs_in_wide_tiles() {
        let (m, kb) = (4096u64, 56u64);
        let tma = ScaleLayout::ColMajorTmaAligned.padded_rows(m);
        // Column-major, aligned: the 128- and 256-row tiles take it.
        for tile in [GemmTile::M256N128, GemmTile::M128N128, GemmTile::M128N160, GemmTile::M128N192] {
            assert!(bulk_a_scales(tile, 1, m, 256), "{}", tile.name());
            assert!(bulk_a_scales(tile, 1, tma, 256), "{}", tile.name());
        }
        // The 64-row tiles copy per row.
        for tile in [GemmTile::M64N256, GemmTile::M64N128, GemmTile::M64N64, GemmTile::M64N32] {
            assert!(!bulk_a_scales(tile, 1, m, 256), "{}", tile.name());
        }
        let t = GemmTile::M256N128;
        // Row-major scales: k-blocks of one row are adjacent, rows are not.
        assert!(!bulk_a_scales(t, kb, 1, 256));
        // Column-major with M % 4 != 0: the runs of later k-blocks start off
        // a 16-byte boundary.
        assert!(!bulk_a_scales(t, 1, 4093, 256));
        assert!(bulk_a_scales(t, 1, ScaleLayout::ColMajorTmaAligned.padded_rows(4093), 256));
        // A base off a 16-byte boundary (a view into a larger buffer).
        assert!(!bulk_a_scales(t, 1, m, 260));
    }

    #[test]
    fn launch_attrs_hold_the_cluster_dimension_then_pdl() {
        for (clustered, pdl, expected) in [
            (false, false, vec![]),
            (false, true, vec![PDL]),
            (true, false, vec![CLUSTER]),
            (true, true, vec![CLUSTER, PDL]),
        ] {
            let mut attrs = LaunchAttrs::new(clustered, pdl);
            let ids: Vec<_> = attrs.as_mut_slice().iter().map(|a| a.id).collect();
            assert_eq!(ids, expected, "clustered {clustered}, pdl {pdl}");
        }
    }
}
