//! `trawl-bench decode`: KRPC decode throughput of trawl against serde_bencode
//! and bendy, on one thread, in the same run.
//!
//! Owns: the corpus of typical messages, the owned typed structs the peers
//! decode into (the way their users write them), and the timing loop.
//! Must not: touch the network.
//!
//! Fairness: every decoder ends with the same digest of what a crawler reads
//! (ids, every sample, every node and peer address, token, interval, num), so the
//! work cannot be optimised away and the three are checked to agree before any
//! timing. Decoders run in interleaved batches, round after round, so drift on a
//! busy machine hits all of them alike.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure};
use serde::Deserialize;
use serde_bytes::ByteBuf;
use trawl_engine::codec::compact::{self, CompactNode};
use trawl_engine::codec::krpc::{self, Kind, Message, Query, ResponseOut, Want};
use trawl_engine::codec::wire::{COMPACT_NODE_V4_LEN, ID_LEN, SAMPLE_LEN};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Interleaved rounds; each round runs every decoder on every message kind once.
    #[arg(long, default_value_t = 10)]
    pub rounds: u32,
    /// Wall time of one batch (one decoder, one message kind) in milliseconds.
    #[arg(long, default_value_t = 40)]
    pub batch_ms: u64,
}

/// The message kinds of the corpus, headline first.
const KINDS: [&str; 5] = [
    "sample_infohashes_reply",
    "find_node_reply",
    "get_peers_reply_50_values",
    "get_peers_query",
    "announce_peer_query",
];

const DECODERS: [&str; 3] = ["trawl", "serde_bencode", "bendy"];

/// Deterministic filler so that the corpus has no runs a decoder could exploit.
fn filler(seed: u8) -> [u8; ID_LEN] {
    let mut b = [0u8; ID_LEN];
    let mut x = u32::from(seed).wrapping_mul(2_654_435_761).wrapping_add(1);
    for v in &mut b {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *v = x as u8;
    }
    b
}

fn corpus() -> Vec<Vec<u8>> {
    let id = filler(1);
    let nodes: Vec<CompactNode> = (0..8u8)
        .map(|i| CompactNode {
            id: filler(10 + i),
            addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 1, i, 9)), 6881 + u16::from(i)),
        })
        .collect();
    let samples: Vec<[u8; SAMPLE_LEN]> = (0..20u8).map(|i| filler(40 + i)).collect();
    let values: Vec<SocketAddr> = (0..50u8)
        .map(|i| SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 2, 0, i)), 50_000 + u16::from(i)))
        .collect();
    let version = Some(&b"LT\x02\x00"[..]);
    let tid = b"\x8a\x31";
    let mut out = Vec::new();
    let mut next = |f: &mut dyn FnMut(&mut Vec<u8>)| {
        let mut buf = Vec::new();
        f(&mut buf);
        out.push(buf);
    };
    next(&mut |b| {
        let r = ResponseOut {
            nodes: &nodes,
            samples: &samples,
            interval: Some(21_600),
            num: Some(1_874),
            ..ResponseOut::new(&id)
        };
        krpc::encode_response(b, tid, &r, None, version)
    });
    next(&mut |b| {
        krpc::encode_response(
            b,
            tid,
            &ResponseOut {
                nodes: &nodes,
                ..ResponseOut::new(&id)
            },
            None,
            version,
        )
    });
    next(&mut |b| {
        let r = ResponseOut {
            values: &values,
            token: Some(&b"\x01\x02\x03\x04\x05\x06\x07\x08"[..]),
            ..ResponseOut::new(&id)
        };
        krpc::encode_response(b, tid, &r, None, version)
    });
    let target = filler(99);
    next(&mut |b| {
        let q = Query::GetPeers {
            id: &id,
            info_hash: &target,
            want: Want::default(),
            scrape: false,
            noseed: false,
        };
        krpc::encode_query(b, tid, &q, false, version)
    });
    next(&mut |b| {
        let q = Query::AnnouncePeer {
            id: &id,
            info_hash: &target,
            port: 6881,
            implied_port: true,
            token: b"\x01\x02\x03\x04\x05\x06\x07\x08",
            seed: false,
        };
        krpc::encode_query(b, tid, &q, false, version)
    });
    out
}

/// What a crawler reads, folded into one number.
#[derive(Default, Clone, Copy, PartialEq, Eq, Debug)]
struct Digest(u64);

impl Digest {
    /// The length and the first 8 bytes: a read of the data that costs the
    /// same for every decoder (a serial hash would dominate the fast one).
    #[inline]
    fn bytes(&mut self, b: &[u8]) {
        let head = b.first_chunk::<8>().map_or(0, |h| u64::from_le_bytes(*h));
        self.int(head ^ ((b.len() as u64) << 56));
    }
    #[inline]
    fn int(&mut self, v: u64) {
        self.0 = self.0.rotate_left(1).wrapping_add(v);
    }
    #[inline]
    fn addr(&mut self, a: SocketAddr) {
        match a.ip() {
            IpAddr::V4(ip) => self.int(u64::from(u32::from(ip))),
            IpAddr::V6(ip) => self.int(u128::from(ip) as u64),
        }
        self.int(u64::from(a.port()));
    }
}

fn digest_trawl(bytes: &[u8]) -> Option<Digest> {
    let m = Message::decode(bytes).ok()?;
    let mut d = Digest::default();
    d.bytes(m.transaction_id);
    match m.kind {
        Kind::Response(r) => {
            d.bytes(r.id);
            for s in r.samples {
                d.bytes(s);
            }
            for n in r.nodes {
                d.bytes(&n.id);
                d.addr(n.addr);
            }
            for p in r.values {
                d.addr(p);
            }
            if let Some(t) = r.token {
                d.bytes(t);
            }
            d.int(r.interval.unwrap_or(-1) as u64);
            d.int(r.num.unwrap_or(-1) as u64);
        }
        Kind::Query(q) => {
            d.bytes(q.method());
            if let Some(id) = q.id() {
                d.bytes(id);
            }
            match q {
                Query::GetPeers { info_hash, .. } => d.bytes(info_hash),
                Query::AnnouncePeer {
                    info_hash,
                    port,
                    implied_port,
                    token,
                    ..
                } => {
                    d.bytes(info_hash);
                    d.int(u64::from(port));
                    d.int(u64::from(implied_port));
                    d.bytes(token);
                }
                _ => {}
            }
        }
        Kind::Error(e) => d.int(e.code as u64),
    }
    Some(d)
}

// ---- The peers' owned typed structs -------------------------------------

/// One owned struct for every message, as serde_bencode users write it.
#[derive(Deserialize, Default)]
struct OwnedMsg {
    t: ByteBuf,
    y: ByteBuf,
    #[serde(default)]
    q: Option<ByteBuf>,
    #[serde(default)]
    a: Option<OwnedArgs>,
    #[serde(default)]
    r: Option<OwnedReply>,
    #[serde(default)]
    v: Option<ByteBuf>,
}

#[derive(Deserialize, Default)]
struct OwnedArgs {
    id: ByteBuf,
    #[serde(default)]
    target: Option<ByteBuf>,
    #[serde(default)]
    info_hash: Option<ByteBuf>,
    #[serde(default)]
    port: Option<i64>,
    #[serde(default)]
    implied_port: Option<i64>,
    #[serde(default)]
    token: Option<ByteBuf>,
}

#[derive(Deserialize, Default)]
struct OwnedReply {
    id: ByteBuf,
    #[serde(default)]
    nodes: Option<ByteBuf>,
    #[serde(default)]
    values: Option<Vec<ByteBuf>>,
    #[serde(default)]
    token: Option<ByteBuf>,
    #[serde(default)]
    samples: Option<ByteBuf>,
    #[serde(default)]
    interval: Option<i64>,
    #[serde(default)]
    num: Option<i64>,
}

/// The same reads as [`digest_trawl`], over the owned struct: compact strings
/// are split and parsed the way users of these crates do it.
fn digest_owned(m: &OwnedMsg) -> Option<Digest> {
    let mut d = Digest::default();
    d.bytes(&m.t);
    match m.y.as_slice() {
        b"r" => {
            let r = m.r.as_ref()?;
            d.bytes(&r.id);
            if let Some(s) = &r.samples {
                for s in s.chunks_exact(SAMPLE_LEN) {
                    d.bytes(s);
                }
            }
            if let Some(n) = &r.nodes {
                for n in n.chunks_exact(COMPACT_NODE_V4_LEN) {
                    d.bytes(&n[..ID_LEN]);
                    d.addr(compact::peer_from_bytes(&n[ID_LEN..])?);
                }
            }
            for p in r.values.iter().flatten() {
                d.addr(compact::peer_from_bytes(p)?);
            }
            if let Some(t) = &r.token {
                d.bytes(t);
            }
            d.int(r.interval.unwrap_or(-1) as u64);
            d.int(r.num.unwrap_or(-1) as u64);
        }
        b"q" => {
            let a = m.a.as_ref()?;
            let method = m.q.as_ref()?;
            d.bytes(method);
            d.bytes(&a.id);
            match method.as_slice() {
                b"get_peers" => d.bytes(a.info_hash.as_ref()?),
                b"announce_peer" => {
                    d.bytes(a.info_hash.as_ref()?);
                    d.int(a.port.unwrap_or(0) as u64);
                    d.int(u64::from(a.implied_port.unwrap_or(0) != 0));
                    d.bytes(a.token.as_ref()?);
                }
                _ => {}
            }
        }
        _ => return None,
    }
    Some(d)
}

fn digest_serde_bencode(bytes: &[u8]) -> Option<Digest> {
    let m: OwnedMsg = serde_bencode::from_bytes(bytes).ok()?;
    digest_owned(&m)
}

mod bendy_impl {
    //! The same owned structs, decoded with bendy's `FromBencode`.
    use bendy::decoding::{Error, FromBencode, Object};
    use serde_bytes::ByteBuf;

    use super::{OwnedArgs, OwnedMsg, OwnedReply};

    fn owned(o: Object<'_, '_>) -> Result<ByteBuf, Error> {
        Ok(ByteBuf::from(o.try_into_bytes()?.to_vec()))
    }

    fn int(o: Object<'_, '_>) -> Result<i64, Error> {
        i64::decode_bencode_object(o)
    }

    impl FromBencode for OwnedArgs {
        fn decode_bencode_object(o: Object<'_, '_>) -> Result<Self, Error> {
            let mut a = OwnedArgs::default();
            let mut dict = o.try_into_dictionary()?;
            while let Some((k, v)) = dict.next_pair()? {
                match k {
                    b"id" => a.id = owned(v)?,
                    b"target" => a.target = Some(owned(v)?),
                    b"info_hash" => a.info_hash = Some(owned(v)?),
                    b"port" => a.port = Some(int(v)?),
                    b"implied_port" => a.implied_port = Some(int(v)?),
                    b"token" => a.token = Some(owned(v)?),
                    _ => {}
                }
            }
            Ok(a)
        }
    }

    impl FromBencode for OwnedReply {
        fn decode_bencode_object(o: Object<'_, '_>) -> Result<Self, Error> {
            let mut r = OwnedReply::default();
            let mut dict = o.try_into_dictionary()?;
            while let Some((k, v)) = dict.next_pair()? {
                match k {
                    b"id" => r.id = owned(v)?,
                    b"nodes" => r.nodes = Some(owned(v)?),
                    b"values" => {
                        let mut list = v.try_into_list()?;
                        let mut values = Vec::new();
                        while let Some(item) = list.next_object()? {
                            values.push(owned(item)?);
                        }
                        r.values = Some(values);
                    }
                    b"token" => r.token = Some(owned(v)?),
                    b"samples" => r.samples = Some(owned(v)?),
                    b"interval" => r.interval = Some(int(v)?),
                    b"num" => r.num = Some(int(v)?),
                    _ => {}
                }
            }
            Ok(r)
        }
    }

    impl FromBencode for OwnedMsg {
        fn decode_bencode_object(o: Object<'_, '_>) -> Result<Self, Error> {
            let mut m = OwnedMsg::default();
            let mut dict = o.try_into_dictionary()?;
            while let Some((k, v)) = dict.next_pair()? {
                match k {
                    b"t" => m.t = owned(v)?,
                    b"y" => m.y = owned(v)?,
                    b"q" => m.q = Some(owned(v)?),
                    b"a" => m.a = Some(OwnedArgs::decode_bencode_object(v)?),
                    b"r" => m.r = Some(OwnedReply::decode_bencode_object(v)?),
                    b"v" => m.v = Some(owned(v)?),
                    _ => {}
                }
            }
            Ok(m)
        }
    }
}

fn digest_bendy(bytes: &[u8]) -> Option<Digest> {
    use bendy::decoding::FromBencode;
    let m = OwnedMsg::from_bencode(bytes).ok()?;
    digest_owned(&m)
}

fn decoder(i: usize) -> fn(&[u8]) -> Option<Digest> {
    match i {
        0 => digest_trawl,
        1 => digest_serde_bencode,
        _ => digest_bendy,
    }
}

/// Runs `f` on `msg` for at least `budget`, returning (messages, elapsed).
#[inline(never)]
fn batch(f: fn(&[u8]) -> Option<Digest>, msg: &[u8], budget: Duration) -> (u64, Duration) {
    const CHECK_EVERY: u64 = 256;
    let start = Instant::now();
    let mut n = 0u64;
    loop {
        for _ in 0..CHECK_EVERY {
            black_box(f(black_box(msg)));
        }
        n += CHECK_EVERY;
        let elapsed = start.elapsed();
        if elapsed >= budget {
            return (n, elapsed);
        }
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    ensure!(
        args.rounds > 0 && args.batch_ms > 0,
        "--rounds and --batch-ms must be positive"
    );
    let corpus = corpus();
    // The three decoders must read the same thing before any of them is timed.
    for (kind, msg) in KINDS.iter().zip(&corpus) {
        let expected = digest_trawl(msg);
        ensure!(expected.is_some(), "trawl failed to decode {kind}");
        for (i, name) in DECODERS.iter().enumerate().skip(1) {
            let got = decoder(i)(msg);
            if got != expected {
                bail!("{name} disagrees with trawl on {kind}: {got:?} vs {expected:?}");
            }
        }
    }

    let budget = Duration::from_millis(args.batch_ms);
    // [decoder][kind] = (messages, time)
    let mut totals = [[(0u64, Duration::ZERO); KINDS.len()]; DECODERS.len()];
    for round in 0..args.rounds {
        for k in 0..KINDS.len() {
            // Rotate who goes first so no decoder always follows the same one.
            for j in 0..DECODERS.len() {
                let d = (j + round as usize + k) % DECODERS.len();
                let (n, t) = batch(decoder(d), &corpus[k], budget);
                totals[d][k].0 += n;
                totals[d][k].1 += t;
            }
        }
    }

    let rate = |d: usize, k: usize| {
        let (n, t) = totals[d][k];
        n as f64 / t.as_secs_f64()
    };
    println!(
        "decode: {} rounds x {} ms batches, single thread, interleaved; rates in messages/s (ns/message)",
        args.rounds, args.batch_ms
    );
    for (k, kind) in KINDS.iter().enumerate() {
        let cells: Vec<String> = DECODERS
            .iter()
            .enumerate()
            .map(|(d, name)| format!("{name} {:.3} M/s ({:.0} ns)", rate(d, k) / 1e6, 1e9 / rate(d, k)))
            .collect();
        println!(
            "  {kind:<26} {:>4} B: {}; trawl/serde_bencode {:.1}x, trawl/bendy {:.1}x",
            corpus[k].len(),
            cells.join(", "),
            rate(0, k) / rate(1, k),
            rate(0, k) / rate(2, k)
        );
    }
    let mut json = serde_json::json!({
        "bench": "decode",
        "message_bytes": corpus[0].len(),
        "trawl_msgs_per_s": rate(0, 0).round(),
        "serde_bencode_msgs_per_s": rate(1, 0).round(),
        "bendy_msgs_per_s": rate(2, 0).round(),
        "ratio_vs_serde_bencode": (rate(0, 0) / rate(1, 0) * 100.0).round() / 100.0,
        "ratio_vs_bendy": (rate(0, 0) / rate(2, 0) * 100.0).round() / 100.0,
    });
    for (k, kind) in KINDS.iter().enumerate().skip(1) {
        json[format!("{kind}_trawl_msgs_per_s")] = rate(0, k).round().into();
        json[format!("{kind}_ratio_vs_serde_bencode")] = ((rate(0, k) / rate(1, k) * 100.0).round() / 100.0).into();
    }
    println!("{json}");
    Ok(())
}
