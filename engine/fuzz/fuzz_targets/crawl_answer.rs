//! Fuzzes an answering crawl core (`trawl crawl --no-read-only`) with hostile
//! datagrams: each input is split into datagrams from a few source addresses,
//! and every reply the core sends is checked against its contract:
//! - no panic on any input;
//! - a reply goes only to the sender of a query, and is at most
//!   `MAX_AMPLIFICATION` times the size of the datagram it answers;
//! - every reply decodes as KRPC (a response or an error) with the query's
//!   transaction id;
//! - what the harvest hands on stays bounded by what arrived.
#![no_main]

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use trawl_engine::codec::krpc::{Kind, Message};
use trawl_engine::crawl::answering::MAX_AMPLIFICATION;
use trawl_engine::crawl::{CrawlConfig, Scheduler};

fuzz_target!(|data: &[u8]| {
    let now = Instant::now();
    let mut s = Scheduler::new(
        CrawlConfig {
            node_id: [0xEE; 20],
            read_only: false,
            allow_loopback: true,
            answer_burst: 1_000.0,
            seed: 1,
            ..CrawlConfig::default()
        },
        now,
    );
    let mut buf = Vec::new();
    let mut queries = 0usize;
    // Each datagram: one byte picking its source, two bytes of length (big
    // endian), then the datagram.
    let mut rest = data;
    let mut i = 0u64;
    while let [src, hi, lo, tail @ ..] = rest {
        let len = (usize::from(*hi) << 8 | usize::from(*lo)).min(tail.len());
        let (bytes, next) = tail.split_at(len);
        rest = next;
        i += 1;
        let from = SocketAddr::new(Ipv4Addr::new(127, 1, *src % 4, 1).into(), 6881);
        let at = now + Duration::from_millis(i);
        s.handle_datagram(at, from, bytes);
        let tid = Message::decode(bytes).ok().map(|m| m.transaction_id.to_vec());
        let is_query = matches!(Message::decode(bytes).map(|m| m.kind), Ok(Kind::Query(_)));
        queries += 1;
        while let Some(to) = s.poll_transmit(at, &mut buf) {
            let reply = Message::decode(&buf).expect("every datagram sent is KRPC");
            if let Kind::Query(_) = reply.kind {
                continue; // a verifying ping of ours
            }
            assert_eq!(to, from, "a reply to someone who did not ask");
            assert!(
                buf.len() <= MAX_AMPLIFICATION * bytes.len(),
                "{} bytes answer {} bytes",
                buf.len(),
                bytes.len()
            );
            if is_query {
                assert_eq!(Some(reply.transaction_id.to_vec()), tid);
            }
        }
    }
    let out = s.output();
    assert!(out.discoveries.len() <= queries && out.peers.len() <= queries);
});
