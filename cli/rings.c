/* SPDX-License-Identifier: MIT */
/*
 * batchring stat, ls and gc: named rings seen from outside. Everything goes
 * through br_ring_status_get, which maps a ring read-only and claims nothing, so
 * looking never disturbs the producer or the consumer; gc removes only
 * rings whose producer is dead (br_ring_remove_stale).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <batchring.h>

#include "cli.h"

#define SHM_DIR "/dev/shm"
/* A one-shot stat measures rates over this window; --watch over its period. */
#define STAT_WINDOW_MS 250
#define WATCH_PERIOD_MS 1000

/* One look at a ring. */
struct snap {
    br_ring_status st;
    br_worker_stats w[BR_MAX_WORKERS];
    uint64_t t_ns;
};

/* What changed between two looks. */
struct rates {
    bool have;
    double secs, batches_s, gb_s, stall_pct;
};

static int snap_take(const char *name, struct snap *s)
{
    s->t_ns = br_util_now_ns();
    return br_ring_status_get(name, &s->st, s->w, BR_MAX_WORKERS);
}

static void rates_of(const struct snap *prev, const struct snap *now, struct rates *r)
{
    memset(r, 0, sizeof *r);
    /* Counters only grow; if they went back, the name now holds another
     * ring (a producer replaced a stale one), and a difference means nothing. */
    if (!prev || now->t_ns <= prev->t_ns || now->st.owner_pid != prev->st.owner_pid ||
        now->st.consumer_batches < prev->st.consumer_batches ||
        now->st.consumer_stall_ns < prev->st.consumer_stall_ns)
        return;
    r->have = true;
    r->secs = (double)(now->t_ns - prev->t_ns) / 1e9;
    r->batches_s = (double)(now->st.consumer_batches - prev->st.consumer_batches) / r->secs;
    r->gb_s = (double)(now->st.consumer_bytes - prev->st.consumer_bytes) / r->secs / 1e9;
    /* The library adds a wait to the stall counter when the wait ends, so a
     * long wait lands in one window: clamp rather than show 400%. */
    r->stall_pct = 100.0 * (double)(now->st.consumer_stall_ns - prev->st.consumer_stall_ns) /
                   (double)(now->t_ns - prev->t_ns);
    if (r->stall_pct > 100.0)
        r->stall_pct = 100.0;
}

static const char *backend_name(uint32_t b)
{
    return b == BR_IO_URING ? "io_uring" : b == BR_IO_PREAD ? "pread" : "none";
}

static const char *finished_name(uint32_t f)
{
    return f == BR_RING_ENDED ? "done" : f == BR_RING_STOPPED ? "failed" : "running";
}

/* "batch 57 of 96 (epoch 2 of 3)": where the consumer is. */
static void progress(const br_ring_status *st, char *buf, size_t cap)
{
    const uint64_t per = st->batches_per_epoch ? st->batches_per_epoch : 1;
    if (st->finished == BR_RING_ENDED)
        snprintf(buf, cap, "done: all %" PRIu64 " batches taken", st->end_seq);
    else if (st->epochs == 0)
        snprintf(buf, cap, "batch %" PRIu64 " (epoch %" PRIu64 ", no last epoch)%s", st->cursor,
                 st->cursor / per + 1, st->finished == BR_RING_STOPPED ? ", consumer failed" : "");
    else
        snprintf(buf, cap, "batch %" PRIu64 " of %" PRIu64 " (epoch %" PRIu64 " of %" PRIu64 ")%s",
                 st->cursor, st->end_seq, st->cursor / per + (st->cursor < st->end_seq), st->epochs,
                 st->finished == BR_RING_STOPPED ? ", consumer failed" : "");
}

/* "850 ms", "3.2 s": how long the consumer has waited so far. */
static const char *duration(char *buf, size_t cap, uint64_t ns)
{
    if (ns < 1000000000u)
        snprintf(buf, cap, "%.0f ms", (double)ns / 1e6);
    else
        snprintf(buf, cap, "%.1f s", (double)ns / 1e9);
    return buf;
}

static void print_text(FILE *f, const char *name, const struct snap *s, const struct rates *r)
{
    const br_ring_status *st = &s->st;
    char slot[32], total[32], bytes[32], where[160], epochs[48];

    if (st->epochs)
        snprintf(epochs, sizeof epochs, "%" PRIu64 " epoch%s", st->epochs,
                 st->epochs == 1 ? "" : "s");
    else
        snprintf(epochs, sizeof epochs, "epochs until stopped");
    progress(st, where, sizeof where);
    fprintf(f,
            "ring %s: %u slots x %s (%s), batch %u, %" PRIu64 " samples, %" PRIu64
            " batches per epoch, %s\n",
            name, st->slots, br_util_bytes(slot, st->slot_bytes),
            br_util_bytes(total, st->total_bytes), st->batch_size, st->n_ids,
            st->batches_per_epoch, epochs);
    fprintf(f, "  producer  pid %d, %s, uid %u\n", (int)st->owner_pid,
            st->owner_alive ? "running" : "DEAD (a stale ring: batchring gc removes it)",
            (unsigned)st->owner_uid);
    if (st->consumer_pid && st->consumer_waiting_seq != BR_NOT_WAITING) {
        char waited[32];
        fprintf(f, "  consumer  pid %d, waiting for batch %" PRIu64 " for %s\n",
                (int)st->consumer_pid, st->consumer_waiting_seq,
                duration(waited, sizeof waited, st->consumer_waiting_ns));
    } else if (st->consumer_pid)
        fprintf(f, "  consumer  pid %d, not waiting\n", (int)st->consumer_pid);
    else
        fprintf(f, "  consumer  none attached\n");
    fprintf(f, "  progress  %s; %" PRIu64 " handed to workers\n", where, st->claimed);
    fprintf(f, "  slots     %u free, %u loading, %u ready, %u failed\n", st->slots_free,
            st->slots_loading, st->slots_ready, st->slots_failed);
    fprintf(f, "  taken     %" PRIu64 " batches (%s), %.3f s waiting for data",
            st->consumer_batches, br_util_bytes(bytes, st->consumer_bytes),
            (double)st->consumer_stall_ns / 1e9);
    if (r && r->have)
        fprintf(f, "; last %.2f s: %.0f batches/s, %.3f GB/s, data stall %.1f%%\n", r->secs,
                r->batches_s, r->gb_s, r->stall_pct);
    else
        fprintf(f, "\n");
    fprintf(f, "  restarts  %u worker deaths survived\n", st->restarts);
    fprintf(f, "  %6s %8s %10s %12s %10s %12s %8s  %s\n", "worker", "pid", "batches", "load ms/b",
            "load s", "slot wait s", "restarts", "io (of reads: copied from page cache, pread)");
    for (uint32_t i = 0; i < st->workers; i++) {
        const br_worker_stats *w = &s->w[i];
        char pid[16];
        /* pid 0: not running (a stale ring's workers died with it). */
        if (w->pid)
            snprintf(pid, sizeof pid, "%d", (int)w->pid);
        else
            snprintf(pid, sizeof pid, "%s", st->owner_alive ? "-" : "dead");
        fprintf(f, "  %6u %8s %10" PRIu64 " %12.3f %10.3f %12.3f %8u  %s (%.0f%%, %.0f%%)\n", i,
                pid, w->batches,
                w->batches ? (double)w->load_ns / (double)w->batches / 1e6 : 0.0,
                (double)w->load_ns / 1e9, (double)w->slot_wait_ns / 1e9, w->restarts,
                backend_name(w->io_backend),
                w->io_reads ? 100.0 * (double)w->io_copies / (double)w->io_reads : 0.0,
                w->io_reads ? 100.0 * (double)w->io_preads / (double)w->io_reads : 0.0);
    }
}

/*
 * A ring as one JSON object on one line, so that --watch --json is JSON
 * Lines: the name (any bytes: see br_cli_json_name), every counter as an
 * exact integer, the rates of r when there are any, and the workers of w
 * when w is given (ls has none).
 */
static void print_json(FILE *f, const char *name, const br_ring_status *st,
                       const br_worker_stats *w, const struct rates *r)
{
    fputc('{', f);
    br_cli_json_name(f, "name", name);
    fprintf(f,
            ", \"owner_pid\": %d, \"owner_alive\": %s, \"owner_uid\": %u, \"consumer_pid\": %d"
            ", \"state\": \"%s\", \"slots\": %u, \"workers\": %u, \"batch_size\": %u"
            ", \"slot_bytes\": %" PRIu64 ", \"total_bytes\": %" PRIu64 ", \"n_ids\": %" PRIu64
            ", \"epochs\": %" PRIu64 ", \"batches_per_epoch\": %" PRIu64,
            (int)st->owner_pid, st->owner_alive ? "true" : "false", (unsigned)st->owner_uid,
            (int)st->consumer_pid, finished_name(st->finished), st->slots, st->workers,
            st->batch_size, st->slot_bytes, st->total_bytes, st->n_ids, st->epochs,
            st->batches_per_epoch);
    if (st->epochs)
        fprintf(f, ", \"end_seq\": %" PRIu64, st->end_seq);
    else
        fprintf(f, ", \"end_seq\": null");
    fprintf(f,
            ", \"claimed\": %" PRIu64 ", \"cursor\": %" PRIu64 ", \"consumer_batches\": %" PRIu64
            ", \"consumer_bytes\": %" PRIu64 ", \"consumer_stall_ns\": %" PRIu64
            ", \"restarts\": %u, \"slots_free\": %u, \"slots_loading\": %u, \"slots_ready\": %u"
            ", \"slots_failed\": %u",
            st->claimed, st->cursor, st->consumer_batches, st->consumer_bytes,
            st->consumer_stall_ns, st->restarts, st->slots_free, st->slots_loading, st->slots_ready,
            st->slots_failed);
    /* null and null: the consumer is not waiting in br_next right now. */
    if (st->consumer_waiting_seq != BR_NOT_WAITING)
        fprintf(f, ", \"consumer_waiting_seq\": %" PRIu64 ", \"consumer_waiting_ns\": %" PRIu64,
                st->consumer_waiting_seq, st->consumer_waiting_ns);
    else
        fprintf(f, ", \"consumer_waiting_seq\": null, \"consumer_waiting_ns\": null");
    if (r && r->have) {
        /* Every digit: a program computes with these, a person reads the
         * text output. */
        fprintf(f, ", \"window_s\": ");
        br_cli_json_double(f, r->secs);
        fprintf(f, ", \"batches_per_s\": ");
        br_cli_json_double(f, r->batches_s);
        fprintf(f, ", \"gb_per_s\": ");
        br_cli_json_double(f, r->gb_s);
        fprintf(f, ", \"data_stall_pct\": ");
        br_cli_json_double(f, r->stall_pct);
    }
    if (w) {
        fprintf(f, ", \"worker_stats\": [");
        for (uint32_t i = 0; i < st->workers; i++)
            fprintf(f,
                    "%s{\"worker\": %u, \"pid\": %d, \"batches\": %" PRIu64 ", \"bytes\": %" PRIu64
                    ", \"load_ns\": %" PRIu64 ", \"slot_wait_ns\": %" PRIu64
                    ", \"restarts\": %u, \"io_backend\": \"%s\", \"io_reads\": %" PRIu64
                    ", \"io_bytes\": %" PRIu64 ", \"io_copies\": %" PRIu64
                    ", \"io_preads\": %" PRIu64 "}",
                    i ? ", " : "", i, (int)w[i].pid, w[i].batches, w[i].bytes, w[i].load_ns,
                    w[i].slot_wait_ns, w[i].restarts, backend_name(w[i].io_backend), w[i].io_reads,
                    w[i].io_bytes, w[i].io_copies, w[i].io_preads);
        fputc(']', f);
    }
    fputc('}', f);
}

/* Sleeps ms, or less when a stop signal arrives (no SA_RESTART). */
static void nap(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (!br_cli_stop && nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static void stat_usage(FILE *to)
{
    fprintf(to,
            "usage: batchring stat /NAME [--json] [--watch]\n"
            "\n"
            "Shows a named ring from outside, read-only: its producer (alive or not),\n"
            "its consumer (and the batch it is waiting for right now, if any), the\n"
            "state of each slot, each worker's batches, load time, slot-wait time,\n"
            "restarts and read path (io_uring or pread), and the consumer's batches\n"
            "and data stall, measured over %d ms.\n"
            "\n"
            "  --json      one JSON object on one line\n"
            "  --watch     refresh every second until Ctrl-C (in place on a terminal;\n"
            "              with --json one object per line)\n"
            "  -h, --help  this text\n"
            "\n"
            "Exit status: 0, 1 when the ring cannot be read, 2 on a bad command line.\n",
            STAT_WINDOW_MS);
}

int br_cli_stat(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"json", no_argument, NULL, 'j'},
        {"watch", no_argument, NULL, 'w'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bool json = false, watch = false;
    const char *name;
    struct snap *a, *b;
    struct rates r;
    int c, rc, code = BR_CLI_OK;

    optind = 1;
    while ((c = getopt_long(argc, argv, "jwh", longopts, NULL)) != -1) {
        if (c == 'h') {
            stat_usage(stdout);
            return BR_CLI_OK;
        }
        if (c == 'j')
            json = true;
        else if (c == 'w')
            watch = true;
        else {
            fprintf(stderr, "(batchring stat --help lists the options)\n");
            return BR_CLI_USAGE;
        }
    }
    if (optind + 1 != argc) {
        br_cli_error("%s", optind == argc ? "which ring? batchring stat /NAME "
                                            "(batchring ls lists them)"
                                          : "one ring at a time");
        return BR_CLI_USAGE;
    }
    name = argv[optind];
    if (!br_cli_ring_name_ok(name))
        return BR_CLI_USAGE;

    a = calloc(1, sizeof *a);
    b = calloc(1, sizeof *b);
    if (!a || !b) {
        br_cli_error("out of memory");
        free(a);
        free(b);
        return BR_CLI_FAILED;
    }
    rc = snap_take(name, a);
    if (rc) {
        br_cli_error("%s: %s", br_err_name(rc), br_last_error(NULL));
        code = BR_CLI_FAILED;
        goto out;
    }
    br_cli_catch_stop_signals();
    if (!watch) {
        /* Rates need a second look; if the ring went in between, show the
         * first without them. */
        nap(STAT_WINDOW_MS);
        if (snap_take(name, b) == 0) {
            rates_of(a, b, &r);
            *a = *b;
        } else {
            memset(&r, 0, sizeof r);
        }
        if (json) {
            print_json(stdout, name, &a->st, a->w, &r);
            fputc('\n', stdout);
        } else
            print_text(stdout, name, a, &r);
        goto out;
    }
    const bool tty = isatty(STDOUT_FILENO);
    for (bool first = true; !br_cli_stop; first = false) {
        if (!first) {
            nap(WATCH_PERIOD_MS);
            if (br_cli_stop)
                break;
            rc = snap_take(name, b);
            if (rc) {
                /* A producer that ends removes its ring: the view ends too. */
                br_cli_error("%s: %s", rc == -ENOENT ? "ring gone" : br_err_name(rc),
                             br_last_error(NULL));
                code = rc == -ENOENT ? BR_CLI_OK : BR_CLI_FAILED;
                break;
            }
            rates_of(a, b, &r);
            struct snap *t = a;
            a = b;
            b = t;
        } else {
            memset(&r, 0, sizeof r);
        }
        if (tty && !json)
            fputs("\033[H\033[2J", stdout);
        else if (!first && !json)
            fputc('\n', stdout);
        if (json) {
            print_json(stdout, name, &a->st, a->w, &r);
            fputc('\n', stdout);
        } else
            print_text(stdout, name, a, &r);
        fflush(stdout);
    }
out:
    free(a);
    free(b);
    return code;
}

/* ------------------------------------------------------------- ls, gc */

static int cmp_names(const void *x, const void *y)
{
    return strcmp(*(char *const *)x, *(char *const *)y);
}

/*
 * The names ("/" + entry) of the regular files of this user in /dev/shm,
 * sorted. With `why` (else NULL), says there why other entries are left
 * out. Returns the count, or -errno.
 */
static long shm_names(char ***out, FILE *why)
{
    DIR *d = opendir(SHM_DIR);
    struct dirent *e;
    char **names = NULL;
    size_t n = 0, cap = 0;

    *out = NULL;
    if (!d) {
        int rc = -errno;
        br_cli_error("cannot list %s: %s", SHM_DIR, strerror(errno));
        return rc;
    }
    while ((e = readdir(d)) != NULL) {
        struct stat st;
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue; /* removed meanwhile */
        if (!S_ISREG(st.st_mode) || st.st_uid != geteuid() || strlen(e->d_name) > 250) {
            if (why)
                fprintf(why, "skipped %s/%s: %s\n", SHM_DIR, e->d_name,
                        !S_ISREG(st.st_mode)     ? "not a regular file"
                        : st.st_uid != geteuid() ? "another user's"
                                                 : "name too long for a ring");
            continue;
        }
        if (n == cap) {
            char **more = realloc(names, (cap = cap ? 2 * cap : 32) * sizeof *names);
            if (!more)
                break;
            names = more;
        }
        names[n] = malloc(strlen(e->d_name) + 2);
        if (!names[n])
            break;
        names[n][0] = '/';
        strcpy(names[n] + 1, e->d_name);
        n++;
    }
    closedir(d);
    if (n)
        qsort(names, n, sizeof *names, cmp_names);
    *out = names;
    return (long)n;
}

static void names_free(char **names, long n)
{
    for (long i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* -v, -h, and --json where json is not NULL (ls). Returns false when the
 * command is done, with its exit code in *code. */
static bool verbose_flag(int argc, char **argv, const char *cmd, bool *verbose, bool *json,
                         void (*help)(FILE *), int *code)
{
    static const struct option longopts[] = {
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {"json", no_argument, NULL, 'j'},
        {NULL, 0, NULL, 0},
    };
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "vh", longopts, NULL)) != -1) {
        if (c == 'v') {
            *verbose = true;
        } else if (c == 'j' && json) {
            *json = true;
        } else if (c == 'h') {
            help(stdout);
            *code = BR_CLI_OK;
            return false;
        } else {
            if (c == 'j')
                br_cli_error("unrecognized option '--json'");
            fprintf(stderr, "(batchring %s --help lists the options)\n", cmd);
            *code = BR_CLI_USAGE;
            return false;
        }
    }
    return true;
}

static void ls_usage(FILE *to)
{
    fprintf(to, "usage: batchring ls [-v] [--json]\n"
                "\n"
                "Lists this user's named rings in " SHM_DIR ": name, producer pid and whether\n"
                "it runs (a ring whose producer is dead is stale: batchring gc removes it),\n"
                "consumer pid, size and progress. Other entries are skipped; -v says which\n"
                "and why.\n"
                "\n"
                "  -v, --verbose  say which entries are skipped and why (on stderr with --json)\n"
                "  --json         one JSON array of objects, one per ring, with the fields of\n"
                "                 stat --json but no rates and no worker_stats; [] when none\n"
                "  -h, --help     this text\n"
                "\n"
                "JSON strings are UTF-8; a name byte that is not valid UTF-8 is shown as\n"
                "U+FFFD, and the object then also has name_hex, the name's bytes in hex.\n"
                "\n"
                "Exit status: 0, 1 when " SHM_DIR " cannot be read, 2 on a bad command line.\n");
}

int br_cli_ls(int argc, char **argv)
{
    bool verbose = false, json = false;
    char **names;
    long n;
    int code = BR_CLI_OK, shown = 0;
    size_t width = 4;
    FILE *why;

    if (!verbose_flag(argc, argv, "ls", &verbose, &json, ls_usage, &code))
        return code;
    if (optind < argc) {
        br_cli_error("unexpected argument '%s'", argv[optind]);
        return BR_CLI_USAGE;
    }
    /* With --json, stdout holds nothing but the JSON. */
    why = !verbose ? NULL : json ? stderr : stdout;
    n = shm_names(&names, why);
    if (n < 0)
        return BR_CLI_FAILED;
    for (long i = 0; i < n; i++)
        if (strlen(names[i]) > width)
            width = strlen(names[i]);
    if (json)
        fputc('[', stdout);
    for (long i = 0; i < n; i++) {
        br_ring_status st;
        char where[160], size[32], producer[32], consumer[16];
        int rc = br_ring_status_get(names[i], &st, NULL, 0);
        if (rc) {
            if (why)
                fprintf(why, "skipped %s%s: not a ring (%s)\n", SHM_DIR, names[i],
                        br_last_error(NULL));
            continue;
        }
        if (json) {
            fputs(shown++ ? ",\n " : "", stdout);
            print_json(stdout, names[i], &st, NULL, NULL);
            continue;
        }
        if (!shown++)
            printf("%-*s  %-16s  %-8s  %10s  %s\n", (int)width, "NAME", "PRODUCER", "CONSUMER",
                   "SIZE", "PROGRESS");
        snprintf(producer, sizeof producer, "%d %s", (int)st.owner_pid,
                 st.owner_alive ? "running" : "stale");
        if (st.consumer_pid)
            snprintf(consumer, sizeof consumer, "%d", (int)st.consumer_pid);
        else
            snprintf(consumer, sizeof consumer, "-");
        progress(&st, where, sizeof where);
        printf("%-*s  %-16s  %-8s  %10s  %s\n", (int)width, names[i], producer, consumer,
               br_util_bytes(size, st.total_bytes), where);
    }
    if (json)
        fputs("]\n", stdout);
    else if (!shown)
        printf("no rings of uid %u in " SHM_DIR "\n", (unsigned)geteuid());
    names_free(names, n);
    return code;
}

static void gc_usage(FILE *to)
{
    fprintf(to, "usage: batchring gc [-v] [/NAME...]\n"
                "\n"
                "Removes this user's named rings whose producer is dead (stale rings left by\n"
                "a producer that was killed), or only the rings named. Rings with a running\n"
                "producer are kept; entries that are not rings are left alone (-v says so).\n"
                "\n"
                "Exit status: 0, 1 when a ring could not be removed or a named one is not a\n"
                "ring, 2 on a bad command line.\n");
}

int br_cli_gc(int argc, char **argv)
{
    bool verbose = false, listed;
    char **names;
    long n;
    int code = BR_CLI_OK, removed = 0, kept = 0;

    if (!verbose_flag(argc, argv, "gc", &verbose, NULL, gc_usage, &code))
        return code;
    listed = optind < argc;
    if (listed) {
        for (int i = optind; i < argc; i++)
            if (!br_cli_ring_name_ok(argv[i]))
                return BR_CLI_USAGE;
        names = argv + optind;
        n = argc - optind;
    } else {
        n = shm_names(&names, verbose ? stdout : NULL);
        if (n < 0)
            return BR_CLI_FAILED;
    }
    for (long i = 0; i < n; i++) {
        br_ring_status st;
        char size[32];
        int rc = br_ring_status_get(names[i], &st, NULL, 0);
        if (rc) {
            /* Asked for by name, a non-ring is an error; met in a scan of
             * /dev/shm, it is someone else's file. */
            if (listed) {
                br_cli_error("%s: %s", br_err_name(rc), br_last_error(NULL));
                code = BR_CLI_FAILED;
            } else if (verbose) {
                printf("skipped %s%s: not a ring (%s)\n", SHM_DIR, names[i], br_last_error(NULL));
            }
            continue;
        }
        if (st.owner_alive) {
            kept++;
            if (verbose || listed)
                printf("kept %s: its producer (pid %d) is running\n", names[i], (int)st.owner_pid);
            continue;
        }
        /* The library checks again: a producer may have replaced the stale
         * ring since our look. */
        rc = br_ring_remove_stale(names[i]);
        if (rc == 0) {
            removed++;
            printf("removed %s: its producer (pid %d) is gone; %s freed\n", names[i],
                   (int)st.owner_pid, br_util_bytes(size, st.total_bytes));
        } else if (rc == -EBUSY) {
            kept++;
            if (verbose || listed)
                printf("kept %s: %s\n", names[i], br_last_error(NULL));
        } else if (rc != -ENOENT) {
            br_cli_error("cannot remove %s: %s: %s", names[i], br_err_name(rc),
                         br_last_error(NULL));
            code = BR_CLI_FAILED;
        }
    }
    printf("batchring gc: removed %d stale ring%s, kept %d with a running producer\n", removed,
           removed == 1 ? "" : "s", kept);
    if (!listed)
        names_free(names, n);
    return code;
}
