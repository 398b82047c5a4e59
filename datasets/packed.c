/* SPDX-License-Identifier: MIT */
/*
 * The packed format: its writer (br_pack_*), its checker (br_pack_verify)
 * and its reader (br__packed_*, behind br_dataset_open_packed).
 *
 * A packed dataset is a directory of shards NAME-00000.brp, ... Each shard
 * is a 256-byte header, a body (the samples' bytes, then the index, the
 * labels, the metadata index and the metadata, each section present only
 * when the header says so) and a block table: the XXH3-64 of every
 * block_bytes piece of the body. The header holds the XXH3-64 of the block
 * table (so of the whole body, through it) and ends with the XXH3-64 of its
 * own first 248 bytes. docs/datasets.md gives every byte.
 *
 * Checking order, in both the reader and the checker: the header's own
 * checksum first (nothing in a header is believed before), then its fields
 * one by one against each other and the file (size, offsets in order,
 * shard index and count, first id), then the block table's checksum, then
 * blocks. The reader verifies the blocks of the sections it reads at open
 * (index, labels, metadata); data blocks only br_pack_verify reads.
 *
 * The writer streams the samples to the shard after a zeroed header, keeps
 * the small sections in memory, and at the end of a shard appends them,
 * reads the body back to checksum it (page cache: the bytes were just
 * written) and writes the table and the header. br_pack_close then rewrites
 * every header with the number of shards and samples, which only the end
 * knows, so a shard missing from a copy is caught at open.
 */
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

#include "datasets/packed.h"
#include "datasets/sample_shards.h"
#include "datasets/tokens.h"
#include "ring/error.h"

#define HDR_BYTES 256u
#define HASHED_BYTES 248u
#define MAJOR 1u
#define MINOR 0u
#define DEFAULT_SHARD ((uint64_t)1 << 30)
#define DEFAULT_BLOCK (64u * 1024u)
#define LAYOUT_RECORDS 1u
#define LAYOUT_INDEXED 2u
#define LAYOUT_TOKENS 3u /* record_bytes: the token width, 2 or 4; a sample is a token */
#define F_LABELS 1u
#define F_META 2u

static const char magic[8] = {'B', 'R', 'P', 'A', 'C', 'K', '\r', '\n'};

/* The header, decoded. Offsets are from the start of the shard file. */
struct hdr {
    uint32_t major, minor, header_bytes, layout, flags, shard_index, shard_count;
    uint64_t first_id, count, total_samples, record_bytes, data_off, data_bytes;
    uint64_t index_off, labels_off, meta_index_off, meta_off, meta_bytes, table_off;
    uint32_t block_bytes;
    uint64_t n_blocks, file_bytes;
    char dtype[16];
    uint32_t ndim;
    uint64_t shape[4];
    uint64_t max_sample, table_hash, header_hash;
};

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8);
}
static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}
static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t get64(const uint8_t *p)
{
    return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

static void hdr_encode(const struct hdr *h, uint8_t *b)
{
    memset(b, 0, HDR_BYTES);
    memcpy(b, magic, 8);
    put16(b + 8, (uint16_t)h->major);
    put16(b + 10, (uint16_t)h->minor);
    put32(b + 12, h->header_bytes);
    put32(b + 16, h->layout);
    put32(b + 20, h->flags);
    put32(b + 24, h->shard_index);
    put32(b + 28, h->shard_count);
    put64(b + 32, h->first_id);
    put64(b + 40, h->count);
    put64(b + 48, h->total_samples);
    put64(b + 56, h->record_bytes);
    put64(b + 64, h->data_off);
    put64(b + 72, h->data_bytes);
    put64(b + 80, h->index_off);
    put64(b + 88, h->labels_off);
    put64(b + 96, h->meta_index_off);
    put64(b + 104, h->meta_off);
    put64(b + 112, h->meta_bytes);
    put64(b + 120, h->table_off);
    put32(b + 128, h->block_bytes);
    put64(b + 136, h->n_blocks);
    put64(b + 144, h->file_bytes);
    memcpy(b + 152, h->dtype, 16);
    put32(b + 168, h->ndim);
    for (int i = 0; i < 4; i++)
        put64(b + 176 + 8 * i, h->shape[i]);
    put64(b + 208, h->max_sample);
    put64(b + 216, h->table_hash);
    put64(b + 248, XXH3_64bits(b, HASHED_BYTES));
}

static void hdr_decode(const uint8_t *b, struct hdr *h)
{
    h->major = get16(b + 8);
    h->minor = get16(b + 10);
    h->header_bytes = get32(b + 12);
    h->layout = get32(b + 16);
    h->flags = get32(b + 20);
    h->shard_index = get32(b + 24);
    h->shard_count = get32(b + 28);
    h->first_id = get64(b + 32);
    h->count = get64(b + 40);
    h->total_samples = get64(b + 48);
    h->record_bytes = get64(b + 56);
    h->data_off = get64(b + 64);
    h->data_bytes = get64(b + 72);
    h->index_off = get64(b + 80);
    h->labels_off = get64(b + 88);
    h->meta_index_off = get64(b + 96);
    h->meta_off = get64(b + 104);
    h->meta_bytes = get64(b + 112);
    h->table_off = get64(b + 120);
    h->block_bytes = get32(b + 128);
    h->n_blocks = get64(b + 136);
    h->file_bytes = get64(b + 144);
    memcpy(h->dtype, b + 152, 16);
    h->ndim = get32(b + 168);
    for (int i = 0; i < 4; i++)
        h->shape[i] = get64(b + 176 + 8 * i);
    h->max_sample = get64(b + 208);
    h->table_hash = get64(b + 216);
    h->header_hash = get64(b + 248);
}

/* Where each section goes, from the counts: the one layout rule that the
 * writer follows and the reader checks. */
static void hdr_place(struct hdr *h)
{
    uint64_t at;
    h->header_bytes = HDR_BYTES;
    h->data_off = HDR_BYTES;
    at = h->data_off + h->data_bytes;
    h->index_off = h->layout == LAYOUT_INDEXED ? at : 0;
    at += h->layout == LAYOUT_INDEXED ? (h->count + 1) * 8 : 0;
    h->labels_off = h->flags & F_LABELS ? at : 0;
    at += h->flags & F_LABELS ? h->count * 4 : 0;
    h->meta_index_off = h->flags & F_META ? at : 0;
    at += h->flags & F_META ? (h->count + 1) * 8 : 0;
    h->meta_off = h->flags & F_META ? at : 0;
    at += h->flags & F_META ? h->meta_bytes : 0;
    h->table_off = at;
    h->n_blocks = (at - HDR_BYTES + h->block_bytes - 1) / h->block_bytes;
    h->file_bytes = at + 8 * h->n_blocks;
}

/* Checks a header read from shard k (of n) of `path`, file_size bytes;
 * prev (NULL for the first) is shard k - 1's, next_first the id its first
 * sample must have. Returns 0 or -EBADMSG with the message. */
static int hdr_check(const uint8_t *b, struct hdr *h, const char *path, uint32_t k, uint32_t n,
                     uint64_t next_first, const struct hdr *prev, uint64_t file_size, char *msg)
{
    struct hdr want;
    if (memcmp(b, magic, 8) != 0)
        return br__fail(msg, -EBADMSG, "%s is not a batchring packed shard (bad magic)", path);
    if (XXH3_64bits(b, HASHED_BYTES) != get64(b + 248))
        return br__fail(msg, -EBADMSG,
                        "%s: the header's checksum does not match (header bytes 0..%u damaged)",
                        path, HDR_BYTES);
    hdr_decode(b, h);
    if (h->major != MAJOR)
        return br__fail(msg, -EBADMSG, "%s: format version %u.%u, this library reads %u.x",
                        path, h->major, h->minor, MAJOR);
    for (unsigned i = 224; i < HASHED_BYTES; i++)
        if (b[i])
            return br__fail(msg, -EBADMSG, "%s: reserved header byte %u is not zero", path, i);
    if (get32(b + 132) || get32(b + 172))
        return br__fail(msg, -EBADMSG, "%s: a reserved header word is not zero", path);
    if (h->layout != LAYOUT_RECORDS && h->layout != LAYOUT_INDEXED && h->layout != LAYOUT_TOKENS)
        return br__fail(msg, -EBADMSG, "%s: unknown layout %u", path, h->layout);
    if (h->layout == LAYOUT_TOKENS &&
        ((h->record_bytes != 2 && h->record_bytes != 4) || h->flags))
        return br__fail(msg, -EBADMSG,
                        "%s: a tokens shard with tokens of %llu bytes or flags 0x%x (2 or 4, "
                        "no labels or metadata)",
                        path, (unsigned long long)h->record_bytes, h->flags);
    if (h->flags & ~(F_LABELS | F_META))
        return br__fail(msg, -EBADMSG, "%s: unknown flags 0x%x", path, h->flags);
    if (h->block_bytes == 0 || h->ndim > 4 || h->dtype[15])
        return br__fail(msg, -EBADMSG, "%s: block size %u, ndim %u or dtype not valid", path,
                        h->block_bytes, h->ndim);
    if (h->shard_index != k || h->shard_count != n)
        return br__fail(msg, -EBADMSG,
                        "%s is shard %u of %u by its header, but shard %u of the %u found: a "
                        "shard is missing, extra or from another dataset",
                        path, h->shard_index, h->shard_count, k, n);
    if (h->first_id != next_first)
        return br__fail(msg, -EBADMSG,
                        "%s starts at sample %llu, but the shards before it end at %llu", path,
                        (unsigned long long)h->first_id, (unsigned long long)next_first);
    if (h->layout != LAYOUT_INDEXED &&
        (h->record_bytes == 0 || h->count > UINT64_MAX / h->record_bytes ||
         h->data_bytes != h->count * h->record_bytes))
        return br__fail(msg, -EBADMSG, "%s: %llu records of %llu bytes do not make %llu bytes",
                        path, (unsigned long long)h->count, (unsigned long long)h->record_bytes,
                        (unsigned long long)h->data_bytes);
    if (h->count > (UINT64_MAX >> 4) || h->data_bytes > (UINT64_MAX >> 4) ||
        h->meta_bytes > (UINT64_MAX >> 4) || h->max_sample > h->data_bytes)
        return br__fail(msg, -EBADMSG, "%s: counts out of range", path);
    want = *h;
    hdr_place(&want);
    if (want.data_off != h->data_off || want.index_off != h->index_off ||
        want.labels_off != h->labels_off || want.meta_index_off != h->meta_index_off ||
        want.meta_off != h->meta_off || want.table_off != h->table_off ||
        want.n_blocks != h->n_blocks || want.file_bytes != h->file_bytes ||
        h->header_bytes != HDR_BYTES)
        return br__fail(msg, -EBADMSG, "%s: section offsets do not follow from the counts", path);
    if (prev && (prev->layout != h->layout || prev->flags != h->flags ||
                 prev->record_bytes != h->record_bytes || prev->total_samples != h->total_samples ||
                 memcmp(prev->dtype, h->dtype, 16) || prev->ndim != h->ndim ||
                 memcmp(prev->shape, h->shape, sizeof h->shape)))
        return br__fail(msg, -EBADMSG,
                        "%s: layout, flags, record size, total, dtype or shape differ from the "
                        "shard before it",
                        path);
    if (k + 1 == n && h->first_id + h->count != h->total_samples)
        return br__fail(msg, -EBADMSG,
                        "%s is the last shard and ends at sample %llu, but the header says "
                        "the dataset has %llu",
                        path, (unsigned long long)(h->first_id + h->count),
                        (unsigned long long)h->total_samples);
    if (file_size != h->file_bytes)
        return br__fail(msg, -EBADMSG, "%s is %llu bytes, its header says %llu", path,
                        (unsigned long long)file_size, (unsigned long long)h->file_bytes);
    return 0;
}

static int pread_all(int fd, void *buf, size_t len, uint64_t off)
{
    size_t got = 0;
    while (got < len) {
        ssize_t r = pread(fd, (uint8_t *)buf + got, len - got, (off_t)(off + got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return r < 0 ? -errno : -ENODATA;
        got += (size_t)r;
    }
    return 0;
}

static int pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
    size_t done = 0;
    while (done < len) {
        ssize_t r = pwrite(fd, (const uint8_t *)buf + done, len - done, (off_t)(off + done));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        done += (size_t)r;
    }
    return 0;
}

/* ------------------------------------------------------------- shards */

static void free_names(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* The shard files of path: a directory's *.brp, one file, or a glob
 * pattern's matches, in name order. */
static int list_shards(const char *path, char ***out, size_t *n_out, char *msg)
{
    struct stat st;
    glob_t g;
    char *pat = NULL;
    int rc;

    *out = NULL, *n_out = 0;
    if (!path)
        return br__fail(msg, -EINVAL, "path is NULL: name a packed dataset's directory");
    if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
        char **names = malloc(sizeof *names);
        if (!names || !(names[0] = strdup(path))) {
            free(names);
            return br__fail(msg, -ENOMEM, "out of memory");
        }
        *out = names, *n_out = 1;
        return 0;
    }
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        size_t len = strlen(path) + 8;
        pat = malloc(len);
        if (!pat)
            return br__fail(msg, -ENOMEM, "out of memory");
        snprintf(pat, len, "%s/*.brp", path);
    }
    rc = glob(pat ? pat : path, 0, NULL, &g);
    if (rc == GLOB_NOMATCH) {
        free(pat);
        return br__fail(msg, -ENOENT, "%s: no packed shards (%s)", path,
                        pat ? "no .brp file in the directory" : "nothing matches");
    }
    free(pat);
    if (rc) {
        globfree(&g);
        return br__fail(msg, rc == GLOB_NOSPACE ? -ENOMEM : -EIO, "%s: cannot list the shards",
                        path);
    }
    if (g.gl_pathc > UINT32_MAX) {
        globfree(&g);
        return br__fail(msg, -EINVAL, "%s: too many shards", path);
    }
    *out = calloc(g.gl_pathc, sizeof **out);
    for (size_t i = 0; *out && i < g.gl_pathc; i++)
        if (!((*out)[i] = strdup(g.gl_pathv[i]))) {
            free_names(*out, i);
            *out = NULL;
        }
    *n_out = *out ? g.gl_pathc : 0;
    globfree(&g);
    return *out ? 0 : br__fail(msg, -ENOMEM, "out of memory");
}

/* Opens shard k, reads and checks its header and its block table (which it
 * returns in *table, n_blocks entries); *id (when not NULL) gets the
 * identity of the file these checks read. */
static int shard_open(const char *path, uint32_t k, uint32_t n, uint64_t next_first,
                      const struct hdr *prev, struct hdr *h, int *fd_out, uint64_t **table,
                      struct br__file_id *id, br_pack_fault *fault, char *msg)
{
    uint8_t b[HDR_BYTES];
    struct stat st;
    /* O_NONBLOCK: a FIFO named like a shard would block open() until a
     * writer came; fstat refuses it below instead. Regular files' reads
     * do not see the flag. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK), rc;

    *table = NULL;
    fault->shard = k;
    fault->block = BR_PACK_BLOCK_FILE;
    fault->lo = fault->hi = 0;
    if (fd < 0)
        return br__fail(msg, -errno, "cannot open the shard %s: %s", path, strerror(errno));
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return br__fail(msg, -EINVAL, "the shard %s is not a regular file", path);
    }
    if (id)
        br__file_id_set(id, &st);
    if ((uint64_t)st.st_size < HDR_BYTES) {
        close(fd);
        fault->hi = (uint64_t)st.st_size;
        return br__fail(msg, -EBADMSG, "the shard %s is %lld bytes, shorter than a header",
                        path, (long long)st.st_size);
    }
    rc = pread_all(fd, b, HDR_BYTES, 0);
    if (rc) {
        close(fd);
        return br__fail(msg, rc, "reading the header of %s: %s", path, br_strerror(rc));
    }
    fault->block = BR_PACK_BLOCK_HEADER;
    fault->hi = HDR_BYTES;
    rc = hdr_check(b, h, path, k, n, next_first, prev, (uint64_t)st.st_size, msg);
    if (rc) {
        if (strstr(msg, " bytes, its header says")) {
            fault->block = BR_PACK_BLOCK_FILE;
            fault->hi = (uint64_t)st.st_size;
        }
        close(fd);
        return rc;
    }
    fault->block = BR_PACK_BLOCK_TABLE;
    fault->lo = h->table_off, fault->hi = h->file_bytes;
    if (h->n_blocks > SIZE_MAX / 8 || !(*table = malloc(h->n_blocks ? h->n_blocks * 8 : 1))) {
        close(fd);
        return br__fail(msg, -ENOMEM, "out of memory for the block table of %s", path);
    }
    rc = pread_all(fd, *table, (size_t)h->n_blocks * 8, h->table_off);
    if (rc == 0 && XXH3_64bits(*table, (size_t)h->n_blocks * 8) != h->table_hash)
        rc = br__fail(msg, -EBADMSG,
                      "%s: the block table's checksum does not match (bytes %llu..%llu)", path,
                      (unsigned long long)h->table_off, (unsigned long long)h->file_bytes);
    else if (rc)
        rc = br__fail(msg, rc, "reading the block table of %s: %s", path, br_strerror(rc));
    if (rc) {
        free(*table);
        *table = NULL;
        close(fd);
        return rc;
    }
    for (uint64_t i = 0; i < h->n_blocks; i++)
        (*table)[i] = get64((const uint8_t *)&(*table)[i]);
    *fd_out = fd;
    return 0;
}

/* Reads block i of a shard into buf (block_bytes) and checks it. */
static int block_check(int fd, const struct hdr *h, const uint64_t *table, uint64_t i,
                       uint8_t *buf, const char *path, uint32_t k, br_pack_fault *fault, char *msg)
{
    uint64_t lo = HDR_BYTES + i * h->block_bytes;
    uint64_t hi = lo + h->block_bytes < h->table_off ? lo + h->block_bytes : h->table_off;
    int rc = pread_all(fd, buf, (size_t)(hi - lo), lo);
    if (rc)
        return br__fail(msg, rc, "reading block %llu of %s: %s", (unsigned long long)i, path,
                        br_strerror(rc));
    if (XXH3_64bits(buf, (size_t)(hi - lo)) != table[i]) {
        fault->shard = k;
        fault->block = (int64_t)i;
        fault->lo = lo, fault->hi = hi;
        return br__fail(msg, -EBADMSG,
                        "%s (shard %u): block %llu (bytes %llu..%llu) does not match its "
                        "checksum",
                        path, k, (unsigned long long)i, (unsigned long long)lo,
                        (unsigned long long)hi);
    }
    return 0;
}

/* Reads [lo, hi) of a shard's body into dst, checking every block that
 * covers it. */
static int read_checked(int fd, const struct hdr *h, const uint64_t *table, uint64_t lo,
                        uint64_t hi, void *dst, uint8_t *buf, const char *path, uint32_t k,
                        char *msg)
{
    br_pack_fault f;
    if (hi <= lo)
        return 0;
    for (uint64_t i = (lo - HDR_BYTES) / h->block_bytes; i <= (hi - 1 - HDR_BYTES) / h->block_bytes;
         i++) {
        uint64_t blo = HDR_BYTES + i * h->block_bytes, bhi = blo + h->block_bytes;
        uint64_t a = lo > blo ? lo : blo, z = hi < bhi ? hi : bhi;
        int rc = block_check(fd, h, table, i, buf, path, k, &f, msg);
        if (rc)
            return rc;
        memcpy((uint8_t *)dst + (a - lo), buf + (a - blo), (size_t)(z - a));
    }
    return 0;
}

BR_API int br_pack_verify(const char *path, br_pack_fault *fault)
{
    char *msg = br__open_error_buffer();
    br_pack_fault f, *ft = fault ? fault : &f;
    struct hdr h, prev;
    char **names;
    size_t n;
    uint64_t next = 0;
    int rc;

    msg[0] = '\0';
    memset(ft, 0, sizeof *ft);
    rc = list_shards(path, &names, &n, msg);
    if (rc)
        return rc;
    for (uint32_t k = 0; k < n && rc == 0; k++) {
        uint64_t *table;
        uint8_t *buf;
        int fd;
        rc = shard_open(names[k], k, (uint32_t)n, next, k ? &prev : NULL, &h, &fd, &table, NULL,
                        ft, msg);
        if (rc)
            break;
        buf = malloc(h.block_bytes);
        if (!buf)
            rc = br__fail(msg, -ENOMEM, "out of memory");
        for (uint64_t i = 0; rc == 0 && i < h.n_blocks; i++)
            rc = block_check(fd, &h, table, i, buf, names[k], k, ft, msg);
        free(buf);
        free(table);
        close(fd);
        prev = h;
        next = h.first_id + h.count;
    }
    free_names(names, n);
    return rc;
}

/* ------------------------------------------------------------- reader */

void br__packed_free(struct br__packed *p)
{
    if (!p)
        return;
    br__sample_shards_free(p->data);
    free(p->labels);
    free(p->meta_at);
    free(p->meta);
    free(p);
}

/* The index, labels and metadata of shard k (open as fd), checked, into
 * p: the index as the entries of its samples in p->data. */
static int shard_sections(struct br__packed *p, uint32_t k, int fd, const struct hdr *h,
                          const uint64_t *table, char *msg)
{
    const char *path = p->data->shards.paths[k];
    const uint64_t first = h->first_id;
    uint8_t *buf = malloc(h->block_bytes), *raw = NULL;
    uint64_t biggest = h->count * 8 + 8;
    int rc = 0;

    if (!buf || !(raw = malloc((size_t)biggest)))
        rc = br__fail(msg, -ENOMEM, "out of memory reading %s", path);
    if (rc == 0 && h->layout == LAYOUT_INDEXED) {
        struct br__index_entry *e = p->data->index + first;
        uint64_t prev = 0;
        rc = read_checked(fd, h, table, h->index_off, h->index_off + (h->count + 1) * 8, raw, buf,
                          path, k, msg);
        for (uint64_t i = 0; rc == 0 && i <= h->count; i++) {
            uint64_t at = get64(raw + 8 * i);
            if ((i == 0 && at != 0) || at < prev || at > h->data_bytes ||
                (i == h->count && at != h->data_bytes))
                rc = br__fail(msg, -EBADMSG, "%s: index entry %llu (%llu) is out of order",
                              path, (unsigned long long)i, (unsigned long long)at);
            else if (i) {
                e[i - 1].offset = prev;
                e[i - 1].length = at - prev;
                if (at - prev > p->max_bytes)
                    p->max_bytes = at - prev;
            }
            prev = at;
        }
    } else if (rc == 0 && h->count) {
        p->max_bytes = h->record_bytes;
    }
    if (rc == 0 && (h->flags & F_LABELS)) {
        rc = read_checked(fd, h, table, h->labels_off, h->labels_off + h->count * 4, raw, buf,
                          path, k, msg);
        for (uint64_t i = 0; rc == 0 && i < h->count; i++)
            p->labels[first + i] = (int32_t)get32(raw + 4 * i);
    }
    if (rc == 0 && (h->flags & F_META)) {
        uint64_t base = p->meta_at[first];
        uint8_t *grown;
        rc = read_checked(fd, h, table, h->meta_index_off, h->meta_index_off + (h->count + 1) * 8,
                          raw, buf, path, k, msg);
        for (uint64_t i = 0; rc == 0 && i <= h->count; i++) {
            uint64_t v = get64(raw + 8 * i);
            if ((i == 0 && v != 0) || (i && v < get64(raw + 8 * (i - 1))) || v > h->meta_bytes ||
                (i == h->count && v != h->meta_bytes))
                rc = br__fail(msg, -EBADMSG, "%s: metadata index entry %llu is out of order",
                              path, (unsigned long long)i);
            else
                p->meta_at[first + i] = base + v;
        }
        grown = rc == 0 ? realloc(p->meta, (size_t)(base + h->meta_bytes + 1)) : NULL;
        if (rc == 0 && !grown)
            rc = br__fail(msg, -ENOMEM, "out of memory for the metadata of %s", path);
        if (rc == 0) {
            p->meta = grown;
            rc = read_checked(fd, h, table, h->meta_off, h->meta_off + h->meta_bytes,
                              p->meta + base, buf, path, k, msg);
        }
    }
    free(buf);
    free(raw);
    return rc;
}

/*
 * The shards are checked here, each opened and closed again: workers read
 * them through the LRU of sample_shards.c (at most 64 descriptors each),
 * so thousands of shards run under a low descriptor limit. The LRU opens
 * each by its path again, and refuses one that is not the file checked
 * here (its size, and its identity recorded by shard_open: shards.h): a
 * same-size shard of another dataset moved into its place would otherwise
 * be served with no header or checksum read.
 */
int br__packed_open(struct br__packed **out, const char *path, bool tokens, char *msg)
{
    struct br__packed *p = calloc(1, sizeof *p);
    struct br__shards *sh;
    struct hdr h, prev;
    br_pack_fault f;
    char **names = NULL;
    size_t n = 0;
    int rc;

    *out = NULL;
    if (!p || !(p->data = br__sample_shards_new("packed"))) {
        free(p);
        return br__fail(msg, -ENOMEM, "out of memory");
    }
    sh = &p->data->shards;
    rc = list_shards(path, &names, &n, msg);
    if (rc == 0) {
        /* The names become the shards' paths. */
        sh->paths = names, sh->n = (uint32_t)n;
        names = NULL, n = 0;
        rc = br__shards_alloc(sh, msg);
    }
    for (uint32_t k = 0; rc == 0 && k < sh->n; k++) {
        uint64_t *table;
        int fd = -1;
        rc = shard_open(sh->paths[k], k, sh->n, p->n, k ? &prev : NULL, &h, &fd, &table,
                        &sh->id[k], &f, msg);
        if (rc)
            break;
        if (k == 0 && (h.layout == LAYOUT_TOKENS) != tokens)
            rc = br__fail(msg, -EINVAL,
                          tokens ? "%s holds no tokens (layout %u): open it with "
                                   "br_dataset_open_packed (serve --packed without --seq-len)"
                                 : "%s holds tokens (layout %u): open it with "
                                   "br_dataset_open_packed_tokens and a sequence length "
                                   "(serve --packed DIR --seq-len T)",
                          sh->paths[k], h.layout);
        if (rc == 0 && k == 0) {
            p->record_bytes = h.layout != LAYOUT_INDEXED ? h.record_bytes : 0;
            p->data->record_bytes = (size_t)p->record_bytes;
            if (h.total_samples > SIZE_MAX / 16 - 1)
                rc = br__fail(msg, -EBADMSG, "%s: %llu samples", sh->paths[k],
                              (unsigned long long)h.total_samples);
            if (rc == 0 && h.layout == LAYOUT_INDEXED &&
                !(p->data->index = malloc((size_t)(h.total_samples ? h.total_samples : 1) * 16)))
                rc = br__fail(msg, -ENOMEM, "out of memory for the index");
            if (rc == 0 && (h.flags & F_LABELS) &&
                !(p->labels = malloc((size_t)(h.total_samples ? h.total_samples : 1) * 4)))
                rc = br__fail(msg, -ENOMEM, "out of memory for the labels");
            if (rc == 0 && (h.flags & F_META) &&
                !(p->meta_at = calloc((size_t)h.total_samples + 1, 8)))
                rc = br__fail(msg, -ENOMEM, "out of memory for the metadata index");
        }
        /* Only the last header's end is checked against the total: an
         * earlier shard must not run past it either (its sections are
         * stored by global id). */
        if (rc == 0 && h.count > h.total_samples - h.first_id)
            rc = br__fail(msg, -EBADMSG,
                          "%s ends at sample %llu, past the %llu its header gives the dataset",
                          sh->paths[k], (unsigned long long)(h.first_id + h.count),
                          (unsigned long long)h.total_samples);
        sh->size[k] = h.file_bytes;
        sh->skip[k] = h.data_off;
        sh->first[k + 1] = h.first_id + h.count;
        if (rc == 0)
            rc = shard_sections(p, k, fd, &h, table, msg);
        free(table);
        close(fd);
        p->n += h.count;
        p->total_bytes += h.data_bytes;
        prev = h;
    }
    free_names(names, n);
    if (rc) {
        br__packed_free(p);
        return rc;
    }
    *out = p;
    return 0;
}

/* ------------------------------------------------------------- writer */

struct br_pack_writer {
    char *dir, *name;
    uint64_t max_shard, record_bytes;
    uint32_t block_bytes;
    unsigned flags;
    char dtype[16];
    uint32_t ndim;
    uint64_t shape[4];
    bool started; /* a sample was added: dtype is fixed */
    bool tokens;  /* BR_PACK_TOKENS: samples are tokens of record_bytes */
    char **paths; /* the shards written so far */
    uint32_t nshards, paths_cap;
    uint64_t total;
    /* the shard being written (fd >= 0) */
    int fd;
    uint64_t first, count, data_bytes, max_sample, meta_bytes, cap;
    uint64_t *index, *meta_at; /* count + 1 */
    int32_t *labels;
    uint8_t *meta;
    uint64_t meta_cap;
};

static int grow(void **p, uint64_t *cap, uint64_t need, size_t elem)
{
    uint64_t c = *cap ? *cap : 64;
    void *q;
    if (need <= *cap)
        return 0;
    while (c < need)
        c *= 2;
    if (c > SIZE_MAX / elem || !(q = realloc(*p, (size_t)(c * elem))))
        return -ENOMEM;
    *p = q;
    *cap = c;
    return 0;
}

static void shard_name(const br_pack_writer *w, uint32_t k, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s/%s-%05u.brp", w->dir, w->name, k);
}

static int shard_start(br_pack_writer *w, char *msg)
{
    char path[PATH_MAX];
    shard_name(w, w->nshards, path, sizeof path);
    if (w->nshards == w->paths_cap) {
        uint32_t c = w->paths_cap ? 2 * w->paths_cap : 16;
        char **q = realloc(w->paths, c * sizeof *q);
        if (!q)
            return br__fail(msg, -ENOMEM, "out of memory");
        w->paths = q, w->paths_cap = c;
    }
    if (!(w->paths[w->nshards] = strdup(path)))
        return br__fail(msg, -ENOMEM, "out of memory");
    w->fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (w->fd < 0) {
        int e = errno;
        free(w->paths[w->nshards]);
        return br__fail(msg, -e, "cannot create the shard %s: %s", path, strerror(e));
    }
    w->nshards++;
    w->first = w->total;
    w->count = w->data_bytes = w->max_sample = w->meta_bytes = 0;
    return 0;
}

static void hdr_of(const br_pack_writer *w, struct hdr *h)
{
    memset(h, 0, sizeof *h);
    h->major = MAJOR, h->minor = MINOR;
    h->layout = w->tokens ? LAYOUT_TOKENS : w->record_bytes ? LAYOUT_RECORDS : LAYOUT_INDEXED;
    h->flags = w->flags;
    h->shard_index = w->nshards - 1;
    h->first_id = w->first;
    h->count = w->count;
    h->record_bytes = w->record_bytes;
    h->data_bytes = w->data_bytes;
    h->meta_bytes = w->meta_bytes;
    h->block_bytes = w->block_bytes;
    memcpy(h->dtype, w->dtype, 16);
    h->ndim = w->ndim;
    memcpy(h->shape, w->shape, sizeof h->shape);
    h->max_sample = w->max_sample;
    hdr_place(h);
}

/* Bytes the shard would take with `count` samples, data_bytes and
 * meta_bytes of them. */
static uint64_t shard_size(const br_pack_writer *w, uint64_t count, uint64_t data, uint64_t meta)
{
    struct hdr h;
    hdr_of(w, &h);
    h.count = count, h.data_bytes = data, h.meta_bytes = meta;
    hdr_place(&h);
    return h.file_bytes;
}

static int shard_finish(br_pack_writer *w, char *msg)
{
    const char *path = w->paths[w->nshards - 1];
    struct hdr h;
    uint8_t *buf = NULL, hb[HDR_BYTES];
    uint64_t *table = NULL;
    int rc = 0;

    hdr_of(w, &h);
    /* The small sections, little-endian, after the data. */
    if (h.index_off) {
        for (uint64_t i = 0; i <= w->count; i++)
            put64((uint8_t *)&w->index[i], w->index[i]);
        rc = pwrite_all(w->fd, w->index, (size_t)(w->count + 1) * 8, h.index_off);
    }
    if (rc == 0 && h.labels_off) {
        for (uint64_t i = 0; i < w->count; i++)
            put32((uint8_t *)&w->labels[i], (uint32_t)w->labels[i]);
        rc = pwrite_all(w->fd, w->labels, (size_t)w->count * 4, h.labels_off);
    }
    if (rc == 0 && h.meta_index_off) {
        for (uint64_t i = 0; i <= w->count; i++)
            put64((uint8_t *)&w->meta_at[i], w->meta_at[i]);
        rc = pwrite_all(w->fd, w->meta_at, (size_t)(w->count + 1) * 8, h.meta_index_off);
        if (rc == 0)
            rc = pwrite_all(w->fd, w->meta, (size_t)w->meta_bytes, h.meta_off);
    }
    if (rc == 0 && (!(buf = malloc(h.block_bytes)) || !(table = malloc(h.n_blocks * 8 + 8))))
        rc = -ENOMEM;
    for (uint64_t i = 0; rc == 0 && i < h.n_blocks; i++) {
        uint64_t lo = HDR_BYTES + i * h.block_bytes;
        uint64_t hi = lo + h.block_bytes < h.table_off ? lo + h.block_bytes : h.table_off;
        rc = pread_all(w->fd, buf, (size_t)(hi - lo), lo);
        if (rc == 0)
            put64((uint8_t *)&table[i], XXH3_64bits(buf, (size_t)(hi - lo)));
    }
    if (rc == 0) {
        h.table_hash = XXH3_64bits(table, (size_t)h.n_blocks * 8);
        rc = pwrite_all(w->fd, table, (size_t)h.n_blocks * 8, h.table_off);
    }
    if (rc == 0) {
        hdr_encode(&h, hb);
        rc = pwrite_all(w->fd, hb, HDR_BYTES, 0);
    }
    free(buf);
    free(table);
    if (close(w->fd) < 0 && rc == 0)
        rc = -errno;
    w->fd = -1;
    if (rc)
        return br__fail(msg, rc, "writing the shard %s: %s", path, br_strerror(rc));
    return 0;
}

static void writer_free(br_pack_writer *w)
{
    if (w->fd >= 0)
        close(w->fd);
    for (uint32_t k = 0; k < w->nshards; k++)
        free(w->paths[k]);
    free(w->paths);
    free(w->dir);
    free(w->index);
    free(w->meta_at);
    free(w->labels);
    free(w->meta);
    free(w);
}

BR_API int br_pack_open(br_pack_writer **out, const char *dir, uint64_t max_shard_bytes,
                        uint64_t record_bytes, uint32_t block_bytes, unsigned flags)
{
    char *msg = br__open_error_buffer();
    br_pack_writer *w;
    char **names;
    size_t n;
    char *slash;

    msg[0] = '\0';
    if (out)
        *out = NULL;
    if (!out || !dir || !*dir)
        return br__fail(msg, -EINVAL, "out or dir is NULL or empty");
    if (flags & ~(BR_PACK_LABELS | BR_PACK_META | BR_PACK_TOKENS))
        return br__fail(msg, -EINVAL, "unknown flags 0x%x", flags);
    if ((flags & BR_PACK_TOKENS) &&
        ((record_bytes != 2 && record_bytes != 4) || (flags & (BR_PACK_LABELS | BR_PACK_META))))
        return br__fail(msg, -EINVAL,
                        "BR_PACK_TOKENS: record_bytes %llu must be the token width, 2 or 4, "
                        "and tokens take no labels or metadata",
                        (unsigned long long)record_bytes);
    if (mkdir(dir, 0755) < 0 && errno != EEXIST)
        return br__fail(msg, -errno, "cannot create the directory %s: %s", dir, strerror(errno));
    if (list_shards(dir, &names, &n, msg) == 0) {
        free_names(names, n);
        return br__fail(msg, -EEXIST, "%s holds .brp shards already: pack into a new directory",
                        dir);
    }
    msg[0] = '\0';
    w = calloc(1, sizeof *w);
    if (!w || !(w->dir = strdup(dir))) {
        free(w);
        return br__fail(msg, -ENOMEM, "out of memory");
    }
    /* NAME: the directory's last component, without trailing slashes. */
    for (size_t l = strlen(w->dir); l > 1 && w->dir[l - 1] == '/'; l--)
        w->dir[l - 1] = '\0';
    slash = strrchr(w->dir, '/');
    w->name = slash && slash[1] ? slash + 1 : w->dir;
    w->max_shard = max_shard_bytes ? max_shard_bytes : DEFAULT_SHARD;
    w->record_bytes = record_bytes;
    w->block_bytes = block_bytes ? block_bytes : DEFAULT_BLOCK;
    w->flags = flags & ~BR_PACK_TOKENS;
    w->tokens = flags & BR_PACK_TOKENS;
    if (w->tokens)
        memcpy(w->dtype, record_bytes == 2 ? "uint16" : "uint32", 7);
    w->fd = -1;
    *out = w;
    return 0;
}

BR_API int br_pack_set_dtype(br_pack_writer *w, const char *dtype, uint32_t ndim,
                             const uint64_t *shape)
{
    char *msg = br__open_error_buffer();
    msg[0] = '\0';
    if (!w || (dtype && strlen(dtype) > 15) || ndim > 4 || (ndim && !shape) || w->started)
        return br__fail(msg, -EINVAL,
                        "br_pack_set_dtype: w NULL, dtype over 15 characters, more than 4 "
                        "dimensions, or samples already added");
    memset(w->dtype, 0, sizeof w->dtype);
    if (dtype)
        memcpy(w->dtype, dtype, strlen(dtype));
    w->ndim = ndim;
    memset(w->shape, 0, sizeof w->shape);
    for (uint32_t i = 0; i < ndim; i++)
        w->shape[i] = shape[i];
    return 0;
}

/* How many of n more tokens the shard being written still takes
 * (shard_size grows with the count: a binary search). */
static uint64_t tokens_fit(const br_pack_writer *w, uint64_t n)
{
    uint64_t lo = 0, hi = n;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo + 1) / 2;
        if (shard_size(w, w->count + mid, w->data_bytes + mid * w->record_bytes, 0) <=
            w->max_shard)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

/* Appends len bytes of tokens, splitting them between shards as they
 * fill: a tokens shard has no index, so a token costs its bytes only. */
static int add_tokens(br_pack_writer *w, const uint8_t *data, size_t len, char *msg)
{
    const uint64_t wb = w->record_bytes;
    if (len % wb)
        return br__fail(msg, -EINVAL,
                        "%zu bytes of tokens is not a whole number of %llu-byte tokens", len,
                        (unsigned long long)wb);
    w->started = true;
    while (len) {
        uint64_t fit;
        int rc;
        if (w->fd < 0 && (rc = shard_start(w, msg)))
            return rc;
        fit = tokens_fit(w, len / wb);
        if (fit == 0 && w->count) {
            if ((rc = shard_finish(w, msg)))
                return rc;
            continue;
        }
        if (fit == 0)
            fit = 1; /* a shard smaller than one token still takes one */
        rc = pwrite_all(w->fd, data, (size_t)(fit * wb), HDR_BYTES + w->data_bytes);
        if (rc)
            return br__fail(msg, rc, "writing %s: %s", w->paths[w->nshards - 1],
                            br_strerror(rc));
        w->count += fit;
        w->data_bytes += fit * wb;
        w->total += fit;
        w->max_sample = wb;
        data += fit * wb;
        len -= (size_t)(fit * wb);
    }
    return 0;
}

BR_API int br_pack_add(br_pack_writer *w, const void *data, size_t len, int32_t label,
                       const void *meta, size_t meta_len)
{
    char *msg = br__open_error_buffer();
    uint64_t c;
    int rc;

    msg[0] = '\0';
    if (!w || (len && !data) || (meta_len && !meta))
        return br__fail(msg, -EINVAL, "br_pack_add: w NULL, or data/meta NULL with a length");
    if (w->tokens)
        return add_tokens(w, data, len, msg);
    if (w->record_bytes && len != w->record_bytes)
        return br__fail(msg, -EINVAL,
                        "sample %llu is %zu bytes, but this records dataset's are %llu",
                        (unsigned long long)w->total, len, (unsigned long long)w->record_bytes);
    if (!(w->flags & BR_PACK_META))
        meta_len = 0;
    w->started = true;
    if (w->fd >= 0 && w->count &&
        shard_size(w, w->count + 1, w->data_bytes + len, w->meta_bytes + meta_len) > w->max_shard) {
        rc = shard_finish(w, msg);
        if (rc)
            return rc;
    }
    if (w->fd < 0 && (rc = shard_start(w, msg)))
        return rc;
    c = w->count + 2;
    if (c > w->cap) {
        uint64_t cap = w->cap;
        void *l, *m;
        if (grow((void **)&w->index, &cap, c, 8))
            return br__fail(msg, -ENOMEM, "out of memory");
        l = realloc(w->labels, (size_t)cap * 4);
        if (l)
            w->labels = l;
        m = l ? realloc(w->meta_at, (size_t)cap * 8) : NULL;
        if (!m)
            return br__fail(msg, -ENOMEM, "out of memory");
        w->meta_at = m;
        w->cap = cap;
    }
    if (meta_len && grow((void **)&w->meta, &w->meta_cap, w->meta_bytes + meta_len, 1))
        return br__fail(msg, -ENOMEM, "out of memory for metadata");
    rc = len ? pwrite_all(w->fd, data, len, HDR_BYTES + w->data_bytes) : 0;
    if (rc)
        return br__fail(msg, rc, "writing %s: %s", w->paths[w->nshards - 1], br_strerror(rc));
    if (w->count == 0)
        w->index[0] = 0, w->meta_at[0] = 0;
    if (meta_len)
        memcpy(w->meta + w->meta_bytes, meta, meta_len);
    w->labels[w->count] = label;
    w->data_bytes += len;
    w->meta_bytes += meta_len;
    w->count++;
    w->index[w->count] = w->data_bytes;
    w->meta_at[w->count] = w->meta_bytes;
    if (len > w->max_sample)
        w->max_sample = len;
    w->total++;
    return 0;
}

BR_API int br_pack_add_tokens(br_pack_writer *w, const char *pattern, size_t token_bytes)
{
    char *msg = br__open_error_buffer();
    const size_t chunk = (size_t)1 << 20;
    struct br__shard_fds fds;
    struct br__tokens *t = NULL;
    uint8_t *buf = NULL;
    int rc;

    msg[0] = '\0';
    if (!w || !pattern)
        return br__fail(msg, -EINVAL, "w or pattern is NULL");
    if (!w->tokens)
        return br__fail(msg, -EINVAL,
                        "this writer was not opened with BR_PACK_TOKENS: its samples are not "
                        "tokens");
    /* The shards are checked as br_dataset_open_tokens checks them (T = 1:
     * every shard of two tokens or more has a window). */
    rc = br__tokens_open(&t, pattern, 1, token_bytes, msg);
    if (rc == 0 && t->token_bytes != w->record_bytes)
        rc = br__fail(msg, -EINVAL,
                      "the tokens of %s are %zu bytes, the writer's %llu: open it with "
                      "record_bytes %zu",
                      pattern, t->token_bytes, (unsigned long long)w->record_bytes,
                      t->token_bytes);
    if (rc == 0 && !(buf = malloc(chunk)))
        rc = br__fail(msg, -ENOMEM, "out of memory");
    br__shard_fds_init(&fds);
    for (uint32_t k = 0; rc == 0 && k < t->shards.n; k++) {
        const char *path = t->shards.paths[k];
        uint64_t at = t->shards.skip[k], end = t->shards.size[k];
        /* Opened as a worker opens it: only the file checked above. */
        int fd = br__shard_fds_get(&fds, &t->shards, k, msg, BR_MSG_CAP);
        if (fd < 0) {
            rc = fd;
            break;
        }
        /* One packed shard never holds tokens of two files, so that its
         * windows are the file's (when the file fits in one). */
        if (w->fd >= 0 && w->count)
            rc = shard_finish(w, msg);
        while (rc == 0 && at < end) {
            size_t part = end - at < chunk ? (size_t)(end - at) : chunk;
            rc = pread_all(fd, buf, part, at);
            if (rc)
                rc = br__fail(msg, rc, "reading the token shard %s: %s", path, br_strerror(rc));
            else
                rc = add_tokens(w, buf, part, msg);
            at += part;
        }
        br__shard_fds_wave_end(&fds);
    }
    br__shard_fds_close(&fds);
    free(buf);
    br__tokens_free(t);
    return rc;
}

BR_API int br_pack_close(br_pack_writer *w, uint64_t *samples, uint32_t *shards)
{
    char *msg = br__open_error_buffer();
    int rc = 0;

    msg[0] = '\0';
    if (!w)
        return br__fail(msg, -EINVAL, "w is NULL");
    if (w->fd < 0 && w->nshards == 0)
        rc = shard_start(w, msg); /* an empty dataset is one empty shard */
    if (rc == 0 && w->fd >= 0)
        rc = shard_finish(w, msg);
    /* Now the count and the total are known: into every header. */
    for (uint32_t k = 0; rc == 0 && k < w->nshards; k++) {
        uint8_t hb[HDR_BYTES];
        struct hdr h;
        int fd = open(w->paths[k], O_RDWR | O_CLOEXEC);
        if (fd < 0) {
            rc = br__fail(msg, -errno, "reopening %s: %s", w->paths[k], strerror(errno));
            break;
        }
        rc = pread_all(fd, hb, HDR_BYTES, 0);
        if (rc == 0) {
            hdr_decode(hb, &h);
            h.shard_count = w->nshards;
            h.total_samples = w->total;
            hdr_encode(&h, hb);
            rc = pwrite_all(fd, hb, HDR_BYTES, 0);
        }
        if (close(fd) < 0 && rc == 0)
            rc = -errno;
        if (rc)
            rc = br__fail(msg, rc, "rewriting the header of %s: %s", w->paths[k], br_strerror(rc));
    }
    if (samples)
        *samples = w->total;
    if (shards)
        *shards = w->nshards;
    writer_free(w);
    return rc;
}

BR_API void br_pack_abort(br_pack_writer *w)
{
    if (!w)
        return;
    if (w->fd >= 0)
        close(w->fd);
    w->fd = -1;
    for (uint32_t k = 0; k < w->nshards; k++)
        unlink(w->paths[k]);
    writer_free(w);
}
