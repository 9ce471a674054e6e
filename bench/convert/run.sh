#!/usr/bin/env bash
# streamconv benchmark: converts 1 GiB legacy PV and HVM images file to file
# with Xen's convert-legacy-stream, with streamconv and, as the floor for
# writing the output, with `cp IN OUT`, in one run on a warm page cache; then
# measures streamconv's peak RSS reading from a pipe.
#
# Usage: bench/convert/run.sh BUILD_DIR [SIZE_MIB (1024)] [REPEATS (3)]
#
# BUILD_DIR is a CMake build tree with the streamconv and legacy_image_gen
# targets built. Xen's converter is fetched into BUILD_DIR/oracle when
# missing (tests/oracle/fetch-xen-tools.sh). Images and outputs go to
# BUILD_DIR/bench-convert (about 5 x SIZE of disk). Times are the best of
# REPEATS runs (wall clock, each run after `sync`); goals from the issue:
# streamconv <= 0.4x the reference, <= 1.25x cp, peak RSS < 64 MiB from a pipe.
set -euo pipefail

[ $# -ge 1 ] || { echo "usage: $0 BUILD_DIR [SIZE_MIB] [REPEATS]" >&2; exit 2; }
BUILD="$(cd -- "$1" && pwd)"
SIZE="${2:-1024}"
REPEATS="${3:-3}"
HERE="$(cd -- "$(dirname -- "$0")" && pwd)"
ROOT="$(cd -- "$HERE/../.." && pwd)"

STREAMCONV="$BUILD/tools/convert/streamconv"
GEN="$BUILD/bench/convert/legacy_image_gen"
REF="$BUILD/oracle/convert-legacy-stream"
for f in "$STREAMCONV" "$GEN"; do
    [ -x "$f" ] || { echo "run.sh: $f not built (make streamconv legacy_image_gen)" >&2; exit 2; }
done
[ -x "$REF" ] || "$ROOT/tests/oracle/fetch-xen-tools.sh" "$BUILD/oracle" >/dev/null
[ -x /usr/bin/time ] || { echo "run.sh: /usr/bin/time is needed for peak RSS" >&2; exit 2; }

WORK="$BUILD/bench-convert"
mkdir -p "$WORK"
cd "$WORK"

for guest in pv hvm; do
    img="$guest-$SIZE.img"
    [ -s "$img" ] || "$GEN" "$guest" "$SIZE" "$img"
done

# best_of CMD...: "WALL CPU" of the run with the best wall time out of
# REPEATS, in seconds (CPU = user + system); OUT removed before each run.
best_of() {
    local best="" cpu="" t c
    for _ in $(seq 1 "$REPEATS"); do
        rm -f out.tmp
        sync
        /usr/bin/time -f "%e %U %S" -o time.tmp "$@" >/dev/null 2>/dev/null
        t=$(tail -1 time.tmp | awk '{ print $1 }')
        c=$(tail -1 time.tmp | awk '{ printf "%.2f", $2 + $3 }')
        if [ -z "$best" ] || awk -v a="$t" -v b="$best" 'BEGIN { exit !(a < b) }'; then best="$t"; cpu="$c"; fi
    done
    rm -f out.tmp time.tmp
    echo "$best $cpu"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

echo "load average before the run: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs"
printf '%-5s %-24s %8s %8s %8s %8s %8s\n' guest tool wall_s cpu_s MB/s "x ref" "x cp"
status=0
for guest in pv hvm; do
    img="$guest-$SIZE.img"
    bytes=$(stat -c %s "$img")
    cat "$img" >/dev/null  # warm the page cache
    r_ref=$(best_of "$REF" -i "$img" -o out.tmp -w 64 -g "$guest")
    r_sc=$(best_of "$STREAMCONV" -q -w 64 -g "$guest" "$img" out.tmp)
    r_cp=$(best_of cp "$img" out.tmp)
    r_cat=$(best_of sh -c "cat '$img' > /dev/null")
    t_ref=${r_ref%% *}; t_sc=${r_sc%% *}; t_cp=${r_cp%% *}
    for row in "convert-legacy-stream:$r_ref" "streamconv:$r_sc" "cp IN OUT:$r_cp" "cat IN > /dev/null:$r_cat"; do
        name="${row%%:*}"; t="${row##*:}"; c="${t##* }"; t="${t%% *}"
        printf '%-5s %-24s %8s %8s %8s %8s %8s\n' "$guest" "$name" "$t" "$c" \
            "$(awk -v b="$bytes" -v t="$t" 'BEGIN { if (t > 0) printf "%.0f", b / t / 1e6; else print "inf" }')" \
            "$(ratio "$t" "$t_ref")" "$(ratio "$t" "$t_cp")"
    done
    # Same bytes as the reference.
    "$REF" -i "$img" -o ref.out -w 64 -g "$guest"
    "$STREAMCONV" -q -w 64 -g "$guest" "$img" sc.out
    if cmp -s ref.out sc.out; then echo "$guest: output identical to the reference"; else echo "$guest: OUTPUT DIFFERS"; status=1; fi
    rm -f ref.out sc.out
    # Peak RSS from a pipe (output to a pipe as well).
    rss=$(cat "$img" | { /usr/bin/time -f "%M" "$STREAMCONV" -q -f libxl - - >/dev/null; } 2>&1 | tail -1)
    echo "$guest: peak RSS from a pipe: $rss KiB ($(awk -v k="$rss" 'BEGIN { printf "%.1f", k / 1024 }') MiB)"
    r_ref=$(ratio "$t_sc" "$t_ref"); r_cp=$(ratio "$t_sc" "$t_cp")
    awk -v a="$r_ref" -v b="$r_cp" -v m="$rss" -v g="$guest" 'BEGIN {
        printf "%s: goals: <= 0.4x reference: %s (%s); <= 1.25x cp: %s (%s); RSS < 64 MiB: %s\n", g,
            (a <= 0.4 ? "met" : "MISSED"), a, (b <= 1.25 ? "met" : "MISSED"), b, (m < 65536 ? "met" : "MISSED") }'
done
exit $status
