//! Torrent metadata: fetching info dicts from peers (BEP 3, 10 and 9), parsing
//! and classifying them.
//!
//! ```text
//! Store::take_due ─> fetcher (glommio TCP, per core) ─ bytes ⇄ exchange (I/O-free, per connection)
//!                      │                                   └─ wire (views and encoders)
//!                      └─ verified info dict ─> info::parse ─> classify ─> Batch.torrents ─> writer
//! ```
//!
//! Owns: [`wire`] (the peer wire format), [`exchange`] (one connection's
//! protocol state machine and its failure kinds), [`info`] (the info dict
//! parser), [`classify`] (content class and bitmagnet type rules) and
//! [`fetcher`] (the runtime that moves bytes and timers and reports results).
//! Must not: do I/O outside [`fetcher`], or trust any length a peer declares
//! beyond the caps in [`wire`].

pub mod classify;
pub mod exchange;
pub mod fetcher;
pub mod info;
pub mod wire;
