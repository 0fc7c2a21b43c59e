#!/usr/bin/env bash
# CPU per echoed datagram of the two UDP I/O layers, same machine, same run.
# Usage: tools/bench/udp-io/run.sh [SECONDS] [REPEATS]   (stops by itself; 127.0.0.1 only)
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-5}; reps=${2:-3}
swift build -c release --scratch-path .build-udpio >/dev/null
gcc -O2 -o .build-udpio/loadgen loadgen.c
bin=.build-udpio/release
hz=$(getconf CLK_TCK)
cpu() { awk -v hz="$hz" '{print ($14+$15)/hz}' "/proc/$1/stat"; }
measure() { # name port rate size
  local name=$1 port=$2 rate=$3 size=$4
  "$bin/$name" "$port" >/dev/null & local pid=$!
  sleep 0.5
  local c0; c0=$(cpu $pid)
  local out; out=$(.build-udpio/loadgen "$port" "$rate" "$size" "$secs")
  local c1; c1=$(cpu $pid)
  kill $pid; wait $pid 2>/dev/null || true
  local recv; recv=$(echo "$out" | awk '{print $4}')
  awk -v a="$c0" -v b="$c1" -v n="$recv" -v name="$name" -v rate="$rate" -v size="$size" -v o="$out" \
    'BEGIN { printf "%-8s %6d/s %5d B  %s  cpu/datagram %.2f us\n", name, rate, size, o, (b-a)*1e6/(n>0?n:1) }'
}
for rep in $(seq "$reps"); do
  for size in 64 1200; do
    for rate in 20000 50000; do
      measure NIOEcho 20001 "$rate" "$size"
      measure RawEcho 20002 "$rate" "$size"
    done
  done
done
