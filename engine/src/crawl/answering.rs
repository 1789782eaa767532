//! Answering mode on a crawl core: the library's own answering side
//! ([`crate::dht::server::Server`]: tokens, peer store with expiry, BEP 33
//! filters, `sample_infohashes` from the store, per-IP answer limit, KRPC errors)
//! over a Kademlia table of the nodes that answered this core's queries, so
//! `find_node` and a `get_peers` without values name good nodes. And the
//! harvest: what an incoming `get_peers` or `announce_peer` tells about an
//! infohash and its peers.
//!
//! Owns the server and that table. Must not send or touch the crawl's node
//! table: the scheduler decides what a querier and a harvested hash become.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::SeedableRng;

use crate::codec::compact::CompactNode;
use crate::codec::krpc::Query;
use crate::codec::wire::ID_LEN;
use crate::dht::addr_filter::AddrFilter;
use crate::dht::config::{AnswerLimits, StoreLimits};
use crate::dht::routing::RoutingTable;
use crate::dht::server::{Answered, Context, Server};

/// Contacts per bucket of the answering table, as BEP 5's k.
const K: usize = 8;
/// Replacement contacts kept per bucket.
const REPLACEMENTS: usize = 8;
/// How long an announced peer is kept (libtorrent keeps them 30 minutes).
const PEER_TTL: Duration = Duration::from_secs(30 * 60);
/// No reply is larger than this many times its query, so a forged source
/// address gains an attacker at most this factor (and only within the per-IP
/// answer budget).
pub const MAX_AMPLIFICATION: usize = 3;
/// Housekeeping period: token rotation, peer expiry, limiter pruning.
const MAINTAIN_EVERY: Duration = Duration::from_secs(10);

/// What an answered query told about an infohash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Harvest {
    Nothing,
    /// Someone looks for peers of this infohash (`get_peers`).
    Asked([u8; 20]),
    /// A peer of this infohash announced itself (a valid `announce_peer`;
    /// `implied_port` resolved to the datagram's source port).
    Announced([u8; 20], SocketAddr),
}

pub struct Answering {
    own: [u8; ID_LEN],
    version: Option<[u8; 4]>,
    server: Server,
    routing: RoutingTable,
    filter: AddrFilter,
    seed: u64,
    rng: SmallRng,
    maintain_due: Instant,
}

impl Answering {
    /// `answer_rate`/`answer_burst`: answers per querier IP, sustained per
    /// second and burst; beyond them a query is ignored.
    pub fn new(
        own: [u8; ID_LEN],
        version: Option<[u8; 4]>,
        filter: AddrFilter,
        answer_rate: f64,
        answer_burst: f64,
        seed: u64,
        now: Instant,
    ) -> Self {
        let hasher = |i: u64| ahash::RandomState::with_seeds(seed, i, 0x616e_7377, 0x6572_696e);
        let mut rng = SmallRng::seed_from_u64(seed ^ 0x616e_7377_6572);
        let limits = AnswerLimits {
            per_ip_rate: answer_rate,
            per_ip_burst: answer_burst,
            ..AnswerLimits::default()
        };
        let server = Server::new(
            now,
            PEER_TTL,
            limits,
            StoreLimits::default(),
            &mut rng,
            [hasher(1), hasher(2)],
        );
        Answering {
            own,
            version,
            server,
            routing: table(own, filter, seed, now),
            filter,
            seed,
            rng,
            maintain_due: now + MAINTAIN_EVERY,
        }
    }

    /// The core took a new node id (BEP 42): the table is laid out around the
    /// id, so it starts afresh; tokens and announced peers stay.
    pub fn set_id(&mut self, own: [u8; ID_LEN], now: Instant) {
        self.own = own;
        self.routing = table(own, self.filter, self.seed, now);
    }

    /// Takes one answer from `from`'s IP budget; false: stay silent.
    pub fn admit(&mut self, now: Instant, from: SocketAddr) -> bool {
        self.server.admit(now, from.ip())
    }

    /// `node` answered one of our queries: a good contact to hand out.
    pub fn heard_response(&mut self, now: Instant, node: CompactNode) {
        self.routing.heard_response(now, node);
    }

    /// A known contact queried us: it stays good. False if it is not one.
    pub fn heard_query(&mut self, now: Instant, node: CompactNode) -> bool {
        self.routing.heard_query(now, node)
    }

    /// Writes the reply to `query` (a datagram of `query_len` bytes) into
    /// `out` (cleared first), at most [`MAX_AMPLIFICATION`] times its size,
    /// and says what it harvested.
    pub fn answer(
        &mut self,
        now: Instant,
        from: SocketAddr,
        tid: &[u8],
        query: &Query<'_>,
        query_len: usize,
        out: &mut Vec<u8>,
    ) -> (Answered, Harvest) {
        self.maintain(now);
        let cx = Context {
            now,
            own: &self.own,
            routing: &self.routing,
            k: K,
            version: self.version.as_ref().map(|v| &v[..]),
            max_reply: MAX_AMPLIFICATION * query_len,
        };
        let answered = self.server.answer(&cx, &mut self.rng, from, tid, query, out);
        let harvest = match (*query, answered) {
            (Query::GetPeers { info_hash, .. }, _) => Harvest::Asked(*info_hash),
            (
                Query::AnnouncePeer {
                    info_hash,
                    port,
                    implied_port,
                    ..
                },
                Answered::Response,
            ) => {
                let port = if implied_port { from.port() } else { port };
                Harvest::Announced(*info_hash, SocketAddr::new(from.ip(), port))
            }
            _ => Harvest::Nothing,
        };
        (answered, harvest)
    }

    /// For a datagram that failed to decode: a protocol error (203) into `out`
    /// when it is a query with a transaction id; false: stay silent.
    pub fn malformed(&self, bytes: &[u8], out: &mut Vec<u8>) -> bool {
        let version = self.version.as_ref().map(|v| &v[..]);
        self.server.malformed(bytes, version, out).is_some()
    }

    /// Contacts in the answering table.
    pub fn contacts(&self) -> usize {
        self.routing.len()
    }

    /// Infohashes with announced peers in the store.
    pub fn stored_infohashes(&self) -> usize {
        self.server.store().infohash_count()
    }

    fn maintain(&mut self, now: Instant) {
        if now >= self.maintain_due {
            self.maintain_due = now + MAINTAIN_EVERY;
            self.server.maintain(now, &mut self.rng);
        }
    }
}

/// The answering table of a core with id `own`.
fn table(own: [u8; ID_LEN], filter: AddrFilter, seed: u64, now: Instant) -> RoutingTable {
    let hasher = ahash::RandomState::with_seeds(seed, 3, 0x616e_7377, 0x6572_696e);
    RoutingTable::new(own, K, REPLACEMENTS, filter, hasher, now)
}
