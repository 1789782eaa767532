//! trawl's read side: `trawl serve` over a trawl store.
//!
//! ```text
//!  crawl (primary) ──writes──▶ RocksDB store ◀──follows── Store::open_follower (secondary)
//!                               torrents, scrapes,            │ catch_up every 0.5 s
//!                               changes log                   ▼
//!                                                  Indexer ──▶ tantivy index (own dir)
//!                                                                 │
//!  HTTP (axum, own threads) ── /api/*, /torznab/api, pages ◀──────┘ searches
//!                          └── torrent pages and stats read the follower
//! ```
//!
//! Why a separate process following the crawl's database as a RocksDB
//! secondary, not the crawl serving itself: the server never runs on a crawl
//! core or in the crawl's address space (a slow query or a bug in the web
//! side cannot stall or crash a crawl), it works the same on a database no
//! crawl is writing, and it can be restarted on its own. The crawl pays one
//! small `changes` row per stored torrent and per stored torrent's new
//! scrape, which the indexer follows.
//!
//! Rooms: [`query`] parses and bounds what clients send; [`index`] owns the
//! tantivy schema and the follower; [`search`] ranks and pages; [`http`] is
//! the server with its JSON API; [`torznab`] and [`pages`] render the
//! Torznab feed and the web page; [`live`] keeps the crawl's rates.
//! Nothing here writes to the store.

pub mod http;
pub mod index;
pub mod live;
pub mod pages;
pub mod query;
pub mod search;
pub mod torznab;

use trawl_storage::StorageError;

pub use http::{serve, ServeOptions};
pub use index::{Indexer, SearchIndex};
pub use query::{BadRequest, SearchRequest};
pub use search::{Hit, Page, Searcher};

/// Everything that stops `trawl serve` or `trawl index`.
#[derive(Debug)]
pub enum ServeError {
    /// The store could not be opened or read.
    Store(StorageError),
    /// The search index could not be opened, written or read.
    Index(String),
    /// The listen address cannot be bound.
    Bind(String),
    /// A bad option (a non-loopback address without a token, say).
    Config(String),
}

impl std::fmt::Display for ServeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServeError::Store(e) => write!(f, "{e}"),
            ServeError::Index(e) => write!(f, "search index: {e}"),
            ServeError::Bind(e) => write!(f, "{e}"),
            ServeError::Config(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ServeError {}

impl From<StorageError> for ServeError {
    fn from(e: StorageError) -> Self {
        ServeError::Store(e)
    }
}
