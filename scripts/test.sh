#!/usr/bin/env bash
# Sets up this machine, builds Bulkhead and runs every test: unit and integration tests
# (test guest on Bulkhead and on QEMU, Debian Linux in the nested lab), the unit tests and a
# boot again under AddressSanitizer + UndefinedBehaviorSanitizer, a Release build with its
# unit tests, and the fuzzers.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
(cd build && ctest --output-on-failure --timeout 600)

BUILD_DIR=build-asan bash scripts/build.sh -DBULKHEAD_SANITIZE=ON
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
(cd build-asan && ctest --output-on-failure --timeout 600 -L unit &&
  ctest --output-on-failure --timeout 600 -R 'BootTest|SerialTest')

# A packager's build: Release (-O3), warnings still errors; its unit tests.
BUILD_DIR=build-release bash scripts/build.sh -DCMAKE_BUILD_TYPE=Release
(cd build-release && ctest --output-on-failure --timeout 600 -L unit)

# libFuzzer harnesses, bounded (FUZZ_SECONDS each, default 30): any finding fails the run.
bash scripts/fuzz.sh
