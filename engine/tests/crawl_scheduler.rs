//! The crawl scheduler's rules, one at a time, on real KRPC bytes: transaction
//! matching, read-only and answering modes, address filtering, owner handover,
//! backpressure, BEP 51 detection and interval handling.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use trawl_engine::codec::compact::CompactNode;
use trawl_engine::codec::krpc::{encode_error, encode_query, encode_response, Kind, Message, Query, ResponseOut, Want};
use trawl_engine::codec::wire::ERROR_METHOD_UNKNOWN;
use trawl_engine::crawl::{owner, CrawlConfig, PeerFound, Scheduler, Via, MAX_QUEUED_REPLIES};

fn addr(a: u8, b: u8) -> SocketAddr {
    SocketAddr::new(Ipv4Addr::new(127, a, b, 1).into(), 6881)
}

fn config() -> CrawlConfig {
    CrawlConfig {
        node_id: [0xEE; 20],
        allow_loopback: true,
        seed: 5,
        ..CrawlConfig::default()
    }
}

/// Walks (find_node) far in the future, so they do not occupy the node.
/// Not read-only: the scheduler answers queries.
fn answering() -> CrawlConfig {
    CrawlConfig {
        read_only: false,
        ..config()
    }
}

fn no_walks() -> CrawlConfig {
    CrawlConfig {
        walk_interval: Duration::from_secs(1 << 20),
        ..config()
    }
}

/// A scheduler that knows one node, and the sample query it sends it.
fn with_one_node(cfg: CrawlConfig) -> (Scheduler, Instant, SocketAddr, Vec<u8>) {
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

fn tid_of(query: &[u8]) -> Vec<u8> {
    Message::decode(query).unwrap().transaction_id.to_vec()
}

fn sample_reply(tid: &[u8], samples: &[[u8; 20]], nodes: &[CompactNode], interval: i64) -> Vec<u8> {
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
fn queries_are_ignored_when_read_only_and_a_querier_is_taken_in_only_after_our_ping() {
    let now = Instant::now();
    let from = addr(5, 5);
    let mut ping = Vec::new();
    encode_query(&mut ping, b"pq", &Query::Ping { id: &[3; 20] }, false, None);
    let mut buf = Vec::new();

    let mut ro = Scheduler::new(config(), now);
    ro.handle_datagram(now, from, &ping);
    assert_eq!(ro.poll_transmit(now, &mut buf), None);
    assert_eq!(ro.stats().queries_ignored, 1);
    assert_eq!(ro.known_nodes(), 0);

    let mut rw = Scheduler::new(answering(), now);
    rw.handle_datagram(now, from, &ping);
    assert_eq!(rw.poll_transmit(now, &mut buf), Some(from));
    let m = Message::decode(&buf).unwrap();
    assert_eq!(m.transaction_id, b"pq");
    assert!(matches!(m.kind, Kind::Response(ref r) if *r.id == [0xEE; 20]));
    // A source address can be forged (BEP 5): the querier is pinged first.
    assert_eq!(rw.known_nodes(), 0);
    assert_eq!(rw.poll_transmit(now, &mut buf), Some(from));
    let verify = Message::decode(&buf).unwrap();
    assert!(matches!(verify.kind, Kind::Query(Query::Ping { .. })));
    let verify_tid = verify.transaction_id.to_vec();
    assert_eq!(rw.stats().verify_pings_sent, 1);
    // The same querier again while the ping is out: one ping only.
    rw.handle_datagram(now, from, &ping);
    assert_eq!(rw.poll_transmit(now, &mut buf), Some(from));
    assert!(matches!(Message::decode(&buf).unwrap().kind, Kind::Response(_)));
    let mut pong = Vec::new();
    encode_response(&mut pong, &verify_tid, &ResponseOut::new(&[3; 20]), None, None);
    rw.handle_datagram(now, from, &pong);
    assert_eq!(rw.known_nodes(), 1, "it answered our ping");
    assert_eq!(rw.stats().verify_pings_sent, 1);
    // A read-only querier (BEP 43) is never pinged nor taken in.
    let mut ro_ping = Vec::new();
    encode_query(&mut ro_ping, b"pr", &Query::Ping { id: &[4; 20] }, true, None);
    rw.handle_datagram(now, addr(6, 6), &ro_ping);
    assert_eq!(rw.poll_transmit(now, &mut buf), Some(addr(6, 6)));
    assert!(matches!(Message::decode(&buf).unwrap().kind, Kind::Response(_)));
    assert_eq!(rw.stats().verify_pings_sent, 1);
}

/// A read-only querier's (so no verifying ping follows) query, answered: the reply.
fn ask(s: &mut Scheduler, now: Instant, from: SocketAddr, tid: &[u8], q: &Query<'_>) -> Vec<u8> {
    let mut bytes = Vec::new();
    encode_query(&mut bytes, tid, q, true, None);
    s.handle_datagram(now, from, &bytes);
    let mut buf = Vec::new();
    assert_eq!(s.poll_transmit(now, &mut buf), Some(from), "not answered");
    buf
}

fn get_peers<'a>(id: &'a [u8; 20], info_hash: &'a [u8; 20]) -> Query<'a> {
    Query::GetPeers {
        id,
        info_hash,
        want: Want::default(),
        scrape: false,
        noseed: false,
    }
}

#[test]
fn incoming_get_peers_and_announces_are_answered_with_tokens_and_harvested() {
    let now = Instant::now();
    let mut s = Scheduler::new(answering(), now);
    let (asker, announcer, later) = (addr(5, 5), addr(6, 6), addr(7, 7));
    let (h1, h2, h3) = ([0x11; 20], [0x22; 20], [0x33; 20]);
    let reply = ask(&mut s, now, asker, b"g1", &get_peers(&[5; 20], &h1));
    let Kind::Response(r) = Message::decode(&reply).unwrap().kind else {
        panic!("an error")
    };
    assert!(r.token.is_some() && r.values.is_empty());
    // Tokens are per IP: the one from a get_peers for h2 announces h3.
    let reply = ask(&mut s, now, announcer, b"g2", &get_peers(&[6; 20], &h2));
    let Kind::Response(r) = Message::decode(&reply).unwrap().kind else {
        panic!("an error")
    };
    let token = r.token.unwrap().to_vec();
    let announce = |token| Query::AnnouncePeer {
        id: &[6; 20],
        info_hash: &h3,
        port: 1,
        implied_port: true,
        token,
        seed: true,
    };
    let bad = ask(&mut s, now, announcer, b"a0", &announce(&b"nope"[..]));
    assert!(matches!(Message::decode(&bad).unwrap().kind, Kind::Error(ref e) if e.code == 203));
    let ok = ask(&mut s, now, announcer, b"a1", &announce(&token[..]));
    assert!(matches!(Message::decode(&ok).unwrap().kind, Kind::Response(_)));
    // The announcer, at the datagram's port (implied_port), is a peer of h3.
    let reply = ask(&mut s, now, later, b"g3", &get_peers(&[7; 20], &h3));
    let Kind::Response(r) = Message::decode(&reply).unwrap().kind else {
        panic!("an error")
    };
    assert_eq!(r.values.clone().collect::<Vec<_>>(), vec![announcer]);
    // sample_infohashes gives what was announced, with libtorrent's interval.
    let reply = ask(
        &mut s,
        now,
        later,
        b"si",
        &Query::SampleInfohashes {
            id: &[7; 20],
            target: &[0; 20],
            want: Want::default(),
        },
    );
    let Kind::Response(r) = Message::decode(&reply).unwrap().kind else {
        panic!("an error")
    };
    assert_eq!(r.samples.clone().collect::<Vec<_>>(), vec![&h3]);
    assert_eq!((r.interval, r.num), (Some(21_600), Some(1)));

    let st = s.stats();
    assert_eq!((st.harvested_get_peers, st.harvested_announces), (2, 1));
    assert_eq!(
        (st.new_hashes, st.duplicate_hashes),
        (3, 1),
        "h3 again in the last get_peers"
    );
    assert_eq!(st.announced_peers, 1);
    assert_eq!((st.queries_answered, st.query_errors_sent), (6, 1));
    let out = s.output();
    let found: Vec<([u8; 20], Via, SocketAddr)> =
        out.discoveries.iter().map(|d| (d.info_hash, d.via, d.source)).collect();
    assert_eq!(
        found,
        vec![
            (h1, Via::GetPeers, asker),
            (h2, Via::GetPeers, announcer),
            (h3, Via::Announce, announcer)
        ]
    );
    assert_eq!(
        out.peers,
        vec![PeerFound {
            info_hash: h3,
            peer: announcer
        }]
    );
}

#[test]
fn unknown_methods_get_204_and_malformed_queries_203() {
    let now = Instant::now();
    let mut s = Scheduler::new(answering(), now);
    let mut buf = Vec::new();
    let from = addr(5, 5);
    s.handle_datagram(now, from, b"d1:ad2:id20:aaaaaaaaaaaaaaaaaaaae1:q4:vote1:t2:v11:y1:qe");
    assert_eq!(s.poll_transmit(now, &mut buf), Some(from));
    let m = Message::decode(&buf).unwrap();
    assert!(matches!(m.kind, Kind::Error(ref e) if e.code == 204) && m.transaction_id == b"v1");
    // get_peers without its info_hash.
    s.handle_datagram(
        now,
        from,
        b"d1:ad2:id20:aaaaaaaaaaaaaaaaaaaae1:q9:get_peers1:t2:m11:y1:qe",
    );
    assert_eq!(s.poll_transmit(now, &mut buf), Some(from));
    let m = Message::decode(&buf).unwrap();
    assert!(matches!(m.kind, Kind::Error(ref e) if e.code == 203) && m.transaction_id == b"m1");
    // Not KRPC at all: silence.
    s.handle_datagram(now, from, b"\x00\x01garbage");
    while s.poll_transmit(now, &mut buf).is_some() {
        let m = Message::decode(&buf).unwrap();
        assert!(
            matches!(m.kind, Kind::Query(Query::Ping { .. })),
            "only our ping to the querier: {m:?}"
        );
    }
    assert_eq!(s.stats().query_errors_sent, 2);
}

/// Every reply is at most 3x its query, whatever the query asks for: a forged
/// source gains an attacker little. Lists are trimmed, never left empty.
#[test]
fn replies_are_at_most_three_times_their_query() {
    let now = Instant::now();
    let cfg = CrawlConfig {
        answer_burst: 1_000.0,
        ..answering()
    };
    let mut s = Scheduler::new(cfg, now);
    // 40 nodes that answered a sample of ours fill the answering table.
    for i in 0..40u8 {
        assert!(s.add_node(
            now,
            CompactNode {
                id: [i; 20],
                addr: addr(20, i)
            }
        ));
    }
    let mut buf = Vec::new();
    while let Some(to) = s.poll_transmit(now, &mut buf) {
        let id = [to.ip().to_string().rsplit('.').nth(1).unwrap().parse::<u8>().unwrap(); 20];
        let mut r = ResponseOut::new(&id);
        r.interval = Some(60);
        r.num = Some(0);
        let mut reply = Vec::new();
        encode_response(&mut reply, &tid_of(&buf), &r, None, None);
        s.handle_datagram(now, to, &reply);
    }
    // Kademlia keeps k (8) of them in the far bucket that holds them all.
    assert_eq!(s.answering().unwrap().contacts(), 8);
    // 60 announcers of one infohash.
    let h = [0x44; 20];
    for i in 0..60u8 {
        let from = addr(30, i);
        let reply = ask(&mut s, now, from, b"tk", &get_peers(&[9; 20], &h));
        let Kind::Response(r) = Message::decode(&reply).unwrap().kind else {
            panic!("an error")
        };
        let token = r.token.unwrap().to_vec();
        let q = Query::AnnouncePeer {
            id: &[9; 20],
            info_hash: &h,
            port: 6881,
            implied_port: false,
            token: &token,
            seed: false,
        };
        ask(&mut s, now, from, b"an", &q);
    }
    let both = Want { v4: true, v6: true };
    let queries = [
        Query::Ping { id: &[8; 20] },
        Query::FindNode {
            id: &[8; 20],
            target: &[0x55; 20],
            want: both,
        },
        Query::GetPeers {
            id: &[8; 20],
            info_hash: &h,
            want: both,
            scrape: true,
            noseed: false,
        },
        Query::GetPeers {
            id: &[8; 20],
            info_hash: &[0x66; 20],
            want: both,
            scrape: false,
            noseed: false,
        },
        Query::SampleInfohashes {
            id: &[8; 20],
            target: &[0x55; 20],
            want: both,
        },
    ];
    for q in &queries {
        let mut bytes = Vec::new();
        encode_query(&mut bytes, b"aa", q, true, None);
        let reply = ask(&mut s, now, addr(40, 1), b"aa", q);
        assert!(
            reply.len() <= 3 * bytes.len(),
            "{} bytes for a {}-byte {q:?}",
            reply.len(),
            bytes.len()
        );
        let Kind::Response(r) = Message::decode(&reply).unwrap().kind else {
            panic!("an error")
        };
        let lists = r.nodes.clone().count() + r.values.clone().count() + r.samples.clone().count();
        assert!(
            matches!(q, Query::Ping { .. }) || lists > 0,
            "nothing useful left for {q:?}"
        );
    }
}

/// Found by `trawl-bench flood`: without a limit, one address got 85% of 2,000
/// pings/s answered. Now each IP gets `answer_burst` at once, then `answer_rate`/s.
#[test]
fn answers_per_ip_are_rate_limited() {
    let now = Instant::now();
    let cfg = CrawlConfig {
        answer_rate: 5.0,
        answer_burst: 10.0,
        ..answering()
    };
    let mut s = Scheduler::new(cfg, now);
    let (flooder, other) = (addr(5, 5), addr(6, 6));
    let mut buf = Vec::new();
    let mut answered = |s: &mut Scheduler, from: SocketAddr, n: u32, at: Instant| {
        let mut count = 0;
        for i in 0..n {
            let mut ping = Vec::new();
            encode_query(&mut ping, &i.to_be_bytes(), &Query::Ping { id: &[3; 20] }, true, None);
            s.handle_datagram(at, from, &ping);
            while let Some(to) = s.poll_transmit(at, &mut buf) {
                assert_eq!(to, from);
                count += 1;
            }
        }
        count
    };
    assert_eq!(answered(&mut s, flooder, 100, now), 10, "the burst, then nothing");
    assert_eq!(s.stats().queries_ignored, 90);
    assert_eq!(answered(&mut s, other, 3, now), 3, "another IP has its own bucket");
    let later = now + Duration::from_secs(2);
    assert_eq!(answered(&mut s, flooder, 100, later), 10, "refilled at 5/s for 2 s");
}

/// Answers waiting for `poll_transmit` in answering mode.
const QUEUED_REPLIES_CAP: u64 = MAX_QUEUED_REPLIES as u64;

/// Queries from many IPs while the runtime does not drain: the reply queue
/// stops at its cap and the rest are ignored (counted), none is answered twice
/// or late, and answering resumes once the queue is drained.
#[test]
fn queued_replies_are_capped_and_answering_resumes_after_a_drain() {
    let now = Instant::now();
    let mut s = Scheduler::new(answering(), now);
    let ping = |tid: u32| {
        let mut q = Vec::new();
        // Read-only queriers (BEP 43) are not learned, so only replies go out.
        encode_query(&mut q, &tid.to_be_bytes(), &Query::Ping { id: &[3; 20] }, true, None);
        q
    };
    // 1,000 distinct IPs, one query each: every one has its per-IP answer token.
    let sources: Vec<SocketAddr> = (0..1000u32)
        .map(|i| addr((i / 250) as u8 + 10, (i % 250) as u8))
        .collect();
    for (i, from) in sources.iter().enumerate() {
        s.handle_datagram(now, *from, &ping(i as u32));
    }
    let queued = 1000 - s.stats().queries_ignored;
    assert_eq!(queued, QUEUED_REPLIES_CAP, "replies queued beyond the cap");
    let mut buf = Vec::new();
    let mut answered = Vec::new();
    while let Some(to) = s.poll_transmit(now, &mut buf) {
        let m = Message::decode(&buf).unwrap();
        assert!(matches!(m.kind, Kind::Response(_)));
        answered.push((to, u32::from_be_bytes(m.transaction_id.try_into().unwrap())));
        assert!(
            answered.len() as u64 <= QUEUED_REPLIES_CAP,
            "more replies than were queued"
        );
    }
    // The first ones in were answered, each to its own querier, in order.
    let expected: Vec<(SocketAddr, u32)> = (0..QUEUED_REPLIES_CAP as u32)
        .map(|i| (sources[i as usize], i))
        .collect();
    assert_eq!(answered, expected);
    assert_eq!(s.stats().replies_sent, QUEUED_REPLIES_CAP);
    assert_eq!(s.stats().queries_ignored, 1000 - QUEUED_REPLIES_CAP);
    assert_eq!(s.known_nodes(), 0);
    // Drained: an IP that was ignored (its token unspent) is answered now.
    let late = sources[999];
    s.handle_datagram(now, late, &ping(5000));
    assert_eq!(s.poll_transmit(now, &mut buf), Some(late));
    assert_eq!(Message::decode(&buf).unwrap().transaction_id, 5000u32.to_be_bytes());
    assert_eq!(s.poll_transmit(now, &mut buf), None);
    assert_eq!(s.stats().queries_ignored, 1000 - QUEUED_REPLIES_CAP);
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

/// The next query the scheduler sends at `at` (after its timers), decoded.
fn next_get_peers(s: &mut Scheduler, at: Instant) -> Option<(SocketAddr, Vec<u8>, [u8; 20], bool)> {
    let mut buf = Vec::new();
    s.handle_timeout(at);
    while let Some(to) = s.poll_transmit(at, &mut buf) {
        let m = Message::decode(&buf).unwrap();
        if let Kind::Query(Query::GetPeers { info_hash, scrape, .. }) = m.kind {
            return Some((to, m.transaction_id.to_vec(), *info_hash, scrape));
        }
    }
    None
}

fn peers_reply(
    tid: &[u8],
    from_id: [u8; 20],
    values: &[SocketAddr],
    nodes: &[CompactNode],
    name: Option<&[u8]>,
) -> Vec<u8> {
    let mut r = ResponseOut::new(&from_id);
    r.values = values;
    r.nodes = nodes;
    r.token = Some(b"tk");
    r.name = name;
    let mut out = Vec::new();
    encode_response(&mut out, tid, &r, None, None);
    out
}

fn no_scrapes() -> CrawlConfig {
    CrawlConfig {
        scrape_counts: false,
        ..no_walks()
    }
}

#[test]
fn a_plain_get_peers_gives_filtered_peers_and_the_provisional_name() {
    let (mut s, now, remote, q) = with_one_node(no_scrapes());
    s.handle_datagram(now, remote, &sample_reply(&tid_of(&q), &[[7; 20]], &[], 900));
    let (to, tid, h, scrape) = next_get_peers(&mut s, now).expect("a get_peers");
    assert_eq!((to, h, scrape), (remote, [7; 20], false), "plain, to the sampler");
    assert!(
        next_get_peers(&mut s, now).is_none(),
        "no scrape when counts are not wanted"
    );
    let good = SocketAddr::new(Ipv4Addr::new(127, 9, 0, 1).into(), 51413);
    let values = [
        good,
        good,                                                         // a repeat
        SocketAddr::new(Ipv4Addr::new(192, 168, 1, 1).into(), 51413), // private
        SocketAddr::new(Ipv4Addr::new(127, 9, 0, 2).into(), 0),       // port 0
        SocketAddr::new(Ipv6Addr::LOCALHOST.into(), 51413),           // v6 on a v4 query
    ];
    s.handle_datagram(
        now,
        remote,
        &peers_reply(&tid, [1; 20], &values, &[], Some(b"Some Film")),
    );
    let out = s.output();
    assert_eq!(
        out.peers.iter().map(|p| (p.info_hash, p.peer)).collect::<Vec<_>>(),
        vec![([7; 20], good)]
    );
    assert_eq!(out.names.len(), 1);
    assert_eq!(
        (out.names[0].info_hash, &out.names[0].name[..]),
        ([7; 20], &b"Some Film"[..])
    );
    assert_eq!((s.stats().peers_found, s.stats().peers_rejected), (1, 4));
    assert_eq!(s.peer_search().stats().lookups_started, 0, "the sampler had peers");
}

#[test]
fn a_sampler_without_peers_leads_to_a_lookup_that_finds_them_closer_to_the_hash() {
    let (mut s, now, remote, q) = with_one_node(no_scrapes());
    let h = [0x42; 20];
    s.handle_datagram(now, remote, &sample_reply(&tid_of(&q), &[h], &[], 900));
    let (_, tid, ..) = next_get_peers(&mut s, now).unwrap();
    // The sampler has no announcers; it names two nodes closer to the hash,
    // and its reply carries both nodes and (no) values: all of it is used.
    let mut near = [0x42; 20];
    near[19] = 0;
    let closer = [
        CompactNode {
            id: near,
            addr: addr(5, 1),
        },
        CompactNode {
            id: [0x43; 20],
            addr: addr(5, 2),
        },
    ];
    s.handle_datagram(now, remote, &peers_reply(&tid, [1; 20], &[], &closer, None));
    assert_eq!(s.stats().sampler_without_peers, 1);
    assert_eq!(s.peer_search().running(), 1);
    let t = now + Duration::from_millis(10);
    let mut asked = Vec::new();
    while let Some((to, tid, info_hash, scrape)) = next_get_peers(&mut s, t) {
        assert_eq!((info_hash, scrape), (h, false));
        asked.push((to, tid));
    }
    assert_eq!(
        asked.iter().map(|a| a.0).collect::<Vec<_>>(),
        vec![addr(5, 1), addr(5, 2)],
        "closest first"
    );
    let peer = SocketAddr::new(Ipv4Addr::new(127, 9, 9, 9).into(), 6000);
    s.handle_datagram(t, addr(5, 1), &peers_reply(&asked[0].1, near, &[peer], &[], Some(b"n")));
    assert_eq!(s.output().peers.last().map(|p| (p.info_hash, p.peer)), Some((h, peer)));
    // The other step times out; the lookup ends, found, and is not retried.
    let later = t + Duration::from_secs(10);
    s.handle_timeout(later);
    let st = s.peer_search().stats();
    assert_eq!(
        (st.lookups_found, st.lookups_empty, s.peer_search().running()),
        (1, 0, 0)
    );
    assert_eq!(s.peer_search().waiting(), 0);
    assert_eq!(s.stats().lookup_queries_sent, 2);
}

#[test]
fn a_lookup_that_finds_nothing_ends_in_bounded_time_and_is_retried_later() {
    let cfg = CrawlConfig {
        query_timeout: Duration::from_secs(1),
        ..no_scrapes()
    };
    let (mut s, now, remote, q) = with_one_node(cfg);
    let h = [0x55; 20];
    s.handle_datagram(now, remote, &sample_reply(&tid_of(&q), &[h], &[], 900));
    let (_, tid, ..) = next_get_peers(&mut s, now).unwrap();
    let dead = [CompactNode {
        id: [0x54; 20],
        addr: addr(6, 1),
    }];
    s.handle_datagram(now, remote, &peers_reply(&tid, [1; 20], &[], &dead, None));
    assert_eq!(next_get_peers(&mut s, now).map(|g| g.0), Some(addr(6, 1)));
    // Nobody answers: the lookup ends at the timeout, with no peers.
    s.handle_timeout(now + Duration::from_secs(2));
    let st = s.peer_search().stats();
    assert_eq!((st.lookups_empty, s.peer_search().running()), (1, 0));
    assert_eq!(s.peer_search().waiting(), 1, "kept for a retry, not abandoned");
    // Not before the retry wait; then a new lookup starts (from known nodes).
    let retry = s.peer_search().stats().lookups_started;
    s.handle_timeout(now + Duration::from_secs(9 * 60));
    assert_eq!(s.peer_search().stats().lookups_started, retry);
    s.handle_timeout(now + Duration::from_secs(11 * 60));
    assert_eq!(s.peer_search().stats().lookups_started, retry + 1);
}

#[test]
fn a_lookup_step_to_another_cores_node_is_sent_by_that_core_and_reported_back() {
    let now = Instant::now();
    let cores: Vec<CrawlConfig> = (0..2)
        .map(|core| CrawlConfig {
            core,
            cores: 2,
            node_id: [0xE0 + core as u8; 20],
            ..no_scrapes()
        })
        .collect();
    // A sampler owned by core 0, and a node closer to the hash owned by core 1.
    let sampler = (1..=255).map(|b| addr(7, b)).find(|a| owner(*a, 2) == 0).unwrap();
    let other = (1..=255).map(|b| addr(8, b)).find(|a| owner(*a, 2) == 1).unwrap();
    let mut a = Scheduler::new(cores[0].clone(), now);
    let mut b = Scheduler::new(cores[1].clone(), now);
    assert!(a.add_node(
        now,
        CompactNode {
            id: [1; 20],
            addr: sampler
        }
    ));
    let mut buf = Vec::new();
    assert_eq!(a.poll_transmit(now, &mut buf), Some(sampler));
    let h = [0x66; 20];
    a.handle_datagram(now, sampler, &sample_reply(&tid_of(&buf), &[h], &[], 900));
    let (_, tid, ..) = next_get_peers(&mut a, now).unwrap();
    let near = CompactNode {
        id: [0x67; 20],
        addr: other,
    };
    a.handle_datagram(now, sampler, &peers_reply(&tid, [1; 20], &[], &[near], None));
    assert!(
        next_get_peers(&mut a, now).is_none(),
        "core 0 never queries core 1's node"
    );
    let msgs: Vec<_> = a.output().lookups.drain(..).collect();
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].0, 1, "to the owner");
    for (_, m) in msgs {
        b.handle_lookup_msg(now, m);
    }
    let (to, tid, info_hash, _) = next_get_peers(&mut b, now).expect("core 1 sends the step");
    assert_eq!((to, info_hash), (other, h));
    let peer = SocketAddr::new(Ipv4Addr::new(127, 9, 9, 8).into(), 6000);
    b.handle_datagram(now, other, &peers_reply(&tid, near.id, &[peer], &[], None));
    assert_eq!(
        b.output().peers.len(),
        1,
        "peers go to storage from the core that got them"
    );
    let reports: Vec<_> = b.output().lookups.drain(..).collect();
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].0, 0, "the report goes home");
    for (_, m) in reports {
        a.handle_lookup_msg(now, m);
    }
    let st = a.peer_search().stats();
    assert_eq!(
        (st.lookups_found, st.queries_delegated, a.peer_search().running()),
        (1, 1, 0)
    );
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

/// A flood of `get_peers` for random infohashes fills at most half of the
/// lookup line: the rest is kept for the lookups the fetcher asks for
/// (imports), which still get their place, and every harvested hash is still
/// stored.
#[test]
fn harvested_lookups_leave_half_the_line_to_requested_ones() {
    use trawl_engine::crawl::PeerSearchConfig;
    let now = Instant::now();
    let cfg = CrawlConfig {
        peer_search: PeerSearchConfig {
            max_lookups: 1,
            max_waiting: 8,
            ..PeerSearchConfig::default()
        },
        answer_rate: 1e9,
        answer_burst: 1e9,
        ..answering()
    };
    let mut s = Scheduler::new(cfg, now);
    for i in 0..4u8 {
        s.add_node(
            now,
            CompactNode {
                id: [0x40 + i; 20],
                addr: addr(9, i),
            },
        );
    }
    let flooder = addr(5, 5);
    for i in 0..40u8 {
        let h = [i.wrapping_mul(7) | 1; 20];
        let mut bytes = Vec::new();
        encode_query(&mut bytes, &[b'f', i], &get_peers(&[5; 20], &h), true, None);
        s.handle_datagram(now, flooder, &bytes);
    }
    let st = s.stats();
    // One running, four waiting (half of eight), the rest skipped.
    assert_eq!(st.harvested_get_peers, 40, "{st:?}");
    assert_eq!(st.harvest_lookups_skipped, 35, "{st:?}");
    assert_eq!((s.peer_search().running(), s.peer_search().waiting()), (1, 4));
    assert_eq!(
        s.output().discoveries.len(),
        40,
        "every harvested hash still goes to the store"
    );
    // Requested lookups still find room.
    for i in 0..4u8 {
        s.look_up(now, [0xE0 + i; 20]);
    }
    assert_eq!(s.peer_search().waiting(), 8);
    assert_eq!(s.peer_search().stats().lookups_dropped, 0);
}
