//! The crawl runtime against DHT nodes it did not simulate: libtorrent nodes
//! (python3-libtorrent) on 127.0.0.0/8, and answering trawl nodes on `::1`
//! crawled over IPv6. In both, hashes are announced into the nodes first and
//! the crawl must store them from `sample_infohashes`.

mod crawl_common;
mod interop_common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use crawl_common::{hex, loopback_options};
use interop_common::lt::LtNode;
use interop_common::{info_hash, trawl_finds, trawl_node};
use trawl_engine::crawl::CrawlConfig;
use trawl_engine::dht::NodeConfig;
use trawl_engine::runtime::crawl::{Crawler, CrawlerOptions};
use trawl_engine::runtime::{NodeHandle, Outcome, RuntimeConfig};

fn crawl(db: &Path, bootstrap: Vec<SocketAddr>, crawl: CrawlConfig) -> Crawler {
    Crawler::start(CrawlerOptions {
        crawl,
        ..loopback_options(db, bootstrap)
    })
    .unwrap()
}

/// Waits until every hash in `want` is stored (acknowledged by the writer), or
/// `timeout`; returns the ones still missing.
fn wait_stored(crawler: &Crawler, want: &[[u8; 20]], timeout: Duration) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    loop {
        let missing: Vec<String> = want
            .iter()
            .filter(|h| {
                crawler
                    .store()
                    .expect("a crawl with a database")
                    .infohash(h)
                    .ok()
                    .flatten()
                    .is_none()
            })
            .map(|h| hex(h))
            .collect();
        if missing.is_empty() || Instant::now() >= deadline {
            return missing;
        }
        crawler.wait_until(Instant::now() + Duration::from_millis(200));
    }
}

#[test]
fn crawl_discovers_the_infohashes_libtorrent_nodes_hold() {
    let hashes: Vec<[u8; 20]> = (40..43).map(info_hash).collect();
    let hub = LtNode::start([127, 73, 0, 1], &[]);
    let mut extra = vec!["--bootstrap".to_string(), hub.addr.to_string()];
    for h in &hashes {
        extra.extend(["--announce".to_string(), hex(h)]);
    }
    let announcer = LtNode::start([127, 73, 0, 2], &extra);
    let other = LtNode::start([127, 73, 0, 3], &["--bootstrap".into(), hub.addr.to_string()]);
    // libtorrent answers sample_infohashes with a 6-hour interval, so the
    // crawl must not look before the announces have landed: a lookup proves it.
    // The probe starts from every node, not the hub alone: once in a full-suite
    // run a probe that only had the hub saw nothing within 20 s.
    let everyone = [hub.addr, announcer.addr, other.addr];
    let probe = trawl_node([127, 73, 0, 9], &everyone, false, 73);
    for h in &hashes {
        let seen = trawl_finds(&probe, *h, announcer.addr, Duration::from_secs(30));
        assert!(seen.contains(&announcer.addr), "announce of {} never landed", hex(h));
    }
    drop(probe);

    let dir = tempfile::tempdir().unwrap();
    let crawler = crawl(&dir.path().join("db"), vec![hub.addr], CrawlConfig::default());
    let missing = wait_stored(&crawler, &hashes, Duration::from_secs(20));
    let s = crawler.shutdown();
    assert!(missing.is_empty(), "not discovered: {missing:?}; figures {s:?}");
    assert!(s.total(|c| c.nodes_bep51_yes) >= 1, "libtorrent speaks BEP 51: {s:?}");
}

/// A trawl DHT node on `[::1]` (answering, so it stores announces).
fn v6_node(bootstrap: &[SocketAddr], answering: bool, seed: u64) -> NodeHandle {
    let mut node = NodeConfig {
        bootstrap: bootstrap.to_vec(),
        read_only: !answering,
        allow_loopback: true,
        query_timeout: Duration::from_millis(500),
        ipv6: true,
        ..NodeConfig::default()
    };
    // Every node shares ::1, so the per-IP answer budget must cover them all.
    node.answer_limits.per_ip_rate = 1e6;
    node.answer_limits.per_ip_burst = 1e6;
    NodeHandle::start(RuntimeConfig {
        bind: "[::1]:0".parse().unwrap(),
        node,
        recv_buffer: 1 << 20,
        cpu: None,
        seed: Some(seed),
    })
    .unwrap()
}

#[test]
fn crawl_over_ipv6_discovers_what_v6_nodes_hold() {
    let hub = v6_node(&[], true, 61);
    let others: Vec<NodeHandle> = (0..2).map(|i| v6_node(&[hub.local_addr()], true, 62 + i)).collect();
    let announcer = v6_node(&[hub.local_addr()], false, 69);
    let hashes: Vec<[u8; 20]> = (60..63).map(info_hash).collect();
    for h in &hashes {
        let outcome = announcer
            .announce(*h, Some(46_060))
            .unwrap()
            .wait_until(Instant::now() + Duration::from_secs(15));
        assert!(
            matches!(outcome, Some(Outcome::AnnounceDone { announced_to }) if announced_to > 0),
            "announce over IPv6 did not complete: {outcome:?}"
        );
    }

    let dir = tempfile::tempdir().unwrap();
    // Every node shares ::1: the per-IP pacing must let all of them be asked.
    let pacing = CrawlConfig {
        per_ip_rate: 50.0,
        per_ip_burst: 50.0,
        ..CrawlConfig::default()
    };
    let crawler = crawl(&dir.path().join("db"), vec![hub.local_addr()], pacing);
    assert!(crawler.local_v6().is_some(), "the crawl listens on IPv6");
    let missing = wait_stored(&crawler, &hashes, Duration::from_secs(20));
    let s = crawler.shutdown();
    assert!(
        missing.is_empty(),
        "not discovered over IPv6: {missing:?}; figures {s:?}"
    );
    assert!(s.total(|c| c.known_nodes) >= 2, "v6 nodes were learned: {s:?}");
    drop(others);
}
