/* SPDX-License-Identifier: MIT */
/*
 * Helpers of the file-reading tests (test_io, test_datasets): a fresh
 * temporary directory of real files, the two read paths, and whether this
 * kernel lets us use io_uring at all.
 *
 * Include after <setjmp.h>, <stdarg.h>, <stddef.h> and <cmocka.h>.
 */
#ifndef BR_TEST_FS_H
#define BR_TEST_FS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <batchring.h>

/* Ids for shuffled runs over n samples: a run of 40 adjacent ids (one read
 * for records), then every id in an order scrambled from `seed` (single
 * reads, and ids repeated from the run). *count gets n + 40; free() it. */
uint64_t *tf_scrambled_ids(uint64_t n, uint64_t seed, size_t *count);

/* Writes n samples of br_synth(seed), size_of(id) bytes each, to path as
 * an indexed layout's data file: ids 0 .. n/2 - 1 one after another (reads
 * of them coalesce), then the others in a scrambled order (n/2 + 7k mod
 * (n - n/2), which must not be a multiple of 7) with (k % 5) x gap_step
 * junk bytes after each but the last sample, so the file ends where a
 * sample does.
 * offset[id] gets each sample's offset. Synced; returns the file's size. */
uint64_t tf_write_indexed_data(const char *path, uint64_t seed, uint64_t n,
                               size_t (*size_of)(uint64_t), unsigned gap_step, uint64_t *offset);

/* Checks sample i of batch b: id `id`, size_of(id) bytes of br_synth(seed)
 * at b->offsets[i]. Fails the test naming the batch, sample and byte. */
void tf_check_sample(const br_batch *b, uint32_t i, uint64_t id, uint64_t seed,
                     size_t (*size_of)(uint64_t));

/* The read paths a test runs under. */
enum tf_backend { TF_URING, TF_PREAD };

/* Makes a fresh directory under $TMPDIR (or /tmp) with mkdtemp; the path
 * goes to dir (cap bytes). Asserts on failure. */
void tf_tmpdir(char *dir, size_t cap, const char *prefix);
/* Removes dir and everything below it. */
void tf_remove_tree(const char *dir);

/* dir/name into a static rotating buffer (valid for the next 7 calls). */
const char *tf_path(const char *dir, const char *name);
/* Writes len bytes to path (created or truncated). Asserts on failure. */
void tf_write(const char *path, const void *data, size_t len);
/* Writes sample `sample` of br_synth (seed) of len bytes at the end of fd. */
void tf_append_sample(int fd, uint64_t seed, uint64_t sample, size_t len);
/* Writes n int32 labels br_synth_label(seed, i) to path. */
void tf_write_labels(const char *path, uint64_t seed, uint64_t n);

/* True when this kernel and its policy let us create an io_uring; else
 * false with the reason in why. */
bool tf_uring_available(char *why, size_t cap);
/*
 * Selects the read path for the generators opened next: TF_PREAD sets
 * BR_IO=pread (the workers inherit it), TF_URING clears it. For TF_URING
 * on a kernel that refuses io_uring, prints the reason and skips the test
 * (cmocka skip: never a pass). Undo with tf_backend_end.
 */
void tf_backend_begin(enum tf_backend b);
void tf_backend_end(void);
/* BR_IO_URING or BR_IO_PREAD. */
uint32_t tf_backend_code(enum tf_backend b);
const char *tf_backend_name(enum tf_backend b);

#endif /* BR_TEST_FS_H */
