/* SPDX-License-Identifier: MIT */
/*
 * The seven cases of the performance suite, each a subject beside a
 * baseline from the same call:
 *
 *   floor       two processes bounce one cache line in MAP_SHARED memory;
 *               half a round trip is the least a cross-process handoff costs
 *   handoff     br_next when the next slot is already READY   vs the floor
 *   efficiency  bytes/s the consumer receives                  vs the same
 *               loader writing into private memory in a plain loop
 *   seed        batches/s                                      vs the same
 *               loader in a forked child that pipes each batch to us
 *   scaling     batches/s with a loader that sleeps 2 ms       vs workers x 500
 *   startup     br_open to the first batch                     vs prefaulting
 *               a ring of the same size once
 *   overlap     batches/s with a CPU-bound loader and a trainer step of the
 *               same cost                                      vs 1 / max(load, step)
 *   records-random / records-seq
 *               batches/s of the built-in records dataset read through the
 *               workers' io_uring                               vs the same
 *               reads in a pread loop (and in a bare liburing loop)
 *
 * Fairness rules: a baseline does the same work per unit as its subject
 * (the same loader function, the same bytes) for the same number of
 * units, in chunks interleaved with the subject's (this machine is shared:
 * what slows one should slow the other); figures are means over the timed
 * units; nothing is tuned per case to help a number.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <liburing.h>

#include <batchring.h>

#include "../ring/atomics.h"
#include "cases.h"
#ifdef BR_PERF_INTERNAL
#include "../producer/schedule.h"
#include "../ring/error.h"
#endif

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define KIB (UINT64_C(1) << 10)
#define MIB (UINT64_C(1) << 20)

/* One sample of the synthetic dataset; a batch is batch_bytes / RECORD_BYTES
 * samples, so the ring's per-batch metadata (ids) grows with the batch as
 * it would for real data. */
#define RECORD_BYTES (4 * KIB)
/* Length of the subject's part of one loop iteration of a throughput case:
 * long enough that what each iteration starts with (a refilled ring, a
 * worker waking up, caches and TLBs the baseline's chunk disturbed) is a
 * small part of it; 2 ms cost batchring 5-10% at 1 MiB, and 10 ms still
 * cost the records cases 20-30%: their workers copy from a mapping whose
 * page-table walks the baseline's chunk had pushed out of the caches. */
#define STEP_NS UINT64_C(50000000)
/* Untimed running before a subject's loop: every worker forked and mapped,
 * the ring in its steady state. */
#define WARMUP_NS UINT64_C(30000000)
/* The scaling case's loader: a remote read's latency, no CPU. */
#define SLEEP_LOADER_NS 2000000L
/* Handoff: as many slots as fit in this much ring, up to HANDOFF_MAX_SLOTS,
 * so that a burst of ready batches is long. */
#define HANDOFF_RING_BYTES (256 * MIB)
#define HANDOFF_MAX_SLOTS 1024u
/* Any wait for the ring that lasts this long means something is broken. */
#define STUCK_NS UINT64_C(10000000000)

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int fail(struct bench_result *out, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct bench_result *out, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->error, sizeof out->error, fmt, ap);
    va_end(ap);
    return code;
}

static void add_figure(struct bench_result *out, const char *name, double value)
{
    if (out->n_figures < BENCH_MAX_FIGURES)
        out->figures[out->n_figures++] = (struct bench_figure){name, value};
}

static uint64_t max_u64(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}

static uint64_t page_round(uint64_t bytes)
{
    const uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
    return (bytes + page - 1) / page * page;
}

/* Private, page-aligned memory with every page already faulted in, so a
 * baseline pays no first-touch either. NULL on failure. */
static void *private_buffer(uint64_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE,
                   -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static void free_buffer(void *p, uint64_t bytes)
{
    if (p)
        munmap(p, bytes);
}

/* A pattern that no page of zeroes matches, so a copy really moves data. */
static void fill_pattern(uint8_t *p, uint64_t bytes)
{
    uint64_t x = 0x243f6a8885a308d3u;
    for (uint64_t i = 0; i + 8 <= bytes; i += 8) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        memcpy(p + i, &x, 8);
    }
}

/* ---- loaders (run in workers, and in the baselines in this process) ---- */

struct loader_cfg {
    const uint8_t *src; /* batch_bytes of source data */
    uint64_t batch_bytes;
};

static int load_nothing(br_job *job, void *user)
{
    (void)user;
    job->size = 0;
    return 0;
}

static int load_copy(br_job *job, void *user)
{
    const struct loader_cfg *cfg = user;
    memcpy(job->out, cfg->src, cfg->batch_bytes);
    job->size = cfg->batch_bytes;
    return 0;
}

static int load_sleep(br_job *job, void *user)
{
    struct timespec left = {0, SLEEP_LOADER_NS};
    (void)user;
    while (nanosleep(&left, &left) < 0 && errno == EINTR)
        ;
    job->size = 0;
    return 0;
}

/* One round of a dependent multiply-xorshift: ~6 cycles a word whatever
 * the vector units, so that the loader's and the step's work are CPU, not
 * memory bandwidth, and two of them on two cores do not slow each other. */
static inline uint64_t mix_word(uint64_t x, uint64_t w)
{
    x = (x ^ w) * 0x9e3779b97f4a7c15u;
    return x ^ (x >> 29);
}

/* The overlap case's loader: copy the batch, then checksum each record
 * (a decode's worth of CPU per sample) and stamp the sum in its last word,
 * so that the work cannot be optimised away. */
static int load_checksum(br_job *job, void *user)
{
    const struct loader_cfg *cfg = user;
    const uint64_t words = (cfg->batch_bytes < RECORD_BYTES ? cfg->batch_bytes : RECORD_BYTES) / 8;
    uint8_t *out = job->out;
    memcpy(out, cfg->src, cfg->batch_bytes);
    for (uint64_t off = 0; off + words * 8 <= cfg->batch_bytes; off += words * 8) {
        uint64_t *rec = (uint64_t *)(out + off), sum = 0;
        for (uint64_t i = 0; i + 1 < words; i++)
            sum = mix_word(sum, rec[i]);
        rec[words - 1] = sum;
    }
    job->size = cfg->batch_bytes;
    return 0;
}

/* The overlap case's trainer step: `work` rounds of the same mixing over
 * the batch's words, cycling. Calibrated so that it costs what a load does. */
static uint64_t training_step(const uint64_t *w, uint64_t n_words, uint64_t work)
{
    uint64_t x = 0, i = 0;
    while (work--) {
        x = mix_word(x, w[i]);
        if (++i == n_words)
            i = 0;
    }
    return x;
}

/* Results of work the compiler must not drop. */
static volatile uint64_t sink;

/* A job as a worker would get it, aimed at private memory. */
static br_job private_job(void *out, uint64_t cap, char *err)
{
    static const uint64_t id0 = 0;
    return (br_job){
        .ids = &id0, .count = 1, .out = out, .cap = (size_t)cap, .err = err, .err_cap = BR_ERR_CAP};
}

/* ---- generators ---- */

static uint32_t records_per_batch(uint64_t batch_bytes)
{
    uint64_t n = batch_bytes / RECORD_BYTES;
    return n ? (uint32_t)n : 1;
}

/* Opens a generator over a synthetic dataset with room for every worker
 * (batch_size x workers <= n_ids, so no worker is lowered away). slots = 0
 * means the library's default. */
static int open_generator(br_gen **g, br_loader_fn load, void *user, uint64_t batch_bytes,
                          uint32_t workers, uint32_t slots, struct bench_result *out)
{
    const uint32_t batch_size = records_per_batch(batch_bytes);
    const size_t n_ids = (size_t)batch_size * (workers ? workers : 1) * 2;
    uint64_t *ids = malloc(n_ids * sizeof *ids);
    br_options opt;
    int rc;

    if (!ids)
        return fail(out, -ENOMEM, "out of memory for %zu sample ids", n_ids);
    for (size_t i = 0; i < n_ids; i++)
        ids[i] = i;
    br_options_init(&opt);
    opt.batch_size = batch_size;
    opt.workers = workers;
    opt.slot_bytes = (size_t)batch_bytes;
    if (slots)
        opt.slots = slots;
    rc = br_open(g, load, user, ids, NULL, n_ids, &opt);
    free(ids);
    if (rc)
        return fail(out, rc, "br_open (%u workers, %llu-byte batches): %s: %s", workers,
                    (unsigned long long)batch_bytes, br_err_name(rc), br_last_error(NULL));
    return 0;
}

static int next_batch(br_gen *g, br_batch *b, struct bench_result *out)
{
    int rc = br_next(g, b);
    if (rc)
        return fail(out, rc, "br_next: %s: %s", br_err_name(rc), br_last_error(g));
    return 0;
}

/* The trainer's work on each batch, if any. */
struct trainer {
    uint64_t work; /* rounds of training_step; 0: the trainer does nothing */
};

static void train(const struct trainer *t, const br_batch *b)
{
    if (t && t->work)
        sink = training_step(b->data, b->size / 8, t->work);
}

static int consume(br_gen *g, uint64_t n, const struct trainer *t, uint64_t *bytes,
                   struct bench_result *out)
{
    br_batch b;
    for (uint64_t i = 0; i < n; i++) {
        int rc = next_batch(g, &b, out);
        if (rc)
            return rc;
        train(t, &b);
        if (bytes)
            *bytes += b.size;
    }
    return 0;
}

/* Waits until no worker has finished a batch for `quiet_ns`: the ring is
 * as full as it gets and every worker sleeps, so a baseline that runs now
 * has the machine to itself. */
static int wait_workers_quiet(br_gen *g, uint64_t quiet_ns, struct bench_result *out)
{
    const struct timespec nap = {0, 50000};
    const uint64_t t0 = now_ns();
    uint64_t last = UINT64_MAX, since = t0;
    br_stats st;
    for (;;) {
        uint64_t t = now_ns();
        br_stats_get(g, &st);
        if (st.loaded != last)
            last = st.loaded, since = t;
        else if (t - since >= quiet_ns)
            return 0;
        if (t - t0 > STUCK_NS)
            return fail(out, -ETIMEDOUT, "the workers did not settle in %llu s",
                        (unsigned long long)(STUCK_NS / 1000000000u));
        nanosleep(&nap, NULL);
    }
}

/* A baseline run in chunks between the subject's: `run` does n units. */
struct baseline {
    int (*run)(void *ctx, uint64_t n);
    void *ctx;
    uint64_t units;
    uint64_t ns;
};

static double baseline_ns_per_unit(const struct baseline *b)
{
    return (double)b->ns / (double)max_u64(1, b->units);
}

/*
 * The consumer side of a throughput case. An untimed warm-up reaches the
 * steady state (every worker forked and mapped) and sizes an iteration to
 * k batches, about STEP_NS. Then each iteration:
 *
 *   - without baselines: k batches, timed end to end without gaps;
 *   - with baselines: the batches the workers got ahead with are taken
 *     untimed, then `workers` more (so each worker is loading again),
 *     then k timed batches; then, once the workers are idle on a full
 *     ring, for each baseline one unit untimed and k units timed.
 *
 * Interleaving puts the subject and its baselines in the same few
 * milliseconds of a noisy machine; draining first means the subject's
 * clock never starts on batches loaded while it was not running.
 */
static int run_pipeline(struct bench_loop *loop, br_gen *g, uint32_t workers,
                        const struct trainer *t, struct baseline *base, unsigned n_base,
                        struct bench_result *out)
{
    uint64_t t0 = now_ns(), n = 0, prev, k, unit_ns;
    int rc;

    while (n < 8u * max_u64(1, workers) || now_ns() - t0 < WARMUP_NS) {
        if ((rc = consume(g, 1, t, NULL, out)))
            return rc;
        n++;
    }
    unit_ns = max_u64(1, (now_ns() - t0) / n);
    k = max_u64(1, STEP_NS / unit_ns);
    prev = now_ns();
    while (loop->keep_running(loop)) {
        uint64_t bytes = 0, t1;
        if (n_base) {
            br_stats st;
            br_stats_get(g, &st);
            if ((rc = consume(g, st.loaded - st.batches + workers, t, NULL, out)))
                return rc;
            prev = now_ns();
        }
        if ((rc = consume(g, k, t, &bytes, out)))
            return rc;
        t1 = now_ns();
        loop->iteration_done(loop, t1 - prev, k);
        out->units += k;
        out->bytes += bytes;
        out->seconds += (double)(t1 - prev) / 1e9;
        prev = t1;
        if (!n_base)
            continue;
        /* Idle for two loads' time: a worker loads a batch in about
         * workers x unit_ns. */
        if ((rc = wait_workers_quiet(g, 100000 + 2 * max_u64(1, workers) * unit_ns, out)))
            return rc;
        for (unsigned i = 0; i < n_base; i++) {
            uint64_t b0;
            /* One unit untimed, as the subject's clock starts after
             * untimed batches: both start with their data in cache. */
            if ((rc = base[i].run(base[i].ctx, 1)))
                return rc;
            b0 = now_ns();
            if ((rc = base[i].run(base[i].ctx, k)))
                return rc;
            base[i].ns += now_ns() - b0;
            base[i].units += k;
        }
    }
    return 0;
}

/* A loader called in a plain loop into private memory. */
struct private_loader {
    br_loader_fn load;
    void *user;
    br_job job;
    const struct trainer *trainer; /* when set, a step after each load */
};

static int private_loads(void *ctx, uint64_t n)
{
    struct private_loader *pl = ctx;
    for (uint64_t i = 0; i < n; i++) {
        pl->job.seq = i;
        pl->job.size = 0;
        int rc = pl->load(&pl->job, pl->user);
        if (rc)
            return rc;
        if (pl->trainer)
            sink = training_step(pl->job.out, pl->job.size / 8, pl->trainer->work);
    }
    return 0;
}

/* ---- floor: one cache line bounced between two processes ---- */

/* The ball is a 32-bit futex word so that the child can park on it
 * between chunks: a spinning child would take a core from the workers of
 * the case whose baseline the floor is. */
struct bounce_lines {
    _Alignas(64) _Atomic uint32_t ball; /* odd: the child's turn, even: ours */
    _Alignas(64) _Atomic uint32_t park; /* the child sleeps instead of spinning */
    _Atomic uint32_t stop;
};

struct bouncer {
    struct bounce_lines *lines; /* in MAP_SHARED memory */
    pid_t child;
    uint32_t ball;
};

static long futex_word(_Atomic uint32_t *word, int op, uint32_t val)
{
    /* Not private: the word is shared between two processes. */
    return syscall(SYS_futex, (uint32_t *)word, op, val, NULL, NULL, 0);
}

static _Noreturn void bounce_child(struct bounce_lines *l, pid_t parent)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(0);
    for (;;) {
        /* Acquire pairs with the parent's release of an odd ball (and
         * makes its earlier store to `park` visible). */
        uint32_t v = br__load_acquire_u32(&l->ball);
        if (v & 1) {
            /* Release pairs with the parent's acquire load of the reply. */
            br__store_release_u32(&l->ball, v + 1);
            continue;
        }
        if (br__load_relaxed_u32(&l->stop))
            _exit(0);
        if (br__load_relaxed_u32(&l->park))
            futex_word(&l->ball, FUTEX_WAIT, v); /* returns when the ball moved */
        else
            br__cpu_relax();
    }
}

static int bouncer_start(struct bouncer *b, struct bench_result *out)
{
    pid_t parent = getpid();
    memset(b, 0, sizeof *b);
    b->lines =
        mmap(NULL, sizeof *b->lines, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (b->lines == MAP_FAILED) {
        b->lines = NULL;
        return fail(out, -errno, "mmap of the shared cache line: %s", strerror(errno));
    }
    br__store_relaxed_u32(&b->lines->park, 1);
    fflush(NULL);
    b->child = fork();
    if (b->child < 0) {
        int e = errno;
        munmap(b->lines, sizeof *b->lines);
        return fail(out, -e, "fork: %s", strerror(e));
    }
    if (b->child == 0)
        bounce_child(b->lines, parent);
    return 0;
}

/* n round trips; each is two handoffs. */
static void bouncer_round_trips(struct bouncer *b, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++) {
        uint32_t serve = b->ball + 1;
        /* Release/acquire as in a real handoff: the ball carries data. */
        br__store_release_u32(&b->lines->ball, serve);
        while (br__load_acquire_u32(&b->lines->ball) != serve + 1)
            br__cpu_relax();
        b->ball = serve + 1;
    }
}

/* Wakes the child and gets both sides spinning with the line warm. */
static void bouncer_unpark(struct bouncer *b)
{
    br__store_relaxed_u32(&b->lines->park, 0);
    br__store_release_u32(&b->lines->ball, b->ball + 1);
    futex_word(&b->lines->ball, FUTEX_WAKE, 1);
    while (br__load_acquire_u32(&b->lines->ball) != b->ball + 2)
        br__cpu_relax();
    b->ball += 2;
    bouncer_round_trips(b, 2000);
}

static void bouncer_park(struct bouncer *b)
{
    br__store_relaxed_u32(&b->lines->park, 1);
}

static void bouncer_stop(struct bouncer *b)
{
    if (b->child > 0) {
        br__store_relaxed_u32(&b->lines->stop, 1);
        /* Moves the ball, so a parked child wakes and sees stop. */
        br__store_release_u32(&b->lines->ball, b->ball + 2);
        futex_word(&b->lines->ball, FUTEX_WAKE, 1);
        while (waitpid(b->child, NULL, 0) < 0 && errno == EINTR)
            ;
    }
    if (b->lines)
        munmap(b->lines, sizeof *b->lines);
    memset(b, 0, sizeof *b);
}

/* Round trips that take about ns_target, measured on a warm line. */
static uint64_t bouncer_calibrate(struct bouncer *b, uint64_t ns_target)
{
    uint64_t t0, n = 2000;
    bouncer_unpark(b);
    bouncer_round_trips(b, 20000);
    t0 = now_ns();
    bouncer_round_trips(b, n);
    n = max_u64(1, ns_target * n / max_u64(1, now_ns() - t0));
    bouncer_park(b);
    return n;
}

/* One timed chunk of k round trips; returns its ns. */
static uint64_t bouncer_chunk(struct bouncer *b, uint64_t k)
{
    uint64_t t0, ns;
    bouncer_unpark(b);
    t0 = now_ns();
    bouncer_round_trips(b, k);
    ns = now_ns() - t0;
    bouncer_park(b);
    return ns;
}

static int floor_run(struct bench_loop *loop, const struct bench_params *p,
                     struct bench_result *out)
{
    struct bouncer b;
    uint64_t k, ns = 0;
    int rc;
    (void)p;

    if ((rc = bouncer_start(&b, out)))
        return rc;
    k = bouncer_calibrate(&b, STEP_NS / 2);
    while (loop->keep_running(loop)) {
        uint64_t t = bouncer_chunk(&b, k);
        loop->iteration_done(loop, t, 2 * k);
        out->units += 2 * k;
        ns += t;
    }
    bouncer_stop(&b);
    out->seconds = (double)ns / 1e9;
    out->value = (double)ns / (double)max_u64(1, out->units);
    out->baseline = NAN;
    out->ratio = NAN;
    add_figure(out, "round_trip_ns", 2 * out->value);
    return 0;
}

/* ---- handoff: br_next on a ready slot, beside the floor ---- */

/* Waits until the workers have filled every slot the consumer does not
 * hold, so that each br_next of the next burst finds its batch READY. */
static int wait_ring_full(br_gen *g, uint32_t slots, struct bench_result *out)
{
    const struct timespec nap = {0, 20000};
    const uint64_t t0 = now_ns();
    br_stats st;
    for (;;) {
        br_stats_get(g, &st);
        if (st.loaded >= st.batches + slots - 1)
            break;
        if (now_ns() - t0 > STUCK_NS)
            return fail(out, -ETIMEDOUT, "the workers did not fill the ring in %llu s",
                        (unsigned long long)(STUCK_NS / 1000000000u));
        nanosleep(&nap, NULL);
    }
    /* A worker counts its batch just before it publishes it: give the
     * last one time to reach READY. */
    nanosleep(&nap, NULL);
    return 0;
}

static int handoff_run(struct bench_loop *loop, const struct bench_params *p,
                       struct bench_result *out)
{
    uint64_t slots64 = HANDOFF_RING_BYTES / page_round(p->batch_bytes), ns = 0, floor_ns = 0;
    uint64_t floor_k, floor_units = 0;
    uint32_t slots, burst;
    struct bouncer bouncer;
    br_gen *g = NULL;
    br_batch b;
    int rc;

    if (p->workers == 0)
        return fail(out, -EINVAL, "the handoff case needs at least one worker to fill the ring");
    slots = (uint32_t)(slots64 < 2 ? 2 : slots64 > HANDOFF_MAX_SLOTS ? HANDOFF_MAX_SLOTS : slots64);
    burst = slots - 1;
    if ((rc = bouncer_start(&bouncer, out)))
        return rc;
    /* As many round trips per floor chunk as handoffs per burst. */
    floor_k = (burst + 1) / 2;
    if ((rc = open_generator(&g, load_nothing, NULL, p->batch_bytes, p->workers, slots, out)))
        goto done;
    /* Hold one batch, as a trainer always does between calls. */
    if ((rc = next_batch(g, &b, out)))
        goto done;
    while (loop->keep_running(loop)) {
        uint64_t t0, t1;
        if ((rc = wait_ring_full(g, slots, out)))
            goto done;
        t0 = now_ns();
        for (uint32_t i = 0; i < burst; i++)
            if ((rc = next_batch(g, &b, out)))
                goto done;
        t1 = now_ns();
        loop->iteration_done(loop, t1 - t0, burst);
        out->units += burst;
        ns += t1 - t0;
        /* The floor while the workers refill the ring would share their
         * cores: measure it once they are asleep on a full ring. */
        if ((rc = wait_ring_full(g, slots, out)))
            goto done;
        floor_ns += bouncer_chunk(&bouncer, floor_k);
        floor_units += 2 * floor_k;
    }
done:
    br_close(g);
    bouncer_stop(&bouncer);
    if (rc)
        return rc;
    out->seconds = (double)ns / 1e9;
    out->value = (double)ns / (double)max_u64(1, out->units);
    out->baseline = (double)floor_ns / (double)max_u64(1, floor_units);
    out->ratio = out->value / out->baseline;
    add_figure(out, "slots", slots);
    return 0;
}

/* ---- efficiency: the copying loader, beside a plain loop ---- */

static int efficiency_run(struct bench_loop *loop, const struct bench_params *p,
                          struct bench_result *out)
{
    const uint64_t bytes = p->batch_bytes;
    struct loader_cfg cfg = {.batch_bytes = bytes};
    char err[BR_ERR_CAP];
    uint8_t *src = private_buffer(bytes), *dst = private_buffer(bytes);
    br_gen *g = NULL;
    int rc;

    if (!src || !dst) {
        rc = fail(out, -ENOMEM, "out of memory for two %llu-byte buffers",
                  (unsigned long long)bytes);
        goto done;
    }
    fill_pattern(src, bytes);
    cfg.src = src;
    /* The same loader into one private buffer, in this process. */
    struct private_loader pl = {load_copy, &cfg, private_job(dst, bytes, err), NULL};
    struct baseline base = {private_loads, &pl, 0, 0};
    if ((rc = open_generator(&g, load_copy, &cfg, bytes, p->workers, 0, out)))
        goto done;
    rc = run_pipeline(loop, g, p->workers, NULL, &base, 1, out);
    br_close(g);
    if (rc)
        goto done;
    out->value = (double)out->bytes / (out->seconds * 1e9);
    out->baseline = (double)bytes / baseline_ns_per_unit(&base);
    out->ratio = out->value / out->baseline;
    add_figure(out, "batches_per_s", (double)out->units / out->seconds);
    add_figure(out, "baseline_batches_per_s", 1e9 / baseline_ns_per_unit(&base));
done:
    free_buffer(src, bytes);
    free_buffer(dst, bytes);
    return rc;
}

/* ---- records: the built-in records dataset, beside pread and liburing ---- */

/* A cached records file of IO_FILE_BYTES: big enough that random records
 * miss the CPU caches, small enough to write in a fraction of a second. */
#define IO_FILE_BYTES (128 * MIB)
#define IO_RECORD_BYTES (4 * KIB)

struct io_file {
    char dir[64];
    char path[96];
    int fd;
    uint64_t records;
};

static void io_file_remove(struct io_file *f)
{
    if (f->fd >= 0)
        close(f->fd);
    unlink(f->path);
    rmdir(f->dir);
}

static int io_file_make(struct io_file *f, struct bench_result *out)
{
    const uint64_t chunk = MIB;
    uint8_t *buf = private_buffer(chunk);
    f->fd = -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/batchring-perf-XXXXXX");
    if (!buf || !mkdtemp(f->dir)) {
        free_buffer(buf, chunk);
        return fail(out, -errno, "making a temporary directory: %s", strerror(errno));
    }
    snprintf(f->path, sizeof f->path, "%s/records.bin", f->dir);
    f->fd = open(f->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (f->fd < 0) {
        free_buffer(buf, chunk);
        rmdir(f->dir);
        return fail(out, -errno, "creating %s: %s", f->path, strerror(errno));
    }
    fill_pattern(buf, chunk);
    for (uint64_t off = 0; off < IO_FILE_BYTES; off += chunk)
        if (pwrite(f->fd, buf, chunk, (off_t)off) != (ssize_t)chunk) {
            int e = errno ? errno : EIO;
            free_buffer(buf, chunk);
            io_file_remove(f);
            return fail(out, -e, "writing %s: %s", f->path, strerror(e));
        }
    free_buffer(buf, chunk);
    f->records = IO_FILE_BYTES / IO_RECORD_BYTES;
    return 0;
}

/* The baselines read what the subject reads: `per_batch` records per
 * batch, at random record offsets (shuffled) or as one run of adjacent
 * records (sequential), into one private buffer. */
struct io_baseline {
    int fd;
    uint64_t records;
    uint32_t per_batch;
    bool shuffled;
    uint8_t *dst;
    uint64_t next;  /* sequential: next record; shuffled: generator state */
    struct io_uring *uring;
};

static uint64_t io_next_record(struct io_baseline *b)
{
    if (b->shuffled) {
        b->next ^= b->next << 13, b->next ^= b->next >> 7, b->next ^= b->next << 17;
        return b->next % b->records;
    }
    if (b->next + b->per_batch > b->records)
        b->next = 0;
    uint64_t r = b->next;
    b->next += b->per_batch;
    return r;
}

static int pread_batches(void *ctx, uint64_t n)
{
    struct io_baseline *b = ctx;
    for (uint64_t k = 0; k < n; k++) {
        if (b->shuffled) {
            for (uint32_t i = 0; i < b->per_batch; i++)
                if (pread(b->fd, b->dst + (uint64_t)i * IO_RECORD_BYTES, IO_RECORD_BYTES,
                          (off_t)(io_next_record(b) * IO_RECORD_BYTES)) != IO_RECORD_BYTES)
                    return -EIO;
        } else {
            size_t len = (size_t)b->per_batch * IO_RECORD_BYTES;
            if (pread(b->fd, b->dst, len, (off_t)(io_next_record(b) * IO_RECORD_BYTES)) !=
                (ssize_t)len)
                return -EIO;
        }
    }
    return 0;
}

/* A bare liburing loop: the batch's reads queued at once, one submit and
 * wait, as the library's reader does, without the ring around it. */
static int uring_batches(void *ctx, uint64_t n)
{
    struct io_baseline *b = ctx;
    const uint32_t reads = b->shuffled ? b->per_batch : 1;
    const unsigned len = b->shuffled ? IO_RECORD_BYTES : b->per_batch * IO_RECORD_BYTES;
    for (uint64_t k = 0; k < n; k++) {
        for (uint32_t i = 0; i < reads; i++) {
            struct io_uring_sqe *sqe = io_uring_get_sqe(b->uring);
            if (!sqe)
                return -EBUSY;
            io_uring_prep_read(sqe, b->fd, b->dst + (uint64_t)i * len, len,
                               io_next_record(b) * IO_RECORD_BYTES);
        }
        if (io_uring_submit_and_wait(b->uring, reads) < 0)
            return -EIO;
        for (uint32_t i = 0; i < reads; i++) {
            struct io_uring_cqe *cqe;
            if (io_uring_wait_cqe(b->uring, &cqe) < 0 || cqe->res != (int)len)
                return -EIO;
            io_uring_cqe_seen(b->uring, cqe);
        }
    }
    return 0;
}

static int records_run(struct bench_loop *loop, const struct bench_params *p,
                       struct bench_result *out, bool shuffled, bool direct)
{
    const uint32_t per_batch = records_per_batch(p->batch_bytes);
    struct io_file file;
    struct io_uring uring;
    bool uring_ok = false;
    br_dataset *ds = NULL;
    br_gen *g = NULL;
    br_options opt;
    uint8_t *dst = private_buffer((uint64_t)per_batch * IO_RECORD_BYTES);
    int rc;

    if (!dst)
        return fail(out, -ENOMEM, "out of memory for a batch buffer");
    if ((rc = io_file_make(&file, out))) {
        free_buffer(dst, (uint64_t)per_batch * IO_RECORD_BYTES);
        return rc;
    }
    int read_fd = file.fd;
    if (direct) {
        /* O_DIRECT on both sides: nothing comes from the page cache, and
         * what the file's writing left there is dropped first. */
        fsync(file.fd);
        posix_fadvise(file.fd, 0, 0, POSIX_FADV_DONTNEED);
        read_fd = open(file.path, O_RDONLY | O_DIRECT | O_CLOEXEC);
        if (read_fd < 0) {
            rc = fail(out, -errno, "the file system refuses O_DIRECT for %s: %s", file.path,
                      strerror(errno));
            io_file_remove(&file);
            free_buffer(dst, (uint64_t)per_batch * IO_RECORD_BYTES);
            return rc;
        }
    }
    struct io_baseline pb = {read_fd, file.records, per_batch, shuffled, dst,
                             shuffled ? 0x9e3779b97f4a7c15u : 0, NULL};
    struct io_baseline ub = pb;
    struct baseline base[2] = {{pread_batches, &pb, 0, 0}, {uring_batches, &ub, 0, 0}};
    if ((rc = io_uring_queue_init(per_batch < 64 ? 64 : per_batch, &uring, 0)) == 0) {
        uring_ok = true;
        ub.uring = &uring;
    }
    if ((rc = br_dataset_open_records(&ds, file.path, IO_RECORD_BYTES, NULL,
                                      direct ? BR_DATASET_DIRECT : 0))) {
        rc = fail(out, rc, "br_dataset_open_records: %s", br_last_error(NULL));
        goto done;
    }
    br_options_init(&opt);
    opt.batch_size = per_batch;
    opt.workers = p->workers;
    opt.shuffle = shuffled;
    opt.seed = 7;
    if ((rc = br_open_dataset(&g, ds, NULL, 0, &opt))) {
        rc = fail(out, rc, "br_open_dataset: %s", br_last_error(NULL));
        goto done;
    }
    rc = run_pipeline(loop, g, p->workers, NULL, base, uring_ok ? 2 : 1, out);
    if (rc)
        goto done;
    out->value = (double)out->units / out->seconds;
    out->baseline = 1e9 / baseline_ns_per_unit(&base[0]);
    out->ratio = out->value / out->baseline;
    if (uring_ok) {
        add_figure(out, "liburing_batches_per_s", 1e9 / baseline_ns_per_unit(&base[1]));
        add_figure(out, "vs_liburing", out->value * baseline_ns_per_unit(&base[1]) / 1e9);
    }
    {
        br_worker_stats ws;
        uint64_t reads = 0, copies = 0, load_ns = 0, wait_ns = 0, batches = 0;
        if (br_worker_stats_get(g, 0, &ws) == 0)
            add_figure(out, "io_backend_1uring_2pread", ws.io_backend);
        for (uint32_t w = 0; w < p->workers && br_worker_stats_get(g, w, &ws) == 0; w++) {
            reads += ws.io_reads, copies += ws.io_copies;
            load_ns += ws.load_ns, wait_ns += ws.slot_wait_ns, batches += ws.batches;
        }
        /* What the reader did, and where the workers' time went. */
        add_figure(out, "copied_fraction", reads ? (double)copies / (double)reads : 0);
        add_figure(out, "worker_load_us_per_batch", batches ? (double)load_ns / 1e3 / (double)batches : 0);
        add_figure(out, "worker_wait_us_per_batch", batches ? (double)wait_ns / 1e3 / (double)batches : 0);
    }
done:
    br_close(g);
    br_dataset_close(ds);
    if (uring_ok)
        io_uring_queue_exit(&uring);
    if (read_fd != file.fd)
        close(read_fd);
    io_file_remove(&file);
    free_buffer(dst, (uint64_t)per_batch * IO_RECORD_BYTES);
    return rc;
}

static int records_random_run(struct bench_loop *loop, const struct bench_params *p,
                              struct bench_result *out)
{
    return records_run(loop, p, out, true, false);
}

static int records_seq_run(struct bench_loop *loop, const struct bench_params *p,
                           struct bench_result *out)
{
    return records_run(loop, p, out, false, false);
}

static int records_direct_run(struct bench_loop *loop, const struct bench_params *p,
                              struct bench_result *out)
{
    return records_run(loop, p, out, false, true);
}

#ifdef BR_PERF_INTERNAL
/* ---- schedule: a batch's ids, beside the handoff ---- */

/* Computing the ids of a 1024-sample batch (in the worker, before the
 * loader runs) against one br_next handoff of a ready batch, measured in
 * the same call. Shuffled over 10^9 implicit ids, the expensive case; the
 * sequential fill is reported beside it. Only batchring-perf has it: it
 * calls the library's internal schedule directly. */
#define SCHEDULE_BATCH 1024u
#define SCHEDULE_SLOTS 64u

static uint64_t schedule_ns_per_batch(bool shuffle, uint64_t batches, uint64_t *ids)
{
    struct br_schedule s;
    char msg[BR_MSG_CAP];
    struct br_schedule_options o = {
        .n_ids = 1000000000u, .batch_size = SCHEDULE_BATCH, .shuffle = shuffle, .seed = 1};
    uint64_t t0, acc = 0;
    if (br__schedule_init(&s, &o, msg))
        return 0;
    t0 = now_ns();
    for (uint64_t seq = 0; seq < batches; seq++) {
        struct br_batch_place pl = br__schedule_place(&s, seq * 7919);
        br__schedule_fill(&s, &pl, NULL, NULL, ids, NULL);
        acc += ids[seq % SCHEDULE_BATCH];
    }
    sink = acc;
    return (now_ns() - t0) / max_u64(1, batches);
}

static int schedule_run(struct bench_loop *loop, const struct bench_params *p,
                        struct bench_result *out)
{
    uint64_t ids[SCHEDULE_BATCH], handoff_ns = 0, handoffs = 0, sched_ns = 0, seq_ns = 0, n = 0;
    br_gen *g = NULL;
    br_batch b;
    int rc;
    (void)p;
    if ((rc = open_generator(&g, load_nothing, NULL, 4 * KIB, 1, SCHEDULE_SLOTS, out)))
        return rc;
    if ((rc = next_batch(g, &b, out)))
        goto done;
    while (loop->keep_running(loop)) {
        uint64_t t0, t1;
        if ((rc = wait_ring_full(g, SCHEDULE_SLOTS, out)))
            goto done;
        t0 = now_ns();
        for (uint32_t i = 0; i + 1 < SCHEDULE_SLOTS; i++)
            if ((rc = next_batch(g, &b, out)))
                goto done;
        handoff_ns += now_ns() - t0;
        handoffs += SCHEDULE_SLOTS - 1;
        t1 = now_ns();
        sched_ns += schedule_ns_per_batch(true, 16, ids);
        seq_ns += schedule_ns_per_batch(false, 16, ids);
        n++;
        loop->iteration_done(loop, now_ns() - t1, 16);
        out->units += 16;
    }
    out->value = (double)sched_ns / (double)max_u64(1, n);
    out->baseline = (double)handoff_ns / (double)max_u64(1, handoffs);
    out->ratio = out->value / out->baseline;
    out->seconds = (double)sched_ns * 16 / 1e9;
    add_figure(out, "sequential_ns_per_batch", (double)seq_ns / (double)max_u64(1, n));
    add_figure(out, "sequential_vs_handoff",
               (double)seq_ns / (double)max_u64(1, n) / out->baseline);
done:
    br_close(g);
    return rc;
}

static bool schedule_target(const struct bench_params *p, double *limit, bool *at_least)
{
    (void)p;
    *limit = 0.05, *at_least = false;
    return true;
}
#endif

/* ---- seed: the copying loader, beside a fork + pipe ---- */

/* The seed model: a loader process that pipes its batches. A forked
 * child runs the loader into its own memory and writes each batch, behind
 * its length, into a pipe; we read it into our buffer. */
struct seed_model {
    pid_t child;
    int fd;
    uint8_t *dst;
    uint64_t batch_bytes;
};

static bool write_all(int fd, const void *buf, size_t n)
{
    const uint8_t *p = buf;
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        p += w, n -= (size_t)w;
    }
    return true;
}

static bool read_all(int fd, void *buf, size_t n)
{
    uint8_t *p = buf;
    while (n) {
        ssize_t r = read(fd, p, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return false;
        p += r, n -= (size_t)r;
    }
    return true;
}

static _Noreturn void seed_child(int fd, pid_t parent, br_loader_fn load, void *user,
                                 uint64_t batch_bytes)
{
    char err[BR_ERR_CAP];
    uint8_t *buf;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(0);
    /* The parent closing the pipe is how the child learns to stop. */
    signal(SIGPIPE, SIG_IGN);
    buf = private_buffer(batch_bytes);
    if (!buf)
        _exit(1);
    br_job job = private_job(buf, batch_bytes, err);
    for (uint64_t seq = 0;; seq++) {
        uint64_t len;
        job.seq = seq;
        job.size = 0;
        if (load(&job, user))
            _exit(1);
        len = job.size;
        if (!write_all(fd, &len, sizeof len) || !write_all(fd, buf, len))
            _exit(0);
    }
}

static int seed_start(struct seed_model *s, br_loader_fn load, void *user, uint64_t batch_bytes,
                      struct bench_result *out)
{
    pid_t parent = getpid();
    int fds[2];
    memset(s, 0, sizeof *s);
    s->fd = -1;
    s->batch_bytes = batch_bytes;
    s->dst = private_buffer(batch_bytes);
    if (!s->dst)
        return fail(out, -ENOMEM, "out of memory for a %llu-byte buffer",
                    (unsigned long long)batch_bytes);
    if (pipe2(fds, O_CLOEXEC) < 0)
        return fail(out, -errno, "pipe: %s", strerror(errno));
    fflush(NULL);
    s->child = fork();
    if (s->child < 0) {
        int e = errno;
        close(fds[0]), close(fds[1]);
        return fail(out, -e, "fork: %s", strerror(e));
    }
    if (s->child == 0) {
        close(fds[0]);
        seed_child(fds[1], parent, load, user, batch_bytes);
    }
    close(fds[1]);
    s->fd = fds[0];
    return 0;
}

static int seed_receive(void *ctx, uint64_t n)
{
    struct seed_model *s = ctx;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t len;
        if (!read_all(s->fd, &len, sizeof len) || len > s->batch_bytes ||
            !read_all(s->fd, s->dst, (size_t)len))
            return -EPIPE;
    }
    return 0;
}

static void seed_stop(struct seed_model *s)
{
    if (s->fd >= 0)
        close(s->fd);
    if (s->child > 0) {
        kill(s->child, SIGKILL);
        while (waitpid(s->child, NULL, 0) < 0 && errno == EINTR)
            ;
    }
    free_buffer(s->dst, s->batch_bytes);
    memset(s, 0, sizeof *s);
}

static int seed_run(struct bench_loop *loop, const struct bench_params *p, struct bench_result *out)
{
    const uint64_t bytes = p->batch_bytes;
    struct loader_cfg cfg = {.batch_bytes = bytes};
    struct seed_model seed;
    struct baseline base = {seed_receive, &seed, 0, 0};
    uint8_t *src = private_buffer(bytes);
    br_gen *g = NULL;
    int rc;

    if (!src)
        return fail(out, -ENOMEM, "out of memory for a %llu-byte buffer",
                    (unsigned long long)bytes);
    fill_pattern(src, bytes);
    cfg.src = src;
    if ((rc = seed_start(&seed, load_copy, &cfg, bytes, out)))
        goto done;
    /* Untimed: the child running, its first batches through the pipe. */
    if ((rc = seed_receive(&seed, 2))) {
        fail(out, rc, "the seed model's child sent no batch");
        goto done;
    }
    if ((rc = open_generator(&g, load_copy, &cfg, bytes, p->workers, 0, out)))
        goto done;
    rc = run_pipeline(loop, g, p->workers, NULL, &base, 1, out);
    br_close(g);
    if (rc == -EPIPE)
        fail(out, rc, "the seed model's child stopped sending batches");
    if (rc)
        goto done;
    out->value = (double)out->units / out->seconds;
    out->baseline = 1e9 / baseline_ns_per_unit(&base);
    out->ratio = out->value / out->baseline;
    add_figure(out, "ms_per_batch", 1e3 / out->value);
    add_figure(out, "seed_ms_per_batch", 1e3 / out->baseline);
done:
    seed_stop(&seed);
    free_buffer(src, bytes);
    return rc;
}

/* ---- scaling: a latency-bound loader ---- */

static int scaling_run(struct bench_loop *loop, const struct bench_params *p,
                       struct bench_result *out)
{
    const uint32_t workers = p->workers;
    const uint64_t calls = 25;
    char err[BR_ERR_CAP];
    double loader_ns;
    br_gen *g = NULL;
    uint64_t t0;
    int rc;

    if (workers == 0)
        return fail(out, -EINVAL, "the scaling case needs at least one worker");
    if ((rc = open_generator(&g, load_sleep, NULL, p->batch_bytes, workers, 0, out)))
        return rc;
    rc = run_pipeline(loop, g, workers, NULL, NULL, 0, out);
    br_close(g);
    if (rc)
        return rc;
    /* What one sleep really takes here (timer slack, wake-up latency): the
     * ideal the workers could reach, reported beside the issue's. */
    br_job job = private_job(NULL, 0, err);
    t0 = now_ns();
    for (uint64_t i = 0; i < calls; i++)
        load_sleep(&job, NULL);
    loader_ns = (double)(now_ns() - t0) / (double)calls;
    out->value = (double)out->units / out->seconds;
    out->baseline = workers * (1e9 / (double)SLEEP_LOADER_NS);
    out->ratio = out->value / out->baseline;
    add_figure(out, "loader_ms", loader_ns / 1e6);
    add_figure(out, "of_measured_loader", out->value / (workers * 1e9 / loader_ns));
    return 0;
}

/* ---- startup: br_open to the first batch ---- */

/* The baseline: make a ring-sized memfd and fault it in once, the least a
 * prefaulted shared ring can cost. Returns ns, or a negative errno. */
static int64_t prefault_once(uint64_t bytes, struct bench_result *out)
{
    uint64_t t0 = now_ns(), t1;
    void *p;
    int fd = memfd_create("batchring-bench", MFD_CLOEXEC);
    if (fd < 0)
        return fail(out, -errno, "memfd_create: %s", strerror(errno));
    if (ftruncate(fd, (off_t)bytes) < 0 || fallocate(fd, 0, 0, (off_t)bytes) < 0) {
        int e = errno;
        close(fd);
        return fail(out, -e, "reserving %llu bytes: %s", (unsigned long long)bytes, strerror(e));
    }
    p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        int e = errno;
        close(fd);
        return fail(out, -e, "mmap: %s", strerror(e));
    }
    if (madvise(p, bytes, MADV_POPULATE_WRITE) < 0) {
        /* Before Linux 5.14: touch each page. */
        const uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
        for (uint64_t off = 0; off < bytes; off += page)
            ((volatile uint8_t *)p)[off] = 0;
    }
    t1 = now_ns();
    munmap(p, bytes);
    close(fd);
    return (int64_t)(t1 - t0);
}

static int64_t open_to_first_batch(const struct bench_params *p, uint32_t slots,
                                   struct bench_result *out)
{
    br_gen *g = NULL;
    br_batch b;
    uint64_t t0 = now_ns(), t1;
    int rc = open_generator(&g, load_nothing, NULL, p->batch_bytes, p->workers, slots, out);
    if (rc == 0)
        rc = next_batch(g, &b, out);
    t1 = now_ns();
    br_close(g);
    return rc ? rc : (int64_t)(t1 - t0);
}

static int startup_run(struct bench_loop *loop, const struct bench_params *p,
                       struct bench_result *out)
{
    const uint64_t stride = page_round(p->batch_bytes);
    const uint64_t slots = p->ring_bytes / stride;
    uint64_t ns = 0, base_ns = 0;

    if (slots < 2 || slots > BR_MAX_SLOTS)
        return fail(out, -EINVAL,
                    "a %llu-byte ring holds %llu batches of %llu bytes; it must "
                    "hold 2 to %u",
                    (unsigned long long)p->ring_bytes, (unsigned long long)slots,
                    (unsigned long long)p->batch_bytes, BR_MAX_SLOTS);
    while (loop->keep_running(loop)) {
        /* Alternate the order, so that neither always runs on memory the
         * other has just freed. */
        bool baseline_first = out->units % 2 == 0;
        int64_t subject = 0, base = 0;
        if (baseline_first)
            base = prefault_once(slots * stride, out);
        if (base >= 0)
            subject = open_to_first_batch(p, (uint32_t)slots, out);
        if (!baseline_first && subject >= 0)
            base = prefault_once(slots * stride, out);
        if (subject < 0 || base < 0)
            return (int)(subject < 0 ? subject : base);
        loop->iteration_done(loop, (uint64_t)subject, 1);
        out->units++;
        ns += (uint64_t)subject;
        base_ns += (uint64_t)base;
    }
    out->seconds = (double)ns / 1e9;
    out->value = (double)ns / 1e6 / (double)max_u64(1, out->units);
    out->baseline = (double)base_ns / 1e6 / (double)max_u64(1, out->units);
    out->ratio = out->value / out->baseline;
    add_figure(out, "slots", (double)slots);
    return 0;
}

/* ---- overlap: loader and trainer at the same time ---- */

static uint64_t median_ns(uint64_t *v, int n)
{
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
            uint64_t t = v[j];
            v[j] = v[j - 1], v[j - 1] = t;
        }
    return v[n / 2];
}

struct step_only {
    const uint64_t *words;
    uint64_t n_words;
    uint64_t work;
};

static int step_units(void *ctx, uint64_t n)
{
    const struct step_only *s = ctx;
    for (uint64_t i = 0; i < n; i++)
        sink = training_step(s->words, s->n_words, s->work);
    return 0;
}

static int overlap_run(struct bench_loop *loop, const struct bench_params *p,
                       struct bench_result *out)
{
    const uint64_t bytes = p->batch_bytes, words = bytes / 8;
    struct loader_cfg cfg = {.batch_bytes = bytes};
    uint8_t *src = private_buffer(bytes), *dst = private_buffer(bytes);
    char err[BR_ERR_CAP];
    uint64_t samples[9], per_word_ps;
    double load_ns, step_ns, serial_ns;
    struct trainer trainer;
    br_gen *g = NULL;
    int rc;

    if (!src || !dst || words == 0) {
        rc = fail(out, words ? -ENOMEM : -EINVAL, "cannot make two %llu-byte buffers",
                  (unsigned long long)bytes);
        goto done;
    }
    fill_pattern(src, bytes);
    cfg.src = src;

    /* Calibrate the step to cost what one load costs (medians, in this
     * process). The ratio uses the interleaved measurements below. */
    struct private_loader load_only = {load_checksum, &cfg, private_job(dst, bytes, err), NULL};
    for (int i = 0; i < 9; i++) {
        uint64_t t0 = now_ns();
        private_loads(&load_only, 1);
        samples[i] = now_ns() - t0;
    }
    load_ns = (double)median_ns(samples, 9);
    for (int i = 0; i < 9; i++) {
        uint64_t t0 = now_ns();
        sink = training_step((const uint64_t *)dst, words, words);
        samples[i] = now_ns() - t0;
    }
    per_word_ps = max_u64(1, median_ns(samples, 9) * 1000 / words);
    trainer.work = max_u64(1, (uint64_t)(load_ns * 1000) / per_word_ps);

    /* Load alone, step alone, and both one after the other, in this
     * process, on the same bytes. */
    struct step_only step_only = {(const uint64_t *)dst, words, trainer.work};
    struct private_loader serial = {load_checksum, &cfg, private_job(dst, bytes, err), &trainer};
    struct baseline base[3] = {
        {private_loads, &load_only, 0, 0},
        {step_units, &step_only, 0, 0},
        {private_loads, &serial, 0, 0},
    };
    if ((rc = open_generator(&g, load_checksum, &cfg, bytes, p->workers, 0, out)))
        goto done;
    rc = run_pipeline(loop, g, p->workers, &trainer, base, 3, out);
    br_close(g);
    if (rc)
        goto done;
    load_ns = baseline_ns_per_unit(&base[0]);
    step_ns = baseline_ns_per_unit(&base[1]);
    serial_ns = baseline_ns_per_unit(&base[2]);
    out->value = (double)out->units / out->seconds;
    out->baseline = 1e9 / (load_ns > step_ns ? load_ns : step_ns);
    out->ratio = out->value / out->baseline;
    add_figure(out, "load_us", load_ns / 1e3);
    add_figure(out, "step_us", step_ns / 1e3);
    add_figure(out, "serial_batches_per_s", 1e9 / serial_ns);
    add_figure(out, "speedup_over_serial", out->value * serial_ns / 1e9);
done:
    free_buffer(src, bytes);
    free_buffer(dst, bytes);
    return rc;
}

/* ---- the table of cases and their targets (issue 3) ---- */

static bool handoff_target(const struct bench_params *p, double *limit, bool *at_least)
{
    (void)p;
    *limit = 3.0, *at_least = false;
    return true;
}

static bool efficiency_target(const struct bench_params *p, double *limit, bool *at_least)
{
    *limit = 0.90, *at_least = true;
    return p->workers == 1 && (p->batch_bytes == MIB || p->batch_bytes == 16 * MIB);
}

static bool seed_target(const struct bench_params *p, double *limit, bool *at_least)
{
    *limit = 10.0, *at_least = true;
    return p->workers == 1 && p->batch_bytes == MIB;
}

static bool scaling_target(const struct bench_params *p, double *limit, bool *at_least)
{
    *limit = 0.90, *at_least = true;
    return p->workers >= 1 && p->workers <= 32;
}

static bool startup_target(const struct bench_params *p, double *limit, bool *at_least)
{
    *limit = 2.0, *at_least = false;
    return p->workers == 8 && p->ring_bytes == 256 * MIB;
}

static bool overlap_target(const struct bench_params *p, double *limit, bool *at_least)
{
    *limit = 0.90, *at_least = true;
    return p->workers == 1;
}

static bool records_random_target(const struct bench_params *p, double *limit, bool *at_least)
{
    *limit = 3.0, *at_least = true;
    return p->batch_bytes == 64 * IO_RECORD_BYTES;
}

static bool records_seq_target(const struct bench_params *p, double *limit, bool *at_least)
{
    *limit = 1.0, *at_least = true;
    return p->batch_bytes == 64 * KIB || p->batch_bytes == MIB;
}

const struct bench_case bench_cases[] = {
    {
        .name = "floor",
        .summary = "two processes bounce one cache line in shared memory: ns per one-way handoff",
        .value_unit = "ns/handoff",
        .baseline_name = "none: this is the floor",
        .baseline_unit = "",
        .ratio_name = "",
        .run = floor_run,
    },
    {
        .name = "handoff",
        .summary = "br_next when the next batch is already READY (loader writes nothing)",
        .value_unit = "ns/batch",
        .baseline_name = "cache-line floor",
        .baseline_unit = "ns/handoff",
        .ratio_name = "handoff / floor",
        .uses = BENCH_USES_BATCH_BYTES | BENCH_USES_WORKERS,
        .defaults = {.batch_bytes = 1 * MIB, .workers = 1},
        .run = handoff_run,
        .target = handoff_target,
    },
    {
        .name = "efficiency",
        .summary = "a loader memcpy()s each batch: bytes/s the consumer receives",
        .value_unit = "GB/s",
        .baseline_name = "same loader into private memory, one process",
        .baseline_unit = "GB/s",
        .ratio_name = "consumer / private loop",
        .uses = BENCH_USES_BATCH_BYTES | BENCH_USES_WORKERS,
        .defaults = {.batch_bytes = 1 * MIB, .workers = 1},
        .run = efficiency_run,
        .target = efficiency_target,
    },
    {
        .name = "seed",
        .summary = "batches/s beside the seed model: a forked child pipes each batch",
        .value_unit = "batches/s",
        .baseline_name = "same loader in a forked child, batches through a pipe",
        .baseline_unit = "batches/s",
        .ratio_name = "batchring / seed model",
        .uses = BENCH_USES_BATCH_BYTES | BENCH_USES_WORKERS,
        .defaults = {.batch_bytes = 1 * MIB, .workers = 1},
        .run = seed_run,
        .target = seed_target,
    },
    {
        .name = "scaling",
        .summary = "a latency-bound loader (sleeps 2 ms per batch) over N workers",
        .value_unit = "batches/s",
        .baseline_name = "ideal: workers x 500",
        .baseline_unit = "batches/s",
        .ratio_name = "measured / ideal",
        .uses = BENCH_USES_BATCH_BYTES | BENCH_USES_WORKERS,
        .defaults = {.batch_bytes = 64 * KIB, .workers = 8},
        .run = scaling_run,
        .target = scaling_target,
    },
    {
        .name = "startup",
        .summary = "br_open to the first batch, with the whole ring prefaulted",
        .value_unit = "ms",
        .baseline_name = "prefault a ring-sized memfd once",
        .baseline_unit = "ms",
        .ratio_name = "first batch / prefault",
        .uses = BENCH_USES_BATCH_BYTES | BENCH_USES_WORKERS | BENCH_USES_RING_BYTES,
        .defaults = {.batch_bytes = 1 * MIB, .workers = 8, .ring_bytes = 256 * MIB},
        .run = startup_run,
        .target = startup_target,
    },
    {
        .name = "overlap",
        .summary = "CPU-bound loader and trainer step of equal cost, overlapped by one worker",
        .value_unit = "batches/s",
        .baseline_name = "ideal: 1 / max(load, step)",
        .baseline_unit = "batches/s",
        .ratio_name = "measured / ideal",
        .uses = BENCH_USES_BATCH_BYTES | BENCH_USES_WORKERS,
        .defaults = {.batch_bytes = 1 * MIB, .workers = 1},
        .run = overlap_run,
        .target = overlap_target,
    },
    {
        .name = "records-random",
        .summary = "records dataset, 4 KiB records at shuffled ids, read by the workers' io_uring",
        .value_unit = "batches/s",
        .baseline_name = "the same reads in a pread loop (vs_liburing: a bare liburing loop)",
        .baseline_unit = "batches/s",
        .ratio_name = "batchring / pread loop",
        .uses = BENCH_USES_BATCH_BYTES | BENCH_USES_WORKERS,
        .defaults = {.batch_bytes = 64 * IO_RECORD_BYTES, .workers = 2},
        .run = records_random_run,
        .target = records_random_target,
    },
    {
        .name = "records-seq",
        .summary = "records dataset at sequential ids: each batch one coalesced read",
        .value_unit = "batches/s",
        .baseline_name = "the same reads in a pread loop (vs_liburing: a bare liburing loop)",
        .baseline_unit = "batches/s",
        .ratio_name = "batchring / pread loop",
        .uses = BENCH_USES_BATCH_BYTES | BENCH_USES_WORKERS,
        .defaults = {.batch_bytes = 1 * MIB, .workers = 1},
        .run = records_seq_run,
        .target = records_seq_target,
    },
    {
        .name = "records-direct",
        .summary = "records dataset, sequential ids, O_DIRECT (the page cache dropped)",
        .value_unit = "batches/s",
        .baseline_name = "the same O_DIRECT reads in a pread loop (vs_liburing: bare liburing)",
        .baseline_unit = "batches/s",
        .ratio_name = "batchring / pread loop",
        .uses = BENCH_USES_BATCH_BYTES | BENCH_USES_WORKERS,
        .defaults = {.batch_bytes = 1 * MIB, .workers = 1},
        .run = records_direct_run,
        .target = records_seq_target,
    },
#ifdef BR_PERF_INTERNAL
    {
        .name = "schedule",
        .summary = "the ids of a shuffled 1024-sample batch over 10^9 ids, beside a handoff",
        .value_unit = "ns/batch",
        .baseline_name = "br_next of a ready batch",
        .baseline_unit = "ns/batch",
        .ratio_name = "schedule / handoff",
        .uses = 0,
        .defaults = {.batch_bytes = 4 * KIB, .workers = 1},
        .run = schedule_run,
        .target = schedule_target,
    },
#endif
};

const size_t bench_n_cases = sizeof bench_cases / sizeof bench_cases[0];

const struct bench_case *bench_case_find(const char *name)
{
    for (size_t i = 0; i < bench_n_cases; i++)
        if (!strcmp(bench_cases[i].name, name))
            return &bench_cases[i];
    return NULL;
}

int bench_verdict(const struct bench_case *c, const struct bench_params *p, double ratio,
                  double *limit, bool *at_least)
{
    if (!c->target || !c->target(p, limit, at_least) || isnan(ratio))
        return -1;
    return *at_least ? ratio >= *limit : ratio <= *limit;
}

bool bench_parse_bytes(const char *text, uint64_t *out)
{
    char *end = NULL;
    unsigned long long v;
    unsigned shift = 0;

    if (!text || !*text || *text == '-')
        return false;
    errno = 0;
    v = strtoull(text, &end, 10);
    if (errno || end == text)
        return false;
    switch (*end) {
    case 'k':
    case 'K':
        shift = 10, end++;
        break;
    case 'm':
    case 'M':
        shift = 20, end++;
        break;
    case 'g':
    case 'G':
        shift = 30, end++;
        break;
    default:
        break;
    }
    if (shift && (!strcmp(end, "iB") || !strcmp(end, "B")))
        end += strlen(end);
    if (!shift && (!strcmp(end, "B")))
        end++;
    if (*end || v > (UINT64_MAX >> shift))
        return false;
    *out = (uint64_t)v << shift;
    return true;
}

const char *bench_format_bytes(char buf[32], uint64_t bytes)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    unsigned u = 0;
    double v = (double)bytes;
    while (v >= 1024 && u < 4)
        v /= 1024, u++;
    if (v == (double)(uint64_t)v)
        snprintf(buf, 32, "%llu %s", (unsigned long long)v, units[u]);
    else
        snprintf(buf, 32, "%.1f %s", v, units[u]);
    return buf;
}
