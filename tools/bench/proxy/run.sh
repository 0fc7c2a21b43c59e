#!/usr/bin/env bash
# Egress proxy figures (DESIGN §12, issue 17): a 1 GB body streamed through agent + server with
# both processes' RSS, the added latency of a small GET (p50/p99 vs direct), and the bulk
# throughput of one CONNECT stream. On 127.0.0.1 only; not part of `make test`.
#
#   tools/bench/proxy/run.sh [--zrc-bin PATH] [--bytes N] [--requests N]
#   default binary: .build/release/zrc-relay (swift build -c release), else .build/debug/zrc-relay
set -eu
cd "$(dirname "$0")/../../.."
bin=""
args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --zrc-bin) bin="$2"; shift 2 ;;
        *) args+=("$1"); shift ;;
    esac
done
if [ -z "$bin" ]; then
    if [ -x .build/release/zrc-relay ]; then bin=.build/release/zrc-relay; else bin=.build/debug/zrc-relay; fi
fi
[ -x "$bin" ] || { echo "build first: swift build -c release" >&2; exit 1; }
python=python3
[ -x .venv/bin/python ] && python=.venv/bin/python
echo "binary: $bin"
exec "$python" tools/bench/proxy/bench.py --zrc-bin "$bin" "${args[@]}"
