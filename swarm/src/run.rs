//! Running a whole swarm: the UDP server and the metadata peers together,
//! their combined report, and the ground-truth manifest.
//!
//! Owns: start-up and shutdown order, the final [`SwarmReport`], and the
//! manifest's JSON-lines format.
//! Must not: parse command lines or print; the binary and the harness do.

use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::counters::Counters;
use super::limits::SenderBans;
use super::peers::{DarkListener, PeerCounters, PeerServer};
use super::server::{StopAfter, ThreadLoad, UdpServer};
use super::Swarm;
use crate::sys;

/// Where and for how long the swarm runs.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub threads: usize,
    /// Cores for the UDP threads (thread i on `udp_cores[i % len]`); empty: unpinned.
    pub udp_cores: Vec<usize>,
    pub peer_core: Option<usize>,
    pub stop: StopAfter,
}

/// A swarm that is answering.
pub struct Running {
    pub swarm: Arc<Swarm>,
    udp: UdpServer,
    peers: PeerServer,
    dark: DarkListener,
    started: Instant,
    cpu0: Duration,
}

/// Everything a swarm run counted, and its load.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SwarmReport {
    pub nodes: u32,
    pub torrents: u32,
    pub seconds: f64,
    pub counters: Counters,
    pub peers: PeerCounters,
    pub threads: Vec<ThreadLoadOut>,
    pub received_per_s: f64,
    pub answered_per_s: f64,
    pub sent_per_s: f64,
    /// CPU time of the UDP threads per reply sent.
    pub cpu_us_per_answer: f64,
    /// Highest busy fraction of any UDP thread: near 1.0 means saturated.
    pub busy_fraction: f64,
    pub politeness_violations: u64,
    /// Blocks libtorrent nodes imposed, on every sender (`counters.bans_imposed`).
    #[serde(default)]
    pub bans: u64,
    /// Per sender IP: blocks, their length, messages dropped by blocks and by
    /// reply budgets. Empty when no node dropped anything.
    #[serde(default)]
    pub bans_by_ip: Vec<SenderBans>,
    pub process_cpu_seconds: f64,
    pub peak_rss_mb: f64,
}

/// [`ThreadLoad`] in the report's (de)serialisable form.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct ThreadLoadOut {
    pub core: Option<usize>,
    pub cpu_seconds: f64,
    pub wall_seconds: f64,
    pub busy_fraction: f64,
}

impl From<ThreadLoad> for ThreadLoadOut {
    fn from(t: ThreadLoad) -> Self {
        Self {
            core: t.core,
            cpu_seconds: t.cpu_seconds,
            wall_seconds: t.wall_seconds,
            busy_fraction: t.busy_fraction,
        }
    }
}

impl Running {
    /// Starts answering on the configured ports (0 lets the kernel choose).
    pub fn start(swarm: Arc<Swarm>, opts: &RunOptions) -> io::Result<Self> {
        let cpu0 = sys::proc_stat(sys::Pid::This).map(|s| s.cpu).unwrap_or_default();
        // Before the first answer: values name the dark port of never-accepting peers.
        let dark = DarkListener::bind()?;
        swarm
            .dark_peer_port
            .store(dark.port, std::sync::atomic::Ordering::Relaxed);
        let udp = UdpServer::spawn(
            swarm.clone(),
            swarm.config.port,
            opts.threads,
            &opts.udp_cores,
            opts.stop,
        )?;
        // The peers outlive the UDP side slightly so in-flight fetches finish.
        let peers = PeerServer::spawn(
            swarm.clone(),
            swarm.config.peer_port,
            opts.peer_core,
            opts.stop.duration + Duration::from_secs(2),
        )?;
        Ok(Self {
            swarm,
            udp,
            peers,
            dark,
            started: Instant::now(),
            cpu0,
        })
    }

    pub fn udp_port(&self) -> u16 {
        self.udp.local_port
    }

    pub fn peer_port(&self) -> u16 {
        self.peers.local_port
    }

    /// The port never-accepting peers are announced on.
    pub fn dark_peer_port(&self) -> u16 {
        self.dark.port
    }

    pub fn snapshot(&self) -> (Counters, PeerCounters) {
        (self.udp.snapshot(), self.peers.snapshot())
    }

    pub fn is_finished(&self) -> bool {
        self.udp.is_finished()
    }

    /// Setting this flag stops the UDP side; [`Self::wait`] then stops the peers.
    pub fn stop_flag(&self) -> Arc<std::sync::atomic::AtomicBool> {
        self.udp.stop_flag()
    }

    /// Stops both servers now.
    pub fn stop(&self) {
        self.udp.stop();
        self.peers.stop();
    }

    /// Waits for the UDP side to stop by itself, stops the peers, and reports.
    pub fn wait(self) -> io::Result<SwarmReport> {
        let udp = self.udp.join()?;
        let seconds = self.started.elapsed().as_secs_f64();
        self.peers.stop();
        let peers = self.peers.join()?;
        let proc = sys::proc_stat(sys::Pid::This).unwrap_or_default();
        let c = udp.counters;
        let cpu: f64 = udp.threads.iter().map(|t| t.cpu_seconds).sum();
        let rate = |n: u64| if seconds > 0.0 { n as f64 / seconds } else { 0.0 };
        Ok(SwarmReport {
            nodes: self.swarm.nodes.len(),
            torrents: self.swarm.catalogue.len(),
            seconds,
            counters: c,
            peers,
            received_per_s: rate(c.received),
            answered_per_s: rate(c.answered()),
            sent_per_s: rate(c.sent),
            cpu_us_per_answer: if c.sent > 0 { cpu * 1e6 / c.sent as f64 } else { 0.0 },
            busy_fraction: udp.threads.iter().map(|t| t.busy_fraction).fold(0.0, f64::max),
            threads: udp.threads.into_iter().map(Into::into).collect(),
            politeness_violations: c.politeness_violations(),
            bans: c.bans_imposed,
            bans_by_ip: self.swarm.limits.senders(),
            process_cpu_seconds: (proc.cpu.saturating_sub(self.cpu0)).as_secs_f64(),
            peak_rss_mb: proc.peak_rss_bytes as f64 / (1024.0 * 1024.0),
        })
    }
}

/// One manifest line.
#[derive(Serialize)]
struct ManifestLine<'a> {
    infohash: String,
    name: &'a str,
    size: u64,
    files: Vec<ManifestFile>,
    reachable: bool,
    discoverable: bool,
    fetchable: bool,
}

#[derive(Serialize)]
struct ManifestFile {
    path: String,
    length: u64,
}

/// Counts of a written manifest.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct ManifestSummary {
    pub torrents: u32,
    pub reachable: u32,
    /// Discoverable within the run the manifest was written for.
    #[serde(default)]
    pub discoverable: u32,
    pub fetchable: u32,
    /// The run length `discoverable` assumes, in seconds.
    #[serde(default)]
    pub run_secs: f64,
}

/// Writes the ground truth as JSON lines, one per catalogue torrent: infohash
/// (hex), name, total size, files (path joined with `/`, length; a single-file
/// torrent lists itself), reachable, discoverable (within a run of `run`) and
/// fetchable as the module doc of [`super`] defines them.
pub fn write_manifest(swarm: &Swarm, path: &Path, run: Duration) -> io::Result<ManifestSummary> {
    let mut w = BufWriter::new(std::fs::File::create(path)?);
    let discoverable = swarm.discoverable(run.as_millis() as u64);
    let mut summary = ManifestSummary {
        run_secs: run.as_secs_f64(),
        ..ManifestSummary::default()
    };
    for t in 0..swarm.catalogue.len() {
        let info = swarm.catalogue.info(t);
        let files = if info.files.is_empty() {
            vec![ManifestFile {
                path: info.name.clone(),
                length: info.length,
            }]
        } else {
            info.files
                .iter()
                .map(|f| ManifestFile {
                    path: f.path.join("/"),
                    length: f.length,
                })
                .collect()
        };
        let line = ManifestLine {
            infohash: hex(swarm.catalogue.infohash(t)),
            name: &info.name,
            size: info.total_size(),
            files,
            reachable: swarm.reachable(t),
            discoverable: discoverable[t as usize],
            fetchable: swarm.fetchable(t),
        };
        summary.torrents += 1;
        summary.reachable += u32::from(line.reachable);
        summary.discoverable += u32::from(line.discoverable);
        summary.fetchable += u32::from(line.fetchable);
        serde_json::to_writer(&mut w, &line)?;
        w.write_all(b"\n")?;
    }
    w.flush()?;
    Ok(summary)
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Writes what the virtual downloaders sent to crawler identities: one JSON
/// line per infohash, `{"infohash", "get_peers", "answered", "announce"}`,
/// then one `{"identity", "id", "known_by"}` line per learned identity.
pub fn write_harvest(swarm: &Swarm, path: &Path) -> io::Result<()> {
    let mut w = BufWriter::new(std::fs::File::create(path)?);
    for (hash, r) in swarm.downloads.reached() {
        let line = HarvestLine {
            infohash: hex(&hash),
            get_peers: r.get_peers,
            answered: r.answered,
            announce: r.announce,
        };
        serde_json::to_writer(&mut w, &line)?;
        w.write_all(b"\n")?;
    }
    for (addr, id, known_by) in swarm.downloads.identities() {
        let line = serde_json::json!({"identity": addr.to_string(), "id": hex(&id), "known_by": known_by});
        serde_json::to_writer(&mut w, &line)?;
        w.write_all(b"\n")?;
    }
    w.flush()
}

/// One infohash line of [`write_harvest`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HarvestLine {
    pub infohash: String,
    pub get_peers: bool,
    pub answered: bool,
    pub announce: bool,
}
