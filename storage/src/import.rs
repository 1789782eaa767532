//! Import: infohash lists in, one line at a time.
//!
//! Owns the line grammar: an infohash as 40 hex or 32 base32 characters, a
//! BEP 52 SHA-256 infohash as 64 hex characters (kept in the 20-byte truncated
//! form the DHT uses), a `magnet:` URI with `xt=urn:btih:` (either v1 form)
//! or `xt=urn:btmh:1220<64 hex>` (v2; a hybrid's `btih` is preferred), or a
//! JSON object (JSONL, e.g. trawl's or bitmagnet's export) with `infoHash`,
//! `info_hash` or `hash` in any of the bare forms.
//! Blank lines and `#` comments are skipped. [`parse_line`] is a pure function
//! over bytes (a fuzz target): it never panics and allocates nothing beyond
//! JSON parsing of the line itself. [`read_lines`] bounds line length, so
//! a file without newlines cannot exhaust memory. Writing is the caller's job.

use std::fmt;
use std::io::BufRead;

use serde::Deserialize;

use crate::record::InfoHash;
use crate::StorageError;

/// Longest line accepted; a JSONL record with a long file list fits easily.
pub const MAX_LINE: usize = 1 << 20;
const MAGNET_PREFIX: &[u8] = b"magnet:?";
const BTIH: &[u8] = b"urn:btih:";
/// BEP 9 for v2: a multihash, `0x12` (SHA-256) and `0x20` (32 bytes), in hex.
const BTMH_SHA256: &[u8] = b"urn:btmh:1220";

/// Why one line was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LineError {
    /// A character that is not hex, at this byte of the hash.
    NotHex { at: usize },
    /// A bare hash of the wrong length.
    Length(usize),
    /// 32 characters that are not RFC 4648 base32.
    NotBase32,
    /// A magnet URI without a usable `xt=urn:btih:` or `xt=urn:btmh:`.
    Magnet,
    /// A JSON line that does not parse.
    Json(String),
    /// A JSON object without `infoHash`, `info_hash` or `hash`.
    NoHashField,
    /// Longer than [`MAX_LINE`].
    TooLong,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LineError::NotHex { at } => write!(f, "not hex at character {}", at + 1),
            LineError::Length(n) => write!(
                f,
                "an infohash is 40 hex or 32 base32 characters (64 hex for SHA-256), this is {n}"
            ),
            LineError::NotBase32 => f.write_str("32 characters but not base32 (A-Z, 2-7)"),
            LineError::Magnet => f.write_str("magnet link without xt=urn:btih:<hash> or xt=urn:btmh:1220<hash>"),
            LineError::Json(e) => write!(f, "bad JSON: {e}"),
            LineError::NoHashField => f.write_str("JSON object has no infoHash, info_hash or hash"),
            LineError::TooLong => write!(f, "line longer than {MAX_LINE} bytes"),
        }
    }
}

#[derive(Deserialize)]
struct JsonHash<'a> {
    #[serde(borrow, alias = "infoHash", alias = "hash")]
    info_hash: Option<std::borrow::Cow<'a, str>>,
}

/// Parses one line. `Ok(None)` for blank and comment lines.
pub fn parse_line(line: &[u8]) -> Result<Option<InfoHash>, LineError> {
    let line = line.trim_ascii();
    if line.is_empty() || line[0] == b'#' {
        return Ok(None);
    }
    if line.len() > MAX_LINE {
        return Err(LineError::TooLong);
    }
    if line[0] == b'{' {
        let j: JsonHash<'_> = serde_json::from_slice(line).map_err(|e| LineError::Json(e.to_string()))?;
        let h = j.info_hash.ok_or(LineError::NoHashField)?;
        return parse_bare(h.trim().as_bytes()).map(Some);
    }
    if line.len() >= MAGNET_PREFIX.len() && line[..MAGNET_PREFIX.len()].eq_ignore_ascii_case(MAGNET_PREFIX) {
        return parse_magnet(&line[MAGNET_PREFIX.len()..]).map(Some);
    }
    parse_bare(line).map(Some)
}

/// A bare hash: 40 hex, 32 base32, or 64 hex (SHA-256, truncated to the DHT's 20 bytes).
fn parse_bare(s: &[u8]) -> Result<InfoHash, LineError> {
    match s.len() {
        32 => parse_base32(s).ok_or(LineError::NotBase32),
        64 => parse_sha256_hex(s),
        _ => parse_hex(s),
    }
}

/// 64 hex characters of a v2 infohash, as the first 20 bytes.
fn parse_sha256_hex(s: &[u8]) -> Result<InfoHash, LineError> {
    let head = parse_hex(&s[..40])?;
    if let Some(at) = s[40..].iter().position(|&c| hex_val(c).is_none()) {
        return Err(LineError::NotHex { at: 40 + at });
    }
    Ok(head)
}

/// 40 hex characters, either case.
pub fn parse_hex(s: &[u8]) -> Result<InfoHash, LineError> {
    if s.len() != 40 {
        return Err(LineError::Length(s.len()));
    }
    let mut h = [0u8; 20];
    for (i, pair) in s.chunks_exact(2).enumerate() {
        let hi = hex_val(pair[0]).ok_or(LineError::NotHex { at: 2 * i })?;
        let lo = hex_val(pair[1]).ok_or(LineError::NotHex { at: 2 * i + 1 })?;
        h[i] = hi << 4 | lo;
    }
    Ok(h)
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn parse_magnet(query: &[u8]) -> Result<InfoHash, LineError> {
    let mut v2 = None;
    for param in query.split(|&c| c == b'&') {
        let Some(v) = param.strip_prefix(b"xt=") else { continue };
        if v.len() >= BTMH_SHA256.len() && v[..BTMH_SHA256.len()].eq_ignore_ascii_case(BTMH_SHA256) {
            let hash = &v[BTMH_SHA256.len()..];
            if hash.len() != 64 {
                return Err(LineError::Magnet);
            }
            v2 = Some(parse_sha256_hex(hash)?);
            continue;
        }
        if v.len() < BTIH.len() || !v[..BTIH.len()].eq_ignore_ascii_case(BTIH) {
            continue;
        }
        let v = &v[BTIH.len()..];
        return match v.len() {
            40 => parse_hex(v),
            32 => parse_base32(v).ok_or(LineError::Magnet),
            _ => Err(LineError::Magnet),
        };
    }
    v2.ok_or(LineError::Magnet)
}

/// RFC 4648 base32 (magnet links' older form): 32 characters, 160 bits.
fn parse_base32(s: &[u8]) -> Option<InfoHash> {
    let mut h = [0u8; 20];
    let (mut acc, mut bits, mut out) = (0u64, 0u32, 0usize);
    for &c in s {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a',
            b'2'..=b'7' => c - b'2' + 26,
            _ => return None,
        };
        acc = acc << 5 | u64::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            *h.get_mut(out)? = (acc >> bits) as u8;
            out += 1;
        }
    }
    (out == 20).then_some(h)
}

/// What [`read_lines`] saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ImportCounts {
    pub lines: u64,
    pub hashes: u64,
    pub bad: u64,
}

/// Reads `input` line by line: each hash goes to `on_hash`, each bad line to
/// `on_bad` with its 1-based line number. Good lines are imported whatever
/// the bad ones. Memory is bounded by [`MAX_LINE`].
pub fn read_lines<R, H, B>(mut input: R, mut on_hash: H, mut on_bad: B) -> Result<ImportCounts, StorageError>
where
    R: BufRead,
    H: FnMut(InfoHash) -> Result<(), StorageError>,
    B: FnMut(u64, LineError),
{
    let mut counts = ImportCounts::default();
    let mut line = Vec::new();
    loop {
        line.clear();
        let (ended, too_long) = read_bounded_line(&mut input, &mut line)?;
        if ended && line.is_empty() && !too_long {
            break;
        }
        counts.lines += 1;
        let parsed = if too_long {
            Err(LineError::TooLong)
        } else {
            parse_line(&line)
        };
        match parsed {
            Ok(Some(h)) => {
                counts.hashes += 1;
                on_hash(h)?;
            }
            Ok(None) => {}
            Err(e) => {
                counts.bad += 1;
                on_bad(counts.lines, e);
            }
        }
        if ended {
            break;
        }
    }
    Ok(counts)
}

/// Reads up to and excluding `\n` into `out`, keeping at most `MAX_LINE + 1`
/// bytes. Returns (end of input reached, line was too long).
fn read_bounded_line<R: BufRead>(input: &mut R, out: &mut Vec<u8>) -> Result<(bool, bool), StorageError> {
    let mut too_long = false;
    loop {
        let buf = match input.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        if buf.is_empty() {
            return Ok((true, too_long));
        }
        let (chunk, found) = match memchr_newline(buf) {
            Some(i) => (&buf[..i], true),
            None => (buf, false),
        };
        if out.len() + chunk.len() > MAX_LINE {
            too_long = true;
        } else {
            out.extend_from_slice(chunk);
        }
        let used = chunk.len() + usize::from(found);
        input.consume(used);
        if found {
            return Ok((false, too_long));
        }
    }
}

fn memchr_newline(b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "0123456789abcdef0123456789ABCDEF01234567";

    fn hash() -> InfoHash {
        parse_hex(H.as_bytes()).unwrap()
    }

    #[test]
    fn accepts_hex_json_and_magnet_forms() {
        assert_eq!(hash()[0], 0x01);
        assert_eq!(hash()[19], 0x67);
        assert_eq!(parse_line(format!("  {H}\r").as_bytes()), Ok(Some(hash())));
        assert_eq!(
            parse_line(format!(r#"{{"infoHash":"{H}","name":"x"}}"#).as_bytes()),
            Ok(Some(hash()))
        );
        assert_eq!(
            parse_line(format!(r#"{{"info_hash":"{H}"}}"#).as_bytes()),
            Ok(Some(hash()))
        );
        assert_eq!(
            parse_line(format!("magnet:?dn=a&xt=urn:btih:{H}&tr=x").as_bytes()),
            Ok(Some(hash()))
        );
        // The same hash in base32.
        assert_eq!(
            parse_line(b"magnet:?xt=urn:btih:AERUKZ4JVPG66AJDIVTYTK6N54ASGRLH"),
            Ok(Some(hash()))
        );
        // Bare base32, and a v2 (SHA-256) hash bare, in JSON and as btmh.
        assert_eq!(parse_line(b"AERUKZ4JVPG66AJDIVTYTK6N54ASGRLH"), Ok(Some(hash())));
        let v2 = format!("{H}{}", "9".repeat(24));
        assert_eq!(parse_line(v2.as_bytes()), Ok(Some(hash())), "truncated to 20 bytes");
        assert_eq!(parse_line(format!(r#"{{"hash":"{v2}"}}"#).as_bytes()), Ok(Some(hash())));
        assert_eq!(
            parse_line(format!("magnet:?xt=urn:btmh:1220{v2}&dn=x").as_bytes()),
            Ok(Some(hash()))
        );
        // A hybrid's magnet: the btih wins, wherever it stands.
        let other = "f".repeat(64);
        assert_eq!(
            parse_line(format!("magnet:?xt=urn:btmh:1220{other}&xt=urn:btih:{H}").as_bytes()),
            Ok(Some(hash()))
        );
        assert_eq!(parse_line(b"# comment"), Ok(None));
        assert_eq!(parse_line(b"   "), Ok(None));
    }

    #[test]
    fn names_what_is_wrong() {
        assert_eq!(parse_line(&H.as_bytes()[..39]), Err(LineError::Length(39)));
        let mut bad = H.as_bytes().to_vec();
        bad[7] = b'g';
        assert_eq!(parse_line(&bad), Err(LineError::NotHex { at: 7 }));
        assert_eq!(parse_line(br#"{"name":"x"}"#), Err(LineError::NoHashField));
        assert!(matches!(parse_line(b"{not json"), Err(LineError::Json(_))));
        assert_eq!(parse_line(b"magnet:?dn=only"), Err(LineError::Magnet));
        assert_eq!(
            parse_line(b"AERUKZ4JVPG66AJDIVTYTK6N54ASGRL1"),
            Err(LineError::NotBase32)
        );
        let mut v2 = format!("{H}{}", "9".repeat(24)).into_bytes();
        v2[50] = b'x';
        assert_eq!(parse_line(&v2), Err(LineError::NotHex { at: 50 }));
        assert_eq!(parse_line(b"magnet:?xt=urn:btmh:1220abcd"), Err(LineError::Magnet));
        assert!(LineError::Length(39).to_string().contains("32 base32"));
    }

    #[test]
    fn stream_reports_bad_line_numbers_and_keeps_good_ones() {
        let input = format!(
            "{H}\nnope\n\n{{\"hash\":\"{H}\"}}\n{}\nlast-without-newline",
            "f".repeat(40)
        );
        let (mut good, mut bad) = (Vec::new(), Vec::new());
        let c = read_lines(input.as_bytes(), |h| Ok(good.push(h)), |n, e| bad.push((n, e))).unwrap();
        assert_eq!(good.len(), 3);
        assert_eq!(good[2], [0xff; 20]);
        assert_eq!(bad.iter().map(|b| b.0).collect::<Vec<_>>(), vec![2, 6]);
        assert_eq!(
            c,
            ImportCounts {
                lines: 6,
                hashes: 3,
                bad: 2
            }
        );
    }

    #[test]
    fn an_endless_line_is_refused_in_bounded_memory() {
        let mut input = vec![b'a'; MAX_LINE + 10];
        input.extend_from_slice(format!("\n{H}\n").as_bytes());
        let mut good = 0;
        let mut bad = Vec::new();
        read_lines(&input[..], |_| Ok(good += 1), |n, e| bad.push((n, e))).unwrap();
        assert_eq!((good, bad), (1, vec![(1, LineError::TooLong)]));
    }
}
