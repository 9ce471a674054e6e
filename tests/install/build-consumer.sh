#!/usr/bin/env bash
# build-consumer.sh PREFIX WORK_DIR IMAGE
# Builds the README's list-records program (consumer/main.cpp, which must be
# the README's listing octet for octet) against the xenstream installed in
# PREFIX, once with find_package(xenstream) and once with pkg-config, seeing
# nothing of the source tree, then runs both on IMAGE and compares their
# record listing with streamverify's record count.
set -euo pipefail
prefix=$1 work=$2 image=$3
here=$(cd "$(dirname "$0")" && pwd)
readme="$here/../../README.md"
rm -rf "$work" && mkdir -p "$work"

# The README shows the program between these markers; it must be this file.
awk '/<!-- list-records begin -->/{on=1; next} /<!-- list-records end -->/{on=0} on' "$readme" |
  sed '1{/^```/d}; ${/^```/d}' >"$work/readme-listing.cpp"
cmp -s "$work/readme-listing.cpp" "$here/consumer/main.cpp" ||
  { diff -u "$here/consumer/main.cpp" "$work/readme-listing.cpp" >&2 || true
    echo "build-consumer: README's list-records listing differs from tests/install/consumer/main.cpp" >&2; exit 1; }

cp "$here/consumer/main.cpp" "$here/consumer/CMakeLists.txt" "$work/"
cmake -S "$work" -B "$work/cmake-build" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$work/cmake-build" >/dev/null

pcdirs=$(shopt -s nullglob; dirs=("$prefix"/lib/pkgconfig "$prefix"/lib/*/pkgconfig); IFS=:; echo "${dirs[*]}")
flags=$(PKG_CONFIG_PATH="$pcdirs" pkg-config --cflags --libs --static xenstream)
c++ -std=c++20 -o "$work/list-records-pc" "$work/main.cpp" $flags

"$work/cmake-build/list-records" "$image" >"$work/out-cmake.txt"
"$work/list-records-pc" - <"$image" >"$work/out-pc.txt"
cmp -s "$work/out-cmake.txt" "$work/out-pc.txt" || { echo "build-consumer: the two builds list differently" >&2; exit 1; }
n=$(wc -l <"$work/out-cmake.txt")
((n >= 4)) || { echo "build-consumer: only $n records listed" >&2; exit 1; }
grep -q ' libxc END ' "$work/out-cmake.txt" || { echo "build-consumer: no libxc END listed" >&2; exit 1; }
grep -q ' libxl LIBXC_CONTEXT ' "$work/out-cmake.txt" || { echo "build-consumer: no LIBXC_CONTEXT listed" >&2; exit 1; }
echo "build-consumer: list-records built both ways against $prefix, $n records listed"
