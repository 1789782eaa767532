//! The BitTorrent peer wire format as far as a metadata exchange needs it
//! (BEP 3 handshake and framing, BEP 10 extension protocol, BEP 9 `ut_metadata`).
//!
//! Owns: the byte layouts and their constants, zero-copy views that borrow from
//! the caller's receive buffer, and encoders that append whole framed messages to
//! a caller-owned `Vec<u8>`.
//! Must not: do I/O, keep connection state, or allocate. Nothing here panics on
//! any input, and no buffer is sized from a length a peer declares: a declared
//! message length is only compared with a cap and with the bytes really received.

use core::fmt;

use crate::codec::bencode::{self, Decoder, Value};

/// `\x13BitTorrent protocol`: the protocol-name length byte and the name.
pub const PROTOCOL: &[u8; 20] = b"\x13BitTorrent protocol";
pub const RESERVED_LEN: usize = 8;
pub const INFO_HASH_LEN: usize = 20;
pub const PEER_ID_LEN: usize = 20;
/// Name, reserved bytes, info hash, peer id.
pub const HANDSHAKE_LEN: usize = PROTOCOL.len() + RESERVED_LEN + INFO_HASH_LEN + PEER_ID_LEN;
/// BEP 10: the extension protocol is announced by `reserved[5] & 0x10`.
pub const EXTENSION_BYTE: usize = 5;
pub const EXTENSION_BIT: u8 = 0x10;

/// Every message after the handshake starts with a big-endian u32 length.
pub const LENGTH_PREFIX_LEN: usize = 4;
/// BEP 10: message id of every extended message.
pub const MSG_EXTENDED: u8 = 20;
/// BEP 10: extended message id of the extended handshake.
pub const EXT_HANDSHAKE_ID: u8 = 0;
/// The extended message id we ask peers to use for `ut_metadata` sent to us.
pub const OUR_UT_METADATA_ID: u8 = 1;

/// BEP 9: metadata moves in pieces of 16 KiB, the last one shorter.
pub const METADATA_PIECE_LEN: usize = 16 * 1024;
/// The largest info dict accepted (magnetico's cap), so a peer cannot make us
/// reserve an arbitrary buffer.
pub const MAX_METADATA_SIZE: usize = 10 * 1024 * 1024;
/// Default cap on one framed message. A metadata piece needs 16 KiB plus a small
/// dict; real peers also send bitfields, which stay below this for any torrent
/// with fewer than 8 million pieces.
pub const DEFAULT_MAX_MESSAGE_LEN: usize = 1024 * 1024;

// BEP 10 / BEP 9 dictionary keys.
pub const KEY_M: &[u8] = b"m";
pub const KEY_UT_METADATA: &[u8] = b"ut_metadata";
pub const KEY_METADATA_SIZE: &[u8] = b"metadata_size";
pub const KEY_CLIENT_VERSION: &[u8] = b"v";
pub const KEY_MSG_TYPE: &[u8] = b"msg_type";
pub const KEY_PIECE: &[u8] = b"piece";
pub const KEY_TOTAL_SIZE: &[u8] = b"total_size";

// BEP 9 `msg_type` values.
pub const MSG_TYPE_REQUEST: i64 = 0;
pub const MSG_TYPE_DATA: i64 = 1;
pub const MSG_TYPE_REJECT: i64 = 2;

/// What is wrong with bytes a peer sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The handshake does not start with [`PROTOCOL`].
    NotBitTorrent,
    /// A frame declares more bytes than the cap allows.
    MessageTooLong { len: u32, max: usize },
    /// The payload is not valid bencode where a dictionary is due.
    Bencode(bencode::Error),
    /// A BEP 9/10 dictionary lacks a required key.
    MissingKey(&'static str),
    /// A key is present but its value is out of range or of the wrong type.
    BadValue(&'static str),
    /// An extended message with no extended id byte.
    EmptyExtended,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotBitTorrent => f.write_str("peer wire: not a BitTorrent handshake"),
            Error::MessageTooLong { len, max } => {
                write!(f, "peer wire: message of {len} bytes exceeds the cap of {max}")
            }
            Error::Bencode(e) => write!(f, "peer wire: {e}"),
            Error::MissingKey(k) => write!(f, "peer wire: missing key `{k}`"),
            Error::BadValue(k) => write!(f, "peer wire: bad value for `{k}`"),
            Error::EmptyExtended => f.write_str("peer wire: extended message without an id"),
        }
    }
}

impl std::error::Error for Error {}

impl From<bencode::Error> for Error {
    fn from(e: bencode::Error) -> Self {
        Error::Bencode(e)
    }
}

/// Result of looking at the front of a receive buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parse<T> {
    /// At least this many more bytes must arrive before anything can be parsed.
    NeedMore(usize),
    /// A complete item and how many bytes of the buffer it spans.
    Done { item: T, consumed: usize },
}

// ---------------------------------------------------------------------------
// Handshake (BEP 3)

/// A borrowed view of the 68-byte handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Handshake<'a> {
    pub reserved: &'a [u8; RESERVED_LEN],
    pub info_hash: &'a [u8; INFO_HASH_LEN],
    pub peer_id: &'a [u8; PEER_ID_LEN],
}

impl<'a> Handshake<'a> {
    /// Parses the handshake at the front of `buf`.
    pub fn parse(buf: &'a [u8]) -> Result<Parse<Handshake<'a>>, Error> {
        // Reject a wrong protocol name as soon as its bytes arrive.
        let seen = buf.len().min(PROTOCOL.len());
        if buf[..seen] != PROTOCOL[..seen] {
            return Err(Error::NotBitTorrent);
        }
        let Some(hs) = buf.get(..HANDSHAKE_LEN) else {
            return Ok(Parse::NeedMore(HANDSHAKE_LEN - buf.len()));
        };
        let (_, rest) = hs.split_at(PROTOCOL.len());
        let (reserved, rest) = rest.split_at(RESERVED_LEN);
        let (info_hash, peer_id) = rest.split_at(INFO_HASH_LEN);
        // The split lengths match the array sizes, so these conversions cannot fail.
        let item = Handshake {
            reserved: reserved.try_into().map_err(|_| Error::NotBitTorrent)?,
            info_hash: info_hash.try_into().map_err(|_| Error::NotBitTorrent)?,
            peer_id: peer_id.try_into().map_err(|_| Error::NotBitTorrent)?,
        };
        Ok(Parse::Done {
            item,
            consumed: HANDSHAKE_LEN,
        })
    }

    /// Whether the peer announces the BEP 10 extension protocol.
    pub fn supports_extensions(&self) -> bool {
        self.reserved[EXTENSION_BYTE] & EXTENSION_BIT != 0
    }
}

/// Appends a handshake that announces the extension protocol.
pub fn write_handshake(out: &mut Vec<u8>, info_hash: &[u8; 20], peer_id: &[u8; 20]) {
    let mut reserved = [0u8; RESERVED_LEN];
    reserved[EXTENSION_BYTE] |= EXTENSION_BIT;
    out.extend_from_slice(PROTOCOL);
    out.extend_from_slice(&reserved);
    out.extend_from_slice(info_hash);
    out.extend_from_slice(peer_id);
}

// ---------------------------------------------------------------------------
// Framing (BEP 3)

/// One framed message, borrowed from the receive buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Message<'a> {
    /// A zero-length frame.
    KeepAlive,
    /// A BEP 10 extended message: its extended id and the bytes after it.
    Extended { ext_id: u8, payload: &'a [u8] },
    /// Any other message (choke, have, bitfield, ...): id and payload.
    Other { id: u8, payload: &'a [u8] },
}

impl<'a> Message<'a> {
    /// Parses the frame at the front of `buf`, refusing frames longer than `max_len`
    /// before any of their body has arrived.
    pub fn parse(buf: &'a [u8], max_len: usize) -> Result<Parse<Message<'a>>, Error> {
        let Some(prefix) = buf.get(..LENGTH_PREFIX_LEN) else {
            return Ok(Parse::NeedMore(LENGTH_PREFIX_LEN - buf.len()));
        };
        let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
        if len as usize > max_len {
            return Err(Error::MessageTooLong { len, max: max_len });
        }
        let end = LENGTH_PREFIX_LEN + len as usize;
        let Some(body) = buf.get(LENGTH_PREFIX_LEN..end) else {
            return Ok(Parse::NeedMore(end - buf.len()));
        };
        let item = match body.split_first() {
            None => Message::KeepAlive,
            Some((&MSG_EXTENDED, rest)) => {
                let (&ext_id, payload) = rest.split_first().ok_or(Error::EmptyExtended)?;
                Message::Extended { ext_id, payload }
            }
            Some((&id, payload)) => Message::Other { id, payload },
        };
        Ok(Parse::Done { item, consumed: end })
    }
}

/// Starts a framed message; returns the offset to hand to [`finish_frame`].
fn begin_frame(out: &mut Vec<u8>) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0; LENGTH_PREFIX_LEN]);
    start
}

/// Fills in the length prefix written by [`begin_frame`].
fn finish_frame(out: &mut [u8], start: usize) {
    let len = (out.len() - start - LENGTH_PREFIX_LEN) as u32;
    out[start..start + LENGTH_PREFIX_LEN].copy_from_slice(&len.to_be_bytes());
}

/// Starts an extended message: length placeholder, id 20, the extended id.
fn begin_extended(out: &mut Vec<u8>, ext_id: u8) -> usize {
    let start = begin_frame(out);
    out.push(MSG_EXTENDED);
    out.push(ext_id);
    start
}

// ---------------------------------------------------------------------------
// Extended handshake (BEP 10)

/// The parts of an extended handshake a metadata exchange uses. Other keys are
/// tolerated and ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ExtHandshake<'a> {
    /// The id the peer wants for `ut_metadata` messages sent to it; `None` if it
    /// does not support BEP 9 (absent, or 0, which BEP 10 uses for "disabled").
    pub ut_metadata: Option<u8>,
    /// The size of the info dict, if the peer has it.
    pub metadata_size: Option<usize>,
    /// The client name and version (`v`), if given.
    pub client: Option<&'a [u8]>,
}

impl<'a> ExtHandshake<'a> {
    /// Parses the payload of an extended message with id [`EXT_HANDSHAKE_ID`].
    pub fn parse(payload: &'a [u8]) -> Result<Self, Error> {
        let dict = bencode::decode(payload)?
            .as_dict()
            .ok_or(Error::BadValue("handshake"))?;
        let mut hs = ExtHandshake::default();
        if let Some(m) = dict.get(KEY_M) {
            let m = m.as_dict().ok_or(Error::BadValue("m"))?;
            if let Some(id) = m.get(KEY_UT_METADATA) {
                let id = id.as_int().ok_or(Error::BadValue("ut_metadata"))?;
                let id = u8::try_from(id).map_err(|_| Error::BadValue("ut_metadata"))?;
                hs.ut_metadata = (id != 0).then_some(id);
            }
        }
        if let Some(size) = dict.get(KEY_METADATA_SIZE) {
            let size = size.as_int().ok_or(Error::BadValue("metadata_size"))?;
            let size = usize::try_from(size)
                .ok()
                .filter(|&s| s > 0 && s <= MAX_METADATA_SIZE)
                .ok_or(Error::BadValue("metadata_size"))?;
            hs.metadata_size = Some(size);
        }
        hs.client = dict.get(KEY_CLIENT_VERSION).and_then(|v| v.as_bytes());
        Ok(hs)
    }
}

/// Appends a framed extended handshake `{m: {ut_metadata: id}, metadata_size?, v?}`.
pub fn write_ext_handshake(out: &mut Vec<u8>, ut_metadata_id: u8, metadata_size: Option<usize>, client: Option<&[u8]>) {
    let start = begin_extended(out, EXT_HANDSHAKE_ID);
    bencode::dict_begin(out);
    // Keys in sorted order: m, metadata_size, v.
    bencode::bytes(out, KEY_M);
    bencode::dict_begin(out);
    bencode::key_int(out, KEY_UT_METADATA, i64::from(ut_metadata_id));
    bencode::end(out);
    if let Some(size) = metadata_size {
        bencode::key_int(out, KEY_METADATA_SIZE, size as i64);
    }
    if let Some(v) = client {
        bencode::key_bytes(out, KEY_CLIENT_VERSION, v);
    }
    bencode::end(out);
    finish_frame(out, start);
}

// ---------------------------------------------------------------------------
// ut_metadata (BEP 9)

/// One `ut_metadata` message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetadataMsg<'a> {
    Request {
        piece: u32,
    },
    /// A piece of the info dict. `data` is whatever follows the dict; check its
    /// length with [`piece_len`] before trusting it.
    Data {
        piece: u32,
        total_size: usize,
        data: &'a [u8],
    },
    Reject {
        piece: u32,
    },
}

impl<'a> MetadataMsg<'a> {
    /// Parses the payload of a `ut_metadata` extended message (after the ext id).
    pub fn parse(payload: &'a [u8]) -> Result<Self, Error> {
        let mut dec = Decoder::new(payload);
        let dict = match dec.value()? {
            Value::Dict(d) => d,
            _ => return Err(Error::BadValue("ut_metadata")),
        };
        let data = payload.get(dec.position()..).unwrap_or_default();
        let int = |key: &'static [u8], name: &'static str| -> Result<i64, Error> {
            dict.get(key)
                .ok_or(Error::MissingKey(name))?
                .as_int()
                .ok_or(Error::BadValue(name))
        };
        let piece = int(KEY_PIECE, "piece")?;
        let piece = u32::try_from(piece).map_err(|_| Error::BadValue("piece"))?;
        match int(KEY_MSG_TYPE, "msg_type")? {
            MSG_TYPE_REQUEST => Ok(MetadataMsg::Request { piece }),
            MSG_TYPE_REJECT => Ok(MetadataMsg::Reject { piece }),
            MSG_TYPE_DATA => {
                let total = int(KEY_TOTAL_SIZE, "total_size")?;
                let total_size = usize::try_from(total)
                    .ok()
                    .filter(|&s| s > 0 && s <= MAX_METADATA_SIZE)
                    .ok_or(Error::BadValue("total_size"))?;
                Ok(MetadataMsg::Data {
                    piece,
                    total_size,
                    data,
                })
            }
            _ => Err(Error::BadValue("msg_type")),
        }
    }
}

/// Appends a framed `ut_metadata` request for `piece`, to a peer that asked
/// for `ext_id` in its extended handshake.
pub fn write_metadata_request(out: &mut Vec<u8>, ext_id: u8, piece: u32) {
    write_metadata_header(out, ext_id, MSG_TYPE_REQUEST, piece, None);
}

/// Appends a framed `ut_metadata` reject for `piece`.
pub fn write_metadata_reject(out: &mut Vec<u8>, ext_id: u8, piece: u32) {
    write_metadata_header(out, ext_id, MSG_TYPE_REJECT, piece, None);
}

/// Appends a framed `ut_metadata` data message carrying `data` as `piece`.
pub fn write_metadata_data(out: &mut Vec<u8>, ext_id: u8, piece: u32, total_size: usize, data: &[u8]) {
    let start = write_metadata_header(out, ext_id, MSG_TYPE_DATA, piece, Some(total_size));
    out.extend_from_slice(data);
    finish_frame(out, start);
}

fn write_metadata_header(out: &mut Vec<u8>, ext_id: u8, msg_type: i64, piece: u32, total_size: Option<usize>) -> usize {
    let start = begin_extended(out, ext_id);
    bencode::dict_begin(out);
    // Keys in sorted order: msg_type, piece, total_size.
    bencode::key_int(out, KEY_MSG_TYPE, msg_type);
    bencode::key_int(out, KEY_PIECE, i64::from(piece));
    if let Some(total) = total_size {
        bencode::key_int(out, KEY_TOTAL_SIZE, total as i64);
    }
    bencode::end(out);
    finish_frame(out, start);
    start
}

/// Number of 16 KiB pieces an info dict of `total_size` bytes spans.
pub fn piece_count(total_size: usize) -> u32 {
    total_size.div_ceil(METADATA_PIECE_LEN) as u32
}

/// Length of `piece` of an info dict of `total_size` bytes; `None` past the end.
pub fn piece_len(total_size: usize, piece: u32) -> Option<usize> {
    let start = (piece as usize).checked_mul(METADATA_PIECE_LEN)?;
    (start < total_size).then(|| (total_size - start).min(METADATA_PIECE_LEN))
}

/// The byte range of `piece` in an info dict of `total_size` bytes.
pub fn piece_range(total_size: usize, piece: u32) -> Option<core::ops::Range<usize>> {
    let len = piece_len(total_size, piece)?;
    let start = piece as usize * METADATA_PIECE_LEN;
    Some(start..start + len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame_of(out: &[u8]) -> Message<'_> {
        match Message::parse(out, DEFAULT_MAX_MESSAGE_LEN).unwrap() {
            Parse::Done { item, consumed } => {
                assert_eq!(consumed, out.len());
                item
            }
            Parse::NeedMore(n) => panic!("incomplete frame, {n} more bytes"),
        }
    }

    #[test]
    fn handshake_round_trip_and_incremental() {
        let mut out = Vec::new();
        write_handshake(&mut out, &[0xaa; 20], &[0x55; 20]);
        assert_eq!(out.len(), HANDSHAKE_LEN);
        assert_eq!(&out[..20], b"\x13BitTorrent protocol");
        assert_eq!(out[20 + 5], 0x10);
        for cut in 0..HANDSHAKE_LEN {
            assert_eq!(
                Handshake::parse(&out[..cut]).unwrap(),
                Parse::NeedMore(HANDSHAKE_LEN - cut)
            );
        }
        out.extend_from_slice(b"extra");
        let Parse::Done { item, consumed } = Handshake::parse(&out).unwrap() else {
            panic!()
        };
        assert_eq!(consumed, 68);
        assert_eq!(item.info_hash, &[0xaa; 20]);
        assert_eq!(item.peer_id, &[0x55; 20]);
        assert!(item.supports_extensions());
    }

    #[test]
    fn handshake_rejects_other_protocols_early() {
        assert_eq!(Handshake::parse(b"GET / HTTP/1.1"), Err(Error::NotBitTorrent));
        assert_eq!(Handshake::parse(b"\x13BitTorrent prot0"), Err(Error::NotBitTorrent));
        let mut plain = Vec::new();
        write_handshake(&mut plain, &[1; 20], &[2; 20]);
        plain[25] = 0;
        let Parse::Done { item, .. } = Handshake::parse(&plain).unwrap() else {
            panic!()
        };
        assert!(!item.supports_extensions());
    }

    #[test]
    fn framing_needs_more_and_caps_length() {
        // An `unchoke` (id 1) frame, fed byte by byte.
        let unchoke = [0, 0, 0, 1, 1];
        assert_eq!(Message::parse(&unchoke[..2], 100).unwrap(), Parse::NeedMore(2));
        assert_eq!(Message::parse(&unchoke[..4], 100).unwrap(), Parse::NeedMore(1));
        assert_eq!(frame_of(&unchoke), Message::Other { id: 1, payload: &[] });
        assert_eq!(frame_of(&[0, 0, 0, 0]), Message::KeepAlive);
        // A declared 4 GiB message is refused from its prefix alone.
        assert_eq!(
            Message::parse(&[0xff, 0xff, 0xff, 0xff], 1 << 20),
            Err(Error::MessageTooLong {
                len: u32::MAX,
                max: 1 << 20
            })
        );
        assert_eq!(
            Message::parse(&[0, 0, 0, 1, MSG_EXTENDED], 100),
            Err(Error::EmptyExtended)
        );
    }

    #[test]
    fn extended_handshake_from_real_format_bytes() {
        // The shape libtorrent sends, with keys we ignore and a nested `m`.
        let dict = b"d1:ei0e1:md11:lt_donthavei7e10:share_modei8e11:upload_onlyi3e12:ut_holepunchi4e11:ut_metadatai2e6:ut_pexi1ee13:metadata_sizei31235e4:reqqi500e11:upload_onlyi0e1:v16:libtorrent/2.0.8e";
        let hs = ExtHandshake::parse(dict).unwrap();
        assert_eq!(hs.ut_metadata, Some(2));
        assert_eq!(hs.metadata_size, Some(31235));
        assert_eq!(hs.client, Some(&b"libtorrent/2.0.8"[..]));

        // Disabled (0) and absent ut_metadata both mean "no BEP 9".
        assert_eq!(
            ExtHandshake::parse(b"d1:md11:ut_metadatai0eee").unwrap().ut_metadata,
            None
        );
        assert_eq!(ExtHandshake::parse(b"de").unwrap(), ExtHandshake::default());
        // A hostile metadata_size is refused instead of trusted.
        assert_eq!(
            ExtHandshake::parse(b"d13:metadata_sizei99999999999ee"),
            Err(Error::BadValue("metadata_size"))
        );
        assert!(matches!(ExtHandshake::parse(b"d1:m"), Err(Error::Bencode(_))));
    }

    #[test]
    fn extended_handshake_round_trip() {
        let mut out = Vec::new();
        write_ext_handshake(&mut out, 3, Some(20_000), Some(b"trawl"));
        let Message::Extended { ext_id, payload } = frame_of(&out) else {
            panic!()
        };
        assert_eq!(ext_id, EXT_HANDSHAKE_ID);
        assert_eq!(payload, b"d1:md11:ut_metadatai3ee13:metadata_sizei20000e1:v5:trawle");
        let hs = ExtHandshake::parse(payload).unwrap();
        assert_eq!((hs.ut_metadata, hs.metadata_size), (Some(3), Some(20_000)));
    }

    #[test]
    fn metadata_messages_from_bep9_examples() {
        // The three examples of BEP 9, with data bytes after the data dict.
        assert_eq!(
            MetadataMsg::parse(b"d8:msg_typei0e5:piecei0ee"),
            Ok(MetadataMsg::Request { piece: 0 })
        );
        assert_eq!(
            MetadataMsg::parse(b"d8:msg_typei1e5:piecei0e10:total_sizei34256eexxxxxxxx"),
            Ok(MetadataMsg::Data {
                piece: 0,
                total_size: 34256,
                data: b"xxxxxxxx"
            })
        );
        assert_eq!(
            MetadataMsg::parse(b"d8:msg_typei2e5:piecei0ee"),
            Ok(MetadataMsg::Reject { piece: 0 })
        );
        assert_eq!(
            MetadataMsg::parse(b"d8:msg_typei1e5:piecei0ee"),
            Err(Error::MissingKey("total_size"))
        );
        assert_eq!(
            MetadataMsg::parse(b"d8:msg_typei7e5:piecei0ee"),
            Err(Error::BadValue("msg_type"))
        );
        assert_eq!(
            MetadataMsg::parse(b"d8:msg_typei0e5:piecei-1ee"),
            Err(Error::BadValue("piece"))
        );
        assert_eq!(MetadataMsg::parse(b"i3e"), Err(Error::BadValue("ut_metadata")));
    }

    #[test]
    fn metadata_messages_round_trip() {
        let mut out = Vec::new();
        write_metadata_request(&mut out, 2, 1);
        let request_len = out.len();
        write_metadata_data(&mut out, 2, 1, 16_400, &[7; 16]);
        write_metadata_reject(&mut out, 2, 5);

        let mut rest = &out[..];
        let mut got = Vec::new();
        while let Parse::Done { item, consumed } = Message::parse(rest, DEFAULT_MAX_MESSAGE_LEN).unwrap() {
            let Message::Extended { ext_id: 2, payload } = item else {
                panic!("{item:?}")
            };
            got.push(MetadataMsg::parse(payload).unwrap());
            rest = &rest[consumed..];
            if rest.is_empty() {
                break;
            }
        }
        assert_eq!(
            got,
            [
                MetadataMsg::Request { piece: 1 },
                MetadataMsg::Data {
                    piece: 1,
                    total_size: 16_400,
                    data: &[7; 16]
                },
                MetadataMsg::Reject { piece: 5 },
            ]
        );
        assert_eq!(&out[..4], &((request_len - 4) as u32).to_be_bytes());
    }

    #[test]
    fn piece_arithmetic() {
        assert_eq!(piece_count(1), 1);
        assert_eq!(piece_count(METADATA_PIECE_LEN), 1);
        assert_eq!(piece_count(METADATA_PIECE_LEN + 1), 2);
        assert_eq!(piece_len(34256, 0), Some(16384));
        assert_eq!(piece_len(34256, 2), Some(34256 - 32768));
        assert_eq!(piece_len(34256, 3), None);
        assert_eq!(piece_len(100, u32::MAX), None);
        assert_eq!(piece_range(34256, 1), Some(16384..32768));
    }
}
