/* SPDX-License-Identifier: MIT */
/*
 * A trainer that copies each batch to the GPU while the next one loads:
 * opt.hold = 2, cudaMemcpyAsync on a stream into a device buffer, each
 * batch released when its copy's event completes; the ring pinned with
 * br_pin. Prints host-to-device GB/s from the pinned ring and from an
 * unpinned one. Built without CUDA headers or libraries: the runtime is
 * dlopen()ed as batchring does (BR_CUDART, or libcudart.so[.N]). Where
 * there is none it says "no CUDA runtime" and exits 0.
 *
 *   example_gpu_trainer [batches] [batch_mib]
 */
#define _POSIX_C_SOURCE 200809L
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <batchring.h>

/* The few runtime entry points used, as the CUDA runtime ABI defines
 * them (cudaError_t is an int enum, 0 = success; streams and events are
 * pointers; cudaMemcpyHostToDevice = 1). */
struct cudart {
    void *lib;
    int (*malloc_)(void **, size_t);
    int (*free_)(void *);
    int (*memcpy_async)(void *, const void *, size_t, int, void *);
    int (*stream_create)(void **);
    int (*event_create)(void **);
    int (*event_record)(void *, void *);
    int (*event_synchronize)(void *);
    const char *(*error_string)(int);
    int stub; /* the test suite's stub: figures are memcpy, not a GPU's */
};

static int cudart_load(struct cudart *rt)
{
    static const char *const names[] = {"libcudart.so", "libcudart.so.13", "libcudart.so.12",
                                        "libcudart.so.11", "libcudart.so.10"};
    const char *env = getenv("BR_CUDART");
    memset(rt, 0, sizeof *rt);
    if (env && env[0])
        rt->lib = dlopen(env, RTLD_NOW | RTLD_LOCAL);
    for (size_t i = 0; !(env && env[0]) && !rt->lib && i < sizeof names / sizeof names[0]; i++)
        rt->lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!rt->lib)
        return -1;
#define SYM(field, name) *(void **)&rt->field = dlsym(rt->lib, name)
    SYM(malloc_, "cudaMalloc");
    SYM(free_, "cudaFree");
    SYM(memcpy_async, "cudaMemcpyAsync");
    SYM(stream_create, "cudaStreamCreate");
    SYM(event_create, "cudaEventCreate");
    SYM(event_record, "cudaEventRecord");
    SYM(event_synchronize, "cudaEventSynchronize");
    SYM(error_string, "cudaGetErrorString");
#undef SYM
    rt->stub = dlsym(rt->lib, "br_cuda_stub_marker") != NULL;
    return rt->malloc_ && rt->free_ && rt->memcpy_async && rt->stream_create &&
                   rt->event_create && rt->event_record && rt->event_synchronize &&
                   rt->error_string
               ? 0
               : -1;
}

static int fill(br_job *job, void *user)
{
    (void)user;
    memset(job->out, (int)(job->seq & 0xff), job->cap);
    job->size = job->cap;
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Runs `batches` batches through the GPU; returns GB/s, or < 0. */
static double run(struct cudart *rt, int pin, int batches, size_t bytes, void *dev, void *stream,
                  void *ev[2])
{
    br_options opt;
    br_gen *g;
    br_batch held[2];
    double t0, secs;
    int rc, n = 0;

    br_options_init(&opt);
    opt.batch_size = 1;
    opt.workers = 2;
    opt.slot_bytes = bytes;
    opt.hold = 2;
    opt.pin = pin ? BR_PIN_CUDA : BR_PIN_NONE;
    rc = br_open(&g, fill, NULL, NULL, NULL, (size_t)batches, &opt);
    if (rc) {
        fprintf(stderr, "br_open: %s\n", br_last_error(NULL));
        return -1;
    }
    t0 = now_s();
    for (int i = 0; i < batches; i++) {
        br_batch *b = &held[i % 2];
        /* Two held: the older one's copy must be done before its slot goes
         * back to the workers. */
        if (n == 2) {
            rt->event_synchronize(ev[i % 2]);
            br_release(g, b);
            n--;
        }
        rc = br_next(g, b);
        if (rc) {
            fprintf(stderr, "br_next: %s\n", br_last_error(g));
            br_close(g);
            return -1;
        }
        n++;
        rc = rt->memcpy_async(dev, b->data, b->size, 1 /* host to device */, stream);
        if (rc) {
            fprintf(stderr, "cudaMemcpyAsync: %s\n", rt->error_string(rc));
            br_close(g);
            return -1;
        }
        rt->event_record(ev[i % 2], stream);
        /* The training step on the previous batch would run here. */
    }
    for (int k = 0; k < 2; k++)
        rt->event_synchronize(ev[k]);
    secs = now_s() - t0;
    br_close(g);
    return (double)batches * (double)bytes / secs / 1e9;
}

int main(int argc, char **argv)
{
    int batches = argc > 1 ? atoi(argv[1]) : 64;
    size_t bytes = (size_t)(argc > 2 ? atoi(argv[2]) : 4) << 20;
    struct cudart rt;
    void *dev = NULL, *stream = NULL, *ev[2] = {NULL, NULL};
    double pinned, pageable;
    int rc;

    if (batches < 4 || bytes == 0) {
        fprintf(stderr, "usage: %s [batches >= 4] [batch_mib >= 1]\n", argv[0]);
        return 2;
    }
    if (cudart_load(&rt)) {
        printf("no CUDA runtime: nothing to copy to (set BR_CUDART to libcudart's path)\n");
        return 0;
    }
    rc = rt.malloc_(&dev, bytes);
    if (rc) {
        printf("no CUDA device: cudaMalloc: %s\n", rt.error_string(rc));
        return 0;
    }
    rt.stream_create(&stream);
    rt.event_create(&ev[0]);
    rt.event_create(&ev[1]);
    pinned = run(&rt, 1, batches, bytes, dev, stream, ev);
    pageable = run(&rt, 0, batches, bytes, dev, stream, ev);
    rt.free_(dev);
    if (pinned < 0 || pageable < 0)
        return 1;
    printf("%s%d batches of %zu MiB, host to device: pinned ring %.2f GB/s, unpinned ring "
           "%.2f GB/s (%.2fx)\n",
           rt.stub ? "stub CUDA runtime (not a GPU: these are memcpy figures): " : "", batches,
           bytes >> 20, pinned, pageable, pinned / pageable);
    return 0;
}
