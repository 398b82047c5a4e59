/* SPDX-License-Identifier: MIT */
/*
 * Small helpers shared by the named-ring commands (serve, consume, stat,
 * ls, gc): number parsing with messages that name the option, the ring
 * name rule, the stop-signal flag of the long-running ones, and how serve
 * and pack open a dataset named on the command line.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <batchring.h>

#include "cli.h"

volatile sig_atomic_t br_cli_stop;

static void on_stop(int sig)
{
    br_cli_stop = sig;
}

void br_cli_catch_stop_signals(void)
{
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        sigaction(sigs[i], &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}


bool br_cli_number(const char *opt, const char *text, uint64_t min, uint64_t max, bool sizes,
                   uint64_t *out)
{
    const char *why = "not a whole number";
    unsigned long long v;
    unsigned shift = 0;
    char *end = NULL;

    /* strtoull accepts "-1" as a huge value and leading blanks: refuse both. */
    if (!text || text[0] < '0' || text[0] > '9')
        goto bad;
    errno = 0;
    v = strtoull(text, &end, 10);
    if (errno)
        goto too_large;
    if (sizes) {
        switch (*end) {
        case 'k':
        case 'K':
            shift = 10;
            break;
        case 'm':
        case 'M':
            shift = 20;
            break;
        case 'g':
        case 'G':
            shift = 30;
            break;
        default:
            break;
        }
        if (shift) {
            end++;
            if (end[0] == 'i' && end[1] == 'B')
                end += 2;
            else if (end[0] == 'B' || end[0] == 'b')
                end++;
        }
        why = "not a whole number with an optional K, M or G suffix";
    }
    if (*end)
        goto bad;
    if (shift && v > (UINT64_MAX >> shift))
        goto too_large;
    v <<= shift;
    if (v < min || v > max) {
        br_cli_error("bad value '%s' for --%s: it must be between %" PRIu64 " and %" PRIu64, text,
                     opt, min, max);
        return false;
    }
    *out = v;
    return true;
too_large:
    why = "too large";
bad:
    br_cli_error("bad value '%s' for --%s: %s", text ? text : "", opt, why);
    return false;
}

bool br_cli_ring_name_ok(const char *name)
{
    /* The library's rule, so that the command refuses exactly what the
     * library would, before any ring is opened. */
    if (br_ring_name_check(name) == 0)
        return true;
    br_cli_error("bad %s", br_last_error(NULL));
    return false;
}

int br_cli_dataset_open(br_dataset **ds, char layout, const char *data, const char *index,
                        size_t record_bytes, const char *labels, unsigned flags)
{
    struct stat st;
    bool shards = data[0] == '@' || (strpbrk(data, "*?[") && stat(data, &st) != 0);
    switch (layout) {
    case 'r':
        return shards ? br_dataset_open_record_shards(ds, data, record_bytes, labels, flags)
                      : br_dataset_open_records(ds, data, record_bytes, labels, flags);
    case 'f':
        return shards ? br_dataset_open_files_glob(ds, data, labels, flags)
                      : br_dataset_open_files(ds, data, labels, flags);
    default:
        return shards ? br_dataset_open_indexed_shards(ds, data, index, labels, flags)
                      : br_dataset_open_indexed(ds, data, index, labels, flags);
    }
}
