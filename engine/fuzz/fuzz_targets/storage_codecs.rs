//! Fuzzes the storage value codecs (`trawl_storage::schema`): every decoder a
//! database read goes through, on bytes a corrupt or hostile file could hold.
//! The first input byte picks the codec; the rest is the stored key and value.
//! Contract checked:
//! - no panic, and no allocation larger than the value could describe (counts
//!   are checked against the bytes left);
//! - decode -> encode -> decode gives the same record (for staging entries,
//!   once the encoder's caps on error text and peers are applied), and keys
//!   round-trip byte for byte.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trawl_codec_fuzz::with_allocations_below;
use trawl_storage::schema::{self, INFOHASH_LEN, MAX_STAGED_PEERS, NODE_KEY_LEN};
use trawl_storage::InfoHash;

/// Any single allocation a decoder makes must fit in this many bytes per input
/// byte (a `Vec<SocketAddr>` or `Vec<FileEntry>` entry is at most 48 bytes and
/// needs at least one input byte), plus a constant for error text.
const ALLOC_PER_INPUT_BYTE: usize = 64;
const ALLOC_SLACK: usize = 1024;

fuzz_target!(|input: &[u8]| {
    let Some((&selector, data)) = input.split_first() else {
        return;
    };
    let bound = ALLOC_PER_INPUT_BYTE * data.len() + ALLOC_SLACK;
    let hash: InfoHash = [0xab; INFOHASH_LEN];
    match selector % 7 {
        0 => {
            if let Ok(r) = schema::decode_infohash(data) {
                assert_eq!(schema::encode_infohash(&r).as_slice(), data);
            }
        }
        1 => {
            if let Ok(s) = schema::decode_scrape(data) {
                assert_eq!(schema::encode_scrape(&s).as_slice(), data);
            }
        }
        2 => {
            let (k, v) = data.split_at(data.len().min(NODE_KEY_LEN));
            if let Ok(n) = with_allocations_below(bound, || schema::decode_node(k, v)) {
                assert_eq!(schema::node_key(&n).as_slice(), k);
                let mut out = Vec::new();
                schema::encode_node(&n, &mut out);
                // Old address-only values gain the default state suffix; newer ones match.
                assert!(out.starts_with(v), "a node value re-encodes to itself (plus state)");
                assert_eq!(schema::decode_node(k, &out).ok(), Some(n), "node round trip");
            }
        }
        3 => {
            if let Ok(e) = with_allocations_below(bound, || schema::decode_staging(hash, data)) {
                let mut out = Vec::new();
                schema::encode_staging(&e, &mut out);
                let again = schema::decode_staging(hash, &out).expect("an encoded staging entry must decode");
                assert_eq!(again.due, e.due);
                assert_eq!(again.enqueued_at, e.enqueued_at);
                assert_eq!(again.attempts, e.attempts);
                let keep = e.peers.len().saturating_sub(MAX_STAGED_PEERS);
                assert_eq!(again.peers, e.peers[keep..]);
                assert_eq!(again.last_error.is_some(), e.last_error.is_some());
                if let (Some(a), Some(b)) = (&again.last_error, &e.last_error) {
                    assert!(b.starts_with(a.as_str()), "error text may only be truncated");
                }
                let mut twice = Vec::new();
                schema::encode_staging(&again, &mut twice);
                assert_eq!(twice, out, "re-encoding a decoded entry must be stable");
            }
        }
        4 => {
            let class = schema::torrent_class(data);
            if let Ok(t) = with_allocations_below(bound, || schema::decode_torrent(hash, data)) {
                assert_eq!(class, Some(t.class), "torrent_class must agree with the full decoder");
                let mut out = Vec::new();
                schema::encode_torrent(&t, &mut out);
                let again = schema::decode_torrent(hash, &out).expect("an encoded torrent must decode");
                assert_eq!(again, t);
            }
        }
        5 => {
            if let Some((due, h)) = schema::decode_due_key(data) {
                assert_eq!(schema::due_key(due, &h).as_slice(), data);
            }
        }
        _ => {
            if let Some(h) = schema::infohash_from_key(data) {
                assert_eq!(h.as_slice(), data);
            }
        }
    }
});
