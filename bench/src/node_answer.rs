//! `node-answer`: answers per second and per CPU-second of a full DHT node under a
//! saturating loopback load, for trawl, libtorrent and the `mainline` crate, one
//! after another in the same run, and trawl's answering crawl (`trawl-crawl`:
//! `trawl crawl --no-read-only` on one core with no bootstrap, so it only answers).
//!
//! Each node runs in its own process pinned to one core (`--node-cpu`); the load
//! generator runs in this process pinned to the other core (`--load-cpu`) and
//! sends the same mix of `ping`/`find_node`/`get_peers` from many 127.10.x.y
//! sources to each. CPU time comes from the node process's `/proc/PID/stat`.
//! Answers per CPU-second is the fair figure on a 2-core machine where the wire
//! (loopback) is shared by the node and the generator.
//!
//! Rate limits are raised on every node, so the figure measures answering work,
//! not throttling: libtorrent via `scripts/lt_node.py --raise-limits`, trawl via
//! its `AnswerLimits`; `mainline` has none. The trawl and mainline nodes are this
//! binary re-run with the hidden `--serve` flag.

mod loadgen;

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::sys::{self, ChildGuard};
use loadgen::{Counts, LoadGen};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Seconds of measurement per node.
    #[arg(long, default_value_t = 5.0)]
    pub seconds: f64,
    /// Seconds of load before measuring (routing tables fill, caches warm).
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// Distinct source addresses of the load.
    #[arg(long, default_value_t = 4096)]
    pub sources: usize,
    /// Core the node under test is pinned to.
    #[arg(long, default_value_t = 1)]
    pub node_cpu: usize,
    /// Core the load generator is pinned to.
    #[arg(long, default_value_t = 0)]
    pub load_cpu: usize,
    /// First UDP port of the nodes under test (each takes the next one).
    #[arg(long, default_value_t = 27881)]
    pub port: u16,
    /// Only these nodes (comma-separated: trawl, libtorrent, mainline, trawl-crawl:
    /// the answering crawl on one core).
    #[arg(long, value_delimiter = ',', default_values_t = ["trawl".to_string(), "libtorrent".to_string(), "mainline".to_string(), "trawl-crawl".to_string()])]
    pub only: Vec<String>,
    /// Internal: run one node under test in this process (trawl or mainline).
    #[arg(long, hide = true)]
    pub serve: Option<String>,
    /// Internal: the address the served node binds.
    #[arg(long, hide = true)]
    pub serve_addr: Option<SocketAddrV4>,
}

/// One node's figures.
#[derive(Clone, Copy, Debug, Default)]
struct Figures {
    answers_per_s: f64,
    answers_per_cpu_s: f64,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if let Some(which) = args.serve.as_deref() {
        let addr = args.serve_addr.context("--serve needs --serve-addr")?;
        return serve(which, addr, args.node_cpu);
    }
    anyhow::ensure!(args.seconds > 0.0 && args.warmup >= 0.0, "--seconds must be positive");
    sys::pin_current_thread(args.load_cpu).context("pinning the load generator")?;
    println!(
        "node-answer: {} sources, mix ping/find_node/get_peers 1:1:1, {:.1} s warm-up + {:.1} s per node; node on core {}, load on core {}",
        args.sources, args.warmup, args.seconds, args.node_cpu, args.load_cpu
    );

    let mut results = serde_json::Map::new();
    results.insert("bench".into(), "node-answer".into());
    let names = ["trawl", "libtorrent", "mainline", "trawl-crawl"];
    for (i, name) in names.iter().enumerate() {
        let key_s = format!("{name}_answers_per_s");
        let key_cpu = format!("{name}_answers_per_cpu_s");
        if !args.only.iter().any(|o| o == name) {
            results.insert(key_s, serde_json::Value::Null);
            results.insert(key_cpu, serde_json::Value::Null);
            continue;
        }
        let addr = SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 2 + i as u8), args.port + i as u16);
        let figures = measure(name, addr, &args).with_context(|| format!("measuring {name}"))?;
        results.insert(key_s, round(figures.answers_per_s).into());
        results.insert(key_cpu, round(figures.answers_per_cpu_s).into());
    }
    println!("{}", serde_json::Value::Object(results));
    Ok(())
}

fn round(x: f64) -> f64 {
    x.round()
}

fn measure(name: &str, addr: SocketAddrV4, args: &Args) -> anyhow::Result<Figures> {
    let child = spawn_node(name, addr, args)?;
    let mut load = LoadGen::new(args.sources, 0x5eed ^ u64::from(addr.port()))?;
    if !load.probe(addr, Duration::from_secs(10))? {
        bail!("{name} at {addr} did not answer a ping within 10 s");
    }
    load.run(addr, Instant::now() + Duration::from_secs_f64(args.warmup))?;

    let cpu0 = child.stat()?.cpu;
    let t0 = Instant::now();
    let counts = load.run(addr, t0 + Duration::from_secs_f64(args.seconds))?;
    let wall = t0.elapsed();
    let stat = child.stat()?;
    let cpu = stat.cpu.saturating_sub(cpu0);
    drop(child);

    let figures = Figures {
        answers_per_s: counts.replies as f64 / wall.as_secs_f64(),
        answers_per_cpu_s: if cpu.is_zero() {
            0.0
        } else {
            counts.replies as f64 / cpu.as_secs_f64()
        },
    };
    report(name, &counts, wall, cpu, stat.peak_rss_bytes, &figures);
    Ok(figures)
}

fn report(name: &str, c: &Counts, wall: Duration, cpu: Duration, peak_rss: u64, f: &Figures) {
    println!(
        "{name:>10}: {:>9.0} answers/s, {:>9.0} answers/CPU-s ({:.2} us CPU/answer); sent {} queries, {} answers ({:.1}%), {} errors, {} undecodable; node asked us {} queries; node CPU {:.2} s over {:.2} s wall; peak RSS {} MiB",
        f.answers_per_s,
        f.answers_per_cpu_s,
        if c.replies == 0 { 0.0 } else { cpu.as_secs_f64() * 1e6 / c.replies as f64 },
        c.queries_sent,
        c.replies,
        if c.queries_sent == 0 { 0.0 } else { 100.0 * c.replies as f64 / c.queries_sent as f64 },
        c.errors,
        c.undecodable,
        c.node_queries,
        cpu.as_secs_f64(),
        wall.as_secs_f64(),
        peak_rss >> 20,
    );
}

fn spawn_node(name: &str, addr: SocketAddrV4, args: &Args) -> anyhow::Result<ChildGuard> {
    let lifetime = (args.warmup + args.seconds + 30.0).ceil();
    let mut cmd = match name {
        "libtorrent" => {
            let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/lt_node.py");
            let mut cmd = Command::new("/usr/bin/python3");
            cmd.arg(script)
                .args(["--bind", &addr.ip().to_string(), "--port", &addr.port().to_string()])
                .args(["--raise-limits", "--cpu", &args.node_cpu.to_string()])
                .args(["--duration", &lifetime.to_string()]);
            cmd
        }
        "trawl" | "mainline" | "trawl-crawl" => {
            let mut cmd = Command::new(std::env::current_exe()?);
            cmd.args(["node-answer", "--serve", name, "--serve-addr", &addr.to_string()])
                .args(["--node-cpu", &args.node_cpu.to_string()]);
            cmd
        }
        other => bail!("unknown node {other:?}"),
    };
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::inherit());
    let mut child = ChildGuard::spawn(&mut cmd).with_context(|| format!("starting the {name} node"))?;
    // Each node prints one line once it listens; wait for it.
    let stdout = child.child_mut().stdout.take().context("child stdout")?;
    let (tx, rx) = crossbeam_channel::bounded(1);
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let first = lines.next().and_then(Result::ok);
        let _ = tx.send(first);
        // Keep draining so the child never blocks on a full pipe.
        for _ in lines {}
    });
    match rx.recv_timeout(Duration::from_secs(10)) {
        Ok(Some(line)) if line.contains("ready") => Ok(child),
        Ok(line) => bail!("{name} node did not start: {line:?}"),
        Err(_) => bail!("{name} node printed nothing within 10 s"),
    }
}

/// The child side: run one node until killed.
fn serve(which: &str, addr: SocketAddrV4, cpu: usize) -> anyhow::Result<()> {
    match which {
        "trawl" => {
            use trawl_engine::dht::{AnswerLimits, NodeConfig};
            use trawl_engine::runtime::{NodeHandle, RuntimeConfig};
            let node = NodeHandle::start(RuntimeConfig {
                bind: SocketAddr::V4(addr),
                node: NodeConfig {
                    read_only: false,
                    allow_loopback: true,
                    answer_limits: AnswerLimits {
                        per_ip_rate: 1e9,
                        per_ip_burst: 1e9,
                        ..AnswerLimits::default()
                    },
                    ..NodeConfig::default()
                },
                cpu: Some(cpu),
                ..RuntimeConfig::default()
            })?;
            println!("ready {}", node.local_addr());
            park_forever()
        }
        "mainline" => {
            // Threads inherit the affinity of the thread that creates them.
            sys::pin_current_thread(cpu)?;
            let dht = mainline::Dht::builder()
                .server_mode()
                .no_bootstrap()
                .bind_address(*addr.ip())
                .port(addr.port())
                .build()?;
            #[allow(deprecated)] // the blocking accessor is all a parked process needs
            let local = dht.info().local_addr();
            println!("ready {local}");
            park_forever()
        }
        "trawl-crawl" => {
            // The answering crawl (`trawl crawl --no-read-only`) on one core,
            // with no bootstrap: it only answers. Threads inherit the affinity.
            use trawl_engine::crawl::CrawlConfig;
            use trawl_engine::runtime::crawl::{Crawler, CrawlerOptions};
            sys::pin_current_thread(cpu)?;
            let dir = tempfile::tempdir()?;
            let _crawler = Crawler::start(CrawlerOptions {
                db: dir.path().join("db"),
                port: addr.port(),
                bind_v4: *addr.ip(),
                ipv6: false,
                cores: 1,
                pin: false,
                read_only: false,
                allow_loopback: true,
                fetch: false,
                crawl: CrawlConfig {
                    answer_rate: 1e9,
                    answer_burst: 1e9,
                    ..CrawlConfig::default()
                },
                ..CrawlerOptions::default()
            })?;
            println!("ready {addr}");
            park_forever()
        }
        other => bail!("unknown node to serve {other:?}"),
    }
}

fn park_forever() -> ! {
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}
