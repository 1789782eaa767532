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

    // ---- incoming -------------------------------------------------------

    fn on_response(
        &mut self,
        now: Instant,
        from: SocketAddr,
        tid: &[u8],
        r: &Response<'_>,
        seen_as: Option<SocketAddr>,
    ) {
        let Some(q) = self.tx.finish(tid, from) else {
            self.stats.unmatched += 1;
            return;
        };
        if let (Some(seen), None) = (seen_as, self.cfg.external_ip) {
            if let Some(ip) = self.external.vote(from.ip(), seen.ip()) {
                self.take_secure_id(now, ip);
            }
        }
        let now_ms = self.clock.floor(now);
        if let Some(a) = self.answering.as_mut() {
            a.heard_response(now, CompactNode { id: *r.id, addr: from });
        }
        let learned = self.learn_all(now_ms, r.nodes.clone()) + self.learn_all(now_ms, r.nodes6.clone());
        match q.asked {
            Asked::Sample => self.on_samples(now, from, q.node, r),
            Asked::FindNode => {
                if let Some(n) = q.node.and_then(|nr| self.table.get_mut(nr)) {
                    n.in_flight = false;
                    n.failures = 0;
                    // A walk that found nobody new waits longer before the next.
                    let wait = ms(self.cfg.walk_interval) << u32::from(learned == 0);
                    n.next_walk = now_ms.saturating_add(wait);
                }
            }
            Asked::Bootstrap => {
                self.learn(now_ms, CompactNode { id: *r.id, addr: from });
            }
            Asked::Verify => {
                self.verifying.remove(&from);
                self.learn(now_ms, CompactNode { id: *r.id, addr: from });
            }
            Asked::GetPeers(info_hash, kind) => self.on_peers(now_ms, from, info_hash, kind, r),
        }
        if let Some(nr) = q.node {
            self.requeue(nr);
        }
    }

    fn on_samples(&mut self, now: Instant, from: SocketAddr, node: Option<NodeRef>, r: &Response<'_>) {
        let Some(nr) = node else { return };
        let Some(n) = self.table.get_mut(nr) else { return };
        n.in_flight = false;
        n.failures = 0;
        n.id = *r.id;
        let now_ms = self.clock.floor(now);
        if r.interval.is_none() && r.num.is_none() && r.samples.is_empty() {
            // Answered, but not as BEP 51: walk it with find_node instead.
            n.bep51 = Bep51::No;
            n.next_walk = now_ms;
            return;
        }
        n.bep51 = Bep51::Yes;
        let mut fresh = 0u32;
        // The peer queries all go to this node's IP: spread their due times at
        // its pacing rate beyond the burst, so each is popped about once
        // instead of being found paced and re-queued again and again.
        let spacing = (1000.0 / self.cfg.per_ip_rate.max(1e-3)).ceil() as Millis;
        let burst = self.cfg.per_ip_burst.max(1.0) as u32;
        let kinds: &[JobKind] = if self.cfg.scrape_counts {
            &[JobKind::Peers, JobKind::Scrape]
        } else {
            &[JobKind::Peers]
        };
        let mut queued = 0u32;
        let (output, peers) = (&mut self.output, &mut self.peers);
        self.dedup.insert_all(r.samples.clone(), |h| {
            fresh += 1;
            output.discoveries.push(Discovery {
                info_hash: *h,
                source: from,
                source_id: *r.id,
                via: Via::Sample,
            });
            for &kind in kinds {
                queued += 1;
                let due = now_ms.saturating_add(Millis::from(queued.saturating_sub(burst)) * spacing);
                peers.push(
                    due,
                    PeerJob {
                        info_hash: *h,
                        to: from,
                        kind,
                    },
                );
            }
        });
        self.stats.new_hashes += u64::from(fresh);
        self.stats.duplicate_hashes += (r.samples.len() as u64).saturating_sub(u64::from(fresh));
        n.samples_answered = n.samples_answered.saturating_add(1);
        n.new_hashes = n.new_hashes.saturating_add(fresh);
        // A node that holds more than it showed (libtorrent shows 20 of its
        // store, picked anew each interval) has more to give even when this
        // sample brought nothing new: only one that showed all it has backs off.
        let holds_more = r.num.is_some_and(|num| num > r.samples.len() as i64);
        let policy = if fresh > 0 || holds_more {
            n.empty_streak = 0;
            ms(self.cfg.productive_resample)
        } else {
            n.empty_streak = (n.empty_streak + 1).min(MAX_EMPTY_STREAK);
            let doubled = ms(self.cfg.empty_backoff).saturating_mul(1 << (n.empty_streak - 1));
            doubled.min(ms(self.cfg.max_backoff))
        };
        let interval = r.interval.unwrap_or(0).clamp(0, MAX_SAMPLE_INTERVAL.as_secs() as i64) as Millis * 1000;
        n.interval = Some(interval);
        self.longest_interval = self.longest_interval.max(interval);
        // Rounded up from the arrival: never before the node's own clock allows.
        n.next_sample = self.clock.ceil(now).saturating_add(interval.max(policy));
    }

    fn on_error(&mut self, now: Instant, from: SocketAddr, tid: &[u8], e: &ErrorReply<'_>) {
        let Some(q) = self.tx.finish(tid, from) else {
            self.stats.unmatched += 1;
            return;
        };
        let now_ms = self.clock.floor(now);
        if let Asked::GetPeers(info_hash, kind) = q.asked {
            if matches!(kind, JobKind::Lookup(_)) {
                self.probes.answered(&from);
            }
            self.peers_failed(now_ms, from, info_hash, kind);
        }
        if q.asked == Asked::Verify {
            // Alive, but it would not answer a ping: not a node to keep.
            self.verifying.remove(&from);
        }
        let Some(nr) = q.node else { return };
        let Some(n) = self.table.get_mut(nr) else { return };
        n.in_flight = false;
        n.failures = 0;
        let backoff = now_ms.saturating_add(ms(self.cfg.empty_backoff));
        match q.asked {
            Asked::Sample if e.code == ERROR_METHOD_UNKNOWN => {
                n.bep51 = Bep51::No;
                n.next_walk = now_ms;
            }
            Asked::Sample => n.next_sample = n.next_sample.max(backoff),
            _ => n.next_walk = n.next_walk.max(backoff),
        }
        self.requeue(nr);
    }

    fn on_query(&mut self, now: Instant, from: SocketAddr, msg: &Message<'_>, q: &Query<'_>, len: usize) {
        let Some(answering) = self.answering.as_mut() else {
            self.stats.queries_ignored += 1;
            return;
        };
        if self.replies.len() >= MAX_QUEUED_REPLIES || !answering.admit(now, from) {
            self.stats.queries_ignored += 1;
            return;
        }
        let mut buf = self.reply_pool.pop().unwrap_or_default();
        let (answered, harvest) = answering.answer(now, from, msg.transaction_id, q, len, &mut buf);
        self.stats.queries_answered += 1;
        if matches!(answered, Answered::Error { .. }) {
            self.stats.query_errors_sent += 1;
        }
        self.replies.push_back((from, buf));
        // BEP 43: read-only queriers are not added to routing tables; BEP 5: a
        // querier is added only once it answered a query of ours (a source
        // address can be forged).
        if let (false, Some(id)) = (msg.read_only, q.id()) {
            let node = CompactNode { id: *id, addr: from };
            if !answering.heard_query(now, node) {
                self.verify(now, node);
            }
        }
        self.harvest(self.clock.floor(now), from, q, harvest);
    }

    /// Starts a `get_peers` lookup toward `info_hash` (one the fetcher had no
    /// peers for); the peers it finds leave through [`Output::peers`].
    /// Until the table holds a few nodes (right after start) it waits.
    pub fn look_up(&mut self, now: Instant, info_hash: [u8; ID_LEN]) {
        self.stats.lookups_requested += 1;
        self.start_lookup(self.clock.floor(now), info_hash);
    }

    /// A lookup toward `info_hash` seeded from the table, or deferred while
    /// the table is too small to seed one.
    fn start_lookup(&mut self, now_ms: Millis, info_hash: [u8; ID_LEN]) {
        if self.table.len() < MIN_LOOKUP_SEEDS {
            if self.deferred_lookups.len() < MAX_DEFERRED_LOOKUPS {
                self.deferred_lookups.push(info_hash);
            }
            return;
        }
        let seeds = self.random_seeds();
        self.peers.start(now_ms, info_hash, seeds, &mut self.output.lookups);
    }

    /// BEP 42: the vote settled on `ip` as this host's address; the core's id
    /// becomes secure for it (IPv4 first: one id cannot be secure for both).
    fn take_secure_id(&mut self, now: Instant, ip: IpAddr) {
        if ip.is_ipv6() && self.external.winner(false).is_some() {
            return;
        }
        if id::is_secure_for(&self.cfg.node_id, ip) {
            return;
        }
        self.cfg.node_id = id::secure(ip, &mut self.rng);
        self.stats.id_changes += 1;
        if let Some(a) = self.answering.as_mut() {
            a.set_id(self.cfg.node_id, now);
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

    /// Queues a verifying ping to a querier this core would take in.
    fn verify(&mut self, now: Instant, node: CompactNode) {
        let now_ms = self.clock.floor(now);
        if node.id == self.cfg.node_id
            || owner(node.addr, self.cfg.cores) != self.cfg.core
            || self.table.knows(&node.addr)
            || self.unreachable.contains(&node.addr, now_ms)
            || self.verifying.len() >= MAX_VERIFYING
            || !self.verifying.insert(node.addr)
        {
            return;
        }
        self.verify_queue.push_back(node.addr);
    }

    /// A harvested infohash goes through dedup to the store; an announcer to
    /// the fetcher; a hash only asked for gets a lookup toward it (the querier
    /// is looking for peers, it has none to give).
    fn harvest(&mut self, now_ms: Millis, from: SocketAddr, q: &Query<'_>, harvest: Harvest) {
        let (info_hash, via) = match harvest {
            Harvest::Nothing => return,
            Harvest::Asked(h) => (h, Via::GetPeers),
            Harvest::Announced(h, peer) => {
                // The announcer has the torrent: the best metadata source there is.
                if self.filter.allows(peer) {
                    self.output.peers.push(PeerFound { info_hash: h, peer });
                    self.stats.announced_peers += 1;
                }
                (h, Via::Announce)
            }
        };
        if !self.dedup.insert(&info_hash) {
            self.stats.duplicate_hashes += 1;
            return;
        }
        self.stats.new_hashes += 1;
        match via {
            Via::Announce => self.stats.harvested_announces += 1,
            _ => {
                self.stats.harvested_get_peers += 1;
                if self.peers.waiting() < self.cfg.peer_search.max_waiting / 2 {
                    self.start_lookup(now_ms, info_hash);
                } else {
                    self.stats.harvest_lookups_skipped += 1;
                }
            }
        }
        self.output.discoveries.push(Discovery {
            info_hash,
            source: from,
            source_id: q.id().copied().unwrap_or([0; ID_LEN]),
            via,
        });
    }

    /// A datagram that failed to decode: answered with error 203 when it was a
    /// query with a transaction id and its sender is within its answer budget.
    fn answer_malformed(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        let Some(answering) = self.answering.as_mut() else {
            return;
        };
        if self.replies.len() >= MAX_QUEUED_REPLIES {
            return;
        }
        let mut buf = self.reply_pool.pop().unwrap_or_default();
        if answering.malformed(bytes, &mut buf)
            && buf.len() <= MAX_AMPLIFICATION * bytes.len()
            && answering.admit(now, from)
        {
            self.stats.queries_answered += 1;
            self.stats.query_errors_sent += 1;
            self.replies.push_back((from, buf));
        } else {
            self.reply_pool.push(buf);
        }
    }

    fn learn_all(&mut self, now_ms: Millis, nodes: CompactNodes<'_>) -> u32 {
        let mut new = 0;
        for node in nodes {
            new += u32::from(self.learn(now_ms, node));
        }
        new
    }

    /// Takes a node into the table if it is reachable, allowed and ours; hands
    /// it over if another core owns it. True if it is new here.
    fn learn(&mut self, now_ms: Millis, node: CompactNode) -> bool {
        // A family we did not ask for (BEP 32 `want`) has no socket here.
        if node.id == self.cfg.node_id || (node.addr.is_ipv6() && !self.cfg.want.v6) {
            return false;
        }
        if !self.filter.allows(node.addr) {
            self.stats.filtered += 1;
            return false;
        }
        let core = owner(node.addr, self.cfg.cores);
        if core != self.cfg.core {
            self.output.handovers.push(Handover { core, node });
            return false;
        }
        // Most nodes in a reply are known already. What a third party says of
        // a known node's id is hearsay (its own replies set it), so a known
        // node costs one index probe and nothing else.
        if self.table.knows(&node.addr) || self.unreachable.contains(&node.addr, now_ms) {
            return false;
        }
        match self.table.insert(node.addr, &node.id, now_ms, &mut self.rng) {
            Inserted::New(r) => {
                if let Some(n) = self.table.get_mut(r) {
                    n.next_walk = now_ms.saturating_add(ms(self.cfg.walk_interval));
                }
                self.requeue(r);
                true
            }
            Inserted::Known(_) | Inserted::Refused => false,
        }
    }

    /// Puts a node that is not in flight back on the schedules it belongs to,
    /// or moves its entry earlier (the old entry goes stale).
    fn requeue(&mut self, r: NodeRef) {
        let Some(n) = self.table.get_mut(r) else { return };
        if n.in_flight {
            return;
        }
        if n.bep51 != Bep51::No && n.next_sample < n.sample_queued_at {
            n.sample_queued_at = n.next_sample;
            self.samples.push(n.next_sample, r);
        }
        if n.next_walk < n.walk_queued_at {
            n.walk_queued_at = n.next_walk;
            self.walks.push(n.next_walk, r);
        }
    }

    // ---- outgoing -------------------------------------------------------

    fn next_sample(&mut self, now: Instant, now_ms: Millis, buf: &mut Vec<u8>) -> Option<SocketAddr> {
        if self.backlogged() {
            if self.samples.peek_due().is_some_and(|d| d <= now_ms) {
                self.stats.backpressure_pauses += 1;
            }
            return None;
        }
        let (r, to) = self.pop_ready(Plan::Sample, now, now_ms)?;
        let target = self.keyspace.next_target(&mut self.rng);
        let node_id = self.cfg.node_id;
        let query = Query::SampleInfohashes {
            id: &node_id,
            target: &target,
            want: self.cfg.want,
        };
        self.send(now_ms, to, Some(r), Asked::Sample, &query, buf)?;
        self.stats.samples_sent += 1;
        // Until the reply brings the node's interval, assume the back-off of a
        // sample lost after it counted: what a save before the reply keeps.
        if let Some(n) = self.table.get_mut(r) {
            let wait = lost_sample_wait(&self.cfg, n.interval, self.longest_interval, n.failures + 1);
            n.next_sample = n.next_sample.max(now_ms.saturating_add(wait));
        }
        Some(to)
    }

    /// A ping to the next querier awaiting verification, paced like any query.
    fn next_verify(&mut self, now: Instant, now_ms: Millis, buf: &mut Vec<u8>) -> Option<SocketAddr> {
        let to = *self.verify_queue.front()?;
        if !self.pacer.take(now, to.ip()) {
            return None;
        }
        self.verify_queue.pop_front();
        let node_id = self.cfg.node_id;
        let query = Query::Ping { id: &node_id };
        if self.send(now_ms, to, None, Asked::Verify, &query, buf).is_none() {
            self.verifying.remove(&to);
            return None;
        }
        self.stats.verify_pings_sent += 1;
        Some(to)
    }

    fn next_walk(&mut self, now: Instant, now_ms: Millis, buf: &mut Vec<u8>) -> Option<SocketAddr> {
        let (r, to) = self.pop_ready(Plan::Walk, now, now_ms)?;
        let target = self.keyspace.next_target(&mut self.rng);
        let node_id = self.cfg.node_id;
        let query = Query::FindNode {
            id: &node_id,
            target: &target,
            want: self.cfg.want,
        };
        self.send(now_ms, to, Some(r), Asked::FindNode, &query, buf)?;
        self.stats.find_nodes_sent += 1;
        Some(to)
    }

    fn schedule(&mut self, plan: Plan) -> &mut Schedule {
        match plan {
            Plan::Sample => &mut self.samples,
            Plan::Walk => &mut self.walks,
        }
    }

    /// The next node on `plan`'s schedule that may be queried now, with its IP's
    /// pacing token already taken. Stale entries are dropped; nodes whose own
    /// time or IP is not ready yet are put back for when they are.
    fn pop_ready(&mut self, plan: Plan, now: Instant, now_ms: Millis) -> Option<(NodeRef, SocketAddr)> {
        for _ in 0..POP_BUDGET {
            let (due, r) = self.schedule(plan).pop_due(now_ms)?;
            let Some(n) = self.table.get_mut(r) else { continue };
            if *plan.queued_at(n) != due {
                continue;
            }
            *plan.queued_at(n) = NOT_QUEUED;
            if n.in_flight || (plan == Plan::Sample && n.bep51 == Bep51::No) {
                // Requeued when the reply comes back.
                continue;
            }
            let (to, next) = (n.addr, plan.next(n));
            let wait_until = if next > now_ms {
                next
            } else if !self.pacer.take(now, to.ip()) {
                self.paced_until(now, now_ms, to.ip())
            } else {
                return Some((r, to));
            };
            if let Some(n) = self.table.get_mut(r) {
                *plan.queued_at(n) = wait_until;
            }
            self.schedule(plan).push(wait_until, r);
        }
        None
    }

    fn wants_bootstrap(&self) -> bool {
        self.table.len() < BOOTSTRAP_BELOW && !self.cfg.bootstrap.is_empty()
    }

    /// Asks the bootstrap nodes this core owns (replies from the others would
    /// land on their owner cores), one per call, a round per `bootstrap_retry`.
    fn next_bootstrap(&mut self, now: Instant, now_ms: Millis, buf: &mut Vec<u8>) -> Option<SocketAddr> {
        if !self.wants_bootstrap() || now_ms < self.bootstrap_due {
            return None;
        }
        while self.bootstrap_next < self.cfg.bootstrap.len() {
            let to = self.cfg.bootstrap[self.bootstrap_next];
            self.bootstrap_next += 1;
            if owner(to, self.cfg.cores) != self.cfg.core || !self.filter.allows(to) {
                continue;
            }
            if !self.pacer.take(now, to.ip()) {
                continue;
            }
            let target = self.keyspace.next_target(&mut self.rng);
            let node_id = self.cfg.node_id;
            let query = Query::FindNode {
                id: &node_id,
                target: &target,
                want: self.cfg.want,
            };
            self.send(now_ms, to, None, Asked::Bootstrap, &query, buf)?;
            self.stats.find_nodes_sent += 1;
            return Some(to);
        }
        self.bootstrap_next = 0;
        self.bootstrap_due = now_ms.saturating_add(ms(self.cfg.bootstrap_retry));
        None
    }

    /// When `ip`'s bucket has a token again, strictly after now.
    fn paced_until(&self, now: Instant, now_ms: Millis, ip: IpAddr) -> Millis {
        self.clock.ceil(self.pacer.ready_at(now, &ip)).max(now_ms + 1)
    }

    fn send(
        &mut self,
        now_ms: Millis,
        to: SocketAddr,
        node: Option<NodeRef>,
        asked: Asked,
        query: &Query<'_>,
        buf: &mut Vec<u8>,
    ) -> Option<()> {
        let deadline = now_ms.saturating_add(ms(self.cfg.query_timeout));
        let tid = self.tx.start(
            InFlight {
                to,
                node,
                asked,
                deadline,
            },
            self.rng.gen(),
        )?;
        if let Some(n) = node.and_then(|r| self.table.get_mut(r)) {
            n.in_flight = true;
        }
        let version = self.cfg.version.as_ref().map(|v| &v[..]);
        encode_query(buf, &tid, query, self.cfg.read_only, version);
        Some(())
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
