#!/usr/bin/env bash
# Runs trawl's fuzz targets for a bounded time each.
#
#   scripts/fuzz.sh SECONDS [TARGET...]
#
# With no TARGET, runs every target of engine/fuzz. Each target's corpus
# (engine/fuzz/corpus/TARGET, not checked in) is seeded from the checked-in
# real-format messages in engine/fuzz/seeds/TARGET. Crashes land in
# engine/fuzz/artifacts/TARGET and make this script fail.
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
unset CARGO_TARGET_DIR
export RUSTC_BOOTSTRAP=1

if [[ $# -gt 0 ]]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

for target in "${targets[@]}"; do
    corpus="$fuzz_dir/corpus/$target"
    seeds="$fuzz_dir/seeds/$target"
    mkdir -p "$corpus"
    if [[ -d "$seeds" ]]; then
        cp -n "$seeds"/* "$corpus"/ 2>/dev/null || true
    fi
    echo "== fuzzing $target for ${seconds}s (corpus $(ls "$corpus" | wc -l) inputs)" >&2
    cargo fuzz run "$target" "$corpus" -- -max_total_time="$seconds" -print_final_stats=1
done
