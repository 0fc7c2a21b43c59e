#!/usr/bin/env bash
# Heap allocations per forwarded datagram, steady state (issue 18): zrc-relay under an
# LD_PRELOAD malloc counter (malloccount.c), driven by `zrc-relay client bench`.
# Usage: tools/bench/malloc/run.sh [--zrc-bin PATH] [--rate R] [--size S] [--allocations "1 100"]
#                                  [--window SECONDS] [--warmup SECONDS]
# For each allocation count: the counter and `packets_forwarded_total` are read at the start
# and the end of a window in the middle of the load; the idle rate (measured first, same
# window) is subtracted. Prints one line per count; stops by itself (~1 min).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
zrc_bin="$repo/.build/release/zrc-relay"
rate=20000; size=1200; counts="1 100"; window=4; warmup=4
while [ $# -gt 0 ]; do
  case "$1" in
    --zrc-bin) zrc_bin=${2:?}; shift ;;
    --rate) rate=${2:?}; shift ;;
    --size) size=${2:?}; shift ;;
    --allocations) counts=${2:?}; shift ;;
    --window) window=${2:?}; shift ;;
    --warmup) warmup=${2:?}; shift ;;
    -h|--help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
[ -x "$zrc_bin" ] || { echo "run.sh: no zrc-relay at $zrc_bin (make build-release, or --zrc-bin)" >&2; exit 2; }

work=$(mktemp -d /tmp/malloc-bench.XXXXXX)
relay_pid=""
cleanup() { [ -n "$relay_pid" ] && kill "$relay_pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
cc -O2 -shared -fPIC -o "$work/malloccount.so" "$here/malloccount.c" -lpthread

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port); metrics=$(free_port)
pub=$( (cd "$work" && "$zrc_bin" token keygen --out "$work/bench.key") | tail -1 | tr -d '[:space:]')
(cd "$work" && LD_PRELOAD="$work/malloccount.so" MALLOC_COUNT_FILE="$work/count" exec "$zrc_bin" serve \
   --server.listen-addr 127.0.0.1 --server.listen-port "$port" --metrics.listen "127.0.0.1:$metrics" \
   --auth.trusted-keys "$pub" --security.allocation-rate-per-ip 100000/min --security.connection-rate-per-ip 100000/min \
   --security.accept-rate 100000 --limits.default-bandwidth-limit 0 --limits.default-quota 0 \
   --logging.level warning) >"$work/relay.log" 2>&1 &
relay_pid=$!
for _ in $(seq 200); do curl -sf "http://127.0.0.1:$metrics/ready" >/dev/null 2>&1 && break; sleep 0.05; done
curl -sf "http://127.0.0.1:$metrics/ready" >/dev/null || { echo "run.sh: relay did not start" >&2; cat "$work/relay.log" >&2; exit 1; }

count() { cat "$work/count"; }
packets() { curl -s "http://127.0.0.1:$metrics/metrics" | awk '/^zrc_relay_packets_forwarded_total/ {s += $NF} END {printf "%d\n", s}'; }
now() { date +%s.%N; }

sleep 1
c0=$(count); t0=$(now); sleep "$window"; c1=$(count); t1=$(now)
idle=$(python3 -c "print(($c1 - $c0) / ($t1 - $t0))")
echo "zrc-relay $("$zrc_bin" --version 2>/dev/null || true); idle: $(printf '%.1f' "$idle") allocations/s"
echo "allocations  rate/s  size  window_s  forwarded  mallocs  mallocs_per_datagram"
for n in $counts; do
  duration=$((warmup + window + 2))
  "$zrc_bin" client bench --relay "127.0.0.1:$port" --key "$work/bench.key" --allocations "$n" --rate "$rate" \
    --size "$size" --duration "${duration}s" --mode oneway --json >"$work/bench-$n.json" 2>"$work/bench-$n.err" &
  bench=$!
  sleep "$warmup"
  c0=$(count); p0=$(packets); t0=$(now)
  sleep "$window"
  c1=$(count); p1=$(packets); t1=$(now)
  wait "$bench" || { echo "run.sh: client bench failed:" >&2; tail -3 "$work/bench-$n.err" >&2; exit 1; }
  python3 - "$n" "$rate" "$size" "$c0" "$c1" "$p0" "$p1" "$t0" "$t1" "$idle" <<'PY'
import sys
n, rate, size, c0, c1, p0, p1, t0, t1, idle = sys.argv[1:]
dt = float(t1) - float(t0)
forwarded = int(p1) - int(p0)
mallocs = int(c1) - int(c0) - float(idle) * dt
per = mallocs / forwarded if forwarded else float("nan")
print(f"{n:>11}  {rate:>6}  {size:>4}  {dt:8.2f}  {forwarded:9d}  {mallocs:7.0f}  {per:20.3f}")
PY
done
