/* SPDX-License-Identifier: MIT */
/*
 * batchring-perf: every case of perf/cases.c's table registered with Google
 * Benchmark (through perf/shim.h), one family per case, parameterised by
 * batch bytes and workers.
 *
 * Each family runs a fixed number of iterations, each a slice of about
 * 10 ms of the subject followed by its baseline (or one burst, or one
 * open), so a repetition costs a known time and Google Benchmark never
 * reruns a case's setup to calibrate. Time is manual: an iteration's time
 * is the subject's measured part only. The figures that matter
 * are counters, identical in every family:
 *   value     the subject's figure (unit in the label)
 *   baseline  its baseline's, measured in the same call
 *   ratio     as the case defines it (label); target/target_at_least
 *             when the issue sets one for these parameters
 * items_per_second is units (batches) per second of timed subject.
 * Run it with perf/run.sh, which takes medians over repetitions.
 */
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <batchring.h>

#include "cases.h"
#include "shim.h"
#include "topology.h"

struct gbench_loop {
    struct bench_loop loop; /* first: the case sees only this */
    gbench_state *st;
};

static bool gb_keep_running(struct bench_loop *loop)
{
    return gbench_keep_running(((struct gbench_loop *)loop)->st);
}

static void gb_iteration_done(struct bench_loop *loop, uint64_t ns, uint64_t units)
{
    (void)units;
    gbench_set_iteration_time(((struct gbench_loop *)loop)->st, (double)ns / 1e9);
}

/* Arguments come in this order, for the parameters a case uses. */
static const char *const param_names[] = {"bytes", "workers", "ring_bytes"};

static void run_case(gbench_state *st, void *arg)
{
    const struct bench_case *c = arg;
    struct bench_params p = c->defaults;
    struct gbench_loop gl = {{gb_keep_running, gb_iteration_done}, st};
    struct bench_result r;
    char label[400];
    double limit;
    bool at_least;
    int i = 0;

    if (c->uses & BENCH_USES_BATCH_BYTES)
        p.batch_bytes = (uint64_t)gbench_arg(st, i++);
    if (c->uses & BENCH_USES_WORKERS)
        p.workers = (uint32_t)gbench_arg(st, i++);
    if (c->uses & BENCH_USES_RING_BYTES)
        p.ring_bytes = (uint64_t)gbench_arg(st, i++);

    memset(&r, 0, sizeof r);
    if (c->run(&gl.loop, &p, &r) < 0) {
        gbench_skip(st, r.error);
        return;
    }
    gbench_counter(st, "value", r.value, GBENCH_COUNTER_PLAIN);
    if (c->target) {
        gbench_counter(st, "baseline", r.baseline, GBENCH_COUNTER_PLAIN);
        gbench_counter(st, "ratio", r.ratio, GBENCH_COUNTER_PLAIN);
    }
    if (bench_verdict(c, &p, r.ratio, &limit, &at_least) >= 0) {
        gbench_counter(st, "target", limit, GBENCH_COUNTER_PLAIN);
        gbench_counter(st, "target_at_least", at_least, GBENCH_COUNTER_PLAIN);
    }
    for (unsigned f = 0; f < r.n_figures; f++)
        gbench_counter(st, r.figures[f].name, r.figures[f].value, GBENCH_COUNTER_PLAIN);
    gbench_items_processed(st, (int64_t)r.units);
    if (r.bytes)
        gbench_bytes_processed(st, (int64_t)r.bytes);
    /* "unit;baseline;ratio": perf/run.sh splits it for the table; a note
     * (a peer skipped) goes with the baseline's name. */
    if (c->target)
        snprintf(label, sizeof label, "%s;%s%s%s%s;%s", c->value_unit, c->baseline_name,
                 r.note[0] ? " [" : "", r.note, r.note[0] ? "]" : "", c->ratio_name);
    else
        snprintf(label, sizeof label, "%s;;", c->value_unit);
    gbench_label(st, label);
}

static gbench *family(const char *name, int64_t iterations)
{
    const struct bench_case *c = bench_case_find(name);
    gbench *b = gbench_register(name, run_case, (void *)c);
    int n = 0;
    for (unsigned bit = 0; bit < 3; bit++)
        if (c->uses & (1u << bit))
            n++;
    if (n) {
        const char *names[3];
        n = 0;
        for (unsigned bit = 0; bit < 3; bit++)
            if (c->uses & (1u << bit))
                names[n++] = param_names[bit];
        gbench_arg_names(b, names, n);
    }
    gbench_iterations(b, iterations);
    gbench_use_manual_time(b);
    return b;
}

#define ROW(b, ...)                                                                                \
    do {                                                                                           \
        const int64_t row_[] = {__VA_ARGS__};                                                      \
        gbench_args(b, row_, (int)(sizeof row_ / sizeof row_[0]));                                 \
    } while (0)

static void register_all(void)
{
    static const int64_t batch_bytes[] = {4 << 10, 64 << 10, 1 << 20, 16 << 20};
    static const int64_t scaling_workers[] = {1, 2, 4, 8, 16, 32};
    gbench *b;

    family("floor", 60);

    b = family("handoff", 200);
    for (int i = 0; i < 4; i++)
        ROW(b, batch_bytes[i], 1);

    b = family("efficiency", 30);
    for (int64_t w = 1; w <= 2; w++)
        for (int i = 0; i < 4; i++)
            ROW(b, batch_bytes[i], w);

    /* The seed model is ~20x slower than batchring at 1 MiB, and each
     * iteration pipes as many batches as batchring delivered. */
    b = family("seed", 6);
    for (int i = 0; i < 4; i++)
        ROW(b, batch_bytes[i], 1);

    /* The loader only sleeps: batch bytes set the slots, not the work. */
    b = family("scaling", 30);
    for (int i = 0; i < 6; i++)
        ROW(b, 64 << 10, scaling_workers[i]);

    /* Each iteration opens a generator: the target's point first, then
     * how the first batch grows with the ring. */
    b = family("startup", 3);
    ROW(b, 1 << 20, 8, 256 << 20);
    ROW(b, 1 << 20, 1, 256 << 20);
    ROW(b, 1 << 20, 8, 64 << 20);
    ROW(b, 1 << 20, 8, 16 << 20);
    ROW(b, 1 << 20, 1, 64 << 20);
    ROW(b, 1 << 20, 1, 16 << 20);

    b = family("overlap", 20);
    for (int i = 0; i < 4; i++)
        ROW(b, batch_bytes[i], 1);

    /* A step 4x the load: the trainer sets the pace, the workers sleep on
     * a full ring, and what br_next costs is lost to the step. */
    b = family("slow-trainer", 10);
    for (int i = 0; i < 4; i++)
        ROW(b, batch_bytes[i], 1);
    ROW(b, 64 << 10, 2);

    /* Files: 64 shuffled 4 KiB records per batch; sequential batches of
     * 64 KiB and 1 MiB, each one coalesced read. One worker shows the
     * reader against the loop it replaces; two, what the trainer gets. */
    b = family("records-random", 20);
    ROW(b, 64 * 4096, 1);
    ROW(b, 64 * 4096, 2);
    b = family("records-seq", 20);
    ROW(b, 64 << 10, 1);
    ROW(b, 1 << 20, 1);
    ROW(b, 64 << 10, 2);
    ROW(b, 1 << 20, 2);

    b = family("records-direct", 10);
    ROW(b, 64 << 10, 1);
    ROW(b, 1 << 20, 1);
    ROW(b, 64 << 10, 2);
    ROW(b, 1 << 20, 2);

    /* The peers: batchring's records path, the trainer's own pread loop
     * and PyTorch's DataLoader, 64 x 4 KiB records per batch, 2 workers.
     * An iteration is one round, each peer in turn: 100 ms untimed, then
     * 200 ms timed (case_peers.c). */
    b = family("peers", 6);
    ROW(b, 64 * 4096, 2);
    b = family("peers-seq", 6);
    ROW(b, 64 * 4096, 2);

    /* Token shards (llm.c format), T = 1024, file order: B = 8, 16, 64
     * windows (64 KiB .. 512 KiB of int32 per batch), 1 and 2 workers,
     * beside the trainer's own fread loop. */
    b = family("tokens", 10);
    ROW(b, 8 * 8192, 1);
    ROW(b, 8 * 8192, 2);
    ROW(b, 16 * 8192, 2);
    ROW(b, 64 * 8192, 2);

    family("schedule", 20);
}

/* The machine, in the report, so that a result file says where it ran. */
static void add_context(void)
{
    struct utsname u;
    char line[256], model[200] = "unknown", cores[16];
    FILE *f = fopen("/proc/cpuinfo", "re");
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "model name : %199[^\n]", model) == 1)
            break;
    if (f)
        fclose(f);
    gbench_context("cpu_model", model);
    snprintf(cores, sizeof cores, "%ld", sysconf(_SC_NPROCESSORS_ONLN));
    gbench_context("online_cpus", cores);
    if (uname(&u) == 0) {
        snprintf(line, sizeof line, "%s %s %s", u.sysname, u.release, u.machine);
        gbench_context("kernel", line);
    }
    gbench_context("batchring_version", br_version_string());
    /* The topology beside every figure (issue 12); the floor is the floor
     * case's own row, and run.sh puts it at the top of the report. */
    {
        struct bench_topology t;
        bench_topology_read(&t);
        gbench_context("cpus_allowed", t.allowed);
        gbench_context("cache_sharing", t.caches); /* "caches" is Google Benchmark's own list */
        snprintf(line, sizeof line, "%u", t.llc_domains);
        gbench_context("llc_domains", line);
        gbench_context("br_cpus", t.br_cpus[0] ? t.br_cpus : "unset");
    }
}

int main(int argc, char **argv)
{
    register_all();
    add_context();
    return gbench_main(argc, argv);
}
