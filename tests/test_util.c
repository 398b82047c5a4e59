/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "ring/layout.h" /* BR_RING_MAGIC, owner_pid: what the leak check reads */
#include "test_util.h"

/* ---- memory the tests own ------------------------------------------------ */

/* What a test allocated through these helpers, so that tu_teardown can give
 * it back when a failed assertion skipped the test's own clean-up (and the
 * leak checker then reports only real leaks). len 0: malloc'd. */
#define TU_OWNED 64
static struct {
    void *p;
    size_t len;
} owned[TU_OWNED];

static void *own(void *p, size_t len)
{
    for (int i = 0; i < TU_OWNED; i++)
        if (!owned[i].p) {
            owned[i].p = p;
            owned[i].len = len;
            return p;
        }
    fail_msg("more than %d test allocations at once", TU_OWNED);
    return p;
}

static void give_back(void *p, size_t len)
{
    if (len)
        assert_int_equal(munmap(p, len), 0);
    else
        free(p);
}

void tu_release(void *p)
{
    if (!p)
        return;
    for (int i = 0; i < TU_OWNED; i++)
        if (owned[i].p == p) {
            owned[i].p = NULL;
            give_back(p, owned[i].len);
            return;
        }
    fail_msg("tu_release(%p): not allocated by a tu_ helper", p);
}

static void release_all(void)
{
    for (int i = 0; i < TU_OWNED; i++)
        if (owned[i].p) {
            void *p = owned[i].p;
            owned[i].p = NULL;
            give_back(p, owned[i].len);
        }
}

/* ---- shared pages ---------------------------------------------------- */

void *tu_page_alloc(size_t size)
{
    /* MAP_SHARED|MAP_ANONYMOUS: survives fork as one object, so a worker's
     * stores are seen by the test, and futexes on it are process-shared. */
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(p != MAP_FAILED);
    return own(p, size);
}

void tu_page_free(void *p, size_t size)
{
    (void)size;
    tu_release(p);
}

tu_shared *tu_shared_new(void)
{
    /* mmap returns zeroed memory: every counter starts at 0. */
    tu_shared *sh = tu_page_alloc(sizeof *sh);
    sh->parent = getpid();
    return sh;
}

void tu_shared_free(tu_shared *sh)
{
    tu_page_free(sh, sizeof *sh);
}

void tu_shared_config(tu_shared *sh, const uint64_t *ids, const int32_t *labels, size_t n_ids,
                      const br_options *opt, size_t rec_bytes)
{
    sh->ids = ids;
    sh->labels = labels;
    sh->n_ids = n_ids;
    sh->batch_size = opt->batch_size;
    sh->drop_last = opt->drop_last;
    sh->workers = opt->workers;
    /* br_open lowers workers to n_ids / batch_size when they would not all
     * get a batch of the first epoch. */
    if (opt->batch_size > 0 && (uint64_t)opt->batch_size * opt->workers > n_ids)
        sh->workers = (uint32_t)(n_ids / opt->batch_size);
    sh->slot_bytes = opt->slot_bytes;
    sh->rec_bytes = rec_bytes;
    sh->parent = getpid();
}

uint64_t *tu_ids_identity(size_t n)
{
    uint64_t *ids = malloc(n * sizeof *ids);
    assert_non_null(ids);
    own(ids, 0);
    for (size_t i = 0; i < n; i++)
        ids[i] = i;
    return ids;
}

int32_t *tu_labels_for(const uint64_t *ids, size_t n)
{
    int32_t *labels = malloc(n * sizeof *labels);
    assert_non_null(labels);
    own(labels, 0);
    for (size_t i = 0; i < n; i++)
        labels[i] = (int32_t)(tu_mix64(ids[i]) % 2001) - 1000;
    return labels;
}

/* ---- schedule and pattern -------------------------------------------- */

uint64_t tu_batches_per_epoch(const tu_shared *sh)
{
    uint64_t n = sh->n_ids, b = sh->batch_size;
    return sh->drop_last ? n / b : (n + b - 1) / b;
}

void tu_expect(const tu_shared *sh, uint64_t seq, uint64_t *epoch, uint64_t *batch, size_t *first,
               uint32_t *count)
{
    uint64_t per_epoch = tu_batches_per_epoch(sh);
    *epoch = seq / per_epoch;
    *batch = seq % per_epoch;
    *first = (size_t)(*batch * sh->batch_size);
    size_t left = sh->n_ids - *first;
    *count = (uint32_t)(left < sh->batch_size ? left : sh->batch_size);
}

size_t tu_expected_size(const tu_shared *sh, uint64_t seq, uint32_t count)
{
    size_t cap = sh->slot_bytes;
    switch (sh->size_mode) {
    case TU_SIZE_ZERO:
        return 0;
    case TU_SIZE_VARIABLE:
        /* The edges (empty, one byte, full, one short of full) come up
         * every few batches; the rest spread over the whole range. */
        switch (seq % 6) {
        case 0:
            return 0;
        case 1:
            return cap;
        case 2:
            return 1;
        case 3:
            return cap - 1;
        default:
            return (size_t)(tu_mix64(seq) % (cap + 1));
        }
    default:
        return (size_t)count * sh->rec_bytes;
    }
}

uint64_t tu_mix64(uint64_t x)
{
    /* splitmix64's finaliser: every input bit flips about half the output
     * bits, so a shifted, stale or foreign batch cannot match by chance. */
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

uint64_t tu_batch_key(uint64_t seq, const uint64_t *ids, uint32_t count)
{
    uint64_t h = tu_mix64(seq ^ 0x5bd1e9955bd1e995ull);
    for (uint32_t i = 0; i < count; i++)
        h = tu_mix64(h ^ ids[i]);
    return tu_mix64(h ^ count);
}

static uint64_t pattern_word(uint64_t key, size_t i)
{
    return tu_mix64(key + (uint64_t)i * 0xd1b54a32d192ed03ull);
}

void tu_pattern_fill(void *buf, size_t n, uint64_t key)
{
    unsigned char *p = buf;
    size_t words = n / 8;
    for (size_t i = 0; i < words; i++) {
        uint64_t w = pattern_word(key, i);
        memcpy(p + i * 8, &w, 8);
    }
    if (n % 8) {
        uint64_t w = pattern_word(key, words);
        memcpy(p + words * 8, &w, n % 8);
    }
}

size_t tu_pattern_check(const void *buf, size_t n, uint64_t key)
{
    const unsigned char *p = buf;
    for (size_t off = 0; off < n; off += 8) {
        uint64_t w = pattern_word(key, off / 8);
        size_t len = n - off < 8 ? n - off : 8;
        if (memcmp(p + off, &w, len) != 0) {
            const unsigned char *e = (const unsigned char *)&w;
            for (size_t j = 0; j < len; j++)
                if (p[off + j] != e[j])
                    return off + j;
        }
    }
    return n;
}

/* ---- the standard loader --------------------------------------------- */

static void tu_bad(tu_shared *sh, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void tu_bad(tu_shared *sh, const char *fmt, ...)
{
    /* Only the first violation is kept: later ones are usually its echo. */
    if (atomic_fetch_add(&sh->bad, 1) != 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sh->bad_msg, sizeof sh->bad_msg, fmt, ap);
    va_end(ap);
}

static void tu_validate_job(tu_shared *sh, const br_job *job)
{
    uint64_t epoch, batch;
    size_t first;
    uint32_t count;
    uint64_t seq = job->seq;

    tu_expect(sh, seq, &epoch, &batch, &first, &count);
    if (job->epoch != epoch || job->batch != batch || job->count != count) {
        tu_bad(sh,
               "seq %" PRIu64 ": job epoch/batch/count %" PRIu64 "/%" PRIu64
               "/%u, expected %" PRIu64 "/%" PRIu64 "/%u",
               seq, job->epoch, job->batch, job->count, epoch, batch, count);
        return;
    }
    if (!job->ids || memcmp(job->ids, sh->ids + first, count * sizeof *job->ids)) {
        tu_bad(sh, "seq %" PRIu64 ": job->ids differ from ids[%zu..]", seq, first);
        return;
    }
    if (!sh->labels != !job->labels ||
        (sh->labels && memcmp(job->labels, sh->labels + first, count * sizeof *job->labels))) {
        tu_bad(sh, "seq %" PRIu64 ": job->labels %s", seq,
               job->labels ? "differ from labels[]" : "is NULL");
        return;
    }
    long page = sysconf(_SC_PAGESIZE);
    if (!job->out || (uintptr_t)job->out % (uintptr_t)page || job->cap != sh->slot_bytes) {
        tu_bad(sh, "seq %" PRIu64 ": out %p cap %zu (slot_bytes %zu, page-aligned)", seq, job->out,
               job->cap, sh->slot_bytes);
        return;
    }
    if (!job->err || job->err_cap != BR_ERR_CAP || job->err[0] != '\0') {
        tu_bad(sh,
               "seq %" PRIu64 ": err %p err_cap %zu, expected an empty "
               "buffer of BR_ERR_CAP",
               seq, (void *)job->err, job->err_cap);
        return;
    }
    if (sh->expect_state && job->state != TU_STATE(job->worker)) {
        tu_bad(sh, "seq %" PRIu64 ": job->state %p, worker_init gave worker %u %p", seq, job->state,
               job->worker, TU_STATE(job->worker));
        return;
    }
    if (!job->offsets || job->has_offsets) {
        tu_bad(sh, "seq %" PRIu64 ": offsets %p has_offsets %d on entry", seq, (void *)job->offsets,
               job->has_offsets);
        return;
    }
    bool inline_load = getpid() == sh->parent;
    if (sh->workers == 0 ? (job->worker != 0 || !inline_load)
                         : (job->worker >= sh->workers || inline_load)) {
        tu_bad(sh, "seq %" PRIu64 ": worker %u in %s process, %u workers", seq, job->worker,
               inline_load ? "the test's" : "a child", sh->workers);
    }
}

int tu_loader(br_job *job, void *user)
{
    tu_shared *sh = user;
    uint64_t seq = job->seq;
    uint32_t attempt = 0;

    if (seq < TU_MAX_SEQ) {
        attempt = atomic_fetch_add(&sh->attempts[seq], 1);
        atomic_store(&sh->pid_of[seq], (int32_t)getpid());
        atomic_store(&sh->worker_of[seq], job->worker);
    } else {
        tu_bad(sh, "seq %" PRIu64 " beyond what the test expects", seq);
    }
    tu_validate_job(sh, job);

    if (sh->hook) {
        int rc = sh->hook(job, sh, attempt);
        if (rc == TU_HOOK_HANDLED)
            return 0;
        if (rc != 0)
            return rc;
    }
    size_t size = tu_expected_size(sh, seq, job->count);
    if (size > job->cap) {
        tu_bad(sh, "seq %" PRIu64 ": test wants %zu bytes, cap %zu", seq, size, job->cap);
        size = job->cap;
    }
    if (sh->size_mode != TU_SIZE_ZERO)
        tu_pattern_fill(job->out, size, tu_batch_key(seq, job->ids, job->count));
    job->size = size;
    if (sh->offsets) {
        for (uint32_t i = 0; i <= job->count; i++)
            job->offsets[i] = (uint64_t)i * sh->rec_bytes;
        job->has_offsets = true;
    }
    return 0;
}

int tu_worker_init(br_io *io, uint32_t worker, void *user, void **state, char *err, size_t err_cap)
{
    tu_shared *sh = user;
    atomic_fetch_add(&sh->init_calls, 1);
    if (!io)
        tu_bad(sh, "worker_init of worker %u without a reader", worker);
    if (sh->init_fail == worker + 1) {
        snprintf(err, err_cap, "no device for worker %u", worker);
        return -ENODEV;
    }
    *state = TU_STATE(worker);
    return 0;
}

void tu_worker_fini(void *state, void *user)
{
    tu_shared *sh = user;
    uintptr_t w = (uintptr_t)state - (uintptr_t)TU_STATE(0);
    if (w >= 1024)
        tu_bad(sh, "worker_fini got state %p, not one worker_init made", state);
    uint32_t k = atomic_fetch_add(&sh->fini_calls, 1);
    if (k < TU_MAX_DEATHS)
        atomic_store(&sh->fini_pid[k], (int32_t)getpid());
    tu_futex_wake(&sh->fini_calls);
}

/* ---- consumer-side checks -------------------------------------------- */

bool tu_batch_matches(const tu_shared *sh, const br_batch *b, uint64_t seq, char *why, size_t cap)
{
    uint64_t epoch, batch;
    size_t first;
    uint32_t count;

    tu_expect(sh, seq, &epoch, &batch, &first, &count);
    size_t size = tu_expected_size(sh, seq, count);
    if (b->seq != seq || b->epoch != epoch || b->batch != batch || b->count != count) {
        snprintf(why, cap,
                 "batch seq/epoch/batch/count %" PRIu64 "/%" PRIu64 "/%" PRIu64 "/%u, expected "
                 "%" PRIu64 "/%" PRIu64 "/%" PRIu64 "/%u",
                 b->seq, b->epoch, b->batch, b->count, seq, epoch, batch, count);
        return false;
    }
    if (!b->ids || memcmp(b->ids, sh->ids + first, count * sizeof *b->ids)) {
        snprintf(why, cap, "seq %" PRIu64 ": ids differ from ids[%zu..]", seq, first);
        return false;
    }
    if (!sh->labels != !b->labels ||
        (sh->labels && memcmp(b->labels, sh->labels + first, count * sizeof *b->labels))) {
        snprintf(why, cap, "seq %" PRIu64 ": labels %s", seq,
                 b->labels ? "differ (or should be NULL)" : "are NULL");
        return false;
    }
    if (!sh->offsets != !b->offsets) {
        snprintf(why, cap, "seq %" PRIu64 ": offsets %p, the loader %s them", seq,
                 (const void *)b->offsets, sh->offsets ? "filled" : "did not fill");
        return false;
    }
    for (uint32_t i = 0; sh->offsets && i <= count; i++)
        if (b->offsets[i] != (uint64_t)i * sh->rec_bytes) {
            snprintf(why, cap, "seq %" PRIu64 ": offsets[%u] = %" PRIu64 ", expected %zu", seq, i,
                     b->offsets[i], (size_t)i * sh->rec_bytes);
            return false;
        }
    if (b->size != size) {
        snprintf(why, cap, "seq %" PRIu64 ": size %zu, the loader wrote %zu", seq, b->size, size);
        return false;
    }
    if (size == 0)
        return true;
    if (!b->data || (uintptr_t)b->data % (uintptr_t)sysconf(_SC_PAGESIZE)) {
        snprintf(why, cap, "seq %" PRIu64 ": data %p is not a page-aligned slot", seq, b->data);
        return false;
    }
    if (sh->size_mode != TU_SIZE_ZERO) {
        size_t bad = tu_pattern_check(b->data, size, tu_batch_key(seq, sh->ids + first, count));
        if (bad != size) {
            snprintf(why, cap,
                     "seq %" PRIu64 ": data byte %zu of %zu differs from what the loader wrote",
                     seq, bad, size);
            return false;
        }
    }
    return true;
}

void tu_check_batch(const tu_shared *sh, const br_batch *b, uint64_t seq)
{
    char why[256];
    if (!tu_batch_matches(sh, b, seq, why, sizeof why))
        fail_msg("%s", why);
}

void tu_assert_loaders_ok(const tu_shared *sh)
{
    uint32_t bad = atomic_load(&sh->bad);
    if (bad)
        fail_msg("%u loader call(s) broke the br_job contract; first: %s", bad, sh->bad_msg);
}

int tu_next(br_gen *g, br_batch *b, unsigned *timeouts)
{
    uint64_t deadline = tu_now_ns() + (uint64_t)TU_WAIT_MS * 1000000u;
    int rc;
    while ((rc = br_next(g, b)) == -ETIMEDOUT && tu_now_ns() < deadline)
        if (timeouts)
            (*timeouts)++;
    return rc;
}

/* ---- futexes ------------------------------------------------------------ */

int tu_futex_wait(_Atomic uint32_t *w, uint32_t expected, int timeout_ms)
{
    struct timespec ts, *tsp = NULL;
    if (timeout_ms >= 0) {
        ts.tv_sec = timeout_ms / 1000;
        ts.tv_nsec = (long)(timeout_ms % 1000) * 1000000L;
        tsp = &ts;
    }
    /* Not FUTEX_PRIVATE_FLAG: waiter and waker are different processes. */
    if (syscall(SYS_futex, (uint32_t *)w, FUTEX_WAIT, expected, tsp, NULL, 0) == 0)
        return 0;
    return -errno;
}

void tu_futex_wake(_Atomic uint32_t *w)
{
    syscall(SYS_futex, (uint32_t *)w, FUTEX_WAKE, INT32_MAX, NULL, NULL, 0);
}

void tu_store_wake(_Atomic uint32_t *w, uint32_t v)
{
    /* seq_cst store before the wake: a waiter that reloads after waking (or
     * whose FUTEX_WAIT compares) sees v. */
    atomic_store(w, v);
    tu_futex_wake(w);
}

bool tu_wait_ge(_Atomic uint32_t *w, uint32_t target, int timeout_ms)
{
    uint64_t deadline = tu_now_ns() + (uint64_t)timeout_ms * 1000000u;
    for (;;) {
        uint32_t v = atomic_load(w);
        if (v >= target)
            return true;
        uint64_t now = tu_now_ns();
        if (now >= deadline)
            return false;
        int left = (int)((deadline - now) / 1000000u) + 1;
        /* FUTEX_WAIT returns at once if *w is no longer v, so a store and
         * wake between our load and the wait is not lost. */
        tu_futex_wait(w, v, left);
    }
}

void tu_block_until_set(_Atomic uint32_t *w)
{
    while (atomic_load(w) == 0)
        tu_futex_wait(w, 0, -1);
}

/* ---- processes ------------------------------------------------------- */

/* Reads state and ppid from /proc/<pid>/stat; false if it is gone. */
static bool proc_stat(pid_t pid, char *state, pid_t *ppid, char *comm, size_t cap)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return false;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* comm may contain spaces and parentheses: the fields resume after the
     * last ')'. */
    char *open = strchr(buf, '('), *close = strrchr(buf, ')');
    if (!open || !close || close < open)
        return false;
    int ppid_i;
    if (sscanf(close + 1, " %c %d", state, &ppid_i) != 2)
        return false;
    *ppid = ppid_i;
    if (comm && cap) {
        size_t len = (size_t)(close - open - 1);
        if (len >= cap)
            len = cap - 1;
        memcpy(comm, open + 1, len);
        comm[len] = '\0';
    }
    return true;
}

/* One process as /proc shows it. */
struct proc_entry {
    pid_t pid, ppid;
    char state;
    char comm[32];
};

/* Every process of the system, from /proc (thread-group leaders only, so the
 * test's own threads never show up). Returns the count; *out is malloc'd. */
static size_t proc_list(struct proc_entry **out)
{
    size_t n = 0, cap = 256;
    struct proc_entry *all = malloc(cap * sizeof *all);
    assert_non_null(all);
    DIR *d = opendir("/proc");
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end != '\0' || pid <= 0)
            continue;
        if (n == cap) {
            cap *= 2;
            all = realloc(all, cap * sizeof *all);
            assert_non_null(all);
        }
        all[n].pid = (pid_t)pid;
        if (proc_stat(all[n].pid, &all[n].state, &all[n].ppid, all[n].comm, sizeof all[n].comm))
            n++;
    }
    closedir(d);
    *out = all;
    return n;
}

/* Marks the descendants of `root` in all[] (mark[i] = true); returns how
 * many. A worker may be our child or, through a supervisor process, our
 * grandchild: both are ours to account for. */
static size_t mark_descendants(const struct proc_entry *all, size_t n, pid_t root, bool *mark)
{
    size_t count = 0;
    bool grew = true;
    memset(mark, 0, n * sizeof *mark);
    while (grew) {
        grew = false;
        for (size_t i = 0; i < n; i++) {
            if (mark[i])
                continue;
            bool ours = all[i].ppid == root;
            for (size_t j = 0; j < n && !ours; j++)
                ours = mark[j] && all[j].pid == all[i].ppid;
            if (ours) {
                mark[i] = true;
                count++;
                grew = true;
            }
        }
    }
    return count;
}

int tu_descendant_count(char *desc, size_t cap)
{
    struct proc_entry *all;
    size_t n = proc_list(&all);
    bool *mark = malloc((n + 1) * sizeof *mark);
    assert_non_null(mark);
    int count = (int)mark_descendants(all, n, getpid(), mark);
    size_t used = 0;
    if (desc && cap)
        desc[0] = '\0';
    for (size_t i = 0; i < n && desc; i++) {
        if (!mark[i] || used >= cap)
            continue;
        int w = snprintf(desc + used, cap - used, "%d:%c:%s ", (int)all[i].pid, all[i].state,
                         all[i].comm);
        if (w > 0)
            used += (size_t)w;
    }
    free(mark);
    free(all);
    return count;
}

int tu_zombie_descendants(char *desc, size_t cap)
{
    struct proc_entry *all;
    size_t n = proc_list(&all);
    bool *mark = malloc((n + 1) * sizeof *mark);
    assert_non_null(mark);
    mark_descendants(all, n, getpid(), mark);
    int count = 0;
    size_t used = 0;
    if (desc && cap)
        desc[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (!mark[i] || all[i].state != 'Z')
            continue;
        count++;
        if (desc && used < cap) {
            int w = snprintf(desc + used, cap - used, "%d:%s ", (int)all[i].pid, all[i].comm);
            if (w > 0)
                used += (size_t)w;
        }
    }
    free(mark);
    free(all);
    return count;
}

bool tu_is_live_descendant(pid_t pid)
{
    char state;
    pid_t ppid;
    if (pid <= 0 || !proc_stat(pid, &state, &ppid, NULL, 0) || state == 'Z' || state == 'X')
        return false;
    /* Walk up: a few steps at most (worker -> supervisor -> us). */
    for (int depth = 0; depth < 8 && ppid > 1; depth++) {
        if (ppid == getpid())
            return true;
        pid_t up;
        if (!proc_stat(ppid, &state, &up, NULL, 0))
            return false;
        ppid = up;
    }
    return false;
}

bool tu_signal_pending(pid_t pid, int sig)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return false;
    bool pending = false;
    unsigned long long mask;
    /* SigPnd: pending for the thread; ShdPnd: for the whole process, where
     * a SIGKILL sent to the process (or a parent-death signal) lands. */
    while (fgets(line, sizeof line, f))
        if ((sscanf(line, "SigPnd: %llx", &mask) == 1 ||
             sscanf(line, "ShdPnd: %llx", &mask) == 1) &&
            (mask >> (sig - 1)) & 1)
            pending = true;
    fclose(f);
    return pending;
}

int tu_kill_descendant(pid_t pid, int sig)
{
    if (pid <= 0)
        return 0;
    /* The pidfd pins the process: once it is open and the pid is still our
     * live descendant, the signal cannot reach a process that recycled the
     * pid. */
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (fd < 0) {
        if (errno == ESRCH)
            return 0;
        if (errno != ENOSYS)
            return -errno;
        if (!tu_is_live_descendant(pid))
            return 0;
        return kill(pid, sig) == 0 ? 1 : -errno;
    }
    int rc = 0;
    if (tu_is_live_descendant(pid))
        rc = syscall(SYS_pidfd_send_signal, fd, sig, NULL, 0) == 0 ? 1 : -errno;
    close(fd);
    return rc == -ESRCH ? 0 : rc;
}

void tu_assert_workers_live(br_gen *g, uint32_t workers, int32_t *pids)
{
    for (uint32_t i = 0; i < workers; i++) {
        br_worker_stats ws;
        assert_int_equal(br_worker_stats_get(g, i, &ws), 0);
        if (!tu_is_live_descendant(ws.pid))
            fail_msg("worker %u: pid %d is not a live process of ours", i, (int)ws.pid);
        for (uint32_t j = 0; pids && j < i; j++)
            if (pids[j] == ws.pid)
                fail_msg("workers %u and %u share pid %d", j, i, (int)ws.pid);
        if (pids)
            pids[i] = ws.pid;
    }
}

/* ---- leaks --------------------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static size_t shm_list(char ***out)
{
    size_t n = 0, cap = 16;
    char **names = malloc(cap * sizeof *names);
    assert_non_null(names);
    DIR *d = opendir("/dev/shm");
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            if (n == cap) {
                cap *= 2;
                names = realloc(names, cap * sizeof *names);
                assert_non_null(names);
            }
            names[n] = strdup(e->d_name);
            assert_non_null(names[n]);
            n++;
        }
        closedir(d);
    }
    qsort(names, n, sizeof *names, cmp_str);
    *out = names;
    return n;
}

static void shm_free(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

static bool shm_has(char **names, size_t n, const char *name)
{
    return bsearch(&name, names, n, sizeof *names, cmp_str) != NULL;
}

static int fd_count(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

/* Lines of /proc/self/maps that map a memfd or a /dev/shm object: a ring
 * still mapped after br_close. */
static int ring_maps(char *desc, size_t cap)
{
    FILE *f = fopen("/proc/self/maps", "re");
    assert_non_null(f);
    char line[512];
    int n = 0;
    size_t used = 0;
    if (cap)
        desc[0] = '\0';
    while (fgets(line, sizeof line, f)) {
        if (!strstr(line, "memfd:") && !strstr(line, "/dev/shm/"))
            continue;
        n++;
        if (used < cap) {
            int w = snprintf(desc + used, cap - used, "%s", line);
            if (w > 0)
                used += (size_t)w;
        }
    }
    fclose(f);
    return n;
}

/* Whether name, a test ring name, has our pid as one of its '-'-separated
 * fields after "brtest" (/brtest-<pid>-<n>, /brtest-hostile-<pid>-<k>,
 * /brtest-hostile-fifo-<pid>). */
static bool shm_name_is_ours(const char *name)
{
    if (strncmp(name, "brtest-", 7) != 0)
        return false;
    char pid[24];
    int len = snprintf(pid, sizeof pid, "%d", (int)getpid());
    for (const char *f = name + 7; *f;) {
        const char *dash = strchr(f, '-');
        size_t flen = dash ? (size_t)(dash - f) : strlen(f);
        if (flen == (size_t)len && memcmp(f, pid, flen) == 0)
            return true;
        if (!dash)
            break;
        f = dash + 1;
    }
    return false;
}

/* Whether /dev/shm/<name> holds a ring header whose creator is this
 * process or a live descendant. Read with pread, never mapped: the object
 * may be anyone's (a FIFO, another user's, half written), and opening it
 * takes no lock (the library's locks are OFD locks, which our close does
 * not drop). */
static bool shm_ring_is_ours(const char *name)
{
    char path[300];
    if ((size_t)snprintf(path, sizeof path, "/dev/shm/%s", name) >= sizeof path)
        return false;
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return false;
    struct stat st;
    struct br_ring_header h;
    bool ring = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
                pread(fd, &h, sizeof h, 0) == (ssize_t)sizeof h;
    close(fd);
    if (!ring || atomic_load_explicit(&h.magic, memory_order_relaxed) != BR_RING_MAGIC)
        return false;
    return h.owner_pid == getpid() || tu_is_live_descendant(h.owner_pid);
}

bool tu_shm_is_ours(const char *name)
{
    return shm_name_is_ours(name) || shm_ring_is_ours(name);
}

void tu_leaks_begin(tu_leaks *l)
{
    l->n_shm = shm_list(&l->shm);
    l->fds = fd_count();
}

/* Appends a formatted line to why (at most cap bytes in all). */
static void why_add(char *why, size_t cap, const char *fmt, ...)
{
    size_t used = strlen(why);
    if (used + 1 >= cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why + used, cap - used, fmt, ap);
    va_end(ap);
}

int tu_leaks_find(tu_leaks *l, char *why, size_t cap)
{
    char desc[1024];
    int problems = 0;
    if (cap)
        why[0] = '\0';
    int left_procs = tu_descendant_count(desc, sizeof desc);
    if (left_procs != 0) {
        problems++;
        why_add(why, cap, "%d process(es) of ours left after br_close: %s\n", left_procs, desc);
    }

    /* New since begin and ours: another process's entries, however many
     * come and go meanwhile, are not this test's to count. */
    char **now;
    size_t n_now = shm_list(&now), left = 0;
    desc[0] = '\0';
    for (size_t i = 0; i < n_now; i++)
        if (!shm_has(l->shm, l->n_shm, now[i]) && tu_shm_is_ours(now[i])) {
            left++;
            strncat(desc, now[i], sizeof desc - strlen(desc) - 2);
            strncat(desc, " ", sizeof desc - strlen(desc) - 1);
        }
    shm_free(now, n_now);
    shm_free(l->shm, l->n_shm);
    l->shm = NULL;
    l->n_shm = 0;
    if (left) {
        problems++;
        why_add(why, cap, "%zu new /dev/shm entr(ies) of ours left: %s\n", left, desc);
    }

    int fds = fd_count();
    if (fds != l->fds) {
        problems++;
        why_add(why, cap, "%d file descriptors open, %d before the generator\n", fds, l->fds);
    }
    if (ring_maps(desc, sizeof desc) != 0) {
        problems++;
        why_add(why, cap, "ring mapping(s) left after br_close:\n%s", desc);
    }
    return problems;
}

void tu_leaks_check(tu_leaks *l)
{
    char why[2048];
    if (tu_leaks_find(l, why, sizeof why))
        fail_msg("%s", why);
}

/* ---- open generators and the watchdog -------------------------------------- */

#define TU_TRACKED 16
static br_gen *tracked[TU_TRACKED];

void tu_track(br_gen *g)
{
    for (int i = 0; i < TU_TRACKED; i++)
        if (!tracked[i]) {
            tracked[i] = g;
            return;
        }
    fail_msg("more than %d generators open at once", TU_TRACKED);
}

int tu_close(br_gen *g)
{
    for (int i = 0; i < TU_TRACKED; i++)
        if (tracked[i] == g)
            tracked[i] = NULL;
    return br_close(g);
}

int tu_setup(void **state)
{
    (void)state;
    tu_watchdog_arm(TU_TEST_SECONDS, "the test in progress to finish (see its [ RUN ] line)");
    return 0;
}

int tu_teardown(void **state)
{
    (void)state;
    for (int i = 0; i < TU_TRACKED; i++)
        if (tracked[i]) {
            br_close(tracked[i]);
            tracked[i] = NULL;
        }
    /* After the close: no worker writes to a shared page any more. */
    release_all();
    tu_watchdog_disarm();
    return 0;
}

static char watchdog_msg[256];

static void watchdog_fire(int sig)
{
    (void)sig;
    /* Only async-signal-safe calls: the test is stuck somewhere unknown. */
    static const char head[] = "\nWATCHDOG: still waiting for: ";
    ssize_t r = write(STDERR_FILENO, head, sizeof head - 1);
    r = write(STDERR_FILENO, watchdog_msg, strlen(watchdog_msg));
    r = write(STDERR_FILENO, "\n", 1);
    (void)r;
    _exit(3);
}

void tu_watchdog_arm(unsigned seconds, const char *what)
{
    snprintf(watchdog_msg, sizeof watchdog_msg, "%s", what);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = watchdog_fire;
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGALRM, &sa, NULL), 0);
    alarm(seconds);
}

void tu_watchdog_disarm(void)
{
    alarm(0);
}

uint64_t tu_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void tu_assert_contains_(const char *hay, const char *needle, const char *file, int line)
{
    if (!hay)
        fail_msg("%s:%d: message is NULL, expected it to contain \"%s\"", file, line, needle);
    if (!strstr(hay, needle))
        fail_msg("%s:%d: message \"%s\" does not contain \"%s\"", file, line, hay, needle);
}

/* ---- time scale ---------------------------------------------------------- */

unsigned tu_time_scale(void)
{
    static unsigned scale;
    if (scale)
        return scale;
    const char *v = getenv("BR_TEST_TIME_SCALE");
    unsigned long s = 1;
    if (v && *v) {
        char *end;
        errno = 0;
        s = strtoul(v, &end, 10);
        if (errno || *end || s < 1 || s > 1000 || v[0] == '-') {
            /* A mistyped scale silently taken as 1 would make the run the
             * user asked for lie about what it tried. */
            fprintf(stderr, "BR_TEST_TIME_SCALE=%s: not a whole number from 1 to 1000\n", v);
            exit(2);
        }
    }
    scale = (unsigned)s;
    return scale;
}

int tu_ms(int ms)
{
    long long v = (long long)ms * tu_time_scale();
    return v > INT_MAX / 2 ? INT_MAX / 2 : (int)v;
}

unsigned tu_s(unsigned sec)
{
    unsigned long long v = (unsigned long long)sec * tu_time_scale();
    return v > UINT_MAX / 2 ? UINT_MAX / 2 : (unsigned)v;
}

/* ---- running cases --------------------------------------------------------- */

/* skip() calls in this process (counted before cmocka's longjmp). */
static unsigned skipped_cases;
/* Whether main went through tu_run_group_tests_ (checked at exit). */
static bool ran_through_runner;

void tu_skip_(const char *file, int line)
{
    skipped_cases++;
    _skip(file, line);
}

int tu_run_group_tests_(const char *group, const struct CMUnitTest *tests, size_t n,
                        CMFixtureFunction setup, CMFixtureFunction teardown)
{
    ran_through_runner = true;
    /* group is the table's variable name ("tests"); the binary says more. */
    const char *self = program_invocation_short_name;
    const char *filter = getenv("BR_TEST_FILTER");
    const char *expect = getenv("BR_TEST_CASES");
    if (expect && strtoull(expect, NULL, 10) != n) {
        fprintf(stderr,
                "%s: CMake registered %s case(s) from the source, the table has %zu: a case "
                "would go unrun (or is named oddly); reconfigure, or check the "
                "cmocka_unit_test lines\n",
                self, expect, n);
        return 1;
    }
    struct CMUnitTest *sel = malloc((n ? n : 1) * sizeof *sel);
    if (!sel)
        return 1;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!filter || fnmatch(filter, tests[i].name, 0) == 0)
            sel[k++] = tests[i];
    if (k == 0) {
        fprintf(stderr, "%s: no case matches BR_TEST_FILTER=%s\n", self, filter ? filter : "");
        free(sel);
        return 1;
    }
    /* The selection is made here, with fnmatch; cmocka's own filter (a
     * binary may have set one) matches fewer patterns and would silently
     * run none of them. */
    cmocka_set_test_filter(NULL);
    int failed = _cmocka_run_group_tests(group, sel, k, setup, teardown);
    free(sel);
    if (failed)
        return failed;
    if (skipped_cases >= k) {
        printf("SKIPPED: all %zu case(s) of %s (exit 77)\n", k, self);
        return 77;
    }
    if (skipped_cases)
        printf("SKIPPED: %u of %zu case(s) of %s (named above); the others passed\n",
               skipped_cases, k, self);
    return 0;
}

/* A binary that ran cmocka's own runner would ignore BR_TEST_FILTER and
 * pass every CTest case by running them all: refuse that at exit. (A
 * process forked once the runner ran inherits the flag.) */
__attribute__((destructor)) static void check_runner_used(void)
{
    if (getenv("BR_TEST_FILTER") && !ran_through_runner) {
        static const char msg[] = "BR_TEST_FILTER is set but this binary did not run its cases "
                                  "through tu_run_group_tests_ (test_util.h)\n";
        ssize_t r = write(STDERR_FILENO, msg, sizeof msg - 1);
        (void)r;
        _exit(1);
    }
}
