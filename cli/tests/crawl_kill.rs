//! Crash safety of `trawl crawl`: SIGKILL at seeded random points while it
//! crawls `trawl-swarm`, then checks that nothing acknowledged was lost.
//!
//! Each round starts the real binary on the same database, lets it crawl for a
//! random time, takes a read-only snapshot of the database (everything visible
//! there is in the WAL, a superset of what the writer has acknowledged, per
//! the durability rules in trawl-storage's lib.rs), lets it run a little longer
//! and kills it with SIGKILL. After each kill:
//! - the database opens read-write (recovery works);
//! - every infohash in the snapshot is still stored, and its sighting count
//!   did not go down; the number of hashes and torrents only grows;
//! - no torrent record is half written: each decodes, its info dict (if kept)
//!   hashes to the infohash, and a fetched hash is no longer queued (the record
//!   and the queue removal are one write);
//! - every hash queued in the snapshot is still queued or has its metadata.
//!
//! A last graceful run shows the fetch queue resuming: hashes queued before
//! the kills get fetched or retried. `TRAWL_CRAWL_KILLS` (default 3) sets the
//! number of kills, `TRAWL_CRAWL_KILL_SEED` (default 1) the kill points; the
//! shared swarm child runs 120 s, which bounds N to about 30.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use sha1::{Digest, Sha1};
use trawl_storage::export::{export, Filter, Format};
use trawl_storage::{InfoHash, Store, StoreOptions};

const NODES: u32 = 2_000;
const TORRENTS: u32 = 10_000;
/// Short sample intervals, so a few seconds of crawling find thousands of hashes.
const INTERVAL_MAX: u32 = 4;

#[path = "../../engine/tests/crawl_common/mod.rs"]
mod crawl_common;

use crawl_common::{free_port, SwarmChild};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A child process killed and reaped on drop, so a failing test leaves nothing running.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_crawl(db: &Path, swarm: &SwarmChild) -> Killed {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_trawl"));
    cmd.arg("crawl")
        .arg("--db")
        .arg(db)
        .args([
            "--port",
            &free_port().to_string(),
            "--cores",
            "1",
            "--no-pin",
            "--no-ipv6",
        ])
        .args(["--duration", "300", "--allow-loopback", "--fetch-concurrency", "16"])
        // Whole dicts, so each one's SHA-1 can be checked against its key.
        .args(["--info-dicts", "full"])
        .stdout(Stdio::null());
    for i in 0..4 {
        cmd.args(["--bootstrap", &swarm.node(i).to_string()]);
    }
    Killed(cmd.spawn().expect("start trawl crawl"))
}

/// What the database holds, as far as these checks need.
#[derive(Default)]
struct Snapshot {
    /// Every stored infohash and its sighting count.
    seen: HashMap<InfoHash, u32>,
    /// Hashes queued for a metadata fetch: (due, failed attempts).
    queued: HashMap<InfoHash, (u32, u16)>,
    /// Hashes with a torrent record.
    fetched: HashSet<InfoHash>,
}

fn all_hashes(store: &Store) -> Vec<InfoHash> {
    let mut raw = Vec::new();
    export(store, Format::Bin, &Filter::default(), &mut raw).expect("export every hash");
    raw.chunks_exact(20)
        .map(|c| {
            let mut h = [0u8; 20];
            h.copy_from_slice(c);
            h
        })
        .collect()
}

/// Reads `store` and checks that no torrent record is half written.
fn read(store: &Store) -> Snapshot {
    let mut snap = Snapshot::default();
    for h in all_hashes(store) {
        let rec = store
            .infohash(&h)
            .expect("infohash record decodes")
            .expect("exported hash has a record");
        snap.seen.insert(h, rec.seen);
        let queued = store.staging_entry(&h).expect("staging entry decodes");
        let torrent = store.torrent(&h).expect("torrent record decodes");
        if let Some(dict) = store.info_dict(&h).expect("info dict readable") {
            assert!(torrent.is_some(), "an info dict without its torrent record");
            let digest: [u8; 20] = Sha1::digest(&dict).into();
            assert_eq!(digest, h, "a stored info dict does not hash to its infohash");
        }
        if torrent.is_some() {
            snap.fetched.insert(h);
            assert!(
                queued.is_none(),
                "a fetched hash is still queued: record and queue removal split"
            );
        }
        if let Some(e) = queued {
            snap.queued.insert(h, (e.due, e.attempts));
        }
    }
    snap
}

/// A read-only snapshot of a database another process is writing. Opening
/// can race with a WAL switch; a retry sees the new files.
fn read_live(db: &Path) -> Snapshot {
    let mut last_err = None;
    for _ in 0..20 {
        match Store::open_read_only(db) {
            Ok(store) => return read(&store),
            Err(e) => last_err = Some(e),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("cannot open the live database read-only: {last_err:?}");
}

/// Checks everything in `acked` survived into `after`.
fn assert_nothing_lost(acked: &Snapshot, after: &Snapshot, round: usize) -> usize {
    let mut lost = 0;
    for (h, seen) in &acked.seen {
        match after.seen.get(h) {
            None => lost += 1,
            Some(now) => assert!(
                now >= seen,
                "round {round}: sightings of a hash went down ({seen} -> {now})"
            ),
        }
    }
    for h in acked.queued.keys() {
        assert!(
            after.queued.contains_key(h) || after.fetched.contains(h),
            "round {round}: a queued hash left the queue without metadata"
        );
    }
    assert!(
        acked.fetched.is_subset(&after.fetched),
        "round {round}: a torrent record was lost"
    );
    lost
}

#[test]
fn sigkill_at_random_points_loses_nothing_acknowledged() {
    let kills: usize = env_or("TRAWL_CRAWL_KILLS", 3);
    let mut rng = rand::rngs::StdRng::seed_from_u64(env_or("TRAWL_CRAWL_KILL_SEED", 1));
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crawl.rocksdb");
    let swarm = SwarmChild::start(&dir.path().join("manifest.jsonl"), NODES, TORRENTS, INTERVAL_MAX);

    let mut previous = Snapshot::default();
    let mut lost = 0;
    let mut queued_before: HashMap<InfoHash, (u32, u16)> = HashMap::new();
    for round in 0..kills {
        let mut crawl = start_crawl(&db, &swarm);
        // A kill point anywhere from start-up to mid-crawl.
        std::thread::sleep(Duration::from_millis(rng.gen_range(300..3_000)));
        if round == 0 || !db.join("CURRENT").exists() {
            // The first round needs the database created before a snapshot can be read.
            let deadline = Instant::now() + Duration::from_secs(30);
            while !db.join("CURRENT").exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let acked = read_live(&db);
        std::thread::sleep(Duration::from_millis(rng.gen_range(0..500)));
        assert!(
            crawl.0.try_wait().unwrap().is_none(),
            "round {round}: trawl crawl exited before the kill"
        );
        crawl.0.kill().unwrap(); // SIGKILL
        crawl.0.wait().unwrap();

        // Recovery: the database opens read-write, then everything is checked.
        let store = Store::open(&db, &StoreOptions::default()).expect("the database opens after SIGKILL");
        let after = read(&store);
        drop(store);
        lost += assert_nothing_lost(&acked, &after, round);
        assert!(
            after.seen.len() >= previous.seen.len(),
            "round {round}: hash count went down"
        );
        assert!(
            after.fetched.len() >= previous.fetched.len(),
            "round {round}: torrent count went down"
        );
        eprintln!(
            "round {round}: snapshot {} hashes ({} queued, {} torrents), after kill {} hashes ({} queued, {} torrents)",
            acked.seen.len(),
            acked.queued.len(),
            acked.fetched.len(),
            after.seen.len(),
            after.queued.len(),
            after.fetched.len()
        );
        queued_before = after.queued.clone();
        previous = after;
    }
    eprintln!("kills survived: {kills}, acknowledged records lost: {lost}");
    assert_eq!(lost, 0, "infohashes acknowledged before a kill were lost");
    assert!(
        previous.seen.len() > 100,
        "the crawl found too little to make the test meaningful"
    );

    // The queue resumes: a last run, stopped gracefully, works on hashes queued
    // at the last kill (fetches them, or leases or reschedules them: `due` moves).
    assert!(
        !queued_before.is_empty(),
        "nothing queued at the last kill; the resume check would be empty"
    );
    let worked_on = |store: &Store| {
        let touched = queued_before
            .iter()
            .filter(|(h, &(due, attempts))| match store.staging_entry(h).unwrap() {
                None => store.torrent(h).unwrap().is_some(),
                Some(e) => e.due != due || e.attempts > attempts,
            });
        touched.count()
    };
    let mut crawl = start_crawl(&db, &swarm);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let live = Store::open_read_only(&db).map(|s| worked_on(&s)).unwrap_or(0);
        if live > 0 || Instant::now() >= deadline {
            break;
        }
    }
    // SAFETY: kill with a valid pid and signal has no memory effects.
    unsafe { libc::kill(crawl.0.id() as libc::pid_t, libc::SIGINT) };
    assert!(crawl.0.wait().unwrap().success(), "graceful stop after SIGINT");
    let resumed = worked_on(&Store::open_read_only(&db).unwrap());
    eprintln!(
        "queue after restart: {resumed} of {} queued hashes worked on",
        queued_before.len()
    );
    assert!(
        resumed > 0,
        "no hash queued before the last kill was fetched or leased afterwards"
    );
}
