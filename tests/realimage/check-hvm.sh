#!/usr/bin/env bash
# The real HVM image of testdata/xen-4.17 (xl save, Xen 4.17, QEMU 7.2's
# device state): streamverify says valid with no warning and describes it
# right; streamrestore restores it (zstd input, as stored) to memory that
# holds SeaBIOS's banner; streamsave writes it back, and the re-save differs
# from xl's image only in the order of the HVM_PARAMS pairs (checked by
# tests/xenhost/resave_diff.py, a walker of its own).
#   check-hvm.sh IMAGE.zst WORKDIR STREAMVERIFY STREAMRESTORE STREAMSAVE RESAVE_DIFF
set -uo pipefail
img=$1 work=$2 verify=$3 restore=$4 save=$5 diff=$6
failures=0
ok() { echo "ok: $*"; }
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
rm -rf -- "$work" && mkdir -p "$work"

if "$verify" "$img" >"$work/verify.txt" 2>&1; then ok "streamverify: exit 0"; else fail "streamverify: exit $?"; fi
if grep -q "^warning:" "$work/verify.txt"; then fail "streamverify warns: $(grep "^warning:" "$work/verify.txt" | head -3)"; else
    ok "streamverify: no warning (QEMU 7.2's device state walks cleanly)"; fi
"$verify" --json "$img" >"$work/verify.json" 2>/dev/null
if python3 - "$work/verify.json" <<'PY'; then ok "streamverify --json: HVM, xs-hvm, 1 vCPU, 64 MiB of NOTAB pages, EMULATOR_CONTEXT"; else fail "streamverify --json"; fi
import json, sys
doc = json.load(open(sys.argv[1]))
s = doc["summary"]
errors = []
def want(what, got, expected):
    if got != expected:
        errors.append(f"{what}: {got!r}, expected {expected!r}")
want("valid", doc["valid"], True)
want("warnings", doc.get("warnings", 0), 0)
want("guest_type", s["guest_type"], "x86 HVM")
cfg = s["config"] or {}
want("config.name", cfg.get("name"), "xs-hvm")
want("config.guest_type", cfg.get("guest_type"), "hvm")
want("config.max_vcpus", cfg.get("max_vcpus"), 1)
want("container.kind", (s["container"] or {}).get("kind"), "xl")
want("hvm_context.vcpus", (s["hvm_context"] or {}).get("vcpus"), 1)
by_type = s["pages"]["by_type"]
for t, n in by_type.items():
    if t not in ("NOTAB", "XTAB") and n:
        errors.append(f"{n} {t} pages in an HVM guest")
if by_type.get("NOTAB", 0) < 64 * 256 * 9 // 10:
    errors.append(f"only {by_type.get('NOTAB', 0)} NOTAB pages for a 64 MiB guest")
kinds = {e["record"] for e in s["emulators"]}
if "EMULATOR_CONTEXT" not in kinds:
    errors.append(f"no EMULATOR_CONTEXT (emulator records: {sorted(kinds)})")
for e in errors:
    print("    " + e)
sys.exit(1 if errors else 0)
PY

if "$restore" -q "$img" --out "$work/dir"; then ok "streamrestore: exit 0"; else fail "streamrestore: exit $?"; fi
if grep -a -q -F "SeaBIOS (version" "$work/dir/memory.raw" 2>/dev/null; then ok "memory.raw holds SeaBIOS's banner"; else
    fail "memory.raw lacks \"SeaBIOS (version\""; fi

zstd -q -d -c "$img" >"$work/xl.save" || fail "zstd -d of the image"
if "$save" -q "$work/dir" -o "$work/ours.save"; then ok "streamsave DIR: exit 0"; else fail "streamsave: exit $?"; fi
if "$verify" -q "$work/ours.save"; then ok "the re-save verifies"; else fail "the re-save does not verify: exit $?"; fi
if python3 "$diff" "$work/xl.save" "$work/ours.save" >"$work/diff.txt" 2>&1; then
    ok "the re-save equals xl's image but for the order of HVM_PARAMS: $(tr '\n' ' ' <"$work/diff.txt" | head -c 300)"
else
    fail "the re-save differs from xl's image: $(head -n 10 "$work/diff.txt")"
fi
if "$restore" -q "$work/ours.save" --out "$work/dir2" && cmp -s "$work/dir/memory.raw" "$work/dir2/memory.raw"; then
    ok "the re-save restores to the same memory"; else fail "the re-save restores to other memory"; fi

if [ "$failures" -gt 0 ]; then echo "$failures check(s) failed; files in $work"; exit 1; fi
rm -rf -- "$work"
exit 0
