/* SPDX-License-Identifier: MIT */
/* Options, the launcher environment, and br_open. */
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/gen.h"
#include "api/sized.h"

/* BR_SLOTS_AUTO deepens the ring of small batches to about this much data,
 * and at most this many slots (auto_slots)... */
#define BR_AUTO_RING_BYTES (UINT64_C(8) << 20)
#define BR_AUTO_MAX_SLOTS 128u
/* ... twice as deep where the workers hold every CPU: there the consumer
 * sleeps once per seven eighths of the ring while it waits for them, and
 * each sleep costs it tens of microseconds of CPU on a VM (20-50 us where
 * this was measured: a bare nanosleep of 100 us costs ~20 us), so its CPU
 * per batch is that over the ring's depth. */
#define BR_AUTO_CROWDED_RING_BYTES (UINT64_C(16) << 20)
#define BR_AUTO_CROWDED_MAX_SLOTS 256u
/* ... but when the consumer has a core to spin on, only as deep as half
 * the workers' inner cache holds, and never below this: a worker running
 * ahead is kicked once per half ring, so that each wake-up is spread over
 * at least 8 batches (auto_slots). */
#define BR_AUTO_MIN_DEEP_SLOTS 16u

BR_API int br_options_init_sized(br_options *opt, size_t size)
{
    char *msg = br__open_error_buffer();
    br_options d;
    if (!opt)
        return br__fail(msg, -EINVAL, "opt is NULL: pass the address of a br_options");
    /* A size of another build's struct is fine (batchring.h, rule a); one
     * smaller than any br_options, or too large for opt->size to hold,
     * is not the sizeof of one. */
    if (size < BR__OPTIONS_SIZE_0_3 || size > UINT32_MAX)
        return br__fail(msg, -EINVAL,
                        "size %zu is not the size of a br_options (%zu bytes in this library, "
                        "at least %zu): call br_options_init(&opt)",
                        size, sizeof d, (size_t)BR__OPTIONS_SIZE_0_3);
    memset(&d, 0, sizeof d);
    d.size = (uint32_t)size;
    d.batch_size = 32;
    d.workers = 1;
    d.slots = BR_SLOTS_AUTO;
    d.slot_bytes = 0;
    d.epochs = 0;
    d.drop_last = false;
    d.timeout_ms = -1;
    d.max_restarts = 3;
    d.world = 1;
    /* Fields of a newer header than this library's are zero: their
     * default ("as before"). */
    br__copy_out(opt, size, &d, sizeof d);
    return 0;
}

/*
 * Reads the caller's options into *dst, this library's br_options, by
 * batchring.h's rule a (Linux's copy_struct_from_user): opt->size bytes
 * and no more, since the caller's struct may be older and smaller; the
 * fields it lacks are zero, their default. A newer, larger struct is read
 * when the bytes this library does not know are all zero, that is when
 * the program sets no option that this library would ignore.
 */
static int options_read(br_options *dst, const br_options *opt, char *msg)
{
    size_t size = opt->size;
    if (size == 0)
        return br__fail(msg, -EINVAL,
                        "opt->size is 0: initialise the options with br_options_init (a "
                        "br_options set up with = {0} or memset carries no size)");
    if (size < BR__OPTIONS_SIZE_0_3)
        return br__fail(msg, -EINVAL,
                        "opt->size %zu is smaller than any br_options (%zu bytes in 0.3): "
                        "initialise the options with br_options_init",
                        size, (size_t)BR__OPTIONS_SIZE_0_3);
    memset(dst, 0, sizeof *dst);
    if (size > sizeof *dst) {
        const unsigned char *bytes = (const unsigned char *)opt;
        for (size_t i = sizeof *dst; i < size; i++)
            if (bytes[i])
                return br__fail(msg, -EINVAL,
                                "opt->size %zu is larger than this library's br_options (%zu "
                                "bytes, batchring %s) and byte %zu is set: the program uses an "
                                "option of a newer batchring than the library it runs with",
                                size, sizeof *dst, br_version_string(), i);
        size = sizeof *dst;
    }
    memcpy(dst, opt, size);
    dst->size = (uint32_t)sizeof *dst;
    return 0;
}

/* Parses a whole decimal number of at most max; false if it is not one. */
static bool parse_u32(const char *text, uint32_t max, uint32_t *out)
{
    char *end = NULL;
    unsigned long long v;
    if (!text || !*text || *text == '-' || *text == '+')
        return false;
    errno = 0;
    v = strtoull(text, &end, 10);
    if (errno || *end || v > max)
        return false;
    *out = (uint32_t)v;
    return true;
}

BR_API int br_shard_from_env(br_options *opt)
{
    /* The launchers' variable pairs, most specific first. */
    static const char *const pairs[][2] = {
        {"RANK", "WORLD_SIZE"},
        {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"},
        {"PMI_RANK", "PMI_SIZE"},
        {"SLURM_PROCID", "SLURM_NTASKS"},
    };
    char *msg = br__open_error_buffer();
    if (!opt)
        return br__fail(msg, -EINVAL, "opt is NULL");
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        const char *rank = getenv(pairs[i][0]), *world = getenv(pairs[i][1]);
        uint32_t r, w;
        if (!rank && !world)
            continue;
        if (!parse_u32(rank, UINT32_MAX, &r) || !parse_u32(world, UINT32_MAX, &w) || w == 0 ||
            r >= w)
            return br__fail(msg, -EINVAL, "%s=%s and %s=%s do not make a rank below a world size",
                            pairs[i][0], rank ? rank : "(unset)", pairs[i][1],
                            world ? world : "(unset)");
        opt->rank = r;
        opt->world = w;
        return 0;
    }
    return br__fail(msg, -ENOENT,
                    "no launcher variables found (RANK/WORLD_SIZE, OMPI_COMM_WORLD_RANK/"
                    "OMPI_COMM_WORLD_SIZE, PMI_RANK/PMI_SIZE, SLURM_PROCID/SLURM_NTASKS)");
}

/* Checks the arguments of br_open; the message names the first bad one. */
static int check_open_args(br_gen **out, br_loader_fn load, size_t n_ids,
                           const br_options *opt, br_options *copy, char *msg)
{
    int rc;
    if (!out)
        return br__fail(msg, -EINVAL, "out is NULL: pass the address of a br_gen *");
    if (!load)
        return br__fail(msg, -EINVAL, "load is NULL: pass a loader function");
    if (!opt)
        return br__fail(msg, -EINVAL, "opt is NULL: initialise options with br_options_init");
    rc = options_read(copy, opt, msg);
    if (rc)
        return rc;
    opt = copy;
    if (n_ids == 0)
        return br__fail(msg, -EINVAL, "n_ids is 0: a generator needs at least one sample");
    if (opt->batch_size == 0)
        return br__fail(msg, -EINVAL, "batch_size is 0: it must be at least 1");
    if (opt->batch_size > BR_MAX_BATCH_SIZE)
        return br__fail(msg, -EINVAL, "batch_size %u is larger than the limit %u",
                        opt->batch_size, BR_MAX_BATCH_SIZE);
    if (opt->batch_size > n_ids)
        return br__fail(msg, -EINVAL, "batch_size %u is larger than n_ids %zu", opt->batch_size,
                        n_ids);
    if (opt->slot_bytes == 0)
        return br__fail(msg, -EINVAL,
                        "slot_bytes is 0: set it to the largest batch the loader writes");
    if (opt->slots == 0)
        return br__fail(msg, -EINVAL,
                        "slots is 0: the ring needs at least 1 slot (BR_SLOTS_AUTO for the "
                        "automatic depth)");
    if (opt->slots != BR_SLOTS_AUTO && opt->slots > BR_MAX_SLOTS)
        return br__fail(msg, -EINVAL, "slots %u is larger than the limit %u", opt->slots,
                        BR_MAX_SLOTS);
    if (opt->workers > BR_MAX_WORKERS)
        return br__fail(msg, -EINVAL, "workers %u is larger than the limit %u", opt->workers,
                        BR_MAX_WORKERS);
    if (opt->timeout_ms < -1)
        return br__fail(msg, -EINVAL, "timeout_ms %d is invalid: use -1 (forever) or >= 0",
                        opt->timeout_ms);
    if (opt->hold >= BR_MAX_SLOTS)
        return br__fail(msg, -EINVAL, "hold %u must be below the ring's slots (at most %u)",
                        opt->hold, BR_MAX_SLOTS);
    if (opt->slots != BR_SLOTS_AUTO && opt->hold >= opt->slots)
        return br__fail(msg, -EINVAL, "hold %u must be below slots %u: the next batch needs "
                        "a slot that is not held (BR_SLOTS_AUTO makes room)", opt->hold,
                        opt->slots);
    if (opt->pin > BR_PIN_CUDA_IF_AVAILABLE)
        return br__fail(msg, -EINVAL, "pin %u is none of BR_PIN_NONE (0), BR_PIN_CUDA (1), "
                        "BR_PIN_CUDA_IF_AVAILABLE (2)", opt->pin);
    if (opt->pin && opt->name)
        return br__fail(msg, -EINVAL, "pin with a named ring (%s): its consumer pins its own "
                        "mapping (br_pin after br_attach)", opt->name);
    return 0;
}

/* BR_SLOTS_AUTO: two slots per worker, and for small batches as many more
 * as fit in BR_AUTO_RING_BYTES (at most BR_AUTO_MAX_SLOTS). Any wait costs
 * a wake-up of tens of microseconds on a VM; a ring that holds less than
 * that much production makes workers and consumer wait for each other in
 * turn (docs/perf/notes.md has the figures and the command for them). Inline generators load on demand and
 * need no depth. */
/*
 * The automatic depth. The deep ring of small batches is there to cover
 * wake-ups: the consumer's (it sleeps until half the ring is ready, and
 * the other half keeps the workers busy meanwhile) and the workers' (they
 * sleep when the ring is full and are kicked once per half ring). A
 * consumer with a core of its own (br__ring_cpus_to_spare) never sleeps
 * while the workers are slower: it spins. Then only the workers' wake-ups
 * need covering, and a ring larger than the cache the workers write
 * through (inner_cache, the L2 of the trainer's CPU) costs every line of
 * every batch a write-allocate from the next level, a lap later: a 64 KiB
 * copy into 64 rotating slots (4 MiB) took 2.8 us on a 2 MiB-L2 machine,
 * into 16 (1 MiB) 1.6 us, as into one buffer (docs/perf/notes.md, "The
 * batched handoff"). So the ring keeps to half that cache there; the
 * other half is the loader's input.
 */
static uint32_t auto_slots(uint32_t workers, size_t slot_bytes, uint32_t hold,
                           uint64_t inner_cache)
{
    uint64_t slots = 2 * (uint64_t)(workers ? workers : 1), deep;
    /* opt.hold: the H held slots come on top, so that workers keep
     * 2 x workers free ones (inline: one to load into). */
    if (hold >= 2)
        slots = workers ? slots + hold : (uint64_t)hold + 1;
    if (slots > BR_MAX_SLOTS)
        slots = BR_MAX_SLOTS;
    if (workers == 0 || slot_bytes == 0)
        return (uint32_t)slots;
    if (br__ring_cpus_to_spare(workers)) {
        deep = BR_AUTO_RING_BYTES / slot_bytes;
        if (deep > BR_AUTO_MAX_SLOTS)
            deep = BR_AUTO_MAX_SLOTS;
    } else {
        deep = BR_AUTO_CROWDED_RING_BYTES / slot_bytes;
        if (deep > BR_AUTO_CROWDED_MAX_SLOTS)
            deep = BR_AUTO_CROWDED_MAX_SLOTS;
    }
    if (inner_cache && br__ring_cpus_to_spare(workers)) {
        uint64_t fit = inner_cache / 2 / slot_bytes;
        if (fit < BR_AUTO_MIN_DEEP_SLOTS)
            fit = BR_AUTO_MIN_DEEP_SLOTS;
        if (deep > fit)
            deep = fit;
    }
    return (uint32_t)(deep > slots ? deep : slots);
}

/* Guard mode from the environment (BR_GUARD, see batchring.h): no field
 * of br_options carries it before the ABI redesign. Returns the ring flag
 * to add, or -EINVAL with a message for a value that is neither on nor
 * off, rather than guess what the user meant. */
static int guard_flag(char *msg)
{
    const char *v = getenv("BR_GUARD");
    if (!v || !v[0] || !strcmp(v, "0"))
        return 0;
    if (!strcmp(v, "1"))
        return (int)BR_RING_GUARD;
    return br__fail(msg, -EINVAL, "BR_GUARD is '%.64s': set it to 1 (guard pages after every "
                    "slot) or 0 (none)", v);
}

BR_API int br_open(br_gen **out, br_loader_fn load, void *user, const uint64_t *ids,
                   const int32_t *labels, size_t n_ids, const br_options *opt)
{
    char *msg = br__open_error_buffer();
    struct br_ring_geometry geo;
    struct br_gen *g;
    br_options o;
    uint32_t workers;
    int rc;

    msg[0] = '\0';
    if (out)
        *out = NULL;
    rc = check_open_args(out, load, n_ids, opt, &o, msg);
    if (rc)
        return rc;
    opt = &o; /* from here on, only this library's struct is read */

    g = calloc(1, sizeof *g);
    if (!g)
        return br__fail(msg, -ENOMEM, "out of memory for the generator");

    {
        struct br_schedule_options so = {
            .n_ids = n_ids,
            .batch_size = opt->batch_size,
            .drop_last = opt->drop_last,
            .epochs = opt->epochs,
            .shuffle = opt->shuffle,
            .seed = opt->seed,
            .rank = opt->rank,
            .world = opt->world,
            .shard_drop_tail = opt->shard_drop_tail,
            .start_seq = opt->start_seq,
        };
        rc = br__schedule_init(&g->ctx.sched, &so, msg);
        if (rc)
            goto fail;
    }
    /* As the R DataGenerator does: more workers than batches in flight
     * could ever use is lowered, not refused. */
    workers = opt->workers;
    if (workers && (uint64_t)opt->batch_size * workers > g->ctx.sched.per_epoch) {
        workers = (uint32_t)(g->ctx.sched.per_epoch / opt->batch_size);
        snprintf(g->msg, sizeof g->msg,
                 "workers lowered from %u to %u: batch_size %u x workers %u is more than "
                 "the %llu samples per epoch%s",
                 opt->workers, workers, opt->batch_size, opt->workers,
                 (unsigned long long)g->ctx.sched.per_epoch,
                 g->ctx.sched.world > 1 ? " of this rank" : " (n_ids)");
    }
    g->nworkers = workers;

    /* Workers see the arrays as they are now: the supervisor is forked in
     * this call and forks every worker, first or replacement, from that
     * snapshot. Loading inline reads them on every br_next, so it keeps a
     * copy; either way the caller may free them once br_open returns. */
    if (workers == 0 && (ids || labels)) {
        if (n_ids > SIZE_MAX / sizeof *g->ids) {
            rc = br__fail(msg, -EOVERFLOW, "n_ids %zu is too large to copy", n_ids);
            goto fail;
        }
        g->ids = ids ? malloc(n_ids * sizeof *g->ids) : NULL;
        g->labels = labels ? malloc(n_ids * sizeof *g->labels) : NULL;
        if ((ids && !g->ids) || (labels && !g->labels)) {
            char size[32];
            rc = br__fail(msg, -ENOMEM, "out of memory copying %zu ids and labels (%s)", n_ids,
                          br__format_bytes(size, n_ids * (sizeof *g->ids + sizeof *g->labels)));
            goto fail;
        }
        if (ids)
            memcpy(g->ids, ids, n_ids * sizeof *g->ids);
        if (labels)
            memcpy(g->labels, labels, n_ids * sizeof *g->labels);
        ids = g->ids;
        labels = g->labels;
    }
    g->ctx.load = load;
    g->ctx.worker_init = opt->worker_init;
    g->ctx.worker_fini = opt->worker_fini;
    g->ctx.user = user;
    g->ctx.ids = ids;
    g->ctx.labels = labels;
    /* Where the workers run (batchring.h, br_options.cpus): checked here
     * against the online CPUs, and by the supervisor against the CPUs this
     * process may use, before any worker starts. */
    {
        const char *cpus = opt->cpus, *source = "cpus";
        if (!cpus) {
            cpus = getenv("BR_CPUS");
            source = "BR_CPUS";
        }
        rc = br__cpu_plan_make(&g->ctx.cpus, cpus, source, BR_SYSFS_CPU, sched_getcpu(), msg);
        if (rc)
            goto fail;
    }

    memset(&geo, 0, sizeof geo);
    if (opt->slots == BR_SLOTS_AUTO) {
        int cpu = sched_getcpu();
        geo.nslots = auto_slots(workers, opt->slot_bytes, opt->hold,
                                br__cpu_inner_cache_bytes(BR_SYSFS_CPU, cpu < 0 ? 0 : cpu));
    } else {
        geo.nslots = opt->slots;
    }
    geo.hold = opt->hold;
    geo.nworkers = workers;
    geo.batch_size = opt->batch_size;
    geo.flags = (labels ? BR_RING_LABELS : 0) | (opt->drop_last ? BR_RING_DROP_LAST : 0);
    rc = guard_flag(msg);
    if (rc < 0)
        goto fail;
    geo.flags |= (uint32_t)rc;
    geo.slot_bytes = opt->slot_bytes;
    geo.n_ids = n_ids;
    geo.epochs = opt->epochs;
    geo.batches_per_epoch = g->ctx.sched.batches_per_epoch;
    geo.end_seq = g->ctx.sched.end_seq;
    geo.start_seq = g->ctx.sched.start_seq;
    if (opt->name) {
        if (workers == 0) {
            rc = br__fail(msg, -EINVAL, "a named ring (%s) needs workers >= 1: its consumer is "
                          "another process", opt->name);
            goto fail;
        }
        g->role = ROLE_SERVE;
        snprintf(g->name, sizeof g->name, "%s", opt->name);
    }
    rc = br__ring_create(&g->ring, &geo, opt->name, msg);
    if (rc)
        goto fail;

    if (workers == 0) {
        /* Not single-issuer: the trainer may call br_next from another
         * thread than br_open's. */
        rc = br__worker_env_init(&g->inline_env, &g->ring, &g->ctx, 0, &g->inline_rec, false, msg);
        if (rc)
            goto fail;
        g->inline_ready = true;
    }
    br__consumer_init(&g->cons, &g->ring, opt->start_seq, opt->timeout_ms, g->msg,
                      br__gen_check_alive);
    g->cons.hold = opt->hold;
    rc = br__gen_register(g, msg);
    if (rc)
        goto fail;
    g->opened_ns = br__now_ns();
    rc = br__sup_start(&g->sup, &g->ring, &g->ctx, opt->max_restarts, msg);
    if (rc) {
        struct br_gen *same;
        br__gen_unregister((br_gen *)(uintptr_t)g->handle, &same);
        goto fail;
    }
    /* After the supervisor's fork: pinned memory is not for children. */
    if (opt->pin) {
        rc = br__gen_pin(g, (int)opt->pin, msg);
        if (rc) {
            struct br_gen *same;
            br__gen_unregister((br_gen *)(uintptr_t)g->handle, &same);
            goto fail;
        }
    }
    *out = (br_gen *)(uintptr_t)g->handle;
    return 0;
fail:
    br__gen_free(g);
    return rc;
}
