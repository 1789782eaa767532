#!/usr/bin/env bash
# Installs what a fresh Debian machine with only the Rust toolchain lacks.
# Idempotent: it installs a package only when it is missing, and runs
# `apt-get update` only when something has to be installed.
#
#   libclang-dev        the rocksdb crate generates its bindings with libclang
#   g++                 RocksDB itself is C++
#   python3-libtorrent  a real DHT node and BitTorrent peer for interop tests
#   chromium            a headless browser for the web page tests (serve/tests/pages.rs)
set -euo pipefail

packages=(libclang-dev g++ python3-libtorrent chromium)

missing=()
for pkg in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done

if ((${#missing[@]})); then
    sudo=""
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null || { echo "setup: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
        sudo="sudo"
    fi
    echo "setup: installing ${missing[*]}" >&2
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

command -v cargo >/dev/null || { echo "setup: cargo is not on PATH; install the Rust toolchain first" >&2; exit 1; }
