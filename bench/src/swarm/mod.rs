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
//! # Reachability, as the manifest reports it
//! A torrent is *reachable* when at least one of its holders is a live virtual
//! node that supports BEP 51: repeated polite `sample_infohashes` to that node
//! rotate through everything it holds, so a crawler can discover the torrent
//! without knowing it. (Every catalogue torrent can also be found by `get_peers`
//! once its infohash is known, so that route adds nothing to discovery.) It is
//! *fetchable* when at least one holder's metadata peer behaves well.

pub mod answer;
pub mod catalogue;
pub mod counters;
pub mod derive;
pub mod mmsg;
pub mod nodes;
pub mod peers;
pub mod politeness;
pub mod run;
pub mod server;

use catalogue::{Catalogue, CatalogueConfig};
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
        }
    }
}

/// A built swarm: ground truth plus the shared politeness table.
pub struct Swarm {
    pub config: SwarmConfig,
    pub nodes: Nodes,
    pub catalogue: Catalogue,
    pub politeness: Politeness,
}

impl Swarm {
    /// Builds the node index and the catalogue, hashing on `threads` threads.
    pub fn build(config: SwarmConfig, threads: usize) -> Self {
        let nodes = Nodes::new(config.seed, config.nodes, config.traits);
        let catalogue = Catalogue::new(config.seed, config.catalogue, &nodes, threads);
        let politeness = Politeness::new(config.rate_limit);
        Self {
            config,
            nodes,
            catalogue,
            politeness,
        }
    }

    /// Whether holder `node` of torrent `torrent` is a seed.
    pub fn is_seed(&self, torrent: u32, node: u32) -> bool {
        let key = (u64::from(torrent) << 32) | u64::from(node);
        derive::unit(self.config.seed, key, derive::SALT_SEED_FLAG) < self.config.seed_fraction
    }

    pub fn peer_behaviour(&self, node: u32) -> PeerBehaviour {
        let f = self.config.peer_faults;
        let u = derive::unit(self.config.seed, node.into(), derive::SALT_PEER_BEHAVIOUR);
        if u < f.reject {
            PeerBehaviour::Reject
        } else if u < f.reject + f.stall {
            PeerBehaviour::Stall
        } else if u < f.reject + f.stall + f.corrupt {
            PeerBehaviour::Corrupt
        } else {
            PeerBehaviour::Good
        }
    }

    /// See the module doc: some holder is alive and answers `sample_infohashes`.
    pub fn reachable(&self, torrent: u32) -> bool {
        let mut buf = [0u32; 16];
        self.catalogue
            .holders(torrent, &mut buf)
            .iter()
            .any(|&h| self.nodes.is_alive(h) && self.nodes.supports_bep51(h))
    }

    /// Some holder's metadata peer serves the info dict correctly.
    pub fn fetchable(&self, torrent: u32) -> bool {
        let mut buf = [0u32; 16];
        self.catalogue
            .holders(torrent, &mut buf)
            .iter()
            .any(|&h| self.peer_behaviour(h) == PeerBehaviour::Good)
    }
}
