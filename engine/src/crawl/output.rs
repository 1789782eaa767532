//! What a crawl core hands to its runtime: the queues the runtime drains after
//! every batch, and the counters behind the status line.
//! Owns only plain data; the scheduler fills it, the runtime empties it.

use std::net::SocketAddr;

use super::dedup::InfoHash;
use crate::codec::compact::CompactNode;
use crate::codec::wire::ID_LEN;

/// An infohash new to this core, with the node that sampled it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Discovery {
    pub info_hash: InfoHash,
    pub source: SocketAddr,
    pub source_id: [u8; ID_LEN],
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
}

/// Monotonic counters; the runtime turns differences into rates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CrawlStats {
    pub datagrams_in: u64,
    pub datagrams_out: u64,
    pub samples_sent: u64,
    pub find_nodes_sent: u64,
    pub get_peers_sent: u64,
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
    /// Nodes handed to a core given the wrong owner (a runtime bug if non-zero).
    pub misrouted: u64,
    /// Sample queries held back by backpressure (counted once per pause check).
    pub backpressure_pauses: u64,
}
