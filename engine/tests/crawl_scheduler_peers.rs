//! The crawl scheduler getting peers, on real KRPC bytes: plain `get_peers`
//! apart from scrapes, provisional names, and lookups across cores.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use trawl_engine::codec::compact::CompactNode;
use trawl_engine::codec::krpc::{encode_response, Kind, Message, Query, ResponseOut};
use trawl_engine::crawl::{owner, CrawlConfig, Scheduler};

mod scheduler_common;

use scheduler_common::*;
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
