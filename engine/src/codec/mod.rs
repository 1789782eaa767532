//! Wire formats: bencode and KRPC.
//!
//! Owns: every byte-level format trawl speaks on the DHT. [`bencode`] is the
//! zero-copy grammar, [`krpc`] the typed BEP 5/32/33/42/43/51 views and encoders
//! on top of it, [`compact`] the compact node/peer/sample forms, [`scrape`] the
//! BEP 33 bloom filter, and [`wire`] names every constant they use.
//! Must not: do I/O, keep state between messages, or allocate per message.
//! Decoding borrows from the datagram; encoding appends to a caller-owned buffer.

pub mod bencode;
pub mod compact;
pub mod krpc;
pub mod scrape;
pub mod wire;

#[cfg(test)]
mod tests;
