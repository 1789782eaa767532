//! Shared by the loopback interop tests: trawl nodes on 127.0.0.0/8 through the
//! embeddable runtime, and waiting for peers with a deadline. Every helper binds
//! only loopback addresses and never names a public router.

#![allow(dead_code)]

pub mod lt;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use trawl_engine::dht::NodeConfig;
use trawl_engine::runtime::{NodeHandle, Outcome, PeerStream, RuntimeConfig};

/// A trawl node on `ip` (port chosen by the kernel). `answering` makes it a full
/// node; otherwise it is read-only (BEP 43), as a lookup client would be.
pub fn trawl_node(ip: [u8; 4], bootstrap: &[SocketAddr], answering: bool, seed: u64) -> NodeHandle {
    NodeHandle::start(RuntimeConfig {
        bind: SocketAddr::new(IpAddr::from(ip), 0),
        node: NodeConfig {
            bootstrap: bootstrap.to_vec(),
            read_only: !answering,
            allow_loopback: true,
            query_timeout: Duration::from_millis(500),
            ..NodeConfig::default()
        },
        recv_buffer: 1 << 20,
        cpu: None,
        seed: Some(seed),
    })
    .expect("start a trawl node on loopback")
}

/// Drains `stream` until `want` shows up or `timeout` passes; returns every peer seen.
pub fn peers_until(stream: &PeerStream, want: SocketAddr, timeout: Duration) -> Vec<SocketAddr> {
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    while let Some(peer) = stream.next_until(deadline) {
        seen.push(peer);
        if peer == want {
            break;
        }
    }
    seen
}

/// Repeats trawl lookups of `info_hash` from `node` until `want` is found or
/// `timeout` passes (the first lookup may run before the announce has landed).
pub fn trawl_finds(node: &NodeHandle, info_hash: [u8; 20], want: SocketAddr, timeout: Duration) -> Vec<SocketAddr> {
    let deadline = Instant::now() + timeout;
    let mut all = Vec::new();
    while Instant::now() < deadline {
        let stream = node.lookup(info_hash).expect("node is running");
        let seen = peers_until(&stream, want, deadline.saturating_duration_since(Instant::now()));
        let found = seen.contains(&want);
        all.extend(seen);
        if found {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    all
}

pub fn info_hash(tag: u8) -> [u8; 20] {
    let mut ih = [0u8; 20];
    for (i, b) in ih.iter_mut().enumerate() {
        *b = tag.wrapping_mul(31).wrapping_add(i as u8 * 7);
    }
    ih
}

/// A loopback network of answering trawl nodes only (a hub on `net.0.1` and
/// three more), plus a read-only trawl node on `net.0.9` that announces
/// `info_hash` with TCP `port` through them. Returns every handle (dropping them
/// stops the nodes) and the hub's address; panics if the announce reached no node.
pub fn trawl_network_with_announce(
    net: u8,
    seed: u64,
    info_hash: [u8; 20],
    port: u16,
) -> (Vec<NodeHandle>, SocketAddr) {
    let hub = trawl_node([127, net, 0, 1], &[], true, seed);
    let hub_addr = hub.local_addr();
    let mut nodes = vec![hub];
    nodes.extend((2..5u8).map(|i| trawl_node([127, net, 0, i], &[hub_addr], true, seed + u64::from(i))));
    let announcer = trawl_node([127, net, 0, 9], &[hub_addr], false, seed + 9);
    let outcome = announcer
        .announce(info_hash, Some(port))
        .unwrap()
        .wait_until(Instant::now() + Duration::from_secs(15));
    assert!(
        matches!(outcome, Some(Outcome::AnnounceDone { announced_to }) if announced_to > 0),
        "our announce did not complete: {outcome:?}"
    );
    nodes.push(announcer);
    (nodes, hub_addr)
}
