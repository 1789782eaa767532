#!/usr/bin/env bash
# The whole test suite: unit tests, the in-memory simulations, the examples,
# the loopback integration tests against real peers (libtorrent, mainline),
# and the documentation (no rustdoc warning).
# Every test sends traffic only to 127.0.0.0/8.
#
# RocksDB's C++ takes most of a fresh build. When the release build (the
# demo's) has already compiled it, every other build links that static
# library instead of compiling it again (librocksdb-sys's ROCKSDB_LIB_DIR):
# the C++ is the same source at the same version, only the Rust differs. The
# choice is written to .cargo/config.toml (git-ignored) so that plain `cargo`
# commands see the same environment and never flip between the two (which
# would rebuild RocksDB each time). TRAWL_ROCKSDB_REUSE=0 turns this off.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/rocksdb-reuse.sh

cargo test --workspace --locked "$@"
# The library's documentation builds without a warning (broken links included).
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet
