#!/bin/bash
# streamsave | ssh | streamrestore end to end through the real sshd started by
# sshd-fixture.sh. Usage:
#   ssh-pipeline-test.sh STATEDIR STREAMSAVE STREAMRESTORE STREAMGEN WORKDIR
# Cases: plain and zstd pipelines restore the same domain; a sender killed in
# the middle of a checkpointed stream leaves the receiver at the last complete
# checkpoint with exit 3 (a throttled streamsave killed inside checkpoint 3);
# killing the ssh client does the same.
set -u
state=$1 save=$2 restore=$3 gen=$4 work=$5
. "$state/env"
fail=0
ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; fail=1; }
SSH=(ssh -p "$PORT" -i "$KEY" -o BatchMode=yes -o StrictHostKeyChecking=no
     -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR "$(id -un)@127.0.0.1")

rm -rf "$work"
mkdir -p "$work"
cd "$work" || exit 2

same_domain() {  # DIR1 DIR2: every file but manifest.json byte-equal
  local a=$1 b=$2 f
  [ "$(cd "$a" && ls)" = "$(cd "$b" && ls)" ] || return 1
  for f in $(cd "$a" && ls); do
    [ "$f" = manifest.json ] && continue
    cmp -s "$a/$f" "$b/$f" || return 1
  done
}

# A domain to send: generated, restored locally.
"$gen" --container xl --emulator-context --xenstore-data --pages 2048 src.xen || exit 2
"$restore" -q src.xen --out d0 || exit 2

# 1. plain pipeline
"$save" d0 | "${SSH[@]}" "$restore" -q - --out "$work/r1"
rc=$?
if [ $rc -eq 0 ] && same_domain d0 r1; then ok "plain pipeline"; else bad "plain pipeline (exit $rc)"; fi

# 2. zstd on the wire; the receiver detects it
"$save" d0 --zstd | "${SSH[@]}" "$restore" -q - --out "$work/r2"
rc=$?
if [ $rc -eq 0 ] && same_domain d0 r2 && grep -q '"compressed": true' r2/manifest.json; then
  ok "zstd pipeline"
else
  bad "zstd pipeline (exit $rc)"
fi

# Checkpointed stream d0 -> d1 -> d2 (pages changed in each).
cp -a d0 d1
printf 'checkpoint-one' | dd of=d1/memory.raw bs=1 seek=$((4096 * 11 + 5)) conv=notrunc status=none
cp -a d1 d2
printf 'checkpoint-two' | dd of=d2/memory.raw bs=1 seek=$((4096 * 1500)) conv=notrunc status=none
# Checkpoint 3 resends 1024 pages (4 MiB): long enough to kill its sender inside it.
head -c $((4096 * 1024)) /dev/urandom | dd of=d2/memory.raw bs=4096 seek=512 conv=notrunc status=none
"$save" d0 d1 --checkpointed -o two.xen || exit 2
"$save" d0 d1 d2 --checkpointed -o three.xen || exit 2
two=$(stat -c %s two.xen)
three=$(stat -c %s three.xen)
cmp -s -n "$two" two.xen three.xen || bad "a checkpointed stream is not a prefix of a longer one"
cut=$(( two + (three - two) / 2 ))

# 3. whole checkpointed stream: the receiver fails over to checkpoint 3 (no END)
"$save" d0 d1 d2 --checkpointed | "${SSH[@]}" "$restore" -q - --out "$work/r3"
rc=$?
if [ $rc -eq 3 ] && cmp -s r3/memory.raw d2/memory.raw; then ok "checkpointed pipeline"; else bad "checkpointed pipeline (exit $rc)"; fi

wait_committed() {  # DIR N: until DIR's manifest says N checkpoints are committed
  local i=0
  while ! grep -qs "\"committed\": $2" "$1/manifest.json" && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
}

# 4. the sender dies (SIGKILL) in the middle of checkpoint 3: a real
# streamsave, throttled by a reader that passes 4 MiB/s on to ssh.
throttle() {
  python3 -c '
import os, sys, time
rate, sent, t0 = 4 << 20, 0, time.monotonic()
while True:
    b = os.read(0, 65536)
    if not b:
        break
    os.write(1, b)
    sent += len(b)
    time.sleep(max(0, sent / rate - (time.monotonic() - t0)))
'
}
mkfifo f4
throttle < f4 | "${SSH[@]}" "$restore" -q - --out "$work/r4" &
client=$!
"$save" d0 d1 d2 --checkpointed > f4 &
sender=$!
wait_committed r4 2
if kill -9 "$sender" 2>/dev/null; then killed=yes; else killed=no; fi
wait "$sender" 2>/dev/null
src=$?
wait "$client"
rc=$?
if [ "$killed" = yes ] && [ "$src" = 137 ] && [ "$rc" = 3 ] && cmp -s r4/memory.raw d1/memory.raw &&
   grep -q '"committed": 2' r4/manifest.json && grep -q '"status": "failover"' r4/manifest.json; then
  ok "streamsave killed mid-checkpoint 3: exit 3, failover to checkpoint 2"
else
  bad "streamsave killed mid-checkpoint (killed $killed, sender $src, exit $rc)"
fi

# 5. the network dies: SIGKILL the ssh client mid-checkpoint; the remote
# streamrestore sees its input end and keeps checkpoint 2.
mkfifo f5
"${SSH[@]}" "$restore" -q - --out "$work/r5" < f5 &
client=$!
( head -c "$cut" three.xen; exec sleep 60 ) > f5 &
sender=$!
wait_committed r5 2
kill -9 "$client"
wait "$client" 2>/dev/null
i=0
while ! grep -qs '"status": "failover"' r5/manifest.json && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
kill -9 "$sender" 2>/dev/null
wait "$sender" 2>/dev/null
if grep -qs '"status": "failover"' r5/manifest.json && cmp -s r5/memory.raw d1/memory.raw &&
   grep -q '"committed": 2' r5/manifest.json && [ ! -e r5/.xenstream ]; then
  ok "ssh client killed mid-checkpoint: remote failover to checkpoint 2"
else
  bad "ssh client killed mid-checkpoint"
fi

exit $fail
