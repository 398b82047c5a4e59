/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <string.h>

#include "producer/schedule.h"
#include "ring/error.h"

int br__schedule_init(struct br_schedule *s, uint64_t n_ids, uint32_t batch_size, bool drop_last,
                      uint64_t epochs, char *msg)
{
    memset(s, 0, sizeof *s);
    if (batch_size == 0 || n_ids < batch_size)
        return br__fail(msg, -EINVAL, "batch_size %u must be between 1 and n_ids (%llu)",
                        batch_size, (unsigned long long)n_ids);
    s->n_ids = n_ids;
    s->batch_size = batch_size;
    s->drop_last = drop_last;
    s->epochs = epochs;
    s->batches_per_epoch = drop_last ? n_ids / batch_size : (n_ids - 1) / batch_size + 1;
    if (epochs == 0)
        s->end_seq = UINT64_MAX;
    else if (__builtin_mul_overflow(epochs, s->batches_per_epoch, &s->end_seq) ||
             s->end_seq >= (UINT64_C(1) << 62))
        return br__fail(msg, -EOVERFLOW,
                        "epochs %llu x %llu batches per epoch overflows; use epochs = 0 for "
                        "an endless run",
                        (unsigned long long)epochs, (unsigned long long)s->batches_per_epoch);
    return 0;
}

struct br_batch_place br__schedule_place(const struct br_schedule *s, uint64_t seq)
{
    struct br_batch_place p;
    uint64_t left;
    p.epoch = seq / s->batches_per_epoch;
    p.batch = seq % s->batches_per_epoch;
    p.first = p.batch * s->batch_size;
    left = s->n_ids - p.first;
    p.count = left < s->batch_size ? (uint32_t)left : s->batch_size;
    return p;
}

void br__schedule_fill(const struct br_schedule *s, const struct br_batch_place *p,
                       const uint64_t *ids, const int32_t *labels, uint64_t *out_ids,
                       int32_t *out_labels)
{
    (void)s;
    memcpy(out_ids, ids + p->first, (size_t)p->count * sizeof *out_ids);
    if (labels)
        memcpy(out_labels, labels + p->first, (size_t)p->count * sizeof *out_labels);
}
