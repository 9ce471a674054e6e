#!/usr/bin/env bash
# run.sh BUILD_DIR WORK_DIR: installs the build into WORK_DIR/prefix, builds a
# separate consumer project against it with find_package(xenstream) and with
# pkg-config, and runs both.
set -euo pipefail
build=$1 work=$2
here=$(cd "$(dirname "$0")" && pwd)
rm -rf "$work" && mkdir -p "$work"
cmake --install "$build" --prefix "$work/prefix" >/dev/null
cmake -S "$here/consumer" -B "$work/consumer" -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/consumer" >/dev/null
"$work/consumer/consumer"
PKG_CONFIG_PATH="$work/prefix/lib/pkgconfig:$work/prefix/lib/x86_64-linux-gnu/pkgconfig" \
  c++ -o "$work/consumer-pc" "$here/consumer/main.cpp" $(PKG_CONFIG_PATH="$work/prefix/lib/pkgconfig:$work/prefix/lib/x86_64-linux-gnu/pkgconfig" pkg-config --cflags --libs --static xenstream)
"$work/consumer-pc"
test -x "$work/prefix/bin/streamverify" || { echo "streamverify not installed" >&2; exit 1; }
test -x "$work/prefix/bin/streammem" || { echo "streammem not installed" >&2; exit 1; }
