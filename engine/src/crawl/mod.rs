//! The crawler's per-core core: who owns which remote node, and the I/O-free
//! state machine that crawls the nodes a core owns.
//!
//! - [`owner`](mod@owner) and its kernel twin in [`crate::runtime::crawl::reuseport`]:
//!   each remote node (by IP) is owned by exactly one core; the kernel steers
//!   its datagrams to that core.
//! - [`scheduler`]: one core's crawl (sampling, walking, scraping, pacing,
//!   politeness), with [`table`], [`transactions`], [`schedule`],
//!   [`unreachable`](mod@unreachable), [`keyspace`] and [`dedup`] as its parts.
//! - The glommio thread-per-core runtime that drives the schedulers over real
//!   sockets and into storage is [`crate::runtime::crawl`] ([`crate::runtime::crawl::Crawler`]).
//! - [`output`]: what the runtime drains from a core (discoveries, handovers,
//!   peers, names, swarm sizes, lookup messages) and the counters behind the
//!   status line.
//! - [`peer_search`]: how a core gets peers the way real nodes give them
//!   (plain `get_peers`, a separate scrape, lookups across cores).
//! - [`answering`]: answering mode (not read-only): the library's answering
//!   side over a table of nodes that answered this core, and the harvest of
//!   incoming `get_peers` and `announce_peer`.
//! - [`external_ip`]: BEP 42's external address, voted from replies, for a
//!   secure node id per core.
//!
//! Must not do I/O or name glommio, nor share state between cores: nodes cross cores only as [`output::Handover`]s, lookups as
//! [`peer_search::LookupMsg`]s.

pub mod answering;
pub mod clock;
pub mod config;
pub mod dedup;
pub mod external_ip;
pub mod keyspace;
pub mod output;
pub mod owner;
pub mod peer_search;
pub mod probes;
pub mod schedule;
pub mod scheduler;
pub mod table;
pub mod transactions;
pub mod unreachable;

pub use config::CrawlConfig;
pub use output::{CrawlStats, Discovery, Handover, NameFound, Output, PeerFound, SwarmSize, Via};
pub use owner::{owner, Family};
pub use peer_search::{LookupMsg, PeerSearchConfig, PeerSearchStats};
pub use scheduler::{Scheduler, MAX_QUEUED_REPLIES};
