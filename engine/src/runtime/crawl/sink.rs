//! One core's road to storage: what the scheduler found (discoveries, peers,
//! swarm sizes, provisional names), collected into `trawl_storage::Batch`es and offered to the
//! writer without ever blocking the executor.
//!
//! Owns the batch being filled. Must not drop anything: when the writer's
//! channel is full the batch is kept (and keeps growing, bounded because the
//! caller pauses sampling through [`Sink::backpressure`]); only shutdown uses
//! the blocking send.

use std::time::{Duration, Instant};

use trawl_storage::{Batch, PeersFound, ProvisionalName, ScrapeEstimate, Source, TrySend, UnixSecs, WriterHandle};

use crate::crawl::output::Via;
use crate::crawl::Output;

#[derive(Clone, Copy, Debug, Default)]
pub struct SinkStats {
    pub batches_sent: u64,
    /// Offers refused because the writer's channel was full.
    pub writer_full: u64,
    /// Items that could not be handed over because the writer had stopped.
    pub items_lost: u64,
}

pub struct Sink {
    writer: WriterHandle,
    batch: Batch,
    /// When the oldest item of `batch` arrived.
    since: Option<Instant>,
    every: Duration,
    max_items: usize,
    full: bool,
    /// Peers go to the store (and make fetch-queue entries) only when this
    /// crawl fetches: `--no-fetch` keeps no fetch queue.
    keep_peers: bool,
    stats: SinkStats,
}

impl Sink {
    pub fn new(writer: WriterHandle, every: Duration, max_items: usize, keep_peers: bool) -> Sink {
        Sink {
            writer,
            batch: Batch::default(),
            since: None,
            every,
            max_items: max_items.max(1),
            full: false,
            keep_peers,
            stats: SinkStats::default(),
        }
    }

    pub fn stats(&self) -> SinkStats {
        self.stats
    }

    /// True while the writer refused the last offer: sampling must pause.
    pub fn backpressure(&self) -> bool {
        self.full
    }

    fn items(&self) -> usize {
        self.batch.items()
    }

    /// Moves the scheduler's findings into the batch (draining `out`'s storage
    /// queues; handovers are not ours).
    pub fn take(&mut self, now: Instant, at: UnixSecs, out: &mut Output) {
        if out.discoveries.is_empty() && out.peers.is_empty() && out.swarms.is_empty() && out.names.is_empty() {
            return;
        }
        self.since.get_or_insert(now);
        let b = &mut self.batch;
        b.discoveries
            .extend(out.discoveries.drain(..).map(|d| trawl_storage::Discovery {
                info_hash: d.info_hash,
                source: match d.via {
                    Via::Sample => Source::Sample,
                    Via::GetPeers => Source::GetPeers,
                    Via::Announce => Source::Announce,
                },
                at,
            }));
        if !self.keep_peers {
            out.peers.clear();
        }
        for p in out.peers.drain(..) {
            // One get_peers reply's values arrive together: extend the last entry.
            match b.peers.last_mut() {
                Some(last) if last.info_hash == p.info_hash => last.peers.push(p.peer),
                _ => b.peers.push(PeersFound {
                    info_hash: p.info_hash,
                    peers: vec![p.peer],
                    at,
                }),
            }
        }
        b.scrapes.extend(out.swarms.drain(..).map(|s| {
            (
                s.info_hash,
                ScrapeEstimate {
                    seeders: s.seeders.round().clamp(0.0, u32::MAX as f64) as u32,
                    leechers: s.leechers.round().clamp(0.0, u32::MAX as f64) as u32,
                    at,
                },
            )
        }));
        b.names.extend(out.names.drain(..).map(|n| ProvisionalName {
            info_hash: n.info_hash,
            name: n.name,
            at,
        }));
    }

    /// Offers the batch to the writer if it is big or old enough (or if the
    /// writer refused it before, so it is retried every call).
    pub fn offer_if_due(&mut self, now: Instant) {
        let due = self.full
            || self.items() >= self.max_items
            || self
                .since
                .is_some_and(|t| now.saturating_duration_since(t) >= self.every);
        if due && self.items() > 0 {
            self.offer();
        }
    }

    fn offer(&mut self) {
        let batch = std::mem::take(&mut self.batch);
        match self.writer.try_send(batch) {
            Ok(()) => {
                self.stats.batches_sent += 1;
                self.since = None;
                self.full = false;
            }
            Err(TrySend::Full(b)) => {
                self.batch = b;
                self.stats.writer_full += 1;
                self.full = true;
            }
            Err(TrySend::Closed(b)) => {
                self.stats.items_lost += b.items() as u64;
                self.since = None;
                self.full = false;
                tracing::error!("the storage writer stopped; a batch of findings could not be stored");
            }
        }
    }

    /// Shutdown: hands everything over, waiting for room in the channel.
    pub fn flush_blocking(&mut self) {
        if self.items() == 0 {
            return;
        }
        let batch = std::mem::take(&mut self.batch);
        let items = batch.items() as u64;
        match self.writer.send(batch) {
            Ok(()) => self.stats.batches_sent += 1,
            Err(err) => {
                self.stats.items_lost += items;
                tracing::error!(%err, items, "findings could not be stored at shutdown");
            }
        }
        self.since = None;
        self.full = false;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use trawl_storage::{Store, StoreOptions, Writer, WriterOptions};

    use super::*;
    use crate::crawl::output::NameFound;

    fn name(b: u8, text: &[u8]) -> NameFound {
        NameFound {
            info_hash: [b; 20],
            name: text.to_vec(),
        }
    }

    #[test]
    fn names_alone_make_a_batch_and_reach_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path(), &StoreOptions::default()).unwrap());
        let writer = Writer::spawn(store.clone(), WriterOptions::default()).unwrap();
        let mut sink = Sink::new(writer.handle(), Duration::from_secs(60), 2, true);
        let now = Instant::now();
        let mut out = Output::default();
        out.names.push(name(1, b"one"));
        sink.take(now, 1234, &mut out);
        assert!(out.names.is_empty(), "drained");
        assert_eq!(sink.items(), 1);
        sink.offer_if_due(now);
        assert_eq!(sink.stats().batches_sent, 0, "neither big nor old enough");
        out.names.push(name(2, b"two"));
        sink.take(now, 1235, &mut out);
        sink.offer_if_due(now);
        assert_eq!(
            (sink.stats().batches_sent, sink.items()),
            (1, 0),
            "two names fill a batch of 2"
        );
        writer.shutdown();
        let got = store.provisional_name(&[2; 20]).unwrap().unwrap();
        assert_eq!((got.name.as_slice(), got.at), (&b"two"[..], 1235));
        assert!(store.provisional_name(&[1; 20]).unwrap().is_some());

        // With the writer gone, names are counted as lost like everything else.
        out.names.push(name(3, b"three"));
        sink.take(now, 1236, &mut out);
        sink.flush_blocking();
        assert_eq!(sink.stats().items_lost, 1);
    }

    /// `--no-fetch`: peers are not kept, so no fetch-queue entry is made;
    /// discoveries still are.
    #[test]
    fn a_crawl_that_does_not_fetch_keeps_no_peers() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path(), &StoreOptions::default()).unwrap());
        let writer = Writer::spawn(store.clone(), WriterOptions::default()).unwrap();
        let mut sink = Sink::new(writer.handle(), Duration::from_secs(60), 1, false);
        let mut out = Output::default();
        out.peers.push(crate::crawl::PeerFound {
            info_hash: [7; 20],
            peer: "1.2.3.4:6881".parse().unwrap(),
        });
        out.discoveries.push(crate::crawl::Discovery {
            info_hash: [7; 20],
            source: "1.2.3.5:6881".parse().unwrap(),
            source_id: [1; 20],
            via: Via::Sample,
        });
        sink.take(Instant::now(), 1234, &mut out);
        assert!(out.peers.is_empty(), "drained, not kept");
        sink.flush_blocking();
        writer.shutdown();
        assert!(store.infohash(&[7; 20]).unwrap().is_some(), "the discovery is stored");
        assert!(store.staging_entry(&[7; 20]).unwrap().is_none(), "no fetch-queue entry");
    }
}
