//! How to run a crawl: everything [`super::Crawler::start`] takes. Plain data,
//! no I/O.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use trawl_storage::{StoreOptions, WriterHandle, WriterOptions};

use crate::crawl::CrawlConfig;
use crate::runtime::fetch::FetchConfig;

/// Requested receive buffer per socket (mldht advises 2 MB or more). Without
/// CAP_NET_ADMIN the kernel caps it at `net.core.rmem_max`; memory is only
/// used while datagrams wait in it.
pub const DEFAULT_RECV_BUFFER: usize = 16 << 20;

#[derive(Clone, Debug)]
pub struct CrawlerOptions {
    /// The database directory (created if missing); unused with `sink`.
    pub db: PathBuf,
    /// Send the findings to this channel instead of a database (see
    /// `trawl_storage::channel`): no RocksDB is opened, so there is no
    /// dedup against earlier runs (only each core's own), no warm restart and
    /// no metadata fetch (`fetch` must be off). Backpressure is the same: a
    /// full channel pauses sampling.
    pub sink: Option<WriterHandle>,
    pub store: StoreOptions,
    pub writer: WriterOptions,
    /// UDP port shared by every core's socket; 0 picks a free one.
    pub port: u16,
    pub bind_v4: Ipv4Addr,
    /// Also crawl over IPv6 (a second socket per core); if IPv6 is unavailable
    /// the crawl warns and goes on with IPv4.
    pub ipv6: bool,
    pub bind_v6: Ipv6Addr,
    /// Executors (one per core); 0 means every online CPU.
    pub cores: usize,
    /// Pin executor `i` to CPU `i`.
    pub pin: bool,
    pub recv_buffer: usize,
    pub bootstrap: Vec<SocketAddr>,
    pub read_only: bool,
    pub allow_loopback: bool,
    /// Run the metadata fetcher on each core (once it is built).
    pub fetch: bool,
    pub fetch_concurrency: usize,
    /// The fetcher's other settings (`concurrency` comes from `fetch_concurrency`).
    pub fetch_config: FetchConfig,
    /// Tuning for every core's scheduler; `core`, `cores`, `node_id`, `seed`,
    /// `bootstrap`, `read_only` and `allow_loopback` are filled in per core.
    pub crawl: CrawlConfig,
    /// How often good nodes are saved for a warm restart (also at shutdown).
    pub save_nodes_every: Duration,
    /// Discoveries are sent to the writer at least this often, or sooner when
    /// a batch reaches `storage_batch_items`.
    pub storage_batch_every: Duration,
    pub storage_batch_items: usize,
    /// Seed for node ids and scheduler RNGs; `None` draws one (a fresh id per run).
    pub seed: Option<u64>,
}

impl Default for CrawlerOptions {
    fn default() -> Self {
        CrawlerOptions {
            db: PathBuf::new(),
            sink: None,
            store: StoreOptions::default(),
            writer: WriterOptions::default(),
            port: 6881,
            bind_v4: Ipv4Addr::UNSPECIFIED,
            ipv6: true,
            bind_v6: Ipv6Addr::UNSPECIFIED,
            cores: 0,
            pin: true,
            recv_buffer: DEFAULT_RECV_BUFFER,
            bootstrap: Vec::new(),
            read_only: true,
            allow_loopback: false,
            fetch: true,
            fetch_concurrency: FetchConfig::default().concurrency,
            fetch_config: FetchConfig::default(),
            crawl: CrawlConfig::default(),
            save_nodes_every: Duration::from_secs(60),
            storage_batch_every: Duration::from_millis(50),
            storage_batch_items: 4096,
            seed: None,
        }
    }
}
