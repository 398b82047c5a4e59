/* SPDX-License-Identifier: MIT */
/*
 * The packed format (datasets/packed.c; docs/datasets.md byte by byte):
 * the reader's state, which datasets.c keeps in a dataset opened with
 * br_dataset_open_packed, and the loader it hands to br_open.
 */
#ifndef BR_DATASETS_PACKED_H
#define BR_DATASETS_PACKED_H

#include <batchring.h>

struct br__pack_shard {
    int fd;
    char *path;
    uint64_t first, count; /* global id of its sample 0, samples in it */
    uint64_t data_off, file_bytes;
    uint64_t *index;       /* indexed: count + 1 offsets into data; NULL for records */
};

struct br__packed {
    uint32_t nshards;
    struct br__pack_shard *s;
    uint64_t n, max_bytes, total_bytes, record_bytes;
    int32_t *labels;      /* n, or NULL; datasets.c takes it over */
    uint64_t *meta_at;    /* n + 1 offsets into meta, or NULL */
    uint8_t *meta;
};

int br__packed_open(struct br__packed **out, const char *path, char *msg);
void br__packed_free(struct br__packed *p);
int br__packed_load(br_job *job, const struct br__packed *p, const char *what);

#endif
