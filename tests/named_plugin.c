/* SPDX-License-Identifier: MIT */
/*
 * A loader plugin for test_named (batchring serve --plugin). Sample i is
 * br_synth's sample i of `bytes` bytes for `seed`, so that a consumer can
 * check every byte. A batch with seq >= `block` never finishes loading and
 * the batch with seq == `fail` fails, so that a test can make a consumer
 * wait, or stop on a loader error, on purpose.
 *
 * Arg: "samples=N,bytes=B[,seed=S][,block=K][,fail=K][,batch=B][,workers=W]
 * [,slot_bytes=N][,log=PATH]". batch, workers and slot_bytes are what the
 * init expects serve to have been given: it fails, naming both numbers,
 * when they differ. With log, the init, each worker_init and worker_fini,
 * and the fini append one line each to PATH (one write with O_APPEND, so
 * the lines of several processes do not mix), saying what they saw.
 *
 * Built twice: as test_named_plugin (revision 2: br_plugin_init2, with a
 * fini), and with NAMED_PLUGIN_V1 as test_named_plugin_v1, a plugin built
 * before revision 2: it exports only br_plugin_init and fills its own copy
 * of the revision-1 struct, as an old binary does.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <batchring.h>
#include <batchring/plugin.h>

#include "synth.h"

struct plugin_conf {
    uint64_t samples, bytes, seed, block, fail;
    uint64_t batch, workers, slot_bytes; /* expected; 0: not checked */
    const char *log;                     /* NULL, or log_path */
    void *scratch;                       /* revision 2: batch_size x bytes, from the init to fini */
};

/* What worker_init hands every job of its worker: proves that serve passed
 * the plugin's hooks on to br_open. */
#define STATE_TAG(w) ((void *)(uintptr_t)(0x9106000u + (w)))

static struct plugin_conf conf;
static char log_path[4096];

/* Appends one line to conf.log, if set. */
static void log_line(const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    int n, fd;

    if (!conf.log)
        return;
    va_start(ap, fmt);
    n = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof line - 1)
        n = (int)sizeof line - 2;
    line[n++] = '\n';
    fd = open(conf.log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return;
    if (write(fd, line, (size_t)n) != n)
        (void)0; /* the test finds the line missing */
    close(fd);
}

static int worker_init(br_io *io, uint32_t worker, void *user, void **state, char *err,
                       size_t err_cap)
{
    (void)io, (void)err, (void)err_cap;
    if (user != &conf)
        return -EINVAL;
    *state = STATE_TAG(worker);
    log_line("worker_init pid=%d worker=%u", (int)getpid(), worker);
    return 0;
}

static void worker_fini(void *state, void *user)
{
    const uint32_t worker = (uint32_t)((uintptr_t)state - (uintptr_t)STATE_TAG(0));
    (void)user;
    log_line("worker_fini pid=%d worker=%u", (int)getpid(), worker);
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

/* Parses arg into conf. Returns 0, or -EINVAL / -ENOMEM with a message. */
static int parse_arg(const char *arg, char *err, size_t err_cap)
{
    char *copy, *save = NULL;
    int rc = 0;

    conf = (struct plugin_conf){.block = UINT64_MAX, .fail = UINT64_MAX};
    if (!arg) {
        snprintf(err, err_cap, "--plugin-arg samples=N,bytes=B is required");
        return -EINVAL;
    }
    copy = strdup(arg);
    if (!copy)
        return -ENOMEM;
    for (char *kv = strtok_r(copy, ",", &save); kv && !rc; kv = strtok_r(NULL, ",", &save)) {
        static const struct {
            const char *key;
            size_t off;
        } keys[] = {
            {"samples", offsetof(struct plugin_conf, samples)},
            {"bytes", offsetof(struct plugin_conf, bytes)},
            {"seed", offsetof(struct plugin_conf, seed)},
            {"block", offsetof(struct plugin_conf, block)},
            {"fail", offsetof(struct plugin_conf, fail)},
            {"batch", offsetof(struct plugin_conf, batch)},
            {"workers", offsetof(struct plugin_conf, workers)},
            {"slot_bytes", offsetof(struct plugin_conf, slot_bytes)},
        };
        char *eq = strchr(kv, '='), *end;
        size_t i;

        if (!eq || eq == kv || !eq[1]) {
            snprintf(err, err_cap, "bad plugin argument '%s'", kv);
            rc = -EINVAL;
            break;
        }
        *eq = '\0';
        if (!strcmp(kv, "log")) {
            snprintf(log_path, sizeof log_path, "%s", eq + 1);
            conf.log = log_path;
            continue;
        }
        for (i = 0; i < sizeof keys / sizeof keys[0] && strcmp(kv, keys[i].key); i++)
            ;
        if (i == sizeof keys / sizeof keys[0]) {
            snprintf(err, err_cap, "unknown plugin argument '%s'", kv);
            rc = -EINVAL;
            break;
        }
        errno = 0;
        *(uint64_t *)(void *)((char *)&conf + keys[i].off) = strtoull(eq + 1, &end, 10);
        if (errno || *end) {
            snprintf(err, err_cap, "bad plugin argument '%s=%s'", kv, eq + 1);
            rc = -EINVAL;
        }
    }
    free(copy);
    if (!rc && (!conf.samples || !conf.bytes)) {
        snprintf(err, err_cap, "samples and bytes must be positive");
        rc = -EINVAL;
    }
    return rc;
}

#ifndef NAMED_PLUGIN_V1

static void fini(void *user)
{
    struct plugin_conf *c = user;
    /* Under LeakSanitizer, serve reports the scratch buffer as a leak if
     * fini never runs. */
    free(c->scratch);
    c->scratch = NULL;
    log_line("fini pid=%d", (int)getpid());
}

__attribute__((visibility("default"))) int br_plugin_init2(const br_plugin_args *args,
                                                           br_plugin *plugin)
{
    int rc = parse_arg(args->arg, plugin->err, sizeof plugin->err);
    if (rc)
        return rc;
    /* What a plugin sizes its buffers from: refuse a run it was not built
     * for, naming both numbers. */
    if ((conf.batch && args->batch_size != conf.batch) ||
        (conf.workers && args->workers != conf.workers) ||
        (conf.slot_bytes && args->slot_bytes != conf.slot_bytes)) {
        snprintf(plugin->err, sizeof plugin->err,
                 "serve gave batch_size %u, workers %u, slot_bytes %zu; expected %llu, %llu, %llu",
                 args->batch_size, args->workers, args->slot_bytes, (unsigned long long)conf.batch,
                 (unsigned long long)conf.workers, (unsigned long long)conf.slot_bytes);
        return -EINVAL;
    }
    /* A buffer sized from the batch, as a decoder would keep one. */
    conf.scratch = malloc((size_t)args->batch_size * (size_t)conf.bytes);
    if (!conf.scratch) {
        snprintf(plugin->err, sizeof plugin->err, "no memory for a scratch batch");
        return -ENOMEM;
    }
    log_line("init pid=%d abi=%u batch=%u workers=%u slots=%u slot_bytes=%zu epochs=%llu "
             "seed=%llu shuffle=%d drop_last=%d rank=%u world=%u name=%s arg=%s",
             (int)getpid(), args->abi, args->batch_size, args->workers, args->slots,
             args->slot_bytes, (unsigned long long)args->epochs, (unsigned long long)args->seed,
             (int)args->shuffle, (int)args->drop_last, args->rank, args->world, args->name,
             args->arg);
    plugin->load = load;
    plugin->worker_init = worker_init;
    plugin->worker_fini = worker_fini;
    plugin->fini = fini;
    plugin->user = &conf;
    plugin->n_ids = conf.samples;
    plugin->slot_bytes = 0; /* the test passes --slot-bytes */
    return 0;
}

#else /* NAMED_PLUGIN_V1 */

/* br_plugin as revision 1 declared it: what an old binary fills. */
struct br_plugin_v1 {
    br_loader_fn load;
    br_worker_init_fn worker_init;
    br_worker_fini_fn worker_fini;
    void *user;
    uint64_t n_ids;
    size_t slot_bytes;
    char err[BR_ERR_CAP];
};

/* Revision 2 only appended: the old fields sit where an old binary puts
 * them. */
_Static_assert(offsetof(br_plugin, load) == offsetof(struct br_plugin_v1, load), "load moved");
_Static_assert(offsetof(br_plugin, worker_fini) == offsetof(struct br_plugin_v1, worker_fini),
               "worker_fini moved");
_Static_assert(offsetof(br_plugin, n_ids) == offsetof(struct br_plugin_v1, n_ids), "n_ids moved");
_Static_assert(offsetof(br_plugin, err) == offsetof(struct br_plugin_v1, err), "err moved");
_Static_assert(sizeof(struct br_plugin_v1) <= offsetof(br_plugin, fini),
               "revision 2 fields overlap revision 1's");

__attribute__((visibility("default"))) int br_plugin_init(const char *arg,
                                                          struct br_plugin_v1 *plugin)
{
    int rc = parse_arg(arg, plugin->err, sizeof plugin->err);
    if (rc)
        return rc;
    log_line("init pid=%d abi=1 arg=%s", (int)getpid(), arg);
    plugin->load = load;
    plugin->worker_init = worker_init;
    plugin->worker_fini = worker_fini;
    plugin->user = &conf;
    plugin->n_ids = conf.samples;
    plugin->slot_bytes = 0;
    return 0;
}

#endif
