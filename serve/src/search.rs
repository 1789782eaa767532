//! Runs a [`SearchRequest`] against the index: the tantivy query, the sort
//! with its cursor, and the hits as the API and pages show them.
//!
//! Owns the ranking (name matches count twice a path match) and the cursor's
//! meaning. Reads the index only; never the store.

use std::ops::Bound;

use tantivy::collector::{Count, TopDocs};
use tantivy::query::{AllQuery, BooleanQuery, BoostQuery, Occur, PhraseQuery, Query, RangeQuery, TermQuery};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::tokenizer::TextAnalyzer;
use tantivy::{DocAddress, Score, SegmentReader, TantivyDocument, Term};
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

    /// The query for `r`, without sort or paging.
    pub fn query(&mut self, r: &SearchRequest) -> Box<dyn Query> {
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
        let range = |field: Field, lo: Option<u64>, hi: Option<u64>| -> Option<Box<dyn Query>> {
            if lo.is_none() && hi.is_none() {
                return None;
            }
            let b = |v: Option<u64>| v.map_or(Bound::Unbounded, |v| Bound::Included(Term::from_field_u64(field, v)));
            Some(Box::new(RangeQuery::new(b(lo), b(hi))))
        };
        let ranges = [
            range(f.size, r.min_size, r.max_size),
            range(f.first_seen, r.since, r.until),
            range(f.seeders, r.min_seeders, None),
        ];
        clauses.extend(ranges.into_iter().flatten().map(|q| (Occur::Must, q)));
        Box::new(BooleanQuery::new(clauses))
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
        let query = self.query(r);
        let searcher = self.index.reader().searcher();
        let fields = *self.index.fields();
        let sort = r.sort;
        let ascending = r.ascending;
        let cursor = r.cursor;
        let want = r.offset.saturating_add(r.limit).saturating_add(1);
        let ranked = TopDocs::with_limit(want).tweak_score(move |seg: &SegmentReader| {
            let column = match sort {
                SortKey::Relevance => None,
                SortKey::Size => seg.fast_fields().u64(F_SIZE).ok(),
                SortKey::FirstSeen => seg.fast_fields().u64(F_FIRST_SEEN).ok(),
                SortKey::Seeders => seg.fast_fields().u64(F_SEEDERS).ok(),
            };
            let ties = seg.fast_fields().u64(F_TIE).ok();
            move |doc, score: Score| {
                let raw = match (&column, sort) {
                    (_, SortKey::Relevance) => u64::from(score.max(0.0).to_bits()),
                    (Some(c), _) => c.first(doc).unwrap_or(0),
                    (None, _) => 0,
                };
                // Descending is the collector's order; ascending flips the key
                // (relevance is always best first).
                let key = if ascending && sort != SortKey::Relevance {
                    u64::MAX - raw
                } else {
                    raw
                };
                let tie = ties.as_ref().and_then(|c| c.first(doc)).unwrap_or(0);
                let after_cursor = cursor.is_none_or(|c| (key, tie) < (c.key, c.tie));
                // Hits on earlier pages sort below every hit of this one.
                (after_cursor, key, tie)
            }
        });
        let (total, top) = searcher.search(&*query, &(Count, ranked)).map_err(index_err)?;
        let mut kept: Vec<((bool, u64, u64), DocAddress)> = top.into_iter().filter(|(s, _)| s.0).collect();
        let more = kept.len() > r.offset + r.limit;
        kept.truncate(r.offset + r.limit);
        let page: Vec<_> = kept.into_iter().skip(r.offset).collect();
        let next_cursor = match (more, page.last()) {
            (true, Some(((_, key, tie), _))) => Some(PageCursor { key: *key, tie: *tie }.encode()),
            _ => None,
        };
        let mut hits = Vec::with_capacity(page.len());
        for (_, addr) in page {
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
