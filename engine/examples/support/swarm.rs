//! For the examples' tests: a small `trawl-swarm` on loopback, in this process,
//! stopped after a bounded time.

use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use trawl_swarm::catalogue::CatalogueConfig;
use trawl_swarm::run::{RunOptions, Running};
use trawl_swarm::server::StopAfter;
use trawl_swarm::{PeerFaults, Swarm, SwarmConfig};

/// A port free for both UDP and TCP right now.
fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("0.0.0.0:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("0.0.0.0", port)).is_ok() {
            return port;
        }
    }
}

/// 2,000 answering nodes holding 2,000 torrents, no loss, running at most `secs`.
pub fn start(secs: u64) -> Running {
    let cfg = SwarmConfig {
        seed: 5,
        nodes: 2_000,
        catalogue: CatalogueConfig {
            torrents: 2_000,
            holders_max: 4,
        },
        loss: 0.0,
        port: free_port(),
        peer_port: free_port(),
        peer_faults: PeerFaults::default(),
        ..SwarmConfig::default()
    };
    let opts = RunOptions {
        threads: 1,
        udp_cores: Vec::new(),
        peer_core: None,
        stop: StopAfter {
            duration: Duration::from_secs(secs),
            packets: 0,
        },
    };
    Running::start(Arc::new(Swarm::build(cfg, 1)), &opts).unwrap()
}

/// Virtual node 0, the bootstrap address.
pub fn bootstrap(running: &Running) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(running.swarm.nodes.addr(0), running.udp_port()))
}
