/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the end-to-end tests (test_gen, test_faults,
 * test_options, test_errors).
 *
 * The tests drive real generators: real forked workers, real signals, real
 * shared memory. A loader runs in a worker process, so everything a test
 * wants to learn from a loader lives in a tu_shared page mapped
 * MAP_SHARED|MAP_ANONYMOUS before br_open(); the counters there are C11
 * atomics, and the few places where one side waits for the other use a
 * futex on a word of that page (never a sleep).
 *
 * Include after <setjmp.h>, <stdarg.h>, <stddef.h> and <cmocka.h>.
 */
#ifndef BR_TEST_UTIL_H
#define BR_TEST_UTIL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <batchring.h>

/* Per-seq bookkeeping covers this many batches; tests stay below it. */
#define TU_MAX_SEQ 4096u
/* Deaths a test can record (one pid each). */
#define TU_MAX_DEATHS 64u
/*
 * Time on a slow or loaded machine. Every timeout, deadline and upper time
 * bound in tests/ goes through tu_ms() or tu_s(), which multiply it by
 * BR_TEST_TIME_SCALE (a whole number >= 1, default 1; like libuv's
 * UV_TEST_TIMEOUT_MULTIPLIER). CMake reads the same variable when it
 * configures, for CTest's TIMEOUT, and hands its value to every test
 * (docs/testing.md). A value that is not a whole number >= 1 ends the
 * binary with a message rather than being ignored. Durations that are the
 * behaviour under test (a 50 ms br_next timeout, a loader that takes 200
 * ms) and lower bounds are not scaled: a slow machine only makes things
 * later.
 */
unsigned tu_time_scale(void);
int tu_ms(int ms);           /* ms * scale, capped at INT_MAX / 2 */
unsigned tu_s(unsigned sec); /* sec * scale */

/* Default bound on any wait for an event, so a broken library fails a test
 * instead of hanging the suite until CTest's timeout. */
#define TU_WAIT_MS tu_ms(20000)

/* How the standard loader sizes each batch (see tu_expected_size()). */
enum tu_size_mode {
    TU_SIZE_RECORDS,  /* count * rec_bytes */
    TU_SIZE_VARIABLE, /* a per-seq size in [0, cap], including 0, 1 and cap */
    TU_SIZE_ZERO      /* 0: the loader does not touch the slot */
};

/* What a hook returns to make tu_loader() return 0 without filling. */
#define TU_HOOK_HANDLED 1

typedef struct tu_shared tu_shared;

/*
 * Called by tu_loader() in the worker before it fills the slot; attempt is
 * 0 for the first load of job->seq, 1 for its first reload, ...
 * Returns 0 to let the standard fill happen, TU_HOOK_HANDLED when it set
 * job->size itself, or any other value, which the loader returns as is.
 */
typedef int (*tu_hook_fn)(br_job *job, tu_shared *sh, uint32_t attempt);

/*
 * The page shared between a test and its loaders. The test fills the
 * configuration before br_open() and does not change it afterwards: a
 * worker forked later (a replacement) must see the same.
 */
struct tu_shared {
    /* Configuration: what the loaders and the checks expect. */
    const uint64_t *ids;   /* the test's arrays; workers see their copy */
    const int32_t *labels; /* NULL when the generator has no labels */
    size_t n_ids;
    uint32_t batch_size;
    bool drop_last;
    uint32_t workers; /* the effective count, after any lowering */
    size_t slot_bytes;
    size_t rec_bytes; /* bytes per sample in TU_SIZE_RECORDS */
    int size_mode;
    pid_t parent; /* the test process: inline loads run here */
    tu_hook_fn hook;
    uint64_t arg; /* the hook's parameter, e.g. the seq to act on */
    uint64_t arg2;
    bool offsets;       /* the loader fills job->offsets (i * rec_bytes) */
    bool expect_state;  /* opened with tu_worker_init: check job->state */
    uint32_t init_fail; /* tu_worker_init fails in worker init_fail - 1 */

    /* Written by loaders in any process. */
    _Atomic uint32_t attempts[TU_MAX_SEQ];  /* loader calls per seq */
    _Atomic int32_t pid_of[TU_MAX_SEQ];     /* pid of the last load of seq */
    _Atomic uint32_t worker_of[TU_MAX_SEQ]; /* its job->worker */
    _Atomic uint32_t bad;                   /* contract violations seen */
    /* The first violation: written by whoever moved bad from 0, read by
     * the test once the workers are reaped (br_close orders it). */
    char bad_msg[256];

    /* Hook <-> test handshakes; each is a futex word. */
    _Atomic uint32_t flag;    /* set by a hook, awaited by the test */
    _Atomic uint32_t release; /* set by the test, awaited by a hook */
    _Atomic uint32_t blocked; /* hooks currently blocked */
    _Atomic int32_t victim_pid;
    _Atomic uint32_t victim_worker;
    _Atomic uint32_t deaths;
    _Atomic int32_t death_pid[TU_MAX_DEATHS];
    _Atomic uint32_t init_calls; /* tu_worker_init calls */
    _Atomic uint32_t fini_calls; /* tu_worker_fini calls; futex word */
    /* The process of each tu_worker_fini call, in call order (the first
     * TU_MAX_DEATHS); read once the workers are reaped. */
    _Atomic int32_t fini_pid[TU_MAX_DEATHS];
};

/* Shared pages. */
void *tu_page_alloc(size_t size);
void tu_page_free(void *p, size_t size);
tu_shared *tu_shared_new(void);
void tu_shared_free(tu_shared *sh);

/*
 * Fills the configuration of sh for a generator opened with these
 * arguments; computes the lowered worker count the way br_open() documents.
 */
void tu_shared_config(tu_shared *sh, const uint64_t *ids, const int32_t *labels, size_t n_ids,
                      const br_options *opt, size_t rec_bytes);

/* Identity ids 0..n-1 and labels derived from them (some negative). Give
 * them back with tu_release (tu_teardown does, after a failure). */
uint64_t *tu_ids_identity(size_t n);
int32_t *tu_labels_for(const uint64_t *ids, size_t n);
void tu_release(void *p);

/* The loader every test uses: validates its job, runs the hook, fills the
 * slot with tu_pattern_fill(key of seq and ids), sets size. */
int tu_loader(br_job *job, void *user);

/* br_options.worker_init/fini for a tu_shared user: the state of worker w
 * is TU_STATE(w); init fails (-ENODEV, "no device for worker w") in worker
 * init_fail - 1; fini checks the state it gets, counts, and records its
 * pid in fini_pid. */
#define TU_STATE(w) ((void *)(uintptr_t)(0x5eed0000u + (w)))
int tu_worker_init(br_io *io, uint32_t worker, void *user, void **state, char *err, size_t err_cap);
void tu_worker_fini(void *state, void *user);

/* Schedule arithmetic, independent of the library's. */
uint64_t tu_batches_per_epoch(const tu_shared *sh);
void tu_expect(const tu_shared *sh, uint64_t seq, uint64_t *epoch, uint64_t *batch, size_t *first,
               uint32_t *count);
size_t tu_expected_size(const tu_shared *sh, uint64_t seq, uint32_t count);

/* Deterministic bytes: every byte depends on key and its offset. */
uint64_t tu_mix64(uint64_t x);
uint64_t tu_batch_key(uint64_t seq, const uint64_t *ids, uint32_t count);
void tu_pattern_fill(void *buf, size_t n, uint64_t key);
/* Returns n when buf matches, else the offset of the first wrong byte. */
size_t tu_pattern_check(const void *buf, size_t n, uint64_t key);

/*
 * Whether b is batch `seq` of sh's schedule: seq, epoch, batch, count, ids,
 * labels, size and every data byte. If not, says what differs in why.
 * Usable off the main thread, where cmocka's asserts are not.
 */
bool tu_batch_matches(const tu_shared *sh, const br_batch *b, uint64_t seq, char *why, size_t cap);
/* The same as a cmocka assertion. */
void tu_check_batch(const tu_shared *sh, const br_batch *b, uint64_t seq);
/* Asserts that no loader saw a job that broke the br_job contract. */
void tu_assert_loaders_ok(const tu_shared *sh);

/*
 * Calls br_next, retrying while it returns -ETIMEDOUT (a generator opened
 * with a timeout may legitimately time out on a loaded machine); returns the
 * first other result. *timeouts, if not NULL, counts the retries.
 */
int tu_next(br_gen *g, br_batch *b, unsigned *timeouts);

/* Futexes on a word of a shared page (process-shared, not private). */
int tu_futex_wait(_Atomic uint32_t *w, uint32_t expected, int timeout_ms);
void tu_futex_wake(_Atomic uint32_t *w);
void tu_store_wake(_Atomic uint32_t *w, uint32_t v);
/* Waits until *w >= target; false when timeout_ms passed first. */
bool tu_wait_ge(_Atomic uint32_t *w, uint32_t target, int timeout_ms);
/* Blocks the calling process until *w != 0, however long it takes. */
void tu_block_until_set(_Atomic uint32_t *w);

/*
 * Processes started by this one: children, grandchildren, ... (workers may
 * be forked by the test process or by a supervisor process it forked), in
 * any state, zombies included. `desc`, when not NULL, receives
 * "pid:state:comm ..." of each.
 */
int tu_descendant_count(char *desc, size_t cap);
/* Descendants that are zombies: ended, not reaped. */
int tu_zombie_descendants(char *desc, size_t cap);
/* True when pid is a descendant of this process and not a zombie. */
bool tu_is_live_descendant(pid_t pid);
/* True when sig is pending for process pid (a kill on its way). */
bool tu_signal_pending(pid_t pid, int sig);
/* Sends sig to pid only if it is a live descendant of this process
 * (through a pidfd, so a recycled pid is never hit). 1 if sent, 0 if not,
 * -errno. */
int tu_kill_descendant(pid_t pid, int sig);

/* Asserts that each of g's `workers` workers has its own live process (the
 * pid br_worker_stats_get gives, a descendant of ours); their pids go to
 * pids when it is not NULL. */
void tu_assert_workers_live(br_gen *g, uint32_t workers, int32_t *pids);

/*
 * Leak checks around a generator's life: processes, /dev/shm, fds, maps.
 *
 * /dev/shm is shared with every other process of the machine (another test
 * binary under ctest -j, a second build's suite, a user's serve), so only
 * entries of this test count: a new entry left at the check is a leak when
 *  - its name is a test ring name carrying our pid: it starts with
 *    "brtest-" and one of its '-'-separated fields is getpid() in decimal
 *    (test_named's /brtest-<pid>-<n>, test_cli's /brtest-<pid>-cli<n>,
 *    test_hostile's /brtest-hostile-<pid>-<k>), whoever created it (a
 *    serve child that died without removing its ring); or
 *  - it holds a batchring ring header (BR_RING_MAGIC) whose owner_pid is
 *    this process or a live descendant, whatever its name.
 * The library puts nothing else in /dev/shm (anonymous rings are memfds,
 * checked through the fd count and /proc/self/maps).
 */
typedef struct tu_leaks {
    char **shm;
    size_t n_shm;
    int fds;
} tu_leaks;
void tu_leaks_begin(tu_leaks *l);
/* The checks without asserting: the number of problems found (0 when
 * none), each described in why (NUL-terminated, cut at cap). No
 * descendant process, no new /dev/shm entry of ours (above), as many fds
 * as at begin, no memfd or /dev/shm mapping left. Frees the snapshot. */
int tu_leaks_find(tu_leaks *l, char *why, size_t cap);
/* Whether /dev/shm/<name> is this test's by the rules above. */
bool tu_shm_is_ours(const char *name);
/* tu_leaks_find as an assertion. */
void tu_leaks_check(tu_leaks *l);

/* Generators a failing test leaves open are closed by tu_teardown(), so
 * one failure does not cascade into the leak checks of the next tests. */
void tu_track(br_gen *g);
int tu_close(br_gen *g); /* untracks, then br_close() */
/* Per-test fixtures: setup arms the watchdog for TU_TEST_SECONDS (a batch
 * that is never delivered would otherwise block br_next for good);
 * teardown closes what a failed test left open and disarms it. */
#define TU_TEST_SECONDS tu_s(60)
int tu_setup(void **state);
int tu_teardown(void **state);

/* Aborts the test binary with a message if not disarmed within seconds
 * (scaled by the caller: tu_s(10)): turns a hang into a named failure. */
void tu_watchdog_arm(unsigned seconds, const char *what);
void tu_watchdog_disarm(void);

uint64_t tu_now_ns(void);

/*
 * Running cases; skips that show as skips.
 *
 * cmocka's skip() marks a case skipped, but the binary still exits 0 and
 * CTest would count it as passed. So every test binary runs its table
 * through tu_run_group_tests_() (cmocka_run_group_tests is redefined below
 * to call it) and every skip() is counted (skip is redefined too):
 *  - BR_TEST_FILTER=PATTERN (fnmatch) runs the matching cases only; none
 *    matching is a failure, not an empty pass. tests/CMakeLists.txt
 *    registers each case as its own CTest test this way.
 *  - BR_TEST_CASES=N, set by CMake from the cases it found in the source:
 *    a table of another length fails, so a case CMake did not register
 *    cannot go unrun.
 *  - the exit code is cmocka's failure count; else 77 (CTest's
 *    SKIP_RETURN_CODE) when every case that ran was skipped; else 0, with
 *    a "SKIPPED: k of n" line when some were.
 */
int tu_run_group_tests_(const char *group, const struct CMUnitTest *tests, size_t n,
                        CMFixtureFunction setup, CMFixtureFunction teardown);
void tu_skip_(const char *file, int line);

#ifndef cmocka_unit_test
#error "include <cmocka.h> before test_util.h"
#endif
#undef cmocka_run_group_tests
#define cmocka_run_group_tests(tests, setup, teardown)                                          \
    tu_run_group_tests_(#tests, (tests), sizeof(tests) / sizeof((tests)[0]), (setup), (teardown))
#undef skip
#define skip() tu_skip_(__FILE__, __LINE__)

/* Asserts that hay contains needle, printing both when it does not. */
#define tu_assert_contains(hay, needle) tu_assert_contains_((hay), (needle), __FILE__, __LINE__)
void tu_assert_contains_(const char *hay, const char *needle, const char *file, int line);

#endif /* BR_TEST_UTIL_H */
