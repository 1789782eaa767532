//! The node alone, on real-format packets: answers, errors, tokens, limits, and
//! requests made before bootstrap.

use super::*;
use crate::codec::krpc::ErrorReply;
use crate::codec::wire::{ERROR_METHOD_UNKNOWN, ERROR_PROTOCOL};

const PEER: &str = "127.0.0.2:7000";
/// The `ping` example of BEP 5.
const PING: &[u8] = b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe";

fn full_node(now: Instant) -> Node {
    let config = NodeConfig {
        read_only: false,
        allow_loopback: true,
        version: Some(*b"TR01"),
        ..NodeConfig::default()
    };
    Node::new(config, now, 1)
}

/// A read-only node (the default) whose only bootstrap router is `router`.
fn behind_router(now: Instant, router: SocketAddr, seed: u64) -> Node {
    let config = NodeConfig {
        allow_loopback: true,
        bootstrap: vec![router],
        ..NodeConfig::default()
    };
    Node::new(config, now, seed)
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// Sends `bytes` from `from` and returns the one reply, if any.
fn ask(node: &mut Node, now: Instant, from: SocketAddr, bytes: &[u8]) -> Option<Vec<u8>> {
    node.handle_datagram(now, from, bytes);
    let mut out = Vec::new();
    let mut reply = None;
    while let Some(to) = node.poll_transmit(now, &mut out) {
        if to == from && reply.is_none() && Message::decode(&out).is_ok_and(|m| !matches!(m.kind, Kind::Query(_))) {
            reply = Some(out.clone());
        }
    }
    reply
}

fn error_of(bytes: &[u8]) -> Option<(i64, Vec<u8>)> {
    match Message::decode(bytes).ok()?.kind {
        Kind::Error(ErrorReply { code, message }) => Some((code, message.to_vec())),
        _ => None,
    }
}

#[test]
fn bep5_ping_is_answered_with_our_id_version_and_requester_ip() {
    let now = Instant::now();
    let mut n = full_node(now);
    let reply = ask(&mut n, now, addr(PEER), PING).unwrap();
    let m = Message::decode(&reply).unwrap();
    assert_eq!(m.transaction_id, b"aa");
    assert_eq!(m.version, Some(&b"TR01"[..]));
    assert_eq!(m.requester_ip, Some(addr(PEER)));
    let Kind::Response(r) = m.kind else {
        panic!("not a response")
    };
    assert_eq!(*r.id, n.id());
    assert_eq!(n.stats().queries_answered, 1);
}

#[test]
fn read_only_nodes_answer_nothing_and_mark_queries_ro() {
    let now = Instant::now();
    assert!(NodeConfig::default().read_only, "read-only is the default");
    let mut n = behind_router(now, addr(PEER), 2);
    // Its own bootstrap query carries ro=1.
    let mut out = Vec::new();
    assert_eq!(n.poll_transmit(now, &mut out), Some(addr(PEER)));
    let m = Message::decode(&out).unwrap();
    assert!(m.read_only);
    assert!(matches!(m.kind, Kind::Query(Query::FindNode { .. })));
    assert!(ask(&mut n, now, addr(PEER), PING).is_none());
    assert_eq!(n.stats().drops.read_only, 1);
}

#[test]
fn unknown_and_malformed_queries_get_krpc_errors() {
    let now = Instant::now();
    let mut n = full_node(now);
    let unknown = ask(
        &mut n,
        now,
        addr(PEER),
        b"d1:ad2:id20:abcdefghij0123456789e1:q4:vote1:t2:ab1:y1:qe",
    )
    .unwrap();
    assert_eq!(
        error_of(&unknown),
        Some((ERROR_METHOD_UNKNOWN, b"method unknown".to_vec()))
    );
    // get_peers without info_hash.
    let bad = ask(
        &mut n,
        now,
        addr(PEER),
        b"d1:ad2:id20:abcdefghij0123456789e1:q9:get_peers1:t2:ac1:y1:qe",
    )
    .unwrap();
    assert_eq!(error_of(&bad).map(|e| e.0), Some(ERROR_PROTOCOL));
    assert_eq!(Message::decode(&bad).unwrap().transaction_id, b"ac");
    // Garbage is dropped silently.
    assert!(ask(&mut n, now, addr(PEER), b"not bencode at all").is_none());
    assert_eq!(n.stats().drops.malformed, 2);
}

#[test]
fn filtered_sources_are_dropped_before_decoding() {
    let now = Instant::now();
    let mut n = full_node(now);
    assert!(ask(&mut n, now, addr("10.0.0.1:6881"), PING).is_none());
    assert!(ask(&mut n, now, addr("224.0.0.1:6881"), PING).is_none());
    assert_eq!(n.stats().drops.filtered_addr, 2);
}

fn get_peers_token(n: &mut Node, now: Instant, from: SocketAddr, ih: &[u8; 20]) -> Vec<u8> {
    let mut q = Vec::new();
    let query = Query::GetPeers {
        id: &[7; 20],
        info_hash: ih,
        want: Want::default(),
        scrape: false,
        noseed: false,
    };
    krpc::encode_query(&mut q, b"gp", &query, false, None);
    let reply = ask(n, now, from, &q).unwrap();
    let Kind::Response(r) = Message::decode(&reply).unwrap().kind else {
        panic!()
    };
    r.token.unwrap().to_vec()
}

#[allow(clippy::too_many_arguments)] // one per field of the query
fn announce(
    n: &mut Node,
    now: Instant,
    from: SocketAddr,
    ih: &[u8; 20],
    port: u16,
    implied: bool,
    token: &[u8],
    seed: bool,
) -> Vec<u8> {
    let mut q = Vec::new();
    let query = Query::AnnouncePeer {
        id: &[7; 20],
        info_hash: ih,
        port,
        implied_port: implied,
        token,
        seed,
    };
    krpc::encode_query(&mut q, b"an", &query, false, None);
    ask(n, now, from, &q).unwrap()
}

#[test]
fn announce_needs_a_token_for_that_ip_and_honours_implied_port() {
    let t0 = Instant::now();
    let mut n = full_node(t0);
    let ih = [0x42; 20];
    let token = get_peers_token(&mut n, t0, addr(PEER), &ih);
    let other = addr("127.0.0.3:7000");
    let refused = announce(&mut n, t0, other, &ih, 9999, false, &token, false);
    assert_eq!(error_of(&refused).map(|e| e.0), Some(ERROR_PROTOCOL));
    assert_eq!(n.stats().drops.bad_token, 1);
    let ok = announce(&mut n, t0, addr(PEER), &ih, 9999, true, &token, false);
    assert!(error_of(&ok).is_none());
    let seeder = addr("127.0.0.4:7001");
    let seed_token = get_peers_token(&mut n, t0, seeder, &ih);
    let seed = announce(&mut n, t0, seeder, &ih, 5555, false, &seed_token, true);
    assert!(error_of(&seed).is_none());
    assert_eq!(n.stats().peers_stored, 2);

    // get_peers now returns values: the implied port is the UDP source port.
    let mut q = Vec::new();
    let query = Query::GetPeers {
        id: &[7; 20],
        info_hash: &ih,
        want: Want::default(),
        scrape: true,
        noseed: true,
    };
    krpc::encode_query(&mut q, b"g2", &query, false, None);
    let reply = ask(&mut n, t0, addr("127.0.0.9:1"), &q).unwrap();
    let Kind::Response(r) = Message::decode(&reply).unwrap().kind else {
        panic!()
    };
    assert_eq!(
        r.values.clone().collect::<Vec<_>>(),
        vec![addr(PEER)],
        "noseed leaves the seed out"
    );
    assert!(r.nodes.is_empty());
    let seeds = crate::codec::scrape::ScrapeBloom::from_bytes(r.bf_seeds.unwrap());
    let peers = crate::codec::scrape::ScrapeBloom::from_bytes(r.bf_peers.unwrap());
    assert!(seeds.contains("127.0.0.4".parse().unwrap()) && !seeds.contains("127.0.0.2".parse().unwrap()));
    assert!(peers.contains("127.0.0.2".parse().unwrap()) && peers.contains("127.0.0.4".parse().unwrap()));

    // The token survives one rotation (5 minutes), not two.
    let t6 = t0 + Duration::from_secs(6 * 60);
    n.handle_timeout(t6);
    assert!(error_of(&announce(&mut n, t6, addr(PEER), &ih, 1, false, &token, false)).is_none());
    let t11 = t0 + Duration::from_secs(11 * 60);
    n.handle_timeout(t11);
    assert_eq!(
        error_of(&announce(&mut n, t11, addr(PEER), &ih, 1, false, &token, false)).map(|e| e.0),
        Some(ERROR_PROTOCOL)
    );
}

#[test]
fn sample_infohashes_reports_interval_num_and_a_bounded_sample() {
    let now = Instant::now();
    let mut n = full_node(now);
    for k in 0..30u8 {
        let ih = [k; 20];
        let from = SocketAddr::new([127, 0, 2, k].into(), 6000);
        let token = get_peers_token(&mut n, now, from, &ih);
        announce(&mut n, now, from, &ih, 6000, false, &token, false);
    }
    let mut q = Vec::new();
    krpc::encode_query(
        &mut q,
        b"si",
        &Query::SampleInfohashes {
            id: &[7; 20],
            target: &[0; 20],
            want: Want::default(),
        },
        false,
        None,
    );
    let reply = ask(&mut n, now, addr("127.0.0.8:1"), &q).unwrap();
    let Kind::Response(r) = Message::decode(&reply).unwrap().kind else {
        panic!()
    };
    assert_eq!(r.num, Some(30));
    assert_eq!(r.interval, Some(6 * 3600));
    let samples: HashSet<[u8; 20]> = r.samples.copied().collect();
    assert_eq!(samples.len(), 20);
    assert!(samples.iter().all(|s| s[0] < 30 && s.iter().all(|b| *b == s[0])));
}

#[test]
fn answers_per_ip_are_rate_limited_and_replies_stay_bounded() {
    let now = Instant::now();
    let mut n = full_node(now);
    let answered = (0..50).filter(|_| ask(&mut n, now, addr(PEER), PING).is_some()).count();
    assert_eq!(answered, 20, "the burst, then silence");
    assert_eq!(n.stats().drops.rate_limited, 30);
    assert!(
        ask(&mut n, now, addr("127.0.0.3:1"), PING).is_some(),
        "other IPs unaffected"
    );
    assert!(
        ask(&mut n, now + Duration::from_secs(1), addr(PEER), PING).is_some(),
        "refilled"
    );

    // 200 peers on one infohash: the values list is cut to fit max_reply_len.
    let ih = [9; 20];
    for p in 0..200u16 {
        let from = SocketAddr::new([127, 0, 1, (p % 250) as u8].into(), 1000 + p);
        let token = get_peers_token(&mut n, now + Duration::from_secs(10), from, &ih);
        announce(
            &mut n,
            now + Duration::from_secs(10),
            from,
            &ih,
            1000 + p,
            false,
            &token,
            false,
        );
    }
    for (scrape, at_least) in [(false, 50), (true, 30)] {
        let mut q = Vec::new();
        let query = Query::GetPeers {
            id: &[7; 20],
            info_hash: &ih,
            want: Want::default(),
            scrape,
            noseed: false,
        };
        krpc::encode_query(&mut q, b"g3", &query, false, None);
        let reply = ask(&mut n, now + Duration::from_secs(10), addr("127.0.0.7:1"), &q).unwrap();
        assert!(reply.len() <= n.config().answer_limits.max_reply_len, "{}", reply.len());
        let Kind::Response(r) = Message::decode(&reply).unwrap().kind else {
            panic!()
        };
        let values = r.values.count();
        assert!((at_least..=50).contains(&values), "scrape {scrape}: {values} values");
    }
}

#[test]
fn lookups_before_bootstrap_wait_and_a_dead_router_is_retried() {
    let t0 = Instant::now();
    let router = addr(PEER);
    let mut n = behind_router(t0, router, 3);
    let l = n.lookup(t0, [1; 20]);
    assert_eq!(n.stats().queued_lookups, 1);
    let mut out = Vec::new();
    assert_eq!(n.poll_transmit(t0, &mut out), Some(router));
    assert_eq!(n.poll_transmit(t0, &mut out), None);
    // First timeout: a retry; second: failure, and a bootstrap retry later.
    let t = n.next_timeout().unwrap();
    assert_eq!(t, t0 + Duration::from_secs(2));
    n.handle_timeout(t);
    assert_eq!(n.poll_transmit(t, &mut out), Some(router));
    n.handle_timeout(t + Duration::from_secs(2));
    assert_eq!(n.stats().timeouts, 1);
    assert!(!n.is_bootstrapped());
    assert!(n.poll_event().is_none());
    assert_eq!(n.stats().queued_lookups, 1, "never dropped");
    let retry = t + Duration::from_secs(2) + n.config().bootstrap_retry;
    n.handle_timeout(retry);
    assert_eq!(n.poll_transmit(retry, &mut out), Some(router));
    // The router answers this time, with nobody else to offer.
    let m = Message::decode(&out).unwrap();
    let mut reply = Vec::new();
    krpc::encode_response(
        &mut reply,
        m.transaction_id,
        &krpc::ResponseOut::new(&[0x55; 20]),
        None,
        None,
    );
    n.handle_datagram(retry, router, &reply);
    // The router is not a routing-table node, so the table is still empty and
    // bootstrap has reached one node: it finishes and the lookup runs (and ends).
    let events: Vec<Event> = std::iter::from_fn(|| n.poll_event()).collect();
    assert_eq!(events.first(), Some(&Event::Bootstrapped));
    assert!(!n.routing_contains(&[0x55; 20]));
    while n.poll_transmit(retry, &mut out).is_some() {}
    let mut at = retry;
    for _ in 0..10 {
        at = n.next_timeout().unwrap().max(at);
        n.handle_timeout(at);
        while n.poll_transmit(at, &mut out).is_some() {}
    }
    let events: Vec<Event> = events
        .into_iter()
        .chain(std::iter::from_fn(|| n.poll_event()))
        .collect();
    assert!(
        events.contains(&Event::LookupDone { lookup: l, closest: 0 }),
        "{events:?}"
    );
}

#[test]
fn a_retry_answered_while_it_waits_is_not_sent() {
    let t0 = Instant::now();
    let router = addr(PEER);
    let mut n = behind_router(t0, router, 4);
    let mut out = Vec::new();
    assert_eq!(n.poll_transmit(t0, &mut out), Some(router));
    let tid = Message::decode(&out).unwrap().transaction_id.to_vec();
    let t = t0 + Duration::from_secs(2);
    n.handle_timeout(t);
    assert_eq!(n.stats().retries, 1);
    // The late reply to the first attempt lands before the retry leaves.
    let mut reply = Vec::new();
    krpc::encode_response(&mut reply, &tid, &krpc::ResponseOut::new(&[0x55; 20]), None, None);
    n.handle_datagram(t, router, &reply);
    assert_eq!(n.stats().replies_received, 1);
    let mut later = t;
    for _ in 0..5 {
        while n.poll_transmit(later, &mut out).is_some() {
            assert_ne!(
                Message::decode(&out).unwrap().transaction_id,
                &tid[..],
                "stale retry sent"
            );
        }
        later += Duration::from_secs(1);
    }
    assert!(!n.sends.iter().any(|s| matches!(s, Send::Resend(_))));
}
