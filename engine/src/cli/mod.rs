//! Subcommands of the `trawl` binary. Each lives in its own file and owns its
//! arguments; this file only dispatches and maps errors to exit codes.

use clap::{Parser, Subcommand};

mod announce;
mod crawl;
mod export;
mod import;
mod lookup;
mod node;
mod stats;

/// Exit code for a usage or input error (bad flag, bad address, bad file).
pub const EXIT_USAGE: u8 = 2;
/// Exit code for any other failure.
pub const EXIT_FAILURE: u8 = 1;

#[derive(Parser, Debug)]
#[command(
    name = "trawl",
    version,
    about = "Crawl the BitTorrent mainline DHT at the speed of the wire"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Crawl the DHT and store what it finds.
    Crawl(crawl::Args),
    /// Run a full DHT node that answers queries.
    Node(node::Args),
    /// Find peers for an infohash.
    Lookup(lookup::Args),
    /// Announce that we hold an infohash.
    Announce(announce::Args),
    /// Export infohashes and torrents in bulk.
    Export(export::Args),
    /// Import infohashes into the metadata queue.
    Import(import::Args),
    /// Summarise a database.
    Stats(stats::Args),
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

pub fn exit_code(err: &anyhow::Error) -> u8 {
    if err.downcast_ref::<UsageError>().is_some() {
        EXIT_USAGE
    } else {
        EXIT_FAILURE
    }
}

pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
