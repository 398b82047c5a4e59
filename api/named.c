/* SPDX-License-Identifier: MIT */
/* Named rings: attach, serve, and the observers (stat, remove, pid). */
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/gen.h"
#include "api/sized.h"

/* Whether a consumer holds its lock on the ring behind fd (a descriptor
 * other than the consumer's own). */
bool br__consumer_alive(int fd)
{
    return br__ring_consumer_alive(fd) > 0;
}

BR_API int br_attach(br_gen **out, const char *name, int timeout_ms)
{
    char *msg = br__open_error_buffer();
    struct br_ring_header *h;
    struct br_gen *g;
    uint64_t mine, cursor, first;
    int rc;

    msg[0] = '\0';
    if (out)
        *out = NULL;
    if (!out)
        return br__fail(msg, -EINVAL, "out is NULL: pass the address of a br_gen *");
    if (timeout_ms < -1)
        return br__fail(msg, -EINVAL, "timeout_ms %d is invalid: use -1 (forever) or >= 0",
                        timeout_ms);
    g = calloc(1, sizeof *g);
    if (!g)
        return br__fail(msg, -ENOMEM, "out of memory for the generator");
    g->role = ROLE_ATTACHED;
    /* Checks the producer's lock and takes the consumer's (one consumer at
     * a time; a dead one's lock went with it) before it faults anything in. */
    rc = br__ring_attach(&g->ring, name, msg);
    if (rc)
        goto fail;
    snprintf(g->name, sizeof g->name, "%s", name);
    h = g->ring.hdr;
    g->producer_pid = g->ring.geo.owner_pid;
    g->producer_start = g->ring.geo.owner_start;

    /* The consumer word is for display (stat, serve's messages): our pid
     * here and the low half of our start time. Release pairs with the
     * acquire loads in br_ring_status_get, br_consumer_pid_get and br__ring_attach. */
    mine = (br__proc_start_time(getpid()) << 32) | (uint32_t)getpid();
    br__store_release_u64(&h->consumer, mine);
    g->consumer_id = mine;

    /* Resume at the first batch not released: a consumer that died holding
     * batches left their slots READY (or FAILED) on their laps. Those it
     * released out of order, between there and its cursor, are skipped
     * (skip_end): each held batch is delivered again exactly once. Only a
     * consumer that may hold several batches releases out of order: on a
     * ring of hold 1 the first unreleased batch is the cursor's or the one
     * before it, and a ring that says otherwise (damaged shared memory,
     * fuzz_ring) must not make us skip a batch. */
    cursor = br__load_acquire_u64(&h->cursor);
    first = br__consumer_first_unreleased(&g->ring, cursor);
    br__consumer_init(&g->cons, &g->ring, first, timeout_ms, g->msg, br__gen_check_alive);
    g->cons.skip_end = g->ring.geo.hold >= 2 ? cursor : first;
    g->cons.hold = g->ring.geo.hold;
    /* The ring's cursor stays where it was (the highest reached, never
     * moved back: see br__consumer_take); ours starts lower. */
    /* A consumer that died in a wait left its start behind. Cleared before
     * the cursor store (release), which carries it to readers; until then
     * a reader that sees us attached may still see that old wait. */
    br__store_relaxed_u64(&h->consumer_wait_since, 0);
    br__store_release_u64(&h->cursor, cursor);
    br__store_relaxed_u32(&h->consumer_done, BR_CONSUMER_RUNNING);
    g->nworkers = g->ring.geo.nworkers;
    g->opened_ns = br__now_ns();
    rc = br__gen_register(g, msg);
    if (rc)
        goto fail;
    br__ring_consumer_event(h);
    *out = (br_gen *)(uintptr_t)g->handle;
    return 0;
fail:
    br__gen_free(g);
    return rc;
}

BR_API int br_serve_wait(br_gen *handle, int timeout_ms)
{
    struct br_gen *g = br__gen_lookup(handle);
    struct br_ring_header *h;
    uint64_t deadline;

    if (!g)
        return handle ? BR_ESTOPPED : -EINVAL;
    if (g->role != ROLE_SERVE)
        return br__fail(g->msg, -EINVAL, "br_serve_wait is for a generator opened with "
                        "opt.name");
    h = g->ring.hdr;
    deadline = timeout_ms < 0 ? UINT64_MAX : br__now_ns() + (uint64_t)timeout_ms * 1000000u;
    for (;;) {
        uint32_t events = br__load_acquire_u32(&h->consumer_events);
        uint32_t done = br__load_acquire_u32(&h->consumer_done);
        uint64_t consumer = br__load_acquire_u64(&h->consumer);
        uint64_t now;
        int rc;

        if (done == BR_CONSUMER_EOF)
            return 0;
        if (done == BR_CONSUMER_FAILED)
            return br__fail(g->msg, BR_ESTOPPED, "the consumer of ring %s stopped on an error "
                            "(it has the message)", g->name);
        rc = br__sup_check(&g->sup, g->msg);
        if (rc)
            return rc;
        /* A consumer that died leaves its word (its lock went with it);
         * clear the word for display. */
        if (consumer && !br__consumer_alive(g->ring.owner_fd))
            br__cas_acq_rel_u64(&h->consumer, &consumer, 0);
        now = br__now_ns();
        if (now >= deadline)
            return br__fail(g->msg, -ETIMEDOUT, "ring %s still being served", g->name);
        {
            uint64_t left = deadline - now;
            struct timespec slice = {0, 100 * 1000000L};
            if (left < 100u * 1000000u)
                slice.tv_nsec = (long)left;
            /* [E2]: pairs with [E1] (ring.c, "Named rings"). */
            br__futex_wait(&h->consumer_events, events, &slice);
        }
    }
}

BR_API int br_consumer_pid_get(const br_gen *handle, int32_t *pid)
{
    const struct br_gen *g = br__gen_lookup(handle);
    uint64_t id;
    if (!g || !pid)
        return br__getter_fail("br_consumer_pid_get", handle, !pid, 0, 0);
    /* Pairs with br_attach's release store of the word. */
    id = g->ring.hdr ? br__load_acquire_u64(&g->ring.hdr->consumer) : 0;
    /* Our own lock is invisible to our own test: an attached generator is
     * its ring's consumer while it holds its claim. */
    if (g->role == ROLE_ATTACHED)
        *pid = g->consumer_id ? (int32_t)getpid() : 0;
    else
        *pid = id && g->ring.has_owner_fd && br__consumer_alive(g->ring.owner_fd)
                   ? (int32_t)(id & 0xffffffffu)
                   : 0;
    return 0;
}

/* Whether the attached consumer waits in br_next right now, for which batch
 * and since when. */
static void consumer_waiting(const struct br_ring_header *h, br_ring_status *out)
{
    uint64_t seq, waited;
    out->consumer_waiting_seq = BR_NOT_WAITING;
    out->consumer_waiting_ns = 0;
    /* A dead consumer's word says nothing about now. */
    if (out->consumer_pid && br__consumer_waiting(h, &seq, &waited)) {
        out->consumer_waiting_seq = seq;
        out->consumer_waiting_ns = waited;
    }
}

/* The ring's consumer_done word as the public enum: the layout's numbers
 * are the ring's business, and a ring written by a foreign or damaged
 * producer may hold any value. Returns false for one that is none. */
static bool finished_from_ring(uint32_t done, uint32_t *out)
{
    switch (done) {
    case BR_CONSUMER_RUNNING: *out = BR_RING_RUNNING; return true;
    case BR_CONSUMER_EOF: *out = BR_RING_ENDED; return true;
    case BR_CONSUMER_FAILED: *out = BR_RING_STOPPED; return true;
    default: return false;
    }
}

BR_API int br_ring_status_get_sized(const char *name, br_ring_status *dst, size_t status_size,
                                    br_worker_stats *workers, uint32_t workers_cap,
                                    size_t worker_size)
{
    char *msg = br__open_error_buffer();
    struct br_ring r = {0};
    const struct br_ring_header *h;
    br_ring_status st, *out = &st;
    uint64_t consumer;
    uint32_t done;
    int rc;

    msg[0] = '\0';
    if (!dst)
        return br__fail(msg, -EINVAL, "out is NULL");
    /* The caller's structs may be of another build (batchring.h, rule b):
     * this library fills its own and copies what fits. */
    if (status_size < BR__RING_STATUS_SIZE_0_3)
        return br__fail(msg, -EINVAL,
                        "status_size %zu is smaller than any br_ring_status (%zu bytes in "
                        "0.3): call br_ring_status_get",
                        status_size, (size_t)BR__RING_STATUS_SIZE_0_3);
    if (workers && worker_size < BR__WORKER_STATS_SIZE_0_3)
        return br__fail(msg, -EINVAL,
                        "worker_size %zu is smaller than any br_worker_stats (%zu bytes in "
                        "0.3): call br_ring_status_get",
                        worker_size, (size_t)BR__WORKER_STATS_SIZE_0_3);
    rc = br__ring_observe(&r, name, msg);
    if (rc)
        return rc;
    h = r.hdr;
    memset(out, 0, sizeof *out);
    /* Relaxed, as the counters below: a status shown as read, which no
     * other load here is ordered after. */
    done = br__load_relaxed_u32(&h->consumer_done);
    if (!finished_from_ring(done, &out->finished)) {
        br__ring_unmap(&r);
        return br__fail(msg, BR_EBADRING,
                        "ring %s: consumer_done is %u, none of running (0), ended (1) or "
                        "stopped (2)",
                        name, done);
    }
    out->owner_pid = r.geo.owner_pid;
    /* The locks, not the pids: a producer or consumer in another PID
     * namespace is alive too. */
    out->owner_alive = br__ring_producer_alive(r.owner_fd) > 0;
    out->owner_uid = r.geo.owner_uid;
    /* Pairs with br_attach's release store of the word. */
    consumer = br__load_acquire_u64(&h->consumer);
    out->consumer_pid =
        consumer && br__consumer_alive(r.owner_fd) ? (int32_t)(consumer & 0xffffffffu) : 0;
    out->slots = r.geo.nslots;
    out->workers = r.geo.nworkers;
    out->batch_size = r.geo.batch_size;
    out->slot_bytes = r.geo.slot_bytes;
    out->total_bytes = r.geo.total_bytes;
    out->n_ids = r.geo.n_ids;
    out->epochs = r.geo.epochs;
    out->batches_per_epoch = r.geo.batches_per_epoch;
    out->end_seq = r.geo.end_seq;
    out->claimed = br__load_acquire_u64(&h->claim);
    out->cursor = br__load_acquire_u64(&h->cursor);
    out->consumer_batches = br__load_relaxed_u64(&h->consumer_batches);
    out->consumer_bytes = br__load_relaxed_u64(&h->consumer_bytes);
    out->consumer_stall_ns = br__load_relaxed_u64(&h->consumer_stall_ns);
    out->restarts = br__load_relaxed_u32(&h->restarts);
    consumer_waiting(h, out);
    for (uint32_t i = 0; i < r.nslots; i++) {
        switch (br__load_relaxed_u32(&r.desc[i].word) & 3u) {
        case BR_FREE: out->slots_free++; break;
        case BR_LOADING: out->slots_loading++; break;
        case BR_READY: out->slots_ready++; break;
        default: out->slots_failed++; break;
        }
    }
    for (uint32_t i = 0; workers && i < r.geo.nworkers && i < workers_cap; i++) {
        br_worker_stats ws;
        memset(&ws, 0, sizeof ws);
        br__worker_stats_copy(&r.workers[i], &ws);
        /* A stale ring's workers died with their producer (their parent-
         * death signal): their recorded pids name nothing now. */
        if (!out->owner_alive)
            ws.pid = 0;
        /* The caller's array steps by the caller's sizeof. */
        br__copy_out((char *)workers + (size_t)i * worker_size, worker_size, &ws, sizeof ws);
    }
    br__ring_unmap(&r);
    br__copy_out(dst, status_size, &st, sizeof st);
    return 0;
}

BR_API int br_ring_remove_stale(const char *name)
{
    char *msg = br__open_error_buffer();
    br_ring_status st;
    pid_t owner;
    /* Validates first: only a batchring ring of ours is ever removed. */
    int rc = br_ring_status_get(name, &st, NULL, 0);
    if (rc)
        return rc;
    return br__ring_unlink_stale(name, &owner, msg);
}


BR_API int br_ring_name_check(const char *name)
{
    char *msg = br__open_error_buffer();
    msg[0] = '\0';
    return br__ring_check_name(name, msg);
}
