//! Fuzzes the info dict parser (`trawl_engine::metadata::info::parse`), which
//! reads bytes a peer sent once their SHA-1 matched the infohash (a hostile
//! peer can always send a matching dict for a hash it announced). Contract:
//! - no panic on any input;
//! - memory in proportion to the input: all allocations together stay within a
//!   fixed multiple of the input's length, so a 10 MB dict cannot ask for more
//!   than a bounded amount;
//! - an accepted dict is self-consistent (sizes add up, paths non-empty, the
//!   version matches its keys), and a v1 dict re-encoded from what was parsed
//!   parses to the same value;
//! - the `--info-dicts files` cut (`trawl_storage::keep::without_pieces`)
//!   never panics, and what it accepts comes out no longer, with a second cut
//!   changing nothing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trawl_codec_fuzz::with_total_allocation_below;
use trawl_engine::codec::bencode;
use trawl_engine::metadata::info::{self, InfoDict, MetaVersion};

/// Bytes the parsed form may take per input byte: info.rs bounds the paths a
/// v2 file tree flattens to at 4x the dict plus 64 KiB (`file_tree_budget`);
/// the file list itself (an `InfoFile` per entry really present, `Vec` growth
/// doubling) and the key copies stay within a further ~16x.
const ALLOC_PER_INPUT_BYTE: usize = 24;
const ALLOC_SLACK: usize = 96 * 1024;

fn path_list(out: &mut Vec<u8>, path: &[Vec<u8>]) {
    bencode::list_begin(out);
    for c in path {
        bencode::bytes(out, c);
    }
    bencode::end(out);
}

/// Writes a v1 info dict holding what `d` holds (keys in sorted order).
fn encode_v1(d: &InfoDict) -> Vec<u8> {
    let mut out = Vec::new();
    bencode::dict_begin(&mut out);
    if d.files.is_empty() {
        bencode::key_int(&mut out, info::KEY_LENGTH, d.total_size as i64);
    } else {
        bencode::bytes(&mut out, info::KEY_FILES);
        bencode::list_begin(&mut out);
        for f in &d.files {
            bencode::dict_begin(&mut out);
            bencode::key_int(&mut out, info::KEY_LENGTH, f.length as i64);
            bencode::bytes(&mut out, info::KEY_PATH);
            path_list(&mut out, &f.path);
            if let Some(alt) = &f.path_utf8 {
                bencode::bytes(&mut out, info::KEY_PATH_UTF8);
                path_list(&mut out, alt);
            }
            bencode::end(&mut out);
        }
        bencode::end(&mut out);
    }
    bencode::key_bytes(&mut out, info::KEY_NAME, &d.name);
    if let Some(alt) = &d.name_utf8 {
        bencode::key_bytes(&mut out, info::KEY_NAME_UTF8, alt);
    }
    bencode::key_int(&mut out, info::KEY_PIECE_LENGTH, d.piece_length as i64);
    bencode::key_bytes(&mut out, info::KEY_PIECES, &[]);
    if d.private {
        bencode::key_int(&mut out, info::KEY_PRIVATE, 1);
    }
    bencode::end(&mut out);
    out
}

fn check(d: &InfoDict) {
    assert!(d.piece_length > 0);
    let sum = d.files.iter().try_fold(0u64, |s, f| s.checked_add(f.length));
    if !d.files.is_empty() {
        assert_eq!(sum, Some(d.total_size), "total_size is the sum of the files");
    }
    for f in &d.files {
        assert!(!f.path.is_empty(), "a file has a path");
        assert!(!f.display_path().is_empty());
        std::hint::black_box(f.file_name());
    }
    std::hint::black_box(d.display_name());
    let fits_i64 = |v: u64| i64::try_from(v).is_ok();
    let encodable = fits_i64(d.total_size) && fits_i64(d.piece_length) && d.files.iter().all(|f| fits_i64(f.length));
    if d.version == MetaVersion::V1 && encodable {
        let again = info::parse(&encode_v1(d)).expect("a re-encoded v1 dict must parse");
        assert_eq!(&again, d, "v1 round trip");
    }
}

fuzz_target!(|data: &[u8]| {
    let bound = ALLOC_PER_INPUT_BYTE * data.len() + ALLOC_SLACK;
    let parsed = with_total_allocation_below(bound, || info::parse(data));
    if let Ok(d) = parsed {
        check(&d);
    }
    let mut cut = Vec::new();
    if trawl_storage::keep::without_pieces(data, &mut cut).is_ok() {
        assert!(cut.len() <= data.len());
        let mut again = Vec::new();
        trawl_storage::keep::without_pieces(&cut, &mut again).expect("a cut dict walks again");
        assert_eq!(again, cut, "the cut is idempotent");
    }
});
