//! Torznab (`/torznab/api`): what Prowlarr, Sonarr and Radarr ask of a
//! generic Torznab indexer. `t=caps`, `t=search`, `t=tvsearch`, `t=movie`,
//! `cat`, `limit`, `offset`, and items with seeders, peers, the infohash and
//! a magnet link. Errors are Torznab `<error code=… description=…/>` objects.
//!
//! Owns the category mapping from trawl's classes and bitmagnet types, and
//! the XML, every value of which is escaped here.

use axum::extract::{RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use trawl_storage::export::civil_from_days;
use trawl_storage::{BitmagnetType, ContentClass};

use crate::http::{params, run_search, Shared};
use crate::query::{parse_text, BadRequest, SearchRequest, SortKey, DEFAULT_LIMIT, MAX_LIMIT, MAX_OFFSET};
use crate::search::{Hit, Page};

/// The standard Newznab/Torznab categories trawl maps into: (id, name, parent).
pub const CATEGORIES: &[(u64, &str)] = &[
    (1000, "Console"),
    (2000, "Movies"),
    (3000, "Audio"),
    (3030, "Audio/Audiobook"),
    (4000, "PC"),
    (4050, "PC/Games"),
    (5000, "TV"),
    (6000, "XXX"),
    (7000, "Books"),
    (7020, "Books/EBook"),
    (7030, "Books/Comics"),
    (8000, "Other"),
];

/// The category of a torrent: from its bitmagnet type when one was decided,
/// else from its content class.
pub fn category(t: Option<BitmagnetType>, c: ContentClass) -> u64 {
    match t {
        Some(BitmagnetType::Movie) => 2000,
        Some(BitmagnetType::TvShow) => 5000,
        Some(BitmagnetType::Music) => 3000,
        Some(BitmagnetType::Audiobook) => 3030,
        Some(BitmagnetType::Ebook) => 7020,
        Some(BitmagnetType::Comic) => 7030,
        Some(BitmagnetType::Game) => 4050,
        Some(BitmagnetType::Software) => 4000,
        Some(BitmagnetType::Xxx) => 6000,
        None => match c {
            ContentClass::Video => 2000,
            ContentClass::Audio => 3000,
            ContentClass::Ebook => 7000,
            ContentClass::Software => 4000,
            ContentClass::Archive | ContentClass::Image | ContentClass::Document | ContentClass::Other => 8000,
        },
    }
}

/// The ids a torrent of category `c` is found under: itself and its parent.
pub fn category_terms(c: u64) -> [u64; 2] {
    [c, c / 1000 * 1000]
}

/// Torznab error codes (the spec's table).
const ERR_MISSING: u32 = 200;
const ERR_BAD_PARAM: u32 = 201;
const ERR_NO_FUNCTION: u32 = 202;

pub async fn handler(State(state): State<Shared>, RawQuery(q): RawQuery) -> Response {
    let p = params(&q);
    let get = |k: &str| p.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let Some(t) = get("t") else {
        return error(ERR_MISSING, "missing parameter t");
    };
    if t == "caps" {
        return xml(StatusCode::OK, caps());
    }
    let r = match request(t, &p) {
        Ok(r) => r,
        Err((code, e)) => return error(code, &e.0),
    };
    match run_search(&state, r.clone()).await {
        Ok(page) => xml(StatusCode::OK, feed(&page, r.offset)),
        Err(e) => error(900, &e.message),
    }
}

/// The search a Torznab request asks for.
pub fn request(t: &str, p: &[(String, String)]) -> Result<SearchRequest, (u32, BadRequest)> {
    let bad = |m: String| (ERR_BAD_PARAM, BadRequest(m));
    if !matches!(t, "search" | "tvsearch" | "tv-search" | "movie" | "movie-search") {
        return Err((ERR_NO_FUNCTION, BadRequest(format!("no function t={t}"))));
    }
    let mut r = SearchRequest {
        limit: DEFAULT_LIMIT,
        ..SearchRequest::default()
    };
    let mut text = String::new();
    let (mut season, mut ep) = (None, None);
    for (k, v) in p {
        match k.as_str() {
            "q" => text = v.clone(),
            "cat" => {
                for c in v.split(',').filter(|s| !s.is_empty()).take(16) {
                    let id: u64 = c
                        .trim()
                        .parse()
                        .map_err(|_| bad(format!("cat: {c:?} is not a number")))?;
                    r.categories.push(id);
                }
            }
            "limit" => {
                let n: usize = v.parse().map_err(|_| bad(format!("limit: {v:?} is not a number")))?;
                r.limit = n.clamp(1, MAX_LIMIT);
            }
            "offset" => {
                let n: usize = v.parse().map_err(|_| bad(format!("offset: {v:?} is not a number")))?;
                if n > MAX_OFFSET {
                    return Err(bad(format!("offset: at most {MAX_OFFSET}")));
                }
                r.offset = n;
            }
            "season" => {
                season = Some(
                    v.parse::<u32>()
                        .map_err(|_| bad(format!("season: {v:?} is not a number")))?,
                )
            }
            "ep" => {
                ep = Some(
                    v.parse::<u32>()
                        .map_err(|_| bad(format!("ep: {v:?} is not a number")))?,
                )
            }
            // Accepted and not used: trawl has names and files, not IMDb or TVDB ids.
            "t" | "apikey" | "imdbid" | "tvdbid" | "tmdbid" | "rid" | "tvmazeid" | "extended" | "attrs" => {}
            _ => {}
        }
    }
    match (season, ep) {
        (Some(s), Some(e)) => text.push_str(&format!(" S{s:02}E{e:02}")),
        (Some(s), None) => text.push_str(&format!(" S{s:02}")),
        _ => {}
    }
    r.terms = parse_text(&text).map_err(|e| (ERR_BAD_PARAM, e))?;
    // Torznab feeds are newest first without words, best match first with them.
    r.sort = if r.terms.iter().any(|t| !t.exclude) {
        SortKey::Relevance
    } else {
        SortKey::FirstSeen
    };
    Ok(r)
}

fn xml(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/xml; charset=utf-8")], body).into_response()
}

fn error(code: u32, description: &str) -> Response {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<error code=\"{code}\" description=\"{}\"/>\n",
        escape(description)
    );
    // Torznab clients read the code from the body; 200 keeps them from
    // treating a bad parameter as the indexer being down.
    xml(StatusCode::OK, body)
}

pub fn caps() -> String {
    let mut s =
        String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<caps>\n  <server title=\"trawl\" version=\"");
    s.push_str(env!("CARGO_PKG_VERSION"));
    s.push_str("\"/>\n");
    s.push_str(&format!(
        "  <limits default=\"{DEFAULT_LIMIT}\" max=\"{MAX_LIMIT}\"/>\n"
    ));
    s.push_str(
        "  <searching>\n    <search available=\"yes\" supportedParams=\"q\"/>\n    \
         <tv-search available=\"yes\" supportedParams=\"q,season,ep\"/>\n    \
         <movie-search available=\"yes\" supportedParams=\"q\"/>\n    \
         <music-search available=\"no\" supportedParams=\"q\"/>\n    \
         <audio-search available=\"no\" supportedParams=\"q\"/>\n    \
         <book-search available=\"no\" supportedParams=\"q\"/>\n  </searching>\n  <categories>\n",
    );
    for &(id, name) in CATEGORIES.iter().filter(|(id, _)| id % 1000 == 0) {
        s.push_str(&format!("    <category id=\"{id}\" name=\"{}\">\n", escape(name)));
        for &(sub, sub_name) in CATEGORIES
            .iter()
            .filter(|(s, _)| s % 1000 != 0 && s / 1000 == id / 1000)
        {
            s.push_str(&format!("      <subcat id=\"{sub}\" name=\"{}\"/>\n", escape(sub_name)));
        }
        s.push_str("    </category>\n");
    }
    s.push_str("  </categories>\n</caps>\n");
    s
}

/// The RSS 2.0 feed of one page, with Torznab attributes.
pub fn feed(page: &Page, offset: usize) -> String {
    let mut s = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<rss version=\"2.0\" \
         xmlns:atom=\"http://www.w3.org/2005/Atom\" xmlns:torznab=\"http://torznab.com/schemas/2015/feed\">\n\
         <channel>\n  <title>trawl</title>\n  <description>torrents found on the DHT by trawl</description>\n",
    );
    s.push_str(&format!(
        "  <torznab:response offset=\"{offset}\" total=\"{}\"/>\n",
        page.total
    ));
    for h in &page.hits {
        item(&mut s, h);
    }
    s.push_str("</channel>\n</rss>\n");
    s
}

fn item(s: &mut String, h: &Hit) {
    let cat = h.category;
    let magnet = escape(&h.magnet);
    s.push_str("  <item>\n");
    s.push_str(&format!("    <title>{}</title>\n", escape(&h.name)));
    s.push_str(&format!("    <guid isPermaLink=\"false\">{}</guid>\n", h.info_hash));
    s.push_str(&format!("    <pubDate>{}</pubDate>\n", rfc2822(h.first_seen)));
    s.push_str(&format!("    <size>{}</size>\n", h.size));
    s.push_str(&format!("    <link>{magnet}</link>\n"));
    s.push_str(&format!(
        "    <enclosure url=\"{magnet}\" length=\"{}\" type=\"application/x-bittorrent;x-scheme-handler/magnet\"/>\n",
        h.size
    ));
    s.push_str(&format!("    <category>{cat}</category>\n"));
    let attrs: [(&str, String); 7] = [
        ("category", cat.to_string()),
        ("size", h.size.to_string()),
        ("files", h.files.to_string()),
        ("seeders", h.seeders.to_string()),
        ("peers", (h.seeders + h.leechers).to_string()),
        ("infohash", h.info_hash.clone()),
        ("magneturl", magnet.clone()),
    ];
    for (name, value) in attrs {
        s.push_str(&format!("    <torznab:attr name=\"{name}\" value=\"{value}\"/>\n"));
    }
    s.push_str("  </item>\n");
}

/// XML text and attribute escaping; characters XML 1.0 cannot carry at all
/// (most C0 controls) become U+FFFD.
pub fn escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// RSS dates: `Mon, 07 Dec 2026 20:39:32 +0000`.
pub fn rfc2822(t: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = t / 86_400;
    let secs = t % 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{}, {d:02} {} {y} {:02}:{:02}:{:02} +0000",
        DAYS[(days % 7) as usize],
        MONTHS[(m - 1) as usize],
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn dates_are_rfc2822() {
        assert_eq!(rfc2822(0), "Thu, 01 Jan 1970 00:00:00 +0000");
        assert_eq!(rfc2822(1_796_675_972), "Mon, 07 Dec 2026 20:39:32 +0000");
        assert_eq!(rfc2822(951_782_400), "Tue, 29 Feb 2000 00:00:00 +0000");
    }

    #[test]
    fn escaping_leaves_no_markup() {
        assert_eq!(escape("<a href=\"x\">&'"), "&lt;a href=&quot;x&quot;&gt;&amp;&apos;");
        assert_eq!(escape("a\u{1}b"), "a\u{FFFD}b");
    }

    #[test]
    fn tv_and_movie_requests_map_to_searches() {
        let r = request(
            "tvsearch",
            &p(&[("q", "Show"), ("season", "1"), ("ep", "2"), ("cat", "5000,5040")]),
        )
        .unwrap();
        let words: Vec<_> = r.terms.iter().map(|t| t.text.as_str()).collect();
        assert_eq!(words, ["Show", "S01E02"]);
        assert_eq!(r.categories, [5000, 5040]);
        let r = request("movie", &p(&[("limit", "500"), ("offset", "30")])).unwrap();
        assert_eq!((r.limit, r.offset, r.sort), (MAX_LIMIT, 30, SortKey::FirstSeen));
        assert_eq!(request("music", &p(&[])).unwrap_err().0, ERR_NO_FUNCTION);
        assert_eq!(request("search", &p(&[("cat", "tv")])).unwrap_err().0, ERR_BAD_PARAM);
        assert_eq!(
            request("search", &p(&[("offset", "99999")])).unwrap_err().0,
            ERR_BAD_PARAM
        );
    }

    #[test]
    fn categories_cover_every_class_and_type() {
        for t in BitmagnetType::ALL {
            let c = category(Some(t), ContentClass::Other);
            assert!(CATEGORIES.iter().any(|(id, _)| *id == c), "{t:?}");
        }
        for c in ContentClass::ALL {
            let id = category(None, c);
            assert!(CATEGORIES.iter().any(|(x, _)| *x == id), "{c:?}");
        }
        assert_eq!(category_terms(7020), [7020, 7000]);
        assert_eq!(category_terms(2000), [2000, 2000]);
    }
}
