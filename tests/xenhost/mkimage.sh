#!/usr/bin/env bash
# Build what QEMU boots for the nested Xen host, from the packages fetch.sh
# unpacked into CACHE/root and the xenstream tools just built:
#   OUT/xen.elf        the hypervisor (multiboot ELF, zcat of Debian's xen-4.17-amd64.gz)
#   OUT/vmlinuz        Debian's kernel (dom0 and every domU)
#   OUT/dom0.cpio.gz   dom0: busybox, xl + xenstored + xenconsoled + qemu-system-xen
#                      and their libraries, kernel modules (depmod'ed), the
#                      xenstream tools and their libraries, the scenario
#   OUT/domu.cpio.gz   the domU: busybox init with an inittab (packed inside dom0's /guest too)
#
# Usage: mkimage.sh CACHE OUT BUILD_DIR
#   BUILD_DIR is the CMake build tree holding the tools just built
set -euo pipefail

die() { echo "xenhost-mkimage: error: $*" >&2; exit 1; }
[ $# -eq 3 ] || { echo "usage: $0 CACHE OUT BUILD_DIR" >&2; exit 2; }
HERE="$(cd -- "$(dirname -- "$0")" && pwd)"
CACHE="$(cd -- "$1" && pwd)"
mkdir -p -- "$2"
OUT="$(cd -- "$2" && pwd)"
BUILD="$(cd -- "$3" && pwd)"
PKG="$CACHE/root"
[ -d "$PKG" ] || die "$PKG missing: run fetch.sh first"
for t in cpio depmod modprobe gzip ldd; do
    command -v "$t" >/dev/null 2>&1 || die "'$t' not found (scripts/install-deps.sh installs it)"
done

XENBIN=usr/lib/xen-4.17/bin
KVER="$(ls "$PKG/lib/modules")"
[ "$(printf '%s\n' "$KVER" | wc -l)" -eq 1 ] || die "expected one kernel in $PKG/lib/modules, got: $KVER"

zcat "$PKG/boot/xen-4.17-amd64.gz" >"$OUT/xen.elf.tmp" && mv "$OUT/xen.elf.tmp" "$OUT/xen.elf"
cp "$PKG/boot/vmlinuz-$KVER" "$OUT/vmlinuz"

# Copy a file of PKG (or of the host, for an absolute path outside PKG) into ROOT
# at the same path.
put() {  # put ROOT SRC DEST-PATH
    mkdir -p "$1/$(dirname -- "$3")"
    cp -L "$2" "$1/$3"
}

# Every shared library a binary needs, resolved against the unpacked packages
# first and the host second; an unresolved library is an error.
libs_of() {
    local out
    out="$(LD_LIBRARY_PATH="$PKG/usr/lib/x86_64-linux-gnu:$PKG/lib/x86_64-linux-gnu" ldd "$1")" \
        || die "ldd $1 failed"
    if printf '%s\n' "$out" | grep -q 'not found'; then
        die "libraries of $1 not found: $(printf '%s\n' "$out" | grep 'not found' | tr '\n' ' ')"
    fi
    printf '%s\n' "$out" | sed -n 's/.*=> \(\/[^ ]*\) .*/\1/p; s/^[[:space:]]*\(\/[^ ]*\) (.*/\1/p'
}
put_with_libs() {  # put_with_libs ROOT SRC DEST-PATH
    local lib dest
    put "$1" "$2" "$3"
    for lib in $(libs_of "$2"); do
        case "$lib" in
            "$PKG"/*) dest="${lib#"$PKG"/}" ;;
            *) dest="${lib#/}" ;;
        esac
        # Everything lands in the standard directories of the initramfs.
        case "$dest" in
            lib64/*) ;;
            *) dest="lib/x86_64-linux-gnu/$(basename -- "$dest")" ;;
        esac
        [ -e "$1/$dest" ] || put "$1" "$lib" "$dest"
    done
}

busybox_root() {  # busybox_root ROOT
    mkdir -p "$1"/{bin,sbin,etc,proc,sys,dev,run,tmp,root,usr/bin,usr/sbin}
    cp "$PKG/bin/busybox" "$1/bin/busybox"
    # The links are made at build time so that every init can rely on them.
    local applet
    for applet in $("$PKG/bin/busybox" --list-full); do
        [ -e "$1/$applet" ] || ln -s /bin/busybox "$1/$applet"
    done
}

pack() {  # pack ROOT OUTFILE
    (cd "$1" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet) \
        | gzip -1 >"$2.tmp"
    mv "$2.tmp" "$2"
}

# ---- the domU --------------------------------------------------------------
DOMU="$OUT/domu-root"
rm -rf -- "$DOMU"
busybox_root "$DOMU"
install -m 755 "$HERE/guest-init.sh" "$DOMU/etc/rc"
cat >"$DOMU/etc/inittab" <<'EOF'
::sysinit:/etc/rc
::respawn:/bin/sh /etc/ticker
::shutdown:/bin/echo XENSTREAM-GUEST-SHUTDOWN
EOF
cat >"$DOMU/etc/ticker" <<'EOF'
# Changes the guest's memory every second: a counter in a tmpfs file.
n=0
while :; do n=$((n + 1)); echo "XST""ICK-$n" >/run/tick; sleep 1; done
EOF
ln -sf /bin/busybox "$DOMU/init"
pack "$DOMU" "$OUT/domu.cpio.gz"

# ---- dom0 ------------------------------------------------------------------
DOM0="$OUT/dom0-root"
rm -rf -- "$DOM0"
busybox_root "$DOM0"
mkdir -p "$DOM0"/{lib64,var/log/xen/console,var/lib/xen,var/run/xen,run/xen,etc/xen,out,guest,xs/bin}
: >"$DOM0/etc/xen/xl.conf"
for b in xl xenstored xenconsoled xen-init-dom0 libxl-save-helper; do
    put_with_libs "$DOM0" "$PKG/$XENBIN/$b" "$XENBIN/$b"
done
for b in xenstore-read xenstore-write xenstore-ls; do
    put_with_libs "$DOM0" "$PKG/usr/bin/$b" "usr/bin/$b"
done
put "$DOM0" "$PKG/usr/lib/xen-4.17/boot/hvmloader" usr/lib/xen-4.17/boot/hvmloader
put_with_libs "$DOM0" "$PKG/usr/libexec/xen-qemu-system-i386" usr/libexec/xen-qemu-system-i386
put "$DOM0" "$PKG/usr/share/seabios/bios-256k.bin" usr/share/seabios/bios-256k.bin
# qemu-system-xen reads a keymap even with vnc=0 ("could not read keymap file:
# 'en-us'" otherwise); it needs no option ROM (no NIC, no display, no disk).
mkdir -p "$DOM0/usr/share/qemu"
cp -rL "$PKG/usr/share/qemu/keymaps" "$DOM0/usr/share/qemu/keymaps" || die "no qemu keymaps in qemu-system-data"
# The COLO guest (colo.sh) boots a kernel directly: QEMU's -kernel option ROM
# (xenfv has no fw_cfg DMA, so the plain one).
put "$DOM0" "$PKG/usr/share/qemu/linuxboot.bin" usr/share/qemu/linuxboot.bin
# xl aborts without libgcc_s ("must be installed for pthread_cancel to work").
put "$DOM0" "$(gcc -print-file-name=libgcc_s.so.1 2>/dev/null || echo /lib/x86_64-linux-gnu/libgcc_s.so.1)" \
    lib/x86_64-linux-gnu/libgcc_s.so.1
[ -e "$DOM0/lib64/ld-linux-x86-64.so.2" ] || put "$DOM0" /lib64/ld-linux-x86-64.so.2 lib64/ld-linux-x86-64.so.2
for t in verify/streamverify restore/streamrestore save/streamsave convert/streamconv; do
    [ -x "$BUILD/tools/$t" ] || die "$BUILD/tools/$t not built"
    put_with_libs "$DOM0" "$BUILD/tools/$t" "xs/bin/${t#*/}"
done
[ -x "$BUILD/tests/xenhost/mutate" ] || die "$BUILD/tests/xenhost/mutate not built"
put_with_libs "$DOM0" "$BUILD/tests/xenhost/mutate" xs/bin/mutate
put_with_libs "$DOM0" "$(command -v zstd)" xs/bin/zstd

# Kernel modules: the closure of what dom0 needs, in load order, then depmod.
MODS="xen-privcmd xenfs xen-evtchn xen-gntdev xen-gntalloc xen-netback virtio_pci virtio_blk crc32c_generic ext4"
depmod -b "$PKG" "$KVER"
: >"$DOM0/etc/modules.load"
for m in $MODS; do
    modprobe -d "$PKG" -S "$KVER" --show-depends "$m" | sed -n 's/^insmod \([^ ]*\).*/\1/p'
done | awk '!seen[$0]++' | while read -r path; do
    rel="${path#"$PKG"/}"
    rel="${rel#./}"
    put "$DOM0" "$path" "$rel"
    echo "/$rel" >>"$DOM0/etc/modules.load"
done
cp "$PKG/lib/modules/$KVER"/modules.{order,builtin,builtin.modinfo} "$DOM0/lib/modules/$KVER/" 2>/dev/null || true
depmod -b "$DOM0" "$KVER"

install -m 755 "$HERE/dom0-init.sh" "$DOM0/init"
install -m 755 "$HERE/scenario.sh" "$DOM0/scenario.sh"
install -m 644 "$HERE/colo.sh" "$DOM0/colo.sh"
cp "$OUT/vmlinuz" "$DOM0/guest/vmlinuz"
# The HVM guest's disk: a boot sector that prints the ready marker (on COM1 and
# on Xen's debug port 0xe9, which dom0 reads with xl dmesg) and
# then halts in a loop with interrupts on. Without a bootable disk SeaBIOS
# says "No bootable device. Retrying in 60 seconds." and reboots the guest,
# which on_reboot = "destroy" ends.
python3 - "$DOM0/guest/hvm-boot.img" <<'PY'
import sys
msg = b"XENSTREAM-GUEST-READY hvm\r\n\0"
code = bytes([
    0x31, 0xC0,              # xor ax, ax
    0x8E, 0xD8,              # mov ds, ax
    0xBE, 0x18, 0x7C,        # mov si, 0x7c18 (msg)
    0xBA, 0xF8, 0x03,        # mov dx, 0x3f8 (COM1)
    0xAC,                    # next: lodsb
    0x84, 0xC0,              # test al, al
    0x74, 0x05,              # jz idle
    0xEE,                    # out dx, al
    0xE6, 0xE9,              # out 0xe9, al (Xen's debug port: xl dmesg shows it)
    0xEB, 0xF6,              # jmp next
    0xFB,                    # idle: sti
    0xF4,                    # hlt
    0xEB, 0xFC,              # jmp idle
])
assert len(code) == 0x18
sector = (code + msg).ljust(510, b"\0") + b"\x55\xaa"
with open(sys.argv[1], "wb") as f:
    f.write(sector.ljust(1 << 20, b"\0"))
PY
cp "$OUT/domu.cpio.gz" "$DOM0/guest/domu.cpio.gz"
cp "$PKG/.versions" "$DOM0/etc/xenhost-versions"
# The candidate-stream hook (scenario.sh, part 5): streams judged by xl restore.
if [ -n "${XENHOST_CANDIDATES:-}" ]; then
    [ -d "$XENHOST_CANDIDATES" ] || die "XENHOST_CANDIDATES=$XENHOST_CANDIDATES is not a directory"
    cp -r "$XENHOST_CANDIDATES" "$DOM0/candidates"
fi
# XENHOST_JUDGE_SUBSET=1: dom0 judges a subset of the mutated cases (a
# quicker run while working on the fixture; CI judges them all).
if [ "${XENHOST_JUDGE_SUBSET:-0}" = 1 ]; then touch "$DOM0/etc/xenhost-judge-subset"; fi
# XENHOST_ONLY=colo: dom0 runs only the COLO section (colo.sh), for iterating on it.
case "${XENHOST_ONLY:-}" in
    "") ;;
    colo) echo colo >"$DOM0/etc/xenhost-only" ;;
    *) die "XENHOST_ONLY=$XENHOST_ONLY: only 'colo' is known" ;;
esac
pack "$DOM0" "$OUT/dom0.cpio.gz"
rm -rf -- "$DOM0" "$DOMU"
echo "xenhost-mkimage: $(du -h "$OUT/dom0.cpio.gz" | cut -f1) dom0.cpio.gz, $(du -h "$OUT/domu.cpio.gz" | cut -f1) domu.cpio.gz, kernel $KVER" >&2
