#!/usr/bin/env bash
# streamsave throughput: packing a restored domain directory (1 GiB by
# default) into a stream file, side by side in one run with
# `cat memory.raw > file` (goal: streamsave within 1.5x of the copy's time),
# plus peak RSS; then the same with --zstd, and into a pipe read by
# `cat > /dev/null` beside `cat memory.raw | cat > /dev/null` (goal, issue
# 15: at least 0.9x of that pipe's speed; the pages go from memory.raw into
# the pipe with splice).
#
#   bench/save/run.sh BUILD_DIR [SIZE_MIB] [WORK_DIR]
#
# BUILD_DIR holds tools/save/streamsave, tools/restore/streamrestore and
# tools/gen/streamgen. WORK_DIR (default: a new directory under $TMPDIR)
# needs room for about three times SIZE_MIB. memory.raw is in the page cache
# for every run; each figure is the best of three.
set -euo pipefail

build=${1:?usage: run.sh BUILD_DIR [SIZE_MIB] [WORK_DIR]}
size=${2:-1024}
save="$build/tools/save/streamsave"
restore="$build/tools/restore/streamrestore"
gen="$build/tools/gen/streamgen"
for f in "$save" "$restore" "$gen"; do
  [[ -x $f ]] || { echo "run.sh: $f is missing; build streamsave streamrestore streamgen" >&2; exit 2; }
done
[[ -x /usr/bin/time ]] || { echo "run.sh: needs GNU time (/usr/bin/time)" >&2; exit 2; }
work=${3:-$(mktemp -d "${TMPDIR:-/tmp}/xs-bench-save.XXXXXX")}
trap 'rm -rf "$work"' EXIT

now() { date +%s.%N; }
mbps() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.0f", b / 1048576 / s }'; }
best_of() {
  local best=""
  for _ in 1 2 3; do
    rm -f "$work/out" "$work/copy"
    local t0 t1
    t0=$(now)
    "$@"
    t1=$(now)
    best=$(awk -v a="$best" -v b="$(awk -v x="$t0" -v y="$t1" 'BEGIN { print y - x }')" \
      'BEGIN { if (a == "" || b < a) print b; else print a }')
  done
  echo "$best"
}

"$gen" --size "${size}M" --container xl "$work/in.xen" >/dev/null
"$restore" -q "$work/in.xen" --out "$work/dom"
rm -f "$work/in.xen"
mem="$work/dom/memory.raw"
bytes=$(stat -c %s "$mem")
cat "$mem" > /dev/null

t_cat=$(best_of sh -c "cat '$mem' > '$work/copy'")
report() {  # LABEL SECONDS [RSS]
  printf '%-28s %6d MiB  cat %5s MiB/s  streamsave %5s MiB/s  time ratio %s  peak RSS %s KiB\n' \
    "$1" $((bytes / 1048576)) "$(mbps "$bytes" "$t_cat")" "$(mbps "$bytes" "$2")" \
    "$(awk -v a="$t_cat" -v b="$2" 'BEGIN { printf "%.2f", b / a }')" "$3"
}
t=$(best_of "$save" "$work/dom" -o "$work/out")
rss=$( { /usr/bin/time -f '%M' "$save" "$work/dom" -o "$work/out"; } 2>&1 | tail -1)
report "streamsave -o file" "$t" "$rss"
t=$(best_of sh -c "'$save' '$work/dom' | cat > '$work/out'")
report "streamsave | cat > file" "$t" "-"
t=$(best_of "$save" "$work/dom" --zstd -o "$work/out")
report "streamsave --zstd -o file" "$t" "-"
echo "host: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "goal: streamsave -o file within 1.5x of cat's time (time ratio <= 1.5)"
t_pipe=$(best_of sh -c "cat '$mem' | cat > /dev/null")
t=$(best_of sh -c "'$save' '$work/dom' -o - | cat > /dev/null")
printf '%-28s %6d MiB  cat memory.raw | cat %5s MiB/s  streamsave -o - | cat %5s MiB/s  speed ratio %s (goal >= 0.9)\n' \
  "into a pipe" $((bytes / 1048576)) "$(mbps "$bytes" "$t_pipe")" "$(mbps "$bytes" "$t")" \
  "$(awk -v a="$t_pipe" -v b="$t" 'BEGIN { printf "%.2f", a / b }')"
