#!/usr/bin/env bash
# Relay CPU per forwarded datagram and forwarded rate over QUIC, the TCP/TLS fallback and
# WebSocket (wss), one relay, same run (DESIGN §9 v3 figures). Not a test: prints a table.
# Needs a release build.
#
#   tools/bench/transports/run.sh [--zrc-bin PATH] [--rates "5000 20000"] [--runs 3] [--duration 5s]
set -eu
cd "$(dirname "$0")/../../.."
BIN=.build/release/zrc-relay
RATES="5000 20000"
RUNS=3
DURATION=5s
SIZE=1200
while [ $# -gt 0 ]; do
    case "$1" in
        --zrc-bin) BIN=$2; shift 2 ;;
        --rates) RATES=$2; shift 2 ;;
        --runs) RUNS=$2; shift 2 ;;
        --duration) DURATION=$2; shift 2 ;;
        --size) SIZE=$2; shift 2 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
[ -x "$BIN" ] || { echo "build first: swift build -c release" >&2; exit 1; }
work=$(mktemp -d)
relay_pid=""
cleanup() { [ -n "$relay_pid" ] && kill "$relay_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT INT TERM
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
metrics=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
pub=$("$BIN" token keygen --out "$work/dev.key")
(cd "$work" && exec "$BIN" serve --server.listen-addr 127.0.0.1 --server.listen-port "$port" \
    --metrics.listen "127.0.0.1:$metrics" --auth.trusted-keys "$pub" --logging.level warning \
    --security.allocation-rate-per-ip 0 --security.connection-rate-per-ip 0 >"$work/relay.log" 2>&1) &
relay_pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$metrics/ready" >/dev/null && break; sleep 0.1; done
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
field() { python3 -c "import json,sys; print(json.loads(sys.stdin.read())['$1'])"; }

printf '%-10s %8s %14s %14s %10s\n' transport rate "cpu µs/dgram" "forwarded/s" loss
for rate in $RATES; do
    for transport in quic tcp websocket; do
        cpus=(); fwds=(); losses=()
        for _ in $(seq "$RUNS"); do
            line=$("$BIN" client bench --relay "127.0.0.1:$port" --key "$work/dev.key" --transport "$transport" \
                --rate "$rate" --size "$SIZE" --duration "$DURATION" --relay-pid "$relay_pid" --json)
            cpus+=("$(echo "$line" | field relay_cpu_us_per_datagram)")
            fwds+=("$(echo "$line" | field forwarded_rate)")
            losses+=("$(echo "$line" | field loss)")
        done
        printf '%-10s %8s %14s %14s %10s\n' "$transport" "$rate" \
            "$(printf '%s\n' "${cpus[@]}" | median)" "$(printf '%s\n' "${fwds[@]}" | median)" "$(printf '%s\n' "${losses[@]}" | median)"
    done
done
echo "($RUNS runs each, median; $SIZE B payloads, 1 allocation, $DURATION per run; relay and generator share the 2 cores)"
