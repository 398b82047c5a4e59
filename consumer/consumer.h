/* SPDX-License-Identifier: MIT */
/*
 * The consumer's side of the slot protocol: what br_next does with the
 * ring. Includes only the ring layer and the public types; the API layer
 * (api/) embeds a struct br_consumer in its generator.
 */
#ifndef BR_CONSUMER_CONSUMER_H
#define BR_CONSUMER_CONSUMER_H

#include <stdbool.h>
#include <stdint.h>

#include <batchring.h>

#include "ring/ring.h"

struct br_consumer {
    struct br_ring *ring;   /* the ring it consumes (its owner maps it) */
    uint64_t cursor;        /* next seq to return */
    uint64_t held;          /* seq of the batch the caller holds */
    bool holding;
    /* opt.hold: with hold >= 2 nothing is released implicitly, and the
     * caller holds nheld batches (each READY on its own lap, below the
     * cursor; the slot word is the record of what is held). */
    uint32_t hold, nheld;
    /* After a takeover: the batches below skip_end that the consumer before
     * released out of order are skipped, not delivered again. On a ring of
     * hold 1, where nothing is released out of order, skip_end is the
     * first unreleased batch (br_attach): nothing is skipped. */
    uint64_t skip_end;
    int timeout_ms;         /* -1: wait forever */
    uint32_t kick_every;    /* releases between wake-ups of sleeping workers */
    uint32_t gather;        /* batches a sleeping consumer waits to be ready */
    uint32_t released;      /* releases since the last wake-up */
    bool spin_adaptive;     /* a core is free for the consumer to spin on */
    uint64_t wait_avg_ns;   /* moving average of br_next's waits, per batch
                               (a wait that slept for a run: per ready batch) */
    /* The workers' pace as the consumer sees it: the batches taken and the
     * time between the starts of two waits (sleep_for_run's bound). */
    uint64_t pace_seq, pace_t0, pace_ns;
    /* Futex sleeps for a batch (br_stats.stall_sleeps): written by the
     * consumer's thread only, read by br_stats_get from any thread. */
    _Atomic uint64_t sleeps;
    /* The start of the last wait that timed out, and its seq: a br_next
     * that retries the same batch shows batchring stat the whole wait. */
    uint64_t timed_out_seq, timed_out_t0;
    char *msg;              /* the owner's message buffer (BR_MSG_CAP bytes) */
    /* Called between sleep slices: 0 while whoever feeds the ring lives,
     * or a negative code with a message in msg, which ends the wait. */
    int (*check_alive)(struct br_consumer *c);
};

/* A slot descriptor as br_next uses it: every field read once from shared
 * memory, checked, and used from here. */
struct br_slot_fields {
    uint64_t seq, epoch, batch, size;
    uint32_t count, worker, has_offsets;
    int32_t error;
};

/* Sets c up to consume ring (created or attached, geometry bound) from
 * cursor on. Spins adaptively when the ring's workers leave a core free. */
void br__consumer_init(struct br_consumer *c, struct br_ring *ring, uint64_t cursor,
                       int timeout_ms, char *msg, int (*check_alive)(struct br_consumer *));

/* Waits until the slot of seq is READY or FAILED on its lap and stores the
 * word it found in *word. Returns 0, -ETIMEDOUT (c->timeout_ms passed; the
 * same seq may be waited for again), the code check_alive returned, or a
 * failure the supervisor recorded for this seq; with a message in c->msg. */
int br__consumer_wait(struct br_consumer *c, uint64_t seq, uint32_t *word);

/* Reads the descriptor of seq (published READY, or FAILED when `failed`)
 * once into *f and checks every field against the ring's geometry.
 * Returns 0, or BR_EBADRING with a message naming batch, field and value. */
int br__consumer_check_slot(const struct br_consumer *c, uint64_t seq, bool failed,
                            struct br_slot_fields *f);

/* A FAILED slot whose descriptor br__consumer_check_slot accepted: returns
 * BR_ELOADER with the loader's message (or BR_EBADRING for a damaged
 * text). */
int br__consumer_loader_failure(const struct br_consumer *c, uint64_t seq,
                                const struct br_slot_fields *f);

/* Hands the checked batch seq to the caller in *out and moves the cursor
 * past it (a release store that observers and the supervisor read). */
void br__consumer_take(struct br_consumer *c, uint64_t seq, const struct br_slot_fields *f,
                       br_batch *out);

/* Gives the batch the caller holds, if any, back to the workers. */
void br__consumer_release(struct br_consumer *c);

/* Gives batch seq back (opt.hold, any order). Returns 0, or -EINVAL with a
 * message when seq is not held: not yet taken, or released already. */
int br__consumer_release_seq(struct br_consumer *c, uint64_t seq);

/* Gives back every batch held (br_close of an attached consumer). */
void br__consumer_release_all(struct br_consumer *c);

/* Before seq = c->cursor is waited for, with hold >= 2: BR_EHELD with a
 * message when the caller holds `hold` batches or the batch whose slot
 * seq needs (seq - nslots); 0 otherwise. */
int br__consumer_hold_check(struct br_consumer *c, uint64_t seq);

/* Moves the cursor past the batches below skip_end that were released
 * out of order before a takeover. */
void br__consumer_skip_released(struct br_consumer *c);

/* The first batch of the window [cursor - nslots, cursor) that is still
 * in its slot unreleased, or cursor if none: where a consumer that takes
 * over the ring resumes. */
uint64_t br__consumer_first_unreleased(const struct br_ring *r, uint64_t cursor);

/* Whether the consumer of the ring with header h waits in br_next right
 * now: the reader's side of the protocol at wait_announce. True with the
 * seq it waits for and for how long; false if it is not waiting (or ends
 * a wait every time we look). */
bool br__consumer_waiting(const struct br_ring_header *h, uint64_t *seq, uint64_t *waited_ns);

#endif /* BR_CONSUMER_CONSUMER_H */
