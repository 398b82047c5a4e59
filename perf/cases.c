/* SPDX-License-Identifier: MIT */
/*
 * The cases of the performance suite, each a subject beside a
 * baseline from the same call:
 *
 *   floor       two processes bounce one cache line in MAP_SHARED memory;
 *               half a round trip is the least a cross-process handoff costs
 *   handoff     br_next when the next slot is already READY   vs the floor
 *   efficiency  bytes/s the consumer receives                  vs the same
 *               loader writing into private memory in a plain loop
 *   seed        batches/s                                      vs the same
 *               loader in a forked child that pipes each batch to us
 *   scaling     batches/s with a loader that sleeps 2 ms       vs workers x 500
 *   startup     br_open to the first batch                     vs prefaulting
 *               a ring of the same size once
 *   overlap     batches/s with a CPU-bound loader and a trainer step of the
 *               same cost                                      vs 1 / max(load, step)
 *   slow-trainer  batches/s with that step 4x the load           vs 1 / step
 *   records-random / records-seq
 *               batches/s of the built-in records dataset read through the
 *               workers' io_uring                               vs the same
 *               reads in a pread loop (and in a bare liburing loop)
 *   peers / peers-seq
 *               batches/s of the records dataset       vs PyTorch's DataLoader
 *               on the same file (and the trainer's own pread loop)
 *   h2d         GB/s of cudaMemcpyAsync from held, pinned slots  vs cudaMemcpy
 *               from a pinned private buffer (and from pageable memory);
 *               skipped without a CUDA runtime and device
 *
 * Fairness rules: a baseline does the same work per unit as its subject
 * (the same loader function, the same bytes) for the same number of
 * units, in chunks interleaved with the subject's (this machine is shared:
 * what slows one should slow the other); figures are means over the timed
 * units; nothing is tuned per case to help a number.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "case_common.h"

/*
 * Each family has a file of its own, with its cases' run functions and
 * targets (issue 3); what they share is in case_common.c:
 *
 *   case_handoff.c     floor, handoff
 *   case_throughput.c  efficiency, seed, scaling
 *   case_startup.c     startup
 *   case_overlap.c     overlap, slow-trainer
 *   case_records.c     records-random, records-seq, records-direct
 *   case_peers.c       peers, peers-seq
 *   case_h2d.c         h2d (the CUDA runtime dlopen()ed)
 *   case_tokens.c      tokens (llm.c shards beside a trainer's fread loop)
 *   case_schedule.c    schedule (batchring-perf only: library internals)
 *
 * This file holds the table (names, units, defaults: what --help and the
 * JSON show) and the helpers cases.h declares.
 */

const struct bench_case bench_cases[] = {
    {
        .name = "floor",
        .summary = "two processes bounce one cache line in shared memory: ns per one-way handoff",
        .value_unit = "ns/handoff",
        .baseline_name = "none: this is the floor",
        .baseline_unit = "",
        .ratio_name = "",
        .run = bench__floor_run,
    },
    {
        .name = "handoff",
        .summary = "br_next when the next batch is already READY (loader writes nothing)",
        .value_unit = "ns/batch",
        .baseline_name = "cache-line floor",
        .baseline_unit = "ns/handoff",
        .ratio_name = "handoff / floor",
        .uses = BENCH_USES_BATCH_BYTES | BENCH_USES_WORKERS,
        .defaults = {.batch_bytes = 1 * MIB, .workers = 1},
        .run = bench__handoff_run,
        .target = bench__handoff_target,
    },
    {
        .name = "efficiency",
        .summary = "a loader memcpy()s each batch: bytes/s the consumer receives",
        .value_unit = "GB/s",
        .baseline_name = "same loader into private memory, one process",
        .baseline_unit = "GB/s",
        .ratio_name = "consumer / private loop",
        .uses = BENCH_USES_BATCH_BYTES | BENCH_USES_WORKERS,
        .defaults = {.batch_bytes = 1 * MIB, .workers = 1},
        .run = bench__efficiency_run,
        .target = bench__efficiency_target,
    },
    {
        .name = "seed",
        .summary = "batches/s beside the seed model: a forked child pipes each batch",
        .value_unit = "batches/s",
        .baseline_name = "same loader in a forked child, batches through a pipe",
        .baseline_unit = "batches/s",
        .ratio_name = "batchring / seed model",
        .uses = BENCH_USES_BATCH_BYTES | BENCH_USES_WORKERS,
        .defaults = {.batch_bytes = 1 * MIB, .workers = 1},
        .run = bench__seed_run,
        .target = bench__seed_target,
    },
    {
        .name = "scaling",
        .summary = "a latency-bound loader (sleeps 2 ms per batch) over N workers",
        .value_unit = "batches/s",
        .baseline_name = "ideal: workers x 500",
        .baseline_unit = "batches/s",
        .ratio_name = "measured / ideal",
        .uses = BENCH_USES_BATCH_BYTES | BENCH_USES_WORKERS,
        .defaults = {.batch_bytes = 64 * KIB, .workers = 8},
        .run = bench__scaling_run,
        .target = bench__scaling_target,
    },
    {
        .name = "startup",
        .summary = "br_open to the first batch, with the whole ring prefaulted",
        .value_unit = "ms",
        .baseline_name = "prefault a ring-sized memfd once",
        .baseline_unit = "ms",
        .ratio_name = "first batch / prefault",
        .uses = BENCH_USES_BATCH_BYTES | BENCH_USES_WORKERS | BENCH_USES_RING_BYTES,
        .defaults = {.batch_bytes = 1 * MIB, .workers = 8, .ring_bytes = 256 * MIB},
        .run = bench__startup_run,
        .target = bench__startup_target,
    },
    {
        .name = "overlap",
        .summary = "CPU-bound loader and trainer step of equal cost, overlapped by one worker",
        .value_unit = "batches/s",
        .baseline_name = "ideal: 1 / max(load, step)",
        .baseline_unit = "batches/s",
        .ratio_name = "measured / ideal",
        .uses = BENCH_USES_BATCH_BYTES | BENCH_USES_WORKERS,
        .defaults = {.batch_bytes = 1 * MIB, .workers = 1},
        .run = bench__overlap_run,
        .target = bench__overlap_target,
    },
    {
        .name = "slow-trainer",
        .summary = "a trainer step 4x the load: the ring stays full, the trainer loses what br_next takes",
        .value_unit = "batches/s",
        .baseline_name = "ideal: 1 / step",
        .baseline_unit = "batches/s",
        .ratio_name = "measured / ideal",
        .uses = BENCH_USES_BATCH_BYTES | BENCH_USES_WORKERS,
        .defaults = {.batch_bytes = 64 * KIB, .workers = 1},
        .run = bench__slow_trainer_run,
        .target = bench__slow_trainer_target,
    },
    {
        .name = "records-random",
        .summary = "records dataset, 4 KiB records at shuffled ids, read by the workers' io_uring",
        .value_unit = "batches/s",
        .baseline_name = "the same reads in a pread loop (vs_liburing: a bare liburing loop)",
        .baseline_unit = "batches/s",
        .ratio_name = "batchring / pread loop",
        .uses = BENCH_USES_BATCH_BYTES | BENCH_USES_WORKERS,
        .defaults = {.batch_bytes = 64 * IO_RECORD_BYTES, .workers = 2},
        .run = bench__records_random_run,
        .target = bench__records_random_target,
    },
    {
        .name = "records-seq",
        .summary = "records dataset at sequential ids: each batch one coalesced read",
        .value_unit = "batches/s",
        .baseline_name = "the same reads in a pread loop (vs_liburing: a bare liburing loop)",
        .baseline_unit = "batches/s",
        .ratio_name = "batchring / pread loop",
        .uses = BENCH_USES_BATCH_BYTES | BENCH_USES_WORKERS,
        .defaults = {.batch_bytes = 1 * MIB, .workers = 1},
        .run = bench__records_seq_run,
        .target = bench__records_seq_target,
    },
    {
        .name = "records-direct",
        .summary = "records dataset, sequential ids, O_DIRECT (the page cache dropped)",
        .value_unit = "batches/s",
        .baseline_name = "the same O_DIRECT reads in a pread loop (vs_liburing: bare liburing)",
        .baseline_unit = "batches/s",
        .ratio_name = "batchring / pread loop",
        .uses = BENCH_USES_BATCH_BYTES | BENCH_USES_WORKERS,
        .defaults = {.batch_bytes = 1 * MIB, .workers = 1},
        .run = bench__records_direct_run,
        .target = bench__records_seq_target,
    },
    {
        .name = "peers",
        .summary = "records dataset beside PyTorch's DataLoader and a pread loop, shuffled 4 KiB records",
        .value_unit = "batches/s",
        .baseline_name = "PyTorch DataLoader, same workers (figures: the pread loop)",
        .baseline_unit = "batches/s",
        .ratio_name = "batchring / DataLoader",
        .uses = BENCH_USES_BATCH_BYTES | BENCH_USES_WORKERS,
        .defaults = {.batch_bytes = 64 * IO_RECORD_BYTES, .workers = 2},
        .run = bench__peers_run,
        .target = bench__peers_target,
    },
    {
        .name = "peers-seq",
        .summary = "the peers case with the records in file order",
        .value_unit = "batches/s",
        .baseline_name = "PyTorch DataLoader, same workers (figures: the pread loop)",
        .baseline_unit = "batches/s",
        .ratio_name = "batchring / DataLoader",
        .uses = BENCH_USES_BATCH_BYTES | BENCH_USES_WORKERS,
        .defaults = {.batch_bytes = 64 * IO_RECORD_BYTES, .workers = 2},
        .run = bench__peers_seq_run,
        .target = bench__peers_seq_target,
    },
    {
        .name = "h2d",
        .summary = "host-to-device GB/s from held, pinned slots (skipped without a CUDA device)",
        .value_unit = "GB/s",
        .baseline_name = "cudaMemcpy from a pinned buffer (figures: pageable)",
        .baseline_unit = "GB/s",
        .ratio_name = "held slots / pinned buffer",
        .uses = BENCH_USES_BATCH_BYTES | BENCH_USES_WORKERS,
        .defaults = {.batch_bytes = 4 * MIB, .workers = 2},
        .run = bench__h2d_run,
        .target = bench__h2d_target,
    },
    {
        .name = "tokens",
        .summary = "tokens layout, llm.c shards, T = 1024 in file order (B = batch bytes / 8 KiB)",
        .value_unit = "batches/s",
        .baseline_name = "the trainer's own fseek/fread + widen loop over the same shards",
        .baseline_unit = "batches/s",
        .ratio_name = "batchring / fread loop",
        .uses = BENCH_USES_BATCH_BYTES | BENCH_USES_WORKERS,
        .defaults = {.batch_bytes = 16 * 8 * KIB, .workers = 2},
        .run = bench__tokens_run,
        .target = bench__tokens_target,
    },
#ifdef BR_PERF_INTERNAL
    {
        .name = "schedule",
        .summary = "the ids of a shuffled 1024-sample batch over 10^9 ids, beside a handoff",
        .value_unit = "ns/batch",
        .baseline_name = "br_next of a ready batch",
        .baseline_unit = "ns/batch",
        .ratio_name = "schedule / handoff",
        .uses = 0,
        .defaults = {.batch_bytes = 4 * KIB, .workers = 1},
        .run = bench__schedule_run,
        .target = bench__schedule_target,
    },
#endif
};

const size_t bench_n_cases = sizeof bench_cases / sizeof bench_cases[0];

const struct bench_case *bench_case_find(const char *name)
{
    for (size_t i = 0; i < bench_n_cases; i++)
        if (!strcmp(bench_cases[i].name, name))
            return &bench_cases[i];
    return NULL;
}

int bench_verdict(const struct bench_case *c, const struct bench_params *p, double ratio,
                  double *limit, bool *at_least)
{
    if (!c->target || !c->target(p, limit, at_least) || isnan(ratio))
        return -1;
    return *at_least ? ratio >= *limit : ratio <= *limit;
}

bool bench_parse_bytes(const char *text, uint64_t *out)
{
    char *end = NULL;
    unsigned long long v;
    unsigned shift = 0;

    if (!text || !*text || *text == '-')
        return false;
    errno = 0;
    v = strtoull(text, &end, 10);
    if (errno || end == text)
        return false;
    switch (*end) {
    case 'k':
    case 'K':
        shift = 10, end++;
        break;
    case 'm':
    case 'M':
        shift = 20, end++;
        break;
    case 'g':
    case 'G':
        shift = 30, end++;
        break;
    default:
        break;
    }
    if (shift && (!strcmp(end, "iB") || !strcmp(end, "B")))
        end += strlen(end);
    if (!shift && (!strcmp(end, "B")))
        end++;
    if (*end || v > (UINT64_MAX >> shift))
        return false;
    *out = (uint64_t)v << shift;
    return true;
}

