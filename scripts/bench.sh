#!/usr/bin/env bash
# Runs trawl's macro benchmark suite. Every run is bounded in time and sends
# only to 127.0.0.0/8. Each benchmark's last output line is one JSON object;
# they are collected into bench/results/<timestamp>.jsonl.
#
# Usage: scripts/bench.sh [--quick]
#   --quick  short phases and a small swarm, for a smoke run in about a minute.
set -euo pipefail

cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/root/.cache/trawl-target}"

quick=0
[[ "${1:-}" == "--quick" ]] && quick=1

cargo build --release -p trawl-bench --bin trawl-bench -p trawl-swarm --bin trawl-swarm
bench="$CARGO_TARGET_DIR/release/trawl-bench"

out_dir=bench/results
mkdir -p "$out_dir"
out="$out_dir/$(date -u +%Y%m%dT%H%M%SZ).jsonl"

run() {
    local name=$1
    shift
    echo "== $name: $bench $*" >&2
    local log
    log=$(mktemp)
    # A hard wall-clock bound on top of each benchmark's own limits.
    if timeout 1800 "$bench" "$@" | tee "$log" >&2; then
        tail -n 1 "$log" >>"$out"
    else
        echo "== $name failed (exit $?)" >&2
    fi
    rm -f "$log"
}

if ((quick)); then
    run crawl crawl --nodes 20000 --torrents 50000 --ceiling-secs 1 --capacity-secs 2 --crawl-secs 5
else
    run decode decode
    run storage storage
    run node-answer node-answer
    run crawl crawl
fi

echo "results: $out" >&2
