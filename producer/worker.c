/* SPDX-License-Identifier: MIT */
/*
 * The worker loop: claim a seq, wait for its slot to be free, run the
 * loader into it, publish. Workers never spin: a worker waiting for a free
 * slot sleeps at once (spinning on a core the consumer needs costs it a
 * whole time slice): first a nap timed to the consumer's pace, then until
 * the consumer kicks it (ring.c, "Waking workers"), in bounded slices so
 * that it notices a dead parent.
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "producer/io.h"
#include "producer/worker.h"
#include "ring/error.h"

/* How long a worker sleeps between checks that its parent still lives. */
#define BR_WORKER_SLICE_MS 100

static uint64_t id_at(const struct br_loader_ctx *ctx, const struct br_batch_place *p,
                      uint32_t i)
{
    uint64_t index = br__schedule_index(&ctx->sched, p, i);
    return ctx->ids ? ctx->ids[index] : index;
}

void br__describe_batch(char *buf, size_t cap, const struct br_loader_ctx *ctx, uint64_t seq)
{
    struct br_batch_place p = br__schedule_place(&ctx->sched, seq);
    snprintf(buf, cap, "batch %llu (epoch %llu, %u samples, ids %llu..%llu)",
             (unsigned long long)seq, (unsigned long long)p.epoch, p.count,
             (unsigned long long)id_at(ctx, &p, 0),
             (unsigned long long)id_at(ctx, &p, p.count - 1));
}

int br__worker_env_init(struct br_worker_env *env, const struct br_ring *r,
                        const struct br_loader_ctx *ctx, uint32_t index,
                        struct br_worker_rec *rec, bool single_issuer, char *msg)
{
    char err[BR_ERR_CAP];
    int rc;

    memset(env, 0, sizeof *env);
    env->index = index;
    /* What a timed sleep overshoots by at least, until naps show more. */
    rc = prctl(PR_GET_TIMERSLACK);
    env->timer_slack_ns = rc > 0 ? (uint64_t)rc : 0;
    env->nap_late_ns = env->timer_slack_ns;
    env->rec = rec;
    rc = br__io_create(&env->io, r, rec, single_issuer, msg);
    if (rc)
        return rc;
    if (!ctx->worker_init)
        return 0;
    err[0] = '\0';
    rc = ctx->worker_init(env->io, index, ctx->user, &env->state, err, sizeof err);
    if (rc == 0)
        return 0;
    err[sizeof err - 1] = '\0';
    br__io_destroy(env->io);
    env->io = NULL;
    return br__fail(msg, BR_ELOADER, "worker_init failed in worker %u: %s [%s]",
                    index, err[0] ? err : br_strerror(rc), br_err_name(rc));
}

void br__worker_env_fini(struct br_worker_env *env, const struct br_loader_ctx *ctx)
{
    if (env->io && ctx->worker_fini)
        ctx->worker_fini(env->state, ctx->user);
    br__io_destroy(env->io);
    env->io = NULL;
    free(env->populated);
    env->populated = NULL;
}

/* Maps the slot of seq into this process's page tables the first time the
 * worker loads into it: one madvise per slot and worker, never a page fault
 * inside the loader. Done per slot rather than for the whole ring at start,
 * so that eight workers on a 256 MiB ring do not each walk 256 MiB before
 * the first batch. */
static void populate_slot(const struct br_ring *r, struct br_worker_env *env, uint64_t seq)
{
    uint32_t index = br__slot_index(r, seq);
    char msg[BR_MSG_CAP];
    if (!env->populated || env->populated[index])
        return;
    /* On failure the loader takes the faults instead: slower, not wrong. */
    br__ring_populate_range(r, (uint64_t)(r->data - (uint8_t *)r->base) + index * r->slot_stride,
                            r->slot_span, msg);
    env->populated[index] = 1;
}

/* Writes the slot's descriptor and publishes it READY or FAILED. */
static void publish(const struct br_ring *r, const struct br_batch_place *p, uint64_t seq,
                    uint32_t worker, int rc, uint64_t size, bool has_offsets)
{
    struct br_slot_desc *d = br__slot_desc(r, seq);
    d->error = rc;
    d->count = p->count;
    d->seq = seq;
    d->epoch = p->epoch;
    d->batch = p->batch;
    d->size = rc ? 0 : size;
    d->worker = worker;
    d->has_offsets = has_offsets && rc == 0;
    /* The sleeper is the consumer, woken because the run it waits for is
     * ready. When the workers hold every CPU, the scheduler lets the
     * running worker finish its slice before the woken consumer runs
     * (EEVDF: up to milliseconds), while the free half of the ring fills
     * and the workers stall on it: hand it this CPU. Measured with 2
     * workers on 2 CPUs, a worker sleep every 11-53 batches before, about
     * none after (docs/perf/notes.md, "The batched handoff"). Not when a
     * CPU is to spare: the consumer wakes there, and another process
     * (the machine's other load) would take the CPU we give up. */
    if (br__slot_publish(d, br__slot_word(br__slot_lap(r, seq), rc ? BR_FAILED : BR_READY)) &&
        !r->cpus_to_spare)
        sched_yield();
}

void br__fail_slot(const struct br_ring *r, const struct br_loader_ctx *ctx, uint64_t seq,
                   uint32_t worker, int code, const char *text)
{
    struct br_batch_place p = br__schedule_place(&ctx->sched, seq);
    br__schedule_fill(&ctx->sched, &p, ctx->ids, ctx->labels, br__slot_ids(r, seq),
                      br__slot_labels(r, seq));
    snprintf(br__slot_err(r, seq), BR_ERR_CAP, "%s", text);
    publish(r, &p, seq, worker, code, 0, false);
}

/* A loader's offsets must rise and end within what it wrote. */
static bool offsets_valid(const uint64_t *offsets, uint32_t count, size_t size)
{
    for (uint32_t i = 0; i < count; i++)
        if (offsets[i] > offsets[i + 1])
            return false;
    return offsets[count] <= size;
}

/* Guard mode: the bytes between a slot's cap and its guard page (cap
 * rounded up to the page) are writable, so a write there does not fault.
 * They get this pattern before the loader runs and are checked after it;
 * a pattern that varies with the offset is unlikely to be rewritten by an
 * overrun of zeros, copies or a memset. */
static uint8_t tail_byte(uint64_t i)
{
    return (uint8_t)(0xa5u ^ (uint8_t)(i * 0x3bu));
}

static void tail_fill(uint8_t *tail, uint64_t len)
{
    for (uint64_t i = 0; i < len; i++)
        tail[i] = tail_byte(i);
}

/* The offset of the first tail byte the loader changed, or len. */
static uint64_t tail_check(const uint8_t *tail, uint64_t len)
{
    for (uint64_t i = 0; i < len; i++)
        if (tail[i] != tail_byte(i))
            return i;
    return len;
}

int br__fill_slot(const struct br_ring *r, const struct br_loader_ctx *ctx,
                  struct br_worker_env *env, uint64_t seq)
{
    struct br_batch_place p = br__schedule_place(&ctx->sched, seq);
    uint64_t *ids = br__slot_ids(r, seq);
    int32_t *labels = br__slot_labels(r, seq);
    char *err = br__slot_err(r, seq);
    uint64_t t0, t1;
    int rc;

    populate_slot(r, env, seq);
    br__schedule_fill(&ctx->sched, &p, ctx->ids, ctx->labels, ids, labels);
    err[0] = '\0';
    br_job job = {
        .ids = ids,
        .labels = labels,
        .count = p.count,
        .seq = seq,
        .epoch = p.epoch,
        .batch = p.batch,
        .worker = env->index,
        .out = br__slot_data(r, seq),
        .cap = (size_t)r->slot_bytes,
        .size = 0,
        .err = err,
        .err_cap = BR_ERR_CAP,
        .io = env->io,
        .state = env->state,
        .seed = br__schedule_batch_seed(&ctx->sched, seq),
        .offsets = br__slot_offsets(r, seq),
        .has_offsets = false,
    };
    uint8_t *tail = (uint8_t *)job.out + r->slot_bytes;
    const uint64_t tail_len = r->slot_span < r->slot_stride ? r->slot_span - r->slot_bytes : 0;
    tail_fill(tail, tail_len);
    br__io_begin_job(env->io, job.out, job.cap);
    t0 = br__now_ns();
    rc = ctx->load(&job, ctx->user);
    t1 = br__now_ns();
    err[BR_ERR_CAP - 1] = '\0';
    const uint64_t past = tail_check(tail, tail_len);
    if (past < tail_len) {
        /* Whatever the loader returned: its batch is not what it meant. */
        snprintf(err, BR_ERR_CAP,
                 "loader wrote past job->cap (%llu bytes): byte %llu of the slot was changed "
                 "(found by guard mode, BR_GUARD=1)",
                 (unsigned long long)r->slot_bytes, (unsigned long long)(r->slot_bytes + past));
        rc = BR_ELOADER;
    } else if (rc > 0) {
        snprintf(err, BR_ERR_CAP, "loader returned %d; a loader returns 0 or a negative code",
                 rc);
        rc = BR_ELOADER;
    } else if (rc == 0 && job.size > r->slot_bytes) {
        snprintf(err, BR_ERR_CAP,
                 "loader set size = %zu but the slot holds only %llu bytes; raise slot_bytes",
                 job.size, (unsigned long long)r->slot_bytes);
        rc = BR_ELOADER;
    } else if (rc == 0 && job.has_offsets &&
               !offsets_valid(br__slot_offsets(r, seq), p.count, job.size)) {
        snprintf(err, BR_ERR_CAP,
                 "loader set has_offsets but its %u + 1 offsets do not rise within the %zu "
                 "bytes it wrote",
                 p.count, job.size);
        rc = BR_ELOADER;
    }
    env->load_avg_ns = env->load_avg_ns ? env->load_avg_ns - env->load_avg_ns / 4 + (t1 - t0) / 4
                                        : t1 - t0;
    if (env->rec) {
        br__add_single_writer_u64(&env->rec->batches, 1);
        br__add_single_writer_u64(&env->rec->bytes, rc ? 0 : job.size);
        br__add_single_writer_u64(&env->rec->load_ns, t1 - t0);
    }
    publish(r, &p, seq, env->index, rc, job.size, job.has_offsets);
    return rc;
}

static _Noreturn void worker_exit(struct br_worker_env *env, const struct br_loader_ctx *ctx)
{
    if (env)
        br__worker_env_fini(env, ctx);
    /* What the loader printed; the parent flushed its own buffers before
     * the fork, so nothing is written twice. _exit: the trainer's atexit
     * handlers are not ours to run. */
    fflush(NULL);
    _exit(0);
}

/* Called after each sleep, never per batch: getppid is a syscall, and a
 * busy worker learns of its parent's death from PR_SET_PDEATHSIG anyway.
 * A stopped run is an orderly end: worker_fini runs (br_close, see
 * supervisor.c). A dead parent is not: the supervisor only exits once its
 * workers are gone, so it was killed, and so are we at any moment. */
static void check_alive(const struct br_ring *r, const struct br_loader_ctx *ctx,
                        struct br_worker_env *env, pid_t parent)
{
    if (getppid() != parent)
        worker_exit(NULL, NULL);
    /* Relaxed: a flag that publishes nothing, and once the seq_cst load in
     * br__worker_sleep has seen STOPPING, this later load of the same word
     * cannot see RUNNING again. */
    if (br__load_relaxed_u32(&r->hdr->state) != BR_RUN_RUNNING)
        worker_exit(env, ctx);
}

/* Takes the next seq from the claim counter. The record says PENDING(c)
 * before the CAS and c after it, so that if this worker dies in between,
 * the supervisor can tell whether c may have been taken (see
 * supervisor.c). Returns false when the run is over. */
static bool claim_next(const struct br_ring *r, struct br_worker_rec *rec, uint64_t *seq)
{
    struct br_ring_header *h = r->hdr;
    uint64_t c = br__load_relaxed_u64(&h->claim);
    for (;;) {
        if (c >= h->end_seq)
            return false;
        br__store_relaxed_u64(&rec->job, c | BR_JOB_PENDING);
        /* Release: the PENDING record is visible to whoever acquires the
         * new claim value (the supervisor's acquire load of claim). */
        if (br__cas_acq_rel_u64(&h->claim, &c, c + 1))
            break;
    }
    br__store_release_u64(&rec->job, c);
    *seq = c;
    return true;
}

/*
 * Naps only on rings of at least this many slots. On fewer, the batches
 * still ready when a nap ends are one or two loads' worth, and a nap that
 * ends late by a wake-up's time on a VM (tens of microseconds) makes the
 * trainer wait: overlap at 16 MiB (2 slots, a step as long as the load)
 * fell from 0.95-0.98 to 0.80-0.90 with naps there, even with the guard on
 * measured lateness below. Deep rings are where a kick per half ring costs
 * a trainer that the workers keep ahead of (slow-trainer, 64 KiB: 2.7-3.4
 * us of every step without naps, 1.1 with them).
 */
#define BR_NAP_MIN_SLOTS 8u

/* How long a worker whose slot (that of seq) is not yet free may nap, in
 * ns, before its slot and the run after it should be free at the
 * consumer's pace; 0 when it should sleep until kicked instead: pace not
 * known yet, a nap longer than a slice, or one whose usual lateness the
 * batches still ready at its end would not cover (the consumer would run
 * dry and kick anyway, as on a ring of 2 slots of a fast trainer). Updates
 * the pace from the cursor: while a worker finds its slot taken the ring
 * is full, so the cursor moves at the trainer's pace. */
static uint64_t nap_ns(const struct br_ring *r, struct br_worker_env *env, uint64_t seq)
{
    const uint64_t now = br__now_ns();
    const uint64_t cursor = br__load_acquire_u64(&r->hdr->cursor);
    const uint64_t run = r->nslots / 2 ? r->nslots / 2 : 1;
    /* The slot of seq is given back when the consumer takes the batch
     * after seq - nslots, and the run of `run` slots after it (the one a
     * release-run kick would have freed) `run` batches later. */
    const uint64_t free_at = seq + run + 1;
    uint64_t pace = env->pace_ns, nap, cover;

    if (env->pace_at_ns && cursor > env->pace_cursor) {
        uint64_t sample = (now - env->pace_at_ns) / (cursor - env->pace_cursor);
        /* Errs short: a nap too long drains the ring and makes the trainer
         * wait, one too short costs this worker a wake-up. So a faster
         * pace is taken at once, and a slower one at most doubles the
         * average per sample: a trainer that paused (an evaluation, a
         * checkpoint) is not taken for a slow one. */
        if (!pace || sample < pace)
            pace = sample;
        else
            pace = pace - pace / 4 + (sample < 2 * pace ? sample : 2 * pace) / 4;
        env->pace_ns = pace;
    }
    env->pace_cursor = cursor;
    env->pace_at_ns = now;
    if (!pace || r->nslots < BR_NAP_MIN_SLOTS || free_at < r->nslots ||
        free_at - r->nslots <= cursor)
        return 0;
    /* The batches still ready when the nap ends must outlast the load this
     * worker still has to do then, by twice the lateness: it varies from
     * nap to nap, and a late nap the ready batches do not cover is time
     * the trainer waits. A refused nap measures nothing, so the lateness seen once (a nap
     * that lost its CPU, say) fades back towards the slack, and naps are
     * tried again. */
    if (__builtin_mul_overflow(r->nslots - run, pace, &cover) || cover <= env->load_avg_ns ||
        cover - env->load_avg_ns <= 2 * env->nap_late_ns) {
        if (env->nap_late_ns > env->timer_slack_ns)
            env->nap_late_ns -= (env->nap_late_ns - env->timer_slack_ns) / 4;
        return 0;
    }
    if (__builtin_mul_overflow(free_at - r->nslots - cursor, pace, &nap) ||
        nap >= UINT64_C(1000000) * BR_WORKER_SLICE_MS)
        return 0;
    return nap;
}

/* Waits until the slot of seq is (lap, FREE) and moves it to LOADING. A
 * replacement taking over a dead worker's batch also accepts LOADING. If
 * the run is stopped meanwhile, abandons seq and exits (check_alive). */
static void take_slot(const struct br_ring *r, const struct br_loader_ctx *ctx,
                      struct br_worker_env *env, uint64_t seq, bool takeover,
                      struct br_worker_rec *rec, pid_t parent)
{
    struct br_slot_desc *d = br__slot_desc(r, seq);
    const uint64_t lap = br__slot_lap(r, seq);
    const uint32_t free_word = br__slot_word(lap, BR_FREE);
    const uint32_t loading = br__slot_word(lap, BR_LOADING);
    uint64_t t0 = 0;
    bool napped = false;

    for (;;) {
        /* The CAS without a load before it: the consumer wrote the word
         * last (its release of the slot), and a load would fetch the line
         * shared only for the CAS to fetch it again exclusive, two
         * transfers between cores per batch instead of one. Its acquire
         * (on failure too) pairs with the consumer's release of (lap,
         * FREE): it has stopped reading the slot before we overwrite it. */
        uint32_t w = free_word;
        uint64_t nap = 0;
        if (br__cas_acq_rel_u32(&d->word, &w, loading))
            break;
        if (takeover && w == loading)
            break;
        if (w == free_word)
            continue;
        if (!t0)
            t0 = br__now_ns();
        /* First a nap timed to the consumer's pace, which the consumer's
         * release-run kick skips (no syscall in the trainer); if the slot
         * is still taken after it, a sleep until the consumer kicks:
         * once it has released a run of slots (kick_every, half the ring)
         * or before it waits itself (ring.c, "Waking workers"). So a
         * trainer that pauses costs a worker one extra wake-up, and a
         * consumer about to wait wakes nappers too: no nap is needed for
         * progress. */
        if (!napped) {
            napped = true;
            nap = nap_ns(r, env, seq);
        }
        br__add_single_writer_u64(&rec->slot_sleeps, 1);
        if (nap) {
            uint64_t end = br__now_ns() + nap;
            if (br__worker_sleep((struct br_ring *)r, d, w, nap, BR_NAPPER_ONE) == -ETIMEDOUT) {
                uint64_t late = br__now_ns() - end;
                env->nap_late_ns = env->nap_late_ns - env->nap_late_ns / 4 + late / 4;
            }
        } else
            br__worker_sleep((struct br_ring *)r, d, w, UINT64_C(1000000) * BR_WORKER_SLICE_MS,
                             BR_SLEEPER_ONE);
        check_alive(r, ctx, env, parent);
    }
    if (t0)
        br__add_single_writer_u64(&rec->slot_wait_ns, br__now_ns() - t0);
}

/* A worker whose worker_init failed: it has reported the failure in the
 * slot of the batch it claimed, and now waits to be stopped. Exiting would
 * look like a death and start a replacement that fails the same way. */
static _Noreturn void wait_for_stop(const struct br_ring *r, const struct br_loader_ctx *ctx,
                                    struct br_worker_env *env, pid_t parent)
{
    for (;;) {
        br__worker_sleep((struct br_ring *)r, &r->desc[0], br__load_relaxed_u32(&r->desc[0].word),
                         UINT64_C(1000000) * BR_WORKER_SLICE_MS, BR_SLEEPER_ONE);
        check_alive(r, ctx, env, parent);
    }
}

_Noreturn void br__worker_main(const struct br_ring *r, const struct br_loader_ctx *ctx,
                               uint32_t index, uint64_t first_job, pid_t parent)
{
    struct br_worker_rec *rec = &r->workers[index];
    struct br_worker_env env;
    char msg[BR_MSG_CAP];
    bool takeover = first_job != BR_JOB_IDLE;
    uint64_t seq = first_job;
    int rc;

    /* Die with the parent; and if it died before prctl took effect, go. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        worker_exit(NULL, NULL);
    /* The trainer's signal handlers and mask are not the worker's: a crash
     * in the loader must kill the worker with its own signal, so that the
     * supervisor can name it. Ctrl-C is the trainer's to handle: a worker
     * dies with the trainer anyway. */
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            signal(sig, sig == SIGINT ? SIG_IGN : SIG_DFL);
    {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
    }
    /* fork does not copy the page tables of shared mappings: fault in the
     * header, descriptors and metadata now; each slot's data on its first
     * use (populate_slot). */
    if (br__ring_populate_range(r, 0, (uint64_t)(r->data - (uint8_t *)r->base), msg) < 0) {
        fprintf(stderr, "batchring worker %u: %s\n", index, msg);
        fflush(NULL);
        _exit(1);
    }
    br__store_relaxed_i32(&rec->pid, (int32_t)getpid());
    rc = br__worker_env_init(&env, r, ctx, index, rec, true, msg);
    if (rc == 0) {
        env.populated = calloc(r->nslots, 1);
        if (!env.populated && br__ring_populate(r, msg) < 0)
            rc = -ENOMEM;
    }
    if (rc) {
        /* Report through the first batch this worker would have loaded,
         * so that the consumer gets the message in order. env is either
         * empty (worker_init failed: no worker_fini) or initialised (the
         * slot bitmap could not be had): worker_exit does what is due. */
        if (takeover || claim_next(r, rec, &seq)) {
            take_slot(r, ctx, &env, seq, takeover, rec, parent);
            br__fail_slot(r, ctx, seq, index, rc, msg);
        }
        wait_for_stop(r, ctx, &env, parent);
    }

    for (;;) {
        /* Checked before every claim: a worker that was loading when the
         * run was stopped finishes that batch, then ends here. */
        if (br__load_relaxed_u32(&r->hdr->state) != BR_RUN_RUNNING)
            worker_exit(&env, ctx);
        if (!takeover && !claim_next(r, rec, &seq))
            worker_exit(&env, ctx);
        take_slot(r, ctx, &env, seq, takeover, rec, parent);
        takeover = false;
        br__fill_slot(r, ctx, &env, seq);
    }
}
