/* SPDX-License-Identifier: MIT */
/*
 * The records layout over many shards (br_dataset_open_record_shards):
 * each shard a whole number of records, ids running through the shards in
 * order (datasets/shards.h), read straight into the slot like the one-file
 * records layout: runs of consecutive ids inside one shard are one read.
 * Workers open shards lazily and keep a bounded set open (the LRU of
 * shards.c), so thousands of shards need no more descriptors.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "datasets/record_shards.h"
#include "ring/error.h"


int br__record_shards_open(struct br__record_shards **out, const char *pattern,
                           size_t record_bytes, char *msg)
{
    struct br__record_shards *r;
    int rc;

    *out = NULL;
    if (record_bytes == 0)
        return br__fail(msg, -EINVAL, "record_bytes is 0: pass the size of one record");
    r = calloc(1, sizeof *r);
    if (!r)
        return br__fail(msg, -ENOMEM, "out of memory opening %s", pattern);
    r->record_bytes = record_bytes;
    rc = br__shards_expand(&r->shards, pattern, msg);
    if (rc == 0)
        rc = br__shards_alloc(&r->shards, msg);
    for (uint32_t k = 0; rc == 0 && k < r->shards.n; k++) {
        const char *path = r->shards.paths[k];
        struct stat st;
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
        if (fd < 0) {
            rc = br__fail(msg, -errno, "cannot open the records shard %s: %s", path,
                          br_strerror(-errno));
            break;
        }
        if (fstat(fd, &st) < 0)
            rc = br__fail(msg, -errno, "fstat of the records shard %s: %s", path,
                          br_strerror(-errno));
        else if (!S_ISREG(st.st_mode))
            rc = br__fail(msg, -EINVAL, "the records shard %s is not a regular file", path);
        else if ((uint64_t)st.st_size % record_bytes)
            rc = br__fail(msg, -EINVAL,
                          "the records shard %s is %lld bytes, not a multiple of record_bytes "
                          "%zu (%llu whole records and %llu bytes left over)",
                          path, (long long)st.st_size, record_bytes,
                          (unsigned long long)((uint64_t)st.st_size / record_bytes),
                          (unsigned long long)((uint64_t)st.st_size % record_bytes));
        close(fd);
        if (rc)
            break;
        r->shards.size[k] = (uint64_t)st.st_size;
        r->shards.first[k + 1] = r->shards.first[k] + (uint64_t)st.st_size / record_bytes;
    }
    if (rc == 0 && r->shards.first[r->shards.n] == 0)
        rc = br__fail(msg, -EINVAL, "the records shards of %s (%u files) are empty: a dataset "
                      "needs a sample", pattern, r->shards.n);
    if (rc) {
        br__record_shards_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

void br__record_shards_free(struct br__record_shards *r)
{
    if (!r)
        return;
    if (r->fds_ready)
        br__shard_fds_close(&r->fds);
    br__shards_free(&r->shards);
    free(r);
}

static int job_fail(br_job *job, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int job_fail(br_job *job, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(job->err, job->err_cap, fmt, ap);
    va_end(ap);
    return code;
}

static int wait_wave(br_job *job, struct br__record_shards *r)
{
    int rc = br_io_wait(job->io);
    if (rc)
        rc = br__shards_read_failed(&r->fds, &r->shards, job->io, rc, job->err, job->err_cap);
    br__shard_fds_wave_end(&r->fds);
    return rc;
}

/* The descriptor state is per process, as tokens.c explains. */
int br__record_shards_load(br_job *job, const struct br__record_shards *cr)
{
    struct br__record_shards *r = (struct br__record_shards *)cr;
    const size_t rb = r->record_bytes;
    const uint64_t n = r->shards.first[r->shards.n];
    uint8_t *out = job->out;
    uint32_t i, j;
    int rc;

    if (!r->fds_ready) {
        br__shard_fds_init(&r->fds);
        r->fds_ready = true;
    }
    if (!job->io)
        return job_fail(job, -EINVAL, "this worker has no file reader (job->io is NULL)");
    if (!job->offsets)
        return job_fail(job, -EINVAL, "this slot has no offsets (job->offsets is NULL)");
    if ((uint64_t)job->count * rb > job->cap)
        return job_fail(job, -ENOBUFS,
                        "a batch of %u records of %zu bytes does not fit the slot of %zu bytes; "
                        "raise slot_bytes",
                        job->count, rb, job->cap);
    for (i = 0; i < job->count; i++)
        if (job->ids[i] >= n)
            return job_fail(job, -ERANGE, "sample %llu is not in the records shards (%llu records)",
                            (unsigned long long)job->ids[i], (unsigned long long)n);
    for (i = 0; i <= job->count; i++)
        job->offsets[i] = (uint64_t)i * rb;
    job->has_offsets = true;
    for (i = 0; i < job->count; i = j) {
        uint64_t id = job->ids[i];
        uint32_t k = br__shards_find(&r->shards, id);
        uint64_t end = r->shards.first[k + 1], off, len;
        int fd;
        for (j = i + 1; j < job->count && job->ids[j] == job->ids[j - 1] + 1 && job->ids[j] < end;
             j++)
            ;
        while ((fd = br__shard_fds_get(&r->fds, &r->shards, k, job->err, job->err_cap)) ==
               -EAGAIN)
            if ((rc = wait_wave(job, r)))
                return rc;
        if (fd < 0) {
            br_io_wait(job->io);
            return fd;
        }
        off = (id - r->shards.first[k]) * rb;
        len = (uint64_t)(j - i) * rb;
        rc = br__dataset_queue_read(job->io, fd, off, len, out + (size_t)i * rb, id);
        if (rc) {
            char why[BR_ERR_CAP];
            snprintf(why, sizeof why, "%s", br_io_last_error(job->io));
            br_io_wait(job->io);
            return job_fail(job, rc, "queueing a read of shard %u, %s: %s", k,
                            r->shards.paths[k], why);
        }
    }
    rc = wait_wave(job, r);
    if (rc)
        return rc;
    job->size = (size_t)job->count * rb;
    return 0;
}
