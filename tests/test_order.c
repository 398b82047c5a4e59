/* SPDX-License-Identifier: MIT */
/*
 * Sample order end to end: shuffled epochs, implicit ids, shards, resuming
 * at any batch, per-batch seeds, launcher variables. Real workers.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "test_util.h"

/* The loader writes the batch's seed, then its ids: what the consumer sees
 * must follow from (options, seq) alone, whichever worker loaded it. */
static int seed_and_ids_loader(br_job *job, void *user)
{
    (void)user;
    uint64_t *out = job->out;
    out[0] = job->seed;
    memcpy(out + 1, job->ids, job->count * sizeof *out);
    job->size = (job->count + 1) * sizeof *out;
    return 0;
}

/* One run: for each seq from start_seq to the end, its seed and ids. */
struct record {
    uint64_t n_batches;
    uint32_t batch_size;
    uint64_t *seeds;  /* per seq */
    uint64_t *ids;    /* per seq, batch_size entries (UINT64_MAX = none) */
    uint64_t *checkpoints;
};

static void record_run(struct record *rec, uint64_t n, uint32_t b, uint32_t workers,
                       uint64_t start, const br_options *base)
{
    br_options opt = *base;
    br_gen *g;
    br_batch batch;
    uint64_t seq = start, next;
    int rc;

    opt.batch_size = b;
    opt.workers = workers;
    opt.slot_bytes = (b + 1) * sizeof(uint64_t);
    opt.start_seq = start;
    assert_int_equal(br_open(&g, seed_and_ids_loader, NULL, NULL, NULL, n, &opt), 0);
    tu_track(g);
    assert_int_equal(br_checkpoint_get(g, &next), 0);
    assert_int_equal(next, start);
    while ((rc = br_next(g, &batch)) == 0) {
        const uint64_t *data = batch.data;
        assert_int_equal(batch.seq, seq);
        assert_true(seq < rec->n_batches);
        assert_int_equal(batch.size, (batch.count + 1) * sizeof(uint64_t));
        rec->seeds[seq] = data[0];
        for (uint32_t i = 0; i < batch.count; i++) {
            assert_int_equal(data[1 + i], batch.ids[i]);
            rec->ids[seq * b + i] = batch.ids[i];
        }
        assert_int_equal(br_checkpoint_get(g, &next), 0);
        assert_int_equal(next, seq + 1);
        rec->checkpoints[seq] = next;
        seq++;
    }
    assert_int_equal(rc, BR_EOF);
    assert_int_equal(seq, rec->n_batches);
    assert_int_equal(tu_close(g), 0);
}

static void record_alloc(struct record *rec, uint64_t n_batches, uint32_t b)
{
    rec->n_batches = n_batches;
    rec->batch_size = b;
    rec->seeds = calloc(n_batches, sizeof *rec->seeds);
    rec->ids = malloc(n_batches * b * sizeof *rec->ids);
    rec->checkpoints = calloc(n_batches, sizeof *rec->checkpoints);
    assert_non_null(rec->seeds);
    assert_non_null(rec->ids);
    assert_non_null(rec->checkpoints);
    memset(rec->ids, 0xff, n_batches * b * sizeof *rec->ids);
}

static void record_free(struct record *rec)
{
    free(rec->seeds);
    free(rec->ids);
    free(rec->checkpoints);
}

static void test_order_resume_is_exact_for_any_workers(void **state)
{
    (void)state;
    const uint64_t n = 1003, epochs = 3;
    const uint32_t b = 16;
    const uint64_t per_epoch = (n + b - 1) / b, total = epochs * per_epoch;
    static const uint64_t starts[] = {1, 62, 63, 64, 100, 188};
    static const uint32_t workers[] = {0, 1, 3};
    br_options base;
    struct record whole;
    tu_leaks leaks;

    tu_leaks_begin(&leaks);
    br_options_init(&base);
    base.shuffle = true;
    base.seed = 9;
    base.epochs = epochs;
    record_alloc(&whole, total, b);
    record_run(&whole, n, b, 1, 0, &base);

    /* Every epoch is a permutation of the ids. */
    for (uint64_t e = 0; e < epochs; e++) {
        uint8_t *seen = calloc(n, 1);
        for (uint64_t k = e * per_epoch * b; k < (e + 1) * per_epoch * b; k++)
            if (whole.ids[k] != UINT64_MAX) {
                assert_true(whole.ids[k] < n);
                assert_int_equal(seen[whole.ids[k]]++, 0);
            }
        for (uint64_t x = 0; x < n; x++)
            assert_int_equal(seen[x], 1);
        free(seen);
    }
    /* Epochs differ. */
    assert_memory_not_equal(whole.ids, whole.ids + per_epoch * b, b * sizeof *whole.ids);

    for (size_t w = 0; w < sizeof workers / sizeof workers[0]; w++) {
        for (size_t s = 0; s < sizeof starts / sizeof starts[0]; s++) {
            struct record part;
            record_alloc(&part, total, b);
            record_run(&part, n, b, workers[w], starts[s], &base);
            for (uint64_t seq = starts[s]; seq < total; seq++) {
                if (part.seeds[seq] != whole.seeds[seq])
                    fail_msg("workers %u, start %llu: seed of batch %llu differs", workers[w],
                             (unsigned long long)starts[s], (unsigned long long)seq);
                assert_memory_equal(part.ids + seq * b, whole.ids + seq * b, b * sizeof *part.ids);
            }
            record_free(&part);
        }
    }
    record_free(&whole);
    tu_leaks_check(&leaks);
}

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "re");
    char line[256];
    long kib = -1;
    assert_non_null(f);
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

static void test_order_implicit_ids_cost_no_memory(void **state)
{
    (void)state;
    const uint64_t n = 1000000000u; /* 8 GB if it were an array */
    const uint32_t b = 1024;
    for (int shuffle = 0; shuffle <= 1; shuffle++) {
        br_options opt;
        br_gen *g;
        br_batch batch;
        long before = rss_kib();
        br_options_init(&opt);
        opt.batch_size = b;
        opt.workers = shuffle ? 2 : 0;
        opt.slot_bytes = (b + 1) * sizeof(uint64_t);
        opt.shuffle = shuffle;
        opt.seed = 5;
        opt.start_seq = 976562 - 2; /* the last batches of the first epoch */
        assert_int_equal(br_open(&g, seed_and_ids_loader, NULL, NULL, NULL, n, &opt), 0);
        tu_track(g);
        for (int k = 0; k < 4; k++) {
            assert_int_equal(br_next(g, &batch), 0);
            assert_int_equal(batch.seq, opt.start_seq + (uint64_t)k);
            /* 10^9 / 1024: 976562 full batches, then one of 512. */
            assert_int_equal(batch.count, batch.seq == 976562 ? 512 : 1024);
            assert_int_equal(batch.epoch, batch.seq > 976562 ? 1 : 0);
            for (uint32_t i = 0; i < batch.count; i++) {
                assert_true(batch.ids[i] < n);
                if (!shuffle)
                    assert_int_equal(batch.ids[i], (batch.seq % 976563) * b + i);
            }
        }
        /* Far less than the 8 GB an id array would take. */
        assert_true(rss_kib() - before < 64 * 1024);
        assert_int_equal(tu_close(g), 0);
    }
}

static void test_order_shards_through_generators(void **state)
{
    (void)state;
    const uint64_t n = 1000;
    const uint32_t world = 3, b = 10;
    uint32_t *hits = calloc(n, sizeof *hits);
    uint64_t batches[3];
    for (uint32_t rank = 0; rank < world; rank++) {
        br_options opt;
        br_gen *g;
        br_batch batch;
        int rc;
        br_options_init(&opt);
        opt.batch_size = b;
        opt.workers = 2;
        opt.slot_bytes = (b + 1) * sizeof(uint64_t);
        opt.shuffle = true;
        opt.seed = 11;
        opt.rank = rank;
        opt.world = world;
        opt.epochs = 1;
        assert_int_equal(br_open(&g, seed_and_ids_loader, NULL, NULL, NULL, n, &opt), 0);
        tu_track(g);
        batches[rank] = 0;
        while ((rc = br_next(g, &batch)) == 0) {
            for (uint32_t i = 0; i < batch.count; i++)
                hits[batch.ids[i]]++;
            batches[rank]++;
        }
        assert_int_equal(rc, BR_EOF);
        assert_int_equal(tu_close(g), 0);
    }
    /* In step: ceil(1000 / 3) = 334 samples, 34 batches each. */
    for (uint32_t rank = 0; rank < world; rank++)
        assert_int_equal(batches[rank], 34);
    /* Covering; 3 x 334 - 1000 = 2 samples padded (seen twice). */
    uint64_t twice = 0;
    for (uint64_t x = 0; x < n; x++) {
        assert_true(hits[x] == 1 || hits[x] == 2);
        twice += hits[x] == 2;
    }
    assert_int_equal(twice, 2);
    free(hits);
}

static void clear_launcher_env(void)
{
    static const char *const vars[] = {"RANK", "WORLD_SIZE", "OMPI_COMM_WORLD_RANK",
                                       "OMPI_COMM_WORLD_SIZE", "PMI_RANK", "PMI_SIZE",
                                       "SLURM_PROCID", "SLURM_NTASKS"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        unsetenv(vars[i]);
}

static void test_order_shard_from_launcher_variables(void **state)
{
    (void)state;
    br_options opt;
    static const char *const pairs[][2] = {{"RANK", "WORLD_SIZE"},
                                           {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"},
                                           {"PMI_RANK", "PMI_SIZE"},
                                           {"SLURM_PROCID", "SLURM_NTASKS"}};
    clear_launcher_env();
    br_options_init(&opt);
    assert_int_equal(br_shard_from_env(&opt), -ENOENT);
    tu_assert_contains(br_last_error(NULL), "OMPI_COMM_WORLD_RANK");
    assert_int_equal(opt.world, 1);
    for (size_t i = 0; i < 4; i++) {
        clear_launcher_env();
        setenv(pairs[i][0], "2", 1);
        setenv(pairs[i][1], "5", 1);
        br_options_init(&opt);
        assert_int_equal(br_shard_from_env(&opt), 0);
        assert_int_equal(opt.rank, 2);
        assert_int_equal(opt.world, 5);
        setenv(pairs[i][0], "5", 1); /* rank == world */
        assert_int_equal(br_shard_from_env(&opt), -EINVAL);
        tu_assert_contains(br_last_error(NULL), pairs[i][0]);
        setenv(pairs[i][0], "x1", 1);
        assert_int_equal(br_shard_from_env(&opt), -EINVAL);
        unsetenv(pairs[i][1]);
        setenv(pairs[i][0], "1", 1);
        assert_int_equal(br_shard_from_env(&opt), -EINVAL);
        tu_assert_contains(br_last_error(NULL), "(unset)");
    }
    /* The launcher-specific pair wins over the generic fallbacks. */
    clear_launcher_env();
    setenv("RANK", "1", 1);
    setenv("WORLD_SIZE", "2", 1);
    setenv("SLURM_PROCID", "3", 1);
    setenv("SLURM_NTASKS", "4", 1);
    assert_int_equal(br_shard_from_env(&opt), 0);
    assert_int_equal(opt.rank, 1);
    clear_launcher_env();
    assert_int_equal(br_shard_from_env(NULL), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_order_resume_is_exact_for_any_workers, tu_teardown),
        cmocka_unit_test_teardown(test_order_implicit_ids_cost_no_memory, tu_teardown),
        cmocka_unit_test_teardown(test_order_shards_through_generators, tu_teardown),
        cmocka_unit_test(test_order_shard_from_launcher_variables),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
