//! The `wgmma` GEMM cut along M into a head of whole waves and a tail.
//!
//! A persistent grid runs whole tiles, so a problem whose tiles make 3.4
//! waves pays for 4: 2048 x 7168 in 256 x 128 tiles is 448 tiles on 132
//! SMs, and the fourth wave has 52 tiles on 132 SMs (39% busy). The
//! one-launch planner ([`launch::gemm_wgmma`]) can only trade that against
//! a smaller, slower tile (64 x 256 there: 896 tiles in 6.8 waves).
//!
//! [`gemm_wgmma_parts`] considers a second shape of the work: rows `0..h`
//! in the fast tile as whole waves (the head), then rows `h..m` as a
//! launch of their own (the tail), which may split K across every SM (the
//! kernel's split-K: f32 partials and the deterministic reduction) or take
//! a narrower tile that fills them. Both launches are ordinary `wgmma`
//! launches on a sub-problem: A's rows, A's scales and C's rows are views
//! at the tail's first row, B is shared. Results are the same sums per
//! k-block either way (a split tail adds its per-range f32 partials in a
//! fixed order, as any split launch does), and no tile depends on
//! scheduling.
//!
//! The choice is a cost model: waves times [`launch::tile_cost`] times the
//! k-blocks each CTA runs, plus a reduction's bytes and a fixed cost per
//! extra launch; the tail is taken only when the model puts the two
//! launches at least [`TAIL_MIN_GAIN`] below the single one.

use super::launch::{self, WgmmaPlan};
use crate::error::Result;
use quant_kernels::wgmma_contract::{GemmPrecision, GemmTile};

/// Whether [`gemm_wgmma_parts`] may cut a problem into a head and a tail,
/// from the environment variable [`TailUse::VAR`]: `on` (the default),
/// `off` (always one launch) or `always` (a tail wherever one can be
/// planned, however small the modelled gain): the last two are for
/// measuring the model's choices on one binary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TailUse {
    /// Where the cost model says it pays (the default).
    On,
    /// Never: one launch per problem.
    Off,
    /// Wherever a head and a tail can be planned.
    Always,
}

impl TailUse {
    /// The environment variable.
    pub(crate) const VAR: &'static str = "QUANT_GEMM_TAIL";

    /// The policy `value` of [`TailUse::VAR`] names (unset: `On`).
    pub(crate) fn parse(value: Option<&std::ffi::OsStr>) -> Result<Self> {
        launch::parse_choice(
            Self::VAR,
            value,
            Self::On,
            &[("on", Self::On), ("off", Self::Off), ("always", Self::Always)],
            "`on`, `off` or `always` (or unset)",
        )
    }
}

/// A `wgmma` GEMM as one or two launches along M.
#[derive(Clone, Copy, Debug)]
pub(crate) struct WgmmaParts {
    /// The launch of rows `0..head_rows`.
    pub head: WgmmaPlan,
    /// Rows of the head: all of M without a tail, else a multiple of the
    /// head tile's rows.
    pub head_rows: u64,
    /// The launch of rows `head_rows..m`, queued after the head's.
    pub tail: Option<WgmmaPlan>,
}

/// The smallest modelled gain (a fraction of the single launch's time)
/// for which a tail is taken: the model's tile weights carry about 5% of
/// noise (`launch::tile_cost`), so closer calls stay one launch.
pub(crate) const TAIL_MIN_GAIN: f64 = 0.04;

/// Microseconds per unit of [`launch::tile_cost`] and k-block: the
/// clustered 256 x 128 wave (31 x 32768 units) took 0.92 us a k-block at
/// 4096 x 7168 x 16384 (7 waves of 128 k-blocks, 820 us) and 0.93 at 4096 x
/// 4096 x 8192 on an H200 (bench/bench-v35-h200-gemm.md).
const US_PER_UNIT: f64 = 0.92 / (31.0 * 32768.0);

/// The cost of a launch beyond its waves: starting a second persistent grid
/// and filling its pipeline after the head's last CTA has left. Fitted on
/// an H200 (session 30): 2048 x 7168 x 2048 as a 256 x 128 x2 head of 1792
/// rows and a 64 x 256 tail took 52.8-53.0 us, which the model gives with
/// 1 us here (53.3).
const LAUNCH_US: f64 = 1.0;

/// The split-K reduction's fixed cost (its launch in a graph) and its
/// bandwidth for the partials it reads and the C it writes.
const REDUCE_US: f64 = 1.5;
const REDUCE_BYTES_PER_US: f64 = 3.0e6;

/// The modelled time of `plan` on `m x n` with `k_blocks` k-blocks: its
/// waves of tiles, each as long as the k-blocks of one split, plus the
/// reduction of a split launch.
fn launch_us(plan: &WgmmaPlan, m: u64, n: u64, k_blocks: u64) -> f64 {
    let tile = plan.tile;
    let tiles = m.div_ceil(tile.rows() as u64) * n.div_ceil(tile.cols() as u64);
    let splits = plan.splits.max(1) as u64;
    let waves = (tiles * splits).div_ceil(plan.config.grid_dim.0.max(1) as u64);
    let per_cta = k_blocks.div_ceil(splits);
    let mut us = waves as f64 * launch::tile_cost(tile, plan.clustered) as f64 * per_cta as f64 * US_PER_UNIT;
    if splits > 1 {
        us += REDUCE_US + (m * n) as f64 * (4 * splits + 2) as f64 / REDUCE_BYTES_PER_US;
    }
    us
}

/// A lower bound of [`launch_us`] for any plan of `m x n` in `tile` on
/// `multiprocessors` SMs, without planning it: the tiles' k-blocks spread
/// evenly over every SM at the tile's cheaper (clustered) cost. (A plan's
/// grid never exceeds the SMs, so its waves times k-blocks per CTA are at
/// least `tiles * k_blocks / SMs`.)
fn least_us(tile: GemmTile, m: u64, n: u64, k_blocks: u64, multiprocessors: u64) -> f64 {
    let tiles = m.div_ceil(tile.rows() as u64) * n.div_ceil(tile.cols() as u64);
    let cost = launch::tile_cost(tile, true).min(launch::tile_cost(tile, false));
    tiles as f64 * k_blocks as f64 / multiprocessors.max(1) as f64 * cost as f64 * US_PER_UNIT
}

/// Plans `m x n` with `k_blocks` k-blocks on `multiprocessors` SMs as
/// [`launch::gemm_wgmma`] does, then, where neither a tile is given nor the
/// single launch splits K, considers every head tile (as whole waves of
/// its grid: the largest row count whose tiles fit in the full waves, or
/// in one wave fewer) with every tail tile, and returns the cheapest
/// two-launch plan if it beats the single launch by [`TAIL_MIN_GAIN`].
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_wgmma_parts(
    m: u64,
    n: u64,
    k_blocks: u64,
    multiprocessors: u64,
    precision: GemmPrecision,
    tile: Option<GemmTile>,
    tail_use: TailUse,
    clusters: &dyn Fn(GemmTile) -> Option<u32>,
) -> Result<WgmmaParts> {
    let single = launch::gemm_wgmma(m, n, k_blocks, multiprocessors, precision, tile, true, clusters)?;
    let whole = WgmmaParts { head: single, head_rows: m, tail: None };
    if tile.is_some() || tail_use == TailUse::Off || single.splits > 1 {
        return Ok(whole);
    }
    let plan = |rows: u64, t: GemmTile, split: bool| {
        launch::gemm_wgmma(rows, n, k_blocks, multiprocessors, precision, Some(t), split, clusters).ok()
    };
    let candidates: &[GemmTile] = match precision {
        GemmPrecision::Precise => &[GemmTile::M128N128],
        GemmPrecision::Fast => launch::PLANNED_TILES,
    };
    // A plan is taken only below `limit`, and only if cheaper than the best
    // so far: a head that alone reaches either needs no tail planned (this
    // runs on every call, and the tails are most of its work).
    let single_us = launch_us(&single, m, n, k_blocks);
    let limit = if tail_use == TailUse::Always { f64::INFINITY } else { single_us * (1.0 - TAIL_MIN_GAIN) };
    let mut best: Option<(f64, WgmmaParts)> = None;
    for &t in candidates {
        let rows = t.rows() as u64;
        let (tiles_m, tiles_n) = (m.div_ceil(rows), n.div_ceil(t.cols() as u64));
        let Some(full) = plan(m, t, false).filter(|_| tiles_m >= 2) else { continue };
        let slots = full.config.grid_dim.0.max(1) as u64;
        let waves = tiles_m * tiles_n / slots;
        for w in [waves, waves.saturating_sub(1)] {
            let head_tiles_m = (w * slots / tiles_n).min(tiles_m - 1);
            if head_tiles_m == 0 {
                continue;
            }
            let head_rows = head_tiles_m * rows;
            let Some(head) = plan(head_rows, t, false) else { continue };
            let head_us = launch_us(&head, head_rows, n, k_blocks);
            let bound = best.as_ref().map_or(limit, |(b, _)| b.min(limit));
            if head_us + LAUNCH_US >= bound {
                continue;
            }
            for &u in candidates {
                if head_us + LAUNCH_US + least_us(u, m - head_rows, n, k_blocks, multiprocessors) >= bound {
                    continue;
                }
                let Some(tail) = plan(m - head_rows, u, true) else { continue };
                let us = head_us + LAUNCH_US + launch_us(&tail, m - head_rows, n, k_blocks);
                if best.as_ref().is_none_or(|(b, _)| us < *b) {
                    best = Some((us, WgmmaParts { head, head_rows, tail: Some(tail) }));
                }
            }
        }
    }
    Ok(match best {
        Some((us, parts)) if us < limit => parts,
        _ => whole,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The H200's planner: 132 SMs, 66 clusters of the 256 x 128 and
    /// 128 x 128 multicast kernels resident at once.
    fn h200(m: u64, n: u64, k: u64, precision: GemmPrecision) -> WgmmaParts {
        let clusters = |t: GemmTile| (t == GemmTile::M256N128 || t == GemmTile::M128N128).then_some(66);
        gemm_wgmma_parts(m, n, k / 128, 132, precision, None, TailUse::On, &clusters).unwrap()
    }

    #[test]
    fn a_ragged_last_wave_becomes_a_tail() {
        // 2048 x 7168: 448 tiles of 256 x 128 (3.4 waves). Head: 7 rows of
        // tiles (392 tiles, 3 waves of 66 clusters); tail: the last 256 rows.
        for k in [2048, 16384, 32768] {
            let p = h200(2048, 7168, k, GemmPrecision::Fast);
            assert_eq!((p.head.tile, p.head.clustered, p.head_rows), (GemmTile::M256N128, true, 1792), "k = {k}");
            let tail = p.tail.expect("a tail");
            let tail_tiles = 256u64.div_ceil(tail.tile.rows() as u64) * 7168u64.div_ceil(tail.tile.cols() as u64);
            // The tail fills most of the GPU in one wave.
            assert!(tail_tiles * tail.splits as u64 >= 100, "{tail:?}");
            assert!(tail_tiles * tail.splits as u64 <= 132 || !tail.clustered, "{tail:?}");
        }
    }

    #[test]
    fn whole_waves_and_small_problems_stay_one_launch() {
        for (m, n, k) in [
            (4096, 7168, 16384), // 6.8 waves: a tail would save nothing
            (4096, 4096, 8192),  // 3.9 waves
            (2048, 4096, 7168),  // 1.9 waves
            (2048, 24576, 1536),
            (64, 7168, 2048), // one row of tiles
            (128, 4096, 7168),
            (2048, 512, 4096),
        ] {
            for precision in [GemmPrecision::Fast, GemmPrecision::Precise] {
                let p = h200(m, n, k, precision);
                assert!(p.tail.is_none(), "{m} x {n} x {k} {precision:?}: {p:?}");
                assert_eq!(p.head_rows, m);
            }
        }
    }

    #[test]
    fn a_given_tile_or_the_switch_keeps_one_launch() {
        let clusters = |_: GemmTile| Some(66);
        let given = gemm_wgmma_parts(
            2048,
            7168,
            128,
            132,
            GemmPrecision::Fast,
            Some(GemmTile::M256N128),
            TailUse::On,
            &clusters,
        )
        .unwrap();
        assert!(given.tail.is_none() && given.head_rows == 2048);
        let off = gemm_wgmma_parts(2048, 7168, 128, 132, GemmPrecision::Fast, None, TailUse::Off, &clusters).unwrap();
        assert!(off.tail.is_none());
        // `always` takes a tail the model gives no margin (2048 x 1536 x
        // 7168: one wave of 128 x 192 tiles).
        let parts = |tail_use| gemm_wgmma_parts(2048, 1536, 56, 132, GemmPrecision::Fast, None, tail_use, &clusters);
        assert!(parts(TailUse::On).unwrap().tail.is_none());
        assert!(parts(TailUse::Always).unwrap().tail.is_some());
    }

    #[test]
    fn every_part_is_a_valid_launch() {
        // Heads are whole tile rows; the parts cover M exactly.
        for m in (256..=8192).step_by(192) {
            for (n, k) in [(7168, 2048), (2112, 7168), (4096, 16384), (24576, 1536), (1000, 4096)] {
                for precision in [GemmPrecision::Fast, GemmPrecision::Precise] {
                    let p = h200(m, n, k, precision);
                    if let Some(tail) = p.tail {
                        assert!(p.head_rows > 0 && p.head_rows < m, "{m} x {n}: {p:?}");
                        assert_eq!(p.head_rows % p.head.tile.rows() as u64, 0);
                        assert_eq!(p.head.splits, 1);
                        assert!(tail.splits >= 1);
                        if precision == GemmPrecision::Precise {
                            assert_eq!((p.head.tile, tail.tile), (GemmTile::M128N128, GemmTile::M128N128));
                        }
                    }
                }
            }
        }
    }

    /// The plans `tests/gpu_gemm.rs` (`tails_match_one_launch`) relies on,
    /// under `always`: (M, N, K, mode) -> (head rows, tail tile, tail splits).
    #[test]
    fn the_gpu_tests_tails() {
        use GemmPrecision::{Fast, Precise};
        use GemmTile::*;
        let clusters = |t: GemmTile| (t == M256N128 || t == M128N128).then_some(66);
        for (m, n, k, precision, want) in [
            (2048, 7168, 1024, Fast, (1792, M64N256, 1)),
            (2048, 7168, 1024, Precise, (1792, M128N128, 1)),
            (2100, 2112, 1024, Fast, (1536, M64N256, 1)),
            (1000, 4000, 512, Fast, (512, M64N256, 1)),
            (777, 2112, 1024, Precise, (768, M128N128, 2)),
            (2048, 2112, 7168, Fast, (1536, M128N192, 3)),
        ] {
            let p = gemm_wgmma_parts(m, n, k / 128, 132, precision, None, TailUse::Always, &clusters).unwrap();
            let tail = p.tail.expect("a tail");
            assert_eq!((p.head_rows, tail.tile, tail.splits), want, "{m} x {n} x {k} {precision:?}");
        }
        // And the default planner takes the last one's tail too.
        let p = gemm_wgmma_parts(2048, 2112, 56, 132, Fast, None, TailUse::On, &clusters).unwrap();
        assert_eq!(p.tail.map(|t| (t.tile, t.splits)), Some((M128N192, 3)));
    }

    /// `least_us` never exceeds the modelled time of a plan it prunes, so
    /// pruning changes no choice.
    #[test]
    fn the_pruning_bound_is_a_lower_bound() {
        let clusters = |t: GemmTile| (t == GemmTile::M256N128 || t == GemmTile::M128N128).then_some(66);
        for m in (1..=9000u64).step_by(131) {
            for n in [512u64, 576, 2112, 7168, 32768] {
                for kb in [1u64, 4, 16, 56, 128] {
                    for t in GemmTile::ALL {
                        for split in [false, true] {
                            let Ok(p) =
                                launch::gemm_wgmma(m, n, kb, 132, GemmPrecision::Fast, Some(t), split, &clusters)
                            else {
                                continue;
                            };
                            let (least, us) = (least_us(t, m, n, kb, 132), launch_us(&p, m, n, kb));
                            assert!(
                                least <= us * (1.0 + 1e-12),
                                "{m} x {n} x {kb} {t:?} split {split}: {least} > {us}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn tail_switch_parses() {
        use std::ffi::OsStr;
        assert_eq!(TailUse::parse(None).unwrap(), TailUse::On);
        assert_eq!(TailUse::parse(Some(OsStr::new("on"))).unwrap(), TailUse::On);
        assert_eq!(TailUse::parse(Some(OsStr::new("off"))).unwrap(), TailUse::Off);
        assert_eq!(TailUse::parse(Some(OsStr::new("always"))).unwrap(), TailUse::Always);
        for bad in ["", "On", "1", "never"] {
            let err = TailUse::parse(Some(OsStr::new(bad))).unwrap_err();
            assert!(err.to_string().contains("QUANT_GEMM_TAIL"), "{err}");
        }
    }
}
