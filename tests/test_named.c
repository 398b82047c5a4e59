/* SPDX-License-Identifier: MIT */
/*
 * Named rings across real processes. A ring is served by the built
 * `batchring serve` (exec'd, as a user runs it) or by a forked child that
 * calls the library; consumers attach from this process or from forked
 * children. Every test uses its own ring names, waits on pipes, pidfds and
 * futexes (never on a sleep), and ends with no ring left in /dev/shm and no
 * process left behind.
 *
 * This process is a child subreaper: when a producer is killed, its
 * supervisor and workers, which die of PR_SET_PDEATHSIG, are reparented
 * here instead of to init, so that the tests can reap them and prove that
 * none is left.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <batchring/plugin.h>

#include "mkdata.h"
#include "synth.h"
#include "ring/layout.h"
#include "ring/ring.h"
#include "test_fs.h"
#include "test_proc.h"
#include "test_util.h"

#ifndef BR_CLI_PATH
#error "BR_CLI_PATH (the batchring binary) comes from tests/CMakeLists.txt"
#endif

/* ---- what a test started, so that a failed test cannot leak it ---------- */

#define MAX_TRACKED 32
static char ring_names[MAX_TRACKED][64];
static unsigned n_ring_names;
static char tmp_dirs[4][4096];
static unsigned n_tmp_dirs;

/* A ring name no other test (or run) uses: "/brtest-<pid>-<n>". */
static const char *new_ring_name(void)
{
    static unsigned seq;
    assert_true(n_ring_names < MAX_TRACKED);
    char *name = ring_names[n_ring_names++];
    snprintf(name, sizeof ring_names[0], "/brtest-%d-%u", (int)getpid(), seq++);
    return name;
}

static const char *new_tmp_dir(void)
{
    assert_true(n_tmp_dirs < sizeof tmp_dirs / sizeof tmp_dirs[0]);
    tf_tmpdir(tmp_dirs[n_tmp_dirs], sizeof tmp_dirs[0], "brnamed");
    return tmp_dirs[n_tmp_dirs++];
}

/* /dev/shm/NAME of ring /NAME. */
static const char *shm_path(const char *name)
{
    static char buf[4][300];
    static unsigned next;
    char *b = buf[next++ % 4];
    snprintf(b, sizeof buf[0], "/dev/shm%s", name);
    return b;
}

static bool ring_exists(const char *name)
{
    return access(shm_path(name), F_OK) == 0;
}

/* br_attach must fail with `code`; an unexpected success is detached at
 * once, so that this failure does not spill into the next tests. Returns
 * the message. */
static const char *attach_refused(const char *name, int code, const char *what)
{
    br_gen *g = (br_gen *)&code; /* must come back NULL */
    int rc = br_attach(&g, name, 0);
    if (rc == 0)
        br_close(g);
    if (rc != code)
        fail_msg("%s: br_attach %s returned %s (%s), expected %s", what, name, br_err_name(rc),
                 rc ? br_last_error(NULL) : "attached", br_err_name(code));
    assert_null(g);
    return br_last_error(NULL);
}

/* ---- processes ------------------------------------------------------- */

/* Waits for child pid to end, at most timeout_ms; reaps it and returns
 * its status (tu_wait_exit). */
static int wait_exit(pid_t pid, int timeout_ms)
{
    return tu_wait_exit(pid, timeout_ms, NULL);
}

static void assert_exit_code(int status, int code, const char *what)
{
    char how[96];
    if (!WIFEXITED(status) || WEXITSTATUS(status) != code)
        fail_msg("%s %s, expected exit code %d", what, tu_describe_status(status, how, sizeof how),
                 code);
}

/*
 * Reaps every child until none is left: the producers' supervisors and
 * workers come here when their parent is killed (we are their subreaper),
 * and die of their parent-death signal. At most timeout_ms, then fails
 * naming what is left. With `must`, a timeout fails the test.
 */
static bool reap_all(int timeout_ms, bool must)
{
    sigset_t chld, old;
    const uint64_t deadline = tu_now_ns() + (uint64_t)timeout_ms * 1000000u;
    bool done = false;

    /* Blocked, SIGCHLD stays pending for sigtimedwait; a child that ended
     * before is found by the WNOHANG loop. */
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, &old);
    for (;;) {
        pid_t p;
        while ((p = waitpid(-1, NULL, WNOHANG)) > 0)
            tu_child_untrack(p);
        if (p < 0 && errno == ECHILD) {
            done = true;
            break;
        }
        uint64_t now = tu_now_ns();
        if (now >= deadline)
            break;
        struct timespec ts = {(time_t)((deadline - now) / 1000000000u),
                              (long)((deadline - now) % 1000000000u)};
        sigtimedwait(&chld, NULL, &ts);
    }
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (!done && must) {
        char desc[1024];
        tu_descendant_count(desc, sizeof desc);
        fail_msg("processes still running %d ms after their producer ended: %s", timeout_ms, desc);
    }
    return done;
}

/* In a forked child: the test's signal mask is not the child's business. */
static void child_prepare(void)
{
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

/* Reads len bytes within timeout_ms; false at end of file or timeout. */
static bool read_within(int fd, void *buf, size_t len, int timeout_ms)
{
    const uint64_t deadline = tu_now_ns() + (uint64_t)timeout_ms * 1000000u;
    size_t got = 0;
    while (got < len) {
        uint64_t now = tu_now_ns();
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (now >= deadline)
            return false;
        int r = poll(&p, 1, (int)((deadline - now + 999999u) / 1000000u));
        if (r < 0 && errno != EINTR)
            return false;
        if (r <= 0)
            continue;
        ssize_t n = read(fd, (char *)buf + got, len - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        got += (size_t)n;
    }
    return true;
}

/* The batchring binary with args (tu_spawn). */
static pid_t cli_spawn(const char *const *args, int *out_fd, int *err_fd)
{
    return tu_spawn(BR_CLI_PATH, args, out_fd, err_fd);
}

/* Runs prog to its end, at most TU_WAIT_MS (tu_run: the hang guard). */
static int prog_run(const char *prog, const char *const *args, char *out, char *err, size_t cap)
{
    return tu_run(prog, args, out, err, cap, TU_WAIT_MS);
}

static int cli_run(const char *const *args, char *out, char *err, size_t cap)
{
    return prog_run(BR_CLI_PATH, args, out, err, cap);
}

/* cli_run, asserting the exit code; prints both streams when it differs. */
static void cli_expect(const char *const *args, int code, char *out, char *err, size_t cap)
{
    int status = cli_run(args, out, err, cap);
    char how[96];
    if (!WIFEXITED(status) || WEXITSTATUS(status) != code) {
        char cmd[512] = "";
        for (const char *const *a = args; *a; a++) {
            strncat(cmd, *a, sizeof cmd - strlen(cmd) - 2);
            strncat(cmd, " ", sizeof cmd - strlen(cmd) - 1);
        }
        fail_msg("batchring %s%s, expected exit code %d\nstdout: %s\nstderr: %s", cmd,
                 tu_describe_status(status, how, sizeof how), code, out, err);
    }
}

/* The line of `text` whose first word is `word`, copied into buf; NULL if
 * there is none. */
static const char *line_of(const char *text, const char *word, char *buf, size_t cap)
{
    size_t len = strlen(word);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        const char *end = strchr(p, '\n');
        if (!strncmp(p, word, len) && (p[len] == ' ' || p[len] == '\n' || p[len] == '\0')) {
            size_t n = end ? (size_t)(end - p) : strlen(p);
            if (n >= cap)
                n = cap - 1;
            memcpy(buf, p, n);
            buf[n] = '\0';
            return buf;
        }
    }
    return NULL;
}

/* ---- servers: `batchring serve` ---------------------------------------- */

struct server {
    pid_t pid;
    const char *name;
};

/* Starts `batchring serve --name NAME args...` and waits until it has
 * printed the ring's name: the ring is then ready. */
static void serve_start(struct server *s, const char *name, const char *const *args)
{
    const char *argv[40] = {"serve", "--name", name};
    size_t n = 3;
    char line[300], how[96];
    int out;

    while (*args) {
        assert_true(n < sizeof argv / sizeof argv[0] - 1);
        argv[n++] = *args++;
    }
    argv[n] = NULL;
    s->pid = cli_spawn(argv, &out, NULL);
    s->name = name;
    bool ok = tu_read_line(out, line, sizeof line, TU_WAIT_MS);
    close(out);
    if (!ok)
        fail_msg("batchring serve --name %s printed no ring name; it %s", name,
                 tu_describe_status(wait_exit(s->pid, TU_WAIT_MS), how, sizeof how));
    assert_string_equal(line, name);
    assert_true(ring_exists(name));
}

/* Sends sig to the server; it must exit with 0 and leave no ring and no
 * process behind (it reaps its own supervisor, which reaps the workers). */
static void serve_stop(struct server *s, int sig)
{
    char desc[1024];
    assert_int_equal(kill(s->pid, sig), 0);
    assert_exit_code(wait_exit(s->pid, TU_WAIT_MS), 0, "batchring serve after a signal");
    if (ring_exists(s->name))
        fail_msg("ring %s is still in /dev/shm after batchring serve exited", s->name);
    if (tu_descendant_count(desc, sizeof desc) != 0)
        fail_msg("processes left after batchring serve exited: %s", desc);
}

/* ---- producers: a forked child calling the library ----------------------- */

static volatile sig_atomic_t producer_stop;

static void on_producer_stop(int sig)
{
    (void)sig;
    producer_stop = 1;
}

/* How a producer child ended (its exit code). */
enum { PROD_DONE = 0, PROD_STOPPED = 10, PROD_FAILED = 11, PROD_OPEN_FAILED = 12 };

struct prod_report {
    int rc;
    char msg[BR_ERR_CAP];
};

/*
 * Forks a producer that serves `name` with tu_loader over sh's ids and
 * labels until its consumer is done (exit PROD_DONE) or SIGTERM (exit
 * PROD_STOPPED). *rep gets br_open's result and message. Returns its pid.
 */
static pid_t producer_fork(const char *name, tu_shared *sh, const br_options *opt,
                           struct prod_report *rep)
{
    int p[2];
    pid_t parent = getpid(), pid;
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    fflush(NULL);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct prod_report r;
        struct sigaction sa;
        br_options o = *opt;
        br_gen *g = NULL;
        int rc = 0;

        /* A test that hangs until CTest's timeout (or its watchdog aborts
         * it) must not leave a producer serving behind it. SIGKILL, not
         * the SIGTERM of cli_spawn: a producer that is itself stuck would
         * not act on SIGTERM. Its supervisor and workers die with it
         * (their own PR_SET_PDEATHSIG); its ring is left stale, which the
         * next producer of the name or batchring gc removes. If the test
         * died before prctl took effect, go now. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(PROD_FAILED);
        close(p[0]);
        child_prepare();
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_producer_stop;
        sigaction(SIGTERM, &sa, NULL);
        o.name = name;
        memset(&r, 0, sizeof r);
        r.rc = br_open(&g, tu_loader, sh, sh->ids, sh->labels, sh->n_ids, &o);
        snprintf(r.msg, sizeof r.msg, "%s", br_last_error(r.rc ? NULL : g));
        if (write(p[1], &r, sizeof r) != (ssize_t)sizeof r || r.rc)
            _exit(PROD_OPEN_FAILED);
        while (!producer_stop && (rc = br_serve_wait(g, 20)) == -ETIMEDOUT)
            ;
        br_close(g);
        _exit(producer_stop ? PROD_STOPPED : rc == 0 ? PROD_DONE : PROD_FAILED);
    }
    tu_child_track(pid);
    close(p[1]);
    bool ok = read_within(p[0], rep, sizeof *rep, TU_WAIT_MS);
    close(p[0]);
    if (!ok)
        fail_msg("the producer child of %s reported nothing", name);
    return pid;
}

/* producer_fork that must succeed. */
static pid_t producer_start(const char *name, tu_shared *sh, const br_options *opt)
{
    struct prod_report rep;
    pid_t pid = producer_fork(name, sh, opt, &rep);
    if (rep.rc)
        fail_msg("the producer of %s failed: %s: %s", name, br_err_name(rep.rc), rep.msg);
    assert_true(ring_exists(name));
    return pid;
}

/* A tu_shared set up for a small named ring: n ids of 64 bytes each,
 * batch 4, 2 workers, 4 slots, one epoch. */
static tu_shared *small_ring(br_options *opt, size_t n, bool labels)
{
    tu_shared *sh = tu_shared_new();
    uint64_t *ids = tu_ids_identity(n);
    br_options_init(opt);
    opt->batch_size = 4;
    opt->workers = 2;
    opt->slots = 4;
    opt->slot_bytes = 4 * 64;
    opt->epochs = 1;
    tu_shared_config(sh, ids, labels ? tu_labels_for(ids, n) : NULL, n, opt, 64);
    return sh;
}

/* A hook that holds the load of seq sh->arg until the test sets release. */
static int hook_hold(br_job *job, tu_shared *sh, uint32_t attempt)
{
    (void)attempt;
    if (job->seq == sh->arg)
        tu_block_until_set(&sh->release);
    return 0;
}

/* ---- consumers in forked children ------------------------------------ */

/* What a consumer child tells the test, one fixed-size record per event
 * (smaller than PIPE_BUF, so each write is atomic). */
enum { REP_ATTACH, REP_BATCH, REP_HOLDING, REP_WAITING, REP_END, REP_SKIP };

struct rep {
    int kind;
    int rc;
    uint64_t seq;
    uint64_t t_ns;
    bool ok; /* REP_BATCH: its content matched */
    char msg[BR_ERR_CAP];
};

static void send_rep(int fd, int kind, int rc, uint64_t seq, bool ok, const char *msg)
{
    struct rep r;
    memset(&r, 0, sizeof r);
    r.kind = kind;
    r.rc = rc;
    r.seq = seq;
    r.ok = ok;
    r.t_ns = tu_now_ns();
    /* Cut to the record's size (a longer message is truncated, on purpose). */
    snprintf(r.msg, sizeof r.msg, "%.*s", (int)sizeof r.msg - 1, msg ? msg : "");
    if (write(fd, &r, sizeof r) != (ssize_t)sizeof r)
        _exit(99);
}

static void get_rep(int fd, struct rep *r, int kind)
{
    if (!read_within(fd, r, sizeof *r, TU_WAIT_MS))
        fail_msg("a consumer child ended (or went quiet) without its report %d", kind);
    if (r->kind != kind)
        fail_msg("a consumer child sent report %d (rc %d, seq %" PRIu64 ", \"%s\"), expected %d",
                 r->kind, r->rc, r->seq, r->msg, kind);
}

/* Forks fn(report fd, arg) and returns its pid; *rd reads its reports. The
 * child dies with the test (a consumer leaves nothing behind). */
static pid_t child_fork(void (*fn)(int fd, void *arg), void *arg, int *rd)
{
    int p[2];
    pid_t parent = getpid(), pid;
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    fflush(NULL);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(98);
        child_prepare();
        fn(p[1], arg);
        _exit(0);
    }
    tu_child_track(pid);
    close(p[1]);
    *rd = p[0];
    return pid;
}

/* Whether b is batch `seq` of the synthetic records (seed, `bytes` each,
 * batch_size per batch, ids in order) that named_plugin and mkdata write. */
static bool synth_batch_ok(const br_batch *b, uint64_t seq, uint32_t batch_size, size_t bytes,
                           uint64_t n, uint64_t seed, bool labels, char *why, size_t cap)
{
    const uint64_t per_epoch = (n + batch_size - 1) / batch_size;
    const uint64_t first = (seq % per_epoch) * batch_size;
    const uint32_t count = (uint32_t)(n - first < batch_size ? n - first : batch_size);
    if (b->seq != seq || b->epoch != seq / per_epoch || b->batch != seq % per_epoch ||
        b->count != count || b->size != count * bytes) {
        snprintf(why, cap,
                 "batch seq %" PRIu64 " epoch %" PRIu64 " batch %" PRIu64 " count %u size %zu, "
                 "expected seq %" PRIu64 " count %u size %zu",
                 b->seq, b->epoch, b->batch, b->count, b->size, seq, count, count * bytes);
        return false;
    }
    if (!b->offsets || (labels != (b->labels != NULL))) {
        snprintf(why, cap, "seq %" PRIu64 ": offsets %p labels %p", seq, (void *)b->offsets,
                 (void *)b->labels);
        return false;
    }
    for (uint32_t i = 0; i < count; i++) {
        const uint64_t id = first + i;
        size_t bad;
        if (b->ids[i] != id || b->offsets[i] != i * bytes) {
            snprintf(why, cap, "seq %" PRIu64 ": position %u has id %" PRIu64 " at %" PRIu64, seq,
                     i, b->ids[i], b->offsets[i]);
            return false;
        }
        if (labels && b->labels[i] != br_synth_label(seed, id)) {
            snprintf(why, cap, "seq %" PRIu64 ": sample %" PRIu64 " has label %d", seq, id,
                     (int)b->labels[i]);
            return false;
        }
        bad = br_synth_check((const uint8_t *)b->data + i * bytes, bytes, seed, id);
        if (bad != bytes) {
            snprintf(why, cap, "seq %" PRIu64 ": sample %" PRIu64 " differs at byte %zu", seq, id,
                     bad);
            return false;
        }
    }
    return true;
}

/* Writes a records dataset with mkdata's generator: n samples of `bytes`. */
static void make_records(const char *dir, uint64_t n, uint64_t bytes, uint64_t seed)
{
    struct br_mkdata_spec spec = {
        .layout = "records",
        .dir = dir,
        .samples = n,
        .min_bytes = bytes,
        .max_bytes = bytes,
        .seed = seed,
    };
    char err[512];
    if (br_mkdata_write(&spec, NULL, err, sizeof err))
        fail_msg("mkdata: %s", err);
}

/* ---- fixtures ----------------------------------------------------------- */

static int setup(void **state)
{
    n_ring_names = 0;
    n_tmp_dirs = 0;
    return tu_setup(state);
}

/* After a failed test: kill what it started, reap, remove its rings and
 * files, so that the next test starts clean. Harmless after a pass. */
static int teardown(void **state)
{
    tu_children_kill(false); /* reap_all below reaps them */
    tu_teardown(state);
    reap_all(5000, false);
    for (unsigned i = 0; i < n_ring_names; i++)
        shm_unlink(ring_names[i]);
    for (unsigned i = 0; i < n_tmp_dirs; i++)
        tf_remove_tree(tmp_dirs[i]);
    n_ring_names = n_tmp_dirs = 0;
    return 0;
}

#define CAP 16384
static char out[CAP], err[CAP];

/* ---- serve + attach ------------------------------------------------------ */

/* `batchring serve` a records dataset; this process attaches and checks
 * every id, label and byte of two epochs; the server then exits by itself. */
static void test_named_serve_attach_content(void **state)
{
    (void)state;
    tu_leaks l;
    tu_leaks_begin(&l);
    const char *dir = new_tmp_dir(), *name = new_ring_name();
    make_records(dir, 250, 1000, 7);
    struct server s;
    serve_start(&s, name,
                (const char *const[]){"--records", tf_path(dir, BR_MKDATA_RECORDS), "--record-size",
                                      "1000", "--labels", tf_path(dir, BR_MKDATA_LABELS), "--batch",
                                      "16", "--workers", "2", "--epochs", "2", NULL});

    br_gen *g;
    assert_int_equal(br_attach(&g, name, TU_WAIT_MS), 0);
    tu_track(g);
    br_batch b;
    char why[256];
    uint64_t seq = 0;
    int rc;
    while ((rc = br_next(g, &b)) == 0) {
        if (!synth_batch_ok(&b, seq, 16, 1000, 250, 7, true, why, sizeof why))
            fail_msg("%s", why);
        seq++;
    }
    assert_int_equal(rc, BR_EOF);
    assert_int_equal(seq, 2 * 16); /* 250 / 16: 15 full batches and a short one */
    tu_close(g);

    assert_exit_code(wait_exit(s.pid, TU_WAIT_MS), 0, "batchring serve after the last epoch");
    assert_false(ring_exists(name));
    reap_all(TU_WAIT_MS, true);
    tu_leaks_check(&l);
}

/* The three dataset layouts through `serve`, checked by `consume --verify`;
 * a wrong seed is caught and named. */
static void test_named_consume_verify_layouts(void **state)
{
    (void)state;
    static const char *const layouts[] = {"records", "files", "indexed"};
    tu_leaks l;
    tu_leaks_begin(&l);
    const char *dir = new_tmp_dir();
    for (size_t k = 0; k < 3; k++) {
        char sub[4096], seed[] = "11";
        snprintf(sub, sizeof sub, "%s/%s", dir, layouts[k]);
        struct br_mkdata_spec spec = {
            .layout = layouts[k],
            .dir = sub,
            .samples = 100,
            .seed = 11,
            .min_bytes = k ? 100 : 700,
            .max_bytes = k ? 3000 : 700,
        };
        assert_int_equal(br_mkdata_write(&spec, NULL, err, sizeof err), 0);
        const char *name = new_ring_name();
        const char *labels = tf_path(sub, BR_MKDATA_LABELS);
        struct server s;
        const char *common[] = {"--labels",  labels, "--batch",  "8",
                                "--workers", "2",    "--epochs", "1"};
        const char *args[20];
        size_t n = 0;
        if (k == 0) {
            args[n++] = "--records";
            args[n++] = tf_path(sub, BR_MKDATA_RECORDS);
            args[n++] = "--record-size";
            args[n++] = "700";
        } else if (k == 1) {
            args[n++] = "--files";
            args[n++] = tf_path(sub, BR_MKDATA_LIST);
        } else {
            args[n++] = "--indexed";
            args[n++] = tf_path(sub, BR_MKDATA_DATA);
            args[n++] = tf_path(sub, BR_MKDATA_INDEX);
        }
        for (size_t i = 0; i < sizeof common / sizeof common[0]; i++)
            args[n++] = common[i];
        args[n] = NULL;
        serve_start(&s, name, args);

        /* A wrong seed: the first sample already differs. Detaching
         * releases the batch it holds, so the next consumer starts at 1. */
        cli_expect(
            (const char *const[]){"consume", "--name", name, "--verify", "--seed", "12", NULL}, 1,
            out, err, CAP);
        tu_assert_contains(err, "differs from mkdata's (seed 12)");
        tu_assert_contains(out, "FAILED");

        /* Three batches, then the rest: each consumer resumes where the
         * previous one stopped, and the server waits for it. */
        if (k == 0)
            cli_expect((const char *const[]){"consume", "--name", name, "--verify", "--seed", seed,
                                             "--sample-bytes", "700", "--batches", "3", NULL},
                       0, out, err, CAP);
        else
            cli_expect((const char *const[]){"consume", "--name", name, "--verify", "--seed", seed,
                                             "--min-bytes", "100", "--max-bytes", "3000",
                                             "--batches", "3", NULL},
                       0, out, err, CAP);
        tu_assert_contains(out, "3 batches (seq 1..3)");
        tu_assert_contains(out, "every sample verified");
        cli_expect(
            (const char *const[]){"consume", "--name", name, "--verify", "--seed", seed, NULL}, 0,
            out, err, CAP);
        tu_assert_contains(out, "9 batches (seq 4..12)"); /* 100 / 8: 13 batches */
        tu_assert_contains(out, "every sample verified; end of data");

        assert_exit_code(wait_exit(s.pid, TU_WAIT_MS), 0, "batchring serve after the last epoch");
        assert_false(ring_exists(name));
    }
    reap_all(TU_WAIT_MS, true);
    tu_leaks_check(&l);
}

/*
 * Checks the log that named_plugin writes with log=PATH, after serve pid
 * `server` exited: the first line is the init's, in the server process,
 * and equals `init`; worker_init and worker_fini lines come from other
 * processes, as many of each (at least one); with `fini`, the last line is
 * the one fini line, in the server process, after every worker_fini (it
 * runs once the generator is closed); without, there is none.
 */
static void check_plugin_log(const char *path, pid_t server, const char *init, bool fini)
{
    char text[8192], want[64], line[512];
    unsigned inits = 0, worker_inits = 0, worker_finis = 0, finis = 0, n = 0;
    FILE *f = fopen(path, "r");
    size_t len;

    if (!f)
        fail_msg("the plugin wrote no log %s: %s", path, strerror(errno));
    len = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[len] = '\0';
    for (char *p = text, *end; *p; p = end + 1, n++) {
        int pid = 0;
        end = strchr(p, '\n');
        if (!end)
            fail_msg("%s: an unfinished line '%s'", path, p);
        snprintf(line, sizeof line, "%.*s", (int)(end - p), p);
        if (!strncmp(line, "init ", 5)) {
            inits++;
            if (n != 0 || strcmp(line, init))
                fail_msg("%s: line %u is '%s', expected the init's first: '%s'\n%s", path, n + 1,
                         line, init, text);
        } else if (sscanf(line, "worker_init pid=%d", &pid) == 1) {
            worker_inits++;
        } else if (sscanf(line, "worker_fini pid=%d", &pid) == 1) {
            worker_finis++;
        } else if (sscanf(line, "fini pid=%d", &pid) == 1) {
            finis++;
            if (pid != (int)server || end[1] != '\0')
                fail_msg("%s: '%s' is not the last line, from the server pid %d:\n%s", path, line,
                         (int)server, text);
            continue;
        } else {
            fail_msg("%s: unexpected line '%s'", path, line);
        }
        if (pid && pid == (int)server)
            fail_msg("%s: '%s' ran in the server process, not in a worker", path, line);
    }
    snprintf(want, sizeof want, "init pid=%d ", (int)server);
    if (inits != 1 || strncmp(text, want, strlen(want)))
        fail_msg("%s: %u init lines, expected one from the server pid %d:\n%s", path, inits,
                 (int)server, text);
    if (worker_inits == 0 || worker_inits != worker_finis)
        fail_msg("%s: %u worker_init and %u worker_fini lines:\n%s", path, worker_inits,
                 worker_finis, text);
    if (finis != (fini ? 1u : 0u))
        fail_msg("%s: %u fini lines, expected %d:\n%s", path, finis, fini ? 1 : 0, text);
}

/* --plugin: the loader and hooks come from a shared object, whose init sees
 * what serve was given and whose fini runs once serve is done; its
 * failures, and a loader failure at run time, are reported by both
 * commands. */
static void test_named_plugin(void **state)
{
    (void)state;
    tu_leaks l;
    tu_leaks_begin(&l);
    const char *dir = new_tmp_dir(), *name = new_ring_name();
    char arg[4200], init[4600], log[4096];
    struct server s;

    /* The init checks batch, workers and slot_bytes against what it was
     * told to expect, and logs every input. */
    snprintf(log, sizeof log, "%s", tf_path(dir, "plugin.log"));
    snprintf(arg, sizeof arg,
             "samples=100,bytes=300,seed=9,batch=10,workers=2,slot_bytes=3000,log=%s", log);
    serve_start(&s, name,
                (const char *const[]){"--plugin", BR_TEST_PLUGIN, "--plugin-arg", arg, "--batch",
                                      "10", "--workers", "2", "--slot-bytes", "3000", "--slots",
                                      "3", "--epochs", "1", "--seed", "5", NULL});
    cli_expect((const char *const[]){"consume", "--name", name, "--verify", "--seed", "9",
                                     "--sample-bytes", "300", NULL},
               0, out, err, CAP);
    tu_assert_contains(out, "10 batches (seq 0..9)");
    tu_assert_contains(out, "every sample verified; end of data");
    assert_exit_code(wait_exit(s.pid, TU_WAIT_MS), 0, "batchring serve after the last epoch");
    snprintf(init, sizeof init,
             "init pid=%d abi=%d batch=10 workers=2 slots=3 slot_bytes=3000 epochs=1 seed=5 "
             "shuffle=0 drop_last=0 rank=0 world=1 name=%s arg=%s",
             (int)s.pid, BR_PLUGIN_ABI, name, arg);
    check_plugin_log(log, s.pid, init, true);

    /* A loader failure: the consumer names it, the server exits with 1. */
    name = new_ring_name();
    serve_start(&s, name,
                (const char *const[]){"--plugin", BR_TEST_PLUGIN, "--plugin-arg",
                                      "samples=100,bytes=300,fail=3", "--batch", "10", "--workers",
                                      "2", "--slot-bytes", "3000", NULL});
    cli_expect((const char *const[]){"consume", "--name", name, NULL}, 1, out, err, CAP);
    tu_assert_contains(err, "BR_ELOADER");
    tu_assert_contains(err, "planned failure at batch 3");
    tu_assert_contains(out, "3 batches (seq 0..2)");
    assert_exit_code(wait_exit(s.pid, TU_WAIT_MS), 1, "batchring serve after its consumer failed");
    assert_false(ring_exists(name));

    /* Plugins that cannot start: each message names the plugin and the
     * cause. */
    struct {
        const char *path, *arg, *batch, *slot_bytes, *needle;
    } bad[] = {
        {"/nonexistent/plugin.so", "samples=1,bytes=1", "1", "64", "cannot load the plugin"},
        {BR_LIB_PATH, "samples=1,bytes=1", "1", "64", "exports neither br_plugin_init2"},
        {BR_TEST_PLUGIN, "bogus", "1", "64",
         "failed to start (EINVAL): bad plugin argument 'bogus'"},
        {BR_TEST_PLUGIN, "samples=10,bytes=8", "1", NULL, "pass --slot-bytes"},
        /* The init refuses a batch size it was not built for. */
        {BR_TEST_PLUGIN, "samples=100,bytes=8,batch=10", "7", "80",
         "failed to start (EINVAL): serve gave batch_size 7, workers 1, slot_bytes 80; expected "
         "10, 0, 0"},
        {BR_TEST_PLUGIN, "samples=100,bytes=8,slot_bytes=80", "10", NULL,
         "serve gave batch_size 10, workers 1, slot_bytes 0; expected 0, 0, 80"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        name = new_ring_name();
        cli_expect((const char *const[]){"serve", "--name", name, "--plugin", bad[i].path,
                                         "--plugin-arg", bad[i].arg, "--batch", bad[i].batch,
                                         "--workers", "1",
                                         bad[i].slot_bytes ? "--slot-bytes" : NULL,
                                         bad[i].slot_bytes, NULL},
                   1, out, err, CAP);
        tu_assert_contains(err, bad[i].needle);
        tu_assert_contains(err, bad[i].path);
        assert_false(ring_exists(name));
        assert_string_equal(out, "");
    }
    reap_all(TU_WAIT_MS, true);
    tu_leaks_check(&l);
}

/* The plugin's fini runs once, in the server, after the generator is
 * closed, also when serve is stopped by a signal; and when serve fails
 * after the init succeeded (here: no --slot-bytes), before any ring. */
static void test_named_plugin_fini(void **state)
{
    (void)state;
    tu_leaks l;
    tu_leaks_begin(&l);
    static const int sigs[] = {SIGTERM, SIGINT};
    const char *dir = new_tmp_dir();
    char arg[4200], init[4600], log[4096], file[32];
    struct server s;

    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        const char *name = new_ring_name();
        snprintf(file, sizeof file, "sig%d.log", sigs[i]);
        snprintf(log, sizeof log, "%s", tf_path(dir, file));
        snprintf(arg, sizeof arg, "samples=64,bytes=100,seed=4,log=%s", log);
        serve_start(&s, name,
                    (const char *const[]){"--plugin", BR_TEST_PLUGIN, "--plugin-arg", arg,
                                          "--batch", "4", "--workers", "2", "--slot-bytes", "400",
                                          NULL});
        /* The workers have loaded batches before the stop. */
        cli_expect((const char *const[]){"consume", "--name", name, "--verify", "--seed", "4",
                                         "--sample-bytes", "100", "--batches", "5", NULL},
                   0, out, err, CAP);
        tu_assert_contains(out, "every sample verified");
        serve_stop(&s, sigs[i]);
        snprintf(init, sizeof init,
                 "init pid=%d abi=%d batch=4 workers=2 slots=0 slot_bytes=400 epochs=0 seed=0 "
                 "shuffle=0 drop_last=0 rank=0 world=1 name=%s arg=%s",
                 (int)s.pid, BR_PLUGIN_ABI, name, arg);
        check_plugin_log(log, s.pid, init, true);
    }

    /* serve fails after the init: fini still runs, and nothing else. */
    const char *name = new_ring_name();
    snprintf(log, sizeof log, "%s", tf_path(dir, "failed.log"));
    snprintf(arg, sizeof arg, "samples=64,bytes=100,log=%s", log);
    cli_expect((const char *const[]){"serve", "--name", name, "--plugin", BR_TEST_PLUGIN,
                                     "--plugin-arg", arg, "--batch", "4", "--workers", "2", NULL},
               1, out, err, CAP);
    tu_assert_contains(err, "pass --slot-bytes");
    assert_false(ring_exists(name));
    char text[4096];
    FILE *f = fopen(log, "r");
    assert_non_null(f);
    size_t len = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[len] = '\0';
    char *first_end = strchr(text, '\n');
    assert_non_null(first_end);
    assert_true(!strncmp(text, "init pid=", 9));
    if (strncmp(first_end + 1, "fini pid=", 9) || strchr(first_end + 1, '\n')[1] != '\0')
        fail_msg("%s: expected the init line, then the fini line only:\n%s", log, text);
    reap_all(TU_WAIT_MS, true);
    tu_leaks_check(&l);
}

/* A plugin built for revision 1 of the plugin interface (only
 * br_plugin_init, the old struct, no fini) is still served as before. */
static void test_named_plugin_abi_v1(void **state)
{
    (void)state;
    tu_leaks l;
    tu_leaks_begin(&l);
    const char *dir = new_tmp_dir(), *name = new_ring_name();
    char arg[4200], init[4600], log[4096];
    struct server s;

    snprintf(log, sizeof log, "%s", tf_path(dir, "v1.log"));
    snprintf(arg, sizeof arg, "samples=50,bytes=200,seed=2,log=%s", log);
    serve_start(&s, name,
                (const char *const[]){"--plugin", BR_TEST_PLUGIN_V1, "--plugin-arg", arg, "--batch",
                                      "5", "--workers", "2", "--slot-bytes", "1000", "--epochs",
                                      "2", NULL});
    cli_expect((const char *const[]){"consume", "--name", name, "--verify", "--seed", "2",
                                     "--sample-bytes", "200", NULL},
               0, out, err, CAP);
    tu_assert_contains(out, "20 batches (seq 0..19)");
    tu_assert_contains(out, "every sample verified; end of data");
    assert_exit_code(wait_exit(s.pid, TU_WAIT_MS), 0, "batchring serve of a revision-1 plugin");
    assert_false(ring_exists(name));
    snprintf(init, sizeof init, "init pid=%d abi=1 arg=%s", (int)s.pid, arg);
    check_plugin_log(log, s.pid, init, false);

    /* Its init's failure is reported as before. */
    name = new_ring_name();
    cli_expect((const char *const[]){"serve", "--name", name, "--plugin", BR_TEST_PLUGIN_V1,
                                     "--plugin-arg", "samples=0,bytes=1", "--batch", "1",
                                     "--workers", "1", "--slot-bytes", "8", NULL},
               1, out, err, CAP);
    tu_assert_contains(err, BR_TEST_PLUGIN_V1);
    tu_assert_contains(err, "failed to start (EINVAL): samples and bytes must be positive");
    assert_false(ring_exists(name));
    reap_all(TU_WAIT_MS, true);
    tu_leaks_check(&l);
}

/* ---- a consumer dies; the next one resumes ------------------------------- */

struct consumer_arg {
    const char *name;
    tu_shared *sh;
    uint64_t take;   /* batches to take */
    int timeout_ms;  /* br_attach's */
    bool wait_after; /* then wait in br_next for the next (held back) batch */
};

/* Takes `take` batches, reporting and checking each, then waits to be
 * killed: holding the last one, or (wait_after) inside br_next for a batch
 * that is held back, the last one released. */
static void consume_then_wait(int fd, void *p)
{
    struct consumer_arg *a = p;
    br_gen *g;
    br_batch b;
    char why[256];
    int rc = br_attach(&g, a->name, a->timeout_ms);
    send_rep(fd, REP_ATTACH, rc, 0, true, br_last_error(NULL));
    if (rc)
        return;
    for (uint64_t k = 0; k < a->take; k++) {
        while ((rc = br_next(g, &b)) == -ETIMEDOUT)
            ;
        if (rc) {
            send_rep(fd, REP_BATCH, rc, 0, false, br_last_error(g));
            return;
        }
        bool ok = tu_batch_matches(a->sh, &b, b.seq, why, sizeof why);
        send_rep(fd, REP_BATCH, 0, b.seq, ok, why);
    }
    if (!a->wait_after) {
        send_rep(fd, REP_HOLDING, 0, b.seq, true, NULL);
        for (;;)
            pause();
    }
    /* The first -ETIMEDOUT proves that br_next has released the previous
     * batch and is waiting for one that does not come. */
    rc = br_next(g, &b);
    send_rep(fd, REP_WAITING, rc, 0, rc == -ETIMEDOUT, br_last_error(g));
    for (;;)
        br_next(g, &b);
}

/* SIGKILLs consumer child c and reaps it. */
static void kill_child(pid_t c)
{
    assert_int_equal(kill(c, SIGKILL), 0);
    int status = wait_exit(c, TU_WAIT_MS);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

static void test_named_consumer_killed_resumes(void **state)
{
    (void)state;
    tu_leaks l;
    tu_leaks_begin(&l);
    const char *name = new_ring_name();
    br_options opt;
    tu_shared *sh = small_ring(&opt, 64, true); /* 16 batches */
    sh->hook = hook_hold;
    sh->arg = 9;
    pid_t prod = producer_start(name, sh, &opt);
    struct rep r;
    br_ring_status st;
    int fd;

    /* The first consumer takes 0..4 and is killed holding 4. */
    struct consumer_arg a1 = {.name = name, .sh = sh, .take = 5, .timeout_ms = -1};
    pid_t c1 = child_fork(consume_then_wait, &a1, &fd);
    get_rep(fd, &r, REP_ATTACH);
    assert_int_equal(r.rc, 0);
    for (uint64_t k = 0; k < 5; k++) {
        get_rep(fd, &r, REP_BATCH);
        if (r.rc || !r.ok || r.seq != k)
            fail_msg("first consumer, batch %" PRIu64 ": rc %d seq %" PRIu64 ": %s", k, r.rc, r.seq,
                     r.msg);
    }
    get_rep(fd, &r, REP_HOLDING);
    close(fd);
    kill_child(c1);
    assert_int_equal(br_ring_status_get(name, &st, NULL, 0), 0);
    assert_int_equal(st.consumer_pid, 0); /* a dead consumer is no consumer */
    assert_int_equal(st.cursor, 5);

    /* The second starts at 4 (held, never released), takes 4..8 and is
     * killed inside br_next, waiting for 9 with 8 released. */
    struct consumer_arg a2 = {
        .name = name, .sh = sh, .take = 5, .timeout_ms = 100, .wait_after = true};
    pid_t c2 = child_fork(consume_then_wait, &a2, &fd);
    get_rep(fd, &r, REP_ATTACH);
    if (r.rc)
        fail_msg("the second consumer could not attach: %s: %s", br_err_name(r.rc), r.msg);
    for (uint64_t k = 4; k < 9; k++) {
        get_rep(fd, &r, REP_BATCH);
        if (r.rc || !r.ok || r.seq != k)
            fail_msg("second consumer: got seq %" PRIu64 " (rc %d), expected %" PRIu64 ": %s",
                     r.seq, r.rc, k, r.msg);
    }
    get_rep(fd, &r, REP_WAITING);
    if (!r.ok)
        fail_msg("br_next for the held-back batch returned %s: %s", br_err_name(r.rc), r.msg);
    close(fd);
    kill_child(c2);
    assert_int_equal(br_ring_status_get(name, &st, NULL, 0), 0);
    assert_int_equal(st.consumer_pid, 0);
    assert_int_equal(st.cursor, 9);

    /* This process resumes at 9 once the loader lets it through. */
    br_gen *g;
    br_batch b;
    assert_int_equal(br_attach(&g, name, TU_WAIT_MS), 0);
    tu_track(g);
    tu_store_wake(&sh->release, 1);
    for (uint64_t seq = 9; seq < 16; seq++) {
        assert_int_equal(tu_next(g, &b, NULL), 0);
        tu_check_batch(sh, &b, seq);
    }
    assert_int_equal(br_next(g, &b), BR_EOF);
    tu_close(g);

    /* No batch lost, none loaded twice: the consumers' hand-overs did not
     * disturb the workers. */
    for (uint64_t seq = 0; seq < 16; seq++)
        if (atomic_load(&sh->attempts[seq]) != 1)
            fail_msg("batch %" PRIu64 " was loaded %u times", seq, atomic_load(&sh->attempts[seq]));
    tu_assert_loaders_ok(sh);
    assert_exit_code(wait_exit(prod, TU_WAIT_MS), PROD_DONE, "the producer after the last batch");
    assert_false(ring_exists(name));
    reap_all(TU_WAIT_MS, true);
    tu_leaks_check(&l);
}

/* ---- the producer dies ------------------------------------------------- */

struct waiter_arg {
    const char *name;
    uint64_t take;
};

/* Takes `take` plugin batches, then waits in br_next for one that never
 * comes, and reports how (and when) the wait ended. */
static void wait_for_producer(int fd, void *p)
{
    struct waiter_arg *a = p;
    br_gen *g;
    br_batch b = {0};
    char why[256];
    int rc = br_attach(&g, a->name, 100);
    send_rep(fd, REP_ATTACH, rc, 0, true, br_last_error(NULL));
    if (rc)
        return;
    for (uint64_t k = 0; k < a->take; k++) {
        while ((rc = br_next(g, &b)) == -ETIMEDOUT)
            ;
        bool ok = rc == 0 && synth_batch_ok(&b, k, 4, 512, 64, 3, false, why, sizeof why);
        send_rep(fd, REP_BATCH, rc, b.seq, ok, rc ? br_last_error(g) : why);
        if (rc)
            return;
    }
    rc = br_next(g, &b);
    send_rep(fd, REP_WAITING, rc, 0, rc == -ETIMEDOUT, br_last_error(g));
    while ((rc = br_next(g, &b)) == -ETIMEDOUT)
        ;
    send_rep(fd, REP_END, rc, 0, true, br_last_error(g));
    br_close(g);
}

static void test_named_producer_killed(void **state)
{
    (void)state;
    tu_leaks l;
    tu_leaks_begin(&l);
    const char *name = new_ring_name();
    struct server s;
    struct rep r;
    int fd;

    /* Batch 6 never finishes loading: the consumer really waits. */
    serve_start(&s, name,
                (const char *const[]){"--plugin", BR_TEST_PLUGIN, "--plugin-arg",
                                      "samples=64,bytes=512,seed=3,block=6", "--batch", "4",
                                      "--workers", "2", "--slots", "4", "--slot-bytes", "2048",
                                      "--epochs", "1", NULL});
    struct waiter_arg a = {.name = name, .take = 6};
    pid_t c = child_fork(wait_for_producer, &a, &fd);
    get_rep(fd, &r, REP_ATTACH);
    assert_int_equal(r.rc, 0);
    for (uint64_t k = 0; k < 6; k++) {
        get_rep(fd, &r, REP_BATCH);
        if (r.rc || !r.ok)
            fail_msg("batch %" PRIu64 ": %s: %s", k, br_err_name(r.rc), r.msg);
    }
    get_rep(fd, &r, REP_WAITING);
    if (!r.ok)
        fail_msg("br_next for the blocked batch returned %s: %s", br_err_name(r.rc), r.msg);

    const uint64_t t0 = tu_now_ns();
    assert_int_equal(kill(s.pid, SIGKILL), 0);
    get_rep(fd, &r, REP_END);
    const uint64_t waited_ns = r.t_ns - t0;
    close(fd);
    assert_exit_code(wait_exit(c, TU_WAIT_MS), 0, "the consumer child");
    int status = wait_exit(s.pid, TU_WAIT_MS);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

    if (r.rc != BR_EPRODUCER)
        fail_msg("the waiting consumer got %s (%s), expected BR_EPRODUCER", br_err_name(r.rc),
                 r.msg);
    if (waited_ns >= (uint64_t)tu_ms(1000) * 1000000u)
        fail_msg("the consumer learned of the producer's death after %.3f s (bound: %d ms)",
                 (double)waited_ns / 1e9, tu_ms(1000));
    char pid[32];
    snprintf(pid, sizeof pid, "pid %d", (int)s.pid);
    tu_assert_contains(r.msg, pid);

    /* Killed, the server could not remove its ring: it is stale now. */
    reap_all(TU_WAIT_MS, true);
    br_ring_status st;
    assert_true(ring_exists(name));
    assert_int_equal(br_ring_status_get(name, &st, NULL, 0), 0);
    assert_false(st.owner_alive);
    assert_int_equal(st.owner_pid, s.pid);
    tu_assert_contains(attach_refused(name, BR_EPRODUCER, "a stale ring"), "gone");
    assert_int_equal(br_ring_remove_stale(name), 0);
    assert_false(ring_exists(name));
    tu_leaks_check(&l);
}

/* ---- one consumer at a time -------------------------------------------- */

static void try_attach(int fd, void *p)
{
    br_gen *g;
    int rc = br_attach(&g, (const char *)p, 0);
    send_rep(fd, REP_ATTACH, rc, 0, true, br_last_error(NULL));
    br_close(g);
}

static void test_named_second_consumer_refused(void **state)
{
    (void)state;
    tu_leaks l;
    tu_leaks_begin(&l);
    const char *name = new_ring_name();
    br_options opt;
    tu_shared *sh = small_ring(&opt, 64, false);
    pid_t prod = producer_start(name, sh, &opt);
    char me[32];
    struct rep r;
    br_batch b;
    br_gen *g;
    int fd;

    snprintf(me, sizeof me, "pid %d", (int)getpid());
    assert_int_equal(br_attach(&g, name, TU_WAIT_MS), 0);
    tu_track(g);
    assert_int_equal(tu_next(g, &b, NULL), 0);
    tu_check_batch(sh, &b, 0);

    /* Another process: refused, naming us. */
    pid_t c = child_fork(try_attach, (void *)name, &fd);
    get_rep(fd, &r, REP_ATTACH);
    close(fd);
    assert_exit_code(wait_exit(c, TU_WAIT_MS), 0, "the second consumer");
    assert_int_equal(r.rc, -EBUSY);
    tu_assert_contains(r.msg, me);
    cli_expect((const char *const[]){"consume", "--name", name, NULL}, 1, out, err, CAP);
    tu_assert_contains(err, "EBUSY");
    tu_assert_contains(err, me);

    /* Detached cleanly, we gave batch 0 back: the next one starts at 1. */
    tu_close(g);
    cli_expect((const char *const[]){"consume", "--name", name, "--batches", "2", NULL}, 0, out,
               err, CAP);
    tu_assert_contains(out, "2 batches (seq 1..2)");
    assert_int_equal(br_attach(&g, name, TU_WAIT_MS), 0);
    tu_track(g);
    assert_int_equal(tu_next(g, &b, NULL), 0);
    tu_check_batch(sh, &b, 3);
    tu_close(g);

    assert_int_equal(kill(prod, SIGTERM), 0);
    assert_exit_code(wait_exit(prod, TU_WAIT_MS), PROD_STOPPED, "the producer after SIGTERM");
    assert_false(ring_exists(name));
    tu_assert_loaders_ok(sh);
    reap_all(TU_WAIT_MS, true);
    tu_leaks_check(&l);
}

/* ---- who owns a name ----------------------------------------------------- */

/* A producer that was killed leaves its ring; a new producer of the same
 * name replaces it. */
static void test_named_stale_ring_replaced(void **state)
{
    (void)state;
    tu_leaks l;
    tu_leaks_begin(&l);
    const char *name = new_ring_name();
    br_options opt;
    tu_shared *sh = small_ring(&opt, 64, false);
    pid_t prod = producer_start(name, sh, &opt);

    assert_int_equal(kill(prod, SIGKILL), 0);
    int status = wait_exit(prod, TU_WAIT_MS);
    assert_true(WIFSIGNALED(status));
    /* Its supervisor and workers die of their parent's death. */
    reap_all(TU_WAIT_MS, true);
    assert_true(ring_exists(name));
    br_ring_status st;
    assert_int_equal(br_ring_status_get(name, &st, NULL, 0), 0);
    assert_false(st.owner_alive);
    assert_int_equal(st.owner_pid, prod);

    /* batchring serve takes the name over. */
    struct server s;
    serve_start(&s, name,
                (const char *const[]){"--plugin", BR_TEST_PLUGIN, "--plugin-arg",
                                      "samples=40,bytes=100,seed=4", "--batch", "4", "--workers",
                                      "1", "--slot-bytes", "400", NULL});
    assert_int_equal(br_ring_status_get(name, &st, NULL, 0), 0);
    assert_true(st.owner_alive);
    assert_int_equal(st.owner_pid, s.pid);
    br_gen *g;
    br_batch b;
    char why[256];
    assert_int_equal(br_attach(&g, name, TU_WAIT_MS), 0);
    tu_track(g);
    assert_int_equal(tu_next(g, &b, NULL), 0);
    if (!synth_batch_ok(&b, 0, 4, 100, 40, 4, false, why, sizeof why))
        fail_msg("%s", why);
    tu_close(g);
    serve_stop(&s, SIGTERM);
    tu_leaks_check(&l);
}

/* A name whose producer runs is refused, by the library and by serve. */
static void test_named_live_owner_refused(void **state)
{
    (void)state;
    tu_leaks l;
    tu_leaks_begin(&l);
    const char *name = new_ring_name();
    br_options opt;
    tu_shared *sh = small_ring(&opt, 64, false);
    pid_t prod = producer_start(name, sh, &opt);
    char owner[32];
    snprintf(owner, sizeof owner, "pid %d", (int)prod);

    struct prod_report rep;
    pid_t second = producer_fork(name, sh, &opt, &rep);
    assert_exit_code(wait_exit(second, TU_WAIT_MS), PROD_OPEN_FAILED, "the second producer");
    assert_int_equal(rep.rc, -EEXIST);
    tu_assert_contains(rep.msg, owner);
    tu_assert_contains(rep.msg, "running");

    cli_expect((const char *const[]){"serve", "--name", name, "--plugin", BR_TEST_PLUGIN,
                                     "--plugin-arg", "samples=40,bytes=100", "--batch", "4",
                                     "--workers", "1", "--slot-bytes", "400", NULL},
               1, out, err, CAP);
    tu_assert_contains(err, "EEXIST");
    tu_assert_contains(err, owner);
    assert_string_equal(out, "");

    /* The refusals did not touch the ring. */
    br_gen *g;
    br_batch b;
    assert_int_equal(br_attach(&g, name, TU_WAIT_MS), 0);
    tu_track(g);
    assert_int_equal(tu_next(g, &b, NULL), 0);
    tu_check_batch(sh, &b, 0);
    tu_close(g);
    assert_int_equal(kill(prod, SIGTERM), 0);
    assert_exit_code(wait_exit(prod, TU_WAIT_MS), PROD_STOPPED, "the producer after SIGTERM");
    assert_false(ring_exists(name));
    reap_all(TU_WAIT_MS, true);
    tu_leaks_check(&l);
}

/* ---- a corrupted header ------------------------------------------------- */

#define HDR(field)                                                                                 \
    offsetof(struct br_ring_header, field), sizeof(((struct br_ring_header *)0)->field)

enum how { SET, ADD };

struct corruption {
    const char *what;
    size_t off, width;
    enum how how;
    uint64_t v;
    int code;
    const char *needle; /* what the message must name */
};

static uint64_t field_read(int fd, size_t off, size_t width)
{
    uint64_t v = 0;
    assert_int_equal(pread(fd, &v, width, (off_t)off), (ssize_t)width); /* little-endian */
    return v;
}

static void field_write(int fd, size_t off, size_t width, uint64_t v)
{
    assert_int_equal(pwrite(fd, &v, width, (off_t)off), (ssize_t)width);
}

/* Each field of the header, made wrong in the live object of a ring whose
 * producer runs (so only the header is at fault): attaching and stat are
 * refused with the field's name, nothing crashes, and once the field is
 * put back the ring works. */
static void test_named_corrupted_header(void **state)
{
    (void)state;
    const uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
    const struct corruption table[] = {
        {"magic", HDR(magic), SET, 0x4e524247u, BR_EBADRING, "magic"},
        {"layout_major", HDR(layout_major), SET, BR_LAYOUT_MAJOR + 1, BR_EVERSION, "layout_major"},
        {"header_bytes", HDR(header_bytes), ADD, 64, BR_EBADRING, "header_bytes"},
        {"total_bytes", HDR(total_bytes), ADD, page, BR_EBADRING, "total_bytes"},
        {"page_size", HDR(page_size), SET, page * 16, BR_EBADRING, "page_size"},
        {"nslots 0", HDR(nslots), SET, 0, BR_EBADRING, "nslots"},
        {"nslots too many", HDR(nslots), SET, BR_MAX_SLOTS + 1, BR_EBADRING, "nslots"},
        {"nslots plausible", HDR(nslots), ADD, 1, BR_EBADRING, "expected"},
        {"nworkers", HDR(nworkers), SET, BR_MAX_WORKERS + 1, BR_EBADRING, "nworkers"},
        {"batch_size 0", HDR(batch_size), SET, 0, BR_EBADRING, "batch_size"},
        {"batch_size too large", HDR(batch_size), SET, BR_MAX_BATCH_SIZE + 1, BR_EBADRING,
         "batch_size"},
        {"flags", HDR(flags), SET, 0x80, BR_EBADRING, "flags"},
        {"reserved[0]", offsetof(struct br_ring_header, reserved), 8, SET, 1, BR_EBADRING,
         "reserved word 0"},
        {"reserved[3]", offsetof(struct br_ring_header, reserved) + 24, 8, SET, 1, BR_EBADRING,
         "reserved word 3"},
        {"hold not below nslots", HDR(hold), SET, BR_MAX_SLOTS, BR_EBADRING, "hold is"},
        {"reserved32", HDR(reserved32), SET, 1, BR_EBADRING, "reserved32"},
        {"slot_bytes 0", HDR(slot_bytes), SET, 0, BR_EBADRING, "slot_bytes"},
        {"slot_bytes overflowing", HDR(slot_bytes), SET, UINT64_MAX - 1, BR_EBADRING, "slot_bytes"},
        {"n_ids", HDR(n_ids), SET, 1, BR_EBADRING, "n_ids"},
        {"desc_offset", HDR(desc_offset), ADD, 64, BR_EBADRING, "desc_offset"},
        {"worker_offset", HDR(worker_offset), ADD, 64, BR_EBADRING, "worker_offset"},
        {"meta_offset", HDR(meta_offset), ADD, 64, BR_EBADRING, "meta_offset"},
        {"meta_stride", HDR(meta_stride), ADD, 64, BR_EBADRING, "meta_stride"},
        {"data_offset", HDR(data_offset), ADD, page, BR_EBADRING, "data_offset"},
        {"slot_stride", HDR(slot_stride), ADD, page, BR_EBADRING, "slot_stride"},
    };
    tu_leaks l;
    tu_leaks_begin(&l);
    const char *name = new_ring_name();
    br_options opt;
    tu_shared *sh = small_ring(&opt, 64, true);
    pid_t prod = producer_start(name, sh, &opt);
    int fd = open(shm_path(name), O_RDWR | O_CLOEXEC);
    assert_true(fd >= 0);

    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        const struct corruption *c = &table[i];
        const uint64_t orig = field_read(fd, c->off, c->width);
        const uint64_t bad = c->how == SET ? c->v : orig + c->v;
        br_ring_status st;
        char what[64];
        int rc;

        field_write(fd, c->off, c->width, bad);
        snprintf(what, sizeof what, "%s corrupted", c->what);
        tu_assert_contains(attach_refused(name, c->code, what), c->needle);
        rc = br_ring_status_get(name, &st, NULL, 0);
        if (rc != c->code)
            fail_msg("%s corrupted: br_ring_status_get returned %s, expected %s", c->what,
                     br_err_name(rc), br_err_name(c->code));
        tu_assert_contains(br_last_error(NULL), c->needle);
        if (i == 1) {
            /* The command says the same. */
            cli_expect((const char *const[]){"stat", name, NULL}, 1, out, err, CAP);
            tu_assert_contains(err, "BR_EVERSION");
            tu_assert_contains(err, "layout_major");
        }
        field_write(fd, c->off, c->width, orig);
        assert_int_equal(field_read(fd, c->off, c->width), orig);
    }
    assert_int_equal(close(fd), 0);

    /* Every refusal left the ring as it was: no consumer claimed it. */
    br_gen *g;
    br_batch b;
    assert_int_equal(br_attach(&g, name, TU_WAIT_MS), 0);
    tu_track(g);
    assert_int_equal(tu_next(g, &b, NULL), 0);
    tu_check_batch(sh, &b, 0);
    tu_close(g);
    assert_int_equal(kill(prod, SIGTERM), 0);
    assert_exit_code(wait_exit(prod, TU_WAIT_MS), PROD_STOPPED, "the producer after SIGTERM");
    tu_assert_loaders_ok(sh);
    reap_all(TU_WAIT_MS, true);
    tu_leaks_check(&l);
}

/* br_ring_status_get_sized writes the caller's sizes (batchring.h, rule b):
 * a larger status and a wider worker stride get zeros past this library's
 * fields, sizes below any struct are refused; `finished` is the public
 * enum, and a consumer_done word outside it is BR_EBADRING naming it. */
static void test_named_status_sized(void **state)
{
    (void)state;
    tu_leaks l;
    tu_leaks_begin(&l);
    const char *name = new_ring_name();
    br_options opt;
    tu_shared *sh = small_ring(&opt, 64, true);
    pid_t prod = producer_start(name, sh, &opt);
    br_ring_status st;
    br_worker_stats ws[2];
    struct {
        br_ring_status st;
        uint64_t more[2];
    } big;
    struct {
        br_worker_stats w;
        uint64_t more[2];
    } wide[2];

    /* Until both workers have started: their pids then stay, as no batch
     * is taken and none of them runs out of work. */
    const uint64_t deadline = tu_now_ns() + (uint64_t)TU_WAIT_MS * 1000000u;
    for (;;) {
        assert_int_equal(br_ring_status_get(name, &st, ws, 2), 0);
        if (ws[0].pid > 0 && ws[1].pid > 0)
            break;
        if (tu_now_ns() >= deadline)
            fail_msg("the workers of %s did not start within %d ms", name, TU_WAIT_MS);
        poll(NULL, 0, 1);
    }
    assert_int_equal(st.finished, BR_RING_RUNNING);
    memset(&big, 0xab, sizeof big);
    memset(wide, 0xab, sizeof wide);
    assert_int_equal(br_ring_status_get_sized(name, &big.st, sizeof big, &wide[0].w, 2,
                                              sizeof wide[0]),
                     0);
    assert_int_equal(big.more[0], 0);
    assert_int_equal(big.more[1], 0);
    assert_int_equal(big.st.slots, 4);
    assert_int_equal(big.st.workers, 2);
    assert_int_equal(big.st.owner_pid, st.owner_pid);
    assert_int_equal(big.st.finished, BR_RING_RUNNING);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(wide[i].more[0], 0);
        assert_int_equal(wide[i].more[1], 0);
        assert_int_equal(wide[i].w.pid, ws[i].pid);
    }
    assert_int_equal(br_ring_status_get_sized(name, &st, 8, NULL, 0, 0), -EINVAL);
    tu_assert_contains(br_last_error(NULL), "status_size 8");
    assert_int_equal(br_ring_status_get_sized(name, &st, sizeof st, ws, 2, 8), -EINVAL);
    tu_assert_contains(br_last_error(NULL), "worker_size 8");

    int fd = open(shm_path(name), O_RDWR | O_CLOEXEC);
    assert_true(fd >= 0);
    const uint64_t orig = field_read(fd, HDR(consumer_done));
    field_write(fd, HDR(consumer_done), 7);
    assert_int_equal(br_ring_status_get(name, &st, NULL, 0), BR_EBADRING);
    tu_assert_contains(br_last_error(NULL), "consumer_done is 7");
    field_write(fd, HDR(consumer_done), orig);
    assert_int_equal(close(fd), 0);
    assert_int_equal(br_ring_status_get(name, &st, NULL, 0), 0);
    assert_int_equal(st.finished, BR_RING_RUNNING);

    /* The ring still works. (Its ending is not looked at here: the producer
     * removes the ring as soon as the last batch is taken.) */
    br_gen *g;
    br_batch b;
    assert_int_equal(br_attach(&g, name, TU_WAIT_MS), 0);
    tu_track(g);
    for (uint64_t seq = 0; seq < 16; seq++) {
        assert_int_equal(tu_next(g, &b, NULL), 0);
        tu_check_batch(sh, &b, seq);
    }
    assert_int_equal(br_next(g, &b), BR_EOF);
    tu_close(g);
    assert_exit_code(wait_exit(prod, TU_WAIT_MS), PROD_DONE, "the producer after the last batch");
    tu_assert_loaders_ok(sh);
    reap_all(TU_WAIT_MS, true);
    tu_leaks_check(&l);
}

/* ---- another user's ring ------------------------------------------------- */

#define NOBODY 65534u

/* As uid NOBODY: attach and stat, both reported. */
static void attach_as_nobody(int fd, void *p)
{
    const char *name = p;
    br_ring_status st;
    br_gen *g;
    char why[128];
    if (setgroups(0, NULL) != 0 || setresgid(NOBODY, NOBODY, NOBODY) != 0 ||
        setresuid(NOBODY, NOBODY, NOBODY) != 0) {
        snprintf(why, sizeof why, "cannot become uid %u: %s", NOBODY, strerror(errno));
        send_rep(fd, REP_SKIP, -errno, 0, true, why);
        return;
    }
    int rc = br_attach(&g, name, 0);
    send_rep(fd, REP_ATTACH, rc, 0, true, br_last_error(NULL));
    br_close(g);
    rc = br_ring_status_get(name, &st, NULL, 0);
    send_rep(fd, REP_END, rc, 0, true, br_last_error(NULL));
}

static void test_named_other_uid_refused(void **state)
{
    (void)state;
    if (geteuid() != 0) {
        print_message("skipped: needs root to run a consumer as another user (uid %u)\n", NOBODY);
        skip();
    }
    tu_leaks l;
    tu_leaks_begin(&l);
    const char *name = new_ring_name();
    br_options opt;
    tu_shared *sh = small_ring(&opt, 64, false);
    pid_t prod = producer_start(name, sh, &opt);
    struct rep r;
    br_ring_status st;
    br_gen *g;
    int fd;

    pid_t c = child_fork(attach_as_nobody, (void *)name, &fd);
    assert_true(read_within(fd, &r, sizeof r, TU_WAIT_MS));
    bool skipped = r.kind == REP_SKIP;
    if (!skipped) {
        assert_int_equal(r.kind, REP_ATTACH);
        if (r.rc != -EACCES)
            fail_msg("uid %u attaching to root's ring: %s (%s), expected EACCES", NOBODY,
                     br_err_name(r.rc), r.msg);
        tu_assert_contains(r.msg, name);
        get_rep(fd, &r, REP_END);
        assert_int_equal(r.rc, -EACCES);
    }
    close(fd);
    assert_exit_code(wait_exit(c, TU_WAIT_MS), 0, "the other user's consumer");

    /* The library's own checks, beyond the file's mode: an object of
     * another owner, and a header that names another uid. */
    fd = open(shm_path(name), O_RDWR | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(fchown(fd, NOBODY, NOBODY), 0);
    tu_assert_contains(attach_refused(name, -EACCES, "an object of uid 65534"), "uid 65534");
    assert_int_equal(br_ring_status_get(name, &st, NULL, 0), -EACCES);
    assert_int_equal(fchown(fd, 0, 0), 0);
    const uint64_t uid = field_read(fd, HDR(owner_uid));
    field_write(fd, HDR(owner_uid), NOBODY);
    tu_assert_contains(attach_refused(name, -EACCES, "a header of uid 65534"), "made by uid 65534");
    field_write(fd, HDR(owner_uid), uid);
    assert_int_equal(close(fd), 0);

    assert_int_equal(br_attach(&g, name, TU_WAIT_MS), 0);
    tu_close(g);
    assert_int_equal(kill(prod, SIGTERM), 0);
    assert_exit_code(wait_exit(prod, TU_WAIT_MS), PROD_STOPPED, "the producer after SIGTERM");
    reap_all(TU_WAIT_MS, true);
    tu_leaks_check(&l);
    if (skipped) {
        print_message("skipped the other-user part: %s\n", r.msg);
        skip();
    }
}

/* ---- ls, gc, stat ------------------------------------------------------ */

static void test_named_ls_gc(void **state)
{
    (void)state;
    tu_leaks l;
    tu_leaks_begin(&l);
    const char *live = new_ring_name(), *stale = new_ring_name(), *junk = new_ring_name();
    char line[512], pid[32];
    struct server s;
    br_options opt;

    /* The stale ring first, so that reaping its orphans need not wait for
     * the server. */
    tu_shared *sh = small_ring(&opt, 64, false);
    pid_t prod = producer_start(stale, sh, &opt);
    assert_int_equal(kill(prod, SIGKILL), 0);
    wait_exit(prod, TU_WAIT_MS);
    reap_all(TU_WAIT_MS, true);
    serve_start(&s, live,
                (const char *const[]){"--plugin", BR_TEST_PLUGIN, "--plugin-arg",
                                      "samples=40,bytes=100", "--batch", "4", "--workers", "1",
                                      "--slot-bytes", "400", NULL});
    int fd = shm_open(junk, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "not a ring", 10), 10);
    assert_int_equal(close(fd), 0);

    cli_expect((const char *const[]){"ls", NULL}, 0, out, err, CAP);
    if (!line_of(out, live, line, sizeof line))
        fail_msg("batchring ls does not list %s:\n%s", live, out);
    snprintf(pid, sizeof pid, "%d running", (int)s.pid);
    tu_assert_contains(line, pid);
    if (!line_of(out, stale, line, sizeof line))
        fail_msg("batchring ls does not list %s:\n%s", stale, out);
    snprintf(pid, sizeof pid, "%d stale", (int)prod);
    tu_assert_contains(line, pid);
    if (strstr(out, junk))
        fail_msg("batchring ls lists %s, which is not a ring:\n%s", junk, out);
    cli_expect((const char *const[]){"ls", "-v", NULL}, 0, out, err, CAP);
    snprintf(line, sizeof line, "skipped %s: not a ring", shm_path(junk));
    tu_assert_contains(out, line);

    cli_expect((const char *const[]){"gc", NULL}, 0, out, err, CAP);
    snprintf(line, sizeof line, "removed %s:", stale);
    tu_assert_contains(out, line);
    snprintf(line, sizeof line, "removed %s:", live);
    if (strstr(out, line))
        fail_msg("batchring gc removed the live ring %s:\n%s", live, out);
    assert_false(ring_exists(stale));
    assert_true(ring_exists(live));
    assert_true(ring_exists(junk));
    cli_expect((const char *const[]){"gc", live, NULL}, 0, out, err, CAP);
    snprintf(line, sizeof line, "kept %s: its producer (pid %d) is running", live, (int)s.pid);
    tu_assert_contains(out, line);
    cli_expect((const char *const[]){"gc", junk, NULL}, 1, out, err, CAP);
    tu_assert_contains(err, "BR_EBADRING");
    assert_true(ring_exists(junk));

    assert_int_equal(shm_unlink(junk), 0);
    serve_stop(&s, SIGTERM);
    tu_leaks_check(&l);
}

static void test_named_stat(void **state)
{
    (void)state;
    tu_leaks l;
    tu_leaks_begin(&l);
    const char *name = new_ring_name();
    char want[128];
    struct server s;
    br_gen *g;
    br_batch b;

    serve_start(&s, name,
                (const char *const[]){"--plugin", BR_TEST_PLUGIN, "--plugin-arg",
                                      "samples=400,bytes=100", "--batch", "4", "--workers", "2",
                                      "--slot-bytes", "400", NULL});
    assert_int_equal(br_attach(&g, name, TU_WAIT_MS), 0);
    tu_track(g);
    for (int k = 0; k < 3; k++)
        assert_int_equal(tu_next(g, &b, NULL), 0);

    cli_expect((const char *const[]){"stat", name, NULL}, 0, out, err, CAP);
    snprintf(want, sizeof want, "producer  pid %d, running", (int)s.pid);
    tu_assert_contains(out, want);
    snprintf(want, sizeof want, "consumer  pid %d", (int)getpid());
    tu_assert_contains(out, want);
    tu_assert_contains(out, "taken     3 batches");
    tu_assert_contains(out, "data stall");
    tu_assert_contains(out, "slot wait s");

    cli_expect((const char *const[]){"stat", "--json", name, NULL}, 0, out, err, CAP);
    assert_true(out[0] == '{');
    assert_non_null(strstr(out, "}\n"));
    assert_true(strstr(out, "}\n")[2] == '\0'); /* one object, one line */
    snprintf(want, sizeof want, "\"owner_pid\": %d, \"owner_alive\": true", (int)s.pid);
    tu_assert_contains(out, want);
    snprintf(want, sizeof want, "\"consumer_pid\": %d", (int)getpid());
    tu_assert_contains(out, want);
    tu_assert_contains(out, "\"cursor\": 3,");
    tu_assert_contains(out, "\"worker\": 0,");
    tu_assert_contains(out, "\"worker\": 1,");
    tu_assert_contains(out, "\"data_stall_pct\": ");
    tu_assert_contains(out, "\"io_backend\": \"none\""); /* a plugin that reads no file */

    /* --watch: a fresh object every second until SIGINT. */
    int fd;
    char line1[CAP], line2[CAP];
    pid_t w = cli_spawn((const char *const[]){"stat", "--watch", "--json", name, NULL}, &fd, NULL);
    assert_true(tu_read_line(fd, line1, sizeof line1, TU_WAIT_MS));
    assert_true(tu_read_line(fd, line2, sizeof line2, TU_WAIT_MS));
    tu_assert_contains(line1, "\"owner_pid\"");
    tu_assert_contains(line2, "\"window_s\"");
    assert_int_equal(kill(w, SIGINT), 0);
    assert_exit_code(wait_exit(w, TU_WAIT_MS), 0, "batchring stat --watch after SIGINT");
    close(fd);

    tu_close(g);
    serve_stop(&s, SIGTERM);
    cli_expect((const char *const[]){"stat", name, NULL}, 1, out, err, CAP);
    tu_assert_contains(err, "ENOENT");
    tu_assert_contains(err, name);
    tu_leaks_check(&l);
}

/* ---- stat: a consumer blocked right now --------------------------------- */

/* Holds the load of seq sh->arg until release >= 1 and of sh->arg2 until
 * release >= 2. */
static int hook_hold_two(br_job *job, tu_shared *sh, uint32_t attempt)
{
    const uint32_t need = job->seq == sh->arg ? 1 : job->seq == sh->arg2 ? 2 : 0;
    uint32_t v;
    (void)attempt;
    while ((v = atomic_load(&sh->release)) < need)
        tu_futex_wait(&sh->release, v, -1);
    return 0;
}

/* What one look at a waiting consumer must show. */
struct wait_watch {
    uint64_t seq;   /* the batch it waits for */
    uint64_t asked; /* before its br_next for seq began (tu_now_ns) */
    bool steady;    /* one wait: once seen waiting, it stays so */
    bool seen;
    uint64_t last_ns; /* the wait's length at the last look */
};

/*
 * Looks at the ring with br_ring_status_get until its consumer has waited for
 * w->seq at least min_ns, for at most TU_WAIT_MS. A poll: the wait begins
 * with no event the test could wait on. Every look must show that batch or
 * no wait (none once w->steady and seen), a length that never shrinks, and
 * never more than the time since the consumer asked for the batch.
 */
static void stat_until_waited(const char *name, struct wait_watch *w, uint64_t min_ns)
{
    const uint64_t deadline = tu_now_ns() + (uint64_t)TU_WAIT_MS * 1000000u;
    br_ring_status st;
    for (;;) {
        assert_int_equal(br_ring_status_get(name, &st, NULL, 0), 0);
        const uint64_t now = tu_now_ns();
        if (st.consumer_waiting_seq == BR_NOT_WAITING) {
            assert_int_equal(st.consumer_waiting_ns, 0);
            if (w->steady && w->seen)
                fail_msg("the consumer waiting for batch %" PRIu64 " for %.3f s is shown as not "
                         "waiting",
                         w->seq, (double)w->last_ns / 1e9);
        } else {
            if (st.consumer_waiting_seq != w->seq)
                fail_msg("the consumer is shown waiting for batch %" PRIu64 ", expected %" PRIu64,
                         st.consumer_waiting_seq, w->seq);
            if (st.consumer_waiting_ns > now - w->asked)
                fail_msg("waiting for %" PRIu64 " ns, but it asked for the batch only %" PRIu64
                         " ns ago",
                         st.consumer_waiting_ns, now - w->asked);
            if (w->seen && st.consumer_waiting_ns < w->last_ns)
                fail_msg("the wait for batch %" PRIu64 " shrank from %" PRIu64 " to %" PRIu64 " ns",
                         w->seq, w->last_ns, st.consumer_waiting_ns);
            w->seen = true;
            w->last_ns = st.consumer_waiting_ns;
            assert_int_equal(st.cursor, w->seq);
            if (st.consumer_waiting_ns >= min_ns)
                return;
        }
        if (now >= deadline)
            fail_msg("no look within %d ms showed the consumer waiting for batch %" PRIu64
                     " for %" PRIu64 " ns (last: %s, %" PRIu64 " ns)",
                     TU_WAIT_MS, w->seq, min_ns, w->seen ? "waiting" : "never seen waiting",
                     w->last_ns);
        sched_yield();
    }
}

/* br_ring_status_get and batchring stat show which batch a consumer blocked in
 * br_next waits for and for how long, and that it waits no more once the
 * batch came, once it died, or when a new consumer took over. */
static void test_named_stat_waiting_consumer(void **state)
{
    (void)state;
    tu_leaks l;
    tu_leaks_begin(&l);
    const char *name = new_ring_name();
    br_options opt;
    tu_shared *sh = small_ring(&opt, 64, false); /* 16 batches */
    sh->hook = hook_hold_two;
    sh->arg = 6;
    sh->arg2 = 9;
    pid_t prod = producer_start(name, sh, &opt);
    br_ring_status st;
    struct rep r;
    char want[160];
    int fd;

    /* Nobody attached: nobody waits. */
    assert_int_equal(br_ring_status_get(name, &st, NULL, 0), 0);
    assert_true(st.consumer_waiting_seq == BR_NOT_WAITING);
    assert_int_equal(st.consumer_waiting_ns, 0);

    /* The first consumer takes 0..5, then waits for 6 with br_next calls
     * that time out after 20 ms and are retried, as a trainer that checks
     * for signals between calls does: one wait, from its first call. */
    struct consumer_arg a1 = {.name = name, .sh = sh, .take = 7, .timeout_ms = 20};
    pid_t c1 = child_fork(consume_then_wait, &a1, &fd);
    get_rep(fd, &r, REP_ATTACH);
    assert_int_equal(r.rc, 0);
    for (uint64_t k = 0; k < 6; k++) {
        get_rep(fd, &r, REP_BATCH);
        if (r.rc || !r.ok || r.seq != k)
            fail_msg("first consumer, batch %" PRIu64 ": rc %d seq %" PRIu64 ": %s", k, r.rc, r.seq,
                     r.msg);
    }
    struct wait_watch w1 = {.seq = 6, .asked = r.t_ns};
    stat_until_waited(name, &w1, 5 * 20 * 1000000u); /* five timeouts */

    /* The batch comes: the consumer holds it and waits no more. */
    tu_store_wake(&sh->release, 1);
    get_rep(fd, &r, REP_BATCH);
    if (r.rc || !r.ok || r.seq != 6)
        fail_msg("first consumer, batch 6: rc %d seq %" PRIu64 ": %s", r.rc, r.seq, r.msg);
    get_rep(fd, &r, REP_HOLDING);
    close(fd);
    assert_int_equal(br_ring_status_get(name, &st, NULL, 0), 0);
    assert_int_equal(st.consumer_pid, c1);
    assert_int_equal(st.cursor, 7);
    assert_true(st.consumer_waiting_seq == BR_NOT_WAITING);
    assert_int_equal(st.consumer_waiting_ns, 0);
    cli_expect((const char *const[]){"stat", name, NULL}, 0, out, err, CAP);
    snprintf(want, sizeof want, "consumer  pid %d, not waiting\n", (int)c1);
    tu_assert_contains(out, want);
    cli_expect((const char *const[]){"stat", "--json", name, NULL}, 0, out, err, CAP);
    tu_assert_contains(out, "\"consumer_waiting_seq\": null, \"consumer_waiting_ns\": null");
    kill_child(c1);

    /* The second resumes at 6 (held, never released), takes 6..8 and waits
     * for 9 in one br_next call. */
    struct consumer_arg a2 = {.name = name, .sh = sh, .take = 4, .timeout_ms = -1};
    pid_t c2 = child_fork(consume_then_wait, &a2, &fd);
    get_rep(fd, &r, REP_ATTACH);
    assert_int_equal(r.rc, 0);
    for (uint64_t k = 6; k < 9; k++) {
        get_rep(fd, &r, REP_BATCH);
        if (r.rc || !r.ok || r.seq != k)
            fail_msg("second consumer, batch %" PRIu64 ": rc %d seq %" PRIu64 ": %s", k, r.rc,
                     r.seq, r.msg);
    }
    struct wait_watch w2 = {.seq = 9, .asked = r.t_ns, .steady = true};
    stat_until_waited(name, &w2, 0);
    stat_until_waited(name, &w2, w2.last_ns + 50 * 1000000u); /* it grows */

    /* The command line says so too: "waiting for batch 9 for 312 ms". */
    cli_expect((const char *const[]){"stat", name, NULL}, 0, out, err, CAP);
    snprintf(want, sizeof want, "consumer  pid %d, waiting for batch 9 for ", (int)c2);
    tu_assert_contains(out, want);
    cli_expect((const char *const[]){"stat", "--json", name, NULL}, 0, out, err, CAP);
    tu_assert_contains(out, "\"consumer_waiting_seq\": 9, \"consumer_waiting_ns\": ");
    {
        unsigned long long ns = 0;
        const char *p = strstr(out, "\"consumer_waiting_ns\": ");
        assert_int_equal(sscanf(p, "\"consumer_waiting_ns\": %llu", &ns), 1);
        if (ns < w2.last_ns)
            fail_msg("batchring stat --json shows a wait of %llu ns, shorter than the %" PRIu64
                     " ns seen before it",
                     ns, w2.last_ns);
    }

    /* Killed in its wait, the consumer leaves the word set; a dead
     * consumer waits for nothing, and the next one clears it. */
    kill_child(c2);
    close(fd);
    int hfd = open(shm_path(name), O_RDONLY | O_CLOEXEC);
    assert_true(hfd >= 0);
    assert_true(field_read(hfd, HDR(consumer_wait_since)) != 0);
    assert_int_equal(br_ring_status_get(name, &st, NULL, 0), 0);
    assert_int_equal(st.consumer_pid, 0);
    assert_true(st.consumer_waiting_seq == BR_NOT_WAITING);
    cli_expect((const char *const[]){"stat", name, NULL}, 0, out, err, CAP);
    tu_assert_contains(out, "consumer  none attached");

    br_gen *g;
    br_batch b;
    assert_int_equal(br_attach(&g, name, TU_WAIT_MS), 0);
    tu_track(g);
    assert_int_equal(field_read(hfd, HDR(consumer_wait_since)), 0);
    assert_int_equal(close(hfd), 0);
    assert_int_equal(br_ring_status_get(name, &st, NULL, 0), 0);
    assert_int_equal(st.consumer_pid, getpid());
    assert_true(st.consumer_waiting_seq == BR_NOT_WAITING);
    tu_store_wake(&sh->release, 2);
    for (uint64_t seq = 9; seq < 16; seq++) {
        assert_int_equal(tu_next(g, &b, NULL), 0);
        tu_check_batch(sh, &b, seq);
    }
    assert_int_equal(br_next(g, &b), BR_EOF);
    tu_close(g);
    tu_assert_loaders_ok(sh);
    assert_exit_code(wait_exit(prod, TU_WAIT_MS), PROD_DONE, "the producer after the last batch");
    assert_false(ring_exists(name));
    reap_all(TU_WAIT_MS, true);
    tu_leaks_check(&l);
}

/* ---- the server's ways out ------------------------------------------------- */

/* SIGTERM and SIGINT, with a consumer attached and holding a batch: the
 * server exits 0, removes its ring, leaves no process; the consumer is
 * told the producer is gone. */
static void test_named_serve_signals_clean_up(void **state)
{
    (void)state;
    static const int sigs[] = {SIGTERM, SIGINT};
    tu_leaks l;
    tu_leaks_begin(&l);
    for (size_t i = 0; i < 2; i++) {
        const char *name = new_ring_name();
        struct server s;
        br_gen *g;
        br_batch b;
        int rc;
        serve_start(&s, name,
                    (const char *const[]){"--plugin", BR_TEST_PLUGIN, "--plugin-arg",
                                          "samples=400,bytes=100", "--batch", "4", "--workers", "2",
                                          "--slots", "3", "--slot-bytes", "400", NULL});
        assert_int_equal(br_attach(&g, name, TU_WAIT_MS), 0);
        tu_track(g);
        for (int k = 0; k < 3; k++)
            assert_int_equal(tu_next(g, &b, NULL), 0);
        serve_stop(&s, sigs[i]);
        /* What was ready may still come; then the end is named. */
        for (int k = 0; k < 5 && (rc = tu_next(g, &b, NULL)) == 0; k++)
            ;
        assert_int_equal(rc, BR_EPRODUCER);
        tu_close(g);
    }
    /* And with nobody attached. */
    const char *name = new_ring_name();
    struct server s;
    serve_start(&s, name,
                (const char *const[]){"--plugin", BR_TEST_PLUGIN, "--plugin-arg",
                                      "samples=400,bytes=100", "--batch", "4", "--workers", "2",
                                      "--slot-bytes", "400", NULL});
    serve_stop(&s, SIGTERM);
    tu_leaks_check(&l);
}

/* --exit-on-detach: the server ends when its consumer goes. */
static void test_named_exit_on_detach(void **state)
{
    (void)state;
    tu_leaks l;
    tu_leaks_begin(&l);
    const char *name = new_ring_name();
    struct server s;
    br_gen *g;
    br_batch b;
    serve_start(&s, name,
                (const char *const[]){"--plugin", BR_TEST_PLUGIN, "--plugin-arg",
                                      "samples=400,bytes=100", "--batch", "4", "--workers", "2",
                                      "--slot-bytes", "400", "--exit-on-detach", NULL});
    assert_int_equal(br_attach(&g, name, TU_WAIT_MS), 0);
    tu_track(g);
    assert_int_equal(tu_next(g, &b, NULL), 0);
    assert_int_equal(tu_next(g, &b, NULL), 0);
    tu_close(g);
    assert_exit_code(wait_exit(s.pid, TU_WAIT_MS), 0, "batchring serve --exit-on-detach");
    assert_false(ring_exists(name));
    reap_all(TU_WAIT_MS, true);
    tu_leaks_check(&l);
}

/* ---- sizes and bad options, without a second process ----------------------- */

static uint64_t mem_available(void)
{
    FILE *f = fopen("/proc/meminfo", "re");
    char line[256];
    unsigned long long kib = 0;
    assert_non_null(f);
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %llu kB", &kib) == 1)
            break;
    fclose(f);
    return (uint64_t)kib * 1024u;
}

/* A ring larger than /dev/shm (or memory) is refused before anything is
 * created, with the sizes in the message. Mounting a small /dev/shm would
 * need a mount namespace; the sizes are chosen from the real ones instead. */
static void test_named_too_large(void **state)
{
    (void)state;
    tu_leaks l;
    tu_leaks_begin(&l);
    struct statvfs v;
    assert_int_equal(statvfs("/dev/shm", &v), 0);
    const uint64_t shm_free = (uint64_t)v.f_bavail * v.f_frsize, mem = mem_available();
    const char *name = new_ring_name();
    br_options opt;
    br_gen *g = (br_gen *)&opt;
    int rc, want;

    br_options_init(&opt);
    opt.name = name;
    opt.batch_size = 1;
    opt.slots = 1;
    if (shm_free + (UINT64_C(1) << 30) < mem) {
        /* Fits in memory, not in /dev/shm: the container trap. */
        opt.slot_bytes = (size_t)(shm_free + (mem - shm_free) / 2);
        want = -ENOSPC;
    } else {
        opt.slot_bytes = (size_t)(2 * (shm_free > mem ? shm_free : mem));
        want = -ENOMEM;
    }
    rc = br_open(&g, tu_loader, NULL, NULL, NULL, 1, &opt);
    if (rc != want)
        fail_msg("a ring of %zu bytes (/dev/shm has %" PRIu64 " free, %" PRIu64
                 " available memory): %s (%s), expected %s",
                 opt.slot_bytes, shm_free, mem, br_err_name(rc), br_last_error(NULL),
                 br_err_name(want));
    assert_null(g);
    char slot[32], want_slot[64];
    const uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
    snprintf(want_slot, sizeof want_slot, "1 slots x %s of slot_bytes",
             br_util_bytes(slot, (opt.slot_bytes + page - 1) / page * page));
    tu_assert_contains(br_last_error(NULL), "it needs");
    tu_assert_contains(br_last_error(NULL), want_slot);
    tu_assert_contains(br_last_error(NULL), want == -ENOSPC ? "/dev/shm has only" : "available");
    if (want == -ENOSPC) {
        /* The free space is smaller than the slot: the two figures differ. */
        char wrong[64];
        snprintf(wrong, sizeof wrong, "has only %s free", slot);
        if (strstr(br_last_error(NULL), wrong))
            fail_msg("the message gives the slot size as /dev/shm's free space: %s",
                     br_last_error(NULL));
    }
    assert_false(ring_exists(name));

    /* A named ring is for another process: it needs workers. */
    opt.slot_bytes = 64;
    opt.workers = 0;
    assert_int_equal(br_open(&g, tu_loader, NULL, NULL, NULL, 1, &opt), -EINVAL);
    tu_assert_contains(br_last_error(NULL), "workers >= 1");
    opt.workers = 1;
    opt.name = "no-slash";
    assert_int_equal(br_open(&g, tu_loader, NULL, NULL, NULL, 1, &opt), -EINVAL);
    tu_assert_contains(br_last_error(NULL), "no-slash");
    assert_false(ring_exists(name));
    reap_all(TU_WAIT_MS, true);
    tu_leaks_check(&l);
}

/* Bad command lines exit with 2 and name the bad argument; --help exits
 * with 0; runtime errors exit with 1. */
static void test_named_cli_errors(void **state)
{
    (void)state;
    static const struct {
        const char *args[16];
        const char *needle;
    } usage[] = {
        {{"serve", NULL}, "--name /NAME is required"},
        {{"serve", "--name", "x", "--files", "l", "--batch", "1", "--workers", "1", NULL},
         "bad ring name 'x'"},
        {{"serve", "--name", "/x", "--batch", "1", "--workers", "1", NULL}, "nothing to serve"},
        {{"serve", "--name", "/x", "--files", "l", NULL}, "--batch B and --workers W are required"},
        {{"serve", "--name", "/x", "--records", "f", "--batch", "1", "--workers", "1", NULL},
         "--records needs --record-size"},
        {{"serve", "--name", "/x", "--records", "f", "--record-size", "0", NULL},
         "bad value '0' for --record-size"},
        {{"serve", "--name", "/x", "--files", "l", "--batch", "0", NULL},
         "bad value '0' for --batch"},
        {{"serve", "--name", "/x", "--files", "l", "--workers", "0", NULL},
         "bad value '0' for --workers"},
        {{"serve", "--name", "/x", "--files", "l", "--workers", "-1", NULL},
         "bad value '-1' for --workers"},
        {{"serve", "--name", "/x", "--files", "l", "--slots", "4x", NULL},
         "bad value '4x' for --slots"},
        {{"serve", "--name", "/x", "--records", "f", "--files", "l", NULL},
         "--records and --files"},
        {{"serve", "--name", "/x", "--indexed", "d", NULL}, "--indexed needs two files"},
        {{"serve", "--name", "/x", "--files", "l", "--record-size", "4", "--batch", "1",
          "--workers", "1", NULL},
         "--record-size is for --records only"},
        {{"serve", "--bogus", NULL}, "unrecognized option"},
        {{"serve", "--name", "/x", "--files", "l", "extra", NULL}, "unexpected argument 'extra'"},
        {{"consume", NULL}, "--name /NAME is required"},
        {{"consume", "--name", "/x", "--batches", "0", NULL}, "bad value '0' for --batches"},
        {{"consume", "--name", "/x", "--sample-bytes", "4", NULL}, "are for --verify"},
        {{"consume", "--name", "/x", "--timeout-ms", "abc", NULL},
         "bad value 'abc' for --timeout-ms"},
        {{"stat", NULL}, "which ring?"},
        {{"stat", "/a", "/b", NULL}, "one ring at a time"},
        {{"stat", "noslash", NULL}, "bad ring name 'noslash'"},
        {{"ls", "extra", NULL}, "unexpected argument 'extra'"},
        {{"gc", "bad", NULL}, "bad ring name 'bad'"},
    };
    static const char *const commands[] = {"serve", "consume", "stat", "ls", "gc"};
    tu_leaks l;
    tu_leaks_begin(&l);
    for (size_t i = 0; i < sizeof usage / sizeof usage[0]; i++) {
        cli_expect(usage[i].args, 2, out, err, CAP);
        tu_assert_contains(err, usage[i].needle);
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        char want[64];
        cli_expect((const char *const[]){commands[i], "--help", NULL}, 0, out, err, CAP);
        snprintf(want, sizeof want, "usage: batchring %s", commands[i]);
        tu_assert_contains(out, want);
    }
    const char *name = new_ring_name();
    cli_expect((const char *const[]){"serve", "--name", name, "--records", "/nonexistent/r.bin",
                                     "--record-size", "4", "--batch", "1", "--workers", "1", NULL},
               1, out, err, CAP);
    tu_assert_contains(err, "/nonexistent/r.bin");
    assert_false(ring_exists(name));
    cli_expect((const char *const[]){"consume", "--name", name, NULL}, 1, out, err, CAP);
    tu_assert_contains(err, "ENOENT");
    tu_assert_contains(err, name);
    reap_all(TU_WAIT_MS, true);
    tu_leaks_check(&l);
}

/* ---- hostile names: other programs' objects, FIFOs, namespaces ------------ */

#define UNSHARE_PATH "/usr/bin/unshare"

/* A plugin ring: 40 samples of 100 bytes (seed 5), one epoch. */
static const char *const plugin_ring[] = {"--plugin", BR_TEST_PLUGIN, "--plugin-arg",
                                          "samples=40,bytes=100,seed=5", "--batch", "4",
                                          "--workers", "2", "--slot-bytes", "400", "--epochs",
                                          "1", NULL};

/* serve --name over anything but a stale ring of ours is -EEXIST, and the
 * object is left as it was: another program's shared memory, and a stale
 * ring that belongs to another user. */
static void test_named_foreign_object_kept(void **state)
{
    (void)state;
    tu_leaks l;
    tu_leaks_begin(&l);
    const char *junk = new_ring_name();
    char data[4096], back[4096], want[128];
    br_options opt;
    tu_shared *sh = small_ring(&opt, 64, false);
    br_gen *g = NULL;

    /* Another program's block, larger than a ring's header. */
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (char)('a' + i % 26);
    int fd = shm_open(junk, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, sizeof data), (ssize_t)sizeof data);
    const char *serve_junk[16] = {"serve", "--name", junk};
    for (size_t i = 0; plugin_ring[i]; i++)
        serve_junk[3 + i] = plugin_ring[i];
    cli_expect(serve_junk, 1, out, err, CAP);
    tu_assert_contains(err, "EEXIST");
    tu_assert_contains(err, "not a batchring ring");
    tu_assert_contains(err, junk);
    opt.name = junk;
    assert_int_equal(br_open(&g, tu_loader, sh, sh->ids, NULL, sh->n_ids, &opt), -EEXIST);
    assert_null(g);
    tu_assert_contains(br_last_error(NULL), "not a batchring ring");
    cli_expect((const char *const[]){"gc", junk, NULL}, 1, out, err, CAP);
    cli_expect((const char *const[]){"gc", NULL}, 0, out, err, CAP);
    struct stat st;
    assert_int_equal(stat(shm_path(junk), &st), 0);
    assert_int_equal(pread(fd, back, sizeof back, 0), (ssize_t)sizeof back);
    if (memcmp(back, data, sizeof data) != 0 || st.st_size != (off_t)sizeof data)
        fail_msg("the object at %s was changed", junk);
    assert_int_equal(close(fd), 0);
    assert_int_equal(shm_unlink(junk), 0);

    if (geteuid() != 0) {
        tu_shared_free(sh);
        tu_leaks_check(&l);
        print_message("skipped the other-user part: needs root to chown to uid %u\n", NOBODY);
        skip();
    }
    /* A stale ring of ours, given to another user: not ours to replace. */
    const char *other = new_ring_name();
    opt.name = NULL;
    pid_t prod = producer_start(other, sh, &opt);
    assert_int_equal(kill(prod, SIGKILL), 0);
    wait_exit(prod, TU_WAIT_MS);
    reap_all(TU_WAIT_MS, true);
    assert_int_equal(chown(shm_path(other), NOBODY, NOBODY), 0);
    const char *serve_other[16] = {"serve", "--name", other};
    for (size_t i = 0; plugin_ring[i]; i++)
        serve_other[3 + i] = plugin_ring[i];
    cli_expect(serve_other, 1, out, err, CAP);
    tu_assert_contains(err, "EEXIST");
    snprintf(want, sizeof want, "belongs to uid %u", NOBODY);
    tu_assert_contains(err, want);
    cli_expect((const char *const[]){"gc", other, NULL}, 1, out, err, CAP);
    cli_expect((const char *const[]){"gc", NULL}, 0, out, err, CAP);
    assert_int_equal(stat(shm_path(other), &st), 0);
    assert_int_equal(st.st_uid, NOBODY);
    /* Given back, it is a stale ring of ours again: gc removes it. */
    assert_int_equal(chown(shm_path(other), 0, 0), 0);
    cli_expect((const char *const[]){"gc", other, NULL}, 0, out, err, CAP);
    snprintf(want, sizeof want, "removed %s:", other);
    tu_assert_contains(out, want);
    assert_false(ring_exists(other));
    tu_shared_free(sh);
    tu_leaks_check(&l);
}

/* A FIFO at a ring's name (any user can make one in /dev/shm) blocks
 * nothing: serve, stat and gc refuse it at once, and leave it. */
static void test_named_fifo_blocks_nothing(void **state)
{
    (void)state;
    tu_leaks l;
    tu_leaks_begin(&l);
    const char *name = new_ring_name();
    struct stat st;
    char want[300];

    assert_int_equal(mkfifo(shm_path(name), 0666), 0);
    if (geteuid() == 0)
        assert_int_equal(chown(shm_path(name), NOBODY, NOBODY), 0);
    const char *serve[16] = {"serve", "--name", name};
    for (size_t i = 0; plugin_ring[i]; i++)
        serve[3 + i] = plugin_ring[i];
    /* cli_expect is the hang guard: a command still running after
     * TU_WAIT_MS fails the test. */
    cli_expect(serve, 1, out, err, CAP);
    tu_assert_contains(err, "EEXIST");
    tu_assert_contains(err, "not a batchring ring");
    cli_expect((const char *const[]){"stat", name, NULL}, 1, out, err, CAP);
    tu_assert_contains(err, "not a batchring ring");
    tu_assert_contains(err, name);
    cli_expect((const char *const[]){"gc", name, NULL}, 1, out, err, CAP);
    tu_assert_contains(err, "not a batchring ring");
    cli_expect((const char *const[]){"gc", "-v", NULL}, 0, out, err, CAP);
    snprintf(want, sizeof want, "removed %s", name);
    if (strstr(out, want))
        fail_msg("batchring gc removed the FIFO %s:\n%s", name, out);
    cli_expect((const char *const[]){"ls", NULL}, 0, out, err, CAP);
    br_ring_status rs;
    assert_int_equal(br_ring_status_get(name, &rs, NULL, 0), BR_EBADRING);
    attach_refused(name, BR_EBADRING, "a FIFO");
    assert_int_equal(lstat(shm_path(name), &st), 0);
    assert_true(S_ISFIFO(st.st_mode));
    assert_int_equal(unlink(shm_path(name)), 0);
    tu_leaks_check(&l);
}

/* A consumer in another PID namespace (as containers that share /dev/shm
 * but not PIDs): it attaches and consumes to the end, stat there sees the
 * producer running, and gc here agrees. */
static void test_named_other_pid_namespace(void **state)
{
    (void)state;
    if (geteuid() != 0 || access(UNSHARE_PATH, X_OK) != 0) {
        print_message("skipped: needs root and %s for a PID namespace\n", UNSHARE_PATH);
        skip();
    }
    int status = prog_run(UNSHARE_PATH, (const char *const[]){"-p", "-f", "--mount-proc", "true",
                                                              NULL},
                          out, err, CAP);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        print_message("skipped: unshare -p -f --mount-proc fails here: %s\n", err);
        skip();
    }
    tu_leaks l;
    tu_leaks_begin(&l);
    const char *name = new_ring_name();
    char want[128], how[96];
    struct server s;
    serve_start(&s, name, plugin_ring);

    status = prog_run(UNSHARE_PATH,
                      (const char *const[]){"-p", "-f", "--mount-proc", BR_CLI_PATH, "stat", name,
                                            NULL},
                      out, err, CAP);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("stat in another PID namespace %s: %s", tu_describe_status(status, how, sizeof how),
                 err);
    snprintf(want, sizeof want, "producer  pid %d, running", (int)s.pid);
    tu_assert_contains(out, want);
    status = prog_run(UNSHARE_PATH,
                      (const char *const[]){"-p", "-f", "--mount-proc", BR_CLI_PATH, "stat",
                                            "--json", name, NULL},
                      out, err, CAP);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    tu_assert_contains(out, "\"owner_alive\": true");
    cli_expect((const char *const[]){"gc", name, NULL}, 0, out, err, CAP);
    snprintf(want, sizeof want, "kept %s: its producer (pid %d) is running", name, (int)s.pid);
    tu_assert_contains(out, want);
    cli_expect((const char *const[]){"stat", name, NULL}, 0, out, err, CAP);
    snprintf(want, sizeof want, "producer  pid %d, running", (int)s.pid);
    tu_assert_contains(out, want);

    status = prog_run(UNSHARE_PATH,
                      (const char *const[]){"-p", "-f", "--mount-proc", BR_CLI_PATH, "consume",
                                            "--name", name, "--verify", "--seed", "5", NULL},
                      out, err, CAP);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("consume in another PID namespace %s\nstdout: %s\nstderr: %s",
                 tu_describe_status(status, how, sizeof how), out, err);
    /* The consumer took the last batch: the server ends by itself. */
    assert_exit_code(wait_exit(s.pid, TU_WAIT_MS), 0, "batchring serve after the last batch");
    assert_false(ring_exists(name));
    reap_all(TU_WAIT_MS, true);
    tu_leaks_check(&l);
}

/* In a child with its own 64 MiB /dev/shm: a sparse object whose valid
 * header claims 2 GiB, held by a live producer's lock (this child's).
 * br_attach must refuse it without allocating anything. */
static void sparse_attach(int rfd, void *p)
{
    const char *name = p;
    char why[BR_ERR_CAP + 256], msg[1024];
    if (unshare(CLONE_NEWNS) != 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
        mount("brtest", "/dev/shm", "tmpfs", 0, "size=64m") != 0) {
        snprintf(why, sizeof why, "cannot mount a private 64 MiB /dev/shm: %s", strerror(errno));
        send_rep(rfd, REP_SKIP, -errno, 0, true, why);
        return;
    }
    struct br_ring_geometry geo = {.nslots = 2, .nworkers = 1, .batch_size = 1,
                                   .slot_bytes = UINT64_C(1) << 30, .n_ids = 1, .epochs = 1,
                                   .batches_per_epoch = 1, .end_seq = 1};
    struct br_ring_header h;
    memset(&h, 0, sizeof h);
    if (br__ring_layout(&geo, &h, msg) != 0) {
        send_rep(rfd, REP_END, -1, 0, false, msg);
        return;
    }
    h.magic = BR_RING_MAGIC;
    h.layout_major = BR_LAYOUT_MAJOR;
    h.layout_minor = BR_LAYOUT_MINOR;
    h.owner_pid = (int32_t)getpid();
    h.owner_start = br__proc_start_time(getpid());
    h.owner_uid = (uint32_t)geteuid();
    h.fail_seq = BR_NO_FAILURE;
    int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    struct flock lk = {.l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1};
    if (fd < 0 || ftruncate(fd, (off_t)h.total_bytes) != 0 ||
        pwrite(fd, &h, sizeof h, 0) != (ssize_t)sizeof h || fcntl(fd, F_OFD_SETLK, &lk) != 0) {
        snprintf(why, sizeof why, "making the sparse object: %s", strerror(errno));
        send_rep(rfd, REP_END, -errno, 0, false, why);
        return;
    }
    struct stat st0, st1;
    struct statvfs v0, v1;
    br_gen *g = NULL;
    fstat(fd, &st0);
    statvfs("/dev/shm", &v0);
    int rc = br_attach(&g, name, 0);
    fstat(fd, &st1);
    statvfs("/dev/shm", &v1);
    if (rc == 0)
        br_close(g);
    bool ok = rc == BR_EBADRING && strstr(br_last_error(NULL), name) &&
              st1.st_blocks == st0.st_blocks && v1.f_bfree == v0.f_bfree;
    snprintf(why, sizeof why,
             "br_attach of a sparse %llu-byte object returned %s (%s); its blocks went from %lld "
             "to %lld, /dev/shm's free blocks from %llu to %llu",
             (unsigned long long)h.total_bytes, br_err_name(rc), br_last_error(NULL),
             (long long)st0.st_blocks, (long long)st1.st_blocks, (unsigned long long)v0.f_bfree,
             (unsigned long long)v1.f_bfree);
    shm_unlink(name);
    close(fd);
    send_rep(rfd, REP_END, rc, 0, ok, why);
}

static void test_named_sparse_attach(void **state)
{
    (void)state;
    if (geteuid() != 0) {
        print_message("skipped: needs root to mount a small /dev/shm of its own\n");
        skip();
    }
    tu_leaks l;
    tu_leaks_begin(&l);
    const char *name = new_ring_name();
    struct rep r;
    int fd;
    pid_t c = child_fork(sparse_attach, (void *)name, &fd);
    assert_true(read_within(fd, &r, sizeof r, TU_WAIT_MS));
    close(fd);
    assert_exit_code(wait_exit(c, TU_WAIT_MS), 0, "the sparse-attach child");
    if (r.kind == REP_SKIP) {
        tu_leaks_check(&l);
        print_message("skipped: %s\n", r.msg);
        skip();
    }
    assert_int_equal(r.kind, REP_END);
    if (!r.ok)
        fail_msg("%s", r.msg);
    tu_assert_contains(r.msg, "allocated");
    tu_leaks_check(&l);
}

/* "/." and "/.." are refused by the name rule, not by shm_unlink later. */
static void test_named_dot_names(void **state)
{
    (void)state;
    static const char *const names[] = {"/.", "/.."};
    br_ring_status st;
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(br_ring_status_get(names[i], &st, NULL, 0), -EINVAL);
        tu_assert_contains(br_last_error(NULL), "must be '/' followed by");
        tu_assert_contains(attach_refused(names[i], -EINVAL, names[i]), "must be '/' followed by");
        assert_int_equal(br_ring_remove_stale(names[i]), -EINVAL);
        cli_expect((const char *const[]){"stat", names[i], NULL}, 2, out, err, CAP);
        tu_assert_contains(err, "bad ring name");
        cli_expect((const char *const[]){"gc", names[i], NULL}, 2, out, err, CAP);
        tu_assert_contains(err, "bad ring name");
    }
}

/* stat of a stale ring: its workers died with their producer and are
 * shown as dead, not by their old pids. */
static void test_named_stale_workers_dead(void **state)
{
    (void)state;
    tu_leaks l;
    tu_leaks_begin(&l);
    const char *name = new_ring_name();
    br_options opt;
    tu_shared *sh = small_ring(&opt, 64, false);
    br_ring_status st;
    br_worker_stats w[2];
    char pid[32];
    pid_t prod = producer_start(name, sh, &opt);

    /* The workers publish their pids as they start: wait for both. */
    const uint64_t deadline = tu_now_ns() + (uint64_t)TU_WAIT_MS * 1000000u;
    do {
        assert_int_equal(br_ring_status_get(name, &st, w, 2), 0);
        assert_true(tu_now_ns() < deadline);
    } while (!w[0].pid || !w[1].pid);
    const int32_t old[2] = {w[0].pid, w[1].pid};
    assert_true(st.owner_alive);

    assert_int_equal(kill(prod, SIGKILL), 0);
    wait_exit(prod, TU_WAIT_MS);
    reap_all(TU_WAIT_MS, true);
    assert_int_equal(br_ring_status_get(name, &st, w, 2), 0);
    assert_false(st.owner_alive);
    assert_int_equal(w[0].pid, 0);
    assert_int_equal(w[1].pid, 0);
    cli_expect((const char *const[]){"stat", name, NULL}, 0, out, err, CAP);
    tu_assert_contains(out, "DEAD");
    tu_assert_contains(out, "dead");
    for (int i = 0; i < 2; i++) {
        snprintf(pid, sizeof pid, " %d ", (int)old[i]);
        if (strstr(out, pid))
            fail_msg("stat of a stale ring shows dead worker pid %d:\n%s", (int)old[i], out);
    }
    cli_expect((const char *const[]){"gc", name, NULL}, 0, out, err, CAP);
    assert_false(ring_exists(name));
    tu_shared_free(sh);
    tu_leaks_check(&l);
}

/* Two gcs at once: while one holds the remover's write lock on a stale
 * ring, the other must neither call the ring served (its producer is gone)
 * nor fail: the name is being removed, and it says so. */
static void test_named_gc_beside_another_remover(void **state)
{
    (void)state;
    tu_leaks l;
    tu_leaks_begin(&l);
    const char *name = new_ring_name();
    br_options opt;
    tu_shared *sh = small_ring(&opt, 64, false);
    br_ring_status st;
    pid_t prod = producer_start(name, sh, &opt);
    char path[300];

    assert_int_equal(kill(prod, SIGKILL), 0);
    wait_exit(prod, TU_WAIT_MS);
    reap_all(TU_WAIT_MS, true);

    /* The other remover: the same write lock br_ring_remove_stale takes. */
    snprintf(path, sizeof path, "/dev/shm%s", name);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    assert_true(fd >= 0);
    struct flock lk = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1};
    assert_int_equal(fcntl(fd, F_OFD_SETLK, &lk), 0);

    assert_int_equal(br_ring_status_get(name, &st, NULL, 0), 0);
    assert_false(st.owner_alive);
    assert_int_equal(br_ring_remove_stale(name), -ENOENT);
    tu_assert_contains(br_last_error(NULL), "being removed by another process");
    cli_expect((const char *const[]){"gc", name, NULL}, 0, out, err, CAP);
    if (strstr(out, "is running"))
        fail_msg("gc beside another remover calls the stale ring's producer running:\n%s", out);
    assert_true(ring_exists(name));

    close(fd); /* the other remover gave up: ours to remove now */
    assert_int_equal(br_ring_remove_stale(name), 0);
    assert_false(ring_exists(name));
    tu_shared_free(sh);
    tu_leaks_check(&l);
}

int main(void)
{
    /* Orphans of a killed producer come to us, to be reaped and counted. */
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) {
        perror("prctl(PR_SET_CHILD_SUBREAPER)");
        return 1;
    }
    /* BR_TEST_FILTER=test_named_fifo* runs the matching cases only. */
    if (getenv("BR_TEST_FILTER"))
        cmocka_set_test_filter(getenv("BR_TEST_FILTER"));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_named_serve_attach_content, setup, teardown),
        cmocka_unit_test_setup_teardown(test_named_consume_verify_layouts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_named_plugin, setup, teardown),
        cmocka_unit_test_setup_teardown(test_named_plugin_fini, setup, teardown),
        cmocka_unit_test_setup_teardown(test_named_plugin_abi_v1, setup, teardown),
        cmocka_unit_test_setup_teardown(test_named_consumer_killed_resumes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_named_producer_killed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_named_second_consumer_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_named_stale_ring_replaced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_named_live_owner_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_named_corrupted_header, setup, teardown),
        cmocka_unit_test_setup_teardown(test_named_status_sized, setup, teardown),
        cmocka_unit_test_setup_teardown(test_named_other_uid_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_named_ls_gc, setup, teardown),
        cmocka_unit_test_setup_teardown(test_named_stat, setup, teardown),
        cmocka_unit_test_setup_teardown(test_named_stat_waiting_consumer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_named_serve_signals_clean_up, setup, teardown),
        cmocka_unit_test_setup_teardown(test_named_exit_on_detach, setup, teardown),
        cmocka_unit_test_setup_teardown(test_named_too_large, setup, teardown),
        cmocka_unit_test_setup_teardown(test_named_cli_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_named_foreign_object_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_named_fifo_blocks_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_named_other_pid_namespace, setup, teardown),
        cmocka_unit_test_setup_teardown(test_named_sparse_attach, setup, teardown),
        cmocka_unit_test_setup_teardown(test_named_dot_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_named_stale_workers_dead, setup, teardown),
        cmocka_unit_test_setup_teardown(test_named_gc_beside_another_remover, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
