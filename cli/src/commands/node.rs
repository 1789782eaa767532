//! `trawl node`: run a full, answering DHT node until interrupted. Also owns the
//! arguments and parsing that `lookup` and `announce` share with it (bootstrap
//! addresses, bind address, loopback permission, infohash hex).

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use trawl_engine::dht::{NodeConfig, NodeStats};
use trawl_engine::runtime::{NodeHandle, RuntimeConfig};

use super::UsageError;
use crate::metrics::{MetricsServer, Source};

/// The public routers a fresh node or crawl on the real internet starts from.
pub const DEFAULT_BOOTSTRAP: [&str; 4] = [
    "router.bittorrent.com:6881",
    "dht.transmissionbt.com:6881",
    "router.utorrent.com:6881",
    "dht.libtorrent.org:25401",
];

/// Resolves `--bootstrap` entries (the public routers when there are none),
/// keeping the addresses `keep` accepts. An unparsable entry is a usage error;
/// a name that does not resolve is skipped, unless none resolve.
pub fn resolve_bootstrap(entries: &[String], keep: impl Fn(&SocketAddr) -> bool) -> anyhow::Result<Vec<SocketAddr>> {
    let defaults: Vec<String>;
    let entries = if entries.is_empty() {
        defaults = DEFAULT_BOOTSTRAP.iter().map(|s| s.to_string()).collect();
        &defaults
    } else {
        entries
    };
    let mut addrs = Vec::new();
    let mut failures = Vec::new();
    for entry in entries {
        if let Ok(addr) = entry.parse::<SocketAddr>() {
            addrs.push(addr);
            continue;
        }
        let bad = || UsageError(format!("bad bootstrap address {entry:?}: expected HOST:PORT"));
        let (host, port) = entry.rsplit_once(':').ok_or_else(bad)?;
        if host.is_empty() || port.parse::<u16>().is_err() {
            return Err(bad().into());
        }
        match entry.to_socket_addrs() {
            Ok(resolved) => addrs.extend(resolved.filter(|a| keep(a))),
            Err(err) => failures.push(format!("{entry}: {err}")),
        }
    }
    if addrs.is_empty() {
        return Err(UsageError(format!("no usable bootstrap address ({})", failures.join("; "))).into());
    }
    for failure in failures {
        tracing::warn!("skipping bootstrap address {failure}");
    }
    Ok(addrs)
}

/// Network arguments every node-running subcommand takes.
#[derive(clap::Args, Debug)]
pub struct NetArgs {
    /// Node or router to bootstrap from, HOST:PORT (repeatable). Defaults to the
    /// public routers.
    #[arg(long = "bootstrap", value_name = "HOST:PORT")]
    pub bootstrap: Vec<String>,
    /// Accept loopback, private and other non-public addresses (tests on 127.0.0.0/8).
    #[arg(long)]
    pub allow_loopback: bool,
    /// Local IP address to bind the UDP socket to.
    #[arg(long, value_name = "IP", default_value = "0.0.0.0")]
    pub bind: IpAddr,
}

impl NetArgs {
    /// Resolves the bootstrap list (names: the bind address's family only).
    pub fn bootstrap_addrs(&self) -> anyhow::Result<Vec<SocketAddr>> {
        resolve_bootstrap(&self.bootstrap, |a| a.is_ipv4() == self.bind.is_ipv4())
    }

    /// A node configuration with these addresses; read-only unless `answering`.
    pub fn node_config(&self, answering: bool) -> anyhow::Result<NodeConfig> {
        Ok(NodeConfig {
            bootstrap: self.bootstrap_addrs()?,
            read_only: !answering,
            allow_loopback: self.allow_loopback,
            // One node speaks the family of its socket (BEP 32).
            ipv6: self.bind.is_ipv6(),
            ..NodeConfig::default()
        })
    }
}

/// Parses a 40-digit hex infohash.
pub fn parse_info_hash(text: &str) -> Result<[u8; 20], UsageError> {
    let bad = || UsageError(format!("bad infohash {text:?}: expected 40 hex digits"));
    let bytes = text.as_bytes();
    if bytes.len() != 40 {
        return Err(bad());
    }
    let mut out = [0u8; 20];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16).ok_or_else(bad)?;
        let lo = (pair[1] as char).to_digit(16).ok_or_else(bad)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Ok(out)
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Starts a node, mapping a bind failure to one clear line. Checks the
/// process limits first, so a low one is named rather than surfacing as an
/// io_uring error.
pub fn start(config: RuntimeConfig) -> anyhow::Result<NodeHandle> {
    trawl_engine::ops::limits::check(1, 0)?;
    let bind = config.bind;
    NodeHandle::start(config).with_context(|| format!("cannot start a DHT node on {bind}"))
}

/// Shown after `--help`.
pub const EXAMPLES: &str = "\
Examples:
  trawl node                                   # answer on UDP 6881, bootstrap from the public routers
  trawl node --port 0 --duration 600           # any free port, stop after 10 minutes
  trawl node --metrics 127.0.0.1:9477          # and serve Prometheus metrics at /metrics
  trawl node --bind 127.0.0.1 --port 36881 --bootstrap 127.1.0.1:36881 --allow-loopback";

#[derive(clap::Args, Debug)]
pub struct Args {
    /// UDP port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 6881)]
    pub port: u16,
    #[command(flatten)]
    pub net: NetArgs,
    /// Stop after this many seconds (default: run until SIGINT or SIGTERM).
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
    /// Print a statistics line this often, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    pub stats_every: f64,
    /// Pin the node's executor to this CPU.
    #[arg(long)]
    pub cpu: Option<usize>,
    /// Serve Prometheus metrics (the `trawl_node_*` families) at
    /// http://ADDR/metrics, for example 127.0.0.1:9477.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let duration = match args.duration {
        Some(secs) if !(secs.is_finite() && secs >= 0.0) => {
            return Err(UsageError(format!("bad --duration {secs}")).into())
        }
        Some(secs) => Some(Duration::from_secs_f64(secs)),
        None => None,
    };
    if !(args.stats_every.is_finite() && args.stats_every > 0.0) {
        return Err(UsageError(format!("bad --stats-every {}", args.stats_every)).into());
    }
    let config = RuntimeConfig {
        bind: SocketAddr::new(args.net.bind, args.port),
        node: args.net.node_config(true)?,
        cpu: args.cpu,
        ..RuntimeConfig::default()
    };
    // Signals are blocked before the executor thread exists, so it inherits the
    // mask and only this thread ever sees SIGINT/SIGTERM.
    let signals = Signals::block()?;
    let node = Arc::new(start(config)?);
    let metrics = match args.metrics {
        Some(addr) => {
            let node = Arc::clone(&node);
            let source = Source::Node(Arc::new(move || node.stats(Duration::from_secs(1)).ok()));
            let server = MetricsServer::start(addr, source)?;
            tracing::info!(addr = %server.local_addr(), "serving metrics at /metrics");
            Some(server)
        }
        None => None,
    };
    println!(
        "{}",
        serde_json::json!({"event": "ready", "addr": node.local_addr().to_string(), "id": hex(&node.id())})
    );

    let started = Instant::now();
    let stop_at = duration.map(|d| started + d);
    let every = Duration::from_secs_f64(args.stats_every);
    let mut next_stats = started + every;
    let reason = loop {
        let now = Instant::now();
        let wake = stop_at.map_or(next_stats, |s| s.min(next_stats));
        if let Some(signal) = signals.wait(wake.saturating_duration_since(now)) {
            break format!("signal {signal}");
        }
        let now = Instant::now();
        if stop_at.is_some_and(|s| now >= s) {
            break "duration".to_string();
        }
        if now >= next_stats {
            next_stats = now + every;
            if let Ok(stats) = node.stats(Duration::from_secs(1)) {
                println!("{}", stats_json("stats", &stats));
            }
        }
    };
    let stats = node.stats(Duration::from_secs(1)).ok();
    // The server thread holds the other reference; joining it leaves ours alone.
    drop(metrics);
    if let Ok(node) = Arc::try_unwrap(node) {
        node.shutdown();
    }
    let mut line = stats.map_or_else(|| serde_json::json!({}), |s| stats_json("stopped", &s));
    line["reason"] = reason.into();
    println!("{line}");
    Ok(())
}

fn stats_json(event: &str, s: &NodeStats) -> serde_json::Value {
    serde_json::json!({
        "event": event,
        "routing_nodes": s.routing_nodes,
        "peers_stored": s.peers_stored,
        "infohashes_stored": s.infohashes_stored,
        "datagrams_in": s.datagrams_in,
        "datagrams_out": s.datagrams_out,
        "queries_received": s.queries_received,
        "queries_answered": s.queries_answered,
        "in_flight": s.in_flight,
    })
}

/// SIGINT and SIGTERM, blocked in every thread and taken synchronously here.
struct Signals {
    set: libc::sigset_t,
}

impl Signals {
    fn block() -> anyhow::Result<Signals> {
        // SAFETY: plain libc calls on a sigset_t we own; pthread_sigmask only
        // changes the calling thread's mask (inherited by threads spawned later).
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGINT);
            libc::sigaddset(&mut set, libc::SIGTERM);
            let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            anyhow::ensure!(rc == 0, "cannot block signals: error {rc}");
            Ok(Signals { set })
        }
    }

    /// Waits up to `timeout` for a signal; returns its number if one came.
    fn wait(&self, timeout: Duration) -> Option<i32> {
        let ts = libc::timespec {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
        };
        // SAFETY: `set` and `ts` are valid for the call; no siginfo is requested.
        let signal = unsafe { libc::sigtimedwait(&self.set, std::ptr::null_mut(), &ts) };
        (signal > 0).then_some(signal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_hash_hex_parses_and_rejects() {
        let ih = parse_info_hash("0123456789abcdefABCDEF0123456789abcdef01").unwrap();
        assert_eq!(ih[0], 0x01);
        assert_eq!(ih[7], 0xef);
        assert_eq!(ih[8], 0xab);
        assert_eq!(hex(&ih), "0123456789abcdefabcdef0123456789abcdef01");
        for bad in [
            "",
            "0123",
            "0123456789abcdef0123456789abcdef0123456g",
            "é123456789abcdef0123456789abcdef0123456",
        ] {
            assert!(parse_info_hash(bad).is_err(), "{bad:?} must be rejected");
        }
    }

    #[test]
    fn bootstrap_literals_parse_and_garbage_is_a_usage_error() {
        let net = |list: &[&str]| NetArgs {
            bootstrap: list.iter().map(|s| s.to_string()).collect(),
            allow_loopback: true,
            bind: "0.0.0.0".parse().unwrap(),
        };
        let addrs = net(&["127.0.0.7:6881", "127.1.2.3:1"]).bootstrap_addrs().unwrap();
        assert_eq!(
            addrs,
            vec!["127.0.0.7:6881".parse().unwrap(), "127.1.2.3:1".parse().unwrap()]
        );
        for bad in ["nonsense", "127.0.0.1:99999", ":80"] {
            let err = net(&[bad]).bootstrap_addrs().unwrap_err();
            assert!(err.downcast_ref::<UsageError>().is_some(), "{bad:?}: {err}");
        }
    }
}
