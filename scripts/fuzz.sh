#!/usr/bin/env bash
# Runs trawl's fuzz targets for a bounded time each.
#
#   scripts/fuzz.sh SECONDS [TARGET...]
#
# With no TARGET, runs every target of engine/fuzz. Each target's corpus
# (engine/fuzz/corpus/TARGET, not checked in) is seeded from the checked-in
# real-format messages in engine/fuzz/seeds/TARGET. Crashes land in
# engine/fuzz/artifacts/TARGET and make this script fail. Each run's libFuzzer
# output goes to engine/fuzz/logs/TARGET.log, and a last summary gives each
# target's executions and coverage (libFuzzer's `cov:` edges and `ft:` features).
#
# There is no nightly toolchain here: RUSTC_BOOTSTRAP=1 lets cargo-fuzz use the
# sanitizer flags on the stable compiler. The fuzz project has its own target
# directory (sanitizer builds cannot share the workspace's).
set -euo pipefail

if [[ $# -lt 1 || ! "$1" =~ ^[0-9]+$ ]]; then
    echo "usage: $0 SECONDS [TARGET...]" >&2
    exit 2
fi
seconds=$1
shift

root=$(cd "$(dirname "$0")/.." && pwd)
fuzz_dir="$root/engine/fuzz"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

cd "$fuzz_dir"
# The workspace-wide CARGO_TARGET_DIR must not receive sanitizer builds.
workspace_target=${CARGO_TARGET_DIR:-/root/.cache/trawl-target}
unset CARGO_TARGET_DIR
export RUSTC_BOOTSTRAP=1

# The storage targets link RocksDB. Compiling its C++ again for the fuzz build
# takes hours on two loaded cores and gains nothing (libFuzzer instruments the
# Rust code), so link the static library the workspace's release build made.
if [[ -z "${ROCKSDB_LIB_DIR:-}" ]]; then
    prebuilt=$(ls -t "$workspace_target"/release/build/librocksdb-sys-*/out/librocksdb.a 2>/dev/null | head -1 || true)
    if [[ -n "$prebuilt" ]]; then
        export ROCKSDB_LIB_DIR=$(dirname "$prebuilt") ROCKSDB_STATIC=1
        echo "linking the prebuilt $prebuilt" >&2
    fi
fi

if [[ $# -gt 0 ]]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

mkdir -p "$fuzz_dir/logs"
# Build every target once up front, so the timed runs measure fuzzing only.
for target in "${targets[@]}"; do
    cargo fuzz build "$target" >&2
done

summary=()
for target in "${targets[@]}"; do
    corpus="$fuzz_dir/corpus/$target"
    seeds="$fuzz_dir/seeds/$target"
    mkdir -p "$corpus"
    if [[ -d "$seeds" ]]; then
        cp -n "$seeds"/* "$corpus"/ 2>/dev/null || true
    fi
    echo "== fuzzing $target for ${seconds}s (corpus $(ls "$corpus" | wc -l) inputs)" >&2
    log="$fuzz_dir/logs/$target.log"
    status=0
    cargo fuzz run "$target" "$corpus" -- -max_total_time="$seconds" -print_final_stats=1 2>&1 | tee "$log" >&2 ||
        status=$?
    # The last status line carries cov/ft/corp; final stats carry the execution count.
    last=$(grep -E '^#[0-9]+' "$log" | tail -1)
    execs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo "?")
    cov=$(grep -oE 'cov: [0-9]+' <<<"$last" | grep -oE '[0-9]+' || echo "?")
    ft=$(grep -oE 'ft: [0-9]+' <<<"$last" | grep -oE '[0-9]+' || echo "?")
    corp=$(grep -oE 'corp: [0-9]+' <<<"$last" | grep -oE '[0-9]+' || echo "?")
    result=$([[ $status -eq 0 ]] && echo ok || echo "CRASH (see $log)")
    summary+=("$(printf '%-20s execs=%-10s cov=%-6s ft=%-6s corpus=%-6s %s' "$target" "$execs" "$cov" "$ft" "$corp" "$result")")
    [[ $status -eq 0 ]] || failed=1
done
echo "== summary (${seconds}s per target)"
printf '%s\n' "${summary[@]}"
exit "${failed:-0}"
