# Sourced by the bench scripts: prints the machine a benchmark ran on, so a figure quoted from its
# output carries its context (cores and CPU model; memory, since several benches report RSS).
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo) RAM, $(. /etc/os-release && echo "$PRETTY_NAME")"
