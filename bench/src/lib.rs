//! trawl-bench: macro benchmarks and the loopback DHT swarm.
//!
//! Every benchmark here sends traffic only to 127.0.0.0/8, is bounded in
//! packets and time, and stops by itself.

pub mod ceiling;
pub mod crawl;
pub mod decode;
pub mod loadgen;
pub mod node_answer;
pub mod storage;
pub mod swarm;
pub mod sys;
