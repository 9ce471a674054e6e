#!/usr/bin/env bash
# Fetch the Debian 12 packages the nested Xen host is made of into CACHE (a
# directory in the BUILD tree) and unpack them all into CACHE/root.
# Idempotent: does nothing once CACHE/.complete names the same package list.
# A package that cannot be fetched is an error (exit 1), never a skip.
#
# Usage: fetch.sh CACHE
set -euo pipefail

die() { echo "xenhost-fetch: error: $*" >&2; exit 1; }
note() { echo "xenhost-fetch: $*" >&2; }

[ $# -eq 1 ] && [ -n "$1" ] || { echo "usage: $0 CACHE" >&2; exit 2; }
mkdir -p -- "$1" || die "cannot create $1"
CACHE="$(cd -- "$1" && pwd)"

for tool in apt-get apt-cache dpkg dpkg-deb flock; do
    command -v "$tool" >/dev/null 2>&1 || die "'$tool' not found"
done

# Serialise concurrent runs on the same CACHE.
exec 9>"$CACHE/.lock"
flock 9

# shellcheck source=../lib/apt-retry.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/apt-retry.sh"

# The kernel: whatever linux-image-amd64 points at today.
kernel_pkg() {
    apt-cache depends linux-image-amd64 2>/dev/null \
        | sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-amd64\)$/\1/p' | head -n1
}
KPKG="$(kernel_pkg)"
if [ -z "$KPKG" ]; then
    apt_retry apt-get update -q || die "apt-get update failed"
    KPKG="$(kernel_pkg)"
fi
[ -n "$KPKG" ] || die "cannot tell which linux-image package linux-image-amd64 depends on"

PACKAGES=(
    # the hypervisor and the toolstack
    xen-hypervisor-4.17-amd64 xen-utils-4.17 xen-utils-common
    libxencall1 libxenevtchn1 libxenforeignmemory1 libxengnttab1 libxenmisc4.17
    libxenstore4 libxentoollog1 libxenhypfs1 libxendevicemodel1 libxentoolcore1
    libyajl2 xenstore-utils
    # dom0 and domU kernel, and the shell of both
    "$KPKG" busybox-static
    # the HVM guest's device model and firmware
    qemu-system-xen seabios qemu-system-data
)
WANT="${PACKAGES[*]}"
if [ -e "$CACHE/.complete" ] && [ "$(cat "$CACHE/.complete")" = "$WANT" ]; then
    exit 0
fi

mkdir -p "$CACHE/debs"
missing=()
for p in "${PACKAGES[@]}"; do
    compgen -G "$CACHE/debs/${p}_*.deb" >/dev/null || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    note "downloading ${missing[*]}"
    if ! (cd "$CACHE/debs" && apt_retry apt-get download -o APT::Sandbox::User=root "${missing[@]}"); then
        note "apt-get download failed; running apt-get update and retrying"
        apt_retry apt-get update -q || die "apt-get update failed"
        (cd "$CACHE/debs" && apt_retry apt-get download -o APT::Sandbox::User=root "${missing[@]}") \
            || die "apt-get download ${missing[*]} failed (are Debian's apt repositories reachable?)"
    fi
fi

rm -rf -- "$CACHE/root" "$CACHE/root.tmp"
mkdir -p "$CACHE/root.tmp"
for p in "${PACKAGES[@]}"; do
    debs=("$CACHE/debs/${p}_"*.deb)
    [ -e "${debs[0]}" ] || die "package $p was not downloaded"
    # Several versions may have piled up: take the newest.
    deb="$(printf '%s\n' "${debs[@]}" | sort -V | tail -n1)"
    dpkg -x "$deb" "$CACHE/root.tmp" || die "dpkg -x $deb failed"
    dpkg-deb -f "$deb" Package Version | paste -sd' ' >>"$CACHE/root.tmp/.versions"
done
mv "$CACHE/root.tmp" "$CACHE/root"
printf '%s' "$WANT" >"$CACHE/.complete"
note "unpacked ${#PACKAGES[@]} packages into $CACHE/root"
