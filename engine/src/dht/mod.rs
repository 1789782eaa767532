//! The mainline DHT node (BEP 5, 32, 33, 42, 43, 51) as an I/O-free state machine.
//!
//! Owns node ids, the routing table, transactions, lookups, the answering side, the
//! peer store, pacing and the address filter. Must not touch sockets, clocks or
//! threads: time comes in as `now`, datagrams come in as `&[u8]` and go out through
//! caller-owned buffers, randomness comes from a seed.
//!
//! Data flow of one [`Node`]:
//! ```text
//! driver ──handle_datagram──▶ codec::krpc decode ─┬─ query ──▶ answer (rate limit, token,
//!                                                 │            peer store) ─▶ reply queue
//!                                                 └─ reply ──▶ transactions ─▶ lookups,
//!                                                              routing table ─▶ events
//! driver ◀──poll_transmit── replies first, then paced queries (per remote, per infohash)
//! driver ──handle_timeout──▶ retries, failed nodes, bucket refresh, token rotation, expiry
//! ```
//!
//! One node speaks one address family (`NodeConfig::ipv6`); a dual-stack host runs
//! one per socket. [`addr_filter`] is standalone so the crawler can share it.

pub mod addr_filter;
pub mod config;
pub mod distance;
pub mod event;
pub mod id;
pub mod lookup;
pub mod node;
pub mod pacing;
pub mod peer_store;
pub mod routing;
pub mod server;
pub mod stats;
pub mod token;
pub mod transaction;

pub use config::{AnswerLimits, NodeConfig, Pacing, StoreLimits};
pub use event::{Event, LookupId};
pub use node::Node;
pub use stats::{Drops, NodeStats};
