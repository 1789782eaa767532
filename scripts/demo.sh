#!/usr/bin/env bash
# The main job on an embedded default: a local swarm, a local RocksDB, no setup.
#
#   1. installs what is missing and builds trawl and trawl-swarm (release);
#   2. starts trawl-swarm on its `mainline` preset: a simulated DHT of virtual
#      nodes on 127.0.0.0/8 that behave like the real one (libtorrent 2.0 limits
#      and per-IP blocks, nodes without BEP 51, NAT'd nodes, churn, peers 50 to
#      300 ms away and some that never accept), with a time scale of 360 (a
#      six-hour sample interval lasts a minute), and writes its ground truth;
#   3. runs the real crawler on it, `trawl crawl`, with its live status line,
#      for DEMO_SECS seconds: sample_infohashes and find_node over UDP, BEP 9
#      metadata over TCP (SHA-1 checked), everything into a RocksDB database;
#      halfway through it scrapes the crawl's Prometheus endpoint once;
#   4. exports the database (hex, JSON lines, bitmagnet NDJSON, .torrent files);
#   5. prints a summary: the yield (the share of the discoverable infohashes
#      found and of the fetchable torrents fetched, against the swarm's truth),
#      what it cost, where the database and the exports are;
#   6. starts `trawl serve` on the database for DEMO_SERVE_SECS seconds (default
#      120; 0 skips it), asks its search API once, and prints the URL of the
#      web page, the JSON API and the Torznab feed.
#
# Everything goes to loopback only, and every step stops by itself.
# Knobs: DEMO_OUT (default ./demo-out), DEMO_NODES (20000), DEMO_TORRENTS
# (100000), DEMO_SECS (120: two scaled intervals), DEMO_PORT (36881; the swarm's
# TCP peers use +1, the metrics endpoint +2, `trawl serve` +3). The wire benchmark on the idealised
# swarm is `trawl-bench crawl`, not this.
set -euo pipefail
cd "$(dirname "$0")/.."

out="${DEMO_OUT:-$PWD/demo-out}"
nodes="${DEMO_NODES:-20000}"
torrents="${DEMO_TORRENTS:-100000}"
secs="${DEMO_SECS:-120}"
serve_secs="${DEMO_SERVE_SECS:-120}"
port="${DEMO_PORT:-36881}"
peer_port=$((port + 1))
metrics="127.0.0.1:$((port + 2))"

scripts/setup.sh
echo "==> building trawl and trawl-swarm (release; the first build compiles RocksDB: about 12 minutes on 2 cores)"
# One invocation: the second binary links while the first still builds.
cargo build --release --locked -p trawl --bin trawl -p trawl-swarm --bin trawl-swarm
bin="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release"

rm -rf "$out"
mkdir -p "$out"
db="$out/db"

swarm_pid=""
crawl_pid=""
serve_pid=""
cleanup() {
    [[ -n "$serve_pid" ]] && kill "$serve_pid" 2>/dev/null || true
    [[ -n "$crawl_pid" ]] && kill "$crawl_pid" 2>/dev/null || true
    [[ -n "$swarm_pid" ]] && kill "$swarm_pid" 2>/dev/null || true
}
trap cleanup EXIT

echo "==> starting trawl-swarm (mainline preset): $nodes virtual DHT nodes, $torrents torrents, on 127.0.0.0/8 (loopback only)"
# The swarm outlives the crawl by a margin, and stops by itself in any case. Its
# manifest says which torrents a polite crawler could discover within the run
# and which a reachable peer serves: the truth the summary's yield is against.
"$bin/trawl-swarm" --preset mainline --nodes "$nodes" --torrents "$torrents" --port "$port" --peer-port "$peer_port" \
    --manifest "$out/manifest.jsonl" --truth-secs "$secs" --duration $((secs + 120)) > "$out/swarm.log" 2>&1 &
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
stored = {l.strip() for l in open(f"{out}/infohashes.hex")}
with_meta = {json.loads(l)["info_hash"] for l in open(f"{out}/infohashes.jsonl") if '"version"' in l}
truth = [json.loads(l) for l in open(f"{out}/manifest.jsonl")]
discoverable = [t["infohash"] for t in truth if t["discoverable"]]
fetchable = [t["infohash"] for t in truth if t["discoverable"] and t["fetchable"]]
share = lambda n, of: f"{n / of:.1%}" if of else "-"
found = sum(h in stored for h in discoverable)
got = sum(h in with_meta for h in fetchable)
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
print(f"    yield: discovered     {found:,} of the {len(discoverable):,} infohashes a polite crawler could see "
      f"in {c['secs']:.0f} s ({share(found, len(discoverable))})")
print(f"    yield: fetched        {got:,} of the {len(fetchable):,} of those a reachable peer serves "
      f"({share(got, len(fetchable))}), SHA-1/SHA-256 verified")
print(f"    infohashes stored     {s['infohashes']:,} ({c['stored_new'] / secs:,.0f} new/s averaged over the whole run)")
print(f"    torrents stored       {s['torrents']:,} ({c['metadata_ok'] / secs:,.1f}/s; {c['metadata_failed']:,} fetch "
      f"attempts failed: NAT'd, never-accepting and deliberately bad peers)")
reasons = ", ".join(f"{k} {v:,}" for k, v in sorted(c["fetch_attempts_failed"].items(), key=lambda kv: -kv[1]) if v)
print(f"    failed attempts by    {reasons or '-'}")
fh = c["fetch_hashes"]
print(f"    infohashes fetched    {fh['ok']:,}; every peer failed {fh['all_peers_failed']:,}, no peer known "
      f"{fh['no_peers']:,}, cut at stop {fh['cut_at_stop']:,} (back in the queue)")
if got:
    print(f"    cost                  {(c['datagrams_in'] + c['datagrams_out']) / max(s['torrents'], 1):,.1f} datagrams "
          f"and {c['cpu_secs'] * 1000 / max(s['torrents'], 1):,.2f} CPU-ms per torrent stored")
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

if [[ "$serve_secs" -gt 0 ]]; then
    listen="127.0.0.1:$((port + 3))"
    echo "==> searching what the demo found: trawl serve on $db for $serve_secs s"
    "$bin/trawl" serve --db "$db" --listen "$listen" 2> "$out/serve.log" &
    serve_pid=$!
    python3 - "$listen" <<'PY'
import json, sys, time, urllib.request
base = f"http://{sys.argv[1]}"
for _ in range(300):
    try:
        page = json.load(urllib.request.urlopen(f"{base}/api/search?limit=3&sort=size", timeout=5))
        if page["total"]:
            break
    except OSError:
        pass
    time.sleep(0.2)
else:
    sys.exit("trawl serve did not answer (see serve.log)")
print(f"    indexed               {page['total']:,} torrents; the largest:")
for h in page["hits"]:
    print(f"                          {h['size'] / 2**30:6.1f} GiB  {h['name'][:70]}")
print(f"    web page              {base}/")
print(f"    JSON API              {base}/api/search?q=WORDS  (and /api/torrent/HASH, /api/stats)")
print(f"    Torznab               {base}/torznab/api  (Prowlarr: a generic Torznab indexer)")
PY
    echo "    serving until $(date -d "+$serve_secs seconds" +%H:%M:%S) (Ctrl-C stops it sooner; DEMO_SERVE_SECS=0 skips this)"
    sleep "$serve_secs" || true
    kill -TERM "$serve_pid" 2>/dev/null || true
    wait "$serve_pid" 2>/dev/null || true
    serve_pid=""
fi
