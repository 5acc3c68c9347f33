//! The kernel/host contract of the fused quantizers (`kernels::fused`): their
//! `#[repr(C)]` parameter blocks and typed entry points, named from the same
//! lists that generate the kernels (as `crate::abi` does for the plain
//! quantizers, whose `quantizer_entries` includes these).

use crate::abi::{Kernel, KernelParams};
use crate::element::DType;
use crate::Fp8Format;

/// Threads per CTA of `silu_mul_quant_*`.
pub const FUSED_GROUP_THREADS: u32 = 256;
/// Threads per CTA of `fused_quant_*`: 128, as the wide token-group kernel
/// it mirrors (`geometry::TOKEN_GROUP_WIDE_BLOCK_THREADS`: its threads load
/// once, encode and exit, and smaller CTAs free their slots sooner; in the
/// masked layout a CTA of left-out rows also ends sooner).
pub const FUSED_QUANT_THREADS: u32 = 128;
/// Most threads per CTA of the RMS kernel (one CTA per row).
pub const RMS_MAX_THREADS: u32 = 1024;

/// The `layout` value of the packed UE8M0 scale layout, which only the fused
/// kernels write (beyond `ScaleLayout`'s values): one byte per scale
/// (`fused::ue8m0_byte`) at `fused::packed_ue8m0_byte_index`. The kernels
/// write the valid rows' bytes only; the host zeroes the whole buffer first
/// (padding groups and rows, and a masked layout's invalid rows, are 0).
pub const PACKED_UE8M0_LAYOUT: u32 = 3;

/// How a per-group kernel finds the rows it works on
/// ([`FusedGroupParams::masked`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FusedMask {
    /// Every row is valid; `masked_m` is not read.
    None,
    /// The lanes walk every row of every expert and each reads its expert's
    /// count from `masked_m` before it loads: for more experts than
    /// [`MASK_COMPACT_MAX_EXPERTS`].
    PerTurn,
    /// Each CTA first turns `masked_m` into running sums of the valid rows
    /// in its shared memory ([`FusedMask::shared_bytes`]), and the lanes walk
    /// the valid rows only, each finding its expert by a binary search of
    /// those sums. Walking every row left the grid-stride loop's threads
    /// with unequal shares of the valid rows (a thread's turns fall on valid
    /// or left-out rows depending on where its stride lands), and put a
    /// dependent read of `masked_m` before every turn's loads.
    Compact,
}

/// Most experts whose running sums [`FusedMask::Compact`] keeps in shared
/// memory (4 KB per CTA).
pub const MASK_COMPACT_MAX_EXPERTS: u64 = 1024;

impl FusedMask {
    /// The mask a launch of `experts` experts uses: the one place the host
    /// and the kernel's shared-memory budget agree on it.
    pub const fn for_launch(masked: bool, experts: u64) -> Self {
        match (masked, experts <= MASK_COMPACT_MAX_EXPERTS) {
            (false, _) => FusedMask::None,
            (true, true) => FusedMask::Compact,
            (true, false) => FusedMask::PerTurn,
        }
    }

    /// Dynamic shared memory the launch needs: `experts + 1` running sums
    /// for [`FusedMask::Compact`], none otherwise.
    pub const fn shared_bytes(self, experts: u64) -> u32 {
        match self {
            FusedMask::Compact => ((experts + 1) * 4) as u32,
            FusedMask::None | FusedMask::PerTurn => 0,
        }
    }
}

/// Parameters of the per-group fused kernels (`fused_quant_*`,
/// `silu_mul_quant_*`), after their buffers `(x, q, scales, masked_m)`.
///
/// `x` holds `rows` rows of `row_stride` input elements; the kernel's
/// output row `r` has `cols` elements: `x[r, 0..cols]` for `fused_quant`,
/// `silu(x[r, c]) * x[r, cols + c]` for `silu_mul_quant` (so
/// `row_stride >= 2 * cols` there). `q` holds `rows * cols` codes.
///
/// The rows form `rows / expert_rows` experts of `expert_rows` rows each
/// (one expert of all rows when dense). Expert `e`'s scales start at
/// `e * layout.len(expert_rows, groups)` and its row `m`, group `g` is at
/// `layout.index(m, g, expert_rows, groups)` from there. With a mask
/// ([`FusedMask::PerTurn`] or [`FusedMask::Compact`], the latter with
/// [`FusedMask::shared_bytes`] of dynamic shared memory), `masked_m` holds
/// one `u32` per expert and only rows `m < min(masked_m[e], expert_rows)`
/// are read and written (nothing else, padding rows included); with
/// [`FusedMask::None`] it is not read, every row is valid, and the
/// TMA-aligned layout's padding rows are written as 0.
///
/// The kernels index lanes, groups, rows and columns in 32 bits: the host
/// launches at most `2^31 - 1` lanes (`rows * groups * group_size / (8 *
/// chunks)`) with `cols < 2^31`, and rejects larger problems (`QuantError::TooLarge`;
/// a bf16 `silu_mul` that large would need 160 GB).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FusedGroupParams {
    /// Rows of `x` and of the codes (all experts).
    pub rows: u64,
    /// Output columns per row.
    pub cols: u64,
    /// Input elements between the starts of two rows.
    pub row_stride: u64,
    /// Rows per expert (`rows` when dense; `rows` is a multiple of it).
    pub expert_rows: u64,
    /// 32, 64 or 128.
    pub group_size: u32,
    /// [`FusedMask::as_u32`]: whether and how `masked_m` limits the rows of
    /// each expert.
    pub masked: u32,
    /// Floor of a group's amax.
    pub eps: f32,
    /// Clamp bound and scale divisor.
    pub fp8_max: f32,
    /// `ScaleMode::as_u32`.
    pub mode: u32,
    /// `ScaleLayout::as_u32`, or [`PACKED_UE8M0_LAYOUT`].
    pub layout: u32,
}

// SAFETY: `#[repr(C)]`, plain integers and floats; the host checks
// `group_size`, `expert_rows > 0` and every buffer's length.
unsafe impl KernelParams for FusedGroupParams {}

/// Parameters of `rms_norm_quant_*`, after its buffers `(x, residual,
/// weight, q, scales)`: `x` holds `rows` rows of `row_stride` elements,
/// `residual` (read and written only when `residual == 1`) `rows * cols`
/// dense, `weight` `cols`, `q` `rows * cols` codes, `scales`
/// `layout.len(rows, groups)` f32. One CTA of `threads` threads per row,
/// `slots` leaves per thread (`fused::rms_geometry`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RmsNormParams {
    /// M.
    pub rows: u64,
    /// K.
    pub cols: u64,
    /// Elements between the starts of two input rows (`>= cols`).
    pub row_stride: u64,
    /// The `eps` inside the square root.
    pub norm_eps: f32,
    /// Floor of a group's amax.
    pub eps: f32,
    /// Clamp bound and scale divisor.
    pub fp8_max: f32,
    /// `ScaleMode::as_u32`.
    pub mode: u32,
    /// `ScaleLayout::as_u32`, or [`PACKED_UE8M0_LAYOUT`].
    pub layout: u32,
    /// 32, 64 or 128.
    pub group_size: u32,
    /// 1 to add and write back the residual.
    pub residual: u32,
    /// Leaves per thread (1, 2 or 4).
    pub slots: u32,
}

// SAFETY: `#[repr(C)]`, plain integers and floats; the host derives
// `slots` and the CTA size from `fused::rms_geometry` and checks the rest.
unsafe impl KernelParams for RmsNormParams {}

/// Which operation a fused kernel computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FusedOp {
    /// The plain per-token-group quantizer (its masked MoE form).
    Quant,
    /// `silu(gate) * up`, then per-token-group quantization.
    SiluMul,
    /// RMSNorm (optionally after a residual add), then per-token-group quantization.
    RmsNorm,
}

/// Lists every fused entry point as `(name: op, input, format;)`.
macro_rules! fused_kernels {
    ($then:ident) => {
        $then! {
            fused_quant_bf16_e4m3fn: Quant, Bf16, E4M3Fn;
            fused_quant_bf16_e4m3fnuz: Quant, Bf16, E4M3Fnuz;
            fused_quant_f16_e4m3fn: Quant, F16, E4M3Fn;
            fused_quant_f16_e4m3fnuz: Quant, F16, E4M3Fnuz;
            fused_quant_f32_e4m3fn: Quant, F32, E4M3Fn;
            fused_quant_f32_e4m3fnuz: Quant, F32, E4M3Fnuz;
            silu_mul_quant_bf16_e4m3fn: SiluMul, Bf16, E4M3Fn;
            silu_mul_quant_bf16_e4m3fnuz: SiluMul, Bf16, E4M3Fnuz;
            silu_mul_quant_f16_e4m3fn: SiluMul, F16, E4M3Fn;
            silu_mul_quant_f16_e4m3fnuz: SiluMul, F16, E4M3Fnuz;
            silu_mul_quant_f32_e4m3fn: SiluMul, F32, E4M3Fn;
            silu_mul_quant_f32_e4m3fnuz: SiluMul, F32, E4M3Fnuz;
            rms_norm_quant_bf16_e4m3fn: RmsNorm, Bf16, E4M3Fn;
            rms_norm_quant_bf16_e4m3fnuz: RmsNorm, Bf16, E4M3Fnuz;
            rms_norm_quant_f16_e4m3fn: RmsNorm, F16, E4M3Fn;
            rms_norm_quant_f16_e4m3fnuz: RmsNorm, F16, E4M3Fnuz;
            rms_norm_quant_f32_e4m3fn: RmsNorm, F32, E4M3Fn;
            rms_norm_quant_f32_e4m3fnuz: RmsNorm, F32, E4M3Fnuz;
        }
    };
}

impl FusedOp {
    /// Chunks of 8 elements each thread of a per-group kernel (`Quant`,
    /// `SiluMul`) owns in one group for `input`: the kernel's const
    /// parameter and the host's grid, `group_size / (8 * chunks)` threads
    /// per group. `Quant` takes 4, as the wide token-group kernel does (64
    /// bytes of loads in flight per thread, its fixed work spread over 32
    /// elements); so does `SiluMul` on bf16 (8 loads, 128 bytes, in flight,
    /// and the group's index math, scale, divider and scale store paid once
    /// per 32 elements: a quarter fewer instructions per element, within
    /// the same 80 registers, session 17). f16 (its software conversion,
    /// replaced by `cvt.f32.f16` in session 29: 4 chunks not yet retried)
    /// and f32 (chunks of 8 registers, 64 for gate and up of 4 chunks)
    /// spilled hundreds of bytes with 4 and keep 2.
    pub const fn group_chunks(self, input: DType) -> u64 {
        match (self, input) {
            (FusedOp::Quant, _) | (FusedOp::SiluMul, DType::Bf16) => 4,
            (FusedOp::SiluMul, _) | (FusedOp::RmsNorm, _) => 2,
        }
    }
}

/// A per-group fused entry point (`fused_quant_*`, `silu_mul_quant_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FusedGroupKernel(FusedEntry);

/// An RMS entry point (`rms_norm_quant_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RmsNormKernel(FusedEntry);

/// One row of `fused_kernels!`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FusedEntry {
    op: FusedOp,
    input: DType,
    format: Fp8Format,
    name: &'static str,
}

macro_rules! fused_table {
    ($($name:ident: $op:ident, $t:ident, $format:ident;)*) => {
        /// Every fused entry point.
        pub const FUSED_ENTRIES: &[FusedEntry] = &[$(
            FusedEntry { op: FusedOp::$op, input: DType::$t, format: Fp8Format::$format, name: stringify!($name) },
        )*];
    };
}
fused_kernels!(fused_table);

const fn find(op: FusedOp, input: DType, format: Fp8Format) -> FusedEntry {
    // Ordered by (op, input, format), as `fused_kernels!` lists them.
    FUSED_ENTRIES[(op as usize * DType::ALL.len() + input as usize) * Fp8Format::ALL.len() + format as usize]
}

impl FusedEntry {
    /// The operation.
    pub const fn op(self) -> FusedOp {
        self.op
    }

    /// `(threads per CTA, min CTAs per SM)` the PTX declares.
    pub const fn launch_bounds(self) -> (u32, u32) {
        match self.op {
            FusedOp::RmsNorm => (RMS_MAX_THREADS, 1),
            // 80 registers (3 CTAs), bf16's 4 chunks included (no spill once
            // the kernel's indices were 32-bit). At (256, 2) ptxas spent registers on
            // scheduling (107, a quarter of the SM's threads). f16 keeps
            // (256, 2): its software conversion of 32 inputs spilled on
            // sm_80 at 80 registers and at 64 (the hardware conversion since
            // session 29 takes 96 registers there at (256, 2); 3 CTAs not
            // yet retried).
            FusedOp::SiluMul => (FUSED_GROUP_THREADS, if matches!(self.input, DType::F16) { 2 } else { 3 }),
            // 4 chunks per thread: 64 registers, 96 for f32, whose chunks
            // are 32 registers (sm_80's software encoder needed 81; sm_90
            // takes 56 either way).
            FusedOp::Quant => (FUSED_QUANT_THREADS, if matches!(self.input, DType::F32) { 5 } else { 8 }),
        }
    }

    /// The `.entry` name.
    pub const fn name(self) -> &'static str {
        self.name
    }
}

impl FusedGroupKernel {
    /// The entry point of `op` (`Quant` or `SiluMul`; `RmsNorm` gives
    /// `None`) for `input` and `format`.
    pub const fn new(op: FusedOp, input: DType, format: Fp8Format) -> Option<Self> {
        match op {
            FusedOp::RmsNorm => None,
            _ => Some(Self(find(op, input, format))),
        }
    }
}

impl FusedGroupKernel {
    /// Chunks per thread: see [`FusedOp::group_chunks`].
    pub const fn chunks(self) -> u64 {
        self.0.op.group_chunks(self.0.input)
    }

    /// Threads per CTA, as the launch bounds declare them.
    pub const fn block_threads(self) -> u32 {
        self.0.launch_bounds().0
    }
}

impl RmsNormKernel {
    /// The RMS entry point for `input` and `format`.
    pub const fn new(input: DType, format: Fp8Format) -> Self {
        Self(find(FusedOp::RmsNorm, input, format))
    }
}

impl Kernel for FusedGroupKernel {
    type Params = FusedGroupParams;
    fn name(self) -> &'static str {
        self.0.name
    }
    fn launch_bounds(self) -> Option<(u32, u32)> {
        Some(self.0.launch_bounds())
    }
}

impl Kernel for RmsNormKernel {
    type Params = RmsNormParams;
    fn name(self) -> &'static str {
        self.0.name
    }
    fn launch_bounds(self) -> Option<(u32, u32)> {
        Some(self.0.launch_bounds())
    }
}

/// Every fused entry point's name with its launch bounds (for `cargo xtask
/// build-ptx`, through `abi::quantizer_entries`).
pub fn fused_entries() -> impl Iterator<Item = (&'static str, Option<(u32, u32)>)> {
    FUSED_ENTRIES.iter().map(|e| (e.name, Some(e.launch_bounds())))
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    #[test]
    fn entries_are_found_by_their_fields_and_named_after_them() {
        for input in DType::ALL {
            for format in Fp8Format::ALL {
                for (op, prefix) in [(FusedOp::Quant, "fused_quant"), (FusedOp::SiluMul, "silu_mul_quant")] {
                    let k = FusedGroupKernel::new(op, input, format).unwrap();
                    assert_eq!(k.name(), [prefix, input.name(), format.name()].join("_"));
                    assert_eq!(k.0.op(), op);
                }
                let r = RmsNormKernel::new(input, format);
                assert_eq!(r.name(), ["rms_norm_quant", input.name(), format.name()].join("_"));
                assert_eq!(FusedGroupKernel::new(FusedOp::RmsNorm, input, format), None);
            }
        }
        assert_eq!(fused_entries().count(), 18);
    }

    #[test]
    fn masks_round_trip_and_compact_only_what_shared_memory_holds() {
        for m in [FusedMask::None, FusedMask::PerTurn, FusedMask::Compact] {
            assert_eq!(FusedMask::from_u32(m.as_u32()), Some(m));
        }
        assert_eq!(FusedMask::from_u32(3), None);
        assert_eq!(FusedMask::for_launch(false, 1), FusedMask::None);
        assert_eq!(FusedMask::for_launch(false, 5000), FusedMask::None);
        assert_eq!(FusedMask::for_launch(true, 1), FusedMask::Compact);
        assert_eq!(FusedMask::for_launch(true, MASK_COMPACT_MAX_EXPERTS), FusedMask::Compact);
        assert_eq!(FusedMask::for_launch(true, MASK_COMPACT_MAX_EXPERTS + 1), FusedMask::PerTurn);
        assert_eq!(FusedMask::Compact.shared_bytes(16), 68);
        assert_eq!(FusedMask::PerTurn.shared_bytes(5000), 0);
        assert_eq!(FusedMask::None.shared_bytes(1), 0);
    }

    #[test]
    fn parameter_blocks_have_no_padding() {
        assert_eq!(core::mem::size_of::<FusedGroupParams>(), 4 * 8 + 6 * 4);
        assert_eq!(core::mem::size_of::<RmsNormParams>(), 3 * 8 + 8 * 4);
    }
}
