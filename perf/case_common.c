/* SPDX-License-Identifier: MIT */
/*
 * The helpers the case files share (case_common.h): timing, buffers, the
 * loaders two families use, opening a generator, and the loop that runs a
 * throughput case's subject with its baselines interleaved.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <batchring.h>

#include "case_common.h"
#include "topology.h"


int bench__fail(struct bench_result *out, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->error, sizeof out->error, fmt, ap);
    va_end(ap);
    return code;
}

void bench__add_figure(struct bench_result *out, const char *name, double value)
{
    if (out->n_figures < BENCH_MAX_FIGURES)
        out->figures[out->n_figures++] = (struct bench_figure){name, value};
}

void bench__add_wait_figures(struct bench_result *out, br_gen *g)
{
    br_stats st;
    double loaded, taken;
    if (br_stats_get(g, &st) != 0)
        return;
    loaded = (double)bench__max_u64(1, st.loaded);
    taken = (double)bench__max_u64(1, st.batches);
    bench__add_figure(out, "worker_load_us_per_batch", (double)st.load_ns / 1e3 / loaded);
    bench__add_figure(out, "worker_wait_us_per_batch", (double)st.slot_wait_ns / 1e3 / loaded);
    bench__add_figure(out, "worker_sleeps_per_batch", (double)st.slot_sleeps / loaded);
    bench__add_figure(out, "trainer_sleeps_per_batch", (double)st.stall_sleeps / taken);
}

uint64_t bench__page_round(uint64_t bytes)
{
    const uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
    return (bytes + page - 1) / page * page;
}

/* Private, page-aligned memory with every page already faulted in, so a
 * baseline pays no first-touch either. NULL on failure. */
void *bench__private_buffer(uint64_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE,
                   -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

void bench__free_buffer(void *p, uint64_t bytes)
{
    if (p)
        munmap(p, bytes);
}

/* A pattern that no page of zeroes matches, so a copy really moves data. */
void bench__fill_pattern(uint8_t *p, uint64_t bytes)
{
    uint64_t x = 0x243f6a8885a308d3u;
    for (uint64_t i = 0; i + 8 <= bytes; i += 8) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        memcpy(p + i, &x, 8);
    }
}
int bench__load_nothing(br_job *job, void *user)
{
    (void)user;
    job->size = 0;
    return 0;
}

int bench__load_copy(br_job *job, void *user)
{
    const struct loader_cfg *cfg = user;
    memcpy(job->out, cfg->src, cfg->batch_bytes);
    job->size = cfg->batch_bytes;
    return 0;
}

uint64_t bench__training_step(const uint64_t *w, uint64_t n_words, uint64_t work)
{
    uint64_t x = 0, i = 0;
    while (work--) {
        x = bench__mix_word(x, w[i]);
        if (++i == n_words)
            i = 0;
    }
    return x;
}

/* Results of work the compiler must not drop. */
volatile uint64_t bench__sink;

br_job bench__private_job(void *out, uint64_t cap, char *err)
{
    static const uint64_t id0 = 0;
    return (br_job){
        .ids = &id0, .count = 1, .out = out, .cap = (size_t)cap, .err = err, .err_cap = BR_ERR_CAP};
}

/* ---- generators ---- */

uint32_t bench__records_per_batch(uint64_t batch_bytes)
{
    uint64_t n = batch_bytes / RECORD_BYTES;
    return n ? (uint32_t)n : 1;
}

/* Opens a generator over a synthetic dataset with room for every worker
 * (batch_size x workers <= n_ids, so no worker is lowered away). slots = 0
 * means the library's default. */
int bench__open_generator(br_gen **g, br_loader_fn load, void *user, uint64_t batch_bytes,
                          uint32_t workers, uint32_t slots, struct bench_result *out)
{
    const uint32_t batch_size = bench__records_per_batch(batch_bytes);
    const size_t n_ids = (size_t)batch_size * (workers ? workers : 1) * 2;
    uint64_t *ids = malloc(n_ids * sizeof *ids);
    br_options opt;
    int rc;

    if (!ids)
        return bench__fail(out, -ENOMEM, "out of memory for %zu sample ids", n_ids);
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
        return bench__fail(out, rc, "br_open (%u workers, %llu-byte batches): %s: %s", workers,
                           (unsigned long long)batch_bytes, br_err_name(rc), br_last_error(NULL));
    return 0;
}

int bench__next_batch(br_gen *g, br_batch *b, struct bench_result *out)
{
    int rc = br_next(g, b);
    if (rc)
        return bench__fail(out, rc, "br_next: %s: %s", br_err_name(rc), br_last_error(g));
    return 0;
}

static void train(const struct trainer *t, const br_batch *b)
{
    if (t && t->work)
        bench__sink = bench__training_step(b->data, b->size / 8, t->work);
}

int bench__consume(br_gen *g, uint64_t n, const struct trainer *t, uint64_t *bytes,
                   struct bench_result *out)
{
    br_batch b;
    for (uint64_t i = 0; i < n; i++) {
        int rc = bench__next_batch(g, &b, out);
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
    const uint64_t t0 = br_util_now_ns();
    uint64_t last = UINT64_MAX, since = t0;
    br_stats st;
    for (;;) {
        uint64_t t = br_util_now_ns();
        br_stats_get(g, &st);
        if (st.loaded != last)
            last = st.loaded, since = t;
        else if (t - since >= quiet_ns)
            return 0;
        if (t - t0 > STUCK_NS)
            return bench__fail(out, -ETIMEDOUT, "the workers did not settle in %llu s",
                               (unsigned long long)(STUCK_NS / 1000000000u));
        nanosleep(&nap, NULL);
    }
}

/* Waits until the workers have filled every slot the consumer does not
 * hold, so that each br_next of the next burst finds its batch READY. */
int bench__wait_ring_full(br_gen *g, uint32_t slots, struct bench_result *out)
{
    const struct timespec nap = {0, 20000};
    const uint64_t t0 = br_util_now_ns();
    br_stats st;
    for (;;) {
        br_stats_get(g, &st);
        if (st.loaded >= st.batches + slots - 1)
            break;
        if (br_util_now_ns() - t0 > STUCK_NS)
            return bench__fail(out, -ETIMEDOUT, "the workers did not fill the ring in %llu s",
                               (unsigned long long)(STUCK_NS / 1000000000u));
        nanosleep(&nap, NULL);
    }
    /* A worker counts its batch just before it publishes it: give the
     * last one time to reach READY. */
    nanosleep(&nap, NULL);
    return 0;
}

double bench__baseline_ns_per_unit(const struct baseline *b)
{
    return (double)b->ns / (double)bench__max_u64(1, b->units);
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
int bench__run_pipeline(struct bench_loop *loop, br_gen *g, uint32_t workers,
                        const struct trainer *t, struct baseline *base, unsigned n_base,
                        struct bench_result *out)
{
    uint64_t t0 = br_util_now_ns(), n = 0, prev, k, unit_ns;
    int rc;

    while (n < 8u * bench__max_u64(1, workers) || br_util_now_ns() - t0 < WARMUP_NS) {
        if ((rc = bench__consume(g, 1, t, NULL, out)))
            return rc;
        n++;
    }
    unit_ns = bench__max_u64(1, (br_util_now_ns() - t0) / n);
    k = bench__max_u64(1, STEP_NS / unit_ns);
    prev = br_util_now_ns();
    while (loop->keep_running(loop)) {
        uint64_t bytes = 0, t1;
        if (n_base) {
            br_stats st;
            br_stats_get(g, &st);
            if ((rc = bench__consume(g, st.loaded - st.batches + workers, t, NULL, out)))
                return rc;
            prev = br_util_now_ns();
        }
        if ((rc = bench__consume(g, k, t, &bytes, out)))
            return rc;
        t1 = br_util_now_ns();
        loop->iteration_done(loop, t1 - prev, k);
        out->units += k;
        out->bytes += bytes;
        out->seconds += (double)(t1 - prev) / 1e9;
        prev = t1;
        /* Where everyone ran, between the timed parts (topology.h). */
        bench_placement_sample(g);
        if (!n_base)
            continue;
        /* Idle for two loads' time: a worker loads a batch in about
         * workers x unit_ns. */
        if ((rc = wait_workers_quiet(g, 100000 + 2 * bench__max_u64(1, workers) * unit_ns, out)))
            return rc;
        for (unsigned i = 0; i < n_base; i++) {
            uint64_t b0;
            /* One unit untimed, as the subject's clock starts after
             * untimed batches: both start with their data in cache. */
            if ((rc = base[i].run(base[i].ctx, 1)))
                return rc;
            b0 = br_util_now_ns();
            if ((rc = base[i].run(base[i].ctx, k)))
                return rc;
            base[i].ns += br_util_now_ns() - b0;
            base[i].units += k;
        }
    }
    return 0;
}

int bench__private_loads(void *ctx, uint64_t n)
{
    struct private_loader *pl = ctx;
    for (uint64_t i = 0; i < n; i++) {
        pl->job.seq = i;
        pl->job.size = 0;
        int rc = pl->load(&pl->job, pl->user);
        if (rc)
            return rc;
        if (pl->trainer)
            bench__sink = bench__training_step(pl->job.out, pl->job.size / 8, pl->trainer->work);
    }
    return 0;
}
