/* SPDX-License-Identifier: MIT */
/*
 * batchring bench: runs one of the performance suite's cases (perf/case_*.c,
 * the same code batchring-perf runs under Google Benchmark) for a few
 * seconds and prints its figure beside its baseline from the same run,
 * their ratio and the target the project holds it to.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <batchring.h>

#include "../perf/cases.h"
#include "../perf/topology.h"
#include "cli.h"

#define MAX_LIST 16

/* A time budget in place of Google Benchmark: iterations until `budget_ns`
 * of wall time has passed, with a progress line on a terminal. */
struct budget_loop {
    struct bench_loop loop; /* first: the case sees only this */
    uint64_t budget_ns;
    uint64_t started_ns;
    uint64_t last_progress_ns;
    uint64_t units;
    bool progress;
    const char *what;
};


static bool budget_keep_running(struct bench_loop *loop)
{
    struct budget_loop *b = (struct budget_loop *)loop;
    const uint64_t t = br_util_now_ns();
    bool more;
    if (!b->started_ns)
        b->started_ns = t;
    more = t - b->started_ns < b->budget_ns;
    if (b->progress && (!more || t - b->last_progress_ns > 100000000u)) {
        b->last_progress_ns = t;
        if (more)
            fprintf(stderr, "\r  %-44s %4.1f s  %12llu units ", b->what,
                    (double)(t - b->started_ns) / 1e9, (unsigned long long)b->units);
        else
            fprintf(stderr, "\r  %-44s finishing...%21s", b->what, "");
    }
    return more;
}

static void budget_iteration_done(struct bench_loop *loop, uint64_t ns, uint64_t units)
{
    (void)ns;
    ((struct budget_loop *)loop)->units += units;
}

struct options {
    const struct bench_case *only; /* NULL: every case */
    uint64_t batch_bytes[MAX_LIST];
    unsigned n_batch_bytes;
    uint64_t workers[MAX_LIST];
    unsigned n_workers;
    uint64_t ring_bytes[MAX_LIST];
    unsigned n_ring_bytes;
    double seconds;
    bool json;
    const char *cpus; /* --cpus: BR_CPUS for every generator the cases open */
};

/* Where this run is: printed at the top and with every JSON row, so that
 * a figure never travels without the floor and the topology it was
 * measured on (issue 12). */
static struct {
    struct bench_topology topo;
    double floor_ns; /* the floor case, a short run; NaN if it failed */
} machine;

static void usage(FILE *to)
{
    fprintf(to, "usage: batchring bench [options]\n\n"
                "Runs a case of the performance suite for about --seconds per measurement and\n"
                "prints its figure beside a baseline measured in the same run, their ratio,\n"
                "and the target batchring is held to. Lists run every combination.\n\n"
                "  --case NAME         a case below, or 'all' (default: efficiency)\n"
                "  --batch-bytes LIST  bytes per batch, e.g. 4K,64K,1M,16M\n"
                "  --workers LIST      worker processes, e.g. 1,2,8\n"
                "  --ring-bytes LIST   startup only: ring size, e.g. 16M,64M,256M\n"
                "  --seconds S         time budget of each measurement (default 1); the\n"
                "                      baseline takes about as long again\n"
                "  --cpus LIST         pin the workers of every case: a CPU list (0-3,8),\n"
                "                      round-robin, or 'auto' (BR_CPUS, batchring.h)\n"
                "  --json              print a JSON array instead of the table\n"
                "  -h, --help          this text\n\n"
                "cases (defaults in brackets):\n");
    for (size_t i = 0; i < bench_n_cases; i++) {
        const struct bench_case *c = &bench_cases[i];
        char bytes[32], ring[32];
        fprintf(to, "  %-11s %s\n", c->name, c->summary);
        if (c->uses) {
            fprintf(to, "  %-11s [", "");
            if (c->uses & BENCH_USES_BATCH_BYTES)
                fprintf(to, "batch %s", br_util_bytes(bytes, c->defaults.batch_bytes));
            if (c->uses & BENCH_USES_WORKERS)
                fprintf(to, ", %u worker%s", c->defaults.workers,
                        c->defaults.workers == 1 ? "" : "s");
            if (c->uses & BENCH_USES_RING_BYTES)
                fprintf(to, ", ring %s", br_util_bytes(ring, c->defaults.ring_bytes));
            fprintf(to, "]\n");
        }
    }
    fprintf(to, "\nexample: batchring bench --case efficiency --batch-bytes 1M --workers 2\n");
}

/* Parses a comma list of sizes (bytes) or counts into out. */
static bool parse_list(const char *text, bool sizes, uint64_t *out, unsigned *n)
{
    char buf[256], *save = NULL;
    if (strlen(text) >= sizeof buf)
        return false;
    strcpy(buf, text);
    *n = 0;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        uint64_t v;
        char *end = NULL;
        if (*n == MAX_LIST)
            return false;
        if (sizes) {
            if (!bench_parse_bytes(tok, &v))
                return false;
        } else {
            errno = 0;
            v = strtoull(tok, &end, 10);
            if (errno || end == tok || *end || tok[0] == '-')
                return false;
        }
        out[(*n)++] = v;
    }
    return *n > 0;
}

static int parse_options(int argc, char **argv, struct options *o)
{
    static const struct option longopts[] = {
        {"case", required_argument, NULL, 'c'},    {"batch-bytes", required_argument, NULL, 'b'},
        {"workers", required_argument, NULL, 'w'}, {"ring-bytes", required_argument, NULL, 'r'},
        {"seconds", required_argument, NULL, 's'}, {"json", no_argument, NULL, 'j'},
        {"cpus", required_argument, NULL, 'C'},    {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;

    memset(o, 0, sizeof *o);
    o->only = bench_case_find("efficiency");
    o->seconds = 1.0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        char *end = NULL;
        switch (c) {
        case 'h':
            usage(stdout);
            return 0;
        case 'c':
            o->only = strcmp(optarg, "all") ? bench_case_find(optarg) : NULL;
            if (!o->only && strcmp(optarg, "all")) {
                br_cli_error("no case '%s' (see --help)", optarg);
                return 2;
            }
            break;
        case 'b':
            if (!parse_list(optarg, true, o->batch_bytes, &o->n_batch_bytes))
                goto bad;
            break;
        case 'w':
            if (!parse_list(optarg, false, o->workers, &o->n_workers))
                goto bad;
            break;
        case 'r':
            if (!parse_list(optarg, true, o->ring_bytes, &o->n_ring_bytes))
                goto bad;
            break;
        case 's':
            errno = 0;
            o->seconds = strtod(optarg, &end);
            if (errno || !end || *end || !(o->seconds > 0 && o->seconds <= 3600))
                goto bad;
            break;
        case 'j':
            o->json = true;
            break;
        case 'C':
            o->cpus = optarg;
            break;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        br_cli_error("unexpected argument '%s'", argv[optind]);
        return 2;
    }
    for (unsigned i = 0; i < o->n_batch_bytes; i++)
        if (o->batch_bytes[i] < 8 || o->batch_bytes[i] > (UINT64_C(1) << 30)) {
            br_cli_error("--batch-bytes must be 8 B to 1 GiB");
            return 2;
        }
    for (unsigned i = 0; i < o->n_workers; i++)
        if (o->workers[i] < 1 || o->workers[i] > BR_MAX_WORKERS) {
            br_cli_error("--workers must be 1 to %u", BR_MAX_WORKERS);
            return 2;
        }
    return -1;
bad:
    br_cli_error("bad value '%s' for --%s (see --help)", optarg,
                 c == 'b'   ? "batch-bytes"
                 : c == 'w' ? "workers"
                 : c == 'r' ? "ring-bytes"
                            : "seconds");
    return 2;
}

/* Numbers as people read them: 3 significant digits, no exponent for the
 * magnitudes we print. */
static const char *num(char buf[32], double v)
{
    if (isnan(v))
        snprintf(buf, 32, "-");
    else if (fabs(v) >= 1000)
        snprintf(buf, 32, "%.0f", v);
    else if (fabs(v) >= 100)
        snprintf(buf, 32, "%.1f", v);
    else if (fabs(v) >= 1)
        snprintf(buf, 32, "%.2f", v);
    else
        snprintf(buf, 32, "%.3f", v);
    return buf;
}

/* A string field: names and units are ours, but an error message may
 * quote a path, which may hold any byte. */
static void json_field(const char *key, const char *value)
{
    printf(", \"%s\": ", key);
    br_cli_json_string(stdout, value);
}

/* A double field, every digit kept (null when not a number). */
static void json_double(const char *key, double v)
{
    printf(", \"%s\": ", key);
    br_cli_json_double(stdout, v);
}

static void print_header(void)
{
    printf("%-10s %12s %7s %9s  %-12s %-42s %7s  %s\n", "case", "size", "workers", "result", "",
           "baseline (same run)", "ratio", "target");
}

static void print_row(const struct bench_case *c, const struct bench_params *p,
                      const struct bench_result *r, int rc)
{
    char bytes[32], workers[16], value[32], base[32], ratio[32], target[48] = "", baseline[96];
    double limit;
    bool at_least;
    int verdict = rc ? -1 : bench_verdict(c, p, r->ratio, &limit, &at_least);

    if (c->uses & BENCH_USES_RING_BYTES) {
        char ring[32];
        snprintf(bytes, sizeof bytes, "ring %s", br_util_bytes(ring, p->ring_bytes));
    } else if (c->uses & BENCH_USES_BATCH_BYTES) {
        br_util_bytes(bytes, p->batch_bytes);
    } else {
        snprintf(bytes, sizeof bytes, "-");
    }
    if (c->uses & BENCH_USES_WORKERS)
        snprintf(workers, sizeof workers, "%u", p->workers);
    else
        snprintf(workers, sizeof workers, "-");
    if (rc) {
        printf("%-10s %12s %7s  failed: %s\n", c->name, bytes, workers, r->error);
        return;
    }
    if (r->skipped[0]) {
        printf("%-10s %12s %7s  skipped: %s\n", c->name, bytes, workers, r->skipped);
        fflush(stdout);
        return;
    }
    if (c->target)
        snprintf(baseline, sizeof baseline, "%s %s %s", num(base, r->baseline), c->baseline_unit,
                 c->baseline_name);
    else
        snprintf(baseline, sizeof baseline, "(%s)", c->baseline_name);
    if (verdict >= 0)
        snprintf(target, sizeof target, "%s %s  %s", at_least ? ">=" : "<=", num(base, limit),
                 verdict ? "pass" : "MISS");
    printf("%-10s %12s %7s %9s  %-12s %-42.42s %7s  %s\n", c->name, bytes, workers,
           num(value, r->value), c->value_unit, baseline, num(ratio, r->ratio), target);
    for (unsigned f = 0; f < r->n_figures; f++)
        printf("%-10s %20s %s = %s\n", "", "", r->figures[f].name, num(value, r->figures[f].value));
    if (r->note[0])
        printf("%-10s %20s note: %s\n", "", "", r->note);
    {
        char where[512];
        if (bench_placement_describe(where, sizeof where)[0])
            printf("%-10s %20s ran on: %s\n", "", "", where);
    }
    fflush(stdout);
}

/* The machine and where this row's processes ran, as fields of the row. */
static void print_json_machine(void)
{
    char ran[128], may[64];
    json_double("floor_ns", machine.floor_ns);
    json_field("online_cpus", machine.topo.online);
    json_field("allowed_cpus", machine.topo.allowed);
    json_field("caches", machine.topo.caches);
    json_field("llc_groups", machine.topo.llc);
    printf(", \"llc_domains\": %u", machine.topo.llc_domains);
    json_field("br_cpus", machine.topo.br_cpus);
    printf(", \"placement\": {\"trainer\": ");
    br_cli_json_string(stdout, bench_placement_trainer(ran, sizeof ran));
    printf(", \"workers\": [");
    for (unsigned i = 0; bench_placement_worker(i, ran, sizeof ran, may, sizeof may); i++) {
        printf("%s{\"ran_on\": ", i ? ", " : "");
        br_cli_json_string(stdout, ran);
        printf(", \"allowed\": ");
        br_cli_json_string(stdout, may);
        printf("}");
    }
    printf("]}");
}

static void print_json(const struct bench_case *c, const struct bench_params *p,
                       const struct bench_result *r, int rc, bool first)
{
    double limit;
    bool at_least;
    int verdict = rc ? -1 : bench_verdict(c, p, r->ratio, &limit, &at_least);

    printf("%s\n  {\"case\": ", first ? "" : ",");
    br_cli_json_string(stdout, c->name);
    if (c->uses & BENCH_USES_BATCH_BYTES)
        printf(", \"batch_bytes\": %llu", (unsigned long long)p->batch_bytes);
    if (c->uses & BENCH_USES_WORKERS)
        printf(", \"workers\": %u", p->workers);
    if (c->uses & BENCH_USES_RING_BYTES)
        printf(", \"ring_bytes\": %llu", (unsigned long long)p->ring_bytes);
    if (rc) {
        json_field("error", r->error);
        printf("}");
        return;
    }
    if (r->skipped[0]) {
        /* No figures: a skipped case measured nothing. */
        json_field("skipped", r->skipped);
        print_json_machine();
        printf("}");
        return;
    }
    json_double("value", r->value);
    json_field("value_unit", c->value_unit);
    json_double("baseline", r->baseline);
    json_field("baseline_unit", c->baseline_unit);
    json_field("baseline_name", c->baseline_name);
    json_double("ratio", r->ratio);
    json_field("ratio_name", c->ratio_name);
    if (verdict >= 0) {
        json_double("target", limit);
        json_field("target_op", at_least ? ">=" : "<=");
        printf(", \"pass\": %s", verdict ? "true" : "false");
    }
    if (r->note[0])
        json_field("note", r->note);
    print_json_machine();
    printf(", \"units\": %llu", (unsigned long long)r->units);
    json_double("seconds", r->seconds);
    printf(", \"figures\": {");
    for (unsigned f = 0; f < r->n_figures; f++) {
        printf("%s", f ? ", " : "");
        br_cli_json_string(stdout, r->figures[f].name);
        printf(": ");
        br_cli_json_double(stdout, r->figures[f].value);
    }
    printf("}}");
}

/* Runs c once per combination of the lists that apply to it. Returns the
 * number of runs that failed. */
static int run_case(const struct bench_case *c, const struct options *o, bool *first)
{
    const uint64_t *bytes = o->n_batch_bytes ? o->batch_bytes : &c->defaults.batch_bytes;
    const uint64_t *ring = o->n_ring_bytes ? o->ring_bytes : &c->defaults.ring_bytes;
    const uint64_t default_workers = c->defaults.workers;
    const uint64_t *workers = o->n_workers ? o->workers : &default_workers;
    const unsigned nb =
        (c->uses & BENCH_USES_BATCH_BYTES) && o->n_batch_bytes ? o->n_batch_bytes : 1;
    const unsigned nw = (c->uses & BENCH_USES_WORKERS) && o->n_workers ? o->n_workers : 1;
    const unsigned nr = (c->uses & BENCH_USES_RING_BYTES) && o->n_ring_bytes ? o->n_ring_bytes : 1;
    const bool tty = isatty(STDERR_FILENO);
    int failures = 0;

    for (unsigned ir = 0; ir < nr; ir++)
        for (unsigned iw = 0; iw < nw; iw++)
            for (unsigned ib = 0; ib < nb; ib++) {
                struct bench_params p = c->defaults;
                struct bench_result r;
                char what[96], size[32];
                int rc;

                if (c->uses & BENCH_USES_BATCH_BYTES)
                    p.batch_bytes = bytes[ib];
                if (c->uses & BENCH_USES_WORKERS)
                    p.workers = (uint32_t)workers[iw];
                if (c->uses & BENCH_USES_RING_BYTES)
                    p.ring_bytes = ring[ir];
                snprintf(what, sizeof what, "%s, %s, %u worker%s", c->name,
                         br_util_bytes(size, (c->uses & BENCH_USES_RING_BYTES)
                                                      ? p.ring_bytes
                                                      : p.batch_bytes),
                         p.workers, p.workers == 1 ? "" : "s");
                struct budget_loop loop = {
                    {budget_keep_running, budget_iteration_done},
                    (uint64_t)(o->seconds * 1e9),
                    0,
                    0,
                    0,
                    tty,
                    what,
                };
                memset(&r, 0, sizeof r);
                bench_placement_reset();
                rc = c->run(&loop.loop, &p, &r);
                if (tty)
                    fprintf(stderr, "\r%80s\r", "");
                if (rc)
                    failures++;
                if (o->json)
                    print_json(c, &p, &r, rc, *first);
                else
                    print_row(c, &p, &r, rc);
                *first = false;
            }
    return failures;
}

/* The floor (a short run of the floor case) and the topology. */
static void measure_machine(void)
{
    const struct bench_case *floor_case = bench_case_find("floor");
    struct budget_loop loop = {
        {budget_keep_running, budget_iteration_done}, 300000000u, 0, 0, 0, false, "floor",
    };
    struct bench_result r;
    bench_topology_read(&machine.topo);
    memset(&r, 0, sizeof r);
    machine.floor_ns = NAN;
    if (floor_case && floor_case->run(&loop.loop, &floor_case->defaults, &r) == 0)
        machine.floor_ns = r.value;
}

static void print_machine(void)
{
    char floor_text[32];
    printf("machine: floor %s ns/handoff (a cache line between two processes, 0.3 s); CPUs "
           "online %s, this process may use %s; caches: %s (%u last-level domain%s); BR_CPUS "
           "%s\n\n",
           num(floor_text, machine.floor_ns), machine.topo.online, machine.topo.allowed,
           machine.topo.caches, machine.topo.llc_domains,
           machine.topo.llc_domains == 1 ? "" : "s",
           machine.topo.br_cpus[0] ? machine.topo.br_cpus : "unset (workers not pinned)");
}

int br_cli_bench(int argc, char **argv)
{
    struct options o;
    bool first = true;
    int failures = 0, rc = parse_options(argc, argv, &o);

    if (rc >= 0)
        return rc;
    /* Through the environment, so that every generator of every case
     * (br_options_init leaves opt.cpus NULL) pins its workers alike. */
    if (o.cpus && setenv("BR_CPUS", o.cpus, 1)) {
        br_cli_error("cannot set BR_CPUS: %s", strerror(errno));
        return 1;
    }
    measure_machine();
    if (o.json) {
        printf("[");
    } else {
        print_machine();
        print_header();
    }
    for (size_t i = 0; i < bench_n_cases; i++)
        if (!o.only || o.only == &bench_cases[i])
            failures += run_case(&bench_cases[i], &o, &first);
    if (o.json)
        printf("\n]\n");
    return failures ? 1 : 0;
}
