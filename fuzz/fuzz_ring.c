/* SPDX-License-Identifier: MIT */
/*
 * fuzz_ring: br_ring_status_get, br_attach, br_next and br_close on a named ring
 * whose shared memory a hostile or buggy writer has damaged.
 *
 * Why: an attached consumer and `batchring stat` map memory that any
 * process of the same user can write. Every header field, slot descriptor
 * and worker record they read must be checked before it is used; a crash
 * or a read outside the ring here is a consumer that another process can
 * bring down (issue 10, defects 5 and 9 were of this kind).
 *
 * How: random bytes would almost never pass the header check, so each
 * input starts from a valid, live ring made by the library itself
 * (br__ring_create with a name: fallocated, populated, and this process
 * holds the producer's lock, as a serving producer does) for a small
 * geometry chosen by the input, and then overwrites parts of it. Input:
 *
 *   byte 0..4  nslots 1..8, nworkers 0..3, batch_size 1..8, flags
 *              (BR_RING_KNOWN_FLAGS: labels, drop_last, guard pages),
 *              slot_bytes 1 + 97 x b
 *   then patches, each: region (u8), index (u8), offset (u16 LE),
 *              length (u8), that many bytes
 *
 * A patch's offset counts from the start of its region: 0 header, 1 the
 * descriptor of slot index % nslots, 2 the record of worker index, 3 the
 * metadata of a slot, 4 the data of a slot, 5 the object (index is then
 * the high byte). Patches are clipped at the end of the object. Seeds
 * (fuzz/mkseeds.c) publish READY and FAILED slots, so br_next reaches its
 * checks of a descriptor.
 *
 * Oracles besides ASan/UBSan/LSan: every call returns 0 or a negative
 * code with a message; a batch br_next returns lies inside the consumer's
 * mapping of the ring, with count <= batch_size and size <= slot_bytes,
 * and consecutive seqs (growing ones where hold >= 2); the slot counts
 * of br_ring_status_get add up; no descriptor, mapping or /dev/shm object
 * outlives an input.
 */
#include <stdbool.h>
#include <sys/mman.h>

#include "fuzz/fuzz_util.h"
#include "ring/error.h"
#include "ring/ring.h"

/* The consumer's mapping of the ring `name`: the /dev/shm mappings of that
 * object outside the producer's [producer, producer + bytes). A guard-mode
 * ring's mapping is split by its PROT_NONE pages into many entries of
 * /proc/self/maps: the range runs from the first to the last of them. */
static bool consumer_map(const char *name, const void *producer, size_t bytes, uintptr_t *lo,
                         uintptr_t *hi)
{
    char line[512], want[300];
    const uintptr_t p0 = (uintptr_t)producer, p1 = p0 + bytes;
    bool found = false;
    FILE *f = fopen("/proc/self/maps", "re");
    FUZZ_CHECK(f != NULL, "open /proc/self/maps: %s", strerror(errno));
    snprintf(want, sizeof want, "/dev/shm%s\n", name);
    while (fgets(line, sizeof line, f)) {
        unsigned long a, b;
        size_t n = strlen(line), w = strlen(want);
        if (n < w || strcmp(line + n - w, want) != 0 || sscanf(line, "%lx-%lx", &a, &b) != 2)
            continue;
        if (a >= p0 && b <= p1)
            continue;
        if (!found || a < *lo)
            *lo = a;
        if (!found || b > *hi)
            *hi = b;
        found = true;
    }
    fclose(f);
    return found;
}

static bool inside(uintptr_t lo, uintptr_t hi, const void *p, uint64_t len)
{
    uintptr_t a = (uintptr_t)p;
    return a >= lo && a <= hi && len <= hi - a;
}

/* Checks a batch br_next returned and reads every byte it points to. */
static void check_batch(const char *name, const struct br_ring *r, const br_batch *b)
{
    const struct br_ring_header *h = r->hdr;
    uintptr_t lo = 0, hi = 0;
    volatile uint8_t sink = 0;

    FUZZ_CHECK(consumer_map(name, r->base, r->bytes, &lo, &hi), "no consumer mapping of %s", name);
    FUZZ_CHECK(b->count <= h->batch_size, "batch %llu has count %u > batch_size %u",
               (unsigned long long)b->seq, b->count, h->batch_size);
    FUZZ_CHECK(b->size <= h->slot_bytes, "batch %llu has size %zu > slot_bytes %llu",
               (unsigned long long)b->seq, b->size, (unsigned long long)h->slot_bytes);
    FUZZ_CHECK(inside(lo, hi, b->ids, (uint64_t)b->count * 8), "batch %llu: ids outside the ring",
               (unsigned long long)b->seq);
    FUZZ_CHECK(inside(lo, hi, b->data, b->size), "batch %llu: data (%zu bytes) outside the ring",
               (unsigned long long)b->seq, b->size);
    FUZZ_CHECK(!b->labels || inside(lo, hi, b->labels, (uint64_t)b->count * 4),
               "batch %llu: labels outside the ring", (unsigned long long)b->seq);
    FUZZ_CHECK(!b->offsets || inside(lo, hi, b->offsets, ((uint64_t)b->count + 1) * 8),
               "batch %llu: offsets outside the ring", (unsigned long long)b->seq);
    /* What a trainer does with a batch: read all of it. */
    for (uint32_t i = 0; i < b->count; i++) {
        sink ^= (uint8_t)b->ids[i];
        if (b->labels)
            sink ^= (uint8_t)b->labels[i];
    }
    for (size_t i = 0; i < b->size; i++)
        sink ^= ((const uint8_t *)b->data)[i];
    for (uint32_t i = 0; b->offsets && i <= b->count; i++)
        sink ^= (uint8_t)b->offsets[i];
    (void)sink;
}

/* Writes the patches through a descriptor of the object, not through our
 * mapping: a guard-mode ring (BR_RING_GUARD) has PROT_NONE pages in it. */
static void apply_patches(struct br_ring *r, const char *name, struct fuzz_in *in)
{
    /* Where the regions are in the ring as created: patches change the
     * header as they go, and only the fuzzer's bytes, not our arithmetic,
     * may go astray. */
    const uint64_t total = r->bytes;
    const uint64_t desc = (uint64_t)((uint8_t *)r->desc - (uint8_t *)r->base);
    const uint64_t workers = (uint64_t)((uint8_t *)r->workers - (uint8_t *)r->base);
    const uint64_t meta = (uint64_t)(r->meta - (uint8_t *)r->base);
    const uint64_t data = (uint64_t)(r->data - (uint8_t *)r->base);
    int fd = shm_open(name, O_RDWR | O_CLOEXEC, 0);
    FUZZ_CHECK(fd >= 0, "shm_open %s: %s", name, strerror(errno));
    while (in->left) {
        uint8_t region = fuzz_u8(in) % 6, index = fuzz_u8(in);
        uint64_t off = fuzz_u16(in), at;
        size_t len = fuzz_u8(in);
        uint32_t slot = index % r->nslots;
        switch (region) {
        case 0: at = 0; break;
        case 1: at = desc + (uint64_t)slot * sizeof(struct br_slot_desc); break;
        case 2: at = workers + (uint64_t)index * sizeof(struct br_worker_rec); break;
        case 3: at = meta + (uint64_t)slot * r->meta_stride; break;
        case 4: at = data + (uint64_t)slot * r->slot_stride; break;
        default: at = 0; off |= (uint64_t)index << 16; break;
        }
        if (len > in->left)
            len = in->left;
        if (at < total && off < total - at) {
            size_t room = (size_t)(total - at - off);
            size_t n = len < room ? len : room;
            FUZZ_CHECK(pwrite(fd, in->p, n, (off_t)(at + off)) == (ssize_t)n, "pwrite %s: %s",
                       name, strerror(errno));
        }
        in->p += len;
        in->left -= len;
    }
    close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static unsigned counter;
    char name[64], msg[BR_MSG_CAP];
    struct br_ring_geometry geo;
    struct br_ring r;
    struct fuzz_in in = {data, size};
    br_ring_status st;
    br_worker_stats ws[4];
    br_gen *g = NULL;
    int rc;

    fuzz_fds_begin();
    memset(&geo, 0, sizeof geo);
    geo.nslots = 1 + fuzz_u8(&in) % 8;
    geo.nworkers = fuzz_u8(&in) % 4;
    geo.batch_size = 1 + fuzz_u8(&in) % 8;
    geo.flags = fuzz_u8(&in) & BR_RING_KNOWN_FLAGS;
    geo.slot_bytes = 1 + 97u * fuzz_u8(&in);
    geo.n_ids = (uint64_t)geo.batch_size * 5 - 1;
    geo.batches_per_epoch = 5;
    geo.epochs = 2;
    geo.end_seq = 10;

    snprintf(name, sizeof name, "/brtest-fuzz-%d-%u", (int)getpid(), counter++);
    rc = br__ring_create(&r, &geo, name, msg);
    FUZZ_CHECK(rc == 0, "creating ring %s: %s", name, msg);
    apply_patches(&r, name, &in);

    rc = br_ring_status_get(name, &st, ws, 4);
    FUZZ_CHECK_RC("br_ring_status_get", rc, br_last_error(NULL));
    if (rc == 0)
        FUZZ_CHECK(st.slots_free + st.slots_loading + st.slots_ready + st.slots_failed == st.slots,
                   "br_ring_status_get: %u + %u + %u + %u slots by state, %u in all", st.slots_free,
                   st.slots_loading, st.slots_ready, st.slots_failed, st.slots);

    rc = br_attach(&g, name, 0);
    FUZZ_CHECK_RC("br_attach", rc, br_last_error(NULL));
    FUZZ_CHECK((rc == 0) == (g != NULL), "br_attach returned %d and %s handle", rc,
               g ? "a" : "no");
    /* A call that fails leaves the cursor where it was: each batch follows
     * the last one returned. On a ring of hold >= 2 a consumer that takes
     * over skips the batches its predecessor released out of order (so
     * seqs only grow, and only up to the cursor it found); on one of hold 1
     * nothing is ever skipped, whatever the ring says. */
    uint32_t hold = 1;
    uint64_t attach_cursor = 0;
    if (g) {
        br_stats bs;
        FUZZ_CHECK(br_stats_get(g, &bs) == 0, "br_stats_get: %s", br_last_error(g));
        hold = bs.hold;
        /* Skipped batches all lie below the cursor br_attach found (and
         * stored back): a batch past it follows the one before. */
        attach_cursor = br__load_acquire_u64(&r.hdr->cursor);
    }
    for (int k = 0, have_prev = 0; g && k < 6; k++) {
        static uint64_t prev;
        br_batch b;
        rc = br_next(g, &b);
        FUZZ_CHECK_RC("br_next", rc, br_last_error(g));
        if (rc != 0)
            continue;
        check_batch(name, &r, &b);
        FUZZ_CHECK(!have_prev || b.seq == prev + 1 ||
                       (hold >= 2 && b.seq > prev && b.seq <= attach_cursor),
                   "br_next gave seq %llu after %llu (hold %u)", (unsigned long long)b.seq,
                   (unsigned long long)prev, hold);
        prev = b.seq;
        have_prev = 1;
    }
    if (g)
        FUZZ_CHECK(br_close(g) == 0, "br_close failed");

    br__ring_unmap(&r);
    FUZZ_CHECK(shm_unlink(name) == 0, "shm_unlink %s: %s", name, strerror(errno));
    fuzz_check_fds();
    return 0;
}
