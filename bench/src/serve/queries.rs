//! The query phase of `trawl-bench serve`: the server in a thread of this
//! process, queries drawn from the stored torrents' names, keep-alive
//! HTTP/1.1 clients and their latencies.
//!
//! Every query is built from one stored torrent (its class and size for the
//! filtered kind), so each must match at least that torrent: an answer
//! with `"total":0` is counted as empty, and an answer that is not a 200
//! or a broken connection as an error; neither counts in the latencies.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use trawl_serve::{ServeError, ServeOptions};

use super::child::{trawl_bin, ServeChild};
use super::{catalogue_record, round, Args};
use crate::storage::threads_cpu;
use crate::sys::{self, Pid};

/// Queries prepared per kind; clients cycle through them.
const QUERIES_PER_KIND: usize = 8192;
/// The longest answer head and body a client reads.
const MAX_HEAD_BYTES: usize = 64 * 1024;
const MAX_BODY_BYTES: usize = 16 << 20;
/// A request not answered within this fails (the server's own limit is 5 s).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// One kind of query and its prepared request paths.
pub(super) struct Kind {
    pub name: &'static str,
    pub paths: Vec<String>,
}

#[derive(Debug, Serialize)]
pub(super) struct KindFigures {
    kind: &'static str,
    answered: u64,
    per_s: f64,
    p50_ms: f64,
    pub p99_ms: f64,
    max_ms: f64,
    /// Mean of the answers' `total` (matches in the whole index).
    mean_total: f64,
    empty: u64,
    errors: u64,
    /// This process's CPU over wall time: server and clients share the cores.
    process_busy_cores: f64,
}

#[derive(Debug, Serialize)]
pub(super) struct QueryFigures {
    clients: usize,
    server_threads: usize,
    pub kinds: Vec<KindFigures>,
    /// This process before the server started (store and index closed) and
    /// after the queries; the server is the difference.
    /// The rebuild's merges, still running after it returned (and thrown
    /// away: its indexer was dropped), waited out before the queries.
    settled: Settled,
    rss_before: Rss,
    rss_after: Rss,
    process: Option<ProcessFigures>,
}

#[derive(Clone, Copy, Debug, Serialize)]
struct Settled {
    seconds: f64,
    merge_cpu_s: f64,
    /// False when `--settle-secs` ended first.
    done: bool,
}

/// Waits, at most `max`, until tantivy's merge threads in this process
/// have used no CPU for a whole check interval.
fn settle_merges(max: Duration) -> Settled {
    const EVERY: Duration = Duration::from_secs(2);
    const IDLE: Duration = Duration::from_millis(20);
    let t0 = Instant::now();
    let start = threads_cpu(&["merge_thread_"]);
    let mut last = start;
    let done = loop {
        if t0.elapsed() >= max {
            break false;
        }
        std::thread::sleep(EVERY);
        let now = threads_cpu(&["merge_thread_"]);
        if now.saturating_sub(last) < IDLE {
            break true;
        }
        last = now;
    };
    Settled {
        seconds: round(t0.elapsed().as_secs_f64(), 1),
        merge_cpu_s: round(last.saturating_sub(start).as_secs_f64(), 2),
        done,
    }
}

#[derive(Clone, Copy, Debug, Default, Serialize)]
struct Rss {
    rss_bytes: u64,
    anon_bytes: u64,
    /// File-backed: mostly the index's memory-mapped files.
    file_bytes: u64,
}

impl Rss {
    /// This process's.
    fn now() -> Rss {
        Rss::of("/proc/self/status")
    }

    /// From a `/proc/PID/status` file (zeros if it cannot be read).
    fn of(status: &str) -> Rss {
        let status = std::fs::read_to_string(status).unwrap_or_default();
        let kib = |key: &str| -> u64 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
                * 1024
        };
        Rss {
            rss_bytes: kib("VmRSS:"),
            anon_bytes: kib("RssAnon:"),
            file_bytes: kib("RssFile:"),
        }
    }
}

pub(super) fn run(args: &Args, db: &Path, index_dir: &Path) -> anyhow::Result<QueryFigures> {
    let kinds = prepare(args.seed, args.torrents, QUERIES_PER_KIND);
    let rss_before = Rss::now();
    let server = InProcessServer::start(ServeOptions {
        db: db.to_path_buf(),
        index_dir: index_dir.to_path_buf(),
        listen: "127.0.0.1:0".parse().context("listen address")?,
        token: None,
        threads: args.server_threads,
    })?;
    wait_for_documents(server.addr, u64::from(args.torrents), Duration::from_secs(30))?;
    println!(
        "queries: server on {} ({} HTTP threads) serving {} documents; RSS {:.0} MB before it started",
        server.addr,
        args.server_threads,
        args.torrents,
        rss_before.rss_bytes as f64 / 1e6
    );

    let settled = settle_merges(Duration::from_secs_f64(args.settle_secs));
    println!(
        "queries: the rebuild's merges ran on for {:.1} s ({:.1} s CPU) before the queries{}",
        settled.seconds,
        settled.merge_cpu_s,
        if settled.done { "" } else { " and was still merging" }
    );

    let warmup: Vec<String> = kinds
        .iter()
        .flat_map(|k| k.paths.iter().take(QUERIES_PER_KIND / 4).cloned())
        .collect();
    if args.warmup_secs > 0.0 {
        let w = load(
            server.addr,
            &warmup,
            args.clients,
            Duration::from_secs_f64(args.warmup_secs),
        );
        println!(
            "queries: warm-up {} answered, {} errors (not counted)",
            w.latencies_us.len(),
            w.errors
        );
    }
    let mut figures = Vec::new();
    for kind in &kinds {
        let cpu0 = sys::proc_stat(Pid::This)?.cpu;
        let secs = Duration::from_secs_f64(args.query_secs);
        let t0 = Instant::now();
        let mut out = load(server.addr, &kind.paths, args.clients, secs);
        let wall = t0.elapsed().as_secs_f64();
        let busy = (sys::proc_stat(Pid::This)?.cpu - cpu0).as_secs_f64() / wall;
        let f = figures_of(kind.name, &mut out, wall, busy);
        println!(
            "queries: {:<10} {:>7} answered = {:>6.0}/s; p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms; mean total {:.0}; \
             {} empty, {} errors; {:.2} cores busy",
            f.kind, f.answered, f.per_s, f.p50_ms, f.p99_ms, f.max_ms, f.mean_total, f.empty, f.errors, busy
        );
        figures.push(f);
    }
    let rss_after = Rss::now();
    println!(
        "queries: RSS {:.0} MB after ({:.0} MB anonymous, {:.0} MB file-backed); {:+.0} MB since before the server",
        rss_after.rss_bytes as f64 / 1e6,
        rss_after.anon_bytes as f64 / 1e6,
        rss_after.file_bytes as f64 / 1e6,
        (rss_after.rss_bytes as f64 - rss_before.rss_bytes as f64) / 1e6
    );
    server.stop()?;
    let process = if args.process_secs > 0.0 {
        Some(as_process(args, db, index_dir, &warmup)?)
    } else {
        None
    };
    Ok(QueryFigures {
        clients: args.clients,
        server_threads: args.server_threads,
        kinds: figures,
        settled,
        rss_before,
        rss_after,
        process,
    })
}

/// `trawl serve` as its own process on the same database and index, under
/// `--process-secs` of the mixed queries: its RSS alone.
#[derive(Debug, Serialize)]
struct ProcessFigures {
    /// From its start to its first answer with every document.
    start_secs: f64,
    answered: u64,
    errors: u64,
    p99_ms: f64,
    rss: Rss,
    peak_rss_bytes: u64,
}

fn as_process(args: &Args, db: &Path, index_dir: &Path, paths: &[String]) -> anyhow::Result<ProcessFigures> {
    let bin = trawl_bin(args.crawl.trawl_bin.as_deref())?;
    let t0 = Instant::now();
    let child = ServeChild::spawn(&bin, db, Some(index_dir), args.crawl.serve_addr())?;
    child.wait_ready(Duration::from_secs(120))?;
    wait_for_documents(child.addr, u64::from(args.torrents), Duration::from_secs(30))?;
    let start_secs = t0.elapsed().as_secs_f64();
    let mut out = load(
        child.addr,
        paths,
        args.clients,
        Duration::from_secs_f64(args.process_secs),
    );
    let stat = child.stat().context("trawl serve exited under the queries")?;
    let rss = Rss::of(&format!("/proc/{}/status", child.pid()));
    child.stop()?;
    out.latencies_us.sort_unstable();
    let f = ProcessFigures {
        start_secs: round(start_secs, 2),
        answered: out.latencies_us.len() as u64,
        errors: out.errors,
        p99_ms: round(out.quantile_ms(0.99), 2),
        rss,
        peak_rss_bytes: stat.peak_rss_bytes,
    };
    println!(
        "queries: trawl serve as its own process: ready in {:.1} s; after {} mixed queries ({} errors, p99 {:.1} ms) \
         RSS {:.0} MB ({:.0} MB anonymous, {:.0} MB file-backed), peak {:.0} MB",
        f.start_secs,
        f.answered,
        f.errors,
        f.p99_ms,
        f.rss.rss_bytes as f64 / 1e6,
        f.rss.anon_bytes as f64 / 1e6,
        f.rss.file_bytes as f64 / 1e6,
        f.peak_rss_bytes as f64 / 1e6
    );
    Ok(f)
}

/// The three kinds, `per_kind` request paths each, from torrents `0..torrents`.
pub(super) fn prepare(seed: u64, torrents: u32, per_kind: usize) -> Vec<Kind> {
    let mut rng = SmallRng::seed_from_u64(seed ^ 0x5e_a7c4);
    // The words as the server's release tokenizer splits them (at anything
    // not a letter or digit); it lower-cases the query words itself.
    let words_of = |index: u32| -> (Vec<String>, trawl_storage::TorrentRecord) {
        let t = catalogue_record(seed, index, 0);
        let mut words: Vec<String> = Vec::new();
        for w in t.name_readable().split(|c: char| !c.is_alphanumeric()) {
            if !w.is_empty() && !words.iter().any(|x| x == w) {
                words.push(w.to_owned());
            }
        }
        (words, t)
    };
    let (mut one, mut three, mut filtered) = (Vec::new(), Vec::new(), Vec::new());
    while one.len() < per_kind || three.len() < per_kind || filtered.len() < per_kind {
        let (mut words, t) = words_of(rng.gen_range(0..torrents));
        if words.is_empty() {
            continue;
        }
        if one.len() < per_kind {
            let w = &words[rng.gen_range(0..words.len())];
            one.push(format!("/api/search?q={}", enc(w)));
        }
        if filtered.len() < per_kind {
            let w = &words[rng.gen_range(0..words.len())];
            filtered.push(format!(
                "/api/search?q={}&class={}&min_size={}&sort=seeders",
                enc(w),
                t.class.as_str(),
                t.total_size / 2
            ));
        }
        if three.len() < per_kind && words.len() >= 3 {
            words.shuffle(&mut rng);
            three.push(format!("/api/search?q={}", enc(&words[..3].join(" "))));
        }
    }
    vec![
        Kind {
            name: "one-word",
            paths: one,
        },
        Kind {
            name: "three-word",
            paths: three,
        },
        Kind {
            name: "filtered",
            paths: filtered,
        },
    ]
}

/// Percent-encodes a query value.
fn enc(v: &str) -> String {
    form_urlencoded::byte_serialize(v.as_bytes()).collect()
}

/// What the clients of one kind measured.
#[derive(Default)]
pub(super) struct Load {
    pub latencies_us: Vec<u32>,
    pub totals: u64,
    pub empty: u64,
    pub errors: u64,
}

impl Load {
    fn add(&mut self, other: Load) {
        self.latencies_us.extend(other.latencies_us);
        self.totals += other.totals;
        self.empty += other.empty;
        self.errors += other.errors;
    }

    /// The `q`-quantile latency in milliseconds (sorted latencies).
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        let i = ((self.latencies_us.len() - 1) as f64 * q).round() as usize;
        f64::from(self.latencies_us[i]) / 1e3
    }
}

/// `clients` threads sending `paths` round-robin for `secs`.
fn load(addr: SocketAddr, paths: &[String], clients: usize, secs: Duration) -> Load {
    let deadline = Instant::now() + secs;
    let mut all = Load::default();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|c| {
                s.spawn(move || {
                    let mut conn = Conn::new(addr);
                    let mut out = Load::default();
                    let mut body = Vec::new();
                    let mut k = c;
                    while Instant::now() < deadline {
                        let path = &paths[k % paths.len()];
                        k += clients;
                        conn.ask(path, &mut body, &mut out);
                    }
                    out
                })
            })
            .collect();
        for h in handles {
            match h.join() {
                Ok(out) => all.add(out),
                Err(_) => all.errors += 1,
            }
        }
    });
    all
}

fn figures_of(kind: &'static str, out: &mut Load, wall: f64, busy: f64) -> KindFigures {
    out.latencies_us.sort_unstable();
    let answered = out.latencies_us.len() as u64;
    KindFigures {
        kind,
        answered,
        per_s: round(answered as f64 / wall.max(1e-9), 0),
        p50_ms: round(out.quantile_ms(0.5), 2),
        p99_ms: round(out.quantile_ms(0.99), 2),
        max_ms: round(out.quantile_ms(1.0), 2),
        mean_total: round(out.totals as f64 / answered.max(1) as f64, 0),
        empty: out.empty,
        errors: out.errors,
        process_busy_cores: round(busy, 2),
    }
}

/// A keep-alive HTTP/1.1 connection that reconnects after any failure.
pub(super) struct Conn {
    addr: SocketAddr,
    stream: Option<BufReader<TcpStream>>,
    line: Vec<u8>,
}

/// The parts of an answer's head a client needs.
struct Head {
    status: u16,
    length: Option<usize>,
    chunked: bool,
    close: bool,
}

impl Conn {
    pub fn new(addr: SocketAddr) -> Conn {
        Conn {
            addr,
            stream: None,
            line: Vec::new(),
        }
    }

    /// One search, timed; its latency, `total` or failure go into `out`.
    pub fn ask(&mut self, path: &str, body: &mut Vec<u8>, out: &mut Load) {
        let t0 = Instant::now();
        match self.get(path, body) {
            Ok(200) => {
                let us = t0.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
                out.latencies_us.push(us);
                match total_of(body) {
                    Some(0) => out.empty += 1,
                    Some(n) => out.totals += n,
                    None => out.errors += 1,
                }
            }
            Ok(_) | Err(_) => out.errors += 1,
        }
    }

    /// GETs `path` into `body`; the status.
    pub fn get(&mut self, path: &str, body: &mut Vec<u8>) -> std::io::Result<u16> {
        let r = self.exchange(path, body);
        if r.is_err() {
            self.stream = None;
        }
        r
    }

    fn exchange(&mut self, path: &str, body: &mut Vec<u8>) -> std::io::Result<u16> {
        let stream = match self.stream.take() {
            Some(s) => s,
            None => {
                let s = TcpStream::connect(self.addr)?;
                s.set_nodelay(true)?;
                s.set_read_timeout(Some(CLIENT_TIMEOUT))?;
                s.set_write_timeout(Some(CLIENT_TIMEOUT))?;
                BufReader::new(s)
            }
        };
        let stream = self.stream.insert(stream);
        let req = format!("GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", self.addr);
        stream.get_mut().write_all(req.as_bytes())?;
        let head = read_head(stream, &mut self.line)?;
        body.clear();
        if head.chunked {
            read_chunked(stream, &mut self.line, body)?;
        } else if let Some(n) = head.length {
            if n > MAX_BODY_BYTES {
                return Err(bad("answer body too long"));
            }
            body.resize(n, 0);
            stream.read_exact(body)?;
        } else {
            // Neither length nor chunks: the body ends with the connection.
            stream.by_ref().take(MAX_BODY_BYTES as u64).read_to_end(body)?;
            self.stream = None;
        }
        if head.close {
            self.stream = None;
        }
        Ok(head.status)
    }
}

fn bad(msg: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg.to_owned())
}

/// Reads one line (with its CRLF) into `line`, bounded.
fn read_line(r: &mut BufReader<TcpStream>, line: &mut Vec<u8>) -> std::io::Result<()> {
    line.clear();
    let n = r.by_ref().take(MAX_HEAD_BYTES as u64).read_until(b'\n', line)?;
    if n == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    if line.last() != Some(&b'\n') {
        return Err(bad("answer line too long"));
    }
    Ok(())
}

fn read_head(r: &mut BufReader<TcpStream>, line: &mut Vec<u8>) -> std::io::Result<Head> {
    read_line(r, line)?;
    let status = std::str::from_utf8(line)
        .ok()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| bad("no HTTP status line"))?;
    let mut head = Head {
        status,
        length: None,
        chunked: false,
        close: false,
    };
    let mut bytes = line.len();
    loop {
        read_line(r, line)?;
        bytes += line.len();
        if bytes > MAX_HEAD_BYTES {
            return Err(bad("answer head too long"));
        }
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end();
        if text.is_empty() {
            return Ok(head);
        }
        let Some((k, v)) = text.split_once(':') else {
            continue;
        };
        let v = v.trim();
        if k.eq_ignore_ascii_case("content-length") {
            head.length = Some(v.parse().map_err(|_| bad("bad content-length"))?);
        } else if k.eq_ignore_ascii_case("transfer-encoding") {
            head.chunked = v.to_ascii_lowercase().contains("chunked");
        } else if k.eq_ignore_ascii_case("connection") {
            head.close = v.eq_ignore_ascii_case("close");
        }
    }
}

fn read_chunked(r: &mut BufReader<TcpStream>, line: &mut Vec<u8>, body: &mut Vec<u8>) -> std::io::Result<()> {
    loop {
        read_line(r, line)?;
        let text = String::from_utf8_lossy(line);
        let size = text.trim_end().split(';').next().unwrap_or("").trim();
        let n = usize::from_str_radix(size, 16).map_err(|_| bad("bad chunk size"))?;
        if n == 0 {
            // Trailers, if any, up to the empty line.
            loop {
                read_line(r, line)?;
                if line.as_slice() == b"\r\n" || line.as_slice() == b"\n" {
                    return Ok(());
                }
            }
        }
        if body.len() + n > MAX_BODY_BYTES {
            return Err(bad("answer body too long"));
        }
        let start = body.len();
        body.resize(start + n, 0);
        r.read_exact(&mut body[start..])?;
        read_line(r, line)?;
    }
}

/// The `"total":N` of a search answer.
pub(super) fn total_of(body: &[u8]) -> Option<u64> {
    const KEY: &[u8] = b"\"total\":";
    let at = memchr::memmem::find(body, KEY)? + KEY.len();
    let digits = body[at..].iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&body[at..at + digits]).ok()?.parse().ok()
}

/// Waits until the server on `addr` counts `want` documents in `/api/stats`.
fn wait_for_documents(addr: SocketAddr, want: u64, within: Duration) -> anyhow::Result<()> {
    let end = Instant::now() + within;
    let mut conn = Conn::new(addr);
    let mut body = Vec::new();
    let mut seen = 0;
    while Instant::now() < end {
        if let Ok(200) = conn.get("/api/stats", &mut body) {
            seen = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.pointer("/index/documents").and_then(serde_json::Value::as_u64))
                .unwrap_or(0);
            if seen == want {
                return Ok(());
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    anyhow::bail!("the server on {addr} counts {seen} documents, not {want}, after {within:?}")
}

/// `trawl_serve::serve` in a thread of this process, stopped when dropped.
struct InProcessServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<(), ServeError>>>,
}

impl InProcessServer {
    fn start(opts: ServeOptions) -> anyhow::Result<InProcessServer> {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let s = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("bench-serve".into())
            .spawn(move || {
                trawl_serve::serve(opts, s, move |a| {
                    let _ = tx.send(a);
                })
            })
            .context("starting the server thread")?;
        let mut server = InProcessServer {
            addr: "127.0.0.1:0".parse().context("address")?,
            stop,
            thread: Some(thread),
        };
        match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(addr) => {
                server.addr = addr;
                Ok(server)
            }
            Err(_) => Err(match server.join() {
                Err(e) => e.context("the server did not start"),
                Ok(()) => anyhow::anyhow!("the server did not start within 120 s"),
            }),
        }
    }

    fn join(&mut self) -> anyhow::Result<()> {
        self.stop.store(true, Relaxed);
        match self.thread.take().map(JoinHandle::join) {
            None | Some(Ok(Ok(()))) => Ok(()),
            Some(Ok(Err(e))) => Err(anyhow::Error::new(e).context("trawl serve")),
            Some(Err(_)) => anyhow::bail!("the server thread panicked"),
        }
    }

    fn stop(mut self) -> anyhow::Result<()> {
        self.join()
    }
}

impl Drop for InProcessServer {
    fn drop(&mut self) {
        let _ = self.join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_drawn_from_stored_names() {
        let kinds = prepare(1, 1000, 50);
        assert_eq!(kinds.len(), 3);
        for k in &kinds {
            assert_eq!(k.paths.len(), 50, "{}", k.name);
            assert!(k.paths.iter().all(|p| p.starts_with("/api/search?q=")));
        }
        // Three words, as the server decodes the query string.
        assert!(kinds[1].paths.iter().all(|p| {
            let q = form_urlencoded::parse(p.split_once('?').unwrap().1.as_bytes())
                .next()
                .unwrap()
                .1;
            q.split(' ').count() == 3
        }));
        assert!(kinds[2].paths.iter().all(|p| p.ends_with("&sort=seeders")));
    }

    #[test]
    fn totals_are_read_from_answers() {
        assert_eq!(total_of(br#"{"total":1234,"hits":[]}"#), Some(1234));
        assert_eq!(total_of(br#"{"hits":[]}"#), None);
        assert_eq!(total_of(br#"{"total":"x"}"#), None);
    }
}
