/* SPDX-License-Identifier: MIT */
/*
 * A C trainer loop fed by batchring: four worker processes fill batches of
 * 64 records of 4 KiB from an in-memory table; the "training step" sums the
 * bytes it gets. Run: ./example_trainer
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <batchring.h>

#define RECORD_BYTES 4096u
#define N_RECORDS 8192u

static uint8_t table[N_RECORDS][RECORD_BYTES];

/* Fills one batch: the records of job->ids, one after another. */
static int load(br_job *job, void *user)
{
    (void)user;
    uint8_t *out = job->out;
    for (uint32_t i = 0; i < job->count; i++) {
        if (job->ids[i] >= N_RECORDS) {
            snprintf(job->err, job->err_cap, "id %llu is out of range",
                     (unsigned long long)job->ids[i]);
            return -ERANGE;
        }
        memcpy(out + (size_t)i * RECORD_BYTES, table[job->ids[i]], RECORD_BYTES);
    }
    job->size = (size_t)job->count * RECORD_BYTES;
    return 0;
}

int main(void)
{
    static uint64_t ids[N_RECORDS];
    static int32_t labels[N_RECORDS];
    for (uint32_t i = 0; i < N_RECORDS; i++) {
        ids[i] = i;
        labels[i] = (int32_t)(i % 10);
        memset(table[i], (int)(i & 0xff), RECORD_BYTES);
    }

    br_options opt;
    br_options_init(&opt);
    opt.batch_size = 64;
    opt.workers = 4;
    opt.slot_bytes = 64 * RECORD_BYTES;
    opt.epochs = 2;

    br_gen *g;
    int rc = br_open(&g, load, NULL, ids, labels, N_RECORDS, &opt);
    if (rc) {
        fprintf(stderr, "br_open: %s\n", br_last_error(NULL));
        return 1;
    }
    br_batch b;
    uint64_t checksum = 0, batches = 0;
    while ((rc = br_next(g, &b)) == 0) {
        const uint8_t *x = b.data; /* in shared memory, valid until the next br_next */
        for (size_t i = 0; i < b.size; i += RECORD_BYTES)
            checksum += x[i] + (uint64_t)b.labels[i / RECORD_BYTES];
        batches++;
    }
    if (rc != BR_EOF) {
        fprintf(stderr, "br_next: %s: %s\n", br_err_name(rc), br_last_error(g));
        br_close(g);
        return 1;
    }
    br_close(g);
    printf("trained on %llu batches, checksum %llu\n", (unsigned long long)batches,
           (unsigned long long)checksum);
    return 0;
}
