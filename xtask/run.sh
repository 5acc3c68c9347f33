#!/usr/bin/env bash
# Runs on the GPU machine, from the bundle `cargo xtask gpu-bundle` builds.
#   run.sh MODE... [-- extra args for the benchmark]
# Modes:
#   tests      every GPU test, every case (--include-ignored)
#   sanitize   the four compute-sanitizer tools below, one after the other
#   memcheck | racecheck | initcheck | synccheck
#              one tool over every tests/gpu_* binary, with fewer property
#              cases (QUANT_GPU_CASES, default 25) and without the exhaustive
#              2^32 encode, the >2^31-element test (see `large`) and
#              gpu_bad_input's sizes_past_the_limits (it launches nothing and
#              provokes a 2 TiB cuMemAlloc on purpose, an API error the tools
#              count)
#   large      memcheck over the >2^31-element test alone
#   bench      the kernel benchmark (fp8q bench): bench.md/.json/.svg
#   ab         the benchmark with the arguments after `--` on this build and
#              on bin/fp8q-base (`cargo xtask gpu-bundle --base REV`),
#              alternating, AB_ROUNDS rounds (default 2): every round's
#              tables to ab.md, their rows to the log. For example
#              run.sh ab -- --skip-quant --gemm --gemm-shapes 1,4096,8192
#   all        tests sanitize large bench
#   unpack     only unpack the gzipped binaries (then run them directly)
# Logs go to $OUT (the device tool returns that folder; /tmp/gpu-bundle-out
# otherwise). Each sanitizer line ends in the tool's SUMMARY.
set -uo pipefail
cd "$(dirname "$0")"
out=${OUT:-/tmp/gpu-bundle-out}
mkdir -p "$out"
status=0
per_binary=${PER_BINARY_TIMEOUT:-300}
modes=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do modes+=("$1"); shift; done
[ $# -gt 0 ] && shift
[ ${#modes[@]} -gt 0 ] || modes=(all)

# `cargo xtask gpu-bundle` gzips the binaries: unpack them in place.
for f in bin/*.gz tests/*.gz; do
    [ -e "$f" ] || continue
    if command -v gunzip >/dev/null; then
        gunzip -f "$f"
    else
        python3 -c 'import gzip, shutil, sys; shutil.copyfileobj(gzip.open(sys.argv[1]), open(sys.argv[1][:-3], "wb"))' "$f" && rm -f "$f"
    fi
    chmod +x "${f%.gz}"
done

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/device.txt"
[ -f bin/BUILD ] && echo "bundle built from $(cat bin/BUILD)" | tee -a "$out/device.txt"

run_tests() {
    for t in tests/gpu_*; do
        log="$out/tests-$(basename "$t").log"
        start=$SECONDS
        "./$t" --include-ignored --test-threads=1 --nocapture >"$log" 2>&1
        rc=$?
        echo "=== $t: rc=$rc $((SECONDS - start))s | $(grep -E "test result" "$log")"
        grep -E "panicked|FAILED" "$log" | head -5
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

run_bench() {
    bin/fp8q bench --out "$out" "$@" || status=1
}

run_ab() {
    if [ ! -x bin/fp8q-base ]; then
        echo "ab: no bin/fp8q-base: build the bundle with cargo xtask gpu-bundle --base REV"
        status=1
        return
    fi
    local base build
    base=$(cat bin/BASE 2>/dev/null || echo "?")
    build=$(cat bin/BUILD 2>/dev/null || echo "?")
    : >"$out/ab.md"
    for round in $(seq 1 "${AB_ROUNDS:-2}"); do
        for side in new base; do
            local exe=bin/fp8q label="this build $build"
            [ "$side" = base ] && exe=bin/fp8q-base label="base $base"
            local dir
            dir=$(mktemp -d)
            if ! "$exe" bench --out "$dir" "$@" >"$dir/log" 2>&1; then
                echo "ab: $label, round $round failed:"
                tail -5 "$dir/log"
                status=1
            fi
            # (`--fused` writes its table to bench-fused.md.)
            { echo "# $label, round $round"; cat "$dir/bench.md" "$dir/bench-fused.md" 2>/dev/null; echo; } >>"$out/ab.md"
            echo "=== $label, round $round"
            cat "$dir/bench.md" "$dir/bench-fused.md" 2>/dev/null | grep -E '^\| ' | grep -vE '^\|[-:| ]+\|$' | head -80
            rm -rf "$dir"
        done
    done
}

for mode in "${modes[@]}"; do
    case "$mode" in
        tests) run_tests ;;
        sanitize) for tool in memcheck racecheck initcheck synccheck; do sanitize "$tool"; done ;;
        memcheck | racecheck | initcheck | synccheck) sanitize "$mode" ;;
        large) large ;;
        bench) run_bench "$@" ;;
        ab) run_ab "$@" ;;
        unpack) ;;
        all) run_tests; for tool in memcheck racecheck initcheck synccheck; do sanitize "$tool"; done; large; run_bench "$@" ;;
        *) echo "unknown mode $mode"; status=2 ;;
    esac
done
echo "run.sh: exit $status"
exit $status
