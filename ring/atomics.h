/* SPDX-License-Identifier: MIT */
/*
 * The only place that includes <stdatomic.h>. Every cross-process word in
 * the ring is an _Atomic field of ring/layout.h and is touched only through
 * these wrappers, so the ordering of each access is named at its call site
 * (and the comment there names the access it pairs with).
 */
#ifndef BR_RING_ATOMICS_H
#define BR_RING_ATOMICS_H

#include <stdatomic.h>
#include <stdint.h>

#define BR_ATOMIC_OPS_(suffix, type)                                              \
    static inline type br__load_relaxed_##suffix(const _Atomic type *p)           \
    {                                                                             \
        return atomic_load_explicit((_Atomic type *)p, memory_order_relaxed);     \
    }                                                                             \
    static inline type br__load_acquire_##suffix(const _Atomic type *p)           \
    {                                                                             \
        return atomic_load_explicit((_Atomic type *)p, memory_order_acquire);     \
    }                                                                             \
    static inline type br__load_seq_cst_##suffix(const _Atomic type *p)           \
    {                                                                             \
        return atomic_load_explicit((_Atomic type *)p, memory_order_seq_cst);     \
    }                                                                             \
    static inline void br__store_relaxed_##suffix(_Atomic type *p, type v)        \
    {                                                                             \
        atomic_store_explicit(p, v, memory_order_relaxed);                        \
    }                                                                             \
    static inline void br__store_release_##suffix(_Atomic type *p, type v)        \
    {                                                                             \
        atomic_store_explicit(p, v, memory_order_release);                        \
    }                                                                             \
    static inline void br__store_seq_cst_##suffix(_Atomic type *p, type v)        \
    {                                                                             \
        atomic_store_explicit(p, v, memory_order_seq_cst);                        \
    }                                                                             \
    static inline type br__add_relaxed_##suffix(_Atomic type *p, type v)          \
    {                                                                             \
        return atomic_fetch_add_explicit(p, v, memory_order_relaxed);             \
    }                                                                             \
    static inline type br__add_seq_cst_##suffix(_Atomic type *p, type v)          \
    {                                                                             \
        return atomic_fetch_add_explicit(p, v, memory_order_seq_cst);             \
    }                                                                             \
    static inline type br__sub_seq_cst_##suffix(_Atomic type *p, type v)          \
    {                                                                             \
        return atomic_fetch_sub_explicit(p, v, memory_order_seq_cst);             \
    }                                                                             \
    /* Acquire-release on success (it both takes ownership and publishes     \
     * the claim), acquire on failure (the caller retries with what it saw). */   \
    static inline int br__cas_acq_rel_##suffix(_Atomic type *p, type *expected,   \
                                               type desired)                      \
    {                                                                             \
        return atomic_compare_exchange_strong_explicit(                           \
            p, expected, desired, memory_order_acq_rel, memory_order_acquire);    \
    }

BR_ATOMIC_OPS_(u32, uint32_t)
BR_ATOMIC_OPS_(u64, uint64_t)
BR_ATOMIC_OPS_(i32, int32_t)

#undef BR_ATOMIC_OPS_

/* Adds v to a counter that only the calling process writes (a worker's
 * record, the consumer's line of the header) and others only read: a
 * relaxed load and store, not a locked add, which on x86 would also wait
 * for every store before it (a whole batch's copy) on the hot path. */
static inline void br__add_single_writer_u64(_Atomic uint64_t *p, uint64_t v)
{
    br__store_relaxed_u64(p, br__load_relaxed_u64(p) + v);
}

/* A full fence: orders the caller's earlier stores (release ones
 * included) before its later loads, the store-load order a release store
 * does not give (mfence on x86). */
#if defined(__SANITIZE_THREAD__)
#define BR_TSAN_ 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define BR_TSAN_ 1
#endif
#endif
static inline void br__fence_seq_cst(void)
{
#ifdef BR_TSAN_
    /* ThreadSanitizer does not support fences (GCC refuses them with
     * -Wtsan). A seq_cst read-modify-write is a full barrier on the
     * hardware (a locked instruction on x86), which is all this build
     * needs: the ordering it pairs with is another process's, which TSan
     * does not see anyway. */
    static _Atomic uint32_t tsan_barrier;
    atomic_fetch_add_explicit(&tsan_barrier, 0, memory_order_seq_cst);
#else
    atomic_thread_fence(memory_order_seq_cst);
#endif
}

/* A pause for spin loops: tells the core we are spinning (x86 PAUSE). */
static inline void br__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield" ::: "memory");
#else
    atomic_signal_fence(memory_order_seq_cst);
#endif
}

#endif /* BR_RING_ATOMICS_H */
