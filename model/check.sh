#!/bin/sh
# SPDX-License-Identifier: MIT
# Checks model/slots.pml with spin: generates the verifier (spin -a),
# compiles it with cc and runs it with a fixed depth and memory budget.
#   check.sh MODEL WORKDIR pass|violation|assertion [-DNAME=VALUE ...]
# pass: fails on any error spin reports (assertion, invalid end state) or
# on a search cut short by the depth or memory bound. violation: the model
# variant must be caught (an invalid end state: the consumer blocked for
# good); fails if spin finds nothing. assertion: likewise, but what spin
# must find is a violated assertion (a broken promise, such as a batch
# delivered twice). Exit 77 (skipped) without spin.
set -eu
model=$1 work=$2 want=$3
shift 3
if ! command -v spin >/dev/null 2>&1; then
    echo "SKIP: spin is not installed (Debian package spin; make setup installs it)"
    exit 77
fi
cc=${CC:-cc}
rm -rf "$work"
mkdir -p "$work"
cp "$model" "$work/model.pml"
cd "$work"
spin -a "$@" model.pml >spin.log 2>&1 || { cat spin.log; exit 1; }
# SAFETY: assertions and invalid end states (a blocked consumer), no
# acceptance cycles; COLLAPSE compresses states without approximation;
# MEMLIM (MiB) bounds the search.
$cc -O2 -DSAFETY -DCOLLAPSE -DMEMLIM=1024 -o pan pan.c >cc.log 2>&1 || { cat cc.log; exit 1; }
./pan -m100000 -n >pan.log 2>&1 || true
cat pan.log
errors=$(sed -n 's/.*errors: \([0-9][0-9]*\).*/\1/p' pan.log)
[ -n "$errors" ] || { echo "FAIL: pan gave no result"; exit 1; }
case $want in
pass)
    if [ "$errors" != 0 ]; then
        echo "FAIL: spin found $errors error(s); the trail:"
        spin -t -p -g -l "$@" model.pml 2>&1 | tail -60
        exit 1
    fi
    # A search cut short by the depth or memory bound proves nothing.
    if grep -q "max search depth too small\|MEMLIM bound\|out of memory\|Search not completed" pan.log; then
        echo "FAIL: the search was cut short (depth or memory bound)"
        exit 1
    fi
    echo "PASS: no error"
    ;;
violation)
    if [ "$errors" = 0 ]; then
        echo "FAIL: this variant must be caught, and spin found nothing"
        exit 1
    fi
    if ! grep -q "invalid end state" pan.log; then
        echo "FAIL: spin found an error, but not the blocked consumer expected"
        exit 1
    fi
    echo "PASS: spin finds the consumer blocked for good, as expected of this variant"
    ;;
assertion)
    if [ "$errors" = 0 ]; then
        echo "FAIL: this variant must be caught, and spin found nothing"
        exit 1
    fi
    if ! grep -q "assertion violated" pan.log; then
        echo "FAIL: spin found an error, but not the violated assertion expected"
        exit 1
    fi
    echo "PASS: spin finds a violated assertion, as expected of this variant"
    ;;
*)
    echo "usage: check.sh MODEL WORKDIR pass|violation|assertion [-D...]"
    exit 2
    ;;
esac
