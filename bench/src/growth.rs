//! `trawl-bench growth`: one store grown to 100 million infohashes and 10
//! million torrents, measured at each milestone (1M, 10M, 30M, 100M by
//! default) to show whether trawl slows down as its index grows.
//!
//! The store lives in `--dir` and the run is resumable: the figures of each
//! milestone and how many hashes are stored are kept in `DIR/growth.json`
//! after every chunk of one million new hashes, whose acknowledgements mean
//! they are durable. Hash `i` is a function of the seed and `i`, so a resumed
//! run regenerates the same hashes, and its first chunk's repeats of hashes
//! already stored are deduplicated as any repeat is.
//!
//! Each chunk sends 1/0.9 sightings per new hash (10% repeats of random
//! earlier hashes, so the dedup reads a store of the full size) through the
//! same `Writer` a crawl uses, in batches of 1,000, then one realistic
//! torrent (`--info-dicts files`, 1 to 200 files) per 10 new hashes, in
//! batches of 100. Everything is generated before its clock starts. At a milestone it
//! measures:
//! - ingest: sightings per second of the chunk that reached it, and the
//!   slowest chunk since the previous milestone (the dedup filter's doubling
//!   rescans the whole index inside one chunk); the torrents are stored after
//!   each chunk's sightings and timed apart, as torrents per second;
//! - export: every hash as hex to /dev/null, per second;
//! - point lookups: `Store::infohash` of random stored and unknown hashes,
//!   one thread, per second;
//! - memory: the dedup filter's bytes, RSS now and at its peak;
//! - disk: bytes under the directory per infohash, the `infohashes` SSTs per
//!   infohash, torrent and info dict SSTs per torrent (live, not compacted:
//!   what a user's disk holds);
//! - write amplification: bytes this process wrote to disk (`/proc/self/io`)
//!   per byte of WriteBatch the writer handed RocksDB, over the chunks since
//!   the previous milestone.
//!
//! The targets (issue 22) are compared in the same run: at the last
//! milestone, ingest at least 0.8x its rate at the first and at least 1M/s,
//! RSS at most 2 GB, at most 24 bytes per infohash.

use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use trawl_storage::export::{self, Filter, Format};
use trawl_storage::schema::{CF_INFOHASHES, CF_INFO_DICTS, CF_TORRENTS};
use trawl_storage::{
    Batch, BatchOutcome, Discovery, InfoDictMode, InfoHash, Source, Store, StoreOptions, Writer, WriterHandle,
    WriterOptions, WriterStats,
};

const CHUNK: u64 = 1_000_000;
const BATCH: usize = 1_000;
const TORRENT_BATCH: usize = 100;
const LOOKUPS: usize = 200_000;
const TARGET_RATIO: f64 = 0.8;
const TARGET_INGEST_PER_S: f64 = 1_000_000.0;
const TARGET_RSS_BYTES: f64 = 2e9;
const TARGET_BYTES_PER_INFOHASH: f64 = 24.0;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Directory of the growing store and its `growth.json` (kept, so a run resumes).
    #[arg(long)]
    pub dir: PathBuf,
    /// Stored infohashes at which to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [1_000_000u64, 10_000_000, 30_000_000, 100_000_000])]
    pub milestones: Vec<u64>,
    /// One torrent stored per this many new infohashes.
    #[arg(long, default_value_t = 10)]
    pub hashes_per_torrent: u64,
    /// Percent of sightings that repeat an earlier hash.
    #[arg(long, default_value_t = 10)]
    pub dup_percent: u64,
    /// Seed of the hashes; a resumed run must use the one it started with.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// What `growth.json` keeps between runs.
#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    seed: u64,
    /// New hashes generated and acknowledged (indices `0..stored`).
    stored: u64,
    torrents: u64,
    rows: Vec<Row>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Row {
    infohashes: u64,
    torrents: u64,
    ingest_per_s: f64,
    slowest_chunk_per_s: f64,
    /// Torrents stored per second since the previous milestone.
    torrents_per_s: f64,
    export_hex_per_s: f64,
    lookups_per_s: f64,
    bloom_bytes: u64,
    rss_bytes: u64,
    peak_rss_bytes: u64,
    dir_bytes_per_infohash: f64,
    sst_bytes_per_infohash: f64,
    bytes_per_torrent: f64,
    write_amplification: f64,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        !args.milestones.is_empty() && args.milestones.windows(2).all(|w| w[0] < w[1]),
        "--milestones must be increasing"
    );
    anyhow::ensure!(
        args.hashes_per_torrent > 0 && args.dup_percent < 100,
        "--hashes-per-torrent must be positive and --dup-percent below 100"
    );
    std::fs::create_dir_all(&args.dir).with_context(|| format!("creating {}", args.dir.display()))?;
    let state_path = args.dir.join("growth.json");
    let mut state = load_state(&state_path, args.seed)?;
    if state.stored > 0 {
        println!(
            "resuming at {} infohashes, {} torrents ({} milestones measured)",
            state.stored,
            state.torrents,
            state.rows.len()
        );
    }
    let opts = StoreOptions {
        info_dicts: InfoDictMode::Files,
        ..StoreOptions::default()
    };
    let store = Arc::new(Store::open(args.dir.join("db"), &opts)?);
    // The crawler's own sizing, so the filter's doubling is part of the figures.
    let writer = Writer::spawn(store.clone(), WriterOptions::default())?;
    let handle = writer.handle();
    let now = trawl_storage::unix_now();

    for &milestone in &args.milestones {
        if state.rows.iter().any(|r| r.infohashes >= milestone) {
            continue;
        }
        let (io0, bytes0) = (proc_write_bytes(), handle.stats().bytes_written);
        let (mut last_rate, mut slowest) = (0.0, f64::INFINITY);
        let (mut torrent_time, mut torrents_timed) = (0.0, 0u64);
        while state.stored < milestone {
            let n = CHUNK.min(milestone - state.stored);
            let c = ingest_chunk(&handle, &args, state.stored, n, now)?;
            let rate = c.sightings as f64 / c.ingest_secs;
            state.stored += n;
            state.torrents += c.torrents;
            torrent_time += c.torrent_secs;
            torrents_timed += c.torrents;
            save_state(&state_path, &state)?;
            last_rate = rate;
            slowest = slowest.min(rate);
            if state.stored % (10 * CHUNK) == 0 || state.stored == milestone {
                println!(
                    "{:>11} infohashes, {:>10} torrents: chunk at {:.0} sightings/s",
                    state.stored, state.torrents, rate
                );
            }
        }
        let stats = handle.stats();
        let row = measure(
            &store,
            &args,
            &state,
            &stats,
            (last_rate, slowest),
            (proc_write_bytes() - io0, stats.bytes_written - bytes0),
        )?;
        let row = Row {
            torrents_per_s: (torrents_timed as f64 / torrent_time.max(1e-9)).round(),
            ..row
        };
        print_row(&row);
        state.rows.push(row);
        save_state(&state_path, &state)?;
    }
    drop(handle);
    let stats = writer.shutdown();
    anyhow::ensure!(stats.items_lost == 0, "the writer lost {} items", stats.items_lost);
    report(&state.rows);
    Ok(())
}

/// Hash `i` of the run: three splitmix64 outputs of the seed and `i`.
fn hash_of(seed: u64, i: u64) -> InfoHash {
    let mut x = seed ^ i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let mut h = [0u8; 20];
    for part in h.chunks_mut(8) {
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        part.copy_from_slice(&z.to_be_bytes()[..part.len()]);
    }
    h
}

/// Sends `n` new hashes from index `from`, with their repeats, then the
/// torrents that go with them, each generated before its clock starts, and
/// waits for every acknowledgement. Returns the seconds the sightings and
/// the torrents took to be stored, and their counts.
fn ingest_chunk(h: &WriterHandle, args: &Args, from: u64, n: u64, now: u32) -> anyhow::Result<Chunk> {
    let mut rng = SmallRng::seed_from_u64(args.seed ^ from.rotate_left(17));
    let mut batches: Vec<Vec<Discovery>> = Vec::with_capacity((n as usize).div_ceil(BATCH) + 1);
    let mut batch = Vec::with_capacity(BATCH);
    let mut torrent_hashes = Vec::new();
    for i in from..from + n {
        let mut push = |ih: InfoHash| {
            batch.push(Discovery {
                info_hash: ih,
                source: Source::Sample,
                at: now,
            })
        };
        push(hash_of(args.seed, i));
        // On average dup / (100 - dup) repeats per new hash: dup% of all sightings.
        if i > 0 && rng.gen_range(0..100 - args.dup_percent) < args.dup_percent {
            push(hash_of(args.seed, rng.gen_range(0..i)));
        }
        if i % args.hashes_per_torrent == 0 {
            torrent_hashes.push(hash_of(args.seed, i));
        }
        if batch.len() >= BATCH {
            batches.push(std::mem::replace(&mut batch, Vec::with_capacity(BATCH)));
        }
    }
    batches.push(batch);
    let sightings: u64 = batches.iter().map(|b| b.len() as u64).sum();
    let t0 = Instant::now();
    send_all(
        h,
        batches.into_iter().map(|discoveries| Batch {
            discoveries,
            ..Batch::default()
        }),
    )?;
    let ingest_secs = t0.elapsed().as_secs_f64();

    let mut torrent_secs = 0.0;
    for part in torrent_hashes.chunks(10_000) {
        let mut torrents: Vec<_> = part
            .iter()
            .map(|ih| {
                let mut t = crate::storage::realistic_torrent_with(&mut rng, now, false);
                t.info_hash = *ih;
                t
            })
            .collect();
        let t0 = Instant::now();
        let mut batches = Vec::new();
        while !torrents.is_empty() {
            let rest = torrents.split_off(torrents.len().saturating_sub(TORRENT_BATCH));
            batches.push(Batch {
                torrents: rest,
                ..Batch::default()
            });
        }
        send_all(h, batches.into_iter())?;
        torrent_secs += t0.elapsed().as_secs_f64();
    }
    Ok(Chunk {
        sightings,
        ingest_secs,
        torrents: torrent_hashes.len() as u64,
        torrent_secs,
    })
}

struct Chunk {
    sightings: u64,
    ingest_secs: f64,
    torrents: u64,
    torrent_secs: f64,
}

/// Sends every batch with a reply and waits for all the acknowledgements.
fn send_all(h: &WriterHandle, batches: impl Iterator<Item = Batch>) -> anyhow::Result<()> {
    let (tx, rx) = crossbeam_channel::unbounded::<BatchOutcome>();
    let mut sent = 0usize;
    for b in batches {
        h.send(Batch {
            reply: Some(tx.clone()),
            ..b
        })?;
        sent += 1;
    }
    drop(tx);
    let acked = rx.iter().take(sent).count();
    anyhow::ensure!(acked == sent, "{acked} of {sent} batches acknowledged");
    Ok(())
}

fn measure(
    store: &Store,
    args: &Args,
    state: &State,
    stats: &WriterStats,
    (ingest_per_s, slowest): (f64, f64),
    (io_bytes, user_bytes): (u64, u64),
) -> anyhow::Result<Row> {
    let t0 = Instant::now();
    let mut sink = BufWriter::with_capacity(1 << 20, std::fs::File::create("/dev/null")?);
    let sum = export::export(store, Format::Hex, &Filter::default(), &mut sink)?;
    let export_hex_per_s = sum.written as f64 / t0.elapsed().as_secs_f64();
    anyhow::ensure!(
        sum.written == state.stored,
        "exported {} hashes, {} stored",
        sum.written,
        state.stored
    );

    // Half stored (must be found), half never generated (must not be).
    let mut rng = SmallRng::seed_from_u64(args.seed ^ 0x100c);
    let t0 = Instant::now();
    for k in 0..LOOKUPS {
        if k % 2 == 0 {
            let ih = hash_of(args.seed, rng.gen_range(0..state.stored));
            anyhow::ensure!(store.infohash(&ih)?.is_some(), "a stored hash was not found");
        } else {
            let ih: InfoHash = rng.gen();
            anyhow::ensure!(store.infohash(&ih)?.is_none(), "a random hash was found");
        }
    }
    let lookups_per_s = LOOKUPS as f64 / t0.elapsed().as_secs_f64();

    let disk = store.disk_usage()?;
    let (rss, peak) = rss_bytes();
    Ok(Row {
        infohashes: state.stored,
        torrents: state.torrents,
        ingest_per_s: ingest_per_s.round(),
        slowest_chunk_per_s: slowest.round(),
        torrents_per_s: 0.0,
        export_hex_per_s: export_hex_per_s.round(),
        lookups_per_s: lookups_per_s.round(),
        bloom_bytes: stats.bloom_bytes,
        rss_bytes: rss,
        peak_rss_bytes: peak,
        dir_bytes_per_infohash: round1(disk.total_bytes as f64 / state.stored as f64),
        sst_bytes_per_infohash: round1(disk.sst_bytes_of(CF_INFOHASHES) as f64 / state.stored as f64),
        bytes_per_torrent: round1(
            (disk.sst_bytes_of(CF_TORRENTS) + disk.sst_bytes_of(CF_INFO_DICTS)) as f64 / state.torrents.max(1) as f64,
        ),
        write_amplification: round1(io_bytes as f64 / user_bytes.max(1) as f64),
    })
}

fn print_row(r: &Row) {
    println!(
        "at {} infohashes / {} torrents: ingest {:.0}/s (slowest chunk {:.0}/s), torrents {:.0}/s, export {:.0}/s, lookups {:.0}/s, \
         bloom {:.0} MB, RSS {:.0} MB (peak {:.0} MB), {:.1} B/infohash on disk ({:.1} in its SSTs), \
         {:.0} B/torrent, write amplification {:.1}",
        r.infohashes,
        r.torrents,
        r.ingest_per_s,
        r.slowest_chunk_per_s,
        r.torrents_per_s,
        r.export_hex_per_s,
        r.lookups_per_s,
        r.bloom_bytes as f64 / 1e6,
        r.rss_bytes as f64 / 1e6,
        r.peak_rss_bytes as f64 / 1e6,
        r.dir_bytes_per_infohash,
        r.sst_bytes_per_infohash,
        r.bytes_per_torrent,
        r.write_amplification
    );
}

fn report(rows: &[Row]) {
    if let (Some(first), Some(last)) = (rows.first(), rows.last()) {
        println!(
            "ratios against the issue's targets (>= 1.0 meets it), at {}:",
            last.infohashes
        );
        println!(
            "  ingest vs its rate at {}  {:.2}x of {TARGET_RATIO}",
            first.infohashes,
            last.ingest_per_s / first.ingest_per_s / TARGET_RATIO
        );
        println!(
            "  ingest                  {:.2}x of {TARGET_INGEST_PER_S}/s",
            last.ingest_per_s / TARGET_INGEST_PER_S
        );
        println!(
            "  peak RSS                {:.2}x under {TARGET_RSS_BYTES}",
            TARGET_RSS_BYTES / last.peak_rss_bytes as f64
        );
        println!(
            "  bytes per infohash      {:.2}x under {TARGET_BYTES_PER_INFOHASH} (its SSTs)",
            TARGET_BYTES_PER_INFOHASH / last.sst_bytes_per_infohash
        );
    }
    println!("{}", serde_json::json!({ "bench": "growth", "rows": rows }));
}

fn load_state(path: &Path, seed: u64) -> anyhow::Result<State> {
    match std::fs::read(path) {
        Ok(raw) => {
            let s: State =
                serde_json::from_slice(&raw).with_context(|| format!("{} is not a growth state", path.display()))?;
            anyhow::ensure!(
                s.seed == seed,
                "{} was grown with --seed {}; resume with it or use another --dir",
                path.display(),
                s.seed
            );
            Ok(s)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State {
            seed,
            ..State::default()
        }),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Written aside and renamed, so a kill leaves the old state or the new one.
fn save_state(path: &Path, s: &State) -> anyhow::Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(s)?)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Bytes this process has caused to be written to storage.
fn proc_write_bytes() -> u64 {
    let io = std::fs::read_to_string("/proc/self/io").unwrap_or_default();
    io.lines()
        .find_map(|l| l.strip_prefix("write_bytes:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// RSS now and at its peak (VmRSS, VmHWM), in bytes.
fn rss_bytes() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = |key: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (kb("VmRSS:") * 1024, kb("VmHWM:") * 1024)
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_a_function_of_seed_and_index_and_do_not_collide() {
        assert_eq!(hash_of(1, 42), hash_of(1, 42));
        assert_ne!(hash_of(1, 42), hash_of(2, 42));
        let set: std::collections::HashSet<InfoHash> = (0..100_000).map(|i| hash_of(7, i)).collect();
        assert_eq!(set.len(), 100_000);
    }
}
