/* SPDX-License-Identifier: MIT */
/*
 * Worker placement: br_options.cpus and BR_CPUS. The list syntax and the
 * "auto" rule are checked against a sysfs tree of our own (a temporary
 * directory with online CPUs and caches as the kernel lays them out); the
 * pinning itself on real workers, through the Cpus_allowed_list the kernel
 * reports in /proc/PID/status of each worker pid. Pinning needs two online
 * CPUs to show anything: on one, those cases are skipped, visibly.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "producer/cpus.h"
#include "ring/error.h"
#include "test_util.h"

/* ---- a sysfs tree of our own ---- */

static void write_file(const char *dir, const char *rel, const char *text)
{
    char path[512], sub[512];
    FILE *f;
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    /* Every directory on the way. */
    for (char *p = strchr(path + strlen(dir) + 1, '/'); p; p = strchr(p + 1, '/')) {
        snprintf(sub, sizeof sub, "%.*s", (int)(p - path), path);
        mkdir(sub, 0700);
    }
    f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "%s\n", text);
    assert_int_equal(fclose(f), 0);
}

/* `ncpu` CPUs online, each with an L1 data and instruction cache of its
 * own, an L2 of its own and an L3 shared by the CPUs of llc[cpu] (a
 * list). */
static void fake_sysfs(char *dir, size_t cap, int ncpu, const char *const *llc)
{
    char online[32], rel[128], own[16];
    snprintf(dir, cap, "%s/brtest-cpus-%d-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
             (int)getpid());
    assert_non_null(mkdtemp(dir));
    snprintf(online, sizeof online, "0-%d", ncpu - 1);
    write_file(dir, "online", online);
    for (int c = 0; c < ncpu; c++) {
        static const char *const type[] = {"Data", "Instruction", "Unified", "Unified"};
        static const char *const level[] = {"1", "1", "2", "3"};
        static const char *const size[] = {"48K", "32K", "2048K", "260M"};
        snprintf(own, sizeof own, "%d", c);
        for (int i = 0; i < 4; i++) {
            snprintf(rel, sizeof rel, "cpu%d/cache/index%d/type", c, i);
            write_file(dir, rel, type[i]);
            snprintf(rel, sizeof rel, "cpu%d/cache/index%d/level", c, i);
            write_file(dir, rel, level[i]);
            snprintf(rel, sizeof rel, "cpu%d/cache/index%d/size", c, i);
            write_file(dir, rel, size[i]);
            snprintf(rel, sizeof rel, "cpu%d/cache/index%d/shared_cpu_list", c, i);
            write_file(dir, rel, i == 3 ? llc[c] : own);
        }
    }
}

static void remove_tree(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static const char *plan_set(const struct br_cpu_plan *p, uint32_t i, char *buf, size_t cap)
{
    return br__cpu_set_format(buf, cap, &p->sets[i]);
}

/* ---- parsing ---- */

static void test_cpus_parse_good(void **state)
{
    static const char *const llc[] = {"0-7", "0-7", "0-7", "0-7", "0-7", "0-7", "0-7", "0-7"};
    char dir[256], msg[BR_MSG_CAP], buf[64];
    struct br_cpu_plan p;
    (void)state;
    fake_sysfs(dir, sizeof dir, 8, llc);

    assert_int_equal(br__cpu_plan_make(&p, NULL, "cpus", dir, 0, msg), 0);
    assert_int_equal(p.n, 0);
    assert_int_equal(br__cpu_plan_make(&p, "", "cpus", dir, 0, msg), 0);
    assert_int_equal(p.n, 0);

    /* Round-robin follows the list's order, ranges ascending. */
    assert_int_equal(br__cpu_plan_make(&p, "6,0-2,7", "cpus", dir, 0, msg), 0);
    assert_int_equal(p.n, 5);
    assert_string_equal(plan_set(&p, 0, buf, sizeof buf), "6");
    assert_string_equal(plan_set(&p, 1, buf, sizeof buf), "0");
    assert_string_equal(plan_set(&p, 2, buf, sizeof buf), "1");
    assert_string_equal(plan_set(&p, 3, buf, sizeof buf), "2");
    assert_string_equal(plan_set(&p, 4, buf, sizeof buf), "7");
    for (uint32_t i = 0; i < p.n; i++)
        assert_int_equal(CPU_COUNT(&p.sets[i]), 1);
    br__cpu_plan_free(&p);

    assert_int_equal(br__cpu_plan_make(&p, "3-3", "cpus", dir, 0, msg), 0);
    assert_int_equal(p.n, 1);
    assert_string_equal(plan_set(&p, 0, buf, sizeof buf), "3");
    br__cpu_plan_free(&p);

    /* The formatter writes what the parser reads. */
    {
        cpu_set_t s;
        CPU_ZERO(&s);
        CPU_SET(0, &s);
        CPU_SET(1, &s);
        CPU_SET(2, &s);
        CPU_SET(5, &s);
        CPU_SET(7, &s);
        CPU_SET(8, &s);
        assert_string_equal(br__cpu_set_format(buf, sizeof buf, &s), "0-2,5,7-8");
    }
    remove_tree(dir);
}

static void expect_refused(const char *dir, const char *text, const char *want)
{
    char msg[BR_MSG_CAP];
    struct br_cpu_plan p;
    msg[0] = '\0';
    assert_int_equal(br__cpu_plan_make(&p, text, "cpus", dir, 0, msg), -EINVAL);
    assert_int_equal(p.n, 0);
    assert_null(p.sets);
    if (!strstr(msg, want))
        fail_msg("cpus '%s': message \"%s\" lacks \"%s\"", text, msg, want);
}

static void test_cpus_parse_bad(void **state)
{
    static const char *const llc[] = {"0-3", "0-3", "0-3", "0-3"};
    char dir[256];
    (void)state;
    fake_sysfs(dir, sizeof dir, 4, llc);
    expect_refused(dir, "0-x", "cpus '0-x': 'x' is not a CPU number");
    expect_refused(dir, "x", "'x' is not a CPU number");
    expect_refused(dir, "-1", "'' is not a CPU number");
    expect_refused(dir, "1 ", "'1 ' is not a CPU number");
    expect_refused(dir, "0,,1", "an empty entry");
    expect_refused(dir, "0,", "an empty entry");
    expect_refused(dir, "3-1", "the range 3-1 runs backwards");
    expect_refused(dir, "autox", "'autox' is not a CPU number");
    /* Out of range: beyond what the machine has online, and beyond any
     * CPU number a cpu_set_t can hold. */
    expect_refused(dir, "0-4", "CPU 4 is not online (online: 0-3)");
    expect_refused(dir, "2,9", "CPU 9 is not online (online: 0-3)");
    expect_refused(dir, "100000", "CPU 100000 is beyond the largest CPU number");
    remove_tree(dir);
}

/* Through br_open on this machine: the message names the option or the
 * variable it came from. */
static void test_cpus_open_refuses(void **state)
{
    uint64_t *ids = tu_ids_identity(16);
    char want[128];
    br_options o;
    br_gen *g = NULL;
    (void)state;
    tu_leaks leaks;
    tu_leaks_begin(&leaks);
    tu_shared *sh = tu_shared_new();
    assert_int_equal(br_options_init(&o), 0);
    o.batch_size = 2;
    o.slot_bytes = 64;
    tu_shared_config(sh, ids, NULL, 16, &o, 8);

    o.cpus = "0-x";
    assert_int_equal(br_open(&g, tu_loader, sh, ids, NULL, 16, &o), -EINVAL);
    assert_null(g);
    assert_non_null(strstr(br_last_error(NULL), "cpus '0-x': 'x' is not a CPU number"));

    /* The largest CPU number a cpu_set_t holds is not online here. */
    snprintf(want, sizeof want, "CPU %d is not online", CPU_SETSIZE - 1);
    o.cpus = "1023";
    assert_int_equal(br_open(&g, tu_loader, sh, ids, NULL, 16, &o), -EINVAL);
    assert_non_null(strstr(br_last_error(NULL), want));

    o.cpus = NULL;
    assert_int_equal(setenv("BR_CPUS", "1-0", 1), 0);
    assert_int_equal(br_open(&g, tu_loader, sh, ids, NULL, 16, &o), -EINVAL);
    unsetenv("BR_CPUS");
    assert_non_null(strstr(br_last_error(NULL), "BR_CPUS '1-0': the range 1-0 runs backwards"));

    /* Checked with no worker too: a bad list is a bad option. */
    o.workers = 0;
    o.cpus = "a";
    assert_int_equal(br_open(&g, tu_loader, sh, ids, NULL, 16, &o), -EINVAL);
    tu_release(ids);
    tu_shared_free(sh);
    tu_leaks_check(&leaks);
}

/* ---- auto ---- */

static void test_cpus_auto_rule(void **state)
{
    static const char *const two[] = {"0-1", "0-1", "2-3", "2-3"};
    static const char *const one[] = {"0-3", "0-3", "0-3", "0-3"};
    char dir[256], msg[BR_MSG_CAP], buf[64];
    struct br_cpu_plan p;
    (void)state;

    /* Two LLC domains: the workers stay in the trainer's. */
    fake_sysfs(dir, sizeof dir, 4, two);
    assert_int_equal(br__cpu_plan_make(&p, "auto", "BR_CPUS", dir, 2, msg), 0);
    assert_int_equal(p.n, 1);
    assert_string_equal(plan_set(&p, 0, buf, sizeof buf), "2-3");
    br__cpu_plan_free(&p);
    assert_int_equal(br__cpu_plan_make(&p, "auto", "BR_CPUS", dir, 1, msg), 0);
    assert_int_equal(p.n, 1);
    assert_string_equal(plan_set(&p, 0, buf, sizeof buf), "0-1");
    br__cpu_plan_free(&p);
    /* A domain's CPUs that are offline are left out. */
    write_file(dir, "online", "0-2");
    assert_int_equal(br__cpu_plan_make(&p, "auto", "BR_CPUS", dir, 2, msg), 0);
    assert_int_equal(p.n, 1);
    assert_string_equal(plan_set(&p, 0, buf, sizeof buf), "2");
    br__cpu_plan_free(&p);
    /* No cache information for the trainer's CPU: not pinned. */
    assert_int_equal(br__cpu_plan_make(&p, "auto", "BR_CPUS", dir, 9, msg), 0);
    assert_int_equal(p.n, 0);
    remove_tree(dir);

    /* One domain: nothing to choose, not pinned. */
    fake_sysfs(dir, sizeof dir, 4, one);
    assert_int_equal(br__cpu_plan_make(&p, "auto", "BR_CPUS", dir, 2, msg), 0);
    assert_int_equal(p.n, 0);
    assert_null(p.sets);
    remove_tree(dir);
}

/* ---- the inner cache (BR_SLOTS_AUTO's bound) ---- */

static void test_cpus_inner_cache(void **state)
{
    static const char *const one[] = {"0-1", "0-1"};
    char dir[256];
    (void)state;

    fake_sysfs(dir, sizeof dir, 2, one);
    /* The largest data cache below the last level: the L2, not the L1d,
     * the instruction cache or the L3. */
    assert_int_equal(br__cpu_inner_cache_bytes(dir, 1), 2048u << 10);
    /* Sizes in M are read as such. */
    write_file(dir, "cpu1/cache/index2/size", "1M");
    assert_int_equal(br__cpu_inner_cache_bytes(dir, 1), 1u << 20);
    /* Without an L3 the L2 is the last level: the L1d is what lies below. */
    write_file(dir, "cpu0/cache/index3/type", "Instruction");
    assert_int_equal(br__cpu_inner_cache_bytes(dir, 0), 48u << 10);
    /* No size, no such CPU: unknown. */
    write_file(dir, "cpu1/cache/index2/size", "");
    write_file(dir, "cpu1/cache/index0/size", "");
    assert_int_equal(br__cpu_inner_cache_bytes(dir, 1), 0);
    assert_int_equal(br__cpu_inner_cache_bytes(dir, 7), 0);
    remove_tree(dir);
}

/* ---- real workers ---- */

/* The kernel's Cpus_allowed_list of pid. */
static void allowed_list(pid_t pid, char *out, size_t cap)
{
    char path[64], line[256];
    FILE *f;
    assert_true(cap >= 64); /* the %63s below */
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    f = fopen(path, "re");
    assert_non_null(f);
    out[0] = '\0';
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "Cpus_allowed_list: %63s", out) == 1)
            break;
    fclose(f);
    assert_true(out[0] != '\0');
}

/* Field 39 of /proc/PID/stat: the CPU the process last ran on. */
static int last_cpu(pid_t pid)
{
    char path[64], buf[1024], *p;
    FILE *f;
    int field = 3, cpu = -1;
    size_t n;
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    f = fopen(path, "re");
    assert_non_null(f);
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    p = strrchr(buf, ')'); /* the command name may hold spaces */
    assert_non_null(p);
    for (p = strtok(p + 2, " "); p; p = strtok(NULL, " "), field++)
        if (field == 39) {
            cpu = atoi(p);
            break;
        }
    assert_true(cpu >= 0);
    return cpu;
}

static bool two_cpus(void)
{
    cpu_set_t mine;
    if (sysconf(_SC_NPROCESSORS_ONLN) < 2)
        return false;
    /* CPUs 0 and 1 must be ours to hand out (a cpuset may hide them). */
    if (sched_getaffinity(0, sizeof mine, &mine) || !CPU_ISSET(0, &mine) || !CPU_ISSET(1, &mine))
        return false;
    return true;
}

#define SKIP_UNLESS_TWO_CPUS()                                                                     \
    do {                                                                                           \
        if (!two_cpus()) {                                                                         \
            fprintf(stderr, "skipped: pinning needs CPUs 0 and 1 online and allowed\n");           \
            skip();                                                                                \
        }                                                                                          \
    } while (0)

/* Opens `workers` workers with cpus (NULL: from the environment), takes a
 * few batches, and checks that worker i runs only on want[i]. */
static void run_pinned(uint32_t workers, const char *cpus, const char *const *want)
{
    const size_t n = 64;
    uint64_t *ids = tu_ids_identity(n);
    int32_t pids[8];
    br_options o;
    br_gen *g;
    br_batch b;
    tu_leaks leaks;
    tu_leaks_begin(&leaks);
    tu_shared *sh = tu_shared_new();
    assert_int_equal(br_options_init(&o), 0);
    o.batch_size = 2;
    o.workers = workers;
    o.slot_bytes = 64;
    /* Shallow, so that the workers must load again while we take the
     * batches below (an automatic ring of 64-byte slots holds them all). */
    o.slots = 4;
    o.epochs = 0;
    o.cpus = cpus;
    tu_shared_config(sh, ids, NULL, n, &o, 8);
    assert_int_equal(br_open(&g, tu_loader, sh, ids, NULL, n, &o), 0);
    tu_track(g);
    /* Pinned before br_open returns: the supervisor sets each worker's
     * CPUs before it publishes the pid. */
    tu_assert_workers_live(g, workers, pids);
    uint64_t loaded_at_open[8];
    for (uint32_t i = 0; i < workers; i++) {
        br_worker_stats ws;
        assert_int_equal(br_worker_stats_get(g, i, &ws), 0);
        loaded_at_open[i] = ws.batches;
    }
    for (uint32_t i = 0; i < workers; i++) {
        char list[64];
        allowed_list(pids[i], list, sizeof list);
        if (strcmp(list, want[i]))
            fail_msg("worker %u (pid %d) may run on %s, want %s", i, (int)pids[i], list, want[i]);
    }
    /* Every batch, loaded where it was put. */
    for (uint64_t s = 0; s < n / 2; s++) {
        assert_int_equal(tu_next(g, &b, NULL), 0);
        tu_check_batch(sh, &b, s);
    }
    /* The run goes on for ever (epochs 0): the workers are still there.
     * A worker that loaded a batch after br_open returned (its CPUs were
     * set before) last ran on its CPU; one that slept through the whole
     * loop may still show where it ran before the pin, which says
     * nothing. At least one worker loaded. */
    bool any_loaded = false;
    for (uint32_t i = 0; i < workers; i++) {
        br_worker_stats ws;
        assert_true(tu_is_live_descendant(pids[i]));
        assert_int_equal(br_worker_stats_get(g, i, &ws), 0);
        if (ws.batches == loaded_at_open[i])
            continue;
        any_loaded = true;
        if (last_cpu(pids[i]) != atoi(want[i]))
            fail_msg("worker %u last ran on CPU %d, pinned to %s", i, last_cpu(pids[i]), want[i]);
    }
    assert_true(any_loaded);
    assert_int_equal(tu_close(g), 0);
    tu_assert_loaders_ok(sh);
    tu_release(ids);
    tu_shared_free(sh);
    tu_leaks_check(&leaks);
}

static void test_cpus_pinned_one_worker(void **state)
{
    static const char *const want1[] = {"1"}, *const want0[] = {"0"};
    (void)state;
    SKIP_UNLESS_TWO_CPUS();
    run_pinned(1, "1", want1);
    run_pinned(1, "0", want0);
}

static void test_cpus_pinned_two_workers(void **state)
{
    static const char *const crossed[] = {"1", "0"}, *const same[] = {"1", "1"};
    (void)state;
    SKIP_UNLESS_TWO_CPUS();
    run_pinned(2, "1,0", crossed);
    /* Round-robin over a list shorter than the workers. */
    run_pinned(2, "1", same);
}

static void test_cpus_from_env(void **state)
{
    static const char *const want1[] = {"1", "1"}, *const want0[] = {"0", "0"};
    (void)state;
    SKIP_UNLESS_TWO_CPUS();
    assert_int_equal(setenv("BR_CPUS", "1", 1), 0);
    run_pinned(2, NULL, want1);
    /* opt.cpus wins over the environment. */
    run_pinned(2, "0", want0);
    unsetenv("BR_CPUS");
}

/* A worker killed with SIGKILL is replaced on the CPU it had. */
static void test_cpus_replacement_keeps_cpu(void **state)
{
    const size_t n = 64;
    uint64_t *ids = tu_ids_identity(n);
    const uint64_t deadline = tu_now_ns() + (uint64_t)TU_WAIT_MS * 1000000u;
    int32_t pids[2];
    char list[64];
    br_options o;
    br_gen *g;
    br_batch b;
    br_worker_stats ws;
    (void)state;
    SKIP_UNLESS_TWO_CPUS();
    tu_leaks leaks;
    tu_leaks_begin(&leaks);
    tu_shared *sh = tu_shared_new();
    assert_int_equal(br_options_init(&o), 0);
    o.batch_size = 2;
    o.workers = 2;
    o.slot_bytes = 64;
    o.epochs = 0; /* forever: batches keep coming until the replacement shows */
    o.cpus = "1,0";
    tu_shared_config(sh, ids, NULL, n, &o, 8);
    assert_int_equal(br_open(&g, tu_loader, sh, ids, NULL, n, &o), 0);
    tu_track(g);
    tu_assert_workers_live(g, 2, pids);
    assert_int_equal(tu_kill_descendant(pids[0], SIGKILL), 1);
    /* br_next keeps the run going while the supervisor reaps and forks;
     * the pid of worker 0 changes once the replacement is pinned. */
    for (uint64_t s = 0;; s++) {
        assert_int_equal(tu_next(g, &b, NULL), 0);
        assert_int_equal(br_worker_stats_get(g, 0, &ws), 0);
        if (ws.pid > 0 && ws.pid != pids[0])
            break;
        if (tu_now_ns() > deadline)
            fail_msg("worker 0 was not replaced after %llu batches", (unsigned long long)s);
    }
    allowed_list(ws.pid, list, sizeof list);
    assert_string_equal(list, "1");
    assert_int_equal(br_worker_stats_get(g, 1, &ws), 0);
    assert_int_equal(ws.pid, pids[1]);
    allowed_list(ws.pid, list, sizeof list);
    assert_string_equal(list, "0");
    assert_int_equal(tu_close(g), 0);
    tu_release(ids);
    tu_shared_free(sh);
    tu_leaks_check(&leaks);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cpus_parse_good, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_cpus_parse_bad, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_cpus_open_refuses, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_cpus_auto_rule, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_cpus_inner_cache, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_cpus_pinned_one_worker, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_cpus_pinned_two_workers, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_cpus_from_env, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_cpus_replacement_keeps_cpu, tu_setup, tu_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
