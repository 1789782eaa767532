//! The runtimes: the only code in the library that owns threads, sockets and
//! timers, and the only code that names glommio.
//!
//! - [`node`]: one DHT node ([`crate::dht::Node`]) on one UDP socket and one
//!   executor thread, driven from any thread through a [`NodeHandle`].
//! - [`crawl`]: the thread-per-core crawl ([`crate::crawl::Scheduler`] per core,
//!   `SO_REUSEPORT` sockets steered by source IP), feeding one storage writer.
//! - [`fetch`]: the metadata fetcher on each crawl core, moving bytes and timers
//!   for [`crate::metadata::exchange`] over TCP.
//! - [`socket`]: batched UDP (`recvmmsg`/`sendmmsg`) shared by both.
//!
//! Must not make protocol decisions: each runtime knows only the API of the
//! state machine it drives (`handle_datagram`, `poll_transmit`,
//! `next_timeout`, `handle_timeout`, `poll_event` and the request methods).

pub mod crawl;
pub mod fetch;
pub mod node;
pub mod socket;

pub use node::{NodeHandle, Outcome, PeerStream, RuntimeConfig, RuntimeError};
