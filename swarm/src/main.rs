//! `trawl-swarm`: a simulated mainline DHT on 127.0.0.0/8.
//!
//! Prints `{"event":"ready",...}` once it answers, optional `{"event":"stats",...}`
//! lines, and as its last line one JSON object with every counter. It stops by
//! itself after `--duration` seconds or `--max-packets` datagrams.
//!
//! `--preset fast` (the default) is the idealised swarm of the wire benchmarks;
//! `--preset mainline` models the real DHT (docs/swarm.md); flags override either.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use serde_json::json;
use trawl_swarm::model::{Preset, TimeScale};
use trawl_swarm::sys;
use trawl_swarm::{self as swarm, catalogue::CatalogueConfig, politeness::RateLimit};
use trawl_swarm::{run, server::StopAfter, PeerFaults, Swarm, SwarmConfig};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "trawl-swarm",
    about = "A loopback DHT swarm simulator (127.0.0.0/8 only)",
    args_override_self = true
)]
struct Args {
    /// `fast`: idealised nodes for wire benchmarks (the default, what
    /// `trawl-bench crawl` measures against); `mainline`: libtorrent, no-BEP 51
    /// and NAT nodes, churn, peer round trips and dead peers as published
    /// measurements describe the real DHT (docs/swarm.md). Flags below override it.
    #[arg(long, default_value = "fast", value_parser = parse_preset)]
    preset: Preset,
    /// Virtual DHT nodes (at most about 16.5 million).
    #[arg(long, default_value_t = 100_000)]
    nodes: u32,
    /// Catalogue torrents.
    #[arg(long, default_value_t = 1_000_000)]
    torrents: u32,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// UDP port of every virtual node.
    #[arg(long, default_value_t = swarm::DEFAULT_PORT)]
    port: u16,
    /// TCP port of every virtual metadata peer.
    #[arg(long, default_value_t = swarm::DEFAULT_PEER_PORT)]
    peer_port: u16,
    /// UDP threads, one SO_REUSEPORT socket each.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Pin UDP thread i to the i-th of these cores (comma-separated).
    #[arg(long, value_delimiter = ',')]
    cores: Vec<usize>,
    /// Pin the metadata peer thread to this core.
    #[arg(long)]
    peer_core: Option<usize>,
    /// Each torrent is held by 1..=N virtual nodes.
    #[arg(long, default_value_t = 4)]
    holders_max: u32,
    /// Fraction of nodes that never answer (fast: 0.1, mainline: 0, its NAT nodes play this part).
    #[arg(long)]
    dead: Option<f64>,
    /// Churn: fraction of live nodes that alternately die and come back (fast: 0, mainline: 0.44).
    #[arg(long)]
    churn: Option<f64>,
    /// Churn: seconds a churning node stays up, then down (fast: 60, mainline: 43,200 / time scale).
    #[arg(long)]
    churn_period: Option<f64>,
    /// Fraction of nodes that answer late.
    #[arg(long, default_value_t = 0.05)]
    slow: f64,
    #[arg(long, default_value_t = 500)]
    slow_delay_ms: u64,
    /// Fraction of fast nodes without BEP 51 (error 204 to sample_infohashes; fast: 0.3).
    #[arg(long)]
    no_bep51: Option<f64>,
    /// Fast nodes' sample intervals are spread uniformly over 0..=this many seconds.
    #[arg(long, default_value_t = 21_600)]
    interval_max: u32,
    /// Share of nodes playing libtorrent 2.0 (mainline: 0.3).
    #[arg(long)]
    mix_libtorrent: Option<f64>,
    /// Share of nodes without BEP 51 (error 204; mainline: 0.3).
    #[arg(long)]
    mix_no_bep51: Option<f64>,
    /// Share of nodes behind NAT, listed but never answering (mainline: 0.4).
    #[arg(long)]
    mix_nat: Option<f64>,
    /// Divides libtorrent's 21,600 s sample interval (and mainline's churn period): mainline 360.
    #[arg(long)]
    time_scale: Option<f64>,
    /// libtorrent nodes' reply budget in bytes/s (dht_upload_rate_limit, 8,000; 0: none).
    #[arg(long)]
    upload_rate_limit: Option<u32>,
    /// libtorrent nodes' dos blocker in messages/s (dht_block_ratelimit, 5; 0: off).
    #[arg(long)]
    block_ratelimit: Option<u32>,
    /// Metadata peers' round trip, uniform in min..=max ms (fast: 0, mainline: 50..300).
    #[arg(long)]
    rtt_min_ms: Option<u64>,
    #[arg(long)]
    rtt_max_ms: Option<u64>,
    /// Fraction of metadata peers that never accept (the dial times out; mainline: 0.3).
    #[arg(long)]
    never_accept: Option<f64>,
    /// Probability that a query is lost.
    #[arg(long, default_value_t = 0.01)]
    loss: f64,
    /// Per-(sender IP, node) limit in queries/s; 0 turns the limit off.
    #[arg(long, default_value_t = 0.0)]
    rate_limit: f64,
    /// Token bucket size for --rate-limit.
    #[arg(long, default_value_t = 50.0)]
    rate_burst: f64,
    /// Fractions of metadata peers that reject, stall, or corrupt pieces.
    #[arg(long, default_value_t = 0.05)]
    reject: f64,
    #[arg(long, default_value_t = 0.05)]
    stall: f64,
    #[arg(long, default_value_t = 0.05)]
    corrupt: f64,
    /// Stop after this many seconds.
    #[arg(long, default_value_t = 60.0)]
    duration: f64,
    /// Stop after this many datagrams received (0: no bound).
    #[arg(long, default_value_t = 0)]
    max_packets: u64,
    /// Write the ground truth as JSON lines here before answering.
    #[arg(long)]
    manifest: Option<PathBuf>,
    /// The run length the manifest's `discoverable` assumes, in seconds
    /// (default: --duration), e.g. four sampling intervals of the crawl.
    #[arg(long)]
    truth_secs: Option<f64>,
    /// Print counters every this many seconds (0: only at the end).
    #[arg(long, default_value_t = 0.0)]
    stats_every: f64,
    /// Virtual downloaders: lookups per node per second (mainline: 10/900; 0: none).
    #[arg(long)]
    lookups_per_node_s: Option<f64>,
    /// Share of downloader lookups that announce (mainline: 0.8).
    #[arg(long)]
    announce_share: Option<f64>,
    /// At the end, write what the downloaders sent to crawler identities, one
    /// JSON line per infohash (the ground truth of what answering can hear).
    #[arg(long)]
    harvest_out: Option<PathBuf>,
    /// Also stop (and report) when standard input reaches end of file, so a
    /// harness can end the run when its measurement is over.
    #[arg(long)]
    stop_on_eof: bool,
}

/// The churn period of `--preset fast` when `--churn` is given alone.
const FAST_CHURN_PERIOD_MS: u64 = 60_000;

fn parse_preset(s: &str) -> Result<Preset, String> {
    Preset::parse(s).ok_or_else(|| format!("unknown preset {s:?} (fast or mainline)"))
}

/// The preset's configuration with every flag given on top.
fn config(a: &Args) -> SwarmConfig {
    let mut c = SwarmConfig {
        seed: a.seed,
        nodes: a.nodes,
        catalogue: CatalogueConfig {
            torrents: a.torrents,
            holders_max: a.holders_max,
        },
        loss: a.loss,
        slow_delay_ms: a.slow_delay_ms,
        rate_limit: (a.rate_limit > 0.0).then_some(RateLimit {
            rate: a.rate_limit,
            burst: a.rate_burst,
        }),
        port: a.port,
        peer_port: a.peer_port,
        peer_faults: PeerFaults {
            reject: a.reject,
            stall: a.stall,
            corrupt: a.corrupt,
        },
        ..SwarmConfig::default()
    };
    c.apply_preset(a.preset);
    let t = &mut c.traits;
    t.slow_fraction = a.slow;
    t.interval_max = a.interval_max;
    set(&mut t.dead_fraction, a.dead);
    set(&mut t.no_bep51_fraction, a.no_bep51);
    set(&mut t.churn_fraction, a.churn);
    if let Some(s) = a.time_scale {
        c.time_scale = TimeScale(s);
    }
    let t = &mut c.traits;
    if let Some(p) = a.churn_period {
        t.churn_period_ms = (p * 1000.0) as u64;
    } else if a.preset == Preset::Fast {
        t.churn_period_ms = FAST_CHURN_PERIOD_MS;
    } else {
        t.churn_period_ms = c.time_scale.scaled_ms(swarm::mainline::CHURN_PERIOD_S);
    }
    if t.churn_fraction <= 0.0 {
        t.churn_period_ms = 0;
    }
    set(&mut c.mix.libtorrent, a.mix_libtorrent);
    set(&mut c.mix.no_bep51, a.mix_no_bep51);
    set(&mut c.mix.nat, a.mix_nat);
    set(&mut c.libtorrent.upload_rate_limit, a.upload_rate_limit);
    set(&mut c.libtorrent.block_ratelimit, a.block_ratelimit);
    set(&mut c.peer_rtt.min_ms, a.rtt_min_ms);
    set(&mut c.peer_rtt.max_ms, a.rtt_max_ms);
    c.peer_rtt.max_ms = c.peer_rtt.max_ms.max(c.peer_rtt.min_ms);
    set(&mut c.never_accept, a.never_accept);
    set(&mut c.downloads.lookups_per_node_s, a.lookups_per_node_s);
    set(&mut c.downloads.announce_share, a.announce_share);
    c
}

fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
    }
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let config = config(&a);
    let t0 = Instant::now();
    let swarm = Arc::new(Swarm::build(config, sys::online_cores()));
    let startup_s = t0.elapsed().as_secs_f64();
    let manifest = match &a.manifest {
        Some(path) => Some(
            run::write_manifest(
                &swarm,
                path,
                Duration::from_secs_f64(a.truth_secs.unwrap_or(a.duration).max(0.0)),
            )
            .with_context(|| format!("writing {}", path.display()))?,
        ),
        None => None,
    };
    let opts = run::RunOptions {
        threads: a.threads,
        udp_cores: a.cores.clone(),
        peer_core: a.peer_core,
        stop: StopAfter {
            duration: Duration::from_secs_f64(a.duration.max(0.0)),
            packets: a.max_packets,
        },
    };
    let running = run::Running::start(swarm, &opts).context("binding the swarm's sockets")?;
    if a.stop_on_eof {
        let stop = running.stop_flag();
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
        });
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{}",
        json!({"event": "ready", "udp_port": running.udp_port(), "peer_port": running.peer_port(),
               "dark_peer_port": running.dark_peer_port(), "preset": a.preset,
               "nodes": a.nodes, "torrents": a.torrents, "startup_s": startup_s, "manifest": manifest})
    )?;
    out.flush()?;
    let answering = Instant::now();
    if a.stats_every > 0.0 {
        let every = Duration::from_secs_f64(a.stats_every);
        let mut next = Instant::now() + every;
        while !running.is_finished() {
            std::thread::sleep(Duration::from_millis(20));
            if Instant::now() >= next {
                next += every;
                let (udp, peers) = running.snapshot();
                let cpu = sys::proc_stat(sys::Pid::This)
                    .map(|s| s.cpu.as_secs_f64())
                    .unwrap_or(0.0);
                let t = answering.elapsed().as_secs_f64();
                writeln!(
                    out,
                    "{}",
                    json!({"event": "stats", "t": t, "cpu_s": cpu, "counters": udp, "peers": peers})
                )?;
                out.flush()?;
            }
        }
    }
    let swarm = running.swarm.clone();
    let report = running.wait()?;
    if let Some(path) = &a.harvest_out {
        run::write_harvest(&swarm, path).with_context(|| format!("writing {}", path.display()))?;
    }
    let mut line = serde_json::to_value(&report)?;
    line["event"] = json!("final");
    line["startup_s"] = json!(startup_s);
    writeln!(out, "{line}")?;
    Ok(())
}
