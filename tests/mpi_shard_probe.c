/* SPDX-License-Identifier: MIT */
/*
 * Run under a real launcher (mpirun -np W): each process takes its shard
 * from the launcher's variables, reads one shuffled epoch of implicit ids
 * 0 .. N-1 through a generator and writes the ids it got to DIR/rank.R.
 * `check DIR W` then verifies that the ranks are in step, disjoint but for
 * the documented padding, and together cover every id.
 *
 *   mpi_shard_probe run DIR       (one per rank, from mpirun)
 *   mpi_shard_probe check DIR W
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <batchring.h>

#define N_IDS 1000u
#define BATCH 10u

static int loader(br_job *job, void *user)
{
    (void)user;
    job->size = 0;
    return 0;
}

static int run(const char *dir)
{
    br_options opt;
    br_gen *g;
    br_batch b;
    char path[4096];
    FILE *out;
    int rc;

    br_options_init(&opt);
    if ((rc = br_shard_from_env(&opt)) != 0) {
        fprintf(stderr, "mpi_shard_probe: %s\n", br_last_error(NULL));
        return 1;
    }
    opt.batch_size = BATCH;
    opt.workers = 1;
    opt.slot_bytes = 4096;
    opt.shuffle = true;
    opt.seed = 2024;
    opt.epochs = 1;
    if (br_open(&g, loader, NULL, NULL, NULL, N_IDS, &opt)) {
        fprintf(stderr, "mpi_shard_probe: %s\n", br_last_error(NULL));
        return 1;
    }
    snprintf(path, sizeof path, "%s/rank.%u", dir, opt.rank);
    out = fopen(path, "wb");
    if (!out) {
        perror(path);
        br_close(g);
        return 1;
    }
    fprintf(out, "%u %u\n", opt.rank, opt.world);
    while ((rc = br_next(g, &b)) == 0)
        for (uint32_t i = 0; i < b.count; i++)
            fprintf(out, "%llu\n", (unsigned long long)b.ids[i]);
    fclose(out);
    br_close(g);
    if (rc != BR_EOF) {
        fprintf(stderr, "mpi_shard_probe: %s\n", br_last_error(g));
        return 1;
    }
    return 0;
}

static int check(const char *dir, unsigned world)
{
    unsigned hits[N_IDS] = {0};
    unsigned long per_rank = (N_IDS + world - 1) / world, twice = 0;
    for (unsigned r = 0; r < world; r++) {
        char path[4096];
        unsigned rank, w;
        unsigned long long id;
        unsigned long count = 0;
        snprintf(path, sizeof path, "%s/rank.%u", dir, r);
        FILE *in = fopen(path, "r");
        if (!in || fscanf(in, "%u %u", &rank, &w) != 2 || rank != r || w != world) {
            fprintf(stderr, "check: %s missing or not rank %u of %u\n", path, r, world);
            return 1;
        }
        while (fscanf(in, "%llu", &id) == 1) {
            if (id >= N_IDS) {
                fprintf(stderr, "check: rank %u got id %llu >= %u\n", r, id, N_IDS);
                return 1;
            }
            hits[id]++;
            count++;
        }
        fclose(in);
        if (count != per_rank) {
            fprintf(stderr, "check: rank %u got %lu ids, expected %lu\n", r, count, per_rank);
            return 1;
        }
    }
    for (unsigned i = 0; i < N_IDS; i++) {
        if (hits[i] == 0 || hits[i] > 2) {
            fprintf(stderr, "check: id %u seen %u times\n", i, hits[i]);
            return 1;
        }
        twice += hits[i] == 2;
    }
    if (twice != per_rank * world - N_IDS) {
        fprintf(stderr, "check: %lu ids seen twice, expected the %lu padded\n", twice,
                per_rank * world - N_IDS);
        return 1;
    }
    printf("check: %u ranks x %lu ids: disjoint but %lu padded, every id covered\n", world,
           per_rank, twice);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "run"))
        return run(argv[2]);
    if (argc == 4 && !strcmp(argv[1], "check"))
        return check(argv[2], (unsigned)strtoul(argv[3], NULL, 10));
    fprintf(stderr, "usage: mpi_shard_probe run DIR | check DIR WORLD\n");
    return 2;
}
