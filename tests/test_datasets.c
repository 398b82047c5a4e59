/* SPDX-License-Identifier: MIT */
/*
 * The built-in datasets (records, files, indexed) end to end: real files in
 * a fresh temporary directory, written here from the documented formats
 * (not by mkdata, so that a format mistake in both cannot cancel out),
 * served by real generators with 0, 1 and 3 workers, through io_uring and
 * through the forced pread path, with and without O_DIRECT. Every byte of
 * every sample is checked against br_synth, with its id, label and offset.
 * Then every way a dataset can be wrong, at open and while loading.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mkdata.h"
#include "synth.h"
#include "test_fs.h"
#include "test_util.h"

#define SEED 77u
#define REC_BYTES 520u /* not a multiple of 8 or of a block: no lucky alignment */
#define N_REC 600u
#define N_REC4K 96u
#define N_FILES 150u
#define N_IDX 400u
#define ABS_SAMPLE 5u  /* files: listed with an absolute path */
#define CRLF_SAMPLE 8u /* files: its line ends in \r\n */

static char dir[4096];
static char why_no_direct[4400]; /* empty when the temp fs takes O_DIRECT */
static uint64_t idx_offset[N_IDX];
static uint64_t idx_data_size;

/* ---- sample sizes of the datasets written below ------------------------ */

static size_t rec_size(uint64_t id)
{
    (void)id;
    return REC_BYTES;
}

static size_t rec4k_size(uint64_t id)
{
    (void)id;
    return 4096;
}

/* Files and indexed samples vary in size, 0 included. */
static size_t file_size_of(uint64_t id)
{
    return id == 3 ? 0 : br_synth_size(SEED, id, 1, 9000);
}

static size_t idx_size(uint64_t id)
{
    return id % 50 == 0 ? 0 : br_synth_size(SEED, id, 1, 10000);
}

/* ---- writing the datasets ---------------------------------------------- */

static void write_records(const char *name, uint64_t n, size_t bytes)
{
    int fd = open(tf_path(dir, name), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    for (uint64_t i = 0; i < n; i++)
        tf_append_sample(fd, SEED, i, bytes);
    assert_int_equal(close(fd), 0);
}

static void write_files(void)
{
    char line[4200];
    FILE *list;
    assert_int_equal(mkdir(tf_path(dir, "f"), 0755), 0);
    list = fopen(tf_path(dir, "files.txt"), "w");
    assert_non_null(list);
    for (uint64_t i = 0; i < N_FILES; i++) {
        char name[64];
        int fd;
        snprintf(name, sizeof name, "f/%03" PRIu64 ".bin", i);
        fd = open(tf_path(dir, name), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        assert_true(fd >= 0);
        tf_append_sample(fd, SEED, i, file_size_of(i));
        assert_int_equal(close(fd), 0);
        if (i == ABS_SAMPLE)
            snprintf(line, sizeof line, "%s\n", tf_path(dir, name));
        else
            snprintf(line, sizeof line, "%s%s", name, i == CRLF_SAMPLE ? "\r\n" : "\n");
        fputs(line, list);
    }
    assert_int_equal(fclose(list), 0);
}

static void put_le64(uint8_t *p, uint64_t v)
{
    for (unsigned b = 0; b < 8; b++)
        p[b] = (uint8_t)(v >> (8 * b));
}

/* Ids 0..199 one after another (a run the loader may read at once), then
 * 200..399 in a scrambled order with gaps; the file ends exactly where the
 * last sample does, at an unaligned size, so O_DIRECT must handle the
 * partial last block. */
static void write_indexed(void)
{
    uint8_t index[N_IDX * 16];
    idx_data_size = tf_write_indexed_data(tf_path(dir, "data.bin"), SEED, N_IDX, idx_size, 13,
                                          idx_offset);
    assert_true(idx_data_size % 4096 != 0);
    for (uint64_t id = 0; id < N_IDX; id++) {
        put_le64(index + id * 16, idx_offset[id]);
        put_le64(index + id * 16 + 8, idx_size(id));
    }
    tf_write(tf_path(dir, "index.bin"), index, sizeof index);
}

static int group_setup(void **state)
{
    (void)state;
    tf_tmpdir(dir, sizeof dir, "br-test-datasets");
    /* Others may pass through (the unreadable-file case runs as nobody). */
    assert_int_equal(chmod(dir, 0711), 0);
    write_records("records.bin", N_REC, REC_BYTES);
    tf_write_labels(tf_path(dir, "records.labels"), SEED, N_REC);
    write_records("rec4k.bin", N_REC4K, 4096);
    tf_write_labels(tf_path(dir, "rec4k.labels"), SEED, N_REC4K);
    write_files();
    tf_write_labels(tf_path(dir, "files.labels"), SEED, N_FILES);
    write_indexed();
    tf_write_labels(tf_path(dir, "indexed.labels"), SEED, N_IDX);

    int fd = open(tf_path(dir, "rec4k.bin"), O_RDONLY | O_DIRECT | O_CLOEXEC);
    if (fd >= 0)
        close(fd);
    else
        assert_true((size_t)snprintf(why_no_direct, sizeof why_no_direct,
                                     "the file system of %s refuses O_DIRECT (%s)", dir,
                                     strerror(errno)) < sizeof why_no_direct);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    tf_remove_tree(dir);
    return 0;
}

/* ---- opening ------------------------------------------------------------ */

enum layout { RECORDS, REC4K, FILES, INDEXED };

static const char *const layout_names[] = {"records", "records", "files", "indexed"};
static size_t (*const size_fns[])(uint64_t) = {rec_size, rec4k_size, file_size_of, idx_size};
static const uint64_t layout_n[] = {N_REC, N_REC4K, N_FILES, N_IDX};

static br_dataset *open_layout(enum layout l, unsigned flags)
{
    br_dataset *ds = (br_dataset *)1;
    int rc;
    switch (l) {
    case RECORDS:
        rc = br_dataset_open_records(&ds, tf_path(dir, "records.bin"), REC_BYTES,
                                     tf_path(dir, "records.labels"), flags);
        break;
    case REC4K:
        rc = br_dataset_open_records(&ds, tf_path(dir, "rec4k.bin"), 4096,
                                     tf_path(dir, "rec4k.labels"), flags);
        break;
    case FILES:
        rc = br_dataset_open_files(&ds, tf_path(dir, "files.txt"), tf_path(dir, "files.labels"),
                                   flags);
        break;
    default:
        rc = br_dataset_open_indexed(&ds, tf_path(dir, "data.bin"), tf_path(dir, "index.bin"),
                                     tf_path(dir, "indexed.labels"), flags);
        break;
    }
    if (rc)
        fail_msg("opening the %s dataset: %s: %s", layout_names[l], br_err_name(rc),
                 br_last_error(NULL));
    assert_non_null(ds);
    return ds;
}

/* ---- one generator run, every byte checked ----------------------------- */

struct run {
    br_dataset *ds;
    size_t (*size_of)(uint64_t id);
    uint64_t n;          /* samples in the dataset */
    const uint64_t *ids; /* NULL: every sample in order */
    size_t n_ids;
    uint32_t workers;
    uint32_t batch;
    enum tf_backend backend;
    size_t slot_bytes; /* 0: the dataset's default */
};

struct run_result {
    uint64_t batches;
    uint64_t io_reads; /* summed over the workers (0 with workers = 0) */
    uint64_t io_bytes;
};

static struct run_result run_and_check(const struct run *r)
{
    const size_t n_ids = r->ids ? r->n_ids : (size_t)r->n;
    const uint64_t batches = (n_ids + r->batch - 1) / r->batch;
    struct run_result res = {0};
    br_options opt;
    br_batch b;
    br_gen *g = NULL;
    tu_leaks leaks;
    int rc;

    tu_leaks_begin(&leaks);
    tf_backend_begin(r->backend);
    br_options_init(&opt);
    opt.batch_size = r->batch;
    opt.workers = r->workers;
    opt.epochs = 1;
    opt.slot_bytes = r->slot_bytes;
    rc = br_open_dataset(&g, r->ds, r->ids, r->n_ids, &opt);
    if (rc)
        fail_msg("br_open_dataset: %s: %s", br_err_name(rc), br_last_error(NULL));
    tu_track(g);

    for (uint64_t seq = 0; seq < batches; seq++) {
        const size_t first = (size_t)seq * r->batch;
        const uint32_t count = (uint32_t)(n_ids - first < r->batch ? n_ids - first : r->batch);
        rc = br_next(g, &b);
        if (rc)
            fail_msg("br_next at batch %" PRIu64 ": %s: %s", seq, br_err_name(rc),
                     br_last_error(g));
        assert_int_equal(b.seq, seq);
        assert_int_equal(b.count, count);
        assert_non_null(b.offsets);
        assert_non_null(b.labels);
        assert_int_equal(b.offsets[0], 0);
        assert_int_equal(b.offsets[count], b.size);
        for (uint32_t i = 0; i < count; i++) {
            const uint64_t id = r->ids ? r->ids[first + i] : first + i;
            assert_int_equal(b.ids[i], id);
            assert_int_equal(b.labels[i], br_synth_label(SEED, id));
            tf_check_sample(&b, i, id, SEED, r->size_of);
        }
    }
    assert_int_equal(br_next(g, &b), BR_EOF);
    res.batches = batches;

    /* Which path each worker's reader took, and what it counted. */
    uint32_t checked = 0;
    for (uint32_t i = 0; i < r->workers; i++) {
        br_worker_stats ws;
        assert_int_equal(br_worker_stats_get(g, i, &ws), 0);
        /* A worker that started after the others had taken every batch
         * never needed its reader. */
        if (ws.batches == 0 && ws.io_backend == BR_IO_NONE)
            continue;
        checked++;
        if (ws.io_backend != tf_backend_code(r->backend))
            fail_msg("worker %u read through backend %u, expected %u (%s)", i, ws.io_backend,
                     tf_backend_code(r->backend), tf_backend_name(r->backend));
        res.io_reads += ws.io_reads;
        res.io_bytes += ws.io_bytes;
    }
    if (r->workers > 0)
        assert_true(checked > 0);
    if (r->workers == 0) {
        /* The trainer's own reader, where the library reports it. */
        br_worker_stats ws;
        if (br_worker_stats_get(g, 0, &ws) == 0)
            assert_int_equal(ws.io_backend, tf_backend_code(r->backend));
    }
    assert_int_equal(tu_close(g), 0);
    tf_backend_end();
    tu_leaks_check(&leaks);
    return res;
}

/* Pages of path in the page cache. */
static size_t cached_pages(const char *path)
{
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    struct stat st;
    unsigned char *vec;
    size_t n, cached = 0;
    void *map;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(fstat(fd, &st), 0);
    n = ((size_t)st.st_size + page - 1) / page;
    map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    assert_true(map != MAP_FAILED);
    vec = malloc(n);
    assert_non_null(vec);
    assert_int_equal(mincore(map, (size_t)st.st_size, vec), 0);
    for (size_t i = 0; i < n; i++)
        cached += vec[i] & 1;
    free(vec);
    munmap(map, (size_t)st.st_size);
    close(fd);
    return cached;
}

/* Evicts path from the page cache; false where the file system keeps it
 * there anyway (tmpfs: the cache is the file). */
static bool evict(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
    close(fd);
    return cached_pages(path) == 0;
}

/* The matrix every layout goes through: 0, 1 and 3 workers in order, then
 * scrambled ids with 3 workers and with 0. */
static void layout_matrix(enum layout l, unsigned flags, enum tf_backend backend, uint32_t batch)
{
    static const uint32_t workers[] = {0, 1, 3};
    br_dataset *ds;
    size_t n_scr;
    uint64_t *scr = tf_scrambled_ids(layout_n[l], 0x12345678u, &n_scr);

    if ((flags & BR_DATASET_DIRECT) && why_no_direct[0]) {
        free(scr);
        print_message("[  SKIP    ] %s\n", why_no_direct);
        skip();
    }
    ds = open_layout(l, flags);
    for (size_t w = 0; w < sizeof workers / sizeof workers[0]; w++) {
        struct run r = {.ds = ds,
                        .size_of = size_fns[l],
                        .n = layout_n[l],
                        .workers = workers[w],
                        .batch = batch,
                        .backend = backend};
        const char *data = tf_path(dir, l == REC4K ? "rec4k.bin" : "data.bin");
        bool evicted = (flags & BR_DATASET_DIRECT) && evict(data);
        struct run_result res = run_and_check(&r);
        if (evicted) {
            /* O_DIRECT reads bypass the page cache; only the partial last
             * block of an indexed file is read buffered. */
            size_t cached = cached_pages(data);
            if (cached > (l == INDEXED ? 1u : 0u))
                fail_msg("%zu pages of %s entered the page cache: not read with O_DIRECT", cached,
                         data);
        }
        if ((l == RECORDS || l == REC4K) && workers[w] > 0) {
            /* In order, each batch is one run of adjacent records: one
             * read per batch. */
            assert_int_equal(res.io_reads, res.batches);
            assert_int_equal(res.io_bytes, layout_n[l] * size_fns[l](0));
        }
    }
    for (uint32_t w = 0; w <= 3; w += 3) {
        struct run r = {.ds = ds,
                        .size_of = size_fns[l],
                        .n = layout_n[l],
                        .ids = scr,
                        .n_ids = n_scr,
                        .workers = w,
                        .batch = batch,
                        .backend = backend};
        struct run_result res = run_and_check(&r);
        if (l == RECORDS && w > 0) {
            /* Scrambled ids are mostly single reads; the run of 40 is not. */
            assert_true(res.io_reads > n_scr / 2);
            assert_true(res.io_reads < n_scr);
        }
    }
    free(scr);
    assert_int_equal(br_dataset_close(ds), 0);
}

static void test_datasets_records_uring(void **state)
{
    (void)state;
    layout_matrix(RECORDS, 0, TF_URING, 32);
}

static void test_datasets_records_pread(void **state)
{
    (void)state;
    layout_matrix(RECORDS, 0, TF_PREAD, 32);
}

static void test_datasets_files_uring(void **state)
{
    (void)state;
    layout_matrix(FILES, 0, TF_URING, 16);
}

static void test_datasets_files_pread(void **state)
{
    (void)state;
    layout_matrix(FILES, 0, TF_PREAD, 16);
}

static void test_datasets_indexed_uring(void **state)
{
    (void)state;
    layout_matrix(INDEXED, 0, TF_URING, 24);
}

static void test_datasets_indexed_pread(void **state)
{
    (void)state;
    layout_matrix(INDEXED, 0, TF_PREAD, 24);
}

static void test_datasets_direct_records_uring(void **state)
{
    (void)state;
    layout_matrix(REC4K, BR_DATASET_DIRECT, TF_URING, 8);
}

static void test_datasets_direct_records_pread(void **state)
{
    (void)state;
    layout_matrix(REC4K, BR_DATASET_DIRECT, TF_PREAD, 8);
}

static void test_datasets_direct_indexed_uring(void **state)
{
    (void)state;
    layout_matrix(INDEXED, BR_DATASET_DIRECT, TF_URING, 24);
}

static void test_datasets_direct_indexed_pread(void **state)
{
    (void)state;
    layout_matrix(INDEXED, BR_DATASET_DIRECT, TF_PREAD, 24);
}

/* A batch that holds only the sample at the very end of the indexed data
 * file, alone and after another: the O_DIRECT tail path with nothing else
 * to hide a mistake. */
static void test_datasets_direct_indexed_tail(void **state)
{
    (void)state;
    if (why_no_direct[0]) {
        print_message("[  SKIP    ] %s\n", why_no_direct);
        skip();
    }
    uint64_t last = 0;
    for (uint64_t id = 0; id < N_IDX; id++)
        if (idx_offset[id] + idx_size(id) == idx_data_size && idx_size(id) > 0)
            last = id;
    assert_int_equal(idx_offset[last] + idx_size(last), idx_data_size);
    const uint64_t ids[] = {last, last, 1, last, 0, last};
    br_dataset *ds = open_layout(INDEXED, BR_DATASET_DIRECT);
    for (uint32_t batch = 1; batch <= 3; batch++) {
        struct run r = {.ds = ds,
                        .size_of = idx_size,
                        .n = N_IDX,
                        .ids = ids,
                        .n_ids = sizeof ids / sizeof ids[0],
                        .workers = 1,
                        .batch = batch,
                        .backend = TF_PREAD};
        run_and_check(&r);
    }
    br_dataset_close(ds);
}

/* ---- info --------------------------------------------------------------- */

static void test_datasets_info(void **state)
{
    (void)state;
    br_dataset_info info;
    uint64_t total = 0, max = 0;

    br_dataset *ds = open_layout(RECORDS, 0);
    assert_int_equal(br_dataset_info_get(ds, &info), 0);
    assert_int_equal(info.samples, N_REC);
    assert_int_equal(info.max_sample_bytes, REC_BYTES);
    assert_int_equal(info.total_bytes, (uint64_t)N_REC * REC_BYTES);
    assert_true(info.has_labels);
    assert_string_equal(info.layout, "records");
    assert_int_equal(br_dataset_info_get(NULL, &info), -EINVAL);
    assert_int_equal(br_dataset_info_get(ds, NULL), -EINVAL);
    br_dataset_close(ds);

    for (uint64_t i = 0; i < N_FILES; i++) {
        total += file_size_of(i);
        max = file_size_of(i) > max ? file_size_of(i) : max;
    }
    ds = open_layout(FILES, 0);
    assert_int_equal(br_dataset_info_get(ds, &info), 0);
    assert_int_equal(info.samples, N_FILES);
    assert_int_equal(info.max_sample_bytes, max);
    assert_int_equal(info.total_bytes, total);
    assert_string_equal(info.layout, "files");
    br_dataset_close(ds);

    total = max = 0;
    for (uint64_t i = 0; i < N_IDX; i++) {
        total += idx_size(i);
        max = idx_size(i) > max ? idx_size(i) : max;
    }
    assert_int_equal(
        br_dataset_open_indexed(&ds, tf_path(dir, "data.bin"), tf_path(dir, "index.bin"), NULL, 0),
        0);
    assert_int_equal(br_dataset_info_get(ds, &info), 0);
    assert_int_equal(info.samples, N_IDX);
    assert_int_equal(info.max_sample_bytes, max);
    assert_int_equal(info.total_bytes, total);
    assert_false(info.has_labels);
    assert_string_equal(info.layout, "indexed");

    /* Without labels, batches come without them too. */
    br_options opt;
    br_batch b;
    br_gen *g;
    br_options_init(&opt);
    opt.batch_size = 10;
    opt.workers = 1;
    assert_int_equal(br_open_dataset(&g, ds, NULL, 0, &opt), 0);
    tu_track(g);
    assert_int_equal(br_next(g, &b), 0);
    assert_null(b.labels);
    assert_int_equal(b.count, 10);
    for (uint32_t i = 0; i < 10; i++)
        tf_check_sample(&b, i, i, SEED, idx_size);
    tu_close(g);
    assert_int_equal(br_dataset_close(ds), 0);
    assert_int_equal(br_dataset_close(NULL), 0);
}

/* ---- errors at open ----------------------------------------------------- */

/* Asserts that an open failed with code and a message naming `names`.
 * The macro runs the call before it reads *out (argument order). */
#define expect_open_error(call, out, code, names, also)                                            \
    do {                                                                                           \
        int rc_ = (call);                                                                          \
        expect_open_error_(rc_, (out), (code), (names), (also));                                   \
    } while (0)

static void expect_open_error_(int rc, br_dataset *ds, int code, const char *names,
                               const char *also)
{
    if (rc != code)
        fail_msg("expected %s, got %s: %s", br_err_name(code), br_err_name(rc),
                 br_last_error(NULL));
    assert_null(ds);
    tu_assert_contains(br_last_error(NULL), names);
    if (also)
        tu_assert_contains(br_last_error(NULL), also);
}

static void test_datasets_open_errors_records(void **state)
{
    (void)state;
    br_dataset *ds = (br_dataset *)1;
    const char *missing = tf_path(dir, "no-such.bin");
    const char *odd = tf_path(dir, "odd.bin");
    const char *empty = tf_path(dir, "empty.bin");
    char bytes[1000];
    memset(bytes, 1, sizeof bytes);

    expect_open_error(br_dataset_open_records(&ds, missing, 64, NULL, 0), ds, -ENOENT, missing,
                      "No such file");
    /* 1000 bytes are 15 records of 64 and 40 bytes left over. */
    tf_write(odd, bytes, sizeof bytes);
    ds = (br_dataset *)1;
    expect_open_error(br_dataset_open_records(&ds, odd, 64, NULL, 0), ds, -EINVAL, odd,
                      "1000 bytes, not a multiple of record_bytes 64");
    tu_assert_contains(br_last_error(NULL), "40 bytes left over");
    tf_write(empty, bytes, 0);
    ds = (br_dataset *)1;
    expect_open_error(br_dataset_open_records(&ds, empty, 64, NULL, 0), ds, -EINVAL, empty,
                      "empty");
    ds = (br_dataset *)1;
    expect_open_error(br_dataset_open_records(&ds, dir, 64, NULL, 0), ds, -EINVAL, dir,
                      "not a regular file");
    ds = (br_dataset *)1;
    expect_open_error(br_dataset_open_records(&ds, odd, 0, NULL, 0), ds, -EINVAL, "record_bytes",
                      NULL);
    ds = (br_dataset *)1;
    expect_open_error(br_dataset_open_records(&ds, odd, 8, NULL, 0x80), ds, -EINVAL, "flags", NULL);
    expect_open_error(br_dataset_open_records(NULL, odd, 8, NULL, 0), NULL, -EINVAL, "out", NULL);
    ds = (br_dataset *)1;
    expect_open_error(br_dataset_open_records(&ds, NULL, 8, NULL, 0), ds, -EINVAL, "path", NULL);

    /* Labels: missing, and one int32 short. */
    const char *labels = tf_path(dir, "short.labels");
    ds = (br_dataset *)1;
    expect_open_error(
        br_dataset_open_records(&ds, tf_path(dir, "records.bin"), REC_BYTES, missing, 0), ds,
        -ENOENT, missing, "labels file");
    tf_write_labels(labels, SEED, N_REC - 1);
    ds = (br_dataset *)1;
    expect_open_error(
        br_dataset_open_records(&ds, tf_path(dir, "records.bin"), REC_BYTES, labels, 0), ds,
        -EINVAL, labels, "2396 bytes");
    tu_assert_contains(br_last_error(NULL), "600 samples");
    /* A labels file that fits a records file of another record size does
     * not fit this one. */
    ds = (br_dataset *)1;
    expect_open_error(br_dataset_open_records(&ds, tf_path(dir, "records.bin"), REC_BYTES * 2,
                                              tf_path(dir, "records.labels"), 0),
                      ds, -EINVAL, "records.labels", "300 samples");
    unlink(odd), unlink(empty), unlink(labels);
}

static void write_index(const char *path, const uint64_t *pairs, size_t n_pairs)
{
    uint8_t buf[16 * 8];
    assert_true(n_pairs <= 8);
    for (size_t i = 0; i < n_pairs; i++) {
        put_le64(buf + i * 16, pairs[2 * i]);
        put_le64(buf + i * 16 + 8, pairs[2 * i + 1]);
    }
    tf_write(path, buf, n_pairs * 16);
}

static void test_datasets_open_errors_indexed(void **state)
{
    (void)state;
    const char *data = tf_path(dir, "small-data.bin");
    const char *index = tf_path(dir, "small-index.bin");
    br_dataset *ds = (br_dataset *)1;
    char bytes[1000];
    memset(bytes, 2, sizeof bytes);
    tf_write(data, bytes, sizeof bytes);

    /* Entry 2 ends one byte past the end. */
    const uint64_t past[] = {0, 10, 10, 990, 500, 501};
    write_index(index, past, 3);
    expect_open_error(br_dataset_open_indexed(&ds, data, index, NULL, 0), ds, -EINVAL,
                      "index entry 2", "offset 500, length 501");
    tu_assert_contains(br_last_error(NULL), data);
    tu_assert_contains(br_last_error(NULL), "1000 bytes");
    /* offset + length overflows 64 bits. */
    const uint64_t wrap[] = {0, 10, UINT64_MAX - 4, 10};
    write_index(index, wrap, 2);
    ds = (br_dataset *)1;
    expect_open_error(br_dataset_open_indexed(&ds, data, index, NULL, 0), ds, -EINVAL,
                      "index entry 1", index);
    const uint64_t huge[] = {5, UINT64_MAX};
    write_index(index, huge, 1);
    ds = (br_dataset *)1;
    expect_open_error(br_dataset_open_indexed(&ds, data, index, NULL, 0), ds, -EINVAL,
                      "index entry 0", NULL);
    /* A torn index: not whole pairs. */
    tf_write(index, bytes, 40);
    ds = (br_dataset *)1;
    expect_open_error(br_dataset_open_indexed(&ds, data, index, NULL, 0), ds, -EINVAL, index,
                      "not a multiple of 16");
    tf_write(index, bytes, 0);
    ds = (br_dataset *)1;
    expect_open_error(br_dataset_open_indexed(&ds, data, index, NULL, 0), ds, -EINVAL, index,
                      "empty");
    ds = (br_dataset *)1;
    expect_open_error(br_dataset_open_indexed(&ds, data, tf_path(dir, "nope.idx"), NULL, 0), ds,
                      -ENOENT, "nope.idx", "index file");
    ds = (br_dataset *)1;
    expect_open_error(br_dataset_open_indexed(&ds, tf_path(dir, "nope.bin"), index, NULL, 0), ds,
                      -ENOENT, "nope.bin", "data file");
    /* The last byte exactly is fine, and so is a 0-byte sample at the end. */
    const uint64_t edge[] = {0, 1000, 999, 1, 1000, 0};
    write_index(index, edge, 3);
    assert_int_equal(br_dataset_open_indexed(&ds, data, index, NULL, 0), 0);
    br_dataset_close(ds);
    unlink(data), unlink(index);
}

static void test_datasets_open_errors_files(void **state)
{
    (void)state;
    const char *list = tf_path(dir, "bad-list.txt");
    br_dataset *ds = (br_dataset *)1;
    char text[256];

    /* Line 2 names a file that does not exist. */
    snprintf(text, sizeof text, "f/000.bin\nf/001.bin\nf/missing.bin\nf/003.bin\n");
    tf_write(list, text, strlen(text));
    expect_open_error(br_dataset_open_files(&ds, list, NULL, 0), ds, -ENOENT, "f/missing.bin",
                      "sample 2");
    tu_assert_contains(br_last_error(NULL), "line 3");
    tu_assert_contains(br_last_error(NULL), dir);
    /* An empty line would shift every later sample by one. */
    snprintf(text, sizeof text, "f/000.bin\n\nf/001.bin\n");
    tf_write(list, text, strlen(text));
    ds = (br_dataset *)1;
    expect_open_error(br_dataset_open_files(&ds, list, NULL, 0), ds, -EINVAL, "line 2", "empty");
    tf_write(list, text, 0);
    ds = (br_dataset *)1;
    expect_open_error(br_dataset_open_files(&ds, list, NULL, 0), ds, -EINVAL, list, "empty");
    /* A directory is not a sample. */
    snprintf(text, sizeof text, "f/000.bin\nf\n");
    tf_write(list, text, strlen(text));
    ds = (br_dataset *)1;
    expect_open_error(br_dataset_open_files(&ds, list, NULL, 0), ds, -EINVAL, "sample 1",
                      "not a regular file");
    /* The last line needs no newline; labels must match the line count. */
    snprintf(text, sizeof text, "f/000.bin\nf/001.bin");
    tf_write(list, text, strlen(text));
    ds = (br_dataset *)1;
    expect_open_error(br_dataset_open_files(&ds, list, tf_path(dir, "files.labels"), 0), ds,
                      -EINVAL, "files.labels", "2 samples");
    assert_int_equal(br_dataset_open_files(&ds, list, NULL, 0), 0);
    br_dataset_info info;
    assert_int_equal(br_dataset_info_get(ds, &info), 0);
    assert_int_equal(info.samples, 2);
    br_dataset_close(ds);
    /* O_DIRECT cannot read whole files of any size. */
    ds = (br_dataset *)1;
    expect_open_error(br_dataset_open_files(&ds, list, NULL, BR_DATASET_DIRECT), ds, -EINVAL,
                      "BR_DATASET_DIRECT", NULL);
    ds = (br_dataset *)1;
    expect_open_error(br_dataset_open_files(&ds, tf_path(dir, "nolist.txt"), NULL, 0), ds, -ENOENT,
                      "nolist.txt", NULL);
    unlink(list);
}

/* O_DIRECT: the alignment rule at open, and a file system that refuses it. */
static void test_datasets_direct_refused(void **state)
{
    (void)state;
    br_dataset *ds = (br_dataset *)1;

    /* Records must be whole blocks: checked before any file is opened. */
    expect_open_error(br_dataset_open_records(&ds, tf_path(dir, "records.bin"), REC_BYTES, NULL,
                                              BR_DATASET_DIRECT),
                      ds, -EINVAL, "record_bytes 520", "multiple of 4096");

    /* procfs refuses O_DIRECT (open fails with EINVAL): the error must say
     * so and name the file, at open, not corrupt data later. */
    const char *proc = "/proc/self/status";
    int fd = open(proc, O_RDONLY | O_DIRECT);
    if (fd >= 0) {
        close(fd);
        print_message("[  SKIP    ] %s accepts O_DIRECT on this kernel: no file system here "
                      "refuses it without mounting one\n",
                      proc);
        skip();
    }
    assert_int_equal(errno, EINVAL);
    ds = (br_dataset *)1;
    expect_open_error(br_dataset_open_records(&ds, proc, 4096, NULL, BR_DATASET_DIRECT), ds,
                      -EOPNOTSUPP, proc, "refuses O_DIRECT");
    ds = (br_dataset *)1;
    expect_open_error(
        br_dataset_open_indexed(&ds, proc, tf_path(dir, "index.bin"), NULL, BR_DATASET_DIRECT), ds,
        -EOPNOTSUPP, proc, "refuses O_DIRECT");
    /* Without the flag the same file opens (it just has no records). */
    ds = (br_dataset *)1;
    expect_open_error(br_dataset_open_records(&ds, proc, 4096, NULL, 0), ds, -EINVAL, proc,
                      "empty");
}

static void no_fini(void *state, void *user)
{
    (void)state, (void)user;
}

static void test_datasets_open_dataset_errors(void **state)
{
    (void)state;
    br_dataset *ds = open_layout(RECORDS, 0);
    const uint64_t bad_ids[] = {0, 1, N_REC, 3};
    br_options opt;
    br_gen *g = (br_gen *)1;
    br_options_init(&opt);
    opt.batch_size = 2;

    expect_open_error(br_open_dataset(&g, ds, bad_ids, 4, &opt), NULL, -EINVAL, "ids[2] = 600",
                      "600");
    assert_null(g);
    g = (br_gen *)1;
    expect_open_error(br_open_dataset(&g, NULL, NULL, 0, &opt), NULL, -EINVAL, "ds is NULL", NULL);
    assert_null(g);
    expect_open_error(br_open_dataset(&g, ds, NULL, 0, NULL), NULL, -EINVAL, "opt", NULL);
    expect_open_error(br_open_dataset(NULL, ds, NULL, 0, &opt), NULL, -EINVAL, "out", NULL);
    /* br_open's own checks come through, with its message. */
    opt.batch_size = N_REC + 1;
    expect_open_error(br_open_dataset(&g, ds, NULL, 0, &opt), NULL, -EINVAL, "batch_size", NULL);
    assert_null(g);
    opt.batch_size = 2;
    /* Since 0.3 the caller's hooks are taken and run around the dataset's
     * own (test_transform.c checks what they do). */
    opt.worker_fini = no_fini;
    assert_int_equal(br_open_dataset(&g, ds, NULL, 0, &opt), 0);
    assert_int_equal(br_close(g), 0);
    br_dataset_close(ds);
}

/* ---- errors while loading ----------------------------------------------- */

/* Opens a generator over ds and reads until a batch fails; returns the
 * code, and the number of batches that arrived before it. */
static int run_until_error(br_dataset *ds, const uint64_t *ids, size_t n_ids, uint32_t batch,
                           uint32_t workers, size_t slot_bytes, uint64_t *good, char *msg,
                           size_t cap)
{
    br_options opt;
    br_batch b;
    br_gen *g;
    int rc;
    br_options_init(&opt);
    opt.batch_size = batch;
    opt.workers = workers;
    opt.epochs = 1;
    opt.slot_bytes = slot_bytes;
    rc = br_open_dataset(&g, ds, ids, n_ids, &opt);
    if (rc)
        fail_msg("br_open_dataset: %s", br_last_error(NULL));
    tu_track(g);
    *good = 0;
    while ((rc = br_next(g, &b)) == 0)
        (*good)++;
    snprintf(msg, cap, "%s", br_last_error(g));
    tu_close(g);
    return rc;
}

/* The records file is cut short after the dataset was opened: the batch
 * that reaches past the new end fails, naming the file and the sample. */
static void truncated_records(enum tf_backend backend)
{
    const char *path = tf_path(dir, "trunc.bin");
    char msg[1024];
    uint64_t good;
    br_dataset *ds;
    tu_leaks leaks;

    write_records("trunc.bin", 200, REC_BYTES);
    assert_int_equal(br_dataset_open_records(&ds, path, REC_BYTES, NULL, 0), 0);
    /* Sample 100 loses all but 17 bytes; batch 3 (ids 96..127) holds it. */
    assert_int_equal(truncate(path, 100 * REC_BYTES + 17), 0);
    for (uint32_t w = 0; w <= 1; w++) {
        tu_leaks_begin(&leaks);
        tf_backend_begin(backend);
        int rc = run_until_error(ds, NULL, 0, 32, w, 0, &good, msg, sizeof msg);
        tf_backend_end();
        tu_leaks_check(&leaks);
        if (rc != BR_ELOADER)
            fail_msg("expected BR_ELOADER, got %s: %s", br_err_name(rc), msg);
        assert_int_equal(good, 3);
        tu_assert_contains(msg, path);
        tu_assert_contains(msg, "sample 100");
        tu_assert_contains(msg, "ENODATA");
    }
    br_dataset_close(ds);
    unlink(path);
}

static void test_datasets_truncated_records_uring(void **state)
{
    (void)state;
    truncated_records(TF_URING);
}

static void test_datasets_truncated_records_pread(void **state)
{
    (void)state;
    truncated_records(TF_PREAD);
}

/* The indexed data file is cut inside sample 251, which lies in the
 * scrambled half: the error names it, with and without O_DIRECT. */
static void test_datasets_truncated_indexed(void **state)
{
    (void)state;
    const char *data = tf_path(dir, "trunc-data.bin");
    const uint64_t ids[] = {1, 2, 3, 251, 252, 4};
    char msg[1024];
    uint64_t good;
    br_dataset *ds;

    assert_true(idx_size(251) > 1);
    for (uint32_t direct = 0; direct <= 1; direct++) {
        if (direct && why_no_direct[0])
            break;
        /* A fresh copy of data.bin each time. */
        FILE *in = fopen(tf_path(dir, "data.bin"), "rb"), *out = fopen(data, "wb");
        char buf[65536];
        size_t n;
        assert_non_null(in);
        assert_non_null(out);
        while ((n = fread(buf, 1, sizeof buf, in)) > 0)
            assert_int_equal(fwrite(buf, 1, n, out), n);
        fclose(in);
        assert_int_equal(fclose(out), 0);

        assert_int_equal(br_dataset_open_indexed(&ds, data, tf_path(dir, "index.bin"), NULL,
                                                 direct ? BR_DATASET_DIRECT : 0),
                         0);
        assert_int_equal(truncate(data, (off_t)(idx_offset[251] + 1)), 0);
        tf_backend_begin(TF_PREAD);
        int rc = run_until_error(ds, ids, 6, 3, 1, 0, &good, msg, sizeof msg);
        tf_backend_end();
        if (rc != BR_ELOADER)
            fail_msg("expected BR_ELOADER, got %s: %s", br_err_name(rc), msg);
        /* Batch 0 (ids 1, 2, 3) lies before the cut; batch 1 does not. */
        assert_int_equal(good, 1);
        tu_assert_contains(msg, data);
        tu_assert_contains(msg, "sample 251");
        tu_assert_contains(msg, "cut off");
        br_dataset_close(ds);
    }
    unlink(data);
}

/* A file of the list changes after the dataset was opened: shorter, or
 * gone. The error names the file and its sample. */
static void test_datasets_files_changed(void **state)
{
    (void)state;
    char sub[4096], list[4200], name[64], msg[1024];
    FILE *f;
    br_dataset *ds;
    uint64_t good;
    tu_leaks leaks;

    snprintf(sub, sizeof sub, "%s", tf_path(dir, "changing"));
    assert_int_equal(mkdir(sub, 0755), 0);
    snprintf(list, sizeof list, "%s", tf_path(sub, "list.txt"));
    f = fopen(list, "w");
    assert_non_null(f);
    for (uint64_t i = 0; i < 50; i++) {
        snprintf(name, sizeof name, "%02" PRIu64 ".bin", i);
        int fd = open(tf_path(sub, name), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        assert_true(fd >= 0);
        tf_append_sample(fd, SEED, i, 1000 + i);
        close(fd);
        fprintf(f, "%s\n", name);
    }
    assert_int_equal(fclose(f), 0);
    assert_int_equal(br_dataset_open_files(&ds, list, NULL, 0), 0);
    assert_int_equal(truncate(tf_path(sub, "20.bin"), 500), 0);
    assert_int_equal(unlink(tf_path(sub, "40.bin")), 0);

    for (uint32_t w = 0; w <= 1; w++) {
        tu_leaks_begin(&leaks);
        int rc = run_until_error(ds, NULL, 0, 8, w, 0, &good, msg, sizeof msg);
        tu_leaks_check(&leaks);
        if (rc != BR_ELOADER)
            fail_msg("expected BR_ELOADER, got %s: %s", br_err_name(rc), msg);
        assert_int_equal(good, 2); /* batch 2 holds ids 16..23 */
        tu_assert_contains(msg, tf_path(sub, "20.bin"));
        tu_assert_contains(msg, "sample 20");
        tu_assert_contains(msg, "now 500 bytes");

        const uint64_t later[] = {38, 39, 40, 41};
        tu_leaks_begin(&leaks);
        rc = run_until_error(ds, later, 4, 2, w, 0, &good, msg, sizeof msg);
        tu_leaks_check(&leaks);
        if (rc != BR_ELOADER)
            fail_msg("expected BR_ELOADER, got %s: %s", br_err_name(rc), msg);
        assert_int_equal(good, 1);
        tu_assert_contains(msg, tf_path(sub, "40.bin"));
        tu_assert_contains(msg, "sample 40");
        tu_assert_contains(msg, "No such file");
    }
    br_dataset_close(ds);
    tf_remove_tree(sub);
}

/* An explicit slot_bytes smaller than a batch: the failing sample and the
 * sizes are named. */
static void test_datasets_slot_too_small(void **state)
{
    (void)state;
    char msg[1024], want[128];
    uint64_t good, big = 0;
    br_dataset *ds = open_layout(RECORDS, 0);

    /* 10 records and a byte: the 11th (id 10 of batch 0) does not fit. */
    int rc = run_until_error(ds, NULL, 0, 32, 1, 10 * REC_BYTES + 1, &good, msg, sizeof msg);
    if (rc != BR_ELOADER)
        fail_msg("expected BR_ELOADER, got %s: %s", br_err_name(rc), msg);
    assert_int_equal(good, 0);
    tu_assert_contains(msg, "sample 10 (520 bytes)");
    tu_assert_contains(msg, "slot holds 5201 bytes");
    br_dataset_close(ds);

    /* Files, one per batch, in a slot of 4000 bytes: the first larger file
     * fails. */
    while (file_size_of(big) <= 4000)
        big++;
    ds = open_layout(FILES, 0);
    rc = run_until_error(ds, NULL, 0, 1, 0, 4000, &good, msg, sizeof msg);
    if (rc != BR_ELOADER)
        fail_msg("expected BR_ELOADER, got %s: %s", br_err_name(rc), msg);
    assert_int_equal(good, big);
    snprintf(want, sizeof want, "sample %" PRIu64 " (%zu bytes)", big, file_size_of(big));
    tu_assert_contains(msg, want);
    tu_assert_contains(msg, "slot holds 4000 bytes");
    br_dataset_close(ds);
}

/* ---- unreadable files --------------------------------------------------- */

/* Root reads files whatever their mode, so the checks run in a child that
 * has dropped to nobody; its findings come back through a pipe. */
#define CHILD_CHECK(cond, ...)                                                                     \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            dprintf(report, "line %d: ", __LINE__);                                                \
            dprintf(report, __VA_ARGS__);                                                          \
            _exit(1);                                                                              \
        }                                                                                          \
    } while (0)

static void unreadable_child(int report, const char *sub)
{
    char msg[1024], rec[4200], list[4200];
    br_dataset *ds;
    br_options opt;
    br_gen *g;
    br_batch b;
    int rc, fd;

    snprintf(rec, sizeof rec, "%s", tf_path(sub, "rec.bin"));
    snprintf(list, sizeof list, "%s", tf_path(sub, "list.txt"));
    if (access(sub, W_OK | X_OK) != 0) {
        dprintf(report, "SKIP: %s is not reachable as uid %d: %s", sub, (int)geteuid(),
                strerror(errno));
        _exit(77);
    }
    /* At open: a records file nobody may read. */
    fd = open(rec, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CHILD_CHECK(fd >= 0, "create %s: %s", rec, strerror(errno));
    for (uint64_t i = 0; i < 4; i++)
        tf_append_sample(fd, SEED, i, 64);
    close(fd);
    CHILD_CHECK(chmod(rec, 0) == 0, "chmod: %s", strerror(errno));
    rc = br_dataset_open_records(&ds, rec, 64, NULL, 0);
    CHILD_CHECK(rc == -EACCES, "records: got %s: %s", br_err_name(rc), br_last_error(NULL));
    CHILD_CHECK(strstr(br_last_error(NULL), rec) && strstr(br_last_error(NULL), "Permission"),
                "records message: %s", br_last_error(NULL));

    /* At open: one file of a list. */
    FILE *f = fopen(list, "w");
    CHILD_CHECK(f, "create %s", list);
    fputs("a.bin\nb.bin\nc.bin\n", f);
    fclose(f);
    for (int i = 0; i < 3; i++) {
        char name[16];
        snprintf(name, sizeof name, "%c.bin", 'a' + i);
        fd = open(tf_path(sub, name), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        CHILD_CHECK(fd >= 0, "create %s", name);
        tf_append_sample(fd, SEED, (uint64_t)i, 100 + (size_t)i);
        close(fd);
    }
    CHILD_CHECK(chmod(tf_path(sub, "b.bin"), 0) == 0, "chmod b");
    rc = br_dataset_open_files(&ds, list, NULL, 0);
    CHILD_CHECK(rc == -EACCES, "files: got %s: %s", br_err_name(rc), br_last_error(NULL));
    CHILD_CHECK(strstr(br_last_error(NULL), "b.bin") && strstr(br_last_error(NULL), "sample 1"),
                "files message: %s", br_last_error(NULL));

    /* While loading: c.bin becomes unreadable after the dataset opened. */
    CHILD_CHECK(chmod(tf_path(sub, "b.bin"), 0644) == 0, "chmod b back");
    rc = br_dataset_open_files(&ds, list, NULL, 0);
    CHILD_CHECK(rc == 0, "files: %s", br_last_error(NULL));
    CHILD_CHECK(chmod(tf_path(sub, "c.bin"), 0) == 0, "chmod c");
    br_options_init(&opt);
    opt.batch_size = 1;
    opt.workers = 1;
    opt.epochs = 1;
    rc = br_open_dataset(&g, ds, NULL, 0, &opt);
    CHILD_CHECK(rc == 0, "br_open_dataset: %s", br_last_error(NULL));
    for (uint64_t i = 0; i < 2; i++) {
        rc = br_next(g, &b);
        CHILD_CHECK(rc == 0, "batch %" PRIu64 ": %s", i, br_last_error(g));
        CHILD_CHECK(br_synth_check(b.data, b.size, SEED, i) == 100 + i, "batch %" PRIu64 " bytes",
                    i);
    }
    rc = br_next(g, &b);
    snprintf(msg, sizeof msg, "%s", br_last_error(g));
    CHILD_CHECK(rc == BR_ELOADER, "batch 2: got %s: %s", br_err_name(rc), msg);
    CHILD_CHECK(strstr(msg, tf_path(sub, "c.bin")) && strstr(msg, "sample 2") &&
                    strstr(msg, "Permission denied"),
                "load message: %s", msg);
    br_close(g);
    br_dataset_close(ds);
    _exit(0);
}

static void test_datasets_unreadable(void **state)
{
    (void)state;
    char sub[4096], report[2048];
    int fds[2], status;
    ssize_t n;
    size_t got = 0;
    pid_t pid;

    snprintf(sub, sizeof sub, "%s", tf_path(dir, "unreadable"));
    assert_int_equal(mkdir(sub, 0755), 0);
    if (geteuid() == 0)
        assert_int_equal(chown(sub, 65534, 65534), 0);
    assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
    fflush(NULL);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        if (geteuid() == 0 &&
            (setgroups(0, NULL) != 0 || setgid(65534) != 0 || setuid(65534) != 0)) {
            dprintf(fds[1], "cannot drop to uid 65534: %s", strerror(errno));
            _exit(1);
        }
        unreadable_child(fds[1], sub);
    }
    close(fds[1]);
    while ((n = read(fds[0], report + got, sizeof report - 1 - got)) > 0)
        got += (size_t)n;
    report[got] = '\0';
    close(fds[0]);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    tf_remove_tree(sub);
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) == 77) {
        print_message("[  SKIP    ] %s\n", report);
        skip();
    }
    if (WEXITSTATUS(status) != 0)
        fail_msg("as uid 65534: %s", report);
}

/* ---- mkdata's output opens and reads back ------------------------------ */

static void test_datasets_mkdata_roundtrip(void **state)
{
    (void)state;
    static const char *const layouts[] = {"records", "files", "indexed"};
    char sub[4096], err[1024];

    for (size_t l = 0; l < 3; l++) {
        struct br_mkdata_spec spec = {
            .layout = layouts[l],
            .samples = 300,
            .min_bytes = l == 0 ? 1000 : 0,
            .max_bytes = l == 0 ? 1000 : 5000,
            .seed = 99,
        };
        uint64_t data_bytes = 0, total = 0;
        br_dataset *ds = NULL;
        br_options opt;
        br_batch b;
        br_gen *g;
        int rc;

        assert_true((size_t)snprintf(sub, sizeof sub, "%s/mk-%s/deeper", dir, layouts[l]) <
                    sizeof sub);
        spec.dir = sub;
        rc = br_mkdata_write(&spec, &data_bytes, err, sizeof err);
        if (rc)
            fail_msg("mkdata %s: %s", layouts[l], err);
        if (l == 0)
            rc = br_dataset_open_records(&ds, tf_path(sub, BR_MKDATA_RECORDS), 1000,
                                         tf_path(sub, BR_MKDATA_LABELS), 0);
        else if (l == 1)
            rc = br_dataset_open_files(&ds, tf_path(sub, BR_MKDATA_LIST),
                                       tf_path(sub, BR_MKDATA_LABELS), 0);
        else
            rc = br_dataset_open_indexed(&ds, tf_path(sub, BR_MKDATA_DATA),
                                         tf_path(sub, BR_MKDATA_INDEX),
                                         tf_path(sub, BR_MKDATA_LABELS), 0);
        if (rc)
            fail_msg("opening mkdata's %s: %s", layouts[l], br_last_error(NULL));
        br_options_init(&opt);
        opt.batch_size = 7;
        opt.workers = 1;
        opt.epochs = 1;
        assert_int_equal(br_open_dataset(&g, ds, NULL, 0, &opt), 0);
        tu_track(g);
        while ((rc = br_next(g, &b)) == 0) {
            for (uint32_t i = 0; i < b.count; i++) {
                uint64_t id = b.ids[i];
                size_t len = br_synth_size(99, id, spec.min_bytes, spec.max_bytes);
                assert_int_equal(b.offsets[i + 1] - b.offsets[i], len);
                assert_int_equal(
                    br_synth_check((const uint8_t *)b.data + b.offsets[i], len, 99, id), len);
                assert_int_equal(b.labels[i], br_synth_label(99, id));
                total += len;
            }
        }
        assert_int_equal(rc, BR_EOF);
        assert_int_equal(total, data_bytes);
        tu_close(g);
        br_dataset_close(ds);
    }
    /* Bad specs are refused with a message. */
    struct br_mkdata_spec bad = {
        .layout = "records", .dir = sub, .samples = 10, .min_bytes = 1, .max_bytes = 2};
    assert_int_equal(br_mkdata_write(&bad, NULL, err, sizeof err), -EINVAL);
    tu_assert_contains(err, "one size");
    bad.layout = "heap";
    bad.max_bytes = 1;
    assert_int_equal(br_mkdata_write(&bad, NULL, err, sizeof err), -EINVAL);
    tu_assert_contains(err, "heap");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_datasets_records_uring, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_datasets_records_pread, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_datasets_files_uring, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_datasets_files_pread, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_datasets_indexed_uring, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_datasets_indexed_pread, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_datasets_direct_records_uring, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_datasets_direct_records_pread, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_datasets_direct_indexed_uring, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_datasets_direct_indexed_pread, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_datasets_direct_indexed_tail, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_datasets_info, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_datasets_open_errors_records, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_datasets_open_errors_indexed, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_datasets_open_errors_files, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_datasets_direct_refused, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_datasets_open_dataset_errors, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_datasets_truncated_records_uring, tu_setup,
                                        tu_teardown),
        cmocka_unit_test_setup_teardown(test_datasets_truncated_records_pread, tu_setup,
                                        tu_teardown),
        cmocka_unit_test_setup_teardown(test_datasets_truncated_indexed, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_datasets_files_changed, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_datasets_slot_too_small, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_datasets_unreadable, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_datasets_mkdata_roundtrip, tu_setup, tu_teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
