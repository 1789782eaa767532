//! The producers' end of the writer channel ([`WriterHandle`]) and the
//! counters both ends share.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender, TrySendError};

use super::{Batch, TrySend};
use crate::budget::{BudgetCell, DiskState};
use crate::StorageError;

pub(super) enum Msg {
    /// Boxed so a channel slot is a pointer, not a 200-byte batch header (one
    /// allocation per batch, never per item).
    Batch(Box<Batch>),
    Shutdown,
}

/// Shared counters, readable by the engine's status line while the writer runs.
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) batches: AtomicU64,
    pub(super) commits: AtomicU64,
    pub(super) commit_micros: AtomicU64,
    pub(super) new_infohashes: AtomicU64,
    pub(super) duplicate_infohashes: AtomicU64,
    pub(super) bloom_false_positives: AtomicU64,
    pub(super) torrents: AtomicU64,
    pub(super) queued: AtomicU64,
    pub(super) queue_abandoned: AtomicU64,
    pub(super) queue_expired: AtomicU64,
    pub(super) queue_dropped_full: AtomicU64,
    pub(super) peers_over_cap: AtomicU64,
    pub(super) requeued_for_new_peers: AtomicU64,
    pub(super) provisional_names: AtomicU64,
    pub(super) failed_commits: AtomicU64,
    pub(super) items_lost: AtomicU64,
    pub(super) replies_undeliverable: AtomicU64,
    pub(super) sends_blocked: AtomicU64,
    pub(super) try_send_full: AtomicU64,
    pub(super) info_dicts_not_kept_budget: AtomicU64,
    pub(super) infohashes_refused_budget: AtomicU64,
    pub(super) queue_refused_budget: AtomicU64,
    pub(super) disk_full_pauses: AtomicU64,
    pub(super) bytes_written: AtomicU64,
    pub(super) bloom_bytes: AtomicU64,
    pub(super) budget: BudgetCell,
    /// Set by [`super::Writer`]'s shutdown: a writer waiting for disk space gives up.
    pub(super) stopping: AtomicBool,
}

/// A snapshot of the writer's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriterStats {
    pub batches: u64,
    pub commits: u64,
    /// Sum of each group commit's wall time in µs (dedup, WriteBatch, WAL fsync),
    /// successful or not; `commit_micros / commits` is the average latency.
    pub commit_micros: u64,
    pub new_infohashes: u64,
    pub duplicate_infohashes: u64,
    /// Filter said "maybe", RocksDB said no: the cost of the filter's error rate.
    pub bloom_false_positives: u64,
    pub torrents: u64,
    /// Queue entries created (import, peers, failures with no entry).
    pub queued: u64,
    /// Hashes that left the queue after `max_attempts` failures.
    pub queue_abandoned: u64,
    /// Hashes that left the queue failing after `max_age_secs` in it.
    pub queue_expired: u64,
    /// Hashes not queued because the queue held `max_entries` (their
    /// infohash records are stored as always).
    pub queue_dropped_full: u64,
    /// Oldest peers dropped to keep each queue entry under its cap.
    pub peers_over_cap: u64,
    /// Queue entries made due at once because peers new to them arrived: while
    /// they waited out a back-off, or while leased (the failure that ends such a
    /// lease retries at once instead of backing off). Peers an entry already
    /// knows never do this, so a repeated `get_peers` reply keeps the back-off.
    pub requeued_for_new_peers: u64,
    /// Provisional names stored (the first for each hash without metadata).
    pub provisional_names: u64,
    /// Group commits RocksDB refused; their items are lost and counted below.
    pub failed_commits: u64,
    pub items_lost: u64,
    /// Outcomes whose receiver had gone (the batch itself was stored).
    pub replies_undeliverable: u64,
    /// `send` calls that found the channel full and waited.
    pub sends_blocked: u64,
    /// `try_send` calls refused because the channel was full.
    pub try_send_full: u64,
    /// Fetched torrents stored without their info dict because the disk
    /// budget's first step was reached (see [`crate::DiskState`]).
    pub info_dicts_not_kept_budget: u64,
    /// Infohashes never stored before that were refused at the budget's last step.
    pub infohashes_refused_budget: u64,
    /// Fetch-queue entries not created at the budget's last step.
    pub queue_refused_budget: u64,
    /// Times the file system refused a write (ENOSPC) and storing paused.
    pub disk_full_pauses: u64,
    /// Bytes of WriteBatch handed to RocksDB and written: the user bytes that
    /// write amplification is measured against.
    pub bytes_written: u64,
    /// Gauge: memory of the dedup filter's bits (it doubles when outgrown).
    pub bloom_bytes: u64,
}

impl Counters {
    pub(super) fn snapshot(&self) -> WriterStats {
        WriterStats {
            batches: self.batches.load(Relaxed),
            commits: self.commits.load(Relaxed),
            commit_micros: self.commit_micros.load(Relaxed),
            new_infohashes: self.new_infohashes.load(Relaxed),
            duplicate_infohashes: self.duplicate_infohashes.load(Relaxed),
            bloom_false_positives: self.bloom_false_positives.load(Relaxed),
            torrents: self.torrents.load(Relaxed),
            queued: self.queued.load(Relaxed),
            queue_abandoned: self.queue_abandoned.load(Relaxed),
            queue_expired: self.queue_expired.load(Relaxed),
            queue_dropped_full: self.queue_dropped_full.load(Relaxed),
            peers_over_cap: self.peers_over_cap.load(Relaxed),
            requeued_for_new_peers: self.requeued_for_new_peers.load(Relaxed),
            provisional_names: self.provisional_names.load(Relaxed),
            failed_commits: self.failed_commits.load(Relaxed),
            items_lost: self.items_lost.load(Relaxed),
            replies_undeliverable: self.replies_undeliverable.load(Relaxed),
            sends_blocked: self.sends_blocked.load(Relaxed),
            try_send_full: self.try_send_full.load(Relaxed),
            info_dicts_not_kept_budget: self.info_dicts_not_kept_budget.load(Relaxed),
            infohashes_refused_budget: self.infohashes_refused_budget.load(Relaxed),
            queue_refused_budget: self.queue_refused_budget.load(Relaxed),
            disk_full_pauses: self.disk_full_pauses.load(Relaxed),
            bytes_written: self.bytes_written.load(Relaxed),
            bloom_bytes: self.bloom_bytes.load(Relaxed),
        }
    }
}

/// A producer's end of the writer channel. Clone one per core.
#[derive(Clone)]
pub struct WriterHandle {
    pub(super) tx: Sender<Msg>,
    pub(super) counters: Arc<Counters>,
    pub(super) closed: Arc<AtomicBool>,
}

impl WriterHandle {
    /// Queues a batch, blocking while the channel is full.
    pub fn send(&self, batch: Batch) -> Result<(), StorageError> {
        if self.closed.load(Relaxed) {
            return Err(StorageError::WriterClosed);
        }
        let msg = match self.tx.try_send(Msg::Batch(Box::new(batch))) {
            Ok(()) => return Ok(()),
            Err(TrySendError::Disconnected(_)) => return Err(StorageError::WriterClosed),
            Err(TrySendError::Full(m)) => m,
        };
        self.counters.sends_blocked.fetch_add(1, Relaxed);
        self.tx.send(msg).map_err(|_| StorageError::WriterClosed)
    }

    /// Queues a batch if there is room, else hands it back.
    pub fn try_send(&self, batch: Batch) -> Result<(), TrySend> {
        if self.closed.load(Relaxed) {
            return Err(TrySend::Closed(batch));
        }
        match self.tx.try_send(Msg::Batch(Box::new(batch))) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(Msg::Batch(b))) => {
                self.counters.try_send_full.fetch_add(1, Relaxed);
                Err(TrySend::Full(*b))
            }
            Err(TrySendError::Disconnected(Msg::Batch(b))) => Err(TrySend::Closed(*b)),
            Err(_) => unreachable!("only batches are offered here"),
        }
    }

    pub fn stats(&self) -> WriterStats {
        self.counters.snapshot()
    }

    /// Gauge: batches waiting in the channel for the writer.
    pub fn channel_len(&self) -> usize {
        self.tx.len()
    }

    /// What the store takes now, by the disk budget or a full disk. A
    /// writerless [`channel`] is always [`DiskState::Normal`].
    pub fn disk_state(&self) -> DiskState {
        self.counters.budget.state()
    }

    /// Bytes under the database directory at the writer's last measure (at
    /// most a second old), and the budget (`None`: unlimited).
    pub fn disk_usage(&self) -> (u64, Option<u64>) {
        (self.counters.budget.used(), self.counters.budget.budget())
    }

    /// Changes the budget while the writer runs; the next measure (within a
    /// second) applies it.
    pub fn set_disk_budget(&self, bytes: Option<u64>) {
        self.counters.budget.set_budget(bytes);
    }

    /// How many batches the channel holds before `send` blocks.
    pub fn channel_cap(&self) -> usize {
        // The channel is always bounded (`WriterOptions::channel_batches`).
        self.tx.capacity().unwrap_or(usize::MAX)
    }
}

impl std::fmt::Debug for WriterHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriterHandle")
            .field("channel_len", &self.tx.len())
            .field("channel_cap", &self.tx.capacity())
            .field("closed", &self.closed.load(Relaxed))
            .finish()
    }
}

/// A writer channel with no RocksDB writer behind it: producers get a
/// [`WriterHandle`] as usual (a crawl's cores fill and send [`Batch`]es, with
/// the same backpressure), and the caller takes the batches from the
/// [`BatchReceiver`] to store them anywhere. `capacity` batches wait before
/// `send` blocks and `try_send` hands a batch back.
///
/// ```
/// use trawl_storage::{channel, Batch, Discovery, Source};
///
/// let (handle, batches) = channel(16);
/// let seen = Discovery { info_hash: [7; 20], source: Source::Sample, at: 1 };
/// handle.send(Batch { discoveries: vec![seen], ..Batch::default() }).unwrap();
/// drop(handle); // the receiver ends once every handle is gone
/// let got: Vec<Batch> = batches.collect();
/// assert_eq!(got[0].discoveries[0].info_hash, [7; 20]);
/// ```
pub fn channel(capacity: usize) -> (WriterHandle, BatchReceiver) {
    let (tx, rx) = crossbeam_channel::bounded(capacity.max(1));
    let counters = Arc::new(Counters::default());
    let handle = WriterHandle {
        tx,
        counters: counters.clone(),
        closed: Arc::new(AtomicBool::new(false)),
    };
    (handle, BatchReceiver { rx, counters })
}

/// The caller's end of a [`channel`]. Iterating blocks for the next batch and
/// ends once every handle is dropped and the channel is empty.
pub struct BatchReceiver {
    rx: Receiver<Msg>,
    counters: Arc<Counters>,
}

impl BatchReceiver {
    /// The next batch, waiting at most `timeout`; `None` on timeout or once
    /// every handle is gone and nothing is left.
    pub fn recv_timeout(&self, timeout: std::time::Duration) -> Option<Batch> {
        let deadline = std::time::Instant::now() + timeout;
        // Only a writer sends itself `Shutdown`: skipped here.
        loop {
            if let Msg::Batch(batch) = self.rx.recv_deadline(deadline).ok()? {
                return Some(self.taken(batch));
            }
        }
    }

    fn taken(&self, batch: Box<Batch>) -> Batch {
        self.counters.batches.fetch_add(1, Relaxed);
        *batch
    }
}

impl Iterator for BatchReceiver {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        loop {
            if let Msg::Batch(batch) = self.rx.recv().ok()? {
                return Some(self.taken(batch));
            }
        }
    }
}
