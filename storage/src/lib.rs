//! trawl-storage: the RocksDB-backed infohash index, metadata-fetch queue and
//! metadata store, with bulk export and import.
//!
//! Callers never name a rocksdb type: they open a [`Store`], start one
//! [`Writer`] over it, and hand its cloneable [`WriterHandle`] to each engine core.
//!
//! ```text
//!  core 0 ─┐  Batch (discoveries, peers, scrapes, names, ┌─> BatchOutcome (new hashes)
//!  core 1 ─┼─> torrents, failures, nodes) ─ bounded ─> writer thread ─ group commit ─> RocksDB
//!  core N ─┘  channel (send blocks when full)          bloom + multi_get dedup, WAL synced
//!  fetcher ── Store::take_due (leases queue entries), Store::release (at stop) ─────┘
//!  export / stats ── Store::open_read_only (works while a crawl holds the lock)
//! ```
//!
//! # Durability
//! - A batch whose [`BatchOutcome`] has been received is in the WAL and fsynced
//!   (with [`StoreOptions::sync_writes`], the default): it survives kill -9 and power loss.
//! - On kill -9, what can be lost is only what was not yet acknowledged: the
//!   group being collected (at most [`WriterOptions::flush_interval`], 100 ms by
//!   default) plus batches still waiting in the channel.
//! - A graceful shutdown ([`Writer::shutdown`] or dropping the [`Writer`])
//!   commits everything sent before it and loses nothing.
//! - Losses the writer cannot avoid are counted in [`WriterStats`], never silent.

mod bloom;
pub mod budget;
pub mod calibrate;
mod error;
pub mod export;
pub mod import;
pub mod keep;
mod record;
pub mod schema;
mod store;
pub mod summary;
mod writer;

pub use budget::{parse_size, DiskState};
pub use error::StorageError;
pub use keep::{InfoDictMode, KeptInfoDict};
pub use record::*;
pub use store::{
    DiskUsage, MemoryUsage, QueuePolicy, Store, StoreOptions, StoreStats, DEFAULT_MEMORY_BUDGET_BYTES,
    DEFAULT_QUEUE_MAX_AGE_SECS, DEFAULT_QUEUE_MAX_ENTRIES, MAX_OPEN_FILES,
};
pub use writer::{
    channel, Batch, BatchOutcome, BatchReceiver, TrySend, Writer, WriterHandle, WriterOptions, WriterStats,
};
