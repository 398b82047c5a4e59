/* SPDX-License-Identifier: MIT */
/*
 * The schedule: seq -> (epoch, batch in epoch) -> positions -> sample ids.
 * A pure function of the options, so workers keep no state for it, any
 * worker can load any batch, and a run can be resumed from any seq.
 *
 * Each epoch's order is a permutation of the n positions: the identity, or
 * with shuffle a keyed Feistel network over the next power of four with
 * cycle-walking (O(1) memory whatever n). Sharding splits that order across
 * `world` ranks: rank r takes positions r, r + world, r + 2 world, ..., so
 * ranks are disjoint and together cover every position; to keep ranks in
 * step, each sees ceil(n / world) positions per epoch, wrapping around to
 * the start of the order (the default), or floor(n / world) with
 * shard_drop_tail.
 */
#ifndef BR_PRODUCER_SCHEDULE_H
#define BR_PRODUCER_SCHEDULE_H

#include <stdbool.h>
#include <stdint.h>

struct br_schedule {
    uint64_t n_ids;             /* positions in the whole dataset */
    uint64_t per_epoch;         /* positions this rank sees per epoch */
    uint64_t batches_per_epoch;
    uint64_t start_seq;         /* first seq of this run */
    uint64_t end_seq;           /* first seq past the last epoch; UINT64_MAX = forever */
    uint64_t epochs;            /* 0 = forever */
    uint64_t seed;
    uint32_t batch_size;
    uint32_t rank;
    uint32_t world;
    uint32_t half_bits;         /* Feistel halves: 2^(2 half_bits) >= n_ids */
    bool drop_last;
    bool shuffle;
};

/* What the schedule is made from (the matching br_options fields). */
struct br_schedule_options {
    uint64_t n_ids;
    uint32_t batch_size;
    bool drop_last;
    uint64_t epochs;
    bool shuffle;
    uint64_t seed;
    uint32_t rank;
    uint32_t world;             /* 0 or 1: no sharding */
    bool shard_drop_tail;
    uint64_t start_seq;
};

/* One batch's place in the run. */
struct br_batch_place {
    uint64_t epoch;
    uint64_t batch;  /* within the epoch */
    uint64_t first;  /* this rank's position of its first sample in the epoch */
    uint32_t count;
};

/* Returns 0, or -EINVAL / -EOVERFLOW with a message naming the option. */
int br__schedule_init(struct br_schedule *s, const struct br_schedule_options *o, char *msg);

struct br_batch_place br__schedule_place(const struct br_schedule *s, uint64_t seq);

/* The index into ids (0 .. n_ids - 1) of the i-th sample of place p. */
uint64_t br__schedule_index(const struct br_schedule *s, const struct br_batch_place *p,
                            uint32_t i);

/* Writes the place's sample ids to out_ids (ids NULL: the ids are the
 * indices themselves) and, when labels is not NULL, their labels. */
void br__schedule_fill(const struct br_schedule *s, const struct br_batch_place *p,
                       const uint64_t *ids, const int32_t *labels, uint64_t *out_ids,
                       int32_t *out_labels);

/* The seed of batch seq: the same whichever worker loads it. */
uint64_t br__schedule_batch_seed(const struct br_schedule *s, uint64_t seq);

/* A 64-bit mixer (splitmix64's finaliser). */
uint64_t br__mix64(uint64_t x);

#endif
