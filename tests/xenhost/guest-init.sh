#!/bin/sh
# The domU's sysinit (busybox init runs it from /etc/inittab, then the ticker,
# and on `xl shutdown` the kernel runs /sbin/poweroff, which asks init to stop).
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t tmpfs tmpfs /run
type=unknown
for w in $(cat /proc/cmdline); do
    case "$w" in xs_type=*) type="${w#xs_type=}" ;; esac
done
# A string that exists only once the guest has run: built from two halves so
# that this script's own text (also in guest memory) does not contain it.
half=MARK
echo "XSLIVE${half}-$type-$(cat /proc/sys/kernel/random/boot_id)" >/run/marker
echo "XENSTREAM-GUEST-READY $type"
