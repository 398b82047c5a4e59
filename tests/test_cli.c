/* SPDX-License-Identifier: MIT */
/*
 * The batchring command's own behaviour, run as a user runs it (exec'd):
 * `consume` interrupted while it waits for a batch, `serve --max-restarts`
 * surviving more worker deaths than the library's default budget, `serve
 * --guard`, the help texts, --version, the "batchring CMD:" prefix of
 * every complaint, and JSON (ls --json, stat --json) that Python's json
 * module reads whatever bytes a ring's name holds. Rings are served by `batchring serve
 * --plugin` with the test plugin (tests/named_plugin.c), whose batches are
 * mkdata's synthetic samples, so that `consume --verify` checks every byte.
 *
 * Every wait is on an event: a pipe (the ring's name printed by serve), a
 * pidfd (a process ended), or the ring's own header read through
 * br_ring_status_get (a consumer asleep in br_next, a worker replaced), looked
 * at again every millisecond until a deadline; never a sleep standing in
 * for "long enough".
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <dirent.h>
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
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_proc.h"
#include "test_util.h"

#ifndef BR_CLI_PATH
#error "BR_CLI_PATH (the batchring binary) comes from tests/CMakeLists.txt"
#endif

/* The plugin's samples: 64 bytes each, seed 0 (consume --verify's default). */
#define SAMPLE_BYTES "64"

/* A ring name no other test or run uses; "brtest" so that the other
 * tests' /dev/shm leak checks know it is not theirs. */
static const char *new_ring_name(void)
{
    static char names[8][64];
    static unsigned n;
    char *name = names[n % 8];
    snprintf(name, sizeof names[0], "/brtest-%d-cli%u", (int)getpid(), n++);
    return name;
}

/* Starts the batchring binary with args; its stdout and stderr go to one
 * pipe, returned in *out_fd. */
static pid_t cli_spawn(const char *const *args, int *out_fd)
{
    return tu_spawn(BR_CLI_PATH, args, out_fd, out_fd);
}

/* Reads fd until end of file (the process closed it: it has exited) into
 * buf, at most TU_WAIT_MS. */
static void read_all(int fd, char *buf, size_t cap)
{
    const uint64_t deadline = tu_now_ns() + (uint64_t)TU_WAIT_MS * 1000000u;
    size_t used = 0;
    buf[0] = '\0';
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        uint64_t now = tu_now_ns();
        char tmp[1024];
        if (now >= deadline)
            fail_msg("no end of output within %d ms; so far: %s", TU_WAIT_MS, buf);
        if (poll(&p, 1, (int)((deadline - now) / 1000000u) + 1) <= 0)
            continue;
        ssize_t got = read(fd, tmp, sizeof tmp);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        size_t take = used + (size_t)got < cap ? (size_t)got : cap - 1 - used;
        memcpy(buf + used, tmp, take);
        used += take;
        buf[used] = '\0';
    }
    close(fd);
}

/* Reads one line (without '\n'), at most TU_WAIT_MS. */
static bool read_line(int fd, char *buf, size_t cap)
{
    return tu_read_line(fd, buf, cap, TU_WAIT_MS);
}

/* Waits for child pid to end and reaps it; returns its status. */
static int wait_exit(pid_t pid)
{
    return tu_wait_exit(pid, TU_WAIT_MS, NULL);
}

/* Runs the binary to its end: exit code, output (stdout and stderr). */
static int cli_run(const char *const *args, char *out, size_t cap)
{
    int fd;
    pid_t pid = cli_spawn(args, &fd);
    read_all(fd, out, cap);
    int status = wait_exit(pid);
    if (!WIFEXITED(status))
        fail_msg("batchring %s ended by signal %d; output: %s", args[0], WTERMSIG(status), out);
    return WEXITSTATUS(status);
}

struct server {
    pid_t pid;
    int out; /* the rest of its output */
    const char *name;
};

/* `batchring serve --name NAME --plugin ... args`: returns once the ring
 * is ready (serve printed its name). */
static void serve_start(struct server *s, const char *name, const char *plugin_arg,
                        const char *const *args)
{
    const char *argv[32] = {"serve",        "--name", name,       "--plugin", BR_TEST_PLUGIN,
                            "--plugin-arg", plugin_arg};
    size_t n = 7;
    char line[512];
    while (*args) {
        assert_true(n < sizeof argv / sizeof argv[0] - 1);
        argv[n++] = *args++;
    }
    argv[n] = NULL;
    s->pid = cli_spawn(argv, &s->out);
    s->name = name;
    /* A name may hold newlines (test_cli_json_any_name): it spans as many
     * lines more. */
    size_t used = 0;
    bool got = true;
    for (const char *nl = name; got && nl; nl = strchr(nl + 1, '\n')) {
        got = read_line(s->out, line + used, sizeof line - used);
        used += strlen(line + used);
        if (used + 1 < sizeof line)
            line[used++] = '\n';
    }
    line[used ? used - 1 : 0] = '\0';
    if (!got) {
        char rest[4096];
        read_all(s->out, rest, sizeof rest);
        fail_msg("batchring serve --name %s printed no ring name: %s", name, rest);
    }
    assert_string_equal(line, name);
}

/* SIGTERMs the n servers: each must exit 0, and none may leave a process
 * behind. */
static void serve_stop_all(struct server *s, size_t n)
{
    char rest[8192];
    for (size_t i = 0; i < n; i++)
        assert_int_equal(kill(s[i].pid, SIGTERM), 0);
    for (size_t i = 0; i < n; i++) {
        read_all(s[i].out, rest, sizeof rest);
        int status = wait_exit(s[i].pid);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            fail_msg("batchring serve exited with status 0x%x after SIGTERM: %s", status, rest);
    }
    assert_int_equal(tu_descendant_count(NULL, 0), 0);
}

static void serve_stop(struct server *s)
{
    serve_stop_all(s, 1);
}

/* Reads the ring's status until pred says yes, every millisecond, at most
 * TU_WAIT_MS. */
typedef bool (*status_pred)(const br_ring_status *rs, const br_worker_stats *w, uint64_t arg);

static void await_status(const char *name, status_pred pred, uint64_t arg, const char *what,
                         br_ring_status *rs, br_worker_stats *w)
{
    const uint64_t deadline = tu_now_ns() + (uint64_t)TU_WAIT_MS * 1000000u;
    for (;;) {
        int rc = br_ring_status_get(name, rs, w, 1);
        if (rc)
            fail_msg("br_ring_status_get %s: %s: %s", name, br_err_name(rc), br_last_error(NULL));
        if (pred(rs, w, arg))
            return;
        if (tu_now_ns() >= deadline)
            fail_msg("%s: not within %d ms", what, TU_WAIT_MS);
        poll(NULL, 0, 1);
    }
}

static bool consumer_waits(const br_ring_status *rs, const br_worker_stats *w, uint64_t arg)
{
    (void)w;
    (void)arg;
    return rs->consumer_pid != 0 && rs->consumer_waiting_seq != BR_NOT_WAITING;
}

/*
 * consume, interrupted while it is asleep in br_next waiting for a batch
 * that never comes (the plugin blocks from batch 0 on), exits 0 and says
 * "interrupted", as its help promises; it used to exit 1 with FAILED,
 * since the last br_next had returned -ETIMEDOUT.
 */
static void test_cli_consume_interrupted_while_waiting(void **state)
{
    (void)state;
    static const int sigs[] = {SIGINT, SIGTERM};
    const char *name = new_ring_name();
    struct server s;
    serve_start(&s, name, "samples=100,bytes=" SAMPLE_BYTES ",block=0",
                (const char *const[]){"--batch", "4", "--workers", "1", "--slot-bytes", "4K",
                                      NULL});
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        br_ring_status rs;
        char out[4096];
        int fd;
        pid_t c = cli_spawn((const char *const[]){"consume", "--name", name, "-q", NULL}, &fd);
        await_status(name, consumer_waits, 0, "consume waiting in br_next", &rs, NULL);
        assert_int_equal(rs.consumer_pid, c);
        assert_int_equal(rs.consumer_waiting_seq, 0);
        assert_int_equal(kill(c, sigs[i]), 0);
        read_all(fd, out, sizeof out);
        int status = wait_exit(c);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            fail_msg("consume interrupted by %s while waiting: status 0x%x (exit %d): %s",
                     strsignal(sigs[i]), status, WIFEXITED(status) ? WEXITSTATUS(status) : -1,
                     out);
        if (strstr(out, "FAILED"))
            fail_msg("consume interrupted by %s says FAILED: %s", strsignal(sigs[i]), out);
        tu_assert_contains(out, "interrupted");
    }
    serve_stop(&s);
}

/* arg: the deaths so far in the low half, the last victim's pid in the
 * high half. */
static bool worker_replaced(const br_ring_status *rs, const br_worker_stats *w, uint64_t arg)
{
    return rs->restarts >= (uint32_t)arg && w[0].pid > 0 && w[0].pid != (int32_t)(arg >> 32) &&
           rs->slots_ready == rs->slots;
}

static uint64_t replaced_arg(uint32_t deaths, int32_t victim)
{
    return (uint64_t)(uint32_t)victim << 32 | deaths;
}

/* Kills serve's only worker `deaths` times, each time once its
 * replacement runs and has filled the ring again. */
static void kill_worker_times(const char *name, uint32_t deaths)
{
    br_ring_status rs;
    br_worker_stats w;
    await_status(name, worker_replaced, 0, "the ring filled", &rs, &w);
    for (uint32_t k = 1; k <= deaths; k++) {
        int32_t victim = w.pid;
        assert_int_equal(tu_kill_descendant(victim, SIGKILL), 1);
        await_status(name, worker_replaced, replaced_arg(k, victim), "a replacement worker", &rs,
                     &w);
        assert_int_not_equal(w.pid, victim);
        assert_int_equal(rs.restarts, k);
    }
}

/*
 * serve --max-restarts N survives N worker deaths, more than the default
 * budget of 3 that used to end an endless serve session; every batch is
 * still delivered byte-exact. "unlimited" is accepted too, and the
 * default still fails the run at the 4th death.
 */
static void test_cli_serve_max_restarts(void **state)
{
    (void)state;
    const char *verify[] = {"consume", "--name", NULL, "--verify", "--sample-bytes", SAMPLE_BYTES,
                            "--batches", "60", "-q", NULL};
    char out[8192];
    int code;

    for (int unlimited = 0; unlimited < 2; unlimited++) {
        const char *name = new_ring_name();
        struct server s;
        serve_start(&s, name, "samples=100,bytes=" SAMPLE_BYTES,
                    (const char *const[]){"--batch", "4", "--workers", "1", "--slots", "4",
                                          "--slot-bytes", "4K", "--max-restarts",
                                          unlimited ? "unlimited" : "5", NULL});
        kill_worker_times(name, 5);
        verify[2] = name;
        code = cli_run(verify, out, sizeof out);
        if (code != 0)
            fail_msg("consume --verify after 5 worker deaths with --max-restarts %s: exit %d: %s",
                     unlimited ? "unlimited" : "5", code, out);
        tu_assert_contains(out, "60 batches");
        tu_assert_contains(out, "every sample verified");
        serve_stop(&s);
    }

    /* The default budget: the 4th death fails the run, named. */
    {
        const char *name = new_ring_name();
        struct server s;
        serve_start(&s, name, "samples=100,bytes=" SAMPLE_BYTES,
                    (const char *const[]){"--batch", "4", "--workers", "1", "--slots", "4",
                                          "--slot-bytes", "4K", NULL});
        kill_worker_times(name, 3);
        {
            br_ring_status rs;
            br_worker_stats w;
            await_status(name, worker_replaced, 3, "the ring filled", &rs, &w);
            assert_int_equal(tu_kill_descendant(w.pid, SIGKILL), 1);
        }
        verify[2] = name;
        code = cli_run(verify, out, sizeof out);
        assert_int_equal(code, 1);
        tu_assert_contains(out, "BR_EWORKER");
        tu_assert_contains(out, "max_restarts is 3");
        /* serve ends by itself when its consumer stops on an error. */
        read_all(s.out, out, sizeof out);
        int status = wait_exit(s.pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(tu_descendant_count(NULL, 0), 0);
    }
}

/* serve refuses a bad --max-restarts on the command line (exit 2). */
static void test_cli_serve_max_restarts_bad(void **state)
{
    (void)state;
    static const char *const bad[] = {"-1", "abc", "4294967296", ""};
    char out[4096];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int code = cli_run((const char *const[]){"serve", "--name", "/brtest-cli-never",
                                                 "--plugin", BR_TEST_PLUGIN, "--batch", "4",
                                                 "--workers", "1", "--max-restarts", bad[i],
                                                 NULL},
                           out, sizeof out);
        if (code != 2)
            fail_msg("serve --max-restarts '%s': exit %d, expected 2: %s", bad[i], code, out);
        tu_assert_contains(out, "max-restarts");
    }
}

/* Does this process map PROT_NONE pages of `what` (guard pages)? */
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
 * serve --guard: a guard ring, attached by a consumer that maps the guard
 * pages PROT_NONE too, delivers every batch byte-exact (consume --verify).
 */
static void test_cli_serve_guard_attach(void **state)
{
    (void)state;
    const char *name = new_ring_name();
    struct server s;
    br_gen *g;
    br_batch b;
    br_ring_status rs;
    char out[8192];
    serve_start(&s, name, "samples=100,bytes=" SAMPLE_BYTES,
                (const char *const[]){"--batch", "5", "--workers", "2", "--slots", "4",
                                      "--slot-bytes", "320", "--guard", NULL});
    assert_int_equal(br_ring_status_get(name, &rs, NULL, 0), 0);
    /* 4 slots of one data page and one guard page each. */
    assert_true(rs.total_bytes >= 4 * 2 * (uint64_t)sysconf(_SC_PAGESIZE));
    int rc = br_attach(&g, name, TU_WAIT_MS);
    if (rc)
        fail_msg("br_attach %s: %s: %s", name, br_err_name(rc), br_last_error(NULL));
    assert_true(maps_guard(name));
    for (uint64_t i = 0; i < 30; i++) {
        assert_int_equal(br_next(g, &b), 0);
        assert_int_equal(b.seq, i);
        assert_int_equal(b.size, 5 * 64);
    }
    assert_int_equal(br_close(g), 0);
    assert_false(maps_guard(name));
    int code = cli_run((const char *const[]){"consume", "--name", name, "--verify",
                                             "--sample-bytes", SAMPLE_BYTES, "--batches", "50",
                                             "-q", NULL},
                       out, sizeof out);
    if (code != 0)
        fail_msg("consume --verify of a guard ring: exit %d: %s", code, out);
    tu_assert_contains(out, "every sample verified");
    serve_stop(&s);
}

/* serve --hold H: an attached consumer holds H batches, releases them in
 * any order, and the (H+1)th br_next without a release is BR_EHELD. */
static void test_cli_serve_hold(void **state)
{
    (void)state;
    const char *name = new_ring_name();
    struct server s;
    br_gen *g;
    br_batch b[3], extra;
    serve_start(&s, name, "samples=100,bytes=" SAMPLE_BYTES,
                (const char *const[]){"--batch", "5", "--workers", "2", "--slot-bytes", "320",
                                      "--hold", "3", NULL});
    int rc = br_attach(&g, name, TU_WAIT_MS);
    if (rc)
        fail_msg("br_attach %s: %s: %s", name, br_err_name(rc), br_last_error(NULL));
    for (uint64_t i = 0; i < 3; i++) {
        assert_int_equal(br_next(g, &b[i]), 0);
        assert_int_equal(b[i].seq, i);
    }
    assert_int_equal(br_next(g, &extra), BR_EHELD);
    assert_int_equal(br_release(g, &b[1]), 0);
    assert_int_equal(br_next(g, &extra), 0);
    assert_int_equal(extra.seq, 3);
    assert_int_equal(br_close(g), 0);
    serve_stop(&s);
}

/* The help texts name real things: no enum constant leaked into them. */
static void test_cli_help_texts(void **state)
{
    (void)state;
    static const char *const cmds[] = {"serve", "consume"};
    char out[16384];
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        assert_int_equal(cli_run((const char *const[]){cmds[i], "--help", NULL}, out, sizeof out),
                         0);
        if (strstr(out, "OPT_"))
            fail_msg("batchring %s --help names an option constant: %s", cmds[i], out);
    }
    tu_assert_contains(out, "interrupted");
    assert_int_equal(cli_run((const char *const[]){"serve", "--help", NULL}, out, sizeof out), 0);
    tu_assert_contains(out, "O_DIRECT");
    tu_assert_contains(out, "--max-restarts");
    tu_assert_contains(out, "--guard");
}

/*
 * serve --help says what the automatic depth picks (2 x workers, or as many
 * slots as fit in 8 MiB when that is more, at most 128; 16 MiB and 256
 * where the workers hold every CPU); serve's startup
 * line shows that it picks just that.
 */
static void test_cli_serve_auto_slots(void **state)
{
    (void)state;
    static const struct {
        const char *slot_bytes, *workers, *slots;
    } cases[] = {
        {"4K", "1", " 128 slots x "}, /* 1024 fit: capped at 128 */
        {"512K", "1", " 16 slots x "}, /* 16 fit, more than 2 */
        {"1M", "3", NULL},             /* 8 fit, more than 2 x 3 (16 on 3 CPUs or fewer) */
        {"2M", "5", " 10 slots x "},   /* 4 fit, fewer than 2 x 5 */
    };
    char out[16384], line[1024];
    assert_int_equal(cli_run((const char *const[]){"serve", "--help", NULL}, out, sizeof out), 0);
    tu_assert_contains(out, "2 x workers, or as many slots as\n"
                            "                      fit in 8 MiB when that is more, at most 128; 16 MiB\n"
                            "                      and 256 when the workers hold every CPU");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct server s;
        serve_start(&s, new_ring_name(), "samples=100,bytes=" SAMPLE_BYTES,
                    (const char *const[]){"--batch", "4", "--workers", cases[i].workers,
                                          "--slot-bytes", cases[i].slot_bytes, NULL});
        assert_true(read_line(s.out, line, sizeof line));
        /* 3 workers of 1 MiB: 16 MiB of ring where they hold every CPU. */
        tu_assert_contains(line, cases[i].slots ? cases[i].slots
                                 : sysconf(_SC_NPROCESSORS_ONLN) <= 3 ? " 16 slots x "
                                                                      : " 8 slots x ");
        serve_stop(&s);
    }
}

/* --version and -V print the library's version; the usage shows both. */
static void test_cli_version(void **state)
{
    (void)state;
    char out[8192], want[64];
    snprintf(want, sizeof want, "batchring %s\n", br_version_string());
    assert_int_equal(cli_run((const char *const[]){"--version", NULL}, out, sizeof out), 0);
    assert_string_equal(out, want);
    assert_int_equal(cli_run((const char *const[]){"-V", NULL}, out, sizeof out), 0);
    assert_string_equal(out, want);
    assert_int_equal(cli_run((const char *const[]){"--help", NULL}, out, sizeof out), 0);
    tu_assert_contains(out, "-V | --version");
}

/* Every complaint names the program and the subcommand, getopt's own too;
 * a bad command line exits 2. */
static void test_cli_error_prefix(void **state)
{
    (void)state;
    static const struct {
        const char *args[5];
        const char *starts;
    } cases[] = {
        {{"ls", "--bogus"}, "batchring ls: unrecognized option '--bogus'"},
        {{"gc", "--json"}, "batchring gc: unrecognized option '--json'"},
        {{"stat", "/a/b"}, "batchring stat: bad ring name '/a/b'"},
        {{"stat"}, "batchring stat: which ring?"},
        {{"serve", "--batch", "x"}, "batchring serve: bad value 'x' for --batch"},
        {{"consume"}, "batchring consume: --name /NAME is required"},
        {{"soak", "--seconds", "0"}, "batchring soak: "},
        {{"nosuchcommand"}, "batchring: unknown command 'nosuchcommand'"},
    };
    char out[8192];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int code = cli_run(cases[i].args, out, sizeof out);
        if (code != 2 || strncmp(out, cases[i].starts, strlen(cases[i].starts)))
            fail_msg("batchring %s %s: exit %d, output does not start with \"%s\": %s",
                     cases[i].args[0], cases[i].args[1] ? cases[i].args[1] : "", code,
                     cases[i].starts, out);
    }
}

/*
 * Runs python3 with script on input (as stdin); its stdout and stderr go
 * to out. Returns its exit status, or -1 when there is no python3.
 */
static int python_run(const char *script, const char *input, char *out, size_t cap)
{
    int in = memfd_create("json", MFD_CLOEXEC), pipefd[2];
    size_t len = strlen(input);
    assert_true(in >= 0);
    assert_int_equal(write(in, input, len), (ssize_t)len);
    assert_int_equal(lseek(in, 0, SEEK_SET), 0);
    assert_int_equal(pipe2(pipefd, O_CLOEXEC), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(in, STDIN_FILENO);
        dup2(pipefd[1], STDOUT_FILENO);
        dup2(pipefd[1], STDERR_FILENO);
        execlp("python3", "python3", "-c", script, (char *)NULL);
        _exit(127);
    }
    tu_child_track(pid);
    close(in);
    close(pipefd[1]);
    read_all(pipefd[0], out, cap);
    int status = wait_exit(pid);
    if (!WIFEXITED(status))
        fail_msg("python3 ended by signal %d: %s", WTERMSIG(status), out);
    return WEXITSTATUS(status) == 127 && !out[0] ? -1 : WEXITSTATUS(status);
}

/*
 * For every object of the JSON on stdin (one object, or an array of them)
 * prints "RAW UTF8 CHECK": RAW the name's exact bytes in hex (from
 * name_hex when there is one, else the name as UTF-8), UTF8 the name
 * string as UTF-8 in hex, CHECK "ok" when every counter is an integer,
 * every rate a number, and the producer is alive and running. json.loads is strict: a raw control character in a
 * string, a bad escape or trailing text fails it.
 */
static const char json_check_py[] =
    "import json, sys\n"
    "d = json.loads(sys.stdin.buffer.read().decode('utf-8'))\n"
    "for o in d if isinstance(d, list) else [d]:\n"
    "    raw = bytes.fromhex(o['name_hex']) if 'name_hex' in o else o['name'].encode('utf-8')\n"
    "    ints = all(type(o[k]) is int for k in ('total_bytes', 'n_ids', 'owner_pid', 'claimed',\n"
    "               'consumer_stall_ns', 'slots', 'batches_per_epoch'))\n"
    "    nums = all(type(o[k]) in (int, float) for k in ('window_s', 'gb_per_s') if k in o)\n"
    "    live = o['owner_alive'] is True and o['state'] == 'running'\n"
    "    print(raw.hex(), o['name'].encode('utf-8').hex(), 'ok' if ints and nums and live else\n"
    "          'BAD')\n";

static void hex_of(const char *s, char *out)
{
    for (; *s; s++, out += 2)
        sprintf(out, "%02x", (unsigned char)*s);
    *out = '\0';
}

/*
 * ls --json and stat --json are valid JSON (Python's json module reads
 * them) for any ring name: a quote, a backslash, a tab, a newline, UTF-8
 * (é, 漢) and a byte that is not UTF-8. The name reads back exactly; the
 * invalid byte as U+FFFD, with the exact bytes in name_hex.
 */
static void test_cli_json_any_name(void **state)
{
    (void)state;
    static const struct {
        const char *suffix;
        const char *utf8_suffix; /* what the name string holds, in hex */
    } weird[] = {
        {"-q\"uote", NULL},
        {"-back\\slash", NULL},
        {"-tab\there", NULL},
        {"-new\nline", NULL},
        {"-\xc3\xa9\xe6\xbc\xa2", NULL},
        /* 0xff never occurs in UTF-8; 0xc3 without its second byte is cut. */
        {"-bad\xff\xc3", "2d626164efbfbdefbfbd"},
    };
    enum { N = sizeof weird / sizeof weird[0] };
    static char names[N][96], out[1 << 20], py[1 << 20], ls[1 << 20];
    struct server s[N];

    if (python_run("pass", "", py, sizeof py) != 0) {
        print_message("no python3 to check JSON with: skipped\n");
        skip();
        return;
    }
    for (size_t i = 0; i < N; i++) {
        snprintf(names[i], sizeof names[i], "%s%s", new_ring_name(), weird[i].suffix);
        serve_start(
            &s[i], names[i], "samples=100,bytes=" SAMPLE_BYTES,
            (const char *const[]){"--batch", "4", "--workers", "1", "--slot-bytes", "4K", NULL});
    }
    int code = cli_run((const char *const[]){"ls", "--json", NULL}, out, sizeof out);
    if (code != 0)
        fail_msg("ls --json: exit %d: %s", code, out);
    if (python_run(json_check_py, out, py, sizeof py) != 0)
        fail_msg("ls --json is not the JSON expected: %s\nits output: %s", py, out);
    snprintf(ls, sizeof ls, "%s", py);
    for (size_t i = 0; i < N; i++) {
        char raw[256], utf8[256], line[600];
        hex_of(names[i], raw);
        if (weird[i].utf8_suffix) {
            /* The name's prefix is ASCII, the same as UTF-8. */
            char prefix[96];
            snprintf(prefix, sizeof prefix, "%.*s",
                     (int)(strlen(names[i]) - strlen(weird[i].suffix)), names[i]);
            hex_of(prefix, utf8);
            strcat(utf8, weird[i].utf8_suffix);
        } else {
            strcpy(utf8, raw);
        }
        snprintf(line, sizeof line, "%s %s ok\n", raw, utf8);
        tu_assert_contains(ls, line);
        code = cli_run((const char *const[]){"stat", "--json", names[i], NULL}, out, sizeof out);
        if (code != 0)
            fail_msg("stat --json: exit %d: %s", code, out);
        if (python_run(json_check_py, out, py, sizeof py) != 0)
            fail_msg("stat --json is not the JSON expected: %s\nits output: %s", py, out);
        assert_string_equal(py, line);
    }
    serve_stop_all(s, N);
}

/* Descriptors this process has open. */
static int open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int n = 0;
    assert_non_null(d);
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n - 1; /* opendir's own */
}

/* Where pidfd_open is refused (ENOSYS, seccomp), tu_wait_exit and tu_run
 * poll waitpid against their deadline (test_proc.c): forced here. A run
 * that ends is reaped with its status; one that does not (serve runs until
 * told to stop) is given up at the deadline, still running, and tu_run
 * closes its pipes then (the caller fails the test: they must not leak
 * into the next one). Then both servers stop cleanly on SIGTERM. */
static void test_cli_waits_bounded_without_pidfd(void **state)
{
    (void)state;
    char out[8192], err[8192], want[64];
    const char *name = new_ring_name(), *name2 = new_ring_name();
    const unsigned polled = tu_proc_polled_waits();
    const uint64_t deadline = tu_now_ns() + (uint64_t)TU_WAIT_MS * 1000000u;
    struct server s;
    const char *serve_args[] = {"serve", "--name", NULL, "--plugin", BR_TEST_PLUGIN,
                                "--plugin-arg", "samples=100,bytes=" SAMPLE_BYTES,
                                "--batch", "4", "--workers", "1", "--slot-bytes", "4K", NULL};
    br_ring_status rs;
    pid_t pid;
    int status, fds;

    tu_proc_use_pidfd(false);
    snprintf(want, sizeof want, "batchring %s\n", br_version_string());
    assert_int_equal(cli_run((const char *const[]){"--version", NULL}, out, sizeof out), 0);
    assert_string_equal(out, want);
    status = tu_run(BR_CLI_PATH, (const char *const[]){"--version", NULL}, out, err, sizeof out,
                    TU_WAIT_MS);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_string_equal(out, want);
    assert_int_equal(tu_proc_polled_waits(), polled + 2);

    serve_start(&s, name, "samples=100,bytes=" SAMPLE_BYTES, serve_args + 7);
    assert_int_equal(tu_wait_exit_within(s.pid, 50, &status), -ETIMEDOUT);
    assert_true(tu_is_live_descendant(s.pid));

    fds = open_fds();
    serve_args[2] = name2;
    assert_int_equal(tu_run_within(BR_CLI_PATH, serve_args, out, err, sizeof out, 50, &pid, &status),
                     -ETIMEDOUT);
    assert_int_equal(open_fds(), fds);
    assert_true(tu_is_live_descendant(pid));
    /* Its ring is up, so its SIGTERM handler is: a clean stop. */
    while (br_ring_status_get(name2, &rs, NULL, 0) != 0) {
        if (tu_now_ns() >= deadline)
            fail_msg("%s did not come up within %d ms", name2, TU_WAIT_MS);
        poll(NULL, 0, 1);
    }
    assert_int_equal(kill(pid, SIGTERM), 0);
    status = tu_wait_exit(pid, TU_WAIT_MS, "batchring serve");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("batchring serve %s: status 0x%x after SIGTERM", name2, status);
    serve_stop(&s);
    assert_true(tu_proc_polled_waits() >= polled + 5);
    tu_proc_use_pidfd(true);
}

static int teardown(void **state)
{
    tu_proc_use_pidfd(true);
    tu_children_kill(true);
    return tu_teardown(state);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cli_consume_interrupted_while_waiting, tu_setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_cli_serve_max_restarts, tu_setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli_serve_max_restarts_bad, tu_setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli_serve_guard_attach, tu_setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli_serve_hold, tu_setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli_help_texts, tu_setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli_serve_auto_slots, tu_setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli_version, tu_setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli_waits_bounded_without_pidfd, tu_setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli_error_prefix, tu_setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli_json_any_name, tu_setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
