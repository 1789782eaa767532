//! The swarm's metadata peers and samples as the load generator sees them:
//! peers serve, reject, stall and corrupt as configured, dark peers time out,
//! and a polite walk discovers the reachable catalogue.

#[path = "../../swarm/tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::net::SocketAddrV4;
use std::time::Duration;

use common::*;
use sha1::{Digest, Sha1};
use trawl_bench::loadgen::{self, FetchError, Walker};
use trawl_engine::codec::krpc::{Kind, Message};
use trawl_swarm::{PeerBehaviour, PeerFaults};

#[test]
fn metadata_peers_serve_and_misbehave_as_configured() {
    let faults = PeerFaults {
        reject: 0.2,
        stall: 0.2,
        corrupt: 0.2,
    };
    let running = start(config(None, faults), 30);
    let swarm = running.swarm.clone();
    let port = running.peer_port();
    let peer_holding = |b: PeerBehaviour| {
        let node = (0..NODES)
            .find(|&i| swarm.peer_behaviour(i) == b && !swarm.catalogue.held_by(i).is_empty())
            .unwrap();
        (
            SocketAddrV4::new(swarm.nodes.addr(node), port),
            *swarm.catalogue.infohash(swarm.catalogue.held_by(node)[0]),
        )
    };
    let timeout = Duration::from_millis(500);

    // Good peers: several torrents, including multi-piece dicts.
    let mut multi_piece = 0;
    let good: Vec<u32> = (0..NODES)
        .filter(|&i| swarm.peer_behaviour(i) == PeerBehaviour::Good)
        .take(40)
        .collect();
    for node in good {
        for &t in swarm.catalogue.held_by(node).iter().take(3) {
            let addr = SocketAddrV4::new(swarm.nodes.addr(node), port);
            let dict = loadgen::fetch_metadata(addr, swarm.catalogue.infohash(t), timeout).unwrap();
            assert_eq!(&<[u8; 20]>::from(Sha1::digest(&dict)), swarm.catalogue.infohash(t));
            let info: BTreeMap<String, serde_bencode::value::Value> = serde_bencode::from_bytes(&dict).unwrap();
            assert!(info.contains_key("name") && info.contains_key("piece length") && info.contains_key("pieces"));
            assert!(info.contains_key("length") ^ info.contains_key("files"));
            multi_piece += usize::from(dict.len() > 16 * 1024);
        }
    }
    assert!(multi_piece > 0, "some dicts span several metadata pieces");

    let (addr, h) = peer_holding(PeerBehaviour::Reject);
    assert!(matches!(
        loadgen::fetch_metadata(addr, &h, timeout),
        Err(FetchError::Rejected)
    ));
    let (addr, h) = peer_holding(PeerBehaviour::Corrupt);
    assert!(matches!(
        loadgen::fetch_metadata(addr, &h, timeout),
        Err(FetchError::HashMismatch)
    ));
    let (addr, h) = peer_holding(PeerBehaviour::Stall);
    assert!(matches!(
        loadgen::fetch_metadata(addr, &h, timeout),
        Err(FetchError::Io(_))
    ));
    // A peer asked for a torrent it does not hold hangs up.
    let (addr, _) = peer_holding(PeerBehaviour::Good);
    assert!(loadgen::fetch_metadata(addr, &[0xee; 20], timeout).is_err());

    running.stop();
    let report = running.wait().unwrap();
    assert!(report.peers.rejects_sent >= 1 && report.peers.pieces_corrupted >= 1);
    assert!(report.peers.requests_stalled >= 1);
    assert_eq!(report.peers.not_held, 1);
}

#[test]
fn a_polite_walk_discovers_the_reachable_catalogue() {
    let mut cfg = config(None, PeerFaults::default());
    cfg.traits.interval_max = 1;
    let running = start(cfg, 30);
    let swarm = running.swarm.clone();
    let bootstrap = SocketAddrV4::new(swarm.nodes.addr(0), running.udp_port());
    let mut walker = Walker::new(3, bootstrap, 512);
    let load = loadgen::drive(&mut walker, Duration::from_secs(5), None, |_, _| {}).unwrap();
    assert!(load.datagrams_out > 1000 && load.datagrams_in > 1000);
    assert_eq!(walker.counters.replies_invalid, 0);

    let reachable: Vec<u32> = (0..TORRENTS).filter(|&t| swarm.reachable(t)).collect();
    let found = walker.found();
    assert!(
        found.iter().all(|h| swarm.catalogue.find(h).is_some()),
        "only catalogue torrents are sampled"
    );
    let found_reachable = reachable
        .iter()
        .filter(|&&t| found.contains(swarm.catalogue.infohash(t)))
        .count();
    assert!(
        found_reachable as f64 >= 0.9 * reachable.len() as f64,
        "{found_reachable} of {}",
        reachable.len()
    );
    assert_eq!(found.len(), found_reachable, "unreachable torrents cannot be sampled");

    running.stop();
    let c = running.wait().unwrap().counters;
    assert_eq!(c.politeness_violations(), 0, "the walker respects every interval");
    assert!(c.answered_sample > 100);
}

#[test]
fn dials_to_never_accepting_peers_time_out_and_others_answer_after_their_rtt() {
    let mut cfg = modelled(ALL_LIBTORRENT);
    cfg.never_accept = 0.5;
    let running = start(cfg, 30);
    let swarm = running.swarm.clone();
    let client = Client::new(running.udp_port());
    let me = client.id;
    let holder = |accepts: bool| {
        (0..NODES)
            .find(|&i| swarm.peer_accepts(i) == accepts && !swarm.catalogue.held_by(i).is_empty())
            .unwrap()
    };
    // The dark peer's address comes from a values list, with the dark port.
    let dark = holder(false);
    let t = swarm.catalogue.held_by(dark)[0];
    let raw = client
        .ask(&swarm, dark, &get_peers(&me, swarm.catalogue.infohash(t), false))
        .unwrap();
    let Kind::Response(r) = Message::decode(&raw).unwrap().kind else {
        panic!()
    };
    let addr = r
        .values
        .clone()
        .find(|a| a.ip() == std::net::IpAddr::V4(swarm.nodes.addr(dark)))
        .unwrap();
    assert_eq!(addr.port(), running.dark_peer_port());
    assert_ne!(addr.port(), running.peer_port());
    let t0 = std::time::Instant::now();
    let err = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(700)).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut, "not refused: {err}");
    assert!(t0.elapsed() >= Duration::from_millis(650));

    // An accepting peer answers, but only after its round trips.
    let good = holder(true);
    let rtt = swarm.peer_rtt(good);
    assert!((50..=300).contains(&(rtt.as_millis() as u64)));
    let t = swarm.catalogue.held_by(good)[0];
    let at = SocketAddrV4::new(swarm.nodes.addr(good), running.peer_port());
    let t0 = std::time::Instant::now();
    let dict = loadgen::fetch_metadata(at, swarm.catalogue.infohash(t), Duration::from_secs(3)).unwrap();
    let pieces = dict.len().div_ceil(16 * 1024) as u32;
    assert_eq!(&<[u8; 20]>::from(Sha1::digest(&dict)), swarm.catalogue.infohash(t));
    assert!(
        t0.elapsed() >= rtt * (2 + pieces),
        "{:?} for {pieces} pieces at {rtt:?}",
        t0.elapsed()
    );
    running.stop();
    let report = running.wait().unwrap();
    assert!(report.peers.replies_delayed >= 2);
}
