/* SPDX-License-Identifier: MIT */
/*
 * The records layout over many shards (datasets/record_shards.c), as
 * datasets.c reaches it. Internal to datasets/.
 */
#ifndef BR_DATASETS_RECORD_SHARDS_H
#define BR_DATASETS_RECORD_SHARDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <batchring.h>

#include "datasets/shards.h"

struct br__record_shards {
    struct br__shards shards; /* first[] counts records */
    size_t record_bytes;
    bool fds_ready;           /* per process: see tokens.c */
    struct br__shard_fds fds;
};

/* Opens and checks every shard of `pattern` (shards.h): each a whole
 * number of records. Returns 0 or a negative code with the message. */
int br__record_shards_open(struct br__record_shards **out, const char *pattern,
                           size_t record_bytes, char *msg);
void br__record_shards_free(struct br__record_shards *r);

/* The loader. */
int br__record_shards_load(br_job *job, const struct br__record_shards *r);

#endif
