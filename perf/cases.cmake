# SPDX-License-Identifier: MIT
# The benchmark cases, one file per family (cases.h is their interface),
# shared by batchring-perf (perf/CMakeLists.txt) and `batchring bench`
# (cli/CMakeLists.txt). These need only the public API; case_schedule.c,
# which calls the library's internal schedule, is batchring-perf's alone.
set(BR_BENCH_CASE_SOURCES
    ${CMAKE_CURRENT_LIST_DIR}/cases.c
    ${CMAKE_CURRENT_LIST_DIR}/topology.c
    ${CMAKE_CURRENT_LIST_DIR}/case_common.c
    ${CMAKE_CURRENT_LIST_DIR}/case_handoff.c
    ${CMAKE_CURRENT_LIST_DIR}/case_throughput.c
    ${CMAKE_CURRENT_LIST_DIR}/case_records.c
    ${CMAKE_CURRENT_LIST_DIR}/case_startup.c
    ${CMAKE_CURRENT_LIST_DIR}/case_overlap.c
    ${CMAKE_CURRENT_LIST_DIR}/case_peers.c
    ${CMAKE_CURRENT_LIST_DIR}/case_h2d.c
    ${CMAKE_CURRENT_LIST_DIR}/case_tokens.c)
# case_h2d.c dlopen()s the CUDA runtime: whatever links these links
# ${CMAKE_DL_LIBS} too.
# The peers cases start perf/peers/torch_loader.py and batchring_py.py from
# the source tree, the latter with the build tree's Python package
# (BR_PEERS_SCRIPT, BR_PEERS_PY_SCRIPT and PYTHONPATH in the environment
# override them at run time).
set_source_files_properties(${CMAKE_CURRENT_LIST_DIR}/case_peers.c PROPERTIES
    COMPILE_DEFINITIONS "BR_PEERS_SCRIPT=\"${CMAKE_CURRENT_LIST_DIR}/peers/torch_loader.py\";BR_PEERS_PY_SCRIPT=\"${CMAKE_CURRENT_LIST_DIR}/peers/batchring_py.py\";BR_PEERS_PYTHONPATH=\"${PROJECT_BINARY_DIR}/python\"")
