/* SPDX-License-Identifier: MIT */
/* Internal helpers for error messages. */
#ifndef BR_RING_ERROR_H
#define BR_RING_ERROR_H

#include <stddef.h>
#include <stdint.h>

/* Capacity of every internal message buffer. */
#define BR_MSG_CAP 1024u

/* Writes a message into msg (BR_MSG_CAP bytes) and returns code, so that an
 * error path reads `return br__fail(msg, -EINVAL, "...", ...);`. */
int br__fail(char *msg, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * The calling thread's br_last_error(NULL) buffer (BR_MSG_CAP bytes): the
 * calls that have no generator yet (br_open, br_attach, br_ring_status_get,
 * br_dataset_open_*, ...) leave their messages there. Owned here, below
 * every layer that writes it.
 */
char *br__open_error_buffer(void);

/* Human size: "512 B", "64.0 KiB", "1.50 GiB". Returns buf. */
const char *br__format_bytes(char buf[32], uint64_t bytes);

#endif
