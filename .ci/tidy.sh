#!/usr/bin/env bash
# Runs clang-tidy (the checked-in .clang-tidy) on the sources of libstream/
# and codecs/ and fails on any warning.
#
#   .ci/tidy.sh BUILD_DIR [PATH...]
#
# BUILD_DIR is any configured build of the tree (it holds
# compile_commands.json; CMAKE_EXPORT_COMPILE_COMMANDS is on by default).
# PATHs, relative to the repository, narrow the run to some folders or
# files; the default is libstream and codecs, every .cpp in them that the
# build compiles. Uses $CLANG_TIDY if set, else clang-tidy; runs two files
# at a time ($TIDY_JOBS).
set -euo pipefail

if [[ $# -lt 1 || $1 == -h || $1 == --help ]]; then
  sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
build=$(cd "$1" && pwd)
shift
repo=$(cd "$(dirname "$0")/.." && pwd)
tidy=${CLANG_TIDY:-clang-tidy}
jobs=${TIDY_JOBS:-2}
db=$build/compile_commands.json
if [[ ! -f $db ]]; then
  echo "tidy.sh: $db not found: configure the build first" >&2
  exit 2
fi
command -v "$tidy" >/dev/null || { echo "tidy.sh: $tidy not found" >&2; exit 2; }

paths=("$@")
[[ ${#paths[@]} -gt 0 ]] || paths=(libstream codecs)

# The files the build compiles, under the chosen paths.
mapfile -t files < <(
  python3 - "$db" "$repo" "${paths[@]}" <<'EOF'
import json, os, sys
db, repo, paths = sys.argv[1], sys.argv[2], sys.argv[3:]
roots = [os.path.join(repo, p) for p in paths]
seen = set()
for entry in json.load(open(db)):
    f = os.path.normpath(os.path.join(entry["directory"], entry["file"]))
    if f in seen or not f.endswith(".cpp"):
        continue
    if any(f == r or f.startswith(r.rstrip("/") + "/") for r in roots):
        seen.add(f)
        print(f)
EOF
)
if [[ ${#files[@]} -eq 0 ]]; then
  echo "tidy.sh: no compiled sources under: ${paths[*]}" >&2
  exit 2
fi

out=$(mktemp)
trap 'rm -f "$out"' EXIT
status=0
printf '%s\n' "${files[@]}" |
  xargs -P "$jobs" -n 1 "$tidy" -p "$build" --quiet --extra-arg=-Wno-unknown-warning-option >"$out" 2>/dev/null || status=$?
# Warnings are errors (WarningsAsErrors in .clang-tidy); print them once each.
if grep -qE '(warning|error):' "$out"; then
  grep -E -A3 '(warning|error):' "$out" | awk '!seen[$0]++'
  n=$(grep -cE '(warning|error):' "$out" || true)
  echo "tidy.sh: $n finding(s) in ${#files[@]} files" >&2
  exit 1
fi
if [[ $status -ne 0 ]]; then
  cat "$out"
  echo "tidy.sh: clang-tidy failed (status $status)" >&2
  exit 1
fi
echo "tidy.sh: ${#files[@]} files clean"
