/* SPDX-License-Identifier: MIT */
/*
 * The throughput family, the consumer's loop of case_common.c over three
 * loaders: efficiency (a copying loader, beside the same loader in a plain
 * loop), seed (beside the seed model: a forked child piping each batch),
 * scaling (a loader that sleeps, beside workers x its ideal rate).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <batchring.h>

#include "case_common.h"

/* The scaling case's loader: a remote read's latency, no CPU. */
#define SLEEP_LOADER_NS 2000000L

static int load_sleep(br_job *job, void *user)
{
    struct timespec left = {0, SLEEP_LOADER_NS};
    (void)user;
    while (nanosleep(&left, &left) < 0 && errno == EINTR)
        ;
    job->size = 0;
    return 0;
}
/* ---- efficiency: the copying loader, beside a plain loop ---- */

int bench__efficiency_run(struct bench_loop *loop, const struct bench_params *p,
                          struct bench_result *out)
{
    const uint64_t bytes = p->batch_bytes;
    struct loader_cfg cfg = {.batch_bytes = bytes};
    char err[BR_ERR_CAP];
    uint8_t *src = bench__private_buffer(bytes), *dst = bench__private_buffer(bytes);
    br_gen *g = NULL;
    int rc;

    if (!src || !dst) {
        rc = bench__fail(out, -ENOMEM, "out of memory for two %llu-byte buffers",
                         (unsigned long long)bytes);
        goto done;
    }
    bench__fill_pattern(src, bytes);
    cfg.src = src;
    /* The same loader into one private buffer, in this process. */
    struct private_loader pl = {bench__load_copy, &cfg, bench__private_job(dst, bytes, err), NULL};
    struct baseline base = {bench__private_loads, &pl, 0, 0};
    if ((rc = bench__open_generator(&g, bench__load_copy, &cfg, bytes, p->workers, 0, out)))
        goto done;
    rc = bench__run_pipeline(loop, g, p->workers, NULL, &base, 1, out);
    bench__add_wait_figures(out, g);
    br_close(g);
    if (rc)
        goto done;
    out->value = (double)out->bytes / (out->seconds * 1e9);
    out->baseline = (double)bytes / bench__baseline_ns_per_unit(&base);
    out->ratio = out->value / out->baseline;
    bench__add_figure(out, "batches_per_s", (double)out->units / out->seconds);
    bench__add_figure(out, "baseline_batches_per_s", 1e9 / bench__baseline_ns_per_unit(&base));
done:
    bench__free_buffer(src, bytes);
    bench__free_buffer(dst, bytes);
    return rc;
}
bool bench__efficiency_target(const struct bench_params *p, double *limit, bool *at_least)
{
    *limit = 0.90, *at_least = true;
    return p->workers == 1 && (p->batch_bytes == MIB || p->batch_bytes == 16 * MIB);
}
/* ---- seed: the copying loader, beside a fork + pipe ---- */

/* The seed model: a loader process that pipes its batches. A forked
 * child runs the loader into its own memory and writes each batch, behind
 * its length, into a pipe; we read it into our buffer. */
struct seed_model {
    pid_t child;
    int fd;
    uint8_t *dst;
    uint64_t batch_bytes;
};

static bool write_all(int fd, const void *buf, size_t n)
{
    const uint8_t *p = buf;
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        p += w, n -= (size_t)w;
    }
    return true;
}

static bool read_all(int fd, void *buf, size_t n)
{
    uint8_t *p = buf;
    while (n) {
        ssize_t r = read(fd, p, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return false;
        p += r, n -= (size_t)r;
    }
    return true;
}

static _Noreturn void seed_child(int fd, pid_t parent, br_loader_fn load, void *user,
                                 uint64_t batch_bytes)
{
    char err[BR_ERR_CAP];
    uint8_t *buf;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(0);
    /* The parent closing the pipe is how the child learns to stop. */
    signal(SIGPIPE, SIG_IGN);
    buf = bench__private_buffer(batch_bytes);
    if (!buf)
        _exit(1);
    br_job job = bench__private_job(buf, batch_bytes, err);
    for (uint64_t seq = 0;; seq++) {
        uint64_t len;
        job.seq = seq;
        job.size = 0;
        if (load(&job, user))
            _exit(1);
        len = job.size;
        if (!write_all(fd, &len, sizeof len) || !write_all(fd, buf, len))
            _exit(0);
    }
}

static int seed_start(struct seed_model *s, br_loader_fn load, void *user, uint64_t batch_bytes,
                      struct bench_result *out)
{
    pid_t parent = getpid();
    int fds[2];
    memset(s, 0, sizeof *s);
    s->fd = -1;
    s->batch_bytes = batch_bytes;
    s->dst = bench__private_buffer(batch_bytes);
    if (!s->dst)
        return bench__fail(out, -ENOMEM, "out of memory for a %llu-byte buffer",
                           (unsigned long long)batch_bytes);
    if (pipe2(fds, O_CLOEXEC) < 0)
        return bench__fail(out, -errno, "pipe: %s", strerror(errno));
    fflush(NULL);
    s->child = fork();
    if (s->child < 0) {
        int e = errno;
        close(fds[0]), close(fds[1]);
        return bench__fail(out, -e, "fork: %s", strerror(e));
    }
    if (s->child == 0) {
        close(fds[0]);
        seed_child(fds[1], parent, load, user, batch_bytes);
    }
    close(fds[1]);
    s->fd = fds[0];
    return 0;
}

static int seed_receive(void *ctx, uint64_t n)
{
    struct seed_model *s = ctx;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t len;
        if (!read_all(s->fd, &len, sizeof len) || len > s->batch_bytes ||
            !read_all(s->fd, s->dst, (size_t)len))
            return -EPIPE;
    }
    return 0;
}

static void seed_stop(struct seed_model *s)
{
    if (s->fd >= 0)
        close(s->fd);
    if (s->child > 0) {
        kill(s->child, SIGKILL);
        while (waitpid(s->child, NULL, 0) < 0 && errno == EINTR)
            ;
    }
    bench__free_buffer(s->dst, s->batch_bytes);
    memset(s, 0, sizeof *s);
}

int bench__seed_run(struct bench_loop *loop, const struct bench_params *p, struct bench_result *out)
{
    const uint64_t bytes = p->batch_bytes;
    struct loader_cfg cfg = {.batch_bytes = bytes};
    struct seed_model seed;
    struct baseline base = {seed_receive, &seed, 0, 0};
    uint8_t *src = bench__private_buffer(bytes);
    br_gen *g = NULL;
    int rc;

    if (!src)
        return bench__fail(out, -ENOMEM, "out of memory for a %llu-byte buffer",
                           (unsigned long long)bytes);
    bench__fill_pattern(src, bytes);
    cfg.src = src;
    if ((rc = seed_start(&seed, bench__load_copy, &cfg, bytes, out)))
        goto done;
    /* Untimed: the child running, its first batches through the pipe. */
    if ((rc = seed_receive(&seed, 2))) {
        bench__fail(out, rc, "the seed model's child sent no batch");
        goto done;
    }
    if ((rc = bench__open_generator(&g, bench__load_copy, &cfg, bytes, p->workers, 0, out)))
        goto done;
    rc = bench__run_pipeline(loop, g, p->workers, NULL, &base, 1, out);
    br_close(g);
    if (rc == -EPIPE)
        bench__fail(out, rc, "the seed model's child stopped sending batches");
    if (rc)
        goto done;
    out->value = (double)out->units / out->seconds;
    out->baseline = 1e9 / bench__baseline_ns_per_unit(&base);
    out->ratio = out->value / out->baseline;
    bench__add_figure(out, "ms_per_batch", 1e3 / out->value);
    bench__add_figure(out, "seed_ms_per_batch", 1e3 / out->baseline);
done:
    seed_stop(&seed);
    bench__free_buffer(src, bytes);
    return rc;
}
bool bench__seed_target(const struct bench_params *p, double *limit, bool *at_least)
{
    *limit = 10.0, *at_least = true;
    return p->workers == 1 && p->batch_bytes == MIB;
}
/* ---- scaling: a latency-bound loader ---- */

int bench__scaling_run(struct bench_loop *loop, const struct bench_params *p,
                       struct bench_result *out)
{
    const uint32_t workers = p->workers;
    const uint64_t calls = 25;
    char err[BR_ERR_CAP];
    double loader_ns;
    br_gen *g = NULL;
    uint64_t t0;
    int rc;

    if (workers == 0)
        return bench__fail(out, -EINVAL, "the scaling case needs at least one worker");
    if ((rc = bench__open_generator(&g, load_sleep, NULL, p->batch_bytes, workers, 0, out)))
        return rc;
    rc = bench__run_pipeline(loop, g, workers, NULL, NULL, 0, out);
    br_close(g);
    if (rc)
        return rc;
    /* What one sleep really takes here (timer slack, wake-up latency): the
     * ideal the workers could reach, reported beside the issue's. */
    br_job job = bench__private_job(NULL, 0, err);
    t0 = br_util_now_ns();
    for (uint64_t i = 0; i < calls; i++)
        load_sleep(&job, NULL);
    loader_ns = (double)(br_util_now_ns() - t0) / (double)calls;
    out->value = (double)out->units / out->seconds;
    out->baseline = workers * (1e9 / (double)SLEEP_LOADER_NS);
    out->ratio = out->value / out->baseline;
    bench__add_figure(out, "loader_ms", loader_ns / 1e6);
    bench__add_figure(out, "of_measured_loader", out->value / (workers * 1e9 / loader_ns));
    return 0;
}
bool bench__scaling_target(const struct bench_params *p, double *limit, bool *at_least)
{
    *limit = 0.90, *at_least = true;
    return p->workers >= 1 && p->workers <= 32;
}
