//! Loopback interop with the `mainline` crate, a DHT implementation no one here
//! wrote: our lookup finds a peer announced through mainline nodes, and
//! mainline's lookup finds a peer announced through ours. All traffic stays on
//! 127.0.0.0/8, and each test is bounded in time.

#![allow(deprecated)] // mainline's blocking API is the simplest to drive from a test

mod interop_common;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use interop_common::{info_hash, trawl_finds, trawl_network_with_announce, trawl_node};
use mainline::{Dht, Id, Testnet};

fn testnet(ip: Ipv4Addr, size: usize) -> Testnet {
    Testnet::builder(size)
        .bind_address(ip)
        .build()
        .expect("mainline testnet on loopback")
}

fn bootstrap_addrs(testnet: &Testnet) -> Vec<SocketAddr> {
    testnet
        .bootstrap
        .iter()
        .map(|s| s.parse().expect("mainline bootstrap is IP:PORT"))
        .collect()
}

#[test]
fn trawl_lookup_finds_a_peer_announced_through_mainline() {
    let ip = Ipv4Addr::new(127, 61, 0, 1);
    let net = testnet(ip, 6);
    let ih = info_hash(1);
    let announcer = Dht::builder()
        .bootstrap(&net.bootstrap)
        .bind_address(ip)
        .build()
        .unwrap();
    announcer
        .announce_peer(Id::from_bytes(ih).unwrap(), Some(45_001))
        .expect("mainline announce");

    let ours = trawl_node([127, 61, 0, 2], &bootstrap_addrs(&net), false, 11);
    let want = SocketAddr::V4(SocketAddrV4::new(ip, 45_001));
    let seen = trawl_finds(&ours, ih, want, Duration::from_secs(15));
    let stats = ours.stats(Duration::from_secs(1)).ok();
    assert!(
        seen.contains(&want),
        "trawl's lookup saw {seen:?}, not the peer {want} announced via mainline; {stats:?}"
    );
}

#[test]
fn mainline_lookup_finds_a_peer_announced_through_trawl() {
    // A network of answering trawl nodes only, so mainline must use our answers.
    let ih = info_hash(2);
    let (_nodes, hub_addr) = trawl_network_with_announce(62, 21, ih, 45_002);

    let client = Dht::builder()
        .bootstrap(&[hub_addr.to_string()])
        .bind_address(Ipv4Addr::new(127, 62, 0, 10))
        .build()
        .unwrap();
    let want = SocketAddrV4::new(Ipv4Addr::new(127, 62, 0, 9), 45_002);
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut seen = Vec::new();
    while Instant::now() < deadline && !seen.contains(&want) {
        for batch in client.get_peers(Id::from_bytes(ih).unwrap()) {
            seen.extend(batch);
        }
    }
    assert!(
        seen.contains(&want),
        "mainline's lookup saw {seen:?}, not the peer {want} announced via trawl"
    );
}
