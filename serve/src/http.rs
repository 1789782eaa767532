//! The server: its threads, the routes, the JSON API, access control and
//! the headers every answer carries.
//!
//! Owns the HTTP edge. Everything a client sends is bounded here or in
//! [`crate::query`] and answered with a stable error object
//! (`{"error": {"status": 400, "code": "bad_request", "message": "..."}}`).
//! Searches run on tokio's blocking pool, one per core at once
//! ([`search_slots`]), each answered within [`SEARCH_TIMEOUT`] or refused with 503.
//! Nothing here writes to the store.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tokio::sync::Semaphore;
use trawl_storage::export::magnet_link;
use trawl_storage::{InfoHash, Store};

use crate::index::{hex, SearchIndex, POLL};
use crate::live::{Live, Sample, EXACT_EVERY, SAMPLE_EVERY};
use crate::query::{BadRequest, SearchRequest};
use crate::search::{Page, Searcher};
use crate::ServeError;

/// Searches running at once: one per core. A search is CPU work from start to
/// end, so more at once only share the cores: with 16 running on 2 cores a
/// 30 ms search takes 240 ms. The rest wait for a slot in arrival order
/// (tokio's semaphore is fair), within [`SEARCH_TIMEOUT`].
pub fn search_slots() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}
/// A search not answered within this is refused with 503 (tantivy cannot be
/// interrupted; the slot frees when it ends).
pub const SEARCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest query string accepted, in bytes (414 beyond).
pub const MAX_QUERY_STRING: usize = 4096;
/// The default `--listen` address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9478";

/// Every answer: no script runs but our own files, nothing is framed or sniffed.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
     form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// How `trawl serve` runs.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// The crawl's database (followed as a RocksDB secondary).
    pub db: PathBuf,
    /// The search index's directory.
    pub index_dir: PathBuf,
    pub listen: SocketAddr,
    /// Required when `listen` is not loopback: a bearer token, HTTP Basic
    /// password or Torznab `apikey`.
    pub token: Option<String>,
    /// HTTP worker threads (tokio), never a crawl core's.
    pub threads: usize,
}

impl ServeOptions {
    /// The index directory `trawl serve` uses by default: beside the database.
    pub fn default_index_dir(db: &std::path::Path) -> PathBuf {
        let mut name = db
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_else(|| "trawl-db".into());
        name.push(".search");
        db.with_file_name(name)
    }

    pub fn check(&self) -> Result<(), ServeError> {
        if !self.listen.ip().is_loopback() && self.token.as_deref().is_none_or(str::is_empty) {
            return Err(ServeError::Config(format!(
                "--listen {} is not a loopback address: give --token (clients then send it as a bearer \
                 token, HTTP Basic password or Torznab apikey)",
                self.listen
            )));
        }
        if self.token.as_ref().is_some_and(|t| t.len() < 16) {
            return Err(ServeError::Config("--token must be at least 16 characters".into()));
        }
        Ok(())
    }
}

/// What the handlers share.
pub struct AppState {
    pub store: Store,
    pub index: SearchIndex,
    pub live: Mutex<Live>,
    pub token: Option<String>,
    pub searches: Arc<Semaphore>,
    pub started: u64,
}

pub type Shared = Arc<AppState>;

pub fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Runs the server until `stop` is set: the follower thread, the sampler
/// thread and the HTTP runtime. `ready` hears the bound address.
pub fn serve(opts: ServeOptions, stop: Arc<AtomicBool>, ready: impl FnOnce(SocketAddr)) -> Result<(), ServeError> {
    opts.check()?;
    let store = Store::open_follower(&opts.db, opts.index_dir.join("follower"))?;
    let index = SearchIndex::open(&opts.index_dir)?;
    let mut indexer = index.writer()?;
    let state = Arc::new(AppState {
        store,
        index,
        live: Mutex::new(Live::default()),
        token: opts.token.clone(),
        searches: Arc::new(Semaphore::new(search_slots())),
        started: now_secs(),
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(opts.threads.max(1))
        .max_blocking_threads(search_slots() + 8)
        .thread_name("trawl-http")
        .enable_all()
        .build()
        .map_err(|e| ServeError::Bind(format!("cannot start the HTTP runtime: {e}")))?;
    let listener = rt
        .block_on(tokio::net::TcpListener::bind(opts.listen))
        .map_err(|e| ServeError::Bind(format!("cannot listen on {}: {e}", opts.listen)))?;
    let addr = listener.local_addr().map_err(|e| ServeError::Bind(e.to_string()))?;

    let follower = {
        let (state, stop) = (Arc::clone(&state), Arc::clone(&stop));
        std::thread::Builder::new()
            .name("trawl-index".into())
            .spawn(move || {
                let mut warned = false;
                while !stop.load(Relaxed) {
                    let step = state
                        .store
                        .catch_up()
                        .map_err(ServeError::Store)
                        .and_then(|()| indexer.follow_once(&state.store));
                    match step {
                        Ok(s) if s.committed => warned = false,
                        Ok(_) => {}
                        Err(e) if !warned => {
                            tracing::warn!("search index: {e}; retrying");
                            warned = true;
                        }
                        Err(_) => {}
                    }
                    std::thread::sleep(POLL);
                }
                if let Err(e) = indexer.finish() {
                    tracing::warn!("search index: last commit failed: {e}");
                }
            })
            .map_err(|e| ServeError::Index(e.to_string()))?
    };
    let sampler = {
        let (state, stop) = (Arc::clone(&state), Arc::clone(&stop));
        std::thread::Builder::new()
            .name("trawl-sampler".into())
            .spawn(move || sample_loop(&state, &stop))
            .map_err(|e| ServeError::Index(e.to_string()))?
    };

    ready(addr);
    tracing::info!("serving {} on http://{addr}/", opts.db.display());
    let app = router(Arc::clone(&state));
    let stop_http = Arc::clone(&stop);
    let served = rt.block_on(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                while !stop_http.load(Relaxed) {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            })
            .await
    });
    stop.store(true, Relaxed);
    let _ = follower.join();
    let _ = sampler.join();
    rt.shutdown_timeout(Duration::from_secs(2));
    served.map_err(|e| ServeError::Bind(e.to_string()))
}

fn sample_loop(state: &AppState, stop: &AtomicBool) {
    let mut last_exact: Option<std::time::Instant> = None;
    let mut next = std::time::Instant::now();
    while !stop.load(Relaxed) {
        if std::time::Instant::now() >= next {
            next += SAMPLE_EVERY;
            if let Ok(s) = Sample::read(&state.store, now_secs()) {
                state.live.lock().unwrap_or_else(|p| p.into_inner()).push(s);
            }
            if last_exact.is_none_or(|t| t.elapsed() >= EXACT_EVERY) {
                last_exact = Some(std::time::Instant::now());
                match state.store.stats() {
                    Ok(s) => state
                        .live
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .set_exact(now_secs(), s),
                    Err(e) => tracing::warn!("stats: {e}"),
                }
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Every route.
pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/api/search", get(api_search))
        .route("/api/torrent/{hash}", get(api_torrent))
        .route("/api/stats", get(api_stats))
        .route("/torznab/api", get(crate::torznab::handler))
        .merge(crate::pages::routes())
        .fallback(unknown_path)
        .layer(axum::middleware::from_fn_with_state(Arc::clone(&state), guard))
        .with_state(state)
}

/// A path no route has: the API's JSON error under `/api/` and `/torznab/`,
/// an HTML page for a browser everywhere else.
async fn unknown_path(uri: axum::http::Uri) -> Response {
    let path = uri.path();
    if path.starts_with("/api/") || path.starts_with("/torznab/") {
        ApiError::not_found("no such page").into_response()
    } else {
        crate::pages::error_page(StatusCode::NOT_FOUND, "Not found", "There is no page at this address.")
    }
}

/// Access control and the headers of every answer.
async fn guard(State(state): State<Shared>, req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let mut resp = if req.method() != axum::http::Method::GET && req.method() != axum::http::Method::HEAD {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "only GET is served",
        )
        .into_response()
    } else if req.uri().query().is_some_and(|q| q.len() > MAX_QUERY_STRING) {
        ApiError::new(
            StatusCode::URI_TOO_LONG,
            "uri_too_long",
            format!("the query string is over {MAX_QUERY_STRING} bytes"),
        )
        .into_response()
    } else if !authorized(&state, req.headers(), req.uri().query()) {
        let mut r = ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "a token is required").into_response();
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"trawl\""),
        );
        r
    } else {
        next.run(req).await
    };
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    resp
}

/// A bearer token, HTTP Basic with the token as password, or `apikey=` in
/// the query (Torznab clients send that), compared in constant time.
fn authorized(state: &AppState, headers: &HeaderMap, query: Option<&str>) -> bool {
    let Some(token) = state.token.as_deref() else {
        return true;
    };
    if let Some(v) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        if let Some(t) = v.strip_prefix("Bearer ") {
            return ct_eq(t.trim().as_bytes(), token.as_bytes());
        }
        if let Some(b) = v.strip_prefix("Basic ") {
            let decoded = base64_decode(b.trim()).unwrap_or_default();
            let pass = decoded
                .iter()
                .position(|&c| c == b':')
                .map_or(&decoded[..], |i| &decoded[i + 1..]);
            return ct_eq(pass, token.as_bytes());
        }
    }
    query.is_some_and(|q| {
        form_urlencoded::parse(q.as_bytes()).any(|(k, v)| k == "apikey" && ct_eq(v.as_bytes(), token.as_bytes()))
    })
}

/// Equal bytes, in time that depends on the lengths only.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y));
    std::hint::black_box(diff) == 0
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let s = s.trim_end_matches('=').as_bytes();
    if s.len() > 1024 {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    for chunk in s.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= val(c)? << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

/// The stable error object.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
    pub fn bad(e: BadRequest) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", e.0)
    }
    pub fn not_found(m: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", m)
    }
    pub fn internal(e: impl std::fmt::Display) -> Self {
        tracing::warn!("serve: {e}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the server could not answer; see its log",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"status": self.status.as_u16(), "code": self.code, "message": self.message}});
        (self.status, Json(body)).into_response()
    }
}

/// The query string as pairs (empty when absent).
pub fn params(q: &Option<String>) -> Vec<(String, String)> {
    q.as_deref()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

/// Runs one search on the blocking pool, bounded in concurrency and time.
pub async fn run_search(state: &Shared, r: SearchRequest) -> Result<Page, ApiError> {
    let busy = || ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", "the server is busy; try again");
    let started = tokio::time::Instant::now();
    let permit = tokio::time::timeout(SEARCH_TIMEOUT, Arc::clone(&state.searches).acquire_owned())
        .await
        .map_err(|_| busy())?
        .map_err(|_| busy())?;
    let s = Arc::clone(state);
    // The slot goes with the search: one that outlives its answer still holds it.
    let job = tokio::task::spawn_blocking(move || {
        let page = Searcher::new(&s.index).search(&r);
        drop(permit);
        page
    });
    let page = tokio::time::timeout_at(started + SEARCH_TIMEOUT, job)
        .await
        .map_err(|_| busy())?;
    page.map_err(ApiError::internal)?.map_err(ApiError::internal)
}

async fn api_search(State(state): State<Shared>, RawQuery(q): RawQuery) -> Result<Json<Page>, ApiError> {
    let p = params(&q);
    let r = SearchRequest::parse(p.iter().map(|(k, v)| (k.as_str(), v.as_str()))).map_err(ApiError::bad)?;
    Ok(Json(run_search(&state, r).await?))
}

/// 40 hex digits (v1, hybrid, or a v2 hash's first 20 bytes) or 64 (a v2 SHA-256).
pub fn parse_hash(s: &str) -> Result<InfoHash, ApiError> {
    let bad = || {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "an infohash is 40 or 64 hex digits",
        )
    };
    if (s.len() != 40 && s.len() != 64) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let mut h = [0u8; 20];
    for (i, b) in h.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(h)
}

/// Everything the store knows of one torrent, as `/api/torrent/{hash}` gives it.
pub fn torrent_json(store: &Store, h: &InfoHash) -> Result<Option<serde_json::Value>, ApiError> {
    let Some(t) = store.torrent(h).map_err(ApiError::internal)? else {
        return Ok(None);
    };
    let seen = store.infohash(&t.info_hash).map_err(ApiError::internal)?;
    let files: Vec<_> = if t.files.is_empty() {
        vec![json!({"path": t.name_readable(), "length": t.total_size})]
    } else {
        t.files
            .iter()
            .map(|f| json!({"path": f.path_readable(), "length": f.length}))
            .collect()
    };
    Ok(Some(json!({
        "info_hash": hex(&t.info_hash),
        "info_hash_v2": t.v2_hash.map(|v| hex(&v)),
        "version": t.version.as_str(),
        "name": t.name_readable(),
        "size": t.total_size,
        "piece_length": t.piece_length,
        "private": t.private,
        "class": t.class.as_str(),
        "content_type": t.content_type.map(|c| c.as_str()),
        "files": files,
        "fetched_at": t.fetched_at,
        "first_seen": seen.map(|s| s.first_seen),
        "last_seen": seen.map(|s| s.last_seen),
        "times_seen": seen.map(|s| s.seen),
        "sources": seen.map(|s| s.sources.iter().map(|x| x.as_str()).collect::<Vec<_>>()),
        "scrape": t.scrape.map(|s| json!({"seeders": s.seeders, "leechers": s.leechers, "at": s.at})),
        "magnet": magnet_link(&t.info_hash, Some(&t)),
    })))
}

async fn api_torrent(
    State(state): State<Shared>,
    UrlPath(hash): UrlPath<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let h = parse_hash(&hash)?;
    let s = Arc::clone(&state);
    let found = tokio::task::spawn_blocking(move || torrent_json(&s.store, &h))
        .await
        .map_err(ApiError::internal)??;
    found
        .map(Json)
        .ok_or_else(|| ApiError::not_found("no torrent with this infohash is stored"))
}

/// `/api/stats`: the exact counts of `trawl stats` (as of `exact_at`), the
/// latest estimates, and rates over the last minute and hour.
pub fn stats_json(state: &AppState) -> Result<serde_json::Value, ApiError> {
    let live = state.live.lock().unwrap_or_else(|p| p.into_inner());
    let exact = match live.exact() {
        Some((at, s)) => Some((
            *at,
            trawl_storage::summary::stats_json(&state.store, s).map_err(ApiError::internal)?,
        )),
        None => None,
    };
    Ok(json!({
        "exact_at": exact.as_ref().map(|e| e.0),
        "exact": exact.map(|e| e.1),
        "estimate": live.latest(),
        "rates_1m": live.rates(Duration::from_secs(60)),
        "rates_1h": live.rates(Duration::from_secs(3600)),
        "index": {"documents": state.index.len()},
        "serving_since": state.started,
    }))
}

async fn api_stats(State(state): State<Shared>) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(stats_json(&state)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_and_decode() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"abcd"));
        assert_eq!(base64_decode("dXNlcjpzZWNyZXQ=").unwrap(), b"user:secret");
        assert_eq!(base64_decode("YQ").unwrap(), b"a");
        assert!(base64_decode("*!").is_none());
    }

    #[test]
    fn hashes_parse() {
        assert_eq!(parse_hash(&"ab".repeat(20)).unwrap(), [0xab; 20]);
        assert_eq!(parse_hash(&"0f".repeat(32)).unwrap(), [0x0f; 20]);
        assert!(parse_hash("abc").is_err());
        assert!(parse_hash(&"zz".repeat(20)).is_err());
    }

    #[test]
    fn a_public_address_needs_a_long_token() {
        let mut o = ServeOptions {
            db: "db".into(),
            index_dir: "db.search".into(),
            listen: "0.0.0.0:9478".parse().unwrap(),
            token: None,
            threads: 1,
        };
        assert!(o.check().unwrap_err().to_string().contains("--token"));
        o.token = Some("short".into());
        assert!(o.check().is_err());
        o.token = Some("0123456789abcdef".into());
        assert!(o.check().is_ok());
        o.listen = "127.0.0.1:0".parse().unwrap();
        o.token = None;
        assert!(o.check().is_ok());
        assert_eq!(
            ServeOptions::default_index_dir("/x/trawl-db".as_ref()),
            PathBuf::from("/x/trawl-db.search")
        );
    }
}
