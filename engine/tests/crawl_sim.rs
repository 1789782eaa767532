//! In-memory crawl of a deterministic fake DHT: a few thousand fake remote nodes
//! (BEP 51 nodes with intervals, nodes without BEP 51, dead nodes, and a
//! flooder announcing nodes that do not exist), a virtual clock, no sockets.
//!
//! Checks that the scheduler discovers every reachable infohash and invents none,
//! never samples a node before its interval, never bursts an IP beyond the
//! pacing limit (also when a fifth of the nodes churn, going down and coming
//! back), marks dead nodes unreachable, scrapes each new infohash at the
//! node that sampled it, and keeps its node table within its cap.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use trawl_engine::codec::compact::CompactNode;
use trawl_engine::codec::krpc::{encode_error, encode_response, Kind, Message, Query, ResponseOut};
use trawl_engine::codec::scrape::ScrapeBloom;
use trawl_engine::codec::wire::ERROR_METHOD_UNKNOWN;
use trawl_engine::crawl::{CrawlConfig, Scheduler};
use trawl_engine::dht::pacing::TokenBucket;

const NODES: usize = 3000;
const SAMPLES_PER_REPLY: usize = 20;
const CLOSEST: usize = 8;
const LATENCY: Duration = Duration::from_millis(15);
const RUN_FOR: Duration = Duration::from_secs(3 * 3600);
const INTERVALS_S: [i64; 6] = [0, 30, 60, 300, 600, 1800];
const SEEDS_PER_SWARM: u8 = 3;
const LEECHERS_PER_SWARM: u8 = 7;

fn mix(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn bytes20(seed: u64) -> [u8; 20] {
    let mut b = [0u8; 20];
    for (i, chunk) in b.chunks_mut(8).enumerate() {
        let w = mix(seed.wrapping_mul(31).wrapping_add(i as u64)).to_be_bytes();
        chunk.copy_from_slice(&w[..chunk.len()]);
    }
    b
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Behaviour {
    Bep51,
    /// Answers `sample_infohashes` with error 204.
    NoBep51Error,
    /// Answers `sample_infohashes` like `find_node` (an old client).
    NoBep51Plain,
    Dead,
}

struct FakeNode {
    id: [u8; 20],
    addr: SocketAddr,
    behaviour: Behaviour,
    hashes: Vec<[u8; 20]>,
    interval: i64,
    window: usize,
    /// Earliest time a sample is allowed again, as told to the crawler.
    sample_allowed_at: Option<Instant>,
    queries: u32,
    /// Churn: the node's phase (ms) in its up/down cycle; None: always up.
    churn_phase: Option<u64>,
}

struct FakeDht {
    nodes: Vec<FakeNode>,
    by_addr: HashMap<SocketAddr, usize>,
    /// Node indexes sorted by id, for exact XOR-closest lookups.
    sorted: Vec<usize>,
    /// Nodes still to announce that do not exist (appended to every `nodes`).
    flood_budget: u64,
    flood_seq: u64,
    flooded: HashSet<SocketAddr>,
    pacing: HashMap<IpAddr, TokenBucket>,
    per_ip_rate: f64,
    per_ip_burst: f64,
    politeness_violations: u32,
    pacing_violations: u32,
    not_read_only: u32,
    get_peers_to: HashMap<[u8; 20], Vec<SocketAddr>>,
    scrapes_to: HashMap<[u8; 20], Vec<SocketAddr>>,
    out: Vec<u8>,
    start: Instant,
    /// A churning node is up for one period, down (silent) for the next.
    churn_period_ms: u64,
}

/// Hashes whose announcers went only to the nodes closest to them: the
/// sampler has no peers, and a lookup must find them.
fn only_at_closest(h: &[u8; 20]) -> bool {
    h[19] % 4 == 0
}

fn node_addr(i: usize) -> SocketAddr {
    // One IP per node, spread over 127/8 (127.1.0.0 upwards).
    SocketAddr::new(Ipv4Addr::from(0x7F01_0000 + i as u32 * 7).into(), 6881)
}

impl FakeDht {
    /// `churn`: a fifth of the BEP 51 nodes go down and come back every period.
    fn new(per_ip_rate: f64, per_ip_burst: f64, start: Instant, churn: Option<Duration>) -> Self {
        let churn_period_ms = churn.map_or(0, |p| p.as_millis() as u64);
        let mut nodes = Vec::with_capacity(NODES);
        for i in 0..NODES {
            let r = mix(i as u64 ^ 0xABCD) % 100;
            let behaviour = match r {
                0..=69 => Behaviour::Bep51,
                70..=77 => Behaviour::NoBep51Error,
                78..=84 => Behaviour::NoBep51Plain,
                _ => Behaviour::Dead,
            };
            let mut hashes = Vec::new();
            if behaviour == Behaviour::Bep51 {
                let k = (mix(i as u64 ^ 0x1111) % 46) as usize;
                for j in 0..k {
                    // About one hash in ten is also held by the next node.
                    hashes.push(bytes20((i as u64) << 16 | j as u64));
                }
                if i > 0 && mix(i as u64 ^ 0x2222) % 10 < 1 {
                    hashes.push(bytes20(((i - 1) as u64) << 16));
                }
            }
            nodes.push(FakeNode {
                id: bytes20(0xD000_0000 + i as u64),
                addr: node_addr(i),
                behaviour,
                hashes,
                interval: INTERVALS_S[(mix(i as u64 ^ 0x3333) % INTERVALS_S.len() as u64) as usize],
                window: 0,
                sample_allowed_at: None,
                queries: 0,
                churn_phase: (churn_period_ms > 0 && behaviour == Behaviour::Bep51 && mix(i as u64 ^ 0x4444) % 5 == 0)
                    .then(|| mix(i as u64 ^ 0x5555) % (2 * churn_period_ms)),
            });
        }
        let mut sorted: Vec<usize> = (0..NODES).collect();
        sorted.sort_by_key(|&i| nodes[i].id);
        let by_addr = nodes.iter().enumerate().map(|(i, n)| (n.addr, i)).collect();
        FakeDht {
            nodes,
            by_addr,
            sorted,
            flood_budget: 0,
            flood_seq: 0,
            flooded: HashSet::new(),
            pacing: HashMap::new(),
            per_ip_rate,
            per_ip_burst,
            politeness_violations: 0,
            pacing_violations: 0,
            not_read_only: 0,
            get_peers_to: HashMap::new(),
            scrapes_to: HashMap::new(),
            out: Vec::new(),
            start,
            churn_period_ms,
        }
    }

    /// The live BEP 51 nodes' hashes: what a complete crawl must find.
    fn catalogue(&self) -> HashSet<[u8; 20]> {
        self.nodes
            .iter()
            .filter(|n| n.behaviour == Behaviour::Bep51)
            .flat_map(|n| n.hashes.iter().copied())
            .collect()
    }

    /// The `CLOSEST` nodes to `target` by XOR distance, exactly: they lie in the
    /// smallest id-prefix subtree around `target` holding at least `CLOSEST`
    /// nodes, a contiguous range of the sorted ids.
    fn closest(&mut self, target: &[u8; 20]) -> Vec<CompactNode> {
        let key = |i: &usize| self.nodes[*i].id;
        let mut lo = 0;
        let mut hi = self.sorted.len();
        for bit in 0..160 {
            let (byte, mask) = (bit / 8, 0x80u8 >> (bit % 8));
            // Within [lo, hi) ids share target's first `bit` bits; split on the next.
            let split = lo + self.sorted[lo..hi].partition_point(|i| key(i)[byte] & mask == 0);
            let (nlo, nhi) = if target[byte] & mask == 0 {
                (lo, split)
            } else {
                (split, hi)
            };
            if nhi - nlo < CLOSEST {
                break;
            }
            (lo, hi) = (nlo, nhi);
        }
        let mut cands: Vec<usize> = self.sorted[lo..hi].to_vec();
        let dist = |i: &usize| {
            let mut d = self.nodes[*i].id;
            for (a, b) in d.iter_mut().zip(target) {
                *a ^= b;
            }
            d
        };
        cands.sort_by_key(dist);
        cands.truncate(CLOSEST);
        let mut out: Vec<CompactNode> = cands
            .into_iter()
            .map(|i| CompactNode {
                id: self.nodes[i].id,
                addr: self.nodes[i].addr,
            })
            .collect();
        for _ in 0..CLOSEST.min(self.flood_budget as usize) {
            self.flood_budget -= 1;
            self.flood_seq += 1;
            let ip = Ipv4Addr::from(0x7F40_0000 + (mix(self.flood_seq) as u32 & 0x003F_FFFF));
            let addr = SocketAddr::new(ip.into(), 6881);
            self.flooded.insert(addr);
            out.push(CompactNode {
                id: bytes20(self.flood_seq ^ 0xF100D),
                addr,
            });
        }
        out
    }

    /// Handles one datagram the crawler sent; returns the reply, if any.
    fn handle(&mut self, now: Instant, to: SocketAddr, bytes: &[u8]) -> Option<Vec<u8>> {
        let msg = Message::decode(bytes).expect("the crawler sent malformed KRPC");
        let Kind::Query(q) = msg.kind else {
            panic!("the crawler sent a non-query")
        };
        if !msg.read_only {
            self.not_read_only += 1;
        }
        let tid = msg.transaction_id;
        self.out.clear();
        // Replay the IP's arrivals through the configured bucket (plus rounding slack).
        let (rate, burst) = (self.per_ip_rate, self.per_ip_burst + 0.01);
        let bucket = self
            .pacing
            .entry(to.ip())
            .or_insert_with(|| TokenBucket::full(burst, now));
        if !bucket.take(now, rate, burst) {
            self.pacing_violations += 1;
        }
        let Some(&i) = self.by_addr.get(&to) else {
            assert!(
                self.flooded.contains(&to),
                "the crawler sent to {to}, which nobody announced"
            );
            return None;
        };
        let node = &mut self.nodes[i];
        node.queries += 1;
        if node.behaviour == Behaviour::Dead {
            return None;
        }
        if let Some(phase) = node.churn_phase {
            let t = (now - self.start).as_millis() as u64 + phase;
            if t / self.churn_period_ms % 2 == 1 {
                return None;
            }
        }
        let id = node.id;
        match q {
            Query::SampleInfohashes { target, .. } => match node.behaviour {
                Behaviour::Bep51 => {
                    if node.sample_allowed_at.is_some_and(|t| now < t) {
                        self.politeness_violations += 1;
                    }
                    node.sample_allowed_at = Some(now + Duration::from_secs(node.interval as u64));
                    let k = node.hashes.len();
                    let window: Vec<[u8; 20]> = (0..SAMPLES_PER_REPLY.min(k))
                        .map(|j| node.hashes[(node.window + j) % k])
                        .collect();
                    node.window = if k == 0 {
                        0
                    } else {
                        (node.window + SAMPLES_PER_REPLY) % k
                    };
                    let (interval, num) = (node.interval, k as i64);
                    let closest = self.closest(target);
                    let mut r = ResponseOut::new(&id);
                    r.nodes = &closest;
                    r.samples = &window;
                    r.interval = Some(interval);
                    r.num = Some(num);
                    encode_response(&mut self.out, tid, &r, Some(to), None);
                }
                Behaviour::NoBep51Error => {
                    encode_error(&mut self.out, tid, ERROR_METHOD_UNKNOWN, b"Method Unknown", None);
                }
                _ => {
                    let closest = self.closest(target);
                    let mut r = ResponseOut::new(&id);
                    r.nodes = &closest;
                    encode_response(&mut self.out, tid, &r, None, None);
                }
            },
            Query::FindNode { target, .. } => {
                let closest = self.closest(target);
                let mut r = ResponseOut::new(&id);
                r.nodes = &closest;
                encode_response(&mut self.out, tid, &r, None, None);
            }
            Query::GetPeers { info_hash, scrape, .. } => {
                let (info_hash, scrape) = (*info_hash, scrape);
                self.get_peers_to.entry(info_hash).or_default().push(to);
                let holds = node.hashes.contains(&info_hash);
                let swarm_ip = |k: u8| Ipv4Addr::new(127, 250, info_hash[0], k).into();
                let token = [7u8; 4];
                let closest = self.closest(&info_hash);
                let mut r = ResponseOut::new(&id);
                r.token = Some(&token);
                r.nodes = &closest;
                // As libtorrent: a scrape gets bloom filters instead of values.
                let (mut seeds, mut peers) = (ScrapeBloom::new(), ScrapeBloom::new());
                for k in 0..SEEDS_PER_SWARM {
                    seeds.insert(swarm_ip(k));
                }
                for k in 0..LEECHERS_PER_SWARM {
                    peers.insert(swarm_ip(100 + k));
                }
                // Values, with a bogon and a repeat the crawler must drop.
                let values = [
                    SocketAddr::new(swarm_ip(1), 51413),
                    SocketAddr::new(swarm_ip(101), 51413),
                    SocketAddr::new(Ipv4Addr::new(10, 0, 0, 1).into(), 51413),
                    SocketAddr::new(swarm_ip(1), 51413),
                ];
                // A quarter of the hashes were announced only to the nodes
                // closest to them, not to the node that samples them.
                let at_sampler = !only_at_closest(&info_hash);
                let at_closest = closest.iter().any(|n| n.addr == to);
                if scrape {
                    self.scrapes_to.entry(info_hash).or_default().push(to);
                    r.bf_seeds = Some(seeds.as_bytes());
                    r.bf_peers = Some(peers.as_bytes());
                } else if (holds && at_sampler) || at_closest {
                    r.values = &values;
                }
                encode_response(&mut self.out, tid, &r, None, None);
            }
            other => panic!("unexpected query {other:?}"),
        }
        Some(self.out.clone())
    }
}

/// A reply on its way back: arrival time, tie-breaker, sender, bytes.
type InAir = (Instant, u64, SocketAddr, Vec<u8>);

struct Run {
    dht: FakeDht,
    discovered: HashMap<[u8; 20], SocketAddr>,
    swarms: HashMap<[u8; 20], (f64, f64)>,
    peers: usize,
    with_peers: HashSet<[u8; 20]>,
    handovers: usize,
    max_table: usize,
    max_in_flight: usize,
}

fn crawl(cfg: CrawlConfig, flood: u64, churn: Option<Duration>) -> (Run, Scheduler, Instant) {
    let start = Instant::now();
    let mut dht = FakeDht::new(cfg.per_ip_rate, cfg.per_ip_burst, start, churn);
    let mut cfg = cfg;
    cfg.bootstrap = vec![dht.nodes.iter().find(|n| n.behaviour == Behaviour::Bep51).unwrap().addr];
    dht.flood_budget = flood;
    let (max_nodes, max_in_flight) = (cfg.max_nodes, cfg.max_in_flight);
    let mut s = Scheduler::new(cfg, start);
    let mut run = Run {
        dht,
        discovered: HashMap::new(),
        swarms: HashMap::new(),
        peers: 0,
        with_peers: HashSet::new(),
        handovers: 0,
        max_table: 0,
        max_in_flight: 0,
    };
    let mut in_air: BinaryHeap<Reverse<InAir>> = BinaryHeap::new();
    let mut seq = 0u64;
    let mut now = start;
    let mut buf = Vec::new();
    let end = start + RUN_FOR;
    while now < end {
        while let Some(Reverse((t, ..))) = in_air.peek() {
            if *t > now {
                break;
            }
            let Reverse((_, _, from, bytes)) = in_air.pop().unwrap();
            s.handle_datagram(now, from, &bytes);
        }
        s.handle_timeout(now);
        while let Some(to) = s.poll_transmit(now, &mut buf) {
            if let Some(reply) = run.dht.handle(now, to, &buf) {
                seq += 1;
                in_air.push(Reverse((now + LATENCY, seq, to, reply)));
            }
        }
        let out = s.output();
        for d in out.discoveries.drain(..) {
            assert!(
                run.discovered.insert(d.info_hash, d.source).is_none(),
                "dedup let a repeat through"
            );
        }
        for w in out.swarms.drain(..) {
            run.swarms.insert(w.info_hash, (w.seeders, w.leechers));
        }
        for p in out.peers.drain(..) {
            run.peers += 1;
            run.with_peers.insert(p.info_hash);
        }
        run.handovers += out.handovers.drain(..).count();
        run.max_table = run.max_table.max(s.known_nodes());
        run.max_in_flight = run.max_in_flight.max(s.in_flight());
        assert!(s.known_nodes() <= max_nodes && s.in_flight() <= max_in_flight);
        let next_reply = in_air.peek().map(|Reverse((t, ..))| *t);
        let next = [s.next_timeout(), next_reply]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(end);
        // The state machine must never ask to be woken in the past forever.
        now = next.max(now + Duration::from_micros(100));
    }
    (run, s, now)
}

fn sim_config() -> CrawlConfig {
    CrawlConfig {
        node_id: bytes20(0xC0FFEE),
        allow_loopback: true,
        max_nodes: 10_000,
        unreachable_ttl: Duration::from_secs(24 * 3600),
        seed: 42,
        ..CrawlConfig::default()
    }
}

#[test]
fn crawl_finds_every_reachable_infohash_politely() {
    let (mut run, s, now) = crawl(sim_config(), 0, None);
    eprintln!(
        "crawl: {:?}, {} hashes found, {} swarms",
        s.stats(),
        run.discovered.len(),
        run.swarms.len()
    );
    let catalogue = run.dht.catalogue();
    assert!(
        catalogue.len() > 20_000,
        "fake catalogue too small: {}",
        catalogue.len()
    );
    let found: HashSet<[u8; 20]> = run.discovered.keys().copied().collect();
    assert!(
        found.is_subset(&catalogue),
        "invented {} hashes",
        found.difference(&catalogue).count()
    );
    let missing = catalogue.difference(&found).count();
    assert_eq!(missing, 0, "missed {missing} of {} reachable hashes", catalogue.len());

    assert_eq!(run.dht.politeness_violations, 0, "sampled before the interval");
    assert_eq!(run.dht.pacing_violations, 0, "burst an IP beyond the pacing limit");
    assert_eq!(run.dht.not_read_only, 0, "a query went out without ro=1");
    assert_eq!(run.handovers, 0, "one core owns everything");

    // Every new hash was scraped at the node that sampled it, and the BEP 33
    // estimates came back; its peers came from a plain get_peers to the
    // sampler or, where the sampler had none, from a lookup.
    for (h, source) in &run.discovered {
        let asked = run.dht.get_peers_to.get(h).map(Vec::as_slice).unwrap_or(&[]);
        let scraped = run.dht.scrapes_to.get(h).map(Vec::as_slice).unwrap_or(&[]);
        assert_eq!(scraped, &[*source], "one scrape, to the sampler");
        assert!(asked.contains(source), "no get_peers to the sampler of a hash");
    }
    let without: Vec<_> = run.discovered.keys().filter(|h| !run.with_peers.contains(*h)).collect();
    assert!(
        without.is_empty(),
        "{} of {} hashes got no peers",
        without.len(),
        run.discovered.len()
    );
    // A sampler that is itself among the closest nodes has the peers already.
    let mut at_closest = 0u64;
    for (h, sampler) in &run.discovered {
        if only_at_closest(h) && !run.dht.closest(h).iter().any(|n| n.addr == *sampler) {
            at_closest += 1;
        }
    }
    assert!(at_closest > 1000, "too few lookup cases: {at_closest}");
    assert_eq!(
        s.stats().sampler_without_peers,
        at_closest,
        "a lookup for exactly these"
    );
    let lookups = s.peer_search().stats();
    assert_eq!(lookups.lookups_found, at_closest, "{lookups:?}");
    assert_eq!(run.swarms.len(), run.discovered.len());
    for &(seeders, leechers) in run.swarms.values() {
        assert!((seeders - f64::from(SEEDS_PER_SWARM)).abs() < 0.5, "seeders {seeders}");
        assert!(
            (leechers - f64::from(LEECHERS_PER_SWARM)).abs() < 0.5,
            "leechers {leechers}"
        );
    }
    // Each reply with values had two usable peers, a bogon and a repeat.
    assert_eq!(run.peers as u64, s.stats().peers_found);
    assert_eq!(s.stats().peers_rejected, s.stats().peers_found);

    // Dead nodes that were asked enough times are remembered as unreachable and
    // are not asked again.
    let dead: Vec<&FakeNode> = run
        .dht
        .nodes
        .iter()
        .filter(|n| n.behaviour == Behaviour::Dead)
        .collect();
    let cfg = sim_config();
    let mut marked = 0;
    for n in &dead {
        assert!(
            n.queries <= u32::from(cfg.max_failures),
            "dead node asked {} times",
            n.queries
        );
        if n.queries == u32::from(cfg.max_failures) {
            assert!(s.is_unreachable(&n.addr, now));
            marked += 1;
        }
    }
    assert!(
        marked * 10 >= dead.len() * 9,
        "only {marked} of {} dead nodes marked",
        dead.len()
    );
    let stats = s.stats();
    assert_eq!(stats.marked_unreachable, marked as u64);
    assert_eq!(stats.decode_errors + stats.unmatched, 0);
    // Live nodes all ended up known.
    let live = run.dht.nodes.iter().filter(|n| n.behaviour != Behaviour::Dead).count();
    assert_eq!(s.known_nodes(), live);
}

#[test]
fn node_table_cap_holds_under_a_flood_of_announced_nodes() {
    const CAP: usize = 4_000;
    let cfg = CrawlConfig {
        max_nodes: CAP,
        max_in_flight: 512,
        ..sim_config()
    };
    let (run, s, _) = crawl(cfg, 20_000, None);
    let t = s.node_table();
    eprintln!(
        "flood: {:?}, evictions {}, refusals {}",
        s.stats(),
        t.evictions(),
        t.refusals()
    );
    assert_eq!(run.dht.flood_seq, 20_000, "the flood did not happen");
    assert!(run.max_table <= CAP && s.known_nodes() <= CAP);
    assert!(run.max_in_flight <= 512);
    assert!(
        s.node_table().evictions() + s.node_table().refusals() > 0,
        "the cap was never reached"
    );
    assert_eq!(run.dht.politeness_violations, 0);
    assert_eq!(run.dht.pacing_violations, 0);
    // Productive nodes are kept over announced strangers: most hashes are still found.
    let catalogue = run.dht.catalogue();
    let found = run.discovered.keys().filter(|h| catalogue.contains(*h)).count();
    assert_eq!(found, run.discovered.len(), "invented hashes");
    assert!(
        found * 10 >= catalogue.len() * 9,
        "found {found} of {}",
        catalogue.len()
    );
}

#[test]
fn churning_nodes_are_never_sampled_inside_their_interval() {
    // The unreachable cache expires before the longest interval (as 30 min
    // does before a real node's 6 h): churned nodes come back and are relearned
    // as new, but must still wait out the interval they gave before going down.
    let cfg = CrawlConfig {
        unreachable_ttl: Duration::from_secs(600),
        ..sim_config()
    };
    let (run, s, _) = crawl(cfg, 0, Some(Duration::from_secs(30)));
    let churning = run.dht.nodes.iter().filter(|n| n.churn_phase.is_some()).count();
    eprintln!("churn: {:?}, {churning} churning nodes", s.stats());
    assert!(churning > 300 && s.stats().marked_unreachable > 0, "no churn happened");
    assert_eq!(run.dht.politeness_violations, 0, "sampled before the interval");
    assert_eq!(run.dht.pacing_violations, 0);
}

/// Drives a scheduler whose one bootstrap address answers only when `answer`
/// says so, for `secs` virtual seconds; the times (s) it asked the bootstrap.
fn bootstrap_run(secs: u64, answer: impl Fn(u64) -> bool) -> (Vec<u64>, Scheduler) {
    let start = Instant::now();
    let boot = node_addr(0);
    let cfg = CrawlConfig {
        bootstrap: vec![boot],
        ..sim_config()
    };
    let mut s = Scheduler::new(cfg, start);
    let mut asked = Vec::new();
    let mut buf = Vec::new();
    let mut now = start;
    let end = start + Duration::from_secs(secs);
    while now < end {
        s.handle_timeout(now);
        while let Some(to) = s.poll_transmit(now, &mut buf) {
            if to != boot {
                continue;
            }
            let at = (now - start).as_secs();
            asked.push(at);
            if answer(at) {
                let msg = Message::decode(&buf).unwrap();
                let id = bytes20(7);
                let mut out = Vec::new();
                encode_response(&mut out, msg.transaction_id, &ResponseOut::new(&id), None, None);
                s.handle_datagram(now + LATENCY, boot, &out);
            }
        }
        now = s.next_timeout().unwrap_or(end).max(now + Duration::from_millis(1));
    }
    (asked, s)
}

#[test]
fn a_silent_bootstrap_is_asked_again_with_backoff_and_counted() {
    let (asked, s) = bootstrap_run(120, |_| false);
    // 0, then 2, 4, 8, 16 s later, then every 30 s (bootstrap_retry).
    let gaps: Vec<u64> = asked.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(gaps[..4], [2, 4, 8, 16], "{asked:?}");
    assert!(gaps[4..].iter().all(|g| *g == 30), "{asked:?}");
    let st = s.stats();
    assert_eq!(
        (st.bootstrap_sent, st.bootstrap_answered, st.replies_received),
        (asked.len() as u64, 0, 0)
    );

    // One that answers the third time is counted, and the table now has it.
    let (asked, s) = bootstrap_run(20, |at| at >= 6);
    let st = s.stats();
    assert!(
        st.bootstrap_answered >= 1 && st.replies_received >= st.bootstrap_answered,
        "{st:?} {asked:?}"
    );
    assert_eq!(s.known_nodes(), 1);
}
