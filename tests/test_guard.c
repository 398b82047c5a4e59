/* SPDX-License-Identifier: MIT */
/*
 * Guard mode (BR_GUARD=1, batchring.h): a loader that writes past job->cap
 * must be named, never corrupt another batch silently.
 *
 * The corruption detector (test_guard_overrun_never_corrupts) is
 * deterministic: one worker, four slots, a loader that writes its whole
 * slot plus 4 KiB. The consumer holds batch s; releasing s - 1 lets the
 * worker load s + 3 into the slot just before s's, and its overrun lands
 * on s. The consumer waits (futex on a shared page) until that load is
 * done, then checks s byte by byte. Without the guard (BR_TEST_GUARD=0 in
 * the environment runs it so) batch 1 is already corrupt and the test
 * fails; with it the first overrun kills the worker, and the run ends in
 * BR_EWORKER naming SIGSEGV and the batch.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test_util.h"

#define SLOT_8K 8192u
#define OVERRUN 4096u

/* The page a test shares with its loaders (MAP_SHARED, before br_open). */
struct overrun_shared {
    uint32_t nslots;
    uint64_t bad_seq;            /* the loader overruns at this seq only; UINT64_MAX: at
                                    every seq whose slot is not the last */
    _Atomic uint32_t loaded[64]; /* futex words: seq's loader finished writing */
};

/* Writes the whole slot with seq's pattern, then OVERRUN bytes past it
 * where the test says so. */
static int overrun_loader(br_job *job, void *user)
{
    struct overrun_shared *sh = user;
    bool overrun = sh->bad_seq == UINT64_MAX ? job->seq % sh->nslots != sh->nslots - 1
                                             : job->seq == sh->bad_seq;
    tu_pattern_fill(job->out, job->cap, job->seq);
    if (overrun)
        memset((uint8_t *)job->out + job->cap, 0x5a, OVERRUN);
    job->size = job->cap;
    if (job->seq < 64)
        tu_store_wake(&sh->loaded[job->seq], 1);
    return 0;
}

static void guard_env(bool on)
{
    const char *force = getenv("BR_TEST_GUARD");
    if (force && !strcmp(force, "0"))
        on = false; /* to see the detector fail without the guard */
    assert_int_equal(on ? setenv("BR_GUARD", "1", 1) : unsetenv("BR_GUARD"), 0);
}

/* Does this process map a PROT_NONE region of a batchring memfd or of
 * /dev/shm/name? (the guard pages of a ring it opened or attached) */
static bool maps_guard(const char *what)
{
    FILE *f = fopen("/proc/self/maps", "re");
    char line[512];
    bool found = false;
    assert_non_null(f);
    while (fgets(line, sizeof line, f))
        if (strstr(line, " ---s ") && strstr(line, what))
            found = true;
    fclose(f);
    return found;
}

/*
 * The detector: every batch the consumer gets is byte-exact, or the run
 * stops with an error naming the overrun. Fails without the guard.
 */
static void test_guard_overrun_never_corrupts(void **state)
{
    (void)state;
    struct overrun_shared *sh = tu_page_alloc(sizeof *sh);
    br_options opt;
    br_gen *g;
    br_batch b;
    tu_leaks leaks;
    const uint64_t n = 4 * 20;
    uint64_t got = 0;
    int rc = 0;

    guard_env(true);
    sh->nslots = 4;
    sh->bad_seq = UINT64_MAX;
    tu_leaks_begin(&leaks);
    br_options_init(&opt);
    opt.batch_size = 1;
    opt.workers = 1;
    opt.slots = sh->nslots;
    opt.slot_bytes = SLOT_8K;
    opt.epochs = 1;
    opt.max_restarts = 1;
    rc = br_open(&g, overrun_loader, sh, NULL, NULL, n, &opt);
    if (rc)
        fail_msg("br_open: %s: %s", br_err_name(rc), br_last_error(NULL));
    tu_track(g);
    for (uint64_t s = 0; s < n; s++) {
        rc = br_next(g, &b);
        if (rc)
            break;
        assert_int_equal(b.seq, s);
        /* Releasing s - 1 let the worker load s + 3 next to s: wait until
         * it has (its overrun, if any, is then in s's slot). */
        if (s + 3 < n && s + 3 < 64 && !tu_wait_ge(&sh->loaded[s + 3], 1, TU_WAIT_MS))
            fail_msg("batch %" PRIu64 " was never loaded", s + 3);
        size_t bad = tu_pattern_check(b.data, b.size, s);
        if (b.size != SLOT_8K || bad != b.size)
            fail_msg("batch %" PRIu64 " was delivered corrupt (byte %zu of %zu differs) and "
                     "nothing reported it: a loader's overrun went unnoticed",
                     s, bad, b.size);
        got++;
    }
    /* With the guard, seq 0's overrun killed its worker (and its
     * replacement): BR_EWORKER at batch 0, named. */
    if (rc != BR_EWORKER)
        fail_msg("after %" PRIu64 " batches br_next returned %s (%s), expected BR_EWORKER", got,
                 br_err_name(rc), rc ? br_last_error(g) : "ok");
    assert_int_equal(got, 0);
    tu_assert_contains(br_last_error(g), "SIGSEGV");
    tu_assert_contains(br_last_error(g), "batch 0");
    assert_int_equal(tu_close(g), 0);
    tu_leaks_check(&leaks);
    tu_page_free(sh, sizeof *sh);
    unsetenv("BR_GUARD");
}

/* 2 workers, 8 KiB slots, a 4 KiB overrun at batch 57 only: every batch
 * before it arrives intact, then BR_EWORKER names SIGSEGV and batch 57. */
static void test_guard_overrun_is_a_named_worker_death(void **state)
{
    (void)state;
    struct overrun_shared *sh = tu_page_alloc(sizeof *sh);
    br_options opt;
    br_gen *g;
    br_batch b;
    uint64_t s = 0;
    int rc;

    guard_env(true);
    sh->nslots = 4;
    sh->bad_seq = 57;
    br_options_init(&opt);
    opt.batch_size = 2;
    opt.workers = 2;
    opt.slots = 4;
    opt.slot_bytes = SLOT_8K;
    opt.epochs = 1;
    rc = br_open(&g, overrun_loader, sh, NULL, NULL, 400, &opt);
    if (rc)
        fail_msg("br_open: %s: %s", br_err_name(rc), br_last_error(NULL));
    tu_track(g);
    while ((rc = br_next(g, &b)) == 0) {
        assert_int_equal(b.seq, s);
        assert_int_equal(b.size, SLOT_8K);
        assert_int_equal(tu_pattern_check(b.data, b.size, s), b.size);
        s++;
    }
    if (rc != BR_EWORKER)
        fail_msg("br_next returned %s (%s) after %" PRIu64 " batches, expected BR_EWORKER",
                 br_err_name(rc), br_last_error(g), s);
    assert_int_equal(s, 57);
    tu_assert_contains(br_last_error(g), "SIGSEGV");
    tu_assert_contains(br_last_error(g), "batch 57");
    assert_int_equal(tu_close(g), 0);
    tu_page_free(sh, sizeof *sh);
    unsetenv("BR_GUARD");
}

/* A write between cap and the page-rounded end does not fault: the tail
 * pattern finds it, and the batch fails with BR_ELOADER naming it. */
static int tail_loader(br_job *job, void *user)
{
    (void)user;
    memset(job->out, 1, job->cap);
    if (job->seq == 3)
        ((uint8_t *)job->out)[job->cap] = 0; /* one byte past cap */
    job->size = job->cap;
    return 0;
}

static void test_guard_one_byte_overrun_fails_batch(void **state)
{
    (void)state;
    for (uint32_t workers = 0; workers <= 1; workers++) {
        br_options opt;
        br_gen *g;
        br_batch b;
        uint64_t s = 0;
        int rc;
        guard_env(true);
        br_options_init(&opt);
        opt.batch_size = 1;
        opt.workers = workers;
        opt.slot_bytes = 5000; /* not a page multiple */
        opt.epochs = 1;
        rc = br_open(&g, tail_loader, NULL, NULL, NULL, 10, &opt);
        if (rc)
            fail_msg("br_open: %s: %s", br_err_name(rc), br_last_error(NULL));
        tu_track(g);
        while ((rc = br_next(g, &b)) == 0)
            assert_int_equal(b.seq, s++);
        assert_int_equal(s, 3);
        if (rc != BR_ELOADER)
            fail_msg("workers %u: br_next returned %s (%s), expected BR_ELOADER", workers,
                     br_err_name(rc), br_last_error(g));
        tu_assert_contains(br_last_error(g), "past job->cap (5000 bytes)");
        tu_assert_contains(br_last_error(g), "byte 5000");
        tu_assert_contains(br_last_error(g), "batch 3");
        assert_int_equal(tu_close(g), 0);
    }
    unsetenv("BR_GUARD");
}

/* A well-behaved loader under the guard: every batch byte-exact, with
 * workers 0, 1 and 2, sizes from 0 to cap, a cap that is not a page
 * multiple; the ring really has its PROT_NONE pages. */
static void test_guard_well_behaved_byte_exact(void **state)
{
    (void)state;
    for (uint32_t workers = 0; workers <= 2; workers++) {
        tu_shared *sh = tu_shared_new();
        uint64_t *ids = tu_ids_identity(300);
        br_options opt;
        br_gen *g;
        br_batch b;
        br_stats st;
        tu_leaks leaks;
        int rc;

        tu_leaks_begin(&leaks);
        guard_env(true);
        br_options_init(&opt);
        opt.batch_size = 7;
        opt.workers = workers;
        opt.slot_bytes = 7 * 700 + 3; /* 4903: not a page multiple */
        opt.epochs = 2;
        tu_shared_config(sh, ids, NULL, 300, &opt, 700);
        sh->size_mode = TU_SIZE_VARIABLE;
        rc = br_open(&g, tu_loader, sh, ids, NULL, 300, &opt);
        if (rc)
            fail_msg("workers %u: br_open: %s: %s", workers, br_err_name(rc),
                     br_last_error(NULL));
        tu_track(g);
        assert_true(maps_guard("batchring"));
        uint64_t want = 2 * tu_batches_per_epoch(sh), s = 0;
        while ((rc = br_next(g, &b)) == 0)
            tu_check_batch(sh, &b, s++);
        assert_int_equal(rc, BR_EOF);
        assert_int_equal(s, want);
        assert_int_equal(br_stats_get(g, &st), 0);
        assert_int_equal(st.restarts, 0);
        tu_assert_loaders_ok(sh);
        assert_int_equal(tu_close(g), 0);
        assert_false(maps_guard("batchring"));
        tu_leaks_check(&leaks);
        tu_release(ids);
        tu_shared_free(sh);
    }
    unsetenv("BR_GUARD");
}

/* Without BR_GUARD the ring has no guard pages; a value that is neither
 * 0 nor 1 is refused, named. */
static void test_guard_env_values(void **state)
{
    (void)state;
    static const char *const bad[] = {"yes", "2", "on", " 1"};
    br_options opt;
    br_gen *g;
    uint64_t ids[4] = {0, 1, 2, 3};
    br_options_init(&opt);
    opt.batch_size = 1;
    opt.slot_bytes = 100;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(setenv("BR_GUARD", bad[i], 1), 0);
        g = (br_gen *)(uintptr_t)1;
        assert_int_equal(br_open(&g, tu_loader, NULL, ids, NULL, 4, &opt), -EINVAL);
        assert_null(g);
        tu_assert_contains(br_last_error(NULL), "BR_GUARD");
    }
    static const char *const off[] = {"0", ""};
    for (size_t i = 0; i < sizeof off / sizeof off[0]; i++) {
        tu_shared *sh = tu_shared_new();
        assert_int_equal(setenv("BR_GUARD", off[i], 1), 0);
        tu_shared_config(sh, ids, NULL, 4, &opt, 10);
        assert_int_equal(br_open(&g, tu_loader, sh, ids, NULL, 4, &opt), 0);
        tu_track(g);
        assert_false(maps_guard("batchring"));
        assert_int_equal(tu_close(g), 0);
        tu_shared_free(sh);
    }
    unsetenv("BR_GUARD");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_guard_overrun_never_corrupts, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_guard_overrun_is_a_named_worker_death, tu_setup,
                                        tu_teardown),
        cmocka_unit_test_setup_teardown(test_guard_one_byte_overrun_fails_batch, tu_setup,
                                        tu_teardown),
        cmocka_unit_test_setup_teardown(test_guard_well_behaved_byte_exact, tu_setup,
                                        tu_teardown),
        cmocka_unit_test_setup_teardown(test_guard_env_values, tu_setup, tu_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
