/* SPDX-License-Identifier: MIT */
/*
 * Holding batches (opt.hold, br_release, br_batch_copy): out-of-order
 * releases, workers refilling exactly the released slots, the over-hold
 * error, workers = 0, 1, n, and a named ring whose consumer dies holding
 * batches.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "test_util.h"

#define N_IDS 96u
#define DATA 64u

/* Written by loaders in any process: loads per seq, and their total (a
 * futex word the test waits on). */
struct hold_shared {
    _Atomic uint32_t loads[N_IDS];
    _Atomic uint32_t total;
};

static struct hold_shared *shared_new(void)
{
    struct hold_shared *s = mmap(NULL, sizeof *s, PROT_READ | PROT_WRITE,
                                 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(s != MAP_FAILED);
    return s;
}

/* One sample per batch: the data is the seq, then a pattern of it. */
static int hold_loader(br_job *job, void *user)
{
    struct hold_shared *s = user;
    uint64_t *out = job->out;
    for (unsigned i = 0; i < DATA / 8; i++)
        out[i] = job->seq * 1000 + i;
    job->size = DATA;
    if (job->seq < N_IDS) {
        atomic_fetch_add(&s->loads[job->seq], 1);
        tu_futex_wake(&s->loads[job->seq]);
    }
    atomic_fetch_add(&s->total, 1);
    tu_futex_wake(&s->total);
    return 0;
}

static void check_data(const br_batch *b, uint64_t seq)
{
    const uint64_t *d = b->data;
    assert_int_equal(b->seq, seq);
    assert_int_equal(b->size, DATA);
    for (unsigned i = 0; i < DATA / 8; i++)
        assert_int_equal(d[i], seq * 1000 + i);
}

static br_gen *open_hold(struct hold_shared *s, uint32_t workers, uint32_t slots, uint32_t hold,
                         const char *name)
{
    br_options opt;
    br_gen *g = NULL;
    br_options_init(&opt);
    opt.batch_size = 1;
    opt.workers = workers;
    opt.slots = slots;
    opt.slot_bytes = DATA;
    opt.epochs = 1;
    opt.hold = hold;
    opt.timeout_ms = -1;
    opt.name = name;
    int rc = br_open(&g, hold_loader, s, NULL, NULL, N_IDS, &opt);
    if (rc)
        fail_msg("br_open: %s (%s)", br_err_name(rc), br_last_error(NULL));
    return g;
}

static void next_ok(br_gen *g, br_batch *b, uint64_t seq)
{
    int rc = tu_next(g, b, NULL);
    if (rc)
        fail_msg("br_next for %llu: %s (%s)", (unsigned long long)seq, br_err_name(rc),
                 br_last_error(g));
    check_data(b, seq);
}

/* Holding and releasing in any order, over the whole run; every batch
 * stays intact while held. */
static void run_all(br_gen *g, uint32_t hold)
{
    br_batch held[64];
    uint32_t n = 0;
    uint64_t seq = 0;
    for (;;) {
        br_batch b;
        int rc = tu_next(g, &b, NULL);
        if (rc == BR_EOF)
            break;
        if (rc == BR_EHELD) {
            /* Release the middle one first, then the oldest: out of order. */
            uint32_t k = n > 2 ? n / 2 : 0;
            assert_true(n > 0);
            check_data(&held[k], held[k].seq);
            if (br_release(g, &held[k]))
                fail_msg("br_release %llu: %s", (unsigned long long)held[k].seq, br_last_error(g));
            held[k] = held[--n];
            continue;
        }
        if (rc)
            fail_msg("br_next: %s (%s)", br_err_name(rc), br_last_error(g));
        check_data(&b, seq++);
        assert_true(n < hold);
        held[n++] = b;
    }
    assert_int_equal(seq, N_IDS);
    for (uint32_t i = 0; i < n; i++)
        assert_int_equal(br_release(g, &held[i]), 0);
}

static void test_hold_release_out_of_order_workers_0_1_n(void **state)
{
    (void)state;
    const uint32_t workers[] = {0, 1, 3};
    for (unsigned i = 0; i < 3; i++) {
        struct hold_shared *s = shared_new();
        br_gen *g = open_hold(s, workers[i], BR_SLOTS_AUTO, 4, NULL);
        run_all(g, 4);
        assert_int_equal(br_close(g), 0);
        for (unsigned k = 0; k < N_IDS; k++)
            assert_int_equal(atomic_load(&s->loads[k]), 1);
        munmap(s, sizeof *s);
    }
}

/* 3 workers, 6 slots, hold 4: batches 0..3 held, 4 and 5 ready. Releasing
 * batch 2 lets exactly batch 8 (slot 2) load; 6 and 7 wait for slots 0
 * and 1, which are held. */
static void test_hold_workers_refill_exactly_released_slots(void **state)
{
    (void)state;
    struct hold_shared *s = shared_new();
    br_gen *g = open_hold(s, 3, 6, 4, NULL);
    br_batch b[4], x;
    for (unsigned i = 0; i < 4; i++)
        next_ok(g, &b[i], i);
    assert_int_equal(br_next(g, &x), BR_EHELD);
    assert_non_null(strstr(br_last_error(g), "holds 4 batches"));
    assert_true(tu_wait_ge(&s->total, 6, TU_WAIT_MS));
    assert_int_equal(br_release(g, &b[2]), 0);
    assert_true(tu_wait_ge(&s->loads[8], 1, TU_WAIT_MS));
    /* Batches 6 and 7 cannot have loaded: their slots hold 0 and 1. */
    assert_int_equal(atomic_load(&s->loads[6]), 0);
    assert_int_equal(atomic_load(&s->loads[7]), 0);
    /* Double release and a batch never returned are refused. */
    assert_int_equal(br_release(g, &b[2]), -EINVAL);
    assert_non_null(strstr(br_last_error(g), "released already"));
    assert_int_equal(br_release_seq(g, 9), -EINVAL);
    assert_non_null(strstr(br_last_error(g), "has not returned it"));
    /* Batches 0, 1, 3 are intact, and 4 can be taken. */
    check_data(&b[0], 0);
    check_data(&b[1], 1);
    check_data(&b[3], 3);
    next_ok(g, &x, 4);
    assert_int_equal(br_release_seq(g, 0), 0);
    assert_true(tu_wait_ge(&s->loads[6], 1, TU_WAIT_MS));
    assert_int_equal(atomic_load(&s->loads[7]), 0);
    assert_int_equal(br_release_seq(g, 1), 0);
    assert_int_equal(br_release_seq(g, 3), 0);
    assert_int_equal(br_release_seq(g, 4), 0);
    for (uint64_t seq = 5; seq < N_IDS; seq++) {
        next_ok(g, &x, seq);
        assert_int_equal(br_release(g, &x), 0);
    }
    assert_int_equal(br_next(g, &x), BR_EOF);
    assert_int_equal(br_close(g), 0);
    for (unsigned k = 0; k < N_IDS; k++)
        assert_int_equal(atomic_load(&s->loads[k]), 1);
    munmap(s, sizeof *s);
}

/* hold 2 of 4 slots: one batch kept while three pass is fine; the fourth
 * needs the kept batch's slot, which is BR_EHELD, not a wait. Also with
 * workers = 0, where the consumer itself would load into it. */
static void test_hold_next_needs_held_slot_is_named_error(void **state)
{
    (void)state;
    for (uint32_t workers = 0; workers <= 1; workers++) {
        struct hold_shared *s = shared_new();
        br_gen *g = open_hold(s, workers, 4, 2, NULL);
        br_batch keep, x;
        next_ok(g, &keep, 0);
        for (uint64_t seq = 1; seq < 4; seq++) {
            next_ok(g, &x, seq);
            assert_int_equal(br_release(g, &x), 0);
        }
        assert_int_equal(br_next(g, &x), BR_EHELD);
        assert_non_null(strstr(br_last_error(g), "batch 0 is still held"));
        check_data(&keep, 0);
        assert_int_equal(br_release(g, &keep), 0);
        next_ok(g, &x, 4);
        assert_int_equal(br_close(g), 0);
        munmap(s, sizeof *s);
    }
}

/* hold 0 and 1 are today's behaviour: br_next gives the previous batch
 * back, and holding more is impossible but never an error. An explicit
 * release of the held one is allowed. */
static void test_hold_default_releases_implicitly(void **state)
{
    (void)state;
    for (uint32_t hold = 0; hold <= 1; hold++) {
        struct hold_shared *s = shared_new();
        br_gen *g = open_hold(s, 1, 2, hold, NULL);
        br_batch x;
        br_stats st;
        assert_int_equal(br_stats_get(g, &st), 0);
        assert_int_equal(st.hold, 1); /* 0 means 1 */
        for (uint64_t seq = 0; seq < 10; seq++)
            next_ok(g, &x, seq);
        assert_int_equal(br_release(g, &x), 0);
        assert_int_equal(br_release(g, &x), -EINVAL);
        next_ok(g, &x, 10);
        assert_int_equal(br_close(g), 0);
        munmap(s, sizeof *s);
    }
}

static void test_hold_validation(void **state)
{
    (void)state;
    struct hold_shared *s = shared_new();
    br_options opt;
    br_gen *g = NULL;
    br_options_init(&opt);
    opt.batch_size = 1;
    opt.slot_bytes = DATA;
    opt.slots = 4;
    opt.hold = 4;
    assert_int_equal(br_open(&g, hold_loader, s, NULL, NULL, N_IDS, &opt), -EINVAL);
    assert_non_null(strstr(br_last_error(NULL), "hold 4 must be below slots 4"));
    assert_null(g);
    /* The automatic depth: 2 x workers free beside the held. */
    g = open_hold(s, 2, BR_SLOTS_AUTO, 5, NULL);
    {
        br_stats st;
        assert_int_equal(br_stats_get(g, &st), 0);
        assert_true(st.slots >= 2 * 2 + 5);
    }
    assert_int_equal(br_close(g), 0);
    munmap(s, sizeof *s);
}

static char ring_name[64];

static const char *unique_name(void)
{
    static unsigned n;
    snprintf(ring_name, sizeof ring_name, "/brtest-%d-hold%u", (int)getpid(), n++);
    return ring_name;
}

static br_gen *attach_ok(const char *name)
{
    br_gen *c = NULL;
    int rc = br_attach(&c, name, TU_WAIT_MS);
    if (rc)
        fail_msg("br_attach %s: %s (%s)", name, br_err_name(rc), br_last_error(NULL));
    return c;
}

/*
 * A named ring with hold 3. Consumer A (a child) takes 0, 1, 2, releases
 * 1 and dies holding 0 and 2. Consumer B takes over: it gets exactly 0
 * and 2 again (not 1), then 3; it closes holding 0 (br_close releases).
 * Consumer C gets 4 next: 2 and 3 were released by B, nothing is lost or
 * delivered twice.
 */
static void test_hold_takeover_after_consumer_dies_holding(void **state)
{
    (void)state;
    struct hold_shared *s = shared_new();
    const char *name = unique_name();
    br_gen *p = open_hold(s, 2, 8, 3, name);
    br_gen *c;
    br_batch b, keep;
    int status;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        br_gen *a = NULL;
        br_batch x[3];
        if (br_attach(&a, name, TU_WAIT_MS))
            _exit(10);
        for (unsigned i = 0; i < 3; i++)
            if (br_next(a, &x[i]) || x[i].seq != i)
                _exit(11);
        if (br_next(a, &b) != BR_EHELD)
            _exit(12);
        if (br_release(a, &x[1]))
            _exit(13);
        _exit(0); /* dies holding 0 and 2: no br_close */
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);

    c = attach_ok(name);
    /* The attached consumer learns the producer's hold from br_stats. */
    br_stats st;
    assert_int_equal(br_stats_get(c, &st), 0);
    assert_int_equal(st.hold, 3);
    assert_int_equal(br_stats_get(p, &st), 0);
    assert_int_equal(st.hold, 3);
    next_ok(c, &keep, 0);
    next_ok(c, &b, 2);
    assert_int_equal(br_release(c, &b), 0);
    /* 1 was released by A: not held, not delivered again. */
    assert_int_equal(br_release_seq(c, 1), -EINVAL);
    next_ok(c, &b, 3);
    assert_int_equal(br_release(c, &b), 0);
    check_data(&keep, 0);
    assert_int_equal(br_close(c), 0);

    c = attach_ok(name);
    for (uint64_t seq = 4; seq < N_IDS; seq++) {
        next_ok(c, &b, seq);
        assert_int_equal(br_release(c, &b), 0);
    }
    assert_int_equal(br_next(c, &b), BR_EOF);
    assert_int_equal(br_close(c), 0);
    assert_int_equal(br_serve_wait(p, TU_WAIT_MS), 0);
    assert_int_equal(br_close(p), 0);
    for (unsigned k = 0; k < N_IDS; k++)
        assert_int_equal(atomic_load(&s->loads[k]), 1);
    munmap(s, sizeof *s);
}

/* A consumer that took over and closed after re-delivering only the first
 * held batch leaves the rest, and skips what was released, for the next. */
static void test_hold_takeover_twice_delivers_each_once(void **state)
{
    (void)state;
    struct hold_shared *s = shared_new();
    const char *name = unique_name();
    br_gen *p = open_hold(s, 1, 8, 4, name);
    br_gen *c;
    br_batch b;
    int status;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        br_gen *a = NULL;
        br_batch x[4];
        if (br_attach(&a, name, TU_WAIT_MS))
            _exit(10);
        for (unsigned i = 0; i < 4; i++)
            if (br_next(a, &x[i]) || x[i].seq != i)
                _exit(11);
        if (br_release(a, &x[1]) || br_release(a, &x[2]))
            _exit(13);
        _exit(0); /* dies holding 0 and 3 */
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    /* B: takes 0 and dies too (a child again), holding it. */
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        br_gen *a = NULL;
        br_batch x;
        if (br_attach(&a, name, TU_WAIT_MS))
            _exit(10);
        if (br_next(a, &x) || x.seq != 0)
            _exit(11);
        _exit(0);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    c = attach_ok(name);
    next_ok(c, &b, 0);
    assert_int_equal(br_release(c, &b), 0);
    next_ok(c, &b, 3);
    assert_int_equal(br_release(c, &b), 0);
    next_ok(c, &b, 4);
    assert_int_equal(br_close(c), 0);
    assert_int_equal(br_close(p), 0);
    munmap(s, sizeof *s);
}

/* Found by the model (model_slots_hold_takeover2): A takes 0..3, releases
 * 0, 1 and 3 and dies holding 2; B attaches and dies before it takes
 * anything; C must get 2 and then 4. When an attach stored the first
 * unreleased batch (2) as the ring's cursor, C no longer knew that 3 had
 * been released and waited for it for good. */
static void test_hold_takeover_during_redelivery(void **state)
{
    (void)state;
    struct hold_shared *s = shared_new();
    const char *name = unique_name();
    br_gen *p = open_hold(s, 1, 8, 4, name);
    br_gen *c;
    br_batch b;
    int status;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        br_gen *a = NULL;
        br_batch x[4];
        if (br_attach(&a, name, TU_WAIT_MS))
            _exit(10);
        for (unsigned i = 0; i < 4; i++)
            if (br_next(a, &x[i]) || x[i].seq != i)
                _exit(11);
        if (br_release(a, &x[0]) || br_release(a, &x[1]) || br_release(a, &x[3]))
            _exit(13);
        _exit(0); /* dies holding 2 */
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        br_gen *a = NULL;
        if (br_attach(&a, name, TU_WAIT_MS))
            _exit(10);
        _exit(0); /* dies before its first br_next */
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    c = attach_ok(name);
    next_ok(c, &b, 2);
    assert_int_equal(br_release(c, &b), 0);
    next_ok(c, &b, 4);
    assert_int_equal(br_release(c, &b), 0);
    assert_int_equal(br_close(c), 0);
    assert_int_equal(br_close(p), 0);
    munmap(s, sizeof *s);
}

static void test_hold_batch_copy(void **state)
{
    (void)state;
    struct hold_shared *s = shared_new();
    br_gen *g = open_hold(s, 1, 4, 2, NULL);
    br_batch b, copy;
    uint64_t buf[DATA / 8];
    next_ok(g, &b, 0);
    assert_int_equal(br_batch_copy(&b, buf, sizeof buf - 1), -ENOSPC);
    assert_non_null(strstr(br_last_error(NULL), "dst only 63"));
    assert_int_equal(br_batch_copy(&b, NULL, sizeof buf), -EINVAL);
    assert_int_equal(br_batch_copy(&b, buf, sizeof buf), 0);
    assert_int_equal(br_release(g, &b), 0);
    copy = b;
    copy.data = buf;
    check_data(&copy, 0);
    assert_int_equal(br_close(g), 0);
    munmap(s, sizeof *s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hold_release_out_of_order_workers_0_1_n),
        cmocka_unit_test(test_hold_workers_refill_exactly_released_slots),
        cmocka_unit_test(test_hold_next_needs_held_slot_is_named_error),
        cmocka_unit_test(test_hold_default_releases_implicitly),
        cmocka_unit_test(test_hold_validation),
        cmocka_unit_test(test_hold_takeover_after_consumer_dies_holding),
        cmocka_unit_test(test_hold_takeover_twice_delivers_each_once),
        cmocka_unit_test(test_hold_takeover_during_redelivery),
        cmocka_unit_test(test_hold_batch_copy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
