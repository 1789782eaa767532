//! Fuzzes the metadata exchange state machine
//! (`trawl_engine::metadata::exchange::Exchange`) against a scripted peer.
//! The input is a script: whole protocol messages (some correct for the
//! torrent, some with fuzzed fields), raw bytes, arbitrary TCP segmentation,
//! clock jumps and closes. In honest mode the peer sends a correct session in
//! fuzzed segments. Contract checked:
//! - no panic on any input;
//! - a final status never changes again, and `next_timeout` is `None` exactly
//!   when final;
//! - everything the exchange queues to send parses as peer wire frames;
//! - `Done` only with the exact info dict whose SHA-1 is the infohash, and an
//!   honest peer always gets there;
//! - no single allocation beyond the caps: the receive remainder holds at most
//!   one frame plus the chunk just received, the metadata at most its size.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use sha1::{Digest, Sha1};
use trawl_codec_fuzz::counting_allocations;
use trawl_engine::metadata::exchange::{Exchange, ExchangeConfig, Status};
use trawl_engine::metadata::wire::{self, Message, Parse};

const PEER_UT: u8 = 3;

/// A cursor over the fuzz input; reads past the end give zeros.
struct Script<'a>(&'a [u8]);

impl Script<'_> {
    fn byte(&mut self) -> u8 {
        let (&b, rest) = self.0.split_first().unwrap_or((&0, &[]));
        self.0 = rest;
        b
    }
    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.byte(), self.byte()])
    }
    fn take(&mut self, n: usize) -> &[u8] {
        let (a, b) = self.0.split_at(n.min(self.0.len()));
        self.0 = b;
        a
    }
    fn done(&self) -> bool {
        self.0.is_empty()
    }
}

struct Harness {
    ex: Exchange,
    config: ExchangeConfig,
    now: Instant,
    final_status: Option<Status>,
}

impl Harness {
    fn observe(&mut self, status: Status) {
        assert_eq!(status, self.ex.status());
        if let Some(f) = self.final_status {
            assert_eq!(status, f, "a final status must not change");
        } else if status != Status::Pending {
            self.final_status = Some(status);
        }
        assert_eq!(self.ex.next_timeout().is_none(), status != Status::Pending);
        check_pending(self.ex.pending());
        self.ex.clear_pending();
    }

    /// Delivers `stream` in segments whose sizes the script picks.
    fn deliver(&mut self, stream: &[u8], script: &mut Script<'_>) {
        let mut rest = stream;
        while !rest.is_empty() {
            let n = (usize::from(script.byte()) * 37 + 1).min(rest.len());
            let (chunk, tail) = rest.split_at(n);
            rest = tail;
            let bound = 2
                * (self.config.max_message_len + wire::LENGTH_PREFIX_LEN + chunk.len())
                    .max(self.config.max_metadata_size)
                + 4096;
            let now = self.now;
            let (status, alloc) = counting_allocations(|| self.ex.handle_input(now, chunk));
            assert!(
                alloc.largest <= bound,
                "allocation of {} bytes beyond the caps ({bound})",
                alloc.largest
            );
            self.observe(status);
        }
    }
}

/// What the exchange sends parses: our handshake, then whole frames.
fn check_pending(mut out: &[u8]) {
    if out.starts_with(wire::PROTOCOL) {
        assert!(matches!(wire::Handshake::parse(out), Ok(Parse::Done { .. })));
        out = &out[wire::HANDSHAKE_LEN..];
    }
    while !out.is_empty() {
        match Message::parse(out, wire::DEFAULT_MAX_MESSAGE_LEN) {
            Ok(Parse::Done { item, consumed }) => {
                if let Message::Extended { ext_id, payload } = item {
                    if ext_id == wire::EXT_HANDSHAKE_ID {
                        wire::ExtHandshake::parse(payload).expect("our extended handshake parses");
                    } else {
                        wire::MetadataMsg::parse(payload).expect("our ut_metadata message parses");
                    }
                }
                out = &out[consumed..];
            }
            other => panic!("the exchange queued a broken frame: {other:?}"),
        }
    }
}

fn data_piece(out: &mut Vec<u8>, metadata: &[u8], total_size: usize, piece: u32) {
    let range = wire::piece_range(metadata.len(), piece).unwrap_or(0..0);
    wire::write_metadata_data(out, wire::OUR_UT_METADATA_ID, piece, total_size, &metadata[range]);
}

fuzz_target!(|input: &[u8]| {
    let mut script = Script(input);
    let flags = script.byte();
    let honest = flags & 1 != 0;
    let config = if flags & 2 != 0 {
        ExchangeConfig {
            max_metadata_size: 64 * 1024,
            max_message_len: wire::METADATA_PIECE_LEN + 128,
            ..ExchangeConfig::default()
        }
    } else {
        ExchangeConfig::default()
    };
    // The torrent's info dict: its size comes from the script, its bytes are a pattern.
    let size = 1 + usize::from(script.u16()) % (40 * 1024);
    let seed = script.byte();
    let metadata: Vec<u8> = (0..size)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect();
    let info_hash: [u8; 20] = Sha1::digest(&metadata).into();
    let pieces = wire::piece_count(size);

    let start = Instant::now();
    let mut h = Harness {
        ex: Exchange::new(start, info_hash, [7; 20], config),
        config,
        now: start,
        final_status: None,
    };
    let status = h.ex.handle_connected(start);
    h.observe(status);

    let mut stream = Vec::new();
    if honest {
        wire::write_handshake(&mut stream, &info_hash, &[9; 20]);
        wire::write_ext_handshake(&mut stream, PEER_UT, Some(size), Some(b"libtorrent/2.0.10.0"));
        for piece in 0..pieces {
            data_piece(&mut stream, &metadata, size, piece);
        }
        h.deliver(&stream, &mut script);
        assert_eq!(h.ex.status(), Status::Done, "an honest peer completes the exchange");
    } else {
        while !script.done() {
            match script.byte() % 8 {
                0 => wire::write_handshake(&mut stream, &info_hash, &[9; 20]),
                1 => {
                    let ut = script.byte();
                    let declared = if script.byte() & 1 == 0 {
                        size
                    } else {
                        usize::from(script.u16()) * 256
                    };
                    wire::write_ext_handshake(&mut stream, ut, Some(declared), Some(b"qBittorrent/4.6.4"));
                }
                2 => {
                    let piece = u32::from(script.byte()) % (pieces + 1);
                    data_piece(&mut stream, &metadata, size, piece);
                }
                3 => {
                    let n = usize::from(script.byte());
                    stream.extend_from_slice(script.take(n));
                }
                4 => {
                    let s = std::mem::take(&mut stream);
                    h.deliver(&s, &mut script);
                }
                5 => {
                    h.now += Duration::from_millis(u64::from(script.byte()) * 50);
                    let now = h.now;
                    let status = h.ex.handle_timeout(now);
                    h.observe(status);
                }
                6 => wire::write_metadata_reject(&mut stream, wire::OUR_UT_METADATA_ID, u32::from(script.byte())),
                _ => {
                    let status = h.ex.handle_closed();
                    h.observe(status);
                }
            }
        }
        let s = std::mem::take(&mut stream);
        h.deliver(&s, &mut script);
    }

    let done = h.ex.status() == Status::Done;
    let got = h.ex.take_metadata();
    if done {
        assert_eq!(got, metadata, "Done means exactly the info dict of the infohash");
    } else {
        assert!(got.is_empty(), "no metadata without Done");
    }
});
