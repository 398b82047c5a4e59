/* SPDX-License-Identifier: MIT */
/* Named rings: attach, serve, and the observers (stat, remove, pid). */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/gen.h"

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
    uint64_t mine, cursor;
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
    g->timeout_ms = timeout_ms;
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
     * acquire loads in br_ring_stat, br_consumer_pid and br__ring_attach. */
    mine = (br__proc_start_time(getpid()) << 32) | (uint32_t)getpid();
    br__store_release_u64(&h->consumer, mine);
    g->consumer_id = mine;

    /* Resume at the first batch not released: a consumer that died holding
     * batch cursor - 1 left its slot READY (or FAILED) on that lap. */
    cursor = br__load_acquire_u64(&h->cursor);
    if (cursor > g->ring.geo.start_seq) {
        uint64_t last = cursor - 1, lap = br__slot_lap(&g->ring, last);
        uint32_t w = br__load_acquire_u32(&br__slot_desc(&g->ring, last)->word);
        if (w == br__slot_word(lap, BR_READY) || w == br__slot_word(lap, BR_FAILED))
            cursor = last;
    }
    g->cursor = cursor;
    /* A consumer that died in a wait left its start behind. Cleared before
     * the cursor store (release), which carries it to readers; until then
     * a reader that sees us attached may still see that old wait. */
    br__store_relaxed_u64(&h->consumer_wait_since, 0);
    br__store_release_u64(&h->cursor, cursor);
    br__store_relaxed_u32(&h->consumer_done, BR_CONSUMER_RUNNING);
    g->nworkers = g->ring.geo.nworkers;
    g->kick_every = g->ring.nslots / 2 ? g->ring.nslots / 2 : 1;
    g->spin_adaptive = g->ring.geo.nworkers < br__online_cpus();
    g->opened_ns = br__now_ns();
    rc = br__gen_register(g, msg);
    if (rc)
        goto fail;
    br__add_seq_cst_u32(&h->consumer_events, 1);
    syscall(SYS_futex, (uint32_t *)&h->consumer_events, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
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
            syscall(SYS_futex, (uint32_t *)&h->consumer_events, FUTEX_WAIT, events, &slice,
                    NULL, 0);
        }
    }
}

BR_API int br_consumer_pid(const br_gen *handle, int32_t *pid)
{
    const struct br_gen *g = br__gen_lookup(handle);
    uint64_t id;
    if (!g || !pid)
        return -EINVAL;
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

/* Maps a named ring read-only for an observer: no claim, no prefault. */
static int map_for_reading(const char *name, struct br_ring *r, char *msg)
{
    struct stat st;
    void *base;
    int fd, rc = br__ring_check_name(name, msg);
    if (rc)
        return rc;
    /* Never blocks (a FIFO at the name is refused), never follows a link. */
    fd = br__ring_open(name, O_RDONLY, &st, msg);
    if (fd < 0)
        return fd;
    if ((uint64_t)st.st_size < sizeof(struct br_ring_header)) {
        close(fd);
        return br__fail(msg, BR_EBADRING, "%s is not a batchring ring (too small)", name);
    }
    base = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) {
        rc = -errno;
        close(fd);
        return br__fail(msg, rc, "mmap of ring %s: %s", name, strerror(-rc));
    }
    rc = br__ring_check_bind(r, base, (size_t)st.st_size, msg);
    if (rc) {
        munmap(base, (size_t)st.st_size);
        close(fd);
        return rc;
    }
    /* Kept until br__ring_unmap: the producer's and consumer's locks are
     * tested on it. */
    r->owner_fd = fd;
    r->has_owner_fd = true;
    return 0;
}

/* Whether the attached consumer waits in br_next right now, for which batch
 * and since when: the reader's side of the protocol at wait_announce. */
static void consumer_waiting(const struct br_ring_header *h, br_ring_status *out)
{
    out->consumer_waiting_seq = BR_NOT_WAITING;
    out->consumer_waiting_ns = 0;
    /* A dead consumer's word says nothing about now. */
    if (!out->consumer_pid)
        return;
    /* A retry only when a wait ended and another began between our loads.
     * Waits are at least a spin apart, so a few tries settle; a consumer
     * that ends a wait every time we look is reported as not waiting. */
    for (int tries = 0; tries < 4; tries++) {
        /* Acquire: pairs with wait_announce's release; the cursor we load
         * next is at least the seq of that wait. */
        uint64_t since = br__load_acquire_u64(&h->consumer_wait_since), seq, now;
        if (!since)
            return;
        /* Acquire: pairs with br_next's release of the cursor; if it moved
         * past the wait above, the load below sees that wait's end. */
        seq = br__load_acquire_u64(&h->cursor);
        if (br__load_relaxed_u64(&h->consumer_wait_since) != since)
            continue;
        now = br__now_ns();
        out->consumer_waiting_seq = seq;
        out->consumer_waiting_ns = now > since ? now - since : 0;
        return;
    }
}

BR_API int br_ring_stat(const char *name, br_ring_status *out, br_worker_stats *workers,
                        uint32_t workers_cap)
{
    char *msg = br__open_error_buffer();
    struct br_ring r = {0};
    const struct br_ring_header *h;
    uint64_t consumer;
    int rc;

    msg[0] = '\0';
    if (!out)
        return br__fail(msg, -EINVAL, "out is NULL");
    rc = map_for_reading(name, &r, msg);
    if (rc)
        return rc;
    h = r.hdr;
    memset(out, 0, sizeof *out);
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
    out->finished = br__load_relaxed_u32(&h->consumer_done);
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
        const struct br_worker_rec *rec = &r.workers[i];
        /* A stale ring's workers died with their producer (their parent-
         * death signal): their recorded pids name nothing now. */
        workers[i].pid = out->owner_alive ? br__load_relaxed_i32(&rec->pid) : 0;
        workers[i].restarts = br__load_relaxed_u32(&rec->restarts);
        workers[i].batches = br__load_relaxed_u64(&rec->batches);
        workers[i].bytes = br__load_relaxed_u64(&rec->bytes);
        workers[i].load_ns = br__load_relaxed_u64(&rec->load_ns);
        workers[i].slot_wait_ns = br__load_relaxed_u64(&rec->slot_wait_ns);
        workers[i].io_backend = br__load_relaxed_u32(&rec->io_backend);
        workers[i].io_reads = br__load_relaxed_u64(&rec->io_reads);
        workers[i].io_bytes = br__load_relaxed_u64(&rec->io_bytes);
        workers[i].io_copies = br__load_relaxed_u64(&rec->io_copies);
    }
    br__ring_unmap(&r);
    return 0;
}

BR_API int br_ring_remove_stale(const char *name)
{
    char *msg = br__open_error_buffer();
    br_ring_status st;
    pid_t owner;
    /* Validates first: only a batchring ring of ours is ever removed. */
    int rc = br_ring_stat(name, &st, NULL, 0);
    if (rc)
        return rc;
    return br__ring_unlink_stale(name, &owner, msg);
}

