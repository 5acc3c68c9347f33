#!/usr/bin/env bash
# The must-show tables of the open issues, with their peers, in one device call.
#
#   bash bench/calls/tables.sh [gemm] [e2e] [quant] [fused]     (default: gemm e2e quant)
#
# Runs on the GPU machine from the repository root, with these carried:
#   target/gpu-bundle  `cargo xtask gpu-bundle` (fp8q and the GPU tests, this build); FP8Q names
#                      another of its binaries (for example bin/fp8q-base, main's build in a
#                      bundle made on a branch with --base main), default bin/fp8q; BUNDLE
#                      names another folder of the same layout (a copy holding only the
#                      binary FP8Q names, run.sh and bin/BUILD or bin/BASE, where the whole
#                      bundle, the peers and the tracked files would pass the device tool's
#                      64 MiB)
#   $PEERS             a copy of ../shared/anchors (default .peers2: the DeepGEMM
#                      tarball and quant_peers.py); add it to .git/info/exclude
# Sections, each timed under its own `timeout` and all under CAP seconds (default
# 540, inside the device tool's 600 s per command):
#   gemm   DeepGEMM on the 41 shapes of bench/bench-v35 (the GEMM peer set of
#          docs/shapes.md: M >= 2048, M = 64-128 and decode) through
#          bench/peers/deepgemm_graph.py, then `fp8q bench --gemm` on the same
#          shapes with DeepGEMM's figures set beside this project's and cuBLASLt's
#          (issue 14's table: one call, both peers, each mode's error).
#   e2e    quantize + GEMM against cuBLAS bf16 (`fp8q bench --e2e`).
#   quant  torchao's Triton quantizers (quant_peers.py), then the quantizer
#          tables with both ceilings and the host-cost table (`fp8q bench
#          --peers`; issue 15's tables).
#   fused  the fused quantizers against the two-step path (issue 19's table).
# Writes into $OUT: summary.txt (device, every section's exit status and time)
# and one bench-<section>.md per section that ran, each the benchmark's report
# followed by the peer script's log.
set -u
cd "$(dirname "$0")/../.."
ROOT=$PWD
B=${BUNDLE:-$ROOT/target/gpu-bundle}
FP8Q=${FP8Q:-$B/bin/fp8q}
PEERS=${PEERS:-$ROOT/.peers2}
OUT=${OUT:-/tmp/tables-out}
CAP=${CAP:-540}
mkdir -p "$OUT"
S=$OUT/summary.txt
T0=$SECONDS
left() { echo $((CAP - (SECONDS - T0))); }
# Seconds a step may take: what is left of CAP, at most $1, at least 1.
upto() { local l; l=$(left); [ "$l" -gt "$1" ] && l=$1; [ "$l" -lt 1 ] && l=1; echo "$l"; }
note() { echo "$* at $((SECONDS - T0)) s" | tee -a "$S"; }
sections=("$@")
[ ${#sections[@]} -gt 0 ] || sections=(gemm e2e quant)

(cd "$B" && ./run.sh unpack >/dev/null 2>&1)
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > "$S"
git -C "$ROOT" rev-parse --short HEAD >> "$S" 2>/dev/null
echo "fp8q: $FP8Q" >> "$S"
for f in "$B"/bin/[A-Z]*; do [ -f "$f" ] && echo "bin/$(basename "$f"): $(cat "$f")" >> "$S"; done

# The GEMM peer set as bench-v35 and the issue's must-show table have it.
SH41="2048,2112,7168 2048,24576,1536 2048,32768,512 2048,7168,16384 2048,4096,7168 2048,7168,2048
4096,2112,7168 4096,24576,1536 4096,32768,512 4096,7168,16384 4096,4096,7168 4096,7168,2048
2048,4096,8192 2048,32768,1024 2048,1024,4096 2048,512,4096 4096,4096,8192 4096,32768,1024
4096,1024,4096 4096,512,4096 2048,512,7168 64,2112,7168 64,24576,1536 64,32768,512 64,7168,16384
64,4096,7168 64,7168,2048 128,2112,7168 128,24576,1536 128,32768,512 128,7168,16384 128,4096,7168
128,7168,2048 64,4096,8192 64,32768,1024 64,1024,4096 64,512,4096 1,4096,8192 8,4096,8192
1,32768,1024 16,7168,16384"
SH41=$(echo $SH41)

gemm() {
    local dg=/tmp/tables-dg dgo=/tmp/tables-dgo
    mkdir -p "$dg" "$dgo"
    tar xzf "$PEERS"/deepgemm-*.tar.gz -C "$dg"
    timeout $(upto 130) python3 bench/peers/deepgemm_graph.py "$dg"/DeepGEMM "$dgo" $SH41 > /tmp/tables-dg.log 2>&1
    note "deepgemm rc=$?"
    timeout $(upto 150) "$FP8Q" bench --skip-quant --gemm --gemm-shapes $SH41 \
        --gemm-peers "$dgo"/deepgemm_graph.json --out /tmp/tables-g > /tmp/tables-g.log 2>&1
    note "gemm rc=$?"
    cat /tmp/tables-g/bench.md /tmp/tables-dg.log > "$OUT"/bench-gemm.md 2>/dev/null
}

e2e() {
    timeout $(upto 100) "$FP8Q" bench --skip-quant --e2e --out /tmp/tables-e > /tmp/tables-e.log 2>&1
    note "e2e rc=$?"
    cat /tmp/tables-e/bench.md > "$OUT"/bench-e2e.md 2>/dev/null
}

quant() {
    mkdir -p /tmp/tables-peers
    timeout $(upto 90) python3 "$PEERS"/quant_peers.py /tmp/tables-peers > /tmp/tables-torchao.log 2>&1
    note "torchao rc=$?"
    timeout $(upto 150) "$FP8Q" bench --peers /tmp/tables-peers/quant_peers.json \
        --out /tmp/tables-q > /tmp/tables-q.log 2>&1
    note "quant rc=$?"
    cat /tmp/tables-q/bench.md /tmp/tables-torchao.log > "$OUT"/bench-quant.md 2>/dev/null
}

fused() {
    timeout $(upto 90) "$FP8Q" bench --skip-quant --fused --out /tmp/tables-f > /tmp/tables-f.log 2>&1
    note "fused rc=$?"
    cat /tmp/tables-f/bench-fused.md > "$OUT"/bench-fused.md 2>/dev/null
}

for s in "${sections[@]}"; do
    if [ "$(left)" -lt 30 ]; then
        note "$s skipped: under 30 s of CAP left"
        continue
    fi
    case "$s" in
        gemm | e2e | quant | fused) "$s" ;;
        *) note "unknown section $s" ;;
    esac
done
note "done"
