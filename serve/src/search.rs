//! Runs a [`SearchRequest`] against the index: the tantivy query, the sort
//! with its cursor, and the hits as the API and pages show them.
//!
//! Owns the ranking (name matches count twice a path match) and the cursor's
//! meaning. Reads the index only; never the store.

use std::ops::Bound;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use tantivy::collector::{Collector, SegmentCollector};
use tantivy::query::{AllQuery, BooleanQuery, BoostQuery, Occur, PhraseQuery, Query, RangeQuery, TermQuery};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::tokenizer::TextAnalyzer;

use tantivy::columnar::Column;
use tantivy::{DocAddress, DocId, Score, SegmentOrdinal, SegmentReader, TantivyDocument, Term};
use trawl_storage::BitmagnetType;

use crate::index::*;
use crate::query::{PageCursor, SearchRequest, SortKey, TextTerm};
use crate::ServeError;

/// A match in the name weighs this much more than one in a file path.
const NAME_BOOST: Score = 2.0;

/// One search result, from the index's stored fields.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Hit {
    pub info_hash: String,
    pub name: String,
    pub size: u64,
    pub files: u64,
    pub first_seen: u64,
    pub seeders: u64,
    pub leechers: u64,
    pub class: &'static str,
    pub content_type: Option<&'static str>,
    pub version: &'static str,
    /// The Torznab category.
    pub category: u64,
    /// The infohash's magnet link with the name (`dn`).
    pub magnet: String,
}

/// One page of results.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Page {
    /// Matches in all, not only on this page.
    pub total: u64,
    pub hits: Vec<Hit>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Runs searches over one [`SearchIndex`].
pub struct Searcher<'a> {
    index: &'a SearchIndex,
    analyzer: TextAnalyzer,
}

impl<'a> Searcher<'a> {
    pub fn new(index: &'a SearchIndex) -> Self {
        Searcher {
            index,
            analyzer: release_analyzer(),
        }
    }

    /// The query for `r`, without sort or paging, and the range filters left
    /// to the collector. When a word leads the query its matches are few next
    /// to the index, and checking their columns in the collector is cheaper
    /// than intersecting them with a range over every document; without a
    /// word the ranges are the query.
    fn query(&mut self, r: &SearchRequest) -> (Box<dyn Query>, Vec<RangeFilter>) {
        let f = *self.index.fields();
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        let mut positive = false;
        for t in &r.terms {
            let Some(q) = self.text_query(&f, t) else {
                continue;
            };
            positive |= !t.exclude;
            clauses.push((if t.exclude { Occur::MustNot } else { Occur::Must }, q));
        }
        if !positive {
            clauses.push((Occur::Must, Box::new(AllQuery)));
        }
        let any_of = |field: Field, codes: Vec<u64>| -> Box<dyn Query> {
            Box::new(BooleanQuery::new(
                codes
                    .into_iter()
                    .map(|c| {
                        let q: Box<dyn Query> =
                            Box::new(TermQuery::new(Term::from_field_u64(field, c), IndexRecordOption::Basic));
                        (Occur::Should, q)
                    })
                    .collect(),
            ))
        };
        if !r.classes.is_empty() {
            clauses.push((
                Occur::Must,
                any_of(f.class, r.classes.iter().map(|c| class_code(*c)).collect()),
            ));
        }
        if !r.types.is_empty() {
            let codes = r.types.iter().map(|t| type_code(Some(*t))).collect();
            clauses.push((Occur::Must, any_of(f.content_type, codes)));
        }
        if !r.categories.is_empty() {
            clauses.push((Occur::Must, any_of(f.category, r.categories.clone())));
        }
        if !r.versions.is_empty() {
            let codes = r.versions.iter().map(|v| version_code(*v)).collect();
            clauses.push((Occur::Must, any_of(f.version, codes)));
        }
        let ranges = [
            (f.size, F_SIZE, r.min_size, r.max_size),
            (f.first_seen, F_FIRST_SEEN, r.since, r.until),
            (f.seeders, F_SEEDERS, r.min_seeders, None),
        ];
        let mut filters = Vec::new();
        for (field, column, lo, hi) in ranges {
            if lo.is_none() && hi.is_none() {
                continue;
            }
            if positive {
                filters.push(RangeFilter {
                    column,
                    lo: lo.unwrap_or(0),
                    hi: hi.unwrap_or(u64::MAX),
                });
            } else {
                let b =
                    |v: Option<u64>| v.map_or(Bound::Unbounded, |v| Bound::Included(Term::from_field_u64(field, v)));
                clauses.push((Occur::Must, Box::new(RangeQuery::new(b(lo), b(hi)))));
            }
        }
        (Box::new(BooleanQuery::new(clauses)), filters)
    }

    /// A word or phrase in the name (boosted) or any path. `None` when the
    /// analyzer leaves nothing of it (punctuation only).
    fn text_query(&mut self, f: &Fields, t: &TextTerm) -> Option<Box<dyn Query>> {
        let mut words = Vec::new();
        let mut stream = self.analyzer.token_stream(&t.text);
        while let Some(tok) = stream.next() {
            words.push(tok.text.clone());
        }
        if words.is_empty() {
            return None;
        }
        let in_field = |field: Field| -> Box<dyn Query> {
            if words.len() == 1 {
                Box::new(TermQuery::new(
                    Term::from_field_text(field, &words[0]),
                    IndexRecordOption::WithFreqs,
                ))
            } else {
                Box::new(PhraseQuery::new(
                    words.iter().map(|w| Term::from_field_text(field, w)).collect(),
                ))
            }
        };
        // A phrase and a word that splits into several ("x264-GROUP") both
        // match as adjacent words; each separate word of the query is its own clause.
        Some(Box::new(BooleanQuery::new(vec![
            (Occur::Should, Box::new(BoostQuery::new(in_field(f.name), NAME_BOOST))),
            (Occur::Should, in_field(f.paths)),
        ])))
    }

    /// One page of hits for `r`.
    pub fn search(&mut self, r: &SearchRequest) -> Result<Page, ServeError> {
        let (query, filters) = self.query(r);
        let searcher = self.index.reader().searcher();
        let fields = *self.index.fields();
        let want = r.offset.saturating_add(r.limit).saturating_add(1);
        let collector = Ranked {
            sort: r.sort,
            ascending: r.ascending,
            cursor: r.cursor,
            want,
            filters,
        };
        let (total, top) = searcher.search(&*query, &collector).map_err(index_err)?;
        let more = top.len() > r.offset + r.limit;
        let page: Vec<_> = top.into_iter().take(r.offset + r.limit).skip(r.offset).collect();
        let next_cursor = match (more, page.last()) {
            (true, Some((key, tie, _))) => Some(PageCursor { key: *key, tie: *tie }.encode()),
            _ => None,
        };
        let mut hits = Vec::with_capacity(page.len());
        for (_, _, addr) in page {
            let doc: TantivyDocument = searcher.doc(addr).map_err(index_err)?;
            hits.push(hit_of(&fields, &doc));
        }
        // Hits of earlier pages are not counted again; the total is the whole match.
        Ok(Page {
            total: total as u64,
            hits,
            next_cursor,
        })
    }
}

/// A hit's place in the order: the sort key (descending; an ascending sort
/// stores `u64::MAX - value`), the tie-break, and where it is.
type Ranking = (u64, u64, DocAddress);

/// Counts every match and keeps the best `want` after the cursor, in one pass.
///
/// Instead of tantivy's `TopDocs` with a tweaked score and a `Count` beside it
/// because: a sort by a column needs no BM25 score at all (`requires_scoring`
/// is false unless the sort is relevance), and the tie-break column is read
/// only for a match whose key could enter the page, not for every match.
struct Ranked {
    sort: SortKey,
    ascending: bool,
    cursor: Option<PageCursor>,
    want: usize,
    filters: Vec<RangeFilter>,
}

/// A match counts only with its `column` value in `lo..=hi` (a document
/// without the value reads as 0, as the index writes every one).
#[derive(Clone, Copy, Debug)]
struct RangeFilter {
    column: &'static str,
    lo: u64,
    hi: u64,
}

struct SegmentRanked {
    segment: SegmentOrdinal,
    relevance: bool,
    ascending: bool,
    column: Option<Column<u64>>,
    ties: Column<u64>,
    cursor: Option<PageCursor>,
    want: usize,
    filters: Vec<(Column<u64>, u64, u64)>,
    count: usize,
    /// The best `want` so far, the worst on top.
    best: BinaryHeap<Reverse<(u64, u64, DocId)>>,
}

impl Collector for Ranked {
    type Fruit = (usize, Vec<Ranking>);
    type Child = SegmentRanked;

    fn for_segment(&self, segment: SegmentOrdinal, reader: &SegmentReader) -> tantivy::Result<SegmentRanked> {
        let fast = reader.fast_fields();
        let column = match self.sort {
            SortKey::Relevance => None,
            SortKey::Size => Some(fast.u64(F_SIZE)?),
            SortKey::FirstSeen => Some(fast.u64(F_FIRST_SEEN)?),
            SortKey::Seeders => Some(fast.u64(F_SEEDERS)?),
        };
        Ok(SegmentRanked {
            segment,
            relevance: self.sort == SortKey::Relevance,
            ascending: self.ascending,
            column,
            ties: fast.u64(F_TIE)?,
            cursor: self.cursor,
            want: self.want,
            filters: self
                .filters
                .iter()
                .map(|r| Ok((fast.u64(r.column)?, r.lo, r.hi)))
                .collect::<tantivy::Result<_>>()?,
            count: 0,
            best: BinaryHeap::with_capacity(self.want.min(1024) + 1),
        })
    }

    fn requires_scoring(&self) -> bool {
        self.sort == SortKey::Relevance
    }

    fn merge_fruits(&self, fruits: Vec<(usize, Vec<Ranking>)>) -> tantivy::Result<(usize, Vec<Ranking>)> {
        let total = fruits.iter().map(|f| f.0).sum();
        let mut all: Vec<Ranking> = fruits.into_iter().flat_map(|f| f.1).collect();
        // Best first; equal keys and ties (the same hash twice) keep a fixed order.
        all.sort_unstable_by(|a, b| (b.0, b.1).cmp(&(a.0, a.1)).then(a.2.cmp(&b.2)));
        all.truncate(self.want);
        Ok((total, all))
    }
}

impl SegmentRanked {
    fn tie(&self, doc: DocId) -> u64 {
        self.ties.first(doc).unwrap_or(0)
    }
}

impl SegmentCollector for SegmentRanked {
    type Fruit = (usize, Vec<Ranking>);

    fn collect(&mut self, doc: DocId, score: Score) {
        for (column, lo, hi) in &self.filters {
            let v = column.first(doc).unwrap_or(0);
            if v < *lo || v > *hi {
                return;
            }
        }
        self.count += 1;
        let key = if self.relevance {
            // A non-negative float's bits order as the float does.
            u64::from(score.max(0.0).to_bits())
        } else {
            let raw = self.column.as_ref().and_then(|c| c.first(doc)).unwrap_or(0);
            if self.ascending {
                u64::MAX - raw
            } else {
                raw
            }
        };
        // Hits at or before the cursor were on earlier pages.
        let mut tie = None;
        if let Some(c) = self.cursor {
            if key > c.key {
                return;
            }
            if key == c.key {
                let t = self.tie(doc);
                if t >= c.tie {
                    return;
                }
                tie = Some(t);
            }
        }
        if self.best.len() >= self.want {
            let Some(Reverse(worst)) = self.best.peek() else {
                return;
            };
            if key < worst.0 {
                return;
            }
            let t = tie.unwrap_or_else(|| self.tie(doc));
            if (key, t) <= (worst.0, worst.1) {
                return;
            }
            self.best.pop();
            self.best.push(Reverse((key, t, doc)));
        } else {
            let t = tie.unwrap_or_else(|| self.tie(doc));
            self.best.push(Reverse((key, t, doc)));
        }
    }

    fn harvest(self) -> (usize, Vec<Ranking>) {
        let segment = self.segment;
        let ranked = self
            .best
            .into_iter()
            .map(|Reverse((key, tie, doc))| (key, tie, DocAddress::new(segment, doc)))
            .collect();
        (self.count, ranked)
    }
}

pub(crate) fn hit_of(f: &Fields, doc: &TantivyDocument) -> Hit {
    Hit {
        info_hash: stored_text(doc, f.hash),
        name: stored_text(doc, f.name),
        size: stored_u64(doc, f.size),
        files: stored_u64(doc, f.files),
        first_seen: stored_u64(doc, f.first_seen),
        seeders: stored_u64(doc, f.seeders),
        leechers: stored_u64(doc, f.leechers),
        class: class_of(stored_u64(doc, f.class)).as_str(),
        content_type: type_of(stored_u64(doc, f.content_type)).map(BitmagnetType::as_str),
        version: version_of(stored_u64(doc, f.version)).as_str(),
        category: stored_u64(doc, f.category),
        magnet: stored_text(doc, f.magnet),
    }
}

#[cfg(test)]
mod tests {
    use trawl_storage::{ContentClass, FileEntry, ScrapeEstimate, TorrentRecord, TorrentVersion};

    use super::*;

    const N: u32 = 300;

    /// Torrent `n`: sizes, seeders and first-seen times repeat (so ties
    /// decide), every name has "show", every third also "extra".
    fn record(n: u32) -> (TorrentRecord, u64) {
        let mut info_hash = [0u8; 20];
        info_hash[..4].copy_from_slice(&n.wrapping_mul(2_654_435_761).to_be_bytes());
        info_hash[19] = n as u8;
        let name = if n % 3 == 0 {
            format!("Show.{n}.extra")
        } else {
            format!("Show.{n}")
        };
        let t = TorrentRecord {
            info_hash,
            version: TorrentVersion::V1,
            v2_hash: None,
            name: name.into_bytes(),
            files: vec![FileEntry {
                path: vec![b"f.mkv".to_vec()],
                length: u64::from(n % 7) * 1000,
            }],
            total_size: u64::from(n % 7) * 1000,
            piece_length: 1 << 18,
            private: false,
            class: ContentClass::Video,
            content_type: None,
            fetched_at: 1_700_000_000,
            scrape: (n % 2 == 0).then_some(ScrapeEstimate {
                seeders: n % 5,
                leechers: 0,
                at: 1_700_000_000,
            }),
            info_dict: None,
        };
        (t, 1_700_000_000 + u64::from(n % 11))
    }

    fn walk(index: &SearchIndex, query: &str) -> (u64, Vec<Hit>) {
        let mut searcher = Searcher::new(index);
        let mut all = Vec::new();
        let mut cursor = String::new();
        loop {
            let mut params = vec![("limit", "11")];
            for pair in query.split('&') {
                let (k, v) = pair.split_once('=').unwrap();
                params.push((k, v));
            }
            if !cursor.is_empty() {
                params.push(("cursor", cursor.as_str()));
            }
            let r = SearchRequest::parse(params).unwrap();
            let page = searcher.search(&r).unwrap();
            assert!(page.hits.len() <= 11);
            let total = page.total;
            all.extend(page.hits);
            match page.next_cursor {
                Some(c) => cursor = c,
                None => return (total, all),
            }
        }
    }

    /// Pages over several segments give every match once, in the order of
    /// the key then the tie-break, as a sort of all the records gives it.
    #[test]
    fn cursor_pages_over_segments_match_a_full_sort() {
        let dir = tempfile::tempdir().unwrap();
        let index = SearchIndex::open(dir.path()).unwrap();
        let mut writer = index.writer().unwrap();
        let records: Vec<_> = (0..N).map(record).collect();
        for chunk in records.chunks(100) {
            for (t, first_seen) in chunk {
                writer.put(t, *first_seen).unwrap();
            }
            writer.commit().unwrap();
        }
        index.reload().unwrap();
        assert!(index.reader().searcher().segment_readers().len() >= 2);

        type Key = fn(&TorrentRecord, u64) -> u64;
        let keys: [(&str, Key); 3] = [
            ("size", |t, _| t.total_size),
            ("seeders", |t, _| t.scrape.map_or(0, |s| u64::from(s.seeders))),
            ("first_seen", |_, f| f),
        ];
        for (sort, key) in keys {
            for ascending in [false, true] {
                let mut expected: Vec<_> = records
                    .iter()
                    .map(|(t, f)| {
                        let k = key(t, *f);
                        (
                            if ascending { u64::MAX - k } else { k },
                            tie_of(&t.info_hash),
                            hex(&t.info_hash),
                        )
                    })
                    .collect();
                expected.sort_by_key(|e| Reverse((e.0, e.1)));
                let order = if ascending { "asc" } else { "desc" };
                let (total, hits) = walk(&index, &format!("sort={sort}&order={order}"));
                assert_eq!(total, u64::from(N), "{sort} {order}");
                let got: Vec<_> = hits.iter().map(|h| h.info_hash.clone()).collect();
                let want: Vec<_> = expected.into_iter().map(|e| e.2).collect();
                assert_eq!(got, want, "{sort} {order}");
            }
        }

        // Ranges: checked in the collector after a word, as the query without
        // one; both agree with the records.
        let in_ranges = |(t, f): &(TorrentRecord, u64)| {
            let seeders = t.scrape.map_or(0, |s| u64::from(s.seeders));
            (2000..=4000).contains(&t.total_size) && seeders >= 2 && *f <= 1_700_000_006
        };
        let expected = records.iter().filter(|r| in_ranges(r)).count() as u64;
        assert!(expected > 0 && expected < u64::from(N));
        let ranges = "min_size=2000&max_size=4000&min_seeders=2&until=1700000006";
        for q in [ranges.to_owned(), format!("q=show&{ranges}")] {
            let (total, hits) = walk(&index, &q);
            assert_eq!(total, expected, "{q}");
            assert_eq!(hits.len() as u64, expected, "{q}");
        }

        // Relevance: every word must match; pages give each match once.
        for (q, matches) in [("q=show extra", N.div_ceil(3)), ("q=show", N)] {
            let (total, hits) = walk(&index, q);
            assert_eq!(total, u64::from(matches), "{q}");
            let mut seen: Vec<_> = hits.iter().map(|h| h.info_hash.clone()).collect();
            seen.sort();
            seen.dedup();
            assert_eq!(seen.len() as u64, total, "{q}");
        }
    }
}
