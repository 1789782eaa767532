//! `trawl-bench soak`: a long, bounded `trawl crawl` against a churning
//! `trawl-swarm`, watching for leaks and decay.
//!
//! Owns: the once-a-second samples (the crawler's RSS and open file
//! descriptors, the swarm's datagram counters), the fitted slopes after
//! warm-up, the first- and last-minute throughput, and the final
//! `{"bench":"soak",...}` line.
//! Must not: send anywhere but 127.0.0.0/8, or run past `--secs` (the crawler
//! and the swarm also carry their own `--duration` bounds).

use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::json;

use crate::crawl::{self, round, stat_delta, stat_f64, Placement, SwarmChild, SwarmSpawn, TrawlChild, TrawlSpawn};
use crate::swarm::nodes::node_addr;
use crate::sys;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(long, default_value_t = 20_000)]
    pub nodes: u32,
    #[arg(long, default_value_t = 200_000)]
    pub torrents: u32,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Length of the soak, after the crawler's first queries reach the swarm.
    #[arg(long, default_value_t = 600.0)]
    pub secs: f64,
    /// Samples before this are left out of the slopes.
    #[arg(long, default_value_t = 60.0)]
    pub warmup_secs: f64,
    /// Fraction of live swarm nodes that die and come back.
    #[arg(long, default_value_t = 0.2)]
    pub churn: f64,
    /// Seconds a churning node stays up, then down.
    #[arg(long, default_value_t = 30.0)]
    pub churn_period: f64,
    /// The swarm's largest sample interval (seconds): short, so nodes are revisited.
    #[arg(long, default_value_t = 300)]
    pub interval_max: u32,
    // Below the ephemeral range, like the flood bench's ports.
    #[arg(long, default_value_t = 27_081)]
    pub port: u16,
    #[arg(long, default_value_t = 27_082)]
    pub peer_port: u16,
    #[arg(long, default_value_t = 27_083)]
    pub trawl_port: u16,
    #[arg(long, default_value_t = 64)]
    pub fetchers: usize,
    #[arg(long)]
    pub trawl_bin: Option<std::path::PathBuf>,
    #[arg(long)]
    pub swarm_bin: Option<std::path::PathBuf>,
}

/// One sample of the crawler and the swarm.
struct Sample {
    t: f64,
    rss_mb: f64,
    fds: f64,
    /// Datagrams the swarm exchanged with the crawler so far (in + out).
    datagrams: f64,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let place = Placement::choose(false, sys::online_cores());
    let mut swarm = SwarmChild::spawn(
        &SwarmSpawn {
            bin: args.swarm_bin.clone(),
            nodes: args.nodes,
            torrents: args.torrents,
            seed: args.seed,
            port: args.port,
            peer_port: args.peer_port,
            interval_max: args.interval_max,
            rate_limit: 0.0,
            max_secs: args.secs + 600.0,
            churn: args.churn,
            churn_period: args.churn_period,
            extra_args: Vec::new(),
        },
        place,
    )?;
    let mut child = TrawlChild::spawn(&TrawlSpawn {
        bin: args.trawl_bin.as_deref(),
        port: args.trawl_port,
        cores: 1,
        bootstrap: SocketAddrV4::new(node_addr(0), swarm.udp_port()),
        max_secs: args.secs + 120.0,
        fetchers: args.fetchers,
        no_fetch: false,
        pin: place.crawler,
        extra_args: &[],
    })?;
    let opened = crawl::wait_for_traffic(&swarm, Duration::ZERO)?;
    let start = Instant::now();
    let mut samples = Vec::new();
    let mut next = start;
    while start.elapsed().as_secs_f64() < args.secs {
        next += Duration::from_secs(1);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        let stat = child.stat().context("trawl crawl died during the soak")?;
        let now = swarm.latest_stats()?;
        samples.push(Sample {
            t: start.elapsed().as_secs_f64(),
            rss_mb: stat.rss_bytes as f64 / (1024.0 * 1024.0),
            fds: open_fds(child.pid()) as f64,
            datagrams: stat_delta(&now, &opened, "received") + stat_delta(&now, &opened, "sent"),
        });
    }
    let closed = swarm.latest_stats()?;
    let crashed = !child.running();
    let (summary, clean) = child.stop()?;
    let swarm_final = swarm.finish()?;

    let after_warmup: Vec<&Sample> = samples.iter().filter(|s| s.t >= args.warmup_secs).collect();
    let rss_slope = slope_per_min(&after_warmup, |s| s.rss_mb);
    let fd_slope = slope_per_min(&after_warmup, |s| s.fds);
    let minute_pps = |from: f64| {
        let at = |t: f64| {
            samples
                .iter()
                .min_by(|a, b| (a.t - t).abs().total_cmp(&(b.t - t).abs()))
        };
        match (at(from), at(from + 60.0)) {
            (Some(a), Some(b)) if b.t > a.t => (b.datagrams - a.datagrams) / (b.t - a.t),
            _ => 0.0,
        }
    };
    let total = samples.last().map_or(0.0, |s| s.t);
    let (first, last) = (minute_pps(0.0), minute_pps((total - 60.0).max(0.0)));
    let max = |f: fn(&Sample) -> f64| samples.iter().map(f).fold(0.0, f64::max);
    let at_warmup = after_warmup.first();
    println!(
        "{}",
        json!({
            "bench": "soak",
            "secs": round(total, 1),
            "warmup_secs": args.warmup_secs,
            "nodes": args.nodes,
            "torrents": args.torrents,
            "churn": args.churn,
            "churn_period_secs": args.churn_period,
            "rss_mb_after_warmup": at_warmup.map(|s| round(s.rss_mb, 1)),
            "rss_mb_end": samples.last().map(|s| round(s.rss_mb, 1)),
            "rss_mb_peak": round(max(|s| s.rss_mb), 1),
            "rss_slope_mb_per_min": round(rss_slope, 3),
            "fds_after_warmup": at_warmup.map(|s| s.fds),
            "fds_end": samples.last().map(|s| s.fds),
            "fds_max": max(|s| s.fds),
            "fd_slope_per_min": round(fd_slope, 3),
            "first_minute_pps": round(first, 0),
            "last_minute_pps": round(last, 0),
            "last_to_first_minute_ratio": round(last / first.max(1.0), 3),
            "mean_pps": round((stat_delta(&closed, &opened, "received") + stat_delta(&closed, &opened, "sent"))
                / (stat_f64(&closed, "t") - stat_f64(&opened, "t")).max(1e-9), 0),
            "politeness_violations": crawl::violations_between(&opened, &closed),
            "crashed": crashed || !clean,
            "trawl_summary": summary,
            "swarm_final_politeness_violations": swarm_final.get("politeness_violations").cloned().unwrap_or(serde_json::Value::Null),
        })
    );
    Ok(())
}

/// Open file descriptors of `pid` (entries of `/proc/PID/fd`); 0 if unreadable.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// Least-squares slope of `f` over time, per minute.
fn slope_per_min(samples: &[&Sample], f: impl Fn(&Sample) -> f64) -> f64 {
    let n = samples.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let mean_t = samples.iter().map(|s| s.t).sum::<f64>() / n;
    let mean_y = samples.iter().map(|s| f(s)).sum::<f64>() / n;
    let cov: f64 = samples.iter().map(|s| (s.t - mean_t) * (f(s) - mean_y)).sum();
    let var: f64 = samples.iter().map(|s| (s.t - mean_t).powi(2)).sum();
    if var == 0.0 {
        0.0
    } else {
        cov / var * 60.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slope_is_per_minute_and_flat_for_constant_series() {
        let rising: Vec<Sample> = (0..120)
            .map(|i| Sample {
                t: f64::from(i),
                rss_mb: 100.0 + f64::from(i) * 0.5,
                fds: 40.0,
                datagrams: 0.0,
            })
            .collect();
        let refs: Vec<&Sample> = rising.iter().collect();
        assert!((slope_per_min(&refs, |s| s.rss_mb) - 30.0).abs() < 1e-9);
        assert_eq!(slope_per_min(&refs, |s| s.fds), 0.0);
        assert_eq!(slope_per_min(&refs[..1], |s| s.rss_mb), 0.0);
    }
}
