/* SPDX-License-Identifier: MIT */
/*
 * What every program above the public API shares (the command, the
 * benchmark cases, the tests): one clock and one way to print a size. The
 * library keeps its own (ring/error.c, ring/ring.c) behind the API: a
 * program linked against the shared library cannot call its hidden symbols,
 * and a formatter is not something the API should export.
 */
#ifndef BR_SYNTH_UTIL_H
#define BR_SYNTH_UTIL_H

#include <stdint.h>

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t br_util_now_ns(void);

/* A size in B, KiB, MiB, ...: whole units without decimals ("64 KiB", as
 * the benchmark cases are named), else two ("1.50 MiB"); the library's
 * messages follow the same rule. */
const char *br_util_bytes(char buf[32], uint64_t bytes);

#endif /* BR_SYNTH_UTIL_H */
