//! Prometheus metrics for a running crawl ([`crawl`]) or node ([`node`]), in
//! the OpenMetrics text format (`prometheus-client`), and the small HTTP server
//! that serves them on `GET /metrics`.
//!
//! Owns the metric names and the listener thread. Holds no counters of its own:
//! every scrape calls its [`Source`] once and encodes what it returns (a
//! [`CrawlSnapshot`] or a node's `NodeStats`), so the figures are never stale
//! and the crawl cores pay nothing between scrapes. Must not panic on any request: a request is read
//! into a fixed buffer with a timeout, and anything unexpected gets a status
//! code, never a crash.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use trawl_engine::dht::NodeStats;
use trawl_engine::ops::{CrawlSnapshot, OpsError};

mod crawl;
mod node;

/// A crawl's figures: called once per scrape, from the server thread.
pub type SnapshotSource = Arc<dyn Fn() -> CrawlSnapshot + Send + Sync>;
/// A node's figures, or `None` when the node no longer answers.
pub type NodeSource = Arc<dyn Fn() -> Option<NodeStats> + Send + Sync>;

/// Where the figures come from.
#[derive(Clone)]
pub enum Source {
    Crawl(SnapshotSource),
    Node(NodeSource),
}

/// Every metric name starts with `trawl_`.
const PREFIX: &str = "trawl";
/// The scrape path; everything else is 404.
pub const METRICS_PATH: &str = "/metrics";
/// What `prometheus-client`'s text encoder writes.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// A scrape request is a request line and a few headers; more is not a scraper.
const MAX_REQUEST_BYTES: usize = 8 * 1024;
/// A client that neither sends nor reads within this long is dropped, so one
/// stuck connection cannot hold the (single) server thread.
const IO_TIMEOUT: Duration = Duration::from_secs(2);
/// After replying: how long, and how much, to read of what the client still
/// sends before closing.
const DRAIN_TIMEOUT: Duration = Duration::from_millis(200);
const MAX_DRAIN_BYTES: usize = 64 * 1024;
/// Pause after a failed `accept` (for example out of file descriptors), so the
/// loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// A registry whose one collector encodes a fresh snapshot on each scrape.
pub struct Metrics {
    registry: Registry,
}

impl Metrics {
    pub fn new(source: Source) -> Metrics {
        let mut registry = Registry::with_prefix(PREFIX);
        registry.register_collector(Box::new(SnapshotCollector { source }));
        Metrics { registry }
    }

    /// The text exposition of the current snapshot.
    pub fn render(&self) -> Result<String, fmt::Error> {
        let mut out = String::with_capacity(16 * 1024);
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

struct SnapshotCollector {
    source: Source,
}

impl fmt::Debug for SnapshotCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SnapshotCollector")
    }
}

impl Collector for SnapshotCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        match &self.source {
            Source::Crawl(source) => crawl::encode_snapshot(&source(), &mut encoder),
            Source::Node(source) => node::encode_node(source().as_ref(), &mut encoder),
        }
    }
}

/// Gauges are signed in OpenMetrics; our figures never reach `i64::MAX`.
fn gauge_value(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn family<L: EncodeLabelSet, M: EncodeMetric>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    rows: impl IntoIterator<Item = (L, M)>,
) -> Result<(), fmt::Error> {
    let mut metric = enc.encode_descriptor(name, help, None, kind)?;
    for (labels, value) in rows {
        value.encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

fn counter(enc: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> Result<(), fmt::Error> {
    ConstCounter::new(value).encode(enc.encode_descriptor(name, help, None, MetricType::Counter)?)
}

fn gauge(enc: &mut DescriptorEncoder, name: &str, help: &str, value: i64) -> Result<(), fmt::Error> {
    ConstGauge::new(value).encode(enc.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

/// The `GET /metrics` listener: one thread, one connection at a time (a
/// scraper calls every few seconds), stopped when dropped.
pub struct MetricsServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    pub fn start(addr: SocketAddr, source: Source) -> Result<MetricsServer, OpsError> {
        let listener = TcpListener::bind(addr).map_err(|source| OpsError::MetricsBind { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| OpsError::MetricsBind { addr, source })?;
        let stop = Arc::new(AtomicBool::new(false));
        let metrics = Metrics::new(source);
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("trawl-metrics".into())
                .spawn(move || accept_loop(&listener, &metrics, &stop))
                .map_err(|source| OpsError::MetricsBind { addr, source })?
        };
        Ok(MetricsServer {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// The bound address (with the real port when started on port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // `accept` has no timeout; one connection wakes it to see the flag.
        let wake = match self.addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => SocketAddr::new(Ipv4Addr::LOCALHOST.into(), self.addr.port()),
            IpAddr::V6(ip) if ip.is_unspecified() => SocketAddr::new(Ipv6Addr::LOCALHOST.into(), self.addr.port()),
            _ => self.addr,
        };
        let woke = TcpStream::connect_timeout(&wake, IO_TIMEOUT).is_ok();
        if let Some(thread) = self.thread.take() {
            if woke {
                let _ = thread.join();
            }
        }
    }
}

fn accept_loop(listener: &TcpListener, metrics: &Metrics, stop: &AtomicBool) {
    for conn in listener.incoming() {
        if stop.load(Ordering::Acquire) {
            return;
        }
        match conn {
            Ok(stream) => {
                if let Err(err) = serve(stream, metrics) {
                    tracing::debug!("metrics connection: {err}");
                }
            }
            Err(err) => {
                tracing::warn!("metrics accept failed: {err}");
                std::thread::sleep(ACCEPT_BACKOFF);
            }
        }
    }
}

/// What a request asks for, decided from its bytes alone.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Metrics,
    NotFound,
    MethodNotAllowed,
    TooLarge,
    BadRequest,
}

/// Routes a request from the bytes read so far (`complete` = the header block ended).
fn route(request: &[u8], complete: bool) -> Route {
    if !complete {
        return if request.len() >= MAX_REQUEST_BYTES {
            Route::TooLarge
        } else {
            Route::BadRequest
        };
    }
    let line_end = memchr::memchr(b'\n', request).unwrap_or(request.len());
    let Ok(line) = std::str::from_utf8(&request[..line_end]) else {
        return Route::BadRequest;
    };
    let mut parts = line.split_ascii_whitespace();
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next()) else {
        return Route::BadRequest;
    };
    if !version.starts_with("HTTP/") {
        return Route::BadRequest;
    }
    if method != "GET" {
        return Route::MethodNotAllowed;
    }
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    if path == METRICS_PATH {
        Route::Metrics
    } else {
        Route::NotFound
    }
}

/// Reads until the end of the header block, the size cap, EOF or the timeout.
fn read_request(stream: &mut TcpStream, buf: &mut [u8; MAX_REQUEST_BYTES]) -> io::Result<(usize, bool)> {
    let mut len = 0;
    while len < buf.len() {
        let n = stream.read(&mut buf[len..])?;
        if n == 0 {
            break;
        }
        len += n;
        if memchr::memmem::find(&buf[..len], b"\r\n\r\n").is_some()
            || memchr::memmem::find(&buf[..len], b"\n\n").is_some()
        {
            return Ok((len, true));
        }
    }
    Ok((len, false))
}

fn serve(mut stream: TcpStream, metrics: &Metrics) -> io::Result<()> {
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut buf = [0u8; MAX_REQUEST_BYTES];
    let (len, complete) = read_request(&mut stream, &mut buf)?;
    if len == 0 {
        return Ok(()); // a bare connect (the shutdown wake-up, a port probe)
    }
    let (status, body) = match route(&buf[..len], complete) {
        // The source is the crawl's code; a panic there must not kill the server.
        Route::Metrics => match catch_unwind(AssertUnwindSafe(|| metrics.render())) {
            Ok(Ok(text)) => ("200 OK", text),
            _ => ("500 Internal Server Error", "could not encode metrics\n".to_string()),
        },
        Route::NotFound => ("404 Not Found", "not found; metrics are at /metrics\n".to_string()),
        Route::MethodNotAllowed => ("405 Method Not Allowed", "only GET\n".to_string()),
        Route::TooLarge => ("431 Request Header Fields Too Large", "request too large\n".to_string()),
        Route::BadRequest => ("400 Bad Request", "bad request\n".to_string()),
    };
    let content_type = if status.starts_with("200") {
        CONTENT_TYPE
    } else {
        "text/plain; charset=utf-8"
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())?;
    stream.flush()?;
    // Closing with unread request bytes would reset the connection and could
    // lose the reply; read (boundedly) what the client still sends.
    stream.shutdown(std::net::Shutdown::Write)?;
    stream.set_read_timeout(Some(DRAIN_TIMEOUT))?;
    let mut drained = 0;
    while drained < MAX_DRAIN_BYTES {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => drained += n,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::atomic::AtomicU64;
    use trawl_engine::ops::{CoreSnapshot, FetchSnapshot, MemoryBreakdown, StorageSnapshot};

    fn snapshot(step: u64) -> CrawlSnapshot {
        let core = |i: usize| CoreSnapshot {
            core: i,
            datagrams_in: 100 * step + i as u64,
            datagrams_out: 90 * step,
            decode_errors: step,
            timeouts: 2 * step,
            new_hashes: 10 * step,
            duplicate_hashes: 3 * step,
            known_nodes: 500,
            nodes_bep51_yes: 300,
            nodes_bep51_no: 150,
            nodes_bep51_unknown: 50,
            handover_queue: 4,
            handover_queue_cap: 1024,
            ..CoreSnapshot::default()
        };
        CrawlSnapshot {
            uptime_secs: step as f64,
            paused: step % 2 == 1,
            cores: vec![core(0), core(1)],
            fetch: FetchSnapshot {
                started: 7 * step,
                ok: 5 * step,
                failed: vec![("dial_timeout", step), ("hash_mismatch", 0), ("no_peers", step)],
                active: 2,
                hashes_failed: step,
                leases_released: 0,
            },
            storage: StorageSnapshot {
                new_infohashes: 15 * step,
                duplicate_infohashes: 5 * step,
                commits: 4 * step,
                commit_micros: 2_500_000 * step,
                channel_len: 3,
                channel_cap: 64,
                staging_backlog: 42,
                requeued_for_new_peers: 6 * step,
                provisional_names: 8 * step,
                queue_dropped_full: 7 * step,
                rocksdb_memory_bytes: 96 << 20,
                ..StorageSnapshot::default()
            },
            memory: MemoryBreakdown {
                rust_heap_live: Some(40 << 20),
                mimalloc_committed: Some(48 << 20),
                libc_heap_in_use: Some(90 << 20),
                libc_heap_free: None,
            },
        }
    }

    /// Sample lines as `name{labels}` -> value; checks each line's shape.
    fn parse(text: &str) -> HashMap<String, f64> {
        assert!(text.ends_with("# EOF\n"), "no EOF marker:\n{text}");
        let mut out = HashMap::new();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (key, value) = line
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("bad sample line {line:?}"));
            assert!(key.starts_with("trawl_"), "{line}");
            let value: f64 = value.parse().unwrap_or_else(|_| panic!("bad value in {line:?}"));
            assert!(out.insert(key.to_string(), value).is_none(), "duplicate sample {key}");
        }
        out
    }

    #[test]
    fn snapshot_encodes_every_family_with_labels() {
        let m = Metrics::new(Source::Crawl(Arc::new(|| snapshot(3))));
        let text = m.render().unwrap();
        let v = parse(&text);
        assert_eq!(v["trawl_datagrams_in_total{core=\"1\"}"], 301.0);
        assert_eq!(v["trawl_datagrams_out_total{core=\"0\"}"], 270.0);
        assert_eq!(v["trawl_errors_total{core=\"0\",kind=\"decode\"}"], 3.0);
        assert_eq!(v["trawl_errors_total{core=\"1\",kind=\"timeout\"}"], 6.0);
        assert_eq!(v["trawl_errors_total{core=\"1\",kind=\"recv\"}"], 0.0);
        assert_eq!(v["trawl_core_infohashes_total{core=\"0\",result=\"duplicate\"}"], 9.0);
        assert_eq!(v["trawl_nodes_bep51{core=\"1\",support=\"yes\"}"], 300.0);
        assert_eq!(v["trawl_known_nodes{core=\"0\"}"], 500.0);
        assert_eq!(v["trawl_handover_queue_capacity{core=\"1\"}"], 1024.0);
        assert_eq!(v["trawl_storage_infohashes_total{result=\"new\"}"], 45.0);
        assert_eq!(v["trawl_storage_commit_seconds_total"], 7.5);
        assert_eq!(v["trawl_storage_commits_total"], 12.0);
        assert_eq!(v["trawl_staging_backlog"], 42.0);
        assert_eq!(v["trawl_storage_requeued_for_new_peers_total"], 18.0);
        assert_eq!(v["trawl_storage_queue_dropped_full_total"], 21.0);
        assert_eq!(v["trawl_storage_queue_expired_total"], 0.0);
        assert_eq!(v["trawl_storage_provisional_names_total"], 24.0);
        assert_eq!(v["trawl_storage_rocksdb_memory_bytes"], (96 << 20) as f64);
        assert_eq!(v["trawl_memory_bytes{part=\"rust_heap_live\"}"], (40 << 20) as f64);
        assert_eq!(v["trawl_memory_bytes{part=\"libc_heap_in_use\"}"], (90 << 20) as f64);
        // A part the platform cannot tell is left out, not reported as 0.
        assert!(!v.contains_key("trawl_memory_bytes{part=\"libc_heap_free\"}"));
        assert_eq!(v["trawl_writer_channel_capacity"], 64.0);
        assert_eq!(v["trawl_metadata_fetches_total{outcome=\"ok\"}"], 15.0);
        assert_eq!(v["trawl_metadata_fetches_total{outcome=\"dial_timeout\"}"], 3.0);
        assert_eq!(v["trawl_paused"], 1.0);
        assert!(text.contains("# TYPE trawl_datagrams_in counter"), "{text}");
        assert!(text.contains("# TYPE trawl_known_nodes gauge"), "{text}");
    }

    fn http(addr: SocketAddr, request: &[u8]) -> (String, String) {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(request).unwrap();
        let mut reply = String::new();
        s.read_to_string(&mut reply).unwrap();
        let (head, body) = reply.split_once("\r\n\r\n").unwrap();
        (head.to_string(), body.to_string())
    }

    #[test]
    fn server_serves_fresh_figures_on_loopback_and_refuses_the_rest() {
        let step = Arc::new(AtomicU64::new(1));
        let source = {
            let step = Arc::clone(&step);
            Source::Crawl(Arc::new(move || snapshot(step.load(Ordering::Relaxed))))
        };
        let server = MetricsServer::start("127.0.0.1:0".parse().unwrap(), source).unwrap();
        let addr = server.local_addr();
        assert_ne!(addr.port(), 0);

        let (head, body) = http(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
        assert!(head.contains(CONTENT_TYPE), "{head}");
        assert_eq!(parse(&body)["trawl_datagrams_in_total{core=\"0\"}"], 100.0);

        // The next scrape sees the source's new figures, not a cached text.
        step.store(2, Ordering::Relaxed);
        let (_, body) = http(addr, b"GET /metrics?x=1 HTTP/1.0\r\n\r\n");
        assert_eq!(parse(&body)["trawl_datagrams_in_total{core=\"0\"}"], 200.0);

        assert!(http(addr, b"GET / HTTP/1.1\r\n\r\n").0.starts_with("HTTP/1.1 404"));
        assert!(http(addr, b"POST /metrics HTTP/1.1\r\n\r\n")
            .0
            .starts_with("HTTP/1.1 405"));
        assert!(http(addr, b"\x00\xff garbage\r\n\r\n").0.starts_with("HTTP/1.1 400"));
        let mut huge = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
        huge.resize(MAX_REQUEST_BYTES + 100, b'a');
        assert!(http(addr, &huge).0.starts_with("HTTP/1.1 431"));

        // A panicking source is a 500, and the server keeps serving.
        drop(server);
        let server = MetricsServer::start(
            "127.0.0.1:0".parse().unwrap(),
            Source::Crawl(Arc::new(|| panic!("source"))),
        )
        .unwrap();
        let (head, _) = http(server.local_addr(), b"GET /metrics HTTP/1.1\r\n\r\n");
        assert!(head.starts_with("HTTP/1.1 500"), "{head}");
        let (head, _) = http(server.local_addr(), b"GET /metrics HTTP/1.1\r\n\r\n");
        assert!(head.starts_with("HTTP/1.1 500"), "{head}");
    }

    #[test]
    fn port_in_use_is_a_clear_error() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let err = MetricsServer::start(addr, Source::Crawl(Arc::new(CrawlSnapshot::default)))
            .err()
            .unwrap();
        let text = err.to_string();
        assert!(text.starts_with(&format!("cannot serve metrics on {addr}: ")), "{text}");
    }

    #[test]
    fn routes_from_bytes() {
        assert_eq!(route(b"GET /metrics HTTP/1.1\r\n\r\n", true), Route::Metrics);
        assert_eq!(route(b"GET /metricsx HTTP/1.1\r\n\r\n", true), Route::NotFound);
        assert_eq!(route(b"HEAD /metrics HTTP/1.1\r\n\r\n", true), Route::MethodNotAllowed);
        assert_eq!(route(b"GET /metrics\r\n\r\n", true), Route::BadRequest);
        assert_eq!(route(b"GET /metrics HTTP/1.1\r\n", false), Route::BadRequest);
        assert_eq!(route(&[b'a'; MAX_REQUEST_BYTES], false), Route::TooLarge);
    }
}
