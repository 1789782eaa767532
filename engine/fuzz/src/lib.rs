//! Shared pieces of trawl's fuzz targets.
//!
//! - [`codec`]: the codec module, compiled from `engine/src/codec` as it is, so
//!   the `krpc_decode` target checks it without the rest of the engine. It uses
//!   only `super::` paths inside itself, so it builds standalone.
//! - [`without_allocation`]: a counting global allocator for every target, so a
//!   target can assert that a decoder allocates nothing (and so nothing in
//!   proportion to a length an attacker declares).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

#[path = "../../src/codec/mod.rs"]
pub mod codec;

/// Counts allocations made while `ARMED` is set.
struct Counting;

static ARMED: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
/// Largest single allocation seen while armed.
static LARGEST: AtomicUsize = AtomicUsize::new(0);
/// Sum of all allocation sizes while armed (a realloc counts its new size).
static TOTAL: AtomicUsize = AtomicUsize::new(0);

fn count(size: usize) {
    if ARMED.load(Ordering::Relaxed) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        LARGEST.fetch_max(size, Ordering::Relaxed);
        TOTAL.fetch_add(size, Ordering::Relaxed);
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// What a closure allocated.
#[derive(Clone, Copy, Debug)]
pub struct Allocated {
    pub count: usize,
    /// The largest single allocation, in bytes.
    pub largest: usize,
    /// All allocation sizes summed, in bytes.
    pub total: usize,
}

/// Runs `f` and returns what it returned and what it allocated. Targets run
/// single-threaded, so nothing else allocates meanwhile.
pub fn counting_allocations<T>(f: impl FnOnce() -> T) -> (T, Allocated) {
    ALLOCATIONS.store(0, Ordering::Relaxed);
    LARGEST.store(0, Ordering::Relaxed);
    TOTAL.store(0, Ordering::Relaxed);
    ARMED.store(true, Ordering::Relaxed);
    let out = f();
    ARMED.store(false, Ordering::Relaxed);
    let allocated = Allocated {
        count: ALLOCATIONS.load(Ordering::Relaxed),
        largest: LARGEST.load(Ordering::Relaxed),
        total: TOTAL.load(Ordering::Relaxed),
    };
    (out, allocated)
}

/// Runs `f` and asserts it allocated nothing.
pub fn without_allocation<T>(f: impl FnOnce() -> T) -> T {
    let (out, a) = counting_allocations(f);
    assert_eq!(a.count, 0, "the decoder allocated");
    out
}

/// Runs `f` and asserts no single allocation exceeded `max` bytes.
pub fn with_allocations_below<T>(max: usize, f: impl FnOnce() -> T) -> T {
    let (out, a) = counting_allocations(f);
    assert!(
        a.largest <= max,
        "an allocation of {} bytes exceeds the bound {max}",
        a.largest
    );
    out
}

/// Runs `f` and asserts it allocated at most `max` bytes in all.
pub fn with_total_allocation_below<T>(max: usize, f: impl FnOnce() -> T) -> T {
    let (out, a) = counting_allocations(f);
    assert!(
        a.total <= max,
        "{} bytes allocated in all exceed the bound {max}",
        a.total
    );
    out
}
