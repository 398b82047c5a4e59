/* SPDX-License-Identifier: MIT */
/*
 * batchring serve: the producer process of a named ring. It opens a dataset
 * (one of the built-in layouts, or a plugin's loader), creates the ring
 * /NAME with its workers, prints the name and stays in the foreground until
 * the consumer has taken the last batch, a signal asks it to stop, or (with
 * --exit-on-detach) its consumer goes away. Every way out goes through
 * br_close, which stops the workers and removes the ring from /dev/shm.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <batchring.h>
#include <batchring/plugin.h>

#include "cli.h"

/* How long one br_serve_wait lasts: the delay before a stop signal or a
 * departed consumer is acted on. */
#define SERVE_POLL_MS 200

enum source_kind { SRC_NONE, SRC_RECORDS, SRC_FILES, SRC_INDEXED, SRC_PLUGIN, SRC_TOKENS, SRC_PACKED };

struct source {
    enum source_kind kind;
    const char *path;  /* records file, list file, data file, a pattern of
                          shards (sharded()) or the plugin */
    const char *index; /* indexed: the index file, or with a pattern the
                          suffix of each shard's index */
    const char *labels;
    const char *plugin_arg;
    const char *plugin_lib; /* --plugin: the source, or a transform beside one */
    uint64_t record_bytes;
    uint64_t seq_len;     /* tokens: T */
    uint64_t token_bytes; /* tokens: 0 (llm.c shards), 2 or 4 (raw) */
    bool direct;
    br_dataset *ds;
    void *dl;
    br_plugin_args plugin_args;
    br_plugin plugin;
    bool plugin_started;   /* its init returned 0: its fini is due */
    int32_t *label_values; /* plugin with --labels: read here */
};

static void usage(FILE *to)
{
    fprintf(to, "usage: batchring serve --name /NAME DATA --batch B --workers W [options]\n"
                "\n"
                "Serves a named ring: creates /dev/shm/NAME, loads batches into it with W\n"
                "worker processes, and waits for a consumer in another process to attach\n"
                "(br_attach, or batchring consume). Prints the ring name on the first line\n"
                "of stdout once the ring is ready. Stays in the foreground until the\n"
                "consumer has taken the last batch of the last epoch, or SIGINT/SIGTERM;\n"
                "then stops the workers and removes the ring. A consumer that detaches or\n"
                "dies is replaced by the next one to attach, which resumes at the first\n"
                "batch the previous one had not released.\n"
                "\n"
                "DATA, one of:\n"
                "  --records FILE --record-size N   fixed-size records in one file, or in\n"
                "                                   shards: FILE a glob ('d/rec_*.bin', in\n"
                "                                   name order) or @LIST (one shard a line)\n"
                "  --files LIST                     one file per sample, listed in LIST; or\n"
                "                                   a glob of the files, or @LIST\n"
                "  --indexed DATA INDEX             variable-size samples and their index;\n"
                "                                   DATA a glob or @LIST of data shards:\n"
                "                                   INDEX is then the suffix of each shard's\n"
                "                                   index ('d/data_*.bin' .idx)\n"
                "  --tokens PATTERN --seq-len T     token shards (a glob, or @LIST): windows\n"
                "     [--token-bytes 2|4]           of T + 1 tokens as int32 inputs[B][T] then\n"
                "                                   targets[B][T]; llm.c .bin shards, or raw\n"
                "                                   tokens of the width given\n"
                "  --packed DIR                     a packed dataset (batchring pack): no size\n"
                "                                   flags, labels from its shards; a tokens\n"
                "     [--seq-len T]                 pack (pack --tokens) takes --seq-len T\n"
                "  --plugin LIB.so [--plugin-arg S] a custom loader (br_plugin_init2, see\n"
                "                                   batchring.h and docs/named-rings.md);\n"
                "                                   beside another source, a per-sample\n"
                "                                   transform (plugin->transform)\n"
                "\n"
                "  --name /NAME        the ring's name (required)\n"
                "  --batch B           samples per batch (required)\n"
                "  --workers W         worker processes, at least 1 (required)\n"
                "  --labels FILE       one int32 label per sample\n"
                "  --slots S           ring depth (default: 2 x workers, or as many slots as\n"
                "                      fit in 8 MiB when that is more, at most 128; 16 MiB\n"
                "                      and 256 when the workers hold every CPU)\n"
                "  --slot-bytes N      capacity of a slot (default: batch x the largest sample;\n"
                "                      a plugin may set it; K, M, G suffixes)\n"
                "  --epochs E          stop after E epochs (default 0: forever)\n"
                "  --drop-last         drop the short last batch of each epoch\n"
                "  --shuffle           a new order every epoch\n"
                "  --seed N            the order's seed (default 0)\n"
                "  --shard-from-env    take rank/world from RANK/WORLD_SIZE, Open MPI, MPICH\n"
                "                      or Slurm variables\n"
                "  --direct            read records or indexed data with O_DIRECT (one file,\n"
                "                      not shards)\n"
                "  --max-restarts N    worker deaths survived before the run fails (default\n"
                "                      3, as br_options; 'unlimited' never gives up)\n"
                "  --cpus LIST         pin the workers round-robin to a CPU list (0-3,8), or\n"
                "                      'auto': the trainer's last-level cache domain when\n"
                "                      there are several (default: BR_CPUS, else unpinned)\n"
                "  --hold H            the consumer may hold up to H batches and release\n"
                "                      them in any order (br_release; default 1)\n"
                "  --guard             debug a loader: a PROT_NONE page after each slot,\n"
                "                      so a write past the slot kills the worker with\n"
                "                      SIGSEGV, named with its batch (same as BR_GUARD=1)\n"
                "  --exit-on-detach    exit when the consumer goes away instead of waiting\n"
                "                      for the next one\n"
                "  -h, --help          this text\n"
                "\n"
                "Exit status: 0 when the epochs are done, on SIGINT/SIGTERM and on\n"
                "--exit-on-detach; 1 on an error (the message names it); 2 on a bad\n"
                "command line.\n");
}

/* dlopen searches the library path for a name without '/': a plugin in
 * the current directory is what a user means by "--plugin my.so". */
static const char *plugin_path(const char *path, char *buf, size_t cap)
{
    if (strchr(path, '/') || access(path, F_OK) != 0)
        return path;
    snprintf(buf, cap, "./%s", path);
    return buf;
}

/*
 * Loads the plugin and runs its init: br_plugin_init2 with what serve was
 * given (opt), or the revision-1 br_plugin_init with --plugin-arg only.
 */
static int plugin_open(struct source *s, const br_options *opt)
{
    char buf[4096];
    const char *path = plugin_path(s->plugin_lib, buf, sizeof buf);
    br_plugin_init2_fn init2 = NULL;
    br_plugin_init_fn init1 = NULL;
    void *sym;
    int rc;

    s->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!s->dl) {
        br_cli_error("cannot load the plugin %s: %s", s->plugin_lib, dlerror());
        return -ENOENT;
    }
    /* POSIX guarantees that dlsym's result converts to a function pointer. */
    if ((sym = dlsym(s->dl, "br_plugin_init2")))
        init2 = (br_plugin_init2_fn)sym;
    else if ((sym = dlsym(s->dl, "br_plugin_init")))
        init1 = (br_plugin_init_fn)sym;
    else {
        br_cli_error("the plugin %s exports neither br_plugin_init2 (int "
                     "br_plugin_init2(const br_plugin_args *args, br_plugin *plugin)) nor "
                     "br_plugin_init, with default visibility; see batchring.h",
                     s->plugin_lib);
        return -ENOENT;
    }
    s->plugin_args = (br_plugin_args){
        .abi = BR_PLUGIN_ABI,
        .batch_size = opt->batch_size,
        .workers = opt->workers,
        .slots = opt->slots == BR_SLOTS_AUTO ? 0 : opt->slots,
        .slot_bytes = opt->slot_bytes,
        .epochs = opt->epochs,
        .seed = opt->seed,
        .shuffle = opt->shuffle,
        .drop_last = opt->drop_last,
        .rank = opt->rank,
        .world = opt->world ? opt->world : 1,
        .arg = s->plugin_arg,
        .path = s->plugin_lib,
        .name = opt->name,
    };
    memset(&s->plugin, 0, sizeof s->plugin);
    rc = init2 ? init2(&s->plugin_args, &s->plugin) : init1(s->plugin_arg, &s->plugin);
    s->plugin.err[sizeof s->plugin.err - 1] = '\0';
    if (rc) {
        br_cli_error("the plugin %s failed to start (%s): %s", s->plugin_lib, br_err_name(rc),
                     s->plugin.err[0] ? s->plugin.err : br_strerror(rc));
        return rc;
    }
    if (init1 && s->plugin.fini) {
        /* A revision-1 plugin built against a newer header: its fields
         * past err are not part of that entry point. */
        br_cli_error("note: the plugin %s sets fini from br_plugin_init; only "
                     "br_plugin_init2 may, so it will not run",
                     s->plugin_lib);
        s->plugin.fini = NULL;
    }
    s->plugin_started = true;
    if (s->kind != SRC_PLUGIN) {
        /* Beside a built-in source: a transform, not a loader. */
        if (s->plugin.load || !s->plugin.transform || !s->plugin.transform_max_out) {
            br_cli_error("the plugin %s is given with a built-in source, so it must set "
                         "plugin->transform and transform_max_out and no loader (%s)",
                         s->plugin_lib,
                         s->plugin.load ? "it set plugin->load" : "it set no transform");
            return -EINVAL;
        }
        return 0;
    }
    if (s->plugin.transform) {
        br_cli_error("the plugin %s set a transform, which needs a built-in source "
                     "(--records, --files, --indexed or --packed) beside --plugin",
                     s->plugin_lib);
        return -EINVAL;
    }
    if (!s->plugin.load || s->plugin.n_ids == 0) {
        br_cli_error("the plugin %s returned 0 from %s but set %s", s->plugin_lib,
                     init2 ? "br_plugin_init2" : "br_plugin_init",
                     !s->plugin.load ? "no loader (plugin->load)" : "no samples (n_ids 0)");
        return -EINVAL;
    }
    return 0;
}

/* Reads n int32 labels (little-endian) for a plugin's samples. */
static int read_labels(struct source *s, uint64_t n)
{
    struct stat st;
    uint8_t *raw = NULL;
    size_t got = 0, want;
    /* O_NONBLOCK: a FIFO would block open() until a writer came; it is
     * refused below, and a regular file is read with it cleared. */
    int fd = open(s->labels, O_RDONLY | O_CLOEXEC | O_NONBLOCK), rc = 0;

    if (fd < 0) {
        rc = -errno;
        br_cli_error("cannot open the labels file %s: %s", s->labels, strerror(errno));
        return rc;
    }
    if (fstat(fd, &st) == 0 && !S_ISREG(st.st_mode)) {
        br_cli_error("the labels file %s is %s, not a regular file", s->labels,
                     S_ISFIFO(st.st_mode)                         ? "a FIFO"
                     : S_ISDIR(st.st_mode)                        ? "a directory"
                     : S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? "a device"
                                                                  : "a socket");
        close(fd);
        return -EINVAL;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    if (fstat(fd, &st) < 0 || (uint64_t)st.st_size != n * 4) {
        br_cli_error("the labels file %s has %lld bytes; the plugin's %" PRIu64
                     " samples need %" PRIu64 " (one int32 each)",
                     s->labels, (long long)st.st_size, n, n * 4);
        close(fd);
        return -EINVAL;
    }
    want = (size_t)n * 4;
    raw = malloc(want);
    s->label_values = malloc((size_t)n * sizeof *s->label_values);
    if (!raw || !s->label_values) {
        br_cli_error("out of memory for %" PRIu64 " labels", n);
        rc = -ENOMEM;
        goto out;
    }
    while (got < want) {
        ssize_t r = read(fd, raw + got, want - got);
        if (r <= 0) {
            rc = r < 0 ? -errno : -ENODATA;
            br_cli_error("reading the labels file %s: %s", s->labels,
                         r < 0 ? strerror(errno) : "it ended early");
            goto out;
        }
        got += (size_t)r;
    }
    for (uint64_t i = 0; i < n; i++)
        s->label_values[i] =
            (int32_t)((uint32_t)raw[4 * i] | (uint32_t)raw[4 * i + 1] << 8 |
                      (uint32_t)raw[4 * i + 2] << 16 | (uint32_t)raw[4 * i + 3] << 24);
out:
    free(raw);
    close(fd);
    return rc;
}

static int source_open(struct source *s, const br_options *opt)
{
    unsigned flags = s->direct ? BR_DATASET_DIRECT : 0;
    int rc;
    switch (s->kind) {
    case SRC_RECORDS:
    case SRC_FILES:
    case SRC_INDEXED: {
        char layout = s->kind == SRC_RECORDS ? 'r' : s->kind == SRC_FILES ? 'f' : 'i';
        rc = br_cli_dataset_open(&s->ds, layout, s->path, s->index, (size_t)s->record_bytes,
                                 s->labels, flags);
        break;
    }
    case SRC_PACKED:
        /* A tokens pack needs T; every other pack must not be given one. */
        rc = s->seq_len ? br_dataset_open_packed_tokens(&s->ds, s->path, (size_t)s->seq_len, 0)
                        : br_dataset_open_packed(&s->ds, s->path, 0);
        break;
    case SRC_TOKENS:
        rc = br_dataset_open_tokens(&s->ds, s->path, (size_t)s->seq_len, (size_t)s->token_bytes,
                                    0);
        break;
    default:
        rc = plugin_open(s, opt);
        if (rc == 0 && s->labels)
            rc = read_labels(s, s->plugin.n_ids);
        return rc;
    }
    if (rc) {
        br_cli_error("%s: %s", br_err_name(rc), br_last_error(NULL));
        return rc;
    }
    if (s->plugin_lib) {
        /* A transform from the plugin, on the built-in reading. */
        rc = plugin_open(s, opt);
        if (rc == 0)
            rc = br_dataset_transform_set(s->ds, s->plugin.transform,
                                          s->plugin.transform_max_out, s->plugin.user);
        if (rc == -EINVAL && br_last_error(NULL)[0])
            br_cli_error("%s: %s", br_err_name(rc), br_last_error(NULL));
    }
    return rc;
}

static void source_close(struct source *s)
{
    br_dataset_close(s->ds);
    s->ds = NULL;
    /* The generator is closed (or was never opened): the workers that ran
     * the plugin's code are gone (br_close reaped them), so the plugin may
     * free what its init made, and its code may go too. */
    if (s->plugin_started && s->plugin.fini)
        s->plugin.fini(s->plugin.user);
    s->plugin_started = false;
    if (s->dl)
        dlclose(s->dl);
    s->dl = NULL;
    free(s->label_values);
    s->label_values = NULL;
}

/* One line on what is served, for the startup message. */
static void describe_source(const struct source *s, char *buf, size_t cap)
{
    br_dataset_info info;
    char h[32];
    if (s->kind == SRC_PLUGIN) {
        snprintf(buf, cap, "the plugin %s%s%s%s (%" PRIu64 " samples%s)", s->path,
                 s->plugin_arg ? " with arg '" : "", s->plugin_arg ? s->plugin_arg : "",
                 s->plugin_arg ? "'" : "", s->plugin.n_ids, s->labels ? ", labels" : "");
        return;
    }
    memset(&info, 0, sizeof info);
    br_dataset_info_get(s->ds, &info);
    snprintf(buf, cap, "the %s dataset %s%s%s (%" PRIu64 " samples, %s%s, %u shard%s)", info.layout,
             s->path, s->index ? " + " : "", s->index ? s->index : "", info.samples,
             br_util_bytes(h, info.total_bytes), info.has_labels ? ", labels" : "", info.shards,
             info.shards == 1 ? "" : "s");
}

struct serve_args {
    const char *name;
    uint64_t batch, workers, slots, slot_bytes, epochs, seed, max_restarts, hold;
    bool have_batch, have_workers, drop_last, shuffle, shard_from_env, exit_on_detach;
    bool have_max_restarts, guard;
    const char *cpus; /* --cpus: br_options.cpus */
};

/* Parses the command line into a and s. Returns -1 to go on, else the
 * exit code. */
static int parse(int argc, char **argv, struct serve_args *a, struct source *s)
{
    enum {
        OPT_NAME = 256,
        OPT_RECORDS,
        OPT_RECORD_SIZE,
        OPT_FILES,
        OPT_INDEXED,
        OPT_PACKED,
        OPT_PLUGIN,
        OPT_PLUGIN_ARG,
        OPT_LABELS,
        OPT_BATCH,
        OPT_WORKERS,
        OPT_SLOTS,
        OPT_SLOT_BYTES,
        OPT_EPOCHS,
        OPT_DROP_LAST,
        OPT_SHUFFLE,
        OPT_SEED,
        OPT_SHARD,
        OPT_DIRECT,
        OPT_EXIT_ON_DETACH,
        OPT_MAX_RESTARTS,
        OPT_GUARD,
        OPT_HOLD,
        OPT_CPUS,
        OPT_TOKENS,
        OPT_SEQ_LEN,
        OPT_TOKEN_BYTES,
    };
    static const struct option longopts[] = {
        {"name", required_argument, NULL, OPT_NAME},
        {"records", required_argument, NULL, OPT_RECORDS},
        {"record-size", required_argument, NULL, OPT_RECORD_SIZE},
        {"files", required_argument, NULL, OPT_FILES},
        {"indexed", required_argument, NULL, OPT_INDEXED},
        {"packed", required_argument, NULL, OPT_PACKED},
        {"plugin", required_argument, NULL, OPT_PLUGIN},
        {"plugin-arg", required_argument, NULL, OPT_PLUGIN_ARG},
        {"labels", required_argument, NULL, OPT_LABELS},
        {"batch", required_argument, NULL, OPT_BATCH},
        {"workers", required_argument, NULL, OPT_WORKERS},
        {"slots", required_argument, NULL, OPT_SLOTS},
        {"slot-bytes", required_argument, NULL, OPT_SLOT_BYTES},
        {"epochs", required_argument, NULL, OPT_EPOCHS},
        {"drop-last", no_argument, NULL, OPT_DROP_LAST},
        {"shuffle", no_argument, NULL, OPT_SHUFFLE},
        {"seed", required_argument, NULL, OPT_SEED},
        {"shard-from-env", no_argument, NULL, OPT_SHARD},
        {"direct", no_argument, NULL, OPT_DIRECT},
        {"exit-on-detach", no_argument, NULL, OPT_EXIT_ON_DETACH},
        {"max-restarts", required_argument, NULL, OPT_MAX_RESTARTS},
        {"guard", no_argument, NULL, OPT_GUARD},
        {"hold", required_argument, NULL, OPT_HOLD},
        {"cpus", required_argument, NULL, OPT_CPUS},
        {"tokens", required_argument, NULL, OPT_TOKENS},
        {"seq-len", required_argument, NULL, OPT_SEQ_LEN},
        {"token-bytes", required_argument, NULL, OPT_TOKEN_BYTES},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bool have_record_size = false, have_seq_len = false, have_token_bytes = false;
    int c;

    optind = 1;
    /* '+': no permutation, so that the word after --indexed DATA is still
     * in place when we take it as INDEX. */
    while ((c = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
        enum source_kind kind = SRC_NONE;
        bool ok = true;
        switch (c) {
        case 'h':
            usage(stdout);
            return BR_CLI_OK;
        case OPT_NAME:
            a->name = optarg;
            break;
        case OPT_RECORDS:
            kind = SRC_RECORDS;
            break;
        case OPT_FILES:
            kind = SRC_FILES;
            break;
        case OPT_INDEXED:
            kind = SRC_INDEXED;
            if (optind >= argc || argv[optind][0] == '-') {
                br_cli_error("--indexed needs two files: --indexed DATA "
                             "INDEX");
                return BR_CLI_USAGE;
            }
            s->index = argv[optind++];
            break;
        case OPT_PLUGIN:
            s->plugin_lib = optarg; /* a source, unless another is given */
            break;
        case OPT_PACKED:
            kind = SRC_PACKED;
            break;
        case OPT_TOKENS:
            kind = SRC_TOKENS;
            break;
        case OPT_SEQ_LEN:
            ok = br_cli_number("seq-len", optarg, 1, 1u << 30, false, &s->seq_len);
            have_seq_len = true;
            break;
        case OPT_TOKEN_BYTES:
            ok = br_cli_number("token-bytes", optarg, 2, 4, false, &s->token_bytes);
            if (ok && s->token_bytes == 3) {
                br_cli_error("--token-bytes is 2 or 4");
                ok = false;
            }
            have_token_bytes = true;
            break;
        case OPT_PLUGIN_ARG:
            s->plugin_arg = optarg;
            break;
        case OPT_LABELS:
            s->labels = optarg;
            break;
        case OPT_RECORD_SIZE:
            ok = br_cli_number("record-size", optarg, 1, SIZE_MAX, true, &s->record_bytes);
            have_record_size = true;
            break;
        case OPT_BATCH:
            ok = br_cli_number("batch", optarg, 1, BR_MAX_BATCH_SIZE, false, &a->batch);
            a->have_batch = true;
            break;
        case OPT_WORKERS:
            ok = br_cli_number("workers", optarg, 1, BR_MAX_WORKERS, false, &a->workers);
            a->have_workers = true;
            break;
        case OPT_SLOTS:
            ok = br_cli_number("slots", optarg, 1, BR_MAX_SLOTS, false, &a->slots);
            break;
        case OPT_SLOT_BYTES:
            ok = br_cli_number("slot-bytes", optarg, 1, SIZE_MAX, true, &a->slot_bytes);
            break;
        case OPT_EPOCHS:
            ok = br_cli_number("epochs", optarg, 0, UINT64_MAX, false, &a->epochs);
            break;
        case OPT_SEED:
            ok = br_cli_number("seed", optarg, 0, UINT64_MAX, false, &a->seed);
            break;
        case OPT_DROP_LAST:
            a->drop_last = true;
            break;
        case OPT_SHUFFLE:
            a->shuffle = true;
            break;
        case OPT_SHARD:
            a->shard_from_env = true;
            break;
        case OPT_DIRECT:
            s->direct = true;
            break;
        case OPT_EXIT_ON_DETACH:
            a->exit_on_detach = true;
            break;
        case OPT_MAX_RESTARTS:
            /* An endless session outlives any fixed budget of deaths. */
            if (!strcmp(optarg, "unlimited"))
                a->max_restarts = BR_MAX_RESTARTS_UNLIMITED;
            else
                ok = br_cli_number("max-restarts", optarg, 0, UINT32_MAX, false, &a->max_restarts);
            a->have_max_restarts = true;
            break;
        case OPT_GUARD:
            a->guard = true;
            break;
        case OPT_HOLD:
            ok = br_cli_number("hold", optarg, 1, BR_MAX_SLOTS - 1, false, &a->hold);
            break;
        case OPT_CPUS:
            a->cpus = optarg;
            break;
        default:
            fprintf(stderr, "(batchring serve --help lists the options)\n");
            return BR_CLI_USAGE;
        }
        if (!ok)
            return BR_CLI_USAGE;
        if (kind != SRC_NONE) {
            static const char *const names[] = {"", "--records", "--files", "--indexed",
                                                "--plugin", "--tokens", "--packed"};
            if (s->kind != SRC_NONE) {
                br_cli_error("%s and %s: give one source of data", names[s->kind], names[kind]);
                return BR_CLI_USAGE;
            }
            s->kind = kind;
            s->path = optarg;
        }
    }
    if (s->plugin_lib && s->kind == SRC_NONE) {
        s->kind = SRC_PLUGIN;
        s->path = s->plugin_lib;
    }
    if (optind < argc) {
        br_cli_error("unexpected argument '%s'", argv[optind]);
        return BR_CLI_USAGE;
    }
    if (!a->name) {
        br_cli_error("--name /NAME is required (batchring serve --help)");
        return BR_CLI_USAGE;
    }
    if (!br_cli_ring_name_ok(a->name))
        return BR_CLI_USAGE;
    if (s->kind == SRC_NONE) {
        br_cli_error("nothing to serve: give --records FILE --record-size N, "
                     "--files LIST, --indexed DATA INDEX, --tokens PATTERN --seq-len T, "
                     "--packed DIR or --plugin LIB.so");
        return BR_CLI_USAGE;
    }
    if (!a->have_batch || !a->have_workers) {
        br_cli_error("--batch B and --workers W are required");
        return BR_CLI_USAGE;
    }
    if (s->kind == SRC_RECORDS && !have_record_size) {
        br_cli_error("--records needs --record-size N (bytes per record)");
        return BR_CLI_USAGE;
    }
    if (s->kind == SRC_TOKENS && !have_seq_len) {
        br_cli_error("--tokens needs --seq-len T (tokens per sequence)");
        return BR_CLI_USAGE;
    }
    if (s->kind == SRC_PACKED && have_token_bytes) {
        br_cli_error("--packed takes no --token-bytes: a tokens pack's headers give the width "
                     "(--seq-len T is still needed)");
        return BR_CLI_USAGE;
    }
    if (s->kind != SRC_TOKENS && s->kind != SRC_PACKED && (have_seq_len || have_token_bytes)) {
        br_cli_error("--seq-len and --token-bytes are for --tokens only (--seq-len also for a "
                     "--packed tokens dataset)");
        return BR_CLI_USAGE;
    }
    if (s->kind == SRC_TOKENS && (s->labels || s->direct)) {
        br_cli_error("--tokens takes no --labels and no --direct");
        return BR_CLI_USAGE;
    }
    if (s->kind != SRC_RECORDS && have_record_size) {
        br_cli_error("--record-size is for --records only");
        return BR_CLI_USAGE;
    }
    if (!s->plugin_lib && s->plugin_arg) {
        br_cli_error("--plugin-arg is for --plugin only");
        return BR_CLI_USAGE;
    }
    if (s->kind == SRC_PACKED && (s->labels || s->direct)) {
        br_cli_error("--packed takes no --labels (its shards carry them) and no --direct");
        return BR_CLI_USAGE;
    }
    if (s->direct && (s->kind == SRC_FILES || s->kind == SRC_PLUGIN)) {
        br_cli_error("--direct is for --records and --indexed only");
        return BR_CLI_USAGE;
    }
    return -1;
}

/* The generator's options from the command line, before the source is
 * opened: a plugin's init sees them. */
static int options_fill(br_options *opt, const struct serve_args *a)
{
    int rc;

    br_options_init(opt);
    opt->name = a->name;
    opt->batch_size = (uint32_t)a->batch;
    opt->workers = (uint32_t)a->workers;
    if (a->slots)
        opt->slots = (uint32_t)a->slots;
    opt->slot_bytes = (size_t)a->slot_bytes;
    opt->epochs = a->epochs;
    opt->drop_last = a->drop_last;
    opt->shuffle = a->shuffle;
    opt->seed = a->seed;
    opt->cpus = a->cpus; /* NULL: BR_CPUS from the environment */
    opt->hold = (uint32_t)a->hold; /* 0: one batch at a time, released by the next */
    if (a->have_max_restarts)
        opt->max_restarts = (uint32_t)a->max_restarts;
    /* br_open reads the guard mode from the environment (br_options has
     * no field for it before the ABI redesign). */
    if (a->guard && setenv("BR_GUARD", "1", 1) < 0) {
        rc = -errno;
        br_cli_error("--guard: setenv: %s", strerror(errno));
        return rc;
    }
    if (a->shard_from_env) {
        rc = br_shard_from_env(opt);
        if (rc) {
            br_cli_error("--shard-from-env: %s", br_last_error(NULL));
            return rc;
        }
    }
    return 0;
}

/* The generator over the opened source. */
static int open_generator(br_gen **g, const struct serve_args *a, br_options *opt, struct source *s)
{
    int rc;

    if (s->kind != SRC_PLUGIN) {
        opt->worker_init = s->plugin.worker_init; /* NULL without --plugin */
        opt->worker_fini = s->plugin.worker_fini;
        rc = br_open_dataset(g, s->ds, NULL, 0, opt);
    } else {
        if (!opt->slot_bytes)
            opt->slot_bytes = s->plugin.slot_bytes;
        if (!opt->slot_bytes) {
            br_cli_error("the plugin %s does not say how large a batch is "
                         "(plugin->slot_bytes is 0): pass --slot-bytes N",
                         s->path);
            return -EINVAL;
        }
        opt->worker_init = s->plugin.worker_init;
        opt->worker_fini = s->plugin.worker_fini;
        rc = br_open(g, s->plugin.load, s->plugin.user, NULL, s->label_values,
                     (size_t)s->plugin.n_ids, opt);
    }
    if (rc)
        br_cli_error("cannot serve %s: %s: %s", a->name, br_err_name(rc), br_last_error(NULL));
    return rc;
}

/* Prints the name (first line: what scripts and tests wait for), then
 * what is served. */
static void announce(br_gen *g, const struct serve_args *a, const struct source *s)
{
    char what[1024], slot[32], total[32], epochs[96];
    br_ring_status rs;
    br_stats st;

    describe_source(s, what, sizeof what);
    memset(&rs, 0, sizeof rs);
    br_ring_status_get(a->name, &rs, NULL, 0);
    br_stats_get(g, &st);
    if (a->epochs)
        snprintf(epochs, sizeof epochs, "%" PRIu64 " epoch%s of %" PRIu64 " batches", a->epochs,
                 a->epochs == 1 ? "" : "s", rs.batches_per_epoch);
    else
        snprintf(epochs, sizeof epochs, "epochs of %" PRIu64 " batches until stopped",
                 rs.batches_per_epoch);
    printf("%s\n", a->name);
    printf("serving %s as %s: batch %" PRIu64 ", %u workers, %u slots x %s (%s in /dev/shm), "
           "%s; pid %d\n",
           what, a->name, a->batch, st.workers, st.slots, br_util_bytes(slot, rs.slot_bytes),
           br_util_bytes(total, rs.total_bytes), epochs, (int)getpid());
    fflush(stdout);
    if (br_last_error(g)[0])
        br_cli_error("note: %s", br_last_error(g));
}

/* Serves until done, stopped or failed. Returns the exit code. */
static int serve_loop(br_gen *g, const struct serve_args *a)
{
    int32_t consumer = 0;
    br_ring_status rs;
    br_stats st;
    int rc;

    for (;;) {
        int32_t pid = 0;
        if (br_cli_stop) {
            br_cli_error("%s: stopping on SIG%s", a->name,
                         sigabbrev_np(br_cli_stop) ? sigabbrev_np(br_cli_stop) : "?");
            return BR_CLI_OK;
        }
        rc = br_serve_wait(g, SERVE_POLL_MS);
        if (rc == 0) {
            br_cli_error("%s: the consumer has taken the last batch", a->name);
            return BR_CLI_OK;
        }
        if (rc != -ETIMEDOUT && br_cli_stop)
            continue; /* a signal to the whole group also stopped the workers */
        if (rc != -ETIMEDOUT) {
            br_cli_error("%s: %s: %s", a->name, br_err_name(rc),
                         rc == BR_ESTOPPED ? "the consumer stopped on an error (its output has the "
                                             "message)"
                                           : br_last_error(g));
            return BR_CLI_FAILED;
        }
        br_consumer_pid_get(g, &pid);
        if (pid == consumer) {
            /* A consumer that came and went between two looks still counts
             * as one that went away. */
            br_stats_get(g, &st);
            if (a->exit_on_detach && !pid && st.batches) {
                br_cli_error("%s: the consumer went away; exiting "
                             "(--exit-on-detach)",
                             a->name);
                return BR_CLI_OK;
            }
            continue;
        }
        memset(&rs, 0, sizeof rs);
        br_ring_status_get(a->name, &rs, NULL, 0);
        if (consumer)
            br_cli_error("%s: consumer pid %d went away at batch %" PRIu64 "%s", a->name,
                         (int)consumer, rs.cursor,
                         a->exit_on_detach ? "; exiting (--exit-on-detach)"
                                           : "; waiting for the next one");
        if (consumer && a->exit_on_detach)
            return BR_CLI_OK;
        if (pid)
            br_cli_error("%s: consumer pid %d attached at batch %" PRIu64, a->name, (int)pid,
                         rs.cursor);
        consumer = pid;
    }
}

int br_cli_serve(int argc, char **argv)
{
    struct serve_args a;
    struct source s;
    br_options opt;
    br_gen *g = NULL;
    br_stats st;
    char h[32];
    int code;

    memset(&a, 0, sizeof a);
    memset(&s, 0, sizeof s);
    code = parse(argc, argv, &a, &s);
    if (code >= 0)
        return code;

    /* Before the ring exists: a signal from now on ends in br_close, never
     * in a ring left behind. */
    br_cli_catch_stop_signals();
    if (options_fill(&opt, &a) || source_open(&s, &opt) || open_generator(&g, &a, &opt, &s)) {
        source_close(&s);
        return BR_CLI_FAILED;
    }
    announce(g, &a, &s);
    code = serve_loop(g, &a);
    br_stats_get(g, &st);
    br_close(g);
    source_close(&s); /* the plugin's fini, after br_close */
    br_cli_error("%s: served %" PRIu64 " batches (%s); ring removed", a.name, st.batches,
                 br_util_bytes(h, st.bytes));
    return code;
}
