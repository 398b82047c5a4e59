/* SPDX-License-Identifier: MIT */
/*
 * A loader plugin for `batchring serve --plugin`: a custom loader served as
 * a named ring without writing a server. This one reads fixed-size records
 * from one file through each worker's br_io (io_uring or pread), straight
 * into the ring's slot; put your own decoding in load().
 *
 *   batchring mkdata --layout records --dir /tmp/synth --samples 16384
 *   batchring serve --name /batchring-demo --plugin ./plugin_example.so \
 *       --plugin-arg /tmp/synth/records.bin:4096 --batch 64 --workers 4 \
 *       --slot-bytes 256K
 *   batchring consume --name /batchring-demo --verify --batches 100
 *
 * The argument is PATH:RECORD_BYTES. serve calls br_plugin_init once, in
 * the server process, before the ring exists; the workers are forked
 * afterwards and inherit what it set up (here the open file). The plugin
 * does not know the batch size, so serve needs --slot-bytes (batch x
 * record bytes) unless br_plugin.slot_bytes is set.
 */
#define _POSIX_C_SOURCE 200809L /* O_CLOEXEC in strict C11 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <batchring.h>

struct records {
    int fd;
    size_t record_bytes;
};

static struct records rec = {.fd = -1};

/* Runs once in each worker process, before its first batch. */
static int worker_init(br_io *io, uint32_t worker, void *user, void **state, char *err,
                       size_t err_cap)
{
    const struct records *r = user;
    (void)worker, (void)err, (void)err_cap;
    *state = NULL;
    /* io_uring looks a registered file up once, not on every read. */
    return br_io_register_file(io, r->fd);
}

/* Fills one batch: job->count records, one after another in job->out. */
static int load(br_job *job, void *user)
{
    const struct records *r = user;
    uint8_t *out = job->out;
    int rc;

    if ((uint64_t)job->count * r->record_bytes > job->cap) {
        snprintf(job->err, job->err_cap,
                 "%u records of %zu bytes do not fit in a slot of %zu: raise --slot-bytes",
                 job->count, r->record_bytes, job->cap);
        return -ENOSPC;
    }
    /* Queued together, waited for once: the reader submits them as one
     * batch of reads. */
    for (uint32_t i = 0; i < job->count; i++) {
        rc = br_io_read(job->io, r->fd, job->ids[i] * r->record_bytes, r->record_bytes,
                        out + (size_t)i * r->record_bytes, job->ids[i]);
        if (rc)
            goto fail;
        job->offsets[i] = (uint64_t)i * r->record_bytes;
    }
    rc = br_io_wait(job->io);
    if (rc)
        goto fail;
    job->offsets[job->count] = (uint64_t)job->count * r->record_bytes;
    job->has_offsets = true;
    job->size = (size_t)job->count * r->record_bytes;
    return 0;
fail:
    snprintf(job->err, job->err_cap, "%s", br_io_last_error(job->io));
    return rc;
}

/* The entry point serve looks up: exported whatever the default visibility
 * of the build (batchring itself builds with hidden visibility). */
__attribute__((visibility("default"))) int br_plugin_init(const char *arg, br_plugin *plugin)
{
    const char *colon = arg ? strrchr(arg, ':') : NULL;
    char path[4096];
    struct stat st;
    char *end;

    if (!colon || (size_t)(colon - arg) >= sizeof path) {
        snprintf(plugin->err, sizeof plugin->err,
                 "--plugin-arg PATH:RECORD_BYTES is required (got '%s')", arg ? arg : "");
        return -EINVAL;
    }
    memcpy(path, arg, (size_t)(colon - arg));
    path[colon - arg] = '\0';
    rec.record_bytes = (size_t)strtoull(colon + 1, &end, 10);
    if (*end || rec.record_bytes == 0) {
        snprintf(plugin->err, sizeof plugin->err, "bad record size '%s'", colon + 1);
        return -EINVAL;
    }
    rec.fd = open(path, O_RDONLY | O_CLOEXEC);
    if (rec.fd < 0 || fstat(rec.fd, &st) < 0) {
        int e = errno;
        snprintf(plugin->err, sizeof plugin->err, "open %.400s: %s", path, strerror(e));
        return -e;
    }
    if (st.st_size == 0 || (uint64_t)st.st_size % rec.record_bytes) {
        snprintf(plugin->err, sizeof plugin->err,
                 "%.400s has %lld bytes, not a whole number of %zu-byte records", path,
                 (long long)st.st_size, rec.record_bytes);
        close(rec.fd);
        return -EINVAL;
    }
    plugin->load = load;
    plugin->worker_init = worker_init;
    plugin->user = &rec;
    plugin->n_ids = (uint64_t)st.st_size / rec.record_bytes;
    plugin->slot_bytes = 0; /* batch x record_bytes: serve --slot-bytes */
    return 0;
}
