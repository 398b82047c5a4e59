/* SPDX-License-Identifier: MIT */
/*
 * The supervisor: starts the workers, notices deaths, and makes sure that
 * every batch is still delivered exactly once.
 *
 * When a worker dies, the batch it held (its record's job) is either done
 * (READY or FAILED on its lap, or already consumed), held by a live worker
 * (a replacement from an earlier death), or orphaned. An orphan goes to the
 * dead worker's replacement, which loads it first and takes over its slot
 * even if the dead worker left it in LOADING.
 *
 * The one delicate window is between a worker's PENDING(c) record and its
 * CAS on the claim counter. If the worker dies there: claim <= c means its
 * CAS cannot have happened; otherwise c was taken by it or by a live worker
 * that raced for the same c. Such a rival resolves its own PENDING(c) within
 * a few instructions, so the supervisor waits for that, and then c is an
 * orphan exactly when no live worker holds it and it is not done.
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <limits.h>
#include <time.h>
#include <unistd.h>

#include "producer/worker.h"
#include "ring/error.h"

/* Forks worker `index`, starting with `first_job` (BR_JOB_IDLE: claim). */
static int spawn(struct br_supervisor *s, uint32_t index, uint64_t first_job)
{
    struct br_worker_rec *rec = &s->ring->workers[index];
    const struct br_cpu_plan *plan = &s->ctx->cpus;
    pid_t pid;

    /* Recorded before the fork, so that the supervisor never sees the new
     * worker without its job. */
    br__store_release_u64(&rec->job, first_job);
    /* Flushed here, so that a worker's stdio buffers start empty and what
     * it prints is not the parent's text again. */
    fflush(NULL);
    pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0)
        br__worker_main(s->ring, s->ctx, index, first_job, s->parent);
    /* Worker `index` gets the same CPUs whether it is the first or a
     * replacement. Set here, by its parent, so that they are in place
     * before anyone learns its pid (rec->pid below, br_open's return);
     * its first few microseconds may run elsewhere. check_cpus found
     * every set allowed at start, so a failure means the allowed CPUs
     * changed since (a cgroup's cpuset): the worker runs where it may,
     * and the supervisor says so. A worker that already died is reaped
     * as any other. */
    if (plan->n && sched_setaffinity(pid, sizeof(cpu_set_t), &plan->sets[index % plan->n]) &&
        errno != ESRCH)
        fprintf(stderr, "batchring: worker %u (pid %d) cannot be pinned to its CPUs: %s\n",
                index, (int)pid, strerror(errno));
    s->pids[index] = pid;
    br__store_relaxed_i32(&rec->pid, (int32_t)pid);
    s->live++;
    return 0;
}

static bool seq_done(const struct br_ring *r, uint64_t seq)
{
    const uint64_t lap = br__slot_lap(r, seq);
    uint32_t w;
    if (seq < br__load_acquire_u64(&r->hdr->cursor))
        return true;
    w = br__load_acquire_u32(&br__slot_desc(r, seq)->word);
    return w == br__slot_word(lap, BR_READY) || w == br__slot_word(lap, BR_FAILED);
}

/* Is `seq` held by a running worker other than `dead`? First lets any live
 * rival that is still in its PENDING(seq) window finish its CAS. */
static bool held_by_live(struct br_supervisor *s, uint32_t dead, uint64_t seq)
{
    for (uint32_t j = 0; j < s->nworkers; j++) {
        struct br_worker_rec *rec = &s->ring->workers[j];
        if (j == dead || s->pids[j] <= 0)
            continue;
        while (br__load_acquire_u64(&rec->job) == (seq | BR_JOB_PENDING)) {
            /* A rival that is itself dead never resolves; it is reaped on
             * its own turn. */
            siginfo_t info = {0};
            if (waitid(P_PID, (id_t)s->pids[j], &info, WEXITED | WNOHANG | WNOWAIT) != 0 ||
                info.si_pid != 0)
                break;
            sched_yield();
        }
        if (br__load_acquire_u64(&rec->job) == seq)
            return true;
    }
    return false;
}

/* The batch that dead worker `i` leaves behind, if any. */
static bool find_orphan(struct br_supervisor *s, uint32_t i, uint64_t *orphan)
{
    const struct br_ring *r = s->ring;
    uint64_t job = br__load_acquire_u64(&r->workers[i].job);
    uint64_t seq = job & ~BR_JOB_PENDING;

    if (job == BR_JOB_IDLE)
        return false;
    /* Acquire pairs with the workers' release CAS on claim. */
    if ((job & BR_JOB_PENDING) && br__load_acquire_u64(&r->hdr->claim) <= seq)
        return false;
    if (held_by_live(s, i, seq) || seq_done(r, seq))
        return false;
    *orphan = seq;
    return true;
}

/*
 * Records the failure that the consumer will meet at `seq`: the lowest seq
 * that cannot be delivered wins, with the text of the death that lost it.
 * Keeping the first failure instead lost batches: when the death past the
 * budget held k + 1 and a later one held k, nobody loaded k and the
 * consumer waited for it for ever (issue 10, defect 1). So fail_seq only
 * ever goes down.
 *
 * Why rewriting code and text under a consumer cannot tear what it reads:
 * the consumer reads fail_seq (acquire, pairing with the release below),
 * and only if fail_seq <= its cursor does it read code and text. We lower
 * fail_seq from F to seq < F only in two cases. (1) seq is an orphan past
 * the budget, or one whose replacement could not be forked: nobody holds
 * it and nobody ever will, so the cursor stays <= seq < F and no consumer
 * is reading the text of F. (2) seq is the claim counter (a death that
 * held no batch): it never lowers anything, since any earlier fail_seq is
 * an earlier claim value or an orphan taken before it, both <= seq. So the
 * text is never rewritten while a consumer may be reading it, and the
 * consumer that sees the lower fail_seq acquires the text written here.
 */
static void record_failure(struct br_supervisor *s, uint64_t seq, int code, const char *text)
{
    struct br_ring_header *h = s->ring->hdr;
    /* Relaxed: the supervisor is its only writer. */
    if (seq >= br__load_relaxed_u64(&h->fail_seq))
        return;
    h->fail_code = code;
    snprintf(h->fail_msg, sizeof h->fail_msg, "%s", text);
    /* Release: pairs with br__consumer_wait's acquire load of fail_seq
     * (consumer/consumer.c); code and text are visible to whoever sees this
     * seq. */
    br__store_release_u64(&h->fail_seq, seq);
}

static void describe_status(char *buf, size_t cap, int status)
{
    if (status < 0)
        snprintf(buf, cap, "disappeared (its exit status was collected elsewhere; is SIGCHLD "
                           "ignored?)");
    else if (WIFSIGNALED(status))
        snprintf(buf, cap, "was killed by signal %d (SIG%s: %s)", WTERMSIG(status),
                 sigabbrev_np(WTERMSIG(status)) ? sigabbrev_np(WTERMSIG(status)) : "?",
                 sigdescr_np(WTERMSIG(status)) ? sigdescr_np(WTERMSIG(status)) : "unknown");
    else
        snprintf(buf, cap, "exited with status %d", WEXITSTATUS(status));
}

/* Worker i (pid) ended with `status` (-1: unknown). */
static void handle_exit(struct br_supervisor *s, uint32_t i, pid_t pid, int status)
{
    struct br_ring_header *h = s->ring->hdr;
    struct br_worker_rec *rec = &s->ring->workers[i];
    char how[160], what[200], text[BR_ERR_CAP];
    uint64_t orphan = 0, claim;
    bool has_orphan;
    uint32_t deaths;
    int rc;

    s->pids[i] = 0;
    s->live--;
    br__store_relaxed_i32(&rec->pid, 0);
    has_orphan = find_orphan(s, i, &orphan);
    claim = br__load_acquire_u64(&h->claim);
    /* A worker that ran out of work, or was told to stop, exits with 0. */
    if (status == 0 && !has_orphan &&
        (claim >= h->end_seq || br__load_relaxed_u32(&h->state) != BR_RUN_RUNNING))
        return;

    describe_status(how, sizeof how, status);
    if (has_orphan) {
        char batch[160];
        br__describe_batch(batch, sizeof batch, s->ctx, orphan);
        snprintf(what, sizeof what, "while loading %s", batch);
    } else {
        snprintf(what, sizeof what, "between batches");
    }
    deaths = br__load_relaxed_u32(&h->restarts) + 1;
    if (deaths > s->max_restarts) {
        snprintf(text, sizeof text,
                 "worker %u (pid %d) %s %s; that is worker death %u and max_restarts is %u",
                 i, (int)pid, how, what, deaths, s->max_restarts);
        /* The budget is spent: the run fails at the batch this death cost,
         * or, if it held none, at the first batch nobody has taken yet, so
         * that a shrinking pool of workers never goes unreported. */
        if (has_orphan)
            record_failure(s, orphan, BR_EWORKER, text);
        else if (claim < h->end_seq)
            record_failure(s, claim, BR_EWORKER, text);
        return;
    }
    br__store_relaxed_u32(&h->restarts, deaths);
    br__add_relaxed_u32(&rec->restarts, 1);
    rc = spawn(s, i, has_orphan ? orphan : BR_JOB_IDLE);
    if (rc) {
        snprintf(text, sizeof text, "worker %u (pid %d) %s %s, and its replacement cannot be "
                 "forked: %s", i, (int)pid, how, what, strerror(-rc));
        record_failure(s, has_orphan ? orphan : claim, rc, text);
    }
}

/* Reaps every worker that has ended, without blocking. */
static void reap_workers(struct br_supervisor *s)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
        for (uint32_t i = 0; i < s->nworkers; i++)
            if (s->pids[i] == pid)
                handle_exit(s, i, pid, status);
}

/* Worker i has been reaped after the stop: nothing is replaced. */
static void forget_worker(struct br_supervisor *s, uint32_t i)
{
    s->pids[i] = 0;
    s->live--;
    br__store_relaxed_i32(&s->ring->workers[i].pid, 0);
}

/* Reaps the workers that have ended since the stop, without blocking. They
 * are not deaths: whatever they held, the run is over. */
static void reap_stopped(struct br_supervisor *s)
{
    pid_t pid;
    while ((pid = waitpid(-1, NULL, WNOHANG)) > 0)
        for (uint32_t i = 0; i < s->nworkers; i++)
            if (s->pids[i] == pid)
                forget_worker(s, i);
}

/*
 * The supervisor's way out: stops every worker and reaps it, then exits.
 *
 * orderly (br_close, or the trainer stopping the generator after an error)
 * with a worker_fini hook: tell the workers to stop and wake them
 * (br__ring_stop_workers). A worker in the loader finishes its batch; one
 * waiting for a slot abandons the seq it claimed; each runs worker_fini
 * and exits with 0. We wait for their SIGCHLD (sigtimedwait, no polling)
 * for at most BR_STOP_GRACE_MS in all, then SIGKILL whoever is left: a
 * loader stuck in a read must not make br_close hang.
 *
 * Otherwise (no worker_fini to run: nothing to wait for; or the trainer is
 * gone): SIGKILL at once, as cheap as a stop can be.
 */
static _Noreturn void stop_workers_and_exit(struct br_supervisor *s, bool orderly)
{
    if (orderly && s->ctx->worker_fini && s->live > 0) {
        const uint64_t deadline = br__now_ns() + UINT64_C(1000000) * BR_STOP_GRACE_MS;
        sigset_t chld;
        sigemptyset(&chld);
        sigaddset(&chld, SIGCHLD);
        br__ring_stop_workers(s->ring);
        for (;;) {
            uint64_t now, left;
            struct timespec ts;
            /* SIGCHLD stays blocked: one that arrives between this reap
             * and the wait below is pending, and the wait returns at once. */
            reap_stopped(s);
            now = br__now_ns();
            if (s->live == 0 || now >= deadline)
                break;
            left = deadline - now;
            ts.tv_sec = (time_t)(left / 1000000000u);
            ts.tv_nsec = (long)(left % 1000000000u);
            sigtimedwait(&chld, NULL, &ts);
        }
    } else {
        br__store_relaxed_u32(&s->ring->hdr->state, BR_RUN_STOPPING);
    }
    for (uint32_t i = 0; i < s->nworkers; i++)
        if (s->pids[i] > 0)
            kill(s->pids[i], SIGKILL);
    for (uint32_t i = 0; i < s->nworkers; i++) {
        if (s->pids[i] <= 0)
            continue;
        while (waitpid(s->pids[i], NULL, 0) < 0 && errno == EINTR)
            ;
        forget_worker(s, i);
    }
    _exit(0);
}

static void set_sup_state(struct br_ring_header *h, enum br_sup_state state)
{
    /* Release pairs with br_open's acquire: a failure's code and text are
     * written before the state says FAILED. */
    br__store_release_u32(&h->sup_state, state);
    br__futex_wake(&h->sup_state, INT_MAX);
}

/* Can every worker be pinned where the plan says (br_options.cpus)? The
 * online CPUs were checked at br_open; a cgroup's cpuset or a container
 * can still forbid some, and only the kernel knows: the supervisor tries
 * each set on itself, before any worker exists, and fails br_open with
 * the first it refuses. Returns 0, or 1 after reporting FAILED. */
static int check_cpus(struct br_supervisor *s, struct br_ring_header *h)
{
    const struct br_cpu_plan *plan = &s->ctx->cpus;
    cpu_set_t mine;
    if (!plan->n)
        return 0;
    if (sched_getaffinity(0, sizeof mine, &mine))
        CPU_ZERO(&mine);
    for (uint32_t i = 0; i < plan->n && i < s->nworkers; i++) {
        char list[256];
        if (sched_setaffinity(0, sizeof plan->sets[i], &plan->sets[i]) == 0)
            continue;
        h->fail_code = -EINVAL;
        snprintf(h->fail_msg, sizeof h->fail_msg,
                 "cpus: worker %u cannot run on CPU %s: %s (outside the CPUs this process may "
                 "use, e.g. its cgroup's cpuset)",
                 i, br__cpu_set_format(list, sizeof list, &plan->sets[i]), strerror(errno));
        set_sup_state(h, BR_SUP_FAILED);
        return 1;
    }
    /* Back to the supervisor's own CPUs, which do not matter to a batch. */
    if (CPU_COUNT(&mine))
        sched_setaffinity(0, sizeof mine, &mine);
    return 0;
}

/* The supervisor process: start the workers, then sleep until a worker
 * ends (SIGCHLD) or the trainer stops us (SIGTERM). */
static _Noreturn void supervisor_main(struct br_supervisor *s, pid_t trainer)
{
    struct br_ring_header *h = s->ring->hdr;
    sigset_t wait_for;
    int sig;

    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != trainer)
        _exit(0);
    /* The producer's lock on a named ring is the producer's alone: if we
     * kept the descriptor, a SIGKILLed producer's ring would look served
     * until we noticed and died too. */
    if (s->ring->has_owner_fd)
        close(s->ring->owner_fd);
    /* The trainer's handlers are not ours; SIGCHLD and SIGTERM are taken
     * synchronously with sigwaitinfo, so they stay blocked. */
    for (sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            signal(sig, sig == SIGINT ? SIG_IGN : SIG_DFL);
    sigemptyset(&wait_for);
    sigaddset(&wait_for, SIGCHLD);
    sigaddset(&wait_for, SIGTERM);
    sigprocmask(SIG_SETMASK, &wait_for, NULL);

    s->parent = getpid();
    s->pids = calloc(s->nworkers, sizeof *s->pids);
    if (!s->pids) {
        h->fail_code = -ENOMEM;
        snprintf(h->fail_msg, sizeof h->fail_msg, "out of memory for %u worker pids",
                 s->nworkers);
        set_sup_state(h, BR_SUP_FAILED);
        _exit(1);
    }
    if (check_cpus(s, h))
        _exit(1);
    for (uint32_t i = 0; i < s->nworkers; i++) {
        int rc = spawn(s, i, BR_JOB_IDLE);
        if (rc) {
            h->fail_code = rc;
            snprintf(h->fail_msg, sizeof h->fail_msg, "cannot fork worker %u of %u: %s", i,
                     s->nworkers, strerror(-rc));
            set_sup_state(h, BR_SUP_FAILED);
            stop_workers_and_exit(s, true);
        }
    }
    set_sup_state(h, BR_SUP_RUNNING);
    for (;;) {
        siginfo_t info;
        sig = sigwaitinfo(&wait_for, &info);
        /* A trainer that is gone gets no grace period: we are about to
         * die with it (PR_SET_PDEATHSIG), and so are the workers. */
        if (getppid() != trainer)
            stop_workers_and_exit(s, false);
        if (sig == SIGTERM)
            stop_workers_and_exit(s, true);
        if (sig == SIGCHLD)
            reap_workers(s);
    }
}

int br__sup_start(struct br_supervisor *s, struct br_ring *ring, const struct br_loader_ctx *ctx,
                  uint32_t max_restarts, char *msg)
{
    struct br_ring_header *h = ring->hdr;
    pid_t trainer = getpid();
    uint32_t state;

    memset(s, 0, sizeof *s);
    s->ring = ring;
    s->ctx = ctx;
    s->nworkers = ring->hdr->nworkers;
    s->max_restarts = max_restarts;
    if (s->nworkers == 0)
        return 0;
    /* Flushed, so that no child starts with the trainer's unwritten text. */
    fflush(NULL);
    s->pid = fork();
    if (s->pid < 0) {
        int e = errno;
        s->pid = 0;
        return br__fail(msg, -e, "cannot fork the supervisor process: %s", strerror(e));
    }
    if (s->pid == 0)
        supervisor_main(s, trainer);

    /* Wait until every worker is forked, or the supervisor says why not. */
    while ((state = br__load_acquire_u32(&h->sup_state)) == BR_SUP_STARTING) {
        struct timespec slice = {0, 10 * 1000000L};
        if (br__sup_check(s, msg))
            goto failed;
        br__futex_wait(&h->sup_state, BR_SUP_STARTING, &slice);
    }
    if (state == BR_SUP_RUNNING)
        return 0;
    br__fail(msg, h->fail_code, "%s", h->fail_msg);
failed:
    br__sup_stop(s);
    return h->fail_code ? h->fail_code : BR_EWORKER;
}

int br__sup_check(struct br_supervisor *s, char *msg)
{
    char how[160];
    int status;
    pid_t r;

    if (s->pid <= 0)
        return 0;
    r = waitpid(s->pid, &status, WNOHANG);
    if (r == 0 || (r < 0 && errno != ECHILD))
        return 0;
    describe_status(how, sizeof how, r < 0 ? -1 : status);
    br__fail(msg, BR_EWORKER, "the supervisor process (pid %d) %s; its workers are gone",
             (int)s->pid, how);
    s->pid = 0;
    return BR_EWORKER;
}

void br__sup_stop(struct br_supervisor *s)
{
    if (s->pid <= 0)
        return;
    /* The supervisor stops (within BR_STOP_GRACE_MS, then kills) and reaps
     * its workers, then exits: once it is reaped, no process of this
     * generator is left. */
    kill(s->pid, SIGTERM);
    while (waitpid(s->pid, NULL, 0) < 0 && errno == EINTR)
        ;
    s->pid = 0;
}
