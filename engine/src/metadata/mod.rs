//! Torrent metadata exchange with peers (BEP 3, 10 and 9).
//!
//! Owns: [`wire`], the peer wire format a metadata exchange speaks, as
//! zero-copy views and encoders. The fetcher that drives an exchange from a
//! peer's handshake to a verified info dict builds on it.
//! Must not: do I/O in protocol logic, or trust any length a peer declares
//! beyond the caps in [`wire`].

pub mod wire;
pub mod classify;
pub mod exchange;
pub mod fetcher;
pub mod info;
