/* SPDX-License-Identifier: MIT */
/*
 * The generator's state, shared by the files of the API layer (api/):
 * handles.c (the handle table, close), open.c (options, br_open),
 * named.c (named rings: attach, serve, observers), stats.c (counters,
 * checkpoint) and consumer/next.c (the hot path, br_next).
 */
#ifndef BR_API_GEN_H
#define BR_API_GEN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <batchring.h>

#include "producer/schedule.h"
#include "producer/worker.h"
#include "ring/error.h"
#include "ring/ring.h"

enum gen_state { GEN_RUNNING, GEN_EOF, GEN_STOPPED };

/* LOCAL: an in-process generator (workers feed this process's br_next).
 * SERVE: the producer of a named ring, with no consumer of its own.
 * ATTACHED: the consumer of a named ring that another process serves. */
enum gen_role { ROLE_LOCAL, ROLE_SERVE, ROLE_ATTACHED };

struct br_gen {
    uint64_t handle;
    struct br_ring ring;
    struct br_loader_ctx ctx;
    struct br_supervisor sup;
    uint64_t *ids;         /* our copy */
    int32_t *labels;       /* our copy, or NULL */
    uint64_t cursor;       /* next seq to return */
    uint64_t held;         /* seq of the batch the caller holds */
    bool holding;
    enum gen_state state;
    uint32_t nworkers;
    int timeout_ms;
    uint64_t opened_ns;
    uint32_t kick_every;    /* releases between wake-ups of sleeping workers */
    uint32_t released;      /* releases since the last wake-up */
    bool spin_adaptive;     /* a core is free for the consumer to spin on */
    uint64_t wait_avg_ns;   /* moving average of br_next's waits */
    /* The start of the last wait that timed out, and its seq: a br_next
     * that retries the same batch shows batchring stat the whole wait. */
    uint64_t timed_out_seq, timed_out_t0;
    /* workers = 0: the trainer loads, with its own reader and counters. */
    struct br_worker_env inline_env;
    struct br_worker_rec inline_rec;
    bool inline_ready;
    enum gen_role role;
    char name[256];         /* the named ring, or "" */
    pid_t producer_pid;     /* ATTACHED: who serves the ring */
    uint64_t producer_start;
    uint64_t consumer_id;   /* ATTACHED: our claim on the ring */
    char msg[BR_MSG_CAP];   /* br_last_error */
    char first_error[BR_MSG_CAP];
};

/* The generator behind a handle, or NULL for a closed or foreign one. */
struct br_gen *br__gen_lookup(const br_gen *handle);
/* Gives g a handle; -EMFILE with a message when the table is full. */
int br__gen_register(struct br_gen *g, char *msg);
/* Removes g's handle; false if it was not (or no longer) registered. */
bool br__gen_unregister(const br_gen *handle, struct br_gen **out);
/* Stops the workers, gives up a consumer claim, unmaps and frees g. */
void br__gen_free(struct br_gen *g);
/* Online CPUs, at least 1. */
uint32_t br__online_cpus(void);
/* Gives the batch the caller holds back to the workers. */
void br__gen_release_held(struct br_gen *g);
/* Whether a consumer holds its lock on the ring behind fd. */
bool br__consumer_alive(int fd);

#endif /* BR_API_GEN_H */
