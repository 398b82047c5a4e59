/* SPDX-License-Identifier: MIT */
/*
 * The packed format (datasets/packed.c; docs/datasets.md byte by byte):
 * the reader's state, which datasets.c keeps in a dataset opened with
 * br_dataset_open_packed. Its samples are read by the loader of
 * datasets/sample_shards.c, over the shards described in `data`.
 */
#ifndef BR_DATASETS_PACKED_H
#define BR_DATASETS_PACKED_H

#include <stdbool.h>

#include <batchring.h>

struct br__packed {
    struct br__sample_shards *data; /* the shards: paths, sizes, first ids, where
                                       the data starts, the index */
    uint64_t n, max_bytes, total_bytes, record_bytes;
    int32_t *labels;      /* n, or NULL; datasets.c takes it over */
    uint64_t *meta_at;    /* n + 1 offsets into meta, or NULL */
    uint8_t *meta;
};

/* Opens and checks the packed dataset at path; tokens: whether it must be
 * a tokens layout (else it must not be). */
int br__packed_open(struct br__packed **out, const char *path, bool tokens, char *msg);
void br__packed_free(struct br__packed *p);

#endif
