//! The `trawl crawl` configuration file (TOML) and how it combines with flags.
//!
//! Precedence, per option: a flag given on the command line, else the key in
//! the `--config` file, else the built-in default ([`CrawlSettings::default`]).
//! Keys are the long flag names without `--`, under a `[crawl]` table;
//! `deploy/trawl.toml` lists them all with comments.
//!
//! Owns parsing, validation and merging only; it knows nothing of the crawl
//! runtime's types (the CLI turns [`CrawlSettings`] into crawler options).
//! Every error names the file and the key, on one line.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use trawl_engine::ops::OpsError;
use trawl_storage::{InfoDictMode, DEFAULT_QUEUE_MAX_ENTRIES};

/// Longest pacing delay a flag may ask for: BEP 51's longest `interval`.
const MAX_PACING_SECS: f64 = 21_600.0;
/// Highest per-IP query rate or burst a flag may ask for.
const MAX_PER_IP_RATE: f64 = 1_000.0;
/// RocksDB's memory budget: below 16 MB the memtables' half cannot hold a
/// write buffer; above 1 TB is a typo.
const DB_MEMORY_MB: std::ops::RangeInclusive<u64> = 16..=1 << 20;

/// One layer of crawl options (the file, or the flags): `None` = not given here.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CrawlLayer {
    pub db: Option<PathBuf>,
    pub port: Option<u16>,
    pub bind: Option<Ipv4Addr>,
    pub external_ip: Option<IpAddr>,
    pub ipv6: Option<bool>,
    pub cores: Option<usize>,
    pub pin: Option<bool>,
    pub bootstrap: Option<Vec<String>>,
    pub duration: Option<f64>,
    pub read_only: Option<bool>,
    pub allow_loopback: Option<bool>,
    pub fetch: Option<bool>,
    pub scrape: Option<bool>,
    pub fetch_concurrency: Option<usize>,
    pub metrics: Option<SocketAddr>,
    pub drain_secs: Option<f64>,
    pub bootstrap_timeout_secs: Option<f64>,
    pub log_every: Option<f64>,
    pub per_ip_rate: Option<f64>,
    pub per_ip_burst: Option<f64>,
    pub resample_secs: Option<f64>,
    pub empty_backoff_secs: Option<f64>,
    pub walk_secs: Option<f64>,
    pub db_memory_mb: Option<u64>,
    pub info_dicts: Option<InfoDictMode>,
    pub fetch_queue_max: Option<u64>,
    pub max_disk: Option<DiskSize>,
}

/// A size in bytes, written `20G`, `512MiB` or a bare byte count, as a flag
/// or a config value (a TOML string or integer).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawSize")]
pub struct DiskSize(pub u64);

#[derive(Deserialize)]
#[serde(untagged)]
enum RawSize {
    Bytes(u64),
    Text(String),
}

impl TryFrom<RawSize> for DiskSize {
    type Error = String;

    fn try_from(raw: RawSize) -> Result<Self, String> {
        match raw {
            RawSize::Bytes(0) => Err("a size must be at least one byte".into()),
            RawSize::Bytes(b) => Ok(DiskSize(b)),
            RawSize::Text(t) => t.parse(),
        }
    }
}

impl std::str::FromStr for DiskSize {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        trawl_storage::parse_size(s).map(DiskSize)
    }
}

/// The file's top level: one table per subcommand that reads it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    crawl: CrawlLayer,
}

/// A value that parses but cannot be used, with the key it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct BadValue {
    pub key: &'static str,
    pub message: String,
}

impl CrawlLayer {
    /// Reads the `[crawl]` table of a TOML file.
    pub fn load(path: &Path) -> Result<CrawlLayer, OpsError> {
        let text = std::fs::read_to_string(path).map_err(|source| OpsError::ConfigRead {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text).map_err(|message| OpsError::ConfigInvalid {
            path: path.to_path_buf(),
            message,
        })
    }

    /// Parses and validates file text; the error is one line naming the key.
    pub fn parse(text: &str) -> Result<CrawlLayer, String> {
        let file: ConfigFile = toml::from_str(text).map_err(|e| describe_toml_error(text, &e))?;
        file.crawl
            .validate()
            .map_err(|bad| format!("key `crawl.{}`: {}", bad.key, bad.message))?;
        Ok(file.crawl)
    }

    /// Values that parse but make no sense. Flags go through the same check.
    pub fn validate(&self) -> Result<(), BadValue> {
        let bad = |key, message: &str| {
            Err(BadValue {
                key,
                message: message.to_string(),
            })
        };
        if self.cores == Some(0) {
            return bad("cores", "must be at least 1");
        }
        if self.fetch_concurrency == Some(0) {
            return bad("fetch-concurrency", "must be at least 1");
        }
        if self.fetch_queue_max == Some(0) {
            return bad(
                "fetch-queue-max",
                "must be at least 1 (use --no-fetch to queue nothing)",
            );
        }
        for (key, secs) in [
            ("duration", self.duration),
            ("drain-secs", self.drain_secs),
            ("log-every", self.log_every),
        ] {
            if secs.is_some_and(|s| !(s.is_finite() && s > 0.0)) {
                return bad(key, "must be a positive number of seconds");
            }
        }
        if self
            .bootstrap_timeout_secs
            .is_some_and(|s| !(s.is_finite() && s >= 0.0))
        {
            return bad("bootstrap-timeout-secs", "must be a number of seconds, 0 for never");
        }
        // Zero is allowed: the node's own `interval` (or the doubling) alone decides.
        for (key, secs) in [
            ("resample-secs", self.resample_secs),
            ("empty-backoff-secs", self.empty_backoff_secs),
        ] {
            if secs.is_some_and(|s| !(s.is_finite() && (0.0..=MAX_PACING_SECS).contains(&s))) {
                return bad(key, "must be between 0 and 21600 seconds");
            }
        }
        if self
            .walk_secs
            .is_some_and(|s| !(s.is_finite() && s > 0.0 && s <= MAX_PACING_SECS))
        {
            return bad("walk-secs", "must be more than 0 and at most 21600 seconds");
        }
        if self
            .per_ip_rate
            .is_some_and(|r| !(r.is_finite() && r > 0.0 && r <= MAX_PER_IP_RATE))
        {
            return bad("per-ip-rate", "must be more than 0 and at most 1000 queries/s");
        }
        if self
            .per_ip_burst
            .is_some_and(|b| !(b.is_finite() && (1.0..=MAX_PER_IP_RATE).contains(&b)))
        {
            return bad("per-ip-burst", "must be between 1 and 1000 queries");
        }
        if self.db_memory_mb.is_some_and(|mb| !DB_MEMORY_MB.contains(&mb)) {
            return bad("db-memory-mb", "must be between 16 and 1048576 MB");
        }
        if self.bootstrap.as_ref().is_some_and(Vec::is_empty) {
            return bad(
                "bootstrap",
                "must list at least one HOST:PORT (leave it out for the public routers)",
            );
        }
        Ok(())
    }

    /// This layer over `lower`: each option from `self` if given, else from `lower`.
    pub fn over(self, lower: CrawlLayer) -> CrawlLayer {
        CrawlLayer {
            db: self.db.or(lower.db),
            port: self.port.or(lower.port),
            bind: self.bind.or(lower.bind),
            external_ip: self.external_ip.or(lower.external_ip),
            ipv6: self.ipv6.or(lower.ipv6),
            cores: self.cores.or(lower.cores),
            pin: self.pin.or(lower.pin),
            bootstrap: self.bootstrap.or(lower.bootstrap),
            duration: self.duration.or(lower.duration),
            read_only: self.read_only.or(lower.read_only),
            allow_loopback: self.allow_loopback.or(lower.allow_loopback),
            fetch: self.fetch.or(lower.fetch),
            scrape: self.scrape.or(lower.scrape),
            fetch_concurrency: self.fetch_concurrency.or(lower.fetch_concurrency),
            metrics: self.metrics.or(lower.metrics),
            drain_secs: self.drain_secs.or(lower.drain_secs),
            bootstrap_timeout_secs: self.bootstrap_timeout_secs.or(lower.bootstrap_timeout_secs),
            log_every: self.log_every.or(lower.log_every),
            per_ip_rate: self.per_ip_rate.or(lower.per_ip_rate),
            per_ip_burst: self.per_ip_burst.or(lower.per_ip_burst),
            resample_secs: self.resample_secs.or(lower.resample_secs),
            empty_backoff_secs: self.empty_backoff_secs.or(lower.empty_backoff_secs),
            walk_secs: self.walk_secs.or(lower.walk_secs),
            db_memory_mb: self.db_memory_mb.or(lower.db_memory_mb),
            info_dicts: self.info_dicts.or(lower.info_dicts),
            fetch_queue_max: self.fetch_queue_max.or(lower.fetch_queue_max),
            max_disk: self.max_disk.or(lower.max_disk),
        }
    }
}

/// Every crawl option with a value: flags over file over these defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct CrawlSettings {
    /// No default: it must come from `--db` or the file.
    pub db: Option<PathBuf>,
    pub port: u16,
    pub bind: Ipv4Addr,
    /// BEP 42: this host's public address; `None` = voted from replies.
    pub external_ip: Option<IpAddr>,
    pub ipv6: bool,
    /// `None` = every online CPU.
    pub cores: Option<usize>,
    pub pin: bool,
    /// Empty = the public routers.
    pub bootstrap: Vec<String>,
    /// `None` = until SIGINT or SIGTERM.
    pub duration: Option<Duration>,
    pub read_only: bool,
    pub allow_loopback: bool,
    pub fetch: bool,
    /// Send BEP 33 scrapes for counts (peers come from a plain `get_peers` either way).
    pub scrape: bool,
    /// Per core; `None` = the fetcher's default.
    pub fetch_concurrency: Option<usize>,
    pub metrics: Option<SocketAddr>,
    /// Longest wait for the final flush after SIGINT/SIGTERM before exiting anyway.
    pub drain: Duration,
    /// Give up when no DHT node has answered within this; `None`: never.
    pub bootstrap_timeout: Option<Duration>,
    /// Interval of the status log line when stderr is not a terminal.
    pub log_every: Duration,
    /// Crawl pacing; `None` = the scheduler's polite default
    /// ([`CrawlConfig`](trawl_engine::crawl::CrawlConfig)).
    pub pacing: Pacing,
    /// RocksDB's memory budget in bytes; `None` = the store's default.
    pub db_memory: Option<usize>,
    /// How much of each fetched info dict to keep.
    pub info_dicts: InfoDictMode,
    /// Most entries the metadata-fetch queue holds.
    pub fetch_queue_max: u64,
    /// The disk budget in bytes; `None` = none.
    pub max_disk: Option<u64>,
}

/// The scheduler's pacing knobs, each `None` unless given.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Pacing {
    /// Queries per second and burst per remote IP.
    pub per_ip_rate: Option<f64>,
    pub per_ip_burst: Option<f64>,
    /// Earliest re-sample of a productive node (its own `interval` wins when longer).
    pub resample: Option<Duration>,
    /// First back-off after a sample with nothing new (doubles per empty sample).
    pub empty_backoff: Option<Duration>,
    /// How often each node is asked `find_node`.
    pub walk: Option<Duration>,
}

impl Default for CrawlSettings {
    fn default() -> Self {
        CrawlSettings {
            db: None,
            port: 6881,
            bind: Ipv4Addr::UNSPECIFIED,
            external_ip: None,
            ipv6: true,
            cores: None,
            pin: true,
            bootstrap: Vec::new(),
            duration: None,
            read_only: true,
            allow_loopback: false,
            fetch: true,
            scrape: true,
            fetch_concurrency: None,
            metrics: None,
            drain: Duration::from_secs(30),
            bootstrap_timeout: Some(Duration::from_secs(300)),
            log_every: Duration::from_secs(10),
            pacing: Pacing::default(),
            db_memory: None,
            // A crawl that indexes needs names and paths, not the piece hashes
            // that are about 97% of a dict's bytes (bench/RESULTS.md).
            info_dicts: InfoDictMode::Files,
            fetch_queue_max: DEFAULT_QUEUE_MAX_ENTRIES,
            max_disk: None,
        }
    }
}

impl CrawlSettings {
    /// `flags` over `file` (if any) over the defaults. Both layers must
    /// already be validated.
    pub fn resolve(flags: CrawlLayer, file: Option<CrawlLayer>) -> CrawlSettings {
        let l = flags.over(file.unwrap_or_default());
        let d = CrawlSettings::default();
        CrawlSettings {
            db: l.db,
            port: l.port.unwrap_or(d.port),
            bind: l.bind.unwrap_or(d.bind),
            external_ip: l.external_ip,
            ipv6: l.ipv6.unwrap_or(d.ipv6),
            cores: l.cores,
            pin: l.pin.unwrap_or(d.pin),
            bootstrap: l.bootstrap.unwrap_or(d.bootstrap),
            duration: l.duration.map(Duration::from_secs_f64),
            read_only: l.read_only.unwrap_or(d.read_only),
            allow_loopback: l.allow_loopback.unwrap_or(d.allow_loopback),
            fetch: l.fetch.unwrap_or(d.fetch),
            scrape: l.scrape.unwrap_or(d.scrape),
            fetch_concurrency: l.fetch_concurrency,
            metrics: l.metrics,
            drain: l.drain_secs.map_or(d.drain, Duration::from_secs_f64),
            bootstrap_timeout: match l.bootstrap_timeout_secs {
                None => d.bootstrap_timeout,
                Some(s) if s == 0.0 => None,
                Some(s) => Some(Duration::from_secs_f64(s)),
            },
            log_every: l.log_every.map_or(d.log_every, Duration::from_secs_f64),
            pacing: Pacing {
                per_ip_rate: l.per_ip_rate,
                per_ip_burst: l.per_ip_burst,
                resample: l.resample_secs.map(Duration::from_secs_f64),
                empty_backoff: l.empty_backoff_secs.map(Duration::from_secs_f64),
                walk: l.walk_secs.map(Duration::from_secs_f64),
            },
            db_memory: l.db_memory_mb.map(|mb| (mb as usize).saturating_mul(1 << 20)),
            info_dicts: l.info_dicts.unwrap_or(d.info_dicts),
            fetch_queue_max: l.fetch_queue_max.unwrap_or(d.fetch_queue_max),
            max_disk: l.max_disk.map(|s| s.0),
        }
    }
}

/// toml's own message spans several lines with a caret drawing; this keeps
/// its first line and adds the line number and, when the error points at a
/// value, the key it belongs to (serde's message names the type, not the key).
fn describe_toml_error(text: &str, err: &toml::de::Error) -> String {
    let message = err.message().lines().next().unwrap_or("invalid TOML").to_string();
    let Some(span) = err.span() else {
        return message;
    };
    let start = span.start.min(text.len());
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line_no = text[..start].matches('\n').count() + 1;
    let line = text[line_start..].lines().next().unwrap_or("");
    let column = start - line_start;
    match line.find('=') {
        Some(eq) if column > eq => format!("line {line_no}: key `{}`: {message}", line[..eq].trim()),
        _ => format!("line {line_no}: {message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"
        [crawl]
        db = "/var/lib/trawl/db"
        port = 6999
        bind = "0.0.0.0"
        ipv6 = false
        cores = 2
        pin = false
        bootstrap = ["127.1.0.1:36881"]
        duration = 60
        read-only = false
        allow-loopback = true
        fetch = false
        fetch-concurrency = 16
        metrics = "127.0.0.1:9090"
        drain-secs = 5
        log-every = 2.5
        per-ip-rate = 4
        per-ip-burst = 8
        resample-secs = 0
        empty-backoff-secs = 1.5
        walk-secs = 120
        db-memory-mb = 512
    "#;

    #[test]
    fn every_key_parses() {
        let l = CrawlLayer::parse(FULL).unwrap();
        let s = CrawlSettings::resolve(CrawlLayer::default(), Some(l));
        assert_eq!(s.db.as_deref(), Some(Path::new("/var/lib/trawl/db")));
        assert_eq!((s.port, s.cores, s.fetch_concurrency), (6999, Some(2), Some(16)));
        assert_eq!(
            (s.ipv6, s.pin, s.read_only, s.allow_loopback, s.fetch),
            (false, false, false, true, false)
        );
        assert_eq!(s.bootstrap, vec!["127.1.0.1:36881".to_string()]);
        assert_eq!(s.duration, Some(Duration::from_secs(60)));
        assert_eq!(s.metrics, Some("127.0.0.1:9090".parse().unwrap()));
        assert_eq!(
            (s.drain, s.log_every),
            (Duration::from_secs(5), Duration::from_millis(2500))
        );
        assert_eq!(
            s.pacing,
            Pacing {
                per_ip_rate: Some(4.0),
                per_ip_burst: Some(8.0),
                resample: Some(Duration::ZERO),
                empty_backoff: Some(Duration::from_millis(1500)),
                walk: Some(Duration::from_secs(120)),
            }
        );
        assert_eq!(s.db_memory, Some(512 << 20));
    }

    #[test]
    fn flags_beat_the_file_and_the_file_beats_defaults() {
        let file = CrawlLayer::parse("[crawl]\nport = 7000\ncores = 3\nfetch = false\n").unwrap();
        let flags = CrawlLayer {
            port: Some(7001),
            fetch: Some(true),
            ..CrawlLayer::default()
        };
        let s = CrawlSettings::resolve(flags, Some(file));
        assert_eq!(s.port, 7001, "flag over file");
        assert!(s.fetch, "flag over file, for a boolean too");
        assert_eq!(s.cores, Some(3), "file over default");
        assert_eq!(s.fetch_concurrency, None, "default when neither gives it");
        assert_eq!(
            CrawlSettings::resolve(CrawlLayer::default(), None),
            CrawlSettings::default()
        );
        // An empty file, or one without a [crawl] table, changes nothing.
        assert_eq!(CrawlLayer::parse("").unwrap(), CrawlLayer::default());
    }

    #[test]
    fn errors_name_the_key_and_the_line() {
        let cases = [
            ("[crawl]\nprot = 1\n", &["line 2", "unknown field `prot`"][..]),
            ("[crawl]\nport = \"high\"\n", &["line 2", "`port`", "invalid type"][..]),
            ("[crawl]\nport = 70000\n", &["line 2", "`port`"][..]),
            ("[crawl]\nmetrics = \"localhost\"\n", &["line 2", "`metrics`"][..]),
            ("[crawl]\ncores = 0\n", &["`crawl.cores`", "at least 1"][..]),
            ("[crawl]\nduration = -1\n", &["`crawl.duration`", "positive"][..]),
            ("[crawl]\nbootstrap = []\n", &["`crawl.bootstrap`"][..]),
            (
                "[crawl]\nper-ip-rate = 0\n",
                &["`crawl.per-ip-rate`", "more than 0"][..],
            ),
            (
                "[crawl]\nper-ip-burst = 0.5\n",
                &["`crawl.per-ip-burst`", "between 1"][..],
            ),
            (
                "[crawl]\nresample-secs = -1\n",
                &["`crawl.resample-secs`", "between 0"][..],
            ),
            (
                "[crawl]\nempty-backoff-secs = 1e9\n",
                &["`crawl.empty-backoff-secs`"][..],
            ),
            ("[crawl]\nwalk-secs = 0\n", &["`crawl.walk-secs`", "more than 0"][..]),
            (
                "[crawl]\ndb-memory-mb = 8\n",
                &["`crawl.db-memory-mb`", "between 16"][..],
            ),
            ("[crawl]\ndb-memory-mb = -1\n", &["line 2", "`db-memory-mb`"][..]),
            (
                "[crawl]\nfetch-queue-max = 0\n",
                &["`crawl.fetch-queue-max`", "at least 1"][..],
            ),
            (
                "[crawl]\ninfo-dicts = \"pieces\"\n",
                &["line 2", "unknown variant `pieces`"][..],
            ),
            ("[crawler]\nport = 1\n", &["line 1", "unknown field `crawler`"][..]),
            ("[crawl\n", &["line 1"][..]),
        ];
        for (text, needles) in cases {
            let err = CrawlLayer::parse(text).unwrap_err();
            assert!(!err.contains('\n'), "{text:?}: {err}");
            for needle in needles {
                assert!(err.contains(needle), "{text:?}: {needle} not in {err}");
            }
        }
    }

    #[test]
    fn the_shipped_example_parses() {
        let text = include_str!("../../deploy/trawl.toml");
        let l = CrawlLayer::parse(text).unwrap();
        assert_eq!(l.read_only, Some(false));
        assert!(l.db.is_some() && l.metrics.is_some());
        // Every key is documented in the example, set or commented out.
        for key in [
            "db",
            "port",
            "bind",
            "external-ip",
            "ipv6",
            "cores",
            "pin",
            "bootstrap",
            "duration",
            "read-only",
            "allow-loopback",
            "fetch",
            "scrape",
            "fetch-concurrency",
            "metrics",
            "drain-secs",
            "bootstrap-timeout-secs",
            "log-every",
            "per-ip-rate",
            "per-ip-burst",
            "resample-secs",
            "empty-backoff-secs",
            "walk-secs",
            "db-memory-mb",
            "info-dicts",
            "fetch-queue-max",
        ] {
            assert!(
                text.contains(&format!("\n{key} = ")) || text.contains(&format!("# {key} = ")),
                "{key}"
            );
        }
    }

    #[test]
    fn load_names_the_file() {
        let dir = std::env::temp_dir().join(format!("trawl-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bad.toml");
        std::fs::write(&path, "[crawl]\nfetch = 3\n").unwrap();
        let err = CrawlLayer::load(&path).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("config {}: line 2: key `fetch`", path.display())),
            "{err}"
        );
        let err = CrawlLayer::load(&dir.join("missing.toml")).unwrap_err().to_string();
        assert!(err.starts_with("cannot read config "), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
