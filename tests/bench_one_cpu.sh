#!/bin/sh
# SPDX-License-Identifier: MIT
#
# bench_one_cpu.sh BATCHRING: `batchring bench` confined to one CPU, as on
# a CPU-bound CI machine or in a one-CPU cpuset, must finish. The floor and
# the handoff case bounce a cache line between two spinning processes; on
# one CPU each handoff waited for the scheduler's tick, and the machine line
# alone took minutes (a CI run timed out at 60 s). Exits 1 naming what went
# wrong; the figures themselves are not checked.
set -u
cli=$1
# The first CPU this process may use (a CI cpuset need not contain CPU 0).
cpu=$(taskset -pc $$ | sed 's/.*: *//; s/[-,].*//')
out=$(taskset -c "$cpu" "$cli" bench --case handoff --seconds 0.1 2>&1)
rc=$?
fail=0
[ $rc = 0 ] || { echo "bench_one_cpu.sh: bench exited $rc"; fail=1; }
echo "$out" | grep -Eq "this process may use $cpu;" ||
    { echo "bench_one_cpu.sh: the machine line does not show CPU $cpu alone"; fail=1; }
echo "$out" | grep -Eq '^handoff +1 MiB +1 +[0-9.]+ +ns/batch +[0-9.]+ ns/handoff' ||
    { echo "bench_one_cpu.sh: no handoff row beside a floor"; fail=1; }
if [ $fail != 0 ]; then
    echo "$out"
    exit 1
fi
echo "bench_one_cpu.sh: ok on CPU $cpu"
