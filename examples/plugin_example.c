/* SPDX-License-Identifier: MIT */
/*
 * A loader plugin for `batchring serve --plugin`: a custom loader served as
 * a named ring without writing a server. This one reads fixed-size records
 * from one file through each worker's br_io (io_uring or pread), straight
 * into the ring's slot; put your own decoding in load().
 *
 *   batchring mkdata --layout records --dir /tmp/synth --samples 16384
 *   batchring serve --name /batchring-demo --plugin ./plugin_example.so \
 *       --plugin-arg /tmp/synth/records.bin:4096 --batch 64 --workers 4
 *   batchring consume --name /batchring-demo --verify --batches 100
 *
 * The argument is PATH:RECORD_BYTES. serve calls br_plugin_init2 once, in
 * the server process, before the ring exists, with what it was given
 * (br_plugin_args); the workers are forked afterwards and inherit what it
 * set up (here the open file). Knowing the batch size, the plugin sets the
 * slot size itself, and refuses a --slot-bytes too small for a batch. When
 * serve ends, after its workers are gone, fini closes the file.
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
#include <batchring/plugin.h>

struct records {
    int fd;
    size_t record_bytes;
};

static struct records rec = {.fd = -1};

/* Runs once in the server when serve ends, after the generator is closed
 * (every worker has exited): undoes what br_plugin_init2 did. */
static void fini(void *user)
{
    struct records *r = user;
    close(r->fd);
    r->fd = -1;
}

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
 * of the build (batchring itself builds with hidden visibility). It uses
 * only revision-2 fields (BR_PLUGIN_ABI in batchring/plugin.h), which every server
 * that calls br_plugin_init2 fills, so it needs no check of args->abi. */
__attribute__((visibility("default"))) int br_plugin_init2(const br_plugin_args *args,
                                                           br_plugin *plugin)
{
    const char *arg = args->arg;
    const char *colon = arg ? strrchr(arg, ':') : NULL;
    char path[4096];
    struct stat st;
    size_t batch_bytes;
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
        goto fail;
    }
    /* A full batch: what a slot must hold. A failing init cleans up after
     * itself (fini runs only after a successful one). */
    if (!args->batch_size || rec.record_bytes > SIZE_MAX / args->batch_size) {
        snprintf(plugin->err, sizeof plugin->err, "batches of %u records of %zu bytes overflow",
                 args->batch_size, rec.record_bytes);
        goto fail;
    }
    batch_bytes = (size_t)args->batch_size * rec.record_bytes;
    if (args->slot_bytes && args->slot_bytes < batch_bytes) {
        snprintf(plugin->err, sizeof plugin->err,
                 "--slot-bytes %zu cannot hold a batch of %u records of %zu bytes (%zu): raise "
                 "it or leave it out",
                 args->slot_bytes, args->batch_size, rec.record_bytes, batch_bytes);
        goto fail;
    }
    plugin->load = load;
    plugin->worker_init = worker_init;
    plugin->fini = fini;
    plugin->user = &rec;
    plugin->n_ids = (uint64_t)st.st_size / rec.record_bytes;
    plugin->slot_bytes = batch_bytes; /* --slot-bytes, when given, wins */
    return 0;
fail:
    close(rec.fd);
    rec.fd = -1;
    return -EINVAL;
}
