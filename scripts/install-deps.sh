#!/usr/bin/env bash
# Installs what xenstream needs to build, test and benchmark on Debian 12.
# Only missing packages are installed; run as root (or with sudo available).
set -euo pipefail

packages=(
  build-essential cmake pkg-config git
  libboost-dev libcli11-dev libzstd-dev zstd nlohmann-json3-dev
  libgtest-dev libgmock-dev librapidcheck-dev
  clang-14 libclang-rt-14-dev clang-tidy
  python3 time
  # real peers used by the test suite
  qemu-system-x86 openssh-server gdb
  # the nested Xen host (tests/xenhost): dom0 initramfs packing, depmod for
  # the guest kernel's modules, the ext2 output disk read back with debugfs
  cpio kmod e2fsprogs
  # manual pages, completion and Debian packaging (built and checked by the suite)
  scdoc mandoc man-db bash-completion debhelper dpkg-dev lintian
)
if [[ "${XENSTREAM_BENCH:-0}" == 1 ]]; then packages+=(hyperfine); fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  exit 0
fi
echo "install-deps: installing ${missing[*]}" >&2
sudo=()
if ((EUID != 0)); then sudo=(sudo); fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -q
"${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
