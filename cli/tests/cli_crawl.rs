//! `trawl crawl` as an operator runs it, the real binary against a small
//! `trawl-swarm` on 127.0.0.0/8: the metrics endpoint's values move during the
//! crawl, SIGUSR1/SIGUSR2 pause and resume it, the config file sits between
//! flags and defaults, and operator mistakes get one line and their exit code.
//! Every run is bounded in time.

#[path = "../../engine/tests/crawl_common/mod.rs"]
mod crawl_common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crawl_common::SwarmChild;

const TRAWL: &str = env!("CARGO_BIN_EXE_trawl");

fn free_tcp_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

/// A child process killed (if still running) when dropped.
struct Proc(Option<Child>);

impl Proc {
    fn child(&self) -> &Child {
        self.0.as_ref().expect("running")
    }

    /// Waits for the exit and collects the output (the child is then ours no more).
    fn wait_with_output(mut self) -> Output {
        self.0.take().expect("running").wait_with_output().unwrap()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A small swarm (2,000 nodes, 10,000 torrents, intervals up to 4 s), its
/// manifest in `dir`; returns it and its first node's address.
fn swarm(dir: &Path) -> (SwarmChild, String) {
    let swarm = SwarmChild::start(&dir.join("manifest.jsonl"), 2_000, 10_000, 4);
    let first = swarm.node(0).to_string();
    (swarm, first)
}

fn crawl_cmd(db: &Path, bootstrap: &str) -> Command {
    let mut cmd = Command::new(TRAWL);
    cmd.args([
        "crawl",
        "--port",
        "0",
        "--cores",
        "1",
        "--no-pin",
        "--no-ipv6",
        "--allow-loopback",
    ])
    .args(["--bootstrap", bootstrap, "--fetch-concurrency", "8", "--db"])
    .arg(db)
    .env("RUST_LOG", "warn")
    .stdin(Stdio::null());
    cmd
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: kill(2) on the pid of a child we own and have not reaped.
    assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
}

/// One scrape: the sum of every sample of each metric name (labels dropped).
fn scrape(addr: SocketAddr) -> Option<std::collections::HashMap<String, f64>> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n").ok()?;
    let mut reply = String::new();
    s.read_to_string(&mut reply).ok()?;
    let (head, body) = reply.split_once("\r\n\r\n")?;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(body.ends_with("# EOF\n"), "{body}");
    let mut sums = std::collections::HashMap::new();
    for line in body.lines().filter(|l| !l.starts_with('#')) {
        let (key, value) = line.rsplit_once(' ').expect("sample line");
        let name = key.split('{').next().unwrap().to_string();
        *sums.entry(name).or_insert(0.0) += value.parse::<f64>().expect("numeric value");
    }
    Some(sums)
}

/// Scrapes until `pred` holds or `limit` passes; returns the last scrape.
fn scrape_until(
    addr: SocketAddr,
    limit: Duration,
    pred: impl Fn(&std::collections::HashMap<String, f64>) -> bool,
) -> std::collections::HashMap<String, f64> {
    let end = Instant::now() + limit;
    loop {
        if let Some(m) = scrape(addr) {
            if pred(&m) || Instant::now() > end {
                return m;
            }
        } else {
            assert!(Instant::now() < end, "no metrics at {addr}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A metric's value in a scrape; 0 when it has no sample yet (before the
/// crawl's first snapshot, per-core families are empty).
fn value(m: &std::collections::HashMap<String, f64>, name: &str) -> f64 {
    m.get(name).copied().unwrap_or(0.0)
}

fn summary(out: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().expect("a summary line")).expect("JSON summary")
}

#[test]
fn metrics_move_during_a_swarm_crawl_and_signals_pause_and_resume_it() {
    let dir = tempfile::tempdir().unwrap();
    let (_swarm, bootstrap) = swarm(dir.path());
    let metrics = free_tcp_addr();
    let child = crawl_cmd(&dir.path().join("db"), &bootstrap)
        .args(["--metrics", &metrics.to_string(), "--duration", "60"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let child = Proc(Some(child));

    let first = scrape_until(metrics, Duration::from_secs(10), |m| {
        value(&m, "trawl_datagrams_in_total") > 0.0
    });
    let later = scrape_until(metrics, Duration::from_secs(15), |m| {
        value(&m, "trawl_datagrams_in_total") > value(&first, "trawl_datagrams_in_total")
            && value(&m, "trawl_storage_infohashes_total") > 0.0
            && value(&m, "trawl_known_nodes") > 0.0
            && value(&m, "trawl_storage_commits_total") > 0.0
    });
    // Counters grew between the scrapes; the storage side has started.
    for name in ["trawl_datagrams_in_total", "trawl_datagrams_out_total"] {
        assert!(
            value(&later, name) > value(&first, name),
            "{name} did not move: {later:?}"
        );
    }
    for name in [
        "trawl_storage_infohashes_total",
        "trawl_known_nodes",
        "trawl_storage_commits_total",
    ] {
        assert!(value(&later, name) > 0.0, "{name} is still 0: {later:?}");
    }
    assert_eq!(value(&later, "trawl_paused"), 0.0);
    assert!(value(&later, "trawl_writer_channel_capacity") > 0.0);

    // SIGUSR1: paused; once in-flight queries are answered, nothing more leaves.
    signal(child.child(), libc::SIGUSR1);
    let paused = scrape_until(metrics, Duration::from_secs(5), |m| value(&m, "trawl_paused") == 1.0);
    assert_eq!(value(&paused, "trawl_paused"), 1.0, "{paused:?}");
    std::thread::sleep(Duration::from_secs(3));
    let out_a = value(&scrape(metrics).unwrap(), "trawl_datagrams_out_total");
    std::thread::sleep(Duration::from_millis(1500));
    let out_b = value(&scrape(metrics).unwrap(), "trawl_datagrams_out_total");
    assert_eq!(out_a, out_b, "datagrams left while paused");

    // SIGUSR2: resumed, sending again.
    signal(child.child(), libc::SIGUSR2);
    let resumed = scrape_until(metrics, Duration::from_secs(10), |m| {
        value(&m, "trawl_paused") == 0.0 && value(&m, "trawl_datagrams_out_total") > out_b
    });
    assert_eq!(value(&resumed, "trawl_paused"), 0.0);
    assert!(
        value(&resumed, "trawl_datagrams_out_total") > out_b,
        "no queries after resume"
    );

    // SIGTERM: drained, exit 0, one summary line that agrees with the metrics.
    signal(child.child(), libc::SIGTERM);
    let out = child.wait_with_output();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let s = summary(&out);
    assert!(
        s["datagrams_out"].as_f64().unwrap() >= value(&resumed, "trawl_datagrams_out_total"),
        "{s}"
    );
    // Fetch outcomes: attempts by reason, and infohashes by outcome, apart.
    let attempts: u64 = s["fetch_attempts_failed"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(attempts, s["metadata_failed"].as_u64().unwrap(), "{s}");
    assert!(
        s["fetch_attempts_failed"].get("no_peers").is_none(),
        "no_peers counts hashes, not attempts: {s}"
    );
    let hashes = &s["fetch_hashes"];
    assert_eq!(hashes["ok"], s["metadata_ok"], "{s}");
    for k in ["all_peers_failed", "no_peers", "bad_info", "cut_at_stop"] {
        assert!(hashes[k].as_u64().is_some(), "{k}: {s}");
    }
    assert!(
        hashes["ok"].as_u64().unwrap() > 0,
        "the swarm's torrents were fetched: {s}"
    );
    assert!(
        resumed.keys().any(|k| k.starts_with("trawl_metadata_hashes_total")),
        "{resumed:?}"
    );
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn flags_override_the_config_file_which_overrides_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let (_swarm, bootstrap) = swarm(dir.path());
    let file_db = dir.path().join("from-file");
    let config = dir.path().join("trawl.toml");
    // The file asks for 2 cores and a 300 s crawl; the flags for 1 core and 2 s.
    std::fs::write(
        &config,
        format!(
            "[crawl]\ndb = {:?}\ncores = 2\nduration = 300\nbootstrap = [{bootstrap:?}]\n\
             allow-loopback = true\nfetch = false\npin = false\nipv6 = false\nport = 0\n",
            file_db.to_str().unwrap()
        ),
    )
    .unwrap();
    let started = Instant::now();
    let out = Command::new(TRAWL)
        .args([
            "crawl",
            "--config",
            config.to_str().unwrap(),
            "--cores",
            "1",
            "--duration",
            "2",
        ])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the flag's --duration 2 won"
    );
    let s = summary(&out);
    assert_eq!(s["cores"], 1, "flag over file: {s}");
    assert_eq!(s["db"], file_db.to_str().unwrap(), "file over default: {s}");
    assert_eq!(s["metadata_ok"], 0, "the file's fetch = false: {s}");
    assert!(
        s["datagrams_in"].as_u64().unwrap() > 0,
        "the file's bootstrap and allow-loopback: {s}"
    );
    assert!(file_db.join("CURRENT").exists());
}

fn one_line_error(out: &Output, code: i32, needles: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(out.status.code(), Some(code), "{err}");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].starts_with("trawl: "), "{lines:?}");
    for needle in needles {
        assert!(lines[0].contains(needle), "{needle}: {lines:?}");
    }
    assert!(out.stdout.is_empty(), "no summary on a start-up error");
}

#[test]
fn operator_mistakes_get_one_line_and_their_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let run = |extra: &[&str]| {
        crawl_cmd(&db, "127.0.0.1:9")
            .args(["--duration", "2"])
            .args(extra)
            .output()
            .unwrap()
    };

    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "[crawl]\nport = 6881\nfetch-concurency = 4\n").unwrap();
    one_line_error(
        &run(&["--config", config.to_str().unwrap()]),
        2,
        &["bad.toml", "line 3", "fetch-concurency"],
    );
    std::fs::write(&config, "[crawl]\ncores = \"two\"\n").unwrap();
    one_line_error(&run(&["--config", config.to_str().unwrap()]), 2, &["line 2", "`cores`"]);
    one_line_error(
        &run(&["--config", "/nonexistent/trawl.toml"]),
        2,
        &["cannot read config"],
    );
    one_line_error(&run(&["--drain-secs", "0"]), 2, &["--drain-secs"]);
    let no_db = Command::new(TRAWL).args(["crawl", "--port", "0"]).output().unwrap();
    one_line_error(&no_db, 2, &["--db"]);

    // The metrics port is taken: exit 4 before any crawling.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    one_line_error(&run(&["--metrics", &addr]), 4, &["metrics", &addr]);

    // The crawl port is taken.
    let udp = UdpSocket::bind("0.0.0.0:0").unwrap();
    let port = udp.local_addr().unwrap().port().to_string();
    let out = Command::new(TRAWL)
        .args([
            "crawl",
            "--port",
            &port,
            "--cores",
            "1",
            "--no-ipv6",
            "--allow-loopback",
        ])
        .args(["--bootstrap", "127.0.0.1:9", "--duration", "2", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    one_line_error(&out, 4, &["in use"]);

    // The database is locked by another process (here: this one).
    let held = trawl_storage::Store::open(&db, &trawl_storage::StoreOptions::default()).unwrap();
    one_line_error(&run(&[]), 5, &["locked"]);
    drop(held);
}

#[test]
fn a_bootstrap_nobody_answers_is_named_within_10_s_and_the_crawl_gives_up_with_exit_6() {
    let dir = tempfile::tempdir().unwrap();
    // A bound UDP socket that never answers: the datagrams arrive, no reply comes.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let started = Instant::now();
    let out = crawl_cmd(&dir.path().join("db"), &addr)
        .args(["--bootstrap-timeout-secs", "14", "--duration", "120"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let took = started.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{err}");
    assert!(
        took < Duration::from_secs(40),
        "gave up at the timeout, not the duration: {took:?}"
    );
    let warning = err
        .lines()
        .find(|l| l.contains("no DHT node has answered in"))
        .unwrap_or_else(|| panic!("{err}"));
    for part in [addr.as_str(), "find_node sent", "timed out", "giving up after 14 s"] {
        assert!(warning.contains(part), "{part}: {warning}");
    }
    let last = err.lines().filter(|l| !l.trim().is_empty()).last().unwrap();
    assert!(last.starts_with("trawl: no DHT node answered within 14 s"), "{last}");
    assert!(last.contains("--bootstrap-timeout-secs"), "{last}");
    // The bootstrap was asked again with back-off: at 0, 2 and 6 s (then 14, 30, 60 ...).
    let mut buf = [0u8; 1500];
    silent.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let mut got = 0;
    while silent.recv_from(&mut buf).is_ok() {
        got += 1;
    }
    assert!(got >= 3, "{got} bootstrap queries");
    // The summary still comes, and says what was sent.
    let s = summary(&out);
    assert!(s["find_nodes_sent"].as_u64().unwrap() >= 3, "{s}");
}
