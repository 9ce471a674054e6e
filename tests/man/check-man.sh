#!/usr/bin/env bash
# check-man.sh MAN_BUILD_DIR MAN_SOURCE_DIR TOOL=PATH...
# The manual pages as a reader meets them: mandoc's lint has nothing to say
# about any page, man(1) renders each, lexgrog (what whatis/apropos index)
# reads its NAME line, and every option that a tool's --help lists is
# documented in that tool's page.
set -euo pipefail
built=$1 src=$2; shift 2
fail=0
bad() { echo "check-man: $*" >&2; fail=1; }

pages=("$built"/*.[0-9])
((${#pages[@]} >= 7)) || bad "expected at least 7 pages in $built, found ${#pages[@]}"
for page in "${pages[@]}"; do
  name=$(basename "$page")
  lint=$(mandoc -T lint -W warning "$page" 2>&1) || true
  [[ -z $lint ]] || bad "$name: mandoc lint: $lint"
  text=$(MANWIDTH=80 man -l "$page" 2>&1) || bad "$name: man -l failed: $text"
  grep -q '^NAME' <<<"$text" || bad "$name: rendered page has no NAME section"
  lexgrog "$page" >/dev/null 2>&1 || bad "$name: lexgrog cannot read its NAME line"
done

for spec in "$@"; do
  tool=${spec%%=*} exe=${spec#*=}
  scd="$src/$tool.1.scd"
  [[ -f $scd ]] || { bad "$tool has no manual page source $scd"; continue; }
  help=$("$exe" --help)
  # A tool with subcommands: their options count too.
  for sub in $(sed -n '/^Subcommands:/,/^$/p' <<<"$help" | awk 'NR > 1 && NF { print $1 }'); do
    help+=$'\n'$("$exe" "$sub" --help)
  done
  opts=$(grep -E '^ +-' <<<"$help" | grep -oE -- '(^|[ ,])--[a-z][a-z0-9-]*' | tr -d ' ,' | sort -u)
  [[ -n $opts ]] || bad "$tool: found no options in --help"
  for o in $opts --version; do
    grep -qF -- "$o" "$scd" || bad "$tool: option $o is in --help but not in $tool.1"
  done
  version=$("$exe" --version)
  grep -qE "^$tool \(xenstream\) [0-9]+\.[0-9]+\.[0-9]+, git [0-9a-f]{7,}(-dirty)?$" <<<"$version" ||
    bad "$tool --version printed '$version'"
done
((fail == 0)) && echo "check-man: ${#pages[@]} pages and $# tools checked"
exit $fail
