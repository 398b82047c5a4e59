/* SPDX-License-Identifier: MIT */
#ifndef BATCHRING_VERSION_H
#define BATCHRING_VERSION_H

/*
 * Compatibility: from 1.0 on, within one major version, programs built
 * against an older minor keep working with a newer library (source and
 * ABI). Before 1.0 that holds within one minor version only: 0.2 grew
 * br_worker_stats and br_ring_status, so the shared library's soname is
 * libbatchring.so.0.MINOR and the dynamic linker never pairs a program with
 * a library of another 0.x. The patch number changes for fixes only. CMake
 * reads these three numbers from this file.
 */
#define BR_VERSION_MAJOR 0
#define BR_VERSION_MINOR 2
#define BR_VERSION_PATCH 0

#define BR_VERSION_NUMBER \
    (BR_VERSION_MAJOR * 10000 + BR_VERSION_MINOR * 100 + BR_VERSION_PATCH)

#endif /* BATCHRING_VERSION_H */
