//! The fetcher against a real libtorrent 2.0 seeder (scripts/lt_seeder.py, run
//! with /usr/bin/python3 and Debian's python3-libtorrent) on loopback: the info
//! dicts it fetches are byte-identical to the ones libtorrent created, for a
//! v1-only torrent and a hybrid v1+v2 one.

mod metadata_common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use metadata_common::{test_config, Harness};
use trawl_engine::metadata::info::{self, MetaVersion};
use trawl_storage::{BitmagnetType, ContentClass, InfoHash};

fn unhex(s: &str) -> InfoHash {
    let mut h = [0u8; 20];
    for (i, b) in h.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
    }
    h
}

/// Kills the seeder when the test ends, however it ends.
struct Seeder(std::process::Child);

impl Drop for Seeder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn fetched_info_dicts_are_byte_identical_to_libtorrents() {
    let dir = tempfile::tempdir().unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/lt_seeder.py");
    let mut child = Command::new("/usr/bin/python3")
        .arg(script)
        .args(["--bind", "127.0.0.1", "--port", "0", "--duration", "60", "--dir"])
        .arg(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run /usr/bin/python3 scripts/lt_seeder.py (needs python3-libtorrent)");
    let stdout = child.stdout.take().unwrap();
    let _seeder = Seeder(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let ready: serde_json::Value = serde_json::from_str(&line).expect("a ready line from lt_seeder.py");
    assert_eq!(ready["event"], "ready", "{line}");
    let addr = ready["addr"].as_str().unwrap().parse().unwrap();
    let torrents = ready["torrents"].as_array().unwrap();
    assert_eq!(torrents.len(), 2);

    let h = Harness::start(test_config(), true);
    for t in torrents {
        h.enqueue(unhex(t["info_hash"].as_str().unwrap()), &[addr]);
    }
    for t in torrents {
        let hash = unhex(t["info_hash"].as_str().unwrap());
        let created = std::fs::read(t["info_file"].as_str().unwrap()).unwrap();
        let record = h.wait_torrent(&hash, Duration::from_secs(20));
        let fetched = h.store.info_dict(&hash).unwrap().expect("the raw info dict is kept");
        assert_eq!(fetched, created, "byte-identical to libtorrent's info dict");
        assert_eq!(record.name_readable(), t["name"].as_str().unwrap());

        let parsed = info::parse(&fetched).unwrap();
        match t["version"].as_str().unwrap() {
            "v1" => {
                assert_eq!(parsed.version, MetaVersion::V1);
                assert_eq!(record.class, ContentClass::Video);
                assert_eq!(record.content_type, Some(BitmagnetType::Movie));
                assert_eq!(record.total_size, 302_000);
            }
            "hybrid" => {
                assert_eq!(parsed.version, MetaVersion::Hybrid);
                assert_eq!(record.class, ContentClass::Audio);
                assert_eq!(record.content_type, Some(BitmagnetType::Music));
                // libtorrent pads hybrid files to piece boundaries (BEP 47); padding is not content.
                assert_eq!(record.files.len(), 3);
                assert_eq!(record.total_size, 215_000);
            }
            other => panic!("unexpected version {other}"),
        }
    }
    assert_eq!(h.counters.snapshot().ok, 2);
}
