//! The operations layer's error type: what can go wrong serving metrics,
//! reading a configuration file or checking the process's limits. Each variant
//! renders as one line that names the thing at fault and, where there is one,
//! the fix.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug)]
pub enum OpsError {
    /// The metrics listener could not be bound (port in use, address not local).
    MetricsBind { addr: SocketAddr, source: io::Error },
    /// The configuration file could not be read.
    ConfigRead { path: PathBuf, source: io::Error },
    /// The configuration file is not valid TOML, has an unknown key or a bad
    /// value; `message` names the key.
    ConfigInvalid { path: PathBuf, message: String },
    /// A process limit is below what the crawl needs; `message` says how to raise it.
    Limit { message: String },
}

impl fmt::Display for OpsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpsError::MetricsBind { addr, source } => write!(f, "cannot serve metrics on {addr}: {source}"),
            OpsError::ConfigRead { path, source } => write!(f, "cannot read config {}: {source}", path.display()),
            OpsError::ConfigInvalid { path, message } => write!(f, "config {}: {message}", path.display()),
            OpsError::Limit { message } => f.write_str(message),
        }
    }
}

impl std::error::Error for OpsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            OpsError::MetricsBind { source, .. } | OpsError::ConfigRead { source, .. } => Some(source),
            _ => None,
        }
    }
}
