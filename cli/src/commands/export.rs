//! `trawl export`: stream infohashes and torrents out of a database in one
//! pass, in constant memory. Opens read-only, so it works while a crawl runs.

use std::io::{BufWriter, Write};
use std::path::PathBuf;

use trawl_storage::export::{self, Filter, Format};
use trawl_storage::{ContentClass, StorageError, Store};

use super::stats::{db_error, DbArg};
use super::UsageError;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormatArg {
    /// One 40-character hex infohash per line.
    Hex,
    /// 20-byte binary records.
    Bin,
    /// One JSON object per line: hash, name, size, files, peers, class, times.
    Jsonl,
    /// Comma-separated, with a header line.
    Csv,
    /// NDJSON for bitmagnet's /import (hashes with metadata only).
    Bitmagnet,
    /// One magnet link per line (btih, and btmh for v2 and hybrid torrents; the name once fetched).
    Magnet,
    /// A folder of .torrent files, fanned out as `ab/cd/<hash>.torrent` (needs --out).
    Torrents,
}

/// Shown after `--help`.
pub const EXAMPLES: &str = "\
Examples:
  trawl export --db trawl-db > hashes.hex                       # every infohash, hex, one per line
  trawl export --db trawl-db -f jsonl -o torrents.jsonl --with-metadata
  trawl export --db trawl-db -f bitmagnet --since 2026-11-01 | curl --data-binary @- http://bitmagnet:3333/import
  trawl export --db trawl-db -f torrents -o torrents/           # .torrent files, ab/cd/<hash>.torrent
Works while a crawl runs (opens read-only).";

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub db: DbArg,
    #[arg(long, short, value_enum, default_value = "hex")]
    pub format: FormatArg,
    /// Output file (default: stdout); for `torrents`, the output folder.
    #[arg(long, short, value_name = "PATH")]
    pub out: Option<PathBuf>,
    /// Only hashes first seen at or after this time: unix seconds, YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ.
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only hashes whose metadata has been fetched.
    #[arg(long)]
    pub with_metadata: bool,
    /// Only torrents of this class: video, audio, ebook, software, archive, image, document, other.
    #[arg(long, value_name = "CLASS")]
    pub class: Option<String>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let since = match &args.since {
        Some(s) => Some(export::parse_time(s).ok_or_else(|| UsageError(format!("--since {s:?} is not a time")))?),
        None => None,
    };
    let class = match &args.class {
        Some(c) => Some(ContentClass::parse(c).ok_or_else(|| UsageError(format!("--class {c:?} is not a class")))?),
        None => None,
    };
    let filter = Filter {
        since,
        with_metadata: args.with_metadata,
        class,
    };
    let format = match args.format {
        FormatArg::Hex => Format::Hex,
        FormatArg::Bin => Format::Bin,
        FormatArg::Jsonl => Format::Jsonl,
        FormatArg::Csv => Format::Csv,
        FormatArg::Bitmagnet => Format::Bitmagnet,
        FormatArg::Magnet => Format::Magnet,
        FormatArg::Torrents => {
            let dir = args
                .out
                .as_ref()
                .ok_or_else(|| UsageError("--format torrents needs --out DIR".into()))?;
            std::fs::create_dir_all(dir)
                .map_err(|e| UsageError(format!("cannot create output folder {}: {e}", dir.display())))?;
            let store = Store::open_read_only(&args.db.db).map_err(db_error)?;
            let sum = export::export_torrent_files(&store, &filter, dir)?;
            eprintln!(
                "trawl: wrote {} .torrent files to {} ({} without a stored info dict)",
                sum.written,
                dir.display(),
                sum.skipped - sum.pieces_not_kept
            );
            if sum.pieces_not_kept > 0 {
                eprintln!(
                    "trawl: {} torrents were stored with --info-dicts files: their piece hashes were not kept, so no .torrent can be written for them (crawl with --info-dicts full to keep them)",
                    sum.pieces_not_kept
                );
            }
            return Ok(());
        }
    };
    let store = Store::open_read_only(&args.db.db).map_err(db_error)?;
    let result = match &args.out {
        Some(path) => {
            let file = std::fs::File::create(path)
                .map_err(|e| UsageError(format!("cannot create {}: {e}", path.display())))?;
            export::export(&store, format, &filter, &mut BufWriter::with_capacity(1 << 20, file))
        }
        None => {
            let stdout = std::io::stdout();
            let mut out = BufWriter::with_capacity(1 << 20, stdout.lock());
            let r = export::export(&store, format, &filter, &mut out);
            let _ = out.flush();
            r
        }
    };
    match result {
        Ok(sum) => {
            if sum.skipped > 0 {
                eprintln!(
                    "trawl: exported {}, skipped {} that the format cannot represent",
                    sum.written, sum.skipped
                );
            }
            Ok(())
        }
        // A reader that stopped early (`| head`) is not a failure.
        Err(StorageError::Stream(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(e.into()),
    }
}
