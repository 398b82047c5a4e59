/* SPDX-License-Identifier: MIT */
/*
 * The shared-memory object on its own: geometry, header validation (every
 * field of a corrupted header is refused, by name, without a crash), the
 * prefault guarantee, the slot sleep/publish handshake across real
 * processes, and which kicks wake a worker asleep for its slot.
 */
#include <errno.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "ring/error.h"
#include "ring/ring.h"
#include "test_util.h"

static struct br_ring_geometry small_geometry(void)
{
    struct br_ring_geometry g = {
        .nslots = 4,
        .nworkers = 2,
        .batch_size = 8,
        .flags = BR_RING_LABELS,
        .slot_bytes = 10000,
        .n_ids = 100,
        .epochs = 0,
        .batches_per_epoch = 13,
        .end_seq = UINT64_MAX,
    };
    return g;
}

static void test_ring_layout_is_aligned(void **state)
{
    (void)state;
    struct br_ring_geometry g = small_geometry();
    struct br_ring_header h;
    char msg[BR_MSG_CAP];
    const uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);

    memset(&h, 0, sizeof h);
    assert_int_equal(br__ring_layout(&g, &h, msg), 0);
    assert_int_equal(h.desc_offset % BR_CACHE_LINE, 0);
    assert_int_equal(h.worker_offset, h.desc_offset + 4 * sizeof(struct br_slot_desc));
    assert_int_equal(h.meta_offset, h.worker_offset + 2 * sizeof(struct br_worker_rec));
    assert_int_equal(h.meta_stride % BR_CACHE_LINE, 0);
    /* ids (8 x 8) + offsets (9 x 8) + labels (8 x 4) + message fit in one slot's meta. */
    assert_true(h.meta_stride >= 8 * 8 + 9 * 8 + 8 * 4 + BR_ERR_CAP);
    assert_int_equal(h.data_offset % page, 0);
    assert_true(h.data_offset >= h.meta_offset + 4 * h.meta_stride);
    assert_int_equal(h.slot_stride % page, 0);
    assert_true(h.slot_stride >= g.slot_bytes);
    assert_int_equal(h.total_bytes, h.data_offset + 4 * h.slot_stride);
}

static void test_ring_layout_overflow_is_refused(void **state)
{
    (void)state;
    struct br_ring_geometry g = small_geometry();
    struct br_ring_header h;
    char msg[BR_MSG_CAP];

    g.slot_bytes = UINT64_MAX / 2;
    memset(&h, 0, sizeof h);
    assert_int_equal(br__ring_layout(&g, &h, msg), -EOVERFLOW);
    tu_assert_contains(msg, "overflows");
}

static void test_ring_too_big_for_memory_names_sizes(void **state)
{
    (void)state;
    struct br_ring_geometry g = small_geometry();
    struct br_ring r;
    char msg[BR_MSG_CAP];

    g.slot_bytes = UINT64_C(1) << 42; /* 4 TiB x 4 slots */
    assert_int_equal(br__ring_create(&r, &g, NULL, msg), -ENOMEM);
    tu_assert_contains(msg, "16.00 TiB");
    tu_assert_contains(msg, "4 slots");
    tu_assert_contains(msg, "available");
    assert_null(r.base);
}

static void test_ring_created_header_validates(void **state)
{
    (void)state;
    struct br_ring_geometry g = small_geometry();
    struct br_ring r;
    char msg[BR_MSG_CAP];

    assert_int_equal(br__ring_create(&r, &g, NULL, msg), 0);
    assert_int_equal(br__ring_validate(r.base, r.bytes, msg), 0);
    assert_int_equal(r.hdr->owner_pid, getpid());
    assert_int_equal(r.hdr->nslots, 4);
    assert_int_equal(br__load_relaxed_u64(&r.hdr->fail_seq), BR_NO_FAILURE);
    for (uint32_t i = 0; i < r.nslots; i++)
        assert_int_equal(br__load_relaxed_u32(&r.desc[i].word), br__slot_word(0, BR_FREE));
    for (uint32_t i = 0; i < 2; i++)
        assert_int_equal(br__load_relaxed_u64(&r.workers[i].job), BR_JOB_IDLE);
    /* A truncated object is refused before any offset is read. */
    assert_int_equal(br__ring_validate(r.base, 100, msg), BR_EBADRING);
    tu_assert_contains(msg, "less than the");
    assert_int_equal(br__ring_validate(r.base, r.bytes - 4096, msg), BR_EBADRING);
    tu_assert_contains(msg, "total_bytes");
    br__ring_unmap(&r);
}

/* One corruption of a header field and what the refusal must name. */
struct corruption {
    const char *field;
    size_t offset;
    size_t width;
    uint64_t value;
    int code;
};

#define CORRUPT(f, v, c) {#f, offsetof(struct br_ring_header, f), \
                          sizeof(((struct br_ring_header *)0)->f), (v), (c)}

static void test_ring_corrupted_header_is_refused_by_field(void **state)
{
    (void)state;
    static const struct corruption cases[] = {
        {"magic", offsetof(struct br_ring_header, magic), 4, 0x12345678, BR_EBADRING},
        CORRUPT(layout_major, BR_LAYOUT_MAJOR + 1, BR_EVERSION),
        CORRUPT(header_bytes, 64, BR_EBADRING),
        CORRUPT(total_bytes, 1, BR_EBADRING),
        CORRUPT(page_size, 512, BR_EBADRING),
        CORRUPT(nslots, 0, BR_EBADRING),
        CORRUPT(nworkers, 100000, BR_EBADRING),
        CORRUPT(batch_size, 0, BR_EBADRING),
        CORRUPT(flags, 0x80, BR_EBADRING),
        CORRUPT(reserved, 7, BR_EBADRING),
        CORRUPT(slot_bytes, 0, BR_EBADRING),
        CORRUPT(n_ids, 1, BR_EBADRING),
        CORRUPT(desc_offset, 1 << 30, BR_EBADRING),
        CORRUPT(worker_offset, 8, BR_EBADRING),
        CORRUPT(meta_offset, UINT64_MAX, BR_EBADRING),
        CORRUPT(meta_stride, 64, BR_EBADRING),
        CORRUPT(data_offset, 4095, BR_EBADRING),
        CORRUPT(slot_stride, 8192, BR_EBADRING),
    };
    struct br_ring_geometry g = small_geometry();
    struct br_ring r;
    char msg[BR_MSG_CAP];

    assert_int_equal(br__ring_create(&r, &g, NULL, msg), 0);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        /* A private copy, so each case corrupts exactly one field. */
        uint8_t *copy = malloc(r.bytes);
        assert_non_null(copy);
        memcpy(copy, r.base, r.bytes);
        memcpy(copy + cases[i].offset, &cases[i].value, cases[i].width);
        int rc = br__ring_validate(copy, r.bytes, msg);
        if (rc != cases[i].code)
            fail_msg("corrupting %s gave %d (%s), expected %d", cases[i].field, rc, msg,
                     cases[i].code);
        tu_assert_contains(msg, cases[i].field);
        free(copy);
    }
    br__ring_unmap(&r);
}

/* Pages of the ring that are not mapped in this process's page tables,
 * read from /proc/self/pagemap (bit 63: present). A write to any of them
 * would take a page fault. Returns -1 if pagemap cannot be read. */
static long pages_not_present(const struct br_ring *r)
{
    const long page = sysconf(_SC_PAGESIZE);
    const size_t npages = r->bytes / (size_t)page;
    uint64_t *entries = calloc(npages, sizeof *entries);
    long missing = 0;
    int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    if (!entries || fd < 0 ||
        pread(fd, entries, npages * sizeof *entries,
              (off_t)((uintptr_t)r->base / (uintptr_t)page * sizeof *entries)) !=
            (ssize_t)(npages * sizeof *entries))
        missing = -1;
    for (size_t i = 0; missing >= 0 && i < npages; i++)
        if (!(entries[i] >> 63))
            missing++;
    if (fd >= 0)
        close(fd);
    free(entries);
    return missing;
}

static void test_ring_is_prefaulted_in_creator_and_child(void **state)
{
    (void)state;
    struct br_ring_geometry g = small_geometry();
    struct br_ring r;
    char msg[BR_MSG_CAP];
    int status;
    pid_t pid;

    g.slot_bytes = 8u << 20; /* 4 x 8 MiB: 8192 pages */
    assert_int_equal(br__ring_create(&r, &g, NULL, msg), 0);
    /* All 8192+ pages are in the page tables before anyone touches them. */
    assert_int_equal(pages_not_present(&r), 0);

    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* fork does not copy page tables of shared mappings: the child
         * populates its own, as every worker does. */
        if (pages_not_present(&r) <= 0)
            _exit(3); /* would mean the test cannot see lazy mappings */
        if (br__ring_populate(&r, msg) != 0)
            _exit(2);
        _exit(pages_not_present(&r) == 0 ? 0 : 1);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    br__ring_unmap(&r);
}

static void test_ring_publish_wakes_sleeper_in_other_process(void **state)
{
    (void)state;
    struct br_ring_geometry g = small_geometry();
    struct br_ring r;
    char msg[BR_MSG_CAP];
    struct br_slot_desc *d;
    int status;
    pid_t pid;

    assert_int_equal(br__ring_create(&r, &g, NULL, msg), 0);
    d = &r.desc[1];
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* Sleeps (forever: no timeout) until the word changes. */
        while (br__load_acquire_u32(&d->word) == br__slot_word(0, BR_FREE))
            br__slot_sleep(d, br__slot_word(0, BR_FREE), -1);
        _exit(br__load_acquire_u32(&d->word) == br__slot_word(0, BR_READY) ? 0 : 1);
    }
    /* Wait until the child is registered as a sleeper, then publish. */
    tu_watchdog_arm(tu_s(20), "child never went to sleep on the slot");
    while (br__load_seq_cst_u32(&d->waiters) == 0)
        sched_yield();
    tu_watchdog_disarm();
    br__slot_publish(d, br__slot_word(0, BR_READY));
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(br__load_seq_cst_u32(&d->waiters), 0);
    br__ring_unmap(&r);
}

static void test_ring_sleep_times_out_when_nothing_changes(void **state)
{
    (void)state;
    struct br_ring_geometry g = small_geometry();
    struct br_ring r;
    char msg[BR_MSG_CAP];

    assert_int_equal(br__ring_create(&r, &g, NULL, msg), 0);
    assert_int_equal(br__slot_sleep(&r.desc[0], br__slot_word(0, BR_FREE), 5), -ETIMEDOUT);
    /* A stale `seen` value returns at once instead of sleeping. */
    assert_int_equal(br__slot_sleep(&r.desc[0], br__slot_word(3, BR_READY), -1), 0);
    assert_int_equal(br__load_relaxed_u32(&r.desc[0].waiters), 0);
    br__ring_unmap(&r);
}

/* A child asleep for slot 1 as `kind` (br__worker_sleep on the kick word,
 * with a timeout far beyond the test's watchdog): exits 0 once woken with
 * the slot changed, 1 if its sleep ran out. */
static pid_t fork_slot_sleeper(struct br_ring *r, uint32_t kind)
{
    struct br_slot_desc *d = &r->desc[1];
    const uint32_t seen = br__load_acquire_u32(&d->word);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int rc = br__worker_sleep(r, d, seen, UINT64_C(60000000000), kind);
        _exit(rc == 0 && br__load_acquire_u32(&d->word) != seen ? 0 : 1);
    }
    tu_watchdog_arm(tu_s(20), "child never went to sleep for its slot");
    while (br__load_seq_cst_u32(&r->hdr->slot_sleepers) != kind)
        sched_yield();
    tu_watchdog_disarm();
    return pid;
}

static void expect_woken(struct br_ring *r, pid_t pid)
{
    int status;
    tu_watchdog_arm(tu_s(20), "the kick did not wake the sleeping child");
    assert_int_equal(waitpid(pid, &status, 0), pid);
    tu_watchdog_disarm();
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(br__load_seq_cst_u32(&r->hdr->slot_sleepers), 0);
}

/* The kick after a run of releases skips a worker that naps at the
 * consumer's pace (no syscall for the trainer); the kick before the
 * consumer waits wakes it. */
static void test_ring_run_kick_skips_napper_wait_kick_wakes_it(void **state)
{
    (void)state;
    struct br_ring_geometry g = small_geometry();
    struct br_ring r;
    char msg[BR_MSG_CAP];
    uint32_t kick;
    pid_t pid;

    assert_int_equal(br__ring_create(&r, &g, NULL, msg), 0);
    pid = fork_slot_sleeper(&r, BR_NAPPER_ONE);
    kick = br__load_seq_cst_u32(&r.hdr->kick);
    assert_false(br__kick_workers(&r, 2, BR_SLEEPERS_UNTIMED));
    assert_int_equal(br__load_seq_cst_u32(&r.hdr->kick), kick);
    assert_int_equal(br__load_relaxed_u32(&r.hdr->kick_wakes), 0);
    assert_int_equal(br__load_seq_cst_u32(&r.hdr->slot_sleepers), BR_NAPPER_ONE);
    /* As the consumer does: the release, then the kick before its wait. */
    br__slot_release(&r.desc[1], br__slot_word(1, BR_FREE));
    assert_true(br__kick_workers(&r, INT_MAX, BR_SLEEPERS_ALL));
    assert_int_equal(br__load_relaxed_u32(&r.hdr->kick_wakes), 1);
    expect_woken(&r, pid);
    br__ring_unmap(&r);
}

/* A worker in an untimed sleep is woken by the run-end kick. */
static void test_ring_run_kick_wakes_untimed_sleeper(void **state)
{
    (void)state;
    struct br_ring_geometry g = small_geometry();
    struct br_ring r;
    char msg[BR_MSG_CAP];
    pid_t pid;

    assert_int_equal(br__ring_create(&r, &g, NULL, msg), 0);
    pid = fork_slot_sleeper(&r, BR_SLEEPER_ONE);
    br__slot_release(&r.desc[1], br__slot_word(1, BR_FREE));
    assert_true(br__kick_workers(&r, 2, BR_SLEEPERS_UNTIMED));
    assert_int_equal(br__load_relaxed_u32(&r.hdr->kick_wakes), 1);
    expect_woken(&r, pid);
    br__ring_unmap(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ring_layout_is_aligned),
        cmocka_unit_test(test_ring_layout_overflow_is_refused),
        cmocka_unit_test(test_ring_too_big_for_memory_names_sizes),
        cmocka_unit_test(test_ring_created_header_validates),
        cmocka_unit_test(test_ring_corrupted_header_is_refused_by_field),
        cmocka_unit_test(test_ring_is_prefaulted_in_creator_and_child),
        cmocka_unit_test(test_ring_publish_wakes_sleeper_in_other_process),
        cmocka_unit_test(test_ring_sleep_times_out_when_nothing_changes),
        cmocka_unit_test(test_ring_run_kick_skips_napper_wait_kick_wakes_it),
        cmocka_unit_test(test_ring_run_kick_wakes_untimed_sleeper),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
