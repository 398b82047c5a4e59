/* SPDX-License-Identifier: MIT */
/* Error codes, their names and texts, and the version, from one list each. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <batchring.h>

#include "ring/error.h"

#define BR_STR2_(x) #x
#define BR_STR_(x) BR_STR2_(x)

static _Thread_local char open_error[BR_MSG_CAP];

char *br__open_error_buffer(void)
{
    return open_error;
}

int br__fail(char *msg, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, BR_MSG_CAP, fmt, ap);
    va_end(ap);
    return code;
}

const char *br__format_bytes(char buf[32], uint64_t bytes)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    double v = (double)bytes;
    unsigned u = 0;
    while (v >= 1024.0 && u + 1 < sizeof units / sizeof units[0]) {
        v /= 1024.0;
        u++;
    }
    /* The same rule as the tools' br_util_bytes (synth/util.c): whole
     * units without decimals, else two. */
    if (v == (double)(uint64_t)v)
        snprintf(buf, 32, "%llu %s", (unsigned long long)v, units[u]);
    else
        snprintf(buf, 32, "%.2f %s", v, units[u]);
    return buf;
}

BR_API const char *br_strerror(int code)
{
    switch (code) {
#define BR_STRERROR_CASE_(name, value, text) \
    case BR_##name:                          \
        return text;
        BR_ERRNO_MAP(BR_STRERROR_CASE_)
#undef BR_STRERROR_CASE_
    case 0:
        return "success";
    default:
        break;
    }
    if (code < 0 && code > -4096) {
        /* strerrordesc_np is thread-safe, unlike strerror. */
        const char *text = strerrordesc_np(-code);
        if (text)
            return text;
    }
    return "unknown error code";
}

BR_API const char *br_err_name(int code)
{
    switch (code) {
#define BR_ERRNAME_CASE_(name, value, text) \
    case BR_##name:                         \
        return "BR_" #name;
        BR_ERRNO_MAP(BR_ERRNAME_CASE_)
#undef BR_ERRNAME_CASE_
    case 0:
        return "OK";
    default:
        break;
    }
    if (code < 0 && code > -4096) {
        const char *name = strerrorname_np(-code);
        if (name)
            return name;
    }
    return "UNKNOWN";
}

BR_API unsigned br_version(void)
{
    return BR_VERSION_NUMBER;
}

BR_API const char *br_version_string(void)
{
    return BR_STR_(BR_VERSION_MAJOR) "." BR_STR_(BR_VERSION_MINOR) "." BR_STR_(BR_VERSION_PATCH);
}
