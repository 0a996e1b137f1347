//! Memory accounting for script runs: a global allocator that counts, per thread, the
//! bytes a script run holds, so the engine can stop a run that goes over its budget.
//!
//! A binary opts in by installing it (`inlet` and the ingest function do):
//!
//! ```ignore
//! #[global_allocator]
//! static ALLOCATOR: inlet_core::script::CountingAllocator =
//!     inlet_core::script::CountingAllocator(std::alloc::System);
//! ```
//!
//! It wraps another allocator (`inlet` uses mimalloc, the Lambda the system's) and adds two thread-local updates per allocation while
//! a run is being counted (nothing otherwise). The engine checks the count every few
//! operations; a single call that could allocate far more than its inputs is refused
//! before it runs (see the `bounds` module), so the count only has to catch what builds
//! up over many operations.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    /// Whether allocations on this thread are counted (during a script run).
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    /// Bytes allocated minus bytes freed on this thread since counting started.
    static HELD: Cell<isize> = const { Cell::new(0) };
}

/// An allocator (the system's by default), counting the bytes a script run holds.
pub struct CountingAllocator<A = System>(pub A);

fn count(delta: isize) {
    let _ = COUNTING.try_with(|counting| {
        if counting.get() {
            let _ = HELD.try_with(|held| held.set(held.get() + delta));
        }
    });
}

// SAFETY: every call is forwarded to the inner allocator unchanged; the counting only
// touches const-initialised thread-locals without destructors, which never allocate.
unsafe impl<A: GlobalAlloc> GlobalAlloc for CountingAllocator<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let pointer = unsafe { self.0.alloc(layout) };
        if !pointer.is_null() {
            count(layout.size() as isize);
        }
        pointer
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let pointer = unsafe { self.0.alloc_zeroed(layout) };
        if !pointer.is_null() {
            count(layout.size() as isize);
        }
        pointer
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        unsafe { self.0.dealloc(pointer, layout) };
        count(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let moved = unsafe { self.0.realloc(pointer, layout, new_size) };
        if !moved.is_null() {
            count(new_size as isize - layout.size() as isize);
        }
        moved
    }
}

/// Starts counting this thread's allocations from zero.
pub(super) fn start() {
    HELD.with(|held| held.set(0));
    COUNTING.with(|counting| counting.set(true));
}

/// Stops counting.
pub(super) fn stop() {
    COUNTING.with(|counting| counting.set(false));
}

/// The bytes this thread's run holds (0 when the allocator is not installed).
pub(super) fn held() -> usize {
    HELD.with(|held| held.get().max(0) as usize)
}

/// Whether the counting allocator is the process's allocator, so that the memory
/// budget holds: counts one small allocation and looks.
pub fn installed() -> bool {
    let was_counting = COUNTING.with(Cell::get);
    COUNTING.with(|c| c.set(true));
    let before = HELD.with(Cell::get);
    let probe = std::hint::black_box(Box::new(0u8));
    let after = HELD.with(Cell::get);
    drop(probe);
    HELD.with(|h| h.set(before));
    COUNTING.with(|c| c.set(was_counting));
    after != before
}
