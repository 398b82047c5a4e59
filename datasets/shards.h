/* SPDX-License-Identifier: MIT */
/*
 * Shards: a dataset stored as many files. One sample id space runs across
 * them in order (global id -> shard, local index, by a binary search of the
 * shards' first ids). Workers open shards lazily and keep at most
 * BR__SHARD_FDS of them open (least recently used closed first), so a
 * dataset of thousands of shards never runs a worker out of descriptors.
 *
 * Internal to datasets/: tokens.c and sample_shards.c (records, indexed and
 * packed shards) use it.
 */
#ifndef BR_DATASETS_SHARDS_H
#define BR_DATASETS_SHARDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

#include <batchring.h>

/*
 * What identifies a file as the one checked at open: a dataset reopens its
 * files by path in workers, and a same-size file put in a checked one's
 * place (another shard moved over it, a re-run of a writer into the same
 * directory, a rewrite in place) must be refused, not served unchecked.
 * Device and inode tell another file; mtime and ctime a rewrite of the
 * same inode (or a new file given a freed inode's number).
 */
struct br__file_id {
    dev_t dev;
    ino_t ino;
    struct timespec mtime, ctime;
};

/* The identity of the file st describes (from the fstat of the check). */
void br__file_id_set(struct br__file_id *id, const struct stat *st);

/* NULL when st is the file `was` identifies; else what changed, as words
 * that follow the file's name ("was replaced by another file", ...). */
const char *br__file_id_differs(const struct br__file_id *was, const struct stat *st);

/* Descriptors a worker keeps open at most. */
#define BR__SHARD_FDS 64u

struct br__shards {
    uint32_t n;        /* shards */
    char **paths;      /* n paths, as opened (relative to the cwd at open) */
    uint64_t *size;    /* n file sizes at open */
    uint64_t *first;   /* n + 1: first global sample id of each shard */
    uint64_t *skip;    /* n: header bytes before the shard's data */
    struct br__file_id *id; /* n: each shard as checked at open */
};

/*
 * Expands `pattern` into shard paths: "@FILE" reads a list file (one path
 * per line, relative paths relative to the list's directory, kept in the
 * list's order); anything else is a glob(3) pattern (a plain path is a
 * pattern that matches itself), its matches sorted by name (strcmp, not
 * the locale). Fills s->n and s->paths. Returns 0 or a negative code with
 * the message in msg.
 */
int br__shards_expand(struct br__shards *s, const char *pattern, char *msg);

/* Allocates size, first, skip and id for s->n shards (zeroed). */
int br__shards_alloc(struct br__shards *s, char *msg);

void br__shards_free(struct br__shards *s);

/* The shard holding global sample `id` (< s->first[s->n]). */
uint32_t br__shards_find(const struct br__shards *s, uint64_t id);

/* A worker's open shards: an LRU of descriptors. */
struct br__shard_fds {
    int fd[BR__SHARD_FDS];
    uint32_t shard[BR__SHARD_FDS];
    uint64_t used[BR__SHARD_FDS]; /* clock of the last use; 0 = empty */
    uint64_t wave[BR__SHARD_FDS]; /* the wave of reads that last used it */
    uint64_t clock;
    uint64_t wave_now;            /* reads queued since the last wait */
    uint32_t opens;               /* opens so far (tests read it) */
};

void br__shard_fds_init(struct br__shard_fds *c);
void br__shard_fds_close(struct br__shard_fds *c);

/*
 * The descriptor of shard k, opened if needed (a regular file that must
 * still be the file checked at open, s->id[k], and of its size). When
 * every slot holds a descriptor of the current wave of queued reads,
 * -EAGAIN is returned: the caller runs br_io_wait, calls
 * br__shard_fds_wave_end, and asks again.
 * Returns the fd, or a negative code with the message (naming the shard)
 * in err.
 */
int br__shard_fds_get(struct br__shard_fds *c, const struct br__shards *s, uint32_t k,
                      char *err, size_t err_cap);

/* The queued reads ran: every descriptor may be closed again. */
void br__shard_fds_wave_end(struct br__shard_fds *c);

/*
 * After a failed br_io_wait: names the shard of the wave that is now
 * shorter than at open (or missing), else repeats the reader's message.
 * Returns code.
 */
int br__shards_read_failed(const struct br__shard_fds *c, const struct br__shards *s,
                           br_io *io, int code, char *err, size_t err_cap);

/* The reads queued so far ran (or failed: then the shard is named, as
 * br__shards_read_failed does); the wave ends either way. */
int br__shards_wait(br_job *job, struct br__shard_fds *c, const struct br__shards *s);

/* A loader's failure: the message into job->err, the code returned. The
 * one copy every layout's loader uses. */
int br__job_fail(br_job *job, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* One sample of an indexed layout: where it starts in its data (file or
 * shard) and how long it is. An index file is n of these, little-endian. */
struct br__index_entry {
    uint64_t offset;
    uint64_t length;
};

/*
 * Decodes n raw index entries in place (little-endian to host) and checks
 * each lies inside data_bytes of its data file; adds their lengths to
 * *total and raises *max to the largest. index_path and data_path name the
 * files in messages. The one check every indexed layout makes at open.
 * Returns 0 or -EINVAL/-EOVERFLOW with the message (naming the entry).
 */
int br__index_decode(struct br__index_entry *e, uint64_t n, uint64_t data_bytes,
                     const char *index_path, const char *data_path, uint64_t *total,
                     uint64_t *max, char *msg);

/* Reads a whole small file (labels, index, list) into a new buffer with
 * `extra` spare bytes after it; `what` names its role in messages
 * (datasets.c). Returns 0 or a negative code with the message. */
int br__dataset_slurp(const char *path, const char *what, size_t extra, void **out,
                      uint64_t *size, char *msg);

/* Queues one read of len bytes at offset into dst through br_io_read,
 * split into reads of at most 1 GiB (a single read's size is an int in
 * places). The one copy every layout uses. Returns br_io_read's result. */
int br__dataset_queue_read(br_io *io, int fd, uint64_t offset, uint64_t len, uint8_t *dst,
                           uint64_t sample);

#endif
