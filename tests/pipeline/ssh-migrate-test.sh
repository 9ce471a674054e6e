#!/bin/bash
# xl migrate / xl remus receiver through the real sshd (sshd-fixture.sh):
# the test sender runs `sh -c 'ssh ... RECEIVER --out DIR'` as
# `xl migrate -s '' DOMID RUNE` does. Usage:
#   ssh-migrate-test.sh STATEDIR SENDER RECEIVER STREAMGEN STREAMRESTORE WORKDIR
set -u
state=$1 send=$2 recv=$3 gen=$4 restore=$5 work=$6
. "$state/env"
fail=0
ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; fail=1; }
SSH="ssh -p $PORT -i $KEY -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR $(id -un)@127.0.0.1"
rm -rf "$work"
mkdir -p "$work"
cd "$work" || exit 2

# Plain migration, a capture: banner, xl header + stream, "domain
# received", "cleared to unpause", then status 3 (and the permission to
# resume): xl would resume its domain.
"$gen" --container xl --emulator-context --xenstore-data --pages 1024 --name mig-guest mig.xen || exit 2
"$restore" -q mig.xen --out expect || exit 2
out=$("$send" mig.xen "$SSH $recv --out $work/m1" 2>err1)
rc=$?
if [ $rc -eq 0 ] && [ "$out" = "status 3" ] && cmp -s m1/memory.raw expect/memory.raw &&
   grep -q mig-guest m1/xl-config.json && cmp -s m1/qemu-resume.1 expect/qemu-resume.1; then
  ok "xl migrate over ssh: captured, the sender told to resume its domain"
else
  bad "xl migrate over ssh (exit $rc, '$out')"; cat err1
fi

# The same with --take-over: status 0, xl would destroy its domain.
out=$("$send" mig.xen "$SSH $recv --take-over --out $work/m1t" 2>err1t)
rc=$?
if [ $rc -eq 0 ] && [ "$out" = "status 0" ] && cmp -s m1t/memory.raw expect/memory.raw; then
  ok "xl migrate over ssh with --take-over: status 0"
else
  bad "xl migrate over ssh with --take-over (exit $rc, '$out')"; cat err1t
fi

# Remus: checkpoints until the primary goes away, then failover.
"$gen" --container xl --pages 1024 --checkpoints 4 --dirty-pages 50 --name remus-guest remus.xen || exit 2
out=$("$send" -r remus.xen "$SSH $recv -r --out $work/m2" 2>err2)
rc=$?
if [ $rc -eq 0 ] && grep -q '"status": "failover"' m2/manifest.json && grep -q '"committed": 4' m2/manifest.json &&
   grep -q remus-guest m2/xl-config.json; then
  ok "xl remus receiver over ssh: failover after 4 checkpoints"
else
  bad "xl remus receiver over ssh (exit $rc)"; cat err2
fi

# Remus primary dies inside checkpoint 3: the secondary keeps checkpoint 2.
"$gen" --container xl --pages 1024 --checkpoints 2 --dirty-pages 50 --name remus-guest two.xen || exit 2
"$restore" -q two.xen --out expect2 2>/dev/null
cut=$(( $(stat -c %s two.xen) + 4096 * 20 ))
XS_SEND_CUT=$cut "$send" -r remus.xen "$SSH $recv -r --out $work/m3" >/dev/null 2>err3
i=0
while ! grep -qs '"status": "failover"' m3/manifest.json && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
if grep -q '"committed": 2' m3/manifest.json && cmp -s m3/memory.raw expect2/memory.raw; then
  ok "xl remus primary killed mid-checkpoint: secondary at checkpoint 2"
else
  bad "xl remus primary killed mid-checkpoint"; cat err3
fi
exit $fail
