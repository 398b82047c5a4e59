#!/bin/sh
# SPDX-License-Identifier: MIT
#
# batchring serve over each sharded layout (cli/serve.c), end to end:
#
#   serve_shards.sh BATCHRING
#
# mkdata --shards writes records in 7 shards and indexed data in 5 shards
# (each data shard with its index beside it, NAME.idx); serve takes them
# by a glob (--records 'DIR/records_*.bin', --indexed 'DIR/data_*.bin'
# .idx), a list (--records @LIST) and the files layout by a glob (--files
# 'DIR/files/*.bin'), shuffled, and consume --verify checks every sample
# and label against mkdata's data. pack takes the same sharded DATA, and a
# pack of 150 shards is served under ulimit -n 96. --direct on shards, a pattern that
# matches nothing and a missing index are refused, naming what is wrong.
# Prints what failed and exits 1.
set -u
cli=$1
work=$(mktemp -d "${TMPDIR:-/tmp}/br-serve-shards.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
fail=0
bad() {
    echo "serve_shards.sh: $*"
    fail=1
}
name="/br-serve-shards-$$"

# serve_verify TAG BATCHES CONSUME_ARGS -- SERVE_ARGS...: serves one
# shuffled epoch and checks that consume --verify saw BATCHES batches;
# serve's line on what it serves goes to serve-TAG.out.
serve_verify() {
    tag=$1 batches=$2 cargs=$3
    shift 4
    "$cli" serve --name "$name" --batch 16 --workers 2 --epochs 1 --shuffle --exit-on-detach "$@" \
        2>"$work/serve-$tag.err" | {
        read -r ring || exit 3
        read -r what && echo "$what" >"$work/serve-$tag.out"
        # shellcheck disable=SC2086
        "$cli" consume --name "$ring" --verify $cargs >"$work/consume-$tag.out" 2>&1 || exit 4
    }
    rc=$?
    [ $rc = 0 ] && grep -q "$batches batches .*every sample verified" "$work/consume-$tag.out" ||
        bad "$tag: serve | consume --verify failed ($rc): $(cat "$work/consume-$tag.out" "$work/serve-$tag.err" 2>/dev/null)"
}

"$cli" mkdata --layout records --dir "$work/rec" --samples 300 --sample-bytes 96 --shards 7 \
    >"$work/mk-rec.out" 2>&1 || bad "mkdata records --shards failed: $(cat "$work/mk-rec.out")"
[ "$(ls "$work/rec"/records_*.bin | wc -l)" = 7 ] || bad "mkdata did not write 7 records shards"
serve_verify records 19 "--sample-bytes 96" -- \
    --records "$work/rec/records_*.bin" --record-size 96 --labels "$work/rec/labels.bin"
grep -q "the records dataset .*7 shards" "$work/serve-records.out" ||
    bad "serve did not report 7 records shards: $(cat "$work/serve-records.out")"

# The same shards through a list, relative to the list's directory.
(cd "$work/rec" && ls records_*.bin) >"$work/rec/shards.txt"
serve_verify records-list 19 "--sample-bytes 96" -- \
    --records "@$work/rec/shards.txt" --record-size 96 --labels "$work/rec/labels.bin"

"$cli" mkdata --layout indexed --dir "$work/ix" --samples 300 --min-bytes 1 --max-bytes 200 \
    --shards 5 >"$work/mk-ix.out" 2>&1 || bad "mkdata indexed --shards failed: $(cat "$work/mk-ix.out")"
[ -f "$work/ix/data_000004.bin.idx" ] || bad "mkdata did not write data_000004.bin.idx"
serve_verify indexed 19 "--min-bytes 1 --max-bytes 200" -- \
    --indexed "$work/ix/data_*.bin" .idx --labels "$work/ix/labels.bin"
grep -q "the indexed dataset .*5 shards" "$work/serve-indexed.out" ||
    bad "serve did not report 5 indexed shards: $(cat "$work/serve-indexed.out")"

# pack takes the same sharded DATA; the pack serves the same samples.
"$cli" pack "$work/ixp" --indexed "$work/ix/data_*.bin" .idx --labels "$work/ix/labels.bin" \
    >"$work/ixp.out" 2>&1 || bad "pack --indexed PATTERN .idx failed: $(cat "$work/ixp.out")"
serve_verify packed-indexed 19 "--min-bytes 1 --max-bytes 200" -- --packed "$work/ixp"

# Many packed shards under a low descriptor limit: 150 shards of 2 records
# each (header 256, 2 x 96 bytes of records, 2 x 4 of labels, one
# table entry of 8: 464 bytes), ulimit -n 96.
"$cli" pack "$work/many" --records "$work/rec/records_*.bin" --record-size 96 \
    --labels "$work/rec/labels.bin" --shard-size 464 >"$work/many.out" 2>&1 ||
    bad "pack --shard-size 464 failed: $(cat "$work/many.out")"
grep -q "300 samples in 150 shards" "$work/many.out" || bad "pack: $(cat "$work/many.out")"
(
    fail=0
    ulimit -n 96 || exit 5
    serve_verify packed-many 19 "--sample-bytes 96" -- --packed "$work/many"
    exit $fail
) || bad "serve --packed over 150 shards with ulimit -n 96 failed"

"$cli" mkdata --layout files --dir "$work/fl" --samples 40 --min-bytes 1 --max-bytes 300 \
    >/dev/null 2>&1 || bad "mkdata files failed"
serve_verify files 3 "--min-bytes 1 --max-bytes 300" -- \
    --files "$work/fl/files/*.bin" --labels "$work/fl/labels.bin"

# Refusals, each naming the problem; serve exits 1.
if "$cli" serve --name "$name" --batch 4 --workers 1 --epochs 1 --direct \
    --records "$work/rec/records_*.bin" --record-size 96 >/dev/null 2>"$work/direct.err"; then
    bad "serve --direct accepted records shards"
fi
grep -q "BR_DATASET_DIRECT" "$work/direct.err" || bad "--direct on shards: $(cat "$work/direct.err")"
if "$cli" serve --name "$name" --batch 4 --workers 1 --epochs 1 \
    --records "$work/rec/nothing_*.bin" --record-size 96 >/dev/null 2>"$work/none.err"; then
    bad "serve accepted a pattern that matches nothing"
fi
grep -q "nothing_\*.bin" "$work/none.err" || bad "no match: $(cat "$work/none.err")"
rm "$work/ix/data_000003.bin.idx"
if "$cli" serve --name "$name" --batch 4 --workers 1 --epochs 1 \
    --indexed "$work/ix/data_*.bin" .idx >/dev/null 2>"$work/noidx.err"; then
    bad "serve accepted a shard without its index"
fi
grep -q "data_000003.bin.idx" "$work/noidx.err" || bad "missing index: $(cat "$work/noidx.err")"
exit $fail
