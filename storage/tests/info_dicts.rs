//! `--info-dicts full|files|none` on a real RocksDB: what each mode keeps,
//! that switching modes never loses what was kept, and what `.torrent`
//! export says about torrents whose pieces were not kept.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use trawl_storage::export::{export_torrent_files, Filter};
use trawl_storage::*;

/// A real-shaped v1 multi-file dict: `files`, `name`, `piece length`, `pieces`.
const DICT: &[u8] = b"d5:filesld6:lengthi40000e4:pathl5:a.mkveed6:lengthi12e4:pathl5:b.nfoeee4:name4:show12:piece lengthi32768e6:pieces40:0123456789012345678901234567890123456789e";
const DICT_FILES: &[u8] =
    b"d5:filesld6:lengthi40000e4:pathl5:a.mkveed6:lengthi12e4:pathl5:b.nfoeee4:name4:show12:piece lengthi32768ee";

fn h(n: u8) -> InfoHash {
    [n; 20]
}

fn torrent(n: u8, dict: &[u8]) -> TorrentRecord {
    TorrentRecord {
        info_hash: h(n),
        version: TorrentVersion::V1,
        v2_hash: None,
        name: b"show".to_vec(),
        files: vec![
            FileEntry {
                path: vec![b"a.mkv".to_vec()],
                length: 40000,
            },
            FileEntry {
                path: vec![b"b.nfo".to_vec()],
                length: 12,
            },
        ],
        total_size: 40012,
        piece_length: 32768,
        private: false,
        class: ContentClass::Video,
        content_type: None,
        fetched_at: 1_700_000_000,
        scrape: None,
        info_dict: Some(dict.to_vec()),
    }
}

/// Opens `dir` in `mode`, stores `torrents` and closes it again.
fn store_in(dir: &Path, mode: InfoDictMode, torrents: Vec<TorrentRecord>) -> Option<(InfoDictMode, InfoDictMode)> {
    let store = Arc::new(
        Store::open(
            dir,
            &StoreOptions {
                info_dicts: mode,
                ..StoreOptions::default()
            },
        )
        .unwrap(),
    );
    let change = store.info_dicts_mode_change();
    let writer = Writer::spawn(
        store.clone(),
        WriterOptions {
            flush_interval: Duration::from_millis(5),
            ..WriterOptions::default()
        },
    )
    .unwrap();
    let (tx, rx) = crossbeam_channel::bounded(1);
    writer
        .handle()
        .send(Batch {
            torrents,
            reply: Some(tx),
            ..Batch::default()
        })
        .unwrap();
    rx.recv_timeout(Duration::from_secs(10)).unwrap();
    writer.shutdown();
    change
}

#[test]
fn each_mode_keeps_what_it_says() {
    for (mode, want) in [
        (InfoDictMode::Full, Some(KeptInfoDict::Full(DICT.to_vec()))),
        (InfoDictMode::Files, Some(KeptInfoDict::Files(DICT_FILES.to_vec()))),
        (InfoDictMode::None, None),
    ] {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            store_in(dir.path(), mode, vec![torrent(1, DICT)]),
            None,
            "a fresh database has no earlier mode"
        );
        let store = Store::open_read_only(dir.path()).unwrap();
        assert_eq!(store.kept_info_dict(&h(1)).unwrap(), want, "{mode}");
        assert_eq!(store.read_info_dicts_mode().unwrap(), Some(mode));
        // The torrent row is whole in every mode.
        let t = store.torrent(&h(1)).unwrap().unwrap();
        assert_eq!(
            (t.name.as_slice(), t.files.len(), t.total_size),
            (&b"show"[..], 2, 40012)
        );
        // `info_dict` is the raw dict only.
        assert_eq!(store.info_dict(&h(1)).unwrap().is_some(), mode == InfoDictMode::Full);
    }
}

#[test]
fn switching_modes_keeps_what_was_kept_and_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    store_in(dir.path(), InfoDictMode::Full, vec![torrent(1, DICT)]);
    // A narrower mode does not cut or delete the whole dict, even when the
    // same torrent arrives again.
    let change = store_in(
        dir.path(),
        InfoDictMode::Files,
        vec![torrent(1, DICT), torrent(2, DICT)],
    );
    assert_eq!(change, Some((InfoDictMode::Full, InfoDictMode::Files)));
    let change = store_in(
        dir.path(),
        InfoDictMode::None,
        vec![torrent(1, DICT), torrent(2, DICT), torrent(3, DICT)],
    );
    assert_eq!(change, Some((InfoDictMode::Files, InfoDictMode::None)));
    // Back to full: a torrent kept as files is kept whole once it is fetched again.
    let change = store_in(dir.path(), InfoDictMode::Full, vec![torrent(2, DICT)]);
    assert_eq!(change, Some((InfoDictMode::None, InfoDictMode::Full)));
    assert_eq!(
        store_in(dir.path(), InfoDictMode::Full, vec![]),
        None,
        "same mode as last time"
    );

    let store = Store::open_read_only(dir.path()).unwrap();
    assert_eq!(
        store.kept_info_dict(&h(1)).unwrap(),
        Some(KeptInfoDict::Full(DICT.to_vec()))
    );
    assert_eq!(
        store.kept_info_dict(&h(2)).unwrap(),
        Some(KeptInfoDict::Full(DICT.to_vec()))
    );
    assert_eq!(store.kept_info_dict(&h(3)).unwrap(), None);
    assert!(store.torrent(&h(3)).unwrap().is_some());
}

#[test]
fn torrent_export_names_the_torrents_whose_pieces_were_not_kept() {
    let dir = tempfile::tempdir().unwrap();
    store_in(dir.path(), InfoDictMode::Full, vec![torrent(1, DICT)]);
    store_in(dir.path(), InfoDictMode::Files, vec![torrent(2, DICT)]);
    store_in(dir.path(), InfoDictMode::None, vec![torrent(3, DICT)]);
    let store = Store::open_read_only(dir.path()).unwrap();
    let out = tempfile::tempdir().unwrap();
    let sum = export_torrent_files(&store, &Filter::default(), out.path()).unwrap();
    assert_eq!((sum.written, sum.skipped, sum.pieces_not_kept), (1, 2, 1));
    let file = out.path().join("01/01").join(format!("{}.torrent", "01".repeat(20)));
    let mut want = b"d4:info".to_vec();
    want.extend_from_slice(DICT);
    want.push(b'e');
    assert_eq!(std::fs::read(file).unwrap(), want);
}

/// A dict the `files` cut cannot walk is kept whole, never dropped: the
/// writer's fallback (such a dict could not have been verified and parsed,
/// so this guards against a bug in the cut, not a peer).
#[test]
fn a_dict_the_cut_cannot_walk_is_kept_whole() {
    let dir = tempfile::tempdir().unwrap();
    let bad = b"d4:name9:torrent 1112:piece lengthi16384ee";
    store_in(dir.path(), InfoDictMode::Files, vec![torrent(1, bad)]);
    let store = Store::open_read_only(dir.path()).unwrap();
    assert_eq!(
        store.kept_info_dict(&h(1)).unwrap(),
        Some(KeptInfoDict::Full(bad.to_vec()))
    );
}
