/* SPDX-License-Identifier: MIT */
/*
 * Shards: expanding a pattern or a list into files, the id map, and each
 * worker's bounded set of open shards (datasets/shards.h).
 *
 * A shard is checked twice: at open, in the calling process (it exists, is
 * a regular file, its header and size fit the layout; its identity is
 * recorded then), and again each time a worker opens it (still a regular
 * file, still the same file, br__file_id, and the size it had at open).
 * A shard that shrinks while a descriptor of it is open makes the read come
 * back short (-ENODATA from br_io_wait, the reader never maps these files:
 * they are not registered, since the LRU closes descriptors), and the
 * failure is then named after the shard by an fstat of each descriptor of
 * the wave.
 */
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "datasets/shards.h"
#include "ring/error.h"

static int cmp_path(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Reads the list file into s->paths, relative names joined to its
 * directory. */
static int expand_list(struct br__shards *s, const char *list, char *msg)
{
    FILE *f = fopen(list, "re");
    const char *slash = strrchr(list, '/');
    size_t dirlen = slash ? (size_t)(slash - list) + 1 : 0, cap = 0;
    char *line = NULL;
    ssize_t len;
    uint64_t lineno = 0;
    int rc = 0;

    if (!f)
        return br__fail(msg, -errno, "cannot open the shard list %s: %s", list,
                        br_strerror(-errno));
    while ((len = getline(&line, &cap, f)) >= 0) {
        char *p, **grown;
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (len == 0) {
            rc = br__fail(msg, -EINVAL,
                          "line %llu of the shard list %s is empty: every line names one shard",
                          (unsigned long long)lineno, list);
            break;
        }
        if (strlen(line) != (size_t)len) {
            rc = br__fail(msg, -EINVAL, "line %llu of the shard list %s contains a NUL byte",
                          (unsigned long long)lineno, list);
            break;
        }
        grown = realloc(s->paths, (s->n + 1) * sizeof *s->paths);
        p = malloc((line[0] == '/' ? 0 : dirlen) + (size_t)len + 1);
        if (grown)
            s->paths = grown;
        if (!grown || !p) {
            free(p);
            rc = br__fail(msg, -ENOMEM, "out of memory reading the shard list %s", list);
            break;
        }
        if (line[0] == '/')
            memcpy(p, line, (size_t)len + 1);
        else {
            memcpy(p, list, dirlen);
            memcpy(p + dirlen, line, (size_t)len + 1);
        }
        s->paths[s->n++] = p;
    }
    free(line);
    if (rc == 0 && ferror(f))
        rc = br__fail(msg, -EIO, "reading the shard list %s failed", list);
    fclose(f);
    if (rc == 0 && s->n == 0)
        rc = br__fail(msg, -EINVAL, "the shard list %s names no shard", list);
    return rc;
}

int br__shards_expand(struct br__shards *s, const char *pattern, char *msg)
{
    glob_t g;
    int grc;

    memset(s, 0, sizeof *s);
    if (pattern[0] == '@')
        return expand_list(s, pattern + 1, msg);
    /* Sorted below by strcmp: the order must not depend on the locale. */
    grc = glob(pattern, GLOB_NOSORT, NULL, &g);
    if (grc == GLOB_NOMATCH)
        return br__fail(msg, -ENOENT, "no file matches the shard pattern %s", pattern);
    if (grc != 0) {
        if (grc != GLOB_NOSPACE)
            globfree(&g);
        return br__fail(msg, grc == GLOB_NOSPACE ? -ENOMEM : -EIO,
                        "expanding the shard pattern %s failed (%s)", pattern,
                        grc == GLOB_NOSPACE ? "out of memory" : "a directory could not be read");
    }
    if (g.gl_pathc > UINT32_MAX) {
        globfree(&g);
        return br__fail(msg, -E2BIG, "the shard pattern %s matches more than %u files", pattern,
                        UINT32_MAX);
    }
    s->paths = calloc(g.gl_pathc, sizeof *s->paths);
    if (!s->paths) {
        globfree(&g);
        return br__fail(msg, -ENOMEM, "out of memory for %zu shards", (size_t)g.gl_pathc);
    }
    for (size_t i = 0; i < g.gl_pathc; i++) {
        s->paths[i] = strdup(g.gl_pathv[i]);
        if (!s->paths[i]) {
            globfree(&g);
            return br__fail(msg, -ENOMEM, "out of memory for %zu shards", (size_t)g.gl_pathc);
        }
        s->n++;
    }
    globfree(&g);
    qsort(s->paths, s->n, sizeof *s->paths, cmp_path);
    return 0;
}

int br__shards_alloc(struct br__shards *s, char *msg)
{
    s->size = calloc(s->n, sizeof *s->size);
    s->first = calloc((size_t)s->n + 1, sizeof *s->first);
    s->skip = calloc(s->n, sizeof *s->skip);
    s->id = calloc(s->n, sizeof *s->id);
    if (!s->size || !s->first || !s->skip || !s->id)
        return br__fail(msg, -ENOMEM, "out of memory for %u shards", s->n);
    return 0;
}

void br__shards_free(struct br__shards *s)
{
    for (uint32_t i = 0; s->paths && i < s->n; i++)
        free(s->paths[i]);
    free(s->paths);
    free(s->size);
    free(s->first);
    free(s->skip);
    free(s->id);
    memset(s, 0, sizeof *s);
}

void br__file_id_set(struct br__file_id *id, const struct stat *st)
{
    id->dev = st->st_dev;
    id->ino = st->st_ino;
    id->mtime = st->st_mtim;
    id->ctime = st->st_ctim;
}

static bool same_time(struct timespec a, struct timespec b)
{
    return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

const char *br__file_id_differs(const struct br__file_id *was, const struct stat *st)
{
    if (st->st_dev != was->dev || st->st_ino != was->ino)
        return "was replaced by another file (device or inode differ)";
    if (!same_time(st->st_mtim, was->mtime))
        return "was modified (its mtime differs)";
    if (!same_time(st->st_ctim, was->ctime))
        return "was changed (its ctime differs)";
    return NULL;
}

uint32_t br__shards_find(const struct br__shards *s, uint64_t id)
{
    /* The last shard whose first id is <= id; empty shards (first[k] ==
     * first[k + 1]) are passed over because the search takes the last. */
    uint32_t lo = 0, hi = s->n - 1;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo + 1) / 2;
        if (s->first[mid] <= id)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

void br__shard_fds_init(struct br__shard_fds *c)
{
    memset(c, 0, sizeof *c);
    for (uint32_t i = 0; i < BR__SHARD_FDS; i++)
        c->fd[i] = -1;
    c->wave_now = 1;
}

void br__shard_fds_close(struct br__shard_fds *c)
{
    for (uint32_t i = 0; i < BR__SHARD_FDS; i++)
        if (c->fd[i] >= 0) {
            close(c->fd[i]);
            c->fd[i] = -1;
            c->used[i] = 0;
        }
}

void br__shard_fds_wave_end(struct br__shard_fds *c)
{
    c->wave_now++;
}

/* Opens shard k without blocking in open() (a FIFO put in its place would
 * wait for a writer forever) and checks it is the file checked at open. */
static int shard_open(const struct br__shards *s, uint32_t k, char *err, size_t err_cap)
{
    struct stat st;
    const char *changed;
    int fd = open(s->paths[k], O_RDONLY | O_CLOEXEC | O_NONBLOCK), rc;
    if (fd < 0) {
        rc = -errno;
        snprintf(err, err_cap, "cannot open shard %u, %s: %s", k, s->paths[k], br_strerror(rc));
        return rc;
    }
    if (fstat(fd, &st) < 0) {
        rc = -errno;
        snprintf(err, err_cap, "fstat of shard %u, %s: %s", k, s->paths[k], br_strerror(rc));
    } else if (!S_ISREG(st.st_mode)) {
        rc = -EINVAL;
        snprintf(err, err_cap, "shard %u, %s, is no longer a regular file", k, s->paths[k]);
    } else if ((uint64_t)st.st_size != s->size[k]) {
        rc = (uint64_t)st.st_size < s->size[k] ? -ENODATA : -EFBIG;
        snprintf(err, err_cap,
                 "shard %u, %s, is now %lld bytes, %llu when the dataset was opened", k,
                 s->paths[k], (long long)st.st_size, (unsigned long long)s->size[k]);
    } else if ((changed = br__file_id_differs(&s->id[k], &st))) {
        /* The size says nothing about a same-size file in its place. */
        rc = -ESTALE;
        snprintf(err, err_cap,
                 "shard %u, %s, %s since the dataset was opened and checked: it is not "
                 "read unchecked",
                 k, s->paths[k], changed);
    } else if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0) {
        rc = -errno;
        snprintf(err, err_cap, "fcntl of shard %u, %s: %s", k, s->paths[k], br_strerror(rc));
    } else {
        return fd;
    }
    close(fd);
    return rc;
}

int br__shard_fds_get(struct br__shard_fds *c, const struct br__shards *s, uint32_t k,
                      char *err, size_t err_cap)
{
    uint32_t victim = BR__SHARD_FDS;
    int fd;
    for (uint32_t i = 0; i < BR__SHARD_FDS; i++) {
        if (c->used[i] && c->shard[i] == k) {
            c->used[i] = ++c->clock;
            c->wave[i] = c->wave_now;
            return c->fd[i];
        }
    }
    /* An empty place, else the least recently used descriptor that no
     * queued read still needs. */
    for (uint32_t i = 0; i < BR__SHARD_FDS; i++) {
        if (c->used[i] == 0) {
            victim = i;
            break;
        }
        if (c->wave[i] != c->wave_now && (victim == BR__SHARD_FDS || c->used[i] < c->used[victim]))
            victim = i;
    }
    if (victim == BR__SHARD_FDS)
        return -EAGAIN;
    fd = shard_open(s, k, err, err_cap);
    if (fd < 0)
        return fd;
    if (c->used[victim])
        close(c->fd[victim]);
    c->fd[victim] = fd;
    c->shard[victim] = k;
    c->used[victim] = ++c->clock;
    c->wave[victim] = c->wave_now;
    c->opens++;
    return fd;
}

int br__shards_read_failed(const struct br__shard_fds *c, const struct br__shards *s,
                           br_io *io, int code, char *err, size_t err_cap)
{
    for (uint32_t i = 0; i < BR__SHARD_FDS; i++) {
        struct stat st;
        uint32_t k = c->shard[i];
        if (!c->used[i] || c->wave[i] != c->wave_now)
            continue;
        if (fstat(c->fd[i], &st) == 0 && (uint64_t)st.st_size < s->size[k]) {
            snprintf(err, err_cap,
                     "shard %u, %s, is now %lld bytes, %llu when the dataset was opened (%s)", k,
                     s->paths[k], (long long)st.st_size, (unsigned long long)s->size[k],
                     br_io_last_error(io));
            return code;
        }
    }
    snprintf(err, err_cap, "reading the shards: %s", br_io_last_error(io));
    return code;
}

int br__dataset_queue_read(br_io *io, int fd, uint64_t offset, uint64_t len, uint8_t *dst,
                           uint64_t sample)
{
    const size_t max_read = (size_t)1 << 30;
    while (len) {
        size_t part = len < max_read ? (size_t)len : max_read;
        int rc = br_io_read(io, fd, offset, part, dst, sample);
        if (rc)
            return rc;
        offset += part;
        dst += part;
        len -= part;
    }
    return 0;
}

int br__shards_wait(br_job *job, struct br__shard_fds *c, const struct br__shards *s)
{
    int rc = br_io_wait(job->io);
    if (rc)
        rc = br__shards_read_failed(c, s, job->io, rc, job->err, job->err_cap);
    br__shard_fds_wave_end(c);
    return rc;
}

int br__job_fail(br_job *job, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(job->err, job->err_cap, fmt, ap);
    va_end(ap);
    return code;
}
