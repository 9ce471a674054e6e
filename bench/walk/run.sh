#!/usr/bin/env bash
# Record-walk benchmark: libstream against `cat` on a generated 1 GiB stream.
#
# Usage: bench/walk/run.sh [BUILD_DIR] [SIZE]
#   BUILD_DIR  a configured build tree with streamgen and bench_walk built
#              (default: build); SIZE the guest memory, e.g. 1G (default)
# Env:  BENCH_RUNS  timed runs per command (default 5)
#       TMPDIR      where the stream is written (it is removed afterwards)
#
# In one run, on the same (page-cached) file, it times
#   cat FILE > /dev/null          the baseline: read every byte, do nothing
#   bench_walk FILE               libstream over the mapped file
#   cat FILE | bench_walk -       libstream over a pipe (bounded window),
#                                 touching every page
#   cat FILE | bench_walk --skip-pages -
#                                 the walk a verifier makes: entries read,
#                                 page bodies spliced to /dev/null
#   cat FILE | cat > /dev/null    the pipe floor: the same pipe, a reader that
#                                 only copies the bytes out (no parsing)
#   cat FILE | pipe_drain         the pipe ceiling: a reader that splices the
#                                 bytes to /dev/null without copying them, so
#                                 no reader of that pipe can be faster
# with hyperfine when installed (else a plain loop), reports each walk's
# speed as a ratio of cat's, and the peak RSS of each walk measured by
# GNU time. Goals (issue 2): file walk >= 1.0x cat, pipe walk >= 0.8x cat,
# pipe peak RSS < 64 MiB; (issue 15) the skipping pipe walk >= 0.9x the
# speed of pipe_drain.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
build="${1:-$here/../../build}"
size="${2:-1G}"
runs="${BENCH_RUNS:-5}"
build="$(cd "$build" && pwd)"
streamgen="$build/tools/gen/streamgen"
walker="$build/bench/walk/bench_walk"
drain="$build/bench/walk/pipe_drain"
for b in "$streamgen" "$walker" "$drain"; do
    [ -x "$b" ] || { echo "run.sh: $b not built (make streamgen bench_walk pipe_drain)" >&2; exit 2; }
done
gnutime=/usr/bin/time
[ -x "$gnutime" ] || { echo "run.sh: GNU time missing (apt-get install time)" >&2; exit 2; }

work="$(mktemp -d "${TMPDIR:-/tmp}/xenstream-bench-walk.XXXXXX")"
trap 'rm -rf -- "$work"' EXIT
file="$work/stream.xen"

echo "== generating a $size HVM stream (libxl v2 + libxc v3, 1024-page batches)"
"$streamgen" --size "$size" --emulator-context "$file"
bytes=$(stat -c %s "$file")
echo "   $file: $bytes bytes"
"$walker" "$file"  # checks the stream walks cleanly, and warms the page cache
cat "$file" >/dev/null

cat_cmd="cat '$file' > /dev/null"
file_cmd="'$walker' '$file'"
pipe_cmd="cat '$file' | '$walker' -"
skip_cmd="cat '$file' | '$walker' --skip-pages -"
floor_cmd="cat '$file' | cat > /dev/null"
ceiling_cmd="cat '$file' | '$drain'"

declare -A mean
if command -v hyperfine >/dev/null 2>&1; then
    echo "== timing with $(hyperfine --version), $runs runs each"
    hyperfine --style basic --warmup 1 --runs "$runs" --export-json "$work/times.json" \
        -n cat "$cat_cmd" -n file "$file_cmd 2>/dev/null" -n pipe "$pipe_cmd 2>/dev/null" -n skip "$skip_cmd 2>/dev/null" \
        -n floor "$floor_cmd" -n ceiling "$ceiling_cmd 2>/dev/null"
    while read -r name value; do mean[$name]=$value; done < <(python3 - "$work/times.json" <<'PY'
import json, sys
for r in json.load(open(sys.argv[1]))["results"]:
    print(r["command"], r["mean"])
PY
)
else
    echo "== timing with a shell loop (hyperfine not installed), $runs runs each"
    for name in cat file pipe skip floor ceiling; do
        case $name in
            cat) cmd=$cat_cmd ;;
            file) cmd="$file_cmd 2>/dev/null" ;;
            pipe) cmd="$pipe_cmd 2>/dev/null" ;;
            skip) cmd="$skip_cmd 2>/dev/null" ;;
            floor) cmd=$floor_cmd ;;
            ceiling) cmd="$ceiling_cmd 2>/dev/null" ;;
        esac
        start=$(date +%s.%N)
        for _ in $(seq "$runs"); do bash -c "$cmd"; done
        end=$(date +%s.%N)
        mean[$name]=$(python3 -c "print(($end - $start) / $runs)")
        echo "$name: ${mean[$name]} s"
    done
fi

rss() {  # rss CMD... -> peak RSS in KiB of the last command of a pipeline
    "$gnutime" -f '%M' -o "$work/rss" "$@" 2>/dev/null
    cat "$work/rss"
}
rss_file=$(rss "$walker" "$file")
rss_pipe=$(cat "$file" | "$gnutime" -f '%M' -o "$work/rss" "$walker" - 2>/dev/null; cat "$work/rss")
rss_skip=$(cat "$file" | "$gnutime" -f '%M' -o "$work/rss" "$walker" --skip-pages - 2>/dev/null; cat "$work/rss")

python3 - "$bytes" "${mean[cat]}" "${mean[file]}" "${mean[pipe]}" "${mean[floor]}" "${mean[ceiling]}" \
    "$rss_file" "$rss_pipe" "${mean[skip]}" "$rss_skip" <<'PY'
import sys
size, t_cat, t_file, t_pipe, t_floor, t_ceiling = int(sys.argv[1]), *map(float, sys.argv[2:7])
rss_file, rss_pipe = int(sys.argv[7]), int(sys.argv[8])
t_skip, rss_skip = float(sys.argv[9]), int(sys.argv[10])
mb = size / 1e6
def row(name, t, goal=None):
    ratio = t_cat / t
    verdict = "" if goal is None else ("  goal >= %.1fx: %s" % (goal, "met" if ratio >= goal else "MISSED"))
    print("%-28s %8.3f s  %7.0f MB/s  %5.2fx cat%s" % (name, t, mb / t, ratio, verdict))
print()
print("== results (%d bytes, mean of runs)" % size)
row("cat FILE > /dev/null", t_cat)
row("bench_walk FILE", t_file, 1.0)
row("cat FILE | bench_walk -", t_pipe, 0.8)
row("cat FILE | bench_walk --skip-pages -", t_skip)
row("cat FILE | cat > /dev/null", t_floor)
row("cat FILE | pipe_drain", t_ceiling)
print("pipe walk vs pipe floor:      %5.2fx (a reader that only copies the bytes out)" % (t_floor / t_pipe))
print("pipe walk vs pipe ceiling:    %5.2fx (1.00 = as fast as any reader of this pipe can be;"
      % (t_ceiling / t_pipe))
print("                                     the ceiling is %.2fx cat: the most a pipe goal can ask)"
      % (t_cat / t_ceiling))
print("skipping walk vs ceiling:     %5.2fx  goal >= 0.9x: %s"
      % (t_ceiling / t_skip, "met" if t_ceiling / t_skip >= 0.9 else "MISSED"))
print("peak RSS, bench_walk FILE:   %6.1f MiB" % (rss_file / 1024))
print("peak RSS, bench_walk --skip-pages - (pipe): %4.1f MiB" % (rss_skip / 1024))
print("peak RSS, bench_walk - (pipe): %4.1f MiB  goal < 64 MiB: %s"
      % (rss_pipe / 1024, "met" if rss_pipe < 64 * 1024 else "MISSED"))
PY
