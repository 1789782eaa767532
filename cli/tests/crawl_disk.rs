//! `trawl crawl --max-disk` and a full disk, end to end on loopback against
//! `trawl-swarm`:
//! - a budget the crawl reaches: each step is logged, the summary and `trawl
//!   stats` show it, what was stored stays readable, and a larger budget at
//!   the next start brings storing back;
//! - a budget the database already fills, and sizes that do not parse: a
//!   clear error and exit 2, the database untouched;
//! - a disk that fills during the crawl (a tmpfs in a mount namespace of the
//!   test's own): the crawl says storing paused, keeps running, resumes when
//!   space is freed, and after kill -9 the database opens with what it stored.

#[path = "../../engine/tests/crawl_common/mod.rs"]
mod crawl_common;

use std::path::Path;
use std::process::{Command, Stdio};

use crawl_common::{free_port, SwarmChild};
use trawl_storage::{Store, StoreOptions};

const NODES: u32 = 2_000;
const TORRENTS: u32 = 10_000;
const INTERVAL_MAX: u32 = 4;

fn crawl(db: &Path, swarm: &SwarmChild, secs: u32, extra: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_trawl"));
    cmd.arg("crawl")
        .arg("--db")
        .arg(db)
        .args([
            "--port",
            &free_port().to_string(),
            "--cores",
            "1",
            "--no-pin",
            "--no-ipv6",
        ])
        .args(["--duration", &secs.to_string(), "--allow-loopback", "--log-every", "1"])
        .args(["--fetch-concurrency", "16"])
        // Quick revisits, so a restart samples the swarm again at once.
        .args(["--resample-secs", "1", "--empty-backoff-secs", "1", "--walk-secs", "5"])
        .args(extra)
        .env("RUST_LOG", "info");
    for i in 0..4 {
        cmd.args(["--bootstrap", &swarm.node(i).to_string()]);
    }
    cmd
}

fn summary(stdout: &[u8]) -> serde_json::Value {
    let text = String::from_utf8_lossy(stdout);
    let last = text.lines().last().expect("a summary line");
    serde_json::from_str(last).expect("the summary is JSON")
}

fn count_infohashes(db: &Path) -> u64 {
    Store::open_read_only(db).unwrap().stats().unwrap().infohashes
}

#[test]
fn a_budget_the_crawl_reaches_steps_down_and_a_larger_one_brings_storing_back() {
    let dir = tempfile::tempdir().unwrap();
    let swarm = SwarmChild::start(&dir.path().join("manifest.json"), NODES, TORRENTS, INTERVAL_MAX);
    let db = dir.path().join("db");
    drop(Store::open(&db, &StoreOptions::default()).unwrap());
    let base = Store::open_read_only(&db).unwrap().dir_bytes().unwrap();
    // Room for a few thousand of the swarm's 8,500 reachable hashes beyond
    // the empty database's files, so the last step comes while hashes still
    // arrive.
    let budget = base + (256 << 10);
    let out = crawl(&db, &swarm, 20, &["--max-disk", &budget.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let s = summary(&out.stdout);
    assert_eq!(s["disk_budget_bytes"].as_u64(), Some(budget), "{s}");
    assert_eq!(
        s["disk_state"], "no-new-infohashes",
        "the crawl reached the last step: {s}"
    );
    assert!(s["infohashes_refused_budget"].as_u64().unwrap() > 0, "{s}");
    assert!(s["fetch_queue_refused_budget"].as_u64().unwrap() > 0, "{s}");
    for step in [
        "storing torrents without their info dicts",
        "not fetching metadata",
        "not storing new infohashes",
    ] {
        assert!(err.contains(step), "step {step:?} logged:\n{err}");
    }
    assert!(
        err.contains("disk ") && err.contains("% of "),
        "the status line shows the budget:\n{err}"
    );
    let stored = count_infohashes(&db);
    assert_eq!(s["stored_new"].as_u64(), Some(stored), "{s}");

    let stats = Command::new(env!("CARGO_BIN_EXE_trawl"))
        .args(["stats", "--json", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&stats.stdout).unwrap();
    assert_eq!(v["disk_budget_bytes"].as_u64(), Some(budget), "{v}");
    assert!(v["disk_budget_fraction"].as_f64().unwrap() > 0.9, "{v}");

    // A budget this database already fills is refused before anything is sent.
    let refused = crawl(&db, &swarm, 5, &["--max-disk", &(base / 2).to_string()])
        .output()
        .unwrap();
    let msg = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{msg}");
    assert!(msg.contains("leaves no room") && msg.contains("--max-disk"), "{msg}");
    assert_eq!(count_infohashes(&db), stored, "a refused start stores nothing");

    // Room again: the hashes refused before are stored now.
    let out = crawl(&db, &swarm, 10, &["--max-disk", "1G"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .output()
        .unwrap();
    let s = summary(&out.stdout);
    assert_eq!(s["disk_state"], "normal", "{s}");
    assert!(count_infohashes(&db) > stored, "storing came back: {s}");
}

#[test]
fn sizes_that_do_not_parse_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    for bad in ["12X", "0", "G", "-1G"] {
        let out = Command::new(env!("CARGO_BIN_EXE_trawl"))
            .args(["crawl", "--port", "0", "--db"])
            .arg(&db)
            .arg(format!("--max-disk={bad}"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad}: {err}");
        assert!(err.contains("max-disk") && err.contains("size"), "{bad}: {err}");
    }
    let config = dir.path().join("trawl.toml");
    std::fs::write(&config, "[crawl]\nmax-disk = \"lots\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_trawl"))
        .args(["crawl", "--port", "0", "--db"])
        .arg(&db)
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("max-disk"), "the key is named: {err}");
    assert!(!db.exists(), "no database is made for a refused start");
}

/// The kill -9 test's full-disk case: the crawl's database on a 100 MiB
/// tmpfs (in a mount namespace of this test's own, gone when it ends) that a
/// ballast file fills to all but 1.5 MiB.
#[test]
fn a_disk_that_fills_pauses_storing_and_freed_space_resumes_it_and_kill_9_keeps_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let swarm = SwarmChild::start(&dir.path().join("manifest.json"), NODES, TORRENTS, INTERVAL_MAX);
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let log = dir.path().join("crawl.log");
    let stats = dir.path().join("stats.json");
    // The crawl command, quoted for sh; its database lives on the tmpfs.
    let cmd = crawl(&mnt.join("db"), &swarm, 300, &[]);
    let mut argv = vec![cmd.get_program().to_string_lossy().into_owned()];
    argv.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    let quoted: Vec<String> = argv.iter().map(|a| format!("'{a}'")).collect();
    let script = format!(
        r#"set -u
        mount -t tmpfs -o size=100m trawl-test "$MNT" || exit 90
        head -c $(( (100 << 20) - (1536 << 10) )) /dev/zero > "$MNT/ballast" || exit 91
        RUST_LOG=info {crawl} > /dev/null 2> "$LOG" &
        pid=$!
        wait_log() {{ i=0; until grep -q "$1" "$LOG"; do sleep 0.2; i=$((i+1)); [ $i -gt 300 ] && {{ kill -9 $pid; exit $2; }}; done; }}
        wait_log "disk full: storing paused" 92
        sleep 3
        kill -0 $pid || exit 93
        rm "$MNT/ballast"
        wait_log "space freed: storing resumed" 94
        sleep 2
        kill -9 $pid; wait $pid
        "$TRAWL" stats --json --db "$MNT/db" > "$STATS" || exit 95
        "#,
        crawl = quoted.join(" ")
    );
    let out = Command::new("unshare")
        .args(["--map-root-user", "--mount", "sh", "-c", &script])
        .env("MNT", &mnt)
        .env("LOG", &log)
        .env("STATS", &stats)
        .env("TRAWL", env!("CARGO_BIN_EXE_trawl"))
        .output()
        .expect("unshare (util-linux) runs");
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        out.status.success(),
        "{:?} {}\n{log_text}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        log_text.contains("DISK FULL: STORING PAUSED"),
        "the status line says so:\n{log_text}"
    );
    assert!(!log_text.contains("panicked"), "{log_text}");
    for line in log_text
        .lines()
        .filter(|l| l.contains("disk full") || l.contains("space freed"))
    {
        println!("{line}");
    }
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&stats).unwrap()).unwrap();
    assert!(
        v["infohashes"].as_u64().unwrap() > 1_000,
        "the database opens after kill -9 with what it stored: {v}"
    );
}
