/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <time.h>

#include "util.h"

uint64_t br_util_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

const char *br_util_bytes(char buf[32], uint64_t bytes)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    unsigned u = 0;
    double v = (double)bytes;
    while (v >= 1024 && u + 1 < sizeof units / sizeof units[0])
        v /= 1024, u++;
    if (v == (double)(uint64_t)v)
        snprintf(buf, 32, "%llu %s", (unsigned long long)v, units[u]);
    else
        snprintf(buf, 32, "%.2f %s", v, units[u]);
    return buf;
}
