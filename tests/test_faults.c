/* SPDX-License-Identifier: MIT */
/*
 * Faults, end to end: loaders that fail, workers that die (SIGKILL from
 * inside and from outside, _exit, abort), the restart budget running out,
 * timeouts, and closing a generator in every state (worker_fini at an
 * orderly br_close, a stuck loader killed after the grace period). All
 * with real forked workers and real signals; every wait is on an event (a
 * futex word in a shared page, a thread join) or is the library's own
 * timeout under test; one loader takes a fixed time, as a slow batch does.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "producer/worker.h" /* BR_STOP_GRACE_MS */
#include "test_util.h"

/* ---- hooks: run inside the loader, in the worker (or inline) --------- */

/* Fails batch `arg` with -EIO; arg2 == 1: without a message; arg2 == 2:
 * returns 7, which is not a valid loader result; arg2 == 3: fills err to
 * the last byte without a NUL. */
static int hook_fail(br_job *job, tu_shared *sh, uint32_t attempt)
{
    (void)attempt;
    if (job->seq != sh->arg)
        return 0;
    if (sh->arg2 == 2)
        return 7;
    if (sh->arg2 == 3) {
        /* The whole buffer, no terminating NUL: a careless loader. */
        memset(job->err, 'x', job->err_cap);
        return -EIO;
    }
    if (sh->arg2 == 0)
        snprintf(job->err, job->err_cap, "disk on fire reading sample %" PRIu64, job->ids[0]);
    return -EIO;
}

/* Claims to have written more than the slot holds at batch `arg`:
 * cap + 1, or SIZE_MAX when arg2 != 0. */
static int hook_oversize(br_job *job, tu_shared *sh, uint32_t attempt)
{
    (void)attempt;
    if (job->seq != sh->arg)
        return 0;
    job->size = sh->arg2 ? SIZE_MAX : job->cap + 1;
    return TU_HOOK_HANDLED;
}

static void note_victim(br_job *job, tu_shared *sh)
{
    atomic_store(&sh->victim_worker, job->worker);
    atomic_store(&sh->victim_pid, (int32_t)getpid());
}

/* The first attempt at batch `arg` kills its own worker. */
static int hook_kill_self_once(br_job *job, tu_shared *sh, uint32_t attempt)
{
    if (job->seq == sh->arg && attempt == 0) {
        note_victim(job, sh);
        raise(SIGKILL);
    }
    return 0;
}

/* The first attempt at batch `arg` tells the test who it is and blocks
 * until it is killed (release is never set in that test). */
static int hook_block_for_killer(br_job *job, tu_shared *sh, uint32_t attempt)
{
    if (job->seq == sh->arg && attempt == 0) {
        note_victim(job, sh);
        tu_store_wake(&sh->flag, 1);
        tu_block_until_set(&sh->release);
    }
    return 0;
}

/* Every attempt at batch `arg` kills its worker: the restart budget runs
 * out. */
static int hook_always_die(br_job *job, tu_shared *sh, uint32_t attempt)
{
    (void)attempt;
    if (job->seq == sh->arg) {
        uint32_t d = atomic_fetch_add(&sh->deaths, 1);
        if (d < TU_MAX_DEATHS)
            atomic_store(&sh->death_pid[d], (int32_t)getpid());
        raise(SIGKILL);
    }
    return 0;
}

/* The first attempt at batch `arg` blocks until the test releases it. */
static int hook_block_once(br_job *job, tu_shared *sh, uint32_t attempt)
{
    if (job->seq == sh->arg && attempt == 0) {
        tu_store_wake(&sh->flag, 1);
        tu_block_until_set(&sh->release);
    }
    return 0;
}

/* Every batch from `arg` on blocks for good; arg2 != 0: with the catchable
 * termination signals blocked too, as a stubborn loader might. */
static int hook_block_from(br_job *job, tu_shared *sh, uint32_t attempt)
{
    (void)attempt;
    if (job->seq < sh->arg)
        return 0;
    if (sh->arg2) {
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGHUP);
        sigaddset(&set, SIGQUIT);
        sigaddset(&set, SIGUSR1);
        sigaddset(&set, SIGUSR2);
        sigprocmask(SIG_BLOCK, &set, NULL);
    }
    atomic_fetch_add(&sh->blocked, 1);
    tu_futex_wake(&sh->blocked);
    tu_block_until_set(&sh->release);
    return 0;
}

/* The first attempt at batch `arg` takes TU_SLOW_BATCH_MS (a wait on
 * `release`, which the test never sets): flag is 1 while it runs, 2 once
 * the loader has returned. */
#define TU_SLOW_BATCH_MS 200
static int hook_slow_once(br_job *job, tu_shared *sh, uint32_t attempt)
{
    if (job->seq != sh->arg || attempt != 0)
        return 0;
    tu_store_wake(&sh->flag, 1);
    uint64_t end = tu_now_ns() + UINT64_C(1000000) * TU_SLOW_BATCH_MS;
    for (uint64_t now; (now = tu_now_ns()) < end;)
        tu_futex_wait(&sh->release, 0, (int)((end - now) / 1000000u) + 1);
    tu_store_wake(&sh->flag, 2);
    return 0;
}

/* Batch `arg` never comes back: its worker says who it is, then sits in
 * pause() for good, as a loader stuck in a read would. */
static int hook_stuck_in_pause(br_job *job, tu_shared *sh, uint32_t attempt)
{
    (void)attempt;
    if (job->seq != sh->arg)
        return 0;
    note_victim(job, sh);
    atomic_fetch_add(&sh->blocked, 1);
    tu_futex_wake(&sh->blocked);
    for (;;)
        pause();
}

/* The first attempt at batch `arg` ends its worker without a signal
 * (arg2 == 0: _exit(7)) or with SIGABRT (arg2 == 1: abort()). */
static int hook_die_once(br_job *job, tu_shared *sh, uint32_t attempt)
{
    if (job->seq != sh->arg || attempt != 0)
        return 0;
    note_victim(job, sh);
    if (sh->arg2 == 0)
        _exit(7);
    /* No core file: the death is the point, not its post-mortem. */
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    abort();
}

/* ---- helpers ------------------------------------------------------------ */

static void kill_and_wait_handled(br_gen *g, uint32_t w, int32_t pid);

struct fixture {
    tu_leaks leaks;
    uint64_t *ids;
    int32_t *labels;
    size_t n;
    br_options opt;
    tu_shared *sh;
    br_gen *g;
};

/* Identity ids 0..n-1 with labels; batches of B, one epoch, rec_bytes 16. */
static void fx_init(struct fixture *fx, size_t n, uint32_t batch_size, uint32_t workers)
{
    memset(fx, 0, sizeof *fx);
    tu_leaks_begin(&fx->leaks);
    fx->n = n;
    fx->ids = tu_ids_identity(n);
    fx->labels = tu_labels_for(fx->ids, n);
    assert_int_equal(br_options_init(&fx->opt), 0);
    fx->opt.batch_size = batch_size;
    fx->opt.workers = workers;
    fx->opt.epochs = 1;
    fx->opt.slot_bytes = 16u * batch_size;
    /* The shallow ring these cases are written for: deaths land while
     * workers still have batches ahead (the automatic depth of a ring of
     * such small batches would hold the whole run). */
    fx->opt.slots = 2 * (workers ? workers : 1);
    fx->sh = tu_shared_new();
}

static void fx_open(struct fixture *fx)
{
    tu_shared_config(fx->sh, fx->ids, fx->labels, fx->n, &fx->opt, 16);
    int rc = br_open(&fx->g, tu_loader, fx->sh, fx->ids, fx->labels, fx->n, &fx->opt);
    if (rc != 0)
        fail_msg("br_open: %s: %s", br_err_name(rc), br_last_error(NULL));
    tu_track(fx->g);
}

/* Reads batches first..last-1 and checks each. */
static void fx_read(struct fixture *fx, uint64_t first, uint64_t last)
{
    br_batch b;
    for (uint64_t seq = first; seq < last; seq++) {
        int rc = tu_next(fx->g, &b, NULL);
        if (rc != 0)
            fail_msg("br_next for seq %" PRIu64 ": %s: %s", seq, br_err_name(rc),
                     br_last_error(fx->g));
        tu_check_batch(fx->sh, &b, seq);
    }
}

static uint64_t fx_total(const struct fixture *fx)
{
    return tu_batches_per_epoch(fx->sh) * fx->opt.epochs;
}

/* After an error: the generator stays stopped, and keeps saying why
 * (`why` is part of the original message). */
static void fx_expect_stopped(struct fixture *fx, const char *why)
{
    br_batch b;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(br_next(fx->g, &b), BR_ESTOPPED);
        tu_assert_contains(br_last_error(fx->g), why);
    }
}

static void fx_close_and_check(struct fixture *fx)
{
    assert_int_equal(tu_close(fx->g), 0);
    assert_int_equal(br_close(fx->g), 0);
    tu_assert_loaders_ok(fx->sh);
    tu_leaks_check(&fx->leaks);
    tu_shared_free(fx->sh);
    tu_release(fx->labels);
    tu_release(fx->ids);
}

static void assert_once_except(const tu_shared *sh, uint64_t total, uint64_t twice)
{
    for (uint64_t seq = 0; seq < total; seq++) {
        uint32_t want = seq == twice ? 2 : 1;
        uint32_t got = atomic_load(&sh->attempts[seq]);
        if (got != want)
            fail_msg("seq %" PRIu64 " loaded %u times, expected %u", seq, got, want);
    }
}

/* ---- loader errors ------------------------------------------------------ */

static void test_faults_loader_error_propagates(void **state)
{
    (void)state;
    static const uint32_t workers[] = {0, 2};
    static const uint64_t fail_at[] = {0, 6};
    for (size_t w = 0; w < 2; w++)
        for (size_t f = 0; f < 2; f++)
            for (int how = 0; how <= 3; how++) {
                struct fixture fx;
                fx_init(&fx, 100, 10, workers[w]);
                fx.sh->hook = hook_fail;
                fx.sh->arg = fail_at[f];
                fx.sh->arg2 = (uint64_t)how;
                fx_open(&fx);
                static const char *const hows[] = {"-EIO with a message", "-EIO, no message",
                                                   "returns 7", "unterminated message"};
                print_message("workers %u, fails at %" PRIu64 ": %s\n", workers[w], fail_at[f],
                              hows[how]);

                /* Everything before the failing batch arrives first. */
                fx_read(&fx, 0, fail_at[f]);
                br_batch b;
                int rc = tu_next(fx.g, &b, NULL);
                assert_int_equal(rc, BR_ELOADER);
                const char *msg = br_last_error(fx.g);
                char want[64];
                snprintf(want, sizeof want, "batch %" PRIu64, fail_at[f]);
                tu_assert_contains(msg, want);
                /* The batch's id range, first and last id. */
                snprintf(want, sizeof want, "%" PRIu64, fail_at[f] * 10);
                tu_assert_contains(msg, want);
                snprintf(want, sizeof want, "%" PRIu64, fail_at[f] * 10 + 9);
                tu_assert_contains(msg, want);
                if (how == 0) {
                    snprintf(want, sizeof want, "disk on fire reading sample %" PRIu64,
                             fail_at[f] * 10);
                    tu_assert_contains(msg, want);
                }
                if (how == 3) {
                    /* As much of it as fits, and no more than was there. */
                    tu_assert_contains(msg, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
                    assert_true(strspn(strstr(msg, "xxxx"), "x") < BR_ERR_CAP);
                }
                /* The loader's code is named (docs/errors.md); a positive
                 * result is called out as such. */
                tu_assert_contains(msg, how == 2 ? "returned 7" : "EIO");
                snprintf(want, sizeof want, "batch %" PRIu64, fail_at[f]);
                fx_expect_stopped(&fx, want);
                /* A loader error is an answer, not a crash: it is not
                 * retried. */
                assert_int_equal(atomic_load(&fx.sh->attempts[fail_at[f]]), 1);
                fx_close_and_check(&fx);
            }
}

static void test_faults_size_over_cap(void **state)
{
    (void)state;
    for (uint32_t workers = 0; workers <= 1; workers++)
        for (int huge = 0; huge <= 1; huge++) {
            struct fixture fx;
            fx_init(&fx, 40, 4, workers);
            fx.opt.slot_bytes = 4096;
            fx.sh->hook = hook_oversize;
            fx.sh->arg = 3;
            fx.sh->arg2 = (uint64_t)huge;
            fx_open(&fx);

            fx_read(&fx, 0, 3);
            br_batch b;
            assert_int_equal(tu_next(fx.g, &b, NULL), BR_ELOADER);
            const char *msg = br_last_error(fx.g);
            tu_assert_contains(msg, huge ? "18446744073709551615" : "4097");
            tu_assert_contains(msg, "4096");
            tu_assert_contains(msg, "batch 3");
            fx_expect_stopped(&fx, "batch 3");
            fx_close_and_check(&fx);
        }
}

/* Sets offsets that fall (sample 1 before sample 0) at batch `arg`. */
static int hook_bad_offsets(br_job *job, tu_shared *sh, uint32_t attempt)
{
    (void)attempt;
    if (job->seq != sh->arg)
        return 0;
    tu_pattern_fill(job->out, 64, 0);
    job->size = 64;
    for (uint32_t i = 0; i <= job->count; i++)
        job->offsets[i] = i;
    job->offsets[1] = 9;
    job->offsets[2] = 3;
    job->has_offsets = true;
    return TU_HOOK_HANDLED;
}

static void test_faults_bad_offsets(void **state)
{
    (void)state;
    for (uint32_t workers = 0; workers <= 1; workers++) {
        struct fixture fx;
        fx_init(&fx, 40, 4, workers);
        fx.sh->hook = hook_bad_offsets;
        fx.sh->arg = 2;
        fx_open(&fx);
        fx_read(&fx, 0, 2);
        br_batch b;
        assert_int_equal(tu_next(fx.g, &b, NULL), BR_ELOADER);
        tu_assert_contains(br_last_error(fx.g), "offsets");
        tu_assert_contains(br_last_error(fx.g), "batch 2");
        fx_expect_stopped(&fx, "batch 2");
        fx_close_and_check(&fx);
    }
}

static void test_faults_worker_init_fails(void **state)
{
    (void)state;
    /* worker_init fails in worker 1 of 2: the consumer gets the batches
     * that came before, in order, then BR_ELOADER with init's message; no
     * replacement is tried (it would fail the same way). The run is endless
     * so that worker 1 gets a batch to report on, however late it starts. */
    struct fixture fx;
    fx_init(&fx, 100, 10, 2);
    fx.opt.epochs = 0;
    fx.opt.worker_init = tu_worker_init;
    fx.opt.worker_fini = tu_worker_fini;
    fx.sh->expect_state = true;
    fx.sh->init_fail = 2;
    fx_open(&fx);

    br_batch b;
    uint64_t seq = 0;
    int rc;
    while ((rc = tu_next(fx.g, &b, NULL)) == 0) {
        tu_check_batch(fx.sh, &b, seq);
        seq++;
        assert_true(seq < TU_MAX_SEQ / 2);
    }
    assert_int_equal(rc, BR_ELOADER);
    const char *msg = br_last_error(fx.g);
    tu_assert_contains(msg, "worker_init");
    tu_assert_contains(msg, "no device for worker 1");
    char want[32];
    snprintf(want, sizeof want, "batch %" PRIu64, seq);
    tu_assert_contains(msg, want);
    fx_expect_stopped(&fx, "no device for worker 1");
    br_stats s;
    assert_int_equal(br_stats_get(fx.g, &s), 0);
    assert_int_equal(s.restarts, 0);
    assert_int_equal(tu_close(fx.g), 0);
    /* Worker 0 may not have got to its init when the failure arrived at
     * batch 0; nobody ran init a second time. */
    assert_in_range(atomic_load(&fx.sh->init_calls), 1, 2);
    fx.g = NULL;
    fx_close_and_check(&fx);
}

/* ---- worker deaths ------------------------------------------------------ */

struct killer_once {
    tu_shared *sh;
    int result; /* tu_kill_descendant's, or -ETIMEDOUT */
};

static void *killer_once_main(void *arg)
{
    struct killer_once *k = arg;
    if (!tu_wait_ge(&k->sh->flag, 1, TU_WAIT_MS)) {
        k->result = -ETIMEDOUT;
        return NULL;
    }
    k->result = tu_kill_descendant(atomic_load(&k->sh->victim_pid), SIGKILL);
    return NULL;
}

/*
 * One worker death in the middle of batch `at`, caused by the hook or (with
 * `killer`) by a thread of the test. `at` must be at least the ring depth:
 * workers fill the first `slots` batches without waiting for the consumer,
 * and the test reads the workers' pids before the death. Then every batch arrives exactly once,
 * in order, byte for byte; the dead worker has a replacement (a new, live
 * pid and one restart) and the other worker is untouched.
 */
static void one_death(tu_hook_fn hook, uint64_t at, uint64_t arg2, bool killer, uint32_t workers,
                      uint32_t slots)
{
    struct fixture fx;
    fx_init(&fx, 200, 10, workers);
    if (slots)
        fx.opt.slots = slots;
    fx.sh->hook = hook;
    fx.sh->arg = at;
    fx.sh->arg2 = arg2;
    fx_open(&fx);
    assert_true(at >= fx.opt.slots);
    int32_t before[4];
    assert_true(workers <= 4);
    for (uint32_t i = 0; i < workers; i++) {
        br_worker_stats ws;
        assert_int_equal(br_worker_stats_get(fx.g, i, &ws), 0);
        before[i] = ws.pid;
    }

    struct killer_once k = {.sh = fx.sh, .result = 0};
    pthread_t th;
    if (killer)
        assert_int_equal(pthread_create(&th, NULL, killer_once_main, &k), 0);
    /* With a killer, the kill lands while the loader is blocked inside
     * batch `at` and, most likely, while this thread waits for it. */
    uint64_t total = fx_total(&fx);
    fx_read(&fx, 0, at + 1);
    if (killer) {
        assert_int_equal(pthread_join(th, NULL), 0);
        assert_int_equal(k.result, 1);
    }

    int32_t victim = atomic_load(&fx.sh->victim_pid);
    uint32_t vw = atomic_load(&fx.sh->victim_worker);
    assert_in_range(vw, 0, workers - 1);
    assert_int_equal(victim, before[vw]);
    /* Checked mid-run: at the end of the last epoch workers exit, and their
     * pids read 0. */
    br_stats s;
    assert_int_equal(br_stats_get(fx.g, &s), 0);
    assert_int_equal(s.restarts, 1);
    for (uint32_t i = 0; i < workers; i++) {
        br_worker_stats ws;
        assert_int_equal(br_worker_stats_get(fx.g, i, &ws), 0);
        assert_int_equal(ws.restarts, i == vw ? 1 : 0);
        if (i == vw)
            assert_int_not_equal(ws.pid, victim);
        else
            assert_int_equal(ws.pid, before[i]);
        assert_true(tu_is_live_descendant(ws.pid));
    }
    /* The dead one was reaped before its replacement started, not left a
     * zombie. */
    char desc[256];
    if (tu_zombie_descendants(desc, sizeof desc) != 0)
        fail_msg("unreaped process(es): %s", desc);

    fx_read(&fx, at + 1, total);
    br_batch b;
    assert_int_equal(br_next(fx.g, &b), BR_EOF);
    assert_once_except(fx.sh, total, at);
    assert_int_equal(br_stats_get(fx.g, &s), 0);
    assert_int_equal(s.restarts, 1);
    fx_close_and_check(&fx);
}

static void test_faults_worker_killed_self_replaced(void **state)
{
    (void)state;
    one_death(hook_kill_self_once, 5, 0, false, 2, 0);
}

static void test_faults_worker_killed_from_outside_replaced(void **state)
{
    (void)state;
    one_death(hook_block_for_killer, 7, 0, true, 2, 0);
}

static void test_faults_worker_exit_or_abort_replaced(void **state)
{
    (void)state;
    print_message("worker dies by _exit(7)\n");
    one_death(hook_die_once, 6, 0, false, 2, 0);
    print_message("worker dies by abort()\n");
    one_death(hook_die_once, 6, 1, false, 2, 0);
}

static void test_faults_worker_killed_small_rings(void **state)
{
    (void)state;
    /* One worker and one slot: the replacement must take over a slot left
     * in LOADING, with nobody else to make progress. Then three workers
     * sharing one slot. */
    print_message("1 worker, 1 slot\n");
    one_death(hook_kill_self_once, 5, 0, false, 1, 1);
    print_message("3 workers, 1 slot\n");
    one_death(hook_kill_self_once, 5, 0, false, 3, 1);
    print_message("1 worker, killed from outside\n");
    one_death(hook_block_for_killer, 2, 0, true, 1, 0);
}

/* Kills its worker on the first attempt at batch `arg` and at `arg2`. */
static int hook_kill_twice(br_job *job, tu_shared *sh, uint32_t attempt)
{
    if ((job->seq == sh->arg || job->seq == sh->arg2) && attempt == 0) {
        uint32_t d = atomic_fetch_add(&sh->deaths, 1);
        if (d < TU_MAX_DEATHS)
            atomic_store(&sh->death_pid[d], (int32_t)getpid());
        raise(SIGKILL);
    }
    return 0;
}

static void test_faults_restarts_count_over_life(void **state)
{
    (void)state;
    /* max_restarts = 1: the death at batch 3 is survived, the one at batch
     * 8 is not, although each batch died only once. */
    struct fixture fx;
    fx_init(&fx, 150, 10, 2);
    fx.opt.max_restarts = 1;
    fx.sh->hook = hook_kill_twice;
    fx.sh->arg = 3;
    fx.sh->arg2 = 8;
    fx_open(&fx);
    fx_read(&fx, 0, 8);
    br_batch b;
    assert_int_equal(tu_next(fx.g, &b, NULL), BR_EWORKER);
    assert_int_equal(atomic_load(&fx.sh->deaths), 2);
    char want[32];
    snprintf(want, sizeof want, "%d", (int)atomic_load(&fx.sh->death_pid[1]));
    const char *msg = br_last_error(fx.g);
    tu_assert_contains(msg, want);
    tu_assert_contains(msg, "batch 8");
    tu_assert_contains(msg, "signal 9");
    fx_expect_stopped(&fx, "batch 8");
    fx_close_and_check(&fx);
}

static void test_faults_kill_while_consumer_away(void **state)
{
    (void)state;
    /* The consumer times out on batch 3, whose loader is blocked; while no
     * br_next is running, the test kills that worker. The next br_next
     * must notice the death, have batch 3 reloaded and go on. */
    struct fixture fx;
    fx_init(&fx, 100, 10, 2);
    fx.opt.timeout_ms = 20;
    fx.sh->hook = hook_block_for_killer;
    fx.sh->arg = 3;
    fx_open(&fx);
    fx_read(&fx, 0, 3);
    br_batch b;
    assert_true(tu_wait_ge(&fx.sh->flag, 1, TU_WAIT_MS));
    assert_int_equal(br_next(fx.g, &b), -ETIMEDOUT);
    assert_int_equal(tu_kill_descendant(atomic_load(&fx.sh->victim_pid), SIGKILL), 1);
    fx_read(&fx, 3, fx_total(&fx));
    assert_int_equal(br_next(fx.g, &b), BR_EOF);
    assert_once_except(fx.sh, fx_total(&fx), 3);
    br_stats s;
    assert_int_equal(br_stats_get(fx.g, &s), 0);
    assert_int_equal(s.restarts, 1);
    fx_close_and_check(&fx);
}

/* Waits until the ring is full and every worker slept for a slot. */
static void wait_ring_full_workers_asleep(br_gen *g, uint32_t workers, uint32_t slots)
{
    uint64_t deadline = tu_now_ns() + UINT64_C(1000000) * TU_WAIT_MS;
    for (;;) {
        br_stats st;
        uint32_t asleep = 0;
        assert_int_equal(br_stats_get(g, &st), 0);
        for (uint32_t w = 0; w < workers; w++) {
            br_worker_stats ws;
            assert_int_equal(br_worker_stats_get(g, w, &ws), 0);
            asleep += ws.slot_sleeps > 0;
        }
        if (st.loaded >= slots && asleep == workers)
            return;
        if (tu_now_ns() > deadline)
            fail_msg("the ring of %u slots did not fill (%" PRIu64 " loaded, %u of %u workers "
                     "slept) within %d ms", slots, st.loaded, asleep, workers, TU_WAIT_MS);
        poll(NULL, 0, 1);
    }
}

/* Reads /proc/PID/WHAT into buf, NUL-terminated; false (the reason in
 * seen) when it cannot be read. */
static bool read_proc(pid_t pid, const char *what, char *buf, size_t cap, char *seen,
                      size_t seen_cap)
{
    char path[64];
    int fd;
    ssize_t n;
    snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, what);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    n = fd >= 0 ? read(fd, buf, cap - 1) : -1;
    if (n < 0 || n == 0)
        snprintf(seen, seen_cap, "%s: %s", path, n < 0 ? strerror(errno) : "empty");
    if (fd >= 0)
        close(fd);
    buf[n > 0 ? n : 0] = '\0';
    return n > 0;
}

/* Whether pid is asleep in a futex wait now: state 'S' in /proc/PID/stat
 * and a futex call as the syscall /proc/PID/syscall says it blocks in. -1
 * when /proc cannot say (reading the syscall file takes ptrace access),
 * with what it said in seen. */
static int asleep_in_futex(pid_t pid, char *seen, size_t cap)
{
    char buf[512];
    const char *paren;
    long nr;

    if (!read_proc(pid, "stat", buf, sizeof buf, seen, cap))
        return -1;
    /* The name in parentheses may hold any byte: the state follows the
     * last ')'. */
    paren = strrchr(buf, ')');
    if (!paren || paren[1] != ' ' || paren[2] != 'S') {
        snprintf(seen, cap, "state %c", paren && paren[1] ? paren[2] : '?');
        return 0;
    }
    if (!read_proc(pid, "syscall", buf, sizeof buf, seen, cap))
        return -1;
    snprintf(seen, cap, "state S, syscall %.*s", (int)strcspn(buf, " \n"), buf);
    if (sscanf(buf, "%ld", &nr) != 1)
        return 0;
#ifdef SYS_futex_waitv
    if (nr == SYS_futex_waitv)
        return 1;
#endif
    return nr == SYS_futex;
}

/* Waits until worker pid is asleep in a futex wait (asleep_in_futex),
 * looking again every millisecond, at most TU_WAIT_MS. False, saying why,
 * where /proc cannot tell: the caller skips. */
static bool wait_asleep_in_futex(pid_t pid)
{
    uint64_t deadline = tu_now_ns() + UINT64_C(1000000) * TU_WAIT_MS;
    char seen[128];
    int r;
    while ((r = asleep_in_futex(pid, seen, sizeof seen)) == 0) {
        if (tu_now_ns() > deadline)
            fail_msg("worker %d was not asleep in a futex wait within %d ms (last seen: %s)",
                     (int)pid, TU_WAIT_MS, seen);
        poll(NULL, 0, 1);
    }
    if (r < 0)
        print_message("skipped: cannot tell whether a worker sleeps (%s)\n", seen);
    return r > 0;
}

static void test_faults_run_taken_while_workers_killed(void **state)
{
    (void)state;
    /* A deep ring (16 slots: the consumer kicks sleeping workers once per
     * run of 8 releases, each release a plain store): the workers fill
     * it and sleep, each on a batch it claimed for a slot still READY.
     * One is killed asleep (seen in a futex wait by /proc right before the
     * kill); the consumer then takes the ready run and the
     * other is killed in the middle of it, between two kicks. Their
     * replacements must load the claimed batches, and every batch must
     * arrive once, in order, loaded once. */
    struct fixture fx;
    br_worker_stats ws;
    br_stats st;
    br_batch b;
    fx_init(&fx, 200, 2, 2);
    fx.opt.slots = 16;
    fx_open(&fx);
    wait_ring_full_workers_asleep(fx.g, 2, 16);
    assert_int_equal(br_worker_stats_get(fx.g, 0, &ws), 0);
    /* Having slept once is not being asleep now: it is seen asleep right
     * before the kill. */
    if (!wait_asleep_in_futex(ws.pid)) {
        tu_close(fx.g);
        tu_shared_free(fx.sh);
        tu_release(fx.labels);
        tu_release(fx.ids);
        skip();
    }
    kill_and_wait_handled(fx.g, 0, ws.pid);
    fx_read(&fx, 0, 5);
    assert_int_equal(br_worker_stats_get(fx.g, 1, &ws), 0);
    kill_and_wait_handled(fx.g, 1, ws.pid);
    fx_read(&fx, 5, fx_total(&fx));
    assert_int_equal(br_next(fx.g, &b), BR_EOF);
    assert_once_except(fx.sh, fx_total(&fx), UINT64_MAX);
    assert_int_equal(br_stats_get(fx.g, &st), 0);
    assert_int_equal(st.restarts, 2);
    fx_close_and_check(&fx);
}

/* The first attempt at batch `arg` crashes with SIGSEGV. */
static int hook_crash(br_job *job, tu_shared *sh, uint32_t attempt)
{
    if (job->seq != sh->arg || attempt != 0)
        return 0;
    note_victim(job, sh);
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    raise(SIGSEGV);
    return 0;
}

/* What a trainer's crash reporter typically does: report and exit. */
static void trainer_crash_handler(int sig)
{
    (void)sig;
    _exit(70);
}

static void test_faults_loader_crash_named_despite_trainer_handler(void **state)
{
    (void)state;
    /* The trainer has its own SIGSEGV handler (as cmocka, ASan, Python's
     * faulthandler, JVMs do). A loader that crashes in a worker must still
     * kill that worker with the signal, so that the death is reported as
     * "signal 11": the trainer's handler is not the worker's to run (a
     * handler that longjmps would resume the trainer's code in the worker). */
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = trainer_crash_handler;
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGSEGV, &sa, &old), 0);

    struct fixture fx;
    fx_init(&fx, 100, 10, 1);
    fx.opt.max_restarts = 0;
    fx.sh->hook = hook_crash;
    fx.sh->arg = 2;
    fx_open(&fx);
    fx_read(&fx, 0, 2);
    br_batch b;
    int rc = tu_next(fx.g, &b, NULL);
    assert_int_equal(sigaction(SIGSEGV, &old, NULL), 0);
    assert_int_equal(rc, BR_EWORKER);
    const char *msg = br_last_error(fx.g);
    char want[32];
    snprintf(want, sizeof want, "%d", (int)atomic_load(&fx.sh->victim_pid));
    tu_assert_contains(msg, want);
    tu_assert_contains(msg, "batch 2");
    tu_assert_contains(msg, "signal 11");
    fx_expect_stopped(&fx, "batch 2");
    fx_close_and_check(&fx);
}

/* A consumer thread that takes over the generator for a while, then ends.
 * cmocka's asserts belong to the main thread, so it only records. */
struct handover {
    struct fixture *fx;
    uint64_t upto;          /* reads batches 0..upto-1 */
    _Atomic uint32_t tid;   /* futex word: its thread id, once running */
    _Atomic uint32_t done;  /* futex word: finished reading */
    _Atomic uint32_t leave; /* futex word: may end */
    char why[256];          /* empty when every batch was right */
};

static void *handover_main(void *arg)
{
    struct handover *h = arg;
    tu_store_wake(&h->tid, (uint32_t)gettid());
    br_batch b;
    for (uint64_t seq = 0; seq < h->upto && !h->why[0]; seq++) {
        int rc = tu_next(h->fx->g, &b, NULL);
        if (rc != 0)
            snprintf(h->why, sizeof h->why, "br_next for seq %" PRIu64 ": %s: %s", seq,
                     br_err_name(rc), br_last_error(h->fx->g));
        else
            tu_batch_matches(h->fx->sh, &b, seq, h->why, sizeof h->why);
    }
    tu_store_wake(&h->done, 1);
    tu_block_until_set(&h->leave);
    return NULL;
}

#ifndef PIDFD_THREAD
#define PIDFD_THREAD O_EXCL /* Linux 6.9: a pidfd for one thread */
#endif

static void test_faults_replacement_outlives_consumer_thread(void **state)
{
    (void)state;
    /* The header allows a generator to be used from one thread at a time,
     * not always the same one; workers are promised to live as long as the
     * thread that called br_open. Here a second thread consumes while a
     * worker dies, so the replacement is started inside that thread's
     * br_next; then that thread ends. The replacement must not die with it
     * (a parent-death signal follows the thread that forked, not the
     * process). */
    struct fixture fx;
    fx_init(&fx, 200, 10, 2);
    fx.opt.max_restarts = 10;
    fx.sh->hook = hook_kill_self_once;
    fx.sh->arg = 5;
    fx_open(&fx);

    struct handover *h = calloc(1, sizeof *h);
    assert_non_null(h);
    h->fx = &fx;
    h->upto = 8;
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, handover_main, h), 0);
    assert_true(tu_wait_ge(&h->tid, 1, TU_WAIT_MS));
    /* A pidfd of the thread becomes readable once the thread has exited,
     * which the kernel signals after it has sent any parent-death signals:
     * no guessing how long to wait. */
    int pidfd = (int)syscall(SYS_pidfd_open, (pid_t)atomic_load(&h->tid), PIDFD_THREAD);
    int open_errno = errno;
    assert_true(tu_wait_ge(&h->done, 1, TU_WAIT_MS));
    if (h->why[0])
        fail_msg("in the second thread: %s", h->why);

    uint32_t vw = atomic_load(&fx.sh->victim_worker);
    br_worker_stats ws;
    assert_int_equal(br_worker_stats_get(fx.g, vw, &ws), 0);
    assert_int_equal(ws.restarts, 1);
    pid_t replacement = ws.pid;
    assert_true(tu_is_live_descendant(replacement));

    tu_store_wake(&h->leave, 1);
    assert_int_equal(pthread_join(th, NULL), 0);
    free(h);
    if (pidfd < 0) {
        /* Without thread pidfds there is no event that says "the thread is
         * gone and its signals are sent". */
        tu_close(fx.g);
        tu_shared_free(fx.sh);
        tu_release(fx.labels);
        tu_release(fx.ids);
        print_message("skipped: pidfd_open(PIDFD_THREAD): %s\n", strerror(open_errno));
        skip();
    }
    struct pollfd pfd = {.fd = pidfd, .events = POLLIN};
    assert_int_equal(poll(&pfd, 1, TU_WAIT_MS), 1);
    close(pidfd);

    if (!tu_is_live_descendant(replacement) || tu_signal_pending(replacement, SIGKILL))
        fail_msg("worker %u's replacement (pid %d), started while another thread consumed, "
                 "was killed when that thread ended",
                 vw, (int)replacement);

    /* The main thread carries on with the same workers. */
    fx_read(&fx, 8, fx_total(&fx));
    br_batch b;
    assert_int_equal(br_next(fx.g, &b), BR_EOF);
    assert_once_except(fx.sh, fx_total(&fx), 5);
    br_stats s;
    assert_int_equal(br_stats_get(fx.g, &s), 0);
    assert_int_equal(s.restarts, 1);
    fx_close_and_check(&fx);
}

/* The stress killer: every k-th batch the consumer names a worker pid
 * (from br_worker_stats_get, on its own thread, since a br_gen is
 * single-threaded) in a queue; this thread kills it while the consumer goes
 * on. The consumer waits for the previous kill to be done before it names
 * the next worker: a killer thread that is scheduled late would otherwise
 * find workers that already left at the end of the run. */
#define KILL_QUEUE 256
struct killer {
    _Atomic uint32_t req;              /* entries queued; futex word */
    _Atomic uint32_t done;             /* entries handled; futex word */
    _Atomic int32_t queue[KILL_QUEUE]; /* pids; -1: quit */
    uint32_t n_killed;                 /* read after join */
    int error;
};

static void *killer_main(void *arg)
{
    struct killer *k = arg;
    uint32_t seen = 0;
    for (;;) {
        uint32_t req = atomic_load(&k->req);
        if (req == seen) {
            tu_futex_wait(&k->req, seen, -1);
            continue;
        }
        for (; seen < req; seen++) {
            int32_t pid = atomic_load(&k->queue[seen]);
            if (pid < 0)
                return NULL;
            int rc = tu_kill_descendant(pid, SIGKILL);
            if (rc == 1)
                k->n_killed++;
            else if (rc < 0)
                k->error = rc;
            tu_store_wake(&k->done, seen + 1);
        }
    }
}

static void killer_request(struct killer *k, int32_t pid)
{
    uint32_t n = atomic_load(&k->req);
    assert_true(n < KILL_QUEUE);
    /* The pid is stored before the count that publishes it (both seq_cst). */
    atomic_store(&k->queue[n], pid);
    tu_store_wake(&k->req, n + 1);
}

static void test_faults_stress_random_kills(void **state)
{
    (void)state;
    enum { K = 10, W = 3 };
    struct fixture fx;
    fx_init(&fx, 3000, 5, W);
    fx.opt.max_restarts = 1000;
    fx_open(&fx);
    uint64_t total = fx_total(&fx); /* 600 */

    struct killer *k = calloc(1, sizeof *k);
    assert_non_null(k);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, killer_main, k), 0);

    /* Pids already named: a killed worker keeps its pid in the stats until
     * the generator notices the death, so it is skipped, not named again. */
    int32_t named[KILL_QUEUE];
    uint32_t n_named = 0;
    uint64_t rnd = 0x2545f4914f6cdd1dull;
    br_batch b;
    for (uint64_t seq = 0; seq < total; seq++) {
        int rc = br_next(fx.g, &b);
        if (rc != 0)
            fail_msg("br_next for seq %" PRIu64 ": %s: %s", seq, br_err_name(rc),
                     br_last_error(fx.g));
        tu_check_batch(fx.sh, &b, seq);
        /* No kills near the end, where workers run out of batches and exit
         * on their own. */
        if ((seq + 1) % K != 0)
            continue;
        assert_true(tu_wait_ge(&k->done, atomic_load(&k->req), TU_WAIT_MS));
        if (seq + 3 * K >= total)
            continue;
        rnd ^= rnd << 13, rnd ^= rnd >> 7, rnd ^= rnd << 17;
        for (uint32_t j = 0; j < W; j++) {
            br_worker_stats ws;
            assert_int_equal(br_worker_stats_get(fx.g, (uint32_t)(rnd + j) % W, &ws), 0);
            bool again = ws.pid <= 0;
            for (uint32_t i = 0; i < n_named; i++)
                again |= named[i] == ws.pid;
            if (!again) {
                named[n_named++] = ws.pid;
                killer_request(k, ws.pid);
                break;
            }
        }
    }
    assert_int_equal(br_next(fx.g, &b), BR_EOF);
    killer_request(k, -1);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(k->error, 0);

    br_stats s;
    assert_int_equal(br_stats_get(fx.g, &s), 0);
    print_message("%u workers named, %u killed, %u restarts\n", n_named, k->n_killed, s.restarts);
    /* Every named worker was alive when named and nothing else kills
     * workers, so every kill landed. */
    assert_int_equal(k->n_killed, n_named);
    /* A killed worker keeps its pid in the stats until the generator next
     * waits for a batch and reaps it; most rounds still find a fresh one. */
    assert_true(n_named >= total / K / 3);
    assert_true(s.restarts >= 1);
    assert_true(s.restarts <= k->n_killed);
    uint32_t sum = 0;
    for (uint32_t i = 0; i < W; i++) {
        br_worker_stats ws;
        assert_int_equal(br_worker_stats_get(fx.g, i, &ws), 0);
        sum += ws.restarts;
    }
    assert_int_equal(sum, s.restarts);
    /* Exactly once was checked batch by batch; a batch may be loaded again
     * only when its loader died. */
    for (uint64_t seq = 0; seq < total; seq++) {
        uint32_t got = atomic_load(&fx.sh->attempts[seq]);
        assert_in_range(got, 1, 1 + k->n_killed);
    }
    free(k);
    fx_close_and_check(&fx);
}

static void test_faults_restarts_exhausted(void **state)
{
    (void)state;
    static const struct {
        uint32_t workers, max_restarts;
    } runs[] = {{1, 2}, {3, 2}, {2, 0}};
    for (size_t r = 0; r < sizeof runs / sizeof runs[0]; r++) {
        struct fixture fx;
        fx_init(&fx, 100, 10, runs[r].workers);
        fx.opt.max_restarts = runs[r].max_restarts;
        fx.sh->hook = hook_always_die;
        fx.sh->arg = 4;
        fx_open(&fx);
        print_message("workers %u, max_restarts %u\n", runs[r].workers, runs[r].max_restarts);

        fx_read(&fx, 0, 4);
        br_batch b;
        assert_int_equal(tu_next(fx.g, &b, NULL), BR_EWORKER);
        uint32_t deaths = atomic_load(&fx.sh->deaths);
        assert_int_equal(deaths, runs[r].max_restarts + 1);
        /* The message names the death that used the budget up. */
        const char *msg = br_last_error(fx.g);
        char want[32];
        snprintf(want, sizeof want, "%d", (int)atomic_load(&fx.sh->death_pid[deaths - 1]));
        tu_assert_contains(msg, want);
        tu_assert_contains(msg, "signal 9");
        tu_assert_contains(msg, "batch 4");
        fx_expect_stopped(&fx, want);

        br_stats s;
        assert_int_equal(br_stats_get(fx.g, &s), 0);
        assert_int_equal(s.restarts, runs[r].max_restarts);
        /* Closing reaps everything; no further attempt was made after the
         * fatal death. */
        assert_int_equal(tu_close(fx.g), 0);
        assert_int_equal(atomic_load(&fx.sh->attempts[4]), runs[r].max_restarts + 1);
        fx.g = NULL;
        fx_close_and_check(&fx);
    }
}

/* ---- the restart budget, deaths in every order (issue 10, defect 1) ---- */

/*
 * Which batches the workers of a lost_batch run hold when the budget runs
 * out. The hook parks the first attempt at batch k (sh->arg) and, with
 * two loaders or more, at k + 1, until the test kills them; the first
 * attempts at batches 2 .. 2 + m - 1 (m = sh->arg2) kill their own worker,
 * which spends the budget before the test's kills. With park_init set,
 * worker `init_worker`'s first process parks in worker_init: a worker
 * that holds no batch at all, so that its death is one "between batches".
 */
struct park_ctl {
    uint32_t init_worker; /* UINT32_MAX: nobody parks in worker_init */
    bool pair;            /* park k + 1 too */
    _Atomic uint32_t init_parked; /* futex word: 1 once it is parked */
    _Atomic int32_t init_pid;
    _Atomic uint32_t never; /* never set: what the parked ones wait for */
};
/* Set before br_open and inherited by every process forked after it. */
static struct park_ctl *park;

static int park_init(br_io *io, uint32_t worker, void *user, void **state, char *err,
                     size_t err_cap)
{
    (void)io, (void)user, (void)err, (void)err_cap;
    *state = NULL;
    uint32_t zero = 0;
    /* Only the first process of that worker: a replacement would not hold
     * the budget's fate. */
    if (worker == park->init_worker && atomic_compare_exchange_strong(&park->init_parked, &zero, 1)) {
        atomic_store(&park->init_pid, (int32_t)getpid());
        tu_futex_wake(&park->init_parked);
        tu_block_until_set(&park->never);
    }
    return 0;
}

static int hook_park_pair(br_job *job, tu_shared *sh, uint32_t attempt)
{
    if (attempt != 0)
        return 0;
    if (job->seq >= 2 && job->seq < 2 + sh->arg2) {
        uint32_t d = atomic_fetch_add(&sh->deaths, 1);
        if (d < TU_MAX_DEATHS)
            atomic_store(&sh->death_pid[d], (int32_t)getpid());
        raise(SIGKILL);
    }
    if (job->seq == sh->arg || (job->seq == sh->arg + 1 && park->pair)) {
        atomic_fetch_add(&sh->blocked, 1);
        tu_futex_wake(&sh->blocked);
        tu_block_until_set(&park->never);
    }
    return 0;
}

/* Kills pid (worker w) and waits until the supervisor has handled that
 * death: its record no longer shows pid (0, or a replacement's). The
 * supervisor announces no event for it, so the record is polled; it
 * handles deaths one at a time, so the next kill is handled after this
 * one, which is the order the test is about. */
static void kill_and_wait_handled(br_gen *g, uint32_t w, int32_t pid)
{
    assert_int_equal(tu_kill_descendant(pid, SIGKILL), 1);
    uint64_t deadline = tu_now_ns() + UINT64_C(1000000) * TU_WAIT_MS;
    for (;;) {
        br_worker_stats ws;
        assert_int_equal(br_worker_stats_get(g, w, &ws), 0);
        if (ws.pid != pid)
            return;
        if (tu_now_ns() > deadline)
            fail_msg("worker %u (pid %d) was killed, but the supervisor did not handle its "
                     "death within %d ms", w, (int)pid, TU_WAIT_MS);
        poll(NULL, 0, 1);
    }
}

enum kill_order {
    HIGH_THEN_LOW,         /* the holder of k + 1, then the holder of k */
    LOW_THEN_HIGH,         /* the holder of k, then the holder of k + 1 */
    BETWEEN_HIGH_THEN_LOW, /* a worker holding nothing, then as HIGH_THEN_LOW */
    BETWEEN_LOW_THEN_HIGH, /* a worker holding nothing, then as LOW_THEN_HIGH */
};

/*
 * `workers` workers, max_restarts m, all spent by deaths at batches 2 ..
 * m + 1 (each redone by a replacement). Then the workers that hold batch
 * k and k + 1 (and, for BETWEEN_*, one that holds none, parked in
 * worker_init) are killed in `order`, each death handled before the next
 * kill. Batch k can never be delivered: the consumer must get 0 .. k - 1
 * exactly once each, then BR_EWORKER naming the death that lost batch k,
 * and never wait past it, whatever the order.
 */
static void lost_batch(uint32_t workers, uint32_t m, enum kill_order order)
{
    const uint64_t k = 10;
    const bool between = order == BETWEEN_HIGH_THEN_LOW || order == BETWEEN_LOW_THEN_HIGH;
    const uint32_t loaders = between ? workers - 1 : workers;
    struct fixture fx;
    print_message("workers %u, max_restarts %u, order %d\n", workers, m, (int)order);
    fx_init(&fx, 400, 10, workers);
    fx.opt.max_restarts = m;
    /* The hang guard: once the kills are handled nothing can make batch k
     * ready, so a br_next that times out is the defect, not a slow
     * machine. */
    fx.opt.timeout_ms = tu_ms(5000);
    park = tu_page_alloc(sizeof *park);
    park->init_worker = between ? workers - 1 : UINT32_MAX;
    if (between)
        fx.opt.worker_init = park_init;
    fx.sh->hook = hook_park_pair;
    fx.sh->arg = k;
    fx.sh->arg2 = m;
    /* A single loader cannot park twice: it holds k only. */
    park->pair = loaders >= 2;
    fx_open(&fx);

    /* Every death inside the budget has been handled once its batch came. */
    fx_read(&fx, 0, k);
    br_stats s;
    assert_int_equal(br_stats_get(fx.g, &s), 0);
    assert_int_equal(s.restarts, m);
    assert_true(tu_wait_ge(&fx.sh->blocked, loaders >= 2 ? 2 : 1, TU_WAIT_MS));
    if (between)
        assert_true(tu_wait_ge(&park->init_parked, 1, TU_WAIT_MS));

    int32_t lo = atomic_load(&fx.sh->pid_of[k]);
    uint32_t lo_w = atomic_load(&fx.sh->worker_of[k]);
    int32_t hi = loaders >= 2 ? atomic_load(&fx.sh->pid_of[k + 1]) : 0;
    uint32_t hi_w = loaders >= 2 ? atomic_load(&fx.sh->worker_of[k + 1]) : 0;
    assert_true(lo > 0);
    assert_true(loaders < 2 || (hi > 0 && hi != lo));
    if (between)
        kill_and_wait_handled(fx.g, workers - 1, atomic_load(&park->init_pid));
    if (order == HIGH_THEN_LOW || order == BETWEEN_HIGH_THEN_LOW) {
        if (hi)
            kill_and_wait_handled(fx.g, hi_w, hi);
        kill_and_wait_handled(fx.g, lo_w, lo);
    } else {
        kill_and_wait_handled(fx.g, lo_w, lo);
        if (hi)
            kill_and_wait_handled(fx.g, hi_w, hi);
    }

    br_batch b;
    int rc = br_next(fx.g, &b);
    if (rc == -ETIMEDOUT)
        fail_msg("br_next waits for batch %" PRIu64 ", which no worker holds any more: %s", k,
                 br_last_error(fx.g));
    if (rc != BR_EWORKER)
        fail_msg("br_next for batch %" PRIu64 ": %s (%s), expected BR_EWORKER", k,
                 br_err_name(rc), br_last_error(fx.g));
    /* The message is the death that lost batch k. */
    const char *msg = br_last_error(fx.g);
    char want[64];
    snprintf(want, sizeof want, "pid %d)", (int)lo);
    tu_assert_contains(msg, want);
    tu_assert_contains(msg, "signal 9");
    snprintf(want, sizeof want, "batch %" PRIu64 " ", k);
    tu_assert_contains(msg, want);
    fx_expect_stopped(&fx, want);

    /* Exactly once before k: the budget's batches twice (the dead attempt
     * and the redo), every other one once. */
    for (uint64_t seq = 0; seq < k; seq++) {
        uint32_t want_n = seq >= 2 && seq < 2 + m ? 2 : 1;
        uint32_t got = atomic_load(&fx.sh->attempts[seq]);
        if (got != want_n)
            fail_msg("seq %" PRIu64 " loaded %u times, expected %u", seq, got, want_n);
    }
    assert_int_equal(tu_close(fx.g), 0);
    fx.g = NULL;
    fx_close_and_check(&fx);
    tu_page_free(park, sizeof *park);
    park = NULL;
}

static void lost_batch_all(enum kill_order order)
{
    for (uint32_t workers = 2; workers <= 3; workers++)
        for (uint32_t m = 0; m <= 2; m++)
            lost_batch(workers, m, order);
}

static void test_faults_lost_batch_high_then_low(void **state)
{
    (void)state;
    lost_batch_all(HIGH_THEN_LOW);
}

static void test_faults_lost_batch_low_then_high(void **state)
{
    (void)state;
    lost_batch_all(LOW_THEN_HIGH);
}

static void test_faults_lost_batch_between_then_orphans(void **state)
{
    (void)state;
    lost_batch_all(BETWEEN_HIGH_THEN_LOW);
    lost_batch_all(BETWEEN_LOW_THEN_HIGH);
}

/* ---- timeouts ----------------------------------------------------------- */

static void test_faults_timeout_then_resume(void **state)
{
    (void)state;
    struct fixture fx;
    fx_init(&fx, 120, 10, 2);
    fx.opt.timeout_ms = 50;
    fx.sh->hook = hook_block_once;
    fx.sh->arg = 3;
    fx_open(&fx);

    fx_read(&fx, 0, 3);
    br_batch b;
    for (int i = 0; i < 2; i++) {
        /* Batch 3 cannot be ready: its loader waits for us. */
        uint64_t t0 = tu_now_ns();
        int rc = br_next(fx.g, &b);
        uint64_t ms = (tu_now_ns() - t0) / 1000000u;
        assert_int_equal(rc, -ETIMEDOUT);
        if (ms < 45 || ms > (uint64_t)tu_ms(5000))
            fail_msg("br_next timed out after %" PRIu64 " ms, timeout_ms is 50", ms);
    }
    assert_true(tu_wait_ge(&fx.sh->flag, 1, TU_WAIT_MS));
    tu_store_wake(&fx.sh->release, 1);

    /* The same batch is still the next one, then the rest follow. */
    fx_read(&fx, 3, fx_total(&fx));
    assert_int_equal(br_next(fx.g, &b), BR_EOF);
    assert_once_except(fx.sh, fx_total(&fx), UINT64_MAX);
    fx_close_and_check(&fx);
}

static void test_faults_timeout_zero_polls(void **state)
{
    (void)state;
    struct fixture fx;
    fx_init(&fx, 30, 10, 1);
    fx.opt.timeout_ms = 0;
    fx.sh->hook = hook_block_once;
    fx.sh->arg = 0;
    fx_open(&fx);

    br_batch b;
    uint64_t t0 = tu_now_ns();
    assert_int_equal(br_next(fx.g, &b), -ETIMEDOUT);
    assert_true(tu_now_ns() - t0 < (uint64_t)tu_ms(1000) * 1000000u);
    assert_true(tu_wait_ge(&fx.sh->flag, 1, TU_WAIT_MS));
    assert_int_equal(br_next(fx.g, &b), -ETIMEDOUT);
    tu_store_wake(&fx.sh->release, 1);
    fx_read(&fx, 0, fx_total(&fx));
    assert_int_equal(br_next(fx.g, &b), BR_EOF);
    fx_close_and_check(&fx);
}

static void test_faults_timeout_inline_ignored(void **state)
{
    (void)state;
    /* workers = 0 loads inside br_next: there is nothing to time out. */
    struct fixture fx;
    fx_init(&fx, 50, 5, 0);
    fx.opt.timeout_ms = 0;
    fx_open(&fx);
    br_batch b;
    for (uint64_t seq = 0; seq < fx_total(&fx); seq++) {
        assert_int_equal(br_next(fx.g, &b), 0);
        tu_check_batch(fx.sh, &b, seq);
    }
    assert_int_equal(br_next(fx.g, &b), BR_EOF);
    fx_close_and_check(&fx);
}

/* ---- closing ------------------------------------------------------------ */

static void close_while_loading(int stubborn)
{
    struct fixture fx;
    fx_init(&fx, 100, 10, 2);
    fx.opt.epochs = 0;
    fx.sh->hook = hook_block_from;
    fx.sh->arg = 2;
    fx.sh->arg2 = (uint64_t)stubborn;
    fx_open(&fx);

    fx_read(&fx, 0, 1);
    /* Both workers are inside the loader and will never come out. */
    assert_true(tu_wait_ge(&fx.sh->blocked, 2, TU_WAIT_MS));
    tu_watchdog_arm(tu_s(10), "br_close with both workers blocked in the loader");
    uint64_t t0 = tu_now_ns();
    assert_int_equal(tu_close(fx.g), 0);
    uint64_t ms = (tu_now_ns() - t0) / 1000000u;
    tu_watchdog_arm(TU_TEST_SECONDS, "the rest of the test");
    print_message("br_close took %" PRIu64 " ms\n", ms);
    assert_true(ms < (uint64_t)tu_ms(5000));
    fx_close_and_check(&fx);
}

static void test_faults_close_while_loading(void **state)
{
    (void)state;
    close_while_loading(0);
}

static void test_faults_close_while_loading_signals_blocked(void **state)
{
    (void)state;
    close_while_loading(1);
}

static void test_faults_close_right_after_open(void **state)
{
    (void)state;
    /* The workers may still be starting up, or waiting for free slots. */
    for (uint32_t workers = 1; workers <= 3; workers += 2) {
        struct fixture fx;
        fx_init(&fx, 100, 10, workers);
        fx.opt.epochs = 0;
        fx_open(&fx);
        tu_assert_workers_live(fx.g, workers, NULL);
        fx_close_and_check(&fx);
    }
}

/* ---- orderly shutdown: worker_fini ------------------------------------- */

static void fx_with_hooks(struct fixture *fx)
{
    fx->opt.worker_init = tu_worker_init;
    fx->opt.worker_fini = tu_worker_fini;
    fx->sh->expect_state = true;
}

/* br_close under a watchdog; returns how long it took, in ms. */
static uint64_t fx_close_timed(struct fixture *fx, const char *what)
{
    tu_watchdog_arm(tu_s(10), what);
    uint64_t t0 = tu_now_ns();
    assert_int_equal(tu_close(fx->g), 0);
    uint64_t ms = (tu_now_ns() - t0) / 1000000u;
    tu_watchdog_arm(TU_TEST_SECONDS, "the rest of the test");
    print_message("br_close took %" PRIu64 " ms\n", ms);
    return ms;
}

/* worker_fini ran exactly n times, once in each process of pids[0..n). */
static void assert_fini_in(const tu_shared *sh, const int32_t *pids, uint32_t n)
{
    uint32_t calls = atomic_load(&sh->fini_calls);
    if (calls != n)
        fail_msg("worker_fini ran %u times, expected %u", calls, n);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t seen = 0;
        for (uint32_t k = 0; k < n; k++)
            seen += atomic_load(&sh->fini_pid[k]) == pids[i];
        if (seen != 1)
            fail_msg("worker_fini ran %u times in pid %d, expected once", seen, (int)pids[i]);
    }
}

static void test_faults_close_runs_worker_fini(void **state)
{
    (void)state;
    /* br_close mid-run (endless, and the ring full: workers asleep waiting
     * for slots, woken by the consumer or, in a deep ring, napping at its
     * pace) and right after BR_EOF (workers possibly still in
     * worker_fini): each worker runs worker_fini once, in its own process,
     * and a second br_close runs nothing more. */
    for (uint32_t workers = 1; workers <= 3; workers += 2)
        for (int mode = 0; mode <= 2; mode++) {
            const bool at_end = mode == 2;
            struct fixture fx;
            int32_t pids[3];
            print_message("workers %u, %s\n", workers,
                          mode == 0 ? "mid-run" : mode == 1 ? "mid-run, 16 slots" : "at the end");
            fx_init(&fx, 100, 10, workers);
            fx.opt.epochs = at_end ? 1 : 0;
            if (mode == 1)
                fx.opt.slots = 16;
            fx_with_hooks(&fx);
            fx_open(&fx);
            fx_read(&fx, 0, at_end ? fx_total(&fx) : 4);
            if (at_end) {
                br_batch b;
                assert_int_equal(tu_next(fx.g, &b, NULL), BR_EOF);
            } else {
                tu_assert_workers_live(fx.g, workers, pids);
            }
            uint64_t ms = fx_close_timed(&fx, "br_close with worker_fini");
            /* Every worker was woken: nobody needed the grace period. */
            assert_true(ms < BR_STOP_GRACE_MS);
            assert_int_equal(atomic_load(&fx.sh->init_calls), workers);
            if (at_end)
                assert_int_equal(atomic_load(&fx.sh->fini_calls), workers);
            else
                assert_fini_in(fx.sh, pids, workers);
            assert_int_equal(br_close(fx.g), 0);
            assert_int_equal(atomic_load(&fx.sh->fini_calls), workers);
            fx_close_and_check(&fx);
        }
}

static void test_faults_close_lets_loading_batch_finish(void **state)
{
    (void)state;
    /* A worker inside the loader at br_close finishes its batch (well
     * within the grace period), then runs worker_fini. */
    for (uint32_t workers = 1; workers <= 3; workers += 2) {
        struct fixture fx;
        int32_t pids[3];
        fx_init(&fx, 100, 10, workers);
        fx.opt.epochs = 0;
        fx_with_hooks(&fx);
        fx.sh->hook = hook_slow_once;
        fx.sh->arg = 1;
        fx_open(&fx);
        fx_read(&fx, 0, 1);
        assert_true(tu_wait_ge(&fx.sh->flag, 1, TU_WAIT_MS));
        tu_assert_workers_live(fx.g, workers, pids);
        fx_close_timed(&fx, "br_close with a batch being loaded");
        assert_int_equal(atomic_load(&fx.sh->flag), 2);
        assert_int_equal(atomic_load(&fx.sh->attempts[1]), 1);
        assert_fini_in(fx.sh, pids, workers);
        fx_close_and_check(&fx);
    }
}

static void test_faults_close_stuck_loader_killed(void **state)
{
    (void)state;
    /* One worker's loader never returns. br_close gives it the grace
     * period (BR_STOP_GRACE_MS), then kills it: it runs no worker_fini,
     * the others run theirs, br_close returns, and every process is
     * reaped (no child, no zombie: fx_close_and_check). */
    for (uint32_t workers = 1; workers <= 3; workers += 2) {
        struct fixture fx;
        int32_t pids[3], others[3];
        uint32_t n_others = 0;
        fx_init(&fx, 100, 10, workers);
        fx.opt.epochs = 0;
        fx_with_hooks(&fx);
        fx.sh->hook = hook_stuck_in_pause;
        fx.sh->arg = 2;
        fx_open(&fx);
        fx_read(&fx, 0, 2);
        assert_true(tu_wait_ge(&fx.sh->blocked, 1, TU_WAIT_MS));
        tu_assert_workers_live(fx.g, workers, pids);
        pid_t victim = atomic_load(&fx.sh->victim_pid);
        for (uint32_t i = 0; i < workers; i++)
            if (pids[i] != victim)
                others[n_others++] = pids[i];
        assert_int_equal(n_others, workers - 1);

        uint64_t ms = fx_close_timed(&fx, "br_close with a loader stuck in pause()");
        assert_true(ms >= BR_STOP_GRACE_MS);
        assert_true(ms < BR_STOP_GRACE_MS + (uint64_t)tu_ms(4000));
        assert_false(tu_is_live_descendant(victim));
        assert_int_equal(tu_zombie_descendants(NULL, 0), 0);
        assert_int_equal(atomic_load(&fx.sh->init_calls), workers);
        assert_fini_in(fx.sh, others, n_others);
        fx_close_and_check(&fx);
    }
}

static void test_faults_close_no_fini_in_killed_worker(void **state)
{
    (void)state;
    /* A worker killed mid-run ran no worker_fini; its replacement, which
     * ran worker_init, runs it at br_close like the others. */
    struct fixture fx;
    int32_t pids[2];
    fx_init(&fx, 100, 10, 2);
    fx.opt.epochs = 0;
    fx_with_hooks(&fx);
    fx.sh->hook = hook_kill_self_once;
    fx.sh->arg = 3;
    fx_open(&fx);
    fx_read(&fx, 0, 8);
    br_stats s;
    assert_int_equal(br_stats_get(fx.g, &s), 0);
    assert_int_equal(s.restarts, 1);
    tu_assert_workers_live(fx.g, 2, pids);
    pid_t victim = atomic_load(&fx.sh->victim_pid);
    assert_true(victim != pids[0] && victim != pids[1]);
    fx_close_timed(&fx, "br_close after a replacement");
    assert_int_equal(atomic_load(&fx.sh->init_calls), 3);
    assert_fini_in(fx.sh, pids, 2);
    fx_close_and_check(&fx);
}

static void test_faults_close_runs_fini_inline(void **state)
{
    (void)state;
    /* workers = 0: init ran in the trainer at br_open, and br_close runs
     * worker_fini there, once, mid-run as well. */
    struct fixture fx;
    int32_t me = (int32_t)getpid();
    fx_init(&fx, 100, 10, 0);
    fx.opt.epochs = 0;
    fx_with_hooks(&fx);
    fx_open(&fx);
    fx_read(&fx, 0, 3);
    assert_int_equal(atomic_load(&fx.sh->fini_calls), 0);
    assert_int_equal(tu_close(fx.g), 0);
    assert_int_equal(atomic_load(&fx.sh->init_calls), 1);
    assert_fini_in(fx.sh, &me, 1);
    assert_int_equal(br_close(fx.g), 0);
    assert_int_equal(atomic_load(&fx.sh->fini_calls), 1);
    fx_close_and_check(&fx);
}

static void test_faults_use_after_close_is_safe(void **state)
{
    (void)state;
    struct fixture fx;
    fx_init(&fx, 100, 10, 2);
    fx.opt.epochs = 0;
    fx_open(&fx);
    fx_read(&fx, 0, 2);
    br_gen *old = fx.g;
    assert_int_equal(tu_close(old), 0);
    tu_leaks_check(&fx.leaks);

    br_batch b;
    br_stats s;
    assert_int_equal(br_next(old, &b), BR_ESTOPPED);
    assert_int_equal(br_close(old), 0);
    assert_int_equal(br_close(NULL), 0);
    assert_non_null(br_last_error(old));
    br_worker_stats ws;
    assert_int_equal(br_stats_get(old, &s), -EINVAL);
    assert_int_equal(br_worker_stats_get(old, 0, &ws), -EINVAL);

    /* A new generator may reuse the old one's memory or table entry: the
     * stale handle must still find nothing, and closing it must not close
     * the new one. */
    tu_leaks_begin(&fx.leaks);
    memset(fx.sh->attempts, 0, sizeof fx.sh->attempts);
    fx_open(&fx);
    assert_int_equal(br_next(old, &b), BR_ESTOPPED);
    assert_int_equal(br_close(old), 0);
    fx_read(&fx, 0, 3);
    tu_assert_workers_live(fx.g, 2, NULL);
    fx_close_and_check(&fx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_faults_loader_error_propagates, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_faults_size_over_cap, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_faults_bad_offsets, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_faults_worker_init_fails, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_faults_worker_killed_self_replaced, tu_setup,
                                        tu_teardown),
        cmocka_unit_test_setup_teardown(test_faults_worker_killed_from_outside_replaced, tu_setup,
                                        tu_teardown),
        cmocka_unit_test_setup_teardown(test_faults_worker_exit_or_abort_replaced, tu_setup,
                                        tu_teardown),
        cmocka_unit_test_setup_teardown(test_faults_worker_killed_small_rings, tu_setup,
                                        tu_teardown),
        cmocka_unit_test_setup_teardown(test_faults_restarts_count_over_life, tu_setup,
                                        tu_teardown),
        cmocka_unit_test_setup_teardown(test_faults_run_taken_while_workers_killed, tu_setup,
                                        tu_teardown),
        cmocka_unit_test_setup_teardown(test_faults_kill_while_consumer_away, tu_setup,
                                        tu_teardown),
        cmocka_unit_test_setup_teardown(test_faults_loader_crash_named_despite_trainer_handler,
                                        tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_faults_replacement_outlives_consumer_thread, tu_setup,
                                        tu_teardown),
        cmocka_unit_test_setup_teardown(test_faults_stress_random_kills, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_faults_restarts_exhausted, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_faults_lost_batch_high_then_low, tu_setup,
                                        tu_teardown),
        cmocka_unit_test_setup_teardown(test_faults_lost_batch_low_then_high, tu_setup,
                                        tu_teardown),
        cmocka_unit_test_setup_teardown(test_faults_lost_batch_between_then_orphans, tu_setup,
                                        tu_teardown),
        cmocka_unit_test_setup_teardown(test_faults_timeout_then_resume, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_faults_timeout_zero_polls, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_faults_timeout_inline_ignored, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_faults_close_while_loading, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_faults_close_while_loading_signals_blocked, tu_setup,
                                        tu_teardown),
        cmocka_unit_test_setup_teardown(test_faults_close_right_after_open, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_faults_close_runs_worker_fini, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_faults_close_lets_loading_batch_finish, tu_setup,
                                        tu_teardown),
        cmocka_unit_test_setup_teardown(test_faults_close_stuck_loader_killed, tu_setup,
                                        tu_teardown),
        cmocka_unit_test_setup_teardown(test_faults_close_no_fini_in_killed_worker, tu_setup,
                                        tu_teardown),
        cmocka_unit_test_setup_teardown(test_faults_close_runs_fini_inline, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_faults_use_after_close_is_safe, tu_setup, tu_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
