/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <linux/io_uring.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "synth.h"
#include "test_fs.h"
#include "test_util.h" /* skip() is counted, so a skip shows as one */

void tf_tmpdir(char *dir, size_t cap, const char *prefix)
{
    const char *tmp = getenv("TMPDIR");
    int n = snprintf(dir, cap, "%s/%s-XXXXXX", tmp && tmp[0] ? tmp : "/tmp", prefix);
    assert_true(n > 0 && (size_t)n < cap);
    if (!mkdtemp(dir))
        fail_msg("mkdtemp %s: %s", dir, strerror(errno));
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st, (void)type, (void)ftw;
    return remove(path);
}

void tf_remove_tree(const char *dir)
{
    if (dir && dir[0] && nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        fail_msg("removing %s: %s", dir, strerror(errno));
}

const char *tf_path(const char *dir, const char *name)
{
    static char bufs[8][4096];
    static unsigned next;
    char *b = bufs[next++ % 8];
    int n = snprintf(b, sizeof bufs[0], "%s/%s", dir, name);
    assert_true(n > 0 && (size_t)n < sizeof bufs[0]);
    return b;
}

static void write_all(int fd, const void *data, size_t len, const char *what)
{
    const char *p = data;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            fail_msg("writing %s: %s", what, strerror(errno));
        p += n;
        len -= (size_t)n;
    }
}

void tf_write(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        fail_msg("creating %s: %s", path, strerror(errno));
    write_all(fd, data, len, path);
    assert_int_equal(close(fd), 0);
}

void tf_append_sample(int fd, uint64_t seed, uint64_t sample, size_t len)
{
    void *buf = malloc(len ? len : 1);
    assert_non_null(buf);
    br_synth_fill(buf, len, seed, sample);
    write_all(fd, buf, len, "a sample");
    free(buf);
}

void tf_write_labels(const char *path, uint64_t seed, uint64_t n)
{
    uint8_t *buf = malloc(n ? n * 4 : 1);
    assert_non_null(buf);
    for (uint64_t i = 0; i < n; i++) {
        uint32_t v = (uint32_t)br_synth_label(seed, i);
        for (unsigned b = 0; b < 4; b++)
            buf[i * 4 + b] = (uint8_t)(v >> (8 * b));
    }
    tf_write(path, buf, n * 4);
    free(buf);
}

bool tf_uring_available(char *why, size_t cap)
{
    /* The raw syscall, as the library's first attempt makes it (no flags):
     * ENOSYS (not built), EPERM (io_uring_disabled, seccomp), ENOMEM
     * (memlock) all mean the fallback is the correct behaviour here. */
    struct io_uring_params p;
    long fd;
    memset(&p, 0, sizeof p);
    fd = syscall(__NR_io_uring_setup, 4, &p);
    if (fd >= 0) {
        close((int)fd);
        return true;
    }
    snprintf(why, cap, "io_uring_setup: %s", strerror(errno));
    return false;
}

void tf_backend_begin(enum tf_backend b)
{
    char why[256];
    if (b == TF_PREAD) {
        assert_int_equal(setenv("BR_IO", "pread", 1), 0);
        return;
    }
    assert_int_equal(unsetenv("BR_IO"), 0);
    if (!tf_uring_available(why, sizeof why)) {
        print_message("[  SKIP    ] io_uring is unavailable on this kernel (%s); the pread "
                      "path is tested separately\n",
                      why);
        skip();
    }
}

void tf_backend_end(void)
{
    unsetenv("BR_IO");
}

uint32_t tf_backend_code(enum tf_backend b)
{
    return b == TF_URING ? BR_IO_URING : BR_IO_PREAD;
}

const char *tf_backend_name(enum tf_backend b)
{
    return b == TF_URING ? "io_uring" : "pread";
}

uint64_t *tf_scrambled_ids(uint64_t n, uint64_t seed, size_t *count)
{
    uint64_t *ids = malloc((n + 40) * sizeof *ids);
    uint64_t x = seed ? seed : 1;
    assert_non_null(ids);
    for (uint64_t i = 0; i < 40; i++)
        ids[i] = (n / 3 + i) % n;
    for (uint64_t i = 0; i < n; i++)
        ids[40 + i] = i;
    for (uint64_t i = n - 1; i > 0; i--) {
        uint64_t j, t;
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        j = x % (i + 1);
        t = ids[40 + i], ids[40 + i] = ids[40 + j], ids[40 + j] = t;
    }
    *count = n + 40;
    return ids;
}

void tf_check_sample(const br_batch *b, uint32_t i, uint64_t id, uint64_t seed,
                     size_t (*size_of)(uint64_t))
{
    size_t len = size_of(id), bad;
    assert_int_equal(b->ids[i], id);
    if (b->offsets[i + 1] - b->offsets[i] != len)
        fail_msg("batch %" PRIu64 ", sample %u (id %" PRIu64 "): %" PRIu64 " bytes, expected %zu",
                 b->seq, i, id, b->offsets[i + 1] - b->offsets[i], len);
    bad = br_synth_check((const uint8_t *)b->data + b->offsets[i], len, seed, id);
    if (bad != len)
        fail_msg("batch %" PRIu64 ", sample %u (id %" PRIu64 ", %zu bytes at offset %" PRIu64
                 "): wrong byte at %zu",
                 b->seq, i, id, len, b->offsets[i], bad);
}

uint64_t tf_write_indexed_data(const char *path, uint64_t seed, uint64_t n,
                               size_t (*size_of)(uint64_t), unsigned gap_step, uint64_t *offset)
{
    const uint64_t half = n / 2;
    uint64_t at = 0;
    uint8_t junk[64];
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    assert_true((n - half) % 7 != 0 && 4 * gap_step <= sizeof junk);
    memset(junk, 0xa5, sizeof junk);
    for (uint64_t k = 0; k < n; k++) {
        uint64_t id = k < half ? k : half + (k * 7) % (n - half);
        size_t gap = k < half || k == n - 1 ? 0 : (k % 5) * gap_step;
        offset[id] = at;
        tf_append_sample(fd, seed, id, size_of(id));
        at += size_of(id);
        if (gap) {
            assert_int_equal(write(fd, junk, gap), (ssize_t)gap);
            at += gap;
        }
    }
    assert_int_equal(fsync(fd), 0);
    assert_int_equal(close(fd), 0);
    return at;
}
