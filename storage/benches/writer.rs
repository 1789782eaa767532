//! Micro benchmarks of the storage write path, through the public `Writer`:
//! nanoseconds per stored new hash, and per deduplicated known hash (filter
//! hit, batched `multi_get`, rewrite of the sighting counters).
//!
//! Run: `cargo bench -p trawl-storage --bench writer`. WAL sync is off here so
//! the figure is the CPU cost, not the disk's fsync latency.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use trawl_storage::*;

const BATCH: usize = 10_000;

fn batch_of(hashes: &[InfoHash]) -> (Batch, crossbeam_channel::Receiver<BatchOutcome>) {
    let (tx, rx) = crossbeam_channel::bounded(1);
    let discoveries = hashes
        .iter()
        .map(|h| Discovery {
            info_hash: *h,
            source: Source::Sample,
            at: 1,
        })
        .collect();
    (
        Batch {
            discoveries,
            reply: Some(tx),
            ..Batch::default()
        },
        rx,
    )
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        Store::open(
            dir.path(),
            &StoreOptions {
                sync_writes: false,
                ..StoreOptions::default()
            },
        )
        .unwrap(),
    );
    let writer = Writer::spawn(
        store,
        WriterOptions {
            flush_interval: Duration::from_micros(50),
            expected_infohashes: 8 << 20,
            ..WriterOptions::default()
        },
    )
    .unwrap();
    let w = writer.handle();
    let mut rng = SmallRng::seed_from_u64(3);
    let mut group = c.benchmark_group("writer");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.sample_size(20);

    let mut known: Vec<InfoHash> = Vec::new();
    group.bench_function("store_new_hash", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let hashes: Vec<InfoHash> = (0..BATCH).map(|_| rng.gen()).collect();
                let (batch, rx) = batch_of(&hashes);
                let t0 = Instant::now();
                w.send(batch).unwrap();
                let out = rx.recv().unwrap();
                total += t0.elapsed();
                assert_eq!(out.new.len(), BATCH);
                if known.len() < 1_000_000 {
                    known.extend_from_slice(&hashes);
                }
            }
            total
        })
    });

    group.bench_function("dedup_known_hash", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let hashes: Vec<InfoHash> = (0..BATCH).map(|_| known[rng.gen_range(0..known.len())]).collect();
                let (batch, rx) = batch_of(&hashes);
                let t0 = Instant::now();
                w.send(batch).unwrap();
                let out = rx.recv().unwrap();
                total += t0.elapsed();
                assert!(out.new.is_empty());
            }
            total
        })
    });
    group.finish();
    drop(w);
    writer.shutdown();
}

criterion_group!(benches, bench);
criterion_main!(benches);
