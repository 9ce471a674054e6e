#!/bin/bash
# A full disk under each tool (issue 6, faults (2)): the file-size limit
# (RLIMIT_FSIZE, with SIGXFSZ ignored so that write() fails with EFBIG as on
# a full file system) stops the output part-way. Each tool must exit 2 with
# a clear message and leave nothing that looks finished.
#   tool-full-disk-test.sh STREAMGEN STREAMRESTORE STREAMSAVE STREAMCONV LEGACY_GEN WORKDIR
set -u
gen=$1 restore=$2 save=$3 conv=$4 legacy=$5 work=$6
rm -rf "$work" && mkdir -p "$work" && cd "$work" || exit 2
fail=0
limited() { (trap '' XFSZ; ulimit -f 1024; exec "$@"); }  # 1 MiB per file
check() {  # NAME EXPECTED_RC RC STDERR_FILE
  if [[ $3 -ne $2 ]]; then echo "FAIL: $1: exit $3, expected $2"; cat "$4"; fail=1; return; fi
  if ! grep -qi 'too large\|no space\|failed' "$4"; then echo "FAIL: $1: no clear message"; cat "$4"; fail=1; return; fi
  echo "ok: $1: $(tail -1 "$4")"
}

"$gen" --guest hvm --pages 2048 --emulator-context s.xen || exit 2     # 8 MiB of pages
"$restore" -q s.xen --out full || exit 2
"$legacy" hvm 8 legacy.img || exit 2

limited "$gen" --guest hvm --pages 2048 g.xen 2>g.err; check streamgen 2 $? g.err
[[ -e g.xen ]] && { echo "FAIL: streamgen left g.xen"; fail=1; }

limited "$conv" legacy.img c.xen 2>c.err; check streamconv 2 $? c.err
[[ -e c.xen ]] && { echo "FAIL: streamconv left c.xen"; fail=1; }

limited "$save" full -o v.xen 2>v.err; check streamsave 2 $? v.err
[[ -e v.xen ]] && { echo "FAIL: streamsave left v.xen"; fail=1; }

limited "$restore" -q s.xen --out r 2>r.err; check streamrestore 2 $? r.err
[[ -e r/manifest.json ]] && { echo "FAIL: streamrestore left r/manifest.json"; fail=1; }
ls -a . | grep -q '\.partial-' && { echo "FAIL: a temporary output was left behind"; ls -a; fail=1; }
exit $fail
