//! The whole crawl path against real libtorrent 2.0 nodes with their default
//! DHT limits (scripts/lt_swarm.py, Debian's python3-libtorrent): from one
//! bootstrap address, `trawl crawl` samples the nodes (BEP 51), asks a plain
//! `get_peers` for each new hash (libtorrent answers a scrape with bloom
//! filters only), dials the seeding nodes and stores info dicts that are
//! byte-identical to the ones libtorrent created (a hybrid found by its
//! truncated v2 hash is verified by SHA-256 and stored under its v1 hash, a
//! v2-only torrent under its truncated SHA-256 hash, after a SHA-256 check;
//! a seeder of several hashes is dialled once a per-IP slot frees, not
//! counted as a failure). No node bans the crawler,
//! and the export holds every stored torrent. Bounded in time: the network
//! stops when the test ends, however it ends.

#[path = "../../engine/tests/crawl_common/mod.rs"]
mod crawl_common;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use trawl_storage::export::{export, Filter, Format};
use trawl_storage::{InfoHash, Source, Store};

const TRAWL: &str = env!("CARGO_BIN_EXE_trawl");
const NODES: usize = 10;
const TORRENTS_PER_NODE: usize = 2;

/// A child process killed (if still running) when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Torrent {
    info_hash: InfoHash,
    /// The first 20 bytes of the SHA-256 hash of a hybrid (announced too).
    truncated_v2: Option<InfoHash>,
    name: String,
    version: String,
    info_dict: Vec<u8>,
    /// The libtorrent node that seeds it (`ip:port`).
    node: String,
}

fn unhex(s: &str) -> InfoHash {
    let mut h = [0u8; 20];
    for (i, b) in h.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
    }
    h
}

/// Starts the libtorrent network on `base_ip` and up; its JSON lines arrive on the receiver.
fn lt_swarm(dir: &std::path::Path, base_ip: &str, extra: &[&str]) -> (Proc, Receiver<serde_json::Value>) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/lt_swarm.py");
    let mut child = Command::new("/usr/bin/python3")
        .arg(script)
        .args(["--nodes", &NODES.to_string()])
        .args(["--torrents-per-node", &TORRENTS_PER_NODE.to_string()])
        .args(["--base-ip", base_ip, "--duration", "240", "--stdin-eof", "--dir"])
        .arg(dir)
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run /usr/bin/python3 scripts/lt_swarm.py (needs python3-libtorrent)");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = crossbeam_channel::unbounded();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let v = serde_json::from_str::<serde_json::Value>(&line)
                .unwrap_or_else(|e| panic!("lt_swarm.py printed a line that is not JSON ({e}): {line}"));
            if tx.send(v).is_err() {
                break;
            }
        }
    });
    (Proc(child), rx)
}

/// The next line whose `event` is `event`, within `timeout`; the ones before
/// it go to `seen`.
fn wait_event(
    rx: &Receiver<serde_json::Value>,
    event: &str,
    timeout: Duration,
    seen: &mut Vec<serde_json::Value>,
) -> serde_json::Value {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let v = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no {event} from lt_swarm.py within {timeout:?}; saw {seen:?}"));
        if v["event"] == event {
            return v;
        }
        assert_ne!(v["event"], "error", "lt_swarm.py: {v}");
        seen.push(v);
    }
}

/// Stored info dicts of `want` in the form they were kept, read from a
/// read-only view of the live store.
fn stored_info_dicts(db: &std::path::Path, want: &[InfoHash]) -> HashMap<InfoHash, Vec<u8>> {
    let Ok(store) = Store::open_read_only(db) else {
        return HashMap::new();
    };
    want.iter()
        .filter_map(|h| Some((*h, store.kept_info_dict(h).ok()??.bytes().to_vec())))
        .collect()
}

/// The first node of the network's `ready` line: the crawl's one bootstrap address.
fn first_node(ready: &serde_json::Value) -> String {
    ready["nodes"][0]
        .as_str()
        .expect("a node in the ready line")
        .to_string()
}

fn parse_torrents(list: &serde_json::Value) -> Vec<Torrent> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|t| Torrent {
            info_hash: unhex(t["info_hash"].as_str().unwrap()),
            truncated_v2: t["info_hash_v2"].as_str().map(unhex),
            name: t["name"].as_str().unwrap().to_string(),
            version: t["version"].as_str().unwrap().to_string(),
            info_dict: std::fs::read(t["info_file"].as_str().unwrap()).unwrap(),
            node: t["node"].as_str().unwrap_or_default().to_string(),
        })
        .collect()
}

/// `trawl crawl` on two cores from `bootstrap` into `db` for at most 150 s,
/// with `extra` flags; its stderr is collected by the returned thread.
fn spawn_crawl(db: &std::path::Path, bootstrap: &str, extra: &[&str]) -> (Proc, std::thread::JoinHandle<String>) {
    let mut crawl = Command::new(TRAWL);
    crawl.arg("crawl");
    if !extra.contains(&"--port") {
        crawl.args(["--port", "0"]);
    }
    if !extra.contains(&"--duration") {
        crawl.args(["--duration", "150"]);
    }
    // Whole dicts (so they compare byte for byte with libtorrent's and export
    // as .torrent files) unless the test asks for another mode.
    if !extra.contains(&"--info-dicts") {
        crawl.args(["--info-dicts", "full"]);
    }
    crawl
        .args(["--cores", "2", "--no-pin", "--no-ipv6", "--allow-loopback"])
        .args(["--bootstrap", bootstrap, "--log-every", "5"])
        .args(extra)
        .arg("--db")
        .arg(db)
        .env(
            "RUST_LOG",
            std::env::var("TRAWL_TEST_LOG").unwrap_or_else(|_| "info".into()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut crawl = Proc(crawl.spawn().unwrap());
    let mut stderr = crawl.0.stderr.take().unwrap();
    let log = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    (crawl, log)
}

/// SIGINT: the crawl flushes, prints its summary and exits 0. Returns the
/// summary and the log.
fn stop_crawl(mut crawl: Proc, log: std::thread::JoinHandle<String>) -> (serde_json::Value, String) {
    // SAFETY: kill(2) on the pid of a child we own and have not reaped.
    assert_eq!(unsafe { libc::kill(crawl.0.id() as i32, libc::SIGINT) }, 0);
    let mut out = String::new();
    crawl.0.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    let status = crawl.0.wait().unwrap();
    let log = log.join().unwrap();
    assert!(status.success(), "trawl crawl failed ({status}):\n{log}");
    let summary = serde_json::from_str(out.lines().last().expect("a summary line"))
        .unwrap_or_else(|e| panic!("summary is not JSON ({e}): {out}"));
    (summary, log)
}

/// Polls the store until every one of `want` has an info dict, the crawl exits
/// (a failure) or `limit` passes; returns the dicts found.
fn wait_for_dicts(
    crawl: &mut Proc,
    db: &std::path::Path,
    want: &[InfoHash],
    limit: Duration,
) -> HashMap<InfoHash, Vec<u8>> {
    let started = Instant::now();
    let mut fetched = HashMap::new();
    while started.elapsed() < limit {
        std::thread::sleep(Duration::from_secs(2));
        fetched = stored_info_dicts(db, want);
        if fetched.len() == want.len() {
            break;
        }
        assert!(crawl.0.try_wait().unwrap().is_none(), "trawl crawl exited early");
    }
    fetched
}

/// The libtorrent network's bans, from its lines up to its counters at exit.
fn bans_at_exit(
    mut swarm: Proc,
    lines: &Receiver<serde_json::Value>,
    seen: &mut Vec<serde_json::Value>,
) -> Vec<serde_json::Value> {
    drop(swarm.0.stdin.take());
    wait_event(lines, "counters", Duration::from_secs(20), seen);
    seen.iter().filter(|v| v["event"] == "ban").cloned().collect()
}

#[test]
fn a_crawl_from_one_libtorrent_node_stores_the_torrents_libtorrent_nodes_seed() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let lt_dir = dir.path().join("lt");
    let db = dir.path().join("db");
    let (swarm, lines) = lt_swarm(&lt_dir, "127.93.0.1", &[]);
    let mut seen = Vec::new();
    let ready = wait_event(&lines, "ready", Duration::from_secs(60), &mut seen);
    let bootstrap = first_node(&ready);
    let torrents = parse_torrents(&ready["torrents"]);
    assert_eq!(torrents.len(), NODES * TORRENTS_PER_NODE);
    for v in ["v1", "hybrid", "v2"] {
        assert!(torrents.iter().any(|t| t.version == v), "no {v} torrent seeded");
    }
    // The torrents are on the DHT once enough nodes hold each announce.
    wait_event(&lines, "announced_all", Duration::from_secs(90), &mut seen);

    let (mut crawl, log) = spawn_crawl(&db, &bootstrap, &[]);
    let v1: Vec<InfoHash> = torrents.iter().map(|t| t.info_hash).collect();
    let crawl_started = Instant::now();
    let fetched = wait_for_dicts(&mut crawl, &db, &v1, Duration::from_secs(120));
    let crawl_secs = crawl_started.elapsed().as_secs_f64();
    let (summary, log) = stop_crawl(crawl, log);

    // The network's own account: bans and dropped messages.
    let bans = bans_at_exit(swarm, &lines, &mut seen);
    eprintln!(
        "crawl_libtorrent: {} of {} torrents in {crawl_secs:.1} s (whole test {:.1} s); summary {summary}",
        fetched.len(),
        torrents.len(),
        started.elapsed().as_secs_f64(),
    );

    assert!(bans.is_empty(), "libtorrent banned the crawler: {bans:?}");
    // At least 90% of the seeded torrents, each byte for byte as created.
    assert!(
        fetched.len() * 10 >= torrents.len() * 9,
        "{} of {} torrents stored; summary {summary}\n{log}",
        fetched.len(),
        torrents.len()
    );
    for t in &torrents {
        if let Some(dict) = fetched.get(&t.info_hash) {
            assert!(
                *dict == t.info_dict,
                "{} ({}) differs from libtorrent's",
                t.name,
                t.version
            );
        }
    }
    // Peers came from plain get_peers; the scrapes went out apart from them.
    assert!(summary["peers_found"].as_u64().unwrap() > 0, "{summary}");
    assert!(summary["scrapes_sent"].as_u64().unwrap() > 0, "{summary}");
    assert!(
        summary["metadata_ok"].as_u64().unwrap() >= fetched.len() as u64,
        "{summary}"
    );

    // The export holds each stored torrent with its name.
    let store = Store::open_read_only(&db).unwrap();
    let mut jsonl = Vec::new();
    export(&store, Format::Jsonl, &Filter::default(), &mut jsonl).unwrap();
    let exported: HashMap<String, serde_json::Value> = String::from_utf8(jsonl)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (v["info_hash"].as_str().unwrap().to_string(), v)
        })
        .collect();
    for t in torrents.iter().filter(|t| fetched.contains_key(&t.info_hash)) {
        let row = &exported[&crawl_common::hex(&t.info_hash)];
        assert_eq!(row["name"].as_str(), Some(t.name.as_str()), "{row}");
        assert_eq!(row["version"].as_str(), Some(t.version.as_str()), "{row}");
    }
    // v2-only torrents, named by their truncated SHA-256 hash, verified by SHA-256.
    let v2_fetched = torrents
        .iter()
        .filter(|t| t.version == "v2" && fetched.contains_key(&t.info_hash))
        .count();
    assert!(v2_fetched > 0, "no v2-only torrent fetched");
    // The .torrent export of every version loads in libtorrent with the same
    // hashes. Piece layers are not in BEP 9; libtorrent accepts v2 files
    // without them and asks peers for the hashes (BEP 52).
    let out = dir.path().join("torrents");
    let status = Command::new(TRAWL)
        .args(["export", "-f", "torrents", "--db"])
        .arg(&db)
        .arg("-o")
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    for v in ["v1", "hybrid", "v2"] {
        let Some(t) = torrents
            .iter()
            .find(|t| t.version == v && fetched.contains_key(&t.info_hash))
        else {
            continue;
        };
        let hex = crawl_common::hex(&t.info_hash);
        let file = out.join(&hex[..2]).join(&hex[2..4]).join(format!("{hex}.torrent"));
        let check = "import sys, libtorrent as lt\n\
            ti = lt.torrent_info(sys.argv[1]); h = ti.info_hashes()\n\
            print((h.v1.to_bytes().hex() if h.has_v1() else '') + ' ' + (h.v2.to_bytes().hex()[:40] if h.has_v2() else ''))";
        let loaded = Command::new("/usr/bin/python3")
            .args(["-c", check])
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            loaded.status.success(),
            "libtorrent refused {v} {}: {}",
            file.display(),
            String::from_utf8_lossy(&loaded.stderr)
        );
        let printed = String::from_utf8(loaded.stdout).unwrap();
        let (v1, v2) = printed.trim_end_matches('\n').split_once(' ').unwrap();
        match v {
            "v1" => assert_eq!((v1, v2), (hex.as_str(), "")),
            "hybrid" => assert_eq!(
                (v1, v2),
                (hex.as_str(), crawl_common::hex(&t.truncated_v2.unwrap()).as_str())
            ),
            _ => assert_eq!((v1, v2), ("", hex.as_str())),
        }
    }
    // A hybrid's truncated v2 hash is announced too; the crawl discovers it.
    let discovered: HashSet<String> = crawl_common::stored_hashes(&db);
    let v2_found = torrents
        .iter()
        .filter_map(|t| t.truncated_v2)
        .filter(|h| discovered.contains(&crawl_common::hex(h)))
        .count();
    eprintln!("crawl_libtorrent: {v2_found} truncated v2 hashes discovered");
    assert!(v2_found > 0, "no hybrid's v2 hash was sampled");
}

/// Torrents seeded only after the crawl sampled every node: libtorrent asks
/// for six hours between samples, so the crawl can learn them only by answering:
/// the `get_peers` lookups and `announce_peer`s of their announces reach it,
/// and the announcer is the peer it fetches from.
#[test]
fn an_answering_crawl_harvests_torrents_announced_after_it_started() {
    const LATE: usize = 4;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let (mut swarm, lines) = lt_swarm(&dir.path().join("lt"), "127.94.0.1", &["--late", &LATE.to_string()]);
    let mut seen = Vec::new();
    let ready = wait_event(&lines, "ready", Duration::from_secs(60), &mut seen);
    let bootstrap = first_node(&ready);
    wait_event(&lines, "announced_all", Duration::from_secs(90), &mut seen);
    let port = crawl_common::free_port().to_string();
    let (mut crawl, log) = spawn_crawl(
        &db,
        &bootstrap,
        // The default mode for crawls that index: the dicts without pieces.
        &[
            "--no-read-only",
            "--port",
            &port,
            "--duration",
            "240",
            "--info-dicts",
            "files",
        ],
    );
    let crawler = format!("127.0.0.1:{port}");
    // Once the crawl has fetched a first torrent it has queried the nodes,
    // which took it into their routing tables (it is not read-only).
    let first: Vec<InfoHash> = parse_torrents(&ready["torrents"]).iter().map(|t| t.info_hash).collect();
    let early = wait_for_dicts(&mut crawl, &db, &first, Duration::from_secs(60));
    assert!(!early.is_empty(), "nothing fetched before the late torrents");
    use std::io::Write;
    swarm.0.stdin.as_mut().unwrap().write_all(b"seed-late\n").unwrap();
    swarm.0.stdin.as_mut().unwrap().flush().unwrap();
    let late = parse_torrents(&wait_event(&lines, "late_seeded", Duration::from_secs(20), &mut seen)["torrents"]);
    assert_eq!(late.len(), LATE);
    let want: Vec<InfoHash> = late.iter().map(|t| t.info_hash).collect();
    let fetched = wait_for_dicts(&mut crawl, &db, &want, Duration::from_secs(120));
    // The crawler answers get_peers for the late torrents with the peers that
    // announced them to it: asked directly from many source ports (each lands
    // on one core, whose peer store holds what was announced to that core),
    // and through `trawl lookup` bootstrapped from the crawler alone.
    let seeders: HashSet<std::net::IpAddr> = late
        .iter()
        .map(|t| t.node.parse::<std::net::SocketAddr>().unwrap().ip())
        .collect();
    let from_crawler = peers_from(&crawler.parse().unwrap(), &want);
    let lookup_peers: HashSet<std::net::IpAddr> = want
        .iter()
        .flat_map(|h| trawl_lookup(&crawler, h))
        .map(|a| a.ip())
        .collect();
    let (summary, log) = stop_crawl(crawl, log);
    let bans = bans_at_exit(swarm, &lines, &mut seen);
    assert!(
        from_crawler.iter().any(|ip| seeders.contains(ip)),
        "the crawler gave none of the late seeders {seeders:?} for their torrents: {from_crawler:?}\n{log}"
    );
    assert!(
        lookup_peers.iter().any(|ip| seeders.contains(ip)),
        "trawl lookup from the crawler found none of the late seeders {seeders:?}: {lookup_peers:?}"
    );
    eprintln!(
        "crawl_libtorrent harvest: {} of {LATE} late torrents; peers from the crawler {from_crawler:?}; summary {summary}",
        fetched.len()
    );
    assert!(bans.is_empty(), "libtorrent banned the crawler: {bans:?}");
    assert!(
        fetched.len() * 4 >= LATE * 3,
        "{} of {LATE} late torrents stored; summary {summary}\n{log}",
        fetched.len()
    );
    let store = Store::open_read_only(&db).unwrap();
    for t in late.iter().filter(|t| fetched.contains_key(&t.info_hash)) {
        // libtorrent's dict with its piece hashes (and v2 pieces roots) cut.
        let mut cut = Vec::new();
        trawl_storage::keep::without_pieces(&t.info_dict, &mut cut).unwrap();
        assert!(
            fetched[&t.info_hash] == cut,
            "{}: the kept files form differs from libtorrent's dict without its pieces",
            t.name
        );
        assert!(
            cut.len() < t.info_dict.len() && !cut.windows(8).any(|w| w == b"6:pieces"),
            "{}: pieces kept",
            t.name
        );
        assert!(
            store.info_dict(&t.info_hash).unwrap().is_none(),
            "{}: a whole dict kept in files mode",
            t.name
        );
        let sources = store
            .infohash(&t.info_hash)
            .unwrap()
            .expect("the hash is stored")
            .sources;
        assert!(
            sources.contains(Source::GetPeers) || sources.contains(Source::Announce),
            "{} was not harvested: {:?}",
            t.name,
            sources.iter().collect::<Vec<_>>()
        );
        assert!(!sources.contains(Source::Sample), "{} came from a sample", t.name);
    }
    assert!(summary["queries_answered"].as_u64().unwrap() > 0, "{summary}");
    assert!(summary["announced_peers"].as_u64().unwrap() > 0, "{summary}");
}

/// `trawl import` of hashes that no sample shows (every libtorrent node
/// answers `sample_infohashes` with no samples), then a crawl: the fetcher has
/// no peers for them, asks its core for a `get_peers` lookup, and the peers
/// the libtorrent nodes hold from the announces lead to the metadata.
#[test]
fn imported_hashes_that_no_sample_shows_are_looked_up_and_fetched() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let (swarm, lines) = lt_swarm(&dir.path().join("lt"), "127.95.0.1", &["--no-samples"]);
    let mut seen = Vec::new();
    let ready = wait_event(&lines, "ready", Duration::from_secs(60), &mut seen);
    let bootstrap = first_node(&ready);
    let torrents = parse_torrents(&ready["torrents"]);
    wait_event(&lines, "announced_all", Duration::from_secs(90), &mut seen);
    let list = dir.path().join("hashes.txt");
    let hex: String = torrents
        .iter()
        .map(|t| crawl_common::hex(&t.info_hash) + "\n")
        .collect();
    std::fs::write(&list, hex).unwrap();
    let import = Command::new(TRAWL)
        .arg("import")
        .arg("--db")
        .arg(&db)
        .arg(&list)
        .output()
        .unwrap();
    assert!(import.status.success(), "{}", String::from_utf8_lossy(&import.stderr));

    let (mut crawl, log) = spawn_crawl(&db, &bootstrap, &[]);
    let want: Vec<InfoHash> = torrents.iter().map(|t| t.info_hash).collect();
    let fetched = wait_for_dicts(&mut crawl, &db, &want, Duration::from_secs(90));
    let (summary, log) = stop_crawl(crawl, log);
    let bans = bans_at_exit(swarm, &lines, &mut seen);
    eprintln!(
        "crawl_libtorrent import: {} of {} imported torrents; summary {summary}",
        fetched.len(),
        want.len()
    );
    assert!(bans.is_empty(), "libtorrent banned the crawler: {bans:?}");
    assert_eq!(
        summary["new_hashes"].as_u64(),
        Some(0),
        "a sample showed something: {summary}"
    );
    assert!(
        fetched.len() * 10 >= want.len() * 9,
        "{} of {} imported torrents stored; summary {summary}\n{log}",
        fetched.len(),
        want.len()
    );
    for t in torrents.iter().filter(|t| fetched.contains_key(&t.info_hash)) {
        assert!(
            fetched[&t.info_hash] == t.info_dict,
            "{} differs from libtorrent's",
            t.name
        );
    }
    assert!(summary["lookups_started"].as_u64().unwrap() > 0, "{summary}");
}

/// The `values` a node at `to` gives for each of `hashes`, asked with plain
/// `get_peers` from 16 sockets on addresses of their own (so from every core of
/// a crawler behind one SO_REUSEPORT port, and under its per-IP answer limit).
fn peers_from(to: &std::net::SocketAddr, hashes: &[InfoHash]) -> HashSet<std::net::IpAddr> {
    use trawl_engine::codec::krpc::{self, Kind, Message, Query, Want};
    let mut found = HashSet::new();
    for i in 0..16u8 {
        let sock = std::net::UdpSocket::bind(("127.96.0.".to_string() + &(i + 1).to_string(), 0)).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
        let id = [i.wrapping_mul(37) ^ 0x5a; 20];
        for (n, h) in hashes.iter().enumerate() {
            let mut q = Vec::new();
            let query = Query::GetPeers {
                id: &id,
                info_hash: h,
                want: Want::default(),
                scrape: false,
                noseed: false,
            };
            krpc::encode_query(&mut q, &[b'g', n as u8], &query, false, None);
            sock.send_to(&q, to).unwrap();
            let mut buf = [0u8; 1500];
            // A verification ping may come first; answer nothing, read on.
            for _ in 0..3 {
                let Ok((len, _)) = sock.recv_from(&mut buf) else { break };
                if let Ok(Message {
                    kind: Kind::Response(r),
                    ..
                }) = Message::decode(&buf[..len])
                {
                    found.extend(r.values.map(|a| a.ip()));
                    break;
                }
            }
        }
    }
    found
}

/// The peers `trawl lookup` prints for `hash`, bootstrapped from `bootstrap` only.
fn trawl_lookup(bootstrap: &str, hash: &InfoHash) -> Vec<std::net::SocketAddr> {
    let out = Command::new(TRAWL)
        .args([
            "lookup",
            "--allow-loopback",
            "--bootstrap",
            bootstrap,
            "--timeout",
            "15",
        ])
        .arg(crawl_common::hex(hash))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "trawl lookup: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}
