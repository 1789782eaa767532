#!/usr/bin/python3
"""Writes N .torrent files made by libtorrent (Debian's python3-libtorrent)
with the file counts and sizes of DHT torrents, for `trawl-bench storage
--libtorrent-torrents N`.

    libtorrent_torrents.py N OUT_DIR [SEED]

Shapes: 35% one video file, 30% season packs (6 to 24 episodes with
subtitles and an .nfo), 20% albums (8 to 20 .flac, a cover and a rip log),
15% collections (30 to 200 files over a few folders). Torrents are v1 only
(libtorrent's Python binding cannot set v2 piece hashes without hashing real
files); the piece hashes are random bytes of the right count, so the dicts
have their real size. libtorrent picks the piece size and writes the dict.
"""

import os
import random
import sys

import libtorrent as lt

WORDS = ("The Last Night Blue Planet Empire Ocean Dark Star River King Queen Winter Summer Fire "
         "Ghost Road City Love War Silent Golden Broken Wild Lost Secret").split()
GROUPS = "NTb FLUX SPARKS YIFY GalaxyRG EDITH CMRG KOGi PSA".split()
QUALITY = ["1080p.WEB-DL.DDP5.1.H.264", "2160p.BluRay.x265.10bit", "720p.HDTV.x264", "1080p.BluRay.x264"]
MIB = 1 << 20


def title(rng, lo, hi, sep):
    return sep.join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi)))


def shape(rng):
    """(name, [(path, size)]) for one torrent."""
    kind = rng.randrange(100)
    group, q, year = rng.choice(GROUPS), rng.choice(QUALITY), rng.randint(1970, 2024)
    show = title(rng, 1, 3, ".")
    if kind < 35:
        name = f"{show}.{year}.{q}-{group}.mkv"
        return name, [(name, rng.randint(700 * MIB, 20 << 30))]
    if kind < 65:
        season = rng.randint(1, 9)
        name = f"{show}.S{season:02}.{q}-{group}"
        files = []
        for e in range(1, rng.randint(6, 24) + 1):
            ep = f"{show}.S{season:02}E{e:02}.{q}-{group}"
            files.append((f"{name}/{ep}.mkv", rng.randint(300 * MIB, 3 << 30)))
            files.append((f"{name}/Subs/{ep}.srt", rng.randint(20_000, 90_000)))
        files.append((f"{name}/{name}.nfo", rng.randint(1_000, 6_000)))
        return name, files
    if kind < 85:
        artist = title(rng, 2, 2, " ")
        name = f"{artist} - {title(rng, 2, 2, ' ')} ({year}) [FLAC]"
        files = [(f"{name}/{t:02} - {artist} - {title(rng, 1, 4, ' ')}.flac", rng.randint(15 * MIB, 60 * MIB))
                 for t in range(1, rng.randint(8, 20) + 1)]
        files.append((f"{name}/cover.jpg", rng.randint(100_000, 2_000_000)))
        files.append((f"{name}/{artist} - {year}.log", rng.randint(2_000, 9_000)))
        return name, files
    name = f"{title(rng, 2, 2, ' ')} Collection {year}"
    dirs = [title(rng, 2, 2, " ") for _ in range(rng.randint(2, 7))]
    files = [(f"{name}/{rng.choice(dirs)}/{title(rng, 3, 3, ' ')} - {i}.epub", rng.randint(200_000, 8 * MIB))
             for i in range(rng.randint(30, 200))]
    return name, files


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    n, out = int(sys.argv[1]), sys.argv[2]
    rng = random.Random(int(sys.argv[3]) if len(sys.argv) == 4 else 1)
    os.makedirs(out, exist_ok=True)
    for i in range(n):
        name, files = shape(rng)
        fs = lt.file_storage()
        for path, size in files:
            fs.add_file(path, size)
        ct = lt.create_torrent(fs, 0, flags=lt.create_torrent.v1_only)
        for p in range(ct.num_pieces()):
            ct.set_hash(p, rng.randbytes(20))
        with open(os.path.join(out, f"{i:06}.torrent"), "wb") as f:
            f.write(lt.bencode(ct.generate()))


if __name__ == "__main__":
    main()
