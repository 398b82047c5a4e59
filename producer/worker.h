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

#include "producer/schedule.h"
#include "ring/ring.h"

/* What a worker needs to turn a seq into a batch. Lives in the parent;
 * forked workers see the copy they were forked with. */
struct br_loader_ctx {
    br_loader_fn load;
    void *user;
    const uint64_t *ids;
    const int32_t *labels; /* NULL without labels */
    struct br_schedule sched;
};

/* Runs the loader for `seq` into its slot, which the caller holds in
 * LOADING, and publishes READY or FAILED. Counts into rec when not NULL.
 * Returns 0 or the failure code stored in the slot. */
int br__fill_slot(const struct br_ring *r, const struct br_loader_ctx *ctx, uint64_t seq,
                  uint32_t worker, struct br_worker_rec *rec);

/* Writes "batch S (epoch E, N samples, ids A..B)" to buf. */
void br__describe_batch(char *buf, size_t cap, const struct br_loader_ctx *ctx, uint64_t seq);

/* The body of a forked worker: loads batches until the run ends, the
 * parent dies or the ring is stopped. first_job is a dead worker's batch
 * to load first, or BR_JOB_IDLE. */
_Noreturn void br__worker_main(const struct br_ring *r, const struct br_loader_ctx *ctx,
                               uint32_t index, uint64_t first_job, pid_t parent);

/* Supervisor of the worker processes; lives in the process that forks them. */
struct br_supervisor {
    struct br_ring *ring;
    const struct br_loader_ctx *ctx;
    pid_t *pids;          /* per worker; 0 when not running */
    pid_t parent;
    uint32_t nworkers;
    uint32_t live;
    uint32_t max_restarts;
    bool stopped;
};

/* Forks ring->hdr->nworkers workers. On failure nothing is left running.
 * Returns 0 or -errno with a message. */
int br__sup_start(struct br_supervisor *s, struct br_ring *ring, const struct br_loader_ctx *ctx,
                  uint32_t max_restarts, char *msg);

/* Reaps dead workers without blocking; gives a dead worker's batch to its
 * replacement, or records the failure in the header once max_restarts is
 * used up. Cheap when nothing happened (one waitpid per worker). */
void br__sup_poll(struct br_supervisor *s);

/* Stops every worker (SIGKILL) and reaps it. Idempotent. */
void br__sup_stop(struct br_supervisor *s);

/* Frees what br__sup_start allocated; call after br__sup_stop. */
void br__sup_free(struct br_supervisor *s);

#endif
