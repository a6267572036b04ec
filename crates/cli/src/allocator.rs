//! The allocator, set for a daemon that handles messages of many megabytes and bursts of small ones: what it
//! frees goes back to the operating system instead of staying with the process. glibc only; the workspace's one
//! `unsafe` (two calls into its allocator) is here.
#![allow(unsafe_code)]

use std::time::Duration;

/// Buffers of 256 KiB and more (a message, a request body) get mappings of their own, given back to the kernel
/// when freed. glibc does so above a threshold that it raises, each time such a buffer is freed, up to 32 MB:
/// message-sized buffers then come from the heap, which keeps them once freed (one 25 MB message left 75 MB
/// resident). A threshold set once stays where it is. Called first in `main`.
pub fn large_buffers_go_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` only changes the allocator's parameters; it runs first in `main`, before any other
    // thread exists or allocates.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
    }
}

/// Every `interval` (never when zero), gives the memory freed inside the allocator's heaps back to the kernel:
/// what a burst of small allocations left behind, which glibc would otherwise keep for later.
pub fn trim_every(interval: Duration) {
    if interval.is_zero() {
        return;
    }
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            #[cfg(all(target_os = "linux", target_env = "gnu"))]
            // SAFETY: `malloc_trim` is thread-safe (it takes each arena's lock) and touches only free memory.
            unsafe {
                libc::malloc_trim(0);
            }
        }
    });
}
