//! One metadata exchange with one peer, as an I/O-free state machine:
//! dial -> BEP 3 handshake (extension bit) -> BEP 10 extended handshake
//! (`metadata_size`, `ut_metadata` id) -> BEP 9 requests for 16 KiB pieces ->
//! the assembled info dict, verified by SHA-1 against the infohash.
//!
//! Owns: the per-connection protocol state, its receive remainder and send
//! queue, the caps against hostile peers and the deadlines, and the stable
//! [`Failure`] vocabulary that metrics and the fetch queue use.
//! Must not: touch a socket or a clock (the runtime passes `now` and moves the
//! bytes), panic on any input, or hold more than `max_message_len` of
//! unparsed bytes or more metadata than the peer really sent (never a buffer
//! sized from `metadata_size` up front).
//!
//! Driving it: [`Exchange::new`] when the dial starts; [`Exchange::handle_connected`]
//! once it is up; [`Exchange::handle_input`] with every received chunk;
//! [`Exchange::handle_timeout`] when [`Exchange::next_timeout`] passes;
//! [`Exchange::handle_closed`] at EOF. After each call, send [`Exchange::pending`]
//! then [`Exchange::clear_pending`], and stop once [`Exchange::status`] is final.

use std::time::{Duration, Instant};

use sha1::{Digest, Sha1};

use super::wire::{
    self, ExtHandshake, Handshake, Message, MetadataMsg, Parse, DEFAULT_MAX_MESSAGE_LEN, EXT_HANDSHAKE_ID,
    MAX_METADATA_SIZE, OUR_UT_METADATA_ID,
};

/// How many piece requests are outstanding at once: enough to fill a pipe,
/// few enough that a peer is never asked for much it will not send.
pub const REQUEST_WINDOW: u32 = 4;
/// The client name we announce in the extended handshake.
pub const CLIENT_NAME: &[u8] = b"trawl";

/// Why an exchange failed. The names are stable: metrics and the fetch queue's
/// `last_error` use them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Failure {
    /// The TCP connect did not finish in time.
    DialTimeout,
    /// The connect failed (refused, unreachable, reset).
    Refused,
    /// The peer's handshake lacks the BEP 10 extension bit.
    NoExtension,
    /// The extended handshake offers no `ut_metadata` or no `metadata_size`.
    NoUtMetadata,
    /// `metadata_size` above the cap.
    TooLarge,
    /// Anything malformed or inconsistent: wrong protocol, wrong infohash,
    /// oversized frame, bad bencode, a piece of the wrong size or order.
    BadMessage,
    /// The peer sent a `ut_metadata` reject.
    Rejected,
    /// The assembled bytes do not hash to the infohash.
    HashMismatch,
    /// The whole-fetch deadline passed.
    Deadline,
    /// The peer closed the connection (or it broke) before the end.
    Closed,
}

impl Failure {
    pub const ALL: [Failure; 10] = [
        Failure::DialTimeout,
        Failure::Refused,
        Failure::NoExtension,
        Failure::NoUtMetadata,
        Failure::TooLarge,
        Failure::BadMessage,
        Failure::Rejected,
        Failure::HashMismatch,
        Failure::Deadline,
        Failure::Closed,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Failure::DialTimeout => "dial_timeout",
            Failure::Refused => "refused",
            Failure::NoExtension => "no_extension",
            Failure::NoUtMetadata => "no_ut_metadata",
            Failure::TooLarge => "too_large",
            Failure::BadMessage => "bad_message",
            Failure::Rejected => "rejected",
            Failure::HashMismatch => "hash_mismatch",
            Failure::Deadline => "deadline",
            Failure::Closed => "closed",
        }
    }

    /// Position in [`Failure::ALL`], for per-kind counter arrays.
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl core::fmt::Display for Failure {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Limits of one exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExchangeConfig {
    /// Time allowed for the TCP connect.
    pub dial_timeout: Duration,
    /// Time allowed for the whole exchange, dial included.
    pub deadline: Duration,
    /// Largest info dict accepted (at most [`MAX_METADATA_SIZE`]).
    pub max_metadata_size: usize,
    /// Largest framed message accepted.
    pub max_message_len: usize,
}

impl Default for ExchangeConfig {
    fn default() -> Self {
        ExchangeConfig {
            dial_timeout: Duration::from_secs(3),
            deadline: Duration::from_secs(8),
            max_metadata_size: MAX_METADATA_SIZE,
            max_message_len: DEFAULT_MAX_MESSAGE_LEN,
        }
    }
}

/// Where the exchange stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Pending,
    /// The verified info dict is ready: take it with [`Exchange::take_metadata`].
    Done,
    Failed(Failure),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Dialing,
    AwaitHandshake,
    AwaitExtHandshake,
    Downloading { peer_ut_metadata: u8, size: usize },
    Finished,
}

/// One exchange: see the module doc for how to drive it.
#[derive(Debug)]
pub struct Exchange {
    info_hash: [u8; 20],
    peer_id: [u8; 20],
    config: ExchangeConfig,
    state: State,
    status: Status,
    dial_deadline: Instant,
    deadline: Instant,
    /// Bytes of an incomplete frame, kept between `handle_input` calls.
    remainder: Vec<u8>,
    out: Vec<u8>,
    /// Pieces received so far, in order; grows only as data arrives.
    metadata: Vec<u8>,
    /// Next piece to request, and next piece expected.
    next_request: u32,
    next_piece: u32,
    client: Option<Vec<u8>>,
}

impl Exchange {
    /// Starts an exchange whose dial begins at `now`.
    pub fn new(now: Instant, info_hash: [u8; 20], peer_id: [u8; 20], config: ExchangeConfig) -> Self {
        let config = ExchangeConfig {
            max_metadata_size: config.max_metadata_size.min(MAX_METADATA_SIZE),
            ..config
        };
        Exchange {
            info_hash,
            peer_id,
            config,
            state: State::Dialing,
            status: Status::Pending,
            dial_deadline: now + config.dial_timeout.min(config.deadline),
            deadline: now + config.deadline,
            remainder: Vec::new(),
            out: Vec::new(),
            metadata: Vec::new(),
            next_request: 0,
            next_piece: 0,
            client: None,
        }
    }

    pub fn status(&self) -> Status {
        self.status
    }

    pub fn info_hash(&self) -> &[u8; 20] {
        &self.info_hash
    }

    /// The peer's client name (`v` of its extended handshake), if it sent one.
    pub fn client(&self) -> Option<&[u8]> {
        self.client.as_deref()
    }

    /// Bytes to send now.
    pub fn pending(&self) -> &[u8] {
        &self.out
    }

    /// Marks [`Self::pending`] as sent.
    pub fn clear_pending(&mut self) {
        self.out.clear();
    }

    /// When [`Self::handle_timeout`] must be called; `None` once final.
    pub fn next_timeout(&self) -> Option<Instant> {
        match (self.status, self.state) {
            (Status::Pending, State::Dialing) => Some(self.dial_deadline),
            (Status::Pending, _) => Some(self.deadline),
            _ => None,
        }
    }

    /// The verified info dict, once [`Status::Done`]; empty otherwise.
    pub fn take_metadata(&mut self) -> Vec<u8> {
        if self.status == Status::Done {
            std::mem::take(&mut self.metadata)
        } else {
            Vec::new()
        }
    }

    fn fail(&mut self, failure: Failure) -> Status {
        if self.status == Status::Pending {
            self.status = Status::Failed(failure);
            self.state = State::Finished;
            self.out.clear();
            // Give the memory back at once: the slot may linger until the socket closes.
            self.remainder = Vec::new();
            self.metadata = Vec::new();
        }
        self.status
    }

    /// The TCP connection is up: queue our handshake.
    pub fn handle_connected(&mut self, now: Instant) -> Status {
        if self.status != Status::Pending || self.state != State::Dialing {
            return self.status;
        }
        if now >= self.deadline {
            return self.fail(Failure::Deadline);
        }
        wire::write_handshake(&mut self.out, &self.info_hash, &self.peer_id);
        self.state = State::AwaitHandshake;
        self.status
    }

    /// The connect failed.
    pub fn handle_dial_error(&mut self) -> Status {
        self.fail(Failure::Refused)
    }

    /// The peer closed the connection or it broke.
    pub fn handle_closed(&mut self) -> Status {
        match self.state {
            State::Dialing => self.fail(Failure::Refused),
            _ => self.fail(Failure::Closed),
        }
    }

    /// A deadline may have passed.
    pub fn handle_timeout(&mut self, now: Instant) -> Status {
        match self.next_timeout() {
            Some(at) if now >= at => {
                let failure = if self.state == State::Dialing {
                    Failure::DialTimeout
                } else {
                    Failure::Deadline
                };
                self.fail(failure)
            }
            _ => self.status,
        }
    }

    /// Bytes received from the peer.
    pub fn handle_input(&mut self, now: Instant, bytes: &[u8]) -> Status {
        if self.status != Status::Pending || self.state == State::Dialing {
            return self.status;
        }
        if now >= self.deadline {
            return self.fail(Failure::Deadline);
        }
        if self.remainder.is_empty() {
            let consumed = self.consume(bytes);
            if self.status == Status::Pending {
                self.remainder.extend_from_slice(&bytes[consumed..]);
            }
        } else {
            self.remainder.extend_from_slice(bytes);
            let buf = std::mem::take(&mut self.remainder);
            let consumed = self.consume(&buf);
            if self.status == Status::Pending {
                self.remainder = buf;
                self.remainder.drain(..consumed);
            }
        }
        self.status
    }

    /// Parses as many whole items from `buf` as there are; returns the bytes used.
    fn consume(&mut self, buf: &[u8]) -> usize {
        let mut used = 0;
        while self.status == Status::Pending {
            let rest = &buf[used..];
            let step = if self.state == State::AwaitHandshake {
                self.on_handshake(rest)
            } else {
                self.on_frame(rest)
            };
            match step {
                Some(n) => used += n,
                None => break,
            }
        }
        used
    }

    /// `Some(consumed)` when an item was handled, `None` when more bytes are needed
    /// (or the exchange just ended).
    fn on_handshake(&mut self, buf: &[u8]) -> Option<usize> {
        match Handshake::parse(buf) {
            Err(_) => {
                self.fail(Failure::BadMessage);
                None
            }
            Ok(Parse::NeedMore(_)) => None,
            Ok(Parse::Done { item, consumed }) => {
                if item.info_hash != &self.info_hash {
                    self.fail(Failure::BadMessage);
                    return None;
                }
                if !item.supports_extensions() {
                    self.fail(Failure::NoExtension);
                    return None;
                }
                wire::write_ext_handshake(&mut self.out, OUR_UT_METADATA_ID, None, Some(CLIENT_NAME));
                self.state = State::AwaitExtHandshake;
                Some(consumed)
            }
        }
    }

    fn on_frame(&mut self, buf: &[u8]) -> Option<usize> {
        match Message::parse(buf, self.config.max_message_len) {
            Err(_) => {
                self.fail(Failure::BadMessage);
                None
            }
            Ok(Parse::NeedMore(_)) => None,
            Ok(Parse::Done { item, consumed }) => {
                match item {
                    Message::Extended {
                        ext_id: EXT_HANDSHAKE_ID,
                        payload,
                    } => self.on_ext_handshake(payload),
                    Message::Extended {
                        ext_id: OUR_UT_METADATA_ID,
                        payload,
                    } => self.on_metadata(payload),
                    // Keep-alive, choke, have, bitfield, other extensions: tolerated.
                    _ => {}
                }
                Some(consumed)
            }
        }
    }

    fn on_ext_handshake(&mut self, payload: &[u8]) {
        // A repeated extended handshake (allowed by BEP 10) changes nothing once we download.
        if self.state != State::AwaitExtHandshake {
            return;
        }
        let hs = match ExtHandshake::parse(payload) {
            Ok(hs) => hs,
            // `wire` refuses sizes above MAX_METADATA_SIZE as a bad value.
            Err(wire::Error::BadValue("metadata_size")) => {
                self.fail(Failure::TooLarge);
                return;
            }
            Err(_) => {
                self.fail(Failure::BadMessage);
                return;
            }
        };
        self.client = hs.client.map(<[u8]>::to_vec);
        let (Some(peer_ut_metadata), Some(size)) = (hs.ut_metadata, hs.metadata_size) else {
            self.fail(Failure::NoUtMetadata);
            return;
        };
        if size > self.config.max_metadata_size {
            self.fail(Failure::TooLarge);
            return;
        }
        self.state = State::Downloading { peer_ut_metadata, size };
        self.request_more();
    }

    /// Keeps [`REQUEST_WINDOW`] requests outstanding.
    fn request_more(&mut self) {
        let State::Downloading { peer_ut_metadata, size } = self.state else {
            return;
        };
        let pieces = wire::piece_count(size);
        while self.next_request < pieces && self.next_request < self.next_piece + REQUEST_WINDOW {
            wire::write_metadata_request(&mut self.out, peer_ut_metadata, self.next_request);
            self.next_request += 1;
        }
    }

    fn on_metadata(&mut self, payload: &[u8]) {
        let State::Downloading { size, .. } = self.state else {
            // ut_metadata before we asked for anything: ignore, as BEP 9 peers may probe.
            return;
        };
        let msg = match MetadataMsg::parse(payload) {
            Ok(m) => m,
            Err(_) => {
                self.fail(Failure::BadMessage);
                return;
            }
        };
        match msg {
            // We serve nothing; a request to us is not an error, just unanswered.
            MetadataMsg::Request { .. } => {}
            MetadataMsg::Reject { piece } => {
                if piece < self.next_request {
                    self.fail(Failure::Rejected);
                }
            }
            MetadataMsg::Data {
                piece,
                total_size,
                data,
            } => {
                if piece < self.next_piece {
                    return; // a duplicate of a piece we have
                }
                let expected = wire::piece_len(size, piece);
                if total_size != size || piece != self.next_piece || expected != Some(data.len()) {
                    self.fail(Failure::BadMessage);
                    return;
                }
                self.metadata.extend_from_slice(data);
                self.next_piece += 1;
                if self.metadata.len() == size {
                    self.verify();
                } else {
                    self.request_more();
                }
            }
        }
    }

    /// The info dict matches the infohash asked for: its SHA-1 (v1 and
    /// hybrid) or the first 20 bytes of its SHA-256, the form BEP 52 puts on
    /// the DHT (v2 and hybrid).
    fn verify(&mut self) {
        let v1: [u8; 20] = Sha1::digest(&self.metadata).into();
        if v1 == self.info_hash || truncated_v2(&self.metadata) == self.info_hash {
            self.status = Status::Done;
            self.state = State::Finished;
            self.remainder = Vec::new();
        } else {
            self.fail(Failure::HashMismatch);
        }
    }
}

/// The first 20 bytes of an info dict's SHA-256: a v2 infohash as the DHT
/// and the peer handshake carry it (BEP 52).
pub fn truncated_v2(info_dict: &[u8]) -> [u8; 20] {
    let mut h = [0u8; 20];
    h.copy_from_slice(&sha256(info_dict)[..20]);
    h
}

/// An info dict's SHA-256: a v2 infohash in full (BEP 52's `urn:btmh:1220…`).
pub fn sha256(info_dict: &[u8]) -> [u8; 32] {
    let full = <sha2::Sha256 as sha2::Digest>::digest(info_dict);
    let mut h = [0u8; 32];
    h.copy_from_slice(&full);
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::wire::{write_ext_handshake, write_handshake, write_metadata_data, write_metadata_reject};

    const PEER_UT: u8 = 3;

    /// An info dict of `len` bytes (a `d...e` with padding), and its hash.
    fn info_dict(len: usize) -> (Vec<u8>, [u8; 20]) {
        let mut d = b"d4:name".to_vec();
        let pad = len - 9 - 2 - (len - 20).to_string().len();
        d.extend_from_slice(format!("{}:", pad).as_bytes());
        d.resize(d.len() + pad, b'x');
        d.push(b'e');
        let h: [u8; 20] = Sha1::digest(&d).into();
        (d, h)
    }

    fn peer_handshake(info_hash: &[u8; 20], ext: bool) -> Vec<u8> {
        let mut out = Vec::new();
        write_handshake(&mut out, info_hash, &[9; 20]);
        if !ext {
            out[20 + wire::EXTENSION_BYTE] = 0;
        }
        out
    }

    fn started(info_hash: [u8; 20], now: Instant) -> Exchange {
        let mut ex = Exchange::new(now, info_hash, [1; 20], ExchangeConfig::default());
        assert_eq!(ex.handle_connected(now), Status::Pending);
        assert_eq!(ex.pending().len(), wire::HANDSHAKE_LEN);
        ex.clear_pending();
        ex
    }

    /// Requests the exchange has queued, as piece numbers.
    fn requested(ex: &mut Exchange) -> Vec<u32> {
        let mut rest = ex.pending().to_vec();
        ex.clear_pending();
        let mut pieces = Vec::new();
        while !rest.is_empty() {
            let Parse::Done { item, consumed } = Message::parse(&rest, DEFAULT_MAX_MESSAGE_LEN).unwrap() else {
                panic!("partial frame")
            };
            if let Message::Extended {
                ext_id: PEER_UT,
                payload,
            } = item
            {
                let MetadataMsg::Request { piece } = MetadataMsg::parse(payload).unwrap() else {
                    panic!()
                };
                pieces.push(piece);
            }
            rest.drain(..consumed);
        }
        pieces
    }

    #[test]
    fn full_exchange_with_tolerated_noise_fed_byte_by_byte() {
        let now = Instant::now();
        let (dict, hash) = info_dict(40_000);
        let mut ex = started(hash, now);

        let mut peer = peer_handshake(&hash, true);
        peer.extend_from_slice(&[0, 0, 0, 0]); // keep-alive
        peer.extend_from_slice(&[0, 0, 0, 3, 5, 0xff, 0x80]); // bitfield
        peer.extend_from_slice(&[0, 0, 0, 1, 1]); // unchoke
        write_ext_handshake(&mut peer, PEER_UT, Some(dict.len()), Some(b"libtorrent/2.0.8"));
        for b in &peer {
            assert_eq!(ex.handle_input(now, std::slice::from_ref(b)), Status::Pending);
        }
        assert_eq!(ex.client(), Some(&b"libtorrent/2.0.8"[..]));
        // Our extended handshake went out after the peer's handshake, then the window of requests.
        let Parse::Done { item, consumed } = Message::parse(ex.pending(), DEFAULT_MAX_MESSAGE_LEN).unwrap() else {
            panic!()
        };
        assert!(matches!(item, Message::Extended { ext_id: 0, .. }));
        ex.out.drain(..consumed);
        assert_eq!(requested(&mut ex), vec![0, 1, 2]);

        let mut data = Vec::new();
        for piece in 0..3u32 {
            let range = wire::piece_range(dict.len(), piece).unwrap();
            write_metadata_data(&mut data, OUR_UT_METADATA_ID, piece, dict.len(), &dict[range]);
            // Another extension's message in between.
            data.extend_from_slice(&[0, 0, 0, 3, 20, 7, b'x']);
        }
        let (a, b) = data.split_at(data.len() / 2);
        assert_eq!(ex.handle_input(now, a), Status::Pending);
        assert_eq!(ex.handle_input(now, b), Status::Done);
        assert_eq!(ex.next_timeout(), None);
        assert_eq!(ex.take_metadata(), dict);
    }

    fn downloading(size: usize, hash: [u8; 20], now: Instant) -> Exchange {
        let mut ex = started(hash, now);
        let mut peer = peer_handshake(&hash, true);
        write_ext_handshake(&mut peer, PEER_UT, Some(size), None);
        assert_eq!(ex.handle_input(now, &peer), Status::Pending);
        ex
    }

    #[test]
    fn a_dict_asked_for_by_its_truncated_v2_hash_verifies_by_sha256() {
        let now = Instant::now();
        let (dict, v1) = info_dict(100);
        let v2 = truncated_v2(&dict);
        assert_ne!(v1, v2);
        let mut ex = downloading(dict.len(), v2, now);
        let mut data = Vec::new();
        write_metadata_data(&mut data, OUR_UT_METADATA_ID, 0, dict.len(), &dict);
        assert_eq!(ex.handle_input(now, &data), Status::Done);
        assert_eq!(ex.take_metadata(), dict);
        // The SHA-256 of "abc" (FIPS 180-2), truncated as the DHT carries it.
        assert_eq!(
            truncated_v2(b"abc")[..8],
            [0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea]
        );
    }

    #[test]
    fn wrong_bytes_hash_mismatch() {
        let now = Instant::now();
        let (dict, hash) = info_dict(100);
        let mut ex = downloading(dict.len(), hash, now);
        let mut data = Vec::new();
        let mut wrong = dict.clone();
        wrong[50] ^= 1;
        write_metadata_data(&mut data, OUR_UT_METADATA_ID, 0, dict.len(), &wrong);
        assert_eq!(ex.handle_input(now, &data), Status::Failed(Failure::HashMismatch));
        assert!(ex.take_metadata().is_empty());
    }

    #[test]
    fn hostile_peers_fail_with_their_kind() {
        let now = Instant::now();
        let (dict, hash) = info_dict(100);

        let mut ex = started(hash, now);
        assert_eq!(
            ex.handle_input(now, &peer_handshake(&hash, false)),
            Status::Failed(Failure::NoExtension)
        );

        let mut ex = started(hash, now);
        assert_eq!(
            ex.handle_input(now, &peer_handshake(&[7; 20], true)),
            Status::Failed(Failure::BadMessage)
        );

        let mut ex = started(hash, now);
        assert_eq!(
            ex.handle_input(now, b"HTTP/1.1 400"),
            Status::Failed(Failure::BadMessage)
        );

        let mut ex = started(hash, now);
        let mut peer = peer_handshake(&hash, true);
        write_ext_handshake(&mut peer, 0, Some(100), None);
        assert_eq!(ex.handle_input(now, &peer), Status::Failed(Failure::NoUtMetadata));

        let mut ex = started(hash, now);
        let mut peer = peer_handshake(&hash, true);
        write_ext_handshake(&mut peer, PEER_UT, Some(MAX_METADATA_SIZE + 1), None);
        assert_eq!(ex.handle_input(now, &peer), Status::Failed(Failure::TooLarge));

        let mut ex = started(hash, now);
        let mut peer = peer_handshake(&hash, true);
        peer.extend_from_slice(&(DEFAULT_MAX_MESSAGE_LEN as u32 + 1).to_be_bytes());
        assert_eq!(ex.handle_input(now, &peer), Status::Failed(Failure::BadMessage));

        let mut ex = downloading(dict.len(), hash, now);
        let mut rej = Vec::new();
        write_metadata_reject(&mut rej, OUR_UT_METADATA_ID, 0);
        assert_eq!(ex.handle_input(now, &rej), Status::Failed(Failure::Rejected));

        // A piece of the wrong length, and one out of order.
        let mut ex = downloading(dict.len(), hash, now);
        let mut data = Vec::new();
        write_metadata_data(&mut data, OUR_UT_METADATA_ID, 0, dict.len(), &dict[..dict.len() - 1]);
        assert_eq!(ex.handle_input(now, &data), Status::Failed(Failure::BadMessage));
        let mut ex = downloading(40_000, hash, now);
        let mut data = Vec::new();
        write_metadata_data(&mut data, OUR_UT_METADATA_ID, 1, 40_000, &[b'x'; 16384]);
        assert_eq!(ex.handle_input(now, &data), Status::Failed(Failure::BadMessage));
    }

    #[test]
    fn deadlines_and_closes() {
        let now = Instant::now();
        let cfg = ExchangeConfig::default();
        let mut ex = Exchange::new(now, [0; 20], [1; 20], cfg);
        assert_eq!(ex.next_timeout(), Some(now + cfg.dial_timeout));
        assert_eq!(ex.handle_timeout(now + Duration::from_millis(1)), Status::Pending);
        assert_eq!(
            ex.handle_timeout(now + cfg.dial_timeout),
            Status::Failed(Failure::DialTimeout)
        );

        let mut ex = started([0; 20], now);
        assert_eq!(ex.next_timeout(), Some(now + cfg.deadline));
        assert_eq!(ex.handle_input(now, b"\x13Bit"), Status::Pending);
        assert_eq!(ex.handle_timeout(now + cfg.deadline), Status::Failed(Failure::Deadline));
        // Final states stay final.
        assert_eq!(ex.handle_closed(), Status::Failed(Failure::Deadline));

        let mut ex = started([0; 20], now);
        assert_eq!(ex.handle_closed(), Status::Failed(Failure::Closed));
        let mut ex = Exchange::new(now, [0; 20], [1; 20], cfg);
        assert_eq!(ex.handle_dial_error(), Status::Failed(Failure::Refused));
    }

    #[test]
    fn failure_names_are_stable_and_indexed() {
        for (i, f) in Failure::ALL.iter().enumerate() {
            assert_eq!(f.index(), i);
        }
        assert_eq!(Failure::HashMismatch.as_str(), "hash_mismatch");
        assert_eq!(Failure::DialTimeout.to_string(), "dial_timeout");
    }
}
