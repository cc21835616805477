# Sourced by the bench scripts after bench/machine.sh: the helpers they share.

# The median of the numbers on stdin, one per line.
median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

# The median of the line-by-line ratios of two files of numbers (FILE_A / FILE_B): paired runs,
# so a slow moment of a shared machine touches both sides of a pair.
median_ratio() { paste -d' ' "$1" "$2" | awk '{print $1 / $2}' | median; }
