#!/usr/bin/env bash
# One differential case: make a stream with streamgen, run Xen's reference
# verify-stream-v2 on it, and compare the exit status (and, for expected
# failures, the last non-empty line of its stderr) with what we expect.
#
# Usage: oracle_case.sh ORACLE_DIR STREAMGEN WORKDIR NAME FORMAT EXPECT_RC EXPECT_MSG [STREAMGEN ARGS...]
#   FORMAT      libxc | libxl | xl (passed to verify-stream-v2 -f), or
#               libvirt: the libvirt header is cut off (the reference does not
#               know it) and the rest is checked as libxl
#   EXPECT_RC   0, or the reference's known wrong status for this stream
#   EXPECT_MSG  "" for success, else the exact last stderr line expected
# Never skips: a missing oracle is a failure.
set -euo pipefail

[ $# -ge 7 ] || { echo "usage: $0 ORACLE STREAMGEN WORKDIR NAME FORMAT EXPECT_RC EXPECT_MSG [ARGS...]" >&2; exit 2; }
oracle=$1 streamgen=$2 workdir=$3 name=$4 format=$5 expect_rc=$6 expect_msg=$7
shift 7

verify="$oracle/verify-stream-v2"
if [ ! -x "$verify" ] || [ ! -e "$oracle/.complete" ]; then
    echo "FAIL: the reference $verify is missing; the fetch step (tests/oracle/fetch-xen-tools.sh) failed" >&2
    exit 1
fi

dir="$workdir/$name"
rm -rf -- "$dir"
mkdir -p -- "$dir"
stream="$dir/stream.bin"
# Small guests keep the suite fast; a case may ask for more.
size_args=(--pages 256)
for a in "$@"; do
    case $a in -n|--pages|-s|--size) size_args=() ;; esac
done
"$streamgen" --json "${size_args[@]}" "$@" "$stream" >"$dir/summary.json"

input="$stream"
if [ "$format" = libvirt ]; then
    offset=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["payload_offset"])' "$dir/summary.json")
    [ "$offset" -gt 64 ] || { echo "FAIL: libvirt payload offset $offset is too small" >&2; exit 1; }
    input="$dir/payload.bin"
    tail -c +"$((offset + 1))" "$stream" >"$input"
    format=libxl
fi

set +e
# A regular file, never a pipe: the reference reads unbuffered and misreports
# short pipe reads as truncation (tests/oracle/README.md).
"$verify" -f "$format" -i "$input" >"$dir/stdout" 2>"$dir/stderr"
rc=$?
set -e
last=$(grep -v '^[[:space:]]*$' "$dir/stderr" | tail -n 1 || true)

echo "streamgen $* -> verify-stream-v2 -f $format: exit $rc${last:+, last line: $last}"
if [ "$rc" != "$expect_rc" ]; then
    echo "FAIL: expected exit $expect_rc, got $rc" >&2
    cat "$dir/stderr" >&2
    exit 1
fi
if [ "$last" != "$expect_msg" ]; then
    echo "FAIL: expected the last stderr line to be" >&2
    echo "  '$expect_msg'" >&2
    echo "got" >&2
    echo "  '$last'" >&2
    exit 1
fi
rm -rf -- "$dir"
echo PASS
