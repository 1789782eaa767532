//! The crawl scheduler's rules, one at a time, on real KRPC bytes: transaction
//! matching, read-only and answering modes, address filtering, owner handover,
//! backpressure, BEP 51 detection and interval handling.

use std::net::{Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use trawl_engine::codec::compact::CompactNode;
use trawl_engine::codec::krpc::{encode_error, encode_response, Kind, Message, Query, ResponseOut};
use trawl_engine::codec::wire::ERROR_METHOD_UNKNOWN;
use trawl_engine::crawl::{owner, CrawlConfig, Scheduler};

mod scheduler_common;

use scheduler_common::*;

#[test]
fn first_query_is_a_read_only_sample() {
    let (_, _, _, q) = with_one_node(config());
    let msg = Message::decode(&q).unwrap();
    assert!(msg.read_only);
    assert!(matches!(msg.kind, Kind::Query(Query::SampleInfohashes { id, .. }) if *id == [0xEE; 20]));
}

#[test]
fn replies_match_only_by_transaction_id_and_sender() {
    let (mut s, now, remote, q) = with_one_node(config());
    let reply = sample_reply(&tid_of(&q), &[[7; 20]], &[], 60);
    s.handle_datagram(now, addr(1, 2), &reply);
    assert_eq!(s.stats().unmatched, 1);
    assert!(s.output().discoveries.is_empty());
    let mut forged = tid_of(&q);
    forged[0] ^= 0xFF;
    s.handle_datagram(now, remote, &sample_reply(&forged, &[[7; 20]], &[], 60));
    assert_eq!(s.stats().unmatched, 2);
    s.handle_datagram(now, remote, &reply);
    let d = s.output().discoveries.clone();
    assert_eq!(d.len(), 1);
    assert_eq!(
        (d[0].info_hash, d[0].source, d[0].source_id),
        ([7; 20], remote, [1; 20])
    );
    // The same reply again is a duplicate transaction, not a new discovery.
    s.handle_datagram(now, remote, &reply);
    assert_eq!(s.stats().unmatched, 3);
    assert_eq!(s.stats().new_hashes, 1);
}

#[test]
fn interval_is_respected_and_new_hashes_are_scraped_at_their_sampler() {
    let (mut s, now, remote, q) = with_one_node(no_walks());
    s.handle_datagram(now, remote, &sample_reply(&tid_of(&q), &[[7; 20], [8; 20]], &[], 900));
    let mut buf = Vec::new();
    // Per hash a plain get_peers (for values: libtorrent answers a scrape with
    // bloom filters only) and a scrape, all to the sampler, then nothing: the
    // next sample waits 900 s. The sample took one of the IP's 4 burst tokens.
    let mut asked = Vec::new();
    for _ in 0..3 {
        assert_eq!(s.poll_transmit(now, &mut buf), Some(remote));
        let Kind::Query(Query::GetPeers { info_hash, scrape, .. }) = Message::decode(&buf).unwrap().kind else {
            panic!("not a get_peers")
        };
        asked.push((info_hash[0], scrape));
    }
    assert_eq!(asked, vec![(7, false), (7, true), (8, false)]);
    let after_a_token = now + Duration::from_millis(500);
    assert_eq!(s.poll_transmit(after_a_token, &mut buf), Some(remote));
    assert!(matches!(
        Message::decode(&buf).unwrap().kind,
        Kind::Query(Query::GetPeers { scrape: true, .. })
    ));
    let later = now + Duration::from_secs(899);
    s.handle_timeout(later);
    while s.poll_transmit(later, &mut buf).is_some() {
        let m = Message::decode(&buf).unwrap();
        assert!(
            !matches!(m.kind, Kind::Query(Query::SampleInfohashes { .. })),
            "sampled before the interval"
        );
    }
    let due = now + Duration::from_secs(901);
    s.handle_timeout(due);
    assert!(s.next_timeout().unwrap() <= due);
    let mut sampled = false;
    while s.poll_transmit(due, &mut buf).is_some() {
        sampled |= matches!(
            Message::decode(&buf).unwrap().kind,
            Kind::Query(Query::SampleInfohashes { .. })
        );
    }
    assert!(sampled, "not sampled once the interval passed");
}

#[test]
fn method_unknown_marks_a_node_without_bep51_and_walks_it() {
    let (mut s, now, remote, q) = with_one_node(config());
    let mut err = Vec::new();
    encode_error(&mut err, &tid_of(&q), ERROR_METHOD_UNKNOWN, b"Method Unknown", None);
    s.handle_datagram(now, remote, &err);
    let mut buf = Vec::new();
    assert_eq!(s.poll_transmit(now, &mut buf), Some(remote));
    assert!(matches!(
        Message::decode(&buf).unwrap().kind,
        Kind::Query(Query::FindNode { .. })
    ));
}

#[test]
fn bogon_and_private_addresses_are_dropped_unless_loopback_is_allowed() {
    let now = Instant::now();
    let mut s = Scheduler::new(
        CrawlConfig {
            allow_loopback: false,
            ..config()
        },
        now,
    );
    assert!(!s.add_node(
        now,
        CompactNode {
            id: [1; 20],
            addr: addr(1, 1)
        }
    ));
    assert!(!s.add_node(
        now,
        CompactNode {
            id: [1; 20],
            addr: SocketAddr::from(([192, 168, 1, 2], 6881))
        }
    ));
    assert!(!s.add_node(
        now,
        CompactNode {
            id: [1; 20],
            addr: SocketAddr::from(([10, 0, 0, 1], 6881))
        }
    ));
    assert!(s.add_node(
        now,
        CompactNode {
            id: [1; 20],
            addr: SocketAddr::from(([82, 1, 2, 3], 6881))
        }
    ));
    let q = [0u8; 4];
    s.handle_datagram(now, SocketAddr::from(([10, 0, 0, 1], 6881)), &q);
    assert_eq!(s.stats().filtered, 4);
    assert_eq!(s.known_nodes(), 1);
    let mut buf = Vec::new();
    assert_eq!(
        s.poll_transmit(now, &mut buf),
        Some(SocketAddr::from(([82, 1, 2, 3], 6881)))
    );
}

#[test]
fn nodes_of_other_cores_are_handed_over_not_kept() {
    let cores = 2;
    let (mut s, now, remote, q) = {
        // Core 0 with a node it owns.
        let now = Instant::now();
        let mut s = Scheduler::new(
            CrawlConfig {
                cores,
                core: 0,
                ..config()
            },
            now,
        );
        let remote = (0..255).map(|i| addr(2, i)).find(|a| owner(*a, cores) == 0).unwrap();
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
    };
    let nodes: Vec<CompactNode> = (0..16)
        .map(|i| CompactNode {
            id: [i + 10; 20],
            addr: addr(3, i),
        })
        .collect();
    s.handle_datagram(now, remote, &sample_reply(&tid_of(&q), &[], &nodes, 0));
    let theirs = nodes.iter().filter(|n| owner(n.addr, cores) == 1).count();
    assert!(theirs > 0 && theirs < nodes.len());
    let handed = s.output().handovers.clone();
    assert_eq!(handed.len(), theirs);
    assert!(handed.iter().all(|h| h.core == 1 && owner(h.node.addr, cores) == 1));
    assert_eq!(s.known_nodes(), 1 + nodes.len() - theirs);
    // A node routed to the wrong core is refused and counted.
    assert!(!s.add_node(now, handed[0].node));
    assert_eq!(s.stats().misrouted, 1);
}

#[test]
fn backpressure_pauses_sampling_but_keeps_what_was_found() {
    let (mut s, now, remote, q) = with_one_node(no_walks());
    s.set_downstream_full(true);
    s.handle_datagram(now, remote, &sample_reply(&tid_of(&q), &[[7; 20]], &[], 0));
    assert_eq!(
        s.output().discoveries.len(),
        1,
        "a discovery was dropped under backpressure"
    );
    let other = addr(1, 9);
    assert!(s.add_node(
        now,
        CompactNode {
            id: [2; 20],
            addr: other
        }
    ));
    let later = now + Duration::from_secs(3600);
    s.handle_timeout(later);
    let mut buf = Vec::new();
    let mut sent = Vec::new();
    while let Some(to) = s.poll_transmit(later, &mut buf) {
        sent.push(
            Message::decode(&buf)
                .map(|m| matches!(m.kind, Kind::Query(Query::SampleInfohashes { .. })))
                .unwrap(),
        );
        assert!(sent.len() < 100, "runaway transmit to {to}");
    }
    assert!(!sent.iter().any(|&is_sample| is_sample), "sampled under backpressure");
    assert!(s.stats().backpressure_pauses > 0);
    s.set_downstream_full(false);
    assert!(s.poll_transmit(later, &mut buf).is_some());
    assert!(matches!(
        Message::decode(&buf).unwrap().kind,
        Kind::Query(Query::SampleInfohashes { .. })
    ));
}

#[test]
fn timeouts_make_a_node_unreachable_and_it_is_not_relearned() {
    let cfg = CrawlConfig {
        max_failures: 2,
        ..config()
    };
    let (mut s, now, remote, _) = with_one_node(cfg);
    let mut t = now;
    let mut buf = Vec::new();
    let mut sent = 1;
    for _ in 0..400 {
        t += Duration::from_secs(1);
        s.handle_timeout(t);
        while let Some(to) = s.poll_transmit(t, &mut buf) {
            assert_eq!(to, remote);
            sent += 1;
        }
    }
    assert_eq!(sent, 2);
    assert!(s.is_unreachable(&remote, t));
    assert_eq!(s.known_nodes(), 0);
    assert!(!s.add_node(
        t,
        CompactNode {
            id: [1; 20],
            addr: remote
        }
    ));
}

#[test]
fn ipv6_nodes_from_nodes6_are_learned_and_sampled() {
    let (mut s, now, remote, q) = with_one_node(no_walks());
    // ::1 is the only IPv6 loopback address here; ports tell the nodes apart.
    let v6: Vec<CompactNode> = (0..3)
        .map(|i| CompactNode {
            id: [40 + i; 20],
            addr: SocketAddr::new(Ipv6Addr::LOCALHOST.into(), 7000 + u16::from(i)),
        })
        .collect();
    let id = [1u8; 20];
    let mut r = ResponseOut::new(&id);
    r.nodes6 = &v6;
    r.interval = Some(0);
    r.num = Some(0);
    let mut reply = Vec::new();
    encode_response(&mut reply, &tid_of(&q), &r, None, None);
    s.handle_datagram(now, remote, &reply);
    assert_eq!(s.known_nodes(), 1 + v6.len());
    let sampled = sampled_at(&mut s, now);
    // One IP, so the per-IP burst (4) caps how many go out at once.
    assert!(sampled.iter().all(|a| a.is_ipv6()));
    assert_eq!(sampled.len(), 3.min(config().per_ip_burst as usize));
}

/// Drains everything sendable at `at`, returning where samples went.
fn sampled_at(s: &mut Scheduler, at: Instant) -> Vec<SocketAddr> {
    let mut buf = Vec::new();
    let mut to = Vec::new();
    s.handle_timeout(at);
    while let Some(a) = s.poll_transmit(at, &mut buf) {
        if matches!(
            Message::decode(&buf).unwrap().kind,
            Kind::Query(Query::SampleInfohashes { .. })
        ) {
            to.push(a);
        }
    }
    to
}

/// Drains everything sendable at `at`, returning the kinds of query sent.
fn drain(s: &mut Scheduler, at: Instant) -> Vec<&'static str> {
    let mut buf = Vec::new();
    let mut sent = Vec::new();
    s.handle_timeout(at);
    while s.poll_transmit(at, &mut buf).is_some() {
        sent.push(match Message::decode(&buf).unwrap().kind {
            Kind::Query(Query::SampleInfohashes { .. }) => "sample",
            Kind::Query(Query::GetPeers { .. }) => "get_peers",
            Kind::Query(Query::FindNode { .. }) => "find_node",
            _ => "other",
        });
    }
    sent
}

#[test]
fn scrapes_of_one_sample_go_out_at_the_ip_pacing_rate_and_none_is_lost() {
    let (mut s, now, remote, q) = with_one_node(no_walks());
    let hashes: Vec<[u8; 20]> = (0..10u8).map(|i| [i + 100; 20]).collect();
    s.handle_datagram(now, remote, &sample_reply(&tid_of(&q), &hashes, &[], 900));
    let first = drain(&mut s, now);
    let burst = first.iter().filter(|k| **k == "get_peers").count();
    // The sample took one of the IP's 4 burst tokens.
    assert!((1..=3).contains(&burst), "burst of {burst}: {first:?}");
    let mut total = burst;
    let mut t = now;
    for _ in 0..100 {
        t += Duration::from_millis(100);
        let sent = drain(&mut s, t);
        assert!(sent.len() <= 1, "more than the IP's rate at {:?}: {sent:?}", t - now);
        total += sent.iter().filter(|k| **k == "get_peers").count();
    }
    // Plain queries that time out unanswered go on as lookups from the table;
    // those steps are paced by the same budget and counted apart.
    let lookups = s.stats().lookup_queries_sent as usize;
    assert_eq!(
        total - lookups,
        2 * hashes.len(),
        "every new hash gets one get_peers and one scrape"
    );
    assert_eq!(s.stats().scrapes_sent as usize, hashes.len());
}

/// Queries time out after 1 s; a timed-out node is retried after 2 s, an
/// empty sample backs off 30 s.
fn quick_timeouts() -> CrawlConfig {
    CrawlConfig {
        query_timeout: Duration::from_secs(1),
        retry_after_timeout: Duration::from_secs(2),
        empty_backoff: Duration::from_secs(30),
        max_failures: 5,
        ..no_walks()
    }
}

/// Found by the yield bench on the mainline preset: a node that was down
/// (churn) when first sampled waited the 300 s empty back-off and was then
/// dropped after two timeouts, so it was never sampled once it came back. A
/// timed-out sample is retried after the timeout retry, doubled per timeout.
#[test]
fn a_timed_out_sample_is_retried_with_a_doubling_wait_until_the_node_is_unreachable() {
    let (mut s, now, remote, _q) = with_one_node(quick_timeouts());
    let at = |ms: u64| now + Duration::from_millis(ms);
    // Timeout at 1 s, retry 2 s later; timeout at 4.1 s, retry 4 s later; ...
    let mut sampled = Vec::new();
    for t in (0..=40_000).step_by(100) {
        if drain(&mut s, at(t)).contains(&"sample") {
            sampled.push(t);
        }
    }
    assert_eq!(
        sampled,
        vec![3_000, 8_000, 17_000, 34_000],
        "retries of a node that never answers"
    );
    assert!(
        s.is_unreachable(&remote, at(40_000)),
        "unreachable after its fifth timeout"
    );
}

#[test]
fn a_saved_node_is_not_sampled_before_its_saved_deadline() {
    let unix = Duration::from_millis(1_800_000_000_700);
    let now = Instant::now();
    let mut s = Scheduler::new(no_walks(), now);
    let node = |a| CompactNode {
        id: [a; 20],
        addr: addr(a, 1),
    };
    // Saved by the previous run: due 10.3 s from now, due long ago, no BEP 51.
    assert!(s.add_saved_node(now, unix, node(1), 1_800_000_011, Some(true)));
    assert!(s.add_saved_node(now, unix, node(2), 1_700_000_000, Some(true)));
    assert!(s.add_saved_node(now, unix, node(3), 0, Some(false)));
    assert_eq!(
        sampled_at(&mut s, now),
        vec![addr(2, 1)],
        "only the node whose deadline passed"
    );
    assert!(sampled_at(&mut s, now + Duration::from_millis(10_299)).is_empty());
    assert_eq!(
        sampled_at(&mut s, now + Duration::from_millis(10_300)),
        vec![addr(1, 1)]
    );
    let hour = now + Duration::from_secs(3600);
    assert!(
        !sampled_at(&mut s, hour).contains(&addr(3, 1)),
        "no BEP 51: never sampled"
    );
}

#[test]
fn a_lost_sample_reply_waits_out_the_interval_the_node_may_have_started() {
    let (mut s, now, remote, q) = with_one_node(quick_timeouts());
    // The node answers with a 500 s interval; a second node is known but has
    // never answered a sample.
    s.handle_datagram(now, remote, &sample_reply(&tid_of(&q), &[], &[], 500));
    let other = addr(2, 1);
    assert!(s.add_node(
        now,
        CompactNode {
            id: [2; 20],
            addr: other
        }
    ));
    let at = |secs: f64| now + Duration::from_secs_f64(secs);
    assert_eq!(sampled_at(&mut s, at(0.5)), vec![other], "the newcomer first");
    // Its reply never comes; its timeout is seen at 500.5 s, when the first
    // node is sampled again at its interval.
    assert_eq!(sampled_at(&mut s, at(500.5)), vec![remote]);
    // That reply is lost too (or dropped by a full socket buffer), though both
    // nodes may have counted the visit. The old rule re-sampled each 30 s
    // (the empty back-off) after its timeout, inside their intervals.
    for t in [501.6, 531.0, 560.0, 900.0, 1000.4] {
        assert!(sampled_at(&mut s, at(t)).is_empty(), "re-sampled at {t} s");
    }
    // The node that never answered waits the longest interval any node gave
    // (500 s) from its timeout; the other its own 500 s from its timeout.
    assert_eq!(sampled_at(&mut s, at(1000.5)), vec![other]);
    assert!(sampled_at(&mut s, at(1001.5)).is_empty());
    assert_eq!(sampled_at(&mut s, at(1001.6)), vec![remote]);
}

/// A sample of `samples` from a node that says it holds `num` (libtorrent
/// shows 20 of its store, picked anew each interval).
fn sample_of(tid: &[u8], samples: &[[u8; 20]], num: i64, interval: i64) -> Vec<u8> {
    let id = [1u8; 20];
    let mut r = ResponseOut::new(&id);
    r.samples = samples;
    r.interval = Some(interval);
    r.num = Some(num);
    let mut out = Vec::new();
    encode_response(&mut out, tid, &r, None, None);
    out
}

/// Found by the yield bench: after the first pass every hash a node showed had
/// been seen at other nodes, so nearly every node backed off 300 s and the
/// crawl never came back within four 60 s intervals. A node that holds more
/// than it showed is re-sampled at its interval even when nothing was new;
/// one that showed all it holds backs off.
#[test]
fn a_node_holding_more_than_it_showed_is_resampled_at_its_interval_even_with_nothing_new() {
    let seen = [[9u8; 20]];
    let at = |now: Instant, secs: u64| now + Duration::from_secs(secs);
    // Answers the sample that goes out at `t`, with `num` held of `samples`.
    let resample = |s: &mut Scheduler, t: Instant, remote: SocketAddr, num: i64, interval: i64| {
        let mut buf = Vec::new();
        let mut tid = None;
        s.handle_timeout(t);
        while s.poll_transmit(t, &mut buf).is_some() {
            if matches!(
                Message::decode(&buf).unwrap().kind,
                Kind::Query(Query::SampleInfohashes { .. })
            ) {
                tid = Some(tid_of(&buf));
            }
        }
        let tid = tid.expect("not re-sampled");
        s.handle_datagram(t, remote, &sample_of(&tid, &seen, num, interval));
    };
    // Shows 1 of the 25 it holds: the second sample brings nothing new, yet
    // the third goes out once its 60 s interval has passed.
    let (mut s, now, remote, q) = with_one_node(quick_timeouts());
    s.handle_datagram(now, remote, &sample_of(&tid_of(&q), &seen, 25, 60));
    drain(&mut s, now);
    resample(&mut s, at(now, 61), remote, 25, 60);
    assert_eq!(s.stats().new_hashes, 1, "nothing new the second time");
    assert!(sampled_at(&mut s, at(now, 120)).is_empty(), "before the interval");
    assert_eq!(sampled_at(&mut s, at(now, 122)), vec![remote], "it holds more");

    // Shows all it holds and brings nothing new: it waits the empty back-off
    // (30 s here), longer than its 10 s interval.
    let (mut s, now, remote, q) = with_one_node(quick_timeouts());
    s.handle_datagram(now, remote, &sample_of(&tid_of(&q), &seen, 1, 10));
    drain(&mut s, now);
    resample(&mut s, at(now, 61), remote, 1, 10);
    assert!(sampled_at(&mut s, at(now, 90)).is_empty(), "within the back-off");
    assert_eq!(sampled_at(&mut s, at(now, 92)), vec![remote], "after the back-off");
}

/// BEP 42: five nodes that answered us say which address they see; the core's
/// id becomes a secure id for it. A given address does so from the start.
#[test]
fn the_external_address_is_voted_from_replies_and_the_id_becomes_secure_for_it() {
    use trawl_engine::dht::id::is_secure_for;
    let now = Instant::now();
    let us: std::net::IpAddr = "81.2.69.160".parse().unwrap();
    let mut s = Scheduler::new(no_walks(), now);
    assert!(!is_secure_for(&s.node_id(), us));
    for i in 0..6u8 {
        assert!(s.add_node(
            now,
            CompactNode {
                id: [i + 1; 20],
                addr: addr(50, i)
            }
        ));
    }
    let mut buf = Vec::new();
    let mut answered = 0;
    while let Some(to) = s.poll_transmit(now, &mut buf) {
        let m = Message::decode(&buf).unwrap();
        let Kind::Query(q) = m.kind else { continue };
        if answered < 5 {
            assert_eq!(q.id(), Some(&[0xEE; 20]), "the old id until the vote settles");
        }
        let mut r = ResponseOut::new(&[7; 20]);
        r.interval = Some(60);
        r.num = Some(0);
        let mut reply = Vec::new();
        encode_response(
            &mut reply,
            m.transaction_id,
            &r,
            Some(SocketAddr::new(us, 40_000)),
            None,
        );
        s.handle_datagram(now, to, &reply);
        answered += 1;
        assert_eq!(s.stats().id_changes, u64::from(answered >= 5), "after {answered} votes");
    }
    assert_eq!(answered, 6);
    assert!(is_secure_for(&s.node_id(), us));
    assert_eq!(s.external_ip(), Some(us));
    // The next query (after the empty back-off) carries the new id.
    let later = now + Duration::from_secs(400);
    s.handle_timeout(later);
    assert!(s.poll_transmit(later, &mut buf).is_some());
    let m = Message::decode(&buf).unwrap();
    assert!(matches!(m.kind, Kind::Query(q) if q.id() == Some(&s.node_id())));

    let given = Scheduler::new(
        CrawlConfig {
            external_ip: Some(us),
            ..config()
        },
        now,
    );
    assert!(is_secure_for(&given.node_id(), us), "secure from the start");
    assert_eq!(given.external_ip(), Some(us));
}
