/* SPDX-License-Identifier: MIT */
/*
 * Where workers run: br_options.cpus / BR_CPUS turned into one CPU set per
 * worker (producer/cpus.c). The supervisor applies worker i's set right
 * after forking it, a replacement the same set as the worker it replaces.
 */
#ifndef BR_PRODUCER_CPUS_H
#define BR_PRODUCER_CPUS_H

#include <sched.h>
#include <stddef.h>
#include <stdint.h>

/* Where the kernel describes the CPUs and their caches. */
#define BR_SYSFS_CPU "/sys/devices/system/cpu"

/* Worker i runs on sets[i % n]; n = 0: workers are not pinned (they keep
 * the trainer's affinity, as before 0.3). */
struct br_cpu_plan {
    uint32_t n;
    cpu_set_t *sets; /* n sets, malloc'd */
};

/*
 * Builds the plan from `text` (NULL or "": not pinned), which came from
 * `source` ("cpus" or "BR_CPUS", for messages):
 *   "0-3,8"  the kernel's list syntax: worker i on the i-th CPU of the
 *            list, round-robin; every CPU must be online
 *   "auto"   the cache-topology rule: when the online CPUs do not all share
 *            one last-level cache, every worker may run on any CPU of the
 *            LLC domain of `trainer_cpu`; otherwise not pinned
 * `root` is the sysfs CPU directory (BR_SYSFS_CPU; tests pass a copy).
 * Returns 0, or -EINVAL naming the bad part, or -ENOMEM, with the message
 * in msg (BR_MSG_CAP bytes).
 */
int br__cpu_plan_make(struct br_cpu_plan *plan, const char *text, const char *source,
                      const char *root, int trainer_cpu, char *msg);

void br__cpu_plan_free(struct br_cpu_plan *plan);

/* Reads a CPU list ("0-3,8") from the file root/rel into *set. Returns 0
 * or a negative errno (-EINVAL when the file does not hold a list). */
int br__cpu_list_read(const char *root, const char *rel, cpu_set_t *set);

/* The last-level cache domain of `cpu`: the shared_cpu_list of its
 * highest-level data or unified cache. Returns 0 or a negative errno. */
int br__cpu_llc_domain(const char *root, int cpu, cpu_set_t *set);

/* The size of the largest data or unified cache of `cpu` below its
 * last-level cache (its L2 on most machines: the cache the core writes
 * through, private to it or to its SMT siblings), in bytes; 0 when sysfs
 * does not say or the CPU has a single data cache level. */
uint64_t br__cpu_inner_cache_bytes(const char *root, int cpu);

/* Writes `set` in the list syntax ("0-3,8"; "" when empty). Returns buf. */
const char *br__cpu_set_format(char *buf, size_t cap, const cpu_set_t *set);

#endif
