//! The spec's special values on the GPU: the inputs of `cpu_special_values.rs`
//! (NaN, ±inf, subnormals, values at and just beyond fp8_max, all-zero and
//! -0.0 groups, a single huge outlier, f32::MAX) run through `Device::Cuda`
//! and `Device::Cpu`, compared bit for bit (NaN scales compare as both-NaN),
//! for every format, group size, scale mode, layout and input type; and the
//! tiny shapes and tails (M, N, K = 1, 2, 3, 127, 129, ...) of every kernel,
//! so the sanitizer run (xtask/run.sh) covers them.
//!
//! Needs a CUDA GPU: `#[ignore]`d in CI.

use half::{bf16, f16};
use quant_host::gpu::TokenGroupChunks;
use quant_host::{
    BlockConfig, Device, Element, Fp8Format, GemmConfig, GemmTensor, Gpu, GroupSize, MatrixShape, OutputType,
    Quantized, ScaleLayout, ScaleMode, TokenGroupConfig,
};
use std::sync::OnceLock;

fn shared_gpu() -> &'static Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(|| Gpu::new(0).expect("these tests need a CUDA GPU"))
}

fn gpu() -> Device {
    Device::Cuda(shared_gpu().clone())
}

/// [`gpu`], launching the token-group kernel `chunks` names.
fn gpu_with(chunks: TokenGroupChunks) -> Device {
    Device::Cuda(shared_gpu().with_token_group_chunks(chunks))
}

const K: usize = 300; // two groups of 128 and a tail of 44 (and 9 + tail for 32)

/// One row per special case, `K` values each.
fn special_rows(format: Fp8Format) -> Vec<(&'static str, Vec<f32>)> {
    let max = format.max_finite();
    let ordinary = |i: usize| (1.0 + 0.37 * (i % 17) as f32) * if i.is_multiple_of(2) { 1.0 } else { -1.0 };
    let row = |f: &dyn Fn(usize) -> f32| (0..K).map(f).collect::<Vec<f32>>();
    vec![
        ("nan", row(&|i| if i == 5 || i == 290 { f32::NAN } else { ordinary(i) })),
        (
            "inf",
            row(&|i| match i {
                40 => f32::INFINITY,
                170 => f32::NEG_INFINITY,
                299 => f32::INFINITY,
                _ => ordinary(i),
            }),
        ),
        ("zeros", vec![0.0; K]),
        ("negative zeros", vec![-0.0; K]),
        ("zero groups", row(&|i| if (128..256).contains(&i) { ordinary(i) } else { 0.0 })),
        (
            "f32 subnormals",
            row(&|i| f32::from_bits(1 + (i as u32 * 7919) % 0x7F_FFFF) * if i % 3 == 0 { -1.0 } else { 1.0 }),
        ),
        ("f16 subnormals", row(&|i| f16::from_bits(1 + (i as u16 * 13) % 0x3FF).to_f32())),
        ("tiny normals", row(&|i| f32::MIN_POSITIVE * (1 + i) as f32)),
        (
            "at fp8_max",
            row(&|i| {
                if i % 5 == 0 {
                    max
                } else if i % 5 == 1 {
                    -max
                } else {
                    ordinary(i)
                }
            }),
        ),
        (
            "just beyond fp8_max",
            row(&|i| match i % 4 {
                0 => max.next_up(),
                1 => -max.next_up(),
                2 => max * 1.0625,
                _ => ordinary(i),
            }),
        ),
        ("huge outlier", row(&|i| if i == 77 { 1e30 } else { ordinary(i) * 1e-3 })),
        (
            "f32::MAX",
            row(&|i| match i {
                3 => f32::MAX,
                200 => -f32::MAX,
                _ => ordinary(i),
            }),
        ),
        ("ordinary", row(&ordinary)),
    ]
}

fn same_scales(a: &[f32], b: &[f32]) -> Option<usize> {
    a.iter().zip(b).position(|(x, y)| !(x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan())))
}

fn compare(what: &str, gpu: &Quantized, cpu: &Quantized) {
    let (gc, cc) = (gpu.codes.to_vec().unwrap(), cpu.codes.to_vec().unwrap());
    if let Some(i) = gc.iter().zip(&cc).position(|(a, b)| a != b) {
        panic!("{what}: code {i} (row {}, col {}): gpu {:#04x} cpu {:#04x}", i / K, i % K, gc[i], cc[i]);
    }
    assert_eq!(gc.len(), cc.len(), "{what}");
    let (gs, cs) = (gpu.scales.to_vec().unwrap(), cpu.scales.to_vec().unwrap());
    assert_eq!(gs.len(), cs.len(), "{what}");
    if let Some(i) = same_scales(&gs, &cs) {
        panic!("{what}: scale {i}: gpu {:e} cpu {:e}", gs[i], cs[i]);
    }
}

fn run_all<T: Element>(gpu: &Device) -> usize {
    let mut compared = 0;
    for format in Fp8Format::ALL {
        let rows = special_rows(format);
        let names: Vec<&str> = rows.iter().map(|r| r.0).collect();
        let x: Vec<T> = rows.iter().flat_map(|r| r.1.iter().map(|&v| T::from_f32(v))).collect();
        let shape = MatrixShape::new(rows.len(), K).unwrap();
        let (xg, xc) = (gpu.upload(&x, shape).unwrap(), Device::Cpu.upload(&x, shape).unwrap());
        let max = format.max_finite();
        // The smallest valid eps (its zero-group scale is the minimal normal)
        // and a large one that floors most groups.
        for (fp8_max, eps) in [(None, 1e-12f32), (Some(max / 2.0), 1e-4), (None, max * f32::MIN_POSITIVE)] {
            for mode in ScaleMode::ALL {
                for group_size in GroupSize::ALL {
                    for layout in ScaleLayout::ALL {
                        let cfg = TokenGroupConfig { format, group_size, eps, fp8_max, scale_mode: mode, layout };
                        let g = gpu.per_token_group_quant_fp8(&xg, &cfg).unwrap();
                        let c = Device::Cpu.per_token_group_quant_fp8(&xc, &cfg).unwrap();
                        compare(&format!("{:?} rows {names:?} {cfg:?}", T::DTYPE), &g, &c);
                        compared += 1;
                    }
                }
                for (block_rows, block_cols) in [(128, 128), (3, 32), (1, 1), (2, 300)] {
                    let cfg = BlockConfig { format, block_rows, block_cols, eps, fp8_max, scale_mode: mode };
                    let g = gpu.per_block_quant_fp8(&xg, &cfg).unwrap();
                    let c = Device::Cpu.per_block_quant_fp8(&xc, &cfg).unwrap();
                    compare(&format!("{:?} blocks {cfg:?}", T::DTYPE), &g, &c);
                    compared += 1;
                }
            }
        }
    }
    compared
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn special_values_match_the_cpu_bit_for_bit() {
    // The token-group kernels with 2 and with 4 chunks per thread, and the
    // row kernel (where one exists: 16-bit input, groups of 64 and 128;
    // the wide kernel for the rest).
    for chunks in [TokenGroupChunks::Two, TokenGroupChunks::Four, TokenGroupChunks::Row] {
        let gpu = gpu_with(chunks);
        let n = run_all::<f32>(&gpu) + run_all::<bf16>(&gpu) + run_all::<f16>(&gpu);
        println!("special-value configurations compared bit for bit ({chunks:?} chunks per thread): {n}");
        assert_eq!(n, 3 * 2 * 3 * 2 * (3 * 3 + 4));
    }
}

/// Deterministic values in [-4, 4) without zeros.
fn values(n: usize, seed: usize) -> Vec<f32> {
    (0..n).map(|i| ((i * 2654435761 + seed * 40503) % 8191) as f32 / 1024.0 - 3.99).collect()
}

const TINY: [usize; 8] = [1, 2, 3, 31, 33, 127, 129, 255];

/// Every quantizer kernel at M, K in `TINY` (a single element, single rows,
/// K tails of every group size), against the CPU bit for bit.
#[test]
#[ignore = "needs a CUDA GPU"]
fn tiny_shapes_and_tails_of_the_quantizers() {
    let gpu = gpu();
    let mut compared = 0;
    for &m in &TINY {
        for &k in &TINY {
            let shape = MatrixShape::strided(m, k, k + 1).unwrap();
            let x: Vec<bf16> = values(shape.extent(), m * k).into_iter().map(bf16::from_f32).collect();
            let (xg, xc) = (gpu.upload(&x, shape).unwrap(), Device::Cpu.upload(&x, shape).unwrap());
            for format in Fp8Format::ALL {
                for group_size in GroupSize::ALL {
                    for layout in ScaleLayout::ALL {
                        let cfg = TokenGroupConfig { format, group_size, layout, ..Default::default() };
                        let g = gpu.per_token_group_quant_fp8(&xg, &cfg).unwrap();
                        let c = Device::Cpu.per_token_group_quant_fp8(&xc, &cfg).unwrap();
                        compare(&format!("{m}x{k} {cfg:?}"), &g, &c);
                        compared += 1;
                    }
                }
                let cfg = BlockConfig { format, ..Default::default() };
                let g = gpu.per_block_quant_fp8(&xg, &cfg).unwrap();
                let c = Device::Cpu.per_block_quant_fp8(&xc, &cfg).unwrap();
                compare(&format!("{m}x{k} {cfg:?}"), &g, &c);
                compared += 1;
            }
        }
    }
    println!("tiny quantizer shapes compared: {compared}");
    assert_eq!(compared, TINY.len() * TINY.len() * 2 * (3 * 3 + 1));
}

/// Both GEMM kernels (decode-sized for M <= 16, tiled above) at tiny M, N, K
/// and tails, against the CPU within the spec's tolerance.
#[test]
#[ignore = "needs a CUDA GPU"]
fn tiny_shapes_and_tails_of_the_gemm() {
    let gpu = gpu();
    let mut compared = 0;
    for &(m, n, k) in &[
        (1, 1, 1),
        (1, 2, 3),
        (2, 1, 129),
        (1, 129, 1),
        (16, 8, 128),
        (17, 9, 127),
        (3, 255, 255),
        (129, 3, 33),
        (129, 129, 129),
        (255, 31, 300),
    ] {
        for format in Fp8Format::ALL {
            let a_cfg = TokenGroupConfig { format, layout: ScaleLayout::ColMajorTmaAligned, ..Default::default() };
            let a = Device::Cpu
                .per_token_group_quant_fp8(
                    &Device::Cpu.upload(&values(m * k, 1), MatrixShape::new(m, k).unwrap()).unwrap(),
                    &a_cfg,
                )
                .unwrap();
            let b = Device::Cpu
                .per_block_quant_fp8(
                    &Device::Cpu.upload(&values(n * k, 2), MatrixShape::new(n, k).unwrap()).unwrap(),
                    &BlockConfig { format, ..Default::default() },
                )
                .unwrap();
            for output in [OutputType::F32, OutputType::Bf16] {
                let cfg = GemmConfig {
                    format,
                    a_scale_layout: ScaleLayout::ColMajorTmaAligned,
                    output,
                    ..GemmConfig::default()
                };
                let up = |t: &quant_host::Tensor<u8>| gpu.upload(&t.to_vec().unwrap(), t.shape()).unwrap();
                let upf = |t: &quant_host::Tensor<f32>| gpu.upload(&t.to_vec().unwrap(), t.shape()).unwrap();
                let cg = gpu
                    .mm_fp8_blockscale(&up(&a.codes), &upf(&a.scales), &up(&b.codes), &upf(&b.scales), &cfg)
                    .unwrap();
                let cc = Device::Cpu.mm_fp8_blockscale(&a.codes, &a.scales, &b.codes, &b.scales, &cfg).unwrap();
                let (g, c) = (cg.to_f32_vec().unwrap(), cc.to_f32_vec().unwrap());
                assert!(matches!(cg, GemmTensor::F32(_)) == (output == OutputType::F32));
                assert_eq!(g.len(), m * n);
                let scale = c.iter().fold(0f32, |acc, v| acc.max(v.abs())).max(f32::MIN_POSITIVE);
                let err = g.iter().zip(&c).fold(0f32, |acc, (x, y)| acc.max((x - y).abs()));
                let tol = if output == OutputType::F32 { 1e-3 } else { 1e-2 };
                assert!(err / scale < tol, "{m}x{n}x{k} {cfg:?}: rel err {}", err / scale);
                compared += 1;
            }
        }
    }
    println!("tiny GEMM shapes compared: {compared}");
    assert_eq!(compared, 10 * 2 * 2);
}
