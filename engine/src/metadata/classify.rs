//! What a torrent holds, from its file names, extensions and sizes: a coarse
//! [`ContentClass`] and, where the names say enough, bitmagnet's `contentType`.
//!
//! Owns: the rules, all in [`RULES`] (extensions per class) and [`MARKERS`]
//! (name tokens that refine a class into a bitmagnet type), and the pure
//! functions applying them.
//! Must not: do I/O, allocate per file, or guess: a type is given only when a
//! rule says so, otherwise it is `None` and bitmagnet decides for itself.
//!
//! The class is decided by bytes: each file's size counts for its extension's
//! class, and the class with the most bytes wins (a film with subtitles and a
//! sample image is video). Files of unknown extensions count for nothing, so a
//! torrent is `other` only when no file is recognised.

use trawl_storage::{BitmagnetType, ContentClass};

use super::info::InfoDict;

/// Extensions (lower case, without the dot) of each class.
pub const RULES: &[(ContentClass, &[&str])] = &[
    (
        ContentClass::Video,
        &[
            "mkv", "mp4", "avi", "m4v", "mov", "wmv", "flv", "webm", "mpg", "mpeg", "m2ts", "ts", "vob", "ogv", "3gp",
            "rmvb", "divx",
        ],
    ),
    (
        ContentClass::Audio,
        &[
            "mp3", "flac", "m4a", "m4b", "aac", "ogg", "opus", "wav", "wma", "ape", "alac", "aiff", "dsf", "dff", "mka",
        ],
    ),
    (
        ContentClass::Ebook,
        &["epub", "mobi", "azw", "azw3", "fb2", "djvu", "cbr", "cbz", "cb7", "lit"],
    ),
    (
        ContentClass::Software,
        &[
            "exe", "msi", "dmg", "pkg", "deb", "rpm", "apk", "appimage", "iso", "bin", "img", "nsp", "xci",
        ],
    ),
    (
        ContentClass::Archive,
        &["zip", "rar", "7z", "tar", "gz", "bz2", "xz", "zst", "tgz"],
    ),
    (
        ContentClass::Image,
        &[
            "jpg", "jpeg", "png", "gif", "bmp", "webp", "tif", "tiff", "heic", "raw", "cr2", "nef",
        ],
    ),
    (
        ContentClass::Document,
        &[
            "pdf", "doc", "docx", "txt", "rtf", "odt", "xls", "xlsx", "ppt", "pptx", "csv", "md", "chm",
        ],
    ),
];

/// What a name token says about the content.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Marker {
    /// A video release tag (resolution, source, codec): a film unless episodes show.
    VideoRelease,
    /// A TV marker besides episode numbers (`season`, `complete series`, ...).
    Tv,
    /// Spoken-word audio.
    Audiobook,
    /// A game release group or store.
    Game,
    /// A comic format (by extension, see `comic_extension`).
    Comic,
    /// Adult content: bitmagnet's `xxx` type for video and images.
    Adult,
}

/// Name tokens (lower case, split on anything not a letter or digit) and what
/// they mark. Episode numbers (`S01E02`, `S01`, `1x02`) and years are patterns,
/// matched in `token_kind`.
pub const MARKERS: &[(&str, Marker)] = &[
    ("480p", Marker::VideoRelease),
    ("576p", Marker::VideoRelease),
    ("720p", Marker::VideoRelease),
    ("1080p", Marker::VideoRelease),
    ("1080i", Marker::VideoRelease),
    ("2160p", Marker::VideoRelease),
    ("4k", Marker::VideoRelease),
    ("uhd", Marker::VideoRelease),
    ("bluray", Marker::VideoRelease),
    ("bdrip", Marker::VideoRelease),
    ("brrip", Marker::VideoRelease),
    ("webrip", Marker::VideoRelease),
    ("webdl", Marker::VideoRelease),
    ("hdrip", Marker::VideoRelease),
    ("dvdrip", Marker::VideoRelease),
    ("remux", Marker::VideoRelease),
    ("x264", Marker::VideoRelease),
    ("x265", Marker::VideoRelease),
    ("h264", Marker::VideoRelease),
    ("hevc", Marker::VideoRelease),
    ("xvid", Marker::VideoRelease),
    ("hdtv", Marker::Tv),
    ("season", Marker::Tv),
    ("seasons", Marker::Tv),
    ("episode", Marker::Tv),
    ("series", Marker::Tv),
    ("audiobook", Marker::Audiobook),
    ("audiobooks", Marker::Audiobook),
    ("unabridged", Marker::Audiobook),
    ("narrated", Marker::Audiobook),
    ("fitgirl", Marker::Game),
    ("dodi", Marker::Game),
    ("elamigos", Marker::Game),
    ("gog", Marker::Game),
    ("codex", Marker::Game),
    ("plaza", Marker::Game),
    ("skidrow", Marker::Game),
    ("reloaded", Marker::Game),
    ("razor1911", Marker::Game),
    ("cpy", Marker::Game),
    ("empress", Marker::Game),
    ("tenoke", Marker::Game),
    ("xxx", Marker::Adult),
    ("porn", Marker::Adult),
    ("porno", Marker::Adult),
    ("hentai", Marker::Adult),
    ("nsfw", Marker::Adult),
];

/// The class of one file name by its extension; `None` when unknown.
pub fn class_of_name(name: &[u8]) -> Option<ContentClass> {
    let dot = name.iter().rposition(|&b| b == b'.')?;
    let ext = &name[dot + 1..];
    if ext.is_empty() || ext.len() > 8 {
        return None;
    }
    RULES
        .iter()
        .find(|(_, exts)| exts.iter().any(|e| e.as_bytes().eq_ignore_ascii_case(ext)))
        .map(|&(class, _)| class)
}

/// `.cbr`, `.cbz` and `.cb7` are comics, not prose.
fn comic_extension(name: &[u8]) -> bool {
    let lower = |b: &u8| b.to_ascii_lowercase();
    let n = name.len();
    n > 4 && name[n - 4] == b'.' && lower(&name[n - 3]) == b'c' && lower(&name[n - 2]) == b'b'
}

/// Classifies a parsed info dict: the class by bytes, and bitmagnet's type.
pub fn classify(info: &InfoDict) -> (ContentClass, Option<BitmagnetType>) {
    let mut bytes = [0u64; ContentClass::ALL.len()];
    let mut comic_bytes = 0u64;
    let mut tally = |name: &[u8], length: u64| {
        if let Some(class) = class_of_name(name) {
            bytes[class as usize] = bytes[class as usize].saturating_add(length.max(1));
            if comic_extension(name) {
                comic_bytes = comic_bytes.saturating_add(length.max(1));
            }
        }
    };
    if info.files.is_empty() {
        tally(info.display_name_bytes(), info.total_size);
    } else {
        for f in &info.files {
            tally(f.file_name(), f.length);
        }
    }
    let (best, &best_bytes) = bytes
        .iter()
        .enumerate()
        .max_by_key(|&(i, b)| (b, core::cmp::Reverse(i)))
        .unwrap_or((ContentClass::Other as usize, &0));
    let class = if best_bytes == 0 {
        ContentClass::Other
    } else {
        ContentClass::ALL[best]
    };

    let mut hints = Hints::default();
    hints.scan(info.display_name_bytes());
    // Episode numbers often appear only in file names of a season pack.
    for f in info.files.iter().take(MAX_FILES_SCANNED) {
        hints.scan(f.file_name());
    }
    let content_type = match class {
        ContentClass::Video | ContentClass::Image if hints.adult => Some(BitmagnetType::Xxx),
        ContentClass::Video if hints.episode || hints.tv => Some(BitmagnetType::TvShow),
        ContentClass::Video if hints.video_release || hints.year => Some(BitmagnetType::Movie),
        ContentClass::Audio if hints.audiobook => Some(BitmagnetType::Audiobook),
        ContentClass::Audio => Some(BitmagnetType::Music),
        ContentClass::Ebook if comic_bytes * 2 > best_bytes => Some(BitmagnetType::Comic),
        ContentClass::Ebook => Some(BitmagnetType::Ebook),
        ContentClass::Software if hints.game => Some(BitmagnetType::Game),
        ContentClass::Software => Some(BitmagnetType::Software),
        _ => None,
    };
    (class, content_type)
}

/// File names looked at for markers; a season pack shows its pattern early.
const MAX_FILES_SCANNED: usize = 64;
/// Longest token looked at; real markers are short.
const MAX_TOKEN_LEN: usize = 16;

#[derive(Default, Debug)]
struct Hints {
    episode: bool,
    tv: bool,
    video_release: bool,
    year: bool,
    audiobook: bool,
    game: bool,
    adult: bool,
}

impl Hints {
    fn scan(&mut self, name: &[u8]) {
        // Tokens are lowered into a stack buffer: no allocation per file.
        let mut buf = [0u8; MAX_TOKEN_LEN];
        for token in name.split(|b| !b.is_ascii_alphanumeric()) {
            if token.is_empty() || token.len() > MAX_TOKEN_LEN {
                continue;
            }
            let lower = &mut buf[..token.len()];
            for (d, s) in lower.iter_mut().zip(token) {
                *d = s.to_ascii_lowercase();
            }
            match token_kind(lower) {
                Some(TokenKind::Episode) => self.episode = true,
                Some(TokenKind::Year) => self.year = true,
                Some(TokenKind::Marker(Marker::Tv)) => self.tv = true,
                Some(TokenKind::Marker(Marker::VideoRelease)) => self.video_release = true,
                Some(TokenKind::Marker(Marker::Audiobook)) => self.audiobook = true,
                Some(TokenKind::Marker(Marker::Game)) => self.game = true,
                Some(TokenKind::Marker(Marker::Adult)) => self.adult = true,
                Some(TokenKind::Marker(Marker::Comic)) | None => {}
            }
        }
        // `WEB-DL` splits into two tokens.
        if contains_ignore_case(name, b"web-dl") {
            self.video_release = true;
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TokenKind {
    Episode,
    Year,
    Marker(Marker),
}

fn digits(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(u8::is_ascii_digit)
}

/// Classifies one lower-case token.
fn token_kind(t: &[u8]) -> Option<TokenKind> {
    if let Some(&(_, m)) = MARKERS.iter().find(|(k, _)| k.as_bytes() == t) {
        return Some(TokenKind::Marker(m));
    }
    // s01e02, s1e2, s01 (a season pack), s01e01e02.
    if let Some(rest) = t.strip_prefix(b"s") {
        let season_end = rest.iter().position(|b| !b.is_ascii_digit()).unwrap_or(rest.len());
        let (season, after) = rest.split_at(season_end);
        if (1..=2).contains(&season.len()) {
            if after.is_empty() && season.len() == 2 {
                return Some(TokenKind::Episode);
            }
            if let Some(ep) = after.strip_prefix(b"e") {
                let ep_end = ep.iter().position(|b| !b.is_ascii_digit()).unwrap_or(ep.len());
                if (1..=3).contains(&ep_end) {
                    return Some(TokenKind::Episode);
                }
            }
        }
    }
    // 1x02, 12x103 (not 1920x1080: the season has at most two digits).
    if let Some(x) = t.iter().position(|&b| b == b'x') {
        let (season, ep) = (&t[..x], &t[x + 1..]);
        if (1..=2).contains(&season.len()) && (2..=3).contains(&ep.len()) && digits(season) && digits(ep) {
            return Some(TokenKind::Episode);
        }
    }
    if t.len() == 4 && digits(t) && (t.starts_with(b"19") || t.starts_with(b"20")) {
        return Some(TokenKind::Year);
    }
    None
}

fn contains_ignore_case(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::info::{InfoFile, MetaVersion};

    fn single(name: &str, size: u64) -> InfoDict {
        InfoDict {
            name: name.as_bytes().to_vec(),
            name_utf8: None,
            files: Vec::new(),
            total_size: size,
            piece_length: 1 << 18,
            private: false,
            version: MetaVersion::V1,
        }
    }

    fn multi(name: &str, files: &[(&str, u64)]) -> InfoDict {
        let files: Vec<InfoFile> = files
            .iter()
            .map(|&(p, length)| InfoFile {
                path: p.split('/').map(|c| c.as_bytes().to_vec()).collect(),
                path_utf8: None,
                length,
            })
            .collect();
        InfoDict {
            total_size: files.iter().map(|f| f.length).sum(),
            files,
            ..single(name, 0)
        }
    }

    const GB: u64 = 1 << 30;
    const MB: u64 = 1 << 20;

    #[test]
    fn extensions_map_through_the_table() {
        assert_eq!(class_of_name(b"a.MKV"), Some(ContentClass::Video));
        assert_eq!(class_of_name(b"song.flac"), Some(ContentClass::Audio));
        assert_eq!(class_of_name(b"book.epub"), Some(ContentClass::Ebook));
        assert_eq!(class_of_name(b"setup.exe"), Some(ContentClass::Software));
        assert_eq!(class_of_name(b"x.tar.gz"), Some(ContentClass::Archive));
        assert_eq!(class_of_name(b"cover.jpg"), Some(ContentClass::Image));
        assert_eq!(class_of_name(b"readme.txt"), Some(ContentClass::Document));
        assert_eq!(class_of_name(b"noextension"), None);
        assert_eq!(class_of_name(b"trailing."), None);
        assert_eq!(class_of_name(b"x.unknownext"), None);
    }

    #[test]
    fn adult_markers_give_bitmagnets_xxx_type() {
        let adult = multi("Some.Studio.XXX.1080p", &[("scene.mp4", 900_000_000)]);
        assert_eq!(classify(&adult), (ContentClass::Video, Some(BitmagnetType::Xxx)));
        let album = multi("Xxxtentacion - 17", &[("01.mp3", 9_000_000)]);
        assert_eq!(
            classify(&album).1,
            Some(BitmagnetType::Music),
            "a token, not a substring"
        );
    }

    #[test]
    fn largest_bytes_win() {
        let film = multi(
            "Some.Film.2019.1080p.BluRay.x264-GRP",
            &[
                ("film.mkv", 8 * GB),
                ("film.srt", 80_000),
                ("cover.jpg", 200_000),
                ("info.nfo", 2_000),
            ],
        );
        assert_eq!(classify(&film), (ContentClass::Video, Some(BitmagnetType::Movie)));
        let album = multi(
            "Artist - Album (2001) [FLAC]",
            &[
                ("01.flac", 30 * MB),
                ("02.flac", 28 * MB),
                ("scan.png", 9 * MB),
                ("a.log", 3_000),
            ],
        );
        assert_eq!(classify(&album), (ContentClass::Audio, Some(BitmagnetType::Music)));
        assert_eq!(classify(&single("notes", 10)), (ContentClass::Other, None));
        assert_eq!(
            classify(&multi("photos", &[("a.jpg", 5 * MB), ("b.png", 5 * MB)])),
            (ContentClass::Image, None)
        );
    }

    #[test]
    fn tv_shows_by_episode_patterns() {
        for name in [
            "Show.Name.S01E02.720p.HDTV.x264",
            "show name s3e7 webrip",
            "Show.Name.S02.1080p.WEB-DL",
            "Show Name 1x02 Pilot",
            "Show Name Season 4 Complete",
        ] {
            assert_eq!(
                classify(&single(&format!("{name}.mkv"), GB)),
                (ContentClass::Video, Some(BitmagnetType::TvShow)),
                "{name}"
            );
        }
        // A season pack whose episode numbers show only in the files.
        let pack = multi(
            "Show Name Complete",
            &[("Show.E01/show.s01e01.mkv", GB), ("Show.E02/show.s01e02.mkv", GB)],
        );
        assert_eq!(classify(&pack).1, Some(BitmagnetType::TvShow));
        // A resolution is not an episode.
        assert_eq!(
            classify(&single("Film 1920x1080 2012.mp4", GB)).1,
            Some(BitmagnetType::Movie)
        );
        // No hint at all: no guess.
        assert_eq!(classify(&single("holiday.mp4", GB)), (ContentClass::Video, None));
    }

    #[test]
    fn audiobooks_comics_games_software() {
        let audiobook = multi(
            "Author - Title (Unabridged)",
            &[("part1.mp3", 100 * MB), ("part2.mp3", 100 * MB)],
        );
        assert_eq!(classify(&audiobook).1, Some(BitmagnetType::Audiobook));
        assert_eq!(classify(&single("Title.m4b", 300 * MB)).0, ContentClass::Audio);
        let comics = multi("Comic Vol 1", &[("01.cbz", 50 * MB), ("02.cbr", 50 * MB)]);
        assert_eq!(classify(&comics), (ContentClass::Ebook, Some(BitmagnetType::Comic)));
        assert_eq!(
            classify(&single("Book.epub", MB)),
            (ContentClass::Ebook, Some(BitmagnetType::Ebook))
        );
        let game = multi(
            "Game Title [FitGirl Repack]",
            &[("setup.exe", 5 * MB), ("data.bin", 20 * GB)],
        );
        assert_eq!(classify(&game), (ContentClass::Software, Some(BitmagnetType::Game)));
        assert_eq!(
            classify(&single("ubuntu-24.04-desktop-amd64.iso", 5 * GB)),
            (ContentClass::Software, Some(BitmagnetType::Software))
        );
    }
}
