/* SPDX-License-Identifier: MIT */
/*
 * Shards (datasets/shards.c, through the tokens layout, and records,
 * indexed and packed shards): the id map across shard boundaries,
 * thousands of shards under a low `ulimit -n` for each sharded layout (in a
 * child that lowers RLIMIT_NOFILE before it opens anything), and a shard
 * that shrinks or disappears mid-run, which must fail the batch with
 * BR_ELOADER naming the shard, never deliver other bytes; so must a file of
 * any layout that reopens by path (shards, files) replaced or rewritten
 * after the open with one of the same size. The files layout from a glob
 * as well.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <batchring.h>

#include "datasets/sample_shards.h" /* the searches counter */
#include "test_fs.h"
#include "test_util.h"

static char dir[256];

/* Raw 2-byte shards whose token t of shard s is (s * 1000 + t) & 0xffff,
 * so a window says where it came from. */
static uint16_t tok(uint32_t s, uint64_t t)
{
    return (uint16_t)(s * 1000u + t);
}

static void write_raw(const char *path, uint32_t s, uint64_t ntok)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        fail_msg("fopen %s: %s", path, strerror(errno));
    for (uint64_t t = 0; t < ntok; t++) {
        uint16_t v = htole16(tok(s, t));
        if (fwrite(&v, 2, 1, f) != 1)
            fail_msg("fwrite %s", path);
    }
    if (fclose(f))
        fail_msg("fclose %s", path);
}

/* Does window i of batch b hold tokens [local * T, local * T + T] of s? */
static bool window_is(const br_batch *b, uint32_t i, size_t T, uint32_t s, uint64_t local)
{
    const int32_t *in = (const int32_t *)b->data + (size_t)i * T;
    const int32_t *tg = (const int32_t *)b->data + ((size_t)b->count + i) * T;
    for (size_t t = 0; t < T; t++)
        if (in[t] != tok(s, local * T + t) || tg[t] != tok(s, local * T + t + 1))
            return false;
    return true;
}

/* Shards of 3, 0, 1, 2 and 0 windows (T = 4): ids 0..2 -> shard 0, 3 ->
 * shard 2, 4..5 -> shard 3. Asked for across every boundary, in one batch
 * and in batches of one, by workers and inline. */
static void test_shards_id_map(void **state)
{
    (void)state;
    const size_t T = 4;
    const uint64_t ntok[] = {3 * 4 + 1, 4, 4 + 3, 2 * 4 + 1, 0};
    const uint32_t shard_of[] = {0, 0, 0, 2, 3, 3};
    const uint64_t local_of[] = {0, 1, 2, 0, 0, 1};
    const uint64_t ids[] = {2, 3, 4, 0, 5, 1, 3, 2};
    char name[64];
    br_dataset *ds;
    br_dataset_info info;

    for (uint32_t s = 0; s < 5; s++) {
        snprintf(name, sizeof name, "map-%u.tok", s);
        write_raw(tf_path(dir, name), s, ntok[s]);
    }
    assert_int_equal(br_dataset_open_tokens(&ds, tf_path(dir, "map-*.tok"), T, 2, 0), 0);
    assert_int_equal(br_dataset_info_get(ds, &info), 0);
    assert_int_equal(info.samples, 6);
    assert_int_equal(info.shards, 5);
    for (uint32_t bs = 1; bs <= 8; bs += 7)
        for (uint32_t w = 0; w <= 2; w += 2) {
            br_options opt;
            br_batch b;
            br_gen *g;
            uint32_t seen = 0;
            int rc;
            br_options_init(&opt);
            opt.batch_size = bs;
            opt.workers = w;
            opt.epochs = 1;
            assert_int_equal(br_open_dataset(&g, ds, ids, 8, &opt), 0);
            while ((rc = br_next(g, &b)) == 0)
                for (uint32_t i = 0; i < b.count; i++, seen++) {
                    uint64_t id = b.ids[i];
                    assert_int_equal(id, ids[seen]);
                    if (!window_is(&b, i, T, shard_of[id], local_of[id]))
                        fail_msg("id %llu is not window %llu of shard %u (batch size %u, "
                                 "%u workers)",
                                 (unsigned long long)id, (unsigned long long)local_of[id],
                                 shard_of[id], bs, w);
                }
            assert_int_equal(rc, BR_EOF);
            assert_int_equal(seen, 8);
            br_close(g);
        }
    /* An id past the end is refused at open. */
    {
        const uint64_t bad = 6;
        br_options opt;
        br_gen *g;
        br_options_init(&opt);
        assert_int_equal(br_open_dataset(&g, ds, &bad, 1, &opt), -EINVAL);
        tu_assert_contains(br_last_error(NULL), "tokens");
    }
    br_dataset_close(ds);
}

/* The child's whole run; returns 0 or a line number of the failure. */
static int many_shards_child(uint32_t nshards, rlim_t limit)
{
    const size_t T = 8;
    struct rlimit rl = {limit, limit};
    br_dataset *ds;
    br_options opt;
    br_batch b;
    br_gen *g;
    uint64_t seen = 0;
    uint8_t *hit = calloc(2 * nshards, 1);
    int rc;

    if (!hit || setrlimit(RLIMIT_NOFILE, &rl))
        return __LINE__;
    if (br_dataset_open_tokens(&ds, tf_path(dir, "many/s-*.tok"), T, 2, 0)) {
        fprintf(stderr, "open: %s\n", br_last_error(NULL));
        return __LINE__;
    }
    br_options_init(&opt);
    opt.batch_size = 97; /* more shards per batch than a worker keeps open */
    opt.workers = 2;
    opt.epochs = 1;
    opt.shuffle = true;
    opt.seed = 7;
    if (br_open_dataset(&g, ds, NULL, 0, &opt)) {
        fprintf(stderr, "br_open_dataset: %s\n", br_last_error(NULL));
        return __LINE__;
    }
    while ((rc = br_next(g, &b)) == 0)
        for (uint32_t i = 0; i < b.count; i++, seen++) {
            uint64_t id = b.ids[i];
            if (id >= 2 * nshards || hit[id]++ || !window_is(&b, i, T, (uint32_t)(id / 2), id % 2))
                return __LINE__;
        }
    if (rc != BR_EOF) {
        fprintf(stderr, "br_next: %s: %s\n", br_err_name(rc), br_last_error(g));
        return __LINE__;
    }
    br_close(g);
    br_dataset_close(ds);
    free(hit);
    return seen == 2 * nshards ? 0 : __LINE__;
}

/* 3000 shards of two windows each, shuffled, in a process allowed 128
 * descriptors: more shards than descriptors, and batches that touch more
 * shards than a worker keeps open (64). */
static void test_shards_many_low_ulimit(void **state)
{
    (void)state;
    const uint32_t nshards = 3000;
    char name[64];
    int status;
    pid_t pid;

    snprintf(name, sizeof name, "%s", "many");
    assert_int_equal(mkdir(tf_path(dir, name), 0700), 0);
    for (uint32_t s = 0; s < nshards; s++) {
        snprintf(name, sizeof name, "many/s-%05u.tok", s);
        write_raw(tf_path(dir, name), s, 2 * 8 + 1);
    }
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(many_shards_child(nshards, 128) ? 1 : 0);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("the child with ulimit -n 128 failed (status 0x%x; its stderr says why)", status);
}

/* Opens one epoch of ds in batches of B; a failure's message goes to msg. */
static int open_epoch(br_dataset *ds, uint32_t B, uint32_t workers, bool shuffle, br_gen **g,
                      char *msg, size_t cap)
{
    br_options opt;
    int rc;
    br_options_init(&opt);
    opt.batch_size = B;
    opt.workers = workers;
    opt.epochs = 1;
    opt.shuffle = shuffle;
    opt.seed = 11;
    msg[0] = '\0';
    rc = br_open_dataset(g, ds, NULL, 0, &opt);
    if (rc)
        snprintf(msg, cap, "%s", br_last_error(NULL));
    return rc;
}

/* Runs until the first error; *good is the batches before it. */
static int run_until_error(br_dataset *ds, uint32_t B, uint32_t workers, uint64_t *good, char *msg,
                           size_t cap)
{
    br_batch b;
    br_gen *g;
    int rc = open_epoch(ds, B, workers, false, &g, msg, cap);
    *good = 0;
    if (rc)
        return rc;
    while ((rc = br_next(g, &b)) == 0) {
        /* Every batch delivered is right: never other bytes. */
        for (uint32_t i = 0; i < b.count; i++) {
            uint64_t id = b.ids[i];
            assert_true(window_is(&b, i, 4, (uint32_t)(id / 4), id % 4));
        }
        (*good)++;
    }
    snprintf(msg, cap, "%s", br_last_error(g));
    br_close(g);
    return rc;
}

/* Shard 2 of 4 (windows 8..11) shrinks after open, and then disappears:
 * batches 0 and 1 (B = 4) arrive, batch 2 is BR_ELOADER naming the shard.
 * With workers = 0 a first full run leaves shard 2 open in the trainer's
 * reader, so the shrink is met by a short read, not at open. */
static void test_shards_truncated_midrun(void **state)
{
    (void)state;
    char path[4][300], msg[1024];
    br_dataset *ds;
    uint64_t good;
    int rc;

    for (uint32_t s = 0; s < 4; s++) {
        char name[64];
        snprintf(name, sizeof name, "cut-%u.tok", s);
        snprintf(path[s], sizeof path[s], "%s", tf_path(dir, name));
        write_raw(path[s], s, 4 * 4 + 1);
    }
    for (int be = 0; be < 2; be++) {
        for (uint32_t w = 0; w <= 1; w++) {
            write_raw(path[2], 2, 4 * 4 + 1);
            assert_int_equal(br_dataset_open_tokens(&ds, tf_path(dir, "cut-*.tok"), 4, 2, 0), 0);
            tf_backend_begin(be ? TF_URING : TF_PREAD);
            if (w == 0) {
                rc = run_until_error(ds, 4, 0, &good, msg, sizeof msg);
                assert_int_equal(rc, BR_EOF);
                assert_int_equal(good, 4);
            }
            assert_int_equal(truncate(path[2], 2 * 4 * 2), 0);
            rc = run_until_error(ds, 4, w, &good, msg, sizeof msg);
            if (rc != BR_ELOADER)
                fail_msg("shrunk shard, %u workers: expected BR_ELOADER, got %s: %s", w,
                         br_err_name(rc), msg);
            assert_int_equal(good, 2);
            tu_assert_contains(msg, path[2]);
            tu_assert_contains(msg, "is now 16 bytes, 34 when the dataset was opened");
            assert_int_equal(unlink(path[2]), 0);
            rc = run_until_error(ds, 4, 1, &good, msg, sizeof msg);
            if (rc != BR_ELOADER)
                fail_msg("removed shard: expected BR_ELOADER, got %s: %s", br_err_name(rc), msg);
            assert_int_equal(good, 2);
            tu_assert_contains(msg, path[2]);
            tf_backend_end();
            br_dataset_close(ds);
        }
    }
}

/* Record bytes of global sample id: each byte says which sample it is. */
static uint8_t rec_byte(uint64_t id, size_t b)
{
    return (uint8_t)(id * 131 + b * 7 + 1);
}

/* Records in shards of 3, 0, 5 and 1 records (24 bytes each), with labels:
 * shuffled, by workers and inline, every record and label right; then a
 * shard cut short is BR_ELOADER naming it, never other bytes. */
static void test_shards_records(void **state)
{
    (void)state;
    const uint32_t per[] = {3, 0, 5, 1};
    const size_t rb = 24;
    char path[4][300], labels[300], msg[1024];
    uint64_t id = 0;
    br_dataset *ds;
    br_dataset_info info;

    for (uint32_t s = 0; s < 4; s++) {
        char name[64];
        FILE *f;
        snprintf(name, sizeof name, "rec-%u.bin", s);
        snprintf(path[s], sizeof path[s], "%s", tf_path(dir, name));
        f = fopen(path[s], "wb");
        assert_non_null(f);
        for (uint32_t r = 0; r < per[s]; r++, id++)
            for (size_t b = 0; b < rb; b++)
                fputc(rec_byte(id, b), f);
        assert_int_equal(fclose(f), 0);
    }
    snprintf(labels, sizeof labels, "%s", tf_path(dir, "rec-labels"));
    {
        FILE *f = fopen(labels, "wb");
        assert_non_null(f);
        for (uint32_t i = 0; i < 9; i++) {
            int32_t v = (int32_t)htole32(1000 + i);
            fwrite(&v, 4, 1, f);
        }
        assert_int_equal(fclose(f), 0);
    }
    assert_int_equal(br_dataset_open_record_shards(&ds, tf_path(dir, "rec-*.bin"), rb, labels, 0),
                     0);
    assert_int_equal(br_dataset_info_get(ds, &info), 0);
    assert_int_equal(info.samples, 9);
    assert_int_equal(info.shards, 4);
    assert_string_equal(info.layout, "records");
    for (uint32_t w = 0; w <= 2; w += 2) {
        br_options opt;
        br_batch b;
        br_gen *g;
        uint64_t seen = 0;
        int rc;
        br_options_init(&opt);
        opt.batch_size = 4;
        opt.workers = w;
        opt.epochs = 2;
        opt.shuffle = true;
        assert_int_equal(br_open_dataset(&g, ds, NULL, 0, &opt), 0);
        while ((rc = br_next(g, &b)) == 0)
            for (uint32_t i = 0; i < b.count; i++, seen++) {
                const uint8_t *r = (const uint8_t *)b.data + b.offsets[i];
                assert_int_equal(b.offsets[i + 1] - b.offsets[i], rb);
                for (size_t k = 0; k < rb; k++)
                    if (r[k] != rec_byte(b.ids[i], k))
                        fail_msg("record %llu byte %zu is wrong (%u workers)",
                                 (unsigned long long)b.ids[i], k, w);
                assert_int_equal(b.labels[i], 1000 + (int32_t)b.ids[i]);
            }
        assert_int_equal(rc, BR_EOF);
        assert_int_equal(seen, 18);
        br_close(g);
    }
    /* Shard 2 (ids 3..7) loses its last two records. In order, batches of
     * 4: batch 0 (ids 0..3) arrives, batch 1 (ids 4..7) does not. */
    assert_int_equal(truncate(path[2], 3 * rb), 0);
    {
        br_options opt;
        br_batch b;
        br_gen *g;
        int rc;
        uint64_t good = 0;
        br_options_init(&opt);
        opt.batch_size = 4;
        opt.workers = 1;
        opt.epochs = 1;
        assert_int_equal(br_open_dataset(&g, ds, NULL, 0, &opt), 0);
        while ((rc = br_next(g, &b)) == 0)
            good++;
        snprintf(msg, sizeof msg, "%s", br_last_error(g));
        br_close(g);
        if (rc != BR_ELOADER)
            fail_msg("expected BR_ELOADER, got %s: %s", br_err_name(rc), msg);
        assert_int_equal(good, 1);
        tu_assert_contains(msg, path[2]);
        tu_assert_contains(msg, "is now 72 bytes, 120 when the dataset was opened");
    }
    br_dataset_close(ds);
    /* Open-time checks name the shard. */
    {
        br_dataset *bad = NULL;
        FILE *f = fopen(path[1], "wb");
        assert_non_null(f);
        fputc(0, f);
        assert_int_equal(fclose(f), 0);
        assert_int_equal(br_dataset_open_record_shards(&bad, tf_path(dir, "rec-*.bin"), rb, NULL, 0),
                         -EINVAL);
        assert_null(bad);
        tu_assert_contains(br_last_error(NULL), path[1]);
        tu_assert_contains(br_last_error(NULL), "not a multiple of record_bytes");
    }
}

/* Length of sample id of the indexed shards below: 0 .. 22 bytes, some 0. */
static size_t var_len(uint64_t id)
{
    return (size_t)((id * 7) % 23);
}

/* Checks sample i of b: var_len or rb bytes of rec_byte(id). */
static bool sample_is(const br_batch *b, uint32_t i, size_t len)
{
    const uint8_t *r = (const uint8_t *)b->data + b->offsets[i];
    if (b->offsets[i + 1] - b->offsets[i] != len)
        return false;
    for (size_t k = 0; k < len; k++)
        if (r[k] != rec_byte(b->ids[i], k))
            return false;
    return true;
}

/* Writes an indexed shard holding global samples first .. first + n - 1:
 * stored in reverse order, one junk byte before each, so that neighbours
 * in id are not neighbours in the file (except where a run is asked for:
 * the second half in order, without junk, which reads coalesce). */
static void write_indexed_shard(const char *data, const char *index, uint64_t first, uint32_t n)
{
    FILE *d = fopen(data, "wb"), *x = fopen(index, "wb");
    uint64_t *off = calloc(n + 1, sizeof *off), at = 0;
    assert_non_null(d);
    assert_non_null(x);
    assert_non_null(off);
    for (uint32_t k = 0; k < n / 2; k++) {
        uint32_t r = n / 2 - 1 - k;
        fputc(0xee, d), at++;
        off[r] = at;
        for (size_t b = 0; b < var_len(first + r); b++, at++)
            fputc(rec_byte(first + r, b), d);
    }
    for (uint32_t r = n / 2; r < n; r++) {
        off[r] = at;
        for (size_t b = 0; b < var_len(first + r); b++, at++)
            fputc(rec_byte(first + r, b), d);
    }
    for (uint32_t r = 0; r < n; r++) {
        uint64_t e[2] = {htole64(off[r]), htole64(var_len(first + r))};
        assert_int_equal(fwrite(e, 16, 1, x), 1);
    }
    free(off);
    assert_int_equal(fclose(d), 0);
    assert_int_equal(fclose(x), 0);
}

/* Serves every sample of ds once (shuffled, or in order) and checks each;
 * returns the error code at the end (BR_EOF when all went well), with
 * *seen the samples delivered and their labels checked when labelled. */
static int serve_all(br_dataset *ds, uint32_t B, uint32_t workers, bool shuffle, bool fixed,
                     size_t rb, bool labelled, uint64_t *seen, char *msg, size_t cap)
{
    br_batch b;
    br_gen *g;
    int rc = open_epoch(ds, B, workers, shuffle, &g, msg, cap);
    *seen = 0;
    if (rc)
        return rc;
    while ((rc = br_next(g, &b)) == 0)
        for (uint32_t i = 0; i < b.count; i++, (*seen)++) {
            if (!sample_is(&b, i, fixed ? rb : var_len(b.ids[i])))
                fail_msg("sample %llu is wrong (%u workers, batch %u)",
                         (unsigned long long)b.ids[i], workers, B);
            if (labelled)
                assert_int_equal(b.labels[i], 1000 + (int32_t)b.ids[i]);
        }
    snprintf(msg, cap, "%s", br_last_error(g));
    br_close(g);
    return rc;
}

static void write_labels(const char *path, uint32_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    for (uint32_t i = 0; i < n; i++) {
        int32_t v = (int32_t)htole32(1000 + i);
        assert_int_equal(fwrite(&v, 4, 1, f), 1);
    }
    assert_int_equal(fclose(f), 0);
}

/* Indexed shards of 6, 0, 9 and 1 samples, each with its index beside it
 * (NAME.idx), samples of 0 .. 22 bytes stored out of order: every sample
 * and label right, shuffled and in order, by workers and inline; a data
 * shard cut short is BR_ELOADER naming it; an index entry past its shard's
 * end and a missing index are errors at open naming the files. */
static void test_shards_indexed(void **state)
{
    (void)state;
    const uint32_t per[] = {6, 0, 9, 1};
    char data[4][300], msg[1024], labels[300];
    uint64_t first = 0, seen;
    br_dataset *ds;
    br_dataset_info info;
    int rc;

    for (uint32_t s = 0; s < 4; s++) {
        char name[64], index[sizeof data + 8];
        snprintf(name, sizeof name, "ix-%u.bin", s);
        snprintf(data[s], sizeof data[s], "%s", tf_path(dir, name));
        snprintf(index, sizeof index, "%s.idx", data[s]);
        write_indexed_shard(data[s], index, first, per[s]);
        first += per[s];
    }
    snprintf(labels, sizeof labels, "%s", tf_path(dir, "ix-labels"));
    write_labels(labels, 16);
    assert_int_equal(br_dataset_open_indexed_shards(&ds, tf_path(dir, "ix-*.bin"), NULL, labels,
                                                    0),
                     0);
    assert_int_equal(br_dataset_info_get(ds, &info), 0);
    assert_int_equal(info.samples, 16);
    assert_int_equal(info.shards, 4);
    assert_int_equal(info.max_sample_bytes, 22);
    assert_string_equal(info.layout, "indexed");
    assert_true(info.has_labels);
    for (uint32_t w = 0; w <= 2; w += 2)
        for (int shuffle = 0; shuffle <= 1; shuffle++) {
            rc = serve_all(ds, 5, w, shuffle, false, 0, true, &seen, msg, sizeof msg);
            if (rc != BR_EOF)
                fail_msg("%s: %s", br_err_name(rc), msg);
            assert_int_equal(seen, 16);
        }
    /* Shard 2 (ids 6..14) loses its tail: in order, batches of 5, batch 0
     * (ids 0..4) arrives; batch 1 reaches shard 2 and fails naming it. */
    assert_int_equal(truncate(data[2], 10), 0);
    rc = serve_all(ds, 5, 1, false, false, 0, true, &seen, msg, sizeof msg);
    if (rc != BR_ELOADER)
        fail_msg("expected BR_ELOADER, got %s: %s", br_err_name(rc), msg);
    assert_int_equal(seen, 5);
    tu_assert_contains(msg, data[2]);
    tu_assert_contains(msg, "is now 10 bytes");
    br_dataset_close(ds);
    /* At open: shard 2's entries now run past its end. */
    assert_int_equal(br_dataset_open_indexed_shards(&ds, tf_path(dir, "ix-*.bin"), ".idx", NULL,
                                                    0),
                     -EINVAL);
    assert_null(ds);
    tu_assert_contains(br_last_error(NULL), data[2]);
    tu_assert_contains(br_last_error(NULL), ".idx");
    tu_assert_contains(br_last_error(NULL), "past the end");
    /* A shard without its index. */
    assert_int_equal(br_dataset_open_indexed_shards(&ds, tf_path(dir, "ix-*.bin"), ".index",
                                                    NULL, 0),
                     -ENOENT);
    tu_assert_contains(br_last_error(NULL), "ix-0.bin.index");
    assert_int_equal(br_dataset_open_indexed_shards(&ds, tf_path(dir, "ix-*.bin"), "", NULL, 0),
                     -EINVAL);
    tu_assert_contains(br_last_error(NULL), "index_suffix");
    assert_int_equal(br_dataset_open_indexed_shards(&ds, tf_path(dir, "ix-*.bin"), NULL, NULL,
                                                    BR_DATASET_DIRECT),
                     -EINVAL);
    tu_assert_contains(br_last_error(NULL), "unknown flags");
}

/* The files layout from a glob: the matches in name order (not the order
 * they were made in), each file one sample; and from @LIST. */
static void test_shards_files_glob(void **state)
{
    (void)state;
    const uint32_t n = 7, made[] = {3, 0, 6, 1, 5, 2, 4};
    char name[64], msg[1024], list[300];
    uint64_t seen;
    br_dataset *ds;
    br_dataset_info info;
    FILE *lf;
    int rc;

    assert_int_equal(mkdir(tf_path(dir, "files"), 0700), 0);
    snprintf(list, sizeof list, "%s", tf_path(dir, "files/list"));
    lf = fopen(list, "w");
    assert_non_null(lf);
    for (uint32_t k = 0; k < n; k++) {
        uint8_t buf[32];
        uint32_t id = made[k];
        for (size_t b = 0; b < var_len(id); b++)
            buf[b] = rec_byte(id, b);
        snprintf(name, sizeof name, "files/f-%02u.raw", id);
        tf_write(tf_path(dir, name), buf, var_len(id));
    }
    for (uint32_t id = 0; id < n; id++)
        fprintf(lf, "f-%02u.raw\n", id);
    assert_int_equal(fclose(lf), 0);
    for (int form = 0; form < 2; form++) {
        char pattern[320];
        snprintf(pattern, sizeof pattern, form ? "@%s" : "%s",
                 form ? list : tf_path(dir, "files/f-*.raw"));
        rc = br_dataset_open_files_glob(&ds, pattern, NULL, 0);
        if (rc)
            fail_msg("%s: %s", pattern, br_last_error(NULL));
        assert_int_equal(br_dataset_info_get(ds, &info), 0);
        assert_int_equal(info.samples, n);
        assert_string_equal(info.layout, "files");
        for (uint32_t w = 0; w <= 2; w += 2) {
            rc = serve_all(ds, 3, w, true, false, 0, false, &seen, msg, sizeof msg);
            if (rc != BR_EOF)
                fail_msg("%s: %s", br_err_name(rc), msg);
            assert_int_equal(seen, n);
        }
        br_dataset_close(ds);
    }
    assert_int_equal(br_dataset_open_files_glob(&ds, tf_path(dir, "files/none-*"), NULL, 0),
                     -ENOENT);
    tu_assert_contains(br_last_error(NULL), "none-*");
}

/* Records in 4 shards of 5 (8 bytes each), served inline in order and
 * shuffled, in batches of 4 and 7: each sample's shard is searched once
 * per batch, not again for each run of samples read together. The count
 * is the trainer's reader's (workers = 0). */
static void test_shards_one_search_per_sample(void **state)
{
    (void)state;
    char name[64], msg[1024];
    br_dataset *ds;
    const struct br__sample_shards *r;
    uint64_t seen;

    assert_int_equal(mkdir(tf_path(dir, "search"), 0700), 0);
    for (uint32_t s = 0; s < 4; s++) {
        uint8_t rec[40];
        for (size_t b = 0; b < sizeof rec; b++)
            rec[b] = rec_byte(5 * s + b / 8, b % 8);
        snprintf(name, sizeof name, "search/s-%u.bin", s);
        tf_write(tf_path(dir, name), rec, sizeof rec);
    }
    assert_int_equal(br_dataset_open_record_shards(&ds, tf_path(dir, "search/s-*.bin"), 8, NULL,
                                                   0),
                     0);
    r = br__dataset_sample_shards(ds);
    assert_non_null(r);
    for (uint32_t B = 4; B <= 7; B += 3)
        for (int shuffle = 0; shuffle <= 1; shuffle++) {
            uint64_t before = r->searches;
            int rc = serve_all(ds, B, 0, shuffle, true, 8, false, &seen, msg, sizeof msg);
            if (rc != BR_EOF)
                fail_msg("%s: %s", br_err_name(rc), msg);
            assert_int_equal(seen, 20);
            if (r->searches - before != 20)
                fail_msg("%llu shard searches for 20 samples (batches of %u, %s)",
                         (unsigned long long)(r->searches - before), B,
                         shuffle ? "shuffled" : "in order");
        }
    br_dataset_close(ds);
}

/* Every layout that reopens its files by path in workers. */
enum swapped { SW_RECORDS, SW_INDEXED, SW_TOKENS, SW_FILES, SW_PACKED, SW_LAYOUTS };
static const char *const swapped_names[] = {"records", "indexed", "tokens", "files", "packed"};

/* Three shards of four samples (records of 8 bytes, indexed samples of
 * var_len, windows of T = 4), or twelve files, or a packed dataset of
 * three shards of four 8-byte records, under sub; junk != 0 writes what
 * is in the same places but other bytes (the packed headers then say the
 * same, only the data and checksums differ). Returns the open pattern. */
static const char *swap_write(enum swapped layout, const char *sub, uint8_t junk)
{
    static char pattern[320];
    char name[96];
    if (layout == SW_PACKED) {
        br_pack_writer *pw;
        /* 4 records fill a shard of 296 bytes: header 256, data 32, table 8. */
        assert_int_equal(br_pack_open(&pw, tf_path(dir, sub), 296, 8, 0, 0), 0);
        for (uint64_t id = 0; id < 12; id++) {
            uint8_t rec[8];
            for (size_t b = 0; b < 8; b++)
                rec[b] = (uint8_t)(rec_byte(id, b) ^ junk);
            assert_int_equal(br_pack_add(pw, rec, 8, 0, NULL, 0), 0);
        }
        assert_int_equal(br_pack_close(pw, NULL, NULL), 0);
        snprintf(pattern, sizeof pattern, "%s", tf_path(dir, sub));
        return pattern;
    }
    assert_int_equal(mkdir(tf_path(dir, sub), 0700), 0);
    for (uint32_t s = 0; s < (layout == SW_FILES ? 12u : 3u); s++) {
        char path[320];
        snprintf(name, sizeof name, "%s/s-%02u.bin", sub, s);
        snprintf(path, sizeof path, "%s", tf_path(dir, name));
        if (layout == SW_TOKENS) {
            write_raw(path, junk ? 7 + s : s, 4 * 4 + 1);
        } else if (layout == SW_INDEXED) {
            char index[sizeof path + 8];
            snprintf(index, sizeof index, "%s.idx", path);
            write_indexed_shard(path, index, 4 * (uint64_t)s, 4);
            if (junk) {
                uint8_t buf[128];
                struct stat st;
                assert_int_equal(stat(path, &st), 0);
                assert_true((size_t)st.st_size <= sizeof buf);
                memset(buf, junk, sizeof buf);
                tf_write(path, buf, (size_t)st.st_size);
            }
        } else {
            uint8_t buf[32];
            uint64_t first = layout == SW_FILES ? s : 4 * (uint64_t)s;
            size_t len = layout == SW_FILES ? var_len(s) : 32;
            for (size_t b = 0; b < len; b++)
                buf[b] = (uint8_t)(rec_byte(first + b / 8 * (layout == SW_RECORDS),
                                            layout == SW_RECORDS ? b % 8 : b) ^ junk);
            tf_write(path, buf, len);
        }
    }
    snprintf(name, sizeof name, "%s/s-*.bin", sub);
    snprintf(pattern, sizeof pattern, "%s", tf_path(dir, name));
    return pattern;
}

static int swap_open(enum swapped layout, const char *pattern, br_dataset **ds)
{
    switch (layout) {
    case SW_RECORDS: return br_dataset_open_record_shards(ds, pattern, 8, NULL, 0);
    case SW_INDEXED: return br_dataset_open_indexed_shards(ds, pattern, ".idx", NULL, 0);
    case SW_TOKENS: return br_dataset_open_tokens(ds, pattern, 4, 2, 0);
    case SW_FILES: return br_dataset_open_files_glob(ds, pattern, NULL, 0);
    default: return br_dataset_open_packed(ds, pattern, 0);
    }
}

/* A dataset's file k is put out of reach of its checks after the open:
 * replaced by a same-size file (mv over it), or rewritten in place with
 * other bytes of the same size (its mtime set back before the open, so the
 * rewrite shows whatever the clock's granularity). A worker (or the
 * trainer, workers = 0) that opens it must refuse it with BR_ELOADER
 * naming it, after the batch before it arrived right: never its bytes. */
static void test_shards_replaced_same_size(void **state)
{
    (void)state;
    for (int layout = 0; layout < SW_LAYOUTS; layout++)
        for (uint32_t w = 0; w <= 1; w++)
            for (int in_place = 0; in_place <= 1; in_place++) {
                char sub[64], other[80], victim[320], msg[1024];
                const char *pattern;
                br_dataset *ds = NULL;
                uint64_t good;
                int rc;
                snprintf(sub, sizeof sub, "swap-%s-%u-%d", swapped_names[layout], w, in_place);
                snprintf(other, sizeof other, "%s-other", sub);
                /* Shard 1, or file 5: batch 1 of batches of 4. */
                if (layout == SW_PACKED)
                    snprintf(victim, sizeof victim, "%s/%s-00001.brp", tf_path(dir, sub), sub);
                else if (layout == SW_FILES)
                    snprintf(victim, sizeof victim, "%s/s-05.bin", tf_path(dir, sub));
                else
                    snprintf(victim, sizeof victim, "%s/s-01.bin", tf_path(dir, sub));
                swap_write((enum swapped)layout, other, 0x5a);
                pattern = swap_write((enum swapped)layout, sub, 0);
                if (in_place) {
                    const struct timespec past[2] = {{978307200, 0}, {978307200, 0}};
                    assert_int_equal(utimensat(AT_FDCWD, victim, past, 0), 0);
                }
                rc = swap_open((enum swapped)layout, pattern, &ds);
                if (rc)
                    fail_msg("%s: %s", swapped_names[layout], br_last_error(NULL));
                if (in_place) {
                    /* Other bytes, the same size, the same inode. */
                    char from[320];
                    struct stat st;
                    uint8_t buf[512];
                    FILE *f;
                    snprintf(from, sizeof from, "%s%s", tf_path(dir, other),
                             victim + strlen(tf_path(dir, sub)));
                    if (layout == SW_PACKED)
                        snprintf(from, sizeof from, "%s/%s-00001.brp", tf_path(dir, other),
                                 other);
                    assert_int_equal(stat(from, &st), 0);
                    assert_true((size_t)st.st_size <= sizeof buf);
                    f = fopen(from, "rb");
                    assert_non_null(f);
                    assert_int_equal(fread(buf, 1, (size_t)st.st_size, f), (size_t)st.st_size);
                    assert_int_equal(fclose(f), 0);
                    f = fopen(victim, "r+b");
                    assert_non_null(f);
                    assert_int_equal(fwrite(buf, 1, (size_t)st.st_size, f), (size_t)st.st_size);
                    assert_int_equal(fclose(f), 0);
                } else {
                    char from[320];
                    if (layout == SW_PACKED)
                        snprintf(from, sizeof from, "%s/%s-00001.brp", tf_path(dir, other),
                                 other);
                    else
                        snprintf(from, sizeof from, "%s%s", tf_path(dir, other),
                                 victim + strlen(tf_path(dir, sub)));
                    assert_int_equal(rename(from, victim), 0);
                }
                if (layout == SW_TOKENS)
                    rc = run_until_error(ds, 4, w, &good, msg, sizeof msg);
                else {
                    rc = serve_all(ds, 4, w, false, layout != SW_INDEXED && layout != SW_FILES, 8,
                                   false, &good, msg, sizeof msg);
                    good /= 4;
                }
                if (rc != BR_ELOADER)
                    fail_msg("%s, %u workers, %s: expected BR_ELOADER, got %s: %s",
                             swapped_names[layout], w, in_place ? "rewritten" : "replaced",
                             br_err_name(rc), msg);
                assert_int_equal(good, 1);
                tu_assert_contains(msg, victim);
                tu_assert_contains(msg, in_place ? "was modified" : "was replaced by another file");
                br_dataset_close(ds);
            }
}

enum sharded { SH_RECORDS, SH_INDEXED, SH_PACKED };
static const char *const sharded_names[] = {"records", "indexed", "packed"};

/* The child's whole run over a sharded layout of 2 samples per shard (8
 * bytes each for records and packed, var_len for indexed); returns 0 or
 * the line of the failure. */
static int many_layout_child(enum sharded layout, uint64_t samples, rlim_t limit)
{
    struct rlimit rl = {limit, limit};
    br_dataset *ds;
    char msg[1024];
    uint64_t seen;
    int rc;

    if (setrlimit(RLIMIT_NOFILE, &rl))
        return __LINE__;
    if (layout == SH_RECORDS)
        rc = br_dataset_open_record_shards(&ds, tf_path(dir, "manyr/s-*.bin"), 8, NULL, 0);
    else if (layout == SH_INDEXED)
        rc = br_dataset_open_indexed_shards(&ds, tf_path(dir, "manyi/s-*.bin"), ".idx", NULL, 0);
    else
        rc = br_dataset_open_packed(&ds, tf_path(dir, "manyp"), 0);
    if (rc) {
        fprintf(stderr, "open %s: %s\n", sharded_names[layout], br_last_error(NULL));
        return __LINE__;
    }
    /* Batches of 97: more shards per batch than a worker keeps open. */
    rc = serve_all(ds, 97, 2, true, layout != SH_INDEXED, 8, false, &seen, msg, sizeof msg);
    br_dataset_close(ds);
    if (rc != BR_EOF) {
        fprintf(stderr, "%s: %s: %s\n", sharded_names[layout], br_err_name(rc), msg);
        return __LINE__;
    }
    return seen == samples ? 0 : __LINE__;
}

/* 3000 shards of 2 samples for records, indexed (3000 data files and 3000
 * indexes) and packed, each served shuffled in a process allowed 128
 * descriptors. */
static void test_shards_many_low_ulimit_layouts(void **state)
{
    (void)state;
    const uint32_t nshards = 3000;
    char name[64];
    br_pack_writer *pw;
    uint32_t packed_shards;
    uint64_t packed_samples;

    assert_int_equal(mkdir(tf_path(dir, "manyr"), 0700), 0);
    assert_int_equal(mkdir(tf_path(dir, "manyi"), 0700), 0);
    /* Packed: 2 samples of 8 bytes fill a shard of at most 310 bytes
     * (header 256, data 16, index 24, block table 8). */
    assert_int_equal(br_pack_open(&pw, tf_path(dir, "manyp"), 310, 0, 0, 0), 0);
    for (uint32_t s = 0; s < nshards; s++) {
        uint8_t rec[16];
        char data[320], index[sizeof data + 8];
        for (uint32_t r = 0; r < 2; r++)
            for (size_t b = 0; b < 8; b++)
                rec[r * 8 + b] = rec_byte(2 * s + r, b);
        snprintf(name, sizeof name, "manyr/s-%05u.bin", s);
        tf_write(tf_path(dir, name), rec, sizeof rec);
        snprintf(name, sizeof name, "manyi/s-%05u.bin", s);
        snprintf(data, sizeof data, "%s", tf_path(dir, name));
        snprintf(index, sizeof index, "%s.idx", data);
        write_indexed_shard(data, index, 2 * (uint64_t)s, 2);
        assert_int_equal(br_pack_add(pw, rec, 8, 0, NULL, 0), 0);
        assert_int_equal(br_pack_add(pw, rec + 8, 8, 0, NULL, 0), 0);
    }
    assert_int_equal(br_pack_close(pw, &packed_samples, &packed_shards), 0);
    assert_int_equal(packed_samples, 2 * nshards);
    assert_int_equal(packed_shards, nshards);
    for (int layout = SH_RECORDS; layout <= SH_PACKED; layout++) {
        int status;
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0)
            _exit(many_layout_child((enum sharded)layout, 2 * nshards, 128) ? 1 : 0);
        assert_int_equal(waitpid(pid, &status, 0), pid);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            fail_msg("%s shards with ulimit -n 128 failed (status 0x%x; the child's stderr says "
                     "why)",
                     sharded_names[layout], status);
    }
}

static int group_setup(void **state)
{
    (void)state;
    tf_tmpdir(dir, sizeof dir, "br-shards");
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    tf_remove_tree(dir);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_shards_id_map, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_shards_many_low_ulimit, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_shards_truncated_midrun, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_shards_records, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_shards_indexed, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_shards_files_glob, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_shards_replaced_same_size, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_shards_one_search_per_sample, tu_setup,
                                        tu_teardown),
        cmocka_unit_test_setup_teardown(test_shards_many_low_ulimit_layouts, tu_setup,
                                        tu_teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
