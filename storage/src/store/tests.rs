//! The store on a temp directory: opening, reads, the fetch queue's leases,
//! read-only opens beside a writer.

use super::*;

fn with_version(bytes: &[u8]) -> Result<Store, StorageError> {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        s.db.put_cf(s.cf(CF_META).unwrap(), META_SCHEMA_VERSION, bytes).unwrap();
    }
    let rw = Store::open(dir.path(), &StoreOptions::default());
    let ro = Store::open_read_only(dir.path());
    assert_eq!(
        rw.as_ref().err().map(|e| e.to_string()),
        ro.as_ref().err().map(|e| e.to_string())
    );
    rw
}

#[test]
fn newer_or_unknown_schema_versions_are_refused_by_name() {
    let newer = with_version(&(SCHEMA_VERSION + 1).to_be_bytes()).err().unwrap();
    assert!(
        matches!(newer, StorageError::SchemaTooNew { found, supported: SCHEMA_VERSION } if found == SCHEMA_VERSION + 1)
    );
    assert!(newer.to_string().contains(&format!("version {}", SCHEMA_VERSION + 1)));
    assert!(matches!(
        with_version(b"v1").err().unwrap(),
        StorageError::SchemaUnknown(_)
    ));
    assert!(matches!(
        with_version(&0u32.to_be_bytes()).err().unwrap(),
        StorageError::SchemaUnknown(_)
    ));
    assert!(with_version(&SCHEMA_VERSION.to_be_bytes()).is_ok());
}

/// A database from before `provisional_names` existed: read-only opens
/// read it as empty (and export, stats and sizes work), a writable open
/// adds the family.
#[test]
fn a_database_without_the_added_families_still_opens() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut s = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        s.db.put_cf(s.cf(CF_INFOHASHES).unwrap(), [7u8; 20], [0u8; INFOHASH_VALUE_LEN])
            .unwrap();
        for name in ADDED_FAMILIES {
            s.db.drop_cf(name).unwrap();
        }
    }
    let listed = || DB::list_cf(&Options::default(), dir.path()).unwrap();
    assert!(!listed().iter().any(|n| n == CF_PROVISIONAL_NAMES));
    {
        let ro = Store::open_read_only(dir.path()).unwrap();
        assert_eq!(ro.provisional_name(&[7; 20]).unwrap(), None);
        assert!(ro
            .disk_usage()
            .unwrap()
            .sst_bytes
            .iter()
            .all(|(n, _)| *n != CF_PROVISIONAL_NAMES));
        assert!(ro.memory_usage().is_ok());
        assert_eq!(ro.stats().unwrap().infohashes, 1);
        let mut out = Vec::new();
        crate::export::export(&ro, crate::export::Format::Jsonl, &Default::default(), &mut out).unwrap();
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1);
    }
    let rw = Store::open(
        dir.path(),
        &StoreOptions {
            create_if_missing: false,
            ..StoreOptions::default()
        },
    )
    .unwrap();
    assert!(rw.cf(CF_PROVISIONAL_NAMES).is_ok());
    drop(rw);
    assert!(listed().iter().any(|n| n == CF_PROVISIONAL_NAMES));
}

#[test]
fn retries_back_off_exponentially_up_to_the_cap() {
    let p = QueuePolicy {
        retry_base_secs: 10,
        retry_max_secs: 100,
        max_attempts: 9,
        lease_secs: 5,
        ..QueuePolicy::default()
    };
    let delays: Vec<u32> = (1..=6).map(|a| p.retry_at(1000, a) - 1000).collect();
    assert_eq!(delays, vec![10, 20, 40, 80, 100, 100]);
    let hot = QueuePolicy {
        retry_base_secs: 0,
        ..p
    };
    assert!(hot.retry_at(1000, 1) > 1000, "a zero base must not retry in a hot loop");
    assert_eq!(p.retry_at(u32::MAX - 1, 60), u32::MAX);
}

#[test]
fn the_database_is_opened_with_bounded_files_and_cached_index_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    drop(s);
    // RocksDB writes the options it runs with to OPTIONS-<n>.
    let options = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("OPTIONS-"))
        .max()
        .expect("an OPTIONS file");
    let text = std::fs::read_to_string(options).unwrap();
    assert!(text.contains(&format!("max_open_files={MAX_OPEN_FILES}\n")), "{text}");
    for family in COLUMN_FAMILIES {
        let table = text
            .split(&format!("[TableOptions/BlockBasedTable \"{family}\"]"))
            .nth(1)
            .unwrap_or_else(|| panic!("no table options for {family}"));
        let table = table.split("\n[").next().unwrap();
        for line in [
            "cache_index_and_filter_blocks=true",
            "pin_l0_filter_and_index_blocks_in_cache=true",
            "partition_filters=true",
            "index_type=kTwoLevelIndexSearch",
        ] {
            assert!(table.contains(line), "{family}: no {line}");
        }
    }
}

#[test]
fn rocksdb_memory_stays_within_the_budget_as_the_database_grows() {
    let dir = tempfile::tempdir().unwrap();
    let budget = 16 << 20;
    let opts = StoreOptions {
        sync_writes: false,
        memory_budget_bytes: budget,
        ..StoreOptions::default()
    };
    let s = Store::open(dir.path(), &opts).unwrap();
    let before = s.memory_usage().unwrap();
    // An empty memtable already holds its arena block.
    assert!(before.total() > 0, "{before:?}");

    // 48 MB into families whose own write buffers (32 MB) never fill here:
    // only the shared memtable budget (8 MB) makes them flush.
    let value = vec![0x5a; 1000];
    let key = |cf: usize, i: u32| [&[cf as u8][..], &i.to_be_bytes()].concat();
    let families = [CF_TORRENTS, CF_INFO_DICTS];
    let n = 24_000;
    let mut peak_memtables = 0;
    for i in 0..n {
        for (f, name) in families.iter().enumerate() {
            s.db.put_cf(s.cf(name).unwrap(), key(f, i), &value).unwrap();
        }
        if i % 1000 == 0 {
            peak_memtables = peak_memtables.max(s.memory_usage().unwrap().memtables);
        }
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while s.disk_usage().unwrap().sst_bytes_of(CF_TORRENTS) == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let written = s.memory_usage().unwrap();
    assert!(
        s.disk_usage().unwrap().sst_bytes_of(CF_TORRENTS) > 0,
        "the budget flushed nothing: {written:?}"
    );
    // Without the budget they would hold all 48 MB; with it they stay near
    // 8 MB (the margin is for a flush that lags on a busy machine).
    assert!(peak_memtables < 32 << 20, "memtables held everything: {peak_memtables}");

    // Every block read back goes through the one cache, index and filter
    // blocks included: the tables hold none of their own.
    for (f, name) in families.iter().enumerate() {
        for i in 0..n {
            assert!(s.db.get_cf(s.cf(name).unwrap(), key(f, i)).unwrap().is_some());
        }
    }
    let read = s.memory_usage().unwrap();
    assert!(read.block_cache > written.block_cache, "{written:?} -> {read:?}");
    assert!(
        read.block_cache + read.memtables <= budget as u64 + (1 << 20),
        "{read:?}"
    );
    assert!(read.table_readers < 1 << 20, "{read:?}");
}
