//! The crawl runtime's one error type: what can stop a crawl from starting or
//! finishing. Each Display is one line a user can act on.

use std::fmt;
use std::net::SocketAddr;

use trawl_storage::StorageError;

#[derive(Debug)]
pub enum CrawlError {
    /// A crawl socket could not be bound (port in use, address not local, ...).
    Bind { addr: SocketAddr, source: std::io::Error },
    /// A socket option the crawl cannot run without was refused.
    SocketOption {
        option: &'static str,
        source: std::io::Error,
    },
    /// The options contradict each other or name something impossible.
    Config(String),
    /// Opening the database or starting its writer failed.
    Storage(StorageError),
    /// A core's executor thread could not be started.
    Executor(String),
}

impl CrawlError {
    /// True when the user can fix it by changing an argument (port in use,
    /// locked or foreign database, bad option), as opposed to a machine failure.
    pub fn is_usage(&self) -> bool {
        match self {
            CrawlError::Bind { source, .. } => matches!(
                source.kind(),
                std::io::ErrorKind::AddrInUse
                    | std::io::ErrorKind::AddrNotAvailable
                    | std::io::ErrorKind::PermissionDenied
            ),
            CrawlError::Config(_) => true,
            CrawlError::Storage(e) => matches!(
                e,
                StorageError::Locked(_)
                    | StorageError::Missing(_)
                    | StorageError::NotTrawl(_)
                    | StorageError::SchemaTooNew { .. }
            ),
            CrawlError::SocketOption { .. } | CrawlError::Executor(_) => false,
        }
    }
}

impl fmt::Display for CrawlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CrawlError::Bind { addr, source } if source.kind() == std::io::ErrorKind::AddrInUse => {
                write!(f, "UDP port {} is already in use ({addr})", addr.port())
            }
            CrawlError::Bind { addr, source } => write!(f, "cannot bind {addr}: {source}"),
            CrawlError::SocketOption { option, source } => write!(f, "cannot set {option}: {source}"),
            CrawlError::Config(m) => f.write_str(m),
            CrawlError::Storage(e) => e.fmt(f),
            CrawlError::Executor(m) => write!(f, "cannot start a crawl core: {m}"),
        }
    }
}

impl std::error::Error for CrawlError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CrawlError::Bind { source, .. } | CrawlError::SocketOption { source, .. } => Some(source),
            CrawlError::Storage(e) => Some(e),
            _ => None,
        }
    }
}

impl From<StorageError> for CrawlError {
    fn from(e: StorageError) -> Self {
        CrawlError::Storage(e)
    }
}
