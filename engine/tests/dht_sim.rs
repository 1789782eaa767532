//! In-memory simulation of a DHT of 500+ `Node`s: a deterministic network that
//! delivers datagrams by address under a virtual clock, with no sockets. Every node
//! has its own 127.x.y.z address and `allow_loopback: true`. A crawl
//! [`Scheduler`] can join as one more participant, answering like the crawl
//! does with `--no-read-only`.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use trawl_engine::codec::compact::CompactNode;
use trawl_engine::codec::krpc::{self, Kind, Message, ResponseOut};
use trawl_engine::crawl::{CrawlConfig, Discovery, PeerFound, Scheduler};
use trawl_engine::dht::{Event, LookupId, Node, NodeConfig};

const PORT: u16 = 6881;
const ROUTERS: usize = 3;

/// IPv6 has one loopback address, so IPv6 nodes differ by port.
fn addr6_of(i: usize) -> SocketAddr {
    SocketAddr::new(std::net::Ipv6Addr::LOCALHOST.into(), 20_000 + i as u16)
}

fn addr_of(i: usize) -> SocketAddr {
    SocketAddr::new(Ipv4Addr::new(127, 1 + (i / 250) as u8, (i % 250) as u8, 1).into(), PORT)
}

/// A datagram in transit: delivery time, sequence (ties in send order), from, to.
type Flight = Reverse<(Instant, u64, SocketAddr, SocketAddr, Vec<u8>)>;

/// Rewrites or adds datagrams on the way, as an attacker on the path could.
type Tamper = Box<dyn FnMut(SocketAddr, SocketAddr, &[u8]) -> Vec<(SocketAddr, Vec<u8>)> + Send + Sync>;

struct Sim {
    now: Instant,
    nodes: Vec<Node>,
    addrs: Vec<SocketAddr>,
    by_addr: HashMap<SocketAddr, usize>,
    /// Each node's `next_timeout`, and the same as a heap (stale entries skipped).
    wake: Vec<Option<Instant>>,
    timers: BinaryHeap<Reverse<(Instant, usize)>>,
    dirty: Vec<usize>,
    flights: BinaryHeap<Flight>,
    seq: u64,
    events: Vec<Vec<Event>>,
    tamper: Option<Tamper>,
    ipv6: bool,
    buf: Vec<u8>,
    crawler: Option<SimCrawler>,
}

/// A crawl core in the network: its scheduler and what it put out.
struct SimCrawler {
    addr: SocketAddr,
    sched: Scheduler,
    discoveries: Vec<Discovery>,
    peers: Vec<PeerFound>,
}

impl Clone for Sim {
    /// Forks the network (the tamper hook stays behind).
    fn clone(&self) -> Sim {
        Sim {
            now: self.now,
            nodes: self.nodes.clone(),
            addrs: self.addrs.clone(),
            by_addr: self.by_addr.clone(),
            wake: self.wake.clone(),
            timers: self.timers.clone(),
            dirty: self.dirty.clone(),
            flights: self.flights.clone(),
            seq: self.seq,
            events: self.events.clone(),
            tamper: None,
            ipv6: self.ipv6,
            buf: Vec::new(),
            // Forks are taken before a crawler joins.
            crawler: None,
        }
    }
}

impl Sim {
    fn new() -> Sim {
        Sim {
            now: Instant::now(),
            nodes: Vec::new(),
            addrs: Vec::new(),
            by_addr: HashMap::new(),
            wake: Vec::new(),
            timers: BinaryHeap::new(),
            dirty: Vec::new(),
            flights: BinaryHeap::new(),
            seq: 0,
            events: Vec::new(),
            tamper: None,
            ipv6: false,
            buf: Vec::new(),
            crawler: None,
        }
    }

    /// A crawl core at `addr` joins, bootstrapping from the routers.
    fn add_crawler(&mut self, addr: SocketAddr, cfg: CrawlConfig) {
        let cfg = CrawlConfig {
            bootstrap: (0..ROUTERS).map(|i| self.addr(i)).collect(),
            allow_loopback: true,
            ..cfg
        };
        self.crawler = Some(SimCrawler {
            addr,
            sched: Scheduler::new(cfg, self.now),
            discoveries: Vec::new(),
            peers: Vec::new(),
        });
    }

    /// Sends what the crawler wants to send and keeps what it found.
    fn flush_crawler(&mut self) {
        let Some(mut c) = self.crawler.take() else { return };
        while let Some(to) = c.sched.poll_transmit(self.now, &mut self.buf) {
            let bytes = self.buf.clone();
            self.send(c.addr, to, bytes);
        }
        let out = c.sched.output();
        c.discoveries.append(&mut out.discoveries);
        c.peers.append(&mut out.peers);
        out.handovers.clear();
        out.swarms.clear();
        out.names.clear();
        out.lookups.clear();
        self.crawler = Some(c);
    }

    fn addr(&self, i: usize) -> SocketAddr {
        if self.ipv6 {
            addr6_of(i)
        } else {
            addr_of(i)
        }
    }

    fn config(&self, read_only: bool) -> NodeConfig {
        let n = self.nodes.len();
        NodeConfig {
            bootstrap: if n < ROUTERS {
                Vec::new()
            } else {
                (0..ROUTERS).map(|i| self.addr(i)).collect()
            },
            read_only,
            allow_loopback: true,
            peer_ttl: Duration::from_secs(120),
            ..NodeConfig::default()
        }
    }

    fn add(&mut self, config: NodeConfig) -> usize {
        let i = self.nodes.len();
        let node = Node::new(config, self.now, 0x5eed_0000 + i as u64);
        let a = self.addr(i);
        self.nodes.push(node);
        self.addrs.push(a);
        self.by_addr.insert(a, i);
        self.wake.push(None);
        self.events.push(Vec::new());
        self.dirty.push(i);
        i
    }

    /// Latency 5..45 ms, fixed per ordered pair of addresses.
    fn latency(from: SocketAddr, to: SocketAddr) -> Duration {
        let key = |a: SocketAddr| {
            let ip = match a.ip() {
                std::net::IpAddr::V4(v4) => u32::from(v4),
                std::net::IpAddr::V6(_) => 0,
            };
            ip ^ (u32::from(a.port()) << 16)
        };
        let h = key(from).wrapping_mul(2_654_435_761) ^ key(to);
        Duration::from_millis(5 + u64::from(h % 41))
    }

    fn send(&mut self, from: SocketAddr, to: SocketAddr, bytes: Vec<u8>) {
        self.seq += 1;
        self.flights
            .push(Reverse((self.now + Self::latency(from, to), self.seq, from, to, bytes)));
    }

    /// Drains what dirty nodes want to send and refreshes their wake-up times.
    fn flush(&mut self) {
        let mut dirty = std::mem::take(&mut self.dirty);
        dirty.sort_unstable();
        dirty.dedup();
        for &i in &dirty {
            let from = self.addrs[i];
            while let Some(to) = self.nodes[i].poll_transmit(self.now, &mut self.buf) {
                let bytes = self.buf.clone();
                let extra = match self.tamper.as_mut() {
                    Some(t) => t(from, to, &bytes),
                    None => Vec::new(),
                };
                self.send(from, to, bytes);
                for (fake_from, forged) in extra {
                    // Forged replies come back to the sender, claiming `fake_from`.
                    self.seq += 1;
                    self.flights.push(Reverse((
                        self.now + Duration::from_millis(1),
                        self.seq,
                        fake_from,
                        from,
                        forged,
                    )));
                }
            }
            while let Some(e) = self.nodes[i].poll_event() {
                self.events[i].push(e);
            }
            let wake = self.nodes[i].next_timeout();
            if wake != self.wake[i] {
                if let Some(w) = wake {
                    self.timers.push(Reverse((w, i)));
                }
                self.wake[i] = wake;
            }
        }
        dirty.clear();
        self.dirty = dirty;
    }

    fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            self.flush();
            self.flush_crawler();
            while self.timers.peek().is_some_and(|t| self.wake[t.0 .1] != Some(t.0 .0)) {
                self.timers.pop();
            }
            let next_flight = self.flights.peek().map(|f| f.0 .0);
            let next_wake = self.timers.peek().map(|t| t.0 .0);
            // At least 1 ms on: the scheduler may name a time it cannot act on
            // yet (a paced IP), and the clock must move.
            let crawler_wake = self
                .crawler
                .as_ref()
                .and_then(|c| c.sched.next_timeout())
                .map(|w| w.max(self.now + Duration::from_millis(1)));
            let Some(t) = [next_flight, next_wake, crawler_wake].into_iter().flatten().min() else {
                break;
            };
            if t > end {
                break;
            }
            self.now = self.now.max(t);
            while self.flights.peek().is_some_and(|f| f.0 .0 <= self.now) {
                let Reverse((_, _, from, to, bytes)) = self.flights.pop().unwrap();
                if let Some(&j) = self.by_addr.get(&to) {
                    self.nodes[j].handle_datagram(self.now, from, &bytes);
                    self.dirty.push(j);
                } else if let Some(c) = self.crawler.as_mut().filter(|c| c.addr == to) {
                    c.sched.handle_datagram(self.now, from, &bytes);
                }
            }
            if let Some(c) = self.crawler.as_mut() {
                if c.sched.next_timeout().is_some_and(|w| w <= self.now) {
                    c.sched.handle_timeout(self.now);
                }
            }
            while let Some(&Reverse((w, i))) = self.timers.peek() {
                if w > self.now {
                    break;
                }
                self.timers.pop();
                if self.wake[i] == Some(w) {
                    self.wake[i] = None;
                    self.nodes[i].handle_timeout(self.now);
                    self.dirty.push(i);
                }
            }
        }
        self.now = end;
    }

    fn lookup(&mut self, i: usize, info_hash: [u8; 20]) -> LookupId {
        let id = self.nodes[i].lookup(self.now, info_hash);
        self.dirty.push(i);
        id
    }

    fn announce(&mut self, i: usize, info_hash: [u8; 20], port: Option<u16>) -> LookupId {
        let id = self.nodes[i].announce(self.now, info_hash, port);
        self.dirty.push(i);
        id
    }

    fn find_node(&mut self, i: usize, target: [u8; 20]) -> LookupId {
        let id = self.nodes[i].find_node(self.now, target);
        self.dirty.push(i);
        id
    }

    fn peers_found(&self, i: usize, lookup: LookupId) -> HashSet<SocketAddr> {
        let mut out = HashSet::new();
        for e in &self.events[i] {
            if let Event::Peers { lookup: l, peers } = e {
                if *l == lookup {
                    out.extend(peers.iter().copied());
                }
            }
        }
        out
    }

    fn done(&self, i: usize, lookup: LookupId) -> Option<&Event> {
        self.events[i].iter().find(|e| matches!(e, Event::LookupDone { lookup: l, .. } | Event::AnnounceDone { lookup: l, .. } if *l == lookup))
    }

    fn bootstrapped(&self, i: usize) -> bool {
        self.events[i].contains(&Event::Bootstrapped)
    }
}

fn info_hash(n: u8) -> [u8; 20] {
    let mut h = [0u8; 20];
    for (j, b) in h.iter_mut().enumerate() {
        *b = n.wrapping_mul(97).wrapping_add((j as u8).wrapping_mul(31));
    }
    h
}

fn distance(a: &[u8; 20], b: &[u8; 20]) -> [u8; 20] {
    let mut d = [0u8; 20];
    for j in 0..20 {
        d[j] = a[j] ^ b[j];
    }
    d
}

/// 520 nodes joining 20 ms apart, every 10th of the later ones read-only, then 30 s
/// of settling. Built once and forked by every test that needs it.
fn network() -> Sim {
    static NETWORK: OnceLock<Sim> = OnceLock::new();
    NETWORK.get_or_init(build_network).clone()
}

fn build_network() -> Sim {
    let mut sim = Sim::new();
    for i in 0..520 {
        let config = sim.config(is_read_only(i));
        sim.add(config);
        sim.run_for(Duration::from_millis(20));
    }
    sim.run_for(Duration::from_secs(30));
    sim
}

/// Every 10th node from 100 on; `% 10` rather than `is_multiple_of` for the MSRV (1.85).
fn is_read_only(i: usize) -> bool {
    i >= 100 && i % 10 == 0
}

#[test]
fn bootstrap_converges_and_lookups_find_the_true_closest_nodes() {
    let mut sim = network();
    let n = sim.nodes.len();
    assert!((0..n).all(|i| sim.bootstrapped(i)), "every node bootstrapped");
    let writable: Vec<usize> = (0..n).filter(|&i| !is_read_only(i)).collect();
    let min_table = writable
        .iter()
        .map(|&i| sim.nodes[i].stats().routing_nodes)
        .min()
        .unwrap();
    assert!(
        min_table >= 8,
        "every writable node knows at least k nodes, min {min_table}"
    );

    // Lookups from anywhere converge on the 8 truly closest writable nodes: an
    // announce lands exactly on them, and a find_node hears from all 8. Routers are
    // bootstrap addresses, which no node puts in its table, so they are not among them.
    for (q, asker) in [(1u8, 7usize), (2, 130), (3, 250), (4, 519)] {
        let target = info_hash(q);
        let mut truth: Vec<usize> = writable
            .iter()
            .copied()
            .filter(|&i| i != asker && i >= ROUTERS)
            .collect();
        truth.sort_by_key(|&i| distance(&sim.nodes[i].id(), &target));
        truth.truncate(8);
        let l = sim.find_node(asker, target);
        let a = sim.announce(asker, target, Some(1000 + q as u16));
        sim.run_for(Duration::from_secs(10));
        assert!(
            matches!(sim.done(asker, l), Some(Event::LookupDone { closest: 8, .. })),
            "asker {asker}"
        );
        assert!(
            matches!(sim.done(asker, a), Some(Event::AnnounceDone { announced_to: 8, .. })),
            "asker {asker}"
        );
        let mut storing: Vec<usize> = (0..n).filter(|&i| sim.nodes[i].stats().infohashes_stored > 0).collect();
        storing.sort_by_key(|&i| distance(&sim.nodes[i].id(), &target));
        if storing != truth {
            for &i in storing.iter().chain(truth.iter()) {
                eprintln!(
                    "{i}: d={:02x?} stored={} ro={}",
                    &distance(&sim.nodes[i].id(), &target)[..3],
                    sim.nodes[i].stats().infohashes_stored,
                    is_read_only(i)
                );
            }
            eprintln!("asker stats {:?}", sim.nodes[asker].stats());
        }
        assert_eq!(storing, truth, "asker {asker}");
        sim.run_for(Duration::from_secs(121)); // let the announce expire before the next round
    }
}

#[test]
fn announced_peers_are_found_from_any_node_and_expire_after_the_ttl() {
    let mut sim = network();
    let ih = info_hash(42);
    let explicit = sim.announce(150, ih, Some(51413));
    let implied = sim.announce(333, ih, None);
    sim.run_for(Duration::from_secs(10));
    for (i, l) in [(150, explicit), (333, implied)] {
        match sim.done(i, l) {
            Some(Event::AnnounceDone { announced_to, .. }) => {
                assert!(*announced_to >= 6, "node {i} announced to {announced_to}")
            }
            other => panic!("announce did not finish: {other:?}"),
        }
    }
    let want: HashSet<SocketAddr> = [SocketAddr::new(sim.addrs[150].ip(), 51413), sim.addrs[333]].into();
    let stored: usize = sim.nodes.iter().map(|n| n.stats().peers_stored).sum();
    assert!(stored >= 12, "the closest nodes store both announces: {stored}");
    for asker in [3, 77, 201, 400, 510] {
        let l = sim.lookup(asker, ih);
        sim.run_for(Duration::from_secs(10));
        assert!(matches!(sim.done(asker, l), Some(Event::LookupDone { .. })));
        assert_eq!(sim.peers_found(asker, l), want, "asker {asker}");
    }
    // Past the TTL with no renewal, the announces are gone everywhere.
    sim.run_for(Duration::from_secs(121));
    assert_eq!(sim.nodes.iter().map(|n| n.stats().peers_stored).sum::<usize>(), 0);
    let l = sim.lookup(77, ih);
    sim.run_for(Duration::from_secs(10));
    assert!(matches!(sim.done(77, l), Some(Event::LookupDone { .. })));
    assert!(sim.peers_found(77, l).is_empty());
}

#[test]
fn read_only_nodes_never_enter_routing_tables_and_never_answer() {
    let mut sim = network();
    // Read-only nodes look things up too, so everyone has heard from them.
    for i in (100..520).filter(|&i| is_read_only(i)).take(10) {
        sim.find_node(i, info_hash(i as u8));
    }
    sim.run_for(Duration::from_secs(10));
    let ro_ids: HashSet<[u8; 20]> = (0..sim.nodes.len())
        .filter(|&i| is_read_only(i))
        .map(|i| sim.nodes[i].id())
        .collect();
    assert_eq!(ro_ids.len(), 42);
    for node in &sim.nodes {
        assert!(node.routing_nodes().all(|c| !ro_ids.contains(&c.id)));
    }
    for i in (0..sim.nodes.len()).filter(|&i| is_read_only(i)) {
        let s = sim.nodes[i].stats();
        assert_eq!(s.queries_answered, 0);
        assert!(s.replies_received > 0, "read-only node {i} still gets answers");
    }
}

#[test]
fn requests_made_before_bootstrap_are_queued_and_served() {
    let mut sim = network();
    let ih = info_hash(9);
    sim.announce(260, ih, Some(7000));
    sim.run_for(Duration::from_secs(10));
    // A newcomer asks before it has exchanged a single datagram.
    let config = sim.config(false);
    let late = sim.add(config);
    let l = sim.lookup(late, ih);
    let f = sim.find_node(late, info_hash(10));
    assert!(!sim.nodes[late].is_bootstrapped());
    assert_eq!(sim.nodes[late].stats().queued_lookups, 2);
    sim.run_for(Duration::from_secs(15));
    let ev = &sim.events[late];
    let boot = ev.iter().position(|e| *e == Event::Bootstrapped).expect("bootstrapped");
    let done = ev
        .iter()
        .position(|e| matches!(e, Event::LookupDone { lookup, .. } if *lookup == l))
        .expect("lookup done");
    assert!(boot < done);
    assert!(sim.done(late, f).is_some());
    assert_eq!(
        sim.peers_found(late, l),
        [SocketAddr::new(sim.addrs[260].ip(), 7000)].into()
    );
}

#[test]
fn spoofed_and_stray_replies_are_ignored_and_counted() {
    let mut sim = Sim::new();
    for _ in 0..60 {
        let config = sim.config(false);
        sim.add(config);
        sim.run_for(Duration::from_millis(20));
    }
    sim.run_for(Duration::from_secs(10));
    let victim_config = sim.config(false);
    let victim = sim.add(victim_config);
    let victim_addr = sim.addrs[victim];
    let liar: SocketAddr = "127.200.0.1:6881".parse().unwrap();
    let fake_ids: Vec<[u8; 20]> = (0..8u8).map(|n| [n | 0xe0; 20]).collect();
    let fakes = fake_ids.clone();
    // For each query of the victim: a forged reply with the right transaction id
    // from an address that was not asked, and a reply to a transaction id never used.
    sim.tamper = Some(Box::new(move |from, to, bytes| {
        if from != victim_addr {
            return Vec::new();
        }
        let Ok(msg) = Message::decode(bytes) else {
            return Vec::new();
        };
        if !matches!(msg.kind, Kind::Query(_)) {
            return Vec::new();
        }
        let nodes: Vec<CompactNode> = fakes
            .iter()
            .enumerate()
            .map(|(n, id)| CompactNode {
                id: *id,
                addr: SocketAddr::new(Ipv4Addr::new(127, 201, 0, n as u8 + 1).into(), 6881),
            })
            .collect();
        let mut r = ResponseOut::new(&fakes[0]);
        r.nodes = &nodes;
        let (mut spoofed, mut stray) = (Vec::new(), Vec::new());
        krpc::encode_response(&mut spoofed, msg.transaction_id, &r, None, None);
        let mut other_tid = msg.transaction_id.to_vec();
        other_tid.push(0x99);
        krpc::encode_response(&mut stray, &other_tid, &r, None, None);
        vec![(liar, spoofed), (to, stray)]
    }));
    let l = sim.find_node(victim, fake_ids[0]);
    sim.run_for(Duration::from_secs(15));
    let s = sim.nodes[victim].stats();
    assert!(sim.bootstrapped(victim));
    assert!(matches!(
        sim.done(victim, l),
        Some(Event::LookupDone { closest: 8, .. })
    ));
    assert!(s.drops.spoofed_reply > 5, "{:?}", s.drops);
    assert!(s.drops.stray_reply > 5, "{:?}", s.drops);
    assert!(sim.nodes[victim].routing_nodes().all(|c| !fake_ids.contains(&c.id)));
    assert!(s.routing_nodes >= 8);
}

#[test]
fn an_ipv6_network_finds_peers_through_nodes6() {
    let mut sim = Sim::new();
    sim.ipv6 = true;
    for _ in 0..40 {
        let mut config = sim.config(false);
        config.ipv6 = true;
        // Every node shares ::1, so the per-IP answer budget must cover them all.
        config.answer_limits.per_ip_rate = 1e6;
        config.answer_limits.per_ip_burst = 1e6;
        sim.add(config);
        sim.run_for(Duration::from_millis(20));
    }
    sim.run_for(Duration::from_secs(10));
    assert!((0..40).all(|i| sim.bootstrapped(i)));
    assert!((ROUTERS..40).all(|i| sim.nodes[i].stats().routing_nodes >= 8));
    assert!(sim.nodes.iter().all(|n| n.routing_nodes().all(|c| c.addr.is_ipv6())));
    let ih = info_hash(6);
    let a = sim.announce(12, ih, None);
    sim.run_for(Duration::from_secs(5));
    assert!(matches!(
        sim.done(12, a),
        Some(Event::AnnounceDone { announced_to: 8, .. })
    ));
    let l = sim.lookup(33, ih);
    sim.run_for(Duration::from_secs(5));
    assert_eq!(sim.peers_found(33, l), [sim.addrs[12]].into());
}

/// A crawl core that answers (`--no-read-only`) joins the network of library
/// nodes: they take it into their tables after it answers their verifying
/// pings, so a lookup and an announce for an infohash next to its id, issued
/// by library nodes that never talked to it, reach it. It harvests both, with
/// the announcer as a peer for the fetcher; a later lookup finds the peer.
#[test]
fn lookups_issued_elsewhere_reach_an_answering_crawler_and_are_harvested() {
    use trawl_engine::crawl::Via;
    let mut sim = network();
    let crawler_id = [0x5a; 20];
    let crawler_addr = SocketAddr::new(Ipv4Addr::new(127, 250, 0, 1).into(), PORT);
    sim.add_crawler(
        crawler_addr,
        CrawlConfig {
            node_id: crawler_id,
            read_only: false,
            seed: 11,
            ..CrawlConfig::default()
        },
    );
    // The crawl walks and samples; its queries make the nodes verify and keep it.
    sim.run_for(Duration::from_secs(120));
    let knowing = sim.nodes.iter().filter(|n| n.routing_contains(&crawler_id)).count();
    assert!(knowing > 0, "no library node took the crawler in");

    let mut near = crawler_id;
    near[19] ^= 0x01;
    let mut asked = crawler_id;
    asked[19] ^= 0x02;
    let announcer = 150;
    let a = sim.announce(announcer, near, Some(51413));
    let l = sim.lookup(77, asked);
    sim.run_for(Duration::from_secs(15));
    assert!(matches!(sim.done(announcer, a), Some(Event::AnnounceDone { .. })));
    assert!(matches!(sim.done(77, l), Some(Event::LookupDone { .. })));
    let c = sim.crawler.as_ref().unwrap();
    let via = |h: &[u8; 20]| {
        c.discoveries
            .iter()
            .filter(|d| d.info_hash == *h)
            .map(|d| d.via)
            .collect::<Vec<_>>()
    };
    assert!(via(&asked).contains(&Via::GetPeers), "{:?}", via(&asked));
    // The announce's get_peers came first, so the hash is harvested from it; the
    // announce itself still names the announcer as a peer.
    assert!(!via(&near).is_empty(), "the announced hash was not harvested");
    let peer = SocketAddr::new(sim.addrs[announcer].ip(), 51413);
    assert!(
        c.peers.iter().any(|p| p.info_hash == near && p.peer == peer),
        "{:?}",
        c.peers
    );
    let st = c.sched.stats();
    assert!(st.harvested_get_peers >= 1 && st.queries_answered > 0, "{st:?}");
    // A later lookup from another node finds the announced peer.
    let l = sim.lookup(400, near);
    sim.run_for(Duration::from_secs(10));
    assert!(sim.peers_found(400, l).contains(&peer));
}
