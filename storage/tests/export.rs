//! Every export format and filter over a small database, and open errors.

use std::sync::Arc;
use std::time::Duration;

use trawl_storage::export::{export, export_torrent_files, Filter, Format};
use trawl_storage::*;

fn h(n: u8) -> InfoHash {
    [n; 20]
}

fn torrent(n: u8, class: ContentClass, name: &[u8]) -> TorrentRecord {
    TorrentRecord {
        info_hash: h(n),
        version: TorrentVersion::V1,
        v2_hash: None,
        name: name.to_vec(),
        files: vec![
            FileEntry {
                path: vec![b"dir".to_vec(), b"a.mkv".to_vec()],
                length: 10,
            },
            FileEntry {
                path: vec![b"dir".to_vec(), b"b,\"c\".srt".to_vec()],
                length: 5,
            },
        ],
        total_size: 15,
        piece_length: 16384,
        private: false,
        class,
        content_type: Some(BitmagnetType::Movie),
        fetched_at: 1_700_000_100,
        scrape: None,
        info_dict: Some(format!("d4:name1:{}e", n % 10).into_bytes()),
    }
}

/// Hashes 1..=4 seen at 1_700_000_000 + n; torrents for 2 (video) and 4 (audio); a scrape for 2;
/// provisional names for 1 and 3 (and one for 2, dropped for its torrent).
fn fixture() -> (tempfile::TempDir, Store) {
    store_with(Batch {
        discoveries: (1..=4).map(discovery).collect(),
        torrents: vec![
            torrent(2, ContentClass::Video, b"Movie, \"the\""),
            torrent(4, ContentClass::Audio, b"bad \xff utf8"),
        ],
        scrapes: vec![(
            h(2),
            ScrapeEstimate {
                seeders: 7,
                leechers: 3,
                at: 1_700_000_200,
            },
        )],
        names: [
            (1, &b"Heard, \"early\""[..]),
            (2, b"not the real name"),
            (3, b"raw \xff"),
        ]
        .into_iter()
        .map(|(n, name)| ProvisionalName {
            info_hash: h(n),
            name: name.to_vec(),
            at: 1_700_000_050,
        })
        .collect(),
        ..Batch::default()
    })
}

fn discovery(n: u8) -> Discovery {
    Discovery {
        info_hash: h(n),
        source: Source::Sample,
        at: 1_700_000_000 + u32::from(n),
    }
}

/// A database holding what `batch` brings, opened read-only.
fn store_with(batch: Batch) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let torrents = batch.torrents.len() as u64;
    {
        let store = Arc::new(Store::open(dir.path(), &StoreOptions::default()).unwrap());
        let writer = Writer::spawn(
            store,
            WriterOptions {
                flush_interval: Duration::from_millis(5),
                ..WriterOptions::default()
            },
        )
        .unwrap();
        writer.handle().send(batch).unwrap();
        assert_eq!(writer.shutdown().torrents, torrents);
    }
    let store = Store::open_read_only(dir.path()).unwrap();
    (dir, store)
}

fn run(store: &Store, format: Format, filter: &Filter) -> (Vec<u8>, export::Summary) {
    let mut out = Vec::new();
    let sum = export(store, format, filter, &mut out).unwrap();
    (out, sum)
}

/// The JSON lines export, parsed.
fn jsonl_rows(store: &Store) -> Vec<serde_json::Value> {
    let (out, _) = run(store, Format::Jsonl, &Filter::default());
    out.split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect()
}

fn hex(n: u8) -> String {
    format!("{n:02x}").repeat(20)
}

#[test]
fn hex_and_bin_list_every_hash_in_order() {
    let (_d, store) = fixture();
    let (out, sum) = run(&store, Format::Hex, &Filter::default());
    let want: String = (1..=4).map(|n| hex(n) + "\n").collect();
    assert_eq!(String::from_utf8(out).unwrap(), want);
    assert_eq!(sum.written, 4);
    let (out, _) = run(&store, Format::Bin, &Filter::default());
    assert_eq!(out, (1..=4).flat_map(h).collect::<Vec<u8>>());
}

#[test]
fn filters_select_by_time_metadata_and_class() {
    let (_d, store) = fixture();
    let lines = |f: Filter| {
        String::from_utf8(run(&store, Format::Hex, &f).0)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        lines(Filter {
            since: Some(1_700_000_003),
            ..Filter::default()
        }),
        vec![hex(3), hex(4)]
    );
    assert_eq!(
        lines(Filter {
            with_metadata: true,
            ..Filter::default()
        }),
        vec![hex(2), hex(4)]
    );
    assert_eq!(
        lines(Filter {
            class: Some(ContentClass::Audio),
            ..Filter::default()
        }),
        vec![hex(4)]
    );
    assert_eq!(
        lines(Filter {
            class: Some(ContentClass::Audio),
            since: Some(1_700_000_005),
            ..Filter::default()
        }),
        Vec::<String>::new()
    );
}

#[test]
fn jsonl_carries_metadata_scrape_and_lossless_names() {
    let (_d, store) = fixture();
    let rows = jsonl_rows(&store);
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[0]["info_hash"], hex(1));
    assert!(rows[0].get("name").is_none(), "no metadata, no name");
    assert_eq!(rows[0]["provisional_name"], "Heard, \"early\"");
    assert_eq!(rows[0]["first_seen"], 1_700_000_001);
    assert!(
        rows[1].get("provisional_name").is_none(),
        "the metadata's name replaces it"
    );
    assert_eq!(rows[2]["provisional_name"], "raw \u{fffd}", "lossy UTF-8");
    assert!(rows[2].get("name").is_none() && rows[3].get("provisional_name").is_none());
    let r = &rows[1];
    assert_eq!(r["name"], "Movie, \"the\"");
    assert_eq!(r["size"], 15);
    assert_eq!(r["files"][1]["path"], "dir/b,\"c\".srt");
    assert_eq!((r["seeders"].as_u64(), r["leechers"].as_u64()), (Some(7), Some(3)));
    assert_eq!(r["class"], "video");
    assert_eq!(r["sources"][0], "sample");
    assert_eq!(rows[3]["name_hex"], "62616420ff2075746638");
    assert!(rows[3].get("seeders").is_none());
}

#[test]
fn csv_has_a_header_and_quotes_names() {
    let (_d, store) = fixture();
    let (out, _) = run(
        &store,
        Format::Csv,
        &Filter {
            with_metadata: true,
            ..Filter::default()
        },
    );
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<_> = text.lines().collect();
    assert_eq!(lines[0], export::CSV_HEADER.trim_end());
    assert_eq!(
        lines[1],
        format!(
            "{},\"Movie, \"\"the\"\"\",15,2,7,3,video,movie,1700000002,1700000002,1,1700000100,",
            hex(2)
        )
    );
    assert_eq!(lines.len(), 3);
}

#[test]
fn csv_carries_provisional_names_in_the_last_column_only_without_metadata() {
    let (_d, store) = fixture();
    let text = String::from_utf8(run(&store, Format::Csv, &Filter::default()).0).unwrap();
    let lines: Vec<_> = text.lines().collect();
    assert!(lines[0].ends_with(",fetched_at,provisional_name"));
    assert_eq!(
        lines[1],
        format!("{},,,,,,,,1700000001,1700000001,1,,\"Heard, \"\"early\"\"\"", hex(1))
    );
    assert!(lines[2].ends_with(",1700000100,"), "{}", lines[2]);
    assert!(lines[3].ends_with(",,raw \u{fffd}"), "{}", lines[3]);
    assert_eq!(lines.len(), 5);
}

#[test]
fn bitmagnet_lines_need_a_name() {
    let (_d, store) = fixture();
    let (out, sum) = run(&store, Format::Bitmagnet, &Filter::default());
    assert_eq!((sum.written, sum.skipped), (2, 2), "a provisional name is not enough");
    let first: serde_json::Value = serde_json::from_slice(out.split(|&b| b == b'\n').next().unwrap()).unwrap();
    assert_eq!(first["infoHash"], hex(2));
    assert_eq!(first["name"], "Movie, \"the\"");
    assert_eq!(first["size"], 15);
    assert_eq!(first["source"], "trawl");
    assert_eq!(first["publishedAt"], "2023-11-14T22:13:22Z");
    assert_eq!(first["contentType"], "movie");
}

#[test]
fn torrent_files_are_rebuilt_in_a_fan_out() {
    let (_d, store) = fixture();
    let out = tempfile::tempdir().unwrap();
    let sum = export_torrent_files(&store, &Filter::default(), out.path()).unwrap();
    assert_eq!(sum.written, 2);
    let f = out.path().join("02").join("02").join(format!("{}.torrent", hex(2)));
    assert_eq!(std::fs::read(f).unwrap(), b"d4:infod4:name1:2ee");
}

#[test]
fn open_errors_say_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    assert!(matches!(Store::open_read_only(&missing), Err(StorageError::Missing(_))));
    let opts = StoreOptions {
        create_if_missing: false,
        ..StoreOptions::default()
    };
    assert!(matches!(Store::open(&missing, &opts), Err(StorageError::Missing(_))));
    assert!(matches!(
        Store::open_read_only(dir.path()),
        Err(StorageError::NotTrawl(_))
    ));

    let db = dir.path().join("db");
    let first = Store::open(&db, &StoreOptions::default()).unwrap();
    let second = Store::open(&db, &StoreOptions::default());
    assert!(
        matches!(second, Err(StorageError::Locked(_))),
        "{second:?}",
        second = second.err()
    );
    // Read-only opens work beside a writer.
    assert!(Store::open_read_only(&db).is_ok());
    drop(first);

    std::fs::write(db.join("CURRENT"), b"garbage").unwrap();
    let e = Store::open_read_only(&db)
        .err()
        .expect("a broken CURRENT file must not open");
    assert!(matches!(e, StorageError::Corrupt(_) | StorageError::Io(_)), "{e}");
}

/// Hash 1 without metadata, 2 a hybrid (v1 key, full SHA-256 beside it), 3 a
/// v2-only torrent keyed by its truncated SHA-256.
fn versions_fixture() -> (tempfile::TempDir, Store) {
    let mut hybrid = torrent(2, ContentClass::Video, b"A b&c/\xc3\xa9");
    hybrid.version = TorrentVersion::Hybrid;
    hybrid.v2_hash = Some([0xab; 32]);
    let mut v2 = torrent(3, ContentClass::Video, b"v2");
    v2.version = TorrentVersion::V2;
    v2.v2_hash = Some([3; 32]);
    store_with(Batch {
        discoveries: (1..=3).map(discovery).collect(),
        torrents: vec![hybrid, v2],
        ..Batch::default()
    })
}

#[test]
fn magnet_links_carry_both_hashes_of_a_hybrid_and_only_btmh_for_v2() {
    let (_d, store) = versions_fixture();
    let (out, sum) = run(&store, Format::Magnet, &Filter::default());
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(sum.written, 3);
    assert_eq!(lines[0], format!("magnet:?xt=urn:btih:{}", hex(1)));
    assert_eq!(
        lines[1],
        format!(
            "magnet:?xt=urn:btih:{}&xt=urn:btmh:1220{}&dn=A%20b%26c%2F%C3%A9",
            hex(2),
            "ab".repeat(32)
        )
    );
    assert_eq!(lines[2], format!("magnet:?xt=urn:btmh:1220{}&dn=v2", "03".repeat(32)));
}

#[test]
fn jsonl_says_the_version_and_carries_the_v2_hash_and_magnet() {
    let (_d, store) = versions_fixture();
    let rows = jsonl_rows(&store);
    assert!(rows[0].get("version").is_none() && rows[0].get("v2_info_hash").is_none());
    assert_eq!(rows[0]["magnet"], format!("magnet:?xt=urn:btih:{}", hex(1)));
    assert_eq!(rows[1]["version"], "hybrid");
    assert_eq!(rows[1]["v2_info_hash"], "ab".repeat(32));
    assert_eq!(rows[2]["version"], "v2");
    assert!(rows[2]["magnet"]
        .as_str()
        .unwrap()
        .starts_with("magnet:?xt=urn:btmh:1220"));
}
