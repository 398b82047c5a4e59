/* SPDX-License-Identifier: MIT */
/*
 * A serve --plugin that supplies a transform beside a built-in source
 * (plugin revision 3; tests/pack_cli.sh). --plugin-arg copy: each sample
 * copied as it is, through a state its worker_init made (a wrong state
 * fails the batch), so consume --verify passes only if the transform ran
 * and wrote every byte; --plugin-arg invert: every byte inverted, so
 * consume --verify must fail.
 */
#include <batchring.h>
#include <batchring/plugin.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAGIC 0x7a11u

struct wstate {
    unsigned magic;
    int invert;
};

static int init(br_io *io, uint32_t worker, void *user, void **state, char *err, size_t cap)
{
    struct wstate *w = malloc(sizeof *w);
    (void)io, (void)worker;
    if (!w) {
        snprintf(err, cap, "out of memory");
        return -ENOMEM;
    }
    w->magic = MAGIC;
    w->invert = user != NULL;
    *state = w;
    return 0;
}

static void fini(void *state, void *user)
{
    (void)user;
    free(state);
}

static int xform(const void *in, size_t len, uint64_t id, void *out, size_t out_cap,
                 size_t *out_len, uint64_t seed, void *state)
{
    const struct wstate *w = state;
    (void)id, (void)seed;
    if (!w || w->magic != MAGIC)
        return -EPROTO;
    if (len > out_cap)
        return -ENOBUFS;
    for (size_t i = 0; i < len; i++)
        ((uint8_t *)out)[i] = (uint8_t)(((const uint8_t *)in)[i] ^ (w->invert ? 0xff : 0));
    *out_len = len;
    return 0;
}

__attribute__((visibility("default"))) int br_plugin_init2(const br_plugin_args *args,
                                                           br_plugin *p)
{
    static int invert_token;
    if (args->abi < 3) {
        snprintf(p->err, sizeof p->err, "this plugin needs a server of plugin revision 3");
        return -ENOTSUP;
    }
    if (!args->arg || (strcmp(args->arg, "copy") && strcmp(args->arg, "invert"))) {
        snprintf(p->err, sizeof p->err, "--plugin-arg copy|invert");
        return -EINVAL;
    }
    p->worker_init = init;
    p->worker_fini = fini;
    p->user = strcmp(args->arg, "invert") ? NULL : &invert_token;
    p->transform = xform;
    p->transform_max_out = 200;
    return 0;
}
