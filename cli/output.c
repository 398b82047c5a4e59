/* SPDX-License-Identifier: MIT */
/*
 * What the command writes for people and for programs: error messages
 * that name the program and the subcommand ("batchring ls: ..."), and the
 * pieces of its JSON (strings, integers, doubles). Every subcommand goes
 * through these, so that a message looks the same wherever it comes from
 * and JSON is valid whatever a ring's name or a path holds.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

const char *br_cli_cmd;

void br_cli_error(const char *fmt, ...)
{
    va_list ap;
    /* One fputs per piece rather than one buffer: a message is never cut
     * at some length, and stderr is unbuffered so the pieces go out in
     * order. */
    fputs(br_cli_cmd ? "batchring " : "batchring", stderr);
    if (br_cli_cmd)
        fputs(br_cli_cmd, stderr);
    fputs(": ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/*
 * Length of the well-formed UTF-8 sequence at s (RFC 3629: no overlong
 * forms, no surrogates, nothing above U+10FFFF), or 0 when the byte at s
 * does not start one.
 */
static size_t utf8_len(const unsigned char *s)
{
    unsigned char c = s[0];
    size_t n;
    unsigned char lo = 0x80, hi = 0xbf; /* the allowed range of s[1] */

    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        if (c == 0xe0)
            lo = 0xa0; /* below: overlong */
        else if (c == 0xed)
            hi = 0x9f; /* above: a surrogate half, U+D800..U+DFFF */
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        if (c == 0xf0)
            lo = 0x90; /* below: overlong */
        else if (c == 0xf4)
            hi = 0x8f; /* above: beyond U+10FFFF */
    } else {
        return 0; /* a continuation byte, 0xc0, 0xc1 or 0xf5..0xff */
    }
    if (s[1] < lo || s[1] > hi)
        return 0;
    /* The NUL that ends s is not a continuation byte: no read past it. */
    for (size_t i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return n;
}

bool br_cli_json_string(FILE *f, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    bool exact = true;

    fputc('"', f);
    while (*p) {
        size_t n = utf8_len(p);
        if (n == 0) {
            /* JSON text is UTF-8 and has no escape for a raw byte: the
             * byte becomes U+FFFD, as a terminal shows it. */
            fputs("\\ufffd", f);
            exact = false;
            p++;
            continue;
        }
        if (n > 1) {
            fwrite(p, 1, n, f);
        } else if (*p == '"' || *p == '\\') {
            fputc('\\', f);
            fputc(*p, f);
        } else if (*p == '\n') {
            fputs("\\n", f);
        } else if (*p == '\t') {
            fputs("\\t", f);
        } else if (*p == '\r') {
            fputs("\\r", f);
        } else if (*p < 0x20 || *p == 0x7f) {
            /* DEL is legal raw in JSON, but not on a terminal. */
            fprintf(f, "\\u%04x", *p);
        } else {
            fputc(*p, f);
        }
        p += n;
    }
    fputc('"', f);
    return exact;
}

void br_cli_json_name(FILE *f, const char *key, const char *name)
{
    fprintf(f, "\"%s\": ", key);
    if (br_cli_json_string(f, name))
        return;
    /* The string above lost bytes; these are all of them, so that a
     * program can still find the ring (bytes.fromhex in Python). */
    fprintf(f, ", \"%s_hex\": \"", key);
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        fprintf(f, "%02x", *p);
    fputc('"', f);
}

void br_cli_json_double(FILE *f, double v)
{
    char buf[40];
    /* JSON has no NaN or infinity. */
    if (!isfinite(v)) {
        fputs("null", f);
        return;
    }
    /* The shortest of 15, 16 or 17 significant digits that reads back as
     * the same double: 17 always does, fewer read better (0.1, not
     * 0.10000000000000001). */
    for (int digits = 15; digits <= 17; digits++) {
        snprintf(buf, sizeof buf, "%.*g", digits, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    fputs(buf, f);
}
