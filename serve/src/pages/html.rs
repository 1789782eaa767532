//! Text into HTML: the one escaping rule every page uses, and the figures
//! (sizes, counts, times) as people read them.
//!
//! Owns what a stranger's bytes may become on a page. Every name, path,
//! query and message goes through [`Esc`] (attributes are always
//! double-quoted, so the same escaping serves text and attributes); names
//! and paths are also wrapped in `<bdi>` by [`Bdi`], so a right-to-left
//! name cannot reorder the text around it. Pure functions: no I/O.

use std::borrow::Cow;
use std::fmt::{self, Write};

/// The text with `& < > " '` escaped and the characters that could change
/// how the page around it reads neutralised (shown as U+FFFD):
///
/// - the explicit bidi controls (U+202A–U+202E embeddings and overrides,
///   U+2066–U+2069 isolates), which can make `exe.txt` read as `txt.exe`.
///   The marks U+200E, U+200F and U+061C stay: they act on one position
///   only and right-to-left names use them.
/// - C0 and C1 controls other than tab and line breaks, and the
///   noncharacters U+FFFE and U+FFFF.
pub struct Esc<'a>(pub &'a str);

impl fmt::Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        let mut plain = 0;
        for (i, c) in s.char_indices() {
            let replacement = match c {
                '&' => "&amp;",
                '<' => "&lt;",
                '>' => "&gt;",
                '"' => "&quot;",
                '\'' => "&#39;",
                c if neutralised(c) => "\u{FFFD}",
                _ => continue,
            };
            f.write_str(&s[plain..i])?;
            f.write_str(replacement)?;
            plain = i + c.len_utf8();
        }
        f.write_str(&s[plain..])
    }
}

fn neutralised(c: char) -> bool {
    matches!(c,
        '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FFFE}' | '\u{FFFF}')
        || (c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
}

/// [`Esc`] as an owned string.
pub fn escape(s: &str) -> String {
    Esc(s).to_string()
}

/// A stranger's text (a name, a path) isolated in `<bdi>` and escaped,
/// with a `<wbr>` after each `.` and `_`: release names have no spaces, and
/// a narrow screen then breaks them between their words, not inside one.
pub struct Bdi<'a>(pub &'a str);

impl fmt::Display for Bdi<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<bdi>")?;
        let mut words = self.0.split_inclusive(['.', '_']).peekable();
        while let Some(w) = words.next() {
            write!(f, "{}", Esc(w))?;
            if words.peek().is_some() {
                f.write_str("<wbr>")?;
            }
        }
        f.write_str("</bdi>")
    }
}

/// At most `max` characters of `s`, with an ellipsis when cut (long names
/// in lists and titles; the torrent page shows them whole).
pub fn clip(s: &str, max: usize) -> Cow<'_, str> {
    match s.char_indices().nth(max) {
        Some((i, _)) => Cow::Owned(format!("{}…", &s[..i])),
        None => Cow::Borrowed(s),
    }
}

/// Bytes in powers of 1024: `512 B`, `4.0 GiB`, `13.6 MiB`.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if v < 10.0 {
        format!("{v:.1} {}", UNITS[unit])
    } else {
        format!("{v:.0} {}", UNITS[unit])
    }
}

/// A count with thousands separators: `1,234,567`.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(d);
    }
    out
}

/// A rate per second: `0`, `0.42`, `12.3`, `1,204`.
pub fn rate(per_s: f64) -> String {
    if per_s <= 0.0 || !per_s.is_finite() {
        "0".into()
    } else if per_s < 1.0 {
        format!("{per_s:.2}")
    } else if per_s < 100.0 {
        format!("{per_s:.1}")
    } else {
        count(per_s.round() as u64)
    }
}

fn unix32(t: u64) -> u32 {
    u32::try_from(t).unwrap_or(u32::MAX)
}

/// `2024-01-31 12:00:00 UTC`.
pub fn datetime(t: u64) -> String {
    let s = trawl_storage::export::rfc3339(unix32(t));
    format!("{} {} UTC", &s[..10], &s[11..19])
}

/// How long before `now` `t` was: `just now`, `5 min ago`, `3 h ago`,
/// `2 d ago`, else the date.
pub fn age(t: u64, now: u64) -> String {
    let d = now.saturating_sub(t);
    match d {
        0..60 => "just now".into(),
        60..3600 => format!("{} min ago", d / 60),
        3600..86_400 => format!("{} h ago", d / 3600),
        86_400..604_800 => format!("{} d ago", d / 86_400),
        _ => trawl_storage::export::rfc3339(unix32(t))[..10].to_owned(),
    }
}

/// A `<time>` element showing [`age`], with the exact time as its tooltip.
pub fn time_element(out: &mut String, t: u64, now: u64) {
    let exact = trawl_storage::export::rfc3339(unix32(t));
    let _ = write!(
        out,
        "<time datetime=\"{exact}\" title=\"{}\">{}</time>",
        datetime(t),
        age(t, now)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_leaves_no_markup_and_no_bidi_control() {
        assert_eq!(
            escape(r#"<img src=x onerror="a('b')">&amp;"#),
            "&lt;img src=x onerror=&quot;a(&#39;b&#39;)&quot;&gt;&amp;amp;"
        );
        assert_eq!(escape("Invoice\u{202E}gpj.exe"), "Invoice\u{FFFD}gpj.exe");
        assert_eq!(
            escape("a\u{2067}b\u{2069}c\u{0}d\u{9b}e"),
            "a\u{FFFD}b\u{FFFD}c\u{FFFD}d\u{FFFD}e"
        );
        assert_eq!(escape("שלום\u{200F} tab\there"), "שלום\u{200F} tab\there");
        assert_eq!(Bdi("<b>").to_string(), "<bdi>&lt;b&gt;</bdi>");
        assert_eq!(Bdi("a.b_c.").to_string(), "<bdi>a.<wbr>b_<wbr>c.</bdi>");
        assert_eq!(Bdi("").to_string(), "<bdi></bdi>");
        assert_eq!(escape(""), "");
    }

    #[test]
    fn clipping_counts_characters_not_bytes() {
        assert_eq!(clip("ééééé", 3), "ééé…");
        assert_eq!(clip("short", 5), "short");
    }

    #[test]
    fn figures_read_as_people_write_them() {
        assert_eq!(size(0), "0 B");
        assert_eq!(size(1023), "1023 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(4 << 30), "4.0 GiB");
        assert_eq!(size(700 << 20), "700 MiB");
        assert_eq!(size(u64::MAX), "16 EiB");
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(rate(0.0), "0");
        assert_eq!(rate(f64::NAN), "0");
        assert_eq!(rate(0.4167), "0.42");
        assert_eq!(rate(12.34), "12.3");
        assert_eq!(rate(1204.4), "1,204");
        assert_eq!(datetime(1_700_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(age(1000, 1030), "just now");
        assert_eq!(age(1000, 1000 + 300), "5 min ago");
        assert_eq!(age(1000, 1000 + 3 * 3600), "3 h ago");
        assert_eq!(age(1_700_000_000, 1_800_000_000), "2023-11-14");
        let mut t = String::new();
        time_element(&mut t, 1_700_000_000, 1_700_000_120);
        assert_eq!(
            t,
            "<time datetime=\"2023-11-14T22:13:20Z\" title=\"2023-11-14 22:13:20 UTC\">2 min ago</time>"
        );
    }
}
