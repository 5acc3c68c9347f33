//! `fp8q bench --checkpoint` through its library entry: it measures what it
//! says on a one-copy synthetic checkpoint and leaves nothing behind.

use quant_host::checkpoint::bench;
use quant_host::checkpoint::demo::SYNTHETIC;
use quant_host::checkpoint::Durability;
use quant_host::Device;

#[test]
fn checkpoint_bench_times_quantize_beside_a_copy_and_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    // Both modes by default, the flushed one first; `--no-sync` alone.
    assert_eq!(bench::modes(false), [Durability::Synced, Durability::NoSync]);
    assert_eq!(bench::modes(true), [Durability::NoSync]);
    let result = bench::run(1, Some(dir.path()), &Device::Cpu, bench::modes(false)).unwrap();
    assert!(result.file_bytes > 90 << 20, "one copy is about 98 MiB: {}", result.file_bytes);
    // Two shards, the index, config.json and tokenizer.json.
    assert_eq!(result.files, 5);
    assert!(result.copy > std::time::Duration::ZERO && result.read > std::time::Duration::ZERO);
    let modes: Vec<_> = result.runs.iter().map(|r| r.report.durability).collect();
    assert_eq!(modes, [Durability::Synced, Durability::NoSync]);
    for run in &result.runs {
        let quantized = SYNTHETIC.iter().filter(|t| run.report.quantized.iter().any(|q| q.name == t.name)).count();
        assert!(quantized >= 6, "{}", run.report);
        assert!(run.report.stages.is_some());
        if std::path::Path::new("/proc/self/status").exists() {
            assert!(run.peak_rss.is_some_and(|rss| rss > 0));
        }
    }
    let text = result.to_string();
    for needle in ["copy (cp -r):", "quantize: ", "--no-sync: ", "/ copy:", "stages:", "peak memory:", "on disk:"] {
        assert!(text.contains(needle), "missing `{needle}` in\n{text}");
    }
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none(), "the work folder was not removed");
}
