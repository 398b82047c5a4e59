#!/bin/sh
# SPDX-License-Identifier: MIT
# package-check: what a packager or a user of an installed batchring sees.
# Run by `make package-check` (and so by `make test`); takes about a minute.
#
#   1 install   Release build (-Werror, with debug info for the ABI check),
#               `cmake --install --prefix`, every installed file present;
#               then the prefix is MOVED elsewhere, so every step below
#               also proves that the installed tree is relocatable
#   2 abi       tests/package/abi_check.sh against abi/*.abi
#   3 cmake     tests/package/consumer built with find_package(batchring)
#               (shared and static) and run; the installed examples built
#   4 pkgconfig the same main.c built with `pkg-config --cflags --libs`
#               (PKG_CONFIG_PATH only) and run; the installed `batchring
#               --help` run from another directory (RPATH)
#   5 deb       `cpack -G DEB`, dpkg -i, consumer built against /usr and run,
#               dpkg -P (root only: SKIPPED otherwise)
#   6 python    the installed Python package imported from the moved
#               prefix by Debian's python3 (PYTHONPATH only: the extension
#               finds libbatchring by its relative RPATH) and run on a file
#               (SKIPPED where python3-dev left it unbuilt)
#   7 libonly   the library-only build with no C++ compiler
#
# Ends with "package-check: N passed, N failed, N skipped"; exit 1 if any
# step failed. BR_PACKAGE_KEEP=1 keeps the scratch directory.
set -u

src=$(cd "$(dirname "$0")/../.." && pwd)
jobs=${JOBS:-2}
work=$(mktemp -d "${TMPDIR:-/tmp}/batchring-package.XXXXXX") || exit 1
deb_installed=0
cleanup() {
    # Only a package this script installed is removed.
    [ $deb_installed = 1 ] && dpkg -P batchring >/dev/null 2>&1
    [ "${BR_PACKAGE_KEEP:-0}" = 1 ] && echo "package-check: kept $work" || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

build=$work/build
prefix=$work/prefix
moved=$work/moved/prefix   # where the installed tree is moved to
passed=0 failed=0 skipped=0

# step NAME: runs step_NAME with its output in a log that is shown when it
# fails or skips; 77 means skipped.
step() {
    printf '%-10s ' "$1"
    t0=$(date +%s)
    "step_$1" >"$work/$1.log" 2>&1
    rc=$?
    dt=$(( $(date +%s) - t0 ))
    case $rc in
    0)  passed=$((passed + 1)); echo "ok (${dt}s)" ;;
    77) skipped=$((skipped + 1)); tail -n 1 "$work/$1.log" ;;
    *)  failed=$((failed + 1)); echo "FAILED (exit $rc), log:"
        sed 's/^/    /' "$work/$1.log" | tail -n 60 ;;
    esac
}

# Prints the command, runs it; a failure ends the step.
run() { echo "+ $*"; "$@"; }

step_install() {
    # Configured for /usr as a distribution build is (the libdir is then
    # Debian's multiarch lib/<triplet>, which the .deb needs for ld.so), and
    # installed elsewhere with --prefix.
    run cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_FLAGS=-g \
        -DCMAKE_INSTALL_PREFIX=/usr -DBR_WERROR=ON -DBUILD_TESTING=OFF -DBR_BUILD_PERF=OFF \
        -DBR_BUILD_EXAMPLES=OFF || return 1
    run cmake --build "$build" -j "$jobs" || return 1
    run cmake --install "$build" --prefix "$prefix" || return 1
    run mkdir -p "$(dirname "$moved")" && run mv "$prefix" "$moved" || return 1
    libdir=$(cd "$moved" && ls -d lib*/pkgconfig lib/*/pkgconfig 2>/dev/null | head -n 1)
    libdir=${libdir%/pkgconfig}
    [ -n "$libdir" ] || { echo "no pkgconfig directory installed"; return 1; }
    for f in bin/batchring include/batchring.h include/batchring/version.h \
             include/batchring/plugin.h \
             "$libdir/libbatchring.a" "$libdir/pkgconfig/batchring.pc" \
             "$libdir/cmake/batchring/batchringConfig.cmake" \
             share/doc/batchring/LICENSE share/doc/batchring/CHANGELOG.md \
             share/man/man1/batchring.1 share/man/man3/batchring.3 \
             share/doc/batchring/examples/CMakeLists.txt \
             share/doc/batchring/examples/trainer.c \
             share/doc/batchring/examples/attach_trainer.cc; do
        [ -s "$moved/$f" ] || { echo "missing or empty after install: $f"; return 1; }
    done
    ls "$moved/$libdir"/libbatchring.so.* >/dev/null || return 1
    # The man pages must format without warnings.
    if command -v groff >/dev/null 2>&1; then
        for m in "$moved"/share/man/man*/batchring.*; do
            w=$(groff -man -ww -z "$m" 2>&1)
            [ -z "$w" ] || { echo "$m: $w"; return 1; }
        done
    fi
    echo "$libdir" >"$work/libdir"
}

step_abi() {
    run sh "$src/tests/package/abi_check.sh" "$build/libbatchring.so" "$src"
}

step_cmake() {
    for kind in shared static; do
        static=OFF; [ $kind = static ] && static=ON
        run cmake -S "$src/tests/package/consumer" -B "$work/consumer-$kind" \
            -DCMAKE_PREFIX_PATH="$moved" -DBR_LINK_STATIC=$static || return 1
        run cmake --build "$work/consumer-$kind" || return 1
        run "$work/consumer-$kind/consumer" || return 1
    done
    # The shared consumer found libbatchring through the RPATH CMake gave it.
    ldd "$work/consumer-shared/consumer" | grep -q "$moved" || {
        echo "consumer-shared does not use the installed library"; return 1; }
    run cmake -S "$moved/share/doc/batchring/examples" -B "$work/examples" \
        -DCMAKE_PREFIX_PATH="$moved" || return 1
    run cmake --build "$work/examples" -j "$jobs"
}

step_pkgconfig() {
    libdir=$(cat "$work/libdir") || return 1
    export PKG_CONFIG_PATH="$moved/$libdir/pkgconfig"
    flags=$(pkg-config --cflags --libs batchring) || return 1
    echo "pkg-config: $flags"
    case $flags in *"$moved"*) ;; *)
        echo "the .pc file does not point into the moved prefix"; return 1 ;; esac
    rpath=$(pkg-config --variable=libdir batchring) || return 1
    # shellcheck disable=SC2086 # $flags is a list of flags
    run cc -std=c11 -Wall -Wextra -Werror -o "$work/consumer-pc" \
        "$src/tests/package/consumer/main.c" $flags -Wl,-rpath,"$rpath" || return 1
    run "$work/consumer-pc" || return 1
    # The installed command starts from any directory, with no library path.
    out=$(cd / && env -u LD_LIBRARY_PATH "$moved/bin/batchring" --help) || {
        echo "$out"; echo "installed batchring --help failed"; return 1; }
    case $out in *"usage: batchring"*) ;; *) echo "$out"; return 1 ;; esac
    readelf -d "$moved/bin/batchring" | grep -E 'R(UN)?PATH'
}

step_deb() {
    if [ "$(id -u)" != 0 ]; then
        echo "SKIPPED: dpkg -i needs root"; return 77
    fi
    for t in cpack dpkg dpkg-deb; do
        command -v $t >/dev/null || { echo "SKIPPED: $t not found"; return 77; }
    done
    if [ "$(dpkg-query -W -f='${Status}' batchring 2>/dev/null)" = "install ok installed" ]; then
        echo "SKIPPED: a batchring package is already installed here; not replacing it"
        return 77
    fi
    (cd "$build" && run cpack -G DEB) || return 1
    deb=$(ls "$build"/batchring_*.deb) || return 1
    run dpkg-deb --info "$deb" || return 1
    dpkg-deb -f "$deb" Depends | grep -q liburing2 || {
        echo "$deb does not depend on liburing2"; return 1; }
    deb_installed=1
    run dpkg -i "$deb" || return 1
    run cmake -S "$src/tests/package/consumer" -B "$work/consumer-deb" || return 1
    run cmake --build "$work/consumer-deb" || return 1
    ldd "$work/consumer-deb/consumer" | grep -E 'libbatchring[.]so[.0-9]* => /(usr/)?lib/' || {
        echo "consumer-deb does not use the packaged library"; return 1; }
    run "$work/consumer-deb/consumer" || return 1
    flags=$(env -u PKG_CONFIG_PATH pkg-config --cflags --libs batchring) || return 1
    # shellcheck disable=SC2086
    run cc -std=c11 -o "$work/consumer-deb-pc" "$src/tests/package/consumer/main.c" $flags &&
        run "$work/consumer-deb-pc" || return 1
    (cd / && run batchring --help >/dev/null) || return 1
    run dpkg -P batchring || return 1   # remove and purge: nothing left
    deb_installed=0
    [ ! -e /usr/bin/batchring ] || { echo "dpkg -P left /usr/bin/batchring"; return 1; }
}

step_python() {
    # The interpreter the extension was built for.
    py=$(sed -n 's/^_\{0,1\}Python3_EXECUTABLE:[A-Z]*=//p' "$build/CMakeCache.txt" | head -n 1)
    [ -n "$py" ] || py=/usr/bin/python3
    site=$(cd "$moved" && ls -d lib/python3*/dist-packages lib/python3*/site-packages \
           2>/dev/null | head -n 1)
    if [ -z "$site" ] || [ ! -d "$moved/$site/batchring" ]; then
        grep -Eqi '^BR_BUILD_PYTHON:BOOL=(ON|TRUE|YES|Y|1)$' "$build/CMakeCache.txt" && {
            echo "the Python package was built but not installed"; return 1; }
        echo "SKIPPED: the Python package was not built (python3-dev missing)"; return 77
    fi
    ls "$moved/$site/batchring"/__init__.py "$moved/$site/batchring"/torch.py \
       "$moved/$site/batchring"/_batchring*.so || return 1
    head -c 65536 /dev/urandom >"$work/records.bin" || return 1
    # From another directory, with nothing but PYTHONPATH: the extension
    # and libbatchring must both come from the moved prefix.
    (cd / && run env -u LD_LIBRARY_PATH PYTHONPATH="$moved/$site" "$py" -c '
import sys, batchring
mod = batchring._batchring.__file__
assert mod.startswith(sys.argv[1]), mod
lib = [l.split()[-1] for l in open("/proc/self/maps") if "libbatchring.so" in l]
assert lib and all(p.startswith(sys.argv[1]) for p in lib), lib
data = open(sys.argv[2], "rb").read()
with batchring.open_records(sys.argv[2], 4096, batch_size=4, workers=1) as g:
    got = b"".join(bytes(b.data) for b in g)
assert got == data, "the batches are not the file"
print("installed batchring", batchring.__version__, "from", mod)
' "$moved" "$work/records.bin") || return 1
}

step_libonly() {
    # No C++ compiler: CXX points at `false`, which fails any compiler test,
    # so the build succeeds only if nothing enables C++.
    run env CXX=false cmake -S "$src" -B "$work/libonly" -DCMAKE_BUILD_TYPE=Release \
        -DCMAKE_CXX_COMPILER=false -DBR_WERROR=ON -DBR_BUILD_CLI=OFF \
        -DBUILD_TESTING=OFF -DBR_BUILD_PERF=OFF -DBR_BUILD_EXAMPLES=OFF || return 1
    run cmake --build "$work/libonly" -j "$jobs" || return 1
    ls "$work/libonly"/libbatchring.so.* "$work/libonly/libbatchring.a" || return 1
    if [ -e "$work/libonly/cli/batchring" ]; then echo "the CLI was built"; return 1; fi
}

start=$(date +%s)
echo "package-check: scratch $work"
step install
if [ $failed = 0 ]; then
    step abi
    step cmake
    step pkgconfig
    step deb
    step python
else
    echo "(install failed: abi, cmake, pkgconfig, deb, python not run)"
    failed=$((failed + 5))
fi
step libonly
echo "package-check: $(( $(date +%s) - start ))s"
if [ $skipped -gt 0 ]; then
    echo "package-check: $passed passed, $failed failed, $skipped skipped"
else
    echo "package-check: $passed passed, $failed failed"
fi
[ $failed = 0 ]
