//! `trawl compact`: a manual compaction of every column family down to the
//! bottom level, with a progress bar weighted by each family's bytes. It
//! rewrites the store's tables (dropping overwritten and deleted values and
//! training the zstd dictionaries), so it needs the database to itself: a
//! running crawl holds the lock and the command says so.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use trawl_storage::{Store, StoreOptions};

use super::stats::{db_error, human_bytes, DbArg};

/// Shown after `--help`.
pub const EXAMPLES: &str = "\
Examples:
  trawl compact --db trawl-db
Needs the database to itself: stop the crawl first (it holds the lock).";

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub db: DbArg,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let opts = StoreOptions {
        create_if_missing: false,
        ..StoreOptions::default()
    };
    let store = Store::open(&args.db.db, &opts).map_err(db_error)?;
    let before = store.disk_usage()?;
    let total: u64 = before.sst_bytes.iter().map(|(_, b)| *b).sum();
    let bar = ProgressBar::with_draw_target(Some(total.max(1)), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("compacting {msg:<18} [{bar:30}] {bytes}/{total_bytes} {elapsed}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    store.compact_with(|family, bytes| {
        bar.set_message(family);
        bar.inc(bytes);
    })?;
    bar.finish_and_clear();
    let after = store.disk_usage()?;
    eprintln!(
        "trawl: compacted {}: {} on disk before, {} after",
        store.path().display(),
        human_bytes(before.total_bytes),
        human_bytes(after.total_bytes)
    );
    Ok(())
}
