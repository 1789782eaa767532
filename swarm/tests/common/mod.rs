//! Shared by the swarm's loopback tests (here and in `bench/tests/`): small
//! swarms bounded in time, a raw KRPC client, and serde_bencode as a second,
//! independent decoder of the replies.

#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use trawl_engine::codec::krpc::{self, Query, Want};
use trawl_swarm::catalogue::CatalogueConfig;
use trawl_swarm::model::{ModelMix, Preset};
use trawl_swarm::nodes::NodeTraitsConfig;
use trawl_swarm::politeness::RateLimit;
use trawl_swarm::run::{RunOptions, Running};
use trawl_swarm::server::StopAfter;
use trawl_swarm::{PeerFaults, Swarm, SwarmConfig};

pub const NODES: u32 = 3000;
pub const TORRENTS: u32 = 3000;

/// A port free for both UDP and TCP right now.
pub fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("0.0.0.0:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("0.0.0.0", port)).is_ok() {
            return port;
        }
    }
}

pub fn config(rate_limit: Option<RateLimit>, faults: PeerFaults) -> SwarmConfig {
    SwarmConfig {
        seed: 77,
        nodes: NODES,
        catalogue: CatalogueConfig {
            torrents: TORRENTS,
            holders_max: 4,
        },
        traits: NodeTraitsConfig {
            dead_fraction: 0.1,
            slow_fraction: 0.0,
            no_bep51_fraction: 0.3,
            interval_max: 600,
            ..NodeTraitsConfig::default()
        },
        loss: 0.0,
        rate_limit,
        port: free_port(),
        peer_port: free_port(),
        peer_faults: faults,
        ..SwarmConfig::default()
    }
}

pub fn start(cfg: SwarmConfig, secs: u64) -> Running {
    let swarm = Arc::new(Swarm::build(cfg, 2));
    let opts = RunOptions {
        threads: 1,
        udp_cores: Vec::new(),
        peer_core: None,
        stop: StopAfter {
            duration: Duration::from_secs(secs),
            packets: 0,
        },
    };
    Running::start(swarm, &opts).unwrap()
}

pub struct Client {
    pub sock: UdpSocket,
    pub id: [u8; 20],
    pub port: u16,
}

impl Client {
    pub fn new(port: u16) -> Self {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
        Self {
            sock,
            id: [0x42; 20],
            port,
        }
    }

    /// Sends `q` to node `index` and returns the raw reply, if any.
    pub fn ask(&self, swarm: &Swarm, index: u32, q: &Query<'_>) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        krpc::encode_query(&mut out, b"tx", q, false, None);
        let to = SocketAddrV4::new(swarm.nodes.addr(index), self.port);
        self.sock.send_to(&out, to).unwrap();
        let mut buf = [0u8; 2048];
        let (n, from) = self.sock.recv_from(&mut buf).ok()?;
        assert_eq!(
            from,
            SocketAddr::V4(to),
            "the reply comes from the virtual node's address"
        );
        Some(buf[..n].to_vec())
    }
}

/// The reply as serde_bencode sees it: an independent decoder.
#[derive(Debug, Deserialize)]
pub struct Independent {
    #[serde(with = "serde_bytes")]
    pub t: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub y: Vec<u8>,
    pub r: Option<IndependentBody>,
    pub e: Option<(i64, serde_bytes::ByteBuf)>,
}

#[derive(Debug, Deserialize)]
pub struct IndependentBody {
    pub id: serde_bytes::ByteBuf,
    pub nodes: Option<serde_bytes::ByteBuf>,
    pub values: Option<Vec<serde_bytes::ByteBuf>>,
    pub token: Option<serde_bytes::ByteBuf>,
    pub samples: Option<serde_bytes::ByteBuf>,
    pub interval: Option<i64>,
    pub num: Option<i64>,
    #[serde(rename = "BFsd")]
    pub bf_seeds: Option<serde_bytes::ByteBuf>,
    #[serde(rename = "BFpe")]
    pub bf_peers: Option<serde_bytes::ByteBuf>,
    pub n: Option<serde_bytes::ByteBuf>,
}

pub fn independent(bytes: &[u8]) -> Independent {
    let v: Independent = serde_bencode::from_bytes(bytes).expect("serde_bencode decodes the reply");
    assert_eq!(v.t, b"tx");
    v
}

pub fn live_bep51_node_with_torrents(swarm: &Swarm) -> u32 {
    (0..NODES)
        .find(|&i| {
            swarm.nodes.is_alive(i)
                && swarm.nodes.supports_bep51(i)
                && swarm.catalogue.held_by(i).len() > 1
                && swarm.nodes.interval(i) > 10
        })
        .expect("such a node exists")
}

/// A swarm where every node plays one `mix`, quick to start, no loss, no slow nodes.
pub fn modelled(mix: ModelMix) -> SwarmConfig {
    let mut cfg = SwarmConfig::preset(Preset::Mainline);
    cfg.mix = mix;
    cfg.traits.churn_fraction = 0.0;
    cfg.traits.slow_fraction = 0.0;
    SwarmConfig {
        seed: 77,
        nodes: NODES,
        catalogue: CatalogueConfig {
            torrents: TORRENTS * 10,
            holders_max: 4,
        },
        loss: 0.0,
        port: free_port(),
        peer_port: free_port(),
        peer_faults: PeerFaults::default(),
        ..cfg
    }
}

pub const ALL_LIBTORRENT: ModelMix = ModelMix {
    libtorrent: 1.0,
    no_bep51: 0.0,
    nat: 0.0,
};

pub fn get_peers<'a>(me: &'a [u8; 20], info_hash: &'a [u8; 20], scrape: bool) -> Query<'a> {
    Query::GetPeers {
        id: me,
        info_hash,
        want: Want::default(),
        noseed: false,
        scrape,
    }
}

pub fn find_node<'a>(me: &'a [u8; 20], target: &'a [u8; 20]) -> Query<'a> {
    Query::FindNode {
        id: me,
        target,
        want: Want::default(),
    }
}

pub fn sample<'a>(me: &'a [u8; 20]) -> Query<'a> {
    Query::SampleInfohashes {
        id: me,
        target: &[0x33; 20],
        want: Want::default(),
    }
}

/// The crawler's address in the downloader test: not a virtual node's.
pub const CRAWLER: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 1), 40_001);

/// One query from the crawler to virtual node `node` through the I/O-free responder.
pub fn ask_as_crawler(
    r: &mut trawl_swarm::answer::Responder<'_>,
    swarm: &Swarm,
    node: u32,
    id: &[u8; 20],
    read_only: bool,
    now_ms: u64,
    c: &mut trawl_swarm::counters::Counters,
) {
    let mut q = Vec::new();
    krpc::encode_query(&mut q, b"pp", &Query::Ping { id }, read_only, None);
    let mut out = Vec::new();
    r.handle(now_ms, CRAWLER, swarm.nodes.addr(node), &q, &mut out, c);
}
