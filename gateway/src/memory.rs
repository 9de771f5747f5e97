//! Giving freed heap memory back to the system after a big reload.
//!
//! A list snapshot (100,000 cards, 100,000 plates) is rebuilt whole and the
//! old one freed after every change. glibc's allocator keeps what is freed
//! in its arenas (threads share up to eight per core on 64-bit systems, two
//! on 32-bit) and gives back only the top of each heap on its own; reloads
//! run on the threads of the blocking pool, so freed snapshots stay behind
//! in several arenas, and before the fix the gateway's RSS grew with every
//! reload (`cargo bench -p gateway --bench reload`). After a swap the
//! reload asks the allocator to return every free page (`malloc_trim(0)`,
//! documented in malloc_trim(3)); on other C libraries this does nothing.
//! [`swap_in`] is that swap, for every list snapshot.

use std::sync::{Arc, PoisonError, RwLock};

/// Returns the allocator's free pages to the system: all arenas, not only
/// the top of each heap (glibc's `malloc_trim(0)`; a no-op elsewhere).
/// Costs a walk over the free lists: call it after a big free, not per
/// event.
pub fn release_free_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code)]
    // SAFETY: `malloc_trim` takes no pointers; it locks each arena while it
    // walks that arena's free chunks, so it is safe from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Swaps `new` into `slot` (a list snapshot), frees the old value there and
/// then (unless a reader still holds it) and gives the freed heap back to
/// the system ([`release_free_heap`]).
pub fn swap_in<T>(slot: &RwLock<Arc<T>>, new: T) {
    let old = std::mem::replace(
        &mut *slot.write().unwrap_or_else(PoisonError::into_inner),
        Arc::new(new),
    );
    drop(old);
    release_free_heap();
}
