/* SPDX-License-Identifier: MIT */
/*
 * The library's side of batchring.h's "How the public structs grow":
 * the smallest size of each public struct a caller can pass (its size in
 * 0.3, the first release with the rule) and the copy a getter makes into
 * caller memory. datasets/ applies the same rule to its own structs
 * (it sees only the public header).
 */
#ifndef BR_API_SIZED_H
#define BR_API_SIZED_H

#include <stddef.h>
#include <string.h>

#include <batchring.h>

/* The bytes of `type` up to and including `field`: a struct's size in a
 * release whose last field was `field`, without its tail padding (which a
 * caller's sizeof includes, so the caller's size is never smaller). */
#define BR__SIZE_TO(type, field) (offsetof(type, field) + sizeof(((type *)0)->field))

/* Each struct's size in 0.3. These name the 0.3 struct's last field and
 * never change when fields are appended. */
#define BR__OPTIONS_SIZE_0_3 BR__SIZE_TO(br_options, start_seq)
#define BR__STATS_SIZE_0_3 BR__SIZE_TO(br_stats, restarts)
#define BR__WORKER_STATS_SIZE_0_3 BR__SIZE_TO(br_worker_stats, io_copies)
#define BR__RING_STATUS_SIZE_0_3 BR__SIZE_TO(br_ring_status, consumer_waiting_ns)

/* Rule b: writes what the library filled (`src`, its own struct of
 * src_size bytes) into the caller's struct of dst_size bytes: the part
 * that fits, and zeros past the library's struct. */
static inline void br__copy_out(void *dst, size_t dst_size, const void *src, size_t src_size)
{
    memcpy(dst, src, dst_size < src_size ? dst_size : src_size);
    if (dst_size > src_size)
        memset((char *)dst + src_size, 0, dst_size - src_size);
}

#endif /* BR_API_SIZED_H */
