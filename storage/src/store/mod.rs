//! The open database: opening (with the schema-version check), typed reads,
//! the fetch-queue lease, statistics and size on disk.
//!
//! Owns the RocksDB handle. All mutation except the queue lease goes through
//! the writer thread (`writer.rs`), so there is one writer and no lost update;
//! the lease and the writer's queue updates share `staging_lock`, which also
//! guards the queue's floor (see [`DueFloor`]).
//! It must not expose a rocksdb type.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rocksdb::{
    BottommostLevelCompaction, Cache, ColumnFamily, ColumnFamilyDescriptor, CompactOptions, DBRawIterator, Options,
    ReadOptions, WriteBatch, WriteBufferManager, WriteOptions, DB,
};

use crate::keep::{InfoDictMode, KeptInfoDict};
use crate::record::*;
use crate::schema::{self, *};
use crate::StorageError;

/// How the metadata-fetch queue retries.
#[derive(Clone, Debug)]
pub struct QueuePolicy {
    /// Delay after the first failure; doubled after each further one.
    pub retry_base_secs: u32,
    /// Longest delay between attempts.
    pub retry_max_secs: u32,
    /// After this many failures the hash leaves the queue (counted, not silent).
    pub max_attempts: u16,
    /// How long a taken entry stays hidden from `take_due` while its fetch runs.
    pub lease_secs: u32,
    /// Most entries the queue holds. A hash that would make it longer is not
    /// queued (counted as `queue_dropped_full`); the infohash itself is stored
    /// as always, and a later sighting with peers queues it once there is room.
    pub max_entries: u64,
    /// An entry that fails after it has been queued this long leaves the
    /// queue (counted as `queue_expired`), whatever its attempt count: on the
    /// real DHT a hash nobody could serve for a week rarely comes back.
    pub max_age_secs: u32,
}

/// Default [`QueuePolicy::max_entries`]: two million entries, about 200 MB of
/// staging at the cap (each entry keeps up to 64 peers).
pub const DEFAULT_QUEUE_MAX_ENTRIES: u64 = 2_000_000;
/// Default [`QueuePolicy::max_age_secs`]: seven days.
pub const DEFAULT_QUEUE_MAX_AGE_SECS: u32 = 7 * 86_400;

impl Default for QueuePolicy {
    fn default() -> Self {
        QueuePolicy {
            retry_base_secs: 300,
            retry_max_secs: 86_400,
            max_attempts: 8,
            lease_secs: 600,
            max_entries: DEFAULT_QUEUE_MAX_ENTRIES,
            max_age_secs: DEFAULT_QUEUE_MAX_AGE_SECS,
        }
    }
}

impl QueuePolicy {
    /// When to retry after the `attempts`-th failure at `now`: exponential, capped,
    /// and never sooner than `retry_base_secs` (at least one second), so no hot loop.
    pub fn retry_at(&self, now: UnixSecs, attempts: u16) -> UnixSecs {
        let base = self.retry_base_secs.max(1) as u64;
        let shift = u32::from(attempts.saturating_sub(1)).min(32);
        let delay = base
            .saturating_mul(1u64 << shift)
            .min(self.retry_max_secs.max(self.retry_base_secs.max(1)) as u64);
        now.saturating_add(delay as u32)
    }
}

/// How to open a database.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Create the directory and a fresh database if none exists.
    pub create_if_missing: bool,
    /// fsync the WAL on every group commit (what makes an acknowledgement durable).
    pub sync_writes: bool,
    /// How much of each fetched info dict to keep (`--info-dicts`). It rules
    /// new writes only: what a database already holds is never cut or deleted.
    pub info_dicts: InfoDictMode,
    pub queue: QueuePolicy,
    /// RocksDB's memory budget: one block cache all column families share
    /// (data, index and filter blocks), which the memtables of every family
    /// are charged to as well, up to half of it. Flushes start when the
    /// memtables reach their half, so the database's memory stays near this
    /// however large it grows.
    pub memory_budget_bytes: usize,
}

/// Default [`StoreOptions::memory_budget_bytes`].
pub const DEFAULT_MEMORY_BUDGET_BYTES: usize = 256 << 20;

/// Files RocksDB may hold open (table files beyond it are closed, least
/// recently used first, and reopened on demand). RocksDB's default keeps every
/// table open, so descriptors grow with the database until the process limit
/// breaks a write; 2,048 tables of 64 MB cover 128 GB before any is closed.
pub const MAX_OPEN_FILES: u32 = 2048;

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            create_if_missing: true,
            sync_writes: true,
            info_dicts: InfoDictMode::Full,
            queue: QueuePolicy::default(),
            memory_budget_bytes: DEFAULT_MEMORY_BUDGET_BYTES,
        }
    }
}

/// An open trawl database. `Send + Sync`: share it in an `Arc`.
pub struct Store {
    db: DB,
    path: PathBuf,
    opts: StoreOptions,
    read_only: bool,
    pub(crate) staging_lock: Mutex<DueFloor>,
    /// The mode the last torrents were stored with, before this open (`None`
    /// for a database without torrents, one from before modes existed, or a
    /// read-only open).
    previous_info_dicts: Option<InfoDictMode>,
    /// The block cache every family shares (see [`schema::cf_options`]).
    block_cache: Cache,
    /// Every family's memtables, charged to `block_cache`.
    memtables: WriteBufferManager,
}

/// A `staging_due` key at or below every live one, so `take_due` seeks past
/// the deletions of keys it already took instead of stepping over each of
/// those tombstones again (quadratic in a burst). `None`: start at the first key.
#[derive(Default)]
pub(crate) struct DueFloor(Option<[u8; DUE_KEY_LEN]>);

impl DueFloor {
    /// A due key is being written: the floor must not be above it.
    pub(crate) fn lower_to(&mut self, key: [u8; DUE_KEY_LEN]) {
        if let Some(f) = &mut self.0 {
            *f = (*f).min(key);
        }
    }
}

/// Counts and sizes, for `trawl stats`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    pub infohashes: u64,
    pub by_source: [u64; 4],
    pub torrents: u64,
    pub by_class: [u64; 8],
    pub total_content_bytes: u64,
    pub staged: u64,
    pub scrapes: u64,
    pub nodes: u64,
    pub disk: DiskUsage,
}

/// Bytes on disk.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DiskUsage {
    /// Every file under the directory (SSTs, WAL, manifest, logs).
    pub total_bytes: u64,
    /// SST bytes per column family, in [`schema::COLUMN_FAMILIES`] order.
    pub sst_bytes: Vec<(&'static str, u64)>,
}

/// RocksDB's own memory, in bytes, from its live properties (no scan).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemoryUsage {
    /// Active and immutable memtables, all families.
    pub memtables: u64,
    /// Open SST readers' own memory (their index and filter blocks are in
    /// the block cache).
    pub table_readers: u64,
    /// Data, index and filter blocks held by the shared block cache.
    pub block_cache: u64,
}

impl MemoryUsage {
    pub fn total(&self) -> u64 {
        self.memtables + self.table_readers + self.block_cache
    }
}

impl DiskUsage {
    pub fn sst_bytes_of(&self, cf: &str) -> u64 {
        self.sst_bytes.iter().find(|(n, _)| *n == cf).map_or(0, |(_, b)| *b)
    }
}

fn db_options(create: bool, memtables: &WriteBufferManager) -> Options {
    let mut o = Options::default();
    o.create_if_missing(create);
    // A writable open adds the families an older database lacks
    // (`schema::ADDED_FAMILIES`); a read-only open ignores this.
    o.create_missing_column_families(true);
    o.set_write_buffer_manager(memtables);
    o.set_max_open_files(MAX_OPEN_FILES as i32);
    // One background core: the other belongs to the engine.
    o.set_max_background_jobs(2);
    o.set_keep_log_file_num(4);
    o.set_max_total_wal_size(256 << 20);
    // After kill -9 replay every complete WAL record, drop only a torn tail.
    o.set_wal_recovery_mode(rocksdb::DBRecoveryMode::PointInTime);
    o
}

/// The block cache and the memtable manager that together hold RocksDB to
/// [`StoreOptions::memory_budget_bytes`]: memtables of all families share half
/// the budget and are charged to the cache, whose blocks give way to them.
fn memory_budget(opts: &StoreOptions) -> (Cache, WriteBufferManager) {
    let cache = Cache::new_lru_cache(opts.memory_budget_bytes);
    let memtables =
        WriteBufferManager::new_write_buffer_manager_with_cache(opts.memory_budget_bytes / 2, false, cache.clone());
    (cache, memtables)
}

impl Store {
    /// Opens (or creates) a database for reading and writing. Fails with
    /// [`StorageError::Locked`] while another process has it open.
    pub fn open(path: impl AsRef<Path>, opts: &StoreOptions) -> Result<Store, StorageError> {
        let path = path.as_ref();
        let fresh = !path.join("CURRENT").exists();
        if fresh {
            if !opts.create_if_missing {
                return Err(if path.exists() {
                    StorageError::NotTrawl(path.into())
                } else {
                    StorageError::Missing(path.into())
                });
            }
            // Never scatter a database among someone else's files.
            if std::fs::read_dir(path).is_ok_and(|mut d| d.next().is_some()) {
                return Err(StorageError::NotTrawl(path.into()));
            }
            std::fs::create_dir_all(path).map_err(|e| StorageError::Io(format!("{}: {e}", path.display())))?;
        }
        let (block_cache, memtables) = memory_budget(opts);
        let cfs = Self::descriptors(path, fresh, false, &block_cache)?;
        let db = DB::open_cf_descriptors(&db_options(opts.create_if_missing, &memtables), path, cfs)
            .map_err(|e| StorageError::from_rocks(e, path))?;
        let mut store = Store {
            db,
            path: path.into(),
            opts: opts.clone(),
            read_only: false,
            staging_lock: Mutex::new(DueFloor::default()),
            previous_info_dicts: None,
            block_cache,
            memtables,
        };
        if fresh {
            let meta = store.cf(CF_META)?;
            let mut wo = WriteOptions::default();
            wo.set_sync(true);
            store
                .db
                .put_cf_opt(meta, META_SCHEMA_VERSION, SCHEMA_VERSION.to_be_bytes(), &wo)
                .map_err(|e| StorageError::from_rocks(e, path))?;
        }
        store.check_version()?;
        // The writer records the mode with every batch of torrents, so an
        // open that stores none (import, compact) leaves it as it was.
        store.previous_info_dicts = store.read_info_dicts_mode()?;
        Ok(store)
    }

    /// Opens an existing database read-only: it works while a crawl holds the
    /// lock and sees the data as of the moment it was opened.
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Store, StorageError> {
        let path = path.as_ref();
        if !path.exists() {
            return Err(StorageError::Missing(path.into()));
        }
        if !path.join("CURRENT").exists() {
            return Err(StorageError::NotTrawl(path.into()));
        }
        let opts = StoreOptions::default();
        let (block_cache, memtables) = memory_budget(&opts);
        let cfs = Self::descriptors(path, false, true, &block_cache)?;
        let db = DB::open_cf_descriptors_read_only(&db_options(false, &memtables), path, cfs, false)
            .map_err(|e| StorageError::from_rocks(e, path))?;
        let store = Store {
            db,
            path: path.into(),
            opts,
            read_only: true,
            staging_lock: Mutex::new(DueFloor::default()),
            previous_info_dicts: None,
            block_cache,
            memtables,
        };
        store.check_version()?;
        Ok(store)
    }

    /// Opens an existing database as a RocksDB secondary: it works beside a
    /// running crawl, and [`Store::catch_up`] brings it up to what the crawl
    /// has written since. `scratch` holds the secondary's own log files; it
    /// is created if missing. This is how `trawl serve` follows a crawl.
    pub fn open_follower(path: impl AsRef<Path>, scratch: impl AsRef<Path>) -> Result<Store, StorageError> {
        let (path, scratch) = (path.as_ref(), scratch.as_ref());
        if !path.exists() {
            return Err(StorageError::Missing(path.into()));
        }
        if !path.join("CURRENT").exists() {
            return Err(StorageError::NotTrawl(path.into()));
        }
        std::fs::create_dir_all(scratch).map_err(|e| StorageError::Io(format!("{}: {e}", scratch.display())))?;
        let opts = StoreOptions::default();
        let (block_cache, memtables) = memory_budget(&opts);
        let cfs = Self::descriptors(path, false, true, &block_cache)?;
        let mut o = db_options(false, &memtables);
        // A secondary must keep every table open: it cannot reopen one the
        // primary has since compacted away.
        o.set_max_open_files(-1);
        let db = DB::open_cf_descriptors_as_secondary(&o, path, scratch, cfs)
            .map_err(|e| StorageError::from_rocks(e, path))?;
        let store = Store {
            db,
            path: path.into(),
            opts,
            read_only: true,
            staging_lock: Mutex::new(DueFloor::default()),
            previous_info_dicts: None,
            block_cache,
            memtables,
        };
        store.check_version()?;
        Ok(store)
    }

    /// For a store from [`Store::open_follower`]: reads what the primary has
    /// written since the open or the last catch-up (its WAL and new tables).
    pub fn catch_up(&self) -> Result<(), StorageError> {
        self.db.try_catch_up_with_primary().map_err(|e| self.rocks(e))
    }

    /// The last sequence number in the `changes` log (0: none yet, or a
    /// database from before the log, which a read-only open sees without it).
    pub fn last_change(&self) -> Result<u64, StorageError> {
        let Some(cf) = self.added_cf(CF_CHANGES) else {
            return Ok(0);
        };
        let mut it = self.db.raw_iterator_cf(cf);
        it.seek_to_last();
        match it.key() {
            Some(k) => decode_change_key(k)
                .ok_or_else(|| StorageError::corrupt("change key", format_args!("{} bytes", k.len()))),
            None => it.status().map(|_| 0).map_err(|e| self.rocks(e)),
        }
    }

    /// Up to `max` changes after sequence number `after`, in order, appended
    /// to `out` as (sequence, infohash). A hash may appear more than once.
    pub fn changes_after(&self, after: u64, max: usize, out: &mut Vec<(u64, InfoHash)>) -> Result<(), StorageError> {
        let Some(cf) = self.added_cf(CF_CHANGES) else {
            return Ok(());
        };
        let mut it = self.db.raw_iterator_cf(cf);
        it.seek(change_key(after.saturating_add(1)));
        let mut n = 0;
        while n < max {
            let (Some(k), Some(v)) = (it.key(), it.value()) else {
                break;
            };
            let seq = decode_change_key(k)
                .ok_or_else(|| StorageError::corrupt("change key", format_args!("{} bytes", k.len())))?;
            let h = infohash_from_key(v)
                .ok_or_else(|| StorageError::corrupt("change value", format_args!("{} bytes", v.len())))?;
            out.push((seq, h));
            n += 1;
            it.next();
        }
        it.status().map_err(|e| self.rocks(e))
    }

    /// Calls `each` for every stored torrent (no info dict), in key order,
    /// until it returns `false`. For rebuilding a search index.
    pub fn for_each_torrent(&self, mut each: impl FnMut(TorrentRecord) -> bool) -> Result<(), StorageError> {
        let mut it = self.scan(CF_TORRENTS)?;
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            let h = infohash_from_key(k)
                .ok_or_else(|| StorageError::corrupt("torrent key", format_args!("{} bytes", k.len())))?;
            let mut t = decode_torrent(h, v)?;
            t.scrape = self.scrape(&h)?;
            if !each(t) {
                return Ok(());
            }
            it.next();
        }
        it.status().map_err(|e| self.rocks(e))
    }

    /// Our families with their tuning, plus any the directory has that this
    /// build does not know (RocksDB insists on opening all of them; the version
    /// check then refuses a newer schema). RocksDB's own "default" family (never
    /// written) is named too, else the crate opens it with default options and
    /// a 32 MB block cache of its own beside the shared one. A read-only open
    /// cannot create a family, so it leaves out the [`ADDED_FAMILIES`] an older
    /// database lacks, and reads of them find nothing.
    fn descriptors(
        path: &Path,
        fresh: bool,
        read_only: bool,
        cache: &Cache,
    ) -> Result<Vec<ColumnFamilyDescriptor>, StorageError> {
        let mut names: Vec<String> = COLUMN_FAMILIES.iter().map(|s| s.to_string()).collect();
        names.push(rocksdb::DEFAULT_COLUMN_FAMILY_NAME.to_string());
        if !fresh {
            let existing = DB::list_cf(&Options::default(), path).map_err(|e| StorageError::from_rocks(e, path))?;
            if !existing.iter().any(|n| n == CF_META) {
                return Err(StorageError::NotTrawl(path.into()));
            }
            if read_only {
                names.retain(|n| !ADDED_FAMILIES.contains(&n.as_str()) || existing.contains(n));
            }
            for n in existing {
                if !names.contains(&n) {
                    names.push(n);
                }
            }
        }
        Ok(names
            .into_iter()
            .map(|n| {
                let o = schema::cf_options(&n, cache);
                ColumnFamilyDescriptor::new(n, o)
            })
            .collect())
    }

    fn check_version(&self) -> Result<(), StorageError> {
        let v = self
            .get(CF_META, META_SCHEMA_VERSION)?
            .ok_or_else(|| StorageError::NotTrawl(self.path.clone()))?;
        let v: [u8; 4] = v
            .as_slice()
            .try_into()
            .map_err(|_| StorageError::SchemaUnknown(format!("{} bytes", v.len())))?;
        match u32::from_be_bytes(v) {
            SCHEMA_VERSION => Ok(()),
            0 => Err(StorageError::SchemaUnknown("version 0".into())),
            found if found > SCHEMA_VERSION => Err(StorageError::SchemaTooNew {
                found,
                supported: SCHEMA_VERSION,
            }),
            found => Err(StorageError::SchemaUnknown(format!(
                "version {found} has no upgrade path"
            ))),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn options(&self) -> &StoreOptions {
        &self.opts
    }

    /// The `--info-dicts` mode torrents were last stored with before this
    /// open, if it differs from this open's: what was kept in that mode stays,
    /// new torrents are kept in the new one. Always `None` for a read-only
    /// open (see [`Self::read_info_dicts_mode`]).
    pub fn info_dicts_mode_change(&self) -> Option<(InfoDictMode, InfoDictMode)> {
        let before = self.previous_info_dicts?;
        (before != self.opts.info_dicts).then_some((before, self.opts.info_dicts))
    }

    /// The mode recorded in the database: the one the latest torrents were stored with.
    pub fn read_info_dicts_mode(&self) -> Result<Option<InfoDictMode>, StorageError> {
        let Some(v) = self.get(CF_META, META_INFO_DICTS_MODE)? else {
            return Ok(None);
        };
        let s = std::str::from_utf8(&v).map_err(|_| StorageError::corrupt("info dicts mode", "not UTF-8"))?;
        s.parse()
            .map(Some)
            .map_err(|e: String| StorageError::corrupt("info dicts mode", e))
    }

    /// Records the disk budget a crawl runs with (`None`: none), for `trawl stats`.
    pub fn record_disk_budget(&self, bytes: Option<u64>) -> Result<(), StorageError> {
        let cf = self.cf(CF_META)?;
        match bytes {
            Some(b) => self.db.put_cf(cf, META_DISK_BUDGET, b.to_be_bytes()),
            None => self.db.delete_cf(cf, META_DISK_BUDGET),
        }
        .map_err(|e| self.rocks(e))
    }

    /// The budget the latest crawl recorded, if it had one.
    pub fn disk_budget(&self) -> Result<Option<u64>, StorageError> {
        let Some(v) = self.get(CF_META, META_DISK_BUDGET)? else {
            return Ok(None);
        };
        let bytes: [u8; 8] = v
            .as_slice()
            .try_into()
            .map_err(|_| StorageError::corrupt("disk budget", format!("{} bytes, not 8", v.len())))?;
        Ok(Some(u64::from_be_bytes(bytes)))
    }

    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    // ---- internals shared with the writer and export -------------------

    pub(crate) fn cf(&self, name: &str) -> Result<&ColumnFamily, StorageError> {
        // Every family was opened or created in `open`, so this only fails on a bug.
        self.db
            .cf_handle(name)
            .ok_or_else(|| StorageError::Engine(format!("column family {name} not open")))
    }

    /// One of [`ADDED_FAMILIES`], which a read-only open of an older database lacks.
    pub(crate) fn added_cf(&self, name: &str) -> Option<&ColumnFamily> {
        self.db.cf_handle(name)
    }

    /// The families this open has, in [`COLUMN_FAMILIES`] order.
    fn open_families(&self) -> impl Iterator<Item = (&'static str, &ColumnFamily)> + '_ {
        COLUMN_FAMILIES
            .into_iter()
            .filter_map(|n| self.db.cf_handle(n).map(|cf| (n, cf)))
    }

    pub(crate) fn rocks(&self, e: rocksdb::Error) -> StorageError {
        StorageError::from_rocks(e, &self.path)
    }

    pub(crate) fn db(&self) -> &DB {
        &self.db
    }

    pub(crate) fn get(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.db.get_cf(self.cf(cf)?, key).map_err(|e| self.rocks(e))
    }

    pub(crate) fn write(&self, batch: WriteBatch) -> Result<(), StorageError> {
        let mut wo = WriteOptions::default();
        wo.set_sync(self.opts.sync_writes);
        self.db.write_opt(batch, &wo).map_err(|e| self.rocks(e))
    }

    /// A raw iterator over one family tuned for one sequential pass.
    pub(crate) fn scan(&self, cf: &str) -> Result<DBRawIterator<'_>, StorageError> {
        let mut ro = ReadOptions::default();
        ro.fill_cache(false);
        ro.set_readahead_size(4 << 20);
        ro.set_async_io(true);
        let mut it = self.db.raw_iterator_cf_opt(self.cf(cf)?, ro);
        it.seek_to_first();
        Ok(it)
    }

    // ---- typed reads ----------------------------------------------------

    pub fn infohash(&self, h: &InfoHash) -> Result<Option<InfoHashRecord>, StorageError> {
        self.get(CF_INFOHASHES, h)?.map(|v| decode_infohash(&v)).transpose()
    }

    /// The stored metadata with its scrape joined in (no info dict; see
    /// [`Self::info_dict`]). A hybrid is found by either of its hashes; the
    /// record's `info_hash` is its v1 hash.
    pub fn torrent(&self, h: &InfoHash) -> Result<Option<TorrentRecord>, StorageError> {
        let key = self.primary_hash(h)?.unwrap_or(*h);
        let Some(v) = self.get(CF_TORRENTS, &key)? else {
            return Ok(None);
        };
        let mut t = decode_torrent(key, &v)?;
        t.scrape = self.scrape(&key)?;
        Ok(Some(t))
    }

    /// The v1 hash a hybrid is stored under, if `h` is its truncated v2 hash.
    pub fn primary_hash(&self, h: &InfoHash) -> Result<Option<InfoHash>, StorageError> {
        let Some(cf) = self.added_cf(CF_ALIASES) else {
            return Ok(None);
        };
        let Some(v) = self.db.get_pinned_cf(cf, h).map_err(|e| self.rocks(e))? else {
            return Ok(None);
        };
        let key: InfoHash = v
            .as_ref()
            .try_into()
            .map_err(|_| StorageError::corrupt("alias", format_args!("{} bytes", v.len())))?;
        Ok(Some(key))
    }

    /// The raw info dict as fetched, if it was kept whole (`--info-dicts
    /// full`). `None` when nothing, or only the `files` form, was kept; see
    /// [`Self::kept_info_dict`].
    pub fn info_dict(&self, h: &InfoHash) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(match self.kept_info_dict(h)? {
            Some(KeptInfoDict::Full(d)) => Some(d),
            _ => None,
        })
    }

    /// The stored info dict in whichever form it was kept.
    pub fn kept_info_dict(&self, h: &InfoHash) -> Result<Option<KeptInfoDict>, StorageError> {
        self.get(CF_INFO_DICTS, h)?
            .map(|v| KeptInfoDict::from_value(v).map_err(|e| StorageError::corrupt("info dict", e)))
            .transpose()
    }

    pub fn scrape(&self, h: &InfoHash) -> Result<Option<ScrapeEstimate>, StorageError> {
        self.get(CF_SCRAPES, h)?.map(|v| decode_scrape(&v)).transpose()
    }

    pub fn staging_entry(&self, h: &InfoHash) -> Result<Option<StagingEntry>, StorageError> {
        self.get(CF_STAGING, h)?.map(|v| decode_staging(*h, &v)).transpose()
    }

    /// The name a node gave for `h` before its metadata was fetched: the first
    /// one heard (later ones are dropped). `None` if none was heard, and once
    /// the torrent's metadata is stored (the writer deletes it then; the real
    /// name is in [`Self::torrent`]).
    pub fn provisional_name(&self, h: &InfoHash) -> Result<Option<ProvisionalName>, StorageError> {
        let Some(cf) = self.added_cf(CF_PROVISIONAL_NAMES) else {
            return Ok(None);
        };
        self.db
            .get_cf(cf, h)
            .map_err(|e| self.rocks(e))?
            .map(|v| decode_provisional_name(*h, &v))
            .transpose()
    }

    /// The saved DHT nodes for a warm restart, IPv4 first.
    pub fn nodes(&self) -> Result<Vec<DhtNode>, StorageError> {
        let mut it = self.scan(CF_NODES)?;
        let mut out = Vec::new();
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            out.push(decode_node(k, v)?);
            it.next();
        }
        it.status().map_err(|e| self.rocks(e))?;
        Ok(out)
    }

    // ---- the fetch queue ------------------------------------------------

    /// Takes up to `max` queue entries due at `now`, earliest first, into `out`
    /// (cleared first), and leases them: each becomes due again only after
    /// `lease_secs`, so a crashed fetch is retried and a running one is not
    /// handed out twice. Report the outcome through the writer
    /// ([`crate::Batch::failures`] or [`crate::Batch::torrents`]).
    pub fn take_due(&self, now: UnixSecs, max: usize, out: &mut Vec<StagingEntry>) -> Result<usize, StorageError> {
        out.clear();
        if self.read_only {
            return Err(StorageError::Engine("take_due needs a writable database".into()));
        }
        let mut floor = self.staging_lock.lock().unwrap_or_else(|p| p.into_inner());
        let due_cf = self.cf(CF_STAGING_DUE)?;
        let mut it = self.db.raw_iterator_cf(due_cf);
        match &floor.0 {
            Some(k) => it.seek(k),
            None => it.seek_to_first(),
        }
        let mut batch = WriteBatch::default();
        let mut buf = Vec::new();
        let lease_until = now.saturating_add(self.opts.queue.lease_secs.max(1));
        while out.len() < max {
            let Some(k) = it.key() else { break };
            let (due, h) = decode_due_key(k)
                .ok_or_else(|| StorageError::corrupt("queue key", format_args!("{} bytes", k.len())))?;
            if due > now {
                break;
            }
            batch.delete_cf(due_cf, k);
            match self.staging_entry(&h)? {
                // An entry always has exactly one due key; tolerate a stray one by dropping it.
                Some(mut e) if e.due == due => {
                    e.due = lease_until;
                    e.leased = true;
                    e.peers_since_lease = false;
                    encode_staging(&e, &mut buf);
                    batch.put_cf(self.cf(CF_STAGING)?, h, &buf);
                    batch.put_cf(due_cf, due_key(lease_until, &h), b"");
                    out.push(e);
                }
                _ => {}
            }
            it.next();
        }
        it.status().map_err(|e| self.rocks(e))?;
        // Everything before the stop is deleted; the leases just written may sort below it.
        let mut next_floor = it.key().and_then(|k| <[u8; DUE_KEY_LEN]>::try_from(k).ok());
        drop(it);
        if !batch.is_empty() {
            self.write(batch)?;
        }
        if let Some(first) = out.iter().map(|e| due_key(lease_until, &e.info_hash)).min() {
            next_floor = Some(next_floor.map_or(first, |k| k.min(first)));
        }
        if next_floor.is_some() || !out.is_empty() {
            floor.0 = next_floor;
        }
        Ok(out.len())
    }

    /// Gives back leases taken by [`Self::take_due`] whose fetch will not
    /// finish (a fetcher stopping with a backlog), so the entries are due at
    /// `now` instead of when the lease runs out. Each lease is an infohash and
    /// the `due` that `take_due` returned for it; an entry is released only if
    /// it still carries that lease, so one the writer has since rescheduled or
    /// removed is left alone. Attempts are not counted. Returns how many were
    /// released.
    pub fn release(&self, leases: &[(InfoHash, UnixSecs)], now: UnixSecs) -> Result<usize, StorageError> {
        if self.read_only {
            return Err(StorageError::Engine("release needs a writable database".into()));
        }
        let mut floor = self.staging_lock.lock().unwrap_or_else(|p| p.into_inner());
        let (cf_q, cf_due) = (self.cf(CF_STAGING)?, self.cf(CF_STAGING_DUE)?);
        let mut batch = WriteBatch::default();
        let mut buf = Vec::new();
        let mut released = 0;
        for (h, lease) in leases {
            let Some(mut e) = self.staging_entry(h)? else {
                continue;
            };
            if e.due != *lease || e.due <= now {
                continue;
            }
            batch.delete_cf(cf_due, due_key(e.due, &e.info_hash));
            e.due = now;
            e.leased = false;
            e.peers_since_lease = false;
            encode_staging(&e, &mut buf);
            batch.put_cf(cf_q, e.info_hash, &buf);
            let k = due_key(now, &e.info_hash);
            floor.lower_to(k);
            batch.put_cf(cf_due, k, b"");
            released += 1;
        }
        if !batch.is_empty() {
            self.write(batch)?;
        }
        Ok(released)
    }

    // ---- statistics -----------------------------------------------------

    /// Exact counts by one pass over each family (constant memory), and bytes on disk.
    pub fn stats(&self) -> Result<StoreStats, StorageError> {
        let mut s = StoreStats::default();
        let mut it = self.scan(CF_INFOHASHES)?;
        while let Some(v) = it.value() {
            s.infohashes += 1;
            let r = decode_infohash(v)?;
            for (i, src) in Source::ALL.iter().enumerate() {
                s.by_source[i] += u64::from(r.sources.contains(*src));
            }
            it.next();
        }
        it.status().map_err(|e| self.rocks(e))?;
        let mut it = self.scan(CF_TORRENTS)?;
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            s.torrents += 1;
            let class = torrent_class(v).ok_or_else(|| StorageError::corrupt("torrent record", "header"))?;
            s.by_class[class as usize] += 1;
            let h = infohash_from_key(k).ok_or_else(|| StorageError::corrupt("torrent key", "length"))?;
            s.total_content_bytes = s.total_content_bytes.saturating_add(decode_torrent(h, v)?.total_size);
            it.next();
        }
        it.status().map_err(|e| self.rocks(e))?;
        s.staged = self.count(CF_STAGING)?;
        s.scrapes = self.count(CF_SCRAPES)?;
        s.nodes = self.count(CF_NODES)?;
        s.disk = self.disk_usage()?;
        Ok(s)
    }

    /// About how many hashes wait in the metadata-fetch queue: RocksDB's
    /// `estimate-num-keys` for `staging`, read from memory (no scan), so cheap
    /// enough for a status line. It can be off after deletes until compaction.
    pub fn staging_len_estimate(&self) -> Result<u64, StorageError> {
        self.len_estimate(CF_STAGING)
    }

    /// RocksDB's `estimate-num-keys` for one family (0 for one this open
    /// lacks): no scan, so cheap enough to sample every few seconds; off by
    /// the deletes and overwrites not yet compacted.
    pub fn len_estimate(&self, family: &str) -> Result<u64, StorageError> {
        let Some(cf) = self.db.cf_handle(family) else {
            return Ok(0);
        };
        let n = self
            .db
            .property_int_value_cf(cf, rocksdb::properties::ESTIMATE_NUM_KEYS)
            .map_err(|e| self.rocks(e))?;
        Ok(n.unwrap_or(0))
    }

    /// RocksDB's memory now: memtables and table readers summed over every
    /// family, plus the shared block cache once (each family's
    /// `block-cache-usage` would report that same cache again) without the
    /// share it reserves for the memtables.
    pub fn memory_usage(&self) -> Result<MemoryUsage, StorageError> {
        let cache = self.block_cache.get_usage().saturating_sub(self.memtables.get_usage());
        let mut m = MemoryUsage {
            block_cache: cache as u64,
            ..MemoryUsage::default()
        };
        for (_, cf) in self.open_families() {
            let prop = |p| {
                self.db
                    .property_int_value_cf(cf, p)
                    .map(|v| v.unwrap_or(0))
                    .map_err(|e| self.rocks(e))
            };
            m.memtables += prop(rocksdb::properties::CUR_SIZE_ALL_MEM_TABLES)?;
            m.table_readers += prop(rocksdb::properties::ESTIMATE_TABLE_READERS_MEM)?;
        }
        Ok(m)
    }

    /// The metadata-fetch queue by why each entry's last attempt failed: the
    /// kinds its last failure named (`no_peers`, `dial_timeout`, ...; one
    /// entry may name several), and `not_tried` for entries never attempted.
    /// One pass over the queue; most common first.
    pub fn queue_by_last_failure(&self) -> Result<Vec<(String, u64)>, StorageError> {
        let mut counts: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
        let mut it = self.scan(CF_STAGING)?;
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            let h = infohash_from_key(k).ok_or_else(|| StorageError::corrupt("staging key", "length"))?;
            let e = decode_staging(h, v)?;
            match e.last_error.as_deref().filter(|s| !s.is_empty()) {
                None => *counts.entry("not_tried".into()).or_default() += 1,
                Some(err) => {
                    let mut kinds: Vec<&str> = err.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
                    kinds.sort_unstable();
                    kinds.dedup();
                    for kind in kinds {
                        *counts.entry(kind.to_owned()).or_default() += 1;
                    }
                }
            }
            it.next();
        }
        it.status().map_err(|e| self.rocks(e))?;
        let mut out: Vec<_> = counts.into_iter().collect();
        out.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        Ok(out)
    }

    pub(crate) fn count(&self, cf: &str) -> Result<u64, StorageError> {
        let mut it = self.scan(cf)?;
        let mut n = 0;
        while it.valid() {
            n += 1;
            it.next();
        }
        it.status().map_err(|e| self.rocks(e))?;
        Ok(n)
    }

    /// SST bytes per family and every byte under the directory.
    pub fn disk_usage(&self) -> Result<DiskUsage, StorageError> {
        let mut sst_bytes = Vec::new();
        for (name, cf) in self.open_families() {
            let b = self
                .db
                .property_int_value_cf(cf, rocksdb::properties::LIVE_SST_FILES_SIZE)
                .map_err(|e| self.rocks(e))?
                .unwrap_or(0);
            sst_bytes.push((name, b));
        }
        Ok(DiskUsage {
            total_bytes: self.dir_bytes()?,
            sst_bytes,
        })
    }

    /// Every file's length under the database directory (SSTs, WAL,
    /// manifest, logs): what the disk budget counts.
    pub fn dir_bytes(&self) -> Result<u64, StorageError> {
        let mut total = 0;
        let dir =
            std::fs::read_dir(&self.path).map_err(|e| StorageError::Io(format!("{}: {e}", self.path.display())))?;
        for entry in dir.flatten() {
            if let Ok(m) = entry.metadata() {
                if m.is_file() {
                    total += m.len();
                }
            }
        }
        Ok(total)
    }

    /// Flushes memtables and compacts every family down to the bottom level,
    /// which also zeroes sequence numbers: what "bytes on disk" should measure.
    pub fn compact(&self) -> Result<(), StorageError> {
        self.compact_with(|_, _| {})
    }

    /// [`Self::compact`], calling `done(family, sst_bytes_before)` after each
    /// family (largest first, so a progress bar weighted by bytes moves
    /// evenly). Refused on a read-only open.
    pub fn compact_with(&self, mut done: impl FnMut(&'static str, u64)) -> Result<(), StorageError> {
        if self.read_only {
            return Err(StorageError::Io(
                "compaction needs the database open for writing".into(),
            ));
        }
        let mut co = CompactOptions::default();
        co.set_bottommost_level_compaction(BottommostLevelCompaction::Force);
        co.set_exclusive_manual_compaction(true);
        let disk = self.disk_usage()?;
        let mut families: Vec<(&'static str, &ColumnFamily, u64)> = self
            .open_families()
            .map(|(n, cf)| (n, cf, disk.sst_bytes_of(n)))
            .collect();
        families.sort_by_key(|f| std::cmp::Reverse(f.2));
        for (name, cf, bytes) in families {
            self.db.flush_cf(cf).map_err(|e| self.rocks(e))?;
            self.db.compact_range_cf_opt(cf, None::<&[u8]>, None::<&[u8]>, &co);
            done(name, bytes);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
