/* SPDX-License-Identifier: MIT */
/*
 * Writes the seed corpus of one harness: `mkseeds HARNESS DIR`. A few
 * small valid inputs and one of each edge case the parsers must refuse,
 * in the input format the harness's comment describes. The ring seeds are
 * computed from ring/layout.h, so they follow a change of the layout;
 * `make fuzz` runs this into its scratch corpus before every run, and the
 * committed fuzz/corpus/HARNESS/ are its output at the time of the commit
 * (regenerate with `build-fuzz/fuzz/mkseeds HARNESS fuzz/corpus/HARNESS`).
 */
#include <endian.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ring/layout.h"

static const char *out_dir;

struct buf {
    uint8_t b[16384];
    size_t n;
};

static void put(struct buf *b, const void *p, size_t n)
{
    if (b->n + n > sizeof b->b) {
        fprintf(stderr, "mkseeds: seed too large\n");
        exit(1);
    }
    memcpy(b->b + b->n, p, n);
    b->n += n;
}

static void u8(struct buf *b, uint8_t v) { put(b, &v, 1); }
static void u16(struct buf *b, uint16_t v) { u8(b, (uint8_t)v); u8(b, (uint8_t)(v >> 8)); }

/* A part: u16 LE length, then the bytes. */
static void part(struct buf *b, const void *p, size_t n)
{
    u16(b, (uint16_t)n);
    put(b, p, n);
}

static void save(const char *name, const struct buf *b)
{
    char path[4096];
    FILE *f;
    snprintf(path, sizeof path, "%s/%s", out_dir, name);
    f = fopen(path, "wb");
    if (!f || fwrite(b->b, 1, b->n, f) != b->n || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

/* ------------------------------------------------------------ fuzz_ring */

enum { R_HEADER, R_DESC, R_WORKER, R_META, R_DATA };

static void patch(struct buf *b, int region, int index, size_t off, const void *p, size_t n)
{
    u8(b, (uint8_t)region);
    u8(b, (uint8_t)index);
    u16(b, (uint16_t)off);
    u8(b, (uint8_t)n);
    put(b, p, n);
}

static void patch_u32(struct buf *b, int region, int index, size_t off, uint32_t v)
{
    patch(b, region, index, off, &v, 4);
}

static void patch_u64(struct buf *b, int region, int index, size_t off, uint64_t v)
{
    patch(b, region, index, off, &v, 8);
}

/* Geometry bytes: 4 slots, `workers`, batch_size 4, labels, 195-byte slots. */
static void ring_geometry(struct buf *b, uint8_t workers)
{
    const uint8_t g[5] = {3, workers, 3, BR_RING_LABELS, 2};
    put(b, g, sizeof g);
}

/* Publishes seq in its slot (4 slots) as a worker would: descriptor,
 * ids, offsets, labels, then the word. */
static void ring_publish(struct buf *b, uint64_t seq, enum br_phase phase, uint32_t count,
                         uint64_t size)
{
    const int slot = (int)(seq % 4);
    const uint32_t batch_size = 4;
    uint64_t ids[4], offs[5];
    int32_t labels[4];
    patch_u32(b, R_DESC, slot, offsetof(struct br_slot_desc, count), count);
    patch_u64(b, R_DESC, slot, offsetof(struct br_slot_desc, seq), seq);
    patch_u64(b, R_DESC, slot, offsetof(struct br_slot_desc, epoch), seq / 5);
    patch_u64(b, R_DESC, slot, offsetof(struct br_slot_desc, batch), seq % 5);
    patch_u64(b, R_DESC, slot, offsetof(struct br_slot_desc, size), size);
    patch_u32(b, R_DESC, slot, offsetof(struct br_slot_desc, has_offsets), 1);
    for (uint32_t i = 0; i < 4; i++) {
        ids[i] = seq * 4 + i;
        labels[i] = (int32_t)i - 1;
    }
    for (uint32_t i = 0; i <= 4; i++)
        offs[i] = size * (i < count ? i : count) / (count ? count : 1);
    patch(b, R_META, slot, br__meta_ids_offset(), ids, sizeof ids);
    patch(b, R_META, slot, br__meta_offsets_offset(batch_size), offs, sizeof offs);
    patch(b, R_META, slot, br__meta_labels_offset(batch_size), labels, sizeof labels);
    if (phase == BR_FAILED) {
        static const char why[] = "open sample.bin: No such file or directory";
        patch_u32(b, R_DESC, slot, offsetof(struct br_slot_desc, error), (uint32_t)-2);
        patch(b, R_META, slot, br__meta_err_offset(batch_size, 1), why, sizeof why);
    } else {
        patch(b, R_DATA, slot, 0, "batch data", 10);
    }
    patch_u32(b, R_DESC, slot, offsetof(struct br_slot_desc, word),
              br__slot_word(seq / 4, phase));
}

static void seeds_ring(void)
{
    struct buf b;
    static const char why[] = "worker 1 (pid 4242) was killed by signal 9 holding batch 0";

    memset(&b, 0, sizeof b), ring_geometry(&b, 2);
    save("fresh", &b); /* a ring nobody has loaded anything into yet */

    memset(&b, 0, sizeof b), ring_geometry(&b, 2);
    ring_publish(&b, 0, BR_READY, 4, 100);
    save("ready-0", &b);

    memset(&b, 0, sizeof b), ring_geometry(&b, 2);
    ring_publish(&b, 0, BR_READY, 4, 195);
    ring_publish(&b, 1, BR_READY, 3, 1);
    ring_publish(&b, 2, BR_READY, 4, 0);
    save("ready-0-1-2", &b);

    memset(&b, 0, sizeof b), ring_geometry(&b, 1);
    ring_publish(&b, 0, BR_FAILED, 4, 0);
    save("failed-0", &b);

    /* The supervisor's failure record: the consumer fails at seq 1. */
    memset(&b, 0, sizeof b), ring_geometry(&b, 3);
    ring_publish(&b, 0, BR_READY, 4, 10);
    patch_u32(&b, R_HEADER, 0, offsetof(struct br_ring_header, fail_code), (uint32_t)BR_EWORKER);
    patch(&b, R_HEADER, 0, offsetof(struct br_ring_header, fail_msg), why, sizeof why);
    patch_u64(&b, R_HEADER, 0, offsetof(struct br_ring_header, fail_seq), 1);
    save("fail-seq-1", &b);

    /* A consumer died holding seq 5: the next resumes there. */
    memset(&b, 0, sizeof b), ring_geometry(&b, 2);
    patch_u64(&b, R_HEADER, 0, offsetof(struct br_ring_header, claim), 8);
    patch_u64(&b, R_HEADER, 0, offsetof(struct br_ring_header, cursor), 6);
    ring_publish(&b, 5, BR_READY, 4, 50);
    ring_publish(&b, 6, BR_READY, 4, 50);
    save("resume-5", &b);

    /* The last batches of the run: 2 epochs of 5, end_seq 10. */
    memset(&b, 0, sizeof b), ring_geometry(&b, 2);
    patch_u64(&b, R_HEADER, 0, offsetof(struct br_ring_header, cursor), 8);
    ring_publish(&b, 8, BR_READY, 4, 60);
    ring_publish(&b, 9, BR_READY, 3, 45);
    save("end-of-run", &b);

    /* Worker records and observer fields stat reports. */
    memset(&b, 0, sizeof b), ring_geometry(&b, 2);
    patch_u64(&b, R_WORKER, 0, offsetof(struct br_worker_rec, job), BR_JOB_PENDING | 3);
    patch_u32(&b, R_WORKER, 1, offsetof(struct br_worker_rec, pid), 1);
    patch_u64(&b, R_HEADER, 0, offsetof(struct br_ring_header, consumer_wait_since), 1);
    patch_u64(&b, R_HEADER, 0, offsetof(struct br_ring_header, consumer), 1);
    save("workers", &b);
}

/* --------------------------------------------------------- datasets */

static void seeds_records(void)
{
    struct buf b;
    uint8_t data[4096 * 2], labels[32];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)(i * 7);
    for (size_t i = 0; i < sizeof labels; i++)
        labels[i] = (uint8_t)i;

    /* 4 records of 16 bytes, labels, batches of 3. */
    memset(&b, 0, sizeof b), u16(&b, 16), u8(&b, 1 | 2 << 2), part(&b, data, 64);
    put(&b, labels, 16);
    save("valid-labels", &b);
    /* One record, shuffled, without labels. */
    memset(&b, 0, sizeof b), u16(&b, 5), u8(&b, 1 << 5), part(&b, data, 5);
    save("one-record", &b);
    /* O_DIRECT: records a multiple of 4096 bytes. */
    memset(&b, 0, sizeof b), u16(&b, 4096), u8(&b, 2), part(&b, data, 4096);
    save("direct", &b);
    memset(&b, 0, sizeof b), u16(&b, 100), u8(&b, 2), part(&b, data, 200);
    save("direct-unaligned", &b);
    memset(&b, 0, sizeof b), u16(&b, 3), u8(&b, 0), part(&b, data, 10);
    save("not-a-multiple", &b);
    memset(&b, 0, sizeof b), u16(&b, 0), u8(&b, 0), part(&b, data, 10);
    save("record-bytes-0", &b);
    memset(&b, 0, sizeof b), u16(&b, 8), u8(&b, 0), part(&b, data, 0);
    save("empty", &b);
    memset(&b, 0, sizeof b), u16(&b, 8), u8(&b, 1), part(&b, data, 32);
    put(&b, labels, 15);
    save("labels-short", &b);
}

static void entry(uint8_t *at, uint64_t off, uint64_t len)
{
    off = htole64(off), len = htole64(len);
    memcpy(at, &off, 8), memcpy(at + 8, &len, 8);
}

static void seeds_indexed(void)
{
    struct buf b;
    uint8_t data[3000], index[16 * 6], labels[24];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)(i * 13 + 1);
    for (size_t i = 0; i < sizeof labels; i++)
        labels[i] = (uint8_t)(100 - i);
    /* Out of order, with a gap, an empty sample and one at the very end. */
    entry(index, 100, 40);
    entry(index + 16, 0, 10);
    entry(index + 32, 60, 0);
    entry(index + 48, 2090, 910);
    entry(index + 64, 2000, 100);
    entry(index + 80, 7, 2993);

    memset(&b, 0, sizeof b), u8(&b, 1 | 3 << 2), part(&b, data, sizeof data);
    part(&b, index, sizeof index), put(&b, labels, 24);
    save("valid-labels", &b);
    /* O_DIRECT: unaligned entries, a partial last block. */
    memset(&b, 0, sizeof b), u8(&b, 2 | 1 << 2 | 1 << 5), part(&b, data, sizeof data);
    part(&b, index, sizeof index);
    save("direct", &b);
    memset(&b, 0, sizeof b), u8(&b, 0), part(&b, data, 50), part(&b, index, 32);
    save("past-the-end", &b);
    entry(index, 1, UINT64_MAX);
    memset(&b, 0, sizeof b), u8(&b, 0), part(&b, data, 50), part(&b, index, 16);
    save("length-wraps", &b);
    entry(index, 0, 50);
    entry(index + 16, 0, 50);
    memset(&b, 0, sizeof b), u8(&b, 1 << 6), part(&b, data, 50), part(&b, index, 32);
    save("same-sample-twice", &b);
    memset(&b, 0, sizeof b), u8(&b, 0), part(&b, data, 50), part(&b, index, 17);
    save("not-whole-entries", &b);
    memset(&b, 0, sizeof b), u8(&b, 0), part(&b, data, 0), part(&b, index, 0);
    save("empty", &b);
    memset(&b, 0, sizeof b), u8(&b, 1), part(&b, data, 50), part(&b, index, 32);
    put(&b, labels, 12);
    save("labels-long", &b);
}

static void list_seed(const char *name, uint8_t opts, const char *text, size_t len,
                      size_t labels)
{
    struct buf b;
    static const uint8_t lab[64] = {1, 0, 0, 0, 2, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f};
    memset(&b, 0, sizeof b);
    u8(&b, opts);
    part(&b, text, len);
    put(&b, lab, labels);
    save(name, &b);
}

#define LIST_SEED(name, opts, text, labels) list_seed(name, opts, text, sizeof text - 1, labels)

static void seeds_files(void)
{
    LIST_SEED("valid", 2 << 2, "a\nb\nc\nd d\nsub/e\n", 0);
    LIST_SEED("crlf-no-final-newline", 1 | 1 << 2, "c\r\nb\r\na", 12);
    LIST_SEED("shuffled-repeats", 1 << 5 | 3 << 2, "b\nb\nc\na\nsub/e\nc\n", 0);
    LIST_SEED("empty-line", 0, "a\n\nb\n", 0);
    LIST_SEED("directory", 0, "a\nsub\n", 0);
    LIST_SEED("missing", 0, "a\nnot-there\n", 0);
    LIST_SEED("nul-byte", 0, "a\nb\0c\n", 0);
    LIST_SEED("empty", 0, "", 0);
    LIST_SEED("labels-short", 1, "a\nb\n", 4);
    LIST_SEED("direct", 2, "a\n", 0);
}

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        void (*make)(void);
    } harnesses[] = {
        {"fuzz_ring", seeds_ring},
        {"fuzz_records", seeds_records},
        {"fuzz_indexed", seeds_indexed},
        {"fuzz_files", seeds_files},
    };
    if (argc != 3) {
        fprintf(stderr, "usage: mkseeds HARNESS DIR\n");
        return 2;
    }
    out_dir = argv[2];
    for (size_t i = 0; i < sizeof harnesses / sizeof harnesses[0]; i++)
        if (!strcmp(argv[1], harnesses[i].name)) {
            harnesses[i].make();
            return 0;
        }
    fprintf(stderr, "mkseeds: no harness %s\n", argv[1]);
    return 2;
}
