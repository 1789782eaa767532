//! Operating a long-running crawl: the figures it exposes (snapshot), the
//! process limits it checks (limits) and where its memory goes (memory). The
//! `trawl` binary turns these into its Prometheus endpoint, status line and
//! configuration file; an embedder reads the same snapshots.
//!
//! Must not make protocol decisions or touch a crawl core's state: the crawl
//! runtime hands out [`snapshot::CrawlSnapshot`]s and everything here reads them.

pub mod error;
pub mod limits;
pub mod memory;
pub mod snapshot;

pub use error::OpsError;
pub use snapshot::{CoreSnapshot, CrawlSnapshot, FetchSnapshot, MemoryBreakdown, StorageSnapshot};
