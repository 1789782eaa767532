//! Where the process's memory goes, beyond RocksDB's own accounting: the live
//! bytes Rust code holds, what mimalloc has committed for them, and glibc's
//! heap (RocksDB's C++ allocations), split into used and free-but-kept.
//!
//! RSS alone cannot tell a leak from allocator retention; these four can. A
//! leak in our structures shows in the live bytes; fragmentation shows as
//! committed or free-but-kept memory growing while the live bytes do not.
//!
//! Owns [`CountingAlloc`], the global-allocator wrapper that counts live bytes,
//! [`MemoryBreakdown::read`], and the two glibc settings that keep RocksDB's
//! freed memory from staying resident ([`keep_large_libc_blocks_out_of_the_heap`],
//! [`trim_libc_heap`]). The count is per thread and published to one
//! shared total every [`PUBLISH_BYTES`], so the hot path pays a thread-local
//! add, never a contended atomic; the total is off by at most that much per
//! thread. Must not allocate inside the allocator.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::AtomicI64;
use std::sync::atomic::Ordering::Relaxed;

/// A thread's unpublished count is added to the shared total once it drifts
/// this far from zero.
pub const PUBLISH_BYTES: i64 = 256 << 10;

static LIVE: AtomicI64 = AtomicI64::new(0);
static INSTALLED: AtomicBool = AtomicBool::new(false);

thread_local! {
    // Const-initialised and without Drop: usable from the allocator, even
    // while the thread's other locals are being destroyed.
    static PENDING: Cell<i64> = const { Cell::new(0) };
}

/// Wraps a global allocator and counts the bytes live through it.
pub struct CountingAlloc<A>(pub A);

fn account(delta: i64) {
    let published = PENDING.try_with(|p| {
        let v = p.get() + delta;
        if v.abs() >= PUBLISH_BYTES {
            LIVE.fetch_add(v, Relaxed);
            p.set(0);
        } else {
            p.set(v);
        }
    });
    if published.is_err() {
        LIVE.fetch_add(delta, Relaxed);
    }
}

// SAFETY: every call is forwarded unchanged to the wrapped allocator; the
// counting around it touches no allocated memory.
unsafe impl<A: GlobalAlloc> GlobalAlloc for CountingAlloc<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { self.0.alloc(layout) };
        if !p.is_null() {
            account(layout.size() as i64);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { self.0.alloc_zeroed(layout) };
        if !p.is_null() {
            account(layout.size() as i64);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { self.0.dealloc(ptr, layout) };
        account(-(layout.size() as i64));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { self.0.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            account(new_size as i64 - layout.size() as i64);
        }
        p
    }
}

impl<A> CountingAlloc<A> {
    /// Call once from `main`: tells [`MemoryBreakdown::read`] that the live
    /// count is real (a process without this wrapper reports `None`).
    pub fn mark_installed(&self) {
        INSTALLED.store(true, Relaxed);
    }
}

/// Bytes live through [`CountingAlloc`] (to within [`PUBLISH_BYTES`] per
/// thread), or `None` if the process does not count.
pub fn rust_heap_live() -> Option<u64> {
    INSTALLED.load(Relaxed).then(|| LIVE.load(Relaxed).max(0) as u64)
}

/// glibc's heap (RocksDB's C++ side) serves blocks at least this large with
/// their own mappings, given back to the OS when freed.
pub const LIBC_MMAP_THRESHOLD: usize = 128 << 10;

/// Fixes glibc's mmap threshold at [`LIBC_MMAP_THRESHOLD`]. By default glibc
/// raises the threshold to the largest block freed so far (up to 32 MB), after
/// which RocksDB's memtable arenas and compaction buffers (megabytes each) come
/// from the heap and their holes stay in RSS: a long crawl's memory then
/// creeps up while nothing leaks. Call once at start, before threads exist.
/// Returns false where this cannot be set (not glibc, or refused).
pub fn keep_large_libc_blocks_out_of_the_heap() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only sets the allocator's parameter.
        unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, LIBC_MMAP_THRESHOLD as libc::c_int) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// How often a long-running crawl calls [`trim_libc_heap`].
pub const LIBC_TRIM_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Hands glibc's free heap pages back to the OS (`malloc_trim`). Once
/// RocksDB's block cache is full, every insert evicts blocks of other sizes,
/// and the holes they leave in glibc's arenas stay resident until trimmed: a
/// slow climb of RSS with nothing live behind it. Returns false where there is
/// nothing to call (not glibc).
pub fn trim_libc_heap() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim only returns free pages; it takes the arenas' locks.
        unsafe { libc::malloc_trim(0) };
        true
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// The process's memory, by allocator. Every field is a gauge in bytes;
/// `None` where this build or platform cannot tell.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryBreakdown {
    /// Live bytes Rust code holds ([`CountingAlloc`]).
    pub rust_heap_live: Option<u64>,
    /// Memory mimalloc has committed from the OS: the live bytes plus its
    /// partly used pages and freed pages not yet returned.
    pub mimalloc_committed: Option<u64>,
    /// glibc's heap in use (RocksDB and other C/C++ code), mmapped blocks
    /// included.
    pub libc_heap_in_use: Option<u64>,
    /// Freed glibc heap memory the process still holds (fragmentation).
    pub libc_heap_free: Option<u64>,
}

impl MemoryBreakdown {
    pub fn read() -> Self {
        let (libc_heap_in_use, libc_heap_free) = libc_heap();
        MemoryBreakdown {
            rust_heap_live: rust_heap_live(),
            mimalloc_committed: mimalloc_committed(),
            libc_heap_in_use,
            libc_heap_free,
        }
    }
}

// With the `mimalloc` feature the library links mimalloc (even into binaries
// whose allocator is another) and reads what it committed; without it the
// figure is unknown.
#[cfg(feature = "mimalloc")]
extern crate mimalloc as _;

#[cfg(feature = "mimalloc")]
extern "C" {
    // Part of the mimalloc library the `mimalloc` crate links; declared here
    // so the crate's optional `extended` bindings are not needed.
    fn mi_process_info(
        elapsed_msecs: *mut usize,
        user_msecs: *mut usize,
        system_msecs: *mut usize,
        current_rss: *mut usize,
        peak_rss: *mut usize,
        current_commit: *mut usize,
        peak_commit: *mut usize,
        page_faults: *mut usize,
    );
}

#[cfg(feature = "mimalloc")]
fn mimalloc_committed() -> Option<u64> {
    let mut commit = 0usize;
    let null = std::ptr::null_mut();
    // SAFETY: mimalloc skips null outputs and writes only the one given.
    unsafe { mi_process_info(null, null, null, null, null, &mut commit, null, null) };
    Some(commit as u64)
}

#[cfg(not(feature = "mimalloc"))]
fn mimalloc_committed() -> Option<u64> {
    None
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn libc_heap() -> (Option<u64>, Option<u64>) {
    // SAFETY: mallinfo2 only reads the allocator's own counters (under its locks).
    let m = unsafe { libc::mallinfo2() };
    (Some((m.uordblks + m.hblkhd) as u64), Some(m.fordblks as u64))
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn libc_heap() -> (Option<u64>, Option<u64>) {
    (None, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The tests run under the default allocator, so the counter is driven
    // through the wrapper directly.
    static COUNTING: CountingAlloc<std::alloc::System> = CountingAlloc(std::alloc::System);

    #[test]
    fn live_bytes_follow_alloc_realloc_and_free_through_the_wrapper() {
        // A thread of its own, so no other test's allocations are pending on it.
        std::thread::spawn(|| {
            let before = LIVE.load(Relaxed);
            let big = Layout::from_size_align(4 << 20, 8).unwrap();
            let p = unsafe { COUNTING.alloc(big) };
            assert!(!p.is_null());
            // Past PUBLISH_BYTES, so published at once.
            assert_eq!(LIVE.load(Relaxed) - before, 4 << 20);
            let p = unsafe { COUNTING.realloc(p, big, 6 << 20) };
            assert!(!p.is_null());
            let bigger = Layout::from_size_align(6 << 20, 8).unwrap();
            assert_eq!(LIVE.load(Relaxed) - before, 6 << 20);
            unsafe { COUNTING.dealloc(p, bigger) };
            assert_eq!(LIVE.load(Relaxed) - before, 0);

            // Small blocks stay thread-local until they add up.
            let small = Layout::from_size_align(1024, 8).unwrap();
            let ptrs: Vec<*mut u8> = (0..8).map(|_| unsafe { COUNTING.alloc(small) }).collect();
            assert_eq!(LIVE.load(Relaxed) - before, 0);
            assert_eq!(PENDING.with(Cell::get), 8 * 1024);
            for p in ptrs {
                unsafe { COUNTING.dealloc(p, small) };
            }
            assert_eq!(PENDING.with(Cell::get), 0);
        })
        .join()
        .unwrap();
    }

    /// Whether glibc gave `p` its own mapping: bit 1 (IS_MMAPPED) of the size
    /// word in the chunk header just before it.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn is_mmapped(p: *mut libc::c_void) -> bool {
        unsafe { *(p as *const usize).sub(1) & 2 != 0 }
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn after_a_large_free_a_megabyte_block_still_gets_its_own_mapping() {
        assert!(keep_large_libc_blocks_out_of_the_heap());
        unsafe {
            // glibc's default would now raise its threshold to 16 MB (it
            // follows frees up to 32 MB) and serve the next megabyte-sized
            // blocks from the heap.
            let big = libc::malloc(16 << 20);
            assert!(is_mmapped(big));
            libc::free(big);
            let arena_block = libc::malloc(1 << 20);
            assert!(!arena_block.is_null());
            assert!(is_mmapped(arena_block), "a 1 MB block came from the heap");
            libc::free(arena_block);
            let small = libc::malloc(LIBC_MMAP_THRESHOLD / 4);
            assert!(!is_mmapped(small), "small blocks stay in the heap");
            libc::free(small);
        }
    }

    /// Resident pages among those wholly inside `[start, end)`, and their count.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn resident_pages(start: usize, end: usize) -> (usize, usize) {
        let page = 4096;
        let first = start.div_ceil(page) * page;
        let last = end / page * page;
        if last <= first {
            return (0, 0);
        }
        let n = (last - first) / page;
        let mut v = vec![0u8; n];
        let rc = unsafe { libc::mincore(first as *mut libc::c_void, last - first, v.as_mut_ptr()) };
        assert_eq!(rc, 0, "mincore");
        (v.iter().filter(|&&b| b & 1 != 0).count(), n)
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn trimming_gives_back_the_pages_of_holes_between_live_blocks() {
        // Cache-block-sized allocations, all but every eighth freed: the
        // survivors pin the heap, so the holes stay resident until trimmed.
        std::thread::spawn(|| unsafe {
            let size = 24 << 10;
            let blocks: Vec<usize> = (0..2000)
                .map(|_| {
                    let p = libc::malloc(size);
                    assert!(!p.is_null());
                    std::ptr::write_bytes(p as *mut u8, 0x5a, size);
                    p as usize
                })
                .collect();
            let mut holes = Vec::new();
            for (i, &p) in blocks.iter().enumerate() {
                if i % 8 != 0 {
                    libc::free(p as *mut libc::c_void);
                    holes.push(p);
                }
            }
            // Inside each freed block, past glibc's free-list words.
            let count = |holes: &[usize]| {
                holes.iter().fold((0, 0), |(r, n), &p| {
                    let (a, b) = resident_pages(p + 64, p + size);
                    (r + a, n + b)
                })
            };
            let (before, pages) = count(&holes);
            assert!(trim_libc_heap());
            let (after, _) = count(&holes);
            assert!(pages > 5000, "{pages}");
            assert!(
                before > pages / 2,
                "the holes were resident before: {before} of {pages}"
            );
            assert!(after < pages / 10, "trim left {after} of {pages} pages resident");
            for (i, &p) in blocks.iter().enumerate() {
                if i % 8 == 0 {
                    libc::free(p as *mut libc::c_void);
                }
            }
        })
        .join()
        .unwrap();
    }

    #[test]
    fn the_live_count_is_reported_only_once_installed() {
        // Not installed in the test binary: no count, the allocators still read.
        let m = MemoryBreakdown::read();
        assert_eq!(m.rust_heap_live, None);
        let in_use = m.libc_heap_in_use.expect("glibc reports its heap");
        // The test harness itself allocates through glibc.
        assert!(in_use > 0);
        COUNTING.mark_installed();
        assert!(MemoryBreakdown::read().rust_heap_live.is_some());
        INSTALLED.store(false, Relaxed);
    }
}
