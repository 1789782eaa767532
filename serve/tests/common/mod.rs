//! Shared by the serve tests: a database a writer keeps filling (as a crawl
//! would), a server on it, and a plain HTTP/1.1 client.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use trawl_serve::{ServeError, ServeOptions};
use trawl_storage::*;

pub fn h(n: u32) -> InfoHash {
    let mut h = [0u8; 20];
    h[..4].copy_from_slice(&n.to_be_bytes());
    h[19] = 0x5a;
    h
}

pub fn hex(h: &[u8]) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

pub struct Spec<'a> {
    pub n: u32,
    pub name: &'a str,
    pub files: &'a [(&'a str, u64)],
    pub class: ContentClass,
    pub content_type: Option<BitmagnetType>,
    pub version: TorrentVersion,
}

impl<'a> Spec<'a> {
    pub fn new(n: u32, name: &'a str) -> Self {
        Spec {
            n,
            name,
            files: &[],
            class: ContentClass::Video,
            content_type: None,
            version: TorrentVersion::V1,
        }
    }
}

pub fn torrent(s: &Spec) -> TorrentRecord {
    let files: Vec<FileEntry> = s
        .files
        .iter()
        .map(|(p, len)| FileEntry {
            path: p.split('/').map(|c| c.as_bytes().to_vec()).collect(),
            length: *len,
        })
        .collect();
    let total = if files.is_empty() {
        u64::from(s.n) * 1_000_000
    } else {
        files.iter().map(|f| f.length).sum()
    };
    TorrentRecord {
        info_hash: h(s.n),
        version: s.version,
        v2_hash: (s.version != TorrentVersion::V1).then_some([s.n as u8; 32]),
        name: s.name.as_bytes().to_vec(),
        files,
        total_size: total,
        piece_length: 1 << 18,
        private: false,
        class: s.class,
        content_type: s.content_type,
        fetched_at: 1_700_000_000 + s.n,
        scrape: None,
        info_dict: Some(format!("d4:name{}:{}e", s.name.len(), s.name).into_bytes()),
    }
}

pub fn discovery(n: u32) -> Discovery {
    Discovery {
        info_hash: h(n),
        source: Source::Sample,
        at: 1_700_000_000 + n,
    }
}

pub fn scrape(n: u32, seeders: u32) -> (InfoHash, ScrapeEstimate) {
    (
        h(n),
        ScrapeEstimate {
            seeders,
            leechers: seeders / 2,
            at: 1_700_100_000,
        },
    )
}

/// A database with a running writer: the crawl's side.
pub struct Crawl {
    pub dir: tempfile::TempDir,
    pub writer: Option<Writer>,
}

impl Crawl {
    pub fn new() -> Crawl {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path().join("db"), &StoreOptions::default()).unwrap());
        let writer = Writer::spawn(
            store,
            WriterOptions {
                flush_interval: Duration::from_millis(5),
                ..WriterOptions::default()
            },
        )
        .unwrap();
        Crawl {
            dir,
            writer: Some(writer),
        }
    }

    pub fn db(&self) -> PathBuf {
        self.dir.path().join("db")
    }

    /// Sends a batch and waits until it is durable.
    pub fn write(&self, batch: Batch) {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let batch = Batch {
            reply: Some(tx),
            ..batch
        };
        self.writer.as_ref().unwrap().handle().send(batch).unwrap();
        rx.recv_timeout(Duration::from_secs(20)).unwrap();
    }

    pub fn store(&self, specs: &[Spec]) {
        self.write(Batch {
            discoveries: specs.iter().map(|s| discovery(s.n)).collect(),
            torrents: specs.iter().map(torrent).collect(),
            ..Batch::default()
        });
    }

    /// Stops the writer (the crawl ends; the database stays).
    pub fn stop(&mut self) {
        if let Some(w) = self.writer.take() {
            w.shutdown();
        }
    }
}

/// A running `trawl serve` (in this process).
pub struct Server {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<(), ServeError>>>,
}

impl Server {
    pub fn start(db: PathBuf, index_dir: PathBuf, token: Option<&str>) -> Server {
        let opts = ServeOptions {
            db,
            index_dir,
            listen: "127.0.0.1:0".parse().unwrap(),
            token: token.map(str::to_owned),
            threads: 2,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let s = Arc::clone(&stop);
        let thread = std::thread::spawn(move || trawl_serve::serve(opts, s, move |a| tx.send(a).unwrap()));
        let addr = rx.recv_timeout(Duration::from_secs(30)).expect("the server started");
        Server {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    pub fn get(&self, path: &str) -> Reply {
        get(self.addr, path, &[])
    }

    /// Polls `path` until `ok` holds for its reply (the index follows the crawl).
    pub fn wait_for(&self, path: &str, within: Duration, ok: impl Fn(&Reply) -> bool) -> Reply {
        let end = Instant::now() + within;
        loop {
            let r = self.get(path);
            if ok(&r) || Instant::now() > end {
                return r;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn stop(mut self) -> Result<(), ServeError> {
        self.stop.store(true, Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// One HTTP/1.1 request; the body is read to the end (Connection: close).
pub fn request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked { dechunk(body) } else { body.to_owned() };
    Reply { status, headers, body }
}

pub fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Reply {
    request(addr, "GET", path, headers)
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Percent-encodes a query value.
pub fn enc(v: &str) -> String {
    form_urlencoded::byte_serialize(v.as_bytes()).collect()
}
