# SPDX-License-Identifier: MIT
# Front door: `make demo` and `make test` on a fresh Debian 12 machine.
# Each installs what it needs and is missing (apt-get, through sudo when not
# root), builds with CMake and runs. `make perf` runs the benchmark suite.

BUILD      ?= build
BUILD_SAN  ?= build-asan
BUILD_TSAN ?= build-tsan
BUILD_FUZZ ?= build-fuzz
# Executions per libFuzzer harness in `make fuzz` (4 harnesses, 2 at a time:
# about 45 s on 2 busy cores, docs/testing.md).
FUZZ_RUNS  ?= 60000
JOBS       ?= $(shell nproc)
CMAKE_ARGS ?=

# Debian packages, per target: each installs only what it uses.
# demo (and build): the library, the batchring command and the examples,
# configured without tests and benchmarks, so nothing more is needed.
PKGS_DEMO := build-essential cmake pkg-config liburing-dev libxxhash-dev
# test: cmocka; gcc's ASan, UBSan and TSan runtimes come with
# build-essential; libbenchmark-dev because test-plain compiles the
# benchmarks with -Werror (so that CI sees a break in perf/; running them
# is make perf's); openmpi-bin for mpirun (test_mpi_shards); spin for the
# model checks (model/); clang and libfuzzer-14-dev for make fuzz;
# abigail-tools (abidiff) and file (cpack's DEB dependency scan) for
# package-check; python3, whose json module checks the command's JSON
# (test_cli).
PKGS_TEST := $(PKGS_DEMO) libcmocka-dev libbenchmark-dev openmpi-bin spin \
             clang libfuzzer-14-dev abigail-tools file python3 \
             python3-dev python3-numpy python3-pytest python3-torch
# perf: Google Benchmark, gnuplot for the charts, and cmocka because the
# benchmarks are built with BUILD_TESTING (BR_BUILD_PERF needs it);
# python3-torch and python3-numpy for the peers cases' DataLoader (a large
# install; without them those cases skip the DataLoader and say so).
PKGS_PERF := $(PKGS_DEMO) libcmocka-dev libbenchmark-dev gnuplot-nox python3-torch python3-numpy

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# Installs those of the packages $(1) that are missing, so a second run
# costs nothing.
define install_missing
	@missing=""; for p in $(1); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi
endef

.PHONY: all setup setup-demo setup-test setup-perf build demo test test-plain test-sanitize \
        test-tsan package-check fuzz perf clean

all: build

setup-demo:
	$(call install_missing,$(PKGS_DEMO))
setup-test:
	$(call install_missing,$(PKGS_TEST))
setup-perf:
	$(call install_missing,$(PKGS_PERF))
# Everything any target uses.
setup: setup-test setup-perf

# The library, the command and the examples: no tests, no benchmarks.
build: setup-demo
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF -DBR_BUILD_PERF=OFF \
	  $(CMAKE_ARGS) >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

demo: build
	$(BUILD)/cli/batchring demo

# Each cmocka case is its own CTest test (tests/CMakeLists.txt): a skipped
# case shows as "Skipped" in ctest's summary. BR_TEST_TIME_SCALE=N scales
# every timeout of the suites (docs/testing.md).
test: setup-test test-plain test-sanitize test-tsan package-check fuzz

test-plain:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=ON -DBR_BUILD_PERF=ON \
	  -DBR_WERROR=ON $(CMAKE_ARGS) >/dev/null
	cmake --build $(BUILD) -j $(JOBS)
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# The same suite under AddressSanitizer + UndefinedBehaviorSanitizer.
test-sanitize:
	cmake -S . -B $(BUILD_SAN) -DCMAKE_BUILD_TYPE=Debug -DBR_SANITIZE=address,undefined -DBR_WERROR=ON \
	  -DBR_BUILD_PERF=OFF $(CMAKE_ARGS) >/dev/null
	cmake --build $(BUILD_SAN) -j $(JOBS)
	cd $(BUILD_SAN) && ctest --output-on-failure -j $(JOBS)

# The suite under ThreadSanitizer, for the parts that use threads
# (test_threads: stats readers beside br_next, parallel generators;
# test_faults' and test_options' threads). Any TSan report, from any
# process of a test, fails it (tests/CMakeLists.txt); the tests labelled
# tsan_unsupported are left out, each with its reason written there.
# About 1 minute on 2 cores.
test-tsan:
	cmake -S . -B $(BUILD_TSAN) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBR_SANITIZE=thread -DBR_WERROR=ON \
	  -DBR_BUILD_PERF=OFF $(CMAKE_ARGS) >/dev/null
	cmake --build $(BUILD_TSAN) -j $(JOBS)
	cd $(BUILD_TSAN) && ctest --output-on-failure -j $(JOBS) -LE tsan_unsupported

# Install, find_package, pkg-config, .deb, ABI (abi/) and library-only
# builds of a scratch Release build (tests/package/check.sh, ~1 minute).
package-check: setup-test
	JOBS=$(JOBS) sh tests/package/check.sh

# The libFuzzer harnesses (fuzz/, docs/testing.md), built with clang in
# their own directory: replays fuzz/regressions, then FUZZ_RUNS executions
# each from the seed corpus in a scratch dir; fails on a crash, leak or hang.
fuzz: setup-test
	cmake -S . -B $(BUILD_FUZZ) -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug \
	  -DBR_BUILD_FUZZ=ON -DBUILD_TESTING=OFF -DBR_BUILD_PERF=OFF -DBR_BUILD_EXAMPLES=OFF \
	  -DBR_BUILD_CLI=OFF -DBR_WERROR=ON $(CMAKE_ARGS) >/dev/null
	cmake --build $(BUILD_FUZZ) -j $(JOBS) --target fuzz_all
	sh fuzz/run.sh $(BUILD_FUZZ) $(FUZZ_RUNS)

perf: setup-perf
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=ON -DBR_BUILD_PERF=ON \
	  $(CMAKE_ARGS) >/dev/null
	cmake --build $(BUILD) -j $(JOBS) --target batchring-perf
	perf/run.sh $(BUILD)

clean:
	rm -rf $(BUILD) $(BUILD_SAN) $(BUILD_TSAN) $(BUILD_FUZZ)
