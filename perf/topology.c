/* SPDX-License-Identifier: MIT */
/*
 * Where a benchmark ran: the cache topology from sysfs, the process's
 * affinity, and the CPUs the trainer and the workers were seen on
 * (topology.h). Reads what the kernel publishes and nothing of the
 * library's but its public API (the workers' pids from
 * br_worker_stats_get); the library's own reading of the same files, for
 * BR_CPUS=auto, is in producer/cpus.c.
 */
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "topology.h"

#define SYSFS_CPU "/sys/devices/system/cpu"

/* Reads a CPU list ("0-3,8") into set; false when the text is not one. */
static bool list_parse(const char *text, cpu_set_t *set)
{
    const char *p = text;
    CPU_ZERO(set);
    while (*p && *p != '\n') {
        char *end;
        long lo = strtol(p, &end, 10), hi = lo;
        if (end == p || lo < 0)
            return false;
        p = end;
        if (*p == '-') {
            hi = strtol(p + 1, &end, 10);
            if (end == p + 1 || hi < lo)
                return false;
            p = end;
        }
        for (long c = lo; c <= hi && c < CPU_SETSIZE; c++)
            CPU_SET((size_t)c, set);
        if (*p == ',')
            p++;
        else if (*p && *p != '\n')
            return false;
    }
    return true;
}

static const char *list_format(char *buf, size_t cap, const cpu_set_t *set)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int c = 0; c < CPU_SETSIZE; c++) {
        int last = c, w;
        if (!CPU_ISSET((size_t)c, set))
            continue;
        while (last + 1 < CPU_SETSIZE && CPU_ISSET((size_t)(last + 1), set))
            last++;
        w = last > c ? snprintf(buf + used, cap - used, "%s%d-%d", used ? "," : "", c, last)
                     : snprintf(buf + used, cap - used, "%s%d", used ? "," : "", c);
        if (w < 0 || (size_t)w >= cap - used) {
            buf[used] = '\0';
            break;
        }
        used += (size_t)w;
        c = last;
    }
    return buf;
}

static bool read_line(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "re");
    bool ok = f && fgets(buf, (int)cap, f);
    if (f)
        fclose(f);
    if (ok)
        buf[strcspn(buf, "\n")] = '\0';
    else if (cap)
        buf[0] = '\0';
    return ok;
}

/* Appends to buf (cap bytes), keeping it NUL-terminated. */
static void append(char *buf, size_t cap, const char *text)
{
    size_t used = strlen(buf);
    if (used + 1 < cap)
        snprintf(buf + used, cap - used, "%s", text);
}

/* The groups of one cache level and type: up to this many distinct lists. */
#define MAX_GROUPS 64
#define MAX_KINDS 8

struct cache_kind {
    char name[8]; /* "L1d", "L2" */
    int level;
    unsigned n;
    cpu_set_t groups[MAX_GROUPS];
};

void bench_topology_read(struct bench_topology *t)
{
    struct cache_kind *kinds = calloc(MAX_KINDS, sizeof *kinds);
    unsigned nkinds = 0, llc_kind = MAX_KINDS;
    cpu_set_t online, mine;
    char line[512], path[256];
    const char *env = getenv("BR_CPUS");

    memset(t, 0, sizeof *t);
    snprintf(t->br_cpus, sizeof t->br_cpus, "%s", env ? env : "");
    if (!read_line(SYSFS_CPU "/online", line, sizeof line) || !list_parse(line, &online))
        CPU_ZERO(&online);
    list_format(t->online, sizeof t->online, &online);
    if (sched_getaffinity(0, sizeof mine, &mine) == 0)
        list_format(t->allowed, sizeof t->allowed, &mine);
    if (!kinds) {
        snprintf(t->caches, sizeof t->caches, "unknown (out of memory)");
        return;
    }
    for (int c = 0; c < CPU_SETSIZE; c++) {
        if (!CPU_ISSET((size_t)c, &online))
            continue;
        for (int i = 0; i < 16; i++) {
            char type[32], level[16], name[8];
            cpu_set_t shared;
            unsigned k, g;
            snprintf(path, sizeof path, SYSFS_CPU "/cpu%d/cache/index%d/type", c, i);
            if (!read_line(path, type, sizeof type))
                break;
            snprintf(path, sizeof path, SYSFS_CPU "/cpu%d/cache/index%d/level", c, i);
            if (!read_line(path, level, sizeof level))
                continue;
            snprintf(path, sizeof path, SYSFS_CPU "/cpu%d/cache/index%d/shared_cpu_list", c, i);
            if (!read_line(path, line, sizeof line) || !list_parse(line, &shared))
                continue;
            snprintf(name, sizeof name, "L%d%s", atoi(level),
                     !strcmp(type, "Data")          ? "d"
                     : !strcmp(type, "Instruction") ? "i"
                                                    : "");
            for (k = 0; k < nkinds && strcmp(kinds[k].name, name); k++)
                ;
            if (k == nkinds) {
                if (nkinds == MAX_KINDS)
                    continue;
                snprintf(kinds[k].name, sizeof kinds[k].name, "%s", name);
                kinds[k].level = atoi(level);
                nkinds++;
            }
            for (g = 0; g < kinds[k].n && !CPU_EQUAL(&kinds[k].groups[g], &shared); g++)
                ;
            if (g == kinds[k].n && g < MAX_GROUPS)
                kinds[k].groups[kinds[k].n++] = shared;
        }
    }
    /* The last level: the highest level holding data (not instructions). */
    for (unsigned k = 0; k < nkinds; k++)
        if (strcmp(kinds[k].name + strlen(kinds[k].name) - 1, "i") &&
            (llc_kind == MAX_KINDS || kinds[k].level > kinds[llc_kind].level))
            llc_kind = k;
    for (unsigned k = 0; k < nkinds; k++) {
        append(t->caches, sizeof t->caches, k ? ", " : "");
        append(t->caches, sizeof t->caches, kinds[k].name);
        append(t->caches, sizeof t->caches, " ");
        for (unsigned g = 0; g < kinds[k].n; g++) {
            char list[128];
            list_format(list, sizeof list, &kinds[k].groups[g]);
            append(t->caches, sizeof t->caches, g ? "|" : "");
            append(t->caches, sizeof t->caches, list);
            if (k == llc_kind) {
                append(t->llc, sizeof t->llc, g ? "|" : "");
                append(t->llc, sizeof t->llc, list);
            }
        }
    }
    t->llc_domains = llc_kind < MAX_KINDS ? kinds[llc_kind].n : 0;
    if (!nkinds)
        snprintf(t->caches, sizeof t->caches, "unknown (no %s/cpu*/cache)", SYSFS_CPU);
    free(kinds);
}

/* ---- placement during a run ---- */

static struct {
    bool sampled;
    cpu_set_t trainer;
    unsigned nworkers;
    cpu_set_t ran[BENCH_MAX_PLACED_WORKERS];
    char allowed[BENCH_MAX_PLACED_WORKERS][64];
} placed;

void bench_placement_reset(void)
{
    memset(&placed, 0, sizeof placed);
}

/* Field 39 of /proc/PID/stat, the CPU the process last ran on; -1 if gone. */
static int last_cpu(int pid)
{
    char path[64], buf[1024], *p;
    int field = 2; /* the space before field 3 makes it 3 */
    size_t n;
    FILE *f;
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    if (!(f = fopen(path, "re")))
        return -1;
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    if (!(p = strrchr(buf, ')'))) /* the command name may hold spaces */
        return -1;
    for (p++; *p; p++)
        if (*p == ' ' && ++field == 39)
            return atoi(p + 1) >= 0 && atoi(p + 1) < CPU_SETSIZE ? atoi(p + 1) : -1;
    return -1;
}

static void allowed_of(int pid, char *out, size_t cap)
{
    char path[64], line[256];
    FILE *f;
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    if (!(f = fopen(path, "re")))
        return;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "Cpus_allowed_list:", 18)) {
            char *v = line + 18;
            v += strspn(v, " \t");
            v[strcspn(v, "\n")] = '\0';
            snprintf(out, cap, "%s", v);
            break;
        }
    fclose(f);
}

void bench_placement_sample(br_gen *g)
{
    br_stats st;
    int cpu = sched_getcpu();
    if (cpu >= 0 && cpu < CPU_SETSIZE)
        CPU_SET((size_t)cpu, &placed.trainer);
    placed.sampled = true;
    if (!g || br_stats_get(g, &st))
        return;
    for (uint32_t i = 0; i < st.workers && i < BENCH_MAX_PLACED_WORKERS; i++) {
        br_worker_stats ws;
        int c;
        if (br_worker_stats_get(g, i, &ws) || ws.pid <= 0)
            continue;
        if ((c = last_cpu(ws.pid)) >= 0)
            CPU_SET((size_t)c, &placed.ran[i]);
        allowed_of(ws.pid, placed.allowed[i], sizeof placed.allowed[i]);
        if (i + 1 > placed.nworkers)
            placed.nworkers = i + 1;
    }
}

const char *bench_placement_trainer(char *buf, size_t cap)
{
    return list_format(buf, cap, &placed.trainer);
}

bool bench_placement_worker(unsigned i, char *ran, size_t ran_cap, char *allowed,
                            size_t allowed_cap)
{
    if (i >= placed.nworkers)
        return false;
    list_format(ran, ran_cap, &placed.ran[i]);
    snprintf(allowed, allowed_cap, "%s", placed.allowed[i]);
    return true;
}

const char *bench_placement_describe(char *buf, size_t cap)
{
    char list[128], may[64];
    buf[0] = '\0';
    if (!placed.sampled)
        return buf;
    append(buf, cap, "trainer ");
    append(buf, cap, bench_placement_trainer(list, sizeof list));
    for (unsigned i = 0; bench_placement_worker(i, list, sizeof list, may, sizeof may); i++) {
        char one[256];
        snprintf(one, sizeof one, "; w%u %s (may %s)", i, list[0] ? list : "?", may);
        append(buf, cap, one);
    }
    return buf;
}
