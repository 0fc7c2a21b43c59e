#!/usr/bin/env bash
# Relay benchmark: coturn and zrc-relay in the same run, same machine, 127.0.0.1 only.
# Usage: tools/bench/relay/run.sh [--smoke] [--runs K] [--zrc-bin PATH] [--pin CPU] [--out FILE]
#                                 [--coturn-peer udp|turn] [--only REGEX] [--targets coturn|zrc-relay|both]
#                                 [--zrc-admin]  (admin API on, one /admin/events subscriber attached)
#                                 [--zrc-listen ADDR]  (zrc-relay's bind address, default 127.0.0.1; 0.0.0.0 = per-packet IP_PKTINFO)
#                                 [--zrc-redis]  (zrc-relay in a fleet: a redis-server on a free port, redis.url set)
#                                 [--zrc-ack standard|coalescing]  (how zrc's load generator acknowledges; default standard)
#                                 [--zrc-generators N]  (zrc's load generator: N QUIC endpoints, each its own socket and thread)
#                                 [--budget SECONDS]  (cells that would start later are skipped; default 1080)
# See README.md beside this file. Stops by itself (default run ~18-20 min, --smoke < 30 s).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
build="$here/.build-bench"

smoke=0
runs=3
zrc_bin=""
pin=""
out=""
coturn_peer=udp
only=""
want=both
zrc_admin=0
zrc_listen=127.0.0.1
zrc_redis=0
zrc_ack=standard
zrc_generators=1
budget=1080 # seconds: cells that would start later are skipped, so the run ends by itself
usage() { sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) smoke=1 ;;
    --runs) runs=${2:?}; shift ;;
    --zrc-bin) zrc_bin=${2:?}; shift ;;
    --pin) pin=${2:?}; shift ;;
    --out) out=${2:?}; shift ;;
    --coturn-peer) coturn_peer=${2:?}; shift ;;
    --only) only=${2:?}; shift ;;
    --targets) want=${2:?}; shift ;;
    --zrc-admin) zrc_admin=1 ;;
    --zrc-listen) zrc_listen=${2:?}; shift ;;
    --zrc-redis) zrc_redis=1 ;;
    --zrc-ack) zrc_ack=${2:?}; shift ;;
    --zrc-generators) zrc_generators=${2:?}; shift ;;
    --budget) budget=${2:?}; shift ;;
    -h|--help) usage ;;
    *) echo "run.sh: unknown argument $1" >&2; usage ;;
  esac
  shift
done
case "$coturn_peer" in udp|turn) ;; *) echo "run.sh: --coturn-peer must be udp or turn" >&2; exit 2 ;; esac
case "$want" in coturn|zrc-relay|both) ;; *) echo "run.sh: --targets must be coturn, zrc-relay or both" >&2; exit 2 ;; esac
case "$zrc_ack" in standard|coalescing) ;; *) echo "run.sh: --zrc-ack must be standard or coalescing" >&2; exit 2 ;; esac
[ "$smoke" = 1 ] && runs=1

t_begin=$(date +%s)
progress() { echo "[$(( $(date +%s) - t_begin ))s] $*" >&2; }
over_budget() { [ $(( $(date +%s) - t_begin )) -ge "$budget" ]; }

# ---- tools ----
need_pkgs=()
command -v turnserver >/dev/null || need_pkgs+=(coturn)
command -v cc >/dev/null || need_pkgs+=(gcc)
[ -e /usr/include/openssl/hmac.h ] || need_pkgs+=(libssl-dev)
command -v python3 >/dev/null || need_pkgs+=(python3)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing ${need_pkgs[*]} (Debian packages)" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}") >/dev/null
  else
    echo "run.sh: missing ${need_pkgs[*]}; install them (Debian: apt-get install ${need_pkgs[*]})" >&2
    exit 2
  fi
fi
mkdir -p "$build"
cc -O2 -Wall -o "$build/turnload" "$here/turnload.c" -lcrypto
turnload="$build/turnload"

if [ -z "$zrc_bin" ] && [ -x "$repo/.build/release/zrc-relay" ]; then zrc_bin="$repo/.build/release/zrc-relay"; fi
zrc_ok=0
if [ "$want" = coturn ]; then zrc_bin=""; fi
if [ -n "$zrc_bin" ] && [ -x "$zrc_bin" ] && "$zrc_bin" client bench --help >/dev/null 2>&1; then zrc_ok=1; fi
[ "$zrc_ok" = 1 ] || [ "$want" = coturn ] || echo "note: zrc-relay side unavailable (${zrc_bin:-no binary; build with swift build -c release or pass --zrc-bin}); its cells are n/a" >&2

stamp=$(date +%Y%m%d-%H%M%S)
[ -n "$out" ] || out="$build/results-$stamp.jsonl"
: >"$out"
report="${out%.jsonl}.txt"

work=$(mktemp -d /tmp/relay-bench.XXXXXX)
coturn_pid=""
zrc_pid=""
redis_pid=""
stop_pid() {
  local pid=$1
  [ -n "$pid" ] || return 0
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  stop_pid "$coturn_pid"
  stop_pid "$zrc_pid"
  stop_pid "$redis_pid"
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
pfx=()
[ -n "$pin" ] && pfx=(taskset -c "$pin")
run() { "${pfx[@]}" "$@"; }

# A port free for both UDP and TCP on 127.0.0.1.
free_port() {
  python3 - <<'PY'
import socket
while True:
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind(("127.0.0.1", 0))
    port = u.getsockname()[1]
    t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        t.bind(("127.0.0.1", port))
    except OSError:
        continue
    finally:
        t.close()
        u.close()
    print(port)
    break
PY
}

rss_of() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo null; }

# ---- coturn ----
turn_port=$(free_port)
"${pfx[@]}" turnserver -n --listening-ip 127.0.0.1 --relay-ip 127.0.0.1 --listening-port "$turn_port" \
  --no-tls --no-dtls --no-cli --no-tcp-relay --no-rfc5780 --no-multicast-peers --allow-loopback-peers \
  --lt-cred-mech --user bench:bench --realm bench \
  --user-quota 0 --total-quota 0 --max-bps 0 --bps-capacity 0 \
  --userdb "$work/turndb" --pidfile "$work/turn.pid" --log-file "$work/turn.log" --simple-log --no-stdout-log \
  >"$work/turn.out" 2>&1 &
coturn_pid=$!
for _ in $(seq 50); do
  ss -Hluan "sport = :$turn_port" 2>/dev/null | grep -q . && break
  kill -0 "$coturn_pid" 2>/dev/null || { echo "run.sh: turnserver exited:" >&2; tail -5 "$work/turn.out" "$work/turn.log" >&2; exit 1; }
  sleep 0.1
done
sleep 0.3
coturn_rss_idle=$(rss_of "$coturn_pid")
coturn_version=$(turnserver --version 2>/dev/null | head -1)

# ---- zrc-relay ----
zrc_port=""; zrc_key="$work/zrc/bench.key"; zrc_rss_idle=null
if [ "$zrc_ok" = 1 ]; then
  mkdir -p "$work/zrc"
  zrc_port=$(free_port)
  metrics_port=$(free_port)
  pub=$( (cd "$work/zrc" && "$zrc_bin" token keygen --out "$zrc_key") | tail -1 | tr -d '[:space:]')
  admin_args=()
  if [ "$zrc_redis" = 1 ]; then
    redis_port=$(free_port)
    redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --daemonize no >"$work/redis.log" 2>&1 &
    redis_pid=$!
    admin_args+=(--redis.url "redis://127.0.0.1:$redis_port/0" --server.instance-id bench)
    echo "zrc-relay: in a fleet with redis-server on 127.0.0.1:$redis_port" >&2
  fi
  if [ "$zrc_admin" = 1 ]; then
    admin_port=$(free_port)
    admin_token=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
    admin_args+=(--admin.enabled true --admin.listen "127.0.0.1:$admin_port" --admin.token "$admin_token")
  fi
  (cd "$work/zrc" && exec "${pfx[@]}" "$zrc_bin" serve "${admin_args[@]}" --server.listen-addr "$zrc_listen" --server.listen-port "$zrc_port" \
     --metrics.listen "127.0.0.1:$metrics_port" --auth.trusted-keys "$pub" \
     --security.allocation-rate-per-ip 100000/min --security.connection-rate-per-ip 100000/min \
     --security.accept-rate 100000 --limits.max-allocations 100000 --limits.max-allocations-per-key 100000 \
     --limits.default-bandwidth-limit 0 --limits.default-quota 0 --logging.level warning) >"$work/zrc.log" 2>&1 &
  zrc_pid=$!
  up=0
  for _ in $(seq 300); do
    if curl -sf "http://127.0.0.1:$metrics_port/ready" >/dev/null 2>&1; then up=1; break; fi
    kill -0 "$zrc_pid" 2>/dev/null || break
    sleep 0.1
  done
  if [ "$up" = 1 ]; then
    if [ "$zrc_admin" = 1 ]; then
      # One events subscriber for the whole run (it reads everything; killed with the relay).
      curl -sN -H "Authorization: Bearer $admin_token" "http://127.0.0.1:$admin_port/admin/events" >"$work/events.log" 2>&1 &
      echo "zrc-relay: admin API on 127.0.0.1:$admin_port with one /admin/events subscriber" >&2
    fi
    sleep 0.3
    zrc_rss_idle=$(rss_of "$zrc_pid")
  else
    echo "run.sh: zrc-relay did not become healthy:" >&2; tail -5 "$work/zrc.log" >&2
    stop_pid "$zrc_pid"; zrc_pid=""; zrc_ok=0; zrc_failed_start=1
  fi
fi

# ---- one measurement ----
# cell NAME TARGET RUN PEER ALLOCS RATE SIZE DURATION MODE: appends one JSON line (or a failure line) to $out.
cell() {
  local name=$1 target=$2 k=$3 peer=$4 allocs=$5 rate=$6 size=$7 dur=$8 mode=$9 line="" rc=0
  local limit=$((dur + 60))
  last_result="0 1"
  if [ -n "$only" ] && ! [[ "$name" =~ $only ]]; then return 0; fi
  [ "$target" = coturn ] || [ "$zrc_ok" = 1 ] || return 0
  progress "$name, $target, run $k"
  if [ "$target" = coturn ]; then
    line=$(run timeout "$limit" "$turnload" --server "127.0.0.1:$turn_port" --user bench:bench --peer "$peer" \
             --allocations "$allocs" --rate "$rate" --size "$size" --duration "$dur" --mode "$mode" \
             --relay-pid "$coturn_pid" --json 2>>"$work/client.err" | tail -1) || rc=$?
  else
    local gens=$zrc_generators
    [ "$gens" -le "$allocs" ] || gens=$allocs
    line=$(run timeout "$limit" "$zrc_bin" client bench --relay "127.0.0.1:$zrc_port" --key "$zrc_key" \
             --allocations "$allocs" --rate "$rate" --size "$size" --duration "${dur}s" --mode "$mode" \
             --ack "$zrc_ack" --generators "$gens" --relay-pid "$zrc_pid" --json 2>>"$work/client.err" | tail -1) || rc=$?
  fi
  case "$line" in
    "{"*"}") echo "{\"cell\":\"$name\",\"run\":$k,${line#\{}" >>"$out" ;;
    *) echo "{\"cell\":\"$name\",\"run\":$k,\"target\":\"$target\",\"error\":\"exit $rc\"}" >>"$out"
       echo "  $target $name run $k failed (exit $rc): $(tail -2 "$work/client.err" | tr '\n' ' ')" >&2 ;;
  esac
  # The last line's figures, for the max-rate search: "forwarded loss".
  last_result=$(python3 -c 'import json,sys
d=json.loads(sys.argv[1]) if sys.argv[1].startswith("{") else {}
print(d.get("forwarded", d.get("received", 0)), d.get("loss", 1))' "$line" 2>/dev/null || echo "0 1")
}

targets=()
[ "$want" != zrc-relay ] && targets+=(coturn)
[ "$zrc_ok" = 1 ] && [ "$want" != coturn ] && targets+=(zrc-relay)

if [ "$smoke" = 1 ]; then
  for t in "${targets[@]}"; do
    cell smoke "$t" 1 "$coturn_peer" 1 2000 64 1 oneway
  done
else
  # Memory: 1000 idle pairs held for 5 s (coturn: both peers allocate, 2000 allocations).
  for t in "${targets[@]}"; do
    if [ "$t" = coturn ]; then cell mem1000 coturn 1 turn 1000 0 64 5 oneway
    else cell mem1000 zrc-relay 1 udp 1000 0 64 5 oneway; fi
  done
  # Oneway matrix.
  for size in 64 512 1200; do
    for rate in 20000 50000; do
      for allocs in 1 100; do
        name="${size}B ${rate}/s x${allocs}"
        for k in $(seq "$runs"); do
          over_budget && { progress "time budget reached; skipping $name"; continue; }
          for t in "${targets[@]}"; do
            cell "$name" "$t" "$k" "$coturn_peer" "$allocs" "$rate" "$size" 3 oneway
          done
        done
      done
    done
  done
  # Many allocations at moderate rates.
  for rate in 20000 50000; do
    name="1200B ${rate}/s x1000"
    for k in $(seq "$runs"); do
      over_budget && { progress "time budget reached; skipping $name"; continue; }
      for t in "${targets[@]}"; do
        cell "$name" "$t" "$k" "$coturn_peer" 1000 "$rate" 1200 3 oneway
      done
    done
  done
  # Round trip at 1000/s.
  for k in $(seq "$runs"); do
    over_budget && break
    for t in "${targets[@]}"; do
      cell "rtt 1200B 1000/s x1" "$t" "$k" "$coturn_peer" 1 1000 1200 5 rtt
    done
  done
  # Max rate: 1200 B, 1 and 100 allocations, step up until loss >= 1 % (one retry per step).
  for allocs in 1 100; do
  for t in "${targets[@]}"; do
    for rate in 50000 75000 100000 125000 150000 200000 250000 300000; do
      over_budget && break
      ok=0
      for attempt in 1 2; do
        cell "maxrate x$allocs $rate" "$t" "$attempt" "$coturn_peer" "$allocs" "$rate" 1200 2 oneway
        read -r fwd loss <<<"$last_result"
        if [ "${fwd:-0}" != 0 ] && awk -v l="$loss" 'BEGIN{exit !(l < 0.01)}'; then ok=1; break; fi
      done
      [ "$ok" = 1 ] || break
    done
  done
  done
  # coturn with both peers allocated (two relay hops per datagram), for reference.
  if [ "$coturn_peer" = udp ]; then
    for size in 64 1200; do
      for k in $(seq "$runs"); do
        over_budget && break
        cell "2hop ${size}B 50000/s x1" coturn "$k" turn 1 50000 "$size" 3 oneway
      done
    done
  fi
fi

# ---- report ----
machine_cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
zrc_version=n/a
[ "$zrc_ok" = 1 ] && zrc_version="$(basename "$zrc_bin"), $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo '?')"
python3 - "$out" <<PY | tee "$report"
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
smoke = $smoke
print("relay benchmark  $(date -u +%Y-%m-%dT%H:%M:%SZ)")
print("machine: nproc $(nproc), ${machine_cpu}, kernel $(uname -r), load at start $(cut -d' ' -f1-3 /proc/loadavg)")
print("coturn ${coturn_version} (peer: ${coturn_peer}); zrc-relay ${zrc_version}; runs per cell ${runs} (median)${pin:+; pinned to CPU $pin}$( [ "$zrc_admin" = 1 ] && echo "; zrc-relay with the admin API on and one /admin/events subscriber")")
print("raw: $out")
print()

def med(cell, target, key):
    vals = [r[key] for r in rows if r.get("cell") == cell and r.get("target") == target and r.get(key) is not None]
    return statistics.median(vals) if vals else None

def f(v, fmt="{:.2f}"):
    return "n/a" if v is None else fmt.format(v)

def pct(v):
    return "n/a" if v is None else "{:.2f}%".format(v * 100)

def ratio(a, b):
    return "n/a" if a is None or b in (None, 0) else "{:.2f}".format(a / b)

cells = []
for r in rows:
    c = r.get("cell")
    if c not in cells:
        cells.append(c)

def table(title, header, body):
    print(title)
    widths = [max(len(str(x)) for x in col) for col in zip(header, *body)] if body else [len(h) for h in header]
    line = lambda xs: "  ".join(str(x).rjust(w) if i else str(x).ljust(w) for i, (x, w) in enumerate(zip(xs, widths)))
    print(line(header))
    for b in body:
        print(line(b))
    print()

if smoke:
    body = []
    for t in ("coturn", "zrc-relay"):
        fw = med("smoke", t, "forwarded")
        body.append([t, f(med("smoke", t, "sent"), "{:.0f}"), f(fw, "{:.0f}"), pct(med("smoke", t, "loss")),
                     f(med("smoke", t, "relay_cpu_us_per_datagram"))])
    table("smoke (1 allocation, 2000/s, 64 B, 1 s)", ["target", "sent", "forwarded", "loss", "cpu us/dgram"], body)
    sys.exit(0)

body = []
for c in cells:
    if not c or not c[0].isdigit():
        continue
    cc, zc = med(c, "coturn", "relay_cpu_us_per_datagram"), med(c, "zrc-relay", "relay_cpu_us_per_datagram")
    body.append([c, f(cc), f(zc), ratio(zc, cc), pct(med(c, "coturn", "loss")), pct(med(c, "zrc-relay", "loss")),
                 f(med(c, "coturn", "relay_rss_kib"), "{:.0f}"), f(med(c, "zrc-relay", "relay_rss_kib"), "{:.0f}"),
                 f(med(c, "coturn", "loadgen_cpu_pct"), "{:.0f}%"), f(med(c, "zrc-relay", "generator_cpu_pct"), "{:.0f}%")])
table("one way: relay CPU per forwarded datagram (us), medians",
      ["cell", "coturn", "zrc", "zrc/coturn", "coturn loss", "zrc loss", "coturn RSS KiB", "zrc RSS KiB", "turnload cpu", "zrc gen cpu"], body)

c = "rtt 1200B 1000/s x1"
body = [[t] + [f(med(c, t, k), "{:.0f}") for k in ("rtt_p50_us", "rtt_p99_us", "rtt_p999_us")]
        + [pct(med(c, t, "loss"))] for t in ("coturn", "zrc-relay")]
table("round trip (B echoes through the relay), 1200 B, 1000/s, 1 allocation, us", ["target", "p50", "p99", "p999", "loss"], body)

body = []
for c in cells:
    if c and c.startswith("2hop"):
        body.append([c.replace("2hop ", ""), f(med(c, "coturn", "relay_cpu_us_per_datagram")), pct(med(c, "coturn", "loss"))])
if body:
    table("coturn, both peers allocated (2 relay hops per datagram), us per end-to-end datagram", ["cell", "coturn", "loss"], body)

def cpu_pct(r, cpu_key, per_dgram=False):
    # % of one core over the cell: the generators report their own; the relay's is per datagram.
    if per_dgram:
        v, fw, d = r.get("relay_cpu_us_per_datagram"), r.get("forwarded"), r.get("duration_s") or r.get("duration")
        return None if v is None or not fw or not d else v * fw / (float(d) * 1e6) * 100
    return r.get(cpu_key)

body = []
for allocs in (1, 100):
    for t in ("coturn", "zrc-relay"):
        gen_key = "loadgen_cpu_pct" if t == "coturn" else "generator_cpu_pct"
        best, stop = None, None
        for r in rows:
            c = str(r.get("cell", ""))
            if r.get("target") != t or not c.startswith("maxrate x%d " % allocs) or r.get("loss") is None:
                continue
            if r.get("forwarded", 0) > 0 and r["loss"] < 0.01:
                if best is None or r["rate"] > best["rate"]:
                    best = r
            elif stop is None or r["rate"] < stop["rate"] or (r["rate"] == stop["rate"] and r["loss"] < stop["loss"]):
                stop = r
        if stop is not None and best is not None and stop["rate"] <= best["rate"]:
            stop = None
        line = [t, "x%d" % allocs, f(best and best["rate"], "{:.0f}"), f(best and best.get("forwarded_rate"), "{:.0f}"),
                f(best and cpu_pct(best, None, True), "{:.0f}%"), f(best and cpu_pct(best, gen_key), "{:.0f}%")]
        if stop is not None:
            limited = stop.get("generator_limited")
            line += [f(stop["rate"], "{:.0f}"), pct(stop.get("loss")), f(cpu_pct(stop, None, True), "{:.0f}%"), f(cpu_pct(stop, gen_key), "{:.0f}%"),
                     "n/a" if limited is None else ("generator" if limited else "relay")]
        else:
            line += ["n/a"] * 5
        body.append(line)
table("max rate, 1200 B, loss < 1 % (steps 50k..300k); CPU in % of one core (2 cores in all)",
      ["target", "allocs", "offered/s", "forwarded/s", "relay cpu", "gen cpu", "first failed/s", "its loss", "relay cpu", "gen cpu", "limit (zrc)"], body)

body = []
idle = {"coturn": "$coturn_rss_idle", "zrc-relay": "$zrc_rss_idle"}
for t in ("coturn", "zrc-relay"):
    before = int(idle[t]) if idle[t].isdigit() else None
    held = med("mem1000", t, "relay_rss_kib")
    per = (held - before) / 1000 if held is not None and before is not None else None
    body.append([t, f(before, "{:.0f}"), f(held, "{:.0f}"), f(per, "{:.1f}")])
table("memory: 1000 idle pairs (coturn: 2000 allocations, both peers TURN clients)",
      ["target", "RSS idle KiB", "RSS 1000 pairs KiB", "KiB per pair"], body)
PY

# Smoke verdict: every available target must have forwarded something.
if [ "$smoke" = 1 ]; then
  status=0
  for t in "${targets[@]}"; do
    fwd=$(python3 -c 'import json,sys
n=0
for l in open(sys.argv[1]):
    d=json.loads(l)
    if d.get("target")==sys.argv[2]: n+=d.get("forwarded",0) or 0
print(n)' "$out" "$t")
    if [ "$fwd" = 0 ]; then echo "smoke: $t forwarded nothing" >&2; status=1; fi
  done
  [ "${zrc_failed_start:-0}" = 1 ] && { echo "smoke: zrc-relay did not start" >&2; status=1; }
  exit "$status"
fi
