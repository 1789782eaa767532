//! The numbers `trawl stats` prints, as one JSON object: shared by the
//! command and `trawl serve`'s `/api/stats`, so both say the same thing.
//!
//! Owns the derived figures (bytes per item, metadata fraction, the budget
//! step); the counting itself is [`Store::stats`].

use serde_json::{json, Map, Value};

use crate::budget::{state_for, DiskState};
use crate::schema::{CF_ALIASES, CF_INFOHASHES, CF_INFO_DICTS, CF_SCRAPES, CF_TORRENTS};
use crate::{ContentClass, Source, StorageError, Store, StoreStats};

/// Bytes on disk per stored item (SSTs only: the WAL and memtables are
/// transient). `None` while there is nothing to divide by.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PerItem {
    pub infohash: Option<f64>,
    pub torrent: Option<f64>,
}

impl PerItem {
    pub fn of(s: &StoreStats) -> PerItem {
        let per = |bytes: u64, n: u64| (n > 0).then(|| bytes as f64 / n as f64);
        let d = &s.disk;
        let torrent_bytes = [CF_TORRENTS, CF_INFO_DICTS, CF_SCRAPES, CF_ALIASES]
            .iter()
            .map(|cf| d.sst_bytes_of(cf))
            .sum();
        PerItem {
            infohash: per(d.sst_bytes_of(CF_INFOHASHES), s.infohashes),
            torrent: per(torrent_bytes, s.torrents),
        }
    }
}

/// Share of infohashes whose metadata is stored.
pub fn metadata_fraction(s: &StoreStats) -> f64 {
    if s.infohashes == 0 {
        0.0
    } else {
        s.torrents as f64 / s.infohashes as f64
    }
}

pub fn classes(s: &StoreStats) -> Vec<(&'static str, u64)> {
    ContentClass::ALL
        .iter()
        .map(|c| (c.as_str(), s.by_class[*c as usize]))
        .collect()
}

pub fn sources(s: &StoreStats) -> Vec<(&'static str, u64)> {
    Source::ALL
        .iter()
        .enumerate()
        .map(|(i, src)| (src.as_str(), s.by_source[i]))
        .collect()
}

/// The budget of the latest crawl, the share of it used, and the step a
/// crawl would be at now (the writer's own rule).
pub fn budget_step(store: &Store, s: &StoreStats) -> Result<(Option<u64>, Option<f64>, DiskState), StorageError> {
    let budget = store.disk_budget()?;
    let step = state_for(s.disk.total_bytes, budget, DiskState::Normal);
    Ok((budget, budget.map(|b| s.disk.total_bytes as f64 / b as f64), step))
}

/// `trawl stats --json`.
pub fn stats_json(store: &Store, s: &StoreStats) -> Result<Value, StorageError> {
    let per = PerItem::of(s);
    let mode = store.read_info_dicts_mode()?;
    let (budget, share, step) = budget_step(store, s)?;
    Ok(json!({
        "infohashes": s.infohashes,
        "sources": json_map(&sources(s)),
        "torrents": s.torrents,
        "metadata_fraction": metadata_fraction(s),
        "classes": json_map(&classes(s)),
        "content_bytes": s.total_content_bytes,
        "queued": s.staged,
        "queued_by_last_failure": store.queue_by_last_failure()?.into_iter().map(|(k, n)| (k, Value::from(n))).collect::<Map<_, _>>(),
        "scrapes": s.scrapes,
        "nodes": s.nodes,
        "disk_bytes": s.disk.total_bytes,
        "sst_bytes": json_map(&s.disk.sst_bytes),
        "bytes_per_infohash": per.infohash,
        "bytes_per_torrent": per.torrent,
        "info_dicts_mode": mode.map(|m| m.as_str()),
        "disk_budget_bytes": budget,
        "disk_budget_fraction": share,
        "disk_budget_step": budget.map(|_| step.as_str()),
    }))
}

fn json_map(pairs: &[(&str, u64)]) -> Map<String, Value> {
    pairs.iter().map(|(k, v)| (k.to_string(), (*v).into())).collect()
}
