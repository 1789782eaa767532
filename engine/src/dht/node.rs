//! The DHT node: glues the routing table, transactions, lookups, the answering side
//! and the peer store into one I/O-free state machine. Driven only through
//! `handle_datagram`, `poll_transmit`, `handle_timeout` and the request methods; it
//! never touches a socket or a clock.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use super::config::NodeConfig;
use super::event::{Event, LookupId};
use super::stats::NodeStats;

pub struct Node {
    config: NodeConfig,
    id: [u8; 20],
    next_lookup: u64,
    events: VecDeque<Event>,
    stats: NodeStats,
    #[allow(dead_code)]
    started: Instant,
}

impl Node {
    /// A node with a fresh id (BEP 42 secure when `external_ip` is known). `seed`
    /// drives every random choice, so a simulation is deterministic.
    pub fn new(config: NodeConfig, now: Instant, seed: u64) -> Node {
        let config = config.sanitized();
        let mut id = [0u8; 20];
        id[..8].copy_from_slice(&seed.to_be_bytes());
        Node { config, id, next_lookup: 0, events: VecDeque::new(), stats: NodeStats::default(), started: now }
    }

    pub fn id(&self) -> [u8; 20] {
        self.id
    }

    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    pub fn handle_datagram(&mut self, _now: Instant, _from: SocketAddr, _bytes: &[u8]) {
        self.stats.datagrams_in += 1;
    }

    /// Writes one datagram into `out` (cleared first) and returns its destination.
    pub fn poll_transmit(&mut self, _now: Instant, out: &mut Vec<u8>) -> Option<SocketAddr> {
        out.clear();
        None
    }

    pub fn next_timeout(&self) -> Option<Instant> {
        None
    }

    pub fn handle_timeout(&mut self, _now: Instant) {}

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// A `get_peers` lookup; queued if bootstrap has not finished, never dropped.
    pub fn lookup(&mut self, _now: Instant, _info_hash: [u8; 20]) -> LookupId {
        self.new_lookup_id()
    }

    /// A `get_peers` lookup followed by `announce_peer` to the closest nodes that
    /// gave a token. `port: None` asks for `implied_port` (our UDP source port).
    pub fn announce(&mut self, _now: Instant, _info_hash: [u8; 20], _port: Option<u16>) -> LookupId {
        self.new_lookup_id()
    }

    pub fn find_node(&mut self, _now: Instant, _target: [u8; 20]) -> LookupId {
        self.new_lookup_id()
    }

    pub fn stats(&self) -> NodeStats {
        self.stats
    }

    fn new_lookup_id(&mut self) -> LookupId {
        self.next_lookup += 1;
        LookupId(self.next_lookup)
    }
}
