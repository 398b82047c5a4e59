/* SPDX-License-Identifier: MIT */
/*
 * The tokens layout (datasets/tokens.c), as datasets.c reaches it: open,
 * the loader and its per-worker state. Internal to datasets/.
 */
#ifndef BR_DATASETS_TOKENS_H
#define BR_DATASETS_TOKENS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <batchring.h>

#include "datasets/shards.h"

/* One process's reader (tokens.c): its open shards and scratch. */
struct br__tokens_worker {
    bool ready;
    struct br__shard_fds fds;
    uint8_t *scratch;
    size_t scratch_cap;
    uint64_t *at; /* per window of the batch: its first token in scratch */
    uint32_t at_cap;
};

struct br__tokens {
    struct br__shards shards; /* first[] counts windows */
    size_t seq_len;           /* T */
    size_t token_bytes;       /* 2 or 4 in the files */
    bool raw;                 /* no header (token_bytes given) */
    uint64_t tokens;          /* in all shards */
    struct br__tokens_worker worker; /* per process: see tokens.c */
};

/* Opens and checks every shard of `pattern` (shards.h). token_bytes 0 means
 * llm.c .bin shards; 2 or 4 raw token files. Returns 0 or a negative code
 * with the message in msg. */
int br__tokens_open(struct br__tokens **out, const char *pattern, size_t seq_len,
                    size_t token_bytes, char *msg);
/* Tokens of token_bytes (2 or 4) already checked in shards whose first[]
 * counts tokens and skip[] gives where they start (a packed tokens
 * dataset, packed.c): takes *s over (leaving it empty) and cuts windows of
 * seq_len + 1 as br__tokens_open does; `what` names it in messages. */
int br__tokens_from_shards(struct br__tokens **out, struct br__shards *s, size_t seq_len,
                           size_t token_bytes, const char *what, char *msg);
void br__tokens_free(struct br__tokens *t);
uint64_t br__tokens_samples(const struct br__tokens *t);

/* Shards this process has opened so far. */
uint32_t br__tokens_opens(const struct br__tokens *t);

/* The loader: int32 inputs[B][T] then targets[B][T]; per_window (under a
 * transform) each window's inputs[T] then targets[T], with offsets. */
int br__tokens_load(br_job *job, const struct br__tokens *t, bool per_window);

#endif
