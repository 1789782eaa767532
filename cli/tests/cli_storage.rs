//! `trawl import`, `export` and `stats` run as the real binary against a temp
//! database: success paths and the errors a user meets.

use std::path::Path;
use std::process::{Command, Output, Stdio};

const HASH_A: &str = "0123456789abcdef0123456789abcdef01234567";
const HASH_B: &str = "fedcba9876543210fedcba9876543210fedcba98";

fn trawl(args: &[&str], db: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trawl"))
        .args(args)
        .arg("--db")
        .arg(db)
        .stdin(Stdio::null())
        .output()
        .expect("run trawl")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn no_panic(o: &Output) {
    assert!(!stderr(o).contains("panicked"), "{}", stderr(o));
}

#[test]
fn import_then_export_and_stats() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let list = dir.path().join("list.txt");
    let text = format!(
        "{HASH_A}\n# a comment\nnot-a-hash\n{{\"infoHash\":\"{}\"}}\n{HASH_A}\n",
        HASH_B.to_uppercase()
    );
    std::fs::write(&list, text).unwrap();

    let o = trawl(&["import", list.to_str().unwrap()], &db);
    no_panic(&o);
    // One bad line: exit 2, its number named, the good lines still imported.
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains(":3: "), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("imported 3 infohashes (2 new, 1 already known, 2 queued"),
        "{}",
        stderr(&o)
    );

    let o = trawl(&["export", "--format", "hex"], &db);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(String::from_utf8(o.stdout).unwrap(), format!("{HASH_A}\n{HASH_B}\n"));

    let out = dir.path().join("out.jsonl");
    let o = trawl(&["export", "--format", "jsonl", "--out", out.to_str().unwrap()], &db);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let first: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(&out).unwrap().lines().next().unwrap()).unwrap();
    assert_eq!(first["info_hash"], HASH_A);
    assert_eq!(first["seen"], 2);
    assert_eq!(first["sources"][0], "import");

    // Nothing has metadata yet.
    let o = trawl(&["export", "--with-metadata"], &db);
    assert_eq!((o.status.code(), o.stdout.len()), (Some(0), 0));

    let o = trawl(&["stats", "--json"], &db);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (s["infohashes"].as_u64(), s["torrents"].as_u64(), s["queued"].as_u64()),
        (Some(2), Some(0), Some(2))
    );
    assert_eq!(s["sources"]["import"], 2);
    assert!(s["disk_bytes"].as_u64().unwrap() > 0);
    let o = trawl(&["stats"], &db);
    assert!(String::from_utf8_lossy(&o.stdout).contains("infohashes    2"));

    // The exported JSONL imports back (round trip), all known now.
    let o = trawl(&["import", out.to_str().unwrap()], &db);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("(0 new, 2 already known"), "{}", stderr(&o));
}

#[test]
fn stdin_import_works() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let mut child = Command::new(env!("CARGO_BIN_EXE_trawl"))
        .args(["import", "-", "--db"])
        .arg(&db)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("magnet:?xt=urn:btih:{HASH_B}&dn=x\n").as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = trawl(&["export"], &db);
    assert_eq!(String::from_utf8(o.stdout).unwrap(), format!("{HASH_B}\n"));
}

#[test]
fn user_errors_exit_2_with_a_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    for args in [&["export"][..], &["stats"][..]] {
        let o = trawl(args, &missing);
        no_panic(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("does not exist"), "{}", stderr(&o));
    }
    let o = trawl(&["export"], dir.path());
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("not a trawl database"), "{}", stderr(&o));

    let db = dir.path().join("db");
    let o = trawl(&["import", dir.path().join("no-such-file").to_str().unwrap()], &db);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("cannot read"), "{}", stderr(&o));

    std::fs::write(dir.path().join("one"), format!("{HASH_A}\n")).unwrap();
    assert_eq!(
        trawl(&["import", dir.path().join("one").to_str().unwrap()], &db)
            .status
            .code(),
        Some(0)
    );
    // An output path that cannot be created (its parent is a file).
    let file = dir.path().join("one");
    let under_file = file.join("sub");
    for format in ["hex", "torrents"] {
        let o = trawl(&["export", "-f", format, "-o", under_file.to_str().unwrap()], &db);
        no_panic(&o);
        assert_eq!(o.status.code(), Some(2), "{format}: {}", stderr(&o));
        assert!(stderr(&o).contains("cannot create"), "{format}: {}", stderr(&o));
        assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
    }
    for (args, needle) in [
        (&["export", "--class", "movies"][..], "--class"),
        (&["export", "--since", "last tuesday"][..], "--since"),
        (&["export", "--format", "torrents"][..], "--out"),
    ] {
        let o = trawl(args, &db);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(stderr(&o).contains(needle), "{args:?}: {}", stderr(&o));
    }
}

#[test]
fn locked_and_corrupt_databases_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    std::fs::write(dir.path().join("one"), format!("{HASH_A}\n")).unwrap();
    assert_eq!(
        trawl(&["import", dir.path().join("one").to_str().unwrap()], &db)
            .status
            .code(),
        Some(0)
    );

    // This process holds the lock, as a running crawl would.
    let held = trawl_storage::Store::open(&db, &trawl_storage::StoreOptions::default()).unwrap();
    let o = trawl(&["import", dir.path().join("one").to_str().unwrap()], &db);
    no_panic(&o);
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    assert!(stderr(&o).contains("locked by another process"), "{}", stderr(&o));
    // Read-only commands still work beside it.
    let o = trawl(&["export"], &db);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        format!("{HASH_A}\n"),
        "{}",
        stderr(&o)
    );
    drop(held);

    std::fs::write(db.join("CURRENT"), b"garbage").unwrap();
    let o = trawl(&["stats"], &db);
    no_panic(&o);
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    assert!(stderr(&o).starts_with("trawl: database "), "{}", stderr(&o));
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
}

#[test]
fn json_logs_carry_the_same_error_as_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-db");
    let text = trawl(&["stats"], &missing);
    let json = trawl(&["--log-format", "json", "stats"], &missing);
    no_panic(&json);
    assert_ne!(text.status.code(), Some(0));
    assert_eq!(json.status.code(), text.status.code());
    let lines: Vec<serde_json::Value> = stderr(&json)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let last = lines.last().expect("the error is logged");
    assert_eq!(last["level"], "ERROR");
    assert_eq!(last["exit_code"].as_i64(), text.status.code().map(i64::from));
    let text_line = stderr(&text);
    assert_eq!(
        format!("trawl: {}", last["message"].as_str().unwrap()),
        text_line.trim_end(),
        "the same message as the text form"
    );

    let bad = trawl(&["--log-format", "xml", "stats"], &missing);
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    assert!(stderr(&bad).contains("--log-format"), "{}", stderr(&bad));
}

/// A database holding `n` torrents kept in the `files` form, with their hashes.
fn files_mode_db(db: &Path, n: u8) {
    use trawl_storage::*;
    let store = std::sync::Arc::new(
        Store::open(
            db,
            &StoreOptions {
                info_dicts: InfoDictMode::Files,
                ..StoreOptions::default()
            },
        )
        .unwrap(),
    );
    let writer = Writer::spawn(store.clone(), WriterOptions::default()).unwrap();
    let torrents: Vec<TorrentRecord> = (1..=n)
        .map(|i| TorrentRecord {
            info_hash: [i; 20],
            version: TorrentVersion::V1,
            v2_hash: None,
            name: format!("torrent {i}").into_bytes(),
            files: vec![],
            total_size: 1000,
            piece_length: 16384,
            private: false,
            class: ContentClass::Other,
            content_type: None,
            fetched_at: 1_700_000_000,
            scrape: None,
            info_dict: Some({
                let name = format!("torrent {i}");
                format!(
                    "d6:lengthi1000e4:name{}:{name}12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaae",
                    name.len()
                )
                .into_bytes()
            }),
        })
        .collect();
    let discoveries = torrents
        .iter()
        .map(|t| Discovery {
            info_hash: t.info_hash,
            source: Source::Sample,
            at: 1_700_000_000,
        })
        .collect();
    let (reply, acked) = crossbeam_channel::bounded(1);
    writer
        .handle()
        .send(Batch {
            discoveries,
            torrents,
            reply: Some(reply),
            ..Batch::default()
        })
        .unwrap();
    acked
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("batch acknowledged");
    writer.shutdown();
}

#[test]
fn compact_stats_and_torrent_export_in_files_mode() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let o = trawl(&["compact"], &db);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("does not exist"), "{}", stderr(&o));

    files_mode_db(&db, 20);
    let held = trawl_storage::Store::open(&db, &trawl_storage::StoreOptions::default()).unwrap();
    let o = trawl(&["compact"], &db);
    no_panic(&o);
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    assert!(stderr(&o).contains("locked by another process"), "{}", stderr(&o));
    drop(held);

    let o = trawl(&["compact"], &db);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("compacted "), "{}", stderr(&o));

    let o = trawl(&["stats", "--json"], &db);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(s["info_dicts_mode"], "files");
    assert_eq!(s["torrents"], 20);
    // Compacted, so every item is in a table file.
    let per_torrent = s["bytes_per_torrent"].as_f64().expect("bytes per torrent");
    let per_hash = s["bytes_per_infohash"].as_f64().expect("bytes per infohash");
    assert!(per_torrent > 0.0 && per_hash > 0.0, "{s}");
    let text = String::from_utf8_lossy(&trawl(&["stats"], &db).stdout).into_owned();
    assert!(text.contains("info dicts kept as files"), "{text}");

    let out = dir.path().join("torrents");
    let o = trawl(&["export", "-f", "torrents", "-o", out.to_str().unwrap()], &db);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("wrote 0 .torrent files"), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("20 torrents were stored with --info-dicts files"),
        "{}",
        stderr(&o)
    );
}
