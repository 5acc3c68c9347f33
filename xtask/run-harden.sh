#!/usr/bin/env bash
# Issue 8 (hardening) on the GPU machine: run from a folder holding tests/
# (stripped release test binaries) and this script.
#   run-harden.sh tests      GPU tests, every case (--include-ignored)
#   run-harden.sh memcheck|racecheck|initcheck|synccheck
#                            one compute-sanitizer tool over every tests/gpu_*
#                            binary (the exhaustive 2^32 encode and the
#                            >2^31-element test skipped: see `large`; and
#                            gpu_bad_input's sizes_past_the_limits, which
#                            launches nothing and provokes a 2 TiB cuMemAlloc
#                            OUT_OF_MEMORY on purpose, an API error the
#                            sanitizers count)
#   run-harden.sh large      memcheck over the >2^31-element test alone, timed
# Several modes may be given. Logs go to $OUT (default /tmp/harden-out);
# each sanitizer log ends in its SUMMARY line, echoed here with its time.
set -uo pipefail
cd "$(dirname "$0")"
out=${OUT:-/tmp/harden-out}
mkdir -p "$out"
status=0
per_binary=${PER_BINARY_TIMEOUT:-170}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/device.txt"
compute-sanitizer --version | tail -1

run_tests() {
    for t in tests/gpu_* tests/cpu_bad_input_props; do
        echo "=== $t"
        start=$SECONDS
        "./$t" --include-ignored --test-threads=1 --nocapture >"$out/tests-$(basename "$t").log" 2>&1
        rc=$?
        grep -E "test result|bad inputs tried|compared|panicked|FAILED" "$out/tests-$(basename "$t").log"
        echo "   rc=$rc $((SECONDS - start))s"
        [ $rc -eq 0 ] || status=1
    done
}

sanitize() {
    tool=$1
    export QUANT_GPU_CASES=${QUANT_GPU_CASES:-25}
    for t in tests/gpu_*; do
        log="$out/sanitize-$tool-$(basename "$t").log"
        start=$SECONDS
        timeout "$per_binary" compute-sanitizer --tool "$tool" --error-exitcode 99 \
            "./$t" --include-ignored --test-threads=1 --skip every_f32 --skip 2_pow_31 --skip sizes_past_the_limits \
            >"$log" 2>&1
        rc=$?
        echo "=== $tool $(basename "$t"): rc=$rc $((SECONDS - start))s | $(grep -E "test result" "$log" | tr '\n' ' ') | $(grep -E "SUMMARY" "$log" | tail -1)"
        [ $rc -eq 0 ] || status=1
    done
}

large() {
    log="$out/sanitize-memcheck-large.log"
    start=$SECONDS
    timeout "${LARGE_TIMEOUT:-300}" compute-sanitizer --tool memcheck --error-exitcode 99 \
        tests/gpu_quant --include-ignored --exact tensors_over_2_pow_31_elements --test-threads=1 >"$log" 2>&1
    rc=$?
    echo "=== memcheck >2^31 elements: rc=$rc $((SECONDS - start))s | $(grep -E "test result" "$log") | $(grep SUMMARY "$log" | tail -1)"
    [ $rc -eq 0 ] || status=1
}

for mode in "$@"; do
    case "$mode" in
        tests) run_tests ;;
        memcheck | racecheck | initcheck | synccheck) sanitize "$mode" ;;
        large) large ;;
        *) echo "unknown mode $mode"; status=2 ;;
    esac
done
echo "run-harden.sh: exit $status"
exit $status
