/* SPDX-License-Identifier: MIT */
/*
 * Samples in shards: records of one size (br_dataset_open_record_shards),
 * samples placed by an index beside each data shard
 * (br_dataset_open_indexed_shards), and the shards of a packed dataset
 * (packed.c fills the same structure from its headers). Ids run through
 * the shards in order (datasets/shards.h); samples are read straight into
 * the slot like the one-file layouts: samples stored one after another in
 * one shard, and in the batch, are one read. Workers open shards lazily
 * and keep a bounded set open (the LRU of shards.c), so thousands of
 * shards need no more descriptors.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "datasets/sample_shards.h"
#include "ring/error.h"

struct br__sample_shards *br__sample_shards_new(const char *kind)
{
    struct br__sample_shards *r = calloc(1, sizeof *r);
    if (r)
        r->kind = kind;
    return r;
}

/* The size and identity of data shard k, which must be a regular file. */
static int shard_size(struct br__sample_shards *r, uint32_t k, char *msg)
{
    const char *path = r->shards.paths[k];
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK), rc = 0;
    if (fd < 0)
        return br__fail(msg, -errno, "cannot open the %s shard %s: %s", r->kind, path,
                        br_strerror(-errno));
    if (fstat(fd, &st) < 0)
        rc = br__fail(msg, -errno, "fstat of the %s shard %s: %s", r->kind, path,
                      br_strerror(-errno));
    else if (!S_ISREG(st.st_mode))
        rc = br__fail(msg, -EINVAL, "the %s shard %s is not a regular file", r->kind, path);
    else {
        r->shards.size[k] = (uint64_t)st.st_size;
        br__file_id_set(&r->shards.id[k], &st);
    }
    close(fd);
    return rc;
}

/* Expands the pattern and sizes every shard. */
static int open_shards(struct br__sample_shards **out, const char *kind, const char *pattern,
                       char *msg)
{
    struct br__sample_shards *r;
    int rc;

    *out = NULL;
    r = br__sample_shards_new(kind);
    if (!r)
        return br__fail(msg, -ENOMEM, "out of memory opening %s", pattern);
    rc = br__shards_expand(&r->shards, pattern, msg);
    if (rc == 0)
        rc = br__shards_alloc(&r->shards, msg);
    for (uint32_t k = 0; rc == 0 && k < r->shards.n; k++)
        rc = shard_size(r, k, msg);
    if (rc) {
        br__sample_shards_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

/* A dataset needs a sample. */
static int opened(struct br__sample_shards **out, struct br__sample_shards *r,
                  const char *pattern, char *msg)
{
    if (br__sample_shards_count(r) == 0) {
        br__fail(msg, -EINVAL, "the %s shards of %s (%u files) hold no sample: a dataset "
                 "needs one", r->kind, pattern, r->shards.n);
        br__sample_shards_free(r);
        *out = NULL;
        return -EINVAL;
    }
    *out = r;
    return 0;
}

int br__sample_shards_open_records(struct br__sample_shards **out, const char *pattern,
                                   size_t record_bytes, char *msg)
{
    struct br__sample_shards *r;
    int rc;

    *out = NULL;
    if (record_bytes == 0)
        return br__fail(msg, -EINVAL, "record_bytes is 0: pass the size of one record");
    rc = open_shards(&r, "records", pattern, msg);
    if (rc)
        return rc;
    r->record_bytes = record_bytes;
    for (uint32_t k = 0; k < r->shards.n; k++) {
        uint64_t size = r->shards.size[k];
        if (size % record_bytes) {
            rc = br__fail(msg, -EINVAL,
                          "the records shard %s is %llu bytes, not a multiple of record_bytes "
                          "%zu (%llu whole records and %llu bytes left over)",
                          r->shards.paths[k], (unsigned long long)size, record_bytes,
                          (unsigned long long)(size / record_bytes),
                          (unsigned long long)(size % record_bytes));
            br__sample_shards_free(r);
            return rc;
        }
        r->shards.first[k + 1] = r->shards.first[k] + size / record_bytes;
    }
    return opened(out, r, pattern, msg);
}

/* Reads shard k's index (its path + suffix) onto the end of r->index. */
static int read_index(struct br__sample_shards *r, uint32_t k, const char *suffix,
                      uint64_t *total, uint64_t *max, char *msg)
{
    const char *data = r->shards.paths[k];
    size_t len = strlen(data) + strlen(suffix) + 1;
    char *path = malloc(len);
    uint64_t size, n, at = r->shards.first[k];
    struct br__index_entry *grown;
    void *raw = NULL;
    int rc;

    if (!path)
        return br__fail(msg, -ENOMEM, "out of memory opening %s", data);
    snprintf(path, len, "%s%s", data, suffix);
    rc = br__dataset_slurp(path, "index file", 0, &raw, &size, msg);
    if (rc == 0 && size % 16)
        rc = br__fail(msg, -EINVAL,
                      "the index file %s (of the shard %s) is %llu bytes, not a multiple of 16 "
                      "(pairs of uint64 offset and length)",
                      path, data, (unsigned long long)size);
    n = size / 16;
    if (rc == 0 && n) {
        grown = realloc(r->index, (size_t)(at + n) * sizeof *grown);
        if (!grown)
            rc = br__fail(msg, -ENOMEM, "out of memory for the index %s", path);
        else {
            r->index = grown;
            memcpy(r->index + at, raw, (size_t)size);
            rc = br__index_decode(r->index + at, n, r->shards.size[k], path, data, total, max,
                                  msg);
        }
    }
    if (rc == 0)
        r->shards.first[k + 1] = at + n;
    free(raw);
    free(path);
    return rc;
}

int br__sample_shards_open_indexed(struct br__sample_shards **out, const char *pattern,
                                   const char *index_suffix, uint64_t *total, uint64_t *max,
                                   char *msg)
{
    struct br__sample_shards *r;
    int rc;

    *out = NULL;
    *total = *max = 0;
    if (!index_suffix || !index_suffix[0])
        return br__fail(msg, -EINVAL,
                        "index_suffix is %s: pass what follows a data shard's name in its "
                        "index's (\".idx\")",
                        index_suffix ? "empty" : "NULL");
    rc = open_shards(&r, "indexed", pattern, msg);
    for (uint32_t k = 0; rc == 0 && k < r->shards.n; k++) {
        rc = read_index(r, k, index_suffix, total, max, msg);
        if (rc)
            br__sample_shards_free(r);
    }
    return rc ? rc : opened(out, r, pattern, msg);
}

void br__sample_shards_free(struct br__sample_shards *r)
{
    if (!r)
        return;
    if (r->fds_ready)
        br__shard_fds_close(&r->fds);
    br__shards_free(&r->shards);
    free(r->index);
    free(r->shard_of);
    free(r);
}

uint64_t br__sample_shards_count(const struct br__sample_shards *r)
{
    return r->shards.first[r->shards.n];
}

/* Where sample id starts in the data of its shard k, and its length. */
static uint64_t sample_at(const struct br__sample_shards *r, uint64_t id, uint32_t k,
                          uint64_t *len)
{
    if (r->index) {
        *len = r->index[id].length;
        return r->index[id].offset;
    }
    *len = r->record_bytes;
    return (id - r->shards.first[k]) * r->record_bytes;
}

/* The descriptor state is per process, as tokens.c explains. */
int br__sample_shards_load(br_job *job, const struct br__sample_shards *cr)
{
    struct br__sample_shards *r = (struct br__sample_shards *)cr;
    const uint64_t n = br__sample_shards_count(r);
    uint8_t *out = job->out;
    uint64_t pos = 0;
    uint32_t i, j;
    int rc;

    if (!r->fds_ready) {
        br__shard_fds_init(&r->fds);
        r->fds_ready = true;
    }
    if (!job->io)
        return br__job_fail(job, -EINVAL, "this worker has no file reader (job->io is NULL)");
    if (!job->offsets)
        return br__job_fail(job, -EINVAL, "this slot has no offsets (job->offsets is NULL)");
    if (job->count > r->shard_of_cap) {
        uint32_t *grown = realloc(r->shard_of, job->count * sizeof *grown);
        if (!grown)
            return br__job_fail(job, -ENOMEM, "out of memory for a batch of %u samples",
                                job->count);
        r->shard_of = grown;
        r->shard_of_cap = job->count;
    }
    for (i = 0; i < job->count; i++) {
        uint64_t id = job->ids[i], len;
        if (id >= n)
            return br__job_fail(job, -ERANGE, "sample %llu is not in the %s shards (%llu samples)",
                            (unsigned long long)id, r->kind, (unsigned long long)n);
        r->shard_of[i] = br__shards_find(&r->shards, id);
        r->searches++;
        sample_at(r, id, r->shard_of[i], &len);
        if (len > job->cap - pos)
            return br__job_fail(job, -ENOBUFS,
                            "sample %llu (%llu bytes) does not fit the slot: with the %u "
                            "samples before it in the batch it ends at byte %llu, but the slot "
                            "holds %zu bytes; raise slot_bytes",
                            (unsigned long long)id, (unsigned long long)len, i,
                            (unsigned long long)(pos + len), job->cap);
        job->offsets[i] = pos;
        pos += len;
    }
    job->offsets[job->count] = pos;
    job->has_offsets = true;
    /* One read per run of samples stored one after another in one shard. */
    for (i = 0; i < job->count; i = j) {
        uint64_t id = job->ids[i], len, off;
        uint32_t k = r->shard_of[i];
        int fd;
        off = sample_at(r, id, k, &len);
        for (j = i + 1; j < job->count; j++) {
            uint64_t next = job->ids[j], next_len;
            if (r->shard_of[j] != k || sample_at(r, next, k, &next_len) != off + len)
                break;
            len += next_len;
        }
        if (len == 0)
            continue;
        while ((fd = br__shard_fds_get(&r->fds, &r->shards, k, job->err, job->err_cap)) ==
               -EAGAIN)
            if ((rc = br__shards_wait(job, &r->fds, &r->shards)))
                return rc;
        if (fd < 0) {
            br_io_wait(job->io);
            return fd;
        }
        rc = br__dataset_queue_read(job->io, fd, r->shards.skip[k] + off, len,
                                    out + job->offsets[i], id);
        if (rc) {
            char why[BR_ERR_CAP];
            snprintf(why, sizeof why, "%s", br_io_last_error(job->io));
            br_io_wait(job->io);
            return br__job_fail(job, rc, "queueing a read of shard %u, %s: %s", k,
                            r->shards.paths[k], why);
        }
    }
    rc = br__shards_wait(job, &r->fds, &r->shards);
    if (rc)
        return rc;
    job->size = (size_t)pos;
    return 0;
}
