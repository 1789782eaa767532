#!/usr/bin/env bash
# The whole test suite: unit tests, the in-memory simulations, and the
# loopback integration tests against real peers (libtorrent, mainline).
# Every test sends traffic only to 127.0.0.0/8.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh

cargo test --workspace --locked "$@"
