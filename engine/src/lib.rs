//! trawl-engine: the BitTorrent mainline DHT protocol, node and crawler.
//!
//! # Layers
//! - [`codec`]: zero-copy bencode and typed KRPC views over `&[u8]`, plus an encoder
//!   into caller-owned buffers. No I/O, no allocation per message.
//!
//! Protocol logic never touches a socket: every state machine is driven by
//! `handle_datagram(now, from, bytes)`, `poll_transmit(now, buf)` and
//! `next_timeout()`, and the glommio runtime only moves bytes and timers.

pub mod codec;
pub mod crawl;
pub mod dht;
pub mod metadata;
pub mod ops;
pub mod runtime;
