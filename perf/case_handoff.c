/* SPDX-License-Identifier: MIT */
/*
 * The handoff family: floor, the least a cross-process handoff costs (two
 * processes bounce one cache line in MAP_SHARED memory), and handoff,
 * br_next when the next slot is already READY, beside that floor.
 */
#include <errno.h>
#include <linux/futex.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <batchring.h>

#include "case_common.h"

/* Handoff: as many slots as fit in this much ring, up to HANDOFF_MAX_SLOTS,
 * so that a burst of ready batches is long. */
#define HANDOFF_RING_BYTES (256 * MIB)
#define HANDOFF_MAX_SLOTS 1024u

/* ---- floor: one cache line bounced between two processes ---- */

/*
 * The bounced line is this benchmark's own memory, not the ring's, so its
 * atomics are C11's <stdatomic.h> used directly: the library's wrappers
 * (ring/atomics.h) are internal, and `batchring bench` builds these cases
 * from the public API alone (perf/README.md). The orderings are the ones a
 * slot handoff uses, named at each access.
 */

/* A pause for spin loops (x86 PAUSE), as ring/atomics.h's br__cpu_relax. */
static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield" ::: "memory");
#else
    atomic_signal_fence(memory_order_seq_cst);
#endif
}

/*
 * A waiter that has spun this long without the ball moving yields its CPU.
 * A round trip takes well under a microsecond when the two processes run
 * on two CPUs, so the yield never touches the figure then; when they share
 * one CPU (a CPU-bound machine, a one-CPU cpuset) the other side can only
 * move the ball once the waiter gives the CPU up, and without the yield
 * every handoff would wait for the scheduler's tick: the 20,000-round-trip
 * warm-up then took minutes. Such a floor is slow, and it says so.
 */
#define BOUNCE_YIELD_NS 20000u

/* One wait's spinning: cpu_relax, and sched_yield past BOUNCE_YIELD_NS. */
struct spinner {
    unsigned spins;
    uint64_t since; /* when this wait's clock started; 0: not yet */
};

static void spinner_pause(struct spinner *s)
{
    cpu_relax();
    if (++s->spins % 64 == 0) {
        uint64_t now = br_util_now_ns();
        if (!s->since)
            s->since = now;
        else if (now - s->since > BOUNCE_YIELD_NS)
            sched_yield();
    }
}

/* The ball is a 32-bit futex word so that the child can park on it
 * between chunks: a spinning child would take a core from the workers of
 * the case whose baseline the floor is. */
struct bounce_lines {
    _Alignas(64) _Atomic uint32_t ball; /* odd: the child's turn, even: ours */
    _Alignas(64) _Atomic uint32_t park; /* the child sleeps instead of spinning */
    _Atomic uint32_t stop;
};

struct bouncer {
    struct bounce_lines *lines; /* in MAP_SHARED memory */
    pid_t child;
    uint32_t ball;
};

static long futex_word(_Atomic uint32_t *word, int op, uint32_t val)
{
    /* Not private: the word is shared between two processes. */
    return syscall(SYS_futex, (uint32_t *)word, op, val, NULL, NULL, 0);
}

static _Noreturn void bounce_child(struct bounce_lines *l, pid_t parent)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(0);
    struct spinner spin = {0, 0};
    for (;;) {
        /* Acquire pairs with the parent's release of an odd ball (and
         * makes its earlier store to `park` visible). */
        uint32_t v = atomic_load_explicit(&l->ball, memory_order_acquire);
        if (v & 1) {
            /* Release pairs with the parent's acquire load of the reply. */
            atomic_store_explicit(&l->ball, v + 1, memory_order_release);
            spin = (struct spinner){0, 0};
            continue;
        }
        if (atomic_load_explicit(&l->stop, memory_order_relaxed))
            _exit(0);
        if (atomic_load_explicit(&l->park, memory_order_relaxed))
            futex_word(&l->ball, FUTEX_WAIT, v); /* returns when the ball moved */
        else
            spinner_pause(&spin);
    }
}

static int bouncer_start(struct bouncer *b, struct bench_result *out)
{
    pid_t parent = getpid();
    memset(b, 0, sizeof *b);
    b->lines =
        mmap(NULL, sizeof *b->lines, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (b->lines == MAP_FAILED) {
        b->lines = NULL;
        return bench__fail(out, -errno, "mmap of the shared cache line: %s", strerror(errno));
    }
    atomic_store_explicit(&b->lines->park, 1, memory_order_relaxed);
    fflush(NULL);
    b->child = fork();
    if (b->child < 0) {
        int e = errno;
        munmap(b->lines, sizeof *b->lines);
        return bench__fail(out, -e, "fork: %s", strerror(e));
    }
    if (b->child == 0)
        bounce_child(b->lines, parent);
    return 0;
}

/* n round trips; each is two handoffs. */
static void bouncer_round_trips(struct bouncer *b, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++) {
        uint32_t serve = b->ball + 1;
        /* Release/acquire as in a real handoff: the ball carries data. */
        struct spinner spin = {0, 0};
        atomic_store_explicit(&b->lines->ball, serve, memory_order_release);
        while (atomic_load_explicit(&b->lines->ball, memory_order_acquire) != serve + 1)
            spinner_pause(&spin);
        b->ball = serve + 1;
    }
}

/* Wakes the child and gets both sides spinning with the line warm. */
static void bouncer_unpark(struct bouncer *b)
{
    atomic_store_explicit(&b->lines->park, 0, memory_order_relaxed);
    atomic_store_explicit(&b->lines->ball, b->ball + 1, memory_order_release);
    futex_word(&b->lines->ball, FUTEX_WAKE, 1);
    struct spinner spin = {0, 0};
    while (atomic_load_explicit(&b->lines->ball, memory_order_acquire) != b->ball + 2)
        spinner_pause(&spin);
    b->ball += 2;
    bouncer_round_trips(b, 2000);
}

static void bouncer_park(struct bouncer *b)
{
    atomic_store_explicit(&b->lines->park, 1, memory_order_relaxed);
}

static void bouncer_stop(struct bouncer *b)
{
    if (b->child > 0) {
        atomic_store_explicit(&b->lines->stop, 1, memory_order_relaxed);
        /* Moves the ball, so a parked child wakes and sees stop. */
        atomic_store_explicit(&b->lines->ball, b->ball + 2, memory_order_release);
        futex_word(&b->lines->ball, FUTEX_WAKE, 1);
        while (waitpid(b->child, NULL, 0) < 0 && errno == EINTR)
            ;
    }
    if (b->lines)
        munmap(b->lines, sizeof *b->lines);
    memset(b, 0, sizeof *b);
}

/* Round trips that take about ns_target, measured on a warm line. */
static uint64_t bouncer_calibrate(struct bouncer *b, uint64_t ns_target)
{
    uint64_t t0, n = 2000;
    bouncer_unpark(b);
    bouncer_round_trips(b, 20000);
    t0 = br_util_now_ns();
    bouncer_round_trips(b, n);
    n = bench__max_u64(1, ns_target * n / bench__max_u64(1, br_util_now_ns() - t0));
    bouncer_park(b);
    return n;
}

/* One timed chunk of k round trips; returns its ns. */
static uint64_t bouncer_chunk(struct bouncer *b, uint64_t k)
{
    uint64_t t0, ns;
    bouncer_unpark(b);
    t0 = br_util_now_ns();
    bouncer_round_trips(b, k);
    ns = br_util_now_ns() - t0;
    bouncer_park(b);
    return ns;
}

int bench__floor_run(struct bench_loop *loop, const struct bench_params *p,
                     struct bench_result *out)
{
    struct bouncer b;
    uint64_t k, ns = 0;
    int rc;
    (void)p;

    if ((rc = bouncer_start(&b, out)))
        return rc;
    k = bouncer_calibrate(&b, STEP_NS / 2);
    while (loop->keep_running(loop)) {
        uint64_t t = bouncer_chunk(&b, k);
        loop->iteration_done(loop, t, 2 * k);
        out->units += 2 * k;
        ns += t;
    }
    bouncer_stop(&b);
    out->seconds = (double)ns / 1e9;
    out->value = (double)ns / (double)bench__max_u64(1, out->units);
    out->baseline = NAN;
    out->ratio = NAN;
    bench__add_figure(out, "round_trip_ns", 2 * out->value);
    return 0;
}

/* ---- handoff: br_next on a ready slot, beside the floor ---- */
int bench__handoff_run(struct bench_loop *loop, const struct bench_params *p,
                       struct bench_result *out)
{
    uint64_t slots64 = HANDOFF_RING_BYTES / bench__page_round(p->batch_bytes), ns = 0, floor_ns = 0;
    uint64_t floor_k, floor_units = 0;
    uint32_t slots, burst;
    struct bouncer bouncer;
    br_gen *g = NULL;
    br_batch b;
    int rc;

    if (p->workers == 0)
        return bench__fail(out, -EINVAL,
                           "the handoff case needs at least one worker to fill the ring");
    slots = (uint32_t)(slots64 < 2 ? 2 : slots64 > HANDOFF_MAX_SLOTS ? HANDOFF_MAX_SLOTS : slots64);
    burst = slots - 1;
    if ((rc = bouncer_start(&bouncer, out)))
        return rc;
    /* As many round trips per floor chunk as handoffs per burst. */
    floor_k = (burst + 1) / 2;
    if ((rc = bench__open_generator(&g, bench__load_nothing, NULL, p->batch_bytes, p->workers,
                                    slots, out)))
        goto done;
    /* Hold one batch, as a trainer always does between calls. */
    if ((rc = bench__next_batch(g, &b, out)))
        goto done;
    while (loop->keep_running(loop)) {
        uint64_t t0, t1;
        if ((rc = bench__wait_ring_full(g, slots, out)))
            goto done;
        t0 = br_util_now_ns();
        for (uint32_t i = 0; i < burst; i++)
            if ((rc = bench__next_batch(g, &b, out)))
                goto done;
        t1 = br_util_now_ns();
        loop->iteration_done(loop, t1 - t0, burst);
        out->units += burst;
        ns += t1 - t0;
        /* The floor while the workers refill the ring would share their
         * cores: measure it once they are asleep on a full ring. */
        if ((rc = bench__wait_ring_full(g, slots, out)))
            goto done;
        floor_ns += bouncer_chunk(&bouncer, floor_k);
        floor_units += 2 * floor_k;
    }
done:
    br_close(g);
    bouncer_stop(&bouncer);
    if (rc)
        return rc;
    out->seconds = (double)ns / 1e9;
    out->value = (double)ns / (double)bench__max_u64(1, out->units);
    out->baseline = (double)floor_ns / (double)bench__max_u64(1, floor_units);
    out->ratio = out->value / out->baseline;
    bench__add_figure(out, "slots", slots);
    return 0;
}
bool bench__handoff_target(const struct bench_params *p, double *limit, bool *at_least)
{
    (void)p;
    *limit = 3.0, *at_least = false;
    return true;
}
