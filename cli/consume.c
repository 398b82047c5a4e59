/* SPDX-License-Identifier: MIT */
/*
 * batchring consume: the reference consumer of a named ring. It attaches
 * by name, takes batches with br_next as a trainer would, optionally checks
 * every sample against the synthetic data that mkdata writes (synth/synth.h),
 * and prints its throughput and data stall. Detaching (br_close) releases
 * the batch it holds, so the next consumer starts right after it.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <batchring.h>

#include "cli.h"
#include "synth.h"

/* Longest single br_next wait: how soon Ctrl-C and --timeout-ms act. */
#define CONSUME_SLICE_MS 200

struct verify {
    bool on;
    uint64_t seed;
    bool sizes; /* check each sample's size too */
    uint64_t min_bytes, max_bytes;
};

static void usage(FILE *to)
{
    fprintf(to, "usage: batchring consume --name /NAME [--batches N] [--verify [--seed S]]\n"
                "                         [--timeout-ms T]\n"
                "\n"
                "Attaches to a served ring (batchring serve) as its consumer, takes batches\n"
                "with br_next until the end of the last epoch (or N batches), and prints\n"
                "batches/s, GB/s and the data stall (the share of the time spent waiting\n"
                "for data). Detaching releases the batch it holds: a later consumer starts\n"
                "right after it.\n"
                "\n"
                "  --name /NAME      the ring (required)\n"
                "  --batches N       stop after N batches\n"
                "  --verify          check every sample against mkdata's synthetic data: its\n"
                "                    bytes and label (for any layout, any order)\n"
                "  --seed S          the --seed the dataset was written with (default 0)\n"
                "  --sample-bytes N  with --verify: every sample must be N bytes\n"
                "  --min-bytes A     with --verify: sizes as mkdata's --min-bytes and\n"
                "  --max-bytes B       --max-bytes (files and indexed layouts)\n"
                "  --timeout-ms T    fail when no batch arrives for T ms (default: wait)\n"
                "  -q, --quiet       no progress line\n"
                "  -h, --help        this text\n"
                "\n"
                "Exit status: 0 when done (or interrupted), 1 on an error or a sample that\n"
                "does not match, 2 on a bad command line.\n");
}

/* Checks b against mkdata's data; NULL when it matches, else what differs. */
static const char *check_batch(const br_batch *b, const struct verify *v, char *why, size_t cap)
{
    const uint8_t *data = b->data;
    size_t each = 0;

    if (b->count == 0)
        return "the batch has no samples";
    if (b->offsets) {
        if (b->offsets[0] != 0 || b->offsets[b->count] != b->size) {
            snprintf(why, cap,
                     "offsets[0] = %" PRIu64 " and offsets[%u] = %" PRIu64
                     " do not span the batch's %zu bytes",
                     b->offsets[0], b->count, b->offsets[b->count], b->size);
            return why;
        }
    } else if (b->size % b->count) {
        snprintf(why, cap,
                 "%zu bytes for %u samples, and the loader gave no offsets to say where each "
                 "starts",
                 b->size, b->count);
        return why;
    } else {
        each = b->size / b->count;
    }
    for (uint32_t i = 0; i < b->count; i++) {
        const uint64_t id = b->ids[i];
        const uint64_t start = b->offsets ? b->offsets[i] : i * each;
        const uint64_t end = b->offsets ? b->offsets[i + 1] : start + each;
        size_t len, bad;
        if (end < start || end > b->size) {
            snprintf(why, cap,
                     "offsets[%u..%u] = %" PRIu64 "..%" PRIu64 " are not within the batch", i,
                     i + 1, start, end);
            return why;
        }
        len = (size_t)(end - start);
        if (v->sizes) {
            size_t want = br_synth_size(v->seed, id, (size_t)v->min_bytes, (size_t)v->max_bytes);
            if (len != want) {
                snprintf(why, cap, "sample %" PRIu64 " (position %u) has %zu bytes, expected %zu",
                         id, i, len, want);
                return why;
            }
        }
        bad = br_synth_check(data + start, len, v->seed, id);
        if (bad != len) {
            snprintf(why, cap,
                     "sample %" PRIu64 " (position %u) differs from mkdata's (seed %" PRIu64
                     ") at byte %zu of %zu",
                     id, i, v->seed, bad, len);
            return why;
        }
        if (b->labels && b->labels[i] != br_synth_label(v->seed, id)) {
            snprintf(why, cap, "sample %" PRIu64 " (position %u) has label %d, expected %d", id, i,
                     (int)b->labels[i], (int)br_synth_label(v->seed, id));
            return why;
        }
    }
    return NULL;
}

int br_cli_consume(int argc, char **argv)
{
    enum {
        OPT_NAME = 256,
        OPT_BATCHES,
        OPT_VERIFY,
        OPT_SEED,
        OPT_SAMPLE_BYTES,
        OPT_MIN_BYTES,
        OPT_MAX_BYTES,
        OPT_TIMEOUT,
    };
    static const struct option longopts[] = {
        {"name", required_argument, NULL, OPT_NAME},
        {"batches", required_argument, NULL, OPT_BATCHES},
        {"verify", no_argument, NULL, OPT_VERIFY},
        {"seed", required_argument, NULL, OPT_SEED},
        {"sample-bytes", required_argument, NULL, OPT_SAMPLE_BYTES},
        {"min-bytes", required_argument, NULL, OPT_MIN_BYTES},
        {"max-bytes", required_argument, NULL, OPT_MAX_BYTES},
        {"timeout-ms", required_argument, NULL, OPT_TIMEOUT},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct verify v = {.on = false};
    const char *name = NULL;
    uint64_t limit = 0, timeout_ms = 0, sample_bytes = 0;
    bool have_timeout = false, have_size = false, have_min = false, have_max = false;
    bool quiet = false, ok = true;
    int c;

    optind = 1;
    while ((c = getopt_long(argc, argv, "qh", longopts, NULL)) != -1) {
        switch (c) {
        case 'h':
            usage(stdout);
            return BR_CLI_OK;
        case 'q':
            quiet = true;
            break;
        case OPT_NAME:
            name = optarg;
            break;
        case OPT_VERIFY:
            v.on = true;
            break;
        case OPT_BATCHES:
            ok = br_cli_number("batches", optarg, 1, UINT64_MAX, false, &limit);
            break;
        case OPT_SEED:
            ok = br_cli_number("seed", optarg, 0, UINT64_MAX, false, &v.seed);
            break;
        case OPT_SAMPLE_BYTES:
            ok = br_cli_number("sample-bytes", optarg, 0, SIZE_MAX, true, &sample_bytes);
            have_size = true;
            break;
        case OPT_MIN_BYTES:
            ok = br_cli_number("min-bytes", optarg, 0, SIZE_MAX, true, &v.min_bytes);
            have_min = true;
            break;
        case OPT_MAX_BYTES:
            ok = br_cli_number("max-bytes", optarg, 0, SIZE_MAX, true, &v.max_bytes);
            have_max = true;
            break;
        case OPT_TIMEOUT:
            ok = br_cli_number("timeout-ms", optarg, 0, INT32_MAX, false, &timeout_ms);
            have_timeout = true;
            break;
        default:
            fprintf(stderr, "(batchring consume --help lists the options)\n");
            return BR_CLI_USAGE;
        }
        if (!ok)
            return BR_CLI_USAGE;
    }
    if (optind < argc) {
        br_cli_error("unexpected argument '%s'", argv[optind]);
        return BR_CLI_USAGE;
    }
    if (!name) {
        br_cli_error("--name /NAME is required (batchring consume --help)");
        return BR_CLI_USAGE;
    }
    if (!br_cli_ring_name_ok(name))
        return BR_CLI_USAGE;
    if ((have_size || have_min || have_max) && !v.on) {
        br_cli_error("--sample-bytes, --min-bytes and --max-bytes are for "
                     "--verify");
        return BR_CLI_USAGE;
    }
    if (have_size && (have_min || have_max)) {
        br_cli_error("give either --sample-bytes or --min-bytes/--max-bytes");
        return BR_CLI_USAGE;
    }
    if (have_min != have_max || (have_min && v.min_bytes > v.max_bytes)) {
        br_cli_error("--min-bytes and --max-bytes go together, min <= max");
        return BR_CLI_USAGE;
    }
    if (have_size)
        v.min_bytes = v.max_bytes = sample_bytes;
    v.sizes = have_size || have_min;

    br_cli_catch_stop_signals();
    const int slice =
        have_timeout && timeout_ms < CONSUME_SLICE_MS ? (int)timeout_ms : CONSUME_SLICE_MS;
    br_gen *g;
    int rc = br_attach(&g, name, slice);
    if (rc) {
        br_cli_error("cannot attach to %s: %s: %s", name, br_err_name(rc), br_last_error(NULL));
        return BR_CLI_FAILED;
    }

    /* The ring's consumer counters add up over every consumer it has had:
     * ours are the difference from now. */
    br_stats st0, st;
    br_stats_get(g, &st0);
    const bool tty = !quiet && isatty(STDERR_FILENO);
    const uint64_t t0 = br_util_now_ns();
    uint64_t got = 0, bytes = 0, first = 0, last = 0, last_batch_ns = t0, next_report = t0;
    const char *ended = "end of data";
    char why_buf[512], h[32];
    const char *why = NULL;
    br_batch b;

    for (;;) {
        if (br_cli_stop) {
            /* A stop is not a failure, even when it cut short a br_next
             * that was waiting (it returned -ETIMEDOUT at the end of its
             * slice, and the loop came back here). */
            ended = "interrupted";
            rc = 0;
            break;
        }
        if (limit && got == limit) {
            ended = "--batches reached";
            break;
        }
        rc = br_next(g, &b);
        if (rc == -ETIMEDOUT) {
            if (have_timeout && br_util_now_ns() - last_batch_ns >= timeout_ms * 1000000u) {
                uint64_t next = 0;
                br_checkpoint_get(g, &next);
                if (tty)
                    fputc('\n', stderr); /* below the progress line */
                br_cli_error("%s: no batch within --timeout-ms %" PRIu64
                             " (waiting for batch %" PRIu64 ")",
                             name, timeout_ms, next);
                break; /* rc stays -ETIMEDOUT: a failure */
            }
            continue;
        }
        if (rc == BR_EOF) {
            rc = 0;
            break;
        }
        if (rc) {
            if (tty)
                fputc('\n', stderr);
            br_cli_error("%s: br_next: %s: %s", name, br_err_name(rc), br_last_error(g));
            break;
        }
        if (got && b.seq != last + 1) {
            snprintf(why_buf, sizeof why_buf, "batch %" PRIu64 " came after batch %" PRIu64, b.seq,
                     last);
            why = why_buf;
        } else if (v.on) {
            why = check_batch(&b, &v, why_buf, sizeof why_buf);
        }
        if (why) {
            if (tty)
                fputc('\n', stderr);
            br_cli_error("%s: batch %" PRIu64 " (epoch %" PRIu64 ", batch %" PRIu64
                         " of it) does not match: %s",
                         name, b.seq, b.epoch, b.batch, why);
            break;
        }
        if (!got)
            first = b.seq;
        last = b.seq;
        got++;
        bytes += b.size;
        last_batch_ns = br_util_now_ns();
        if (tty && last_batch_ns >= next_report) {
            double s = (double)(last_batch_ns - t0) / 1e9;
            fprintf(stderr, "\r  %10" PRIu64 " batches  %8.0f batches/s  %6.2f GB/s  ", got,
                    (double)got / s, (double)bytes / s / 1e9);
            next_report = last_batch_ns + 200000000u;
        }
    }
    const bool failed = rc != 0 || why;
    const double secs = (double)(br_util_now_ns() - t0) / 1e9;
    br_stats_get(g, &st);
    br_close(g);
    if (tty)
        fprintf(stderr, "\r%72s\r", "");

    char range[64] = "";
    if (got)
        snprintf(range, sizeof range, " (seq %" PRIu64 "..%" PRIu64 ")", first, last);
    const double stall =
        st.elapsed_ns ? 100.0 * (double)(st.stall_ns - st0.stall_ns) / (double)st.elapsed_ns : 0.0;
    printf("batchring consume: %s: %" PRIu64 " batches%s, %s in %.2f s: %.0f batches/s, %.3f "
           "GB/s, data stall %.1f%%; %s; %s\n",
           name, got, range, br_util_bytes(h, bytes), secs, secs > 0 ? (double)got / secs : 0.0,
           secs > 0 ? (double)bytes / secs / 1e9 : 0.0, stall > 100.0 ? 100.0 : stall,
           !v.on    ? "not verified (--verify checks mkdata data)"
           : failed ? "verification stopped"
                    : "every sample verified",
           failed ? "FAILED" : ended);
    return failed ? BR_CLI_FAILED : BR_CLI_OK;
}
