/* SPDX-License-Identifier: MIT */
/*
 * schedule: computing a batch's ids beside one br_next handoff. Only
 * batchring-perf builds this file (BR_PERF_INTERNAL): it calls the
 * library's internal schedule, which the installed command may not.
 */
#include <stdbool.h>
#include <stdint.h>

#include <batchring.h>

#include "../producer/schedule.h"
#include "../ring/error.h"
#include "case_common.h"

/* ---- schedule: a batch's ids, beside the handoff ---- */

/* Computing the ids of a 1024-sample batch (in the worker, before the
 * loader runs) against one br_next handoff of a ready batch, measured in
 * the same call. Shuffled over 10^9 implicit ids, the expensive case; the
 * sequential fill is reported beside it. Only batchring-perf has it: it
 * calls the library's internal schedule directly. */
#define SCHEDULE_BATCH 1024u
#define SCHEDULE_SLOTS 64u

static uint64_t schedule_ns_per_batch(bool shuffle, uint64_t batches, uint64_t *ids)
{
    struct br_schedule s;
    char msg[BR_MSG_CAP];
    struct br_schedule_options o = {
        .n_ids = 1000000000u, .batch_size = SCHEDULE_BATCH, .shuffle = shuffle, .seed = 1};
    uint64_t t0, acc = 0;
    if (br__schedule_init(&s, &o, msg))
        return 0;
    t0 = br_util_now_ns();
    for (uint64_t seq = 0; seq < batches; seq++) {
        struct br_batch_place pl = br__schedule_place(&s, seq * 7919);
        br__schedule_fill(&s, &pl, NULL, NULL, ids, NULL);
        acc += ids[seq % SCHEDULE_BATCH];
    }
    bench__sink = acc;
    return (br_util_now_ns() - t0) / bench__max_u64(1, batches);
}

int bench__schedule_run(struct bench_loop *loop, const struct bench_params *p,
                        struct bench_result *out)
{
    uint64_t ids[SCHEDULE_BATCH], handoff_ns = 0, handoffs = 0, sched_ns = 0, seq_ns = 0, n = 0;
    br_gen *g = NULL;
    br_batch b;
    int rc;
    (void)p;
    if ((rc =
             bench__open_generator(&g, bench__load_nothing, NULL, 4 * KIB, 1, SCHEDULE_SLOTS, out)))
        return rc;
    if ((rc = bench__next_batch(g, &b, out)))
        goto done;
    while (loop->keep_running(loop)) {
        uint64_t t0, t1;
        if ((rc = bench__wait_ring_full(g, SCHEDULE_SLOTS, out)))
            goto done;
        t0 = br_util_now_ns();
        for (uint32_t i = 0; i + 1 < SCHEDULE_SLOTS; i++)
            if ((rc = bench__next_batch(g, &b, out)))
                goto done;
        handoff_ns += br_util_now_ns() - t0;
        handoffs += SCHEDULE_SLOTS - 1;
        t1 = br_util_now_ns();
        sched_ns += schedule_ns_per_batch(true, 16, ids);
        seq_ns += schedule_ns_per_batch(false, 16, ids);
        n++;
        loop->iteration_done(loop, br_util_now_ns() - t1, 16);
        out->units += 16;
    }
    out->value = (double)sched_ns / (double)bench__max_u64(1, n);
    out->baseline = (double)handoff_ns / (double)bench__max_u64(1, handoffs);
    out->ratio = out->value / out->baseline;
    out->seconds = (double)sched_ns * 16 / 1e9;
    bench__add_figure(out, "sequential_ns_per_batch",
                      (double)seq_ns / (double)bench__max_u64(1, n));
    bench__add_figure(out, "sequential_vs_handoff",
                      (double)seq_ns / (double)bench__max_u64(1, n) / out->baseline);
done:
    br_close(g);
    return rc;
}

bool bench__schedule_target(const struct bench_params *p, double *limit, bool *at_least)
{
    (void)p;
    *limit = 0.05, *at_least = false;
    return true;
}
