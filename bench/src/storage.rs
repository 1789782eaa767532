//! `trawl-bench storage`: ingest with dedup, hex export and bytes on disk,
//! through the same `Writer` and `export` the engine and CLI use.
//!
//! Phase 0 writes the sightings straight into RocksDB in sorted groups, with
//! no dedup: the write path's ceiling. Phase 1 sends the same N sightings
//! (default 5 million) through the `Writer` in batches, 10% of them repeats of
//! earlier hashes, and waits for every acknowledgement; it reports the writer
//! thread's CPU per sighting beside the wall-clock rate. Phase 2
//! exports the unique hashes as hex to /dev/null. Phase 3 compacts and
//! divides the `infohashes` SST bytes by the hash count. Phase 4 stores
//! realistic torrents (1 to 200 files, scene-style paths, a raw info dict with
//! real-size piece hashes) in a second database and divides its metadata
//! bytes by the torrent count. All data lives in a temp dir removed at the end.
//! The figures are compared with the targets in the same run.

use std::io::BufWriter;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use trawl_storage::export::{self, Filter, Format};
use trawl_storage::schema::{CF_INFOHASHES, CF_INFO_DICTS, CF_SCRAPES, CF_TORRENTS};
use trawl_storage::{
    Batch, BatchOutcome, BitmagnetType, ContentClass, Discovery, FileEntry, InfoDictMode, InfoHash, ScrapeEstimate,
    Source, Store, StoreOptions, TorrentRecord, TorrentVersion, Writer, WriterOptions,
};

const TARGET_INGEST_PER_S: f64 = 1_000_000.0;
const TARGET_EXPORT_PER_S: f64 = 5_000_000.0;
const TARGET_BYTES_PER_INFOHASH: f64 = 48.0;
const TARGET_BYTES_PER_TORRENT: f64 = 2048.0;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Sightings to ingest (10% of them repeats).
    #[arg(long, default_value_t = 5_000_000)]
    pub n: usize,
    /// Sightings per batch, as one engine core would send them.
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
    /// Percent of sightings that repeat an earlier hash.
    #[arg(long, default_value_t = 10)]
    pub dup_percent: u32,
    /// Torrents stored in the metadata phase.
    #[arg(long, default_value_t = 10_000)]
    pub torrents: usize,
    /// fsync every group commit, as the crawler does (the durable setting).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub sync: bool,
    /// RNG seed, so runs are comparable.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Also measure bytes per torrent on this many torrents made by libtorrent
    /// (bench/libtorrent_torrents.py, Debian's python3-libtorrent); 0 skips it.
    #[arg(long, default_value_t = 2000)]
    pub libtorrent_torrents: usize,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(args.n > 0 && args.batch > 0, "--n and --batch must be positive");
    let tmp = tempfile::Builder::new()
        .prefix("trawl-bench-storage")
        .tempdir()
        .context("temp dir")?;
    let mut rng = SmallRng::seed_from_u64(args.seed);
    let opts = StoreOptions {
        sync_writes: args.sync,
        ..StoreOptions::default()
    };

    // ---- phase 0: the ceiling ---------------------------------------------
    let batches = make_sightings(&mut rng, args.n, args.batch, args.dup_percent);
    let unique: usize = batches
        .iter()
        .map(|b| b.iter().filter(|(_, fresh)| *fresh).count())
        .sum();
    let now = trawl_storage::unix_now();
    let group_items = WriterOptions::default().max_group_items;
    let ceiling = write_path_ceiling(&batches, group_items, tmp.path().join("ceiling"), &opts, now)?;
    let ceiling_per_s = args.n as f64 / ceiling.wall_s;
    println!(
        "ceiling: RocksDB write path alone (the same sightings in sorted groups of <= {group_items}, \
         WAL sync={}, no dedup): {:.2} s, {:.0} sightings/s; {:.2} us CPU per sighting in the writing thread, \
         {:.2} s in RocksDB background threads",
        args.sync,
        ceiling.wall_s,
        ceiling_per_s,
        ceiling.cpu_s * 1e6 / args.n as f64,
        ceiling.background_cpu_s
    );

    // ---- phase 1: ingest -------------------------------------------------
    println!(
        "ingest: {} sightings, {unique} unique, batches of {}, sync={}",
        args.n, args.batch, args.sync
    );
    let store = Arc::new(Store::open(tmp.path().join("index"), &opts)?);
    let writer = Writer::spawn(
        store.clone(),
        WriterOptions {
            expected_infohashes: unique,
            ..WriterOptions::default()
        },
    )?;
    let handle = writer.handle();
    let (reply_tx, reply_rx) = crossbeam_channel::unbounded::<BatchOutcome>();
    let background0 = threads_cpu(ROCKSDB_THREADS);
    let t0 = Instant::now();
    for b in &batches {
        let discoveries = b
            .iter()
            .map(|(h, _)| Discovery {
                info_hash: *h,
                source: Source::Sample,
                at: now,
            })
            .collect();
        handle.send(Batch {
            discoveries,
            reply: Some(reply_tx.clone()),
            ..Batch::default()
        })?;
    }
    drop(reply_tx);
    // Every outcome is sent after its group is durable: the last one ends the ingest.
    let new: usize = reply_rx.iter().take(batches.len()).map(|o| o.new.len()).sum();
    let ingest_s = t0.elapsed().as_secs_f64();
    let writer_cpu_s = threads_cpu(&[WRITER_THREAD]).as_secs_f64();
    let background_cpu_s = (threads_cpu(ROCKSDB_THREADS) - background0).as_secs_f64();
    drop(handle);
    let stats = writer.shutdown();
    anyhow::ensure!(new == unique, "writer reported {new} new hashes, {unique} were unique");
    anyhow::ensure!(stats.items_lost == 0, "writer lost {} items", stats.items_lost);
    let ingest_per_s = args.n as f64 / ingest_s;
    println!(
        "ingest: {:.2} s, {:.0} sightings/s ({:.2}x the ceiling); {} commits averaging {:.1} ms, \
         {} bloom false positives, {} sends blocked",
        ingest_s,
        ingest_per_s,
        ingest_per_s / ceiling_per_s,
        stats.commits,
        stats.commit_micros as f64 / 1e3 / stats.commits.max(1) as f64,
        stats.bloom_false_positives,
        stats.sends_blocked
    );
    println!(
        "ingest: writer thread {:.2} s CPU = {:.2} us per sighting ({:.0} sightings per writer CPU-second), \
         {:.0}% busy; {:.2} s in RocksDB background threads",
        writer_cpu_s,
        writer_cpu_s * 1e6 / args.n as f64,
        args.n as f64 / writer_cpu_s,
        100.0 * writer_cpu_s / ingest_s,
        background_cpu_s
    );

    // ---- phase 2: export -------------------------------------------------
    let t0 = Instant::now();
    let mut sink = BufWriter::with_capacity(1 << 20, std::fs::File::create("/dev/null")?);
    let sum = export::export(&store, Format::Hex, &Filter::default(), &mut sink)?;
    let export_s = t0.elapsed().as_secs_f64();
    anyhow::ensure!(sum.written as usize == unique, "exported {} of {unique}", sum.written);
    let export_hex_per_s = unique as f64 / export_s;
    println!("export hex: {:.2} s, {:.0} hashes/s", export_s, export_hex_per_s);

    // ---- phase 3: bytes per infohash ----------------------------------
    store.compact()?;
    let disk = store.disk_usage()?;
    let bytes_per_infohash = disk.sst_bytes_of(CF_INFOHASHES) as f64 / unique as f64;
    println!(
        "disk: infohashes SSTs {} bytes = {:.1} bytes/hash; whole directory {} bytes = {:.1} bytes/hash (WAL included)",
        disk.sst_bytes_of(CF_INFOHASHES),
        bytes_per_infohash,
        disk.total_bytes,
        disk.total_bytes as f64 / unique as f64
    );
    drop(store);

    // ---- phase 4: bytes per torrent -----------------------------------
    let (dicts_by_mode, t) = bytes_by_mode("torrents", tmp.path(), &opts, args.seed ^ 0x7f, args.torrents, || {
        realistic_torrent
    })?;
    // The swarm's catalogue: the dicts its seeders serve.
    let (catalogue_by_mode, _) = bytes_by_mode("swarm catalogue", tmp.path(), &opts, args.seed, args.torrents, || {
        let mut index = 0u32;
        move |_: &mut SmallRng, now| {
            index += 1;
            catalogue_torrent(index - 1, now)
        }
    })?;

    // libtorrent-made dicts, with the file counts of DHT torrents.
    let libtorrent_by_mode = if args.libtorrent_torrents > 0 {
        let dicts = libtorrent_dicts(args.libtorrent_torrents, &tmp.path().join("libtorrent-made"), args.seed)?;
        let (by_mode, _) = bytes_by_mode("libtorrent-made", tmp.path(), &opts, args.seed, dicts.len(), || {
            let mut next = dicts.iter();
            move |_: &mut SmallRng, now| record_of_dict(next.next().expect("one dict per torrent").clone(), now)
        })?;
        serde_json::Value::Object(by_mode)
    } else {
        serde_json::Value::Null
    };

    println!("ratios against the issue's targets (>= 1.0 meets it):");
    println!(
        "  ingest      {:.2}x of {TARGET_INGEST_PER_S} /s (the write path alone: {:.2}x)",
        ingest_per_s / TARGET_INGEST_PER_S,
        ceiling_per_s / TARGET_INGEST_PER_S
    );
    println!(
        "  export hex  {:.2}x of {TARGET_EXPORT_PER_S} /s",
        export_hex_per_s / TARGET_EXPORT_PER_S
    );
    println!(
        "  bytes/hash  {:.2}x under {TARGET_BYTES_PER_INFOHASH}",
        TARGET_BYTES_PER_INFOHASH / bytes_per_infohash
    );
    println!(
        "  bytes/torrent {:.2}x under {TARGET_BYTES_PER_TORRENT}",
        TARGET_BYTES_PER_TORRENT / t.bytes_per_torrent
    );
    println!(
        "{}",
        serde_json::json!({
            "bench": "storage",
            "ingest_per_s": ingest_per_s.round(),
            "ceiling_per_s": ceiling_per_s.round(),
            "ingest_vs_ceiling": (ingest_per_s / ceiling_per_s * 100.0).round() / 100.0,
            "writer_cpu_us_per_sighting": (writer_cpu_s * 1e8 / args.n as f64).round() / 100.0,
            "export_hex_per_s": export_hex_per_s.round(),
            "bytes_per_infohash": round1(bytes_per_infohash),
            "bytes_per_torrent": round1(t.bytes_per_torrent),
            "info_dict_bytes_per_torrent": round1(t.info_dict_bytes_per_torrent),
            "bytes_per_torrent_by_info_dicts_mode": dicts_by_mode,
            "catalogue_bytes_per_torrent_by_info_dicts_mode": catalogue_by_mode,
            "libtorrent_bytes_per_torrent_by_info_dicts_mode": libtorrent_by_mode,
        })
    );
    Ok(())
}

/// The writer's thread name, and RocksDB's background pools (flush, compaction).
pub(crate) const WRITER_THREAD: &str = "trawl-writer";
const ROCKSDB_THREADS: &[&str] = &["rocksdb:"];

/// CPU time so far of this process's threads whose name starts with one of
/// `prefixes`, from `/proc/self/task/*/schedstat` (nanoseconds, first field).
pub(crate) fn threads_cpu(prefixes: &[&str]) -> Duration {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Duration::ZERO;
    };
    let mut ns = 0u64;
    for t in tasks.flatten() {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if !prefixes.iter().any(|p| comm.trim_end().starts_with(p)) {
            continue;
        }
        let sched = std::fs::read_to_string(t.path().join("schedstat")).unwrap_or_default();
        ns += sched
            .split_ascii_whitespace()
            .next()
            .and_then(|f| f.parse().ok())
            .unwrap_or(0);
    }
    Duration::from_nanos(ns)
}

struct Ceiling {
    wall_s: f64,
    /// CPU of the thread that built and wrote the batches.
    cpu_s: f64,
    background_cpu_s: f64,
}

/// The same sightings, grouped as the writer groups them (consecutive
/// batches up to `group_items`), each group deduplicated and sorted outside
/// the clock, then written straight into a fresh database: what RocksDB alone
/// costs for this ingest. The database is closed (its background work
/// finished) before the writer's phase starts.
fn write_path_ceiling(
    batches: &[Vec<(InfoHash, bool)>],
    group_items: usize,
    dir: std::path::PathBuf,
    opts: &StoreOptions,
    at: u32,
) -> anyhow::Result<Ceiling> {
    let mut groups: Vec<Vec<InfoHash>> = Vec::new();
    let mut g: Vec<InfoHash> = Vec::new();
    for b in batches {
        g.extend(b.iter().map(|(h, _)| *h));
        if g.len() >= group_items {
            groups.push(std::mem::take(&mut g));
        }
    }
    groups.push(g);
    for g in &mut groups {
        g.sort_unstable();
        g.dedup();
    }
    let store = Store::open(&dir, opts)?;
    let background0 = threads_cpu(ROCKSDB_THREADS);
    let (t0, cpu0) = (Instant::now(), crate::sys::thread_cpu_time());
    trawl_storage::calibrate::write_groups_raw(&store, &groups, at)?;
    let ceiling = Ceiling {
        wall_s: t0.elapsed().as_secs_f64(),
        cpu_s: (crate::sys::thread_cpu_time() - cpu0).as_secs_f64(),
        background_cpu_s: (threads_cpu(ROCKSDB_THREADS) - background0).as_secs_f64(),
    };
    drop(store);
    std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    Ok(ceiling)
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// Batches of (hash, first time seen in the run).
fn make_sightings(rng: &mut SmallRng, n: usize, batch: usize, dup_percent: u32) -> Vec<Vec<(InfoHash, bool)>> {
    let mut seen: Vec<InfoHash> = Vec::with_capacity(n);
    let mut out = Vec::with_capacity(n.div_ceil(batch));
    let mut left = n;
    while left > 0 {
        let len = left.min(batch);
        let mut b = Vec::with_capacity(len);
        for _ in 0..len {
            if !seen.is_empty() && rng.gen_range(0..100) < dup_percent {
                b.push((seen[rng.gen_range(0..seen.len())], false));
            } else {
                let h: InfoHash = rng.gen();
                seen.push(h);
                b.push((h, true));
            }
        }
        left -= len;
        out.push(b);
    }
    out
}

struct TorrentFigures {
    bytes_per_torrent: f64,
    info_dict_bytes_per_torrent: f64,
}

/// Stores the same `count` torrents (a fresh generator from `make` and the
/// same seed each time) in each `--info-dicts` mode, printing each mode's
/// bytes per torrent. Returns them by mode, and the `full` mode's figures.
fn bytes_by_mode<G: FnMut(&mut SmallRng, u32) -> TorrentRecord>(
    label: &str,
    root: &std::path::Path,
    opts: &StoreOptions,
    seed: u64,
    count: usize,
    make: impl Fn() -> G,
) -> anyhow::Result<(serde_json::Map<String, serde_json::Value>, TorrentFigures)> {
    let mut by_mode = serde_json::Map::new();
    let mut full = None;
    for mode in [InfoDictMode::Full, InfoDictMode::Files, InfoDictMode::None] {
        let opts = StoreOptions {
            info_dicts: mode,
            ..opts.clone()
        };
        let dir = root.join(format!("{}-{mode}", label.replace(' ', "-")));
        let mut rng = SmallRng::seed_from_u64(seed);
        let figures = store_torrents(&mut rng, dir, &opts, count, make())?;
        let all = figures.bytes_per_torrent + figures.info_dict_bytes_per_torrent;
        println!(
            "{label}, --info-dicts {mode}: {all:.0} bytes/torrent in all (row + scrape {:.0}, info dict {:.0})",
            figures.bytes_per_torrent, figures.info_dict_bytes_per_torrent
        );
        by_mode.insert(mode.to_string(), round1(all).into());
        full.get_or_insert(figures);
    }
    Ok((by_mode, full.expect("three modes ran")))
}

/// The swarm catalogue's torrent `index` (seed 1), as the fetcher would store
/// it: parsed, with its name and files, class left as other.
fn catalogue_torrent(index: u32, now: u32) -> TorrentRecord {
    let mut raw = Vec::new();
    trawl_swarm::catalogue::write_info_dict(1, index, &mut raw);
    record_of_dict(raw, now)
}

/// A raw v1 info dict as the fetcher would store it: parsed, with its name
/// and files, class left as other.
fn record_of_dict(raw: Vec<u8>, now: u32) -> TorrentRecord {
    use sha1::{Digest, Sha1};
    let parsed = trawl_engine::metadata::info::parse(&raw).expect("the dicts parse");
    TorrentRecord {
        info_hash: Sha1::digest(&raw).into(),
        version: TorrentVersion::V1,
        v2_hash: None,
        name: parsed.display_name_bytes().to_vec(),
        files: parsed
            .files
            .iter()
            .map(|f| FileEntry {
                path: f.display_path().to_vec(),
                length: f.length,
            })
            .collect(),
        total_size: parsed.total_size,
        piece_length: parsed.piece_length,
        private: parsed.private,
        class: ContentClass::Other,
        content_type: None,
        fetched_at: now,
        scrape: None,
        info_dict: Some(raw),
    }
}

fn store_torrents(
    rng: &mut SmallRng,
    dir: std::path::PathBuf,
    opts: &StoreOptions,
    count: usize,
    mut make: impl FnMut(&mut SmallRng, u32) -> TorrentRecord,
) -> anyhow::Result<TorrentFigures> {
    let store = Arc::new(Store::open(&dir, opts)?);
    let writer = Writer::spawn(store.clone(), WriterOptions::default())?;
    let handle = writer.handle();
    let now = trawl_storage::unix_now();
    let (mut files_total, mut raw_dict_bytes) = (0usize, 0usize);
    let t0 = Instant::now();
    let mut batch = Batch::default();
    for _ in 0..count {
        let t = make(rng, now);
        files_total += t.file_count();
        raw_dict_bytes += t.info_dict.as_ref().map_or(0, Vec::len);
        batch.scrapes.push((
            t.info_hash,
            ScrapeEstimate {
                seeders: rng.gen_range(0..5000),
                leechers: rng.gen_range(0..500),
                at: now,
            },
        ));
        batch.torrents.push(t);
        if batch.torrents.len() == 100 {
            handle.send(std::mem::take(&mut batch))?;
        }
    }
    handle.send(batch)?;
    drop(handle);
    let stats = writer.shutdown();
    anyhow::ensure!(
        stats.torrents as usize == count && stats.items_lost == 0,
        "stored {} of {count} torrents",
        stats.torrents
    );
    let took = t0.elapsed();
    store.compact()?;
    let disk = store.disk_usage()?;
    let meta = disk.sst_bytes_of(CF_TORRENTS) + disk.sst_bytes_of(CF_SCRAPES);
    let dicts = disk.sst_bytes_of(CF_INFO_DICTS);
    let bytes_per_torrent = meta as f64 / count as f64;
    let info_dict_bytes_per_torrent = dicts as f64 / count as f64;
    println!(
        "torrents: {count} stored in {:.2} s, {:.1} files each on average; metadata (torrents + scrapes SSTs) {:.1} bytes/torrent",
        took.as_secs_f64(),
        files_total as f64 / count as f64,
        bytes_per_torrent
    );
    println!(
        "torrents: raw info dicts {:.0} bytes each on average (mostly SHA-1 piece hashes, incompressible), stored in {:.0} bytes each",
        raw_dict_bytes as f64 / count as f64,
        info_dict_bytes_per_torrent
    );
    // Check a record reads back whole, so the figure is for data we can use.
    let mut it_ok = false;
    export::export(
        &store,
        Format::Jsonl,
        &Filter {
            with_metadata: true,
            ..Filter::default()
        },
        &mut Wrote(&mut it_ok),
    )?;
    anyhow::ensure!(it_ok, "no torrent exported back");
    Ok(TorrentFigures {
        bytes_per_torrent,
        info_dict_bytes_per_torrent,
    })
}

/// A sink that records whether anything was written.
struct Wrote<'a>(&'a mut bool);

impl std::io::Write for Wrote<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        *self.0 |= !buf.is_empty();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

const WORDS: &[&str] = &[
    "The", "Last", "Night", "Blue", "Planet", "Empire", "Ocean", "Dark", "Star", "River", "King", "Queen", "Winter",
    "Summer", "Fire", "Ghost", "Road", "City", "Love", "War", "Silent", "Golden", "Broken", "Wild", "Lost", "Secret",
];
const GROUPS: &[&str] = &[
    "NTb", "FLUX", "SPARKS", "RARBG", "YIFY", "GalaxyRG", "EDITH", "CMRG", "KOGi", "PSA",
];
const QUALITY: &[&str] = &[
    "1080p.WEB-DL.DDP5.1.H.264",
    "2160p.BluRay.x265.10bit",
    "720p.HDTV.x264",
    "1080p.BluRay.x264",
];

/// Between `words.start` and `words.end - 1` random words joined by `sep`.
fn title(rng: &mut SmallRng, words: std::ops::Range<usize>, sep: &str) -> String {
    let n = rng.gen_range(words);
    (0..n)
        .map(|_| WORDS[rng.gen_range(0..WORDS.len())])
        .collect::<Vec<_>>()
        .join(sep)
}

/// A torrent shaped like the DHT's: mostly single videos and small packs,
/// some season packs and albums, a few large software/ebook collections.
fn realistic_torrent(rng: &mut SmallRng, now: u32) -> TorrentRecord {
    realistic_torrent_with(rng, now, true)
}

/// [`realistic_torrent`], its info dict with or without the piece hashes
/// (without them, the dict is what `--info-dicts files` keeps, and costs
/// nothing to generate).
pub(crate) fn realistic_torrent_with(rng: &mut SmallRng, now: u32, pieces: bool) -> TorrentRecord {
    let kind = rng.gen_range(0..100);
    let group = GROUPS[rng.gen_range(0..GROUPS.len())];
    let q = QUALITY[rng.gen_range(0..QUALITY.len())];
    let show = title(rng, 1..4, ".");
    let year = rng.gen_range(1970..2025);
    let (name, files, class, ct): (String, Vec<(Vec<String>, u64)>, _, _) = if kind < 35 {
        (
            format!("{show}.{year}.{q}-{group}.mkv"),
            vec![],
            ContentClass::Video,
            Some(BitmagnetType::Movie),
        )
    } else if kind < 65 {
        let season = rng.gen_range(1..10);
        let n = rng.gen_range(6..25);
        let mut f: Vec<_> = (1..=n)
            .map(|e| {
                (
                    vec![format!("{show}.S{season:02}E{e:02}.{q}-{group}.mkv")],
                    rng.gen_range(200u64 << 20..4 << 30),
                )
            })
            .collect();
        f.push((
            vec!["Subs".into(), format!("{show}.S{season:02}.English.srt")],
            rng.gen_range(20_000..90_000),
        ));
        (
            format!("{show}.S{season:02}.{q}-{group}"),
            f,
            ContentClass::Video,
            Some(BitmagnetType::TvShow),
        )
    } else if kind < 85 {
        let artist = title(rng, 2..3, " ");
        let n = rng.gen_range(8..20);
        let mut f: Vec<_> = (1..=n)
            .map(|t| {
                (
                    vec![format!("{t:02} - {artist} - {}.flac", title(rng, 1..5, " "))],
                    rng.gen_range(15u64 << 20..60 << 20),
                )
            })
            .collect();
        f.push((vec!["cover.jpg".into()], rng.gen_range(100_000..2_000_000)));
        f.push((vec![format!("{artist} - {year}.log")], rng.gen_range(2_000..9_000)));
        (
            format!("{artist} - {} ({year}) [FLAC]", title(rng, 2..3, " ")),
            f,
            ContentClass::Audio,
            Some(BitmagnetType::Music),
        )
    } else {
        // Collections: up to 200 files over a few nested folders.
        let n = rng.gen_range(30..=200);
        let dirs: Vec<String> = (0..rng.gen_range(2..8)).map(|_| title(rng, 2..3, " ")).collect();
        let f: Vec<_> = (0..n)
            .map(|i| {
                let d = &dirs[rng.gen_range(0..dirs.len())];
                (
                    vec![d.clone(), format!("{} - {}.epub", title(rng, 3..4, " "), i)],
                    rng.gen_range(200_000u64..8 << 20),
                )
            })
            .collect();
        (
            format!("{} Collection {year}", title(rng, 2..3, " ")),
            f,
            ContentClass::Ebook,
            Some(BitmagnetType::Ebook),
        )
    };
    let mut files: Vec<FileEntry> = files
        .into_iter()
        .map(|(p, length)| FileEntry {
            path: p.into_iter().map(String::into_bytes).collect(),
            length,
        })
        .collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let total_size = if files.is_empty() {
        rng.gen_range(700u64 << 20..20 << 30)
    } else {
        files.iter().map(|f| f.length).sum()
    };
    // Piece size as libtorrent picks it: about 1,000-2,000 pieces, 16 KiB to 16 MiB.
    let piece_length = (total_size / 1500).next_power_of_two().clamp(16 << 10, 16 << 20);
    let info_dict = bencode_info(rng, name.as_bytes(), &files, total_size, piece_length, pieces);
    TorrentRecord {
        info_hash: rng.gen(),
        version: TorrentVersion::V1,
        v2_hash: None,
        name: name.into_bytes(),
        files,
        total_size,
        piece_length,
        private: false,
        class,
        content_type: ct,
        fetched_at: now,
        scrape: None,
        info_dict: Some(info_dict),
    }
}

/// A BEP 3 info dict (keys in order) with random piece hashes of the right count.
fn bencode_info(
    rng: &mut SmallRng,
    name: &[u8],
    files: &[FileEntry],
    total: u64,
    piece_length: u64,
    with_pieces: bool,
) -> Vec<u8> {
    fn bytes(out: &mut Vec<u8>, b: &[u8]) {
        out.extend_from_slice(format!("{}:", b.len()).as_bytes());
        out.extend_from_slice(b);
    }
    fn int(out: &mut Vec<u8>, v: u64) {
        out.extend_from_slice(format!("i{v}e").as_bytes());
    }
    let mut d = b"d".to_vec();
    if files.is_empty() {
        bytes(&mut d, b"length");
        int(&mut d, total);
    } else {
        bytes(&mut d, b"files");
        d.push(b'l');
        for f in files {
            d.push(b'd');
            bytes(&mut d, b"length");
            int(&mut d, f.length);
            bytes(&mut d, b"path");
            d.push(b'l');
            for c in &f.path {
                bytes(&mut d, c);
            }
            d.extend_from_slice(b"ee");
        }
        d.push(b'e');
    }
    bytes(&mut d, b"name");
    bytes(&mut d, name);
    bytes(&mut d, b"piece length");
    int(&mut d, piece_length);
    if with_pieces {
        let pieces = total.div_ceil(piece_length) as usize;
        let mut p = vec![0u8; pieces * 20];
        rng.fill(&mut p[..]);
        bytes(&mut d, b"pieces");
        bytes(&mut d, &p);
    }
    d.push(b'e');
    d
}

/// Runs bench/libtorrent_torrents.py for `n` .torrent files in `dir` and
/// returns their info dicts, byte for byte as libtorrent wrote them.
fn libtorrent_dicts(n: usize, dir: &std::path::Path, seed: u64) -> anyhow::Result<Vec<Vec<u8>>> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/libtorrent_torrents.py");
    let status = std::process::Command::new("/usr/bin/python3")
        .arg(script)
        .arg(n.to_string())
        .arg(dir)
        .arg(seed.to_string())
        .status()
        .context("running bench/libtorrent_torrents.py")?;
    anyhow::ensure!(
        status.success(),
        "bench/libtorrent_torrents.py failed ({status}); it needs python3-libtorrent (scripts/setup.sh installs it), or pass --libtorrent-torrents 0"
    );
    let mut paths: Vec<_> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    paths.sort();
    let mut dicts = Vec::with_capacity(paths.len());
    for p in paths {
        let file = std::fs::read(&p)?;
        let top =
            trawl_engine::codec::bencode::decode(&file).with_context(|| format!("{} is not bencoded", p.display()))?;
        let info = top
            .as_dict()
            .and_then(|d| d.get(b"info"))
            .and_then(|v| v.as_dict())
            .with_context(|| format!("{} has no info dict", p.display()))?;
        dicts.push(info.raw().to_vec());
    }
    anyhow::ensure!(dicts.len() == n, "libtorrent wrote {} of {n} torrents", dicts.len());
    Ok(dicts)
}
