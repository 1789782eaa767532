//! How one core finds peers for the infohashes it discovers, the way real
//! nodes give them.
//!
//! libtorrent answers a `get_peers` carrying `scrape`=1 with bloom filters
//! *instead of* `values`, so peers and counts are two queries: a plain
//! `get_peers` to the node that gave the sample (it holds the announcers of
//! everything it samples), and, where counts are wanted, a separate BEP 33
//! scrape. When the sampler gives no peers, an iterative `get_peers` lookup
//! ([`crate::dht::lookup::Lookup`], the library's own) walks toward the
//! infohash, bounded in queries and time, and a lookup that finds nothing is
//! retried later with back-off.
//!
//! Owns the queue of peer queries still to send (each due at a time, so
//! pacing can push one back), the lookups in flight and the retry queue. Must
//! not send, time out or pace by itself: the [`Scheduler`](super::Scheduler)
//! pops due queries, takes pacing tokens, and reports replies and failures.
//!
//! # Lookups across cores
//! A remote node is queried only by the core that owns it (so per-IP pacing
//! stays exact and a remote sees one id). A lookup lives on the core that
//! started it; a query to a node another core owns travels there as
//! [`LookupMsg::Query`], is sent and paced by that core, and its outcome comes
//! back as [`LookupMsg::Report`]. Peers in the reply go to storage from
//! whichever core received them.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::net::SocketAddr;

use super::clock::Millis;
use super::dedup::InfoHash;
use super::owner::owner;
use crate::codec::compact::CompactNode;
use crate::codec::wire::ID_LEN;
use crate::dht::lookup::{Lookup, Method};

/// Kademlia's k and alpha for peer lookups.
const LOOKUP_K: usize = 8;
const LOOKUP_ALPHA: usize = 3;

/// Limits of the peer search on one core.
#[derive(Clone, Debug, PartialEq)]
pub struct PeerSearchConfig {
    /// Lookups running at once; more wait in line.
    pub max_lookups: usize,
    /// Lookups waiting for a free slot; beyond it a lookup is dropped (counted).
    pub max_waiting: usize,
    /// Queries one lookup may send.
    pub max_queries: u16,
    /// How long one lookup may run.
    pub lookup_time: Millis,
    /// First wait before a lookup that found no peers runs again; it doubles
    /// per attempt.
    pub retry_after: Millis,
    /// Lookups for one infohash before it is given up (the first included).
    pub max_attempts: u8,
}

impl Default for PeerSearchConfig {
    fn default() -> Self {
        PeerSearchConfig {
            max_lookups: 2_048,
            max_waiting: 100_000,
            max_queries: 24,
            lookup_time: 60_000,
            retry_after: 10 * 60_000,
            max_attempts: 4,
        }
    }
}

/// Names a lookup on the core that runs it; a stale key (the slot since
/// reused) matches nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LookupKey {
    pub core: u16,
    pub slot: u32,
    pub generation: u32,
}

/// What a queued peer query is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum JobKind {
    /// Plain `get_peers` to the sampler, for `values`.
    Peers,
    /// BEP 33 scrape to the sampler, for counts.
    Scrape,
    /// One step of a lookup (this core's or another's).
    Lookup(LookupKey),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct PeerJob {
    pub info_hash: InfoHash,
    pub to: SocketAddr,
    pub kind: JobKind,
}

/// Lookup traffic between cores.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LookupMsg {
    /// Ask `node` (owned by the receiving core) for peers, for lookup `key`.
    Query {
        key: LookupKey,
        info_hash: InfoHash,
        node: CompactNode,
    },
    /// How `from` answered a query of lookup `key`.
    Report { key: LookupKey, report: Report },
}

/// One lookup query's outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub from: SocketAddr,
    /// The responder's id; `None` when it timed out or answered an error.
    pub id: Option<[u8; ID_LEN]>,
    /// Closer nodes it gave (already filtered).
    pub nodes: Vec<CompactNode>,
    /// Usable peers it gave.
    pub peers: u32,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PeerSearchStats {
    pub lookups_started: u64,
    /// Lookups that ended with at least one peer.
    pub lookups_found: u64,
    /// Lookups that ended with none (retried later, or given up).
    pub lookups_empty: u64,
    pub lookups_given_up: u64,
    /// Lookups dropped because the waiting line was full.
    pub lookups_dropped: u64,
    /// Lookup queries handed to the core that owns their node.
    pub queries_delegated: u64,
}

struct Running {
    info_hash: InfoHash,
    lookup: Lookup,
    queries: u16,
    peers: u32,
    attempt: u8,
}

struct Slot {
    generation: u32,
    running: Option<Running>,
}

/// A lookup to start: its infohash, which attempt, and the nodes to begin from.
type Waiting = (InfoHash, u8, Vec<CompactNode>);

pub struct PeerSearch {
    cfg: PeerSearchConfig,
    core: usize,
    cores: usize,
    jobs: BinaryHeap<Reverse<(Millis, u64, PeerJob)>>,
    seq: u64,
    slots: Vec<Slot>,
    free: Vec<u32>,
    running: usize,
    /// Start order is deadline order: every lookup gets the same time.
    deadlines: VecDeque<(Millis, LookupKey)>,
    waiting: VecDeque<Waiting>,
    retries: BinaryHeap<Reverse<(Millis, InfoHash, u8)>>,
    stats: PeerSearchStats,
}

impl PeerSearch {
    pub fn new(cfg: PeerSearchConfig, core: usize, cores: usize) -> Self {
        PeerSearch {
            cfg,
            core,
            cores: cores.max(1),
            jobs: BinaryHeap::new(),
            seq: 0,
            slots: Vec::new(),
            free: Vec::new(),
            running: 0,
            deadlines: VecDeque::new(),
            waiting: VecDeque::new(),
            retries: BinaryHeap::new(),
            stats: PeerSearchStats::default(),
        }
    }

    pub fn stats(&self) -> PeerSearchStats {
        self.stats
    }

    /// Peer queries waiting to be sent.
    pub fn pending(&self) -> usize {
        self.jobs.len()
    }

    pub fn running(&self) -> usize {
        self.running
    }

    /// Lookups waiting for a slot or for their retry time.
    pub fn waiting(&self) -> usize {
        self.waiting.len() + self.retries.len()
    }

    /// Queues a query, due at `due`.
    pub fn push(&mut self, due: Millis, job: PeerJob) {
        self.seq += 1;
        self.jobs.push(Reverse((due, self.seq, job)));
    }

    /// When the next queued query is due.
    pub fn next_due(&self) -> Option<Millis> {
        self.jobs.peek().map(|Reverse((due, ..))| *due)
    }

    /// The next query due by `now`, taken off the queue.
    pub fn pop_due(&mut self, now: Millis) -> Option<PeerJob> {
        let &Reverse((due, _, job)) = self.jobs.peek()?;
        if due > now {
            return None;
        }
        self.jobs.pop();
        Some(job)
    }

    /// When [`Self::tick`] next has something to do (a deadline or a retry).
    pub fn next_timer(&self) -> Option<Millis> {
        let deadline = self.deadlines.front().map(|(d, _)| *d);
        let retry = self.retries.peek().map(|Reverse((d, ..))| *d);
        match (deadline, retry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Starts a lookup toward `info_hash` from `seeds`, or queues it while
    /// every slot is busy. Queries for other cores go to `out`.
    pub fn start(
        &mut self,
        now: Millis,
        info_hash: InfoHash,
        seeds: Vec<CompactNode>,
        out: &mut Vec<(usize, LookupMsg)>,
    ) {
        self.begin(now, info_hash, 1, seeds, out);
    }

    fn begin(
        &mut self,
        now: Millis,
        info_hash: InfoHash,
        attempt: u8,
        seeds: Vec<CompactNode>,
        out: &mut Vec<(usize, LookupMsg)>,
    ) {
        if self.running >= self.cfg.max_lookups {
            if self.waiting.len() >= self.cfg.max_waiting {
                self.stats.lookups_dropped += 1;
            } else {
                self.waiting.push_back((info_hash, attempt, seeds));
            }
            return;
        }
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    running: None,
                });
                (self.slots.len() - 1) as u32
            }
        };
        let s = &mut self.slots[slot as usize];
        s.generation = s.generation.wrapping_add(1);
        let mut lookup = Lookup::new(info_hash, Method::GetPeers, LOOKUP_K, LOOKUP_ALPHA);
        lookup.add(seeds);
        s.running = Some(Running {
            info_hash,
            lookup,
            queries: 0,
            peers: 0,
            attempt,
        });
        let key = LookupKey {
            core: self.core as u16,
            slot,
            generation: s.generation,
        };
        self.running += 1;
        self.stats.lookups_started += 1;
        self.deadlines
            .push_back((now.saturating_add(self.cfg.lookup_time), key));
        self.pump(now, key, out);
    }

    /// The live slot `key` names, if it is this core's and not reused since.
    fn slot_mut(slots: &mut [Slot], core: usize, key: LookupKey) -> Option<&mut Slot> {
        let s = slots.get_mut(key.slot as usize)?;
        (s.generation == key.generation && key.core as usize == core && s.running.is_some()).then_some(s)
    }

    /// Sends what the lookup may send now, or ends it.
    fn pump(&mut self, now: Millis, key: LookupKey, out: &mut Vec<(usize, LookupMsg)>) {
        let (core, cores, max_queries) = (self.core, self.cores, self.cfg.max_queries);
        let Some(r) = Self::slot_mut(&mut self.slots, core, key).and_then(|s| s.running.as_mut()) else {
            return;
        };
        // Once peers are found, what is in flight may finish, nothing more goes.
        let mut jobs = Vec::new();
        while r.peers == 0 && r.queries < max_queries {
            let Some(node) = r.lookup.next_query() else { break };
            r.queries += 1;
            let owner = owner(node.addr, cores);
            if owner == core {
                jobs.push(PeerJob {
                    info_hash: r.info_hash,
                    to: node.addr,
                    kind: JobKind::Lookup(key),
                });
            } else {
                out.push((
                    owner,
                    LookupMsg::Query {
                        key,
                        info_hash: r.info_hash,
                        node,
                    },
                ));
                self.stats.queries_delegated += 1;
            }
        }
        let ended = r.lookup.in_flight() == 0;
        for j in jobs {
            self.push(now, j);
        }
        if ended {
            self.end(now, key, out);
        }
    }

    /// Applies a query's outcome to this core's lookup `key` (a stale key is ignored).
    pub fn report(&mut self, now: Millis, key: LookupKey, report: Report, out: &mut Vec<(usize, LookupMsg)>) {
        let Some(r) = Self::slot_mut(&mut self.slots, self.core, key).and_then(|s| s.running.as_mut()) else {
            return;
        };
        match report.id {
            Some(id) => {
                r.lookup.on_response(report.from, id, None);
                r.lookup.add(report.nodes);
            }
            None => r.lookup.on_failure(report.from),
        }
        r.peers = r.peers.saturating_add(report.peers);
        self.pump(now, key, out);
    }

    fn end(&mut self, now: Millis, key: LookupKey, out: &mut Vec<(usize, LookupMsg)>) {
        let Some(r) = Self::slot_mut(&mut self.slots, self.core, key).and_then(|s| s.running.take()) else {
            return;
        };
        self.free.push(key.slot);
        self.running -= 1;
        if r.peers > 0 {
            self.stats.lookups_found += 1;
        } else {
            self.stats.lookups_empty += 1;
            if r.attempt >= self.cfg.max_attempts {
                self.stats.lookups_given_up += 1;
            } else {
                let wait = self.cfg.retry_after.saturating_mul(1 << (r.attempt - 1).min(16));
                self.retries
                    .push(Reverse((now.saturating_add(wait), r.info_hash, r.attempt + 1)));
            }
        }
        if let Some((h, attempt, seeds)) = self.waiting.pop_front() {
            self.begin(now, h, attempt, seeds, out);
        }
    }

    /// Ends lookups past their time and returns the next retry that is due
    /// (the caller seeds it and calls [`Self::retry`]); call until `None`.
    pub fn tick(&mut self, now: Millis, out: &mut Vec<(usize, LookupMsg)>) -> Option<(InfoHash, u8)> {
        while let Some(&(deadline, key)) = self.deadlines.front() {
            if deadline > now {
                break;
            }
            self.deadlines.pop_front();
            self.end(now, key, out);
        }
        let &Reverse((due, h, attempt)) = self.retries.peek()?;
        if due > now {
            return None;
        }
        self.retries.pop();
        Some((h, attempt))
    }

    /// Runs a due retry (from [`Self::tick`]) from `seeds`.
    pub fn retry(
        &mut self,
        now: Millis,
        info_hash: InfoHash,
        attempt: u8,
        seeds: Vec<CompactNode>,
        out: &mut Vec<(usize, LookupMsg)>,
    ) {
        self.begin(now, info_hash, attempt, seeds, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(first: u8, n: u8) -> CompactNode {
        let mut id = [0u8; 20];
        id[0] = first;
        id[19] = n;
        CompactNode {
            id,
            addr: SocketAddr::new([127, 0, 1, n].into(), 6881),
        }
    }

    fn ok(from: &CompactNode, nodes: Vec<CompactNode>, peers: u32) -> Report {
        Report {
            from: from.addr,
            id: Some(from.id),
            nodes,
            peers,
        }
    }

    fn lookup_jobs(s: &mut PeerSearch, now: Millis) -> Vec<(LookupKey, SocketAddr)> {
        std::iter::from_fn(|| s.pop_due(now))
            .filter_map(|j| match j.kind {
                JobKind::Lookup(k) => Some((k, j.to)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_lookup_walks_closer_and_stops_sending_once_peers_are_found() {
        let mut s = PeerSearch::new(PeerSearchConfig::default(), 0, 1);
        let mut out = Vec::new();
        let seeds = vec![node(0x80, 1), node(0x40, 2), node(0x20, 3), node(0x10, 4)];
        s.start(0, [0; 20], seeds.clone(), &mut out);
        assert!(out.is_empty(), "one core: nothing to delegate");
        let first = lookup_jobs(&mut s, 0);
        assert_eq!(first.len(), LOOKUP_ALPHA, "alpha queries at once");
        let key = first[0].0;
        // The closest answers with a closer node and no peers: it is asked next.
        s.report(10, key, ok(&seeds[3], vec![node(0x01, 9)], 0), &mut out);
        let next = lookup_jobs(&mut s, 10);
        assert_eq!(next, vec![(key, node(0x01, 9).addr)]);
        // It has peers: nothing more is sent, and the lookup ends when the rest report.
        s.report(20, key, ok(&node(0x01, 9), vec![node(0x00, 10)], 5), &mut out);
        assert!(lookup_jobs(&mut s, 20).is_empty());
        s.report(30, key, ok(&seeds[2], vec![], 0), &mut out);
        assert_eq!(s.running(), 1, "one query still in flight");
        s.report(
            40,
            key,
            Report {
                id: None,
                ..ok(&seeds[1], vec![], 0)
            },
            &mut out,
        );
        assert_eq!(s.running(), 0);
        assert_eq!((s.stats().lookups_found, s.stats().lookups_empty), (1, 0));
        assert_eq!(s.waiting(), 0, "no retry for a lookup that found peers");
        // A stale key is ignored.
        s.report(50, key, ok(&seeds[0], vec![node(0x00, 11)], 0), &mut out);
        assert!(lookup_jobs(&mut s, 50).is_empty());
    }

    #[test]
    fn an_empty_lookup_is_retried_with_back_off_then_given_up() {
        let cfg = PeerSearchConfig {
            retry_after: 1_000,
            max_attempts: 3,
            ..PeerSearchConfig::default()
        };
        let mut s = PeerSearch::new(cfg, 0, 1);
        let mut out = Vec::new();
        s.start(0, [7; 20], Vec::new(), &mut out);
        assert_eq!(
            (s.running(), s.stats().lookups_empty),
            (0, 1),
            "nobody to ask: ends at once"
        );
        assert_eq!(s.tick(999, &mut out), None);
        assert_eq!(s.tick(1_000, &mut out), Some(([7; 20], 2)));
        s.retry(1_000, [7; 20], 2, vec![node(0x10, 1)], &mut out);
        let jobs = lookup_jobs(&mut s, 1_000);
        assert_eq!(jobs.len(), 1);
        s.report(
            1_100,
            jobs[0].0,
            Report {
                id: None,
                ..ok(&node(0x10, 1), vec![], 0)
            },
            &mut out,
        );
        assert_eq!(s.tick(1_100 + 1_999, &mut out), None, "the wait doubled");
        assert_eq!(s.tick(1_100 + 2_000, &mut out), Some(([7; 20], 3)));
        s.retry(3_100, [7; 20], 3, Vec::new(), &mut out);
        assert_eq!(s.stats().lookups_given_up, 1);
        assert_eq!(s.waiting(), 0, "given up after max_attempts");
    }

    #[test]
    fn a_lookup_that_runs_out_of_time_ends_and_frees_its_slot() {
        let cfg = PeerSearchConfig {
            max_lookups: 1,
            lookup_time: 5_000,
            ..PeerSearchConfig::default()
        };
        let mut s = PeerSearch::new(cfg, 0, 1);
        let mut out = Vec::new();
        s.start(0, [1; 20], vec![node(0x10, 1)], &mut out);
        s.start(0, [2; 20], vec![node(0x10, 2)], &mut out);
        assert_eq!((s.running(), s.waiting()), (1, 1), "the second waits for a slot");
        lookup_jobs(&mut s, 0);
        assert_eq!(s.next_timer(), Some(5_000));
        assert_eq!(s.tick(5_000, &mut out), None);
        assert_eq!(s.stats().lookups_empty, 1, "the first ran out of time");
        let jobs = lookup_jobs(&mut s, 5_000);
        assert_eq!(jobs.len(), 1, "the second started in the freed slot");
        assert_eq!(jobs[0].1, node(0x10, 2).addr);
    }

    #[test]
    fn queries_to_nodes_of_other_cores_are_delegated_to_their_owner() {
        let mut s = PeerSearch::new(PeerSearchConfig::default(), 0, 2);
        let mut out = Vec::new();
        let seeds: Vec<_> = (1..=6).map(|n| node(0x10 * n, n)).collect();
        s.start(0, [0; 20], seeds, &mut out);
        let local = lookup_jobs(&mut s, 0);
        assert_eq!(local.len() + out.len(), LOOKUP_ALPHA);
        let foreign = (1..=3).filter(|&n| owner(node(0x10 * n, n).addr, 2) == 1).count();
        assert!(foreign > 0, "the seeds must include a node of core 1");
        assert_eq!(out.len(), foreign);
        for (_, to) in &local {
            assert_eq!(owner(*to, 2), 0);
        }
        for (core, msg) in &out {
            let LookupMsg::Query { node, key, .. } = msg else {
                panic!("{msg:?}")
            };
            assert_eq!((owner(node.addr, 2), *core, key.core), (1, 1, 0));
        }
        assert_eq!(s.stats().queries_delegated, out.len() as u64);
    }
}
