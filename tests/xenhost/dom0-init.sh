#!/bin/sh
# dom0's /init: mount what xl needs, load the modules, start xenstored,
# xenconsoled and xen-init-dom0, mount the output disk, run the scenario,
# power off. Every message goes to hvc0, which QEMU's serial shows.
export PATH=/xs/bin:/usr/lib/xen-4.17/bin:/usr/bin:/usr/sbin:/bin:/sbin
export LD_LIBRARY_PATH=/lib/x86_64-linux-gnu
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /dev/shm
mkdir -p /run/xen /var/run/xen /var/log/xen/console /var/lib/xen
echo "XENHOST-PHASE dom0-init $(cut -d' ' -f1 /proc/uptime)"

fail() { echo "XENHOST-FATAL $*"; sync; poweroff -f; }

while read -r m; do
    insmod "$m" 2>/dev/null || echo "xenhost: insmod $m failed (built in, or not for this CPU)"
done </etc/modules.load
for d in privcmd evtchn gntdev; do
    [ -e /dev/xen/$d ] || fail "/dev/xen/$d missing after loading modules"
done
mkdir -p /proc/xen
mount -t xenfs xenfs /proc/xen || fail "mount xenfs"

xenstored --pid-file /run/xenstored.pid || fail "xenstored did not start"
xenconsoled --pid-file=/run/xenconsoled.pid --log=guest || fail "xenconsoled did not start"
xen-init-dom0 || fail "xen-init-dom0"
xl list >/dev/null || fail "xl list"

[ -b /dev/vda ] || fail "no output disk /dev/vda"
mount -t ext4 /dev/vda /out || fail "mount /dev/vda"
echo "XENHOST-PHASE dom0-ready $(cut -d' ' -f1 /proc/uptime)"
sh /scenario.sh 2>&1 | tee /out/scenario.log
cp /var/log/xen/console/* /out/ 2>/dev/null
mkdir -p /out/xl-logs && cp /var/log/xen/*.log /out/xl-logs/ 2>/dev/null
umount /out || sync
echo "XENHOST-PHASE done $(cut -d' ' -f1 /proc/uptime)"
poweroff -f
