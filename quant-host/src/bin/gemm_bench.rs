//! Times `mm_fp8_blockscale` on the GPU and prints a markdown table.
//!
//! Inputs are random valid fp8 codes (no NaN codes, not zeros) and random
//! positive scales. When one operand set is smaller than about 2.5x the L2
//! cache, several copies are rotated so the timing measures device memory,
//! not L2. Batches of 20 launches are timed with CUDA events; the table shows
//! the median per-launch time over 7 batches after a warm-up. The M <= 16 rows compare the time with
//! reading B once at the device-to-device copy bandwidth measured in the same
//! run (bytes read plus written). If the file named by `CUBLAS_TIMES` exists
//! (lines `M N K microseconds`, written by bench/cublas_bf16.py through
//! PyTorch's cuBLAS), a column gives the speed-up over cuBLAS bf16.
//!
//! Usage: `gemm_bench` (no arguments).

use quant_host::gemm::GemmTensor;
use quant_host::{Device, Fp8Format, GemmConfig, MatrixShape, OutputType, ScaleLayout, Tensor};
use std::collections::HashMap;

type AnyResult<T> = Result<T, Box<dyn std::error::Error>>;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Random codes of `format` that are neither NaN nor (all) zero.
fn codes(len: usize, format: Fp8Format, rng: &mut Rng) -> Vec<u8> {
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        let mut r = rng.next();
        for _ in 0..8 {
            if v.len() == len {
                break;
            }
            let c = (r as u8) & 0xBF; // exponents up to 7 or 15 - 8: moderate magnitudes
            v.push(if format.is_nan_code(c) { 0x38 } else { c });
            r >>= 8;
        }
    }
    v
}

fn scales(len: usize, rng: &mut Rng) -> Vec<f32> {
    (0..len).map(|_| 1e-3 * (1.0 + (rng.next() % 1000) as f32 / 1000.0)).collect()
}

struct Set {
    a: Tensor<u8>,
    sa: Tensor<f32>,
    b: Tensor<u8>,
    sb: Tensor<f32>,
}

fn median(mut v: Vec<f32>) -> f32 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Milliseconds per call of `f`: the median over `reps` batches of `batch`
/// back-to-back calls, each batch between two CUDA events (so host launch
/// overhead overlaps the GPU work instead of being timed), after `warmup` calls.
fn time_ms(
    dev: &Device,
    warmup: usize,
    reps: usize,
    batch: usize,
    mut f: impl FnMut(usize) -> AnyResult<()>,
) -> AnyResult<f32> {
    let Device::Cuda(gpu) = dev else {
        return Err("no GPU".into());
    };
    let stream = gpu.stream();
    let timing = Some(cudarc::driver::sys::CUevent_flags::CU_EVENT_DEFAULT);
    for i in 0..warmup {
        f(i)?;
    }
    stream.synchronize()?;
    let mut times = Vec::with_capacity(reps);
    let mut i = warmup;
    for _ in 0..reps {
        let start = stream.record_event(timing)?;
        for _ in 0..batch {
            f(i)?;
            i += 1;
        }
        let end = stream.record_event(timing)?;
        end.synchronize()?;
        times.push(start.elapsed_ms(&end)? / batch as f32);
    }
    Ok(median(times))
}

fn main() -> AnyResult<()> {
    let dev = Device::cuda(0)?;
    let Device::Cuda(gpu) = &dev else { unreachable!() };
    let name = gpu.name()?;
    let stream = gpu.stream().clone();

    // Device-to-device copy bandwidth (read + write bytes).
    let bytes = 1usize << 30;
    let src = stream.alloc_zeros::<u8>(bytes)?;
    let mut dst = stream.alloc_zeros::<u8>(bytes)?;
    let copy_ms = time_ms(&dev, 2, 10, 1, |_| Ok(stream.memcpy_dtod(&src, &mut dst)?))?;
    let copy_bw = 2.0 * bytes as f64 / (copy_ms as f64 * 1e-3);
    drop((src, dst));

    let cublas: HashMap<(usize, usize, usize), f64> = std::env::var("CUBLAS_TIMES")
        .ok()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .map(|s| {
            s.lines()
                .filter_map(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    if f.len() != 4 {
                        return None;
                    }
                    Some(((f[0].parse().ok()?, f[1].parse().ok()?, f[2].parse().ok()?), f[3].parse().ok()?))
                })
                .collect()
        })
        .unwrap_or_default();

    let mut shapes: Vec<(usize, usize, usize)> =
        vec![(1, 512, 7168), (8, 512, 7168), (2048, 512, 7168), (4096, 7168, 2048)];
    for (n, k) in [(7168, 16384), (4096, 8192), (32768, 1024), (3072, 7168), (7168, 3072)] {
        for m in [1, 16, 64, 512, 2048, 4096] {
            shapes.push((m, n, k));
        }
    }
    let mut rng = Rng(0x5EED);
    let l2 = 50usize << 20;
    println!("device: {name}; device-to-device copy: {:.0} GB/s (read + write)", copy_bw / 1e9);
    println!();
    println!("| M | N | K | format | time (us) | TFLOP/s | cuBLAS bf16 (us) | speed-up vs cuBLAS | B read at copy bw (us) | time / B read |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for &(m, n, k) in &shapes {
        for format in [Fp8Format::E4M3Fn, Fp8Format::E4M3Fnuz] {
            if format == Fp8Format::E4M3Fnuz && !(m <= 16 || (m, n, k) == (4096, 7168, 2048)) {
                continue;
            }
            let kb = k.div_ceil(128);
            let set_bytes = m * k + n * k + m * n * 2;
            let copies = (5 * l2 / 2).div_ceil(set_bytes).clamp(1, 32);
            let mut sets = Vec::with_capacity(copies);
            for _ in 0..copies {
                sets.push(Set {
                    a: dev.upload(&codes(m * k, format, &mut rng), MatrixShape::new(m, k)?)?,
                    sa: dev.upload(&scales(m * kb, &mut rng), MatrixShape::new(1, m * kb)?)?,
                    b: dev.upload(&codes(n * k, format, &mut rng), MatrixShape::new(n, k)?)?,
                    sb: dev
                        .upload(&scales(n.div_ceil(128) * kb, &mut rng), MatrixShape::new(1, n.div_ceil(128) * kb)?)?,
                });
            }
            let cfg = GemmConfig { format, a_scale_layout: ScaleLayout::RowMajor, output: OutputType::Bf16 };
            let mut outs = Vec::with_capacity(copies);
            for _ in 0..copies {
                outs.push(GemmTensor::Bf16(dev.zeros(MatrixShape::new(m, n)?)?));
            }
            let ms = time_ms(&dev, 3, 7, 20, |i| {
                let s = &sets[i % copies];
                dev.mm_fp8_blockscale_into(&s.a, &s.sa, &s.b, &s.sb, &cfg, &mut outs[i % copies])?;
                Ok(())
            })?;
            let us = ms as f64 * 1e3;
            let tflops = 2.0 * m as f64 * n as f64 * k as f64 / (us * 1e-6) / 1e12;
            let (cb, ratio) = match cublas.get(&(m, n, k)) {
                Some(&t) => (format!("{t:.1}"), format!("{:.2}x", t / us)),
                None => ("-".into(), "-".into()),
            };
            let (bread, over) = if m <= 16 {
                let t = (n * k) as f64 / copy_bw * 1e6;
                (format!("{t:.1}"), format!("{:.2}", us / t))
            } else {
                ("-".into(), "-".into())
            };
            println!(
                "| {m} | {n} | {k} | {} | {us:.1} | {tflops:.1} | {cb} | {ratio} | {bread} | {over} |",
                format.name()
            );
        }
    }
    Ok(())
}
