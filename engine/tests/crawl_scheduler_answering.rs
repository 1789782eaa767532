//! The crawl scheduler in answering mode, on real KRPC bytes: queries answered
//! with tokens and harvested, errors 203/204, the 3x reply bound, per-IP
//! limits, the reply queue cap, and lookups started from the harvest.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use trawl_engine::codec::compact::CompactNode;
use trawl_engine::codec::krpc::{encode_query, encode_response, Kind, Message, Query, ResponseOut, Want};
use trawl_engine::crawl::{CrawlConfig, PeerFound, Scheduler, Via, MAX_QUEUED_REPLIES};

mod scheduler_common;

use scheduler_common::*;
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
