//! Counters the node exposes for monitoring. Plain data, updated in place by the node.

/// Datagrams and queries dropped, by reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Drops {
    /// Not a KRPC message, or a message with missing or ill-typed fields.
    pub malformed: u64,
    /// From or about an address the address filter rejects.
    pub filtered_addr: u64,
    /// A reply or error whose transaction id matches nothing in flight.
    pub stray_reply: u64,
    /// A reply whose transaction id is in flight, but from another address.
    pub spoofed_reply: u64,
    /// Queries not answered because the requester IP exceeded its answer rate.
    pub rate_limited: u64,
    /// Queries ignored because we are read-only.
    pub read_only: u64,
    /// Replies dropped because the reply queue was full.
    pub reply_queue_full: u64,
    /// Announces refused: bad token, or the peer store is full.
    pub bad_token: u64,
    pub store_full: u64,
    /// Responders kept out of the routing table for an id that is not BEP 42-secure
    /// for their IP (only with `require_secure_ids`).
    pub insecure_id: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeStats {
    pub routing_nodes: usize,
    pub routing_buckets: usize,
    pub replacement_nodes: usize,
    pub in_flight: usize,
    pub queued_queries: usize,
    pub running_lookups: usize,
    pub queued_lookups: usize,
    pub infohashes_stored: usize,
    pub peers_stored: usize,
    pub datagrams_in: u64,
    pub datagrams_out: u64,
    pub queries_received: u64,
    pub queries_answered: u64,
    pub errors_sent: u64,
    pub replies_received: u64,
    pub errors_received: u64,
    pub timeouts: u64,
    pub retries: u64,
    pub drops: Drops,
}
