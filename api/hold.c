/* SPDX-License-Identifier: MIT */
/*
 * Holding batches (opt.hold: br_release, br_batch_copy) and the ring as
 * memory others register (br_region, br_region_hook_set). The slot side
 * of a release is the consumer's (consumer/consumer.c, "Holding").
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "api/gen.h"

BR_API int br_release_seq(br_gen *handle, uint64_t seq)
{
    struct br_gen *g = br__gen_lookup(handle);
    if (!g)
        return handle ? BR_ESTOPPED : -EINVAL;
    if (g->role == ROLE_SERVE)
        return br__fail(g->msg, -EINVAL, "this generator serves ring %s: its consumer "
                        "releases the batches", g->name);
    return br__consumer_release_seq(&g->cons, seq);
}

BR_API int br_release(br_gen *handle, const br_batch *b)
{
    struct br_gen *g = br__gen_lookup(handle);
    if (!g)
        return handle ? BR_ESTOPPED : -EINVAL;
    if (!b)
        return br__fail(g->msg, -EINVAL, "b is NULL: pass the batch br_next filled");
    return br_release_seq(handle, b->seq);
}

BR_API int br_batch_copy(const br_batch *b, void *dst, size_t cap)
{
    char *msg = br__open_error_buffer();
    msg[0] = '\0';
    if (!b)
        return br__fail(msg, -EINVAL, "b is NULL: pass a batch br_next filled");
    if (b->size == 0)
        return 0;
    if (!dst || !b->data)
        return br__fail(msg, -EINVAL, "%s is NULL with a batch of %zu bytes",
                        dst ? "b->data" : "dst", b->size);
    if (cap < b->size)
        return br__fail(msg, -ENOSPC, "batch %llu has %zu bytes, dst only %zu",
                        (unsigned long long)b->seq, b->size, cap);
    memcpy(dst, b->data, b->size);
    return 0;
}

int br__gen_region(const struct br_gen *g, void **addr, size_t *len, char *msg)
{
    if (g->role == ROLE_SERVE)
        return br__fail(msg, -EINVAL, "this generator serves ring %s: its consumer registers "
                        "its own mapping (br_region after br_attach)", g->name);
    /* Page-aligned: the data area starts on a page and every slot's stride
     * is a page multiple (ring/layout.h). */
    *addr = g->ring.data;
    *len = (size_t)g->ring.slot_stride * g->ring.nslots;
    return 0;
}

BR_API int br_region(const br_gen *handle, void **addr, size_t *len)
{
    const struct br_gen *g = br__gen_lookup(handle);
    if (!g || !addr || !len)
        return br__getter_fail("br_region", handle, !addr || !len, 0, 0);
    return br__gen_region(g, addr, len, br__open_error_buffer());
}

BR_API int br_region_hook_set(br_gen *handle, br_region_fn reg, br_region_release_fn unreg,
                              void *user)
{
    struct br_gen *g = br__gen_lookup(handle);
    void *addr = NULL;
    size_t len = 0;
    int rc;

    if (!g)
        return handle ? BR_ESTOPPED : -EINVAL;
    if (!reg)
        return br__fail(g->msg, -EINVAL, "reg is NULL: pass the function that registers the "
                        "ring");
    if (g->region_hooked)
        return br__fail(g->msg, -EBUSY, "a region hook is installed already (one per "
                        "generator)");
    rc = br__gen_region(g, &addr, &len, g->msg);
    if (rc)
        return rc;
    rc = reg(user, addr, len);
    if (rc)
        return br__fail(g->msg, rc < 0 ? rc : -EINVAL, "the region hook refused the ring's "
                        "data area (%zu bytes at %p): it returned %d", len, addr, rc);
    g->region_reg = reg;
    g->region_unreg = unreg;
    g->region_user = user;
    g->region_hooked = true;
    return 0;
}
