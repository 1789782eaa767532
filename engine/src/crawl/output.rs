//! What a crawl core hands to its runtime: the queues the runtime drains after
//! every batch, and the counters behind the status line.
//! Owns only plain data; the scheduler fills it, the runtime empties it.

use std::net::SocketAddr;

use super::dedup::InfoHash;
use super::peer_search::LookupMsg;
use crate::codec::compact::CompactNode;
use crate::codec::wire::ID_LEN;

/// An infohash new to this core, with the node that gave it and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Discovery {
    pub info_hash: InfoHash,
    pub source: SocketAddr,
    pub source_id: [u8; ID_LEN],
    pub via: Via,
}

/// How an infohash reached this core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// In a `sample_infohashes` reply of ours.
    Sample,
    /// In a `get_peers` query another node sent us (answering mode).
    GetPeers,
    /// In a valid `announce_peer` another node sent us (answering mode).
    Announce,
}

/// A node learned here but owned by another core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Handover {
    pub core: usize,
    pub node: CompactNode,
}

/// A peer of a discovered infohash (from `get_peers` `values`), for metadata fetch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerFound {
    pub info_hash: InfoHash,
    pub peer: SocketAddr,
}

/// A torrent name a node gave in a `get_peers` reply (libtorrent's `n`): a
/// provisional name until the metadata arrives. Untrusted bytes, capped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameFound {
    pub info_hash: InfoHash,
    pub name: Vec<u8>,
}

/// Longest provisional name kept, in bytes.
pub const MAX_NAME_LEN: usize = 1024;

/// BEP 33 swarm size estimates from one node's `BFsd`/`BFpe`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SwarmSize {
    pub info_hash: InfoHash,
    pub from: SocketAddr,
    pub seeders: f64,
    pub leechers: f64,
}

/// The queues the runtime drains (`Vec::drain(..)` keeps their allocations).
/// Discoveries are never dropped: while they pile up, sampling pauses.
#[derive(Debug, Default)]
pub struct Output {
    pub discoveries: Vec<Discovery>,
    pub handovers: Vec<Handover>,
    pub peers: Vec<PeerFound>,
    pub swarms: Vec<SwarmSize>,
    pub names: Vec<NameFound>,
    /// Lookup queries and reports for other cores, with the target core.
    pub lookups: Vec<(usize, LookupMsg)>,
}

/// Monotonic counters; the runtime turns differences into rates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CrawlStats {
    pub datagrams_in: u64,
    pub datagrams_out: u64,
    pub samples_sent: u64,
    pub find_nodes_sent: u64,
    /// `find_node` queries to bootstrap addresses (also in `find_nodes_sent`),
    /// and the replies they got.
    pub bootstrap_sent: u64,
    pub bootstrap_answered: u64,
    /// Replies matched to a query of ours, of any kind: some node answers.
    pub replies_received: u64,
    /// Every `get_peers` sent: plain, scrapes and lookup steps.
    pub get_peers_sent: u64,
    pub scrapes_sent: u64,
    pub lookup_queries_sent: u64,
    /// Usable peers found in `values`.
    pub peers_found: u64,
    /// Peers dropped from `values`: bogon or private addresses, port 0, the
    /// other address family than the query's, or repeats within one reply.
    pub peers_rejected: u64,
    /// Plain `get_peers` to a sampler that gave no usable peer (a lookup follows).
    pub sampler_without_peers: u64,
    pub replies_sent: u64,
    pub new_hashes: u64,
    pub duplicate_hashes: u64,
    pub timeouts: u64,
    pub marked_unreachable: u64,
    /// Datagrams from or nodes at private/loopback/bogon addresses.
    pub filtered: u64,
    pub decode_errors: u64,
    /// Replies and errors matching no query in flight (by id and sender).
    pub unmatched: u64,
    /// Queries received while read-only, beyond the reply queue, or over the
    /// per-IP answer rate.
    pub queries_ignored: u64,
    /// Queries answered, and of those answered with a KRPC error (unknown
    /// method 204, malformed 203, bad token or bad port 203, store full 202).
    pub queries_answered: u64,
    pub query_errors_sent: u64,
    /// Infohashes new to this core from incoming `get_peers` and `announce_peer`
    /// (also counted in `new_hashes`), and announcers handed to the fetcher.
    pub harvested_get_peers: u64,
    pub harvested_announces: u64,
    pub announced_peers: u64,
    /// Pings sent to verify a querier before it enters the node table (BEP 5).
    pub verify_pings_sent: u64,
    /// Node id changes to a BEP 42 secure id once the external address was voted.
    pub id_changes: u64,
    /// Lookups the fetcher asked for (hashes it had no peers for, e.g. imports).
    pub lookups_requested: u64,
    /// Hashes harvested from `get_peers` queries that got no lookup because
    /// the lookup line was half full: the other half is kept for the
    /// fetcher's requests, so a flood of queries cannot crowd imports out.
    pub harvest_lookups_skipped: u64,
    /// Nodes handed to a core given the wrong owner (a runtime bug if non-zero).
    pub misrouted: u64,
    /// Sample queries held back by backpressure (counted once per pause check).
    pub backpressure_pauses: u64,
}
