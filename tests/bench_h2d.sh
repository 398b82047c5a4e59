#!/bin/sh
# SPDX-License-Identifier: MIT
#
# `batchring bench --case h2d` where there is no GPU (perf/case_h2d.c):
#
#   bench_h2d.sh BATCHRING stub STUB_SO   against the tests' stub runtime
#       (tests/cuda_stub.c): exit 0, every step ran (the stub's log shows
#       the ring and the private buffer registered, copies from the held
#       slots and cudaMemcpy, both unregistered), the figures are labelled
#       as the stub's, and no GB/s stands in the GPU columns (text and JSON).
#   bench_h2d.sh BATCHRING none           BR_CUDART naming no file: exit 0,
#       one "skipped: no CUDA runtime" line naming the path, no figures,
#       and a "skipped" field in --json.
#
# Prints what failed and exits 1; no timing is checked.
set -u
cli=$1
mode=$2
work=$(mktemp -d "${TMPDIR:-/tmp}/br-bench-h2d.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
fail=0

bad() {
    echo "bench_h2d.sh ($mode): $*"
    fail=1
}

# expect FILE REGEX WHAT: FILE has a line matching the extended REGEX.
expect() {
    grep -Eq -- "$2" "$1" || bad "$3 (no line matches '$2')"
}

# refuse FILE REGEX WHAT: no line of FILE matches.
refuse() {
    if grep -Eq -- "$2" "$1"; then
        bad "$3 (a line matches '$2')"
    fi
}

# run NAME ARGS...: the command's stdout in $work/NAME, its exit code checked.
run() {
    name=$1
    shift
    "$cli" bench --case h2d --seconds 0.2 "$@" >"$work/$name" 2>"$work/$name.err"
    rc=$?
    [ $rc = 0 ] || bad "bench $* exited $rc"
}

case $mode in
stub)
    export BR_CUDART=$3
    export BR_CUDA_STUB_LOG=$work/stub.log
    run text
    expect "$work/text" '^h2d +4 MiB +2 +- +GB/s +- GB/s' "the row has no GB/s in the GPU columns"
    expect "$work/text" 'stub_memcpy_held_GBps = [0-9]' "the held-slot copies ran"
    expect "$work/text" 'stub_memcpy_pinned_GBps = [0-9]' "the pinned-buffer copies ran"
    expect "$work/text" 'stub_memcpy_pageable_GBps = [0-9]' "the pageable copies ran"
    expect "$work/text" 'note: stub runtime: memcpy, not a GPU' "the figures are labelled as the stub's"
    refuse "$work/text" 'skipped|failed' "the case ran"
    # The ring (2 workers: 2 x 2 + 2 slots of 4 MiB at least) and the
    # private buffer registered, copies from both, both unregistered.
    expect "$work/stub.log" '^cudaHostRegister 0x[0-9a-f]+ 4194304 1$' "the private buffer was pinned"
    n=$(grep -Ec '^cudaHostRegister ' "$work/stub.log")
    [ "$n" = 2 ] || bad "cudaHostRegister was called $n times, not 2 (the ring and the buffer)"
    n=$(grep -Ec '^cudaHostUnregister ' "$work/stub.log")
    [ "$n" = 2 ] || bad "cudaHostUnregister was called $n times, not 2"
    expect "$work/stub.log" '^cudaMemcpyAsync 4194304 1 ' "copies from the held slots"
    expect "$work/stub.log" '^cudaMemcpy 4194304 1$' "synchronous copies of the baselines"
    n=$(grep -Ec '^cudaMalloc ' "$work/stub.log")
    m=$(grep -Ec '^cudaFree ' "$work/stub.log")
    [ "$n" = "$m" ] || bad "$n cudaMalloc but $m cudaFree"
    export BR_CUDA_STUB_LOG=$work/stub-json.log
    run json --json
    expect "$work/json" '"value": null' "JSON: no GB/s as a GPU figure"
    expect "$work/json" '"note": "stub runtime: memcpy, not a GPU' "JSON: labelled"
    expect "$work/json" '"units": [1-9]' "JSON: batches were copied"
    refuse "$work/json" '"skipped"' "JSON: not skipped"
    ;;
none)
    export BR_CUDART=/nonexistent/libcudart.so
    run text
    expect "$work/text" '^h2d .* skipped: no CUDA runtime: BR_CUDART is /nonexistent/libcudart.so' \
        "one skip line naming why"
    refuse "$work/text" 'GB/s|_GBps|failed' "nothing measured"
    run json --json
    expect "$work/json" '"skipped": "no CUDA runtime: ' "JSON: a skipped field"
    refuse "$work/json" '"value"|"figures"' "JSON: no figures"
    ;;
*)
    echo "usage: bench_h2d.sh BATCHRING stub STUB_SO | BATCHRING none" >&2
    exit 2
    ;;
esac
if [ $fail != 0 ]; then
    for f in "$work"/text "$work"/json "$work"/*.err; do
        [ -s "$f" ] && { echo "--- $(basename "$f")"; cat "$f"; }
    done
    exit 1
fi
echo "bench_h2d.sh ($mode): ok"
