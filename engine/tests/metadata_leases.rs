//! The fetcher gives back what it leased but will not finish when it stops:
//! the next run finds those queue entries due at once, not a lease (600 s)
//! later. On loopback only.

mod metadata_common;

use std::net::Ipv4Addr;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use metadata_common::{sample_info, spawn_peer, test_config, wait_for, Behaviour, Harness};
use trawl_engine::metadata::exchange::ExchangeConfig;
use trawl_engine::runtime::fetch::FetchConfig;
use trawl_storage::{unix_now, Store};

const HASHES: usize = 1000;

#[test]
fn leases_not_started_or_not_finished_are_due_at_once_after_stop() {
    let mut h = Harness::start(
        FetchConfig {
            // Two fetches run, both stuck on a stalling peer past the stop
            // grace; the rest of a 512-entry lease waits in the backlog.
            concurrency: 2,
            per_ip_limit: 2,
            max_peers_per_hash: 1,
            exchange: ExchangeConfig {
                deadline: Duration::from_secs(30),
                ..test_config().exchange
            },
            ..test_config()
        },
        true,
    );
    let (info, _) = sample_info("leases");
    let staller = spawn_peer(Ipv4Addr::new(127, 61, 40, 1), Behaviour::Stall, info);
    let hashes: Vec<[u8; 20]> = (0..HASHES).map(|i| sample_info(&format!("lease-{i}")).1).collect();
    for hash in &hashes {
        h.enqueue(*hash, &[staller]);
    }
    let busy = wait_for(Duration::from_secs(10), || {
        (h.counters.active.load(Relaxed) == 2).then_some(())
    });
    assert!(busy.is_some(), "both slots busy: {:?}", h.counters.snapshot());
    let leased_at = unix_now();
    let lease_secs = h.store.options().queue.lease_secs;
    // The take happened: some entries carry a lease.
    let leased = hashes
        .iter()
        .filter(|x| h.store.staging_entry(x).unwrap().unwrap().due >= leased_at + lease_secs / 2)
        .count();
    assert!(leased >= 2 + 256, "a batch was leased: {leased}");
    h.stop();
    let released = h.counters.leases_released.load(Relaxed);
    assert_eq!(released as usize, leased, "every lease taken was given back");

    // What the next run sees, read from disk (a read-only open beside the lock).
    let store = Store::open_read_only(h.dir.path()).unwrap();
    let now = unix_now();
    for hash in &hashes {
        let e = store.staging_entry(hash).unwrap().expect("still queued");
        assert!(e.due <= now, "due {} s from now, not at once", e.due - now);
        assert_eq!(e.attempts, 0, "a released lease is not a failed attempt");
    }
}
