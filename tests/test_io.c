/* SPDX-License-Identifier: MIT */
/*
 * The file reader (br_io) as a loader uses it: reads at arbitrary offsets
 * and lengths into the slot, many per batch, through io_uring and through
 * the forced pread path, with 0, 1 and 3 workers; what it refuses (a
 * destination outside the job's slot, a bad descriptor); a read that runs
 * past the end of the file; files registered from worker_init; reads of
 * three sizes from a registered file under the path measured per size
 * (every path tried, every byte the file's); a size class that is a
 * minority of every batch measured on the read paths too; and the per-worker counters
 * that say which path ran and what it read.
 *
 * Loaders run in worker processes: what they observe goes to a shared page
 * (MAP_SHARED), and the test asserts on it after the batches arrived.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "synth.h"
#include "test_fs.h"
#include "test_util.h"

#define SEED 5u
#define FILE_BYTES ((1u << 20) + 123u)
#define MAX_LEN 5000u
#define SLOTS 4u

static char dir[4096];
static char path[4200];
static uint8_t *content; /* the file's bytes, for the checks */

/* What loaders need; set before br_open, so workers get it at fork. */
static struct {
    int fd;
    const char *backend; /* the name br_io_backend_name must give */
    size_t slot_bytes;
} cfg;

/* Per-seq findings of the loaders, in a shared page. */
#define MAX_SEQ 256u
struct findings {
    _Atomic int32_t outside_rc[MAX_SEQ];  /* read straddling the slot's end */
    _Atomic int32_t before_rc[MAX_SEQ];   /* read into the previous slot */
    _Atomic int32_t oversize_rc[MAX_SEQ]; /* read longer than the slot */
    _Atomic int32_t private_rc[MAX_SEQ];  /* read into private memory */
    _Atomic int32_t private_ok[MAX_SEQ];  /* ...and its bytes arrived */
    _Atomic int32_t empty_rc[MAX_SEQ];    /* wait with nothing queued */
    _Atomic int32_t zero_rc[MAX_SEQ];     /* a 0-byte read */
    _Atomic int32_t bad_fd_rc[MAX_SEQ];   /* fd -1 */
    _Atomic uint32_t init_calls;
    _Atomic uint32_t fini_calls;
    _Atomic uint32_t init_workers; /* bit i: worker i was initialised */
    char outside_msg[256];         /* br_io_last_error after the first refusal */
};
static struct findings *fnd;

/* Offset and length of "sample" id in the file: unaligned, overlapping,
 * anywhere in it, 1 .. MAX_LEN bytes. */
static uint64_t off_of(uint64_t id)
{
    return (id * 7919u * 13u + 5u) % (FILE_BYTES - MAX_LEN);
}

static size_t len_of(uint64_t id)
{
    return 1 + (size_t)((id * 2654435761u) % MAX_LEN);
}

static int group_setup(void **state)
{
    (void)state;
    tf_tmpdir(dir, sizeof dir, "br-test-io");
    snprintf(path, sizeof path, "%s/data.bin", dir);
    content = malloc(FILE_BYTES);
    assert_non_null(content);
    br_synth_fill(content, FILE_BYTES, SEED, 0);
    tf_write(path, content, FILE_BYTES);
    cfg.fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(cfg.fd >= 0);
    /* Shared with the workers; for the whole group, so not a tu_ page
     * (those are given back after each test). */
    fnd = mmap(NULL, sizeof *fnd, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(fnd != MAP_FAILED);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    close(cfg.fd);
    munmap(fnd, sizeof *fnd);
    free(content);
    tf_remove_tree(dir);
    return 0;
}

static int fail_job(br_job *job, int rc, const char *what)
{
    snprintf(job->err, job->err_cap, "%s: %s", what, br_io_last_error(job->io));
    return rc;
}

/* Each id: one read of len_of(id) bytes at off_of(id), packed. */
static int scattered_loader(br_job *job, void *user)
{
    uint8_t *out = job->out;
    uint64_t pos = 0;
    int rc;
    (void)user;
    for (uint32_t i = 0; i < job->count; i++) {
        size_t len = len_of(job->ids[i]);
        job->offsets[i] = pos;
        rc = br_io_read(job->io, cfg.fd, off_of(job->ids[i]), len, out + pos, job->ids[i]);
        if (rc)
            return fail_job(job, rc, "br_io_read");
        pos += len;
    }
    job->offsets[job->count] = pos;
    job->has_offsets = true;
    rc = br_io_wait(job->io);
    if (rc)
        return fail_job(job, rc, "br_io_wait");
    if (strcmp(br_io_backend_name(job->io), cfg.backend)) {
        snprintf(job->err, job->err_cap, "the reader uses %s, expected %s",
                 br_io_backend_name(job->io), cfg.backend);
        return -EPROTO;
    }
    job->size = (size_t)pos;
    return 0;
}

/* Checks every batch of a scattered run; returns the bytes they held. */
static uint64_t check_scattered(br_gen *g, const uint64_t *ids, size_t n_ids, uint32_t batch)
{
    uint64_t bytes = 0;
    br_batch b;
    int rc;
    for (uint64_t seq = 0; seq * batch < n_ids; seq++) {
        rc = br_next(g, &b);
        if (rc)
            fail_msg("batch %" PRIu64 ": %s: %s", seq, br_err_name(rc), br_last_error(g));
        assert_int_equal(b.seq, seq);
        assert_non_null(b.offsets);
        for (uint32_t i = 0; i < b.count; i++) {
            uint64_t id = b.ids[i];
            assert_int_equal(id, ids[seq * batch + i]);
            assert_int_equal(b.offsets[i + 1] - b.offsets[i], len_of(id));
            if (memcmp((const uint8_t *)b.data + b.offsets[i], content + off_of(id), len_of(id)) !=
                0)
                fail_msg("batch %" PRIu64 ": id %" PRIu64 " (%zu bytes at file offset %" PRIu64
                         ") differs from the file",
                         seq, id, len_of(id), off_of(id));
            bytes += len_of(id);
        }
    }
    assert_int_equal(br_next(g, &b), BR_EOF);
    return bytes;
}

static uint64_t *make_ids(size_t n)
{
    uint64_t *ids = malloc(n * sizeof *ids);
    assert_non_null(ids);
    for (size_t i = 0; i < n; i++)
        ids[i] = (i * 37u) % 1009u; /* scrambled, some repeated */
    return ids;
}

/* Batches of 100 reads: more than the reader keeps in flight at once. */
static void scattered(enum tf_backend backend)
{
    static const uint32_t workers[] = {0, 1, 3};
    const size_t n = 1200;
    const uint32_t batch = 100;
    uint64_t *ids = make_ids(n);

    for (size_t w = 0; w < sizeof workers / sizeof workers[0]; w++) {
        br_options opt;
        br_gen *g;
        tu_leaks leaks;
        uint64_t bytes, reads = 0, read_bytes = 0;

        tu_leaks_begin(&leaks);
        tf_backend_begin(backend);
        cfg.backend = tf_backend_name(backend);
        br_options_init(&opt);
        opt.batch_size = batch;
        opt.workers = workers[w];
        opt.epochs = 1;
        opt.slot_bytes = batch * MAX_LEN;
        assert_int_equal(br_open(&g, scattered_loader, NULL, ids, NULL, n, &opt), 0);
        tu_track(g);
        bytes = check_scattered(g, ids, n, batch);
        for (uint32_t i = 0; i < workers[w]; i++) {
            br_worker_stats ws;
            assert_int_equal(br_worker_stats_get(g, i, &ws), 0);
            /* A worker that started after the others had taken every
             * batch never needed its reader. */
            if (ws.batches > 0 || ws.io_backend != BR_IO_NONE)
                assert_int_equal(ws.io_backend, tf_backend_code(backend));
            reads += ws.io_reads;
            read_bytes += ws.io_bytes;
        }
        if (workers[w] > 0) {
            /* One epoch: every sample read exactly once, by some worker. */
            assert_int_equal(reads, n);
            assert_int_equal(read_bytes, bytes);
        }
        tu_close(g);
        tf_backend_end();
        tu_leaks_check(&leaks);
    }
    free(ids);
}

static void test_io_scattered_uring(void **state)
{
    (void)state;
    scattered(TF_URING);
}

static void test_io_scattered_pread(void **state)
{
    (void)state;
    scattered(TF_PREAD);
}

/* What the reader refuses, and what it accepts, from inside a job. */
static int bounds_loader(br_job *job, void *user)
{
    uint8_t *out = job->out;
    const uint64_t s = job->seq;
    uint8_t private_buf[64];
    int rc;
    (void)user;

    fnd->empty_rc[s] = br_io_wait(job->io);
    fnd->zero_rc[s] = br_io_read(job->io, cfg.fd, 0, 0, out, 0);
    fnd->bad_fd_rc[s] = br_io_read(job->io, -1, 0, 8, out, 0);
    /* Straddles the end of this job's slot. */
    fnd->outside_rc[s] = br_io_read(job->io, cfg.fd, 0, 20, out + job->cap - 10, 1);
    if (s == 0)
        snprintf(fnd->outside_msg, sizeof fnd->outside_msg, "%s", br_io_last_error(job->io));
    /* The end of the slot before this one (slots are consecutive). */
    fnd->before_rc[s] = s % SLOTS ? br_io_read(job->io, cfg.fd, 0, 8, out - 8, 2) : -EINVAL;
    fnd->oversize_rc[s] = br_io_read(job->io, cfg.fd, 0, job->cap + 1, out, 3);
    /* Outside the ring, memory is the loader's own business. */
    fnd->private_rc[s] = br_io_read(job->io, cfg.fd, 1000, sizeof private_buf, private_buf, 4);
    /* And the job's real read, after all that. */
    rc = br_io_read(job->io, cfg.fd, off_of(job->ids[0]), len_of(job->ids[0]), out, job->ids[0]);
    if (rc == 0)
        rc = br_io_wait(job->io);
    if (rc)
        return fail_job(job, rc, "the job's own read");
    fnd->private_ok[s] = !memcmp(private_buf, content + 1000, sizeof private_buf);
    job->size = len_of(job->ids[0]);
    return 0;
}

static void bounds(enum tf_backend backend, uint32_t workers)
{
    const size_t n = 12;
    uint64_t *ids = make_ids(n);
    br_options opt;
    br_batch b;
    br_gen *g;

    memset(fnd, 0, sizeof *fnd);
    tf_backend_begin(backend);
    br_options_init(&opt);
    opt.batch_size = 1;
    opt.workers = workers;
    opt.slots = SLOTS;
    opt.epochs = 1;
    opt.slot_bytes = 8192;
    assert_int_equal(br_open(&g, bounds_loader, NULL, ids, NULL, n, &opt), 0);
    tu_track(g);
    for (uint64_t seq = 0; seq < n; seq++) {
        int rc = br_next(g, &b);
        if (rc)
            fail_msg("batch %" PRIu64 ": %s: %s", seq, br_err_name(rc), br_last_error(g));
        assert_int_equal(b.size, len_of(ids[seq]));
        assert_memory_equal(b.data, content + off_of(ids[seq]), b.size);
        assert_int_equal(fnd->empty_rc[seq], 0);
        assert_int_equal(fnd->zero_rc[seq], 0);
        assert_int_equal(fnd->bad_fd_rc[seq], -EINVAL);
        assert_int_equal(fnd->outside_rc[seq], -EINVAL);
        assert_int_equal(fnd->before_rc[seq], -EINVAL);
        assert_int_equal(fnd->oversize_rc[seq], -EINVAL);
        assert_int_equal(fnd->private_rc[seq], 0);
        assert_true(fnd->private_ok[seq]);
    }
    assert_int_equal(br_next(g, &b), BR_EOF);
    /* The refusal says what and why. */
    tu_assert_contains(fnd->outside_msg, "sample 1");
    tu_assert_contains(fnd->outside_msg, "outside");
    tu_close(g);
    tf_backend_end();
    free(ids);
}

static void test_io_bounds_uring(void **state)
{
    (void)state;
    bounds(TF_URING, 1);
    bounds(TF_URING, 0);
}

static void test_io_bounds_pread(void **state)
{
    (void)state;
    bounds(TF_PREAD, 1);
    bounds(TF_PREAD, 0);
}

/* Reads that the file cannot satisfy, one case per id. 41 crosses the end:
 * a short read comes back, the rest is asked for again and gets 0 bytes.
 * 42 starts past the end. 43 reads a descriptor that is not open. */
#define NOT_OPEN_FD 987
static int failing_loader(br_job *job, void *user)
{
    (void)user;
    const uint64_t id = job->ids[0];
    int fd = id == 43 ? NOT_OPEN_FD : cfg.fd;
    uint64_t off = id == 42 ? FILE_BYTES + 10 : FILE_BYTES - 100;
    int rc = br_io_read(job->io, fd, off, 200, job->out, id);
    if (rc == 0)
        rc = br_io_wait(job->io);
    if (rc == 0) {
        snprintf(job->err, job->err_cap, "the read of sample %" PRIu64 " succeeded", id);
        return -EPROTO;
    }
    return fail_job(job, rc, "as expected");
}

static void failing(enum tf_backend backend)
{
    static const struct {
        uint64_t id;
        const char *code, *text;
    } cases[] = {
        /* The resubmitted rest starts where the short read ended. */
        {41, "[ENODATA]", "ends at offset 1048699"},
        {42, "[ENODATA]", "data.bin"},
        {43, "[EBADF]", "987"},
    };
    assert_int_equal(fcntl(NOT_OPEN_FD, F_GETFD), -1);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        for (uint32_t workers = 0; workers <= 1; workers++) {
            char want[64];
            br_options opt;
            br_batch b;
            br_gen *g;
            int rc;
            tf_backend_begin(backend);
            br_options_init(&opt);
            opt.batch_size = 1;
            opt.workers = workers;
            opt.slot_bytes = 4096;
            assert_int_equal(br_open(&g, failing_loader, NULL, &cases[c].id, NULL, 1, &opt), 0);
            tu_track(g);
            rc = br_next(g, &b);
            tf_backend_end();
            if (rc != BR_ELOADER)
                fail_msg("sample %" PRIu64 ": expected BR_ELOADER, got %s: %s", cases[c].id,
                         br_err_name(rc), br_last_error(g));
            snprintf(want, sizeof want, "sample %" PRIu64, cases[c].id);
            tu_assert_contains(br_last_error(g), want);
            tu_assert_contains(br_last_error(g), cases[c].code);
            tu_assert_contains(br_last_error(g), cases[c].text);
            tu_close(g);
        }
    }
}

static void test_io_failing_uring(void **state)
{
    (void)state;
    failing(TF_URING);
}

static void test_io_failing_pread(void **state)
{
    (void)state;
    failing(TF_PREAD);
}

/* worker_init opens the file once per worker and registers it; the loader
 * reads through job->state; worker_fini closes it. */
struct worker_file {
    int fd;
    uint32_t worker;
};

static int open_file_init(br_io *io, uint32_t worker, void *user, void **state, char *err,
                          size_t err_cap)
{
    struct worker_file *wf = malloc(sizeof *wf);
    int rc;
    (void)user;
    if (!wf)
        return -ENOMEM;
    wf->worker = worker;
    wf->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (wf->fd < 0) {
        snprintf(err, err_cap, "open %s: %s", path, strerror(errno));
        free(wf);
        return -errno;
    }
    rc = br_io_register_file(io, wf->fd);
    if (rc) {
        snprintf(err, err_cap, "br_io_register_file: %s", br_strerror(rc));
        close(wf->fd);
        free(wf);
        return rc;
    }
    atomic_fetch_add(&fnd->init_calls, 1);
    atomic_fetch_or(&fnd->init_workers, 1u << worker);
    *state = wf;
    return 0;
}

static void close_file_fini(void *state, void *user)
{
    struct worker_file *wf = state;
    (void)user;
    close(wf->fd);
    free(wf);
    /* Workers end at about the same time: an atomic add, then the wake. */
    atomic_fetch_add(&fnd->fini_calls, 1);
    tu_futex_wake(&fnd->fini_calls);
}

static int state_loader(br_job *job, void *user)
{
    const struct worker_file *wf = job->state;
    uint8_t *out = job->out;
    uint64_t pos = 0;
    int rc;
    (void)user;
    if (!wf || wf->worker != job->worker) {
        snprintf(job->err, job->err_cap, "job->state is not this worker's");
        return -EPROTO;
    }
    for (uint32_t i = 0; i < job->count; i++) {
        job->offsets[i] = pos;
        rc = br_io_read(job->io, wf->fd, off_of(job->ids[i]), len_of(job->ids[i]), out + pos,
                        job->ids[i]);
        if (rc)
            return fail_job(job, rc, "br_io_read");
        pos += len_of(job->ids[i]);
    }
    job->offsets[job->count] = pos;
    job->has_offsets = true;
    rc = br_io_wait(job->io);
    if (rc)
        return fail_job(job, rc, "br_io_wait");
    if (strcmp(br_io_backend_name(job->io), cfg.backend)) {
        snprintf(job->err, job->err_cap, "the reader uses %s, expected %s",
                 br_io_backend_name(job->io), cfg.backend);
        return -EPROTO;
    }
    job->size = (size_t)pos;
    return 0;
}

static void registered(enum tf_backend backend)
{
    static const uint32_t workers[] = {0, 1, 3};
    const size_t n = 300;
    const uint32_t batch = 20;
    uint64_t *ids = make_ids(n);
    for (size_t w = 0; w < sizeof workers / sizeof workers[0]; w++) {
        br_options opt;
        br_gen *g;
        tu_leaks leaks;
        memset(fnd, 0, sizeof *fnd);
        tu_leaks_begin(&leaks);
        tf_backend_begin(backend);
        cfg.backend = tf_backend_name(backend);
        br_options_init(&opt);
        opt.batch_size = batch;
        opt.workers = workers[w];
        opt.epochs = 1;
        opt.slot_bytes = batch * MAX_LEN;
        opt.worker_init = open_file_init;
        opt.worker_fini = close_file_fini;
        assert_int_equal(br_open(&g, state_loader, NULL, ids, NULL, n, &opt), 0);
        tu_track(g);
        check_scattered(g, ids, n, batch);
        if (workers[w] > 0) {
            /* Each worker ran out of batches and ended normally. */
            if (!tu_wait_ge(&fnd->fini_calls, workers[w], TU_WAIT_MS))
                fail_msg("worker_fini ran %u times, expected %u", atomic_load(&fnd->fini_calls),
                         workers[w]);
        }
        tu_close(g);
        tf_backend_end();
        assert_int_equal(atomic_load(&fnd->init_calls), workers[w] ? workers[w] : 1);
        assert_int_equal(atomic_load(&fnd->init_workers), workers[w] ? (1u << workers[w]) - 1 : 1u);
        assert_int_equal(atomic_load(&fnd->fini_calls), workers[w] ? workers[w] : 1);
        tu_leaks_check(&leaks);
    }
    free(ids);
}

static void test_io_registered_uring(void **state)
{
    (void)state;
    registered(TF_URING);
}

static void test_io_registered_pread(void **state)
{
    (void)state;
    registered(TF_PREAD);
}

/* The path chosen per file and size (producer/io.c): a registered, cached
 * file read in three size classes, a class per batch in turn: 16 reads of
 * 4 KiB at scattered offsets, one of 100 KiB, one of 1 MiB. Over 90
 * batches the reader measures copies, io_uring and pread for each class
 * and then keeps one; whichever it takes, every byte must be the file's. */
#define SIZES_BATCHES 90u
#define SIZES_SMALL 4096u
#define SIZES_SMALL_READS 16u
#define SIZES_MID (100u << 10)
#define SIZES_LARGE (1u << 20)

static size_t sizes_reads(uint64_t seq)
{
    return seq % 3 == 0 ? SIZES_SMALL_READS : 1;
}

/* Read k of batch seq: its length and file offset. */
static size_t sizes_len(uint64_t seq)
{
    return seq % 3 == 0 ? SIZES_SMALL : seq % 3 == 1 ? SIZES_MID : SIZES_LARGE;
}

static uint64_t sizes_off(uint64_t seq, size_t k)
{
    return (seq * 7919u + k * 65537u) % (FILE_BYTES - sizes_len(seq));
}

static int sizes_loader(br_job *job, void *user)
{
    const struct worker_file *wf = job->state;
    const size_t len = sizes_len(job->seq);
    int rc;
    (void)user;
    for (size_t k = 0; k < sizes_reads(job->seq); k++) {
        rc = br_io_read(job->io, wf->fd, sizes_off(job->seq, k), len, (uint8_t *)job->out + k * len,
                        job->ids[0]);
        if (rc)
            return fail_job(job, rc, "br_io_read");
    }
    rc = br_io_wait(job->io);
    if (rc)
        return fail_job(job, rc, "br_io_wait");
    job->size = sizes_reads(job->seq) * len;
    return 0;
}

/* Reads the whole file into the page cache (again), so that copies from
 * its mapping are candidates for the reader's measured choice. */
static void warm_cache(int fd)
{
    uint8_t *warm = malloc(FILE_BYTES);
    assert_non_null(warm);
    assert_int_equal(pread(fd, warm, FILE_BYTES, 0), FILE_BYTES);
    free(warm);
}

static void sizes(enum tf_backend backend)
{
    uint64_t ids[SIZES_BATCHES];
    br_worker_stats ws;
    br_options opt;
    br_batch b;
    br_gen *g;
    tu_leaks leaks;
    char why[256];

    for (uint64_t i = 0; i < SIZES_BATCHES; i++)
        ids[i] = i;
    warm_cache(cfg.fd);
    memset(fnd, 0, sizeof *fnd);
    tu_leaks_begin(&leaks);
    tf_backend_begin(backend);
    br_options_init(&opt);
    opt.batch_size = 1;
    opt.workers = 1;
    opt.epochs = 1;
    opt.slot_bytes = SIZES_LARGE;
    opt.worker_init = open_file_init;
    opt.worker_fini = close_file_fini;
    assert_int_equal(br_open(&g, sizes_loader, NULL, ids, NULL, SIZES_BATCHES, &opt), 0);
    tu_track(g);
    for (uint64_t seq = 0; seq < SIZES_BATCHES; seq++) {
        const size_t len = sizes_len(seq);
        int rc = br_next(g, &b);
        if (rc)
            fail_msg("batch %" PRIu64 ": %s: %s", seq, br_err_name(rc), br_last_error(g));
        assert_int_equal(b.size, sizes_reads(seq) * len);
        for (size_t k = 0; k < sizes_reads(seq); k++)
            if (memcmp((const uint8_t *)b.data + k * len, content + sizes_off(seq, k), len) != 0)
                fail_msg("batch %" PRIu64 ", read %zu (%zu bytes at file offset %" PRIu64
                         "): differs from the file",
                         seq, k, len, sizes_off(seq, k));
    }
    assert_int_equal(br_next(g, &b), BR_EOF);
    assert_int_equal(br_worker_stats_get(g, 0, &ws), 0);
    print_message("%s: %" PRIu64 " reads, %" PRIu64 " copies, %" PRIu64 " through pread\n",
                  tf_backend_name(backend), ws.io_reads, ws.io_copies, ws.io_preads);
    assert_int_equal(ws.io_reads, (SIZES_BATCHES / 3) * (SIZES_SMALL_READS + 2));
    if (backend == TF_PREAD) {
        assert_int_equal(ws.io_preads, ws.io_reads);
        assert_int_equal(ws.io_copies, 0);
    } else {
        /* Each class tried every path before choosing. */
        assert_true(ws.io_copies > 0);
        assert_true(ws.io_preads > 0);
        if (tf_uring_available(why, sizeof why))
            assert_true(ws.io_copies + ws.io_preads < ws.io_reads);
    }
    tu_close(g);
    tf_backend_end();
    tu_leaks_check(&leaks);
}

static void test_io_sizes_measured(void **state)
{
    (void)state;
    sizes(TF_URING);
}

static void test_io_sizes_pread(void **state)
{
    (void)state;
    sizes(TF_PREAD);
}

/* A size class that is a minority in every batch is measured too: each
 * batch is 3 reads of 4 KiB and one of 64 KiB from the cached, registered
 * file, so the 64 KiB read's cell never has half of a batch's reads. Its
 * first path is a copy; measured, it must try the read paths as well
 * within MINORITY_BATCHES (a cell measures each path for a few batches),
 * where an unmeasured cell would keep copying for ever. slots = 1: the
 * worker loads batch k + 1 only after batch k was released, so the copy
 * counter read after batch k arrived is that of batches 0..k exactly. */
#define MINORITY_BATCHES 40u
#define MINORITY_SMALL 4096u
#define MINORITY_SMALL_READS 3u
#define MINORITY_LARGE (64u << 10)

static uint64_t minority_off(uint64_t seq, size_t k)
{
    const size_t len = k < MINORITY_SMALL_READS ? MINORITY_SMALL : MINORITY_LARGE;
    return (seq * 104729u + k * 262147u) % (FILE_BYTES - len);
}

static size_t minority_pos(size_t k)
{
    return k * MINORITY_SMALL;
}

static int minority_loader(br_job *job, void *user)
{
    const struct worker_file *wf = job->state;
    int rc;
    (void)user;
    for (size_t k = 0; k <= MINORITY_SMALL_READS; k++) {
        const size_t len = k < MINORITY_SMALL_READS ? MINORITY_SMALL : MINORITY_LARGE;
        rc = br_io_read(job->io, wf->fd, minority_off(job->seq, k), len,
                        (uint8_t *)job->out + minority_pos(k), job->ids[0]);
        if (rc)
            return fail_job(job, rc, "br_io_read");
    }
    rc = br_io_wait(job->io);
    if (rc)
        return fail_job(job, rc, "br_io_wait");
    job->size = minority_pos(MINORITY_SMALL_READS) + MINORITY_LARGE;
    return 0;
}

static void test_io_minority_measured(void **state)
{
    uint64_t ids[MINORITY_BATCHES], copies = 0;
    unsigned large_copied = 0, large_read = 0;
    br_worker_stats ws;
    br_options opt;
    br_batch b;
    br_gen *g;
    tu_leaks leaks;
    (void)state;

    for (uint64_t i = 0; i < MINORITY_BATCHES; i++)
        ids[i] = i;
    warm_cache(cfg.fd);
    memset(fnd, 0, sizeof *fnd);
    tu_leaks_begin(&leaks);
    assert_int_equal(unsetenv("BR_IO"), 0); /* the measured choice */
    br_options_init(&opt);
    opt.batch_size = 1;
    opt.workers = 1;
    opt.slots = 1;
    opt.epochs = 1;
    opt.slot_bytes = minority_pos(MINORITY_SMALL_READS) + MINORITY_LARGE;
    opt.worker_init = open_file_init;
    opt.worker_fini = close_file_fini;
    assert_int_equal(br_open(&g, minority_loader, NULL, ids, NULL, MINORITY_BATCHES, &opt), 0);
    tu_track(g);
    for (uint64_t seq = 0; seq < MINORITY_BATCHES; seq++) {
        int rc = br_next(g, &b);
        uint64_t now;
        if (rc)
            fail_msg("batch %" PRIu64 ": %s: %s", seq, br_err_name(rc), br_last_error(g));
        for (size_t k = 0; k <= MINORITY_SMALL_READS; k++) {
            const size_t len = k < MINORITY_SMALL_READS ? MINORITY_SMALL : MINORITY_LARGE;
            if (memcmp((const uint8_t *)b.data + minority_pos(k), content + minority_off(seq, k),
                       len) != 0)
                fail_msg("batch %" PRIu64 ", read %zu: differs from the file", seq, k);
        }
        assert_int_equal(br_worker_stats_get(g, 0, &ws), 0);
        now = ws.io_copies - copies;
        copies = ws.io_copies;
        /* Each cell's reads take one path per batch: 4 or 3 copies (the
         * large read copied or not), 1 or 0. */
        if (now != 0 && now != 1 && now != MINORITY_SMALL_READS && now != MINORITY_SMALL_READS + 1)
            fail_msg("batch %" PRIu64 ": %" PRIu64 " copies", seq, now);
        if (seq == 0)
            assert_int_equal(now, MINORITY_SMALL_READS + 1); /* every cell measures copies first */
        if (now == 1 || now == MINORITY_SMALL_READS + 1)
            large_copied++;
        else
            large_read++;
    }
    assert_int_equal(br_next(g, &b), BR_EOF);
    print_message("the 64 KiB read: copied in %u batches, read in %u\n", large_copied, large_read);
    if (large_read == 0)
        fail_msg("the 64 KiB read, a minority of every batch, was copied in all %u batches: "
                 "its cell was never measured on another path",
                 MINORITY_BATCHES);
    tu_close(g);
    tu_leaks_check(&leaks);
}

/* No reader at all outside a worker: the calls refuse a NULL reader. */
static void test_io_null_reader(void **state)
{
    (void)state;
    uint8_t buf[8];
    assert_int_equal(br_io_read(NULL, cfg.fd, 0, 8, buf, 0), -EINVAL);
    assert_int_equal(br_io_wait(NULL), -EINVAL);
    assert_non_null(br_io_last_error(NULL));
    assert_non_null(br_io_backend_name(NULL));
    assert_int_equal(br_io_register_file(NULL, cfg.fd), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_io_scattered_uring, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_io_scattered_pread, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_io_bounds_uring, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_io_bounds_pread, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_io_failing_uring, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_io_failing_pread, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_io_registered_uring, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_io_registered_pread, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_io_sizes_measured, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_io_sizes_pread, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_io_minority_measured, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_io_null_reader, tu_setup, tu_teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
