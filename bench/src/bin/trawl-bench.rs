//! `trawl-bench`: macro benchmarks. Each subcommand prints per-case detail and,
//! as its last line, one JSON object that `bench/RESULTS.md` records.

use clap::{Parser, Subcommand};

// Counted, so `trawl-bench fetch` can report heap bytes per fetch in flight.
#[global_allocator]
static GLOBAL: trawl_engine::ops::memory::CountingAlloc<mimalloc::MiMalloc> =
    trawl_engine::ops::memory::CountingAlloc(mimalloc::MiMalloc);

#[derive(Parser)]
#[command(name = "trawl-bench", about = "trawl's macro benchmarks (loopback only)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Decode throughput: trawl's KRPC decoder against serde_bencode and bendy.
    Decode(trawl_bench::decode::Args),
    /// Storage ingest, dedup and export throughput, and bytes on disk.
    Storage(trawl_bench::storage::Args),
    /// One store grown to 100M infohashes and 10M torrents, measured at each milestone (resumable).
    Growth(trawl_bench::growth::Args),
    /// Answers per CPU-second: trawl, libtorrent and mainline nodes under one load.
    NodeAnswer(trawl_bench::node_answer::Args),
    /// Loopback ceiling, swarm capacity and a crawl against trawl-swarm.
    Crawl(trawl_bench::crawl::Args),
    /// Yield on the libtorrent-faithful swarm: shares of the discoverable infohashes and
    /// fetchable torrents one crawl stores per 1, 2 and 4 sampling intervals, bans.
    Yield(trawl_bench::crawl_yield::Args),
    /// What an answering crawl hears of other nodes' lookups (the swarm's virtual
    /// downloaders) and how much of it it stores, per number of node ids.
    Harvest(trawl_bench::harvest::Args),
    /// Metadata fetches per second against the swarm's TCP peers: trawl's fetcher vs the loadgen's.
    Fetch(trawl_bench::fetch::Args),
    /// `trawl crawl` under a bounded flood of hostile datagrams: throughput, RSS, amplification.
    Flood(trawl_bench::flood::Args),
    /// `trawl serve` over a million torrents: index build, query latency under 16 clients,
    /// and the crawl's datagrams/s with the server beside it (resumable with --dir).
    Serve(trawl_bench::serve::Args),
    /// A long bounded crawl of a churning swarm: RSS and fd slopes, first vs last minute.
    Soak(trawl_bench::soak::Args),
}

fn main() -> anyhow::Result<()> {
    GLOBAL.mark_installed();
    match Cli::parse().command {
        Command::Decode(args) => trawl_bench::decode::run(args),
        Command::Storage(args) => trawl_bench::storage::run(args),
        Command::Growth(args) => trawl_bench::growth::run(args),
        Command::NodeAnswer(args) => trawl_bench::node_answer::run(args),
        Command::Crawl(args) => trawl_bench::crawl::run(args),
        Command::Yield(args) => trawl_bench::crawl_yield::run(args),
        Command::Harvest(args) => trawl_bench::harvest::run(args),
        Command::Fetch(args) => trawl_bench::fetch::run(args),
        Command::Flood(args) => trawl_bench::flood::run(args),
        Command::Serve(args) => trawl_bench::serve::run(args),
        Command::Soak(args) => trawl_bench::soak::run(args),
    }
}
