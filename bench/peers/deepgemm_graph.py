#!/usr/bin/env python3
"""DeepGEMM timed the way `fp8q bench --gemm` times this project's GEMM, and the way
`../shared/anchors/deepgemm.py` times DeepGEMM, in one process.

Usage: deepgemm_graph.py DEEPGEMM_DIR OUT_DIR M,N,K [M,N,K ...]

Why: the anchor script times DeepGEMM with `triton.testing.do_bench` (a 256 MB memset
before every launch, one launch between two events, the median), while `fp8q bench`
times ours per launch in a CUDA graph of about 20 ms of back-to-back launches that
rotate through copies of B (cold L2, as a model's layers are), the median of 10
replays. The two methods load the GPU differently (sustained tensor work against
launches separated by a memory-bound memset), so a ratio of figures taken one way
and the other mixes methods. This script gives DeepGEMM's figure both ways:

- `graph`: exactly `fp8q bench`'s method (quant-host/src/bench/gemm.rs): B copies
  to exceed 125 MB (at most 32), `launches = clamp(20000 / (GFLOP at 1000 TFLOP/s
  in us), 5, 50)` per graph, warm-up replays, median of 10 replays.
  With `DG_SETTLE_MS=N` in the environment the GPU idles N ms before each shape's
  timed replays, as `fp8q bench --gemm-settle-ms N` does before ours.
- `flush`: do_bench's method (warm-up, then per repetition a 256 MB memset, an
  event, the launch, an event; the median of 100), as the anchor script times it:
  the host's launch work (Python, DeepGEMM's tensor-map encoding) can fall between
  the first event and the kernel when the memset ends before it, so this figure
  can include host time; the `graph` one cannot.

`fp8q bench --gemm --gemm-peers OUT_DIR/deepgemm_graph.json` (run after this script, in the
same device call, on the same shapes) sets DeepGEMM's graph figure beside ours in the GEMM
table, with `fast / DeepGEMM` per shape and per M range.

Operands are random fp8 with random positive scales (timing only; accuracy is the
anchor script's job). Compiles every shape's kernel in parallel processes first
(nvcc JIT, cached under DG_CACHE_DIR; FFMA interleaving off, as the anchor does,
which CUDA 13's nvcc would skip anyway)."""
import json, os, sys, time, multiprocessing as mp

ROTATE_BYTES = 125 << 20  # quant-host/src/bench/e2e.rs
MAX_COPIES = 32
GRAPH_LAUNCHES = 50  # quant-host/src/bench/gemm.rs
# `fp8q bench --gemm-settle-ms N` idles N ms before each record's timed graphs; the
# same here, from the environment, so both sides start each shape from one GPU state.
SETTLE_S = int(os.environ.get("DG_SETTLE_MS", "0")) / 1000.0


def launches(M, N, K):
    us = 2.0 * M * N * K / 1e9  # at 1000 TFLOP/s
    return max(5, min(GRAPH_LAUNCHES, int(20000.0 / max(us, 1.0))))


def operands(M, N, K, copies):
    import torch
    from deep_gemm import get_col_major_tma_aligned_tensor
    g = torch.Generator(device="cuda"); g.manual_seed(0)
    a = torch.randn(M, K, device="cuda", generator=g).clamp(-400, 400).to(torch.float8_e4m3fn)
    sa = torch.rand(M, K // 128, device="cuda", generator=g) + 0.5
    b = torch.randn(N, K, device="cuda", generator=g).clamp(-400, 400).to(torch.float8_e4m3fn)
    sb = torch.rand((N + 127) // 128, K // 128, device="cuda", generator=g) + 0.5
    bs = [b] + [b.clone() for _ in range(copies - 1)]
    return (a, get_col_major_tma_aligned_tensor(sa)), bs, sb


def warm(shape):  # a worker: compiles and caches the kernel for this shape
    import torch, deep_gemm
    M, N, K = shape
    a, bs, sb = operands(M, N, K, 1)
    out = torch.empty(M, N, device="cuda", dtype=torch.bfloat16)
    deep_gemm.gemm_fp8_fp8_bf16_nt(a, (bs[0], sb), out)
    torch.cuda.synchronize()
    return shape


def median(v):
    v = sorted(v)
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    dg_dir, out_dir = os.path.abspath(sys.argv[1]), sys.argv[2]
    # Created here: a missing folder only failed at the final json.dump, after
    # every kernel had been compiled and timed (session 29 lost a run so).
    os.makedirs(out_dir, exist_ok=True)
    shapes = [tuple(int(v) for v in s.split(",")) for s in sys.argv[3:]]
    sys.path.insert(0, dg_dir)
    os.environ["PYTHONPATH"] = dg_dir + ":" + os.environ.get("PYTHONPATH", "")
    os.environ.setdefault("DG_CACHE_DIR", "/tmp/dg-cache")
    os.environ.setdefault("DG_DISABLE_FFMA_INTERLEAVE", "1")
    with mp.get_context("spawn").Pool(min(12, len(shapes))) as pool:
        for s in pool.imap_unordered(warm, shapes):
            print("compiled", s, flush=True)
    import torch, deep_gemm
    dev = torch.cuda.get_device_name()
    print(f"\n# DeepGEMM d374456 on {dev}: fp8q's graph method and do_bench's flush method\n")
    print("| M | N | K | B copies | launches per graph | graph us | graph TFLOP/s | flush us | flush TFLOP/s | flush / graph TFLOP/s |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    rows = []
    flush_buf = torch.empty(256 << 20, dtype=torch.int8, device="cuda")
    for M, N, K in shapes:
        copies = max(1, min(MAX_COPIES, -(-ROTATE_BYTES // (N * K))))
        a, bs, sb = operands(M, N, K, copies)
        out = torch.empty(M, N, device="cuda", dtype=torch.bfloat16)
        call = lambda i: deep_gemm.gemm_fp8_fp8_bf16_nt(a, (bs[i % copies], sb), out)
        for i in range(copies + 2):
            call(i)
        torch.cuda.synchronize()
        n = launches(M, N, K)
        graph = torch.cuda.CUDAGraph()
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            with torch.cuda.graph(graph, stream=s):
                for i in range(n):
                    call(i + 1)
        torch.cuda.current_stream().wait_stream(s)
        graph.replay(); graph.replay(); graph.replay()
        if SETTLE_S > 0:  # fp8q bench --gemm-settle-ms: idle before the timed replays
            torch.cuda.synchronize()
            time.sleep(SETTLE_S)
        times = []
        for _ in range(10):
            e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            e0.record(); graph.replay(); e1.record(); e1.synchronize()
            times.append(e0.elapsed_time(e1) * 1e3 / n)
        g_us = median(times)
        # do_bench's method: warm-up, then memset + event + launch + event, median of 100.
        for i in range(25):
            call(0)
        events = []
        for _ in range(100):
            flush_buf.zero_()
            e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            e0.record(); call(0); e1.record()
            events.append((e0, e1))
        torch.cuda.synchronize()
        f_us = median([e0.elapsed_time(e1) * 1e3 for e0, e1 in events])
        fl = 2 * M * N * K
        r = {"M": M, "N": N, "K": K, "copies": copies, "launches": n, "graph_us": g_us, "flush_us": f_us,
             "graph_tflops": fl / g_us / 1e6, "flush_tflops": fl / f_us / 1e6}
        rows.append(r)
        print(f"| {M} | {N} | {K} | {copies} | {n} | {g_us:.1f} | {r['graph_tflops']:.0f} | {f_us:.1f} | "
              f"{r['flush_tflops']:.0f} | {g_us / f_us:.3f} |", flush=True)
    json.dump({"device": dev, "rows": rows}, open(os.path.join(out_dir, "deepgemm_graph.json"), "w"), indent=1)


if __name__ == "__main__":
    main()
