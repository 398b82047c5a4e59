/* SPDX-License-Identifier: MIT */
/*
 * batchring pack: converts what users have into a packed dataset (a
 * directory of checked shards, docs/datasets.md), through br_pack_*;
 * batchring verify: checks one with br_pack_verify.
 *
 * The built-in layouts are read through the library's own datasets (a
 * generator with workers = 0, in id order), so pack accepts exactly what
 * serve does and refuses what it refuses, with the same messages; a
 * directory of files is read here, one sample per regular file in name
 * order.
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
#include <unistd.h>

#include <batchring.h>

#include "cli.h"

static void pack_usage(FILE *to)
{
    fprintf(to,
            "usage: batchring pack OUTDIR SOURCE [options]\n"
            "\n"
            "Writes a packed dataset into OUTDIR (created; it must hold no .brp file):\n"
            "shards OUTDIR/NAME-00000.brp, ... (NAME: OUTDIR's last component), each\n"
            "with a header and XXH3-64 checksums per block and per shard, which\n"
            "batchring serve --packed and br_dataset_open_packed open with no size flag\n"
            "and batchring verify checks. The format: docs/datasets.md.\n"
            "\n"
            "SOURCE, one of:\n"
            "  --dir DIR                        every regular file in DIR, by name, one\n"
            "                                   sample each\n"
            "  --files LIST                     one file per sample, listed in LIST\n"
            "  --records FILE --record-size N   fixed-size records (a records layout)\n"
            "  --indexed DATA INDEX             variable-size samples and their index\n"
            "  --records, --files, --indexed    also take shards: DATA a glob or @LIST (as\n"
            "                                   batchring serve; --indexed PATTERN SUFFIX)\n"
            "  --tokens PATTERN                 token shards (a glob or @LIST): llm.c .bin,\n"
            "     [--token-bytes 2|4]           or raw tokens of the width given; packed\n"
            "                                   as a tokens layout (one file per shard or\n"
            "                                   more), served by serve --packed DIR\n"
            "                                   --seq-len T with no --token-bytes\n"
            "\n"
            "  --labels FILE       one int32 label per sample (little-endian)\n"
            "  --shard-size N      largest shard file (default 1G; K, M, G suffixes)\n"
            "  --block-size N      bytes per checksum block (default 64K)\n"
            "  --dtype NAME        what a sample holds, e.g. uint8 (at most 15 chars)\n"
            "  --shape D1,D2,...   its dimensions (at most 4)\n"
            "  -h, --help          this text\n"
            "\n"
            "Exit status: 0 when written, 1 on an error (the message names it), 2 on a\n"
            "bad command line.\n");
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

/* Reads a little-endian int32 labels file whole. */
static int read_labels(const char *path, int32_t **out, uint64_t *n)
{
    FILE *f = fopen(path, "rb");
    uint8_t b[4];
    size_t cap = 0;
    *out = NULL, *n = 0;
    if (!f) {
        br_cli_error("cannot open the labels file %s: %s", path, strerror(errno));
        return -1;
    }
    while (fread(b, 1, 4, f) == 4) {
        if (*n == cap) {
            int32_t *q = realloc(*out, (cap = cap ? 2 * cap : 1024) * sizeof *q);
            if (!q) {
                fclose(f);
                br_cli_error("out of memory for labels");
                return -1;
            }
            *out = q;
        }
        (*out)[(*n)++] = (int32_t)((uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
                                   (uint32_t)b[3] << 24);
    }
    fclose(f);
    return 0;
}

static int pack_dir(br_pack_writer *w, const char *dir, const char *labels_path)
{
    struct dirent **ents = NULL;
    int32_t *labels = NULL;
    uint64_t n_labels = 0, added = 0;
    uint8_t *buf = NULL;
    size_t cap = 0;
    int n = scandir(dir, &ents, NULL, by_name), rc = 0;

    if (n < 0) {
        br_cli_error("cannot list %s: %s", dir, strerror(errno));
        return -1;
    }
    if (labels_path && read_labels(labels_path, &labels, &n_labels))
        rc = -1;
    for (int i = 0; i < n && rc == 0; i++) {
        char path[4096];
        struct stat st;
        int fd;
        snprintf(path, sizeof path, "%s/%s", dir, ents[i]->d_name);
        if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
            continue;
        if (labels && added >= n_labels) {
            br_cli_error("the labels file %s has %" PRIu64 " labels, fewer than the files",
                         labels_path, n_labels);
            rc = -1;
            break;
        }
        if ((size_t)st.st_size > cap) {
            uint8_t *q = realloc(buf, (size_t)st.st_size);
            if (!q) {
                br_cli_error("out of memory for %s", path);
                rc = -1;
                break;
            }
            buf = q, cap = (size_t)st.st_size;
        }
        fd = open(path, O_RDONLY | O_CLOEXEC);
        size_t got = 0;
        while (fd >= 0 && got < (size_t)st.st_size) {
            ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
            if (r <= 0)
                break;
            got += (size_t)r;
        }
        if (fd >= 0)
            close(fd);
        if (fd < 0 || got != (size_t)st.st_size) {
            br_cli_error("cannot read %s whole: %s", path, fd < 0 ? strerror(errno) : "short");
            rc = -1;
            break;
        }
        rc = br_pack_add(w, buf, got, labels ? labels[added] : 0, NULL, 0);
        if (rc)
            br_cli_error("%s: %s", path, br_last_error(NULL));
        added++;
    }
    if (rc == 0 && labels && added != n_labels) {
        br_cli_error("the labels file %s has %" PRIu64 " labels for %" PRIu64 " files",
                     labels_path, n_labels, added);
        rc = -1;
    }
    for (int i = 0; i < n; i++)
        free(ents[i]);
    free(ents);
    free(labels);
    free(buf);
    return rc;
}

/* Every sample of ds, in id order, through a generator with no worker. */
static int pack_dataset(br_pack_writer *w, br_dataset *ds)
{
    br_options opt;
    br_gen *g = NULL;
    br_batch b;
    int rc;

    br_dataset_info info;
    if (br_dataset_info_get(ds, &info) == 0 && info.samples == 0)
        return 0;
    br_options_init(&opt);
    opt.batch_size = info.samples < 64 ? (uint32_t)info.samples : 64;
    opt.workers = 0;
    opt.epochs = 1;
    rc = br_open_dataset(&g, ds, NULL, 0, &opt);
    if (rc) {
        br_cli_error("%s: %s", br_err_name(rc), br_last_error(NULL));
        return -1;
    }
    while ((rc = br_next(g, &b)) == 0) {
        for (uint32_t i = 0; i < b.count && rc == 0; i++) {
            rc = br_pack_add(w, (const uint8_t *)b.data + b.offsets[i],
                             (size_t)(b.offsets[i + 1] - b.offsets[i]),
                             b.labels ? b.labels[i] : 0, NULL, 0);
            if (rc)
                br_cli_error("sample %" PRIu64 ": %s", b.ids[i], br_last_error(NULL));
        }
        if (rc)
            break;
    }
    if (rc && rc != BR_EOF && rc != -EINVAL)
        br_cli_error("%s: %s", br_err_name(rc), br_last_error(g));
    br_close(g);
    return rc == BR_EOF ? 0 : -1;
}

int br_cli_pack(int argc, char **argv)
{
    enum { OPT_DIR = 256, OPT_FILES, OPT_RECORDS, OPT_RECORD_SIZE, OPT_INDEXED, OPT_LABELS,
           OPT_SHARD, OPT_BLOCK, OPT_DTYPE, OPT_SHAPE, OPT_TOKENS, OPT_TOKEN_BYTES };
    static const struct option longopts[] = {
        {"dir", required_argument, NULL, OPT_DIR},
        {"files", required_argument, NULL, OPT_FILES},
        {"records", required_argument, NULL, OPT_RECORDS},
        {"record-size", required_argument, NULL, OPT_RECORD_SIZE},
        {"indexed", required_argument, NULL, OPT_INDEXED},
        {"labels", required_argument, NULL, OPT_LABELS},
        {"shard-size", required_argument, NULL, OPT_SHARD},
        {"block-size", required_argument, NULL, OPT_BLOCK},
        {"dtype", required_argument, NULL, OPT_DTYPE},
        {"shape", required_argument, NULL, OPT_SHAPE},
        {"tokens", required_argument, NULL, OPT_TOKENS},
        {"token-bytes", required_argument, NULL, OPT_TOKEN_BYTES},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *src = NULL, *index = NULL, *labels = NULL, *dtype = NULL, *out;
    int kind = 0, c, rc;
    uint64_t record_bytes = 0, shard = 0, block = 0, shape[4] = {0}, samples = 0, token_bytes = 0;
    uint32_t ndim = 0, shards = 0;
    br_pack_writer *w = NULL;
    br_dataset *ds = NULL;

    /* Options may follow OUTDIR (getopt permutes). */
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        bool ok = true;
        switch (c) {
        case 'h': pack_usage(stdout); return BR_CLI_OK;
        case OPT_DIR:
        case OPT_FILES:
        case OPT_RECORDS:
        case OPT_INDEXED:
        case OPT_TOKENS:
            if (kind) {
                br_cli_error("give one source (--dir, --files, --records, --indexed or --tokens)");
                return BR_CLI_USAGE;
            }
            kind = c, src = optarg;
            if (c == OPT_INDEXED) {
                if (optind >= argc) {
                    br_cli_error("--indexed takes DATA and INDEX");
                    return BR_CLI_USAGE;
                }
                index = argv[optind++];
            }
            break;
        case OPT_RECORD_SIZE:
            ok = br_cli_number("record-size", optarg, 1, SIZE_MAX, true, &record_bytes);
            break;
        case OPT_TOKEN_BYTES:
            ok = br_cli_number("token-bytes", optarg, 2, 4, false, &token_bytes);
            if (ok && token_bytes == 3) {
                br_cli_error("--token-bytes is 2 or 4");
                ok = false;
            }
            break;
        case OPT_LABELS: labels = optarg; break;
        case OPT_SHARD: ok = br_cli_number("shard-size", optarg, 1, UINT64_MAX, true, &shard); break;
        case OPT_BLOCK: ok = br_cli_number("block-size", optarg, 1, UINT32_MAX, true, &block); break;
        case OPT_DTYPE: dtype = optarg; break;
        case OPT_SHAPE: {
            char *p = optarg;
            ndim = 0;
            while (ok && *p) {
                char *end;
                if (ndim == 4) {
                    br_cli_error("--shape: at most 4 dimensions");
                    return BR_CLI_USAGE;
                }
                errno = 0;
                shape[ndim++] = strtoull(p, &end, 10);
                ok = end != p && !errno && (*end == ',' || *end == '\0');
                p = *end ? end + 1 : end;
            }
            if (!ok)
                br_cli_error("bad value '%s' for --shape: D1,D2,... (whole numbers)", optarg);
            break;
        }
        default: pack_usage(stderr); return BR_CLI_USAGE;
        }
        if (!ok)
            return BR_CLI_USAGE;
    }
    if (optind + 1 != argc || !kind) {
        br_cli_error(optind + 1 != argc ? "give one OUTDIR"
                                        : "give a source (--dir, --files, --records, --indexed "
                                          "or --tokens)");
        pack_usage(stderr);
        return BR_CLI_USAGE;
    }
    if ((kind == OPT_RECORDS) != (record_bytes != 0)) {
        br_cli_error("--record-size goes with --records, and only there");
        return BR_CLI_USAGE;
    }
    if (token_bytes && kind != OPT_TOKENS) {
        br_cli_error("--token-bytes goes with --tokens, and only there");
        return BR_CLI_USAGE;
    }
    if (kind == OPT_TOKENS && (labels || dtype || ndim)) {
        br_cli_error("--tokens takes no --labels, --dtype or --shape (the dtype is the tokens')");
        return BR_CLI_USAGE;
    }
    out = argv[optind];
    rc = kind == OPT_DIR || kind == OPT_TOKENS
             ? 0
             : br_cli_dataset_open(&ds, kind == OPT_RECORDS ? 'r' : kind == OPT_FILES ? 'f' : 'i',
                                   src, index, (size_t)record_bytes, labels, 0);
    if (rc) {
        br_cli_error("%s: %s", br_err_name(rc), br_last_error(NULL));
        return BR_CLI_FAILED;
    }
    if (kind == OPT_TOKENS)
        /* The width: given for raw files, 2 for llm.c shards (uint16). */
        rc = br_pack_open(&w, out, shard, token_bytes ? token_bytes : 2, (uint32_t)block,
                          BR_PACK_TOKENS);
    else
        rc = br_pack_open(&w, out, shard, record_bytes, (uint32_t)block,
                          labels ? BR_PACK_LABELS : 0);
    if (rc == 0 && (dtype || ndim))
        rc = br_pack_set_dtype(w, dtype, ndim, shape);
    if (rc) {
        br_cli_error("%s: %s", br_err_name(rc), br_last_error(NULL));
        br_pack_abort(w);
        br_dataset_close(ds);
        return BR_CLI_FAILED;
    }
    if (kind == OPT_TOKENS) {
        rc = br_pack_add_tokens(w, src, (size_t)token_bytes);
        if (rc)
            br_cli_error("%s: %s", br_err_name(rc), br_last_error(NULL));
    } else {
        rc = kind == OPT_DIR ? pack_dir(w, src, labels) : pack_dataset(w, ds);
    }
    br_dataset_close(ds);
    if (rc) {
        br_pack_abort(w); /* no half dataset that would verify */
        return BR_CLI_FAILED;
    }
    rc = br_pack_close(w, &samples, &shards);
    if (rc) {
        br_cli_error("%s: %s", br_err_name(rc), br_last_error(NULL));
        return BR_CLI_FAILED;
    }
    printf("%s: %" PRIu64 " %s in %u shard%s\n", out, samples,
           kind == OPT_TOKENS ? "tokens" : "samples", shards, shards == 1 ? "" : "s");
    return BR_CLI_OK;
}

int br_cli_verify(int argc, char **argv)
{
    int bad = 0;
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        FILE *to = argc < 2 ? stderr : stdout;
        fprintf(to, "usage: batchring verify PATH...\n"
                    "\n"
                    "Checks every header and every block checksum of each packed dataset\n"
                    "(a directory, a glob pattern of its shards, or a shard). Prints 'ok'\n"
                    "per dataset, or the first bad shard, block and byte range.\n"
                    "\n"
                    "Exit status: 0 when all are intact, 1 when one is not or cannot be\n"
                    "read, 2 on a bad command line.\n");
        return argc < 2 ? BR_CLI_USAGE : BR_CLI_OK;
    }
    for (int i = 1; i < argc; i++) {
        br_pack_fault f;
        int rc = br_pack_verify(argv[i], &f);
        if (rc == 0) {
            printf("%s: ok\n", argv[i]);
            continue;
        }
        bad = 1;
        if (rc == -EBADMSG && f.block >= 0)
            printf("%s: BAD shard %u block %" PRId64 " bytes %" PRIu64 "..%" PRIu64 "\n", argv[i],
                   f.shard, f.block, f.lo, f.hi);
        else
            printf("%s: BAD\n", argv[i]);
        br_cli_error("%s: %s", br_err_name(rc), br_last_error(NULL));
    }
    return bad ? BR_CLI_FAILED : BR_CLI_OK;
}
