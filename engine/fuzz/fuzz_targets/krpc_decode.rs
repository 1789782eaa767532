//! Fuzzes the bencode decoder and the KRPC views against the codec's contract:
//! - no panic on any input;
//! - no allocation at all while decoding and walking every view (a counting
//!   global allocator in the fuzz crate checks it), so none can be proportional to a declared length;
//! - every error points inside the input;
//! - bencode: re-encoding an accepted value reproduces the input exactly;
//! - KRPC: decode → encode → decode gives the same message, and encoding that
//!   again gives the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trawl_codec_fuzz::codec::bencode::{self, Value};
use trawl_codec_fuzz::codec::krpc::{self, Kind, Message};
use trawl_codec_fuzz::without_allocation;

/// Walks every borrowed view, as a consumer would, and folds what it reads.
fn walk_value(v: &Value<'_>, depth: usize) -> u64 {
    assert!(depth <= bencode::MAX_DEPTH);
    match v {
        Value::Int(i) => *i as u64,
        Value::Bytes(b) => b.len() as u64,
        Value::List(l) => l.iter().map(|x| walk_value(&x, depth + 1)).fold(1, u64::wrapping_add),
        Value::Dict(d) => d
            .iter()
            .map(|(k, x)| (k.len() as u64).wrapping_add(walk_value(&x, depth + 1)))
            .fold(2, u64::wrapping_add),
    }
}

fn walk_message(m: &Message<'_>) -> u64 {
    let mut acc = m.transaction_id.len() as u64;
    if let Kind::Response(r) = &m.kind {
        let (n, n6, v, s) = (r.nodes.len(), r.nodes6.len(), r.values.len(), r.samples.len());
        assert_eq!(r.nodes.clone().count(), n);
        assert_eq!(r.nodes6.clone().count(), n6);
        assert_eq!(r.values.clone().count(), v);
        assert_eq!(r.samples.clone().count(), s);
        acc += r.nodes.clone().map(|x| u64::from(x.addr.port())).sum::<u64>();
        acc += r.values.clone().map(|x| u64::from(x.port())).sum::<u64>();
    }
    acc
}

fn encode(m: &Message<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    krpc::reencode(m, &mut out);
    out
}

fuzz_target!(|data: &[u8]| {
    // Generic bencode.
    let value = without_allocation(|| {
        let v = bencode::decode(data);
        if let Ok(v) = &v {
            std::hint::black_box(walk_value(v, 0));
        }
        v
    });
    match value {
        Ok(v) => {
            let mut out = Vec::new();
            bencode::value(&mut out, &v);
            assert_eq!(out, data, "re-encoding must reproduce canonical input");
        }
        Err(e) => assert!(e.offset <= data.len()),
    }

    // KRPC.
    let message = without_allocation(|| {
        let m = Message::decode(data);
        if let Ok(m) = &m {
            std::hint::black_box(walk_message(m));
        }
        m
    });
    match message {
        Ok(m) => {
            let once = encode(&m);
            let again = Message::decode(&once).expect("an encoded message must decode");
            assert_eq!(again, m, "decode -> encode -> decode must be stable");
            assert_eq!(encode(&again), once, "encoding must be deterministic");
        }
        Err(e) => assert!(e.offset().is_none_or(|o| o <= data.len())),
    }
});
