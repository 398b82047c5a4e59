/* SPDX-License-Identifier: MIT */
/*
 * The dataset writer (mkdata.c): what `batchring mkdata` writes, and what
 * `batchring soak`, the demo and the tests write their datasets with.
 * Part of batchring_synth, a static library beside the command and the
 * tests, never installed; it needs only libc.
 */
#ifndef BR_SYNTH_MKDATA_H
#define BR_SYNTH_MKDATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h" /* br_util_now_ns, br_util_bytes */

/* The files mkdata writes in its directory. */
#define BR_MKDATA_RECORDS "records.bin"
#define BR_MKDATA_DATA "data.bin"
#define BR_MKDATA_INDEX "index.bin"
#define BR_MKDATA_LIST "files.txt"
#define BR_MKDATA_FILES_DIR "files"
#define BR_MKDATA_LABELS "labels.bin"
#define BR_MKDATA_MANIFEST "dataset.txt"

/* Records and indexed data in shards (spec.shards > 0): shard k is
 * DIR/records_KKKKKK.bin, or DIR/data_KKKKKK.bin with its index beside it,
 * DIR/data_KKKKKK.bin.idx (offsets into that shard). */
#define BR_MKDATA_RECORDS_FMT "records_%06u.bin"
#define BR_MKDATA_RECORDS_GLOB "records_*.bin"
#define BR_MKDATA_DATA_FMT "data_%06u.bin"
#define BR_MKDATA_DATA_GLOB "data_*.bin"
#define BR_MKDATA_INDEX_SUFFIX ".idx"

/* What mkdata writes: sample i is br_synth_fill(seed, i) (synth.h),
 * of br_synth_size(seed, i, min_bytes, max_bytes) bytes. */
struct br_mkdata_spec {
    const char *layout; /* "records", "files", "indexed" or "tokens" */
    const char *dir;    /* created if missing */
    uint64_t samples;
    uint64_t min_bytes; /* records: min_bytes == max_bytes */
    uint64_t max_bytes;
    uint64_t seed;
    bool progress; /* draw a progress bar on stderr */
    uint32_t shards; /* tokens: shard files (samples = tokens per shard);
                        records, indexed: 0 for one file, else the samples
                        split evenly over this many shards */
};

/* The tokens layout: shard k is DIR/tokens_KKKKKK.bin in the llm.c format
 * (256 int32 header: magic 20240520, version 1, count; uint16 tokens),
 * token t of it br_mkdata_token(seed, k, t), below GPT-2's 50257. */
#define BR_MKDATA_TOKENS_FMT "tokens_%06u.bin"
#define BR_MKDATA_TOKENS_GLOB "tokens_*.bin"
uint16_t br_mkdata_token(uint64_t seed, uint32_t shard, uint64_t t);

/* Writes the dataset and its labels; *data_bytes (may be NULL) gets the
 * samples' total size. Returns 0, or -errno with a message in err. */
int br_mkdata_write(const struct br_mkdata_spec *spec, uint64_t *data_bytes, char *err,
                    size_t cap);


#endif /* BR_SYNTH_MKDATA_H */
