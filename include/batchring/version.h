/* SPDX-License-Identifier: MIT */
#ifndef BATCHRING_VERSION_H
#define BATCHRING_VERSION_H

/*
 * Compatibility: from 1.0 on, within one major version, programs built
 * against an older minor keep working with a newer library (source and
 * ABI). Before 1.0 that holds within one minor version only, so the shared
 * library's soname is libbatchring.so.0.MINOR and the dynamic linker never
 * pairs a program with a library of another 0.x (0.2 grew br_worker_stats
 * and br_ring_status; 0.3 gave every public struct a way to grow).
 *
 * 0.3 is the last ABI break before 1.0 for programs that follow the rule
 * at the top of batchring.h ("How the public structs grow": options
 * through br_options_init, results through the getters that pass their
 * sizeof, br_batch's reserved words left alone, library-owned structs
 * never copied). From 0.3 on, public structs and functions only gain
 * fields, values and new functions, never change in place; later 0.x
 * releases still get a soname of their own until 1.0. The patch number
 * changes for fixes only. CMake reads these three numbers from this file.
 */
#define BR_VERSION_MAJOR 0
#define BR_VERSION_MINOR 3
#define BR_VERSION_PATCH 0

#define BR_VERSION_NUMBER \
    (BR_VERSION_MAJOR * 10000 + BR_VERSION_MINOR * 100 + BR_VERSION_PATCH)

#endif /* BATCHRING_VERSION_H */
