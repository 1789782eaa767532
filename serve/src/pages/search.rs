//! `/` and `/search`: the search form and one page of results.
//!
//! The form sends the parameters of `/api/search`, parsed by the same
//! [`SearchRequest::parse`]; the fields a form leaves empty are dropped
//! first, and the parameters it has no field for (`min_size`, `since`, …)
//! ride along as hidden fields. A refused request is shown in the page with
//! 400, a busy server with 503.

use std::fmt::Write;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use trawl_storage::{BitmagnetType, ContentClass};

use super::html::{clip, count, size, time_element, Bdi, Esc};
use super::{document, page, Head, Nav};
use crate::http::{now_secs, params, run_search, Shared};
use crate::query::{SearchRequest, MAX_QUERY_BYTES};
use crate::search::{Hit, Page};

/// Characters of a name shown in the results (the torrent page shows all).
pub const LIST_NAME_CHARS: usize = 200;

/// Parameters the form has no field for, kept as hidden fields.
const HIDDEN: [&str; 8] = [
    "version",
    "min_size",
    "max_size",
    "since",
    "until",
    "min_seeders",
    "limit",
    "cursor",
];

const SORTS: [(&str, &str); 4] = [
    ("", "Relevance"),
    ("first_seen", "First seen"),
    ("seeders", "Seeders"),
    ("size", "Size"),
];
const ORDERS: [(&str, &str); 2] = [("", "Descending"), ("asc", "Ascending")];

pub async fn handler(State(state): State<Shared>, RawQuery(q): RawQuery) -> Response {
    let pairs: Vec<(String, String)> = params(&q).into_iter().filter(|(_, v)| !v.is_empty()).collect();
    let parsed = SearchRequest::parse(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let (status, outcome) = match parsed {
        Err(e) => (StatusCode::BAD_REQUEST, Err(e.0)),
        Ok(r) => match run_search(&state, r).await {
            Ok(p) => (StatusCode::OK, Ok(p)),
            Err(e) => (e.status, Err(e.message)),
        },
    };
    page(status, render(&pairs, &outcome, now_secs()))
}

/// The whole page for the request's (non-empty) parameters and what the
/// search gave: a page of hits or the reason there is none.
pub fn render(pairs: &[(String, String)], outcome: &Result<Page, String>, now: u64) -> String {
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map_or("", |(_, v)| v.as_str());
    let text = get("q");
    let mut main = String::new();
    form(&mut main, pairs);
    match outcome {
        Err(message) => {
            let _ = writeln!(
                main,
                "<div class=\"notice error\" role=\"alert\"><strong>Cannot search.</strong> {}</div>",
                Esc(message)
            );
        }
        Ok(p) => {
            let filtered = pairs.iter().any(|(k, _)| k != "cursor");
            results(&mut main, pairs, p, filtered, now);
        }
    }
    let title = if text.is_empty() {
        "Search".to_owned()
    } else {
        format!("{} – Search", clip(text, 80))
    };
    document(&title, Nav::Search, Head::default(), &main)
}

fn form(out: &mut String, pairs: &[(String, String)]) {
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map_or("", |(_, v)| v.as_str());
    let _ = write!(
        out,
        "<form class=\"search\" action=\"/search\" method=\"get\" role=\"search\">\n\
         <div class=\"query\"><label class=\"sr\" for=\"q\">Search names and files</label>\
         <input id=\"q\" type=\"search\" name=\"q\" value=\"{}\" maxlength=\"{MAX_QUERY_BYTES}\" \
         placeholder=\"Words, &quot;a phrase&quot;, -exclude\" spellcheck=\"false\">\
         <button type=\"submit\">Search</button></div>\n<div class=\"filters\">",
        Esc(get("q"))
    );
    let classes: Vec<(&str, &str)> = std::iter::once(("", "Any"))
        .chain(ContentClass::ALL.iter().map(|c| (c.as_str(), class_label(*c))))
        .collect();
    let types: Vec<(&str, &str)> = std::iter::once(("", "Any"))
        .chain(BitmagnetType::ALL.iter().map(|t| (t.as_str(), type_label(*t))))
        .collect();
    select(out, "class", "Class", &classes, get("class"));
    select(out, "type", "Type", &types, get("type"));
    select(out, "sort", "Sort by", &SORTS, get("sort"));
    select(out, "order", "Order", &ORDERS, get("order"));
    out.push_str("</div>\n");
    // A new search starts at its first page: the cursor is not carried.
    for (k, v) in pairs
        .iter()
        .filter(|(k, _)| HIDDEN.contains(&k.as_str()) && k != "cursor")
    {
        let _ = write!(out, "<input type=\"hidden\" name=\"{}\" value=\"{}\">", Esc(k), Esc(v));
    }
    out.push_str("</form>\n");
}

/// A `<select>` with `current` chosen; a value the list lacks (a comma
/// list, say) is added as its own option so that it survives the next search.
fn select(out: &mut String, name: &str, label: &str, options: &[(&str, &str)], current: &str) {
    let _ = write!(out, "<label><span>{label}</span><select name=\"{name}\">");
    let known = options.iter().any(|(v, _)| *v == current);
    if !known {
        let _ = write!(out, "<option value=\"{0}\" selected>{0}</option>", Esc(current));
    }
    for (value, text) in options {
        let chosen = if *value == current { " selected" } else { "" };
        let _ = write!(out, "<option value=\"{value}\"{chosen}>{text}</option>");
    }
    out.push_str("</select></label>");
}

fn results(out: &mut String, pairs: &[(String, String)], p: &Page, filtered: bool, now: u64) {
    let heading = if filtered { "Results" } else { "Newest torrents" };
    let noun = if p.total == 1 { "torrent" } else { "torrents" };
    let _ = write!(
        out,
        "<section class=\"results\" aria-labelledby=\"results-h\">\n<div class=\"results-head\">\
         <h1 id=\"results-h\">{heading}</h1><p class=\"total\"><strong>{}</strong> {noun}</p></div>\n",
        count(p.total)
    );
    if p.hits.is_empty() {
        out.push_str("<p class=\"empty\">No torrent matches. Fewer words or filters find more.</p>\n</section>\n");
        return;
    }
    out.push_str(
        "<div class=\"table-wrap\"><table class=\"hits\">\n<thead><tr><th scope=\"col\">Name</th>\
         <th scope=\"col\">Class</th><th scope=\"col\" class=\"num\">Size</th>\
         <th scope=\"col\" class=\"num\">Seeders</th><th scope=\"col\" class=\"num\">Leechers</th>\
         <th scope=\"col\">First seen</th><th scope=\"col\"><span class=\"sr\">Magnet link</span></th></tr></thead>\n<tbody>\n",
    );
    for hit in &p.hits {
        row(out, hit, now);
    }
    out.push_str("</tbody>\n</table></div>\n");
    let cursor_given = pairs.iter().any(|(k, _)| k == "cursor");
    if cursor_given || p.next_cursor.is_some() {
        out.push_str("<nav class=\"pager\" aria-label=\"Pages\">");
        if cursor_given {
            let _ = write!(out, "<a href=\"{}\">« First page</a>", Esc(&search_url(pairs, None)));
        }
        if let Some(c) = &p.next_cursor {
            let _ = write!(
                out,
                "<a rel=\"next\" href=\"{}\">Next page »</a>",
                Esc(&search_url(pairs, Some(c)))
            );
        }
        out.push_str("</nav>\n");
    }
    out.push_str("</section>\n");
}

fn row(out: &mut String, hit: &Hit, now: u64) {
    let mut meta = Vec::new();
    if let Some(t) = hit.content_type.and_then(BitmagnetType::parse) {
        meta.push(type_label(t).to_owned());
    }
    if hit.files > 1 {
        meta.push(format!("{} files", count(hit.files)));
    }
    if hit.version != "v1" {
        meta.push(hit.version.to_owned());
    }
    let _ = write!(
        out,
        "<tr><td class=\"name\"><a href=\"/torrent/{}\">{}</a>",
        Esc(&hit.info_hash),
        Bdi(&clip(&hit.name, LIST_NAME_CHARS))
    );
    if !meta.is_empty() {
        let _ = write!(out, "<span class=\"meta\">{}</span>", Esc(&meta.join(" · ")));
    }
    let class = ContentClass::parse(hit.class).map_or(hit.class, class_label);
    let _ = write!(
        out,
        "</td><td class=\"class\" data-label=\"Class\"><span class=\"tag tag-{}\">{}</span></td>\
         <td class=\"num size\" data-label=\"Size\">{}</td>\
         <td class=\"num seeders{}\" data-label=\"Seeders\">{}</td>\
         <td class=\"num leechers\" data-label=\"Leechers\">{}</td><td class=\"seen\" data-label=\"First seen\">",
        Esc(hit.class),
        Esc(class),
        size(hit.size),
        if hit.seeders == 0 { " none" } else { "" },
        count(hit.seeders),
        count(hit.leechers),
    );
    time_element(out, hit.first_seen, now);
    let _ = writeln!(
        out,
        "</td><td class=\"magnet\"><a href=\"{}\" title=\"Magnet link\">Magnet</a></td></tr>",
        Esc(&hit.magnet)
    );
}

/// `/search` with `pairs` and `cursor` in place of any cursor they have.
pub fn search_url(pairs: &[(String, String)], cursor: Option<&str>) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs.iter().filter(|(k, _)| k != "cursor") {
        s.append_pair(k, v);
    }
    if let Some(c) = cursor {
        s.append_pair("cursor", c);
    }
    let q = s.finish();
    if q.is_empty() {
        "/search".into()
    } else {
        format!("/search?{q}")
    }
}

pub fn class_label(c: ContentClass) -> &'static str {
    match c {
        ContentClass::Video => "Video",
        ContentClass::Audio => "Audio",
        ContentClass::Ebook => "E-book",
        ContentClass::Software => "Software",
        ContentClass::Archive => "Archive",
        ContentClass::Image => "Image",
        ContentClass::Document => "Document",
        ContentClass::Other => "Other",
    }
}

pub fn type_label(t: BitmagnetType) -> &'static str {
    match t {
        BitmagnetType::Movie => "Movie",
        BitmagnetType::TvShow => "TV show",
        BitmagnetType::Music => "Music",
        BitmagnetType::Ebook => "E-book",
        BitmagnetType::Comic => "Comic",
        BitmagnetType::Audiobook => "Audiobook",
        BitmagnetType::Game => "Game",
        BitmagnetType::Software => "Software",
        BitmagnetType::Xxx => "XXX",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn hit(name: &str) -> Hit {
        Hit {
            info_hash: "ab".repeat(20),
            name: name.into(),
            size: 5 << 30,
            files: 2,
            first_seen: 1_700_000_000,
            seeders: 1200,
            leechers: 3,
            class: "video",
            content_type: Some("movie"),
            version: "hybrid",
            category: 2000,
            magnet: format!("magnet:?xt=urn:btih:{}&dn=x", "ab".repeat(20)),
        }
    }

    #[test]
    fn results_escape_names_and_page_on() {
        let p = Page {
            total: 1234,
            hits: vec![hit("<b>x</b>")],
            next_cursor: Some("0".repeat(32)),
        };
        let q = pairs(&[("q", "a\"b"), ("class", "video,audio"), ("min_size", "1G")]);
        let html = render(&q, &Ok(p), 1_700_000_600);
        assert!(html.contains("<bdi>&lt;b&gt;x&lt;/b&gt;</bdi>"), "{html}");
        assert!(!html.contains("<b>x"));
        assert!(html.contains("value=\"a&quot;b\""));
        assert!(html.contains("<option value=\"video,audio\" selected>video,audio</option>"));
        assert!(html.contains("<input type=\"hidden\" name=\"min_size\" value=\"1G\">"));
        assert!(html.contains("<strong>1,234</strong> torrents"));
        assert!(html.contains("5.0 GiB") && html.contains("1,200") && html.contains("10 min ago"));
        assert!(html.contains("Movie · 2 files · hybrid"));
        assert!(html.contains(&format!(
            "href=\"/search?q=a%22b&amp;class=video%2Caudio&amp;min_size=1G&amp;cursor={}\"",
            "0".repeat(32)
        )));
        assert!(!html.contains("First page"), "no cursor given: this is the first page");
        assert!(html.contains("href=\"magnet:?xt=urn:btih:"));
    }

    #[test]
    fn an_error_is_shown_with_the_form() {
        let html = render(&pairs(&[("q", "<i>")]), &Err("q: <bad>".into()), 0);
        assert!(html.contains("Cannot search.</strong> q: &lt;bad&gt;"));
        assert!(html.contains("value=\"&lt;i&gt;\""));
        assert!(html.contains("<title>&lt;i&gt; – Search · trawl</title>"));
    }

    #[test]
    fn urls_drop_the_old_cursor() {
        let q = pairs(&[("cursor", "1"), ("q", "x y")]);
        assert_eq!(search_url(&q, None), "/search?q=x+y");
        assert_eq!(search_url(&[], None), "/search");
        assert_eq!(search_url(&q, Some("2")), "/search?q=x+y&cursor=2");
    }
}
