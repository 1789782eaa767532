//! The durability promise: a batch the writer has acknowledged survives kill -9.
//!
//! The test re-runs this test binary as a child (selected by an environment
//! variable) that writes batches and prints each acknowledged batch's hashes;
//! the parent SIGKILLs it mid-stream, reopens the database and checks every
//! printed hash is there.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use trawl_storage::*;

const CHILD_ENV: &str = "TRAWL_STORAGE_KILL_CHILD_DIR";
const BATCH: u32 = 200;
/// Acknowledged hashes the parent waits for before the kill.
const ACKED_BEFORE_KILL: usize = 3000;

fn hex(h: &InfoHash) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

/// The child: writes forever (until killed), with several batches in flight
/// so the kill lands while commits are running.
#[test]
fn kill_child_writer() {
    let Ok(dir) = std::env::var(CHILD_ENV) else { return };
    let store = Arc::new(Store::open(&dir, &StoreOptions::default()).unwrap());
    let writer = Writer::spawn(
        store,
        WriterOptions {
            flush_interval: Duration::from_millis(2),
            ..WriterOptions::default()
        },
    )
    .unwrap();
    let w = writer.handle();
    let out = std::io::stdout();
    let mut pending = std::collections::VecDeque::new();
    for round in 0u32.. {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let discoveries = (0..BATCH)
            .map(|i| {
                let mut h = [0u8; 20];
                h[..4].copy_from_slice(&(round * BATCH + i).to_be_bytes());
                h[4..8].copy_from_slice(&std::process::id().to_be_bytes());
                Discovery {
                    info_hash: h,
                    source: Source::Sample,
                    at: round,
                }
            })
            .collect::<Vec<_>>();
        w.send(Batch {
            discoveries,
            reply: Some(tx),
            ..Batch::default()
        })
        .unwrap();
        pending.push_back(rx);
        if pending.len() >= 4 {
            let outcome: BatchOutcome = pending.pop_front().unwrap().recv().unwrap();
            let mut lock = out.lock();
            for h in &outcome.new {
                writeln!(lock, "{}", hex(h)).unwrap();
            }
            lock.flush().unwrap();
        }
    }
}

#[test]
fn acknowledged_batches_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "kill_child_writer", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut acked = Vec::new();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    while acked.len() < ACKED_BEFORE_KILL {
        match lines.next() {
            // The test harness prints a header line; hashes are 40 hex characters.
            Some(Ok(l)) if l.len() == 40 && l.bytes().all(|b| b.is_ascii_hexdigit()) => acked.push(l),
            Some(Ok(_)) => {}
            other => panic!("child stopped early: {other:?}"),
        }
    }
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    // Lines the child printed before dying are acknowledged too.
    acked.extend(lines.map_while(Result::ok).filter(|l| l.len() == 40));

    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    let missing: Vec<_> = acked
        .iter()
        .filter(|l| {
            let h = trawl_storage::import::parse_hex(l.as_bytes()).unwrap();
            store.infohash(&h).unwrap().is_none()
        })
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged hashes lost, e.g. {:?}",
        missing.len(),
        acked.len(),
        missing.first()
    );
}
