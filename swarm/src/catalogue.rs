//! The torrent catalogue: M deterministic, realistic info dicts, their
//! infohashes, and which virtual nodes hold each of them.
//!
//! Owns: generating torrent `index`'s layout and bencoded info dict from
//! (seed, index), the infohash index used by `get_peers` and by tests as
//! ground truth, and the holder relation (torrent -> nodes, node -> torrents).
//! Must not: keep info dicts in memory; they are regenerated on demand.

use sha1::{Digest, Sha1};
use trawl_engine::codec::bencode;

use super::derive::{self, hash3, Stream};
use super::nodes::Nodes;

pub type InfoHash = [u8; 20];

/// Upper bound on the number of pieces, so no info dict exceeds ~80 KB of
/// `pieces` and the start-up hashing of a million dicts stays short.
const MAX_PIECES: u64 = 4000;
const MIN_PIECE_LEN: u64 = 16 * 1024;
const MAX_PIECE_LEN: u64 = 64 * 1024 * 1024;
const PIECE_HASH_LEN: usize = 20;
pub const MAX_FILES: usize = 200;

// Info dict keys, in the sorted order bencode requires.
const KEY_FILES: &[u8] = b"files";
const KEY_LENGTH: &[u8] = b"length";
const KEY_NAME: &[u8] = b"name";
const KEY_PATH: &[u8] = b"path";
const KEY_PIECE_LENGTH: &[u8] = b"piece length";
const KEY_PIECES: &[u8] = b"pieces";

/// One file of a torrent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileEntry {
    pub path: Vec<String>,
    pub length: u64,
}

/// A torrent's layout: what its info dict describes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TorrentInfo {
    pub name: String,
    pub piece_length: u64,
    /// Empty for a single-file torrent, whose size is `length`.
    pub files: Vec<FileEntry>,
    pub length: u64,
}

impl TorrentInfo {
    pub fn total_size(&self) -> u64 {
        if self.files.is_empty() {
            self.length
        } else {
            self.files.iter().map(|f| f.length).sum()
        }
    }

    pub fn piece_count(&self) -> u64 {
        self.total_size().div_ceil(self.piece_length).max(1)
    }
}

/// The knobs of the catalogue.
#[derive(Clone, Copy, Debug)]
pub struct CatalogueConfig {
    pub torrents: u32,
    /// Each torrent is held by 1..=holders_max virtual nodes.
    pub holders_max: u32,
}

impl Default for CatalogueConfig {
    fn default() -> Self {
        Self {
            torrents: 1_000_000,
            holders_max: 4,
        }
    }
}

/// The catalogue with its infohash index and holder relation.
#[derive(Debug)]
pub struct Catalogue {
    seed: u64,
    infohashes: Vec<InfoHash>,
    /// (first 8 bytes of the infohash, torrent index), sorted, for `get_peers`.
    by_hash: Vec<(u64, u32)>,
    holders_max: u32,
    node_count: u32,
    /// Node -> torrents it holds, as offsets into `held`.
    held_offsets: Vec<u32>,
    held: Vec<u32>,
}

impl Catalogue {
    /// Generates the catalogue, hashing its info dicts on `threads` threads.
    pub fn new(seed: u64, config: CatalogueConfig, nodes: &Nodes, threads: usize) -> Self {
        let count = config.torrents as usize;
        let mut infohashes = vec![[0u8; 20]; count];
        let threads = threads.max(1);
        let chunk = count.div_ceil(threads).max(1);
        std::thread::scope(|s| {
            for (c, part) in infohashes.chunks_mut(chunk).enumerate() {
                s.spawn(move || {
                    let mut buf = Vec::new();
                    for (j, slot) in part.iter_mut().enumerate() {
                        buf.clear();
                        write_info_dict(seed, (c * chunk + j) as u32, &mut buf);
                        *slot = Sha1::digest(&buf).into();
                    }
                });
            }
        });
        let mut by_hash: Vec<(u64, u32)> = infohashes
            .iter()
            .enumerate()
            .map(|(i, h)| (prefix64(h), i as u32))
            .collect();
        by_hash.sort_unstable();

        let mut cat = Catalogue {
            seed,
            infohashes,
            by_hash,
            holders_max: config.holders_max.max(1),
            node_count: nodes.len(),
            held_offsets: Vec::new(),
            held: Vec::new(),
        };
        cat.build_held();
        cat
    }

    /// Counting sort of the holder relation into node -> torrents.
    fn build_held(&mut self) {
        let n = self.node_count as usize;
        let mut counts = vec![0u32; n + 1];
        let mut holders = [0u32; 16];
        for t in 0..self.len() {
            for &h in self.holders(t, &mut holders) {
                counts[h as usize + 1] += 1;
            }
        }
        for i in 0..n {
            counts[i + 1] += counts[i];
        }
        let mut held = vec![0u32; counts[n] as usize];
        let mut cursor = counts.clone();
        for t in 0..self.len() {
            for &h in self.holders(t, &mut holders) {
                held[cursor[h as usize] as usize] = t;
                cursor[h as usize] += 1;
            }
        }
        self.held_offsets = counts;
        self.held = held;
    }

    pub fn len(&self) -> u32 {
        self.infohashes.len() as u32
    }

    pub fn is_empty(&self) -> bool {
        self.infohashes.is_empty()
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    pub fn infohash(&self, index: u32) -> &InfoHash {
        &self.infohashes[index as usize]
    }

    /// The catalogue index of `hash`, if it is a catalogue torrent.
    pub fn find(&self, hash: &InfoHash) -> Option<u32> {
        let key = prefix64(hash);
        let start = self.by_hash.partition_point(|&(k, _)| k < key);
        self.by_hash[start..]
            .iter()
            .take_while(|&&(k, _)| k == key)
            .map(|&(_, i)| i)
            .find(|&i| &self.infohashes[i as usize] == hash)
    }

    /// The distinct virtual nodes holding torrent `index` (at most 16), in `buf`.
    pub fn holders<'b>(&self, index: u32, buf: &'b mut [u32; 16]) -> &'b [u32] {
        if self.node_count == 0 {
            return &buf[..0];
        }
        let want = 1 + hash3(self.seed, index.into(), derive::SALT_HOLDERS) % u64::from(self.holders_max.min(16));
        let mut stream = Stream::new(self.seed, index.into(), derive::SALT_HOLDERS);
        let mut n = 0;
        for _ in 0..want {
            let node = stream.below(self.node_count.into()) as u32;
            if !buf[..n].contains(&node) {
                buf[n] = node;
                n += 1;
            }
        }
        &buf[..n]
    }

    /// The torrents node `node` holds, ascending.
    pub fn held_by(&self, node: u32) -> &[u32] {
        let (Some(&a), Some(&b)) = (
            self.held_offsets.get(node as usize),
            self.held_offsets.get(node as usize + 1),
        ) else {
            return &[];
        };
        &self.held[a as usize..b as usize]
    }

    pub fn info(&self, index: u32) -> TorrentInfo {
        torrent_info(self.seed, index)
    }

    /// Appends torrent `index`'s bencoded info dict.
    pub fn write_info_dict(&self, index: u32, out: &mut Vec<u8>) {
        write_info_dict(self.seed, index, out)
    }
}

fn prefix64(h: &InfoHash) -> u64 {
    u64::from_be_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]])
}

/// Appends the bencoded info dict of torrent `index`, keys sorted.
pub fn write_info_dict(seed: u64, index: u32, out: &mut Vec<u8>) {
    let info = torrent_info(seed, index);
    bencode::dict_begin(out);
    if info.files.is_empty() {
        bencode::key_int(out, KEY_LENGTH, info.length as i64);
    } else {
        bencode::bytes(out, KEY_FILES);
        bencode::list_begin(out);
        for f in &info.files {
            bencode::dict_begin(out);
            bencode::key_int(out, KEY_LENGTH, f.length as i64);
            bencode::bytes(out, KEY_PATH);
            bencode::list_begin(out);
            for part in &f.path {
                bencode::bytes(out, part.as_bytes());
            }
            bencode::end(out);
            bencode::end(out);
        }
        bencode::end(out);
    }
    bencode::key_bytes(out, KEY_NAME, info.name.as_bytes());
    bencode::key_int(out, KEY_PIECE_LENGTH, info.piece_length as i64);
    bencode::bytes(out, KEY_PIECES);
    let pieces_len = info.piece_count() as usize * PIECE_HASH_LEN;
    bencode::bytes_header(out, pieces_len);
    let start = out.len();
    out.resize(start + pieces_len, 0);
    Stream::new(seed, index.into(), derive::SALT_PIECES).fill(&mut out[start..]);
    bencode::end(out);
}

// Word lists for names. Deliberately plain so names look like what DHT
// crawlers index: scene-style releases, albums, software, books.
const WORDS: &[&str] = &[
    "Silent", "River", "Dark", "Empire", "Last", "Summer", "Night", "Storm", "Lost", "City", "Winter", "Garden",
    "Iron", "Crown", "Broken", "Glass", "Hidden", "Signal", "Northern", "Lights", "Red", "Harbor", "Golden", "Hour",
    "Wild", "Coast", "Echo", "Valley", "Paper", "Moon", "Second", "Chance", "Stone", "Bridge", "Fallen", "Sky", "Deep",
    "Water", "Black", "Forest", "Quiet", "Machine",
];
const ARTISTS: &[&str] = &[
    "The Velvet Pines",
    "Mara Quinn",
    "Orbital Drift",
    "Los Caminos",
    "Kestrel",
    "Dr. Hollow",
    "Neon Harbor",
    "Ada Lindqvist",
    "The Paper Kites Club",
    "Solenne",
];
const AUTHORS: &[&str] = &[
    "J. M. Carrow",
    "Elena Sato",
    "R. T. Okafor",
    "Miriam Holt",
    "Pavel Dorn",
    "Iris Vale",
];
const SOFTWARE: &[&str] = &[
    "PhotoForge",
    "CodeNest",
    "SoundDesk",
    "VaultSync",
    "MapMaker",
    "OfficeLite",
    "RenderBox",
];
const RESOLUTIONS: &[&str] = &["720p", "1080p", "2160p"];
const SOURCES: &[&str] = &["BluRay", "WEB-DL", "WEBRip", "HDTV"];
const CODECS: &[&str] = &["x264", "x265", "HEVC", "AV1"];
const GROUPS: &[&str] = &["NTb", "FLUX", "SPARKS", "RARBG", "GalaxyRG", "EDITH"];

const KB: u64 = 1024;
const MB: u64 = 1024 * KB;
const GB: u64 = 1024 * MB;

fn title(s: &mut Stream, words: usize, sep: &str) -> String {
    (0..words).map(|_| *s.pick(WORDS)).collect::<Vec<_>>().join(sep)
}

/// Log-uniform size in `lo..hi`.
fn size_between(s: &mut Stream, lo: u64, hi: u64) -> u64 {
    let (l, h) = ((lo as f64).ln(), (hi as f64).ln());
    (l + (h - l) * s.unit()).exp() as u64
}

/// The layout of torrent `index`: one of movie, TV, music, software, ebook.
pub fn torrent_info(seed: u64, index: u32) -> TorrentInfo {
    let mut s = Stream::new(seed, index.into(), derive::SALT_TORRENT);
    let year = 1970 + s.below(56);
    let (name, files, length) = match s.below(5) {
        0 => {
            let words = 1 + s.below(3) as usize;
            let name = format!(
                "{}.{year}.{}.{}.{}-{}",
                title(&mut s, words, "."),
                s.pick(RESOLUTIONS),
                s.pick(SOURCES),
                s.pick(CODECS),
                s.pick(GROUPS)
            );
            let movie = size_between(&mut s, 700 * MB, 60 * GB);
            if s.below(2) == 0 {
                (format!("{name}.mkv"), Vec::new(), movie)
            } else {
                let files = vec![
                    file(&[&format!("{name}.mkv")], movie),
                    file(&["Subs", "English.srt"], size_between(&mut s, 40 * KB, 200 * KB)),
                    file(&[&format!("{name}.nfo")], size_between(&mut s, KB, 8 * KB)),
                ];
                (name, files, 0)
            }
        }
        1 => {
            let show = title(&mut s, 2, ".");
            let season = 1 + s.below(12);
            let res = s.pick(RESOLUTIONS);
            let episodes = 1 + s.below(24);
            let name = format!("{show}.S{season:02}.{res}.{}-{}", s.pick(SOURCES), s.pick(GROUPS));
            let files = (1..=episodes)
                .map(|e| {
                    let ep = format!("{show}.S{season:02}E{e:02}.{res}.mkv");
                    file(&[&ep], size_between(&mut s, 150 * MB, 4 * GB))
                })
                .collect();
            (name, files, 0)
        }
        2 => {
            let artist = s.pick(ARTISTS);
            let format = if s.below(2) == 0 { "FLAC" } else { "MP3 320" };
            let ext = if format == "FLAC" { "flac" } else { "mp3" };
            let name = format!("{artist} - {} ({year}) [{format}]", title(&mut s, 2, " "));
            let tracks = 1 + s.below(MAX_FILES as u64 - 1) as usize;
            let mut files: Vec<FileEntry> = (1..=tracks)
                .map(|t| {
                    let track = format!("{t:02} - {}.{ext}", title(&mut s, 2, " "));
                    file(&[&track], size_between(&mut s, 3 * MB, 60 * MB))
                })
                .collect();
            files.truncate(MAX_FILES - 1);
            files.push(file(&["cover.jpg"], size_between(&mut s, 50 * KB, 2 * MB)));
            (name, files, 0)
        }
        3 => {
            let app = s.pick(SOFTWARE);
            let name = format!("{app}.v{}.{}.{}.x64", 1 + s.below(20), s.below(10), s.below(100));
            if s.below(2) == 0 {
                (format!("{name}.iso"), Vec::new(), size_between(&mut s, 20 * MB, 8 * GB))
            } else {
                let files = vec![
                    file(&[&format!("{app}-setup.exe")], size_between(&mut s, 5 * MB, 2 * GB)),
                    file(&["Crack", "readme.txt"], size_between(&mut s, KB, 4 * KB)),
                    file(&["License.rtf"], size_between(&mut s, 10 * KB, 60 * KB)),
                ];
                (name, files, 0)
            }
        }
        _ => {
            let name = format!("{} - {} ({year})", s.pick(AUTHORS), title(&mut s, 3, " "));
            let ext = *s.pick(&["epub", "pdf", "mobi", "azw3"]);
            (
                format!("{name}.{ext}"),
                Vec::new(),
                size_between(&mut s, 200 * KB, 80 * MB),
            )
        }
    };
    let mut info = TorrentInfo {
        name,
        piece_length: 0,
        files,
        length,
    };
    let total = info.total_size().max(1);
    // The smallest power of two that keeps the piece count under the cap.
    info.piece_length = total
        .div_ceil(MAX_PIECES)
        .next_power_of_two()
        .clamp(MIN_PIECE_LEN, MAX_PIECE_LEN);
    // Real torrents use fewer, larger pieces than the cap allows for big sizes.
    if s.below(2) == 0 && info.piece_length < MAX_PIECE_LEN {
        info.piece_length *= 4;
    }
    info
}

fn file(path: &[&str], length: u64) -> FileEntry {
    FileEntry {
        path: path.iter().map(|p| (*p).to_owned()).collect(),
        length,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nodes::NodeTraitsConfig;

    #[test]
    fn infohash_is_sha1_of_dict_and_findable() {
        let nodes = Nodes::new(5, 300, NodeTraitsConfig::default());
        let cat = Catalogue::new(
            5,
            CatalogueConfig {
                torrents: 500,
                holders_max: 4,
            },
            &nodes,
            2,
        );
        let mut buf = Vec::new();
        for i in 0..500 {
            buf.clear();
            cat.write_info_dict(i, &mut buf);
            assert!(buf.len() < 10 * 1024 * 1024);
            assert_eq!(&<[u8; 20]>::from(Sha1::digest(&buf)), cat.infohash(i));
            assert_eq!(cat.find(cat.infohash(i)), Some(i));
        }
        assert_eq!(cat.find(&[0x5a; 20]), None);
    }

    #[test]
    fn layouts_vary() {
        let infos: Vec<TorrentInfo> = (0..2000).map(|i| torrent_info(3, i)).collect();
        let single = infos.iter().filter(|t| t.files.is_empty()).count();
        assert!(single > 200 && single < 1800, "{single}");
        let max_files = infos.iter().map(|t| t.files.len()).max().unwrap();
        assert!(max_files > 50 && max_files <= MAX_FILES, "{max_files}");
        let sizes: Vec<u64> = infos.iter().map(|t| t.total_size()).collect();
        assert!(sizes.iter().min().unwrap() < &(10 * MB) && sizes.iter().max().unwrap() > &(20 * GB));
        assert!(infos
            .iter()
            .all(|t| t.piece_count() <= MAX_PIECES && t.piece_length.is_power_of_two()));
        let names: std::collections::HashSet<&str> = infos.iter().map(|t| t.name.as_str()).collect();
        assert!(names.len() > 1900);
    }

    #[test]
    fn holder_relation_is_consistent_both_ways() {
        let nodes = Nodes::new(5, 300, NodeTraitsConfig::default());
        let cat = Catalogue::new(
            5,
            CatalogueConfig {
                torrents: 2000,
                holders_max: 4,
            },
            &nodes,
            1,
        );
        let mut buf = [0u32; 16];
        let mut total = 0;
        for t in 0..2000 {
            let hs = cat.holders(t, &mut buf).to_vec();
            assert!(!hs.is_empty() && hs.len() <= 4);
            for h in hs {
                assert!(cat.held_by(h).binary_search(&t).is_ok());
            }
        }
        for n in 0..300 {
            total += cat.held_by(n).len();
            for &t in cat.held_by(n) {
                assert!(cat.holders(t, &mut buf).contains(&n));
            }
        }
        assert_eq!(total, cat.held.len());
        assert!(cat.held_by(300).is_empty());
    }
}
