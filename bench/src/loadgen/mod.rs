//! The load generator: a stand-in crawler that drives the swarm as fast as
//! one core can, verifying every reply with the codec.
//!
//! Owns:
//! - [`Walker`], an I/O-free crawl state machine (`handle_datagram(now, from,
//!   bytes)`, `poll_query(now, out)`): discover nodes with `find_node`, sample
//!   them politely with `sample_infohashes` (never before the `interval` a node
//!   gave, and no more often than covers its `num`), ask the sampled node
//!   `get_peers` for each new infohash, and hand peers to the metadata fetchers;
//! - [`blast`], open-loop `ping`/`find_node` ([`QueryMix`]) at random virtual
//!   nodes, to measure the swarm's capacity;
//! - [`fetch_metadata`], a blocking BEP 9 client that verifies SHA-1;
//! - the thin socket loop ([`drive`]) around either state machine.
//!
//! Must not: send anywhere but 127.0.0.0/8, or allocate per packet in the
//! socket loop (the walker's tables grow with what it discovers, not with
//! packets).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ahash::RandomState;
use serde::Serialize;
use sha1::{Digest, Sha1};
use trawl_engine::codec::krpc::{self, Kind, Message, Query, Want};
use trawl_engine::metadata::wire::{self, ExtHandshake, Handshake, Message as PeerMessage, MetadataMsg, Parse};

use crate::swarm::derive::Stream;
use crate::swarm::mmsg::{udp_socket, RecvBatch, SendBatch};
use crate::sys;

mod blast;
mod fetch;

pub use blast::*;
pub use fetch::*;

const BATCH: usize = 64;
const SLOTS: usize = 1 << 16;
/// Transaction ids are the 2-byte slot index of the in-flight table.
const TID_LEN: usize = 2;
const QUERY_TIMEOUT_MS: u64 = 2_000;
const SAMPLES_PER_REPLY: u64 = 20;
const VERSION: &[u8] = b"TB01";

/// What kind of query a slot holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum QueryKind {
    FindNode,
    SampleInfohashes,
    GetPeers,
}

#[derive(Clone, Copy, Debug)]
struct Slot {
    sent_ms: u64,
    to: SocketAddrV4,
    kind: QueryKind,
    info_hash_index: u32,
    active: bool,
}

/// The in-flight table: slots indexed by transaction id. Free slots are found
/// by probing forward from the last one used, and a sweep cursor expires old
/// queries a few slots per call, so one slow query never blocks the table.
struct InFlight {
    slots: Vec<Slot>,
    next: usize,
    sweep: usize,
    active: usize,
    timeouts: u64,
    /// The queries the last `expire` timed out.
    expired: Vec<Slot>,
    timeout_ms: u64,
}

/// Slots examined per `expire` call: the whole table is swept every
/// SLOTS / SWEEP_PER_CALL calls (about 40 ms at 50,000 queries/s).
const SWEEP_PER_CALL: usize = 32;

impl InFlight {
    fn new() -> Self {
        let empty = Slot {
            sent_ms: 0,
            to: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0),
            kind: QueryKind::FindNode,
            info_hash_index: 0,
            active: false,
        };
        Self {
            slots: vec![empty; SLOTS],
            next: 0,
            sweep: 0,
            active: 0,
            timeouts: 0,
            expired: Vec::new(),
            timeout_ms: QUERY_TIMEOUT_MS,
        }
    }

    fn expire(&mut self, now_ms: u64) {
        self.expired.clear();
        for _ in 0..SWEEP_PER_CALL {
            let s = &mut self.slots[self.sweep];
            if s.active && now_ms.saturating_sub(s.sent_ms) >= self.timeout_ms {
                s.active = false;
                self.active -= 1;
                self.timeouts += 1;
                self.expired.push(*s);
            }
            self.sweep = (self.sweep + 1) % SLOTS;
        }
    }

    /// Takes a free slot, or `None` if every slot holds a live query.
    fn open(&mut self, slot: Slot) -> Option<[u8; TID_LEN]> {
        if self.active >= SLOTS {
            return None;
        }
        while self.slots[self.next].active {
            self.next = (self.next + 1) % SLOTS;
        }
        let i = self.next;
        self.slots[i] = Slot { active: true, ..slot };
        self.next = (i + 1) % SLOTS;
        self.active += 1;
        Some((i as u16).to_be_bytes())
    }

    /// Closes the slot a reply names, if it is live and came from the right address.
    fn close(&mut self, tid: &[u8], from: SocketAddrV4) -> Option<Slot> {
        let i = u16::from_be_bytes(tid.try_into().ok()?) as usize;
        let s = &mut self.slots[i];
        if !s.active || s.to != from {
            return None;
        }
        s.active = false;
        self.active -= 1;
        Some(*s)
    }
}

/// Counts of a walk or a blast.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct LoadCounters {
    pub sent: u64,
    pub received: u64,
    pub sent_find_node: u64,
    pub sent_sample: u64,
    pub sent_get_peers: u64,
    /// Replies that decoded and matched a live transaction.
    pub replies_ok: u64,
    pub replies_error: u64,
    /// Replies the codec refused, or that name no live transaction.
    pub replies_invalid: u64,
    pub unmatched: u64,
    pub timeouts: u64,
    pub nodes_known: u64,
    pub infohashes_found: u64,
    pub metadata_jobs: u64,
}

/// Something the walker wants fetched: an infohash and peers that may hold it.
#[derive(Clone, Debug)]
pub struct FetchJob {
    pub info_hash: [u8; 20],
    pub peers: Vec<SocketAddrV4>,
}

#[derive(Clone, Copy, Debug, Default)]
struct NodeState {
    sample_visits: u32,
    samples_done: bool,
    /// Timeouts since the last reply.
    failures: u8,
    /// Under [`Pacing`], the earliest time the next query may go to this IP.
    next_free_ms: u64,
}

/// A crawl strategy's published limits, for running the walker as a stand-in
/// for another crawler instead of as fast as one core allows.
#[derive(Clone, Copy, Debug)]
pub struct Pacing {
    /// Least time between two queries to one IP.
    pub per_ip_gap_ms: u64,
    /// `sample_infohashes` sent per second, at most.
    pub samples_per_s: u32,
    /// A node whose last sample held something new is sampled again after this.
    pub resample_productive_ms: u64,
    /// A node whose last sample held nothing new is sampled again after this.
    pub resample_idle_ms: u64,
    pub query_timeout_ms: u64,
}

impl Pacing {
    /// bitmagnet's crawler as `../shared/NOTES.md` records it: samples to at
    /// most 60 nodes a second, a productive node again after 60 s and an idle
    /// one after 5 minutes, one query a second per IP, 4 s query timeout. It
    /// reads neither `interval` nor `num`, and asks only the sampler for peers.
    pub fn bitmagnet() -> Self {
        Self {
            per_ip_gap_ms: 1_000,
            samples_per_s: 60,
            resample_productive_ms: 60_000,
            resample_idle_ms: 300_000,
            query_timeout_ms: 4_000,
        }
    }
}

/// Sample budget under [`Pacing`]: the second it counts and what was sent in it.
#[derive(Clone, Copy, Debug, Default)]
struct SampleBudget {
    second: u64,
    sent: u32,
}

/// Consecutive timeouts after which a node is left alone (mldht's
/// unreachable-node cache; without it most queries go to dead nodes).
const MAX_FAILURES: u8 = 2;

/// The crawl state machine. Time is `now_ms` since the walk started.
pub struct Walker {
    our_id: [u8; 20],
    rng: Stream,
    inflight: InFlight,
    nodes: HashMap<u32, NodeState, RandomState>,
    node_list: Vec<SocketAddrV4>,
    find_queue: VecDeque<SocketAddrV4>,
    sample_due: BinaryHeap<Reverse<(u64, u32)>>,
    get_peers_queue: VecDeque<(u32, SocketAddrV4)>,
    /// Under [`Pacing`], `get_peers` waiting for their sampler's IP to be free:
    /// (earliest send, hash index, sampler IP).
    get_peers_later: BinaryHeap<Reverse<(u64, u32, u32)>>,
    pacing: Option<Pacing>,
    sample_budget: SampleBudget,
    found: HashSet<[u8; 20], RandomState>,
    found_list: Vec<[u8; 20]>,
    fetch_out: VecDeque<FetchJob>,
    fetch_requested: HashSet<u32, RandomState>,
    port: u16,
    max_inflight: usize,
    pub counters: LoadCounters,
}

impl Walker {
    /// Starts from `bootstrap`, the address of a swarm node; every node of the
    /// swarm listens on `bootstrap.port()`.
    pub fn new(seed: u64, bootstrap: SocketAddrV4, max_inflight: usize) -> Self {
        let mut rng = Stream::new(seed, 0, 0x10ad);
        let mut our_id = [0u8; 20];
        rng.fill(&mut our_id);
        let mut w = Self {
            our_id,
            rng,
            inflight: InFlight::new(),
            nodes: HashMap::with_hasher(RandomState::with_seeds(5, 6, 7, 8)),
            node_list: Vec::new(),
            find_queue: VecDeque::new(),
            sample_due: BinaryHeap::new(),
            get_peers_queue: VecDeque::new(),
            get_peers_later: BinaryHeap::new(),
            pacing: None,
            sample_budget: SampleBudget::default(),
            found: HashSet::with_hasher(RandomState::with_seeds(1, 2, 3, 4)),
            found_list: Vec::new(),
            fetch_out: VecDeque::new(),
            fetch_requested: HashSet::with_hasher(RandomState::with_seeds(1, 2, 3, 4)),
            port: bootstrap.port(),
            max_inflight: max_inflight.min(SLOTS / 2),
            counters: LoadCounters::default(),
        };
        w.learn(bootstrap, 0);
        w
    }

    /// The same walk under another crawler's limits.
    pub fn paced(seed: u64, bootstrap: SocketAddrV4, max_inflight: usize, pacing: Pacing) -> Self {
        let mut w = Self::new(seed, bootstrap, max_inflight);
        w.inflight.timeout_ms = pacing.query_timeout_ms;
        w.pacing = Some(pacing);
        w
    }

    /// Distinct infohashes found so far, in discovery order.
    pub fn found(&self) -> &[[u8; 20]] {
        &self.found_list
    }

    /// Metadata jobs produced since the last call.
    pub fn take_fetch_jobs(&mut self) -> impl Iterator<Item = FetchJob> + '_ {
        self.fetch_out.drain(..)
    }

    fn learn(&mut self, addr: SocketAddrV4, now_ms: u64) {
        // Only swarm-like addresses: loopback, the swarm's port.
        if !addr.ip().is_loopback() || addr.port() != self.port {
            return;
        }
        let ip = u32::from(*addr.ip());
        if self.nodes.contains_key(&ip) {
            return;
        }
        self.nodes.insert(ip, NodeState::default());
        self.node_list.push(addr);
        self.find_queue.push_back(addr);
        self.sample_due.push(Reverse((now_ms, ip)));
        self.counters.nodes_known += 1;
    }

    /// Writes the next query into `out` and returns where to send it, or
    /// `None` if nothing is due or too many queries are in flight.
    pub fn poll_query(&mut self, now_ms: u64, out: &mut Vec<u8>) -> Option<SocketAddrV4> {
        self.inflight.expire(now_ms);
        self.counters.timeouts = self.inflight.timeouts;
        for i in 0..self.inflight.expired.len() {
            let ip = u32::from(*self.inflight.expired[i].to.ip());
            if let Some(n) = self.nodes.get_mut(&ip) {
                // A timed-out sample is not retried: the node may have seen it and
                // started its interval, and only its reply tells how long that is.
                n.failures = n.failures.saturating_add(1);
            }
        }
        if self.inflight.active >= self.max_inflight {
            return None;
        }
        let (id, mut target) = (self.our_id, [0u8; 20]);
        self.rng.fill(&mut target);
        // Politeness first: samples that are due, then peers for new hashes,
        // then new nodes, then random walks to keep discovering.
        while let Some(&Reverse((due, ip))) = self.sample_due.peek() {
            if due > now_ms || !self.sample_budget_left(now_ms) {
                break;
            }
            self.sample_due.pop();
            if !self.reachable(ip) {
                continue;
            }
            if let Some(free) = self.busy_until(ip, now_ms) {
                self.sample_due.push(Reverse((free, ip)));
                continue;
            }
            let to = SocketAddrV4::new(Ipv4Addr::from(ip), self.port);
            let q = Query::SampleInfohashes {
                id: &id,
                target: &target,
                want: Want::default(),
            };
            self.sample_budget.sent += 1;
            return self.send(now_ms, to, QueryKind::SampleInfohashes, 0, &q, out);
        }
        if let Some((hash_index, to)) = self.next_get_peers(now_ms) {
            let info_hash = self.found_list[hash_index as usize];
            let q = Query::GetPeers {
                id: &id,
                info_hash: &info_hash,
                want: Want::default(),
                scrape: false,
                noseed: false,
            };
            return self.send(now_ms, to, QueryKind::GetPeers, hash_index, &q, out);
        }
        let to = self.next_find_target(now_ms)?;
        let q = Query::FindNode {
            id: &id,
            target: &target,
            want: Want::default(),
        };
        self.send(now_ms, to, QueryKind::FindNode, 0, &q, out)
    }

    /// Whether another sample may go this second (always, unpaced).
    fn sample_budget_left(&mut self, now_ms: u64) -> bool {
        let Some(p) = self.pacing else { return true };
        if self.sample_budget.second != now_ms / 1000 {
            self.sample_budget = SampleBudget {
                second: now_ms / 1000,
                sent: 0,
            };
        }
        self.sample_budget.sent < p.samples_per_s
    }

    /// Under [`Pacing`], when `ip` may next be queried, if not now.
    fn busy_until(&self, ip: u32, now_ms: u64) -> Option<u64> {
        self.pacing?;
        let free = self.nodes.get(&ip)?.next_free_ms;
        (free > now_ms).then_some(free)
    }

    /// The next `get_peers` to send: in discovery order, or under [`Pacing`]
    /// the earliest whose sampler's IP is free.
    fn next_get_peers(&mut self, now_ms: u64) -> Option<(u32, SocketAddrV4)> {
        if self.pacing.is_none() {
            return self.get_peers_queue.pop_front();
        }
        while let Some(&Reverse((at, index, ip))) = self.get_peers_later.peek() {
            if at > now_ms {
                return None;
            }
            self.get_peers_later.pop();
            match self.busy_until(ip, now_ms) {
                Some(free) => self.get_peers_later.push(Reverse((free, index, ip))),
                None => return Some((index, SocketAddrV4::new(Ipv4Addr::from(ip), self.port))),
            }
        }
        None
    }

    /// A node to ask `find_node`: a newly learned one first, else a random
    /// reachable one; under [`Pacing`], only one whose IP is free (a few tries).
    fn next_find_target(&mut self, now_ms: u64) -> Option<SocketAddrV4> {
        for _ in 0..8 {
            let (to, queued) = match self.find_queue.pop_front() {
                Some(to) => (to, true),
                None => (self.random_reachable()?, false),
            };
            if self.busy_until(u32::from(*to.ip()), now_ms).is_none() {
                return Some(to);
            }
            if queued {
                self.find_queue.push_back(to);
            }
        }
        None
    }

    fn reachable(&self, ip: u32) -> bool {
        self.nodes.get(&ip).is_some_and(|n| n.failures < MAX_FAILURES)
    }

    /// A random known node that has not timed out repeatedly (a few tries).
    fn random_reachable(&mut self) -> Option<SocketAddrV4> {
        for _ in 0..8 {
            let len = self.node_list.len() as u64;
            if len == 0 {
                return None;
            }
            let to = self.node_list[self.rng.below(len) as usize];
            if self.reachable(u32::from(*to.ip())) {
                return Some(to);
            }
        }
        None
    }

    fn send(
        &mut self,
        now_ms: u64,
        to: SocketAddrV4,
        kind: QueryKind,
        info_hash_index: u32,
        q: &Query<'_>,
        out: &mut Vec<u8>,
    ) -> Option<SocketAddrV4> {
        let tid = self.inflight.open(Slot {
            sent_ms: now_ms,
            to,
            kind,
            info_hash_index,
            active: true,
        })?;
        out.clear();
        krpc::encode_query(out, &tid, q, true, Some(VERSION));
        if let Some(p) = self.pacing {
            if let Some(n) = self.nodes.get_mut(&u32::from(*to.ip())) {
                n.next_free_ms = now_ms + p.per_ip_gap_ms;
            }
        }
        self.counters.sent += 1;
        match kind {
            QueryKind::FindNode => self.counters.sent_find_node += 1,
            QueryKind::SampleInfohashes => self.counters.sent_sample += 1,
            QueryKind::GetPeers => self.counters.sent_get_peers += 1,
        }
        Some(to)
    }

    /// Feeds one received datagram.
    pub fn handle_datagram(&mut self, now_ms: u64, from: SocketAddrV4, bytes: &[u8]) {
        self.counters.received += 1;
        let Ok(msg) = Message::decode(bytes) else {
            self.counters.replies_invalid += 1;
            return;
        };
        let Some(slot) = self.inflight.close(msg.transaction_id, from) else {
            self.counters.unmatched += 1;
            return;
        };
        let r = match msg.kind {
            Kind::Response(r) => r,
            Kind::Error(_) => {
                self.counters.replies_error += 1;
                if slot.kind == QueryKind::SampleInfohashes {
                    // No BEP 51 here: never ask again.
                    if let Some(n) = self.nodes.get_mut(&u32::from(*from.ip())) {
                        n.samples_done = true;
                    }
                }
                return;
            }
            Kind::Query(_) => {
                self.counters.replies_invalid += 1;
                return;
            }
        };
        self.counters.replies_ok += 1;
        if let Some(n) = self.nodes.get_mut(&u32::from(*from.ip())) {
            n.failures = 0;
        }
        for node in r.nodes {
            if let SocketAddr::V4(a) = node.addr {
                self.learn(a, now_ms);
            }
        }
        match slot.kind {
            QueryKind::SampleInfohashes => {
                let mut new_hashes = 0u32;
                for s in r.samples {
                    if self.found.insert(*s) {
                        self.found_list.push(*s);
                        self.counters.infohashes_found += 1;
                        new_hashes += 1;
                        let index = (self.found_list.len() - 1) as u32;
                        if self.pacing.is_some() {
                            self.get_peers_later
                                .push(Reverse((now_ms, index, u32::from(*from.ip()))));
                        } else {
                            self.get_peers_queue.push_back((index, from));
                        }
                    }
                }
                let ip = u32::from(*from.ip());
                if let Some(p) = self.pacing {
                    // Its own schedule: how much was new, never `interval` or `num`.
                    let wait = if new_hashes > 0 {
                        p.resample_productive_ms
                    } else {
                        p.resample_idle_ms
                    };
                    self.sample_due.push(Reverse((now_ms + wait, ip)));
                } else if let Some(n) = self.nodes.get_mut(&ip) {
                    n.sample_visits += 1;
                    let num = r.num.unwrap_or(0).max(0) as u64;
                    // Enough visits to have seen everything the node holds.
                    n.samples_done = u64::from(n.sample_visits) * SAMPLES_PER_REPLY >= num;
                    if !n.samples_done {
                        let interval_ms = r.interval.unwrap_or(0).clamp(0, 21_600) as u64 * 1000;
                        // One ms of slack: the node measured from when it got the query.
                        self.sample_due.push(Reverse((now_ms + interval_ms + 1, ip)));
                    }
                }
            }
            QueryKind::GetPeers => {
                let peers: Vec<SocketAddrV4> = r
                    .values
                    .filter_map(|p| if let SocketAddr::V4(a) = p { Some(a) } else { None })
                    .collect();
                if !peers.is_empty() && self.fetch_requested.insert(slot.info_hash_index) {
                    let info_hash = self.found_list[slot.info_hash_index as usize];
                    self.fetch_out.push_back(FetchJob { info_hash, peers });
                    self.counters.metadata_jobs += 1;
                }
            }
            QueryKind::FindNode => {}
        }
    }
}

/// A state machine the socket loop can drive.
pub trait Driven {
    fn poll_query(&mut self, now_ms: u64, out: &mut Vec<u8>) -> Option<SocketAddrV4>;
    fn handle_datagram(&mut self, now_ms: u64, from: SocketAddrV4, bytes: &[u8]);
    /// Called about every 10 ms with the time, for progress reporting.
    fn tick(&mut self, _now_ms: u64) {}
}

impl Driven for Walker {
    fn poll_query(&mut self, now_ms: u64, out: &mut Vec<u8>) -> Option<SocketAddrV4> {
        Walker::poll_query(self, now_ms, out)
    }
    fn handle_datagram(&mut self, now_ms: u64, from: SocketAddrV4, bytes: &[u8]) {
        Walker::handle_datagram(self, now_ms, from, bytes)
    }
}

/// CPU and time the socket loop used.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct LoopLoad {
    pub seconds: f64,
    pub cpu_seconds: f64,
    pub datagrams_out: u64,
    pub datagrams_in: u64,
    /// Iterations that found nothing to send or receive and slept briefly:
    /// many of them mean the machine's window or the swarm's latency, not the
    /// CPU, bounds the rate.
    pub idle_sleeps: u64,
    /// Iterations where the machine had nothing to send (window full or no work).
    pub send_stalls: u64,
}

/// Runs `machine` on one UDP socket bound to 127.0.0.1 for `duration`,
/// optionally pinned to `core`. `on_tick` sees the machine every ~10 ms.
pub fn drive<M: Driven>(
    machine: &mut M,
    duration: Duration,
    core: Option<usize>,
    mut on_tick: impl FnMut(&mut M, u64),
) -> io::Result<LoopLoad> {
    if let Some(core) = core {
        sys::pin_current_thread(core)?;
    }
    let socket = udp_socket(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0), false, false, None)?;
    socket.set_nonblocking(true)?;
    let fd = socket.as_raw_fd();
    let mut rx = RecvBatch::new(BATCH);
    let mut tx = SendBatch::new(BATCH);
    let mut load = LoopLoad::default();
    let (start, cpu0) = (Instant::now(), sys::thread_cpu_time());
    let mut last_tick = 0u64;
    loop {
        let now_ms = start.elapsed().as_millis() as u64;
        if now_ms >= duration.as_millis() as u64 {
            break;
        }
        while tx.push_with(|buf| machine.poll_query(now_ms, buf).map(|to| (to, None))) {}
        let sent_now = !tx.is_empty();
        load.send_stalls += u64::from(!tx.is_full());
        if sent_now {
            load.datagrams_out += tx.flush(fd)? as u64;
        }
        let mut idle = true;
        loop {
            let n = rx.recv(fd, libc::MSG_DONTWAIT)?;
            if n == 0 {
                break;
            }
            idle = false;
            load.datagrams_in += n as u64;
            let now_ms = start.elapsed().as_millis() as u64;
            for i in 0..n {
                let (bytes, from, _) = rx.get(i);
                machine.handle_datagram(now_ms, from, bytes);
            }
            if n < BATCH {
                break;
            }
        }
        if now_ms >= last_tick + 10 {
            last_tick = now_ms;
            machine.tick(now_ms);
            on_tick(machine, now_ms);
        }
        if idle && !sent_now {
            // Nothing to send and nothing arrived: wait briefly instead of spinning.
            load.idle_sleeps += 1;
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    load.seconds = start.elapsed().as_secs_f64();
    load.cpu_seconds = (sys::thread_cpu_time() - cpu0).as_secs_f64();
    Ok(load)
}
