/* SPDX-License-Identifier: MIT */
/*
 * The tokens case: the built-in tokens layout (br_dataset_open_tokens) over
 * llm.c .bin shards, windows of T = 1024 tokens in file order, beside the
 * way C language-model trainers read them today: a sequential fseek/fread
 * of B x T + 1 uint16 tokens per batch from the current shard in the
 * trainer, widened to int32 inputs and targets (llm.c's dataloader does
 * this), next shard when one runs out.
 *
 * B comes from the batch bytes: B = batch_bytes / (8 T) (the slot holds
 * int32 inputs[B][T] and targets[B][T]): 64 KiB is B = 8, 512 KiB B = 64.
 *
 * Trainer CPU per batch (getrusage of the trainer alone; the workers are
 * other processes): for batchring, over a separate stretch of br_next
 * calls after the interleaved pipeline (as many batches as the subject
 * timed, at least 1000), so that none of the pipeline's untimed drains and
 * waits for a full ring count; for the fread loop, around its timed chunks.
 * The targets (>= 1.0x the fread loop's batches/s at <= 5% of its
 * trainer CPU per batch) are reported, not asserted.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <batchring.h>

#include "case_common.h"

#define TOK_T 1024u
#define TOK_SHARDS 4u
/* Tokens per shard: 16 MiB of tokens each, 64 MiB in all: cached, larger
 * than the CPU caches. */
#define TOK_PER_SHARD (8u * 1024u * 1024u)

struct tok_files {
    char dir[64];
    char path[TOK_SHARDS][96];
    char pattern[96];
};

static void tok_files_remove(struct tok_files *f)
{
    for (unsigned k = 0; k < TOK_SHARDS; k++)
        if (f->path[k][0])
            unlink(f->path[k]);
    rmdir(f->dir);
}

static int tok_files_make(struct tok_files *f, struct bench_result *out)
{
    const size_t chunk = 1u << 20; /* tokens per write */
    uint16_t *buf = malloc(chunk * 2);
    memset(f, 0, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/batchring-perf-XXXXXX");
    if (!buf || !mkdtemp(f->dir)) {
        free(buf);
        return bench__fail(out, -errno, "making a temporary directory: %s", strerror(errno));
    }
    snprintf(f->pattern, sizeof f->pattern, "%s/train_*.bin", f->dir);
    for (unsigned k = 0; k < TOK_SHARDS; k++) {
        int32_t header[256] = {20240520, 1, (int32_t)TOK_PER_SHARD};
        FILE *fp;
        snprintf(f->path[k], sizeof f->path[k], "%s/train_%02u.bin", f->dir, k);
        fp = fopen(f->path[k], "wbx");
        if (!fp || fwrite(header, sizeof header, 1, fp) != 1) {
            int e = errno ? errno : EIO;
            if (fp)
                fclose(fp);
            free(buf);
            tok_files_remove(f);
            return bench__fail(out, -e, "writing %s: %s", f->path[k], strerror(e));
        }
        for (size_t t = 0; t < TOK_PER_SHARD; t += chunk) {
            for (size_t i = 0; i < chunk; i++)
                buf[i] = (uint16_t)(((t + i) * 2654435761u >> 7) % 50257u);
            if (fwrite(buf, 2, chunk, fp) != chunk) {
                fclose(fp);
                free(buf);
                tok_files_remove(f);
                return bench__fail(out, -EIO, "writing %s", f->path[k]);
            }
        }
        if (fclose(fp)) {
            free(buf);
            tok_files_remove(f);
            return bench__fail(out, -EIO, "writing %s", f->path[k]);
        }
    }
    free(buf);
    return 0;
}

static uint64_t cpu_ns_self(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (uint64_t)ru.ru_utime.tv_sec * 1000000000u + (uint64_t)ru.ru_utime.tv_usec * 1000u +
           (uint64_t)ru.ru_stime.tv_sec * 1000000000u + (uint64_t)ru.ru_stime.tv_usec * 1000u;
}

/* The trainer's own shard reader, as llm.c's: fseek, fread B x T + 1
 * tokens, widen into inputs and targets. */
struct fread_loop {
    const struct tok_files *files;
    uint32_t B;
    unsigned shard;
    uint64_t pos; /* next token of the shard */
    FILE *fp;
    uint16_t *raw;
    int32_t *inputs, *targets;
    uint64_t cpu_ns;
};

static int fread_batches(void *ctx, uint64_t n)
{
    struct fread_loop *l = ctx;
    const size_t want = (size_t)l->B * TOK_T + 1;
    uint64_t cpu0 = cpu_ns_self();
    for (uint64_t k = 0; k < n; k++) {
        if (!l->fp || l->pos + want > TOK_PER_SHARD) {
            if (l->fp) {
                fclose(l->fp);
                l->shard = (l->shard + 1) % TOK_SHARDS;
            }
            l->fp = fopen(l->files->path[l->shard], "rb");
            l->pos = 0;
            if (!l->fp)
                return -errno;
        }
        if (fseek(l->fp, (long)(1024 + l->pos * 2), SEEK_SET) ||
            fread(l->raw, 2, want, l->fp) != want)
            return -EIO;
        for (size_t i = 0; i < want - 1; i++) {
            l->inputs[i] = l->raw[i];
            l->targets[i] = l->raw[i + 1];
        }
        bench__sink += (uint64_t)l->inputs[want / 2];
        l->pos += want - 1;
    }
    l->cpu_ns += cpu_ns_self() - cpu0;
    return 0;
}

int bench__tokens_run(struct bench_loop *loop, const struct bench_params *p,
                      struct bench_result *out)
{
    uint32_t B = (uint32_t)(p->batch_bytes / (8u * TOK_T));
    struct tok_files files;
    struct fread_loop fl = {0};
    struct baseline base[1] = {{fread_batches, &fl, 0, 0}};
    br_dataset *ds = NULL;
    br_gen *g = NULL;
    br_options opt;
    uint64_t cpu0;
    int rc;

    if (B == 0)
        return bench__fail(out, -EINVAL,
                           "batch bytes %llu hold no window: the tokens case needs at least "
                           "8 x T = %u bytes (B = batch_bytes / 8192)",
                           (unsigned long long)p->batch_bytes, 8u * TOK_T);
    if ((rc = tok_files_make(&files, out)))
        return rc;
    fl.files = &files;
    fl.B = B;
    fl.raw = malloc(((size_t)B * TOK_T + 1) * 2);
    fl.inputs = malloc((size_t)B * TOK_T * 4);
    fl.targets = malloc((size_t)B * TOK_T * 4);
    if (!fl.raw || !fl.inputs || !fl.targets) {
        rc = bench__fail(out, -ENOMEM, "out of memory for the fread loop's batch");
        goto done;
    }
    if ((rc = br_dataset_open_tokens(&ds, files.pattern, TOK_T, 0, 0))) {
        rc = bench__fail(out, rc, "br_dataset_open_tokens: %s", br_last_error(NULL));
        goto done;
    }
    br_options_init(&opt);
    opt.batch_size = B;
    opt.workers = p->workers;
    if ((rc = br_open_dataset(&g, ds, NULL, 0, &opt))) {
        rc = bench__fail(out, rc, "br_open_dataset: %s", br_last_error(NULL));
        goto done;
    }
    rc = bench__run_pipeline(loop, g, p->workers, NULL, base, 1, out);
    if (rc)
        goto done;
    {
        uint64_t n = out->units > 1000 ? out->units : 1000, cpu;
        br_batch b;
        cpu0 = cpu_ns_self();
        for (uint64_t k = 0; k < n; k++)
            if ((rc = bench__next_batch(g, &b, out)))
                goto done;
        cpu = cpu_ns_self() - cpu0;
        double ring_cpu_us = (double)cpu / 1e3 / (double)n;
        double fread_cpu_us = base[0].units ? (double)fl.cpu_ns / 1e3 / (double)base[0].units : 0;
        out->value = (double)out->units / out->seconds;
        out->baseline = 1e9 / bench__baseline_ns_per_unit(&base[0]);
        out->ratio = out->value / out->baseline;
        bench__add_figure(out, "B", B);
        bench__add_figure(out, "T", TOK_T);
        bench__add_figure(out, "tokens_per_s", out->value * B * TOK_T);
        bench__add_figure(out, "batchring_cpu_us_per_batch", ring_cpu_us);
        bench__add_figure(out, "fread_cpu_us_per_batch", fread_cpu_us);
        bench__add_figure(out, "cpu_vs_fread", fread_cpu_us > 0 ? ring_cpu_us / fread_cpu_us : 0);
    }
    {
        br_worker_stats ws;
        uint64_t load_ns = 0, batches = 0;
        for (uint32_t w = 0; w < p->workers && br_worker_stats_get(g, w, &ws) == 0; w++)
            load_ns += ws.load_ns, batches += ws.batches;
        bench__add_figure(out, "worker_load_us_per_batch",
                          batches ? (double)load_ns / 1e3 / (double)batches : 0);
    }
done:
    br_close(g);
    br_dataset_close(ds);
    if (fl.fp)
        fclose(fl.fp);
    free(fl.raw);
    free(fl.inputs);
    free(fl.targets);
    tok_files_remove(&files);
    return rc;
}

bool bench__tokens_target(const struct bench_params *p, double *limit, bool *at_least)
{
    uint64_t B = p->batch_bytes / (8u * TOK_T);
    *limit = 1.0, *at_least = true;
    return B >= 8 && B <= 64;
}
