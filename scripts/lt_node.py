#!/usr/bin/python3
"""A libtorrent DHT node driven from the command line, for trawl's loopback
interop tests and the node-answer benchmark.

Run with /usr/bin/python3 (Debian's python3-libtorrent). The node binds only
the address given by --bind (a 127.0.0.0/8 address in every test), has its
address restrictions turned off so loopback peers may enter its routing table,
and never contacts the public routers: its only bootstrap nodes are the ones
passed with --bootstrap.

Output is one JSON object per line on stdout:
  {"event":"ready","addr":"127.0.0.2:6881"}
  {"event":"nodes","count":N}                      (routing table size, every second)
  {"event":"announcing","info_hash":"<hex>","port":P}
  {"event":"peers","info_hash":"<hex>","peers":["127.0.0.5:7000",...]}
  {"event":"lookup_done","info_hash":"<hex>","peers":N}
  {"event":"exit","reason":"..."}
The process stops after --duration seconds, on SIGTERM/SIGINT, or when stdin
closes if --stdin-eof is given.
"""

import argparse
import binascii
import json
import os
import select
import signal
import sys
import time

import libtorrent as lt


def emit(obj):
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def parse_hostport(text):
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise argparse.ArgumentTypeError("expected HOST:PORT, got %r" % text)
    return host.strip("[]"), int(port)


def parse_infohash(text):
    if len(text) != 40:
        raise argparse.ArgumentTypeError("an infohash is 40 hex digits")
    try:
        return binascii.unhexlify(text)
    except binascii.Error:
        raise argparse.ArgumentTypeError("an infohash is 40 hex digits")


def settings(args):
    s = {
        "listen_interfaces": "%s:%d" % (args.bind, args.port),
        "enable_dht": True,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "dht_bootstrap_nodes": ",".join("%s:%d" % hp for hp in args.bootstrap),
        # Loopback: every node shares 127.0.0.0/8, which the defaults reject.
        "dht_restrict_routing_ips": False,
        "dht_restrict_search_ips": False,
        "dht_ignore_dark_internet": False,
        "dht_enforce_node_id": False,
        "dht_prefer_verified_node_ids": False,
        "dht_extended_routing_table": True,
        "dht_read_only": False,
        "dht_announce_interval": max(1, int(args.interval)),
        "alert_mask": lt.alert.category_t.dht_notification
        | lt.alert.category_t.dht_operation_notification
        | lt.alert.category_t.status_notification
        | lt.alert.category_t.error_notification,
    }
    if args.raise_limits:
        # The defaults throttle replies to ~8 KB/s and block busy IPs; a fair
        # throughput comparison lifts them (NOTES.md).
        s.update(
            {
                "dht_upload_rate_limit": 1 << 30,
                "dht_block_ratelimit": 1 << 30,
                "dht_block_timeout": 0,
                "dht_max_fail_count": 1 << 20,
            }
        )
    return s


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bind", default="127.0.0.1", help="IP address to bind (loopback in tests)")
    p.add_argument("--port", type=int, required=True, help="UDP/TCP port of the node")
    p.add_argument("--bootstrap", type=parse_hostport, action="append", default=[],
                   help="HOST:PORT of a node to bootstrap from (repeatable)")
    p.add_argument("--add-node", type=parse_hostport, action="append", default=[],
                   help="HOST:PORT to add to the routing table directly (repeatable)")
    p.add_argument("--announce", type=parse_infohash, action="append", default=[],
                   help="infohash (hex) to announce with our own port (repeatable)")
    p.add_argument("--save-path", default="/tmp",
                   help="where an announced torrent would store data (nothing is written)")
    p.add_argument("--lookup", type=parse_infohash, action="append", default=[],
                   help="infohash (hex) to look up, repeated every --interval seconds")
    p.add_argument("--interval", type=float, default=1.0,
                   help="seconds between repeated lookups and announces")
    p.add_argument("--raise-limits", action="store_true",
                   help="lift the DHT rate limits (for throughput benchmarks)")
    p.add_argument("--cpu", type=int, default=None,
                   help="pin the process (and libtorrent's threads) to this CPU")
    p.add_argument("--duration", type=float, default=30.0, help="exit after this many seconds")
    p.add_argument("--stdin-eof", action="store_true", help="also exit when stdin closes")
    args = p.parse_args()

    if args.cpu is not None:
        # Before the session exists, so every libtorrent thread inherits it.
        os.sched_setaffinity(0, {args.cpu})
    ses = lt.session(settings(args))
    for host, port in args.add_node:
        ses.add_dht_node((host, port))
    # The binding cannot call session.dht_announce (its flags type is not
    # exported), so an announce is a torrent without metadata: libtorrent then
    # announces its own listen port for it every dht_announce_interval.
    for ih in args.announce:
        atp = lt.add_torrent_params()
        atp.info_hashes = lt.info_hash_t(lt.sha1_hash(ih))
        atp.save_path = args.save_path
        # Started at once and never queued; upload mode so nothing is written.
        atp.flags = (atp.flags & ~lt.torrent_flags.paused & ~lt.torrent_flags.auto_managed) \
            | lt.torrent_flags.upload_mode
        ses.add_torrent(atp)
        emit({"event": "announcing", "info_hash": ih.hex(), "port": args.port})

    stop = {"reason": None}

    def on_signal(signum, _frame):
        stop["reason"] = "signal %d" % signum

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    deadline = time.monotonic() + args.duration
    ready = False
    next_round = time.monotonic()
    next_stats = time.monotonic()
    found = {}  # info_hash -> set of "ip:port"

    while stop["reason"] is None:
        now = time.monotonic()
        if now >= deadline:
            stop["reason"] = "duration"
            break
        if args.stdin_eof:
            r, _, _ = select.select([sys.stdin], [], [], 0)
            if r and not sys.stdin.readline():
                stop["reason"] = "stdin closed"
                break

        if ready and now >= next_round:
            next_round = now + args.interval
            for ih in args.lookup:
                ses.dht_get_peers(lt.sha1_hash(ih))
        if now >= next_stats:
            next_stats = now + 1.0
            ses.post_dht_stats()

        ses.wait_for_alert(100)
        for a in ses.pop_alerts():
            if isinstance(a, lt.listen_succeeded_alert) and not ready:
                ready = True
                emit({"event": "ready", "addr": "%s:%d" % (a.address, a.port)})
            elif isinstance(a, lt.listen_failed_alert):
                emit({"event": "error", "message": a.message()})
                stop["reason"] = "listen failed"
            elif isinstance(a, lt.dht_stats_alert):
                count = sum(b["num_nodes"] for b in a.routing_table)
                emit({"event": "nodes", "count": count})
            elif isinstance(a, lt.dht_announce_alert):
                pass  # someone announced to us; not needed by the tests
            elif isinstance(a, lt.dht_get_peers_reply_alert):
                ih = bytes.fromhex(str(a.info_hash))
                seen = found.setdefault(ih, set())
                fresh = []
                for ep in a.peers():
                    text = "%s:%d" % (ep[0], ep[1])
                    if text not in seen:
                        seen.add(text)
                        fresh.append(text)
                if fresh:
                    emit({"event": "peers", "info_hash": ih.hex(), "peers": fresh})

    emit({"event": "exit", "reason": stop["reason"]})


if __name__ == "__main__":
    main()
