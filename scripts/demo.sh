#!/usr/bin/env bash
# The main job on an embedded default: a local swarm, a local RocksDB, no setup.
#
#   1. installs what is missing and builds trawl and trawl-swarm (release);
#   2. starts trawl-swarm: a simulated DHT of virtual nodes on 127.0.0.0/8
#      holding real torrents, with TCP peers that serve their metadata;
#   3. runs the real crawler on it, `trawl crawl`, with its live status line,
#      for DEMO_SECS seconds: sample_infohashes and find_node over UDP, BEP 9
#      metadata over TCP (SHA-1 checked), everything into a RocksDB database;
#      halfway through it scrapes the crawl's Prometheus endpoint once;
#   4. exports the database (hex, JSON lines, bitmagnet NDJSON, .torrent files);
#   5. prints a summary: what was found, the rate, where the database and the
#      exports are.
#
# Everything goes to loopback only, and every step stops by itself.
# Knobs: DEMO_OUT (default ./demo-out), DEMO_NODES (200000), DEMO_TORRENTS
# (200000), DEMO_SECS (60), DEMO_INTERVAL_MAX (60), DEMO_PORT (36881; the swarm's TCP peers use +1,
# the metrics endpoint +2).
set -euo pipefail
cd "$(dirname "$0")/.."

out="${DEMO_OUT:-$PWD/demo-out}"
nodes="${DEMO_NODES:-200000}"
torrents="${DEMO_TORRENTS:-200000}"
secs="${DEMO_SECS:-60}"
port="${DEMO_PORT:-36881}"
peer_port=$((port + 1))
metrics="127.0.0.1:$((port + 2))"

scripts/setup.sh
echo "==> building trawl and trawl-swarm (release; the first build compiles RocksDB, about 10 minutes on 2 cores)"
cargo build --release --locked -p trawl-engine --bin trawl
cargo build --release --locked -p trawl-bench --bin trawl-swarm
bin="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release"

rm -rf "$out"
mkdir -p "$out"
db="$out/db"

swarm_pid=""
crawl_pid=""
cleanup() {
    [[ -n "$crawl_pid" ]] && kill "$crawl_pid" 2>/dev/null || true
    [[ -n "$swarm_pid" ]] && kill "$swarm_pid" 2>/dev/null || true
}
trap cleanup EXIT

echo "==> starting trawl-swarm: $nodes virtual DHT nodes, $torrents torrents, on 127.0.0.0/8 (loopback only)"
# The swarm outlives the crawl by a margin, and stops by itself in any case.
# Its nodes ask to be re-sampled after at most a minute (the real DHT says up to
# 6 hours), so a one-minute crawl keeps finding new infohashes to the end.
"$bin/trawl-swarm" --preset fast --nodes "$nodes" --torrents "$torrents" --port "$port" --peer-port "$peer_port" \
    --interval-max "${DEMO_INTERVAL_MAX:-60}" --duration $((secs + 120)) > "$out/swarm.log" 2>&1 &
swarm_pid=$!
for _ in $(seq 1 600); do
    grep -q '"event":"ready"' "$out/swarm.log" 2>/dev/null && break
    kill -0 "$swarm_pid" 2>/dev/null || { cat "$out/swarm.log" >&2; exit 1; }
    sleep 0.2
done
grep -q '"event":"ready"' "$out/swarm.log" || { echo "demo: trawl-swarm did not start" >&2; exit 1; }

echo "==> trawl crawl for ${secs}s (live status below; metrics at http://$metrics/metrics)"
# stdout carries the one-line JSON summary; the status line and logs go to stderr.
"$bin/trawl" crawl --db "$db" --port 0 --bootstrap "127.1.0.1:$port" --allow-loopback \
    --duration "$secs" --metrics "$metrics" > "$out/crawl.json" &
crawl_pid=$!
half=$(( secs / 2 > 0 ? secs / 2 : 1 ))
for _ in $(seq 1 "$half"); do
    sleep 1
    kill -0 "$crawl_pid" 2>/dev/null || break
done
python3 - "$metrics" "$out/metrics.txt" <<'PY' || true
import sys, urllib.request
try:
    text = urllib.request.urlopen(f"http://{sys.argv[1]}/metrics", timeout=5).read().decode()
except Exception as e:
    print(f"    (metrics scrape failed: {e})", file=sys.stderr); sys.exit(0)
open(sys.argv[2], "w").write(text)
def total(prefix):
    return sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines() if l.startswith(prefix))
datagrams = total("trawl_datagrams_in_total")
new = total('trawl_storage_infohashes_total{result="new"}')
fetched = total('trawl_metadata_fetches_total{outcome="ok"}')
print(f"    metrics scrape at the halfway mark: {datagrams:,.0f} datagrams in, "
      f"{new:,.0f} new infohashes stored, {fetched:,.0f} torrents fetched", file=sys.stderr)
PY
wait "$crawl_pid"
crawl_pid=""
kill "$swarm_pid" 2>/dev/null || true
wait "$swarm_pid" 2>/dev/null || true
swarm_pid=""

echo "==> exporting"
"$bin/trawl" export --db "$db" --format hex -o "$out/infohashes.hex"
"$bin/trawl" export --db "$db" --format jsonl -o "$out/infohashes.jsonl"
"$bin/trawl" export --db "$db" --format bitmagnet --with-metadata -o "$out/bitmagnet.ndjson"
"$bin/trawl" export --db "$db" --format torrents -o "$out/torrents"
"$bin/trawl" stats --db "$db" | sed 's/^/    /'
"$bin/trawl" stats --db "$db" --json > "$out/stats.json"

python3 - "$out" "$nodes" "$torrents" <<'PY'
import json, os, sys
out, nodes, catalogue = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
c = json.load(open(f"{out}/crawl.json"))
s = json.load(open(f"{out}/stats.json"))
lines = lambda p: sum(1 for _ in open(p))
torrents = sum(len(f) for _, _, f in os.walk(f"{out}/torrents"))
secs = c["secs"] or 1
print("==> summary")
print(f"    crawled for           {c['secs']:.0f} s on {c['cores']} cores, {c['cpu_secs']:.1f} CPU-seconds, peak RSS {c['peak_rss_mb']:.0f} MB")
print(f"    datagrams             {c['datagrams_in']:,} in, {c['datagrams_out']:,} out "
      f"({(c['datagrams_in'] + c['datagrams_out']) / secs:,.0f}/s)")
print(f"    DHT nodes known       {c['known_nodes']:,} of the swarm's {nodes:,}")
print(f"    infohashes found      {s['infohashes']:,} of the swarm's {catalogue:,} torrents "
      f"({s['infohashes'] / catalogue:.1%}; {c['stored_new'] / secs:,.0f} new/s averaged over the whole run)")
print(f"    metadata fetched      {s['torrents']:,} torrents, SHA-1 verified ({c['metadata_ok'] / secs:,.0f}/s; "
      f"{c['metadata_failed']:,} fetches failed against the swarm's deliberately bad peers)")
classes = ", ".join(f"{k} {v:,}" for k, v in s["classes"].items() if v)
print(f"    content classes       {classes or '-'}")
print(f"    database              {out}/db ({s['disk_bytes'] / 1e6:.1f} MB)")
print(f"    exports               {out}/infohashes.hex ({lines(f'{out}/infohashes.hex'):,} lines)")
print(f"                          {out}/infohashes.jsonl ({lines(f'{out}/infohashes.jsonl'):,} lines)")
print(f"                          {out}/bitmagnet.ndjson ({lines(f'{out}/bitmagnet.ndjson'):,} lines)")
print(f"                          {out}/torrents/ ({torrents:,} .torrent files)")
if os.path.exists(f"{out}/metrics.txt"):
    print(f"    metrics scrape        {out}/metrics.txt")
PY
