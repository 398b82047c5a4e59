/* SPDX-License-Identifier: MIT */
/*
 * br_options and the argument checks of the public entry points: every bad
 * input to br_open is refused with its code, *out = NULL and a message that
 * names the culprit; nothing is left behind by a refused open; workers are
 * lowered, not refused, when they outnumber the batches of an epoch.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "test_util.h"

/* What *out holds before a call that must set it to NULL on failure. */
#define NOT_NULL ((br_gen *)(uintptr_t)0x1)

static int never_called(br_job *job, void *user)
{
    (void)job;
    (void)user;
    return -ENOTSUP;
}

static void test_options_defaults(void **state)
{
    (void)state;
    br_options opt;
    /* Garbage first: init must set every field, not rely on zeroed memory. */
    memset(&opt, 0xab, sizeof opt);
    assert_int_equal(br_options_init(&opt), 0);
    assert_int_equal(opt.size, sizeof opt);
    assert_int_equal(opt.batch_size, 32);
    assert_int_equal(opt.workers, 1);
    assert_int_equal(opt.slots, BR_SLOTS_AUTO);
    assert_int_equal(opt.slot_bytes, 0);
    assert_int_equal(opt.epochs, 0);
    assert_false(opt.drop_last);
    assert_int_equal(opt.timeout_ms, -1);
    assert_int_equal(opt.max_restarts, 3);
    assert_null(opt.worker_init);
    assert_null(opt.worker_fini);
}

static void test_options_init_null(void **state)
{
    (void)state;
    assert_int_equal(br_options_init(NULL), -EINVAL);
}

/* One refused br_open: code, *out untouched-to-NULL, message naming it. */
struct bad_open {
    const char *what;
    int code;
    const char *needle;  /* must appear in br_last_error(NULL) */
    const char *needle2; /* and this too, when not NULL */
};

static void expect_refused(const struct bad_open *c, br_gen **out, br_loader_fn load,
                           const uint64_t *ids, const int32_t *labels, size_t n,
                           const br_options *opt)
{
    print_message("%s\n", c->what);
    if (out)
        *out = NOT_NULL;
    int rc = br_open(out, load, NULL, ids, labels, n, opt);
    if (rc != c->code)
        fail_msg("%s: br_open returned %d (%s), expected %d (%s); message: %s", c->what, rc,
                 br_err_name(rc), c->code, br_err_name(c->code), br_last_error(NULL));
    if (out && *out != NULL)
        fail_msg("%s: br_open failed but left *out = %p, expected NULL", c->what, (void *)*out);
    tu_assert_contains(br_last_error(NULL), c->needle);
    if (c->needle2)
        tu_assert_contains(br_last_error(NULL), c->needle2);
}

static void test_options_bad_inputs_refused(void **state)
{
    (void)state;
    tu_leaks leaks;
    tu_leaks_begin(&leaks);
    enum { N = 100 };
    uint64_t *ids = tu_ids_identity(N);
    br_options good;
    assert_int_equal(br_options_init(&good), 0);
    good.batch_size = 10;
    good.workers = 2;
    good.slot_bytes = 4096;
    br_gen *g;
    br_options o;

#define REFUSE(what, code, needle, needle2, out, load, ids_, n, opt)                               \
    do {                                                                                           \
        const struct bad_open c_ = {what, code, needle, needle2};                                  \
        expect_refused(&c_, out, load, ids_, NULL, n, opt);                                        \
    } while (0)

    REFUSE("out NULL", -EINVAL, "out", NULL, NULL, never_called, ids, N, &good);
    REFUSE("load NULL", -EINVAL, "load", NULL, &g, NULL, ids, N, &good);
    REFUSE("n_ids 0", -EINVAL, "n_ids", NULL, &g, never_called, ids, 0, &good);
    REFUSE("opt NULL", -EINVAL, "opt", NULL, &g, never_called, ids, N, NULL);

    o = good;
    o.batch_size = 0;
    REFUSE("batch_size 0", -EINVAL, "batch_size", NULL, &g, never_called, ids, N, &o);
    o = good;
    o.batch_size = N + 1;
    REFUSE("batch_size > n_ids", -EINVAL, "batch_size", NULL, &g, never_called, ids, N, &o);
    o = good;
    o.slot_bytes = 0;
    REFUSE("slot_bytes 0", -EINVAL, "slot_bytes", NULL, &g, never_called, ids, N, &o);
    o = good;
    o.slots = 0;
    REFUSE("slots 0", -EINVAL, "slots", NULL, &g, never_called, ids, N, &o);
    o = good;
    o.slots = BR_MAX_SLOTS + 1;
    REFUSE("slots BR_MAX_SLOTS + 1", -EINVAL, "slots", NULL, &g, never_called, ids, N, &o);
    o = good;
    o.slots = BR_SLOTS_AUTO - 1; /* the largest value that is not the sentinel */
    REFUSE("slots UINT32_MAX - 1", -EINVAL, "slots", NULL, &g, never_called, ids, N, &o);
    o = good;
    o.workers = BR_MAX_WORKERS + 1;
    o.batch_size = 1; /* so that lowering cannot be the answer */
    {
        uint64_t *many = tu_ids_identity(BR_MAX_WORKERS + 1);
        REFUSE("workers BR_MAX_WORKERS + 1", -EINVAL, "workers", NULL, &g, never_called, many,
               BR_MAX_WORKERS + 1, &o);
        tu_release(many);
    }
    o = good;
    o.timeout_ms = -2;
    REFUSE("timeout_ms -2", -EINVAL, "timeout_ms", NULL, &g, never_called, ids, N, &o);
    o = good;
    o.epochs = UINT64_MAX; /* x 10 batches per epoch */
    REFUSE("epochs x batches overflows", -EOVERFLOW, "epochs", NULL, &g, never_called, ids, N, &o);
    o = good;
    o.slot_bytes = SIZE_MAX / 2;
    o.slots = 4;
    REFUSE("slots x slot_bytes overflows", -EOVERFLOW, "slot_bytes", NULL, &g, never_called, ids, N,
           &o);
    o = good;
    o.slot_bytes = (size_t)1 << 40;
    o.slots = 2;
    /* The message gives the sizes: 2 TiB needed, in some unit. */
    REFUSE("ring of 2 TiB", -ENOMEM, "slot_bytes", "TiB", &g, never_called, ids, N, &o);
#undef REFUSE

    /* batch_size above BR_MAX_BATCH_SIZE with enough ids that only the limit
     * is wrong. The ids are never-touched zero pages: cheap to pass, and
     * readable in case the check is missing. */
    size_t n_big = (size_t)BR_MAX_BATCH_SIZE + 1;
    size_t big_bytes = n_big * sizeof(uint64_t);
    uint64_t *big =
        mmap(NULL, big_bytes, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    assert_true(big != MAP_FAILED);
    o = good;
    o.batch_size = BR_MAX_BATCH_SIZE + 1;
    o.workers = 1;
    const struct bad_open c = {"batch_size BR_MAX_BATCH_SIZE + 1", -EINVAL, "batch_size", NULL};
    expect_refused(&c, &g, never_called, big, NULL, n_big, &o);
    assert_int_equal(munmap(big, big_bytes), 0);

    /* A refused open starts nothing and leaves nothing. */
    tu_leaks_check(&leaks);
    tu_release(ids);
}

static void test_options_boundaries_accepted(void **state)
{
    (void)state;
    /* The edges of the valid ranges open fine: batch_size == n_ids, one
     * slot, explicit BR_SLOTS_AUTO, timeout 0, max_restarts 0. */
    tu_leaks leaks;
    tu_leaks_begin(&leaks);
    enum { N = 12 };
    uint64_t *ids = tu_ids_identity(N);
    br_options o;
    assert_int_equal(br_options_init(&o), 0);
    o.batch_size = N;
    o.slots = 1;
    o.slot_bytes = 1;
    o.timeout_ms = 0;
    o.max_restarts = 0;
    o.epochs = 1;
    tu_shared *sh = tu_shared_new();
    tu_shared_config(sh, ids, NULL, N, &o, 0);
    br_gen *g = NOT_NULL;
    assert_int_equal(br_open(&g, tu_loader, sh, ids, NULL, N, &o), 0);
    assert_non_null(g);
    tu_track(g);
    br_batch b;
    assert_int_equal(tu_next(g, &b, NULL), 0);
    tu_check_batch(sh, &b, 0);
    assert_int_equal(br_next(g, &b), BR_EOF);
    assert_int_equal(tu_close(g), 0);
    tu_assert_loaders_ok(sh);
    tu_leaks_check(&leaks);
    tu_shared_free(sh);
    tu_release(ids);
}

static void lowered(size_t n, uint32_t batch_size, uint32_t workers, uint32_t expect)
{
    tu_leaks leaks;
    tu_leaks_begin(&leaks);
    uint64_t *ids = tu_ids_identity(n);
    int32_t *labels = tu_labels_for(ids, n);
    br_options o;
    assert_int_equal(br_options_init(&o), 0);
    o.batch_size = batch_size;
    o.workers = workers;
    /* Endless, so that no worker runs out of batches and exits while we
     * count them. */
    o.epochs = 0;
    o.slot_bytes = 8u * batch_size;
    tu_shared *sh = tu_shared_new();
    tu_shared_config(sh, ids, labels, n, &o, 8);
    assert_int_equal(sh->workers, expect);

    br_gen *g = NULL;
    assert_int_equal(br_open(&g, tu_loader, sh, ids, labels, n, &o), 0);
    tu_track(g);
    tu_assert_contains(br_last_error(g), "workers");
    br_stats s;
    assert_int_equal(br_stats_get(g, &s), 0);
    assert_int_equal(s.workers, expect);
    tu_assert_workers_live(g, expect, NULL);
    br_worker_stats ws;
    assert_int_equal(br_worker_stats_get(g, expect, &ws), -EINVAL);

    /* The lowered generator works; tu_loader checks job->worker < expect. */
    uint64_t total = tu_batches_per_epoch(sh) * 3;
    br_batch b;
    for (uint64_t seq = 0; seq < total; seq++) {
        assert_int_equal(br_next(g, &b), 0);
        tu_check_batch(sh, &b, seq);
    }
    assert_int_equal(tu_close(g), 0);
    tu_assert_loaders_ok(sh);
    tu_leaks_check(&leaks);
    tu_shared_free(sh);
    tu_release(labels);
    tu_release(ids);
}

static void test_options_workers_lowered(void **state)
{
    (void)state;
    lowered(20, 5, 8, 4); /* 5 x 8 = 40 > 20: 20 / 5 = 4 workers */
    lowered(7, 4, 3, 1);  /* 7 / 4 = 1 worker */
}

static void test_options_not_lowered_no_message(void **state)
{
    (void)state;
    /* batch_size x workers == n_ids exactly: nothing to lower or say. */
    tu_leaks leaks;
    tu_leaks_begin(&leaks);
    uint64_t *ids = tu_ids_identity(20);
    br_options o;
    assert_int_equal(br_options_init(&o), 0);
    o.batch_size = 5;
    o.workers = 4;
    o.slot_bytes = 64;
    tu_shared *sh = tu_shared_new();
    tu_shared_config(sh, ids, NULL, 20, &o, 8);
    br_gen *g;
    assert_int_equal(br_open(&g, tu_loader, sh, ids, NULL, 20, &o), 0);
    tu_track(g);
    assert_string_equal(br_last_error(g), "");
    br_stats s;
    assert_int_equal(br_stats_get(g, &s), 0);
    assert_int_equal(s.workers, 4);
    assert_int_equal(tu_close(g), 0);
    tu_leaks_check(&leaks);
    tu_shared_free(sh);
    tu_release(ids);
}

static void test_options_null_arguments(void **state)
{
    (void)state;
    tu_leaks leaks;
    tu_leaks_begin(&leaks);
    uint64_t *ids = tu_ids_identity(30);
    br_options o;
    assert_int_equal(br_options_init(&o), 0);
    o.batch_size = 10;
    o.slot_bytes = 80;
    tu_shared *sh = tu_shared_new();
    tu_shared_config(sh, ids, NULL, 30, &o, 8);
    br_gen *g;
    assert_int_equal(br_open(&g, tu_loader, sh, ids, NULL, 30, &o), 0);
    tu_track(g);

    br_batch b;
    br_stats s;
    br_worker_stats ws;
    assert_int_equal(br_next(NULL, &b), -EINVAL);
    assert_int_equal(br_next(g, NULL), -EINVAL);
    assert_int_equal(br_stats_get(NULL, &s), -EINVAL);
    assert_int_equal(br_stats_get(g, NULL), -EINVAL);
    assert_int_equal(br_worker_stats_get(NULL, 0, &ws), -EINVAL);
    assert_int_equal(br_worker_stats_get(g, 0, NULL), -EINVAL);
    assert_int_equal(br_worker_stats_get(g, 1, &ws), -EINVAL);
    assert_int_equal(br_worker_stats_get(g, UINT32_MAX, &ws), -EINVAL);
    assert_int_equal(br_close(NULL), 0);
    assert_non_null(br_last_error(NULL));

    /* A refused call consumed nothing: the first batch is still seq 0. */
    assert_int_equal(br_next(g, &b), 0);
    tu_check_batch(sh, &b, 0);
    assert_int_equal(br_stats_get(g, &s), 0);
    assert_int_equal(s.batches, 1);
    assert_int_equal(tu_close(g), 0);
    tu_assert_loaders_ok(sh);
    tu_leaks_check(&leaks);
    tu_shared_free(sh);
    tu_release(ids);
}

static void test_options_workers0_has_no_worker_stats(void **state)
{
    (void)state;
    tu_leaks leaks;
    tu_leaks_begin(&leaks);
    uint64_t *ids = tu_ids_identity(10);
    br_options o;
    assert_int_equal(br_options_init(&o), 0);
    o.batch_size = 5;
    o.workers = 0;
    o.slot_bytes = 40;
    tu_shared *sh = tu_shared_new();
    tu_shared_config(sh, ids, NULL, 10, &o, 8);
    br_gen *g;
    assert_int_equal(br_open(&g, tu_loader, sh, ids, NULL, 10, &o), 0);
    tu_track(g);
    /* Inline loading forks nothing. */
    assert_int_equal(tu_descendant_count(NULL, 0), 0);
    br_worker_stats ws;
    assert_int_equal(br_worker_stats_get(g, 0, &ws), -EINVAL);
    br_stats s;
    assert_int_equal(br_stats_get(g, &s), 0);
    assert_int_equal(s.workers, 0);
    assert_int_equal(tu_close(g), 0);
    tu_leaks_check(&leaks);
    tu_shared_free(sh);
    tu_release(ids);
}

/* br_last_error(NULL) is per thread: a failure elsewhere leaves ours. */
static void *fail_in_thread(void *arg)
{
    char *msg = arg;
    uint64_t ids[4] = {0, 1, 2, 3};
    br_options o;
    br_options_init(&o);
    o.batch_size = 2;
    o.slot_bytes = 0;
    br_gen *g = NOT_NULL;
    int rc = br_open(&g, never_called, NULL, ids, NULL, 4, &o);
    snprintf(msg, 512, "%d %s", rc, br_last_error(NULL));
    return NULL;
}

static void test_options_last_error_per_thread(void **state)
{
    (void)state;
    uint64_t ids[4] = {0, 1, 2, 3};
    br_options o;
    assert_int_equal(br_options_init(&o), 0);
    o.batch_size = 0;
    o.slot_bytes = 64;
    br_gen *g;
    assert_int_equal(br_open(&g, never_called, NULL, ids, NULL, 4, &o), -EINVAL);
    tu_assert_contains(br_last_error(NULL), "batch_size");

    char theirs[512] = "";
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, fail_in_thread, theirs), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    tu_assert_contains(theirs, "slot_bytes");
    /* Ours is still about batch_size. */
    tu_assert_contains(br_last_error(NULL), "batch_size");
}

static int empty_loader(br_job *job, void *user)
{
    (void)user;
    job->size = 0;
    return 0;
}

/* start_seq: past the end of a finite run, or beyond what seq arithmetic
 * allows (2^62) in an endless one, each refused with what is really wrong;
 * an endless run has no end to be past. */
static void test_options_start_seq_limits(void **state)
{
    (void)state;
    br_options opt;
    br_gen *g;
    br_batch b;
    br_options_init(&opt);
    opt.batch_size = 5;
    opt.workers = 0;
    opt.slot_bytes = 64;

    opt.epochs = 0;
    opt.start_seq = UINT64_C(1) << 63;
    g = NOT_NULL;
    assert_int_equal(br_open(&g, never_called, NULL, NULL, NULL, 20, &opt), -EINVAL);
    assert_null(g);
    tu_assert_contains(br_last_error(NULL), "start_seq 9223372036854775808");
    tu_assert_contains(br_last_error(NULL), "2^62");
    if (strstr(br_last_error(NULL), "past the end"))
        fail_msg("an endless run has no end: %s", br_last_error(NULL));

    opt.epochs = 2; /* 8 batches */
    opt.start_seq = 9;
    assert_int_equal(br_open(&g, never_called, NULL, NULL, NULL, 20, &opt), -EINVAL);
    tu_assert_contains(br_last_error(NULL), "start_seq 9 is past the end of the run (8 batches");

    /* The largest start_seq of an endless run works: its first batch. */
    opt.epochs = 0;
    opt.start_seq = (UINT64_C(1) << 62) - 1;
    assert_int_equal(br_open(&g, empty_loader, NULL, NULL, NULL, 20, &opt), 0);
    tu_track(g);
    assert_int_equal(br_next(g, &b), 0);
    assert_int_equal(b.seq, opt.start_seq);
    assert_int_equal(b.epoch, opt.start_seq / 4);
    assert_int_equal(tu_close(g), 0);
}

/* ---- how br_options and the results grow (batchring.h, section 1) ------ */

/* A br_options as a program built against a newer header would have it:
 * this library's struct and fields it does not know. */
struct newer_options {
    br_options o;
    uint64_t more[3];
};

/* Options that br_options_init did not set up carry no size, or a size no
 * build ever had: br_open refuses them and says what to do. */
static void test_options_size_refused(void **state)
{
    (void)state;
    uint64_t ids[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    br_options o;
    br_gen *g = NOT_NULL;

    memset(&o, 0, sizeof o);
    o.batch_size = 2;
    o.workers = 1;
    o.slots = BR_SLOTS_AUTO;
    o.slot_bytes = 16;
    o.world = 1;
    assert_int_equal(br_open(&g, never_called, NULL, ids, NULL, 8, &o), -EINVAL);
    assert_null(g);
    tu_assert_contains(br_last_error(NULL), "opt->size is 0");
    tu_assert_contains(br_last_error(NULL), "br_options_init");

    o.size = 8;
    g = NOT_NULL;
    assert_int_equal(br_open(&g, never_called, NULL, ids, NULL, 8, &o), -EINVAL);
    assert_null(g);
    tu_assert_contains(br_last_error(NULL), "opt->size 8 is smaller than any br_options");

    /* The same for the size the init is given, which then writes nothing. */
    memset(&o, 0xab, sizeof o);
    assert_int_equal(br_options_init_sized(&o, 8), -EINVAL);
    tu_assert_contains(br_last_error(NULL), "size 8 is not the size of a br_options");
    assert_int_equal(o.batch_size, 0xabababab);
    assert_int_equal(br_options_init_sized(NULL, sizeof o), -EINVAL);
}

/* A newer program's larger options: the init sets this library's defaults
 * and zeroes the rest; br_open takes them while the unknown bytes are zero
 * and refuses them, naming the byte, once one is set. */
static void test_options_newer_struct(void **state)
{
    (void)state;
    tu_leaks leaks;
    tu_leaks_begin(&leaks);
    enum { N = 12 };
    uint64_t *ids = tu_ids_identity(N);
    struct newer_options n;
    memset(&n, 0xab, sizeof n);
    assert_int_equal(br_options_init_sized(&n.o, sizeof n), 0);
    assert_int_equal(n.o.size, sizeof n);
    assert_int_equal(n.o.batch_size, 32);
    assert_int_equal(n.o.timeout_ms, -1);
    assert_int_equal(n.o.world, 1);
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(n.more[i], 0);
    n.o.batch_size = 4;
    n.o.slot_bytes = 32;
    n.o.epochs = 1;
    tu_shared *sh = tu_shared_new();
    tu_shared_config(sh, ids, NULL, N, &n.o, 8);
    br_gen *g = NOT_NULL;
    assert_int_equal(br_open(&g, tu_loader, sh, ids, NULL, N, &n.o), 0);
    tu_track(g);
    br_batch b;
    for (uint64_t seq = 0; seq < 3; seq++) {
        assert_int_equal(tu_next(g, &b, NULL), 0);
        tu_check_batch(sh, &b, seq);
    }
    assert_int_equal(br_next(g, &b), BR_EOF);
    assert_int_equal(tu_close(g), 0);
    tu_assert_loaders_ok(sh);

    /* An option this library does not know, set. */
    char byte[32];
    n.more[1] = 1;
    g = NOT_NULL;
    assert_int_equal(br_open(&g, never_called, NULL, ids, NULL, N, &n.o), -EINVAL);
    assert_null(g);
    snprintf(byte, sizeof byte, "byte %zu is set", offsetof(struct newer_options, more) + 8);
    tu_assert_contains(br_last_error(NULL), byte);
    tu_assert_contains(br_last_error(NULL), "newer batchring");
    tu_leaks_check(&leaks);
    tu_shared_free(sh);
    tu_release(ids);
}

/* The getters write exactly the caller's sizeof: a newer program's larger
 * struct gets zeros past this library's fields, a size below any struct
 * is refused and nothing is written; br_next zeroes br_batch.reserved. */
static void test_options_results_sized(void **state)
{
    (void)state;
    tu_leaks leaks;
    tu_leaks_begin(&leaks);
    enum { N = 16 };
    uint64_t *ids = tu_ids_identity(N);
    br_options o;
    assert_int_equal(br_options_init(&o), 0);
    o.batch_size = 4;
    o.workers = 2;
    o.slot_bytes = 32;
    o.epochs = 0; /* endless: no worker runs out of batches and exits */
    tu_shared *sh = tu_shared_new();
    tu_shared_config(sh, ids, NULL, N, &o, 8);
    br_gen *g = NULL;
    assert_int_equal(br_open(&g, tu_loader, sh, ids, NULL, N, &o), 0);
    tu_track(g);

    br_batch b;
    memset(&b, 0xab, sizeof b);
    assert_int_equal(tu_next(g, &b, NULL), 0);
    tu_check_batch(sh, &b, 0);
    for (size_t i = 0; i < sizeof b.reserved / sizeof b.reserved[0]; i++)
        assert_int_equal(b.reserved[i], 0);

    br_stats s;
    struct {
        br_stats s;
        uint64_t more[2];
    } big;
    assert_int_equal(br_stats_get(g, &s), 0);
    memset(&big, 0xab, sizeof big);
    assert_int_equal(br_stats_get_sized(g, &big.s, sizeof big), 0);
    assert_int_equal(big.more[0], 0);
    assert_int_equal(big.more[1], 0);
    assert_int_equal(big.s.batches, 1);
    assert_int_equal(big.s.workers, 2);
    assert_int_equal(big.s.slots, s.slots);
    memset(&big, 0xab, sizeof big);
    assert_int_equal(br_stats_get_sized(g, &big.s, 8), -EINVAL);
    assert_int_equal(big.s.batches, UINT64_C(0xabababababababab));

    br_worker_stats ws;
    struct {
        br_worker_stats w;
        uint64_t more[2];
    } wbig;
    int32_t pids[2];
    tu_assert_workers_live(g, 2, pids);
    assert_int_equal(br_worker_stats_get(g, 1, &ws), 0);
    assert_int_equal(ws.pid, pids[1]);
    memset(&wbig, 0xab, sizeof wbig);
    assert_int_equal(br_worker_stats_get_sized(g, 1, &wbig.w, sizeof wbig), 0);
    assert_int_equal(wbig.more[0], 0);
    assert_int_equal(wbig.more[1], 0);
    assert_int_equal(wbig.w.pid, pids[1]);
    memset(&wbig, 0xab, sizeof wbig);
    assert_int_equal(br_worker_stats_get_sized(g, 1, &wbig.w, 4), -EINVAL);
    assert_int_equal(wbig.w.batches, UINT64_C(0xabababababababab));

    assert_int_equal(tu_close(g), 0);
    tu_assert_loaders_ok(sh);
    tu_leaks_check(&leaks);
    tu_shared_free(sh);
    tu_release(ids);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_options_defaults, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_options_init_null, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_options_bad_inputs_refused, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_options_boundaries_accepted, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_options_workers_lowered, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_options_not_lowered_no_message, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_options_null_arguments, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_options_workers0_has_no_worker_stats, tu_setup,
                                        tu_teardown),
        cmocka_unit_test_setup_teardown(test_options_last_error_per_thread, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_options_start_seq_limits, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_options_size_refused, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_options_newer_struct, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_options_results_sized, tu_setup, tu_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
