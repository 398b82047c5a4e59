/* SPDX-License-Identifier: MIT */
/*
 * Hostile input (issue 10, defects 4 and 5).
 *
 * Damaged slot descriptors: a ring's descriptors live in shared memory that
 * its workers (and, for a named ring, anyone who can write the object)
 * write. Each case lets a batch be published, waits for READY (or FAILED)
 * on its word, damages one field and checks that br_next refuses the batch
 * with BR_EBADRING naming the field, and that the generator is stopped
 * afterwards. The same through the CLI: `batchring serve`, one write into
 * /dev/shm/NAME, `batchring consume --verify` must fail cleanly, not crash.
 *
 * FIFOs given as dataset files: every kind of dataset file (records,
 * labels, list, list entry, data, index) through the API and the CLI is
 * refused with -EINVAL naming "a FIFO" instead of blocking in open().
 * Each such call runs behind a hang guard: a child process, or the CLI,
 * whose end the test waits for with a bound (a pidfd poll), so a blocked
 * open fails the test instead of hanging it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mkdata.h"
#include "ring/error.h"
#include "ring/ring.h"
#include "test_fs.h"
#include "test_proc.h"
#include "test_util.h"

#ifndef BR_CLI_PATH
#error "BR_CLI_PATH (the batchring binary) comes from tests/CMakeLists.txt"
#endif

/* Bound on a call that must not block (an open of a FIFO): far above what
 * an open of a regular file takes on a loaded machine. */
#define HANG_GUARD_MS tu_ms(5000)

/* ---- processes ------------------------------------------------------------ */

/* The batchring binary with args: stdout and stderr go to pipes. */
static pid_t cli_spawn(const char *const *args, int *out_fd, int *err_fd)
{
    return tu_spawn(BR_CLI_PATH, args, out_fd, err_fd);
}

/* Runs it to its end within timeout_ms (tu_run): the hang guard. */
static int cli_run(const char *const *args, char *out, char *err, size_t cap, int timeout_ms)
{
    return tu_run(BR_CLI_PATH, args, out, err, cap, timeout_ms);
}

/* ---- fixtures ------------------------------------------------------------- */

static char tmp_dir[4096];
static char ring_name[64];

static int setup(void **state)
{
    tmp_dir[0] = ring_name[0] = '\0';
    return tu_setup(state);
}

static int teardown(void **state)
{
    tu_children_kill(true);
    tu_teardown(state);
    if (ring_name[0])
        shm_unlink(ring_name);
    if (tmp_dir[0])
        tf_remove_tree(tmp_dir);
    tmp_dir[0] = ring_name[0] = '\0';
    return 0;
}

#define CAP 16384
static char out[CAP], err[CAP];

/* ---- damaged descriptors, in process -------------------------------------- */

/* The local ring of the one open generator, as this process maps it: found
 * by its memfd's name in /proc/self/maps, validated and bound like an
 * attacher's view (the mapping stays the generator's). */
static void find_local_ring(struct br_ring *view)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512], msg[BR_MSG_CAP];
    unsigned long lo = 0, hi = 0;
    bool found = false;
    assert_non_null(f);
    while (fgets(line, sizeof line, f))
        if (strstr(line, "/memfd:batchring")) {
            assert_false(found); /* one generator at a time */
            assert_int_equal(sscanf(line, "%lx-%lx", &lo, &hi), 2);
            found = true;
        }
    fclose(f);
    assert_true(found);
    memset(view, 0, sizeof *view);
    if (br__ring_check_bind(view, (void *)lo, hi - lo, msg))
        fail_msg("the generator's ring does not validate: %s", msg);
}

/* Waits (futex, bounded) until the slot of seq holds `want`. */
static void wait_word(struct br_ring *r, uint64_t seq, uint32_t want)
{
    struct br_slot_desc *d = br__slot_desc(r, seq);
    const uint64_t deadline = tu_now_ns() + (uint64_t)TU_WAIT_MS * 1000000u;
    for (;;) {
        uint32_t w = br__load_acquire_u32(&d->word);
        if (w == want)
            return;
        if (tu_now_ns() >= deadline)
            fail_msg("slot of batch %" PRIu64 " holds 0x%x, not 0x%x, after %d ms", seq, w, want,
                     TU_WAIT_MS);
        br__slot_sleep(d, w, 100);
    }
}

enum field {
    F_SEQ, F_COUNT_ZERO, F_COUNT_BIG, F_COUNT_HUGE, F_SIZE, F_EPOCH, F_BATCH, F_WORKER,
    F_HAS_OFFSETS, F_OFFSETS_END, F_OFFSETS_FALL,
    /* The FAILED path (loader_failure). */
    F_FAILED_COUNT_ZERO, F_FAILED_COUNT_HUGE, F_FAILED_ERROR, F_FAILED_TEXT
};

struct damage {
    enum field field;
    const char *says; /* what the message must contain */
};

static const struct damage damages[] = {
    {F_SEQ, "seq is"},
    {F_COUNT_ZERO, "count is 0"},
    {F_COUNT_BIG, "count is 9"},
    {F_COUNT_HUGE, "count is 100000000"},
    {F_SIZE, "size is"},
    {F_EPOCH, "epoch is"},
    {F_BATCH, "batch is"},
    {F_WORKER, "worker is 1"},
    {F_HAS_OFFSETS, "has_offsets is 2"},
    {F_OFFSETS_END, "offsets["},
    {F_OFFSETS_FALL, "offsets["},
    {F_FAILED_COUNT_ZERO, "count is 0"},
    {F_FAILED_COUNT_HUGE, "count is 100000000"},
    {F_FAILED_ERROR, "error is 5"},
    {F_FAILED_TEXT, "error text"},
};

#define BAD_BATCH 1u /* the batch damaged: the second */

/* Fails batch BAD_BATCH (for the FAILED cases). */
static int hook_fail(br_job *job, tu_shared *sh, uint32_t attempt)
{
    (void)attempt;
    if (job->seq != sh->arg)
        return 0;
    snprintf(job->err, job->err_cap, "no such sample");
    return -ENOENT;
}

static void damage_slot(struct br_ring *r, uint64_t seq, enum field f)
{
    struct br_slot_desc *d = br__slot_desc(r, seq);
    uint64_t *offsets = br__slot_offsets(r, seq);
    switch (f) {
    case F_SEQ: d->seq = seq + r->nslots; break;
    case F_COUNT_ZERO:
    case F_FAILED_COUNT_ZERO: d->count = 0; break;
    case F_COUNT_BIG: d->count = r->batch_size + 1; break;
    case F_COUNT_HUGE:
    case F_FAILED_COUNT_HUGE: d->count = 100000000u; break;
    case F_SIZE: d->size = r->slot_bytes + 1; break;
    case F_EPOCH: d->epoch += 1; break;
    case F_BATCH: d->batch += 1; break;
    case F_WORKER: d->worker = 1; break;
    case F_HAS_OFFSETS: d->has_offsets = 2; break;
    case F_OFFSETS_END: offsets[d->count] = d->size + 1; break;
    case F_OFFSETS_FALL: offsets[1] = offsets[2] + 1; break;
    case F_FAILED_ERROR: d->error = 5; break;
    case F_FAILED_TEXT: memset(br__slot_err(r, seq), 'A', BR_ERR_CAP); break;
    }
}

/* One worker, a local ring: batch 0 is taken, batch 1 is damaged once it is
 * published, and br_next must refuse it. */
static void test_hostile_damaged_descriptor(void **state)
{
    (void)state;
    const size_t n = 64;
    static char report[8192];
    report[0] = '\0';
    for (size_t k = 0; k < sizeof damages / sizeof damages[0]; k++) {
        const struct damage *dm = &damages[k];
        const bool failed = dm->field >= F_FAILED_COUNT_ZERO;
        print_message("damage %zu: %s\n", k, dm->says);
        tu_leaks l;
        tu_leaks_begin(&l);
        uint64_t *ids = tu_ids_identity(n);
        tu_shared *sh = tu_shared_new();
        br_options opt;
        br_options_init(&opt);
        opt.batch_size = 8;
        opt.workers = 1;
        opt.slots = 4;
        opt.slot_bytes = 8 * 64;
        opt.max_restarts = 0;
        tu_shared_config(sh, ids, NULL, n, &opt, 64);
        sh->offsets = true;
        if (failed) {
            sh->hook = hook_fail;
            sh->arg = BAD_BATCH;
        }

        br_gen *g;
        br_batch b;
        struct br_ring view;
        assert_int_equal(br_open(&g, tu_loader, sh, ids, NULL, n, &opt), 0);
        tu_track(g);
        find_local_ring(&view);
        assert_int_equal(br_next(g, &b), 0);
        tu_check_batch(sh, &b, 0);
        wait_word(&view, BAD_BATCH,
                  br__slot_word(br__slot_lap(&view, BAD_BATCH), failed ? BR_FAILED : BR_READY));
        damage_slot(&view, BAD_BATCH, dm->field);

        int rc = br_next(g, &b);
        if (rc != BR_EBADRING || !strstr(br_last_error(g), dm->says) ||
            !strstr(br_last_error(g), "batch 1")) {
            /* Every damage is tried, and all that went wrong is reported. */
            snprintf(report + strlen(report), sizeof report - strlen(report),
                     "damage %zu (%s): br_next returned %d (%s), expected BR_EBADRING; "
                     "message: %.200s\n",
                     k, dm->says, rc, br_err_name(rc), br_last_error(g));
        } else {
            /* Stopped, like after any failure. */
            assert_int_equal(br_next(g, &b), BR_ESTOPPED);
            tu_assert_contains(br_last_error(g), dm->says);
        }
        tu_close(g);
        tu_shared_free(sh);
        tu_release(ids);
        tu_leaks_check(&l);
    }
    if (report[0])
        fail_msg("%s", report);
}

/* ---- damaged descriptors, through the CLI --------------------------------- */

/* Maps /dev/shm/NAME read-write: a ring this process may write, as its
 * owner can. */
static void *map_named(const char *name, size_t *bytes)
{
    struct stat st;
    int fd = shm_open(name, O_RDWR | O_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(fstat(fd, &st), 0);
    void *base = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    assert_true(base != MAP_FAILED);
    *bytes = (size_t)st.st_size;
    return base;
}

static void test_hostile_damaged_descriptor_cli(void **state)
{
    (void)state;
    static const struct damage cli_damages[] = {
        {F_COUNT_HUGE, "count is 100000000"},
        {F_SIZE, "size is"},
        {F_OFFSETS_END, "offsets["},
    };
    tf_tmpdir(tmp_dir, sizeof tmp_dir, "brtest-hostile");
    struct br_mkdata_spec spec = {
        .layout = "records", .dir = tmp_dir, .samples = 200, .min_bytes = 100,
        .max_bytes = 100, .seed = 3,
    };
    char e[512];
    if (br_mkdata_write(&spec, NULL, e, sizeof e))
        fail_msg("mkdata: %s", e);

    for (size_t k = 0; k < sizeof cli_damages / sizeof cli_damages[0]; k++) {
        const struct damage *dm = &cli_damages[k];
        char line[300], how[96];
        tu_leaks l;
        tu_leaks_begin(&l);
        snprintf(ring_name, sizeof ring_name, "/brtest-hostile-%d-%zu", (int)getpid(), k);
        int sout, serr;
        pid_t server = cli_spawn(
            (const char *const[]){"serve", "--name", ring_name, "--records",
                                  tf_path(tmp_dir, BR_MKDATA_RECORDS), "--record-size", "100",
                                  "--batch", "8", "--workers", "1", "--slots", "4", NULL},
            &sout, &serr);
        if (!tu_read_line(sout, line, sizeof line, TU_WAIT_MS))
            fail_msg("batchring serve printed no ring name");
        assert_string_equal(line, ring_name);

        size_t bytes;
        void *base = map_named(ring_name, &bytes);
        char msg[BR_MSG_CAP];
        struct br_ring view = {0};
        if (br__ring_check_bind(&view, base, bytes, msg))
            fail_msg("the served ring does not validate: %s", msg);
        /* The consumer starts at batch 0: damage it once it is published. */
        wait_word(&view, 0, br__slot_word(0, BR_READY));
        damage_slot(&view, 0, dm->field);
        munmap(base, bytes);

        int status = cli_run((const char *const[]){"consume", "--name", ring_name, "--verify",
                                                   "--seed", "3", "--sample-bytes", "100", "-q",
                                                   NULL},
                             out, err, CAP, TU_WAIT_MS);
        if (!WIFEXITED(status) || WEXITSTATUS(status) == 0)
            fail_msg("damage %zu (%s): batchring consume %s, expected a failure exit\n"
                     "stdout: %s\nstderr: %s",
                     k, dm->says, tu_describe_status(status, how, sizeof how), out, err);
        tu_assert_contains(err, dm->says);
        tu_assert_contains(err, "BR_EBADRING");
        print_message("consume: %s", strstr(err, "batchring consume"));

        /* The server sees its consumer fail, and ends by itself. */
        close(sout);
        status = tu_wait_exit(server, TU_WAIT_MS, "batchring serve");
        assert_true(WIFEXITED(status));
        close(serr);
        assert_int_equal(access(tf_path("/dev/shm", ring_name + 1), F_OK), -1);
        ring_name[0] = '\0';
        tu_leaks_check(&l);
    }
}

/* ---- FIFOs as dataset files ------------------------------------------------ */

/* What a guarded call returned, sent up from its child process. */
struct guarded {
    int rc;
    char msg[BR_MSG_CAP];
};

/* Runs fn in a child process and waits at most HANG_GUARD_MS for it: an
 * open that blocks fails the test instead of hanging it. */
static struct guarded run_guarded(int (*fn)(const void *arg), const void *arg)
{
    struct guarded r;
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct guarded c = {0};
        c.rc = fn(arg);
        snprintf(c.msg, sizeof c.msg, "%s", br_last_error(NULL));
        _exit(write(p[1], &c, sizeof c) == (ssize_t)sizeof c ? 0 : 1);
    }
    tu_child_track(pid);
    close(p[1]);
    struct pollfd pf = {.fd = p[0], .events = POLLIN};
    int n;
    while ((n = poll(&pf, 1, HANG_GUARD_MS)) < 0 && errno == EINTR)
        ;
    if (n == 0)
        fail_msg("the call still blocks after %d ms", HANG_GUARD_MS);
    assert_int_equal(read(p[0], &r, sizeof r), (ssize_t)sizeof r);
    close(p[0]);
    assert_int_equal(WEXITSTATUS(tu_wait_exit(pid, TU_WAIT_MS, "guarded call")), 0);
    return r;
}

/* The paths of one case. */
struct ds_case {
    const char *what;
    int layout; /* 0 records, 1 files, 2 indexed */
    const char *a, *b, *labels;
};

static int open_case(const void *arg)
{
    const struct ds_case *c = arg;
    br_dataset *ds = NULL;
    int rc;
    if (c->layout == 0)
        rc = br_dataset_open_records(&ds, c->a, 100, c->labels, 0);
    else if (c->layout == 1)
        rc = br_dataset_open_files(&ds, c->a, c->labels, 0);
    else
        rc = br_dataset_open_indexed(&ds, c->a, c->b, c->labels, 0);
    if (rc == 0 && ds)
        br_dataset_close(ds);
    return rc;
}

static void make_fifo(const char *path)
{
    if (mkfifo(path, 0600) != 0)
        fail_msg("mkfifo %s: %s", path, strerror(errno));
}

/* A records, a files and an indexed dataset, and FIFOs beside them. */
static void make_datasets(const char *dir)
{
    static const char *const layouts[] = {"records", "files", "indexed"};
    for (int i = 0; i < 3; i++) {
        char sub[4096], e[512];
        if ((size_t)snprintf(sub, sizeof sub, "%s/%s", dir, layouts[i]) >= sizeof sub)
            fail_msg("%s/%s is too long", dir, layouts[i]);
        assert_int_equal(mkdir(sub, 0700), 0);
        struct br_mkdata_spec spec = {
            .layout = layouts[i], .dir = sub, .samples = 50, .min_bytes = 100,
            .max_bytes = 100, .seed = 5,
        };
        if (br_mkdata_write(&spec, NULL, e, sizeof e))
            fail_msg("mkdata %s: %s", layouts[i], e);
    }
    make_fifo(tf_path(dir, "fifo"));
    /* A list whose third entry is a FIFO. */
    char list[8192];
    size_t used = 0;
    for (int i = 0; i < 5; i++) {
        char entry[64];
        snprintf(entry, sizeof entry, "s%d", i);
        if (i == 2)
            make_fifo(tf_path(dir, entry));
        else
            tf_write(tf_path(dir, entry), "0123456789", 10);
        used += (size_t)snprintf(list + used, sizeof list - used, "%s\n", entry);
    }
    tf_write(tf_path(dir, "list.txt"), list, used);
}

static void test_hostile_fifo_dataset_api(void **state)
{
    (void)state;
    char p[8][4200];
    tf_tmpdir(tmp_dir, sizeof tmp_dir, "brtest-fifo");
    make_datasets(tmp_dir);
    snprintf(p[0], sizeof p[0], "%s", tf_path(tmp_dir, "fifo"));
    snprintf(p[1], sizeof p[1], "%s/records/%s", tmp_dir, BR_MKDATA_RECORDS);
    snprintf(p[2], sizeof p[2], "%s/files/%s", tmp_dir, BR_MKDATA_LIST);
    snprintf(p[3], sizeof p[3], "%s/indexed/%s", tmp_dir, BR_MKDATA_DATA);
    snprintf(p[4], sizeof p[4], "%s/indexed/%s", tmp_dir, BR_MKDATA_INDEX);
    snprintf(p[5], sizeof p[5], "%s", tf_path(tmp_dir, "list.txt"));
    const struct ds_case cases[] = {
        {"records file", 0, p[0], NULL, NULL},
        {"labels file", 0, p[1], NULL, p[0]},
        {"list file", 1, p[0], NULL, NULL},
        {"list entry", 1, p[5], NULL, NULL},
        {"files labels file", 1, p[2], NULL, p[0]},
        {"data file", 2, p[0], p[4], NULL},
        {"index file", 2, p[3], p[0], NULL},
        {"indexed labels file", 2, p[3], p[4], p[0]},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tu_leaks l;
        tu_leaks_begin(&l);
        struct guarded r = run_guarded(open_case, &cases[i]);
        if (r.rc != -EINVAL)
            fail_msg("a FIFO as the %s: %d (%s), expected -EINVAL; message: %s", cases[i].what,
                     r.rc, br_err_name(r.rc), r.msg);
        tu_assert_contains(r.msg, "a FIFO");
        tu_assert_contains(r.msg, i == 3 ? "s2" : "fifo");
        tu_leaks_check(&l);
    }
}

/* A file of a files dataset that becomes a FIFO after the open: the worker
 * that loads it must fail the batch, not block in open(). */
static void test_hostile_fifo_replaces_file(void **state)
{
    (void)state;
    tu_leaks l;
    tu_leaks_begin(&l);
    tf_tmpdir(tmp_dir, sizeof tmp_dir, "brtest-fifo");
    char list[64] = "";
    for (int i = 0; i < 4; i++) {
        char entry[16];
        snprintf(entry, sizeof entry, "t%d", i);
        tf_write(tf_path(tmp_dir, entry), "0123456789", 10);
        strcat(list, entry);
        strcat(list, "\n");
    }
    tf_write(tf_path(tmp_dir, "list.txt"), list, strlen(list));
    br_dataset *ds;
    assert_int_equal(br_dataset_open_files(&ds, tf_path(tmp_dir, "list.txt"), NULL, 0), 0);
    assert_int_equal(unlink(tf_path(tmp_dir, "t1")), 0);
    make_fifo(tf_path(tmp_dir, "t1"));

    br_options opt;
    br_options_init(&opt);
    opt.batch_size = 4;
    opt.workers = 1;
    opt.epochs = 1;
    /* The hang guard: a worker blocked in open() shows as a timeout. */
    opt.timeout_ms = HANG_GUARD_MS;
    br_gen *g;
    br_batch b;
    assert_int_equal(br_open_dataset(&g, ds, NULL, 0, &opt), 0);
    tu_track(g);
    int rc = br_next(g, &b);
    if (rc != BR_ELOADER)
        fail_msg("br_next returned %d (%s), expected BR_ELOADER; message: %s", rc,
                 br_err_name(rc), br_last_error(g));
    tu_assert_contains(br_last_error(g), "a FIFO");
    tu_assert_contains(br_last_error(g), "t1");
    tu_close(g);
    br_dataset_close(ds);
    tu_leaks_check(&l);
}

/* The CLI: serve with a FIFO for each of its paths, mkdata into a
 * directory where its output file is a FIFO. */
static void test_hostile_fifo_cli(void **state)
{
    (void)state;
    char p[6][4200], how[96];
    tf_tmpdir(tmp_dir, sizeof tmp_dir, "brtest-fifo");
    make_datasets(tmp_dir);
    snprintf(p[0], sizeof p[0], "%s", tf_path(tmp_dir, "fifo"));
    snprintf(p[1], sizeof p[1], "%s/records/%s", tmp_dir, BR_MKDATA_RECORDS);
    snprintf(p[2], sizeof p[2], "%s/indexed/%s", tmp_dir, BR_MKDATA_DATA);
    snprintf(p[3], sizeof p[3], "%s/indexed/%s", tmp_dir, BR_MKDATA_INDEX);
    snprintf(p[4], sizeof p[4], "%s", tf_path(tmp_dir, "list.txt"));
    snprintf(ring_name, sizeof ring_name, "/brtest-hostile-fifo-%d", (int)getpid());
    const char *const common[] = {"--name", ring_name, "--batch", "4", "--workers", "1"};
    const char *const *sources[] = {
        (const char *const[]){"--records", p[0], "--record-size", "100", NULL},
        (const char *const[]){"--records", p[1], "--record-size", "100", "--labels", p[0], NULL},
        (const char *const[]){"--files", p[0], NULL},
        (const char *const[]){"--files", p[4], NULL},
        (const char *const[]){"--indexed", p[0], p[3], NULL},
        (const char *const[]){"--indexed", p[2], p[0], NULL},
    };
    for (size_t i = 0; i < sizeof sources / sizeof sources[0]; i++) {
        const char *argv[24] = {"serve"};
        size_t n = 1;
        for (size_t k = 0; k < sizeof common / sizeof common[0]; k++)
            argv[n++] = common[k];
        for (const char *const *a = sources[i]; *a; a++)
            argv[n++] = *a;
        argv[n] = NULL;
        int status = cli_run(argv, out, err, CAP, HANG_GUARD_MS);
        if (!WIFEXITED(status) || WEXITSTATUS(status) == 0)
            fail_msg("serve case %zu: batchring serve %s\nstderr: %s", i,
                     tu_describe_status(status, how, sizeof how), err);
        tu_assert_contains(err, "a FIFO");
        assert_int_equal(access(tf_path("/dev/shm", ring_name + 1), F_OK), -1);
    }
    ring_name[0] = '\0';

    /* mkdata: its output is a FIFO (someone else's, left in the way). */
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/out", tmp_dir);
    assert_int_equal(mkdir(dir, 0700), 0);
    make_fifo(tf_path(dir, BR_MKDATA_RECORDS));
    int status = cli_run((const char *const[]){"mkdata", "--layout", "records", "--dir", dir,
                                               "--samples", "10", "--sample-bytes", "10", NULL},
                         out, err, CAP, HANG_GUARD_MS);
    if (!WIFEXITED(status) || WEXITSTATUS(status) == 0)
        fail_msg("batchring mkdata %s\nstderr: %s", tu_describe_status(status, how, sizeof how), err);
    tu_assert_contains(err, "a FIFO");
    /* Nothing a user did not create is deleted: the FIFO is still there. */
    struct stat st;
    assert_int_equal(stat(tf_path(dir, BR_MKDATA_RECORDS), &st), 0);
    assert_true(S_ISFIFO(st.st_mode));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_hostile_damaged_descriptor, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_damaged_descriptor_cli, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_fifo_dataset_api, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_fifo_replaces_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_fifo_cli, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
