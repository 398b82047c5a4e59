/* SPDX-License-Identifier: MIT */
/*
 * batchring demo: writes a synthetic dataset (records by default, 64 MiB)
 * to a temporary directory, serves it with br_open_dataset through the
 * workers' io_uring readers for a few seconds, checks every id, label and
 * byte of every batch against br_synth, and removes the directory.
 */
#include <errno.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <batchring.h>

#include "cli.h"
#include "synth.h"

#define DEMO_SEED 2024u

static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig)
{
    (void)sig;
    interrupted = 1;
}

static double seconds_since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st, (void)type, (void)ftw;
    return remove(path);
}

/* Removes the demo's own temporary directory and everything in it. */
static void remove_tree(const char *dir)
{
    if (nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        br_cli_error("could not remove %s completely: %s", dir, strerror(errno));
}

static void usage(FILE *to)
{
    fprintf(to, "usage: batchring demo [options]\n\n"
                "Writes a synthetic dataset to a temporary directory, serves it with\n"
                "br_open_dataset (each worker reads through its own reader: copies from the\n"
                "page cache, io_uring or pread, whichever it measures cheapest, unless BR_IO\n"
                "forces one), checks every id, label and byte of every batch, and removes the\n"
                "directory.\n\n"
                "  --layout L        records (default), files or indexed\n"
                "  --direct          read with O_DIRECT (records, indexed)\n"
                "  --workers N       worker processes (default 2; 0 loads inside br_next)\n"
                "  --seconds S       how long to run (default 3)\n"
                "  --batch B         samples per batch (default 64)\n"
                "  --sample-bytes N  bytes per sample (default 4096; files and indexed vary\n"
                "                    from N/2 to 3N/2)\n"
                "  --samples N       samples in the dataset (default 16384: 64 MiB)\n"
                "  --slots N         ring depth (default: 2 x workers, or as many slots as\n"
                "                    fit in 8 MiB when that is more, at most 128; 16 MiB\n"
                "                    and 256 when the workers hold every CPU; 2 with\n"
                "                    --workers 0)\n"
                "  --cpus LIST       pin the workers round-robin to a CPU list (0-3,8), or\n"
                "                    'auto' (default: BR_CPUS, else unpinned)\n"
                "  -h, --help        this text\n");
}

/* dir/name into buf; false when it does not fit. */
static bool join(char *buf, size_t cap, const char *dir, const char *name)
{
    return (size_t)snprintf(buf, cap, "%s/%s", dir, name) < cap;
}

/* Opens the dataset mkdata wrote in dir. */
static int open_dataset(br_dataset **ds, const char *layout, const char *dir, size_t record_bytes,
                        unsigned flags)
{
    char a[4096], b[4096], labels[4096];
    if (!join(labels, sizeof labels, dir, BR_MKDATA_LABELS) ||
        !join(a, sizeof a, dir,
              !strcmp(layout, "records") ? BR_MKDATA_RECORDS
              : !strcmp(layout, "files") ? BR_MKDATA_LIST
                                         : BR_MKDATA_DATA) ||
        !join(b, sizeof b, dir, BR_MKDATA_INDEX)) {
        br_cli_error("the path %s is too long", dir);
        return -ENAMETOOLONG;
    }
    if (!strcmp(layout, "records"))
        return br_dataset_open_records(ds, a, record_bytes, labels, flags);
    if (!strcmp(layout, "files"))
        return br_dataset_open_files(ds, a, labels, flags);
    return br_dataset_open_indexed(ds, a, b, labels, flags);
}

/* Checks batch b against the dataset: order, ids, labels, offsets and every
 * byte. Returns NULL, or what is wrong. */
static const char *check_batch(const br_batch *b, uint64_t expect_seq, uint64_t samples,
                               uint64_t batch, const struct br_mkdata_spec *spec, char *why,
                               size_t cap)
{
    const uint64_t per_epoch = (samples + batch - 1) / batch;
    const uint64_t first = (b->seq % per_epoch) * batch;
    if (b->seq != expect_seq)
        return "out of order";
    if (!b->offsets || b->offsets[0] != 0 || b->offsets[b->count] != b->size)
        return "bad offsets";
    if (!b->labels)
        return "no labels";
    for (uint32_t i = 0; i < b->count; i++) {
        uint64_t id = first + i;
        size_t len = br_synth_size(DEMO_SEED, id, spec->min_bytes, spec->max_bytes), bad;
        if (b->ids[i] != id)
            return "wrong id";
        if (b->labels[i] != br_synth_label(DEMO_SEED, id))
            return "wrong label";
        if (b->offsets[i + 1] - b->offsets[i] != len)
            return "wrong sample size";
        bad = br_synth_check((const uint8_t *)b->data + b->offsets[i], len, DEMO_SEED, id);
        if (bad != len) {
            snprintf(why, cap, "sample %" PRIu64 " differs at byte %zu", id, bad);
            return why;
        }
    }
    return NULL;
}

int br_cli_demo(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"workers", required_argument, NULL, 'w'}, {"seconds", required_argument, NULL, 's'},
        {"batch", required_argument, NULL, 'b'},   {"sample-bytes", required_argument, NULL, 'z'},
        {"samples", required_argument, NULL, 'n'}, {"slots", required_argument, NULL, 'S'},
        {"layout", required_argument, NULL, 'l'},  {"direct", no_argument, NULL, 'D'},
        {"cpus", required_argument, NULL, 'C'},    {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *cpus = NULL;
    unsigned long workers = 2, batch = 64, sample_bytes = 4096, samples = 16384, slots = 0;
    const char *layout = "records";
    bool direct = false;
    double seconds = 3.0;
    int c;

    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        char *end = NULL;
        unsigned long v = 0;
        if (c == 'h') {
            usage(stdout);
            return 0;
        }
        if (c == '?') {
            usage(stderr);
            return 2;
        }
        if (c == 'l') {
            layout = optarg;
            continue;
        }
        if (c == 'D') {
            direct = true;
            continue;
        }
        if (c == 'C') {
            cpus = optarg;
            continue;
        }
        errno = 0;
        if (c == 's')
            seconds = strtod(optarg, &end);
        else
            v = strtoul(optarg, &end, 10);
        if (errno || !end || *end || optarg[0] == '-') {
            const char *name = "?";
            for (const struct option *o = longopts; o->name; o++)
                if (o->val == c)
                    name = o->name;
            br_cli_error("bad value '%s' for --%s", optarg, name);
            return 2;
        }
        switch (c) {
        case 'w':
            workers = v;
            break;
        case 'b':
            batch = v;
            break;
        case 'z':
            sample_bytes = v;
            break;
        case 'n':
            samples = v;
            break;
        case 'S':
            slots = v;
            break;
        default:
            break;
        }
    }
    if (strcmp(layout, "records") && strcmp(layout, "files") && strcmp(layout, "indexed")) {
        br_cli_error("unknown --layout '%s': use records, files or indexed", layout);
        return 2;
    }
    if (sample_bytes == 0 || samples == 0 || batch == 0 || batch > samples || seconds <= 0 ||
        workers > BR_MAX_WORKERS || batch > BR_MAX_BATCH_SIZE || slots > BR_MAX_SLOTS) {
        br_cli_error("--sample-bytes, --samples, --batch and --seconds must be "
                     "positive, --batch at most --samples, and --workers, --batch, --slots "
                     "within the library's limits");
        return 2;
    }

    /* The dataset: mkdata's, in a directory of our own. */
    const char *tmp = getenv("TMPDIR");
    char dir[4096], err[1024], h[32];
    snprintf(dir, sizeof dir, "%s/batchring-demo-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        br_cli_error("cannot create a directory %s: %s", dir, strerror(errno));
        return 1;
    }
    struct br_mkdata_spec spec = {
        .layout = layout,
        .dir = dir,
        .samples = samples,
        .min_bytes = strcmp(layout, "records") ? sample_bytes / 2 : sample_bytes,
        .max_bytes = strcmp(layout, "records") ? sample_bytes + sample_bytes / 2 : sample_bytes,
        .seed = DEMO_SEED,
        .progress = isatty(STDERR_FILENO),
    };
    uint64_t data_bytes = 0;
    br_dataset *ds = NULL;
    br_gen *g = NULL;
    int rc = br_mkdata_write(&spec, &data_bytes, err, sizeof err);
    if (rc) {
        br_cli_error("%s", err);
        remove_tree(dir);
        return 1;
    }
    rc = open_dataset(&ds, layout, dir, sample_bytes, direct ? BR_DATASET_DIRECT : 0);
    if (rc) {
        br_cli_error("opening the dataset: %s: %s", br_err_name(rc), br_last_error(NULL));
        remove_tree(dir);
        return 1;
    }

    br_options opt;
    br_options_init(&opt);
    opt.batch_size = (uint32_t)batch;
    opt.workers = (uint32_t)workers;
    if (slots)
        opt.slots = (uint32_t)slots;
    opt.cpus = cpus; /* NULL: BR_CPUS from the environment */
    rc = br_open_dataset(&g, ds, NULL, 0, &opt);
    if (rc) {
        br_cli_error("br_open_dataset: %s: %s", br_err_name(rc), br_last_error(NULL));
        br_dataset_close(ds);
        remove_tree(dir);
        return 1;
    }
    if (br_last_error(g)[0])
        br_cli_error("note: %s", br_last_error(g));

    /* Ctrl-C ends the run early but still cleans up (workers ignore it). */
    struct sigaction sa, old_int, old_term;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_interrupt;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);

    const bool tty = isatty(STDERR_FILENO);
    struct timespec t0;
    double next_report = 0.2, elapsed = 0;
    uint64_t expect_seq = 0, bad = 0, bytes = 0;
    br_batch b;
    br_stats st;

    printf("batchring demo: %s dataset of %lu samples (%s) in %s, batch %lu, %u workers%s, "
           "%.0f s\n",
           layout, samples, br_util_bytes(h, data_bytes), dir, batch, opt.workers,
           direct ? ", O_DIRECT" : "", seconds);
    fflush(stdout);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (!interrupted && (rc = br_next(g, &b)) == 0) {
        char why_buf[128];
        const char *why =
            check_batch(&b, expect_seq, samples, batch, &spec, why_buf, sizeof why_buf);
        if (why && bad++ == 0) {
            if (tty)
                fputc('\n', stderr); /* below the progress line */
            br_cli_error("batch %" PRIu64 " does not match the dataset: %s", b.seq, why);
        }
        expect_seq = b.seq + 1;
        bytes += b.size;
        if ((b.seq & 15) == 0) {
            elapsed = seconds_since(&t0);
            if (elapsed >= seconds)
                break;
            if (tty && elapsed >= next_report) {
                br_stats_get(g, &st);
                fprintf(stderr, "\r  %10llu batches  %6.2f GB/s  data stall %5.1f%%  ",
                        (unsigned long long)st.batches, (double)bytes / elapsed / 1e9,
                        100.0 * (double)st.stall_ns / (double)st.elapsed_ns);
                next_report = elapsed + 0.2;
            }
        }
    }
    if (rc) {
        if (tty)
            fputc('\n', stderr);
        br_cli_error("br_next: %s: %s", br_err_name(rc), br_last_error(g));
    }
    elapsed = seconds_since(&t0);
    br_stats_get(g, &st);

    /* Which read path ran: every worker uses the same one, unless one
     * was refused io_uring where another was not (then say so). */
    const char *backend = NULL;
    uint64_t reads = 0, copies = 0, preads = 0;
    char io_desc[160];
    for (uint32_t i = 0; i < (st.workers ? st.workers : 1); i++) {
        br_worker_stats ws;
        const char *name;
        if (br_worker_stats_get(g, i, &ws) != 0 || ws.io_backend == BR_IO_NONE)
            continue;
        name = ws.io_backend == BR_IO_URING ? "io_uring" : "pread";
        backend = !backend || !strcmp(backend, name) ? name : "mixed io_uring and pread";
        reads += ws.io_reads;
        copies += ws.io_copies;
        preads += ws.io_preads;
    }
    if (!backend)
        backend = "not reported";
    /* Each reader measures which path serves each file best: copies from
     * a mapping of the page cache, io_uring or pread (docs/datasets.md). */
    snprintf(io_desc, sizeof io_desc,
             "%s, %.0f%% of reads copied from the page cache, %.0f%% through pread", backend,
             reads ? 100.0 * (double)copies / (double)reads : 0.0,
             reads ? 100.0 * (double)preads / (double)reads : 0.0);
    if (tty)
        fprintf(stderr, "\r%72s\r", "");
    printf("batchring demo: %llu batches (%.2f GB) in %.2f s: %.0f batches/s, %.2f GB/s, data "
           "stall %.1f%%, io %s; %u worker restarts, %llu bad batches: %s\n",
           (unsigned long long)st.batches, (double)bytes / 1e9, elapsed,
           (double)st.batches / elapsed, (double)bytes / elapsed / 1e9,
           100.0 * (double)st.stall_ns / (double)st.elapsed_ns, io_desc, st.restarts,
           (unsigned long long)bad,
           rc == 0 && bad == 0
               ? (interrupted ? "every byte verified (interrupted)" : "every byte verified")
               : "FAILED");
    br_close(g);
    br_dataset_close(ds);
    remove_tree(dir);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    return rc == 0 && bad == 0 ? 0 : 1;
}
