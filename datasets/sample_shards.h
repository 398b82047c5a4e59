/* SPDX-License-Identifier: MIT */
/*
 * Samples in shards (datasets/sample_shards.c), as datasets.c and packed.c
 * reach them: records of one size, or samples an index places, in many
 * files, read straight into the slot. Internal to datasets/.
 */
#ifndef BR_DATASETS_SAMPLE_SHARDS_H
#define BR_DATASETS_SAMPLE_SHARDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <batchring.h>

#include "datasets/shards.h"

struct br__sample_shards {
    struct br__shards shards;      /* first[] counts samples; skip[k]: bytes
                                      before shard k's data (a header) */
    size_t record_bytes;           /* records: every sample's size; 0 with
                                      an index */
    struct br__index_entry *index; /* indexed: per global id, its place in
                                      its shard's data; NULL for records */
    const char *kind;              /* "records", "indexed", "packed": for
                                      messages */
    bool fds_ready;                /* per process: see tokens.c */
    struct br__shard_fds fds;
    uint32_t *shard_of;            /* per process, per sample of the batch:
                                      its shard, searched once */
    uint32_t shard_of_cap;
    uint64_t searches;             /* per process: shard searches so far
                                      (tests read it) */
};

/* A zeroed set, kind as given: the caller fills shards (br__shards_expand,
 * br__shards_alloc) and the sizes. Returns NULL when out of memory. */
struct br__sample_shards *br__sample_shards_new(const char *kind);

/* Opens and checks every shard of `pattern` (shards.h): each a whole
 * number of records. Returns 0 or a negative code with the message. */
int br__sample_shards_open_records(struct br__sample_shards **out, const char *pattern,
                                   size_t record_bytes, char *msg);

/* Opens every data shard of `pattern` and its index, the file named as the
 * shard with index_suffix appended (n pairs uint64 offset, length into
 * that shard); *total and *max get the samples' total and largest size.
 * Returns 0 or a negative code with the message naming the file. */
int br__sample_shards_open_indexed(struct br__sample_shards **out, const char *pattern,
                                   const char *index_suffix, uint64_t *total, uint64_t *max,
                                   char *msg);

void br__sample_shards_free(struct br__sample_shards *r);

/* Samples in all shards. */
uint64_t br__sample_shards_count(const struct br__sample_shards *r);

/* The loader. */
int br__sample_shards_load(br_job *job, const struct br__sample_shards *r);

/* The sample shards ds reads (records or indexed in shards, a packed
 * dataset), or NULL for another layout: datasets.c, for tests, which read
 * the counters of the trainer's copy (workers = 0). */
const struct br__sample_shards *br__dataset_sample_shards(const br_dataset *ds);

#endif
