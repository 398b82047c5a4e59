/* SPDX-License-Identifier: MIT */
/*
 * The dataset writer behind `batchring mkdata` (cli/mkdata.c), also used by
 * `batchring soak` and by the tests to make their datasets: a deterministic
 * synthetic dataset in one of the built-in layouts (records, files,
 * indexed), with a labels file. Every byte comes from br_synth (synth.c),
 * so a reader can check what it gets without a copy of the dataset;
 * dataset.txt records the parameters.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mkdata.h"
#include "synth.h"

#define WRITE_BUFFER (1u << 20)

static int fail(char *err, size_t cap, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t cap, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
    return code;
}


/* ------------------------------------------------------------- progress */

struct progress {
    bool on;
    uint64_t total, done;
    uint64_t last_ns;
    const char *what;
};


static void progress_draw(struct progress *p, bool force)
{
    char a[32], b[32], bar[31];
    uint64_t t;
    unsigned filled;
    if (!p->on)
        return;
    t = br_util_now_ns();
    if (!force && t - p->last_ns < 100000000u)
        return;
    p->last_ns = t;
    filled = p->total ? (unsigned)(p->done * 30 / p->total) : 30;
    memset(bar, '#', filled);
    memset(bar + filled, ' ', 30 - filled);
    bar[30] = '\0';
    fprintf(stderr, "\r  %-12s [%s] %3u%%  %s of %s ", p->what, bar,
            p->total ? (unsigned)(p->done * 100 / p->total) : 100, br_util_bytes(a, p->done),
            br_util_bytes(b, p->total));
}

static void progress_clear(struct progress *p)
{
    if (p->on)
        fprintf(stderr, "\r%78s\r", "");
}

/* --------------------------------------------------------------- writer */

struct writer {
    int fd;
    char path[4096];
    uint8_t *buf;
    size_t cap; /* of buf */
    size_t used;
    uint64_t written;
    struct progress *progress;
};

/* What a file that is not a regular file is, for messages. */
static const char *file_kind(mode_t mode)
{
    switch (mode & S_IFMT) {
    case S_IFIFO: return "a FIFO";
    case S_IFDIR: return "a directory";
    case S_IFCHR: return "a character device";
    case S_IFBLK: return "a block device";
    case S_IFSOCK: return "a socket";
    default: return "not a regular file";
    }
}

/* Creates (or truncates) the regular file path for writing. Never blocks in
 * open(): something already at path that is not a regular file (a FIFO
 * would wait there for a reader) is refused and left as it is. Returns the
 * descriptor or a negative code with the message in err. */
static int create_regular(const char *path, char *err, size_t cap)
{
    struct stat st;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NONBLOCK, 0644), e;
    if (fd < 0) {
        e = errno;
        /* ENXIO: a FIFO without a reader; say what is in the way. */
        if (stat(path, &st) == 0 && !S_ISREG(st.st_mode))
            return fail(err, cap, -EINVAL, "cannot create %s: it is %s, not a regular file",
                        path, file_kind(st.st_mode));
        return fail(err, cap, -e, "cannot create %s: %s", path, strerror(e));
    }
    if (fstat(fd, &st) < 0) {
        e = errno;
        close(fd);
        return fail(err, cap, -e, "cannot stat %s: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return fail(err, cap, -EINVAL, "cannot create %s: it is %s, not a regular file", path,
                    file_kind(st.st_mode));
    }
    /* Plain blocking writes from here on. */
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    return fd;
}

/* bytes: what will be written, when known and small (one file of the
 * files layout), so that a buffer of that size does; 0 for large files. */
static int writer_open(struct writer *w, const char *dir, const char *name, uint64_t bytes,
                       struct progress *p, char *err, size_t cap)
{
    memset(w, 0, sizeof *w);
    w->fd = -1;
    w->progress = p;
    if ((size_t)snprintf(w->path, sizeof w->path, "%s/%s", dir, name) >= sizeof w->path)
        return fail(err, cap, -ENAMETOOLONG, "the path %s/%s is too long", dir, name);
    w->cap = bytes && bytes < WRITE_BUFFER ? (size_t)bytes : WRITE_BUFFER;
    w->buf = malloc(w->cap);
    if (!w->buf)
        return fail(err, cap, -ENOMEM, "out of memory for a write buffer");
    w->fd = create_regular(w->path, err, cap);
    if (w->fd < 0) {
        int e = w->fd;
        w->fd = -1;
        free(w->buf);
        w->buf = NULL;
        return e;
    }
    return 0;
}

static int writer_flush(struct writer *w, char *err, size_t cap)
{
    size_t done = 0;
    while (done < w->used) {
        ssize_t n = write(w->fd, w->buf + done, w->used - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return fail(err, cap, -errno, "writing %s: %s", w->path, strerror(errno));
        done += (size_t)n;
    }
    if (w->progress) {
        w->progress->done += w->used;
        progress_draw(w->progress, false);
    }
    w->used = 0;
    return 0;
}

/* Room for n bytes at the end of the buffer (n <= w->cap). */
static uint8_t *writer_reserve(struct writer *w, size_t n, int *rc, char *err, size_t cap)
{
    if (w->used + n > w->cap && (*rc = writer_flush(w, err, cap)) != 0)
        return NULL;
    w->used += n;
    w->written += n;
    return w->buf + w->used - n;
}

/* A sample of any size, in pieces that fit the buffer. */
static int writer_sample(struct writer *w, uint64_t seed, uint64_t sample, uint64_t len, char *err,
                         size_t cap)
{
    int rc = 0;
    if (len <= w->cap) {
        uint8_t *p = writer_reserve(w, (size_t)len, &rc, err, cap);
        if (p)
            br_synth_fill(p, (size_t)len, seed, sample);
        return rc;
    }
    /* Larger than the buffer: generate the whole sample once, then copy
     * it through (br_synth_fill is random-access per sample, not per
     * offset, and samples this large are rare). */
    uint8_t *whole = malloc((size_t)len);
    if (!whole)
        return fail(err, cap, -ENOMEM, "out of memory for a %" PRIu64 "-byte sample", len);
    br_synth_fill(whole, (size_t)len, seed, sample);
    for (uint64_t at = 0; at < len && rc == 0;) {
        size_t part = len - at < w->cap ? (size_t)(len - at) : w->cap;
        uint8_t *p = writer_reserve(w, part, &rc, err, cap);
        if (p)
            memcpy(p, whole + at, part);
        at += part;
    }
    free(whole);
    return rc;
}

static int writer_bytes(struct writer *w, const void *src, size_t n, char *err, size_t cap)
{
    int rc = 0;
    uint8_t *p = writer_reserve(w, n, &rc, err, cap);
    if (p)
        memcpy(p, src, n);
    return rc;
}

static void put_le64(uint8_t *p, uint64_t v)
{
    for (unsigned b = 0; b < 8; b++)
        p[b] = (uint8_t)(v >> (8 * b));
}

/* Flushes and closes; on an earlier error (rc != 0) just closes. */
static int writer_close(struct writer *w, int rc, char *err, size_t cap)
{
    if (rc == 0)
        rc = writer_flush(w, err, cap);
    if (w->fd >= 0 && close(w->fd) < 0 && rc == 0)
        rc = fail(err, cap, -errno, "closing %s: %s", w->path, strerror(errno));
    free(w->buf);
    w->buf = NULL;
    w->fd = -1;
    return rc;
}

/* ------------------------------------------------------------- datasets */

static int make_dir(const char *path, char *err, size_t cap)
{
    char buf[4096];
    size_t len = strlen(path);
    if (len >= sizeof buf)
        return fail(err, cap, -ENAMETOOLONG, "the path %s is too long", path);
    memcpy(buf, path, len + 1);
    /* mkdir -p: each parent in turn, then the directory itself. */
    for (size_t i = 1; i <= len; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        buf[i] = '\0';
        if (mkdir(buf, 0755) < 0 && errno != EEXIST)
            return fail(err, cap, -errno, "cannot create the directory %s: %s", buf,
                        strerror(errno));
        buf[i] = path[i];
    }
    struct stat st;
    if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode))
        return fail(err, cap, -ENOTDIR, "%s is not a directory", path);
    return 0;
}

static int write_labels(const struct br_mkdata_spec *s, struct progress *p, char *err, size_t cap)
{
    struct writer w;
    int rc = writer_open(&w, s->dir, BR_MKDATA_LABELS, 0, p, err, cap);
    if (rc)
        return rc;
    p->what = BR_MKDATA_LABELS;
    for (uint64_t i = 0; i < s->samples && rc == 0; i++) {
        uint32_t v = (uint32_t)br_synth_label(s->seed, i);
        uint8_t le[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
        rc = writer_bytes(&w, le, 4, err, cap);
    }
    return writer_close(&w, rc, err, cap);
}

static int write_manifest(const struct br_mkdata_spec *s, char *err, size_t cap)
{
    char path[4096];
    FILE *f;
    int fd;
    snprintf(path, sizeof path, "%s/%s", s->dir, BR_MKDATA_MANIFEST);
    fd = create_regular(path, err, cap);
    if (fd < 0)
        return fd;
    f = fdopen(fd, "w");
    if (!f) {
        close(fd);
        return fail(err, cap, -ENOMEM, "cannot create %s: %s", path, strerror(errno));
    }
    fprintf(f,
            "# batchring mkdata: a synthetic dataset. Sample i holds br_synth_fill(seed, i)\n"
            "# (cli/synth.c), br_synth_size(seed, i, min_bytes, max_bytes) bytes long,\n"
            "# with label br_synth_label(seed, i).\n"
            "layout %s\nsamples %" PRIu64 "\nmin_bytes %" PRIu64 "\nmax_bytes %" PRIu64
            "\nseed %" PRIu64 "\n",
            s->layout, s->samples, s->min_bytes, s->max_bytes, s->seed);
    if (fclose(f) != 0)
        return fail(err, cap, -EIO, "writing %s failed", path);
    return 0;
}

/* The first sample of shard k of s->shards (k = s->shards: the end): an
 * even split, the first n % K shards one sample larger. */
static uint64_t shard_first(const struct br_mkdata_spec *s, uint32_t k)
{
    uint64_t base = s->samples / s->shards, extra = s->samples % s->shards;
    return k * base + (k < extra ? k : extra);
}

/* The data file of shard k: the one file without --shards. */
static void shard_name(const struct br_mkdata_spec *s, const char *one, const char *fmt,
                       uint32_t k, char *name, size_t cap)
{
    if (s->shards)
        snprintf(name, cap, fmt, k);
    else
        snprintf(name, cap, "%s", one);
}

static int write_records(const struct br_mkdata_spec *s, struct progress *p, char *err, size_t cap)
{
    const uint32_t files = s->shards ? s->shards : 1;
    int rc = 0;
    p->what = s->shards ? BR_MKDATA_RECORDS_GLOB : BR_MKDATA_RECORDS;
    for (uint32_t k = 0; k < files && rc == 0; k++) {
        uint64_t end = s->shards ? shard_first(s, k + 1) : s->samples;
        char name[64];
        struct writer w;
        shard_name(s, BR_MKDATA_RECORDS, BR_MKDATA_RECORDS_FMT, k, name, sizeof name);
        rc = writer_open(&w, s->dir, name, 0, p, err, cap);
        if (rc)
            return rc;
        for (uint64_t i = s->shards ? shard_first(s, k) : 0; i < end && rc == 0; i++)
            rc = writer_sample(&w, s->seed, i, s->min_bytes, err, cap);
        rc = writer_close(&w, rc, err, cap);
    }
    return rc;
}

/* With --shards, each data shard's index is beside it (NAME.idx) and
 * holds offsets into that shard. */
static int write_indexed(const struct br_mkdata_spec *s, struct progress *p, char *err, size_t cap)
{
    const uint32_t files = s->shards ? s->shards : 1;
    int rc = 0;
    p->what = s->shards ? BR_MKDATA_DATA_GLOB : BR_MKDATA_DATA;
    for (uint32_t k = 0; k < files && rc == 0; k++) {
        uint64_t end = s->shards ? shard_first(s, k + 1) : s->samples, offset = 0;
        char name[64], index_name[80];
        struct writer data, index;
        shard_name(s, BR_MKDATA_DATA, BR_MKDATA_DATA_FMT, k, name, sizeof name);
        if (s->shards)
            snprintf(index_name, sizeof index_name, "%s" BR_MKDATA_INDEX_SUFFIX, name);
        else
            snprintf(index_name, sizeof index_name, "%s", BR_MKDATA_INDEX);
        rc = writer_open(&data, s->dir, name, 0, p, err, cap);
        if (rc)
            return rc;
        rc = writer_open(&index, s->dir, index_name, 0, NULL, err, cap);
        if (rc)
            return writer_close(&data, rc, err, cap);
        for (uint64_t i = s->shards ? shard_first(s, k) : 0; i < end && rc == 0; i++) {
            uint64_t len = br_synth_size(s->seed, i, s->min_bytes, s->max_bytes);
            uint8_t entry[16];
            put_le64(entry, offset);
            put_le64(entry + 8, len);
            rc = writer_sample(&data, s->seed, i, len, err, cap);
            if (rc == 0)
                rc = writer_bytes(&index, entry, sizeof entry, err, cap);
            offset += len;
        }
        rc = writer_close(&index, rc, err, cap);
        rc = writer_close(&data, rc, err, cap);
    }
    return rc;
}

static int write_files(const struct br_mkdata_spec *s, struct progress *p, char *err, size_t cap)
{
    char dir[4096];
    struct writer list;
    int rc;

    if ((size_t)snprintf(dir, sizeof dir, "%s/%s", s->dir, BR_MKDATA_FILES_DIR) >= sizeof dir)
        return fail(err, cap, -ENAMETOOLONG, "the path %s is too long", s->dir);
    rc = make_dir(dir, err, cap);
    if (rc == 0)
        rc = writer_open(&list, s->dir, BR_MKDATA_LIST, 0, NULL, err, cap);
    if (rc)
        return rc;
    p->what = BR_MKDATA_FILES_DIR "/";
    for (uint64_t i = 0; i < s->samples && rc == 0; i++) {
        uint64_t len = br_synth_size(s->seed, i, s->min_bytes, s->max_bytes);
        char name[64], line[80];
        struct writer f;
        int n;
        snprintf(name, sizeof name, "%08" PRIu64 ".bin", i);
        n = snprintf(line, sizeof line, "%s/%s\n", BR_MKDATA_FILES_DIR, name);
        rc = writer_bytes(&list, line, (size_t)n, err, cap);
        if (rc == 0)
            rc = writer_open(&f, dir, name, len, p, err, cap);
        if (rc == 0) {
            rc = writer_sample(&f, s->seed, i, len, err, cap);
            rc = writer_close(&f, rc, err, cap);
        }
    }
    return writer_close(&list, rc, err, cap);
}

uint16_t br_mkdata_token(uint64_t seed, uint32_t shard, uint64_t t)
{
    /* splitmix64 of (seed, shard, t): any token, reproducible. */
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + ((uint64_t)shard << 40) + t;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    x ^= x >> 31;
    return (uint16_t)(x % 50257u);
}

/* llm.c .bin shards of s->samples tokens each. */
static int write_tokens(const struct br_mkdata_spec *s, struct progress *p, char *err, size_t cap)
{
    int rc = 0;
    if (s->samples > INT32_MAX)
        return fail(err, cap, -EINVAL,
                    "the llm.c header counts tokens in an int32: at most %d per shard",
                    INT32_MAX);
    for (uint32_t k = 0; k < s->shards && rc == 0; k++) {
        char name[64];
        uint8_t header[1024] = {0};
        struct writer w;
        const uint32_t words[3] = {20240520u, 1u, (uint32_t)s->samples};
        snprintf(name, sizeof name, BR_MKDATA_TOKENS_FMT, k);
        for (int i = 0; i < 3; i++)
            for (int b = 0; b < 4; b++)
                header[i * 4 + b] = (uint8_t)(words[i] >> (8 * b));
        rc = writer_open(&w, s->dir, name, 0, p, err, cap);
        if (rc)
            return rc;
        p->what = "tokens_*.bin";
        rc = writer_bytes(&w, header, sizeof header, err, cap);
        for (uint64_t t = 0; t < s->samples && rc == 0; t++) {
            uint16_t v = br_mkdata_token(s->seed, k, t);
            uint8_t le[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
            rc = writer_bytes(&w, le, 2, err, cap);
        }
        rc = writer_close(&w, rc, err, cap);
    }
    return rc;
}

int br_mkdata_write(const struct br_mkdata_spec *s, uint64_t *data_bytes, char *err, size_t cap)
{
    struct progress p = {.on = s->progress};
    int rc;

    if (s->samples == 0)
        return fail(err, cap, -EINVAL, "--samples must be at least 1");
    if (s->min_bytes > s->max_bytes)
        return fail(err, cap, -EINVAL,
                    "--min-bytes %" PRIu64 " is larger than --max-bytes %" PRIu64, s->min_bytes,
                    s->max_bytes);
    if (!strcmp(s->layout, "tokens")) {
        if (s->shards == 0)
            return fail(err, cap, -EINVAL, "--shards must be at least 1");
        p.total = s->shards * (1024 + 2 * s->samples);
        rc = make_dir(s->dir, err, cap);
        if (rc == 0)
            rc = write_tokens(s, &p, err, cap);
        progress_draw(&p, true);
        progress_clear(&p);
        if (data_bytes)
            *data_bytes = p.total;
        return rc;
    }
    if (s->shards && !strcmp(s->layout, "files"))
        return fail(err, cap, -EINVAL, "the files layout is one file per sample: no --shards");
    if (!strcmp(s->layout, "records") && (s->min_bytes != s->max_bytes || s->min_bytes == 0))
        return fail(err, cap, -EINVAL,
                    "records all have one size: give --sample-bytes N (at least 1)");
    for (uint64_t i = 0; i < s->samples; i++) {
        uint64_t len = br_synth_size(s->seed, i, s->min_bytes, s->max_bytes);
        if (len > UINT64_MAX - p.total)
            return fail(err, cap, -EOVERFLOW, "the dataset's size overflows 64 bits");
        p.total += len;
    }
    p.total += s->samples * 4;
    rc = make_dir(s->dir, err, cap);
    if (rc)
        return rc;
    if (!strcmp(s->layout, "records"))
        rc = write_records(s, &p, err, cap);
    else if (!strcmp(s->layout, "files"))
        rc = write_files(s, &p, err, cap);
    else if (!strcmp(s->layout, "indexed"))
        rc = write_indexed(s, &p, err, cap);
    else
        rc = fail(err, cap, -EINVAL, "unknown layout '%s': use records, files, indexed or tokens",
                  s->layout);
    if (rc == 0)
        rc = write_labels(s, &p, err, cap);
    if (rc == 0)
        rc = write_manifest(s, err, cap);
    progress_draw(&p, true);
    progress_clear(&p);
    if (data_bytes)
        *data_bytes = p.total - s->samples * 4;
    return rc;
}
