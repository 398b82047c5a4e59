/* SPDX-License-Identifier: MIT */
#ifndef BR_CLI_H
#define BR_CLI_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <batchring.h>

#include "util.h" /* br_util_now_ns, br_util_bytes */

/* Each subcommand: argv[0] is the subcommand's name. Returns the exit code. */
int br_cli_demo(int argc, char **argv);
int br_cli_bench(int argc, char **argv);
int br_cli_mkdata(int argc, char **argv);
int br_cli_serve(int argc, char **argv);   /* cli/serve.c */
int br_cli_consume(int argc, char **argv); /* cli/consume.c */
int br_cli_stat(int argc, char **argv);    /* cli/rings.c */
int br_cli_ls(int argc, char **argv);      /* cli/rings.c */
int br_cli_gc(int argc, char **argv);      /* cli/rings.c */
int br_cli_soak(int argc, char **argv);    /* cli/soak.c */
int br_cli_pack(int argc, char **argv);    /* cli/pack.c */
int br_cli_verify(int argc, char **argv);  /* cli/pack.c */

/* The dataset writer behind mkdata, soak and the demo's data, and the names
 * of the files it writes: synth/mkdata.h (library batchring_synth, which
 * the tests link too). */
#include "mkdata.h"

/* ---------------------------------------------- output (cli/output.c) */

/* The subcommand running ("ls"), set by main before it dispatches; NULL
 * before that. Messages name it. */
extern const char *br_cli_cmd;

/*
 * Prints "batchring CMD: MESSAGE" and a newline on stderr (plain
 * "batchring: " with no subcommand yet). Every error and note of every
 * subcommand goes through here, so that a script or a person can tell
 * which command of a pipeline spoke. fmt has no trailing newline.
 */
void br_cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * JSON output. Strings: UTF-8 is passed through; quotes, backslashes and control
 * characters (and DEL) are escaped; a byte that is not part of valid UTF-8
 * (a ring name in /dev/shm may hold any byte but '/' and NUL) is written as
 * U+FFFD. Returns false when that happened, i.e. the string is not the
 * exact bytes.
 */
bool br_cli_json_string(FILE *f, const char *s);
/* "KEY": "NAME", plus "KEY_hex": "2f..." (every byte of NAME in hex) when
 * NAME is not valid UTF-8, so that its exact bytes are never lost. */
void br_cli_json_name(FILE *f, const char *key, const char *name);
/* A double that reads back as the same double (up to 17 significant
 * digits); null for NaN and infinities, which JSON lacks. Integers are
 * printed with PRIu64/%u/%d directly: they are exact as they are. */
void br_cli_json_double(FILE *f, double v);

/* ------------------------------------------------ helpers (cli/args.c) */

/* Exit codes of every subcommand. */
#define BR_CLI_OK 0
#define BR_CLI_FAILED 1 /* a runtime error: a file, the ring, the library */
#define BR_CLI_USAGE 2  /* a bad command line */

/*
 * Parses a whole decimal number in [min, max]; with `sizes`, a binary
 * suffix (K, M, G, with optional "iB") is allowed. On failure prints
 * "batchring CMD: bad value 'TEXT' for --OPT: WHY" and returns false.
 */
bool br_cli_number(const char *opt, const char *text, uint64_t min, uint64_t max, bool sizes,
                   uint64_t *out);

/*
 * Opens a built-in dataset of layout 'r' (records), 'f' (files) or 'i'
 * (indexed) from DATA as serve and pack take it: DATA names shards when it
 * starts with '@' or holds '*', '?' or '[' and no file of that name exists
 * (a path that exists as given is that one file, whatever it holds); then
 * records come from br_dataset_open_record_shards, files from
 * br_dataset_open_files_glob, indexed data from
 * br_dataset_open_indexed_shards with `index` the suffix of each shard's
 * index. Returns as br_dataset_open_*, message in br_last_error(NULL).
 */
int br_cli_dataset_open(br_dataset **ds, char layout, const char *data, const char *index,
                        size_t record_bytes, const char *labels, unsigned flags);

/* Checks a ring name as the library will ("/" and 1 to 250 characters,
 * no other "/"); prints why not and returns false. */
bool br_cli_ring_name_ok(const char *name);

/* The signal that asked a long-running command to stop (SIGINT, SIGTERM,
 * SIGHUP), 0 while none has. Set by br_cli_catch_stop_signals' handler. */
extern volatile sig_atomic_t br_cli_stop;
/* Installs that handler (no SA_RESTART, so that a sleep ends at once) and
 * ignores SIGPIPE, so that a closed stdout cannot kill the process before
 * it has cleaned up. */
void br_cli_catch_stop_signals(void);

#endif
