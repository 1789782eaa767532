//! Embed a DHT node and look up the peers of an infohash: start a
//! [`NodeHandle`] (its own executor thread and UDP socket), ask, and read the
//! peers from the stream as they arrive.
//!
//! ```sh
//! # against a local swarm: cargo run --release -p trawl-swarm -- --nodes 2000 --torrents 2000
//! cargo run -p trawl-engine --example lookup -- --bootstrap 127.1.0.1:36881 --allow-loopback INFOHASH
//! ```
//!
//! Without `--bootstrap` the node starts from the public routers, and without
//! `--allow-loopback` it refuses loopback and private addresses, as a node on
//! the internet should.

use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use trawl_engine::dht::NodeConfig;
use trawl_engine::runtime::{NodeHandle, Outcome, RuntimeConfig, RuntimeError};

/// What can go wrong, typed: nothing here panics on bad input.
#[derive(Debug)]
enum Error {
    Usage(String),
    BadAddress(String),
    BadInfoHash(String),
    Node(RuntimeError),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(msg) => write!(f, "{msg}"),
            Error::BadAddress(a) => write!(f, "bad address {a:?}: expected IP:PORT"),
            Error::BadInfoHash(h) => write!(f, "bad infohash {h:?}: expected 40 hex digits"),
            Error::Node(err) => write!(f, "node: {err}"),
        }
    }
}

impl From<RuntimeError> for Error {
    fn from(err: RuntimeError) -> Self {
        Error::Node(err)
    }
}

fn parse_info_hash(text: &str) -> Result<[u8; 20], Error> {
    trawl_storage::import::parse_hex(text.as_bytes()).map_err(|_| Error::BadInfoHash(text.to_owned()))
}

/// What the example was asked to do.
struct Request {
    bootstrap: Vec<SocketAddr>,
    allow_loopback: bool,
    info_hash: [u8; 20],
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Request, Error> {
    let (mut bootstrap, mut allow_loopback, mut info_hash) = (Vec::new(), false, None);
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--bootstrap" => {
                let value = args
                    .next()
                    .ok_or_else(|| Error::Usage("--bootstrap needs IP:PORT".into()))?;
                bootstrap.push(value.parse().map_err(|_| Error::BadAddress(value))?);
            }
            "--allow-loopback" => allow_loopback = true,
            _ if info_hash.is_none() => info_hash = Some(parse_info_hash(&arg)?),
            _ => return Err(Error::Usage(format!("unexpected argument {arg:?}"))),
        }
    }
    let info_hash = info_hash
        .ok_or_else(|| Error::Usage("usage: lookup [--bootstrap IP:PORT] [--allow-loopback] INFOHASH".into()))?;
    Ok(Request {
        bootstrap,
        allow_loopback,
        info_hash,
    })
}

/// Looks `info_hash` up through a node of our own; returns the peers found
/// and how the lookup ended (`None` if it did not end within `timeout`).
fn lookup(req: &Request, timeout: Duration) -> Result<(Vec<SocketAddr>, Option<Outcome>), Error> {
    let mut node = NodeConfig {
        allow_loopback: req.allow_loopback,
        ..NodeConfig::default()
    };
    if !req.bootstrap.is_empty() {
        node.bootstrap = req.bootstrap.clone();
    }
    let bind = if req.allow_loopback { "127.0.0.1:0" } else { "0.0.0.0:0" };
    let handle = NodeHandle::start(RuntimeConfig {
        bind: bind.parse().expect("a literal address"),
        node,
        ..RuntimeConfig::default()
    })?;
    let peers_stream = handle.lookup(req.info_hash)?;
    let deadline = Instant::now() + timeout;
    let mut peers = Vec::new();
    // Peers arrive as the lookup goes; the stream ends when it converges.
    while let Some(peer) = peers_stream.next_until(deadline) {
        peers.push(peer);
    }
    let outcome = peers_stream.outcome();
    handle.shutdown();
    Ok((peers, outcome))
}

fn main() -> std::process::ExitCode {
    let result = parse_args(std::env::args().skip(1)).and_then(|req| lookup(&req, Duration::from_secs(30)));
    match result {
        Ok((peers, outcome)) => {
            for peer in &peers {
                println!("{peer}");
            }
            eprintln!("{} peers; {outcome:?}", peers.len());
            std::process::ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("lookup: {err}");
            std::process::ExitCode::from(2)
        }
    }
}

#[cfg(test)]
#[path = "support/swarm.rs"]
mod swarm;

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;

    #[test]
    fn finds_the_holders_of_a_swarm_torrent() {
        let running = swarm::start(60);
        let s = running.swarm.clone();
        // A torrent two or more live nodes hold.
        let mut buf = [0u32; 16];
        let (t, holders) = (0..2_000)
            .map(|t| (t, s.catalogue.holders(t, &mut buf).to_vec()))
            .find(|(_, h)| h.iter().filter(|&&n| s.nodes.is_alive(n)).count() >= 2)
            .expect("such a torrent");
        let req = Request {
            bootstrap: vec![swarm::bootstrap(&running)],
            allow_loopback: true,
            info_hash: *s.catalogue.infohash(t),
        };
        let (peers, outcome) = lookup(&req, Duration::from_secs(20)).unwrap();
        assert!(
            matches!(outcome, Some(Outcome::LookupDone { closest }) if closest > 0),
            "{outcome:?}"
        );
        let holder_ips: Vec<IpAddr> = holders.iter().map(|&n| IpAddr::V4(s.nodes.addr(n))).collect();
        assert!(
            !peers.is_empty() && peers.iter().all(|p| holder_ips.contains(&p.ip())),
            "{peers:?} vs {holder_ips:?}"
        );
        running.stop();
        let counters = running.wait().unwrap().counters;
        assert!(counters.answered_get_peers_values > 0, "the holders were asked");
    }

    #[test]
    fn bad_input_is_a_typed_error() {
        let args = |list: &[&str]| parse_args(list.iter().map(|s| s.to_string()));
        assert!(matches!(
            args(&["--bootstrap", "nowhere", "00"]),
            Err(Error::BadAddress(_))
        ));
        assert!(matches!(args(&["abc"]), Err(Error::BadInfoHash(_))));
        assert!(matches!(args(&[&"zz".repeat(20)]), Err(Error::BadInfoHash(_))));
        assert!(matches!(args(&["é".repeat(20).as_str()]), Err(Error::BadInfoHash(_))));
        assert!(matches!(args(&[]), Err(Error::Usage(_))));
        assert!(matches!(args(&["--bootstrap"]), Err(Error::Usage(_))));
        let ok = args(&["--allow-loopback", "--bootstrap", "127.0.0.1:9", &"0a".repeat(20)]).unwrap();
        assert_eq!(
            (ok.info_hash[0], ok.bootstrap.len(), ok.allow_loopback),
            (0x0a, 1, true)
        );
    }
}
