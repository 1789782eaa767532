//! The thread-per-core crawl runtime around the I/O-free [`Scheduler`](crate::crawl::Scheduler):
//! one glommio executor per core, each with its own node id, its own
//! `SO_REUSEPORT` socket per address family and its own share of the remote
//! nodes (by [`owner`](mod@crate::crawl::owner)), feeding one storage writer.
//!
//! Owns threads, sockets, timers and the channels between cores and into
//! storage. Must not make protocol decisions: everything it knows about the
//! crawl is the scheduler's API.
//!
//! ```text
//!             kernel: reuseport group per family + cBPF owner program (source IP → core)
//!                 │                                   │
//!   core 0 ── UDP v4/v6 ── Scheduler ──┐     core N ── UDP v4/v6 ── Scheduler ──┐
//!      ▲  handovers (bounded channels, try_send) ▼  ...                         │
//!      └──────────────── Outbox ◀── Output.handovers                            │
//!   Output.{discoveries,peers,swarms} ─▶ Sink ─ Batch (try_send; full ⇒ sampling pauses) ─▶ writer thread ─▶ RocksDB
//!   core snapshot (every 250 ms) ─▶ Published ◀── Crawler::snapshot (any thread)
//!   good nodes ─▶ Published ─▶ node saver thread (every 60 s, at shutdown) ─▶ Batch.nodes
//!   start: Store::nodes() ─▶ owner core's add_node (warm restart, new node ids)
//! ```

mod core;
mod crawler;
mod error;
mod handover;
mod options;
pub mod reuseport;
mod sink;
mod sockets;

pub(crate) use crawler::Control;
pub use crawler::Crawler;
pub use error::CrawlError;
pub use options::{CrawlerOptions, DEFAULT_RECV_BUFFER};
