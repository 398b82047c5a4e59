// SPDX-License-Identifier: MIT
//
// The one C++ file of perf/: shim.h's C API over Google Benchmark. Each
// function is a thin cast-and-call; nothing here may throw into C, so the
// functions are noexcept (an unexpected exception terminates, loudly).
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "shim.h"

namespace
{

benchmark::internal::Benchmark *bench(gbench *b)
{
    return reinterpret_cast<benchmark::internal::Benchmark *>(b);
}

benchmark::State &state(gbench_state *st)
{
    return *reinterpret_cast<benchmark::State *>(st);
}

const benchmark::State &state(const gbench_state *st)
{
    return *reinterpret_cast<const benchmark::State *>(st);
}

} // namespace

extern "C" {

gbench *gbench_register(const char *name, gbench_fn fn, void *arg) noexcept
{
    auto *b = benchmark::RegisterBenchmark(
        name, [fn, arg](benchmark::State &st) { fn(reinterpret_cast<gbench_state *>(&st), arg); });
    return reinterpret_cast<gbench *>(b);
}

void gbench_args(gbench *b, const int64_t *args, int n) noexcept
{
    bench(b)->Args(std::vector<int64_t>(args, args + n));
}

void gbench_arg_names(gbench *b, const char *const *names, int n) noexcept
{
    bench(b)->ArgNames(std::vector<std::string>(names, names + n));
}

void gbench_iterations(gbench *b, int64_t n) noexcept
{
    bench(b)->Iterations(n);
}

void gbench_repetitions(gbench *b, int n) noexcept
{
    bench(b)->Repetitions(n);
}

void gbench_use_manual_time(gbench *b) noexcept
{
    bench(b)->UseManualTime();
}

void gbench_use_real_time(gbench *b) noexcept
{
    bench(b)->UseRealTime();
}

bool gbench_keep_running(gbench_state *st) noexcept
{
    return state(st).KeepRunning();
}

void gbench_pause(gbench_state *st) noexcept
{
    state(st).PauseTiming();
}

void gbench_resume(gbench_state *st) noexcept
{
    state(st).ResumeTiming();
}

int64_t gbench_arg(const gbench_state *st, int i) noexcept
{
    return state(st).range(static_cast<std::size_t>(i));
}

int64_t gbench_iterations_done(const gbench_state *st) noexcept
{
    return static_cast<int64_t>(state(st).iterations());
}

void gbench_set_iteration_time(gbench_state *st, double seconds) noexcept
{
    state(st).SetIterationTime(seconds);
}

void gbench_counter(gbench_state *st, const char *name, double value,
                    enum gbench_counter_kind kind) noexcept
{
    benchmark::Counter::Flags flags = benchmark::Counter::kDefaults;
    if (kind == GBENCH_COUNTER_RATE)
        flags = benchmark::Counter::kIsRate;
    else if (kind == GBENCH_COUNTER_PER_ITERATION)
        flags = benchmark::Counter::kAvgIterations;
    state(st).counters[name] = benchmark::Counter(value, flags);
}

void gbench_bytes_processed(gbench_state *st, int64_t bytes) noexcept
{
    state(st).SetBytesProcessed(bytes);
}

void gbench_items_processed(gbench_state *st, int64_t items) noexcept
{
    state(st).SetItemsProcessed(items);
}

void gbench_label(gbench_state *st, const char *label) noexcept
{
    state(st).SetLabel(label);
}

void gbench_skip(gbench_state *st, const char *why) noexcept
{
    state(st).SkipWithError(why);
}

void gbench_context(const char *key, const char *value) noexcept
{
    benchmark::AddCustomContext(key, value);
}

int gbench_main(int argc, char **argv) noexcept
{
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv))
        return 1;
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}

} // extern "C"
