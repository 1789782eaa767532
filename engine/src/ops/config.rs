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

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::OpsError;

/// One layer of crawl options (the file, or the flags): `None` = not given here.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CrawlLayer {
    pub db: Option<PathBuf>,
    pub port: Option<u16>,
    pub bind: Option<Ipv4Addr>,
    pub ipv6: Option<bool>,
    pub cores: Option<usize>,
    pub pin: Option<bool>,
    pub bootstrap: Option<Vec<String>>,
    pub duration: Option<f64>,
    pub read_only: Option<bool>,
    pub allow_loopback: Option<bool>,
    pub fetch: Option<bool>,
    pub fetch_concurrency: Option<usize>,
    pub metrics: Option<SocketAddr>,
    pub drain_secs: Option<f64>,
    pub log_every: Option<f64>,
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
        for (key, secs) in [
            ("duration", self.duration),
            ("drain-secs", self.drain_secs),
            ("log-every", self.log_every),
        ] {
            if secs.is_some_and(|s| !(s.is_finite() && s > 0.0)) {
                return bad(key, "must be a positive number of seconds");
            }
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
            ipv6: self.ipv6.or(lower.ipv6),
            cores: self.cores.or(lower.cores),
            pin: self.pin.or(lower.pin),
            bootstrap: self.bootstrap.or(lower.bootstrap),
            duration: self.duration.or(lower.duration),
            read_only: self.read_only.or(lower.read_only),
            allow_loopback: self.allow_loopback.or(lower.allow_loopback),
            fetch: self.fetch.or(lower.fetch),
            fetch_concurrency: self.fetch_concurrency.or(lower.fetch_concurrency),
            metrics: self.metrics.or(lower.metrics),
            drain_secs: self.drain_secs.or(lower.drain_secs),
            log_every: self.log_every.or(lower.log_every),
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
    /// Per core; `None` = the fetcher's default.
    pub fetch_concurrency: Option<usize>,
    pub metrics: Option<SocketAddr>,
    /// Longest wait for the final flush after SIGINT/SIGTERM before exiting anyway.
    pub drain: Duration,
    /// Interval of the status log line when stderr is not a terminal.
    pub log_every: Duration,
}

impl Default for CrawlSettings {
    fn default() -> Self {
        CrawlSettings {
            db: None,
            port: 6881,
            bind: Ipv4Addr::UNSPECIFIED,
            ipv6: true,
            cores: None,
            pin: true,
            bootstrap: Vec::new(),
            duration: None,
            read_only: true,
            allow_loopback: false,
            fetch: true,
            fetch_concurrency: None,
            metrics: None,
            drain: Duration::from_secs(30),
            log_every: Duration::from_secs(10),
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
            ipv6: l.ipv6.unwrap_or(d.ipv6),
            cores: l.cores,
            pin: l.pin.unwrap_or(d.pin),
            bootstrap: l.bootstrap.unwrap_or(d.bootstrap),
            duration: l.duration.map(Duration::from_secs_f64),
            read_only: l.read_only.unwrap_or(d.read_only),
            allow_loopback: l.allow_loopback.unwrap_or(d.allow_loopback),
            fetch: l.fetch.unwrap_or(d.fetch),
            fetch_concurrency: l.fetch_concurrency,
            metrics: l.metrics,
            drain: l.drain_secs.map_or(d.drain, Duration::from_secs_f64),
            log_every: l.log_every.map_or(d.log_every, Duration::from_secs_f64),
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
        let text = include_str!("../../../deploy/trawl.toml");
        let l = CrawlLayer::parse(text).unwrap();
        assert_eq!(l.read_only, Some(false));
        assert!(l.db.is_some() && l.metrics.is_some());
        // Every key is documented in the example, set or commented out.
        for key in [
            "db",
            "port",
            "bind",
            "ipv6",
            "cores",
            "pin",
            "bootstrap",
            "duration",
            "read-only",
            "allow-loopback",
            "fetch",
            "fetch-concurrency",
            "metrics",
            "drain-secs",
            "log-every",
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
