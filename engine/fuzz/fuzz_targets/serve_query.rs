//! `trawl serve`'s query parsing and query building on arbitrary query
//! strings: `SearchRequest::parse` and the Torznab request mapping must
//! refuse or accept without panicking, and whatever they accept must run as
//! a search over a small index without panicking either.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use trawl_serve::{SearchIndex, SearchRequest, Searcher};
use trawl_storage::*;

fn index() -> &'static SearchIndex {
    static INDEX: OnceLock<(tempfile_dir::Dir, SearchIndex)> = OnceLock::new();
    &INDEX
        .get_or_init(|| {
            let dir = tempfile_dir::Dir::new();
            let index = SearchIndex::open(&dir.0).expect("index");
            let mut w = index.writer().expect("writer");
            for (n, name) in ["The.Movie.2019.1080p.x264-GRP", "Amélie [FLAC]", "ubuntu-24.04.iso"].iter().enumerate() {
                let t = TorrentRecord {
                    info_hash: [n as u8 + 1; 20],
                    version: TorrentVersion::V1,
                    v2_hash: None,
                    name: name.as_bytes().to_vec(),
                    files: vec![FileEntry {
                        path: vec![b"dir".to_vec(), name.as_bytes().to_vec()],
                        length: 1 << 20,
                    }],
                    total_size: 1 << 20,
                    piece_length: 1 << 16,
                    private: false,
                    class: ContentClass::Video,
                    content_type: None,
                    fetched_at: 1_700_000_000,
                    scrape: None,
                    info_dict: None,
                };
                w.put(&t, 1_700_000_000).expect("put");
            }
            w.commit().expect("commit");
            index.reload().expect("reload");
            (dir, index)
        })
        .1
}

/// A temporary directory without a dev-dependency.
mod tempfile_dir {
    pub struct Dir(pub std::path::PathBuf);
    impl Dir {
        pub fn new() -> Dir {
            let p = std::env::temp_dir().join(format!("trawl-fuzz-serve-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).expect("temp dir");
            Dir(p)
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(data).into_owned().collect();
    let borrowed = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    if let Ok(r) = SearchRequest::parse(borrowed) {
        assert!(r.limit >= 1 && r.limit <= trawl_serve::query::MAX_LIMIT);
        let page = Searcher::new(index()).search(&r).expect("a parsed request searches");
        assert!(page.hits.len() <= r.limit);
    }
    let t = pairs.iter().find(|(k, _)| k == "t").map_or("search", |(_, v)| v.as_str());
    if let Ok(r) = trawl_serve::torznab::request(t, &pairs) {
        assert!(r.offset <= trawl_serve::query::MAX_OFFSET);
        let page = Searcher::new(index()).search(&r).expect("a Torznab request searches");
        assert!(page.hits.len() <= r.limit);
    }
});
