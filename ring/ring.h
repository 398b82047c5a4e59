/* SPDX-License-Identifier: MIT */
/*
 * The shared-memory object: geometry, create/validate/map, and the slot
 * state machine's primitives (publish, sleep). Knows nothing of loaders.
 */
#ifndef BR_RING_RING_H
#define BR_RING_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ring/atomics.h"
#include "ring/layout.h"

/* What a ring is made for: the inputs of its layout. */
struct br_ring_geometry {
    uint32_t nslots;
    uint32_t nworkers;
    uint32_t batch_size;
    uint32_t flags;            /* BR_RING_* */
    uint64_t slot_bytes;
    uint64_t n_ids;
    uint64_t epochs;
    uint64_t batches_per_epoch;
    uint64_t end_seq;
    uint64_t start_seq;        /* the run's first seq: claim and cursor start here */
};

/* One process's view of a mapped ring: pointers derived from a header
 * that has been created by us or validated. */
struct br_ring {
    void *base;
    size_t bytes;
    struct br_ring_header *hdr;
    struct br_slot_desc *desc;
    struct br_worker_rec *workers;
    uint8_t *meta;
    uint8_t *data;
    uint64_t meta_stride;
    uint64_t slot_stride;
    uint64_t slot_bytes;
    uint32_t nslots;
    uint32_t batch_size;
    bool labels;
    /* A named ring's producer keeps its shm descriptor open with a shared
     * flock for the ring's life: the lock, which the kernel drops when the
     * producer (and its workers) are gone, is what tells a stale ring from
     * a served one before anyone unlinks it. */
    int owner_fd;
    bool has_owner_fd;
};

/* Fills the geometry fields of *hdr (offsets, strides, total size) from g.
 * Returns 0, or -EOVERFLOW / -EINVAL with a message. */
int br__ring_layout(const struct br_ring_geometry *g, struct br_ring_header *hdr, char *msg);

/* Creates a ring: anonymous (memfd) when name is NULL, else the POSIX
 * shared-memory object `name` ("/x", O_EXCL, mode 0600; a stale one whose
 * owner is dead is replaced, a live owner's is -EEXIST). Checks that the
 * memory (and /dev/shm) has room, reserves it with fallocate, maps and
 * prefaults it, writes the header and publishes magic last.
 * Returns 0, or a negative code with a message naming the sizes. */
int br__ring_create(struct br_ring *r, const struct br_ring_geometry *g, const char *name,
                    char *msg);

/* Maps the named ring for a consumer or an observer: checks the owner's
 * uid, validates every header field, prefaults. Returns 0, -ENOENT,
 * -EACCES, BR_EBADRING, BR_EVERSION, with a message. */
int br__ring_attach(struct br_ring *r, const char *name, char *msg);

/* Unlinks the named ring if no producer holds it (its flock is free).
 * Returns 0 (removed), -EBUSY (served: *owner is its pid when known),
 * -ENOENT, or another -errno; message in msg. */
int br__ring_unlink_stale(const char *name, pid_t *owner, char *msg);

/* Checks that name is "/" plus 1..250 characters without another '/'. */
int br__ring_check_name(const char *name, char *msg);

/* The start time of process pid (clock ticks since boot, from
 * /proc/PID/stat), or 0 if it does not exist. Together with the pid it
 * names a process: a recycled pid has another start time. */
uint64_t br__proc_start_time(pid_t pid);

/* Is the process (pid, start) still alive? */
bool br__proc_alive(pid_t pid, uint64_t start);

/* Faults every page of the mapping into this process's page tables, so the
 * hot path never takes a fault. Every process that maps the ring calls it
 * (page tables of shared mappings are not copied by fork). */
int br__ring_populate(const struct br_ring *r, char *msg);

/* The same for bytes [offset, offset + len) of the object. */
int br__ring_populate_range(const struct br_ring *r, uint64_t offset, uint64_t len, char *msg);

/* Checks every field of a header found in `bytes` bytes at base, in order,
 * before any offset is used. Returns 0, BR_EBADRING or BR_EVERSION with a
 * message naming the field. */
int br__ring_validate(const void *base, size_t bytes, char *msg);

/* Derives the view pointers of r from a validated (or created) header. */
void br__ring_bind(struct br_ring *r, void *base, size_t bytes);

/* Unmaps; safe on a zeroed or already unmapped ring. */
void br__ring_unmap(struct br_ring *r);

/* Sleeps on d->word while it still equals `seen`, for at most timeout_ms
 * (-1 forever). Registers in d->waiters so publishers know to wake.
 * Returns 0 (woken or value changed), -ETIMEDOUT or -EINTR. */
int br__slot_sleep(struct br_slot_desc *d, uint32_t seen, int timeout_ms);

/* Rings with at least this many slots let workers sleep at the consumer's
 * pace instead of being woken on release: half a ring of ready batches
 * covers a sleep that ends late (timer slack ~50 us, wake-up ~26 us on a
 * KVM guest). */
#define BR_NAP_MIN_SLOTS 8u

/* A worker's sleep while the slot it needs still holds `seen` and the run
 * state is RUNNING: on the header's kick word, for at most timeout_ns.
 * Returns 0, -ETIMEDOUT or -EINTR; the caller rechecks its slot and the
 * state either way. */
int br__worker_sleep(struct br_ring *r, struct br_slot_desc *d, uint32_t seen, uint64_t timeout_ns);

/* Wakes up to how_many workers asleep in br__worker_sleep, if any sleeps.
 * Call after releasing slots. Returns whether there was anyone to wake. */
bool br__kick_workers(struct br_ring *r, int how_many);

/* Tells the workers that the run is over: stores BR_RUN_STOPPING in the
 * header's state and wakes every worker asleep in br__worker_sleep, which
 * never goes back to sleep once the state is not RUNNING. */
void br__ring_stop_workers(struct br_ring *r);

/* Stores `word` into the slot (making everything written before it visible
 * to whoever acquires the new word) and wakes sleepers if there are any. */
void br__slot_publish(struct br_slot_desc *d, uint32_t word);

static inline uint32_t br__slot_index(const struct br_ring *r, uint64_t seq)
{
    return (uint32_t)(seq % r->nslots);
}

static inline uint64_t br__slot_lap(const struct br_ring *r, uint64_t seq)
{
    return seq / r->nslots;
}

static inline struct br_slot_desc *br__slot_desc(const struct br_ring *r, uint64_t seq)
{
    return &r->desc[br__slot_index(r, seq)];
}

static inline uint8_t *br__slot_meta(const struct br_ring *r, uint64_t seq)
{
    return r->meta + (uint64_t)br__slot_index(r, seq) * r->meta_stride;
}

static inline uint64_t *br__slot_ids(const struct br_ring *r, uint64_t seq)
{
    return (uint64_t *)(br__slot_meta(r, seq) + br__meta_ids_offset());
}

static inline uint64_t *br__slot_offsets(const struct br_ring *r, uint64_t seq)
{
    return (uint64_t *)(br__slot_meta(r, seq) + br__meta_offsets_offset(r->batch_size));
}

static inline int32_t *br__slot_labels(const struct br_ring *r, uint64_t seq)
{
    return r->labels ? (int32_t *)(br__slot_meta(r, seq) + br__meta_labels_offset(r->batch_size))
                     : NULL;
}

static inline char *br__slot_err(const struct br_ring *r, uint64_t seq)
{
    return (char *)(br__slot_meta(r, seq) + br__meta_err_offset(r->batch_size, r->labels));
}

static inline void *br__slot_data(const struct br_ring *r, uint64_t seq)
{
    return r->data + (uint64_t)br__slot_index(r, seq) * r->slot_stride;
}

/* Monotonic nanoseconds (vDSO, no syscall). */
uint64_t br__now_ns(void);

#endif /* BR_RING_RING_H */
