#!/usr/bin/env bash
# Runs on the GPU machine, from the bundle `cargo xtask gpu-bundle` builds.
#   run.sh [tests|sanitize|bench|all] [extra args for the benchmark]
# Writes logs under $OUT when set (the device tool returns that folder).
set -uo pipefail
cd "$(dirname "$0")"
mode=${1:-all}
shift || true
out=${OUT:-/tmp/gpu-bundle-out}
mkdir -p "$out"
status=0

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader

run_tests() {
    for t in tests/*; do
        echo "=== $t"
        "./$t" --include-ignored --test-threads=1 2>&1 | tee -a "$out/tests.log" | grep -E "^test |test result|panicked|FAILED" || true
        [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
    done
}

run_sanitizers() {
    # Fewer property cases: the sanitizers slow kernels down by 10-100x.
    # The exhaustive 2^32 encode and the >2^31-element test are too slow
    # under instrumentation and are covered by the plain test run.
    export QUANT_GPU_CASES=${QUANT_GPU_CASES:-25}
    for tool in memcheck racecheck initcheck synccheck; do
        for t in tests/gpu_*; do
            [ -e "$t" ] || continue
            echo "=== compute-sanitizer --tool $tool $t"
            compute-sanitizer --tool "$tool" --error-exitcode 99 \
                "./$t" --include-ignored --test-threads=1 --skip every_f32 --skip 2_pow_31 \
                >"$out/sanitize-$tool-$(basename "$t").log" 2>&1
            rc=$?
            grep -E "SUMMARY|test result" "$out/sanitize-$tool-$(basename "$t").log" | tail -2
            [ $rc -eq 0 ] || { status=1; echo "   (exit $rc)"; }
        done
    done
}

run_bench() {
    if [ -x bin/fp8q ]; then
        bin/fp8q bench --out "$out" "$@" || status=1
    elif [ -x bin/fp8-bench ]; then
        bin/fp8-bench --out "$out" "$@" || status=1
    fi
}

case "$mode" in
    tests) run_tests ;;
    sanitize) run_sanitizers ;;
    bench) run_bench "$@" ;;
    all) run_tests; run_sanitizers; run_bench "$@" ;;
    *) echo "usage: run.sh [tests|sanitize|bench|all]"; exit 2 ;;
esac
echo "run.sh: exit $status"
exit $status
