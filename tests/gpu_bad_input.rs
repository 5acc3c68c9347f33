//! Bad input on the GPU: every `Device::Cuda` entry point (and the `Gpu`
//! codec) returns its typed error for generated invalid arguments, leaves its
//! outputs untouched and never panics; tensors on the wrong device or from
//! another CUDA context are refused before anything is launched; a tensor
//! made on another stream of the same context is valid and gives the CPU's
//! answer.
//!
//! Needs a CUDA GPU: `#[ignore]`d in CI. `QUANT_GPU_CASES` sets the cases per
//! strategy (default 300; run.sh uses 25 under compute-sanitizer).

use half::bf16;
use quant_host::{BlockConfig, Device, Fp8Format, GemmConfig, Gpu, MatrixShape, QuantError, Tensor, TokenGroupConfig};
use quant_tests::bad_input::{self, Tally};
use std::sync::OnceLock;

fn gpu() -> &'static Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(|| Gpu::new(0).expect("these tests need a CUDA GPU"))
}

/// Generated cases per entry point family: `QUANT_GPU_CASES` or 300.
fn cases() -> u32 {
    std::env::var("QUANT_GPU_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(300)
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn generated_bad_arguments_are_typed_errors() {
    static TALLY: Tally = Tally::new("Device::Cuda quantizers (+_into) and mm_fp8_blockscale (+_into)");
    let dev = Device::Cuda(gpu().clone());
    bad_input::run_on_device(&dev, cases(), &TALLY);
    dev.synchronize().unwrap();
    assert!(TALLY.report() > 0);
}

fn is_wrong_device(r: quant_host::Result<()>, needle: &str) -> bool {
    matches!(&r, Err(e @ QuantError::WrongDevice { .. }) if e.to_string().contains(needle))
}

/// Every tensor argument of every entry point, one at a time, on the wrong
/// device: the call is refused with `WrongDevice` naming the argument.
#[test]
#[ignore = "needs a CUDA GPU"]
fn tensors_on_the_wrong_device_or_context() {
    static TALLY: Tally = Tally::new("wrong device / other context");
    let cuda = Device::Cuda(gpu().clone());
    // A second, non-primary context on the same GPU: its buffers are not
    // addressable from ours (`Gpu::check_context` compares the CUcontext).
    let other_ctx = cudarc::driver::CudaContext::new_non_primary(0, 0).unwrap();
    let other = Device::Cuda(Gpu::with_stream(other_ctx.new_stream().unwrap()).unwrap());
    let (m, n, k) = (3usize, 130usize, 300usize);
    let shape = MatrixShape::new(m, k).unwrap();
    let x: Vec<bf16> = (0..m * k).map(|i| bf16::from_f32(i as f32 * 0.01 - 1.0)).collect();
    for (dev, wrong, needle) in
        [(&cuda, &Device::Cpu, "cpu"), (&Device::Cpu, &cuda, "cuda:0"), (&cuda, &other, "another context")]
    {
        let on = |d: &Device| d.upload(&x, shape).unwrap();
        let tcfg = TokenGroupConfig::default();
        let codes = |d: &Device| d.zeros::<u8>(MatrixShape::new(m, k).unwrap()).unwrap();
        let scales = |d: &Device, len: usize| d.zeros::<f32>(MatrixShape::new(1, len).unwrap()).unwrap();
        // Token groups: x, codes, scales.
        for bad_arg in 0..3 {
            let pick = |i: usize| if i == bad_arg { wrong } else { dev };
            let (xt, mut q, mut s) = (on(pick(0)), codes(pick(1)), scales(pick(2), m * 3));
            let r = dev.per_token_group_quant_fp8_into(&xt, &tcfg, &mut q, &mut s);
            assert!(is_wrong_device(r, ""), "token arg {bad_arg} on {needle}");
            TALLY.add(1);
        }
        let r = dev.per_token_group_quant_fp8(&on(wrong), &tcfg).map(|_| ());
        assert!(is_wrong_device(r, ""), "token alloc on {needle}");
        // Blocks.
        for bad_arg in 0..3 {
            let pick = |i: usize| if i == bad_arg { wrong } else { dev };
            let (wt, mut q, mut s) = (on(pick(0)), codes(pick(1)), scales(pick(2), 3));
            let r = dev.per_block_quant_fp8_into(&wt, &BlockConfig::default(), &mut q, &mut s);
            assert!(is_wrong_device(r, ""), "block arg {bad_arg} on {needle}");
            TALLY.add(1);
        }
        let r = dev.per_block_quant_fp8(&on(wrong), &BlockConfig::default()).map(|_| ());
        assert!(is_wrong_device(r, ""), "block alloc on {needle}");
        TALLY.add(2);
        // GEMM: a, a_scales, b, b_scales, c.
        let kb = k.div_ceil(128);
        for bad_arg in 0..5 {
            let pick = |i: usize| if i == bad_arg { wrong } else { dev };
            let a = pick(0).upload(&vec![0x38u8; m * k], MatrixShape::new(m, k).unwrap()).unwrap();
            let sa = scales(pick(1), m * kb);
            let b = pick(2).upload(&vec![0x38u8; n * k], MatrixShape::new(n, k).unwrap()).unwrap();
            let sb = scales(pick(3), n.div_ceil(128) * kb);
            let mut c = quant_host::GemmTensor::Bf16(pick(4).zeros(MatrixShape::new(m, n).unwrap()).unwrap());
            let r = dev.mm_fp8_blockscale_into(&a, &sa, &b, &sb, &GemmConfig::default(), &mut c);
            assert!(is_wrong_device(r, ""), "gemm arg {bad_arg} on {needle}");
            TALLY.add(1);
        }
        if needle == "another context" {
            // The message says which context.
            let r = dev.per_token_group_quant_fp8(&on(wrong), &tcfg).map(|_| ());
            assert!(is_wrong_device(r, needle));
        }
    }
    // The codec of `Gpu` checks contexts too.
    let Device::Cuda(g) = &cuda else { unreachable!() };
    let Device::Cuda(og) = &other else { unreachable!() };
    let xs = og.stream().clone_htod(&[1.0f32; 16]).unwrap();
    let mut codes = g.stream().alloc_zeros::<u8>(16).unwrap();
    assert!(is_wrong_device(g.encode_fp8(&xs, Fp8Format::E4M3Fn, &mut codes), "another context"));
    let mut short = g.stream().alloc_zeros::<u8>(15).unwrap();
    let xs = g.stream().clone_htod(&[1.0f32; 16]).unwrap();
    let r = g.encode_fp8(&xs, Fp8Format::E4M3Fn, &mut short);
    assert!(matches!(r, Err(QuantError::BufferLength { what: "codes", .. })), "{r:?}");
    let mut ys = g.stream().alloc_zeros::<f32>(17).unwrap();
    let r = g.decode_fp8(&codes, Fp8Format::E4M3Fn, &mut ys);
    assert!(matches!(r, Err(QuantError::BufferLength { what: "y", .. })), "{r:?}");
    TALLY.add(3);
    cuda.synchronize().unwrap();
    other.synchronize().unwrap();
    assert!(TALLY.report() > 0);
}

/// A tensor written on another stream of the same context is valid input:
/// the launch orders after that stream's work and gives the CPU's answer.
#[test]
#[ignore = "needs a CUDA GPU"]
fn tensors_from_another_stream_of_the_same_context() {
    let g = gpu();
    let side = Gpu::with_stream(g.stream().context().new_stream().unwrap()).unwrap();
    let (m, k) = (5usize, 1000usize);
    let shape = MatrixShape::new(m, k).unwrap();
    let x: Vec<bf16> = (0..m * k).map(|i| bf16::from_f32(((i * 37) % 101) as f32 - 50.0)).collect();
    let xt = Device::Cuda(side.clone()).upload(&x, shape).unwrap();
    let cfg = TokenGroupConfig::default();
    let q = Device::Cuda(g.clone()).per_token_group_quant_fp8(&xt, &cfg).unwrap();
    let host = Tensor::from_vec(x, shape).unwrap();
    let want = Device::Cpu.per_token_group_quant_fp8(&host, &cfg).unwrap();
    assert_eq!(q.codes.to_vec().unwrap(), want.codes.to_vec().unwrap());
    let (a, b) = (q.scales.to_vec().unwrap(), want.scales.to_vec().unwrap());
    assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()));
}

/// Shapes past the kernels' index range are refused before a launch, and
/// the sizes that overflowed before this work are typed errors on the GPU too.
#[test]
#[ignore = "needs a CUDA GPU"]
fn sizes_past_the_limits() {
    let dev = Device::Cuda(gpu().clone());
    // M = usize::MAX, K = 0, TMA-aligned scales: M rounded up to 4 overflows.
    let empty = dev.zeros::<f32>(MatrixShape::strided(usize::MAX, 0, 0).unwrap()).unwrap();
    let tma = TokenGroupConfig { layout: quant_host::ScaleLayout::ColMajorTmaAligned, ..Default::default() };
    let e = dev.per_token_group_quant_fp8(&empty, &tma).unwrap_err();
    assert!(matches!(e, QuantError::TooLarge(_)), "{e:?}");
    let mut q = dev.zeros::<u8>(MatrixShape::new(0, 0).unwrap()).unwrap();
    let mut s = dev.zeros::<f32>(MatrixShape::new(0, 0).unwrap()).unwrap();
    let e = dev.per_token_group_quant_fp8_into(&empty, &tma, &mut q, &mut s).unwrap_err();
    assert!(matches!(e, QuantError::TooLarge(_)), "{e:?}");
    // A GEMM with M = usize::MAX, N = K = 0 and TMA-aligned A scales.
    let a = dev.zeros::<u8>(MatrixShape::strided(usize::MAX, 0, 0).unwrap()).unwrap();
    let b = dev.zeros::<u8>(MatrixShape::new(0, 0).unwrap()).unwrap();
    let cfg = GemmConfig { a_scale_layout: quant_host::ScaleLayout::ColMajorTmaAligned, ..Default::default() };
    let e = dev.mm_fp8_blockscale(&a, &s, &b, &s, &cfg).unwrap_err();
    assert!(matches!(e, QuantError::TooLarge(_)), "{e:?}");
    // C of 2^62 bf16: more bytes than the address space, refused before cudarc
    // multiplies (it would wrap to a 0-byte allocation in release builds).
    let a = dev.zeros::<u8>(MatrixShape::new(1 << 31, 0).unwrap()).unwrap();
    let e = dev.mm_fp8_blockscale(&a, &s, &a, &s, &GemmConfig::default()).unwrap_err();
    assert!(matches!(e, QuantError::TooLarge("tensor bytes")), "{e:?}");
    // C of 2^40 bf16 (2 TiB): the driver's out-of-memory, as a typed error.
    let a = dev.zeros::<u8>(MatrixShape::new(1 << 20, 0).unwrap()).unwrap();
    let e = dev.mm_fp8_blockscale(&a, &s, &a, &s, &GemmConfig::default()).unwrap_err();
    assert!(matches!(e, QuantError::Cuda(_)), "{e:?}");
    // M past the GEMM kernels' u32 dimensions (K = 0 keeps A empty; N = 1,
    // so C is 2^33 bf16 = 16 GiB, which the GPU holds): refused at launch.
    let a = dev.zeros::<u8>(MatrixShape::new(1 << 33, 0).unwrap()).unwrap();
    let b1 = dev.zeros::<u8>(MatrixShape::new(1, 0).unwrap()).unwrap();
    let e = dev.mm_fp8_blockscale(&a, &s, &b1, &s, &GemmConfig::default()).unwrap_err();
    assert!(matches!(e, QuantError::TooLarge(_)), "{e:?}");
    dev.synchronize().unwrap();
}
