# Sourced by scenario.sh (section 3b, and alone with XENHOST_ONLY=colo):
# `xl remus -c -p` (a real COLO primary, userspace proxy) of an HVM guest
# against `streamrestore --xl-migrate-receive --colo`, then `xl destroy` of
# the primary. Uses result/phase/state from scenario.sh.
#
# What libxl needs for it (libxl_colo_save.c, libxl_colo_proxy.c):
# - an HVM guest ("COLO only supports hvm now");
# - with -p, colo_proxy_setup connects to the first NIC's
#   colo_checkpoint_host:colo_checkpoint_port, sends a length-prefixed
#   "COLO_USERSPACE_PROXY_INIT" and waits for any length-prefixed answer
#   (QEMU's colo-compare); a guest without a NIC has no host or port. Here a
#   busybox nc plays colo-compare: it answers once and then only reads, so
#   libxl's wait for a checkpoint request times out and it checkpoints every
#   5 s (COLO_PROXY_CHECKPOINT_TIMEOUT);
# - the NIC is a PV vif (no emulated NIC, no colo-compare in QEMU) whose
#   hotplug script only reports it connected (no bridge in this dom0);
# - no disk (a qdisk needs COLO block replication settings): the guest boots
#   dom0's kernel directly (QEMU -kernel) instead of SeaBIOS's disk.
#
# Debian 12's libxenlight is built without libnl3, so it holds
# libxl_no_colo.c instead of the COLO code: `xl remus -c` stops in
# libxl__colo_save_setup ("COLO is not supported") right after the xl header,
# and the whole of the above is never reached (README.md, "COLO").
colo_run() {
    phase colo
    ifconfig lo 127.0.0.1 up 2>/dev/null
    mkdir -p /etc/xen/scripts
    cat >/etc/xen/scripts/vif-xs-null <<'EOS'
#!/bin/sh
[ "$1" = online ] || [ "$1" = add ] && xenstore-write "$XENBUS_PATH/hotplug-status" connected
exit 0
EOS
    chmod 755 /etc/xen/scripts/vif-xs-null
    cat >/tmp/colo-compare.sh <<'EOS'
#!/bin/sh
printf '\000\000\000\002OK'
exec cat >/dev/null
EOS
    chmod 755 /tmp/colo-compare.sh
    nc -l -p 9998 -e /tmp/colo-compare.sh >"$WORK/colo-compare.log" 2>&1 &
    nc_pid=$!
    cat >"$OUT/cfg/colo.cfg" <<EOC
name = "xs-colo"
type = "hvm"
memory = 64
vcpus = 1
vga = "none"
vnc = 0
serial = "pty"
kernel = "/guest/vmlinuz"
ramdisk = "/guest/domu.cpio.gz"
extra = "console=ttyS0 quiet xs_type=colo"
vif = [ "type=vif, script=/etc/xen/scripts/vif-xs-null, colo_checkpoint_host=127.0.0.1, colo_checkpoint_port=9998" ]
device_model_override = "/usr/libexec/xen-qemu-system-i386"
on_poweroff = "destroy"
on_reboot = "destroy"
on_crash = "destroy"
EOC
    xl create "$OUT/cfg/colo.cfg" >"$WORK/colo-create.log" 2>&1
    result colo.create_rc $?
    sleep 10
    result colo.state_before_colo "$(state xs-colo)"
    rm -rf "$WORK/colo-dir"
    xl -vvv remus -c -p -s '' xs-colo \
        "trap '' TERM INT HUP; streamrestore --xl-migrate-receive --colo --userspace-colo-proxy --out $WORK/colo-dir 2>$WORK/colo-receiver.log; echo \$? >$WORK/colo-receiver.rc" \
        >"$WORK/colo.log" 2>&1 &
    colo_pid=$!
    # Checkpoints every 5 s once the first (the whole memory) is through.
    w=0
    while kill -0 $colo_pid 2>/dev/null && [ $w -lt 90 ]; do sleep 3; w=$((w + 3)); done
    result colo.xl_alive_before_destroy "$(kill -0 $colo_pid 2>/dev/null && echo yes || echo no)"
    result colo.state_before_destroy "$(state xs-colo)"
    result colo.committed_before_destroy "$(grep -o '"committed": [0-9]*' "$WORK/colo-dir/manifest.json" 2>/dev/null | tr -dc 0-9)"
    xl destroy xs-colo
    result colo.destroy_rc $?
    w=0
    while kill -0 $colo_pid 2>/dev/null && [ $w -lt 120 ]; do sleep 2; w=$((w + 2)); done
    kill -0 $colo_pid 2>/dev/null && { result colo.xl_hung yes; kill $colo_pid; }
    wait $colo_pid
    result colo.xl_rc $?
    w=0
    while [ ! -s "$WORK/colo-receiver.rc" ] && [ $w -lt 60 ]; do sleep 2; w=$((w + 2)); done
    result colo.receiver_rc "$(cat "$WORK/colo-receiver.rc" 2>/dev/null || echo none)"
    result colo.receiver_says "$(grep failover "$WORK/colo-receiver.log" 2>/dev/null | tail -n1)"
    result colo.receiver_error "$(grep error "$WORK/colo-receiver.log" 2>/dev/null | head -n1)"
    result colo.xl_error "$(grep -i -E 'error|fail' "$WORK/colo.log" 2>/dev/null | head -n1)"
    kill $nc_pid 2>/dev/null
    cp /var/log/xen/qemu-dm-xs-colo.log "$WORK/colo-qemu-dm.log" 2>/dev/null
    if [ -d "$WORK/colo-dir" ]; then
        streamsave "$WORK/colo-dir" -o "$IMG/colo-resave.save" >"$WORK/colo-resave.log" 2>&1
        result colo.streamsave_of_dir_rc $?
        cp "$WORK/colo-dir/manifest.json" "$WORK/colo-manifest.json" 2>/dev/null
        rm -rf "$WORK/colo-dir"
    else
        result colo.streamsave_of_dir_rc no-dir
    fi
    [ "$(state xs-colo)" = absent ] || xl destroy xs-colo
}
