#!/usr/bin/env bash
# completion-test.sh BUILD_DIR WORK_DIR
# Installs the build into a scratch prefix and completes command lines in a
# real bash with Debian's bash-completion, which must find our completion
# where `cmake --install` put it (XDG_DATA_DIRS/bash-completion/completions).
set -euo pipefail
build=$1 work=$2
rm -rf "$work" && mkdir -p "$work/cwd/sub.d"
cmake --install "$build" --prefix "$work/prefix" >/dev/null
touch "$work/cwd/guest.save" "$work/cwd/other.xen"

cat >"$work/driver.bash" <<'DRIVER'
set -u
source /usr/share/bash-completion/bash_completion
# complete_line "LINE": what bash would offer for LINE (cursor at its end),
# one candidate per line, sorted.
complete_line() {
    local line=$1
    read -r -a COMP_WORDS <<<"$line"
    [[ $line == *" " ]] && COMP_WORDS+=("")
    COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
    COMP_LINE=$line COMP_POINT=${#line}
    local cmd=${COMP_WORDS[0]}
    complete -p "$cmd" >/dev/null 2>&1 || __load_completion "$cmd" || { echo "no completion loaded for $cmd"; return 1; }
    local spec func
    spec=$(complete -p "$cmd")
    func=$(sed -E 's/.*-F ([^ ]+).*/\1/' <<<"$spec")
    COMPREPLY=()
    "$func" "$cmd" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
    printf '%s\n' "${COMPREPLY[@]}" | sort
}
DRIVER

fail=0
expect() {  # expect "LINE" "EXPECTED (space-separated, sorted)"
    local got
    got=$(cd "$work/cwd" && PATH="$work/prefix/bin:$PATH" XDG_DATA_DIRS="$work/prefix/share" \
          bash --norc --noprofile -c 'source "$1"; complete_line "$2"' _ "$work/driver.bash" "$1" | tr '\n' ' ')
    got=${got% }
    if [[ $got != "$2" ]]; then
        echo "completion-test: '$1' completed to [$got], expected [$2]" >&2
        fail=1
    fi
}
expect_has() {  # expect_has "LINE" WORD: WORD is among the candidates
    local got
    got=$(cd "$work/cwd" && PATH="$work/prefix/bin:$PATH" XDG_DATA_DIRS="$work/prefix/share" \
          bash --norc --noprofile -c 'source "$1"; complete_line "$2"' _ "$work/driver.bash" "$1")
    grep -qxF -- "$2" <<<"$got" || { echo "completion-test: '$1' does not offer $2 (got: $(echo $got))" >&2; fail=1; }
}

expect "streamverify --js" "--json"
expect "streamverify --format " "auto libvirt libxc libxl xl"
expect "streamverify -f li" "libvirt libxc libxl"
expect "streamverify gu" "guest.save"
expect "streamverify " "guest.save other.xen sub.d"
expect "streamconv -w " "32 64"
expect "streamconv --guest-type " "hvm pv"
expect "streamrestore --out " "sub.d"
expect "streamrestore --rec" "--recover"
expect "streamrestore guest.save --out s" "sub.d"
expect "streamsave " "sub.d"
expect "streamsave --z" "--zstd --zstd-level"
expect "streamgen --container " "libvirt none xl"
expect "streammem " "info read regs runs translate"
expect "streammem r" "read regs runs"
expect "streammem read guest.save 0x1000 -f " "hex json raw"
expect_has "streammem translate --" "--vcpu"
expect "streammem info gu" "guest.save"
for tool in streamverify streamconv streamrestore streamsave streamgen streammem; do
    expect_has "$tool --" "--version"
    expect_has "$tool --" "--help"
    expect_has "$tool --" "--quiet"
done
((fail == 0)) && echo "completion-test: all completions as expected"
exit $fail
