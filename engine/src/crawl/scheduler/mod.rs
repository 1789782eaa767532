//! One core's crawl, as an I/O-free state machine over the remote nodes this
//! core owns.
//!
//! Owns the node table, queries in flight, per-IP pacing, the unreachable cache,
//! the first-level dedup and the queues of pending scrapes. Must not touch a
//! socket, a clock or another core's nodes: datagrams arrive through
//! [`Scheduler::handle_datagram`], leave through [`Scheduler::poll_transmit`],
//! time arrives as `now`, and everything for other cores or storage goes out
//! through [`Output`].
//!
//! ```text
//! runtime ─handle_datagram─▶ filter ─▶ krpc decode ─┬ reply ─▶ transactions (id + sender)
//!                                                   │    ├ samples ─▶ dedup ─▶ Output.discoveries
//!                                                   │    │                 └─▶ peer queries (get_peers, scrape)
//!                                                   │    ├ nodes ─▶ owner? ─▶ node table / Output.handovers
//!                                                   │    ├ values, n ─▶ Output.peers / names
//!                                                   │    ├ no values ─▶ lookup (PeerSearch) ─▶ Output.lookups
//!                                                   │    └ BFsd/BFpe ─▶ Output.swarms
//!                                                   └ query ─▶ Answering (only when not read-only):
//!                                                        reply; get_peers/announce ─▶ dedup ─▶ Output.discoveries,
//!                                                        announcer ─▶ Output.peers; querier ─▶ verify ping ─▶ node table
//! runtime ─handle_lookup_msg─▶ another core's lookup query to a node we own, or a report for ours
//! runtime ◀─poll_transmit── replies, then per-IP paced: peer queries (get_peers,
//!                           scrapes, lookup steps), samples (due by interval;
//!                           paused on backpressure), walks (find_node), bootstrap
//! runtime ─handle_timeout─▶ timeouts ─▶ failures ─▶ unreachable cache; maintenance
//! ```
//!
//! Politeness: a node is never sampled before its `interval` has passed (the
//! deadline is computed from the reply's arrival, rounded up), and every query
//! to an IP takes a token from that IP's bucket. Because the owner function
//! hashes the IP only, all nodes of an IP are on this core and the bucket is
//! exact.

mod peers;
mod queries;
mod replies;
mod sending;

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::answering::{Answering, Harvest, MAX_AMPLIFICATION};
use super::clock::{ms, Clock, Millis};
use super::config::{CrawlConfig, MAX_SAMPLE_INTERVAL};
use super::dedup::Dedup;
use super::external_ip::ExternalIpVote;
use super::keyspace::Keyspace;
use super::output::{CrawlStats, Discovery, Handover, Output, PeerFound, Via};
use super::owner::owner;
use super::peer_search::{JobKind, PeerJob, PeerSearch};
use super::probes::Probes;
use super::schedule::Schedule;
use super::table::{Bep51, Inserted, NodeRef, NodeTable, RemoteNode, NOT_QUEUED};
use super::transactions::{Asked, InFlight, Transactions};
use super::unreachable::Unreachable;
use crate::codec::compact::{CompactNode, CompactNodes};
use crate::codec::krpc::{encode_query, ErrorReply, Kind, Message, Query, Response};
use crate::codec::wire::{ERROR_METHOD_UNKNOWN, ID_LEN};
use crate::dht::addr_filter::AddrFilter;
use crate::dht::id;
use crate::dht::pacing::KeyedBuckets;
use crate::dht::server::Answered;

/// Schedule entries examined per `poll_transmit` before giving up for now, so
/// a call stays cheap when many due nodes are paced.
const POP_BUDGET: usize = 256;
/// Replies waiting to be sent in answering mode; queries beyond are ignored.
pub const MAX_QUEUED_REPLIES: usize = 256;
/// Queriers waiting for, or awaiting the answer to, a verifying ping; past it,
/// new queriers are not verified (a spoofed-source flood costs bounded memory).
const MAX_VERIFYING: usize = 1_024;
/// Nodes the table needs before a requested lookup starts (a lookup seeded by
/// nobody ends at once, and its retry is minutes away).
const MIN_LOOKUP_SEEDS: usize = 3;
/// Requested lookups waiting for the table to fill; beyond it they are dropped
/// (the fetch queue's next retry asks again).
const MAX_DEFERRED_LOOKUPS: usize = 4_096;
/// Below this many known nodes, bootstrap nodes are asked again.
const BOOTSTRAP_BELOW: usize = 16;
/// The first bootstrap rounds come this soon after each other, doubling up
/// to `bootstrap_retry`: a lost datagram costs seconds, a dead router little.
const BOOTSTRAP_FIRST_RETRY: Millis = 2_000;
/// Housekeeping period: cache expiry, idle pacing buckets, schedule compaction.
const MAINTENANCE_EVERY: Millis = 10_000;
/// Fewest lookup nodes whose probe state is kept.
const MIN_PROBES: usize = 4096;
/// Doublings of the empty-sample back-off before it stops growing.
const MAX_EMPTY_STREAK: u8 = 16;

/// The two per-node schedules: `sample_infohashes` by interval, `find_node` walks.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Plan {
    Sample,
    Walk,
}

impl Plan {
    /// The due time of the node's live entry on this schedule.
    fn queued_at(self, n: &mut RemoteNode) -> &mut Millis {
        match self {
            Plan::Sample => &mut n.sample_queued_at,
            Plan::Walk => &mut n.walk_queued_at,
        }
    }

    /// The earliest time the node may be asked again on this schedule.
    fn next(self, n: &RemoteNode) -> Millis {
        match self {
            Plan::Sample => n.next_sample,
            Plan::Walk => n.next_walk,
        }
    }
}

pub struct Scheduler {
    cfg: CrawlConfig,
    clock: Clock,
    rng: SmallRng,
    filter: AddrFilter,
    table: NodeTable,
    tx: Transactions,
    unreachable: Unreachable,
    /// Lookup steps' nodes: one query at a time until they answer.
    probes: Probes,
    dedup: Dedup,
    pacer: KeyedBuckets<IpAddr>,
    keyspace: Keyspace,
    samples: Schedule,
    walks: Schedule,
    peers: PeerSearch,
    bootstrap_next: usize,
    bootstrap_due: Millis,
    /// Rounds asked since the table last had enough nodes (the back-off's exponent).
    bootstrap_rounds: u32,
    maintenance_due: Millis,
    /// Longest BEP 51 `interval` any node has given (clamped): the guess for a
    /// node whose own interval we never saw.
    longest_interval: Millis,
    downstream_full: bool,
    paused: bool,
    /// The answering side; `None` when read-only.
    answering: Option<Answering>,
    /// Queriers to ping before they enter the node table, and those pinged.
    verify_queue: VecDeque<SocketAddr>,
    verifying: ahash::AHashSet<SocketAddr>,
    /// BEP 42: the `ip` votes of replies, when the external address was not given.
    external: ExternalIpVote,
    /// Lookups requested before the table could seed them.
    deferred_lookups: Vec<[u8; ID_LEN]>,
    replies: VecDeque<(SocketAddr, Vec<u8>)>,
    reply_pool: Vec<Vec<u8>>,
    output: Output,
    stats: CrawlStats,
}

impl Scheduler {
    pub fn new(mut cfg: CrawlConfig, now: Instant) -> Self {
        let mut rng = SmallRng::seed_from_u64(cfg.seed);
        if let Some(ip) = cfg.external_ip.filter(|ip| !id::is_secure_for(&cfg.node_id, *ip)) {
            // BEP 42: a secure id for the given address, its tail this core's own.
            cfg.node_id = id::secure(ip, &mut rng);
        }
        let hasher = || ahash::RandomState::with_seeds(cfg.seed, 0x7261_776c, 0x6372_6177, cfg.core as u64);
        let answering = (!cfg.read_only).then(|| {
            Answering::new(
                cfg.node_id,
                cfg.version,
                AddrFilter::new(cfg.allow_loopback),
                cfg.answer_rate,
                cfg.answer_burst,
                cfg.seed ^ cfg.core as u64,
                now,
            )
        });
        Scheduler {
            clock: Clock::new(now),
            filter: AddrFilter::new(cfg.allow_loopback),
            // Dropped nodes' deadlines: as many as unreachable addresses.
            table: NodeTable::new(cfg.max_nodes, cfg.max_unreachable, hasher()),
            tx: Transactions::new(cfg.max_in_flight),
            unreachable: Unreachable::new(ms(cfg.unreachable_ttl), cfg.max_unreachable, hasher()),
            probes: Probes::new(cfg.max_in_flight.max(MIN_PROBES), hasher()),
            dedup: Dedup::new(cfg.dedup_capacity),
            // Tracks every IP with a node here plus recent one-off destinations.
            pacer: KeyedBuckets::new(
                cfg.per_ip_rate,
                cfg.per_ip_burst,
                cfg.max_nodes + cfg.max_in_flight + cfg.max_pending_scrapes,
                hasher(),
            ),
            keyspace: Keyspace::new(rng.gen()),
            rng,
            samples: Schedule::new(),
            walks: Schedule::new(),
            peers: PeerSearch::new(cfg.peer_search.clone(), cfg.core, cfg.cores),
            bootstrap_next: 0,
            bootstrap_due: 0,
            bootstrap_rounds: 0,
            maintenance_due: MAINTENANCE_EVERY,
            longest_interval: 0,
            downstream_full: false,
            paused: false,
            answering,
            verify_queue: VecDeque::new(),
            verifying: ahash::AHashSet::default(),
            external: ExternalIpVote::default(),
            deferred_lookups: Vec::new(),
            replies: VecDeque::new(),
            reply_pool: Vec::new(),
            output: Output::default(),
            stats: CrawlStats::default(),
            cfg,
        }
    }

    /// The answering side (None when read-only).
    pub fn answering(&self) -> Option<&Answering> {
        self.answering.as_ref()
    }

    /// Backpressure from downstream: while set, no new `sample_infohashes` is
    /// sent; replies already coming in are still processed and queued.
    pub fn set_downstream_full(&mut self, full: bool) {
        self.downstream_full = full;
    }

    /// Operator pause: while set, no query of any kind is sent; replies and
    /// errors still arrive and are processed, and queries are still answered
    /// when not read-only.
    pub fn set_paused(&mut self, paused: bool) {
        self.paused = paused;
    }

    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// The queues for the runtime to drain.
    pub fn output(&mut self) -> &mut Output {
        &mut self.output
    }

    /// This core's index.
    pub fn core(&self) -> usize {
        self.cfg.core
    }

    pub fn stats(&self) -> CrawlStats {
        self.stats
    }

    pub fn known_nodes(&self) -> usize {
        self.table.len()
    }

    pub fn node_table(&self) -> &NodeTable {
        &self.table
    }

    pub fn in_flight(&self) -> usize {
        self.tx.len()
    }

    /// Peer queries (`get_peers`, scrapes, lookup steps) waiting to be sent.
    pub fn pending_scrapes(&self) -> usize {
        self.peers.pending()
    }

    /// The peer search's own counters (lookups).
    pub fn peer_search(&self) -> &PeerSearch {
        &self.peers
    }

    pub fn is_unreachable(&self, addr: &SocketAddr, now: Instant) -> bool {
        self.unreachable.contains(addr, self.clock.floor(now))
    }

    /// True while sampling is paused: downstream said so, or discoveries or
    /// scrapes are piling up faster than they drain.
    /// How long until the earliest scheduled sample (`None`: nothing scheduled).
    /// Zero while samples are due but held back (pacing, backpressure).
    pub fn next_sample_in(&self, now: Instant) -> Option<Duration> {
        let due = self.samples.peek_due()?;
        Some(self.clock.instant(due).saturating_duration_since(now))
    }

    pub fn backlogged(&self) -> bool {
        self.downstream_full
            || self.output.discoveries.len() >= self.cfg.max_pending_discoveries
            || self.peers.pending() >= self.cfg.max_pending_scrapes
    }

    /// Adds a node handed over by another core, or stored by a previous run.
    /// Returns true if it is new here.
    pub fn add_node(&mut self, now: Instant, node: CompactNode) -> bool {
        if owner(node.addr, self.cfg.cores) != self.cfg.core {
            self.stats.misrouted += 1;
            return false;
        }
        self.learn(self.clock.floor(now), node)
    }

    /// Adds a node stored by a previous run with the sampling state it saved:
    /// never sampled before `next_sample_unix` (unix seconds, 0: no limit), and
    /// not at all if it said it has no BEP 51. `unix_now` is the wall clock read
    /// just before `now`. Returns true if it is new here.
    pub fn add_saved_node(
        &mut self,
        now: Instant,
        unix_now: Duration,
        node: CompactNode,
        next_sample_unix: u64,
        bep51: Option<bool>,
    ) -> bool {
        let new = self.add_node(now, node);
        let Some(r) = self.table.lookup(&node.addr) else {
            return new;
        };
        // A valid deadline is at most one interval or back-off away.
        let max_wait = ms(MAX_SAMPLE_INTERVAL.max(self.cfg.max_backoff));
        let not_before = self.clock.from_unix_secs(next_sample_unix, now, unix_now, max_wait);
        if let Some(n) = self.table.get_mut(r) {
            n.next_sample = n.next_sample.max(not_before);
            match bep51 {
                Some(true) => n.bep51 = Bep51::Yes,
                Some(false) => n.bep51 = Bep51::No,
                None => {}
            }
        }
        new
    }

    /// When `n` may next be sampled, as unix seconds for storage (0: now).
    /// `unix_now` is the wall clock read just after `now`.
    pub fn next_sample_unix(&self, n: &RemoteNode, now: Instant, unix_now: Duration) -> u64 {
        self.clock.to_unix_secs(n.next_sample, now, unix_now)
    }

    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        self.stats.datagrams_in += 1;
        if !self.filter.allows(from) {
            self.stats.filtered += 1;
            return;
        }
        let Ok(msg) = Message::decode(bytes) else {
            self.stats.decode_errors += 1;
            self.answer_malformed(now, from, bytes);
            return;
        };
        match msg.kind {
            Kind::Response(ref r) => self.on_response(now, from, msg.transaction_id, r, msg.requester_ip),
            Kind::Error(ref e) => self.on_error(now, from, msg.transaction_id, e),
            Kind::Query(ref q) => self.on_query(now, from, &msg, q, bytes.len()),
        }
    }

    /// Writes the next datagram into `buf` (cleared first) and returns where to
    /// send it, or None when nothing may go now (see [`Self::next_timeout`]).
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<SocketAddr> {
        buf.clear();
        if let Some((to, reply)) = self.replies.pop_front() {
            buf.extend_from_slice(&reply);
            self.reply_pool.push(reply);
            self.stats.replies_sent += 1;
            self.stats.datagrams_out += 1;
            return Some(to);
        }
        if self.paused || self.tx.is_full() {
            return None;
        }
        let now_ms = self.clock.floor(now);
        let to = self
            .next_verify(now, now_ms, buf)
            .or_else(|| self.next_peer_query(now, now_ms, buf))
            .or_else(|| self.next_sample(now, now_ms, buf))
            .or_else(|| self.next_walk(now, now_ms, buf))
            .or_else(|| self.next_bootstrap(now, now_ms, buf))?;
        self.stats.datagrams_out += 1;
        Some(to)
    }

    /// When [`Self::handle_timeout`] or [`Self::poll_transmit`] next has work.
    pub fn next_timeout(&self) -> Option<Instant> {
        if !self.replies.is_empty() {
            return Some(self.clock.instant(0));
        }
        let mut t = self.maintenance_due;
        let mut consider = |d: Option<Millis>| {
            if let Some(d) = d {
                t = t.min(d);
            }
        };
        consider(self.tx.next_deadline());
        consider(self.peers.next_timer());
        if !self.paused && !self.tx.is_full() {
            consider(self.peers.next_due());
            if !self.backlogged() {
                consider(self.samples.peek_due());
            }
            consider(self.walks.peek_due());
            if self.wants_bootstrap() {
                consider(Some(self.bootstrap_due));
            }
        }
        Some(self.clock.instant(t))
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        let now_ms = self.clock.floor(now);
        while let Some(q) = self.tx.pop_expired(now_ms) {
            self.stats.timeouts += 1;
            if let Asked::GetPeers(info_hash, kind) = q.asked {
                self.peers_failed(now_ms, q.to, info_hash, kind);
                if matches!(kind, JobKind::Lookup(_)) {
                    self.lookup_step_timed_out(now_ms, q.to);
                    continue;
                }
            }
            if q.asked == Asked::Verify {
                self.verifying.remove(&q.to);
            }
            let Some(r) = q.node else { continue };
            let earlier = self.probes.take_failures(&q.to);
            let Some(n) = self.table.get_mut(r) else { continue };
            n.in_flight = false;
            n.failures = n.failures.saturating_add(1).saturating_add(earlier);
            if n.failures >= self.cfg.max_failures {
                let addr = n.addr;
                self.table.remove(r);
                self.unreachable.insert(addr, now_ms);
                self.stats.marked_unreachable += 1;
                continue;
            }
            let retry = now_ms.saturating_add(ms(self.cfg.retry_after_timeout));
            match q.asked {
                // The node may have answered, late, with an interval we never
                // saw: wait that interval, and at least the doubling retry.
                Asked::Sample => {
                    let wait = lost_sample_wait(&self.cfg, n.interval, self.longest_interval, n.failures);
                    n.next_sample = n.next_sample.max(now_ms.saturating_add(wait));
                }
                Asked::FindNode | Asked::Bootstrap => n.next_walk = n.next_walk.max(retry),
                Asked::GetPeers(..) | Asked::Verify => {}
            }
            self.requeue(r);
        }
        self.tick_lookups(now_ms);
        if !self.deferred_lookups.is_empty() && self.table.len() >= MIN_LOOKUP_SEEDS {
            for h in std::mem::take(&mut self.deferred_lookups) {
                self.start_lookup(now_ms, h);
            }
        }
        if now_ms >= self.maintenance_due {
            self.maintenance_due = now_ms + MAINTENANCE_EVERY;
            self.unreachable.expire(now_ms);
            self.table.forget_passed(now_ms);
            self.pacer.prune(now);
            let table = &self.table;
            self.samples.compact_if_needed(table.len(), |due, r| {
                table.get(r).is_some_and(|n| n.sample_queued_at == due)
            });
            self.walks.compact_if_needed(table.len(), |due, r| {
                table.get(r).is_some_and(|n| n.walk_queued_at == due)
            });
        }
    }

    /// This core's node id now (BEP 42 secure once the external address is known).
    pub fn node_id(&self) -> [u8; ID_LEN] {
        self.cfg.node_id
    }

    /// The external address the replies' `ip` votes settled on, IPv4 first.
    pub fn external_ip(&self) -> Option<IpAddr> {
        self.cfg
            .external_ip
            .or_else(|| self.external.winner(false))
            .or_else(|| self.external.winner(true))
    }
}

/// How long to leave a node whose `sample_infohashes` got no reply. It may
/// have answered (the reply lost on the way, or dropped by a full socket
/// buffer) and started its interval, so wait that interval: the node's last
/// one if we saw it, else the longest any node has given. Never less than the
/// timeout retry, doubled per consecutive failure: a node that is only down
/// for a while (churn) is tried again, a dead one soon counts as unreachable.
fn lost_sample_wait(cfg: &CrawlConfig, interval: Option<Millis>, longest: Millis, failures: u8) -> Millis {
    let floor = ms(cfg.retry_after_timeout) << u32::from(failures.saturating_sub(1).min(4));
    floor.max(interval.unwrap_or(longest))
}

/// A fresh random node id for a crawl core (each core and each run gets its own).
pub fn random_node_id(rng: &mut impl Rng) -> [u8; ID_LEN] {
    let mut id = [0u8; ID_LEN];
    rng.fill(&mut id);
    id
}
