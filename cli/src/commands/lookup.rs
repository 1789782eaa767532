//! `trawl lookup`: find peers for one infohash and print them as they arrive, one
//! `IP:PORT` per line on stdout (a summary goes to stderr).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use trawl_engine::runtime::{Outcome, RuntimeConfig};

use super::node::{parse_info_hash, start, NetArgs};
use super::UsageError;

/// Shown after `--help`.
pub const EXAMPLES: &str = "\
Examples:
  trawl lookup 0123456789abcdef0123456789abcdef01234567            # peers, one IP:PORT per line
  trawl lookup <HASH> --timeout 10 --bootstrap 127.1.0.1:36881 --allow-loopback";

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The infohash to look up, 40 hex digits.
    pub info_hash: String,
    #[command(flatten)]
    pub net: NetArgs,
    /// Local UDP port (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Give up after this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    pub timeout: f64,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let info_hash = parse_info_hash(&args.info_hash)?;
    let timeout = positive_secs("--timeout", args.timeout)?;
    let node = start(RuntimeConfig {
        bind: SocketAddr::new(args.net.bind, args.port),
        node: args.net.node_config(false)?,
        ..RuntimeConfig::default()
    })?;
    let deadline = Instant::now() + timeout;
    let peers = node.lookup(info_hash)?;
    let mut found = 0usize;
    while let Some(peer) = peers.next_until(deadline) {
        println!("{peer}");
        found += 1;
    }
    match peers.outcome() {
        Some(Outcome::LookupDone { closest }) => {
            eprintln!("lookup done: {found} peers, {closest} closest nodes answered")
        }
        Some(other) => eprintln!("lookup ended ({other:?}): {found} peers"),
        None => eprintln!("lookup timed out after {:.1} s: {found} peers", timeout.as_secs_f64()),
    }
    node.shutdown();
    Ok(())
}

/// A positive, finite number of seconds from the command line.
pub fn positive_secs(flag: &str, secs: f64) -> Result<Duration, UsageError> {
    if secs.is_finite() && secs > 0.0 {
        Ok(Duration::from_secs_f64(secs))
    } else {
        Err(UsageError(format!(
            "bad {flag} {secs}: expected a positive number of seconds"
        )))
    }
}
