//! Typed KRPC messages (BEP 5, 32, 33, 42, 43, 51): borrowed views and encoders.
//!
//! Owns: [`Message::decode`], which reads a datagram in one pass into views that
//! borrow from it, and the `encode_*` functions, which append a message with
//! sorted keys to a caller-owned buffer.
//! Must not: do I/O, allocate, copy strings, or panic on any input (the fuzz
//! target in `engine/fuzz` checks this together with decode→encode→decode
//! stability).
//!
//! # Leniency, applied the same way everywhere
//! - Unknown keys and unknown methods are skipped (validated, not interpreted).
//! - A key that appears twice: the last occurrence wins.
//! - Optional decorations that are malformed are ignored rather than fatal:
//!   `v` that is not a string, `ip` that is not a 6- or 18-byte string, flags
//!   (`ro`, `implied_port`, `seed`, `scrape`, `noseed`) that are not integers
//!   (an integer other than 0 means set), and `want` items other than `n4`/`n6`.
//! - Everything a peer acts on is strict: `t`, `y`, `q`, `a`, `r`, `e`, ids,
//!   targets, info hashes, `port`, `token`, and the lengths of `nodes`,
//!   `nodes6`, `values`, `samples`, `BFsd`, `BFpe`, `interval`, `num`.

use core::fmt;
use std::net::SocketAddr;

use super::bencode::{self, Decoder};
use super::compact::{self, CompactNode, CompactNodes, Peers, Samples};
use super::wire::*;

/// Why a datagram is not a KRPC message we can use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Not well-formed bencode.
    Bencode(bencode::Error),
    /// The message, or its `a` or `r`, is not a dictionary.
    NotADict { offset: usize },
    /// A required key is absent.
    Missing { key: &'static [u8] },
    /// A key has the wrong type or length.
    Invalid { key: &'static [u8], offset: usize },
    /// `y` is not `q`, `r` or `e`.
    UnknownType { offset: usize },
}

impl DecodeError {
    /// The byte offset of the problem, when there is one place to point at.
    pub fn offset(&self) -> Option<usize> {
        match *self {
            DecodeError::Bencode(e) => Some(e.offset),
            DecodeError::NotADict { offset }
            | DecodeError::Invalid { offset, .. }
            | DecodeError::UnknownType { offset } => Some(offset),
            DecodeError::Missing { .. } => None,
        }
    }
}

impl From<bencode::Error> for DecodeError {
    fn from(e: bencode::Error) -> Self {
        DecodeError::Bencode(e)
    }
}

fn key_str(key: &'static [u8]) -> &'static str {
    core::str::from_utf8(key).unwrap_or("?")
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            DecodeError::Bencode(e) => write!(f, "krpc: {e}"),
            DecodeError::NotADict { offset } => write!(f, "krpc: expected a dictionary at byte {offset}"),
            DecodeError::Missing { key } => write!(f, "krpc: missing key {:?}", key_str(key)),
            DecodeError::Invalid { key, offset } => {
                write!(f, "krpc: invalid value for {:?} at byte {offset}", key_str(key))
            }
            DecodeError::UnknownType { offset } => write!(f, "krpc: unknown message type at byte {offset}"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// BEP 32 `want`: which address families the querier wants nodes for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Want {
    pub v4: bool,
    pub v6: bool,
}

/// A query, borrowing from the datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Query<'a> {
    Ping {
        id: &'a [u8; ID_LEN],
    },
    FindNode {
        id: &'a [u8; ID_LEN],
        target: &'a [u8; ID_LEN],
        want: Want,
    },
    GetPeers {
        id: &'a [u8; ID_LEN],
        info_hash: &'a [u8; ID_LEN],
        want: Want,
        /// BEP 33: reply with `BFsd`/`BFpe`.
        scrape: bool,
        /// BEP 33: leave seeds out of `values`.
        noseed: bool,
    },
    AnnouncePeer {
        id: &'a [u8; ID_LEN],
        info_hash: &'a [u8; ID_LEN],
        /// 0 when absent and `implied_port` is set.
        port: u16,
        /// Use the datagram's source port instead of `port`.
        implied_port: bool,
        token: &'a [u8],
        /// BEP 33: the announcer is a seed.
        seed: bool,
    },
    /// BEP 51.
    SampleInfohashes {
        id: &'a [u8; ID_LEN],
        target: &'a [u8; ID_LEN],
        want: Want,
    },
    /// A method we do not implement; answered with error 204.
    Unknown {
        method: &'a [u8],
        id: Option<&'a [u8; ID_LEN]>,
    },
}

impl<'a> Query<'a> {
    /// The querier's node id (absent only for unknown methods without one).
    pub fn id(&self) -> Option<&'a [u8; ID_LEN]> {
        match *self {
            Query::Ping { id }
            | Query::FindNode { id, .. }
            | Query::GetPeers { id, .. }
            | Query::AnnouncePeer { id, .. }
            | Query::SampleInfohashes { id, .. } => Some(id),
            Query::Unknown { id, .. } => id,
        }
    }

    /// The method name on the wire.
    pub fn method(&self) -> &'a [u8] {
        match *self {
            Query::Ping { .. } => METHOD_PING,
            Query::FindNode { .. } => METHOD_FIND_NODE,
            Query::GetPeers { .. } => METHOD_GET_PEERS,
            Query::AnnouncePeer { .. } => METHOD_ANNOUNCE_PEER,
            Query::SampleInfohashes { .. } => METHOD_SAMPLE_INFOHASHES,
            Query::Unknown { method, .. } => method,
        }
    }
}

/// A reply. KRPC replies do not name their method, so one view carries every
/// optional field; absent lists are empty iterators.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response<'a> {
    pub id: &'a [u8; ID_LEN],
    pub nodes: CompactNodes<'a>,
    /// BEP 32.
    pub nodes6: CompactNodes<'a>,
    pub values: Peers<'a>,
    pub token: Option<&'a [u8]>,
    /// BEP 51.
    pub samples: Samples<'a>,
    /// BEP 51: seconds before the node should be sampled again.
    pub interval: Option<i64>,
    /// BEP 51: how many info hashes the node holds.
    pub num: Option<i64>,
    /// BEP 33.
    pub bf_seeds: Option<&'a [u8; BLOOM_LEN]>,
    /// BEP 33.
    pub bf_peers: Option<&'a [u8; BLOOM_LEN]>,
    /// libtorrent's `n`: the torrent name announcers gave (untrusted, unvalidated bytes).
    pub name: Option<&'a [u8]>,
}

/// An error reply: `e = [code, message]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ErrorReply<'a> {
    pub code: i64,
    pub message: &'a [u8],
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind<'a> {
    Query(Query<'a>),
    Response(Response<'a>),
    Error(ErrorReply<'a>),
}

/// A decoded KRPC message, borrowing from the datagram.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message<'a> {
    pub transaction_id: &'a [u8],
    pub version: Option<&'a [u8]>,
    /// BEP 42: our address as the sender of a reply saw it.
    pub requester_ip: Option<SocketAddr>,
    /// BEP 43: the querier is read-only.
    pub read_only: bool,
    pub kind: Kind<'a>,
}

/// The union of `a` and `r` keys, read in one pass before the message type is
/// known (`a`/`r` sort before `q` and `y`). Raw slices keep their offsets so
/// that only the fields the message kind uses are validated.
#[derive(Default)]
struct Fields<'a> {
    id: Option<(&'a [u8], usize)>,
    target: Option<(&'a [u8], usize)>,
    info_hash: Option<(&'a [u8], usize)>,
    port: Option<(i64, usize)>,
    token: Option<&'a [u8]>,
    implied_port: bool,
    seed: bool,
    scrape: bool,
    noseed: bool,
    want: Want,
    nodes: CompactNodes<'a>,
    nodes6: CompactNodes<'a>,
    values: Peers<'a>,
    samples: Samples<'a>,
    interval: Option<i64>,
    num: Option<i64>,
    bf_seeds: Option<&'a [u8; BLOOM_LEN]>,
    bf_peers: Option<&'a [u8; BLOOM_LEN]>,
    name: Option<&'a [u8]>,
}

#[inline(always)]
fn expect_bytes<'a>(d: &mut Decoder<'a>, key: &'static [u8]) -> Result<&'a [u8], DecodeError> {
    if !d.at_bytes() {
        return Err(invalid_or_truncated(d, key));
    }
    Ok(d.bytes()?)
}

#[inline(always)]
fn expect_int(d: &mut Decoder<'_>, key: &'static [u8]) -> Result<i64, DecodeError> {
    if !d.at_int() {
        return Err(invalid_or_truncated(d, key));
    }
    Ok(d.int()?)
}

/// A wrong type is `Invalid`; running out of input is still `Truncated`.
#[cold]
fn invalid_or_truncated(d: &Decoder<'_>, key: &'static [u8]) -> DecodeError {
    match d.peek() {
        None => DecodeError::Bencode(bencode::Error {
            kind: bencode::ErrorKind::Truncated,
            offset: d.position(),
        }),
        Some(_) => DecodeError::Invalid {
            key,
            offset: d.position(),
        },
    }
}

/// An optional string: anything else is validated and ignored.
#[inline]
fn lenient_bytes<'a>(d: &mut Decoder<'a>) -> Result<Option<&'a [u8]>, DecodeError> {
    if d.at_bytes() {
        return Ok(Some(d.bytes()?));
    }
    d.skip()?;
    Ok(None)
}

/// A flag: an integer other than 0 is set; anything else is validated and ignored.
#[inline]
fn flag(d: &mut Decoder<'_>) -> Result<bool, DecodeError> {
    if d.at_int() {
        return Ok(d.int()? != 0);
    }
    d.skip()?;
    Ok(false)
}

#[inline]
fn fixed<'a, const N: usize>(d: &mut Decoder<'a>, key: &'static [u8]) -> Result<&'a [u8; N], DecodeError> {
    let at = d.position();
    let b = expect_bytes(d, key)?;
    b.try_into().map_err(|_| DecodeError::Invalid { key, offset: at })
}

fn want(d: &mut Decoder<'_>) -> Result<Want, DecodeError> {
    let mut w = Want::default();
    if !d.at_list() {
        d.skip()?;
        return Ok(w);
    }
    d.list_begin()?;
    while d.list_next()? {
        match lenient_bytes(d)? {
            Some(WANT_V4) => w.v4 = true,
            Some(WANT_V6) => w.v6 = true,
            _ => {}
        }
    }
    Ok(w)
}

/// Reads an `a` or `r` dictionary into `f` (in place: `Fields` is large).
fn fields<'a>(d: &mut Decoder<'a>, f: &mut Fields<'a>) -> Result<(), DecodeError> {
    if !d.at_dict() {
        return Err(match d.peek() {
            None => invalid_or_truncated(d, KEY_ARGS),
            Some(_) => DecodeError::NotADict { offset: d.position() },
        });
    }
    d.dict_begin()?;
    while let Some(key) = d.next_key()? {
        let at = d.position();
        // Dispatch on the length first: one compare of a short fixed-size key
        // instead of a chain of slice comparisons.
        match (key.len(), key) {
            (2, ARG_ID) => f.id = Some((expect_bytes(d, ARG_ID)?, at)),
            (5, RESP_NODES) => {
                f.nodes = CompactNodes::v4(expect_bytes(d, RESP_NODES)?).ok_or(DecodeError::Invalid {
                    key: RESP_NODES,
                    offset: at,
                })?
            }
            (7, RESP_SAMPLES) => {
                f.samples = Samples::new(expect_bytes(d, RESP_SAMPLES)?).ok_or(DecodeError::Invalid {
                    key: RESP_SAMPLES,
                    offset: at,
                })?
            }
            (3, RESP_NUM) => f.num = Some(expect_int(d, RESP_NUM)?),
            (8, RESP_INTERVAL) => f.interval = Some(expect_int(d, RESP_INTERVAL)?),
            (6, ARG_TARGET) => f.target = Some((expect_bytes(d, ARG_TARGET)?, at)),
            (9, ARG_INFO_HASH) => f.info_hash = Some((expect_bytes(d, ARG_INFO_HASH)?, at)),
            (5, RESP_TOKEN) => f.token = Some(expect_bytes(d, RESP_TOKEN)?),
            (6, RESP_VALUES) => {
                if !d.at_list() {
                    return Err(invalid_or_truncated(d, RESP_VALUES));
                }
                f.values = Peers::decode(d)?.ok_or(DecodeError::Invalid {
                    key: RESP_VALUES,
                    offset: at,
                })?;
            }
            (6, RESP_NODES6) => {
                f.nodes6 = CompactNodes::v6(expect_bytes(d, RESP_NODES6)?).ok_or(DecodeError::Invalid {
                    key: RESP_NODES6,
                    offset: at,
                })?
            }
            (4, ARG_PORT) => f.port = Some((expect_int(d, ARG_PORT)?, at)),
            (12, ARG_IMPLIED_PORT) => f.implied_port = flag(d)?,
            (4, ARG_SEED) => f.seed = flag(d)?,
            (6, ARG_SCRAPE) => f.scrape = flag(d)?,
            (6, ARG_NOSEED) => f.noseed = flag(d)?,
            (4, ARG_WANT) => f.want = want(d)?,
            (4, RESP_BF_SEEDS) => f.bf_seeds = Some(fixed(d, RESP_BF_SEEDS)?),
            (4, RESP_BF_PEERS) => f.bf_peers = Some(fixed(d, RESP_BF_PEERS)?),
            (1, RESP_NAME) => f.name = Some(expect_bytes(d, RESP_NAME)?),
            _ => d.skip()?,
        }
    }
    Ok(())
}

fn error_list<'a>(d: &mut Decoder<'a>) -> Result<ErrorReply<'a>, DecodeError> {
    let at = d.position();
    let bad = DecodeError::Invalid {
        key: KEY_ERROR,
        offset: at,
    };
    if !d.at_list() {
        return Err(invalid_or_truncated(d, KEY_ERROR));
    }
    d.list_begin()?;
    if !d.list_next()? {
        return Err(bad);
    }
    let code = expect_int(d, KEY_ERROR)?;
    let mut message: &[u8] = &[];
    if d.list_next()? {
        message = expect_bytes(d, KEY_ERROR)?;
        // Items after the message carry nothing we use.
        while d.list_next()? {
            d.skip()?;
        }
    }
    Ok(ErrorReply { code, message })
}

#[inline]
fn id20<'a>(raw: Option<(&'a [u8], usize)>, key: &'static [u8]) -> Result<&'a [u8; ID_LEN], DecodeError> {
    let (b, offset) = raw.ok_or(DecodeError::Missing { key })?;
    b.try_into().map_err(|_| DecodeError::Invalid { key, offset })
}

fn query<'a>(method: &'a [u8], args: Option<&Fields<'a>>) -> Result<Query<'a>, DecodeError> {
    let known = matches!(
        method,
        METHOD_PING | METHOD_FIND_NODE | METHOD_GET_PEERS | METHOD_ANNOUNCE_PEER | METHOD_SAMPLE_INFOHASHES
    );
    if !known {
        let id = args.and_then(|a| a.id).and_then(|(b, _)| b.try_into().ok());
        return Ok(Query::Unknown { method, id });
    }
    let a = args.ok_or(DecodeError::Missing { key: KEY_ARGS })?;
    let id = id20(a.id, ARG_ID)?;
    Ok(match method {
        METHOD_PING => Query::Ping { id },
        METHOD_FIND_NODE => Query::FindNode {
            id,
            target: id20(a.target, ARG_TARGET)?,
            want: a.want,
        },
        METHOD_GET_PEERS => Query::GetPeers {
            id,
            info_hash: id20(a.info_hash, ARG_INFO_HASH)?,
            want: a.want,
            scrape: a.scrape,
            noseed: a.noseed,
        },
        METHOD_ANNOUNCE_PEER => {
            let port = match a.port {
                Some((p, offset)) => u16::try_from(p).map_err(|_| DecodeError::Invalid { key: ARG_PORT, offset })?,
                // The port is meaningless when the source port is implied.
                None if a.implied_port => 0,
                None => return Err(DecodeError::Missing { key: ARG_PORT }),
            };
            Query::AnnouncePeer {
                id,
                info_hash: id20(a.info_hash, ARG_INFO_HASH)?,
                port,
                implied_port: a.implied_port,
                token: a.token.ok_or(DecodeError::Missing { key: ARG_TOKEN })?,
                seed: a.seed,
            }
        }
        _ => Query::SampleInfohashes {
            id,
            target: id20(a.target, ARG_TARGET)?,
            want: a.want,
        },
    })
}

fn response<'a>(r: &Fields<'a>) -> Result<Response<'a>, DecodeError> {
    Ok(Response {
        id: id20(r.id, RESP_ID)?,
        nodes: r.nodes.clone(),
        nodes6: r.nodes6.clone(),
        values: r.values.clone(),
        token: r.token,
        samples: r.samples.clone(),
        interval: r.interval,
        num: r.num,
        bf_seeds: r.bf_seeds,
        bf_peers: r.bf_peers,
        name: r.name,
    })
}

impl<'a> Message<'a> {
    /// Decodes one datagram. One pass, no allocation, nothing copied.
    ///
    /// ```
    /// use trawl_engine::codec::krpc::{Kind, Message, Query};
    ///
    /// // BEP 5's ping example.
    /// let datagram = b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe";
    /// let msg = Message::decode(datagram).unwrap();
    /// assert_eq!(msg.transaction_id, b"aa");
    /// let Kind::Query(Query::Ping { id }) = msg.kind else { panic!("a ping") };
    /// assert_eq!(id, b"abcdefghij0123456789"); // borrowed from `datagram`
    ///
    /// // Bad input is a typed error with the offset where decoding stopped.
    /// let err = Message::decode(b"d1:ad2:id3:abce").unwrap_err();
    /// assert!(err.offset().is_some());
    /// ```
    pub fn decode(buf: &'a [u8]) -> Result<Message<'a>, DecodeError> {
        let mut d = Decoder::new(buf);
        if !d.at_dict() {
            return Err(match d.peek() {
                None => DecodeError::Bencode(bencode::Error {
                    kind: bencode::ErrorKind::Truncated,
                    offset: 0,
                }),
                Some(_) => DecodeError::NotADict { offset: 0 },
            });
        }
        d.dict_begin()?;
        let mut transaction_id = None;
        let mut message_type = None;
        let mut method = None;
        // `a` and `r` are parsed in place; the flags say whether they were present.
        let mut args = Fields::default();
        let mut has_args = false;
        let mut reply = Fields::default();
        let mut has_reply = false;
        let mut error = None;
        let mut version = None;
        let mut requester_ip = None;
        let mut read_only = false;
        while let Some(key) = d.next_key()? {
            let at = d.position();
            match key {
                KEY_RESPONSE => {
                    reply = Fields::default();
                    fields(&mut d, &mut reply)?;
                    has_reply = true;
                }
                KEY_TRANSACTION => transaction_id = Some(expect_bytes(&mut d, KEY_TRANSACTION)?),
                KEY_TYPE => message_type = Some((expect_bytes(&mut d, KEY_TYPE)?, at)),
                KEY_ARGS => {
                    args = Fields::default();
                    fields(&mut d, &mut args)?;
                    has_args = true;
                }
                KEY_METHOD => method = Some(expect_bytes(&mut d, KEY_METHOD)?),
                KEY_VERSION => version = lenient_bytes(&mut d)?,
                KEY_IP => requester_ip = lenient_bytes(&mut d)?.and_then(compact::peer_from_bytes),
                KEY_READ_ONLY => read_only = flag(&mut d)?,
                KEY_ERROR => error = Some(error_list(&mut d)?),
                _ => d.skip()?,
            }
        }
        d.finish()?;

        let transaction_id = transaction_id.ok_or(DecodeError::Missing { key: KEY_TRANSACTION })?;
        let (message_type, type_at) = message_type.ok_or(DecodeError::Missing { key: KEY_TYPE })?;
        let kind = match message_type {
            TYPE_RESPONSE if has_reply => Kind::Response(response(&reply)?),
            TYPE_RESPONSE => return Err(DecodeError::Missing { key: KEY_RESPONSE }),
            TYPE_QUERY => {
                let method = method.ok_or(DecodeError::Missing { key: KEY_METHOD })?;
                Kind::Query(query(method, has_args.then_some(&args))?)
            }
            TYPE_ERROR => Kind::Error(error.ok_or(DecodeError::Missing { key: KEY_ERROR })?),
            _ => return Err(DecodeError::UnknownType { offset: type_at }),
        };
        Ok(Message {
            transaction_id,
            version,
            requester_ip,
            read_only,
            kind,
        })
    }
}

// ---- Encoders -----------------------------------------------------------
// Keys are written in sorted byte order, as BEP 3 requires; the order of the
// statements below is that order.

/// What a reply carries, as slices the caller owns. Empty slices and `None`s
/// are left out of the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResponseOut<'a> {
    pub id: &'a [u8; ID_LEN],
    /// IPv4 entries only; others are left out (they belong in `nodes6`).
    pub nodes: &'a [CompactNode],
    /// IPv6 entries only.
    pub nodes6: &'a [CompactNode],
    pub values: &'a [SocketAddr],
    pub token: Option<&'a [u8]>,
    /// Written whenever non-empty or `interval`/`num` is set (a BEP 51 reply).
    pub samples: &'a [[u8; SAMPLE_LEN]],
    pub interval: Option<i64>,
    pub num: Option<i64>,
    pub bf_seeds: Option<&'a [u8; BLOOM_LEN]>,
    pub bf_peers: Option<&'a [u8; BLOOM_LEN]>,
    /// libtorrent's `n` (torrent name), written when set.
    pub name: Option<&'a [u8]>,
}

impl<'a> ResponseOut<'a> {
    /// A reply carrying only the responder's id (the `ping` and `announce_peer` reply).
    pub fn new(id: &'a [u8; ID_LEN]) -> Self {
        Self {
            id,
            nodes: &[],
            nodes6: &[],
            values: &[],
            token: None,
            samples: &[],
            interval: None,
            num: None,
            bf_seeds: None,
            bf_peers: None,
            name: None,
        }
    }
}

fn want_out(out: &mut Vec<u8>, want: Want) {
    if want.v4 || want.v6 {
        bencode::bytes(out, ARG_WANT);
        bencode::list_begin(out);
        if want.v4 {
            bencode::bytes(out, WANT_V4);
        }
        if want.v6 {
            bencode::bytes(out, WANT_V6);
        }
        bencode::end(out);
    }
}

fn flag_out(out: &mut Vec<u8>, key: &[u8], set: bool) {
    if set {
        bencode::key_int(out, key, 1);
    }
}

/// The keys after the body, shared by every message: `t`, `v`, `y`.
fn trailer(out: &mut Vec<u8>, transaction_id: &[u8], version: Option<&[u8]>, message_type: &[u8]) {
    bencode::key_bytes(out, KEY_TRANSACTION, transaction_id);
    if let Some(v) = version {
        bencode::key_bytes(out, KEY_VERSION, v);
    }
    bencode::key_bytes(out, KEY_TYPE, message_type);
    bencode::end(out);
}

/// Appends a query. `read_only` sets BEP 43 `ro`.
pub fn encode_query(
    out: &mut Vec<u8>,
    transaction_id: &[u8],
    query: &Query<'_>,
    read_only: bool,
    version: Option<&[u8]>,
) {
    bencode::dict_begin(out);
    bencode::bytes(out, KEY_ARGS);
    bencode::dict_begin(out);
    match *query {
        Query::Ping { id } => bencode::key_bytes(out, ARG_ID, id),
        Query::FindNode { id, target, want } | Query::SampleInfohashes { id, target, want } => {
            bencode::key_bytes(out, ARG_ID, id);
            bencode::key_bytes(out, ARG_TARGET, target);
            want_out(out, want);
        }
        Query::GetPeers {
            id,
            info_hash,
            want,
            scrape,
            noseed,
        } => {
            bencode::key_bytes(out, ARG_ID, id);
            bencode::key_bytes(out, ARG_INFO_HASH, info_hash);
            flag_out(out, ARG_NOSEED, noseed);
            flag_out(out, ARG_SCRAPE, scrape);
            want_out(out, want);
        }
        Query::AnnouncePeer {
            id,
            info_hash,
            port,
            implied_port,
            token,
            seed,
        } => {
            bencode::key_bytes(out, ARG_ID, id);
            flag_out(out, ARG_IMPLIED_PORT, implied_port);
            bencode::key_bytes(out, ARG_INFO_HASH, info_hash);
            bencode::key_int(out, ARG_PORT, i64::from(port));
            flag_out(out, ARG_SEED, seed);
            bencode::key_bytes(out, ARG_TOKEN, token);
        }
        Query::Unknown { id, .. } => {
            if let Some(id) = id {
                bencode::key_bytes(out, ARG_ID, id);
            }
        }
    }
    bencode::end(out);
    bencode::key_bytes(out, KEY_METHOD, query.method());
    flag_out(out, KEY_READ_ONLY, read_only);
    trailer(out, transaction_id, version, TYPE_QUERY);
}

/// Appends a reply. `requester_ip` is BEP 42's `ip`: the querier's address as we saw it.
pub fn encode_response(
    out: &mut Vec<u8>,
    transaction_id: &[u8],
    r: &ResponseOut<'_>,
    requester_ip: Option<SocketAddr>,
    version: Option<&[u8]>,
) {
    bencode::dict_begin(out);
    if let Some(ip) = requester_ip {
        bencode::bytes(out, KEY_IP);
        compact::write_peer(out, &ip);
    }
    bencode::bytes(out, KEY_RESPONSE);
    bencode::dict_begin(out);
    if let Some(bf) = r.bf_peers {
        bencode::key_bytes(out, RESP_BF_PEERS, bf);
    }
    if let Some(bf) = r.bf_seeds {
        bencode::key_bytes(out, RESP_BF_SEEDS, bf);
    }
    bencode::key_bytes(out, RESP_ID, r.id);
    if let Some(i) = r.interval {
        bencode::key_int(out, RESP_INTERVAL, i);
    }
    if let Some(n) = r.name {
        bencode::key_bytes(out, RESP_NAME, n);
    }
    if r.nodes.iter().any(|n| n.addr.is_ipv4()) {
        bencode::bytes(out, RESP_NODES);
        compact::write_nodes(out, r.nodes, false);
    }
    if r.nodes6.iter().any(|n| n.addr.is_ipv6()) {
        bencode::bytes(out, RESP_NODES6);
        compact::write_nodes(out, r.nodes6, true);
    }
    if let Some(n) = r.num {
        bencode::key_int(out, RESP_NUM, n);
    }
    if !r.samples.is_empty() || r.interval.is_some() || r.num.is_some() {
        bencode::bytes(out, RESP_SAMPLES);
        compact::write_samples(out, r.samples);
    }
    if let Some(t) = r.token {
        bencode::key_bytes(out, RESP_TOKEN, t);
    }
    if !r.values.is_empty() {
        bencode::bytes(out, RESP_VALUES);
        compact::write_values(out, r.values);
    }
    bencode::end(out);
    trailer(out, transaction_id, version, TYPE_RESPONSE);
}

/// Appends an error reply (`code` is one of the `ERROR_*` constants in [`super::wire`]).
pub fn encode_error(out: &mut Vec<u8>, transaction_id: &[u8], code: i64, message: &[u8], version: Option<&[u8]>) {
    bencode::dict_begin(out);
    bencode::bytes(out, KEY_ERROR);
    bencode::list_begin(out);
    bencode::int(out, code);
    bencode::bytes(out, message);
    bencode::end(out);
    trailer(out, transaction_id, version, TYPE_ERROR);
}

/// Encodes a decoded message again with the public encoders, appending to `out`.
///
/// Round-trip checks (the tests and the fuzz target) use it. It collects the
/// compact lists into owned vectors first, so it allocates: keep it off the
/// hot path.
pub fn reencode(m: &Message<'_>, out: &mut Vec<u8>) {
    match &m.kind {
        Kind::Query(q) => encode_query(out, m.transaction_id, q, m.read_only, m.version),
        Kind::Error(e) => encode_error(out, m.transaction_id, e.code, e.message, m.version),
        Kind::Response(r) => {
            let nodes: Vec<CompactNode> = r.nodes.clone().collect();
            let nodes6: Vec<CompactNode> = r.nodes6.clone().collect();
            let values: Vec<SocketAddr> = r.values.clone().collect();
            let samples: Vec<[u8; 20]> = r.samples.clone().copied().collect();
            let reply = ResponseOut {
                id: r.id,
                nodes: &nodes,
                nodes6: &nodes6,
                values: &values,
                token: r.token,
                samples: &samples,
                interval: r.interval,
                num: r.num,
                bf_seeds: r.bf_seeds,
                bf_peers: r.bf_peers,
                name: r.name,
            };
            encode_response(out, m.transaction_id, &reply, m.requester_ip, m.version)
        }
    }
}
