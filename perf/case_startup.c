/* SPDX-License-Identifier: MIT */
/*
 * startup: br_open to the first batch with the whole ring prefaulted,
 * beside making and faulting in a ring-sized memfd once.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <batchring.h>

#include "case_common.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

/* ---- startup: br_open to the first batch ---- */

/* The baseline: make a ring-sized memfd and fault it in once, the least a
 * prefaulted shared ring can cost. Returns ns, or a negative errno. */
static int64_t prefault_once(uint64_t bytes, struct bench_result *out)
{
    uint64_t t0 = br_util_now_ns(), t1;
    void *p;
    int fd = memfd_create("batchring-bench", MFD_CLOEXEC);
    if (fd < 0)
        return bench__fail(out, -errno, "memfd_create: %s", strerror(errno));
    if (ftruncate(fd, (off_t)bytes) < 0 || fallocate(fd, 0, 0, (off_t)bytes) < 0) {
        int e = errno;
        close(fd);
        return bench__fail(out, -e, "reserving %llu bytes: %s", (unsigned long long)bytes,
                           strerror(e));
    }
    p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        int e = errno;
        close(fd);
        return bench__fail(out, -e, "mmap: %s", strerror(e));
    }
    if (madvise(p, bytes, MADV_POPULATE_WRITE) < 0) {
        /* Before Linux 5.14: touch each page. */
        const uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
        for (uint64_t off = 0; off < bytes; off += page)
            ((volatile uint8_t *)p)[off] = 0;
    }
    t1 = br_util_now_ns();
    munmap(p, bytes);
    close(fd);
    return (int64_t)(t1 - t0);
}

static int64_t open_to_first_batch(const struct bench_params *p, uint32_t slots,
                                   struct bench_result *out)
{
    br_gen *g = NULL;
    br_batch b;
    uint64_t t0 = br_util_now_ns(), t1;
    int rc = bench__open_generator(&g, bench__load_nothing, NULL, p->batch_bytes, p->workers, slots,
                                   out);
    if (rc == 0)
        rc = bench__next_batch(g, &b, out);
    t1 = br_util_now_ns();
    br_close(g);
    return rc ? rc : (int64_t)(t1 - t0);
}

int bench__startup_run(struct bench_loop *loop, const struct bench_params *p,
                       struct bench_result *out)
{
    const uint64_t stride = bench__page_round(p->batch_bytes);
    const uint64_t slots = p->ring_bytes / stride;
    uint64_t ns = 0, base_ns = 0;

    if (slots < 2 || slots > BR_MAX_SLOTS)
        return bench__fail(out, -EINVAL,
                           "a %llu-byte ring holds %llu batches of %llu bytes; it must "
                           "hold 2 to %u",
                           (unsigned long long)p->ring_bytes, (unsigned long long)slots,
                           (unsigned long long)p->batch_bytes, BR_MAX_SLOTS);
    while (loop->keep_running(loop)) {
        /* Alternate the order, so that neither always runs on memory the
         * other has just freed. */
        bool baseline_first = out->units % 2 == 0;
        int64_t subject = 0, base = 0;
        if (baseline_first)
            base = prefault_once(slots * stride, out);
        if (base >= 0)
            subject = open_to_first_batch(p, (uint32_t)slots, out);
        if (!baseline_first && subject >= 0)
            base = prefault_once(slots * stride, out);
        if (subject < 0 || base < 0)
            return (int)(subject < 0 ? subject : base);
        loop->iteration_done(loop, (uint64_t)subject, 1);
        out->units++;
        ns += (uint64_t)subject;
        base_ns += (uint64_t)base;
    }
    out->seconds = (double)ns / 1e9;
    out->value = (double)ns / 1e6 / (double)bench__max_u64(1, out->units);
    out->baseline = (double)base_ns / 1e6 / (double)bench__max_u64(1, out->units);
    out->ratio = out->value / out->baseline;
    bench__add_figure(out, "slots", (double)slots);
    return 0;
}
bool bench__startup_target(const struct bench_params *p, double *limit, bool *at_least)
{
    *limit = 2.0, *at_least = false;
    return p->workers == 8 && p->ring_bytes == 256 * MIB;
}
