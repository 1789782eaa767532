//! Fuzzes the import parser (`trawl_storage::import`): a whole input file goes
//! through `read_lines`, and each line through `parse_line`. Contract checked:
//! - no panic on any input;
//! - `read_lines` agrees with `parse_line` applied to each `\n`-separated line,
//!   and its counts add up;
//! - every accepted hash, written back as 40 hex characters, as a magnet link
//!   and as a JSON line, parses to the same hash;
//! - parsing allocates nothing but the JSON error text and the JSON decoder's
//!   own copy of an escaped string, each bounded by the line's length.
#![no_main]

use std::fmt::Write as _;

use libfuzzer_sys::fuzz_target;
use trawl_codec_fuzz::with_allocations_below;
use trawl_storage::import::{self, LineError};
use trawl_storage::InfoHash;

fn hex(h: &InfoHash) -> String {
    let mut s = String::with_capacity(40);
    for b in h {
        write!(s, "{b:02x}").unwrap();
    }
    s
}

fn check_round_trip(h: &InfoHash) {
    let hex = hex(h);
    let forms = [
        hex.clone(),
        hex.to_uppercase(),
        format!("magnet:?xt=urn:btih:{hex}&dn=x"),
        format!("{{\"infoHash\":\"{hex}\",\"name\":\"x\"}}"),
        format!("{{\"info_hash\":\"{hex}\"}}"),
    ];
    for form in forms {
        assert_eq!(import::parse_line(form.as_bytes()), Ok(Some(*h)), "{form}");
    }
}

fuzz_target!(|data: &[u8]| {
    // Line by line, as the reference.
    let mut expected = Vec::new();
    for line in data.split(|&c| c == b'\n') {
        // JSON may copy an escaped string and format an error: both bounded by the line.
        let parsed = with_allocations_below(2 * line.len() + 1024, || import::parse_line(line));
        expected.push(parsed);
    }
    // A trailing newline ends the last line; it does not start an empty one.
    if data.last() == Some(&b'\n') || data.is_empty() {
        expected.pop();
    }

    let mut hashes = Vec::new();
    let mut bad: Vec<(u64, LineError)> = Vec::new();
    let counts = import::read_lines(
        data,
        |h| {
            hashes.push(h);
            Ok(())
        },
        |n, e| bad.push((n, e)),
    )
    .expect("reading from memory cannot fail");

    assert_eq!(counts.lines as usize, expected.len(), "line count");
    assert_eq!(counts.hashes as usize, hashes.len());
    assert_eq!(counts.bad as usize, bad.len());
    assert!(counts.hashes + counts.bad <= counts.lines);
    let want_hashes: Vec<InfoHash> = expected.iter().filter_map(|r| r.clone().ok().flatten()).collect();
    assert_eq!(hashes, want_hashes, "read_lines must accept what parse_line accepts");
    let want_bad: Vec<(u64, LineError)> = expected
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.clone().err().map(|e| (i as u64 + 1, e)))
        .collect();
    assert_eq!(
        bad, want_bad,
        "read_lines must refuse what parse_line refuses, at the same line"
    );

    for h in &hashes {
        check_round_trip(h);
    }
});
