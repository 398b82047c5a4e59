/* SPDX-License-Identifier: MIT */
/*
 * The generator: br_open, br_next, br_close.
 *
 * br_next is the hot path. When the next slot is already READY it costs one
 * acquire load, one store to give the previous slot back (plus a wake only
 * if a worker sleeps on it) and no syscall. Only when the batch is not ready
 * does it spin briefly, then sleep in slices, checking between slices for
 * failures the supervisor recorded and that the supervisor still lives.
 *
 * Handles: a br_gen * is not a pointer but an index into a table plus a
 * generation number, so that a call on a closed generator finds nothing and
 * returns BR_ESTOPPED instead of touching freed memory, and br_close is
 * idempotent.
 */
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

/* How long the consumer spins on a slot before it sleeps: about one futex
 * round trip, so a batch that is nearly ready costs no syscall. */
#define BR_SPIN_NS 20000u
/* When a core is free for it (workers < online CPUs), the consumer spins
 * up to twice its recent wait instead, if that is at most this long: a
 * sleep costs the worker a FUTEX_WAKE (~6 us on a KVM guest) and the
 * consumer a wake-up (~26 us), a large share of a batch that takes tens of
 * microseconds to load and nothing next to one that takes milliseconds. */
#define BR_SPIN_MAX_NS 500000u
/* When workers fill every core, the consumer spins only this long: each
 * microsecond of its spin is taken from a worker about to publish. */
#define BR_SPIN_CROWDED_NS 2000u
/* Longest sleep for half a ring before the consumer looks at its own
 * batch again (sleep_for_half_ring). */
#define BR_GATHER_SLEEP_MS 1
/* Longest single sleep, so dead workers are noticed promptly. */
#define BR_CONSUMER_SLICE_MS 10

/* Stops the generator for good after a failure; message stays in g->msg. */
/* An attached consumer tells its producer how the run ended. */
static void consumer_finished(struct br_gen *g, enum br_consumer_done how)
{
    struct br_ring_header *h = g->ring.hdr;
    if (g->role != ROLE_ATTACHED)
        return;
    br__store_release_u32(&h->consumer_done, how);
    br__add_seq_cst_u32(&h->consumer_events, 1);
    syscall(SYS_futex, (uint32_t *)&h->consumer_events, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

static int gen_stop(struct br_gen *g, int code)
{
    g->state = GEN_STOPPED;
    snprintf(g->first_error, sizeof g->first_error, "%s", g->msg);
    br__sup_stop(&g->sup);
    consumer_finished(g, BR_CONSUMER_FAILED);
    return code;
}

/* Is the process serving our attached ring still there? Its lock says,
 * in whatever PID namespace it runs (one fcntl per sleep slice). */
static int check_producer(struct br_gen *g)
{
    int alive;
    if (g->role != ROLE_ATTACHED)
        return 0;
    alive = br__ring_producer_alive(g->ring.owner_fd);
    if (alive > 0)
        return 0;
    if (alive < 0)
        return br__fail(g->msg, alive, "testing the producer's lock on ring %s: %s", g->name,
                        strerror(-alive));
    return br__fail(g->msg, BR_EPRODUCER, "the producer of ring %s (pid %d) is gone", g->name,
                    (int)g->producer_pid);
}

/* One load of a plain descriptor field. The fields are published by the
 * slot word's release and read after its acquire, so no atomic is needed
 * for ordering; volatile only makes the load happen exactly once, so that a
 * writer that damages the descriptor after our check cannot make the
 * compiler's second load hand out a value that was never checked. */
#define BR_READ_ONCE(x) (*(const volatile __typeof__(x) *)&(x))

/* A slot descriptor as br_next uses it: every field read once from shared
 * memory, checked, and used from here. */
struct slot_fields {
    uint64_t seq, epoch, batch, size;
    uint32_t count, worker, has_offsets;
    int32_t error;
};

/* A damaged descriptor: BR_EBADRING naming the batch, its slot, the field,
 * its value and what it may be; the generator stops as after any failure. */
__attribute__((format(printf, 3, 4))) static int slot_bad(struct br_gen *g, uint64_t seq,
                                                          const char *fmt, ...)
{
    char what[BR_MSG_CAP / 2];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    br__fail(g->msg, 0, "bad ring: the descriptor of batch %llu (slot %u) is damaged: %s",
             (unsigned long long)seq, br__slot_index(&g->ring, seq), what);
    return gen_stop(g, BR_EBADRING);
}

/*
 * Reads the descriptor of seq (published READY, or FAILED when `failed`)
 * once into *f and checks every field against the ring's geometry before
 * br_next uses any of them to index memory or hands it to the caller:
 * workers write descriptors, and a named ring's object can be written by
 * anyone who can open it. A handful of compares and one multiply; the
 * offsets loop only when the loader filled offsets.
 * Returns 0, or BR_EBADRING with the generator stopped.
 */
static int slot_check(struct br_gen *g, uint64_t seq, bool failed, struct slot_fields *f)
{
    const struct br_ring *r = &g->ring;
    const struct br_slot_desc *d = br__slot_desc(r, seq);
    /* Geometry from the header copy checked at open or attach. */
    const uint64_t per_epoch = r->geo.batches_per_epoch;
    const uint32_t workers = g->nworkers ? g->nworkers : 1; /* inline: worker 0 */
    uint64_t first;

    f->seq = BR_READ_ONCE(d->seq);
    f->epoch = BR_READ_ONCE(d->epoch);
    f->batch = BR_READ_ONCE(d->batch);
    f->size = BR_READ_ONCE(d->size);
    f->count = BR_READ_ONCE(d->count);
    f->worker = BR_READ_ONCE(d->worker);
    f->has_offsets = BR_READ_ONCE(d->has_offsets);
    f->error = BR_READ_ONCE(d->error);

    if (f->seq != seq)
        return slot_bad(g, seq, "seq is %llu, expected %llu", (unsigned long long)f->seq,
                        (unsigned long long)seq);
    /* Before anything indexes ids, labels or offsets with it. */
    if (f->count < 1 || f->count > r->batch_size)
        return slot_bad(g, seq, "count is %u, expected 1..%u (batch_size)", f->count,
                        r->batch_size);
    /* epoch x per_epoch + batch == seq, without a division on the hot path. */
    if (f->batch >= per_epoch || __builtin_mul_overflow(f->epoch, per_epoch, &first) ||
        first + f->batch != seq) {
        if (per_epoch == 0)
            return slot_bad(g, seq, "batches_per_epoch is 0 in the ring's header");
        if (f->epoch != seq / per_epoch)
            return slot_bad(g, seq, "epoch is %llu, expected %llu (%llu batches per epoch)",
                            (unsigned long long)f->epoch, (unsigned long long)(seq / per_epoch),
                            (unsigned long long)per_epoch);
        return slot_bad(g, seq, "batch is %llu, expected %llu (%llu batches per epoch)",
                        (unsigned long long)f->batch, (unsigned long long)(seq % per_epoch),
                        (unsigned long long)per_epoch);
    }
    if (f->worker >= workers)
        return slot_bad(g, seq, "worker is %u, expected 0..%u", f->worker, workers - 1);
    if (failed) {
        /* The loader's code: a loader returns 0 or a negative code, and a
         * positive one was turned into BR_ELOADER by its worker. */
        if (f->error >= 0)
            return slot_bad(g, seq, "error is %d in a FAILED slot, expected a negative code",
                            (int)f->error);
        return 0;
    }
    if (f->size > r->slot_bytes)
        return slot_bad(g, seq, "size is %llu, expected 0..%llu (slot_bytes)",
                        (unsigned long long)f->size, (unsigned long long)r->slot_bytes);
    if (f->has_offsets > 1)
        return slot_bad(g, seq, "has_offsets is %u, expected 0 or 1", f->has_offsets);
    if (f->has_offsets) {
        /* The caller walks offsets[0..count] into data[0..size). */
        const uint64_t *offsets = br__slot_offsets(r, seq);
        uint64_t prev = BR_READ_ONCE(offsets[0]);
        for (uint32_t i = 1; i <= f->count; i++) {
            uint64_t cur = BR_READ_ONCE(offsets[i]);
            if (cur < prev)
                return slot_bad(g, seq, "offsets[%u] is %llu, below offsets[%u] = %llu "
                                "(offsets must rise)", i, (unsigned long long)cur, i - 1,
                                (unsigned long long)prev);
            prev = cur;
        }
        if (prev > f->size)
            return slot_bad(g, seq, "offsets[%u] is %llu, expected at most size %llu",
                            f->count, (unsigned long long)prev, (unsigned long long)f->size);
    }
    return 0;
}

/* A FAILED slot whose descriptor slot_check accepted. */
static int loader_failure(struct br_gen *g, uint64_t seq, const struct slot_fields *f)
{
    const uint64_t *ids = br__slot_ids(&g->ring, seq);
    char text[BR_ERR_CAP];
    /* One copy of the loader's text, checked in the copy: the shared one
     * may change under us. */
    memcpy(text, br__slot_err(&g->ring, seq), sizeof text);
    if (!memchr(text, '\0', sizeof text))
        return slot_bad(g, seq, "its error text is not NUL-terminated within %u bytes",
                        (unsigned)BR_ERR_CAP);
    br__fail(g->msg, 0, "loader failed on batch %llu (epoch %llu, %u samples, ids %llu..%llu): %s [%s]",
             (unsigned long long)seq, (unsigned long long)f->epoch, f->count,
             (unsigned long long)BR_READ_ONCE(ids[0]),
             (unsigned long long)BR_READ_ONCE(ids[f->count - 1]),
             text[0] ? text : br_strerror(f->error), br_err_name(f->error));
    return gen_stop(g, BR_ELOADER);
}

/* Loads `seq` inside br_next (workers = 0): the same slot protocol, with
 * the consumer as its only worker. The slot is FREE: we released it. */
static void load_inline(struct br_gen *g, uint64_t seq)
{
    struct br_slot_desc *d = br__slot_desc(&g->ring, seq);
    uint64_t t0 = br__now_ns();
    br__store_relaxed_u64(&g->ring.hdr->claim, seq + 1);
    br__store_relaxed_u32(&d->word, br__slot_word(br__slot_lap(&g->ring, seq), BR_LOADING));
    br__fill_slot(&g->ring, &g->ctx, &g->inline_env, seq);
    /* Loading inline is time the trainer waits for data: it is stall. */
    br__add_relaxed_u64(&g->ring.hdr->consumer_stall_ns, br__now_ns() - t0);
}

/* Waits until the slot of seq is READY or FAILED on its lap. Returns 0, or
 * -ETIMEDOUT, or a failure the supervisor recorded for this seq. */
/* The consumer must sleep for batch seq: it sleeps until half the ring is
 * ready (batch seq + nslots/2 - 1 is published) instead, and then takes
 * those batches without waiting. A consumer faster than its workers would
 * otherwise sleep and be woken for every batch: a FUTEX_WAKE for the
 * publishing worker (~6 us here) and a wake-up that preempts a worker, per
 * batch. Workers never wait for it: the other half of the ring is free.
 * The sleep is at most BR_GATHER_SLEEP_MS, after which seq is checked
 * again: a late batch in the half cannot hold back one that is ready by
 * more than that.
 * Returns whether it slept (false: sleep for seq itself). */
static bool sleep_for_half_ring(struct br_gen *g, uint64_t seq)
{
    uint64_t k = g->ring.nslots / 2, last;
    struct br_slot_desc *d;
    uint32_t w;

    if (k > g->ring.geo.end_seq - seq)
        k = g->ring.geo.end_seq - seq;
    if (k < 2)
        return false;
    last = seq + k - 1;
    d = br__slot_desc(&g->ring, last);
    w = br__load_acquire_u32(&d->word);
    if (w == br__slot_word(br__slot_lap(&g->ring, last), BR_READY) ||
        w == br__slot_word(br__slot_lap(&g->ring, last), BR_FAILED))
        return false;
    br__slot_sleep(d, w, BR_GATHER_SLEEP_MS);
    return true;
}

/*
 * The consumer's wait, seen from outside (batchring stat, br_ring_stat).
 * Before its first sleep for batch seq, wait_ready stores the time the wait
 * began in the header's consumer_wait_since; when the wait ends it stores
 * 0, and br_next then moves the cursor. The seq waited for is the cursor,
 * which the consumer stored (release) when it took the batch before, or
 * when it attached. A reader pairs the two like a seqlock:
 *
 *   consumer                           reader (br_ring_stat)
 *   cursor = s          (release)      t1 = since   (acquire)
 *   since = T           (release)      c  = cursor  (acquire)
 *   ... sleeps ...                     t2 = since   (relaxed, after c)
 *   since = 0           (relaxed)      waiting for c since t1 iff
 *   cursor = s + 1      (release)        t1 == t2 != 0
 *
 * t1 == T acquires the cursor store before it: c >= s. If c > s, the
 * reader acquired a cursor store that came after the clear of T, so t2
 * reads 0 or the start of a wait for a later batch, never T: that start
 * was taken after every wait for s had ended. (A br_next that retries s
 * after a timeout stores the same T again, but for the same s.) So t1 ==
 * t2 means c is the batch that wait is for: never a seq from one wait with
 * a time from another. The fast path (a ready batch) and a wait that ends
 * in the spin store nothing.
 */
static void wait_announce(struct br_gen *g, uint64_t seq, uint64_t t0)
{
    uint64_t since = g->timed_out_t0 && g->timed_out_seq == seq ? g->timed_out_t0 : t0;
    /* Release: pairs with the reader's acquire load of consumer_wait_since;
     * it then sees the cursor (seq) stored before. Never 0: that is "not
     * waiting". */
    br__store_release_u64(&g->ring.hdr->consumer_wait_since, since ? since : 1);
}

static int wait_ready(struct br_gen *g, uint64_t seq, uint32_t *word)
{
    struct br_ring_header *h = g->ring.hdr;
    struct br_slot_desc *d = br__slot_desc(&g->ring, seq);
    const uint64_t lap = br__slot_lap(&g->ring, seq);
    const uint32_t ready = br__slot_word(lap, BR_READY);
    const uint32_t failed = br__slot_word(lap, BR_FAILED);
    uint64_t t0, now, deadline, spin_ns;
    bool gathered = false, announced = false;
    uint32_t w;
    int rc = 0;

    /* Acquire pairs with the loader's publish (br__slot_publish): the
     * batch's data and descriptor are visible once we see READY. */
    w = br__load_acquire_u32(&d->word);
    if (w == ready || w == failed) {
        *word = w;
        return 0;
    }
    /* About to wait: any worker still asleep must start now. */
    br__kick_workers(&g->ring, INT_MAX);
    t0 = br__now_ns();
    deadline = g->timeout_ms < 0 ? UINT64_MAX : t0 + (uint64_t)g->timeout_ms * 1000000u;
    spin_ns = g->spin_adaptive ? BR_SPIN_NS : BR_SPIN_CROWDED_NS;
    if (g->spin_adaptive && 2 * g->wait_avg_ns > spin_ns && 2 * g->wait_avg_ns <= BR_SPIN_MAX_NS)
        spin_ns = 2 * g->wait_avg_ns;
    for (unsigned spins = 1; g->timeout_ms != 0; spins++) {
        br__cpu_relax();
        w = br__load_acquire_u32(&d->word);
        if (w == ready || w == failed)
            goto out;
        if (spins % 64 == 0 && br__now_ns() - t0 > spin_ns)
            break;
    }
    for (;;) {
        uint64_t left;
        br__kick_workers(&g->ring, INT_MAX);
        w = br__load_acquire_u32(&d->word);
        if (w == ready || w == failed)
            break;
        rc = br__sup_check(&g->sup, g->msg);
        if (!rc)
            rc = check_producer(g);
        if (rc)
            break;
        /* Acquire pairs with record_failure's release: code and text are
         * written before fail_seq. fail_seq only goes down, and only to a
         * batch nobody will ever load (so >= our cursor): once we see it
         * <= seq, nothing rewrites the text we copy (record_failure). */
        if (br__load_acquire_u64(&h->fail_seq) <= seq) {
            /* Bounded: the text lies in shared memory, its NUL included
             * only if no other writer damaged it. A code that is not a
             * failure still fails the wait. */
            int code = h->fail_code;
            snprintf(g->msg, sizeof g->msg, "%.*s", (int)sizeof h->fail_msg, h->fail_msg);
            if (!g->msg[0])
                br__fail(g->msg, 0, "the producer recorded a failure at batch %llu without a "
                         "message (code %d)", (unsigned long long)seq, code);
            rc = code < 0 ? code : BR_EWORKER;
            break;
        }
        now = br__now_ns();
        if (now >= deadline) {
            br__fail(g->msg, 0, "no batch within timeout_ms = %d (waiting for batch %llu)",
                     g->timeout_ms, (unsigned long long)seq);
            rc = -ETIMEDOUT;
            break;
        }
        left = (deadline - now + 999999u) / 1000000u;
        /* Past the spin, about to sleep: from now on the wait is visible. */
        if (!announced) {
            announced = true;
            wait_announce(g, seq, t0);
        }
        /* Once per wait: if the batch is still not ready after a sleep for
         * half the ring, the workers are slow, and a sleep until it is
         * published costs nothing next to their pace. */
        if (!gathered && (gathered = true, sleep_for_half_ring(g, seq)))
            continue;
        br__slot_sleep(d, w, left < BR_CONSUMER_SLICE_MS ? (int)left : BR_CONSUMER_SLICE_MS);
    }
out:
    /* Relaxed: br_next's release store of the cursor comes after it and
     * carries it to a reader (see wait_announce). After an error the cursor
     * stays; the word is simply 0 (not waiting) from here on. */
    if (announced)
        br__store_relaxed_u64(&h->consumer_wait_since, 0);
    /* A br_next that timed out is usually called again for the same batch:
     * that wait goes on from this one's start. */
    if (rc == -ETIMEDOUT && !(g->timed_out_t0 && g->timed_out_seq == seq)) {
        g->timed_out_seq = seq;
        g->timed_out_t0 = t0;
    }
    now = br__now_ns();
    /* An average over about 8 waits: it follows a change of pace quickly. */
    g->wait_avg_ns = g->wait_avg_ns - g->wait_avg_ns / 8 + (now - t0) / 8;
    br__add_relaxed_u64(&h->consumer_stall_ns, now - t0);
    *word = w;
    return rc;
}

void br__gen_release_held(struct br_gen *g)
{
    if (!g->holding)
        return;
    g->holding = false;
    br__slot_publish(br__slot_desc(&g->ring, g->held),
                     br__slot_word(br__slot_lap(&g->ring, g->held) + 1, BR_FREE));
    /* A deep ring: no wake-up here (workers sleep at our pace, and
     * wait_ready kicks them before we wait), so a ready batch costs no
     * syscall. A shallow one: wake sleepers once per half ring, so that a
     * release is a plain store and not a syscall per batch. */
    if (g->ring.nslots < BR_NAP_MIN_SLOTS && ++g->released >= g->kick_every) {
        g->released = 0;
        br__kick_workers(&g->ring, (int)g->kick_every);
    }
}

BR_API int br_next(br_gen *handle, br_batch *out)
{
    struct br_gen *g = br__gen_lookup(handle);
    struct br_ring_header *h;
    struct slot_fields f;
    uint64_t seq;
    uint32_t word;
    int rc;

    if (!g)
        return handle ? BR_ESTOPPED : -EINVAL;
    if (!out)
        return br__fail(g->msg, -EINVAL, "out is NULL: pass a br_batch to fill");
    if (g->role == ROLE_SERVE)
        return br__fail(g->msg, -EINVAL, "this generator serves ring %s: its batches are for "
                        "the process that attaches to it (br_attach)", g->name);
    if (g->state == GEN_STOPPED)
        return br__fail(g->msg, BR_ESTOPPED, "the generator is stopped after an earlier error: %s",
                        g->first_error);
    if (g->state == GEN_EOF)
        return BR_EOF;

    h = g->ring.hdr;
    br__gen_release_held(g);
    seq = g->cursor;
    if (seq >= g->ring.geo.end_seq) {
        g->state = GEN_EOF;
        consumer_finished(g, BR_CONSUMER_EOF);
        return br__fail(g->msg, BR_EOF, "end of data: %llu epochs of %llu batches delivered",
                        (unsigned long long)g->ring.geo.epochs,
                        (unsigned long long)g->ring.geo.batches_per_epoch);
    }
    if (g->nworkers == 0)
        load_inline(g, seq);
    rc = wait_ready(g, seq, &word);
    if (rc == -ETIMEDOUT)
        return rc;
    if (rc)
        return gen_stop(g, rc);
    rc = slot_check(g, seq, (word & 3u) == BR_FAILED, &f);
    if (rc)
        return rc;
    if ((word & 3u) == BR_FAILED)
        return loader_failure(g, seq, &f);

    out->seq = seq;
    out->epoch = f.epoch;
    out->batch = f.batch;
    out->count = f.count;
    out->ids = br__slot_ids(&g->ring, seq);
    out->labels = br__slot_labels(&g->ring, seq);
    out->data = br__slot_data(&g->ring, seq);
    out->size = (size_t)f.size;
    out->offsets = f.has_offsets ? br__slot_offsets(&g->ring, seq) : NULL;
    g->holding = true;
    g->held = seq;
    g->cursor = seq + 1;
    /* Release: the supervisor (seq_done) and observers read the cursor. */
    br__store_release_u64(&h->cursor, g->cursor);
    /* Only this process writes these: a plain load and store, no locked
     * instruction on the hot path. */
    br__store_relaxed_u64(&h->consumer_batches, br__load_relaxed_u64(&h->consumer_batches) + 1);
    br__store_relaxed_u64(&h->consumer_bytes, br__load_relaxed_u64(&h->consumer_bytes) + f.size);
    return 0;
}

