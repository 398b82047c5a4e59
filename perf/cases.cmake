# SPDX-License-Identifier: MIT
# The benchmark cases, one file per family (cases.h is their interface),
# shared by batchring-perf (perf/CMakeLists.txt) and `batchring bench`
# (cli/CMakeLists.txt). These need only the public API; case_schedule.c,
# which calls the library's internal schedule, is batchring-perf's alone.
set(BR_BENCH_CASE_SOURCES
    ${CMAKE_CURRENT_LIST_DIR}/cases.c
    ${CMAKE_CURRENT_LIST_DIR}/case_common.c
    ${CMAKE_CURRENT_LIST_DIR}/case_handoff.c
    ${CMAKE_CURRENT_LIST_DIR}/case_throughput.c
    ${CMAKE_CURRENT_LIST_DIR}/case_records.c
    ${CMAKE_CURRENT_LIST_DIR}/case_startup.c
    ${CMAKE_CURRENT_LIST_DIR}/case_overlap.c)
