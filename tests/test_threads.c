/* SPDX-License-Identifier: MIT */
/*
 * The library's thread contract (batchring.h, "Threads"), written for
 * ThreadSanitizer (make test-tsan) as much as for the plain build:
 *   - br_stats_get and br_worker_stats_get in monitoring threads while
 *     another thread calls br_next, then br_close from a third thread;
 *   - br_ring_status_get from threads while an attached consumer's br_next runs;
 *   - independent generators opened, used and closed in parallel threads,
 *     with br_last_error(NULL) per thread.
 * Every batch is checked (tu_batch_matches), and what the monitors read
 * must be consistent: counters never go back, never pass what the
 * consumer has taken.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_util.h"

#define N_IDS 1024u
#define BATCH 16u
#define TOTAL 1500u /* batches each consumer takes; < TU_MAX_SEQ */
#define MONITORS 2

static tu_shared *open_shared(br_options *opt, uint64_t **ids, int32_t **labels)
{
    assert_int_equal(br_options_init(opt), 0);
    opt->batch_size = BATCH;
    opt->workers = 2;
    opt->slots = 8;
    opt->slot_bytes = BATCH * 64;
    *ids = tu_ids_identity(N_IDS);
    *labels = tu_labels_for(*ids, N_IDS);
    tu_shared *sh = tu_shared_new();
    tu_shared_config(sh, *ids, *labels, N_IDS, opt, 64);
    return sh;
}

/* ---------------------------------------- stats readers beside br_next */

struct monitor {
    br_gen *g;
    const char *ring;             /* named ring: br_ring_status_get too */
    _Atomic uint32_t *stop;       /* set by the consumer thread when done */
    _Atomic uint64_t *taken;      /* batches the consumer has taken so far */
    uint64_t reads;               /* how many snapshots it took */
    char why[256];                /* the first inconsistency, or "" */
};

static void *monitor_main(void *arg)
{
    struct monitor *m = arg;
    uint64_t last_batches = 0, last_loaded = 0, last_cursor = 0;
    /* Runs until told to stop, and at least a few times, so that a reader
     * that never overlaps br_next cannot pass for one that does. */
    while (!atomic_load_explicit(m->stop, memory_order_acquire) || m->reads < 8) {
        br_stats s;
        /* Read before the snapshot: the consumer's count can only grow. */
        uint64_t floor = atomic_load_explicit(m->taken, memory_order_acquire);
        int rc = br_stats_get(m->g, &s);
        uint64_t ceiling = atomic_load_explicit(m->taken, memory_order_acquire);
        if (rc) {
            snprintf(m->why, sizeof m->why, "br_stats_get: %s", br_err_name(rc));
            break;
        }
        if (s.batches < last_batches || s.batches < floor || s.batches > ceiling + 1 ||
            s.loaded < last_loaded) {
            snprintf(m->why, sizeof m->why,
                     "stats went wrong: batches %" PRIu64 " (before %" PRIu64 ", taken %" PRIu64
                     "..%" PRIu64 "), loaded %" PRIu64 " (before %" PRIu64 ")",
                     s.batches, last_batches, floor, ceiling, s.loaded, last_loaded);
            break;
        }
        last_batches = s.batches;
        last_loaded = s.loaded;
        for (uint32_t i = 0; i < s.workers; i++) {
            br_worker_stats ws;
            rc = br_worker_stats_get(m->g, i, &ws);
            if (rc || ws.pid <= 0) {
                snprintf(m->why, sizeof m->why, "br_worker_stats_get(%u): %s, pid %d", i,
                         br_err_name(rc), (int)ws.pid);
                break;
            }
        }
        if (m->ring) {
            br_ring_status st;
            rc = br_ring_status_get(m->ring, &st, NULL, 0);
            if (rc) {
                snprintf(m->why, sizeof m->why, "br_ring_status_get: %s: %s", br_err_name(rc),
                         br_last_error(NULL));
                break;
            }
            if (st.cursor < last_cursor || !st.owner_alive) {
                snprintf(m->why, sizeof m->why, "br_ring_status_get: cursor %" PRIu64
                         " after %" PRIu64 ", owner alive %d", st.cursor, last_cursor,
                         (int)st.owner_alive);
                break;
            }
            last_cursor = st.cursor;
        }
        if (m->why[0])
            break;
        m->reads++;
    }
    return NULL;
}

/* Takes TOTAL batches, checking each, while MONITORS threads read. */
static void consume_monitored(br_gen *g, const tu_shared *sh, const char *ring)
{
    _Atomic uint32_t stop = 0;
    _Atomic uint64_t taken = 0;
    struct monitor m[MONITORS];
    pthread_t th[MONITORS];
    for (int i = 0; i < MONITORS; i++) {
        m[i] = (struct monitor){.g = g, .ring = ring, .stop = &stop, .taken = &taken};
        assert_int_equal(pthread_create(&th[i], NULL, monitor_main, &m[i]), 0);
    }
    char why[256] = "";
    br_batch b;
    for (uint64_t seq = 0; seq < TOTAL && !why[0]; seq++) {
        int rc = tu_next(g, &b, NULL);
        if (rc) {
            snprintf(why, sizeof why, "br_next for seq %" PRIu64 ": %s: %s", seq,
                     br_err_name(rc), br_last_error(g));
            break;
        }
        /* Pairs with the monitors' acquire loads: once they see seq + 1
         * taken, br_stats_get must say at least that much. */
        atomic_store_explicit(&taken, seq + 1, memory_order_release);
        tu_batch_matches(sh, &b, seq, why, sizeof why);
    }
    atomic_store_explicit(&stop, 1, memory_order_release);
    for (int i = 0; i < MONITORS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        if (m[i].why[0])
            fail_msg("monitor %d: %s", i, m[i].why);
        assert_true(m[i].reads >= 8);
    }
    if (why[0])
        fail_msg("%s", why);
}

static void *closer_main(void *arg)
{
    return (void *)(intptr_t)br_close(arg);
}

/* br_close from a thread other than the one that called br_next. */
static void close_from_thread(br_gen *g)
{
    pthread_t th;
    void *ret = (void *)(intptr_t)-1;
    assert_int_equal(pthread_create(&th, NULL, closer_main, g), 0);
    assert_int_equal(pthread_join(th, &ret), 0);
    assert_int_equal((int)(intptr_t)ret, 0);
}

static void test_threads_stats_while_next(void **state)
{
    (void)state;
    tu_leaks leaks;
    tu_leaks_begin(&leaks);
    br_options opt;
    uint64_t *ids;
    int32_t *labels;
    tu_shared *sh = open_shared(&opt, &ids, &labels);
    br_gen *g = NULL;
    int rc = br_open(&g, tu_loader, sh, ids, labels, N_IDS, &opt);
    if (rc)
        fail_msg("br_open: %s: %s", br_err_name(rc), br_last_error(NULL));
    tu_track(g);
    consume_monitored(g, sh, NULL);
    br_stats s;
    assert_int_equal(br_stats_get(g, &s), 0);
    assert_int_equal(s.batches, TOTAL);
    close_from_thread(g);
    assert_int_equal(tu_close(g), 0); /* untracks; a second close is a no-op */
    assert_int_not_equal(br_stats_get(g, &s), 0);
    tu_assert_loaders_ok(sh);
    tu_shared_free(sh);
    tu_release(ids);
    tu_release(labels);
    tu_leaks_check(&leaks);
}

/* ------------------------------------- br_ring_status_get beside a consumer */

static void test_threads_ring_stat_while_next(void **state)
{
    (void)state;
    tu_leaks leaks;
    tu_leaks_begin(&leaks);
    br_options opt;
    uint64_t *ids;
    int32_t *labels;
    tu_shared *sh = open_shared(&opt, &ids, &labels);
    char name[64];
    snprintf(name, sizeof name, "/brtest-%d-threads", (int)getpid());
    opt.name = name;
    int ready[2];
    assert_int_equal(pipe(ready), 0);
    /* The producer is a process of its own, forked before any thread. */
    pid_t producer = fork();
    assert_true(producer >= 0);
    if (producer == 0) {
        br_gen *p = NULL;
        close(ready[0]);
        int rc = br_open(&p, tu_loader, sh, ids, labels, N_IDS, &opt);
        char ok = rc == 0;
        if (write(ready[1], &ok, 1) != 1 || rc)
            _exit(1);
        /* Serves until the test SIGTERMs it; br_close removes the ring. */
        sigset_t term;
        sigemptyset(&term);
        sigaddset(&term, SIGTERM);
        sigprocmask(SIG_BLOCK, &term, NULL);
        int sig = 0;
        sigwait(&term, &sig);
        br_close(p);
        _exit(0);
    }
    close(ready[1]);
    char ok = 0;
    assert_int_equal(read(ready[0], &ok, 1), 1);
    close(ready[0]);
    assert_int_equal(ok, 1);

    br_gen *g = NULL;
    int rc = br_attach(&g, name, tu_ms(10000));
    if (rc)
        fail_msg("br_attach %s: %s: %s", name, br_err_name(rc), br_last_error(NULL));
    tu_track(g);
    consume_monitored(g, sh, name);
    close_from_thread(g);
    tu_close(g);

    int st = 0;
    assert_int_equal(kill(producer, SIGTERM), 0);
    assert_int_equal(waitpid(producer, &st, 0), producer);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    tu_shared_free(sh);
    tu_release(ids);
    tu_release(labels);
    tu_leaks_check(&leaks);
}

/* ------------------------------------------ generators in parallel threads */

#define PARALLEL 3

struct opener {
    tu_shared *sh;
    uint64_t *ids;
    int32_t *labels;
    br_options opt;
    bool bad; /* this thread's br_open must fail */
    char why[256];
};

/* Opens, drains 200 batches and closes, all in this thread: the workers die
 * with the thread that opened them (PR_SET_PDEATHSIG). */
static void *opener_main(void *arg)
{
    struct opener *o = arg;
    br_gen *g = NULL;
    int rc = br_open(&g, tu_loader, o->sh, o->ids, o->labels, N_IDS, &o->opt);
    if (o->bad) {
        /* The message is this thread's, whatever the others did meanwhile. */
        if (rc != -EINVAL || !strstr(br_last_error(NULL), "batch_size"))
            snprintf(o->why, sizeof o->why, "a bad br_open gave %s: '%s'", br_err_name(rc),
                     br_last_error(NULL));
        return NULL;
    }
    if (rc) {
        snprintf(o->why, sizeof o->why, "br_open: %s: %s", br_err_name(rc), br_last_error(NULL));
        return NULL;
    }
    if (br_last_error(NULL)[0])
        snprintf(o->why, sizeof o->why, "a good br_open left a message: '%s'",
                 br_last_error(NULL));
    br_batch b;
    for (uint64_t seq = 0; seq < 200 && !o->why[0]; seq++) {
        rc = tu_next(g, &b, NULL);
        if (rc)
            snprintf(o->why, sizeof o->why, "br_next: %s: %s", br_err_name(rc),
                     br_last_error(g));
        else
            tu_batch_matches(o->sh, &b, seq, o->why, sizeof o->why);
    }
    rc = br_close(g);
    if (rc && !o->why[0])
        snprintf(o->why, sizeof o->why, "br_close: %s", br_err_name(rc));
    return NULL;
}

static void test_threads_generators_in_parallel(void **state)
{
    (void)state;
    tu_leaks leaks;
    tu_leaks_begin(&leaks);
    struct opener o[PARALLEL + 1];
    pthread_t th[PARALLEL + 1];
    memset(o, 0, sizeof o);
    for (int i = 0; i <= PARALLEL; i++) {
        o[i].sh = open_shared(&o[i].opt, &o[i].ids, &o[i].labels);
        o[i].bad = i == PARALLEL;
        if (o[i].bad)
            o[i].opt.batch_size = 0;
    }
    for (int i = 0; i <= PARALLEL; i++)
        assert_int_equal(pthread_create(&th[i], NULL, opener_main, &o[i]), 0);
    for (int i = 0; i <= PARALLEL; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    for (int i = 0; i <= PARALLEL; i++) {
        if (o[i].why[0])
            fail_msg("thread %d: %s", i, o[i].why);
        if (!o[i].bad)
            tu_assert_loaders_ok(o[i].sh);
        tu_shared_free(o[i].sh);
        tu_release(o[i].ids);
        tu_release(o[i].labels);
    }
    tu_leaks_check(&leaks);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_threads_stats_while_next, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_threads_ring_stat_while_next, tu_setup,
                                        tu_teardown),
        cmocka_unit_test_setup_teardown(test_threads_generators_in_parallel, tu_setup,
                                        tu_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
