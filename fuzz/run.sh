#!/bin/sh
# SPDX-License-Identifier: MIT
# Runs every libFuzzer harness of a BR_BUILD_FUZZ build (make fuzz):
#   fuzz/run.sh BUILD_DIR [RUNS]
# For each harness: replay fuzz/regressions/HARNESS/, then fuzz for RUNS
# executions from the committed seeds plus fresh ones from mkseeds, all in
# a scratch directory (the repository is never written). Two harnesses run
# at a time (the machines have 2 cores). Fails on any crash, invariant,
# leak (memory, descriptor or /dev/shm object) or hang (-timeout=10);
# crash inputs are kept in BUILD_DIR/fuzz-artifacts/.
# FUZZ_SEED (default 1) fixes libFuzzer's seed, so that `make test` gives
# the same verdict on the same code; FUZZ_SEED=0 lets libFuzzer pick one,
# as longer runs by hand should (docs/testing.md).
set -u
build=$(cd "$1" && pwd)
runs=${2:-60000}
src=$(cd "$(dirname "$0")" && pwd)
harnesses="fuzz_ring fuzz_records fuzz_indexed fuzz_files"
opts="-timeout=10 -detect_leaks=1 -rss_limit_mb=2048 -max_len=4200 -seed=${FUZZ_SEED:-1}"
scratch=$(mktemp -d "${TMPDIR:-/tmp}/brfuzz-run-XXXXXX")
artifacts=$build/fuzz-artifacts
mkdir -p "$artifacts"
trap 'rm -rf "$scratch"' EXIT

# One harness: prints its summary into $scratch/$h.log, exit code in .rc.
one() {
    h=$1 bin=$build/fuzz/$1 work=$scratch/$1
    mkdir -p "$work/corpus" "$work/tmp"
    cp "$src/corpus/$h/"* "$work/corpus/" 2>/dev/null
    "$build/fuzz/mkseeds" "$h" "$work/corpus" || return 1
    set -- "$src/regressions/$h/"*
    if [ -e "$1" ]; then
        echo "== $h: replaying $# regression(s)"
        TMPDIR=$work/tmp "$bin" $opts -artifact_prefix="$artifacts/$h-" "$@" 2>&1 &
        pid=$!
        wait $pid || { rc=$?; shm_left $pid; return $rc; }
        shm_left $pid || return 1
    fi
    echo "== $h: $runs runs"
    TMPDIR=$work/tmp "$bin" $opts -runs="$runs" -print_final_stats=1 \
        -artifact_prefix="$artifacts/$h-" "$work/corpus" 2>&1 &
    pid=$!
    wait $pid || { rc=$?; shm_left $pid; return $rc; }
    shm_left $pid
}

# Rings the harness process `pid` left in /dev/shm (named brtest-fuzz-PID-N,
# so they are ours): removed, and an error after a run that passed.
shm_left() {
    left=$(ls /dev/shm 2>/dev/null | grep "^brtest-fuzz-$1-") || return 0
    for f in $left; do rm -f "/dev/shm/$f"; done
    echo "harness pid $1 left /dev/shm objects: $left"
    return 1
}

failed=""
for h in $harnesses; do
    (one "$h" >"$scratch/$h.log" 2>&1; echo $? >"$scratch/$h.rc") &
    # Two at a time.
    if [ $(jobs -p | wc -l) -ge 2 ]; then wait $(jobs -p | head -n 1); fi
done
wait
for h in $harnesses; do
    rc=$(cat "$scratch/$h.rc" 2>/dev/null || echo 1)
    if [ "$rc" != 0 ]; then
        failed="$failed $h"
        echo "######## $h FAILED (exit $rc):"
        tail -n 60 "$scratch/$h.log"
    else
        grep -E "^== |Done [0-9]+ runs|stat::number_of_executed_units|stat::peak_rss" "$scratch/$h.log"
    fi
done
if [ -n "$failed" ]; then
    echo "fuzz: FAILED:$failed (inputs in $artifacts)"
    exit 1
fi
echo "fuzz: all harnesses passed ($runs runs each)"
