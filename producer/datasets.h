/* SPDX-License-Identifier: MIT */
/* Internal glue between the built-in datasets and the generator. */
#ifndef BR_PRODUCER_DATASETS_H
#define BR_PRODUCER_DATASETS_H

/*
 * The calling thread's br_last_error(NULL) buffer (BR_MSG_CAP bytes), owned
 * by consumer/gen.c: br_dataset_open_* and br_open_dataset leave their
 * messages there, where br_open leaves its own.
 */
char *br__open_error_buffer(void);

#endif
