//! `trawl-bench flood`: `trawl crawl` crawling `trawl-swarm` while a bounded
//! flood of hostile datagrams hits its port, measured in one invocation.
//!
//! Owns: the flood generator (malformed, truncated, oversized and random
//! datagrams, spoofed replies, and valid queries from thousands of loopback
//! source addresses), the alternating flood-free and flooded slices, and the
//! final `{"bench":"flood",...}` line.
//! Must not: send anywhere but 127.0.0.0/8, or run unbounded: the flood stops
//! after its slices or `--max-packets`, whichever comes first.
//!
//! Crawl throughput is the swarm's own count of datagrams exchanged with the
//! crawler (it hears nothing else), so the flood's traffic never counts as
//! crawl work. Replies the crawler sends to flood sources are matched to the
//! query that caused them through the transaction id (a per-datagram sequence
//! number), which gives each reply's amplification exactly.

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;
use serde_json::{json, Value};
use trawl_engine::codec::krpc::{self, Query, Want};

use crate::crawl::{self, round, stat_delta, stat_f64, Placement, SwarmChild, SwarmSpawn, TrawlChild, TrawlSpawn};
use crate::swarm::derive::Stream;
use crate::swarm::nodes::node_addr;
use crate::sys;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(long, default_value_t = 100_000)]
    pub nodes: u32,
    #[arg(long, default_value_t = 1_000_000)]
    pub torrents: u32,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The swarm's largest sample interval (seconds).
    #[arg(long, default_value_t = 60)]
    pub interval_max: u32,
    /// Seconds of each slice; slices alternate flood-free and flooded, so both
    /// see the same stage of the crawl.
    #[arg(long, default_value_t = 2.0)]
    pub slice_secs: f64,
    /// Flood-free/flooded slice pairs.
    #[arg(long, default_value_t = 8)]
    pub pairs: u32,
    /// Flood datagrams per second (all sources together).
    #[arg(long, default_value_t = 20_000)]
    pub flood_pps: u64,
    /// Hard bound on flood datagrams.
    #[arg(long, default_value_t = 2_000_000)]
    pub max_packets: u64,
    /// Distinct loopback source addresses of the flood (one socket each).
    #[arg(long, default_value_t = 4_096)]
    pub sources: u32,
    /// Valid pings per second from one extra source, to see the per-IP answer limit.
    #[arg(long, default_value_t = 2_000)]
    pub heavy_pps: u64,
    /// Run the crawler answering queries (`--no-read-only`); otherwise read-only.
    #[arg(long)]
    pub no_read_only: bool,
    // Ports below the ephemeral range (32768+): the crawler's metadata fetches
    // leave thousands of TIME_WAIT sockets there, which a listener cannot bind past.
    #[arg(long, default_value_t = 26_981)]
    pub port: u16,
    #[arg(long, default_value_t = 26_982)]
    pub peer_port: u16,
    #[arg(long, default_value_t = 26_983)]
    pub trawl_port: u16,
    #[arg(long)]
    pub trawl_bin: Option<std::path::PathBuf>,
    #[arg(long)]
    pub swarm_bin: Option<std::path::PathBuf>,
}

/// First address of the flood's sources: outside the swarm's 127.1.0.0/16.
const FLOOD_NET: [u8; 4] = [127, 3, 0, 1];
/// The heavy source's address.
const HEAVY_SOURCE: Ipv4Addr = Ipv4Addr::new(127, 4, 0, 1);
/// Largest UDP payload on loopback IPv4.
const MAX_DATAGRAM: usize = 65_507;

/// What the flood sent and what came back.
#[derive(Debug, Default, Serialize)]
struct FloodReport {
    sent: u64,
    sent_by_kind: [u64; KINDS],
    send_errors: u64,
    /// Responses and errors the crawler sent to flood sources.
    replies: u64,
    /// Queries the crawler sent to flood sources (it learned them as nodes).
    queries_from_crawler: u64,
    undecodable_from_crawler: u64,
    /// Replies whose transaction id names a datagram we sent.
    replies_matched: u64,
    /// Largest reply length / length of the datagram that caused it.
    max_amplification: f64,
    largest_reply: usize,
    heavy_queries: u64,
    heavy_answers: u64,
}

const KINDS: usize = 8;
const KIND_NAMES: [&str; KINDS] = [
    "valid_query",
    "truncated",
    "bit_flipped",
    "oversized",
    "random",
    "spoofed_reply",
    "deep_nesting",
    "huge_length_prefix",
];

pub fn run(args: Args) -> anyhow::Result<()> {
    raise_fd_limit(u64::from(args.sources) + 256)?;
    let cores = sys::online_cores();
    let place = Placement::choose(false, cores);
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
            max_secs: 2.0 * f64::from(args.pairs) * args.slice_secs + 600.0,
            churn: Some(0.0),
            churn_period: Some(60.0),
            extra_args: Vec::new(),
        },
        place,
    )?;
    let read_only_flag = if args.no_read_only {
        "--no-read-only"
    } else {
        "--read-only"
    };
    let extra_args = [read_only_flag.to_string()];
    let mut child = TrawlChild::spawn(&TrawlSpawn {
        bin: args.trawl_bin.as_deref(),
        port: args.trawl_port,
        cores: 1,
        bootstrap: SocketAddrV4::new(node_addr(0), swarm.udp_port()),
        max_secs: 2.0 * f64::from(args.pairs) * args.slice_secs + 120.0,
        fetchers: 16,
        no_fetch: false,
        pin: place.crawler,
        extra_args: &extra_args,
    })?;
    let t0 = crawl::wait_for_traffic(&swarm, Duration::from_secs(2))?;
    let slice = Duration::from_secs_f64(args.slice_secs);

    // The flood thread runs throughout and sends only while `active` is set.
    let target = SocketAddrV4::new(Ipv4Addr::LOCALHOST, args.trawl_port);
    let (stop, active) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    let flood = {
        let (stop, active, plan) = (stop.clone(), active.clone(), FloodPlan::from(&args));
        std::thread::spawn(move || flood(plan, target, place.swarm, &active, &stop))
    };
    // Slices alternate: flood-free, flooded, ...; each side sums its datagrams and seconds.
    let (mut quiet, mut loud) = (Totals::default(), Totals::default());
    let (mut baseline_rss, mut peak_rss) = (0u64, 0u64);
    let mut prev = swarm.latest_stats()?;
    for i in 0..2 * args.pairs {
        let flooding = i % 2 == 1;
        active.store(flooding, Ordering::Relaxed);
        let rss = watch(&mut child, slice)?;
        let now = swarm.latest_stats()?;
        let side = if flooding { &mut loud } else { &mut quiet };
        side.datagrams += stat_delta(&now, &prev, "received") + stat_delta(&now, &prev, "sent");
        side.secs += stat_f64(&now, "t") - stat_f64(&prev, "t");
        if flooding {
            peak_rss = peak_rss.max(rss.peak);
        } else {
            baseline_rss = baseline_rss.max(rss.peak);
        }
        prev = now;
    }
    active.store(false, Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    let report = flood.join().map_err(|_| anyhow::anyhow!("flood thread panicked"))??;
    let recovery_rss = watch(&mut child, slice)?;
    let t_end = swarm.latest_stats()?;
    let crashed = !child.running();
    let (summary, clean) = child.stop()?;
    let swarm_final = swarm.finish()?;

    let (baseline_pps, flood_pps) = (quiet.rate(), loud.rate());
    let mb = |b: u64| round(b as f64 / (1024.0 * 1024.0), 1);
    println!(
        "{}",
        json!({"phase": "flood_detail", "report": report, "kinds": KIND_NAMES})
    );
    println!(
        "{}",
        json!({
            "bench": "flood",
            "read_only": !args.no_read_only,
            "baseline_pps": round(baseline_pps, 0),
            "flood_pps": round(flood_pps, 0),
            "throughput_ratio": round(flood_pps / baseline_pps.max(1.0), 3),
            "flood_datagrams_per_s": round(report.sent as f64 / loud.secs.max(1e-9), 0),
            "flood_sources": args.sources,
            "baseline_rss_mb": mb(baseline_rss),
            "peak_rss_mb": mb(peak_rss.max(recovery_rss.peak)),
            "rss_after_flood_mb": mb(recovery_rss.last),
            "crashed": crashed || !clean,
            "max_amplification": round(report.max_amplification, 3),
            "replies_to_flood": report.replies,
            "crawler_queries_to_flood_sources": report.queries_from_crawler,
            "heavy_source_queries": report.heavy_queries,
            "heavy_source_answers": report.heavy_answers,
            "politeness_violations": crawl::violations_between(&t0, &t_end),
            "trawl_summary": summary,
            "swarm_final_politeness_violations": swarm_final.get("politeness_violations").cloned().unwrap_or(Value::Null),
        })
    );
    Ok(())
}

/// Datagrams and seconds summed over one side's slices.
#[derive(Default)]
struct Totals {
    datagrams: f64,
    secs: f64,
}

impl Totals {
    fn rate(&self) -> f64 {
        self.datagrams / self.secs.max(1e-9)
    }
}
/// RSS seen while watching the child for a phase.
struct Rss {
    peak: u64,
    last: u64,
}

/// Samples the child's RSS every 100 ms for `phase`; fails if it dies.
fn watch(child: &mut TrawlChild, phase: Duration) -> anyhow::Result<Rss> {
    let start = Instant::now();
    let mut rss = Rss { peak: 0, last: 0 };
    while start.elapsed() < phase {
        std::thread::sleep(Duration::from_millis(100));
        let s = child.stat().context("trawl crawl died during the flood bench")?;
        rss.peak = rss.peak.max(s.rss_bytes);
        rss.last = s.rss_bytes;
    }
    Ok(rss)
}

fn raise_fd_limit(want: u64) -> anyhow::Result<()> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit write/read only the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            bail!("getrlimit: {}", std::io::Error::last_os_error());
        }
        if lim.rlim_cur < want {
            lim.rlim_cur = want.min(lim.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
    if lim.rlim_cur < want {
        bail!(
            "need {want} file descriptors for the flood sources, the hard limit is {}",
            lim.rlim_max
        );
    }
    Ok(())
}

/// The flood's parameters, moved into its thread.
struct FloodPlan {
    seed: u64,
    pps: u64,
    max_packets: u64,
    sources: u32,
    heavy_pps: u64,
}

impl From<&Args> for FloodPlan {
    fn from(a: &Args) -> Self {
        FloodPlan {
            seed: a.seed,
            pps: a.flood_pps.max(1),
            max_packets: a.max_packets,
            sources: a.sources.max(1),
            heavy_pps: a.heavy_pps,
        }
    }
}

/// Lengths of the datagrams sent, by sequence number (the transaction id).
struct SentLengths(Vec<AtomicU16>);

impl SentLengths {
    fn record(&self, seq: u32, len: usize) {
        if let Some(slot) = self.0.get(seq as usize) {
            slot.store(len.min(usize::from(u16::MAX)) as u16, Ordering::Relaxed);
        }
    }
    fn get(&self, tid: &[u8]) -> Option<usize> {
        let seq = u32::from_be_bytes(tid.try_into().ok()?);
        let len = self.0.get(seq as usize)?.load(Ordering::Relaxed);
        (len > 0).then_some(usize::from(len))
    }
}

/// Sends the flood until `stop` or the packet bound, while a receiver thread
/// matches replies; returns what both saw.
fn flood(
    plan: FloodPlan,
    target: SocketAddrV4,
    core: Option<usize>,
    active: &AtomicBool,
    stop: &AtomicBool,
) -> anyhow::Result<FloodReport> {
    if let Some(core) = core {
        sys::pin_current_thread(core)?;
    }
    let first = u32::from_be_bytes(FLOOD_NET);
    let mut sockets = Vec::with_capacity(plan.sources as usize + 1);
    for i in 0..plan.sources {
        let ip = Ipv4Addr::from(first + i / 254 * 256 + i % 254);
        sockets.push(bind_nonblocking(ip).with_context(|| format!("binding a flood source on {ip}"))?);
    }
    sockets.push(bind_nonblocking(HEAVY_SOURCE)?);
    let sockets = Arc::new(sockets);
    // One slot per sequence number the flood and the heavy source can use.
    let slots = plan
        .max_packets
        .saturating_mul(plan.heavy_pps / plan.pps + 2)
        .min(u64::from(u32::MAX));
    let lengths = Arc::new(SentLengths((0..=slots).map(|_| AtomicU16::new(0)).collect()));
    let heavy_answers = Arc::new(AtomicU64::new(0));
    let receiving = Arc::new(AtomicBool::new(true));
    let receiver = {
        let (sockets, lengths, heavy, receiving) = (
            sockets.clone(),
            lengths.clone(),
            heavy_answers.clone(),
            receiving.clone(),
        );
        std::thread::spawn(move || receive(&sockets, &lengths, &heavy, &receiving))
    };

    let mut report = FloodReport::default();
    let mut rng = Stream::new(plan.seed, 7, 0xf100d);
    let our_id = {
        let mut id = [0u8; 20];
        rng.fill(&mut id);
        id
    };
    let mut buf = Vec::with_capacity(MAX_DATAGRAM);
    let heavy = sockets.len() - 1;
    let mut seq = 1u32;
    // Seconds spent flooding so far, and when the current active stretch began.
    let (mut flooded, mut since) = (0.0f64, None::<Instant>);
    while !stop.load(Ordering::Relaxed) && report.sent < plan.max_packets {
        match (active.load(Ordering::Relaxed), since) {
            (true, None) => since = Some(Instant::now()),
            (false, Some(t)) => {
                flooded += t.elapsed().as_secs_f64();
                since = None;
            }
            (false, None) => {
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
            (true, Some(_)) => {}
        }
        // Pace both streams against the time spent flooding.
        let elapsed = flooded + since.map_or(0.0, |t| t.elapsed().as_secs_f64());
        let due_flood = (elapsed * plan.pps as f64) as u64;
        let due_heavy = (elapsed * plan.heavy_pps as f64) as u64;
        if report.sent >= due_flood && report.heavy_queries >= due_heavy {
            std::thread::sleep(Duration::from_micros(200));
            continue;
        }
        if report.heavy_queries < due_heavy {
            buf.clear();
            krpc::encode_query(&mut buf, &seq.to_be_bytes(), &Query::Ping { id: &our_id }, false, None);
            lengths.record(seq, buf.len());
            seq = seq.wrapping_add(1);
            if sockets[heavy].send_to(&buf, target).is_err() {
                report.send_errors += 1;
            }
            report.heavy_queries += 1;
        }
        if report.sent < due_flood {
            let kind = rng.below(KINDS as u64) as usize;
            hostile_datagram(kind, seq, &our_id, &mut rng, &mut buf);
            lengths.record(seq, buf.len());
            seq = seq.wrapping_add(1);
            let source = rng.below(heavy as u64) as usize;
            if sockets[source].send_to(&buf, target).is_err() {
                report.send_errors += 1;
            }
            report.sent += 1;
            report.sent_by_kind[kind] += 1;
        }
    }
    // Late replies still count.
    std::thread::sleep(Duration::from_millis(500));
    receiving.store(false, Ordering::Relaxed);
    let seen = receiver.join().map_err(|_| anyhow::anyhow!("receiver panicked"))?;
    report.replies = seen.replies;
    report.queries_from_crawler = seen.queries_from_crawler;
    report.undecodable_from_crawler = seen.undecodable;
    report.replies_matched = seen.matched;
    report.max_amplification = seen.max_amplification;
    report.largest_reply = seen.largest;
    report.heavy_answers = heavy_answers.load(Ordering::Relaxed);
    Ok(report)
}

fn bind_nonblocking(ip: Ipv4Addr) -> std::io::Result<UdpSocket> {
    let s = UdpSocket::bind(SocketAddrV4::new(ip, 0))?;
    s.set_nonblocking(true)?;
    Ok(s)
}

/// Writes one hostile datagram of `kind` with transaction id `seq` where it has one.
fn hostile_datagram(kind: usize, seq: u32, id: &[u8; 20], rng: &mut Stream, out: &mut Vec<u8>) {
    out.clear();
    let tid = seq.to_be_bytes();
    let mut target = [0u8; 20];
    rng.fill(&mut target);
    let valid = |out: &mut Vec<u8>, rng: &mut Stream| {
        let q = match rng.below(4) {
            0 => Query::Ping { id },
            1 => Query::FindNode {
                id,
                target: &target,
                want: Want::default(),
            },
            2 => Query::GetPeers {
                id,
                info_hash: &target,
                want: Want::default(),
                scrape: true,
                noseed: false,
            },
            _ => Query::SampleInfohashes {
                id,
                target: &target,
                want: Want::default(),
            },
        };
        krpc::encode_query(out, &tid, &q, false, None);
    };
    match kind {
        0 => valid(out, rng),
        1 => {
            valid(out, rng);
            let keep = rng.below(out.len() as u64) as usize;
            out.truncate(keep);
        }
        2 => {
            valid(out, rng);
            // Flips outside the transaction id, so a reply still names this datagram.
            let tid_at = out.windows(tid.len()).rposition(|w| w == tid).unwrap_or(out.len());
            for _ in 0..1 + rng.below(4) {
                let i = rng.below(out.len() as u64) as usize;
                if !(tid_at..tid_at + tid.len()).contains(&i) {
                    out[i] ^= 1 << rng.below(8);
                }
            }
        }
        3 => {
            // A query whose `id` is a huge string, up to the largest datagram.
            let len = 1_400 + rng.below((MAX_DATAGRAM - 1_500) as u64) as usize;
            out.extend_from_slice(b"d1:ad2:id");
            out.extend_from_slice(format!("{len}:").as_bytes());
            out.resize(out.len() + len, b'x');
            out.extend_from_slice(b"e1:q4:ping1:t4:");
            out.extend_from_slice(&tid);
            out.extend_from_slice(b"1:y1:qe");
        }
        4 => {
            let len = rng.below(1_500) as usize;
            out.resize(len, 0);
            rng.fill(out);
        }
        5 => {
            // A reply nobody asked for, full of nodes.
            out.extend_from_slice(b"d1:rd2:id20:");
            out.extend_from_slice(id);
            out.extend_from_slice(b"5:nodes416:");
            let start = out.len();
            out.resize(start + 416, 0);
            rng.fill(&mut out[start..]);
            out.extend_from_slice(b"e1:t4:");
            out.extend_from_slice(&tid);
            out.extend_from_slice(b"1:y1:re");
        }
        6 => {
            // Nesting far past any sane depth.
            let depth = 100 + rng.below(2_000) as usize;
            out.resize(depth, b'l');
            out.resize(2 * depth, b'e');
        }
        _ => {
            // A string that declares far more bytes than the datagram holds.
            out.extend_from_slice(b"d1:t4:");
            out.extend_from_slice(&tid);
            out.extend_from_slice(b"1:y1:q1:q4294967296:ping");
        }
    }
}

/// What the receiver saw.
#[derive(Default)]
struct Received {
    /// Responses and errors.
    replies: u64,
    /// Queries the crawler sent to flood sources it learned as nodes.
    queries_from_crawler: u64,
    undecodable: u64,
    matched: u64,
    max_amplification: f64,
    largest: usize,
}

/// Polls every source socket for replies until `receiving` clears.
fn receive(sockets: &[UdpSocket], lengths: &SentLengths, heavy: &AtomicU64, receiving: &AtomicBool) -> Received {
    let mut seen = Received::default();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let heavy_index = sockets.len() - 1;
    let mut fds: Vec<libc::pollfd> = sockets
        .iter()
        .map(|s| libc::pollfd {
            fd: s.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    while receiving.load(Ordering::Relaxed) {
        // SAFETY: `fds` is a valid array of pollfd for the length passed.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 50) };
        if ready <= 0 {
            continue;
        }
        for (i, fd) in fds.iter_mut().enumerate() {
            if fd.revents == 0 {
                continue;
            }
            fd.revents = 0;
            while let Ok((n, _)) = sockets[i].recv_from(&mut buf) {
                let Ok(msg) = krpc::Message::decode(&buf[..n]) else {
                    seen.undecodable += 1;
                    continue;
                };
                // The crawler learns querying sources as nodes and queries them
                // back: those are its own queries, not replies to the flood.
                if matches!(msg.kind, krpc::Kind::Query(_)) {
                    seen.queries_from_crawler += 1;
                    continue;
                }
                seen.replies += 1;
                seen.largest = seen.largest.max(n);
                if i == heavy_index {
                    heavy.fetch_add(1, Ordering::Relaxed);
                }
                if let Some(len) = lengths.get(msg.transaction_id) {
                    seen.matched += 1;
                    seen.max_amplification = seen.max_amplification.max(n as f64 / len as f64);
                }
            }
        }
    }
    seen
}
