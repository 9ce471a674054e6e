#!/usr/bin/env bash
# streamverify benchmark: every check on, a generated 1 GiB stream, side by
# side with Xen's verify-stream-v2 and `cat` in one run.
#
# Usage: bench/verify/run.sh [BUILD_DIR] [SIZE]
#   BUILD_DIR  a configured build tree (default: build); streamgen and
#              streamverify are built there if missing
#   SIZE       guest memory of the generated stream (default 1G)
# Env:  BENCH_RUNS  timed runs per command (default 5; the median is reported)
#       TMPDIR      where the stream is written (removed afterwards)
#
# The stream: HVM guest, libxl v2 + libxc v3, 1024-page PAGE_DATA batches,
# 4 vcpus, an EMULATOR_CONTEXT (no EMULATOR_XENSTORE_DATA: the reference
# refuses every non-empty one, see tests/oracle/README.md, and would stop
# early). Timed on the same page-cached file:
#   cat       cat FILE > /dev/null             read every octet, nothing else
#   cat|cat   cat FILE | cat > /dev/null       the floor for any pipe reader
#   file      streamverify FILE                mapped file (page contents, which
#                                              no rule inspects, are never touched)
#   read      streamverify - < FILE            records read(2) into the bounded
#                                              window, page bodies seeked past
#   pipe      cat FILE | streamverify -        bounded window over a pipe; page
#                                              bodies spliced to /dev/null
#   ceiling   cat FILE | pipe_drain            a reader that splices the whole
#                                              pipe to /dev/null: no reader of
#                                              that pipe can be faster
#   ref       verify-stream-v2 -f libxl -i FILE  (it cannot read pipes)
# Peak RSS (GNU time) of streamverify for the file and the pipe.
# Goals (issue 3): file <= 0.5x ref, file within 1.5x of cat, pipe peak RSS
# < 64 MiB; (issue 15) from a pipe at least 0.9x the speed of the ceiling. The script prints the figures and PASS/MISS per goal; its exit
# status is 0 unless something failed to run.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
src="$(cd "$here/../.." && pwd)"
build="${1:-$src/build}"
size="${2:-1G}"
runs="${BENCH_RUNS:-5}"
mkdir -p "$build"
build="$(cd "$build" && pwd)"

die() { echo "bench/verify: $*" >&2; exit 2; }

streamgen="$build/tools/gen/streamgen"
verify="$build/tools/verify/streamverify"
oracle="$build/oracle/verify-stream-v2"
drain="$build/bench/walk/pipe_drain"
gnutime=/usr/bin/time
[ -x "$gnutime" ] || die "GNU time is missing (apt-get install time)"
[ -f "$build/CMakeCache.txt" ] || cmake -S "$src" -B "$build" >/dev/null
if [ ! -x "$streamgen" ] || [ ! -x "$verify" ] || [ ! -x "$drain" ]; then
    make -C "$build" -j2 streamgen streamverify pipe_drain >/dev/null || die "cannot build streamgen/streamverify/pipe_drain"
fi
[ -x "$oracle" ] || "$src/tests/oracle/fetch-xen-tools.sh" "$build/oracle" >/dev/null \
    || die "cannot fetch verify-stream-v2"

work="$(mktemp -d "${TMPDIR:-/tmp}/xenstream-bench-verify.XXXXXX")"
trap 'rm -rf -- "$work"' EXIT
file="$work/stream.xen"

echo "== generating a $size HVM stream with streamgen"
"$streamgen" --size "$size" --vcpus 4 --emulator-context "$file"
bytes=$(stat -c %s "$file")
echo "   $bytes octets"
cat "$file" >/dev/null  # page cache

echo "== both verifiers must accept it (so both walk all of it)"
"$verify" "$file" || die "streamverify refused the generated stream"
"$oracle" -q -f libxl -i "$file" || die "verify-stream-v2 refused the generated stream"

# median_seconds CMD: runs CMD (a shell string) $runs times, prints the median
# wall time in seconds.
median_seconds() {
    local i t0 t1
    for ((i = 0; i < runs; i++)); do
        t0=$(date +%s.%N)
        bash -c "$1" >/dev/null 2>&1 || die "failed: $1"
        t1=$(date +%s.%N)
        awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f\n", b - a }'
    done | sort -g | awk '{ v[NR] = $1 } END { printf "%.3f\n", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# peak_rss_kib CMD: peak resident set (KiB) of the last process of CMD.
peak_rss_kib() {
    bash -c "$1" 2>&1 >/dev/null | tail -1
}

echo "== timing, $runs runs each (median)"
t_cat=$(median_seconds "cat '$file' > /dev/null")
t_floor=$(median_seconds "cat '$file' | cat > /dev/null")
t_file=$(median_seconds "'$verify' '$file'")
t_read=$(median_seconds "'$verify' - < '$file'")
t_pipe=$(median_seconds "cat '$file' | '$verify' -")
t_ceiling=$(median_seconds "cat '$file' | '$drain'")
t_ref=$(median_seconds "'$oracle' -q -f libxl -i '$file'")
rss_file=$(peak_rss_kib "'$gnutime' -f %M '$verify' '$file'")
rss_pipe=$(peak_rss_kib "cat '$file' | '$gnutime' -f %M '$verify' -")
rss_ref=$(peak_rss_kib "'$gnutime' -f %M '$oracle' -q -f libxl -i '$file'")

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
mibs() { awk -v n="$bytes" -v t="$1" 'BEGIN { printf "%.0f", n / 1048576 / t }'; }
printf '\n%-34s %9s %10s %10s %12s\n' "command" "seconds" "MiB/s" "vs cat" "peak RSS"
printf '%-34s %9s %10s %10s %12s\n' "cat FILE > /dev/null" "$t_cat" "$(mibs "$t_cat")" "1.000" "-"
printf '%-34s %9s %10s %10s %12s\n' "cat FILE | cat > /dev/null" "$t_floor" "$(mibs "$t_floor")" \
    "$(ratio "$t_floor" "$t_cat")" "-"
printf '%-34s %9s %10s %10s %9s MiB\n' "streamverify FILE" "$t_file" "$(mibs "$t_file")" \
    "$(ratio "$t_file" "$t_cat")" "$((rss_file / 1024))"
printf '%-34s %9s %10s %10s %12s\n' "streamverify - < FILE" "$t_read" "$(mibs "$t_read")" \
    "$(ratio "$t_read" "$t_cat")" "-"
printf '%-34s %9s %10s %10s %9s MiB\n' "cat FILE | streamverify -" "$t_pipe" "$(mibs "$t_pipe")" \
    "$(ratio "$t_pipe" "$t_cat")" "$((rss_pipe / 1024))"
printf '%-34s %9s %10s %10s %12s\n' "cat FILE | pipe_drain" "$t_ceiling" "$(mibs "$t_ceiling")" \
    "$(ratio "$t_ceiling" "$t_cat")" "-"
printf '%-34s %9s %10s %10s %9s MiB\n' "verify-stream-v2 -f libxl -i FILE" "$t_ref" "$(mibs "$t_ref")" \
    "$(ratio "$t_ref" "$t_cat")" "$((rss_ref / 1024))"

goal() {  # goal NAME AWK-CONDITION
    if awk "BEGIN { exit !($2) }"; then echo "PASS  $1"; else echo "MISS  $1"; fi
}
echo
goal "streamverify FILE at most 0.5x verify-stream-v2 (is $(ratio "$t_file" "$t_ref")x)" "$t_file <= 0.5 * $t_ref"
goal "streamverify FILE within 1.5x of cat (is $(ratio "$t_file" "$t_cat")x)" "$t_file <= 1.5 * $t_cat"
goal "streamverify - < FILE within 1.5x of cat (is $(ratio "$t_read" "$t_cat")x)" "$t_read <= 1.5 * $t_cat"
echo "      (from a pipe: $(ratio "$t_pipe" "$t_floor")x of the cat | cat floor, $(ratio "$t_pipe" "$t_ref")x of verify-stream-v2 on the file)"
goal "streamverify from a pipe at least 0.9x the speed of pipe_drain (is $(ratio "$t_ceiling" "$t_pipe")x)" "$t_ceiling >= 0.9 * $t_pipe"
goal "streamverify from a pipe: peak RSS under 64 MiB (is $((rss_pipe / 1024)) MiB)" "$rss_pipe < 65536"
