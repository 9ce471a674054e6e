#!/usr/bin/env bash
# README command 1: set up, build, and show what streamverify makes of the
# bundled sample, a real `xl save` image from Xen 4.17 (testdata/xen-4.17,
# zstd-compressed as stored), then of a stream made with libstream's writer.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh"
"$root/scripts/build.sh" "$root/build-release" -DCMAKE_BUILD_TYPE=Release -DXENSTREAM_TESTS=OFF
real="$root/testdata/xen-4.17/hvm.save.zst"
echo "== streamverify -v $real" >&2
"$root/build-release/tools/verify/streamverify" -v "$real"
sample="$root/build-release/sample-hvm.xl"
"$root/build-release/tools/gen/streamgen" --guest hvm --container xl --pages 2048 --vcpus 2 \
  --emulator-context --xenstore-data "$sample"
echo >&2
echo "== streamverify -v $sample" >&2
"$root/build-release/tools/verify/streamverify" -v "$sample"
