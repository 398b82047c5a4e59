/* SPDX-License-Identifier: MIT */
/*
 * batchring mkdata: writes a deterministic synthetic dataset in one of the
 * built-in layouts (records, files, indexed), with a labels file, so that
 * the demo, the tests and the benchmarks need nothing from outside. The
 * writer is synth/mkdata.c (the tests and the soak use it too); this file
 * is its command line.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "mkdata.h"

/* ------------------------------------------------------------------ CLI */

/* A byte count with an optional binary suffix: 4096, 4k, 64K, 1M, 2G. */
static bool parse_bytes(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v;
    unsigned shift = 0;
    if (!s[0] || s[0] == '-')
        return false;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || end == s)
        return false;
    switch (*end) {
    case 'k':
    case 'K':
        shift = 10;
        end++;
        break;
    case 'm':
    case 'M':
        shift = 20;
        end++;
        break;
    case 'g':
    case 'G':
        shift = 30;
        end++;
        break;
    default:
        break;
    }
    if (*end == 'i' && shift)
        end++;
    if ((*end == 'B' || *end == 'b') && shift)
        end++;
    if (*end || (shift && v > (UINT64_MAX >> shift)))
        return false;
    *out = (uint64_t)v << shift;
    return true;
}

static void usage(FILE *to)
{
    fprintf(to,
            "usage: batchring mkdata --layout records|files|indexed --dir DIR --samples N\n"
            "                        [--sample-bytes N | --min-bytes A --max-bytes B] [--seed S]\n"
            "                        [--shards K]   (records, indexed)\n"
            "       batchring mkdata --layout tokens --dir DIR --samples TOKENS [--shards K]\n"
            "\n"
            "Writes a deterministic synthetic dataset with a labels file (one int32 per\n"
            "sample), in the layouts batchring's built-in loaders read:\n"
            "  records  DIR/" BR_MKDATA_RECORDS "  N records of --sample-bytes each\n"
            "  files    DIR/" BR_MKDATA_FILES_DIR
            "/NNNNNNNN.bin, one file per sample, listed in DIR/" BR_MKDATA_LIST "\n"
            "  indexed  DIR/" BR_MKDATA_DATA " and DIR/" BR_MKDATA_INDEX
            " (uint64 offset, uint64 length per sample)\n"
            "  with --shards K, records and indexed data in K shards of about N / K\n"
            "  samples: DIR/" BR_MKDATA_RECORDS_GLOB ", or DIR/" BR_MKDATA_DATA_GLOB
            " each with its index beside it\n"
            "           (NAME" BR_MKDATA_INDEX_SUFFIX ", offsets into that shard)\n"
            "  tokens   DIR/" BR_MKDATA_TOKENS_GLOB ": K llm.c shards of TOKENS uint16 tokens\n"
            "           each (a 1024-byte header, magic 20240520, version 1), no labels\n"
            "plus DIR/" BR_MKDATA_LABELS " and DIR/" BR_MKDATA_MANIFEST
            " (the parameters). The same arguments\n"
            "always give the same bytes. Sizes take K, M, G suffixes (binary).\n\n"
            "  --layout L        records, files, indexed or tokens (required)\n"
            "  --dir DIR         where to write; created if missing (required)\n"
            "  --samples N       number of samples (required)\n"
            "  --sample-bytes N  every sample N bytes (default 4096 for records)\n"
            "  --min-bytes A     files, indexed: sizes uniform in [A, B]\n"
            "  --max-bytes B       (default 1K .. 16K)\n"
            "  --shards K        tokens: number of shards (default 4); records, indexed:\n"
            "                    the samples split over K shard files (default: one file)\n"
            "  --seed S          content seed (default 0)\n"
            "  -q, --quiet       no progress bar\n"
            "  -h, --help        this text\n");
}

int br_cli_mkdata(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"layout", required_argument, NULL, 'l'},
        {"dir", required_argument, NULL, 'd'},
        {"samples", required_argument, NULL, 'n'},
        {"sample-bytes", required_argument, NULL, 'z'},
        {"min-bytes", required_argument, NULL, 'a'},
        {"max-bytes", required_argument, NULL, 'b'},
        {"seed", required_argument, NULL, 's'},
        {"shards", required_argument, NULL, 'k'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct br_mkdata_spec spec = {.seed = 0};
    uint64_t sample_bytes = 0, min_bytes = 0, max_bytes = 0, data_bytes = 0;
    bool have_samples = false, have_size = false, have_min = false, have_max = false;
    bool quiet = false;
    char err[1024], h[32];
    int c, rc;

    optind = 1;
    while ((c = getopt_long(argc, argv, "qh", longopts, NULL)) != -1) {
        uint64_t v = 0;
        switch (c) {
        case 'h':
            usage(stdout);
            return 0;
        case 'q':
            quiet = true;
            continue;
        case 'l':
            spec.layout = optarg;
            continue;
        case 'd':
            spec.dir = optarg;
            continue;
        case '?':
            usage(stderr);
            return 2;
        default:
            break;
        }
        if (!parse_bytes(optarg, &v) || (c == 'n' && v == 0)) {
            const char *name = "?";
            for (const struct option *o = longopts; o->name; o++)
                if (o->val == c)
                    name = o->name;
            br_cli_error("bad value '%s' for --%s", optarg, name);
            return 2;
        }
        switch (c) {
        case 'n':
            spec.samples = v;
            have_samples = true;
            break;
        case 'z':
            sample_bytes = v;
            have_size = true;
            break;
        case 'a':
            min_bytes = v;
            have_min = true;
            break;
        case 'b':
            max_bytes = v;
            have_max = true;
            break;
        case 's':
            spec.seed = v;
            break;
        case 'k':
            if (v == 0 || v > 1000000) {
                br_cli_error("bad value '%s' for --shards (1 .. 1000000)", optarg);
                return 2;
            }
            spec.shards = (uint32_t)v;
            break;
        default:
            break;
        }
    }
    if (optind < argc) {
        br_cli_error("unexpected argument '%s'", argv[optind]);
        return 2;
    }
    if (!spec.layout || !spec.dir || !have_samples) {
        br_cli_error("--layout, --dir and --samples are required "
                     "(batchring mkdata --help)");
        return 2;
    }
    if (strcmp(spec.layout, "records") && strcmp(spec.layout, "files") &&
        strcmp(spec.layout, "indexed") && strcmp(spec.layout, "tokens")) {
        br_cli_error("unknown layout '%s': use records, files, indexed or tokens", spec.layout);
        return 2;
    }
    if (spec.shards && !strcmp(spec.layout, "files")) {
        br_cli_error("--shards is for --layout records, indexed or tokens (files are one per "
                     "sample already)");
        return 2;
    }
    if (!strcmp(spec.layout, "tokens")) {
        if (have_size || have_min || have_max) {
            br_cli_error("tokens are 2 bytes each: --samples gives the tokens per shard");
            return 2;
        }
        if (!spec.shards)
            spec.shards = 4;
        spec.progress = !quiet && isatty(STDERR_FILENO);
        rc = br_mkdata_write(&spec, &data_bytes, err, sizeof err);
        if (rc) {
            br_cli_error("%s", err);
            return 1;
        }
        printf("batchring mkdata: wrote %u llm.c token shards of %" PRIu64 " tokens (%s) to %s:\n"
               "  %s/" BR_MKDATA_TOKENS_GLOB "\n"
               "open it with br_dataset_open_tokens(&ds, \"%s/" BR_MKDATA_TOKENS_GLOB
               "\", T, 0, 0)\n"
               "or serve it with batchring serve --tokens '%s/" BR_MKDATA_TOKENS_GLOB
               "' --seq-len T\n",
               spec.shards, spec.samples, br_util_bytes(h, data_bytes), spec.dir, spec.dir,
               spec.dir, spec.dir);
        return 0;
    }
    if (have_size && (have_min || have_max)) {
        br_cli_error("give either --sample-bytes or --min-bytes/--max-bytes");
        return 2;
    }
    if (!strcmp(spec.layout, "records") && (have_min || have_max)) {
        br_cli_error("records all have one size: use --sample-bytes");
        return 2;
    }
    if (have_size) {
        spec.min_bytes = spec.max_bytes = sample_bytes;
    } else if (!strcmp(spec.layout, "records")) {
        spec.min_bytes = spec.max_bytes = 4096;
    } else {
        spec.min_bytes = have_min ? min_bytes : 1024;
        spec.max_bytes = have_max ? max_bytes : 16384;
        if (have_min && !have_max && spec.max_bytes < spec.min_bytes)
            spec.max_bytes = spec.min_bytes;
    }
    spec.progress = !quiet && isatty(STDERR_FILENO);

    rc = br_mkdata_write(&spec, &data_bytes, err, sizeof err);
    if (rc) {
        br_cli_error("%s", err);
        return 1;
    }
    printf("batchring mkdata: wrote %s %s dataset of %" PRIu64 " samples (%s) to %s:\n",
           spec.layout[0] == 'i' ? "an" : "a", spec.layout, spec.samples,
           br_util_bytes(h, data_bytes), spec.dir);
    if (spec.shards && !strcmp(spec.layout, "records")) {
        printf("  %s/%s  %u shards, %" PRIu64 " records x %" PRIu64 " bytes\n", spec.dir,
               BR_MKDATA_RECORDS_GLOB, spec.shards, spec.samples, spec.min_bytes);
    } else if (spec.shards) {
        printf("  %s/%s  %u shards, %" PRIu64 " samples of %" PRIu64 " .. %" PRIu64 " bytes\n",
               spec.dir, BR_MKDATA_DATA_GLOB, spec.shards, spec.samples, spec.min_bytes,
               spec.max_bytes);
        printf("  %s/%s" BR_MKDATA_INDEX_SUFFIX "  the index of each, (offset, length) pairs\n",
               spec.dir, BR_MKDATA_DATA_GLOB);
    } else if (!strcmp(spec.layout, "records")) {
        printf("  %s/%s  %" PRIu64 " records x %" PRIu64 " bytes\n", spec.dir, BR_MKDATA_RECORDS,
               spec.samples, spec.min_bytes);
    } else if (!strcmp(spec.layout, "files")) {
        printf("  %s/%s/  %" PRIu64 " files of %" PRIu64 " .. %" PRIu64 " bytes\n", spec.dir,
               BR_MKDATA_FILES_DIR, spec.samples, spec.min_bytes, spec.max_bytes);
        printf("  %s/%s  their list, one path per line\n", spec.dir, BR_MKDATA_LIST);
    } else {
        printf("  %s/%s  %" PRIu64 " samples of %" PRIu64 " .. %" PRIu64 " bytes\n", spec.dir,
               BR_MKDATA_DATA, spec.samples, spec.min_bytes, spec.max_bytes);
        printf("  %s/%s  %" PRIu64 " (offset, length) pairs\n", spec.dir, BR_MKDATA_INDEX,
               spec.samples);
    }
    printf("  %s/%s  %" PRIu64 " int32 labels\n", spec.dir, BR_MKDATA_LABELS, spec.samples);
    printf("  %s/%s  the parameters (seed %" PRIu64 ")\n", spec.dir, BR_MKDATA_MANIFEST, spec.seed);
    if (spec.shards && !strcmp(spec.layout, "records"))
        printf("serve it with batchring serve --records '%s/%s' --record-size %" PRIu64
               " --labels %s/%s\n",
               spec.dir, BR_MKDATA_RECORDS_GLOB, spec.min_bytes, spec.dir, BR_MKDATA_LABELS);
    else if (spec.shards)
        printf("serve it with batchring serve --indexed '%s/%s' " BR_MKDATA_INDEX_SUFFIX
               " --labels %s/%s\n",
               spec.dir, BR_MKDATA_DATA_GLOB, spec.dir, BR_MKDATA_LABELS);
    else if (!strcmp(spec.layout, "records"))
        printf("open it with br_dataset_open_records(&ds, \"%s/%s\", %" PRIu64 ", \"%s/%s\", 0)\n",
               spec.dir, BR_MKDATA_RECORDS, spec.min_bytes, spec.dir, BR_MKDATA_LABELS);
    else if (!strcmp(spec.layout, "files"))
        printf("open it with br_dataset_open_files(&ds, \"%s/%s\", \"%s/%s\", 0)\n", spec.dir,
               BR_MKDATA_LIST, spec.dir, BR_MKDATA_LABELS);
    else
        printf("open it with br_dataset_open_indexed(&ds, \"%s/%s\", \"%s/%s\", \"%s/%s\", 0)\n",
               spec.dir, BR_MKDATA_DATA, spec.dir, BR_MKDATA_INDEX, spec.dir, BR_MKDATA_LABELS);
    return 0;
}
