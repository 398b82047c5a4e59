/* SPDX-License-Identifier: MIT */
/*
 * Handles: a br_gen * is not a pointer but an index into a table plus a
 * generation number, so that a call on a closed generator finds nothing and
 * returns BR_ESTOPPED instead of touching freed memory, and br_close is
 * idempotent.
 */
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

#define BR_MAX_GENERATORS 4096u

/* The table: slot i holds a struct br_gen * (as an integer, so that it can
 * be loaded atomically) whose handle is (generation << 16) | (i + 1). */
static _Atomic uint64_t gen_table[BR_MAX_GENERATORS];
static uint32_t gen_generation;
static pthread_mutex_t gen_table_lock = PTHREAD_MUTEX_INITIALIZER;

int br__getter_fail(const char *fn, const br_gen *handle, bool null_out, size_t size,
                    size_t min_size)
{
    char *msg = br__open_error_buffer();
    if (!br__gen_lookup(handle))
        return br__fail(msg, -EINVAL, "%s: %s", fn,
                        handle ? "the generator is closed (or not one)" : "the generator is NULL");
    if (null_out)
        return br__fail(msg, -EINVAL, "%s: the output pointer is NULL", fn);
    return br__fail(msg, -EINVAL, "%s: size %zu is smaller than the %zu bytes of the 0.3 struct",
                    fn, size, min_size);
}

struct br_gen *br__gen_lookup(const br_gen *handle)
{
    uint64_t h = (uint64_t)(uintptr_t)handle;
    uint64_t index = (h & 0xffffu) - 1;
    struct br_gen *g;
    if (!handle || index >= BR_MAX_GENERATORS)
        return NULL;
    /* Pairs with the release store in gen_register: a handle we find is
     * fully built. */
    g = (struct br_gen *)(uintptr_t)br__load_acquire_u64(&gen_table[index]);
    return g && g->handle == h ? g : NULL;
}

int br__gen_register(struct br_gen *g, char *msg)
{
    int rc = -EMFILE;
    pthread_mutex_lock(&gen_table_lock);
    for (uint32_t i = 0; i < BR_MAX_GENERATORS; i++) {
        if (br__load_relaxed_u64(&gen_table[i]))
            continue;
        if (++gen_generation == 0)
            gen_generation = 1;
        g->handle = ((uint64_t)gen_generation << 16) | (i + 1);
        br__store_release_u64(&gen_table[i], (uint64_t)(uintptr_t)g);
        rc = 0;
        break;
    }
    pthread_mutex_unlock(&gen_table_lock);
    if (rc)
        br__fail(msg, rc, "too many open generators (at most %u)", BR_MAX_GENERATORS);
    return rc;
}

/* Removes g's handle; false if it was not (or no longer) registered. */
bool br__gen_unregister(const br_gen *handle, struct br_gen **out)
{
    bool found = false;
    pthread_mutex_lock(&gen_table_lock);
    *out = br__gen_lookup(handle);
    if (*out) {
        br__store_relaxed_u64(&gen_table[((*out)->handle & 0xffffu) - 1], 0);
        found = true;
    }
    pthread_mutex_unlock(&gen_table_lock);
    return found;
}

/* Gives up the consumer claim on an attached ring and tells the producer. */
static void consumer_detach(struct br_gen *g)
{
    struct br_ring_header *h = g->ring.hdr;
    uint64_t mine = g->consumer_id;
    if (!mine)
        return;
    g->consumer_id = 0;
    br__cas_acq_rel_u64(&h->consumer, &mine, 0);
    br__ring_consumer_event(h);
}

void br__gen_free(struct br_gen *g)
{
    if (g->inline_ready)
        br__worker_env_fini(&g->inline_env, &g->ctx);
    br__sup_stop(&g->sup);
    br__gen_region_fini(g);
    if (g->role == ROLE_ATTACHED)
        consumer_detach(g);
    /* The producer removes its ring: stale names are for crashes only. */
    if (g->role == ROLE_SERVE && g->ring.base)
        shm_unlink(g->name);
    br__ring_unmap(&g->ring);
    br__cpu_plan_free(&g->ctx.cpus);
    free(g->ids);
    free(g->labels);
    free(g);
}

BR_API int br_close(br_gen *handle)
{
    struct br_gen *g;
    if (!br__gen_unregister(handle, &g))
        return 0;
    /* A consumer that detaches cleanly is done with its batch: the next
     * consumer starts after it. */
    if (g->role == ROLE_ATTACHED)
        br__consumer_release_all(&g->cons);
    br__gen_free(g);
    return 0;
}

BR_API const char *br_last_error(const br_gen *handle)
{
    const struct br_gen *g;
    if (!handle)
        return br__open_error_buffer();
    g = br__gen_lookup(handle);
    return g ? g->msg : "the generator is closed";
}

