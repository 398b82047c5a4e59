/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the libFuzzer harnesses (fuzz/fuzz_*.c): a private
 * scratch directory for the files a harness writes, an oracle macro that
 * aborts (so libFuzzer saves the input), a per-iteration descriptor leak
 * check, and a reader that cuts an input into parts.
 *
 * Every harness is a plain LLVMFuzzerTestOneInput: built with clang and
 * -fsanitize=fuzzer it is a fuzzer; linked with fuzz/replay.c by any
 * compiler it replays saved inputs (the fuzz_replay_* CTests).
 */
#ifndef BR_FUZZ_UTIL_H
#define BR_FUZZ_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include <batchring.h>

/* An invariant of the library broke: print why and abort, which libFuzzer
 * reports as a crash and saves the input for. */
#define FUZZ_CHECK(cond, ...)                                                         \
    do {                                                                              \
        if (!(cond)) {                                                                \
            fprintf(stderr, "%s:%d: invariant failed: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                             \
            fputc('\n', stderr);                                                      \
            abort();                                                                  \
        }                                                                             \
    } while (0)

/* Every public call returns 0 or a negative code and, when negative,
 * leaves a message. `text` is br_last_error() of the call. */
#define FUZZ_CHECK_RC(what, rc, text)                                                       \
    do {                                                                                    \
        FUZZ_CHECK((rc) <= 0, "%s returned %d, not 0 or a negative code", what, rc);        \
        FUZZ_CHECK((rc) == 0 || ((text) && (text)[0]), "%s returned %d (%s) with no message", \
                   what, rc, br_err_name(rc));                                              \
    } while (0)

/* The scratch directory of this process: $TMPDIR (make fuzz points it at
 * its own scratch area) or /tmp, plus brfuzz-XXXXXX. Made once. */
static char fuzz_dir_path[4096];

static inline int fuzz_remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    remove(path);
    return 0;
}

/* At exit (libFuzzer's after -runs, the replayer's): the directory and
 * what the harness wrote in it. A crash leaves it for the post-mortem. */
static inline void fuzz_dir_remove(void)
{
    nftw(fuzz_dir_path, fuzz_remove_one, 8, FTW_DEPTH | FTW_PHYS);
}

static inline const char *fuzz_dir(void)
{
    if (!fuzz_dir_path[0]) {
        const char *tmp = getenv("TMPDIR");
        snprintf(fuzz_dir_path, sizeof fuzz_dir_path, "%s/brfuzz-XXXXXX",
                 tmp && tmp[0] ? tmp : "/tmp");
        FUZZ_CHECK(mkdtemp(fuzz_dir_path) != NULL, "mkdtemp %s: %s", fuzz_dir_path,
                   strerror(errno));
        atexit(fuzz_dir_remove);
    }
    return fuzz_dir_path;
}

/* Path of `name` inside the scratch directory (a static buffer per slot). */
static inline const char *fuzz_path(int slot, const char *name)
{
    static char paths[4][8400];
    snprintf(paths[slot], sizeof paths[slot], "%s/%s", fuzz_dir(), name);
    return paths[slot];
}

/* Replaces the file at path with exactly len bytes of data. */
static inline void fuzz_write_file(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    FUZZ_CHECK(fd >= 0, "open %s: %s", path, strerror(errno));
    for (size_t done = 0; done < len;) {
        ssize_t w = write(fd, (const char *)data + done, len - done);
        FUZZ_CHECK(w > 0, "write %s: %s", path, strerror(errno));
        done += (size_t)w;
    }
    close(fd);
}

/* The lowest free descriptor: a descriptor opened and not closed takes it.
 * Compared within one input (fuzz_fds_begin at its start, fuzz_check_fds
 * at its end), so that what libFuzzer or LeakSanitizer open between
 * inputs is not counted. */
static int fuzz_fd_at_start = -1;

static inline int fuzz_lowest_fd(void)
{
    int fd = dup(0);
    if (fd >= 0)
        close(fd);
    return fd;
}

static inline void fuzz_fds_begin(void)
{
    fuzz_fd_at_start = fuzz_lowest_fd();
}

static inline void fuzz_check_fds(void)
{
    int now = fuzz_lowest_fd();
    if (now != fuzz_fd_at_start) {
        char link[64], target[512] = "?";
        ssize_t n;
        snprintf(link, sizeof link, "/proc/self/fd/%d", fuzz_fd_at_start);
        n = readlink(link, target, sizeof target - 1);
        target[n > 0 ? n : 0] = '\0';
        FUZZ_CHECK(now == fuzz_fd_at_start, "descriptor %d (%s) was free before this input and "
                   "is open after it: the input leaked it", fuzz_fd_at_start, target);
    }
}

/* Reads an input front to back; past its end every read gives zeros. */
struct fuzz_in {
    const uint8_t *p;
    size_t left;
};

static inline uint8_t fuzz_u8(struct fuzz_in *in)
{
    uint8_t v = 0;
    if (in->left) {
        v = *in->p++;
        in->left--;
    }
    return v;
}

static inline uint16_t fuzz_u16(struct fuzz_in *in)
{
    uint16_t lo = fuzz_u8(in);
    return (uint16_t)(lo | (uint16_t)fuzz_u8(in) << 8);
}

/* The next part: a 16-bit length, then that many bytes (fewer at the end). */
static inline const uint8_t *fuzz_part(struct fuzz_in *in, size_t *len)
{
    size_t want = fuzz_u16(in);
    const uint8_t *p = in->p;
    *len = want < in->left ? want : in->left;
    in->p += *len;
    in->left -= *len;
    return p;
}

/* The expected bytes and label of sample id, for fuzz_run_dataset. */
struct fuzz_expect {
    /* Sets *p and *len to sample id's bytes; returns false if unknown. */
    int (*sample)(void *ctx, uint64_t id, const uint8_t **p, size_t *len);
    void *ctx;
    const uint8_t *labels; /* the labels file as written, or NULL */
};

/* Opens a generator on ds in this process (workers = 0: libFuzzer cannot
 * follow forked workers) with options taken from `opts` (bits 2-4
 * batch_size - 1, bit 5 shuffle, bit 6 drop_last), takes a few batches and
 * checks each against what the files hold: a dataset that opened must
 * load. */
static inline void fuzz_run_dataset(br_dataset *ds, uint8_t opts, const struct fuzz_expect *want)
{
    br_options o;
    br_gen *g = NULL;
    int rc;

    br_options_init(&o);
    o.workers = 0;
    o.slots = 2;
    o.epochs = 1;
    o.batch_size = 1u + ((opts >> 2) & 7u);
    o.shuffle = (opts >> 5) & 1u;
    o.drop_last = (opts >> 6) & 1u;
    rc = br_open_dataset(&g, ds, NULL, 0, &o);
    FUZZ_CHECK_RC("br_open_dataset", rc, br_last_error(NULL));
    if (rc)
        return;
    for (int k = 0; k < 4; k++) {
        br_batch b;
        rc = br_next(g, &b);
        FUZZ_CHECK_RC("br_next", rc, br_last_error(g));
        if (rc == BR_EOF)
            break;
        FUZZ_CHECK(rc == 0, "br_next on a dataset that opened: %s", br_last_error(g));
        FUZZ_CHECK(b.count >= 1 && b.count <= o.batch_size, "batch of %u samples", b.count);
        FUZZ_CHECK(b.offsets != NULL, "a dataset's batch has no offsets");
        FUZZ_CHECK(b.offsets[0] == 0 && b.offsets[b.count] == b.size,
                   "offsets %llu..%llu for a batch of %zu bytes",
                   (unsigned long long)b.offsets[0], (unsigned long long)b.offsets[b.count],
                   b.size);
        FUZZ_CHECK((b.labels != NULL) == (want->labels != NULL), "labels %s",
                   b.labels ? "present" : "missing");
        for (uint32_t i = 0; i < b.count; i++) {
            const uint8_t *p;
            size_t len;
            FUZZ_CHECK(b.offsets[i] <= b.offsets[i + 1], "offsets go back at sample %u", i);
            if (want->labels) {
                int32_t v;
                memcpy(&v, want->labels + b.ids[i] * 4, 4);
                FUZZ_CHECK(b.labels[i] == v, "label of sample %llu is %d, the file says %d",
                           (unsigned long long)b.ids[i], b.labels[i], v);
            }
            if (!want->sample(want->ctx, b.ids[i], &p, &len))
                continue;
            FUZZ_CHECK(b.offsets[i + 1] - b.offsets[i] == len &&
                           memcmp((const uint8_t *)b.data + b.offsets[i], p, len) == 0,
                       "sample %llu (%zu bytes) is not what its file holds",
                       (unsigned long long)b.ids[i], len);
        }
    }
    FUZZ_CHECK(br_close(g) == 0, "br_close failed");
}

#endif /* BR_FUZZ_UTIL_H */
