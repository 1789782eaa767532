//! Owned record types that cross from the engine into storage and back.
//!
//! These are plain data: no encoding lives here (that is `schema.rs`) and no
//! database access (that is `store.rs`). Times are unix seconds as `u32`
//! (enough until 2106), since every record is persisted and must mean the same
//! thing after a restart.

use std::borrow::Cow;
use std::net::SocketAddr;

/// A BitTorrent v1 infohash.
pub type InfoHash = [u8; 20];

/// Seconds since the unix epoch.
pub type UnixSecs = u32;

/// The current wall-clock time as [`UnixSecs`] (saturating, never panics).
pub fn unix_now() -> UnixSecs {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
        .unwrap_or(0)
}

/// Where an infohash was learned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    /// A `sample_infohashes` reply (BEP 51).
    Sample,
    /// Someone sent us `get_peers` for it.
    GetPeers,
    /// Someone sent us `announce_peer` for it.
    Announce,
    /// `trawl import`.
    Import,
}

impl Source {
    pub const ALL: [Source; 4] = [Source::Sample, Source::GetPeers, Source::Announce, Source::Import];

    /// The bit this source occupies in a [`SourceSet`].
    pub const fn bit(self) -> u8 {
        match self {
            Source::Sample => 1,
            Source::GetPeers => 2,
            Source::Announce => 4,
            Source::Import => 8,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Source::Sample => "sample",
            Source::GetPeers => "get_peers",
            Source::Announce => "announce",
            Source::Import => "import",
        }
    }
}

/// The set of sources an infohash was seen from, one bit per [`Source`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SourceSet(pub u8);

impl SourceSet {
    pub fn with(self, s: Source) -> Self {
        SourceSet(self.0 | s.bit())
    }
    pub fn contains(self, s: Source) -> bool {
        self.0 & s.bit() != 0
    }
    pub fn iter(self) -> impl Iterator<Item = Source> {
        Source::ALL.into_iter().filter(move |s| self.contains(*s))
    }
}

/// One sighting of an infohash, as a producer reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Discovery {
    pub info_hash: InfoHash,
    pub source: Source,
    pub at: UnixSecs,
}

/// What the `infohashes` column family remembers about a hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InfoHashRecord {
    pub first_seen: UnixSecs,
    pub last_seen: UnixSecs,
    /// Sightings, saturating at `u32::MAX`.
    pub seen: u32,
    pub sources: SourceSet,
}

/// Peers learned for a hash (from `get_peers` values), fed to the fetch queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeersFound {
    pub info_hash: InfoHash,
    pub peers: Vec<SocketAddr>,
    pub at: UnixSecs,
}

/// A BEP 33 scrape estimate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScrapeEstimate {
    pub seeders: u32,
    pub leechers: u32,
    pub at: UnixSecs,
}

/// A failed metadata fetch; the queue reschedules the hash with backoff.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchFailure {
    pub info_hash: InfoHash,
    pub error: String,
    pub at: UnixSecs,
}

/// One entry of the metadata-fetch work queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StagingEntry {
    pub info_hash: InfoHash,
    /// When the fetcher should next try (a lease pushes it forward while a fetch runs).
    pub due: UnixSecs,
    pub enqueued_at: UnixSecs,
    /// Failed attempts so far.
    pub attempts: u16,
    pub last_error: Option<String>,
    /// Known peers, newest last, capped at [`crate::schema::MAX_STAGED_PEERS`].
    pub peers: Vec<SocketAddr>,
    /// Handed to a fetcher by `Store::take_due` and not yet reported back
    /// (a failure or a release clears it). New peers never bring a leased
    /// entry forward: that would start a second fetch beside the running one.
    pub leased: bool,
    /// New peers arrived while leased: the running fetch never saw them, so
    /// its failure reschedules at once instead of after the back-off.
    pub peers_since_lease: bool,
}

/// A torrent name heard before the metadata (libtorrent's `n` in a
/// `get_peers` reply): untrusted bytes from one node, usually UTF-8. Kept
/// only until the torrent's metadata is stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProvisionalName {
    pub info_hash: InfoHash,
    /// Cut to [`crate::schema::MAX_PROVISIONAL_NAME_LEN`] bytes when stored.
    pub name: Vec<u8>,
    /// When it was heard.
    pub at: UnixSecs,
}

impl ProvisionalName {
    /// The name as text, invalid UTF-8 replaced by U+FFFD.
    pub fn name_readable(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.name)
    }
}

/// A DHT node saved for a warm restart, with the sampling state a restarted
/// crawl must honour (BEP 51's `interval` outlives the process that heard it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DhtNode {
    pub id: [u8; 20],
    pub addr: SocketAddr,
    /// Do not send `sample_infohashes` before this unix time (0: no limit known).
    pub next_sample: UnixSecs,
    /// Whether the node answers `sample_infohashes` (None: not known yet).
    pub bep51: Option<bool>,
}

impl DhtNode {
    /// A node with no sampling state (as saved before that state existed).
    pub fn new(id: [u8; 20], addr: SocketAddr) -> Self {
        DhtNode {
            id,
            addr,
            next_sample: 0,
            bep51: None,
        }
    }
}

/// The coarse class of a torrent's content, decided by the fetcher.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ContentClass {
    Video,
    Audio,
    Ebook,
    Software,
    Archive,
    Image,
    Document,
    Other,
}

impl ContentClass {
    pub const ALL: [ContentClass; 8] = [
        ContentClass::Video,
        ContentClass::Audio,
        ContentClass::Ebook,
        ContentClass::Software,
        ContentClass::Archive,
        ContentClass::Image,
        ContentClass::Document,
        ContentClass::Other,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            ContentClass::Video => "video",
            ContentClass::Audio => "audio",
            ContentClass::Ebook => "ebook",
            ContentClass::Software => "software",
            ContentClass::Archive => "archive",
            ContentClass::Image => "image",
            ContentClass::Document => "document",
            ContentClass::Other => "other",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str().eq_ignore_ascii_case(s))
    }
}

/// bitmagnet's `contentType` vocabulary, when the fetcher can tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BitmagnetType {
    Movie,
    TvShow,
    Music,
    Ebook,
    Comic,
    Audiobook,
    Game,
    Software,
    Xxx,
}

impl BitmagnetType {
    pub const ALL: [BitmagnetType; 9] = [
        BitmagnetType::Movie,
        BitmagnetType::TvShow,
        BitmagnetType::Music,
        BitmagnetType::Ebook,
        BitmagnetType::Comic,
        BitmagnetType::Audiobook,
        BitmagnetType::Game,
        BitmagnetType::Software,
        BitmagnetType::Xxx,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            BitmagnetType::Movie => "movie",
            BitmagnetType::TvShow => "tv_show",
            BitmagnetType::Music => "music",
            BitmagnetType::Ebook => "ebook",
            BitmagnetType::Comic => "comic",
            BitmagnetType::Audiobook => "audiobook",
            BitmagnetType::Game => "game",
            BitmagnetType::Software => "software",
            BitmagnetType::Xxx => "xxx",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// One file of a torrent: path components as raw bytes (BEP 3 does not promise
/// UTF-8) and the length in bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileEntry {
    pub path: Vec<Vec<u8>>,
    pub length: u64,
}

impl FileEntry {
    /// The path joined with `/`, invalid UTF-8 replaced, for display and export.
    pub fn path_readable(&self) -> String {
        let mut out = String::new();
        for (i, c) in self.path.iter().enumerate() {
            if i > 0 {
                out.push('/');
            }
            out.push_str(&String::from_utf8_lossy(c));
        }
        out
    }
}

/// Which metadata versions a torrent's info dict carries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TorrentVersion {
    /// BEP 3 only: known by the SHA-1 of its info dict.
    #[default]
    V1,
    /// BEP 52 only: known by the SHA-256 of its info dict (20 bytes of it on the DHT).
    V2,
    /// Both: one info dict, two hashes.
    Hybrid,
}

impl TorrentVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            TorrentVersion::V1 => "v1",
            TorrentVersion::V2 => "v2",
            TorrentVersion::Hybrid => "hybrid",
        }
    }
}

/// Fetched metadata for one infohash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TorrentRecord {
    /// The key: the SHA-1 of the info dict for v1 and hybrid torrents, the
    /// truncated SHA-256 for v2-only ones.
    pub info_hash: InfoHash,
    pub version: TorrentVersion,
    /// The full SHA-256 of the info dict (BEP 52's `urn:btmh` hash), for v2
    /// and hybrid torrents. A hybrid is also found by its first 20 bytes
    /// ([`crate::Store::torrent`]).
    pub v2_hash: Option<[u8; 32]>,
    /// The info dict's `name`, byte for byte.
    pub name: Vec<u8>,
    /// Empty for a single-file torrent (its one file is `name`, `total_size` long).
    pub files: Vec<FileEntry>,
    pub total_size: u64,
    pub piece_length: u64,
    pub private: bool,
    pub class: ContentClass,
    pub content_type: Option<BitmagnetType>,
    pub fetched_at: UnixSecs,
    /// The latest BEP 33 estimate, joined in on read from its own column family.
    pub scrape: Option<ScrapeEstimate>,
    /// The raw bencoded info dict. Writers set it; reads leave it `None` unless
    /// asked ([`crate::Store::info_dict`]), since it is the bulk of the bytes.
    pub info_dict: Option<Vec<u8>>,
}

impl TorrentRecord {
    /// The name as text, invalid UTF-8 replaced by U+FFFD.
    pub fn name_readable(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.name)
    }

    /// The 20-byte form of [`Self::v2_hash`] that the DHT carries.
    pub fn v2_truncated(&self) -> Option<InfoHash> {
        self.v2_hash.map(|h| {
            let mut t = [0u8; 20];
            t.copy_from_slice(&h[..20]);
            t
        })
    }

    /// Number of files (a single-file torrent has one).
    pub fn file_count(&self) -> usize {
        self.files.len().max(1)
    }
}
