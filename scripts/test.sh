#!/usr/bin/env bash
# Installs, builds and runs the whole test suite: a -Werror gcc build with
# ctest, then an ASan+UBSan clang build with the libFuzzer targets and ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
J=$(nproc)
cmake -S . -B build-test -DCMAKE_BUILD_TYPE=Release -DSHOAL_WERROR=ON
cmake --build build-test -j"$J"
(cd build-test && ctest --output-on-failure -j"$J")
CC=clang cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSHOAL_WERROR=ON \
  -DSHOAL_SANITIZE=ON -DSHOAL_FUZZ=ON -DSHOAL_CUDA=OFF
cmake --build build-asan -j"$J"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --output-on-failure -j"$J")
