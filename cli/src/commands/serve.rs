//! `trawl serve`: full-text search, a JSON API, a Torznab feed and a web
//! page over a database, beside a running crawl or without one; and
//! `trawl index --rebuild`, which recreates the search index from the store.
//! The server itself is the `trawl-serve` crate; this file maps flags to it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use trawl_serve::{SearchIndex, ServeError, ServeOptions};
use trawl_storage::Store;

use super::stats::{db_error, DbArg};
use super::UsageError;

/// Shown after `--help`.
pub const EXAMPLES: &str = "\
Examples:
  trawl serve --db trawl-db                       # http://127.0.0.1:9478/
  trawl serve --db trawl-db --listen 0.0.0.0:9478 --token \"$(openssl rand -hex 16)\"
  curl 'http://127.0.0.1:9478/api/search?q=ubuntu+iso&sort=seeders'
  Torznab (Prowlarr, Sonarr, Radarr: generic Torznab): http://127.0.0.1:9478/torznab/api
Works beside a running crawl: the database is followed as a RocksDB secondary
and torrents it stores are searchable within about 5 s. The search index lives
in DB.search (see --index); the server never writes to the database.";

pub const INDEX_EXAMPLES: &str = "\
Examples:
  trawl index --rebuild --db trawl-db
Stop `trawl serve` on the same index first (it holds the index's lock).";

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub db: DbArg,
    /// Address to serve HTTP on. Loopback by default; any other address needs --token.
    #[arg(long, value_name = "ADDR", default_value = trawl_serve::http::DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// Search index directory [default: DB.search, beside the database].
    #[arg(long, value_name = "DIR")]
    pub index: Option<PathBuf>,
    /// Access token (16+ characters): clients send it as `Authorization: Bearer`,
    /// as the HTTP Basic password, or as Torznab's `apikey`. Also read from TRAWL_TOKEN.
    #[arg(long, value_name = "TOKEN", env = "TRAWL_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// HTTP worker threads.
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub threads: usize,
}

#[derive(clap::Args, Debug)]
pub struct IndexArgs {
    #[command(flatten)]
    pub db: DbArg,
    /// Search index directory [default: DB.search, beside the database].
    #[arg(long, value_name = "DIR")]
    pub index: Option<PathBuf>,
    /// Recreate the index from every stored torrent.
    #[arg(long)]
    pub rebuild: bool,
}

fn serve_error(e: ServeError) -> anyhow::Error {
    match e {
        ServeError::Store(e) => db_error(e),
        ServeError::Config(m) => UsageError(m).into(),
        ServeError::Bind(m) => anyhow::Error::new(std::io::Error::new(std::io::ErrorKind::AddrInUse, m)),
        e => e.into(),
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let opts = ServeOptions {
        index_dir: args
            .index
            .unwrap_or_else(|| ServeOptions::default_index_dir(&args.db.db)),
        db: args.db.db,
        listen: args.listen,
        token: args.token,
        threads: args.threads,
    };
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))?;
    }
    trawl_serve::serve(opts, stop, |addr| eprintln!("trawl: serving on http://{addr}/")).map_err(serve_error)
}

pub fn run_index(args: IndexArgs) -> anyhow::Result<()> {
    if !args.rebuild {
        return Err(UsageError("nothing to do: give --rebuild".into()).into());
    }
    let dir = args
        .index
        .unwrap_or_else(|| ServeOptions::default_index_dir(&args.db.db));
    let store = Store::open_read_only(&args.db.db).map_err(db_error)?;
    let index = SearchIndex::open(&dir).map_err(serve_error)?;
    let mut writer = index.writer().map_err(serve_error)?;
    let total = store.len_estimate(trawl_storage::schema::CF_TORRENTS)?;
    let bar = ProgressBar::with_draw_target(Some(total.max(1)), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("indexing [{bar:30}] {pos}/{len} torrents {per_sec} {elapsed}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    let started = std::time::Instant::now();
    let n = writer
        .rebuild(&store, |done| bar.set_position(done))
        .map_err(serve_error)?;
    writer.finish().map_err(serve_error)?;
    bar.finish_and_clear();
    eprintln!(
        "trawl: indexed {n} torrents of {} into {} in {:.1} s",
        store.path().display(),
        dir.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
