//! The info dictionary of a torrent (BEP 3, BEP 47 padding files, BEP 52 v2):
//! name, files and sizes, parsed from the verified bytes a peer sent.
//!
//! Owns: turning an info dict into [`InfoDict`] (names and paths kept as raw bytes,
//! with a readable form alongside), and its typed [`InfoError`].
//! Must not: do I/O, panic on any input, or reserve memory from a length the
//! input declares: every `Vec` grows only by entries really present in the
//! bytes, which the caller has already capped (`wire::MAX_METADATA_SIZE`).
//!
//! Names: BEP 3 does not promise UTF-8, and many old torrents carry a legacy
//! encoding in `name` and UTF-8 in `name.utf-8`. The raw `name` is always kept;
//! [`InfoDict::display_name`] prefers `name.utf-8` when `name` is not UTF-8 and
//! `name.utf-8` is. The same rule applies per path component. The raw info dict
//! is stored beside the record, so nothing is lost either way.

use core::fmt;
use std::borrow::Cow;

use crate::codec::bencode::{self, Dict, Value};

// Info dict keys (BEP 3, 27, 47, 52).
pub const KEY_NAME: &[u8] = b"name";
pub const KEY_NAME_UTF8: &[u8] = b"name.utf-8";
pub const KEY_LENGTH: &[u8] = b"length";
pub const KEY_FILES: &[u8] = b"files";
pub const KEY_PATH: &[u8] = b"path";
pub const KEY_PATH_UTF8: &[u8] = b"path.utf-8";
pub const KEY_PIECE_LENGTH: &[u8] = b"piece length";
pub const KEY_PIECES: &[u8] = b"pieces";
pub const KEY_PRIVATE: &[u8] = b"private";
pub const KEY_ATTR: &[u8] = b"attr";
pub const KEY_META_VERSION: &[u8] = b"meta version";
pub const KEY_FILE_TREE: &[u8] = b"file tree";
/// BEP 52: a file in `file tree` is the dict under this empty key.
pub const KEY_FILE_TREE_LEAF: &[u8] = b"";
/// BEP 47: `attr` flag of a padding file.
pub const ATTR_PADDING: u8 = b'p';
/// BEP 52: the only meta version defined.
pub const META_VERSION_2: i64 = 2;
/// SHA-1 piece hashes in `pieces` are this long.
pub const PIECE_HASH_LEN: usize = 20;

/// Which metadata format the dict is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetaVersion {
    /// BEP 3 only.
    V1,
    /// BEP 52 only (`meta version` 2, `file tree`, no `pieces`).
    V2,
    /// Both: BEP 52 keys plus a v1 `pieces` and `length`/`files`.
    Hybrid,
}

impl MetaVersion {
    pub const fn as_str(self) -> &'static str {
        match self {
            MetaVersion::V1 => "v1",
            MetaVersion::V2 => "v2",
            MetaVersion::Hybrid => "hybrid",
        }
    }
}

/// One file: path components and the displayable variant of each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InfoFile {
    /// `path` byte for byte (for v2-only dicts, the `file tree` keys).
    pub path: Vec<Vec<u8>>,
    /// `path.utf-8`, when present.
    pub path_utf8: Option<Vec<Vec<u8>>>,
    pub length: u64,
}

impl InfoFile {
    /// The components to show: `path.utf-8` when `path` is not UTF-8 and it is.
    pub fn display_path(&self) -> &[Vec<u8>] {
        match &self.path_utf8 {
            Some(alt) if !all_utf8(&self.path) && all_utf8(alt) => alt,
            _ => &self.path,
        }
    }

    /// The last component to show (the file name), if any.
    pub fn file_name(&self) -> &[u8] {
        self.display_path().last().map_or(&[][..], |c| c.as_slice())
    }
}

/// A parsed info dict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InfoDict {
    /// `name` byte for byte.
    pub name: Vec<u8>,
    pub name_utf8: Option<Vec<u8>>,
    /// Empty for a single-file torrent (its one file is `name`, `total_size` long).
    /// BEP 47 padding files are left out.
    pub files: Vec<InfoFile>,
    /// Sum of file lengths, padding excluded.
    pub total_size: u64,
    pub piece_length: u64,
    pub private: bool,
    pub version: MetaVersion,
}

impl InfoDict {
    /// The name to show: `name.utf-8` when `name` is not UTF-8 and it is.
    pub fn display_name_bytes(&self) -> &[u8] {
        match &self.name_utf8 {
            Some(alt) if core::str::from_utf8(&self.name).is_err() && core::str::from_utf8(alt).is_ok() => alt,
            _ => &self.name,
        }
    }

    /// [`Self::display_name_bytes`] as text, anything still invalid replaced by U+FFFD.
    pub fn display_name(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(self.display_name_bytes())
    }
}

/// Why an info dict was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InfoError {
    Bencode(bencode::Error),
    /// The top-level value is not a dictionary.
    NotADict,
    MissingKey(&'static str),
    /// A key holds the wrong type or an out-of-range value.
    BadValue(&'static str),
    /// Neither `length`, `files` nor `file tree` describes the content.
    NoFiles,
    /// The file lengths add up past `u64`.
    SizeOverflow,
    /// `meta version` other than 2.
    UnknownMetaVersion(i64),
    /// A v2 `file tree` whose flattened paths would be far larger than the dict
    /// itself (a shared directory repeated under many leaves).
    FileTreeTooLarge,
}

impl fmt::Display for InfoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InfoError::Bencode(e) => write!(f, "info dict: {e}"),
            InfoError::NotADict => f.write_str("info dict: not a dictionary"),
            InfoError::MissingKey(k) => write!(f, "info dict: missing key `{k}`"),
            InfoError::BadValue(k) => write!(f, "info dict: bad value for `{k}`"),
            InfoError::NoFiles => f.write_str("info dict: no `length`, `files` or `file tree`"),
            InfoError::SizeOverflow => f.write_str("info dict: file lengths overflow"),
            InfoError::UnknownMetaVersion(v) => write!(f, "info dict: unknown meta version {v}"),
            InfoError::FileTreeTooLarge => {
                f.write_str("info dict: `file tree` paths expand far beyond the dict's size")
            }
        }
    }
}

impl std::error::Error for InfoError {}

impl From<bencode::Error> for InfoError {
    fn from(e: bencode::Error) -> Self {
        InfoError::Bencode(e)
    }
}

fn all_utf8(components: &[Vec<u8>]) -> bool {
    components.iter().all(|c| core::str::from_utf8(c).is_ok())
}

fn non_negative(v: Value<'_>, key: &'static str) -> Result<u64, InfoError> {
    v.as_int()
        .and_then(|i| u64::try_from(i).ok())
        .ok_or(InfoError::BadValue(key))
}

fn bytes_of(v: Value<'_>, key: &'static str) -> Result<Vec<u8>, InfoError> {
    v.as_bytes().map(<[u8]>::to_vec).ok_or(InfoError::BadValue(key))
}

/// A `path` list: non-empty, every component a byte string.
fn path_of(v: Value<'_>, key: &'static str) -> Result<Vec<Vec<u8>>, InfoError> {
    let list = v.as_list().ok_or(InfoError::BadValue(key))?;
    let path = list.iter().map(|c| bytes_of(c, key)).collect::<Result<Vec<_>, _>>()?;
    if path.is_empty() {
        return Err(InfoError::BadValue(key));
    }
    Ok(path)
}

/// The top-level keys the parser reads, found in one pass (a `files` list of
/// thousands of entries is walked once, not once per key). As with
/// [`Dict::get`], the last occurrence of a key wins.
#[derive(Default)]
struct TopLevel<'a> {
    name: Option<Value<'a>>,
    name_utf8: Option<Value<'a>>,
    piece_length: Option<Value<'a>>,
    private: Option<Value<'a>>,
    meta_version: Option<Value<'a>>,
    pieces: Option<Value<'a>>,
    file_tree: Option<Value<'a>>,
    length: Option<Value<'a>>,
    files: Option<Value<'a>>,
}

impl<'a> TopLevel<'a> {
    fn collect(dict: Dict<'a>) -> Self {
        let mut top = TopLevel::default();
        for (key, value) in dict.iter() {
            let slot = match key {
                KEY_NAME => &mut top.name,
                KEY_NAME_UTF8 => &mut top.name_utf8,
                KEY_PIECE_LENGTH => &mut top.piece_length,
                KEY_PRIVATE => &mut top.private,
                KEY_META_VERSION => &mut top.meta_version,
                KEY_PIECES => &mut top.pieces,
                KEY_FILE_TREE => &mut top.file_tree,
                KEY_LENGTH => &mut top.length,
                KEY_FILES => &mut top.files,
                _ => continue,
            };
            *slot = Some(value);
        }
        top
    }
}

/// Parses an info dict. `raw` must be exactly the bencoded dict (trailing bytes
/// are an error), as assembled from `ut_metadata` pieces or cut from a .torrent.
pub fn parse(raw: &[u8]) -> Result<InfoDict, InfoError> {
    let dict = bencode::decode(raw)?.as_dict().ok_or(InfoError::NotADict)?;
    let top = TopLevel::collect(dict);

    let name = bytes_of(top.name.ok_or(InfoError::MissingKey("name"))?, "name")?;
    let name_utf8 = top.name_utf8.map(|v| bytes_of(v, "name.utf-8")).transpose()?;
    let piece_length = non_negative(
        top.piece_length.ok_or(InfoError::MissingKey("piece length"))?,
        "piece length",
    )?;
    if piece_length == 0 {
        return Err(InfoError::BadValue("piece length"));
    }
    let private = match top.private {
        None => false,
        Some(v) => v.as_int().ok_or(InfoError::BadValue("private"))? == 1,
    };

    let v2 = match top.meta_version {
        None => false,
        Some(v) => match v.as_int().ok_or(InfoError::BadValue("meta version"))? {
            META_VERSION_2 => true,
            other => return Err(InfoError::UnknownMetaVersion(other)),
        },
    };
    let has_v1 = match top.pieces {
        None => false,
        Some(v) => {
            let p = v.as_bytes().ok_or(InfoError::BadValue("pieces"))?;
            if p.len() % PIECE_HASH_LEN != 0 {
                return Err(InfoError::BadValue("pieces"));
            }
            true
        }
    };
    let version = match (v2, has_v1) {
        (false, _) => MetaVersion::V1,
        (true, true) => MetaVersion::Hybrid,
        (true, false) => MetaVersion::V2,
    };
    if version == MetaVersion::V1 && !has_v1 {
        return Err(InfoError::MissingKey("pieces"));
    }

    let mut files = Vec::new();
    let total_size = if version == MetaVersion::V2 {
        let tree = top.file_tree.ok_or(InfoError::MissingKey("file tree"))?;
        let tree = tree.as_dict().ok_or(InfoError::BadValue("file tree"))?;
        let mut prefix = Vec::new();
        let mut budget = file_tree_budget(raw.len());
        walk_file_tree(tree, &mut prefix, &mut budget, &mut files)?;
        sum_lengths(&files)?
    } else if let Some(length) = top.length {
        non_negative(length, "length")?
    } else if let Some(list) = top.files {
        let list = list.as_list().ok_or(InfoError::BadValue("files"))?;
        for entry in list.iter() {
            let entry = entry.as_dict().ok_or(InfoError::BadValue("files"))?;
            if let Some(file) = v1_file(entry)? {
                files.push(file);
            }
        }
        sum_lengths(&files)?
    } else {
        return Err(InfoError::NoFiles);
    };
    // A v2-only single file is a tree with one entry named like the torrent:
    // report it in the v1 shape (no file list) so both read the same.
    if version == MetaVersion::V2 && files.len() == 1 && files[0].path.len() == 1 && files[0].path[0] == name {
        files.clear();
    }

    Ok(InfoDict {
        name,
        name_utf8,
        files,
        total_size,
        piece_length,
        private,
        version,
    })
}

fn sum_lengths(files: &[InfoFile]) -> Result<u64, InfoError> {
    files
        .iter()
        .try_fold(0u64, |sum, f| sum.checked_add(f.length))
        .ok_or(InfoError::SizeOverflow)
}

/// One entry of a v1 `files` list; `None` for a BEP 47 padding file.
fn v1_file(entry: Dict<'_>) -> Result<Option<InfoFile>, InfoError> {
    let length = non_negative(entry.get(KEY_LENGTH).ok_or(InfoError::MissingKey("length"))?, "length")?;
    if let Some(attr) = entry.get(KEY_ATTR) {
        let attr = attr.as_bytes().ok_or(InfoError::BadValue("attr"))?;
        if attr.contains(&ATTR_PADDING) {
            return Ok(None);
        }
    }
    let path = path_of(entry.get(KEY_PATH).ok_or(InfoError::MissingKey("path"))?, "path")?;
    let path_utf8 = entry.get(KEY_PATH_UTF8).map(|v| path_of(v, "path.utf-8")).transpose()?;
    Ok(Some(InfoFile {
        path,
        path_utf8,
        length,
    }))
}

/// Bytes of flattened paths a `file tree` may produce for an info dict of
/// `raw_len` bytes. Every leaf copies its whole directory prefix, so without a
/// bound one long directory name over many leaves grows quadratically; honest
/// trees stay within a few times their own size.
fn file_tree_budget(raw_len: usize) -> usize {
    raw_len.saturating_mul(4).saturating_add(64 * 1024)
}

/// Memory a flattened path costs beyond its bytes: one `Vec` per component.
const PATH_COMPONENT_OVERHEAD: usize = core::mem::size_of::<Vec<u8>>();

/// Flattens a BEP 52 `file tree` into files, spending `budget` bytes at most on
/// the copied paths. Recursion depth is bounded by the bencode decoder's
/// `MAX_DEPTH`, which every nested dict here already passed.
fn walk_file_tree(
    tree: Dict<'_>,
    prefix: &mut Vec<Vec<u8>>,
    budget: &mut usize,
    out: &mut Vec<InfoFile>,
) -> Result<(), InfoError> {
    for (key, value) in tree.iter() {
        let node = value.as_dict().ok_or(InfoError::BadValue("file tree"))?;
        if key == KEY_FILE_TREE_LEAF {
            if prefix.is_empty() {
                return Err(InfoError::BadValue("file tree"));
            }
            let cost = prefix.iter().map(|c| c.len() + PATH_COMPONENT_OVERHEAD).sum::<usize>();
            *budget = budget.checked_sub(cost).ok_or(InfoError::FileTreeTooLarge)?;
            let length = non_negative(node.get(KEY_LENGTH).ok_or(InfoError::MissingKey("length"))?, "length")?;
            out.push(InfoFile {
                path: prefix.clone(),
                path_utf8: None,
                length,
            });
        } else {
            prefix.push(key.to_vec());
            walk_file_tree(node, prefix, budget, out)?;
            prefix.pop();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PIECES_1: &str = "6:pieces20:aaaaaaaaaaaaaaaaaaaa";

    fn dict(body: &str) -> Vec<u8> {
        format!("d{body}e").into_bytes()
    }

    #[test]
    fn single_file_v1() {
        let raw = dict(&format!(
            "6:lengthi1234567e4:name9:movie.mkv12:piece lengthi262144e{PIECES_1}"
        ));
        let info = parse(&raw).unwrap();
        assert_eq!(info.name, b"movie.mkv");
        assert_eq!(info.display_name(), "movie.mkv");
        assert!(info.files.is_empty());
        assert_eq!(info.total_size, 1_234_567);
        assert_eq!(info.piece_length, 262_144);
        assert!(!info.private);
        assert_eq!(info.version, MetaVersion::V1);
    }

    #[test]
    fn multi_file_with_utf8_variants_padding_and_private() {
        // `name` and one path in GBK bytes (not UTF-8), with UTF-8 variants, as
        // old Chinese clients wrote them; a BEP 47 padding file; private = 1.
        let mut raw = b"d5:filesl".to_vec();
        raw.extend_from_slice(b"d6:lengthi100e4:pathl3:sub5:a.txtee");
        raw.extend_from_slice(b"d4:attr1:p6:lengthi16284e4:pathl4:.pad5:16284ee");
        raw.extend_from_slice(b"d6:lengthi5e4:pathl4:\xd6\xd0\xce\xc4e10:path.utf-8l6:\xe4\xb8\xad\xe6\x96\x87ee");
        raw.extend_from_slice(b"e4:name2:\xb5\xe710:name.utf-86:\xe7\x94\xb5\xe5\xbd\xb1");
        raw.extend_from_slice(b"12:piece lengthi16384e6:pieces20:bbbbbbbbbbbbbbbbbbbb7:privatei1ee");
        let info = parse(&raw).unwrap();
        assert_eq!(info.name, b"\xb5\xe7");
        assert_eq!(info.display_name(), "电影");
        assert_eq!(info.files.len(), 2, "padding file left out");
        assert_eq!(info.files[0].path, vec![b"sub".to_vec(), b"a.txt".to_vec()]);
        assert_eq!(info.files[1].path, vec![b"\xd6\xd0\xce\xc4".to_vec()]);
        assert_eq!(info.files[1].file_name(), "中文".as_bytes());
        assert_eq!(info.total_size, 105);
        assert!(info.private);
    }

    #[test]
    fn file_tree_sharing_one_long_directory_is_refused_not_expanded() {
        // One 20 KB directory name over 1,000 leaves would flatten to about
        // 20 MB of paths from a 45 KB dict (found by review while fuzzing).
        let dir = "a".repeat(20_000);
        let mut leaves = String::new();
        for i in 0..1_000 {
            leaves.push_str(&format!("5:f{i:04}d0:d6:lengthi1eee"));
        }
        let raw = dict(&format!(
            "9:file treed{}:{dir}d{leaves}ee12:meta versioni2e4:name1:x12:piece lengthi16384e",
            dir.len()
        ));
        assert_eq!(parse(&raw).unwrap_err(), InfoError::FileTreeTooLarge);

        // The same shape with a short directory name is an honest tree.
        let raw = dict(&format!(
            "9:file treed3:dird{leaves}ee12:meta versioni2e4:name1:x12:piece lengthi16384e"
        ));
        let info = parse(&raw).unwrap();
        assert_eq!(info.files.len(), 1_000);
        assert_eq!(info.total_size, 1_000);
    }

    #[test]
    fn v2_only_and_hybrid_are_recognised() {
        let v2 = dict(concat!(
            "9:file treed3:dird5:a.mkvd0:d6:lengthi10e11:pieces root32:rrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrreee",
            "5:b.srtd0:d6:lengthi2eeee12:meta versioni2e4:name1:x12:piece lengthi16384e"
        ));
        let info = parse(&v2).unwrap();
        assert_eq!(info.version, MetaVersion::V2);
        assert_eq!(info.files.len(), 2);
        assert_eq!(info.files[0].path, vec![b"dir".to_vec(), b"a.mkv".to_vec()]);
        assert_eq!(info.files[1].path, vec![b"b.srt".to_vec()]);
        assert_eq!(info.total_size, 12);

        let hybrid = dict(&format!(
            "9:file treed1:xd0:d6:lengthi7eeee6:lengthi7e12:meta versioni2e4:name1:x12:piece lengthi16384e{PIECES_1}"
        ));
        let info = parse(&hybrid).unwrap();
        assert_eq!(info.version, MetaVersion::Hybrid);
        assert!(info.files.is_empty());
        assert_eq!(info.total_size, 7);

        let v3 = dict("12:meta versioni3e4:name1:x12:piece lengthi1e");
        assert_eq!(parse(&v3), Err(InfoError::UnknownMetaVersion(3)));
    }

    #[test]
    fn bad_dicts_get_typed_errors() {
        assert_eq!(parse(b"i1e"), Err(InfoError::NotADict));
        assert!(matches!(parse(b"d4:name"), Err(InfoError::Bencode(_))));
        assert_eq!(
            parse(&dict(&format!("6:lengthi1e12:piece lengthi1e{PIECES_1}"))),
            Err(InfoError::MissingKey("name"))
        );
        assert_eq!(
            parse(&dict(&format!("6:lengthi-1e4:name1:x12:piece lengthi1e{PIECES_1}"))),
            Err(InfoError::BadValue("length"))
        );
        assert_eq!(
            parse(&dict("6:lengthi1e4:name1:x12:piece lengthi1e6:pieces3:abc")),
            Err(InfoError::BadValue("pieces"))
        );
        assert_eq!(
            parse(&dict(&format!("4:name1:x12:piece lengthi1e{PIECES_1}"))),
            Err(InfoError::NoFiles)
        );
        assert_eq!(
            parse(&dict(&format!(
                "5:filesld6:lengthi1e4:pathleee4:name1:x12:piece lengthi1e{PIECES_1}"
            ))),
            Err(InfoError::BadValue("path"))
        );
        let huge = i64::MAX;
        assert_eq!(
            parse(&dict(&format!(
                "5:filesld6:lengthi{huge}e4:pathl1:aeed6:lengthi{huge}e4:pathl1:beed6:lengthi9e4:pathl1:ceee4:name1:x12:piece lengthi1e{PIECES_1}"
            ))),
            Err(InfoError::SizeOverflow)
        );
        assert_eq!(
            parse(&dict(&format!("6:lengthi1e4:name1:x12:piece lengthi0e{PIECES_1}"))),
            Err(InfoError::BadValue("piece length"))
        );
    }
}
