/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <string.h>

#include "producer/schedule.h"
#include "ring/error.h"

/* Feistel rounds: four, each a splitmix64 finaliser, make a keyed
 * permutation with no structure a training run could notice. */
#define BR_FEISTEL_ROUNDS 4

uint64_t br__mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15u;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9u;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebu;
    return x ^ (x >> 31);
}

int br__schedule_init(struct br_schedule *s, const struct br_schedule_options *o, char *msg)
{
    memset(s, 0, sizeof *s);
    s->n_ids = o->n_ids;
    s->batch_size = o->batch_size;
    s->drop_last = o->drop_last;
    s->epochs = o->epochs;
    s->shuffle = o->shuffle;
    s->seed = o->seed;
    s->world = o->world ? o->world : 1;
    s->rank = o->rank;
    s->start_seq = o->start_seq;
    if (s->rank >= s->world)
        return br__fail(msg, -EINVAL, "rank %u must be less than world %u", s->rank, s->world);
    if (s->world > o->n_ids)
        return br__fail(msg, -EINVAL, "world %u is larger than n_ids %llu: some rank would get "
                        "no sample", s->world, (unsigned long long)o->n_ids);
    s->per_epoch = o->shard_drop_tail ? o->n_ids / s->world
                                      : (o->n_ids - 1) / s->world + 1;
    if (o->batch_size == 0 || s->per_epoch < o->batch_size)
        return br__fail(msg, -EINVAL,
                        "batch_size %u must be between 1 and the samples per epoch (%llu%s)",
                        o->batch_size, (unsigned long long)s->per_epoch,
                        s->world > 1 ? " on this rank" : ", n_ids");
    s->batches_per_epoch = o->drop_last ? s->per_epoch / o->batch_size
                                        : (s->per_epoch - 1) / o->batch_size + 1;
    if (o->epochs == 0)
        s->end_seq = UINT64_MAX;
    else if (__builtin_mul_overflow(o->epochs, s->batches_per_epoch, &s->end_seq) ||
             s->end_seq >= (UINT64_C(1) << 62))
        return br__fail(msg, -EOVERFLOW,
                        "epochs %llu x %llu batches per epoch overflows; use epochs = 0 for "
                        "an endless run",
                        (unsigned long long)o->epochs, (unsigned long long)s->batches_per_epoch);
    /* Seqs stay below 2^62, as end_seq does above: a worker record marks
     * a claim in bit 63 of the seq (BR_JOB_PENDING) and the ring adds up
     * to a lap of slots to a seq, neither of which may overflow. An
     * endless run (end_seq UINT64_MAX) has no end to be past: only that
     * limit applies to it. */
    if (o->start_seq >= (UINT64_C(1) << 62))
        return br__fail(msg, -EINVAL,
                        "start_seq %llu is too large: batch numbers must stay below 2^62 "
                        "(%llu)",
                        (unsigned long long)o->start_seq, (unsigned long long)(UINT64_C(1) << 62));
    if (o->start_seq > s->end_seq)
        return br__fail(msg, -EINVAL,
                        "start_seq %llu is past the end of the run (%llu batches: %llu epochs x "
                        "%llu)",
                        (unsigned long long)o->start_seq, (unsigned long long)s->end_seq,
                        (unsigned long long)o->epochs, (unsigned long long)s->batches_per_epoch);
    s->half_bits = 1;
    while (s->half_bits < 32 && (UINT64_C(1) << (2 * s->half_bits)) < o->n_ids)
        s->half_bits++;
    return 0;
}

struct br_batch_place br__schedule_place(const struct br_schedule *s, uint64_t seq)
{
    struct br_batch_place p;
    uint64_t left;
    p.epoch = seq / s->batches_per_epoch;
    p.batch = seq % s->batches_per_epoch;
    p.first = p.batch * s->batch_size;
    left = s->per_epoch - p.first;
    p.count = left < s->batch_size ? (uint32_t)left : s->batch_size;
    return p;
}

/* The epoch's permutation of [0, 2^(2 half_bits)), a balanced Feistel
 * network keyed by (seed, epoch). */
static uint64_t feistel(const struct br_schedule *s, uint64_t key, uint64_t x)
{
    const unsigned h = s->half_bits;
    const uint64_t mask = (UINT64_C(1) << h) - 1;
    uint64_t left = x >> h, right = x & mask;
    for (unsigned r = 0; r < BR_FEISTEL_ROUNDS; r++) {
        /* A full 64-bit mix of the half and the round key: with halves of a
         * few bits a cheaper round function leaves visible structure (runs
         * of neighbours staying neighbours, many fixed points). */
        uint64_t f = br__mix64(right ^ (key + r * 0x9e3779b97f4a7c15u));
        uint64_t next = left ^ (f & mask);
        left = right;
        right = next;
    }
    return (left << h) | right;
}

/* The key of an epoch's permutation. */
static uint64_t epoch_key(const struct br_schedule *s, uint64_t epoch)
{
    return br__mix64(s->seed ^ br__mix64(epoch));
}

/* Position `pos` (0 .. n - 1) of the epoch's order. Cycle-walking keeps
 * the permutation inside [0, n): the domain is less than 4n, so it takes
 * under four steps on average. */
static uint64_t permute(const struct br_schedule *s, uint64_t key, uint64_t pos)
{
    uint64_t x = pos;
    do
        x = feistel(s, key, x);
    while (x >= s->n_ids);
    return x;
}

/* Position of the i-th sample of place p in the epoch's order, before the
 * shuffle. */
static uint64_t position(const struct br_schedule *s, const struct br_batch_place *p, uint32_t i)
{
    uint64_t pos = (p->first + i) * s->world + s->rank;
    if (pos >= s->n_ids)
        pos %= s->n_ids; /* the padded tail wraps to the start of the order */
    return pos;
}

uint64_t br__schedule_index(const struct br_schedule *s, const struct br_batch_place *p,
                            uint32_t i)
{
    uint64_t pos = position(s, p, i);
    return s->shuffle ? permute(s, epoch_key(s, p->epoch), pos) : pos;
}

/* Indices shuffled per chunk of a batch: the stack holds its positions. */
#define BR_SCHEDULE_CHUNK 256u

/*
 * permute() of `count` positions at once, into x, in place. One id's
 * Feistel rounds are a chain of dependent multiplies (~50 ns an id with
 * its cycle-walk); the ids of a batch are independent, so each pass runs
 * one step of every id still outside [0, n) back to back, and the core
 * overlaps their chains. The ids still walking are kept in a list rebuilt
 * without branches, so the walk's coin flips cost no mispredictions. Each
 * id takes exactly the steps permute() takes: the order is the same.
 */
static void permute_chunk(const struct br_schedule *s, uint64_t key, uint64_t *x, uint32_t count)
{
    uint16_t walking[BR_SCHEDULE_CHUNK];
    uint32_t n = 0;
    for (uint32_t i = 0; i < count; i++) {
        x[i] = feistel(s, key, x[i]);
        walking[n] = (uint16_t)i;
        n += x[i] >= s->n_ids;
    }
    while (n) {
        uint32_t still = 0;
        for (uint32_t k = 0; k < n; k++) {
            uint16_t i = walking[k];
            x[i] = feistel(s, key, x[i]);
            walking[still] = i;
            still += x[i] >= s->n_ids;
        }
        n = still;
    }
}

void br__schedule_fill(const struct br_schedule *s, const struct br_batch_place *p,
                       const uint64_t *ids, const int32_t *labels, uint64_t *out_ids,
                       int32_t *out_labels)
{
    if (!s->shuffle && s->world == 1) {
        /* The common case: a contiguous run of the arrays. */
        if (ids)
            memcpy(out_ids, ids + p->first, (size_t)p->count * sizeof *out_ids);
        else
            for (uint32_t i = 0; i < p->count; i++)
                out_ids[i] = p->first + i;
        if (labels)
            memcpy(out_labels, labels + p->first, (size_t)p->count * sizeof *out_labels);
        return;
    }
    const uint64_t key = s->shuffle ? epoch_key(s, p->epoch) : 0;
    /* Stepped by each chunk's own length: `first` never passes count, even
     * for a count within a chunk of UINT32_MAX. */
    for (uint32_t first = 0, n; first < p->count; first += n) {
        uint64_t index[BR_SCHEDULE_CHUNK];
        n = p->count - first < BR_SCHEDULE_CHUNK ? p->count - first : BR_SCHEDULE_CHUNK;
        for (uint32_t i = 0; i < n; i++)
            index[i] = position(s, p, first + i);
        if (s->shuffle)
            permute_chunk(s, key, index, n);
        for (uint32_t i = 0; i < n; i++) {
            out_ids[first + i] = ids ? ids[index[i]] : index[i];
            if (labels)
                out_labels[first + i] = labels[index[i]];
        }
    }
}

uint64_t br__schedule_batch_seed(const struct br_schedule *s, uint64_t seq)
{
    return br__mix64(s->seed ^ br__mix64(seq ^ ((uint64_t)s->rank << 48)));
}
