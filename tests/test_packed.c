/* SPDX-License-Identifier: MIT */
/*
 * The packed format end to end, on real files in a fresh temporary
 * directory: br_pack_* writes (indexed and records layouts, labels, per-
 * sample metadata, several shards), br_pack_verify checks, and
 * br_dataset_open_packed serves byte-exact samples with no size given,
 * with 0 and 2 workers. Then damage: EVERY single-bit flip of a whole
 * small shard (header, every body block, block table) must make
 * br_pack_verify fail naming the region that holds the bit; a missing,
 * foreign or truncated shard must fail the open; a shard cut short after
 * the open must fail the batch naming the shard. Token files packed as a
 * tokens layout serve the same batches as the files, and every bit flip of
 * a tokens shard is found.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test_util.h"

#define N_VAR 300u
#define N_REC 120u
#define REC_BYTES 40u

static char dir[4096];

static size_t var_len(uint64_t id)
{
    return (size_t)(id * 7u % 61u); /* 0 .. 60 bytes, some empty */
}

static uint8_t byte_of(uint64_t id, size_t j)
{
    return (uint8_t)(id * 131u + j * 17u + 1u);
}

static int32_t label_of(uint64_t id)
{
    return (int32_t)(id * 2654435761u) ^ 0x5a5a;
}

static void meta_of(uint64_t id, char *buf, size_t cap, size_t *len)
{
    int n = snprintf(buf, cap, "meta-%" PRIu64, id * 3u);
    *len = id % 5u == 0 ? 0 : (size_t)n; /* every fifth empty */
}

static void path_in(char *buf, size_t cap, const char *name)
{
    snprintf(buf, cap, "%s/%s", dir, name);
}

/* Writes the variable-size dataset into dir/NAME. */
static void pack_var(const char *name, uint64_t shard_bytes, uint32_t block_bytes,
                     uint32_t *shards)
{
    char out[4200];
    br_pack_writer *w = NULL;
    uint64_t shape[2] = {1, 60}, n = 0;
    path_in(out, sizeof out, name);
    int rc = br_pack_open(&w, out, shard_bytes, 0, block_bytes, BR_PACK_LABELS | BR_PACK_META);
    if (rc)
        fail_msg("br_pack_open: %s", br_last_error(NULL));
    assert_int_equal(br_pack_set_dtype(w, "uint8", 2, shape), 0);
    for (uint64_t id = 0; id < N_VAR; id++) {
        uint8_t buf[64];
        char meta[32];
        size_t ml;
        for (size_t j = 0; j < var_len(id); j++)
            buf[j] = byte_of(id, j);
        meta_of(id, meta, sizeof meta, &ml);
        rc = br_pack_add(w, buf, var_len(id), label_of(id), meta, ml);
        if (rc)
            fail_msg("br_pack_add %" PRIu64 ": %s", id, br_last_error(NULL));
    }
    rc = br_pack_close(w, &n, shards);
    if (rc)
        fail_msg("br_pack_close: %s", br_last_error(NULL));
    assert_int_equal(n, N_VAR);
}

static int group_setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "%s/br_packed_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    return mkdtemp(dir) ? 0 : -1;
}

static int group_teardown(void **state)
{
    char cmd[4200];
    (void)state;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Serves every sample of ds once with `workers`, checking each. */
static void serve_all(br_dataset *ds, uint32_t workers, bool records)
{
    br_options opt;
    br_batch b;
    br_gen *g = NULL;
    uint64_t seen = 0;
    int rc;

    br_options_init(&opt);
    opt.batch_size = 16;
    opt.workers = workers;
    opt.epochs = 1;
    opt.shuffle = true;
    opt.seed = 3;
    rc = br_open_dataset(&g, ds, NULL, 0, &opt);
    if (rc)
        fail_msg("br_open_dataset: %s: %s", br_err_name(rc), br_last_error(NULL));
    tu_track(g);
    while ((rc = br_next(g, &b)) == 0) {
        assert_non_null(b.offsets);
        assert_int_equal(b.offsets[b.count], b.size);
        for (uint32_t i = 0; i < b.count; i++) {
            uint64_t id = b.ids[i];
            size_t len = records ? REC_BYTES : var_len(id);
            const uint8_t *p = (const uint8_t *)b.data + b.offsets[i];
            assert_int_equal(b.offsets[i + 1] - b.offsets[i], len);
            for (size_t j = 0; j < len; j++)
                if (p[j] != byte_of(id, j))
                    fail_msg("sample %" PRIu64 " byte %zu: %u, want %u", id, j, p[j],
                             byte_of(id, j));
            if (!records) {
                assert_non_null(b.labels);
                assert_int_equal(b.labels[i], label_of(id));
            }
        }
        seen += b.count;
    }
    if (rc != BR_EOF)
        fail_msg("br_next: %s: %s", br_err_name(rc), br_last_error(g));
    assert_int_equal(seen, records ? N_REC : N_VAR);
    assert_int_equal(tu_close(g), 0);
}

static void test_packed_indexed_round_trip(void **state)
{
    char path[4200];
    br_dataset *ds = NULL;
    br_dataset_info info;
    uint32_t shards = 0;
    (void)state;

    pack_var("var", 2048, 256, &shards);
    assert_true(shards >= 5); /* 9 KiB of samples in 2 KiB shards */
    path_in(path, sizeof path, "var");
    if (br_pack_verify(path, NULL))
        fail_msg("br_pack_verify: %s", br_last_error(NULL));
    if (br_dataset_open_packed(&ds, path, 0))
        fail_msg("br_dataset_open_packed: %s", br_last_error(NULL));
    assert_int_equal(br_dataset_info_get(ds, &info), 0);
    assert_int_equal(info.samples, N_VAR);
    assert_int_equal(info.max_sample_bytes, 60);
    assert_true(info.has_labels);
    assert_string_equal(info.layout, "packed");
    for (uint64_t id = 0; id < N_VAR; id++) {
        const void *m;
        size_t ml, want_len;
        char want[32];
        assert_int_equal(br_dataset_meta_get(ds, id, &m, &ml), 0);
        meta_of(id, want, sizeof want, &want_len);
        assert_int_equal(ml, want_len);
        assert_memory_equal(m, want, ml);
    }
    assert_int_equal(br_dataset_meta_get(ds, N_VAR, &(const void *){NULL}, &(size_t){0}), -EINVAL);
    serve_all(ds, 0, false);
    serve_all(ds, 2, false);
    assert_int_equal(br_dataset_close(ds), 0);
    /* A glob pattern of the same shards opens the same dataset. */
    snprintf(path, sizeof path, "%s/var/var-*.brp", dir);
    if (br_dataset_open_packed(&ds, path, 0))
        fail_msg("br_dataset_open_packed(pattern): %s", br_last_error(NULL));
    assert_int_equal(br_dataset_close(ds), 0);
}

static void test_packed_records_round_trip(void **state)
{
    char path[4200];
    br_pack_writer *w = NULL;
    br_dataset *ds = NULL;
    br_dataset_info info;
    uint8_t buf[REC_BYTES];
    (void)state;

    path_in(path, sizeof path, "rec");
    assert_int_equal(br_pack_open(&w, path, 1500, REC_BYTES, 0, 0), 0);
    for (uint64_t id = 0; id < N_REC; id++) {
        for (size_t j = 0; j < REC_BYTES; j++)
            buf[j] = byte_of(id, j);
        assert_int_equal(br_pack_add(w, buf, REC_BYTES, 0, NULL, 0), 0);
    }
    /* A records dataset refuses a sample of another size. */
    assert_int_equal(br_pack_add(w, buf, REC_BYTES - 1, 0, NULL, 0), -EINVAL);
    assert_non_null(strstr(br_last_error(NULL), "40"));
    assert_int_equal(br_pack_close(w, NULL, NULL), 0);
    assert_int_equal(br_pack_verify(path, NULL), 0);
    if (br_dataset_open_packed(&ds, path, 0))
        fail_msg("br_dataset_open_packed: %s", br_last_error(NULL));
    assert_int_equal(br_dataset_info_get(ds, &info), 0);
    assert_int_equal(info.samples, N_REC);
    assert_false(info.has_labels);
    assert_int_equal(br_dataset_meta_get(ds, 0, &(const void *){NULL}, &(size_t){0}), -EINVAL);
    serve_all(ds, 0, true);
    serve_all(ds, 2, true);
    assert_int_equal(br_dataset_close(ds), 0);
    /* Packing into a directory that holds shards is refused. */
    assert_int_equal(br_pack_open(&w, path, 0, 0, 0, 0), -EEXIST);
    assert_null(w);
}

static uint64_t file_size(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return (uint64_t)st.st_size;
}

static void flip(const char *path, uint64_t byte, unsigned bit)
{
    int fd = open(path, O_RDWR);
    uint8_t c;
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, &c, 1, (off_t)byte), 1);
    c ^= (uint8_t)(1u << bit);
    assert_int_equal(pwrite(fd, &c, 1, (off_t)byte), 1);
    close(fd);
}

/* Every bit of a one-shard dataset (header, every block, the table), one
 * at a time: verify fails, naming the region that holds it; restored, it
 * passes again. */
/* Flips every bit of the one-shard dataset d (its shard `shard`, `size`
 * bytes, `blocks` body blocks of block_bytes) in turn: br_pack_verify must
 * fail each time naming the region that holds the bit, and pass again once
 * it is restored. */
static void flip_every_bit(const char *d, const char *shard, uint64_t size, uint64_t blocks,
                           uint64_t block_bytes)
{
    br_pack_fault f;
    uint64_t flips = 0;
    for (uint64_t byte = 0; byte < size; byte++) {
        int64_t want_block = byte < 256                 ? BR_PACK_BLOCK_HEADER
                             : byte >= size - 8 * blocks ? BR_PACK_BLOCK_TABLE
                                                        : (int64_t)((byte - 256) / block_bytes);
        for (unsigned bit = 0; bit < 8; bit++) {
            flip(shard, byte, bit);
            int rc = br_pack_verify(d, &f);
            if (rc != -EBADMSG || f.block != want_block || f.shard != 0 || byte < f.lo ||
                byte >= f.hi)
                fail_msg("bit %u of byte %" PRIu64 ": verify returned %d, block %" PRId64
                         " [%" PRIu64 ", %" PRIu64 "), want block %" PRId64 ": %s",
                         bit, byte, rc, f.block, f.lo, f.hi, want_block, br_last_error(NULL));
            if (want_block >= 0 && !strstr(br_last_error(NULL), "block"))
                fail_msg("the message names no block: %s", br_last_error(NULL));
            flip(shard, byte, bit);
            flips++;
        }
    }
    assert_int_equal(flips, size * 8);
    assert_int_equal(br_pack_verify(d, NULL), 0);
    print_message("verify: all %" PRIu64 " single-bit flips of a %" PRIu64
                  "-byte shard detected and named\n",
                  flips, size);
}

static void test_packed_verify_every_bit_flip(void **state)
{
    char d[4200], shard[4300];
    br_pack_writer *w = NULL;
    uint64_t size;
    (void)state;

    path_in(d, sizeof d, "small");
    assert_int_equal(br_pack_open(&w, d, 0, 0, 64, BR_PACK_LABELS), 0);
    for (uint64_t id = 0; id < 12; id++) {
        uint8_t buf[64];
        for (size_t j = 0; j < var_len(id); j++)
            buf[j] = byte_of(id, j);
        assert_int_equal(br_pack_add(w, buf, var_len(id), label_of(id), NULL, 0), 0);
    }
    assert_int_equal(br_pack_close(w, NULL, NULL), 0);
    snprintf(shard, sizeof shard, "%s/small-00000.brp", d);
    size = file_size(shard);
    assert_int_equal(br_pack_verify(d, NULL), 0);
    /* 256 header bytes; a body of the data, 13 x 8 index and 12 x 4
     * label bytes in blocks of 64; the table, 8 bytes a block. */
    uint64_t body = 13 * 8 + 12 * 4, blocks;
    for (uint64_t id = 0; id < 12; id++)
        body += var_len(id);
    blocks = (body + 63) / 64;
    assert_int_equal(size, 256 + body + 8 * blocks);
    flip_every_bit(d, shard, size, blocks, 64);
}

/* Token t of token file f: consecutive values, so a window shows whether
 * its tokens are consecutive ones of one file. */
static uint16_t tok(uint32_t f, uint64_t t)
{
    return (uint16_t)(f * 5000u + t);
}

/* An llm.c .bin shard of n tokens of file f. */
static void write_llmc(const char *path, uint32_t f, uint32_t n)
{
    uint8_t header[1024] = {0};
    const uint32_t words[3] = {20240520u, 1u, n};
    FILE *out = fopen(path, "wb");
    assert_non_null(out);
    for (int i = 0; i < 3; i++)
        for (int b = 0; b < 4; b++)
            header[4 * i + b] = (uint8_t)(words[i] >> (8 * b));
    assert_int_equal(fwrite(header, 1, sizeof header, out), sizeof header);
    for (uint32_t t = 0; t < n; t++) {
        uint16_t v = tok(f, t);
        uint8_t le[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
        assert_int_equal(fwrite(le, 1, 2, out), 2);
    }
    assert_int_equal(fclose(out), 0);
}

/* Every batch of a and b, opened alike, byte for byte; returns batches. */
static uint64_t same_batches(br_dataset *a, br_dataset *b, uint32_t workers, bool shuffle)
{
    br_options opt;
    br_gen *ga = NULL, *gb = NULL;
    br_batch ba, bb;
    uint64_t n = 0;
    int ra, rb;

    br_options_init(&opt);
    opt.batch_size = 5;
    opt.workers = workers;
    opt.epochs = 1;
    opt.shuffle = shuffle;
    opt.seed = 17;
    assert_int_equal(br_open_dataset(&ga, a, NULL, 0, &opt), 0);
    tu_track(ga);
    assert_int_equal(br_open_dataset(&gb, b, NULL, 0, &opt), 0);
    tu_track(gb);
    while ((ra = br_next(ga, &ba)) == 0) {
        rb = br_next(gb, &bb);
        if (rb)
            fail_msg("the files gave a batch the pack did not: %s", br_last_error(gb));
        assert_int_equal(ba.count, bb.count);
        assert_int_equal(ba.size, bb.size);
        assert_memory_equal(ba.ids, bb.ids, ba.count * sizeof *ba.ids);
        assert_memory_equal(ba.data, bb.data, ba.size);
        n++;
    }
    assert_int_equal(ra, BR_EOF);
    assert_int_equal(br_next(gb, &bb), BR_EOF);
    tu_close(ga);
    tu_close(gb);
    return n;
}

/* Token files packed with BR_PACK_TOKENS (batchring pack --tokens): with
 * shards large enough for each file, the packed dataset serves exactly the
 * batches the files do (in order and shuffled, inline and by workers) and
 * needs no token width; with small shards every window is still
 * consecutive tokens of one file; a tokens pack is refused by
 * br_dataset_open_packed (it needs T) and a records pack by
 * br_dataset_open_packed_tokens; every single-bit flip of a tokens shard
 * is found by br_pack_verify. */
static void test_packed_tokens(void **state)
{
    const uint32_t ntok[] = {37, 100, 5};
    char files[4200], d[4200], shard[4300], name[64];
    br_dataset *orig = NULL, *packed = NULL;
    br_pack_writer *w = NULL;
    br_dataset_info info;
    uint64_t tokens = 0, batches;
    uint32_t shards = 0;
    (void)state;

    for (uint32_t f = 0; f < 3; f++) {
        char path[4300];
        snprintf(name, sizeof name, "tok-%u.bin", f);
        path_in(path, sizeof path, name);
        write_llmc(path, f, ntok[f]);
    }
    path_in(files, sizeof files, "tok-*.bin");
    path_in(d, sizeof d, "tokpack");
    assert_int_equal(br_pack_open(&w, d, 0, 2, 0, BR_PACK_TOKENS), 0);
    if (br_pack_add_tokens(w, files, 0))
        fail_msg("br_pack_add_tokens: %s", br_last_error(NULL));
    assert_int_equal(br_pack_close(w, &tokens, &shards), 0);
    assert_int_equal(tokens, 142);
    assert_int_equal(shards, 3);
    assert_int_equal(br_pack_verify(d, NULL), 0);
    assert_int_equal(br_dataset_open_tokens(&orig, files, 8, 0, 0), 0);
    if (br_dataset_open_packed_tokens(&packed, d, 8, 0))
        fail_msg("br_dataset_open_packed_tokens: %s", br_last_error(NULL));
    assert_int_equal(br_dataset_info_get(packed, &info), 0);
    assert_int_equal(info.samples, 4 + 12 + 0);
    assert_int_equal(info.shards, 3);
    for (uint32_t workers = 0; workers <= 2; workers += 2)
        for (int shuffle = 0; shuffle <= 1; shuffle++) {
            batches = same_batches(orig, packed, workers, shuffle);
            assert_int_equal(batches, 4);
        }
    br_dataset_close(packed);
    br_dataset_close(orig);

    /* The wrong opener for each kind of pack. */
    assert_int_equal(br_dataset_open_packed(&packed, d, 0), -EINVAL);
    tu_assert_contains(br_last_error(NULL), "br_dataset_open_packed_tokens");
    pack_var("notokens", 0, 0, NULL);
    path_in(shard, sizeof shard, "notokens");
    assert_int_equal(br_dataset_open_packed_tokens(&packed, shard, 8, 0), -EINVAL);
    tu_assert_contains(br_last_error(NULL), "holds no tokens");
    /* A writer of 4-byte tokens refuses llm.c's 2-byte ones. */
    path_in(shard, sizeof shard, "tok4");
    assert_int_equal(br_pack_open(&w, shard, 0, 4, 0, BR_PACK_TOKENS), 0);
    assert_int_equal(br_pack_add_tokens(w, files, 0), -EINVAL);
    tu_assert_contains(br_last_error(NULL), "are 2 bytes");
    br_pack_abort(w);

    /* Shards of at most 20 tokens (256 + 40 + 8 bytes): the files split,
     * every window consecutive tokens of one file. */
    path_in(d, sizeof d, "toksmall");
    assert_int_equal(br_pack_open(&w, d, 256 + 40 + 8, 2, 0, BR_PACK_TOKENS), 0);
    assert_int_equal(br_pack_add_tokens(w, files, 0), 0);
    assert_int_equal(br_pack_close(w, &tokens, &shards), 0);
    assert_int_equal(tokens, 142);
    assert_int_equal(shards, 2 + 5 + 1);
    assert_int_equal(br_pack_verify(d, NULL), 0);
    assert_int_equal(br_dataset_open_packed_tokens(&packed, d, 4, 0), 0);
    {
        br_options opt;
        br_gen *g = NULL;
        br_batch b;
        uint64_t seen = 0;
        int rc;
        br_options_init(&opt);
        opt.batch_size = 3;
        opt.workers = 1;
        opt.epochs = 1;
        opt.shuffle = true;
        assert_int_equal(br_open_dataset(&g, packed, NULL, 0, &opt), 0);
        tu_track(g);
        while ((rc = br_next(g, &b)) == 0)
            for (uint32_t i = 0; i < b.count; i++, seen++) {
                const int32_t *in = (const int32_t *)b.data + i * 4;
                const int32_t *tg = (const int32_t *)b.data + (b.count + i) * 4;
                for (uint32_t t = 0; t < 4; t++)
                    if (tg[t] != in[t] + 1 || (t && in[t] != in[t - 1] + 1))
                        fail_msg("window %" PRIu64 " is not consecutive tokens of one file",
                                 b.ids[i]);
            }
        assert_int_equal(rc, BR_EOF);
        /* Pieces of 20, 17 | 20 x 5 | 5 tokens: 4 + 4 + 4 x 5 + 1 windows. */
        assert_int_equal(seen, 4 + 4 + 20 + 1);
        tu_close(g);
    }
    br_dataset_close(packed);

    /* Every bit of a one-shard tokens pack, in blocks of 16. */
    path_in(d, sizeof d, "tokflip");
    snprintf(shard, sizeof shard, "%s/tokflip-00000.brp", d);
    path_in(files, sizeof files, "tok-0.bin");
    assert_int_equal(br_pack_open(&w, d, 0, 2, 16, BR_PACK_TOKENS), 0);
    assert_int_equal(br_pack_add_tokens(w, files, 0), 0);
    assert_int_equal(br_pack_close(w, NULL, NULL), 0);
    assert_int_equal(file_size(shard), 256 + 74 + 8 * 5);
    flip_every_bit(d, shard, file_size(shard), 5, 16);
}

static void expect_open_fails(const char *path, const char *needle)
{
    br_dataset *ds = NULL;
    int rc = br_dataset_open_packed(&ds, path, 0);
    if (rc == 0 || !strstr(br_last_error(NULL), needle))
        fail_msg("open %s: rc %d, message '%s', want one with '%s'", path, rc,
                 br_last_error(NULL), needle);
    assert_null(ds);
}

static void test_packed_bad_shards(void **state)
{
    char d[4200], a[4300], b[4300], cmd[20000];
    uint32_t shards = 0;
    (void)state;

    pack_var("bad", 2048, 0, &shards);
    assert_true(shards >= 3);
    path_in(d, sizeof d, "bad");
    /* A flipped index byte: open checks the index's blocks. */
    snprintf(a, sizeof a, "%s/bad-00001.brp", d);
    {
        br_dataset *ds = NULL;
        assert_int_equal(br_dataset_open_packed(&ds, d, 0), 0);
        br_dataset_close(ds);
    }
    /* A missing shard. */
    snprintf(b, sizeof b, "%s/gone.tmp", d);
    assert_int_equal(rename(a, b), 0);
    expect_open_fails(d, "shard");
    assert_int_equal(br_pack_verify(d, NULL), -EBADMSG);
    assert_int_equal(rename(b, a), 0);
    /* A shard of another dataset under this name. */
    pack_var("other", 1024, 0, NULL);
    snprintf(cmd, sizeof cmd, "cp '%s' '%s.keep' && cp '%s/other/other-00001.brp' '%s'", a, a,
             dir, a);
    assert_int_equal(system(cmd), 0);
    expect_open_fails(d, "bad-00001.brp");
    snprintf(cmd, sizeof cmd, "mv '%s.keep' '%s'", a, a);
    assert_int_equal(system(cmd), 0);
    /* A truncated shard. */
    assert_int_equal(truncate(a, (off_t)file_size(a) - 1), 0);
    expect_open_fails(d, "bad-00001.brp");
    /* Not a packed file. */
    expect_open_fails(dir, "no .brp");
    /* A FIFO named as a shard: refused, not waited on for a writer. */
    path_in(d, sizeof d, "fifo");
    assert_int_equal(mkdir(d, 0700), 0);
    snprintf(a, sizeof a, "%s/fifo-00000.brp", d);
    assert_int_equal(mkfifo(a, 0600), 0);
    expect_open_fails(d, "fifo-00000.brp is not a regular file");
    assert_int_equal(br_pack_verify(d, NULL), -EINVAL);
    tu_assert_contains(br_last_error(NULL), "not a regular file");
    assert_int_equal(br_dataset_open_packed(NULL, d, 0), -EINVAL);
}

/* A shard cut short after the open: the batch fails naming the shard,
 * never a SIGBUS or wrong data. */
static void test_packed_truncated_mid_run(void **state)
{
    char d[4200], shard[4300];
    br_dataset *ds = NULL;
    br_options opt;
    br_batch b;
    br_gen *g = NULL;
    int rc;
    (void)state;

    pack_var("trunc", 1u << 20, 0, NULL);
    path_in(d, sizeof d, "trunc");
    snprintf(shard, sizeof shard, "%s/trunc-00000.brp", d);
    assert_int_equal(br_dataset_open_packed(&ds, d, 0), 0);
    assert_int_equal(truncate(shard, 300), 0);
    br_options_init(&opt);
    opt.batch_size = 64;
    opt.workers = 0;
    opt.epochs = 1;
    assert_int_equal(br_open_dataset(&g, ds, NULL, 0, &opt), 0);
    tu_track(g);
    do
        rc = br_next(g, &b);
    while (rc == 0);
    assert_int_equal(rc, BR_ELOADER);
    if (!strstr(br_last_error(g), "trunc-00000.brp"))
        fail_msg("the message does not name the shard: %s", br_last_error(g));
    tu_close(g);
    br_dataset_close(ds);
}

/* Packs 70 shards of one 8-byte record, id ^ junk in every byte. */
static void pack_one_per_shard(const char *name, uint8_t junk)
{
    char out[4200];
    br_pack_writer *w = NULL;
    uint32_t shards = 0;
    path_in(out, sizeof out, name);
    /* One record fills a shard of 272 bytes: header 256, data 8, table 8. */
    assert_int_equal(br_pack_open(&w, out, 272, 8, 0, 0), 0);
    for (uint64_t id = 0; id < 70; id++) {
        uint8_t rec[8];
        memset(rec, (int)((uint8_t)id ^ junk), sizeof rec);
        assert_int_equal(br_pack_add(w, rec, sizeof rec, 0, NULL, 0), 0);
    }
    assert_int_equal(br_pack_close(w, NULL, &shards), 0);
    assert_int_equal(shards, 70);
}

/* One epoch in order, inline (the trainer's reader keeps its shards open
 * between runs); the first error's code, *good the samples right before. */
static int run_inline(br_dataset *ds, uint64_t *good, char *msg, size_t cap)
{
    br_options opt;
    br_batch b;
    br_gen *g = NULL;
    int rc;
    br_options_init(&opt);
    opt.batch_size = 1;
    opt.workers = 0;
    opt.epochs = 1;
    *good = 0;
    assert_int_equal(br_open_dataset(&g, ds, NULL, 0, &opt), 0);
    tu_track(g);
    while ((rc = br_next(g, &b)) == 0) {
        const uint8_t *p = b.data;
        for (size_t j = 0; j < 8; j++)
            if (p[j] != (uint8_t)b.ids[0])
                fail_msg("sample %llu byte %zu is %u, not its own", (unsigned long long)b.ids[0],
                         j, p[j]);
        (*good)++;
    }
    snprintf(msg, cap, "%s", br_last_error(g));
    tu_close(g);
    return rc;
}

/* 70 shards, more than the 64 a reader keeps open: a first epoch opens
 * them all and closes shard 0 again; then a same-size shard of another
 * dataset (the same header but for its checksums, other data) is moved
 * over shard 0. Reopened by its path, it must be refused naming it, not
 * served unchecked. */
static void test_packed_replaced_after_eviction(void **state)
{
    char d[4200], shard[4300], foreign[4300], msg[1024];
    br_dataset *ds = NULL;
    uint64_t good;
    int rc;
    (void)state;

    pack_one_per_shard("evict", 0);
    pack_one_per_shard("foreign", 0xff);
    path_in(d, sizeof d, "evict");
    snprintf(shard, sizeof shard, "%s/evict-00000.brp", d);
    snprintf(foreign, sizeof foreign, "%s/foreign/foreign-00000.brp", dir);
    assert_int_equal(file_size(shard), file_size(foreign));
    assert_int_equal(br_dataset_open_packed(&ds, d, 0), 0);
    assert_int_equal(run_inline(ds, &good, msg, sizeof msg), BR_EOF);
    assert_int_equal(good, 70);
    assert_int_equal(rename(foreign, shard), 0);
    rc = run_inline(ds, &good, msg, sizeof msg);
    if (rc != BR_ELOADER)
        fail_msg("expected BR_ELOADER, got %s: %s", br_err_name(rc), msg);
    assert_int_equal(good, 0);
    tu_assert_contains(msg, shard);
    tu_assert_contains(msg, "was replaced by another file");
    br_dataset_close(ds);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_packed_indexed_round_trip, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_packed_records_round_trip, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_packed_verify_every_bit_flip, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_packed_bad_shards, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_packed_truncated_mid_run, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_packed_replaced_after_eviction, tu_setup,
                                        tu_teardown),
        cmocka_unit_test_setup_teardown(test_packed_tokens, tu_setup, tu_teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
