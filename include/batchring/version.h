/* SPDX-License-Identifier: MIT */
#ifndef BATCHRING_VERSION_H
#define BATCHRING_VERSION_H

/*
 * Compatibility: within one major version, programs built against an older
 * minor keep working with a newer library (source and ABI). The patch number
 * changes for fixes only. CMake reads these three numbers from this file.
 */
#define BR_VERSION_MAJOR 0
#define BR_VERSION_MINOR 1
#define BR_VERSION_PATCH 0

#define BR_VERSION_NUMBER \
    (BR_VERSION_MAJOR * 10000 + BR_VERSION_MINOR * 100 + BR_VERSION_PATCH)

#endif /* BATCHRING_VERSION_H */
