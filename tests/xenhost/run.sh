#!/usr/bin/env bash
# Boot the nested Xen host once and run the scenario in dom0; the results
# land in BUILD_DIR/tests/xenhost/out (results.txt, the images, logs) for the
# CTest checks (check.sh). Prints how long each phase took and keeps the table
# in out/timings.txt. Exit 0 when QEMU ran the scenario to its end; any
# failure to fetch, build, boot or finish is exit 1.
#
# Usage: tests/xenhost/run.sh BUILD_DIR
# Env:   XENHOST_SMP       vCPUs of the QEMU machine (default 1)
#        XENHOST_TIMEOUT   seconds before QEMU is killed (default 2100)
set -euo pipefail

die() { echo "xenhost: error: $*" >&2; exit 1; }
[ $# -eq 1 ] || { echo "usage: $0 BUILD_DIR" >&2; exit 2; }
HERE="$(cd -- "$(dirname -- "$0")" && pwd)"
BUILD="$(cd -- "$1" && pwd)"
BASE="$BUILD/tests/xenhost"
CACHE="$BASE/cache"
IMAGES="$BASE/images"
OUT="$BASE/out"
SMP="${XENHOST_SMP:-1}"
mkdir -p "$BASE"

t0=$SECONDS
declare -a TIMES=()
mark() { TIMES+=("$1|$2"); printf 'xenhost: %-28s %5ss\n' "$1" "$2" >&2; }

# ---- packages and images (cached in the build tree) ---------------------------
s=$SECONDS
"$HERE/fetch.sh" "$CACHE" || die "fetching the Debian packages failed"
mark "fetch packages" $((SECONDS - s))
s=$SECONDS
"$HERE/mkimage.sh" "$CACHE" "$IMAGES" "$BUILD" || die "building the dom0/domU images failed"
mark "build initramfs images" $((SECONDS - s))

# ---- the output disk: an empty ext2 file system, read back with debugfs -------
for t in qemu-system-x86_64 mke2fs debugfs timeout; do
    command -v "$t" >/dev/null 2>&1 || die "'$t' not found (scripts/install-deps.sh installs it)"
done
rm -rf -- "$OUT" "$BASE/disk.img"
truncate -s 3G "$BASE/disk.img"
mke2fs -q -F -t ext2 -L xenhost "$BASE/disk.img" || die "mke2fs failed"

# ---- boot --------------------------------------------------------------------
s=$SECONDS
SERIAL="$BASE/serial.log"
set +e
timeout -k 10 "${XENHOST_TIMEOUT:-2100}" qemu-system-x86_64 \
    -accel tcg -cpu qemu64,+svm,+npt -m 1536 -smp "$SMP" \
    -nographic -nodefaults -serial "file:$SERIAL" -no-reboot \
    -kernel "$IMAGES/xen.elf" \
    -append "console=com1 com1=115200 dom0_mem=768M,max:768M dom0_max_vcpus=$SMP loglvl=all guest_loglvl=all" \
    -initrd "$IMAGES/vmlinuz console=hvc0 quiet panic=1,$IMAGES/dom0.cpio.gz" \
    -drive "file=$BASE/disk.img,if=virtio,format=raw" </dev/null
qrc=$?
set -e
qemu_secs=$((SECONDS - s))
[ $qrc -eq 124 ] && echo "xenhost: QEMU was killed after ${XENHOST_TIMEOUT:-2100}s" >&2
grep -a -E 'XENHOST-(PHASE|FATAL)' "$SERIAL" >&2 || true

# ---- results out ---------------------------------------------------------------
s=$SECONDS
mkdir -p "$OUT"
debugfs -R "rdump / $OUT" "$BASE/disk.img" >/dev/null 2>"$BASE/debugfs.log" \
    || die "debugfs could not read the output disk"
rm -f -- "$BASE/disk.img"
mark "read results back" $((SECONDS - s))

# Phase times inside dom0 (its uptime at each XENHOST-PHASE line).
prev=""; prev_t=0
while read -r _ name at; do
    at=${at%.*}
    if [ -n "$prev" ]; then mark "dom0: $prev" $((at - prev_t)); fi
    prev=$name; prev_t=$at
done < <(grep -a -o 'XENHOST-PHASE [^ ]* [0-9.]*' "$SERIAL")
mark "QEMU start to power-off" "$qemu_secs"
mark "total" $((SECONDS - t0))
printf '%s\n' "${TIMES[@]}" >"$OUT/timings.txt"
cp "$SERIAL" "$OUT/serial.log"

grep -a -q 'XENHOST-FATAL' "$SERIAL" && die "dom0 failed: $(grep -a 'XENHOST-FATAL' "$SERIAL" | head -n1)"
[ $qrc -eq 0 ] || die "QEMU exited with $qrc"
grep -a -q 'XENHOST-PHASE done' "$SERIAL" || die "dom0 did not reach the end of its init (see $OUT/serial.log)"
[ -s "$OUT/results.txt" ] || die "no results.txt on the output disk"
grep -q '^phase.end ' "$OUT/results.txt" || die "the scenario did not reach its end (see $OUT/scenario.log)"
# Keep xl's images as regression inputs across runs (out/ is remade each boot).
mkdir -p "$BASE/regress"
for f in "$OUT"/img/pv.save "$OUT"/img/pv-c.save "$OUT"/img/pvh.save "$OUT"/img/pvh-c.save \
         "$OUT"/img/hvm.save "$OUT"/img/hvm-c.save; do
    [ -s "$f" ] && cp -f "$f" "$BASE/regress/"
done
echo "xenhost: done; results in $OUT" >&2
