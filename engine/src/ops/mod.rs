//! Operating a long-running crawl: the figures it exposes, and (as they are
//! built) its configuration file, logging and metrics endpoint.
//!
//! Must not make protocol decisions or touch a crawl core's state: the crawl
//! runtime hands out [`snapshot::CrawlSnapshot`]s and everything here reads them.

pub mod snapshot;

pub use snapshot::{CoreSnapshot, CrawlSnapshot, FetchSnapshot, StorageSnapshot};
