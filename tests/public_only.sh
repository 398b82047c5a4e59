#!/bin/sh
# SPDX-License-Identifier: MIT
#
# The installed `batchring` command needs only the public API: every source
# it compiles (cli/, synth/, and the perf cases behind `batchring bench`:
# perf/cases.c, perf/topology.c and perf/case_*.c but case_schedule.c, which
# is batchring-perf's alone) is compiled here in a copy of the tree that holds
# nothing else, with include/ and synth/ as the only include paths. An
# include of a library header (even "../ring/atomics.h", which a full tree
# would resolve) then fails, and the script prints the compiler's message
# and exits 1. The library itself may change its internals freely.
#
# Usage: public_only.sh SOURCE_DIR CC [FLAG...]
#   FLAG...: extra compiler flags (e.g. liburing's -I, which perf/case_records.c
#   needs for its bare liburing baseline)
set -eu
src=$1
cc=$2
shift 2

work=$(mktemp -d "${TMPDIR:-/tmp}/br-public-only.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

mkdir -p "$work/perf"
cp -R "$src/include" "$src/cli" "$src/synth" "$work/"
cp "$src"/perf/*.h "$work/perf/"
for f in "$src"/perf/cases.c "$src"/perf/case_*.c "$src"/perf/topology.c; do
    case $(basename "$f") in
    case_schedule.c) ;; # batchring-perf only: it calls the internal schedule
    *) cp "$f" "$work/perf/" ;;
    esac
done

bad=0
n=0
for f in "$work"/cli/*.c "$work"/synth/*.c "$work"/perf/*.c; do
    n=$((n + 1))
    if ! out=$(cd "$(dirname "$f")" &&
        "$cc" -std=c11 -D_GNU_SOURCE -fsyntax-only -Werror=implicit-function-declaration \
            -I "$work/include" -I "$work/synth" "$@" "$(basename "$f")" 2>&1); then
        printf '%s\n' "$out" | sed "s|$work/||g"
        echo "public_only.sh: ${f#"$work"/} does not compile with only include/ and synth/"
        bad=1
    fi
done
# Nothing compiled proves nothing.
if [ $n -lt 10 ]; then
    echo "public_only.sh: only $n sources found under $src" >&2
    exit 1
fi
[ $bad = 0 ] && echo "public_only: $n sources of the command compile from include/ and synth/ alone"
exit $bad
