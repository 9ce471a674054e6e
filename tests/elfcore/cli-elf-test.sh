#!/bin/bash
# streamrestore --elf end to end: restore a generated stream, write the ELF
# core beside DIR and alone (no --out), and check it with readelf and by
# comparing every PT_LOAD with memory.raw.
#   cli-elf-test.sh STREAMGEN STREAMRESTORE WORKDIR
set -euo pipefail
gen=$1 restore=$2 work=$3
rm -rf "$work" && mkdir -p "$work" && cd "$work"
"$gen" --guest hvm --pages 300 s.xen
"$restore" -q s.xen --out d --elf core.elf
"$restore" -q s.xen --elf alone.elf
cmp core.elf alone.elf
readelf -h core.elf | grep -q 'CORE (Core file)'
loads=$(readelf -lW core.elf | grep -c ' LOAD ')
[[ $loads -ge 1 ]] || { echo "no PT_LOAD in core.elf" >&2; exit 1; }
# Each LOAD: file offset, paddr, filesz; its bytes must equal memory.raw at paddr.
readelf -lW core.elf | awk '$1 == "LOAD" {print $2, $4, $5}' | while read -r off paddr size; do
  cmp <(tail -c +$((off + 1)) core.elf | head -c $((size))) \
      <(tail -c +$((paddr + 1)) d/memory.raw | head -c $((size)))
done
ls -d alone.elf.restore-* 2>/dev/null && { echo "temporary DIR left behind" >&2; exit 1; }
echo "ok: $loads PT_LOAD segments match memory.raw"
