#!/usr/bin/env bash
# On the GPU machine, from the bundle: a 4+ GiB synthetic checkpoint quantized
# on the GPU and on the CPU, outputs compared byte for byte, then verified.
set -uo pipefail
"$(dirname "$0")/run.sh" unpack >/dev/null || exit 1
bin="$(cd "$(dirname "$0")" && pwd)/bin/fp8q"
work=${1:-/tmp/fp8q-4gib}
rm -rf "$work" && mkdir -p "$work" && cd "$work" || exit 1
"$bin" synthesize ck --copies 44 && du -sh ck
"$bin" quantize ck q-gpu --device gpu 2>&1 | tail -4
"$bin" quantize ck q-cpu --device cpu 2>&1 | tail -4
if diff -r q-gpu q-cpu >/dev/null; then echo "fp8q: GPU and CPU outputs are byte-identical"; else echo "fp8q: GPU and CPU outputs DIFFER"; exit 1; fi
"$bin" verify ck q-gpu 2>&1 | tail -2
