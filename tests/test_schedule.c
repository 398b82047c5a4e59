/* SPDX-License-Identifier: MIT */
/*
 * The schedule: seq -> epoch, batch, positions, ids and labels; shuffling
 * is a true permutation for every n; shards are disjoint, cover the data
 * and stay in step; batch seeds depend on the batch only.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "producer/schedule.h"
#include "ring/error.h"
#include "test_util.h"

static struct br_schedule make(uint64_t n, uint32_t b, bool drop_last, uint64_t epochs)
{
    struct br_schedule s;
    char msg[BR_MSG_CAP];
    struct br_schedule_options o = {
        .n_ids = n, .batch_size = b, .drop_last = drop_last, .epochs = epochs};
    assert_int_equal(br__schedule_init(&s, &o, msg), 0);
    return s;
}

static void test_schedule_short_last_batch(void **state)
{
    (void)state;
    struct br_schedule s = make(103, 10, false, 3);
    assert_int_equal(s.batches_per_epoch, 11);
    assert_int_equal(s.end_seq, 33);
    for (uint64_t seq = 0; seq < s.end_seq; seq++) {
        struct br_batch_place p = br__schedule_place(&s, seq);
        assert_int_equal(p.epoch, seq / 11);
        assert_int_equal(p.batch, seq % 11);
        assert_int_equal(p.first, (seq % 11) * 10);
        assert_int_equal(p.count, seq % 11 == 10 ? 3 : 10);
        for (uint32_t i = 0; i < p.count; i++)
            assert_int_equal(br__schedule_index(&s, &p, i), p.first + i);
    }
}

static void test_schedule_drop_last(void **state)
{
    (void)state;
    struct br_schedule s = make(103, 10, true, 2);
    assert_int_equal(s.batches_per_epoch, 10);
    assert_int_equal(s.end_seq, 20);
    for (uint64_t seq = 0; seq < s.end_seq; seq++)
        assert_int_equal(br__schedule_place(&s, seq).count, 10);
    /* n divisible by B: drop_last changes nothing. */
    s = make(100, 10, true, 0);
    assert_int_equal(s.batches_per_epoch, 10);
    assert_int_equal(s.end_seq, UINT64_MAX);
}

static void test_schedule_fill_ids_and_labels(void **state)
{
    (void)state;
    struct br_schedule s = make(7, 3, false, 0);
    const uint64_t ids[] = {70, 71, 9, 3, 500, 8, 1};
    const int32_t labels[] = {-1, 2, 3, 4, 5, 6, 7};
    uint64_t out_ids[3];
    int32_t out_labels[3];

    struct br_batch_place p = br__schedule_place(&s, 5); /* epoch 1, batch 2 */
    assert_int_equal(p.epoch, 1);
    assert_int_equal(p.count, 1);
    br__schedule_fill(&s, &p, ids, labels, out_ids, out_labels);
    assert_int_equal(out_ids[0], 1);
    assert_int_equal(out_labels[0], 7);
    p = br__schedule_place(&s, 4);
    br__schedule_fill(&s, &p, ids, NULL, out_ids, NULL);
    assert_int_equal(out_ids[0], 3);
    assert_int_equal(out_ids[2], 8);
    /* Implicit ids: the index is the id. */
    br__schedule_fill(&s, &p, NULL, NULL, out_ids, NULL);
    assert_int_equal(out_ids[0], 3);
    assert_int_equal(out_ids[2], 5);
}

static void test_schedule_refuses_bad_sizes(void **state)
{
    (void)state;
    struct br_schedule s;
    char msg[BR_MSG_CAP];
    struct br_schedule_options o = {.n_ids = 5, .batch_size = 0};
    assert_int_equal(br__schedule_init(&s, &o, msg), -EINVAL);
    o.batch_size = 6;
    assert_int_equal(br__schedule_init(&s, &o, msg), -EINVAL);
    tu_assert_contains(msg, "batch_size 6");
    o = (struct br_schedule_options){.n_ids = 10, .batch_size = 1, .epochs = UINT64_MAX / 4};
    assert_int_equal(br__schedule_init(&s, &o, msg), -EOVERFLOW);
    tu_assert_contains(msg, "epochs");
    o = (struct br_schedule_options){.n_ids = 10, .batch_size = 1, .rank = 3, .world = 3};
    assert_int_equal(br__schedule_init(&s, &o, msg), -EINVAL);
    tu_assert_contains(msg, "rank 3");
    /* 10 over 6 ranks: 2 each when padding, 1 each when dropping the tail. */
    o = (struct br_schedule_options){.n_ids = 10, .batch_size = 2, .rank = 0, .world = 6};
    assert_int_equal(br__schedule_init(&s, &o, msg), 0);
    o.shard_drop_tail = true;
    assert_int_equal(br__schedule_init(&s, &o, msg), -EINVAL);
    o.world = 11;
    assert_int_equal(br__schedule_init(&s, &o, msg), -EINVAL);
    tu_assert_contains(msg, "world 11");
    o = (struct br_schedule_options){.n_ids = 10, .batch_size = 5, .epochs = 2, .start_seq = 5};
    assert_int_equal(br__schedule_init(&s, &o, msg), -EINVAL);
    tu_assert_contains(msg, "start_seq 5");
}

/* The shuffled order itself never changes between versions: a run given
 * the same seed sees the same batches. The order has been the same since
 * 0.1.0; these values are 0.2.0's, computed an id at a time (before
 * br__schedule_fill took ids in bulk). */
static void test_schedule_shuffled_order_is_stable(void **state)
{
    (void)state;
    struct br_schedule s;
    char msg[BR_MSG_CAP];
    uint64_t out[8];
    struct br_schedule_options o = {.n_ids = 1000, .batch_size = 7, .shuffle = true,
                                    .seed = 42, .world = 3, .rank = 1};
    static const uint64_t want[3][7] = {{28, 515, 44, 393, 90, 9, 462},
                                        {859, 32, 738, 991, 618, 33, 949},
                                        {373, 865, 608, 385, 878, 915, 303}};
    static const uint64_t seqs[3] = {0, 5, 1000};
    assert_int_equal(br__schedule_init(&s, &o, msg), 0);
    for (int k = 0; k < 3; k++) {
        struct br_batch_place p = br__schedule_place(&s, seqs[k]);
        br__schedule_fill(&s, &p, NULL, NULL, out, NULL);
        assert_memory_equal(out, want[k], sizeof want[k]);
    }
    o = (struct br_schedule_options){.n_ids = 32768, .batch_size = 8, .shuffle = true, .seed = 7};
    static const uint64_t want2[8] = {24447, 2238, 12152, 5854, 23737, 24980, 32145, 8770};
    assert_int_equal(br__schedule_init(&s, &o, msg), 0);
    struct br_batch_place p = br__schedule_place(&s, 3);
    br__schedule_fill(&s, &p, NULL, NULL, out, NULL);
    assert_memory_equal(out, want2, sizeof want2);
}

/* br__schedule_fill (ids in bulk, chunk by chunk) gives, id for id, what
 * br__schedule_index gives one at a time: batches larger than a chunk,
 * shards with the padded tail, shuffled or not, ids and labels or not. */
static void test_schedule_fill_matches_index(void **state)
{
    (void)state;
    static const uint64_t sizes[] = {1, 5, 300, 1000, 4097, 65536};
    static const uint32_t batches[] = {1, 7, 256, 257, 700};
    enum { MAXB = 700 };
    uint64_t *ids = malloc(65536 * sizeof *ids), out_ids[MAXB];
    int32_t *labels = malloc(65536 * sizeof *labels), out_labels[MAXB];
    assert_non_null(ids);
    assert_non_null(labels);
    for (uint64_t i = 0; i < 65536; i++)
        ids[i] = i * 3 + 11, labels[i] = (int32_t)(i ^ 0x5a5a);
    for (size_t a = 0; a < sizeof sizes / sizeof *sizes; a++)
        for (size_t b = 0; b < sizeof batches / sizeof *batches; b++)
            for (uint32_t world = 1; world <= 3; world += 2)
                for (int shuffle = 0; shuffle < 2; shuffle++) {
                    struct br_schedule s;
                    char msg[BR_MSG_CAP];
                    struct br_schedule_options o = {
                        .n_ids = sizes[a], .batch_size = batches[b], .shuffle = shuffle,
                        .seed = 99, .world = world, .rank = (uint32_t)(a % world)};
                    if (br__schedule_init(&s, &o, msg))
                        continue; /* a batch larger than the epoch */
                    for (uint64_t seq = 0; seq < 3 * s.batches_per_epoch && seq < 40; seq++) {
                        struct br_batch_place p = br__schedule_place(&s, seq);
                        const uint64_t *in = seq % 2 ? ids : NULL;
                        br__schedule_fill(&s, &p, in, seq % 2 ? labels : NULL, out_ids,
                                          out_labels);
                        for (uint32_t i = 0; i < p.count; i++) {
                            uint64_t x = br__schedule_index(&s, &p, i);
                            if (out_ids[i] != (in ? in[x] : x) ||
                                (seq % 2 && out_labels[i] != labels[x]))
                                fail_msg("n=%llu b=%u world=%u shuffle=%d seq %llu: sample %u "
                                         "is %llu, index says %llu",
                                         (unsigned long long)sizes[a], batches[b], world,
                                         shuffle, (unsigned long long)seq, i,
                                         (unsigned long long)out_ids[i],
                                         (unsigned long long)x);
                        }
                    }
                }
    free(ids);
    free(labels);
}

/* Every index of epoch `epoch` exactly once; returns the order in out. */
static void check_permutation(const struct br_schedule *s, uint64_t epoch, uint64_t *out,
                              uint8_t *seen)
{
    memset(seen, 0, s->n_ids);
    for (uint64_t b = 0; b < s->batches_per_epoch; b++) {
        struct br_batch_place p = br__schedule_place(s, epoch * s->batches_per_epoch + b);
        for (uint32_t i = 0; i < p.count; i++) {
            uint64_t x = br__schedule_index(s, &p, i);
            assert_true(x < s->n_ids);
            if (seen[x])
                fail_msg("n=%llu epoch %llu: index %llu twice", (unsigned long long)s->n_ids,
                         (unsigned long long)epoch, (unsigned long long)x);
            seen[x] = 1;
            out[p.first + i] = x;
        }
    }
}

static void test_schedule_shuffle_is_a_permutation_for_every_n(void **state)
{
    (void)state;
    static const uint64_t sizes[] = {1,  2,   3,   4,    5,    7,    16,   17,     31,    64,
                                     97, 127, 128, 1000, 4093, 4096, 4097, 65521, 1000000};
    static const uint64_t seeds[] = {0, 1, 0xdeadbeef};
    char msg[BR_MSG_CAP];
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        uint64_t n = sizes[i];
        uint64_t *order = malloc(n * sizeof *order);
        uint8_t *seen = malloc(n);
        assert_non_null(order);
        assert_non_null(seen);
        for (size_t k = 0; k < sizeof seeds / sizeof seeds[0]; k++) {
            struct br_schedule s;
            struct br_schedule_options o = {
                .n_ids = n, .batch_size = 1, .shuffle = true, .seed = seeds[k]};
            if (n >= 1000)
                o.batch_size = 1000 < n ? 1000 : (uint32_t)n;
            assert_int_equal(br__schedule_init(&s, &o, msg), 0);
            /* Large n: one epoch and one seed are enough (and keep it fast). */
            if (n == 1000000 && k > 0)
                break;
            check_permutation(&s, 0, order, seen);
            if (n < 1000)
                check_permutation(&s, 5, order, seen);
        }
        free(order);
        free(seen);
    }
}

static void test_schedule_shuffle_differs_by_epoch_and_seed_only(void **state)
{
    (void)state;
    const uint64_t n = 1000;
    char msg[BR_MSG_CAP];
    struct br_schedule a, b, c;
    struct br_schedule_options o = {.n_ids = n, .batch_size = 10, .shuffle = true, .seed = 42};
    uint64_t *e0 = malloc(n * sizeof *e0), *e1 = malloc(n * sizeof *e1);
    uint64_t *again = malloc(n * sizeof *again), *other = malloc(n * sizeof *other);
    uint8_t *seen = malloc(n);
    size_t same_epochs = 0, same_seeds = 0, moved = 0;

    assert_int_equal(br__schedule_init(&a, &o, msg), 0);
    assert_int_equal(br__schedule_init(&b, &o, msg), 0);
    o.seed = 43;
    assert_int_equal(br__schedule_init(&c, &o, msg), 0);
    check_permutation(&a, 0, e0, seen);
    check_permutation(&a, 1, e1, seen);
    check_permutation(&b, 0, again, seen);
    check_permutation(&c, 0, other, seen);
    for (uint64_t i = 0; i < n; i++) {
        same_epochs += e0[i] == e1[i];
        same_seeds += e0[i] == other[i];
        moved += e0[i] != i;
        assert_int_equal(e0[i], again[i]); /* same seed, same order */
    }
    /* A random permutation fixes about one point; allow a wide margin. */
    assert_true(same_epochs < 20);
    assert_true(same_seeds < 20);
    assert_true(moved > n - 20);
    free(e0), free(e1), free(again), free(other), free(seen);
}

static void test_schedule_shards_disjoint_covering_in_step(void **state)
{
    (void)state;
    static const uint64_t sizes[] = {100, 101, 997, 1024};
    char msg[BR_MSG_CAP];
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        const uint64_t n = sizes[si];
        uint32_t *hits = malloc(n * sizeof *hits);
        assert_non_null(hits);
        for (uint32_t world = 1; world <= 8; world++) {
            for (int drop_tail = 0; drop_tail <= 1; drop_tail++) {
                uint64_t batches = 0, total = 0;
                memset(hits, 0, n * sizeof *hits);
                for (uint32_t rank = 0; rank < world; rank++) {
                    struct br_schedule s;
                    struct br_schedule_options o = {.n_ids = n,
                                                    .batch_size = 4,
                                                    .shuffle = true,
                                                    .seed = 7,
                                                    .rank = rank,
                                                    .world = world,
                                                    .shard_drop_tail = drop_tail};
                    assert_int_equal(br__schedule_init(&s, &o, msg), 0);
                    if (rank == 0)
                        batches = s.batches_per_epoch;
                    assert_int_equal(s.batches_per_epoch, batches); /* in step */
                    for (uint64_t b = 0; b < s.batches_per_epoch; b++) {
                        struct br_batch_place p = br__schedule_place(&s, 2 * batches + b);
                        for (uint32_t i = 0; i < p.count; i++) {
                            hits[br__schedule_index(&s, &p, i)]++;
                            total++;
                        }
                    }
                }
                uint64_t once = 0, twice = 0, never = 0;
                for (uint64_t x = 0; x < n; x++) {
                    once += hits[x] == 1;
                    twice += hits[x] == 2;
                    never += hits[x] == 0;
                    assert_true(hits[x] <= 2);
                }
                if (drop_tail) {
                    /* Disjoint; only the n % world tail is left out. */
                    assert_int_equal(twice, 0);
                    assert_int_equal(never, n % world);
                } else {
                    /* Covering; the padding repeats exactly the shortfall. */
                    assert_int_equal(never, 0);
                    assert_int_equal(twice, (world - n % world) % world);
                }
                assert_int_equal(total, once + 2 * twice);
            }
        }
        free(hits);
    }
}

static void test_schedule_batch_seed_depends_on_batch_only(void **state)
{
    (void)state;
    struct br_schedule a = make(100, 10, false, 0), b = make(100, 10, false, 0);
    assert_int_equal(br__schedule_batch_seed(&a, 17), br__schedule_batch_seed(&b, 17));
    assert_int_not_equal(br__schedule_batch_seed(&a, 17), br__schedule_batch_seed(&a, 18));
    b.seed = 1;
    assert_int_not_equal(br__schedule_batch_seed(&a, 17), br__schedule_batch_seed(&b, 17));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schedule_short_last_batch),
        cmocka_unit_test(test_schedule_drop_last),
        cmocka_unit_test(test_schedule_fill_ids_and_labels),
        cmocka_unit_test(test_schedule_refuses_bad_sizes),
        cmocka_unit_test(test_schedule_shuffled_order_is_stable),
        cmocka_unit_test(test_schedule_fill_matches_index),
        cmocka_unit_test(test_schedule_shuffle_is_a_permutation_for_every_n),
        cmocka_unit_test(test_schedule_shuffle_differs_by_epoch_and_seed_only),
        cmocka_unit_test(test_schedule_shards_disjoint_covering_in_step),
        cmocka_unit_test(test_schedule_batch_seed_depends_on_batch_only),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
