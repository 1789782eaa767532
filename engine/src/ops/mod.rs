//! Operating a long-running crawl: the figures it exposes (snapshot), the
//! Prometheus endpoint (metrics) and the live status line (status), its
//! configuration file (config), the process limits it checks (limits) and
//! where its memory goes (memory).
//!
//! Must not make protocol decisions or touch a crawl core's state: the crawl
//! runtime hands out [`snapshot::CrawlSnapshot`]s and everything here reads them.

pub mod config;
pub mod error;
pub mod limits;
pub mod memory;
pub mod metrics;
pub mod snapshot;
pub mod status;

pub use error::OpsError;
pub use snapshot::{CoreSnapshot, CrawlSnapshot, FetchSnapshot, MemoryBreakdown, StorageSnapshot};
