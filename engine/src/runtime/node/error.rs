//! The runtime's error type: what can go wrong starting, driving or talking to a
//! node's executor. Protocol errors never surface here; the core counts them.

use std::fmt;
use std::io;
use std::net::SocketAddr;

#[derive(Debug)]
pub enum RuntimeError {
    /// The UDP socket could not be created or bound (port in use, address not local).
    Bind { addr: SocketAddr, source: io::Error },
    /// A socket option could not be set.
    SocketOption { option: &'static str, source: io::Error },
    /// The glommio executor thread could not start (io_uring unavailable, bad CPU).
    Executor(String),
    /// The node's executor has stopped; the handle can no longer reach it.
    Stopped,
}

impl fmt::Display for RuntimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuntimeError::Bind { addr, source } => write!(f, "cannot bind UDP {addr}: {source}"),
            RuntimeError::SocketOption { option, source } => {
                write!(f, "cannot set socket option {option}: {source}")
            }
            RuntimeError::Executor(msg) => write!(f, "cannot start the node's executor: {msg}"),
            RuntimeError::Stopped => f.write_str("the node has stopped"),
        }
    }
}

impl std::error::Error for RuntimeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RuntimeError::Bind { source, .. } | RuntimeError::SocketOption { source, .. } => Some(source),
            _ => None,
        }
    }
}
