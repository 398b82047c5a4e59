/* SPDX-License-Identifier: MIT */
/*
 * A C face for Google Benchmark, so that every benchmark in perf/ is C and
 * the only C++ is shim.cc. It covers what our cases use: register a C
 * function with its argument rows, drive the timing loop, report time,
 * counters, bytes and items, and start the runner.
 *
 * The handles are the library's own objects behind opaque pointers:
 * gbench is a benchmark::internal::Benchmark, gbench_state a
 * benchmark::State. They live as long as Google Benchmark keeps them.
 */
#ifndef BR_PERF_SHIM_H
#define BR_PERF_SHIM_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
/* C callers cannot catch, so no function of the shim throws. */
#define GBENCH_NOEXCEPT noexcept
#else
#define GBENCH_NOEXCEPT
#endif

typedef struct gbench gbench;
typedef struct gbench_state gbench_state;

/* The body of a benchmark; `arg` is what was given at registration. */
typedef void (*gbench_fn)(gbench_state *st, void *arg);

/* How a user counter is reported (benchmark::Counter flags). */
enum gbench_counter_kind {
    GBENCH_COUNTER_PLAIN,         /* the value as given */
    GBENCH_COUNTER_RATE,          /* value / measured seconds */
    GBENCH_COUNTER_PER_ITERATION, /* value / iterations */
};

/* Registers fn as benchmark `name`. Never NULL (aborts when out of memory,
 * like Google Benchmark itself). */
gbench *gbench_register(const char *name, gbench_fn fn, void *arg) GBENCH_NOEXCEPT;

/* Adds one row of arguments: the benchmark runs once per row, and its
 * name gets "/name:value" for each. */
void gbench_args(gbench *b, const int64_t *args, int n) GBENCH_NOEXCEPT;
void gbench_arg_names(gbench *b, const char *const *names, int n) GBENCH_NOEXCEPT;

/* Exactly n iterations per repetition (no calibration runs). */
void gbench_iterations(gbench *b, int64_t n) GBENCH_NOEXCEPT;
void gbench_repetitions(gbench *b, int n) GBENCH_NOEXCEPT;
/* The body reports each iteration's time with gbench_set_iteration_time;
 * nothing else is timed. */
void gbench_use_manual_time(gbench *b) GBENCH_NOEXCEPT;
/* Wall-clock time instead of the main thread's CPU time. */
void gbench_use_real_time(gbench *b) GBENCH_NOEXCEPT;

/* The timing loop: true while another iteration is wanted. */
bool gbench_keep_running(gbench_state *st) GBENCH_NOEXCEPT;
/* Stops and restarts the automatic timer (not used with manual time). */
void gbench_pause(gbench_state *st) GBENCH_NOEXCEPT;
void gbench_resume(gbench_state *st) GBENCH_NOEXCEPT;
/* The i-th argument of the current row. */
int64_t gbench_arg(const gbench_state *st, int i) GBENCH_NOEXCEPT;
int64_t gbench_iterations_done(const gbench_state *st) GBENCH_NOEXCEPT;
void gbench_set_iteration_time(gbench_state *st, double seconds) GBENCH_NOEXCEPT;
void gbench_counter(gbench_state *st, const char *name, double value,
                    enum gbench_counter_kind kind) GBENCH_NOEXCEPT;
void gbench_bytes_processed(gbench_state *st, int64_t bytes) GBENCH_NOEXCEPT;
void gbench_items_processed(gbench_state *st, int64_t items) GBENCH_NOEXCEPT;
void gbench_label(gbench_state *st, const char *label) GBENCH_NOEXCEPT;
/* Marks the run failed with a reason; the loop ends at the next check. */
void gbench_skip(gbench_state *st, const char *why) GBENCH_NOEXCEPT;

/* A key/value pair in the report's context block (machine, versions). */
void gbench_context(const char *key, const char *value) GBENCH_NOEXCEPT;

/* Parses the --benchmark_* flags, runs the selected benchmarks and returns
 * the process exit code (1 for an unknown flag). */
int gbench_main(int argc, char **argv) GBENCH_NOEXCEPT;

#ifdef __cplusplus
}
#endif

#endif /* BR_PERF_SHIM_H */
