# bash completion for the xenstream tools (streamverify, streamconv,
# streamrestore, streamsave, streamgen, streammem).
#
# The options are read from the tool's own --help (CLI11's layout), once per
# shell and tool, so the completion never falls behind the tool: options
# complete after '-', the values listed in --help ({auto,xl,...}) complete
# after their option, and everything else completes as a path (directories
# only where the tool wants a directory).

# Prints "NAME VALUE-KIND CHOICES" for every option in the --help on stdin:
# VALUE-KIND is "-" for a flag, else the placeholder (TEXT, UINT, ...);
# CHOICES is a comma list or "-".
_xenstream_parse_help() {
    awk '
        /^Options:/ { in_opts = 1; next }
        /^[A-Z][A-Za-z ]*:$/ { in_opts = 0 }
        in_opts && /^  -/ {
            line = $0
            sub(/^  +/, "", line)
            split(line, parts, / +/)
            names = parts[1]
            kind = "-"; choices = "-"
            if (parts[2] ~ /^[A-Z]+/) {
                kind = parts[2]
                if (match(kind, /\{[^}]*\}/)) choices = substr(kind, RSTART + 1, RLENGTH - 2)
                sub(/:.*/, "", kind)
            }
            n = split(names, each, /,/)
            for (i = 1; i <= n; i++) if (each[i] ~ /^-/) print each[i], kind, choices
        }'
}

# Options of TOOL that take a directory, and whether its operands are
# directories.
_xenstream_dir_option() {
    case "$1:$2" in
        streamrestore:-o|streamrestore:--out|streamrestore:--recover) return 0 ;;
    esac
    return 1
}
_xenstream_dir_operands() {
    case "$1" in
        streamsave) return 0 ;;
    esac
    return 1
}

declare -gA _xenstream_help_cache 2>/dev/null || true

_xenstream_tool() {
    local tool=$1 cur prev
    cur=${COMP_WORDS[COMP_CWORD]}
    prev=${COMP_WORDS[COMP_CWORD - 1]}
    local name=${tool##*/}

    # A tool with subcommands (streammem): the first operand names one, and
    # from then on that subcommand's options apply.
    local subs=${_xenstream_help_cache["$tool subcommands"]-}
    if [[ -z $subs ]]; then
        subs=$("$tool" --help 2>/dev/null | sed -n '/^Subcommands:/,/^$/p' | awk 'NR > 1 && NF { print $1 }' | tr '\n' ' ')
        _xenstream_help_cache["$tool subcommands"]=${subs:- }
    fi
    local sub="" i
    if [[ -n ${subs// /} ]]; then
        for ((i = 1; i < COMP_CWORD; i++)); do
            if [[ " $subs " == *" ${COMP_WORDS[i]} "* ]]; then sub=${COMP_WORDS[i]}; break; fi
        done
        if [[ -z $sub && $cur != -* ]]; then
            mapfile -t COMPREPLY < <(compgen -W "$subs" -- "$cur")
            return 0
        fi
    fi

    local key="$tool${sub:+ $sub}"
    local table=${_xenstream_help_cache[$key]-}
    if [[ -z $table ]]; then
        table=$("$tool" $sub --help 2>/dev/null | _xenstream_parse_help) || return
        _xenstream_help_cache[$key]=$table
    fi

    local opt kind choices
    # A value for the option before the cursor.
    if [[ $prev == -* && $COMP_CWORD -gt 1 ]]; then
        while read -r opt kind choices; do
            [[ $opt == "$prev" && $kind != - ]] || continue
            if [[ $choices != - ]]; then
                mapfile -t COMPREPLY < <(compgen -W "${choices//,/ }" -- "$cur")
            elif _xenstream_dir_option "$name" "$prev"; then
                mapfile -t COMPREPLY < <(compgen -d -- "$cur")
            else
                mapfile -t COMPREPLY < <(compgen -f -- "$cur")
            fi
            return 0
        done <<<"$table"
    fi

    if [[ $cur == -* ]]; then
        local all=()
        while read -r opt kind choices; do all+=("$opt"); done <<<"$table"
        all+=(--help --version)
        mapfile -t COMPREPLY < <(compgen -W "${all[*]}" -- "$cur")
        return 0
    fi

    if _xenstream_dir_operands "$name"; then
        mapfile -t COMPREPLY < <(compgen -d -- "$cur")
    else
        mapfile -t COMPREPLY < <(compgen -f -- "$cur")
    fi
    compopt -o filenames 2>/dev/null
    return 0
}

complete -F _xenstream_tool streamverify streamconv streamrestore streamsave streamgen streammem
