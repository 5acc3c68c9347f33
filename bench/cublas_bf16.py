"""Times cuBLAS bf16 GEMM (through PyTorch) on the gemm_bench shapes.

Writes lines `M N K microseconds` (median of event-timed runs) to argv[1],
for gemm_bench's CUBLAS_TIMES. C[M, N] = A[M, K] @ B[N, K]^T in bf16.
"""
import sys
import torch

shapes = [(1, 512, 7168), (8, 512, 7168), (2048, 512, 7168), (4096, 7168, 2048)]
for n, k in [(7168, 16384), (4096, 8192), (32768, 1024), (3072, 7168), (7168, 3072)]:
    for m in [1, 16, 64, 512, 2048, 4096]:
        shapes.append((m, n, k))
out = []
for m, n, k in shapes:
    a = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, k, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        torch.mm(a, b.t())
    times = []
    c = torch.empty(m, n, device="cuda", dtype=torch.bfloat16)
    torch.cuda.synchronize()
    for _ in range(7):  # batches of 20 back-to-back calls, as gemm_bench times
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        for _ in range(20):
            torch.mm(a, b.t(), out=c)
        e.record()
        e.synchronize()
        times.append(s.elapsed_time(e) * 1e3 / 20)
    times.sort()
    out.append(f"{m} {n} {k} {times[len(times) // 2]:.2f}")
open(sys.argv[1], "w").write("\n".join(out) + "\n")
print("\n".join(out))
