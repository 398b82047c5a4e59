#!/bin/sh
# SPDX-License-Identifier: MIT
#
# batchring pack / verify / serve --packed end to end (cli/pack.c):
#
#   pack_cli.sh BATCHRING TRANSFORM_PLUGIN
#
# mkdata writes an indexed dataset with labels; pack converts it into 5+
# shards; verify says ok; serve --packed (no size flag) serves it and
# consume --verify checks every sample and label against mkdata's data. A
# directory of files packs and verifies too. One flipped bit makes verify
# exit 1 naming the shard and block; a damaged header makes serve refuse to
# start naming the shard. serve --packed --plugin TRANSFORM_PLUGIN runs the
# plugin's transform in the workers: "copy" passes consume --verify (every
# byte went through it), "invert" fails it. Token shards packed with
# --tokens verify, and serve --packed --seq-len T serves as many batches and
# bytes as serve --tokens on the files. Prints what failed and exits 1.
set -u
cli=$1
plugin=$2
work=$(mktemp -d "${TMPDIR:-/tmp}/br-pack-cli.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
fail=0
bad() {
    echo "pack_cli.sh: $*"
    fail=1
}
# flip FILE OFFSET: flips the lowest bit of one byte.
flip() {
    b=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
    printf "\\$(printf %o $((b ^ 1)))" | dd of="$1" bs=1 seek="$2" conv=notrunc 2>/dev/null
}

"$cli" mkdata --layout indexed --dir "$work/mk" --samples 300 --min-bytes 1 --max-bytes 200 \
    >/dev/null || bad "mkdata failed"
"$cli" pack "$work/pk" --indexed "$work/mk/data.bin" "$work/mk/index.bin" \
    --labels "$work/mk/labels.bin" --shard-size 8K --block-size 1K --dtype uint8 \
    >"$work/pack.out" 2>&1 || bad "pack failed: $(cat "$work/pack.out")"
grep -Eq "300 samples in ([5-9]|[1-9][0-9]+) shards" "$work/pack.out" ||
    bad "pack did not report 300 samples in 5+ shards: $(cat "$work/pack.out")"
"$cli" verify "$work/pk" >"$work/v.out" 2>&1 || bad "verify of a fresh pack failed: $(cat "$work/v.out")"
grep -q ": ok" "$work/v.out" || bad "verify printed no ok"

# Served with no size flag; every sample checked by the consumer.
name="/br-pack-cli-$$"
"$cli" serve --name "$name" --packed "$work/pk" --batch 16 --workers 2 --epochs 1 --exit-on-detach \
    2>"$work/serve.err" | {
    read -r ring || exit 3
    "$cli" consume --name "$ring" --verify >"$work/consume.out" 2>&1 || exit 4
}
rc=$?
grep -q "19 batches .*every sample verified" "$work/consume.out" ||
    bad "consume did not verify 19 batches: $(cat "$work/consume.out")"
[ $rc = 0 ] || bad "serve --packed | consume --verify failed ($rc): $(cat "$work/consume.out" "$work/serve.err" 2>/dev/null)"

# A transform from a plugin on the built-in reading (plugin revision 3).
for mode in copy invert; do
    "$cli" serve --name "$name" --packed "$work/pk" --plugin "$plugin" --plugin-arg $mode --exit-on-detach \
        --batch 16 --workers 2 --epochs 1 2>"$work/serve-$mode.err" | {
        read -r ring || exit 3
        "$cli" consume --name "$ring" --verify >"$work/consume-$mode.out" 2>&1 || exit 4
    }
    rc=$?
    if [ $mode = copy ]; then
        [ $rc = 0 ] && grep -q "19 batches .*every sample verified" "$work/consume-$mode.out" ||
            bad "serve --plugin (copy transform) | consume --verify failed ($rc): $(cat "$work/consume-$mode.out" "$work/serve-$mode.err")"
    else
        [ $rc = 4 ] || bad "consume --verify passed inverted bytes ($rc): $(cat "$work/consume-$mode.out")"
    fi
done

# A directory of files, one sample each.
mkdir "$work/dir"
i=0
while [ $i -lt 20 ]; do
    head -c $((i * 37 + 1)) "$work/mk/data.bin" >"$work/dir/f$i"
    i=$((i + 1))
done
"$cli" pack "$work/dpk" --dir "$work/dir" >"$work/d.out" 2>&1 || bad "pack --dir failed: $(cat "$work/d.out")"
grep -q "20 samples in 1 shard" "$work/d.out" || bad "pack --dir: $(cat "$work/d.out")"
"$cli" verify "$work/dpk" >/dev/null 2>&1 || bad "verify of pack --dir failed"

# One flipped bit in the body of shard 2: block 0 (bytes 256..1280).
shard="$work/pk/pk-00002.brp"
flip "$shard" 300
if "$cli" verify "$work/pk" >"$work/bad.out" 2>&1; then
    bad "verify passed a flipped bit"
fi
grep -q "shard 2 block 0 bytes 256..1280" "$work/bad.out" ||
    bad "verify did not name shard 2, block 0: $(cat "$work/bad.out")"
flip "$shard" 300
"$cli" verify "$work/pk" >/dev/null 2>&1 || bad "verify failed after the bit was restored"

# A damaged header: serve refuses to start, naming the shard.
flip "$shard" 40
if "$cli" serve --name "$name" --packed "$work/pk" --batch 16 --workers 1 --epochs 1 \
    >/dev/null 2>"$work/serve2.err"; then
    bad "serve started on a damaged header"
fi
grep -q "pk-00002.brp" "$work/serve2.err" || bad "serve did not name the shard: $(cat "$work/serve2.err")"

# Token shards: pack --tokens (llm.c shards: no width given), verify, and
# serve --packed --seq-len T with no --token-bytes gives as many batches
# and bytes as serve --tokens on the files (3 x 46 windows: 18 batches).
"$cli" mkdata --layout tokens --dir "$work/tk" --samples 3000 --shards 3 >/dev/null 2>&1 ||
    bad "mkdata --layout tokens failed"
"$cli" pack "$work/tkp" --tokens "$work/tk/tokens_*.bin" >"$work/tkp.out" 2>&1 ||
    bad "pack --tokens failed: $(cat "$work/tkp.out")"
grep -q "9000 tokens in 3 shards" "$work/tkp.out" || bad "pack --tokens: $(cat "$work/tkp.out")"
"$cli" verify "$work/tkp" >/dev/null 2>&1 || bad "verify of pack --tokens failed"
for src in tokens packed; do
    if [ $src = tokens ]; then set -- --tokens "$work/tk/tokens_*.bin"; else set -- --packed "$work/tkp"; fi
    "$cli" serve --name "$name" "$@" --seq-len 64 --batch 8 --workers 2 --epochs 1 --exit-on-detach \
        2>"$work/serve-$src.err" | {
        read -r ring || exit 3
        "$cli" consume --name "$ring" >"$work/consume-$src.out" 2>&1 || exit 4
    }
    rc=$?
    [ $rc = 0 ] || bad "serve --$src --seq-len 64 | consume failed ($rc): $(cat "$work/consume-$src.out" "$work/serve-$src.err" 2>/dev/null)"
    # "N batches (seq a..b), SIZE": what both must agree on.
    sed -n 's/.*: \([0-9]* batches ([^)]*), [^ ]* [^ ]*\) in .*/\1/p' "$work/consume-$src.out" >"$work/got-$src"
done
grep -q "18 batches" "$work/got-tokens" || bad "serve --tokens: $(cat "$work/consume-tokens.out")"
cmp -s "$work/got-tokens" "$work/got-packed" ||
    bad "serve --packed (tokens) and serve --tokens differ: $(cat "$work/got-tokens" "$work/got-packed")"
if "$cli" serve --name "$name" --packed "$work/tkp" --batch 8 --workers 1 --epochs 1 \
    >/dev/null 2>"$work/serve-noseq.err"; then
    bad "serve --packed started on a tokens pack without --seq-len"
fi
grep -q "seq-len" "$work/serve-noseq.err" || bad "no --seq-len: $(cat "$work/serve-noseq.err")"
flip "$work/tkp/tkp-00001.brp" 5000
if "$cli" verify "$work/tkp" >"$work/tkbad.out" 2>&1; then
    bad "verify passed a flipped bit in a tokens shard"
fi
grep -q "shard 1 block 0" "$work/tkbad.out" || bad "verify of tokens: $(cat "$work/tkbad.out")"
exit $fail
