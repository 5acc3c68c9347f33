//! The tile scheduler of the `wgmma` GEMM ([`super::gemm_wgmma`]): which
//! tile a persistent CTA works on next ([`Tiles`]: bands of
//! [`GEMM_GROUP_M_TILES`] M-tiles so CTAs running together share B tiles and
//! A rows in L2), which k-blocks a split-K CTA owns ([`split_range`]), and
//! the stage and phase of the shared-memory ring a k-block uses ([`Slot`]).
//! Plain integer arithmetic, kept apart from the kernel so the order can be
//! read (and changed) without the pipeline around it.

use crate::wgmma_contract::GEMM_GROUP_M_TILES;

/// A slot of the ring of `S` stages and its phase parity, advanced per
/// k-block.
#[derive(Clone, Copy)]
pub(crate) struct Slot<const S: u32> {
    /// The stage of the ring, `0..S`.
    pub(crate) stage: u32,
    /// The parity of the stage's barrier phase (flips each time round).
    pub(crate) phase: u32,
}

impl<const S: u32> Slot<S> {
    #[inline(always)]
    pub(crate) fn advance(&mut self) {
        self.stage += 1;
        if self.stage == S {
            self.stage = 0;
            self.phase ^= 1;
        }
    }
}

/// The tiles of the problem and the order CTAs take them in.
#[derive(Clone, Copy)]
pub(crate) struct Tiles {
    /// Tiles along M.
    pub(crate) tiles_m: u32,
    /// Tiles along N.
    pub(crate) tiles_n: u32,
    /// `tiles_m * tiles_n`.
    pub(crate) tiles: u32,
}

impl Tiles {
    /// `(M tile, N tile)` of tile number `t`: bands of
    /// [`GEMM_GROUP_M_TILES`] M-tiles, M fastest inside a band.
    #[inline(always)]
    pub(crate) fn coords(&self, t: u32) -> (u32, u32) {
        let band_tiles = GEMM_GROUP_M_TILES * self.tiles_n;
        let band = t / band_tiles;
        let first = band * GEMM_GROUP_M_TILES;
        let height = (self.tiles_m - first).min(GEMM_GROUP_M_TILES);
        let r = t - band * band_tiles;
        (first + r % height, r / height)
    }
}

/// The k-blocks `begin..end` of split `s` of `splits`: shared out as evenly
/// as whole k-blocks allow (`s * kbt` fits in u32: the host keeps `splits *
/// kbt` below 2^31).
#[inline(always)]
pub(crate) fn split_range(s: u32, splits: u32, kbt: u32) -> (u32, u32) {
    (s * kbt / splits, (s + 1) * kbt / splits)
}
