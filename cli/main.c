/* SPDX-License-Identifier: MIT */
/* The batchring command: dispatches to one subcommand. */
#include <stdio.h>
#include <string.h>

#include <batchring.h>

#include "cli.h"

struct subcommand {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
};

static const struct subcommand subcommands[] = {
    {"demo", br_cli_demo,
     "run a multi-process generator on a synthetic dataset, verifying every byte"},
    {"mkdata", br_cli_mkdata,
     "write a deterministic synthetic dataset (records, files, indexed, or token shards)"},
    {"bench", br_cli_bench,
     "run a performance case beside its baseline and print the ratio (see --help)"},
    {"serve", br_cli_serve, "serve a dataset as a named ring for a consumer in another process"},
    {"consume", br_cli_consume,
     "attach to a named ring and take its batches (throughput; --verify checks them)"},
    {"stat", br_cli_stat, "show a named ring from outside: producer, consumer, slots, workers"},
    {"ls", br_cli_ls, "list this user's named rings"},
    {"gc", br_cli_gc, "remove named rings whose producer is dead"},
    {"pack", br_cli_pack,
     "convert files, records or indexed data into a checked, self-describing dataset"},
    {"verify", br_cli_verify, "check a packed dataset's checksums; name the first bad block"},
    {"soak", br_cli_soak,
     "serve a verified dataset, kill workers (and consumers) at random, count lost/repeated"},
};

static void usage(FILE *to)
{
    fprintf(to, "usage: batchring <command> [options]   (batchring <command> --help)\n"
                "       batchring -V | --version\n"
                "       batchring -h | --help\n\n"
                "commands:\n");
    for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++)
        fprintf(to, "  %-8s %s\n", subcommands[i].name, subcommands[i].summary);
    fprintf(to, "\nbatchring %s\n", br_version_string());
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    /* The version of the library this command runs with, which is the
     * one that matters when the two were installed apart. */
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V")) {
        printf("batchring %s\n", br_version_string());
        return 0;
    }
    for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++)
        if (!strcmp(argv[1], subcommands[i].name)) {
            /* getopt_long prefixes its own complaints ("unrecognized
             * option") with argv[0]: make that "batchring ls" too. */
            static char prog[64];
            snprintf(prog, sizeof prog, "batchring %s", subcommands[i].name);
            br_cli_cmd = subcommands[i].name;
            argv[1] = prog;
            return subcommands[i].run(argc - 1, argv + 1);
        }
    br_cli_error("unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
