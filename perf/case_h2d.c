/* SPDX-License-Identifier: MIT */
/*
 * h2d: host-to-device copies from the ring (issue 13). The subject holds
 * two batches (opt.hold = 2) of a ring pinned with opt.pin = BR_PIN_CUDA,
 * copies each with cudaMemcpyAsync on one stream and gives a batch back
 * when its copy's event has completed, so the next batch is fetched while
 * the previous one is still on the bus. Beside it, in the same call and
 * for the same number of batches, interleaved chunk by chunk: cudaMemcpy
 * from a private buffer of the same size page-locked with cudaHostRegister
 * (the limit: what the bus gives a pinned copy) and cudaMemcpy from
 * pageable private memory (what an unpinned ring would give, through the
 * driver's staging buffer). Targets where a GPU exists: >= 0.9 of the
 * pinned limit, and >= 1.5 x the pageable copy.
 *
 * Nothing of CUDA is needed to build this: the runtime is dlopen()ed the
 * way api/pin.c finds it (BR_CUDART, else libcudart.so, then .13 down to
 * .10), and the entry points are declared here as the runtime's ABI
 * defines them. Without a runtime, or with one that finds no device, the
 * case reports itself skipped with the reason and measures nothing.
 * Against the test suite's stub runtime (tests/cuda_stub.c, which exports
 * br_cuda_stub_marker) it runs every step, but its copies are memcpy: the
 * figures are named stub_*, and no GB/s is reported as a GPU's.
 *
 * The loader stamps the batch's seq in its first word and claims the whole
 * slot: the bytes copied are whatever the slot held, so what is measured
 * is the handoff and the copy, not how fast a worker fills 4 MiB.
 */
#include <dlfcn.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <batchring.h>

#include "case_common.h"
#include "topology.h"

#define CUDA_SUCCESS 0
#define CUDA_MEMCPY_HOST_TO_DEVICE 1
#define CUDA_HOST_REGISTER_PORTABLE 1u

/* Bytes copied per chunk and per method (the subject's chunk, then each
 * baseline's), and the bounds on batches per chunk: long enough that the
 * pipeline's start (one copy not overlapped) is a small part of it. */
#define CHUNK_BYTES (256 * MIB)
#define CHUNK_MIN 8u
#define CHUNK_MAX 4096u

struct cudart {
    void *lib;
    int stub; /* tests/cuda_stub.c: copies are memcpy */
    int (*get_device_count)(int *);
    int (*malloc_)(void **, size_t);
    int (*free_)(void *);
    int (*host_register)(void *, size_t, unsigned int);
    int (*host_unregister)(void *);
    int (*memcpy_)(void *, const void *, size_t, int);
    int (*memcpy_async)(void *, const void *, size_t, int, void *);
    int (*stream_create)(void **);
    int (*stream_destroy)(void *);
    int (*event_create)(void **);
    int (*event_destroy)(void *);
    int (*event_record)(void *, void *);
    int (*event_synchronize)(void *);
    const char *(*error_string)(int);
};

static const char *cuda_text(const struct cudart *rt, int err)
{
    const char *s = rt->error_string ? rt->error_string(err) : NULL;
    return s ? s : "(no message from the runtime)";
}

/* dlopen()s the runtime as api/pin.c does. Returns 0, or -1 with why in
 * `why` (the case is then skipped). */
static int cudart_load(struct cudart *rt, char *why, size_t cap)
{
    static const char *const names[] = {"libcudart.so", "libcudart.so.13", "libcudart.so.12",
                                        "libcudart.so.11", "libcudart.so.10"};
    const char *env = getenv("BR_CUDART");
    const char *missing = NULL;

    memset(rt, 0, sizeof *rt);
    if (env && env[0]) {
        rt->lib = dlopen(env, RTLD_NOW | RTLD_LOCAL);
        if (!rt->lib) {
            snprintf(why, cap, "no CUDA runtime: BR_CUDART is %s, which dlopen refused: %s", env,
                     dlerror());
            return -1;
        }
    }
    for (size_t i = 0; !rt->lib && i < sizeof names / sizeof names[0]; i++)
        rt->lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!rt->lib) {
        snprintf(why, cap, "no CUDA runtime: none of libcudart.so, .so.13 .. .so.10 could be "
                           "loaded (set BR_CUDART to the library's path)");
        return -1;
    }
    /* A function pointer from dlsym's void *: POSIX guarantees the
     * conversion; the copy through memcpy keeps ISO C quiet. */
#define SYM(field, name)                                                                           \
    do {                                                                                           \
        void *sym_ = dlsym(rt->lib, name);                                                         \
        memcpy(&rt->field, &sym_, sizeof sym_);                                                    \
        if (!sym_ && !missing)                                                                     \
            missing = name;                                                                        \
    } while (0)
    SYM(error_string, "cudaGetErrorString");
    SYM(malloc_, "cudaMalloc");
    SYM(free_, "cudaFree");
    SYM(host_register, "cudaHostRegister");
    SYM(host_unregister, "cudaHostUnregister");
    SYM(memcpy_, "cudaMemcpy");
    SYM(memcpy_async, "cudaMemcpyAsync");
    SYM(stream_create, "cudaStreamCreate");
    SYM(stream_destroy, "cudaStreamDestroy");
    SYM(event_create, "cudaEventCreate");
    SYM(event_destroy, "cudaEventDestroy");
    SYM(event_record, "cudaEventRecord");
    SYM(event_synchronize, "cudaEventSynchronize");
#undef SYM
    {
        /* Optional: the stub has none, and cudaMalloc then tells. */
        void *sym = dlsym(rt->lib, "cudaGetDeviceCount");
        memcpy(&rt->get_device_count, &sym, sizeof sym);
    }
    rt->stub = dlsym(rt->lib, "br_cuda_stub_marker") != NULL;
    if (missing) {
        snprintf(why, cap, "the CUDA runtime loaded has no %s", missing);
        dlclose(rt->lib);
        rt->lib = NULL;
        return -1;
    }
    return 0;
}

/* Is there a device? Returns 0, or -1 with why (skipped). */
static int cudart_device(const struct cudart *rt, char *why, size_t cap)
{
    int n = 0, err;
    if (!rt->get_device_count)
        return 0;
    err = rt->get_device_count(&n);
    if (err != CUDA_SUCCESS) {
        snprintf(why, cap, "no CUDA device: cudaGetDeviceCount: %s (cudaError %d)",
                 cuda_text(rt, err), err);
        return -1;
    }
    if (n < 1) {
        snprintf(why, cap, "no CUDA device: cudaGetDeviceCount found none");
        return -1;
    }
    return 0;
}

/* Claims the whole slot and stamps the seq, so a batch is never empty and
 * a stale slot shows (user: the batch bytes). */
static int load_stamp(br_job *job, void *user)
{
    const uint64_t bytes = *(const uint64_t *)user;
    memcpy(job->out, &job->seq, sizeof job->seq);
    job->size = (size_t)bytes;
    return 0;
}

struct h2d {
    struct cudart rt;
    uint64_t bytes;
    uint32_t chunk; /* batches per chunk */
    br_gen *g;
    br_batch held[2];
    bool holding[2];
    void *dev[2];   /* one device buffer per held batch */
    void *stream;
    void *ev[2];    /* the copy of held[k] is done when ev[k] is */
    uint8_t *pinned, *pageable;
    bool registered;
};

#define CUDA_CHECK(h, out, call, what)                                                             \
    do {                                                                                           \
        const int err_ = (call);                                                                   \
        if (err_ != CUDA_SUCCESS)                                                                  \
            return bench__fail(out, BR_ECUDA, "%s: %s (cudaError %d)", what,                      \
                               cuda_text(&(h)->rt, err_), err_);                                   \
    } while (0)

/* Gives held[k] back once its copy is done. */
static int give_back(struct h2d *h, unsigned k, struct bench_result *out)
{
    int rc;
    if (!h->holding[k])
        return 0;
    CUDA_CHECK(h, out, h->rt.event_synchronize(h->ev[k]), "cudaEventSynchronize");
    rc = br_release(h->g, &h->held[k]);
    if (rc)
        return bench__fail(out, rc, "br_release of batch %llu: %s: %s",
                           (unsigned long long)h->held[k].seq, br_err_name(rc),
                           br_last_error(h->g));
    h->holding[k] = false;
    return 0;
}

/* The subject: a chunk of batches from held, pinned slots. */
static int chunk_held(struct h2d *h, uint64_t *ns, struct bench_result *out)
{
    const uint64_t t0 = br_util_now_ns();
    int rc;
    for (uint32_t i = 0; i < h->chunk; i++) {
        const unsigned k = i % 2;
        /* The older of the two held batches: its copy was queued first. */
        if ((rc = give_back(h, k, out)))
            return rc;
        if ((rc = bench__next_batch(h->g, &h->held[k], out)))
            return rc;
        h->holding[k] = true;
        if (h->held[k].size != h->bytes)
            return bench__fail(out, -EIO, "batch %llu has %zu bytes, not %llu",
                               (unsigned long long)h->held[k].seq, h->held[k].size,
                               (unsigned long long)h->bytes);
        CUDA_CHECK(h, out,
                   h->rt.memcpy_async(h->dev[k], h->held[k].data, h->held[k].size,
                                      CUDA_MEMCPY_HOST_TO_DEVICE, h->stream),
                   "cudaMemcpyAsync from a held slot");
        CUDA_CHECK(h, out, h->rt.event_record(h->ev[k], h->stream), "cudaEventRecord");
    }
    for (unsigned k = 0; k < 2; k++)
        if ((rc = give_back(h, (h->chunk + k) % 2, out)))
            return rc;
    *ns = br_util_now_ns() - t0;
    return 0;
}

/* A baseline: the same number of synchronous copies from src. */
static int chunk_sync(struct h2d *h, const uint8_t *src, uint64_t *ns, struct bench_result *out)
{
    const uint64_t t0 = br_util_now_ns();
    for (uint32_t i = 0; i < h->chunk; i++)
        CUDA_CHECK(h, out,
                   h->rt.memcpy_(h->dev[i % 2], src, (size_t)h->bytes, CUDA_MEMCPY_HOST_TO_DEVICE),
                   src == h->pinned ? "cudaMemcpy from the pinned buffer"
                                    : "cudaMemcpy from pageable memory");
    *ns = br_util_now_ns() - t0;
    return 0;
}

/* Everything but the runtime, in the order it was made. */
static void h2d_teardown(struct h2d *h)
{
    for (unsigned k = 0; k < 2; k++) {
        if (h->ev[k])
            (void)h->rt.event_synchronize(h->ev[k]);
        if (h->holding[k])
            (void)br_release(h->g, &h->held[k]);
    }
    if (h->g)
        br_close(h->g);
    if (h->registered)
        (void)h->rt.host_unregister(h->pinned);
    bench__free_buffer(h->pinned, h->bytes);
    bench__free_buffer(h->pageable, h->bytes);
    for (unsigned k = 0; k < 2; k++) {
        if (h->ev[k])
            (void)h->rt.event_destroy(h->ev[k]);
        if (h->dev[k])
            (void)h->rt.free_(h->dev[k]);
    }
    if (h->stream)
        (void)h->rt.stream_destroy(h->stream);
}

static int h2d_setup(struct h2d *h, const struct bench_params *p, struct bench_result *out)
{
    br_options opt;
    int rc;

    /* The generator first: its workers are forked before this process
     * has a device context or pinned memory, and br_open pins the ring
     * after the fork, as it always does. */
    br_options_init(&opt);
    opt.batch_size = 1;
    opt.workers = p->workers;
    opt.slot_bytes = (size_t)h->bytes;
    opt.hold = 2;
    opt.pin = BR_PIN_CUDA;
    rc = br_open(&h->g, load_stamp, &h->bytes, NULL, NULL, 1024, &opt);
    if (rc) {
        h->g = NULL;
        return bench__fail(out, rc, "br_open (hold 2, BR_PIN_CUDA, %u workers, %llu-byte "
                           "batches): %s: %s", p->workers, (unsigned long long)h->bytes,
                           br_err_name(rc), br_last_error(NULL));
    }
    for (unsigned k = 0; k < 2; k++) {
        CUDA_CHECK(h, out, h->rt.malloc_(&h->dev[k], (size_t)h->bytes), "cudaMalloc");
        CUDA_CHECK(h, out, h->rt.event_create(&h->ev[k]), "cudaEventCreate");
    }
    CUDA_CHECK(h, out, h->rt.stream_create(&h->stream), "cudaStreamCreate");
    h->pinned = bench__private_buffer(h->bytes);
    h->pageable = bench__private_buffer(h->bytes);
    if (!h->pinned || !h->pageable)
        return bench__fail(out, -ENOMEM, "cannot make two %llu-byte buffers",
                           (unsigned long long)h->bytes);
    bench__fill_pattern(h->pinned, h->bytes);
    bench__fill_pattern(h->pageable, h->bytes);
    /* Registered as br_pin registers the ring (portable), so that the
     * limit differs from the subject only in where the bytes are. */
    CUDA_CHECK(h, out, h->rt.host_register(h->pinned, (size_t)h->bytes, CUDA_HOST_REGISTER_PORTABLE),
               "cudaHostRegister of the pinned buffer");
    h->registered = true;
    return 0;
}

static int h2d_measure(struct h2d *h, struct bench_loop *loop, struct bench_result *out)
{
    uint64_t ns, pinned_ns = 0, pageable_ns = 0, batches = 0;
    const uint64_t total_bytes = h->bytes * h->chunk;
    double held_gbps, pinned_gbps, pageable_gbps;
    int rc;

    /* One untimed chunk of each: the workers forked and in their steady
     * state, the device's buffers and the driver's staging touched. */
    if ((rc = chunk_held(h, &ns, out)) || (rc = chunk_sync(h, h->pinned, &ns, out)) ||
        (rc = chunk_sync(h, h->pageable, &ns, out)))
        return rc;
    while (loop->keep_running(loop)) {
        if ((rc = chunk_held(h, &ns, out)))
            return rc;
        loop->iteration_done(loop, ns, h->chunk);
        out->units += h->chunk;
        out->bytes += total_bytes;
        out->seconds += (double)ns / 1e9;
        batches += h->chunk;
        /* Where everyone ran, between the timed parts (topology.h). */
        bench_placement_sample(h->g);
        if ((rc = chunk_sync(h, h->pinned, &ns, out)))
            return rc;
        pinned_ns += ns;
        if ((rc = chunk_sync(h, h->pageable, &ns, out)))
            return rc;
        pageable_ns += ns;
    }
    if (!batches)
        return bench__fail(out, -EINVAL, "the time budget ended before one chunk ran");
    held_gbps = (double)out->bytes / out->seconds / 1e9;
    pinned_gbps = (double)(batches * h->bytes) / (double)pinned_ns;
    pageable_gbps = (double)(batches * h->bytes) / (double)pageable_ns;
    if (h->rt.stub) {
        /* Not a GPU: the same steps, memcpy's figures, under names that
         * say so; no GB/s in the GPU columns and no verdict. */
        out->value = out->baseline = out->ratio = NAN;
        bench__add_figure(out, "stub_memcpy_held_GBps", held_gbps);
        bench__add_figure(out, "stub_memcpy_pinned_GBps", pinned_gbps);
        bench__add_figure(out, "stub_memcpy_pageable_GBps", pageable_gbps);
        snprintf(out->note, sizeof out->note,
                 "stub runtime: memcpy, not a GPU (tests/cuda_stub.c): no GPU figures");
        return 0;
    }
    out->value = held_gbps;
    out->baseline = pinned_gbps;
    out->ratio = held_gbps / pinned_gbps;
    bench__add_figure(out, "pageable_GBps", pageable_gbps);
    bench__add_figure(out, "vs_pageable", held_gbps / pageable_gbps);
    snprintf(out->note, sizeof out->note, "vs pageable %.2fx: target >= 1.5 %s",
             held_gbps / pageable_gbps, held_gbps / pageable_gbps >= 1.5 ? "pass" : "MISS");
    return 0;
}

int bench__h2d_run(struct bench_loop *loop, const struct bench_params *p,
                   struct bench_result *out)
{
    struct h2d h;
    uint64_t chunk;
    int rc;

    memset(&h, 0, sizeof h);
    h.bytes = p->batch_bytes;
    if (p->workers < 1)
        return bench__fail(out, -EINVAL, "h2d needs at least one worker");
    if (cudart_load(&h.rt, out->skipped, sizeof out->skipped) ||
        cudart_device(&h.rt, out->skipped, sizeof out->skipped)) {
        if (h.rt.lib)
            dlclose(h.rt.lib);
        return 0;
    }
    chunk = CHUNK_BYTES / h.bytes;
    h.chunk = (uint32_t)(chunk < CHUNK_MIN ? CHUNK_MIN : chunk > CHUNK_MAX ? CHUNK_MAX : chunk);
    rc = h2d_setup(&h, p, out);
    if (!rc)
        rc = h2d_measure(&h, loop, out);
    h2d_teardown(&h);
    dlclose(h.rt.lib);
    return rc;
}

bool bench__h2d_target(const struct bench_params *p, double *limit, bool *at_least)
{
    (void)p;
    *limit = 0.90, *at_least = true;
    return true;
}
