//! Shared by the crawl runtime tests: a crawl set up for loopback test networks,
//! the `trawl-swarm` simulator as a child process with its ground truth, and
//! reading back what a crawl stored.

#![allow(dead_code)]

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use trawl_engine::ops::CrawlSnapshot;
use trawl_engine::runtime::crawl::{Crawler, CrawlerOptions};
use trawl_storage::export::{export, Filter, Format};
use trawl_storage::Store;

/// Two unpinned cores on a kernel-chosen port, loopback allowed, no metadata
/// fetch, default scheduler tuning.
pub fn loopback_options(db: &Path, bootstrap: Vec<SocketAddr>) -> CrawlerOptions {
    CrawlerOptions {
        db: db.to_path_buf(),
        port: 0,
        cores: 2,
        pin: false,
        bootstrap,
        allow_loopback: true,
        fetch: false,
        ..CrawlerOptions::default()
    }
}

/// Polls the crawl's figures until `done` or `timeout`; returns the last ones.
pub fn wait_for(crawler: &Crawler, timeout: Duration, done: impl Fn(&CrawlSnapshot) -> bool) -> CrawlSnapshot {
    let deadline = Instant::now() + timeout;
    loop {
        let s = crawler.snapshot();
        if done(&s) || Instant::now() >= deadline {
            return s;
        }
        crawler.wait_until(Instant::now() + Duration::from_millis(100));
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The trawl-swarm binary of the profile this test was built with (the test
/// runs from `target/<profile>/deps/`); built on demand when a package-only
/// `cargo test` did not build it.
pub fn swarm_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>/deps");
    let bin = profile_dir.join("trawl-swarm");
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-p", "trawl-swarm", "--bin", "trawl-swarm"]);
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let ok = cmd.status().map(|s| s.success()).unwrap_or(false);
        assert!(ok && bin.exists(), "cannot build {}", bin.display());
    }
    bin
}

/// A running `trawl-swarm` child; it stops when its stdin closes.
pub struct SwarmChild {
    child: Child,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
    pub port: u16,
}

impl SwarmChild {
    /// Starts the swarm on free ports; another test can take a port between
    /// the check and the swarm's bind, so a failed start is retried on new ones.
    pub fn start(manifest: &Path, nodes: u32, torrents: u32, interval_max: u32) -> SwarmChild {
        for _ in 0..3 {
            let port = free_port();
            let mut child = Command::new(swarm_bin())
                .args(["--nodes", &nodes.to_string(), "--torrents", &torrents.to_string()])
                .args(["--port", &port.to_string(), "--peer-port", &free_port().to_string()])
                .args(["--interval-max", &interval_max.to_string()])
                .args([
                    "--slow",
                    "0",
                    "--loss",
                    "0",
                    "--duration",
                    "120",
                    "--stop-on-eof",
                    "--manifest",
                ])
                .arg(manifest)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("start trawl-swarm");
            let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
            let ready = lines.next().and_then(Result::ok);
            match ready.and_then(|l| serde_json::from_str::<serde_json::Value>(&l).ok()) {
                Some(v) if v["event"] == "ready" => return SwarmChild { child, lines, port },
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
        }
        panic!("trawl-swarm did not start");
    }

    /// Virtual node `i`'s address (the swarm's own numbering from 127.1.0.1).
    pub fn node(&self, i: u32) -> SocketAddr {
        let offset = i / 254 * 256 + i % 254 + 1;
        SocketAddr::from(((u32::from_be_bytes([127, 1, 0, 0]) + offset).to_be_bytes(), self.port))
    }

    /// Closes stdin and returns the final report.
    pub fn finish(mut self) -> serde_json::Value {
        drop(self.child.stdin.take());
        let mut last = serde_json::Value::Null;
        for line in self.lines.by_ref().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                last = v;
            }
        }
        let _ = self.child.wait();
        last
    }
}

impl Drop for SwarmChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port free right now for both UDP and TCP on every address (the swarm binds both).
pub fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("0.0.0.0:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("0.0.0.0", port)).is_ok() {
            return port;
        }
    }
}

/// (every catalogue infohash, the reachable ones), from the swarm's manifest.
pub fn ground_truth(manifest: &Path) -> (HashSet<String>, HashSet<String>) {
    let (mut all, mut reachable) = (HashSet::new(), HashSet::new());
    for line in std::fs::read_to_string(manifest).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let h = v["infohash"].as_str().unwrap().to_string();
        if v["reachable"] == true {
            reachable.insert(h.clone());
        }
        all.insert(h);
    }
    (all, reachable)
}

pub fn stored_hashes(db: &Path) -> HashSet<String> {
    let store = Store::open_read_only(db).unwrap();
    let mut out = Vec::new();
    export(&store, Format::Hex, &Filter::default(), &mut out).unwrap();
    String::from_utf8(out).unwrap().lines().map(str::to_string).collect()
}
