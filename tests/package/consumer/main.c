/* SPDX-License-Identifier: MIT */
/*
 * An out-of-tree program built against an installed batchring, the way a
 * user builds one: through find_package(batchring) or through pkg-config
 * (tests/package/check.sh does both). It opens a 2-worker generator whose
 * loader writes each sample's id, reads one epoch and checks every batch,
 * so that the installed header, library and its dependencies all work.
 * Prints "consumer: ok N batches" and exits 0, or says what was wrong and
 * exits 1.
 */
#include <batchring.h>

#include <stdint.h>
#include <stdio.h>
#include <string.h>

enum { N_IDS = 1000, BATCH = 64 };

/* Sample i of a batch is the 8 bytes of its id, so the reader can tell a
 * batch from another and a sample from another. */
static int load(br_job *job, void *user)
{
    (void)user;
    for (uint32_t i = 0; i < job->count; i++)
        memcpy((char *)job->out + i * sizeof(uint64_t), &job->ids[i], sizeof(uint64_t));
    job->size = job->count * sizeof(uint64_t);
    return 0;
}

int main(void)
{
    static uint64_t ids[N_IDS];
    for (uint64_t i = 0; i < N_IDS; i++)
        ids[i] = i * 7 + 3;

    if (br_version() != BR_VERSION_NUMBER) {
        fprintf(stderr, "consumer: header %d but library %u\n", BR_VERSION_NUMBER,
                (unsigned)br_version());
        return 1;
    }
    br_options opt;
    br_options_init(&opt);
    opt.batch_size = BATCH;
    opt.workers = 2;
    opt.slot_bytes = BATCH * sizeof(uint64_t);
    opt.epochs = 1;
    br_gen *g;
    if (br_open(&g, load, NULL, ids, NULL, N_IDS, &opt) != 0) {
        fprintf(stderr, "consumer: br_open: %s\n", br_last_error(NULL));
        return 1;
    }
    br_batch b;
    int rc;
    uint64_t batches = 0, samples = 0;
    while ((rc = br_next(g, &b)) == 0) {
        if (b.seq != batches || b.size != b.count * sizeof(uint64_t)) {
            fprintf(stderr, "consumer: batch %llu: seq %llu, %zu bytes for %u samples\n",
                    (unsigned long long)batches, (unsigned long long)b.seq, b.size, b.count);
            br_close(g);
            return 1;
        }
        for (uint32_t i = 0; i < b.count; i++) {
            uint64_t got;
            memcpy(&got, (const char *)b.data + i * sizeof(uint64_t), sizeof(got));
            if (got != ids[samples] || b.ids[i] != ids[samples]) {
                fprintf(stderr, "consumer: sample %llu: got id %llu, want %llu\n",
                        (unsigned long long)samples, (unsigned long long)got,
                        (unsigned long long)ids[samples]);
                br_close(g);
                return 1;
            }
            samples++;
        }
        batches++;
    }
    if (rc != BR_EOF || samples != N_IDS) {
        fprintf(stderr, "consumer: ended with %s after %llu of %d samples: %s\n",
                br_err_name(rc), (unsigned long long)samples, N_IDS, br_last_error(g));
        br_close(g);
        return 1;
    }
    br_close(g);
    printf("consumer: ok %llu batches (batchring %s)\n", (unsigned long long)batches,
           br_version_string());
    return 0;
}
