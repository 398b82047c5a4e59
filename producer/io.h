/* SPDX-License-Identifier: MIT */
/* The per-worker file reader (br_io), as the rest of the library sees it. */
#ifndef BR_PRODUCER_IO_H
#define BR_PRODUCER_IO_H

#include <stdbool.h>
#include <stddef.h>

#include <batchring.h>

#include "ring/ring.h"

/*
 * Makes a reader for this process. Nothing is set up until the first read:
 * a loader that never reads files costs no io_uring, no pinned memory.
 * single_issuer: only this thread will ever use it (worker processes);
 * false for a trainer's inline generator, which may move between threads.
 * rec receives the reader's counters (may be NULL).
 * Returns 0 or -ENOMEM with a message.
 */
int br__io_create(br_io **out, const struct br_ring *ring, struct br_worker_rec *rec,
                  bool single_issuer, char *msg);

void br__io_destroy(br_io *io);

/* The slot the current job may write: reads into the ring outside it are
 * refused. Also forgets reads a failed loader left queued. */
void br__io_begin_job(br_io *io, void *out, size_t cap);

#endif
