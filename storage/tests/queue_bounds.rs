//! The fetch queue's bounds on a real RocksDB: an entry limit that refuses new
//! entries (counted, the infohash still stored, the count surviving a restart)
//! and an age limit that ends an entry's retries.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use trawl_storage::*;

fn h(n: u32) -> InfoHash {
    let mut x = [0u8; 20];
    x[..4].copy_from_slice(&n.to_be_bytes());
    x
}

fn open(dir: &std::path::Path, queue: QueuePolicy) -> (Arc<Store>, Writer) {
    let store = Arc::new(
        Store::open(
            dir,
            &StoreOptions {
                queue,
                ..StoreOptions::default()
            },
        )
        .unwrap(),
    );
    let fast = WriterOptions {
        flush_interval: Duration::from_millis(5),
        ..WriterOptions::default()
    };
    let writer = Writer::spawn(store.clone(), fast).unwrap();
    (store, writer)
}

fn commit(w: &Writer, b: Batch) {
    let (tx, rx) = crossbeam_channel::bounded(1);
    w.handle().send(Batch { reply: Some(tx), ..b }).unwrap();
    rx.recv_timeout(Duration::from_secs(10)).unwrap();
}

/// Sightings of `ids` with one peer each, as a `get_peers` reply brings them.
fn found(ids: std::ops::Range<u32>, at: UnixSecs) -> Batch {
    let peer: SocketAddr = "192.0.2.1:6881".parse().unwrap();
    Batch {
        discoveries: ids
            .clone()
            .map(|n| Discovery {
                info_hash: h(n),
                source: Source::GetPeers,
                at,
            })
            .collect(),
        peers: ids
            .map(|n| PeersFound {
                info_hash: h(n),
                peers: vec![peer],
                at,
            })
            .collect(),
        ..Batch::default()
    }
}

#[test]
fn a_full_queue_refuses_new_entries_but_stores_every_infohash() {
    let dir = tempfile::tempdir().unwrap();
    let policy = QueuePolicy {
        max_entries: 5,
        ..QueuePolicy::default()
    };
    let (store, writer) = open(dir.path(), policy.clone());
    commit(&writer, found(0..3, 1000));
    // One batch that would take the queue past its limit: two get in.
    commit(&writer, found(3..8, 1000));
    let stats = writer.shutdown();
    assert_eq!((stats.queued, stats.queue_dropped_full), (5, 3));
    assert_eq!(store.stats().unwrap().staged, 5);
    for n in 0..8 {
        assert!(store.infohash(&h(n)).unwrap().is_some(), "hash {n} not stored");
    }
    // Peers for a hash already queued still reach it when the queue is full.
    drop(store);
    let (store, writer) = open(dir.path(), policy);
    commit(&writer, found(0..1, 2000));
    commit(&writer, found(8..9, 2000));
    let stats = writer.shutdown();
    assert_eq!(
        (stats.queued, stats.queue_dropped_full),
        (0, 1),
        "the count survived the restart"
    );
    assert_eq!(store.staging_entry(&h(0)).unwrap().unwrap().peers.len(), 1);
    assert!(store.staging_entry(&h(8)).unwrap().is_none());
    // An entry that leaves (here: abandoned after its one allowed attempt)
    // makes room for a new one.
    let mut taken = Vec::new();
    store.take_due(3000, 1, &mut taken).unwrap();
    drop(store);
    let one_attempt = QueuePolicy {
        max_entries: 5,
        max_attempts: 1,
        ..QueuePolicy::default()
    };
    let (store, writer) = open(dir.path(), one_attempt);
    let failures = taken
        .iter()
        .map(|e| FetchFailure {
            info_hash: e.info_hash,
            error: "gone".into(),
            at: 3000,
        })
        .collect();
    commit(
        &writer,
        Batch {
            failures,
            ..Batch::default()
        },
    );
    commit(&writer, found(9..10, 3000));
    let stats = writer.shutdown();
    assert_eq!(
        (stats.queue_abandoned, stats.queued, stats.queue_dropped_full),
        (1, 1, 0)
    );
    assert!(store.staging_entry(&h(9)).unwrap().is_some());
    assert_eq!(store.stats().unwrap().staged, 5);
}

#[test]
fn an_entry_failing_past_the_age_limit_leaves_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let policy = QueuePolicy {
        max_age_secs: 3600,
        ..QueuePolicy::default()
    };
    let (store, writer) = open(dir.path(), policy);
    commit(&writer, found(0..2, 1000));
    let fail = |n: u32, at: UnixSecs| Batch {
        failures: vec![FetchFailure {
            info_hash: h(n),
            error: "no peer answered".into(),
            at,
        }],
        ..Batch::default()
    };
    // Within the hour: retried as usual.
    commit(&writer, fail(0, 1000 + 3599));
    assert!(store.staging_entry(&h(0)).unwrap().is_some());
    // At the hour: it leaves, counted as expired, not abandoned.
    commit(&writer, fail(1, 1000 + 3600));
    let stats = writer.shutdown();
    assert_eq!((stats.queue_expired, stats.queue_abandoned), (1, 0));
    assert!(store.staging_entry(&h(1)).unwrap().is_none());
    assert!(store.infohash(&h(1)).unwrap().is_some(), "the infohash stays");
}
