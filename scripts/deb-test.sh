#!/usr/bin/env bash
# deb-test.sh WORK_DIR: builds the Debian packages from this checkout (a
# copy of it in WORK_DIR, so nothing is written beside the checkout), lints
# them, installs them with apt-get as a user would, uses what they installed
# (tools, manual page, completion, the library from a separate project) and
# removes them again, checking that nothing is left behind. Needs root.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mkdir -p "$1" && cd "$1" && pwd)
say() { printf 'deb-test: %s\n' "$*" >&2; }
die() { say "FAILED: $*"; exit 1; }

version=$(dpkg-parsechangelog -l "$root/debian/changelog" -S Version)
src="$work/xenstream-$version"
rm -rf "$work" && mkdir -p "$src"
# The working tree as it is (uncommitted changes included), without builds.
tar -C "$root" --exclude='./build*' --exclude='./.git' -cf - . | tar -C "$src" -xf -
rev=$(git -C "$root" describe --always --dirty --abbrev=12 --exclude='*' 2>/dev/null || echo unknown)

say "building the packages (git $rev)"
# Test builds drop debug info (it triples compile time on 2 cores); the
# package built without these variables keeps it, as Debian's do.
(cd "$src" && XENSTREAM_GIT_REVISION=$rev DEB_CXXFLAGS_STRIP=-g DEB_BUILD_OPTIONS="parallel=$(nproc)" \
   dpkg-buildpackage -us -uc -b) >"$work/build.log" 2>&1 || { tail -40 "$work/build.log" >&2; die "dpkg-buildpackage"; }
debs=("$work"/xenstream_"$version"_*.deb "$work"/libxenstream-dev_"$version"_*.deb)
for d in "${debs[@]}"; do [[ -f $d ]] || die "missing package $d"; done

say "lintian"
lintian --fail-on error --tag-display-limit 0 "${debs[@]}" | tee "$work/lintian.txt" >&2 ||
  die "lintian reports errors"

say "installing with apt-get"
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q "${debs[@]}" >"$work/install.log" 2>&1 || { cat "$work/install.log" >&2; die "apt-get install"; }

for tool in streamverify streamconv streamrestore streamsave streamgen streammem; do
  [[ $(command -v "$tool") == /usr/bin/$tool ]] || die "$tool is not installed in /usr/bin"
  "$tool" --version | grep -qE "^$tool \(xenstream\) $version, git $rev$" || die "$tool --version: $("$tool" --version)"
  [[ -f /usr/share/bash-completion/completions/$tool ]] || die "no completion for $tool"
done
MANWIDTH=80 man streamverify 2>/dev/null | grep -q 'streamverify - say whether Xen would accept' ||
  die "man streamverify does not show the page"
MANWIDTH=80 man 5 xenstream-dir 2>/dev/null | grep -q 'manifest.json' || die "man 5 xenstream-dir"

say "using the tools and the library"
streamgen --guest pv --container xl "$work/sample.save" >/dev/null
streamverify -q "$work/sample.save" || die "streamverify of a streamgen image"
"$root/tests/install/build-consumer.sh" /usr "$work/consumer" "$work/sample.save" || die "the consumer program"

say "removing"
apt-get purge -y -q xenstream libxenstream-dev >"$work/purge.log" 2>&1 || { cat "$work/purge.log" >&2; die "apt-get purge"; }
for f in /usr/bin/streamverify /usr/include/xenstream /usr/share/man/man1/streamverify.1.gz \
         /usr/share/bash-completion/completions/streamverify; do
  [[ ! -e $f ]] || die "$f is still there after purge"
done
ls /usr/lib/*/cmake/xenstream >/dev/null 2>&1 && die "the CMake package is still there after purge"
dpkg-query -W xenstream >/dev/null 2>&1 && [[ $(dpkg-query -W -f='${Status}' xenstream) == *installed* ]] && \
  [[ $(dpkg-query -W -f='${Status}' xenstream) != *not-installed* ]] && die "xenstream still installed"
say "passed: built, linted, installed, used and removed ${#debs[@]} packages"
