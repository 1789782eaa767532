//! Micro benchmarks of the crawl core's per-datagram work: first-level dedup
//! (against the naive peer, an unbounded std `HashSet` with SipHash), the owner
//! hash, and one full sample round trip through the scheduler (poll_transmit,
//! then handle_datagram of a 20-sample, 8-node reply) against its floor in the
//! same run: the same KRPC encoding and decoding with no scheduler at all.
//! `harvest/get_peers_in` is the answering path's cost per harvested hash: an
//! incoming `get_peers` for a new infohash from a querier that is not
//! read-only, decoded, answered with a token, its hash through dedup into the
//! output, and every datagram it causes (the reply, the verification ping)
//! written out.
//!
//! Run: `cargo bench -p trawl-engine --bench crawl`

use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use trawl_engine::codec::compact::CompactNode;
use trawl_engine::codec::krpc::{encode_query, encode_response, Kind, Message, Query, ResponseOut, Want};
use trawl_engine::crawl::dedup::Dedup;
use trawl_engine::crawl::{owner, CrawlConfig, Scheduler};

fn hash(i: u64) -> [u8; 20] {
    let mut h = [0u8; 20];
    let a = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    h[..8].copy_from_slice(&a.to_le_bytes());
    h[8..16].copy_from_slice(&a.rotate_left(29).to_le_bytes());
    h[16..].copy_from_slice(&(i as u32).to_le_bytes());
    h
}

fn dedup(c: &mut Criterion) {
    let mut g = c.benchmark_group("dedup");
    g.throughput(Throughput::Elements(1));
    // A default-size set (1,835,008 hashes) in steady state: every insert is new, so
    // generations rotate as they would under a flood of discoveries.
    let mut d = Dedup::new(1_835_008);
    let mut i = 0u64;
    g.bench_function("insert_new", |b| {
        b.iter(|| {
            i += 1;
            black_box(d.insert(&hash(i)))
        })
    });
    // The peer holds as many hashes as Dedup may (its capacity), allocated up
    // front like Dedup, so both pay the same cache misses.
    let mut peer = std::collections::HashSet::with_capacity(1_835_008);
    let mut i = 0u64;
    g.bench_function("peer_std_hashset_insert_new", |b| {
        b.iter(|| {
            i += 1;
            // Unbounded: the peer is cleared when Dedup would be full.
            if peer.len() >= 1_835_008 {
                peer.clear();
            }
            black_box(peer.insert(hash(i)))
        })
    });
    let mut peer = std::collections::HashSet::with_capacity(1_835_008);
    for i in 0..400_000 {
        peer.insert(hash(i));
    }
    let mut i = 0u64;
    g.bench_function("peer_std_hashset_insert_seen", |b| {
        b.iter(|| {
            i = (i + 1) % 400_000;
            black_box(peer.insert(hash(i)))
        })
    });
    let mut d = Dedup::new(1_835_008);
    for i in 0..400_000 {
        d.insert(&hash(i));
    }
    let mut i = 0u64;
    g.bench_function("insert_seen", |b| {
        b.iter(|| {
            i = (i + 1) % 400_000;
            black_box(d.insert(&hash(i)))
        })
    });
    // What the crawl core does per sample_infohashes reply: 20 hashes at once,
    // their buckets prefetched together. Throughput is per hash, as above.
    let replies: Vec<[u8; 20]> = (0..400_000).map(hash).collect();
    g.throughput(Throughput::Elements(20));
    let mut at = 0usize;
    g.bench_function("insert_all_seen_reply_of_20", |b| {
        b.iter(|| {
            at = (at + 20) % (replies.len() - 20);
            let mut fresh = 0u32;
            d.insert_all(replies[at..at + 20].iter(), |_| fresh += 1);
            black_box(fresh)
        })
    });
    g.finish();
}

fn owner_hash(c: &mut Criterion) {
    let mut g = c.benchmark_group("owner");
    g.throughput(Throughput::Elements(1));
    let mut i = 0u32;
    g.bench_function("v4", |b| {
        b.iter(|| {
            i = i.wrapping_add(0x0101_0101);
            black_box(owner(SocketAddr::new(Ipv4Addr::from(i).into(), 6881), 8))
        })
    });
    g.finish();
}

fn scheduler_round_trip(c: &mut Criterion) {
    let start = Instant::now();
    let cfg = CrawlConfig {
        allow_loopback: true,
        per_ip_rate: 1e12,
        per_ip_burst: 1e12,
        productive_resample: Duration::ZERO,
        empty_backoff: Duration::ZERO,
        walk_interval: Duration::from_secs(1 << 20),
        seed: 1,
        ..CrawlConfig::default()
    };
    let mut s = Scheduler::new(cfg, start);
    let remote = SocketAddr::new(Ipv4Addr::new(127, 3, 0, 1).into(), 6881);
    let remote_id = [9u8; 20];
    s.add_node(
        start,
        CompactNode {
            id: remote_id,
            addr: remote,
        },
    );
    let samples: Vec<[u8; 20]> = (0..20).map(hash).collect();
    // Nodes the scheduler already knows, so the steady state is measured.
    let nodes: Vec<CompactNode> = (0..8)
        .map(|k| CompactNode {
            id: hash(1000 + k),
            addr: SocketAddr::new(Ipv4Addr::new(127, 4, 0, k as u8).into(), 6881),
        })
        .collect();
    let (mut query, mut reply) = (Vec::with_capacity(256), Vec::with_capacity(1024));
    let mut now = start;
    // One query out, its reply in. get_peers scrapes (queued only by the first
    // reply, whose samples are new) get an empty reply.
    let mut round = |s: &mut Scheduler, now: Instant| {
        s.handle_timeout(now);
        let to = s.poll_transmit(now, &mut query).expect("a query is due");
        let msg = Message::decode(&query).expect("valid query");
        let is_sample = matches!(msg.kind, Kind::Query(Query::SampleInfohashes { .. }));
        reply.clear();
        let mut r = ResponseOut::new(&remote_id);
        if is_sample {
            r.samples = &samples;
            r.nodes = &nodes;
            r.interval = Some(0);
            r.num = Some(20);
        }
        encode_response(&mut reply, msg.transaction_id, &r, None, None);
        s.handle_datagram(now, to, &reply);
        let out = s.output();
        out.discoveries.clear();
        out.handovers.clear();
        out.peers.clear();
        out.swarms.clear();
    };
    for _ in 0..200 {
        now += Duration::from_millis(1);
        round(&mut s, now);
    }
    assert_eq!(s.pending_scrapes(), 0);
    let mut g = c.benchmark_group("scheduler");
    g.throughput(Throughput::Elements(2));
    g.bench_function("sample_round_trip", |b| {
        b.iter(|| {
            now += Duration::from_millis(1);
            round(&mut s, now);
        })
    });
    // The floor: the same four codec steps (query out, decode it, reply out,
    // decode it) with no scheduler state behind them.
    let target = [5u8; 20];
    let my_id = [0xEEu8; 20];
    g.bench_function("codec_floor_round_trip", |b| {
        b.iter(|| {
            query.clear();
            let q = Query::SampleInfohashes {
                id: &my_id,
                target: &target,
                want: Default::default(),
            };
            encode_query(&mut query, b"abcd", &q, true, None);
            let msg = Message::decode(&query).expect("valid query");
            reply.clear();
            let mut r = ResponseOut::new(&remote_id);
            r.samples = &samples;
            r.nodes = &nodes;
            r.interval = Some(0);
            r.num = Some(20);
            encode_response(&mut reply, msg.transaction_id, &r, None, None);
            let m = Message::decode(&reply).expect("valid reply");
            if let Kind::Response(r) = m.kind {
                black_box(r.samples.count() + r.nodes.count());
            }
        })
    });
    g.finish();
}

fn harvest(c: &mut Criterion) {
    let start = Instant::now();
    let cfg = CrawlConfig {
        allow_loopback: true,
        read_only: false,
        per_ip_rate: 1e12,
        per_ip_burst: 1e12,
        answer_rate: 1e12,
        answer_burst: 1e12,
        walk_interval: Duration::from_secs(1 << 20),
        seed: 1,
        ..CrawlConfig::default()
    };
    let mut s = Scheduler::new(cfg, start);
    let (mut query, mut out) = (Vec::with_capacity(256), Vec::with_capacity(1500));
    let mut i = 0u64;
    let mut now = start;
    let mut g = c.benchmark_group("harvest");
    g.throughput(Throughput::Elements(1));
    g.bench_function("get_peers_in", |b| {
        b.iter(|| {
            i += 1;
            now += Duration::from_micros(10);
            // 65,536 queriers, each asking for a new infohash.
            let from = SocketAddr::new(Ipv4Addr::new(127, 5, (i >> 8) as u8, i as u8).into(), 6881);
            let (id, info_hash) = (hash(i & 0xFFFF), hash(1 << 40 | i));
            query.clear();
            let q = Query::GetPeers {
                id: &id,
                info_hash: &info_hash,
                want: Want::default(),
                scrape: false,
                noseed: false,
            };
            encode_query(&mut query, b"gp", &q, false, None);
            s.handle_datagram(now, from, &query);
            s.handle_timeout(now);
            while s.poll_transmit(now, &mut out).is_some() {
                black_box(out.len());
                out.clear();
            }
            let o = s.output();
            black_box(o.discoveries.len());
            o.discoveries.clear();
            o.handovers.clear();
            o.peers.clear();
            o.swarms.clear();
            o.names.clear();
            o.lookups.clear();
        })
    });
    g.finish();
    assert!(s.stats().harvested_get_peers > 0, "the bench harvested nothing");
}

criterion_group!(benches, dedup, owner_hash, scheduler_round_trip, harvest);
criterion_main!(benches);
