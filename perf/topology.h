/* SPDX-License-Identifier: MIT */
/*
 * Where a benchmark ran (perf/topology.c): the machine's CPUs and which of
 * them share a cache, the CPUs this process may use, and, sampled during
 * a run, the CPUs the trainer and each worker actually ran on. Printed
 * with every `batchring bench` and `make perf` run (issue 12: a figure
 * without its topology cannot be reproduced). Public API and libc only,
 * like the rest of the suite (perf/README.md).
 */
#ifndef BR_PERF_TOPOLOGY_H
#define BR_PERF_TOPOLOGY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <batchring.h>

/* The machine, read from /sys/devices/system/cpu and sched_getaffinity. */
struct bench_topology {
    char online[128];     /* online CPUs, "0-1" */
    char allowed[128];    /* CPUs this process may run on */
    char caches[512];     /* per level, the groups of CPUs sharing a cache:
                             "L1d 0|1, L2 0|1, L3 0-1" */
    char llc[256];        /* the last-level groups alone, "0-1" */
    unsigned llc_domains; /* how many LLC groups hold online CPUs */
    char br_cpus[64];     /* the BR_CPUS the workers get, "" when unset */
};

void bench_topology_read(struct bench_topology *t);

/* Placement of the current run: reset before a case, sampled by the case
 * at untimed moments (perf/case_common.c), described after it. */
#define BENCH_MAX_PLACED_WORKERS 16
void bench_placement_reset(void);
/* Records the CPU this thread is on and, for each worker of g, the CPU it
 * last ran on (/proc/PID/stat field 39) and the CPUs it may use
 * (Cpus_allowed_list). A few system calls: call it between timed parts. */
void bench_placement_sample(br_gen *g);
/* "trainer 0-1; w0 1 (may 0-1); w1 0 (may 0-1)": for each, every CPU it
 * was seen on. "" before any sample. */
const char *bench_placement_describe(char *buf, size_t cap);
/* The same, split for JSON: the trainer's CPUs, and worker i's CPUs and
 * allowed list; false past the last worker seen. */
const char *bench_placement_trainer(char *buf, size_t cap);
bool bench_placement_worker(unsigned i, char *ran, size_t ran_cap, char *allowed,
                            size_t allowed_cap);

#endif /* BR_PERF_TOPOLOGY_H */
