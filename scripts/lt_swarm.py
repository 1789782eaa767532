#!/usr/bin/python3
"""A network of libtorrent DHT nodes that seed torrents, in one process, for
trawl's end-to-end crawl test (cli/tests/crawl_libtorrent.rs).

Run with /usr/bin/python3 (Debian's python3-libtorrent 2.0). Node i binds
--base-ip + i (every address in 127.0.0.0/8) on a free port, with DHT on and
only the address restrictions that make loopback impossible turned off (the
same settings as lt_node.py). The DHT's limits that a crawler must live with
(dht_upload_rate_limit, dht_block_ratelimit, dht_block_timeout) keep their
defaults. No node has a bootstrap router: libtorrent never puts a node it
was told to bootstrap from (`dht_bootstrap_nodes`) into its routing table, so
a network whose nodes bootstrap off each other has empty tables and answers
every find_node with no nodes. Each node is instead given the others as plain
nodes (add_dht_node) once all listen, so no traffic leaves the given addresses.

Each node seeds --torrents-per-node torrents made by lt_seeder.py's
make_torrent: in turn v1-only, hybrid v1+v2 (libtorrent's default) and v2-only,
Unicode names, nested folders, an empty file. Each raw info dict is written to
--dir/<hex>.info, named by the hash the DHT knows it by: the v1 infohash, or
for a v2-only torrent the first 20 bytes of its SHA-256 infohash. Once a
node's DHT has a few neighbours it announces its torrents (force_dht_announce),
and again every few seconds until each announce has landed.

Output is one JSON object per line on stdout:
  {"event":"ready","nodes":["127.91.0.1:P",...],"torrents":[{"info_hash":"<v1 hex>",
   "info_hash_v2":"<first 20 bytes of the v2 hash, hex>"|null,"version":"v1"|"hybrid",
   "name":"...","info_file":"<path>","node":"127.91.0.3:P"},...]}
  {"event":"announce","info_hash":"<hex>","peer":"ip:port","node":"ip:port"}
      (node stored peer's announce of info_hash; once per hash and node)
  {"event":"announced_all","holders":{"<hex>":N,...}}
      (every torrent's hashes, v1 and v2, are held by at least --min-holders nodes)
  {"event":"ban","node":"ip:port","ip":"<banned ip>","line":"BANNING PEER [...]"}
      (libtorrent's dos_blocker, from its dht_log_alert)
  {"event":"counters","nodes":{"ip:port":{"dht_messages_in":N,
   "dht_messages_in_dropped":N,"dht_messages_out_dropped":N},...}}   (at exit)
  {"event":"exit","reason":"..."}
  {"event":"late_seeded","torrents":[...]}
      (after a line "seed-late" on stdin: the --late torrents, made at start
      but seeded and announced only now, described as in "ready")
The process stops after --duration seconds, on SIGTERM/SIGINT, or when stdin
closes if --stdin-eof is given.

--no-samples makes every node answer sample_infohashes with no samples, for
tests of what a crawler finds by asking (imports).

--late N makes N more torrents that no node seeds until stdin says so. A node
asks crawlers to wait dht_sample_infohashes_interval (six hours by default)
between samples, so a polite crawler that sampled every node before can learn
these only from the get_peers and announce_peer traffic of their announces.
"""

import argparse
import ipaddress
import os
import re
import select
import signal
import socket
import sys
import time
import types

import libtorrent as lt

from lt_node import emit, settings as node_settings
from lt_seeder import make_torrent

# libtorrent's default dht_announce_interval (15 minutes): after the first
# announces, the network is as quiet as a real one.
DEFAULT_ANNOUNCE_INTERVAL = 900
# Seconds before an announce that has not landed anywhere is forced again.
REANNOUNCE_SECS = 3.0
# Seconds between two forced announces of one node: all at once overrun the
# nodes' 8,000 bytes/s reply budget, replies are dropped and the traversals
# wait out libtorrent's 15 s timeouts.
FORCE_SPACING_SECS = 0.7
COUNTERS = ["dht.dht_messages_in", "dht.dht_messages_in_dropped", "dht.dht_messages_out_dropped"]
BAN = re.compile(r"BANNING PEER \[ ip: ([^ ]+)")

# Torrent names and file trees: not ASCII on purpose (they must come back byte
# for byte), folders nested a few levels, and one empty file in each.
NAMES = [
    "Ünïcode Film 2019 1080p",
    "Album – Artist (2001)",
    "日本語のアルバム",
    "Ελληνικά βιβλία",
    "Кириллица и ёжик",
    "Clips 🎬 collection",
    "Año español: señales",
    "中文 文档 合集",
]
FILES = [
    ("main.bin", 48_000),
    ("extras/Déjà vu/notes ✓.txt", 3_000),
    ("extras/a/b/c/deep.dat", 20_000),
    ("empty.nfo", 0),
]


def layout(i):
    """Torrent i's name and files; every torrent's differ, so its hash does."""
    name = "%s #%d" % (NAMES[i % len(NAMES)], i)
    files = [(rel, size + 1_000 * i if size else 0) for rel, size in FILES[: 2 + i % 3]]
    files.append(FILES[-1])
    return name, files


def free_port(ip):
    """A port free for both UDP and TCP on ip (libtorrent listens on both)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind((ip, 0))
            port = u.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                try:
                    t.bind((ip, port))
                    return port
                except OSError:
                    continue


class Node:
    def __init__(self, ip, port, peers, save_path, samples=True):
        self.addr = "%s:%d" % (ip, port)
        args = types.SimpleNamespace(bind=ip, port=port, bootstrap=[],
                                     interval=DEFAULT_ANNOUNCE_INTERVAL, raise_limits=False)
        s = node_settings(args)
        s["alert_mask"] |= lt.alert.category_t.dht_log_notification | lt.alert.category_t.stats_notification
        # Resources only (one process holds every node); no DHT limit changes.
        s["aio_threads"] = 1
        s["hashing_threads"] = 1
        if not samples:
            # sample_infohashes answers with no samples: a crawler can learn
            # these torrents only by asking for them (imports, lookups).
            s["dht_max_infohashes_sample_count"] = 0
        self.ses = lt.session(s)
        self.peers = peers
        self.save_path = save_path
        self.torrents = []  # (handle, [hashes it announces])
        self.listening = False
        self.bootstrapped = False

    def seed(self, ti, hashes):
        atp = lt.add_torrent_params()
        atp.ti = ti
        atp.save_path = self.save_path
        # Seed at once: a paused (or auto-managed, not yet started) torrent neither announces nor serves.
        atp.flags = (atp.flags | lt.torrent_flags.seed_mode) & ~(lt.torrent_flags.paused | lt.torrent_flags.auto_managed)
        self.torrents.append((self.ses.add_torrent(atp), hashes))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nodes", type=int, default=10, help="number of libtorrent sessions")
    p.add_argument("--base-ip", default="127.91.0.1", help="node i binds this address + i")
    p.add_argument("--torrents-per-node", type=int, default=2)
    p.add_argument("--no-samples", action="store_true",
                   help="answer sample_infohashes with no samples (dht_max_infohashes_sample_count 0)")
    p.add_argument("--late", type=int, default=0,
                   help="torrents seeded only after a line 'seed-late' on stdin")
    p.add_argument("--min-holders", type=int, default=3,
                   help="nodes that must hold each hash before announced_all")
    p.add_argument("--dir", required=True, help="directory for the files and .info outputs")
    p.add_argument("--duration", type=float, default=120.0, help="exit after this many seconds")
    p.add_argument("--stdin-eof", action="store_true", help="also exit when stdin closes")
    args = p.parse_args()

    os.makedirs(args.dir, exist_ok=True)
    base = ipaddress.IPv4Address(args.base_ip)
    ips = [str(base + i) for i in range(args.nodes)]
    hostports = [(ip, free_port(ip)) for ip in ips]
    nodes = []
    for i, (ip, port) in enumerate(hostports):
        save = os.path.join(args.dir, "node%d" % i)
        os.makedirs(save, exist_ok=True)
        nodes.append(Node(ip, port, [hp for hp in hostports if hp[0] != ip], save, samples=not args.no_samples))

    torrents, late = [], []
    seeded = args.nodes * args.torrents_per_node
    for i in range(seeded + args.late):
        node = nodes[i % args.nodes]
        name, files = layout(i)
        ti, desc = make_torrent(node.save_path, name, files, ("v1", "hybrid", "v2")[i % 3])
        # The .info files all go to --dir, next to the nodes' folders.
        info_file = os.path.join(args.dir, os.path.basename(desc["info_file"]))
        os.replace(desc["info_file"], info_file)
        v2 = ti.info_hashes().v2 if ti.info_hashes().has_v2() else None
        # A hybrid's truncated v2 hash is a second name; a v2-only torrent's is its only one.
        desc.update(info_file=info_file, node=node.addr,
                    info_hash_v2=str(v2)[:40] if v2 is not None and desc["version"] == "hybrid" else None)
        hashes = [h for h in (desc["info_hash"], desc["info_hash_v2"]) if h]
        if i < seeded:
            node.seed(ti, hashes)
            torrents.append(desc)
        else:
            late.append((node, ti, hashes, desc))

    stop = {"reason": None}

    def on_signal(signum, _frame):
        stop["reason"] = "signal %d" % signum

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    holders = {h: set() for n in nodes for _, hs in n.torrents for h in hs}
    forced = {}  # node addr, and (node addr, torrent index) -> last force time
    deadline = time.monotonic() + args.duration
    ready = all_announced = False
    next_stats = time.monotonic()

    def force(node, now):
        if now - forced.get(node.addr, -1e9) < FORCE_SPACING_SECS:
            return
        for j, (handle, hashes) in enumerate(node.torrents):
            if any(not holders[h] for h in hashes) and now - forced.get((node.addr, j), -1e9) >= REANNOUNCE_SECS:
                forced[(node.addr, j)] = forced[node.addr] = now
                handle.force_dht_announce()
                return

    while stop["reason"] is None:
        now = time.monotonic()
        if now >= deadline:
            stop["reason"] = "duration"
            break
        r, _, _ = select.select([sys.stdin] if args.stdin_eof or late else [], [], [], 0.05)
        if r:
            data = sys.stdin.buffer.read1(4096)
            if not data:
                if args.stdin_eof:
                    stop["reason"] = "stdin closed"
                    break
                late = []  # nobody will ask for them any more
            elif b"seed-late" in data and late:
                for node, ti, hashes, _ in late:
                    node.seed(ti, hashes)
                    holders.update({h: set() for h in hashes})
                emit({"event": "late_seeded", "torrents": [d for _, _, _, d in late]})
                late = []
        for node in nodes:
            for a in node.ses.pop_alerts():
                if isinstance(a, lt.listen_succeeded_alert):
                    node.listening = True
                elif isinstance(a, lt.listen_failed_alert):
                    emit({"event": "error", "node": node.addr, "message": a.message()})
                    stop["reason"] = "listen failed"
                elif isinstance(a, lt.dht_bootstrap_alert):
                    node.bootstrapped = True
                elif isinstance(a, lt.dht_stats_alert):
                    # The bootstrap alert can wait out a timeout on a node that
                    # was not listening yet; a few live neighbours are enough.
                    if sum(b["num_nodes"] for b in a.routing_table) >= min(3, len(nodes) - 1):
                        node.bootstrapped = True
                elif isinstance(a, lt.dht_announce_alert):
                    h = str(a.info_hash)
                    if h in holders and node.addr not in holders[h]:
                        holders[h].add(node.addr)
                        emit({"event": "announce", "info_hash": h,
                              "peer": "%s:%d" % (a.ip, a.port), "node": node.addr})
                elif isinstance(a, lt.dht_log_alert):
                    m = BAN.search(a.log_message())
                    if m:
                        emit({"event": "ban", "node": node.addr, "ip": m.group(1),
                              "line": a.log_message()})
        if not ready and all(n.listening for n in nodes):
            ready = True
            for n in nodes:
                for hp in n.peers:
                    n.ses.add_dht_node(hp)
            emit({"event": "ready", "nodes": [n.addr for n in nodes], "torrents": torrents})
        for node in nodes:
            if node.bootstrapped:
                force(node, now)
            elif now >= next_stats:
                node.ses.post_dht_stats()
        if now >= next_stats:
            next_stats = now + 0.25
        if not all_announced and all(len(s) >= args.min_holders for s in holders.values()):
            all_announced = True
            emit({"event": "announced_all", "holders": {h: len(s) for h, s in holders.items()}})

    emit({"event": "counters", "nodes": counters(nodes)})
    emit({"event": "exit", "reason": stop["reason"]})


def counters(nodes):
    """Each node's DHT message counters from one session_stats_alert."""
    index = {name: lt.find_metric_idx(name) for name in COUNTERS}
    out = {}
    for node in nodes:
        node.ses.post_session_stats()
    end = time.monotonic() + 2.0
    while len(out) < len(nodes) and time.monotonic() < end:
        for node in nodes:
            if node.addr in out:
                continue
            for a in node.ses.pop_alerts():
                if isinstance(a, lt.session_stats_alert):
                    values = a.values
                    out[node.addr] = {name.split(".")[1]: int(values[name] if isinstance(values, dict) else values[i])
                                      for name, i in index.items()}
        time.sleep(0.02)
    return out


if __name__ == "__main__":
    main()
