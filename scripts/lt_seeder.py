#!/usr/bin/python3
"""A libtorrent seeder on a loopback address, for trawl's metadata fetcher tests.

Run with /usr/bin/python3 (Debian's python3-libtorrent). It writes a few files
(deterministic content) under --dir, makes torrents of them with
lt.create_torrent (one v1-only and one hybrid v1+v2, libtorrent's default),
writes each raw info dict (the bytes whose SHA-1 is the infohash) to
--dir/<infohash hex>.info, and seeds them on --bind:--port with DHT, LSD, UPnP
and NAT-PMP off. It never contacts anything outside the bound address.

Output is one JSON object per line on stdout:
  {"event":"ready","addr":"127.0.0.1:PORT","torrents":[{"info_hash":"<hex>",
   "info_file":"<path>","name":"...","version":"v1"|"hybrid"},...]}
  {"event":"exit","reason":"..."}
The process stops after --duration seconds, on SIGTERM/SIGINT, or when stdin closes.
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


# (torrent directory name, files as (relative path, size)). Names are not ASCII on
# purpose: they must come back byte for byte.
LAYOUTS = [
    ("Ünïcode Film 2019 1080p", [("film.mkv", 300_000), ("subs/film.en.srt", 2_000)]),
    ("Album – Artist (2001)", [("01 Intro.flac", 120_000), ("02 Song.flac", 90_000), ("cover.jpg", 5_000)]),
]


def write_files(root, files):
    for rel, size in files:
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            # Deterministic, incompressible enough to look like media.
            f.write(bytes((i * 131 + len(rel)) & 0xFF for i in range(size)))


def make_torrent(base, name, files, version):
    """version: "v1", "hybrid" (libtorrent's default) or "v2" (BEP 52 only).
    A v2-only torrent is named on the DHT and in handshakes by the first 20
    bytes of its SHA-256 infohash, so that is its info_hash here."""
    root = os.path.join(base, name)
    write_files(root, files)
    fs = lt.file_storage()
    lt.add_files(fs, root)
    flags = {"v1": lt.create_torrent.v1_only, "hybrid": 0, "v2": lt.create_torrent.v2_only}[version]
    ct = lt.create_torrent(fs, 16 * 1024, flags=flags)
    lt.set_piece_hashes(ct, base)
    ti = lt.torrent_info(ct.generate())
    info = ti.info_section()
    hashes = ti.info_hashes()
    info_hash = bytes(hashes.v1.to_bytes()) if version != "v2" else bytes(hashes.v2.to_bytes())[:20]
    hex_hash = binascii.hexlify(info_hash).decode()
    info_file = os.path.join(base, hex_hash + ".info")
    with open(info_file, "wb") as f:
        f.write(info)
    return ti, {"info_hash": hex_hash, "info_file": info_file, "name": name, "version": version}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bind", default="127.0.0.1", help="IP address to bind (loopback in tests)")
    p.add_argument("--port", type=int, required=True, help="TCP port to seed on")
    p.add_argument("--dir", required=True, help="directory for the files and .info outputs")
    p.add_argument("--duration", type=float, default=30.0, help="exit after this many seconds")
    args = p.parse_args()

    os.makedirs(args.dir, exist_ok=True)
    ses = lt.session({
        "listen_interfaces": "%s:%d" % (args.bind, args.port),
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "allow_multiple_connections_per_ip": True,
        "alert_mask": lt.alert.category_t.error_notification,
    })
    torrents = []
    for i, (name, files) in enumerate(LAYOUTS):
        ti, desc = make_torrent(args.dir, name, files, "v1" if i == 0 else "hybrid")
        atp = lt.add_torrent_params()
        atp.ti = ti
        atp.save_path = args.dir
        # Seed at once: a paused (or auto-managed, not yet started) torrent refuses peers.
        atp.flags = (atp.flags | lt.torrent_flags.seed_mode) & ~(lt.torrent_flags.paused | lt.torrent_flags.auto_managed)
        ses.add_torrent(atp)
        torrents.append(desc)

    # Wait until the listen socket is up, so the test may connect at once.
    deadline = time.time() + 10
    while ses.listen_port() == 0 and time.time() < deadline:
        time.sleep(0.05)
    emit({"event": "ready", "addr": "%s:%d" % (args.bind, ses.listen_port()), "torrents": torrents})

    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append("signal"))
    signal.signal(signal.SIGINT, lambda *_: stopping.append("signal"))
    end = time.time() + args.duration
    reason = "duration"
    while time.time() < end and not stopping:
        r, _, _ = select.select([sys.stdin], [], [], 0.2)
        if r and not sys.stdin.buffer.read1(4096):
            reason = "stdin closed"
            break
        for a in ses.pop_alerts():
            if a.category() & lt.alert.category_t.error_notification:
                sys.stderr.write("lt_seeder: %s\n" % a.message())
    if stopping:
        reason = stopping[0]
    emit({"event": "exit", "reason": reason})


if __name__ == "__main__":
    main()
