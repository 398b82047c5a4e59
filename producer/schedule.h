/* SPDX-License-Identifier: MIT */
/*
 * The schedule: seq -> (epoch, batch in epoch) -> positions -> sample ids.
 * A pure function of the options, so workers keep no state for it and a run
 * can be resumed from any seq.
 */
#ifndef BR_PRODUCER_SCHEDULE_H
#define BR_PRODUCER_SCHEDULE_H

#include <stdbool.h>
#include <stdint.h>

struct br_schedule {
    uint64_t n_ids;
    uint64_t batches_per_epoch;
    uint64_t end_seq; /* first seq past the last epoch; UINT64_MAX = forever */
    uint64_t epochs;  /* 0 = forever */
    uint32_t batch_size;
    bool drop_last;
};

/* One batch's place in the run. */
struct br_batch_place {
    uint64_t epoch;
    uint64_t batch;  /* within the epoch */
    uint64_t first;  /* position of its first sample in the epoch's order */
    uint32_t count;
};

/* Returns 0, or -EINVAL / -EOVERFLOW with a message. */
int br__schedule_init(struct br_schedule *s, uint64_t n_ids, uint32_t batch_size, bool drop_last,
                      uint64_t epochs, char *msg);

struct br_batch_place br__schedule_place(const struct br_schedule *s, uint64_t seq);

/* Writes the place's sample ids (ids[first .. first + count)) to out_ids
 * and, when labels is not NULL, their labels to out_labels. */
void br__schedule_fill(const struct br_schedule *s, const struct br_batch_place *p,
                       const uint64_t *ids, const int32_t *labels, uint64_t *out_ids,
                       int32_t *out_labels);

#endif
