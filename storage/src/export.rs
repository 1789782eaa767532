//! Bulk export: one sequential pass in key order, streamed to any `Write`, in
//! constant memory whatever the database size.
//!
//! Owns the export formats and filters. It reads through `Store` iterators and
//! must not write to the database. When metadata is needed, the `torrents` and
//! `scrapes` families are merge-joined alongside the driving family (all are
//! keyed by infohash), so no lookup is random.
//!
//! A hash without metadata may have a provisional name (heard in a
//! `get_peers` reply, see [`crate::Store::provisional_name`]): `jsonl` and
//! `csv` carry it as `provisional_name`, lossy UTF-8 (invalid bytes become
//! U+FFFD), and never as `name`, which is only ever the fetched metadata's.
//! `bitmagnet` still skips such hashes: its `name` would be unverified.

use std::io::Write;
use std::path::{Path, PathBuf};

use rocksdb::DBRawIterator;
use serde::Serialize;

use crate::record::*;
use crate::schema::*;
use crate::{KeptInfoDict, StorageError, Store};

/// Output formats that stream to one writer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// One 40-character lowercase hex line per infohash.
    Hex,
    /// 20-byte records, nothing between them.
    Bin,
    /// One JSON object per line with everything stored.
    Jsonl,
    /// A header line, then one row per infohash ([`CSV_HEADER`]).
    Csv,
    /// NDJSON for bitmagnet's `/import` (only hashes with metadata: it needs a name).
    Bitmagnet,
    /// One magnet link per line ([`magnet_link`]): both hashes of a hybrid,
    /// the name once the metadata is stored.
    Magnet,
}

impl Format {
    fn needs_metadata(self) -> bool {
        matches!(self, Format::Jsonl | Format::Csv | Format::Bitmagnet | Format::Magnet)
    }
}

/// Which hashes to export.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Only hashes first seen at or after this time.
    pub since: Option<UnixSecs>,
    /// Only hashes whose metadata is stored.
    pub with_metadata: bool,
    /// Only torrents of this class (implies `with_metadata`).
    pub class: Option<ContentClass>,
}

/// What an export did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub written: u64,
    /// Hashes the format could not represent (bitmagnet without metadata,
    /// `.torrent` without a stored info dict).
    pub skipped: u64,
    /// Of `skipped`, `.torrent` files not written because only the `files`
    /// form of the dict was kept (`--info-dicts files`: no piece hashes).
    pub pieces_not_kept: u64,
}

/// CSV header; one row per infohash follows. `provisional_name` is filled
/// only while `name` (the metadata's) is not; it is last so the columns
/// before it keep their positions.
pub const CSV_HEADER: &str =
    "info_hash,name,size,files,seeders,leechers,class,content_type,first_seen,last_seen,seen,fetched_at,provisional_name\n";
/// `source` field of bitmagnet lines.
pub const BITMAGNET_SOURCE: &str = "trawl";

/// Streams the selected hashes to `out` in `format`.
pub fn export<W: Write>(store: &Store, format: Format, filter: &Filter, out: &mut W) -> Result<Summary, StorageError> {
    let mut sum = Summary::default();
    let mut line = Vec::with_capacity(256);
    if format == Format::Csv {
        out.write_all(CSV_HEADER.as_bytes())?;
    }
    for_each(store, filter, format.needs_metadata(), |item| {
        line.clear();
        match format {
            Format::Hex => {
                push_hex(&mut line, &item.hash);
                line.push(b'\n');
            }
            Format::Bin => line.extend_from_slice(&item.hash),
            Format::Jsonl => write_jsonl(&mut line, &item)?,
            Format::Csv => write_csv(&mut line, &item),
            Format::Magnet => {
                line.extend_from_slice(magnet_link(&item.hash, item.torrent.as_ref()).as_bytes());
                line.push(b'\n');
            }
            Format::Bitmagnet => {
                if !write_bitmagnet(&mut line, &item)? {
                    sum.skipped += 1;
                    return Ok(());
                }
            }
        }
        out.write_all(&line)?;
        sum.written += 1;
        Ok(())
    })?;
    out.flush()?;
    Ok(sum)
}

/// Writes one `.torrent` per selected hash with a stored info dict under
/// `dir/ab/cd/<hash>.torrent` (the first two bytes fan out the folders).
pub fn export_torrent_files(store: &Store, filter: &Filter, dir: &Path) -> Result<Summary, StorageError> {
    let mut sum = Summary::default();
    let filter = Filter {
        with_metadata: true,
        ..filter.clone()
    };
    let mut hex = Vec::with_capacity(40);
    for_each(store, &filter, false, |item| {
        let dict = match store.kept_info_dict(&item.hash)? {
            Some(KeptInfoDict::Full(d)) => d,
            Some(KeptInfoDict::Files(_)) => {
                sum.skipped += 1;
                sum.pieces_not_kept += 1;
                return Ok(());
            }
            None => {
                sum.skipped += 1;
                return Ok(());
            }
        };
        hex.clear();
        push_hex(&mut hex, &item.hash);
        let hex = std::str::from_utf8(&hex).unwrap_or_default();
        let folder: PathBuf = dir.join(&hex[0..2]).join(&hex[2..4]);
        std::fs::create_dir_all(&folder)?;
        // A trackerless .torrent: the info dict alone; magnet-style clients find peers on the DHT.
        let mut file = std::io::BufWriter::new(std::fs::File::create(folder.join(format!("{hex}.torrent")))?);
        file.write_all(b"d4:info")?;
        file.write_all(&dict)?;
        file.write_all(b"e")?;
        file.flush()?;
        sum.written += 1;
        Ok(())
    })?;
    Ok(sum)
}

/// One exported hash with whatever the filter and format asked to join.
pub(crate) struct Item {
    pub hash: InfoHash,
    pub seen: Option<InfoHashRecord>,
    pub torrent: Option<TorrentRecord>,
    /// Joined only with `want_metadata`, and only for a hash without a torrent.
    pub provisional: Option<ProvisionalName>,
}

/// Drives one pass. Without a metadata filter the `infohashes` family drives
/// and torrents are joined only if `want_metadata`; with one, the (smaller)
/// `torrents` family drives and `infohashes` is joined for times.
fn for_each<F>(store: &Store, filter: &Filter, want_metadata: bool, mut f: F) -> Result<(), StorageError>
where
    F: FnMut(Item) -> Result<(), StorageError>,
{
    let metadata_only = filter.with_metadata || filter.class.is_some();
    let (driver_cf, join_cf) = if metadata_only {
        (CF_TORRENTS, CF_INFOHASHES)
    } else {
        (CF_INFOHASHES, CF_TORRENTS)
    };
    let mut it = store.scan(driver_cf)?;
    let need_join = metadata_only || want_metadata;
    let mut join = if need_join {
        Some(Join::new(store.scan(join_cf)?))
    } else {
        None
    };
    let mut scrapes = if want_metadata {
        Some(Join::new(store.scan(CF_SCRAPES)?))
    } else {
        None
    };
    // Every hash it could name is in the driver's pass only when `infohashes`
    // drives; an older database opened read-only may not have the family.
    let mut names = match (want_metadata && !metadata_only, store.added_cf(CF_PROVISIONAL_NAMES)) {
        (true, Some(_)) => Some(Join::new(store.scan(CF_PROVISIONAL_NAMES)?)),
        _ => None,
    };
    while let (Some(k), Some(v)) = (it.key(), it.value()) {
        let hash =
            infohash_from_key(k).ok_or_else(|| StorageError::corrupt("key", format_args!("{} bytes", k.len())))?;
        let joined = match join.as_mut() {
            Some(j) => j.find(&hash).map_err(|e| store.rocks(e))?,
            None => None,
        };
        let (seen_raw, torrent_raw) = if metadata_only {
            (joined, Some(v))
        } else {
            (Some(v), joined)
        };
        let seen = match seen_raw {
            Some(s) => Some(decode_infohash(s)?),
            None => None,
        };
        let keep = match (filter.since, seen) {
            (Some(since), Some(s)) => s.first_seen >= since,
            (Some(_), None) => false,
            (None, _) => true,
        } && filter
            .class
            .is_none_or(|c| torrent_raw.and_then(torrent_class) == Some(c));
        if keep {
            let torrent = match (want_metadata, torrent_raw) {
                (true, Some(raw)) => {
                    let mut t = decode_torrent(hash, raw)?;
                    if let Some(s) = scrapes.as_mut() {
                        t.scrape = s
                            .find(&hash)
                            .map_err(|e| store.rocks(e))?
                            .map(decode_scrape)
                            .transpose()?;
                    }
                    Some(t)
                }
                _ => None,
            };
            let provisional = match (&torrent, names.as_mut()) {
                (None, Some(j)) => j
                    .find(&hash)
                    .map_err(|e| store.rocks(e))?
                    .map(|v| decode_provisional_name(hash, v))
                    .transpose()?,
                _ => None,
            };
            f(Item {
                hash,
                seen,
                torrent,
                provisional,
            })?;
        }
        it.next();
    }
    it.status().map_err(|e| store.rocks(e))
}

/// A second iterator advanced in step with the driver (both in key order).
struct Join<'a> {
    it: DBRawIterator<'a>,
}

impl<'a> Join<'a> {
    fn new(it: DBRawIterator<'a>) -> Self {
        Join { it }
    }

    /// The value stored under `key`, if any. Keys must be asked in ascending order.
    fn find(&mut self, key: &[u8]) -> Result<Option<&[u8]>, rocksdb::Error> {
        let mut steps = 0;
        while let Some(k) = self.it.key() {
            match k.cmp(key) {
                std::cmp::Ordering::Less => {
                    // Far behind (a sparse join): one seek beats many steps.
                    steps += 1;
                    if steps > 16 {
                        self.it.seek(key);
                        steps = 0;
                    } else {
                        self.it.next();
                    }
                }
                std::cmp::Ordering::Equal => return Ok(self.it.value()),
                std::cmp::Ordering::Greater => return Ok(None),
            }
        }
        self.it.status()?;
        Ok(None)
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

pub(crate) fn push_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    for b in bytes {
        out.push(HEX[(b >> 4) as usize]);
        out.push(HEX[(b & 15) as usize]);
    }
}

pub(crate) fn hex_string(h: &[u8]) -> String {
    let mut v = Vec::with_capacity(2 * h.len());
    push_hex(&mut v, h);
    String::from_utf8(v).unwrap_or_default()
}

/// A magnet link for `hash`: `xt=urn:btih:` with the v1 hash (none for a
/// v2-only torrent), `xt=urn:btmh:1220` with the full SHA-256 of a v2 or
/// hybrid torrent (BEP 52's multihash form), and `dn=` with the name once the
/// metadata is stored, percent-encoded (RFC 3986 unreserved bytes stay).
pub fn magnet_link(hash: &InfoHash, torrent: Option<&TorrentRecord>) -> String {
    let mut m = String::from("magnet:?");
    let v2_only = torrent.is_some_and(|t| t.version == TorrentVersion::V2);
    if !v2_only {
        m.push_str("xt=urn:btih:");
        m.push_str(&hex_string(hash));
    }
    if let Some(v2) = torrent.and_then(|t| t.v2_hash) {
        if !v2_only {
            m.push('&');
        }
        m.push_str("xt=urn:btmh:1220");
        m.push_str(&hex_string(&v2));
    }
    if let Some(t) = torrent {
        m.push_str("&dn=");
        for &b in &t.name {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                m.push(b as char);
            } else {
                m.push('%');
                m.push(HEX[(b >> 4) as usize].to_ascii_uppercase() as char);
                m.push(HEX[(b & 15) as usize].to_ascii_uppercase() as char);
            }
        }
    }
    m
}

#[derive(Serialize)]
struct JsonFile {
    path: String,
    length: u64,
}

#[derive(Serialize)]
struct JsonLine<'a> {
    info_hash: String,
    /// `v1`, `v2` or `hybrid`, once the metadata is stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<&'static str>,
    /// The full SHA-256 of a v2 or hybrid info dict, 64 hex digits.
    #[serde(skip_serializing_if = "Option::is_none")]
    v2_info_hash: Option<String>,
    magnet: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<std::borrow::Cow<'a, str>>,
    /// Present only when the name is not valid UTF-8, so nothing is lost.
    #[serde(skip_serializing_if = "Option::is_none")]
    name_hex: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    piece_length: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    private: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    files: Option<Vec<JsonFile>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seeders: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    leechers: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scraped_at: Option<UnixSecs>,
    #[serde(skip_serializing_if = "Option::is_none")]
    class: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fetched_at: Option<UnixSecs>,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_seen: Option<UnixSecs>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_seen: Option<UnixSecs>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seen: Option<u32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    sources: Vec<&'static str>,
    /// Only without metadata: a name a node gave, unverified, lossy UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    provisional_name: Option<std::borrow::Cow<'a, str>>,
}

fn write_jsonl(line: &mut Vec<u8>, item: &Item) -> Result<(), StorageError> {
    let t = item.torrent.as_ref();
    let j = JsonLine {
        info_hash: hex_string(&item.hash),
        version: t.map(|t| t.version.as_str()),
        v2_info_hash: t.and_then(|t| t.v2_hash).map(|h| hex_string(&h)),
        magnet: magnet_link(&item.hash, t),
        name: t.map(|t| t.name_readable()),
        name_hex: t.filter(|t| std::str::from_utf8(&t.name).is_err()).map(|t| {
            let mut v = Vec::new();
            push_hex(&mut v, &t.name);
            String::from_utf8(v).unwrap_or_default()
        }),
        size: t.map(|t| t.total_size),
        piece_length: t.map(|t| t.piece_length),
        private: t.map(|t| t.private),
        files: t.map(|t| {
            t.files
                .iter()
                .map(|f| JsonFile {
                    path: f.path_readable(),
                    length: f.length,
                })
                .collect()
        }),
        seeders: t.and_then(|t| t.scrape).map(|s| s.seeders),
        leechers: t.and_then(|t| t.scrape).map(|s| s.leechers),
        scraped_at: t.and_then(|t| t.scrape).map(|s| s.at),
        class: t.map(|t| t.class.as_str()),
        content_type: t.and_then(|t| t.content_type).map(|c| c.as_str()),
        fetched_at: t.map(|t| t.fetched_at),
        first_seen: item.seen.map(|s| s.first_seen),
        last_seen: item.seen.map(|s| s.last_seen),
        seen: item.seen.map(|s| s.seen),
        sources: item
            .seen
            .map_or_else(Vec::new, |s| s.sources.iter().map(Source::as_str).collect()),
        provisional_name: item.provisional.as_ref().map(ProvisionalName::name_readable),
    };
    serde_json::to_writer(&mut *line, &j).map_err(|e| StorageError::Stream(e.into()))?;
    line.push(b'\n');
    Ok(())
}

fn write_csv(line: &mut Vec<u8>, item: &Item) {
    use std::fmt::Write as _;
    let t = item.torrent.as_ref();
    let mut s = String::with_capacity(128);
    s.push_str(&hex_string(&item.hash));
    s.push(',');
    if let Some(t) = t {
        csv_field(&mut s, &t.name_readable());
    }
    let opt = |s: &mut String, v: Option<u64>| {
        s.push(',');
        if let Some(v) = v {
            let _ = write!(s, "{v}");
        }
    };
    opt(&mut s, t.map(|t| t.total_size));
    opt(&mut s, t.map(|t| t.file_count() as u64));
    opt(&mut s, t.and_then(|t| t.scrape).map(|x| u64::from(x.seeders)));
    opt(&mut s, t.and_then(|t| t.scrape).map(|x| u64::from(x.leechers)));
    s.push(',');
    s.push_str(t.map_or("", |t| t.class.as_str()));
    s.push(',');
    s.push_str(t.and_then(|t| t.content_type).map_or("", |c| c.as_str()));
    opt(&mut s, item.seen.map(|x| u64::from(x.first_seen)));
    opt(&mut s, item.seen.map(|x| u64::from(x.last_seen)));
    opt(&mut s, item.seen.map(|x| u64::from(x.seen)));
    opt(&mut s, t.map(|t| u64::from(t.fetched_at)));
    s.push(',');
    if let Some(p) = &item.provisional {
        csv_field(&mut s, &p.name_readable());
    }
    s.push('\n');
    line.extend_from_slice(s.as_bytes());
}

/// RFC 4180: quote when needed, double inner quotes.
fn csv_field(out: &mut String, v: &str) {
    if v.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&v.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(v);
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BitmagnetLine<'a> {
    info_hash: String,
    name: std::borrow::Cow<'a, str>,
    size: u64,
    source: &'static str,
    published_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_type: Option<&'static str>,
}

/// Returns false when the item cannot be a bitmagnet line (no metadata).
fn write_bitmagnet(line: &mut Vec<u8>, item: &Item) -> Result<bool, StorageError> {
    let Some(t) = item.torrent.as_ref() else {
        return Ok(false);
    };
    let published = item.seen.map_or(t.fetched_at, |s| s.first_seen);
    let b = BitmagnetLine {
        info_hash: hex_string(&item.hash),
        name: t.name_readable(),
        size: t.total_size,
        source: BITMAGNET_SOURCE,
        published_at: rfc3339(published),
        content_type: t.content_type.map(|c| c.as_str()),
    };
    serde_json::to_writer(&mut *line, &b).map_err(|e| StorageError::Stream(e.into()))?;
    line.push(b'\n');
    Ok(true)
}

/// Unix seconds as RFC 3339 UTC (`2024-01-31T12:00:00Z`).
pub fn rfc3339(t: UnixSecs) -> String {
    let secs = i64::from(t);
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

/// Days since 1970-01-01 as (year, month 1-12, day 1-31): Howard Hinnant's
/// civil-from-days algorithm. Shared by every date trawl prints.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// Parses a `--since` value: unix seconds, `YYYY-MM-DD` (midnight UTC) or
/// `YYYY-MM-DDTHH:MM:SSZ`. `None` if it is none of these or out of range.
pub fn parse_time(s: &str) -> Option<UnixSecs> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().ok();
    }
    let (date, time) = match s.split_once(['T', ' ']) {
        Some((d, t)) => (d, Some(t.strip_suffix('Z').unwrap_or(t))),
        None => (s, None),
    };
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) {
        return None;
    }
    let secs_of_day = match time {
        None => 0,
        Some(t) => {
            let mut p = t.splitn(3, ':').map(|p| p.parse::<i64>().ok());
            let (h, mi, se) = (p.next()??, p.next()??, p.next().unwrap_or(Some(0))?);
            if !(0..24).contains(&h) || !(0..60).contains(&mi) || !(0..61).contains(&se) {
                return None;
            }
            h * 3600 + mi * 60 + se
        }
    };
    // days_from_civil, the inverse of `rfc3339`'s algorithm.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u32::try_from(days * 86_400 + secs_of_day).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_matches_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(u32::MAX), "2106-02-07T06:28:15Z");
    }

    #[test]
    fn parse_time_inverts_rfc3339() {
        for t in [0, 951_782_400, 1_700_000_000, u32::MAX] {
            assert_eq!(parse_time(&rfc3339(t)), Some(t));
        }
        assert_eq!(parse_time("2023-11-14"), Some(1_699_920_000));
        assert_eq!(parse_time("1700000000"), Some(1_700_000_000));
        assert_eq!(parse_time("1969-12-31"), None);
        assert_eq!(parse_time("2023-13-01"), None);
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn csv_quotes_only_when_needed() {
        let mut s = String::new();
        csv_field(&mut s, "plain");
        s.push('|');
        csv_field(&mut s, "a,\"b\"");
        assert_eq!(s, "plain|\"a,\"\"b\"\"\"");
    }
}
