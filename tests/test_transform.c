/* SPDX-License-Identifier: MIT */
/*
 * The transform stage of the built-in datasets (br_dataset_transform_set):
 * real files in a fresh temporary directory (a records file, a files list
 * and raw token shards), served by real generators inline and with every
 * worker count from 1 to 4. A tokens sample reaches the transform as its
 * window, int32 inputs[T] then targets[T]. The transform
 * (a per-batch-seeded crop converted to float32, behind the batch seed it
 * was given) runs in the workers with a state made by the user's
 * worker_init; every output byte is compared with the same transform
 * applied here to the sample as written. Then a failing transform, a bad
 * max_out_bytes and the user's worker_fini with workers = 0.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test_util.h"

#define N_SAMPLES 90u
#define REC_BYTES 48u
#define STATE_MAGIC 0x7e57a7e5u
#define FAIL_ID 7u

static char dir[4096];
static char rec_path[4200], list_path[4200], tok_pattern[4200];

/* The token shards: raw uint16, token t of shard s = s * 1000 + t; T = 6,
 * shard 0 of 20 windows, shard 1 of 25. */
#define TOK_T 6u
static const uint32_t tok_windows[2] = {20, 25};
#define N_WINDOWS 45u

enum kind { RECORDS, FILES, TOKENS };
static unsigned fini_calls; /* the user's worker_fini, in this process */

static uint8_t sample_byte(uint64_t id, size_t j)
{
    return (uint8_t)(id * 31u + j * 7u + 3u);
}

static size_t file_len(uint64_t id)
{
    return 10u + (size_t)(id % 37u);
}

/* Window id as the transform gets it: int32 inputs[T], then targets[T]. */
static size_t window_bytes(uint64_t id, uint8_t *out)
{
    uint32_t s = id < tok_windows[0] ? 0 : 1;
    uint64_t local = s ? id - tok_windows[0] : id;
    for (uint32_t t = 0; t < 2 * TOK_T; t++) {
        int32_t v = (int32_t)(s * 1000u + local * TOK_T + t % TOK_T + t / TOK_T);
        memcpy(out + 4 * t, &v, 4);
    }
    return 8 * TOK_T;
}

struct wstate {
    uint32_t magic;
    uint32_t worker;
};

static int user_init(br_io *io, uint32_t worker, void *user, void **state, char *err,
                     size_t err_cap)
{
    struct wstate *w = malloc(sizeof *w);
    (void)io;
    if (!w || user != (void *)dir) {
        free(w);
        snprintf(err, err_cap, "user_init: %s", w ? "wrong user pointer" : "out of memory");
        return -EINVAL;
    }
    w->magic = STATE_MAGIC;
    w->worker = worker;
    *state = w;
    return 0;
}

static void user_fini(void *state, void *user)
{
    (void)user;
    free(state);
    fini_calls++;
}

/* Crop: half the sample (rounded down, at least 1 byte), at an offset
 * drawn from (seed, id); each byte as a float in [0, 1]; the seed first. */
static size_t crop_len(size_t len)
{
    return len / 2 ? len / 2 : 1;
}

static size_t crop_at(size_t len, uint64_t id, uint64_t seed)
{
    return (size_t)(tu_mix64(seed ^ (id * 0x9e3779b97f4a7c15ull)) % (len - crop_len(len) + 1));
}

static void apply(const uint8_t *in, size_t len, uint64_t id, uint64_t seed, uint8_t *out,
                  size_t *out_len)
{
    size_t n = crop_len(len), at = crop_at(len, id, seed);
    memcpy(out, &seed, sizeof seed);
    for (size_t k = 0; k < n; k++) {
        float f = (float)in[at + k] / 255.0f;
        memcpy(out + sizeof seed + 4 * k, &f, 4);
    }
    *out_len = sizeof seed + 4 * n;
}

static int xform(const void *in, size_t len, uint64_t id, void *out, size_t out_cap,
                 size_t *out_len, uint64_t seed, void *state)
{
    const struct wstate *w = state;
    if (!w || w->magic != STATE_MAGIC)
        return -EPROTO;
    if (len == 0 || sizeof seed + 4 * crop_len(len) > out_cap)
        return -ENOBUFS;
    apply(in, len, id, seed, out, out_len);
    return 0;
}

static int xform_failing(const void *in, size_t len, uint64_t id, void *out, size_t out_cap,
                         size_t *out_len, uint64_t seed, void *state)
{
    if (id == FAIL_ID)
        return -EILSEQ;
    return xform(in, len, id, out, out_cap, out_len, seed, state);
}

static void write_file(const char *path, const void *buf, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

static int group_setup(void **state)
{
    uint8_t rec[N_SAMPLES * REC_BYTES], buf[64];
    char path[4300];
    FILE *list;
    (void)state;
    snprintf(dir, sizeof dir, "%s/br_transform_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(dir))
        return -1;
    for (uint64_t id = 0; id < N_SAMPLES; id++)
        for (size_t j = 0; j < REC_BYTES; j++)
            rec[id * REC_BYTES + j] = sample_byte(id, j);
    snprintf(rec_path, sizeof rec_path, "%s/rec.bin", dir);
    write_file(rec_path, rec, sizeof rec);
    snprintf(list_path, sizeof list_path, "%s/list.txt", dir);
    list = fopen(list_path, "w");
    if (!list)
        return -1;
    for (uint64_t id = 0; id < N_SAMPLES; id++) {
        snprintf(path, sizeof path, "%s/s%03" PRIu64 ".raw", dir, id);
        for (size_t j = 0; j < file_len(id); j++)
            buf[j] = sample_byte(id, j);
        write_file(path, buf, file_len(id));
        fprintf(list, "s%03" PRIu64 ".raw\n", id);
    }
    if (fclose(list))
        return -1;
    for (uint32_t sh = 0; sh < 2; sh++) {
        uint32_t n = tok_windows[sh] * TOK_T + 1;
        uint8_t tokens[2 * (25 * TOK_T + 1)];
        for (uint32_t t = 0; t < n; t++) {
            uint16_t v = (uint16_t)(sh * 1000u + t);
            tokens[2 * t] = (uint8_t)v, tokens[2 * t + 1] = (uint8_t)(v >> 8);
        }
        snprintf(path, sizeof path, "%s/tok-%u.raw", dir, sh);
        write_file(path, tokens, 2 * (size_t)n);
    }
    snprintf(tok_pattern, sizeof tok_pattern, "%s/tok-*.raw", dir);
    return 0;
}

static int group_teardown(void **state)
{
    char cmd[4200];
    (void)state;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static br_dataset *open_ds(enum kind kind)
{
    br_dataset *ds = NULL;
    int rc = kind == FILES    ? br_dataset_open_files(&ds, list_path, NULL, 0)
             : kind == TOKENS ? br_dataset_open_tokens(&ds, tok_pattern, TOK_T, 2, 0)
                              : br_dataset_open_records(&ds, rec_path, REC_BYTES, NULL, 0);
    if (rc)
        fail_msg("open: %s: %s", br_err_name(rc), br_last_error(NULL));
    return ds;
}

/* Serves one epoch with `workers` and checks every output; records the
 * seed each batch carried into seeds[seq]. */
static void run(enum kind kind, uint32_t workers, uint64_t *seeds, size_t n_seeds)
{
    const uint64_t n = kind == TOKENS ? N_WINDOWS : N_SAMPLES;
    br_dataset *ds = open_ds(kind);
    br_options opt;
    br_batch b;
    br_gen *g = NULL;
    uint64_t seen = 0;
    int rc;

    assert_int_equal(br_dataset_transform_set(ds, xform, 8 + 4 * 64, dir), 0);
    br_options_init(&opt);
    opt.batch_size = 8;
    opt.workers = workers;
    opt.epochs = 1;
    opt.shuffle = true;
    opt.seed = 5;
    opt.worker_init = user_init;
    opt.worker_fini = user_fini;
    rc = br_open_dataset(&g, ds, NULL, 0, &opt);
    if (rc)
        fail_msg("br_open_dataset: %s: %s", br_err_name(rc), br_last_error(NULL));
    tu_track(g);
    while ((rc = br_next(g, &b)) == 0) {
        uint64_t seed;
        assert_non_null(b.offsets);
        assert_int_equal(b.offsets[0], 0);
        assert_int_equal(b.offsets[b.count], b.size);
        assert_true(b.size >= 8);
        memcpy(&seed, b.data, sizeof seed);
        assert_true(b.seq < n_seeds);
        seeds[b.seq] = seed;
        for (uint32_t i = 0; i < b.count; i++) {
            uint8_t in[64], want[8 + 4 * 64];
            size_t len = kind == FILES ? file_len(b.ids[i]) : REC_BYTES, want_len;
            if (kind == TOKENS)
                len = window_bytes(b.ids[i], in);
            else
                for (size_t j = 0; j < len; j++)
                    in[j] = sample_byte(b.ids[i], j);
            apply(in, len, b.ids[i], seed, want, &want_len);
            assert_int_equal(b.offsets[i + 1] - b.offsets[i], want_len);
            assert_memory_equal((const uint8_t *)b.data + b.offsets[i], want, want_len);
        }
        seen += b.count;
    }
    if (rc != BR_EOF)
        fail_msg("br_next: %s: %s", br_err_name(rc), br_last_error(g));
    assert_int_equal(seen, n);
    assert_int_equal(tu_close(g), 0);
    assert_int_equal(br_dataset_close(ds), 0);
}

/* Inline, then every worker count from 1 to 4. */
static void every_worker_count(enum kind kind)
{
    const size_t n = ((kind == TOKENS ? N_WINDOWS : N_SAMPLES) + 7) / 8;
    uint64_t s0[16], sw[16];
    unsigned before = fini_calls;
    run(kind, 0, s0, n);
    /* workers = 0: br_close ran the user's worker_fini here, once. */
    assert_int_equal(fini_calls, before + 1);
    for (uint32_t workers = 1; workers <= 4; workers++) {
        memset(sw, 0, sizeof sw);
        run(kind, workers, sw, n);
        /* The transform saw the batch's seed, the same whichever worker
         * (or the trainer) loaded it. */
        assert_memory_equal(s0, sw, n * sizeof *s0);
    }
    /* A different seed per batch. */
    for (size_t k = 1; k < n; k++)
        assert_true(s0[k] != s0[k - 1]);
}

static void test_transform_records(void **state)
{
    (void)state;
    every_worker_count(RECORDS);
}

static void test_transform_files(void **state)
{
    (void)state;
    every_worker_count(FILES);
}

static void test_transform_tokens(void **state)
{
    (void)state;
    every_worker_count(TOKENS);
}

static void test_transform_failure_names_sample(void **state)
{
    br_dataset *ds = open_ds(RECORDS);
    br_options opt;
    br_batch b;
    br_gen *g = NULL;
    int rc;
    char want[64];
    (void)state;

    assert_int_equal(br_dataset_transform_set(ds, xform_failing, 8 + 4 * 64, dir), 0);
    for (uint32_t workers = 0; workers <= 1; workers++) {
        br_options_init(&opt);
        opt.batch_size = 8;
        opt.workers = workers;
        opt.epochs = 1;
        opt.worker_init = user_init;
        opt.worker_fini = user_fini;
        rc = br_open_dataset(&g, ds, NULL, 0, &opt);
        if (rc)
            fail_msg("br_open_dataset: %s: %s", br_err_name(rc), br_last_error(NULL));
        tu_track(g);
        rc = br_next(g, &b);
        assert_int_equal(rc, BR_ELOADER);
        snprintf(want, sizeof want, "sample %u", FAIL_ID);
        if (!strstr(br_last_error(g), want) || !strstr(br_last_error(g), "transform"))
            fail_msg("the message does not name the transform and %s: %s", want,
                     br_last_error(g));
        tu_close(g);
    }
    assert_int_equal(br_dataset_close(ds), 0);
}

static void test_transform_bad_arguments(void **state)
{
    br_dataset *ds = open_ds(RECORDS);
    (void)state;
    assert_int_equal(br_dataset_transform_set(NULL, xform, 16, NULL), -EINVAL);
    assert_non_null(strstr(br_last_error(NULL), "ds is NULL"));
    assert_int_equal(br_dataset_transform_set(ds, xform, 0, NULL), -EINVAL);
    assert_non_null(strstr(br_last_error(NULL), "max_out_bytes"));
    /* Clearing is fine, and then the raw samples come back. */
    assert_int_equal(br_dataset_transform_set(ds, NULL, 0, NULL), 0);
    {
        br_options opt;
        br_batch b;
        br_gen *g = NULL;
        br_options_init(&opt);
        opt.batch_size = 4;
        opt.workers = 0;
        opt.epochs = 1;
        assert_int_equal(br_open_dataset(&g, ds, NULL, 0, &opt), 0);
        tu_track(g);
        assert_int_equal(br_next(g, &b), 0);
        assert_int_equal(b.size, 4 * REC_BYTES);
        for (size_t j = 0; j < 4 * REC_BYTES; j++)
            assert_int_equal(((const uint8_t *)b.data)[j], sample_byte(j / REC_BYTES, j % REC_BYTES));
        assert_int_equal(tu_close(g), 0);
    }
    assert_int_equal(br_dataset_close(ds), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_transform_records, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_transform_files, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_transform_tokens, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_transform_failure_names_sample, tu_setup,
                                        tu_teardown),
        cmocka_unit_test_setup_teardown(test_transform_bad_arguments, tu_setup, tu_teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
