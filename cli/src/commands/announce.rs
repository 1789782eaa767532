//! `trawl announce`: announce that a peer at our address holds an infohash, to the
//! closest DHT nodes that gave us a token, then exit. Prints one JSON line.

use std::net::SocketAddr;
use std::time::Instant;

use trawl_engine::runtime::{Outcome, RuntimeConfig};

use super::lookup::positive_secs;
use super::node::{hex, parse_info_hash, start, NetArgs};
use super::UsageError;

/// Shown after `--help`.
pub const EXAMPLES: &str = "\
Examples:
  trawl announce 0123456789abcdef0123456789abcdef01234567 --port 51413   # peers connect to TCP 51413
  trawl announce <HASH> --port 51413 --implied-port                       # announce the DHT socket's port";

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The infohash to announce, 40 hex digits.
    pub info_hash: String,
    /// The TCP port peers should connect to.
    #[arg(long)]
    pub port: u16,
    /// Ask nodes to store our UDP source port instead (BEP 5 `implied_port`); the
    /// DHT socket then binds `--port` so both are the same.
    #[arg(long)]
    pub implied_port: bool,
    /// Local UDP port of the DHT socket (default: any; with --implied-port: --port).
    #[arg(long)]
    pub dht_port: Option<u16>,
    #[command(flatten)]
    pub net: NetArgs,
    /// Give up after this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    pub timeout: f64,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let info_hash = parse_info_hash(&args.info_hash)?;
    let timeout = positive_secs("--timeout", args.timeout)?;
    if args.port == 0 {
        return Err(UsageError("bad --port 0: peers cannot connect to port 0".into()).into());
    }
    let udp_port = match (args.implied_port, args.dht_port) {
        (true, Some(p)) if p != args.port => {
            return Err(
                UsageError("--implied-port announces the DHT port, so --dht-port must equal --port".into()).into(),
            )
        }
        (true, _) => args.port,
        (false, p) => p.unwrap_or(0),
    };
    let node = start(RuntimeConfig {
        bind: SocketAddr::new(args.net.bind, udp_port),
        node: args.net.node_config(false)?,
        ..RuntimeConfig::default()
    })?;
    let announce_port = (!args.implied_port).then_some(args.port);
    let stream = node.announce(info_hash, announce_port)?;
    let outcome = stream.wait_until(Instant::now() + timeout);
    // After shutdown the stream is finished, so collecting cannot block.
    node.shutdown();
    let other_peers: Vec<String> = stream.map(|p| p.to_string()).collect();
    let announced_to = match outcome {
        Some(Outcome::AnnounceDone { announced_to }) => announced_to,
        Some(_) | None => 0,
    };
    println!(
        "{}",
        serde_json::json!({
            "event": "announced",
            "info_hash": hex(&info_hash),
            "port": args.port,
            "implied_port": args.implied_port,
            "announced_to": announced_to,
            "peers_seen": other_peers,
        })
    );
    anyhow::ensure!(
        announced_to > 0,
        "the announce reached no node within {:.1} s",
        timeout.as_secs_f64()
    );
    Ok(())
}
