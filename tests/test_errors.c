/* SPDX-License-Identifier: MIT */
/*
 * Error codes, their names and texts, and the version: the parts of the API
 * that every message a user sees is built from.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "test_util.h"

/* Every BR_E* code from the one list the header generates them from, so a
 * code added later is tested without touching this file. */
static const struct {
    int code;
    const char *name;
} codes[] = {
#define CODE_(name, value, text) {BR_##name, "BR_" #name},
    BR_ERRNO_MAP(CODE_)
#undef CODE_
};
#define N_CODES (sizeof codes / sizeof codes[0])

static void test_errors_codes_in_reserved_range(void **state)
{
    (void)state;
    assert_true(BR_ERRNO_FIRST < BR_ERRNO_LAST);
    /* Far from any errno: -4095 is the lowest -errno the kernel returns. */
    assert_true(BR_ERRNO_LAST < -4095);
    for (size_t i = 0; i < N_CODES; i++) {
        assert_in_range(codes[i].code - BR_ERRNO_FIRST, 0, BR_ERRNO_LAST - BR_ERRNO_FIRST);
        for (size_t j = 0; j < i; j++)
            assert_int_not_equal(codes[i].code, codes[j].code);
    }
}

static void test_errors_strerror_distinct(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_CODES; i++) {
        const char *text = br_strerror(codes[i].code);
        assert_non_null(text);
        assert_true(strlen(text) > 0);
        for (size_t j = 0; j < i; j++)
            if (!strcmp(text, br_strerror(codes[j].code)))
                fail_msg("%s and %s share the text \"%s\"", codes[i].name, codes[j].name, text);
    }
}

static void test_errors_names(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_CODES; i++)
        assert_string_equal(br_err_name(codes[i].code), codes[i].name);
}

static void test_errors_errno_codes(void **state)
{
    (void)state;
    /* The -errno values the API documents get their usual name and the
     * C library's text. */
    static const struct {
        int err;
        const char *name;
    } errs[] = {{EINVAL, "EINVAL"},
                {ENOMEM, "ENOMEM"},
                {ETIMEDOUT, "ETIMEDOUT"},
                {EOVERFLOW, "EOVERFLOW"},
                {EIO, "EIO"}};
    for (size_t i = 0; i < sizeof errs / sizeof errs[0]; i++) {
        assert_string_equal(br_err_name(-errs[i].err), errs[i].name);
        assert_string_equal(br_strerror(-errs[i].err), strerror(errs[i].err));
    }
}

static void test_errors_unknown_codes(void **state)
{
    (void)state;
    /* Unassigned codes in our range, positive numbers, numbers below any
     * errno, and INT_MIN (whose negation overflows). */
    static const int unknown[] = {
        BR_ERRNO_FIRST, -30050, BR_ERRNO_LAST - 90, 1, 12345, -4096, -100000, INT_MIN, INT_MAX};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        int code = unknown[i];
        bool ours = false;
        for (size_t j = 0; j < N_CODES; j++)
            ours |= codes[j].code == code;
        if (ours)
            continue;
        const char *text = br_strerror(code);
        const char *name = br_err_name(code);
        assert_non_null(text);
        assert_non_null(name);
        if (!strcasestr(text, "unknown"))
            fail_msg("br_strerror(%d) = \"%s\", expected an \"unknown\" text", code, text);
        for (size_t j = 0; j < N_CODES; j++)
            assert_string_not_equal(name, codes[j].name);
    }
}

/* Calls without a generator to hold their message leave it in the calling
 * thread's (br_last_error(NULL)): the ring-name rule and the getters. */
static void test_errors_messages_without_generator(void **state)
{
    static const char *const bad[] = {"train", "/", "/.", "/..", "/a/b"};
    br_stats st;
    br_worker_stats ws;
    uint64_t next;
    int32_t pid;
    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(br_ring_name_check(bad[i]), -EINVAL);
        tu_assert_contains(br_last_error(NULL), "must be '/' followed by 1 to 250");
    }
    assert_int_equal(br_ring_name_check(NULL), -EINVAL);
    tu_assert_contains(br_last_error(NULL), "NULL");
    assert_int_equal(br_ring_name_check("/train"), 0);
    assert_string_equal(br_last_error(NULL), "");

    assert_int_equal(br_stats_get(NULL, &st), -EINVAL);
    tu_assert_contains(br_last_error(NULL), "br_stats_get: the generator is NULL");
    assert_int_equal(br_worker_stats_get((br_gen *)(uintptr_t)0x12345, 0, &ws), -EINVAL);
    tu_assert_contains(br_last_error(NULL), "br_worker_stats_get: the generator is closed");
    assert_int_equal(br_checkpoint_get(NULL, &next), -EINVAL);
    tu_assert_contains(br_last_error(NULL), "br_checkpoint_get");
    assert_int_equal(br_consumer_pid_get(NULL, &pid), -EINVAL);
    tu_assert_contains(br_last_error(NULL), "br_consumer_pid_get");
    assert_int_equal(br_stats_get_sized(NULL, &st, 8), -EINVAL);
    tu_assert_contains(br_last_error(NULL), "the generator is NULL");
}

static void test_errors_version(void **state)
{
    (void)state;
    assert_int_equal(br_version(), BR_VERSION_NUMBER);
    char want[32];
    snprintf(want, sizeof want, "%d.%d.%d", BR_VERSION_MAJOR, BR_VERSION_MINOR, BR_VERSION_PATCH);
    assert_string_equal(br_version_string(), want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_errors_codes_in_reserved_range),
        cmocka_unit_test(test_errors_strerror_distinct),
        cmocka_unit_test(test_errors_names),
        cmocka_unit_test(test_errors_errno_codes),
        cmocka_unit_test(test_errors_unknown_codes),
        cmocka_unit_test(test_errors_version),
        cmocka_unit_test(test_errors_messages_without_generator),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
