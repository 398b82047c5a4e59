/* SPDX-License-Identifier: MIT */
/* A generator's counters and its checkpoint. */
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

void br__worker_stats_copy(const struct br_worker_rec *rec, br_worker_stats *out)
{
    /* Relaxed: each counter is a statistic on its own, written by its
     * worker alone; no reader orders one against another. */
    out->pid = br__load_relaxed_i32(&rec->pid);
    out->restarts = br__load_relaxed_u32(&rec->restarts);
    out->batches = br__load_relaxed_u64(&rec->batches);
    out->bytes = br__load_relaxed_u64(&rec->bytes);
    out->load_ns = br__load_relaxed_u64(&rec->load_ns);
    out->slot_wait_ns = br__load_relaxed_u64(&rec->slot_wait_ns);
    out->io_backend = br__load_relaxed_u32(&rec->io_backend);
    out->io_reads = br__load_relaxed_u64(&rec->io_reads);
    out->io_bytes = br__load_relaxed_u64(&rec->io_bytes);
    out->io_copies = br__load_relaxed_u64(&rec->io_copies);
    out->slot_sleeps = br__load_relaxed_u64(&rec->slot_sleeps);
    out->io_preads = br__load_relaxed_u64(&rec->io_preads);
}

BR_API int br_checkpoint_get(const br_gen *handle, uint64_t *next_seq)
{
    const struct br_gen *g = br__gen_lookup(handle);
    if (!g || !next_seq)
        return br__getter_fail("br_checkpoint_get", handle, !next_seq, 0, 0);
    *next_seq = g->cons.cursor;
    return 0;
}

BR_API int br_stats_get_sized(const br_gen *handle, br_stats *dst, size_t size)
{
    const struct br_gen *g = br__gen_lookup(handle);
    const struct br_ring_header *h;
    br_stats st, *out = &st;
    /* The caller's struct may be of another build (batchring.h, rule b):
     * fill this library's, then copy what fits. */
    if (!g || !dst || size < BR__STATS_SIZE_0_3)
        return br__getter_fail("br_stats_get", handle, !dst, size, BR__STATS_SIZE_0_3);
    h = g->ring.hdr;
    memset(out, 0, sizeof *out);
    out->batches = br__load_relaxed_u64(&h->consumer_batches);
    out->bytes = br__load_relaxed_u64(&h->consumer_bytes);
    out->stall_ns = br__load_relaxed_u64(&h->consumer_stall_ns);
    out->elapsed_ns = br__now_ns() - g->opened_ns;
    out->workers = g->nworkers;
    out->slots = g->ring.nslots;
    out->restarts = br__load_relaxed_u32(&h->restarts);
    out->loaded = br__load_relaxed_u64(&g->inline_rec.batches);
    out->load_ns = br__load_relaxed_u64(&g->inline_rec.load_ns);
    for (uint32_t i = 0; i < g->nworkers; i++) {
        const struct br_worker_rec *rec = &g->ring.workers[i];
        out->loaded += br__load_relaxed_u64(&rec->batches);
        out->load_ns += br__load_relaxed_u64(&rec->load_ns);
        out->slot_wait_ns += br__load_relaxed_u64(&rec->slot_wait_ns);
        out->slot_sleeps += br__load_relaxed_u64(&rec->slot_sleeps);
    }
    out->stall_sleeps = br__load_relaxed_u64(&g->cons.sleeps);
    out->hold = g->cons.hold > 1 ? g->cons.hold : 1;
    br__copy_out(dst, size, &st, sizeof st);
    return 0;
}

BR_API int br_worker_stats_get_sized(const br_gen *handle, uint32_t i, br_worker_stats *out,
                                     size_t size)
{
    const struct br_gen *g = br__gen_lookup(handle);
    br_worker_stats ws;
    if (!g || !out || size < BR__WORKER_STATS_SIZE_0_3)
        return br__getter_fail("br_worker_stats_get", handle, !out, size,
                               BR__WORKER_STATS_SIZE_0_3);
    if (i >= g->nworkers)
        return br__fail(br__open_error_buffer(), -EINVAL,
                        "br_worker_stats_get: worker %u does not exist (the generator has %u)",
                        i, g->nworkers);
    memset(&ws, 0, sizeof ws);
    br__worker_stats_copy(&g->ring.workers[i], &ws);
    br__copy_out(out, size, &ws, sizeof ws);
    return 0;
}
