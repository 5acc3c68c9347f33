//! cuBLASLt's block-scaled fp8 GEMM, the GEMM section's peer column: in
//! this process, on the same operands and in the same graph harness as
//! `mm_fp8_blockscale`, so the two figures share a machine, a moment and a
//! way of timing (the peers' Python scripts time theirs their own way).
//!
//! cuBLAS is column-major. This crate's row-major `C[M, N] = A[M, K] B[N,
//! K]^T` is cuBLAS's `C^T[N, M] = op(B) A^T`: cuBLAS's first operand is our
//! B (stored `[K, N]` column-major, transposed: `T`), its second is our A
//! (`[K, M]` column-major, `N`). That is the "TN" form its fp8 kernels
//! require. The scales, in the modes cuBLAS 12.9 added, are our B's 128 x
//! 128 blocks (`[ceil(N / 128), ceil(K / 128)]` row-major, as
//! `per_block_quant_fp8` writes them) as `BLK128x128_32F` and our A's 1 x
//! 128 groups in the TMA-aligned column-major layout
//! (`ScaleLayout::ColMajorTmaAligned`) as `VEC128_32F`: what torch's
//! `_scaled_mm` hands cuBLASLt. cuBLASLt rejects some shapes (M = 1 among
//! them); the column then says so instead of a figure.

use super::timing;
use crate::error::{QuantError, Result};
use cudarc::cublaslt::{result as lt, sys};
use cudarc::driver::sys::CUresult;
use cudarc::driver::{CudaSlice, CudaStream, DevicePtr, DevicePtrMut, DriverError};
use half::bf16;
use std::cell::Cell;
use std::ffi::c_void;
use std::sync::Arc;

/// `cublasLtMatmulMatrixScale_t` values of cuBLAS 12.9, which cudarc's
/// CUDA 12.8 bindings predate (the attribute is an `int32_t`).
const SCALE_VEC128_32F: i32 = 4;
const SCALE_BLK128X128_32F: i32 = 5;
/// `cublasOperation_t` (cuBLAS's, which cudarc's cuBLASLt bindings do not
/// re-export; the attributes are `int32_t`).
const OP_N: i32 = 0;
const OP_T: i32 = 1;
/// Workspace offered to the heuristic.
const WORKSPACE_BYTES: usize = 32 << 20;

/// One problem's cuBLASLt plan: handle, descriptor (with the scale
/// pointers and modes), layouts, the heuristic's first algorithm and its
/// workspace.
pub(crate) struct BlockScaledLt {
    handle: sys::cublasLtHandle_t,
    desc: sys::cublasLtMatmulDesc_t,
    /// cuBLAS's A (our B), B (our A), and C = D.
    layouts: [sys::cublasLtMatrixLayout_t; 3],
    algo: sys::cublasLtMatmulAlgo_t,
    workspace: CudaSlice<u8>,
    stream: Arc<CudaStream>,
}

/// Why cuBLASLt has no figure for a problem.
pub(crate) type Refusal = String;

impl BlockScaledLt {
    /// The plan for `m x n x k` with A's scales at `a_scales` (TMA-aligned
    /// column-major) and B's at `b_scales`; `Err` where the library is
    /// absent or refuses the problem.
    pub(crate) fn new(
        stream: &Arc<CudaStream>,
        m: usize,
        n: usize,
        k: usize,
        a_scales: &CudaSlice<f32>,
        b_scales: &CudaSlice<f32>,
    ) -> std::result::Result<Self, Refusal> {
        // SAFETY: only probes whether the shared library can be loaded.
        if !unsafe { sys::is_culib_present() } {
            return Err("libcublasLt not found".into());
        }
        let err = |what: &'static str| move |e: lt::CublasError| format!("{what}: {e:?}");
        let handle = lt::create_handle().map_err(err("cublasLtCreate"))?;
        // From here every handle made is owned by `plan`, whose drop frees
        // whatever was created if a later step fails.
        let mut plan = Partial { handle: Some(handle), desc: None, layouts: Vec::new() };
        let desc = lt::create_matmul_desc(sys::cublasComputeType_t::CUBLAS_COMPUTE_32F, sys::cudaDataType::CUDA_R_32F)
            .map_err(err("cublasLtMatmulDescCreate"))?;
        plan.desc = Some(desc);
        let (a_sc, _g1) = a_scales.device_ptr(stream);
        let (b_sc, _g2) = b_scales.device_ptr(stream);
        use sys::cublasLtMatmulDescAttributes_t as A;
        // SAFETY: each buffer is the attribute's documented type and size;
        // the scale pointers are device addresses that outlive the plan
        // (the caller keeps the scales for every launch).
        unsafe {
            set(desc, A::CUBLASLT_MATMUL_DESC_TRANSA, &OP_T).map_err(err("TRANSA"))?;
            set(desc, A::CUBLASLT_MATMUL_DESC_TRANSB, &OP_N).map_err(err("TRANSB"))?;
            set(desc, A::CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &b_sc).map_err(err("A_SCALE_POINTER"))?;
            set(desc, A::CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &a_sc).map_err(err("B_SCALE_POINTER"))?;
            set(desc, A::CUBLASLT_MATMUL_DESC_A_SCALE_MODE, &SCALE_BLK128X128_32F)
                .map_err(err("A_SCALE_MODE BLK128x128_32F (cuBLAS 12.9 or later)"))?;
            set(desc, A::CUBLASLT_MATMUL_DESC_B_SCALE_MODE, &SCALE_VEC128_32F)
                .map_err(err("B_SCALE_MODE VEC128_32F (cuBLAS 12.9 or later)"))?;
        }
        let dim = |v: usize| v as u64;
        let ld = |v: usize| v as i64;
        let e4m3 = sys::cudaDataType::CUDA_R_8F_E4M3;
        let layout = |t, rows, cols, l| lt::create_matrix_layout(t, rows, cols, l).map_err(err("layout"));
        plan.layouts.push(layout(e4m3, dim(k), dim(n), ld(k))?);
        plan.layouts.push(layout(e4m3, dim(k), dim(m), ld(k))?);
        plan.layouts.push(layout(sys::cudaDataType::CUDA_R_16BF, dim(n), dim(m), ld(n))?);
        let pref = lt::create_matmul_pref().map_err(err("cublasLtMatmulPreferenceCreate"))?;
        let bytes = WORKSPACE_BYTES as u64;
        // SAFETY: the attribute is a u64; the preference is destroyed once.
        let found = unsafe {
            let r = lt::set_matmul_pref_attribute(
                pref,
                sys::cublasLtMatmulPreferenceAttributes_t::CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                (&bytes) as *const u64 as *const c_void,
                std::mem::size_of::<u64>(),
            )
            .map_err(err("MAX_WORKSPACE_BYTES"))
            .and_then(|()| {
                let [la, lb, lc] = [plan.layouts[0], plan.layouts[1], plan.layouts[2]];
                lt::get_matmul_algo_heuristic(handle, desc, la, lb, lc, lc, pref)
                    .map_err(err("no algorithm for this problem"))
            });
            let _ = lt::destroy_matmul_pref(pref);
            r
        }?;
        let workspace = stream.alloc_zeros::<u8>(WORKSPACE_BYTES).map_err(|e| format!("workspace: {e:?}"))?;
        let layouts = plan.finish();
        Ok(Self { handle, desc, layouts, algo: found.algo, workspace, stream: stream.clone() })
    }

    /// Queues `C = A B^T` (bf16 C) on the plan's stream.
    fn launch(
        &mut self,
        a: &CudaSlice<u8>,
        b: &CudaSlice<u8>,
        c: &mut CudaSlice<bf16>,
    ) -> std::result::Result<(), lt::CublasError> {
        let (alpha, beta) = (1f32, 0f32);
        let stream = self.stream.clone();
        let (a_ptr, _ga) = a.device_ptr(&stream);
        let (b_ptr, _gb) = b.device_ptr(&stream);
        let (c_ptr, _gc) = c.device_ptr_mut(&stream);
        let (ws_ptr, _gw) = self.workspace.device_ptr_mut(&stream);
        let [la, lb, lc] = self.layouts;
        // SAFETY: the layouts describe exactly these buffers (A m*k, B
        // n*k, C m*n: the caller's sizes), the workspace is the size the
        // heuristic was offered, alpha and beta are host f32 (the default
        // pointer mode), and the stream is the plan's.
        unsafe {
            lt::matmul(
                self.handle,
                self.desc,
                (&alpha) as *const f32 as *const c_void,
                (&beta) as *const f32 as *const c_void,
                b_ptr as *const c_void,
                la,
                a_ptr as *const c_void,
                lb,
                c_ptr as *const c_void,
                lc,
                c_ptr as *mut c_void,
                lc,
                &self.algo,
                ws_ptr as *mut c_void,
                WORKSPACE_BYTES,
                stream.cu_stream() as *mut _,
            )
        }
    }
}

impl Drop for BlockScaledLt {
    fn drop(&mut self) {
        // SAFETY: each handle was created once by `new` and is destroyed
        // once, after the stream's work (graphs are synchronized by then).
        unsafe {
            for l in self.layouts {
                let _ = lt::destroy_matrix_layout(l);
            }
            let _ = lt::destroy_matmul_desc(self.desc);
            let _ = lt::destroy_handle(self.handle);
        }
    }
}

/// The handles made so far while planning, freed if planning fails.
struct Partial {
    handle: Option<sys::cublasLtHandle_t>,
    desc: Option<sys::cublasLtMatmulDesc_t>,
    layouts: Vec<sys::cublasLtMatrixLayout_t>,
}

impl Partial {
    /// Planning succeeded: the plan owns the handles from now on (nothing
    /// is freed here); returns the three layouts.
    fn finish(mut self) -> [sys::cublasLtMatrixLayout_t; 3] {
        self.handle = None;
        self.desc = None;
        let l = std::mem::take(&mut self.layouts);
        [l[0], l[1], l[2]]
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        // SAFETY: as for `BlockScaledLt`; nothing was launched with them.
        unsafe {
            for &l in &self.layouts {
                let _ = lt::destroy_matrix_layout(l);
            }
            if let Some(d) = self.desc {
                let _ = lt::destroy_matmul_desc(d);
            }
            if let Some(h) = self.handle {
                let _ = lt::destroy_handle(h);
            }
        }
    }
}

/// Sets a matmul descriptor attribute from a value of its type.
///
/// # Safety
/// `T` must be the attribute's documented type.
unsafe fn set<T>(
    desc: sys::cublasLtMatmulDesc_t,
    attr: sys::cublasLtMatmulDescAttributes_t,
    value: &T,
) -> std::result::Result<(), lt::CublasError> {
    lt::set_matmul_desc_attribute(desc, attr, value as *const T as *const c_void, std::mem::size_of::<T>())
}

/// Microseconds per launch in a CUDA graph (the harness of the section's
/// own records), rotating through `bs` as they do; `Err` with cuBLASLt's
/// status if a launch fails.
pub(crate) fn time_us(
    plan: &mut BlockScaledLt,
    a: &CudaSlice<u8>,
    bs: &[CudaSlice<u8>],
    c: &mut CudaSlice<bf16>,
    per_graph: usize,
) -> std::result::Result<f64, Refusal> {
    let stream = plan.stream.clone();
    let failed = Cell::new(None);
    let mut turn = 0usize;
    let mut launch = || -> Result<()> {
        turn = (turn + 1) % bs.len();
        plan.launch(a, &bs[turn], c).map_err(|e| {
            failed.set(Some(e));
            QuantError::Cuda(DriverError(CUresult::CUDA_ERROR_UNKNOWN))
        })
    };
    let timed = (0..bs.len() + 2)
        .try_for_each(|_| launch())
        .and_then(|()| timing::graph_us_per_launch(&stream, per_graph, 10, &mut launch));
    timed.map_err(|e| match failed.take() {
        Some(status) => format!("cublasLtMatmul: {status:?}"),
        None => e.to_string(),
    })
}
