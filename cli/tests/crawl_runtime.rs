//! The crawl runtime end to end on loopback: against the `trawl-swarm`
//! simulator (ground truth and politeness counted by the swarm), a restart from
//! stored nodes, and the address filter. Every crawl is bounded in time and
//! sends only to 127.0.0.0/8.

#[path = "../../engine/tests/crawl_common/mod.rs"]
mod crawl_common;
#[path = "../../engine/tests/interop_common/mod.rs"]
mod interop_common;

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crawl_common::{ground_truth, hex, loopback_options, stored_hashes, wait_for, SwarmChild};
use trawl_engine::crawl::CrawlConfig;
use trawl_engine::runtime::crawl::{Crawler, CrawlerOptions};
use trawl_storage::Store;

const NODES: u32 = 10_000;
const TORRENTS: u32 = 50_000;
/// The swarm's largest `interval`: short, so nodes holding more than one
/// sample's worth are revisited within the test.
const INTERVAL_MAX: u32 = 4;

/// Quick revisits, so the test is bounded by the swarm's short intervals.
fn fast_crawl() -> CrawlConfig {
    CrawlConfig {
        query_timeout: Duration::from_secs(2),
        retry_after_timeout: Duration::from_secs(2),
        productive_resample: Duration::from_secs(1),
        empty_backoff: Duration::from_secs(5),
        walk_interval: Duration::from_secs(5),
        bootstrap_retry: Duration::from_secs(1),
        ..CrawlConfig::default()
    }
}

fn options(db: &Path, bootstrap: Vec<SocketAddr>) -> CrawlerOptions {
    CrawlerOptions {
        crawl: fast_crawl(),
        ..loopback_options(db, bootstrap)
    }
}

#[test]
fn swarm_crawl_stores_the_reachable_catalogue_politely_and_a_restart_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("manifest.jsonl");
    let db = dir.path().join("db");
    let swarm = SwarmChild::start(&manifest, NODES, TORRENTS, INTERVAL_MAX);
    let (catalogue, reachable) = ground_truth(&manifest);
    assert_eq!(catalogue.len(), TORRENTS as usize);

    // First run: from four bootstrap nodes (a few of the swarm's nodes are dead).
    let bootstrap = (0..4).map(|i| swarm.node(i)).collect();
    let crawler = Crawler::start(options(&db, bootstrap)).unwrap();
    let first_ids = crawler.node_ids().to_vec();
    let want = (reachable.len() as f64 * 0.99).ceil() as u64;
    let during = wait_for(&crawler, Duration::from_secs(40), |s| s.storage.new_infohashes >= want);
    let last = crawler.shutdown();
    assert!(
        during.storage.new_infohashes >= want,
        "stored {} of {} reachable in time",
        during.storage.new_infohashes,
        reachable.len()
    );
    assert_eq!(last.total(|c| c.send_errors + c.recv_errors), 0);
    assert_eq!(last.storage.items_lost, 0);

    let stored = stored_hashes(&db);
    let invented: Vec<&String> = stored.difference(&catalogue).take(5).collect();
    assert!(invented.is_empty(), "hashes not in the catalogue: {invented:?}");
    let found = stored.intersection(&reachable).count();
    assert!(
        found as f64 >= reachable.len() as f64 * 0.99,
        "found {found} of {} reachable",
        reachable.len()
    );
    assert_eq!(
        stored.len() as u64,
        last.storage.new_infohashes,
        "every acknowledged hash is stored"
    );

    // Second run, at once: no bootstrap at all; it must resume from the saved
    // nodes, under new node ids, and keep each node's interval (saved with
    // it): the swarm counts any sample inside one as a violation.
    let saved_nodes = Store::open_read_only(&db).unwrap().nodes().unwrap();
    let saved = saved_nodes.len();
    assert!(saved > 1000, "saved {saved} nodes");
    assert!(
        saved_nodes.iter().any(|n| n.next_sample > 0 && n.bep51 == Some(true)),
        "nodes are saved with their sampling state"
    );
    let crawler = Crawler::start(options(&db, Vec::new())).unwrap();
    assert_eq!(crawler.resumed_nodes(), saved);
    for id in crawler.node_ids() {
        assert!(!first_ids.contains(id), "a restart draws new node ids");
    }
    let resumed = wait_for(&crawler, Duration::from_secs(10), |s| {
        s.total(|c| c.datagrams_in) > 100 && s.total(|c| c.samples_sent) > 100
    });
    crawler.shutdown();
    assert!(resumed.total(|c| c.known_nodes) >= saved as u64 / 2);
    assert!(
        resumed.total(|c| c.datagrams_in) > 100,
        "the resumed crawl got answers without bootstrap: {resumed:?}"
    );

    let report = swarm.finish();
    assert_eq!(report["event"], "final", "{report}");
    assert_eq!(report["politeness_violations"], 0, "{report}");
}

#[test]
fn loopback_sources_are_dropped_without_allow_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    // A would-be bootstrap node that records what reaches it.
    let bootstrap = UdpSocket::bind("127.0.0.1:0").unwrap();
    bootstrap.set_read_timeout(Some(Duration::from_millis(1500))).unwrap();
    let mut opts = options(&db, vec![bootstrap.local_addr().unwrap()]);
    opts.allow_loopback = false;
    opts.read_only = false;
    let crawler = Crawler::start(opts).unwrap();
    // A valid ping from loopback: an answering crawl would reply, a filtering one drops it.
    let to = SocketAddr::from(([127, 0, 0, 1], crawler.local_v4().port()));
    bootstrap
        .send_to(b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t4:aaaa1:y1:qe", to)
        .unwrap();
    let mut buf = [0u8; 1500];
    let got = bootstrap.recv_from(&mut buf);
    let s = wait_for(&crawler, Duration::from_secs(2), |s| s.total(|c| c.filtered) > 0);
    crawler.shutdown();
    assert!(got.is_err(), "nothing is sent to or answered for a loopback address");
    assert!(s.total(|c| c.filtered) >= 1, "the ping was filtered: {s:?}");
    assert_eq!(s.total(|c| c.datagrams_out), 0);
    assert_eq!(s.total(|c| c.known_nodes), 0);
    assert!(stored_hashes(&db).is_empty());
}

#[test]
fn a_second_crawl_on_the_same_database_is_refused_as_locked() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let crawler = Crawler::start(options(&db, Vec::new())).unwrap();
    let err = Crawler::start(options(&db, Vec::new()))
        .err()
        .expect("the database is locked");
    assert!(err.is_usage(), "{err}");
    assert!(err.to_string().contains("locked"), "{err}");
    // And one on the same port, with another database, is refused too.
    let mut other = options(&dir.path().join("db2"), Vec::new());
    other.port = crawler.local_v4().port();
    let err = Crawler::start(other).err().expect("the port is in use");
    assert!(err.is_usage() && err.to_string().contains("in use"), "{err}");
    crawler.shutdown();
}

/// `trawl crawl` as a user runs it: against answering trawl nodes holding an
/// announced hash, stopped by SIGTERM; it flushes, exits 0 and prints one JSON
/// summary line whose figures match the database.
#[test]
fn trawl_crawl_binary_stores_what_it_finds_and_exits_cleanly_on_sigterm() {
    let ih = interop_common::info_hash(81);
    let (_nodes, hub) = interop_common::trawl_network_with_announce(81, 81, ih, 45_081);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let child = Command::new(env!("CARGO_BIN_EXE_trawl"))
        .args([
            "crawl",
            "--port",
            "0",
            "--cores",
            "1",
            "--allow-loopback",
            "--no-fetch",
            "--no-pin",
        ])
        .args(["--bootstrap", &hub.to_string(), "--db"])
        .arg(&db)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(4));
    // SAFETY: signalling our own child by its pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "exit {:?}", out.status);
    let stdout = String::from_utf8(out.stdout).unwrap();
    let last = stdout.lines().last().expect("a summary line");
    let summary: serde_json::Value = serde_json::from_str(last).unwrap();
    assert_eq!(summary["crawl"], "summary");
    assert_eq!(summary["cores"], 1);
    assert!(summary["datagrams_in"].as_u64().unwrap() > 0, "{summary}");
    let stored = stored_hashes(&db);
    assert!(stored.contains(&hex(&ih)), "the announced hash was stored: {summary}");
    assert_eq!(summary["stored_new"].as_u64(), Some(stored.len() as u64), "{summary}");
    for key in [
        "secs",
        "datagrams_out",
        "new_hashes",
        "stored_duplicates",
        "known_nodes",
        "metadata_ok",
    ] {
        assert!(summary[key].is_number(), "{key} in {summary}");
    }
    assert!(summary["cpu_secs"].as_f64().unwrap() > 0.0 && summary["peak_rss_mb"].as_f64().unwrap() > 1.0);
}

#[test]
fn trawl_crawl_rejects_bad_arguments_with_one_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    for bad in [
        &["--bootstrap", "no-port-here"][..],
        &["--cores", "0"],
        &["--duration", "-1"],
        &["--bind", "not-an-ip"],
        &["--info-dicts", "pieces"],
        &["--fetch-queue-max", "0"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_trawl"))
            .args(["crawl", "--port", "0", "--db"])
            .arg(&db)
            .args(bad)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.trim().is_empty() && out.stdout.is_empty(), "{bad:?}: {err}");
    }
}

#[test]
fn pausing_stops_queries_and_resuming_restarts_them() {
    let ih = interop_common::info_hash(82);
    let (_nodes, hub) = interop_common::trawl_network_with_announce(82, 82, ih, 45_082);
    let dir = tempfile::tempdir().unwrap();
    let crawler = Crawler::start(options(&dir.path().join("db"), vec![hub])).unwrap();
    wait_for(&crawler, Duration::from_secs(5), |s| s.total(|c| c.datagrams_in) > 0);
    crawler.set_paused(true);
    // Let the queries already in flight come back (or time out).
    wait_for(&crawler, Duration::from_secs(3), |s| s.total(|c| c.in_flight) == 0);
    // Snapshots are published every 250 ms: take the count from a fresh one.
    crawler.wait_until(Instant::now() + Duration::from_millis(600));
    let sent = crawler.snapshot().total(|c| c.datagrams_out);
    crawler.wait_until(Instant::now() + Duration::from_millis(1500));
    let paused = crawler.snapshot();
    assert!(paused.paused);
    assert_eq!(paused.total(|c| c.datagrams_out), sent, "no query leaves while paused");
    crawler.set_paused(false);
    let resumed = wait_for(&crawler, Duration::from_secs(10), |s| {
        s.total(|c| c.datagrams_out) > sent
    });
    crawler.shutdown();
    assert!(!resumed.paused);
    assert!(resumed.total(|c| c.datagrams_out) > sent, "queries resume");
}
