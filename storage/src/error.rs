//! The storage layer's one error type. Every failure above `storage/` is one of
//! these variants; no rocksdb type leaks out. Each Display is one line a user
//! can act on.

use std::fmt;
use std::path::PathBuf;

/// Everything that can go wrong in `trawl-storage`.
#[derive(Debug)]
pub enum StorageError {
    /// The database directory does not exist (and we were not asked to create it).
    Missing(PathBuf),
    /// Another process holds the database's lock file.
    Locked(PathBuf),
    /// The directory holds a database but not a trawl one (no schema version).
    NotTrawl(PathBuf),
    /// Written by a newer trawl; this build must not touch it.
    SchemaTooNew { found: u32, supported: u32 },
    /// The schema version record exists but cannot be understood.
    SchemaUnknown(String),
    /// RocksDB or one of our value codecs found bytes that cannot be right.
    Corrupt(String),
    /// The file system refused (permissions, a bad path, ...).
    Io(String),
    /// The file system is full (ENOSPC): nothing more can be written until
    /// space is freed. What is stored stays readable.
    NoSpace(String),
    /// Writing an export or reading an import stream failed.
    Stream(std::io::Error),
    /// The writer thread has stopped, so the batch was not taken.
    WriterClosed,
    /// Any other RocksDB failure, with its message.
    Engine(String),
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing(p) => write!(f, "database directory {} does not exist", p.display()),
            Self::Locked(p) => write!(
                f,
                "database {} is locked by another process (is a crawl running? read-only commands still work)",
                p.display()
            ),
            Self::NotTrawl(p) => write!(f, "{} is not a trawl database (no schema version)", p.display()),
            Self::SchemaTooNew { found, supported } => write!(
                f,
                "database schema version {found} is newer than this build supports ({supported}); upgrade trawl"
            ),
            Self::SchemaUnknown(v) => write!(f, "database schema version is unreadable: {v}"),
            Self::Corrupt(m) => write!(f, "database is corrupt: {m}"),
            Self::Io(m) => write!(f, "database I/O error: {m}"),
            Self::NoSpace(m) => write!(f, "disk full (free space to resume storing): {m}"),
            Self::Stream(e) => write!(f, "stream error: {e}"),
            Self::WriterClosed => f.write_str("the storage writer has stopped"),
            Self::Engine(m) => write!(f, "RocksDB error: {m}"),
        }
    }
}

impl std::error::Error for StorageError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Stream(e) => Some(e),
            _ => None,
        }
    }
}

impl From<std::io::Error> for StorageError {
    fn from(e: std::io::Error) -> Self {
        Self::Stream(e)
    }
}

impl StorageError {
    /// Classifies a RocksDB error. `path` names the database for lock errors.
    pub(crate) fn from_rocks(e: rocksdb::Error, path: &std::path::Path) -> Self {
        use rocksdb::ErrorKind;
        let kind = e.kind();
        let msg = e.into_string();
        // RocksDB reports a held LOCK file as an IOError whose text names the lock.
        let lower = msg.to_ascii_lowercase();
        if lower.contains("lock") && (lower.contains("temporarily unavailable") || lower.contains("lock hold")) {
            return Self::Locked(path.to_path_buf());
        }
        match kind {
            ErrorKind::Corruption => Self::Corrupt(msg),
            ErrorKind::IOError if lower.contains("no space left") || lower.contains("nospace") => Self::NoSpace(msg),
            ErrorKind::IOError => Self::Io(msg),
            _ => Self::Engine(msg),
        }
    }

    /// Whether this is the file system being full, the one write failure a
    /// writer waits out instead of giving up.
    pub fn is_no_space(&self) -> bool {
        matches!(self, Self::NoSpace(_))
    }

    /// A value codec rejected stored bytes.
    pub(crate) fn corrupt(what: &str, detail: impl fmt::Display) -> Self {
        Self::Corrupt(format!("{what}: {detail}"))
    }
}
