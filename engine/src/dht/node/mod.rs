//! The DHT node: glues the routing table, transactions, lookups, the answering side
//! and the peer store into one I/O-free state machine. Driven only through
//! `handle_datagram`, `poll_transmit`, `handle_timeout` and the request methods; it
//! never touches a socket or a clock, and every random choice comes from its seed.
//!
//! Requests (`lookup`, `announce`, `find_node`) made before bootstrap finished wait
//! in a queue and start when it does; none is ever dropped. Each request ends with
//! exactly one terminal event: `LookupDone` for `lookup` and `find_node`,
//! `AnnounceDone` for `announce` (whose search also yields `Peers`).

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::codec::compact::CompactNode;
use crate::codec::krpc::{self, Kind, Message, Query, Response, Want};

use super::addr_filter::AddrFilter;
use super::config::NodeConfig;
use super::event::{Event, LookupId};
use super::id::{self, NodeId};
use super::lookup::{Lookup, Method, Token};
use super::pacing::{KeyedBuckets, RemoteGap};
use super::routing::RoutingTable;
use super::server::{Answered, Context, Refusal, Server};
use super::stats::NodeStats;
use super::transaction::{Mismatch, TransactionId, Transactions};

mod incoming;
mod requests;
mod transmit;

#[cfg(test)]
mod tests;

/// Housekeeping period: token rotation, expiry, pings of questionable nodes.
const MAINTENANCE_EVERY: Duration = Duration::from_secs(5);
/// Questionable nodes pinged per maintenance tick.
const PINGS_PER_TICK: usize = 4;
/// Queries in flight across all lookups (and transaction ids in use).
const MAX_IN_FLIGHT: usize = 4_096;
/// Unknown queriers being verified by a ping at once.
const MAX_VERIFYING: usize = 256;
/// Distinct peers remembered per lookup to report each once.
const MAX_PEERS_SEEN: usize = 4_096;
/// Infohashes tracked by the per-infohash pacer.
const TRACKED_INFOHASHES: usize = 65_536;
/// Queries waiting for pacing; beyond it, verification and liveness pings are skipped.
const MAX_QUEUED_SENDS: usize = 8_192;

/// What a request asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Request {
    GetPeers { info_hash: NodeId },
    Announce { info_hash: NodeId, port: Option<u16> },
    FindNode { target: NodeId },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Purpose {
    User(Request),
    Bootstrap,
    Refresh,
}

#[derive(Clone)]
enum Phase {
    Searching,
    Announcing { pending: usize, acked: usize },
}

#[derive(Clone)]
struct Running {
    purpose: Purpose,
    lookup: Lookup,
    phase: Phase,
    peers_seen: HashSet<SocketAddr, ahash::RandomState>,
}

/// A query as we keep it while it waits or flies, enough to (re-)encode it.
#[derive(Clone, Copy, Debug)]
enum OutQuery {
    Ping,
    FindNode {
        target: NodeId,
    },
    GetPeers {
        info_hash: NodeId,
    },
    Announce {
        info_hash: NodeId,
        port: u16,
        implied_port: bool,
        token: Token,
    },
}

impl OutQuery {
    /// The infohash the per-infohash pacing applies to.
    fn info_hash(&self) -> Option<&NodeId> {
        match self {
            OutQuery::GetPeers { info_hash } | OutQuery::Announce { info_hash, .. } => Some(info_hash),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Sent {
    lookup: Option<LookupId>,
    query: OutQuery,
}

#[derive(Clone)]
enum Send {
    New {
        addr: SocketAddr,
        sent: Sent,
    },
    /// A retry of a transaction already re-armed under the same id.
    Resend(TransactionId),
}

#[derive(Clone)]
enum Boot {
    Running,
    /// No router answered; try again at this instant.
    RetryAt(Instant),
    Done,
}

/// `Clone` snapshots the whole state (a simulation can fork a network).
#[derive(Clone)]
pub struct Node {
    config: NodeConfig,
    own: NodeId,
    rng: SmallRng,
    filter: AddrFilter,
    routing: RoutingTable,
    txs: Transactions<Sent>,
    server: Server,
    lookups: BTreeMap<LookupId, Running>,
    waiting: VecDeque<(LookupId, Request)>,
    sends: VecDeque<Send>,
    replies: VecDeque<(SocketAddr, Vec<u8>)>,
    spare: Vec<Vec<u8>>,
    verifying: HashSet<SocketAddr, ahash::RandomState>,
    gap: RemoteGap,
    per_infohash: KeyedBuckets<NodeId>,
    boot: Boot,
    /// The latest `now` we were given, for `next_timeout`, which gets none.
    last_now: Instant,
    next_maintenance: Instant,
    next_lookup: u64,
    events: VecDeque<Event>,
    stats: NodeStats,
    scratch_nodes: Vec<CompactNode>,
}

impl Node {
    /// A node with a fresh id (BEP 42 secure when `external_ip` is known). `seed`
    /// drives every random choice, so a simulation is deterministic.
    pub fn new(config: NodeConfig, now: Instant, seed: u64) -> Node {
        let config = config.sanitized();
        let mut rng = SmallRng::seed_from_u64(seed);
        let own = match config.external_ip {
            Some(ip) => id::secure(ip, &mut rng),
            None => id::random(&mut rng),
        };
        let filter = AddrFilter::new(config.allow_loopback);
        let routing = RoutingTable::new(
            own,
            config.k,
            config.replacements_per_bucket,
            filter,
            hasher(&mut rng),
            now,
        );
        let txs = Transactions::new(rng.gen(), MAX_IN_FLIGHT, hasher(&mut rng));
        let verifying = HashSet::with_hasher(hasher(&mut rng));
        let gap = RemoteGap::new(config.pacing.per_remote_gap, hasher(&mut rng));
        let pacing = &config.pacing;
        let per_infohash = KeyedBuckets::new(
            pacing.per_infohash_rate,
            pacing.per_infohash_burst,
            TRACKED_INFOHASHES,
            hasher(&mut rng),
        );
        let server_hashers = [hasher(&mut rng), hasher(&mut rng)];
        let server = Server::new(
            now,
            config.peer_ttl,
            config.answer_limits.clone(),
            config.store_limits.clone(),
            &mut rng,
            server_hashers,
        );
        let mut node = Node {
            own,
            filter,
            routing,
            txs,
            server,
            lookups: BTreeMap::new(),
            waiting: VecDeque::new(),
            sends: VecDeque::new(),
            replies: VecDeque::new(),
            spare: Vec::new(),
            verifying,
            gap,
            per_infohash,
            boot: Boot::Running, // settled by `start_bootstrap` below
            last_now: now,
            next_maintenance: now + MAINTENANCE_EVERY,
            next_lookup: 0,
            events: VecDeque::new(),
            stats: NodeStats::default(),
            scratch_nodes: Vec::new(),
            rng,
            config,
        };
        node.start_bootstrap(now);
        node
    }

    pub fn id(&self) -> [u8; 20] {
        self.own
    }

    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    pub fn is_bootstrapped(&self) -> bool {
        matches!(self.boot, Boot::Done)
    }

    /// Whether `id` is in our routing table (not the replacement cache).
    pub fn routing_contains(&self, id: &[u8; 20]) -> bool {
        self.routing.contains(id)
    }

    /// Every node in our routing table.
    pub fn routing_nodes(&self) -> impl Iterator<Item = CompactNode> + '_ {
        self.routing.contacts()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    pub fn stats(&self) -> NodeStats {
        let mut s = self.stats;
        s.routing_nodes = self.routing.len();
        s.routing_buckets = self.routing.bucket_count();
        s.replacement_nodes = self.routing.replacement_len();
        s.in_flight = self.txs.len();
        s.queued_queries = self.sends.len();
        s.running_lookups = self.lookups.len();
        s.queued_lookups = self.waiting.len();
        s.infohashes_stored = self.server.store().infohash_count();
        s.peers_stored = self.server.store().peer_count();
        s
    }
}

/// Map hasher seeded from the node's RNG: deterministic under test, unguessable by
/// remotes choosing keys to collide.
fn hasher(rng: &mut SmallRng) -> ahash::RandomState {
    ahash::RandomState::with_seeds(rng.gen(), rng.gen(), rng.gen(), rng.gen())
}
