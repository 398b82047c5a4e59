/* SPDX-License-Identifier: MIT */
/*
 * End-to-end tests of the generator's contract: which batches arrive, in
 * which order, with which ids, labels and bytes, for every worker count and
 * ring depth. Loaders run in real forked workers (or inline for workers=0)
 * and fill each slot with a pattern that depends on the batch's seq and ids,
 * so a batch that is stale, shifted, torn or someone else's is detected.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <errno.h>
#include <sched.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "test_util.h"
#include "consumer/consumer.h"
#include "producer/cpus.h"

/* One generator run: what to open and how far to read. */
struct gen_case {
    size_t n;
    uint32_t batch_size;
    bool drop_last;
    uint32_t workers;
    uint32_t slots;  /* 0: leave BR_SLOTS_AUTO */
    uint64_t epochs; /* 0: forever, read `stop_after` batches then close */
    uint64_t stop_after;
    const uint64_t *ids; /* NULL: identity */
    bool no_labels;
    int size_mode;
    size_t rec_bytes;
    size_t slot_bytes; /* 0: batch_size * rec_bytes */
    bool offsets;      /* the loader fills per-sample offsets */
};

/* Total batches of a finite run, from the documented schedule. */
static uint64_t case_total(const tu_shared *sh, uint64_t epochs)
{
    return tu_batches_per_epoch(sh) * epochs;
}

/* The workers' pids as the stats give them right after br_open (a worker
 * that runs out of batches at the end of the last epoch exits, and its pid
 * then reads 0). Every case here has more batches than slots, so no worker
 * can have finished before the consumer's first br_next. */
static void worker_pids(br_gen *g, const tu_shared *sh, int32_t *pids)
{
    tu_assert_workers_live(g, sh->workers, pids);
    for (uint32_t i = 0; i < sh->workers; i++) {
        br_worker_stats ws;
        assert_int_equal(br_worker_stats_get(g, i, &ws), 0);
        assert_int_equal(ws.restarts, 0);
    }
    br_worker_stats ws;
    assert_int_equal(br_worker_stats_get(g, sh->workers, &ws), -EINVAL);
}

static void check_worker_stats(br_gen *g, const tu_shared *sh, const int32_t *pids, uint64_t seqs)
{
    br_stats s;
    assert_int_equal(br_stats_get(g, &s), 0);
    assert_int_equal(s.workers, sh->workers);
    assert_int_equal(s.restarts, 0);

    for (uint32_t i = 0; i < sh->workers; i++) {
        br_worker_stats ws;
        assert_int_equal(br_worker_stats_get(g, i, &ws), 0);
        /* Nobody died, so nobody was replaced. */
        if (ws.pid != 0)
            assert_int_equal(ws.pid, pids[i]);
        assert_int_equal(ws.restarts, 0);
    }

    /* Every batch was loaded by one of the workers the stats named, or by
     * the test process itself when loading is inline. */
    for (uint64_t seq = 0; seq < seqs; seq++) {
        int32_t pid = atomic_load(&sh->pid_of[seq]);
        if (sh->workers == 0) {
            assert_int_equal(pid, sh->parent);
            continue;
        }
        bool known = false;
        for (uint32_t i = 0; i < sh->workers; i++)
            known |= pid == pids[i] && atomic_load(&sh->worker_of[seq]) == i;
        if (!known)
            fail_msg("seq %" PRIu64 " loaded by pid %d as worker %u: not what "
                     "br_worker_stats_get said",
                     seq, pid, atomic_load(&sh->worker_of[seq]));
    }
}

static void run_case(const struct gen_case *c)
{
    tu_leaks leaks;
    tu_leaks_begin(&leaks);

    uint64_t *own_ids = c->ids ? NULL : tu_ids_identity(c->n);
    const uint64_t *ids = c->ids ? c->ids : own_ids;
    int32_t *labels = c->no_labels ? NULL : tu_labels_for(ids, c->n);

    br_options opt;
    assert_int_equal(br_options_init(&opt), 0);
    opt.batch_size = c->batch_size;
    opt.workers = c->workers;
    opt.drop_last = c->drop_last;
    opt.epochs = c->epochs;
    /* 0: two slots per worker, the shallow ring these cases were written
     * for: every worker is still alive at the first br_next. The automatic
     * depth of a ring of such small batches would hold whole epochs. */
    opt.slots = c->slots ? c->slots : 2 * (c->workers ? c->workers : 1);
    opt.slot_bytes = c->slot_bytes ? c->slot_bytes : c->batch_size * c->rec_bytes;

    tu_shared *sh = tu_shared_new();
    tu_shared_config(sh, ids, labels, c->n, &opt, c->rec_bytes);
    sh->size_mode = c->size_mode;
    sh->offsets = c->offsets;
    /* These cases are chosen so that no lowering happens; the lowering has
     * its own test in test_options. */
    assert_int_equal(sh->workers, c->workers);

    br_gen *g = NULL;
    int rc = br_open(&g, tu_loader, sh, ids, labels, c->n, &opt);
    if (rc != 0)
        fail_msg("br_open: %s: %s", br_err_name(rc), br_last_error(NULL));
    assert_non_null(g);
    tu_track(g);
    /* Nothing went wrong, so there is nothing to report. */
    assert_string_equal(br_last_error(g), "");
    int32_t pids[8] = {0};
    assert_true(sh->workers <= 8);
    if (c->slots != BR_SLOTS_AUTO)
        worker_pids(g, sh, pids);

    uint64_t total = c->epochs ? case_total(sh, c->epochs) : c->stop_after;
    assert_true(total <= TU_MAX_SEQ);
    uint64_t bytes = 0;
    br_batch b;
    for (uint64_t seq = 0; seq < total; seq++) {
        memset(&b, 0xa5, sizeof b);
        rc = br_next(g, &b);
        if (rc != 0)
            fail_msg("br_next for seq %" PRIu64 " of %" PRIu64 ": %s: %s", seq, total,
                     br_err_name(rc), br_last_error(g));
        tu_check_batch(sh, &b, seq);
        bytes += b.size;
    }
    if (c->epochs) {
        /* The end is sticky: every later call says so again. */
        for (int i = 0; i < 3; i++)
            assert_int_equal(br_next(g, &b), BR_EOF);
    }

    br_stats s;
    assert_int_equal(br_stats_get(g, &s), 0);
    assert_int_equal(s.batches, total);
    assert_int_equal(s.bytes, bytes);
    /* A finite run with no deaths loads each batch once, none past the end. */
    if (c->epochs)
        assert_int_equal(s.loaded, total);
    if (c->slots == BR_SLOTS_AUTO) {
        /* A deep ring: workers may have loaded everything and exited
         * before the first br_next, so take each worker's pid from the
         * first batch it loaded; check_worker_stats then holds every
         * batch of that worker to the same pid. */
        for (uint64_t seq = total; seq-- > 0;)
            pids[atomic_load(&sh->worker_of[seq]) % 8] = atomic_load(&sh->pid_of[seq]);
        /* A worker that loaded nothing (the others took every batch). */
        for (uint32_t i = 0; i < sh->workers; i++) {
            br_worker_stats ws;
            assert_int_equal(br_worker_stats_get(g, i, &ws), 0);
            if (pids[i] == 0) {
                assert_int_equal(ws.batches, 0);
                pids[i] = ws.pid;
            }
        }
        assert_true(s.slots > 2 * (c->workers ? c->workers : 1));
    }
    check_worker_stats(g, sh, pids, total);

    assert_int_equal(tu_close(g), 0);
    assert_int_equal(br_close(g), 0); /* idempotent */
    tu_assert_loaders_ok(sh);
    /* Each batch was loaded exactly once: nothing died, nothing was redone. */
    for (uint64_t seq = 0; seq < total; seq++)
        if (atomic_load(&sh->attempts[seq]) != 1)
            fail_msg("seq %" PRIu64 " loaded %u times", seq, atomic_load(&sh->attempts[seq]));
    tu_leaks_check(&leaks);

    tu_shared_free(sh);
    tu_release(labels);
    tu_release(own_ids);
}

/* n=103, B=10: ten full batches and a short one of 3 per epoch; with
 * drop_last the short one goes. n=100: the batches divide evenly, so
 * drop_last must drop nothing. */
static void run_sequences(uint32_t workers)
{
    static const struct {
        size_t n;
        bool drop_last;
    } shapes[] = {{103, false}, {103, true}, {100, false}, {100, true}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        struct gen_case c = {
            .n = shapes[i].n,
            .batch_size = 10,
            .drop_last = shapes[i].drop_last,
            .workers = workers,
            .epochs = 3,
            .size_mode = TU_SIZE_RECORDS,
            .rec_bytes = 24, /* not a multiple of 8: the tail bytes count */
        };
        print_message("workers %u, n %zu, drop_last %d\n", workers, c.n, c.drop_last);
        run_case(&c);
    }
}

static void test_gen_sequence_workers0(void **state)
{
    (void)state;
    run_sequences(0);
}

static void test_gen_sequence_workers1(void **state)
{
    (void)state;
    run_sequences(1);
}

static void test_gen_sequence_workers2(void **state)
{
    (void)state;
    run_sequences(2);
}

static void test_gen_sequence_workers5(void **state)
{
    (void)state;
    run_sequences(5);
}

static void test_gen_sequence_without_labels(void **state)
{
    (void)state;
    for (uint32_t workers = 0; workers <= 2; workers += 2) {
        struct gen_case c = {.n = 57,
                             .batch_size = 8,
                             .workers = workers,
                             .epochs = 2,
                             .no_labels = true,
                             .size_mode = TU_SIZE_RECORDS,
                             .rec_bytes = 16};
        run_case(&c);
    }
}

static void test_gen_data_large_batches(void **state)
{
    (void)state;
    /* 256 KiB a batch, many pages per slot: a slot mapped differently in
     * the worker and in the consumer would show up as wrong pages. */
    struct gen_case c = {.n = 96,
                         .batch_size = 8,
                         .workers = 2,
                         .epochs = 2,
                         .size_mode = TU_SIZE_RECORDS,
                         .rec_bytes = 32768};
    run_case(&c);
}

static void test_gen_eof_repeated(void **state)
{
    (void)state;
    tu_leaks leaks;
    tu_leaks_begin(&leaks);
    uint64_t *ids = tu_ids_identity(30);
    br_options opt;
    assert_int_equal(br_options_init(&opt), 0);
    opt.batch_size = 10;
    opt.epochs = 1;
    opt.slot_bytes = 10 * 8;
    tu_shared *sh = tu_shared_new();
    tu_shared_config(sh, ids, NULL, 30, &opt, 8);

    br_gen *g;
    assert_int_equal(br_open(&g, tu_loader, sh, ids, NULL, 30, &opt), 0);
    tu_track(g);
    br_batch b;
    for (uint64_t seq = 0; seq < 3; seq++) {
        assert_int_equal(br_next(g, &b), 0);
        tu_check_batch(sh, &b, seq);
    }
    for (int i = 0; i < 5; i++)
        assert_int_equal(br_next(g, &b), BR_EOF);
    /* BR_EOF is not a batch: the counter stays at the real ones. */
    br_stats s;
    assert_int_equal(br_stats_get(g, &s), 0);
    assert_int_equal(s.batches, 3);
    assert_int_equal(tu_close(g), 0);
    /* After close the answer is "stopped", not a stale end of data. */
    assert_int_equal(br_next(g, &b), BR_ESTOPPED);
    tu_assert_loaders_ok(sh);
    tu_leaks_check(&leaks);
    tu_shared_free(sh);
    tu_release(ids);
}

static void test_gen_slots_one(void **state)
{
    (void)state;
    /* One slot: the consumer's return of a slot is the only thing that lets
     * any worker go on, so a missed wake-up hangs here. */
    static const uint32_t workers[] = {0, 1, 3};
    for (size_t i = 0; i < 3; i++) {
        struct gen_case c = {.n = 40,
                             .batch_size = 4,
                             .workers = workers[i],
                             .slots = 1,
                             .epochs = 2,
                             .size_mode = TU_SIZE_RECORDS,
                             .rec_bytes = 40};
        print_message("slots 1, workers %u\n", workers[i]);
        run_case(&c);
    }
}

/* The automatic depth: two slots per worker, deepened for small batches to
 * about 8 MiB of ring (at most 128 slots; 16 MiB and 256 where the
 * workers hold every CPU); never for inline loading. */
static uint32_t resolved_slots(uint32_t workers, size_t slot_bytes)
{
    br_options opt;
    br_stats st;
    br_gen *g = NULL;
    tu_shared *sh = tu_shared_new();
    assert_int_equal(br_options_init(&opt), 0);
    opt.batch_size = 1;
    opt.workers = workers;
    opt.slot_bytes = slot_bytes;
    opt.epochs = 1;
    /* More batches than workers, so that none is lowered away. */
    tu_shared_config(sh, NULL, NULL, 256, &opt, 8);
    int rc = br_open(&g, tu_loader, sh, NULL, NULL, 256, &opt);
    if (rc)
        fail_msg("br_open: %s: %s", br_err_name(rc), br_last_error(NULL));
    assert_int_equal(br_stats_get(g, &st), 0);
    assert_int_equal(br_close(g), 0);
    tu_shared_free(sh);
    return st.slots;
}

/* The largest inner (below the last level) data cache of any online CPU:
 * the library reads the trainer's, which may be any of them. */
static uint64_t largest_inner_cache(void)
{
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    uint64_t most = 0;
    for (long cpu = 0; cpu < online; cpu++) {
        uint64_t b = br__cpu_inner_cache_bytes(BR_SYSFS_CPU, (int)cpu);
        most = b > most ? b : most;
    }
    return most;
}

/* What BR_SLOTS_AUTO must give `workers` for small batches, as properties
 * rather than a second copy of the rule: 2 slots per worker at least; the
 * ring deepened to at most 8 MiB and 128 slots; where the workers hold
 * every CPU, all of 16 MiB and 256 (the consumer sleeps for runs of it); with a CPU
 * to spare, at least 16 slots and otherwise within half the inner cache. */
static void assert_auto_depth(uint32_t workers, uint64_t slot_bytes)
{
    const uint32_t n = resolved_slots(workers, slot_bytes), least = 2 * workers;
    const bool crowded = !br__ring_cpus_to_spare(workers);
    /* 8 MiB / 128 slots at most; 16 MiB / 256 where workers hold every CPU. */
    const uint64_t ring_bytes = crowded ? 16u << 20 : 8u << 20, max_slots = crowded ? 256 : 128;
    uint64_t deep = ring_bytes / slot_bytes, inner = largest_inner_cache();
    deep = deep > max_slots ? max_slots : deep;
    if (n < least || (n > least && (n > max_slots || (uint64_t)n * slot_bytes > ring_bytes)))
        fail_msg("%u workers, %llu-byte slots: %u slots, outside 2 x workers .. %llu MiB / %llu",
                 workers, (unsigned long long)slot_bytes, n,
                 (unsigned long long)(ring_bytes >> 20), (unsigned long long)max_slots);
    if (crowded) {
        if (n != (deep > least ? deep : least))
            fail_msg("%u workers on every CPU, %llu-byte slots: %u slots, expected the full depth",
                     workers, (unsigned long long)slot_bytes, n);
    } else if (n > least && n > 16 && inner && (uint64_t)n * slot_bytes > inner / 2) {
        fail_msg("%u workers with a CPU to spare, %llu-byte slots: %u slots, more than half the "
                 "largest inner cache (%llu bytes) and more than 16",
                 workers, (unsigned long long)slot_bytes, n, (unsigned long long)inner);
    } else if (n < (deep < 16 ? deep : 16) && n > least) {
        fail_msg("%u workers with a CPU to spare: %u slots, fewer than 16", workers, n);
    }
}

static void test_gen_auto_depth(void **state)
{
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    (void)state;
    assert_int_equal(resolved_slots(0, 4096), 2);
    assert_int_equal(resolved_slots(1, 16u << 20), 2);
    /* 8 MiB of 1 MiB slots; 16 MiB where the workers hold every CPU. */
    assert_int_equal(resolved_slots(3, 1u << 20), br__ring_cpus_to_spare(3) ? 8 : 16);
    assert_int_equal(resolved_slots(1, 1u << 20), br__ring_cpus_to_spare(1) ? 8 : 16);
    assert_int_equal(resolved_slots(1, 4u << 20), br__ring_cpus_to_spare(1) ? 2 : 4);
    assert_auto_depth(2, 64u << 10);
    assert_auto_depth(1, 64u << 10);
    assert_auto_depth(2, 4096);
    assert_auto_depth(1, 4096);
    assert_int_equal(resolved_slots(100, 4096), br__ring_cpus_to_spare(100) ? 200 : 256);
    /* Workers that fill every core: the consumer sleeps for most of the
     * ring, and the full 16 MiB spreads its wake-ups, whatever the cache. */
    assert_int_equal(resolved_slots((uint32_t)online, 64u << 10), online > 128 ? 2 * online : 256);
    /* With a core to spare, a ring within the inner cache, never below
     * 16 slots: a worker woken once per half ring, at least 8 batches. */
    if (br__ring_cpus_to_spare(1)) {
        uint32_t n = resolved_slots(1, 64u << 10);
        uint64_t inner = largest_inner_cache();
        assert_true(n >= 16 && n <= 128);
        assert_true(n == 16 || inner == 0 || (uint64_t)n * (64u << 10) <= inner / 2);
    }
    /* And a whole run through such a ring: workers run far ahead, finish
     * and exit while the consumer is still at the start. */
    static const uint32_t workers[] = {1, 3};
    for (size_t i = 0; i < 2; i++) {
        struct gen_case c = {.n = 103,
                             .batch_size = 10,
                             .workers = workers[i],
                             .slots = BR_SLOTS_AUTO,
                             .epochs = 3,
                             .size_mode = TU_SIZE_RECORDS,
                             .rec_bytes = 24};
        print_message("automatic depth, workers %u\n", workers[i]);
        run_case(&c);
    }
}

static void test_gen_custom_ids(void **state)
{
    (void)state;
    /* Ids are values, not positions: large, out of order, with a duplicate
     * and the extremes, so an implementation that sends positions or
     * truncates to 32 bits is caught. 50 = 7 * 7 + 1: the last batch holds
     * one id. */
    enum { N = 50 };
    uint64_t ids[N];
    for (size_t i = 0; i < N; i++)
        ids[i] = (1ull << 40) + ((i * 7919u) % 1009u) * 0x100000001ull;
    ids[3] = ids[17];
    ids[20] = UINT64_MAX;
    ids[21] = 0;
    for (uint32_t workers = 0; workers <= 3; workers += 3) {
        struct gen_case c = {.n = N,
                             .batch_size = 7,
                             .workers = workers,
                             .epochs = 2,
                             .ids = ids,
                             .size_mode = TU_SIZE_RECORDS,
                             .rec_bytes = 12};
        run_case(&c);
    }
}

static void test_gen_variable_size(void **state)
{
    (void)state;
    /* Sizes 0, 1, cap, cap - 1 and others; cap not a multiple of a page. */
    for (uint32_t workers = 0; workers <= 2; workers += 2) {
        struct gen_case c = {.n = 60,
                             .batch_size = 6,
                             .workers = workers,
                             .epochs = 2,
                             .size_mode = TU_SIZE_VARIABLE,
                             .slot_bytes = 10000};
        run_case(&c);
    }
}

static void test_gen_empty_batches(void **state)
{
    (void)state;
    /* A loader that writes nothing (size 0) still produces batches: the
     * batch carries its ids and labels, e.g. for a consumer that reads the
     * data itself. */
    for (uint32_t workers = 0; workers <= 2; workers += 2) {
        struct gen_case c = {.n = 33,
                             .batch_size = 4,
                             .workers = workers,
                             .epochs = 2,
                             .size_mode = TU_SIZE_ZERO,
                             .slot_bytes = 64};
        run_case(&c);
    }
}

static void test_gen_forever_wraps(void **state)
{
    (void)state;
    /* epochs = 0: the schedule starts again at the first id after each
     * epoch (3 batches per epoch here), with seq still counting up. */
    for (uint32_t workers = 0; workers <= 2; workers += 2) {
        struct gen_case c = {.n = 25,
                             .batch_size = 10,
                             .workers = workers,
                             .epochs = 0,
                             .stop_after = 32,
                             .size_mode = TU_SIZE_RECORDS,
                             .rec_bytes = 8};
        run_case(&c);
    }
}

static void test_gen_edge_batch_sizes(void **state)
{
    (void)state;
    static const struct {
        size_t n;
        uint32_t b;
        bool drop_last;
    } shapes[] = {
        {10, 10, false},                 /* one batch per epoch */
        {10, 10, true},  {10, 1, false}, /* one id per batch */
        {10, 3, true},                   /* 3 batches, 1 id dropped each epoch */
        {10, 6, true},                   /* 1 batch, 4 ids dropped */
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        struct gen_case c = {.n = shapes[i].n,
                             .batch_size = shapes[i].b,
                             .drop_last = shapes[i].drop_last,
                             .workers = 1,
                             .epochs = 3,
                             .size_mode = TU_SIZE_RECORDS,
                             .rec_bytes = 8};
        run_case(&c);
    }
}

static void test_gen_offsets(void **state)
{
    (void)state;
    /* Per-sample offsets written by the loader reach the batch as they
     * were; every other test checks that a batch without them has NULL. */
    for (uint32_t workers = 0; workers <= 2; workers += 2) {
        struct gen_case c = {.n = 47,
                             .batch_size = 5,
                             .workers = workers,
                             .epochs = 2,
                             .size_mode = TU_SIZE_RECORDS,
                             .rec_bytes = 20,
                             .offsets = true};
        run_case(&c);
    }
}

static void worker_init_run(uint32_t workers)
{
    tu_leaks leaks;
    tu_leaks_begin(&leaks);
    enum { N = 60 };
    uint64_t *ids = tu_ids_identity(N);
    br_options o;
    assert_int_equal(br_options_init(&o), 0);
    o.batch_size = 6;
    o.workers = workers;
    o.epochs = 2;
    o.slot_bytes = 6 * 8;
    o.worker_init = tu_worker_init;
    o.worker_fini = tu_worker_fini;
    tu_shared *sh = tu_shared_new();
    tu_shared_config(sh, ids, NULL, N, &o, 8);
    sh->expect_state = true;

    br_gen *g;
    assert_int_equal(br_open(&g, tu_loader, sh, ids, NULL, N, &o), 0);
    tu_track(g);
    br_batch b;
    uint64_t total = tu_batches_per_epoch(sh) * 2;
    for (uint64_t seq = 0; seq < total; seq++) {
        assert_int_equal(br_next(g, &b), 0);
        tu_check_batch(sh, &b, seq);
    }
    assert_int_equal(br_next(g, &b), BR_EOF);
    if (workers) {
        /* Workers run out of batches and end normally, each calling
         * worker_fini once; wait for that, so that close finds them gone
         * (test_faults closes while they may still be in worker_fini). */
        assert_true(tu_wait_ge(&sh->fini_calls, workers, TU_WAIT_MS));
    }
    assert_int_equal(tu_close(g), 0);
    /* Inline, the trainer's own state is finished at close. */
    assert_int_equal(atomic_load(&sh->init_calls), workers ? workers : 1);
    assert_int_equal(atomic_load(&sh->fini_calls), workers ? workers : 1);
    tu_assert_loaders_ok(sh);
    tu_leaks_check(&leaks);
    tu_shared_free(sh);
    tu_release(ids);
}

static void test_gen_worker_init_state(void **state)
{
    (void)state;
    /* Each worker's init runs once, in that worker, and every job it
     * loads carries the state init made. */
    worker_init_run(0);
    worker_init_run(3);
}

/* A loader that writes the seq, after one byte from a pipe when user is a
 * descriptor (>= 0): the test decides when each batch is ready. */
static int gate_loader(br_job *job, void *user)
{
    int fd = (int)(intptr_t)user;
    char byte;
    if (fd >= 0 && read(fd, &byte, 1) != 1)
        return -EIO;
    memcpy(job->out, &job->seq, sizeof job->seq);
    job->size = sizeof job->seq;
    return 0;
}

/* br_stats.slot_sleeps and stall_sleeps (since 0.3) count the sleeps of
 * the protocol: a worker whose ring is full sleeps for a free slot, and a
 * consumer whose batch is not ready sleeps for it. Conditions are polled,
 * never waited for by a clock. */
static void test_gen_sleep_counters(void **state)
{
    br_options opt;
    br_stats st;
    br_worker_stats ws;
    br_batch b;
    br_gen *g = NULL;
    int fds[2];
    (void)state;

    /* The workers run ahead: 4 slots filled, the fifth batch's worker
     * sleeps until the consumer releases. */
    br_options_init(&opt);
    opt.batch_size = 1;
    opt.workers = 1;
    opt.slots = 4;
    opt.slot_bytes = 64;
    assert_int_equal(br_open(&g, gate_loader, (void *)(intptr_t)-1, NULL, NULL, 1000, &opt), 0);
    /* Polled for at most 30 s (a bound on a hang, not a timing). */
    for (time_t until = time(NULL) + 30;;) {
        assert_int_equal(br_stats_get(g, &st), 0);
        if (st.slot_sleeps > 0)
            break;
        assert_true(time(NULL) < until);
        sched_yield();
    }
    /* Fresh snapshots: the counters are read one by one, and the one that
     * saw the sleep may have read `loaded` before the worker's four loads
     * (seen under TSan). Asleep on the full ring, the worker loads nothing
     * more until a release, but counts another sleep at each slice: the
     * worker's count first, the total after it. */
    assert_int_equal(br_worker_stats_get(g, 0, &ws), 0);
    assert_int_equal(br_stats_get(g, &st), 0);
    assert_int_equal(st.loaded, 4);
    assert_int_equal(st.stall_sleeps, 0);
    assert_true(ws.slot_sleeps >= 1 && ws.slot_sleeps <= st.slot_sleeps);
    /* Kicked at the end of each run of releases: the whole epoch flows. */
    for (uint64_t i = 0; i < 1000; i++) {
        assert_int_equal(br_next(g, &b), 0);
        assert_int_equal(*(const uint64_t *)b.data, i);
    }
    br_close(g);

    /* The consumer waits: a batch that the test holds back times out after
     * at least one sleep, and arrives once the test lets it go. */
    assert_int_equal(pipe(fds), 0);
    br_options_init(&opt);
    opt.batch_size = 1;
    opt.workers = 1;
    opt.slot_bytes = 64;
    opt.timeout_ms = 30;
    assert_int_equal(br_open(&g, gate_loader, (void *)(intptr_t)fds[0], NULL, NULL, 10, &opt), 0);
    assert_int_equal(br_next(g, &b), -ETIMEDOUT);
    assert_int_equal(br_stats_get(g, &st), 0);
    assert_true(st.stall_sleeps >= 1);
    assert_int_equal(write(fds[1], "x", 1), 1);
    assert_int_equal(br_next(g, &b), 0);
    assert_int_equal(b.seq, 0);
    br_close(g);
    close(fds[0]);
    close(fds[1]);
}

static void test_gen_two_generators_independent(void **state)
{
    (void)state;
    /* Two generators in one process: their batches interleave in the
     * consumer, and closing one leaves the other's workers running. */
    tu_leaks leaks;
    tu_leaks_begin(&leaks);
    enum { NA = 60, NB = 45 };
    uint64_t *ids_a = tu_ids_identity(NA);
    uint64_t *ids_b = tu_ids_identity(NB);
    for (size_t i = 0; i < NB; i++)
        ids_b[i] = 1000000 + 3 * i;

    br_options oa, ob;
    assert_int_equal(br_options_init(&oa), 0);
    assert_int_equal(br_options_init(&ob), 0);
    oa.batch_size = 6;
    oa.workers = 2;
    /* Shallow rings: the workers must still be running when one generator
     * closes, to show that the other's keep running. */
    oa.slots = 4;
    ob.slots = 2;
    oa.epochs = 2;
    oa.slot_bytes = 6 * 16;
    ob.batch_size = 5;
    ob.workers = 1;
    ob.epochs = 0;
    ob.slot_bytes = 5 * 32;
    tu_shared *sa = tu_shared_new(), *sb = tu_shared_new();
    tu_shared_config(sa, ids_a, NULL, NA, &oa, 16);
    tu_shared_config(sb, ids_b, NULL, NB, &ob, 32);

    br_gen *ga, *gb;
    assert_int_equal(br_open(&ga, tu_loader, sa, ids_a, NULL, NA, &oa), 0);
    tu_track(ga);
    assert_int_equal(br_open(&gb, tu_loader, sb, ids_b, NULL, NB, &ob), 0);
    tu_track(gb);
    int32_t pids_a[2], pid_b;
    tu_assert_workers_live(ga, 2, pids_a);
    tu_assert_workers_live(gb, 1, &pid_b);

    br_batch b;
    uint64_t seq_b = 0;
    for (uint64_t seq = 0; seq < 20; seq++) {
        assert_int_equal(br_next(ga, &b), 0);
        tu_check_batch(sa, &b, seq);
        assert_int_equal(br_next(gb, &b), 0);
        tu_check_batch(sb, &b, seq_b++);
    }
    assert_int_equal(br_next(ga, &b), BR_EOF);
    assert_int_equal(tu_close(ga), 0);
    /* ga's workers are gone, gb's is not, and gb goes on from where it
     * was. */
    assert_false(tu_is_live_descendant(pids_a[0]));
    assert_false(tu_is_live_descendant(pids_a[1]));
    int32_t pid_b_now;
    tu_assert_workers_live(gb, 1, &pid_b_now);
    assert_int_equal(pid_b_now, pid_b);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(br_next(gb, &b), 0);
        tu_check_batch(sb, &b, seq_b++);
    }
    assert_int_equal(tu_close(gb), 0);
    tu_assert_loaders_ok(sa);
    tu_assert_loaders_ok(sb);
    tu_leaks_check(&leaks);
    tu_shared_free(sa);
    tu_shared_free(sb);
    tu_release(ids_a);
    tu_release(ids_b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_gen_sequence_workers0, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_gen_sequence_workers1, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_gen_sequence_workers2, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_gen_sequence_workers5, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_gen_sequence_without_labels, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_gen_data_large_batches, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_gen_eof_repeated, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_gen_slots_one, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_gen_auto_depth, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_gen_custom_ids, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_gen_variable_size, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_gen_empty_batches, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_gen_forever_wraps, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_gen_edge_batch_sizes, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_gen_offsets, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_gen_worker_init_state, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_gen_two_generators_independent, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_gen_sleep_counters, tu_setup, tu_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
