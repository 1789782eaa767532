#!/usr/bin/env python3
"""Writes the real-format seed inputs of the peer_wire, import_line and
storage_codecs fuzz targets (krpc_decode's seeds are captured datagrams).

Peer wire seeds are byte streams as libtorrent 2.0 and qBittorrent send them
(handshake, extended handshake with their usual keys, bitfield/have, then
ut_metadata request/data/reject). Storage seeds follow the layouts documented
in storage/src/schema.rs. Run from anywhere: python3 make_seeds.py
"""
import hashlib
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def ben(v):
    if isinstance(v, int):
        return b"i%de" % v
    if isinstance(v, str):
        v = v.encode()
    if isinstance(v, bytes):
        return b"%d:%s" % (len(v), v)
    if isinstance(v, list):
        return b"l" + b"".join(ben(x) for x in v) + b"e"
    if isinstance(v, dict):
        items = sorted((k.encode() if isinstance(k, str) else k, x) for k, x in v.items())
        return b"d" + b"".join(ben(k) + ben(x) for k, x in items) + b"e"
    raise TypeError(v)


def frame(body):
    return struct.pack(">I", len(body)) + body


def ext(ext_id, payload):
    return frame(bytes([20, ext_id]) + payload)


def write(target, name, data):
    d = os.path.join(HERE, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- peer_wire: first byte selects the frame cap (0 = default 1 MiB) ----------
info = ben({"name": "ubuntu-24.04-desktop-amd64.iso", "length": 6114656256, "piece length": 262144,
            "pieces": hashlib.sha1(b"x").digest() * 40})
info_hash = hashlib.sha1(info).digest()
reserved = bytes([0, 0, 0, 0, 0, 0x10, 0, 0x05])  # extension protocol, fast, DHT
hs = b"\x13BitTorrent protocol" + reserved + info_hash + b"-LT2040-" + b"abcdefghijkl"
lt_ext = ben({"m": {"lt_donthave": 7, "share_mode": 8, "upload_only": 3, "ut_holepunch": 4,
                    "ut_metadata": 2, "ut_pex": 1}, "metadata_size": len(info), "reqq": 500,
              "v": "libtorrent/2.0.10.0", "yourip": b"\x7f\x00\x00\x01", "p": 6881})
qb_ext = ben({"complete_ago": 1, "m": {"lt_donthave": 7, "ut_metadata": 3, "ut_pex": 1},
              "metadata_size": len(info), "reqq": 500, "v": "qBittorrent/4.6.4",
              "e": 0, "upload_only": 1})
no_meta_ext = ben({"m": {"ut_pex": 1, "ut_metadata": 0}, "v": "Transmission 4.0.5"})
bitfield = frame(bytes([5]) + b"\xff" * 3 + b"\xe0")
have = frame(bytes([4]) + struct.pack(">I", 7))
unchoke = frame(bytes([1]))
keepalive = frame(b"")
req0 = ext(1, ben({"msg_type": 0, "piece": 0}))
data0 = ext(1, ben({"msg_type": 1, "piece": 0, "total_size": len(info)}) + info)
reject1 = ext(1, ben({"msg_type": 2, "piece": 1}))
big = b"d" + b"x" * 40000
big_total = 40000
big_data1 = ext(1, ben({"msg_type": 1, "piece": 2, "total_size": big_total}) + big[32768:])

write("peer_wire", "libtorrent_session", b"\x00" + hs + ext(0, lt_ext) + bitfield + unchoke + data0)
write("peer_wire", "qbittorrent_session", b"\x00" + hs + ext(0, qb_ext) + have + keepalive + reject1 + req0)
write("peer_wire", "no_ut_metadata", b"\x00" + hs + ext(0, no_meta_ext) + keepalive)
write("peer_wire", "last_piece_small_cap", b"\x01" + hs + ext(0, lt_ext) + big_data1)
write("peer_wire", "truncated_frame", b"\x00" + hs + ext(0, lt_ext)[:-5])
write("peer_wire", "oversized_frame", b"\x02" + hs + struct.pack(">I", 1 << 30) + b"\x14\x00")
write("peer_wire", "handshake_only", b"\x00" + hs[:40])

# ---- import_line: whole files -----------------------------------------------
h1 = "c9e15763f722f23e98a29decdfae341b98d53056"
h2 = "dd8255ecdc7ca55fb0bbf81323d87062db1f6d1c"
b32 = "ZHQVOY7XELZD5GFCTXWN7LRUDOMNKMCW"  # h1 in base32
write("import_line", "hex_lines", ("# infohashes\n%s\n\n%s\n" % (h1, h2.upper())).encode())
write("import_line", "magnets", ("magnet:?xt=urn:btih:%s&dn=Big+Buck+Bunny&tr=udp%%3A%%2F%%2Fexplodie.org%%3A6969\n"
                                 "magnet:?dn=x&xt=urn:btih:%s\nMAGNET:?xt=urn:btih:%s\n" % (h1, b32, h2)).encode())
write("import_line", "trawl_jsonl", ('{"infoHash":"%s","name":"Sintel","size":129241752,"files":'
                                     '[{"path":["Sintel.mp4"],"length":129241752}],"class":"video"}\n'
                                     '{"info_hash":"%s","first_seen":1763700000}\n' % (h1, h2)).encode())
write("import_line", "bitmagnet_ndjson", ('{"infoHash":"%s","name":"Cosmos Laundromat","size":220087570,'
                                          '"source":"trawl","contentType":"movie"}\n' % h1).encode())
write("import_line", "bad_lines", ("%s\nnot-a-hash\n%sz\n{\"hash\": 5}\n{\"x\":1}\nmagnet:?dn=nohash\n{\"hash\":\"\\u0063%s\"}\n"
                                   % (h1[:39], h1[:39], h1[1:])).encode())
write("import_line", "crlf", ("%s\r\n  %s  \r\n" % (h1, h2)).encode())


# ---- storage_codecs: selector byte, then key/value bytes ----------------------
def varint(v):
    out = b""
    while v >= 0x80:
        out += bytes([(v & 0x7F) | 0x80])
        v >>= 7
    return out + bytes([v])


def vbytes(b):
    return varint(len(b)) + b


now = 1763700000
write("storage_codecs", "infohash", b"\x00" + struct.pack(">IIIB", now - 86400, now, 17, 0b101))
write("storage_codecs", "scrape", b"\x01" + struct.pack(">III", 120, 33, now))
node_id = hashlib.sha1(b"node").digest()
write("storage_codecs", "node_v4", b"\x02" + b"\x04" + node_id + bytes([127, 0, 0, 9]) + struct.pack(">H", 6881))
# Since the node value carries crawl state: next sample (u32) and BEP 51 support (0 unknown, 1 yes, 2 no).
write("storage_codecs", "node_v4_with_state", b"\x02" + b"\x04" + node_id + bytes([127, 0, 0, 9])
      + struct.pack(">H", 6881) + struct.pack(">I", 1763703600) + b"\x01")
write("storage_codecs", "node_v6", b"\x02" + b"\x06" + node_id + bytes(15) + b"\x01" + struct.pack(">H", 51413))
peers = b"\x04" + bytes([127, 0, 0, 2]) + struct.pack(">H", 6881) + b"\x06" + bytes(15) + b"\x01" + struct.pack(">H", 6882)
write("storage_codecs", "staging", b"\x03" + struct.pack(">IIH", now + 600, now, 2)
      + vbytes(b"connect: connection refused") + varint(2) + peers)
write("storage_codecs", "staging_fresh", b"\x03" + struct.pack(">IIH", now, now, 0) + vbytes(b"") + varint(0))


def torrent(files, name, cls=2, ct=3, flags=0, total=None, piece=262144):
    out = bytes([1]) + struct.pack(">I", now) + bytes([cls, ct, flags])
    out += varint(total if total is not None else sum(l for _, l in files)) + varint(piece) + vbytes(name)
    out += varint(len(files))
    prev = []
    for path, length in files:
        d = path[:-1]
        shared = 0
        while shared < min(len(prev), len(d)) and prev[shared] == d[shared]:
            shared += 1
        out += varint(shared) + varint(len(path) - shared) + b"".join(vbytes(c) for c in path[shared:]) + varint(length)
        prev = d
    return out


write("storage_codecs", "torrent_single", b"\x04" + torrent([([b"Sintel.mp4"], 129241752)], b"Sintel"))
write("storage_codecs", "torrent_tree", b"\x04" + torrent(
    [([b"Album", b"CD1", b"01 Intro.flac"], 31_000_000), ([b"Album", b"CD1", b"02 Song.flac"], 42_000_000),
     ([b"Album", b"CD2", b"01 Outro.flac"], 29_000_000), ([b"Album", b"cover.jpg"], 812_000)],
    b"Album", cls=1, ct=0, flags=1))
write("storage_codecs", "due_key", b"\x05" + struct.pack(">I", now) + info_hash)
write("storage_codecs", "infohash_key", b"\x06" + info_hash)

# ---- info_dict: info dicts as .torrent files and ut_metadata carry them ---------
pieces = hashlib.sha1(b"p").digest() * 3
write("info_dict", "v1_single", ben({"name": "Sintel.2010.1080p.mkv", "length": 1448424474,
                                      "piece length": 1 << 21, "pieces": pieces}))
write("info_dict", "v1_multi_padding", ben({
    "name": "Album", "piece length": 1 << 18, "pieces": pieces, "private": 1,
    "files": [{"length": 31000000, "path": ["CD1", "01 Intro.flac"]},
              {"length": 213, "path": [".pad", "213"], "attr": "p"},
              {"length": 812000, "path": ["cover.jpg"], "attr": "x"}]}))
write("info_dict", "v1_legacy_names", ben({
    "name": b"\xc4\xe9\xd3\xb0", "name.utf-8": "电影", "piece length": 1 << 20, "pieces": pieces,
    "files": [{"length": 700, "path": [b"\xb5\xda1\xbc\xaf.avi"], "path.utf-8": ["第1集.avi"]}]}))
leaf = lambda n: {"": {"length": n, "pieces root": hashlib.sha256(b"r").digest()}}
write("info_dict", "v2_tree", ben({
    "name": "dataset", "piece length": 1 << 16, "meta version": 2,
    "file tree": {"README": leaf(1200), "data": {"a.csv": leaf(70000), "b.csv": leaf(65536)}}}))
write("info_dict", "hybrid", ben({
    "name": "dataset", "piece length": 1 << 16, "meta version": 2, "pieces": pieces,
    "file tree": {"data.bin": leaf(90000)}, "files": [{"length": 90000, "path": ["data.bin"]}]}))

# ---- metadata_exchange: scripts (flags, size u16, pattern seed, then ops) -----
# Honest sessions: flags bit 0; the rest are segment sizes (n * 37 + 1 bytes).
write("metadata_exchange", "honest_one_piece", bytes([1]) + struct.pack(">H", 900) + b"\x05" + bytes([255] * 4))
write("metadata_exchange", "honest_three_pieces_small_segments",
      bytes([1]) + struct.pack(">H", 40000) + b"\x09" + bytes(range(1, 200)))
write("metadata_exchange", "honest_small_caps", bytes([3]) + struct.pack(">H", 20000) + b"\x01" + bytes([40, 3, 200, 7]))
# Scripted: 0 handshake, 1 ext handshake (ut, honest-size flag), 2 data piece,
# 3 raw bytes, 4 deliver (segment sizes follow), 5 clock jump, 6 reject, 7 close.
write("metadata_exchange", "pieces_out_of_order", bytes([0]) + struct.pack(">H", 33000) + b"\x02"
      + bytes([0, 1, 3, 0, 2, 1, 2, 0, 2, 2, 4, 255, 255, 255]))
write("metadata_exchange", "reject_then_close", bytes([0]) + struct.pack(">H", 1000) + b"\x00"
      + bytes([0, 1, 3, 0, 6, 0, 4, 9, 7]))
write("metadata_exchange", "lying_size", bytes([2]) + struct.pack(">H", 5000) + b"\x00"
      + bytes([0, 1, 3, 1, 0xff, 0xff, 2, 0, 4, 100, 100]))
write("metadata_exchange", "garbage_after_handshake", bytes([0]) + struct.pack(">H", 70) + b"\x00"
      + bytes([0, 3, 12]) + b"\x7f\xff\xff\xff\x14\x01garbage" + bytes([4, 0, 5, 200]))
