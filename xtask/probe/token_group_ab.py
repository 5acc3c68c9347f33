"""A/B of token-group kernel variants on the GPU machine, without a Rust build there.

A development aid (not part of the library): build each variant here with
`cargo xtask build-ptx`, copy `quant-host/ptx/quant_kernels.sm_90a.ptx` to
DIR/NAME.sm_90a.ptx, carry DIR with the device tool and run, there:

  python3 token_group_ab.py DIR bench NAME[:CHUNKS[:BLOCK]] ...
      times the wide bf16 g128 kernels of every variant (per launch in a CUDA
      graph, rotated buffers, against a 1 GiB device copy measured in the same
      run) and checks each variant's codes and scales against the first one's,
      bit for bit;
  python3 token_group_ab.py DIR profile NAME[:CHUNKS] M K FORMAT
      three launches of one variant, to run under ncu.

The input is randn with every 97th value times 40, or with AB_DATA=bench the
benchmark's (`fp8q bench`): uniform in [-1, 1) times 2^e, e in -8..7.

CHUNKS is the variant's chunks per thread (default 4), BLOCK the CTA size
(default 128, `geometry::TOKEN_GROUP_WIDE_BLOCK_THREADS`; at most the
kernel's .maxntid). Only the two wide bf16 g128
entry points are kept from each module, so CuPy's PTX JIT takes a second.
"""
import sys, os, re, math, statistics, tempfile
import numpy as np
import cupy as cp

FORMATS = {"e4m3fn": 448.0, "e4m3fnuz": 240.0}
KEEP = r"token_group_wide_quant_bf16_e4m3fnu?z?_g128"
mods = {}
DIR = "."
DATA = "randn"


def slim(path):
    """The module's header and the kept entry points, as a new PTX file."""
    text = open(path).read()
    out = [text[:text.index(".visible .entry")]]
    for part in re.split(r"(?=^\t// \.globl)", text, flags=re.M):
        m = re.match(r"\t// \.globl\t(\S+)", part)
        if m and re.fullmatch(KEEP, m.group(1)):
            out.append(part)
    fd, slim_path = tempfile.mkstemp(suffix=".ptx")
    with os.fdopen(fd, "w") as f:
        f.write("".join(out))
    return slim_path


def kernel(variant, fmt):
    if variant not in mods:
        mods[variant] = cp.RawModule(path=slim(os.path.join(DIR, f"{variant}.sm_90a.ptx")))
    return mods[variant].get_function(f"token_group_wide_quant_bf16_{fmt}_g128")


def parse(spec):
    parts = spec.split(":")
    v = parts[0]
    c = int(parts[1]) if len(parts) > 1 else 4
    b = int(parts[2]) if len(parts) > 2 else 128
    return v, c, b


# `abi::TokenGroupParams`, the kernel's fourth parameter, by value (#[repr(C)]).
PARAMS = np.dtype([("rows", "<u8"), ("cols", "<u8"), ("row_stride", "<u8"), ("eps", "<f4"),
                   ("fp8_max", "<f4"), ("mode", "<u4"), ("layout", "<u4")], align=True)
assert PARAMS.itemsize == 40


def launch(fn, chunks, block, x, q, s, m, k, fmax, stream):
    groups = (k + 127) // 128
    threads = m * groups * (128 // (8 * chunks))
    grid = (threads + block - 1) // block
    params = np.array([(m, k, k, 1e-12, fmax, 0, 0)], dtype=PARAMS)[0]
    fn((grid,), (block,), (x, q, s, params), stream=stream)


def random_bf16(n):
    rng = np.random.default_rng(7)
    if DATA == "bench":
        # `fp8q bench`'s input: uniform in [-1, 1) times 2^e, e uniform in -8..7.
        v = rng.uniform(-1.0, 1.0, n).astype(np.float32) * np.exp2(rng.integers(-8, 8, n)).astype(np.float32)
    else:
        v = rng.standard_normal(n, dtype=np.float32)
        v[rng.integers(0, n, n // 97)] *= 40.0
    b = (v.view(np.uint32) >> 16).astype(np.uint16)
    return cp.asarray(b)


def copy_gbps(stream):
    n = 1 << 30
    a = cp.empty(n, dtype=cp.uint8)
    b = cp.empty(n, dtype=cp.uint8)
    best = 0.0
    for _ in range(5):
        e0, e1 = cp.cuda.Event(), cp.cuda.Event()
        e0.record(stream)
        for _ in range(10):
            cp.cuda.runtime.memcpyAsync(b.data.ptr, a.data.ptr, n, cp.cuda.runtime.memcpyDeviceToDevice, stream.ptr)
        e1.record(stream)
        e1.synchronize()
        ms = cp.cuda.get_elapsed_time(e0, e1)
        best = max(best, 2 * n * 10 / (ms * 1e-3) / 1e9)
    del a, b
    return best


def bench(specs):
    stream = cp.cuda.Stream(non_blocking=True)
    with stream:
        gbps = copy_gbps(stream)
        print(f"copy {gbps:.0f} GB/s", flush=True)
        shapes = [(16384, 7168), (16384, 18432), (4096, 7168), (2048, 7168), (2048, 7000), (4096, 2048)]
        src = random_bf16(16384 * 18432)
        rows = []
        for fmt, fmax in FORMATS.items():
            for (m, k) in shapes:
                n = m * k
                groups = (k + 127) // 128
                nbuf = max(1, math.ceil(256e6 / (3 * n)))
                xs = [src[:n].copy() for _ in range(nbuf)]
                qs = [cp.empty(n, dtype=cp.uint8) for _ in range(nbuf)]
                ss = [cp.empty(m * groups, dtype=cp.float32) for _ in range(nbuf)]
                ref = None
                line = f"{fmt:8} {m:6}x{k:<6}"
                for spec in specs:
                    v, c, b = parse(spec)
                    fn = kernel(v, fmt)
                    # correctness against the first variant, buffer 0
                    qs[0].fill(0xAA); ss[0].fill(-1.0)
                    launch(fn, c, b, xs[0], qs[0], ss[0], m, k, fmax, stream)
                    stream.synchronize()
                    out = (cp.asnumpy(qs[0]), cp.asnumpy(ss[0]).view(np.uint32))
                    if ref is None:
                        ref = out
                        ok = "ref"
                    else:
                        ok = "same" if (np.array_equal(out[0], ref[0]) and np.array_equal(out[1], ref[1])) else "DIFF"
                    launches = 40
                    stream.begin_capture()
                    for i in range(launches):
                        j = i % nbuf
                        launch(fn, c, b, xs[j], qs[j], ss[j], m, k, fmax, stream)
                    g = stream.end_capture()
                    g.launch(stream); stream.synchronize()
                    times = []
                    for _ in range(7):
                        e0, e1 = cp.cuda.Event(), cp.cuda.Event()
                        e0.record(stream); g.launch(stream); e1.record(stream); e1.synchronize()
                        times.append(cp.cuda.get_elapsed_time(e0, e1) * 1e3 / launches)
                    us = statistics.median(times)
                    frac = (3 * n + 4 * m * groups) / (us * 1e-6) / 1e9 / gbps
                    line += f" | {spec} {us:7.1f} us {frac:.3f} {ok}"
                print(line, flush=True)
                del xs, qs, ss


def profile(spec, m, k, fmt):
    v, c, b = parse(spec)
    fn = kernel(v, fmt)
    n = m * k
    x = random_bf16(n)
    q = cp.empty(n, dtype=cp.uint8)
    s = cp.empty(m * ((k + 127) // 128), dtype=cp.float32)
    stream = cp.cuda.Stream(non_blocking=True)
    for _ in range(3):
        launch(fn, c, b, x, q, s, m, k, FORMATS[fmt], stream)
    stream.synchronize()


if __name__ == "__main__":
    DATA = os.environ.get("AB_DATA", "randn")
    DIR = sys.argv[1]
    if sys.argv[2] == "bench":
        bench(sys.argv[3:])
    else:
        profile(sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6])
