//! A measuring stick for `trawl-bench storage`: RocksDB's own write path for
//! the `infohashes` family with none of the writer's work in front of it (no
//! filter, no reads, no channel, no acknowledgements). The writer's ingest
//! rate is reported as a fraction of this ceiling, measured in the same run.
//!
//! Owns nothing and keeps no state. The engine must not use it: it writes
//! placeholder records, bypassing the dedup that keeps the index truthful.

use rocksdb::WriteBatch;

use crate::record::{InfoHash, InfoHashRecord, SourceSet};
use crate::schema::{encode_infohash, CF_INFOHASHES};
use crate::{StorageError, Store};

/// Writes each group as one WriteBatch of puts in the given order (sort each
/// group first, as the writer does) and commits it like a writer group: WAL
/// on, fsynced per [`crate::StoreOptions::sync_writes`]. Every record is the
/// same first sighting at `at`.
pub fn write_groups_raw(store: &Store, groups: &[Vec<InfoHash>], at: u32) -> Result<(), StorageError> {
    let cf = store.cf(CF_INFOHASHES)?;
    let value = encode_infohash(&InfoHashRecord {
        first_seen: at,
        last_seen: at,
        seen: 1,
        sources: SourceSet(1),
    });
    for g in groups {
        let mut wb = WriteBatch::default();
        for h in g {
            wb.put_cf(cf, h, value);
        }
        store.write(wb)?;
    }
    Ok(())
}
