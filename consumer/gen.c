/* SPDX-License-Identifier: MIT */
/*
 * The generator: br_open, br_next, br_close.
 *
 * br_next is the hot path. When the next slot is already READY it costs one
 * acquire load, one store to give the previous slot back (plus a wake only
 * if a worker sleeps on it) and no syscall. Only when the batch is not ready
 * does it spin briefly, then sleep in slices, checking between slices for
 * failures the supervisor recorded and that the supervisor still lives.
 *
 * Handles: a br_gen * is not a pointer but an index into a table plus a
 * generation number, so that a call on a closed generator finds nothing and
 * returns BR_ESTOPPED instead of touching freed memory, and br_close is
 * idempotent.
 */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <batchring.h>

#include "producer/datasets.h"
#include "producer/schedule.h"
#include "producer/worker.h"
#include "ring/error.h"
#include "ring/ring.h"

/* How long the consumer spins on a slot before it sleeps: about one futex
 * round trip, so a batch that is nearly ready costs no syscall. */
#define BR_SPIN_NS 20000u
/* When a core is free for it (workers < online CPUs), the consumer spins
 * up to twice its recent wait instead, if that is at most this long: a
 * sleep costs the worker a FUTEX_WAKE (~6 us on a KVM guest) and the
 * consumer a wake-up (~26 us), a large share of a batch that takes tens of
 * microseconds to load and nothing next to one that takes milliseconds. */
#define BR_SPIN_MAX_NS 500000u
/* When workers fill every core, the consumer spins only this long: each
 * microsecond of its spin is taken from a worker about to publish. */
#define BR_SPIN_CROWDED_NS 2000u
/* Longest sleep for half a ring before the consumer looks at its own
 * batch again (sleep_for_half_ring). */
#define BR_GATHER_SLEEP_MS 1
/* BR_SLOTS_AUTO deepens the ring of small batches to about this much data,
 * and at most this many slots (auto_slots). */
#define BR_AUTO_RING_BYTES (UINT64_C(4) << 20)
#define BR_AUTO_MAX_SLOTS 128u
/* Longest single sleep, so dead workers are noticed promptly. */
#define BR_CONSUMER_SLICE_MS 10
#define BR_MAX_GENERATORS 4096u

enum gen_state { GEN_RUNNING, GEN_EOF, GEN_STOPPED };

/* LOCAL: an in-process generator (workers feed this process's br_next).
 * SERVE: the producer of a named ring, with no consumer of its own.
 * ATTACHED: the consumer of a named ring that another process serves. */
enum gen_role { ROLE_LOCAL, ROLE_SERVE, ROLE_ATTACHED };

struct br_gen {
    uint64_t handle;
    struct br_ring ring;
    struct br_loader_ctx ctx;
    struct br_supervisor sup;
    uint64_t *ids;         /* our copy */
    int32_t *labels;       /* our copy, or NULL */
    uint64_t cursor;       /* next seq to return */
    uint64_t held;         /* seq of the batch the caller holds */
    bool holding;
    enum gen_state state;
    uint32_t nworkers;
    int timeout_ms;
    uint64_t opened_ns;
    uint32_t kick_every;    /* releases between wake-ups of sleeping workers */
    uint32_t released;      /* releases since the last wake-up */
    bool spin_adaptive;     /* a core is free for the consumer to spin on */
    uint64_t wait_avg_ns;   /* moving average of br_next's waits */
    /* The start of the last wait that timed out, and its seq: a br_next
     * that retries the same batch shows batchring stat the whole wait. */
    uint64_t timed_out_seq, timed_out_t0;
    /* workers = 0: the trainer loads, with its own reader and counters. */
    struct br_worker_env inline_env;
    struct br_worker_rec inline_rec;
    bool inline_ready;
    enum gen_role role;
    char name[256];         /* the named ring, or "" */
    pid_t producer_pid;     /* ATTACHED: who serves the ring */
    uint64_t producer_start;
    uint64_t consumer_id;   /* ATTACHED: our claim on the ring */
    char msg[BR_MSG_CAP];   /* br_last_error */
    char first_error[BR_MSG_CAP];
};

static _Thread_local char open_error[BR_MSG_CAP];

/* The table: slot i holds a struct br_gen * (as an integer, so that it can
 * be loaded atomically) whose handle is (generation << 16) | (i + 1). */
static _Atomic uint64_t gen_table[BR_MAX_GENERATORS];
static uint32_t gen_generation;
static pthread_mutex_t gen_table_lock = PTHREAD_MUTEX_INITIALIZER;

char *br__open_error_buffer(void)
{
    return open_error;
}

static struct br_gen *gen_lookup(const br_gen *handle)
{
    uint64_t h = (uint64_t)(uintptr_t)handle;
    uint64_t index = (h & 0xffffu) - 1;
    struct br_gen *g;
    if (!handle || index >= BR_MAX_GENERATORS)
        return NULL;
    /* Pairs with the release store in gen_register: a handle we find is
     * fully built. */
    g = (struct br_gen *)(uintptr_t)br__load_acquire_u64(&gen_table[index]);
    return g && g->handle == h ? g : NULL;
}

static int gen_register(struct br_gen *g, char *msg)
{
    int rc = -EMFILE;
    pthread_mutex_lock(&gen_table_lock);
    for (uint32_t i = 0; i < BR_MAX_GENERATORS; i++) {
        if (br__load_relaxed_u64(&gen_table[i]))
            continue;
        if (++gen_generation == 0)
            gen_generation = 1;
        g->handle = ((uint64_t)gen_generation << 16) | (i + 1);
        br__store_release_u64(&gen_table[i], (uint64_t)(uintptr_t)g);
        rc = 0;
        break;
    }
    pthread_mutex_unlock(&gen_table_lock);
    if (rc)
        br__fail(msg, rc, "too many open generators (at most %u)", BR_MAX_GENERATORS);
    return rc;
}

/* Removes g's handle; false if it was not (or no longer) registered. */
static bool gen_unregister(const br_gen *handle, struct br_gen **out)
{
    bool found = false;
    pthread_mutex_lock(&gen_table_lock);
    *out = gen_lookup(handle);
    if (*out) {
        br__store_relaxed_u64(&gen_table[((*out)->handle & 0xffffu) - 1], 0);
        found = true;
    }
    pthread_mutex_unlock(&gen_table_lock);
    return found;
}

static uint32_t online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (uint32_t)n : 1;
}

BR_API int br_options_init(br_options *opt)
{
    if (!opt)
        return -EINVAL;
    memset(opt, 0, sizeof *opt);
    opt->batch_size = 32;
    opt->workers = 1;
    opt->slots = BR_SLOTS_AUTO;
    opt->slot_bytes = 0;
    opt->epochs = 0;
    opt->drop_last = false;
    opt->timeout_ms = -1;
    opt->max_restarts = 3;
    opt->world = 1;
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
    char *msg = open_error;
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
                           const br_options *opt, char *msg)
{
    if (!out)
        return br__fail(msg, -EINVAL, "out is NULL: pass the address of a br_gen *");
    if (!load)
        return br__fail(msg, -EINVAL, "load is NULL: pass a loader function");
    if (!opt)
        return br__fail(msg, -EINVAL, "opt is NULL: initialise options with br_options_init");
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
    return 0;
}

/* Gives up the consumer claim on an attached ring and tells the producer. */
static void consumer_detach(struct br_gen *g)
{
    struct br_ring_header *h = g->ring.hdr;
    uint64_t mine = g->consumer_id;
    if (!mine)
        return;
    g->consumer_id = 0;
    br__cas_acq_rel_u64(&h->consumer, &mine, 0);
    br__add_seq_cst_u32(&h->consumer_events, 1);
    syscall(SYS_futex, (uint32_t *)&h->consumer_events, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

static void gen_free(struct br_gen *g)
{
    if (g->inline_ready)
        br__worker_env_fini(&g->inline_env, &g->ctx);
    br__sup_stop(&g->sup);
    if (g->role == ROLE_ATTACHED)
        consumer_detach(g);
    /* The producer removes its ring: stale names are for crashes only. */
    if (g->role == ROLE_SERVE && g->ring.base)
        shm_unlink(g->name);
    br__ring_unmap(&g->ring);
    free(g->ids);
    free(g->labels);
    free(g);
}

/* BR_SLOTS_AUTO: two slots per worker, and for small batches as many more
 * as fit in BR_AUTO_RING_BYTES (at most BR_AUTO_MAX_SLOTS). Any wait costs
 * a wake-up of ~26 us on these machines (docs/perf/notes.md); a ring that
 * holds less than that much production makes workers and consumer wait
 * for each other in turn (64 KiB batches, 2 workers: 0.5x a pread loop
 * with 4 slots, 1.5-1.7x with 64). Inline generators load on demand and
 * need no depth. */
static uint32_t auto_slots(uint32_t workers, size_t slot_bytes)
{
    uint64_t slots = 2 * (uint64_t)(workers ? workers : 1), deep;
    if (workers == 0 || slot_bytes == 0)
        return (uint32_t)slots;
    deep = BR_AUTO_RING_BYTES / slot_bytes;
    if (deep > BR_AUTO_MAX_SLOTS)
        deep = BR_AUTO_MAX_SLOTS;
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
    char *msg = open_error;
    struct br_ring_geometry geo;
    struct br_gen *g;
    uint32_t workers;
    int rc;

    msg[0] = '\0';
    if (out)
        *out = NULL;
    rc = check_open_args(out, load, n_ids, opt, msg);
    if (rc)
        return rc;

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
    g->cursor = opt->start_seq;
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
    g->timeout_ms = opt->timeout_ms;

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

    memset(&geo, 0, sizeof geo);
    geo.nslots = opt->slots == BR_SLOTS_AUTO ? auto_slots(workers, opt->slot_bytes) : opt->slots;
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
    rc = gen_register(g, msg);
    if (rc)
        goto fail;
    g->kick_every = geo.nslots / 2 ? geo.nslots / 2 : 1;
    g->spin_adaptive = workers > 0 && workers < online_cpus();
    g->opened_ns = br__now_ns();
    rc = br__sup_start(&g->sup, &g->ring, &g->ctx, opt->max_restarts, msg);
    if (rc) {
        struct br_gen *same;
        gen_unregister((br_gen *)(uintptr_t)g->handle, &same);
        goto fail;
    }
    *out = (br_gen *)(uintptr_t)g->handle;
    return 0;
fail:
    gen_free(g);
    return rc;
}

/* Stops the generator for good after a failure; message stays in g->msg. */
/* An attached consumer tells its producer how the run ended. */
static void consumer_finished(struct br_gen *g, enum br_consumer_done how)
{
    struct br_ring_header *h = g->ring.hdr;
    if (g->role != ROLE_ATTACHED)
        return;
    br__store_release_u32(&h->consumer_done, how);
    br__add_seq_cst_u32(&h->consumer_events, 1);
    syscall(SYS_futex, (uint32_t *)&h->consumer_events, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

static int gen_stop(struct br_gen *g, int code)
{
    g->state = GEN_STOPPED;
    snprintf(g->first_error, sizeof g->first_error, "%s", g->msg);
    br__sup_stop(&g->sup);
    consumer_finished(g, BR_CONSUMER_FAILED);
    return code;
}

/* Is the process serving our attached ring still there? Its lock says,
 * in whatever PID namespace it runs (one fcntl per sleep slice). */
static int check_producer(struct br_gen *g)
{
    int alive;
    if (g->role != ROLE_ATTACHED)
        return 0;
    alive = br__ring_producer_alive(g->ring.owner_fd);
    if (alive > 0)
        return 0;
    if (alive < 0)
        return br__fail(g->msg, alive, "testing the producer's lock on ring %s: %s", g->name,
                        strerror(-alive));
    return br__fail(g->msg, BR_EPRODUCER, "the producer of ring %s (pid %d) is gone", g->name,
                    (int)g->producer_pid);
}

/* One load of a plain descriptor field. The fields are published by the
 * slot word's release and read after its acquire, so no atomic is needed
 * for ordering; volatile only makes the load happen exactly once, so that a
 * writer that damages the descriptor after our check cannot make the
 * compiler's second load hand out a value that was never checked. */
#define BR_READ_ONCE(x) (*(const volatile __typeof__(x) *)&(x))

/* A slot descriptor as br_next uses it: every field read once from shared
 * memory, checked, and used from here. */
struct slot_fields {
    uint64_t seq, epoch, batch, size;
    uint32_t count, worker, has_offsets;
    int32_t error;
};

/* A damaged descriptor: BR_EBADRING naming the batch, its slot, the field,
 * its value and what it may be; the generator stops as after any failure. */
__attribute__((format(printf, 3, 4))) static int slot_bad(struct br_gen *g, uint64_t seq,
                                                          const char *fmt, ...)
{
    char what[BR_MSG_CAP / 2];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    br__fail(g->msg, 0, "bad ring: the descriptor of batch %llu (slot %u) is damaged: %s",
             (unsigned long long)seq, br__slot_index(&g->ring, seq), what);
    return gen_stop(g, BR_EBADRING);
}

/*
 * Reads the descriptor of seq (published READY, or FAILED when `failed`)
 * once into *f and checks every field against the ring's geometry before
 * br_next uses any of them to index memory or hands it to the caller:
 * workers write descriptors, and a named ring's object can be written by
 * anyone who can open it. A handful of compares and one multiply; the
 * offsets loop only when the loader filled offsets.
 * Returns 0, or BR_EBADRING with the generator stopped.
 */
static int slot_check(struct br_gen *g, uint64_t seq, bool failed, struct slot_fields *f)
{
    const struct br_ring *r = &g->ring;
    const struct br_slot_desc *d = br__slot_desc(r, seq);
    /* Geometry from the header copy checked at open or attach. */
    const uint64_t per_epoch = r->geo.batches_per_epoch;
    const uint32_t workers = g->nworkers ? g->nworkers : 1; /* inline: worker 0 */
    uint64_t first;

    f->seq = BR_READ_ONCE(d->seq);
    f->epoch = BR_READ_ONCE(d->epoch);
    f->batch = BR_READ_ONCE(d->batch);
    f->size = BR_READ_ONCE(d->size);
    f->count = BR_READ_ONCE(d->count);
    f->worker = BR_READ_ONCE(d->worker);
    f->has_offsets = BR_READ_ONCE(d->has_offsets);
    f->error = BR_READ_ONCE(d->error);

    if (f->seq != seq)
        return slot_bad(g, seq, "seq is %llu, expected %llu", (unsigned long long)f->seq,
                        (unsigned long long)seq);
    /* Before anything indexes ids, labels or offsets with it. */
    if (f->count < 1 || f->count > r->batch_size)
        return slot_bad(g, seq, "count is %u, expected 1..%u (batch_size)", f->count,
                        r->batch_size);
    /* epoch x per_epoch + batch == seq, without a division on the hot path. */
    if (f->batch >= per_epoch || __builtin_mul_overflow(f->epoch, per_epoch, &first) ||
        first + f->batch != seq) {
        if (per_epoch == 0)
            return slot_bad(g, seq, "batches_per_epoch is 0 in the ring's header");
        if (f->epoch != seq / per_epoch)
            return slot_bad(g, seq, "epoch is %llu, expected %llu (%llu batches per epoch)",
                            (unsigned long long)f->epoch, (unsigned long long)(seq / per_epoch),
                            (unsigned long long)per_epoch);
        return slot_bad(g, seq, "batch is %llu, expected %llu (%llu batches per epoch)",
                        (unsigned long long)f->batch, (unsigned long long)(seq % per_epoch),
                        (unsigned long long)per_epoch);
    }
    if (f->worker >= workers)
        return slot_bad(g, seq, "worker is %u, expected 0..%u", f->worker, workers - 1);
    if (failed) {
        /* The loader's code: a loader returns 0 or a negative code, and a
         * positive one was turned into BR_ELOADER by its worker. */
        if (f->error >= 0)
            return slot_bad(g, seq, "error is %d in a FAILED slot, expected a negative code",
                            (int)f->error);
        return 0;
    }
    if (f->size > r->slot_bytes)
        return slot_bad(g, seq, "size is %llu, expected 0..%llu (slot_bytes)",
                        (unsigned long long)f->size, (unsigned long long)r->slot_bytes);
    if (f->has_offsets > 1)
        return slot_bad(g, seq, "has_offsets is %u, expected 0 or 1", f->has_offsets);
    if (f->has_offsets) {
        /* The caller walks offsets[0..count] into data[0..size). */
        const uint64_t *offsets = br__slot_offsets(r, seq);
        uint64_t prev = BR_READ_ONCE(offsets[0]);
        for (uint32_t i = 1; i <= f->count; i++) {
            uint64_t cur = BR_READ_ONCE(offsets[i]);
            if (cur < prev)
                return slot_bad(g, seq, "offsets[%u] is %llu, below offsets[%u] = %llu "
                                "(offsets must rise)", i, (unsigned long long)cur, i - 1,
                                (unsigned long long)prev);
            prev = cur;
        }
        if (prev > f->size)
            return slot_bad(g, seq, "offsets[%u] is %llu, expected at most size %llu",
                            f->count, (unsigned long long)prev, (unsigned long long)f->size);
    }
    return 0;
}

/* A FAILED slot whose descriptor slot_check accepted. */
static int loader_failure(struct br_gen *g, uint64_t seq, const struct slot_fields *f)
{
    const uint64_t *ids = br__slot_ids(&g->ring, seq);
    char text[BR_ERR_CAP];
    /* One copy of the loader's text, checked in the copy: the shared one
     * may change under us. */
    memcpy(text, br__slot_err(&g->ring, seq), sizeof text);
    if (!memchr(text, '\0', sizeof text))
        return slot_bad(g, seq, "its error text is not NUL-terminated within %u bytes",
                        (unsigned)BR_ERR_CAP);
    br__fail(g->msg, 0, "loader failed on batch %llu (epoch %llu, %u samples, ids %llu..%llu): %s [%s]",
             (unsigned long long)seq, (unsigned long long)f->epoch, f->count,
             (unsigned long long)BR_READ_ONCE(ids[0]),
             (unsigned long long)BR_READ_ONCE(ids[f->count - 1]),
             text[0] ? text : br_strerror(f->error), br_err_name(f->error));
    return gen_stop(g, BR_ELOADER);
}

/* Loads `seq` inside br_next (workers = 0): the same slot protocol, with
 * the consumer as its only worker. The slot is FREE: we released it. */
static void load_inline(struct br_gen *g, uint64_t seq)
{
    struct br_slot_desc *d = br__slot_desc(&g->ring, seq);
    uint64_t t0 = br__now_ns();
    br__store_relaxed_u64(&g->ring.hdr->claim, seq + 1);
    br__store_relaxed_u32(&d->word, br__slot_word(br__slot_lap(&g->ring, seq), BR_LOADING));
    br__fill_slot(&g->ring, &g->ctx, &g->inline_env, seq);
    /* Loading inline is time the trainer waits for data: it is stall. */
    br__add_relaxed_u64(&g->ring.hdr->consumer_stall_ns, br__now_ns() - t0);
}

/* Waits until the slot of seq is READY or FAILED on its lap. Returns 0, or
 * -ETIMEDOUT, or a failure the supervisor recorded for this seq. */
/* The consumer must sleep for batch seq: it sleeps until half the ring is
 * ready (batch seq + nslots/2 - 1 is published) instead, and then takes
 * those batches without waiting. A consumer faster than its workers would
 * otherwise sleep and be woken for every batch: a FUTEX_WAKE for the
 * publishing worker (~6 us here) and a wake-up that preempts a worker, per
 * batch. Workers never wait for it: the other half of the ring is free.
 * The sleep is at most BR_GATHER_SLEEP_MS, after which seq is checked
 * again: a late batch in the half cannot hold back one that is ready by
 * more than that.
 * Returns whether it slept (false: sleep for seq itself). */
static bool sleep_for_half_ring(struct br_gen *g, uint64_t seq)
{
    uint64_t k = g->ring.nslots / 2, last;
    struct br_slot_desc *d;
    uint32_t w;

    if (k > g->ring.geo.end_seq - seq)
        k = g->ring.geo.end_seq - seq;
    if (k < 2)
        return false;
    last = seq + k - 1;
    d = br__slot_desc(&g->ring, last);
    w = br__load_acquire_u32(&d->word);
    if (w == br__slot_word(br__slot_lap(&g->ring, last), BR_READY) ||
        w == br__slot_word(br__slot_lap(&g->ring, last), BR_FAILED))
        return false;
    br__slot_sleep(d, w, BR_GATHER_SLEEP_MS);
    return true;
}

/*
 * The consumer's wait, seen from outside (batchring stat, br_ring_stat).
 * Before its first sleep for batch seq, wait_ready stores the time the wait
 * began in the header's consumer_wait_since; when the wait ends it stores
 * 0, and br_next then moves the cursor. The seq waited for is the cursor,
 * which the consumer stored (release) when it took the batch before, or
 * when it attached. A reader pairs the two like a seqlock:
 *
 *   consumer                           reader (br_ring_stat)
 *   cursor = s          (release)      t1 = since   (acquire)
 *   since = T           (release)      c  = cursor  (acquire)
 *   ... sleeps ...                     t2 = since   (relaxed, after c)
 *   since = 0           (relaxed)      waiting for c since t1 iff
 *   cursor = s + 1      (release)        t1 == t2 != 0
 *
 * t1 == T acquires the cursor store before it: c >= s. If c > s, the
 * reader acquired a cursor store that came after the clear of T, so t2
 * reads 0 or the start of a wait for a later batch, never T: that start
 * was taken after every wait for s had ended. (A br_next that retries s
 * after a timeout stores the same T again, but for the same s.) So t1 ==
 * t2 means c is the batch that wait is for: never a seq from one wait with
 * a time from another. The fast path (a ready batch) and a wait that ends
 * in the spin store nothing.
 */
static void wait_announce(struct br_gen *g, uint64_t seq, uint64_t t0)
{
    uint64_t since = g->timed_out_t0 && g->timed_out_seq == seq ? g->timed_out_t0 : t0;
    /* Release: pairs with the reader's acquire load of consumer_wait_since;
     * it then sees the cursor (seq) stored before. Never 0: that is "not
     * waiting". */
    br__store_release_u64(&g->ring.hdr->consumer_wait_since, since ? since : 1);
}

static int wait_ready(struct br_gen *g, uint64_t seq, uint32_t *word)
{
    struct br_ring_header *h = g->ring.hdr;
    struct br_slot_desc *d = br__slot_desc(&g->ring, seq);
    const uint64_t lap = br__slot_lap(&g->ring, seq);
    const uint32_t ready = br__slot_word(lap, BR_READY);
    const uint32_t failed = br__slot_word(lap, BR_FAILED);
    uint64_t t0, now, deadline, spin_ns;
    bool gathered = false, announced = false;
    uint32_t w;
    int rc = 0;

    /* Acquire pairs with the loader's publish (br__slot_publish): the
     * batch's data and descriptor are visible once we see READY. */
    w = br__load_acquire_u32(&d->word);
    if (w == ready || w == failed) {
        *word = w;
        return 0;
    }
    /* About to wait: any worker still asleep must start now. */
    br__kick_workers(&g->ring, INT_MAX);
    t0 = br__now_ns();
    deadline = g->timeout_ms < 0 ? UINT64_MAX : t0 + (uint64_t)g->timeout_ms * 1000000u;
    spin_ns = g->spin_adaptive ? BR_SPIN_NS : BR_SPIN_CROWDED_NS;
    if (g->spin_adaptive && 2 * g->wait_avg_ns > spin_ns && 2 * g->wait_avg_ns <= BR_SPIN_MAX_NS)
        spin_ns = 2 * g->wait_avg_ns;
    for (unsigned spins = 1; g->timeout_ms != 0; spins++) {
        br__cpu_relax();
        w = br__load_acquire_u32(&d->word);
        if (w == ready || w == failed)
            goto out;
        if (spins % 64 == 0 && br__now_ns() - t0 > spin_ns)
            break;
    }
    for (;;) {
        uint64_t left;
        br__kick_workers(&g->ring, INT_MAX);
        w = br__load_acquire_u32(&d->word);
        if (w == ready || w == failed)
            break;
        rc = br__sup_check(&g->sup, g->msg);
        if (!rc)
            rc = check_producer(g);
        if (rc)
            break;
        /* Acquire pairs with record_failure's release: code and text are
         * written before fail_seq. fail_seq only goes down, and only to a
         * batch nobody will ever load (so >= our cursor): once we see it
         * <= seq, nothing rewrites the text we copy (record_failure). */
        if (br__load_acquire_u64(&h->fail_seq) <= seq) {
            /* Bounded: the text lies in shared memory, its NUL included
             * only if no other writer damaged it. A code that is not a
             * failure still fails the wait. */
            int code = h->fail_code;
            snprintf(g->msg, sizeof g->msg, "%.*s", (int)sizeof h->fail_msg, h->fail_msg);
            if (!g->msg[0])
                br__fail(g->msg, 0, "the producer recorded a failure at batch %llu without a "
                         "message (code %d)", (unsigned long long)seq, code);
            rc = code < 0 ? code : BR_EWORKER;
            break;
        }
        now = br__now_ns();
        if (now >= deadline) {
            br__fail(g->msg, 0, "no batch within timeout_ms = %d (waiting for batch %llu)",
                     g->timeout_ms, (unsigned long long)seq);
            rc = -ETIMEDOUT;
            break;
        }
        left = (deadline - now + 999999u) / 1000000u;
        /* Past the spin, about to sleep: from now on the wait is visible. */
        if (!announced) {
            announced = true;
            wait_announce(g, seq, t0);
        }
        /* Once per wait: if the batch is still not ready after a sleep for
         * half the ring, the workers are slow, and a sleep until it is
         * published costs nothing next to their pace. */
        if (!gathered && (gathered = true, sleep_for_half_ring(g, seq)))
            continue;
        br__slot_sleep(d, w, left < BR_CONSUMER_SLICE_MS ? (int)left : BR_CONSUMER_SLICE_MS);
    }
out:
    /* Relaxed: br_next's release store of the cursor comes after it and
     * carries it to a reader (see wait_announce). After an error the cursor
     * stays; the word is simply 0 (not waiting) from here on. */
    if (announced)
        br__store_relaxed_u64(&h->consumer_wait_since, 0);
    /* A br_next that timed out is usually called again for the same batch:
     * that wait goes on from this one's start. */
    if (rc == -ETIMEDOUT && !(g->timed_out_t0 && g->timed_out_seq == seq)) {
        g->timed_out_seq = seq;
        g->timed_out_t0 = t0;
    }
    now = br__now_ns();
    /* An average over about 8 waits: it follows a change of pace quickly. */
    g->wait_avg_ns = g->wait_avg_ns - g->wait_avg_ns / 8 + (now - t0) / 8;
    br__add_relaxed_u64(&h->consumer_stall_ns, now - t0);
    *word = w;
    return rc;
}

static void release_held(struct br_gen *g)
{
    if (!g->holding)
        return;
    g->holding = false;
    br__slot_publish(br__slot_desc(&g->ring, g->held),
                     br__slot_word(br__slot_lap(&g->ring, g->held) + 1, BR_FREE));
    /* A deep ring: no wake-up here (workers sleep at our pace, and
     * wait_ready kicks them before we wait), so a ready batch costs no
     * syscall. A shallow one: wake sleepers once per half ring, so that a
     * release is a plain store and not a syscall per batch. */
    if (g->ring.nslots < BR_NAP_MIN_SLOTS && ++g->released >= g->kick_every) {
        g->released = 0;
        br__kick_workers(&g->ring, (int)g->kick_every);
    }
}

BR_API int br_next(br_gen *handle, br_batch *out)
{
    struct br_gen *g = gen_lookup(handle);
    struct br_ring_header *h;
    struct slot_fields f;
    uint64_t seq;
    uint32_t word;
    int rc;

    if (!g)
        return handle ? BR_ESTOPPED : -EINVAL;
    if (!out)
        return br__fail(g->msg, -EINVAL, "out is NULL: pass a br_batch to fill");
    if (g->role == ROLE_SERVE)
        return br__fail(g->msg, -EINVAL, "this generator serves ring %s: its batches are for "
                        "the process that attaches to it (br_attach)", g->name);
    if (g->state == GEN_STOPPED)
        return br__fail(g->msg, BR_ESTOPPED, "the generator is stopped after an earlier error: %s",
                        g->first_error);
    if (g->state == GEN_EOF)
        return BR_EOF;

    h = g->ring.hdr;
    release_held(g);
    seq = g->cursor;
    if (seq >= g->ring.geo.end_seq) {
        g->state = GEN_EOF;
        consumer_finished(g, BR_CONSUMER_EOF);
        return br__fail(g->msg, BR_EOF, "end of data: %llu epochs of %llu batches delivered",
                        (unsigned long long)g->ring.geo.epochs,
                        (unsigned long long)g->ring.geo.batches_per_epoch);
    }
    if (g->nworkers == 0)
        load_inline(g, seq);
    rc = wait_ready(g, seq, &word);
    if (rc == -ETIMEDOUT)
        return rc;
    if (rc)
        return gen_stop(g, rc);
    rc = slot_check(g, seq, (word & 3u) == BR_FAILED, &f);
    if (rc)
        return rc;
    if ((word & 3u) == BR_FAILED)
        return loader_failure(g, seq, &f);

    out->seq = seq;
    out->epoch = f.epoch;
    out->batch = f.batch;
    out->count = f.count;
    out->ids = br__slot_ids(&g->ring, seq);
    out->labels = br__slot_labels(&g->ring, seq);
    out->data = br__slot_data(&g->ring, seq);
    out->size = (size_t)f.size;
    out->offsets = f.has_offsets ? br__slot_offsets(&g->ring, seq) : NULL;
    g->holding = true;
    g->held = seq;
    g->cursor = seq + 1;
    /* Release: the supervisor (seq_done) and observers read the cursor. */
    br__store_release_u64(&h->cursor, g->cursor);
    /* Only this process writes these: a plain load and store, no locked
     * instruction on the hot path. */
    br__store_relaxed_u64(&h->consumer_batches, br__load_relaxed_u64(&h->consumer_batches) + 1);
    br__store_relaxed_u64(&h->consumer_bytes, br__load_relaxed_u64(&h->consumer_bytes) + f.size);
    return 0;
}

BR_API int br_close(br_gen *handle)
{
    struct br_gen *g;
    if (!gen_unregister(handle, &g))
        return 0;
    /* A consumer that detaches cleanly is done with its batch: the next
     * consumer starts after it. */
    if (g->role == ROLE_ATTACHED)
        release_held(g);
    gen_free(g);
    return 0;
}

BR_API const char *br_last_error(const br_gen *handle)
{
    const struct br_gen *g;
    if (!handle)
        return open_error;
    g = gen_lookup(handle);
    return g ? g->msg : "the generator is closed";
}

/* Whether a consumer holds its lock on the ring behind fd (a descriptor
 * other than the consumer's own). */
static bool consumer_alive(int fd)
{
    return br__ring_consumer_alive(fd) > 0;
}

BR_API int br_attach(br_gen **out, const char *name, int timeout_ms)
{
    char *msg = open_error;
    struct br_ring_header *h;
    struct br_gen *g;
    uint64_t mine, cursor;
    int rc;

    msg[0] = '\0';
    if (out)
        *out = NULL;
    if (!out)
        return br__fail(msg, -EINVAL, "out is NULL: pass the address of a br_gen *");
    if (timeout_ms < -1)
        return br__fail(msg, -EINVAL, "timeout_ms %d is invalid: use -1 (forever) or >= 0",
                        timeout_ms);
    g = calloc(1, sizeof *g);
    if (!g)
        return br__fail(msg, -ENOMEM, "out of memory for the generator");
    g->role = ROLE_ATTACHED;
    g->timeout_ms = timeout_ms;
    /* Checks the producer's lock and takes the consumer's (one consumer at
     * a time; a dead one's lock went with it) before it faults anything in. */
    rc = br__ring_attach(&g->ring, name, msg);
    if (rc)
        goto fail;
    snprintf(g->name, sizeof g->name, "%s", name);
    h = g->ring.hdr;
    g->producer_pid = g->ring.geo.owner_pid;
    g->producer_start = g->ring.geo.owner_start;

    /* The consumer word is for display (stat, serve's messages): our pid
     * here and the low half of our start time. Release pairs with the
     * acquire loads in br_ring_stat, br_consumer_pid and br__ring_attach. */
    mine = (br__proc_start_time(getpid()) << 32) | (uint32_t)getpid();
    br__store_release_u64(&h->consumer, mine);
    g->consumer_id = mine;

    /* Resume at the first batch not released: a consumer that died holding
     * batch cursor - 1 left its slot READY (or FAILED) on that lap. */
    cursor = br__load_acquire_u64(&h->cursor);
    if (cursor > g->ring.geo.start_seq) {
        uint64_t last = cursor - 1, lap = br__slot_lap(&g->ring, last);
        uint32_t w = br__load_acquire_u32(&br__slot_desc(&g->ring, last)->word);
        if (w == br__slot_word(lap, BR_READY) || w == br__slot_word(lap, BR_FAILED))
            cursor = last;
    }
    g->cursor = cursor;
    /* A consumer that died in a wait left its start behind. Cleared before
     * the cursor store (release), which carries it to readers; until then
     * a reader that sees us attached may still see that old wait. */
    br__store_relaxed_u64(&h->consumer_wait_since, 0);
    br__store_release_u64(&h->cursor, cursor);
    br__store_relaxed_u32(&h->consumer_done, BR_CONSUMER_RUNNING);
    g->nworkers = g->ring.geo.nworkers;
    g->kick_every = g->ring.nslots / 2 ? g->ring.nslots / 2 : 1;
    g->spin_adaptive = g->ring.geo.nworkers < online_cpus();
    g->opened_ns = br__now_ns();
    rc = gen_register(g, msg);
    if (rc)
        goto fail;
    br__add_seq_cst_u32(&h->consumer_events, 1);
    syscall(SYS_futex, (uint32_t *)&h->consumer_events, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
    *out = (br_gen *)(uintptr_t)g->handle;
    return 0;
fail:
    gen_free(g);
    return rc;
}

BR_API int br_serve_wait(br_gen *handle, int timeout_ms)
{
    struct br_gen *g = gen_lookup(handle);
    struct br_ring_header *h;
    uint64_t deadline;

    if (!g)
        return handle ? BR_ESTOPPED : -EINVAL;
    if (g->role != ROLE_SERVE)
        return br__fail(g->msg, -EINVAL, "br_serve_wait is for a generator opened with "
                        "opt.name");
    h = g->ring.hdr;
    deadline = timeout_ms < 0 ? UINT64_MAX : br__now_ns() + (uint64_t)timeout_ms * 1000000u;
    for (;;) {
        uint32_t events = br__load_acquire_u32(&h->consumer_events);
        uint32_t done = br__load_acquire_u32(&h->consumer_done);
        uint64_t consumer = br__load_acquire_u64(&h->consumer);
        uint64_t now;
        int rc;

        if (done == BR_CONSUMER_EOF)
            return 0;
        if (done == BR_CONSUMER_FAILED)
            return br__fail(g->msg, BR_ESTOPPED, "the consumer of ring %s stopped on an error "
                            "(it has the message)", g->name);
        rc = br__sup_check(&g->sup, g->msg);
        if (rc)
            return rc;
        /* A consumer that died leaves its word (its lock went with it);
         * clear the word for display. */
        if (consumer && !consumer_alive(g->ring.owner_fd))
            br__cas_acq_rel_u64(&h->consumer, &consumer, 0);
        now = br__now_ns();
        if (now >= deadline)
            return br__fail(g->msg, -ETIMEDOUT, "ring %s still being served", g->name);
        {
            uint64_t left = deadline - now;
            struct timespec slice = {0, 100 * 1000000L};
            if (left < 100u * 1000000u)
                slice.tv_nsec = (long)left;
            syscall(SYS_futex, (uint32_t *)&h->consumer_events, FUTEX_WAIT, events, &slice,
                    NULL, 0);
        }
    }
}

BR_API int br_consumer_pid(const br_gen *handle, int32_t *pid)
{
    const struct br_gen *g = gen_lookup(handle);
    uint64_t id;
    if (!g || !pid)
        return -EINVAL;
    /* Pairs with br_attach's release store of the word. */
    id = g->ring.hdr ? br__load_acquire_u64(&g->ring.hdr->consumer) : 0;
    /* Our own lock is invisible to our own test: an attached generator is
     * its ring's consumer while it holds its claim. */
    if (g->role == ROLE_ATTACHED)
        *pid = g->consumer_id ? (int32_t)getpid() : 0;
    else
        *pid = id && g->ring.has_owner_fd && consumer_alive(g->ring.owner_fd)
                   ? (int32_t)(id & 0xffffffffu)
                   : 0;
    return 0;
}

/* Maps a named ring read-only for an observer: no claim, no prefault. */
static int map_for_reading(const char *name, struct br_ring *r, char *msg)
{
    struct stat st;
    void *base;
    int fd, rc = br__ring_check_name(name, msg);
    if (rc)
        return rc;
    /* Never blocks (a FIFO at the name is refused), never follows a link. */
    fd = br__ring_open(name, O_RDONLY, &st, msg);
    if (fd < 0)
        return fd;
    if ((uint64_t)st.st_size < sizeof(struct br_ring_header)) {
        close(fd);
        return br__fail(msg, BR_EBADRING, "%s is not a batchring ring (too small)", name);
    }
    base = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) {
        rc = -errno;
        close(fd);
        return br__fail(msg, rc, "mmap of ring %s: %s", name, strerror(-rc));
    }
    rc = br__ring_check_bind(r, base, (size_t)st.st_size, msg);
    if (rc) {
        munmap(base, (size_t)st.st_size);
        close(fd);
        return rc;
    }
    /* Kept until br__ring_unmap: the producer's and consumer's locks are
     * tested on it. */
    r->owner_fd = fd;
    r->has_owner_fd = true;
    return 0;
}

/* Whether the attached consumer waits in br_next right now, for which batch
 * and since when: the reader's side of the protocol at wait_announce. */
static void consumer_waiting(const struct br_ring_header *h, br_ring_status *out)
{
    out->consumer_waiting_seq = BR_NOT_WAITING;
    out->consumer_waiting_ns = 0;
    /* A dead consumer's word says nothing about now. */
    if (!out->consumer_pid)
        return;
    /* A retry only when a wait ended and another began between our loads.
     * Waits are at least a spin apart, so a few tries settle; a consumer
     * that ends a wait every time we look is reported as not waiting. */
    for (int tries = 0; tries < 4; tries++) {
        /* Acquire: pairs with wait_announce's release; the cursor we load
         * next is at least the seq of that wait. */
        uint64_t since = br__load_acquire_u64(&h->consumer_wait_since), seq, now;
        if (!since)
            return;
        /* Acquire: pairs with br_next's release of the cursor; if it moved
         * past the wait above, the load below sees that wait's end. */
        seq = br__load_acquire_u64(&h->cursor);
        if (br__load_relaxed_u64(&h->consumer_wait_since) != since)
            continue;
        now = br__now_ns();
        out->consumer_waiting_seq = seq;
        out->consumer_waiting_ns = now > since ? now - since : 0;
        return;
    }
}

BR_API int br_ring_stat(const char *name, br_ring_status *out, br_worker_stats *workers,
                        uint32_t workers_cap)
{
    char *msg = open_error;
    struct br_ring r = {0};
    const struct br_ring_header *h;
    uint64_t consumer;
    int rc;

    msg[0] = '\0';
    if (!out)
        return br__fail(msg, -EINVAL, "out is NULL");
    rc = map_for_reading(name, &r, msg);
    if (rc)
        return rc;
    h = r.hdr;
    memset(out, 0, sizeof *out);
    out->owner_pid = r.geo.owner_pid;
    /* The locks, not the pids: a producer or consumer in another PID
     * namespace is alive too. */
    out->owner_alive = br__ring_producer_alive(r.owner_fd) > 0;
    out->owner_uid = r.geo.owner_uid;
    /* Pairs with br_attach's release store of the word. */
    consumer = br__load_acquire_u64(&h->consumer);
    out->consumer_pid =
        consumer && consumer_alive(r.owner_fd) ? (int32_t)(consumer & 0xffffffffu) : 0;
    out->slots = r.geo.nslots;
    out->workers = r.geo.nworkers;
    out->batch_size = r.geo.batch_size;
    out->slot_bytes = r.geo.slot_bytes;
    out->total_bytes = r.geo.total_bytes;
    out->n_ids = r.geo.n_ids;
    out->epochs = r.geo.epochs;
    out->batches_per_epoch = r.geo.batches_per_epoch;
    out->end_seq = r.geo.end_seq;
    out->claimed = br__load_acquire_u64(&h->claim);
    out->cursor = br__load_acquire_u64(&h->cursor);
    out->consumer_batches = br__load_relaxed_u64(&h->consumer_batches);
    out->consumer_bytes = br__load_relaxed_u64(&h->consumer_bytes);
    out->consumer_stall_ns = br__load_relaxed_u64(&h->consumer_stall_ns);
    out->restarts = br__load_relaxed_u32(&h->restarts);
    out->finished = br__load_relaxed_u32(&h->consumer_done);
    consumer_waiting(h, out);
    for (uint32_t i = 0; i < r.nslots; i++) {
        switch (br__load_relaxed_u32(&r.desc[i].word) & 3u) {
        case BR_FREE: out->slots_free++; break;
        case BR_LOADING: out->slots_loading++; break;
        case BR_READY: out->slots_ready++; break;
        default: out->slots_failed++; break;
        }
    }
    for (uint32_t i = 0; workers && i < r.geo.nworkers && i < workers_cap; i++) {
        const struct br_worker_rec *rec = &r.workers[i];
        /* A stale ring's workers died with their producer (their parent-
         * death signal): their recorded pids name nothing now. */
        workers[i].pid = out->owner_alive ? br__load_relaxed_i32(&rec->pid) : 0;
        workers[i].restarts = br__load_relaxed_u32(&rec->restarts);
        workers[i].batches = br__load_relaxed_u64(&rec->batches);
        workers[i].bytes = br__load_relaxed_u64(&rec->bytes);
        workers[i].load_ns = br__load_relaxed_u64(&rec->load_ns);
        workers[i].slot_wait_ns = br__load_relaxed_u64(&rec->slot_wait_ns);
        workers[i].io_backend = br__load_relaxed_u32(&rec->io_backend);
        workers[i].io_reads = br__load_relaxed_u64(&rec->io_reads);
        workers[i].io_bytes = br__load_relaxed_u64(&rec->io_bytes);
        workers[i].io_copies = br__load_relaxed_u64(&rec->io_copies);
    }
    br__ring_unmap(&r);
    return 0;
}

BR_API int br_ring_remove_stale(const char *name)
{
    char *msg = open_error;
    br_ring_status st;
    pid_t owner;
    /* Validates first: only a batchring ring of ours is ever removed. */
    int rc = br_ring_stat(name, &st, NULL, 0);
    if (rc)
        return rc;
    return br__ring_unlink_stale(name, &owner, msg);
}

BR_API int br_checkpoint(const br_gen *handle, uint64_t *next_seq)
{
    const struct br_gen *g = gen_lookup(handle);
    if (!g || !next_seq)
        return -EINVAL;
    *next_seq = g->cursor;
    return 0;
}

BR_API int br_stats_get(const br_gen *handle, br_stats *out)
{
    const struct br_gen *g = gen_lookup(handle);
    const struct br_ring_header *h;
    if (!g || !out)
        return -EINVAL;
    h = g->ring.hdr;
    memset(out, 0, sizeof *out);
    out->batches = br__load_relaxed_u64(&h->consumer_batches);
    out->bytes = br__load_relaxed_u64(&h->consumer_bytes);
    out->stall_ns = br__load_relaxed_u64(&h->consumer_stall_ns);
    out->elapsed_ns = br__now_ns() - g->opened_ns;
    out->workers = g->nworkers;
    out->slots = g->ring.nslots;
    out->restarts = br__load_relaxed_u32(&h->restarts);
    out->loaded = br__load_relaxed_u64(&g->inline_rec.batches);
    out->load_ns = br__load_relaxed_u64(&g->inline_rec.load_ns);
    for (uint32_t i = 0; i < g->nworkers; i++) {
        const struct br_worker_rec *rec = &g->ring.workers[i];
        out->loaded += br__load_relaxed_u64(&rec->batches);
        out->load_ns += br__load_relaxed_u64(&rec->load_ns);
        out->slot_wait_ns += br__load_relaxed_u64(&rec->slot_wait_ns);
    }
    return 0;
}

BR_API int br_worker_stats_get(const br_gen *handle, uint32_t i, br_worker_stats *out)
{
    const struct br_gen *g = gen_lookup(handle);
    const struct br_worker_rec *rec;
    if (!g || !out || i >= g->nworkers)
        return -EINVAL;
    rec = &g->ring.workers[i];
    out->pid = br__load_relaxed_i32(&rec->pid);
    out->restarts = br__load_relaxed_u32(&rec->restarts);
    out->batches = br__load_relaxed_u64(&rec->batches);
    out->bytes = br__load_relaxed_u64(&rec->bytes);
    out->load_ns = br__load_relaxed_u64(&rec->load_ns);
    out->slot_wait_ns = br__load_relaxed_u64(&rec->slot_wait_ns);
    out->io_backend = br__load_relaxed_u32(&rec->io_backend);
    out->io_reads = br__load_relaxed_u64(&rec->io_reads);
    out->io_bytes = br__load_relaxed_u64(&rec->io_bytes);
    out->io_copies = br__load_relaxed_u64(&rec->io_copies);
    return 0;
}
