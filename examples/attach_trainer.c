/* SPDX-License-Identifier: MIT */
/*
 * A C trainer loop fed by a named ring that another process serves. The
 * input pipeline runs on its own (started once, shared by restarts of the
 * trainer, watched with batchring stat); the trainer attaches by name and
 * gets the same zero-copy br_next as with a local generator:
 *
 *   batchring mkdata --layout records --dir /tmp/synth --samples 16384
 *   batchring serve --name /batchring-demo --records /tmp/synth/records.bin \
 *       --record-size 4096 --labels /tmp/synth/labels.bin --batch 64 --workers 4 &
 *   ./example_attach_trainer /batchring-demo 100
 *   ./example_attach_trainer /batchring-demo 100   # resumes at batch 100
 *
 * Arguments: the ring's name (default /batchring-demo) and the number of
 * steps (default 100).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include <batchring.h>

int main(int argc, char **argv)
{
    const char *name = argc > 1 ? argv[1] : "/batchring-demo";
    const unsigned long steps = argc > 2 ? strtoul(argv[2], NULL, 10) : 100;
    uint64_t checksum = 0, step = 0, next = 0;
    br_batch b;
    br_gen *g;

    /* -1: br_next waits as long as the producer lives; if it dies, br_next
     * returns BR_EPRODUCER within a second instead of hanging. */
    int rc = br_attach(&g, name, -1);
    if (rc) {
        fprintf(stderr, "br_attach %s: %s: %s\n", name, br_err_name(rc), br_last_error(NULL));
        return 1;
    }
    for (; step < steps; step++) {
        rc = br_next(g, &b);
        if (rc == BR_EOF)
            break; /* the producer's last epoch is done */
        if (rc) {
            fprintf(stderr, "br_next: %s: %s\n", br_err_name(rc), br_last_error(g));
            br_close(g);
            return 1;
        }
        /* The "training step". Sample i is at b.data + b.offsets[i], in
         * shared memory, valid until the next br_next (a custom loader may
         * leave offsets NULL: then its samples have one size). */
        for (uint32_t i = 0; i < b.count; i++) {
            const size_t each = b.size / b.count;
            const uint64_t start = b.offsets ? b.offsets[i] : i * each;
            const uint64_t end = b.offsets ? b.offsets[i + 1] : start + each;
            if (end > start)
                checksum += ((const uint8_t *)b.data)[start];
            if (b.labels)
                checksum += (uint32_t)b.labels[i];
        }
    }
    /* What to save with the model; a later run simply attaches again, and
     * the ring resumes there by itself. */
    br_checkpoint_get(g, &next);
    br_close(g); /* detaches and releases the last batch; the producer keeps serving */
    printf("trained %" PRIu64 " steps on %s, next batch %" PRIu64 ", checksum %" PRIu64 "\n", step,
           name, next, checksum);
    return 0;
}
