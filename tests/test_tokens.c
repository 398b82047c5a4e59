/* SPDX-License-Identifier: MIT */
/*
 * The tokens layout (br_dataset_open_tokens): batches byte-exact against an
 * independent sequential reader written here (fopen/fread of each shard,
 * no library code), llm.c header checks, raw 4-byte tokens, shuffle and
 * resume. Real shard files, real worker processes.
 */
#include <endian.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <batchring.h>

#include "mkdata.h"
#include "test_fs.h"
#include "test_util.h"

static char dir[256];

/* Token t of shard s: any value of the width, different per shard. */
static uint32_t token_of(uint32_t s, uint64_t t, unsigned width)
{
    uint64_t x = (s + 1) * 0x9E3779B97F4A7C15ull ^ (t * 0xBF58476D1CE4E5B9ull);
    x ^= x >> 29;
    return width == 2 ? (uint32_t)(x & 0xffff) : (uint32_t)x;
}

/* Writes an llm.c .bin shard (width 2, header) or a raw one (width 2/4). */
static void write_shard(const char *path, uint32_t s, uint64_t ntok, unsigned width, bool header)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (header) {
        int32_t h[256] = {0};
        h[0] = (int32_t)htole32(20240520);
        h[1] = (int32_t)htole32(1);
        h[2] = (int32_t)htole32((uint32_t)ntok);
        assert_int_equal(fwrite(h, sizeof h, 1, f), 1);
    }
    for (uint64_t t = 0; t < ntok; t++) {
        uint32_t v = token_of(s, t, width);
        uint16_t v16 = htole16((uint16_t)v);
        uint32_t v32 = htole32(v);
        assert_int_equal(fwrite(width == 2 ? (void *)&v16 : (void *)&v32, width, 1, f), 1);
    }
    assert_int_equal(fclose(f), 0);
}

/* The independent reader: every token of every shard, in the order the
 * names sort, read with fread. */
struct ref {
    uint32_t shards;
    uint64_t *count;   /* tokens per shard */
    int32_t **tok;     /* the tokens */
};

static void ref_read(struct ref *r, const char *const *paths, uint32_t n, unsigned width,
                     bool header)
{
    r->shards = n;
    r->count = calloc(n, sizeof *r->count);
    r->tok = calloc(n, sizeof *r->tok);
    assert_non_null(r->count);
    assert_non_null(r->tok);
    for (uint32_t s = 0; s < n; s++) {
        FILE *f = fopen(paths[s], "rb");
        long size;
        assert_non_null(f);
        assert_int_equal(fseek(f, 0, SEEK_END), 0);
        size = ftell(f);
        assert_int_equal(fseek(f, header ? 1024 : 0, SEEK_SET), 0);
        r->count[s] = (uint64_t)(size - (header ? 1024 : 0)) / width;
        r->tok[s] = malloc(r->count[s] * sizeof(int32_t) + 1);
        assert_non_null(r->tok[s]);
        for (uint64_t t = 0; t < r->count[s]; t++) {
            uint8_t b[4] = {0};
            assert_int_equal(fread(b, width, 1, f), 1);
            r->tok[s][t] = (int32_t)(b[0] | b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24);
        }
        fclose(f);
    }
}

static void ref_free(struct ref *r)
{
    for (uint32_t s = 0; s < r->shards; s++)
        free(r->tok[s]);
    free(r->tok);
    free(r->count);
}

/* Window `id` of the dataset, by walking the shards (not a search). */
static const int32_t *ref_window(const struct ref *r, uint64_t id, size_t T)
{
    for (uint32_t s = 0; s < r->shards; s++) {
        uint64_t w = r->count[s] > T ? (r->count[s] - 1) / T : 0;
        if (id < w)
            return r->tok[s] + id * T;
        id -= w;
    }
    fail_msg("window %llu is past the reference's end", (unsigned long long)id);
    return NULL;
}

static uint64_t ref_windows(const struct ref *r, size_t T)
{
    uint64_t n = 0;
    for (uint32_t s = 0; s < r->shards; s++)
        n += r->count[s] > T ? (r->count[s] - 1) / T : 0;
    return n;
}

/* Every window of batch b is the reference's, inputs and targets. */
static void check_batch(const br_batch *b, const struct ref *r, size_t T)
{
    const int32_t *in = b->data, *tg = in + (size_t)b->count * T;
    assert_int_equal(b->size, (size_t)b->count * T * 8);
    for (uint32_t i = 0; i < b->count; i++) {
        const int32_t *w = ref_window(r, b->ids[i], T);
        if (memcmp(in + (size_t)i * T, w, T * 4) || memcmp(tg + (size_t)i * T, w + 1, T * 4))
            fail_msg("batch %llu, window %u (id %llu) differs from the sequential reader",
                     (unsigned long long)b->seq, i, (unsigned long long)b->ids[i]);
    }
}

/* Shard sizes with windows that end exactly at, one before and past the
 * end, a shard too short for any window, and an uneven tail. */
static const uint64_t shard_tokens[] = {8 * 16 + 1, 3 * 16 + 5, 10, 16 + 1, 5 * 16, 7 * 16 + 16};
#define NSHARDS (sizeof shard_tokens / sizeof shard_tokens[0])

static void make_shards(const char *prefix, unsigned width, bool header, const char **paths)
{
    for (uint32_t s = 0; s < NSHARDS; s++) {
        char name[64];
        snprintf(name, sizeof name, "%s_%03u.bin", prefix, s);
        paths[s] = strdup(tf_path(dir, name));
        write_shard(paths[s], s, shard_tokens[s], width, header);
    }
}

static void free_paths(const char **paths)
{
    for (uint32_t s = 0; s < NSHARDS; s++) {
        unlink(paths[s]);
        free((void *)paths[s]);
    }
}

/* Runs the whole dataset in order and checks every batch. */
static void run_exact(const char *pattern, size_t token_bytes, const struct ref *r, size_t T,
                      uint32_t B, uint32_t workers, enum tf_backend be)
{
    br_dataset *ds;
    br_dataset_info info;
    br_options opt;
    br_batch b;
    br_gen *g;
    uint64_t seen = 0;
    int rc;

    assert_int_equal(br_dataset_open_tokens(&ds, pattern, T, token_bytes, 0), 0);
    assert_int_equal(br_dataset_info_get(ds, &info), 0);
    assert_int_equal(info.samples, ref_windows(r, T));
    assert_int_equal(info.shards, NSHARDS);
    assert_string_equal(info.layout, "tokens");
    br_options_init(&opt);
    opt.batch_size = B;
    opt.workers = workers;
    opt.epochs = 1;
    tf_backend_begin(be);
    assert_int_equal(br_open_dataset(&g, ds, NULL, 0, &opt), 0);
    while ((rc = br_next(g, &b)) == 0) {
        for (uint32_t i = 0; i < b.count; i++)
            assert_int_equal(b.ids[i], seen + i);
        check_batch(&b, r, T);
        seen += b.count;
    }
    tf_backend_end();
    if (rc != BR_EOF)
        fail_msg("br_next: %s: %s", br_err_name(rc), br_last_error(g));
    assert_int_equal(seen, info.samples);
    br_close(g);
    br_dataset_close(ds);
}

static void test_tokens_llmc_exact(void **state)
{
    (void)state;
    const char *paths[NSHARDS];
    char why[256];
    struct ref r;
    make_shards("train", 2, true, paths);
    ref_read(&r, paths, NSHARDS, 2, true);
    for (uint32_t w = 0; w <= 2; w++)
        for (uint32_t B = 1; B <= 7; B += 3) {
            run_exact(tf_path(dir, "train_*.bin"), 0, &r, 16, B, w, TF_PREAD);
            if (tf_uring_available(why, sizeof why))
                run_exact(tf_path(dir, "train_*.bin"), 0, &r, 16, B, w, TF_URING);
        }
    ref_free(&r);
    free_paths(paths);
}

/* The statement: no shuffle, one rank, batches inside one shard:
 * batch k is tokens[kBT .. kBT + BT) and targets one further. */
static void test_tokens_sequential_statement(void **state)
{
    (void)state;
    const size_t T = 32;
    const uint32_t B = 4;
    const char *path = strdup(tf_path(dir, "one.bin"));
    br_dataset *ds;
    br_options opt;
    br_batch b;
    br_gen *g;
    struct ref r;
    uint64_t k = 0;
    int rc;

    write_shard(path, 7, 10 * B * T + 1, 2, true);
    ref_read(&r, &path, 1, 2, true);
    assert_int_equal(br_dataset_open_tokens(&ds, path, T, 0, 0), 0);
    br_options_init(&opt);
    opt.batch_size = B;
    opt.workers = 2;
    opt.epochs = 1;
    assert_int_equal(br_open_dataset(&g, ds, NULL, 0, &opt), 0);
    while ((rc = br_next(g, &b)) == 0) {
        const int32_t *in = b.data, *tg = in + B * T;
        assert_int_equal(b.count, B);
        assert_memory_equal(in, r.tok[0] + k * B * T, B * T * 4);
        assert_memory_equal(tg, r.tok[0] + k * B * T + 1, B * T * 4);
        k++;
    }
    assert_int_equal(rc, BR_EOF);
    assert_int_equal(k, 10);
    br_close(g);
    br_dataset_close(ds);
    ref_free(&r);
    unlink(path);
    free((void *)path);
}

static void test_tokens_raw4_list(void **state)
{
    (void)state;
    const char *paths[NSHARDS];
    struct ref r;
    char list[512];
    FILE *f;
    make_shards("raw4", 4, false, paths);
    /* The list in reverse name order: the list's order is kept. */
    snprintf(list, sizeof list, "%s", tf_path(dir, "shards.txt"));
    f = fopen(list, "w");
    assert_non_null(f);
    const char *rev[NSHARDS];
    for (uint32_t s = 0; s < NSHARDS; s++) {
        rev[s] = paths[NSHARDS - 1 - s];
        fprintf(f, "%s\n", strrchr(rev[s], '/') + 1);
    }
    assert_int_equal(fclose(f), 0);
    ref_read(&r, rev, NSHARDS, 4, false);
    char at[520];
    snprintf(at, sizeof at, "@%s", list);
    run_exact(at, 4, &r, 16, 5, 2, TF_PREAD);
    run_exact(at, 4, &r, 16, 5, 0, TF_PREAD);
    ref_free(&r);
    free_paths(paths);
    unlink(list);
}

/* Opens that must fail, each naming the file and the field. */
static void expect_open_error(const char *pattern, size_t T, size_t tb, int want,
                              const char *n1, const char *n2)
{
    br_dataset *ds = (br_dataset *)1;
    int rc = br_dataset_open_tokens(&ds, pattern, T, tb, 0);
    if (rc != want)
        fail_msg("open %s: expected %s, got %s: %s", pattern, br_err_name(want), br_err_name(rc),
                 br_last_error(NULL));
    assert_null(ds);
    if (n1)
        tu_assert_contains(br_last_error(NULL), n1);
    if (n2)
        tu_assert_contains(br_last_error(NULL), n2);
}

static void test_tokens_header_checks(void **state)
{
    (void)state;
    char path[300];
    int32_t h[256] = {0};
    uint16_t toks[100] = {0};
    FILE *f;

    snprintf(path, sizeof path, "%s", tf_path(dir, "bad.bin"));
    /* Bad magic. */
    h[0] = (int32_t)htole32(20240521), h[1] = (int32_t)htole32(1), h[2] = (int32_t)htole32(100);
    f = fopen(path, "wb");
    fwrite(h, sizeof h, 1, f), fwrite(toks, sizeof toks, 1, f), fclose(f);
    expect_open_error(path, 8, 0, -EINVAL, path, "magic");
    /* Bad version. */
    h[0] = (int32_t)htole32(20240520), h[1] = (int32_t)htole32(2);
    f = fopen(path, "wb");
    fwrite(h, sizeof h, 1, f), fwrite(toks, sizeof toks, 1, f), fclose(f);
    expect_open_error(path, 8, 0, -EINVAL, path, "version");
    /* Size mismatch: the header says 101 tokens, the file holds 100. */
    h[1] = (int32_t)htole32(1), h[2] = (int32_t)htole32(101);
    f = fopen(path, "wb");
    fwrite(h, sizeof h, 1, f), fwrite(toks, sizeof toks, 1, f), fclose(f);
    expect_open_error(path, 8, 0, -EINVAL, path, "token count");
    /* Shorter than a header. */
    f = fopen(path, "wb");
    fwrite(toks, 10, 1, f), fclose(f);
    expect_open_error(path, 8, 0, -EINVAL, path, "header");
    /* A raw file that is not whole tokens. */
    f = fopen(path, "wb");
    fwrite(toks, 11, 1, f), fclose(f);
    expect_open_error(path, 2, 4, -EINVAL, path, "multiple of the token width");
    /* The good header opens; too short for a window of T + 1 does not. */
    h[2] = (int32_t)htole32(100);
    f = fopen(path, "wb");
    fwrite(h, sizeof h, 1, f), fwrite(toks, sizeof toks, 1, f), fclose(f);
    br_dataset *ds;
    assert_int_equal(br_dataset_open_tokens(&ds, path, 9, 0, 0), 0);
    br_dataset_info info;
    assert_int_equal(br_dataset_info_get(ds, &info), 0);
    assert_int_equal(info.samples, 99 / 9);
    br_dataset_close(ds);
    expect_open_error(path, 100, 0, -EINVAL, path, "no window");
    /* Arguments. */
    expect_open_error(path, 0, 0, -EINVAL, "seq_len", NULL);
    expect_open_error(path, 8, 3, -EINVAL, "token_bytes", NULL);
    expect_open_error(tf_path(dir, "nothing-*.bin"), 8, 0, -ENOENT, "no file matches", NULL);
    unlink(path);
}

/* Collects every batch's bytes of a run from start_seq on. */
static size_t run_collect(br_dataset *ds, uint32_t B, uint32_t workers, bool shuffle,
                          uint64_t start, uint64_t epochs, uint8_t **out, uint64_t **ids,
                          const struct ref *r, size_t T)
{
    br_options opt;
    br_batch b;
    br_gen *g;
    size_t bytes = 0, nid = 0;
    int rc;
    br_options_init(&opt);
    opt.batch_size = B;
    opt.workers = workers;
    opt.epochs = epochs;
    opt.shuffle = shuffle;
    opt.seed = 42;
    opt.start_seq = start;
    *out = NULL;
    *ids = NULL;
    assert_int_equal(br_open_dataset(&g, ds, NULL, 0, &opt), 0);
    while ((rc = br_next(g, &b)) == 0) {
        check_batch(&b, r, T);
        *out = realloc(*out, bytes + b.size);
        *ids = realloc(*ids, (nid + b.count + 1) * sizeof **ids);
        assert_non_null(*out);
        assert_non_null(*ids);
        memcpy(*out + bytes, b.data, b.size);
        memcpy(*ids + nid, b.ids, b.count * sizeof **ids);
        bytes += b.size;
        nid += b.count;
    }
    if (rc != BR_EOF)
        fail_msg("br_next: %s: %s", br_err_name(rc), br_last_error(g));
    br_close(g);
    (*ids)[nid] = UINT64_MAX;
    return nid;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Shuffled: each epoch is a permutation of all windows, each window still
 * exact; a resumed run (start_seq) gives the same bytes as the full run
 * from that batch on. */
static void test_tokens_shuffle_resume(void **state)
{
    (void)state;
    const char *paths[NSHARDS];
    const size_t T = 16;
    const uint32_t B = 3;
    struct ref r;
    br_dataset *ds;
    uint8_t *full, *part;
    uint64_t *fid, *pid;
    make_shards("shuf", 2, true, paths);
    ref_read(&r, paths, NSHARDS, 2, true);
    assert_int_equal(br_dataset_open_tokens(&ds, tf_path(dir, "shuf_*.bin"), T, 0, 0), 0);
    uint64_t n = ref_windows(&r, T);
    size_t nf = run_collect(ds, B, 2, true, 0, 2, &full, &fid, &r, T);
    assert_int_equal(nf, 2 * n);
    /* Not the sequential order, and a permutation per epoch. */
    bool moved = false;
    for (uint64_t i = 0; i < n; i++)
        moved |= fid[i] != i;
    assert_true(moved);
    for (uint64_t e = 0; e < 2; e++) {
        uint64_t *sorted = malloc(n * sizeof *sorted);
        assert_non_null(sorted);
        memcpy(sorted, fid + e * n, n * sizeof *sorted);
        qsort(sorted, n, sizeof *sorted, cmp_u64);
        for (uint64_t i = 0; i < n; i++)
            assert_int_equal(sorted[i], i);
        free(sorted);
    }
    /* Resume at batch 5 of 2 epochs, with another worker count. */
    size_t np = run_collect(ds, B, 1, true, 5, 2, &part, &pid, &r, T);
    assert_int_equal(np, nf - 5 * B);
    assert_memory_equal(pid, fid + 5 * B, np * sizeof *pid);
    assert_memory_equal(part, full + 5 * B * T * 8, np * T * 8);
    free(full), free(fid), free(part), free(pid);
    br_dataset_close(ds);
    ref_free(&r);
    free_paths(paths);
}

/* What `batchring mkdata --layout tokens` writes opens as llm.c shards and
 * gives br_mkdata_token's tokens. */
static void test_tokens_mkdata_roundtrip(void **state)
{
    (void)state;
    char out[300], err[512], pattern[340];
    struct br_mkdata_spec spec = {.layout = "tokens", .samples = 5 * 64 + 3, .seed = 9, .shards = 3};
    br_dataset *ds;
    br_options opt;
    br_batch b;
    br_gen *g;
    uint64_t seen = 0;
    int rc;

    snprintf(out, sizeof out, "%s", tf_path(dir, "mk"));
    spec.dir = out;
    rc = br_mkdata_write(&spec, NULL, err, sizeof err);
    if (rc)
        fail_msg("br_mkdata_write: %s", err);
    snprintf(pattern, sizeof pattern, "%s/" BR_MKDATA_TOKENS_GLOB, out);
    assert_int_equal(br_dataset_open_tokens(&ds, pattern, 64, 0, 0), 0);
    br_options_init(&opt);
    opt.batch_size = 2;
    opt.workers = 1;
    opt.epochs = 1;
    assert_int_equal(br_open_dataset(&g, ds, NULL, 0, &opt), 0);
    while ((rc = br_next(g, &b)) == 0)
        for (uint32_t i = 0; i < b.count; i++, seen++) {
            uint32_t shard = (uint32_t)(b.ids[i] / 5);
            uint64_t at = (b.ids[i] % 5) * 64;
            const int32_t *in = (const int32_t *)b.data + (size_t)i * 64;
            const int32_t *tg = (const int32_t *)b.data + ((size_t)b.count + i) * 64;
            for (uint64_t t = 0; t < 64; t++) {
                assert_int_equal(in[t], br_mkdata_token(9, shard, at + t));
                assert_int_equal(tg[t], br_mkdata_token(9, shard, at + t + 1));
            }
        }
    assert_int_equal(rc, BR_EOF);
    assert_int_equal(seen, 15);
    br_close(g);
    br_dataset_close(ds);
}

static int group_setup(void **state)
{
    (void)state;
    tf_tmpdir(dir, sizeof dir, "br-tokens");
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
        cmocka_unit_test_setup_teardown(test_tokens_llmc_exact, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_tokens_sequential_statement, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_tokens_raw4_list, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_tokens_header_checks, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_tokens_shuffle_resume, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_tokens_mkdata_roundtrip, tu_setup, tu_teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
