/* SPDX-License-Identifier: MIT */
/*
 * The records family: the built-in records dataset read by the workers'
 * io_uring reader, at shuffled ids (records-random), at sequential ids
 * (records-seq) and with O_DIRECT (records-direct), beside the same reads
 * in a pread loop and in a bare liburing loop.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <liburing.h>

#include <batchring.h>

#include "case_common.h"

/* ---- records: the built-in records dataset, beside pread and liburing ---- */

/* A cached records file of IO_FILE_BYTES: big enough that random records
 * miss the CPU caches, small enough to write in a fraction of a second. */
#define IO_FILE_BYTES (128 * MIB)

struct io_file {
    char dir[64];
    char path[96];
    int fd;
    uint64_t records;
};

static void io_file_remove(struct io_file *f)
{
    if (f->fd >= 0)
        close(f->fd);
    unlink(f->path);
    rmdir(f->dir);
}

static int io_file_make(struct io_file *f, struct bench_result *out)
{
    const uint64_t chunk = MIB;
    uint8_t *buf = bench__private_buffer(chunk);
    f->fd = -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/batchring-perf-XXXXXX");
    if (!buf || !mkdtemp(f->dir)) {
        bench__free_buffer(buf, chunk);
        return bench__fail(out, -errno, "making a temporary directory: %s", strerror(errno));
    }
    snprintf(f->path, sizeof f->path, "%s/records.bin", f->dir);
    f->fd = open(f->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (f->fd < 0) {
        bench__free_buffer(buf, chunk);
        rmdir(f->dir);
        return bench__fail(out, -errno, "creating %s: %s", f->path, strerror(errno));
    }
    bench__fill_pattern(buf, chunk);
    for (uint64_t off = 0; off < IO_FILE_BYTES; off += chunk)
        if (pwrite(f->fd, buf, chunk, (off_t)off) != (ssize_t)chunk) {
            int e = errno ? errno : EIO;
            bench__free_buffer(buf, chunk);
            io_file_remove(f);
            return bench__fail(out, -e, "writing %s: %s", f->path, strerror(e));
        }
    bench__free_buffer(buf, chunk);
    f->records = IO_FILE_BYTES / IO_RECORD_BYTES;
    return 0;
}

/* The baselines read what the subject reads: `per_batch` records per
 * batch, at random record offsets (shuffled) or as one run of adjacent
 * records (sequential), into one private buffer. */
struct io_baseline {
    int fd;
    uint64_t records;
    uint32_t per_batch;
    bool shuffled;
    uint8_t *dst;
    uint64_t next; /* sequential: next record; shuffled: generator state */
    struct io_uring *uring;
};

static uint64_t io_next_record(struct io_baseline *b)
{
    if (b->shuffled) {
        b->next ^= b->next << 13, b->next ^= b->next >> 7, b->next ^= b->next << 17;
        return b->next % b->records;
    }
    if (b->next + b->per_batch > b->records)
        b->next = 0;
    uint64_t r = b->next;
    b->next += b->per_batch;
    return r;
}

static int pread_batches(void *ctx, uint64_t n)
{
    struct io_baseline *b = ctx;
    for (uint64_t k = 0; k < n; k++) {
        if (b->shuffled) {
            for (uint32_t i = 0; i < b->per_batch; i++)
                if (pread(b->fd, b->dst + (uint64_t)i * IO_RECORD_BYTES, IO_RECORD_BYTES,
                          (off_t)(io_next_record(b) * IO_RECORD_BYTES)) != IO_RECORD_BYTES)
                    return -EIO;
        } else {
            size_t len = (size_t)b->per_batch * IO_RECORD_BYTES;
            if (pread(b->fd, b->dst, len, (off_t)(io_next_record(b) * IO_RECORD_BYTES)) !=
                (ssize_t)len)
                return -EIO;
        }
    }
    return 0;
}

/* A bare liburing loop: the batch's reads queued at once, one submit and
 * wait, as the library's reader does, without the ring around it. */
static int uring_batches(void *ctx, uint64_t n)
{
    struct io_baseline *b = ctx;
    const uint32_t reads = b->shuffled ? b->per_batch : 1;
    const unsigned len = b->shuffled ? IO_RECORD_BYTES : b->per_batch * IO_RECORD_BYTES;
    for (uint64_t k = 0; k < n; k++) {
        for (uint32_t i = 0; i < reads; i++) {
            struct io_uring_sqe *sqe = io_uring_get_sqe(b->uring);
            if (!sqe)
                return -EBUSY;
            io_uring_prep_read(sqe, b->fd, b->dst + (uint64_t)i * len, len,
                               io_next_record(b) * IO_RECORD_BYTES);
        }
        if (io_uring_submit_and_wait(b->uring, reads) < 0)
            return -EIO;
        for (uint32_t i = 0; i < reads; i++) {
            struct io_uring_cqe *cqe;
            if (io_uring_wait_cqe(b->uring, &cqe) < 0 || cqe->res != (int)len)
                return -EIO;
            io_uring_cqe_seen(b->uring, cqe);
        }
    }
    return 0;
}

static int records_run(struct bench_loop *loop, const struct bench_params *p,
                       struct bench_result *out, bool shuffled, bool direct)
{
    const uint32_t per_batch = bench__records_per_batch(p->batch_bytes);
    struct io_file file;
    struct io_uring uring;
    bool uring_ok = false;
    br_dataset *ds = NULL;
    br_gen *g = NULL;
    br_options opt;
    uint8_t *dst = bench__private_buffer((uint64_t)per_batch * IO_RECORD_BYTES);
    int rc;

    if (!dst)
        return bench__fail(out, -ENOMEM, "out of memory for a batch buffer");
    if ((rc = io_file_make(&file, out))) {
        bench__free_buffer(dst, (uint64_t)per_batch * IO_RECORD_BYTES);
        return rc;
    }
    int read_fd = file.fd;
    if (direct) {
        /* O_DIRECT on both sides: nothing comes from the page cache, and
         * what the file's writing left there is dropped first. */
        fsync(file.fd);
        posix_fadvise(file.fd, 0, 0, POSIX_FADV_DONTNEED);
        read_fd = open(file.path, O_RDONLY | O_DIRECT | O_CLOEXEC);
        if (read_fd < 0) {
            rc = bench__fail(out, -errno, "the file system refuses O_DIRECT for %s: %s", file.path,
                             strerror(errno));
            io_file_remove(&file);
            bench__free_buffer(dst, (uint64_t)per_batch * IO_RECORD_BYTES);
            return rc;
        }
    }
    struct io_baseline pb = {
        read_fd, file.records, per_batch, shuffled, dst, shuffled ? 0x9e3779b97f4a7c15u : 0, NULL};
    struct io_baseline ub = pb;
    struct baseline base[2] = {{pread_batches, &pb, 0, 0}, {uring_batches, &ub, 0, 0}};
    if ((rc = io_uring_queue_init(per_batch < 64 ? 64 : per_batch, &uring, 0)) == 0) {
        uring_ok = true;
        ub.uring = &uring;
    }
    if ((rc = br_dataset_open_records(&ds, file.path, IO_RECORD_BYTES, NULL,
                                      direct ? BR_DATASET_DIRECT : 0))) {
        rc = bench__fail(out, rc, "br_dataset_open_records: %s", br_last_error(NULL));
        goto done;
    }
    br_options_init(&opt);
    opt.batch_size = per_batch;
    opt.workers = p->workers;
    opt.shuffle = shuffled;
    opt.seed = 7;
    if ((rc = br_open_dataset(&g, ds, NULL, 0, &opt))) {
        rc = bench__fail(out, rc, "br_open_dataset: %s", br_last_error(NULL));
        goto done;
    }
    rc = bench__run_pipeline(loop, g, p->workers, NULL, base, uring_ok ? 2 : 1, out);
    if (rc)
        goto done;
    out->value = (double)out->units / out->seconds;
    out->baseline = 1e9 / bench__baseline_ns_per_unit(&base[0]);
    out->ratio = out->value / out->baseline;
    if (uring_ok) {
        bench__add_figure(out, "liburing_batches_per_s",
                          1e9 / bench__baseline_ns_per_unit(&base[1]));
        bench__add_figure(out, "vs_liburing",
                          out->value * bench__baseline_ns_per_unit(&base[1]) / 1e9);
    }
    {
        br_worker_stats ws;
        uint64_t reads = 0, copies = 0, preads = 0;
        if (br_worker_stats_get(g, 0, &ws) == 0)
            bench__add_figure(out, "io_backend_1uring_2pread", ws.io_backend);
        for (uint32_t w = 0; w < p->workers && br_worker_stats_get(g, w, &ws) == 0; w++)
            reads += ws.io_reads, copies += ws.io_copies, preads += ws.io_preads;
        /* What the reader did, and where the workers' time went. */
        bench__add_figure(out, "copied_fraction", reads ? (double)copies / (double)reads : 0);
        bench__add_figure(out, "pread_fraction", reads ? (double)preads / (double)reads : 0);
        bench__add_wait_figures(out, g);
    }
done:
    br_close(g);
    br_dataset_close(ds);
    if (uring_ok)
        io_uring_queue_exit(&uring);
    if (read_fd != file.fd)
        close(read_fd);
    io_file_remove(&file);
    bench__free_buffer(dst, (uint64_t)per_batch * IO_RECORD_BYTES);
    return rc;
}

int bench__records_random_run(struct bench_loop *loop, const struct bench_params *p,
                              struct bench_result *out)
{
    return records_run(loop, p, out, true, false);
}

int bench__records_seq_run(struct bench_loop *loop, const struct bench_params *p,
                           struct bench_result *out)
{
    return records_run(loop, p, out, false, false);
}

int bench__records_direct_run(struct bench_loop *loop, const struct bench_params *p,
                              struct bench_result *out)
{
    return records_run(loop, p, out, false, true);
}
bool bench__records_random_target(const struct bench_params *p, double *limit, bool *at_least)
{
    *limit = 3.0, *at_least = true;
    return p->batch_bytes == 64 * IO_RECORD_BYTES;
}

bool bench__records_seq_target(const struct bench_params *p, double *limit, bool *at_least)
{
    *limit = 1.0, *at_least = true;
    return p->batch_bytes == 64 * KIB || p->batch_bytes == MIB;
}
