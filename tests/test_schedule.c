/* SPDX-License-Identifier: MIT */
/* The schedule: seq -> epoch, batch, positions, ids and labels. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "producer/schedule.h"
#include "ring/error.h"
#include "test_util.h"

static void test_schedule_short_last_batch(void **state)
{
    (void)state;
    struct br_schedule s;
    char msg[BR_MSG_CAP];
    assert_int_equal(br__schedule_init(&s, 103, 10, false, 3, msg), 0);
    assert_int_equal(s.batches_per_epoch, 11);
    assert_int_equal(s.end_seq, 33);
    for (uint64_t seq = 0; seq < s.end_seq; seq++) {
        struct br_batch_place p = br__schedule_place(&s, seq);
        assert_int_equal(p.epoch, seq / 11);
        assert_int_equal(p.batch, seq % 11);
        assert_int_equal(p.first, (seq % 11) * 10);
        assert_int_equal(p.count, seq % 11 == 10 ? 3 : 10);
    }
}

static void test_schedule_drop_last(void **state)
{
    (void)state;
    struct br_schedule s;
    char msg[BR_MSG_CAP];
    assert_int_equal(br__schedule_init(&s, 103, 10, true, 2, msg), 0);
    assert_int_equal(s.batches_per_epoch, 10);
    assert_int_equal(s.end_seq, 20);
    for (uint64_t seq = 0; seq < s.end_seq; seq++)
        assert_int_equal(br__schedule_place(&s, seq).count, 10);
    /* n divisible by B: drop_last changes nothing. */
    assert_int_equal(br__schedule_init(&s, 100, 10, true, 0, msg), 0);
    assert_int_equal(s.batches_per_epoch, 10);
    assert_int_equal(s.end_seq, UINT64_MAX);
}

static void test_schedule_fill_ids_and_labels(void **state)
{
    (void)state;
    struct br_schedule s;
    char msg[BR_MSG_CAP];
    const uint64_t ids[] = {70, 71, 9, 3, 500, 8, 1};
    const int32_t labels[] = {-1, 2, 3, 4, 5, 6, 7};
    uint64_t out_ids[3];
    int32_t out_labels[3];

    assert_int_equal(br__schedule_init(&s, 7, 3, false, 0, msg), 0);
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
}

static void test_schedule_refuses_bad_sizes(void **state)
{
    (void)state;
    struct br_schedule s;
    char msg[BR_MSG_CAP];
    assert_int_equal(br__schedule_init(&s, 5, 0, false, 0, msg), -EINVAL);
    assert_int_equal(br__schedule_init(&s, 5, 6, false, 0, msg), -EINVAL);
    tu_assert_contains(msg, "batch_size 6");
    assert_int_equal(br__schedule_init(&s, 10, 1, false, UINT64_MAX / 4, msg), -EOVERFLOW);
    tu_assert_contains(msg, "epochs");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schedule_short_last_batch),
        cmocka_unit_test(test_schedule_drop_last),
        cmocka_unit_test(test_schedule_fill_ids_and_labels),
        cmocka_unit_test(test_schedule_refuses_bad_sizes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
