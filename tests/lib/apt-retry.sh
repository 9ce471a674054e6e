# Sourced by the scripts that fetch Debian packages at test time
# (tests/oracle/fetch-xen-tools.sh, tests/xenhost/fetch.sh).
#
# apt_retry COMMAND...: runs an apt command, waiting (up to five minutes)
# while another apt or dpkg holds its lock; any other failure is returned at
# once. The caller defines note() for the one "waiting" message.
apt_retry() {
    local i out
    for i in $(seq 1 60); do
        if out="$("$@" 2>&1)"; then
            printf '%s\n' "$out" >&2
            return 0
        fi
        if printf '%s' "$out" | grep -qiE 'could not get lock|unable to lock|is another process using it'; then
            [ "$i" -eq 1 ] && note "apt is locked by another process; waiting..."
            sleep 5
            continue
        fi
        printf '%s\n' "$out" >&2
        return 1
    done
    printf '%s\n' "$out" >&2
    return 1
}
