/* SPDX-License-Identifier: MIT */
/*
 * A transform on a built-in dataset: the library reads uint8 images (one
 * record each) with its own reader, and this transform, running in each
 * worker after the read, crops a random CROP x CROP window (drawn from the
 * batch's seed, so a rerun with the same opt.seed gives the same crops
 * whichever worker loads a batch) and normalises it to float32, writing
 * straight into the slot. The trainer gets float32[B][CROP][CROP].
 *
 *   transform_example [RECORDS_FILE]
 *
 * RECORDS_FILE holds SIDE x SIDE uint8 images, one after another; without
 * it the example writes 256 of them to a temporary file first.
 */
#define _DEFAULT_SOURCE /* mkstemp */
#include <batchring.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SIDE 32u
#define CROP 24u

/* Per-worker scratch from worker_init: here a mean and scale, as a real
 * decoder would keep its context. */
struct norm {
    float mean, inv_std;
};

static int init(br_io *io, uint32_t worker, void *user, void **state, char *err, size_t cap)
{
    struct norm *n = malloc(sizeof *n);
    (void)io, (void)worker, (void)user;
    if (!n) {
        snprintf(err, cap, "out of memory");
        return -12;
    }
    n->mean = 0.5f;
    n->inv_std = 1.0f / 0.25f;
    *state = n;
    return 0;
}

static void fini(void *state, void *user)
{
    (void)user;
    free(state);
}

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

static int crop_normalise(const void *in, size_t len, uint64_t id, void *out, size_t out_cap,
                          size_t *out_len, uint64_t seed, void *state)
{
    const struct norm *n = state;
    const uint8_t *px = in;
    float *dst = out;
    uint64_t r = mix(seed ^ id);
    uint32_t x0 = (uint32_t)(r % (SIDE - CROP + 1)), y0 = (uint32_t)((r >> 32) % (SIDE - CROP + 1));

    if (len != SIDE * SIDE || out_cap < CROP * CROP * sizeof(float))
        return -22; /* -EINVAL: the batch fails, naming this sample */
    for (uint32_t y = 0; y < CROP; y++)
        for (uint32_t x = 0; x < CROP; x++)
            dst[y * CROP + x] = ((float)px[(y0 + y) * SIDE + x0 + x] / 255.0f - n->mean) * n->inv_std;
    *out_len = CROP * CROP * sizeof(float);
    return 0;
}

int main(int argc, char **argv)
{
    char tmp[] = "/tmp/transform_example_XXXXXX";
    const char *path = argc > 1 ? argv[1] : NULL;
    br_dataset *ds = NULL;
    br_gen *g = NULL;
    br_options opt;
    br_batch b;
    double sum = 0;
    int rc;

    if (!path) {
        uint8_t img[SIDE * SIDE];
        int fd = mkstemp(tmp);
        if (fd < 0)
            return perror("mkstemp"), 1;
        for (uint32_t i = 0; i < 256; i++) {
            for (uint32_t k = 0; k < SIDE * SIDE; k++)
                img[k] = (uint8_t)(i + k);
            if (write(fd, img, sizeof img) != (ssize_t)sizeof img)
                return perror("write"), 1;
        }
        close(fd);
        path = tmp;
    }
    rc = br_dataset_open_records(&ds, path, SIDE * SIDE, NULL, 0);
    if (rc == 0)
        rc = br_dataset_transform_set(ds, crop_normalise, CROP * CROP * sizeof(float), NULL);
    if (rc) {
        fprintf(stderr, "%s: %s\n", br_err_name(rc), br_last_error(NULL));
        return 1;
    }
    br_options_init(&opt);
    opt.batch_size = 32;
    opt.workers = 2;
    opt.epochs = 1;
    opt.shuffle = true;
    opt.seed = 42;
    opt.worker_init = init; /* its state is the transform's `state` */
    opt.worker_fini = fini;
    rc = br_open_dataset(&g, ds, NULL, 0, &opt);
    if (rc) {
        fprintf(stderr, "%s: %s\n", br_err_name(rc), br_last_error(NULL));
        br_dataset_close(ds);
        return 1;
    }
    while ((rc = br_next(g, &b)) == 0) {
        const float *x = b.data; /* float32[b.count][CROP][CROP] */
        for (size_t k = 0; k < b.size / sizeof(float); k++)
            sum += x[k];
    }
    if (rc != BR_EOF)
        fprintf(stderr, "%s: %s\n", br_err_name(rc), br_last_error(g));
    br_close(g);
    br_dataset_close(ds);
    if (path == tmp)
        unlink(tmp);
    printf("one epoch of %ux%u float32 crops, sum %.3f\n", CROP, CROP, sum);
    return rc == BR_EOF ? 0 : 1;
}
