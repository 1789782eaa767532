#!/usr/bin/env bash
# The whole test suite: unit tests, the in-memory simulations, the examples,
# and the loopback integration tests against real peers (libtorrent, mainline).
# Every test sends traffic only to 127.0.0.0/8.
#
# RocksDB's C++ takes most of a fresh build. When the release build (the
# demo's) has already compiled it, the test build links that static library
# instead of compiling it a second time (librocksdb-sys's ROCKSDB_LIB_DIR):
# the C++ is the same source at the same version, only the Rust differs.
# TRAWL_ROCKSDB_REUSE=0 turns this off.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh

if [[ "${TRAWL_ROCKSDB_REUSE:-1}" != 0 && -z "${ROCKSDB_LIB_DIR:-}" ]]; then
    target="${CARGO_TARGET_DIR:-$PWD/target}"
    # The newest release build of the locked librocksdb-sys version.
    version="$(awk '/^name = "librocksdb-sys"/ {getline; gsub(/version = |"/, ""); print; exit}' Cargo.lock)"
    lib="$(ls -t "$target"/release/build/librocksdb-sys-*/out/librocksdb.a 2>/dev/null | head -n 1 || true)"
    if [[ -n "$lib" && -n "$version" ]] && grep -qs "librocksdb-sys-$version" "$(dirname "$(dirname "$lib")")/output" "$(dirname "$(dirname "$lib")")/root-output" 2>/dev/null; then
        export ROCKSDB_LIB_DIR="$(dirname "$lib")" ROCKSDB_STATIC=1
        echo "test: linking the release build's RocksDB ($lib)" >&2
    fi
fi

cargo test --workspace --locked "$@"
