/* SPDX-License-Identifier: MIT */
/*
 * A loader plugin for test_named (batchring serve --plugin). Sample i is
 * br_synth's sample i of `bytes` bytes for `seed`, so that a consumer can
 * check every byte. A batch with seq >= `block` never finishes loading and
 * the batch with seq == `fail` fails, so that a test can make a consumer
 * wait, or stop on a loader error, on purpose.
 *
 * Arg: "samples=N,bytes=B[,seed=S][,block=K][,fail=K]".
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <batchring.h>

#include "../cli/synth.h"

struct plugin_conf {
    uint64_t samples, bytes, seed, block, fail;
};

/* What worker_init hands every job of its worker: proves that serve passed
 * the plugin's hooks on to br_open. */
#define STATE_TAG(w) ((void *)(uintptr_t)(0x9106000u + (w)))

static struct plugin_conf conf;

static int worker_init(br_io *io, uint32_t worker, void *user, void **state, char *err,
                       size_t err_cap)
{
    (void)io, (void)err, (void)err_cap;
    if (user != &conf)
        return -EINVAL;
    *state = STATE_TAG(worker);
    return 0;
}

static int load(br_job *job, void *user)
{
    const struct plugin_conf *c = user;
    uint8_t *out = job->out;

    if (job->state != STATE_TAG(job->worker)) {
        snprintf(job->err, job->err_cap, "job->state %p is not what worker_init gave", job->state);
        return -EPROTO;
    }
    if (job->seq == c->fail) {
        snprintf(job->err, job->err_cap, "planned failure at batch %llu",
                 (unsigned long long)job->seq);
        return -EIO;
    }
    /* Blocks until the worker is killed (the producer's br_close, or its
     * supervisor's death): a batch that is never ready. */
    while (job->seq >= c->block)
        pause();
    if ((uint64_t)job->count * c->bytes > job->cap) {
        snprintf(job->err, job->err_cap, "%u samples of %llu bytes do not fit in %zu", job->count,
                 (unsigned long long)c->bytes, job->cap);
        return -ENOSPC;
    }
    for (uint32_t i = 0; i < job->count; i++) {
        br_synth_fill(out + i * c->bytes, (size_t)c->bytes, c->seed, job->ids[i]);
        job->offsets[i] = i * c->bytes;
    }
    job->offsets[job->count] = job->count * c->bytes;
    job->has_offsets = true;
    job->size = (size_t)(job->count * c->bytes);
    return 0;
}

__attribute__((visibility("default"))) int br_plugin_init(const char *arg, br_plugin *plugin)
{
    char *copy, *save = NULL;
    conf = (struct plugin_conf){.block = UINT64_MAX, .fail = UINT64_MAX};
    if (!arg) {
        snprintf(plugin->err, sizeof plugin->err, "--plugin-arg samples=N,bytes=B is required");
        return -EINVAL;
    }
    copy = strdup(arg);
    if (!copy)
        return -ENOMEM;
    for (char *kv = strtok_r(copy, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
        unsigned long long v;
        char key[16];
        if (sscanf(kv, "%15[a-z]=%llu", key, &v) != 2) {
            snprintf(plugin->err, sizeof plugin->err, "bad plugin argument '%s'", kv);
            free(copy);
            return -EINVAL;
        }
        if (!strcmp(key, "samples"))
            conf.samples = v;
        else if (!strcmp(key, "bytes"))
            conf.bytes = v;
        else if (!strcmp(key, "seed"))
            conf.seed = v;
        else if (!strcmp(key, "block"))
            conf.block = v;
        else if (!strcmp(key, "fail"))
            conf.fail = v;
        else {
            snprintf(plugin->err, sizeof plugin->err, "unknown plugin argument '%s'", key);
            free(copy);
            return -EINVAL;
        }
    }
    free(copy);
    if (!conf.samples || !conf.bytes) {
        snprintf(plugin->err, sizeof plugin->err, "samples and bytes must be positive");
        return -EINVAL;
    }
    plugin->load = load;
    plugin->worker_init = worker_init;
    plugin->user = &conf;
    plugin->n_ids = conf.samples;
    plugin->slot_bytes = 0; /* the test passes --slot-bytes */
    return 0;
}
