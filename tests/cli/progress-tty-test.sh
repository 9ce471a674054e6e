#!/usr/bin/env bash
# progress-tty-test.sh WORK STREAMGEN STREAMVERIFY STREAMRESTORE STREAMSAVE STREAMCONV LEGACY_GEN
# Every tool draws a progress line when stderr is a terminal (script(1)
# gives it a pty) and the input is slow enough to be worth one, draws
# nothing with -q, and draws nothing when stderr is not a terminal.
# Inputs arrive through a pipe that stalls for a moment half-way, so that
# each tool runs long enough for its first redraw whatever the machine.
set -euo pipefail
work=$1 gen=$2 verify=$3 restore=$4 save=$5 conv=$6 legacy_gen=$7
rm -rf "$work" && mkdir -p "$work"
fail=0
bad() { echo "progress-tty-test: $*" >&2; fail=1; }

"$gen" --size 64M --container xl "$work/s.xen" >/dev/null
"$restore" "$work/s.xen" --out "$work/dir" -q
"$legacy_gen" pv 64 "$work/legacy.img" >/dev/null

# Commands, each reading a slow pipe or writing into one. {Q} is where -q goes.
slow_in() { echo "{ head -c 30000000 $1; sleep 1.2; tail -c +30000001 $1; }"; }
slow_out="{ head -c 30000000 >/dev/null; sleep 1.2; cat >/dev/null; }"
declare -A cmds=(
  [streamverify]="$(slow_in "$work/s.xen") | $verify {Q} -"
  [streamrestore]="$(slow_in "$work/s.xen") | $restore {Q} - --out $work/out-\$\$"
  [streamconv]="$(slow_in "$work/legacy.img") | $conv {Q} - $work/conv-\$\$.xen"
  [streamsave]="$save {Q} $work/dir | $slow_out"
  [streamgen]="$gen {Q} --size 64M - | $slow_out"
)

for tool in "${!cmds[@]}"; do
  cmd=${cmds[$tool]}
  # On a terminal: a progress line, redrawn in place, and erased at the end.
  script -qefc "${cmd//\{Q\}/}" "$work/$tool.tty" >/dev/null </dev/null || bad "$tool failed on a terminal"
  grep -q $'\r'"$tool: " "$work/$tool.tty" || bad "$tool drew no progress line on a terminal"
  grep -q $'\r\e\\[K' "$work/$tool.tty" || bad "$tool did not erase its progress line"
  # With -q on a terminal: none.
  script -qefc "${cmd//\{Q\}/-q}" "$work/$tool.q.tty" >/dev/null </dev/null || bad "$tool -q failed"
  ! grep -q "$tool: " "$work/$tool.q.tty" || bad "$tool -q still printed: $(tr '\r' '\n' <"$work/$tool.q.tty" | head -3)"
  # Not a terminal: no progress line (messages such as streamconv's "detected
  # ..." are diagnostics and stay).
  bash -c "${cmd//\{Q\}/}" >/dev/null 2>"$work/$tool.err" </dev/null || bad "$tool failed without a terminal"
  ! grep -q $'\r' "$work/$tool.err" || bad "$tool drew progress on a non-terminal stderr: $(head -c 200 "$work/$tool.err" | tr '\r' '|')"
done
((fail == 0)) && echo "progress-tty-test: ${#cmds[@]} tools draw on a terminal, and only there"
exit $fail
