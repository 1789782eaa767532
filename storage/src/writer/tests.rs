//! The writer against a real store: dedup, group commit, durability, losses counted.

use std::time::{Duration, Instant};

use super::*;
use crate::record::*;
use crate::StoreOptions;

fn sightings(from: u32, n: u32) -> Batch {
    let discoveries = (from..from + n)
        .map(|i| {
            let mut info_hash = [0u8; 20];
            info_hash[..4].copy_from_slice(&i.to_be_bytes());
            Discovery {
                info_hash,
                source: Source::Sample,
                at: 1,
            }
        })
        .collect();
    Batch {
        discoveries,
        ..Batch::default()
    }
}

/// The writer is stalled on the queue lock (as behind a slow `take_due`):
/// the gauges show a full channel, and the stall is in `commit_micros`.
#[test]
fn channel_gauges_and_commit_latency_show_a_stalled_writer() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path(), &StoreOptions::default()).unwrap());
    let opts = WriterOptions {
        channel_batches: 4,
        max_group_items: 1,
        flush_interval: Duration::from_millis(5),
        expected_infohashes: 1024,
        max_disk: None,
    };
    let writer = Writer::spawn(store.clone(), opts).unwrap();
    let w = writer.handle();
    assert_eq!((w.channel_len(), w.channel_cap()), (0, 4));
    let stall = Duration::from_millis(50);
    let started = Instant::now();
    let lock = store.staging_lock.lock().unwrap();
    w.send(sightings(0, 10)).unwrap();
    // Once the writer took the first batch it waits on the lock with it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while w.channel_len() > 0 {
        assert!(Instant::now() < deadline, "the writer never took the first batch");
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut accepted = 0;
    while let Ok(()) = w.try_send(sightings(100 + accepted * 10, 10)) {
        accepted += 1;
    }
    assert_eq!(accepted, 4);
    assert_eq!(w.channel_len(), w.channel_cap());
    std::thread::sleep(stall.saturating_sub(started.elapsed()));
    drop(lock);
    let stats = writer.shutdown();
    assert_eq!(w.channel_len(), 0);
    assert_eq!(stats.new_infohashes, 50);
    assert!(stats.commits >= 1);
    assert!(
        stats.commit_micros >= 40_000,
        "the 50 ms stall inside a commit is counted: {} us",
        stats.commit_micros
    );
}
