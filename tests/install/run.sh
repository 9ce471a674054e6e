#!/usr/bin/env bash
# run.sh BUILD_DIR WORK_DIR: installs the build into WORK_DIR/prefix and
# builds the README's consumer program against that tree alone
# (build-consumer.sh: find_package and pkg-config), then runs it.
set -euo pipefail
build=$1 work=$2
here=$(cd "$(dirname "$0")" && pwd)
rm -rf "$work" && mkdir -p "$work"
cmake --install "$build" --prefix "$work/prefix" >/dev/null
for tool in streamverify streamconv streamrestore streamsave streamgen streammem; do
  test -x "$work/prefix/bin/$tool" || { echo "$tool not installed" >&2; exit 1; }
done
"$work/prefix/bin/streamgen" --container xl "$work/sample.save" >/dev/null
"$here/build-consumer.sh" "$work/prefix" "$work/consumer" "$work/sample.save"
