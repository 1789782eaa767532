//! Search requests as strangers send them: the query text and its filters,
//! parsed and bounded before anything touches the index.
//!
//! Owns the limits and the error texts of bad requests. Pure functions over
//! strings: no index, no I/O (the fuzz target `serve_query` drives
//! [`SearchRequest::parse`] on arbitrary bytes).
//!
//! Text syntax: words (all must match, in the name or a file path),
//! `"quoted phrases"`, and `-word` or `-"phrase"` to exclude.

use trawl_storage::{BitmagnetType, ContentClass, TorrentVersion};

/// Longest query text accepted, in bytes.
pub const MAX_QUERY_BYTES: usize = 256;
/// Most words and phrases in one query.
pub const MAX_TERMS: usize = 12;
/// Largest page; the default page.
pub const MAX_LIMIT: usize = 100;
pub const DEFAULT_LIMIT: usize = 25;
/// Largest Torznab `offset` (Torznab pages by offset, not cursor).
pub const MAX_OFFSET: usize = 10_000;
/// Most query parameters in one request.
pub const MAX_PARAMS: usize = 24;

/// Why a request was refused; shown to the client as a 400 with this text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadRequest(pub String);

impl std::fmt::Display for BadRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn bad(msg: impl Into<String>) -> BadRequest {
    BadRequest(msg.into())
}

/// One word or phrase of the query text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TextTerm {
    pub text: String,
    pub phrase: bool,
    pub exclude: bool,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SortKey {
    /// Best match first; without query words, the same as `first_seen`.
    #[default]
    Relevance,
    Size,
    FirstSeen,
    Seeders,
}

impl SortKey {
    pub fn parse(s: &str) -> Option<SortKey> {
        Some(match s {
            "relevance" => SortKey::Relevance,
            "size" => SortKey::Size,
            "first_seen" => SortKey::FirstSeen,
            "seeders" => SortKey::Seeders,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SortKey::Relevance => "relevance",
            SortKey::Size => "size",
            SortKey::FirstSeen => "first_seen",
            SortKey::Seeders => "seeders",
        }
    }
}

/// Where the previous page ended: the last hit's sort value and tie-break.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageCursor {
    pub key: u64,
    pub tie: u64,
}

impl PageCursor {
    /// 32 hex digits: key then tie.
    pub fn encode(&self) -> String {
        format!("{:016x}{:016x}", self.key, self.tie)
    }

    pub fn decode(s: &str) -> Option<PageCursor> {
        if s.len() != 32 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        Some(PageCursor {
            key: u64::from_str_radix(&s[..16], 16).ok()?,
            tie: u64::from_str_radix(&s[16..], 16).ok()?,
        })
    }
}

/// A parsed, bounded search.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SearchRequest {
    pub terms: Vec<TextTerm>,
    pub classes: Vec<ContentClass>,
    pub types: Vec<BitmagnetType>,
    pub versions: Vec<TorrentVersion>,
    pub min_size: Option<u64>,
    pub max_size: Option<u64>,
    pub since: Option<u64>,
    pub until: Option<u64>,
    pub min_seeders: Option<u64>,
    /// Torznab category ids (a parent id matches its subcategories).
    pub categories: Vec<u64>,
    pub sort: SortKey,
    /// Ascending instead of the default descending (largest, newest, most seeded, best first).
    pub ascending: bool,
    pub limit: usize,
    pub cursor: Option<PageCursor>,
    /// Skips this many hits (Torznab's `offset`; the JSON API uses cursors).
    pub offset: usize,
}

impl SearchRequest {
    /// Parses the query parameters of `/api/search` (and the web page):
    /// `q`, `class`, `type`, `version` (comma lists), `min_size`, `max_size`
    /// (bytes, or with K/M/G/T suffixes of 1024), `since`, `until` (Unix
    /// seconds or RFC 3339 dates), `min_seeders`, `sort`, `order` (`asc` or
    /// `desc`), `limit`, `cursor`. Unknown parameters are refused, so a typo
    /// does not silently widen a search.
    pub fn parse<'a>(params: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<SearchRequest, BadRequest> {
        let mut r = SearchRequest {
            limit: DEFAULT_LIMIT,
            ..SearchRequest::default()
        };
        let mut sort = None;
        for (n, (k, v)) in params.into_iter().enumerate() {
            if n >= MAX_PARAMS {
                return Err(bad(format!("more than {MAX_PARAMS} query parameters")));
            }
            match k {
                "q" => r.terms = parse_text(v)?,
                "class" => r.classes = parse_list(v, "class", ContentClass::parse)?,
                "type" => r.types = parse_list(v, "type", BitmagnetType::parse)?,
                "version" => r.versions = parse_list(v, "version", parse_version)?,
                "min_size" => r.min_size = Some(parse_bytes(k, v)?),
                "max_size" => r.max_size = Some(parse_bytes(k, v)?),
                "since" => r.since = Some(parse_when(k, v)?),
                "until" => r.until = Some(parse_when(k, v)?),
                "min_seeders" => r.min_seeders = Some(parse_u64(k, v)?),
                "sort" => {
                    sort = Some(SortKey::parse(v).ok_or_else(|| {
                        bad(format!(
                            "sort: {v:?} is not one of relevance, size, first_seen, seeders"
                        ))
                    })?)
                }
                "order" => {
                    r.ascending = match v {
                        "asc" => true,
                        "desc" => false,
                        _ => return Err(bad(format!("order: {v:?} is not asc or desc"))),
                    }
                }
                "limit" => r.limit = parse_limit(v)?,
                "cursor" if v.is_empty() => {}
                "cursor" => {
                    r.cursor = Some(PageCursor::decode(v).ok_or_else(|| bad("cursor: not one this server gave"))?)
                }
                _ => return Err(bad(format!("unknown parameter {k:?}"))),
            }
        }
        r.sort = match sort {
            Some(s) => s,
            None if r.terms.iter().any(|t| !t.exclude) => SortKey::Relevance,
            None => SortKey::FirstSeen,
        };
        r.check_ranges()?;
        Ok(r)
    }

    pub(crate) fn check_ranges(&self) -> Result<(), BadRequest> {
        if let (Some(a), Some(b)) = (self.min_size, self.max_size) {
            if a > b {
                return Err(bad("min_size is larger than max_size"));
            }
        }
        if let (Some(a), Some(b)) = (self.since, self.until) {
            if a > b {
                return Err(bad("since is later than until"));
            }
        }
        Ok(())
    }
}

/// Splits the query text into words and phrases.
pub fn parse_text(q: &str) -> Result<Vec<TextTerm>, BadRequest> {
    if q.len() > MAX_QUERY_BYTES {
        return Err(bad(format!("q: longer than {MAX_QUERY_BYTES} bytes")));
    }
    if q.chars().any(|c| c.is_control() && !c.is_whitespace()) {
        return Err(bad("q: contains control characters"));
    }
    let mut terms = Vec::new();
    let mut rest = q.trim_start();
    while !rest.is_empty() {
        let exclude = rest.starts_with('-');
        if exclude {
            rest = &rest[1..];
        }
        let (text, phrase, tail) = if let Some(body) = rest.strip_prefix('"') {
            match body.find('"') {
                Some(end) => (&body[..end], true, &body[end + 1..]),
                None => return Err(bad("q: a quote is not closed")),
            }
        } else {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            (&rest[..end], false, &rest[end..])
        };
        if !text.trim().is_empty() {
            if terms.len() == MAX_TERMS {
                return Err(bad(format!("q: more than {MAX_TERMS} words and phrases")));
            }
            terms.push(TextTerm {
                text: text.to_owned(),
                phrase,
                exclude,
            });
        }
        rest = tail.trim_start();
    }
    Ok(terms)
}

fn parse_list<T>(v: &str, what: &str, parse: impl Fn(&str) -> Option<T>) -> Result<Vec<T>, BadRequest> {
    v.split(',')
        .filter(|s| !s.is_empty())
        .take(16)
        .map(|s| parse(s.trim()).ok_or_else(|| bad(format!("{what}: {s:?} is not known"))))
        .collect()
}

fn parse_version(s: &str) -> Option<TorrentVersion> {
    match s {
        "v1" => Some(TorrentVersion::V1),
        "v2" => Some(TorrentVersion::V2),
        "hybrid" => Some(TorrentVersion::Hybrid),
        _ => None,
    }
}

fn parse_u64(k: &str, v: &str) -> Result<u64, BadRequest> {
    v.parse().map_err(|_| bad(format!("{k}: {v:?} is not a whole number")))
}

fn parse_limit(v: &str) -> Result<usize, BadRequest> {
    match v.parse::<usize>() {
        Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        _ => Err(bad(format!("limit: {v:?} is not between 1 and {MAX_LIMIT}"))),
    }
}

/// Bytes, or a size such as `700M` or `4.5GiB` (powers of 1024).
pub fn parse_bytes(k: &str, v: &str) -> Result<u64, BadRequest> {
    trawl_storage::parse_size(v).map_err(|e| bad(format!("{k}: {e}")))
}

/// Unix seconds, or an RFC 3339 date or time.
pub fn parse_when(k: &str, v: &str) -> Result<u64, BadRequest> {
    if let Ok(n) = v.parse::<u64>() {
        return Ok(n);
    }
    trawl_storage::export::parse_time(v)
        .map(u64::from)
        .ok_or_else(|| bad(format!("{k}: {v:?} is neither Unix seconds nor an RFC 3339 date")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(q: &[(&'static str, &'static str)]) -> Result<SearchRequest, BadRequest> {
        SearchRequest::parse(q.iter().copied())
    }

    #[test]
    fn words_phrases_and_exclusions() {
        let t = parse_text(r#"ubuntu "24.04 desktop" -beta -"server iso""#).unwrap();
        let got: Vec<_> = t.iter().map(|t| (t.text.as_str(), t.phrase, t.exclude)).collect();
        assert_eq!(
            got,
            [
                ("ubuntu", false, false),
                ("24.04 desktop", true, false),
                ("beta", false, true),
                ("server iso", true, true)
            ]
        );
    }

    #[test]
    fn bounds_are_enforced() {
        assert!(parse_text(&"a".repeat(MAX_QUERY_BYTES + 1)).is_err());
        assert!(parse_text(&"w ".repeat(MAX_TERMS + 1))
            .unwrap_err()
            .0
            .contains("more than"));
        assert!(parse_text("\"open").unwrap_err().0.contains("quote"));
        assert!(parse_text("a\u{0}b").is_err());
        assert!(parse(&[("limit", "0")]).is_err());
        assert!(parse(&[("limit", "101")]).is_err());
        assert_eq!(parse(&[("limit", "100")]).unwrap().limit, 100);
    }

    #[test]
    fn filters_parse_and_typos_are_refused() {
        let r = parse(&[
            ("q", "dune"),
            ("class", "video,audio"),
            ("type", "movie"),
            ("version", "v2,hybrid"),
            ("min_size", "700M"),
            ("max_size", "8GiB"),
            ("since", "2026-01-01"),
            ("min_seeders", "3"),
            ("sort", "seeders"),
            ("order", "asc"),
        ])
        .unwrap();
        assert_eq!(r.classes, [ContentClass::Video, ContentClass::Audio]);
        assert_eq!(r.types, [BitmagnetType::Movie]);
        assert_eq!(r.versions, [TorrentVersion::V2, TorrentVersion::Hybrid]);
        assert_eq!(r.min_size, Some(700 << 20));
        assert_eq!(r.max_size, Some(8 << 30));
        assert_eq!(r.since, Some(1_767_225_600));
        assert_eq!((r.sort, r.ascending, r.min_seeders), (SortKey::Seeders, true, Some(3)));
        assert!(parse(&[("clas", "video")]).unwrap_err().0.contains("unknown parameter"));
        assert!(parse(&[("class", "films")]).unwrap_err().0.contains("not known"));
        assert!(parse(&[("min_size", "2G"), ("max_size", "1G")]).is_err());
        assert!(parse(&[("sort", "name")]).is_err());
        assert!(parse(&[("cursor", "zz")]).is_err());
    }

    #[test]
    fn default_sort_follows_the_words() {
        assert_eq!(parse(&[("q", "dune")]).unwrap().sort, SortKey::Relevance);
        assert_eq!(parse(&[("q", "-cam")]).unwrap().sort, SortKey::FirstSeen);
        assert_eq!(parse(&[]).unwrap().sort, SortKey::FirstSeen);
    }

    #[test]
    fn cursors_round_trip() {
        let c = PageCursor { key: 7, tie: u64::MAX };
        assert_eq!(PageCursor::decode(&c.encode()), Some(c));
        assert_eq!(PageCursor::decode("0123"), None);
        assert_eq!(PageCursor::decode(&"g".repeat(32)), None);
    }
}
