//! The metadata fetcher against in-process peers: one test per hostile
//! behaviour. Each costs only its own connection: the infohash it was asked for
//! still arrives from a good peer, and a hash whose only peer misbehaves goes back
//! to the queue with its failure kind and a retry time in the future.

mod metadata_common;

use std::net::Ipv4Addr;
use std::time::Duration;

use metadata_common::{sample_info, spawn_peer, test_config, Behaviour, Harness};
use trawl_engine::runtime::fetch::FetchConfig;
use trawl_storage::{unix_now, BitmagnetType, ContentClass, QueuePolicy};

const WAIT: Duration = Duration::from_secs(15);

/// `case` picks a distinct 127.61.case.x range so tests can run in parallel.
fn hostile_case(case: u8, behaviour: Behaviour, kind: &str) {
    let mut h = Harness::start(test_config(), true);
    let good_ip = Ipv4Addr::new(127, 61, case, 1);
    let bad_ip = Ipv4Addr::new(127, 61, case, 2);

    let (info, hash) = sample_info(&format!("Some.Film.2019.1080p.BluRay.x264-{case}"));
    let good = spawn_peer(good_ip, Behaviour::Good, info.clone());
    let bad = spawn_peer(bad_ip, behaviour, info.clone());
    let (lonely_info, lonely) = sample_info(&format!("only-a-hostile-peer-{case}"));
    let lonely_bad = spawn_peer(bad_ip, behaviour, lonely_info);

    // The hostile peer is the newest, so it is tried first.
    h.enqueue(hash, &[good, bad]);
    h.enqueue(lonely, &[lonely_bad]);

    let t = h.wait_torrent(&hash, WAIT);
    assert_eq!(t.info_dict.as_deref(), None, "plain reads leave the dict out");
    assert_eq!(
        h.store.info_dict(&hash).unwrap().as_deref(),
        Some(&info[..]),
        "byte-exact info dict"
    );
    assert_eq!(t.files.len(), 2);
    assert_eq!(t.total_size, 734_003_200 + 51_200);
    assert_eq!(t.class, ContentClass::Video);
    assert_eq!(t.content_type, Some(BitmagnetType::Movie));
    assert!(
        h.store.staging_entry(&hash).unwrap().is_none(),
        "a stored torrent leaves the queue"
    );

    let now = unix_now();
    let e = h.wait_failure(&lonely, WAIT);
    assert_eq!(e.attempts, 1);
    assert_eq!(e.last_error.as_deref(), Some(kind));
    let base = QueuePolicy::default().retry_base_secs;
    assert!(
        e.due >= now + base - 5,
        "retried after backoff, not at once: due {} now {now}",
        e.due
    );
    assert_eq!(e.peers, vec![lonely_bad], "peers kept for the retry");

    assert_eq!(h.failed(kind), 2, "both hashes tried the hostile peer once");
    let snap = h.counters.snapshot();
    assert_eq!(snap.ok, 1);
    assert_eq!(snap.started, 3);
    h.stop();
    assert_eq!(h.counters.snapshot().active, 0);
}

#[test]
fn no_extension_bit() {
    hostile_case(1, Behaviour::NoExtension, "no_extension");
}

#[test]
fn no_ut_metadata() {
    hostile_case(2, Behaviour::NoUtMetadata, "no_ut_metadata");
}

#[test]
fn lying_metadata_size() {
    hostile_case(3, Behaviour::TooLarge, "too_large");
}

#[test]
fn wrong_piece_data() {
    hostile_case(4, Behaviour::WrongPiece, "hash_mismatch");
}

#[test]
fn oversized_message() {
    hostile_case(5, Behaviour::Oversized, "bad_message");
}

#[test]
fn stalling_peer() {
    hostile_case(6, Behaviour::Stall, "deadline");
}

#[test]
fn reject() {
    hostile_case(7, Behaviour::Reject, "rejected");
}

#[test]
fn slow_drip() {
    hostile_case(8, Behaviour::SlowDrip, "deadline");
}

#[test]
fn garbage_bytes() {
    hostile_case(9, Behaviour::Garbage, "bad_message");
}

#[test]
fn connection_refused() {
    hostile_case(10, Behaviour::Absent, "refused");
}

#[test]
fn hang_up() {
    hostile_case(11, Behaviour::HangUp, "closed");
}

#[test]
fn filtered_peers_are_never_dialed() {
    // Without allow_loopback, a loopback peer is refused like a private one.
    let h = Harness::start(test_config(), false);
    let (info, hash) = sample_info("filtered");
    let good = spawn_peer(Ipv4Addr::new(127, 61, 20, 1), Behaviour::Good, info);
    h.enqueue(
        hash,
        &[
            "10.0.0.1:6881".parse().unwrap(),
            "192.168.1.1:6881".parse().unwrap(),
            good,
        ],
    );
    let e = h.wait_failure(&hash, WAIT);
    assert_eq!(e.last_error.as_deref(), Some("no_peers"));
    let snap = h.counters.snapshot();
    assert_eq!(snap.started, 0, "nothing dialed");
    assert_eq!(h.failed("no_peers"), 1);
}

#[test]
fn at_most_k_peers_per_hash() {
    let h = Harness::start(
        FetchConfig {
            max_peers_per_hash: 2,
            ..test_config()
        },
        true,
    );
    let (info, hash) = sample_info("k-peers");
    let peers: Vec<_> = (1..=4)
        .map(|i| spawn_peer(Ipv4Addr::new(127, 61, 21, i), Behaviour::Reject, info.clone()))
        .collect();
    h.enqueue(hash, &peers);
    let e = h.wait_failure(&hash, WAIT);
    assert_eq!(e.last_error.as_deref(), Some("rejected"));
    assert_eq!(h.counters.snapshot().started, 2, "K = 2 peers tried, not 4");
}

#[test]
fn per_ip_connection_limit() {
    let h = Harness::start(
        FetchConfig {
            per_ip_limit: 1,
            ..test_config()
        },
        true,
    );
    let (info_a, a) = sample_info("same-ip-a");
    let (_, b) = sample_info("same-ip-b");
    let staller = spawn_peer(Ipv4Addr::new(127, 61, 22, 1), Behaviour::Stall, info_a);
    let t0 = std::time::Instant::now();
    h.enqueue(a, &[staller]);
    h.enqueue(b, &[staller]);
    let (ea, eb) = (h.wait_failure(&a, WAIT), h.wait_failure(&b, WAIT));
    // The second hash waits for the IP's slot (not a failure), then stalls too.
    let errors = [ea.last_error.unwrap(), eb.last_error.unwrap()];
    assert_eq!(errors, ["deadline".to_string(), "deadline".to_string()]);
    assert_eq!(h.counters.snapshot().started, 2);
    let deadline = test_config().exchange.deadline;
    assert!(
        t0.elapsed() >= deadline * 2 - Duration::from_millis(100),
        "one connection to the IP at a time: both ended in {:?}",
        t0.elapsed()
    );
}

/// A listener whose accept queue is full: the kernel drops further SYNs, so
/// a dial neither succeeds nor is refused, and times out.
fn black_hole(ip: Ipv4Addr) -> (socket2::Socket, std::net::TcpStream, std::net::SocketAddr) {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    s.bind(&std::net::SocketAddr::from((ip, 0)).into()).unwrap();
    s.listen(0).unwrap();
    let addr = s.local_addr().unwrap().as_socket().unwrap();
    // Fills the one-entry accept queue (never accepted).
    let filler = std::net::TcpStream::connect(addr).unwrap();
    (s, filler, addr)
}

#[test]
fn connect_timeout() {
    let mut h = Harness::start(test_config(), true);
    let (_listener, _filler, addr) = black_hole(Ipv4Addr::new(127, 61, 12, 2));
    let (_, lonely) = sample_info("only-a-black-hole");
    h.enqueue(lonely, &[addr]);
    let e = h.wait_failure(&lonely, Duration::from_secs(20));
    assert_eq!(e.last_error.as_deref(), Some("dial_timeout"));
    assert_eq!(h.failed("dial_timeout"), 1);
    assert_eq!(h.counters.snapshot().hashes_failed, 1, "one hash, every peer failed");
    h.stop();
}
