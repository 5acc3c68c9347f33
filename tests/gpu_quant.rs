//! GPU quantizers against the CPU reference, bit for bit.
//!
//! Every test here needs a CUDA GPU and is `#[ignore]`d so that CI (which has
//! none) reports it as ignored; run them on the GPU machine with
//! `--include-ignored` (see `cargo xtask gpu-bundle`).

use half::{bf16, f16};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRng, TestRunner};
use quant_host::gpu::TokenGroupChunks;
use quant_host::{
    cpu, BlockConfig, Device, Element, Fp8Format, Gpu, GroupSize, MatrixShape, Quantized, ScaleLayout, ScaleMode,
    Tensor, TokenGroupConfig,
};
use std::sync::OnceLock;

fn gpu() -> &'static Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(|| Gpu::new(0).expect("these tests need a CUDA GPU"))
}

/// Random values spanning many magnitudes, with occasional specials, never
/// all zero: wrong indexing cannot hide behind zeros.
fn random_values(rng: &mut TestRng, n: usize, specials: bool) -> Vec<f32> {
    (0..n)
        .map(|_| {
            let r: u32 = rng.random();
            if specials && r.is_multiple_of(997) {
                [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 0.0, -0.0, 1e-40][(r / 997) as usize % 6]
            } else {
                let mag = 2f32.powi((r % 40) as i32 - 20);
                let unit = (rng.random::<u32>() as f32 / u32::MAX as f32) * 2.0 - 1.0;
                unit * mag
            }
        })
        .collect()
}

/// `a` and `b` hold the same f32 scales: bit-identical, except that any two
/// NaNs are equal (the spec fixes that a scale is NaN, not its payload).
fn assert_same_scales(a: &[f32], b: &[f32], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: scale count");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()), "{what}: scale {i}: gpu {x:e} cpu {y:e}");
    }
}

fn assert_same_codes(a: &[u8], b: &[u8], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: code count");
    if let Some(i) = a.iter().zip(b).position(|(x, y)| x != y) {
        panic!("{what}: code {i} differs: gpu {:#04x} cpu {:#04x}", a[i], b[i]);
    }
}

/// Runs `into` (a quantizer's `_into` call on `dev`) twice, over codes and
/// scales filled with two different sentinels (never a valid scale: scales
/// are positive, inf or NaN, padding +0), and checks each result against
/// the CPU's `expected` bit for bit: an element the kernel skipped keeps its
/// sentinel in both runs, so one of them differs from the CPU's.
fn assert_writes_every_output(
    dev: &Device,
    expected: &Quantized,
    what: &str,
    mut into: impl FnMut(&mut Tensor<u8>, &mut Tensor<f32>),
) {
    let (cs, ss) = (expected.codes.shape(), expected.scales.shape());
    for (code, scale) in [(0x00u8, -1.0f32), (0xFF, -2.0)] {
        let mut codes = dev.upload(&vec![code; cs.extent()], cs).unwrap();
        let mut scales = dev.upload(&vec![scale; ss.extent()], ss).unwrap();
        into(&mut codes, &mut scales);
        let what = format!("{what} over {code:#04x}");
        assert_same_codes(&codes.to_vec().unwrap(), expected.codes.as_host().unwrap(), &what);
        assert_same_scales(&scales.to_vec().unwrap(), expected.scales.as_host().unwrap(), &what);
    }
}

/// Every token-group kernel choice the tests run each case with: the three
/// tilings forced (`Row` is the wide kernel where no row kernel exists), and
/// the one the problem picks.
const TILINGS: [TokenGroupChunks; 4] =
    [TokenGroupChunks::Two, TokenGroupChunks::Four, TokenGroupChunks::Row, TokenGroupChunks::BySize];

#[derive(Debug, Clone, Copy)]
struct TokenCase {
    rows: usize,
    cols: usize,
    pad: usize,
    cfg: TokenGroupConfig,
}

fn token_case() -> impl Strategy<Value = TokenCase> {
    (
        prop_oneof![Just(0usize), 1usize..5, 5usize..80],
        prop_oneof![
            1usize..300,
            Just(7000usize),
            Just(128usize),
            Just(7168usize),
            Just(7048usize),
            Just(1000usize),
            Just(1024usize),
            1025usize..2100,
        ],
        prop_oneof![Just(0usize), 1usize..20],
        prop::sample::select(Fp8Format::ALL.to_vec()),
        prop::sample::select(GroupSize::ALL.to_vec()),
        prop::sample::select(ScaleLayout::ALL.to_vec()),
        prop::sample::select(ScaleMode::ALL.to_vec()),
        prop_oneof![Just(None), Just(Some(224.0f32)), Just(Some(100.0f32))],
        prop_oneof![Just(1e-12f32), Just(1e-4f32)],
    )
        .prop_map(|(rows, cols, pad, format, group_size, layout, scale_mode, fp8_max, eps)| TokenCase {
            rows,
            cols,
            pad,
            cfg: TokenGroupConfig { format, group_size, eps, fp8_max, scale_mode, layout },
        })
}

fn check_token_case<T: Element>(case: TokenCase, rng: &mut TestRng) {
    let TokenCase { rows, cols, pad, cfg } = case;
    let shape = MatrixShape::strided(rows, cols, cols + pad).unwrap();
    let x: Vec<T> = random_values(rng, shape.extent(), true).into_iter().map(T::from_f32).collect();
    let cpu_out = Device::Cpu.per_token_group_quant_fp8(&Device::Cpu.upload(&x, shape).unwrap(), &cfg).unwrap();
    let xd = Device::Cuda(gpu().clone()).upload(&x, shape).unwrap();
    // Every tiling (2 and 4 chunks per thread, the row kernel where one
    // exists), then the problem's own choice.
    for chunks in TILINGS {
        let dev = Device::Cuda(gpu().with_token_group_chunks(chunks));
        let gpu_out = dev.per_token_group_quant_fp8(&xd, &cfg).unwrap();
        let what = format!("{} chunks {chunks:?} {case:?}", T::DTYPE.name());
        assert_same_codes(&gpu_out.codes.to_vec().unwrap(), cpu_out.codes.as_host().unwrap(), &what);
        assert_same_scales(&gpu_out.scales.to_vec().unwrap(), cpu_out.scales.as_host().unwrap(), &what);
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn token_group_smoke_bf16_k_tail() {
    // The smoke case: bf16 -> e4m3fn, groups of 128, K = 7000 (a tail).
    let mut rng = TestRng::deterministic_rng(proptest::test_runner::RngAlgorithm::ChaCha);
    let cfg = TokenGroupConfig::default();
    check_token_case::<bf16>(TokenCase { rows: 333, cols: 7000, pad: 0, cfg }, &mut rng);
    eprintln!("token_group_smoke_bf16_k_tail: M=333 K=7000 bit-identical on {:?}", gpu());
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn token_group_matches_cpu_bit_for_bit() {
    let mut runner = TestRunner::new(Config { cases: cases(300), failure_persistence: None, ..Config::default() });
    runner
        .run(&(token_case(), 0u8..3, any::<u64>()), |(case, dtype, seed)| {
            let mut rng = TestRng::from_seed(proptest::test_runner::RngAlgorithm::ChaCha, &seed_bytes(seed));
            match dtype {
                0 => check_token_case::<bf16>(case, &mut rng),
                1 => check_token_case::<f16>(case, &mut rng),
                _ => check_token_case::<f32>(case, &mut rng),
            }
            Ok(())
        })
        .unwrap();
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn token_group_writes_every_output_element() {
    // The allocating call leaves its GPU outputs unset (no memset): the
    // kernel must write every code and scale, the TMA layout's padding rows
    // (as zeros) and the K tail's group included (`_into` over two
    // sentinels, `assert_writes_every_output`).
    let mut rng = TestRng::deterministic_rng(proptest::test_runner::RngAlgorithm::ChaCha);
    for (rows, cols, pad) in
        [(1, 7168, 0), (3, 300, 5), (5, 7000, 0), (9, 128, 3), (33, 200, 0), (7, 7048, 0), (3, 1000, 8), (2, 2048, 0)]
    {
        for layout in ScaleLayout::ALL {
            for group_size in GroupSize::ALL {
                let cfg = TokenGroupConfig { layout, group_size, ..TokenGroupConfig::default() };
                let shape = MatrixShape::strided(rows, cols, cols + pad).unwrap();
                let x: Vec<bf16> =
                    random_values(&mut rng, shape.extent(), true).into_iter().map(bf16::from_f32).collect();
                let cpu_out =
                    Device::Cpu.per_token_group_quant_fp8(&Device::Cpu.upload(&x, shape).unwrap(), &cfg).unwrap();
                let xd = Device::Cuda(gpu().clone()).upload(&x, shape).unwrap();
                for chunks in TILINGS {
                    let dev = Device::Cuda(gpu().with_token_group_chunks(chunks));
                    let what = format!("{rows} x {cols} (+{pad}) {layout:?} {group_size:?} {chunks:?}");
                    assert_writes_every_output(&dev, &cpu_out, &what, |codes, scales| {
                        dev.per_token_group_quant_fp8_into(&xd, &cfg, codes, scales).unwrap()
                    });
                }
            }
        }
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn token_group_row_kernel_on_misaligned_rows() {
    // The row kernel's cases (issue 15): K tails and rows that are not
    // 128-byte aligned, bf16 and f16, every format, scale mode, layout and
    // group size (32 falls back to the wide kernel), the usual and the
    // clamped fp8_max (the row kernel's division path), a large eps, padded
    // input rows, and M a multiple of nothing (37) so a CTA's warps span
    // rows unevenly. Each case also runs through every other tiling.
    let mut rng = TestRng::deterministic_rng(proptest::test_runner::RngAlgorithm::ChaCha);
    let mut compared = 0;
    for (cols, pad) in [(7000, 0), (7048, 0), (200, 0), (1000, 0), (1000, 3), (2056, 8), (7000, 24)] {
        for format in Fp8Format::ALL {
            for scale_mode in ScaleMode::ALL {
                for layout in ScaleLayout::ALL {
                    for group_size in GroupSize::ALL {
                        for (fp8_max, eps) in [(None, 1e-12f32), (Some(100.0f32), 1e-4)] {
                            let cfg = TokenGroupConfig { format, group_size, eps, fp8_max, scale_mode, layout };
                            let case = TokenCase { rows: 37, cols, pad, cfg };
                            check_token_case::<bf16>(case, &mut rng);
                            check_token_case::<f16>(case, &mut rng);
                            compared += 2;
                        }
                    }
                }
            }
        }
    }
    // Large enough for the problem's own choice to be the row kernel (bf16,
    // groups of 128, row-major scales; M = 2049 of K = 7000 and 7048 on
    // H100/H200-sized GPUs), and the aligned K = 7168 that keeps the wide one.
    for (cols, dtype) in [(7000, 0), (7048, 1), (7168, 0)] {
        let case = TokenCase { rows: 2049, cols, pad: 0, cfg: TokenGroupConfig::default() };
        match dtype {
            0 => check_token_case::<bf16>(case, &mut rng),
            _ => check_token_case::<f16>(case, &mut rng),
        }
        compared += 1;
    }
    eprintln!("token_group_row_kernel_on_misaligned_rows: {compared} configurations bit-identical on {:?}", gpu());
}

/// Property-test cases per test: `QUANT_GPU_CASES` or `default` (the bundle's
/// sanitizer runs use fewer, as the tools slow kernels down a lot).
fn cases(default: u32) -> u32 {
    std::env::var("QUANT_GPU_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn seed_bytes(seed: u64) -> [u8; 32] {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    bytes
}

#[derive(Debug, Clone, Copy)]
struct BlockCase {
    rows: usize,
    cols: usize,
    pad: usize,
    cfg: BlockConfig,
}

fn block_case() -> impl Strategy<Value = BlockCase> {
    (
        prop_oneof![Just(0usize), 1usize..200, Just(576usize), Just(130usize)],
        prop_oneof![1usize..400, Just(7000usize), Just(2048usize)],
        prop_oneof![Just(0usize), 1usize..20],
        prop::sample::select(Fp8Format::ALL.to_vec()),
        prop::sample::select(vec![(128usize, 128usize), (64, 32), (1, 128), (256, 128), (128, 300), (7, 9)]),
        prop::sample::select(ScaleMode::ALL.to_vec()),
        prop_oneof![Just(None), Just(Some(224.0f32))],
    )
        .prop_map(|(rows, cols, pad, format, (block_rows, block_cols), scale_mode, fp8_max)| BlockCase {
            rows,
            cols,
            pad,
            cfg: BlockConfig { format, block_rows, block_cols, eps: 1e-12, fp8_max, scale_mode },
        })
}

fn check_block_case<T: Element>(case: BlockCase, rng: &mut TestRng) {
    let BlockCase { rows, cols, pad, cfg } = case;
    let shape = MatrixShape::strided(rows, cols, cols + pad).unwrap();
    let x: Vec<T> = random_values(rng, shape.extent(), true).into_iter().map(T::from_f32).collect();
    let cpu_out = Device::Cpu.per_block_quant_fp8(&Device::Cpu.upload(&x, shape).unwrap(), &cfg).unwrap();
    let dev = Device::Cuda(gpu().clone());
    let gpu_out = dev.per_block_quant_fp8(&dev.upload(&x, shape).unwrap(), &cfg).unwrap();
    let what = format!("{} {case:?}", T::DTYPE.name());
    assert_same_codes(&gpu_out.codes.to_vec().unwrap(), cpu_out.codes.as_host().unwrap(), &what);
    assert_same_scales(&gpu_out.scales.to_vec().unwrap(), cpu_out.scales.as_host().unwrap(), &what);
}

fn block_writes_every_output_element_of<T: Element>(rng: &mut TestRng) {
    for (rows, cols, pad) in
        [(1, 128, 0), (130, 7000, 0), (256, 384, 8), (7, 9, 0), (129, 300, 3), (576, 2048, 0), (3, 1000, 16)]
    {
        for (block_rows, block_cols) in [(128, 128), (64, 32), (1, 128), (256, 128), (7, 9)] {
            for format in Fp8Format::ALL {
                let cfg = BlockConfig { format, block_rows, block_cols, ..BlockConfig::default() };
                let shape = MatrixShape::strided(rows, cols, cols + pad).unwrap();
                let x: Vec<T> = random_values(rng, shape.extent(), true).into_iter().map(T::from_f32).collect();
                let cpu_out = Device::Cpu.per_block_quant_fp8(&Device::Cpu.upload(&x, shape).unwrap(), &cfg).unwrap();
                let dev = Device::Cuda(gpu().clone());
                let xd = dev.upload(&x, shape).unwrap();
                let what =
                    format!("{} {rows} x {cols} (+{pad}) {block_rows} x {block_cols} {format:?}", T::DTYPE.name());
                assert_writes_every_output(&dev, &cpu_out, &what, |codes, scales| {
                    dev.per_block_quant_fp8_into(&xd, &cfg, codes, scales).unwrap()
                });
            }
        }
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn block_writes_every_output_element() {
    // The allocating call leaves its GPU outputs unset (no memset): every
    // code and every block's scale must be written, on the staged path
    // (whole 128 x 128 blocks) and the direct one (every other block size
    // and the tails) (`_into` over two sentinels,
    // `assert_writes_every_output`).
    let mut rng = TestRng::deterministic_rng(proptest::test_runner::RngAlgorithm::ChaCha);
    block_writes_every_output_element_of::<bf16>(&mut rng);
    block_writes_every_output_element_of::<f16>(&mut rng);
    block_writes_every_output_element_of::<f32>(&mut rng);
}

/// The allocating calls' outputs come from the device's own pool, which
/// keeps freed memory for the next call: outputs dropped and reallocated in
/// a loop, a release of the cached memory while outputs are alive, and
/// outputs that outlive their device (the pool is destroyed before them)
/// all keep their own values, bit for bit with the CPU.
#[test]
#[ignore = "needs a CUDA GPU"]
fn pooled_outputs_keep_their_values() {
    let mut rng = TestRng::deterministic_rng(proptest::test_runner::RngAlgorithm::ChaCha);
    let shape = MatrixShape::new(640, 1000).unwrap();
    let cfg = BlockConfig::default();
    let xs: Vec<Vec<bf16>> = (0..2)
        .map(|_| random_values(&mut rng, shape.extent(), false).into_iter().map(bf16::from_f32).collect())
        .collect();
    let cpu: Vec<Quantized> = xs
        .iter()
        .map(|x| Device::Cpu.per_block_quant_fp8(&Device::Cpu.upload(x, shape).unwrap(), &cfg).unwrap())
        .collect();
    let check = |out: &Quantized, i: usize, what: &str| {
        assert_same_codes(&out.codes.to_vec().unwrap(), cpu[i].codes.as_host().unwrap(), what);
        assert_same_scales(&out.scales.to_vec().unwrap(), cpu[i].scales.as_host().unwrap(), what);
    };
    // A device of its own, so that its pool can be dropped before its outputs.
    let dev = Device::Cuda(Gpu::new(0).expect("these tests need a CUDA GPU"));
    let inputs: Vec<Tensor<bf16>> = xs.iter().map(|x| dev.upload(x, shape).unwrap()).collect();
    let mut kept = dev.per_block_quant_fp8(&inputs[1], &cfg).unwrap();
    for round in 0..4 {
        // Each round's output takes memory the previous round freed.
        let out = dev.per_block_quant_fp8(&inputs[round % 2], &cfg).unwrap();
        check(&out, round % 2, &format!("round {round}"));
        if round == 1 {
            dev.release_cached_memory().unwrap();
            check(&kept, 1, "kept across a release");
            kept = dev.per_block_quant_fp8(&inputs[1], &cfg).unwrap();
        }
    }
    drop(inputs);
    drop(dev);
    check(&kept, 1, "after its device was dropped");
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn block_matches_cpu_bit_for_bit() {
    let mut runner = TestRunner::new(Config { cases: cases(200), failure_persistence: None, ..Config::default() });
    runner
        .run(&(block_case(), 0u8..3, any::<u64>()), |(case, dtype, seed)| {
            let mut rng = TestRng::from_seed(proptest::test_runner::RngAlgorithm::ChaCha, &seed_bytes(seed));
            match dtype {
                0 => check_block_case::<bf16>(case, &mut rng),
                1 => check_block_case::<f16>(case, &mut rng),
                _ => check_block_case::<f32>(case, &mut rng),
            }
            Ok(())
        })
        .unwrap();
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn encode_matches_software_for_every_f32() {
    // All 2^32 bit patterns through the GPU's conversion path (the hardware
    // converter for E4M3FN on sm_90), against the shared software encoder.
    let gpu = gpu();
    let stream = gpu.stream();
    const CHUNK: u64 = 1 << 28;
    for format in Fp8Format::ALL {
        let mut x = stream.alloc_zeros::<f32>(CHUNK as usize).unwrap();
        let mut q = stream.alloc_zeros::<u8>(CHUNK as usize).unwrap();
        for start in (0..1u64 << 32).step_by(CHUNK as usize) {
            let host: Vec<f32> = (start..start + CHUNK).map(|b| f32::from_bits(b as u32)).collect();
            stream.memcpy_htod(&host, &mut x).unwrap();
            gpu.encode_fp8(&x, format, &mut q).unwrap();
            let codes = stream.clone_dtoh(&q).unwrap();
            let mismatch = std::thread::scope(|s| {
                let parts: Vec<_> = host
                    .chunks(1 << 22)
                    .zip(codes.chunks(1 << 22))
                    .map(|(h, c)| {
                        s.spawn(move || {
                            h.iter().zip(c).find(|(v, code)| format.encode(**v) != **code).map(|(v, c)| (*v, *c))
                        })
                    })
                    .collect();
                parts.into_iter().find_map(|p| p.join().unwrap())
            });
            if let Some((v, code)) = mismatch {
                panic!(
                    "{}: encode({:#010x}) gpu {code:#04x} software {:#04x}",
                    format.name(),
                    v.to_bits(),
                    format.encode(v)
                );
            }
        }
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn decode_matches_software_for_every_code() {
    let gpu = gpu();
    let stream = gpu.stream();
    let codes: Vec<u8> = (0..=255).collect();
    let q = stream.clone_htod(&codes).unwrap();
    for format in Fp8Format::ALL {
        let mut y = stream.alloc_zeros::<f32>(256).unwrap();
        gpu.decode_fp8(&q, format, &mut y).unwrap();
        let y = stream.clone_dtoh(&y).unwrap();
        for (code, value) in codes.iter().zip(y) {
            let expected = format.decode(*code);
            assert!(value.to_bits() == expected.to_bits() || (value.is_nan() && expected.is_nan()), "{code:#04x}");
        }
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn tensors_over_2_pow_31_elements() {
    // 2^31 + 2^20 + 1000 elements: offsets past i32 and u32-of-bytes ranges.
    let (rows, cols) = (300_000usize, 7168usize + 8);
    assert!(rows * cols > 1usize << 31);
    let shape = MatrixShape::new(rows, cols).unwrap();
    let mut rng = TestRng::deterministic_rng(proptest::test_runner::RngAlgorithm::ChaCha);
    let pattern = random_values(&mut rng, 1 << 20, false);
    let x: Vec<bf16> = (0..shape.extent()).map(|i| bf16::from_f32(pattern[(i * 7919) % pattern.len()])).collect();
    let dev = Device::Cuda(gpu().clone());
    let xd = dev.upload(&x, shape).unwrap();
    let cfg = TokenGroupConfig::default();
    let out = dev.per_token_group_quant_fp8(&xd, &cfg).unwrap();
    let codes = out.codes.to_vec().unwrap();
    let scales = out.scales.to_vec().unwrap();
    let groups = cols.div_ceil(128);
    // Check the first rows, rows around the 2^31 boundary and the last rows.
    let boundary_row = (1usize << 31) / cols;
    for m in [0, 1, boundary_row - 1, boundary_row, boundary_row + 1, rows - 2, rows - 1] {
        let row_shape = MatrixShape::new(1, cols).unwrap();
        let mut q = vec![0u8; cols];
        let mut s = vec![0f32; groups];
        cpu::per_token_group_quant_fp8(&x[m * cols..][..cols], row_shape, &cfg, &mut q, &mut s).unwrap();
        assert_same_codes(&codes[m * cols..][..cols], &q, &format!("row {m}"));
        assert_same_scales(&scales[m * groups..][..groups], &s, &format!("row {m}"));
    }
    drop(out);
    // Blocks over the same tensor.
    let bcfg = BlockConfig::default();
    let out = dev.per_block_quant_fp8(&xd, &bcfg).unwrap();
    let codes = out.codes.to_vec().unwrap();
    let scales = out.scales.to_vec().unwrap();
    let kb = cols.div_ceil(128);
    let last_block_row = rows.div_ceil(128) - 1;
    for bi in [0, boundary_row / 128, last_block_row] {
        let r0 = bi * 128;
        let r1 = (r0 + 128).min(rows);
        let sub = MatrixShape::new(r1 - r0, cols).unwrap();
        let mut q = vec![0u8; sub.numel()];
        let mut s = vec![0f32; kb];
        cpu::per_block_quant_fp8(&x[r0 * cols..r1 * cols], sub, &bcfg, &mut q, &mut s).unwrap();
        assert_same_codes(&codes[r0 * cols..r1 * cols], &q, &format!("block row {bi}"));
        assert_same_scales(&scales[bi * kb..][..kb], &s, &format!("block row {bi}"));
    }
}
