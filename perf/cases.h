/* SPDX-License-Identifier: MIT */
/*
 * The benchmark cases, shared by batchring-perf (where Google Benchmark
 * drives the loop, perf/main.c) and `batchring bench` (where a time budget
 * drives it, cli/bench.c). This file needs only <batchring.h> and libc.
 *
 * A case measures its subject and its baseline in the same call: machines
 * here are shared and noisy, absolute times move, ratios taken within one
 * call hold. The subject runs inside the caller's loop; the baseline runs
 * right after it, doing the same work per unit for the same number of
 * units or for as long as the subject ran, whichever comes first.
 */
#ifndef BR_PERF_CASES_H
#define BR_PERF_CASES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h" /* br_util_now_ns, br_util_bytes */

/*
 * The caller's timing loop. A case calls keep_running() before each
 * iteration and, when it returned true, iteration_done() exactly once with
 * the time the iteration's measured part took (measured by the case itself
 * with CLOCK_MONOTONIC, so setup and refills between bursts are excluded)
 * and the units (batches, handoffs, opens) it covered.
 */
struct bench_loop {
    bool (*keep_running)(struct bench_loop *loop);
    void (*iteration_done)(struct bench_loop *loop, uint64_t ns, uint64_t units);
};

/* What a case is run with; a case ignores what does not apply to it. */
struct bench_params {
    uint64_t batch_bytes; /* bytes the loader writes per batch (slot size) */
    uint32_t workers;     /* worker processes */
    uint64_t ring_bytes;  /* startup: total data bytes of the ring */
};

/* The peers cases report 14 (with batchring from Python); past the limit
 * a figure is dropped without a word, so the limit leaves room. */
#define BENCH_MAX_FIGURES 20

/* A secondary figure worth reporting: its name carries its unit. */
struct bench_figure {
    const char *name; /* e.g. "loader_ms", "serial_batches_per_s" */
    double value;
};

struct bench_result {
    double value;    /* the subject's headline figure, in case->value_unit */
    double baseline; /* the baseline's, in case->baseline_unit */
    double ratio;    /* as case->ratio_name says; NaN when there is none */
    uint64_t units;  /* units the subject timed */
    uint64_t bytes;  /* bytes the subject's consumer received */
    double seconds;  /* timed seconds of the subject */
    struct bench_figure figures[BENCH_MAX_FIGURES];
    unsigned n_figures;
    char error[256]; /* why the case failed, when run() returned < 0 */
    char note[192];  /* what the reader must know of a run that succeeded,
                        e.g. a peer skipped and why; empty when none */
    char skipped[192]; /* set (run() returning 0) when the case could not
                          measure here, e.g. h2d without a CUDA device: why;
                          no figure of the result is then meaningful */
};

/* Which parameters a case reads. */
#define BENCH_USES_BATCH_BYTES 0x1u
#define BENCH_USES_WORKERS 0x2u
#define BENCH_USES_RING_BYTES 0x4u

struct bench_case {
    const char *name;          /* "efficiency" */
    const char *summary;       /* one line for --help */
    const char *value_unit;    /* of result.value: "ns/batch", "GB/s", ... */
    const char *baseline_name; /* what the baseline is: "private-memory loop" */
    const char *baseline_unit; /* of result.baseline */
    const char *ratio_name;    /* how ratio is formed: "consumer / baseline" */
    unsigned uses;             /* BENCH_USES_* */
    struct bench_params defaults;
    /* Runs the case; returns 0, or a negative errno / BR_E* code with
     * result->error set. Leaves no process or mapping behind either way. */
    int (*run)(struct bench_loop *loop, const struct bench_params *p, struct bench_result *out);
    /* The target for these parameters, if one applies: ratio must
     * be >= *limit (at_least) or <= *limit. */
    bool (*target)(const struct bench_params *p, double *limit, bool *at_least);
};

extern const struct bench_case bench_cases[];
extern const size_t bench_n_cases;

/* The case called `name`, or NULL. */
const struct bench_case *bench_case_find(const char *name);

/* 1 when the ratio meets the target for p, 0 when it misses, -1 when no
 * target applies (or the ratio is not a number). */
int bench_verdict(const struct bench_case *c, const struct bench_params *p, double ratio,
                  double *limit, bool *at_least);

/* Parses "4096", "4K", "64KiB", "1M", "16MiB", "1G" (binary units).
 * Returns false on anything else or on overflow. */
bool bench_parse_bytes(const char *text, uint64_t *out);


#endif /* BR_PERF_CASES_H */
