#!/usr/bin/env bash
# Installs what zrc-relay needs to build, run and test, and nothing that is already there.
# Usage: tools/install.sh [run|test]   (run: build + run deps; test: also the interop/test deps)
# Uses sudo when not root. Idempotent and quiet when everything is present.
set -euo pipefail
mode="${1:-run}"
here="$(cd "$(dirname "$0")/.." && pwd)"

run_pkgs=(libngtcp2-dev libngtcp2-crypto-gnutls-dev libgnutls28-dev gnutls-bin pkg-config)
test_pkgs=(python3-venv golang-go golang-github-hashicorp-yamux-dev redis-server coturn libssl-dev)

want=("${run_pkgs[@]}")
[ "$mode" = "test" ] && want+=("${test_pkgs[@]}")

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "install: Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ "$mode" = "test" ]; then
  venv="$here/.venv"
  if [ ! -x "$venv/bin/python" ]; then
    echo "install: Python virtual environment in .venv"
    python3 -m venv "$venv"
  fi
  if ! "$venv/bin/python" -c "import aioquic, prometheus_client, pytest, websockets" 2>/dev/null; then
    echo "install: aioquic, prometheus_client, pytest, websockets from PyPI"
    "$venv/bin/pip" install -q --disable-pip-version-check "aioquic>=1.2" prometheus_client pytest "websockets>=14"
  fi
fi
