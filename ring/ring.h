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
#include <time.h>

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
    uint32_t hold;             /* batches the consumer may hold (opt.hold), < nslots */
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
    /* Bytes of a slot's data that are mapped read-write: slot_stride, less
     * the guard page in guard mode (BR_RING_GUARD). Populating and
     * registering a slot covers this much, never the guard. */
    uint64_t slot_span;
    uint64_t slot_bytes;
    uint32_t nslots;
    uint32_t batch_size;
    bool labels;
    /* The header as it was checked (a private copy): whatever sizes or
     * indexes the ring (nworkers, end_seq, geometry) is read from here,
     * never again from shared memory, where another writer could change it
     * between the check and the use. */
    struct br_ring_header geo;
    /* A named ring's descriptor, kept open for the mapping's life: the
     * producer's carries its read lock on byte BR_LOCK_PRODUCER, an
     * attached consumer's its write lock on byte BR_LOCK_CONSUMER, an
     * observer's (br_ring_status_get) none but serves to test both. The locks,
     * which the kernel drops when their holder is gone, are the one source
     * of liveness (see "Named rings" in ring.c). */
    int owner_fd;
    bool has_owner_fd;
    /* The ring's workers leave a CPU free (br__ring_cpus_to_spare): the
     * consumer then spins on its own core, and a worker never hands its
     * CPU over when it wakes the consumer. */
    bool cpus_to_spare;
};

/* Whether `workers` worker processes leave a CPU of this machine free for
 * the consumer (fewer workers than online CPUs; false for none, where the
 * consumer loads itself). */
bool br__ring_cpus_to_spare(uint32_t workers);

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

/* Maps the named ring for its consumer: checks the object's type and
 * uid, validates every header field, checks that the object is fully
 * allocated (as a producer leaves it), that its producer is alive and that
 * no other consumer is attached (taking the consumer's lock, kept in
 * r->owner_fd until br__ring_unmap), and only then prefaults. Returns 0,
 * -ENOENT, -EACCES, BR_EBADRING, BR_EVERSION, BR_EPRODUCER, -EBUSY, with a
 * message. */
int br__ring_attach(struct br_ring *r, const char *name, char *msg);

/* Maps the named ring read-only for an observer (br_ring_status_get, gc): the
 * same checks of the object's type and of every header field as
 * br__ring_attach, but no claim, no prefault, and any producer (alive or
 * not, any uid). The descriptor stays in r->owner_fd for the liveness
 * tests. Returns 0, -ENOENT, -EACCES, BR_EBADRING, BR_EVERSION, with a
 * message. */
int br__ring_observe(struct br_ring *r, const char *name, char *msg);

/* Unlinks the named ring if it is a ring of ours (a regular object of our
 * uid with a ring header of this layout) and no producer holds it: takes
 * the write lock on the producer's byte, then checks that the name still
 * refers to the locked object. Returns 0 (removed), -EBUSY (served:
 * *owner is its pid when known), -ENOENT (gone or replaced meanwhile),
 * BR_EBADRING (not a ring), BR_EVERSION (another layout), -EACCES
 * (another user's), or another -errno; message in msg. */
int br__ring_unlink_stale(const char *name, pid_t *owner, char *msg);

/* Opens the object of ring name with flags (O_RDONLY or O_RDWR; it adds
 * O_NONBLOCK, O_NOFOLLOW and O_CLOEXEC) and fstats it into *st, never
 * blocking: a FIFO, a directory or a symbolic link is BR_EBADRING ("not a
 * batchring ring"), another uid's object -EACCES, a missing one -ENOENT.
 * Returns the descriptor, or the negative code with a message. */
struct stat;
int br__ring_open(const char *name, int flags, struct stat *st, char *msg);

/* The liveness protocol of named rings: OFD locks on two bytes of the
 * object (fcntl F_OFD_SETLK / F_OFD_GETLK), dropped by the kernel when
 * the holder's open file description is closed, so with its process. */
#define BR_LOCK_PRODUCER 0 /* the producer's read lock, for the ring's life */
#define BR_LOCK_CONSUMER 1 /* the attached consumer's write lock */

/* Takes the producer's read lock on fd (a descriptor of the object, held
 * open for as long as the producer lives; a forked helper that outlives
 * the producer must close its copy). Returns 0, -EBUSY (a gc or replacing
 * producer holds the write lock right now), or -errno. A fuzzing harness
 * calls it to act as a live producer. */
int br__ring_lock_producer(int fd);

/* Takes the consumer's write lock on fd (opened O_RDWR): 0, -EBUSY if
 * another consumer holds it, or -errno. */
int br__ring_lock_consumer(int fd);

/* Whether a producer (or consumer) holds its lock on the object of fd,
 * tested without side effects (F_OFD_GETLK; works on an O_RDONLY fd).
 * Returns 1 (alive), 0 (none), or -errno. The caller's own lock on the same
 * open file description is not seen: test with a descriptor of your own. */
int br__ring_producer_alive(int fd);
int br__ring_consumer_alive(int fd);

/* Checks that name is "/" plus 1..250 characters without another '/', and
 * not "/." or "/..". */
int br__ring_check_name(const char *name, char *msg);

/* The start time of process pid (clock ticks since boot, from
 * /proc/PID/stat), or 0 if it does not exist. Together with the pid it
 * names a process: a recycled pid has another start time. */
uint64_t br__proc_start_time(pid_t pid);

/* Is the process (pid, start) still alive? */
bool br__proc_alive(pid_t pid, uint64_t start);

/* Faults every page of the mapping into this process's page tables, so the
 * hot path never takes a fault. Every process that maps the ring calls it
 * (page tables of shared mappings are not copied by fork). Guard pages
 * are skipped. */
int br__ring_populate(const struct br_ring *r, char *msg);

/* The same for bytes [offset, offset + len) of the object. */
int br__ring_populate_range(const struct br_ring *r, uint64_t offset, uint64_t len, char *msg);

/* In guard mode (BR_RING_GUARD), makes the page after each slot's data
 * PROT_NONE in this process's mapping (forked workers inherit it); does
 * nothing otherwise. Returns 0 or a negative errno with a message. */
int br__ring_protect_guards(const struct br_ring *r, char *msg);

/* Checks every field of a header found in `bytes` bytes at base, in order,
 * before any offset is used. Returns 0, BR_EBADRING or BR_EVERSION with a
 * message naming the field. */
int br__ring_validate(const void *base, size_t bytes, char *msg);

/* Derives the view pointers of r from geo, a validated (or created) header
 * of the object mapped at base, and keeps a copy of it in r->geo. */
void br__ring_bind(struct br_ring *r, void *base, size_t bytes, const struct br_ring_header *geo);

/* Copies the header of the object mapped at base once, validates the copy
 * (br__ring_validate) and binds r from it: nothing is read twice from the
 * shared header. Returns 0, BR_EBADRING or BR_EVERSION with a message. */
int br__ring_check_bind(struct br_ring *r, void *base, size_t bytes, char *msg);

/* Unmaps; safe on a zeroed or already unmapped ring. */
void br__ring_unmap(struct br_ring *r);

/* Sleeps on d->word while it still equals `seen`, for at most timeout_ms
 * (-1 forever). Registers in d->waiters so publishers know to wake.
 * Returns 0 (woken or value changed), -ETIMEDOUT or -EINTR. */
int br__slot_sleep(struct br_slot_desc *d, uint32_t seen, int timeout_ms);

/* slot_sleepers counts two kinds of sleeper in one word (one word, so
 * that [K1]/[K2] pair as before): untimed sleepers in the low half, which
 * every kick wakes, and nappers (a sleep timed to the consumer's pace) in
 * the high half, which only the kick before the consumer waits wakes.
 * Each half counts at most BR_MAX_WORKERS live workers plus those killed
 * asleep (whose count stays: a spurious kick, never a lost one), far below
 * 2^16. */
#define BR_SLEEPER_ONE UINT32_C(1)
#define BR_NAPPER_ONE UINT32_C(0x10000)
#define BR_SLEEPERS_UNTIMED UINT32_C(0xffff)
#define BR_SLEEPERS_ALL UINT32_C(0xffffffff)

/* A worker's sleep while the slot it needs still holds `seen` and the run
 * state is RUNNING: on the header's kick word, for at most timeout_ns,
 * counted as `kind` (BR_SLEEPER_ONE or BR_NAPPER_ONE) in slot_sleepers.
 * Returns 0, -ETIMEDOUT or -EINTR; the caller rechecks its slot and the
 * state either way. */
int br__worker_sleep(struct br_ring *r, struct br_slot_desc *d, uint32_t seen, uint64_t timeout_ns,
                     uint32_t kind);

/* Wakes up to how_many workers asleep in br__worker_sleep, if any sleeper
 * counted in `which` (BR_SLEEPERS_UNTIMED or BR_SLEEPERS_ALL) sleeps.
 * Call after releasing slots (it fences them before it looks for
 * sleepers). Returns whether there was anyone to wake. */
bool br__kick_workers(struct br_ring *r, int how_many, uint32_t which);

/* Tells the workers that the run is over: stores BR_RUN_STOPPING in the
 * header's state and wakes every worker asleep in br__worker_sleep, which
 * never goes back to sleep once the state is not RUNNING. */
void br__ring_stop_workers(struct br_ring *r);

/* Stores `word` into the slot (making everything written before it visible
 * to whoever acquires the new word) and wakes sleepers if there are any.
 * Returns whether it woke someone. */
bool br__slot_publish(struct br_slot_desc *d, uint32_t word);

/* The consumer gives a slot back: stores `word` ((lap + 1, FREE)) with
 * release and nothing else; the workers it may have to wake are woken by
 * br__kick_workers after a run of releases (see "Waking workers" in
 * ring.c). */
void br__slot_release(struct br_slot_desc *d, uint32_t word);

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

/* The one futex wrapper: every sleep and wake on a shared word (a slot's
 * word, kick, sup_state, consumer_events) goes through these two, and the
 * protocol section at the top of ring/ring.c says who sleeps on which word
 * and which store each wake pairs with. Shared between processes: never
 * FUTEX_PRIVATE_FLAG.
 * br__futex_wait sleeps while *word holds `seen`, for at most timeout
 * (NULL: no limit). Returns 0 (woken, or the word had already changed),
 * -ETIMEDOUT or -EINTR. */
int br__futex_wait(_Atomic uint32_t *word, uint32_t seen, const struct timespec *timeout);
/* Wakes up to how_many sleepers on word (INT_MAX: all). */
void br__futex_wake(_Atomic uint32_t *word, int how_many);

/* A consumer event on a named ring (attach, detach, end of its run): bumps
 * the header's consumer_events and wakes the producer in br_serve_wait.
 * Call after the stores the event announces. */
void br__ring_consumer_event(struct br_ring_header *h);

/* Monotonic nanoseconds (vDSO, no syscall). */
uint64_t br__now_ns(void);

#endif /* BR_RING_RING_H */
