#!/usr/bin/env bash
# README command 1: set up, build, make a sample stream with libstream's
# writer and show what streamverify makes of it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh"
"$root/scripts/build.sh" "$root/build-release" -DCMAKE_BUILD_TYPE=Release -DXENSTREAM_TESTS=OFF
sample="$root/build-release/sample-hvm.xl"
"$root/build-release/tools/gen/streamgen" --guest hvm --container xl --pages 2048 --vcpus 2 \
  --emulator-context --xenstore-data "$sample"
echo "== streamverify -v $sample" >&2
"$root/build-release/tools/verify/streamverify" -v "$sample"
