/* SPDX-License-Identifier: MIT */
/*
 * The transform stage (br_dataset_transform_set). With a transform, a
 * dataset's loader does not read into the slot: it reads the batch into
 * this worker's scratch (allocated by the worker hook below, raw_cap bytes,
 * page-aligned so that O_DIRECT reads may land there), and the transform
 * then writes each sample's output into the slot, packed one after another,
 * with job->offsets saying where each starts. That is one copy more than
 * without a transform, which a transform that decodes or converts makes
 * anyway.
 *
 * The user's worker_init/worker_fini (from br_open_dataset's options) run
 * inside ours: their state is what the transform gets as `state`, and what
 * job->state would have been.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datasets/transform.h"

#define SCRATCH_ALIGN 4096u

struct worker_state {
    void *user_state;  /* what the user's worker_init made */
    uint8_t *raw;      /* raw_cap bytes, or NULL without a transform */
    uint64_t *raw_off; /* batch_size + 1 offsets into raw */
};

int br__transform_worker_init(br_io *io, uint32_t worker, void *user, void **state, char *err,
                              size_t err_cap)
{
    const struct br__transform *t = user;
    struct worker_state *w;
    void *unused = NULL;
    int rc = t->inner_init ? t->inner_init(io, worker, t->inner_user, &unused, err, err_cap) : 0;

    if (rc)
        return rc;
    w = calloc(1, sizeof *w);
    if (!w) {
        snprintf(err, err_cap, "out of memory for the transform's worker state");
        return -ENOMEM;
    }
    if (t->fn) {
        size_t cap = (t->raw_cap + SCRATCH_ALIGN - 1) / SCRATCH_ALIGN * SCRATCH_ALIGN;
        w->raw = aligned_alloc(SCRATCH_ALIGN, cap ? cap : SCRATCH_ALIGN);
        w->raw_off = calloc((size_t)t->batch_size + 1, sizeof *w->raw_off);
        if (!w->raw || !w->raw_off) {
            free(w->raw);
            free(w->raw_off);
            free(w);
            snprintf(err, err_cap, "out of memory for the transform's scratch (%zu bytes)", cap);
            return -ENOMEM;
        }
    }
    if (t->init) {
        rc = t->init(io, worker, t->user, &w->user_state, err, err_cap);
        if (rc) {
            free(w->raw);
            free(w->raw_off);
            free(w);
            return rc < 0 ? rc : -EINVAL;
        }
    }
    *state = w;
    return 0;
}

void br__transform_worker_fini(void *state, void *user)
{
    const struct br__transform *t = user;
    struct worker_state *w = state;
    if (!w)
        return;
    if (t->fini)
        t->fini(w->user_state, t->user);
    free(w->raw);
    free(w->raw_off);
    free(w);
}

int br__transform_load(br_job *job, void *user)
{
    const struct br__transform *t = user;
    struct worker_state *w = job->state;
    uint8_t *out = job->out;
    size_t pos = 0;
    br_job in;
    int rc;

    if (!w) {
        snprintf(job->err, job->err_cap, "the transform stage has no worker state");
        return -EINVAL;
    }
    if (!t->fn)
        return t->inner(job, t->inner_user);
    /* The dataset's loader fills the scratch as it would a slot: a copy of
     * the job (ours, of this build's size) pointed at the scratch. */
    in = *job;
    in.out = w->raw;
    in.cap = t->raw_cap;
    in.offsets = w->raw_off;
    in.has_offsets = false;
    in.size = 0;
    in.state = w->user_state;
    if (job->count > t->batch_size) {
        snprintf(job->err, job->err_cap, "a batch of %u samples, above the %u the scratch holds",
                 job->count, t->batch_size);
        return -EINVAL;
    }
    rc = t->inner(&in, t->inner_user);
    if (rc)
        return rc;
    for (uint32_t i = 0; i < job->count; i++) {
        uint64_t lo, hi;
        size_t got = 0;
        if (in.has_offsets) {
            lo = w->raw_off[i], hi = w->raw_off[i + 1];
        } else {
            lo = in.size / job->count * i, hi = lo + in.size / job->count;
        }
        job->offsets[i] = pos;
        rc = t->fn(w->raw + lo, (size_t)(hi - lo), job->ids[i], out + pos, job->cap - pos, &got,
                   job->seed, w->user_state);
        if (rc) {
            snprintf(job->err, job->err_cap,
                     "the transform failed on sample %llu (%llu bytes in, %zu bytes of room "
                     "out): %s",
                     (unsigned long long)job->ids[i], (unsigned long long)(hi - lo),
                     job->cap - pos, rc < 0 ? br_strerror(rc) : "a positive return");
            return rc < 0 ? rc : -EINVAL;
        }
        if (got > job->cap - pos) {
            snprintf(job->err, job->err_cap,
                     "the transform says it wrote %zu bytes for sample %llu, but had room for "
                     "%zu",
                     got, (unsigned long long)job->ids[i], job->cap - pos);
            return -ENOBUFS;
        }
        pos += got;
    }
    job->offsets[job->count] = pos;
    job->has_offsets = true;
    job->size = pos;
    return 0;
}
