#!/bin/sh
# SPDX-License-Identifier: MIT
#
# The layering check (docs/design.md, "Layers"): every #include "..." of a
# .c or .h file under the library's and the command's folders must point at
# its own folder or at a layer below it. Prints each offending line and
# exits 1; exits 0 when every include goes the allowed way.
#
#   ring/      -> ring/
#   producer/  -> ring/
#   consumer/  -> ring/
#   api/       -> ring/ producer/ consumer/
#   datasets/  -> ring/error.h only (otherwise the public <batchring.h>)
#   synth/     -> nothing internal (synthetic samples, mkdata: libc only)
#   cli/       -> synth/, perf/cases.h, perf/topology.h (otherwise the public headers only;
#                 tests/public_only.sh compiles the perf files `batchring
#                 bench` builds with nothing but include/ and synth/)
#
# Usage: layers.sh [SOURCE_DIR]   (default: the parent of this script's folder)
set -eu
root=${1:-$(dirname "$0")/..}
cd "$root"

allowed() { # layer -> the folders (or single files) it may include
    case $1 in
    ring) echo "ring/" ;;
    producer) echo "ring/ producer/" ;;
    consumer) echo "ring/ consumer/" ;;
    api) echo "ring/ producer/ consumer/ api/" ;;
    datasets) echo "ring/error.h datasets/" ;;
    synth) echo "synth/" ;;
    cli) echo "cli/ synth/ perf/cases.h perf/topology.h" ;;
    esac
}

bad=0
checked=0
layers="ring producer consumer api datasets synth cli"
for layer in $layers; do
    # synth/ is optional (a helper library); the library's layers are not.
    if [ ! -d "$layer" ]; then
        [ "$layer" = synth ] && continue
        echo "layers.sh: no folder $layer/ under $(pwd)" >&2
        exit 1
    fi
    ok=$(allowed "$layer")
    for f in $(find "$layer" -name '*.[ch]' | sort); do
        # file:line:include-path, for every #include "..." (not <...>).
        grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$f" |
            sed 's/^\([0-9]*\):.*"\(.*\)".*/\1 \2/' >"${TMPDIR:-/tmp}/layers.$$" || true
        while read -r line inc; do
            checked=$((checked + 1))
            # Where the compiler finds it: beside the including file ("cli.h",
            # "../perf/x.h"), else from the root ("ring/ring.h"), else in a
            # layer folder that the build puts on the include path
            # ("synth.h"); an include found nowhere is reported as such.
            dir=$(dirname "$f")
            target=
            for cand in "$dir/$inc" "$inc" $(for l in $layers; do echo "$l/$inc"; done); do
                if [ -e "$cand" ]; then
                    target=$(realpath -m --relative-to=. "$cand")
                    break
                fi
            done
            [ -n "$target" ] || target="(not found)"
            pass=0
            for a in $ok; do
                case $a in
                */) case $target in "$a"*) pass=1 ;; esac ;;
                *) [ "$target" = "$a" ] && pass=1 ;;
                esac
            done
            if [ $pass = 0 ]; then
                echo "$f:$line: #include \"$inc\" ($target): $layer/ may include only: $ok"
                bad=1
            fi
        done <"${TMPDIR:-/tmp}/layers.$$"
    done
done
rm -f "${TMPDIR:-/tmp}/layers.$$"
if [ $bad = 0 ]; then
    echo "layers: $checked includes, all in the allowed directions"
fi
# An empty check proves nothing: the library has internal includes.
[ $checked -gt 0 ] || { echo "layers.sh: found no includes to check" >&2; exit 1; }
exit $bad
