/* SPDX-License-Identifier: MIT */
/*
 * fuzz_records: br_dataset_open_records (the record size against the
 * file's size, O_DIRECT's alignment rule, the labels file's size and
 * decoding) and, when it opens, the records loader in this process.
 *
 * Why: a records file and its labels come from users and from other
 * tools; a size that does not divide, an empty file or a short labels file
 * must be an error at open that names the file, and a dataset that opened
 * must load exactly the bytes of its records.
 *
 * Input: record_bytes (u16 LE), opts (u8: bit 0 a labels file, bit 1
 * BR_DATASET_DIRECT, bits 2-6 the generator's options, see
 * fuzz_run_dataset), the records file (u16 LE length, bytes), the rest is
 * the labels file.
 */
#include "fuzz/fuzz_util.h"

struct records {
    const uint8_t *data;
    size_t size, record_bytes;
};

static int record(void *ctx, uint64_t id, const uint8_t **p, size_t *len)
{
    const struct records *r = ctx;
    FUZZ_CHECK(id < r->size / r->record_bytes, "sample %llu of %zu records",
               (unsigned long long)id, r->size / r->record_bytes);
    *p = r->data + id * r->record_bytes;
    *len = r->record_bytes;
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in in = {data, size};
    struct records rec;
    size_t labels_len;
    const uint8_t *labels;
    br_dataset *ds = NULL;
    br_dataset_info info;
    uint8_t opts;
    int rc;

    fuzz_fds_begin();
    rec.record_bytes = fuzz_u16(&in);
    opts = fuzz_u8(&in);
    rec.data = fuzz_part(&in, &rec.size);
    labels = in.p;
    labels_len = in.left;
    fuzz_write_file(fuzz_path(0, "records"), rec.data, rec.size);
    if (opts & 1)
        fuzz_write_file(fuzz_path(1, "labels"), labels, labels_len);

    rc = br_dataset_open_records(&ds, fuzz_path(0, "records"), rec.record_bytes,
                                 opts & 1 ? fuzz_path(1, "labels") : NULL,
                                 opts & 2 ? BR_DATASET_DIRECT : 0);
    FUZZ_CHECK_RC("br_dataset_open_records", rc, br_last_error(NULL));
    FUZZ_CHECK((rc == 0) == (ds != NULL), "open returned %d and %s dataset", rc, ds ? "a" : "no");
    if (rc == 0) {
        struct fuzz_expect want = {record, &rec, opts & 1 ? labels : NULL};
        FUZZ_CHECK(rec.record_bytes && rec.size && rec.size % rec.record_bytes == 0,
                   "records file of %zu bytes opened with record_bytes %zu", rec.size,
                   rec.record_bytes);
        FUZZ_CHECK(!(opts & 1) || labels_len == rec.size / rec.record_bytes * 4,
                   "a labels file of %zu bytes opened for %zu records", labels_len,
                   rec.size / rec.record_bytes);
        FUZZ_CHECK(br_dataset_info_get(ds, &info) == 0, "br_dataset_info_get");
        FUZZ_CHECK(info.samples == rec.size / rec.record_bytes && info.total_bytes == rec.size &&
                       info.max_sample_bytes == rec.record_bytes,
                   "info: %llu samples, %llu bytes", (unsigned long long)info.samples,
                   (unsigned long long)info.total_bytes);
        fuzz_run_dataset(ds, opts, &want);
        br_dataset_close(ds);
    }
    fuzz_check_fds();
    return 0;
}
