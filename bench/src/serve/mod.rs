//! `trawl-bench serve`: `trawl serve` over a store of a million torrents
//! (issue 19), measured in one invocation that stops by itself.
//!
//! 1. **The store**: `--torrents` torrents whose names and file lists are the
//!    swarm catalogue's ([`trawl_swarm::catalogue::torrent_info`]), classified
//!    as the fetcher classifies them, stored through the crawl's `Writer` in
//!    batches of 100 with a first sighting each (spread over a year) and, for
//!    `--scraped-percent` of them, a scrape. With `--dir` the store is kept
//!    and a later run resumes it (`DIR/serve-bench.json` after every chunk
//!    the writer acknowledged); without, it lives in a temp dir removed at
//!    the end. Info dicts are not stored: the index never reads them.
//! 2. **Index build**, one thread calling: `Store::for_each_torrent` alone
//!    (the read ceiling), then with the first-seen lookup the indexer makes
//!    per torrent, then `Indexer::rebuild` into a fresh index (one tantivy
//!    indexing thread, as `trawl serve` and `trawl index` use). Torrents per
//!    second of each, the process's CPU during the build, and the index's
//!    bytes per torrent on disk.
//! 3. **Queries** (`queries.rs`): the real server, `trawl_serve::serve` in a
//!    thread of this process on 127.0.0.1:0 (once the merges the rebuild's
//!    commit started, still running after it returned, have ended: waited
//!    for and reported), then `--clients` threads of
//!    keep-alive HTTP/1.1 GETs to `/api/search` for `--query-secs` each of
//!    one-word, three-word and filtered queries. Latency percentiles and
//!    queries per second per kind; the process's RSS before the server
//!    starts and after the queries (the server shares this process). Then
//!    `trawl serve` as its own process on the same index, under
//!    `--process-secs` of the same queries mixed, for its RSS alone.
//! 4. **Crawl cost** (`crawl.rs`, `--crawl-secs 0` skips it): `trawl crawl`
//!    against `trawl-swarm`, alternately alone and with `trawl serve` (a
//!    child process) following its database; datagrams/s with over without.
//!
//! Every figure is printed as it is measured; the last line is one JSON
//! object for `bench/RESULTS.md`. Traffic stays on 127.0.0.0/8.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha1::{Digest, Sha1};
use trawl_engine::metadata::classify::classify;
use trawl_engine::metadata::info::{InfoDict, InfoFile, MetaVersion};
use trawl_serve::SearchIndex;
use trawl_storage::{
    Batch, BatchOutcome, Discovery, FileEntry, InfoHash, ScrapeEstimate, Source, Store, StoreOptions, TorrentRecord,
    TorrentVersion, Writer, WriterHandle, WriterOptions,
};
use trawl_swarm::catalogue::torrent_info;

use crate::storage::threads_cpu;
use crate::sys::{self, Pid};

mod child;
mod crawl;
mod queries;

/// Torrents generated, sent and acknowledged between two saves of the state.
const CHUNK: u32 = 50_000;
/// Torrents per writer batch (a fetcher's group is about this size).
const BATCH: usize = 100;
/// First sightings are spread over this many seconds before the run.
const SIGHTINGS_SPAN_SECS: u32 = 365 * 24 * 3600;
/// Issue 19's targets.
const TARGET_INDEX_PER_S: f64 = 20_000.0;
const TARGET_P99_MS: f64 = 50.0;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Keep the store (and the index) here, resuming a store a run left; a temp dir by default.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Torrents in the store.
    #[arg(long, default_value_t = 1_000_000)]
    pub torrents: u32,
    /// Percent of the torrents with a scrape (seeders and leechers).
    #[arg(long, default_value_t = 60)]
    pub scraped_percent: u32,
    /// Seed of the catalogue and of everything drawn; a resumed store needs the one it started with.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Concurrent HTTP clients in the query phase.
    #[arg(long, default_value_t = 16)]
    pub clients: usize,
    /// Seconds of each kind of query (one-word, three-word, filtered).
    #[arg(long, default_value_t = 15.0)]
    pub query_secs: f64,
    /// Longest wait, once the server is up, for the merges the rebuild's
    /// commit started to end (they outlive it; 0: no wait).
    #[arg(long, default_value_t = 300.0)]
    pub settle_secs: f64,
    /// Seconds of mixed queries before the measured ones (not counted).
    #[arg(long, default_value_t = 2.0)]
    pub warmup_secs: f64,
    /// Seconds of mixed queries against `trawl serve` as its own process on
    /// the same index, for its RSS alone (0 skips it).
    #[arg(long, default_value_t = 5.0)]
    pub process_secs: f64,
    /// The server's HTTP worker threads (`trawl serve --threads`).
    #[arg(long, default_value_t = 2)]
    pub server_threads: usize,
    #[command(flatten)]
    pub crawl: crawl::CrawlArgs,
}

/// What `serve-bench.json` keeps between runs.
#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    seed: u64,
    scraped_percent: u32,
    /// Catalogue torrents `0..stored` are acknowledged by the writer.
    stored: u32,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(args.torrents > 0, "--torrents must be positive");
    anyhow::ensure!(args.scraped_percent <= 100, "--scraped-percent is at most 100");
    anyhow::ensure!(
        args.clients > 0
            && args.query_secs > 0.0
            && args.warmup_secs >= 0.0
            && args.process_secs >= 0.0
            && args.settle_secs >= 0.0,
        "--clients and --query-secs must be positive, --warmup-secs, --process-secs and --settle-secs not negative"
    );
    anyhow::ensure!(args.server_threads > 0, "--server-threads must be positive");
    args.crawl.check()?;
    let started = Instant::now();
    let load = load_average();
    println!("load average at the start: {load}");

    let tmp;
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::Builder::new()
                .prefix("trawl-bench-serve")
                .tempdir()
                .context("temp dir")?;
            tmp.path().to_path_buf()
        }
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let db = dir.join("db");
    let index_dir = dir.join("serve-index");

    // ---- 1. the store ------------------------------------------------------
    let store = Arc::new(Store::open(&db, &StoreOptions::default())?);
    let build = fill_store(&store, &args, &dir.join("serve-bench.json"))?;

    // ---- 2. index build ------------------------------------------------------
    let reads = read_passes(&store)?;
    anyhow::ensure!(
        reads.torrents == u64::from(args.torrents),
        "the store holds {} torrents, not {}; was {} filled by another bench?",
        reads.torrents,
        args.torrents,
        db.display()
    );
    let index = build_index(&store, &index_dir, &reads)?;
    drop(store);

    // ---- 3. queries ------------------------------------------------------
    let queries = queries::run(&args, &db, &index_dir)?;
    let index_bytes_after = dir_file_bytes(&index_dir)?;

    // ---- 4. the crawl with and without serve -----------------------------
    let crawl = crawl::run(&args.crawl, args.seed)?;

    let p99_worst = queries.kinds.iter().map(|k| k.p99_ms).fold(0.0, f64::max);
    println!("ratios against issue 19's targets (>= 1.0 meets it):");
    println!(
        "  index build        {:.2}x of {TARGET_INDEX_PER_S}/s ({:.0}/s; ceiling ratio {:.2} of the raw pass)",
        index.per_s / TARGET_INDEX_PER_S,
        index.per_s,
        index.per_s / reads.raw_per_s
    );
    println!(
        "  worst p99          {:.2}x under {TARGET_P99_MS} ms ({p99_worst:.1} ms)",
        TARGET_P99_MS / p99_worst.max(1e-9)
    );
    if let Some(r) = crawl.get("ratio").and_then(Value::as_f64) {
        println!(
            "  crawl with serve   {:.2}x of {} ({r:.3} of its datagrams/s alone)",
            r / crawl::TARGET_RATIO,
            crawl::TARGET_RATIO
        );
    }
    let summary = json!({
        "bench": "serve",
        "torrents": args.torrents,
        "scraped_percent": args.scraped_percent,
        "load_average_at_start": load,
        "store_build": build,
        "reads": reads,
        "index": index,
        "index_bytes_at_end": index_bytes_after,
        "index_bytes_per_torrent_at_end": round(index_bytes_after as f64 / f64::from(args.torrents), 1),
        "queries": queries,
        "crawl": crawl,
        "seconds": round(started.elapsed().as_secs_f64(), 1),
    });
    println!("{summary}");
    Ok(())
}

/// Catalogue torrent `index`, as the fetcher would store it from the dict the
/// swarm serves: its name and files, classified, without the dict itself.
pub(crate) fn catalogue_record(seed: u64, index: u32, fetched_at: u32) -> TorrentRecord {
    let info = torrent_info(seed, index);
    let total_size = info.total_size();
    let dict = InfoDict {
        name: info.name.into_bytes(),
        name_utf8: None,
        files: info
            .files
            .into_iter()
            .map(|f| InfoFile {
                path: f.path.into_iter().map(String::into_bytes).collect(),
                path_utf8: None,
                length: f.length,
            })
            .collect(),
        total_size,
        piece_length: info.piece_length,
        private: false,
        version: MetaVersion::V1,
    };
    let (class, content_type) = classify(&dict);
    TorrentRecord {
        info_hash: hash_of(seed, index),
        version: TorrentVersion::V1,
        v2_hash: None,
        name: dict.name,
        files: dict
            .files
            .into_iter()
            .map(|f| FileEntry {
                path: f.path,
                length: f.length,
            })
            .collect(),
        total_size,
        piece_length: dict.piece_length,
        private: false,
        class,
        content_type,
        fetched_at,
        scrape: None,
        info_dict: None,
    }
}

/// The infohash of catalogue torrent `index` in this bench's store (the
/// dicts are not built, so not their SHA-1; as uniform as one).
fn hash_of(seed: u64, index: u32) -> InfoHash {
    let mut h = Sha1::new();
    h.update(seed.to_be_bytes());
    h.update(index.to_be_bytes());
    h.finalize().into()
}

#[derive(Debug, Serialize)]
struct StoreBuild {
    /// Torrents stored by this run (0 when the store was complete).
    stored_now: u32,
    /// Stored per second by this run, generation excluded.
    torrents_per_s: f64,
    disk_bytes_per_torrent: f64,
}

/// Stores catalogue torrents up to `--torrents`, resuming from the state file.
fn fill_store(store: &Arc<Store>, args: &Args, state_path: &Path) -> anyhow::Result<StoreBuild> {
    let mut state = load_state(state_path, args)?;
    anyhow::ensure!(
        state.stored <= args.torrents,
        "{} holds {} torrents, more than --torrents {}; use another --dir",
        state_path.display(),
        state.stored,
        args.torrents
    );
    let from = state.stored;
    if from > 0 {
        println!("store: resuming at {from} torrents");
    }
    let mut secs = 0.0;
    if from < args.torrents {
        let writer = Writer::spawn(
            store.clone(),
            WriterOptions {
                expected_infohashes: args.torrents as usize,
                ..WriterOptions::default()
            },
        )?;
        let handle = writer.handle();
        let now = trawl_storage::unix_now();
        while state.stored < args.torrents {
            let n = CHUNK.min(args.torrents - state.stored);
            let batches = chunk_batches(args, state.stored, n, now);
            let t0 = Instant::now();
            send_all(&handle, batches)?;
            secs += t0.elapsed().as_secs_f64();
            state.stored += n;
            save_state(state_path, &state)?;
            if state.stored % 200_000 == 0 || state.stored == args.torrents {
                println!("store: {} torrents", state.stored);
            }
        }
        drop(handle);
        let stats = writer.shutdown();
        anyhow::ensure!(stats.items_lost == 0, "the writer lost {} items", stats.items_lost);
    }
    let stored_now = args.torrents - from;
    let disk = store.disk_usage()?;
    let build = StoreBuild {
        stored_now,
        torrents_per_s: round(f64::from(stored_now) / secs.max(1e-9), 0),
        disk_bytes_per_torrent: round(disk.total_bytes as f64 / f64::from(args.torrents), 1),
    };
    println!(
        "store: {} torrents ({stored_now} stored now at {:.0}/s), {:.0} bytes per torrent on disk",
        args.torrents, build.torrents_per_s, build.disk_bytes_per_torrent
    );
    Ok(build)
}

/// Catalogue torrents `from..from + n` in writer batches, each torrent with
/// its first sighting and, for a share of them, a scrape.
fn chunk_batches(args: &Args, from: u32, n: u32, now: u32) -> Vec<Batch> {
    let mut rng = SmallRng::seed_from_u64(args.seed ^ u64::from(from).rotate_left(29));
    let mut batches = Vec::with_capacity((n as usize).div_ceil(BATCH));
    let mut batch = Batch::default();
    for index in from..from + n {
        let t = catalogue_record(args.seed, index, now);
        batch.discoveries.push(Discovery {
            info_hash: t.info_hash,
            source: Source::Sample,
            at: now - rng.gen_range(0..SIGHTINGS_SPAN_SECS),
        });
        if rng.gen_range(0..100) < args.scraped_percent {
            // Most swarms are small, a few are large.
            let seeders = (rng.gen::<f64>().powi(4) * 20_000.0) as u32;
            batch.scrapes.push((
                t.info_hash,
                ScrapeEstimate {
                    seeders,
                    leechers: seeders / 3 + rng.gen_range(0..20),
                    at: now,
                },
            ));
        }
        batch.torrents.push(t);
        if batch.torrents.len() == BATCH {
            batches.push(std::mem::take(&mut batch));
        }
    }
    if !batch.torrents.is_empty() {
        batches.push(batch);
    }
    batches
}

/// Sends every batch with a reply and waits for all the acknowledgements.
fn send_all(h: &WriterHandle, batches: Vec<Batch>) -> anyhow::Result<()> {
    let (tx, rx) = crossbeam_channel::unbounded::<BatchOutcome>();
    let sent = batches.len();
    for b in batches {
        h.send(Batch {
            reply: Some(tx.clone()),
            ..b
        })?;
    }
    drop(tx);
    let acked = rx.iter().take(sent).count();
    anyhow::ensure!(acked == sent, "{acked} of {sent} batches acknowledged");
    Ok(())
}

fn load_state(path: &Path, args: &Args) -> anyhow::Result<State> {
    match std::fs::read(path) {
        Ok(raw) => {
            let s: State = serde_json::from_slice(&raw)
                .with_context(|| format!("{} is not a serve bench state", path.display()))?;
            anyhow::ensure!(
                s.seed == args.seed && s.scraped_percent == args.scraped_percent,
                "{} was filled with --seed {} --scraped-percent {}; resume with those or use another --dir",
                path.display(),
                s.seed,
                s.scraped_percent
            );
            Ok(s)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State {
            seed: args.seed,
            scraped_percent: args.scraped_percent,
            stored: 0,
        }),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Written aside and renamed, so a kill leaves the old state or the new one.
fn save_state(path: &Path, s: &State) -> anyhow::Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(s)?)?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

#[derive(Debug, Serialize)]
struct Reads {
    torrents: u64,
    files: u64,
    /// `for_each_torrent` alone (decoding each record and its scrape).
    raw_per_s: f64,
    /// The same with `Store::infohash` for each, as the indexer reads.
    with_first_seen_per_s: f64,
}

/// Two passes over the store as the indexer reads it, without indexing.
fn read_passes(store: &Store) -> anyhow::Result<Reads> {
    let (mut torrents, mut files) = (0u64, 0u64);
    let t0 = Instant::now();
    store.for_each_torrent(|t| {
        torrents += 1;
        files += t.files.len() as u64;
        true
    })?;
    let raw_per_s = torrents as f64 / t0.elapsed().as_secs_f64().max(1e-9);
    println!("read: for_each_torrent alone {raw_per_s:.0} torrents/s ({torrents} torrents, {files} files)");

    let (mut seen, mut failed) = (0u64, None);
    let t0 = Instant::now();
    store.for_each_torrent(|t| match store.infohash(&t.info_hash) {
        Ok(r) => {
            seen += u64::from(r.is_some());
            true
        }
        Err(e) => {
            failed = Some(e);
            false
        }
    })?;
    if let Some(e) = failed {
        return Err(e.into());
    }
    let with_first_seen_per_s = torrents as f64 / t0.elapsed().as_secs_f64().max(1e-9);
    anyhow::ensure!(seen == torrents, "{seen} of {torrents} torrents have a sighting");
    println!("read: with the first-seen lookup {with_first_seen_per_s:.0} torrents/s");
    Ok(Reads {
        torrents,
        files,
        raw_per_s: round(raw_per_s, 0),
        with_first_seen_per_s: round(with_first_seen_per_s, 0),
    })
}

#[derive(Debug, Serialize)]
struct IndexBuild {
    seconds: f64,
    per_s: f64,
    /// Over the raw pass's rate.
    ceiling_ratio: f64,
    /// CPU of the whole process during the rebuild, and of its parts.
    process_cpu_s: f64,
    calling_thread_cpu_s: f64,
    merge_threads_cpu_s: f64,
    rocksdb_threads_cpu_s: f64,
    /// The indexing thread (it ends at the commit) and any other.
    other_cpu_s: f64,
    per_process_cpu_s: f64,
    bytes: u64,
    bytes_per_torrent: f64,
    segments: usize,
}

/// `Indexer::rebuild` into a fresh index in `dir`.
fn build_index(store: &Store, dir: &Path, reads: &Reads) -> anyhow::Result<IndexBuild> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("removing the old index {}", dir.display()))?;
    }
    let index = SearchIndex::open(dir)?;
    let mut indexer = index.writer()?;
    let threads0 = named_threads_cpu();
    let (proc0, main0) = (sys::proc_stat(Pid::This)?.cpu, sys::thread_cpu_time());
    let t0 = Instant::now();
    let mut next_report = 0;
    let n = indexer.rebuild(store, |done| {
        if done >= next_report {
            println!("index: {done} torrents at {:.1} s", t0.elapsed().as_secs_f64());
            next_report += 200_000;
        }
    })?;
    let secs = t0.elapsed().as_secs_f64();
    let process_cpu_s = (sys::proc_stat(Pid::This)?.cpu - proc0).as_secs_f64();
    let calling_thread_cpu_s = (sys::thread_cpu_time() - main0).as_secs_f64();
    let threads1 = named_threads_cpu();
    let delta = |i: usize| threads1[i].saturating_sub(threads0[i]).as_secs_f64();
    let (merge_threads_cpu_s, rocksdb_threads_cpu_s) = (delta(0), delta(1));
    drop(indexer);
    index.reload()?;
    anyhow::ensure!(
        index.len() == n,
        "the index holds {} documents after indexing {n}",
        index.len()
    );
    anyhow::ensure!(n == reads.torrents, "indexed {n} of {} torrents", reads.torrents);
    let segments = index.reader().searcher().segment_readers().len();
    let bytes = dir_file_bytes(dir)?;
    let per_s = n as f64 / secs.max(1e-9);
    let build = IndexBuild {
        seconds: round(secs, 2),
        per_s: round(per_s, 0),
        ceiling_ratio: round(per_s / reads.raw_per_s.max(1e-9), 3),
        process_cpu_s: round(process_cpu_s, 2),
        calling_thread_cpu_s: round(calling_thread_cpu_s, 2),
        merge_threads_cpu_s: round(merge_threads_cpu_s, 2),
        rocksdb_threads_cpu_s: round(rocksdb_threads_cpu_s, 2),
        other_cpu_s: round(
            (process_cpu_s - calling_thread_cpu_s - merge_threads_cpu_s - rocksdb_threads_cpu_s).max(0.0),
            2,
        ),
        per_process_cpu_s: round(n as f64 / process_cpu_s.max(1e-9), 0),
        bytes,
        bytes_per_torrent: round(bytes as f64 / n.max(1) as f64, 1),
        segments,
    };
    println!(
        "index: {n} torrents in {secs:.1} s = {per_s:.0}/s ({:.2} of the raw pass); process CPU {process_cpu_s:.1} s \
         ({:.0} torrents per CPU-second: calling thread {calling_thread_cpu_s:.1} s, merges {merge_threads_cpu_s:.1} s, \
         RocksDB {rocksdb_threads_cpu_s:.1} s, indexing thread and others {:.1} s); {bytes} bytes = {:.1} per torrent \
         in {segments} segments",
        build.ceiling_ratio, build.per_process_cpu_s, build.other_cpu_s, build.bytes_per_torrent
    );
    Ok(build)
}

/// CPU so far of tantivy's merge threads and of RocksDB's background threads.
fn named_threads_cpu() -> [Duration; 2] {
    [threads_cpu(&["merge_thread_"]), threads_cpu(&["rocksdb:"])]
}

/// Bytes of the regular files directly in `dir` (the index; not the
/// follower's scratch directory the server keeps inside it).
pub(crate) fn dir_file_bytes(dir: &Path) -> anyhow::Result<u64> {
    let mut bytes = 0;
    for e in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let m = e?.metadata()?;
        if m.is_file() {
            bytes += m.len();
        }
    }
    Ok(bytes)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

pub(crate) fn round(x: f64, digits: i32) -> f64 {
    let m = 10f64.powi(digits);
    (x * m).round() / m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_records_are_classified_and_deterministic() {
        let a: Vec<_> = (0..200).map(|i| catalogue_record(1, i, 1_700_000_000)).collect();
        let b = catalogue_record(1, 7, 1_700_000_000);
        assert_eq!(a[7].info_hash, b.info_hash);
        assert_eq!(a[7].name, b.name);
        // The catalogue's five kinds: most are recognised by their extensions.
        let other = a
            .iter()
            .filter(|t| t.class == trawl_storage::ContentClass::Other)
            .count();
        assert!(other < 20, "{other} of 200 unclassified");
        let hashes: std::collections::HashSet<_> = a.iter().map(|t| t.info_hash).collect();
        assert_eq!(hashes.len(), a.len());
    }
}
