/* SPDX-License-Identifier: MIT */
/*
 * br_next: the generator's state machine around the consumer's hot path
 * (consumer/consumer.c). It loads inline when there are no workers, stops
 * the generator for good after a failure, and tells the producer of a
 * named ring how its consumer's run ended.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "api/gen.h"

/* An attached consumer tells its producer how the run ended. */
static void consumer_finished(struct br_gen *g, enum br_consumer_done how)
{
    struct br_ring_header *h = g->ring.hdr;
    if (g->role != ROLE_ATTACHED)
        return;
    br__store_release_u32(&h->consumer_done, how);
    br__ring_consumer_event(h);
}

/* Stops the generator for good after a failure; the message stays in
 * g->msg, and every later br_next repeats it. Returns code. */
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

int br__gen_check_alive(struct br_consumer *c)
{
    struct br_gen *g = (struct br_gen *)(void *)((char *)c - offsetof(struct br_gen, cons));
    int rc = br__sup_check(&g->sup, g->msg);
    return rc ? rc : check_producer(g);
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
    br__add_single_writer_u64(&g->ring.hdr->consumer_stall_ns, br__now_ns() - t0);
}

BR_API int br_next(br_gen *handle, br_batch *out)
{
    struct br_gen *g = br__gen_lookup(handle);
    struct br_slot_fields f;
    uint64_t seq;
    uint32_t word;
    bool failed;
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

    /* hold >= 2: the caller releases (br_release), and a batch the next
     * one needs the slot of is BR_EHELD here, before any wait. */
    if (g->cons.hold < 2)
        br__consumer_release(&g->cons);
    if (g->cons.cursor < g->cons.skip_end)
        br__consumer_skip_released(&g->cons);
    seq = g->cons.cursor;
    if (seq >= g->ring.geo.end_seq) {
        g->state = GEN_EOF;
        consumer_finished(g, BR_CONSUMER_EOF);
        return br__fail(g->msg, BR_EOF, "end of data: %llu epochs of %llu batches delivered",
                        (unsigned long long)g->ring.geo.epochs,
                        (unsigned long long)g->ring.geo.batches_per_epoch);
    }
    if (g->cons.hold >= 2) {
        rc = br__consumer_hold_check(&g->cons, seq);
        if (rc)
            return rc;
    }
    if (g->nworkers == 0)
        load_inline(g, seq);
    rc = br__consumer_wait(&g->cons, seq, &word);
    if (rc == -ETIMEDOUT)
        return rc;
    if (rc)
        return gen_stop(g, rc);
    failed = (word & 3u) == BR_FAILED;
    rc = br__consumer_check_slot(&g->cons, seq, failed, &f);
    if (!rc && failed)
        rc = br__consumer_loader_failure(&g->cons, seq, &f);
    if (rc)
        return gen_stop(g, rc);
    br__consumer_take(&g->cons, seq, &f, out);
    return 0;
}
