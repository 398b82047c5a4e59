/* SPDX-License-Identifier: MIT */
/*
 * The generator's state, shared by the files of the API layer (api/):
 * handles.c (the handle table, close), open.c (options, br_open),
 * named.c (named rings: attach, serve, observers), stats.c (counters,
 * checkpoint) and next.c (br_next around consumer/, the hot path).
 */
#ifndef BR_API_GEN_H
#define BR_API_GEN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <batchring.h>

#include "consumer/consumer.h"
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
    /* The hot path's state: cursor, held batch, spin and wake pacing. Set
     * up once the ring is mapped (br__consumer_init). */
    struct br_consumer cons;
    enum gen_state state;
    uint32_t nworkers;
    uint64_t opened_ns;
    /* workers = 0: the trainer loads, with its own reader and counters. */
    struct br_worker_env inline_env;
    struct br_worker_rec inline_rec;
    bool inline_ready;
    enum gen_role role;
    char name[256];         /* the named ring, or "" */
    pid_t producer_pid;     /* ATTACHED: who serves the ring */
    uint64_t producer_start;
    uint64_t consumer_id;   /* ATTACHED: our claim on the ring */
    /* br_region_hook_set: run on the data area, undone in br_close before
     * the unmap (br__gen_region_fini). */
    br_region_fn region_reg;
    br_region_release_fn region_unreg;
    void *region_user;
    bool region_hooked;
    /* br_pin (api/pin.c): the runtime dlopen()ed and what was registered. */
    void *pin_lib;
    int (*pin_unregister)(void *);
    void *pin_addr;
    char msg[BR_MSG_CAP];   /* br_last_error */
    char first_error[BR_MSG_CAP];
};

/* The generator behind a handle, or NULL for a closed or foreign one. */
struct br_gen *br__gen_lookup(const br_gen *handle);
/* A getter's refusal, in the calling thread's message (br_last_error(NULL)):
 * getters may run in a monitoring thread and never write g's. Names the
 * first problem: a closed or foreign handle, a NULL output, a size below
 * min_size. Returns -EINVAL. */
int br__getter_fail(const char *fn, const br_gen *handle, bool null_out, size_t size,
                    size_t min_size);
/* Gives g a handle; -EMFILE with a message when the table is full. */
int br__gen_register(struct br_gen *g, char *msg);
/* Removes g's handle; false if it was not (or no longer) registered. */
bool br__gen_unregister(const br_gen *handle, struct br_gen **out);
/* Stops the workers, gives up a consumer claim, unmaps and frees g. */
void br__gen_free(struct br_gen *g);
/* The consumer's check_alive (api/next.c): the supervisor's recorded
 * failures, and for an attached ring the producer's lock. */
int br__gen_check_alive(struct br_consumer *c);
/* One worker's shared record into the public counters (stats.c): the
 * one copy that br_worker_stats_get and br_ring_status_get share. */
void br__worker_stats_copy(const struct br_worker_rec *rec, br_worker_stats *out);
/* The data area of g's ring (br_region): 0, or -EINVAL with a message in
 * msg for a generator that has none to offer (a producer of a named ring). */
int br__gen_region(const struct br_gen *g, void **addr, size_t *len, char *msg);
/* br_pin on g (api/pin.c), its message in msg. */
int br__gen_pin(struct br_gen *g, int mode, char *msg);
/* Undoes the region hook and the pinning, before the ring is unmapped. */
void br__gen_region_fini(struct br_gen *g);
/* Whether a consumer holds its lock on the ring behind fd. */
bool br__consumer_alive(int fd);

#endif /* BR_API_GEN_H */
