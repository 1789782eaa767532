//! `trawl-swarm`: a loopback DHT of virtual nodes, torrents and metadata peers.
//!
//! Owns: everything the simulator is made of. [`nodes`] and [`catalogue`] are
//! pure ground truth derived from a seed (ids, addresses, traits, info dicts,
//! who holds what); [`answer`] is the I/O-free answering logic with
//! [`politeness`] bookkeeping; [`server`] and [`peers`] are the UDP and TCP
//! loops around them; [`mmsg`] moves datagrams in batches.
//! Must not: send anywhere but 127.0.0.0/8, or keep per-node memory beyond what
//! its answers need.
//!
//! # Data flow
//! ```text
//! crawler ──UDP──> 0.0.0.0:port ──recvmmsg + IP_PKTINFO (which 127.x was hit)──>
//!   Responder::handle(now, from, hit, bytes) ── Nodes / Catalogue / Politeness
//!   ──> reply buffer ──sendmmsg from the hit address──> crawler
//! fetcher ──TCP──> 0.0.0.0:peer_port ── local address names the virtual peer ──>
//!   peers::Conn (BEP 3/10/9 via trawl_engine::metadata::wire) ──> info dict
//! ```
//!
//! # Ground truth, as the manifest reports it
//! A torrent is *reachable* when at least one of its holders is a live virtual
//! node that answers and supports BEP 51 (not NAT, not `no_bep51`): polite
//! `sample_infohashes` to that node would show it sooner or later. It is
//! *discoverable* within a run of a given length when some such holder, at a
//! time it is up, would put it in a sample during the run: a `Fast` node
//! rotates through all it holds, a libtorrent node shows one random set of at
//! most 20 per (scaled) interval ([`Swarm::discoverable`]). (Every catalogue
//! torrent can also be found by `get_peers` once its infohash is known, so that
//! route adds nothing to discovery.) It is *fetchable* when at least one
//! holder's metadata peer accepts connections and behaves well.
//!
//! # Node models
//! [`model`] picks per node which implementation it plays (`fast`,
//! `libtorrent`, `no_bep51`, `nat`); [`limits`] holds libtorrent's dos blocker
//! and reply budget. docs/swarm.md describes each model and the presets.

pub mod answer;
pub mod catalogue;
pub mod counters;
pub mod derive;
pub mod downloaders;
pub mod limits;
pub mod mmsg;
pub mod model;
pub mod nodes;
pub mod peers;
pub mod politeness;
pub mod run;
pub mod server;
pub mod sys;

use catalogue::{Catalogue, CatalogueConfig};
use downloaders::{DownloadConfig, Downloads};
use limits::Limits;
use model::{LibtorrentLimits, ModelMix, NodeModel, Preset, TimeScale};
use nodes::{NodeTraitsConfig, Nodes};
use politeness::{Politeness, RateLimit};

/// Default UDP port of every virtual node.
pub const DEFAULT_PORT: u16 = 36881;
/// Default TCP port of every virtual metadata peer.
pub const DEFAULT_PEER_PORT: u16 = 36882;

/// How a virtual metadata peer behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerBehaviour {
    Good,
    /// Answers every `ut_metadata` request with a reject.
    Reject,
    /// Completes the handshakes, then never answers a request.
    Stall,
    /// Sends pieces with one byte flipped, so the SHA-1 check fails.
    Corrupt,
}

/// Fractions of metadata peers that misbehave.
#[derive(Clone, Copy, Debug, Default)]
pub struct PeerFaults {
    pub reject: f64,
    pub stall: f64,
    pub corrupt: f64,
}

/// Everything that shapes one swarm.
#[derive(Clone, Debug)]
pub struct SwarmConfig {
    pub seed: u64,
    pub nodes: u32,
    pub catalogue: CatalogueConfig,
    pub traits: NodeTraitsConfig,
    /// Probability that a query is lost.
    pub loss: f64,
    /// How long a slow node holds its reply back.
    pub slow_delay_ms: u64,
    pub rate_limit: Option<RateLimit>,
    /// Nodes per `nodes` list (BEP 5's k).
    pub k: usize,
    /// Samples per `sample_infohashes` reply (libtorrent: 20).
    pub samples_max: usize,
    pub port: u16,
    pub peer_port: u16,
    pub peer_faults: PeerFaults,
    /// Fraction of holders that are seeds (for BEP 33 `BFsd`).
    pub seed_fraction: f64,
    /// Which implementation each node plays (the rest play `Fast`).
    pub mix: ModelMix,
    /// What the libtorrent model enforces.
    pub libtorrent: LibtorrentLimits,
    /// Divides the sample interval of libtorrent nodes and, under `mainline`, churn.
    pub time_scale: TimeScale,
    /// Round trip of each metadata peer, uniform in this range (deterministic per peer).
    pub peer_rtt: RttRange,
    /// Fraction of metadata peers that never accept: a dial to them times out.
    pub never_accept: f64,
    /// Virtual downloaders ([`downloaders`]); off unless a rate is set.
    pub downloads: DownloadConfig,
}

/// A range of round-trip times in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RttRange {
    pub min_ms: u64,
    pub max_ms: u64,
}

/// The `mainline` preset's figures; docs/swarm.md gives the source of each.
pub mod mainline {
    /// Unreachable (NAT) nodes, of all nodes: with churn, about half of all
    /// contacts never answer at a given time (mldht).
    pub const NAT: f64 = 0.4;
    /// libtorrent nodes and nodes without BEP 51, of all nodes: an assumption,
    /// an even split of the answering nodes (no published figure).
    pub const LIBTORRENT: f64 = 0.3;
    pub const NO_BEP51: f64 = 0.3;
    /// Daily swing of 15 to 27 million nodes (Wang and Kangasharju 2013):
    /// 1 - 15/27 of the nodes are away half of each day.
    pub const CHURN: f64 = 0.44;
    /// Half a day up, half a day down, in real seconds (before the time scale).
    pub const CHURN_PERIOD_S: f64 = 43_200.0;
    pub const RTT_MIN_MS: u64 = 50;
    pub const RTT_MAX_MS: u64 = 300;
    /// Metadata peers that never accept a connection.
    pub const NEVER_ACCEPT: f64 = 0.3;
    /// DHT lookups per node per second, in real time (not scaled): ten active
    /// torrents per client, each looked up once per libtorrent's
    /// `dht_announce_interval` of 15 minutes (an assumption: no published
    /// per-client figure).
    pub const LOOKUPS_PER_NODE_S: f64 = 10.0 / 900.0;
    /// Share of those lookups that announce (libtorrent announces on every
    /// lookup of a torrent it takes part in; the rest stands for lookups
    /// without an announce, such as magnet resolvers').
    pub const ANNOUNCE_SHARE: f64 = 0.8;
}

impl SwarmConfig {
    /// The swarm of `preset` with everything else at its default.
    pub fn preset(preset: Preset) -> Self {
        let mut c = Self::default();
        c.apply_preset(preset);
        c
    }

    /// Sets what `preset` decides and leaves sizes, ports and the seed alone.
    pub fn apply_preset(&mut self, preset: Preset) {
        let fast = Self::default();
        match preset {
            Preset::Fast => {
                self.traits = fast.traits;
                self.mix = fast.mix;
                self.libtorrent = fast.libtorrent;
                self.time_scale = fast.time_scale;
                self.peer_rtt = fast.peer_rtt;
                self.never_accept = fast.never_accept;
                self.downloads = fast.downloads;
            }
            Preset::Mainline => {
                let scale = TimeScale::MAINLINE;
                self.mix = ModelMix {
                    libtorrent: mainline::LIBTORRENT,
                    no_bep51: mainline::NO_BEP51,
                    nat: mainline::NAT,
                };
                self.traits.dead_fraction = 0.0;
                self.traits.no_bep51_fraction = 0.0;
                self.traits.churn_fraction = mainline::CHURN;
                self.traits.churn_period_ms = scale.scaled_ms(mainline::CHURN_PERIOD_S);
                self.libtorrent = LibtorrentLimits::default();
                self.time_scale = scale;
                self.peer_rtt = RttRange {
                    min_ms: mainline::RTT_MIN_MS,
                    max_ms: mainline::RTT_MAX_MS,
                };
                self.never_accept = mainline::NEVER_ACCEPT;
                self.downloads = DownloadConfig {
                    lookups_per_node_s: mainline::LOOKUPS_PER_NODE_S,
                    announce_share: mainline::ANNOUNCE_SHARE,
                };
            }
        }
    }
}

impl Default for SwarmConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            nodes: 100_000,
            catalogue: CatalogueConfig::default(),
            traits: NodeTraitsConfig::default(),
            loss: 0.01,
            slow_delay_ms: 500,
            rate_limit: None,
            k: 8,
            samples_max: 20,
            port: DEFAULT_PORT,
            peer_port: DEFAULT_PEER_PORT,
            peer_faults: PeerFaults {
                reject: 0.05,
                stall: 0.05,
                corrupt: 0.05,
            },
            seed_fraction: 0.5,
            mix: ModelMix::FAST,
            libtorrent: LibtorrentLimits::default(),
            time_scale: TimeScale(1.0),
            peer_rtt: RttRange::default(),
            never_accept: 0.0,
            downloads: DownloadConfig::default(),
        }
    }
}

/// A built swarm: ground truth plus the shared politeness table.
pub struct Swarm {
    pub config: SwarmConfig,
    pub nodes: Nodes,
    pub catalogue: Catalogue,
    pub politeness: Politeness,
    pub limits: Limits,
    /// Where never-accepting peers are announced: a listener whose accept
    /// queue is kept full, so the kernel drops SYNs to it (set when running).
    pub dark_peer_port: std::sync::atomic::AtomicU16,
    /// Virtual downloaders and what they learned of the crawler.
    pub downloads: Downloads,
}

impl Swarm {
    /// Builds the node index and the catalogue, hashing on `threads` threads.
    pub fn build(config: SwarmConfig, threads: usize) -> Self {
        let nodes = Nodes::new(config.seed, config.nodes, config.traits);
        let catalogue = Catalogue::new(config.seed, config.catalogue, &nodes, threads);
        let politeness = Politeness::new(config.rate_limit);
        let limits = Limits::new(config.libtorrent);
        let downloads = Downloads::new(config.downloads, config.nodes);
        Self {
            config,
            nodes,
            catalogue,
            politeness,
            limits,
            dark_peer_port: std::sync::atomic::AtomicU16::new(0),
            downloads,
        }
    }

    pub fn model(&self, node: u32) -> NodeModel {
        self.config.mix.model(self.config.seed, node)
    }

    /// Whether `node` answers anything at `now_ms` (not NAT, alive, not away).
    pub fn answers(&self, node: u32, now_ms: u64) -> bool {
        self.model(node) != NodeModel::Nat && self.nodes.is_up(node, now_ms)
    }

    /// Whether `node` answers `sample_infohashes` when it answers at all.
    pub fn samples(&self, node: u32) -> bool {
        match self.model(node) {
            NodeModel::Libtorrent => true,
            NodeModel::Fast => self.nodes.supports_bep51(node),
            NodeModel::NoBep51 | NodeModel::Nat => false,
        }
    }

    /// The `interval` `node` gives in `sample_infohashes` replies, in seconds
    /// of run time; libtorrent's is its setting divided by the time scale.
    pub fn sample_interval_s(&self, node: u32) -> u32 {
        match self.model(node) {
            NodeModel::Libtorrent => {
                let ms = self
                    .config
                    .time_scale
                    .scaled_ms(self.config.libtorrent.sample_interval_s.into());
                ms.div_ceil(1000) as u32
            }
            _ => self.nodes.interval(node),
        }
    }

    /// The metadata peer of `node` accepts connections (NAT'd hosts do not).
    pub fn peer_accepts(&self, node: u32) -> bool {
        self.model(node) != NodeModel::Nat
            && derive::unit(self.config.seed, node.into(), derive::SALT_NEVER_ACCEPT) >= self.config.never_accept
    }

    /// The TCP port `node`'s peer is announced on: the peer port, or the dark
    /// port where the dial times out.
    pub fn peer_port_of(&self, node: u32) -> u16 {
        if self.peer_accepts(node) {
            self.config.peer_port
        } else {
            self.dark_peer_port.load(std::sync::atomic::Ordering::Relaxed)
        }
    }

    /// The round trip `node`'s metadata peer adds to each exchange.
    pub fn peer_rtt(&self, node: u32) -> std::time::Duration {
        let r = self.config.peer_rtt;
        let span = r.max_ms.saturating_sub(r.min_ms) + 1;
        let ms = r.min_ms + derive::hash3(self.config.seed, node.into(), derive::SALT_PEER_RTT) % span;
        std::time::Duration::from_millis(ms)
    }

    /// Whether holder `node` of torrent `torrent` is a seed.
    pub fn is_seed(&self, torrent: u32, node: u32) -> bool {
        let key = (u64::from(torrent) << 32) | u64::from(node);
        derive::unit(self.config.seed, key, derive::SALT_SEED_FLAG) < self.config.seed_fraction
    }

    pub fn peer_behaviour(&self, node: u32) -> PeerBehaviour {
        let f = self.config.peer_faults;
        let u = derive::unit(self.config.seed, node.into(), derive::SALT_PEER_BEHAVIOUR);
        match derive::share_index(u, &[f.reject, f.stall, f.corrupt]) {
            0 => PeerBehaviour::Reject,
            1 => PeerBehaviour::Stall,
            2 => PeerBehaviour::Corrupt,
            _ => PeerBehaviour::Good,
        }
    }

    /// See the module doc: some holder is alive, not NAT, and answers
    /// `sample_infohashes`, so enough polite visits would show the torrent.
    pub fn reachable(&self, torrent: u32) -> bool {
        let mut buf = [0u32; 16];
        self.catalogue
            .holders(torrent, &mut buf)
            .iter()
            .any(|&h| self.model(h) != NodeModel::Nat && self.nodes.is_alive(h) && self.samples(h))
    }

    /// See the module doc: some holder's metadata peer accepts connections and
    /// serves the info dict correctly.
    pub fn fetchable(&self, torrent: u32) -> bool {
        let mut buf = [0u32; 16];
        self.catalogue
            .holders(torrent, &mut buf)
            .iter()
            .any(|&h| self.peer_accepts(h) && self.peer_behaviour(h) == PeerBehaviour::Good)
    }

    /// The sampling epoch of a libtorrent node at `now_ms`: its sample stays
    /// the same for one interval (libtorrent's `refresh_infohashes_sample`).
    pub fn sample_epoch(&self, node: u32, now_ms: u64) -> u64 {
        now_ms / (u64::from(self.sample_interval_s(node)) * 1000).max(1)
    }

    /// The torrents a libtorrent node samples in `epoch`: all it holds when
    /// they fit, else `max_samples` of them picked with equal chance
    /// (selection sampling, as libtorrent picks), reproducible from the seed.
    pub fn libtorrent_sample(&self, node: u32, epoch: u64, out: &mut Vec<u32>) {
        out.clear();
        let held = self.catalogue.held_by(node);
        let mut to_pick = held.len().min(self.config.libtorrent.max_samples);
        let mut stream = derive::Stream::new(self.config.seed ^ epoch, node.into(), derive::SALT_SAMPLE_PICK);
        for (left, &t) in (1..=held.len()).rev().zip(held) {
            if to_pick == 0 {
                break;
            }
            if (stream.below(left as u64) as usize) < to_pick {
                out.push(t);
                to_pick -= 1;
            }
        }
    }

    /// For every catalogue torrent, whether a polite crawler running for
    /// `run_ms` could see it in some `sample_infohashes` reply: a holder that
    /// answers samples (not NAT, alive, up at some time of the epoch) and
    /// samples it in that epoch. `Fast` nodes rotate through all they hold, so
    /// every torrent a live `Fast` BEP 51 node holds counts.
    pub fn discoverable(&self, run_ms: u64) -> Vec<bool> {
        let mut found = vec![false; self.catalogue.len() as usize];
        let mut sample = Vec::new();
        for node in 0..self.nodes.len() {
            let model = self.model(node);
            if model == NodeModel::Nat || !self.nodes.is_alive(node) || !self.samples(node) {
                continue;
            }
            if model == NodeModel::Fast {
                for &t in self.catalogue.held_by(node) {
                    found[t as usize] = true;
                }
                continue;
            }
            let interval_ms = (u64::from(self.sample_interval_s(node)) * 1000).max(1);
            for epoch in 0..=run_ms / interval_ms {
                let from = epoch * interval_ms;
                let to = (from + interval_ms).min(run_ms.max(1));
                if from >= to || !self.nodes.up_during(node, from, to) {
                    continue;
                }
                self.libtorrent_sample(node, epoch, &mut sample);
                for &t in &sample {
                    found[t as usize] = true;
                }
            }
        }
        found
    }
}
