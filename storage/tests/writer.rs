//! The writer and the fetch queue, end to end on a real RocksDB in a temp dir.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::Receiver;
use trawl_storage::*;

fn h(n: u32) -> InfoHash {
    let mut x = [0u8; 20];
    x[..4].copy_from_slice(&n.to_be_bytes());
    x[19] = 0xaa;
    x
}

fn fast() -> WriterOptions {
    WriterOptions {
        flush_interval: Duration::from_millis(5),
        ..WriterOptions::default()
    }
}

fn open(dir: &std::path::Path) -> Arc<Store> {
    Arc::new(Store::open(dir, &StoreOptions::default()).unwrap())
}

fn sightings(ids: &[u32], source: Source, at: UnixSecs) -> Vec<Discovery> {
    ids.iter()
        .map(|&n| Discovery {
            info_hash: h(n),
            source,
            at,
        })
        .collect()
}

fn send(w: &WriterHandle, b: Batch) -> Receiver<BatchOutcome> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    w.send(Batch { reply: Some(tx), ..b }).unwrap();
    rx
}

/// Sends and waits for the acknowledgement.
fn commit(w: &WriterHandle, b: Batch) -> BatchOutcome {
    send(w, b).recv_timeout(Duration::from_secs(10)).unwrap()
}

/// A fresh database with a fast-flushing writer.
fn start() -> (tempfile::TempDir, Arc<Store>, Writer) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let writer = Writer::spawn(store.clone(), fast()).unwrap();
    (dir, store, writer)
}

#[test]
fn new_and_duplicate_hashes_are_told_apart_across_batches_and_restarts() {
    let (dir, store, writer) = start();
    let w = writer.handle();
    let a = commit(
        &w,
        Batch {
            discoveries: sightings(&[1, 2, 2, 3], Source::Sample, 100),
            ..Batch::default()
        },
    );
    assert_eq!(a.new, vec![h(1), h(2), h(3)]);
    assert_eq!(a.duplicates, 1);
    let b = commit(
        &w,
        Batch {
            discoveries: sightings(&[3, 4], Source::Announce, 200),
            ..Batch::default()
        },
    );
    assert_eq!((b.new, b.duplicates), (vec![h(4)], 1));
    let stats = writer.shutdown();
    assert_eq!((stats.new_infohashes, stats.duplicate_infohashes), (4, 2));

    let r = store.infohash(&h(3)).unwrap().unwrap();
    assert_eq!((r.first_seen, r.last_seen, r.seen), (100, 200, 2));
    assert!(r.sources.contains(Source::Sample) && r.sources.contains(Source::Announce));
    assert_eq!(store.infohash(&h(2)).unwrap().unwrap().seen, 2);
    drop(store);

    // After a restart the filter is rebuilt from disk: old hashes stay old.
    let store = open(dir.path());
    let writer = Writer::spawn(store.clone(), fast()).unwrap();
    let c = commit(
        &writer.handle(),
        Batch {
            discoveries: sightings(&[1, 5], Source::GetPeers, 300),
            ..Batch::default()
        },
    );
    assert_eq!((c.new, c.duplicates), (vec![h(5)], 1));
}

#[test]
fn graceful_shutdown_commits_everything_sent() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    // A long flush interval: only the shutdown can have committed these.
    let writer = Writer::spawn(
        store.clone(),
        WriterOptions {
            flush_interval: Duration::from_secs(60),
            ..WriterOptions::default()
        },
    )
    .unwrap();
    let handles: Vec<_> = (0..3).map(|_| writer.handle()).collect();
    for (i, w) in handles.iter().enumerate() {
        let ids: Vec<u32> = (0..500).map(|k| (i as u32) * 1000 + k).collect();
        w.send(Batch {
            discoveries: sightings(&ids, Source::Sample, 1),
            ..Batch::default()
        })
        .unwrap();
    }
    let stats = writer.shutdown();
    assert_eq!(stats.new_infohashes, 1500);
    assert!(matches!(
        handles[0].send(Batch::default()),
        Err(StorageError::WriterClosed)
    ));
    drop(store);
    let store = Store::open_read_only(dir.path()).unwrap();
    assert_eq!(store.stats().unwrap().infohashes, 1500);
}

#[test]
fn try_send_hands_the_batch_back_when_the_channel_is_full() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let opts = WriterOptions {
        channel_batches: 1,
        max_group_items: 1,
        ..fast()
    };
    let writer = Writer::spawn(store, opts).unwrap();
    let w = writer.handle();
    let mut refused = None;
    for round in 0..10_000u32 {
        let b = Batch {
            discoveries: sightings(
                &(round * 5000..round * 5000 + 5000).collect::<Vec<_>>(),
                Source::Sample,
                1,
            ),
            ..Batch::default()
        };
        match w.try_send(b) {
            Ok(()) => {}
            Err(TrySend::Full(b)) => {
                refused = Some((round, b));
                break;
            }
            Err(TrySend::Closed(_)) => panic!("writer closed"),
        }
    }
    let (round, b) = refused.expect("a one-slot channel must fill");
    assert_eq!(
        b.discoveries[0].info_hash,
        h(round * 5000),
        "the refused batch comes back intact"
    );
    assert!(w.stats().try_send_full >= 1);
    // The blocking send waits instead of refusing, then everything is stored.
    w.send(b).unwrap();
    let stats = writer.shutdown();
    assert_eq!(stats.new_infohashes, u64::from(round + 1) * 5000);
    assert_eq!(stats.items_lost, 0);
}

fn peer(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

#[test]
fn queue_leases_backs_off_and_ends_on_success_or_exhaustion() {
    let dir = tempfile::tempdir().unwrap();
    let policy = QueuePolicy {
        retry_base_secs: 60,
        retry_max_secs: 1000,
        max_attempts: 3,
        lease_secs: 600,
        ..QueuePolicy::default()
    };
    let store = Arc::new(
        Store::open(
            dir.path(),
            &StoreOptions {
                queue: policy,
                ..StoreOptions::default()
            },
        )
        .unwrap(),
    );
    let writer = Writer::spawn(store.clone(), fast()).unwrap();
    let w = writer.handle();
    commit(
        &w,
        Batch {
            enqueue: vec![(h(1), 1000), (h(2), 1005)],
            peers: vec![PeersFound {
                info_hash: h(3),
                peers: vec![peer(1), peer(2)],
                at: 2000,
            }],
            ..Batch::default()
        },
    );

    let mut due = Vec::new();
    assert_eq!(store.take_due(1003, 10, &mut due).unwrap(), 1, "only h1 is due at 1003");
    assert_eq!(due[0].info_hash, h(1));
    assert_eq!(
        store.take_due(1003, 10, &mut due).unwrap(),
        0,
        "a leased entry is not handed out twice"
    );
    assert_eq!(store.take_due(1600, 10, &mut due).unwrap(), 1);
    assert_eq!(due[0].info_hash, h(2));
    // h1's lease ran out at 1603, so it comes back, ahead of h3 (due 2000).
    assert_eq!(store.take_due(2000, 10, &mut due).unwrap(), 2);
    assert_eq!(
        due.iter().map(|e| e.info_hash).collect::<Vec<_>>(),
        vec![h(1), h(3)],
        "earliest due first"
    );
    assert_eq!(due[1].peers, vec![peer(1), peer(2)]);

    // Failures back off exponentially; the third exhausts the budget.
    let fail = |at| Batch {
        failures: vec![FetchFailure {
            info_hash: h(1),
            error: "timed out".into(),
            at,
        }],
        ..Batch::default()
    };
    commit(&w, fail(5000));
    let e = store.staging_entry(&h(1)).unwrap().unwrap();
    assert_eq!(
        (e.attempts, e.due, e.last_error.as_deref()),
        (1, 5060, Some("timed out"))
    );
    store.take_due(5059, 10, &mut due).unwrap();
    assert!(due.iter().all(|e| e.info_hash != h(1)), "no retry before the backoff");
    store.take_due(5060, 10, &mut due).unwrap();
    assert_eq!(
        due.iter().map(|e| e.info_hash).collect::<Vec<_>>(),
        vec![h(1)],
        "due again once it has passed"
    );
    commit(&w, fail(6000));
    assert_eq!(store.staging_entry(&h(1)).unwrap().unwrap().due, 6120);
    commit(&w, fail(7000));
    assert_eq!(store.staging_entry(&h(1)).unwrap(), None);

    // More peers merge without duplicates; a stored torrent ends the entry.
    commit(
        &w,
        Batch {
            peers: vec![PeersFound {
                info_hash: h(3),
                peers: vec![peer(2), peer(9)],
                at: 2001,
            }],
            ..Batch::default()
        },
    );
    assert_eq!(
        store.staging_entry(&h(3)).unwrap().unwrap().peers,
        vec![peer(1), peer(2), peer(9)]
    );
    let t = torrent_of(3, 2002);
    commit(
        &w,
        Batch {
            torrents: vec![t.clone()],
            ..Batch::default()
        },
    );
    assert_eq!(store.staging_entry(&h(3)).unwrap(), None);
    assert_eq!(
        store.torrent(&h(3)).unwrap().unwrap(),
        TorrentRecord { info_dict: None, ..t }
    );
    assert_eq!(store.info_dict(&h(3)).unwrap().unwrap(), b"d4:name1:xe");
    // Queuing a hash whose torrent is stored does nothing.
    commit(
        &w,
        Batch {
            enqueue: vec![(h(3), 3000)],
            ..Batch::default()
        },
    );
    assert_eq!(store.staging_entry(&h(3)).unwrap(), None);
    let stats = writer.shutdown();
    assert_eq!((stats.queue_abandoned, stats.torrents, stats.queued), (1, 1, 3));
}

#[test]
fn nodes_are_replaced_as_a_set_and_read_back() {
    let (_dir, store, writer) = start();
    let w = writer.handle();
    let n4 = DhtNode::new([1; 20], peer(6881));
    let n6 = DhtNode::new([2; 20], "[::1]:6882".parse().unwrap());
    commit(
        &w,
        Batch {
            nodes: Some(vec![n6, n4, DhtNode::new([3; 20], peer(1))]),
            ..Batch::default()
        },
    );
    commit(
        &w,
        Batch {
            nodes: Some(vec![n6, n4]),
            ..Batch::default()
        },
    );
    assert_eq!(store.nodes().unwrap(), vec![n4, n6]);
}

#[test]
fn staging_estimate_follows_the_queue_without_a_scan() {
    let (_dir, store, writer) = start();
    let w = writer.handle();
    assert_eq!(store.staging_len_estimate().unwrap(), 0);
    commit(
        &w,
        Batch {
            enqueue: (0..100).map(|n| (h(n), 1000)).collect(),
            ..Batch::default()
        },
    );
    // Still in the memtable, where RocksDB's estimate is exact: puts less deletes.
    assert_eq!(store.staging_len_estimate().unwrap(), 100);
    let stored = |n: u32| TorrentRecord {
        info_hash: h(n),
        version: TorrentVersion::V1,
        v2_hash: None,
        name: b"x".to_vec(),
        files: vec![],
        total_size: 1,
        piece_length: 16384,
        private: false,
        class: ContentClass::Other,
        content_type: None,
        fetched_at: 2000,
        scrape: None,
        info_dict: None,
    };
    commit(
        &w,
        Batch {
            torrents: (0..10).map(stored).collect(),
            ..Batch::default()
        },
    );
    assert_eq!(store.staging_len_estimate().unwrap(), 90);
    writer.shutdown();
}

#[test]
fn take_due_finds_entries_queued_below_what_it_already_took() {
    let (_dir, store, writer) = start();
    let w = writer.handle();
    let enqueue = |entries: Vec<(InfoHash, UnixSecs)>| Batch {
        enqueue: entries,
        ..Batch::default()
    };
    commit(&w, enqueue((0..50).map(|n| (h(n), 1000 + n)).collect()));
    let mut due = Vec::new();
    assert_eq!(store.take_due(1020, 10, &mut due).unwrap(), 10);
    assert_eq!(store.take_due(1020, 100, &mut due).unwrap(), 11, "h10..=h20 are due");
    // Queued after those takes, yet due earlier than all of them.
    commit(&w, enqueue(vec![(h(100), 5), (h(101), 1015)]));
    assert_eq!(store.take_due(1020, 100, &mut due).unwrap(), 2);
    assert_eq!(
        due.iter().map(|e| e.info_hash).collect::<Vec<_>>(),
        vec![h(100), h(101)]
    );
    // Leases (due 1020 + 600) come back after their expiry, before h49 (due 1049 + ...) is reached.
    assert_eq!(store.take_due(1049, 100, &mut due).unwrap(), 29, "h21..=h49");
    assert_eq!(
        store.take_due(1620, 100, &mut due).unwrap(),
        23,
        "the 23 leases taken at 1020"
    );
    assert_eq!(store.take_due(1620, 100, &mut due).unwrap(), 0);
    writer.shutdown();
}

#[test]
fn released_leases_are_due_at_once_and_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let writer = Writer::spawn(store.clone(), fast()).unwrap();
    let w = writer.handle();
    commit(
        &w,
        Batch {
            enqueue: (0..6).map(|n| (h(n), 1000)).collect(),
            ..Batch::default()
        },
    );
    let mut taken = Vec::new();
    assert_eq!(store.take_due(1000, 10, &mut taken).unwrap(), 6);
    assert!(taken.iter().all(|e| e.due == 1600), "leased for 600 s");
    // h0 was fetched and h1 failed meanwhile: their outcome stands.
    commit(
        &w,
        Batch {
            failures: vec![FetchFailure {
                info_hash: h(1),
                error: "timed out".into(),
                at: 1010,
            }],
            ..Batch::default()
        },
    );
    let failed_due = store.staging_entry(&h(1)).unwrap().unwrap().due;
    commit(
        &w,
        Batch {
            torrents: vec![TorrentRecord {
                info_hash: h(0),
                version: TorrentVersion::V1,
                v2_hash: None,
                name: b"t".to_vec(),
                files: Vec::new(),
                total_size: 1,
                piece_length: 16384,
                private: false,
                class: ContentClass::Other,
                content_type: None,
                fetched_at: 1010,
                scrape: None,
                info_dict: None,
            }],
            ..Batch::default()
        },
    );
    let leases = |t: &[StagingEntry]| t.iter().map(|e| (e.info_hash, e.due)).collect::<Vec<_>>();
    assert_eq!(store.release(&leases(&taken), 1020).unwrap(), 4, "h2..h5 never started");
    assert_eq!(store.staging_entry(&h(0)).unwrap(), None);
    assert_eq!(store.staging_entry(&h(1)).unwrap().unwrap().due, failed_due);
    let mut again = Vec::new();
    assert_eq!(store.take_due(1020, 10, &mut again).unwrap(), 4);
    assert_eq!(
        again.iter().map(|e| (e.info_hash, e.attempts)).collect::<Vec<_>>(),
        (2..6).map(|n| (h(n), 0)).collect::<Vec<_>>(),
        "due at once, no attempt counted"
    );
    assert_eq!(
        store.release(&leases(&taken), 1030).unwrap(),
        0,
        "the new leases are not those"
    );
    assert_eq!(store.release(&leases(&again), 1030).unwrap(), 4);
    writer.shutdown();
    drop(store);
    let store = open(dir.path());
    assert_eq!(
        store.take_due(1030, 10, &mut again).unwrap(),
        4,
        "durable across a reopen"
    );
    assert_eq!(store.take_due(1030, 10, &mut again).unwrap(), 0);
}

fn policy_store(dir: &std::path::Path) -> Arc<Store> {
    let policy = QueuePolicy {
        retry_base_secs: 60,
        retry_max_secs: 1000,
        max_attempts: 5,
        lease_secs: 600,
        ..QueuePolicy::default()
    };
    Arc::new(
        Store::open(
            dir,
            &StoreOptions {
                queue: policy,
                ..StoreOptions::default()
            },
        )
        .unwrap(),
    )
}

/// A writer over [`policy_store`] in a fresh directory.
fn start_with_policy() -> (tempfile::TempDir, Arc<Store>, Writer) {
    let dir = tempfile::tempdir().unwrap();
    let store = policy_store(dir.path());
    let writer = Writer::spawn(store.clone(), fast()).unwrap();
    (dir, store, writer)
}

fn peers_of(n: u32, ports: &[u16], at: UnixSecs) -> Batch {
    Batch {
        peers: vec![PeersFound {
            info_hash: h(n),
            peers: ports.iter().map(|&p| peer(p)).collect(),
            at,
        }],
        ..Batch::default()
    }
}

fn failure(n: u32, at: UnixSecs) -> Batch {
    Batch {
        failures: vec![FetchFailure {
            info_hash: h(n),
            error: "no peer answered".into(),
            at,
        }],
        ..Batch::default()
    }
}

fn torrent_of(n: u32, at: UnixSecs) -> TorrentRecord {
    TorrentRecord {
        info_hash: h(n),
        version: TorrentVersion::V1,
        v2_hash: None,
        name: b"x".to_vec(),
        files: vec![],
        total_size: 1,
        piece_length: 16384,
        private: false,
        class: ContentClass::Other,
        content_type: None,
        fetched_at: at,
        scrape: None,
        info_dict: Some(b"d4:name1:xe".to_vec()),
    }
}

/// A hybrid found under both its hashes is stored once, under v1, whichever
/// hash fetched it: both queue entries end, its v2 hash finds it, and a later
/// sighting of the v2 hash queues nothing.
#[test]
fn a_hybrid_ends_both_entries_and_is_found_by_its_v2_hash() {
    let (_dir, store, writer) = start_with_policy();
    let w = writer.handle();
    commit(&w, peers_of(1, &[1], 1000));
    commit(&w, peers_of(2, &[1], 1000));
    assert_eq!(taken_hashes(&store, 1000), vec![h(1), h(2)]);
    let mut v2 = [0xee; 32];
    v2[..20].copy_from_slice(&h(2));
    let hybrid = TorrentRecord {
        version: TorrentVersion::Hybrid,
        v2_hash: Some(v2),
        ..torrent_of(1, 1001)
    };
    commit(
        &w,
        Batch {
            torrents: vec![hybrid],
            ..Batch::default()
        },
    );
    assert_eq!(store.staging_entry(&h(1)).unwrap(), None);
    assert_eq!(store.staging_entry(&h(2)).unwrap(), None, "the v2 entry ended too");
    let by_v1 = store.torrent(&h(1)).unwrap().expect("stored under v1");
    assert_eq!((by_v1.version, by_v1.v2_hash), (TorrentVersion::Hybrid, Some(v2)));
    let by_v2 = store.torrent(&h(2)).unwrap().expect("found by its v2 hash");
    assert_eq!(by_v2.info_hash, h(1), "one record, keyed by v1");
    commit(&w, peers_of(2, &[3], 1002));
    assert_eq!(
        store.staging_entry(&h(2)).unwrap(),
        None,
        "a later v2 sighting queues nothing"
    );
    assert!(taken_hashes(&store, 5000).is_empty());
    writer.shutdown();
}

fn taken_hashes(store: &Store, now: UnixSecs) -> Vec<InfoHash> {
    let mut due = Vec::new();
    store.take_due(now, 10, &mut due).unwrap();
    due.iter().map(|e| e.info_hash).collect()
}

/// A failed fetch backs off; a repeated reply with the same peer keeps the
/// back-off, a peer new to the entry makes it due at once.
#[test]
fn new_peers_bring_a_backed_off_entry_forward_and_known_ones_do_not() {
    let (_dir, store, writer) = start_with_policy();
    let w = writer.handle();
    commit(&w, peers_of(1, &[1], 1000));
    assert_eq!(taken_hashes(&store, 1000), vec![h(1)]);
    commit(&w, failure(1, 1010));
    let e = store.staging_entry(&h(1)).unwrap().unwrap();
    assert_eq!((e.attempts, e.due, e.leased), (1, 1070, false), "backed off 60 s");

    // The same peer again (a repeating get_peers reply): nothing moves.
    commit(&w, peers_of(1, &[1], 1020));
    assert_eq!(store.staging_entry(&h(1)).unwrap().unwrap().due, 1070);
    assert_eq!(taken_hashes(&store, 1020), Vec::<InfoHash>::new());
    assert_eq!(w.stats().requeued_for_new_peers, 0);

    // One new peer among known ones: due now, and the fetch queue hands it out.
    commit(&w, peers_of(1, &[1, 2], 1030));
    let e = store.staging_entry(&h(1)).unwrap().unwrap();
    assert_eq!((e.due, e.attempts, e.peers.clone()), (1030, 1, vec![peer(1), peer(2)]));
    assert_eq!(w.stats().requeued_for_new_peers, 1);
    let mut due = Vec::new();
    store.take_due(1030, 10, &mut due).unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!((due[0].info_hash, due[0].peers.clone()), (h(1), vec![peer(1), peer(2)]));
    assert!(due[0].leased);

    // The retry fails as well: the back-off doubles, and the known peers still
    // do not undo it.
    commit(&w, failure(1, 1040));
    assert_eq!(store.staging_entry(&h(1)).unwrap().unwrap().due, 1160);
    commit(&w, peers_of(1, &[2, 1], 1050));
    assert_eq!(store.staging_entry(&h(1)).unwrap().unwrap().due, 1160);
    assert_eq!(writer.shutdown().requeued_for_new_peers, 1);
}

/// New peers never bring a leased entry forward (a second fetch would run
/// beside the first); the failure ending that lease retries at once instead.
#[test]
fn new_peers_during_a_lease_make_its_failure_retry_at_once() {
    let (_dir, store, writer) = start_with_policy();
    let w = writer.handle();
    commit(&w, peers_of(1, &[1], 1000));
    commit(&w, peers_of(2, &[1], 1000));
    assert_eq!(taken_hashes(&store, 1000), vec![h(1), h(2)]);
    commit(&w, peers_of(1, &[2], 1005));
    commit(&w, peers_of(2, &[1], 1005));
    let e = store.staging_entry(&h(1)).unwrap().unwrap();
    assert_eq!((e.due, e.leased, e.peers_since_lease), (1600, true, true));
    assert_eq!(taken_hashes(&store, 1005), Vec::<InfoHash>::new(), "still leased");
    // h1 heard of a peer its fetch never saw; h2 did not.
    commit(
        &w,
        Batch {
            failures: failure(1, 1010)
                .failures
                .into_iter()
                .chain(failure(2, 1010).failures)
                .collect(),
            ..Batch::default()
        },
    );
    let e1 = store.staging_entry(&h(1)).unwrap().unwrap();
    let e2 = store.staging_entry(&h(2)).unwrap().unwrap();
    assert_eq!(
        (e1.due, e1.attempts, e1.leased, e1.peers_since_lease),
        (1010, 1, false, false)
    );
    assert_eq!((e2.due, e2.attempts), (1070, 1));
    assert_eq!(taken_hashes(&store, 1010), vec![h(1)]);
    assert_eq!(writer.shutdown().requeued_for_new_peers, 1);
}

fn named(n: u32, name: &[u8], at: UnixSecs) -> ProvisionalName {
    ProvisionalName {
        info_hash: h(n),
        name: name.to_vec(),
        at,
    }
}

fn stored_torrent(n: u32, name: &[u8]) -> TorrentRecord {
    TorrentRecord {
        info_hash: h(n),
        version: TorrentVersion::V1,
        v2_hash: None,
        name: name.to_vec(),
        files: Vec::new(),
        total_size: 1,
        piece_length: 16384,
        private: false,
        class: ContentClass::Other,
        content_type: None,
        fetched_at: 1010,
        scrape: None,
        info_dict: None,
    }
}

#[test]
fn provisional_names_keep_the_first_heard_survive_a_reopen_and_yield_to_metadata() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        let writer = Writer::spawn(store.clone(), fast()).unwrap();
        let w = writer.handle();
        commit(
            &w,
            Batch {
                torrents: vec![stored_torrent(3, b"real")],
                ..Batch::default()
            },
        );
        commit(
            &w,
            Batch {
                // h1 twice in one batch, h2 with bytes that are not UTF-8, h3 already fetched.
                names: vec![
                    named(1, b"first", 100),
                    named(2, b"caf\xe9", 100),
                    named(1, b"second", 101),
                    named(3, b"fake", 100),
                ],
                ..Batch::default()
            },
        );
        commit(
            &w,
            Batch {
                names: vec![named(1, b"third", 200), named(4, b"", 200)],
                ..Batch::default()
            },
        );
        assert_eq!(store.provisional_name(&h(1)).unwrap(), Some(named(1, b"first", 100)));
        assert_eq!(
            store.provisional_name(&h(3)).unwrap(),
            None,
            "a stored torrent's name stands"
        );
        assert_eq!(store.provisional_name(&h(4)).unwrap(), None, "an empty name is no name");
        assert_eq!(store.torrent(&h(3)).unwrap().unwrap().name, b"real");
        // A name just before its torrent, and one beside it: neither outlives the torrent.
        w.send(Batch {
            names: vec![named(5, b"early", 300)],
            ..Batch::default()
        })
        .unwrap();
        commit(
            &w,
            Batch {
                torrents: vec![stored_torrent(5, b"five")],
                names: vec![named(5, b"late", 301)],
                ..Batch::default()
            },
        );
        assert_eq!(store.provisional_name(&h(5)).unwrap(), None);
        let stats = writer.shutdown();
        assert_eq!(stats.provisional_names, 2, "h1 and h2");
    }
    let store = open(dir.path());
    assert_eq!(store.provisional_name(&h(1)).unwrap(), Some(named(1, b"first", 100)));
    assert_eq!(
        store.provisional_name(&h(2)).unwrap().unwrap().name_readable(),
        "caf\u{fffd}"
    );
    // The metadata arrives: the provisional name goes.
    let writer = Writer::spawn(store.clone(), fast()).unwrap();
    commit(
        &writer.handle(),
        Batch {
            torrents: vec![stored_torrent(1, b"the real one")],
            ..Batch::default()
        },
    );
    assert_eq!(store.provisional_name(&h(1)).unwrap(), None);
    assert!(store.provisional_name(&h(2)).unwrap().is_some());
    writer.shutdown();
    drop(store);
    let ro = Store::open_read_only(dir.path()).unwrap();
    assert!(ro.provisional_name(&h(2)).unwrap().is_some());
}

#[test]
fn the_queue_is_counted_by_why_its_last_attempt_failed() {
    let (_dir, store, writer) = start();
    let w = writer.handle();
    commit(
        &w,
        Batch {
            enqueue: (1..=4).map(|n| (h(n), 1000)).collect(),
            ..Batch::default()
        },
    );
    let failure = |n, error: &str| FetchFailure {
        info_hash: h(n),
        error: error.into(),
        at: 1100,
    };
    commit(
        &w,
        Batch {
            failures: vec![
                failure(1, "dial_timeout,refused,dial_timeout"),
                failure(2, "no_peers"),
                failure(3, "refused"),
            ],
            ..Batch::default()
        },
    );
    let by = store.queue_by_last_failure().unwrap();
    let by: Vec<(&str, u64)> = by.iter().map(|(k, n)| (k.as_str(), *n)).collect();
    // Most common first; a kind named twice in one failure counts once; h4 was never tried.
    assert_eq!(
        by,
        [("refused", 2), ("dial_timeout", 1), ("no_peers", 1), ("not_tried", 1)]
    );
    let json = trawl_storage::summary::stats_json(&store, &store.stats().unwrap()).unwrap();
    assert_eq!(json["queued_by_last_failure"]["refused"], 2);
    assert_eq!(json["queued"], 4);
}
