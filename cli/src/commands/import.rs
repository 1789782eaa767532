//! `trawl import FILE|-`: read infohashes (hex lines, magnet links or JSONL)
//! and queue them for a metadata fetch. Bad lines are reported with their
//! line numbers; the good ones are imported regardless, and the exit code is
//! 2 if any line was bad.

use std::io::BufRead;
use std::path::PathBuf;
use std::sync::Arc;

use trawl_storage::{import, unix_now, Batch, Discovery, Source, Store, StoreOptions, Writer, WriterOptions};

use super::stats::{db_error, DbArg};
use super::UsageError;

/// Hashes per writer batch: big enough to amortise, small enough to keep memory flat.
const BATCH: usize = 4096;
/// Bad lines printed one by one before the rest are only counted.
const MAX_REPORTED: u64 = 100;

/// Shown after `--help`.
pub const EXAMPLES: &str = "\
Examples:
  trawl import --db trawl-db hashes.txt             # hex or base32 lines, magnet links (btih, btmh), JSON lines
  trawl export --db old-db -f jsonl | trawl import --db trawl-db -
Bad lines are named by number on stderr; the good ones are imported anyway (exit 2 if any was bad).";

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub db: DbArg,
    /// File of infohashes, or `-` for stdin.
    #[arg(value_name = "FILE|-")]
    pub input: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let input: Box<dyn BufRead> = if args.input.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        let f = std::fs::File::open(&args.input)
            .map_err(|e| UsageError(format!("cannot read {}: {e}", args.input.display())))?;
        Box::new(std::io::BufReader::with_capacity(1 << 20, f))
    };
    let store = Arc::new(Store::open(&args.db.db, &StoreOptions::default()).map_err(db_error)?);
    let writer = Writer::spawn(store, WriterOptions::default())?;
    let handle = writer.handle();
    let (reply_tx, reply_rx) = crossbeam_channel::unbounded();
    let now = unix_now();
    let mut batch = Batch::default();
    let mut reported = 0u64;
    let flush = |batch: &mut Batch| {
        let full = std::mem::take(batch);
        handle.send(Batch {
            reply: Some(reply_tx.clone()),
            ..full
        })
    };
    let counts = import::read_lines(
        input,
        |h| {
            batch.discoveries.push(Discovery {
                info_hash: h,
                source: Source::Import,
                at: now,
            });
            batch.enqueue.push((h, now));
            if batch.discoveries.len() >= BATCH {
                flush(&mut batch)?;
            }
            Ok(())
        },
        |line, err| {
            reported += 1;
            if reported <= MAX_REPORTED {
                eprintln!("trawl: {}:{line}: {err}", args.input.display());
            }
        },
    );
    // Whatever happened above, commit what was read before reporting.
    let sent = if batch.discoveries.is_empty() {
        Ok(())
    } else {
        flush(&mut batch)
    };
    drop(handle);
    let stats = writer.shutdown();
    let counts = counts.map_err(|e| UsageError(format!("reading {}: {e}", args.input.display())))?;
    sent?;
    let (mut new, mut known) = (0u64, 0u64);
    for outcome in reply_rx.try_iter() {
        new += outcome.new.len() as u64;
        known += u64::from(outcome.duplicates);
    }
    if stats.items_lost > 0 {
        anyhow::bail!("the database refused {} items; see the log above", stats.items_lost);
    }
    eprintln!(
        "trawl: imported {} infohashes ({new} new, {known} already known, {} queued for metadata); {} bad lines",
        counts.hashes, stats.queued, counts.bad
    );
    if counts.bad > 0 {
        let shown = counts.bad.min(MAX_REPORTED);
        return Err(UsageError(format!(
            "{} bad lines in {} ({shown} reported above)",
            counts.bad,
            args.input.display()
        ))
        .into());
    }
    Ok(())
}
