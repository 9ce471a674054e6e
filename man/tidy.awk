# Tidies scdoc's output for mandoc's lint: a paragraph macro right before
# the end of an indented block moves after it (where it separates the next
# item), and the ones that do nothing (before or right after a section
# heading, twice in a row, at the end) are dropped.
{ lines[NR] = $0 }
END {
  n = 0
  for (i = 1; i <= NR; i++) {
    if (lines[i] == ".P" && lines[i+1] == ".RE") { out[++n] = ".RE"; out[++n] = ".P"; i++; continue }
    out[++n] = lines[i]
  }
  for (i = 1; i <= n; i++) {
    if (out[i] == ".P" && (out[i+1] ~ /^\.(SH|SS|P)( |$)/ || out[i-1] ~ /^\.(SH|SS|TH)( |$)/ || i == n)) continue
    print out[i]
  }
}
