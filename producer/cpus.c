/* SPDX-License-Identifier: MIT */
/*
 * Worker placement (br_options.cpus, BR_CPUS): the CPU list syntax, the
 * online CPUs and the last-level cache domains as sysfs describes them,
 * and the plan the supervisor applies to each worker it forks.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "producer/cpus.h"
#include "ring/error.h"

/* A list longer than this (counting repeats) is refused: no machine needs
 * it, and a plan is one cpu_set_t per entry. */
#define BR_CPU_LIST_MAX CPU_SETSIZE

/* One CPU number: decimal digits only. Returns -EINVAL when it is not one;
 * *too_big when it is not below CPU_SETSIZE. */
static int parse_cpu(const char *s, size_t len, long *cpu, bool *too_big)
{
    long v = 0;
    *too_big = false;
    if (len == 0)
        return -EINVAL;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -EINVAL;
        if (v < 1000000)
            v = v * 10 + (s[i] - '0');
    }
    *cpu = v;
    if (v >= CPU_SETSIZE)
        *too_big = true;
    return 0;
}

/*
 * Parses a CPU list into out[0..*n) in its order (ranges ascending).
 * The message names `source`, the text and its bad part.
 */
static int parse_list(const char *text, const char *source, int *out, uint32_t cap, uint32_t *n,
                      char *msg)
{
    const char *p = text;
    *n = 0;
    for (;;) {
        const char *end = strchr(p, ','), *dash;
        size_t len = end ? (size_t)(end - p) : strlen(p);
        long lo, hi;
        bool big_lo = false, big_hi = false;

        if (len == 0)
            return br__fail(msg, -EINVAL,
                            "%s '%.64s': an empty entry (a list is like "
                            "'0-3,8')",
                            source, text);
        dash = memchr(p, '-', len);
        if (dash) {
            size_t l1 = (size_t)(dash - p), l2 = len - l1 - 1;
            if (parse_cpu(p, l1, &lo, &big_lo))
                return br__fail(msg, -EINVAL, "%s '%.64s': '%.*s' is not a CPU number", source,
                                text, (int)(l1 > 32 ? 32 : l1), p);
            if (parse_cpu(dash + 1, l2, &hi, &big_hi))
                return br__fail(msg, -EINVAL, "%s '%.64s': '%.*s' is not a CPU number", source,
                                text, (int)(l2 > 32 ? 32 : l2), dash + 1);
        } else {
            if (parse_cpu(p, len, &lo, &big_lo))
                return br__fail(msg, -EINVAL, "%s '%.64s': '%.*s' is not a CPU number", source,
                                text, (int)(len > 32 ? 32 : len), p);
            hi = lo;
        }
        if (big_lo || big_hi)
            return br__fail(msg, -EINVAL,
                            "%s '%.64s': CPU %ld is beyond the largest CPU "
                            "number batchring can pin (%d)",
                            source, text, big_lo ? lo : hi, CPU_SETSIZE - 1);
        if (hi < lo)
            return br__fail(msg, -EINVAL, "%s '%.64s': the range %ld-%ld runs backwards", source,
                            text, lo, hi);
        for (long c = lo; c <= hi; c++) {
            if (*n == cap)
                return br__fail(msg, -EINVAL, "%s '%.64s': more than %u CPUs in the list", source,
                                text, cap);
            out[(*n)++] = (int)c;
        }
        if (!end)
            return 0;
        p = end + 1;
    }
}

int br__cpu_list_read(const char *root, const char *rel, cpu_set_t *set)
{
    char path[512], line[4096];
    FILE *f;

    CPU_ZERO(set);
    snprintf(path, sizeof path, "%s/%s", root, rel);
    f = fopen(path, "re");
    if (!f)
        return -errno;
    if (!fgets(line, sizeof line, f)) {
        fclose(f);
        return -EINVAL;
    }
    fclose(f);
    line[strcspn(line, "\n")] = '\0';
    /* A range at a time, so that a long list needs no long array. An
     * empty file is an empty list (a cache no online CPU shares). */
    for (char *save = NULL, *tok = strtok_r(line, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        char *dash = strchr(tok, '-');
        size_t l1 = dash ? (size_t)(dash - tok) : strlen(tok);
        long lo, hi;
        bool big1, big2 = false;
        if (parse_cpu(tok, l1, &lo, &big1))
            return -EINVAL;
        hi = lo;
        if (dash && parse_cpu(dash + 1, strlen(dash + 1), &hi, &big2))
            return -EINVAL;
        if (big1 || big2 || hi < lo)
            return -EINVAL;
        for (long c = lo; c <= hi; c++)
            CPU_SET((size_t)c, set);
    }
    return 0;
}

/* The first line of root/cpuN/cache/indexI/NAME into buf. Returns false
 * when the file is missing or empty. */
static bool cache_attr(const char *root, int cpu, int index, const char *name, char *buf,
                       size_t cap)
{
    char path[512];
    FILE *f;
    bool ok;
    snprintf(path, sizeof path, "%s/cpu%d/cache/index%d/%s", root, cpu, index, name);
    if (!(f = fopen(path, "re")))
        return false;
    ok = fgets(buf, (int)cap, f) != NULL;
    fclose(f);
    return ok;
}

/* Cache index `index` of `cpu`, if it holds data (an instruction cache
 * holds no batch): its level. Returns -ENOENT past the last index,
 * 0 for an instruction cache or an unreadable level. */
static int data_cache_level(const char *root, int cpu, int index)
{
    char type[32], level[16];
    if (!cache_attr(root, cpu, index, "type", type, sizeof type))
        return -ENOENT;
    if (strncmp(type, "Data", 4) && strncmp(type, "Unified", 7))
        return 0;
    if (!cache_attr(root, cpu, index, "level", level, sizeof level))
        return 0;
    return atoi(level);
}

int br__cpu_llc_domain(const char *root, int cpu, cpu_set_t *set)
{
    int best_level = -1;
    CPU_ZERO(set);
    for (int i = 0; i < 16; i++) {
        char rel[128];
        int lv = data_cache_level(root, cpu, i);
        if (lv < 0)
            break;
        if (lv <= best_level)
            continue;
        snprintf(rel, sizeof rel, "cpu%d/cache/index%d/shared_cpu_list", cpu, i);
        if (br__cpu_list_read(root, rel, set) == 0)
            best_level = lv;
    }
    return best_level < 0 ? -ENOENT : 0;
}

uint64_t br__cpu_inner_cache_bytes(const char *root, int cpu)
{
    int top = 0, below = 0;
    uint64_t bytes = 0;
    for (int i = 0; i < 16; i++) {
        int lv = data_cache_level(root, cpu, i);
        if (lv < 0)
            break;
        top = lv > top ? lv : top;
    }
    for (int i = 0; i < 16; i++) {
        char size[32], *end;
        unsigned long long v;
        int lv = data_cache_level(root, cpu, i);
        if (lv < 0)
            break;
        if (lv == 0 || lv >= top || lv < below || !cache_attr(root, cpu, i, "size", size, sizeof size))
            continue;
        v = strtoull(size, &end, 10);
        v <<= *end == 'K' ? 10 : *end == 'M' ? 20 : *end == 'G' ? 30 : 0;
        below = lv;
        bytes = v;
    }
    return bytes;
}

const char *br__cpu_set_format(char *buf, size_t cap, const cpu_set_t *set)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int c = 0; c < CPU_SETSIZE; c++) {
        int last = c;
        int w;
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

void br__cpu_plan_free(struct br_cpu_plan *plan)
{
    free(plan->sets);
    plan->sets = NULL;
    plan->n = 0;
}

/* "auto": see cpus.h and docs/perf/notes.md for why this rule. */
static int plan_auto(struct br_cpu_plan *plan, const char *source, const char *root,
                     int trainer_cpu, char *msg)
{
    cpu_set_t online, llc, both;
    if (br__cpu_list_read(root, "online", &online))
        return br__fail(msg, -EINVAL, "%s 'auto': cannot read the online CPUs from %s/online",
                        source, root);
    if (trainer_cpu < 0 || br__cpu_llc_domain(root, trainer_cpu, &llc))
        return 0; /* no cache topology to go by: as before, not pinned */
    CPU_AND(&both, &llc, &online);
    if (CPU_EQUAL(&both, &online) || CPU_COUNT(&both) == 0)
        return 0; /* one LLC domain: nothing to choose */
    plan->sets = malloc(sizeof *plan->sets);
    if (!plan->sets)
        return br__fail(msg, -ENOMEM, "out of memory for the CPU plan");
    plan->sets[0] = both;
    plan->n = 1;
    return 0;
}

int br__cpu_plan_make(struct br_cpu_plan *plan, const char *text, const char *source,
                      const char *root, int trainer_cpu, char *msg)
{
    cpu_set_t online;
    int *cpus;
    uint32_t n;
    int rc;

    plan->n = 0;
    plan->sets = NULL;
    if (!text || !text[0])
        return 0;
    if (!strcmp(text, "auto"))
        return plan_auto(plan, source, root, trainer_cpu, msg);
    cpus = malloc(BR_CPU_LIST_MAX * sizeof *cpus);
    if (!cpus)
        return br__fail(msg, -ENOMEM, "out of memory parsing %s", source);
    rc = parse_list(text, source, cpus, BR_CPU_LIST_MAX, &n, msg);
    if (rc)
        goto out;
    if ((rc = br__cpu_list_read(root, "online", &online))) {
        rc = br__fail(msg, -EINVAL, "%s '%.64s': cannot read the online CPUs from %s/online: %s",
                      source, text, root, strerror(-rc));
        goto out;
    }
    for (uint32_t i = 0; i < n; i++)
        if (!CPU_ISSET((size_t)cpus[i], &online)) {
            char list[256];
            rc = br__fail(msg, -EINVAL, "%s '%.64s': CPU %d is not online (online: %s)", source,
                          text, cpus[i], br__cpu_set_format(list, sizeof list, &online));
            goto out;
        }
    plan->sets = calloc(n, sizeof *plan->sets);
    if (!plan->sets) {
        rc = br__fail(msg, -ENOMEM, "out of memory for the CPU plan of %u CPUs", n);
        goto out;
    }
    for (uint32_t i = 0; i < n; i++)
        CPU_SET((size_t)cpus[i], &plan->sets[i]);
    plan->n = n;
out:
    free(cpus);
    return rc;
}
