#!/usr/bin/env bash
# make fuzz: builds the libFuzzer binaries (tools/fuzz/Package.swift, scratch path .build-fuzz)
# and runs each target for FUZZ_SECONDS on its corpus, one at a time, then minimises the corpus.
# Usage: tools/fuzz/run.sh [TARGET...]
# Env: SWIFT, FUZZ_SECONDS, FUZZ_CONFIG (debug), FUZZ_NICE (10), FUZZ_FROM_HEAD=1, FUZZ_NO_BUILD=1 (reuse binaries)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
SWIFT=${SWIFT:-swift}
FUZZ_SECONDS=${FUZZ_SECONDS:-600}
FUZZ_CONFIG=${FUZZ_CONFIG:-debug}
FUZZ_NICE=${FUZZ_NICE:-10}
SCRATCH=$ROOT/.build-fuzz
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(control-frame token yamux-frame yamux-session tunnel-hello named-tunnel config)

# FUZZ_FROM_HEAD=1 builds the committed HEAD (exported to .build-fuzz/src) instead of the
# working tree, for a shared checkout where others' edits are in progress.
SRC=$ROOT
if [ "${FUZZ_FROM_HEAD:-0}" = 1 ]; then
    SRC=$SCRATCH/src/zrc-relay
    rm -rf "$SRC" && mkdir -p "$SRC"
    git archive HEAD | tar -x -C "$SRC"
fi
# Same dependency versions as the main build.
if [ -f Package.resolved ]; then cp Package.resolved "$SRC/tools/fuzz/Package.resolved"; fi

# C and C++ keep their asserts: toml++ (in TOMLKit) asserts on some malformed TOML, which the
# relay's TOMLGate now keeps from it, so an assert that fires here is a hole in the gate.
start=$(date +%s)
[ "${FUZZ_NO_BUILD:-0}" = 1 ] || $SWIFT build --package-path "$SRC/tools/fuzz" --scratch-path "$SCRATCH" -c "$FUZZ_CONFIG" \
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library
echo "fuzz: build took $(( $(date +%s) - start )) s"
BIN=$SCRATCH/$FUZZ_CONFIG
mkdir -p "$SCRATCH/logs"

# The Swift runtime's backtracer would run inside ASan after a trap and report itself.
export SWIFT_BACKTRACE=enable=no
status=0
for target in "${TARGETS[@]}"; do
    corpus=tools/fuzz/corpus/$target
    crashes=tools/fuzz/crashes/$target
    log=$SCRATCH/logs/$target.log
    mkdir -p "$corpus" "$crashes"
    extra=()
    [ "$target" = config ] && extra+=(-max_len=8192)
    echo "fuzz: $target for $FUZZ_SECONDS s (log $log)"
    set +e
    nice -n "$FUZZ_NICE" "$BIN/fuzz-$target" "$corpus" -max_total_time="$FUZZ_SECONDS" \
        -artifact_prefix="$crashes/" -print_final_stats=1 -detect_leaks=0 "${extra[@]}" >"$log" 2>&1
    rc=$?
    set -e
    [ $rc -eq 0 ] || { echo "fuzz: $target stopped with $rc: see $log and $crashes/"; status=1; }

    # Minimise: keep only inputs that add coverage.
    merged=$SCRATCH/merged-$target
    rm -rf "$merged" && mkdir -p "$merged"
    nice -n "$FUZZ_NICE" "$BIN/fuzz-$target" -merge=1 -detect_leaks=0 "${extra[@]}" "$merged" "$corpus" \
        >"$SCRATCH/logs/$target-merge.log" 2>&1
    rm -rf "$corpus" && mv "$merged" "$corpus"

    last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
    execs=$(grep -E 'stat::number_of_executed_units' "$log" | awk 'END {print $2}' || true)
    rate=$(grep -E 'stat::average_exec_per_sec' "$log" | awk 'END {print $2}' || true)
    echo "fuzz: $target: last status: $last"
    echo "fuzz: $target: executions ${execs:-?}, exec/s ${rate:-?}, corpus $(ls "$corpus" | wc -l) files" \
         "$(du -sb "$corpus" | cut -f1) bytes, crash files $(ls "$crashes" | wc -l)"
done

# The debug smoke (make test) replays the corpora with toml++'s asserts on: set aside any
# config input that trips one (README.md, "Known crashes") so make test checks our own code.
REPLAY=.build/debug/zrc-fuzz-replay
if [ -x "$REPLAY" ] && [ -d tools/fuzz/corpus/config ]; then
    aside=$SCRATCH/toml-asserts
    mkdir -p "$aside"
    for f in tools/fuzz/corpus/config/*; do
        "$REPLAY" --input "$f" config >/dev/null 2>&1 || mv "$f" "$aside/"
    done
    echo "fuzz: config: $(ls "$aside" | wc -l) inputs that trip toml++ asserts in debug builds set aside in $aside"
fi
exit $status
