//! The on-disk schema, all in one file: column families, their tuning, key
//! encoders and value codecs, and the schema version.
//!
//! Owns every byte layout trawl writes. It must not open databases or hold
//! state; `store.rs` does that. Decoders never panic and never allocate more
//! than the input could describe: counts are checked against the bytes left.
//!
//! | family       | key                                   | value                                   |
//! |--------------|---------------------------------------|-----------------------------------------|
//! | `infohashes` | infohash (20)                         | first u32, last u32, seen u32, sources u8 (13, BE) |
//! | `staging`    | infohash (20)                         | [`StagingEntry`] (see `encode_staging`) |
//! | `staging_due`| due u32 BE ‖ infohash (24)            | empty: the queue order, "next due" is one seek |
//! | `torrents`   | infohash (20)                         | [`TorrentRecord`] without the info dict (`encode_torrent`) |
//! | `info_dicts` | infohash (20)                         | the info dict, whole or without its pieces ([`crate::keep`]; zstd with a dictionary) |
//! | `scrapes`    | infohash (20)                         | seeders u32, leechers u32, at u32 (12, BE) |
//! | `nodes`      | family u8 (4 or 6) ‖ node id (20)     | ip (4 or 16) ‖ port u16 BE ‖ next sample u32 BE ‖ BEP 51 u8 (see `encode_node`) |
//! | `provisional_names` | infohash (20)                  | at u32 BE ‖ name bytes (see `encode_provisional_name`) |
//! | `aliases`    | a hybrid's truncated v2 infohash (20) | its v1 infohash (20), the `torrents` key |
//! | `changes`    | sequence u64 BE (8)                   | infohash (20): a torrent stored, or a stored torrent's scrape updated |
//! | `meta`       | ASCII name                            | `schema_version`: u32 BE; `info_dicts_mode`: `full`, `files` or `none` |
//!
//! Keys are fixed-size and big-endian so byte order is the order we scan in.
//!
//! # Changes within schema version 1
//! Additions that old databases and old values survive, so no version bump:
//! - the `nodes` value's sampling-state suffix (see [`encode_node`]);
//! - the `staging` value's state byte (see [`encode_staging`]);
//! - the `provisional_names`, `aliases` and `changes` families ([`ADDED_FAMILIES`]): a
//!   writable open creates them, a read-only open of a database without them
//!   reads them as empty;
//! - the `torrents` value's v2 flags and SHA-256 (see [`encode_torrent`]):
//!   a value without them is a v1 torrent;
//! - the `info_dicts` value's `files` form (see [`crate::keep`]) and the
//!   `meta` record of the mode the latest torrents were stored with: a value that starts
//!   with `d` is a whole dict, as every older value is.
//!
//! A build from before an addition cannot read values written with it (its
//! decoders refuse trailing bytes), so going back to an older build needs a
//! fresh database.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use rocksdb::{BlockBasedIndexType, BlockBasedOptions, Cache, DBCompressionType, Options};

use crate::record::*;
use crate::StorageError;

/// The version this build writes. Bump it with every incompatible change.
pub const SCHEMA_VERSION: u32 = 1;
/// `meta` key holding the schema version.
pub const META_SCHEMA_VERSION: &[u8] = b"schema_version";
/// `meta` key holding the `--info-dicts` mode the latest torrents were stored with.
pub const META_INFO_DICTS_MODE: &[u8] = b"info_dicts_mode";
/// `meta` key: the `--max-disk` budget of the latest crawl, u64 big-endian bytes (absent: none).
pub const META_DISK_BUDGET: &[u8] = b"disk_budget";

pub const CF_INFOHASHES: &str = "infohashes";
pub const CF_STAGING: &str = "staging";
pub const CF_STAGING_DUE: &str = "staging_due";
pub const CF_TORRENTS: &str = "torrents";
pub const CF_INFO_DICTS: &str = "info_dicts";
pub const CF_SCRAPES: &str = "scrapes";
pub const CF_NODES: &str = "nodes";
pub const CF_META: &str = "meta";
pub const CF_PROVISIONAL_NAMES: &str = "provisional_names";
pub const CF_ALIASES: &str = "aliases";
/// The log of torrent changes a search index follows (`trawl serve`).
pub const CF_CHANGES: &str = "changes";

/// Every family this schema version has, in creation order.
pub const COLUMN_FAMILIES: [&str; 11] = [
    CF_INFOHASHES,
    CF_STAGING,
    CF_STAGING_DUE,
    CF_TORRENTS,
    CF_INFO_DICTS,
    CF_SCRAPES,
    CF_NODES,
    CF_META,
    CF_PROVISIONAL_NAMES,
    CF_ALIASES,
    CF_CHANGES,
];

/// Families added after databases of this schema version were first
/// written: an older database may lack them (see the module doc).
pub const ADDED_FAMILIES: [&str; 3] = [CF_PROVISIONAL_NAMES, CF_ALIASES, CF_CHANGES];

pub const INFOHASH_LEN: usize = 20;
pub const INFOHASH_VALUE_LEN: usize = 13;
pub const DUE_KEY_LEN: usize = 4 + INFOHASH_LEN;
pub const SCRAPE_VALUE_LEN: usize = 12;
pub const CHANGE_KEY_LEN: usize = 8;
pub const NODE_KEY_LEN: usize = 1 + 20;
/// Bytes of sampling state after a node's address (see [`encode_node`]).
pub const NODE_STATE_LEN: usize = 5;
const BEP51_UNKNOWN: u8 = 0;
const BEP51_YES: u8 = 1;
const BEP51_NO: u8 = 2;
/// Peers kept per staged hash; more would not make a fetch likelier to succeed.
pub const MAX_STAGED_PEERS: usize = 64;
/// Longest fetch error text kept; the rest is cut at a char boundary.
pub const MAX_ERROR_LEN: usize = 200;
/// Longest provisional name kept, in bytes (the crawl caps at the same length).
pub const MAX_PROVISIONAL_NAME_LEN: usize = 1024;
const STAGING_LEASED: u8 = 1;
const STAGING_PEERS_SINCE_LEASE: u8 = 2;

const FAMILY_V4: u8 = 4;
const FAMILY_V6: u8 = 6;
const TORRENT_CODEC_V1: u8 = 1;
const FLAG_PRIVATE: u8 = 1;
/// The 32-byte SHA-256 of the info dict follows the flags (v2 and hybrid).
const FLAG_V2_HASH: u8 = 2;
/// No v1 metadata: a v2-only torrent. Records written before versions were
/// kept have neither flag, and are v1.
const FLAG_NO_V1: u8 = 4;

/// Size of the zstd dictionary of the `torrents` and `info_dicts` tables.
const ZSTD_DICT_BYTES: i32 = 16 * 1024;

/// RocksDB options for one column family. Tuned per family for size on disk:
/// the bare index must stay under 48 bytes per hash, torrents under 2 KB.
/// Every family reads through `cache`, the database's one block cache, so block
/// memory has one bound instead of a default 32 MB cache per family.
pub(crate) fn cf_options(name: &str, cache: &Cache) -> Options {
    let mut o = Options::default();
    let mut t = BlockBasedOptions::default();
    t.set_format_version(6);
    t.set_block_cache(cache);
    // Index and filter blocks are cached too, instead of held by each open
    // table for its life: otherwise they grow with the database (about 10 bits
    // per key) and RocksDB's memory has no bound. Partitioned, so a lookup
    // loads the pieces it needs, not a whole table's filter; the small top
    // level and level 0's blocks stay pinned, since every lookup reads them.
    t.set_cache_index_and_filter_blocks(true);
    t.set_cache_index_and_filter_blocks_with_high_priority(true);
    t.set_pin_l0_filter_and_index_blocks_in_cache(true);
    t.set_index_type(BlockBasedIndexType::TwoLevelIndexSearch);
    t.set_partition_filters(true);
    t.set_pin_top_level_index_and_filter(true);
    match name {
        CF_INFOHASHES => {
            // Random keys share no prefix, so restarts buy nothing; big blocks
            // shrink the index. The in-memory bloom in the writer answers "new?"
            // first, so the bottom level needs no filter (optimize_filters_for_hits).
            t.set_block_size(16 * 1024);
            t.set_block_restart_interval(64);
            t.set_ribbon_filter(10.0);
            o.set_optimize_filters_for_hits(true);
            o.set_compression_per_level(&[
                DBCompressionType::None,
                DBCompressionType::None,
                DBCompressionType::Zstd,
            ]);
            o.set_bottommost_compression_type(DBCompressionType::Zstd);
            o.set_write_buffer_size(64 << 20);
        }
        CF_TORRENTS | CF_INFO_DICTS => {
            // Names and paths compress well across neighbouring torrents, so
            // larger blocks give zstd more context.
            t.set_block_size(32 * 1024);
            t.set_bloom_filter(10.0, false);
            o.set_compression_type(DBCompressionType::Zstd);
            o.set_bottommost_compression_type(DBCompressionType::Zstd);
            // A zstd dictionary trained per bottom-level table file on a
            // sample of its values: names, paths and dict keys repeat across
            // torrents but not within one block's worth of them. Only at the
            // bottom, where nearly all bytes end up: training buffers a
            // table's blocks, which would slow flushes and hold memtable
            // memory past the budget.
            o.set_bottommost_compression_options(-14, 3, 0, ZSTD_DICT_BYTES, true);
            o.set_bottommost_zstd_max_train_bytes(ZSTD_DICT_BYTES * 100, true);
            o.set_write_buffer_size(32 << 20);
        }
        _ => {
            t.set_bloom_filter(10.0, false);
            o.set_write_buffer_size(8 << 20);
        }
    }
    if name == CF_TORRENTS || name == CF_STAGING || name == CF_PROVISIONAL_NAMES {
        // The writer asks these for every hash whose peers (or name) arrive,
        // nearly always about a key that is not there: a memtable bloom answers
        // that without a skiplist descent (5% of the writer's time in a crawl
        // profile, before names existed).
        o.set_memtable_prefix_bloom_ratio(0.05);
        o.set_memtable_whole_key_filtering(true);
    }
    o.set_level_compaction_dynamic_level_bytes(true);
    o.set_block_based_table_factory(&t);
    o
}

// ---- keys ---------------------------------------------------------------

/// `staging_due` key: due time then hash, so iteration order is due order.
pub fn due_key(due: UnixSecs, h: &InfoHash) -> [u8; DUE_KEY_LEN] {
    let mut k = [0u8; DUE_KEY_LEN];
    k[..4].copy_from_slice(&due.to_be_bytes());
    k[4..].copy_from_slice(h);
    k
}

pub fn decode_due_key(k: &[u8]) -> Option<(UnixSecs, InfoHash)> {
    let k: &[u8; DUE_KEY_LEN] = k.try_into().ok()?;
    let due = u32::from_be_bytes([k[0], k[1], k[2], k[3]]);
    let mut h = [0u8; INFOHASH_LEN];
    h.copy_from_slice(&k[4..]);
    Some((due, h))
}

/// `changes` key: the sequence number, so iteration order is the order of writing.
pub fn change_key(seq: u64) -> [u8; CHANGE_KEY_LEN] {
    seq.to_be_bytes()
}

pub fn decode_change_key(k: &[u8]) -> Option<u64> {
    k.try_into().ok().map(u64::from_be_bytes)
}

pub fn infohash_from_key(k: &[u8]) -> Option<InfoHash> {
    k.try_into().ok()
}

/// `nodes` key: address family, then id, so one id may appear once per family.
pub fn node_key(n: &DhtNode) -> [u8; NODE_KEY_LEN] {
    let mut k = [0u8; NODE_KEY_LEN];
    k[0] = if n.addr.is_ipv4() { FAMILY_V4 } else { FAMILY_V6 };
    k[1..].copy_from_slice(&n.id);
    k
}

// ---- fixed-size values --------------------------------------------------

pub fn encode_infohash(r: &InfoHashRecord) -> [u8; INFOHASH_VALUE_LEN] {
    let mut v = [0u8; INFOHASH_VALUE_LEN];
    v[0..4].copy_from_slice(&r.first_seen.to_be_bytes());
    v[4..8].copy_from_slice(&r.last_seen.to_be_bytes());
    v[8..12].copy_from_slice(&r.seen.to_be_bytes());
    v[12] = r.sources.0;
    v
}

pub fn decode_infohash(v: &[u8]) -> Result<InfoHashRecord, StorageError> {
    let v: &[u8; INFOHASH_VALUE_LEN] = v
        .try_into()
        .map_err(|_| StorageError::corrupt("infohash record", format_args!("{} bytes", v.len())))?;
    Ok(InfoHashRecord {
        first_seen: be32(&v[0..4]),
        last_seen: be32(&v[4..8]),
        seen: be32(&v[8..12]),
        sources: SourceSet(v[12]),
    })
}

pub fn encode_scrape(s: &ScrapeEstimate) -> [u8; SCRAPE_VALUE_LEN] {
    let mut v = [0u8; SCRAPE_VALUE_LEN];
    v[0..4].copy_from_slice(&s.seeders.to_be_bytes());
    v[4..8].copy_from_slice(&s.leechers.to_be_bytes());
    v[8..12].copy_from_slice(&s.at.to_be_bytes());
    v
}

pub fn decode_scrape(v: &[u8]) -> Result<ScrapeEstimate, StorageError> {
    if v.len() != SCRAPE_VALUE_LEN {
        return Err(StorageError::corrupt(
            "scrape record",
            format_args!("{} bytes", v.len()),
        ));
    }
    Ok(ScrapeEstimate {
        seeders: be32(&v[0..4]),
        leechers: be32(&v[4..8]),
        at: be32(&v[8..12]),
    })
}

pub fn encode_node_addr(addr: &SocketAddr, out: &mut Vec<u8>) {
    match addr.ip() {
        IpAddr::V4(ip) => out.extend_from_slice(&ip.octets()),
        IpAddr::V6(ip) => out.extend_from_slice(&ip.octets()),
    }
    out.extend_from_slice(&addr.port().to_be_bytes());
}

/// `nodes` value: the address, then the sampling state ([`NODE_STATE_LEN`]
/// bytes: next sample unix time u32 BE, BEP 51 support u8 0/1/2 = unknown/yes/no).
///
/// Layout note: the state is a value suffix, so the key (and the scan order,
/// family then id) is unchanged; values written before it existed (address
/// only) still decode, as "no limit known, support unknown". A node's own ip
/// length (from the key's family) tells the two apart, so no version byte.
pub fn encode_node(n: &DhtNode, out: &mut Vec<u8>) {
    encode_node_addr(&n.addr, out);
    out.extend_from_slice(&n.next_sample.to_be_bytes());
    out.push(match n.bep51 {
        None => BEP51_UNKNOWN,
        Some(true) => BEP51_YES,
        Some(false) => BEP51_NO,
    });
}

pub fn decode_node(k: &[u8], v: &[u8]) -> Result<DhtNode, StorageError> {
    let bad = || {
        StorageError::corrupt(
            "node record",
            format_args!("key {} bytes, value {} bytes", k.len(), v.len()),
        )
    };
    if k.len() != NODE_KEY_LEN {
        return Err(bad());
    }
    let mut id = [0u8; 20];
    id.copy_from_slice(&k[1..]);
    let ip_len = match k[0] {
        FAMILY_V4 => 4,
        FAMILY_V6 => 16,
        _ => return Err(bad()),
    };
    let with_state = match v.len().checked_sub(ip_len + 2) {
        Some(0) => false,
        Some(NODE_STATE_LEN) => true,
        _ => return Err(bad()),
    };
    let mut r = Reader::new(v, "node record");
    let mut node = DhtNode::new(id, r.addr(ip_len)?);
    if with_state {
        node.next_sample = r.u32()?;
        node.bep51 = match r.u8()? {
            BEP51_UNKNOWN => None,
            BEP51_YES => Some(true),
            BEP51_NO => Some(false),
            _ => return Err(bad()),
        };
    }
    r.finish()?;
    Ok(node)
}

// ---- staging entries ----------------------------------------------------

/// Layout: due u32, enqueued u32, attempts u16, error (varint len + UTF-8),
/// peer count varint, then per peer: family u8, ip, port u16; then a state
/// byte (bit 0 leased, bit 1 peers since the lease). The key holds the hash.
///
/// The state byte is a later suffix: a value without it (written before it
/// existed) decodes as neither leased nor with peers since a lease.
pub fn encode_staging(e: &StagingEntry, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&e.due.to_be_bytes());
    out.extend_from_slice(&e.enqueued_at.to_be_bytes());
    out.extend_from_slice(&e.attempts.to_be_bytes());
    let err = e.last_error.as_deref().unwrap_or("");
    put_bytes(out, truncate_str(err, MAX_ERROR_LEN).as_bytes());
    let peers = &e.peers[e.peers.len().saturating_sub(MAX_STAGED_PEERS)..];
    put_varint(out, peers.len() as u64);
    for p in peers {
        out.push(if p.is_ipv4() { FAMILY_V4 } else { FAMILY_V6 });
        encode_node_addr(p, out);
    }
    let mut state = 0;
    if e.leased {
        state |= STAGING_LEASED;
    }
    if e.peers_since_lease {
        state |= STAGING_PEERS_SINCE_LEASE;
    }
    out.push(state);
}

pub fn decode_staging(info_hash: InfoHash, v: &[u8]) -> Result<StagingEntry, StorageError> {
    let mut r = Reader::new(v, "staging entry");
    let due = r.u32()?;
    let enqueued_at = r.u32()?;
    let attempts = r.u16()?;
    let err = r.bytes()?;
    let last_error = if err.is_empty() {
        None
    } else {
        Some(String::from_utf8_lossy(err).into_owned())
    };
    // A peer takes at least 7 bytes; bounding by what is left keeps a bad count from allocating.
    let n = r.count(7)?;
    let mut peers = Vec::with_capacity(n);
    for _ in 0..n {
        let ip_len = match r.u8()? {
            FAMILY_V4 => 4,
            FAMILY_V6 => 16,
            f => {
                return Err(StorageError::corrupt(
                    "staging entry",
                    format_args!("address family {f}"),
                ))
            }
        };
        peers.push(r.addr(ip_len)?);
    }
    let state = if r.at_end() { 0 } else { r.u8()? };
    if state & !(STAGING_LEASED | STAGING_PEERS_SINCE_LEASE) != 0 {
        return Err(StorageError::corrupt("staging entry", format_args!("state {state}")));
    }
    r.finish()?;
    Ok(StagingEntry {
        info_hash,
        due,
        enqueued_at,
        attempts,
        last_error,
        peers,
        leased: state & STAGING_LEASED != 0,
        peers_since_lease: state & STAGING_PEERS_SINCE_LEASE != 0,
    })
}

// ---- provisional names --------------------------------------------------

/// `provisional_names` value: when it was heard (u32 BE), then the name's
/// bytes to the end of the value, cut to [`MAX_PROVISIONAL_NAME_LEN`]. The
/// key holds the hash.
pub fn encode_provisional_name(n: &ProvisionalName, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&n.at.to_be_bytes());
    out.extend_from_slice(&n.name[..n.name.len().min(MAX_PROVISIONAL_NAME_LEN)]);
}

pub fn decode_provisional_name(info_hash: InfoHash, v: &[u8]) -> Result<ProvisionalName, StorageError> {
    if v.len() < 4 || v.len() > 4 + MAX_PROVISIONAL_NAME_LEN {
        return Err(StorageError::corrupt(
            "provisional name",
            format_args!("{} bytes", v.len()),
        ));
    }
    Ok(ProvisionalName {
        info_hash,
        name: v[4..].to_vec(),
        at: be32(&v[..4]),
    })
}

// ---- torrents -----------------------------------------------------------

/// Layout (all after a codec byte): fetched_at u32, class u8, content type u8
/// (0 = none), flags u8, total size, piece length, name (varint len + bytes),
/// file count; then per file: components shared with the previous file's
/// directory, new component count, each component (len + bytes), length.
/// Integers other than fixed ones are LEB128 varints. Sharing directory
/// prefixes and letting zstd see neighbouring records keeps a 200-file
/// torrent well under 2 KB. The scrape and the info dict live in their own families.
pub fn encode_torrent(t: &TorrentRecord, out: &mut Vec<u8>) {
    out.clear();
    out.push(TORRENT_CODEC_V1);
    out.extend_from_slice(&t.fetched_at.to_be_bytes());
    out.push(class_code(t.class));
    out.push(t.content_type.map_or(0, |c| content_type_code(c)));
    let mut flags = if t.private { FLAG_PRIVATE } else { 0 };
    if t.v2_hash.is_some() {
        flags |= FLAG_V2_HASH;
    }
    if t.version == TorrentVersion::V2 {
        flags |= FLAG_NO_V1;
    }
    out.push(flags);
    if let Some(h) = &t.v2_hash {
        out.extend_from_slice(h);
    }
    put_varint(out, t.total_size);
    put_varint(out, t.piece_length);
    put_bytes(out, &t.name);
    put_varint(out, t.files.len() as u64);
    let mut prev_dir: &[Vec<u8>] = &[];
    for f in &t.files {
        let dir = f.path.split_last().map_or(&[][..], |(_, d)| d);
        let shared = prev_dir.iter().zip(dir).take_while(|(a, b)| a == b).count();
        put_varint(out, shared as u64);
        let fresh = &f.path[shared..];
        put_varint(out, fresh.len() as u64);
        for c in fresh {
            put_bytes(out, c);
        }
        put_varint(out, f.length);
        prev_dir = dir;
    }
}

pub fn decode_torrent(info_hash: InfoHash, v: &[u8]) -> Result<TorrentRecord, StorageError> {
    let mut r = Reader::new(v, "torrent record");
    let codec = r.u8()?;
    if codec != TORRENT_CODEC_V1 {
        return Err(StorageError::corrupt("torrent record", format_args!("codec {codec}")));
    }
    let fetched_at = r.u32()?;
    let class = class_from_code(r.u8()?).ok_or_else(|| StorageError::corrupt("torrent record", "class"))?;
    let ct = r.u8()?;
    let content_type = if ct == 0 {
        None
    } else {
        Some(content_type_from_code(ct).ok_or_else(|| StorageError::corrupt("torrent record", "content type"))?)
    };
    let flags = r.u8()?;
    let v2_hash = if flags & FLAG_V2_HASH != 0 {
        let mut h = [0u8; 32];
        for b in &mut h {
            *b = r.u8()?;
        }
        Some(h)
    } else {
        None
    };
    let version = match (flags & FLAG_NO_V1 != 0, v2_hash.is_some()) {
        (false, false) => TorrentVersion::V1,
        (false, true) => TorrentVersion::Hybrid,
        (true, true) => TorrentVersion::V2,
        (true, false) => return Err(StorageError::corrupt("torrent record", "v2-only without a v2 hash")),
    };
    let total_size = r.varint()?;
    let piece_length = r.varint()?;
    let name = r.bytes()?.to_vec();
    // A file takes at least 3 bytes (shared, fresh count, length).
    let n = r.count(3)?;
    let mut files: Vec<FileEntry> = Vec::with_capacity(n);
    for _ in 0..n {
        let shared = r.varint()? as usize;
        let prev_dir = files
            .last()
            .map_or(&[][..], |f| f.path.split_last().map_or(&[][..], |(_, d)| d));
        if shared > prev_dir.len() {
            return Err(StorageError::corrupt("torrent record", "shared path prefix too long"));
        }
        let fresh = r.count(1)?;
        let mut path = Vec::with_capacity(shared + fresh);
        path.extend_from_slice(&prev_dir[..shared]);
        for _ in 0..fresh {
            path.push(r.bytes()?.to_vec());
        }
        let length = r.varint()?;
        files.push(FileEntry { path, length });
    }
    r.finish()?;
    Ok(TorrentRecord {
        info_hash,
        version,
        v2_hash,
        name,
        files,
        total_size,
        piece_length,
        private: flags & FLAG_PRIVATE != 0,
        class,
        content_type,
        fetched_at,
        scrape: None,
        info_dict: None,
    })
}

/// Reads only the class of an encoded torrent (stats and `--class` filters).
pub fn torrent_class(v: &[u8]) -> Option<ContentClass> {
    if v.first() != Some(&TORRENT_CODEC_V1) {
        return None;
    }
    class_from_code(*v.get(5)?)
}

fn class_code(c: ContentClass) -> u8 {
    c as u8
}

fn class_from_code(b: u8) -> Option<ContentClass> {
    ContentClass::ALL.get(b as usize).copied()
}

fn content_type_code(c: BitmagnetType) -> u8 {
    c as u8 + 1
}

fn content_type_from_code(b: u8) -> Option<BitmagnetType> {
    BitmagnetType::ALL.get((b as usize).checked_sub(1)?).copied()
}

// ---- primitives ---------------------------------------------------------

fn be32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(b);
    u32::from_be_bytes(a)
}

pub(crate) fn truncate_str(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// A bounds-checked cursor over a stored value; every read fails cleanly.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], what: &'static str) -> Self {
        Reader { buf, pos: 0, what }
    }

    fn short(&self) -> StorageError {
        StorageError::corrupt(self.what, format_args!("truncated at byte {}", self.pos))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], StorageError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| self.short())?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, StorageError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, StorageError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, StorageError> {
        Ok(be32(self.take(4)?))
    }

    fn varint(&mut self) -> Result<u64, StorageError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(StorageError::corrupt(
            self.what,
            format_args!("varint too long at byte {}", self.pos),
        ))
    }

    /// A declared count, refused if `min_each` bytes per item cannot fit in what is left.
    fn count(&mut self, min_each: usize) -> Result<usize, StorageError> {
        let n = self.varint()?;
        let left = (self.buf.len() - self.pos) as u64;
        if n.saturating_mul(min_each as u64) > left {
            return Err(StorageError::corrupt(
                self.what,
                format_args!("count {n} exceeds the value"),
            ));
        }
        Ok(n as usize)
    }

    fn bytes(&mut self) -> Result<&'a [u8], StorageError> {
        let n = self.varint()?;
        let n = usize::try_from(n).map_err(|_| self.short())?;
        self.take(n)
    }

    fn addr(&mut self, ip_len: usize) -> Result<SocketAddr, StorageError> {
        let ip = self.take(ip_len)?;
        let ip = match ip_len {
            4 => IpAddr::V4(Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3])),
            _ => {
                let mut a = [0u8; 16];
                a.copy_from_slice(ip);
                IpAddr::V6(Ipv6Addr::from(a))
            }
        };
        Ok(SocketAddr::new(ip, self.u16()?))
    }

    fn at_end(&self) -> bool {
        self.pos == self.buf.len()
    }

    fn finish(&self) -> Result<(), StorageError> {
        if self.pos == self.buf.len() {
            Ok(())
        } else {
            Err(StorageError::corrupt(
                self.what,
                format_args!("{} trailing bytes", self.buf.len() - self.pos),
            ))
        }
    }
}

#[cfg(test)]
mod tests;
