//! Tensor maps (`CUtensorMap`) as the `wgmma` and streaming GEMM kernels
//! receive them: by value, inside the kernel's parameter block.
//!
//! A TMA copy names its tensor by the address of a 128-byte descriptor in
//! parameter, constant or global memory. The kernels take theirs in the
//! parameter block ([`crate::wgmma_contract::GemmWgmmaParams`],
//! [`crate::stream_contract::GemmStreamParams`]), as CUDA C++ does with a
//! `__grid_constant__` parameter, and not from a table the host rewrites
//! in device memory: a descriptor in global memory that a copy overwrites
//! between launches needs a proxy fence in the kernel to be seen fresh,
//! a bounded table misses (and rewrites a slot) on every call of a model
//! with more operands than slots, and a host-to-device copy of a new map
//! cannot be captured in a CUDA graph. A parameter is copied with the
//! launch: every launch carries exactly the maps it was given.
//!
//! TMA needs the descriptor 64-byte aligned. rustc cannot declare a
//! parameter aligned above 16 bytes, so the maps come first in the block
//! (offsets 0, 128, 256) and the build (`cargo xtask build-ptx`) declares
//! parameter 0 of every entry in [`tensor_map_entries`] `.align 64`.
//! The kernel reads the maps only through the generic address of its
//! parameter (`cvta.param`), never field by field.

use crate::stream_contract::gemm_stream_kernels;
use crate::wgmma_contract::{gemm_wgmma_kernel, gemm_wgmma_multicast_kernel, GemmOut, GemmPrecision, GemmTile};

/// The 128 opaque bytes of a `CUtensorMap`, as `cuTensorMapEncodeTiled`
/// wrote them. No `PartialEq`: comparing 128 bytes compiles to `memcmp`,
/// which the GPU modules do not have.
#[derive(Clone, Copy, Default)]
#[repr(C)]
pub struct TensorMap(pub [u64; 16]);

impl TensorMap {
    /// No map: for a slot the kernel does not read (see the parameter
    /// block's flags).
    pub const NONE: Self = Self([0; 16]);
}

impl core::fmt::Debug for TensorMap {
    #[inline] // never compiled into a GPU module unless used there
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("TensorMap(..)")
    }
}

/// Alignment TMA requires of a tensor map, and that the build gives
/// parameter 0 of every entry in [`tensor_map_entries`].
pub const TENSOR_MAP_ALIGN: usize = 64;

/// Every kernel entry whose parameter 0 is a block starting with tensor
/// maps: the `wgmma` kernels (single-CTA and multicast) and the streaming
/// kernels.
pub fn tensor_map_entries() -> impl Iterator<Item = &'static str> {
    let outs = [GemmOut::Bf16, GemmOut::F32];
    let wgmma = GemmPrecision::ALL.into_iter().flat_map(move |p| {
        GemmTile::ALL.into_iter().flat_map(move |t| outs.into_iter().filter_map(move |o| gemm_wgmma_kernel(p, t, o)))
    });
    let multicast = GemmTile::ALL
        .into_iter()
        .flat_map(move |t| outs.into_iter().filter_map(move |o| gemm_wgmma_multicast_kernel(t, o)));
    wgmma.chain(multicast).chain(gemm_stream_kernels())
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::stream_contract::GemmStreamParams;
    use crate::wgmma_contract::GemmWgmmaParams;
    use core::mem::{offset_of, size_of};

    #[test]
    fn maps_sit_at_64_byte_offsets_at_the_start_of_each_block() {
        assert_eq!(size_of::<TensorMap>(), 128);
        for off in [
            offset_of!(GemmWgmmaParams, map_a),
            offset_of!(GemmWgmmaParams, map_b),
            offset_of!(GemmWgmmaParams, map_c),
            offset_of!(GemmStreamParams, map_a),
            offset_of!(GemmStreamParams, map_b),
        ] {
            assert_eq!(off % TENSOR_MAP_ALIGN, 0);
        }
        assert_eq!(offset_of!(GemmWgmmaParams, map_a), 0);
        assert_eq!(offset_of!(GemmStreamParams, map_a), 0);
    }

    #[test]
    fn every_map_carrying_entry_is_listed_once() {
        let mut names: std::vec::Vec<_> = tensor_map_entries().collect();
        let count = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), count);
        // 16 Fast + 2 Precise single-CTA kernels, 6 multicast, 8 streaming.
        assert_eq!(count, 32);
        assert!(names.iter().all(|n| n.starts_with("gemm_wgmma_") || n.starts_with("gemm_stream_")));
    }
}
