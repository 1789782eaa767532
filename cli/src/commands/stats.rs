//! `trawl stats`: summarise a database (counts, metadata fraction, classes,
//! size on disk). Opens read-only, so it works while a crawl runs.
//!
//! Also holds the `--db` argument and the storage-error mapping shared by the
//! storage subcommands (export, import, stats).

use std::path::PathBuf;

use trawl_storage::summary::{self, PerItem};
use trawl_storage::{StorageError, Store};

use super::UsageError;

/// The database directory, shared by the storage subcommands.
#[derive(clap::Args, Debug)]
pub struct DbArg {
    /// Database directory.
    #[arg(long, value_name = "DIR", default_value = "trawl-db")]
    pub db: PathBuf,
}

/// A path the user got wrong is a usage error (exit 2); a locked, newer or
/// corrupt database is a failure (exit 1).
pub(super) fn db_error(e: StorageError) -> anyhow::Error {
    match e {
        StorageError::Missing(_) | StorageError::NotTrawl(_) => UsageError(e.to_string()).into(),
        e => e.into(),
    }
}

/// Shown after `--help`.
pub const EXAMPLES: &str = "\
Examples:
  trawl stats --db trawl-db
  trawl stats --db trawl-db --json | jq .torrents
Works while a crawl runs (opens read-only).";

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub db: DbArg,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let store = Store::open_read_only(&args.db.db).map_err(db_error)?;
    let s = store.stats()?;
    if args.json {
        println!("{}", summary::stats_json(&store, &s)?);
        return Ok(());
    }
    let per = PerItem::of(&s);
    let mode = store.read_info_dicts_mode()?;
    let (budget, share, step) = summary::budget_step(&store, &s)?;
    let fraction = summary::metadata_fraction(&s);
    let (classes, sources) = (summary::classes(&s), summary::sources(&s));
    println!("database      {}", store.path().display());
    println!("infohashes    {}", s.infohashes);
    for (name, n) in &sources {
        println!("  {name:<12}{n}");
    }
    println!(
        "torrents      {} ({:.2}% of infohashes have metadata)",
        s.torrents,
        fraction * 100.0
    );
    for (name, n) in classes.iter().filter(|(_, n)| *n > 0) {
        println!("  {name:<12}{n}");
    }
    println!("content size  {}", human_bytes(s.total_content_bytes));
    println!("fetch queue   {}", s.staged);
    for (why, n) in store.queue_by_last_failure()? {
        println!("  {why:<12}{n}");
    }
    println!("scrapes       {}", s.scrapes);
    println!("saved nodes   {}", s.nodes);
    println!("on disk       {}", human_bytes(s.disk.total_bytes));
    if let (Some(b), Some(share)) = (budget, share) {
        println!(
            "  budget      {} (--max-disk of the latest crawl): {:.1}% used, {}",
            human_bytes(b),
            share * 100.0,
            step.describe()
        );
    }
    if let Some(b) = per.infohash {
        println!("  per infohash {b:.1} B (the infohashes family)");
    }
    if let Some(b) = per.torrent {
        println!(
            "  per torrent {b:.0} B (torrents, info dicts, scrapes, aliases{})",
            mode.map_or(String::new(), |m| format!("; info dicts kept as {m}"))
        );
    }
    for (cf, b) in s.disk.sst_bytes.iter().filter(|(_, b)| *b > 0) {
        println!("  {cf:<12}{}", human_bytes(*b));
    }
    Ok(())
}

pub(crate) fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
