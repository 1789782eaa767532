//! Codec micro benchmarks: nanoseconds per decoded message, per kind, and per
//! encoded reply. Run with `cargo bench -p trawl-engine --bench codec`.
//! Decoding includes walking every sample, node and peer, as a crawler does.
//! `length_prefix` weighs memchr for the decoder's one scanning step: every
//! `<len>:` prefix of the fixture messages read by the decoder's own
//! digit-accumulating loop (one pass) against `memchr` for the `:` followed by
//! parsing the digits it found (two passes), as the design asked to measure.

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

/// Offsets of every `<len>:` prefix in a bencoded value, by a plain walk.
fn prefix_offsets(b: &[u8], mut p: usize, out: &mut Vec<usize>) -> usize {
    match b[p] {
        b'i' => p + memchr::memchr(b'e', &b[p..]).unwrap() + 1,
        b'l' | b'd' => {
            p += 1;
            while b[p] != b'e' {
                p = prefix_offsets(b, p, out);
            }
            p + 1
        }
        _ => {
            out.push(p);
            let colon = p + memchr::memchr(b':', &b[p..]).unwrap();
            let len: usize = std::str::from_utf8(&b[p..colon]).unwrap().parse().unwrap();
            colon + 1 + len
        }
    }
}

/// The decoder's way: accumulate digits until the first non-digit (one pass).
#[inline]
fn len_by_scan(buf: &[u8], mut p: usize) -> Option<(u64, usize)> {
    let mut value: u64 = 0;
    while let Some(&c) = buf.get(p) {
        let digit = c.wrapping_sub(b'0');
        if digit > 9 {
            break;
        }
        value = value.wrapping_mul(10).wrapping_add(u64::from(digit));
        p += 1;
    }
    (buf.get(p) == Some(&b':')).then_some((value, p))
}

/// memchr for the `:` within the longest prefix allowed, then the digits.
#[inline]
fn len_by_memchr(buf: &[u8], start: usize) -> Option<(u64, usize)> {
    let window = &buf[start..buf.len().min(start + 21)];
    let colon = start + memchr::memchr(b':', window)?;
    let mut value: u64 = 0;
    for &c in &buf[start..colon] {
        let digit = c.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        value = value.wrapping_mul(10).wrapping_add(u64::from(digit));
    }
    Some((value, colon))
}

fn length_prefix(c: &mut Criterion) {
    let f = fixture();
    let msgs = messages(&f);
    let mut all: Vec<(&[u8], usize)> = Vec::new();
    for (_, bytes) in &msgs {
        let mut offsets = Vec::new();
        prefix_offsets(bytes, 0, &mut offsets);
        all.extend(offsets.into_iter().map(|o| (bytes.as_slice(), o)));
    }
    for &(b, o) in &all {
        assert_eq!(len_by_scan(b, o), len_by_memchr(b, o));
    }
    let mut g = c.benchmark_group("length_prefix");
    g.throughput(Throughput::Elements(all.len() as u64));
    g.bench_function("scan_loop", |bench| {
        bench.iter(|| {
            all.iter()
                .map(|&(b, o)| len_by_scan(black_box(b), o).map_or(0, |x| x.0))
                .sum::<u64>()
        })
    });
    g.bench_function("memchr", |bench| {
        bench.iter(|| {
            all.iter()
                .map(|&(b, o)| len_by_memchr(black_box(b), o).map_or(0, |x| x.0))
                .sum::<u64>()
        })
    });
    g.finish();
}

criterion_group!(benches, decode, encode, length_prefix);
criterion_main!(benches);
