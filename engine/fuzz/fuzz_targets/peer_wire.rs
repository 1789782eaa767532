//! Fuzzes the peer wire views a metadata exchange reads from a peer
//! (`trawl_engine::metadata::wire`: BEP 3 handshake and framing, BEP 10
//! extended handshake, BEP 9 `ut_metadata`), fed the way a connection is: one
//! byte stream, handshake first, then frames. Contract checked:
//! - no panic on any input, and no allocation while parsing (so nothing sized
//!   from a declared length);
//! - `NeedMore` always asks for at least one byte, `consumed` stays inside the
//!   buffer, and a frame longer than the cap is refused;
//! - everything accepted re-encodes, through the wire encoders, to bytes that
//!   parse back to the same value;
//! - piece arithmetic stays inside the declared total size.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trawl_codec_fuzz::without_allocation;
use trawl_engine::metadata::wire::{self, ExtHandshake, Handshake, Message, MetadataMsg, Parse};

/// Frame cap chosen by the input's first byte, so small caps get exercised too.
fn cap(selector: u8) -> usize {
    match selector % 4 {
        0 => wire::DEFAULT_MAX_MESSAGE_LEN,
        1 => wire::METADATA_PIECE_LEN + 64,
        2 => 64,
        _ => 0,
    }
}

fn reparse_frame(out: &[u8]) -> Message<'_> {
    match Message::parse(out, wire::DEFAULT_MAX_MESSAGE_LEN) {
        Ok(Parse::Done { item, consumed }) => {
            assert_eq!(consumed, out.len(), "an encoded frame must parse whole");
            item
        }
        other => panic!("an encoded frame must parse: {other:?}"),
    }
}

fn check_ext_handshake(hs: &ExtHandshake<'_>) {
    let mut out = Vec::new();
    wire::write_ext_handshake(&mut out, hs.ut_metadata.unwrap_or(0), hs.metadata_size, hs.client);
    let Message::Extended { ext_id, payload } = reparse_frame(&out) else {
        panic!("an extended handshake must frame as extended");
    };
    assert_eq!(ext_id, wire::EXT_HANDSHAKE_ID);
    assert_eq!(
        ExtHandshake::parse(payload).as_ref(),
        Ok(hs),
        "extended handshake round trip"
    );
}

fn check_metadata(msg: &MetadataMsg<'_>) {
    let mut out = Vec::new();
    let ext = wire::OUR_UT_METADATA_ID;
    match *msg {
        MetadataMsg::Request { piece } => wire::write_metadata_request(&mut out, ext, piece),
        MetadataMsg::Reject { piece } => wire::write_metadata_reject(&mut out, ext, piece),
        MetadataMsg::Data {
            piece,
            total_size,
            data,
        } => {
            assert!(total_size > 0 && total_size <= wire::MAX_METADATA_SIZE);
            if let Some(range) = wire::piece_range(total_size, piece) {
                assert!(range.start < range.end && range.end <= total_size);
                assert!(range.len() <= wire::METADATA_PIECE_LEN);
                assert!(piece < wire::piece_count(total_size));
            } else {
                assert!(piece >= wire::piece_count(total_size));
            }
            wire::write_metadata_data(&mut out, ext, piece, total_size, data)
        }
    }
    let Message::Extended { ext_id, payload } = reparse_frame(&out) else {
        panic!("a ut_metadata message must frame as extended");
    };
    assert_eq!(ext_id, ext);
    assert_eq!(MetadataMsg::parse(payload).as_ref(), Ok(msg), "ut_metadata round trip");
}

/// Walks the stream as a connection would, handing each extended message to
/// `on_ext`; returns how many frames were accepted.
fn walk<'a>(data: &'a [u8], max_len: usize, mut on_ext: impl FnMut(u8, &'a [u8])) -> usize {
    let mut buf = data;
    match Handshake::parse(buf) {
        Err(_) => return 0,
        Ok(Parse::NeedMore(n)) => {
            assert!(n > 0 && buf.len() + n == wire::HANDSHAKE_LEN);
            return 0;
        }
        Ok(Parse::Done { item, consumed }) => {
            assert_eq!(consumed, wire::HANDSHAKE_LEN);
            std::hint::black_box(item.supports_extensions());
            buf = &buf[consumed..];
        }
    }
    let mut accepted = 0;
    loop {
        match Message::parse(buf, max_len) {
            Err(wire::Error::MessageTooLong { len, max }) => {
                assert!(len as usize > max && max == max_len);
                return accepted;
            }
            Err(_) => return accepted,
            Ok(Parse::NeedMore(n)) => {
                assert!(n > 0);
                return accepted;
            }
            Ok(Parse::Done { item, consumed }) => {
                assert!(consumed >= wire::LENGTH_PREFIX_LEN && consumed <= buf.len());
                assert!(consumed - wire::LENGTH_PREFIX_LEN <= max_len);
                if let Message::Extended { ext_id, payload } = item {
                    on_ext(ext_id, payload);
                }
                accepted += 1;
                buf = &buf[consumed..];
            }
        }
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&selector, data)) = input.split_first() else {
        return;
    };
    let max_len = cap(selector);
    // Parse everything without allocating, keeping only the extended payloads' positions.
    let mut parsed = Vec::with_capacity(data.len() / wire::LENGTH_PREFIX_LEN + 1);
    without_allocation(|| {
        walk(data, max_len, |ext_id, payload| {
            let outcome = if ext_id == wire::EXT_HANDSHAKE_ID {
                ExtHandshake::parse(payload).map(|h| std::hint::black_box(h).metadata_size.is_some())
            } else {
                MetadataMsg::parse(payload).map(|m| std::hint::black_box(m) == MetadataMsg::Request { piece: 0 })
            };
            if parsed.len() < parsed.capacity() {
                parsed.push((ext_id, payload, outcome.is_ok()));
            }
        })
    });
    // Then check round trips, which do allocate their output buffers.
    for (ext_id, payload, ok) in parsed {
        if ext_id == wire::EXT_HANDSHAKE_ID {
            let hs = ExtHandshake::parse(payload);
            assert_eq!(hs.is_ok(), ok, "parsing must be deterministic");
            if let Ok(hs) = hs {
                check_ext_handshake(&hs);
            }
        } else if let Ok(msg) = MetadataMsg::parse(payload) {
            assert!(ok, "parsing must be deterministic");
            check_metadata(&msg);
        }
    }
});
