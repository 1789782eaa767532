//! Subcommands of the `trawl` binary. Each lives in its own file and owns its
//! arguments and `--help` examples; this file only dispatches and maps errors
//! to the documented exit codes ([`exit_code`]).

use clap::{Parser, Subcommand};

use crate::logging::LogFormat;
use trawl_engine::ops::OpsError;
use trawl_engine::runtime::crawl::CrawlError;
use trawl_engine::runtime::RuntimeError;
use trawl_storage::StorageError;

mod announce;
mod compact;
mod crawl;
mod doctor;
mod export;
mod import;
mod lookup;
mod node;
mod serve;
pub(crate) mod stats;

/// Exit code for any failure not listed below.
pub const EXIT_FAILURE: u8 = 1;
/// Exit code for a usage or input error (bad flag, value, address, config file
/// or input file; an output path that cannot be created).
pub const EXIT_USAGE: u8 = 2;
/// Exit code for a process limit (open files, locked memory) that is too low.
pub const EXIT_LIMIT: u8 = 3;
/// Exit code for an address that cannot be bound (port in use, not a local address).
pub const EXIT_ADDRESS: u8 = 4;
/// Exit code for a database that cannot be used (locked by another process,
/// written by a newer trawl, corrupt).
pub const EXIT_DATABASE: u8 = 5;
/// Exit code for a crawl no DHT node answered within `--bootstrap-timeout-secs`.
pub const EXIT_NO_ANSWER: u8 = 6;

const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success
  1  failure not listed below
  2  usage or input error: bad flag, value, address, config file or input file; unwritable output path
  3  a process limit is too low (open files: ulimit -n / LimitNOFILE=; locked memory: ulimit -l / LimitMEMLOCK=)
  4  an address cannot be bound (port in use, address not local)
  5  the database cannot be used (locked by a running crawl, newer schema, corrupt)
  6  no DHT node answered a crawl within --bootstrap-timeout-secs

Logs go to stderr (--log-format text or json); set their level with RUST_LOG (for example RUST_LOG=debug or RUST_LOG=trawl=debug).";

#[derive(Parser, Debug)]
#[command(
    name = "trawl",
    version,
    about = "Crawl the BitTorrent mainline DHT at the speed of the wire",
    after_help = EXIT_CODES_HELP
)]
pub struct Cli {
    /// How log lines on stderr are written: `text` for a person, `json` for a
    /// collector (one object per line: ts, level, target, message, fields).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Crawl the DHT and store what it finds.
    #[command(after_help = crawl::EXAMPLES)]
    Crawl(crawl::Args),
    /// Run a full DHT node that answers queries.
    #[command(after_help = node::EXAMPLES)]
    Node(node::Args),
    /// Find peers for an infohash.
    #[command(after_help = lookup::EXAMPLES)]
    Lookup(lookup::Args),
    /// Announce that we hold an infohash.
    #[command(after_help = announce::EXAMPLES)]
    Announce(announce::Args),
    /// Export infohashes and torrents in bulk.
    #[command(after_help = export::EXAMPLES)]
    Export(export::Args),
    /// Import infohashes into the metadata queue.
    #[command(after_help = import::EXAMPLES)]
    Import(import::Args),
    /// Summarise a database.
    #[command(after_help = stats::EXAMPLES)]
    Stats(stats::Args),
    /// Compact a database's tables (the crawl must be stopped).
    #[command(after_help = compact::EXAMPLES)]
    Compact(compact::Args),
    /// Check this host before a long crawl: port, NAT, limits, buffers, disk, clock.
    #[command(after_help = doctor::EXAMPLES)]
    Doctor(doctor::Args),
    /// Search what was found: a web page, a JSON API and a Torznab feed.
    #[command(after_help = serve::EXAMPLES)]
    Serve(serve::Args),
    /// Manage the search index of `trawl serve`.
    #[command(after_help = serve::INDEX_EXAMPLES)]
    Index(serve::IndexArgs),
}

impl Cli {
    pub fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Crawl(args) => crawl::run(args),
            Command::Node(args) => node::run(args),
            Command::Lookup(args) => lookup::run(args),
            Command::Announce(args) => announce::run(args),
            Command::Export(args) => export::run(args),
            Command::Import(args) => import::run(args),
            Command::Stats(args) => stats::run(args),
            Command::Compact(args) => compact::run(args),
            Command::Doctor(args) => doctor::run(args),
            Command::Serve(args) => serve::run(args),
            Command::Index(args) => serve::run_index(args),
        }
    }
}

/// A usage error: the user gave something we cannot act on.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// The exit code for an error: the first cause in its chain that has a
/// specific code decides; anything else is [`EXIT_FAILURE`].
pub fn exit_code(err: &anyhow::Error) -> u8 {
    err.chain().find_map(cause_code).unwrap_or(EXIT_FAILURE)
}

fn cause_code(cause: &(dyn std::error::Error + 'static)) -> Option<u8> {
    if cause.is::<UsageError>() {
        return Some(EXIT_USAGE);
    }
    if cause.is::<crawl::NoAnswer>() {
        return Some(EXIT_NO_ANSWER);
    }
    if let Some(e) = cause.downcast_ref::<OpsError>() {
        return match e {
            OpsError::Limit { .. } => Some(EXIT_LIMIT),
            OpsError::MetricsBind { .. } => Some(EXIT_ADDRESS),
            OpsError::ConfigRead { .. } | OpsError::ConfigInvalid { .. } => Some(EXIT_USAGE),
        };
    }
    if let Some(RuntimeError::Bind { .. }) = cause.downcast_ref::<RuntimeError>() {
        return Some(EXIT_ADDRESS);
    }
    match cause.downcast_ref::<CrawlError>() {
        Some(CrawlError::Bind { .. }) => return Some(EXIT_ADDRESS),
        Some(CrawlError::Config(_)) => return Some(EXIT_USAGE),
        // The storage cause follows in the chain.
        _ => {}
    }
    if let Some(e) = cause.downcast_ref::<StorageError>() {
        return match e {
            StorageError::Missing(_) | StorageError::NotTrawl(_) => Some(EXIT_USAGE),
            StorageError::Locked(_)
            | StorageError::SchemaTooNew { .. }
            | StorageError::SchemaUnknown(_)
            | StorageError::Corrupt(_) => Some(EXIT_DATABASE),
            _ => None,
        };
    }
    match cause.downcast_ref::<std::io::Error>().map(std::io::Error::kind) {
        Some(std::io::ErrorKind::AddrInUse | std::io::ErrorKind::AddrNotAvailable) => Some(EXIT_ADDRESS),
        _ => None,
    }
}

/// The error as one line: each cause in the chain once. Many error types
/// already print their source in their own message; those sources are not
/// repeated.
pub fn one_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if !line.contains(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
    }
    line.replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    fn code(err: impl std::error::Error + Send + Sync + 'static) -> u8 {
        exit_code(&anyhow::Error::new(err).context("while doing something"))
    }

    #[test]
    fn exit_codes_follow_the_cause_through_context() {
        assert_eq!(code(UsageError("bad".into())), EXIT_USAGE);
        assert_eq!(code(OpsError::Limit { message: "low".into() }), EXIT_LIMIT);
        let in_use = std::io::Error::from(std::io::ErrorKind::AddrInUse);
        let addr = "127.0.0.1:1".parse().unwrap();
        assert_eq!(code(RuntimeError::Bind { addr, source: in_use }), EXIT_ADDRESS);
        assert_eq!(
            code(std::io::Error::from(std::io::ErrorKind::AddrNotAvailable)),
            EXIT_ADDRESS
        );
        assert_eq!(
            code(StorageError::SchemaTooNew { found: 9, supported: 1 }),
            EXIT_DATABASE
        );
        assert_eq!(code(StorageError::Locked("db".into())), EXIT_DATABASE);
        assert_eq!(code(StorageError::Missing("db".into())), EXIT_USAGE);
        assert_eq!(code(StorageError::WriterClosed), EXIT_FAILURE);
        let in_use = std::io::Error::from(std::io::ErrorKind::AddrInUse);
        assert_eq!(code(CrawlError::Bind { addr, source: in_use }), EXIT_ADDRESS);
        assert_eq!(code(CrawlError::Config("cores".into())), EXIT_USAGE);
        assert_eq!(
            code(CrawlError::Storage(StorageError::Locked("db".into()))),
            EXIT_DATABASE
        );
        let config = OpsError::ConfigInvalid {
            path: "x.toml".into(),
            message: "unknown key".into(),
        };
        assert_eq!(code(config), EXIT_USAGE);
    }

    #[test]
    fn one_line_says_each_cause_once() {
        let in_use = std::io::Error::from(std::io::ErrorKind::AddrInUse);
        let addr = "127.0.0.1:1".parse().unwrap();
        let err = Err::<(), _>(RuntimeError::Bind { addr, source: in_use })
            .context("cannot start a DHT node")
            .unwrap_err();
        assert_eq!(
            one_line(&err),
            "cannot start a DHT node: cannot bind UDP 127.0.0.1:1: address in use"
        );
    }
}
