/* SPDX-License-Identifier: MIT */
/*
 * The consumer's side of the slot protocol (ring/ring.c): br_next's
 * internals. It waits for the slot of the next batch, checks the
 * descriptor it finds there, hands the batch out, and on the next call
 * gives the slot back.
 *
 * When the next slot is already READY, br_next costs one acquire load, one
 * store to give the previous slot back and no syscall: workers sleep on
 * the header's kick word, not on the slot, and the consumer bumps kick
 * only before it waits itself, or after a run of half a ring of releases
 * when a worker sleeps (br__consumer_release). Only when the batch is not ready does it
 * spin briefly, then sleep in slices, asking its owner between slices
 * whether whoever feeds the ring still lives (check_alive).
 *
 * This layer knows the ring and nothing above it: the API layer (api/)
 * owns the generator, the workers and the handles.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "consumer/consumer.h"
#include "ring/error.h"

/* How long the consumer spins on a slot before it sleeps: about one futex
 * round trip, so a batch that is nearly ready costs no syscall. */
#define BR_SPIN_NS 20000u
/* When a core is free for it (workers < online CPUs), the consumer spins
 * up to twice its recent wait per batch instead, if that is at most this long: a
 * sleep costs the worker a FUTEX_WAKE and the consumer a wake-up (both
 * microseconds on a VM: docs/perf/notes.md), a large share of a batch that
 * takes tens of microseconds to load and nothing next to one that takes
 * milliseconds. */
#define BR_SPIN_MAX_NS 500000u
/* When workers fill every core, the consumer spins only this long: each
 * microsecond of its spin is taken from a worker about to publish. */
#define BR_SPIN_CROWDED_NS 2000u
/* Shortest bound of a sleep for a run before the consumer looks at its
 * own batch again (sleep_for_run); longer when the run takes longer at the
 * workers' pace. */
#define BR_GATHER_SLEEP_MS 1
/* Longest single sleep, so dead workers are noticed promptly. */
#define BR_CONSUMER_SLICE_MS 10


void br__consumer_init(struct br_consumer *c, struct br_ring *ring, uint64_t cursor,
                       int timeout_ms, char *msg, int (*check_alive)(struct br_consumer *))
{
    memset(c, 0, sizeof *c);
    c->ring = ring;
    c->cursor = cursor;
    c->timeout_ms = timeout_ms;
    c->msg = msg;
    c->check_alive = check_alive;
    c->kick_every = ring->nslots / 2 ? ring->nslots / 2 : 1;
    c->spin_adaptive = ring->cpus_to_spare;
    /* The run a sleeping consumer waits for: half the ring, the other half
     * covering its wake-up. Where the workers hold every CPU, each sleep
     * costs the consumer a context switch, the larger part of its CPU per
     * batch (docs/perf/notes.md, "The batched handoff"), and the worker
     * that wakes it hands it its CPU (producer/worker.c, publish): there
     * it waits for seven eighths, leaving an eighth of the ring, and at
     * least one slot per worker, free to cover a wake-up that no longer
     * waits for a CPU; each switch is spread over 1.75 times the batches.
     * (A quarter left free was measured against an eighth on 2 workers,
     * 32 and 256 slots: 15-20% fewer sleeps, and the workers slept for a
     * full ring no more often; a sixteenth, one slot per worker at 32,
     * had them sleep 5-8 times as often: docs/perf/notes.md.) */
    c->gather = ring->nslots / 2;
    if (!c->spin_adaptive) {
        uint32_t n = ring->nslots, run = n - n / 8, workers = ring->geo.nworkers;
        if (n - run < workers)
            run = n > workers ? n - workers : 0;
        if (run > c->gather)
            c->gather = run;
    }
    /* A consumer that holds batches (opt.hold H >= 2) waits with up to
     * H - 1 slots still taken: the last batch of a longer run could never
     * be published, and each such sleep would last its whole bound. */
    {
        const uint32_t held = ring->geo.hold > 1 ? ring->geo.hold - 1 : 0;
        if (c->gather + held > ring->nslots)
            c->gather = ring->nslots > held + 1 ? ring->nslots - held : 1;
    }
}

/* One load of a plain descriptor field. The fields are published by the
 * slot word's release and read after its acquire, so no atomic is needed
 * for ordering; volatile only makes the load happen exactly once, so that a
 * writer that damages the descriptor after our check cannot make the
 * compiler's second load hand out a value that was never checked. */
#define BR_READ_ONCE(x) (*(const volatile __typeof__(x) *)&(x))

/* A damaged descriptor: BR_EBADRING naming the batch, its slot, the field,
 * its value and what it may be; the generator stops as after any failure. */
__attribute__((format(printf, 3, 4))) static int slot_bad(const struct br_consumer *c, uint64_t seq,
                                                          const char *fmt, ...)
{
    char what[BR_MSG_CAP / 2];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    br__fail(c->msg, 0, "bad ring: the descriptor of batch %llu (slot %u) is damaged: %s",
             (unsigned long long)seq, br__slot_index(c->ring, seq), what);
    return BR_EBADRING;
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
int br__consumer_check_slot(const struct br_consumer *c, uint64_t seq, bool failed,
                            struct br_slot_fields *f)
{
    const struct br_ring *r = c->ring;
    const struct br_slot_desc *d = br__slot_desc(r, seq);
    /* Geometry from the header copy checked at open or attach. */
    const uint64_t per_epoch = r->geo.batches_per_epoch;
    const uint32_t workers = r->geo.nworkers ? r->geo.nworkers : 1; /* inline: worker 0 */
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
        return slot_bad(c, seq, "seq is %llu, expected %llu", (unsigned long long)f->seq,
                        (unsigned long long)seq);
    /* Before anything indexes ids, labels or offsets with it. */
    if (f->count < 1 || f->count > r->batch_size)
        return slot_bad(c, seq, "count is %u, expected 1..%u (batch_size)", f->count,
                        r->batch_size);
    /* epoch x per_epoch + batch == seq, without a division on the hot path. */
    if (f->batch >= per_epoch || __builtin_mul_overflow(f->epoch, per_epoch, &first) ||
        first + f->batch != seq) {
        if (per_epoch == 0)
            return slot_bad(c, seq, "batches_per_epoch is 0 in the ring's header");
        if (f->epoch != seq / per_epoch)
            return slot_bad(c, seq, "epoch is %llu, expected %llu (%llu batches per epoch)",
                            (unsigned long long)f->epoch, (unsigned long long)(seq / per_epoch),
                            (unsigned long long)per_epoch);
        return slot_bad(c, seq, "batch is %llu, expected %llu (%llu batches per epoch)",
                        (unsigned long long)f->batch, (unsigned long long)(seq % per_epoch),
                        (unsigned long long)per_epoch);
    }
    if (f->worker >= workers)
        return slot_bad(c, seq, "worker is %u, expected 0..%u", f->worker, workers - 1);
    if (failed) {
        /* The loader's code: a loader returns 0 or a negative code, and a
         * positive one was turned into BR_ELOADER by its worker. */
        if (f->error >= 0)
            return slot_bad(c, seq, "error is %d in a FAILED slot, expected a negative code",
                            (int)f->error);
        return 0;
    }
    if (f->size > r->slot_bytes)
        return slot_bad(c, seq, "size is %llu, expected 0..%llu (slot_bytes)",
                        (unsigned long long)f->size, (unsigned long long)r->slot_bytes);
    if (f->has_offsets > 1)
        return slot_bad(c, seq, "has_offsets is %u, expected 0 or 1", f->has_offsets);
    if (f->has_offsets) {
        /* The caller walks offsets[0..count] into data[0..size). */
        const uint64_t *offsets = br__slot_offsets(r, seq);
        uint64_t prev = BR_READ_ONCE(offsets[0]);
        for (uint32_t i = 1; i <= f->count; i++) {
            uint64_t cur = BR_READ_ONCE(offsets[i]);
            if (cur < prev)
                return slot_bad(c, seq, "offsets[%u] is %llu, below offsets[%u] = %llu "
                                "(offsets must rise)", i, (unsigned long long)cur, i - 1,
                                (unsigned long long)prev);
            prev = cur;
        }
        if (prev > f->size)
            return slot_bad(c, seq, "offsets[%u] is %llu, expected at most size %llu",
                            f->count, (unsigned long long)prev, (unsigned long long)f->size);
    }
    return 0;
}

/* A FAILED slot whose descriptor slot_check accepted. */
int br__consumer_loader_failure(const struct br_consumer *c, uint64_t seq,
                                const struct br_slot_fields *f)
{
    const uint64_t *ids = br__slot_ids(c->ring, seq);
    char text[BR_ERR_CAP];
    /* One copy of the loader's text, checked in the copy: the shared one
     * may change under us. */
    memcpy(text, br__slot_err(c->ring, seq), sizeof text);
    if (!memchr(text, '\0', sizeof text))
        return slot_bad(c, seq, "its error text is not NUL-terminated within %u bytes",
                        (unsigned)BR_ERR_CAP);
    br__fail(c->msg, 0, "loader failed on batch %llu (epoch %llu, %u samples, ids %llu..%llu): %s [%s]",
             (unsigned long long)seq, (unsigned long long)f->epoch, f->count,
             (unsigned long long)BR_READ_ONCE(ids[0]),
             (unsigned long long)BR_READ_ONCE(ids[f->count - 1]),
             text[0] ? text : br_strerror(f->error), br_err_name(f->error));
    return BR_ELOADER;
}

/* The consumer must sleep for batch seq: it sleeps until a run of
 * c->gather batches is ready (batch seq + gather - 1 is published)
 * instead, and then takes those batches without waiting. A consumer faster
 * than its workers would otherwise sleep and be woken for every batch: a
 * FUTEX_WAKE for the publishing worker and a wake-up that preempts a
 * worker, per batch (docs/perf/notes.md has what each costs). Workers
 * never wait for it while the rest of the ring is free (br__consumer_init
 * says how much that is).
 * The sleep is bounded by twice the time the run takes at the workers'
 * pace (c->pace_ns), and by at least BR_GATHER_SLEEP_MS, after which seq
 * is checked again: a late batch in the run cannot hold back one that is
 * ready by more than about the run's own time. A fixed bound cut deep
 * runs short: 96 batches of 10 us each outlast 1 ms, and each cut costs
 * another sleep (1.5 sleeps per run with 128 slots of 128 KiB batches).
 * And by left_ms, what remains of the caller's timeout: a br_next with a
 * 1 ms timeout slept up to BR_CONSUMER_SLICE_MS here before it timed out.
 * Returns the length of the run it slept for, 0 if it did not (sleep for
 * seq itself). */
static uint64_t sleep_for_run(struct br_consumer *c, uint64_t seq, uint64_t left_ms)
{
    uint64_t k = c->gather, last, bound_ms;
    struct br_slot_desc *d;
    uint32_t w;

    if (k > c->ring->geo.end_seq - seq)
        k = c->ring->geo.end_seq - seq;
    if (k < 2)
        return 0;
    last = seq + k - 1;
    d = br__slot_desc(c->ring, last);
    w = br__load_acquire_u32(&d->word);
    if (w == br__slot_word(br__slot_lap(c->ring, last), BR_READY) ||
        w == br__slot_word(br__slot_lap(c->ring, last), BR_FAILED))
        return 0;
    bound_ms = 2 * k * c->pace_ns / 1000000u;
    if (bound_ms < BR_GATHER_SLEEP_MS)
        bound_ms = BR_GATHER_SLEEP_MS;
    if (bound_ms > BR_CONSUMER_SLICE_MS)
        bound_ms = BR_CONSUMER_SLICE_MS;
    if (bound_ms > left_ms) /* the caller's timeout comes first */
        bound_ms = left_ms;
    br__add_single_writer_u64(&c->sleeps, 1);
    br__slot_sleep(d, w, (int)bound_ms);
    return k;
}

/* The workers' pace, from the consumer's side: time per batch taken between
 * the starts of two waits. Where the consumer waits for its workers this
 * is their pace; where they are faster it waits rarely, and a long gap
 * only lengthens a bound it seldom needs. */
static void pace_note(struct br_consumer *c, uint64_t seq, uint64_t t0)
{
    if (c->pace_t0 && seq > c->pace_seq) {
        uint64_t per = (t0 - c->pace_t0) / (seq - c->pace_seq);
        if (per > 1000000000u) /* a pause of the trainer's, not a pace */
            per = 1000000000u;
        c->pace_ns = c->pace_ns ? c->pace_ns - c->pace_ns / 4 + per / 4 : per;
    }
    c->pace_seq = seq;
    c->pace_t0 = t0;
}

/* How many of the `run` batches from seq on are published (READY or
 * FAILED on their lap), counted in order: at least 1, the batch waited for
 * counting as one whether or not it came. */
static uint64_t ready_run(const struct br_consumer *c, uint64_t seq, uint64_t run)
{
    uint64_t k = 1;
    while (k < run) {
        const uint64_t s = seq + k, lap = br__slot_lap(c->ring, s);
        const uint32_t w = br__load_acquire_u32(&br__slot_desc(c->ring, s)->word);
        if (w != br__slot_word(lap, BR_READY) && w != br__slot_word(lap, BR_FAILED))
            break;
        k++;
    }
    return k;
}

/*
 * The consumer's wait, seen from outside (batchring stat, br_ring_status_get).
 * Before its first sleep for batch seq, wait_ready stores the time the wait
 * began in the header's consumer_wait_since; when the wait ends it stores
 * 0, and br_next then moves the cursor. The seq waited for is the cursor,
 * which the consumer stored (release) when it took the batch before, or
 * when it attached. A reader pairs the two like a seqlock:
 *
 *   consumer                           reader (br_ring_status_get)
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
static void wait_announce(struct br_consumer *c, uint64_t seq, uint64_t t0)
{
    uint64_t since = c->timed_out_t0 && c->timed_out_seq == seq ? c->timed_out_t0 : t0;
    /* Release: pairs with the reader's acquire load of consumer_wait_since;
     * it then sees the cursor (seq) stored before. Never 0: that is "not
     * waiting". */
    br__store_release_u64(&c->ring->hdr->consumer_wait_since, since ? since : 1);
}

/* Waits until the slot of seq is READY or FAILED on its lap. Returns 0, or
 * -ETIMEDOUT, or what check_alive returned, or a failure the supervisor
 * recorded for this seq. */
int br__consumer_wait(struct br_consumer *c, uint64_t seq, uint32_t *word)
{
    struct br_ring_header *h = c->ring->hdr;
    struct br_slot_desc *d = br__slot_desc(c->ring, seq);
    const uint64_t lap = br__slot_lap(c->ring, seq);
    const uint32_t ready = br__slot_word(lap, BR_READY);
    const uint32_t failed = br__slot_word(lap, BR_FAILED);
    uint64_t t0, now, deadline, spin_ns, run = 0;
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
    br__kick_workers(c->ring, INT_MAX, BR_SLEEPERS_ALL);
    t0 = br__now_ns();
    pace_note(c, seq, t0);
    deadline = c->timeout_ms < 0 ? UINT64_MAX : t0 + (uint64_t)c->timeout_ms * 1000000u;
    spin_ns = c->spin_adaptive ? BR_SPIN_NS : BR_SPIN_CROWDED_NS;
    if (c->spin_adaptive && 2 * c->wait_avg_ns > spin_ns && 2 * c->wait_avg_ns <= BR_SPIN_MAX_NS)
        spin_ns = 2 * c->wait_avg_ns;
    for (unsigned spins = 1; c->timeout_ms != 0; spins++) {
        br__cpu_relax();
        w = br__load_acquire_u32(&d->word);
        if (w == ready || w == failed)
            goto out;
        if (spins % 64 == 0 && br__now_ns() - t0 > spin_ns)
            break;
    }
    for (;;) {
        uint64_t left;
        br__kick_workers(c->ring, INT_MAX, BR_SLEEPERS_ALL);
        w = br__load_acquire_u32(&d->word);
        if (w == ready || w == failed)
            break;
        rc = c->check_alive(c);
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
            snprintf(c->msg, BR_MSG_CAP, "%.*s", (int)sizeof h->fail_msg, h->fail_msg);
            if (!c->msg[0])
                br__fail(c->msg, 0, "the producer recorded a failure at batch %llu without a "
                         "message (code %d)", (unsigned long long)seq, code);
            rc = code < 0 ? code : BR_EWORKER;
            break;
        }
        now = br__now_ns();
        if (now >= deadline) {
            br__fail(c->msg, 0, "no batch within timeout_ms = %d (waiting for batch %llu)",
                     c->timeout_ms, (unsigned long long)seq);
            rc = -ETIMEDOUT;
            break;
        }
        left = (deadline - now + 999999u) / 1000000u;
        /* Past the spin, about to sleep: from now on the wait is visible. */
        if (!announced) {
            announced = true;
            wait_announce(c, seq, t0);
        }
        /* Once per wait: if the batch is still not ready after a sleep for
         * a run, the workers are slow, and a sleep until it is
         * published costs nothing next to their pace. */
        if (!gathered && (gathered = true, (run = sleep_for_run(c, seq, left)) != 0))
            continue;
        br__add_single_writer_u64(&c->sleeps, 1);
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
    if (rc == -ETIMEDOUT && !(c->timed_out_t0 && c->timed_out_seq == seq)) {
        c->timed_out_seq = seq;
        c->timed_out_t0 = t0;
    }
    now = br__now_ns();
    /* An average over about 8 waits, per batch: it follows a change of
     * pace quickly. A wait that slept for a run waited for the batches of
     * the run now ready, and counts per batch of them: counted whole, one
     * run of 4 batches of 140 us made the average 560 us, past the spin's
     * bound, so the next wait slept for a run too and the consumer never
     * spun again, though each batch came within its spin (1 MiB batches, 1
     * worker: a sleep and a worker's FUTEX_WAKE every 4 batches). Only the
     * batches ready in order count: a run sleep cut short by its bound, an
     * error or a late batch in the run delivered fewer. */
    c->wait_avg_ns = c->wait_avg_ns - c->wait_avg_ns / 8 + (now - t0) / ready_run(c, seq, run) / 8;
    br__add_single_writer_u64(&h->consumer_stall_ns, now - t0);
    *word = w;
    return rc;
}

/* Gives the slot of batch seq back: FREE for the next lap. */
static void release_slot(struct br_consumer *c, uint64_t seq)
{
    if (c->holding && c->held == seq)
        c->holding = false;
    if (c->nheld)
        c->nheld--;
    br__slot_release(br__slot_desc(c->ring, seq),
                     br__slot_word(br__slot_lap(c->ring, seq) + 1, BR_FREE));
    /* Workers asleep for a free slot are woken once per run of kick_every
     * (half the ring) releases, not per release: a woken worker finds a
     * run of free slots and fills it in one go, while the other half of
     * the ring, still ready, covers its wake-up. One load of
     * slot_sleepers per run and no syscall when nobody sleeps; wait_ready
     * kicks them anyway before we wait. */
    if (++c->released >= c->kick_every) {
        c->released = 0;
        br__kick_workers(c->ring, (int)c->kick_every, BR_SLEEPERS_UNTIMED);
    }
}

void br__consumer_release(struct br_consumer *c)
{
    if (c->holding)
        release_slot(c, c->held);
}

void br__consumer_take(struct br_consumer *c, uint64_t seq, const struct br_slot_fields *f,
                       br_batch *out)
{
    struct br_ring_header *h = c->ring->hdr;
    out->seq = seq;
    out->epoch = f->epoch;
    out->batch = f->batch;
    out->count = f->count;
    out->ids = br__slot_ids(c->ring, seq);
    out->labels = br__slot_labels(c->ring, seq);
    out->data = br__slot_data(c->ring, seq);
    out->size = (size_t)f->size;
    out->offsets = f->has_offsets ? br__slot_offsets(c->ring, seq) : NULL;
    /* Zero, so that a later version may give them a meaning (batchring.h,
     * "How the public structs grow", rule c). */
    memset(out->reserved, 0, sizeof out->reserved);
    c->holding = true;
    c->held = seq;
    c->nheld++;
    c->cursor = seq + 1;
    /* After a takeover, past what the consumer before released out of
     * order, before the cursor is stored: a consumer that takes over from
     * this one must not wait for those batches either. */
    if (c->cursor < c->skip_end)
        br__consumer_skip_released(c);
    /* Release: the supervisor (seq_done) and observers read the cursor.
     * Never below skip_end, the highest cursor any consumer reached (on a
     * ring of hold >= 2; on one of hold 1 skip_end is where this consumer
     * started, and the cursor it found was at most one above): while
     * this one re-delivers a dead consumer's held batches, a consumer that
     * takes over from it must still know which ones were released out of
     * order (model_slots_hold_takeover2 found the hang when it did not). */
    br__store_release_u64(&h->cursor, c->cursor > c->skip_end ? c->cursor : c->skip_end);
    /* Only this process writes these: a plain load and store, no locked
     * instruction on the hot path. */
    br__add_single_writer_u64(&h->consumer_batches, 1);
    br__add_single_writer_u64(&h->consumer_bytes, f->size);
}

bool br__consumer_waiting(const struct br_ring_header *h, uint64_t *seq, uint64_t *waited_ns)
{
    /* A retry only when a wait ended and another began between our loads.
     * Waits are at least a spin apart, so a few tries settle; a consumer
     * that ends a wait every time we look is reported as not waiting. */
    for (int tries = 0; tries < 4; tries++) {
        /* Acquire: pairs with wait_announce's release; the cursor we load
         * next is at least the seq of that wait. */
        uint64_t since = br__load_acquire_u64(&h->consumer_wait_since), s, now;
        if (!since)
            return false;
        /* Acquire: pairs with br__consumer_take's release of the cursor; if
         * it moved past the wait above, the load below sees that wait's end. */
        s = br__load_acquire_u64(&h->cursor);
        if (br__load_relaxed_u64(&h->consumer_wait_since) != since)
            continue;
        now = br__now_ns();
        *seq = s;
        *waited_ns = now > since ? now - since : 0;
        return true;
    }
    return false;
}

/*
 * Holding (opt.hold). What the caller holds is recorded in the ring, not
 * here: a batch below the cursor whose slot word is still READY on its
 * own lap has not been released, since only the consumer turns READY
 * into FREE (workers turn FREE into LOADING into READY). The slot of a
 * batch released out of order says FREE, or LOADING or READY of a later
 * lap, so the lap tells the two apart. Every held batch lies in the
 * window [cursor - nslots, cursor): the cursor's batch needs the slot of
 * cursor - nslots released before it can be taken (br__consumer_hold_check
 * says so rather than wait).
 */
static bool slot_unreleased(const struct br_ring *r, uint64_t seq)
{
    const uint64_t lap = br__slot_lap(r, seq);
    /* Acquire, as every load of a slot word: pairs with the publish of
     * the batch (br__slot_publish). */
    uint32_t w = br__load_acquire_u32(&br__slot_desc(r, seq)->word);
    return w == br__slot_word(lap, BR_READY) || w == br__slot_word(lap, BR_FAILED);
}

int br__consumer_release_seq(struct br_consumer *c, uint64_t seq)
{
    const uint32_t n = c->ring->nslots;
    if (seq >= c->cursor)
        return br__fail(c->msg, -EINVAL, "batch %llu is not held: br_next has not returned it "
                        "(the next batch is %llu)", (unsigned long long)seq,
                        (unsigned long long)c->cursor);
    if (c->cursor - seq > n || seq < c->ring->geo.start_seq || !slot_unreleased(c->ring, seq))
        return br__fail(c->msg, -EINVAL, "batch %llu is not held: it was released already",
                        (unsigned long long)seq);
    release_slot(c, seq);
    return 0;
}

void br__consumer_release_all(struct br_consumer *c)
{
    const uint64_t n = c->ring->nslots, start = c->ring->geo.start_seq;
    uint64_t s = c->cursor > start + n ? c->cursor - n : start;
    for (; s < c->cursor; s++)
        if (slot_unreleased(c->ring, s))
            release_slot(c, s);
    c->nheld = 0;
}

int br__consumer_hold_check(struct br_consumer *c, uint64_t seq)
{
    const uint32_t n = c->ring->nslots;
    if (c->nheld >= c->hold)
        return br__fail(c->msg, BR_EHELD, "the caller holds %u batches, as many as hold = %u "
                        "allows: release one (br_release) before br_next", c->nheld, c->hold);
    if (seq >= c->ring->geo.start_seq + n && slot_unreleased(c->ring, seq - n))
        return br__fail(c->msg, BR_EHELD, "batch %llu is still held, and the next batch "
                        "(%llu) is loaded into its slot (%u of %u slots): release it "
                        "(br_release)", (unsigned long long)(seq - n),
                        (unsigned long long)seq, br__slot_index(c->ring, seq), n);
    return 0;
}

void br__consumer_skip_released(struct br_consumer *c)
{
    while (c->cursor < c->skip_end && !slot_unreleased(c->ring, c->cursor))
        c->cursor++;
}

uint64_t br__consumer_first_unreleased(const struct br_ring *r, uint64_t cursor)
{
    const uint64_t n = r->nslots, start = r->geo.start_seq;
    uint64_t s = cursor > start + n ? cursor - n : start;
    for (; s < cursor; s++)
        if (slot_unreleased(r, s))
            return s;
    return cursor;
}
