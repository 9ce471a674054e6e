#!/usr/bin/env bash
# Restore throughput: streamrestore reading a stream from a pipe into a new
# directory, side by side in one run with two copies of the same stream:
#   `cat stream | cat > file`  the same pipe into a file: the reader reads
#                              and writes every octet (two copies); the goal
#                              (issue 15) is at least its speed, since the
#                              pages go from the pipe into memory.raw with
#                              splice (one copy, through a relay pipe so that
#                              the feeding cat runs meanwhile);
#   `cat stream > file`        no pipe at all: coreutils 9 copies file to
#                              file with copy_file_range inside the kernel
#                              (one copy, no second process);
#   `cat stream | pipe_drain`  the feeder alone: a reader that splices the
#                              pipe to /dev/null and writes nothing, the
#                              ceiling of anything reading cat's pipe. Its
#                              ratio to `cat stream > file` is the most any
#                              restore from that pipe could reach there;
# with CPU time and peak RSS. Then the same for a checkpointed stream, whose
# later checkpoints go through the staging file and the commit journal.
#
#   bench/restore/run.sh BUILD_DIR [SIZE_MIB] [WORK_DIR]
#
# SPARSE=1 in the environment: three batches in four are zero pages, which
# the restore leaves as holes (gen_bench_stream --sparse); for the large
# runs (8 GiB) that show the cost grows with the size and no faster.
#
# BUILD_DIR holds tools/restore/streamrestore, bench/restore/gen_bench_stream
# and bench/walk/pipe_drain (make streamrestore gen_bench_stream pipe_drain).
# WORK_DIR (default: a new directory under $TMPDIR) needs room for about
# three times SIZE_MIB (a directory on tmpfs, e.g. /dev/shm, takes the disk's
# write-back out of the figures). The stream is read once beforehand, so every run reads
# it from the page cache; wall times are the best of three runs, CPU times
# (user + system, of streamrestore alone, not of the cat feeding it) and RSS
# come from the same runs.
set -euo pipefail

build=${1:?usage: run.sh BUILD_DIR [SIZE_MIB] [WORK_DIR]}
size=${2:-1024}
restore="$build/tools/restore/streamrestore"
gen="$build/bench/restore/gen_bench_stream"
drain="$build/bench/walk/pipe_drain"
for f in "$restore" "$gen" "$drain"; do
  [[ -x $f ]] || { echo "run.sh: $f is missing; build streamrestore, gen_bench_stream and pipe_drain" >&2; exit 2; }
done
[[ -x /usr/bin/time ]] || { echo "run.sh: needs GNU time (/usr/bin/time)" >&2; exit 2; }
work=${3:-$(mktemp -d "${TMPDIR:-/tmp}/xs-bench-restore.XXXXXX")}
trap 'rm -rf "$work"' EXIT

now() { date +%s.%N; }

# run3 NAME CMD: runs CMD (a shell command that writes GNU time's
# "user system maxrss" into $work/time) three times; sets NAME_wall to the
# best wall time and NAME_cpu / NAME_rss to the smallest CPU time and the
# largest RSS seen.
run3() {
  local name=$1 cmd=$2 best="" cpu="" rss=0
  for _ in 1 2 3; do
    rm -rf "$work/out" "$work/copy"
    local t0 t1
    t0=$(now)
    sh -c "$cmd"
    t1=$(now)
    local wall c r
    wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
    read -r c r < <(awk '{ print $1 + $2, $3 }' "$work/time")
    best=$(awk -v a="$best" -v b="$wall" 'BEGIN { if (a == "" || b < a) print b; else print a }')
    cpu=$(awk -v a="$cpu" -v b="$c" 'BEGIN { if (a == "" || b < a) print b; else print a }')
    (( r > rss )) && rss=$r
  done
  rm -rf "$work/out" "$work/copy"
  printf -v "${name}_wall" '%s' "$best"
  printf -v "${name}_cpu" '%s' "$cpu"
  printf -v "${name}_rss" '%s' "$rss"
}

measure() {  # measure LABEL STREAM
  local label=$1 stream=$2 bytes
  bytes=$(stat -c %s "$stream")
  cat "$stream" > /dev/null
  local T="/usr/bin/time -o $work/time -f '%U %S %M'"
  run3 copy "$T cat '$stream' > '$work/copy'"
  run3 pipe "cat '$stream' | $T cat > '$work/copy'"
  run3 drain "cat '$stream' | $T '$drain' 2> /dev/null"
  run3 rest "cat '$stream' | $T '$restore' -q - --out '$work/out'"
  awk -v label="$label" -v bytes="$bytes" -v tc="$copy_wall" -v tp="$pipe_wall" -v tr="$rest_wall" \
      -v td="$drain_wall" -v cp="$pipe_cpu" -v cr="$rest_cpu" -v rss="$rest_rss" 'BEGIN {
    mib = bytes / 1048576
    printf "%-34s %5d MiB | cat|cat > file %5.0f MiB/s (cpu %.2f s) | cat|streamrestore %5.0f MiB/s (cpu %.2f s) | ratio %.2f (goal 1.0) | cat > file %5.0f MiB/s, ratio %.2f (cat|pipe_drain %.2f: the ceiling) | peak RSS %.1f MiB\n",
      label, mib, mib / tp, cp, mib / tr, cr, tp / tr, mib / tc, tc / tr, tc / td, rss / 1024
  }'
}

echo "host: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
sparse=()
[[ ${SPARSE:-0} == 1 ]] && sparse=(--sparse)
"$gen" "${sparse[@]}" "$size" > "$work/plain.stream"
measure "plain HVM stream through a pipe" "$work/plain.stream"
rm -f "$work/plain.stream"

# A quarter of the memory in the initial copy, then 12 checkpoints that each
# resend 1/16 of it, for about SIZE_MIB in all.
dirty=$((size / 16))
"$gen" "${sparse[@]}" $((size / 4)) 13 "$dirty" > "$work/ckpt.stream"
measure "checkpointed, 12 x $dirty MiB staged" "$work/ckpt.stream"
