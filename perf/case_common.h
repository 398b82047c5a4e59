/* SPDX-License-Identifier: MIT */
/*
 * What the case files of the performance suite share (perf/case_*.c): the
 * constants every family is measured with, the loaders, the generator
 * helpers and the interleaved subject/baseline loop (bench__run_pipeline),
 * and each family's run and target functions for the table in cases.c.
 * Internal to perf/: the interface of the suite is cases.h.
 *
 * Like cases.h, this needs only <batchring.h> and libc: `batchring bench`
 * compiles every case file but case_schedule.c, and the installed command
 * may not depend on the library's internal headers (perf/README.md).
 */
#ifndef BR_PERF_CASE_COMMON_H
#define BR_PERF_CASE_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <batchring.h>

#include "cases.h"

#define KIB (UINT64_C(1) << 10)
#define MIB (UINT64_C(1) << 20)

/* One sample of the synthetic dataset; a batch is batch_bytes / RECORD_BYTES
 * samples, so the ring's per-batch metadata (ids) grows with the batch as
 * it would for real data. */
#define RECORD_BYTES (4 * KIB)
/* The records cases' record (case_records.c; cases.c's table sizes their
 * default batch in records). */
#define IO_RECORD_BYTES (4 * KIB)
/* Length of the subject's part of one loop iteration of a throughput case:
 * long enough that what each iteration starts with (a refilled ring, a
 * worker waking up, caches and TLBs the baseline's chunk disturbed) is a
 * small part of it; 2 ms cost batchring 5-10% at 1 MiB, and 10 ms still
 * cost the records cases 20-30%: their workers copy from a mapping whose
 * page-table walks the baseline's chunk had pushed out of the caches. */
#define STEP_NS UINT64_C(50000000)
/* Untimed running before a subject's loop: every worker forked and mapped,
 * the ring in its steady state. */
#define WARMUP_NS UINT64_C(30000000)
/* Any wait for the ring that lasts this long means something is broken. */
#define STUCK_NS UINT64_C(10000000000)

/* ---- helpers (case_common.c) ---- */



/* Sets out->error from the format and returns code. */
int bench__fail(struct bench_result *out, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Appends a secondary figure (dropped past BENCH_MAX_FIGURES). */
void bench__add_figure(struct bench_result *out, const char *name, double value);

/* Appends where the time of g's run went, per batch, over its whole life
 * (warm-up and drains included): the workers' load and wait for a free
 * slot (us), their sleeps for a slot, and the trainer's sleeps in br_next
 * (br_stats). Call before br_close. */
struct br_gen;
void bench__add_wait_figures(struct bench_result *out, struct br_gen *g);

static inline uint64_t bench__max_u64(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}

uint64_t bench__page_round(uint64_t bytes);

/* Private, page-aligned memory with every page already faulted in, so a
 * baseline pays no first-touch either. NULL on failure. */
void *bench__private_buffer(uint64_t bytes);
void bench__free_buffer(void *p, uint64_t bytes);

/* A pattern that no page of zeroes matches, so a copy really moves data. */
void bench__fill_pattern(uint8_t *p, uint64_t bytes);

/* Results of work the compiler must not drop. */
extern volatile uint64_t bench__sink;

/* ---- loaders (run in workers, and in the baselines in this process) ---- */

struct loader_cfg {
    const uint8_t *src; /* batch_bytes of source data */
    uint64_t batch_bytes;
};

/* Writes nothing: the batch is empty. */
int bench__load_nothing(br_job *job, void *user);
/* Copies cfg->batch_bytes from cfg->src (user is a struct loader_cfg). */
int bench__load_copy(br_job *job, void *user);

/* One round of a dependent multiply-xorshift: ~6 cycles a word whatever
 * the vector units, so that the loader's and the step's work are CPU, not
 * memory bandwidth, and two of them on two cores do not slow each other. */
static inline uint64_t bench__mix_word(uint64_t x, uint64_t w)
{
    x = (x ^ w) * 0x9e3779b97f4a7c15u;
    return x ^ (x >> 29);
}

/* The overlap case's trainer step: `work` rounds of the same mixing over
 * the batch's words, cycling. Calibrated so that it costs what a load does. */
uint64_t bench__training_step(const uint64_t *w, uint64_t n_words, uint64_t work);

/* A job as a worker would get it, aimed at private memory. */
br_job bench__private_job(void *out, uint64_t cap, char *err);

/* ---- generators ---- */

uint32_t bench__records_per_batch(uint64_t batch_bytes);

/* Opens a generator over a synthetic dataset with room for every worker
 * (batch_size x workers <= n_ids, so no worker is lowered away). slots = 0
 * means the library's default. */
int bench__open_generator(br_gen **g, br_loader_fn load, void *user, uint64_t batch_bytes,
                          uint32_t workers, uint32_t slots, struct bench_result *out);

/* br_next, with a failure described in out. */
int bench__next_batch(br_gen *g, br_batch *b, struct bench_result *out);

/* The trainer's work on each batch, if any. */
struct trainer {
    uint64_t work; /* rounds of bench__training_step; 0: the trainer does nothing */
};

/* n batches through the trainer; *bytes (may be NULL) counts their bytes. */
int bench__consume(br_gen *g, uint64_t n, const struct trainer *t, uint64_t *bytes,
                   struct bench_result *out);

/* Waits until the workers have filled every slot the consumer does not
 * hold, so that each br_next of the next burst finds its batch READY. */
int bench__wait_ring_full(br_gen *g, uint32_t slots, struct bench_result *out);

/* A baseline run in chunks between the subject's: `run` does n units. */
struct baseline {
    int (*run)(void *ctx, uint64_t n);
    void *ctx;
    uint64_t units;
    uint64_t ns;
};

double bench__baseline_ns_per_unit(const struct baseline *b);

/* The consumer side of a throughput case, its baselines interleaved
 * (case_common.c says how). */
int bench__run_pipeline(struct bench_loop *loop, br_gen *g, uint32_t workers,
                        const struct trainer *t, struct baseline *base, unsigned n_base,
                        struct bench_result *out);

/* A loader called in a plain loop into private memory. */
struct private_loader {
    br_loader_fn load;
    void *user;
    br_job job;
    const struct trainer *trainer; /* when set, a step after each load */
};

/* A struct baseline's run: n loads of a struct private_loader. */
int bench__private_loads(void *ctx, uint64_t n);

/* ---- the families: run (and target) functions for cases.c's table ---- */

/* case_handoff.c: floor (a cache line bounced), handoff (br_next on READY) */
int bench__floor_run(struct bench_loop *loop, const struct bench_params *p,
                     struct bench_result *out);
int bench__handoff_run(struct bench_loop *loop, const struct bench_params *p,
                       struct bench_result *out);
bool bench__handoff_target(const struct bench_params *p, double *limit, bool *at_least);
/* case_throughput.c: efficiency, seed, scaling */
int bench__efficiency_run(struct bench_loop *loop, const struct bench_params *p,
                          struct bench_result *out);
bool bench__efficiency_target(const struct bench_params *p, double *limit, bool *at_least);
int bench__seed_run(struct bench_loop *loop, const struct bench_params *p,
                    struct bench_result *out);
bool bench__seed_target(const struct bench_params *p, double *limit, bool *at_least);
int bench__scaling_run(struct bench_loop *loop, const struct bench_params *p,
                       struct bench_result *out);
bool bench__scaling_target(const struct bench_params *p, double *limit, bool *at_least);
/* case_startup.c */
int bench__startup_run(struct bench_loop *loop, const struct bench_params *p,
                       struct bench_result *out);
bool bench__startup_target(const struct bench_params *p, double *limit, bool *at_least);
/* case_overlap.c: overlap, slow-trainer */
int bench__overlap_run(struct bench_loop *loop, const struct bench_params *p,
                       struct bench_result *out);
bool bench__overlap_target(const struct bench_params *p, double *limit, bool *at_least);
int bench__slow_trainer_run(struct bench_loop *loop, const struct bench_params *p,
                            struct bench_result *out);
bool bench__slow_trainer_target(const struct bench_params *p, double *limit, bool *at_least);
/* case_records.c: records-random, records-seq, records-direct */
int bench__records_random_run(struct bench_loop *loop, const struct bench_params *p,
                              struct bench_result *out);
bool bench__records_random_target(const struct bench_params *p, double *limit, bool *at_least);
int bench__records_seq_run(struct bench_loop *loop, const struct bench_params *p,
                           struct bench_result *out);
bool bench__records_seq_target(const struct bench_params *p, double *limit, bool *at_least);
int bench__records_direct_run(struct bench_loop *loop, const struct bench_params *p,
                              struct bench_result *out);
/* case_peers.c: peers (shuffled), peers-seq (file order): batchring's records
 * path beside the trainer's pread loop and PyTorch's DataLoader */
int bench__peers_run(struct bench_loop *loop, const struct bench_params *p,
                     struct bench_result *out);
int bench__peers_seq_run(struct bench_loop *loop, const struct bench_params *p,
                         struct bench_result *out);
bool bench__peers_target(const struct bench_params *p, double *limit, bool *at_least);
bool bench__peers_seq_target(const struct bench_params *p, double *limit, bool *at_least);
/* case_h2d.c: host-to-device copies from held, pinned slots beside
 * cudaMemcpy from pinned and pageable private memory; skipped without a
 * CUDA runtime or device */
int bench__h2d_run(struct bench_loop *loop, const struct bench_params *p,
                   struct bench_result *out);
bool bench__h2d_target(const struct bench_params *p, double *limit, bool *at_least);
/* case_schedule.c: batchring-perf only (it calls the library's internal
 * schedule, BR_PERF_INTERNAL) */
int bench__schedule_run(struct bench_loop *loop, const struct bench_params *p,
                        struct bench_result *out);
bool bench__schedule_target(const struct bench_params *p, double *limit, bool *at_least);

/* case_tokens.c: the tokens layout over llm.c shards beside the trainer's
 * fread loop (B = batch_bytes / 8 KiB, T = 1024) */
int bench__tokens_run(struct bench_loop *loop, const struct bench_params *p,
                      struct bench_result *out);
bool bench__tokens_target(const struct bench_params *p, double *limit, bool *at_least);

#endif /* BR_PERF_CASE_COMMON_H */
