//! Torrent metadata: the I/O-free exchange that gets an info dict from a peer
//! (BEP 3, 10 and 9), and parsing and classifying it.
//!
//! ```text
//! Store::take_due ─> runtime::fetch (glommio TCP, per core) ─ bytes ⇄ exchange (I/O-free, per connection)
//!                      │                                   └─ wire (views and encoders)
//!                      └─ verified info dict ─> info::parse ─> classify ─> Batch.torrents ─> writer
//! ```
//!
//! Owns: [`wire`] (the peer wire format), [`exchange`] (one connection's
//! protocol state machine and its failure kinds), [`info`] (the info dict
//! parser) and [`classify`] (content class and bitmagnet type rules); the
//! runtime that moves bytes and timers is [`crate::runtime::fetch`].
//! Must not: do I/O, name glommio, or trust any length a peer declares beyond
//! the caps in [`wire`].

pub mod classify;
pub mod exchange;
pub mod info;
pub mod wire;
