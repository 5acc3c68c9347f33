//! The GEMM section: `mm_fp8_blockscale` alone on the contract's GEMM peer
//! set, in both precision modes (and, with `--gemm-variants`, every tile of
//! the `Fast` kernel), each record timed per launch in a CUDA graph and
//! checked for its error.
//!
//! - Time: per launch in a CUDA graph of launches that rotate through
//!   enough copies of B to exceed the L2 (as a model's layers do;
//!   `e2e::weight_copies`), bf16 C.
//! - Error: `max|C - C_ref| / max|C_ref|` with f32 C, where `C_ref` is the
//!   same product from the `mma.sync` kernel on the same device, which sums
//!   each k-block exactly in f32 (the tests hold it to the CPU reference;
//!   about 2e-7 apart). The operands are the benchmark's input, values
//!   spanning 2^-8 to 2^7 in every group: outlier-heavy data, where the
//!   tensor cores' truncated sums show most.
//!
//! The peers (DeepGEMM, cuBLASLt block-scaled, cuBLAS) run from
//! `../shared/anchors` in the same device call; see `bench/NOTES-gemm.md`.

use super::cublaslt;
use super::timing;
use crate::config::TokenGroupConfig;
use crate::error::Result;
use crate::gemm::{GemmConfig, GemmPrecision, GemmShape, GemmTile, OutputType};
use crate::gpu::gemm::{mm_fp8_blockscale_on, wgmma_plan, Path, Planned};
use crate::gpu::{self, Gpu, GpuGemmOut};
use crate::shape::MatrixShape;
use cudarc::driver::CudaSlice;
use half::bf16;
use quant_kernels::wgmma_contract::{gemm_wgmma_multicast_kernel, GemmOut};
use quant_kernels::ScaleLayout;

/// The GEMM peer set of shapes.md: the V3 weights at M in {64, 128, 2048,
/// 4096}, the end-to-end set's prefill shapes, and V4's four at M in {64,
/// 2048, 4096}. (M <= 16: the e2e section's graph columns.)
pub fn peer_set() -> Vec<(usize, usize, usize)> {
    let mut shapes = Vec::new();
    for m in [64, 128, 2048, 4096] {
        for (n, k) in [(2112, 7168), (24576, 1536), (32768, 512), (7168, 16384), (4096, 7168), (7168, 2048)] {
            shapes.push((m, n, k));
        }
    }
    for m in [64, 2048, 4096] {
        for (n, k) in [(4096, 8192), (32768, 1024), (1024, 4096), (512, 4096)] {
            shapes.push((m, n, k));
        }
    }
    shapes.push((2048, 512, 7168));
    shapes
}

/// Launches per graph (fewer for long GEMMs, see [`launches`]).
const GRAPH_LAUNCHES: usize = 50;

/// One GEMM measurement.
#[derive(Clone, Debug, serde::Serialize)]
pub struct GemmRecord {
    /// Rows of A and C.
    pub m: usize,
    /// Rows of B, columns of C.
    pub n: usize,
    /// The reduction length.
    pub k: usize,
    /// `fast` or `precise`, or `cublaslt` for the peer: cuBLASLt's
    /// block-scaled fp8 GEMM on the same operands in the same harness
    /// (`tile` and `splits` say nothing then; its error is not measured).
    pub precision: &'static str,
    /// The layout of A's scales (`row-major`, `col-major`, `col-major-tma`).
    pub scale_layout: &'static str,
    /// The kernel that ran: the `wgmma` tile the planner chose (or the one
    /// forced, `--gemm-variants`), `stream`, `mma.sync decode` or `mma.sync`.
    pub tile: &'static str,
    /// Whether the tile was forced rather than planned.
    pub forced: bool,
    /// Whether 2-CTA clusters sharing A ran it (multicast).
    pub clustered: bool,
    /// Whether the cluster kernels were ruled out (`--gemm-variants`' comparison).
    pub unicast: bool,
    /// K splits.
    pub splits: u32,
    /// The tail launch where the problem ran as a head and a tail along M
    /// (its tile, split and first row); `tile`, `clustered` and `splits`
    /// are then the head's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tail: Option<String>,
    /// Microseconds per launch in a CUDA graph.
    pub us: f64,
    /// `2 M N K / us`.
    pub tflops: f64,
    /// `max|C - C_ref| / max|C_ref|`, f32 C.
    pub max_rel_err: f64,
    /// Why there is no figure (the peer refused the problem); `us` is NaN.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

fn flops(m: usize, n: usize, k: usize) -> f64 {
    2.0 * m as f64 * n as f64 * k as f64
}

/// TFLOP/s of an `m x n x k` GEMM that took `us` microseconds.
pub(super) fn tflops(m: usize, n: usize, k: usize, us: f64) -> f64 {
    flops(m, n, k) / (us * 1e-6) / 1e12
}

/// Launches per graph: about 20 ms of GPU time per replay at 1000 TFLOP/s,
/// between 5 and [`GRAPH_LAUNCHES`].
fn launches(m: usize, n: usize, k: usize) -> usize {
    let us = flops(m, n, k) / 1e9; // at 1000 TFLOP/s
    ((20_000.0 / us.max(1.0)) as usize).clamp(5, GRAPH_LAUNCHES)
}

/// DeepGEMM's figures from the same device call, timed with this
/// benchmark's own method (`deepgemm_graph.json`, written by
/// `bench/peers/deepgemm_graph.py`: a CUDA graph of back-to-back launches
/// over rotated copies of B, the median of 10 replays), so that `fast /
/// DeepGEMM` compares one method. The anchor script's do_bench figure is
/// kept beside it (`flush_us`).
#[derive(Clone, Debug, serde::Deserialize, serde::Serialize)]
pub struct DeepGemm {
    /// The device the script saw.
    pub device: String,
    /// One row per shape.
    pub rows: Vec<DeepGemmRow>,
}

/// One shape of [`DeepGemm`].
#[derive(Clone, Debug, serde::Deserialize, serde::Serialize)]
pub struct DeepGemmRow {
    /// M.
    #[serde(rename = "M")]
    pub m: usize,
    /// N.
    #[serde(rename = "N")]
    pub n: usize,
    /// K.
    #[serde(rename = "K")]
    pub k: usize,
    /// Per launch in a graph, microseconds.
    pub graph_us: f64,
    /// do_bench's method (a 256 MB memset before each launch), microseconds.
    pub flush_us: f64,
}

impl DeepGemm {
    /// Reads `deepgemm_graph.json`.
    pub fn read(path: &std::path::Path) -> Result<Self> {
        super::read_json(path)
    }

    /// DeepGEMM's time for `m x n x k`, per launch in a graph.
    fn graph_us(&self, m: usize, n: usize, k: usize) -> Option<f64> {
        self.rows.iter().find(|r| (r.m, r.n, r.k) == (m, n, k)).map(|r| r.graph_us).filter(|us| *us > 0.0)
    }

    /// The issue's comparison, per M range: `fast / DeepGEMM` over the
    /// shapes both measured (the planned `Fast` records).
    fn summary(&self, records: &[GemmRecord]) -> String {
        let ratios = |lo: usize, hi: usize| -> Vec<f64> {
            records
                .iter()
                .filter(|r| r.precision == "fast" && !r.forced && !r.unicast && (lo..=hi).contains(&r.m))
                .filter_map(|r| self.graph_us(r.m, r.n, r.k).map(|us| us / r.us))
                .collect()
        };
        let mut s = format!("\nDeepGEMM (same harness, {}): `fast / DeepGEMM` ", self.device);
        let mut parts = Vec::new();
        for (name, lo, hi) in [("M >= 2048", 2048, usize::MAX), ("M = 64-512", 64, 512), ("M <= 16", 1, 16)] {
            let v = ratios(lo, hi);
            if v.is_empty() {
                continue;
            }
            let (min, max) = v.iter().fold((f64::INFINITY, 0f64), |(a, b), &x| (a.min(x), b.max(x)));
            let at = v.iter().filter(|&&x| x >= 1.05).count();
            parts.push(format!("{name}: {min:.2}-{max:.2} ({at} of {} shapes at 1.05 or more)", v.len()));
        }
        s.push_str(&if parts.is_empty() { "no shape in common.".to_owned() } else { parts.join("; ") + "." });
        s.push('\n');
        s
    }
}

/// Runs the section on `shapes`. `input` holds at least max(M K, N K)
/// values. With `variants`, every `Fast` tile is timed as well. Each
/// record's timed graphs start after the GPU has idled for `settle`.
pub(crate) fn run(
    gpu: &Gpu,
    input: &CudaSlice<bf16>,
    shapes: &[(usize, usize, usize)],
    variants: bool,
    layout: ScaleLayout,
    settle: std::time::Duration,
) -> Result<Vec<GemmRecord>> {
    let mut records = Vec::new();
    for &(m, n, k) in shapes {
        records.extend(problem(gpu, input, m, n, k, variants, layout, settle)?);
    }
    Ok(records)
}

/// Lets the GPU idle for `settle` once its queued work is done (nothing for
/// zero): `--gemm-settle-ms`, before each record's timed graphs.
fn settle_gpu(gpu: &Gpu, settle: std::time::Duration) -> Result<()> {
    if !settle.is_zero() {
        gpu.stream().synchronize()?;
        std::thread::sleep(settle);
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn problem(
    gpu: &Gpu,
    input: &CudaSlice<bf16>,
    m: usize,
    n: usize,
    k: usize,
    variants: bool,
    layout: ScaleLayout,
    settle: std::time::Duration,
) -> Result<Vec<GemmRecord>> {
    let stream = gpu.stream();
    let kb = k.div_ceil(128);
    let (bs, sb) = super::e2e::weight_copies(gpu, input, m, n, k)?;
    let copies = bs.len();
    // A from the other end of the input, so A and B differ.
    let qcfg = TokenGroupConfig { layout, ..TokenGroupConfig::default() };
    let mut a_src = stream.alloc_zeros::<bf16>(m * k)?;
    stream.memcpy_dtod(&input.slice(input.len() - m * k..), &mut a_src)?;
    let mut a = stream.alloc_zeros::<u8>(m * k)?;
    let mut sa = stream.alloc_zeros::<f32>(qcfg.layout.len(m as u64, kb as u64) as usize)?;
    gpu::per_token_group_quant(gpu, &a_src, MatrixShape::new(m, k)?, &qcfg, &mut a, &mut sa)?;
    drop(a_src);
    let shape = GemmShape::new(m, n, k)?;
    let base = GemmConfig { format: qcfg.format, a_scale_layout: qcfg.layout, ..GemmConfig::default() };

    // The reference: the mma.sync kernel, f32 C.
    let mut c32 = stream.alloc_zeros::<f32>(m * n)?;
    let f32_cfg = GemmConfig { output: OutputType::F32, ..base };
    mm_fp8_blockscale_on(gpu, &a, &sa, &bs[0], &sb, shape, &f32_cfg, GpuGemmOut::F32(&mut c32), Path::MmaSync)?;
    let reference = stream.clone_dtoh(&c32)?;
    let ref_max = reference.iter().fold(0f64, |acc, &v| acc.max((v as f64).abs()));

    let mut configs: Vec<(GemmConfig, bool, Path)> =
        vec![(base, false, Path::Best), (GemmConfig { precision: GemmPrecision::Precise, ..base }, false, Path::Best)];
    if variants {
        // The planned tile without clusters, then every tile forced.
        configs.push((base, false, Path::Unicast));
        // Tiles with a 2-CTA kernel run both ways (the table shows the
        // clustered one; the log and the JSON have both).
        for t in GemmTile::ALL {
            let forced = GemmConfig { tile: Some(t), ..base };
            configs.push((forced, true, Path::Best));
            if gemm_wgmma_multicast_kernel(t, GemmOut::Bf16).is_some() {
                configs.push((forced, true, Path::Unicast));
            }
        }
    }
    let mut c = stream.alloc_zeros::<bf16>(m * n)?;
    let mut out = Vec::new();
    for (cfg, forced, path) in configs {
        if forced && path == Path::Unicast && !wgmma_plan(gpu, shape, &cfg, Path::Best)?.clustered {
            continue; // the same launch as the forced tile's own record
        }
        let Planned { tile, splits, clustered, tail } = wgmma_plan(gpu, shape, &cfg, path)?;
        // Error, f32 C.
        stream.memset_zeros(&mut c32)?;
        let f32c = GemmConfig { output: OutputType::F32, ..cfg };
        mm_fp8_blockscale_on(gpu, &a, &sa, &bs[0], &sb, shape, &f32c, GpuGemmOut::F32(&mut c32), path)?;
        let got = stream.clone_dtoh(&c32)?;
        let diff = got.iter().zip(&reference).fold(0f64, |acc, (&x, &y)| acc.max((x as f64 - y as f64).abs()));
        let max_rel_err = if ref_max > 0.0 { diff / ref_max } else { diff };
        // Time, bf16 C, in a graph (after a warm-up).
        let mut turn = 0usize;
        let mut launch = || {
            turn = (turn + 1) % copies;
            mm_fp8_blockscale_on(gpu, &a, &sa, &bs[turn], &sb, shape, &cfg, GpuGemmOut::Bf16(&mut c), path)
        };
        for _ in 0..copies + 2 {
            launch()?;
        }
        settle_gpu(gpu, settle)?;
        let us = timing::graph_us_per_launch(stream, launches(m, n, k), 10, &mut launch)?;
        let r = GemmRecord {
            m,
            n,
            k,
            precision: cfg.precision.name(),
            scale_layout: layout.name(),
            tile,
            forced,
            clustered,
            unicast: path == Path::Unicast,
            splits,
            tail,
            us,
            tflops: tflops(m, n, k, us),
            max_rel_err,
            note: None,
        };
        eprintln!(
            "bench gemm: {m}x{n}x{k} {} {}{}{}{}: {:.1} us, {:.0} TFLOP/s, err {:.2e}",
            r.precision,
            r.tile,
            if clustered { " x2 multicast" } else { "" },
            r.tail.as_deref().map_or(String::new(), |t| format!(" + tail {t}")),
            match (forced, r.unicast) {
                (true, true) => " (forced, no clusters)",
                (true, false) => " (forced)",
                _ => "",
            },
            r.us,
            r.tflops,
            r.max_rel_err
        );
        out.push(r);
    }
    // The peer, where its scale layout is the one A was quantized in.
    if layout == ScaleLayout::ColMajorTmaAligned {
        settle_gpu(gpu, settle)?;
        let timed = cublaslt::BlockScaledLt::new(stream, m, n, k, &sa, &sb)
            .and_then(|mut plan| cublaslt::time_us(&mut plan, &a, &bs, &mut c, launches(m, n, k)));
        let (us, note) = match timed {
            Ok(us) => (us, None),
            Err(why) => (f64::NAN, Some(why)),
        };
        eprintln!(
            "bench gemm: {m}x{n}x{k} cuBLASLt block-scaled: {}",
            note.as_deref().map_or(format!("{us:.1} us"), str::to_owned)
        );
        out.push(GemmRecord {
            m,
            n,
            k,
            precision: "cublaslt",
            scale_layout: layout.name(),
            tile: "cuBLASLt",
            forced: false,
            clustered: false,
            unicast: false,
            splits: 1,
            tail: None,
            us,
            tflops: tflops(m, n, k, us),
            max_rel_err: f64::NAN,
            note,
        });
    }
    Ok(out)
}

/// The section's markdown: one row per shape, `Fast` (planned tile) and
/// `Precise` side by side (a tile marked `x2` ran in 2-CTA clusters sharing
/// A), then with `--gemm-variants` the planned tile without clusters and
/// one column per forced tile.
pub(crate) fn report(records: &[GemmRecord], deepgemm: Option<&DeepGemm>) -> String {
    use std::fmt::Write as _;
    let mut s = String::from(
        "\n## mm_fp8_blockscale: GEMM alone, per launch in a CUDA graph\n\n\
         Error: `max|C - C_ref| / max|C_ref|`, f32 C, against the `mma.sync` kernel on the same device \
         (exact f32 block sums); tolerance 5e-3 (fast), 1e-3 (precise).\n\n",
    );
    let mut layouts: Vec<&str> = records.iter().map(|r| r.scale_layout).collect();
    layouts.dedup();
    let _ = writeln!(s, "A's scales: {} (`--gemm-scale-layout`).\n", layouts.join(", "));
    let forced_tiles: Vec<&str> =
        GemmTile::ALL.iter().map(|t| t.name()).filter(|t| records.iter().any(|r| r.forced && r.tile == *t)).collect();
    let _ = write!(
        s,
        "| M | N | K | fast tile | splits | fast us | fast TFLOP/s | fast err | precise kernel | precise us | precise TFLOP/s | precise err | precise / fast |"
    );
    let any_peer = records.iter().any(|r| r.precision == "cublaslt");
    if any_peer {
        s.push_str(" cuBLASLt block-scaled us | cuBLASLt TFLOP/s | fast / cuBLASLt |");
    }
    if deepgemm.is_some() {
        s.push_str(" DeepGEMM us (same harness) | DeepGEMM TFLOP/s | fast / DeepGEMM |");
    }
    let any_unicast = records.iter().any(|r| r.unicast);
    if any_unicast {
        s.push_str(" planned tile without clusters TFLOP/s |");
    }
    for t in &forced_tiles {
        let _ = write!(s, " {t} TFLOP/s |");
    }
    s.push_str("\n|---:|---:|---:|---|---:|---:|---:|---:|---|---:|---:|---:|---:|");
    let peer_columns = 3 * any_peer as usize + 3 * deepgemm.is_some() as usize;
    s.push_str(&"---:|".repeat(forced_tiles.len() + any_unicast as usize + peer_columns));
    s.push('\n');
    let mut shapes: Vec<(usize, usize, usize)> = Vec::new();
    for r in records {
        if !shapes.contains(&(r.m, r.n, r.k)) {
            shapes.push((r.m, r.n, r.k));
        }
    }
    for (m, n, k) in shapes {
        let of = |p: &str| {
            records.iter().find(|r| (r.m, r.n, r.k) == (m, n, k) && !r.forced && !r.unicast && r.precision == p)
        };
        let (Some(f), Some(p)) = (of("fast"), of("precise")) else { continue };
        let _ = write!(
            s,
            "| {m} | {n} | {k} | {}{}{} | {} | {:.1} | {:.0} | {:.2e} | {}{} | {:.1} | {:.0} | {:.2e} | {:.2} |",
            f.tile,
            if f.clustered { " x2" } else { "" },
            f.tail.as_deref().map_or(String::new(), |t| format!(" + {t}")),
            f.splits,
            f.us,
            f.tflops,
            f.max_rel_err,
            p.tile,
            p.tail.as_deref().map_or(String::new(), |t| format!(" + {t}")),
            p.us,
            p.tflops,
            p.max_rel_err,
            p.tflops / f.tflops
        );
        if any_peer {
            match of("cublaslt").filter(|r| r.note.is_none()) {
                Some(r) => {
                    let _ = write!(s, " {:.1} | {:.0} | {:.2} |", r.us, r.tflops, f.tflops / r.tflops);
                }
                None => s.push_str(" - | - | - |"),
            }
        }
        if let Some(dg) = deepgemm {
            match dg.graph_us(m, n, k) {
                Some(us) => {
                    let dg_tflops = tflops(m, n, k, us);
                    let _ = write!(s, " {us:.1} | {dg_tflops:.0} | {:.2} |", f.tflops / dg_tflops);
                }
                None => s.push_str(" - | - | - |"),
            }
        }
        if any_unicast {
            match records.iter().find(|r| (r.m, r.n, r.k) == (m, n, k) && r.unicast) {
                Some(r) => {
                    let _ = write!(s, " {:.0} |", r.tflops);
                }
                None => s.push_str(" - |"),
            }
        }
        for t in &forced_tiles {
            match records.iter().find(|r| (r.m, r.n, r.k) == (m, n, k) && r.forced && r.tile == *t) {
                Some(r) => {
                    let _ = write!(s, " {:.0} |", r.tflops);
                }
                None => s.push_str(" - |"),
            }
        }
        s.push('\n');
    }
    let refused: Vec<String> = records
        .iter()
        .filter_map(|r| r.note.as_ref().map(|why| format!("{} x {} x {} ({why})", r.m, r.n, r.k)))
        .collect();
    if !refused.is_empty() {
        let _ = writeln!(s, "\ncuBLASLt has no figure for: {}.", refused.join("; "));
    }
    if let Some(dg) = deepgemm {
        s.push_str(&dg.summary(records));
    }
    if any_peer {
        s.push_str(
            "\ncuBLASLt: its block-scaled fp8 GEMM (scale modes `VEC128_32F` for A, `BLK128x128_32F` for B, cuBLAS \
             12.9 or later) on the same operands, bf16 C, timed in the same graph harness; its error is not measured \
             here.\n",
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(precision: &'static str, tile: &'static str, us: f64) -> GemmRecord {
        GemmRecord {
            m: 1,
            n: 4096,
            k: 8192,
            precision,
            scale_layout: "col-major-tma",
            tile,
            forced: false,
            clustered: false,
            unicast: false,
            splits: 1,
            tail: None,
            us,
            tflops: tflops(1, 4096, 8192, us),
            max_rel_err: 1e-7,
            note: None,
        }
    }

    /// Each row has the header's columns, and names the kernel of each mode.
    #[test]
    fn report_rows_match_the_header_and_name_both_kernels() {
        let md = report(&[record("fast", "64x128", 14.1), record("precise", "stream", 16.0)], None);
        let cells = |line: &str| line.matches('|').count();
        let header = md.lines().find(|l| l.starts_with("| M |")).unwrap();
        let row = md.lines().find(|l| l.starts_with("| 1 |")).unwrap();
        let rule = md.lines().find(|l| l.starts_with("|---:|")).unwrap();
        assert_eq!(cells(header), cells(row), "{md}");
        assert_eq!(cells(header), cells(rule), "{md}");
        assert!(header.contains("| precise kernel |"), "{header}");
        assert!(row.contains("| 64x128 |") && row.contains("| stream |"), "{row}");
        assert!(row.contains("| 14.1 |") && row.contains("| 16.0 |"), "{row}");
    }

    /// The peer's columns: a figure where it ran, dashes and a reason where
    /// it refused, and the header's column count either way.
    #[test]
    fn report_shows_the_peer_or_why_not() {
        let mut refused = record("cublaslt", "cuBLASLt", f64::NAN);
        refused.note = Some("no algorithm for this problem".into());
        let mut other = [
            record("fast", "128x128", 100.0),
            record("precise", "128x128", 120.0),
            record("cublaslt", "cuBLASLt", 110.0),
        ];
        for r in &mut other {
            r.m = 4096;
        }
        let mut records = vec![record("fast", "64x128", 14.1), record("precise", "stream", 16.0), refused];
        records.extend(other);
        let md = report(&records, None);
        let cells = |line: &str| line.matches('|').count();
        let header = md.lines().find(|l| l.starts_with("| M |")).unwrap();
        assert!(header.contains("| fast / cuBLASLt |"), "{header}");
        let rule = md.lines().find(|l| l.starts_with("|---:|")).unwrap();
        assert_eq!(cells(header), cells(rule), "{md}");
        let decode = md.lines().find(|l| l.starts_with("| 1 |")).unwrap();
        let big = md.lines().find(|l| l.starts_with("| 4096 |")).unwrap();
        assert_eq!(cells(header), cells(decode), "{md}");
        assert_eq!(cells(header), cells(big), "{md}");
        assert!(decode.ends_with("| - | - | - |"), "{decode}");
        assert!(big.contains("| 110.0 |") && big.ends_with("| 1.10 |"), "{big}");
        assert!(md.contains("cuBLASLt has no figure for: 1 x 4096 x 8192 (no algorithm for this problem)."), "{md}");
    }

    /// DeepGEMM's same-harness figures: its columns where it ran, dashes
    /// where it did not, the header's column count either way, and the
    /// per-range summary from the planned `Fast` records.
    #[test]
    fn report_sets_deepgemm_beside_fast() {
        let mut records = vec![record("fast", "64x128", 14.1), record("precise", "stream", 16.0)];
        for (precision, us) in [("fast", 100.0), ("precise", 150.0)] {
            let mut r = record(precision, "256x128", us);
            r.m = 4096;
            r.tflops = tflops(4096, 4096, 8192, us);
            records.push(r);
        }
        let dg: DeepGemm = serde_json::from_str(
            r#"{"device": "NVIDIA H200", "rows": [{"M": 4096, "N": 4096, "K": 8192, "copies": 4, "launches": 50,
                "graph_us": 90.0, "flush_us": 95.0, "graph_tflops": 1.0, "flush_tflops": 1.0}]}"#,
        )
        .unwrap();
        let md = report(&records, Some(&dg));
        let cells = |line: &str| line.matches('|').count();
        let header = md.lines().find(|l| l.starts_with("| M |")).unwrap();
        assert!(header.contains("| fast / DeepGEMM |"), "{header}");
        let rule = md.lines().find(|l| l.starts_with("|---:|")).unwrap();
        let decode = md.lines().find(|l| l.starts_with("| 1 |")).unwrap();
        let big = md.lines().find(|l| l.starts_with("| 4096 |")).unwrap();
        for line in [rule, decode, big] {
            assert_eq!(cells(header), cells(line), "{md}");
        }
        assert!(decode.ends_with("| - | - | - |"), "{decode}");
        // 90 us against 100: DeepGEMM is faster, fast / DeepGEMM = 0.90.
        assert!(big.contains("| 90.0 |") && big.ends_with("| 0.90 |"), "{big}");
        assert!(md.contains("M >= 2048: 0.90-0.90 (0 of 1 shapes at 1.05 or more)"), "{md}");
        assert!(!md.contains("M <= 16:"), "{md}");
    }
}
