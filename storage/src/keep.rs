//! What of a fetched info dict is kept: the `--info-dicts` mode, the
//! `files` form (the dict without its piece hashes) and the `info_dicts`
//! value layout that tells the two forms apart.
//!
//! Owns the byte surgery on stored dicts. It must not open databases; the
//! writer and the store call it. The dicts it cuts have been verified against
//! their infohash, but it still checks every length and never recurses deeper
//! than [`MAX_DEPTH`], so a corrupt value is an error, never a panic.
//!
//! # Values in `info_dicts`
//! - A full dict is stored as it arrived: the value starts with `d`, as every
//!   value written before modes existed does.
//! - A `files` dict is stored as [`FILES_TAG`] then the dict with the `pieces`
//!   key removed from its top level and every `pieces root` removed from its
//!   `file tree` (BEP 52). Removing whole key/value pairs from a bencoded dict
//!   leaves a valid dict with its keys still in order, so what is left is byte
//!   for byte what arrived, minus the hashes.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

/// First byte of a `files` value. A bencoded dict starts with `d`, so the two
/// forms cannot be confused.
pub const FILES_TAG: u8 = 1;
/// Deepest nesting walked; real file trees are a few levels deep.
pub const MAX_DEPTH: usize = 64;

/// `--info-dicts`: how much of each fetched info dict the store keeps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InfoDictMode {
    /// The raw dict, byte for byte: `.torrent` export works.
    #[default]
    Full,
    /// The dict without its piece hashes: names, sizes, paths, flags and any
    /// other keys stay; `.torrent` export is refused for these torrents.
    Files,
    /// No dict: the torrent row (name, files, sizes, class) only.
    None,
}

impl InfoDictMode {
    pub fn as_str(self) -> &'static str {
        match self {
            InfoDictMode::Full => "full",
            InfoDictMode::Files => "files",
            InfoDictMode::None => "none",
        }
    }

    /// The `info_dicts` value for `dict` in this mode (the dict itself for
    /// `full`, not copied), or `None` if nothing is kept.
    pub fn value(self, dict: &[u8]) -> Result<Option<Cow<'_, [u8]>>, CutError> {
        match self {
            InfoDictMode::Full => Ok(Some(Cow::Borrowed(dict))),
            InfoDictMode::Files => {
                let mut v = Vec::with_capacity(dict.len().min(4096) + 1);
                v.push(FILES_TAG);
                without_pieces(dict, &mut v)?;
                Ok(Some(Cow::Owned(v)))
            }
            InfoDictMode::None => Ok(None),
        }
    }
}

impl fmt::Display for InfoDictMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for InfoDictMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "full" => Ok(InfoDictMode::Full),
            "files" => Ok(InfoDictMode::Files),
            "none" => Ok(InfoDictMode::None),
            other => Err(format!(
                "unknown info-dicts mode {other:?}: expected full, files or none"
            )),
        }
    }
}

/// A stored info dict, in the form it was kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeptInfoDict {
    /// The dict as fetched.
    Full(Vec<u8>),
    /// The dict without `pieces` and `pieces root` (see the module doc).
    Files(Vec<u8>),
}

impl KeptInfoDict {
    /// Reads an `info_dicts` value.
    pub fn from_value(mut v: Vec<u8>) -> Result<Self, CutError> {
        match v.first() {
            Some(b'd') => Ok(KeptInfoDict::Full(v)),
            Some(&FILES_TAG) => {
                v.remove(0);
                Ok(KeptInfoDict::Files(v))
            }
            Some(b) => Err(CutError(format!("unknown info dict form 0x{b:02x}"))),
            None => Err(CutError("empty info dict value".into())),
        }
    }

    pub fn mode(&self) -> InfoDictMode {
        match self {
            KeptInfoDict::Full(_) => InfoDictMode::Full,
            KeptInfoDict::Files(_) => InfoDictMode::Files,
        }
    }

    /// The bencoded dict (without its pieces for [`KeptInfoDict::Files`]).
    pub fn bytes(&self) -> &[u8] {
        match self {
            KeptInfoDict::Full(d) | KeptInfoDict::Files(d) => d,
        }
    }
}

/// A dict that is not well-formed bencode where the cut needed it to be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CutError(pub String);

impl fmt::Display for CutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "info dict: {}", self.0)
    }
}

impl std::error::Error for CutError {}

/// Appends `dict` to `out` without top-level `pieces` and without any
/// `pieces root` inside `file tree`.
pub fn without_pieces(dict: &[u8], out: &mut Vec<u8>) -> Result<(), CutError> {
    let mut cuts = Vec::new();
    let end = walk(dict, 0, 0, Where::Top, &mut cuts)?;
    if end != dict.len() {
        return Err(CutError(format!("{} bytes after the dict", dict.len() - end)));
    }
    if dict.first() != Some(&b'd') {
        return Err(CutError("not a dict".into()));
    }
    let mut at = 0;
    for (a, b) in cuts {
        out.extend_from_slice(&dict[at..a]);
        at = b;
    }
    out.extend_from_slice(&dict[at..]);
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Where {
    /// The info dict itself.
    Top,
    /// Inside `file tree`, at any depth.
    FileTree,
    /// Anywhere else: nothing is cut.
    Other,
}

/// Walks the value at `at`, pushing the byte ranges to cut in order, and
/// returns where it ends.
fn walk(b: &[u8], at: usize, depth: usize, place: Where, cuts: &mut Vec<(usize, usize)>) -> Result<usize, CutError> {
    if depth > MAX_DEPTH {
        return Err(CutError(format!("nested deeper than {MAX_DEPTH}")));
    }
    match b.get(at) {
        Some(b'i') => {
            let e = find(b, at + 1, b'e')?;
            Ok(e + 1)
        }
        Some(b'l') => {
            let mut p = at + 1;
            while b.get(p) != Some(&b'e') {
                p = walk(b, p, depth + 1, Where::Other, cuts)?;
            }
            Ok(p + 1)
        }
        Some(b'd') => {
            let mut p = at + 1;
            while b.get(p) != Some(&b'e') {
                let key_start = p;
                let (key, value_at) = string(b, p)?;
                let inner = match (place, key) {
                    (Where::Top, b"file tree") | (Where::FileTree, _) => Where::FileTree,
                    _ => Where::Other,
                };
                p = walk(b, value_at, depth + 1, inner, cuts)?;
                let cut = match place {
                    Where::Top => key == b"pieces",
                    Where::FileTree => key == b"pieces root",
                    Where::Other => false,
                };
                if cut {
                    cuts.push((key_start, p));
                }
            }
            Ok(p + 1)
        }
        Some(c) if c.is_ascii_digit() => string_end(b, at),
        Some(c) => Err(CutError(format!("unexpected byte 0x{c:02x} at {at}"))),
        None => Err(CutError(format!("ends inside a value at {at}"))),
    }
}

/// The string at `at` and the offset just after it.
fn string(b: &[u8], at: usize) -> Result<(&[u8], usize), CutError> {
    let colon = find(b, at, b':')?;
    let digits = &b[at..colon];
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) || digits.len() > 10 {
        return Err(CutError(format!("bad string length at {at}")));
    }
    let len: usize = std::str::from_utf8(digits)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| CutError(format!("bad string length at {at}")))?;
    let start = colon + 1;
    let end = start
        .checked_add(len)
        .filter(|e| *e <= b.len())
        .ok_or_else(|| CutError(format!("string at {at} runs past the end")))?;
    Ok((&b[start..end], end))
}

fn string_end(b: &[u8], at: usize) -> Result<usize, CutError> {
    string(b, at).map(|(_, end)| end)
}

fn find(b: &[u8], from: usize, byte: u8) -> Result<usize, CutError> {
    b.get(from..)
        .and_then(|rest| rest.iter().position(|c| *c == byte))
        .map(|i| from + i)
        .ok_or_else(|| CutError(format!("no {:?} after {from}", byte as char)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cut(d: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        without_pieces(d, &mut out).unwrap();
        out
    }

    #[test]
    fn v1_dict_loses_only_its_pieces() {
        let d = b"d5:filesld6:lengthi3e4:pathl1:aeee4:name3:abc12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaa7:privatei1ee";
        assert_eq!(
            cut(d),
            b"d5:filesld6:lengthi3e4:pathl1:aeee4:name3:abc12:piece lengthi16384e7:privatei1ee".to_vec()
        );
    }

    #[test]
    fn v2_file_tree_loses_its_pieces_roots_and_nothing_else() {
        let d = b"d9:file treed1:ad0:d6:lengthi5e11:pieces root32:rrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrreee12:meta versioni2e4:name1:x6:pieces0:e";
        assert_eq!(
            cut(d),
            b"d9:file treed1:ad0:d6:lengthi5eeee12:meta versioni2e4:name1:xe".to_vec()
        );
    }

    #[test]
    fn nested_keys_named_pieces_elsewhere_stay() {
        // Only the top-level `pieces` is the piece hashes; a file named
        // `pieces root` outside the file tree is data.
        let d = b"d1:xd6:pieces1:k11:pieces root1:ve4:name1:ne";
        assert_eq!(cut(d), d.to_vec());
    }

    #[test]
    fn malformed_dicts_are_errors_not_panics() {
        for bad in [
            &b""[..],
            b"d",
            b"d4:name",
            b"d4:name3:ab",
            b"d6:piecesi1e",
            b"d99999999999:xe",
            b"l1:ae",
            b"d4:name1:xex",
            b"d4:namex1:ee",
        ] {
            let mut out = Vec::new();
            assert!(
                without_pieces(bad, &mut out).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let deep: Vec<u8> = std::iter::repeat(b'l')
            .take(200)
            .chain(std::iter::repeat(b'e').take(200))
            .collect();
        let mut d = b"d1:x".to_vec();
        d.extend_from_slice(&deep);
        d.push(b'e');
        assert!(without_pieces(&d, &mut Vec::new()).is_err());
    }

    #[test]
    fn values_round_trip_per_mode() {
        let d = b"d4:name1:x6:pieces20:aaaaaaaaaaaaaaaaaaaae";
        let full = InfoDictMode::Full.value(d).unwrap().unwrap().into_owned();
        assert_eq!(KeptInfoDict::from_value(full).unwrap(), KeptInfoDict::Full(d.to_vec()));
        let files = InfoDictMode::Files.value(d).unwrap().unwrap().into_owned();
        assert_eq!(
            KeptInfoDict::from_value(files).unwrap(),
            KeptInfoDict::Files(b"d4:name1:xe".to_vec())
        );
        assert_eq!(InfoDictMode::None.value(d).unwrap(), None);
        assert!(KeptInfoDict::from_value(vec![7, b'd']).is_err());
        assert!(KeptInfoDict::from_value(vec![]).is_err());
    }

    #[test]
    fn modes_parse_and_print() {
        for m in [InfoDictMode::Full, InfoDictMode::Files, InfoDictMode::None] {
            assert_eq!(m.as_str().parse::<InfoDictMode>().unwrap(), m);
        }
        assert!("pieces"
            .parse::<InfoDictMode>()
            .unwrap_err()
            .contains("full, files or none"));
    }
}
