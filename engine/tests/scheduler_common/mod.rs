//! Shared by the scheduler tests: configurations, a scheduler that knows one
//! node, and real-format replies.

#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use trawl_engine::codec::compact::CompactNode;
use trawl_engine::codec::krpc::{encode_response, Message, ResponseOut};
use trawl_engine::crawl::{CrawlConfig, Scheduler};

pub fn addr(a: u8, b: u8) -> SocketAddr {
    SocketAddr::new(Ipv4Addr::new(127, a, b, 1).into(), 6881)
}

pub fn config() -> CrawlConfig {
    CrawlConfig {
        node_id: [0xEE; 20],
        allow_loopback: true,
        seed: 5,
        ..CrawlConfig::default()
    }
}

/// Walks (find_node) far in the future, so they do not occupy the node.
/// Not read-only: the scheduler answers queries.
pub fn answering() -> CrawlConfig {
    CrawlConfig {
        read_only: false,
        ..config()
    }
}

pub fn no_walks() -> CrawlConfig {
    CrawlConfig {
        walk_interval: Duration::from_secs(1 << 20),
        ..config()
    }
}

/// A scheduler that knows one node, and the sample query it sends it.
pub fn with_one_node(cfg: CrawlConfig) -> (Scheduler, Instant, SocketAddr, Vec<u8>) {
    let now = Instant::now();
    let mut s = Scheduler::new(cfg, now);
    let remote = addr(1, 1);
    assert!(s.add_node(
        now,
        CompactNode {
            id: [1; 20],
            addr: remote
        }
    ));
    let mut buf = Vec::new();
    assert_eq!(s.poll_transmit(now, &mut buf), Some(remote));
    (s, now, remote, buf)
}

pub fn tid_of(query: &[u8]) -> Vec<u8> {
    Message::decode(query).unwrap().transaction_id.to_vec()
}

pub fn sample_reply(tid: &[u8], samples: &[[u8; 20]], nodes: &[CompactNode], interval: i64) -> Vec<u8> {
    let id = [1u8; 20];
    let mut r = ResponseOut::new(&id);
    r.samples = samples;
    r.nodes = nodes;
    r.interval = Some(interval);
    r.num = Some(samples.len() as i64);
    let mut out = Vec::new();
    encode_response(&mut out, tid, &r, None, None);
    out
}
