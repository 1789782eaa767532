//! `trawl serve` and `trawl index` as a user runs them, beside a real crawl of
//! `trawl-swarm` on loopback:
//! - serve started on the database of a running crawl finds what the crawl
//!   fetches while it is still crawling;
//! - after kill -9 the index reopens and catches up with everything stored;
//! - SIGTERM stops it cleanly; `trawl index --rebuild` recreates the index;
//! - bad flags and a taken port get clear errors and their exit codes.

#[path = "../../engine/tests/crawl_common/mod.rs"]
mod crawl_common;
#[path = "../../serve/tests/common/mod.rs"]
mod serve_common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crawl_common::{free_port, SwarmChild};
use serve_common::{enc, get, Reply};
use trawl_storage::Store;

/// A child process killed and reaped on drop.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn trawl() -> Command {
    Command::new(env!("CARGO_BIN_EXE_trawl"))
}

fn start_serve(db: &Path, port: u16) -> Killed {
    let child = trawl()
        .args(["serve", "--db"])
        .arg(db)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Killed(child)
}

/// Polls until `ok` holds or `within` passes; the last reply either way.
fn poll(addr: SocketAddr, path: &str, within: Duration, ok: impl Fn(&Reply) -> bool) -> Option<Reply> {
    let end = Instant::now() + within;
    let mut last = None;
    while Instant::now() < end {
        if std::net::TcpStream::connect(addr).is_ok() {
            let r = get(addr, path, &[]);
            if ok(&r) {
                return Some(r);
            }
            last = Some(r);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    last
}

fn total(r: &Reply) -> u64 {
    r.json()["total"].as_u64().unwrap_or(0)
}

#[test]
fn serve_follows_a_running_crawl_survives_kill_9_and_rebuilds() {
    let dir = tempfile::tempdir().unwrap();
    let swarm = SwarmChild::start(&dir.path().join("manifest.json"), 2_000, 10_000, 4);
    let db = dir.path().join("db");
    let mut crawl = trawl();
    crawl
        .arg("crawl")
        .arg("--db")
        .arg(&db)
        .args([
            "--port",
            &free_port().to_string(),
            "--cores",
            "1",
            "--no-pin",
            "--no-ipv6",
        ])
        .args(["--duration", "40", "--allow-loopback", "--fetch-concurrency", "16"])
        .args(["--resample-secs", "1", "--empty-backoff-secs", "1", "--walk-secs", "5"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for i in 0..4 {
        crawl.args(["--bootstrap", &swarm.node(i).to_string()]);
    }
    let mut crawl = Killed(crawl.spawn().unwrap());
    let deadline = Instant::now() + Duration::from_secs(20);
    while !db.join("CURRENT").exists() {
        assert!(Instant::now() < deadline, "the crawl never created its database");
        std::thread::sleep(Duration::from_millis(100));
    }

    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let serve = start_serve(&db, port);
    // Torrents the crawl fetches become searchable while it still runs.
    let r = poll(addr, "/api/search?limit=1", Duration::from_secs(30), |r| total(r) >= 20).expect("serve answered");
    assert!(total(&r) >= 20, "{}", r.body);
    assert!(crawl.0.try_wait().unwrap().is_none(), "the crawl is still running");
    let first_total = total(&r);
    let r = poll(addr, "/api/search?limit=1", Duration::from_secs(15), |r| {
        total(r) > first_total
    })
    .unwrap();
    assert!(total(&r) > first_total, "the index keeps following: {}", r.body);
    // A stored name is found by one of its words.
    let name = r.json()["hits"][0]["name"].as_str().unwrap().to_owned();
    let word = name
        .split(|c: char| !c.is_alphanumeric())
        .find(|w| w.len() > 3)
        .unwrap_or(&name)
        .to_owned();
    let r = get(addr, &format!("/api/search?q={}&limit=100", enc(&word)), &[]);
    assert!(
        r.json()["hits"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["name"] == name.as_str()),
        "{word}: {}",
        r.body
    );

    // kill -9 mid-follow, then the crawl ends.
    let mut serve = serve;
    serve.0.kill().unwrap();
    serve.0.wait().unwrap();
    assert!(crawl.0.wait().unwrap().success());
    let stored = Store::open_read_only(&db).unwrap().stats().unwrap().torrents;
    assert!(stored > first_total);

    // The index reopens after the kill and catches up with every stored torrent.
    let mut serve = start_serve(&db, port);
    let r = poll(addr, "/api/search?limit=1", Duration::from_secs(30), |r| {
        total(r) == stored
    });
    assert_eq!(r.map(|r| total(&r)), Some(stored));
    // SIGTERM: a clean stop, exit 0.
    unsafe {
        libc::kill(serve.0.id() as i32, libc::SIGTERM);
    }
    let status = serve.0.wait().unwrap();
    assert!(status.success(), "{status:?}");

    // trawl index --rebuild: the same documents, from the store.
    let out = trawl().args(["index", "--rebuild", "--db"]).arg(&db).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains(&format!("indexed {stored} torrents")), "{err}");
    let _serve = start_serve(&db, port);
    let r = poll(addr, "/api/search?limit=1", Duration::from_secs(20), |r| {
        total(r) == stored
    });
    assert_eq!(r.map(|r| total(&r)), Some(stored));
    drop(swarm);
}

#[test]
fn bad_serve_flags_get_clear_errors_and_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    drop(Store::open(&db, &trawl_storage::StoreOptions::default()).unwrap());
    let run = |args: &[&str]| {
        let out = trawl().args(args).output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let missing = dir.path().join("missing");
    let (code, err) = run(&["serve", "--db", missing.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("missing"), "{err}");
    let (code, err) = run(&["serve", "--db", db.to_str().unwrap(), "--listen", "0.0.0.0:0"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--token"), "{err}");
    let (code, err) = run(&["serve", "--db", db.to_str().unwrap(), "--listen", "nowhere"]);
    assert_eq!(code, Some(2), "{err}");
    let (code, err) = run(&["index", "--db", db.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--rebuild"), "{err}");
    // A port already taken: exit 4.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let listen = taken.local_addr().unwrap().to_string();
    let (code, err) = run(&["serve", "--db", db.to_str().unwrap(), "--listen", &listen]);
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains("cannot listen"), "{err}");
}
