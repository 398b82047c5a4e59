/* SPDX-License-Identifier: MIT */
/*
 * batchring demo: a synthetic in-memory dataset, a multi-process generator
 * over it for a few seconds, and a check of every byte of every batch.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <batchring.h>

#include "cli.h"

struct dataset {
    uint8_t *bytes;       /* n_samples x sample_bytes */
    size_t sample_bytes;
    uint64_t n_samples;
};

/* A deterministic, position-dependent pattern, so that a swapped, stale or
 * torn sample cannot pass the check. */
static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15u;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9u;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebu;
    return x ^ (x >> 31);
}

static void dataset_fill(struct dataset *ds)
{
    uint64_t *w = (uint64_t *)ds->bytes;
    size_t words = ds->n_samples * ds->sample_bytes / sizeof *w;
    for (size_t i = 0; i < words; i++)
        w[i] = mix64(i);
}

static int load_from_memory(br_job *job, void *user)
{
    const struct dataset *ds = user;
    uint8_t *out = job->out;
    if ((size_t)job->count * ds->sample_bytes > job->cap) {
        snprintf(job->err, job->err_cap, "batch of %u samples needs %zu bytes, slot has %zu",
                 job->count, (size_t)job->count * ds->sample_bytes, job->cap);
        return -ENOSPC;
    }
    for (uint32_t i = 0; i < job->count; i++)
        memcpy(out + i * ds->sample_bytes, ds->bytes + job->ids[i] * ds->sample_bytes,
               ds->sample_bytes);
    job->size = (size_t)job->count * ds->sample_bytes;
    return 0;
}

static int label_of(uint64_t id)
{
    return (int)(id % 1000);
}

static double seconds_since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

static void usage(FILE *to)
{
    fprintf(to,
            "usage: batchring demo [options]\n\n"
            "Runs a multi-process generator over a synthetic in-memory dataset and checks\n"
            "every id, label and byte of every batch against the dataset.\n\n"
            "  --workers N       worker processes (default 2; 0 loads inside br_next)\n"
            "  --seconds S       how long to run (default 3)\n"
            "  --batch B         samples per batch (default 64)\n"
            "  --sample-bytes N  bytes per sample (default 4096)\n"
            "  --samples N       samples in the dataset (default 16384)\n"
            "  --slots N         ring depth (default 2 x workers)\n"
            "  -h, --help        this text\n");
}

int br_cli_demo(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"workers", required_argument, NULL, 'w'}, {"seconds", required_argument, NULL, 's'},
        {"batch", required_argument, NULL, 'b'},   {"sample-bytes", required_argument, NULL, 'z'},
        {"samples", required_argument, NULL, 'n'}, {"slots", required_argument, NULL, 'S'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
    };
    unsigned long workers = 2, batch = 64, sample_bytes = 4096, samples = 16384, slots = 0;
    double seconds = 3.0;
    int c;

    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        char *end = NULL;
        unsigned long v = 0;
        if (c == 'h') {
            usage(stdout);
            return 0;
        }
        if (c == '?') {
            usage(stderr);
            return 2;
        }
        errno = 0;
        if (c == 's')
            seconds = strtod(optarg, &end);
        else
            v = strtoul(optarg, &end, 10);
        if (errno || !end || *end || optarg[0] == '-') {
            fprintf(stderr, "batchring demo: bad value '%s' for --%s\n", optarg,
                    longopts[c == 'w' ? 0 : c == 's' ? 1 : c == 'b' ? 2 : c == 'z' ? 3 : c == 'n' ? 4 : 5].name);
            return 2;
        }
        switch (c) {
        case 'w': workers = v; break;
        case 'b': batch = v; break;
        case 'z': sample_bytes = v; break;
        case 'n': samples = v; break;
        case 'S': slots = v; break;
        default: break;
        }
    }
    if (sample_bytes == 0 || sample_bytes % 8 || samples == 0 || seconds <= 0 ||
        workers > BR_MAX_WORKERS || batch > BR_MAX_BATCH_SIZE || slots > BR_MAX_SLOTS) {
        fprintf(stderr, "batchring demo: --sample-bytes must be a positive multiple of 8, "
                        "--samples and --seconds positive, and --workers, --batch, --slots "
                        "within the library's limits\n");
        return 2;
    }

    struct dataset ds = {.sample_bytes = sample_bytes, .n_samples = samples};
    ds.bytes = malloc(samples * sample_bytes);
    uint64_t *ids = malloc(samples * sizeof *ids);
    int32_t *labels = malloc(samples * sizeof *labels);
    if (!ds.bytes || !ids || !labels) {
        fprintf(stderr, "batchring demo: out of memory for a %lu x %lu-byte dataset\n", samples,
                sample_bytes);
        free(ds.bytes), free(ids), free(labels);
        return 1;
    }
    dataset_fill(&ds);
    for (uint64_t i = 0; i < samples; i++) {
        ids[i] = i;
        labels[i] = label_of(i);
    }

    br_options opt;
    br_options_init(&opt);
    opt.batch_size = (uint32_t)batch;
    opt.workers = (uint32_t)workers;
    opt.slot_bytes = batch * sample_bytes;
    if (slots)
        opt.slots = (uint32_t)slots;

    br_gen *g = NULL;
    int rc = br_open(&g, load_from_memory, &ds, ids, labels, samples, &opt);
    if (rc) {
        fprintf(stderr, "batchring demo: br_open: %s: %s\n", br_err_name(rc), br_last_error(NULL));
        free(ds.bytes), free(ids), free(labels);
        return 1;
    }
    if (br_last_error(g)[0])
        fprintf(stderr, "batchring demo: note: %s\n", br_last_error(g));

    const bool tty = isatty(STDERR_FILENO);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    double next_report = 0.2, elapsed = 0;
    uint64_t expect_seq = 0, bad = 0, bytes = 0;
    br_batch b;
    br_stats st;

    printf("batchring demo: %lu samples x %lu bytes, batch %lu, %u workers, %lu-byte slots, %.0f s\n",
           samples, sample_bytes, batch, opt.workers, batch * sample_bytes, seconds);
    while ((rc = br_next(g, &b)) == 0) {
        /* Every batch in order, its ids, labels and every byte. */
        uint64_t first = (b.seq % ((samples + batch - 1) / batch)) * batch;
        bool ok = b.seq == expect_seq && b.size == (size_t)b.count * sample_bytes;
        for (uint32_t i = 0; ok && i < b.count; i++)
            ok = b.ids[i] == first + i && b.labels[i] == label_of(first + i) &&
                 !memcmp((const uint8_t *)b.data + i * sample_bytes,
                         ds.bytes + b.ids[i] * sample_bytes, sample_bytes);
        if (!ok && bad++ == 0)
            fprintf(stderr, "\nbatchring demo: batch %llu does not match the dataset\n",
                    (unsigned long long)b.seq);
        expect_seq = b.seq + 1;
        bytes += b.size;
        if ((b.seq & 63) == 0) {
            elapsed = seconds_since(&t0);
            if (elapsed >= seconds)
                break;
            if (tty && elapsed >= next_report) {
                br_stats_get(g, &st);
                fprintf(stderr, "\r  %10llu batches  %6.2f GB/s  data stall %5.1f%%  ",
                        (unsigned long long)st.batches, (double)bytes / elapsed / 1e9,
                        100.0 * (double)st.stall_ns / (double)st.elapsed_ns);
                next_report = elapsed + 0.2;
            }
        }
    }
    if (rc) {
        fprintf(stderr, "\nbatchring demo: br_next: %s: %s\n", br_err_name(rc), br_last_error(g));
    }
    elapsed = seconds_since(&t0);
    br_stats_get(g, &st);
    if (tty)
        fprintf(stderr, "\r%72s\r", "");
    printf("batchring demo: %llu batches (%.2f GB) in %.2f s: %.0f batches/s, %.2f GB/s, data "
           "stall %.1f%%, %u worker restarts, %llu bad batches: %s\n",
           (unsigned long long)st.batches, (double)bytes / 1e9, elapsed,
           (double)st.batches / elapsed, (double)bytes / elapsed / 1e9,
           100.0 * (double)st.stall_ns / (double)st.elapsed_ns, st.restarts,
           (unsigned long long)bad, rc == 0 && bad == 0 ? "every byte verified" : "FAILED");
    br_close(g);
    free(ds.bytes), free(ids), free(labels);
    return rc == 0 && bad == 0 ? 0 : 1;
}
