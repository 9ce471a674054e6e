#!/bin/sh
# The scenario dom0 runs once per boot (POSIX sh for busybox). It never
# stops at the first failure: every step records "KEY VALUE" in
# /out/results.txt and the CTest tests on the host assert on those lines and
# on the images left in /out. Guests: xs-pv (64-bit PV), xs-pvh (PVH, same
# kernel), xs-hvm (HVM with Debian's qemu-system-xen, a boot sector and no OS).
OUT=/out
IMG=$OUT/img
WORK=$OUT/work
mkdir -p "$IMG" "$WORK" "$OUT/cfg" "$OUT/verify"
: >"$OUT/results.txt"

now() { cut -d' ' -f1 /proc/uptime; }
phase() { echo "XENHOST-PHASE $1 $(now)"; echo "phase.$1 $(now)" >>"$OUT/results.txt"; }
result() { echo "XENHOST-RESULT $1 $2"; echo "$1 $2" >>"$OUT/results.txt"; }

# state NAME: absent, or xl list's state letters (r, b, p, s, c, d), or
# "runnable" when none is set (the domain waits for a CPU).
state() {
    line=$(xl list "$1" 2>/dev/null | sed -n 2p)
    if [ -z "$line" ]; then echo absent; return; fi
    letters=$(echo "$line" | awk '{print $5}' | tr -d '-')
    echo "${letters:-runnable}"
}
# console NAME: what xenconsoled logged of the guest's console so far.
console() { cat "/var/log/xen/console/guest-$1.log" 2>/dev/null; }
count_in_console() { console "$1" | grep -c "$2"; }

# wait_console NAME PATTERN COUNT TIMEOUT: wait until PATTERN appeared COUNT times.
wait_console() {
    waited=0
    while [ "$(count_in_console "$1" "$2")" -lt "$3" ]; do
        [ "$waited" -ge "$4" ] && return 1
        [ "$(state "$1")" = absent ] && return 1
        sleep 2; waited=$((waited + 2))
    done
    return 0
}

# alive_and_shutdown NAME KEY: the restored guest runs, answers xl shutdown -w
# by powering off through its init.
alive_and_shutdown() {
    before=$(count_in_console "$1" XENSTREAM-GUEST-SHUTDOWN)
    result "$2.state_after_restore" "$(state "$1")"
    timeout 180 xl shutdown -w "$1"
    result "$2.shutdown_rc" $?
    result "$2.state_after_shutdown" "$(state "$1")"
    after=$(count_in_console "$1" XENSTREAM-GUEST-SHUTDOWN)
    result "$2.init_ran_shutdown" "$((after - before))"
    [ "$(state "$1")" = absent ] || xl destroy "$1"
}

write_configs() {
    for t in pv pvh; do
        cat >"$OUT/cfg/$t.cfg" <<EOF
name = "xs-$t"
type = "$t"
kernel = "/guest/vmlinuz"
ramdisk = "/guest/domu.cpio.gz"
extra = "console=hvc0 quiet xs_type=$t"
memory = 128
vcpus = 1
on_poweroff = "destroy"
on_reboot = "destroy"
on_crash = "destroy"
EOF
    done
    cat >"$OUT/cfg/hvm.cfg" <<EOF
name = "xs-hvm"
type = "hvm"
memory = 64
vcpus = 1
vga = "none"
vnc = 0
serial = "pty"
boot = "c"
disk = [ "format=raw, vdev=hda, access=rw, backendtype=qdisk, target=/guest/hvm-boot.img" ]
device_model_override = "/usr/libexec/xen-qemu-system-i386"
on_poweroff = "destroy"
on_reboot = "destroy"
on_crash = "destroy"
EOF
}

# XENHOST_ONLY=colo (mkimage.sh writes /etc/xenhost-only): section 3b alone.
if [ "$(cat /etc/xenhost-only 2>/dev/null)" = colo ]; then
    write_configs
    . /colo.sh
    colo_run
    phase end
    xl list >"$OUT/xl-list-end.txt" 2>&1
    sync
    exit 0
fi

phase start
# The PV guest runs dom0's kernel binary (no KASLR for PV): the address of its
# linux_banner is dom0's. Root reads kallsyms anyway; kptr_restrict 0 makes sure.
echo 0 >/proc/sys/kernel/kptr_restrict 2>/dev/null
result dom0.linux_banner "$(awk '$3 == "linux_banner" { print $1 }' /proc/kallsyms)"
xl info | grep -E '^(xen_version|xen_caps|virt_caps|total_memory|free_memory)' >"$OUT/xl-info.txt"
cat /etc/xenhost-versions >"$OUT/versions.txt"
write_configs

# ---- boot every guest once ----------------------------------------------------
phase create
for t in pv pvh hvm; do
    xl create "$OUT/cfg/$t.cfg" >"$WORK/create-$t.log" 2>&1
    result "$t.create_rc" $?
done
for t in pv pvh; do
    wait_console "xs-$t" XENSTREAM-GUEST-READY 1 900
    result "$t.ready" $?
done
# The HVM guest's boot sector writes its marker to Xen's debug port too.
waited=0
while ! xl dmesg | grep -q 'XENSTREAM-GUEST-READY hvm' && [ $waited -lt 240 ]; do
    sleep 2; waited=$((waited + 2))
done
xl dmesg | grep -q 'XENSTREAM-GUEST-READY hvm'
result hvm.ready $?
result hvm.state_after_create "$(state xs-hvm)"
phase guests-ready

# ---- 1. xl save -c (guest keeps running), then xl save (guest stops) ----------
save_c() {
    xl save -c "xs-$1" "$IMG/$1-c.save" >"$WORK/save-c-$1.log" 2>&1
    result "$1.save_c_rc" $?
    result "$1.state_after_save_c" "$(state "xs-$1")"
}
save_plain() {
    xl save "xs-$1" "$IMG/$1.save" >"$WORK/save-$1.log" 2>&1
    result "$1.save_rc" $?
    result "$1.state_after_save" "$(state "xs-$1")"
    [ "$(state "xs-$1")" = absent ] || xl destroy "xs-$1"
}
for t in pv pvh; do
    phase "save-$t"
    sleep 3
    save_c "$t"
    sleep 5        # the guest's ticker moves on: its memory changes
    save_plain "$t"
done
# The HVM guest has no OS: xl save, xl restore of xl's own image, then
# xl save -c of the restored guest (README.md says why).
phase save-hvm
save_plain hvm
xl restore "$IMG/hvm.save" >"$WORK/restore-xl-hvm.log" 2>&1
result hvm.xl_restore_own_rc $?
save_c hvm
xl destroy xs-hvm 2>/dev/null

# ---- 2. what we write, Xen restores -----------------------------------------
# restore_ours TYPE KEY IMAGE: xl restore IMAGE, then the guest must answer
# xl shutdown -w (PV, PVH); the HVM guest has no OS and is destroyed.
restore_ours() {
    xl restore "$3" >"$WORK/restore-$2.log" 2>&1
    rc=$?
    result "$2.xl_restore_rc" $rc
    tail -n 5 "$WORK/restore-$2.log" | sed "s/^/$2.xl_restore_says /" >>"$OUT/results.txt"
    if [ $rc -ne 0 ]; then return; fi
    if [ "$1" = hvm ]; then
        result "$2.state_after_restore" "$(state "xs-$1")"
        xl destroy "xs-$1"
    else
        alive_and_shutdown "xs-$1" "$2"
    fi
}

for t in pv pvh hvm; do
    phase "resave-$t"
    [ -s "$IMG/$t.save" ] || { result "$t.resave" no-image; continue; }
    streamrestore "$IMG/$t.save" --out "$WORK/$t-dir" >"$WORK/$t-restore.log" 2>&1
    result "$t.streamrestore_rc" $?
    streamsave "$WORK/$t-dir" -o "$WORK/$t-resave.save" >"$WORK/$t-resave.log" 2>&1
    result "$t.streamsave_rc" $?
    if cmp -s "$IMG/$t.save" "$WORK/$t-resave.save"; then
        result "$t.resave_identical" yes
    else
        result "$t.resave_identical" no
        result "$t.resave_first_difference" "$(cmp "$IMG/$t.save" "$WORK/$t-resave.save" 2>&1 | head -n1 | tr ' ' _)"
    fi
    restore_ours "$t" "$t.ours" "$WORK/$t-resave.save"

    # --zstd, decompressed by the zstd tool
    streamsave "$WORK/$t-dir" --zstd -o "$WORK/$t-resave.save.zst" >"$WORK/$t-zstd.log" 2>&1
    result "$t.streamsave_zstd_rc" $?
    zstd -q -d -f "$WORK/$t-resave.save.zst" -o "$WORK/$t-unzstd.save"
    result "$t.unzstd_rc" $?
    rm -f "$WORK/$t-resave.save.zst"
    restore_ours "$t" "$t.zstd" "$WORK/$t-unzstd.save"
    rm -f "$WORK/$t-unzstd.save"

    # a directory restored from a pipe
    cat "$IMG/$t.save" | streamrestore - --out "$WORK/$t-pipedir" >"$WORK/$t-pipe.log" 2>&1
    result "$t.streamrestore_pipe_rc" $?
    streamsave "$WORK/$t-pipedir" -o "$WORK/$t-pipe.save" >>"$WORK/$t-pipe.log" 2>&1
    result "$t.streamsave_pipe_rc" $?
    cmp -s "$WORK/$t-resave.save" "$WORK/$t-pipe.save"
    result "$t.pipe_resave_same_as_file_resave" $?
    restore_ours "$t" "$t.pipe" "$WORK/$t-pipe.save"
    rm -rf "$WORK/$t-pipedir" "$WORK/$t-pipe.save"
    rm -rf "$WORK/$t-dir"
done

# keep_dir NAME: a received directory goes out as streamsave's stream (its
# memory.raw is sparse over 4 GiB for PVH/HVM; the output disk is not).
keep_dir() {
    if [ -d "$WORK/$1-dir" ]; then
        streamsave "$WORK/$1-dir" -o "$IMG/$1-resave.save" >"$WORK/$1-resave.log" 2>&1
        result "$1.streamsave_of_dir_rc" $?
        cp "$WORK/$1-dir/manifest.json" "$WORK/$1-manifest.json" 2>/dev/null
        rm -rf "$WORK/$1-dir"
    else
        result "$1.streamsave_of_dir_rc" no-dir
    fi
}

# ---- 3. the real sender against our receiver (HAP log-dirty: PVH, HVM) -------
# PVH: a capture (the default), after which xl must resume its domain; HVM:
# --take-over, after which xl destroys its domain.
for t in pvh hvm; do
    phase "migrate-$t"
    take=""
    [ "$t" = hvm ] && take="--take-over"
    xl restore "$IMG/$t.save" >"$WORK/migrate-$t-restore.log" 2>&1
    result "$t.migrate_source_restore_rc" $?
    rm -rf "$WORK/$t-migrate-dir"
    xl migrate -s '' "xs-$t" \
        "trap '' TERM INT HUP; streamrestore --xl-migrate-receive $take --out $WORK/$t-migrate-dir 2>$WORK/$t-migrate-receiver.log; echo \$? >$WORK/$t-migrate-receiver.rc" \
        >"$WORK/migrate-$t.log" 2>&1
    result "$t.migrate_rc" $?
    result "$t.migrate_receiver_rc" "$(cat "$WORK/$t-migrate-receiver.rc" 2>/dev/null || echo none)"
    result "$t.state_after_migrate" "$(state "xs-$t")"
    [ "$(state "xs-$t")" = absent ] || xl destroy "xs-$t"
    keep_dir "$t-migrate"
done

for t in pvh hvm; do
    phase "remus-$t"
    xl restore "$IMG/$t.save" >"$WORK/remus-$t-restore.log" 2>&1
    result "$t.remus_source_restore_rc" $?
    rm -rf "$WORK/$t-remus-dir"
    xl remus -F -n -d -u -s '' "xs-$t" \
        "trap '' TERM INT HUP; streamrestore --xl-migrate-receive -r --out $WORK/$t-remus-dir 2>$WORK/$t-remus-receiver.log; echo \$? >$WORK/$t-remus-receiver.rc" \
        >"$WORK/remus-$t.log" 2>&1 &
    remus_pid=$!
    sleep 20       # checkpoints flow (tens of them)
    # The first checkpoint carries the whole memory; under TCG on a loaded
    # host it can take longer than that (seen in a full CI run: the PVH
    # primary was killed before the receiver had committed anything, so
    # there was nothing to fail over to). Wait for a commit in DIR first.
    w=0
    until grep -qs '"committed": [1-9]' "$WORK/$t-remus-dir/manifest.json" || [ $w -ge 300 ]; do
        sleep 2; w=$((w + 2))
    done
    result "$t.remus_committed_before_failure" "$(grep -o '"committed": [0-9]*' "$WORK/$t-remus-dir/manifest.json" 2>/dev/null | grep -o '[0-9]*$')"
    # The primary is suspended ("s") for a moment at every checkpoint: look
    # a few times for it running between two.
    s=$(state "xs-$t"); w=0
    while [ "$s" != r ] && [ "$s" != b ] && [ "$s" != runnable ] && [ $w -lt 10 ]; do
        sleep 1; s=$(state "xs-$t"); w=$((w + 1))
    done
    result "$t.remus_state_before_destroy" "$s"
    # The primary host fails: its toolstack dies first (xl remus and its
    # save helper are killed, so the stream stops mid-checkpoint), then its
    # domain goes. Destroying the domain while xl remus still runs races
    # with remus resuming it after a checkpoint, and Xen 4.17 under TCG has
    # been seen to crash in that race (a page fault in hvmemul_cancel from
    # arch_set_info_guest): a hypervisor bug, not the failure under test.
    kill -KILL $remus_pid
    pkill -KILL -f libxl-save-helper
    wait $remus_pid
    result "$t.remus_xl_rc" $?
    xl destroy "xs-$t"
    result "$t.remus_destroy_rc" $?
    w=0
    while [ ! -s "$WORK/$t-remus-receiver.rc" ] && [ $w -lt 60 ]; do sleep 2; w=$((w + 2)); done
    result "$t.remus_receiver_rc" "$(cat "$WORK/$t-remus-receiver.rc" 2>/dev/null || echo none)"
    result "$t.remus_receiver_says" "$(grep failover "$WORK/$t-remus-receiver.log" 2>/dev/null | tail -n1)"
    keep_dir "$t-remus"
done

# ---- 3b. a real COLO primary against our --colo secondary (colo.sh) ----------
. /colo.sh
colo_run

# ---- 4. Xen judges the verifier's rules ----------------------------------------
# mutate (tests/xenhost/mutate.cpp) writes one copy of the real PV image per
# case, each breaking one rule of spec/verify-rules.md; xl restore -p says
# whether Xen takes it (a restored domain is destroyed right away). The host
# makes the same copies from the same image and runs streamverify and
# streamrestore on them (check.sh judge).
if [ -s "$IMG/pv.save" ]; then
    phase judge
    J=$OUT/judge
    mkdir -p "$J"
    : >"$J/verdicts.txt"
    # Every case of `mutate --list`. No copy is written: mutate streams its
    # output into xl through a pipe (xl opens /proc/self/fd/0 as it would the
    # file; dom0 has no /dev/stdin), so a case costs what xl takes to read or
    # refuse it, not a 128 MiB write to the output disk. XENHOST_JUDGE_SUBSET=1 (a quick run
    # while working on the fixture) judges a subset that still spans every
    # kind of verdict.
    if [ -e /etc/xenhost-judge-subset ]; then
        for c in control CONT-XL-04-mandatory-flag CONT-XL-05-optional-flag LIBXL-HDR-02-version \
                 LIBXL-HDR-04-options LIBXC-IHDR-01-marker LIBXC-DHDR-03-reserved LIBXC-REC-02-padding \
                 LIBXC-REC-04-unknown-optional LIBXC-ORDER-02-two-sde LIBXC-ORDER-06-pv-info-after-sde \
                 LIBXC-ORDER-13-no-pv-info LIBXC-PAGE-04-reserved-bits; do
            echo "$c"
        done >"$J/cases.txt"
    else
        mutate --list | cut -f1 >"$J/cases.txt"
    fi
    while read -r name; do
        t0=$(cut -d' ' -f1 /proc/uptime)
        # mutate's own status goes to a file: when xl refuses early it stops
        # reading and mutate dies of SIGPIPE (141), which is not a failure;
        # mutate refusing the image (1, 2) happens before it writes anything.
        { mutate "$IMG/pv.save" "$name" /proc/self/fd/1 2>"$J/$name.mutate.log"; echo $? >"$J/$name.mutate-rc"; } |
            timeout 120 xl restore -p /proc/self/fd/0 >"$J/$name.log" 2>&1
        rc=$?
        mrc=$(cat "$J/$name.mutate-rc")
        if [ "$mrc" != 0 ] && [ "$mrc" != 141 ]; then
            echo "$name mutate-failed" >>"$J/verdicts.txt"
            cat "$J/$name.mutate.log" >>"$J/$name.log"
        else
            echo "$name $rc" >>"$J/verdicts.txt"
        fi
        for d in $(xl list | awk 'NR > 2 { print $1 }'); do xl destroy "$d"; done
        echo "$name $t0 $(cut -d' ' -f1 /proc/uptime)" >>"$J/times.txt"
    done <"$J/cases.txt"
fi

# ---- 5. a hook: Xen's verdict on candidate streams ---------------------------
# mkimage.sh packs XENHOST_CANDIDATES (a directory of streams, and optionally
# a config "restore.cfg" for them) into /candidates; each stream goes through
# a real xl restore, and what Xen said is recorded per stream. Nothing asserts
# on it here: it is for judging the verifier's rule corpus by Xen.
if [ -d /candidates ]; then
    phase candidates
    mkdir -p "$OUT/candidates"
    for f in /candidates/*; do
        name=$(basename "$f")
        [ "$name" = restore.cfg ] && continue
        if [ -f /candidates/restore.cfg ]; then
            timeout 120 xl restore /candidates/restore.cfg "$f" >"$OUT/candidates/$name.log" 2>&1
        else
            timeout 120 xl restore "$f" >"$OUT/candidates/$name.log" 2>&1
        fi
        rc=$?
        echo "$name $rc" >>"$OUT/candidates/verdicts.txt"
        # Whatever domain the restore left behind goes before the next one.
        for d in $(xl list | awk 'NR > 2 { print $1 }'); do xl destroy "$d"; done
    done
fi

phase end
xl list >"$OUT/xl-list-end.txt" 2>&1
sync
