#!/bin/sh
# SPDX-License-Identifier: MIT
# Shards under a real launcher: mpirun -np 3 over mpi_shard_probe, then a
# check that the ranks' ids are disjoint (but for padding) and covering.
# Exit 77 (skipped) only when Open MPI's mpirun is not installed.
set -eu
probe=$1
if ! command -v mpirun >/dev/null 2>&1; then
    echo "skipped: mpirun not found (apt-get install openmpi-bin; make test installs it)"
    exit 77
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
as_root=""
[ "$(id -u)" = 0 ] && as_root="--allow-run-as-root"
# Loopback only, no daemons left behind: a single-node run.
mpirun $as_root --oversubscribe -np 3 --mca btl self,vader --mca plm_rsh_agent false \
    "$probe" run "$dir"
"$probe" check "$dir" 3
