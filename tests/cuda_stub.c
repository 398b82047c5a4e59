/* SPDX-License-Identifier: MIT */
/*
 * A stand-in for the CUDA runtime (libcudart), for machines without a GPU:
 * the tests build it as libcudart_stub.so and point BR_CUDART at it, so
 * that br_pin, examples/gpu_trainer.c and `batchring bench --case h2d`
 * run their CUDA paths in CI. Device memory is host memory; copies are
 * memcpy; streams and events are counters.
 *
 * BR_CUDA_STUB_LOG=FILE: every call appends one line "name arg..." (one
 * write(2) with O_APPEND, so lines of several processes do not mix).
 * BR_CUDA_STUB_FAIL=NAME: the entry point NAME returns error 2
 * (cudaErrorMemoryAllocation) with the text STUB_ERROR_TEXT.
 * br_cuda_stub_marker: tells a caller that this is not a real runtime.
 */
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define STUB_ERROR 2
#define STUB_ERROR_TEXT "stub: out of memory (BR_CUDA_STUB_FAIL)"

__attribute__((visibility("default"))) const int br_cuda_stub_marker = 1;

__attribute__((format(printf, 1, 2))) static void stub_log(const char *fmt, ...)
{
    const char *path = getenv("BR_CUDA_STUB_LOG");
    char line[256];
    va_list ap;
    int fd, n;
    if (!path || !path[0])
        return;
    va_start(ap, fmt);
    n = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n > sizeof line - 2)
        n = (int)sizeof line - 2;
    line[n++] = '\n';
    fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return;
    if (write(fd, line, (size_t)n) < 0) {
        /* Nothing to do: the test that reads the log notices the gap. */
    }
    close(fd);
}

static int stub_fails(const char *name)
{
    const char *f = getenv("BR_CUDA_STUB_FAIL");
    return f && !strcmp(f, name);
}

#define STUB_API __attribute__((visibility("default")))

STUB_API const char *cudaGetErrorString(int error)
{
    return error == 0 ? "no error" : error == STUB_ERROR ? STUB_ERROR_TEXT : "stub: unknown error";
}

STUB_API int cudaHostRegister(void *ptr, size_t size, unsigned int flags)
{
    stub_log("cudaHostRegister %p %zu %u", ptr, size, flags);
    return stub_fails("cudaHostRegister") ? STUB_ERROR : 0;
}

STUB_API int cudaHostUnregister(void *ptr)
{
    stub_log("cudaHostUnregister %p", ptr);
    return stub_fails("cudaHostUnregister") ? STUB_ERROR : 0;
}

STUB_API int cudaMalloc(void **ptr, size_t size)
{
    stub_log("cudaMalloc %zu", size);
    if (stub_fails("cudaMalloc"))
        return STUB_ERROR;
    *ptr = malloc(size ? size : 1);
    return *ptr ? 0 : STUB_ERROR;
}

STUB_API int cudaFree(void *ptr)
{
    stub_log("cudaFree %p", ptr);
    free(ptr);
    return 0;
}

STUB_API int cudaMemcpy(void *dst, const void *src, size_t n, int kind)
{
    stub_log("cudaMemcpy %zu %d", n, kind);
    if (stub_fails("cudaMemcpy"))
        return STUB_ERROR;
    memcpy(dst, src, n);
    return 0;
}

STUB_API int cudaMemcpyAsync(void *dst, const void *src, size_t n, int kind, void *stream)
{
    stub_log("cudaMemcpyAsync %zu %d %p", n, kind, stream);
    if (stub_fails("cudaMemcpyAsync"))
        return STUB_ERROR;
    memcpy(dst, src, n);
    return 0;
}

/* Streams and events: distinct non-NULL handles that are never freed
 * (cudaStreamDestroy/cudaEventDestroy accept them). */
static char handles[64];
static unsigned next_handle;

STUB_API int cudaStreamCreate(void **stream)
{
    stub_log("cudaStreamCreate");
    *stream = &handles[next_handle++ % sizeof handles];
    return 0;
}

STUB_API int cudaStreamDestroy(void *stream)
{
    stub_log("cudaStreamDestroy %p", stream);
    return 0;
}

STUB_API int cudaStreamSynchronize(void *stream)
{
    stub_log("cudaStreamSynchronize %p", stream);
    return 0;
}

STUB_API int cudaEventCreate(void **event)
{
    stub_log("cudaEventCreate");
    *event = &handles[next_handle++ % sizeof handles];
    return 0;
}

STUB_API int cudaEventDestroy(void *event)
{
    stub_log("cudaEventDestroy %p", event);
    return 0;
}

STUB_API int cudaEventRecord(void *event, void *stream)
{
    stub_log("cudaEventRecord %p %p", event, stream);
    return 0;
}

/* 0: the copy before the event is done (stub copies are synchronous). */
STUB_API int cudaEventQuery(void *event)
{
    stub_log("cudaEventQuery %p", event);
    return 0;
}

STUB_API int cudaEventSynchronize(void *event)
{
    stub_log("cudaEventSynchronize %p", event);
    return 0;
}

STUB_API int cudaDeviceSynchronize(void)
{
    stub_log("cudaDeviceSynchronize");
    return 0;
}
