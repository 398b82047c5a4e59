/* SPDX-License-Identifier: MIT */
/*
 * A C language-model trainer's data path with batchring: llm.c .bin token
 * shards opened as a tokens dataset; each batch arrives as int32
 * inputs[B][T] followed by int32 targets[B][T], which is what the model's
 * forward pass takes. Shuffled windows, a different order each epoch, two
 * worker processes reading ahead.
 *
 * Run: ./example_tokens_trainer 'data/fineweb_train_*.bin' [T] [B]
 * (`batchring mkdata --layout tokens --dir data --samples 1000000` writes
 * shards to try it on). Without arguments it writes two small shards of its
 * own in a temporary directory.
 */
#define _DEFAULT_SOURCE /* mkdtemp */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <batchring.h>

/* Stands in for the model: checks the batch's shape and returns a "loss". */
static double train_step(const int *inputs, const int *targets, int B, int T)
{
    double loss = 0;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            /* Within a window the targets are the inputs shifted by one. */
            if (t + 1 < T && targets[b * T + t] != inputs[b * T + t + 1]) {
                fprintf(stderr, "targets are not the inputs shifted by one\n");
                exit(1);
            }
            loss += (double)targets[b * T + t];
        }
    return loss / (B * T);
}

/* Two llm.c shards of 20000 tokens each, for a run without arguments. */
static int write_demo_shards(char *dir, char *pattern, size_t cap)
{
    if (!mkdtemp(dir))
        return -1;
    snprintf(pattern, cap, "%s/train_*.bin", dir);
    for (int k = 0; k < 2; k++) {
        char path[128];
        int32_t header[256] = {20240520, 1, 20000};
        FILE *f;
        snprintf(path, sizeof path, "%s/train_%d.bin", dir, k);
        if (!(f = fopen(path, "wb")))
            return -1;
        fwrite(header, sizeof header, 1, f);
        for (uint32_t t = 0; t < 20000; t++) {
            uint16_t tok = (uint16_t)((t * 7919u + (uint32_t)k) % 50257u);
            fwrite(&tok, 2, 1, f);
        }
        if (fclose(f))
            return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    char dir[64] = "/tmp/tokens-example-XXXXXX", pattern[128];
    const char *shards = argc > 1 ? argv[1] : NULL;
    int T = argc > 2 ? atoi(argv[2]) : 64, B = argc > 3 ? atoi(argv[3]) : 8;
    br_dataset *ds;
    br_dataset_info info;
    br_options opt;
    br_batch b;
    br_gen *g;
    uint64_t steps = 0;
    double loss = 0;
    int rc;

    if (!shards) {
        if (write_demo_shards(dir, pattern, sizeof pattern)) {
            perror("writing demo shards");
            return 1;
        }
        shards = pattern;
    }

    /* The shard reader, replaced: one open over every shard... */
    rc = br_dataset_open_tokens(&ds, shards, (size_t)T, 0, 0);
    if (rc) {
        fprintf(stderr, "%s\n", br_last_error(NULL));
        return 1;
    }
    br_dataset_info_get(ds, &info);
    br_options_init(&opt);
    opt.batch_size = (uint32_t)B;
    opt.workers = 2;
    opt.shuffle = true;
    opt.seed = 1337;
    opt.epochs = 2;
    rc = br_open_dataset(&g, ds, NULL, 0, &opt);
    if (rc) {
        fprintf(stderr, "%s\n", br_last_error(NULL));
        br_dataset_close(ds);
        return 1;
    }
    /* ...and the loop: b.data is inputs[B][T], then targets[B][T]. */
    while ((rc = br_next(g, &b)) == 0) {
        const int *inputs = b.data, *targets = inputs + (size_t)b.count * T;
        loss += train_step(inputs, targets, (int)b.count, T);
        steps++;
    }
    if (rc != BR_EOF)
        fprintf(stderr, "%s: %s\n", br_err_name(rc), br_last_error(g));
    else
        printf("%llu steps over %llu windows of T = %d from %u shards (mean token %.1f)\n",
               (unsigned long long)steps, (unsigned long long)info.samples, T, info.shards,
               steps ? loss / (double)steps : 0.0);
    br_close(g);
    br_dataset_close(ds);
    if (shards == pattern) {
        char path[128];
        for (int k = 0; k < 2; k++) {
            snprintf(path, sizeof path, "%s/train_%d.bin", dir, k);
            unlink(path);
        }
        rmdir(dir);
    }
    return rc == BR_EOF ? 0 : 1;
}
