#!/usr/bin/env bash
# The main job on an embedded default: a local swarm, a local RocksDB, no setup.
#
#   1. installs what is missing and builds trawl (release);
#   2. measures this machine's loopback ceiling, starts trawl-swarm on
#      127.0.0.0/8 and crawls it politely (find_node + sample_infohashes, then
#      BEP 9 metadata from the swarm's TCP peers, SHA-1 checked);
#   3. stores every infohash found in a RocksDB database (`trawl import`);
#   4. looks one of them up through the simulated DHT with trawl's own node
#      (`trawl lookup`: iterative get_peers);
#   5. exports the database and prints a summary.
#
# Everything goes to loopback only, and every step stops by itself.
# Environment knobs: DEMO_OUT (default ./demo-out), DEMO_NODES, DEMO_TORRENTS,
# DEMO_SECS.
set -euo pipefail
cd "$(dirname "$0")/.."

out="${DEMO_OUT:-$PWD/demo-out}"
nodes="${DEMO_NODES:-20000}"
torrents="${DEMO_TORRENTS:-100000}"
secs="${DEMO_SECS:-60}"
port=36881
peer_port=36882

scripts/setup.sh
echo "==> building trawl (release; the first build compiles RocksDB, about 10 minutes on 2 cores)"
cargo build --release --locked -p trawl-engine -p trawl-bench --bins
bin="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release"

rm -rf "$out"
mkdir -p "$out"
db="$out/db"

echo "==> crawling a simulated DHT of $nodes nodes and $torrents torrents for ${secs}s (loopback only)"
"$bin/trawl-bench" crawl --nodes "$nodes" --torrents "$torrents" --crawl-secs "$secs" \
    --capacity-secs 3 --ceiling-secs 1 --port "$port" --peer-port "$peer_port" \
    --found-out "$out/found.hex" | tee "$out/crawl.log" | while IFS= read -r line; do
        case "$line" in
            '{"bench":"crawl"'*) ;;
            *) printf '    %.160s\n' "$line" ;;
        esac
    done
summary="$(tail -n 1 "$out/crawl.log")"

echo "==> storing the discovered infohashes in $db"
"$bin/trawl" import --db "$db" "$out/found.hex"

echo "==> looking one of them up through the DHT with trawl's own node"
first="$(head -n 1 "$out/found.hex")"
"$bin/trawl-swarm" --nodes "$nodes" --torrents "$torrents" --port "$port" --peer-port "$peer_port" \
    --duration 40 > "$out/swarm.log" 2>&1 &
swarm_pid=$!
trap 'kill "$swarm_pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do grep -q '"event":"ready"' "$out/swarm.log" 2>/dev/null && break; sleep 0.2; done
"$bin/trawl" lookup "$first" --bootstrap "127.1.0.1:$port" --allow-loopback --timeout 15 \
    | tee "$out/lookup.txt"
kill "$swarm_pid" 2>/dev/null || true

echo "==> exporting"
"$bin/trawl" export --db "$db" --format hex -o "$out/infohashes.hex"
"$bin/trawl" export --db "$db" --format jsonl -o "$out/infohashes.jsonl"
"$bin/trawl" stats --db "$db"

python3 - "$summary" "$out" <<'PY'
import json, sys
s = json.loads(sys.argv[1]); out = sys.argv[2]
print("==> summary")
print(f"    loopback ceiling      {s['ceiling_pps']:,.0f} datagrams/s (this machine, this run)")
print(f"    crawl                 {s['crawl_pps']:,.0f} datagrams/s in+out, ratio to ceiling {s['ratio_to_ceiling']}")
print(f"    infohashes found      {s['infohashes_found']:,} ({s['infohashes_per_s']:,.0f}/s), "
      f"{s['catalog_discovered_fraction']:.1%} of the catalogue, {s['infohashes_not_in_catalogue']} invented")
print(f"    metadata fetched      {s['metadata_per_s']:,.0f}/s, SHA-1 verified")
print(f"    politeness violations {s['politeness_violations']}")
print(f"    database              {out}/db")
print(f"    exports               {out}/infohashes.hex, {out}/infohashes.jsonl")
PY
