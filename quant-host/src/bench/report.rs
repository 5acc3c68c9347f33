//! The benchmark's outputs: markdown tables (printed and `bench.md`),
//! `bench.json`, and `bench.svg` (fraction of the copy ceiling against M).

use crate::error::Result;
use quant_kernels::{Fp8Format, ScaleLayout};
use std::fmt::Write as _;
use std::path::Path;

/// One measurement.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Record {
    /// `per_token_group_quant_fp8` or `per_block_quant_fp8`.
    pub op: &'static str,
    /// Output format name.
    pub format: &'static str,
    /// Scale layout name.
    pub layout: &'static str,
    /// M (tokens) or N (weight rows).
    pub rows: usize,
    /// K.
    pub cols: usize,
    /// Median time per launch in a CUDA graph, microseconds (cold L2).
    pub time_us: f64,
    /// Median time of one launch between two CUDA events, launch overhead
    /// included, microseconds.
    pub single_us: f64,
    /// Bytes moved: input read, codes and scales written.
    pub bytes: f64,
    /// `bytes / time`.
    pub gbps: f64,
    /// `gbps` over the device-to-device copy's, measured in the same run.
    pub fraction: f64,
    /// Per launch in a CUDA graph, microseconds: a device-to-device copy of
    /// `bytes / 2` (so `bytes` moved, like the kernel), on buffers rotated
    /// the same way: what the memory system gives a transfer of this size.
    pub same_size_copy_us: f64,
    /// `same_size_copy_us / time_us`: 1.0 means as fast as copying the same
    /// bytes. Small tensors cannot reach the large copy's bandwidth (launch
    /// and ramp-up); this is the fair bar for them.
    pub of_same_size_copy: f64,
}

impl Record {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        op: &'static str,
        format: Fp8Format,
        layout: ScaleLayout,
        rows: usize,
        cols: usize,
        time_us: f64,
        single_us: f64,
        bytes: usize,
        copy_gbps: f64,
    ) -> Self {
        let bytes = bytes as f64;
        let gbps = bytes / (time_us * 1e-6) / 1e9;
        Self {
            op,
            format: format.name(),
            layout: layout.name(),
            rows,
            cols,
            time_us,
            single_us,
            bytes,
            gbps,
            fraction: gbps / copy_gbps,
            same_size_copy_us: f64::NAN,
            of_same_size_copy: f64::NAN,
        }
    }

    /// Records the time of a copy moving the same bytes.
    pub(crate) fn set_same_size_copy(&mut self, us: f64) {
        self.same_size_copy_us = us;
        self.of_same_size_copy = us / self.time_us;
    }

    fn is_token(&self) -> bool {
        self.op == "per_token_group_quant_fp8"
    }
}

/// Prints the summary and writes the report files into `out` (or `.`).
pub(crate) fn write(
    records: &[Record],
    e2e: &[super::E2eRecord],
    gemm: &[super::GemmRecord],
    device: &str,
    copy_gbps: f64,
    out: Option<&Path>,
) -> Result<()> {
    let mut md = String::new();
    let _ = writeln!(md, "# fp8 quantization benchmark\n\nDevice: **{device}**; device-to-device copy: **{copy_gbps:.0} GB/s** (read + write; 1 GiB, best of five rounds of ten), measured in this run.\nbf16 input, groups of 128 / blocks of 128 x 128, float scales. Times are per launch in a CUDA graph, each launch on its own buffers (cold L2); `fraction` = kernel GB/s / copy GB/s; `single launch` is one launch between two events, launch overhead included.\n");
    if !records.is_empty() {
        md.push_str(&summary_tables(records));
        md.push_str(&targets(records));
    }
    if !gemm.is_empty() {
        md.push_str(&super::gemm::report(gemm));
    }
    if !e2e.is_empty() {
        md.push_str(&super::e2e::report(e2e, copy_gbps));
    }
    print!("{md}");
    md.push_str("\n## Every measurement\n\n`same-size copy`: a device-to-device copy moving the same bytes, per launch in a graph; `of copy` = its time / the kernel's.\n\n| op | format | layout | M or N | K | time (us) | GB/s | fraction | same-size copy (us) | of copy | single launch (us) |\n|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in records {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {:.2} | {:.0} | {:.3} | {:.2} | {:.2} | {:.1} |",
            r.op,
            r.format,
            r.layout,
            r.rows,
            r.cols,
            r.time_us,
            r.gbps,
            r.fraction,
            r.same_size_copy_us,
            r.of_same_size_copy,
            r.single_us
        );
    }
    let dir = out.unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("bench.md"), md)?;
    let json = serde_json::json!({ "device": device, "copy_gbps": copy_gbps, "records": records, "gemm": gemm, "end_to_end": e2e });
    std::fs::write(dir.join("bench.json"), serde_json::to_string_pretty(&json).unwrap_or_default())?;
    std::fs::write(dir.join("bench.svg"), svg(records))?;
    eprintln!("bench: wrote bench.md, bench.json, bench.svg to {}", dir.display());
    Ok(())
}

/// Fraction of the copy ceiling, M down and K across, per format; then the
/// weight shapes.
fn summary_tables(records: &[Record]) -> String {
    let mut md = String::new();
    for format in Fp8Format::ALL.map(Fp8Format::name) {
        let rows: Vec<&Record> =
            records.iter().filter(|r| r.is_token() && r.format == format && r.layout == "row-major").collect();
        let mut ks: Vec<usize> = rows.iter().map(|r| r.cols).collect();
        ks.sort_unstable();
        ks.dedup();
        let mut ms: Vec<usize> = rows.iter().map(|r| r.rows).collect();
        ms.sort_unstable();
        ms.dedup();
        let _ = writeln!(md, "## per_token_group_quant_fp8, bf16 -> {format}: fraction of copy (time in us)\n");
        let _ = writeln!(md, "| M \\ K | {} |", ks.iter().map(|k| k.to_string()).collect::<Vec<_>>().join(" | "));
        let _ = writeln!(md, "|---:|{}", "---:|".repeat(ks.len()));
        for m in &ms {
            let cells: Vec<String> = ks
                .iter()
                .map(|k| {
                    rows.iter()
                        .find(|r| r.rows == *m && r.cols == *k)
                        .map(|r| format!("{:.2} ({:.1})", r.fraction, r.time_us))
                        .unwrap_or_default()
                })
                .collect();
            let _ = writeln!(md, "| {m} | {} |", cells.join(" | "));
        }
        md.push('\n');
    }
    let _ = writeln!(md, "## per_block_quant_fp8, bf16, 128 x 128 blocks\n\n`copy us`: a device-to-device copy moving the same bytes (per launch in a graph).\n\n| N | K | e4m3fn us | e4m3fn fraction | e4m3fnuz us | e4m3fnuz fraction | copy us | e4m3fn of copy |\n|---:|---:|---:|---:|---:|---:|---:|---:|");
    let blocks: Vec<&Record> = records.iter().filter(|r| !r.is_token()).collect();
    for r in blocks.iter().filter(|r| r.format == "e4m3fn") {
        let fnuz = blocks.iter().find(|o| o.format == "e4m3fnuz" && o.rows == r.rows && o.cols == r.cols);
        let (fu, ff) = fnuz.map(|o| (format!("{:.1}", o.time_us), format!("{:.3}", o.fraction))).unwrap_or_default();
        let _ = writeln!(
            md,
            "| {} | {} | {:.1} | {:.3} | {fu} | {ff} | {:.1} | {:.2} |",
            r.rows, r.cols, r.time_us, r.fraction, r.same_size_copy_us, r.of_same_size_copy
        );
    }
    let decode: Vec<&Record> = records.iter().filter(|r| r.is_token() && r.rows <= 16).collect();
    if !decode.is_empty() {
        let _ = writeln!(
            md,
            "\n## Decode sizes (M <= 16): us per launch in a CUDA graph, and one launch alone\n\n| format | M | K | graph us/launch | single launch us |\n|---|---:|---:|---:|---:|"
        );
        for r in decode {
            let _ = writeln!(md, "| {} | {} | {} | {:.2} | {:.1} |", r.format, r.rows, r.cols, r.time_us, r.single_us);
        }
    }
    md
}

/// The targets, each judged on this run's numbers.
fn targets(records: &[Record]) -> String {
    let mut md = String::from("\n## Targets\n\n| target | measured | verdict |\n|---|---|---|\n");
    let mut line = |name: &str, measured: String, ok: bool| {
        let _ = writeln!(md, "| {name} | {measured} | {} |", if ok { "PASS" } else { "FAIL" });
    };
    let min_by = |pred: &dyn Fn(&Record) -> bool| {
        records.iter().filter(|r| pred(r)).min_by(|a, b| a.fraction.total_cmp(&b.fraction))
    };
    for format in Fp8Format::ALL.map(Fp8Format::name) {
        if let Some(r) = min_by(&|r| r.is_token() && r.format == format && r.layout == "row-major" && r.rows >= 2048) {
            line(
                &format!("token group -> {format}, M >= 2048, every K: >= 0.90"),
                format!("min {:.3} (M={}, K={})", r.fraction, r.rows, r.cols),
                r.fraction >= 0.90,
            );
        }
    }
    if let Some(r) = min_by(&|r| !r.is_token()) {
        line(
            "block quant, every weight shape: >= 0.90",
            format!("min {:.3} ({} {}x{})", r.fraction, r.format, r.rows, r.cols),
            r.fraction >= 0.90,
        );
    }
    let find = |format: &str, layout: &str, m: usize, k: usize| {
        records.iter().find(|r| r.is_token() && r.format == format && r.layout == layout && r.rows == m && r.cols == k)
    };
    let mut worst_tail: Option<(f64, usize)> = None;
    for r in records.iter().filter(|r| r.is_token() && r.cols == 7000 && r.layout == "row-major" && r.rows >= 2048) {
        if let Some(aligned) = find(r.format, "row-major", r.rows, 7168) {
            let ratio = r.gbps / aligned.gbps;
            if worst_tail.is_none_or(|(w, _)| ratio < w) {
                worst_tail = Some((ratio, r.rows));
            }
        }
    }
    if let Some((ratio, m)) = worst_tail {
        line("K = 7000 within 5% of K = 7168 (GB/s, M >= 2048)", format!("worst {ratio:.3} at M={m}"), ratio >= 0.95);
    }
    if let Some(r) =
        records.iter().filter(|r| r.is_token() && r.rows <= 16).max_by(|a, b| a.time_us.total_cmp(&b.time_us))
    {
        let us = r.time_us;
        line(
            "M <= 16: per-launch time in a CUDA graph <= 3 us",
            format!("worst {us:.2} us (M={}, K={}, {})", r.rows, r.cols, r.format),
            us <= 3.0,
        );
    }
    for layout in ["col-major", "col-major-tma"] {
        let mut worst: Option<(f64, usize)> = None;
        for r in records.iter().filter(|r| r.is_token() && r.layout == layout) {
            if let Some(row) = find(r.format, "row-major", r.rows, r.cols) {
                let ratio = r.gbps / row.gbps;
                if worst.is_none_or(|(w, _)| ratio < w) {
                    worst = Some((ratio, r.cols));
                }
            }
        }
        if let Some((ratio, k)) = worst {
            line(
                &format!("{layout} scales within 5% of row-major (M = 4096)"),
                format!("worst {ratio:.3} at K={k}"),
                ratio >= 0.95,
            );
        }
    }
    md
}

/// Fraction of the copy ceiling against M (log scale), one line per K,
/// bf16 -> e4m3fn row-major.
fn svg(records: &[Record]) -> String {
    let (w, h, pad) = (760.0, 420.0, 60.0);
    let rows: Vec<&Record> =
        records.iter().filter(|r| r.is_token() && r.format == "e4m3fn" && r.layout == "row-major").collect();
    let max_m = rows.iter().map(|r| r.rows).max().unwrap_or(1).max(2) as f64;
    let x = |m: usize| pad + (m as f64).log2() / max_m.log2() * (w - 2.0 * pad);
    let y = |f: f64| h - pad - f.clamp(0.0, 1.1) / 1.1 * (h - 2.0 * pad);
    let mut s = format!("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n");
    let _ = writeln!(s, "<text x=\"{pad}\" y=\"20\" font-size=\"14\">per_token_group_quant_fp8 bf16 -> e4m3fn: fraction of device copy bandwidth vs M</text>");
    for f in [0.0, 0.25, 0.5, 0.75, 0.9, 1.0] {
        let _ = writeln!(s, "<line x1=\"{pad}\" x2=\"{}\" y1=\"{yf:.1}\" y2=\"{yf:.1}\" stroke=\"#ddd\"/><text x=\"10\" y=\"{yf:.1}\">{f:.2}</text>", w - pad, yf = y(f));
    }
    let mut ms: Vec<usize> = rows.iter().map(|r| r.rows).collect();
    ms.sort_unstable();
    ms.dedup();
    for m in &ms {
        let _ = writeln!(s, "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{m}</text>", x(*m), h - pad + 16.0);
    }
    let _ =
        writeln!(s, "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">M (tokens, log scale)</text>", w / 2.0, h - 15.0);
    let mut ks: Vec<usize> = rows.iter().map(|r| r.cols).collect();
    ks.sort_unstable();
    ks.dedup();
    let colors = [
        "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
        "#000000",
    ];
    for (i, k) in ks.iter().enumerate() {
        let mut pts: Vec<&&Record> = rows.iter().filter(|r| r.cols == *k).collect();
        pts.sort_by_key(|r| r.rows);
        let path: Vec<String> = pts.iter().map(|r| format!("{:.1},{:.1}", x(r.rows), y(r.fraction))).collect();
        let color = colors[i % colors.len()];
        let _ = writeln!(
            s,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"1.5\" points=\"{}\"/>",
            path.join(" ")
        );
        let _ =
            writeln!(s, "<text x=\"{}\" y=\"{}\" fill=\"{color}\">K={k}</text>", w - pad + 4.0, 40.0 + 14.0 * i as f64);
    }
    s.push_str("</svg>\n");
    s
}
