//! The web pages: search (`/`, `/search`), one torrent (`/torrent/{hash}`)
//! and the live crawl (`/crawl`, its chart `/crawl/chart.svg`), rendered on
//! the server, plus the stylesheet and icon they load from `/static/`.
//!
//! Owns the HTML. The pages work without JavaScript and within the
//! server's Content-Security-Policy (no script, no inline style: the one
//! stylesheet is a file, the chart an image). Every byte that came from
//! outside (names, paths, the query) is escaped by [`html::Esc`]. The pages
//! read through the same calls as the JSON API ([`crate::http::run_search`],
//! the store's reads, [`crate::live::Live`]) and never write anything.
//!
//! Rooms: [`html`] escapes and formats; [`search`], [`torrent`] and
//! [`crawl`] render one page each.

pub mod crawl;
pub mod html;
pub mod search;
pub mod torrent;

use std::fmt::Write;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::http::Shared;
use html::Esc;

/// The stylesheet, served with a year's cache; its URL carries
/// [`STYLE_VERSION`], so a new build's pages load the new one.
pub const STYLE: &str = include_str!("../../static/style.css");
pub const FAVICON: &str = include_str!("../../static/favicon.svg");
pub const STYLE_VERSION: u64 = fnv1a(STYLE.as_bytes());
/// `Cache-Control` of the files under `/static/`.
pub const STATIC_CACHE: &str = "public, max-age=31536000, immutable";
/// `Cache-Control` of the pages: every one shows the store as it is now.
pub const PAGE_CACHE: &str = "no-store";
pub const HTML: &str = "text/html; charset=utf-8";

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/", get(search::handler))
        .route("/search", get(search::handler))
        .route("/torrent/{hash}", get(torrent::handler))
        .route("/crawl", get(crawl::handler))
        .route("/crawl/chart.svg", get(crawl::chart_handler))
        .route("/static/style.css", get(style))
        .route("/static/favicon.svg", get(favicon))
}

async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

async fn favicon() -> Response {
    asset("image/svg+xml", FAVICON)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, STATIC_CACHE),
        ],
        body,
    )
        .into_response()
}

const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        h ^= bytes[i] as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    h
}

/// Which entry of the navigation a page is.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Search,
    Crawl,
    None,
}

/// What a page puts in its `<head>` besides the stylesheet.
#[derive(Default)]
pub struct Head {
    /// Reload the page every this many seconds.
    pub refresh: Option<u32>,
    /// Tell search engines to stay away (error pages).
    pub noindex: bool,
}

/// A whole document around `main` (already HTML).
pub fn document(title: &str, nav: Nav, head: Head, main: &str) -> String {
    let mut out = String::with_capacity(main.len() + 1024);
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{} · trawl</title>\n\
         <link rel=\"stylesheet\" href=\"/static/style.css?v={STYLE_VERSION:016x}\">\n\
         <link rel=\"icon\" href=\"/static/favicon.svg\" type=\"image/svg+xml\">\n",
        Esc(title)
    );
    if let Some(s) = head.refresh {
        let _ = writeln!(out, "<meta http-equiv=\"refresh\" content=\"{s}\">");
    }
    if head.noindex {
        out.push_str("<meta name=\"robots\" content=\"noindex\">\n");
    }
    out.push_str("</head>\n<body>\n<header class=\"top\"><div class=\"bar\">");
    out.push_str("<a class=\"brand\" href=\"/\">trawl</a>");
    out.push_str("<nav aria-label=\"Main\">");
    for (which, href, label) in [(Nav::Search, "/", "Search"), (Nav::Crawl, "/crawl", "Crawl")] {
        let current = if which == nav { " aria-current=\"page\"" } else { "" };
        let _ = write!(out, "<a href=\"{href}\"{current}>{label}</a>");
    }
    out.push_str("</nav></div></header>\n<main>\n");
    out.push_str(main);
    out.push_str(
        "</main>\n<footer><p>trawl: a BitTorrent DHT crawler. Names and files are as the swarm \
         published them, unchecked.</p></footer>\n</body>\n</html>\n",
    );
    out
}

/// A page answer with its status.
pub fn page(status: StatusCode, body: String) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(HTML)),
            (header::CACHE_CONTROL, HeaderValue::from_static(PAGE_CACHE)),
        ],
        body,
    )
        .into_response()
}

/// A page that says what went wrong, with the status it goes with.
pub fn error_page(status: StatusCode, heading: &str, message: &str) -> Response {
    let mut main = String::new();
    let _ = writeln!(
        main,
        "<section class=\"notice error\"><h1>{}</h1><p>{}</p><p><a href=\"/\">Search</a> · \
         <a href=\"/crawl\">Crawl</a></p></section>",
        Esc(heading),
        Esc(message)
    );
    let title = format!("{} {}", status.as_u16(), heading);
    page(
        status,
        document(
            &title,
            Nav::None,
            Head {
                noindex: true,
                ..Head::default()
            },
            &main,
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_escapes_its_title_and_marks_the_current_page() {
        let d = document("<x>", Nav::Crawl, Head::default(), "<p>body</p>");
        assert!(d.contains("<title>&lt;x&gt; · trawl</title>"));
        assert!(d.contains("<a href=\"/crawl\" aria-current=\"page\">Crawl</a>"));
        assert!(d.contains("<a href=\"/\">Search</a>"));
        assert!(!d.contains("http-equiv"));
        let d = document(
            "t",
            Nav::None,
            Head {
                refresh: Some(10),
                noindex: true,
            },
            "",
        );
        assert!(d.contains("<meta http-equiv=\"refresh\" content=\"10\">"));
        assert!(d.contains("noindex"));
    }

    #[test]
    fn the_stylesheet_has_no_remote_reference() {
        assert!(!STYLE.contains("http:") && !STYLE.contains("https:") && !STYLE.contains("@import"));
        assert!(!FAVICON.contains("<script") && !FAVICON.contains("href"));
        assert_ne!(STYLE_VERSION, fnv1a(b""));
    }
}
