//! `trawl-bench harvest`: what an answering crawl hears of the lookups other
//! nodes make, on the `mainline` swarm with virtual downloaders
//! (`swarm::downloaders`), and what it keeps of it.
//!
//! Each run starts a fresh swarm whose downloaders look torrents up at
//! `--lookups-per-node-s`, runs `trawl crawl --no-read-only` with the given
//! number of cores (one node id per core, all on one IP and port), and
//! compares the crawl's store with the swarm's record of every `get_peers`
//! and `announce_peer` it sent to a crawler identity: the share of the
//! infohashes whose `get_peers` the crawler answered that are stored, how
//! many of them only the harvest found (stored with source `get_peers` or
//! `announce`, not seen in a sample first), the torrents of announced infohashes
//! fetched from the announcer, and the passive infohashes per hour, also
//! scaled to the `mainline` preset's lookup rate.
//!
//! Owns: the runs and the final `{"bench":"harvest",...}` line.
//! Must not: send anywhere but 127.0.0.0/8, or run unbounded: each run has its
//! length plus a fixed margin, and both children die with this process.

use std::io::BufRead;
use std::net::SocketAddrV4;
use std::path::PathBuf;

use anyhow::{bail, Context};
use serde_json::{json, Value};
use trawl_storage::Source;

use crate::crawl::{crawl_window, round, stat_delta, stat_f64, Placement, Window};
use crate::crawl::{SwarmChild, SwarmSpawn, TrawlChild, TrawlSpawn};
use crate::swarm::mainline;
use crate::swarm::nodes::node_addr;
use crate::swarm::run::HarvestLine;
use crate::sys;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(long, default_value_t = 20_000)]
    pub nodes: u32,
    #[arg(long, default_value_t = 100_000)]
    pub torrents: u32,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Length of each run in seconds.
    #[arg(long, default_value_t = 120.0)]
    pub secs: f64,
    /// The crawl's `--cores` for each run: one node id per core.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    pub cores: Vec<usize>,
    /// Downloader lookups per node per second. Above the `mainline` preset's
    /// 10/900 so that a short run hears enough to measure shares; the hourly
    /// figure is also given scaled down to the preset's rate.
    #[arg(long, default_value_t = 0.25)]
    pub lookups_per_node_s: f64,
    #[arg(long, default_value_t = 36_881)]
    pub port: u16,
    #[arg(long, default_value_t = 36_882)]
    pub peer_port: u16,
    #[arg(long, default_value_t = 36_883)]
    pub trawl_port: u16,
    #[arg(long)]
    pub trawl_bin: Option<PathBuf>,
    #[arg(long)]
    pub swarm_bin: Option<PathBuf>,
    #[arg(long)]
    pub no_pin: bool,
}

/// Seconds a run may take beyond its length (start-up, the final flush).
const MARGIN_SECS: f64 = 120.0;

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.cores.is_empty() || args.secs <= 0.0 || args.lookups_per_node_s <= 0.0 {
        bail!("--cores needs at least one run; --secs and --lookups-per-node-s must be positive");
    }
    let place = Placement::choose(args.no_pin, sys::online_cores());
    let mut rows = Vec::new();
    for &cores in &args.cores {
        let row = one_run(&args, cores, place).with_context(|| format!("the {cores}-core run"))?;
        eprintln!("harvest: {row}");
        rows.push(row);
    }
    println!("{}", json!({"bench": "harvest", "runs": rows}));
    Ok(())
}

fn one_run(args: &Args, cores: usize, place: Placement) -> anyhow::Result<Value> {
    let dir = tempfile::tempdir()?;
    let harvest = dir.path().join("harvest.jsonl");
    let extra: Vec<String> = vec![
        "--preset".into(),
        "mainline".into(),
        "--lookups-per-node-s".into(),
        args.lookups_per_node_s.to_string(),
        "--harvest-out".into(),
        harvest.display().to_string(),
    ];
    let mut swarm = SwarmChild::spawn(
        &SwarmSpawn {
            bin: args.swarm_bin.clone(),
            nodes: args.nodes,
            torrents: args.torrents,
            seed: args.seed,
            port: args.port,
            peer_port: args.peer_port,
            interval_max: 21_600,
            rate_limit: 0.0,
            max_secs: args.secs + MARGIN_SECS,
            churn: None,
            churn_period: None,
            extra_args: extra,
        },
        place,
    )?;
    let no_read_only = ["--no-read-only".to_string()];
    let mut child = TrawlChild::spawn(&TrawlSpawn {
        bin: args.trawl_bin.as_deref(),
        port: args.trawl_port,
        cores,
        bootstrap: SocketAddrV4::new(node_addr(0), swarm.udp_port()),
        max_secs: args.secs + MARGIN_SECS,
        fetchers: trawl_engine::runtime::fetch::FetchConfig::default().concurrency,
        no_fetch: false,
        pin: place.crawler.filter(|_| cores == 1),
        extra_args: &no_read_only,
    })?;
    // The crawl stops first, so every lookup the swarm records had the crawl's
    // whole run to be stored; lookups in its last second may miss the flush.
    let Window {
        opened,
        closed,
        first,
        last,
        summary,
    } = crawl_window(&mut child, &swarm, args.secs)?;
    let report = swarm.finish()?;
    let (reached, identities) = read_harvest(&harvest)?;
    let store = trawl_storage::Store::open_read_only(child.db())?;
    let (mut answered, mut stored, mut stored_as_harvest) = (0u64, 0u64, 0u64);
    let (mut announced, mut announced_stored, mut announced_fetched) = (0u64, 0u64, 0u64);
    for (h, r) in &reached {
        if !r.answered {
            continue;
        }
        answered += 1;
        let rec = store.infohash(h)?;
        stored += u64::from(rec.is_some());
        // A hash the crawl had already sampled is a dedup repeat when asked
        // for, so it keeps its first source only.
        let harvested = rec
            .as_ref()
            .is_some_and(|x| x.sources.contains(Source::GetPeers) || x.sources.contains(Source::Announce));
        stored_as_harvest += u64::from(harvested);
        if r.announce {
            announced += 1;
            announced_stored += u64::from(rec.as_ref().is_some_and(|x| x.sources.contains(Source::Announce)));
            announced_fetched += u64::from(store.torrent(h)?.is_some());
        }
    }
    let secs = (stat_f64(&closed, "t") - stat_f64(&opened, "t")).max(1e-9);
    let share = |x: u64, of: u64| {
        if of == 0 {
            Value::Null
        } else {
            json!(round(x as f64 / of as f64, 4))
        }
    };
    // Passive: hashes that only the harvest brought (none of the crawl's samples showed them).
    let per_hour = stored_as_harvest as f64 / secs * 3600.0;
    let to_mainline = mainline::LOOKUPS_PER_NODE_S / args.lookups_per_node_s;
    let cpu = (last.cpu - first.cpu).as_secs_f64();
    let num = |k: &str| summary.get(k).and_then(Value::as_u64).unwrap_or(0);
    let answers = num("queries_answered");
    let counter = |k: &str| {
        report
            .get("counters")
            .and_then(|c| c.get(k))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    let reply_bytes = counter("downloader_reply_bytes");
    Ok(json!({
        "cores": cores,
        "secs": round(secs, 1),
        "identities_learned": identities.len(),
        "nodes_knowing_each": identities,
        "downloader_lookups": counter("downloader_lookups"),
        "get_peers_sent": counter("downloader_get_peers_sent"),
        "get_peers_answered": counter("downloader_get_peers_answered"),
        "announces_sent": counter("downloader_announces_sent"),
        "announces_acked": counter("downloader_announces_acked"),
        "hashes_reached": reached.len(),
        "hashes_answered": answered,
        "hashes_stored": stored,
        "stored_share": share(stored, answered),
        "stored_with_harvest_source": stored_as_harvest,
        "announced_hashes": announced,
        "announced_stored_as_announce": announced_stored,
        "announced_fetched": announced_fetched,
        "announced_fetched_share": share(announced_fetched, announced),
        "passive_per_hour": round(per_hour, 0),
        "passive_per_hour_at_mainline_rate": round(per_hour * to_mainline, 1),
        "crawler_answers": answers,
        "crawler_answers_per_s": round(answers as f64 / secs, 1),
        "answer_bytes_per_s_to_downloaders": round(reply_bytes as f64 / secs, 0),
        "crawler_cpu_share": round(cpu / secs, 3),
        "bans": report.get("bans").and_then(Value::as_u64).unwrap_or(0),
        "violations": report.get("politeness_violations").and_then(Value::as_u64).unwrap_or(0),
        "datagrams_from_crawler_per_s": round(stat_delta(&closed, &opened, "received") / secs, 0),
        "trawl": summary,
    }))
}

type Reached = Vec<([u8; 20], HarvestLine)>;

/// The swarm's harvest file: infohash lines, then identity lines (kept as
/// their `known_by` counts).
fn read_harvest(path: &std::path::Path) -> anyhow::Result<(Reached, Vec<u64>)> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let (mut reached, mut identities) = (Vec::new(), Vec::new());
    for line in std::io::BufReader::new(file).lines() {
        let line = line?;
        let v: Value = serde_json::from_str(&line)?;
        if let Some(n) = v.get("known_by").and_then(Value::as_u64) {
            identities.push(n);
            continue;
        }
        let h: HarvestLine = serde_json::from_value(v)?;
        let Ok(hash) = trawl_storage::import::parse_hex(h.infohash.as_bytes()) else {
            bail!("a harvest line without a 40-digit infohash: {line}");
        };
        reached.push((hash, h));
    }
    Ok((reached, identities))
}
