//! Announce that we hold an infohash: the node looks up the closest nodes,
//! collects their tokens, and sends each an `announce_peer` with our TCP port
//! (or `implied_port`, our UDP port). The stream yields the peers the lookup
//! found on the way and ends with `AnnounceDone`.
//!
//! ```sh
//! cargo run -p trawl-engine --example announce -- 127.1.0.1:36881 INFOHASH 6881
//! ```
//!
//! The first argument is the bootstrap node; loopback is allowed because it is
//! given explicitly (the node's default refuses loopback and private addresses).

use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use trawl_engine::dht::NodeConfig;
use trawl_engine::runtime::{NodeHandle, Outcome, RuntimeConfig, RuntimeError};

#[derive(Debug)]
enum Error {
    Usage,
    BadAddress(String),
    BadInfoHash(String),
    BadPort(String),
    Node(RuntimeError),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage => write!(f, "usage: announce BOOTSTRAP_IP:PORT INFOHASH [TCP_PORT]"),
            Error::BadAddress(a) => write!(f, "bad address {a:?}: expected IP:PORT"),
            Error::BadInfoHash(h) => write!(f, "bad infohash {h:?}: expected 40 hex digits"),
            Error::BadPort(p) => write!(f, "bad port {p:?}: expected 1 to 65535"),
            Error::Node(err) => write!(f, "node: {err}"),
        }
    }
}

impl From<RuntimeError> for Error {
    fn from(err: RuntimeError) -> Self {
        Error::Node(err)
    }
}

struct Request {
    bootstrap: SocketAddr,
    info_hash: [u8; 20],
    /// `None`: `implied_port`.
    port: Option<u16>,
}

fn parse_args(args: &[String]) -> Result<Request, Error> {
    let (bootstrap, hash) = match args {
        [b, h] | [b, h, _] => (b, h),
        _ => return Err(Error::Usage),
    };
    let bootstrap = bootstrap.parse().map_err(|_| Error::BadAddress(bootstrap.clone()))?;
    let info_hash = trawl_storage::import::parse_hex(hash.as_bytes()).map_err(|_| Error::BadInfoHash(hash.clone()))?;
    let port = match args.get(2) {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(port) if port > 0 => Some(port),
            _ => return Err(Error::BadPort(p.clone())),
        },
    };
    Ok(Request {
        bootstrap,
        info_hash,
        port,
    })
}

/// Announces through a node of our own; returns how many of the closest
/// nodes acknowledged (`None` if the announce did not finish within `timeout`).
fn announce(req: &Request, timeout: Duration) -> Result<Option<usize>, Error> {
    let loopback = req.bootstrap.ip().is_loopback();
    let handle = NodeHandle::start(RuntimeConfig {
        bind: if loopback { "127.0.0.1:0" } else { "0.0.0.0:0" }
            .parse()
            .expect("a literal address"),
        node: NodeConfig {
            bootstrap: vec![req.bootstrap],
            allow_loopback: loopback,
            ..NodeConfig::default()
        },
        ..RuntimeConfig::default()
    })?;
    let stream = handle.announce(req.info_hash, req.port)?;
    let outcome = stream.wait_until(Instant::now() + timeout);
    handle.shutdown();
    Ok(match outcome {
        Some(Outcome::AnnounceDone { announced_to }) => Some(announced_to),
        _ => None,
    })
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match parse_args(&args).and_then(|req| announce(&req, Duration::from_secs(30))) {
        Ok(Some(n)) => {
            println!("announced to {n} nodes");
            std::process::ExitCode::SUCCESS
        }
        Ok(None) => {
            eprintln!("announce: did not finish in 30 s");
            std::process::ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("announce: {err}");
            std::process::ExitCode::from(2)
        }
    }
}

#[cfg(test)]
#[path = "support/swarm.rs"]
mod swarm;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_swarm_accepts_our_announces_with_its_tokens() {
        let running = swarm::start(60);
        let req = Request {
            bootstrap: swarm::bootstrap(&running),
            info_hash: [0x5a; 20],
            port: Some(6881),
        };
        let acked = announce(&req, Duration::from_secs(20)).unwrap();
        assert!(acked.is_some_and(|n| n > 0), "{acked:?}");
        running.stop();
        let c = running.wait().unwrap().counters;
        assert!(
            c.answered_announce as usize >= acked.unwrap(),
            "each ack is an accepted announce"
        );
        assert_eq!(c.announce_bad_token, 0, "every token was the one the node gave");
    }

    #[test]
    fn bad_input_is_a_typed_error() {
        let args = |list: &[&str]| parse_args(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        let hash = "0a".repeat(20);
        assert!(matches!(args(&[]), Err(Error::Usage)));
        assert!(matches!(args(&["x", &hash]), Err(Error::BadAddress(_))));
        assert!(matches!(args(&["127.0.0.1:9", "0a"]), Err(Error::BadInfoHash(_))));
        assert!(matches!(args(&["127.0.0.1:9", &hash, "0"]), Err(Error::BadPort(_))));
        assert!(matches!(args(&["127.0.0.1:9", &hash, "70000"]), Err(Error::BadPort(_))));
        let ok = args(&["127.0.0.1:9", &hash]).unwrap();
        assert_eq!((ok.port, ok.info_hash[19]), (None, 0x0a));
    }
}
