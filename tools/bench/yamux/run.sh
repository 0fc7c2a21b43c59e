#!/usr/bin/env bash
# Bulk throughput through one yamux stream and through the reverse tunnel (its control
# connection over TCP, TLS, ws or wss: CASES="tunnel tunnel_tls tunnel_ws tunnel_wss"), on loopback,
# compared in the same run with hashicorp/yamux (Go, Debian's package) and with direct TCP.
# Not a test: prints a table. Needs a release build (swift build -c release) and Go.
#
#   tools/bench/yamux/run.sh [BYTES] [RUNS]      default 256 MiB, 3 runs (median reported)
#   MODE=count tools/bench/yamux/run.sh ...      bulk with no hashing: fixed bytes, the receiver answers the count
#   MODE=pingpong tools/bench/yamux/run.sh [SECONDS] [RUNS]
#                                                64-byte round trips on one stream (echo peer), per second
set -eu
cd "$(dirname "$0")/../../.."
MODE=${MODE:-hash}
case $MODE in hash|count|pingpong) ;; *) echo "MODE must be hash, count or pingpong" >&2; exit 2;; esac
BYTES=${1:-268435456}
[ "$MODE" = pingpong ] && BYTES=${1:-3}
RUNS=${2:-3}
BIN=${BIN:-.build/release}
[ -x "$BIN/zrc-relay" ] && [ -x "$BIN/YamuxBench" ] || { echo "build first: swift build -c release" >&2; exit 1; }
work=$(mktemp -d)
pids=""
cleanup() { for p in $pids; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
out=/dev/null
trap cleanup EXIT INT TERM
tools/interop/yamux-peer/build.sh "$work" >/dev/null
(cd tools/bench/yamux && GO111MODULE=off GOCACHE="$work/cache" go build -o "$work/tcpbulk" tcpbulk.go)
PEER=$work/yamux-peer; TCPBULK=$work/tcpbulk

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { i=0; while ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do i=$((i+1)); [ $i -lt 100 ] || return 1; sleep 0.05; done; }
mibs() { grep -o '[0-9.]* MiB/s' | tail -1 | cut -d' ' -f1; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# Each case appends one MiB/s figure to $out; servers go to the background with their
# output discarded, and are killed after every run (`stop`).
# The Go peer accepts exactly one connection, so it is not probed: wait for its "ready" line.
GO_SINK=sink; GO_REPLY=sha256; SWIFT_COUNT=
[ "$MODE" = count ] && { GO_SINK=count; GO_REPLY=count; SWIFT_COUNT=--count; }
go_server() {  # $1: the Go server's behaviour (default: the bulk sink)
    p=$(port); : >"$work/ready"
    "$PEER" -mode server -listen 127.0.0.1:$p -behavior "${1:-$GO_SINK}" -timeout 300s >"$work/ready" 2>/dev/null & pids="$pids $!"
    i=0; until grep -q ready "$work/ready"; do i=$((i+1)); [ $i -lt 200 ] || return 1; sleep 0.05; done
}
go_go() {   # hashicorp/yamux both sides
    go_server; "$PEER" -mode client -connect 127.0.0.1:$p -behavior source -bytes "$1" -streams "$2" -reply $GO_REPLY -timeout 300s 2>&1 | mibs >>"$out"
}
go_swift() {  # Go client sends, our server receives
    p=$(port); "$BIN/YamuxBench" sink --listen $p $SWIFT_COUNT >/dev/null 2>&1 & pids="$pids $!"
    wait_port $p; "$PEER" -mode client -connect 127.0.0.1:$p -behavior source -bytes "$1" -streams "$2" -reply $GO_REPLY -timeout 300s 2>&1 | mibs >>"$out"
}
swift_go() {  # our client sends, Go server receives
    go_server; "$BIN/YamuxBench" source --connect 127.0.0.1:$p --bytes "$1" --streams "$2" $SWIFT_COUNT | mibs >>"$out"
}
swift_swift() {
    p=$(port); "$BIN/YamuxBench" sink --listen $p $SWIFT_COUNT >/dev/null 2>&1 & pids="$pids $!"
    wait_port $p; "$BIN/YamuxBench" source --connect 127.0.0.1:$p --bytes "$1" --streams "$2" $SWIFT_COUNT | mibs >>"$out"
}
tcp() {       # direct TCP, no yamux
    p=$(port); "$TCPBULK" -listen 127.0.0.1:$p >/dev/null 2>&1 & pids="$pids $!"
    wait_port $p; "$TCPBULK" -connect 127.0.0.1:$p -bytes "$1" -streams "$2" | mibs >>"$out"
}
tunnel() {    # public TCP -> tunnel server -> yamux -> tunnel client -> local TCP sink
    l=$(port); c=$(port); pub=$(port)
    "$TCPBULK" -listen 127.0.0.1:$l >/dev/null 2>&1 & pids="$pids $!"
    "$BIN/zrc-relay" tunnel server --listen-addr 127.0.0.1 --control-port $c --public-port $pub --log-level warning >/dev/null 2>&1 & pids="$pids $!"
    wait_port $c
    "$BIN/zrc-relay" tunnel client --server 127.0.0.1:$c --local-port $l --log-level warning >/dev/null 2>&1 & pids="$pids $!"
    sleep 0.5
    "$TCPBULK" -connect 127.0.0.1:$pub -bytes "$1" -streams "$2" | mibs >>"$out"
}
tunnel_over() {  # $3: tcp | tls | ws | wss — how the tunnel client reaches the control port
    l=$(port); c=$(port); pub=$(port)
    [ -f "$work/ctl.crt" ] || openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$work/ctl.key" \
        -out "$work/ctl.crt" -days 2 -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1
    tls=(); [ "$3" = tls ] || [ "$3" = wss ] && tls=(--tls-cert "$work/ctl.crt" --tls-key "$work/ctl.key")
    "$TCPBULK" -listen 127.0.0.1:$l >/dev/null 2>&1 & pids="$pids $!"
    "$BIN/zrc-relay" tunnel server --listen-addr 127.0.0.1 --control-port $c --public-port $pub --websocket "${tls[@]}" \
        --log-level warning >/dev/null 2>&1 & pids="$pids $!"
    wait_port $c
    case $3 in
        tcp) target=(--server 127.0.0.1:$c);;
        tls) target=(--server 127.0.0.1:$c --tls-ca "$work/ctl.crt");;
        ws) target=(--server ws://127.0.0.1:$c/zrc-relay/v1);;
        wss) target=(--server wss://127.0.0.1:$c/zrc-relay/v1 --tls-ca "$work/ctl.crt");;
    esac
    "$BIN/zrc-relay" tunnel client "${target[@]}" --local-port $l --log-level warning >/dev/null 2>&1 & pids="$pids $!"
    sleep 0.7
    "$TCPBULK" -connect 127.0.0.1:$pub -bytes "$1" -streams "$2" | mibs >>"$out"
}
tunnel_tls() { tunnel_over "$1" "$2" tls; }
tunnel_ws() { tunnel_over "$1" "$2" ws; }
tunnel_wss() { tunnel_over "$1" "$2" wss; }

# Ping-pong: $1 = seconds; appends round trips per second.
trips() { grep -o '[0-9]* round trips/s' | tail -1 | cut -d' ' -f1; }
pp_go_go() { go_server echo; "$PEER" -mode client -connect 127.0.0.1:$p -behavior pingpong -size 64 -duration "$1s" -timeout 300s 2>&1 | trips >>"$out"; }
pp_go_swift() {
    p=$(port); "$BIN/YamuxBench" echo --listen $p >/dev/null 2>&1 & pids="$pids $!"
    wait_port $p; "$PEER" -mode client -connect 127.0.0.1:$p -behavior pingpong -size 64 -duration "$1s" -timeout 300s 2>&1 | trips >>"$out"
}
pp_swift_go() { go_server echo; "$BIN/YamuxBench" pingpong --connect 127.0.0.1:$p --size 64 --seconds "$1" | trips >>"$out"; }
pp_swift_swift() {
    p=$(port); "$BIN/YamuxBench" echo --listen $p >/dev/null 2>&1 & pids="$pids $!"
    wait_port $p; "$BIN/YamuxBench" pingpong --connect 127.0.0.1:$p --size 64 --seconds "$1" | trips >>"$out"
}
stop() { for p in $pids; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; pids=""; }
if [ "$MODE" = pingpong ]; then
    echo "yamux 64-byte ping-pong on one stream, $(nproc) cores, $(date -u +%Y-%m-%d); $BYTES s per run, median of $RUNS runs"
    printf '%-46s %14s\n' "case (client -> echo server)" "round trips/s"
    for case in ${CASES:-pp_go_go pp_go_swift pp_swift_go pp_swift_swift}; do
        out=$work/pp; : >"$out"
        for r in $(seq "$RUNS"); do $case "$BYTES"; stop; done
        m=$(cat "$out" | median)
        case $case in
            pp_go_go) label="hashicorp/yamux: Go -> Go";; pp_go_swift) label="Go client -> Swift server (YamuxNIO)";;
            pp_swift_go) label="Swift client (YamuxNIO) -> Go server";; pp_swift_swift) label="YamuxNIO: Swift -> Swift";;
            *) label=$case;;
        esac
        printf '%-46s %14s\n' "$label" "$m"
    done
    exit 0
fi

echo "yamux bulk throughput, $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(date -u +%Y-%m-%d)"
if [ "$MODE" = count ]; then
    echo "payload $BYTES bytes per stream, median of $RUNS runs, MiB/s (no hashing: fixed bytes, the receiver answers the byte count)"
else
    echo "payload $BYTES bytes per stream, median of $RUNS runs, MiB/s (SHA-256 of every byte on both ends)"
fi
printf '%-46s %12s %12s\n' "case" "1 stream" "8 streams"
for case in ${CASES:-tcp go_go go_swift swift_go swift_swift tunnel}; do
    : >"$work/one"; : >"$work/eight"
    for r in $(seq "$RUNS"); do
        out=$work/one; $case "$BYTES" 1; stop
        out=$work/eight; $case $((BYTES / 8)) 8; stop
    done
    one=$(cat "$work/one"); eight=$(cat "$work/eight")
    m1=$(echo $one | tr ' ' '\n' | median); m8=$(echo $eight | tr ' ' '\n' | median)
    case $case in
        tcp) label="direct TCP (Go, no yamux)";;
        go_go) label="yamux: Go client -> Go server";;
        go_swift) label="yamux: Go client -> Swift server (YamuxNIO)";;
        swift_go) label="yamux: Swift client (YamuxNIO) -> Go server";;
        swift_swift) label="yamux: Swift -> Swift";;
        tunnel) label="reverse tunnel (zrc-relay tunnel, TCP in+out)";;
        tunnel_tls) label="reverse tunnel, control over TLS";;
        tunnel_ws) label="reverse tunnel, control over WebSocket (ws)";;
        tunnel_wss) label="reverse tunnel, control over WebSocket (wss)";;
    esac
    printf '%-46s %12s %12s\n' "$label" "$m1" "$m8"
done
