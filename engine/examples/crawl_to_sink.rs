//! Run the crawler with a sink of your own instead of RocksDB: the crawl's
//! cores fill `Batch`es (discoveries, peers, swarm sizes, names, nodes) and
//! send them down a bounded channel; this example keeps the distinct
//! infohashes in a set and prints them. A full channel pauses sampling, as a
//! busy database would.
//!
//! ```sh
//! # against a local swarm: cargo run --release -p trawl-swarm -- --nodes 2000 --torrents 2000
//! cargo run -p trawl-engine --example crawl_to_sink -- 127.1.0.1:36881 20
//! ```
//!
//! Without a database there is no dedup against earlier runs, no warm restart
//! and no metadata fetch (the fetch queue lives in the database).

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use trawl_engine::runtime::crawl::{CrawlError, Crawler, CrawlerOptions};
use trawl_storage::{channel, InfoHash};

#[derive(Debug)]
enum Error {
    Usage,
    BadAddress(String),
    BadSeconds(String),
    Crawl(CrawlError),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage => write!(f, "usage: crawl_to_sink BOOTSTRAP_IP:PORT SECONDS"),
            Error::BadAddress(a) => write!(f, "bad address {a:?}: expected IP:PORT"),
            Error::BadSeconds(s) => write!(f, "bad duration {s:?}: expected whole seconds, 1 or more"),
            Error::Crawl(err) => write!(f, "crawl: {err}"),
        }
    }
}

fn parse_args(args: &[String]) -> Result<(SocketAddr, Duration), Error> {
    let [addr, secs] = args else { return Err(Error::Usage) };
    let addr = addr.parse().map_err(|_| Error::BadAddress(addr.clone()))?;
    match secs.parse::<u64>() {
        Ok(n) if n > 0 => Ok((addr, Duration::from_secs(n))),
        _ => Err(Error::BadSeconds(secs.clone())),
    }
}

/// Crawls from `bootstrap` for `duration` into our own set.
fn crawl(bootstrap: SocketAddr, duration: Duration) -> Result<HashSet<InfoHash>, Error> {
    let (sink, batches) = channel(64);
    let crawler = Crawler::start(CrawlerOptions {
        sink: Some(sink),
        port: 0,
        cores: 1,
        pin: false,
        bootstrap: vec![bootstrap],
        // Only for a test network on 127.0.0.0/8; a real crawl leaves it off.
        allow_loopback: bootstrap.ip().is_loopback(),
        fetch: false,
        ..CrawlerOptions::default()
    })
    .map_err(Error::Crawl)?;
    let mut found = HashSet::new();
    let deadline = Instant::now() + duration;
    while Instant::now() < deadline {
        if let Some(batch) = batches.recv_timeout(Duration::from_millis(100)) {
            found.extend(batch.discoveries.iter().map(|d| d.info_hash));
        }
    }
    crawler.shutdown();
    // The crawl's last batches, handed over at shutdown.
    for batch in batches {
        found.extend(batch.discoveries.iter().map(|d| d.info_hash));
    }
    Ok(found)
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match parse_args(&args).and_then(|(addr, secs)| crawl(addr, secs)) {
        Ok(found) => {
            for h in &found {
                println!("{}", h.iter().map(|b| format!("{b:02x}")).collect::<String>());
            }
            eprintln!("{} distinct infohashes", found.len());
            std::process::ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("crawl_to_sink: {err}");
            std::process::ExitCode::from(2)
        }
    }
}

#[cfg(test)]
#[path = "support/swarm.rs"]
mod swarm;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crawl_into_a_set_finds_swarm_torrents_only() {
        let running = swarm::start(60);
        let s = running.swarm.clone();
        let found = crawl(swarm::bootstrap(&running), Duration::from_secs(8)).unwrap();
        running.stop();
        let c = running.wait().unwrap().counters;
        assert!(
            found.iter().all(|h| s.catalogue.find(h).is_some()),
            "only catalogue torrents"
        );
        let reachable = (0..2_000).filter(|&t| s.reachable(t)).count();
        assert!(
            found.len() * 2 >= reachable,
            "{} of {reachable} reachable found",
            found.len()
        );
        assert_eq!(c.politeness_violations(), 0, "the sink changes nothing about pacing");
    }

    #[test]
    fn a_sink_crawl_refuses_to_fetch_and_bad_input_is_typed() {
        let (sink, _batches) = channel(4);
        let err = Crawler::start(CrawlerOptions {
            sink: Some(sink),
            fetch: true,
            allow_loopback: true,
            ..CrawlerOptions::default()
        })
        .err()
        .expect("fetch needs the database");
        assert!(matches!(err, CrawlError::Config(_)), "{err}");
        let args = |l: &[&str]| parse_args(&l.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert!(matches!(args(&[]), Err(Error::Usage)));
        assert!(matches!(args(&["x:1", "5"]), Err(Error::BadAddress(_))));
        assert!(matches!(args(&["127.0.0.1:9", "0"]), Err(Error::BadSeconds(_))));
        assert!(matches!(args(&["127.0.0.1:9", "-1"]), Err(Error::BadSeconds(_))));
    }
}
