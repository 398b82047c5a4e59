/* SPDX-License-Identifier: MIT */
/*
 * The shared-memory layout of a ring. Everything here lives in memory that
 * other processes map: fixed-width fields, explicit padding, offsets (never
 * pointers), each writer's words on their own 64-byte line. The object is:
 *
 *   [header][slot descriptors][worker records][slot metadata][slot data]
 *    0       desc_offset      worker_offset   meta_offset    data_offset
 *
 * Slot data is page-aligned (stride a multiple of the page size), so the
 * loader's output buffer suits O_DIRECT and registered io_uring buffers.
 * An attacher trusts none of it before br__ring_validate() has checked it.
 */
#ifndef BR_RING_LAYOUT_H
#define BR_RING_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#include <batchring.h>

#define BR_RING_MAGIC 0x474e5242u /* "BRNG" in little-endian memory */
/* Major 2: liveness is the OFD locks on bytes 0 and 1 of the object (ring.c,
 * "Named rings"), not pids; a major-1 tool would misjudge a major-2 ring. */
#define BR_LAYOUT_MAJOR 2u
/* Minor 1: consumer_wait_since, in what was padding of line 4 (zero in a
 * 1.0 ring, which reads as "not waiting"; a 1.0 reader ignores it).
 * Minor 2: hold, in what was reserved word 0 (zero in a minor-1 ring:
 * hold 1, as before; a minor-1 reader refuses a ring whose hold is set). */
#define BR_LAYOUT_MINOR 2u
#define BR_CACHE_LINE 64u

/* Phases of a slot; the futex word is (lap << 2) | phase. */
enum br_phase { BR_FREE = 0, BR_LOADING = 1, BR_READY = 2, BR_FAILED = 3 };

#define BR_LAP_BITS 30u
#define BR_LAP_MASK ((1u << BR_LAP_BITS) - 1u)

/* The lap wraps at 2^30; workers are at most one lap ahead, so no alias. */
static inline uint32_t br__slot_word(uint64_t lap, enum br_phase phase)
{
    return (uint32_t)((lap & BR_LAP_MASK) << 2) | (uint32_t)phase;
}

/* States of the supervisor process, as br_open waits for them. */
enum br_sup_state { BR_SUP_STARTING = 0, BR_SUP_RUNNING = 1, BR_SUP_FAILED = 2 };

/* What the consumer of a named ring has finished with. */
enum br_consumer_done { BR_CONSUMER_RUNNING = 0, BR_CONSUMER_EOF = 1, BR_CONSUMER_FAILED = 2 };

/* Run states of the header's `state` word. */
enum br_run_state { BR_RUN_RUNNING = 1, BR_RUN_STOPPING = 2 };

/* Header flags. */
#define BR_RING_LABELS 0x1u
#define BR_RING_DROP_LAST 0x2u
/* Guard mode (BR_GUARD=1): each slot's stride is its data rounded up to
 * the page size plus one PROT_NONE page, so that a loader writing past
 * its slot faults instead of corrupting the next one. */
#define BR_RING_GUARD 0x4u
#define BR_RING_KNOWN_FLAGS (BR_RING_LABELS | BR_RING_DROP_LAST | BR_RING_GUARD)

/* Worker record `job`: idle, holding seq s, or about to claim s. */
#define BR_JOB_IDLE UINT64_MAX
#define BR_JOB_PENDING (UINT64_C(1) << 63)

#define BR_NO_FAILURE UINT64_MAX

struct br_ring_header {
    /* Lines 0-2: identity and geometry. Written once by the creator before it
     * stores `magic` (release); read-only afterwards. */
    _Atomic uint32_t magic;
    uint16_t layout_major;
    uint16_t layout_minor;
    uint32_t header_bytes;   /* sizeof(struct br_ring_header) */
    uint32_t nslots;
    uint64_t total_bytes;    /* size of the whole object */
    uint64_t slot_bytes;     /* capacity of one slot's data */
    uint64_t slot_stride;    /* distance between slots' data, page multiple */
    uint64_t desc_offset;
    uint64_t worker_offset;
    uint64_t meta_offset;
    uint64_t meta_stride;    /* bytes of metadata per slot */
    uint64_t data_offset;
    uint32_t nworkers;
    uint32_t batch_size;
    uint64_t n_ids;
    uint64_t epochs;         /* 0 = forever */
    uint64_t batches_per_epoch;
    uint64_t end_seq;        /* first seq not to load; UINT64_MAX = forever */
    uint32_t flags;          /* BR_RING_* */
    int32_t owner_pid;       /* the process that created the ring */
    uint64_t owner_start;    /* its start time (clock ticks after boot) */
    uint32_t owner_uid;
    uint32_t page_size;
    uint64_t start_seq;      /* the run's first seq */
    uint32_t hold;           /* batches its consumer may hold (opt.hold), 0..nslots-1;
                              * since layout minor 2 */
    uint32_t reserved32;     /* must be zero */
    uint64_t reserved[4];    /* must be zero */

    /* Line 3: written by every worker: the claim counter (CAS) and the
     * number of workers asleep waiting for a free slot. */
    _Alignas(64) _Atomic uint64_t claim;
    _Atomic uint32_t slot_sleepers;
    uint8_t pad_claim[52];

    /* Line 4: written by the consumer only. */
    _Alignas(64) _Atomic uint64_t cursor; /* next seq br_next returns */
    _Atomic uint64_t consumer_batches;
    _Atomic uint64_t consumer_bytes;
    _Atomic uint64_t consumer_stall_ns;
    /* The attached consumer of a named ring, 0 when none: its pid in the
     * low half, the low 32 bits of its start time in the high half, in
     * one word so that a consumer is claimed or taken over with one CAS. */
    _Atomic uint64_t consumer;
    /* Futex word that sleeping workers wait on; the consumer bumps it to
     * wake them (see "Waking workers" in ring.c), and the supervisor once,
     * to stop them (br__ring_stop_workers). */
    _Atomic uint32_t kick;
    _Atomic uint32_t consumer_events; /* futex: bumped on attach, detach, end */
    _Atomic uint32_t consumer_done;   /* enum br_consumer_done */
    /* The consumer's FUTEX_WAKEs of kick (br__kick_workers), wrapping:
     * how often workers that ran ahead cost the trainer a syscall. */
    _Atomic uint32_t kick_wakes;
    /* CLOCK_MONOTONIC ns (br__now_ns) at which the consumer's current wait
     * for batch `cursor` began, stored just before its first sleep of that
     * wait (never for a ready batch or a wait that ends in the spin), and
     * 0 again when the wait ends, before the cursor moves on. The waited-
     * for seq is `cursor` itself; how a reader pairs the two without a
     * torn pair is explained at wait_announce (consumer/consumer.c) and
     * br__consumer_waiting. */
    _Atomic uint64_t consumer_wait_since;

    /* Line 5 and on: written by the supervisor. The failure that no slot
     * can carry (a worker that died once too often) at the lowest seq that
     * cannot be delivered: fail_seq only goes down (record_failure in
     * producer/supervisor.c says why the text is never rewritten under a
     * reader). Code and message first, then fail_seq with release; the
     * consumer loads fail_seq with acquire and fails when its cursor
     * reaches it. */
    _Alignas(64) _Atomic uint32_t state; /* enum br_run_state */
    _Atomic uint32_t restarts;           /* deaths survived so far */
    int32_t fail_code;
    _Atomic uint32_t sup_state;          /* enum br_sup_state; futex word */
    _Atomic uint64_t fail_seq;           /* BR_NO_FAILURE when none */
    char fail_msg[BR_ERR_CAP];
};

/* One per slot: its own cache line, so neighbours never share one. */
struct br_slot_desc {
    _Atomic uint32_t word;    /* futex: (lap << 2) | phase */
    _Atomic uint32_t waiters; /* processes asleep on `word` */
    /* Written by the slot's loader before it publishes READY/FAILED
     * (release); read by the consumer after it sees that phase (acquire). */
    int32_t error;            /* the loader's code when FAILED */
    uint32_t count;
    uint64_t seq;
    uint64_t epoch;
    uint64_t batch;
    uint64_t size;
    uint32_t worker;
    uint32_t has_offsets;     /* the loader filled the sample offsets */
    uint64_t reserved;
};

/* One per worker, written by that worker (and by the supervisor while the
 * worker is not running). */
struct br_worker_rec {
    _Atomic uint64_t job;       /* BR_JOB_IDLE, seq, or seq | BR_JOB_PENDING */
    _Atomic int32_t pid;
    _Atomic uint32_t restarts;
    _Atomic uint64_t batches;
    _Atomic uint64_t bytes;
    _Atomic uint64_t load_ns;
    _Atomic uint64_t slot_wait_ns;
    _Atomic uint64_t io_reads;
    _Atomic uint64_t io_bytes;
    _Atomic uint32_t io_backend; /* enum br_io_backend */
    uint32_t pad;
    _Atomic uint64_t io_copies; /* of io_reads, copies out of the page cache */
    _Atomic uint64_t slot_sleeps; /* sleeps for a free slot (take_slot) */
    _Atomic uint64_t io_preads; /* of io_reads, those read through pread */
    uint64_t reserved[4];
};

_Static_assert(sizeof(struct br_slot_desc) == BR_CACHE_LINE, "slot descriptor is one line");
_Static_assert(sizeof(struct br_worker_rec) == 2 * BR_CACHE_LINE, "worker record is two lines");
_Static_assert(offsetof(struct br_ring_header, claim) == 3 * BR_CACHE_LINE, "claim on line 3");
_Static_assert(offsetof(struct br_ring_header, cursor) == 4 * BR_CACHE_LINE, "cursor on line 4");
_Static_assert(offsetof(struct br_ring_header, consumer_wait_since) == 4 * BR_CACHE_LINE + 56,
               "the consumer's wait word is on the consumer's line 4");
_Static_assert(offsetof(struct br_ring_header, state) == 5 * BR_CACHE_LINE, "state on line 5");
_Static_assert(sizeof(struct br_ring_header) % BR_CACHE_LINE == 0, "header is whole lines");
_Static_assert(sizeof(struct br_ring_header) == 896,
               "header size is part of the layout version");

/* Per-slot metadata: ids, sample offsets (batch_size + 1), labels (if
 * any), then the loader's error message. */
static inline uint64_t br__meta_ids_offset(void) { return 0; }
static inline uint64_t br__meta_offsets_offset(uint32_t batch_size)
{
    return (uint64_t)batch_size * sizeof(uint64_t);
}
static inline uint64_t br__meta_labels_offset(uint32_t batch_size)
{
    return br__meta_offsets_offset(batch_size) + ((uint64_t)batch_size + 1) * sizeof(uint64_t);
}
static inline uint64_t br__meta_err_offset(uint32_t batch_size, int labels)
{
    return br__meta_labels_offset(batch_size) +
           (labels ? (uint64_t)batch_size * sizeof(int32_t) : 0);
}

#endif /* BR_RING_LAYOUT_H */
