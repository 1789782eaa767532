//! trawl-bench: macro benchmarks and the loopback DHT swarm.
//!
//! Every benchmark here sends traffic only to 127.0.0.0/8, is bounded in
//! packets and time, and stops by itself.

// serde_json's json! macro in crawl.rs's summary nests deeper than the default 128.
#![recursion_limit = "256"]

pub mod ceiling;
pub mod crawl;
pub mod crawl_yield;
pub mod decode;
pub mod fetch;
pub mod flood;
pub mod growth;
pub mod harvest;
pub mod loadgen;
pub mod node_answer;
pub mod serve;
pub mod soak;
pub mod storage;
pub use trawl_swarm as swarm;
pub mod sys;
