//! `fp8q quantize` on the GPU (page-locked staging, three streams, two
//! weights in flight) against the CPU pipeline: every output file byte for
//! byte. Needs a CUDA GPU, so `#[ignore]`d in CI; the GPU bundle runs it.

use quant_host::checkpoint::demo::write_synthetic_checkpoint_copies;
use quant_host::checkpoint::{quantize, QuantizeOptions, Silent};
use quant_host::{BlockConfig, Device, Fp8Format, ScaleMode};
use std::path::Path;

/// Every file under `dir`, relative path to bytes.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
        .collect();
    out.sort();
    out
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn gpu_pipeline_writes_the_cpu_pipelines_bytes() {
    let gpu = Device::cuda(0).expect("this test needs a CUDA GPU");
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input");
    // Three copies: enough weights that several are in flight and slots are reused.
    write_synthetic_checkpoint_copies(&input, 3).unwrap();
    for (format, scale_mode, block) in
        [(Fp8Format::E4M3Fn, ScaleMode::Float, 128), (Fp8Format::E4M3Fnuz, ScaleMode::Ue8m0, 64)]
    {
        let opts = QuantizeOptions {
            block: BlockConfig { format, scale_mode, block_rows: block, block_cols: block, ..BlockConfig::default() },
            ..QuantizeOptions::default()
        };
        let tag = format!("{}-{}-{block}", format.name(), scale_mode.name());
        let on_cpu = dir.path().join(format!("cpu-{tag}"));
        let on_gpu = dir.path().join(format!("gpu-{tag}"));
        quantize(&input, &on_cpu, &opts, &Device::Cpu, &Silent).unwrap();
        let report = quantize(&input, &on_gpu, &opts, &gpu, &Silent).unwrap();
        let (cpu_files, gpu_files) = (files(&on_cpu), files(&on_gpu));
        assert_eq!(cpu_files.len(), gpu_files.len(), "{tag}: file count");
        for ((name, a), (gpu_name, b)) in cpu_files.iter().zip(&gpu_files) {
            assert_eq!(name, gpu_name, "{tag}");
            assert!(a == b, "{tag}: {name} differs between the CPU and the GPU");
        }
        let stages = report.stages.expect("stage times");
        assert!(stages.transfers > std::time::Duration::ZERO, "{tag}: {stages:?}");
        assert!(stages.quantize > std::time::Duration::ZERO, "{tag}: {stages:?}");
    }
}
