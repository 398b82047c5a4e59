#!/bin/sh
# SPDX-License-Identifier: MIT
# ABI check: compares a freshly built libbatchring.so (with debug info, so
# that abidiff sees the types) against the ABI of the last release kept in
# abi/. Run by tests/package/check.sh (make package-check, make test).
#
#   abi_check.sh LIB [SRCDIR]       check LIB against SRCDIR/abi/*.abi
#   abi_check.sh --update LIB [SRCDIR]  write SRCDIR/abi/<soname>.abi
#
# Policy: a program built against the stored release must keep working with
# LIB. Added functions and variables are compatible and pass; any other
# change to the exported functions or to a type declared in the public
# headers (include/) fails, unless LIB's soname differs from the stored one:
# a new soname is a declared ABI break ("new soname, ABI break allowed"),
# after which `--update` stores the new release's ABI.
# Exit: 0 compatible, 1 incompatible or error, 77 abigail-tools missing.
set -u

update=0
if [ "${1:-}" = "--update" ]; then update=1; shift; fi
lib=${1:?usage: abi_check.sh [--update] LIB [SRCDIR]}
src=${2:-$(cd "$(dirname "$0")/../.." && pwd)}
say() { echo "abi_check: $*"; }

for t in abidw abidiff readelf; do
    command -v "$t" >/dev/null 2>&1 || {
        say "SKIPPED: $t not found (Debian package abigail-tools / binutils)"; exit 77; }
done
[ -f "$lib" ] || { say "$lib: no such library"; exit 1; }
soname=$(readelf -d "$lib" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[ -n "$soname" ] || { say "$lib has no soname"; exit 1; }
# Without DWARF, abidw sees symbols only and no struct change would show.
if ! readelf -S "$lib" | grep -q '\.debug_info'; then
    say "$lib has no debug info: build it with -g (check.sh does)"; exit 1
fi
hdrs=$src/include

if [ $update = 1 ]; then
    out=$src/abi/$soname.abi
    abidw --headers-dir "$hdrs" --drop-private-types --no-corpus-path \
          --no-comp-dir-path --short-locs --out-file "$out" "$lib" || exit 1
    say "wrote $out"
    exit 0
fi

set -- "$src"/abi/*.abi
[ $# = 1 ] && [ -f "$1" ] || {
    say "expected exactly one stored ABI in $src/abi/, found: $*"; exit 1; }
stored=$1
old_soname=$(sed -n "s/.*<abi-corpus [^>]*soname='\([^']*\)'.*/\1/p" "$stored" | head -n 1)
if [ "$old_soname" != "$soname" ]; then
    say "soname $old_soname -> $soname: new soname, ABI break allowed" \
        "(store the new ABI: tests/package/abi_check.sh --update $lib)"
    exit 0
fi

# Fields appended to the structs that may grow (include/batchring.h, "How
# the public structs grow") are compatible by design: abi/growth.suppr
# tells abidiff so, for an insertion at the end only.
suppr=$src/abi/growth.suppr
abidiff_() {
    if [ -f "$suppr" ]; then abidiff --suppressions "$suppr" "$@"; else abidiff "$@"; fi
}

# Exit bits of abidiff: 1 error, 2 usage error, 4 ABI change, 8 incompatible
# change. Added symbols also set bit 4, so they are left out of this run
# (--no-added-syms) and any remaining change fails.
report=$(abidiff_ --no-added-syms --drop-private-types --hd2 "$hdrs" \
                 "$stored" "$lib" 2>&1)
rc=$?
if [ $rc -ne 0 ]; then
    echo "$report"
    if [ $((rc & 3)) -ne 0 ]; then
        say "abidiff failed (exit $rc)"
    else
        say "FAILED: incompatible ABI change against $(basename "$stored")" \
            "with the same soname $soname (exit $rc): restore the ABI, or" \
            "bump the minor version (before 1.0 the soname carries it)"
    fi
    exit 1
fi
added=$(abidiff_ --drop-private-types --hd2 "$hdrs" "$stored" "$lib" 2>&1 |
        sed -n "s/^  \\[A\\] '\\(.*\\)'.*/  added: \\1/p")
[ -n "$added" ] && echo "$added"
say "compatible with $(basename "$stored") ($soname)"
exit 0
