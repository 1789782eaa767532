//! `/torrent/{hash}`: everything the store knows of one torrent, and its
//! files as a tree of folders.
//!
//! A torrent may list hundreds of thousands of files and paths of any depth:
//! the page shows at most [`MAX_FILES_SHOWN`] files, says how many more
//! there are, and nests at most [`MAX_DEPTH`] folders (deeper components
//! stay in the file's name), so neither the page nor the recursion that
//! writes it grows with what a stranger declared.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;

use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::Response;
use trawl_storage::export::magnet_link;
use trawl_storage::{InfoHashRecord, Source, TorrentRecord, TorrentVersion};

use super::html::{clip, count, datetime, size, time_element, Bdi, Esc};
use super::search::{class_label, type_label};
use super::{document, error_page, page, Head, Nav};
use crate::http::{now_secs, parse_hash, ApiError, Shared};
use crate::index::hex;

/// Files listed on one page.
pub const MAX_FILES_SHOWN: usize = 2000;
/// Folders nested at most; deeper path components join the file name.
pub const MAX_DEPTH: usize = 16;
/// Folders shown open (the top level); deeper ones start closed.
const OPEN_DEPTH: usize = 1;

pub async fn handler(State(state): State<Shared>, UrlPath(hash): UrlPath<String>) -> Response {
    let h = match parse_hash(&hash) {
        Ok(h) => h,
        Err(e) => return error_page(e.status, "Not an infohash", &e.message),
    };
    let s = Arc::clone(&state);
    let found = tokio::task::spawn_blocking(move || {
        let t = s.store.torrent(&h).map_err(ApiError::internal)?;
        let key = t.as_ref().map_or(h, |t| t.info_hash);
        let seen = s.store.infohash(&key).map_err(ApiError::internal)?;
        Ok::<_, ApiError>((t, seen))
    })
    .await
    .map_err(ApiError::internal)
    .and_then(|r| r);
    match found {
        Ok((Some(t), seen)) => page(StatusCode::OK, render(&t, seen.as_ref(), now_secs())),
        Ok((None, Some(seen))) => error_page(
            StatusCode::NOT_FOUND,
            "Metadata not fetched yet",
            &format!(
                "This infohash was first seen {} and {} times since, but its metadata is not stored yet.",
                datetime(u64::from(seen.first_seen)),
                count(u64::from(seen.seen))
            ),
        ),
        Ok((None, None)) => error_page(
            StatusCode::NOT_FOUND,
            "Not found",
            "No torrent with this infohash is stored.",
        ),
        Err(e) => error_page(e.status, "Cannot read the store", &e.message),
    }
}

/// The page of `t`, seen as `seen` says.
pub fn render(t: &TorrentRecord, seen: Option<&InfoHashRecord>, now: u64) -> String {
    let name = t.name_readable();
    let magnet = magnet_link(&t.info_hash, Some(t));
    let mut m = String::new();
    let _ = write!(
        m,
        "<article class=\"torrent\">\n<header class=\"torrent-head\"><p class=\"kicker\">\
         <span class=\"tag tag-{}\">{}</span></p><h1 class=\"torrent-name\">{}</h1>\
         <p class=\"actions\"><a class=\"button\" href=\"{}\">Open magnet link</a>\
         <a class=\"button secondary\" href=\"/api/torrent/{}\">JSON</a></p></header>\n",
        Esc(t.class.as_str()),
        class_label(t.class),
        Bdi(&name),
        Esc(&magnet),
        hex(&t.info_hash),
    );

    // Details beside the files on a wide screen, above them on a narrow one.
    m.push_str("<div class=\"torrent-body\">\n<section class=\"facts\" aria-label=\"Details\"><dl>\n");
    let mut hashes = String::new();
    if t.version != TorrentVersion::V2 {
        let _ = write!(
            hashes,
            "<div class=\"wide\"><dt>Info hash v1</dt><dd><code class=\"hash\">{}</code></dd></div>",
            hex(&t.info_hash)
        );
    }
    if let Some(v2) = t.v2_hash {
        let _ = write!(
            hashes,
            "<div class=\"wide\"><dt>Info hash v2</dt><dd><code class=\"hash\">{}</code></dd></div>",
            hex(&v2)
        );
    }
    let _ = writeln!(m, "{hashes}");
    let mut fact = |label: &str, value: &str| {
        let _ = writeln!(m, "<div><dt>{label}</dt><dd>{value}</dd></div>");
    };
    fact(
        "Size",
        &format!(
            "{} <span class=\"muted\">({} bytes)</span>",
            size(t.total_size),
            count(t.total_size)
        ),
    );
    fact("Files", &count(t.file_count() as u64));
    fact("Class", class_label(t.class));
    fact("Content type", t.content_type.map_or("not decided", type_label));
    fact(
        "Version",
        match t.version {
            TorrentVersion::V1 => "v1 (BEP 3)",
            TorrentVersion::V2 => "v2 (BEP 52)",
            TorrentVersion::Hybrid => "hybrid (v1 and v2)",
        },
    );
    fact("Piece length", &size(t.piece_length));
    if t.private {
        fact("Private", "yes: the swarm asks clients to use its trackers only");
    }
    let swarm = match t.scrape {
        Some(s) => {
            let mut v = format!(
                "<span class=\"seeders\">{}</span> seeders · {} leechers <span class=\"muted note\">estimated ",
                count(u64::from(s.seeders)),
                count(u64::from(s.leechers))
            );
            time_element(&mut v, u64::from(s.at), now);
            v.push_str("</span>");
            v
        }
        None => "<span class=\"muted\">not scraped yet</span>".to_owned(),
    };
    fact("Swarm", &swarm);
    if let Some(s) = seen {
        let when = |t: u32| {
            let mut v = String::new();
            time_element(&mut v, u64::from(t), now);
            v
        };
        fact("First seen", &when(s.first_seen));
        fact("Last seen", &when(s.last_seen));
        fact("Times seen", &count(u64::from(s.seen)));
        let sources: Vec<&str> = s.sources.iter().map(source_label).collect();
        fact("Sources", &sources.join(", "));
    }
    fact("Fetched", &{
        let mut v = String::new();
        time_element(&mut v, u64::from(t.fetched_at), now);
        v
    });
    let _ = writeln!(m, "</dl></section>");
    files(&mut m, t);
    let _ = writeln!(
        m,
        "<section class=\"magnet-box\" aria-label=\"Magnet link\"><h2>Magnet link</h2>\
         <p><code class=\"magnet-text\">{}</code></p></section>",
        Esc(&magnet)
    );
    m.push_str("</div>\n</article>\n");
    document(&clip(&name, 80), Nav::None, Head::default(), &m)
}

fn source_label(s: Source) -> &'static str {
    match s {
        Source::Sample => "sample_infohashes (BEP 51)",
        Source::GetPeers => "get_peers",
        Source::Announce => "announce_peer",
        Source::Import => "import",
    }
}

/// A folder: its folders by name, its files, and what lies below it.
#[derive(Default)]
struct Folder {
    folders: BTreeMap<String, Folder>,
    files: Vec<(String, u64)>,
    bytes: u64,
    files_below: u64,
}

impl Folder {
    fn insert(&mut self, path: &[Vec<u8>], length: u64) {
        let mut at = self;
        let folders = path.len().saturating_sub(1).min(MAX_DEPTH);
        at.bytes = at.bytes.saturating_add(length);
        at.files_below += 1;
        for c in &path[..folders] {
            at = at.folders.entry(String::from_utf8_lossy(c).into_owned()).or_default();
            at.bytes = at.bytes.saturating_add(length);
            at.files_below += 1;
        }
        let rest: Vec<_> = path[folders..].iter().map(|c| String::from_utf8_lossy(c)).collect();
        let name = if rest.is_empty() {
            "(no name)".to_owned()
        } else {
            rest.join("/")
        };
        at.files.push((name, length));
    }
}

fn files(out: &mut String, t: &TorrentRecord) {
    let mut root = Folder::default();
    if t.files.is_empty() {
        root.insert(std::slice::from_ref(&t.name), t.total_size);
    } else {
        for f in &t.files {
            root.insert(&f.path, f.length);
        }
    }
    let total = root.files_below;
    let _ = writeln!(
        out,
        "<section class=\"files\" aria-labelledby=\"files-h\"><h2 id=\"files-h\">Files \
         <span class=\"muted\">{}</span></h2>",
        count(total)
    );
    let shown = (total as usize).min(MAX_FILES_SHOWN);
    if shown < total as usize {
        let _ = writeln!(
            out,
            "<p class=\"notice\">Showing the first {} of {} files ({} more not listed).</p>",
            count(shown as u64),
            count(total),
            count(total - shown as u64)
        );
    }
    let mut budget = shown;
    folder(out, &root, 0, &mut budget);
    out.push_str("</section>\n");
}

/// Writes `f`'s contents as a list, folders first, until `budget` files are out.
fn folder(out: &mut String, f: &Folder, depth: usize, budget: &mut usize) {
    out.push_str(if depth == 0 { "<ul class=\"tree\">\n" } else { "<ul>\n" });
    for (name, sub) in &f.folders {
        if *budget == 0 {
            break;
        }
        let open = if depth < OPEN_DEPTH { " open" } else { "" };
        let _ = writeln!(
            out,
            "<li class=\"folder\"><details{open}><summary><span class=\"fname\">{}</span>\
             <span class=\"fsize\">{} · {} {}</span></summary>",
            Bdi(name),
            size(sub.bytes),
            count(sub.files_below),
            if sub.files_below == 1 { "file" } else { "files" }
        );
        folder(out, sub, depth + 1, budget);
        out.push_str("</details></li>\n");
    }
    let mut files: Vec<&(String, u64)> = f.files.iter().collect();
    files.sort();
    for (name, length) in files {
        if *budget == 0 {
            break;
        }
        *budget -= 1;
        let _ = writeln!(
            out,
            "<li class=\"file\"><span class=\"fname\">{}</span><span class=\"fsize\">{}</span></li>",
            Bdi(name),
            size(*length)
        );
    }
    out.push_str("</ul>\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use trawl_storage::{ContentClass, FileEntry};

    fn record(files: Vec<FileEntry>) -> TorrentRecord {
        TorrentRecord {
            info_hash: [0xab; 20],
            version: TorrentVersion::Hybrid,
            v2_hash: Some([0xcd; 32]),
            name: b"Show \xff<x>".to_vec(),
            total_size: files.iter().map(|f| f.length).sum(),
            files,
            piece_length: 1 << 20,
            private: false,
            class: ContentClass::Video,
            content_type: None,
            fetched_at: 1_700_000_000,
            scrape: None,
            info_dict: None,
        }
    }

    fn file(path: &str, length: u64) -> FileEntry {
        FileEntry {
            path: path.split('/').map(|c| c.as_bytes().to_vec()).collect(),
            length,
        }
    }

    #[test]
    fn files_nest_by_folder_with_sizes() {
        let t = record(vec![
            file("S01/E02.mkv", 2 << 30),
            file("S01/E01.mkv", 1 << 30),
            file("S01/Subs/en.srt", 2048),
            file("readme.txt", 10),
        ]);
        let html = render(&t, None, 1_700_000_000);
        assert!(html.contains("<bdi>Show \u{FFFD}&lt;x&gt;</bdi>"), "{html}");
        assert!(html.contains(&"ab".repeat(20)) && html.contains(&"cd".repeat(32)));
        let s01 = html.find("<bdi>S01</bdi>").unwrap();
        let e01 = html.find("<bdi>E01.<wbr>mkv</bdi>").unwrap();
        let e02 = html.find("<bdi>E02.<wbr>mkv</bdi>").unwrap();
        let readme = html.find("<bdi>readme.<wbr>txt</bdi>").unwrap();
        assert!(s01 < e01 && e01 < e02 && e02 < readme, "folders first, names in order");
        assert!(html.contains("3.0 GiB · 3 files"));
        assert!(html.contains("<bdi>Subs</bdi></span><span class=\"fsize\">2.0 KiB · 1 file"));
        assert!(html.contains("<details open>"));
        assert!(html.contains("not scraped yet"));
    }

    #[test]
    fn listing_and_nesting_are_bounded() {
        let many: Vec<_> = (0..MAX_FILES_SHOWN + 5)
            .map(|i| file(&format!("d/f{i:05}"), 1))
            .collect();
        let html = render(&record(many), None, 0);
        assert_eq!(html.matches("<li class=\"file\">").count(), MAX_FILES_SHOWN);
        assert!(html.contains("Showing the first 2,000 of 2,005 files (5 more not listed)."));

        let deep = "a/".repeat(10_000) + "end";
        let html = render(&record(vec![file(&deep, 1)]), None, 0);
        assert_eq!(html.matches("<li class=\"folder\">").count(), MAX_DEPTH);
        assert!(html.contains(&format!("<bdi>{}end</bdi>", "a/".repeat(10_000 - MAX_DEPTH))));
    }

    #[test]
    fn a_single_file_torrent_lists_its_name() {
        let mut t = record(vec![]);
        t.total_size = 5;
        let html = render(&t, None, 0);
        assert_eq!(html.matches("<li class=\"file\">").count(), 1);
        assert!(html.contains("<li class=\"file\"><span class=\"fname\"><bdi>Show \u{FFFD}&lt;x&gt;</bdi>"));
    }
}
