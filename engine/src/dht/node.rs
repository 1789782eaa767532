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

    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        self.last_now = now;
        self.stats.datagrams_in += 1;
        if !self.filter.allows(from) {
            self.stats.drops.filtered_addr += 1;
            return;
        }
        let msg = match Message::decode(bytes) {
            Ok(m) => m,
            Err(_) => {
                self.stats.drops.malformed += 1;
                if !self.config.read_only && self.server.admit(now, from.ip()) {
                    let mut buf = self.spare.pop().unwrap_or_default();
                    match self.server.malformed(bytes, self.version(), &mut buf) {
                        Some(_) => self.push_reply(from, buf, true),
                        None => self.spare.push(buf),
                    }
                }
                return;
            }
        };
        match msg.kind {
            Kind::Query(ref q) => self.on_query(now, from, &msg, q),
            Kind::Response(ref r) => self.on_response(now, from, msg.transaction_id, r),
            Kind::Error(_) => self.on_error(now, from, msg.transaction_id),
        }
    }

    fn version(&self) -> Option<&[u8]> {
        self.config.version.as_ref().map(|v| &v[..])
    }

    fn on_query(&mut self, now: Instant, from: SocketAddr, msg: &Message<'_>, q: &Query<'_>) {
        self.stats.queries_received += 1;
        if self.config.read_only {
            self.stats.drops.read_only += 1;
            return;
        }
        if !self.server.admit(now, from.ip()) {
            self.stats.drops.rate_limited += 1;
            return;
        }
        if let (false, Some(id)) = (msg.read_only, q.id()) {
            self.learn_querier(now, CompactNode { id: *id, addr: from });
        }
        let mut buf = self.spare.pop().unwrap_or_default();
        let cx = Context {
            now,
            own: &self.own,
            routing: &self.routing,
            k: self.config.k,
            version: self.config.version.as_ref().map(|v| &v[..]),
            max_reply: self.config.answer_limits.max_reply_len,
        };
        let answered = self
            .server
            .answer(&cx, &mut self.rng, from, msg.transaction_id, q, &mut buf);
        match answered {
            Answered::Response => self.stats.queries_answered += 1,
            Answered::Error { refused, .. } => match refused {
                Some(Refusal::BadToken) => self.stats.drops.bad_token += 1,
                Some(Refusal::StoreFull) => self.stats.drops.store_full += 1,
                None => {}
            },
        }
        self.push_reply(from, buf, matches!(answered, Answered::Error { .. }));
    }

    /// A writable node queried us: known ones stay good, unknown ones that would
    /// get a slot are verified with a ping first (a query's source can be forged).
    fn learn_querier(&mut self, now: Instant, node: CompactNode) {
        if self.routing.heard_query(now, node) || self.is_router(&node.addr) {
            return;
        }
        if self.verifying.len() < MAX_VERIFYING
            && self.sends.len() < MAX_QUEUED_SENDS
            && self.txs.in_flight_to(&node.addr) == 0
            && self.routing.wants(&node.id, &node.addr, now)
            && self.verifying.insert(node.addr)
        {
            self.sends.push_back(Send::New {
                addr: node.addr,
                sent: Sent {
                    lookup: None,
                    query: OutQuery::Ping,
                },
            });
        }
    }

    fn push_reply(&mut self, to: SocketAddr, buf: Vec<u8>, is_error: bool) {
        if self.replies.len() >= self.config.answer_limits.max_queued_replies {
            self.stats.drops.reply_queue_full += 1;
            self.spare.push(buf);
            return;
        }
        if is_error {
            self.stats.errors_sent += 1;
        }
        self.replies.push_back((to, buf));
    }

    fn is_router(&self, addr: &SocketAddr) -> bool {
        self.config.bootstrap.contains(addr)
    }

    fn on_response(&mut self, now: Instant, from: SocketAddr, tid: &[u8], r: &Response<'_>) {
        let Some((_, tx)) = self.match_reply(tid, from) else {
            return;
        };
        self.stats.replies_received += 1;
        let responder = CompactNode { id: *r.id, addr: from };
        if self.config.require_secure_ids && !id::is_secure_for(r.id, from.ip()) {
            self.stats.drops.insecure_id += 1;
        } else if !self.is_router(&from) {
            self.routing.heard_response(now, responder);
        }
        self.verifying.remove(&from);
        let Some(lookup_id) = tx.payload.lookup else { return };
        let Some(run) = self.lookups.get_mut(&lookup_id) else {
            return;
        };
        match run.phase {
            Phase::Searching => {
                if !run.lookup.on_response(from, *r.id, r.token) {
                    return;
                }
                let own = self.own;
                let filter = self.filter;
                // One node speaks one family (BEP 32): it can only reach those nodes.
                let ipv6 = self.config.ipv6;
                let nodes = if ipv6 { r.nodes6.clone() } else { r.nodes.clone() };
                let learned = nodes.filter(|n| n.id != own && n.addr.is_ipv6() == ipv6 && filter.allows(n.addr));
                run.lookup.add(learned);
                if run.lookup.method() == Method::GetPeers && !r.values.is_empty() {
                    let mut fresh = Vec::new();
                    for p in r.values.clone() {
                        if filter.allows(p) && run.peers_seen.len() < MAX_PEERS_SEEN && run.peers_seen.insert(p) {
                            fresh.push(p);
                        }
                    }
                    if !fresh.is_empty() {
                        self.events.push_back(Event::Peers {
                            lookup: lookup_id,
                            peers: fresh,
                        });
                    }
                }
            }
            Phase::Announcing {
                ref mut pending,
                ref mut acked,
            } => {
                if !matches!(tx.payload.query, OutQuery::Announce { .. }) {
                    return; // a late reply from the search
                }
                *pending = pending.saturating_sub(1);
                *acked += 1;
            }
        }
        self.advance(now, lookup_id);
    }

    fn on_error(&mut self, now: Instant, from: SocketAddr, tid: &[u8]) {
        let Some((_, tx)) = self.match_reply(tid, from) else {
            return;
        };
        self.stats.errors_received += 1;
        // The remote is alive, it just would not serve this query.
        self.verifying.remove(&from);
        if let Some(lookup_id) = tx.payload.lookup {
            self.lookup_failed(lookup_id, from, &tx.payload.query);
            self.advance(now, lookup_id);
        }
    }

    fn match_reply(
        &mut self,
        tid: &[u8],
        from: SocketAddr,
    ) -> Option<(TransactionId, super::transaction::Pending<Sent>)> {
        match self.txs.complete(tid, from) {
            Ok(done) => Some(done),
            Err(Mismatch::Stray) => {
                self.stats.drops.stray_reply += 1;
                None
            }
            Err(Mismatch::Spoofed) => {
                self.stats.drops.spoofed_reply += 1;
                None
            }
        }
    }

    fn lookup_failed(&mut self, lookup_id: LookupId, from: SocketAddr, query: &OutQuery) {
        let Some(run) = self.lookups.get_mut(&lookup_id) else {
            return;
        };
        match run.phase {
            Phase::Searching => run.lookup.on_failure(from),
            Phase::Announcing { ref mut pending, .. } => {
                if matches!(query, OutQuery::Announce { .. }) {
                    *pending = pending.saturating_sub(1);
                }
            }
        }
    }
}

// Requests and lookup driving.
impl Node {
    /// A `get_peers` lookup; queued if bootstrap has not finished, never dropped.
    pub fn lookup(&mut self, now: Instant, info_hash: [u8; 20]) -> LookupId {
        self.request(now, Request::GetPeers { info_hash })
    }

    /// A `get_peers` lookup followed by `announce_peer` to the k closest nodes that
    /// gave a token. `port: None` asks for `implied_port` (our UDP source port).
    pub fn announce(&mut self, now: Instant, info_hash: [u8; 20], port: Option<u16>) -> LookupId {
        self.request(now, Request::Announce { info_hash, port })
    }

    pub fn find_node(&mut self, now: Instant, target: [u8; 20]) -> LookupId {
        self.request(now, Request::FindNode { target })
    }

    fn new_lookup_id(&mut self) -> LookupId {
        self.next_lookup += 1;
        LookupId(self.next_lookup)
    }

    fn request(&mut self, now: Instant, request: Request) -> LookupId {
        self.last_now = now;
        let id = self.new_lookup_id();
        self.waiting.push_back((id, request));
        self.start_waiting(now);
        id
    }

    fn user_lookups(&self) -> usize {
        self.lookups
            .values()
            .filter(|r| matches!(r.purpose, Purpose::User(_)))
            .count()
    }

    /// Starts waiting requests once bootstrapped, up to the concurrency limit.
    fn start_waiting(&mut self, now: Instant) {
        if !self.is_bootstrapped() {
            return;
        }
        while self.user_lookups() < self.config.max_concurrent_lookups {
            let Some((id, request)) = self.waiting.pop_front() else {
                break;
            };
            let (target, method) = match request {
                Request::GetPeers { info_hash } | Request::Announce { info_hash, .. } => (info_hash, Method::GetPeers),
                Request::FindNode { target } => (target, Method::FindNode),
            };
            self.start_lookup(now, id, Purpose::User(request), target, method);
        }
    }

    fn start_bootstrap(&mut self, now: Instant) {
        if self.config.bootstrap.is_empty() && self.routing.is_empty() {
            // Nobody to ask: we are the first node (or a router); others will find us.
            self.finish_bootstrap(now);
            return;
        }
        let id = self.new_lookup_id();
        self.boot = Boot::Running;
        self.start_lookup(now, id, Purpose::Bootstrap, self.own, Method::FindNode);
    }

    fn finish_bootstrap(&mut self, now: Instant) {
        self.boot = Boot::Done;
        self.events.push_back(Event::Bootstrapped);
        // The join lookup only visited our neighbourhood; one lookup into the range
        // of every other bucket fills the far buckets, so lookups through us converge.
        for i in 0..self.routing.bucket_count().saturating_sub(1) {
            let target = self.routing.random_target(i, &mut self.rng);
            let id = self.new_lookup_id();
            self.start_lookup(now, id, Purpose::Refresh, target, Method::FindNode);
        }
        self.start_waiting(now);
    }

    fn start_lookup(&mut self, now: Instant, id: LookupId, purpose: Purpose, target: NodeId, method: Method) {
        let mut lookup = Lookup::new(target, method, self.config.k, self.config.alpha);
        self.routing
            .closest(now, &target, self.config.k, &mut self.scratch_nodes);
        lookup.add(self.scratch_nodes.iter().copied());
        if self.scratch_nodes.len() < self.config.alpha {
            for &r in &self.config.bootstrap {
                if self.filter.allows(r) && r.is_ipv6() == self.config.ipv6 {
                    lookup.add_router(r);
                }
            }
        }
        let hasher = hasher(&mut self.rng);
        let run = Running {
            purpose,
            lookup,
            phase: Phase::Searching,
            peers_seen: HashSet::with_hasher(hasher),
        };
        self.lookups.insert(id, run);
        self.advance(now, id);
    }

    /// Queues the lookup's next queries, or finishes it.
    fn advance(&mut self, now: Instant, id: LookupId) {
        let Some(run) = self.lookups.get_mut(&id) else { return };
        match run.phase {
            Phase::Searching => {
                while let Some(n) = run.lookup.next_query() {
                    let query = match run.lookup.method() {
                        Method::FindNode => OutQuery::FindNode {
                            target: *run.lookup.target(),
                        },
                        Method::GetPeers => OutQuery::GetPeers {
                            info_hash: *run.lookup.target(),
                        },
                    };
                    self.sends.push_back(Send::New {
                        addr: n.addr,
                        sent: Sent {
                            lookup: Some(id),
                            query,
                        },
                    });
                }
                if run.lookup.is_done() {
                    self.search_done(now, id);
                }
            }
            Phase::Announcing { pending: 0, acked } => {
                self.lookups.remove(&id);
                self.events.push_back(Event::AnnounceDone {
                    lookup: id,
                    announced_to: acked,
                });
                self.start_waiting(now);
            }
            Phase::Announcing { .. } => {}
        }
    }

    fn search_done(&mut self, now: Instant, id: LookupId) {
        let Some(run) = self.lookups.get_mut(&id) else { return };
        let closest = run.lookup.closest_responded();
        match run.purpose {
            Purpose::User(Request::Announce { info_hash, port }) => {
                let (port, implied_port) = (port.unwrap_or(0), port.is_none());
                let mut pending = 0;
                for (n, token) in run.lookup.announce_targets() {
                    let query = OutQuery::Announce {
                        info_hash,
                        port,
                        implied_port,
                        token,
                    };
                    self.sends.push_back(Send::New {
                        addr: n.addr,
                        sent: Sent {
                            lookup: Some(id),
                            query,
                        },
                    });
                    pending += 1;
                }
                run.phase = Phase::Announcing { pending, acked: 0 };
                self.advance(now, id);
            }
            Purpose::User(_) => {
                self.lookups.remove(&id);
                self.events.push_back(Event::LookupDone { lookup: id, closest });
                self.start_waiting(now);
            }
            Purpose::Bootstrap => {
                self.lookups.remove(&id);
                if closest > 0 || !self.routing.is_empty() {
                    self.finish_bootstrap(now);
                } else {
                    self.boot = Boot::RetryAt(now + self.config.bootstrap_retry);
                }
            }
            Purpose::Refresh => {
                self.lookups.remove(&id);
            }
        }
    }
}

// Output, timers and maintenance.
impl Node {
    /// Writes one datagram into `out` (cleared first) and returns its destination.
    /// Replies go first; queries leave only when their pacing allows.
    pub fn poll_transmit(&mut self, now: Instant, out: &mut Vec<u8>) -> Option<SocketAddr> {
        self.last_now = now;
        out.clear();
        if let Some((to, buf)) = self.replies.pop_front() {
            out.extend_from_slice(&buf);
            self.recycle(buf);
            self.stats.datagrams_out += 1;
            return Some(to);
        }
        loop {
            let i =
                (0..self.sends.len()).find(|&i| self.send_ready(now, &self.sends[i]).is_some_and(|at| at <= now))?;
            let send = self.sends.remove(i)?;
            let (tid, addr, sent) = match send {
                Send::New { addr, sent } => match self.txs.start(now, self.config.query_timeout, addr, sent) {
                    Some(tid) => (tid, addr, sent),
                    None => {
                        self.sends.push_front(send);
                        return None;
                    }
                },
                Send::Resend(tid) => match self.txs.get(tid) {
                    Some(p) => (tid, p.addr, p.payload),
                    None => continue, // answered while it waited
                },
            };
            if let Some(ih) = sent.query.info_hash() {
                self.per_infohash.take(now, *ih);
            }
            self.gap.sent(now, addr);
            self.encode_query(out, tid, &sent.query);
            self.stats.datagrams_out += 1;
            return Some(addr);
        }
    }

    fn recycle(&mut self, mut buf: Vec<u8>) {
        if self.spare.len() < self.config.answer_limits.max_queued_replies {
            buf.clear();
            self.spare.push(buf);
        }
    }

    /// When `send` may leave: `None` while it is blocked on something other than
    /// time (in-flight limits).
    fn send_ready(&self, now: Instant, send: &Send) -> Option<Instant> {
        let (addr, query) = match send {
            Send::New { addr, sent } => {
                if self.txs.is_full() || self.txs.in_flight_to(addr) >= self.config.pacing.per_remote_in_flight {
                    return None;
                }
                (*addr, sent.query)
            }
            Send::Resend(tid) => match self.txs.get(*tid) {
                Some(p) => (p.addr, p.payload.query),
                None => return Some(now), // stale: ready to be discarded
            },
        };
        let mut at = self.gap.ready_at(now, &addr);
        if let Some(ih) = query.info_hash() {
            at = at.max(self.per_infohash.ready_at(now, ih));
        }
        Some(at)
    }

    fn encode_query(&self, out: &mut Vec<u8>, tid: TransactionId, q: &OutQuery) {
        let id = &self.own;
        // Without `want` a node answers in the family it was asked over, which is ours.
        let want = Want::default();
        let query = match q {
            OutQuery::Ping => Query::Ping { id },
            OutQuery::FindNode { target } => Query::FindNode { id, target, want },
            OutQuery::GetPeers { info_hash } => Query::GetPeers {
                id,
                info_hash,
                want,
                scrape: false,
                noseed: false,
            },
            OutQuery::Announce {
                info_hash,
                port,
                implied_port,
                token,
            } => Query::AnnouncePeer {
                id,
                info_hash,
                port: *port,
                implied_port: *implied_port,
                token: token.as_bytes(),
                seed: false,
            },
        };
        krpc::encode_query(out, &tid.to_bytes(), &query, self.config.read_only, self.version());
    }

    pub fn next_timeout(&self) -> Option<Instant> {
        let mut at = self.next_maintenance;
        if let Some(d) = self.txs.next_deadline() {
            at = at.min(d);
        }
        if let Boot::RetryAt(t) = self.boot {
            at = at.min(t);
        }
        // Queries held back by pacing, or ready now.
        for s in &self.sends {
            if let Some(t) = self.send_ready(self.last_now, s) {
                at = at.min(t);
            }
        }
        Some(at)
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.last_now = now;
        while let Some((tid, pending)) = self.txs.poll_expired(now) {
            if pending.retries < self.config.max_retries {
                self.stats.retries += 1;
                self.txs.retry(now, self.config.query_timeout, tid, pending);
                self.sends.push_back(Send::Resend(tid));
                continue;
            }
            self.stats.timeouts += 1;
            self.routing.failed(now, &pending.addr);
            self.verifying.remove(&pending.addr);
            if let Some(lookup_id) = pending.payload.lookup {
                self.lookup_failed(lookup_id, pending.addr, &pending.payload.query);
                self.advance(now, lookup_id);
            }
        }
        if let Boot::RetryAt(t) = self.boot {
            if now >= t {
                self.start_bootstrap(now);
            }
        }
        if now >= self.next_maintenance {
            self.next_maintenance = now + MAINTENANCE_EVERY;
            self.maintain(now);
        }
    }

    fn maintain(&mut self, now: Instant) {
        self.server.maintain(now, &mut self.rng);
        self.gap.prune(now);
        self.per_infohash.prune(now);
        if !self.is_bootstrapped() {
            return;
        }
        for _ in 0..PINGS_PER_TICK {
            if self.sends.len() >= MAX_QUEUED_SENDS {
                break;
            }
            let Some(n) = self.routing.next_to_ping(now) else { break };
            self.sends.push_back(Send::New {
                addr: n.addr,
                sent: Sent {
                    lookup: None,
                    query: OutQuery::Ping,
                },
            });
        }
        if let Some(target) = self.routing.next_refresh(now, &mut self.rng) {
            let id = self.new_lookup_id();
            self.start_lookup(now, id, Purpose::Refresh, target, Method::FindNode);
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::krpc::ErrorReply;
    use crate::codec::wire::{ERROR_METHOD_UNKNOWN, ERROR_PROTOCOL};

    const PEER: &str = "127.0.0.2:7000";
    /// The `ping` example of BEP 5.
    const PING: &[u8] = b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe";

    fn full_node(now: Instant) -> Node {
        let config = NodeConfig {
            read_only: false,
            allow_loopback: true,
            version: Some(*b"TR01"),
            ..NodeConfig::default()
        };
        Node::new(config, now, 1)
    }

    /// A read-only node (the default) whose only bootstrap router is `router`.
    fn behind_router(now: Instant, router: SocketAddr, seed: u64) -> Node {
        let config = NodeConfig {
            allow_loopback: true,
            bootstrap: vec![router],
            ..NodeConfig::default()
        };
        Node::new(config, now, seed)
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// Sends `bytes` from `from` and returns the one reply, if any.
    fn ask(node: &mut Node, now: Instant, from: SocketAddr, bytes: &[u8]) -> Option<Vec<u8>> {
        node.handle_datagram(now, from, bytes);
        let mut out = Vec::new();
        let mut reply = None;
        while let Some(to) = node.poll_transmit(now, &mut out) {
            if to == from && reply.is_none() && Message::decode(&out).is_ok_and(|m| !matches!(m.kind, Kind::Query(_))) {
                reply = Some(out.clone());
            }
        }
        reply
    }

    fn error_of(bytes: &[u8]) -> Option<(i64, Vec<u8>)> {
        match Message::decode(bytes).ok()?.kind {
            Kind::Error(ErrorReply { code, message }) => Some((code, message.to_vec())),
            _ => None,
        }
    }

    #[test]
    fn bep5_ping_is_answered_with_our_id_version_and_requester_ip() {
        let now = Instant::now();
        let mut n = full_node(now);
        let reply = ask(&mut n, now, addr(PEER), PING).unwrap();
        let m = Message::decode(&reply).unwrap();
        assert_eq!(m.transaction_id, b"aa");
        assert_eq!(m.version, Some(&b"TR01"[..]));
        assert_eq!(m.requester_ip, Some(addr(PEER)));
        let Kind::Response(r) = m.kind else {
            panic!("not a response")
        };
        assert_eq!(*r.id, n.id());
        assert_eq!(n.stats().queries_answered, 1);
    }

    #[test]
    fn read_only_nodes_answer_nothing_and_mark_queries_ro() {
        let now = Instant::now();
        assert!(NodeConfig::default().read_only, "read-only is the default");
        let mut n = behind_router(now, addr(PEER), 2);
        // Its own bootstrap query carries ro=1.
        let mut out = Vec::new();
        assert_eq!(n.poll_transmit(now, &mut out), Some(addr(PEER)));
        let m = Message::decode(&out).unwrap();
        assert!(m.read_only);
        assert!(matches!(m.kind, Kind::Query(Query::FindNode { .. })));
        assert!(ask(&mut n, now, addr(PEER), PING).is_none());
        assert_eq!(n.stats().drops.read_only, 1);
    }

    #[test]
    fn unknown_and_malformed_queries_get_krpc_errors() {
        let now = Instant::now();
        let mut n = full_node(now);
        let unknown = ask(
            &mut n,
            now,
            addr(PEER),
            b"d1:ad2:id20:abcdefghij0123456789e1:q4:vote1:t2:ab1:y1:qe",
        )
        .unwrap();
        assert_eq!(
            error_of(&unknown),
            Some((ERROR_METHOD_UNKNOWN, b"method unknown".to_vec()))
        );
        // get_peers without info_hash.
        let bad = ask(
            &mut n,
            now,
            addr(PEER),
            b"d1:ad2:id20:abcdefghij0123456789e1:q9:get_peers1:t2:ac1:y1:qe",
        )
        .unwrap();
        assert_eq!(error_of(&bad).map(|e| e.0), Some(ERROR_PROTOCOL));
        assert_eq!(Message::decode(&bad).unwrap().transaction_id, b"ac");
        // Garbage is dropped silently.
        assert!(ask(&mut n, now, addr(PEER), b"not bencode at all").is_none());
        assert_eq!(n.stats().drops.malformed, 2);
    }

    #[test]
    fn filtered_sources_are_dropped_before_decoding() {
        let now = Instant::now();
        let mut n = full_node(now);
        assert!(ask(&mut n, now, addr("10.0.0.1:6881"), PING).is_none());
        assert!(ask(&mut n, now, addr("224.0.0.1:6881"), PING).is_none());
        assert_eq!(n.stats().drops.filtered_addr, 2);
    }

    fn get_peers_token(n: &mut Node, now: Instant, from: SocketAddr, ih: &[u8; 20]) -> Vec<u8> {
        let mut q = Vec::new();
        let query = Query::GetPeers {
            id: &[7; 20],
            info_hash: ih,
            want: Want::default(),
            scrape: false,
            noseed: false,
        };
        krpc::encode_query(&mut q, b"gp", &query, false, None);
        let reply = ask(n, now, from, &q).unwrap();
        let Kind::Response(r) = Message::decode(&reply).unwrap().kind else {
            panic!()
        };
        r.token.unwrap().to_vec()
    }

    #[allow(clippy::too_many_arguments)] // one per field of the query
    fn announce(
        n: &mut Node,
        now: Instant,
        from: SocketAddr,
        ih: &[u8; 20],
        port: u16,
        implied: bool,
        token: &[u8],
        seed: bool,
    ) -> Vec<u8> {
        let mut q = Vec::new();
        let query = Query::AnnouncePeer {
            id: &[7; 20],
            info_hash: ih,
            port,
            implied_port: implied,
            token,
            seed,
        };
        krpc::encode_query(&mut q, b"an", &query, false, None);
        ask(n, now, from, &q).unwrap()
    }

    #[test]
    fn announce_needs_a_token_for_that_ip_and_honours_implied_port() {
        let t0 = Instant::now();
        let mut n = full_node(t0);
        let ih = [0x42; 20];
        let token = get_peers_token(&mut n, t0, addr(PEER), &ih);
        let other = addr("127.0.0.3:7000");
        let refused = announce(&mut n, t0, other, &ih, 9999, false, &token, false);
        assert_eq!(error_of(&refused).map(|e| e.0), Some(ERROR_PROTOCOL));
        assert_eq!(n.stats().drops.bad_token, 1);
        let ok = announce(&mut n, t0, addr(PEER), &ih, 9999, true, &token, false);
        assert!(error_of(&ok).is_none());
        let seeder = addr("127.0.0.4:7001");
        let seed_token = get_peers_token(&mut n, t0, seeder, &ih);
        let seed = announce(&mut n, t0, seeder, &ih, 5555, false, &seed_token, true);
        assert!(error_of(&seed).is_none());
        assert_eq!(n.stats().peers_stored, 2);

        // get_peers now returns values: the implied port is the UDP source port.
        let mut q = Vec::new();
        let query = Query::GetPeers {
            id: &[7; 20],
            info_hash: &ih,
            want: Want::default(),
            scrape: true,
            noseed: true,
        };
        krpc::encode_query(&mut q, b"g2", &query, false, None);
        let reply = ask(&mut n, t0, addr("127.0.0.9:1"), &q).unwrap();
        let Kind::Response(r) = Message::decode(&reply).unwrap().kind else {
            panic!()
        };
        assert_eq!(
            r.values.clone().collect::<Vec<_>>(),
            vec![addr(PEER)],
            "noseed leaves the seed out"
        );
        assert!(r.nodes.is_empty());
        let seeds = crate::codec::scrape::ScrapeBloom::from_bytes(r.bf_seeds.unwrap());
        let peers = crate::codec::scrape::ScrapeBloom::from_bytes(r.bf_peers.unwrap());
        assert!(seeds.contains("127.0.0.4".parse().unwrap()) && !seeds.contains("127.0.0.2".parse().unwrap()));
        assert!(peers.contains("127.0.0.2".parse().unwrap()) && peers.contains("127.0.0.4".parse().unwrap()));

        // The token survives one rotation (5 minutes), not two.
        let t6 = t0 + Duration::from_secs(6 * 60);
        n.handle_timeout(t6);
        assert!(error_of(&announce(&mut n, t6, addr(PEER), &ih, 1, false, &token, false)).is_none());
        let t11 = t0 + Duration::from_secs(11 * 60);
        n.handle_timeout(t11);
        assert_eq!(
            error_of(&announce(&mut n, t11, addr(PEER), &ih, 1, false, &token, false)).map(|e| e.0),
            Some(ERROR_PROTOCOL)
        );
    }

    #[test]
    fn sample_infohashes_reports_interval_num_and_a_bounded_sample() {
        let now = Instant::now();
        let mut n = full_node(now);
        for k in 0..30u8 {
            let ih = [k; 20];
            let from = SocketAddr::new([127, 0, 2, k].into(), 6000);
            let token = get_peers_token(&mut n, now, from, &ih);
            announce(&mut n, now, from, &ih, 6000, false, &token, false);
        }
        let mut q = Vec::new();
        krpc::encode_query(
            &mut q,
            b"si",
            &Query::SampleInfohashes {
                id: &[7; 20],
                target: &[0; 20],
                want: Want::default(),
            },
            false,
            None,
        );
        let reply = ask(&mut n, now, addr("127.0.0.8:1"), &q).unwrap();
        let Kind::Response(r) = Message::decode(&reply).unwrap().kind else {
            panic!()
        };
        assert_eq!(r.num, Some(30));
        assert_eq!(r.interval, Some(6 * 3600));
        let samples: HashSet<[u8; 20]> = r.samples.copied().collect();
        assert_eq!(samples.len(), 20);
        assert!(samples.iter().all(|s| s[0] < 30 && s.iter().all(|b| *b == s[0])));
    }

    #[test]
    fn answers_per_ip_are_rate_limited_and_replies_stay_bounded() {
        let now = Instant::now();
        let mut n = full_node(now);
        let answered = (0..50).filter(|_| ask(&mut n, now, addr(PEER), PING).is_some()).count();
        assert_eq!(answered, 20, "the burst, then silence");
        assert_eq!(n.stats().drops.rate_limited, 30);
        assert!(
            ask(&mut n, now, addr("127.0.0.3:1"), PING).is_some(),
            "other IPs unaffected"
        );
        assert!(
            ask(&mut n, now + Duration::from_secs(1), addr(PEER), PING).is_some(),
            "refilled"
        );

        // 200 peers on one infohash: the values list is cut to fit max_reply_len.
        let ih = [9; 20];
        for p in 0..200u16 {
            let from = SocketAddr::new([127, 0, 1, (p % 250) as u8].into(), 1000 + p);
            let token = get_peers_token(&mut n, now + Duration::from_secs(10), from, &ih);
            announce(
                &mut n,
                now + Duration::from_secs(10),
                from,
                &ih,
                1000 + p,
                false,
                &token,
                false,
            );
        }
        for (scrape, at_least) in [(false, 50), (true, 30)] {
            let mut q = Vec::new();
            let query = Query::GetPeers {
                id: &[7; 20],
                info_hash: &ih,
                want: Want::default(),
                scrape,
                noseed: false,
            };
            krpc::encode_query(&mut q, b"g3", &query, false, None);
            let reply = ask(&mut n, now + Duration::from_secs(10), addr("127.0.0.7:1"), &q).unwrap();
            assert!(reply.len() <= n.config().answer_limits.max_reply_len, "{}", reply.len());
            let Kind::Response(r) = Message::decode(&reply).unwrap().kind else {
                panic!()
            };
            let values = r.values.count();
            assert!((at_least..=50).contains(&values), "scrape {scrape}: {values} values");
        }
    }

    #[test]
    fn lookups_before_bootstrap_wait_and_a_dead_router_is_retried() {
        let t0 = Instant::now();
        let router = addr(PEER);
        let mut n = behind_router(t0, router, 3);
        let l = n.lookup(t0, [1; 20]);
        assert_eq!(n.stats().queued_lookups, 1);
        let mut out = Vec::new();
        assert_eq!(n.poll_transmit(t0, &mut out), Some(router));
        assert_eq!(n.poll_transmit(t0, &mut out), None);
        // First timeout: a retry; second: failure, and a bootstrap retry later.
        let t = n.next_timeout().unwrap();
        assert_eq!(t, t0 + Duration::from_secs(2));
        n.handle_timeout(t);
        assert_eq!(n.poll_transmit(t, &mut out), Some(router));
        n.handle_timeout(t + Duration::from_secs(2));
        assert_eq!(n.stats().timeouts, 1);
        assert!(!n.is_bootstrapped());
        assert!(n.poll_event().is_none());
        assert_eq!(n.stats().queued_lookups, 1, "never dropped");
        let retry = t + Duration::from_secs(2) + n.config().bootstrap_retry;
        n.handle_timeout(retry);
        assert_eq!(n.poll_transmit(retry, &mut out), Some(router));
        // The router answers this time, with nobody else to offer.
        let m = Message::decode(&out).unwrap();
        let mut reply = Vec::new();
        krpc::encode_response(
            &mut reply,
            m.transaction_id,
            &krpc::ResponseOut::new(&[0x55; 20]),
            None,
            None,
        );
        n.handle_datagram(retry, router, &reply);
        // The router is not a routing-table node, so the table is still empty and
        // bootstrap has reached one node: it finishes and the lookup runs (and ends).
        let events: Vec<Event> = std::iter::from_fn(|| n.poll_event()).collect();
        assert_eq!(events.first(), Some(&Event::Bootstrapped));
        assert!(!n.routing_contains(&[0x55; 20]));
        while n.poll_transmit(retry, &mut out).is_some() {}
        let mut at = retry;
        for _ in 0..10 {
            at = n.next_timeout().unwrap().max(at);
            n.handle_timeout(at);
            while n.poll_transmit(at, &mut out).is_some() {}
        }
        let events: Vec<Event> = events
            .into_iter()
            .chain(std::iter::from_fn(|| n.poll_event()))
            .collect();
        assert!(
            events.contains(&Event::LookupDone { lookup: l, closest: 0 }),
            "{events:?}"
        );
    }

    #[test]
    fn a_retry_answered_while_it_waits_is_not_sent() {
        let t0 = Instant::now();
        let router = addr(PEER);
        let mut n = behind_router(t0, router, 4);
        let mut out = Vec::new();
        assert_eq!(n.poll_transmit(t0, &mut out), Some(router));
        let tid = Message::decode(&out).unwrap().transaction_id.to_vec();
        let t = t0 + Duration::from_secs(2);
        n.handle_timeout(t);
        assert_eq!(n.stats().retries, 1);
        // The late reply to the first attempt lands before the retry leaves.
        let mut reply = Vec::new();
        krpc::encode_response(&mut reply, &tid, &krpc::ResponseOut::new(&[0x55; 20]), None, None);
        n.handle_datagram(t, router, &reply);
        assert_eq!(n.stats().replies_received, 1);
        let mut later = t;
        for _ in 0..5 {
            while n.poll_transmit(later, &mut out).is_some() {
                assert_ne!(
                    Message::decode(&out).unwrap().transaction_id,
                    &tid[..],
                    "stale retry sent"
                );
            }
            later += Duration::from_secs(1);
        }
        assert!(!n.sends.iter().any(|s| matches!(s, Send::Resend(_))));
    }
}
