//! The fused quantizers on the GPU against the CPU reference, bit for bit:
//! silu_mul (dense), the masked MoE layout (plain quantizer and silu_mul),
//! rms_norm with and without a residual (whose written-back values are
//! compared too; also a sweep of its CTA sizes, slot counts and K tails
//! with special values in single groups), and the packed UE8M0 scale layout
//! of each. Each test prints how many cases it compared.
//!
//! Every test needs a CUDA GPU and is `#[ignore]`d; run them on the GPU
//! machine with `--include-ignored` (see `cargo xtask gpu-bundle`).
//! `QUANT_GPU_CASES` sets the cases per test (the sanitizer runs use fewer).

use half::{bf16, f16};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use quant_host::{Device, Element, Fp8Format, Gpu, GroupSize, RmsNormConfig, ScaleLayout, ScaleMode, TokenGroupConfig};
use quant_tests::fused::{
    many_experts_case, masked_case, rms_case, run_group, run_group_packed, run_rms, run_rms_packed, silu_case,
    GroupCase, RmsCase, RmsInputs,
};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// Asserts two results are equal element for element, naming how many
/// differ and the first few (index, GPU, CPU) instead of printing both
/// tensors whole (a log the device tool can return).
fn assert_elems<T: PartialEq + std::fmt::Debug>(what: &str, gpu: &[T], cpu: &[T]) {
    assert_eq!(gpu.len(), cpu.len(), "{what}: lengths");
    let bad: Vec<usize> = (0..gpu.len()).filter(|&i| gpu[i] != cpu[i]).collect();
    let first: Vec<_> = bad.iter().take(5).map(|&i| (i, &gpu[i], &cpu[i])).collect();
    assert!(bad.is_empty(), "{what}: {} of {} differ; first (index, gpu, cpu): {first:?}", bad.len(), gpu.len());
}

fn gpu() -> Device {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    Device::Cuda(GPU.get_or_init(|| Gpu::new(0).expect("these tests need a CUDA GPU")).clone())
}

fn cases(default: u32) -> u32 {
    std::env::var("QUANT_GPU_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn assert_same(gpu: &(Vec<u8>, Vec<f32>), cpu: &(Vec<u8>, Vec<f32>), what: &str) {
    assert_eq!(gpu.0.len(), cpu.0.len(), "{what}: code count");
    if let Some(i) = gpu.0.iter().zip(&cpu.0).position(|(a, b)| a != b) {
        panic!("{what}: code {i}: gpu {:#04x} cpu {:#04x}", gpu.0[i], cpu.0[i]);
    }
    assert_eq!(gpu.1.len(), cpu.1.len(), "{what}: scale count");
    for (i, (a, b)) in gpu.1.iter().zip(&cpu.1).enumerate() {
        assert!(a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()), "{what}: scale {i}: gpu {a:e} cpu {b:e}");
    }
}

fn check_group<T: Element>(case: &GroupCase, silu: bool) {
    let x = case.input::<T>(silu);
    let cpu = run_group(&Device::Cpu, case, silu, &x).unwrap();
    let gpu = run_group(&gpu(), case, silu, &x).unwrap();
    assert_same(&gpu, &cpu, &format!("{} silu={silu} {case:?}", T::DTYPE.name()));
}

/// [`check_group`] with the input type `run` drew (0 bf16, 1 f16, else f32).
fn check_group_as(dtype: u8, case: &GroupCase, silu: bool) {
    match dtype {
        0 => check_group::<bf16>(case, silu),
        1 => check_group::<f16>(case, silu),
        _ => check_group::<f32>(case, silu),
    }
}

fn check_rms<T: Element>(case: &RmsCase) {
    check_rms_inputs::<T>(case, &case.inputs::<T>());
}

fn check_rms_inputs<T: Element>(case: &RmsCase, inputs: &RmsInputs<T>) {
    let (cpu, cpu_r) = run_rms(&Device::Cpu, case, inputs).unwrap();
    let (gpu, gpu_r) = run_rms(&gpu(), case, inputs).unwrap();
    let what = format!("{} {case:?}", T::DTYPE.name());
    assert_same(&gpu, &cpu, &what);
    let bits = |v: &[T]| v.iter().map(|e| e.to_f32().to_bits()).collect::<Vec<_>>();
    assert_elems(&format!("{what}: residual output"), &bits(&gpu_r), &bits(&cpu_r));
}

/// Runs `strategy`'s cases through `check` for every input type and prints
/// the count.
fn run<S: Strategy>(name: &str, default: u32, strategy: S, check: impl Fn(&S::Value, u8)) {
    let count = AtomicUsize::new(0);
    let mut runner = TestRunner::new(Config { cases: cases(default), failure_persistence: None, ..Config::default() });
    runner
        .run(&(strategy, 0u8..3), |(case, dtype)| {
            check(&case, dtype);
            count.fetch_add(1, Ordering::Relaxed);
            Ok(())
        })
        .unwrap();
    eprintln!("{name}: {} cases bit-identical to the CPU reference", count.load(Ordering::Relaxed));
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn silu_mul_matches_cpu_bit_for_bit() {
    run("silu_mul", 300, silu_case(), |case, dtype| check_group_as(dtype, case, true));
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn masked_layout_matches_cpu_bit_for_bit() {
    run("masked (quant and silu_mul)", 300, (masked_case(), any::<bool>()), |(case, silu), dtype| {
        check_group_as(dtype, case, *silu)
    });
}

/// The masked layouts of many experts: the running sums of the valid rows
/// the kernel scans in shared memory over several warp-wide steps, its
/// search over them past experts with no valid rows, and the per-row reads
/// of `masked_m` it falls back to beyond 1024 experts.
#[test]
#[ignore = "needs a CUDA GPU"]
fn masked_layout_of_many_experts_matches_cpu_bit_for_bit() {
    run("masked, many experts", 60, (many_experts_case(), any::<bool>()), |(case, silu), dtype| {
        check_group_as(dtype, case, *silu)
    });
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn rms_norm_matches_cpu_bit_for_bit() {
    run("rms_norm", 200, rms_case(), |case, dtype| match dtype {
        0 => check_rms::<bf16>(case),
        1 => check_rms::<f16>(case),
        _ => check_rms::<f32>(case),
    });
}

/// The RMS kernel's quantization in its leaf layout (a group's chunks in
/// adjacent lanes of one slot, the 4 groups of a block of lanes
/// reduce-scattered) over every CTA size and slot count, K tails (a
/// partial last slot, a tail group, K not a multiple of 8, an unaligned
/// row stride), each group size with the formats, layouts and scale modes
/// spread over the shapes, one row and three, with and without a residual,
/// and special values that reach single groups: a NaN and an infinity in
/// the weight make one element of every row NaN or infinite (that group's
/// scale NaN or infinite, every other group's as without them), and an
/// infinity in row 1's x makes that row's `inv` zero (its group NaN, the
/// rest zeros). Every one against the CPU reference, bit for bit.
#[test]
#[ignore = "needs a CUDA GPU"]
fn rms_norm_leaf_layout_sweep_matches_cpu_bit_for_bit() {
    // (K, row stride - K): CTAs of 32 threads with 1 slot (K = 8, 100,
    // 256), 2 (300, 512) and 4 (1000), then 64 (1536), 128 (4096), 256
    // (7000: slot 3 partly past the row and a tail group of 88; 7001: the
    // checked path; 7168 with a padded stride: the checked path on whole
    // chunks), 512 (12288) and 1024 threads (32768).
    let shapes = [
        (8, 0),
        (100, 0),
        (256, 0),
        (300, 3),
        (512, 0),
        (1000, 0),
        (1536, 0),
        (4096, 0),
        (7000, 0),
        (7001, 0),
        (7168, 0),
        (7168, 5),
        (12288, 0),
        (32768, 0),
    ];
    let mut count = 0;
    for (k, &(cols, pad)) in shapes.iter().enumerate() {
        for (g, &group_size) in GroupSize::ALL.iter().enumerate() {
            for rows in [1usize, 3] {
                let i = 6 * k + 2 * g + (rows > 1) as usize;
                let quant = TokenGroupConfig {
                    format: Fp8Format::ALL[i % 2],
                    group_size,
                    layout: ScaleLayout::ALL[i % 3],
                    scale_mode: ScaleMode::ALL[(i / 2) % 2],
                    ..Default::default()
                };
                let case = RmsCase {
                    rows,
                    cols,
                    pad,
                    residual: i % 4 < 2,
                    specials: false,
                    cfg: RmsNormConfig { quant, norm_eps: 1e-6 },
                    seed: i as u64,
                };
                check_rms_specials::<bf16>(&case);
                check_rms_specials::<f16>(&case);
                check_rms_specials::<f32>(&case);
                count += 3;
            }
        }
    }
    eprintln!("rms_norm leaf-layout sweep: {count} cases bit-identical to the CPU reference");
}

/// [`check_rms`] with a NaN and an infinity in the weight and, with two
/// rows or more, an infinity in row 1's x (see the sweep above).
fn check_rms_specials<T: Element>(case: &RmsCase) {
    let (mut x, mut w, r) = case.inputs::<T>();
    let cols = case.cols;
    w[cols * 7 / 13] = T::from_f32(f32::NAN);
    w[cols / 3] = T::from_f32(f32::INFINITY);
    if case.rows > 1 {
        x[(cols + case.pad) + cols / 2] = T::from_f32(f32::NEG_INFINITY);
    }
    check_rms_inputs::<T>(case, &(x, w, r));
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn silu_mul_exp_and_division_match_over_a_dense_sweep() {
    // Every bf16 gate from -128 to 128 (and every f16 one from -96 to 96)
    // against up = 1 and up = -3: exp's clamp, reduction, polynomial and
    // scaling, the reciprocal's seed and Newton steps and the sign select,
    // value by value.
    let gates: Vec<f32> =
        (0u32..=0xFFFF).map(|b| f32::from_bits(b << 16)).filter(|v| v.is_finite() && v.abs() <= 128.0).collect();
    let n = gates.len();
    for up in [1.0f32, -3.0] {
        let mut x = Vec::with_capacity(2 * n);
        x.extend(gates.iter().map(|&g| bf16::from_f32(g)));
        x.extend(std::iter::repeat_n(bf16::from_f32(up), n));
        // One row per 128 gates: every group's scale is its own.
        let rows = n / 128;
        let cols = 128;
        let mut m = Vec::with_capacity(rows * 2 * cols);
        for r in 0..rows {
            m.extend_from_slice(&x[r * cols..][..cols]);
            m.extend_from_slice(&x[n + r * cols..][..cols]);
        }
        let case = GroupCase {
            rows,
            cols,
            pad: 0,
            experts: 1,
            masked: None,
            specials: false,
            cfg: Default::default(),
            seed: 0,
        };
        let cpu = run_group(&Device::Cpu, &case, true, &m).unwrap();
        let gpu = run_group(&gpu(), &case, true, &m).unwrap();
        assert_same(&gpu, &cpu, &format!("bf16 gate sweep, up = {up}"));
        eprintln!("silu_mul gate sweep (up = {up}): {} gates bit-identical", rows * cols);
    }
    let f16_gates: Vec<f16> =
        (0u16..=0xFFFF).map(f16::from_bits).filter(|v| v.is_finite() && v.to_f32().abs() <= 96.0).collect();
    let rows = f16_gates.len() / 64;
    let mut m = Vec::with_capacity(rows * 128);
    for r in 0..rows {
        m.extend_from_slice(&f16_gates[r * 64..][..64]);
        m.extend(std::iter::repeat_n(f16::from_f32(0.75), 64));
    }
    let case = GroupCase {
        rows,
        cols: 64,
        pad: 0,
        experts: 1,
        masked: None,
        specials: false,
        cfg: quant_host::TokenGroupConfig { group_size: quant_host::GroupSize::G64, ..Default::default() },
        seed: 0,
    };
    let cpu = run_group(&Device::Cpu, &case, true, &m).unwrap();
    let gpu = run_group(&gpu(), &case, true, &m).unwrap();
    assert_same(&gpu, &cpu, "f16 gate sweep");
    eprintln!("silu_mul f16 gate sweep: {} gates bit-identical", rows * 64);
}

fn check_packed<T: Element>(dense: &GroupCase, masked: &GroupCase, rms: &RmsCase, silu: bool) {
    for case in [dense, masked] {
        let x = case.input::<T>(silu);
        let cpu = run_group_packed(&Device::Cpu, case, silu, &x).unwrap();
        let gpu = run_group_packed(&gpu(), case, silu, &x).unwrap();
        let what = format!("packed {} silu={silu} {case:?}", T::DTYPE.name());
        assert_elems(&format!("{what}: codes"), &gpu.0, &cpu.0);
        assert_elems(&format!("{what}: packed words"), &gpu.1, &cpu.1);
    }
    let inputs = rms.inputs::<T>();
    let (cpu, cpu_r) = run_rms_packed(&Device::Cpu, rms, &inputs).unwrap();
    let (gpu, gpu_r) = run_rms_packed(&gpu(), rms, &inputs).unwrap();
    let what = format!("packed rms {} {rms:?}", T::DTYPE.name());
    assert_elems(&format!("{what}: codes"), &gpu.0, &cpu.0);
    assert_elems(&format!("{what}: packed words"), &gpu.1, &cpu.1);
    let bits = |v: &[T]| v.iter().map(|e| e.to_f32().to_bits()).collect::<Vec<_>>();
    assert_elems(&format!("{what}: residual output"), &bits(&gpu_r), &bits(&cpu_r));
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn packed_ue8m0_matches_cpu_bit_for_bit() {
    let strategy = (silu_case(), masked_case(), rms_case(), any::<bool>());
    run("packed ue8m0 (quant, silu_mul, masked, rms_norm)", 150, strategy, |(dense, masked, rms, silu), dtype| {
        let ue8m0 = |c: &GroupCase| {
            let mut c = c.clone();
            c.cfg.scale_mode = ScaleMode::Ue8m0;
            c
        };
        let (dense, masked) = (ue8m0(dense), ue8m0(masked));
        let mut rms = rms.clone();
        rms.cfg.quant.scale_mode = ScaleMode::Ue8m0;
        match dtype {
            0 => check_packed::<bf16>(&dense, &masked, &rms, *silu),
            1 => check_packed::<f16>(&dense, &masked, &rms, *silu),
            _ => check_packed::<f32>(&dense, &masked, &rms, *silu),
        }
    });
}
