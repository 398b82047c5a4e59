/* SPDX-License-Identifier: MIT */
/*
 * Deterministic synthetic samples: the content, size and label of sample i
 * of a dataset made with seed s are pure functions of (s, i). mkdata writes
 * them, and the demo, `consume --verify` and the tests recompute them to
 * check every byte they receive without keeping a copy of the dataset.
 *
 * Every byte depends on the seed, the sample and its offset in the sample,
 * so a swapped, shifted, stale or torn sample cannot pass the check.
 */
#ifndef BR_SYNTH_SYNTH_H
#define BR_SYNTH_SYNTH_H

#include <stddef.h>
#include <stdint.h>

/* The 64-bit finaliser of splitmix64: a cheap bijective mixer. */
uint64_t br_synth_mix(uint64_t x);

/* Writes the first len bytes of sample `sample` to dst. */
void br_synth_fill(void *dst, size_t len, uint64_t seed, uint64_t sample);

/* Returns len when buf holds the first len bytes of the sample, else the
 * offset of the first wrong byte. */
size_t br_synth_check(const void *buf, size_t len, uint64_t seed, uint64_t sample);

/* The size of a sample, uniform in [min, max] (min when max <= min). */
size_t br_synth_size(uint64_t seed, uint64_t sample, size_t min, size_t max);

/* The label of a sample, in [-1000, 1000]: negative ones included, so that
 * a sign lost on the way shows. */
int32_t br_synth_label(uint64_t seed, uint64_t sample);

#endif /* BR_SYNTH_SYNTH_H */
