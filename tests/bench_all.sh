#!/bin/sh
# SPDX-License-Identifier: MIT
#
# bench_all.sh BATCHRING: every case of `batchring bench` runs to its end.
# `make perf` is where the figures are read; this only proves that no case
# crashes, fails or hangs (the ctest timeout) on a fresh build, so that a
# broken case is found by `make test` and not half-way through a 10-minute
# `make perf`. One short run of each (--seconds 0.02), its JSON checked:
# exit 0, one entry per case named by --help, a number as each entry's
# value, no "error"; "skipped" only for h2d (no CUDA device here). No
# figure is compared with anything.
set -u
cli=$1
work=$(mktemp -d "${TMPDIR:-/tmp}/br-bench-all.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
fail=0
bad() {
    echo "bench_all.sh: $*"
    fail=1
}

cases=$("$cli" bench --help | sed -n '/^cases/,$p' | awk '/^  [a-z]/ {print $1}')
[ -n "$cases" ] || bad "bench --help lists no cases"
"$cli" bench --case all --seconds 0.02 --json >"$work/out.json" 2>"$work/err"
rc=$?
[ $rc = 0 ] || bad "bench --case all exited $rc"
# One entry per line: {"case": "NAME", ...}
for c in $cases; do
    line=$(grep -F "{\"case\": \"$c\"," "$work/out.json")
    if [ -z "$line" ]; then
        bad "no entry for case $c"
        continue
    fi
    case $line in
    *'"error"'*) bad "case $c failed: $line" ;;
    *'"skipped"'*) [ "$c" = h2d ] || bad "case $c was skipped: $line" ;;
    *) echo "$line" | grep -Eq '"value": [0-9]' || bad "case $c has no numeric value: $line" ;;
    esac
done
if [ $fail != 0 ]; then
    echo "--- stderr"
    cat "$work/err"
    exit 1
fi
echo "bench_all.sh: ok ($(echo $cases | wc -w) cases)"
