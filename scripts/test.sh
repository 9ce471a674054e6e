#!/usr/bin/env bash
# README command 2 (and what CI runs): set up, then build and run the whole
# test suite three ways: a normal build, an ASan+UBSan build, and the
# libFuzzer targets for a bounded time each; the Debian packages (built,
# linted, installed, used and removed); then clang-tidy.
#   XENSTREAM_FUZZ_SECONDS  seconds per fuzz target (default 45, which keeps the whole run under 75 minutes)
#   XENSTREAM_QUICK=1       only the normal build and its tests
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh"

start=$SECONDS
step() { printf '\n== [%ds] %s\n' "$((SECONDS - start))" "$*"; }
# Test builds skip debug info: it triples compile time on a 2-core machine.
fast=(-DXENSTREAM_WERROR=ON -DCMAKE_BUILD_TYPE=None -DCMAKE_CXX_FLAGS=-O2)

step "build (gcc, -Werror)"
"$root/scripts/build.sh" "$root/build" "${fast[@]}"
step "tests"
ctest --test-dir "$root/build" --output-on-failure -j"$(nproc)"
[[ "${XENSTREAM_QUICK:-0}" == 1 ]] && exit 0

step "build (gcc, ASan+UBSan)"
"$root/scripts/build.sh" "$root/build-asan" -DXENSTREAM_WERROR=ON -DXENSTREAM_SANITIZE=ON -DXENSTREAM_BENCH=OFF \
  -DCMAKE_BUILD_TYPE=None -DCMAKE_CXX_FLAGS=-O1
step "tests under ASan+UBSan"
# -LE xenhost: the nested Xen host (tests/xenhost) boots Xen under QEMU (TCG)
# for about 8 minutes of a core; one real-Xen run per CI (the normal build's,
# above) is enough.
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir "$root/build-asan" --output-on-failure -j"$(nproc)" -LE xenhost

if [[ -x "$root/.ci/fuzz.sh" ]]; then
  step "fuzz targets (clang-14 libFuzzer), ${XENSTREAM_FUZZ_SECONDS:-45}s each"
  CC=clang-14 CXX=clang++-14 "$root/scripts/build.sh" "$root/build-fuzz" -DXENSTREAM_FUZZ=ON -DXENSTREAM_TESTS=OFF -DXENSTREAM_BENCH=OFF \
    -DCMAKE_BUILD_TYPE=None -DCMAKE_CXX_FLAGS=-O1
  "$root/.ci/fuzz.sh" "$root/build-fuzz" "${XENSTREAM_FUZZ_SECONDS:-45}"
fi
step "Debian packages: build, lintian, install, use, remove"
"$root/scripts/deb-test.sh" "$root/build-deb"

if [[ -x "$root/.ci/tidy.sh" ]]; then
  step "clang-tidy on libstream/ and codecs/"
  "$root/.ci/tidy.sh" "$root/build"
fi
step "all passed"
