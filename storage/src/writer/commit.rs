//! The writer loop: collect a group of batches, deduplicate its infohashes
//! (bloom filter, then one batched `multi_get`), write one WriteBatch with the
//! WAL synced, then acknowledge each batch.

use std::borrow::Cow;
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use rocksdb::WriteBatch;

use super::handle::{Counters, Msg};
use super::{Batch, BatchOutcome, WriterOptions};
use crate::bloom::Bloom;
use crate::budget::{state_for, DiskState};
use crate::record::*;
use crate::schema::*;
use crate::store::DueFloor;
use crate::{InfoDictMode, StorageError, Store};

/// One sighting of the group, ordered by hash (as big-endian integers, so
/// the derived order is byte order without a `memcmp` call), then arrival.
/// It carries the sighting itself, so the sorted pass reads memory in order.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct SortKey {
    hi: u64,
    mid: u64,
    lo: u32,
    /// Arrival order within the group; unique, so later fields never decide.
    seq: u32,
    at: UnixSecs,
    source: u8,
}

impl SortKey {
    pub(super) fn new(d: &Discovery, seq: u32) -> Self {
        let h = &d.info_hash;
        let (hi, rest) = h.split_at(8);
        let (mid, lo) = rest.split_at(8);
        SortKey {
            hi: u64::from_be_bytes(hi.try_into().unwrap_or_default()),
            mid: u64::from_be_bytes(mid.try_into().unwrap_or_default()),
            lo: u32::from_be_bytes(lo.try_into().unwrap_or_default()),
            seq,
            at: d.at,
            source: d.source.bit(),
        }
    }

    fn hash_part(&self) -> (u64, u64, u32) {
        (self.hi, self.mid, self.lo)
    }

    fn info_hash(&self) -> InfoHash {
        let mut h = [0u8; 20];
        h[..8].copy_from_slice(&self.hi.to_be_bytes());
        h[8..16].copy_from_slice(&self.mid.to_be_bytes());
        h[16..].copy_from_slice(&self.lo.to_be_bytes());
        h
    }

    fn sighting(&self) -> InfoHashRecord {
        InfoHashRecord {
            first_seen: self.at,
            last_seen: self.at,
            seen: 1,
            sources: SourceSet(self.source),
        }
    }
}

struct PendingHash {
    hash: InfoHash,
    rec: InfoHashRecord,
    /// Arrival order of its first sighting in the group.
    first_seq: u32,
    /// Never stored before (as far as the filter and RocksDB tell).
    new: bool,
}

/// A queue entry being edited within one group: the due time it had on disk
/// (to move its `staging_due` key) and its new state (`None`: remove).
struct QueueEdit {
    disk_due: Option<UnixSecs>,
    entry: Option<StagingEntry>,
}

pub(super) struct WriterLoop {
    store: Arc<Store>,
    opts: WriterOptions,
    counters: Arc<Counters>,
    closed: Arc<AtomicBool>,
    bloom: Bloom,
    // Scratch reused across groups.
    group: Vec<Batch>,
    keys: Vec<SortKey>,
    /// Bit per sighting, in arrival order: the first sighting of a hash never stored before.
    new_bits: Vec<u64>,
    /// The group's distinct hashes, in key order.
    hashes: Vec<PendingHash>,
    maybe: Vec<u32>,
    queue: HashMap<InfoHash, QueueEdit, ahash::RandomState>,
    /// The group's provisional names in arrival order, and its stored torrents.
    names: Vec<ProvisionalName>,
    stored: Vec<InfoHash>,
    buf: Vec<u8>,
    /// Entries in the fetch queue as of the last commit, and those this group
    /// created so far: what [`QueuePolicy::max_entries`] is checked against.
    queue_len: u64,
    group_new: u64,
    /// The budget state this group is built under, read once per group.
    disk: DiskState,
    last_measure: Option<Instant>,
    /// A copy of the WriteBatch being written, to retry it if the disk is full.
    held: Vec<u8>,
    /// The `changes` log's last sequence number (read at start).
    last_change: u64,
}

/// How often a writer waiting for disk space retries, and how often it says it still waits.
const NO_SPACE_RETRY: Duration = Duration::from_secs(1);
const NO_SPACE_REMIND: Duration = Duration::from_secs(60);
/// The budget is measured at most this often (a directory listing).
const MEASURE_EVERY: Duration = Duration::from_secs(1);

impl WriterLoop {
    pub(super) fn new(
        store: Arc<Store>,
        opts: WriterOptions,
        counters: Arc<Counters>,
        closed: Arc<AtomicBool>,
    ) -> Self {
        let bloom = Bloom::with_capacity(opts.expected_infohashes);
        WriterLoop {
            store,
            opts,
            counters,
            closed,
            bloom,
            group: Vec::new(),
            keys: Vec::new(),
            new_bits: Vec::new(),
            hashes: Vec::new(),
            maybe: Vec::new(),
            queue: HashMap::default(),
            names: Vec::new(),
            stored: Vec::new(),
            buf: Vec::new(),
            queue_len: 0,
            group_new: 0,
            disk: DiskState::Normal,
            last_measure: None,
            held: Vec::new(),
            last_change: 0,
        }
    }

    pub(super) fn run(&mut self, rx: Receiver<Msg>) {
        if let Err(e) = self.fill_bloom(self.opts.expected_infohashes) {
            // Without the filter every hash would look new: refuse to run rather than lie.
            tracing::error!("storage writer cannot read the index: {e}");
            self.closed.store(true, Relaxed);
            return;
        }
        match self.store.count(CF_STAGING) {
            Ok(n) => self.queue_len = n,
            Err(e) => {
                tracing::error!("storage writer cannot count the fetch queue: {e}");
                self.closed.store(true, Relaxed);
                return;
            }
        }
        match self.store.last_change() {
            Ok(n) => self.last_change = n,
            Err(e) => {
                tracing::error!("storage writer cannot read the change log: {e}");
                self.closed.store(true, Relaxed);
                return;
            }
        }
        self.counters.budget.set_budget(self.opts.max_disk);
        self.measure_disk(true);
        let mut stopping = false;
        while !stopping {
            // An idle writer still measures, so freed space resumes storing.
            let first = match rx.recv_timeout(MEASURE_EVERY) {
                Ok(Msg::Batch(b)) => *b,
                Ok(Msg::Shutdown) | Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    self.measure_disk(false);
                    continue;
                }
            };
            let deadline = Instant::now() + self.opts.flush_interval;
            let mut items = first.items();
            self.group.push(first);
            while items < self.opts.max_group_items {
                match rx.recv_deadline(deadline) {
                    Ok(Msg::Batch(b)) => {
                        items += b.items();
                        self.group.push(*b);
                    }
                    Ok(Msg::Shutdown) | Err(RecvTimeoutError::Disconnected) => {
                        stopping = true;
                        break;
                    }
                    Err(RecvTimeoutError::Timeout) => break,
                }
            }
            self.commit_group();
            self.measure_disk(false);
        }
        // Refuse new work, then take what raced in before the flag.
        self.closed.store(true, Relaxed);
        while let Ok(m) = rx.try_recv() {
            if let Msg::Batch(b) = m {
                self.group.push(*b);
                if self.group.len() >= 64 {
                    self.commit_group();
                }
            }
        }
        self.commit_group();
    }

    fn fill_bloom(&mut self, capacity: usize) -> Result<(), StorageError> {
        let mut bloom = Bloom::with_capacity(capacity);
        let mut it = self.store.scan(CF_INFOHASHES)?;
        while let Some(k) = it.key() {
            if let Some(h) = infohash_from_key(k) {
                bloom.insert(&h);
            }
            it.next();
        }
        it.status().map_err(|e| self.store.rocks(e))?;
        drop(it);
        if bloom.is_overfull() {
            return self.fill_bloom(capacity.saturating_mul(2));
        }
        self.counters.bloom_bytes.store(bloom.bytes() as u64, Relaxed);
        self.bloom = bloom;
        Ok(())
    }

    fn commit_group(&mut self) {
        if self.group.is_empty() {
            return;
        }
        let c = Arc::clone(&self.counters);
        c.batches.fetch_add(self.group.len() as u64, Relaxed);
        let started = Instant::now();
        self.disk = c.budget.state();
        // Counted before the build, which takes each batch's results apart.
        let items: usize = self.group.iter().map(Batch::items).sum();
        let written = self.write_group().and_then(|wb| self.write_or_wait(wb, items));
        c.commit_micros
            .fetch_add(started.elapsed().as_micros().min(u64::MAX as u128) as u64, Relaxed);
        match written {
            Ok(()) => {
                c.commits.fetch_add(1, Relaxed);
                self.acknowledge();
            }
            Err(e) => {
                tracing::error!("storage writer lost a group of {items} items: {e}");
                c.failed_commits.fetch_add(1, Relaxed);
                c.items_lost.fetch_add(items as u64, Relaxed);
                // Dropping the reply senders tells each producer its batch was not stored.
            }
        }
        self.group.clear();
        self.hashes.clear();
        self.queue.clear();
        self.names.clear();
        self.stored.clear();
        if self.bloom.is_overfull() {
            let cap = self.bloom.capacity().saturating_mul(2);
            if let Err(e) = self.fill_bloom(cap) {
                tracing::warn!("could not grow the dedup filter (false positives will rise): {e}");
            }
        }
    }

    /// Builds one WriteBatch for the whole group.
    fn write_group(&mut self) -> Result<WriteBatch, StorageError> {
        let store = self.store.clone();
        let mut wb = WriteBatch::default();
        self.dedup_discoveries(&store, &mut wb)?;
        // Queue edits read-modify-write; the lease in `take_due` takes the same lock.
        let mut floor = store.staging_lock.lock().unwrap_or_else(|p| p.into_inner());
        for i in 0..self.group.len() {
            self.apply_results(&store, i, &mut wb)?;
        }
        self.write_queue_edits(&store, &mut wb, &mut floor)?;
        self.write_names(&store, &mut wb)?;
        Ok(wb)
    }

    /// Writes the group's batch. A full disk makes it hold a copy and retry
    /// every second until a write succeeds or the writer is told to stop.
    fn write_or_wait(&mut self, wb: WriteBatch, items: usize) -> Result<(), StorageError> {
        self.held.clear();
        self.held.extend_from_slice(wb.data());
        let mut err = match self.store.write(wb) {
            Ok(()) => {
                // The WAL grew by about the batch: counted now, so a burst
                // between two measures cannot run far past a step.
                let written = self.held.len() as u64;
                self.counters.bytes_written.fetch_add(written, Relaxed);
                self.apply_used(self.counters.budget.used() + written);
                return Ok(());
            }
            Err(e) if e.is_no_space() => e,
            Err(e) => return Err(e),
        };
        let c = Arc::clone(&self.counters);
        c.disk_full_pauses.fetch_add(1, Relaxed);
        c.budget.set_state(DiskState::DiskFull);
        let path = self.store.path().display().to_string();
        tracing::error!(%path, items, error = %err, "disk full: storing paused; the group is held and retried every second until space is freed");
        let paused = Instant::now();
        let mut reminded = paused;
        loop {
            if c.stopping.load(Relaxed) {
                return Err(err);
            }
            let wake = Instant::now() + NO_SPACE_RETRY;
            while Instant::now() < wake && !c.stopping.load(Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
            }
            match self.store.write(WriteBatch::from_data(&self.held)) {
                Ok(()) => break,
                Err(e) if e.is_no_space() => err = e,
                Err(e) => return Err(e),
            }
            if reminded.elapsed() >= NO_SPACE_REMIND {
                reminded = Instant::now();
                tracing::warn!(%path, waited_secs = paused.elapsed().as_secs(), "disk still full: storing paused");
            }
        }
        tracing::info!(%path, paused_secs = paused.elapsed().as_secs(), "space freed: storing resumed");
        c.bytes_written.fetch_add(self.held.len() as u64, Relaxed);
        c.budget.set_state(DiskState::Normal);
        self.measure_disk(true);
        Ok(())
    }

    /// Measures the directory (at most once a second unless `force`) and
    /// moves the budget state, logging each step. A full disk is left only
    /// by a write that succeeds, never by a measure.
    fn measure_disk(&mut self, force: bool) {
        if !force && self.last_measure.is_some_and(|t| t.elapsed() < MEASURE_EVERY) {
            return;
        }
        self.last_measure = Some(Instant::now());
        match self.store.dir_bytes() {
            Ok(used) => self.apply_used(used),
            Err(e) => tracing::warn!("could not measure the database directory: {e}"),
        }
    }

    /// Records `used` bytes and moves the state to match, logging the step.
    fn apply_used(&self, used: u64) {
        let budget = &self.counters.budget;
        budget.set_used(used);
        let cur = budget.state();
        if cur == DiskState::DiskFull {
            return;
        }
        let next = state_for(used, budget.budget(), cur);
        if next == cur {
            return;
        }
        budget.set_state(next);
        let limit = budget.budget().unwrap_or(0);
        let pct = if limit > 0 {
            used as f64 * 100.0 / limit as f64
        } else {
            0.0
        };
        if next > cur {
            // One line per step, also when a burst passes several at once.
            for step in DiskState::STEPS.into_iter().filter(|s| cur < *s && *s <= next) {
                tracing::warn!(used, budget = limit, "disk budget {pct:.1}% used: {}", step.describe());
            }
        } else {
            tracing::info!(
                used,
                budget = limit,
                "disk budget {pct:.1}% used: back to {}",
                next.describe()
            );
        }
    }

    /// Sorts the group's sightings by hash, merges repeats, asks RocksDB about
    /// the hashes the filter cannot rule out, and puts one record per hash.
    fn dedup_discoveries(&mut self, store: &Store, wb: &mut WriteBatch) -> Result<(), StorageError> {
        // One sort by (hash, arrival) replaces a hash map: repeats become
        // neighbours, the first sighting leads its run, and the distinct hashes
        // come out in key order, which both `multi_get` and the memtable want.
        self.keys.clear();
        for (seq, d) in self.group.iter().flat_map(|b| &b.discoveries).enumerate() {
            self.keys.push(SortKey::new(d, seq as u32));
        }
        self.keys.sort_unstable();
        let mut last = None;
        for k in &self.keys {
            if last == Some(k.hash_part()) {
                if let Some(p) = self.hashes.last_mut() {
                    p.rec = merge(p.rec, k.sighting());
                }
                continue;
            }
            last = Some(k.hash_part());
            self.hashes.push(PendingHash {
                hash: k.info_hash(),
                rec: k.sighting(),
                first_seq: k.seq,
                new: true,
            });
        }
        // The filter learns every hash now, in the same cache miss as the
        // check. Should the commit fail, the extra bits only cost a read later.
        self.maybe.clear();
        let hashes = &self.hashes;
        self.bloom
            .check_and_insert_all(hashes.iter().map(|p| &p.hash), |i| self.maybe.push(i as u32));
        self.new_bits.clear();
        self.new_bits.resize(self.keys.len().div_ceil(64), 0);
        for p in &self.hashes {
            self.new_bits[p.first_seq as usize / 64] |= 1 << (p.first_seq % 64);
        }
        let cf = store.cf(CF_INFOHASHES)?;
        if !self.maybe.is_empty() {
            let hashes = &self.hashes;
            let keys = self.maybe.iter().map(|&i| &hashes[i as usize].hash);
            let found = store.db().batched_multi_get_cf(cf, keys, true);
            let mut false_pos = 0;
            for (&i, got) in self.maybe.iter().zip(found) {
                match got.map_err(|e| store.rocks(e))? {
                    Some(v) => {
                        let p = &mut self.hashes[i as usize];
                        p.rec = merge(decode_infohash(&v)?, p.rec);
                        p.new = false;
                        self.new_bits[p.first_seq as usize / 64] &= !(1 << (p.first_seq % 64));
                    }
                    None => false_pos += 1,
                }
            }
            self.counters.bloom_false_positives.fetch_add(false_pos, Relaxed);
        }
        // Key order lets the memtable's skiplist reuse its search path from
        // one insert to the next instead of a cold descent per hash.
        let stores_new = self.disk.stores_new();
        let mut refused = 0;
        for p in &self.hashes {
            if p.new && !stores_new {
                // Not stored, so not new to the caller either.
                self.new_bits[p.first_seq as usize / 64] &= !(1 << (p.first_seq % 64));
                refused += 1;
                continue;
            }
            wb.put_cf(cf, p.hash, encode_infohash(&p.rec));
        }
        self.counters.infohashes_refused_budget.fetch_add(refused, Relaxed);
        Ok(())
    }

    /// Everything in batch `i` except discoveries, in a fixed order: queue
    /// additions, peers, failures, then stored torrents (which end a queue
    /// entry). Names wait for [`Self::write_names`], after the whole group.
    fn apply_results(&mut self, store: &Store, i: usize, wb: &mut WriteBatch) -> Result<(), StorageError> {
        let policy = store.options().queue.clone();
        let b = std::mem::take(&mut self.group[i]);
        for &(h, at) in &b.enqueue {
            self.queue_entry(store, &h, at)?;
        }
        for p in &b.peers {
            let mut over = 0;
            let mut requeued = false;
            if let Some(e) = self.queue_entry(store, &p.info_hash, p.at)? {
                let known = e.peers.len();
                for addr in &p.peers {
                    if !e.peers.contains(addr) {
                        e.peers.push(*addr);
                    }
                }
                if e.peers.len() > known {
                    // Peers nobody tried: worth a fetch now rather than after
                    // the back-off. A running fetch cannot take them, so a
                    // leased entry only remembers they came.
                    if e.leased {
                        e.peers_since_lease = true;
                    } else if e.due > p.at {
                        e.due = p.at;
                        requeued = true;
                    }
                }
                // Keep the newest: older peers are likelier to have left.
                over = e.peers.len().saturating_sub(MAX_STAGED_PEERS);
                e.peers.drain(..over);
            }
            self.counters.peers_over_cap.fetch_add(over as u64, Relaxed);
            self.counters
                .requeued_for_new_peers
                .fetch_add(u64::from(requeued), Relaxed);
        }
        let counters = Arc::clone(&self.counters);
        for f in &b.failures {
            let mut expired = false;
            let exhausted = match self.queue_entry(store, &f.info_hash, f.at)? {
                Some(e) => {
                    e.attempts = e.attempts.saturating_add(1);
                    e.last_error = Some(truncate_str(&f.error, MAX_ERROR_LEN).to_owned());
                    e.due = if e.peers_since_lease {
                        // The failed fetch never saw these peers; the attempt still counts.
                        counters.requeued_for_new_peers.fetch_add(1, Relaxed);
                        f.at
                    } else {
                        policy.retry_at(f.at, e.attempts)
                    };
                    e.leased = false;
                    e.peers_since_lease = false;
                    expired = f.at.saturating_sub(e.enqueued_at) >= policy.max_age_secs;
                    e.attempts >= policy.max_attempts || expired
                }
                None => false,
            };
            if exhausted {
                self.load_queue_edit(store, &f.info_hash)?.entry = None;
                let counter = if expired {
                    &self.counters.queue_expired
                } else {
                    &self.counters.queue_abandoned
                };
                counter.fetch_add(1, Relaxed);
            }
        }
        let (cf_t, cf_d, cf_a) = (store.cf(CF_TORRENTS)?, store.cf(CF_INFO_DICTS)?, store.cf(CF_ALIASES)?);
        let cf_c = store.cf(CF_CHANGES)?;
        if !b.torrents.is_empty() {
            let mode = store.options().info_dicts.as_str();
            wb.put_cf(store.cf(CF_META)?, META_INFO_DICTS_MODE, mode);
        }
        for t in &b.torrents {
            encode_torrent(t, &mut self.buf);
            wb.put_cf(cf_t, t.info_hash, &self.buf);
            if let Some(d) = &t.info_dict {
                if !self.disk.keeps_info_dicts() {
                    self.counters.info_dicts_not_kept_budget.fetch_add(1, Relaxed);
                } else if let Some(v) = kept_value(store, &t.info_hash, d)? {
                    wb.put_cf(cf_d, t.info_hash, v);
                }
            }
            self.load_queue_edit(store, &t.info_hash)?.entry = None;
            // A hybrid is one torrent under two hashes: whichever hash it was
            // fetched by, the other's queue entry ends too, and a later
            // sighting of its v2 hash never queues it again.
            if let Some(alias) = t.v2_truncated().filter(|a| *a != t.info_hash) {
                wb.put_cf(cf_a, alias, t.info_hash);
                self.load_queue_edit(store, &alias)?.entry = None;
            }
            self.stored.push(t.info_hash);
            self.last_change += 1;
            wb.put_cf(cf_c, change_key(self.last_change), t.info_hash);
            self.counters.torrents.fetch_add(1, Relaxed);
        }
        if !self.stored.is_empty() {
            // The real name has arrived: the provisional one goes.
            let cf_p = store.cf(CF_PROVISIONAL_NAMES)?;
            for t in &b.torrents {
                wb.delete_cf(cf_p, t.info_hash);
            }
        }
        self.names.extend(b.names.into_iter().filter(|n| !n.name.is_empty()));
        let cf_s = store.cf(CF_SCRAPES)?;
        let mut scrapes = b.scrapes;
        // Key order again; a stable sort keeps a hash's later estimate last.
        scrapes.sort_by(|x, y| x.0.cmp(&y.0));
        for (h, s) in &scrapes {
            wb.put_cf(cf_s, h, encode_scrape(s));
            // A search index sorts by seeders: it hears of a stored torrent's
            // new count (one stored in this group has its own change already).
            if store.db().get_pinned_cf(cf_t, h).map_err(|e| store.rocks(e))?.is_some() {
                self.last_change += 1;
                wb.put_cf(cf_c, change_key(self.last_change), h);
            }
        }
        if let Some(nodes) = &b.nodes {
            let cf_n = store.cf(CF_NODES)?;
            wb.delete_range_cf(cf_n, &[0u8; NODE_KEY_LEN][..], &[0xffu8; NODE_KEY_LEN + 1][..]);
            for n in nodes {
                self.buf.clear();
                encode_node(n, &mut self.buf);
                wb.put_cf(cf_n, node_key(n), &self.buf);
            }
        }
        // Keep what `acknowledge` needs: the discoveries and the reply.
        self.group[i] = Batch {
            discoveries: b.discoveries,
            reply: b.reply,
            ..Batch::default()
        };
        Ok(())
    }

    fn load_queue_edit(&mut self, store: &Store, h: &InfoHash) -> Result<&mut QueueEdit, StorageError> {
        queue_edit(&mut self.queue, store, h)
    }

    /// The queue entry for `h`, created due at `at` unless the torrent is already stored.
    fn queue_entry(
        &mut self,
        store: &Store,
        h: &InfoHash,
        at: UnixSecs,
    ) -> Result<Option<&mut StagingEntry>, StorageError> {
        let fresh = !self.queue.contains_key(h);
        let counters = Arc::clone(&self.counters);
        let full = self.queue_len.saturating_add(self.group_new) >= store.options().queue.max_entries;
        // Borrows only the queue, so the group count below stays reachable.
        let edit = queue_edit(&mut self.queue, store, h)?;
        if edit.entry.is_some() {
            return Ok(edit.entry.as_mut());
        }
        // Only a brand-new edit may create an entry: one removed in this
        // group (stored, abandoned) stays removed.
        if !fresh
            || store
                .db()
                .get_pinned_cf(store.cf(CF_TORRENTS)?, h)
                .map_err(|e| store.rocks(e))?
                .is_some()
            || store.primary_hash(h)?.is_some()
        {
            return Ok(None);
        }
        if full {
            counters.queue_dropped_full.fetch_add(1, Relaxed);
            return Ok(None);
        }
        if !self.disk.stores_new() {
            counters.queue_refused_budget.fetch_add(1, Relaxed);
            return Ok(None);
        }
        edit.entry = Some(StagingEntry {
            info_hash: *h,
            due: at,
            enqueued_at: at,
            attempts: 0,
            last_error: None,
            peers: Vec::new(),
            leased: false,
            peers_since_lease: false,
        });
        counters.queued.fetch_add(1, Relaxed);
        self.group_new += 1;
        Ok(edit.entry.as_mut())
    }

    fn write_queue_edits(
        &mut self,
        store: &Store,
        wb: &mut WriteBatch,
        floor: &mut DueFloor,
    ) -> Result<(), StorageError> {
        let (cf_q, cf_due) = (store.cf(CF_STAGING)?, store.cf(CF_STAGING_DUE)?);
        // In key order, so each memtable's skiplist starts every insert from
        // the last one's path (hash-map order made each a cold descent: the
        // writer's largest cost in a crawl profile, bench/RESULTS.md).
        let mut edits: Vec<_> = self.queue.iter().collect();
        edits.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let (mut added, mut removed) = (0u64, 0u64);
        for (_, edit) in &edits {
            match (edit.disk_due.is_some(), edit.entry.is_some()) {
                (false, true) => added += 1,
                (true, false) => removed += 1,
                _ => {}
            }
        }
        self.queue_len = (self.queue_len + added).saturating_sub(removed);
        self.group_new = 0;
        for (h, edit) in edits {
            let new_due = edit.entry.as_ref().map(|e| e.due);
            if let Some(d) = edit.disk_due {
                if new_due != Some(d) {
                    wb.delete_cf(cf_due, due_key(d, h));
                }
            }
            match &edit.entry {
                Some(e) => {
                    encode_staging(e, &mut self.buf);
                    wb.put_cf(cf_q, h, &self.buf);
                    if edit.disk_due != Some(e.due) {
                        let k = due_key(e.due, h);
                        floor.lower_to(k);
                        wb.put_cf(cf_due, k, b"");
                    }
                }
                None if edit.disk_due.is_some() => wb.delete_cf(cf_q, h),
                None => {}
            }
        }
        Ok(())
    }

    /// Stores the group's provisional names: the first heard for each hash,
    /// unless the hash already has one or its torrent is stored (now or in
    /// this group). In key order, like every other family.
    fn write_names(&mut self, store: &Store, wb: &mut WriteBatch) -> Result<(), StorageError> {
        // At the budget's last step names are not kept either: most belong
        // to hashes refused along with them.
        if self.names.is_empty() || !self.disk.stores_new() {
            return Ok(());
        }
        // Stable: the first heard of a hash leads its run, and dedup keeps it.
        self.names.sort_by_key(|n| n.info_hash);
        self.names.dedup_by(|later, first| later.info_hash == first.info_hash);
        self.stored.sort_unstable();
        let (cf_t, cf_p) = (store.cf(CF_TORRENTS)?, store.cf(CF_PROVISIONAL_NAMES)?);
        let mut stored = 0;
        for n in &self.names {
            let h = &n.info_hash;
            if self.stored.binary_search(h).is_ok()
                || store.db().get_pinned_cf(cf_t, h).map_err(|e| store.rocks(e))?.is_some()
                || store.db().get_pinned_cf(cf_p, h).map_err(|e| store.rocks(e))?.is_some()
            {
                continue;
            }
            encode_provisional_name(n, &mut self.buf);
            wb.put_cf(cf_p, h, &self.buf);
            stored += 1;
        }
        self.counters.provisional_names.fetch_add(stored, Relaxed);
        Ok(())
    }

    /// Sends each batch its outcome; the group is durable by now.
    fn acknowledge(&mut self) {
        let c = &self.counters;
        let mut seq = 0usize;
        let (mut new_total, mut dup_total) = (0u64, 0u64);
        for b in self.group.drain(..) {
            let mut out = BatchOutcome::default();
            for d in &b.discoveries {
                if self.new_bits[seq / 64] & (1 << (seq % 64)) != 0 {
                    out.new.push(d.info_hash);
                } else {
                    out.duplicates += 1;
                }
                seq += 1;
            }
            new_total += out.new.len() as u64;
            dup_total += u64::from(out.duplicates);
            if let Some(reply) = b.reply {
                if reply.send(out).is_err() {
                    c.replies_undeliverable.fetch_add(1, Relaxed);
                }
            }
        }
        c.new_infohashes.fetch_add(new_total, Relaxed);
        c.duplicate_infohashes.fetch_add(dup_total, Relaxed);
    }
}

/// Two accounts of the same hash, combined.
fn merge(a: InfoHashRecord, b: InfoHashRecord) -> InfoHashRecord {
    InfoHashRecord {
        first_seen: a.first_seen.min(b.first_seen),
        last_seen: a.last_seen.max(b.last_seen),
        seen: a.seen.saturating_add(b.seen),
        sources: SourceSet(a.sources.0 | b.sources.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sort_keys_order_like_the_hash_bytes_then_arrival() {
        let hashes: Vec<InfoHash> = [
            [0xff; 20],
            [0; 20],
            {
                let mut h = [0; 20];
                h[19] = 1;
                h
            },
            {
                let mut h = [0; 20];
                h[8] = 1;
                h
            },
            {
                let mut h = [0; 20];
                h[0] = 1;
                h
            },
            [0; 20],
        ]
        .to_vec();
        let mut keys: Vec<SortKey> = hashes
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let d = Discovery {
                    info_hash: *h,
                    source: Source::Announce,
                    at: 7,
                };
                SortKey::new(&d, i as u32)
            })
            .collect();
        keys.sort_unstable();
        let mut by_bytes: Vec<(InfoHash, u32)> = hashes.iter().enumerate().map(|(i, h)| (*h, i as u32)).collect();
        by_bytes.sort_unstable();
        assert_eq!(
            keys.iter().map(|k| (k.info_hash(), k.seq)).collect::<Vec<_>>(),
            by_bytes
        );
        assert_eq!(
            (keys[0].seq, keys[1].seq),
            (1, 5),
            "a repeat sorts after its first sighting"
        );
    }
}

/// The `info_dicts` value to write for a fetched dict under the store's mode,
/// or `None` to leave the family as it is. A mode that keeps less never
/// overwrites what is there: a whole dict kept earlier stays whole. A dict the
/// `files` cut cannot walk (it was verified and parsed, so this means a bug
/// here) is kept whole rather than lost.
fn kept_value<'a>(store: &Store, h: &InfoHash, dict: &'a [u8]) -> Result<Option<Cow<'a, [u8]>>, StorageError> {
    let mode = store.options().info_dicts;
    let stored = |h: &InfoHash| -> Result<bool, StorageError> {
        let cf = store.cf(CF_INFO_DICTS)?;
        Ok(store.db().get_pinned_cf(cf, h).map_err(|e| store.rocks(e))?.is_some())
    };
    if mode != InfoDictMode::Full && (mode == InfoDictMode::None || stored(h)?) {
        return Ok(None);
    }
    match mode.value(dict) {
        Ok(v) => Ok(v),
        Err(e) => {
            tracing::warn!(info_hash = %crate::export::hex_string(h), error = %e, "keeping the whole info dict: the files cut failed");
            Ok(Some(Cow::Borrowed(dict)))
        }
    }
}

/// The group's edit of `h`'s queue entry, loaded from disk on first touch.
/// A free function over the map, so a caller can hold the edit and still
/// reach the writer's other fields.
fn queue_edit<'q>(
    queue: &'q mut HashMap<InfoHash, QueueEdit, ahash::RandomState>,
    store: &Store,
    h: &InfoHash,
) -> Result<&'q mut QueueEdit, StorageError> {
    Ok(match queue.entry(*h) {
        Entry::Occupied(o) => o.into_mut(),
        Entry::Vacant(v) => {
            let entry = store.staging_entry(h)?;
            v.insert(QueueEdit {
                disk_due: entry.as_ref().map(|e| e.due),
                entry,
            })
        }
    })
}
