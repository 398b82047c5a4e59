/* SPDX-License-Identifier: MIT */
/*
 * The reader's copies out of the page cache (producer/io.c): a worker maps
 * every registered file and serves reads of resident pages with a memcpy.
 *
 * - Built-in datasets (records, indexed) over cached files: every byte
 *   right with 1 and 3 workers; with BR_IO=copy every read a copy;
 *   BR_IO=uring and BR_IO=pread turn copies off; the default (the path
 *   measured per file and size) tries copies, io_uring and pread in one
 *   run; all give the same bytes.
 * - The measured choice over a run whose file is evicted, becomes
 *   resident, is evicted again and is cut short: every batch equal to a
 *   pread of the file by the test, the cut named, no SIGBUS (every path).
 * - A worker's page tables hold what its copies read (and a little after
 *   it), not every resident page of the file.
 * - Mixed residency (BR_IO=copy): part of the file dropped from the page cache
 *   (POSIX_FADV_DONTNEED, checked with mincore), batches that mix copied
 *   reads and io_uring reads in every order (copies last, first, between,
 *   a lone read beside copies), with the exact count of copies per batch.
 * - A file cut short after the worker mapped it: at a page boundary (the
 *   copy faults, SIGBUS) and inside the last page of the read (the copy
 *   sees zeros, no fault): the batch fails with the dataset's usual error,
 *   never with zeros as data, and the worker survives to report it.
 * - A SIGBUS that is not the copy's (a fault in the loader's own mapping,
 *   a raise, a handler of the loader's own) behaves as without the library.
 *
 * The tests drive real generators over real files in a fresh temporary
 * directory; workers are real processes; the order of events comes from
 * slots = 1 (a worker loads batch k + 1 only after br_next released batch
 * k), never from sleeps.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "synth.h"
#include "test_fs.h"
#include "test_util.h"

#define SEED 31u
#define PAGE 4096u
/* The reader rescans residency at most once a second (BR_IO_SCAN_MIN_NS):
 * a run shorter than this saw exactly one scan, at its first batch. */
#define ONE_SCAN_NS UINT64_C(900000000)

static char dir[4096];
static uint64_t page_size;

static int group_setup(void **state)
{
    (void)state;
    page_size = (uint64_t)sysconf(_SC_PAGESIZE);
    assert_int_equal(page_size, PAGE);
    tf_tmpdir(dir, sizeof dir, "br-test-copy");
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    tf_remove_tree(dir);
    return 0;
}

/* ---- files ---------------------------------------------------------------- */

/* n samples of br_synth(SEED), sample i of size_of(i), one after another;
 * returns the file's size. */
static uint64_t write_samples(const char *path, uint64_t n, size_t (*size_of)(uint64_t))
{
    uint64_t at = 0;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    for (uint64_t i = 0; i < n; i++) {
        tf_append_sample(fd, SEED, i, size_of(i));
        at += size_of(i);
    }
    assert_int_equal(fsync(fd), 0);
    assert_int_equal(close(fd), 0);
    return at;
}

static void put_le64(uint8_t *p, uint64_t v)
{
    for (unsigned b = 0; b < 8; b++)
        p[b] = (uint8_t)(v >> (8 * b));
}

/* An index of n (offset, length) pairs. */
static void write_index(const char *path, const uint64_t *offset, size_t (*size_of)(uint64_t),
                        uint64_t n)
{
    uint8_t *buf = malloc(n * 16);
    assert_non_null(buf);
    for (uint64_t id = 0; id < n; id++) {
        put_le64(buf + id * 16, offset[id]);
        put_le64(buf + id * 16 + 8, size_of(id));
    }
    tf_write(path, buf, n * 16);
    free(buf);
}

/* mincore of the whole file: one byte per page, bit 0 = resident. */
static uint8_t *residency(const char *path, uint64_t *pages)
{
    struct stat st;
    uint8_t *vec;
    void *map;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(fstat(fd, &st), 0);
    assert_true(st.st_size > 0);
    *pages = ((uint64_t)st.st_size + PAGE - 1) / PAGE;
    map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    assert_true(map != MAP_FAILED);
    vec = malloc(*pages);
    assert_non_null(vec);
    assert_int_equal(mincore(map, (size_t)st.st_size, vec), 0);
    munmap(map, (size_t)st.st_size);
    close(fd);
    return vec;
}

static uint64_t resident_pages(const char *path, uint64_t *pages)
{
    uint8_t *vec = residency(path, pages);
    uint64_t n = 0;
    for (uint64_t p = 0; p < *pages; p++)
        n += vec[p] & 1;
    free(vec);
    return n;
}

/* The precondition of a "cached" run: every page of path in the page
 * cache. A file just written is (its pages are dirty or clean in the
 * cache); reading it once more makes sure. */
static void assert_cached(const char *path)
{
    uint64_t pages, resident = resident_pages(path, &pages);
    if (resident != pages) {
        char buf[65536];
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        while (read(fd, buf, sizeof buf) > 0)
            ;
        close(fd);
        resident = resident_pages(path, &pages);
    }
    if (resident != pages)
        fail_msg("%s: %" PRIu64 " of %" PRIu64 " pages in the page cache after reading it", path,
                 resident, pages);
}

/* ---- the read path of a run ---------------------------------------------- */

enum mode { MEASURED, COPIES, FORCE_URING, FORCE_PREAD };
static const char *const mode_names[] = {"default (measured)", "BR_IO=copy", "BR_IO=uring",
                                         "BR_IO=pread"};

/* Sets BR_IO for the generators opened next (the workers inherit it). */
static void mode_begin(enum mode m)
{
    char why[256];
    if (m == FORCE_PREAD || m == COPIES) {
        assert_int_equal(setenv("BR_IO", m == COPIES ? "copy" : "pread", 1), 0);
        return;
    }
    assert_int_equal(unsetenv("BR_IO"), 0);
    if (m == FORCE_URING) {
        if (!tf_uring_available(why, sizeof why)) {
            print_message("[  SKIP    ] io_uring is unavailable (%s)\n", why);
            skip();
        }
        assert_int_equal(setenv("BR_IO", "uring", 1), 0);
    }
}

static uint32_t expected_backend(enum mode m)
{
    char why[256];
    if (m == FORCE_PREAD)
        return BR_IO_PREAD;
    return tf_uring_available(why, sizeof why) ? BR_IO_URING : BR_IO_PREAD;
}

/* Reads, copies, preads and batches summed over a generator's workers. */
struct io_sum {
    uint64_t reads, copies, preads, batches;
};

static struct io_sum io_sum(br_gen *g, uint32_t workers)
{
    struct io_sum s = {0};
    for (uint32_t i = 0; i < workers; i++) {
        br_worker_stats ws;
        assert_int_equal(br_worker_stats_get(g, i, &ws), 0);
        s.reads += ws.io_reads;
        s.copies += ws.io_copies;
        s.preads += ws.io_preads;
        s.batches += ws.batches;
    }
    return s;
}

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * UINT64_C(0x100000001b3);
    return h;
}

/* ---- 1. cached datasets ---------------------------------------------------- */

#define REC_BYTES 520u /* not a multiple of 8 or of a page */
#define N_REC 1500u
#define N_IDX 600u

static size_t rec_size(uint64_t id)
{
    (void)id;
    return REC_BYTES;
}

/* Indexed samples vary in size, 0 included. */
static size_t idx_size(uint64_t id)
{
    return id % 50 == 7 ? 0 : br_synth_size(SEED, id, 1, 9000);
}

/* The first half of the indexed file holds ids in order (reads coalesce),
 * the second a permutation of the rest with junk between samples. */
static void write_indexed_scrambled(const char *data, const char *index)
{
    uint64_t *offset = calloc(N_IDX, sizeof *offset);
    assert_non_null(offset);
    tf_write_indexed_data(data, SEED, N_IDX, idx_size, 11, offset);
    write_index(index, offset, idx_size, N_IDX);
    free(offset);
}

/* One epoch over ds, every byte checked; returns a digest of the batches
 * (ids, offsets, data) and the workers' counters in *sum. */
static uint64_t run_cached(br_dataset *ds, size_t (*size_of)(uint64_t), uint64_t n,
                           const uint64_t *ids, size_t n_ids, uint32_t workers, uint32_t batch,
                           enum mode m, struct io_sum *sum)
{
    const size_t total = ids ? n_ids : (size_t)n;
    uint64_t digest = UINT64_C(0xcbf29ce484222325);
    br_options opt;
    br_batch b;
    br_gen *g;
    tu_leaks leaks;
    int rc;

    tu_leaks_begin(&leaks);
    br_options_init(&opt);
    opt.batch_size = batch;
    opt.workers = workers;
    opt.epochs = 1;
    rc = br_open_dataset(&g, ds, ids, ids ? n_ids : 0, &opt);
    if (rc)
        fail_msg("br_open_dataset: %s: %s", br_err_name(rc), br_last_error(NULL));
    tu_track(g);
    for (uint64_t seq = 0; seq * batch < total; seq++) {
        const size_t first = (size_t)seq * batch;
        rc = br_next(g, &b);
        if (rc)
            fail_msg("%s, %u workers, batch %" PRIu64 ": %s: %s", mode_names[m], workers, seq,
                     br_err_name(rc), br_last_error(g));
        assert_int_equal(b.seq, seq);
        assert_int_equal(b.count, total - first < batch ? total - first : batch);
        for (uint32_t i = 0; i < b.count; i++)
            tf_check_sample(&b, i, ids ? ids[first + i] : first + i, SEED, size_of);
        digest = fnv(digest, b.ids, b.count * sizeof *b.ids);
        digest = fnv(digest, b.offsets, (b.count + 1) * sizeof *b.offsets);
        digest = fnv(digest, b.data, b.size);
    }
    assert_int_equal(br_next(g, &b), BR_EOF);

    *sum = (struct io_sum){0};
    for (uint32_t i = 0; i < workers; i++) {
        br_worker_stats ws;
        assert_int_equal(br_worker_stats_get(g, i, &ws), 0);
        if (ws.batches == 0 && ws.io_backend == BR_IO_NONE)
            continue; /* started after the others had taken every batch */
        if (ws.io_backend != expected_backend(m))
            fail_msg("%s: worker %u read through backend %u, expected %u", mode_names[m], i,
                     ws.io_backend, expected_backend(m));
        if (ws.io_copies + ws.io_preads > ws.io_reads)
            fail_msg("%s: worker %u counts %" PRIu64 " copies and %" PRIu64 " preads of %" PRIu64
                     " reads",
                     mode_names[m], i, ws.io_copies, ws.io_preads, ws.io_reads);
        /* The whole file is in the page cache (checked before the run),
         * so every read a worker made is a copy; with BR_IO set, none. */
        if (m == COPIES && ws.io_copies != ws.io_reads)
            fail_msg("worker %u: %" PRIu64 " of its %" PRIu64 " reads of a cached file were "
                     "copies, expected all",
                     i, ws.io_copies, ws.io_reads);
        if ((m == FORCE_URING || m == FORCE_PREAD) && ws.io_copies != 0)
            fail_msg("%s: worker %u made %" PRIu64 " copies", mode_names[m], i, ws.io_copies);
        if (m == FORCE_PREAD && ws.io_preads != ws.io_reads)
            fail_msg("BR_IO=pread: worker %u read %" PRIu64 " of %" PRIu64 " through pread", i,
                     ws.io_preads, ws.io_reads);
        sum->reads += ws.io_reads;
        sum->copies += ws.io_copies;
        sum->preads += ws.io_preads;
        sum->batches += ws.batches;
    }
    assert_int_equal(sum->batches, (total + batch - 1) / batch);
    assert_int_equal(tu_close(g), 0);
    tu_leaks_check(&leaks);
    return digest;
}

/* The measured choice tries every path at the start of a file's reads:
 * one worker over a few dozen batches used all three. */
static void assert_paths_tried(const struct io_sum *s)
{
    char why[256];
    if (s->copies == 0 || s->preads == 0 ||
        (tf_uring_available(why, sizeof why) && s->copies + s->preads == s->reads))
        fail_msg("the measured choice did not try every path: %" PRIu64 " reads, %" PRIu64
                 " copies, %" PRIu64 " through pread",
                 s->reads, s->copies, s->preads);
}

static void cached_dataset(br_dataset *ds, const char *data, size_t (*size_of)(uint64_t),
                           uint64_t n, uint32_t batch)
{
    static const uint32_t workers[] = {1, 3};
    size_t n_scr;
    uint64_t *scr = tf_scrambled_ids(n, 0x9e3779b9u, &n_scr);

    for (int order = 0; order < 2; order++) {
        const uint64_t *ids = order ? scr : NULL;
        uint64_t reference = 0;
        for (int m = MEASURED; m <= FORCE_PREAD; m++) {
            for (size_t w = 0; w < sizeof workers / sizeof workers[0]; w++) {
                struct io_sum sum;
                uint64_t digest;
                assert_cached(data);
                mode_begin((enum mode)m);
                digest =
                    run_cached(ds, size_of, n, ids, n_scr, workers[w], batch, (enum mode)m, &sum);
                assert_int_equal(unsetenv("BR_IO"), 0);
                assert_true(sum.reads > 0);
                if (m == COPIES || m == MEASURED) {
                    assert_true(sum.copies > 0);
                    assert_true(sum.copies + sum.preads <= sum.reads);
                } else {
                    assert_int_equal(sum.copies, 0);
                }
                if (m == MEASURED && workers[w] == 1)
                    assert_paths_tried(&sum);
                /* The same batches whichever path read them. */
                if (m == MEASURED && w == 0)
                    reference = digest;
                else if (digest != reference)
                    fail_msg("%s order, %s, %u workers: the batches differ from the first run's",
                             order ? "scrambled" : "file", mode_names[m], workers[w]);
            }
        }
    }
    free(scr);
}

static void test_copy_cached_records(void **state)
{
    (void)state;
    const char *data = tf_path(dir, "cached-records.bin");
    br_dataset *ds;
    write_samples(data, N_REC, rec_size);
    assert_int_equal(br_dataset_open_records(&ds, data, REC_BYTES, NULL, 0), 0);
    cached_dataset(ds, data, rec_size, N_REC, 32);
    assert_int_equal(br_dataset_close(ds), 0);
    unlink(data);
}

static void test_copy_cached_indexed(void **state)
{
    (void)state;
    char data[4200], index[4200];
    br_dataset *ds;
    snprintf(data, sizeof data, "%s", tf_path(dir, "cached-indexed.bin"));
    snprintf(index, sizeof index, "%s", tf_path(dir, "cached-indexed.idx"));
    write_indexed_scrambled(data, index);
    assert_int_equal(br_dataset_open_indexed(&ds, data, index, NULL, 0), 0);
    cached_dataset(ds, data, idx_size, N_IDX, 24);
    assert_int_equal(br_dataset_close(ds), 0);
    unlink(data), unlink(index);
}

/* A worker's page tables hold what its copies read, not the whole cached
 * file: one 4 KiB record copied out of a cached 16 MiB file (a quarter of
 * a residency region) leaves the worker's mapping of the file with far
 * less than the file resident in its page tables (smaps' Rss). Populating
 * every resident page at the scan gave the worker all 16 MiB. */
#define PT_REC 4096u
#define PT_N 4096u /* 16 MiB */

static size_t pt_rec_size(uint64_t id)
{
    (void)id;
    return PT_REC;
}

/* Rss, in bytes, of process pid's mappings of path. */
static uint64_t mapped_rss(int32_t pid, const char *path)
{
    char smaps[64], line[4608];
    uint64_t rss = 0;
    bool ours = false;
    FILE *f;
    snprintf(smaps, sizeof smaps, "/proc/%d/smaps", (int)pid);
    f = fopen(smaps, "r");
    assert_non_null(f);
    while (fgets(line, sizeof line, f)) {
        unsigned long long kb;
        size_t n = strlen(line);
        if (n && line[n - 1] == '\n')
            line[--n] = '\0';
        if (strchr(line, '-') && strchr(line, ' ') && strchr(line, '-') < strchr(line, ' '))
            ours = n >= strlen(path) && !strcmp(line + n - strlen(path), path);
        else if (ours && sscanf(line, "Rss: %llu kB", &kb) == 1)
            rss += (uint64_t)kb << 10;
    }
    fclose(f);
    return rss;
}

static void test_copy_maps_what_it_copies(void **state)
{
    (void)state;
    const char *data = tf_path(dir, "page-tables.bin");
    const uint64_t file_bytes = (uint64_t)PT_REC * PT_N;
    br_worker_stats ws;
    br_dataset *ds;
    br_options opt;
    br_batch b;
    br_gen *g;
    uint64_t rss;

    write_samples(data, PT_N, pt_rec_size);
    assert_cached(data);
    assert_int_equal(br_dataset_open_records(&ds, data, PT_REC, NULL, 0), 0);
    mode_begin(MEASURED);
    br_options_init(&opt);
    opt.batch_size = 1;
    opt.workers = 1;
    opt.slots = 1; /* the worker loads nothing more until batch 0 is given back */
    opt.epochs = 1;
    assert_int_equal(br_open_dataset(&g, ds, NULL, 0, &opt), 0);
    tu_track(g);
    assert_int_equal(br_next(g, &b), 0);
    tf_check_sample(&b, 0, 0, SEED, pt_rec_size);
    assert_int_equal(br_worker_stats_get(g, 0, &ws), 0);
    assert_int_equal(ws.io_copies, 1); /* the record was copied from the mapping */
    assert_true(ws.pid > 0);
    rss = mapped_rss(ws.pid, data);
    print_message("one record copied: %" PRIu64 " KiB of the %" PRIu64
                  " KiB file in the worker's page tables\n",
                  rss >> 10, file_bytes >> 10);
    assert_true(rss >= PT_REC); /* the mapping was found, with the copied page */
    if (rss > file_bytes / 4)
        fail_msg("the worker maps %" PRIu64 " KiB of the file after copying one %u-byte record",
                 rss >> 10, PT_REC);
    assert_int_equal(tu_close(g), 0);
    assert_int_equal(br_dataset_close(ds), 0);
    unlink(data);
}

/* ---- 2. mixed residency in one batch --------------------------------------- */

#define MIX_REC 3000u /* records straddle pages, and chunks */
#define MIX_N 2400u   /* 7.2 MB: 110 chunks */
#define MIX_CHUNK 65536u
#define MIX_BATCH 8u

static size_t mix_size(uint64_t id)
{
    (void)id;
    return MIX_REC;
}

/* Whether every page of record id is in known[] (resident at the scan, or
 * read by an earlier batch). */
static bool mix_copyable(const uint8_t *known, uint64_t id)
{
    uint64_t first = id * MIX_REC / PAGE, last = (id * MIX_REC + MIX_REC - 1) / PAGE;
    for (uint64_t p = first; p <= last; p++)
        if (!(known[p] & 1))
            return false;
    return true;
}

static void mix_mark(uint8_t *known, uint64_t id)
{
    uint64_t first = id * MIX_REC / PAGE, last = (id * MIX_REC + MIX_REC - 1) / PAGE;
    for (uint64_t p = first; p <= last; p++)
        known[p] = 1;
}

static void test_copy_mixed_residency(void **state)
{
    (void)state;
    /* Per batch: C = a read the worker copies, U = one it must read (pages
     * not resident). Copies last (the order wait_uring once hung on),
     * first, between, around; a lone U (the pread path) among copies. */
    static const char *const patterns[] = {
        "UCUCUCUC", "CCCUUCCC", "CUCCCCCC", "UUUUCCCC", "CCCCUUUU",
        "UCCCCCCU", "CCCCCCCC", "UUUUUUUU", "CUUUUUUC", "UUCCCCCC",
    };
    const size_t n_patterns = sizeof patterns / sizeof patterns[0];
    const char *data = tf_path(dir, "mixed.bin");
    uint64_t pages, dropped = 0, kept = 0, size;
    uint64_t *ids, *expect_copies, n_batches = 0, n_ids = 0;
    uint8_t *known, *used;
    br_dataset *ds;
    br_options opt;
    br_batch b;
    br_gen *g;
    int fd, rc;

    /* A fresh file, on disk, then every other 64 KiB chunk dropped. */
    size = write_samples(data, MIX_N, mix_size);
    fd = open(data, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    for (uint64_t at = MIX_CHUNK; at < size; at += 2 * MIX_CHUNK)
        assert_int_equal(posix_fadvise(fd, (off_t)at, MIX_CHUNK, POSIX_FADV_DONTNEED), 0);
    close(fd);
    /* The precondition, from the kernel: which pages are resident now. The
     * expectations below follow this map, not the intent. */
    known = residency(data, &pages);
    for (uint64_t p = 0; p < pages; p++) {
        bool odd = (p * PAGE / MIX_CHUNK) % 2 == 1;
        dropped += odd && !(known[p] & 1);
        kept += !odd && (known[p] & 1);
    }
    if (dropped == 0) {
        free(known);
        unlink(data);
        print_message("[  SKIP    ] POSIX_FADV_DONTNEED dropped no page of %s: its file system "
                      "keeps files in memory (tmpfs?)\n",
                      data);
        skip();
    }
    if (kept * 4 < pages || dropped * 4 < pages)
        print_message("note: %" PRIu64 " of %" PRIu64 " pages dropped, %" PRIu64
                      " kept; following mincore\n",
                      dropped, pages, kept);

    /* The batches: for each letter the next unused record whose outcome
     * is that letter, never adjacent to the id before it (adjacent ids
     * would coalesce into one read). */
    ids = calloc(MIX_N, sizeof *ids);
    expect_copies = calloc(MIX_N / MIX_BATCH + 1, sizeof *expect_copies);
    used = calloc(MIX_N, 1);
    assert_non_null(ids);
    assert_non_null(expect_copies);
    assert_non_null(used);
    for (size_t round = 0;; round++) {
        const char *pat = patterns[round % n_patterns];
        uint64_t picked[MIX_BATCH], copies = 0;
        bool complete = true;
        for (unsigned k = 0; k < MIX_BATCH && complete; k++) {
            bool want_copy = pat[k] == 'C';
            uint64_t id = 0;
            complete = false;
            /* Stride through the file so that batches spread over it. */
            for (uint64_t t = 0; t < MIX_N && !complete; t++) {
                id = (t * 37u + round * 101u) % MIX_N;
                if (used[id] || (k > 0 && (id == picked[k - 1] + 1 || id + 1 == picked[k - 1])))
                    continue;
                complete = mix_copyable(known, id) == want_copy;
            }
            if (complete) {
                picked[k] = id;
                used[id] = 1;
                copies += want_copy;
            }
        }
        if (!complete)
            break;
        for (unsigned k = 0; k < MIX_BATCH; k++) {
            ids[n_ids++] = picked[k];
            mix_mark(known, picked[k]); /* read by this batch: known from now */
        }
        expect_copies[n_batches++] = copies;
    }
    assert_true(n_batches >= 2 * n_patterns);

    /* The fixed policy: a copy exactly where the pages are known resident. */
    assert_int_equal(setenv("BR_IO", "copy", 1), 0);
    assert_int_equal(br_dataset_open_records(&ds, data, MIX_REC, NULL, 0), 0);
    br_options_init(&opt);
    opt.batch_size = MIX_BATCH;
    opt.workers = 1;
    opt.slots = 1;
    opt.epochs = 1;
    opt.timeout_ms = TU_WAIT_MS; /* a hung reader fails the test, named */
    uint64_t t0 = tu_now_ns();
    rc = br_open_dataset(&g, ds, ids, n_ids, &opt);
    if (rc)
        fail_msg("br_open_dataset: %s: %s", br_err_name(rc), br_last_error(NULL));
    tu_track(g);
    struct io_sum before = {0}, now;
    for (uint64_t seq = 0; seq < n_batches; seq++) {
        rc = br_next(g, &b);
        if (rc)
            fail_msg("batch %" PRIu64 " (%s): %s: %s", seq, patterns[seq % n_patterns],
                     br_err_name(rc), br_last_error(g));
        assert_int_equal(b.count, MIX_BATCH);
        for (uint32_t i = 0; i < b.count; i++)
            tf_check_sample(&b, i, ids[seq * MIX_BATCH + i], SEED, mix_size);
        /* slots = 1: the worker has loaded exactly batches 0..seq. */
        now = io_sum(g, 1);
        assert_int_equal(now.batches, seq + 1);
        assert_int_equal(now.reads - before.reads, MIX_BATCH);
        /* Within a second of the first scan the worker knows exactly what
         * we know; a later rescan may only find more pages resident. */
        if (now.copies - before.copies != expect_copies[seq] &&
            (tu_now_ns() - t0 < ONE_SCAN_NS || now.copies - before.copies < expect_copies[seq]))
            fail_msg("batch %" PRIu64 " (%s): %" PRIu64 " copies, expected %" PRIu64, seq,
                     patterns[seq % n_patterns], now.copies - before.copies, expect_copies[seq]);
        before = now;
    }
    assert_int_equal(br_next(g, &b), BR_EOF);
    now = io_sum(g, 1);
    print_message("%" PRIu64 " batches: %" PRIu64 " reads, %" PRIu64 " of them copies; %" PRIu64
                  " of %" PRIu64 " pages were dropped\n",
                  n_batches, now.reads, now.copies, dropped, pages);
    /* Both paths ran, in the same batches. */
    assert_true(now.copies > 0);
    assert_true(now.copies < now.reads);
    assert_int_equal(tu_close(g), 0);
    assert_int_equal(unsetenv("BR_IO"), 0);
    assert_int_equal(br_dataset_close(ds), 0);
    free(ids), free(expect_copies), free(used), free(known);
    unlink(data);
}

/* ---- 2b. the measured choice while the file changes under it ---------------- */

#define EV_REC 3000u /* records straddle pages */
#define EV_N 640u    /* 20 blocks of 32: 40 batches an epoch */
#define EV_BATCH 16u
#define EV_EPOCHS 3u
#define EV_RESIDENT_AT 40u /* the test reads the whole file in */
#define EV_EVICT_AT 80u    /* and drops it from the page cache */
#define EV_CUT_AT 100u     /* the file is cut inside this batch's first record */

static size_t ev_size(uint64_t id)
{
    (void)id;
    return EV_REC;
}

/* Per block of 32 ids: 16 adjacent ones (one read of 48000 bytes), then
 * 16 scattered over the block's second half (16 reads of 3000 bytes, none
 * adjacent to the one before): both size classes in every epoch. */
static void ev_ids(uint64_t *ids)
{
    for (uint64_t block = 0; block < EV_N / 32; block++)
        for (uint64_t i = 0; i < 16; i++) {
            ids[block * 32 + i] = block * 32 + i;
            ids[block * 32 + 16 + i] = block * 32 + 16 + (i * 7) % 16;
        }
}

static void ev_read_all(const char *path)
{
    char buf[65536];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    while (read(fd, buf, sizeof buf) > 0)
        ;
    close(fd);
}

static void ev_drop(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
    close(fd);
}

/* One run: EV_EPOCHS epochs over the file, workers = 0 or 1, slots = 1 (the
 * worker loads batch k + 1 only after br_next released batch k, so what the
 * test does to the file between two br_next calls happens before the next
 * load). Every batch is compared with the test's own pread of its records;
 * the batch after the cut must fail with the dataset's message, from a
 * live worker. */
static void events_run(enum mode m, uint32_t workers, const uint64_t *ids)
{
    const char *data = tf_path(dir, "events.bin");
    uint8_t *expect = malloc(EV_BATCH * EV_REC);
    uint64_t pages;
    br_dataset *ds;
    br_options opt;
    br_batch b;
    br_gen *g;
    tu_leaks leaks;
    int ref, rc;

    assert_non_null(expect);
    write_samples(data, EV_N, ev_size);
    ev_drop(data); /* the run starts with the file on disk only, where it can */
    print_message("%s, %u workers: %" PRIu64 " of %u pages resident at the start\n",
                  mode_names[m], workers, resident_pages(data, &pages),
                  (EV_N * EV_REC + PAGE - 1) / PAGE);
    ref = open(data, O_RDONLY | O_CLOEXEC);
    assert_true(ref >= 0);
    mode_begin(m);
    assert_int_equal(br_dataset_open_records(&ds, data, EV_REC, NULL, 0), 0);
    tu_leaks_begin(&leaks);
    br_options_init(&opt);
    opt.batch_size = EV_BATCH;
    opt.workers = workers;
    opt.slots = 1;
    opt.epochs = EV_EPOCHS;
    opt.max_restarts = 0; /* a worker killed by a SIGBUS would be BR_EWORKER */
    opt.timeout_ms = TU_WAIT_MS;
    assert_int_equal(br_open_dataset(&g, ds, ids, EV_N, &opt), 0);
    tu_track(g);
    for (uint64_t seq = 0; seq < EV_CUT_AT; seq++) {
        const uint64_t *want = ids + (seq * EV_BATCH) % EV_N;
        rc = br_next(g, &b);
        if (rc)
            fail_msg("%s, %u workers, batch %" PRIu64 ": %s: %s", mode_names[m], workers, seq,
                     br_err_name(rc), br_last_error(g));
        assert_int_equal(b.count, EV_BATCH);
        assert_int_equal(b.size, EV_BATCH * EV_REC);
        for (uint32_t i = 0; i < EV_BATCH; i++) {
            assert_int_equal(b.ids[i], want[i]);
            assert_int_equal(pread(ref, expect + (size_t)i * EV_REC, EV_REC,
                                   (off_t)(want[i] * EV_REC)),
                             EV_REC);
            tf_check_sample(&b, i, want[i], SEED, ev_size);
        }
        if (memcmp(b.data, expect, EV_BATCH * EV_REC) != 0)
            fail_msg("%s, %u workers, batch %" PRIu64 ": the bytes differ from pread's",
                     mode_names[m], workers, seq);
        if (seq + 1 == EV_RESIDENT_AT)
            ev_read_all(data);
        else if (seq + 1 == EV_EVICT_AT)
            ev_drop(data);
        else if (seq + 1 == EV_CUT_AT)
            assert_int_equal(truncate(data, (off_t)(ids[(EV_CUT_AT * EV_BATCH) % EV_N] * EV_REC +
                                                    1000)),
                             0);
    }
    rc = br_next(g, &b);
    if (rc != BR_ELOADER)
        fail_msg("%s, %u workers: the batch after the cut: expected BR_ELOADER, got %s: %s",
                 mode_names[m], workers, br_err_name(rc), br_last_error(g));
    {
        char want[64];
        snprintf(want, sizeof want, "sample %" PRIu64 " (", ids[(EV_CUT_AT * EV_BATCH) % EV_N]);
        tu_assert_contains(br_last_error(g), data);
        tu_assert_contains(br_last_error(g), want);
        tu_assert_contains(br_last_error(g), "ENODATA");
    }
    if (workers) {
        struct io_sum s = io_sum(g, workers);
        br_stats st;
        assert_int_equal(br_stats_get(g, &st), 0);
        assert_int_equal(st.restarts, 0); /* the worker reported it, alive */
        print_message("  %" PRIu64 " reads: %" PRIu64 " copies, %" PRIu64 " through pread\n",
                      s.reads, s.copies, s.preads);
        if (m == MEASURED)
            assert_paths_tried(&s);
        if (m == FORCE_PREAD)
            assert_int_equal(s.preads, s.reads);
        if (m == FORCE_URING || m == FORCE_PREAD)
            assert_int_equal(s.copies, 0);
        if (m == COPIES)
            assert_true(s.copies > 0);
    }
    assert_int_equal(tu_close(g), 0);
    tu_leaks_check(&leaks);
    assert_int_equal(br_dataset_close(ds), 0);
    assert_int_equal(unsetenv("BR_IO"), 0);
    close(ref);
    unlink(data);
    free(expect);
}

static void test_copy_measured_events(void **state)
{
    (void)state;
    uint64_t ids[EV_N];
    ev_ids(ids);
    /* The cut is inside the first record of a batch of adjacent ids. */
    assert_int_equal(ids[(EV_CUT_AT * EV_BATCH) % EV_N] % 32, 0);
    for (int m = MEASURED; m <= FORCE_PREAD; m++)
        for (uint32_t workers = 0; workers <= 1; workers++)
            events_run((enum mode)m, workers, ids);
}

/* ---- 3. the file shrinks under the mapping ---------------------------------- */

#define TR_REC 1000u
#define TR_N 200u
#define TR_BATCH 32u /* batch 1 = records 32..63 = bytes 32000..64000 */

static size_t tr_rec_size(uint64_t id)
{
    (void)id;
    return TR_REC;
}

/* Indexed samples of 600..1400 bytes, stored in id order. */
static size_t tr_idx_size(uint64_t id)
{
    return br_synth_size(SEED, id, 600, 1400);
}

/* Something every worker of this process inherits: a copy made by the
 * trainer itself (workers = 0), before the generators under test fork. */
static void copy_inline_once(void)
{
    const char *data = tf_path(dir, "inline.bin");
    br_dataset *ds;
    br_options opt;
    br_batch b;
    br_gen *g;
    write_samples(data, 64, tr_rec_size);
    assert_cached(data);
    assert_int_equal(br_dataset_open_records(&ds, data, TR_REC, NULL, 0), 0);
    br_options_init(&opt);
    opt.batch_size = 16;
    opt.workers = 0;
    opt.epochs = 1;
    assert_int_equal(br_open_dataset(&g, ds, NULL, 0, &opt), 0);
    tu_track(g);
    for (int k = 0; k < 4; k++) {
        assert_int_equal(br_next(g, &b), 0);
        for (uint32_t i = 0; i < b.count; i++)
            tf_check_sample(&b, i, (uint64_t)k * 16 + i, SEED, tr_rec_size);
    }
    assert_int_equal(br_next(g, &b), BR_EOF);
    assert_int_equal(tu_close(g), 0);
    assert_int_equal(br_dataset_close(ds), 0);
    unlink(data);
}

enum tr_layout { TR_RECORDS, TR_INDEXED };

struct tr_case {
    const char *what;
    uint64_t cut;    /* the new size of the data file */
    uint64_t victim; /* the first sample of batch 1 it cuts off */
    uint64_t n;      /* samples in the file; 0: TR_N */
};

/* Opens a generator over a fresh cached copy of the layout, gets batch 0
 * (the worker has mapped the file and found it resident), cuts the file,
 * and expects batch 1 to fail with the dataset's message. Returns false
 * when the run took so long that the reader may have rescanned residency
 * after the cut (then it read instead of copying: not what is tested). */
static bool truncate_once(enum tr_layout l, uint32_t workers, const struct tr_case *c,
                          const uint64_t *offset)
{
    char data[4200], index[4200], want[64];
    size_t (*size_of)(uint64_t) = l == TR_RECORDS ? tr_rec_size : tr_idx_size;
    br_dataset *ds;
    br_options opt;
    br_batch b;
    br_gen *g;
    tu_leaks leaks;
    int rc;

    snprintf(data, sizeof data, "%s", tf_path(dir, "shrinking.bin"));
    snprintf(index, sizeof index, "%s", tf_path(dir, "shrinking.idx"));
    const uint64_t n = c->n ? c->n : TR_N;
    write_samples(data, n, size_of);
    assert_cached(data);
    if (l == TR_RECORDS) {
        rc = br_dataset_open_records(&ds, data, TR_REC, NULL, 0);
    } else {
        write_index(index, offset, tr_idx_size, TR_N);
        rc = br_dataset_open_indexed(&ds, data, index, NULL, 0);
    }
    if (rc)
        fail_msg("opening %s: %s", data, br_last_error(NULL));

    tu_leaks_begin(&leaks);
    br_options_init(&opt);
    opt.batch_size = TR_BATCH;
    opt.workers = workers;
    opt.slots = 1;
    opt.epochs = 1;
    opt.max_restarts = 0; /* a worker killed by the SIGBUS is BR_EWORKER */
    opt.timeout_ms = TU_WAIT_MS;
    uint64_t t0 = tu_now_ns();
    assert_int_equal(br_open_dataset(&g, ds, NULL, 0, &opt), 0);
    tu_track(g);
    rc = br_next(g, &b);
    if (rc)
        fail_msg("batch 0: %s: %s", br_err_name(rc), br_last_error(g));
    for (uint32_t i = 0; i < b.count; i++)
        tf_check_sample(&b, i, i, SEED, size_of);
    if (workers) {
        /* Batch 0 is one read (its ids are adjacent in the file), and it
         * was a copy: the worker mapped the file and found it resident. */
        struct io_sum s = io_sum(g, workers);
        assert_int_equal(s.batches, 1);
        assert_int_equal(s.reads, 1);
        assert_int_equal(s.copies, 1);
    }
    /* slots = 1: batch 1 is not loaded before this br_next returns it. */
    assert_int_equal(truncate(data, (off_t)c->cut), 0);
    rc = br_next(g, &b);
    uint64_t took = tu_now_ns() - t0;
    if (rc == 0) {
        size_t zeros = 0;
        for (size_t k = 0; k < b.size; k++)
            zeros += ((const uint8_t *)b.data)[k] == 0;
        fail_msg("%s, %u workers, cut at %" PRIu64 ": batch 1 arrived (%zu bytes, %zu of them "
                 "zero) from a file that no longer holds it",
                 c->what, workers, c->cut, b.size, zeros);
    }
    if (rc != BR_ELOADER)
        fail_msg("%s, %u workers, cut at %" PRIu64 ": expected BR_ELOADER, got %s: %s", c->what,
                 workers, c->cut, br_err_name(rc), br_last_error(g));
    snprintf(want, sizeof want, "sample %" PRIu64 " (", c->victim);
    tu_assert_contains(br_last_error(g), data);
    tu_assert_contains(br_last_error(g), want);
    tu_assert_contains(br_last_error(g), "cut off");
    tu_assert_contains(br_last_error(g), "ENODATA");
    if (workers) {
        /* The worker reported the failure itself, alive. */
        br_stats st;
        assert_int_equal(br_stats_get(g, &st), 0);
        assert_int_equal(st.restarts, 0);
    }
    assert_int_equal(tu_close(g), 0);
    tu_leaks_check(&leaks);
    assert_int_equal(br_dataset_close(ds), 0);
    unlink(data);
    if (l == TR_INDEXED)
        unlink(index);
    return took < ONE_SCAN_NS;
}

static void truncate_cases(enum tr_layout l, const struct tr_case *cases, size_t n_cases,
                           const uint64_t *offset)
{
    /* Workers forked after the trainer made copies of its own. */
    copy_inline_once();
    for (size_t c = 0; c < n_cases; c++) {
        for (uint32_t workers = 0; workers <= 1; workers++) {
            int attempt = 0;
            while (!truncate_once(l, workers, &cases[c], offset))
                if (++attempt == 3)
                    fail_msg("%s: three runs took more than %.1f s each; the reader may have "
                             "rescanned the file after the cut, so the copy was not tested",
                             cases[c].what, (double)ONE_SCAN_NS / 1e9);
        }
    }
}

static void test_copy_truncated_records(void **state)
{
    (void)state;
    /* Batch 1 is one read of bytes 32000..64000: pages 7..15. */
    const struct tr_case cases[] = {
        /* Page 9 and later are gone: the copy faults at 36864. */
        {"page-aligned cut", 9 * PAGE, 36, 0},
        /* Inside page 9, through record 40: the rest of page 9 reads as
         * zeros, page 10 faults. */
        {"cut inside an early page", 40500, 40, 0},
        /* Inside page 15, the last of the read, through record 63: no
         * page of the read is past the end, the copy sees zeros and no
         * fault; the reader's probe of page 16 faults. */
        {"cut inside the last page", 63500, 63, 0},
        /* The same cut in a file of 64 records, whose last page is the
         * read's: there is no page after it to probe, so the reader checks
         * the file's size. */
        {"cut inside the file's last page", 63500, 63, 64},
    };
    assert_true(63500 / PAGE == (2 * TR_BATCH * TR_REC - 1) / PAGE);
    truncate_cases(TR_RECORDS, cases, sizeof cases / sizeof cases[0], NULL);
}

static void test_copy_truncated_indexed(void **state)
{
    (void)state;
    uint64_t offset[TR_N], at = 0, end1, cut_in, cut_aligned;
    struct tr_case cases[2];

    for (uint64_t id = 0; id < TR_N; id++) {
        offset[id] = at;
        at += tr_idx_size(id);
    }
    /* Batch 1 (ids 32..63) is one read ending at end1; cut 100 bytes into
     * its last page, and at the start of the page before. */
    end1 = offset[2 * TR_BATCH - 1] + tr_idx_size(2 * TR_BATCH - 1);
    cut_in = (end1 - 1) / PAGE * PAGE + 100;
    cut_aligned = (end1 - 1) / PAGE * PAGE - PAGE;
    assert_true(cut_in < end1 && cut_aligned > offset[TR_BATCH]);
    cases[0] = (struct tr_case){"page-aligned cut", cut_aligned, 0, 0};
    cases[1] = (struct tr_case){"cut inside the last page", cut_in, 0, 0};
    for (size_t c = 0; c < 2; c++) {
        /* The first sample of batch 1 that ends past the cut; a cut inside
         * it, not at its start. */
        uint64_t id = TR_BATCH;
        while (offset[id] + tr_idx_size(id) <= cases[c].cut)
            id++;
        assert_true(id < 2 * TR_BATCH);
        cases[c].victim = id;
    }
    assert_true(cut_in > offset[cases[1].victim]);
    truncate_cases(TR_INDEXED, cases, 2, offset);
}

/* ---- 4. a SIGBUS that is not the copy's ------------------------------------ */

enum foreign_kind {
    FOREIGN_FAULT,      /* the loader touches its own mapping of a file cut to 0 */
    FOREIGN_RAISE,      /* the loader raises SIGBUS */
    FOREIGN_OWN_HANDLER /* worker_init installed a handler; then a fault */
};

/* Shared with the worker. */
struct foreign {
    int kind;
    _Atomic int32_t pid;
    _Atomic uint32_t copied;      /* the loader's read was served right */
    _Atomic uint32_t handler_set; /* SIGBUS had a handler at the fault */
    _Atomic uint32_t own_handler; /* the loader's handler ran */
    _Atomic uint32_t survived;    /* the loader went on after the SIGBUS */
};
static struct foreign *fg;
static char foreign_cached[4200], foreign_victim[4200];

#define FOREIGN_EXIT 42

static void own_sigbus_handler(int sig)
{
    (void)sig;
    atomic_store(&fg->own_handler, 1);
    _exit(FOREIGN_EXIT);
}

static int foreign_init(br_io *io, uint32_t worker, void *user, void **state, char *err,
                        size_t err_cap)
{
    struct rlimit no_core = {0, 0};
    int fd, rc;
    (void)worker, (void)user;
    setrlimit(RLIMIT_CORE, &no_core); /* the deaths here are expected */
    if (fg->kind == FOREIGN_OWN_HANDLER) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = own_sigbus_handler;
        sigemptyset(&sa.sa_mask);
        if (sigaction(SIGBUS, &sa, NULL) != 0) {
            snprintf(err, err_cap, "sigaction: %s", strerror(errno));
            return -errno;
        }
    }
    fd = open(foreign_cached, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, err_cap, "open %s: %s", foreign_cached, strerror(errno));
        return -errno;
    }
    rc = br_io_register_file(io, fd);
    if (rc) {
        snprintf(err, err_cap, "br_io_register_file: %s", br_strerror(rc));
        close(fd);
        return rc;
    }
    *state = (void *)(intptr_t)fd;
    return 0;
}

static int foreign_loader(br_job *job, void *user)
{
    const int fd = (int)(intptr_t)job->state;
    struct sigaction cur;
    volatile uint8_t *p;
    int vfd, rc;
    (void)user;

    /* A read of the registered, cached file: served by a copy, which
     * installs the reader's SIGBUS handler. */
    rc = br_io_read(job->io, fd, 0, 3 * PAGE, job->out, 0);
    if (rc == 0)
        rc = br_io_wait(job->io);
    if (rc) {
        snprintf(job->err, job->err_cap, "read: %s", br_io_last_error(job->io));
        return rc;
    }
    atomic_store(&fg->copied, br_synth_check(job->out, 3 * PAGE, SEED, 0) == 3 * PAGE);
    atomic_store(&fg->pid, (int32_t)getpid());
    if (sigaction(SIGBUS, NULL, &cur) == 0)
        atomic_store(&fg->handler_set, cur.sa_handler != SIG_DFL);
    if (fg->kind == FOREIGN_RAISE) {
        raise(SIGBUS);
    } else {
        /* The loader's own mapping of a file that is then cut to 0: a
         * bug of the loader, which must crash it as it would anyway. */
        vfd = open(foreign_victim, O_RDWR | O_CLOEXEC);
        if (vfd < 0)
            return -errno;
        p = mmap(NULL, PAGE, PROT_READ, MAP_SHARED, vfd, 0);
        if (p == MAP_FAILED || ftruncate(vfd, 0) != 0)
            return -errno;
        (void)p[10];
    }
    atomic_store(&fg->survived, 1);
    snprintf(job->err, job->err_cap, "the loader survived a SIGBUS");
    return -EPROTO;
}

static void foreign_sigbus(enum foreign_kind kind)
{
    const uint64_t ids[] = {0, 1, 2, 3};
    char want[32];
    br_options opt;
    br_worker_stats ws;
    br_batch b;
    br_gen *g;
    tu_leaks leaks;
    int rc;

    memset(fg, 0, sizeof *fg);
    fg->kind = kind;
    {
        uint8_t junk[PAGE];
        memset(junk, 0x11, sizeof junk);
        tf_write(foreign_victim, junk, sizeof junk);
    }
    assert_cached(foreign_cached);
    assert_int_equal(unsetenv("BR_IO"), 0);
    tu_leaks_begin(&leaks);
    br_options_init(&opt);
    opt.batch_size = 1;
    opt.workers = 1;
    opt.slots = 1;
    opt.slot_bytes = 4 * PAGE;
    opt.epochs = 1;
    opt.max_restarts = 0;
    opt.timeout_ms = TU_WAIT_MS;
    opt.worker_init = foreign_init;
    assert_int_equal(br_open(&g, foreign_loader, NULL, ids, NULL, 4, &opt), 0);
    tu_track(g);
    rc = br_next(g, &b);
    assert_int_equal(br_worker_stats_get(g, 0, &ws), 0);
    /* The reader copied (so its handler was in place) before the SIGBUS. */
    assert_int_equal(atomic_load(&fg->copied), 1);
    assert_int_equal(ws.io_copies, 1);
    assert_int_equal(atomic_load(&fg->handler_set), 1);
    if (atomic_load(&fg->survived))
        fail_msg("the worker went on after a SIGBUS not the reader's (%s)", br_last_error(g));
    if (rc != BR_EWORKER)
        fail_msg("expected BR_EWORKER, got %s: %s", br_err_name(rc), br_last_error(g));
    snprintf(want, sizeof want, "%d", (int)atomic_load(&fg->pid));
    tu_assert_contains(br_last_error(g), want);
    if (kind == FOREIGN_OWN_HANDLER) {
        /* The handler the loader had set got the signal. */
        assert_int_equal(atomic_load(&fg->own_handler), 1);
        tu_assert_contains(br_last_error(g), "exited with status 42");
    } else {
        tu_assert_contains(br_last_error(g), "signal 7 (SIGBUS");
    }
    assert_int_equal(tu_close(g), 0);
    tu_leaks_check(&leaks);
}

static void test_copy_foreign_sigbus(void **state)
{
    (void)state;
    snprintf(foreign_cached, sizeof foreign_cached, "%s", tf_path(dir, "foreign-cached.bin"));
    snprintf(foreign_victim, sizeof foreign_victim, "%s", tf_path(dir, "foreign-victim.bin"));
    {
        /* 3 pages of sample 0. */
        uint8_t *buf = malloc(3 * PAGE);
        assert_non_null(buf);
        br_synth_fill(buf, 3 * PAGE, SEED, 0);
        tf_write(foreign_cached, buf, 3 * PAGE);
        free(buf);
    }
    fg = tu_page_alloc(sizeof *fg);
    /* The trainer copied first: its workers are forked from a process
     * whose reader had installed its handler. */
    copy_inline_once();
    print_message("a fault in the loader's own mapping\n");
    foreign_sigbus(FOREIGN_FAULT);
    print_message("raise(SIGBUS)\n");
    foreign_sigbus(FOREIGN_RAISE);
    print_message("a fault, with the loader's own SIGBUS handler\n");
    foreign_sigbus(FOREIGN_OWN_HANDLER);
    tu_page_free(fg, sizeof *fg);
    unlink(foreign_cached), unlink(foreign_victim);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_copy_cached_records, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_copy_cached_indexed, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_copy_maps_what_it_copies, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_copy_mixed_residency, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_copy_measured_events, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_copy_truncated_records, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_copy_truncated_indexed, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_copy_foreign_sigbus, tu_setup, tu_teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
