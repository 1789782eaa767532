//! The search index: a tantivy index in its own directory, built from the
//! store's `torrents` family and kept current from its `changes` log.
//!
//! Owns the index's schema, its tokenizer for release names and the cursor
//! (the last change applied), which rides in each commit's payload so that a
//! kill -9 loses at most the changes since the last commit, and those are
//! applied again on the next start. It reads the store and never writes it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tantivy::directory::MmapDirectory;
use tantivy::schema::{
    Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, Value, FAST, INDEXED, STORED, STRING,
};
use tantivy::tokenizer::{AsciiFoldingFilter, LowerCaser, RemoveLongFilter, SimpleTokenizer, TextAnalyzer};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};
use trawl_storage::export::magnet_link;
use trawl_storage::{BitmagnetType, ContentClass, InfoHash, Store, TorrentRecord, TorrentVersion};

use crate::torznab::{category, category_terms};
use crate::ServeError;

/// The tokenizer of names and paths: words split at anything that is not a
/// letter or digit (dots, underscores, dashes, brackets), lower-cased and
/// folded to ASCII where a letter has an ASCII form (é → e).
pub const RELEASE_TOKENIZER: &str = "release";
/// Words longer than this are dropped (hashes and base64 noise in names).
const MAX_TOKEN_LEN: usize = 40;
/// File paths indexed per torrent, in bytes of text: a torrent of 50,000
/// files is still found by its first few hundred paths, and the index stays bounded.
pub const MAX_PATHS_TEXT: usize = 32 * 1024;
/// Memory the index writer may buffer before it writes a segment.
const WRITER_MEMORY: usize = 64 << 20;
/// Bumped when the fields change: an index of another version is rebuilt.
const INDEX_VERSION: u32 = 1;

/// How often the follower looks for new changes, and how often it commits
/// what it applied. A torrent stored by the crawl is searchable within
/// about `POLL + COMMIT_EVERY` plus the reader's reload (documented as 5 s).
pub const POLL: Duration = Duration::from_millis(500);
pub const COMMIT_EVERY: Duration = Duration::from_secs(2);
/// A first build commits every this many torrents, so searches see it grow.
const REBUILD_COMMIT_EVERY: u64 = 200_000;
/// Changes read from the log at once.
const CHANGES_PER_READ: usize = 4096;

/// The index's fields, by name in the schema.
#[derive(Clone, Copy, Debug)]
pub struct Fields {
    pub hash: Field,
    pub name: Field,
    pub paths: Field,
    pub size: Field,
    pub files: Field,
    pub first_seen: Field,
    pub seeders: Field,
    pub leechers: Field,
    pub class: Field,
    pub content_type: Field,
    pub version: Field,
    /// The hash's first 8 bytes: the tie-break that makes cursors total.
    pub tie: Field,
    /// The magnet link (both hashes for v2 and hybrid torrents, and the name).
    pub magnet: Field,
    /// The Torznab category and its parent ([`crate::torznab::category_terms`]).
    pub category: Field,
}

/// Fast-field names the searcher sorts by.
pub const F_SIZE: &str = "size";
pub const F_FIRST_SEEN: &str = "first_seen";
pub const F_SEEDERS: &str = "seeders";
pub const F_TIE: &str = "tie";

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let text = |stored: bool| {
        let o = TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(RELEASE_TOKENIZER)
                .set_index_option(IndexRecordOption::WithFreqsAndPositions),
        );
        if stored {
            o.set_stored()
        } else {
            o
        }
    };
    let fields = Fields {
        hash: b.add_text_field("hash", STRING | STORED),
        name: b.add_text_field("name", text(true)),
        paths: b.add_text_field("paths", text(false)),
        size: b.add_u64_field(F_SIZE, INDEXED | FAST | STORED),
        files: b.add_u64_field("files", STORED),
        first_seen: b.add_u64_field(F_FIRST_SEEN, INDEXED | FAST | STORED),
        seeders: b.add_u64_field(F_SEEDERS, INDEXED | FAST | STORED),
        leechers: b.add_u64_field("leechers", STORED),
        class: b.add_u64_field("class", INDEXED | STORED),
        content_type: b.add_u64_field("content_type", INDEXED | STORED),
        version: b.add_u64_field("version", INDEXED | STORED),
        tie: b.add_u64_field(F_TIE, FAST),
        magnet: b.add_text_field("magnet", STORED),
        category: b.add_u64_field("category", INDEXED | STORED),
    };
    (b.build(), fields)
}

/// The analyzer for names, paths and query words alike.
pub fn release_analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(MAX_TOKEN_LEN))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .build()
}

/// Codes stored for the enumerations (their position in `ALL`; 0 for "none").
pub fn class_code(c: ContentClass) -> u64 {
    ContentClass::ALL.iter().position(|x| *x == c).unwrap_or(0) as u64
}
pub fn class_of(code: u64) -> ContentClass {
    ContentClass::ALL
        .get(code as usize)
        .copied()
        .unwrap_or(ContentClass::Other)
}
pub fn type_code(t: Option<BitmagnetType>) -> u64 {
    t.and_then(|t| BitmagnetType::ALL.iter().position(|x| *x == t))
        .map_or(0, |i| i as u64 + 1)
}
pub fn type_of(code: u64) -> Option<BitmagnetType> {
    code.checked_sub(1)
        .and_then(|i| BitmagnetType::ALL.get(i as usize).copied())
}
pub fn version_code(v: TorrentVersion) -> u64 {
    match v {
        TorrentVersion::V1 => 0,
        TorrentVersion::V2 => 1,
        TorrentVersion::Hybrid => 2,
    }
}
pub fn version_of(code: u64) -> TorrentVersion {
    match code {
        1 => TorrentVersion::V2,
        2 => TorrentVersion::Hybrid,
        _ => TorrentVersion::V1,
    }
}

pub fn hex(h: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(h.len() * 2);
    for b in h {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

pub fn tie_of(h: &InfoHash) -> u64 {
    u64::from_be_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]])
}

/// What the commit payload records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Cursor {
    pub version: u32,
    /// The last change of the store's log this index has applied.
    pub after: u64,
    /// A full build from the `torrents` family finished.
    pub built: bool,
}

/// An open index: a reader for searches, and the fields.
pub struct SearchIndex {
    index: Index,
    reader: IndexReader,
    fields: Fields,
    dir: PathBuf,
}

impl SearchIndex {
    /// Opens the index in `dir`, creating it (and `dir`) if missing. An index
    /// of another schema version is recreated (empty, not built).
    pub fn open(dir: &Path) -> Result<SearchIndex, ServeError> {
        std::fs::create_dir_all(dir).map_err(|e| ServeError::Index(format!("{}: {e}", dir.display())))?;
        let (schema, fields) = schema();
        let mmap = MmapDirectory::open(dir).map_err(|e| ServeError::Index(format!("{}: {e}", dir.display())))?;
        let index = match Index::open_or_create(mmap, schema.clone()) {
            Ok(i) => i,
            Err(tantivy::TantivyError::SchemaError(_)) => {
                tracing::warn!("{}: the search index has an older layout; recreating it", dir.display());
                clear_dir(dir)?;
                let mmap =
                    MmapDirectory::open(dir).map_err(|e| ServeError::Index(format!("{}: {e}", dir.display())))?;
                Index::create(mmap, schema, Default::default()).map_err(index_err)?
            }
            Err(e) => return Err(index_err(e)),
        };
        index.tokenizers().register(RELEASE_TOKENIZER, release_analyzer());
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::OnCommitWithDelay)
            .try_into()
            .map_err(index_err)?;
        Ok(SearchIndex {
            index,
            reader,
            fields,
            dir: dir.into(),
        })
    }

    pub fn fields(&self) -> &Fields {
        &self.fields
    }

    pub fn reader(&self) -> &IndexReader {
        &self.reader
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The cursor of the last commit (default: nothing applied, not built).
    pub fn cursor(&self) -> Result<Cursor, ServeError> {
        let metas = self.index.load_metas().map_err(index_err)?;
        Ok(metas
            .payload
            .and_then(|p| serde_json::from_str::<Cursor>(&p).ok())
            .filter(|c| c.version == INDEX_VERSION)
            .unwrap_or_default())
    }

    /// Documents in the index as of the reader's last reload.
    pub fn len(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The one writer of this index (tantivy holds a lock file: a second
    /// `trawl serve` on the same index fails here, clearly).
    pub fn writer(&self) -> Result<Indexer, ServeError> {
        let writer = self
            .index
            .writer_with_num_threads(1, WRITER_MEMORY)
            .map_err(|e| match e {
                tantivy::TantivyError::LockFailure(..) => ServeError::Index(format!(
                    "{}: the search index is in use by another trawl serve or index",
                    self.dir.display()
                )),
                e => index_err(e),
            })?;
        Ok(Indexer {
            writer,
            fields: self.fields,
            cursor: self.cursor()?,
            pending: 0,
            last_commit: Instant::now(),
            changes: Vec::new(),
        })
    }

    /// Makes the latest commit visible to searches now, not after the reload delay.
    pub fn reload(&self) -> Result<(), ServeError> {
        self.reader.reload().map_err(index_err)
    }
}

fn clear_dir(dir: &Path) -> Result<(), ServeError> {
    let io = |e: std::io::Error| ServeError::Index(format!("{}: {e}", dir.display()));
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        if entry.file_type().map_err(io)?.is_file() {
            std::fs::remove_file(entry.path()).map_err(io)?;
        }
    }
    Ok(())
}

pub(crate) fn index_err(e: tantivy::TantivyError) -> ServeError {
    ServeError::Index(e.to_string())
}

/// The writing side: applies torrents and changes, commits with the cursor.
pub struct Indexer {
    writer: IndexWriter,
    fields: Fields,
    cursor: Cursor,
    pending: u64,
    last_commit: Instant,
    changes: Vec<(u64, InfoHash)>,
}

/// What one [`Indexer::follow_once`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FollowStep {
    pub applied: u64,
    pub committed: bool,
}

impl Indexer {
    pub fn cursor(&self) -> Cursor {
        self.cursor
    }

    /// Adds or replaces the document of one torrent.
    pub fn put(&mut self, t: &TorrentRecord, first_seen: u64) -> Result<(), ServeError> {
        let f = &self.fields;
        let h = hex(&t.info_hash);
        self.writer.delete_term(Term::from_field_text(f.hash, &h));
        let mut doc = TantivyDocument::default();
        doc.add_text(f.hash, &h);
        doc.add_text(f.name, t.name_readable());
        let mut paths_len = 0;
        for file in &t.files {
            let p = file.path_readable();
            paths_len += p.len();
            if paths_len > MAX_PATHS_TEXT {
                break;
            }
            doc.add_text(f.paths, p);
        }
        doc.add_u64(f.size, t.total_size);
        doc.add_u64(f.files, t.files.len().max(1) as u64);
        doc.add_u64(f.first_seen, first_seen);
        let (seeders, leechers) = t.scrape.map_or((0, 0), |s| (s.seeders as u64, s.leechers as u64));
        doc.add_u64(f.seeders, seeders);
        doc.add_u64(f.leechers, leechers);
        doc.add_u64(f.class, class_code(t.class));
        doc.add_u64(f.content_type, type_code(t.content_type));
        doc.add_u64(f.version, version_code(t.version));
        doc.add_u64(f.tie, tie_of(&t.info_hash));
        doc.add_text(f.magnet, magnet_link(&t.info_hash, Some(t)));
        // The subcategory first: the stored first value is what feeds show.
        for c in category_terms(category(t.content_type, t.class)) {
            doc.add_u64(f.category, c);
        }
        self.writer.add_document(doc).map_err(index_err)?;
        self.pending += 1;
        Ok(())
    }

    /// Adds a torrent read from the store, with its first sighting.
    fn put_from(&mut self, store: &Store, t: &TorrentRecord) -> Result<(), ServeError> {
        let first_seen = store
            .infohash(&t.info_hash)
            .map_err(ServeError::Store)?
            .map_or(t.fetched_at, |r| r.first_seen.min(t.fetched_at));
        self.put(t, first_seen as u64)
    }

    /// Commits what was applied, recording `cursor` with it.
    pub fn commit(&mut self) -> Result<(), ServeError> {
        let payload = serde_json::to_string(&self.cursor).map_err(|e| ServeError::Index(e.to_string()))?;
        let mut pc = self.writer.prepare_commit().map_err(index_err)?;
        pc.set_payload(&payload);
        pc.commit().map_err(index_err)?;
        self.pending = 0;
        self.last_commit = Instant::now();
        Ok(())
    }

    /// Recreates the index from every torrent in the store. `progress` hears
    /// the count so far now and then. Changes written while it runs are
    /// applied again by the next [`Indexer::follow_once`] (replacing is idempotent).
    pub fn rebuild(&mut self, store: &Store, mut progress: impl FnMut(u64)) -> Result<u64, ServeError> {
        let after = store.last_change().map_err(ServeError::Store)?;
        self.writer.delete_all_documents().map_err(index_err)?;
        let mut done = 0u64;
        let mut failed: Option<ServeError> = None;
        // Not built until the pass ends: a kill meanwhile starts it over.
        self.cursor = Cursor {
            version: INDEX_VERSION,
            after: 0,
            built: false,
        };
        store
            .for_each_torrent(|t| {
                let step = self.put_from(store, &t).and_then(|()| {
                    done += 1;
                    if done % 10_000 == 0 {
                        progress(done);
                    }
                    // Searches see a large store's first build as it goes.
                    if done % REBUILD_COMMIT_EVERY == 0 {
                        self.commit()?;
                    }
                    Ok(())
                });
                match step {
                    Ok(()) => true,
                    Err(e) => {
                        failed = Some(e);
                        false
                    }
                }
            })
            .map_err(ServeError::Store)?;
        if let Some(e) = failed {
            return Err(e);
        }
        progress(done);
        self.cursor = Cursor {
            version: INDEX_VERSION,
            after,
            built: true,
        };
        self.commit()?;
        Ok(done)
    }

    /// Applies the changes the store has logged since the cursor (after a
    /// catch-up with the crawl, for a follower), and commits when
    /// [`COMMIT_EVERY`] has passed since the last commit. An index whose
    /// cursor is past the log's end belongs to another database: rebuilt.
    pub fn follow_once(&mut self, store: &Store) -> Result<FollowStep, ServeError> {
        let mut step = FollowStep::default();
        let last = store.last_change().map_err(ServeError::Store)?;
        if !self.cursor.built || self.cursor.after > last {
            if self.cursor.built {
                tracing::warn!(
                    "the search index is ahead of the database's change log ({} > {last}): rebuilding it",
                    self.cursor.after
                );
            }
            step.applied = self.rebuild(store, |_| {})?;
            step.committed = true;
            return Ok(step);
        }
        loop {
            self.changes.clear();
            store
                .changes_after(self.cursor.after, CHANGES_PER_READ, &mut self.changes)
                .map_err(ServeError::Store)?;
            let Some(&(seq, _)) = self.changes.last() else {
                break;
            };
            let changes = std::mem::take(&mut self.changes);
            for (_, h) in &changes {
                if let Some(t) = store.torrent(h).map_err(ServeError::Store)? {
                    self.put_from(store, &t)?;
                    step.applied += 1;
                }
            }
            self.changes = changes;
            self.cursor.after = seq;
            if self.changes.len() < CHANGES_PER_READ {
                break;
            }
        }
        if self.pending > 0 && self.last_commit.elapsed() >= COMMIT_EVERY {
            self.commit()?;
            step.committed = true;
        }
        Ok(step)
    }

    /// Commits anything not yet committed (at shutdown).
    pub fn flush(&mut self) -> Result<(), ServeError> {
        if self.pending > 0 {
            self.commit()?;
        }
        Ok(())
    }

    /// Commits what is pending and waits for the merges commits started, so
    /// their work is not thrown away and no merged file is left orphaned.
    pub fn finish(mut self) -> Result<(), ServeError> {
        self.flush()?;
        self.writer.wait_merging_threads().map_err(index_err)
    }
}

/// A stored field's u64, 0 when absent.
pub(crate) fn stored_u64(doc: &TantivyDocument, f: Field) -> u64 {
    doc.get_first(f).and_then(|v| v.as_u64()).unwrap_or(0)
}

pub(crate) fn stored_text(doc: &TantivyDocument, f: Field) -> String {
    doc.get_first(f).and_then(|v| v.as_str()).unwrap_or("").to_owned()
}
