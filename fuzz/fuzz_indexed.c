/* SPDX-License-Identifier: MIT */
/*
 * fuzz_indexed: br_dataset_open_indexed (the index file's parser: its
 * size, each (offset, length) entry against the data file, the running
 * total, the labels file) and, when it opens, the indexed loader in this
 * process, buffered or O_DIRECT.
 *
 * Why: an index is binary input written by other tools; an entry past the
 * end of the data, a length that overflows the total, a size that is not
 * a whole number of entries must be an error at open naming the entry,
 * and a dataset that opened must load exactly the bytes its entries name.
 *
 * Input: opts (u8: bit 0 a labels file, bit 1 BR_DATASET_DIRECT, bits 2-6
 * the generator's options, see fuzz_run_dataset), the data file (u16 LE
 * length, bytes), the index file (the same), the rest is the labels file.
 */
#include <endian.h>

#include "fuzz/fuzz_util.h"

struct indexed {
    const uint8_t *data, *index;
    size_t data_len, index_len;
};

static int entry(void *ctx, uint64_t id, const uint8_t **p, size_t *len)
{
    const struct indexed *x = ctx;
    uint64_t off, n;
    FUZZ_CHECK(id < x->index_len / 16, "sample %llu of %zu entries", (unsigned long long)id,
               x->index_len / 16);
    memcpy(&off, x->index + id * 16, 8);
    memcpy(&n, x->index + id * 16 + 8, 8);
    off = le64toh(off);
    n = le64toh(n);
    FUZZ_CHECK(off <= x->data_len && n <= x->data_len - off,
               "entry %llu (offset %llu, length %llu) opened past the %zu-byte data file",
               (unsigned long long)id, (unsigned long long)off, (unsigned long long)n,
               x->data_len);
    *p = x->data + off;
    *len = (size_t)n;
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in in = {data, size};
    struct indexed x;
    const uint8_t *labels;
    size_t labels_len;
    br_dataset *ds = NULL;
    br_dataset_info info;
    uint8_t opts;
    int rc;

    fuzz_fds_begin();
    opts = fuzz_u8(&in);
    x.data = fuzz_part(&in, &x.data_len);
    x.index = fuzz_part(&in, &x.index_len);
    labels = in.p;
    labels_len = in.left;
    fuzz_write_file(fuzz_path(0, "data"), x.data, x.data_len);
    fuzz_write_file(fuzz_path(1, "index"), x.index, x.index_len);
    if (opts & 1)
        fuzz_write_file(fuzz_path(2, "labels"), labels, labels_len);

    rc = br_dataset_open_indexed(&ds, fuzz_path(0, "data"), fuzz_path(1, "index"),
                                 opts & 1 ? fuzz_path(2, "labels") : NULL,
                                 opts & 2 ? BR_DATASET_DIRECT : 0);
    FUZZ_CHECK_RC("br_dataset_open_indexed", rc, br_last_error(NULL));
    FUZZ_CHECK((rc == 0) == (ds != NULL), "open returned %d and %s dataset", rc, ds ? "a" : "no");
    if (rc == 0) {
        struct fuzz_expect want = {entry, &x, opts & 1 ? labels : NULL};
        uint64_t total = 0, max = 0;
        FUZZ_CHECK(x.index_len && x.index_len % 16 == 0, "an index of %zu bytes opened",
                   x.index_len);
        FUZZ_CHECK(!(opts & 1) || labels_len == x.index_len / 16 * 4,
                   "a labels file of %zu bytes opened for %zu entries", labels_len,
                   x.index_len / 16);
        for (uint64_t i = 0; i < x.index_len / 16; i++) {
            const uint8_t *p;
            size_t len;
            entry(&x, i, &p, &len);
            total += len;
            max = len > max ? len : max;
        }
        FUZZ_CHECK(br_dataset_info_get(ds, &info) == 0, "br_dataset_info_get");
        FUZZ_CHECK(info.samples == x.index_len / 16 && info.total_bytes == total &&
                       info.max_sample_bytes == max,
                   "info: %llu samples, %llu bytes, largest %llu; the index says %llu, %llu, "
                   "%llu",
                   (unsigned long long)info.samples, (unsigned long long)info.total_bytes,
                   (unsigned long long)info.max_sample_bytes,
                   (unsigned long long)(x.index_len / 16), (unsigned long long)total,
                   (unsigned long long)max);
        fuzz_run_dataset(ds, opts, &want);
        br_dataset_close(ds);
    }
    fuzz_check_fds();
    return 0;
}
