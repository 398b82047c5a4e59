/* SPDX-License-Identifier: MIT */
/*
 * The built-in datasets: records, files and indexed, and their loaders.
 *
 * Opening a dataset does all the checking (sizes, index entries, labels) in
 * the calling process, so that a bad dataset is an error at open that names
 * the file, not a loader failure at some batch later. The descriptors opened
 * here are inherited by the forked workers; only the files layout opens
 * files while loading (one per sample, at most FILES_CHUNK at a time, so a
 * large batch cannot run a worker out of descriptors).
 *
 * Every loader packs its samples one after another from the start of the
 * slot and fills job->offsets, reads through job->io straight into the slot
 * (the only copy, except for the O_DIRECT indexed case below), and checks
 * that the whole batch fits before it queues anything.
 *
 * O_DIRECT (BR_DATASET_DIRECT): the file offset, the length and the
 * destination of every read must be aligned to the device's logical block
 * size; we use DIRECT_ALIGN, which covers every common device. Slots are
 * page-aligned, so a destination at a multiple of DIRECT_ALIGN inside the
 * slot is aligned too.
 *  - records: record_bytes must be a multiple of DIRECT_ALIGN, so every
 *    coalesced read is aligned and the file (a whole number of records)
 *    never ends inside a block.
 *  - indexed: entries have any offset and length. Each sample is read as
 *    the aligned blocks that cover it, at an aligned place in the slot, and
 *    then moved down to its packed place (one memmove per sample, the price
 *    of unaligned entries). A block that runs past the end of the file is
 *    read through the buffered descriptor instead: file systems refuse an
 *    O_DIRECT read whose length is not aligned (ext4: EINVAL), and an
 *    aligned one past the end comes back short, which the reader would
 *    rightly call a truncated file.
 *  - files: not supported (whole files of any size cannot be read aligned
 *    without reading past their end).
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <batchring.h>

#include "datasets/packed.h"
#include "datasets/transform.h"
#include "datasets/sample_shards.h"
#include "datasets/tokens.h"
#include "ring/error.h"

#define DIRECT_ALIGN 4096u
/* The longest single read we queue: io_uring takes a 32-bit length, and
 * pread stops at about 2 GiB anyway. A multiple of DIRECT_ALIGN. */
/* Files of the files layout open at once in one worker. */
#define FILES_CHUNK 64u

enum layout {
    LAYOUT_RECORDS,
    LAYOUT_FILES,
    LAYOUT_INDEXED,
    LAYOUT_TOKENS,
    LAYOUT_RECORD_SHARDS,
    LAYOUT_INDEXED_SHARDS
};
static const char *const layout_names[] = {"records", "files",   "indexed",
                                           "tokens",  "records", "indexed"};

struct br_dataset {
    enum layout layout;
    unsigned flags;
    uint64_t n;
    uint64_t max_bytes;
    uint64_t total_bytes;
    char *path;         /* the data file (records, indexed) or the list */
    int fd;             /* records, indexed: the data file, buffered */
    int dfd;            /* the data file opened with O_DIRECT, or -1 */
    uint64_t file_size; /* records, indexed: data file size at open */
    size_t record_bytes;
    struct br__index_entry *index; /* indexed: n entries */
    /* files: the list's lines, relative to its directory */
    int dirfd;       /* the list's directory (O_PATH), for openat */
    char *dir;       /* its name, for messages */
    char *names;     /* the lines, each NUL-terminated */
    size_t *name_at; /* n offsets into names */
    uint64_t *sizes; /* n file sizes at open */
    struct br__file_id *file_ids; /* n files as checked at open (shards.h) */
    int32_t *labels; /* n labels, or NULL */
    struct br__tokens *tokens; /* tokens: the shards (datasets/tokens.c) */
    struct br__sample_shards *sshards; /* records or indexed in shards (sample_shards.c) */
    struct br__transform xf; /* the transform stage (datasets/transform.c) */
    struct br__packed *packed; /* a packed dataset (datasets/packed.c), or NULL */
};

static uint64_t align_down(uint64_t x)
{
    return x & ~(uint64_t)(DIRECT_ALIGN - 1);
}

static uint64_t align_up(uint64_t x)
{
    return align_down(x + DIRECT_ALIGN - 1);
}

/* ---------------------------------------------------------------- opening */

static void ds_free(struct br_dataset *ds)
{
    if (!ds)
        return;
    if (ds->fd >= 0)
        close(ds->fd);
    if (ds->dfd >= 0)
        close(ds->dfd);
    if (ds->dirfd >= 0)
        close(ds->dirfd);
    free(ds->path);
    free(ds->index);
    free(ds->dir);
    free(ds->names);
    free(ds->name_at);
    free(ds->sizes);
    free(ds->file_ids);
    free(ds->labels);
    br__packed_free(ds->packed);
    br__tokens_free(ds->tokens);
    br__sample_shards_free(ds->sshards);
    free(ds);
}

static struct br_dataset *ds_new(enum layout layout, unsigned flags, const char *path, char *msg)
{
    struct br_dataset *ds = calloc(1, sizeof *ds);
    if (!ds || !(ds->path = strdup(path))) {
        free(ds);
        br__fail(msg, -ENOMEM, "out of memory opening %s", path);
        return NULL;
    }
    ds->layout = layout;
    ds->flags = flags;
    ds->fd = ds->dfd = ds->dirfd = -1;
    return ds;
}

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

/*
 * Opens path (relative to dirfd) for reading, never blocking in open(): a
 * FIFO would wait there for a writer (forever, in a worker), and a device
 * may too, so it is opened with O_NONBLOCK, checked with fstat, and only a
 * regular file is kept. O_NONBLOCK is then cleared: it means nothing for a
 * regular file today, and we want plain blocking reads whatever the file
 * system makes of it. Block devices are refused too: the datasets read
 * files whose size fstat gives, which a device's is not.
 * Returns the descriptor (*st filled), or -errno; -EINVAL with *irregular
 * set for a file that is not regular, st->st_mode saying what it is.
 */
static int open_file_at(int dirfd, const char *path, int flags, struct stat *st, bool *irregular)
{
    int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | flags), rc;
    *irregular = false;
    if (fd < 0)
        return -errno;
    if (fstat(fd, st) < 0)
        rc = -errno;
    else if (!S_ISREG(st->st_mode))
        rc = -EINVAL, *irregular = true;
    else if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0)
        rc = -errno;
    else
        return fd;
    close(fd);
    return rc;
}

/* Opens a regular file for reading; `what` names its role in messages. */
static int open_regular(const char *path, const char *what, int *fd_out, uint64_t *size, char *msg)
{
    struct stat st;
    bool irregular;
    int fd = open_file_at(AT_FDCWD, path, 0, &st, &irregular);
    if (irregular)
        return br__fail(msg, -EINVAL, "the %s %s is %s, not a regular file", what, path,
                        file_kind(st.st_mode));
    if (fd < 0)
        return br__fail(msg, fd, "cannot open the %s %s: %s", what, path, br_strerror(fd));
    *fd_out = fd;
    *size = (uint64_t)st.st_size;
    return 0;
}

/* A second descriptor with O_DIRECT: the buffered one stays for fstat and
 * for the unaligned tail of an indexed data file. The path is opened again,
 * so it is checked again: it may have been replaced since. */
static int open_direct(struct br_dataset *ds, const char *what, char *msg)
{
    struct stat st;
    bool irregular;
    int fd = open_file_at(AT_FDCWD, ds->path, O_DIRECT, &st, &irregular);
    if (fd >= 0) {
        ds->dfd = fd;
        return 0;
    }
    if (irregular)
        return br__fail(msg, -EINVAL, "the %s %s is %s, not a regular file", what, ds->path,
                        file_kind(st.st_mode));
    if (fd == -EINVAL || fd == -EOPNOTSUPP)
        return br__fail(msg, -EOPNOTSUPP,
                        "the file system refuses O_DIRECT for %s (the %s): open it without "
                        "BR_DATASET_DIRECT",
                        ds->path, what);
    return br__fail(msg, fd, "cannot open the %s %s with O_DIRECT: %s", what, ds->path,
                    br_strerror(fd));
}

static int open_data(struct br_dataset *ds, const char *what, char *msg)
{
    int rc = open_regular(ds->path, what, &ds->fd, &ds->file_size, msg);
    if (rc == 0 && (ds->flags & BR_DATASET_DIRECT))
        rc = open_direct(ds, what, msg);
    return rc;
}

/* Reads len bytes from the start of fd into buf. */
static int read_all(int fd, void *buf, size_t len, const char *what, const char *path, char *msg)
{
    size_t done = 0;
    while (done < len) {
        ssize_t r = pread(fd, (char *)buf + done, len - done, (off_t)done);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return br__fail(msg, -errno, "reading the %s %s: %s", what, path, br_strerror(-errno));
        if (r == 0)
            return br__fail(msg, -ENODATA,
                            "the %s %s ended after %zu of its %zu bytes: it changed while "
                            "being read",
                            what, path, done, len);
        done += (size_t)r;
    }
    return 0;
}

int br__dataset_slurp(const char *path, const char *what, size_t extra, void **out,
                      uint64_t *size, char *msg)
{
    int fd = -1, rc;
    void *buf;
    rc = open_regular(path, what, &fd, size, msg);
    if (rc)
        return rc;
    if (*size > SIZE_MAX - extra) {
        close(fd);
        return br__fail(msg, -EFBIG, "the %s %s is too large (%llu bytes)", what, path,
                        (unsigned long long)*size);
    }
    buf = malloc((size_t)*size + extra > 0 ? (size_t)*size + extra : 1);
    if (!buf) {
        char h[32];
        close(fd);
        return br__fail(msg, -ENOMEM, "out of memory reading the %s %s (%s)", what, path,
                        br__format_bytes(h, *size));
    }
    rc = read_all(fd, buf, (size_t)*size, what, path, msg);
    close(fd);
    if (rc) {
        free(buf);
        return rc;
    }
    *out = buf;
    return 0;
}

static int load_labels(struct br_dataset *ds, const char *path, char *msg)
{
    uint64_t size;
    void *raw;
    int rc;
    if (!path)
        return 0;
    rc = br__dataset_slurp(path, "labels file", 0, &raw, &size, msg);
    if (rc)
        return rc;
    if (ds->n > UINT64_MAX / 4 || size != ds->n * 4) {
        free(raw);
        return br__fail(msg, -EINVAL,
                        "the labels file %s is %llu bytes, but the %s dataset %s has %llu "
                        "samples: it must hold one int32 per sample, %llu bytes",
                        path, (unsigned long long)size, layout_names[ds->layout], ds->path,
                        (unsigned long long)ds->n, (unsigned long long)(ds->n * 4));
    }
    ds->labels = raw;
    for (uint64_t i = 0; i < ds->n; i++) {
        uint32_t v;
        memcpy(&v, (const char *)raw + i * 4, 4);
        ds->labels[i] = (int32_t)le32toh(v);
    }
    return 0;
}

/* Common start of every br_dataset_open_*: the message goes where
 * br_last_error(NULL) reads it, *out is NULL until success. */
static char *open_begin(br_dataset **out)
{
    char *msg = br__open_error_buffer();
    msg[0] = '\0';
    if (out)
        *out = NULL;
    return msg;
}

static int open_finish(br_dataset **out, struct br_dataset *ds, int rc)
{
    if (rc) {
        ds_free(ds);
        return rc;
    }
    *out = ds;
    return 0;
}

BR_API int br_dataset_open_records(br_dataset **out, const char *path, size_t record_bytes,
                                   const char *labels_path, unsigned flags)
{
    char *msg = open_begin(out);
    struct br_dataset *ds;
    int rc;

    if (!out)
        return br__fail(msg, -EINVAL, "out is NULL: pass the address of a br_dataset *");
    if (!path)
        return br__fail(msg, -EINVAL, "path is NULL: pass the records file");
    if (flags & ~BR_DATASET_DIRECT)
        return br__fail(msg, -EINVAL, "unknown flags 0x%x", flags & ~BR_DATASET_DIRECT);
    if (record_bytes == 0)
        return br__fail(msg, -EINVAL, "record_bytes is 0: pass the size of one record");
    if ((flags & BR_DATASET_DIRECT) && record_bytes % DIRECT_ALIGN)
        return br__fail(msg, -EINVAL,
                        "record_bytes %zu is not a multiple of %u: with BR_DATASET_DIRECT "
                        "every read must be aligned to the block size, so records must be",
                        record_bytes, DIRECT_ALIGN);
    ds = ds_new(LAYOUT_RECORDS, flags, path, msg);
    if (!ds)
        return -ENOMEM;
    ds->record_bytes = record_bytes;
    rc = open_data(ds, "records file", msg);
    if (rc == 0 && ds->file_size % record_bytes)
        rc = br__fail(msg, -EINVAL,
                      "the records file %s is %llu bytes, not a multiple of record_bytes %zu "
                      "(%llu whole records and %llu bytes left over)",
                      path, (unsigned long long)ds->file_size, record_bytes,
                      (unsigned long long)(ds->file_size / record_bytes),
                      (unsigned long long)(ds->file_size % record_bytes));
    else if (rc == 0 && ds->file_size == 0)
        rc = br__fail(msg, -EINVAL, "the records file %s is empty: a dataset needs a sample", path);
    if (rc == 0) {
        ds->n = ds->file_size / record_bytes;
        ds->max_bytes = record_bytes;
        ds->total_bytes = ds->file_size;
        rc = load_labels(ds, labels_path, msg);
    }
    return open_finish(out, ds, rc);
}

int br__index_decode(struct br__index_entry *e, uint64_t n, uint64_t data_bytes,
                     const char *index_path, const char *data_path, uint64_t *total,
                     uint64_t *max, char *msg)
{
    for (uint64_t i = 0; i < n; i++, e++) {
        e->offset = le64toh(e->offset);
        e->length = le64toh(e->length);
        if (e->offset > data_bytes || e->length > data_bytes - e->offset)
            return br__fail(msg, -EINVAL,
                            "index entry %llu of %s (offset %llu, length %llu) is past the end "
                            "of the data file %s (%llu bytes)",
                            (unsigned long long)i, index_path, (unsigned long long)e->offset,
                            (unsigned long long)e->length, data_path,
                            (unsigned long long)data_bytes);
        if (e->length > UINT64_MAX - *total)
            return br__fail(msg, -EOVERFLOW, "the index %s: the samples' total size overflows",
                            index_path);
        *total += e->length;
        if (e->length > *max)
            *max = e->length;
    }
    return 0;
}

BR_API int br_dataset_open_indexed(br_dataset **out, const char *data_path, const char *index_path,
                                   const char *labels_path, unsigned flags)
{
    char *msg = open_begin(out);
    struct br_dataset *ds;
    uint64_t size;
    void *raw = NULL;
    int rc;

    if (!out)
        return br__fail(msg, -EINVAL, "out is NULL: pass the address of a br_dataset *");
    if (!data_path || !index_path)
        return br__fail(msg, -EINVAL, "%s is NULL: pass the %s file",
                        data_path ? "index_path" : "data_path", data_path ? "index" : "data");
    if (flags & ~BR_DATASET_DIRECT)
        return br__fail(msg, -EINVAL, "unknown flags 0x%x", flags & ~BR_DATASET_DIRECT);
    ds = ds_new(LAYOUT_INDEXED, flags, data_path, msg);
    if (!ds)
        return -ENOMEM;
    rc = open_data(ds, "data file", msg);
    if (rc == 0)
        rc = br__dataset_slurp(index_path, "index file", 0, &raw, &size, msg);
    if (rc)
        return open_finish(out, ds, rc);
    if (size % 16)
        rc = br__fail(msg, -EINVAL,
                      "the index file %s is %llu bytes, not a multiple of 16 (pairs of uint64 "
                      "offset and length)",
                      index_path, (unsigned long long)size);
    else if (size == 0)
        rc = br__fail(msg, -EINVAL, "the index file %s is empty: a dataset needs a sample",
                      index_path);
    if (rc) {
        free(raw);
        return open_finish(out, ds, rc);
    }
    /* Decoded in place: the file's pairs are exactly our entries. */
    ds->index = raw;
    ds->n = size / 16;
    rc = br__index_decode(ds->index, ds->n, ds->file_size, index_path, data_path,
                          &ds->total_bytes, &ds->max_bytes, msg);
    if (rc == 0)
        rc = load_labels(ds, labels_path, msg);
    return open_finish(out, ds, rc);
}

/* The name of sample i's file, as a user would type it from the cwd. */
static const char *file_name(const struct br_dataset *ds, uint64_t i, char *buf, size_t cap)
{
    const char *name = ds->names + ds->name_at[i];
    if (name[0] == '/')
        return name;
    snprintf(buf, cap, "%s/%s", ds->dir, name);
    return buf;
}

/* Splits the list into lines, in place; a last line without a newline
 * counts, an empty line is an error (it would shift every sample after). */
static int parse_list(struct br_dataset *ds, char *text, uint64_t size, char *msg)
{
    uint64_t lines = 0;
    for (uint64_t i = 0; i < size; i++)
        lines += text[i] == '\n';
    if (size && text[size - 1] != '\n')
        lines++;
    text[size] = '\0';
    if (lines == 0)
        return br__fail(msg, -EINVAL, "the list file %s is empty: a dataset needs a sample",
                        ds->path);
    ds->name_at = malloc(lines * sizeof *ds->name_at);
    ds->sizes = malloc(lines * sizeof *ds->sizes);
    if (!ds->name_at || !ds->sizes)
        return br__fail(msg, -ENOMEM, "out of memory for the %llu lines of %s",
                        (unsigned long long)lines, ds->path);
    ds->names = text;
    for (uint64_t at = 0, line = 0; line < lines; line++) {
        char *nl = memchr(text + at, '\n', size - at);
        uint64_t end = nl ? (uint64_t)(nl - text) : size;
        if (memchr(text + at, '\0', end - at))
            return br__fail(msg, -EINVAL, "line %llu of the list file %s contains a NUL byte",
                            (unsigned long long)line + 1, ds->path);
        text[end] = '\0';
        /* A list written on Windows still names the right files. */
        if (end > at && text[end - 1] == '\r')
            text[end - 1] = '\0';
        if (text[at] == '\0')
            return br__fail(msg, -EINVAL,
                            "line %llu of the list file %s is empty: every line names the "
                            "file of one sample",
                            (unsigned long long)line + 1, ds->path);
        ds->name_at[line] = at;
        at = end + 1;
    }
    ds->n = lines;
    return 0;
}

/* Opens the list's directory, so that relative names resolve against it
 * whatever the process's working directory is when a worker loads. */
static int open_list_dir(struct br_dataset *ds, char *msg)
{
    const char *slash = strrchr(ds->path, '/');
    size_t len = slash ? (size_t)(slash - ds->path) : 1;
    ds->dir = malloc(len + 1);
    if (!ds->dir)
        return br__fail(msg, -ENOMEM, "out of memory opening %s", ds->path);
    if (!slash)
        strcpy(ds->dir, ".");
    else if (len == 0)
        strcpy(ds->dir, "/");
    else {
        memcpy(ds->dir, ds->path, len);
        ds->dir[len] = '\0';
    }
    ds->dirfd = open(ds->dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (ds->dirfd < 0)
        return br__fail(msg, -errno, "cannot open the directory %s of the list file %s: %s",
                        ds->dir, ds->path, br_strerror(-errno));
    return 0;
}

/* Opens each file of the files layout now: a missing or unreadable one is
 * an error here, and its size sets the slot the dataset needs. `entry`
 * says what ds->path is made of ("line" of a list, "match" of a glob). */
static int files_check(struct br_dataset *ds, const char *entry, char *msg)
{
    ds->file_ids = malloc(ds->n * sizeof *ds->file_ids);
    if (!ds->file_ids)
        return br__fail(msg, -ENOMEM, "out of memory for the %llu files of %s",
                        (unsigned long long)ds->n, ds->path);
    for (uint64_t i = 0; i < ds->n; i++) {
        char buf[1024];
        const char *name = file_name(ds, i, buf, sizeof buf);
        struct stat st;
        bool irregular;
        int fd = open_file_at(ds->dirfd, ds->names + ds->name_at[i], 0, &st, &irregular);
        if (irregular)
            return br__fail(msg, -EINVAL, "%s (sample %llu, %s %llu of %s) is %s, not a "
                            "regular file", name, (unsigned long long)i, entry,
                            (unsigned long long)i + 1, ds->path, file_kind(st.st_mode));
        if (fd < 0)
            return br__fail(msg, fd, "cannot open %s (sample %llu, %s %llu of %s): %s", name,
                            (unsigned long long)i, entry, (unsigned long long)i + 1, ds->path,
                            br_strerror(fd));
        close(fd);
        br__file_id_set(&ds->file_ids[i], &st);
        ds->sizes[i] = (uint64_t)st.st_size;
        ds->total_bytes += ds->sizes[i];
        if (ds->sizes[i] > ds->max_bytes)
            ds->max_bytes = ds->sizes[i];
    }
    return 0;
}

BR_API int br_dataset_open_files(br_dataset **out, const char *list_path, const char *labels_path,
                                 unsigned flags)
{
    char *msg = open_begin(out);
    struct br_dataset *ds;
    uint64_t size;
    void *text = NULL;
    int rc;

    if (!out)
        return br__fail(msg, -EINVAL, "out is NULL: pass the address of a br_dataset *");
    if (!list_path)
        return br__fail(msg, -EINVAL, "list_path is NULL: pass the list file");
    if (flags & BR_DATASET_DIRECT)
        return br__fail(msg, -EINVAL,
                        "BR_DATASET_DIRECT is for records and indexed datasets: whole files "
                        "of any size cannot be read in aligned blocks");
    if (flags)
        return br__fail(msg, -EINVAL, "unknown flags 0x%x", flags);
    ds = ds_new(LAYOUT_FILES, flags, list_path, msg);
    if (!ds)
        return -ENOMEM;
    rc = br__dataset_slurp(list_path, "list file", 1, &text, &size, msg);
    if (rc == 0)
        rc = parse_list(ds, text, size, msg);
    else
        text = NULL;
    if (rc && !ds->names)
        free(text);
    if (rc == 0)
        rc = open_list_dir(ds, msg);
    if (rc == 0)
        rc = files_check(ds, "line", msg);
    if (rc == 0)
        rc = load_labels(ds, labels_path, msg);
    return open_finish(out, ds, rc);
}

BR_API int br_dataset_open_files_glob(br_dataset **out, const char *pattern,
                                      const char *labels_path, unsigned flags)
{
    char *msg = open_begin(out);
    struct br__shards found;
    struct br_dataset *ds;
    size_t bytes = 0;
    int rc;

    if (!out)
        return br__fail(msg, -EINVAL, "out is NULL: pass the address of a br_dataset *");
    if (!pattern)
        return br__fail(msg, -EINVAL, "pattern is NULL: pass a glob of the files or @LIST");
    if (flags)
        return br__fail(msg, -EINVAL,
                        "unknown flags 0x%x (the files layout takes none: whole files of any "
                        "size cannot be read in aligned blocks)",
                        flags);
    ds = ds_new(LAYOUT_FILES, flags, pattern, msg);
    if (!ds)
        return -ENOMEM;
    /* The same expansion as the shards of the other layouts; the names
     * then become the files layout's, relative to the working directory
     * of this call (held open, so a later chdir changes nothing). */
    rc = br__shards_expand(&found, pattern, msg);
    for (uint32_t i = 0; rc == 0 && i < found.n; i++)
        bytes += strlen(found.paths[i]) + 1;
    if (rc == 0) {
        ds->n = found.n;
        ds->names = malloc(bytes);
        ds->name_at = malloc(found.n * sizeof *ds->name_at);
        ds->sizes = malloc(found.n * sizeof *ds->sizes);
        ds->dir = strdup(".");
        if (!ds->names || !ds->name_at || !ds->sizes || !ds->dir)
            rc = br__fail(msg, -ENOMEM, "out of memory for the %u files of %s", found.n, pattern);
    }
    for (size_t i = 0, at = 0; rc == 0 && i < found.n; i++) {
        size_t len = strlen(found.paths[i]) + 1;
        memcpy(ds->names + at, found.paths[i], len);
        ds->name_at[i] = at;
        at += len;
    }
    br__shards_free(&found);
    if (rc == 0) {
        ds->dirfd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (ds->dirfd < 0)
            rc = br__fail(msg, -errno, "cannot open the working directory: %s",
                          br_strerror(-errno));
    }
    if (rc == 0)
        rc = files_check(ds, "match", msg);
    if (rc == 0)
        rc = load_labels(ds, labels_path, msg);
    return open_finish(out, ds, rc);
}

BR_API int br_dataset_info_get_sized(const br_dataset *ds, br_dataset_info *dst, size_t size)
{
    /* The 0.3 struct ends with `layout`; the caller's may be of another
     * build (batchring.h, rule b): fill ours, copy what fits, zero the
     * rest. */
    const size_t size_0_3 = offsetof(br_dataset_info, layout) + sizeof dst->layout;
    br_dataset_info info;
    if (!ds || !dst || size < size_0_3)
        return br__fail(br__open_error_buffer(), -EINVAL, "br_dataset_info_get: %s",
                        !ds    ? "the dataset is NULL"
                        : !dst ? "the output pointer is NULL"
                               : "size is smaller than the 0.3 struct");
    memset(&info, 0, sizeof info);
    info.samples = ds->n;
    info.max_sample_bytes = ds->max_bytes;
    info.total_bytes = ds->total_bytes;
    info.has_labels = ds->labels != NULL;
    info.layout = ds->packed ? "packed" : layout_names[ds->layout];
    info.shards = ds->tokens    ? ds->tokens->shards.n
                  : ds->sshards ? ds->sshards->shards.n
                  : ds->packed  ? ds->packed->data->shards.n
                                : 1;
    memcpy(dst, &info, size < sizeof info ? size : sizeof info);
    if (size > sizeof info)
        memset((char *)dst + sizeof info, 0, size - sizeof info);
    return 0;
}

/* A packed dataset's samples are read as those of records or indexed
 * shards (datasets/sample_shards.c), past each shard's header. */
static int packed_load(br_job *job, void *user)
{
    const struct br_dataset *ds = user;
    return br__sample_shards_load(job, ds->packed->data);
}

/* The start of both packed openers: the arguments, then a new dataset. */
static int packed_begin(br_dataset **out, const char *path, unsigned flags, enum layout layout,
                        struct br_dataset **ds, char *msg)
{
    if (!out || !path)
        return br__fail(msg, -EINVAL, "out or path is NULL");
    if (flags)
        return br__fail(msg, -EINVAL, "flags 0x%x: a packed dataset takes none", flags);
    *ds = ds_new(layout, flags, path, msg);
    return *ds ? 0 : -ENOMEM;
}

BR_API int br_dataset_open_packed(br_dataset **out, const char *path, unsigned flags)
{
    char *msg = open_begin(out);
    struct br_dataset *ds = NULL;
    int rc = packed_begin(out, path, flags, LAYOUT_INDEXED, &ds, msg);

    if (rc)
        return rc;
    rc = br__packed_open(&ds->packed, path, false, msg);
    if (rc == 0) {
        ds->n = ds->packed->n;
        ds->max_bytes = ds->packed->max_bytes;
        ds->total_bytes = ds->packed->total_bytes;
        ds->labels = ds->packed->labels; /* ours now */
        ds->packed->labels = NULL;
    }
    return open_finish(out, ds, rc);
}

BR_API int br_dataset_open_packed_tokens(br_dataset **out, const char *path, size_t seq_len,
                                         unsigned flags)
{
    char *msg = open_begin(out);
    struct br__packed *p = NULL;
    struct br_dataset *ds = NULL;
    int rc = packed_begin(out, path, flags, LAYOUT_TOKENS, &ds, msg);

    if (rc)
        return rc;
    /* The headers say the token width; the tokens layout cuts the windows
     * from the shards' data, past each header. */
    rc = br__packed_open(&p, path, true, msg);
    if (rc == 0)
        rc = br__tokens_from_shards(&ds->tokens, &p->data->shards, seq_len,
                                    (size_t)p->record_bytes, path, msg);
    br__packed_free(p);
    if (rc == 0) {
        ds->n = br__tokens_samples(ds->tokens);
        ds->max_bytes = (uint64_t)seq_len * 8;
        ds->total_bytes = ds->n * ds->max_bytes;
    }
    return open_finish(out, ds, rc);
}

BR_API int br_dataset_meta_get(const br_dataset *ds, uint64_t id, const void **data, size_t *len)
{
    char *msg = br__open_error_buffer();
    msg[0] = '\0';
    if (!ds || !data || !len)
        return br__fail(msg, -EINVAL, "ds, data or len is NULL");
    if (!ds->packed || !ds->packed->meta_at)
        return br__fail(msg, -EINVAL, "the dataset %s has no per-sample metadata", ds->path);
    if (id >= ds->n)
        return br__fail(msg, -EINVAL, "sample %llu is not in %s (%llu samples)",
                        (unsigned long long)id, ds->path, (unsigned long long)ds->n);
    *data = ds->packed->meta + ds->packed->meta_at[id];
    *len = (size_t)(ds->packed->meta_at[id + 1] - ds->packed->meta_at[id]);
    return 0;
}

BR_API int br_dataset_transform_set(br_dataset *ds, br_transform_fn fn, size_t max_out_bytes,
                                    void *user)
{
    char *msg = br__open_error_buffer();
    msg[0] = '\0';
    if (!ds)
        return br__fail(msg, -EINVAL, "ds is NULL: open a dataset with br_dataset_open_*");
    if (fn && max_out_bytes == 0)
        return br__fail(msg, -EINVAL,
                        "max_out_bytes is 0: give the largest output of one sample, which "
                        "sizes the slots");
    ds->xf.fn = fn;
    ds->xf.max_out = fn ? max_out_bytes : 0;
    ds->xf.user = user;
    return 0;
}

BR_API int br_dataset_close(br_dataset *ds)
{
    ds_free(ds);
    return 0;
}

/* ---------------------------------------------------------------- loading */

/* What every loader needs from the worker, and ids within the dataset
 * (br_open_dataset checked them; this guards a generator built by hand). */
static int job_check(br_job *job, const struct br_dataset *ds)
{
    if (!job->io)
        return br__job_fail(job, -EINVAL, "this worker has no file reader (job->io is NULL)");
    if (!job->offsets)
        return br__job_fail(job, -EINVAL, "this slot has no offsets (job->offsets is NULL)");
    for (uint32_t i = 0; i < job->count; i++)
        if (job->ids[i] >= ds->n)
            return br__job_fail(job, -ERANGE, "sample %llu is not in the %s dataset %s (%llu samples)",
                            (unsigned long long)job->ids[i], layout_names[ds->layout], ds->path,
                            (unsigned long long)ds->n);
    return 0;
}

/* A read could not even be queued: drain what was (so that nothing lands
 * in the slot after we return) and report the reader's message. */
static int queue_failed(br_job *job, const struct br_dataset *ds, int rc)
{
    char why[BR_ERR_CAP];
    snprintf(why, sizeof why, "%s", br_io_last_error(job->io));
    br_io_wait(job->io);
    return br__job_fail(job, rc, "queueing a read of %s: %s", ds->path, why);
}

/* End of sample id in the data file of a records or indexed dataset. */
static uint64_t sample_end(const struct br_dataset *ds, uint64_t id)
{
    if (ds->layout == LAYOUT_RECORDS)
        return (id + 1) * ds->record_bytes;
    return ds->index[id].offset + ds->index[id].length;
}

/* A read of the data file failed. When the file shrank since the dataset
 * was opened, name the first sample of the batch it cut off: that is the
 * usual cause, and the reader alone cannot know which sample of a
 * coalesced read was hit. */
static int read_failed(br_job *job, const struct br_dataset *ds, int rc)
{
    struct stat st;
    if (fstat(ds->fd, &st) == 0 && (uint64_t)st.st_size < ds->file_size) {
        for (uint32_t i = 0; i < job->count; i++) {
            uint64_t id = job->ids[i], end = sample_end(ds, id);
            if (end > (uint64_t)st.st_size)
                return br__job_fail(job, rc,
                                "the data file %s is now %lld bytes (%llu when the dataset was "
                                "opened): sample %llu (bytes %llu..%llu) is cut off (%s)",
                                ds->path, (long long)st.st_size, (unsigned long long)ds->file_size,
                                (unsigned long long)id,
                                (unsigned long long)(end - (ds->layout == LAYOUT_RECORDS
                                                                ? ds->record_bytes
                                                                : ds->index[id].length)),
                                (unsigned long long)end, br_io_last_error(job->io));
        }
    }
    return br__job_fail(job, rc, "reading %s: %s", ds->path, br_io_last_error(job->io));
}

/* The slot is too small for sample i of the batch, which would end at
 * byte `end` of the batch. */
static int too_big(br_job *job, uint32_t i, uint64_t bytes, uint64_t end)
{
    return br__job_fail(job, -ENOBUFS,
                    "sample %llu (%llu bytes) does not fit the slot: with the %u samples "
                    "before it in the batch it ends at byte %llu, but the slot holds %zu "
                    "bytes; raise slot_bytes",
                    (unsigned long long)job->ids[i], (unsigned long long)bytes, i,
                    (unsigned long long)end, job->cap);
}

static int records_load(br_job *job, void *user)
{
    const struct br_dataset *ds = user;
    const size_t rb = ds->record_bytes;
    const int fd = ds->dfd >= 0 ? ds->dfd : ds->fd;
    uint8_t *out = job->out;
    uint32_t i, j;
    int rc = job_check(job, ds);

    if (rc)
        return rc;
    if ((uint64_t)job->count * rb > job->cap) {
        i = (uint32_t)(job->cap / rb);
        return too_big(job, i, rb, (uint64_t)(i + 1) * rb);
    }
    for (i = 0; i <= job->count; i++)
        job->offsets[i] = (uint64_t)i * rb;
    job->has_offsets = true;
    /* One read per run of consecutive ids: sequential batches become a
     * single large read, shuffled ones many small reads in one submit. */
    for (i = 0; i < job->count; i = j) {
        uint64_t len = rb;
        for (j = i + 1; j < job->count && job->ids[j] == job->ids[j - 1] + 1; j++)
            len += rb;
        rc = br__dataset_queue_read(job->io, fd, job->ids[i] * rb, len, out + (size_t)i * rb,
                                    job->ids[i]);
        if (rc)
            return queue_failed(job, ds, rc);
    }
    rc = br_io_wait(job->io);
    if (rc)
        return read_failed(job, ds, rc);
    job->size = (size_t)job->count * rb;
    return 0;
}

static int indexed_load_buffered(br_job *job, const struct br_dataset *ds)
{
    uint8_t *out = job->out;
    uint64_t pos = 0;
    uint32_t i, j;
    int rc;

    for (i = 0; i < job->count; i++) {
        uint64_t len = ds->index[job->ids[i]].length;
        if (len > job->cap - pos)
            return too_big(job, i, len, pos + len);
        job->offsets[i] = pos;
        pos += len;
    }
    job->offsets[job->count] = pos;
    job->has_offsets = true;
    /* Samples stored one after another in the data file arrive in one
     * read, as records do. */
    for (i = 0; i < job->count; i = j) {
        const struct br__index_entry *e = &ds->index[job->ids[i]];
        uint64_t len = e->length;
        for (j = i + 1; j < job->count && ds->index[job->ids[j]].offset == e->offset + len; j++)
            len += ds->index[job->ids[j]].length;
        if (len == 0)
            continue;
        rc = br__dataset_queue_read(job->io, ds->fd, e->offset, len, out + job->offsets[i],
                                    job->ids[i]);
        if (rc)
            return queue_failed(job, ds, rc);
    }
    rc = br_io_wait(job->io);
    if (rc)
        return read_failed(job, ds, rc);
    job->size = (size_t)pos;
    return 0;
}

/* O_DIRECT: each sample's covering blocks go to an aligned staging place;
 * then samples move down to their packed places in order. Moving in order
 * is safe: a sample's packed place is never above its staged data, and ends
 * where the next sample's packed place starts, below that one's staging. */
static int indexed_load_direct(br_job *job, const struct br_dataset *ds)
{
    const uint64_t tail = align_down(ds->file_size);
    uint8_t *out = job->out;
    uint64_t stage = 0, pos = 0;
    uint32_t i;
    int rc;

    for (i = 0; i < job->count; i++) {
        const struct br__index_entry *e = &ds->index[job->ids[i]];
        uint64_t first = align_down(e->offset), end = e->offset + e->length;
        uint64_t span = e->length ? align_up(end) - first : 0;
        if (span > job->cap - stage)
            return br__job_fail(job, -ENOBUFS,
                            "sample %llu (%llu bytes) does not fit the slot: read with O_DIRECT "
                            "in %u-byte blocks, the batch up to it needs %llu bytes but the slot "
                            "holds %zu; raise slot_bytes (br_open_dataset's default allows for "
                            "the blocks)",
                            (unsigned long long)job->ids[i], (unsigned long long)e->length,
                            DIRECT_ALIGN, (unsigned long long)(stage + span), job->cap);
        /* Staged position of the sample's first byte, for the move below
         * (an empty sample has nothing staged). */
        job->offsets[i] = span ? stage + (e->offset - first) : stage;
        if (span == 0)
            continue;
        if (first + span <= ds->file_size) {
            rc = br__dataset_queue_read(job->io, ds->dfd, first, span, out + stage, job->ids[i]);
        } else {
            /* The file's last block is partial: the blocks before it
             * direct, the rest buffered, right behind them in the slot. */
            uint64_t split = tail > first ? tail : first;
            rc = br__dataset_queue_read(job->io, ds->dfd, first, split - first, out + stage,
                                        job->ids[i]);
            if (rc == 0)
                rc = br__dataset_queue_read(job->io, ds->fd, split, end - split,
                                            out + stage + (split - first), job->ids[i]);
        }
        if (rc)
            return queue_failed(job, ds, rc);
        stage += span;
    }
    rc = br_io_wait(job->io);
    if (rc)
        return read_failed(job, ds, rc);
    for (i = 0; i < job->count; i++) {
        uint64_t len = ds->index[job->ids[i]].length;
        if (job->offsets[i] != pos)
            memmove(out + pos, out + job->offsets[i], (size_t)len);
        job->offsets[i] = pos;
        pos += len;
    }
    job->offsets[job->count] = pos;
    job->has_offsets = true;
    job->size = (size_t)pos;
    return 0;
}

static int indexed_load(br_job *job, void *user)
{
    const struct br_dataset *ds = user;
    int rc = job_check(job, ds);
    if (rc)
        return rc;
    return ds->dfd >= 0 ? indexed_load_direct(job, ds) : indexed_load_buffered(job, ds);
}

/* After a failed wait on a chunk of files: a file that is now shorter
 * than at open explains it, and names its sample. */
static int files_read_failed(br_job *job, const struct br_dataset *ds, int rc, const int *fds,
                             uint32_t first, uint32_t n)
{
    char buf[1024];
    for (uint32_t k = 0; k < n; k++) {
        uint64_t id = job->ids[first + k];
        struct stat st;
        if (fstat(fds[k], &st) == 0 && (uint64_t)st.st_size < ds->sizes[id])
            return br__job_fail(job, rc,
                            "%s (sample %llu) is now %lld bytes, %llu when the dataset was "
                            "opened (%s)",
                            file_name(ds, id, buf, sizeof buf), (unsigned long long)id,
                            (long long)st.st_size, (unsigned long long)ds->sizes[id],
                            br_io_last_error(job->io));
    }
    return br__job_fail(job, rc, "reading the files of the list %s: %s", ds->path,
                    br_io_last_error(job->io));
}

static int files_load(br_job *job, void *user)
{
    const struct br_dataset *ds = user;
    uint8_t *out = job->out;
    uint64_t pos = 0;
    int fds[FILES_CHUNK];
    int rc = job_check(job, ds);

    if (rc)
        return rc;
    for (uint32_t i = 0; i < job->count; i++) {
        uint64_t len = ds->sizes[job->ids[i]];
        if (len > job->cap - pos)
            return too_big(job, i, len, pos + len);
        job->offsets[i] = pos;
        pos += len;
    }
    job->offsets[job->count] = pos;
    job->has_offsets = true;

    for (uint32_t first = 0; first < job->count; first += FILES_CHUNK) {
        uint32_t n = job->count - first < FILES_CHUNK ? job->count - first : FILES_CHUNK;
        uint32_t opened = 0;
        char buf[1024];
        while (opened < n) {
            uint32_t i = first + opened;
            uint64_t id = job->ids[i];
            struct stat st;
            const char *changed;
            bool irregular;
            /* Never blocks: a file replaced by a FIFO since the open fails
             * the batch instead of hanging the worker. */
            int fd = open_file_at(ds->dirfd, ds->names + ds->name_at[id], 0, &st, &irregular);
            if (irregular) {
                rc = br__job_fail(job, -EINVAL, "%s (sample %llu) is now %s, not a regular file",
                              file_name(ds, id, buf, sizeof buf), (unsigned long long)id,
                              file_kind(st.st_mode));
                break;
            }
            if (fd < 0) {
                rc = br__job_fail(job, fd, "cannot open %s (sample %llu): %s",
                              file_name(ds, id, buf, sizeof buf), (unsigned long long)id,
                              br_strerror(fd));
                break;
            }
            fds[opened++] = fd;
            /* A file that changed size since the dataset was opened would
             * give a silently different sample, or overrun its place. */
            if ((uint64_t)st.st_size != ds->sizes[id]) {
                rc = br__job_fail(job, (uint64_t)st.st_size < ds->sizes[id] ? -ENODATA : -EFBIG,
                              "%s (sample %llu) is now %lld bytes, %llu when the dataset was "
                              "opened",
                              file_name(ds, id, buf, sizeof buf), (unsigned long long)id,
                              (long long)st.st_size, (unsigned long long)ds->sizes[id]);
                break;
            }
            /* Nor may a same-size file in its place be read unchecked. */
            if ((changed = br__file_id_differs(&ds->file_ids[id], &st))) {
                rc = br__job_fail(job, -ESTALE,
                              "%s (sample %llu) %s since the dataset was opened and checked: "
                              "it is not read unchecked",
                              file_name(ds, id, buf, sizeof buf), (unsigned long long)id, changed);
                break;
            }
            if (ds->sizes[id]) {
                rc = br__dataset_queue_read(job->io, fd, 0, ds->sizes[id], out + job->offsets[i],
                                            id);
                if (rc) {
                    rc = br__job_fail(job, rc, "queueing a read of %s (sample %llu): %s",
                                  file_name(ds, id, buf, sizeof buf), (unsigned long long)id,
                                  br_io_last_error(job->io));
                    break;
                }
            }
        }
        /* Always wait, even after a failure, before closing: a queued read
         * must not run on a descriptor that is closed (or reused). */
        int wait_rc = br_io_wait(job->io);
        if (rc == 0 && wait_rc)
            rc = files_read_failed(job, ds, wait_rc, fds, first, opened);
        for (uint32_t k = 0; k < opened; k++)
            close(fds[k]);
        if (rc)
            return rc;
    }
    job->size = (size_t)pos;
    return 0;
}

const struct br__sample_shards *br__dataset_sample_shards(const br_dataset *ds)
{
    return ds->sshards ? ds->sshards : ds->packed ? ds->packed->data : NULL;
}

static int sample_shards_load(br_job *job, void *user)
{
    const struct br_dataset *ds = user;
    return br__sample_shards_load(job, ds->sshards);
}

/* What every br_dataset_open_*_shards checks before it opens anything. */
static int shards_args(br_dataset **out, const char *pattern, unsigned flags, const char *kind,
                       char *msg)
{
    if (!out)
        return br__fail(msg, -EINVAL, "out is NULL: pass the address of a br_dataset *");
    if (!pattern)
        return br__fail(msg, -EINVAL, "pattern is NULL: pass a glob of the shards or @LIST");
    if (flags)
        return br__fail(msg, -EINVAL,
                        "unknown flags 0x%x (%s in shards take none: BR_DATASET_DIRECT is for "
                        "one data file)",
                        flags, kind);
    return 0;
}

BR_API int br_dataset_open_record_shards(br_dataset **out, const char *pattern,
                                         size_t record_bytes, const char *labels_path,
                                         unsigned flags)
{
    char *msg = open_begin(out);
    struct br_dataset *ds;
    int rc = shards_args(out, pattern, flags, "records", msg);

    if (rc)
        return rc;
    ds = ds_new(LAYOUT_RECORD_SHARDS, flags, pattern, msg);
    if (!ds)
        return -ENOMEM;
    rc = br__sample_shards_open_records(&ds->sshards, pattern, record_bytes, msg);
    if (rc == 0) {
        ds->n = br__sample_shards_count(ds->sshards);
        ds->record_bytes = record_bytes;
        ds->max_bytes = record_bytes;
        ds->total_bytes = ds->n * record_bytes;
        rc = load_labels(ds, labels_path, msg);
    }
    return open_finish(out, ds, rc);
}

BR_API int br_dataset_open_indexed_shards(br_dataset **out, const char *pattern,
                                          const char *index_suffix, const char *labels_path,
                                          unsigned flags)
{
    char *msg = open_begin(out);
    struct br_dataset *ds;
    int rc = shards_args(out, pattern, flags, "indexed samples", msg);

    if (rc)
        return rc;
    ds = ds_new(LAYOUT_INDEXED_SHARDS, flags, pattern, msg);
    if (!ds)
        return -ENOMEM;
    rc = br__sample_shards_open_indexed(&ds->sshards, pattern, index_suffix ? index_suffix : ".idx",
                                        &ds->total_bytes, &ds->max_bytes, msg);
    if (rc == 0) {
        ds->n = br__sample_shards_count(ds->sshards);
        rc = load_labels(ds, labels_path, msg);
    }
    return open_finish(out, ds, rc);
}

/* Under a transform a window reaches it whole (inputs then targets), not
 * split between the batch's two halves. */
static int tokens_load(br_job *job, void *user)
{
    const struct br_dataset *ds = user;
    return br__tokens_load(job, ds->tokens, ds->xf.fn != NULL);
}

BR_API int br_dataset_open_tokens(br_dataset **out, const char *pattern, size_t seq_len,
                                  size_t token_bytes, unsigned flags)
{
    char *msg = open_begin(out);
    struct br_dataset *ds;
    int rc;

    if (!out)
        return br__fail(msg, -EINVAL, "out is NULL: pass the address of a br_dataset *");
    if (!pattern)
        return br__fail(msg, -EINVAL, "pattern is NULL: pass a glob of the token shards or @LIST");
    if (flags)
        return br__fail(msg, -EINVAL, "unknown flags 0x%x (the tokens layout takes none)", flags);
    ds = ds_new(LAYOUT_TOKENS, flags, pattern, msg);
    if (!ds)
        return -ENOMEM;
    rc = br__tokens_open(&ds->tokens, pattern, seq_len, token_bytes, msg);
    if (rc == 0) {
        ds->n = br__tokens_samples(ds->tokens);
        ds->max_bytes = (uint64_t)seq_len * 8;
        ds->total_bytes = ds->n * ds->max_bytes;
    }
    return open_finish(out, ds, rc);
}

/* ------------------------------------------------------------ generator */

/* In each worker: the data file stays open for the worker's life, so
 * io_uring may look it up once instead of on every read. */
static int dataset_worker_init(br_io *io, uint32_t worker, void *user, void **state, char *err,
                               size_t err_cap)
{
    const struct br_dataset *ds = user;
    int rc = 0;
    (void)worker, (void)state;
    if (ds->fd >= 0)
        rc = br_io_register_file(io, ds->fd);
    if (rc == 0 && ds->dfd >= 0)
        rc = br_io_register_file(io, ds->dfd);
    if (rc)
        snprintf(err, err_cap, "registering the data file %s with the reader: %s", ds->path,
                 br_strerror(rc));
    return rc;
}

/* br_open_dataset once the options are this function's copy, o. */
static int dataset_open_checked(br_gen **out, br_dataset *ds, const uint64_t *ids, size_t n_ids,
                                br_options *o, char *msg)
{
    static const br_loader_fn loaders[] = {records_load, files_load,         indexed_load,
                                           tokens_load,  sample_shards_load, sample_shards_load};
    int32_t *labels = NULL;
    int rc;

    /* Every sample: implicit ids 0 .. n - 1, no array, and the labels file
     * is already in id order. */
    if (!ids)
        n_ids = (size_t)ds->n;
    for (size_t k = 0; ids && k < n_ids; k++)
        if (ids[k] >= ds->n) {
            return br__fail(msg, -EINVAL,
                            "ids[%zu] = %llu is not a sample of the %s dataset %s, which has "
                            "%llu (0 .. %llu)",
                            k, (unsigned long long)ids[k], layout_names[ds->layout], ds->path,
                            (unsigned long long)ds->n, (unsigned long long)ds->n - 1);
        }
    if (ds->labels && ids && n_ids) {
        labels = malloc(n_ids * sizeof *labels);
        if (!labels) {
            return br__fail(msg, -ENOMEM, "out of memory for %zu labels", n_ids);
        }
        for (size_t k = 0; k < n_ids; k++)
            labels[k] = ds->labels[ids[k]];
    }

    /* The user's hooks and slot size, kept for the transform stage: with
     * a transform the size computed below is the raw batch's scratch. */
    br_worker_init_fn user_init = o->worker_init;
    br_worker_fini_fn user_fini = o->worker_fini;
    size_t user_slot = o->slot_bytes;
    if (ds->xf.fn)
        o->slot_bytes = 0;
    o->worker_init = dataset_worker_init;
    o->worker_fini = NULL;
    if (o->slot_bytes == 0 && o->batch_size) {
        /* With O_DIRECT an indexed sample is read as the blocks covering
         * it: up to one block more than its length rounded up. */
        uint64_t per = ds->max_bytes;
        if (ds->dfd >= 0 && ds->layout == LAYOUT_INDEXED)
            per = align_up(per) + DIRECT_ALIGN;
        if (per > SIZE_MAX / o->batch_size) {
            free(labels);
            return br__fail(msg, -EOVERFLOW,
                            "batch_size %u x the largest sample (%llu bytes) overflows: set "
                            "slot_bytes",
                            o->batch_size, (unsigned long long)ds->max_bytes);
        }
        o->slot_bytes = per ? (size_t)(per * o->batch_size) : 1;
    }
    if (ds->dfd >= 0 && o->slot_bytes % DIRECT_ALIGN) {
        if (o->slot_bytes > SIZE_MAX - DIRECT_ALIGN)
            o->slot_bytes = SIZE_MAX;
        else
            o->slot_bytes = (size_t)align_up(o->slot_bytes);
    }
    if (ds->xf.fn || user_init || user_fini) {
        /* The transform stage (datasets/transform.c) wraps our loader and
         * hooks: the raw batch goes to scratch of the size the slot would
         * have had, the slot holds the transform's output. */
        ds->xf.init = user_init;
        ds->xf.fini = user_fini;
        ds->xf.inner = ds->packed ? packed_load : loaders[ds->layout];
        ds->xf.inner_user = ds;
        ds->xf.inner_init = dataset_worker_init;
        ds->xf.batch_size = o->batch_size;
        ds->xf.raw_cap = o->slot_bytes;
        if (ds->xf.fn && user_slot) {
            o->slot_bytes = user_slot;
        } else if (ds->xf.fn) {
            if (ds->xf.max_out > SIZE_MAX / (o->batch_size ? o->batch_size : 1)) {
                free(labels);
                return br__fail(msg, -EOVERFLOW,
                                "batch_size %u x the transform's largest output (%zu bytes) "
                                "overflows: set slot_bytes",
                                o->batch_size, ds->xf.max_out);
            }
            o->slot_bytes = ds->xf.max_out ? ds->xf.max_out * o->batch_size : 1;
        }
        o->worker_init = br__transform_worker_init;
        o->worker_fini = br__transform_worker_fini;
        rc = br_open(out, br__transform_load, &ds->xf, ids, ids ? labels : ds->labels, n_ids, o);
    } else {
        rc = br_open(out, ds->packed ? packed_load : loaders[ds->layout], ds, ids,
                     ids ? labels : ds->labels, n_ids, o);
    }
    free(labels);
    return rc;
}

BR_API int br_open_dataset(br_gen **out, br_dataset *ds, const uint64_t *ids, size_t n_ids,
                           const br_options *opt)
{
    char *msg = br__open_error_buffer();
    br_options small, *o = &small;
    int rc;

    msg[0] = '\0';
    if (out)
        *out = NULL;
    if (!out)
        return br__fail(msg, -EINVAL, "out is NULL: pass the address of a br_gen *");
    if (!ds)
        return br__fail(msg, -EINVAL, "ds is NULL: open a dataset with br_dataset_open_*");
    if (!opt)
        return br__fail(msg, -EINVAL, "opt is NULL: initialise options with br_options_init");
    /* A copy as large as the caller's struct, which may be of another
     * build (batchring.h, rule a): br_open judges opt->size; this copy
     * only sets fields that every br_options has, and reads none before
     * it is made. */
    if (opt->size > sizeof small) {
        o = malloc(opt->size);
        if (!o)
            return br__fail(msg, -ENOMEM, "out of memory for a copy of the options");
        memcpy(o, opt, opt->size);
    } else {
        memset(&small, 0, sizeof small);
        memcpy(&small, opt, opt->size);
    }
    rc = dataset_open_checked(out, ds, ids, n_ids, o, msg);
    if (o != &small)
        free(o);
    return rc;
}
