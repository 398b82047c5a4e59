/* SPDX-License-Identifier: MIT */
/*
 * Producers: the loader context, filling one slot (shared by worker
 * processes and the inline generator), the worker loop, and the supervisor
 * that starts, reaps and replaces workers.
 */
#ifndef BR_PRODUCER_WORKER_H
#define BR_PRODUCER_WORKER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <batchring.h>

#include "producer/cpus.h"
#include "producer/schedule.h"
#include "ring/ring.h"

/* What a worker needs to turn a seq into a batch. Lives in the parent;
 * forked workers see the copy they were forked with. */
struct br_loader_ctx {
    br_loader_fn load;
    br_worker_init_fn worker_init; /* may be NULL */
    br_worker_fini_fn worker_fini; /* may be NULL */
    void *user;
    const uint64_t *ids;
    const int32_t *labels; /* NULL without labels */
    struct br_schedule sched;
    struct br_cpu_plan cpus; /* where the supervisor pins each worker */
};

/* What one loading process (a worker, or the trainer for workers = 0)
 * keeps between batches. */
struct br_worker_env {
    uint32_t index;
    struct br_worker_rec *rec; /* its counters */
    br_io *io;
    void *state;               /* from ctx->worker_init */
    uint8_t *populated;        /* per slot: its data is in our page tables;
                                  NULL when the whole ring is */
    /* The consumer's pace as this worker sees it when its slot is not yet
     * free (take_slot): the cursor and the time at the last such moment,
     * and an average of ns per batch consumed (0: not known yet). */
    uint64_t pace_cursor;
    uint64_t pace_at_ns;
    uint64_t pace_ns;
    /* How late this worker's naps end (an average; the timer slack until
     * a nap has run out): a nap pays only if the batches still ready when
     * it should end cover that much. */
    uint64_t nap_late_ns;
    uint64_t timer_slack_ns;
    /* This worker's recent time per load (an average over about 4): after
     * a nap it still has to load before the ready batches run out. */
    uint64_t load_avg_ns;
};

/* Creates env's reader and runs ctx->worker_init. Returns 0, or a negative
 * code with the message in msg (BR_MSG_CAP bytes). */
int br__worker_env_init(struct br_worker_env *env, const struct br_ring *r,
                        const struct br_loader_ctx *ctx, uint32_t index,
                        struct br_worker_rec *rec, bool single_issuer, char *msg);

/* Runs ctx->worker_fini (after a successful init) and frees the reader. */
void br__worker_env_fini(struct br_worker_env *env, const struct br_loader_ctx *ctx);

/* Runs the loader for `seq` into its slot, which the caller holds in
 * LOADING, and publishes READY or FAILED. Returns 0 or the failure code
 * stored in the slot. */
int br__fill_slot(const struct br_ring *r, const struct br_loader_ctx *ctx,
                  struct br_worker_env *env, uint64_t seq);

/* Publishes seq's slot (held in LOADING) as FAILED with `text`. */
void br__fail_slot(const struct br_ring *r, const struct br_loader_ctx *ctx, uint64_t seq,
                   uint32_t worker, int code, const char *text);

/* Writes "batch S (epoch E, N samples, ids A..B)" to buf. */
void br__describe_batch(char *buf, size_t cap, const struct br_loader_ctx *ctx, uint64_t seq);

/* The body of a forked worker: loads batches until the run ends, the
 * parent dies or the ring is stopped. first_job is a dead worker's batch
 * to load first, or BR_JOB_IDLE. */
_Noreturn void br__worker_main(const struct br_ring *r, const struct br_loader_ctx *ctx,
                               uint32_t index, uint64_t first_job, pid_t parent);

/*
 * The supervisor is a process of its own, forked by br_open, that forks the
 * workers and reaps them. Workers die with it (PR_SET_PDEATHSIG), and it
 * dies with the thread that opened the generator; since the supervisor is
 * single-threaded, a worker forked to replace a dead one never depends on
 * whichever trainer thread happened to be in br_next.
 */
struct br_supervisor {
    struct br_ring *ring;
    const struct br_loader_ctx *ctx;
    pid_t *pids;          /* in the supervisor: per worker, 0 when not running */
    pid_t parent;         /* in the supervisor: its own pid, the workers' parent */
    pid_t pid;            /* in the trainer: the supervisor process, 0 if none */
    uint32_t nworkers;
    uint32_t live;
    uint32_t max_restarts;
};

/* Forks the supervisor, which forks ring->hdr->nworkers workers, and waits
 * until they run. On failure nothing is left running. Returns 0 or -errno
 * with a message. With no workers it does nothing. */
int br__sup_start(struct br_supervisor *s, struct br_ring *ring, const struct br_loader_ctx *ctx,
                  uint32_t max_restarts, char *msg);

/* In the trainer: is the supervisor still there? Returns 0, or
 * BR_EWORKER with a message when it died. Costs one waitpid. */
int br__sup_check(struct br_supervisor *s, char *msg);

/* How long an orderly stop (br_close) lets workers finish the batch they
 * are loading and run worker_fini before they are killed. Without a
 * worker_fini hook there is nothing to wait for: they are killed at once. */
#define BR_STOP_GRACE_MS 1000

/* In the trainer: stops the supervisor, which stops the workers (with
 * worker_fini: tells them to and waits up to BR_STOP_GRACE_MS, then kills
 * the rest) and reaps every one before it exits; returns once all of them
 * are gone. Idempotent. */
void br__sup_stop(struct br_supervisor *s);

#endif
