/* SPDX-License-Identifier: MIT */
/*
 * The reader loaders use for files: queue reads, then run them all with one
 * submit-and-wait per window of up to BR_IO_DEPTH reads.
 *
 * io_uring, one ring per reader, made in the process (after the fork) on
 * the first read. SINGLE_ISSUER + DEFER_TASKRUN where the kernel has them
 * (completions run when we wait, not as interrupts to our work), falling
 * back to plainer flags on EINVAL. No SQPOLL: on two cores its thread takes
 * the core that the trainer needs. The ring's slots are registered as fixed
 * buffers when RLIMIT_MEMLOCK allows (root is exempt), so the kernel does
 * not pin and unpin pages on every read. Where io_uring is refused (ENOSYS,
 * EPERM from seccomp or io_uring_disabled, ENOMEM from a small memlock
 * limit) or BR_IO=pread is set, the same reads run through pread.
 *
 * Short reads advance buffer, length and file offset and go again; a read
 * of 0 bytes before the expected end means the file is shorter than the
 * dataset says: -ENODATA. A slot is published only after every read of
 * its batch succeeded, so a consumer never sees partial data.
 */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "producer/io.h"
#include "ring/error.h"

/* Reads in flight at once: deep enough to keep the page cache or the
 * device busy, well within the completion queue so it cannot overflow. */
#define BR_IO_DEPTH 64u
/* io_uring reads at most this much per request (the kernel caps near 2 GiB). */
#define BR_IO_MAX_CHUNK (1u << 30)
#define BR_IO_FIXED_FILES 64u
/* The kernel's limits for one registered buffer and for their number. */
#define BR_IO_MAX_FIXED_BUFFER (UINT64_C(1) << 30)
#define BR_IO_MAX_FIXED_BUFFERS 16384u

struct br_read {
    int fd;
    int fixed_file;  /* index in the fixed file table, or -1 */
    uint64_t offset;
    uint64_t len;
    uint64_t done;
    uint8_t *dst;
    uint64_t sample;
};

struct br_io {
    enum br_io_backend backend; /* BR_IO_NONE until the first read */
    bool single_issuer;
    struct io_uring uring;
    bool fixed_buffers;
    int fixed_fds[BR_IO_FIXED_FILES]; /* fd at each fixed index, or -1 */
    bool fixed_files;
    /* The ring's data area (fixed buffers are its slots) and the slot the
     * current job may write. */
    uint8_t *data;
    uint64_t slot_stride;
    uint32_t nslots;
    uint8_t *job_lo, *job_hi;
    struct br_read *queue;
    size_t queued, capacity;
    struct br_worker_rec *rec;
    char msg[BR_MSG_CAP];
};

int br__io_create(br_io **out, const struct br_ring *ring, struct br_worker_rec *rec,
                  bool single_issuer, char *msg)
{
    br_io *io = calloc(1, sizeof *io);
    if (!io)
        return br__fail(msg, -ENOMEM, "out of memory for a file reader");
    io->single_issuer = single_issuer;
    io->data = ring->data;
    io->slot_stride = ring->slot_stride;
    io->nslots = ring->nslots;
    io->rec = rec;
    for (unsigned i = 0; i < BR_IO_FIXED_FILES; i++)
        io->fixed_fds[i] = -1;
    *out = io;
    return 0;
}

void br__io_destroy(br_io *io)
{
    if (!io)
        return;
    if (io->backend == BR_IO_URING)
        io_uring_queue_exit(&io->uring);
    free(io->queue);
    free(io);
}

void br__io_begin_job(br_io *io, void *out, size_t cap)
{
    io->job_lo = out;
    io->job_hi = (uint8_t *)out + cap;
    io->queued = 0;
    io->msg[0] = '\0';
}

/* Registers the ring's slots as fixed buffers if the memlock limit allows:
 * each worker pins the whole data area once. */
static void register_buffers(br_io *io)
{
    struct rlimit lim;
    uint64_t bytes = io->slot_stride * io->nslots;
    struct iovec *iov;

    if (io->slot_stride > BR_IO_MAX_FIXED_BUFFER || io->nslots > BR_IO_MAX_FIXED_BUFFERS)
        return;
    if (geteuid() != 0 && getrlimit(RLIMIT_MEMLOCK, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY &&
        lim.rlim_cur < bytes)
        return;
    iov = calloc(io->nslots, sizeof *iov);
    if (!iov)
        return;
    for (uint32_t i = 0; i < io->nslots; i++) {
        iov[i].iov_base = io->data + (uint64_t)i * io->slot_stride;
        iov[i].iov_len = io->slot_stride;
    }
    io->fixed_buffers = io_uring_register_buffers(&io->uring, iov, io->nslots) == 0;
    free(iov);
}

/* Chooses the backend on first use. */
static void io_start(br_io *io)
{
    const char *force = getenv("BR_IO");
    struct io_uring_params p;
    int rc;

    io->backend = BR_IO_PREAD;
    if (!(force && !strcmp(force, "pread"))) {
        /* Newest flags first; each EINVAL means an older kernel. */
        static const unsigned flag_sets[] = {
            IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
            IORING_SETUP_COOP_TASKRUN,
            0,
        };
        for (size_t i = io->single_issuer ? 0 : 1; i < sizeof flag_sets / sizeof flag_sets[0];
             i++) {
            memset(&p, 0, sizeof p);
            p.flags = flag_sets[i];
            rc = io_uring_queue_init_params(BR_IO_DEPTH, &io->uring, &p);
            if (rc == 0) {
                io->backend = BR_IO_URING;
                break;
            }
            if (rc != -EINVAL)
                break; /* ENOSYS, EPERM, ENOMEM: io_uring is not for us */
        }
    }
    if (io->backend == BR_IO_URING) {
        register_buffers(io);
        io->fixed_files = io_uring_register_files_sparse(&io->uring, BR_IO_FIXED_FILES) == 0;
    }
    if (io->rec)
        br__store_relaxed_u32(&io->rec->io_backend, io->backend);
}

BR_API const char *br_io_backend_name(const br_io *io)
{
    if (!io)
        return "none";
    switch (io->backend) {
    case BR_IO_URING:
        return "io_uring";
    case BR_IO_PREAD:
        return "pread";
    default:
        return getenv("BR_IO") && !strcmp(getenv("BR_IO"), "pread") ? "pread" : "not started";
    }
}

BR_API const char *br_io_last_error(const br_io *io)
{
    return io ? io->msg : "no reader";
}

BR_API int br_io_register_file(br_io *io, int fd)
{
    if (!io || fd < 0)
        return -EINVAL;
    if (io->backend == BR_IO_NONE)
        io_start(io);
    if (!io->fixed_files)
        return 0;
    for (unsigned i = 0; i < BR_IO_FIXED_FILES; i++)
        if (io->fixed_fds[i] == fd)
            return 0;
    for (unsigned i = 0; i < BR_IO_FIXED_FILES; i++) {
        if (io->fixed_fds[i] != -1)
            continue;
        if (io_uring_register_files_update(&io->uring, i, &fd, 1) == 1)
            io->fixed_fds[i] = fd;
        return 0;
    }
    return 0;
}

static int fixed_index(const br_io *io, int fd)
{
    if (!io->fixed_files)
        return -1;
    for (unsigned i = 0; i < BR_IO_FIXED_FILES; i++)
        if (io->fixed_fds[i] == fd)
            return (int)i;
    return -1;
}

BR_API int br_io_read(br_io *io, int fd, uint64_t offset, size_t len, void *dst,
                      uint64_t sample)
{
    uint8_t *d = dst;
    uint64_t end;

    if (!io)
        return -EINVAL;
    if (fd < 0 || !dst || __builtin_add_overflow(offset, (uint64_t)len, &end) ||
        end > (uint64_t)INT64_MAX)
        return br__fail(io->msg, -EINVAL,
                        "br_io_read for sample %llu: bad arguments (fd %d, dst %p, offset %llu, "
                        "length %zu)",
                        (unsigned long long)sample, fd, dst, (unsigned long long)offset, len);
    if (len == 0)
        return 0;
    /* Inside the ring, a read may only write the current job's slot. */
    if (d + len > io->data && d < io->data + io->slot_stride * io->nslots &&
        (d < io->job_lo || d + len > io->job_hi || d + len < d))
        return br__fail(io->msg, -EINVAL,
                        "br_io_read for sample %llu: %zu bytes at slot offset %lld would "
                        "write outside this job's slot of %zu bytes",
                        (unsigned long long)sample, len, (long long)(d - io->job_lo),
                        (size_t)(io->job_hi - io->job_lo));
    if (io->queued == io->capacity) {
        size_t cap = io->capacity ? 2 * io->capacity : 64;
        struct br_read *q = realloc(io->queue, cap * sizeof *q);
        if (!q)
            return br__fail(io->msg, -ENOMEM, "out of memory queueing %zu reads", cap);
        io->queue = q;
        io->capacity = cap;
    }
    if (io->backend == BR_IO_NONE)
        io_start(io);
    io->queue[io->queued++] = (struct br_read){
        .fd = fd,
        .fixed_file = fixed_index(io, fd),
        .offset = offset,
        .len = len,
        .dst = d,
        .sample = sample,
    };
    return 0;
}

/* Fills io->msg for a failed read and returns code. */
static int read_failed(br_io *io, const struct br_read *r, int code)
{
    char link[64], path[512];
    ssize_t n;
    snprintf(link, sizeof link, "/proc/self/fd/%d", r->fd);
    n = readlink(link, path, sizeof path - 1);
    if (n < 0)
        snprintf(path, sizeof path, "fd %d", r->fd);
    else
        path[n] = '\0';
    if (code == -ENODATA) {
        struct stat st;
        unsigned long long end = fstat(r->fd, &st) == 0 ? (unsigned long long)st.st_size
                                                        : (unsigned long long)(r->offset + r->done);
        return br__fail(io->msg, code,
                        "read of sample %llu from %s: the file ends at offset %llu, before "
                        "the %llu bytes expected at offset %llu (truncated or changed?)",
                        (unsigned long long)r->sample, path, end, (unsigned long long)r->len,
                        (unsigned long long)r->offset);
    }
    return br__fail(io->msg, code, "read of sample %llu from %s (%llu bytes at offset %llu): %s",
                    (unsigned long long)r->sample, path, (unsigned long long)r->len,
                    (unsigned long long)r->offset, strerror(-code));
}

static int wait_pread(br_io *io)
{
    for (size_t i = 0; i < io->queued; i++) {
        struct br_read *r = &io->queue[i];
        while (r->done < r->len) {
            ssize_t n = pread(r->fd, r->dst + r->done, (size_t)(r->len - r->done),
                              (off_t)(r->offset + r->done));
            if (n < 0 && (errno == EINTR || errno == EAGAIN))
                continue;
            if (n < 0)
                return read_failed(io, r, -errno);
            if (n == 0)
                return read_failed(io, r, -ENODATA);
            r->done += (uint64_t)n;
        }
    }
    return 0;
}

static void prep_read(br_io *io, struct io_uring_sqe *sqe, struct br_read *r, size_t index)
{
    uint64_t left = r->len - r->done;
    unsigned chunk = left > BR_IO_MAX_CHUNK ? BR_IO_MAX_CHUNK : (unsigned)left;
    uint8_t *dst = r->dst + r->done;
    int fd = r->fixed_file >= 0 ? r->fixed_file : r->fd;
    bool in_ring = dst >= io->data && dst < io->data + io->slot_stride * io->nslots;

    if (io->fixed_buffers && in_ring)
        io_uring_prep_read_fixed(sqe, fd, dst, chunk, r->offset + r->done,
                                 (int)((uint64_t)(dst - io->data) / io->slot_stride));
    else
        io_uring_prep_read(sqe, fd, dst, chunk, r->offset + r->done);
    if (r->fixed_file >= 0)
        sqe->flags |= IOSQE_FIXED_FILE;
    io_uring_sqe_set_data64(sqe, index);
}

static int wait_uring(br_io *io)
{
    /* Reads to (re)submit: first the unfinished ones that came back short,
     * then new ones in queue order. */
    size_t *again = malloc(BR_IO_DEPTH * sizeof *again);
    size_t n_again = 0, next = 0, inflight = 0;
    int rc = 0;

    if (!again)
        return br__fail(io->msg, -ENOMEM, "out of memory for the read window");
    while (inflight > 0 || (rc == 0 && (n_again > 0 || next < io->queued))) {
        struct io_uring_cqe *cqe;
        unsigned head, seen = 0;
        int ret;

        while (rc == 0 && inflight < BR_IO_DEPTH && (n_again > 0 || next < io->queued)) {
            struct io_uring_sqe *sqe = io_uring_get_sqe(&io->uring);
            size_t index;
            if (!sqe)
                break; /* SQ full: submit what we have, then go on */
            index = n_again > 0 ? again[--n_again] : next++;
            prep_read(io, sqe, &io->queue[index], index);
            inflight++;
        }
        ret = io_uring_submit_and_wait(&io->uring, 1);
        if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY) {
            /* The ring itself failed: nothing in flight can be trusted to
             * complete, so stop here with the error. */
            rc = br__fail(io->msg, ret, "io_uring_submit_and_wait: %s", strerror(-ret));
            break;
        }
        io_uring_for_each_cqe(&io->uring, head, cqe)
        {
            size_t index = (size_t)io_uring_cqe_get_data64(cqe);
            struct br_read *r = &io->queue[index];
            int res = cqe->res;
            seen++;
            inflight--;
            if (res == -EAGAIN || res == -EINTR) {
                again[n_again++] = index;
            } else if (res < 0) {
                if (rc == 0)
                    rc = read_failed(io, r, res);
            } else if (res == 0) {
                if (rc == 0)
                    rc = read_failed(io, r, -ENODATA);
            } else {
                r->done += (uint64_t)res;
                if (r->done < r->len)
                    again[n_again++] = index;
            }
        }
        io_uring_cq_advance(&io->uring, seen);
    }
    free(again);
    return rc;
}

BR_API int br_io_wait(br_io *io)
{
    uint64_t bytes = 0;
    int rc;
    if (!io)
        return -EINVAL;
    if (io->queued == 0)
        return 0;
    /* io_uring's gain is many reads per syscall; a lone read is one
     * syscall either way, and pread skips the ring's bookkeeping. */
    rc = io->backend == BR_IO_URING && io->queued > 1 ? wait_uring(io) : wait_pread(io);
    if (io->rec) {
        for (size_t i = 0; i < io->queued; i++)
            bytes += io->queue[i].done;
        br__add_relaxed_u64(&io->rec->io_reads, io->queued);
        br__add_relaxed_u64(&io->rec->io_bytes, bytes);
    }
    io->queued = 0;
    return rc;
}
