#!/bin/sh
# Builds the hashicorp/yamux interop peer into the folder given as $1, using only
# Debian's packages: golang-go and golang-github-hashicorp-yamux-dev (no module download).
set -eu
if [ $# -ne 1 ]; then
    echo "usage: $0 OUTPUT_DIR" >&2
    exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
out=$1
mkdir -p "$out"
out=$(cd "$out" && pwd)
if [ ! -d /usr/share/gocode/src/github.com/hashicorp/yamux ]; then
    echo "missing Debian package golang-github-hashicorp-yamux-dev (apt-get install golang-go golang-github-hashicorp-yamux-dev)" >&2
    exit 1
fi
# GOPATH mode: a writable first element for the build, Debian's source tree second.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/src/zrc/yamux-peer"
cp "$here/main.go" "$work/src/zrc/yamux-peer/"
cd "$work/src/zrc/yamux-peer"
GO111MODULE=off GOPATH="$work:/usr/share/gocode" GOCACHE="${GOCACHE:-$work/cache}" GOFLAGS= \
    go build -o "$out/yamux-peer" .
echo "$out/yamux-peer"
