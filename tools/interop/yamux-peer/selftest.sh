#!/bin/bash
# Runs the Go yamux peer against itself over loopback: echo and sink, 64 MiB on one
# stream and on 32 concurrent streams, server-opened streams, ping, raw reset and a
# larger window. Usage: selftest.sh [BUILD_DIR]   (FULL=1 also sends 64 MiB on each of 32 streams)
set -u
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$(mktemp -d)}
"$here/build.sh" "$out" >/dev/null || exit 1
peer="$out/yamux-peer"
failures=0

# run NAME "SERVER ARGS" "CLIENT ARGS": server listens on an ephemeral port, client connects.
run() {
    local name=$1 server_args=$2 client_args=$3 log addr
    log=$(mktemp -d)
    # shellcheck disable=SC2086
    "$peer" $server_args -listen 127.0.0.1:0 >"$log/server.out" 2>"$log/server.err" &
    local server_pid=$!
    for _ in $(seq 100); do
        grep -q '^ready ' "$log/server.out" 2>/dev/null && break
        sleep 0.05
    done
    addr=$(awk '/^ready /{print $2}' "$log/server.out")
    # shellcheck disable=SC2086
    "$peer" $client_args -connect "$addr" >"$log/client.out" 2>"$log/client.err"
    local client_rc=$?
    wait "$server_pid"
    local server_rc=$?
    if [ "$client_rc" -eq 0 ] && [ "$server_rc" -eq 0 ] && grep -q '^ok$' "$log/client.out" "$log/server.out"; then
        echo "PASS $name: $(grep -h -v '^ready' "$log/client.out" "$log/server.out" | tr '\n' ' ')$(grep -h 'MiB/s' "$log/client.err" "$log/server.err" | sed 's/yamux-peer: //')"
    else
        echo "FAIL $name: client rc=$client_rc server rc=$server_rc"
        cat "$log"/*.out "$log"/*.err | grep -v 'missing stream' | head -20
        failures=$((failures + 1))
    fi
    rm -rf "$log"
}

MiB64=67108864
run "echo 1x64MiB" "-mode server -behavior echo" "-mode client -behavior source -reply echo -bytes $MiB64 -streams 1"
run "sink 1x64MiB" "-mode server -behavior sink" "-mode client -behavior source -bytes $MiB64 -streams 1"
run "echo 32x2MiB" "-mode server -behavior echo" "-mode client -behavior source -reply echo -bytes 2097152 -streams 32"
run "sink 32x2MiB" "-mode server -behavior sink" "-mode client -behavior source -bytes 2097152 -streams 32"
if [ "${FULL:-0}" = 1 ]; then
    run "echo 32x64MiB" "-mode server -behavior echo -timeout 300s" "-mode client -behavior source -reply echo -bytes $MiB64 -streams 32 -timeout 300s"
    run "sink 32x64MiB" "-mode server -behavior sink -timeout 300s" "-mode client -behavior source -bytes $MiB64 -streams 32 -timeout 300s"
fi
run "server-opened sink" "-mode server -behavior source -bytes 1048576 -streams 4" "-mode client -behavior sink"
run "ping" "-mode server -behavior echo" "-mode client -behavior ping -count 3"
run "raw rst" "-mode server -behavior echo" "-mode client -behavior rst"
run "1MiB window" "-mode server -behavior sink -window 1048576" "-mode client -behavior source -bytes 8388608 -streams 2 -window 1048576"

if [ "$failures" -ne 0 ]; then
    echo "$failures failed"
    exit 1
fi
echo "all passed"
