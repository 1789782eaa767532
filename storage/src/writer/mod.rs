//! The writer thread: the one path by which the engine's results reach disk.
//!
//! Owns the dedup filter and the group commit. Producers (one per engine core)
//! hold cloneable [`WriterHandle`]s over a bounded crossbeam channel: `send`
//! blocks while the channel is full (the backpressure), `try_send` hands the
//! batch back instead. The writer collects batches for at most
//! [`WriterOptions::flush_interval`] or [`WriterOptions::max_group_items`],
//! deduplicates the group's infohashes (bloom filter, then one batched
//! `multi_get` for the maybes), writes one WriteBatch with the WAL synced, and
//! only then acknowledges each batch on its reply channel.
//!
//! A full disk (ENOSPC) pauses it: the refused group is held and retried
//! each second until space is freed, the channel fills, and producers see
//! the backpressure they see for a slow disk. Nothing held is acknowledged
//! before it is written; a shutdown while the disk is still full counts the
//! held group as lost. The disk budget's steps ([`crate::budget`]) are applied
//! here too, so they hold for any producer.
//!
//! It must not drop anything silently: every loss it cannot avoid (a failed
//! commit, an undeliverable reply, peers over the per-hash cap, a hash that
//! exhausted its retries) is counted in [`WriterStats`].

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::{StorageError, Store};

mod batch;
mod commit;
mod handle;
#[cfg(test)]
mod tests;

pub use batch::{Batch, BatchOutcome, TrySend};
use commit::WriterLoop;
pub use handle::{channel, BatchReceiver, WriterHandle, WriterStats};
use handle::{Counters, Msg};

/// How the writer groups and sizes its work.
#[derive(Clone, Debug)]
pub struct WriterOptions {
    /// Batches the channel holds before `send` blocks.
    pub channel_batches: usize,
    /// Longest a batch waits for company before the group is committed. On
    /// kill -9, unacknowledged work is at most this much plus the channel.
    pub flush_interval: Duration,
    /// A group is committed early once it holds this many items.
    pub max_group_items: usize,
    /// Sizing of the in-memory filter; it is rebuilt twice as large when outgrown.
    pub expected_infohashes: usize,
    /// The disk budget (`--max-disk`) in bytes, or `None` for none. The
    /// steps before it are in [`crate::budget`].
    pub max_disk: Option<u64>,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            channel_batches: 256,
            flush_interval: Duration::from_millis(100),
            // Large groups make the memtable inserts dense (sorted keys land close
            // to the previous insert), measured at half the CPU per hash of 64 K
            // groups. Groups only grow this big when the writer is behind.
            max_group_items: 512 * 1024,
            expected_infohashes: 16 << 20,
            max_disk: None,
        }
    }
}

/// The running writer thread. Dropping it shuts down gracefully, like [`Writer::shutdown`].
pub struct Writer {
    handle: WriterHandle,
    join: Option<JoinHandle<()>>,
}

impl Writer {
    /// Starts the writer over `store`. The filter is filled from the stored
    /// hashes first (one scan, about N / 10 million seconds); producers simply
    /// block on a full channel meanwhile.
    pub fn spawn(store: Arc<Store>, opts: WriterOptions) -> Result<Writer, StorageError> {
        if store.is_read_only() {
            return Err(StorageError::Engine("the writer needs a writable database".into()));
        }
        let (tx, rx) = crossbeam_channel::bounded(opts.channel_batches.max(1));
        let counters = Arc::new(Counters::default());
        let closed = Arc::new(AtomicBool::new(false));
        let handle = WriterHandle {
            tx,
            counters: counters.clone(),
            closed: closed.clone(),
        };
        let join = std::thread::Builder::new()
            .name("trawl-writer".into())
            .spawn(move || {
                let mut w = WriterLoop::new(store, opts, counters, closed);
                w.run(rx)
            })
            .map_err(|e| StorageError::Io(format!("spawning the writer thread: {e}")))?;
        Ok(Writer {
            handle,
            join: Some(join),
        })
    }

    pub fn handle(&self) -> WriterHandle {
        self.handle.clone()
    }

    pub fn stats(&self) -> WriterStats {
        self.handle.stats()
    }

    /// Commits everything sent before this call, stops the thread and returns
    /// the final counters. Later sends fail with [`StorageError::WriterClosed`].
    pub fn shutdown(mut self) -> WriterStats {
        self.stop();
        self.handle.stats()
    }

    fn stop(&mut self) {
        if let Some(join) = self.join.take() {
            // A writer waiting for disk space stops waiting.
            self.handle
                .counters
                .stopping
                .store(true, std::sync::atomic::Ordering::Relaxed);
            // A full channel makes this wait: that is the graceful part.
            let _ = self.handle.tx.send(Msg::Shutdown);
            if join.join().is_err() {
                tracing::error!("storage writer thread panicked");
            }
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop();
    }
}
