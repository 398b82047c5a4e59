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
 * Registered files the page cache holds are not read at all: a worker maps
 * each registered regular file (buffered, at most the machine's RAM) read
 * only, and a read whose pages were resident at the last mincore() scan is
 * a memcpy from the mapping. A cached 4 KiB read through pread or io_uring
 * spends about half its time outside the copy (the syscall, the page-cache
 * lookup, atime), so the copy alone is a fraction of it (perf case
 * records-random; figures in docs/perf/notes.md). Everything else goes
 * through io_uring: pages not resident (io_uring reads them in parallel,
 * where a fault would read them one by one), O_DIRECT files, reads past
 * the mapped size. The copy must never turn a fault into a crash or a file's shrinking into
 * zeros: a SIGBUS during a copy (a page past the new end of the file, an
 * I/O error) jumps back, and a copy that may have read the zeros of a file
 * cut inside its last page is caught by a probe of the page after it or by
 * one fstat() after the copies (copy_resident). Either way those reads go
 * through the read path again, which reports them as it would anyway.
 * Pages evicted since the scan still copy correctly (a major fault reads
 * them); a file is scanned by 64 MiB regions as reads first need them, each
 * again at most every BR_IO_SCAN_MIN_NS and so that scans take at most 1%
 * of the time.
 *
 * Which path serves a read is measured, not fixed (docs/datasets.md, "The
 * read path, chosen per file"): per registered file, per size class of the
 * read (a 4 KiB record and a 1 MiB coalesced run cost differently) and per
 * residency (a copy serves only resident pages), the reader times each
 * candidate (copy, io_uring, pread) on the batch's real reads, ns per byte
 * over the phase that ran them, keeps the cheapest, and tries each other
 * one again for a few batches at most every BR_IO_TRIAL_NS, so a change in
 * residency or load is noticed. Every path delivers the same bytes; only
 * the time differs. The scan and the population of page tables ahead of
 * copies are outside those timings: they are paid once per region or per
 * 2 MiB, not per read.
 * BR_IO forces one policy: "pread", "uring" (io_uring, a lone read through
 * pread), "copy" (copies where resident, io_uring for the rest: the fixed
 * policy before the measured choice).
 *
 * Before a copy from pages not yet in this reader's page tables, it
 * populates them and up to 2 MiB ahead (MADV_POPULATE_READ, Linux 5.14;
 * older kernels fault page by page as before), so the copies do not each
 * pay their first-touch fault. Only there: the scan only looks, so a
 * worker's page tables hold what its copies read and the 2 MiB after it,
 * not every resident page of each 64 MiB region it touched: no page
 * tables, in every worker, for pages none of its copies reads.
 *
 * Short reads advance buffer, length and file offset and go again; a read
 * of 0 bytes before the expected end means the file is shorter than the
 * dataset says: -ENODATA. A slot is published only after every read of
 * its batch succeeded, so a consumer never sees partial data.
 */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
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

/* Rescan a mapped file's residency at most this often, so that scanning
 * (mincore, per page: docs/perf/notes.md) stays under 1% of the time. */
#define BR_IO_SCAN_MIN_NS UINT64_C(1000000000)
/* Residency is scanned by regions of this many pages (64 MiB of 4 KiB
 * pages: a scan short enough to run inside a batch's read, see
 * docs/perf/notes.md), each when a read first needs it: a large file costs
 * no long scan before the first batch, and regions never read, none at
 * all. */
#define BR_IO_SCAN_REGION_PAGES UINT64_C(16384)
/* How long a reader trusts that on_sigbus still handles SIGBUS before it
 * looks again (one sigaction call): a handler installed after ours is
 * noticed within this time, and a batch of one 64 KiB copy does not pay a
 * syscall for it (~5% of the batch). */
#define BR_IO_SIGBUS_CHECK_NS UINT64_C(10000000)
/* A batch of at most this many copies guards each with a probe of the page
 * after it rather than one fstat for the batch (copy_resident). */
#define BR_IO_PROBE_MAX_COPIES 4u
/* Pages populated ahead of a copy whose own pages are not in our page
 * tables yet (2 MiB: a folio the kernel may map with one entry). */
#define BR_IO_POPULATE_AHEAD UINT64_C(512)
/* Sources prefetched ahead of the copy: the first line of each starts the
 * page walk and the stream while the previous record is copied. A few
 * records, so that a walk that takes longer than one record's copy is
 * still under way in time, and few enough that the prefetches do not
 * compete with the copy's own misses (a whole record prefetched ahead
 * doubled the time). Distances 1 to 8 measured alike, and the prefetch
 * gained up to a tenth where memory was slow and nothing where it was
 * quick: docs/perf/notes.md, "Scattered records: the copy's misses". */
#define BR_IO_PREFETCH_AHEAD 4u

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22 /* Linux 5.14 */
#endif

/* The measured choice of a read path. A trial of a path is this many
 * batches (its cost is the lowest of them: path_cost), and a path is tried
 * again at most every BR_IO_TRIAL_NS and BR_IO_TRIAL_MIN_WAITS batches of
 * its cell: a path twice as slow as the chosen one costs 4 batches' time
 * in every 64 batches of a slow cell, in every ~1,000 of a fast one. */
#define BR_IO_TRIAL_WAITS 4u
#define BR_IO_TRIAL_NS UINT64_C(250000000)
#define BR_IO_TRIAL_MIN_WAITS 64u
/* A tried path replaces the chosen one only when it is cheaper by this
 * fraction: two paths within the noise do not flip back and forth. */
#define BR_IO_SWITCH_MARGIN 0.9
/* Reads up to 16 KiB (records), up to 256 KiB, and larger (coalesced runs). */
#define BR_IO_SIZE_CLASSES 3u

enum read_path { PATH_COPY, PATH_URING, PATH_PREAD, PATHS };

/* The paths of one (file, size class, residency) and their costs. */
struct br_path_choice {
    float cost[PATHS][BR_IO_TRIAL_WAITS]; /* ns per byte, the latest batches */
    uint8_t samples[PATHS];  /* valid entries of cost[p] */
    uint8_t next[PATHS];     /* where the next one goes */
    uint8_t chosen;          /* enum read_path, or PATHS: none yet */
    uint8_t trial;           /* the path under trial, or PATHS */
    uint8_t trial_left;      /* its batches still to run */
    uint8_t last_trial;      /* the path tried last */
    uint8_t path;            /* the path of the current batch */
    uint32_t since_trial;    /* batches since the last trial */
    uint64_t next_trial_ns;  /* no trial before this */
    uint64_t batch;          /* io->batches when `path` was set */
    uint64_t batch_bytes;    /* bytes of this batch on `path` */
    double batch_ns;         /* and their time: runs timed alone, plus a
                                share of the rest of their phase */
    bool spoiled;            /* a copy of this batch faulted */
};

/* The choices for one file (fd -1: every unregistered file). */
struct br_file_paths {
    int fd;
    struct br_path_choice cell[BR_IO_SIZE_CLASSES][2]; /* [class][resident] */
};

/* A registered regular file, mapped read only for copies out of the page
 * cache. */
struct br_mapped_file {
    int fd;
    const uint8_t *base;
    uint64_t mapped;      /* bytes mapped: the file's size when registered */
    uint64_t size;        /* bytes that may be copied: shrinks with the file */
    uint8_t *resident;    /* per page: bit 0 if in the page cache at the last
                             scan or read since; bit 1 if populated in our
                             page tables since it became resident */
    uint64_t pages;
    uint64_t *next_scan_ns; /* per region of BR_IO_SCAN_REGION_PAGES */
};

struct br_read {
    int fd;
    int fixed_file;  /* index in the fixed file table, or -1 */
    int mapped;      /* index in io->maps, or -1 */
    int paths;       /* index in io->paths */
    uint8_t path;    /* enum read_path of this batch */
    struct br_path_choice *choice; /* NULL: a forced path */
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
    uint8_t *slot_registered; /* per slot: registered as a fixed buffer */
    int fixed_fds[BR_IO_FIXED_FILES]; /* fd at each fixed index, or -1 */
    bool fixed_files;
    bool no_copies; /* BR_IO=uring or pread: every read is a read */
    char force;     /* BR_IO: 'p' pread, 'u' uring, 'c' copy, 0 measured */
    bool populate;  /* MADV_POPULATE_READ not refused */
    uint64_t batches; /* calls of br_io_wait with reads */
    struct br_file_paths paths[BR_IO_FIXED_FILES + 1]; /* the last: others */
    unsigned npaths;
    uint8_t *scan_before; /* a region's residency before its rescan */
    struct br_mapped_file maps[BR_IO_FIXED_FILES];
    unsigned nmaps;
    uint64_t page; /* the page size */
    bool sigbus_ok; /* on_sigbus handled SIGBUS at sigbus_checked_ns */
    uint64_t sigbus_checked_ns;
    /* The ring's data area (fixed buffers are its slots) and the slot the
     * current job may write. */
    uint8_t *data;
    uint64_t slot_stride;
    uint64_t slot_span; /* a slot's writable bytes: never its guard page */
    uint32_t nslots;
    uint8_t *job_lo, *job_hi;
    struct br_read *queue;
    size_t queued, capacity;
    /* The copy and pread phases run reads one after another: a run of
     * reads of one cell, followed by another cell's, is timed on its own
     * (run_next). */
    struct br_path_choice *run_choice; /* the cell of the current run */
    uint64_t run_start_ns;             /* when it began */
    unsigned runs;                     /* runs in this phase so far */
    uint64_t run_charged_ns[PATHS];    /* time charged to runs, per path */
    struct br_worker_rec *rec;
    char msg[BR_MSG_CAP];
};

/* Fresh choices for fd: nothing measured, nothing chosen. */
static void paths_init(struct br_file_paths *f, int fd)
{
    memset(f, 0, sizeof *f);
    f->fd = fd;
    for (unsigned c = 0; c < BR_IO_SIZE_CLASSES; c++)
        for (unsigned res = 0; res < 2; res++) {
            f->cell[c][res].chosen = PATHS;
            f->cell[c][res].trial = PATHS;
            f->cell[c][res].batch = UINT64_MAX;
        }
}

int br__io_create(br_io **out, const struct br_ring *ring, struct br_worker_rec *rec,
                  bool single_issuer, char *msg)
{
    br_io *io = calloc(1, sizeof *io);
    if (!io)
        return br__fail(msg, -ENOMEM, "out of memory for a file reader");
    io->single_issuer = single_issuer;
    io->data = ring->data;
    io->slot_stride = ring->slot_stride;
    io->slot_span = ring->slot_span;
    io->nslots = ring->nslots;
    io->rec = rec;
    io->page = (uint64_t)sysconf(_SC_PAGESIZE);
    for (unsigned i = 0; i < BR_IO_FIXED_FILES; i++)
        io->fixed_fds[i] = -1;
    paths_init(&io->paths[BR_IO_FIXED_FILES], -1);
    io->populate = true;
    *out = io;
    return 0;
}

void br__io_destroy(br_io *io)
{
    if (!io)
        return;
    if (io->backend == BR_IO_URING)
        io_uring_queue_exit(&io->uring);
    for (unsigned i = 0; i < io->nmaps; i++) {
        munmap((void *)io->maps[i].base, io->maps[i].mapped);
        free(io->maps[i].resident);
        free(io->maps[i].next_scan_ns);
    }
    free(io->slot_registered);
    free(io->scan_before);
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

/* Makes room for the ring's slots as fixed buffers if the memlock limit
 * allows. Each slot is registered (pinned) on its first io_uring read, not
 * here: pinning the whole data area at once would fault in every slot in
 * every worker, undoing the lazy per-slot population, for loaders that may
 * never read through io_uring (the page-cache copy serves cached files). */
static void reserve_buffers(br_io *io)
{
    struct rlimit lim;
    uint64_t bytes = io->slot_stride * io->nslots;

    if (io->slot_stride > BR_IO_MAX_FIXED_BUFFER || io->nslots > BR_IO_MAX_FIXED_BUFFERS)
        return;
    if (geteuid() != 0 && getrlimit(RLIMIT_MEMLOCK, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY &&
        lim.rlim_cur < bytes)
        return;
    io->slot_registered = calloc(io->nslots, 1);
    if (!io->slot_registered)
        return;
    io->fixed_buffers = io_uring_register_buffers_sparse(&io->uring, io->nslots) == 0;
}

/* The fixed buffer index of slot `slot`, registering it on first use; -1
 * when it cannot be (reads then go unregistered). */
static int slot_buffer(br_io *io, uint32_t slot)
{
    if (!io->slot_registered[slot]) {
        /* Not the guard page (guard mode): pinning a PROT_NONE page fails. */
        struct iovec iov = {io->data + (uint64_t)slot * io->slot_stride, io->slot_span};
        if (io_uring_register_buffers_update_tag(&io->uring, slot, &iov, NULL, 1) != 1)
            return -1;
        io->slot_registered[slot] = 1;
    }
    return (int)slot;
}

/* Chooses the backend on first use. */
static void io_start(br_io *io)
{
    const char *force = getenv("BR_IO");
    struct io_uring_params p;
    int rc;

    io->backend = BR_IO_PREAD;
    io->no_copies = force && (!strcmp(force, "pread") || !strcmp(force, "uring"));
    io->force = !force                   ? 0
                : !strcmp(force, "pread") ? 'p'
                : !strcmp(force, "uring") ? 'u'
                : !strcmp(force, "copy")  ? 'c'
                                          : 0;
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
        reserve_buffers(io);
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

/* Maps size bytes of fd read-only at a 2 MiB-aligned address, so that the
 * page cache's 2 MiB folios (the kernel makes some on its own) are mapped
 * by one page-table entry each: fewer TLB misses per copy. NULL on failure. */
static void *map_aligned(int fd, size_t size)
{
    const size_t align = (size_t)2 << 20, page = (size_t)sysconf(_SC_PAGESIZE);
    uint8_t *area, *at, *end;
    void *base;

    if (size > SIZE_MAX - align)
        return NULL;
    area = mmap(NULL, size + align, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (area == MAP_FAILED)
        return NULL;
    at = (uint8_t *)(((uintptr_t)area + align - 1) & ~(uintptr_t)(align - 1));
    base = mmap(at, size, PROT_READ, MAP_SHARED | MAP_FIXED, fd, 0);
    if (base == MAP_FAILED) {
        munmap(area, size + align);
        return NULL;
    }
    /* Give back the reservation around the file's mapping, which ends at
     * the page boundary after size. */
    end = at + ((size + page - 1) & ~(page - 1));
    if (at > area)
        munmap(area, (size_t)(at - area));
    if (area + size + align > end)
        munmap(end, (size_t)(area + size + align - end));
    return base;
}

/* Maps fd for copies out of the page cache when it is a regular file
 * opened for reading without O_DIRECT, of at most the machine's RAM (a
 * larger file cannot be resident, and its page map would be large). A
 * file that cannot be mapped is simply read. */
static void map_file(br_io *io, int fd)
{
    struct br_mapped_file *m = &io->maps[io->nmaps];
    const long ram_pages = sysconf(_SC_PHYS_PAGES);
    const uint64_t page = io->page;
    int flags = fcntl(fd, F_GETFL);
    struct stat st;
    void *base;

    if (io->no_copies || io->nmaps == BR_IO_FIXED_FILES || flags < 0 || (flags & O_DIRECT) ||
        (flags & O_ACCMODE) == O_WRONLY || fstat(fd, &st) || !S_ISREG(st.st_mode) ||
        st.st_size <= 0 || page == 0 || ram_pages <= 0 ||
        (uint64_t)st.st_size / page > (uint64_t)ram_pages)
        return;
    for (unsigned i = 0; i < io->nmaps; i++)
        if (io->maps[i].fd == fd)
            return;
    base = map_aligned(fd, (size_t)st.st_size);
    if (!base)
        return;
    *m = (struct br_mapped_file){
        .fd = fd,
        .base = base,
        .mapped = (uint64_t)st.st_size,
        .size = (uint64_t)st.st_size,
        .pages = ((uint64_t)st.st_size + page - 1) / page,
    };
    m->resident = calloc(m->pages, 1);
    m->next_scan_ns = calloc((m->pages + BR_IO_SCAN_REGION_PAGES - 1) / BR_IO_SCAN_REGION_PAGES,
                             sizeof *m->next_scan_ns);
    if (!m->resident || !m->next_scan_ns) {
        free(m->resident);
        free(m->next_scan_ns);
        munmap(base, m->mapped);
        return;
    }
    io->nmaps++;
}

/* The choices of fd: its own if registered, else the shared entry. */
static int paths_index(const br_io *io, int fd)
{
    for (unsigned i = 0; i < io->npaths; i++)
        if (io->paths[i].fd == fd)
            return (int)i;
    return BR_IO_FIXED_FILES;
}

BR_API int br_io_register_file(br_io *io, int fd)
{
    if (!io || fd < 0)
        return -EINVAL;
    if (io->backend == BR_IO_NONE)
        io_start(io);
    map_file(io, fd);
    if (io->npaths < BR_IO_FIXED_FILES && paths_index(io, fd) == BR_IO_FIXED_FILES)
        paths_init(&io->paths[io->npaths++], fd);
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

static int map_index(const br_io *io, int fd)
{
    for (unsigned i = 0; i < io->nmaps; i++)
        if (io->maps[i].fd == fd)
            return (int)i;
    return -1;
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
        .mapped = map_index(io, fd),
        .paths = paths_index(io, fd),
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

/* ---- each cell's time in a phase that runs reads one after another ---- */

/* Starts timing the runs of a phase that began at start_ns. */
static void runs_begin(br_io *io, uint64_t start_ns)
{
    io->run_choice = NULL;
    io->run_start_ns = start_ns;
    io->runs = 0;
}

/* Ends the current run now, charging its time to its cell alone. */
static void run_charge(br_io *io, unsigned path)
{
    const uint64_t t = br__now_ns();
    if (io->run_choice) {
        io->run_choice->batch_ns += (double)(t - io->run_start_ns);
        io->run_charged_ns[path] += t - io->run_start_ns;
    }
    io->run_start_ns = t;
}

/* Before read r of phase `path`: where r's cell differs from the run's,
 * the run ends. A cell's copies or preads are then its own time, however
 * few of the batch's reads it has (a size class that is a minority in
 * every batch would otherwise never be timed apart from the others); a
 * batch of one cell takes no timestamp at all, a batch of several one per
 * change of cell and one at the end (a clock read, small beside a copied
 * record: docs/perf/notes.md). */
static void run_next(br_io *io, const struct br_read *r, unsigned path)
{
    if (io->force || r->choice == io->run_choice)
        return;
    if (io->runs++ > 0)
        run_charge(io, path);
    io->run_choice = r->choice;
}

/* Ends the phase's runs: its last run is timed alone if there were others
 * (a phase of one run is all that cell's time anyway). */
static void runs_end(br_io *io, unsigned path)
{
    if (io->runs > 1)
        run_charge(io, path);
}

static int wait_pread(br_io *io)
{
    for (size_t i = 0; i < io->queued; i++) {
        struct br_read *r = &io->queue[i];
        if (r->path == PATH_PREAD && r->done < r->len)
            run_next(io, r, PATH_PREAD);
        while (r->path == PATH_PREAD && r->done < r->len) {
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

    int buffer = io->fixed_buffers && in_ring
                     ? slot_buffer(io, (uint32_t)((uint64_t)(dst - io->data) / io->slot_stride))
                     : -1;

    if (buffer >= 0)
        io_uring_prep_read_fixed(sqe, fd, dst, chunk, r->offset + r->done, buffer);
    else
        io_uring_prep_read(sqe, fd, dst, chunk, r->offset + r->done);
    if (r->fixed_file >= 0)
        sqe->flags |= IOSQE_FIXED_FILE;
    io_uring_sqe_set_data64(sqe, index);
}

static bool not_for_uring(const struct br_read *r)
{
    return r->path != PATH_URING || r->done == r->len;
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
    for (;;) {
        struct io_uring_cqe *cqe;
        unsigned head, seen = 0;
        int ret;

        /* Reads the page-cache copy served are done already; others go
         * through pread. */
        while (next < io->queued && not_for_uring(&io->queue[next]))
            next++;
        if (inflight == 0 && (rc != 0 || (n_again == 0 && next == io->queued)))
            break;
        while (rc == 0 && inflight < BR_IO_DEPTH && (n_again > 0 || next < io->queued)) {
            struct io_uring_sqe *sqe = io_uring_get_sqe(&io->uring);
            size_t index;
            if (!sqe)
                break; /* SQ full: submit what we have, then go on */
            index = n_again > 0 ? again[--n_again] : next++;
            prep_read(io, sqe, &io->queue[index], index);
            inflight++;
            while (next < io->queued && not_for_uring(&io->queue[next]))
                next++;
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

/* ---- copies out of the page cache ---- */

/* The copy that a SIGBUS on this thread abandons (NULL outside copies).
 * Volatile, and fenced around the memcpy: the compiler sees no reader of
 * it between the set and the reset, and would drop the set. */
static _Thread_local sigjmp_buf *volatile copy_escape;
/* What SIGBUS did before on_sigbus, and the process that installed it
 * (0: none). A forked child inherits both, not necessarily the handler (a
 * worker resets every handler after the fork): the pid tells them apart. */
static struct sigaction previous_sigbus;
static _Atomic int32_t sigbus_owner;

/* A SIGBUS that is not a copy's fault is not ours: hand it to whoever had
 * SIGBUS, or do what the default would. */
static void on_sigbus(int sig, siginfo_t *info, void *context)
{
    /* si_code > 0: raised by the kernel for a fault of this thread; <= 0:
     * sent (kill, raise, sigqueue), which no copy can cause. */
    const bool fault = info && info->si_code > 0;
    sigjmp_buf *escape = copy_escape;
    if (escape && fault) {
        copy_escape = NULL;
        siglongjmp(*escape, 1);
    }
    if (previous_sigbus.sa_handler == SIG_IGN && !fault) {
        /* Ignored, as before us (a fault cannot be ignored: below). */
    } else if (previous_sigbus.sa_handler == SIG_DFL || previous_sigbus.sa_handler == SIG_IGN) {
        /* Default action. Returning re-runs a faulting access, which now
         * kills the process as it would have without us; a sent signal
         * does not come back by itself. */
        signal(SIGBUS, SIG_DFL);
        if (!fault)
            raise(SIGBUS);
    } else if (previous_sigbus.sa_flags & SA_SIGINFO) {
        previous_sigbus.sa_sigaction(sig, info, context);
    } else {
        previous_sigbus.sa_handler(sig);
    }
}

static bool sigbus_is_ours(const struct sigaction *sa)
{
    return (sa->sa_flags & SA_SIGINFO) && sa->sa_sigaction == on_sigbus;
}

/* Whether on_sigbus handles SIGBUS now, installing it if need be: before
 * a batch's copies, at most every BR_IO_SIGBUS_CHECK_NS per reader, one
 * sigaction() looks. Copies are only safe with it
 * in place: a worker's handlers were reset to the default after the fork
 * even if the trainer had installed ours, and in one process, a handler set
 * after ours (a test framework's, a crash reporter's) would take a copy's
 * fault for a crash. Ours is installed over whatever SIGBUS had the first
 * time in a process, and again where it has gone back to the default; a
 * handler set after ours is left alone (it may pass signals on to ours:
 * installing ours over it would make a loop), and batches read instead.
 *
 * NODEFER: the jump out of the handler does not restore the signal mask
 * (sigsetjmp(.., 0) saves none, to keep a syscall off every batch), so
 * SIGBUS must not be blocked while the handler runs. */
static bool sigbus_ready(void)
{
    struct sigaction cur, sa, old;

    if (sigaction(SIGBUS, NULL, &cur) != 0)
        return false;
    if (sigbus_is_ours(&cur))
        return true;
    if (cur.sa_handler != SIG_DFL && br__load_acquire_i32(&sigbus_owner) == (int32_t)getpid())
        return false;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sigbus;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGBUS, &sa, &old) != 0)
        return false;
    /* Another thread may have installed ours meanwhile: never chain to it. */
    if (!sigbus_is_ours(&old))
        previous_sigbus = old;
    br__store_release_i32(&sigbus_owner, (int32_t)getpid());
    return true;
}

/* Populates our page tables for the pages of [first, first + n) known
 * resident and not populated yet (bit 0 set, bit 1 clear), one madvise
 * per run: the copies then pay no first-touch fault per page. A page
 * evicted since the scan is read in by it, as a copy's fault would. A
 * kernel without MADV_POPULATE_READ (EINVAL) is asked no more; a run cut
 * off by a truncation (EFAULT) or an I/O error is simply not populated:
 * the copy's guard deals with it. */
static void populate_region(br_io *io, struct br_mapped_file *m, uint64_t first, uint64_t n)
{
    uint64_t p = first;
    const uint64_t end = first + n;
    while (io->populate && p < end) {
        uint64_t run;
        while (p < end && (m->resident[p] & 3) != 1)
            p++;
        for (run = p; run < end && (m->resident[run] & 3) == 1; run++)
            ;
        if (run == p)
            break;
        if (madvise((void *)(m->base + p * io->page), (run - p) * io->page,
                    MADV_POPULATE_READ) == 0) {
            for (uint64_t k = p; k < run; k++)
                m->resident[k] |= 2;
        } else if (errno == EINVAL) {
            io->populate = false;
        }
        p = run;
    }
}

/* Before copy r: pages known resident but not in our page tables (read
 * by this reader since the scan, or resident since an earlier populate)
 * are populated from r's first page on, up to BR_IO_POPULATE_AHEAD pages
 * and the end of its region: the next sequential copies find them too,
 * and the copy's time, which the choice of path measures, is the steady
 * state's. */
static void populate_ahead(br_io *io, const struct br_read *r)
{
    struct br_mapped_file *m = &io->maps[r->mapped];
    const uint64_t first = r->offset / io->page, last = (r->offset + r->len - 1) / io->page;
    const uint64_t region_end = (first / BR_IO_SCAN_REGION_PAGES + 1) * BR_IO_SCAN_REGION_PAGES;
    uint64_t end = first + (last - first + 1 > BR_IO_POPULATE_AHEAD ? last - first + 1
                                                                     : BR_IO_POPULATE_AHEAD);
    uint64_t p = first;
    while (p <= last && (m->resident[p] & 2))
        p++;
    if (p > last)
        return;
    if (end > region_end && region_end > last)
        end = region_end;
    if (end > m->pages)
        end = m->pages;
    populate_region(io, m, p, end - p);
}

/* Scans the residency of every region that read r touches and that is
 * due for a scan at `now`. It populates nothing: populate_ahead maps what
 * the copies read, as they need it. */
static void scan_residency(br_io *io, struct br_mapped_file *m, const struct br_read *r,
                           uint64_t now)
{
    const uint64_t last = (r->offset + r->len - 1) / io->page / BR_IO_SCAN_REGION_PAGES;
    for (uint64_t region = r->offset / io->page / BR_IO_SCAN_REGION_PAGES; region <= last;
         region++) {
        const uint64_t first = region * BR_IO_SCAN_REGION_PAGES;
        const uint64_t n = m->pages - first < BR_IO_SCAN_REGION_PAGES ? m->pages - first
                                                                      : BR_IO_SCAN_REGION_PAGES;
        uint8_t *vec = m->resident + first;
        uint64_t t0, t1;
        if (now < m->next_scan_ns[region])
            continue;
        if (!io->scan_before)
            io->scan_before = malloc(BR_IO_SCAN_REGION_PAGES);
        t0 = br__now_ns();
        if (io->scan_before)
            memcpy(io->scan_before, vec, n);
        if (mincore((void *)(m->base + first * io->page), n * io->page, vec)) {
            memset(vec, 0, n); /* unknown: read them all */
        } else {
            /* mincore leaves bits 1-7 undefined: keep ours, for pages
             * still resident (a page evicted since is unmapped too). */
            for (uint64_t k = 0; k < n; k++)
                vec[k] = (uint8_t)((vec[k] & 1) |
                                   (io->scan_before && (vec[k] & 1) ? io->scan_before[k] & 2 : 0));
        }
        t1 = br__now_ns();
        m->next_scan_ns[region] = t1 + (100 * (t1 - t0) > BR_IO_SCAN_MIN_NS ? 100 * (t1 - t0)
                                                                            : BR_IO_SCAN_MIN_NS);
    }
}

/* Whether read r may be served by a copy: inside the file, every page
 * resident at the last scan or read since. */
static bool copyable(const br_io *io, const struct br_read *r)
{
    const struct br_mapped_file *m;
    uint64_t page, p, last;
    if (r->mapped < 0 || r->done)
        return false;
    m = &io->maps[r->mapped];
    if (r->offset + r->len > m->size)
        return false;
    page = io->page;
    last = (r->offset + r->len - 1) / page;
    for (p = r->offset / page; p <= last; p++)
        if (!(m->resident[p] & 1))
            return false;
    return true;
}

/* Marks the pages of read r resident: a buffered read leaves them in the
 * page cache, so the next read of them can be a copy. */
static void mark_resident(br_io *io, const struct br_read *r)
{
    const struct br_mapped_file *m = &io->maps[r->mapped];
    const uint64_t page = io->page;
    uint64_t last = (r->offset + r->len - 1) / page;
    if (r->len == 0 || r->offset + r->len > m->mapped)
        return;
    for (uint64_t p = r->offset / page; p <= last; p++)
        m->resident[p] |= 1;
}

/* The page just after read r's last page, if the copy may probe it: it is
 * inside the file and was resident at the last scan (a probe should not
 * wait for the disk; one of a page evicted since then does, once, and is
 * still correct). UINT64_MAX otherwise. */
static uint64_t probe_page(const br_io *io, const struct br_read *r)
{
    const struct br_mapped_file *m = &io->maps[r->mapped];
    const uint64_t next = (r->offset + r->len - 1) / io->page + 1;
    return next < m->pages && (next + 1) * io->page <= m->size && (m->resident[next] & 1)
               ? next
               : UINT64_MAX;
}

/* Where a read goes when its copy failed (it faulted, or the file no
 * longer covers it): the read path, which reports what went wrong. */
static void copy_failed(br_io *io, struct br_read *r)
{
    r->done = 0;
    r->path = io->backend == BR_IO_URING ? PATH_URING : PATH_PREAD;
    if (r->choice)
        r->choice->spoiled = true;
}

/* Copies every read planned as a copy; returns how many. A read whose
 * copy faulted (SIGBUS) or that the file no longer covers afterwards goes
 * to the read path (copy_failed).
 *
 * "Covers afterwards": a file cut inside the last page of a copied range
 * reads as zeros there, with no SIGBUS. Truncation unmaps the pages past
 * the new end before it zeroes the tail of the page it ends in
 * (truncate_pagecache), so a copy that saw zeros is followed by a fault on
 * the page after the range: in a batch of few copies each copy reads one
 * byte of that page (a probe; it is the next sequential batch's first page
 * anyway), and only where there is no such page (the file's last) does the
 * file's size get checked with fstat. A batch of many copies checks the
 * size once instead: one fstat is cheaper than many probes of scattered
 * pages, each a possible page-table walk or fault. */
static size_t copy_resident(br_io *io, size_t planned)
{
    volatile size_t i = 0;
    size_t copies = 0;
    volatile uint64_t check_size = 0; /* bit per map whose size to check */
    const bool probe = planned <= BR_IO_PROBE_MAX_COPIES;
    sigjmp_buf escape;

    if (sigsetjmp(escape, 0)) {
        /* The copy of read i faulted: its pages are gone or the file is
         * shorter. Forget them until the next scan; the read path says why. */
        struct br_read *r = &io->queue[i];
        struct br_mapped_file *m = &io->maps[r->mapped];
        const uint64_t first = r->offset / io->page;
        memset(m->resident + first, 0, (r->offset + r->len - 1) / io->page - first + 1);
        copy_failed(io, r);
        check_size |= UINT64_C(1) << r->mapped;
        i = i + 1;
    }
    for (; i < io->queued; i = i + 1) {
        struct br_read *r = &io->queue[i];
        if (r->path != PATH_COPY)
            continue;
        run_next(io, r, PATH_COPY);
        for (size_t k = i + 1; k < io->queued && k <= i + BR_IO_PREFETCH_AHEAD; k++) {
            const struct br_read *n = &io->queue[k];
            if (n->path == PATH_COPY)
                __builtin_prefetch(io->maps[n->mapped].base + n->offset, 0, 0);
        }
        const uint64_t after = probe ? probe_page(io, r) : UINT64_MAX;
        copy_escape = &escape;
        atomic_signal_fence(memory_order_seq_cst);
        memcpy(r->dst, io->maps[r->mapped].base + r->offset, r->len);
        /* After the copy's loads (x86 and the C model keep a volatile
         * load after the copy's), inside the SIGBUS guard. */
        if (after != UINT64_MAX)
            (void)*(const volatile uint8_t *)(io->maps[r->mapped].base + after * io->page);
        atomic_signal_fence(memory_order_seq_cst);
        copy_escape = NULL;
        r->done = r->len;
        if (after == UINT64_MAX)
            check_size |= UINT64_C(1) << r->mapped;
    }
    copy_escape = NULL;
    runs_end(io, PATH_COPY);
    /* A file cut short before a copy reads as zeros past its end inside
     * the last page (no SIGBUS there): check that the file still covers
     * every copied range, and read again what it does not. */
    for (unsigned k = 0; k < io->nmaps; k++) {
        struct br_mapped_file *m = &io->maps[k];
        struct stat st;
        if (!(check_size & (UINT64_C(1) << k)) || fstat(m->fd, &st) != 0)
            continue;
        if ((uint64_t)st.st_size < m->size)
            m->size = (uint64_t)st.st_size;
    }
    for (size_t k = 0; k < io->queued; k++) {
        struct br_read *r = &io->queue[k];
        if (r->path != PATH_COPY || r->done != r->len)
            continue;
        if (r->offset + r->len > io->maps[r->mapped].size)
            copy_failed(io, r);
        else
            copies++;
    }
    return copies;
}

/* ---- the measured choice of a path ---- */

/* Reads up to 16 KiB, up to 256 KiB, and larger. */
static unsigned size_class(uint64_t len)
{
    return len <= (16u << 10) ? 0 : len <= (256u << 10) ? 1 : 2;
}

/* A path's cost: the lowest of its latest batches' (ns per byte). A
 * batch that was preempted or interrupted only took longer; the lowest is
 * the path's own cost, and every path is judged the same way. */
static double path_cost(const struct br_path_choice *c, unsigned p)
{
    float low = c->cost[p][0];
    for (unsigned k = 1; k < c->samples[p]; k++)
        if (c->cost[p][k] < low)
            low = c->cost[p][k];
    return low;
}

/* The cheapest measured path of `mask`; the chosen one stays unless
 * another is cheaper by BR_IO_SWITCH_MARGIN. PATHS if none is measured. */
static uint8_t cheapest(const struct br_path_choice *c, unsigned mask)
{
    uint8_t best = PATHS;
    double best_cost = 0;
    if (c->chosen < PATHS && (mask >> c->chosen & 1) && c->samples[c->chosen]) {
        best = c->chosen;
        best_cost = path_cost(c, best) * BR_IO_SWITCH_MARGIN;
    }
    for (uint8_t p = 0; p < PATHS; p++) {
        double cost;
        if (p == c->chosen || !(mask >> p & 1) || !c->samples[p])
            continue;
        cost = path_cost(c, p);
        if (best == PATHS || cost < best_cost)
            best = p, best_cost = cost;
    }
    return best;
}

/* Sets c->path for this batch: every candidate in `mask` is measured
 * first (in the order of the fixed policy: copy, io_uring, pread), then
 * the cheapest runs, and now and then another is tried again. */
static void choose_path(br_io *io, struct br_path_choice *c, unsigned mask, uint64_t now)
{
    c->batch = io->batches;
    c->batch_bytes = 0;
    c->batch_ns = 0;
    c->spoiled = false;
    if (c->trial < PATHS) {
        if (c->trial_left > 0 && (mask >> c->trial & 1)) {
            c->trial_left--;
            c->path = c->trial;
            return;
        }
        c->trial = PATHS;
        c->chosen = cheapest(c, mask);
    }
    if (c->chosen == PATHS)
        for (uint8_t p = 0; p < PATHS; p++)
            if ((mask >> p & 1) && c->samples[p] < BR_IO_TRIAL_WAITS) {
                c->path = p;
                return;
            }
    if (c->chosen >= PATHS || !(mask >> c->chosen & 1))
        c->chosen = cheapest(c, mask);
    if (c->chosen >= PATHS) {
        /* Nothing measured among these candidates (a cell whose first
         * batches had other ones): measure the first. */
        c->path = (uint8_t)__builtin_ctz(mask);
        return;
    }
    c->path = c->chosen;
    if (++c->since_trial >= BR_IO_TRIAL_MIN_WAITS && now >= c->next_trial_ns) {
        /* The next candidate after the one tried last, round the paths. */
        for (unsigned k = 1; k <= PATHS; k++) {
            const uint8_t p = (uint8_t)((c->last_trial + k) % PATHS);
            if (p == c->chosen || !(mask >> p & 1))
                continue;
            c->last_trial = p;
            c->trial = p;
            c->trial_left = BR_IO_TRIAL_WAITS - 1;
            c->samples[p] = 0;
            c->next[p] = 0;
            c->path = p;
            break;
        }
        c->since_trial = 0;
        c->next_trial_ns = now + BR_IO_TRIAL_NS;
    }
}

/* Plans every queued read's path: scans the residency the copies need,
 * then follows BR_IO or the measured choice of the read's cell. Returns
 * how many reads are planned as copies. */
static size_t plan_paths(br_io *io, uint64_t now)
{
    size_t copies = 0;
    bool copies_ok = false;

    for (size_t k = 0; k < io->queued; k++) {
        struct br_read *r = &io->queue[k];
        if (r->mapped < 0 || r->offset + r->len > io->maps[r->mapped].size)
            continue;
        scan_residency(io, &io->maps[r->mapped], r, now);
        copies_ok = true;
    }
    /* sigbus_ready is a syscall: ask it at most every BR_IO_SIGBUS_CHECK_NS
     * per reader (a reader is made in its own process, after any fork). */
    if (copies_ok && (!io->sigbus_ok || now - io->sigbus_checked_ns >= BR_IO_SIGBUS_CHECK_NS)) {
        io->sigbus_ok = sigbus_ready();
        io->sigbus_checked_ns = now;
    }
    copies_ok = copies_ok && io->sigbus_ok;
    for (size_t k = 0; k < io->queued; k++) {
        struct br_read *r = &io->queue[k];
        const bool resident = copies_ok && copyable(io, r);
        unsigned mask = 1u << PATH_PREAD;
        r->choice = NULL;
        if (io->backend == BR_IO_URING)
            mask |= 1u << PATH_URING;
        if (resident)
            mask |= 1u << PATH_COPY;
        if (io->force == 'p' || io->force == 'u') {
            r->path = (uint8_t)(mask & (1u << PATH_URING) && io->force == 'u' ? PATH_URING
                                                                                : PATH_PREAD);
        } else if (io->force == 'c') {
            r->path = (uint8_t)(resident ? PATH_COPY : __builtin_ctz(mask & ~(1u << PATH_COPY)));
        } else {
            struct br_path_choice *c =
                &io->paths[r->paths].cell[size_class(r->len)][resident ? 1 : 0];
            if (c->batch != io->batches)
                choose_path(io, c, mask, now);
            r->choice = c;
            r->path = c->path;
        }
        if (r->path == PATH_COPY)
            populate_ahead(io, r);
        copies += r->path == PATH_COPY;
    }
    return copies;
}

/* The forced policies keep the rule of the fixed one: io_uring's gain is
 * many reads per syscall; a lone read is one syscall either way, and
 * pread skips the ring's bookkeeping. */
static void lone_read_to_pread(br_io *io)
{
    size_t left = 0, last = 0;
    for (size_t k = 0; k < io->queued; k++)
        if (io->queue[k].done < io->queue[k].len)
            left++, last = k;
    if (left == 1 && io->queue[last].path == PATH_URING)
        io->queue[last].path = PATH_PREAD;
}

/* Adds this batch's cost to the choice of every read's cell: the time of
 * its runs (run_next) and a share, by bytes, of the rest of its phase (all
 * of io_uring's, whose reads overlap; a submit, a size check). */
static void record_costs(br_io *io, const uint64_t phase_ns[PATHS],
                         const uint64_t phase_bytes[PATHS])
{
    for (size_t k = 0; k < io->queued; k++) {
        const struct br_read *r = &io->queue[k];
        struct br_path_choice *c = r->choice;
        if (c && r->path == c->path && phase_bytes[r->path]) {
            const uint64_t rest = phase_ns[r->path] > io->run_charged_ns[r->path]
                                      ? phase_ns[r->path] - io->run_charged_ns[r->path]
                                      : 0;
            c->batch_bytes += r->len;
            c->batch_ns += (double)rest * (double)r->len / (double)phase_bytes[r->path];
        }
    }
    for (size_t k = 0; k < io->queued; k++) {
        struct br_path_choice *c = io->queue[k].choice;
        if (!c || c->batch != io->batches || !c->batch_bytes)
            continue;
        if (!c->spoiled) {
            c->cost[c->path][c->next[c->path]] = (float)(c->batch_ns / (double)c->batch_bytes);
            c->next[c->path] = (uint8_t)((c->next[c->path] + 1) % BR_IO_TRIAL_WAITS);
            if (c->samples[c->path] < BR_IO_TRIAL_WAITS)
                c->samples[c->path]++;
        }
        c->batch_bytes = 0; /* recorded */
    }
}

BR_API int br_io_wait(br_io *io)
{
    uint64_t bytes = 0, phase_ns[PATHS] = {0}, phase_bytes[PATHS] = {0}, t0, t1, t2, t3;
    size_t planned, copies = 0, preads = 0;
    int rc = 0;
    if (!io)
        return -EINVAL;
    if (io->queued == 0)
        return 0;
    io->batches++;
    planned = plan_paths(io, br__now_ns());
    t0 = br__now_ns(); /* the scan is not the copies' cost */
    memset(io->run_charged_ns, 0, sizeof io->run_charged_ns);
    if (planned) {
        runs_begin(io, t0);
        copies = copy_resident(io, planned);
    }
    t1 = br__now_ns();
    if (io->force)
        lone_read_to_pread(io);
    for (size_t k = 0; k < io->queued; k++) {
        const struct br_read *r = &io->queue[k];
        phase_bytes[r->path] += r->path == PATH_COPY ? r->done : r->len - r->done;
    }
    if (phase_bytes[PATH_URING])
        rc = wait_uring(io);
    t2 = br__now_ns();
    if (rc == 0 && phase_bytes[PATH_PREAD]) {
        runs_begin(io, t2);
        rc = wait_pread(io);
        runs_end(io, PATH_PREAD);
    }
    t3 = br__now_ns();
    if (rc == 0 && !io->force) {
        phase_ns[PATH_COPY] = t1 - t0;
        phase_ns[PATH_URING] = t2 - t1;
        phase_ns[PATH_PREAD] = t3 - t2;
        record_costs(io, phase_ns, phase_bytes);
    }
    if (rc == 0 && copies < io->queued && io->nmaps)
        for (size_t i = 0; i < io->queued; i++)
            if (io->queue[i].mapped >= 0 && io->queue[i].path != PATH_COPY)
                mark_resident(io, &io->queue[i]);
    if (io->rec) {
        for (size_t i = 0; i < io->queued; i++) {
            bytes += io->queue[i].done;
            preads += io->queue[i].path == PATH_PREAD;
        }
        br__add_relaxed_u64(&io->rec->io_reads, io->queued);
        br__add_relaxed_u64(&io->rec->io_copies, copies);
        br__add_relaxed_u64(&io->rec->io_preads, preads);
        br__add_relaxed_u64(&io->rec->io_bytes, bytes);
    }
    io->queued = 0;
    return rc;
}
