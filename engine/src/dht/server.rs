//! The answering side of a full (not read-only) node: `ping`, `find_node`,
//! `get_peers` (values or nodes, a token, BEP 33 scrape filters), `announce_peer`,
//! `sample_infohashes` (BEP 51), and KRPC errors for what we cannot serve. Owns the
//! announce tokens, the peer store and the per-IP answer limiter. Every reply is
//! written into a caller-owned buffer and bounded by `max_reply_len`.
//! Must not send, and must not touch the routing table beyond reading it.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use rand::Rng;

use crate::codec::bencode;
use crate::codec::compact::CompactNode;
use crate::codec::krpc::{self, Query, ResponseOut, Want};
use crate::codec::scrape::ScrapeBloom;
use crate::codec::wire::{
    BLOOM_LEN, COMPACT_NODE_V4_LEN, COMPACT_NODE_V6_LEN, COMPACT_PEER_V6_LEN, ERROR_METHOD_UNKNOWN, ERROR_PROTOCOL,
    ERROR_SERVER, ID_LEN, KEY_TRANSACTION, KEY_TYPE, TYPE_QUERY,
};

use super::config::{AnswerLimits, StoreLimits};
use super::id::NodeId;
use super::pacing::KeyedBuckets;
use super::peer_store::PeerStore;
use super::routing::RoutingTable;
use super::token::Tokens;

// Texts of the KRPC errors we send.
const MSG_BAD_TOKEN: &[u8] = b"bad token";
const MSG_BAD_PORT: &[u8] = b"invalid port";
const MSG_STORE_FULL: &[u8] = b"peer store full";
const MSG_UNKNOWN_METHOD: &[u8] = b"method unknown";
const MSG_MALFORMED: &[u8] = b"malformed query";

/// Bytes a reply needs besides its variable lists and its transaction id: keys,
/// id, token, a v6 `ip`, `v`, list keys and length prefixes, and framing (111
/// counted), rounded up.
const REPLY_OVERHEAD: usize = 128;
/// One BEP 33 filter with its key and length prefix.
const BLOOM_FIELD: usize = BLOOM_LEN + 10;

/// What `answer` wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answered {
    Response,
    /// A KRPC error with this code; `refused` says why when it was our choice.
    Error {
        code: i64,
        refused: Option<Refusal>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    BadToken,
    StoreFull,
}

/// What the server reads from the node that owns it, for one answer.
pub struct Context<'a> {
    pub now: Instant,
    pub own: &'a NodeId,
    pub routing: &'a RoutingTable,
    pub k: usize,
    pub version: Option<&'a [u8]>,
    /// Largest reply for this query, in bytes (further bounded by
    /// `AnswerLimits::max_reply_len`): a caller bounding amplification passes
    /// a multiple of the query's size. Lists are trimmed to fit.
    pub max_reply: usize,
}

#[derive(Clone)]
pub struct Server {
    tokens: Tokens,
    store: PeerStore,
    limiter: KeyedBuckets<IpAddr>,
    limits: AnswerLimits,
    store_limits: StoreLimits,
    // Scratch reused across answers.
    nodes: Vec<CompactNode>,
    values: Vec<SocketAddr>,
    samples: Vec<[u8; 20]>,
}

impl Server {
    /// `hashers` seed the peer store's and the limiter's maps.
    pub fn new(
        now: Instant,
        peer_ttl: std::time::Duration,
        limits: AnswerLimits,
        store_limits: StoreLimits,
        rng: &mut impl Rng,
        hashers: [ahash::RandomState; 2],
    ) -> Server {
        let [store_hasher, limiter_hasher] = hashers;
        Server {
            tokens: Tokens::new(now, rng),
            store: PeerStore::new(peer_ttl, store_limits.clone(), store_hasher),
            limiter: KeyedBuckets::new(
                limits.per_ip_rate,
                limits.per_ip_burst,
                limits.tracked_ips,
                limiter_hasher,
            ),
            limits,
            store_limits,
            nodes: Vec::new(),
            values: Vec::new(),
            samples: Vec::new(),
        }
    }

    pub fn store(&self) -> &PeerStore {
        &self.store
    }

    /// Takes one answer from `ip`'s budget; false means stay silent.
    pub fn admit(&mut self, now: Instant, ip: IpAddr) -> bool {
        self.limiter.take(now, ip)
    }

    /// Token rotation, peer expiry, limiter pruning.
    pub fn maintain(&mut self, now: Instant, rng: &mut impl Rng) {
        self.tokens.rotate_if_due(now, rng);
        self.store.expire(now);
        self.limiter.prune(now);
    }

    /// Writes the reply to `query` from `from` into `out` (cleared first).
    pub fn answer(
        &mut self,
        cx: &Context<'_>,
        rng: &mut impl Rng,
        from: SocketAddr,
        tid: &[u8],
        query: &Query<'_>,
        out: &mut Vec<u8>,
    ) -> Answered {
        out.clear();
        let mut r = ResponseOut::new(cx.own);
        let token;
        let (bf_seeds, bf_peers);
        let mut budget = cx
            .max_reply
            .min(self.limits.max_reply_len)
            .saturating_sub(REPLY_OVERHEAD + tid.len());
        match *query {
            Query::Ping { .. } => {}
            Query::FindNode { target, want, .. } => {
                cx.routing.closest(cx.now, target, cx.k, &mut self.nodes);
                self.nodes.truncate(budget / node_bytes(want, from));
                set_nodes(&mut r, &self.nodes, want, from);
            }
            Query::GetPeers {
                info_hash,
                want,
                scrape,
                noseed,
                ..
            } => {
                token = self.tokens.token_for(from.ip());
                r.token = Some(&token);
                // The filters only when they fit: under a tight amplification
                // bound the reply is answered as by a node without BEP 33.
                if scrape && budget >= 2 * BLOOM_FIELD && self.store.contains(info_hash) {
                    let (mut seeds, mut peers) = (ScrapeBloom::new(), ScrapeBloom::new());
                    for (addr, seed) in self.store.live(cx.now, info_hash) {
                        peers.insert(addr.ip());
                        if seed {
                            seeds.insert(addr.ip());
                        }
                    }
                    (bf_seeds, bf_peers) = (*seeds.as_bytes(), *peers.as_bytes());
                    r.bf_seeds = Some(&bf_seeds);
                    r.bf_peers = Some(&bf_peers);
                    budget = budget.saturating_sub(2 * BLOOM_FIELD);
                }
                // Each value is a "6:" or "18:" string; stored peers may be of either
                // family, so size the list for the larger.
                let per_value = COMPACT_PEER_V6_LEN + 3;
                let max_values = self.store_limits.max_values.min(budget / per_value);
                self.store
                    .peers(cx.now, info_hash, noseed, max_values, rng, &mut self.values);
                if self.values.is_empty() {
                    cx.routing.closest(cx.now, info_hash, cx.k, &mut self.nodes);
                    self.nodes.truncate(budget / node_bytes(want, from));
                    set_nodes(&mut r, &self.nodes, want, from);
                } else {
                    r.values = &self.values;
                }
            }
            Query::AnnouncePeer {
                info_hash,
                port,
                implied_port,
                token,
                seed,
                ..
            } => {
                if !self.tokens.is_valid(from.ip(), token) {
                    return error(
                        out,
                        tid,
                        ERROR_PROTOCOL,
                        MSG_BAD_TOKEN,
                        cx.version,
                        Some(Refusal::BadToken),
                    );
                }
                let port = if implied_port { from.port() } else { port };
                if port == 0 {
                    return error(out, tid, ERROR_PROTOCOL, MSG_BAD_PORT, cx.version, None);
                }
                if self
                    .store
                    .announce(cx.now, *info_hash, SocketAddr::new(from.ip(), port), seed)
                    .is_err()
                {
                    return error(
                        out,
                        tid,
                        ERROR_SERVER,
                        MSG_STORE_FULL,
                        cx.version,
                        Some(Refusal::StoreFull),
                    );
                }
            }
            Query::SampleInfohashes { target, want, .. } => {
                cx.routing.closest(cx.now, target, cx.k, &mut self.nodes);
                // Nodes get at most half the room; samples the rest.
                self.nodes.truncate(budget / 2 / node_bytes(want, from));
                set_nodes(&mut r, &self.nodes, want, from);
                budget = budget.saturating_sub(self.nodes.len() * node_bytes(want, from));
                let max = self.store_limits.max_samples.min(budget / ID_LEN);
                self.store.sample(max, rng, &mut self.samples);
                r.samples = &self.samples;
                r.interval = Some(self.store_limits.sample_interval.as_secs() as i64);
                r.num = Some(self.store.infohash_count() as i64);
            }
            Query::Unknown { .. } => {
                return error(out, tid, ERROR_METHOD_UNKNOWN, MSG_UNKNOWN_METHOD, cx.version, None);
            }
        }
        krpc::encode_response(out, tid, &r, Some(from), cx.version);
        Answered::Response
    }

    /// For a datagram that is a query but failed to decode: a protocol error
    /// (203) to its transaction id, if it has one. `None` means stay silent.
    pub fn malformed(&self, bytes: &[u8], version: Option<&[u8]>, out: &mut Vec<u8>) -> Option<Answered> {
        out.clear();
        let dict = bencode::decode(bytes).ok()?.as_dict()?;
        let is_query = dict.get(KEY_TYPE).and_then(|v| v.as_bytes()) == Some(TYPE_QUERY);
        let tid = dict.get(KEY_TRANSACTION).and_then(|v| v.as_bytes())?;
        if !is_query || tid.len() > self.limits.max_reply_len / 4 {
            return None;
        }
        Some(error(out, tid, ERROR_PROTOCOL, MSG_MALFORMED, version, None))
    }
}

/// Bytes one node costs in a reply: its compact form in each list sent.
fn node_bytes(want: Want, from: SocketAddr) -> usize {
    let (v4, v6) = families(want, from);
    (usize::from(v4) * COMPACT_NODE_V4_LEN + usize::from(v6) * COMPACT_NODE_V6_LEN).max(1)
}

/// Which lists a reply carries: BEP 32 `want`, else the querier's family.
fn families(want: Want, from: SocketAddr) -> (bool, bool) {
    if want.v4 || want.v6 {
        (want.v4, want.v6)
    } else {
        (from.is_ipv4(), from.is_ipv6())
    }
}

/// `nodes` and/or `nodes6` per BEP 32 `want`; without `want`, the querier's family.
fn set_nodes<'a>(r: &mut ResponseOut<'a>, nodes: &'a [CompactNode], want: Want, from: SocketAddr) {
    let (v4, v6) = families(want, from);
    if v4 {
        r.nodes = nodes;
    }
    if v6 {
        r.nodes6 = nodes;
    }
}

fn error(
    out: &mut Vec<u8>,
    tid: &[u8],
    code: i64,
    msg: &[u8],
    version: Option<&[u8]>,
    refused: Option<Refusal>,
) -> Answered {
    krpc::encode_error(out, tid, code, msg, version);
    Answered::Error { code, refused }
}
