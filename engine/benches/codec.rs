//! Codec micro benchmarks: nanoseconds per decoded message, per kind, and per
//! encoded reply. Run with `cargo bench -p trawl-engine --bench codec`.
//! Decoding includes walking every sample, node and peer, as a crawler does.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use trawl_engine::codec::compact::CompactNode;
use trawl_engine::codec::krpc::{self, Kind, Message, Query, ResponseOut, Want};

fn id(seed: u8) -> [u8; 20] {
    core::array::from_fn(|i| seed.wrapping_mul(31).wrapping_add(i as u8 * 7))
}

struct Fixture {
    nodes: Vec<CompactNode>,
    nodes6: Vec<CompactNode>,
    samples: Vec<[u8; 20]>,
    values: Vec<SocketAddr>,
    id: [u8; 20],
    target: [u8; 20],
}

fn fixture() -> Fixture {
    Fixture {
        nodes: (0..8u8)
            .map(|i| CompactNode {
                id: id(i),
                addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 1, i, 9)), 6881),
            })
            .collect(),
        nodes6: (0..8u8)
            .map(|i| CompactNode {
                id: id(100 + i),
                addr: SocketAddr::new(
                    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, u16::from(i))),
                    6881,
                ),
            })
            .collect(),
        samples: (0..20u8).map(|i| id(40 + i)).collect(),
        values: (0..50u8)
            .map(|i| SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 2, 0, i)), 40_000))
            .collect(),
        id: id(1),
        target: id(2),
    }
}

fn messages(f: &Fixture) -> Vec<(&'static str, Vec<u8>)> {
    let v = Some(&b"LT\x02\x00"[..]);
    let t = b"\x8a\x31";
    let mut out = Vec::new();
    let mut add = |name, write: &dyn Fn(&mut Vec<u8>)| {
        let mut b = Vec::new();
        write(&mut b);
        out.push((name, b));
    };
    add("sample_infohashes_reply", &|b| {
        let r = ResponseOut {
            nodes: &f.nodes,
            samples: &f.samples,
            interval: Some(21_600),
            num: Some(1_874),
            ..ResponseOut::new(&f.id)
        };
        krpc::encode_response(b, t, &r, None, v)
    });
    add("find_node_reply", &|b| {
        krpc::encode_response(
            b,
            t,
            &ResponseOut {
                nodes: &f.nodes,
                ..ResponseOut::new(&f.id)
            },
            None,
            v,
        )
    });
    add("find_node_reply_v6", &|b| {
        krpc::encode_response(
            b,
            t,
            &ResponseOut {
                nodes6: &f.nodes6,
                ..ResponseOut::new(&f.id)
            },
            None,
            v,
        )
    });
    add("get_peers_reply_50_values", &|b| {
        let r = ResponseOut {
            values: &f.values,
            token: Some(b"12345678"),
            ..ResponseOut::new(&f.id)
        };
        krpc::encode_response(b, t, &r, None, v)
    });
    add("get_peers_query", &|b| {
        let q = Query::GetPeers {
            id: &f.id,
            info_hash: &f.target,
            want: Want::default(),
            scrape: false,
            noseed: false,
        };
        krpc::encode_query(b, t, &q, false, v)
    });
    add("announce_peer_query", &|b| {
        let q = Query::AnnouncePeer {
            id: &f.id,
            info_hash: &f.target,
            port: 6881,
            implied_port: true,
            token: b"12345678",
            seed: false,
        };
        krpc::encode_query(b, t, &q, false, v)
    });
    add("ping_query", &|b| {
        krpc::encode_query(b, t, &Query::Ping { id: &f.id }, false, v)
    });
    out
}

/// Decodes and reads what a crawler reads.
#[inline]
fn decode_and_walk(bytes: &[u8]) -> u64 {
    let Ok(m) = Message::decode(bytes) else { return 0 };
    let mut acc = m.transaction_id.len() as u64;
    if let Kind::Response(r) = m.kind {
        for s in r.samples {
            acc = acc.wrapping_add(u64::from(s[0]));
        }
        for n in r.nodes.chain(r.nodes6) {
            acc = acc.wrapping_add(u64::from(n.id[0]) + u64::from(n.addr.port()));
        }
        for p in r.values {
            acc = acc.wrapping_add(u64::from(p.port()));
        }
    }
    acc
}

fn decode(c: &mut Criterion) {
    let f = fixture();
    let mut g = c.benchmark_group("decode");
    for (name, bytes) in messages(&f) {
        assert_ne!(decode_and_walk(&bytes), 0, "{name} must decode");
        g.throughput(Throughput::Elements(1));
        g.bench_function(name, |b| b.iter(|| decode_and_walk(black_box(&bytes))));
    }
    g.finish();
}

fn encode(c: &mut Criterion) {
    let f = fixture();
    let mut g = c.benchmark_group("encode");
    g.throughput(Throughput::Elements(1));
    let mut buf = Vec::with_capacity(1500);
    g.bench_function("sample_infohashes_reply", |b| {
        b.iter(|| {
            buf.clear();
            let r = ResponseOut {
                nodes: &f.nodes,
                samples: &f.samples,
                interval: Some(21_600),
                num: Some(1_874),
                ..ResponseOut::new(&f.id)
            };
            krpc::encode_response(&mut buf, b"aa", black_box(&r), None, None);
            buf.len()
        })
    });
    g.bench_function("get_peers_reply_50_values", |b| {
        b.iter(|| {
            buf.clear();
            let r = ResponseOut {
                values: &f.values,
                token: Some(b"12345678"),
                ..ResponseOut::new(&f.id)
            };
            krpc::encode_response(&mut buf, b"aa", black_box(&r), None, None);
            buf.len()
        })
    });
    g.bench_function("find_node_reply", |b| {
        b.iter(|| {
            buf.clear();
            let r = ResponseOut {
                nodes: &f.nodes,
                ..ResponseOut::new(&f.id)
            };
            krpc::encode_response(&mut buf, b"aa", black_box(&r), None, None);
            buf.len()
        })
    });
    g.bench_function("sample_infohashes_query", |b| {
        b.iter(|| {
            buf.clear();
            let q = Query::SampleInfohashes {
                id: &f.id,
                target: &f.target,
                want: Want::default(),
            };
            krpc::encode_query(&mut buf, b"aa", black_box(&q), false, None);
            buf.len()
        })
    });
    g.finish();
}

criterion_group!(benches, decode, encode);
criterion_main!(benches);
