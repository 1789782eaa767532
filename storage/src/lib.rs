//! trawl-storage: the RocksDB-backed infohash index, staging queue and metadata store.
