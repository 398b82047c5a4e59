/* SPDX-License-Identifier: MIT */
/*
 * batchring plugins: custom loaders for a served ring
 * (`batchring serve --plugin LIB.so`). A side interface of batchring.h, in
 * a header of its own: only a plugin, and the server that loads it, need
 * it.
 *
 * A plugin is a shared object exporting
 *
 *   int br_plugin_init2(const br_plugin_args *args, br_plugin *plugin);
 *
 * which reads what serve was given in *args (batch size, workers, slot
 * bytes, --plugin-arg, ...), fills *plugin and returns 0, or a negative
 * code with a message in plugin->err; serve then fails naming the plugin
 * file and that message. The server dlopens the plugin, calls its init once
 * in the server process before the ring exists (the workers are forked
 * afterwards and inherit what it set up), and opens the generator with
 * load, worker_init, worker_fini and user from *plugin; n_ids and
 * slot_bytes give the dataset size and the largest batch when the command
 * line does not. When serve ends (the last epoch, SIGINT/SIGTERM/SIGHUP, its
 * consumer gone with --exit-on-detach, an error after the init succeeded)
 * it closes the generator, which stops and reaps the workers (each runs
 * worker_fini), then calls plugin->fini(user) once in the server process,
 * then dlcloses the plugin. fini does not run when the init failed, nor
 * when serve is killed (SIGKILL, a crash).
 *
 * Versions of this interface (BR_PLUGIN_ABI, a revision number, which is
 * not the library's version):
 *   1  int br_plugin_init(const char *arg, br_plugin *plugin): the
 *      br_plugin fields up to err; the plugin learns only --plugin-arg.
 *      (batchring 0.2)
 *   2  br_plugin_init2 and br_plugin_args; br_plugin.fini. (batchring 0.2)
 * The rule, rule 4 of batchring.h's "How the public structs grow": fields
 * are only ever appended to br_plugin_args and br_plugin, never moved,
 * resized or removed, and each new one is marked with the revision that
 * added it. The server sets args->abi to its own revision, fills every
 * field of args up to it, and zeroes *plugin before the call; a zero
 * (NULL) output field means "not set". So a plugin built for an older
 * revision, or a revision-1 plugin that exports only br_plugin_init, keeps
 * working unchanged. A plugin built for a newer revision than the server
 * must neither read nor write a field of revision k unless args->abi >= k
 * (it may fail its init instead). A server looks for br_plugin_init2 first
 * and falls back to br_plugin_init, for which it reads only the revision-1
 * fields (a fini set there does not run). A server older than revision 2
 * knows only br_plugin_init: a plugin that must also run under one exports
 * both.
 *
 * Since 0.2 (in batchring.h until 0.3).
 */
#ifndef BATCHRING_PLUGIN_H
#define BATCHRING_PLUGIN_H

#include "../batchring.h"

#ifdef __cplusplus
extern "C" {
#endif

#define BR_PLUGIN_ABI 3

/* What serve was given, for a plugin to size its buffers and check its
 * argument against. Read-only; the strings stay valid until fini returns.
 * Every field below is of revision 2. */
typedef struct br_plugin_args {
    uint32_t abi;          /* the server's BR_PLUGIN_ABI (>= 2) */
    uint32_t batch_size;   /* --batch: samples per batch (the last batch of
                              an epoch may hold fewer) */
    uint32_t workers;      /* --workers, as asked (br_open lowers it when
                              batch_size x workers > n_ids) */
    uint32_t slots;        /* --slots, or 0 for the automatic depth */
    size_t slot_bytes;     /* --slot-bytes, or 0 when not given; when set it
                              wins over plugin->slot_bytes */
    uint64_t epochs;       /* --epochs, 0 = until stopped */
    uint64_t seed;         /* --seed */
    bool shuffle;          /* --shuffle */
    bool drop_last;        /* --drop-last */
    uint32_t rank;         /* this server's shard (--shard-from-env), */
    uint32_t world;        /* else 0 and 1 */
    const char *arg;       /* --plugin-arg, or NULL */
    const char *path;      /* --plugin, as given */
    const char *name;      /* the ring's name, "/NAME" */
} br_plugin_args;

/* A plugin's teardown: frees what its init allocated. */
typedef void (*br_plugin_fini_fn)(void *user);

/* What the plugin's init fills (zeroed by the server before the call). */
typedef struct br_plugin {
    br_loader_fn load;
    br_worker_init_fn worker_init; /* may stay NULL */
    br_worker_fini_fn worker_fini; /* may stay NULL */
    void *user;
    uint64_t n_ids;                /* samples (ids 0 .. n_ids - 1) */
    size_t slot_bytes;             /* largest batch, or 0 to take --slot-bytes */
    char err[BR_ERR_CAP];
    /* Revision 2. */
    br_plugin_fini_fn fini;        /* may stay NULL; see above for when it runs */
    /* Revision 3 (set only when args->abi >= 3). With a built-in source
     * beside --plugin (serve --records/--files/--indexed/--packed ...
     * --plugin LIB.so), the plugin supplies a per-sample transform instead
     * of a loader: load stays NULL, n_ids and slot_bytes are unused, and
     * worker_init/worker_fini/user are the dataset's hooks and user
     * (br_dataset_transform_set, br_open_dataset). */
    br_transform_fn transform;     /* the transform, or NULL */
    size_t transform_max_out;      /* its largest output of one sample */
} br_plugin;

/* The entry points, as looked up with dlsym: "br_plugin_init2" (revision 2
 * on), and "br_plugin_init" (revision 1). */
typedef int (*br_plugin_init2_fn)(const br_plugin_args *args, br_plugin *plugin);
typedef int (*br_plugin_init_fn)(const char *arg, br_plugin *plugin);

#ifdef __cplusplus
}
#endif

#endif /* BATCHRING_PLUGIN_H */
