/* SPDX-License-Identifier: MIT */
/*
 * The transform stage of the built-in datasets (datasets/transform.c): a
 * loader that wraps a dataset's own loader, reading the batch into per-worker
 * scratch and then running the user's transform on each sample into the slot,
 * and the worker hooks that make that scratch and run the user's own hooks.
 */
#ifndef BR_DATASETS_TRANSFORM_H
#define BR_DATASETS_TRANSFORM_H

#include <batchring.h>

/* Lives inside the dataset (set by br_open_dataset before br_open); the
 * forked workers read their copy. */
struct br__transform {
    br_transform_fn fn;            /* NULL: no transform, hooks only */
    size_t max_out;                /* largest output of one sample */
    void *user;                    /* given to the user's hooks */
    br_worker_init_fn init;        /* the user's (opt->worker_init), or NULL */
    br_worker_fini_fn fini;        /* the user's (opt->worker_fini), or NULL */
    br_loader_fn inner;            /* the dataset's own loader */
    void *inner_user;              /* the dataset */
    br_worker_init_fn inner_init;  /* the dataset's own worker hook */
    size_t raw_cap;                /* scratch bytes for one raw batch */
    uint32_t batch_size;           /* samples per batch, for the scratch offsets */
};

int br__transform_load(br_job *job, void *user);
int br__transform_worker_init(br_io *io, uint32_t worker, void *user, void **state, char *err,
                              size_t err_cap);
void br__transform_worker_fini(void *state, void *user);

#endif
