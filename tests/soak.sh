#!/bin/sh
# SPDX-License-Identifier: MIT
# Runs `batchring soak` (cli/soak.c) for CTest: passes only when it exits 0
# AND its summary line says nothing was lost, repeated or wrong.
# usage: soak.sh BATCHRING [soak options...]
cli=$1
shift
# brtest-<pid>-: the other tests' /dev/shm leak checks skip another test
# process's rings by this prefix (tests/test_util.c).
out=$("$cli" soak --name "/brtest-$$-soak" "$@" 2>&1)
rc=$?
printf '%s\n' "$out"
if [ "$rc" -ne 0 ]; then
    echo "soak.sh: batchring soak exited $rc"
    exit 1
fi
if ! printf '%s\n' "$out" | grep -Eq '^soak: .* lost 0, repeated 0, wrong 0, .*: ok'; then
    echo "soak.sh: the summary does not say lost 0, repeated 0, wrong 0, ok"
    exit 1
fi
if [ -e "/dev/shm/brtest-$$-soak" ]; then
    echo "soak.sh: the ring /dev/shm/brtest-$$-soak was left behind"
    exit 1
fi
exit 0
