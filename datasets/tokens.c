/* SPDX-License-Identifier: MIT */
/*
 * The tokens layout: shards of tokens cut into windows for language-model
 * training (datasets/tokens.h; the format in include/batchring.h, section 6).
 *
 * Sample j of a shard of c tokens is the window of T + 1 tokens starting at
 * token j x T; a shard has (c - 1) / T windows (none when c <= T), and no
 * window crosses a shard. Global ids run through the shards in order.
 *
 * A batch of B windows goes into the slot as int32 inputs[B][T] followed by
 * int32 targets[B][T], targets[i][t] = inputs[i][t + 1] within the window.
 * Windows with consecutive ids in one shard overlap by one token, so a run
 * of k of them is one read of k x T + 1 tokens: a sequential batch is a
 * single read. The raw tokens land in the worker's scratch buffer and are
 * widened into the slot (the slot holds int32, the file 2 or 4 bytes).
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "datasets/shards.h"
#include "datasets/tokens.h"
#include "ring/error.h"

#define LLMC_MAGIC 20240520
#define LLMC_VERSION 1
#define LLMC_HEADER_BYTES (256u * 4u)
/* The longest single read we queue (as datasets.c). */

/* Reads the header of shard k and sets its token count; fd is open. */
static int check_header(struct br__tokens *t, uint32_t k, int fd, uint64_t *count, char *msg)
{
    const char *path = t->shards.paths[k];
    uint64_t size = t->shards.size[k];
    uint32_t raw[3];
    int32_t magic, version, ntok;
    ssize_t r;

    if (t->raw) {
        if (size % t->token_bytes)
            return br__fail(msg, -EINVAL,
                            "the token file %s is %llu bytes, not a multiple of the token width "
                            "%zu (raw tokens, no header)",
                            path, (unsigned long long)size, t->token_bytes);
        *count = size / t->token_bytes;
        return 0;
    }
    if (size < LLMC_HEADER_BYTES)
        return br__fail(msg, -EINVAL,
                        "the token shard %s is %llu bytes, shorter than the llm.c header (%u "
                        "bytes); pass token_bytes (--token-bytes) for raw token files",
                        path, (unsigned long long)size, LLMC_HEADER_BYTES);
    do
        r = pread(fd, raw, sizeof raw, 0);
    while (r < 0 && errno == EINTR);
    if (r != (ssize_t)sizeof raw)
        return br__fail(msg, r < 0 ? -errno : -ENODATA, "reading the header of %s: %s", path,
                        r < 0 ? br_strerror(-errno) : "short read");
    magic = (int32_t)le32toh(raw[0]);
    version = (int32_t)le32toh(raw[1]);
    ntok = (int32_t)le32toh(raw[2]);
    if (magic != LLMC_MAGIC)
        return br__fail(msg, -EINVAL,
                        "the token shard %s: header field magic (int32 0) is %d, not %d (the "
                        "llm.c .bin format); pass token_bytes (--token-bytes) for raw token "
                        "files",
                        path, magic, LLMC_MAGIC);
    if (version != LLMC_VERSION)
        return br__fail(msg, -EINVAL,
                        "the token shard %s: header field version (int32 1) is %d, not %d "
                        "(uint16 tokens)",
                        path, version, LLMC_VERSION);
    if (ntok < 0 || size != LLMC_HEADER_BYTES + (uint64_t)ntok * 2)
        return br__fail(msg, -EINVAL,
                        "the token shard %s: header field token count (int32 2) is %d, so the "
                        "file should be %u + 2 x %d = %lld bytes, but it is %llu",
                        path, ntok, LLMC_HEADER_BYTES, ntok,
                        (long long)LLMC_HEADER_BYTES + 2LL * ntok, (unsigned long long)size);
    t->shards.skip[k] = LLMC_HEADER_BYTES;
    *count = (uint64_t)ntok;
    return 0;
}

/* Shard k holds `count` tokens: its windows follow shard k - 1's. */
static void set_windows(struct br__tokens *t, uint32_t k, uint64_t count)
{
    uint64_t windows = count > t->seq_len ? (count - 1) / t->seq_len : 0;
    t->shards.first[k + 1] = t->shards.first[k] + windows;
    t->tokens += count;
}

static int open_shard(struct br__tokens *t, uint32_t k, char *msg)
{
    const char *path = t->shards.paths[k];
    struct stat st;
    uint64_t count = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK), rc;

    if (fd < 0)
        return br__fail(msg, -errno, "cannot open the token shard %s: %s", path,
                        br_strerror(-errno));
    if (fstat(fd, &st) < 0)
        rc = br__fail(msg, -errno, "fstat of the token shard %s: %s", path, br_strerror(-errno));
    else if (!S_ISREG(st.st_mode))
        rc = br__fail(msg, -EINVAL, "the token shard %s is not a regular file", path);
    else {
        t->shards.size[k] = (uint64_t)st.st_size;
        br__file_id_set(&t->shards.id[k], &st);
        rc = check_header(t, k, fd, &count, msg);
    }
    close(fd);
    if (rc)
        return rc;
    set_windows(t, k, count);
    return 0;
}

static int check_seq_len(size_t seq_len, char *msg)
{
    if (seq_len == 0 || seq_len > (1u << 30))
        return br__fail(msg, -EINVAL, "seq_len %zu: pass T, the tokens per sequence (1 .. 2^30)",
                        seq_len);
    return 0;
}

/* A dataset needs a sample; on failure t is freed. */
static int opened(struct br__tokens **out, struct br__tokens *t, const char *pattern, char *msg)
{
    if (t->shards.first[t->shards.n] == 0) {
        br__fail(msg, -EINVAL,
                 "the token shards of %s (%u files, %llu tokens) hold no window of seq_len + 1 "
                 "= %zu tokens: a dataset needs a sample",
                 pattern, t->shards.n, (unsigned long long)t->tokens, t->seq_len + 1);
        br__tokens_free(t);
        return -EINVAL;
    }
    *out = t;
    return 0;
}

int br__tokens_from_shards(struct br__tokens **out, struct br__shards *s, size_t seq_len,
                           size_t token_bytes, const char *what, char *msg)
{
    struct br__tokens *t;
    int rc = check_seq_len(seq_len, msg);

    *out = NULL;
    if (rc)
        return rc;
    t = calloc(1, sizeof *t);
    if (!t)
        return br__fail(msg, -ENOMEM, "out of memory opening %s", what);
    t->seq_len = seq_len;
    t->raw = true;
    t->token_bytes = token_bytes;
    t->shards = *s;
    memset(s, 0, sizeof *s);
    /* first[] counts tokens (cumulative): windows from here, shard by
     * shard, t->tokens being the tokens of the shards before k. */
    for (uint32_t k = 0; k < t->shards.n; k++)
        set_windows(t, k, t->shards.first[k + 1] - t->tokens);
    return opened(out, t, what, msg);
}

int br__tokens_open(struct br__tokens **out, const char *pattern, size_t seq_len,
                    size_t token_bytes, char *msg)
{
    struct br__tokens *t;
    int rc;

    *out = NULL;
    rc = check_seq_len(seq_len, msg);
    if (rc)
        return rc;
    if (token_bytes != 0 && token_bytes != 2 && token_bytes != 4)
        return br__fail(msg, -EINVAL,
                        "token_bytes %zu: pass 0 for llm.c .bin shards (their header), or 2 or "
                        "4 for raw token files",
                        token_bytes);
    t = calloc(1, sizeof *t);
    if (!t)
        return br__fail(msg, -ENOMEM, "out of memory opening %s", pattern);
    t->seq_len = seq_len;
    t->raw = token_bytes != 0;
    t->token_bytes = token_bytes ? token_bytes : 2;
    rc = br__shards_expand(&t->shards, pattern, msg);
    if (rc == 0)
        rc = br__shards_alloc(&t->shards, msg);
    for (uint32_t k = 0; rc == 0 && k < t->shards.n; k++)
        rc = open_shard(t, k, msg);
    if (rc) {
        br__tokens_free(t);
        return rc;
    }
    return opened(out, t, pattern, msg);
}

void br__tokens_free(struct br__tokens *t)
{
    if (!t)
        return;
    if (t->worker.ready)
        br__shard_fds_close(&t->worker.fds);
    free(t->worker.scratch);
    free(t->worker.at);
    br__shards_free(&t->shards);
    free(t);
}

uint64_t br__tokens_samples(const struct br__tokens *t)
{
    return t->shards.first[t->shards.n];
}

/* ------------------------------------------------------------- workers */

/*
 * The reader's state lives in the dataset itself, one copy per process:
 * each worker is a forked process with its own copy of the dataset's
 * memory, so its open shards and scratch are its own, with no hook and no
 * job->state (which belongs to the user's worker_init). With workers = 0
 * the trainer's copy is used, and br_dataset_close closes it.
 */
static struct br__tokens_worker *worker_of(const struct br__tokens *t)
{
    struct br__tokens_worker *w = (struct br__tokens_worker *)&t->worker;
    if (!w->ready) {
        br__shard_fds_init(&w->fds);
        w->ready = true;
    }
    return w;
}

uint32_t br__tokens_opens(const struct br__tokens *t)
{
    return t->worker.fds.opens;
}

/* Grows the worker's scratch for a batch of `count` windows: at most one
 * run per window, each of k x T + 1 tokens. */
static int reserve(struct br__tokens_worker *w, const struct br__tokens *t, uint32_t count,
                   br_job *job)
{
    size_t need = (size_t)count * (t->seq_len + 1) * t->token_bytes;
    if (need > w->scratch_cap) {
        uint8_t *p = realloc(w->scratch, need);
        if (!p)
            return br__job_fail(job, -ENOMEM, "out of memory for %zu bytes of token scratch", need);
        w->scratch = p;
        w->scratch_cap = need;
    }
    if (count > w->at_cap) {
        uint64_t *p = realloc(w->at, count * sizeof *p);
        if (!p)
            return br__job_fail(job, -ENOMEM, "out of memory for a batch of %u windows", count);
        w->at = p;
        w->at_cap = count;
    }
    return 0;
}

static void widen(const struct br__tokens *t, const uint8_t *src, int32_t *dst, size_t n)
{
    if (t->token_bytes == 2) {
        for (size_t i = 0; i < n; i++) {
            uint16_t v;
            memcpy(&v, src + 2 * i, 2);
            dst[i] = (int32_t)le16toh(v);
        }
    } else {
        for (size_t i = 0; i < n; i++) {
            uint32_t v;
            memcpy(&v, src + 4 * i, 4);
            dst[i] = (int32_t)le32toh(v);
        }
    }
}

int br__tokens_load(br_job *job, const struct br__tokens *t, bool per_window)
{
    struct br__tokens_worker *w = worker_of(t);
    const size_t T = t->seq_len, wb = t->token_bytes;
    const uint64_t n = br__tokens_samples(t);
    uint64_t pos = 0; /* tokens of scratch used */
    uint32_t i, j;
    int32_t *inputs = job->out, *targets;
    int rc;

    if (!job->io)
        return br__job_fail(job, -EINVAL, "this worker has no file reader (job->io is NULL)");
    if ((uint64_t)job->count * T * 8 > job->cap)
        return br__job_fail(job, -ENOBUFS,
                        "a batch of %u windows of seq_len %zu needs %llu bytes (int32 inputs "
                        "and targets), but the slot holds %zu; raise slot_bytes",
                        job->count, T, (unsigned long long)job->count * T * 8, job->cap);
    for (i = 0; i < job->count; i++)
        if (job->ids[i] >= n)
            return br__job_fail(job, -ERANGE, "sample %llu is not in the tokens dataset (%llu windows)",
                            (unsigned long long)job->ids[i], (unsigned long long)n);
    rc = reserve(w, t, job->count, job);
    if (rc)
        return rc;
    /* One read per run of consecutive ids inside one shard. */
    for (i = 0; i < job->count; i = j) {
        uint64_t id = job->ids[i];
        uint32_t k = br__shards_find(&t->shards, id);
        uint64_t local = id - t->shards.first[k], end = t->shards.first[k + 1];
        int fd;
        for (j = i + 1; j < job->count && job->ids[j] == job->ids[j - 1] + 1 && job->ids[j] < end;
             j++)
            ;
        for (;;) {
            fd = br__shard_fds_get(&w->fds, &t->shards, k, job->err, job->err_cap);
            if (fd != -EAGAIN)
                break;
            /* Every open shard has a queued read: run them first. */
            rc = br__shards_wait(job, &w->fds, &t->shards);
            if (rc)
                return rc;
        }
        if (fd < 0) {
            br_io_wait(job->io);
            return fd;
        }
        for (uint32_t m = i; m < j; m++)
            w->at[m] = pos + (uint64_t)(m - i) * T;
        rc = br__dataset_queue_read(job->io, fd, t->shards.skip[k] + local * T * wb,
                        ((uint64_t)(j - i) * T + 1) * wb, w->scratch + pos * wb, id);
        if (rc) {
            char why[BR_ERR_CAP];
            snprintf(why, sizeof why, "%s", br_io_last_error(job->io));
            br_io_wait(job->io);
            return br__job_fail(job, rc, "queueing a read of shard %u, %s: %s", k,
                            t->shards.paths[k], why);
        }
        pos += (uint64_t)(j - i) * T + 1;
    }
    rc = br__shards_wait(job, &w->fds, &t->shards);
    if (rc)
        return rc;
    targets = inputs + (size_t)job->count * T;
    for (i = 0; i < job->count; i++) {
        const uint8_t *src = w->scratch + w->at[i] * wb;
        /* Per window, its targets follow its inputs: sample i is bytes
         * [8Ti, 8T(i + 1)), which the transform stage hands on whole. */
        int32_t *in = per_window ? inputs + (size_t)i * 2 * T : inputs + (size_t)i * T;
        int32_t *tg = per_window ? in + T : targets + (size_t)i * T;
        widen(t, src, in, T);
        widen(t, src + wb, tg, T);
    }
    if (per_window) {
        if (!job->offsets)
            return br__job_fail(job, -EINVAL, "this slot has no offsets (job->offsets is NULL)");
        for (i = 0; i <= job->count; i++)
            job->offsets[i] = (uint64_t)i * T * 8;
        job->has_offsets = true;
    }
    job->size = (size_t)job->count * T * 8;
    return 0;
}
